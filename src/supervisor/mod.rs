//! The Server Supervisor: a `Type=notify` daemon (`sd_notify(3)`) that tells systemd the stack
//! is ready only once every component's unit is active *and* its health probe passes, then
//! keeps probing and restarts, through systemd, a component that stops serving.
//!
//! Threads: one forwards D-Bus unit signals, one forwards SIGTERM/SIGINT; the main loop owns
//! all state and wakes on those messages or on its next probe or watchdog deadline. The
//! watchdog is pinged from the main loop only, so a stuck loop is a missed ping.

mod health;
mod log;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use zbus::zvariant::OwnedObjectPath;

use crate::component::Component;
use crate::probe::{self, ProbeSettings, SettingError};
use crate::procinfo::{ProcReader, Sample};
use crate::systemd::{ActiveState, Event, Manager, Scope, SystemdError};
use health::{Health, Step};
use log::Priority;

/// How often probes run while the stack is starting.
const START_POLL: Duration = Duration::from_millis(50);
/// Default ceiling for a start that keeps progressing past `TimeoutStartSec=`.
const DEFAULT_START_LIMIT: Duration = Duration::from_secs(600);
/// The longest one call to the manager may take: a stalled manager stops the supervisor's
/// loop for no longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What stopped the supervisor.
#[derive(Debug, thiserror::Error)]
enum SupervisorError {
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error("bad setting in the supervisor's environment: {0}")]
    OwnSetting(String),
    #[error("lost the bus connection: {0}")]
    BusLost(String),
    #[error("cannot handle signals: {0}")]
    Signals(String),
    #[error("the stack did not become ready within {0:?}: {1}")]
    StartTimeout(Duration, String),
}

impl SupervisorError {
    /// 78 (`EX_CONFIG`, sysexits.h) for a bad setting, which the unit does not restart on;
    /// 1 for everything else.
    fn exit_code(&self) -> i32 {
        match self {
            SupervisorError::Setting(_) | SupervisorError::OwnSetting(_) => 78,
            _ => 1,
        }
    }
}

enum Msg {
    Unit(OwnedObjectPath),
    Reloaded,
    Terminate,
    BusLost(String),
}

/// One watched component: what systemd says of its unit, and (when it has a probe) what
/// its probes say ([`Health`], where the decisions are made).
struct Watched {
    component: Component,
    path: OwnedObjectPath,
    state: ActiveState,
    sub_state: String,
    main_pid: u32,
    /// `None` for a component without a probe: it serves when its unit is active.
    health: Option<Health>,
}

impl Watched {
    fn serving(&self) -> bool {
        match &self.health {
            Some(h) => h.serving(),
            None => self.state == ActiveState::Active,
        }
    }

    fn settings(&self) -> Option<&ProbeSettings> {
        self.health.as_ref().map(Health::settings)
    }

