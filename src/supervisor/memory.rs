//! The memory guard of one component (`IMAGESERVING_MEMORY_RESTART`), as a pure state
//! machine: time is an argument, never read here, so every rule is tested with a made-up
//! clock; the daemon loop (`monitor.rs`) reads the memory, restarts, logs and alerts.
//!
//! It restarts a component whose unit's RSS stays above the limit, and it must never be the
//! cause of an outage. So, with or without a probe:
//!
//! - nothing is read during the start grace (a JVM's heap grows while it deploys);
//! - a restart needs [`Cadence::failures`] readings above the limit in a row;
//! - restarts back off on their own clock, doubling from [`MIN_BACKOFF`] to [`MAX_BACKOFF`],
//!   and only memory staying below the limit for [`RELIEF`] resets it (a passing probe does
//!   not: the process may answer and still be too big);
//! - it never spends the unit's start limit: within any `StartLimitIntervalSec=` it leaves
//!   at least one start of `StartLimitBurst=` to systemd's own `Restart=` and the operator;
//! - after [`TOO_LOW_AFTER`] restarts in a row without relief it says, once, that the limit
//!   is too low (the caller raises the alert), and keeps to its slowest pace.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::probe::Cadence;

/// The first back-off after a memory restart.
pub const MIN_BACKOFF: Duration = Duration::from_secs(10);
/// The longest back-off between two memory restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long memory must stay below the limit before the guard starts over (back-off and
/// the count of restarts without relief).
pub const RELIEF: Duration = Duration::from_secs(600);
/// Restarts in a row, each followed by memory above the limit again with no relief in
/// between, after which the limit is taken to be too low.
pub const TOO_LOW_AFTER: u32 = 3;

/// A unit's start rate limit (`StartLimitBurst=` starts within `StartLimitIntervalSec=`;
/// an interval of zero turns it off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimit {
    /// `StartLimitBurst=`.
    pub burst: u32,
    /// `StartLimitIntervalSec=`.
    pub interval: Duration,
}

/// What the guard decided about one reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Below the limit, or not counted (start grace).
    Quiet,
    /// Above the limit, `count` of the `limit` readings in a row that call for a restart.
    Over {
        /// Readings above in a row.
        count: u32,
        /// How many call for a restart.
        limit: u32,
    },
    /// Restart it now, then report [`MemoryGuard::restarted`].
    Restart,
    /// A restart is due but held until `until`: the back-off, or the unit's start limit.
    /// `news` is true the first time in a window (worth a log line).
    Held {
        /// When a restart may come at the earliest.
        until: Instant,
        /// Whether the start limit is what holds it (else the back-off).
        start_limit: bool,
        /// The first time this window is reported.
        news: bool,
    },
}

/// The guard of one component.
#[derive(Debug, Clone)]
pub struct MemoryGuard {
    limit: u64,
    cadence: Cadence,
    start_limit: StartLimit,
    started: Instant,
    next_reading: Instant,
    over: u32,
    backoff: Duration,
    not_before: Instant,
    /// Starts of the unit's process seen within the start limit's interval.
    starts: VecDeque<Instant>,
    below_since: Option<Instant>,
    fruitless: u32,
    said_too_low: bool,
    told_hold: bool,
}

