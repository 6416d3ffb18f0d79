//! The Server Supervisor: readiness, recovery, watchdog, and that its own restarts leave the
//! components alone.

use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};
use imageserving::systemd::{ActiveState, ExecStatus};

use crate::harness::{eventually, signal, Options, Sandbox};

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect(")") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

#[test]
fn status_text_summarises_the_stack() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    eventually(Duration::from_secs(5), "STATUS= summary", || {
        sb.state(SUPERVISOR).status_text == "3/3 components serving"
    });
}

#[test]
fn a_hung_component_is_restarted_by_the_supervisor() {
    // ps stops answering 1.5 s after each start but stays alive; its HTTP probe notices.
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Platform, "--hang-after 1.5")
            .service(
                Component::Platform,
                "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=0.3 IMAGESERVING_PROBE_FAILURES=2",
            ),
    );
    sb.run(&["start"]).code(0);
    let before = sb.component_pids();
    let supervisor = sb.state(SUPERVISOR).main_pid;
    // Hang at 1.5 s, two failed probes 0.5 s apart (0.3 s each): a restart within ~3.5 s.
    sb.wait_replaced(
        Component::Platform.unit(),
        before[0],
        Duration::from_secs(8),
    );
    assert!(
        !crate::harness::is_alive(before[0]),
        "the hung process was left running"
    );
    assert_eq!(
        before[1..],
        sb.component_pids()[1..],
        "other components were restarted"
    );
    assert_eq!(
        sb.state(SUPERVISOR).main_pid,
        supervisor,
        "the supervisor restarted itself"
    );
}

#[test]
fn a_crash_loop_is_given_up_without_spinning() {
    let sb = Sandbox::with(Options::default().arg(Component::Image, "--crash-after 0.3"));
    let _ = sb.run(&["start"]); // may or may not see is serve before its first crash
    eventually(
        Duration::from_secs(30),
        "is given up at its start limit",
        || sb.state(Component::Image.unit()).gave_up(),
    );
    // The unit allows 5 starts in 2 minutes: the first and 4 automatic restarts.
    assert_eq!(sb.state(Component::Image.unit()).restarts, 5);
    // The supervisor stays up through it (it used to be allowed to be down here), says so,
    // and does not spin.
    eventually(
        Duration::from_secs(10),
        "supervisor running, its STATUS= reporting is",
        || {
            let s = sb.state(SUPERVISOR);
            s.active_state == ActiveState::Active
                && s.status_text.contains("is failed, given up by systemd")
        },
    );
    let supervisor = sb.state(SUPERVISOR).main_pid;
    let cpu = cpu_seconds(supervisor);
    std::thread::sleep(Duration::from_secs(2));
    assert!(cpu_seconds(supervisor) - cpu < 0.1, "the supervisor spins");
    assert_eq!(
        sb.state(SUPERVISOR).main_pid,
        supervisor,
        "the supervisor restarted"
    );
    sb.run(&["status", "is"])
        .code(3)
        .stdout_has("failed (signal), gave up after 5 restarts");
    let doc: serde_json::Value =
        serde_json::from_str(&sb.run(&["status", "--json", "is"]).code(3).stdout).expect("json");
    assert_eq!(doc["components"][0]["given_up"], true);
    // start resets the limit and tries again: the restart count starts from zero. (is may
    // serve for its 0.3 s, so start may succeed or fail; either way it ran is again.)
    let again = sb.run(&["start"]);
    assert!(
        again.code == 0
            || again
                .stderr
                .contains("Image Server (is, imageserving-image.service) failed"),
        "{}",
        again.stderr
    );
    assert!(sb.state(Component::Image.unit()).restarts < 5);
}

#[test]
fn killing_the_supervisor_leaves_the_components_alone() {
    let sb = Sandbox::with(Options::default().supervisor("RestartSec=100ms"));
    sb.run(&["start"]).code(0);
    let before = sb.component_pids();
    let sup = sb.state(SUPERVISOR).main_pid;
    signal(sup, "KILL");
    sb.wait_replaced(SUPERVISOR, sup, Duration::from_secs(10));
    assert_eq!(
        before,
        sb.component_pids(),
        "components restarted with the supervisor"
    );
    sb.run(&["status"]).code(0);
}

