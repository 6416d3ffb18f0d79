//! Everything that speaks D-Bus to systemd's manager (`org.freedesktop.systemd1(5)`).
//!
//! The rest of the crate sees named structs ([`UnitInfo`], [`ServiceState`], [`Event`]) and
//! typed errors ([`SystemdError`]); D-Bus tuples, variants and error names stop here.
//!
//! One [`zbus`] connection per process, with a blocking interface. Calls that are independent
//! of each other are pipelined ([`Manager::get_many`]): all requests are written, then the
//! replies collected, so fetching a dozen properties costs one round trip rather than twelve.
//!
//! The connection is driven by the thread that waits on it: a short-lived command (`status`)
//! connects, asks and exits without starting a thread of its own. A thread that reads the
//! connection is started only when something must be read while nobody calls: signals
//! ([`Manager::events`], [`Manager::watch`]).

mod drive;
mod error;
mod events;
mod jobs;
mod manager;
mod state;

use zbus::zvariant::OwnedObjectPath;

pub use error::SystemdError;
pub use events::{Event, Events};
pub use jobs::{JobWait, Standing, Verdict};
pub use manager::{
    Manager, PropertyInterface, PropertyRequest, ReadsAndFileStates, UnitsWithProperties,
    DEFAULT_CALL_TIMEOUT,
};
pub use state::{
    exec_status, gave_up, prevented, ActiveState, ExecStatus, FailureTiming, RestartPrevented,
    ServiceState, SocketState, UnitInfo,
};

const DESTINATION: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";
const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";
const SOCKET_IFACE: &str = "org.freedesktop.systemd1.Socket";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";

/// One row of `ListUnitsByNames` as it comes off the wire (`a(ssssssouso)`).
type RawUnitInfo = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// The object path systemd gives a unit: its name with every byte that is not ASCII
/// alphanumeric written as `_xx` (`sd_bus_path_encode(3)`).
pub fn unit_path(name: &str) -> String {
    let mut path = String::with_capacity(MANAGER_PATH.len() + 6 + name.len() * 2);
    path.push_str(MANAGER_PATH);
    path.push_str("/unit/");
    if name.is_empty() {
        path.push('_');
    }
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("_{b:02x}"));
        }
    }
    path
}

/// Which service manager to talk to, as with `systemctl --system` / `systemctl --user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The system manager, over the system bus.
    System,
    /// The calling user's manager, over the session bus.
    User,
}

impl Scope {
    /// The bus address this scope uses, as the reference D-Bus library resolves it.
    pub fn bus_address(self) -> String {
        match self {
            Scope::System => std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".to_owned()),
            Scope::User => std::env::var("DBUS_SESSION_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .or_else(|| {
                    std::env::var("XDG_RUNTIME_DIR")
                        .ok()
                        .filter(|d| !d.is_empty())
                        .map(|d| format!("unix:path={d}/bus"))
                })
                .unwrap_or_else(|| {
                    // Without either variable there is no way to find the session bus; name
                    // the conventional place so the error message says what was tried.
                    format!(
                        "unix:path=/run/user/{}/bus",
                        crate::procinfo::effective_uid()
                    )
                }),
        }
    }

    /// `--user` or nothing, for hints printed to the operator.
    pub fn flag(self) -> &'static str {
        match self {
            Scope::System => "",
            Scope::User => " --user",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::System => "system",
            Scope::User => "user",
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_paths_are_escaped_as_systemd_does() {
        assert_eq!(
            super::unit_path("imageserving-image.service"),
            "/org/freedesktop/systemd1/unit/imageserving_2dimage_2eservice"
        );
        assert_eq!(
            super::unit_path("a@b_c.target"),
            "/org/freedesktop/systemd1/unit/a_40b_5fc_2etarget"
        );
    }
}
