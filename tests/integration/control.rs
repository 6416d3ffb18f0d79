//! start, stop, restart and their failures.

use std::time::Duration;

use imageserving::component::{Component, SUPERVISOR, TARGET};
use imageserving::systemd::ActiveState;

use crate::harness::{is_alive, Options, Sandbox};

fn all_active(sb: &Sandbox) {
    for unit in [
        SUPERVISOR,
        Component::Platform.unit(),
        Component::Image.unit(),
        Component::Svg.unit(),
    ] {
        let s = sb.state(unit);
        assert_eq!(
            s.active_state,
            ActiveState::Active,
            "{unit}: {}",
            s.summary()
        );
    }
}

#[test]
fn start_then_stop_leaves_no_process() {
    let sb = Sandbox::new();
    sb.run(&["start"])
        .code(0)
        .stdout_has("Image Serving started");
    all_active(&sb);
    assert_eq!(sb.state(TARGET).active_state, ActiveState::Active);
    // The supervisor reported ready only once the stand-ins answered their probes.
    for c in Component::ALL {
        std::net::TcpStream::connect(("127.0.0.1", sb.port(c)))
            .unwrap_or_else(|e| panic!("{c} not listening: {e}"));
    }
    let pids: Vec<u32> = Component::ALL.iter().map(|c| sb.main_pid(*c)).collect();
    assert!(pids.iter().all(|p| *p > 0 && is_alive(*p)), "{pids:?}");
    sb.run(&["stop"]).code(0).stdout_has("stopped");
    for unit in [
        TARGET,
        SUPERVISOR,
        Component::Platform.unit(),
        Component::Image.unit(),
        Component::Svg.unit(),
    ] {
        assert!(sb.state(unit).active_state.is_down(), "{unit} still up");
    }
    assert_eq!(
        sb.stack_pids(),
        Vec::<u32>::new(),
        "processes left after stop"
    );
    assert!(pids.iter().all(|p| !is_alive(*p)));
    sb.run(&["stop"]).code(0).stdout_has("already stopped");
}

#[test]
fn restart_one_component_keeps_the_others() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let before: Vec<u32> = Component::ALL.iter().map(|c| sb.main_pid(*c)).collect();
    let supervisor = sb.state(SUPERVISOR).main_pid;
    sb.run(&["restart", "is"])
        .code(0)
        .stdout_has("Image Server (is) restarted");
    let after: Vec<u32> = Component::ALL.iter().map(|c| sb.main_pid(*c)).collect();
    assert_eq!(before[0], after[0], "ps was restarted");
    assert_ne!(before[1], after[1], "is kept its PID");
    assert_eq!(before[2], after[2], "svg was restarted");
    assert_eq!(
        supervisor,
        sb.state(SUPERVISOR).main_pid,
        "supervisor was restarted"
    );
    assert!(!is_alive(before[1]));
    sb.run(&["restart", "platform"]).code(0);
    assert_ne!(after[0], sb.main_pid(Component::Platform));
    assert_eq!(after[1], sb.main_pid(Component::Image));
}

#[test]
fn stop_one_component_leaves_it_stopped_and_the_others_serving() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let before: Vec<u32> = Component::ALL.iter().map(|c| sb.main_pid(*c)).collect();
    let supervisor = sb.state(SUPERVISOR).main_pid;
    sb.run(&["stop", "svg"])
        .code(0)
        .stdout_has("SVG Server (svg) stopped");
    assert!(!is_alive(before[2]), "svg's process is left");
    // The supervisor sees a component the operator stopped, and leaves it so.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let svg = sb.state(Component::Svg.unit());
    assert!(
        svg.active_state.is_down() && svg.job_id == 0,
        "{}",
        svg.summary()
    );
    assert_eq!(sb.main_pid(Component::Platform), before[0]);
    assert_eq!(sb.main_pid(Component::Image), before[1]);
    let s = sb.state(SUPERVISOR);
    assert_eq!((s.main_pid, s.restarts), (supervisor, 0), "{}", s.summary());
    assert!(s.status_text.contains("svg stopped"), "{}", s.status_text);
    sb.run(&["stop", "svg"])
        .code(0)
        .stdout_has("already stopped");
    sb.run(&["status", "svg"]).code(3);
    sb.run(&["status", "ps"]).code(0);
    // `start` brings it back; the others keep their processes.
    sb.run(&["start"]).code(0);
    assert_ne!(sb.main_pid(Component::Svg), 0);
    assert_eq!(sb.main_pid(Component::Platform), before[0]);
    sb.run(&["stop", "bogus"]).code(2).stderr_one_line();
}

