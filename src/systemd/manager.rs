//! [`Manager`]: one connection to a service manager, its calls, and the pipelined reads. One
//! type, kept whole: the connection's bounded waits, the calls that need them and the
//! pipelining that makes `status` one round trip belong together.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use zbus::message::{Message, Type as MessageType};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

use super::{
    drive, events, unit_path, Event, Events, RawUnitInfo, Scope, ServiceState, SocketState,
    SystemdError, UnitInfo, DESTINATION, MANAGER_IFACE, MANAGER_PATH, PROPERTIES_IFACE,
    SERVICE_IFACE, SOCKET_IFACE, UNIT_IFACE,
};

/// How long one call may wait for its answer unless the caller says otherwise: D-Bus's own
/// default, which `systemctl` uses too.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// A connection to one service manager.
pub struct Manager {
    conn: Connection,
    scope: Scope,
    address: String,
    /// The longest any one call (or the connection's set-up) waits for an answer.
    timeout: Duration,
    /// Whether job calls may make polkit ask the user (see [`Manager::allow_interactive_auth`]).
    interactive: bool,
    /// Whether a thread reads the connection in the background (see the module's docs).
    reader: AtomicBool,
}

/// What [`Manager::units_with_properties`] answers.
#[derive(Debug)]
pub struct UnitsWithProperties {
    /// One row per unit asked for by name, in the order asked.
    pub units: Vec<UnitInfo>,
    /// Per unit asked for only if loaded, in the order asked: its row, or `None`.
    pub loaded: Vec<Option<UnitInfo>>,
    /// The properties, unit by unit.
    pub values: Vec<Option<OwnedValue>>,
}

/// What [`Manager::get_many_and_file_states`] answers.
#[derive(Debug, Default)]
pub struct ReadsAndFileStates {
    /// The properties, in the order asked.
    pub values: Vec<Option<OwnedValue>>,
    /// The unit files' enablement, in the order asked.
    pub file_states: Vec<Option<String>>,
}

/// One property to fetch with [`Manager::get_many`].
#[derive(Debug, Clone, Copy)]
pub struct PropertyRequest<'a> {
    /// The object (a unit path).
    pub path: &'a str,
    /// `Unit` or `Service` interface.
    pub interface: PropertyInterface,
    /// The property name, e.g. `MainPID`.
    pub name: &'a str,
}

/// The two unit interfaces we read properties from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyInterface {
    /// `org.freedesktop.systemd1.Unit`
    Unit,
    /// `org.freedesktop.systemd1.Service`
    Service,
    /// `org.freedesktop.systemd1.Socket`
    Socket,
}

impl PropertyInterface {
    fn name(self) -> &'static str {
        match self {
            PropertyInterface::Unit => UNIT_IFACE,
            PropertyInterface::Service => SERVICE_IFACE,
            PropertyInterface::Socket => SOCKET_IFACE,
        }
    }
}

impl Manager {
    /// Connect to the bus of `scope`'s manager; every call waits at most
    /// [`DEFAULT_CALL_TIMEOUT`].
    pub fn connect(scope: Scope) -> Result<Manager, SystemdError> {
        Manager::connect_within(scope, scope.bus_address(), DEFAULT_CALL_TIMEOUT)
    }

    /// Connect to the manager of `scope` on the bus at `address` (a D-Bus address string),
    /// with every wait on the bus (connecting, authenticating,
    /// each call) bounded by `timeout`: a stopped dbus-daemon or PID 1 gives
    /// [`SystemdError::NoAnswer`] instead of a hang.
    pub fn connect_within(
        scope: Scope,
        address: String,
        timeout: Duration,
    ) -> Result<Manager, SystemdError> {
        let unreachable = |source: zbus::Error| SystemdError::from_connect(scope, &address, source);
        // zbus's default queue depth (64) is kept: every message stream is drained by a
        // reader (see `Events`), so depth buys nothing, and in the supervisor every slot of
        // the ring would end up resident.
        let builder = match drive::plain_unix_path(&address) {
            // The usual case (both buses' defaults): connect here, on this thread, rather
            // than through zbus's address resolution, which connects from a helper thread.
            Some(path) => std::os::unix::net::UnixStream::connect(path)
                .map(zbus::conn::Builder::async_io_unix_stream)
                .map_err(|e| unreachable(e.into()))?,
            None => zbus::conn::Builder::address(address.as_str()).map_err(unreachable)?,
        };
        // No executor thread: whoever waits on the connection drives it (`Manager::wait`).
        // The method timeout bounds the calls made through the blocking API (signal
        // subscriptions); `wait` bounds the rest.
        let build = builder
            .internal_executor(false)
            .method_timeout(timeout)
            .build();
        let conn = zbus::block_on(drive::within(timeout, build))
            .ok_or(SystemdError::NoAnswer {
                scope,
                bus: true,
                after: timeout,
            })?
            .map_err(unreachable)?;
        Ok(Manager {
            conn,
            scope,
            address,
            timeout,
            interactive: false,
            reader: AtomicBool::new(false),
        })
    }

