//! The crate-level error: every failure an operator can see, with its exit code.

use crate::component::Component;
use crate::systemd::{Scope, SystemdError};

/// LSB exit codes (`systemctl`, `supervisorctl` and init scripts use the same).
pub mod exit {
    /// Success; for `status`, running.
    pub const OK: i32 = 0;
    /// Generic failure.
    pub const FAILURE: i32 = 1;
    /// Invalid or excess arguments.
    pub const USAGE: i32 = 2;
    /// For `status`: not running.
    pub const NOT_RUNNING: i32 = 3;
    /// Insufficient privilege; for `status`, state unknown.
    pub const PRIVILEGE: i32 = 4;
    /// Not installed.
    pub const NOT_INSTALLED: i32 = 5;
}

/// Something the command could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line was wrong.
    #[error("{0}")]
    Usage(String),
    /// A host given with `--host` or `--hosts` cannot be used.
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    /// Talking to the service manager failed.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    /// A unit of the stack is not installed for this manager.
    #[error("{unit} is not installed for the {scope} manager: install the imageserving package, or run 'packaging/install.sh{flag}'", flag = scope.flag())]
    NotInstalled {
        /// The missing unit.
        unit: String,
        /// Which manager.
        scope: Scope,
    },
    /// A unit of the stack is masked: it cannot be started until unmasked.
    #[error("{unit} is masked for the {scope} manager and cannot be started: unmask it with 'systemctl{flag} unmask {unit}'", flag = scope.flag())]
    Masked {
        /// The masked unit.
        unit: String,
        /// Which manager.
        scope: Scope,
    },
    /// A component's unit failed while we waited for it.
    #[error("{title} ({component}, {unit}) failed: {reason}", title = component.title(), unit = component.unit())]
    ComponentFailed {
        /// Which component.
        component: Component,
        /// Result, exit status and status text, in words.
        reason: String,
    },
    /// The supervisor's unit failed while we waited for it.
    #[error("the Server Supervisor ({unit}) failed: {reason}", unit = crate::component::SUPERVISOR)]
    SupervisorFailed {
        /// Result, exit status and status text, in words.
        reason: String,
    },
    /// A component's socket, switched on, does not hold its port after a start.
    #[error("the socket of {title} ({component}, {socket}) is {state} instead of listening: another program may hold the port; see '{hint}'", title = component.title(), socket = component.socket())]
    SocketDown {
        /// Which component.
        component: Component,
        /// The socket's state in words.
        state: String,
        /// The command that shows the socket's log.
        hint: String,
    },
    /// A component switched to its socket tried to bind the port itself instead of taking
    /// the socket, and so serves nothing.
    #[error("{title} ({component}) did not take the socket systemd holds for it ({socket}, {listen}): it tried to bind the port itself and logged \"{line}\". Tomcat needs useInheritedChannel=\"true\" on the connector and StandardInput=socket in a drop-in on {unit} (README, \"Restarts that drop no request\"); to run it without the socket: systemctl disable {socket}, then ImageServing restart {component}", title = component.title(), socket = component.socket(), unit = component.unit())]
    SocketNotTaken {
        /// Which component.
        component: Component,
        /// What the socket listens on.
        listen: String,
        /// The server's own line about the failed bind.
        line: String,
    },
    /// A component is active but did not answer its probe in the time the supervisor gives
    /// it.
    #[error("{waiting} {verb} active but not serving after {secs}s ({why})", verb = if *.several { "are" } else { "is" }, secs = .after.as_secs(), why = if *.limit == crate::probe::KEY_START_TIMEOUT { format!("the supervisor's start timeout, {}", crate::probe::KEY_START_TIMEOUT) } else { format!("the start grace, {}, and the probe failures the supervisor allows", crate::probe::KEY_START_GRACE) })]
    ServeTimeout {
        /// Each component still waited for, with its probe and why it failed.
        waiting: String,
        /// Whether that is more than one.
        several: bool,
        /// How long we waited.
        after: std::time::Duration,
        /// The setting that set the limit ([`crate::probe::KEY_START_GRACE`] or
        /// [`crate::probe::KEY_START_TIMEOUT`]).
        limit: &'static str,
    },
    /// A unit went down while we waited for it to come up: another command stopped it.
    #[error("{label} ({unit}) is {state} while {doing} waited for it: another command stopped it")]
    StoppedMeanwhile {
        /// `ps`, `is`, `svg` or `supervisor`.
        label: String,
        /// Its unit.
        unit: String,
        /// Its state now.
        state: String,
        /// `starting`, `restarting`.
        doing: String,
    },
    /// A unit came up again while `stop` waited: another command started it.
    #[error("{unit} is {state} again: another command started it while the stack was stopping")]
    StartedDuringStop {
        /// The unit.
        unit: String,
        /// Its state now.
        state: String,
    },
    /// The units are inactive but processes of theirs are left.
    #[error("the units are inactive but processes are left: {0}")]
    ProcessesLeft(String),
    /// A job ended with a result other than `done` or `skipped`.
    #[error("the {kind} job of {unit} ended with result '{result}'")]
    JobFailed {
        /// `start`, `restart`.
        kind: &'static str,
        /// The job's unit.
        unit: String,
        /// systemd's job result.
        result: String,
    },
    /// A component's probe settings cannot be used.
    #[error(transparent)]
    Setting(#[from] crate::probe::SettingError),
    /// The manager's answer lacked something it always has (a unit we asked for).
    #[error("the {scope} service manager's answer lacked {what}")]
    BadAnswer {
        /// Which manager.
        scope: Scope,
        /// What was missing.
        what: String,
    },
    /// A channel of the alert hook (the mail, the command) could not deliver the alert.
    #[error("{summary} (not delivered: {why})")]
    AlertNotSent {
        /// The alert's one line.
        summary: String,
        /// What went wrong with the command.
        why: String,
    },
    /// The supervisor's bus connection ended (it reconnects; this never reaches a user).
    #[error("lost the bus connection: {0}")]
    BusLost(String),
    /// The supervisor could not set up its signal handling.
    #[error("cannot handle signals: {0}")]
    Signals(String),
    /// The output could not be encoded.
    #[error("cannot encode the output as JSON: {0}")]
    Encode(String),
}

impl Error {
    /// The unit whose failure this is, when it is one unit's.
    pub fn failed_unit(&self) -> Option<&'static str> {
        match self {
            Error::ComponentFailed { component, .. } => Some(component.unit()),
            Error::SupervisorFailed { .. } => Some(crate::component::SUPERVISOR),
            _ => None,
        }
    }

    /// The exit code for every command but `status`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Host(_) => exit::USAGE,
            Error::Systemd(SystemdError::PermissionDenied { .. }) => exit::PRIVILEGE,
            Error::NotInstalled { .. } | Error::Masked { .. } => exit::NOT_INSTALLED,
            _ => exit::FAILURE,
        }
    }

    /// The exit code of the supervisor daemon: 78 (`EX_CONFIG`, sysexits.h) for a bad
    /// setting, which its unit does not restart on (`RestartPreventExitStatus=78`); 1 for
    /// everything else, which it does.
    pub fn daemon_exit_code(&self) -> i32 {
        match self {
            Error::Setting(_) => 78,
            _ => exit::FAILURE,
        }
    }

    /// The exit code for `status` (LSB: 4 when the state cannot be determined).
    pub fn status_exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Host(_) => exit::USAGE,
            _ => exit::PRIVILEGE,
        }
    }
}