impl MemoryGuard {
    /// A guard for `limit` bytes, from `started` on (the supervisor's first look; the
    /// process's own start is reported by [`MemoryGuard::process_started`] once seen).
    pub fn new(limit: u64, cadence: Cadence, start_limit: StartLimit, started: Instant) -> Self {
        MemoryGuard {
            limit,
            cadence,
            start_limit,
            started,
            next_reading: started + cadence.start_grace,
            over: 0,
            backoff: Duration::ZERO,
            not_before: started,
            starts: VecDeque::new(),
            below_since: None,
            fruitless: 0,
            said_too_low: false,
            told_hold: false,
        }
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// New settings (after a `daemon-reload`); the history (back-off, starts) is kept.
    pub fn set(&mut self, limit: u64, cadence: Cadence, start_limit: StartLimit) {
        self.limit = limit;
        self.cadence = cadence;
        self.start_limit = start_limit;
        self.over = 0;
    }

    /// Its unit runs a new main process since `at` (a restart by anyone): the grace starts
    /// over, and the start counts against the unit's start limit.
    pub fn process_started(&mut self, at: Instant) {
        self.started = at;
        self.over = 0;
        self.next_reading = at + self.cadence.start_grace;
        if self.starts.back() != Some(&at) {
            self.starts.push_back(at);
        }
    }

    /// When the next reading is due.
    pub fn next_reading(&self) -> Instant {
        self.next_reading
    }

    /// Whether a reading is due at `now`; if so, the one after is scheduled.
    pub fn take_due(&mut self, now: Instant) -> bool {
        if now < self.next_reading {
            return false;
        }
        self.next_reading = now + self.cadence.interval;
        true
    }

    /// One reading of the unit's memory (`rss` bytes) at `now`.
    pub fn reading(&mut self, now: Instant, rss: u64) -> Guard {
        if now < self.started + self.cadence.start_grace {
            return Guard::Quiet;
        }
        if rss <= self.limit {
            self.over = 0;
            let since = *self.below_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= RELIEF {
                self.backoff = Duration::ZERO;
                self.fruitless = 0;
                self.said_too_low = false;
            }
            return Guard::Quiet;
        }
        self.below_since = None;
        self.over += 1;
        if self.over < self.cadence.failures {
            return Guard::Over {
                count: self.over,
                limit: self.cadence.failures,
            };
        }
        let (until, start_limit) = self.held_until(now);
        if now < until {
            let news = !self.told_hold;
            self.told_hold = true;
            return Guard::Held {
                until,
                start_limit,
                news,
            };
        }
        Guard::Restart
    }

    /// When a restart may come: after the back-off, and when one more start still leaves a
    /// start of the unit's limit spare within its interval.
    fn held_until(&mut self, now: Instant) -> (Instant, bool) {
        let interval = self.start_limit.interval;
        if !interval.is_zero() {
            while self
                .starts
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= interval)
            {
                self.starts.pop_front();
            }
        }
        // Starts in the window, plus this restart, plus one spare: at most the burst.
        let allowed = self.start_limit.burst.saturating_sub(2) as usize;
        let by_limit = if interval.is_zero() || self.starts.len() <= allowed {
            None
        } else {
            // The window frees up when enough of its oldest starts age out.
            let i = self.starts.len() - allowed - 1;
            self.starts.get(i).map(|t| *t + interval)
        };
        match by_limit {
            Some(t) if t > self.not_before => (t, true),
            _ => (self.not_before, false),
        }
    }

    /// The restart was made at `now`. Returns true, once, when this is the
    /// [`TOO_LOW_AFTER`]th restart in a row without relief: the limit is too low, and the
    /// caller raises the alert.
    pub fn restarted(&mut self, now: Instant) -> bool {
        self.over = 0;
        self.told_hold = false;
        self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        self.not_before = now + self.backoff;
        self.fruitless += 1;
        if self.fruitless >= TOO_LOW_AFTER && !self.said_too_low {
            self.said_too_low = true;
            return true;
        }
        false
    }