#[test]
fn a_supervisor_that_stops_pinging_is_restarted_by_the_watchdog() {
    // A 1 s watchdog holds probe timeouts of at most 0.5 s.
    let mut opts = Options::default()
        .supervisor("WatchdogSec=1s")
        .supervisor("TimeoutAbortSec=1s")
        .supervisor("RestartSec=100ms");
    for c in Component::ALL {
        opts = opts.service(c, "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=0.3");
    }
    let sb = Sandbox::with(opts);
    sb.run(&["start"]).code(0);
    let before = sb.component_pids();
    let sup = sb.state(SUPERVISOR).main_pid;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sb.state(SUPERVISOR).main_pid,
        sup,
        "a healthy supervisor was restarted"
    );
    signal(sup, "STOP");
    sb.wait_replaced(SUPERVISOR, sup, Duration::from_secs(10));
    assert_eq!(
        before,
        sb.component_pids(),
        "components restarted with the supervisor"
    );
}

#[test]
fn a_bad_probe_setting_is_reported_with_unit_and_key() {
    let sb = Sandbox::with(Options::default().service(
        Component::Image,
        "Environment=IMAGESERVING_PROBE=udp://127.0.0.1:1",
    ));
    sb.run(&["start"]).code(1).stderr_one_line().stderr_has(
        "imageserving-image.service: bad setting IMAGESERVING_PROBE=\"udp://127.0.0.1:1\"",
    );
    // A bad setting is not retried in a loop (RestartPreventExitStatus=78).
    let s = sb.state(SUPERVISOR);
    assert_eq!(s.restarts, 0, "{}", s.summary());
}

#[test]
fn a_slow_but_progressing_start_outlasts_the_start_timeout() {
    // The supervisor's unit allows 2 s to start; svg takes 4 s to open its port. The
    // supervisor keeps extending the timeout (EXTEND_TIMEOUT_USEC) while it waits.
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Svg, "--start-delay 4")
            .supervisor("TimeoutStartSec=2s"),
    );
    let t = Instant::now();
    sb.run(&["start"]).code(0);
    assert!(t.elapsed() >= Duration::from_secs(4));
    assert_eq!(
        sb.state(SUPERVISOR).restarts,
        0,
        "the supervisor timed out and was restarted"
    );
}

/// Regression: the supervisor counted the probe failures of a component still starting after
/// a restart, and restarted it again before it could ever answer (a Tomcat deploying).
#[test]
fn a_slow_component_is_given_its_start_grace_after_a_restart() {
    // is takes 3 s to answer; probes every 0.5 s, 3 failures would restart it in 1.5 s.
    let sb = Sandbox::with(Options::default().arg(Component::Image, "--start-delay 3"));
    sb.run(&["start"]).code(0);
    let old = sb.main_pid(Component::Image);
    signal(old, "KILL");
    let new = sb.wait_replaced(Component::Image.unit(), old, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        sb.main_pid(Component::Image),
        new,
        "restarted while still starting"
    );
    sb.run(&["status", "is"]).code(0);
}

#[test]
fn a_component_that_never_answers_is_restarted_after_its_start_grace() {
    let sb = Sandbox::with(Options::default().service(
        Component::Svg,
        "Environment=IMAGESERVING_PROBE_START_GRACE_SEC=1",
    ));
    sb.run(&["start"]).code(0);
    // From now on svg's process never opens its port.
    let port = sb.port(Component::Svg);
    sb.dropin(
        Component::Svg.unit(),
        "60-never-answers",
        &format!(
            "[Service]\nExecStart=\nExecStart={} --port {port} --start-delay 3600\n",
            crate::harness::STANDIN
        ),
    );
    sb.reload();
    let first = sb.main_pid(Component::Svg);
    signal(first, "KILL");
    let second = sb.wait_replaced(Component::Svg.unit(), first, Duration::from_secs(10));
    // 1 s of grace, then 3 failed probes 0.5 s apart: the supervisor restarts it.
    sb.wait_replaced(Component::Svg.unit(), second, Duration::from_secs(10));
}

