//! What the supervisor decides about one component from its probes, as a pure state
//! machine: the start grace, consecutive failures, the back-off between restarts, and giving
//! up when systemd refuses a restart. Time is an argument (`now`), never read here, so every
//! transition is tested with a made-up clock; the daemon loop (`mod.rs`) does the probing,
//! the D-Bus calls and the logging, and asks this module what to do.
//!
//! ```text
//!            process started                     probe ok
//!   ┌────────────────────────► Starting ─────────────────────────► Serving ◄──┐
//!   │                  (failures not counted                           │      │ probe ok
//!   │                   until the first answer                probe    │      │
//!   │                   or the grace is over)                 fails    ▼      │
//!   │                                                                Failing ─┘
//!   │                                              `failures` in a row │
//!   │                                                                  ▼
//!   └──────── restart (systemd) ◄──── back-off over? ──── yes ──── Restart
//!                                          │ no: wait for it
//!                                          ▼
//!                                      BackingOff
//! ```

use std::time::{Duration, Instant};

use crate::probe::ProbeSettings;

/// The first back-off after a restart; it doubles with every restart that did not help.
pub const MIN_BACKOFF: Duration = Duration::from_secs(10);
/// The longest back-off between two restarts of the same component.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The probe-driven state of one component.
#[derive(Debug, Clone)]
pub struct Health {
    settings: ProbeSettings,
    serving: bool,
    last_error: Option<String>,
    failures: u32,
    next_probe: Instant,
    /// When its current process started (as far as the supervisor saw).
    started: Instant,
    /// Whether its current process has answered a probe yet.
    proven: bool,
    backoff: Duration,
    not_before: Instant,
    refused: bool,
    /// Whether the current back-off has been reported (once per window).
    backoff_told: bool,
}

/// What to do after a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing new.
    Quiet,
    /// It answers again (or for the first time since it started): worth a log line.
    NowServing,
    /// It did not answer, within its start grace: not counted.
    Starting,
    /// A counted failure, `count` of the `limit` that trigger a restart.
    Failed {
        /// Consecutive failures so far.
        count: u32,
        /// How many trigger a restart.
        limit: u32,
    },
    /// Enough failures: restart it now, then report [`Health::restarted`] or
    /// [`Health::restart_refused`].
    Restart {
        /// Consecutive failures that led to it.
        failures: u32,
    },
    /// Enough failures, but the back-off after the last restart is not over.
    BackingOff,
}

impl Health {
    /// A component whose process the supervisor sees for the first time at `now`.
    pub fn new(settings: ProbeSettings, now: Instant) -> Health {
        Health {
            settings,
            serving: false,
            last_error: None,
            failures: 0,
            next_probe: now,
            started: now,
            proven: false,
            backoff: Duration::ZERO,
            not_before: now,
            refused: false,
            backoff_told: false,
        }
    }

    /// The probe settings in force.
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// New settings (after a `daemon-reload`): failures start over, and the next probe is
    /// due at once.
    pub fn set_settings(&mut self, settings: ProbeSettings, now: Instant) {
        self.settings = settings;
        self.failures = 0;
        self.next_probe = now;
    }

    /// Whether its last probe passed.
    pub fn serving(&self) -> bool {
        self.serving
    }

    /// Why its last probe failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether the last restart was refused (polkit said no; the supervisor waits
    /// [`MAX_BACKOFF`]). Not to be confused with systemd giving up on a unit.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Its current process answered a probe before this supervisor started (an earlier
    /// supervisor saw it serve): it is not starting, so a failure counts at once.
    pub fn served_before(&mut self) {
        self.proven = true;
    }

    /// Whether its current process has answered a probe (now or before a restart of the
    /// supervisor).
    pub fn proven(&self) -> bool {
        self.proven
    }

    /// Whether its current process has had all the time the supervisor gives a start
    /// ([`ProbeSettings::serve_deadline`]) without answering once: the start phase stops
    /// waiting for it, and the failures it goes on having count.
    pub fn overdue(&self, now: Instant) -> bool {
        !self.proven && now >= self.started + self.settings.serve_deadline()
    }

    /// When the next probe is due.
    pub fn next_probe(&self) -> Instant {
        self.next_probe
    }

    /// Whether a probe is due at `now`; if so, the one after is scheduled.
    pub fn take_due(&mut self, now: Instant) -> bool {
        if now < self.next_probe {
            return false;
        }
        self.next_probe = now + self.settings.interval;
        true
    }

