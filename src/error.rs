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
    /// A job ended in a way that leaves the stack not as asked, for a reason we state.
    #[error("{0}")]
    NotAsAsked(String),
}

impl Error {
    /// The exit code for every command but `status`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Systemd(SystemdError::PermissionDenied { .. }) => exit::PRIVILEGE,
            Error::NotInstalled { .. } | Error::Masked { .. } => exit::NOT_INSTALLED,
            _ => exit::FAILURE,
        }
    }

    /// The exit code for `status` (LSB: 4 when the state cannot be determined).
    pub fn status_exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            _ => exit::PRIVILEGE,
        }
    }
}