/// `start NAME` starts one stopped component and waits until it answers; on one that runs it
/// changes nothing. The others keep their processes either way.
#[test]
fn start_one_component_brings_back_only_that_one() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let supervisor = sb.state(SUPERVISOR).main_pid;
    sb.run(&["stop", "svg"]).code(0);
    let (ps, is) = (
        sb.main_pid(Component::Platform),
        sb.main_pid(Component::Image),
    );
    sb.run(&["start", "svg"])
        .code(0)
        .stdout_has("SVG Server (svg) started: imageserving-svg.service is active, main PID");
    let svg = sb.main_pid(Component::Svg);
    assert_ne!(svg, 0);
    assert!(imageserving::probe::check(
        &imageserving::probe::parse_target(&format!("tcp://127.0.0.1:{}", sb.port(Component::Svg)))
            .unwrap(),
        Duration::from_secs(1)
    )
    .is_ok());
    sb.run(&["start", "svg"]).code(0).stdout_has("started");
    assert_eq!(
        sb.main_pid(Component::Svg),
        svg,
        "start of a running svg restarted it"
    );
    assert_eq!(
        (
            sb.main_pid(Component::Platform),
            sb.main_pid(Component::Image)
        ),
        (ps, is)
    );
    assert_eq!(sb.state(SUPERVISOR).main_pid, supervisor);
}

#[test]
fn restart_all_replaces_every_process() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let before: Vec<u32> = Component::ALL.iter().map(|c| sb.main_pid(*c)).collect();
    let supervisor = sb.state(SUPERVISOR).main_pid;
    sb.run(&["restart"]).code(0).stdout_has("restarted");
    all_active(&sb);
    for (i, c) in Component::ALL.iter().enumerate() {
        assert_ne!(before[i], sb.main_pid(*c), "{c} kept its PID");
    }
    assert_ne!(supervisor, sb.state(SUPERVISOR).main_pid);
}

#[test]
fn start_waits_for_a_slow_component_to_serve() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--start-delay 2"));
    let t = std::time::Instant::now();
    sb.run(&["start"]).code(0);
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(2),
        "start returned before svg opened its port"
    );
    std::net::TcpStream::connect(("127.0.0.1", sb.port(Component::Svg)))
        .expect("svg serves once start returned");
}

#[test]
fn missing_binary_fails_start_naming_the_component() {
    let sb = Sandbox::new();
    sb.remove_program(Component::Image);
    let t = std::time::Instant::now();
    let r = sb.run(&["start"]).code(1).stderr_one_line();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "start waited for a timeout"
    );
    let r = r.stderr_has("Image Server (is, imageserving-image.service) failed");
    r.stderr_has("/nonexistent/ImageServer");
}

#[test]
fn component_exiting_at_once_fails_start() {
    let sb =
        Sandbox::with(Options::default().arg(Component::Platform, "--exit-after 0 --exit-code 3"));
    sb.run(&["start"])
        .code(1)
        .stderr_has("Platform Server (ps, imageserving-platform.service) failed")
        .stderr_has("status 3");
}

#[test]
fn stop_kills_a_component_that_ignores_sigterm() {
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Svg, "--ignore-sigterm --children 2")
            .service(Component::Svg, "TimeoutStopSec=1s"),
    );
    sb.run(&["start"]).code(0);
    assert!(
        sb.stack_pids().len() >= 6,
        "children not started: {:?}",
        sb.stack_pids()
    );
    sb.run(&["stop"]).code(0);
    assert_eq!(sb.stack_pids(), Vec::<u32>::new());
}

#[test]
fn units_not_installed_exit_5() {
    let sb = Sandbox::with(Options {
        no_units: true,
        ..Options::default()
    });
    for cmd in [&["start"][..], &["stop"], &["restart"], &["restart", "is"]] {
        sb.run(cmd)
            .code(5)
            .stderr_one_line()
            .stderr_has("imageserving.target is not installed for the user manager");
    }
}

