//! Phase 2 of the supervisor: probe each component when due, restart through systemd what
//! stops serving (as [`Health`] decides), and say where things stand in `STATUS=`.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::health::{Health, Step};
use super::log::{self, Priority};
use super::watched::Watched;
use super::{notify, Msg, Supervisor};
use crate::error::Error;
use crate::probe;
use crate::procinfo::Sample;
use crate::systemd::ActiveState;

/// What a [`Step`] is about.
#[derive(Debug, Clone, Copy)]
enum Reason {
    /// The component's probe.
    Probe,
    /// Its unit's memory against its limit, in bytes.
    Memory { rss: u64, limit: u64 },
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
                .filter_map(|w| w.health.as_ref().map(Health::next_probe))
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
            self.apply(i, now, step, Reason::Probe);
        }
        // The memory of each component probed that has a limit, read at the same pace.
        for i in due {
            let Some(w) = self.watched.get(i) else {
                continue;
            };
            let (Some(limit), pid) = (w.memory_limit, w.main_pid) else {
                continue;
            };
            let Some(rss) = crate::procinfo::unit_rss(&mut self.procs, &self.cgroups, pid) else {
                continue;
            };
            let Some(h) = self.watched.get_mut(i).and_then(|w| w.health.as_mut()) else {
                continue;
            };
            let step = h.memory(now, rss > limit);
            self.apply(i, now, step, Reason::Memory { rss, limit });
        }
    }

    /// Act on what [`Health`] decided for component `i`: log, and restart it through systemd
    /// when its failures (or readings over its memory limit) reach the limit and the
    /// back-off allows.
    fn apply(&mut self, i: usize, now: Instant, step: Step, reason: Reason) {
        let Some(w) = self.watched.get_mut(i) else {
            return;
        };
        let Some(h) = &mut w.health else {
            return;
        };
        let target = h.settings().target.clone();
        let what = match reason {
            Reason::Probe => format!(
                "not answering on {target} ({})",
                h.last_error().unwrap_or_default()
            ),
            Reason::Memory { rss, limit } => format!(
                "using {} of memory (RSS), above its limit of {} ({})",
                crate::table::bytes(rss),
                crate::table::bytes(limit),
                probe::KEY_MEMORY_RESTART
            ),
        };
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
                match self.mgr.restart_unit(unit) {
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
                            // alert is then this one `crit` entry, which the journal's own
                            // forwarding and alerting pick up.
                            let alert = format!("imageserving-alert@{unit}.service");
                            if let Err(e2) = self.mgr.start_unit(&alert) {
                                log::log(
                                    Priority::Crit,
                                    &format!(
                                        "{} {what} and cannot be restarted ({e}); the alert hook {alert} cannot be started either ({e2}): is polkitd running?",
                                        w.component
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) fn summary(&self) -> String {
        let serving = self.watched.iter().filter(|w| w.serving()).count();
        let total = self.watched.len();
        if serving == total {
            return format!("{serving}/{total} components serving");
        }
        let problems: Vec<String> = self
            .watched
            .iter()
            .filter(|w| !w.serving())
            .map(Watched::problem)
            .collect();
        format!(
            "{serving}/{total} components serving; {}",
            problems.join(", ")
        )
    }
}
