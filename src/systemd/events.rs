//! Job and unit signals, as a blocking iterator of [`Event`]s.

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
}

/// Signals from the manager, received from the moment this was created.
pub struct Events {
    iter: MessageIterator,
    scope: Scope,
}

impl Events {
    pub(super) fn new(
        conn: &Connection,
        scope: Scope,
        unit_paths: &[&str],
    ) -> Result<Events, SystemdError> {
        // The iterator exists before the match rules and the subscription, so nothing sent
        // after them can be missed.
        let iter = MessageIterator::from(conn);
        let call_err = |method| move |e: zbus::Error| SystemdError::from_call(scope, method, e);
        let dbus = DBusProxy::new(conn).map_err(call_err("AddMatch"))?;
        let mut rules = vec![MatchRule::builder()
            .msg_type(MessageType::Signal)
            .sender(DESTINATION)
            .and_then(|b| b.interface(MANAGER_IFACE))
            .and_then(|b| b.member("JobRemoved"))
            .map(|b| b.build())
            .map_err(call_err("AddMatch"))?];
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
        conn.call_method(
            Some(DESTINATION),
            MANAGER_PATH,
            Some(MANAGER_IFACE),
            "Subscribe",
            &(),
        )
        .map_err(call_err("Subscribe"))?;
        Ok(Events { iter, scope })
    }

    /// Block until the next relevant signal.
    pub fn next_event(&mut self) -> Result<Event, SystemdError> {
        loop {
            let msg = match self.iter.next() {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(SystemdError::from_call(self.scope, "signal", e)),
                None => {
                    return Err(SystemdError::Unreachable {
                        scope: self.scope,
                        address: self.scope.bus_address(),
                        reason: "the bus connection closed".to_owned(),
                    })
                }
            };
            let header = msg.header();
            if header.message_type() != MessageType::Signal {
                continue;
            }
            let (Some(iface), Some(member)) = (header.interface(), header.member()) else {
                continue;
            };
            match (iface.as_str(), member.as_str()) {
                (MANAGER_IFACE, "JobRemoved") => {
                    if let Ok((_id, job, unit, result)) =
                        msg.body()
                            .deserialize::<(u32, OwnedObjectPath, String, String)>()
                    {
                        return Ok(Event::JobRemoved { job, unit, result });
                    }
                }
                (PROPERTIES_IFACE, "PropertiesChanged") => {
                    if let Some(path) = header.path() {
                        return Ok(Event::UnitChanged {
                            path: path.to_owned().into(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
}