/// Regression: a supervisor started while a component was failed (given up by systemd)
/// exited 1 at once and was restarted every 2 s without end, while nothing watched the
/// healthy components.
#[test]
fn a_supervisor_started_with_a_failed_component_comes_up_and_watches_the_others() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--crash-after 0.3"));
    let _ = sb.run(&["start"]);
    eventually(
        Duration::from_secs(30),
        "svg given up at its start limit",
        || sb.state(Component::Svg.unit()).gave_up(),
    );
    let old = sb.state(SUPERVISOR).main_pid;
    signal(old, "KILL");
    let sup = sb.wait_replaced(SUPERVISOR, old, Duration::from_secs(10));
    eventually(Duration::from_secs(5), "STATUS= names svg", || {
        sb.state(SUPERVISOR)
            .status_text
            .contains("svg failed, given up by systemd")
    });
    // It stays up: no restart loop.
    std::thread::sleep(Duration::from_secs(5));
    let s = sb.state(SUPERVISOR);
    assert_eq!(
        (s.active_state, s.main_pid),
        (ActiveState::Active, sup),
        "{}",
        s.summary()
    );
    assert!(
        s.restarts <= 1,
        "the supervisor restarted {} times",
        s.restarts
    );
    // And it still watches the others: a hung Platform Server is restarted.
    let ps = sb.main_pid(Component::Platform);
    signal(ps, "USR1");
    sb.wait_replaced(Component::Platform.unit(), ps, Duration::from_secs(30));
}

/// Regression: probes ran one after another on the loop that pings the watchdog, with no
/// deadline for the round: three components that accept and never answer held the loop for
/// three probe timeouts, and systemd killed a healthy supervisor for missing its watchdog.
#[test]
fn probes_that_hang_do_not_starve_the_watchdog() {
    let mut opts = Options::default().supervisor("WatchdogSec=16s");
    for c in Component::ALL {
        if c != Component::Platform {
            // HTTP probes for is and svg too (ps has one): a TCP connect sees no hang.
            opts = opts.service(c, "Environment=IMAGESERVING_PROBE=http://127.0.0.1:{port}/");
        }
        opts = opts.service(
            c,
            "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=7 IMAGESERVING_PROBE_FAILURES=1000",
        );
    }
    let sb = Sandbox::with(opts);
    sb.run(&["start"]).code(0);
    let supervisor = sb.state(SUPERVISOR).main_pid;
    for pid in sb.component_pids() {
        signal(pid, "USR1");
    }
    // Three hung probes at once take 7 s a round, not 21: the watchdog (16 s, pinged every
    // 4 s) is fed all along.
    std::thread::sleep(Duration::from_secs(25));
    let s = sb.state(SUPERVISOR);
    assert_eq!(
        (s.main_pid, s.restarts),
        (supervisor, 0),
        "the supervisor was restarted: {}",
        s.summary()
    );
    assert!(
        s.status_text.contains("0/3 components serving"),
        "{}",
        s.status_text
    );
}

/// A probe timeout the watchdog period cannot hold is a bad setting (exit 78, key named),
/// and so is one below the floor (1e-10 s used to mean "every probe fails").
#[test]
fn probe_timeouts_the_supervisor_cannot_honour_are_rejected() {
    for (line, needle) in [
        (
            "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=9",
            "with WatchdogSec=16s",
        ),
        (
            "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=1e-10",
            "from 0.1 to 10",
        ),
    ] {
        let sb = Sandbox::with(
            Options::default()
                .supervisor("WatchdogSec=16s")
                .service(Component::Image, line),
        );
        let r = sb.run(&["start"]).code(1);
        assert!(
            r.stderr.contains("IMAGESERVING_PROBE_TIMEOUT_SEC"),
            "{line}: {}",
            r.stderr
        );
        let s = sb.state(SUPERVISOR);
        assert_eq!(
            s.exec_status,
            ExecStatus::Exited(78),
            "{line}: {}",
            s.summary()
        );
        assert_eq!(s.restarts, 0, "{line}: {}", s.summary());
        assert!(s.status_text.contains(needle), "{line}: {}", s.status_text);
    }
}

