//! `stop`: the target's stop job, members the target cannot reach stopped by name, and the
//! wait until every unit is down and no process of the stack is left.

use super::{Outcome, Stack, StackUnit};
use crate::component::{self, Component, TARGET};
use crate::error::Error;
use crate::progress::Progress;
use crate::systemd::{ServiceState, Verdict};

impl Stack {
    /// Stop the target and wait until every unit is inactive and no process is left. The
    /// components' sockets stop too: no connection may start a stopped component again.
    pub fn stop(&self, progress: &mut Progress) -> Result<Outcome, Error> {
        let sockets = self.held_sockets(&Component::ALL);
        let names: Vec<&str> = std::iter::once(TARGET)
            .chain(self.services.iter().map(|u| u.name))
            .chain(sockets.iter().map(|u| u.name))
            .collect();
        let units: Vec<StackUnit> = std::iter::once(StackUnit {
            name: TARGET,
            component: None,
            path: self.target.clone(),
        })
        .chain(self.services.iter().cloned())
        .chain(sockets.iter().cloned())
        .collect();
        let wait = self.listen(&units)?;
        let before = self.mgr.list_units_by_names(&names)?;
        if before
            .iter()
            .all(|u| u.active_state.is_down() && u.job_id == 0)
        {
            self.ensure_no_processes(&self.services)?;
            return Ok(Outcome::AlreadyStopped);
        }
        // The target's stop job, when the target still has its file; without it, the
        // members are stopped by name below.
        let job = match before.first() {
            Some(t) if t.is_installed() && !t.is_masked() => Some(self.mgr.stop_unit(TARGET)?),
            _ => None,
        };
        // A masked member, or one whose unit file is gone, has lost its PartOf= (its unit
        // file is /dev/null now, or nothing): the target's stop does not reach it, so it is
        // stopped by name, as `systemctl stop` would.
        for info in before.iter().skip(1).filter(|u| {
            (job.is_none() || u.is_masked() || !u.is_installed()) && !u.active_state.is_down()
        }) {
            self.mgr.stop_unit(&info.name)?;
        }
        // The target's stop reaches the sockets it wants (StopPropagatedFrom=); one started
        // by hand, or any when the target cannot be stopped, is stopped by name.
        for socket in &sockets {
            self.mgr.stop_unit(socket.name)?;
        }
        // The target's own stop job ends before its members stop (they are ordered after
        // it at stop time), so the wait is on the members' states, not on that job.
        wait.until(job.as_ref(), |now| {
            let running: Vec<&str> = units
                .iter()
                .zip(now.states)
                .filter(|(_, s)| !s.active_state.is_down())
                .map(|(u, _)| component::label_of(u.name))
                .collect();
            if running.is_empty() {
                return Verdict::Done(());
            }
            // With the stop job gone, anything still up with no job pending is not going
            // to stop: someone started it again while we were stopping.
            if job.is_none() || now.result.is_some() {
                if let Some(e) = started_meanwhile(&units, now.states) {
                    return Verdict::Fail(e);
                }
            }
            progress.show(&format!("waiting for {} to stop", running.join(", ")));
            Verdict::Wait
        })?;
        progress.clear();
        self.ensure_no_processes(&self.services)?;
        Ok(Outcome::Stopped)
    }

    /// Stop one component's unit and wait until it is down and no process of it is left.
    /// The supervisor takes a unit that is down with no job pending for one the operator
    /// stopped, and leaves it so. Its socket stops first: a stopped component refuses
    /// connections, and none starts it again.
    pub fn stop_component(
        &self,
        component: Component,
        progress: &mut Progress,
    ) -> Result<Outcome, Error> {
        let unit = self.unit_of(component)?;
        let units = std::slice::from_ref(unit);
        let socket = self.held_sockets(&[component]);
        let watched: Vec<StackUnit> = units.iter().chain(&socket).cloned().collect();
        let wait = self.listen(&watched)?;
        let before = self.mgr.service_state(unit.path.as_str())?;
        if before.active_state.is_down() && before.job_id == 0 && socket.is_empty() {
            self.ensure_no_processes(units)?;
            return Ok(Outcome::ComponentAlreadyStopped(component));
        }
        for s in &socket {
            self.mgr.stop_unit(s.name)?;
        }
        let job = self.mgr.stop_unit(unit.name)?;
        wait.until(Some(&job), |now| {
            if now.states.iter().all(|s| s.active_state.is_down()) {
                return Verdict::Done(());
            }
            if now.result.is_some() {
                if let Some(e) = started_meanwhile(&watched, now.states) {
                    return Verdict::Fail(e);
                }
            }
            progress.show(&format!("waiting for {component} to stop"));
            Verdict::Wait
        })?;
        progress.clear();
        self.ensure_no_processes(units)?;
        Ok(Outcome::ComponentStopped(component))
    }

    fn ensure_no_processes(&self, units: &[StackUnit]) -> Result<(), Error> {
        let mut left = Vec::new();
        for unit in units {
            for (_cgroup, pid, cmd) in self.mgr.unit_processes(unit.name)? {
                left.push(format!("{} pid {pid} ({cmd})", unit.name));
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::ProcessesLeft(left.join(", ")))
        }
    }
}

/// Once the stop job is gone: the first unit still up with no job pending, which is not going
/// to stop (another command started it again while we were stopping).
pub(super) fn started_meanwhile(units: &[StackUnit], states: &[ServiceState]) -> Option<Error> {
    units
        .iter()
        .zip(states)
        .find(|(_, s)| !s.active_state.is_down() && s.job_id == 0)
        .map(|(unit, state)| Error::StartedDuringStop {
            unit: unit.name.to_owned(),
            state: state.active_state.as_str().to_owned(),
        })
}
