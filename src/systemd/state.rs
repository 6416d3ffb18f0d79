//! Unit and service states as named types, converted from the manager's wire data, and their
//! meaning in words (failure reasons, exit statuses, signals). One concern, and longer than
//! most files for it: every property we read is converted and explained here, and its tests
//! are the last third.

use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::PropertyInterface;

/// A unit's high-level state (`ActiveState` in `org.freedesktop.systemd1(5)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveState {
    /// Running.
    Active,
    /// Reloading its configuration.
    Reloading,
    /// Not running.
    Inactive,
    /// Not running, and the last run failed.
    Failed,
    /// Starting.
    Activating,
    /// Stopping.
    Deactivating,
    /// A state this program does not know (a newer systemd).
    Other,
}

impl ActiveState {
    /// Parse the manager's string form.
    pub fn parse(s: &str) -> ActiveState {
        match s {
            "active" => ActiveState::Active,
            "reloading" => ActiveState::Reloading,
            "inactive" => ActiveState::Inactive,
            "failed" => ActiveState::Failed,
            "activating" => ActiveState::Activating,
            "deactivating" => ActiveState::Deactivating,
            _ => ActiveState::Other,
        }
    }

    /// The manager's string form.
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveState::Active => "active",
            ActiveState::Reloading => "reloading",
            ActiveState::Inactive => "inactive",
            ActiveState::Failed => "failed",
            ActiveState::Activating => "activating",
            ActiveState::Deactivating => "deactivating",
            ActiveState::Other => "unknown",
        }
    }

    /// Whether the unit is up (`active`, or `reloading`, which is up too).
    pub fn is_up(self) -> bool {
        matches!(self, ActiveState::Active | ActiveState::Reloading)
    }

    /// Whether the unit has no process running any more.
    pub fn is_down(self) -> bool {
        matches!(self, ActiveState::Inactive | ActiveState::Failed)
    }
}

/// One row of `ListUnitsByNames`.
#[derive(Debug, Clone)]
pub struct UnitInfo {
    /// Unit name.
    pub name: String,
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    pub load_state: String,
    /// High-level state.
    pub active_state: ActiveState,
    /// Type-specific state, e.g. `running`, `auto-restart`, `dead`.
    pub sub_state: String,
    /// Object path of the unit.
    pub path: OwnedObjectPath,
    /// Pending job id, 0 if none.
    pub job_id: u32,
}

impl UnitInfo {
    pub(super) fn from_wire(raw: super::RawUnitInfo) -> UnitInfo {
        let (name, _description, load_state, active, sub_state, _following, path, job_id, ..) = raw;
        UnitInfo {
            name,
            load_state,
            active_state: ActiveState::parse(&active),
            sub_state,
            path,
            job_id,
        }
    }

    /// Whether the manager found a usable unit file.
    pub fn is_installed(&self) -> bool {
        !matches!(self.load_state.as_str(), "not-found")
    }

    /// Whether the unit is masked (`systemctl mask`): installed, but it cannot be started.
    pub fn is_masked(&self) -> bool {
        self.load_state == "masked"
    }
}

/// A socket unit that holds a component's listening port, as the manager has it.
#[derive(Debug, Clone)]
pub struct SocketState {
    /// Its row of `ListUnitsByNames`.
    pub info: UnitInfo,
    /// What it listens on (`Listen`: `127.0.0.1:8080`, `[::]:8080`), as systemd writes it.
    pub listen: Vec<String>,
    /// Whether the stack's target wants it (`systemctl enable`, through `WantedBy=`): then
    /// starting the stack starts it, and the component is switched to its socket.
    pub wanted: bool,
}

impl SocketState {
    /// Whether it holds its port now (`listening`, or `running` while its service has it).
    pub fn holds_port(&self) -> bool {
        self.info.active_state == ActiveState::Active
    }

    /// Whether the component uses it: switched on (wanted) or holding the port now.
    pub fn in_use(&self) -> bool {
        self.info.is_installed() && !self.info.is_masked() && (self.wanted || self.holds_port())
    }