/// Regression: the supervisor read the probe settings once, so `systemctl edit` (which
/// reloads the manager) changed nothing until the supervisor restarted.
#[test]
fn probe_settings_are_taken_up_on_daemon_reload() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let supervisor = sb.state(SUPERVISOR).main_pid;
    // svg is now to be probed on a port where nothing listens.
    sb.dropin(
        Component::Svg.unit(),
        "70-probe",
        "[Service]\nEnvironment=IMAGESERVING_PROBE=tcp://127.0.0.1:1 IMAGESERVING_PROBE_FAILURES=1000\n",
    );
    sb.reload();
    eventually(
        Duration::from_secs(10),
        "STATUS= shows svg probed at the new target",
        || {
            sb.state(SUPERVISOR)
                .status_text
                .contains("svg not answering on tcp://127.0.0.1:1")
        },
    );
    // A bad setting on reload is logged; the supervisor keeps running with what it had.
    sb.dropin(
        Component::Svg.unit(),
        "80-bad",
        "[Service]\nEnvironment=IMAGESERVING_PROBE=udp://127.0.0.1:1\n",
    );
    sb.reload();
    std::thread::sleep(Duration::from_secs(2));
    let s = sb.state(SUPERVISOR);
    assert_eq!((s.main_pid, s.restarts), (supervisor, 0), "{}", s.summary());
    assert!(
        s.status_text
            .contains("svg not answering on tcp://127.0.0.1:1"),
        "{}",
        s.status_text
    );
}

/// The alert hook (OnFailure=): a crash-looping component triggers it exactly once per
/// give-up, with the documented fields in its environment and the summary on its stdin.
#[test]
fn a_give_up_runs_the_alert_command_once_with_its_fields() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--crash-after 0.3"));
    let root = sb.root.display().to_string();
    sb.dropin(
        "imageserving-alert@.service",
        "50-command",
        &format!(
            "[Service]\nEnvironment=\"IMAGESERVING_ALERT_COMMAND=f=$(mktemp {root}/alert.XXXXXX); env | grep ^IMAGESERVING_ALERT_ | sort >$f; echo --- >>$f; cat >>$f\"\n"
        ),
    );
    sb.reload();
    let alerts = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&sb.root)
            .expect("sandbox")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("alert."))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        v.sort();
        v
    };
    for round in 1..=2 {
        let _ = sb.run(&["start"]); // resets the start limit; svg crashes again
        eventually(Duration::from_secs(30), "svg given up", || {
            sb.state(Component::Svg.unit()).gave_up()
        });
        eventually(Duration::from_secs(10), "the alert ran", || {
            alerts().len() == round
        });
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(alerts().len(), round, "not exactly one alert per give-up");
    }
    let text = alerts().pop().expect("an alert");
    let restarts = sb.state(Component::Svg.unit()).restarts;
    for field in [
        "IMAGESERVING_ALERT_UNIT=imageserving-svg.service".to_owned(),
        "IMAGESERVING_ALERT_COMPONENT=svg".to_owned(),
        format!("IMAGESERVING_ALERT_RESTARTS={restarts}"),
        "IMAGESERVING_ALERT_HOST=".to_owned(),
        "IMAGESERVING_ALERT_RESULT=".to_owned(),
    ] {
        assert!(text.contains(&field), "{field} missing:\n{text}");
    }
    assert!(
        text.contains("---\nImage Serving on ")
            && text.contains(
                "SVG Server (svg, imageserving-svg.service) failed and systemd gave up on it"
            ),
        "{text}"
    );
    // No alert for the components that kept running.
    assert!(!text.contains("imageserving-image.service"));
}