    /// Its unit is not active, or runs a new main process: the new process must prove
    /// itself again, and gets the start grace to do so.
    pub fn process_started(&mut self, now: Instant) {
        self.serving = false;
        self.failures = 0;
        self.next_probe = now;
        self.started = now;
        self.proven = false;
    }

    /// A probe while the stack starts: nothing is counted, the first answer makes it
    /// serving. Returns whether it now serves for the first time.
    pub fn probed_while_starting(&mut self, outcome: Result<(), String>) -> bool {
        match outcome {
            Ok(()) => {
                let first = !self.serving;
                self.serving = true;
                self.proven = true;
                self.last_error = None;
                first
            }
            Err(e) => {
                self.last_error = Some(e);
                false
            }
        }
    }

    /// A probe's outcome once the stack runs.
    pub fn probed(&mut self, now: Instant, outcome: Result<(), String>) -> Step {
        match outcome {
            Ok(()) => {
                let newly = !self.serving;
                self.serving = true;
                self.proven = true;
                self.failures = 0;
                self.last_error = None;
                self.backoff = Duration::ZERO;
                self.refused = false;
                if newly {
                    Step::NowServing
                } else {
                    Step::Quiet
                }
            }
            Err(e) if !self.proven && now < self.started + self.settings.start_grace => {
                // Still starting (a Tomcat deploying): not a failure yet.
                self.serving = false;
                self.last_error = Some(e);
                Step::Starting
            }
            Err(e) => {
                self.failures += 1;
                self.serving = false;
                self.last_error = Some(e);
                self.after(self.failures, now)
            }
        }
    }

    /// What `count` failed probes in a row call for: another counted failure, a restart, or
    /// a wait for the back-off.
    fn after(&self, count: u32, now: Instant) -> Step {
        if count < self.settings.failures {
            Step::Failed {
                count,
                limit: self.settings.failures,
            }
        } else if now < self.not_before {
            Step::BackingOff
        } else {
            Step::Restart { failures: count }
        }
    }

    /// After a [`Step::BackingOff`]: how long until a restart may come again, the first
    /// time in this back-off window (worth one log line), `None` after that.
    pub fn backoff_news(&mut self, now: Instant) -> Option<Duration> {
        if self.backoff_told {
            return None;
        }
        self.backoff_told = true;
        Some(self.not_before.saturating_duration_since(now))
    }

    /// systemd took the restart: failures start over, and the next restart waits at least
    /// twice as long as the last (from [`MIN_BACKOFF`] to [`MAX_BACKOFF`]).
    pub fn restarted(&mut self, now: Instant) {
        self.backoff_told = false;
        self.failures = 0;
        self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        self.not_before = now + self.backoff;
    }

    /// systemd refused the restart (say, polkit said no): try again after [`MAX_BACKOFF`].
    /// Returns whether this is news (the first refusal in a row), worth a log line.
    pub fn restart_refused(&mut self, now: Instant) -> bool {
        let news = !self.refused;
        self.refused = true;
        self.backoff_told = false;
        self.backoff = MAX_BACKOFF;
        self.not_before = now + MAX_BACKOFF;
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Target;

    fn settings(failures: u32, grace: u64) -> ProbeSettings {
        ProbeSettings {
            target: Target::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            failures,
            start_grace: Duration::from_secs(grace),
        }
    }

    fn fail() -> Result<(), String> {
        Err("refused".into())
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn failures_inside_the_grace_do_not_count_until_the_first_answer() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(3, 300), t0);
        for i in 0..10 {
            assert_eq!(h.probed(t0 + S * i, fail()), Step::Starting);
        }
        assert!(!h.serving());
        assert_eq!(h.last_error(), Some("refused"));
        // Past the grace, they count.
        assert_eq!(
            h.probed(t0 + S * 301, fail()),
            Step::Failed { count: 1, limit: 3 }
        );
    }

