//! Phase 2 of the supervisor: probe each component when due, restart through systemd what
//! stops serving (as [`Health`] decides), and say where things stand in `STATUS=`.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::health::{Health, Step};
use super::log::{self, Priority};
use super::memory::{Guard, MemoryGuard};
use super::watched::Watched;
use super::watched::RESTART_REFUSED;
use super::{notify, Msg, Supervisor};
use crate::error::Error;
use crate::probe;
use crate::procinfo::Sample;
use crate::systemd::ActiveState;

/// What `STATUS=` says after a component's name when its memory stays above its limit
/// after every restart.
pub const MEMORY_TOO_LOW: &str = "is above its memory limit after every restart (limit too low)";

/// Whether the supervisor's `STATUS=` text says that component `name` needs an operator: a
/// restart it was refused, or a memory limit no restart relieves. The alert hook asks this
/// of a unit that is not failed.
pub fn needs_attention(status: &str, name: &str) -> bool {
    [MEMORY_TOO_LOW, RESTART_REFUSED]
        .iter()
        .any(|what| status.contains(&format!("{name} {what}")))
}

impl Supervisor {
    /// Phase 2: probe periodically, restart what stops serving, summarise in STATUS=.
    pub(super) fn monitor(mut self) -> Result<(), Error> {
        let mut next_ping = Instant::now();
        let mut next_recheck = Instant::now();
        loop {
            let now = Instant::now();
            // A state read while the manager re-executes can come back as neither of the
            // known ones, and a stopped unit sends no further change to correct it: read
            // such units again, twice a second, until they say what they are.
            let unsure: Vec<_> = self
                .watched
                .iter()
                .filter(|w| w.state == ActiveState::Other)
                .map(|w| w.path.clone())
                .collect();
            if now >= next_recheck {
                for path in &unsure {
                    let _ = self.tx.send(Msg::Unit(path.clone()));
                }
                next_recheck = now + Duration::from_millis(500);
            }
            self.probe_round(now);
            self.memory_round(now);
            let summary = self.summary();
            self.set_status(summary);
            if let Some(wd) = self.watchdog {
                if now >= next_ping {
                    notify(&[NotifyState::Watchdog]);
                    next_ping = now + wd;
                }
            }
            let mut wake = self
                .watched
                .iter()
                .filter(|w| w.state == ActiveState::Active)
                .flat_map(|w| {
                    let probe = w.health.as_ref().map(Health::next_probe);
                    let memory = w.memory.as_ref().map(MemoryGuard::next_reading);
                    probe.into_iter().chain(memory)
                })
                .min()
                .unwrap_or(now + Duration::from_secs(60));
            if self.watchdog.is_some() {
                wake = wake.min(next_ping);
            }
            if !unsure.is_empty() {
                wake = wake.min(next_recheck);
            }
            if self.wait(wake.saturating_duration_since(Instant::now()))? {
                return Ok(());
            }
        }
    }

    /// Probe every component that is due, all at once: one round takes at most the longest
    /// probe timeout, whatever hangs, so the loop that pings the watchdog is never held up
    /// longer than that.
    fn probe_round(&mut self, now: Instant) {
        let mut due = Vec::new();
        let mut outcomes = Vec::new();
        let mut probes = Vec::new();
        for (i, w) in self.watched.iter_mut().enumerate() {
            let Some(h) = &mut w.health else {
                continue;
            };
            if w.state != ActiveState::Active || !h.take_due(now) {
                continue;
            }
            due.push(i);
            // A process stopped by a signal still has its port open (the kernel completes
            // TCP handshakes into the backlog), so a connect probe alone would call it
            // serving.
            if w.main_pid > 0 && self.procs.run_state(w.main_pid) == Sample::Value('T') {
                outcomes.push(Some(Err(format!(
                    "its main process {} is stopped (SIGSTOP)",
                    w.main_pid
                ))));
            } else {
                outcomes.push(None);
                probes.push((h.settings().target.clone(), h.settings().timeout));
            }
        }
        let mut probed = probe::check_all(&probes).into_iter();
        for (i, outcome) in due.iter().copied().zip(outcomes) {
            let outcome = outcome
                .or_else(|| probed.next())
                .unwrap_or_else(|| Err("no probe result".to_owned()));
            let Some(w) = self.watched.get_mut(i) else {
                continue;
            };
            let Some(h) = &mut w.health else {
                continue;
            };
            let step = h.probed(now, outcome);
            self.apply(i, now, step);
        }
    }

    /// Read the memory of each running component that has a limit and is due, and act on
    /// what its guard decides ([`MemoryGuard`]): with or without a probe.
    fn memory_round(&mut self, now: Instant) {
        for i in 0..self.watched.len() {
            let Some(w) = self.watched.get_mut(i) else {
                continue;
            };
            let pid = w.main_pid;
            let Some(g) = &mut w.memory else {
                continue;
            };
            if w.state != ActiveState::Active || pid == 0 || !g.take_due(now) {
                continue;
            }
            let Some(rss) = crate::procinfo::unit_rss(&mut self.procs, &self.cgroups, pid) else {
                continue;
            };
            let decision = g.reading(now, rss);
            self.act_on_memory(i, now, decision, rss);
        }
    }

