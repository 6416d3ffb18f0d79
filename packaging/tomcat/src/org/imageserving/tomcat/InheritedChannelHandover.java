package org.imageserving.tomcat;

import java.lang.reflect.Field;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.nio.channels.Channel;
import java.nio.channels.ServerSocketChannel;
import java.util.HashMap;
import java.util.Map;

import org.apache.catalina.Lifecycle;
import org.apache.catalina.LifecycleEvent;
import org.apache.catalina.LifecycleListener;
import org.apache.catalina.Server;
import org.apache.catalina.Service;
import org.apache.catalina.connector.Connector;
import org.apache.juli.logging.Log;
import org.apache.juli.logging.LogFactory;
import org.apache.tomcat.util.net.AbstractEndpoint;
import org.apache.tomcat.util.threads.LimitLatch;

/**
 * Lets a Tomcat that serves on a listening socket systemd holds (a connector with
 * {@code useInheritedChannel="true"}) stop without losing a connection.
 *
 * <p>When Tomcat stops, it pauses each connector and then wakes the connector's acceptor,
 * which waits in {@code accept()}, with a connection to itself; whatever the acceptor accepts
 * while paused, it closes unanswered. On a port of its own that is only its own wake-up
 * connection. On a socket shared with systemd (and the next Tomcat), it can be a client's
 * connection that arrived in the few milliseconds between the pause and the wake-up: that
 * client sees its connection reset.
 *
 * <p>Before the server stops, this listener takes the acceptor out of {@code accept()} while
 * the connector still serves: it lowers the connector's connection limit to zero and wakes
 * the acceptor with a connection of its own. The acceptor serves the one connection it then
 * accepts (a client's or this one) and waits at the connection limit instead of accepting.
 * When Tomcat pauses the connector, the acceptor leaves that wait without accepting again;
 * every connection that arrives from then on waits in the socket's backlog for the next
 * server. Connectors on a port of their own are left alone. Once the server has stopped, each
 * connector gets its connection limit back (for a server started again in the same JVM).
 *
 * <p>In {@code server.xml}:
 * {@code <Listener className="org.imageserving.tomcat.InheritedChannelHandover"/>}
 */
public class InheritedChannelHandover implements LifecycleListener {

    private static final Log log = LogFactory.getLog(InheritedChannelHandover.class);

    /** How long to wait for the acceptor to reach the connection limit. */
    private static final long WAIT_MILLIS = 2000;

    /** The connection limits lowered at the stop, to give back once stopped. */
    private final Map<Connector, Object> lowered = new HashMap<>();

    @Override
    public void lifecycleEvent(LifecycleEvent event) {
        if (!(event.getLifecycle() instanceof Server)) {
            return;
        }
        if (Lifecycle.AFTER_STOP_EVENT.equals(event.getType())) {
            for (Map.Entry<Connector, Object> e : lowered.entrySet()) {
                e.getKey().setProperty("maxConnections", String.valueOf(e.getValue()));
            }
            lowered.clear();
            return;
        }
        if (!Lifecycle.BEFORE_STOP_EVENT.equals(event.getType())) {
            return;
        }
        for (Service service : ((Server) event.getLifecycle()).findServices()) {
            for (Connector connector : service.findConnectors()) {
                if ("true".equals(String.valueOf(connector.getProperty("useInheritedChannel")))) {
                    try {
                        handOver(connector, lowered);
                    } catch (Exception e) {
                        log.warn("Could not hand the inherited socket of [" + connector
                                + "] over; Tomcat stops it as usual, and may reset one connection", e);
                    }
                }
            }
        }
    }

    private static void handOver(Connector connector, Map<Connector, Object> lowered)
            throws Exception {
        AbstractEndpoint<?, ?> endpoint = endpointOf(connector);
        if (!endpoint.isRunning() || endpoint.isPaused()) {
            // Never started (a start that failed), or already paused: nothing accepts.
            return;
        }
        LimitLatch latch = (LimitLatch) field(endpoint, "connectionLimitLatch");
        if (latch == null) {
            log.warn("[" + connector + "] has no connection limit (maxConnections=\"-1\"): "
                    + "its inherited socket cannot be handed over; Tomcat stops it as usual");
            return;
        }
        InetSocketAddress address = inheritedAddress();
        if (address == null) {
            return;
        }
        lowered.put(connector, connector.getProperty("maxConnections"));
        connector.setProperty("maxConnections", "0");
        long deadline = System.nanoTime() + WAIT_MILLIS * 1_000_000;
        try (Socket wake = new Socket()) {
            wake.connect(address, (int) WAIT_MILLIS);
            while (!latch.hasQueuedThreads() && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
        }
        if (latch.hasQueuedThreads()) {
            log.info("Handed the inherited socket of [" + connector + "] over: it accepts nothing "
                    + "more, and new connections wait in the socket's backlog");
        } else {
            log.warn("The acceptor of [" + connector + "] did not stop accepting within "
                    + WAIT_MILLIS + " ms; Tomcat stops it as usual, and may reset one connection");
        }
    }

    /** The address of the socket systemd passed on standard input, loopback for a wildcard. */
    private static InetSocketAddress inheritedAddress() throws Exception {
        Channel channel = System.inheritedChannel();
        if (!(channel instanceof ServerSocketChannel)) {
            return null;
        }
        SocketAddress local = ((ServerSocketChannel) channel).getLocalAddress();
        if (!(local instanceof InetSocketAddress)) {
            return null;
        }
        InetSocketAddress inet = (InetSocketAddress) local;
        if (inet.getAddress().isAnyLocalAddress()) {
            return new InetSocketAddress(InetAddress.getLoopbackAddress(), inet.getPort());
        }
        return inet;
    }

    private static AbstractEndpoint<?, ?> endpointOf(Connector connector) throws Exception {
        Object handler = connector.getProtocolHandler();
        for (Class<?> c = handler.getClass(); c != null; c = c.getSuperclass()) {
            try {
                java.lang.reflect.Method m = c.getDeclaredMethod("getEndpoint");
                m.setAccessible(true);
                return (AbstractEndpoint<?, ?>) m.invoke(handler);
            } catch (NoSuchMethodException e) {
                // Declared further up.
            }
        }
        throw new NoSuchMethodException(handler.getClass().getName() + ".getEndpoint()");
    }

    private static Object field(Object target, String name) throws Exception {
        for (Class<?> c = target.getClass(); c != null; c = c.getSuperclass()) {
            try {
                Field f = c.getDeclaredField(name);
                f.setAccessible(true);
                return f.get(target);
            } catch (NoSuchFieldException e) {
                // Declared further up.
            }
        }
        throw new NoSuchFieldException(target.getClass().getName() + "." + name);
    }
}
