//! Months of uptime, compressed: the supervisor probing three components every 0.1 s (50
//! times the default pace) while the metrics command is scraped 10,000 times, its RSS, open
//! file descriptors, threads and log lines read after a warm-up and at the end. Run by
//! `scripts/bench.sh` (ignored in the ordinary suite); `IMAGESERVING_SOAK_SECONDS` sets the
//! length (600 by default: 6,000 probes per component, what 8.3 hours at 5 s make) and
//! `IMAGESERVING_SOAK_INTERVAL` the pace (0.1 s; at 0.05 s, 6,200 s make a week's probes).
//! The probes are counted from what the stand-ins accepted.
//!
//! Verdicts: RSS growth after warm-up at most 256 KiB, file descriptors and threads
//! constant, log lines per hour in steady state zero (a serving stack logs nothing), and no
//! unit or process left after `stop`.

use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};

use crate::harness::{env_or, footprint, Options, Sandbox};

#[test]
#[ignore = "benchmark: run scripts/bench.sh"]
fn months_of_uptime_leave_the_supervisor_flat() {
    let seconds: u64 = env_or("IMAGESERVING_SOAK_SECONDS", 600);
    // The probe interval (IMAGESERVING_SOAK_INTERVAL, 0.1 s by default; 0.05 s is the
    // shortest the supervisor takes).
    let interval: f64 = env_or("IMAGESERVING_SOAK_INTERVAL", 0.1);
    let fast = format!(
        "Environment=IMAGESERVING_PROBE_INTERVAL_SEC={interval} IMAGESERVING_PROBE_TIMEOUT_SEC=0.5"
    );
    // The manager lives past the soak: warm-up, the scrapes, the readings and the stop.
    let mut opts = Options::default().lifetime(Duration::from_secs(seconds + 1800));
    for c in Component::ALL {
        opts = opts.service(c, &fast);
    }
    let sb = Sandbox::with(opts);
    let log = sb.root.join("supervisor.log");
    sb.dropin(
        SUPERVISOR,
        "60-log",
        &format!("[Service]\nStandardError=append:{}\n", log.display()),
    );
    sb.reload();
    sb.run(&["start"]).code(0);
    let pid = sb.state(SUPERVISOR).main_pid;
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    // Warm-up: allocator arenas, the bus connection's buffers, the first probe rounds.
    std::thread::sleep(Duration::from_secs(30));
    let (rss0, fds0, threads0) = footprint(pid);
    let lines0 = lines();
    let t0 = Instant::now();
    // 10,000 scrapes (IMAGESERVING_SOAK_SCRAPES), spread over the soak.
    let scrapes: u32 = env_or("IMAGESERVING_SOAK_SCRAPES", 10_000);
    let mut failed_scrapes = 0;
    let mut done = 0u32;
    while t0.elapsed() < Duration::from_secs(seconds) || done < scrapes {
        if done < scrapes {
            if sb.run(&["metrics"]).code != 0 {
                failed_scrapes += 1;
            }
            done += 1;
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let elapsed = t0.elapsed();
    let (rss1, fds1, threads1) = footprint(pid);
    let lines1 = lines();
    let s = sb.state(SUPERVISOR);
    let per_hour = (lines1 - lines0) as f64 * 3600.0 / elapsed.as_secs_f64();
    sb.run(&["stop"]).code(0);
    let left = sb.stack_pids();
    // Probes counted, not assumed: each stand-in says at its stop how many connections it
    // accepted (the probes, and the metrics command's own probe per scrape).
    let accepted: Vec<(&str, u64)> = Component::ALL
        .iter()
        .map(|c| {
            let log = std::fs::read_to_string(sb.root.join(format!("{}.log", c.short_name())))
                .unwrap_or_default();
            let n = log
                .lines()
                .filter_map(|l| l.strip_prefix("imageserving-standin: stopping after "))
                .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
                .sum();
            (c.short_name(), n)
        })
        .collect();
    let probes = accepted
        .iter()
        .map(|a| a.1)
        .min()
        .unwrap_or(0)
        .saturating_sub(u64::from(done));
    let growth = rss1.saturating_sub(rss0);
    println!(
        "uptime soak: {:.0} s at a {interval} s interval, at least {probes} probes per component (= {:.1} h at 5 s; connections accepted {accepted:?}), {done} scrapes ({failed_scrapes} failed)",
        elapsed.as_secs_f64(),
        probes as f64 * 5.0 / 3600.0
    );
    println!(
        "  supervisor RSS {rss0} -> {rss1} KiB (growth {growth} KiB, bound 256: {}); fds {fds0} -> {fds1} ({}); threads {threads0} -> {threads1} ({}); log lines {per_hour:.1}/h ({}); same PID, NRestarts {}; left after stop: {} ({})",
        if growth <= 256 { "met" } else { "NOT MET" },
        if fds0 == fds1 { "constant" } else { "CHANGED" },
        if threads0 == threads1 { "constant" } else { "CHANGED" },
        if lines1 == lines0 { "flat" } else { "GROWING" },
        s.restarts,
        left.len(),
        if left.is_empty() { "none" } else { "LEFT" }
    );
    assert_eq!(s.main_pid, pid, "the supervisor was replaced");
    assert_eq!(failed_scrapes, 0);
    assert!(growth <= 256, "RSS grew by {growth} KiB");
    assert_eq!((fds0, threads0), (fds1, threads1));
    assert_eq!(lines0, lines1, "the supervisor logs while nothing happens");
    assert!(left.is_empty(), "{left:?}");
    assert!(
        probes as f64 >= 0.9 * elapsed.as_secs_f64() / interval,
        "fewer probes than the interval makes: {accepted:?}"
    );
}
