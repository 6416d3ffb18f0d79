//! Components on sockets systemd holds: restarts of every kind under a client that asks every
//! 20 ms drop no request; a stopped component refuses connections and stays stopped; a server
//! that does not take its socket, or a probe that cannot see through it, is named at `start`.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};
use serde_json::Value;

use crate::harness::{eventually, signal, Options, Sandbox, STANDIN};

/// A client that asks each target every 20 ms and waits up to 30 s for each answer, as a
/// patient HTTP client behind a load balancer would.
struct Client(Child);

impl Client {
    fn start(targets: &[String]) -> Client {
        let mut cmd = Command::new(STANDIN);
        for t in targets {
            cmd.args(["--client", t]);
        }
        cmd.args(["--every-ms", "20", "--timeout-ms", "30000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        Client(cmd.spawn().expect("spawn the client"))
    }

    /// Stop it and return its report, one JSON object per target.
    fn finish(mut self) -> Vec<Value> {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.0.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the client did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(mut s) = self.0.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn url(sb: &Sandbox, c: Component) -> String {
    let path = if c == Component::Platform {
        "/is/image"
    } else {
        "/"
    };
    format!("http://127.0.0.1:{}{path}", sb.port(c))
}

/// A stack whose three components answer HTTP probes and start slowly, as JVMs do (1.5 s
/// before they accept), with the sockets of `on` switched on before `start`.
fn stack(on: &[Component], extra: Options) -> Sandbox {
    let mut opts = extra;
    for c in Component::ALL {
        opts = opts.arg(c, "--start-delay 1.5");
        if c != Component::Platform {
            opts = opts.service(
                c,
                "Environment=IMAGESERVING_PROBE=http://127.0.0.1:{port}/ IMAGESERVING_PROBE_START_GRACE_SEC=5",
            );
        }
    }
    let sb = Sandbox::with(opts);
    for c in on {
        enable(&sb, c.socket());
    }
    sb.run(&["start"]).code(0);
    sb
}

/// `systemctl enable`, and the reload it does on an operator's host: here systemctl runs
/// outside the manager's mount namespace, sees no /run/systemd/system, and so links the unit
/// itself without asking the manager to reload.
fn enable(sb: &Sandbox, unit: &str) {
    sb.systemctl(&["enable", unit]).code(0);
    sb.reload();
}

/// When the socket unit last started listening (it is not restarted while that stays).
fn socket_since(sb: &Sandbox, c: Component) -> String {
    sb.systemctl(&["show", "-P", "ActiveEnterTimestampMonotonic", c.socket()])
        .code(0)
        .stdout
        .trim()
        .to_owned()
}

/// What happens to the stack while the client runs.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// `ImageServing restart NAME`.
    Restart(Component),
    /// `ImageServing restart`.
    RestartAll,
    /// The component's process is stopped (SIGSTOP): the supervisor must replace it.
    Hang(Component),
}

fn run_event(sb: &Sandbox, event: Event) {
    match event {
        Event::Restart(c) => {
            sb.run(&["restart", c.short_name()]).code(0);
        }
        Event::RestartAll => {
            sb.run(&["restart"]).code(0);
        }
        Event::Hang(c) => {
            let pid = sb.main_pid(c);
            signal(pid, "STOP");
            sb.wait_replaced(c.unit(), pid, Duration::from_secs(20));
            eventually(Duration::from_secs(20), "status all running again", || {
                sb.run(&["status"]).code == 0
            });
        }
    }
}

/// Run `event` under the client with every socket on: no request fails, the sockets keep
/// listening throughout, and each of them was passed to its component.
fn drops_nothing(event: Event, extra: Options) {
    let sb = stack(&Component::ALL, extra);
    let since: Vec<String> = Component::ALL
        .iter()
        .map(|c| socket_since(&sb, *c))
        .collect();
    let targets: Vec<String> = Component::ALL.iter().map(|c| url(&sb, *c)).collect();
    let client = Client::start(&targets);
    std::thread::sleep(Duration::from_millis(500));
    let pids: Vec<u32> = Component::ALL.iter().map(|c| sb.main_pid(*c)).collect();
    run_event(&sb, event);
    std::thread::sleep(Duration::from_millis(500));
    let report = client.finish();
    eprintln!("[{event:?}] {report:?}");
    assert_eq!(report.len(), 3, "{report:?}");
    for (target, c) in report.iter().zip(Component::ALL) {
        assert_eq!(
            target["failures"], 0,
            "{event:?}: {c} failed requests: {target}"
        );
        assert!(target["requests"].as_u64().unwrap_or(0) >= 20, "{target}");
    }
    let replaced: Vec<Component> = Component::ALL
        .iter()
        .zip(&pids)
        .filter(|(c, pid)| sb.main_pid(**c) != **pid)
        .map(|(c, _)| *c)
        .collect();
    let expected: Vec<Component> = match event {
        Event::Restart(c) | Event::Hang(c) => vec![c],
        Event::RestartAll => Component::ALL.to_vec(),
    };
    assert_eq!(
        replaced, expected,
        "{event:?}: which components were replaced"
    );
    for (c, before) in Component::ALL.iter().zip(since) {
        assert_eq!(
            socket_since(&sb, *c),
            before,
            "{event:?}: {} was restarted (its backlog lost)",
            c.socket()
        );
    }
    assert_eq!(sb.alerts(), 0, "{event:?}: {}", sb.alert_log());
    assert_eq!(sb.state(SUPERVISOR).restarts, 0);
}

#[test]
fn restart_ps_on_its_socket_drops_no_request() {
    drops_nothing(Event::Restart(Component::Platform), Options::default());
}

#[test]
fn restart_svg_on_its_socket_drops_no_request() {
    drops_nothing(Event::Restart(Component::Svg), Options::default());
}

#[test]
fn restart_of_the_whole_stack_on_sockets_drops_no_request() {
    drops_nothing(Event::RestartAll, Options::default());
}

#[test]
fn a_hung_svg_behind_its_socket_is_replaced_and_drops_no_request() {
    drops_nothing(
        Event::Hang(Component::Svg),
        Options::default().service(Component::Svg, "Environment=IMAGESERVING_PROBE_FAILURES=2"),
    );
}

/// The memory guard's restart, under the client: svg holds 48 MiB over a 16 MiB limit, so the
/// guard restarts it once its grace is over.
#[test]
fn a_memory_guard_restart_on_its_socket_drops_no_request() {
    let sb = stack(
        &Component::ALL,
        Options::default()
            .arg(Component::Svg, "--hold-mib 48")
            .service(
                Component::Svg,
                "Environment=IMAGESERVING_MEMORY_RESTART=16M IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_START_GRACE_SEC=2",
            ),
    );
    let since = socket_since(&sb, Component::Svg);
    let client = Client::start(&[url(&sb, Component::Svg)]);
    let pid = sb.main_pid(Component::Svg);
    sb.wait_replaced(Component::Svg.unit(), pid, Duration::from_secs(30));
    eventually(Duration::from_secs(20), "svg answering again", || {
        imageserving::probe::check(
            &imageserving::probe::parse_target(&url(&sb, Component::Svg)).unwrap(),
            Duration::from_secs(1),
        )
        .is_ok()
    });
    let report = client.finish();
    eprintln!("[memory guard] {report:?}");
    assert_eq!(report[0]["failures"], 0, "{}", report[0]);
    assert_eq!(socket_since(&sb, Component::Svg), since);
    assert_eq!(sb.alerts(), 0, "{}", sb.alert_log());
}

/// The reference for the figures above: the same `restart svg` without its socket refuses
/// connections while the new process starts (1.5 s here).
#[test]
fn without_its_socket_a_restart_refuses_requests() {
    let sb = stack(&[], Options::default());
    let client = Client::start(&[url(&sb, Component::Svg)]);
    std::thread::sleep(Duration::from_millis(300));
    sb.run(&["restart", "svg"]).code(0);
    let report = client.finish();
    eprintln!("[no socket] {report:?}");
    assert!(
        report[0]["failures"].as_u64().unwrap_or(0) >= 10,
        "a restart without the socket should have refused requests: {}",
        report[0]
    );
}

fn refused(sb: &Sandbox, c: Component) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], sb.port(c))),
        Duration::from_secs(1),
    )
    .is_err()
}

