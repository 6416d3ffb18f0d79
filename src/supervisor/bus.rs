//! The supervisor's bus connection: the subscription to the units' signals, and a new
//! connection when the old one is gone (dbus-daemon restarted): a bus restart is not a crash.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::log::{self, Priority};
use super::{notify, Msg, Supervisor, CALL_TIMEOUT};
use crate::error::Error;
use crate::systemd::{Event, Manager, SystemdError};

impl Supervisor {
    /// The bus connection is gone (dbus-daemon or the manager restarted): connect again,
    /// subscribe again and re-read every state and setting, as often as it takes, with a
    /// back-off from 0.1 to 5 s. Probes pause meanwhile (no restart could be asked for);
    /// the watchdog is pinged (sd_notify does not go through the bus), so a bus restart is
    /// never a supervisor restart. Returns `true` on a request to terminate.
    pub(super) fn reconnect(&mut self, why: &str) -> bool {
        log::log(
            Priority::Warning,
            &format!("lost the bus connection ({why}); reconnecting"),
        );
        self.set_status(format!("reconnecting to the bus: {why}"));
        let since = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            // Stale messages of the old connection are dropped; a SIGTERM is not.
            let until = Instant::now() + pause;
            while let Ok(msg) = self
                .rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                if matches!(msg, Msg::Terminate) {
                    return self.terminate();
                }
            }
            if self.watchdog.is_some() {
                notify(&[NotifyState::Watchdog]);
            }
            attempts += 1;
            match self.attach() {
                Ok(()) => {
                    log::log(
                        Priority::Notice,
                        &format!(
                            "reconnected to the bus after {:.1}s ({attempts} attempts)",
                            since.elapsed().as_secs_f64()
                        ),
                    );
                    return false;
                }
                // One line for the first failure and then one a minute or so, not one per try.
                Err(e) if attempts == 1 || attempts.is_multiple_of(12) => log::log(
                    Priority::Warning,
                    &format!("cannot reconnect to the bus yet (attempt {attempts}): {e}"),
                ),
                Err(_) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// A new connection, with the units loaded, the signals subscribed and every state and
    /// probe setting read again; it replaces the old one only when all of that worked.
    fn attach(&mut self) -> Result<(), Error> {
        let mgr = Manager::connect_within(self.scope, self.scope.bus_address(), CALL_TIMEOUT)?;
        let mut paths = Vec::with_capacity(self.watched.len());
        for w in &self.watched {
            paths.push(mgr.load_unit(w.component.unit())?);
        }
        let strs: Vec<&str> = paths.iter().map(|p| p.as_str()).collect();
        subscribe(&mgr, &strs, &self.tx)?;
        self.mgr = mgr;
        for (w, path) in self.watched.iter_mut().zip(paths) {
            w.path = path;
        }
        self.refresh(None)?;
        self.reload_settings()
    }
}

/// Forward the manager's signals about `paths` to the main loop, until the connection ends
/// (then a [`Msg::BusLost`] is the last message).
pub(super) fn subscribe(
    mgr: &Manager,
    paths: &[&str],
    tx: &Sender<Msg>,
) -> Result<(), SystemdError> {
    let tx = tx.clone();
    mgr.watch(paths, move |event| {
        let msg = match event {
            Ok(Event::UnitChanged { path }) => Msg::Unit(path),
            Ok(Event::Reloaded) => Msg::Reloaded,
            Ok(Event::JobRemoved { .. }) => return true,
            Err(e) => Msg::BusLost(e.to_string()),
        };
        tx.send(msg).is_ok()
    })
}