/// Regression: masked units counted as installed.
#[test]
fn a_masked_unit_is_named_with_exit_5_and_the_unmask_hint() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let unit = Component::Image.unit();
    std::os::unix::fs::symlink("/dev/null", sb.root.join("config/systemd/user").join(unit))
        .expect("mask");
    sb.reload();
    for cmd in [&["start"][..], &["restart"], &["restart", "is"]] {
        sb.run(cmd)
            .code(5)
            .stderr_one_line()
            .stderr_has(&format!("systemctl --user unmask {unit}"));
    }
    // Another component can still be restarted, and the stack stopped.
    sb.run(&["restart", "svg"]).code(0);
    sb.run(&["stop"]).code(0);
    assert_eq!(sb.stack_pids(), Vec::<u32>::new());
}

/// Regression: a component that Restart= brings back within RestartSec= failed `start`.
#[test]
fn a_component_that_restart_brings_back_does_not_fail_start() {
    // is exits 1 on its first run only; systemd restarts it 100 ms later and it serves.
    let sb = Sandbox::with(Options::default().service(
        Component::Image,
        "ExecStart=\nExecStart=/bin/sh -c 'if [ ! -e {root}/ran-once ]; then touch {root}/ran-once; exit 1; fi; exec {standin} --port {port}'\nRestartSec=300ms",
    ));
    sb.run(&["start"])
        .code(0)
        .stdout_has("Image Serving started");
    assert!(sb.root.join("ran-once").exists(), "is did not fail once");
    assert_eq!(sb.state(Component::Image.unit()).restarts, 1);
    // The same for restart of one component.
    std::fs::remove_file(sb.root.join("ran-once")).expect("rm");
    sb.run(&["restart", "is"]).code(0);
    assert!(sb.root.join("ran-once").exists());
}

#[test]
fn unreachable_bus_exits_1_naming_the_address() {
    let sb = Sandbox::new();
    let addr = format!("unix:path={}/nothing-here", sb.root.display());
    sb.run_env(&["start"], &[("DBUS_SESSION_BUS_ADDRESS", &addr)])
        .code(1)
        .stderr_one_line()
        .stderr_has(&addr);
}

#[test]
fn permission_denied_exits_4() {
    let sb = Sandbox::new();
    // An unprivileged user may not even open root's session bus.
    let out = crate::harness::run_with_timeout(
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(crate::harness::IMAGESERVING)
            .args(["--user", "stop"])
            .env_clear()
            .envs(sb.env()),
        std::time::Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn bad_arguments_exit_2_on_one_line() {
    let sb = Sandbox::new();
    for args in [
        &["restart", "tomcat"][..],
        &["status", "x", "y"],
        &["start", "--bogus"],
        &["launch"],
    ] {
        let r = sb.run(args).code(2).stderr_one_line();
        if args[0] == "restart" {
            r.stderr_has("ps (platform), is (image), svg");
        }
    }
}

#[test]
fn start_times_out_naming_the_component_that_does_not_serve() {
    // The Platform Server runs but never opens its port; the supervisor's own start ceiling
    // is short here, so start must fail naming ps rather than hang. The supervisor itself
    // reports ready at its ceiling and stays up (no restart loop), watching the others.
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Platform, "--start-delay 3600")
            .supervisor("Environment=IMAGESERVING_START_TIMEOUT_SEC=2"),
    );
    sb.run(&["start"])
        .code(1)
        .stderr_one_line()
        .stderr_has("ps on http://127.0.0.1:")
        .stderr_has("IMAGESERVING_START_TIMEOUT_SEC");
    let s = sb.state(SUPERVISOR);
    assert_eq!(s.active_state, ActiveState::Active, "{}", s.summary());
    assert_eq!(s.restarts, 0, "the supervisor restarted");
    assert!(
        s.status_text.contains("ps not answering"),
        "{}",
        s.status_text
    );
}

/// Regression: the signal stream used to be read only between other calls, whose replies
/// also landed in it; after ~250 messages zbus stopped reading the socket and `restart`
/// hung for good while it polled a component that was slow to open its port.
#[test]
fn a_long_wait_for_a_slow_component_does_not_stall_the_connection() {
    let sb = Sandbox::with(Options::default().arg(Component::Image, "--start-delay 3"));
    sb.run(&["start"]).code(0);
    let t = std::time::Instant::now();
    sb.run(&["restart", "is"]).code(0);
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(3),
        "restart returned before is served"
    );
}

