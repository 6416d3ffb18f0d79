//! The Server Supervisor: a `Type=notify` daemon (`sd_notify(3)`) that tells systemd the stack
//! is ready only once every component's unit is active *and* its health probe passes, then
//! keeps probing and restarts, through systemd, a component that stops serving.
//!
//! Threads: one forwards D-Bus unit signals, one forwards SIGTERM/SIGINT; the main loop owns
//! all state and wakes on those messages or on its next probe or watchdog deadline. The
//! watchdog is pinged from the main loop only, so a stuck loop is a missed ping.
//!
//! What the supervisor does not wait for: a component that is down with no job pending,
//! because the operator stopped it (`inactive`) or systemd gave up on it (`failed`); and one
//! that has had its whole start allowance without answering (it is restarted as a hung one
//! is). A lost bus connection (dbus-daemon restarted) is not a crash: the supervisor connects
//! again, subscribes again, re-reads every state and goes on watching.

mod bus;
mod health;
mod log;
mod memory;
mod monitor;

pub use monitor::needs_attention;
mod served;
mod start;
mod watched;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use zbus::zvariant::OwnedObjectPath;

use crate::component::{Component, SUPERVISOR};
use crate::error::Error;
use crate::probe::{self, Cadence, ProbeSettings, SettingError};
use crate::procinfo::ProcReader;
use crate::systemd::{ActiveState, Manager, Scope};
use bus::subscribe;
use health::Health;
use log::Priority;
use memory::{MemoryGuard, StartLimit};
use served::Served;
use watched::Watched;

/// How often probes run while the stack is starting.
const START_POLL: Duration = Duration::from_millis(50);
/// The longest one call to the manager may take: a stalled manager stops the supervisor's
/// loop for no longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

enum Msg {
    Unit(OwnedObjectPath),
    Reloaded,
    Terminate,
    BusLost(String),
}

/// The most messages one pass of the main loop takes from its queue.
const MAX_BATCH: usize = 4096;

/// What a batch of messages asks for, each thing once.
#[derive(Default)]
struct Batch {
    units: Vec<OwnedObjectPath>,
    reloaded: bool,
    terminate: bool,
    lost: Option<String>,
}

impl Batch {
    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Unit(path) => {
                if !self.units.contains(&path) {
                    self.units.push(path);
                }
            }
            Msg::Reloaded => self.reloaded = true,
            Msg::Terminate => self.terminate = true,
            Msg::BusLost(e) => {
                self.lost.get_or_insert(e);
            }
        }
    }
}

/// Parse the supervisor's arguments (`--user`/`--system`; the default is the manager that
/// started it) and run until SIGTERM. Returns the exit code.
pub fn run() -> i32 {
    let mut scope = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--user" => scope = Some(Scope::User),
            "--system" => scope = Some(Scope::System),
            "--version" => {
                crate::output::out(&format!(
                    "imageserving-supervisor {}\n",
                    env!("CARGO_PKG_VERSION")
                ));
                return crate::error::exit::OK;
            }
            "--help" | "-h" => {
                crate::output::out("imageserving-supervisor [--user|--system]\n\nThe Image Serving Server Supervisor. Run by systemd as imageserving-supervisor.service;\nsee ImageServing(1).\n");
                return crate::error::exit::OK;
            }
            other => {
                crate::output::err(&format!(
                    "imageserving-supervisor: unknown argument '{other}'; see --help\n"
                ));
                return crate::error::exit::USAGE;
            }
        }
    }
    // systemd sets MANAGERPID only for units of a user manager (systemd.exec(5)).
    let scope = scope.unwrap_or(if std::env::var_os("MANAGERPID").is_some() {
        Scope::User
    } else {
        Scope::System
    });
    match Supervisor::new(scope).and_then(Supervisor::run) {
        Ok(()) => crate::error::exit::OK,
        Err(e) => {
            let msg = e.to_string();
            log::log(Priority::Err, &msg);
            notify(&[NotifyState::Status(&format!("failed: {msg}"))]);
            e.daemon_exit_code()
        }
    }
}

