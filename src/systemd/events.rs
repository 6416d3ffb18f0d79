//! Job and unit signals, read by a thread of their own and handed over as [`Event`]s.

use std::sync::mpsc::{self, Receiver};

use zbus::blocking::{fdo::DBusProxy, Connection, MessageIterator};
use zbus::message::Type as MessageType;
use zbus::zvariant::OwnedObjectPath;
use zbus::MatchRule;

use super::{Scope, SystemdError, DESTINATION, MANAGER_IFACE, MANAGER_PATH, PROPERTIES_IFACE};

/// A signal from the manager that matters to someone waiting on jobs and units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job finished: `result` is `done`, `canceled`, `timeout`, `failed`, `dependency` or
    /// `skipped`.
    JobRemoved {
        /// The job's object path.
        job: OwnedObjectPath,
        /// The unit the job was for.
        unit: String,
        /// How it ended.
        result: String,
    },
    /// Some property of the unit at this path changed: re-read what you need.
    UnitChanged {
        /// The unit's object path.
        path: OwnedObjectPath,
    },
    /// The manager finished re-reading its unit files (`daemon-reload`): settings from unit
    /// files and drop-ins may have changed.
    Reloaded,
}

/// Signals from the manager, received from the moment this was created.
///
/// A thread reads the connection's messages and forwards the relevant signals. It must: zbus
/// stops reading the socket while any message stream of the connection is full, so a stream
/// that is read only between other calls (whose replies also land in it) would, after a few
/// hundred messages, stop the whole connection.
pub struct Events {
    rx: Receiver<Result<Event, SystemdError>>,
    scope: Scope,
}

impl Events {
    pub(super) fn new(
        conn: &Connection,
        scope: Scope,
        unit_paths: &[&str],
    ) -> Result<Events, SystemdError> {
        let (tx, rx) = mpsc::channel();
        forward(conn, scope, unit_paths, move |e| tx.send(e).is_ok())?;
        Ok(Events { rx, scope })
    }

    /// The next relevant signal, waiting at most `timeout`; `None` when none came.
    pub fn next_event_within(
        &self,
        timeout: std::time::Duration,
    ) -> Option<Result<Event, SystemdError>> {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => Some(e),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(SystemdError::Unreachable {
                scope: self.scope,
                address: self.scope.bus_address(),
                reason: "the signal reader stopped".to_owned(),
            })),
        }
    }

    /// Block until the next relevant signal.
    pub fn next_event(&self) -> Result<Event, SystemdError> {
        self.rx.recv().unwrap_or_else(|_| {
            Err(SystemdError::Unreachable {
                scope: self.scope,
                address: self.scope.bus_address(),
                reason: "the signal reader stopped".to_owned(),
            })
        })
    }
}

/// Register for job and unit signals about `unit_paths`, then hand each to `sink` from a
/// thread of its own until `sink` returns `false` or the connection fails (the error is the
/// last thing handed over).
pub(super) fn forward(
    conn: &Connection,
    scope: Scope,
    unit_paths: &[&str],
    mut sink: impl FnMut(Result<Event, SystemdError>) -> bool + Send + 'static,
) -> Result<(), SystemdError> {
    // The iterator exists before the match rules and the subscription, so nothing sent
    // after them can be missed.
    let mut iter = MessageIterator::from(conn);
    let call_err = |method| move |e: zbus::Error| SystemdError::from_call(scope, method, e);
    let dbus = DBusProxy::new(conn).map_err(call_err("AddMatch"))?;
    let manager_signal = |member| {
        MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(DESTINATION)
            .and_then(|b| b.interface(MANAGER_IFACE))
            .and_then(|b| b.member(member))
            .map(|b| b.build())
            .map_err(call_err("AddMatch"))
    };
    let mut rules = vec![manager_signal("JobRemoved")?, manager_signal("Reloading")?];
    for path in unit_paths {
        rules.push(
            MatchRule::builder()
                .msg_type(MessageType::Signal)
                .sender(DESTINATION)
                .and_then(|b| b.path(*path))
                .and_then(|b| b.interface(PROPERTIES_IFACE))
                .and_then(|b| b.member("PropertiesChanged"))
                .map(|b| b.build())
                .map_err(call_err("AddMatch"))?,
        );
    }
    for rule in rules {
        dbus.add_match_rule(rule)
            .map_err(|e| SystemdError::from_call(scope, "AddMatch", e.into()))?;
    }
    // A second wait on the same connection (a command that waits for several jobs in
    // turn) finds it subscribed already: that is what it asks for.
    match conn.call_method(
        Some(DESTINATION),
        MANAGER_PATH,
        Some(MANAGER_IFACE),
        "Subscribe",
        &(),
    ) {
        Ok(_) => {}
        Err(zbus::Error::MethodError(name, ..))
            if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" => {}
        Err(e) => return Err(call_err("Subscribe")(e)),
    }
    std::thread::Builder::new()
        .name("systemd-signals".into())
        .stack_size(256 * 1024)
        .spawn(move || loop {
            let event = match iter.next() {
                Some(Ok(msg)) => match to_event(&msg) {
                    Some(e) => Ok(e),
                    None => continue,
                },
                Some(Err(e)) => Err(SystemdError::from_call(scope, "signal", e)),
                None => Err(SystemdError::Unreachable {
                    scope,
                    address: scope.bus_address(),
                    reason: "the bus connection closed".to_owned(),
                }),
            };
            let last = event.is_err();
            if !sink(event) || last {
                return;
            }
        })
        .map_err(|e| SystemdError::Call {
            scope,
            method: "Subscribe",
            detail: format!("cannot start the signal reader: {e}"),
        })?;
    Ok(())
}

fn to_event(msg: &zbus::Message) -> Option<Event> {
    let header = msg.header();
    if header.message_type() != MessageType::Signal {
        return None;
    }
    match (header.interface()?.as_str(), header.member()?.as_str()) {
        (MANAGER_IFACE, "JobRemoved") => {
            let (_id, job, unit, result) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
                .ok()?;
            Some(Event::JobRemoved { job, unit, result })
        }
        // Reloading(true) is sent before a reload, Reloading(false) after it.
        (MANAGER_IFACE, "Reloading") => match msg.body().deserialize::<bool>() {
            Ok(false) => Some(Event::Reloaded),
            _ => None,
        },
        (PROPERTIES_IFACE, "PropertiesChanged") => Some(Event::UnitChanged {
            path: header.path()?.to_owned().into(),
        }),
        _ => None,
    }
}