#[test]
fn progress_is_shown_on_a_terminal_only() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--start-delay 1.5"));
    let tty = sb.run_on_tty(&["start"], &[]).code(0).stdout;
    assert!(
        tty.contains("waiting for"),
        "no progress on a terminal:\n{tty}"
    );
    assert!(
        tty.contains("svg"),
        "progress does not name the component still starting:\n{tty}"
    );
    // Without a terminal: one line, no progress.
    sb.run(&["stop"]).code(0);
    let piped = sb.run(&["start"]).code(0);
    assert_eq!(piped.stderr, "", "progress noise without a terminal");
    assert_eq!(piped.stdout.lines().count(), 1);
}

/// Regression: Ctrl-C during `start` left the progress line half drawn and said nothing of
/// the job, which systemd goes on with.
#[test]
fn ctrl_c_clears_the_progress_line_and_says_the_job_goes_on() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--start-delay 3"));
    let tty = sb
        .run_shell(&format!(
            "script -qec 'timeout -s INT --preserve-status 1 {} --user start; echo exit=$?' /dev/null",
            crate::harness::IMAGESERVING
        ))
        .code(0)
        .stdout;
    assert!(
        tty.contains("waiting for"),
        "no progress was drawn:\n{tty:?}"
    );
    assert!(
        tty.contains("\r\x1b[2KImageServing: interrupted; systemd goes on starting imageserving.target: see 'ImageServing --user status'"),
        "{tty:?}"
    );
    assert!(tty.contains("exit=130"), "{tty:?}");
    // The wait ended, the job did not.
    crate::harness::eventually(Duration::from_secs(20), "the stack up after all", || {
        sb.state(imageserving::component::TARGET).active_state == ActiveState::Active
    });
}

/// The system-manager code paths (the default scope, the supervisor's `--system`), run against
/// this sandbox's manager reached through DBUS_SYSTEM_BUS_ADDRESS: the machine's own PID 1 is
/// not systemd, and a system instance must not be booted on its root file system.
#[test]
fn the_system_scope_drives_a_manager_on_the_system_bus_address() {
    let sb = Sandbox::new();
    let supervisor = sb
        .root
        .join("home/.local/libexec/imageserving/imageserving-supervisor");
    sb.dropin(
        imageserving::component::SUPERVISOR,
        "60-system-scope",
        &format!(
            "[Service]\nExecStart=\nExecStart={} --system\nEnvironment=DBUS_SYSTEM_BUS_ADDRESS={}\n",
            supervisor.display(),
            sb.bus
        ),
    );
    sb.reload();
    let system = |args: &[&str]| {
        let out = crate::harness::run_with_timeout(
            std::process::Command::new(crate::harness::IMAGESERVING)
                .args(args)
                .env_clear()
                .envs(sb.env())
                .env_remove("DBUS_SESSION_BUS_ADDRESS")
                .env("DBUS_SYSTEM_BUS_ADDRESS", &sb.bus),
            std::time::Duration::from_secs(60),
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = system(&["start"]);
    assert_eq!(code, Some(0), "{out}{err}");
    all_active(&sb);
    let (code, out, _) = system(&["status", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("\"scope\": \"system\""), "{out}");
    let (code, out, err) = system(&["stop"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(sb.stack_pids(), Vec::<u32>::new());
}

#[test]
fn stop_stops_members_started_without_the_target() {
    // An operator started a component directly (systemctl start imageserving-svg); the
    // target itself is inactive. stop must still leave nothing of the stack running.
    let sb = Sandbox::new();
    let m = sb.manager();
    m.start_unit(Component::Svg.unit()).expect("start svg");
    crate::harness::eventually(std::time::Duration::from_secs(10), "svg active", || {
        sb.state(Component::Svg.unit()).active_state == ActiveState::Active
    });
    assert_ne!(sb.state(TARGET).active_state, ActiveState::Active);
    sb.run(&["stop"]).code(0).stdout_has("stopped");
    assert_eq!(sb.stack_pids(), Vec::<u32>::new());
}
