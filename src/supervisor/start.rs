//! Phase 1 of the supervisor: wait until every component that is coming up serves, then
//! tell systemd `READY=1` (`sd_notify(3)`), keeping its start timeout ahead while the start
//! progresses, and hand over to the monitoring phase.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::log::{self, Priority};
use super::watched::Watched;
use super::{notify, Supervisor, START_POLL};
use crate::error::Error;
use crate::probe;
use crate::systemd::ActiveState;

impl Supervisor {
    pub(super) fn run(mut self) -> Result<(), Error> {
        log::log(
            Priority::Info,
            "starting: waiting for ps, is and svg to serve",
        );
        self.refresh(None)?;
        for w in &mut self.watched {
            if let Some(h) = &mut w.health {
                if w.main_pid != 0 && self.served.pid(w.component) == Some(w.main_pid) {
                    h.served_before();
                }
            }
        }
        let started = Instant::now();
        let mut next_extend = Instant::now();
        let mut next_ping = Instant::now();
        // Phase 1: until everything serves that is coming up. A component that is down
        // with no job pending (stopped by the operator, or given up by systemd at its start
        // limit) is reported (STATUS=, the journal) and not waited for: waiting, or exiting,
        // would make systemd restart the supervisor in a loop (and a package upgrade's
        // try-restart wait for it) while nothing watches the healthy components. It is not
        // started either: the operator decides ('ImageServing start' or 'restart NAME'),
        // and the supervisor takes it up again once it is active.
        let starting = |w: &Watched| {
            w.state == ActiveState::Active && w.health.as_ref().is_some_and(|h| !h.serving())
        };
        loop {
            let probes: Vec<_> = self
                .watched
                .iter()
                .filter(|w| starting(w))
                .filter_map(Watched::settings)
                .map(|p| (p.target.clone(), p.timeout))
                .collect();
            let mut outcomes = probe::check_all(&probes).into_iter();
            for w in self.watched.iter_mut().filter(|w| starting(w)) {
                let Some(outcome) = outcomes.next() else {
                    break;
                };
                if let Some(h) = &mut w.health {
                    if h.probed_while_starting(outcome) {
                        log::log(
                            Priority::Info,
                            &format!("{} serves on {}", w.component, h.settings().target),
                        );
                    }
                }
            }
            let now = Instant::now();
            let waiting: Vec<String> = self
                .watched
                .iter()
                .filter(|w| {
                    !w.serving()
                        && !w.settled_down()
                        && !w
                            .health
                            .as_ref()
                            .is_some_and(|h| h.overdue(now) || h.proven())
                })
                .map(Watched::describe_wait)
                .collect();
            if waiting.is_empty() {
                break;
            }
            let status = format!("starting: waiting for {}", waiting.join(", "));
            self.set_status(status.clone());
            if now.duration_since(started) >= self.start_limit {
                // Exiting would make systemd restart the supervisor into the same wait, in
                // a loop, while nothing watches the components that do serve. Report ready
                // instead and watch: what still does not answer is restarted as a hung
                // component is, and the summary says what does not serve.
                log::log(
                    Priority::Err,
                    &format!(
                        "the stack did not become ready within {}s ({}); watching it as it is",
                        self.start_limit.as_secs(),
                        waiting.join(", ")
                    ),
                );
                break;
            }
            if now >= next_extend {
                // Keep systemd's start timeout at least 10 s ahead while we keep making
                // progress, up to our own ceiling.
                notify(&[NotifyState::ExtendTimeoutUsec(10_000_000)]);
                next_extend = now + Duration::from_secs(5);
            }
            if let Some(wd) = self.watchdog {
                if now >= next_ping {
                    notify(&[NotifyState::Watchdog]);
                    next_ping = now + wd;
                }
            }
            if self.wait(START_POLL)? {
                return Ok(());
            }
        }
        let summary = self.summary();
        self.set_status(summary.clone());
        notify(&[NotifyState::Ready]);
        log::log(
            if self.watched.iter().all(Watched::serving) {
                Priority::Notice
            } else {
                Priority::Err
            },
            &format!(
                "ready after {:.1}s: {summary}",
                started.elapsed().as_secs_f64()
            ),
        );
        self.monitor()
    }
}