/// Regression: a supervisor restarted (by a package upgrade, or a crash) while a component
/// that had served was hung took it for one that was starting: it waited the whole start
/// grace (300 s by default) before reporting ready, and the upgrade's try-restart with it.
#[test]
fn a_restarted_supervisor_takes_a_hung_component_for_hung_not_starting() {
    let sb = Sandbox::with(Options::default().service(
        Component::Platform,
        "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=0.3 IMAGESERVING_PROBE_FAILURES=2",
    ));
    sb.run(&["start"]).code(0);
    let ps = sb.main_pid(Component::Platform);
    let old = sb.state(SUPERVISOR).main_pid;
    signal(ps, "USR1");
    let t = Instant::now();
    sb.manager().restart_unit(SUPERVISOR).expect("restart");
    sb.wait_replaced(SUPERVISOR, old, Duration::from_secs(10));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "ready after {:?}",
        t.elapsed()
    );
    // And the hung process is restarted as the old supervisor would have.
    sb.wait_replaced(Component::Platform.unit(), ps, Duration::from_secs(15));
}

/// IMAGESERVING_MEMORY_RESTART: a component whose unit's RSS stays above its limit is
/// restarted gracefully once its start grace is over, then not again before the back-off
/// (10 s) is over; one below its limit never is. `status` and the metrics show the limit
/// beside the memory.
#[test]
fn a_component_over_its_memory_limit_is_restarted_once_per_back_off_window() {
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Svg, "--hold-mib 48")
            .service(
                Component::Svg,
                "Environment=IMAGESERVING_MEMORY_RESTART=16M IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_START_GRACE_SEC=1",
            )
            .service(
                Component::Image,
                "Environment=IMAGESERVING_MEMORY_RESTART=1G IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_START_GRACE_SEC=1",
            ),
    );
    sb.run(&["start"]).code(0);
    let table = sb.run(&["status", "svg"]).stdout;
    assert!(table.contains("/ 16.0 MiB"), "{table}");
    let metrics = sb.run(&["metrics"]).code(0).stdout;
    assert!(
        metrics.contains("imageserving_component_memory_limit_bytes{component=\"svg\"} 16777216"),
        "{metrics}"
    );
    let (svg, is) = (sb.main_pid(Component::Svg), sb.main_pid(Component::Image));
    let first = sb.wait_replaced(Component::Svg.unit(), svg, Duration::from_secs(20));
    // Above its limit again at once, but the back-off holds the next restart for 10 s.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(8) {
        assert_eq!(
            sb.main_pid(Component::Svg),
            first,
            "svg restarted again within the back-off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // And after it (the back-off's end, the guard's next reading and svg's start: seconds,
    // more on a loaded machine).
    sb.wait_replaced(Component::Svg.unit(), first, Duration::from_secs(20));
    assert_eq!(
        sb.main_pid(Component::Image),
        is,
        "is (below its limit) was restarted"
    );
    assert_eq!(sb.state(SUPERVISOR).restarts, 0);
}

