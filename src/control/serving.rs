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
    /// the wait with its error. One that never answers ends it once its own allowance is
    /// over ([`ProbeSettings::serve_deadline`], the time the supervisor gives it before it
    /// restarts it), counted from when its process started if this command (which `began`
    /// then) started it, else from now (a process that was already there, hung, gets the
    /// supervisor's replacement); and the `ceiling` from `began` when that comes first.
    pub(super) fn wait_serving(
        &self,
        units: &[StackUnit],
        (verb, began): (&str, Instant),
        ceiling: Option<Duration>,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let now = Instant::now();
        let mut pending = Vec::new();
        for unit in units {
            let env = self.mgr.unit_environment(unit.path.as_str())?;
            let Some(settings) = ProbeSettings::from_environment(unit.name, &env)? else {
                continue;
            };
            let state = self.mgr.service_state(unit.path.as_str())?;
            let from = state
                .main_process_age()
                .and_then(|age| now.checked_sub(age))
                .filter(|started| *started >= began)
                .unwrap_or(now);
            let mut deadline = (
                from + settings.serve_deadline(),
                settings.serve_deadline(),
                probe::KEY_START_GRACE,
            );
            if let Some(c) = ceiling {
                if began + c < deadline.0 {
                    deadline = (began + c, c, probe::KEY_START_TIMEOUT);
                }
            }
            pending.push((unit, settings, String::new(), deadline));
        }
        loop {
            let probes: Vec<_> = pending
                .iter()
                .map(|(_, p, _, _)| (p.target.clone(), p.timeout))
                .collect();
            let mut outcomes = probe::check_all(&probes).into_iter();
            pending.retain_mut(|(_, _, why, _)| match outcomes.next() {
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
            // Each is judged by its own allowance: the first that has had it all ends the
            // wait, naming every one that has, with its probe's last error.
            let now = Instant::now();
            let overdue: Vec<&(&StackUnit, ProbeSettings, String, (Instant, Duration, &str))> =
                pending
                    .iter()
                    .filter(|(_, _, _, (d, _, _))| now >= *d)
                    .collect();
            if let Some((_, _, _, (_, after, limit))) = overdue.first() {
                let waiting: Vec<String> = overdue
                    .iter()
                    .map(|(u, p, why, _)| format!("{} on {} ({why})", u.label(), p.target))
                    .collect();
                return Err(Error::ServeTimeout {
                    waiting: waiting.join(", "),
                    several: waiting.len() > 1,
                    after: *after,
                    limit,
                });
            }
            let labels: Vec<String> = pending.iter().map(|(u, _, _, _)| u.label()).collect();
            progress.show(&format!("waiting for {} to answer", labels.join(", ")));
            for (unit, _, _, _) in &pending {
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