    /// Run `fut` to completion on this thread, driving the connection meanwhile, for at most
    /// the manager's timeout.
    fn wait<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, SystemdError> {
        zbus::block_on(drive::within(
            self.timeout,
            drive::with_executor(self.conn.executor(), fut),
        ))
        .ok_or(SystemdError::NoAnswer {
            scope: self.scope,
            bus: false,
            after: self.timeout,
        })
    }

    /// A blocking view of the connection whose reads go on while nobody calls: starts (once)
    /// the thread that drives it in the background.
    fn background(&self) -> Result<zbus::blocking::Connection, SystemdError> {
        if !self.reader.swap(true, Ordering::AcqRel) {
            drive::spawn_driver(self.conn.executor().clone()).map_err(|e| {
                self.reader.store(false, Ordering::Release);
                SystemdError::Call {
                    scope: self.scope,
                    method: "Subscribe",
                    detail: format!("cannot start the connection's reader thread: {e}"),
                }
            })?;
        }
        Ok(zbus::blocking::Connection::from(self.conn.clone()))
    }

    /// The scope this manager was reached for.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The bus address in use, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Let the calls that change units (start, stop, restart, reset-failed) carry D-Bus's
    /// `ALLOW_INTERACTIVE_AUTHORIZATION` flag, as `systemctl` does on a terminal: polkit then
    /// asks the user, through the agent the caller runs, instead of refusing. A person types
    /// a password meanwhile, so calls may then wait up to `timeout`.
    pub fn allow_interactive_auth(&mut self, timeout: Duration) {
        self.interactive = true;
        self.timeout = self.timeout.max(timeout);
    }