    /// Its state in a few words: `listening 127.0.0.1:8080`, `stopped`, `failed`.
    pub fn describe(&self) -> String {
        match self.info.active_state {
            ActiveState::Active => format!("listening {}", self.listen.join(" ")),
            ActiveState::Failed => format!("failed ({})", self.info.sub_state),
            ActiveState::Inactive => "stopped".to_owned(),
            other => other.as_str().to_owned(),
        }
    }
}

/// How the main process of a service last ended (`ExecMainCode`/`ExecMainStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStatus {
    /// It has not ended (or never ran).
    None,
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Killed(i32),
    /// A signal killed it and it dumped core.
    Dumped(i32),
}

impl ExecStatus {
    fn from_wire(code: i32, status: i32) -> ExecStatus {
        // Codes are siginfo's si_code values: CLD_EXITED=1, CLD_KILLED=2, CLD_DUMPED=3.
        match code {
            1 => ExecStatus::Exited(status),
            2 => ExecStatus::Killed(status),
            3 => ExecStatus::Dumped(status),
            _ => ExecStatus::None,
        }
    }

    /// A phrase for messages, e.g. `exited with status 203 (EXEC: the command could not be run)`.
    pub fn describe(self) -> Option<String> {
        match self {
            ExecStatus::None => None,
            ExecStatus::Exited(s) => Some(match systemd_exit_status(s) {
                Some(meaning) => format!("its process exited with status {s} ({meaning})"),
                None => format!("its process exited with status {s}"),
            }),
            ExecStatus::Killed(sig) => {
                Some(format!("its process was killed by {}", signal_name(sig)))
            }
            ExecStatus::Dumped(sig) => {
                Some(format!("its process dumped core on {}", signal_name(sig)))
            }
        }
    }
}

/// The exit statuses systemd itself uses when it cannot run a command (`systemd.exec(5)`).
fn systemd_exit_status(status: i32) -> Option<&'static str> {
    Some(match status {
        200 => "CHDIR: the working directory is missing",
        203 => "EXEC: the command could not be executed; is it installed?",
        204 => "MEMORY: out of memory",
        205 => "LIMITS: a resource limit could not be set",
        209 => "STDOUT: standard output could not be set up",
        214 => "SETSCHEDULER: scheduling parameters could not be set",
        216 => "GROUP: the group does not exist",
        217 => "USER: the user does not exist",
        218 => "CAPABILITIES: capabilities could not be set",
        226 => "NAMESPACE: the file system namespace could not be set up",
        _ => return None,
    })
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}

/// What a service unit says about itself, for progress lines and failure messages.
#[derive(Debug, Clone)]
pub struct ServiceState {
    /// High-level state.
    pub active_state: ActiveState,
    /// Sub-state, e.g. `auto-restart`.
    pub sub_state: String,
    /// `success`, `exit-code`, `signal`, `timeout`, `start-limit-hit`, ...
    pub result: String,
    /// How the main process last ended.
    pub exec_status: ExecStatus,
    /// Main PID, 0 if none.
    pub main_pid: u32,
    /// The daemon's own `STATUS=` text.
    pub status_text: String,
    /// The program the unit runs (first `ExecStart=`).
    pub program: Option<String>,
    /// How many times systemd restarted it automatically.
    pub restarts: u32,
    /// The id of the job pending for the unit, 0 when none.
    pub job_id: u32,
    /// When the main process started, on `CLOCK_MONOTONIC` (µs); 0 when unknown.
    pub main_started_monotonic_us: u64,
    /// `RestartPreventExitStatus=`: exit statuses and signals `Restart=` does not act on.
    pub restart_prevented: RestartPrevented,
    /// When its last run ended and it went down, and its `RestartSec=`.
    pub timing: FailureTiming,
}

/// `RestartPreventExitStatus=` as the manager reports it (`(aiai)`): exit statuses, then
/// signals.
pub type RestartPrevented = (Vec<i32>, Vec<i32>);

/// When a unit's last run ended and when it then failed, on the monotonic clock (µs), and
/// its `RestartSec=` (µs); 0 where unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureTiming {
    /// `ExecMainExitTimestampMonotonic`: when the main process last ended.
    pub exited_us: u64,
    /// `InactiveEnterTimestampMonotonic`: when the unit last went down (here: failed).
    pub failed_us: u64,
    /// `RestartUSec`.
    pub restart_us: u64,
}