/// `stop NAME` and `stop` stop the sockets too: connections are refused and none starts the
/// component again; `restart NAME` and `start` bring both back.
#[test]
fn a_stopped_component_refuses_connections_and_stays_stopped() {
    let sb = stack(&Component::ALL, Options::default());
    let status: Value =
        serde_json::from_str(&sb.run(&["status", "--json"]).code(0).stdout).unwrap();
    for row in status["components"].as_array().unwrap() {
        assert_eq!(row["socket"]["state"], "listening", "{row}");
        assert!(
            row["socket"]["listen"][0]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{row}"
        );
    }
    let table = sb.run(&["status", "--full"]).code(0).stdout;
    assert!(
        table.contains("SOCKET") && table.contains("listening 127.0.0.1:"),
        "{table}"
    );

    sb.run(&["stop", "svg"]).code(0);
    assert_eq!(
        sb.systemctl(&["is-active", Component::Svg.socket()])
            .stdout
            .trim(),
        "inactive"
    );
    for _ in 0..5 {
        assert!(
            refused(&sb, Component::Svg),
            "a stopped svg accepted a connection"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        sb.systemctl(&["is-active", Component::Svg.unit()])
            .stdout
            .trim(),
        "inactive"
    );
    let row = sb.run(&["status", "svg"]).code(3).stdout;
    assert!(row.contains("stopped"), "{row}");
    // Switched on and stopped with its component: read from the unit file's enablement.
    let doc: Value =
        serde_json::from_str(&sb.run(&["status", "--json", "svg"]).code(3).stdout).unwrap();
    assert_eq!(doc["components"][0]["socket"]["state"], "stopped", "{doc}");
    assert_eq!(
        doc["components"][0]["socket"]["unit"],
        Component::Svg.socket(),
        "{doc}"
    );
    assert!(
        !refused(&sb, Component::Platform),
        "ps lost its socket with svg's stop"
    );

    sb.run(&["restart", "svg"]).code(0);
    assert_eq!(
        sb.systemctl(&["is-active", Component::Svg.socket()])
            .stdout
            .trim(),
        "active"
    );

    sb.run(&["stop"]).code(0);
    for c in Component::ALL {
        assert!(refused(&sb, c), "{c} accepted a connection after stop");
        assert_eq!(
            sb.systemctl(&["is-active", c.socket()]).stdout.trim(),
            "inactive"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    for c in Component::ALL {
        assert_eq!(
            sb.systemctl(&["is-active", c.unit()]).stdout.trim(),
            "inactive",
            "{c}"
        );
    }
    sb.run(&["start"]).code(0);
    for c in Component::ALL {
        assert_eq!(
            sb.systemctl(&["is-active", c.socket()]).stdout.trim(),
            "active",
            "{c}"
        );
    }
    assert_eq!(sb.alerts(), 0, "{}", sb.alert_log());
}

/// Switching a running component to its socket: `systemctl enable` then `restart NAME`.
#[test]
fn enabling_a_socket_then_restarting_the_component_switches_it() {
    let sb = stack(&[], Options::default());
    enable(&sb, Component::Svg.socket());
    let out = sb.run(&["restart", "svg"]).code(0).stdout;
    assert_eq!(
        sb.systemctl(&["is-active", Component::Svg.socket()])
            .stdout
            .trim(),
        "active"
    );
    // The new process took it: a restart now drops nothing.
    let since = socket_since(&sb, Component::Svg);
    let client = Client::start(&[url(&sb, Component::Svg)]);
    sb.run(&["restart", "svg"]).code(0);
    let report = client.finish();
    assert_eq!(report[0]["failures"], 0, "{out:?} {}", report[0]);
    assert_eq!(socket_since(&sb, Component::Svg), since);
}

/// A server that does not take its socket binds the port itself, fails and serves nothing:
/// `start` fails naming it and the socket, within its allowance.
#[test]
fn a_server_that_does_not_take_its_socket_is_named_at_start() {
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Svg, "--ignore-inherited --stay-on-bind-error")
            .service(
                Component::Svg,
                "Environment=IMAGESERVING_PROBE=http://127.0.0.1:{port}/ IMAGESERVING_PROBE_START_GRACE_SEC=2 IMAGESERVING_PROBE_FAILURES=2",
            ),
    );
    enable(&sb, Component::Svg.socket());
    let t = Instant::now();
    let r = sb.run(&["start"]).code(1).stderr_one_line();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(r.stderr.contains("svg"), "{}", r.stderr);
    assert!(r.stderr.contains(Component::Svg.socket()), "{}", r.stderr);
    assert!(r.stderr.contains("did not take"), "{}", r.stderr);
}

/// A TCP probe cannot see through a held port: `start` and `restart NAME` refuse before
/// anything changes, naming the key and what to use.
#[test]
fn a_tcp_probe_behind_a_socket_is_refused_before_anything_changes() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let pid = sb.main_pid(Component::Svg);
    enable(&sb, Component::Svg.socket());
    for args in [&["restart", "svg"][..], &["start"][..], &["restart"][..]] {
        let r = sb.run(args).code(1).stderr_one_line();
        assert!(
            r.stderr.contains("IMAGESERVING_PROBE") && r.stderr.contains("http://"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(sb.main_pid(Component::Svg), pid, "svg was touched");
    assert_eq!(
        sb.systemctl(&["is-active", Component::Svg.socket()])
            .stdout
            .trim(),
        "inactive"
    );
}

/// What svg is left in, its socket on, before the next command.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Left {
    /// `stop svg` (its socket stopped with it).
    Stopped,
    /// Its program crashed until systemd gave up (which fails its socket too:
    /// `service-start-limit-hit`), and the operator has since fixed it.
    GivenUp,
    /// Stopped and masked for maintenance.
    Masked,
}

/// A command, and what it must leave whatever the state: (exit code, svg serving).
type Then = (&'static [&'static str], Option<(i32, bool)>);

/// The commands that meet it.
const THEN: &[Then] = &[
    (&["start"], None),
    (&["start", "svg"], None),
    (&["restart", "svg"], None),
    (&["restart"], None),
    (&["stop"], Some((0, false))),
    (&["stop", "svg"], Some((0, false))),
];

fn leave(sb: &Sandbox, left: Left) {
    match left {
        Left::Stopped => {
            sb.run(&["stop", "svg"]).code(0);
        }
        Left::Masked => {
            sb.run(&["stop", "svg"]).code(0);
            sb.mask(Component::Svg.unit());
        }
        Left::GivenUp => {
            sb.dropin(
                Component::Svg.unit(),
                "70-crash",
                "[Service]\nExecStart=\nExecStart=/bin/sh -c 'sleep 0.3; exit 1'\nRestartSec=100ms\n",
            );
            sb.reload();
            sb.systemctl(&["restart", Component::Svg.unit()]);
            eventually(Duration::from_secs(20), "svg given up", || {
                sb.state(Component::Svg.unit()).gave_up()
            });
            let _ = std::fs::remove_file(
                sb.root
                    .join("config/systemd/user")
                    .join(format!("{}.d/70-crash.conf", Component::Svg.unit())),
            );
            sb.reload();
        }
    }
}

/// A unit's `ActiveState`, as systemctl shows it.
fn active_state(sb: &Sandbox, unit: &str) -> String {
    sb.systemctl(&["show", "-P", "ActiveState", unit])
        .code(0)
        .stdout
        .trim()
        .to_owned()
}

/// From each state svg can be left in with its socket on, each command: its exit code, and
/// svg and its socket both serving, or both down with the port refusing connections (a
/// masked svg: every start refused with exit 5, nothing changed).
fn sockets_from(left: Left) {
    for (args, expected) in THEN {
        let sb = stack(&[Component::Svg], Options::default());
        leave(&sb, left);
        let socket_before = active_state(&sb, Component::Svg.socket());
        let (code, serving) = match (left, expected) {
            (_, Some(e)) => *e,
            (Left::Masked, None) => (5, false),
            (_, None) => (0, true),
        };
        let r = sb.run(args);
        let case = format!("{left:?} svg, then {}", args.join(" "));
        assert_eq!(r.code, code, "{case}: {}", r.stderr);
        let (svg, socket) = (
            active_state(&sb, Component::Svg.unit()),
            active_state(&sb, Component::Svg.socket()),
        );
        if serving {
            assert!(
                svg == "active" && socket == "active",
                "{case}: svg {svg}, socket {socket}"
            );
            assert!(!refused(&sb, Component::Svg), "{case}: svg refuses");
        } else {
            assert!(
                svg != "active" && socket != "active",
                "{case}: svg {svg}, socket {socket}"
            );
            assert!(refused(&sb, Component::Svg), "{case}: svg's port accepts");
            if code == 5 {
                assert_eq!(socket, socket_before, "{case}: the socket changed");
            }
        }
        // The others serve whatever happened to svg, unless the command stopped them.
        let others_up = *args != ["stop"];
        for c in [Component::Platform, Component::Image] {
            assert_eq!(
                active_state(&sb, c.unit()) == "active",
                others_up,
                "{case}: {c}"
            );
        }
    }
}

#[test]
fn sockets_from_a_stopped_component() {
    sockets_from(Left::Stopped);
}

#[test]
fn sockets_from_a_component_systemd_gave_up_on() {
    sockets_from(Left::GivenUp);
}

#[test]
fn sockets_from_a_masked_component() {
    sockets_from(Left::Masked);
}
