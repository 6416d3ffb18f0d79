//! The wait for components to answer their probes, after their jobs are done: polled, since
//! a port that opens sends no signal.

use std::time::{Duration, Instant};

use super::{Stack, StackUnit};
use crate::error::Error;
use crate::probe::{self, ProbeSettings};
use crate::progress::Progress;

/// How often a component that is active but not yet answering is probed again.
const PROBE_POLL: Duration = Duration::from_millis(50);

impl Stack {
    /// Wait until each unit's health probe passes (units without a probe pass once active).
    /// Probes are polled: a port opening sends no signal. A unit that fails meanwhile ends
    /// the wait with its error; one that never answers, after the time the supervisor gives
    /// it ([`ProbeSettings::serve_deadline`]), or the `ceiling` when that is shorter.
    pub(super) fn wait_serving(
        &self,
        units: &[StackUnit],
        verb: &str,
        ceiling: Option<Duration>,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let mut pending = Vec::new();
        for unit in units {
            let env = self.mgr.unit_environment(unit.path.as_str())?;
            let settings = ProbeSettings::from_environment(unit.name, &env)?;
            if let Some(settings) = settings {
                pending.push((unit, settings, String::new()));
            }
        }
        // As long as the supervisor would give each of them (one setting for both).
        let by_probes = pending
            .iter()
            .map(|(_, p, _)| p.serve_deadline())
            .max()
            .unwrap_or_default();
        let (allowed, limit) = match ceiling {
            Some(c) if c < by_probes => (c, probe::KEY_START_TIMEOUT),
            _ => (by_probes, probe::KEY_START_GRACE),
        };
        let deadline = Instant::now() + allowed;
        loop {
            let probes: Vec<_> = pending
                .iter()
                .map(|(_, p, _)| (p.target.clone(), p.timeout))
                .collect();
            let mut outcomes = probe::check_all(&probes).into_iter();
            pending.retain_mut(|(_, _, why)| match outcomes.next() {
                Some(Ok(())) => false,
                Some(Err(e)) => {
                    *why = e;
                    true
                }
                None => true,
            });
            if pending.is_empty() {
                progress.clear();
                return Ok(());
            }
            let waiting: Vec<String> = pending
                .iter()
                .map(|(u, p, why)| format!("{} on {} ({why})", u.label(), p.target))
                .collect();
            if Instant::now() >= deadline {
                return Err(Error::ServeTimeout {
                    waiting: waiting.join(", "),
                    several: waiting.len() > 1,
                    after: allowed,
                    limit,
                });
            }
            let labels: Vec<String> = pending.iter().map(|(u, _, _)| u.label()).collect();
            progress.show(&format!("waiting for {} to answer", labels.join(", ")));
            for (unit, _, _) in &pending {
                let state = self.mgr.service_state(unit.path.as_str())?;
                if state.has_failed() {
                    return Err(unit.failure(&state));
                }
                // Stopped under us (say, by a concurrent `stop`): it will not start serving.
                // Down with a job pending is on its way back (the supervisor restarting a
                // hung component, between the stop and the start of its restart job).
                if state.active_state.is_down() && !state.will_retry() {
                    return Err(Error::StoppedMeanwhile {
                        label: unit.label(),
                        unit: unit.name.to_owned(),
                        state: state.summary(),
                        doing: verb.to_lowercase(),
                    });
                }
            }
            std::thread::sleep(PROBE_POLL);
        }
    }
}
