//! The benchmark: every performance figure against a reference measured in the same run.
//!
//! Not a test (it asserts nothing about speed; these machines are noisy): run it with
//! `scripts/bench.sh`, which builds in release mode and prints the table. Commands that are
//! compared run interleaved (A, B, A, B, ...) so that a burst of load hits both sides.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR, TARGET};

use crate::harness::{env_or, Options, Sandbox, IMAGESERVING};

fn seconds_setting(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// Median, min and max of a sample, in milliseconds.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(mut ms: Vec<f64>) -> Stats {
        ms.sort_by(f64::total_cmp);
        Stats {
            median: ms[ms.len() / 2],
            min: ms[0],
            max: ms[ms.len() - 1],
        }
    }

    fn percentile(ms: &mut [f64], p: f64) -> f64 {
        ms.sort_by(f64::total_cmp);
        let idx = ((ms.len() as f64 - 1.0) * p).round() as usize;
        ms[idx]
    }

    fn show(self) -> String {
        format!("{:.2} ms ({:.2}–{:.2})", self.median, self.min, self.max)
    }
}

struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    fn row(
        &mut self,
        figure: &str,
        ours: String,
        reference: String,
        ratio: Option<f64>,
        target: &str,
        met: Option<bool>,
    ) {
        let ratio = ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}×"));
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("  {figure}: {ours} | ref {reference} | {ratio} | target {target} | {met}");
        self.rows.push([
            figure.to_owned(),
            ours,
            reference,
            ratio,
            target.to_owned(),
            met.to_owned(),
        ]);
    }

    fn print(&self) {
        let head = ["figure", "ours", "reference", "ratio", "target", "met"];
        let mut widths = head.map(str::len);
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::from("|");
            for (c, w) in cells.iter().zip(widths) {
                l.push_str(&format!(" {c:<w$} |"));
            }
            l
        };
        println!("\n{}", line(&head.map(str::to_owned)));
        println!(
            "|{}",
            widths
                .iter()
                .map(|w| format!("{}|", "-".repeat(w + 2)))
                .collect::<String>()
        );
        for r in &self.rows {
            println!("{}", line(r));
        }
    }
}

fn command(sb: &Sandbox, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env_clear()
        .envs(sb.env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Run each command `runs` times, interleaved; wall time of each run in ms.
fn interleaved(cmds: &mut [Command], runs: usize) -> Vec<Stats> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); cmds.len()];
    for _ in 0..5 {
        for c in cmds.iter_mut() {
            let _ = c.status();
        }
    }
    for _ in 0..runs {
        for (i, c) in cmds.iter_mut().enumerate() {
            let t = Instant::now();
            let status = c.status().expect("run");
            samples[i].push(t.elapsed().as_secs_f64() * 1e3);
            assert!(
                status.code().is_some_and(|c| c == 0 || c == 3),
                "{c:?} failed: {status}"
            );
        }
    }
    samples.into_iter().map(Stats::of).collect()
}

/// The `ImageServing` measured: as shipped (`scripts/bench.sh` builds it with
/// `packaging/build.sh` and names it in `IMAGESERVING_BENCH_CLI`), else this build's.
fn cli() -> String {
    std::env::var("IMAGESERVING_BENCH_CLI").unwrap_or_else(|_| IMAGESERVING.to_owned())
}

/// The floor program (`examples/dbus_floor.rs`), linked as the CLI is; named by
/// `scripts/bench.sh` in `IMAGESERVING_BENCH_FLOOR`.
fn floor_binary() -> PathBuf {
    let p = std::env::var_os("IMAGESERVING_BENCH_FLOOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(IMAGESERVING)
                .parent()
                .expect("dir")
                .join("examples/dbus_floor")
        });
    assert!(
        p.exists(),
        "{} missing: run through scripts/bench.sh",
        p.display()
    );
    p
}

/// VmRSS in KiB and CPU ticks (user + system) of a process.
fn rss_and_ticks(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let f: Vec<&str> = stat[stat.rfind(')').expect(")") + 2..]
        .split_whitespace()
        .collect();
    (
        rss,
        f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0),
    )
}

/// CPU ticks (user + system) of this process's children that have been waited for
/// (`cutime` and `cstime` of /proc/self/stat).
fn children_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let f: Vec<&str> = stat[stat.rfind(')').expect(")") + 2..]
        .split_whitespace()
        .collect();
    f[13].parse::<u64>().unwrap_or(0) + f[14].parse::<u64>().unwrap_or(0)
}