impl FailureTiming {
    /// Whether the failure came from a restart that systemd attempted and was refused (the
    /// start limit): `Restart=` first waits out `RestartSec=` after the exit, so such a
    /// unit fails at least that long after its process ended. An operator's stop that ends
    /// in a failure (an exit status the unit does not call a success, a SIGKILL after the
    /// stop timeout) fails the unit at the exit itself. Where the timestamps are unknown or
    /// there is no `RestartSec=`, it cannot tell, and says yes.
    pub fn restart_attempted(&self) -> bool {
        if self.exited_us == 0 || self.failed_us == 0 || self.restart_us == 0 {
            return true;
        }
        self.failed_us.saturating_sub(self.exited_us) >= self.restart_us
    }
}

/// Whether systemd gave up restarting a unit: it failed after automatic restarts, because
/// the restart it attempted last was refused, and not because its last exit was one
/// `RestartPreventExitStatus=` names (that is a stop on purpose, not a give-up). systemd
/// keeps the last run's `Result` (e.g. `signal`) when the start limit is what stopped it, so
/// this reads the restart count and the timing ([`FailureTiming`]) rather than
/// `start-limit-hit`. A routine stop is never a give-up, whatever the process exited with.
/// The one definition, for `status`, `start`, the supervisor and the alert hook.
pub fn gave_up(
    active: ActiveState,
    restarts: u32,
    exec: ExecStatus,
    prevented: &RestartPrevented,
    timing: FailureTiming,
) -> bool {
    let on_purpose = match exec {
        ExecStatus::Exited(s) => prevented.0.contains(&s),
        ExecStatus::Killed(sig) | ExecStatus::Dumped(sig) => prevented.1.contains(&sig),
        ExecStatus::None => false,
    };
    active == ActiveState::Failed && restarts > 0 && !on_purpose && timing.restart_attempted()
}

type ExecCommand = (String, Vec<String>, bool, u64, u64, u64, u64, u32, i32, i32);