    fn describe_wait(&self) -> String {
        if self.state != ActiveState::Active {
            format!(
                "{} {} ({})",
                self.component,
                self.state.as_str(),
                self.sub_state
            )
        } else {
            match self
                .health
                .as_ref()
                .and_then(|h| Some((h, h.last_error()?)))
            {
                Some((h, e)) => format!(
                    "{} not answering on {}: {e}",
                    self.component,
                    h.settings().target
                ),
                None => format!("{} not yet probed", self.component),
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
                return 0;
            }
            "--help" | "-h" => {
                crate::output::out("imageserving-supervisor [--user|--system]\n\nThe Image Serving Server Supervisor. Run by systemd as imageserving-supervisor.service;\nsee ImageServing(1).\n");
                return 0;
            }
            other => {
                crate::output::err(&format!(
                    "imageserving-supervisor: unknown argument '{other}'; see --help\n"
                ));
                return 2;
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
        Ok(()) => 0,
        Err(e) => {
            let msg = e.to_string();
            log::log(Priority::Err, &msg);
            notify(&[NotifyState::Status(&format!("failed: {msg}"))]);
            e.exit_code()
        }
    }
}

fn notify(states: &[NotifyState<'_>]) {
    // Outside systemd there is no socket and nothing to tell; that is not an error.
    let _ = sd_notify::notify(false, states);
}

struct Supervisor {
    mgr: Manager,
    watched: Vec<Watched>,
    rx: Receiver<Msg>,
    /// How often to ping the watchdog (a quarter of its period).
    watchdog: Option<Duration>,
    /// `WatchdogSec=`, when set.
    watchdog_period: Option<Duration>,
    start_limit: Duration,
    status: String,
    procs: ProcReader,
}

impl Supervisor {
    fn new(scope: Scope) -> Result<Supervisor, SupervisorError> {
        let start_limit = match std::env::var("IMAGESERVING_START_TIMEOUT_SEC") {
            Err(_) => DEFAULT_START_LIMIT,
            Ok(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    SupervisorError::OwnSetting(format!(
                        "IMAGESERVING_START_TIMEOUT_SEC={v:?}: expected whole seconds above 0"
                    ))
                })?,
        };
        let mgr = Manager::connect_within(scope, scope.bus_address(), CALL_TIMEOUT)?;
        let now = Instant::now();
        let mut watched = Vec::new();
        for component in Component::ALL {
            let path = mgr.load_unit(component.unit())?;
            let env = mgr.unit_environment(path.as_str())?;
            let probe = ProbeSettings::from_environment(component.unit(), &env)?;
            watched.push(Watched {
                component,
                path,
                state: ActiveState::Inactive,
                sub_state: String::new(),
                main_pid: 0,
                health: probe.map(|p| Health::new(p, now)),
            });
        }
        let (tx, rx) = mpsc::channel();
        let paths: Vec<&str> = watched.iter().map(|w| w.path.as_str()).collect();
        let events_tx = tx.clone();
        mgr.watch(&paths, move |event| {
            let msg = match event {
                Ok(Event::UnitChanged { path }) => Msg::Unit(path),
                Ok(Event::Reloaded) => Msg::Reloaded,
                Ok(Event::JobRemoved { .. }) => return true,
                Err(e) => Msg::BusLost(e.to_string()),
            };
            events_tx.send(msg).is_ok()
        })?;
        spawn_signal_thread(tx)?;
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
            watched,
            rx,
            watchdog,
            watchdog_period,
            start_limit,
            status: String::new(),
            procs: ProcReader::new("/proc"),
        })
    }

    fn set_status(&mut self, status: String) {
        if status != self.status {
            notify(&[NotifyState::Status(&status)]);
            self.status = status;
        }
    }