#[test]
#[ignore = "benchmark: run scripts/bench.sh"]
fn bench() {
    let runs: usize = env_or("BENCH_RUNS", 200);
    let mut table = Table { rows: Vec::new() };
    let cli = cli();

    // 1. status against systemctl show and the floor.
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let mut show_args = vec![
        "--user",
        "show",
        "-p",
        "ActiveState,SubState,MainPID,MemoryCurrent,ActiveEnterTimestamp",
    ];
    show_args.extend(imageserving::component::stack_units());
    let floor = floor_binary();
    let mut cmds = [
        command(&sb, &cli, &["--user", "status"]),
        command(&sb, &cli, &["--user", "status", "svg"]),
        command(&sb, "systemctl", &show_args),
        command(&sb, floor.to_str().expect("path"), &[]),
    ];
    let s = interleaved(&mut cmds, runs);
    let (all, one, show, fl) = (s[0], s[1], s[2], s[3]);
    for (figure, ours, reference, limit) in [
        ("status (whole stack) vs systemctl show", all, show, 0.25),
        ("status (whole stack) vs floor", all, fl, 1.5),
        ("status svg vs systemctl show", one, show, 0.25),
        ("status svg vs floor", one, fl, 1.5),
    ] {
        let ratio = ours.median / reference.median;
        table.row(
            figure,
            ours.show(),
            reference.show(),
            Some(ratio),
            &format!("≤ {limit}×"),
            Some(ratio <= limit),
        );
    }

    // 2. One metrics scrape (what imageserving-metrics@ runs per connection, probes
    // included) against status, and the CPU that 1 scrape/s costs.
    let mut cmds = [
        command(&sb, &cli, &["--user", "metrics"]),
        command(&sb, &cli, &["--user", "status"]),
    ];
    let s = interleaved(&mut cmds, runs.min(100));
    table.row(
        "metrics, one scrape (vs status)",
        s[0].show(),
        s[1].show(),
        Some(s[0].median / s[1].median),
        "report",
        None,
    );
    let before = children_cpu_ticks();
    let scrapes = 50;
    for _ in 0..scrapes {
        let ok = command(&sb, &cli, &["--user", "metrics"])
            .status()
            .is_ok_and(|st| st.success());
        assert!(ok, "a scrape failed");
    }
    let per_scrape = (children_cpu_ticks() - before) as f64 / 100.0 / f64::from(scrapes);
    table.row(
        "metrics at 1 scrape/s: CPU",
        format!(
            "{:.3} % of one CPU ({:.1} ms CPU per scrape)",
            per_scrape * 100.0,
            per_scrape * 1e3
        ),
        "-".into(),
        None,
        "report",
        None,
    );

    // 3. status --json under load: 50 clients for 10 s.
    let load_for = seconds_setting("BENCH_LOAD_SECONDS", 10);
    let until = Instant::now() + load_for;
    let env = sb.env();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let env = env.clone();
            let cli = cli.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut failures = 0;
                while Instant::now() < until {
                    let t = Instant::now();
                    let ok = Command::new(&cli)
                        .args(["--user", "status", "--json"])
                        .env_clear()
                        .envs(env.clone())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    failures += usize::from(!ok);
                }
                (lat, failures)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut failures = 0;
    for h in handles {
        let (l, f) = h.join().expect("client");
        lat.extend(l);
        failures += f;
    }
    let p99 = Stats::percentile(&mut lat, 0.99);
    let p50 = Stats::percentile(&mut lat, 0.5);
    table.row(
        "status --json, 50 parallel clients",
        format!(
            "{:.0}/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {failures} failed",
            lat.len() as f64 / load_for.as_secs_f64()
        ),
        "-".into(),
        None,
        "0 failed",
        Some(failures == 0),
    );

    // 6. Supervisor footprint at rest (default probe interval 5 s) beside its peers.
    let rest = seconds_setting("BENCH_FOOTPRINT_SECONDS", 60);
    let sup = sb.state(SUPERVISOR).main_pid;
    let (_, t0) = rss_and_ticks(sup);
    std::thread::sleep(rest);
    let (rss, t1) = rss_and_ticks(sup);
    let cpu = (t1 - t0) as f64 / 100.0 / rest.as_secs_f64() * 100.0;
    let peers: Vec<String> = ["systemd", "dbus-daemon"]
        .iter()
        .filter_map(|n| {
            sb.pid_of(n)
                .map(|p| format!("{n} {:.1} MiB", rss_and_ticks(p).0 as f64 / 1024.0))
        })
        .collect();
    table.row(
        &format!("supervisor RSS / CPU at rest ({}s)", rest.as_secs()),
        format!("{:.2} MiB, {cpu:.2}% CPU", rss as f64 / 1024.0),
        peers.join(", "),
        None,
        "≤ 4 MiB, ~0% CPU",
        Some(rss <= 4096 && cpu < 0.5),
    );
    drop(sb);

    // 6b. The same while probing a stack of 3 every 100 ms.
    let probing = Sandbox::with(
        Options::default()
            .service(
                Component::Platform,
                "Environment=IMAGESERVING_PROBE_INTERVAL_SEC=0.1",
            )
            .service(
                Component::Image,
                "Environment=IMAGESERVING_PROBE_INTERVAL_SEC=0.1",
            )
            .service(
                Component::Svg,
                "Environment=IMAGESERVING_PROBE_INTERVAL_SEC=0.1",
            ),
    );
    probing.run(&["start"]).code(0);
    let sup = probing.state(SUPERVISOR).main_pid;
    let (_, t0) = rss_and_ticks(sup);
    std::thread::sleep(rest);
    let (rss, t1) = rss_and_ticks(sup);
    let cpu = (t1 - t0) as f64 / 100.0 / rest.as_secs_f64() * 100.0;
    table.row(
        &format!(
            "supervisor RSS / CPU probing 3 components every 100 ms ({}s)",
            rest.as_secs()
        ),
        format!("{:.2} MiB, {cpu:.2}% CPU", rss as f64 / 1024.0),
        "-".into(),
        None,
        "≤ 4 MiB",
        Some(rss <= 4096),
    );
    drop(probing);

    // 5. start / stop / restart against systemctl on the target.
    let sb = Sandbox::new();
    let cycles = 5;
    let mut ours = [Vec::new(), Vec::new(), Vec::new()];
    let mut theirs = [Vec::new(), Vec::new(), Vec::new()];
    let mut left_ours = 0;
    let mut left_theirs = 0;
    let time = |c: &mut Command| {
        let t = Instant::now();
        let s = c.status().expect("run");
        assert!(s.success(), "{c:?}: {s}");
        t.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..cycles {
        ours[0].push(time(&mut command(&sb, &cli, &["--user", "start"])));
        ours[2].push(time(&mut command(&sb, &cli, &["--user", "restart"])));
        ours[1].push(time(&mut command(&sb, &cli, &["--user", "stop"])));
        left_ours += sb.stack_pids().len();
        theirs[0].push(time(&mut command(
            &sb,
            "systemctl",
            &["--user", "start", TARGET],
        )));
        theirs[2].push(time(&mut command(
            &sb,
            "systemctl",
            &["--user", "restart", TARGET],
        )));
        theirs[1].push(time(&mut command(
            &sb,
            "systemctl",
            &["--user", "stop", TARGET],
        )));
        left_theirs += sb.stack_pids().len();
        // Let systemctl's stop finish before the next round.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sb.stack_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for (i, verb) in ["start", "stop", "restart"].iter().enumerate() {
        let (a, b) = (Stats::of(ours[i].clone()), Stats::of(theirs[i].clone()));
        table.row(
            &format!("{verb} (wall)"),
            a.show(),
            format!("systemctl {verb} {TARGET}: {}", b.show()),
            Some(a.median / b.median),
            "-",
            None,
        );
    }
    table.row(
        "processes alive right after stop returns",
        format!("{left_ours} over {cycles} stops"),
        format!("systemctl stop: {left_theirs}"),
        None,
        "0",
        Some(left_ours == 0),
    );
    drop(sb);

    // 4. start readiness latency: ps opens its port 1 s after its process starts.
    let sb = Sandbox::with(Options::default().arg(
        Component::Platform,
        "--start-delay 1 --ready-file {root}/ready",
    ));
    let mut latencies = Vec::new();
    for _ in 0..cycles {
        let ready = sb.root.join("ready");
        let _ = std::fs::remove_file(&ready);
        sb.run(&["start"]).code(0);
        let returned = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_micros();
        let opened: u128 = std::fs::read_to_string(&ready)
            .expect("ready file")
            .trim()
            .parse()
            .expect("micros");
        latencies.push((returned.saturating_sub(opened)) as f64 / 1e3);
        sb.run(&["stop"]).code(0);
    }
    let lat = Stats::of(latencies);
    table.row(
        "start returns after the last port opens",
        lat.show(),
        "-".into(),
        None,
        "median ≤ 100 ms",
        Some(lat.median <= 100.0),
    );
    drop(sb);

    // 2. status cost against the number of processes in one cgroup.
    let mut base = None;
    for children in [2, 9, 99, 999] {
        let sb = Sandbox::with(
            Options::default()
                .arg(Component::Svg, &format!("--children {children}"))
                .service(Component::Svg, "TasksMax=infinity"),
        );
        sb.run(&["start"]).code(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sb.stack_pids().len() < children + 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let procs = children + 1;
        let mut cmds = [command(&sb, &cli, &["--user", "status", "svg"])];
        let s = interleaved(&mut cmds, runs.min(100))[0];
        let b = *base.get_or_insert(s.median);
        let met = (procs >= 1000).then_some(s.median / b < 5.0);
        table.row(
            &format!("status svg, {procs} processes in its cgroup"),
            s.show(),
            format!("3 processes: {b:.2} ms"),
            Some(s.median / b),
            if procs >= 1000 { "< 5×" } else { "linear" },
            met,
        );
        // Every process counted: the supervisor, ps, is, and svg with its children.
        assert_eq!(sb.stack_pids().len(), children + 4);
    }
    table.print();
}