impl ServiceState {
    /// The properties [`ServiceState::from_values`] expects, in order.
    pub(super) const PROPERTIES: [(PropertyInterface, &'static str); 15] = [
        (PropertyInterface::Unit, "Job"),
        (PropertyInterface::Unit, "ActiveState"),
        (PropertyInterface::Unit, "SubState"),
        (PropertyInterface::Service, "Result"),
        (PropertyInterface::Service, "ExecMainCode"),
        (PropertyInterface::Service, "ExecMainStatus"),
        (PropertyInterface::Service, "MainPID"),
        (PropertyInterface::Service, "StatusText"),
        (PropertyInterface::Service, "ExecStart"),
        (PropertyInterface::Service, "NRestarts"),
        (
            PropertyInterface::Service,
            "ExecMainStartTimestampMonotonic",
        ),
        (PropertyInterface::Service, "RestartPreventExitStatus"),
        (PropertyInterface::Service, "ExecMainExitTimestampMonotonic"),
        (PropertyInterface::Unit, "InactiveEnterTimestampMonotonic"),
        (PropertyInterface::Service, "RestartUSec"),
    ];

    pub(super) fn from_values(values: Vec<Option<OwnedValue>>) -> ServiceState {
        let mut v = values.into_iter();
        let mut next = || v.next().flatten();
        let job_id = next()
            .and_then(|v| <(u32, OwnedObjectPath)>::try_from(v).ok())
            .map_or(0, |(id, _)| id);
        let active = string(next());
        let sub_state = string(next());
        let result = string(next());
        let code = int(next());
        let status = int(next());
        let main_pid = uint(next());
        let status_text = string(next());
        let program = next()
            .and_then(|v| Vec::<ExecCommand>::try_from(v).ok())
            .and_then(|cmds| cmds.into_iter().next().map(|c| c.0));
        let restarts = uint(next());
        let main_started_monotonic_us = next()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or_default();
        let restart_prevented = prevented(next());
        let mut micros = || {
            next()
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or_default()
        };
        let timing = FailureTiming {
            exited_us: micros(),
            failed_us: micros(),
            restart_us: micros(),
        };
        ServiceState {
            timing,
            main_started_monotonic_us,
            restart_prevented,
            job_id,
            active_state: ActiveState::parse(&active),
            sub_state,
            result,
            exec_status: ExecStatus::from_wire(code, status),
            main_pid,
            status_text,
            program,
            restarts,
        }
    }

    /// How long its main process has been running, from systemd's start timestamp on the
    /// monotonic clock (which a restart of the asker does not reset); `None` when unknown.
    pub fn main_process_age(&self) -> Option<std::time::Duration> {
        if self.main_pid == 0 || self.main_started_monotonic_us == 0 {
            return None;
        }
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let now_us = u64::try_from(now.tv_sec)
            .ok()?
            .checked_mul(1_000_000)?
            .checked_add(u64::try_from(now.tv_nsec).ok()? / 1_000)?;
        now_us
            .checked_sub(self.main_started_monotonic_us)
            .map(std::time::Duration::from_micros)
    }

    /// Whether the unit has failed for good: `failed` with no job that would act on it.
    /// A unit that `Restart=` will bring back (`auto-restart`, `auto-restart-queued` since
    /// systemd 254), or that shows `failed` for a moment between the halves of a restart job,
    /// has not: systemd is still bringing it up.
    pub fn has_failed(&self) -> bool {
        self.active_state == ActiveState::Failed && self.job_id == 0
    }

    /// Whether systemd will start the unit again by itself: it waits out `RestartSec=`, or a
    /// job for it is pending.
    pub fn will_retry(&self) -> bool {
        self.sub_state.starts_with("auto-restart") || self.job_id != 0
    }

    /// Whether systemd stopped restarting it ([`gave_up`]).
    pub fn gave_up(&self) -> bool {
        gave_up(
            self.active_state,
            self.restarts,
            self.exec_status,
            &self.restart_prevented,
            self.timing,
        )
    }

    /// `active (running)`, `failed (exit-code)`, ...
    pub fn summary(&self) -> String {
        if self.active_state == ActiveState::Failed {
            format!("failed ({})", self.result)
        } else {
            format!("{} ({})", self.active_state.as_str(), self.sub_state)
        }
    }

    /// Why the unit failed, in words: the result, the exit status, and its own status text.
    pub fn failure_reason(&self) -> String {
        let mut parts = vec![describe_result(&self.result)];
        if let Some(exec) = self.exec_status.describe() {
            parts.push(exec);
        }
        if matches!(self.exec_status, ExecStatus::Exited(203)) {
            if let Some(program) = &self.program {
                parts.push(format!("command {program}"));
            }
        }
        if !self.status_text.is_empty() {
            parts.push(format!("it said: {}", self.status_text));
        }
        if self.sub_state.starts_with("auto-restart") {
            parts.push("systemd will retry it".to_owned());
        }
        if self.gave_up() {
            parts.push(format!(
                "systemd gave up after {} automatic restarts (start limit); 'ImageServing start' resets it",
                self.restarts
            ));
        }
        parts.join("; ")
    }
}

fn describe_result(result: &str) -> String {
    match result {
        "exit-code" => "it exited with an error".to_owned(),
        "signal" => "it was killed by a signal".to_owned(),
        "core-dump" => "it crashed and dumped core".to_owned(),
        "timeout" => "it timed out".to_owned(),
        "watchdog" => "its watchdog expired".to_owned(),
        "start-limit-hit" => "it was restarted too often and systemd gave up (start-limit-hit); run 'ImageServing start' again once fixed, or 'systemctl reset-failed'".to_owned(),
        "resources" => "systemd could not set up its resources".to_owned(),
        "protocol" => "it broke the service protocol (e.g. never sent READY=1)".to_owned(),
        "oom-kill" => "the kernel's OOM killer killed it".to_owned(),
        "success" | "" => "it stopped".to_owned(),
        other => format!("result '{other}'"),
    }
}

/// `RestartPreventExitStatus` off the wire; empty when unreadable.
pub fn prevented(v: Option<OwnedValue>) -> RestartPrevented {
    v.and_then(|v| RestartPrevented::try_from(v).ok())
        .unwrap_or_default()
}

/// `ExecMainCode` and `ExecMainStatus` off the wire.
pub fn exec_status(code: Option<OwnedValue>, status: Option<OwnedValue>) -> ExecStatus {
    ExecStatus::from_wire(int(code), int(status))
}

fn string(v: Option<OwnedValue>) -> String {
    v.and_then(|v| String::try_from(v).ok()).unwrap_or_default()
}

fn int(v: Option<OwnedValue>) -> i32 {
    v.and_then(|v| i32::try_from(v).ok()).unwrap_or_default()
}

fn uint(v: Option<OwnedValue>) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(active: ActiveState, sub: &str, result: &str, job_id: u32) -> ServiceState {
        ServiceState {
            active_state: active,
            sub_state: sub.into(),
            result: result.into(),
            exec_status: ExecStatus::Exited(203),
            main_pid: 0,
            status_text: String::new(),
            program: Some("/opt/x/bin/ImageServer".into()),
            restarts: 1,
            job_id,
            main_started_monotonic_us: 0,
            restart_prevented: (vec![78], vec![]),
            timing: FailureTiming::default(),
        }
    }

