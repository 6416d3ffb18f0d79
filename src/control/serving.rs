//! The wait for components to answer their probes, after their jobs are done: polled, since
//! a port that opens sends no signal.

use std::time::{Duration, Instant};

use super::{Stack, StackUnit};
use crate::error::Error;
use crate::probe::{self, ProbeSettings};
use crate::progress::Progress;

/// How often a component that is active but not yet answering is probed again.
const PROBE_POLL: Duration = Duration::from_millis(50);
/// How often the journal of a component on a held socket is read for its failed bind.
const BIND_CHECK: Duration = Duration::from_secs(1);
/// What a server logs when it binds a port systemd holds: strerror(EADDRINUSE), which Java
/// (`java.net.BindException`), Python and Rust all print.
const BIND_FAILED: &str = "Address already in use";

/// One component waited for: its probe, its last probe error, and its own allowance.
struct Awaited<'a> {
    unit: &'a StackUnit,
    probe: ProbeSettings,
    why: String,
    /// When its allowance ends.
    deadline: Instant,
    /// How long the allowance is, and the setting that set it.
    allowance: (Duration, &'static str),
    /// What its socket listens on, when systemd holds its port; with the wall-clock time its
    /// process started and when its journal is read next for a failed bind.
    socket: Option<(String, std::time::SystemTime, Instant)>,
}

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
            let own = settings.serve_deadline();
            let (deadline, allowance) = match ceiling {
                Some(c) if began + c < from + own => (began + c, (c, probe::KEY_START_TIMEOUT)),
                _ => (from + own, (own, probe::KEY_START_GRACE)),
            };
            let socket = unit
                .component
                .and_then(|c| self.socket_of(c))
                .filter(|s| s.wanted || s.holds_port())
                .map(|s| {
                    let age = state.main_process_age().unwrap_or_default();
                    let started = std::time::SystemTime::now()
                        .checked_sub(age)
                        .unwrap_or(std::time::UNIX_EPOCH);
                    (s.listen.join(" "), started, now)
                });
            pending.push(Awaited {
                unit,
                probe: settings,
                why: String::new(),
                deadline,
                allowance,
                socket,
            });
        }
        loop {
            let probes: Vec<_> = pending
                .iter()
                .map(|a| (a.probe.target.clone(), a.probe.timeout))
                .collect();
            let mut outcomes = probe::check_all(&probes).into_iter();
            pending.retain_mut(|a| match outcomes.next() {
                Some(Ok(())) => false,
                Some(Err(e)) => {
                    a.why = e;
                    true
                }
                None => true,
            });
            if pending.is_empty() {
                progress.clear();
                return Ok(());
            }
            // A unit that failed ends the wait; one stopped under us (say, by a concurrent
            // `stop`) will not start serving. One that systemd is still bringing back (its
            // `Restart=` pending, or a job: the supervisor restarting a hung component) is
            // waited for whatever its allowance: systemd decides soon, and its verdict (it
            // serves, or it gave up) is the one to report.
            let mut retrying = Vec::with_capacity(pending.len());
            for Awaited { unit, .. } in &pending {
                let state = self.mgr.service_state(unit.path.as_str())?;
                if state.has_failed() {
                    return Err(unit.failure(&state));
                }
                if state.active_state.is_down() && !state.will_retry() {
                    return Err(Error::StoppedMeanwhile {
                        label: unit.label(),
                        unit: unit.name.to_owned(),
                        state: state.summary(),
                        doing: verb.to_lowercase(),
                    });
                }
                retrying.push(state.will_retry());
            }
            // A server on a held socket that tried to bind the port itself serves nothing,
            // ever: said at once, from its own log line, rather than after its allowance.
            for a in &mut pending {
                let (Some(c), Some((listen, started, next))) = (a.unit.component, &mut a.socket)
                else {
                    continue;
                };
                if Instant::now() < *next {
                    continue;
                }
                *next = Instant::now() + BIND_CHECK;
                let found = crate::journal::find_since(
                    self.mgr.scope(),
                    a.unit.name,
                    *started,
                    BIND_FAILED,
                );
                if let Some(line) = found {
                    return Err(Error::SocketNotTaken {
                        component: c,
                        listen: listen.clone(),
                        line,
                    });
                }
            }
            // Each is judged by its own allowance: the first that has had it all ends the
            // wait, naming every one that has, with its probe's last error.
            let now = Instant::now();
            let overdue: Vec<&Awaited> = pending
                .iter()
                .zip(&retrying)
                .filter(|(a, retrying)| now >= a.deadline && !**retrying)
                .map(|(a, _)| a)
                .collect();
            if let Some(first) = overdue.first() {
                let waiting: Vec<String> = overdue
                    .iter()
                    .map(|a| match (&a.socket, a.unit.component) {
                        (Some((listen, ..)), Some(c)) => format!(
                            "{} on {} ({}; {} holds its port, {listen}: a server that did not take that socket cannot bind the port and never answers)",
                            a.unit.label(),
                            a.probe.target,
                            a.why,
                            c.socket()
                        ),
                        _ => format!("{} on {} ({})", a.unit.label(), a.probe.target, a.why),
                    })
                    .collect();
                return Err(Error::ServeTimeout {
                    waiting: waiting.join(", "),
                    several: waiting.len() > 1,
                    after: first.allowance.0,
                    limit: first.allowance.1,
                });
            }
            let labels: Vec<String> = pending.iter().map(|a| a.unit.label()).collect();
            progress.show(&format!("waiting for {} to answer", labels.join(", ")));
            std::thread::sleep(PROBE_POLL);
        }
    }
}