    /// Whether it has said the limit is too low (until memory stays below it for
    /// [`RELIEF`]).
    pub fn too_low(&self) -> bool {
        self.said_too_low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MIB: u64 = 1 << 20;

    fn cadence(grace: u64) -> Cadence {
        Cadence {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            failures: 3,
            start_grace: Duration::from_secs(grace),
        }
    }

    fn limit(burst: u32, secs: u64) -> StartLimit {
        StartLimit {
            burst,
            interval: Duration::from_secs(secs),
        }
    }

    /// Drive a component that is always above its limit for `secs` seconds, reading every
    /// 5 s and restarting when told (a new process at once); the restart times.
    fn always_over(g: &mut MemoryGuard, t0: Instant, secs: u64) -> Vec<u64> {
        let mut restarts = Vec::new();
        let mut now = t0;
        while now < t0 + S * u32::try_from(secs).unwrap() {
            if g.take_due(now) && g.reading(now, 100 * MIB) == Guard::Restart {
                g.restarted(now);
                g.process_started(now);
                restarts.push(now.duration_since(t0).as_secs());
            }
            now += S;
        }
        restarts
    }

    /// Regression: the guard restarted a component that is always above its limit every
    /// 10–15 s (its back-off reset by each passing probe) until systemd's start limit
    /// stopped it for good after about 65 s.
    #[test]
    fn an_always_too_big_component_never_hits_the_start_limit() {
        let t0 = Instant::now();
        let start_limit = limit(5, 120);
        let mut g = MemoryGuard::new(8 * MIB, cadence(0), start_limit, t0);
        g.process_started(t0);
        let restarts = always_over(&mut g, t0, 3600);
        assert!(!restarts.is_empty());
        // Every window of the start limit's interval holds at most burst - 1 starts: the
        // process's own first start and the guard's restarts.
        let mut starts = vec![0];
        starts.extend(&restarts);
        for (i, t) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|u| **u < t + 120).count();
            assert!(
                in_window <= 4,
                "{in_window} starts within 120 s of {t}: {starts:?}"
            );
        }
        // And the back-off doubles to its ceiling: the gaps grow.
        let gaps: Vec<u64> = restarts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "{gaps:?}");
        assert!(gaps.last().is_some_and(|g| *g >= 300), "{gaps:?}");
    }

    #[test]
    fn nothing_is_read_during_the_start_grace() {
        let t0 = Instant::now();
        let mut g = MemoryGuard::new(8 * MIB, cadence(60), limit(5, 120), t0);
        assert!(!g.take_due(t0 + S * 59));
        assert_eq!(g.reading(t0 + S * 30, 100 * MIB), Guard::Quiet);
        assert!(g.take_due(t0 + S * 60));
        assert_eq!(
            g.reading(t0 + S * 60, 100 * MIB),
            Guard::Over { count: 1, limit: 3 }
        );
    }

    #[test]
    fn the_limit_is_called_too_low_once_after_three_fruitless_restarts() {
        let t0 = Instant::now();
        let mut g = MemoryGuard::new(8 * MIB, cadence(0), limit(100, 120), t0);
        let mut said = 0;
        let mut now = t0;
        for _ in 0..2000 {
            if g.take_due(now) && g.reading(now, 100 * MIB) == Guard::Restart {
                if g.restarted(now) {
                    said += 1;
                }
                g.process_started(now);
            }
            now += S;
        }
        assert_eq!(said, 1);
        assert!(g.too_low());
        // Below the limit for RELIEF: it starts over.
        let mut t = now;
        while t < now + RELIEF + S * 5 {
            assert_eq!(g.reading(t, MIB), Guard::Quiet);
            t += S * 5;
        }
        assert!(!g.too_low());
    }

    #[test]
    fn a_reading_below_the_limit_resets_the_count_but_not_the_back_off() {
        let t0 = Instant::now();
        let mut g = MemoryGuard::new(8 * MIB, cadence(0), limit(0, 0), t0);
        for i in 0..2 {
            assert!(matches!(
                g.reading(t0 + S * i, 100 * MIB),
                Guard::Over { .. }
            ));
        }
        assert_eq!(g.reading(t0 + S * 2, 100 * MIB), Guard::Restart);
        g.restarted(t0 + S * 2);
        g.process_started(t0 + S * 2);
        // One reading below, then above again: counted from one, and held by the back-off.
        assert_eq!(g.reading(t0 + S * 3, MIB), Guard::Quiet);
        for i in 4..6 {
            assert!(matches!(
                g.reading(t0 + S * i, 100 * MIB),
                Guard::Over { .. }
            ));
        }
        assert!(matches!(
            g.reading(t0 + S * 6, 100 * MIB),
            Guard::Held {
                start_limit: false,
                news: true,
                ..
            }
        ));
        assert!(matches!(
            g.reading(t0 + S * 7, 100 * MIB),
            Guard::Held { news: false, .. }
        ));
        assert_eq!(g.reading(t0 + S * 12, 100 * MIB), Guard::Restart);
    }
}
