//! Errors of the D-Bus boundary, classified by what an operator can do about them.

use super::Scope;

/// What went wrong talking to a service manager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemdError {
    /// The bus could not be reached or the manager is not on it.
    #[error("cannot reach the {scope} service manager at {address}: {reason}{hint}", hint = unreachable_hint(*scope))]
    Unreachable {
        /// Which manager.
        scope: Scope,
        /// The bus address tried.
        address: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The bus or the manager refused us.
    #[error("permission denied by the {scope} service manager ({detail}): run as root or as a member of the group imageserving-admin, or use --user to manage your own stack")]
    PermissionDenied {
        /// Which manager.
        scope: Scope,
        /// The D-Bus error text.
        detail: String,
    },
    /// The manager does not know the unit (it is not loaded).
    #[error("no such unit: {detail}")]
    NoSuchUnit {
        /// The D-Bus error text.
        detail: String,
    },
    /// The bus or the manager did not answer in time (a stopped or overloaded PID 1 or
    /// dbus-daemon): nothing was changed by this call, as far as we know.
    #[error("the {scope} {who} did not answer within {secs} s; try again, or check 'systemctl{flag} status' and the journal", who = if *.bus { "bus" } else { "service manager" }, secs = .after.as_secs_f64().ceil(), flag = scope.flag())]
    NoAnswer {
        /// Which manager.
        scope: Scope,
        /// Whether the bus itself (connecting, authenticating) did not answer.
        bus: bool,
        /// How long we waited.
        after: std::time::Duration,
    },
    /// Any other failed call, with the method and what the manager said.
    #[error("{method} call to the {scope} service manager failed: {detail}")]
    Call {
        /// Which manager.
        scope: Scope,
        /// The D-Bus method.
        method: &'static str,
        /// The D-Bus error text.
        detail: String,
    },
}

fn unreachable_hint(scope: Scope) -> &'static str {
    match scope {
        Scope::System => " (is systemd running as PID 1? use --user for a per-user manager)",
        Scope::User => " (is a systemd user manager with its D-Bus session bus running? check XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS)",
    }
}

impl SystemdError {
    pub(super) fn from_connect(scope: Scope, address: &str, err: zbus::Error) -> SystemdError {
        let io_kind = match &err {
            zbus::Error::InputOutput(e) => Some(e.kind()),
            zbus::Error::Connection(e, _) => Some(e.kind()),
            _ => None,
        };
        if io_kind == Some(std::io::ErrorKind::PermissionDenied) {
            return SystemdError::PermissionDenied {
                scope,
                detail: format!("connecting to {address}: {err}"),
            };
        }
        if let zbus::Error::Handshake(detail) = &err {
            return SystemdError::PermissionDenied {
                scope,
                detail: format!("the bus at {address} rejected our credentials: {detail}"),
            };
        }
        SystemdError::Unreachable {
            scope,
            address: address.to_owned(),
            reason: describe(&err),
        }
    }

    pub(super) fn from_call(scope: Scope, method: &'static str, err: zbus::Error) -> SystemdError {
        let (name, detail) = match &err {
            zbus::Error::MethodError(name, detail, _) => {
                (name.as_str().to_owned(), detail.clone().unwrap_or_default())
            }
            zbus::Error::FDO(fdo) => {
                let name = zbus::DBusError::name(fdo.as_ref()).as_str().to_owned();
                (
                    name,
                    zbus::DBusError::description(fdo.as_ref())
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
            // The connection broke under the call (dbus-daemon went away).
            zbus::Error::InputOutput(e) => {
                return SystemdError::Unreachable {
                    scope,
                    address: scope.bus_address(),
                    reason: format!("the bus connection broke during {method}: {e}"),
                }
            }
            other => {
                return SystemdError::Call {
                    scope,
                    method,
                    detail: describe(other),
                }
            }
        };
        match name.as_str() {
            "org.freedesktop.DBus.Error.AccessDenied"
            | "org.freedesktop.DBus.Error.AuthFailed"
            | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                SystemdError::PermissionDenied { scope, detail }
            }
            "org.freedesktop.systemd1.NoSuchUnit" | "org.freedesktop.systemd1.LoadFailed" => {
                SystemdError::NoSuchUnit { detail }
            }
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => SystemdError::Unreachable {
                scope,
                address: scope.bus_address(),
                reason: format!("no service manager on this bus ({detail})"),
            },
            _ => SystemdError::Call {
                scope,
                method,
                detail: if detail.is_empty() { name } else { detail },
            },
        }
    }

    /// Whether the call failed because the bus or the manager is gone or stalled, rather than
    /// because the manager said no: worth reconnecting, not worth reporting as a refusal.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            SystemdError::Unreachable { .. } | SystemdError::NoAnswer { .. }
        )
    }

    /// Whether a failed property read means the whole read is pointless (no access, no bus)
    /// rather than one object having gone away.
    pub(super) fn is_fatal_for_reads(&self) -> bool {
        matches!(
            self,
            SystemdError::PermissionDenied { .. }
                | SystemdError::Unreachable { .. }
                | SystemdError::NoAnswer { .. }
        )
    }
}

fn describe(err: &zbus::Error) -> String {
    match err {
        zbus::Error::InputOutput(e) => e.to_string(),
        zbus::Error::Connection(e, _) => e.to_string(),
        other => other.to_string(),
    }
}
