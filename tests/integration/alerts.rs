//! Alerts an on-call can trust: routine work on JVM components (which exit 143 on SIGTERM)
//! raises none and leaves no unit failed, a stop that ends badly is told apart from a
//! give-up, one failing channel does not silence the other, and an alert still goes out when
//! the service manager cannot be asked.

use std::time::Duration;

use imageserving::component::Component;
use imageserving::systemd::ActiveState;

use crate::harness::{eventually, run_with_timeout, signal, Options, Sandbox, IMAGESERVING};

const SVG: &str = "imageserving-svg.service";

/// Regression: a JVM exits 143 on SIGTERM, and the units did not call that a success: every
/// `stop`, `stop NAME`, `restart NAME` and `restart` left ps and svg `failed` and paged the
/// on-call.
#[test]
fn routine_work_on_jvm_components_raises_no_alert_and_leaves_nothing_failed() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    for args in [
        &["stop", "svg"][..],
        &["start"],
        &["restart", "svg"],
        &["restart", "ps"],
        &["restart"],
        &["stop"],
    ] {
        sb.run(args).code(0);
        for c in Component::ALL {
            let s = sb.state(c.unit());
            assert_ne!(
                s.active_state,
                ActiveState::Failed,
                "after {args:?}: {c} is {}",
                s.summary()
            );
        }
    }
    // The hook would have run at once; give it the time it would take.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sb.alerts(),
        0,
        "alerts for routine work:\n{}",
        sb.alert_log()
    );
}

/// A unit that fails on its stop (here: 143 without `SuccessExitStatus=`) after an earlier
/// automatic restart is not one systemd gave up on: the hook runs (`OnFailure=`), says why
/// it sends nothing, and sends nothing.
#[test]
fn a_stop_that_ends_badly_after_a_crash_is_not_a_give_up() {
    let sb = Sandbox::new();
    sb.dropin(SVG, "60-no-success-143", "[Service]\nSuccessExitStatus=\n");
    sb.reload();
    sb.run(&["start"]).code(0);
    // One crash: Restart= brings it back, and NRestarts is 1 from then on.
    let pid = sb.main_pid(Component::Svg);
    signal(pid, "KILL");
    sb.wait_replaced(SVG, pid, Duration::from_secs(20));
    assert_eq!(sb.state(SVG).restarts, 1);
    sb.run(&["stop", "svg"]).code(0);
    let s = sb.state(SVG);
    assert_eq!(s.active_state, ActiveState::Failed, "{}", s.summary());
    assert!(!s.gave_up(), "a stop taken for a give-up: {}", s.summary());
    eventually(
        Duration::from_secs(10),
        "the hook ran and said why not",
        || sb.alert_log().contains("systemd did not give up on it"),
    );
    assert_eq!(sb.alerts(), 0, "{}", sb.alert_log());
    // `status` does not call it given up either.
    let status = sb.run(&["status", "svg", "--json"]);
    assert!(
        status.stdout.contains("\"given_up\": false")
            || status.stdout.contains("\"given_up\":false"),
        "{}",
        status.stdout
    );
}

/// Regression: with both channels set and no mail relay, the command never ran (the hook
/// returned on the mail's error), so no alert left the host.
#[test]
fn a_failing_mail_channel_does_not_silence_the_command() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--crash-after 0.3"));
    let root = sb.root.display().to_string();
    // Port 1 on loopback: nothing listens, the relay refuses at once.
    sb.dropin(
        "imageserving-alert@.service",
        "50-channels",
        &format!(
            "[Service]\nEnvironment=IMAGESERVING_ALERT_MAIL_TO=ops@localhost IMAGESERVING_ALERT_SMTP=127.0.0.1:1\nEnvironment=\"IMAGESERVING_ALERT_COMMAND=cat >{root}/command-got\"\n"
        ),
    );
    sb.reload();
    let _ = sb.run(&["start"]);
    eventually(Duration::from_secs(30), "svg given up", || {
        sb.state(SVG).gave_up()
    });
    let alert_unit = "imageserving-alert@imageserving-svg.service.service";
    eventually(Duration::from_secs(20), "the alert unit ran", || {
        let s = sb.state(alert_unit);
        s.active_state == ActiveState::Failed
    });
    let got = std::fs::read_to_string(sb.root.join("command-got")).unwrap_or_default();
    assert!(
        got.contains("failed and systemd gave up on it"),
        "the command did not get the alert: {got:?}\n{}",
        sb.alert_log()
    );
    let log = sb.alert_log();
    assert!(
        log.contains("<2>alert NOT mailed to ops@localhost through 127.0.0.1:1: "),
        "the mail's failure is not logged at crit with why:\n{log}"
    );
    assert!(log.contains("<5>alert sent: "), "{log}");
}

/// Regression: when the service manager could not be asked, the hook sent nothing at all.
#[test]
fn an_alert_goes_out_when_the_manager_cannot_be_asked() {
    let dir = std::env::temp_dir().join(format!("isalert-nobus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let out = run_with_timeout(
        std::process::Command::new(IMAGESERVING)
            .args(["--user", "alert", SVG])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", &dir)
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}/no-bus", dir.display()),
            )
            .env("MONITOR_SERVICE_RESULT", "exit-code")
            .env("MONITOR_EXIT_STATUS", "1")
            .env(
                "IMAGESERVING_ALERT_COMMAND",
                format!(
                    "cat >{}/got; echo $IMAGESERVING_ALERT_UNIT >{}/unit",
                    dir.display(),
                    dir.display()
                ),
            ),
        Duration::from_secs(30),
    );
    let got = std::fs::read_to_string(dir.join("got")).unwrap_or_default();
    let unit = std::fs::read_to_string(dir.join("unit")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(unit.trim(), SVG);
    for part in [
        "imageserving-svg.service failed at ",
        "(result exit-code, exit status 1)",
        "details unavailable: ",
    ] {
        assert!(got.contains(part), "{part:?} missing: {got}");
    }
}