    fn refresh(&mut self, only: Option<&OwnedObjectPath>) -> Result<(), SupervisorError> {
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
            w.state = s.active_state;
            w.sub_state = s.sub_state;
            w.main_pid = s.main_pid;
            if w.state != ActiveState::Active || restarted {
                if let Some(h) = &mut w.health {
                    h.process_started(Instant::now());
                }
            }
        }
        Ok(())
    }

    fn run(mut self) -> Result<(), SupervisorError> {
        log::log(
            Priority::Info,
            "starting: waiting for ps, is and svg to serve",
        );
        self.refresh(None)?;
        let started = Instant::now();
        let mut next_extend = Instant::now();
        let mut next_ping = Instant::now();
        // Phase 1: until everything serves that systemd has not given up on. A component
        // in the failed state (its start limit hit) is reported (STATUS=, the journal) and
        // not waited for: exiting instead would make systemd restart the supervisor in a
        // loop while nothing watches the healthy components. It is not retried either:
        // systemd already gave it its restarts; the operator decides ('ImageServing start'
        // or 'restart NAME'), and the supervisor takes it up again once it is active.
        loop {
            let starting: Vec<usize> = (0..self.watched.len())
                .filter(|i| {
                    let w = &self.watched[*i];
                    w.state == ActiveState::Active
                        && w.health.as_ref().is_some_and(|h| !h.serving())
                })
                .collect();
            let outcomes = probe::check_all(
                &starting
                    .iter()
                    .filter_map(|i| self.watched[*i].settings())
                    .map(|p| (p.target.clone(), p.timeout))
                    .collect::<Vec<_>>(),
            );
            for (i, outcome) in starting.into_iter().zip(outcomes) {
                let w = &mut self.watched[i];
                if let Some(h) = &mut w.health {
                    if h.probed_while_starting(outcome) {
                        log::log(
                            Priority::Info,
                            &format!("{} serves on {}", w.component, h.settings().target),
                        );
                    }
                }
            }
            let now = Instant::now();
            let waiting: Vec<String> = self
                .watched
                .iter()
                .filter(|w| !w.serving() && w.state != ActiveState::Failed)
                .map(Watched::describe_wait)
                .collect();
            if waiting.is_empty() {
                break;
            }
            let status = format!("starting: waiting for {}", waiting.join(", "));
            self.set_status(status.clone());
            if now.duration_since(started) >= self.start_limit {
                return Err(SupervisorError::StartTimeout(self.start_limit, status));
            }
            if now >= next_extend {
                // Keep systemd's start timeout at least 10 s ahead while we keep making
                // progress, up to our own ceiling.
                notify(&[NotifyState::ExtendTimeoutUsec(10_000_000)]);
                next_extend = now + Duration::from_secs(5);
            }
            if let Some(wd) = self.watchdog {
                if now >= next_ping {
                    notify(&[NotifyState::Watchdog]);
                    next_ping = now + wd;
                }
            }
            if self.wait(START_POLL)? {
                return Ok(());
            }
        }
        let summary = self.summary();
        self.set_status(summary.clone());
        notify(&[NotifyState::Ready]);
        log::log(
            if self.watched.iter().all(Watched::serving) {
                Priority::Notice
            } else {
                Priority::Err
            },
            &format!(
                "ready after {:.1}s: {summary}",
                started.elapsed().as_secs_f64()
            ),
        );
        self.monitor()
    }

    /// Wait for a message or `timeout`; handle it. Returns `true` on a request to terminate.
    fn wait(&mut self, timeout: Duration) -> Result<bool, SupervisorError> {
        match self.rx.recv_timeout(timeout) {
            Ok(first @ (Msg::Unit(_) | Msg::Reloaded)) => {
                // Handle it and what else is queued, so that a burst costs one pass.
                let mut next = Some(first);
                while let Some(msg) = next.take().or_else(|| self.rx.try_recv().ok()) {
                    match msg {
                        Msg::Unit(p) => self.refresh(Some(&p))?,
                        Msg::Reloaded => self.reload_settings()?,
                        Msg::Terminate => return Ok(self.terminate()),
                        Msg::BusLost(e) => return Err(SupervisorError::BusLost(e)),
                    }
                }
                Ok(false)
            }
            Ok(Msg::Terminate) => Ok(self.terminate()),
            Ok(Msg::BusLost(e)) => Err(SupervisorError::BusLost(e)),
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                Err(SupervisorError::BusLost("event threads ended".into()))
            }
        }
    }

    /// After a `daemon-reload`, take up the components' probe settings as they are now
    /// (`systemctl edit` changes them, and `systemctl edit` reloads). A setting that is now
    /// bad is logged and the old settings kept: a running supervisor does not stop watching
    /// over a typo; at its next start the bad setting stops it (exit 78), as always.
    fn reload_settings(&mut self) -> Result<(), SupervisorError> {
        for i in 0..self.watched.len() {
            let (unit, path) = (
                self.watched[i].component.unit(),
                self.watched[i].path.clone(),
            );
            let env = self.mgr.unit_environment(path.as_str())?;
            let checked = ProbeSettings::from_environment(unit, &env).and_then(|p| {
                if let Some(period) = self.watchdog_period {
                    check_probe_fits_watchdog(unit, p.as_ref(), period)?;
                }
                Ok(p)
            });
            let w = &mut self.watched[i];
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

    /// Phase 2: probe periodically, restart what stops serving, summarise in STATUS=.
    fn monitor(mut self) -> Result<(), SupervisorError> {
        let mut next_ping = Instant::now();
        loop {
            let now = Instant::now();
            self.probe_round(now);
            let summary = self.summary();
            self.set_status(summary);
            if let Some(wd) = self.watchdog {
                if now >= next_ping {
                    notify(&[NotifyState::Watchdog]);
                    next_ping = now + wd;
                }
            }
            let mut wake = self
                .watched
                .iter()
                .filter(|w| w.state == ActiveState::Active)
                .filter_map(|w| w.health.as_ref().map(Health::next_probe))
                .min()
                .unwrap_or(now + Duration::from_secs(60));
            if self.watchdog.is_some() {
                wake = wake.min(next_ping);
            }
            if self.wait(wake.saturating_duration_since(Instant::now()))? {
                return Ok(());
            }
        }
    }

    /// Probe every component that is due, all at once: one round takes at most the longest
    /// probe timeout, whatever hangs, so the loop that pings the watchdog is never held up
    /// longer than that.
    fn probe_round(&mut self, now: Instant) {
        let mut due = Vec::new();
        let mut outcomes = Vec::new();
        let mut probes = Vec::new();
        for (i, w) in self.watched.iter_mut().enumerate() {
            let Some(h) = &mut w.health else {
                continue;
            };
            if w.state != ActiveState::Active || !h.take_due(now) {
                continue;
            }
            due.push(i);
            // A process stopped by a signal still has its port open (the kernel completes
            // TCP handshakes into the backlog), so a connect probe alone would call it
            // serving.
            if w.main_pid > 0 && self.procs.run_state(w.main_pid) == Sample::Value('T') {
                outcomes.push(Some(Err(format!(
                    "its main process {} is stopped (SIGSTOP)",
                    w.main_pid
                ))));
            } else {
                outcomes.push(None);
                probes.push((h.settings().target.clone(), h.settings().timeout));
            }
        }
        let mut probed = probe::check_all(&probes).into_iter();
        for (i, outcome) in due.into_iter().zip(outcomes) {
            let outcome = outcome
                .or_else(|| probed.next())
                .unwrap_or_else(|| Err("no probe result".to_owned()));
            self.apply(i, now, outcome);
        }
    }

    /// Act on one probe's outcome as [`Health`] decides: log, and restart the component
    /// through systemd when its failures reach the limit and the back-off allows.
    fn apply(&mut self, i: usize, now: Instant, outcome: Result<(), String>) {
        let w = &mut self.watched[i];
        let Some(h) = &mut w.health else {
            return;
        };
        let target = h.settings().target.clone();
        match h.probed(now, outcome) {
            Step::Quiet | Step::Starting | Step::BackingOff => {}
            Step::NowServing => log::log(
                Priority::Info,
                &format!("{} serves on {target}", w.component),
            ),
            Step::Failed { count, limit } => log::log(
                Priority::Warning,
                &format!(
                    "{} probe {target} failed ({count}/{limit}): {}",
                    w.component,
                    h.last_error().unwrap_or_default()
                ),
            ),
            Step::Restart { failures } => {
                let unit = w.component.unit();
                let why = h.last_error().unwrap_or_default().to_owned();
                match self.mgr.restart_unit(unit) {
                    Ok(_) => {
                        log::log(
                            Priority::Warning,
                            &format!(
                                "restarting {unit}: {failures} consecutive probe failures, last: {why}"
                            ),
                        );
                        h.restarted(now);
                    }
                    Err(e) => {
                        if h.restart_refused(now) {
                            log::log(
                                Priority::Err,
                                &format!("giving up on {unit} for now: restart refused: {e}"),
                            );
                            // The operator's alert hook, once per give-up.
                            let alert = format!("imageserving-alert@{unit}.service");
                            if let Err(e) = self.mgr.start_unit(&alert) {
                                log::log(Priority::Err, &format!("cannot start {alert}: {e}"));
                            }
                        }
                    }
                }
            }
        }
    }

    fn summary(&self) -> String {
        let serving = self.watched.iter().filter(|w| w.serving()).count();
        let total = self.watched.len();
        if serving == total {
            return format!("{serving}/{total} components serving");
        }
        let problems: Vec<String> = self
            .watched
            .iter()
            .filter(|w| !w.serving())
            .map(|w| {
                if w.state == ActiveState::Failed {
                    format!(
                        "{} failed, given up by systemd (reset with 'ImageServing start')",
                        w.component
                    )
                } else if w.health.as_ref().is_some_and(Health::given_up) {
                    format!("{} given up (restart refused)", w.component)
                } else {
                    w.describe_wait()
                }
            })
            .collect();
        format!(
            "{serving}/{total} components serving; {}",
            problems.join(", ")
        )
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

fn spawn_signal_thread(tx: Sender<Msg>) -> Result<(), SupervisorError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| SupervisorError::Signals(e.to_string()))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = tx.send(Msg::Terminate);
        }
    });
    Ok(())
}