    fn act_on_memory(&mut self, i: usize, now: Instant, decision: Guard, rss: u64) {
        let Some(w) = self.watched.get_mut(i) else {
            return;
        };
        let Some(g) = &mut w.memory else {
            return;
        };
        let what = format!(
            "using {} of memory (RSS), above its limit of {} ({})",
            crate::table::bytes(rss),
            crate::table::bytes(g.limit()),
            probe::KEY_MEMORY_RESTART
        );
        let unit = w.component.unit();
        match decision {
            Guard::Quiet => {}
            Guard::Over { count, limit } => log::log(
                Priority::Warning,
                &format!("{} {what} ({count}/{limit})", w.component),
            ),
            Guard::Held {
                until,
                start_limit,
                news: true,
            } => log::log(
                Priority::Warning,
                &format!(
                    "{} still {what}; the next restart comes in {}s at the earliest ({})",
                    w.component,
                    until.saturating_duration_since(now).as_secs(),
                    if start_limit {
                        "keeping a start of the unit's start limit spare"
                    } else {
                        "backing off"
                    }
                ),
            ),
            Guard::Held { .. } => {}
            Guard::Restart => match self.mgr.try_restart_unit(unit) {
                Ok(_) => {
                    log::log(Priority::Warning, &format!("restarting {unit}: {what}"));
                    if g.restarted(now) {
                        let component = w.component;
                        let message = format!(
                            "{component} is above its memory limit after every restart: the limit is too low ({} = {}; it used {})",
                            probe::KEY_MEMORY_RESTART,
                            crate::table::bytes(g.limit()),
                            crate::table::bytes(rss)
                        );
                        log::log(Priority::Crit, &message);
                        self.raise_alert(unit, &message);
                    }
                }
                Err(e) => log::log(
                    Priority::Warning,
                    &format!("cannot restart {unit} for its memory now: {e}"),
                ),
            },
        }
    }

    /// Start the alert hook for `unit` (`imageserving-alert@UNIT.service`); where that is
    /// refused, `message` stays a `crit` entry, which the journal's own forwarding picks up.
    /// `STATUS=` says what is wrong first: the hook reads it to tell the supervisor's alert
    /// from a failure that `OnFailure=` reported and that is over ([`needs_attention`]).
    fn raise_alert(&mut self, unit: &str, message: &str) {
        let summary = self.summary();
        self.set_status(summary);
        let alert = format!("imageserving-alert@{unit}.service");
        if let Err(e) = self.mgr.start_unit(&alert) {
            log::log(
                Priority::Crit,
                &format!("{message}; the alert hook {alert} cannot be started ({e}): is polkitd running?"),
            );
        }
    }

    /// Act on what [`Health`] decided for component `i`: log, and restart it through systemd
    /// when its failures reach the limit and the back-off allows.
    fn apply(&mut self, i: usize, now: Instant, step: Step) {
        let Some(w) = self.watched.get_mut(i) else {
            return;
        };
        let Some(h) = &mut w.health else {
            return;
        };
        let target = h.settings().target.clone();
        let what = format!(
            "not answering on {target} ({})",
            h.last_error().unwrap_or_default()
        );
        match step {
            Step::Quiet | Step::Starting => {}
            Step::BackingOff => {
                if let Some(left) = h.backoff_news(now) {
                    log::log(
                        Priority::Warning,
                        &format!(
                            "{} still {what}; backing off: the next restart comes in {}s at the earliest",
                            w.component,
                            left.as_secs()
                        ),
                    );
                }
            }
            Step::NowServing => log::log(
                Priority::Info,
                &format!("{} serves on {target}", w.component),
            ),
            Step::Failed { count, limit } => log::log(
                Priority::Warning,
                &format!("{} {what} ({count}/{limit})", w.component),
            ),
            Step::Restart { failures } => {
                let unit = w.component.unit();
                // A try-restart: if the operator stopped it, or systemd gave up on it, since
                // the probes failed, systemd leaves it down rather than start it again.
                match self.mgr.try_restart_unit(unit) {
                    Ok(_) => {
                        log::log(
                            Priority::Warning,
                            &format!("restarting {unit}: {what}, {failures} times in a row"),
                        );
                        h.restarted(now);
                    }
                    // The bus went away under the call: the reconnect follows, and the
                    // failures still count, so the restart is asked for again then.
                    Err(e) if e.is_connection_lost() => log::log(
                        Priority::Warning,
                        &format!("cannot restart {unit} now: {e}"),
                    ),
                    Err(e) => {
                        if h.restart_refused(now) {
                            log::log(
                                Priority::Err,
                                &format!("giving up on {unit} for now: restart refused: {e}"),
                            );
                            // The operator's alert hook, once per give-up. Where polkit is
                            // what refused (stopped, missing), it refuses that start too: the
                            // alert is then the one `crit` entry raise_alert writes.
                            let component = w.component;
                            self.raise_alert(
                                unit,
                                &format!("{component} {what} and cannot be restarted ({e})"),
                            );
                        }
                    }
                }
            }
        }
    }

    pub(super) fn summary(&self) -> String {
        let too_low: String = self
            .watched
            .iter()
            .filter(|w| w.memory.as_ref().is_some_and(MemoryGuard::too_low))
            .map(|w| format!("; {} {MEMORY_TOO_LOW}", w.component))
            .collect();
        let serving = self.watched.iter().filter(|w| w.serving()).count();
        let total = self.watched.len();
        if serving == total {
            return format!("{serving}/{total} components serving{too_low}");
        }
        let problems: Vec<String> = self
            .watched
            .iter()
            .filter(|w| !w.serving())
            .map(Watched::problem)
            .collect();
        format!(
            "{serving}/{total} components serving; {}{too_low}",
            problems.join(", ")
        )
    }
}