fn notify(states: &[NotifyState<'_>]) {
    // Outside systemd there is no socket and nothing to tell; that is not an error.
    let _ = sd_notify::notify(false, states);
}

struct Supervisor {
    mgr: Manager,
    scope: Scope,
    watched: Vec<Watched>,
    /// Where the signal readers send; kept to subscribe again after a reconnect.
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    /// How often to ping the watchdog (a quarter of its period).
    watchdog: Option<Duration>,
    /// `WatchdogSec=`, when set.
    watchdog_period: Option<Duration>,
    start_limit: Duration,
    status: String,
    procs: ProcReader,
    cgroups: crate::procinfo::CgroupReader,
    /// Which processes have served, for a supervisor that restarts.
    served: Served,
    /// What `served` holds now, to write it only when it changes.
    served_written: Vec<(Component, u32)>,
}

impl Supervisor {
    fn new(scope: Scope) -> Result<Supervisor, Error> {
        let own: Vec<String> = std::env::var(probe::KEY_START_TIMEOUT)
            .map(|v| vec![format!("{}={v}", probe::KEY_START_TIMEOUT)])
            .unwrap_or_default();
        let start_limit = probe::start_timeout(SUPERVISOR, &own)?;
        let mgr = Manager::connect_within(scope, scope.bus_address(), CALL_TIMEOUT)?;
        let now = Instant::now();
        let mut watched = Vec::new();
        let sockets = sockets_in_use(&mgr)?;
        for (component, socket) in Component::ALL.into_iter().zip(sockets) {
            let path = mgr.load_unit(component.unit())?;
            let env = mgr.unit_environment(path.as_str())?;
            let probe = ProbeSettings::from_environment(component.unit(), &env)?;
            if socket {
                probe::check_behind_socket(component.unit(), probe.as_ref(), component.socket())?;
            }
            let memory = guard_for(&mgr, path.as_str(), component.unit(), &env, now)?;
            watched.push(Watched {
                component,
                path,
                state: ActiveState::Inactive,
                sub_state: String::new(),
                main_pid: 0,
                job_id: 0,
                health: probe.map(|p| Health::new(p, now)),
                memory,
            });
        }
        let (tx, rx) = mpsc::channel();
        let paths: Vec<&str> = watched.iter().map(|w| w.path.as_str()).collect();
        subscribe(&mgr, &paths, &tx)?;
        spawn_signal_thread(tx.clone())?;
        let mut usec = 0;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        if let Some(period) = watchdog {
            for w in &watched {
                check_probe_fits_watchdog(w.component.unit(), w.settings(), period)?;
            }
        }
        let watchdog_period = watchdog;
        // Ping every quarter of the period: a ping comes at most a quarter of it plus one
        // probe round (at most half of it, checked above) after the last.
        let watchdog = watchdog.map(|period| period / 4);
        Ok(Supervisor {
            mgr,
            scope,
            watched,
            tx,
            rx,
            watchdog,
            watchdog_period,
            start_limit,
            status: String::new(),
            procs: ProcReader::new("/proc"),
            cgroups: crate::procinfo::CgroupReader::system(),
            served: Served::from_environment(),
            served_written: Vec::new(),
        })
    }

    /// Keep the record of served processes up to date (see [`served`]).
    fn record_served(&mut self) {
        let now: Vec<(Component, u32)> = self
            .watched
            .iter()
            .filter(|w| w.main_pid != 0 && w.health.as_ref().is_some_and(Health::proven))
            .map(|w| (w.component, w.main_pid))
            .collect();
        if now != self.served_written {
            self.served.write(now.iter().copied());
            self.served_written = now;
        }
    }

    fn set_status(&mut self, status: String) {
        self.record_served();
        if status != self.status {
            notify(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    fn refresh(&mut self, only: Option<&OwnedObjectPath>) -> Result<(), Error> {
        for w in &mut self.watched {
            if only.is_some_and(|p| p != &w.path) {
                continue;
            }
            let s = self.mgr.service_state(w.path.as_str())?;
            if s.active_state == ActiveState::Failed && w.state != ActiveState::Failed {
                log::log(
                    Priority::Err,
                    &format!(
                        "{} ({}) failed and systemd gave up on it: {}",
                        w.component,
                        w.component.unit(),
                        s.failure_reason()
                    ),
                );
            }
            let restarted = s.main_pid != w.main_pid;
            // A process the supervisor sees for the first time may have been running long
            // before (the supervisor itself restarted): its start grace counts from when it
            // started, so a hung component is not taken for one that is starting.
            let now = Instant::now();
            let process_started = s
                .main_process_age()
                .and_then(|age| now.checked_sub(age))
                .unwrap_or(now);
            let was_down = w.settled_down();
            w.state = s.active_state;
            w.sub_state = s.sub_state;
            w.main_pid = s.main_pid;
            w.job_id = s.job_id;
            if w.settled_down() && !was_down && w.state == ActiveState::Inactive {
                log::log(
                    Priority::Notice,
                    &format!(
                        "{} ({}) was stopped; not watching it until it is started again",
                        w.component,
                        w.component.unit()
                    ),
                );
            }
            if w.state != ActiveState::Active || restarted {
                if let Some(h) = &mut w.health {
                    h.process_started(process_started);
                }
            }
            // A new process (whoever started it) counts against the unit's start limit and
            // gets its start grace before its memory is read.
            if restarted && w.main_pid != 0 {
                if let Some(g) = &mut w.memory {
                    g.process_started(process_started);
                }
            }
        }
        Ok(())
    }

    /// Wait for a message or `timeout`; then take what else is queued, at most
    /// [`MAX_BATCH`] messages, and act once on all of them: each unit named is read once, a
    /// reload reads everything once. However fast signals come (a client loading and
    /// dropping units in a loop makes thousands a second), one pass costs at most one read
    /// per unit and returns to the probes and the watchdog. A lost bus connection is
    /// reconnected here. Returns `true` on a request to terminate.
    fn wait(&mut self, timeout: Duration) -> Result<bool, Error> {
        let first = match self.rx.recv_timeout(timeout) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => return Ok(false),
            // `self.tx` is a sender: the channel cannot close while we hold it.
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        };
        let mut batch = Batch::default();
        batch.add(first);
        for _ in 1..MAX_BATCH {
            match self.rx.try_recv() {
                Ok(msg) => batch.add(msg),
                Err(_) => break,
            }
        }
        if batch.terminate {
            return Ok(self.terminate());
        }
        let handled = match batch.lost {
            Some(e) => Err(Error::BusLost(e)),
            // A reload or re-execution may have changed any unit without a signal for it:
            // read them all again.
            None if batch.reloaded => self.reload_settings().and_then(|()| self.refresh(None)),
            None => batch
                .units
                .iter()
                .try_for_each(|path| self.refresh(Some(path))),
        };
        let lost = match handled {
            Ok(()) => return Ok(false),
            Err(Error::BusLost(e)) => e,
            Err(Error::Systemd(e)) if e.is_connection_lost() => e.to_string(),
            Err(e) => return Err(e),
        };
        Ok(self.reconnect(&lost))
    }

    /// After a `daemon-reload`, take up the components' probe settings as they are now
    /// (`systemctl edit` changes them, and `systemctl edit` reloads). A setting that is now
    /// bad is logged and the old settings kept: a running supervisor does not stop watching
    /// over a typo; at its next start the bad setting stops it (exit 78), as always.
    fn reload_settings(&mut self) -> Result<(), Error> {
        let watchdog_period = self.watchdog_period;
        let sockets = sockets_in_use(&self.mgr)?;
        for (w, socket) in self.watched.iter_mut().zip(sockets) {
            let unit = w.component.unit();
            let env = self.mgr.unit_environment(w.path.as_str())?;
            let guard = probe::memory_limit(unit, &env).and_then(|limit| {
                Ok(match limit {
                    Some(limit) => Some((limit, Cadence::from_environment(unit, &env)?)),
                    None => None,
                })
            });
            match &guard {
                Ok(new) if new.map(|(l, _)| l) != w.memory.as_ref().map(MemoryGuard::limit) => {
                    log::log(
                        Priority::Notice,
                        &format!(
                            "{}: memory limit after daemon-reload: {}",
                            w.component,
                            new.map_or("none".to_owned(), |(l, _)| crate::table::bytes(l))
                        ),
                    );
                }
                Ok(_) => {}
                Err(e) => log::log(
                    Priority::Err,
                    &format!("ignoring the new memory limit, keeping the old one: {e}"),
                ),
            }
            // The unit's start limit is read only for a component that has a memory limit.
            match guard {
                Ok(Some((limit, cadence))) => {
                    let start_limit = start_limit_of(&self.mgr, w.path.as_str())?;
                    w.memory = Some(match w.memory.take() {
                        Some(mut g) => {
                            g.set(limit, cadence, start_limit);
                            g
                        }
                        None => MemoryGuard::new(limit, cadence, start_limit, Instant::now()),
                    });
                }
                Ok(None) => w.memory = None,
                Err(_) => {}
            }
            let checked = ProbeSettings::from_environment(unit, &env).and_then(|p| {
                if let Some(period) = watchdog_period {
                    check_probe_fits_watchdog(unit, p.as_ref(), period)?;
                }
                if socket {
                    probe::check_behind_socket(unit, p.as_ref(), w.component.socket())?;
                }
                Ok(p)
            });
            match checked {
                Ok(probe) if probe.as_ref() != w.settings() => {
                    log::log(
                        Priority::Notice,
                        &format!(
                            "{}: probe settings changed after daemon-reload: {}",
                            w.component,
                            probe
                                .as_ref()
                                .map_or("no probe".to_owned(), ProbeSettings::describe)
                        ),
                    );
                    let now = Instant::now();
                    w.health = match (w.health.take(), probe) {
                        (Some(mut h), Some(p)) => {
                            h.set_settings(p, now);
                            Some(h)
                        }
                        (None, Some(p)) => Some(Health::new(p, now)),
                        (_, None) => None,
                    };
                }
                Ok(_) => {}
                Err(e) => log::log(
                    Priority::Err,
                    &format!("ignoring the new probe settings, keeping the old ones: {e}"),
                ),
            }
        }
        Ok(())
    }

    fn terminate(&mut self) -> bool {
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        log::log(Priority::Info, "stopping on request");
        true
    }
}

/// A probe round (at most the longest probe timeout) must fit in half the watchdog period;
/// a setting that cannot is rejected as any bad setting is (exit 78). A call to a stalled
/// manager ([`CALL_TIMEOUT`]) need not fit: a stalled manager enforces no watchdog either.
fn check_probe_fits_watchdog(
    unit: &str,
    probe: Option<&ProbeSettings>,
    period: Duration,
) -> Result<(), SettingError> {
    match probe {
        Some(p) if p.timeout > period / 2 => Err(SettingError {
            unit: unit.to_owned(),
            key: probe::KEY_TIMEOUT,
            value: format!("{}", p.timeout.as_secs_f64()),
            why: format!(
                "with WatchdogSec={}s the probe timeout may be at most {}s",
                period.as_secs(),
                (period / 2).as_secs_f64()
            ),
        }),
        _ => Ok(()),
    }
}

fn spawn_signal_thread(tx: Sender<Msg>) -> Result<(), Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Error::Signals(e.to_string()))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = tx.send(Msg::Terminate);
        }
    });
    Ok(())
}