    /// Regression: a JVM stopped by the operator (exit 143 without `SuccessExitStatus=`, or
    /// SIGKILL after the stop timeout) after an earlier automatic restart was called a
    /// give-up, and the alert hook paged the on-call for a routine stop.
    #[test]
    fn a_failure_at_the_exit_is_a_stop_and_one_after_restart_sec_a_give_up() {
        let failed = |exited_us, failed_us, restart_us| {
            let mut s = state(ActiveState::Failed, "failed", "exit-code", 0);
            s.exec_status = ExecStatus::Exited(143);
            s.timing = FailureTiming {
                exited_us,
                failed_us,
                restart_us,
            };
            s.gave_up()
        };
        // The start limit refused the restart attempted RestartSec= (2 s) after the exit.
        assert!(failed(10_000_000, 12_000_300, 2_000_000));
        // Failed at the exit: a stop that ended badly.
        assert!(!failed(10_000_000, 10_000_150, 2_000_000));
        // Stopped while RestartSec= ran (before the attempt).
        assert!(!failed(10_000_000, 11_000_000, 2_000_000));
        // Timestamps unknown: as before, the restart count decides.
        assert!(failed(0, 0, 2_000_000));
        // No automatic restart ever: never a give-up.
        let mut s = state(ActiveState::Failed, "failed", "exit-code", 0);
        s.restarts = 0;
        assert!(!s.gave_up());
    }

    #[test]
    fn missing_binary_is_described_with_its_path() {
        let s = state(ActiveState::Failed, "failed", "exit-code", 0);
        assert!(s.has_failed());
        let why = s.failure_reason();
        assert!(why.contains("status 203"), "{why}");
        assert!(why.contains("/opt/x/bin/ImageServer"), "{why}");
    }

    /// Regression: a unit that Restart= brings back, or that shows `failed` between the
    /// halves of a restart job, failed `start` and `restart`.
    #[test]
    fn only_a_unit_systemd_will_not_bring_back_has_failed() {
        for (s, failed) in [
            (
                state(ActiveState::Activating, "auto-restart", "exit-code", 0),
                false,
            ),
            (
                state(
                    ActiveState::Activating,
                    "auto-restart-queued",
                    "exit-code",
                    7,
                ),
                false,
            ),
            (state(ActiveState::Failed, "failed", "exit-code", 12), false),
            (
                state(ActiveState::Activating, "auto-restart", "success", 0),
                false,
            ),
            (state(ActiveState::Failed, "failed", "signal", 0), true),
        ] {
            assert_eq!(s.has_failed(), failed, "{s:?}");
            assert_eq!(s.will_retry(), !failed, "{s:?}");
        }
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(
            ExecStatus::Killed(9).describe().as_deref(),
            Some("its process was killed by SIGKILL")
        );
        assert_eq!(ExecStatus::from_wire(2, 11), ExecStatus::Killed(11));
    }
}