    #[test]
    fn once_it_answered_the_grace_is_over() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(2, 300), t0);
        assert_eq!(h.probed(t0, Ok(())), Step::NowServing);
        assert_eq!(h.probed(t0 + S, Ok(())), Step::Quiet);
        assert_eq!(
            h.probed(t0 + S * 2, fail()),
            Step::Failed { count: 1, limit: 2 }
        );
        assert_eq!(h.probed(t0 + S * 3, fail()), Step::Restart { failures: 2 });
    }

    #[test]
    fn an_answer_resets_the_count() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(3, 0), t0);
        assert_eq!(h.probed(t0, fail()), Step::Failed { count: 1, limit: 3 });
        assert_eq!(
            h.probed(t0 + S, fail()),
            Step::Failed { count: 2, limit: 3 }
        );
        assert_eq!(h.probed(t0 + S * 2, Ok(())), Step::NowServing);
        assert_eq!(
            h.probed(t0 + S * 3, fail()),
            Step::Failed { count: 1, limit: 3 }
        );
    }

    #[test]
    fn restarts_back_off_doubling_up_to_five_minutes() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(1, 0), t0);
        let mut now = t0;
        assert_eq!(h.probed(now, fail()), Step::Restart { failures: 1 });
        let mut waits = Vec::new();
        for _ in 0..8 {
            h.restarted(now);
            h.process_started(now);
            // Failing again at once: the back-off holds the next restart.
            let mut wait = S;
            loop {
                match h.probed(now + wait, fail()) {
                    Step::BackingOff => wait += S,
                    Step::Restart { .. } => break,
                    other => panic!("{other:?}"),
                }
            }
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn serving_again_resets_the_back_off() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(1, 0), t0);
        assert_eq!(h.probed(t0, fail()), Step::Restart { failures: 1 });
        h.restarted(t0);
        assert_eq!(h.probed(t0 + S, Ok(())), Step::NowServing);
        // A new failure still waits out the current back-off (no flapping)...
        assert_eq!(h.probed(t0 + S * 2, fail()), Step::BackingOff);
        assert_eq!(h.probed(t0 + S * 10, fail()), Step::Restart { failures: 2 });
        h.restarted(t0 + S * 10);
        // ...but the back-off after it is the first one again (10 s), not the second (20 s).
        assert_eq!(h.probed(t0 + S * 19, fail()), Step::BackingOff);
        assert_eq!(h.probed(t0 + S * 20, fail()), Step::Restart { failures: 2 });
    }

    #[test]
    fn a_refused_restart_is_retried_after_five_minutes_and_reported_once() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(1, 0), t0);
        assert_eq!(h.probed(t0, fail()), Step::Restart { failures: 1 });
        assert!(h.restart_refused(t0));
        assert!(h.refused());
        assert_eq!(h.probed(t0 + S * 299, fail()), Step::BackingOff);
        assert_eq!(
            h.probed(t0 + S * 300, fail()),
            Step::Restart { failures: 3 }
        );
        assert!(!h.restart_refused(t0 + S * 300), "reported twice");
        assert_eq!(h.probed(t0 + S * 301, Ok(())), Step::NowServing);
        assert!(!h.refused());
    }

    #[test]
    fn a_new_process_gets_the_grace_again() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(3, 60), t0);
        assert_eq!(h.probed(t0, Ok(())), Step::NowServing);
        h.process_started(t0 + S * 100);
        assert!(!h.serving());
        assert_eq!(h.probed(t0 + S * 101, fail()), Step::Starting);
        assert_eq!(
            h.probed(t0 + S * 161, fail()),
            Step::Failed { count: 1, limit: 3 }
        );
    }

    #[test]
    fn probes_are_due_every_interval() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(3, 0), t0);
        assert!(h.take_due(t0));
        assert!(!h.take_due(t0 + S * 4));
        assert!(h.take_due(t0 + S * 5));
        assert_eq!(h.next_probe(), t0 + S * 10);
        h.process_started(t0 + S * 6);
        assert!(h.take_due(t0 + S * 6), "a new process is probed at once");
    }

    #[test]
    fn the_start_phase_counts_nothing() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(1, 0), t0);
        assert!(!h.probed_while_starting(fail()));
        assert!(!h.probed_while_starting(fail()));
        assert!(h.probed_while_starting(Ok(())));
        assert!(!h.probed_while_starting(Ok(())));
        // Once running, the first failure is the first counted.
        assert_eq!(h.probed(t0 + S, fail()), Step::Restart { failures: 1 });
    }

    #[test]
    fn new_settings_start_the_count_over() {
        let t0 = Instant::now();
        let mut h = Health::new(settings(2, 0), t0);
        assert!(h.take_due(t0));
        assert_eq!(h.probed(t0, fail()), Step::Failed { count: 1, limit: 2 });
        h.set_settings(settings(5, 0), t0 + S);
        assert!(h.take_due(t0 + S));
        assert_eq!(
            h.probed(t0 + S, fail()),
            Step::Failed { count: 1, limit: 5 }
        );
    }
}