/// For each component, whether it is switched to a socket systemd holds (the target wants
/// the socket, or it holds the port now): its probe must then see through it.
fn sockets_in_use(mgr: &Manager) -> Result<Vec<bool>, Error> {
    let names = Component::ALL.map(Component::socket);
    Ok(mgr
        .sockets(&names, crate::component::TARGET)?
        .iter()
        .map(crate::systemd::SocketState::in_use)
        .collect())
}

/// The memory guard of a component whose unit has `env`, when it has a memory limit.
fn guard_for(
    mgr: &Manager,
    path: &str,
    unit: &str,
    env: &[String],
    now: Instant,
) -> Result<Option<MemoryGuard>, Error> {
    let Some(limit) = probe::memory_limit(unit, env)? else {
        return Ok(None);
    };
    let cadence = Cadence::from_environment(unit, env)?;
    Ok(Some(MemoryGuard::new(
        limit,
        cadence,
        start_limit_of(mgr, path)?,
        now,
    )))
}

/// The unit's start rate limit, which the memory guard never spends.
fn start_limit_of(mgr: &Manager, path: &str) -> Result<StartLimit, Error> {
    let (burst, interval_us) = mgr.start_limit(path)?;
    Ok(StartLimit {
        burst,
        interval: Duration::from_micros(interval_us),
    })
}