/// Regression: an always-too-big component was restarted every 10–15 s (each passing probe
/// reset the back-off) until systemd's start limit took it down for good after about 65 s;
/// and a component without a probe was never restarted at all. Now, with no probe: restarts
/// back off (10 s, then 20 s), the unit's start limit (5 in 120 s) keeps a start spare, the
/// unit never fails, and after three restarts without relief one alert says the limit is
/// too low.
#[test]
fn the_memory_guard_backs_off_keeps_the_start_limit_and_says_once_the_limit_is_too_low() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--hold-mib 32").service(
        Component::Svg,
        "Environment=IMAGESERVING_PROBE= IMAGESERVING_MEMORY_RESTART=8M IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_START_GRACE_SEC=1",
    ));
    sb.run(&["start"]).code(0);
    let mut pids = vec![sb.main_pid(Component::Svg)];
    let t = Instant::now();
    let mut restarted_at = Vec::new();
    while t.elapsed() < Duration::from_secs(50) {
        let s = sb.state(Component::Svg.unit());
        assert_ne!(s.active_state, ActiveState::Failed, "{}", s.summary());
        if s.main_pid != 0 && pids.last() != Some(&s.main_pid) {
            pids.push(s.main_pid);
            restarted_at.push(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Three restarts: about 2 s, 12 s and 32 s in; the fourth is held for the start limit.
    assert_eq!(restarted_at.len(), 3, "restarts at {restarted_at:?} s");
    let gaps: Vec<f64> = restarted_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.first().is_some_and(|g| *g >= 9.5) && gaps.get(1).is_some_and(|g| *g >= 19.5),
        "gaps {gaps:?} s: the back-off does not double"
    );
    eventually(Duration::from_secs(10), "one alert", || sb.alerts() == 1);
    let status = sb.state(SUPERVISOR).status_text;
    assert!(
        status.contains("svg is above its memory limit after every restart (limit too low)"),
        "{status}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sb.alerts(), 1, "{}", sb.alert_log());
    assert_eq!(sb.state(SUPERVISOR).restarts, 0);
}

#[test]
fn a_bad_memory_limit_is_a_configuration_error_naming_the_key() {
    let sb = Sandbox::with(Options::default().service(
        Component::Svg,
        "Environment=IMAGESERVING_MEMORY_RESTART=lots",
    ));
    let _ = sb.run(&["start"]);
    eventually(Duration::from_secs(15), "the supervisor exits 78", || {
        let s = sb.state(SUPERVISOR);
        s.active_state == ActiveState::Failed && s.exec_status == ExecStatus::Exited(78)
    });
    assert!(
        sb.state(SUPERVISOR)
            .status_text
            .contains("IMAGESERVING_MEMORY_RESTART"),
        "{}",
        sb.state(SUPERVISOR).status_text
    );
}

/// A client that loads and drops units in a loop makes systemd signal changes of the
/// components hundreds of times a second (each load of a socket changes its service's
/// `TriggeredBy`, and its garbage collection changes it back). The supervisor reads each
/// unit once per pass of its loop however many signals queued, so such a storm starves
/// neither its watchdog pings (4 s here) nor its probes: a component hung during the storm
/// is replaced within its deadline, and the supervisor is never restarted.
#[test]
fn a_storm_of_unit_signals_starves_neither_the_watchdog_nor_the_probes() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let mut opts = Options::default().supervisor("WatchdogSec=4s");
    for c in Component::ALL {
        opts = opts.service(
            c,
            "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=0.3 IMAGESERVING_PROBE_FAILURES=2",
        );
    }
    let sb = Sandbox::with(opts);
    sb.run(&["start"]).code(0);
    let sup = sb.state(SUPERVISOR).main_pid;
    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicU64::new(0));
    let storm: Vec<_> = (0..2)
        .map(|_| {
            let mgr = sb.manager();
            let (stop, loads) = (Arc::clone(&stop), Arc::clone(&loads));
            std::thread::spawn(move || {
                let sockets = Component::ALL.map(Component::socket);
                while !stop.load(Ordering::Relaxed) {
                    if mgr.list_units_by_names(&sockets).is_ok() {
                        loads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Three watchdog periods of storm, then a hang in the middle of it.
    std::thread::sleep(Duration::from_secs(12));
    let svg = sb.main_pid(Component::Svg);
    signal(svg, "STOP");
    let replaced = std::panic::catch_unwind(|| {
        sb.wait_replaced(Component::Svg.unit(), svg, Duration::from_secs(10))
    });
    stop.store(true, Ordering::Relaxed);
    for t in storm {
        t.join().expect("storm thread");
    }
    let loads = loads.load(Ordering::Relaxed);
    let s = sb.state(SUPERVISOR);
    assert_eq!(
        (s.main_pid, s.restarts),
        (sup, 0),
        "the supervisor was restarted during {loads} socket loads: {}",
        s.summary()
    );
    assert!(
        replaced.is_ok(),
        "a svg hung during {loads} socket loads was not replaced"
    );
    assert!(loads >= 1000, "only {loads} socket loads: no storm");
    sb.run(&["status"]).code(0);
}
