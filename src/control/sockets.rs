//! Components on sockets systemd holds (`imageserving-NAME.socket`): switching a component to
//! its socket before it starts, the checks that a held port needs, and the socket's own stop.
//!
//! A socket is "switched on" when the target wants it (`systemctl enable`): starting the
//! stack then starts it. Its service must not hold the port itself when the socket starts, so
//! a component still running on its own bind is stopped first; from then on systemd passes the
//! socket to every process of the service, and restarts leave it (and its backlog) alone.

use super::{Stack, StackUnit};
use crate::component::Component;
use crate::error::Error;
use crate::probe::{self, ProbeSettings};
use crate::progress::Progress;
use crate::systemd::{SocketState, Verdict};

impl Stack {
    /// The socket unit of `component`, as read when the stack was opened.
    pub(super) fn socket_of(&self, component: Component) -> Option<&SocketState> {
        self.sockets
            .iter()
            .find(|(c, _)| *c == component)
            .map(|(_, s)| s)
    }

    /// Refuse, before anything changes, a component switched to its socket whose probe
    /// cannot see through it (a TCP connect to a held port always succeeds).
    pub(super) fn check_probes_behind_sockets(
        &self,
        components: &[Component],
    ) -> Result<(), Error> {
        for &c in components {
            if !self.socket_of(c).is_some_and(SocketState::in_use) {
                continue;
            }
            let unit = self.unit_of(c)?;
            let env = self.mgr.unit_environment(unit.path.as_str())?;
            let settings = ProbeSettings::from_environment(unit.name, &env)?;
            probe::check_behind_socket(unit.name, settings.as_ref(), c.socket())?;
        }
        Ok(())
    }

    /// The components among `components` switched to a socket that does not hold the port
    /// yet while their service runs (bound to the port itself): the service is stopped, so
    /// that the socket can take the port and the next start runs on it. Waits until each is
    /// down.
    pub(super) fn switch_to_sockets(
        &self,
        components: &[Component],
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let mut stopping: Vec<StackUnit> = Vec::new();
        for &c in components {
            let Some(socket) = self.socket_of(c) else {
                continue;
            };
            if !socket.wanted || socket.holds_port() || socket.info.is_masked() {
                continue;
            }
            let unit = self.unit_of(c)?;
            let state = self.mgr.service_state(unit.path.as_str())?;
            if !state.active_state.is_down() || state.job_id != 0 {
                stopping.push(unit.clone());
            }
        }
        if stopping.is_empty() {
            return Ok(());
        }
        let wait = self.listen(&stopping)?;
        for unit in &stopping {
            self.mgr.stop_unit(unit.name)?;
        }
        wait.until(None, |now| -> Verdict<(), Error> {
            if now.states.iter().all(|s| s.active_state.is_down()) {
                return Verdict::Done(());
            }
            // Up with no job left: its stop was replaced (another command started it).
            if let Some(e) = super::stop::started_meanwhile(&stopping, now.states) {
                return Verdict::Fail(e);
            }
            let labels: Vec<String> = stopping.iter().map(StackUnit::label).collect();
            progress.show(&format!(
                "stopping {} to switch it to its socket",
                labels.join(", ")
            ));
            Verdict::Wait
        })?;
        Ok(())
    }

    /// Start the socket of `component` when it is switched on and does not hold its port;
    /// wait until it listens.
    pub(super) fn start_socket(&self, component: Component) -> Result<(), Error> {
        let Some(socket) = self.socket_of(component) else {
            return Ok(());
        };
        if !socket.wanted || socket.holds_port() {
            return Ok(());
        }
        let unit = StackUnit {
            name: component.socket(),
            component: None,
            path: socket.info.path.clone(),
        };
        let wait = self.listen(std::slice::from_ref(&unit))?;
        self.mgr.reset_failed_unit(unit.name)?;
        let job = self.mgr.start_unit(unit.name)?;
        wait.until(Some(&job), |now| -> Verdict<(), Error> {
            match now.result {
                Some(_) => Verdict::Done(()),
                None => Verdict::Wait,
            }
        })?;
        self.sockets_hold(&[component])
    }

    /// After a start: every socket switched on among `components` holds its port. One that
    /// could not (another program holds the port) is named with its state.
    pub(super) fn sockets_hold(&self, components: &[Component]) -> Result<(), Error> {
        let names: Vec<&str> = components.iter().map(|c| c.socket()).collect();
        let now = self.mgr.sockets(&names, crate::component::TARGET)?;
        for (c, socket) in components.iter().zip(now) {
            if socket.wanted && !socket.holds_port() {
                return Err(Error::SocketDown {
                    component: *c,
                    state: socket.describe(),
                    hint: crate::journal::hint(self.mgr.scope(), c.socket()),
                });
            }
        }
        Ok(())
    }

    /// The socket units among `components` that hold their port now, as units to stop.
    pub(super) fn held_sockets(&self, components: &[Component]) -> Vec<StackUnit> {
        components
            .iter()
            .filter_map(|&c| {
                let s = self.socket_of(c)?;
                (!s.info.active_state.is_down() || s.info.job_id != 0).then(|| StackUnit {
                    name: c.socket(),
                    component: None,
                    path: s.info.path.clone(),
                })
            })
            .collect()
    }
}