    /// A call that changes units: with the interactive flag when allowed.
    fn job_call<B, R>(&self, method: &'static str, body: &B) -> Result<R, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        if !self.interactive {
            return self.manager_call(method, body);
        }
        let msg = Message::method_call(MANAGER_PATH, method)
            .and_then(|b| b.destination(DESTINATION))
            .and_then(|b| b.interface(MANAGER_IFACE))
            .and_then(|b| b.with_flags(zbus::message::Flags::AllowInteractiveAuth))
            .and_then(|b| b.build(body))
            .map_err(|e| SystemdError::from_call(self.scope, method, e))?;
        let reply = self.pipeline(&[(msg, method)])?.pop().unwrap_or_else(|| {
            Err(SystemdError::Call {
                scope: self.scope,
                method,
                detail: "no reply".into(),
            })
        })?;
        reply
            .body()
            .deserialize::<R>()
            .map_err(|e| SystemdError::from_call(self.scope, method, e))
    }

    fn manager_call<B, R>(&self, method: &'static str, body: &B) -> Result<R, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        let reply = self
            .wait(self.conn.call_method(
                Some(DESTINATION),
                MANAGER_PATH,
                Some(MANAGER_IFACE),
                method,
                body,
            ))?
            .map_err(|e| SystemdError::from_call(self.scope, method, e))?;
        reply
            .body()
            .deserialize::<R>()
            .map_err(|e| SystemdError::from_call(self.scope, method, e))
    }

    /// Make the manager re-read unit files (`systemctl daemon-reload`); returns once done.
    pub fn reload(&self) -> Result<(), SystemdError> {
        self.manager_call::<_, ()>("Reload", &())
    }

    /// Load `unit` (reading its file if needed) and return its object path and load state.
    pub fn load_unit(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        self.manager_call("LoadUnit", &(unit,))
    }

    /// Name, states and object path of each unit in `names`, in one call.
    pub fn list_units_by_names(&self, names: &[&str]) -> Result<Vec<UnitInfo>, SystemdError> {
        let raw: Vec<RawUnitInfo> = self.manager_call("ListUnitsByNames", &(names,))?;
        Ok(raw.into_iter().map(UnitInfo::from_wire).collect())
    }

    /// Enqueue a start job (`mode` as in `systemctl --job-mode`) and return the job's path.
    pub fn start_unit(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        self.job_call("StartUnit", &(unit, "replace"))
    }

    /// Enqueue a stop job.
    pub fn stop_unit(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        self.job_call("StopUnit", &(unit, "replace"))
    }

    /// Enqueue a restart job.
    pub fn restart_unit(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        self.job_call("RestartUnit", &(unit, "replace"))
    }

    /// Enqueue a restart job only if the unit runs (`systemctl try-restart`): systemd itself
    /// decides, at the moment it takes the call, so a unit stopped or given up meanwhile is
    /// left down.
    pub fn try_restart_unit(&self, unit: &str) -> Result<OwnedObjectPath, SystemdError> {
        self.job_call("TryRestartUnit", &(unit, "replace"))
    }

    /// Clear a unit's failed state and its start-limit counter (`systemctl reset-failed`).
    pub fn reset_failed_unit(&self, unit: &str) -> Result<(), SystemdError> {
        match self.job_call::<_, ()>("ResetFailedUnit", &(unit,)) {
            // A unit that is not loaded has nothing to reset.
            Err(SystemdError::NoSuchUnit { .. }) => Ok(()),
            other => other,
        }
    }

    /// PIDs in the unit's cgroup (`GetUnitProcesses`): (cgroup path, pid, command line).
    pub fn unit_processes(&self, unit: &str) -> Result<Vec<(String, u32, String)>, SystemdError> {
        match self.manager_call("GetUnitProcesses", &(unit,)) {
            // An inactive unit has no cgroup: that is "no processes", not a failure.
            Err(SystemdError::NoSuchUnit { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Send every message, then collect every reply: one round trip for all of them. Each
    /// answer is the reply or that call's own error; bus-level failures fail the whole batch.
    fn pipeline(
        &self,
        calls: &[(Message, &'static str)],
    ) -> Result<Vec<Result<Message, SystemdError>>, SystemdError> {
        self.wait(self.pipeline_async(calls))?
    }

    async fn pipeline_async(
        &self,
        calls: &[(Message, &'static str)],
    ) -> Result<Vec<Result<Message, SystemdError>>, SystemdError> {
        // The stream exists before the first request is written, so no reply can be missed.
        let mut replies = zbus::MessageStream::from(&self.conn);
        let mut serials: HashMap<NonZeroU32, usize> = HashMap::with_capacity(calls.len());
        for (i, (msg, method)) in calls.iter().enumerate() {
            serials.insert(msg.primary_header().serial_num(), i);
            self.conn
                .send(msg)
                .await
                .map_err(|e| SystemdError::from_call(self.scope, method, e))?;
        }
        let mut out: Vec<Option<Result<Message, SystemdError>>> =
            (0..calls.len()).map(|_| None).collect();
        let mut pending = calls.len();
        while pending > 0 {
            let msg = match drive::next(&mut replies).await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(SystemdError::from_call(self.scope, "reply", e)),
                None => {
                    return Err(SystemdError::Unreachable {
                        scope: self.scope,
                        address: self.address.clone(),
                        reason: "the bus connection closed".to_owned(),
                    })
                }
            };
            let header = msg.header();
            let Some(idx) = header.reply_serial().and_then(|s| serials.remove(&s)) else {
                continue;
            };
            pending -= 1;
            let (Some((_, method)), Some(slot)) = (calls.get(idx), out.get_mut(idx)) else {
                continue;
            };
            let method = *method;
            *slot = Some(match header.message_type() {
                MessageType::MethodReturn => Ok(msg.clone()),
                _ => {
                    let mapped =
                        SystemdError::from_call(self.scope, method, zbus::Error::from(msg.clone()));
                    if mapped.is_fatal_for_reads() {
                        return Err(mapped);
                    }
                    Err(mapped)
                }
            });
        }
        Ok(out
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(SystemdError::Call {
                        scope: self.scope,
                        method: "reply",
                        detail: "no reply".into(),
                    })
                })
            })
            .collect())
    }

    /// A call of the manager's own `method`, to send with [`Manager::pipeline`].
    fn manager_message<B>(
        &self,
        method: &'static str,
        body: &B,
    ) -> Result<(Message, &'static str), SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        Message::method_call(MANAGER_PATH, method)
            .and_then(|b| b.destination(DESTINATION))
            .and_then(|b| b.interface(MANAGER_IFACE))
            .and_then(|b| b.build(body))
            .map(|m| (m, method))
            .map_err(|e| SystemdError::from_call(self.scope, method, e))
    }

    fn get_call(&self, req: &PropertyRequest<'_>) -> Result<(Message, &'static str), SystemdError> {
        Message::method_call(req.path, "Get")
            .and_then(|b| b.destination(DESTINATION))
            .and_then(|b| b.interface(PROPERTIES_IFACE))
            .and_then(|b| b.build(&(req.interface.name(), req.name)))
            .map(|m| (m, "Get"))
            .map_err(|e| SystemdError::from_call(self.scope, "Get", e))
    }

    fn value_of(reply: Result<Message, SystemdError>) -> Option<OwnedValue> {
        let msg = reply.ok()?;
        let body = msg.body();
        let value: zbus::zvariant::Value<'_> = body.deserialize().ok()?;
        value.try_into_owned().ok()
    }

    /// Fetch several properties in one round trip. Each answer is `None` when that property
    /// could not be read (e.g. the object went away), so one missing value does not void the
    /// others.
    pub fn get_many(
        &self,
        requests: &[PropertyRequest<'_>],
    ) -> Result<Vec<Option<OwnedValue>>, SystemdError> {
        Ok(self.get_many_and_file_states(requests, &[])?.values)
    }

    /// In one round trip: `ListUnitsByNames(names)` (loading what is not loaded), the service
    /// properties `props` of each unit of `names` (`names.len() * props.len()` values, unit by
    /// unit), and the units of `loaded` that systemd holds in memory, by
    /// `ListUnitsByPatterns`, which loads nothing: each is `None` when not loaded. The Gets go
    /// to the units' well-known object paths; the manager answers in order, so the list call
    /// has loaded every unit before the first Get arrives.
    ///
    /// Loading a unit only to look at it is not free for others: systemd announces it
    /// (`UnitNew`), changes the units it names (a socket's service gains `TriggeredBy`), and
    /// drops it again at its next garbage collection, so every client watching the stack (the
    /// supervisor, `status --follow`) is woken twice. Units that matter only when in use are
    /// asked for in `loaded`.
    pub fn units_with_properties(
        &self,
        names: &[&str],
        loaded: &[&str],
        props: &[&str],
    ) -> Result<UnitsWithProperties, SystemdError> {
        let mut calls = vec![self.manager_message("ListUnitsByNames", &(names,))?];
        if !loaded.is_empty() {
            let no_states: &[&str] = &[];
            calls.push(self.manager_message("ListUnitsByPatterns", &(no_states, loaded))?);
        }
        let paths: Vec<String> = names.iter().map(|n| unit_path(n)).collect();
        for path in &paths {
            for name in props {
                calls.push(self.get_call(&PropertyRequest {
                    path,
                    interface: PropertyInterface::Service,
                    name,
                })?);
            }
        }
        let mut replies = self.pipeline(&calls)?.into_iter();
        let units = self.unit_list(replies.next(), "ListUnitsByNames")?;
        let in_memory = if loaded.is_empty() {
            Vec::new()
        } else {
            self.unit_list(replies.next(), "ListUnitsByPatterns")?
        };
        let loaded = loaded
            .iter()
            .map(|want| in_memory.iter().find(|i| i.name == *want).cloned())
            .collect();
        Ok(UnitsWithProperties {
            units,
            loaded,
            values: replies.map(Manager::value_of).collect(),
        })
    }

    /// The rows of one `ListUnitsBy*` reply.
    fn unit_list(
        &self,
        reply: Option<Result<Message, SystemdError>>,
        method: &'static str,
    ) -> Result<Vec<UnitInfo>, SystemdError> {
        let reply = reply.ok_or_else(|| SystemdError::Call {
            scope: self.scope,
            method,
            detail: "no reply".into(),
        })??;
        let raw: Vec<RawUnitInfo> = reply
            .body()
            .deserialize()
            .map_err(|e| SystemdError::from_call(self.scope, method, e))?;
        Ok(raw.into_iter().map(UnitInfo::from_wire).collect())
    }

    /// [`Manager::get_many`] and, in the same round trip, the enablement of each unit file in
    /// `files` (`enabled`, `disabled`, `masked`, …, as `systemctl is-enabled` prints it), read
    /// from disk without loading the unit; `None` where there is no such file or no answer.
    pub fn get_many_and_file_states(
        &self,
        requests: &[PropertyRequest<'_>],
        files: &[&str],
    ) -> Result<ReadsAndFileStates, SystemdError> {
        let mut calls = requests
            .iter()
            .map(|r| self.get_call(r))
            .collect::<Result<Vec<_>, _>>()?;
        for file in files {
            calls.push(self.manager_message("GetUnitFileState", &(file,))?);
        }
        let mut replies = self.pipeline(&calls)?;
        let states = replies
            .split_off(requests.len().min(replies.len()))
            .into_iter()
            .map(|r| r.ok()?.body().deserialize::<String>().ok())
            .collect();
        Ok(ReadsAndFileStates {
            values: replies.into_iter().map(Manager::value_of).collect(),
            file_states: states,
        })
    }

    /// The states of one service unit that explain why it is (not) running.
    pub fn service_state(&self, path: &str) -> Result<ServiceState, SystemdError> {
        let names = ServiceState::PROPERTIES;
        let requests: Vec<_> = names
            .iter()
            .map(|(iface, name)| PropertyRequest {
                path,
                interface: *iface,
                name,
            })
            .collect();
        let values = self.get_many(&requests)?;
        Ok(ServiceState::from_values(values))
    }

    /// The unit's start rate limit: `StartLimitBurst=` and `StartLimitIntervalSec=` (µs; 0
    /// when off).
    pub fn start_limit(&self, path: &str) -> Result<(u32, u64), SystemdError> {
        let values = self.get_many(&[
            PropertyRequest {
                path,
                interface: PropertyInterface::Unit,
                name: "StartLimitBurst",
            },
            PropertyRequest {
                path,
                interface: PropertyInterface::Unit,
                name: "StartLimitIntervalUSec",
            },
        ])?;
        let mut v = values.into_iter();
        let burst = v
            .next()
            .flatten()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(5);
        let interval = v
            .next()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(10_000_000);
        Ok((burst, interval))
    }

    /// The socket units `names` (loaded if need be), what each listens on, and whether
    /// `target` wants it; two round trips.
    pub fn sockets(&self, names: &[&str], target: &str) -> Result<Vec<SocketState>, SystemdError> {
        let infos = self.list_units_by_names(names)?;
        let target_path = unit_path(target);
        let mut requests: Vec<PropertyRequest<'_>> = infos
            .iter()
            .map(|i| PropertyRequest {
                path: i.path.as_str(),
                interface: PropertyInterface::Socket,
                name: "Listen",
            })
            .collect();
        requests.push(PropertyRequest {
            path: &target_path,
            interface: PropertyInterface::Unit,
            name: "Wants",
        });
        let mut values = self.get_many(&requests)?;
        let wants: Vec<String> = values
            .pop()
            .flatten()
            .and_then(|v| Vec::<String>::try_from(v).ok())
            .unwrap_or_default();
        Ok(infos
            .into_iter()
            .zip(values)
            .map(|(info, listen)| {
                let listen = listen
                    .and_then(|v| Vec::<(String, String)>::try_from(v).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_kind, address)| address)
                    .collect();
                SocketState {
                    wanted: wants.contains(&info.name),
                    info,
                    listen,
                }
            })
            .collect())
    }

    /// The unit's `Environment=` assignments (`KEY=VALUE`), drop-ins applied.
    pub fn unit_environment(&self, path: &str) -> Result<Vec<String>, SystemdError> {
        let values = self.get_many(&[PropertyRequest {
            path,
            interface: PropertyInterface::Service,
            name: "Environment",
        }])?;
        Ok(values
            .into_iter()
            .next()
            .flatten()
            .and_then(|v| Vec::<String>::try_from(v).ok())
            .unwrap_or_default())
    }

    /// Start listening for job and unit signals about `unit_paths`. Call this *before*
    /// enqueueing a job, or its `JobRemoved` may be gone before anyone listens.
    pub fn events(&self, unit_paths: &[&str]) -> Result<Events, SystemdError> {
        Events::new(&self.background()?, self.scope, unit_paths)
    }

    /// Like [`Manager::events`], but each event goes to `sink`, from a thread of its own, until
    /// `sink` returns `false`; for daemons that wait on several sources at once.
    pub fn watch(
        &self,
        unit_paths: &[&str],
        sink: impl FnMut(Result<Event, SystemdError>) -> bool + Send + 'static,
    ) -> Result<(), SystemdError> {
        events::forward(&self.background()?, self.scope, unit_paths, sink)
    }
}
