//! The Image Serving page in Cockpit, in a real browser: Debian's cockpit-ws in a booted box
//! with the package installed, headless Chromium driven by Selenium
//! (`cockpit_browser.py`), logging in through Cockpit's login form as a member of
//! `imageserving-admin` and as a plain account.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::machine::{Layout, Machine, IN};
use super::package::machine_unmasking;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/booted/cockpit_browser.py"
);

/// Where the screenshots go (the ones kept in docs/ are copies of these).
fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cockpit");
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// Run the browser script in the box; the JSON object it printed last. When it failed, the
/// browser's last picture is copied out first.
fn browse(m: &Machine, args: &str) -> Value {
    let r = m.sh_timeout(
        &format!("cd /root && /usr/bin/python3 {SCRIPT} {args}"),
        Duration::from_secs(400),
    );
    if r.code != 0 && m.sh("test -f /root/shots/failure.png").code == 0 {
        copy_out(m, "/root/shots/failure.png", &shots().join("failure.png"));
        eprintln!(
            "the browser's last picture: {}",
            shots().join("failure.png").display()
        );
    }
    let last = r.stdout.lines().last().unwrap_or_default().to_owned();
    let facts: Value = serde_json::from_str(&last).unwrap_or_else(|e| {
        panic!(
            "the browser script printed no result ({e}), exit {}:\n{}\n{}",
            r.code, r.stdout, r.stderr
        )
    });
    assert_eq!(
        r.code, 0,
        "the browser script failed: {facts}\n{}",
        r.stderr
    );
    facts
}

/// Copy a file out of the box (base64 through the shell) to `to`.
fn copy_out(m: &Machine, path: &str, to: &PathBuf) {
    let b64 = m.sh(&format!("base64 -w0 {path}")).code(0).stdout;
    let tmp = to.with_extension("b64");
    std::fs::write(&tmp, b64.trim()).expect("write");
    let out = std::process::Command::new("base64")
        .arg("-d")
        .arg(&tmp)
        .output()
        .expect("base64 -d");
    assert!(out.status.success());
    std::fs::write(to, out.stdout).expect("write the screenshot");
    let _ = std::fs::remove_file(tmp);
}

fn cockpit_page(layout: Layout) {
    // The image's Cockpit is enabled, and the boxes mask what the image enables: not here.
    let m = machine_unmasking(layout, &["cockpit.socket"]);
    m.sh(&format!("dpkg -i {IN}/1.deb")).code(0);
    m.sh_timeout("ImageServing start", Duration::from_secs(120))
        .code(0);
    m.sh("set -e
         useradd -m -s /bin/bash -G imageserving-admin,systemd-journal carol
         echo carol:Carol-Pass-1 | chpasswd
         useradd -m -s /bin/bash dave
         echo dave:Dave-Pass-1 | chpasswd
         mkdir -p /root/shots
         systemctl start cockpit.socket")
        .code(0);
    assert!(
        m.sh("test -f /usr/share/cockpit/imageserving/manifest.json")
            .code
            == 0,
        "the package did not install the page"
    );

    let a = browse(&m, "admin carol Carol-Pass-1 /root/shots");
    eprintln!("[{}] admin: {a}", m.name);
    let shots = shots();
    for width in [1280, 390] {
        copy_out(
            &m,
            &format!("/root/shots/cockpit-{width}.png"),
            &shots.join(format!("cockpit-{width}.png")),
        );
    }
    eprintln!("screenshots in {}", shots.display());

    // One row per component, the PIDs systemd has, the supervisor's line.
    for c in ["ps", "is", "svg", "supervisor"] {
        assert_eq!(a["pids"][c], a["systemd_pids"][c], "{c}: {a}");
        assert_ne!(a["pids"][c], "", "{c}: {a}");
    }
    for c in ["ps", "is", "svg"] {
        let row = a["rows"][c].as_str().unwrap_or_default();
        assert!(
            row.contains("active (running)") && row.contains("MiB") && row.contains("answers"),
            "{c}'s row: {row}"
        );
    }
    assert!(
        a["supervisor"]
            .as_str()
            .unwrap_or_default()
            .contains("3/3 components serving"),
        "{a}"
    );
    // Restart svg from the page: svg's PID changed (as systemd has it), ps and is kept theirs.
    assert_ne!(a["after_restart"]["svg"], a["pids"]["svg"]);
    assert_eq!(a["after_restart"]["svg"], a["svg_systemd_after"]);
    assert_eq!(a["after_restart"]["ps"], a["pids"]["ps"]);
    assert_eq!(a["after_restart"]["is"], a["pids"]["is"]);
    // A restart from a terminal shows within a few seconds, without a reload.
    assert_eq!(a["ps_page_after"], a["ps_systemd_after"]);
    let followed = a["followed_terminal_after_s"].as_f64().unwrap_or(99.0);
    assert!(followed <= 6.0, "the page followed after {followed} s");
    // The journal, the confirmation, the two widths, the dark theme.
    assert!(a["log_lines"].as_u64().unwrap_or(0) >= 1, "{a}");
    assert_eq!(a["log_shown"], true, "{a}");
    assert_eq!(a["confirm_before_stop"], false, "{a}");
    assert_eq!(a["confirm_shown"], true);
    assert_eq!(
        a["svg_running_before_confirm"], true,
        "stop acted before the confirmation"
    );
    assert!(
        a["svg_stopped_row"]
            .as_str()
            .unwrap_or_default()
            .contains("inactive"),
        "{a}"
    );
    for width in [1280, 390] {
        let s = &a[format!("scroll_{width}")];
        for view in ["page", "shell"] {
            let (scroll, client) = (s[view][0].as_u64(), s[view][1].as_u64());
            assert!(
                scroll.is_some() && scroll <= client,
                "horizontal scroll at {width} px in the {view}: {s}; sticking out: {}",
                a[format!("wide_{width}")]
            );
        }
    }
    assert_eq!(a["dark"], true);
    assert_eq!(a["alerts_left"], 0, "an alert could not be closed: {a}");

    // A plain account sees the stack, and its restart is refused in words; nothing changes.
    let p = browse(&m, "plain dave Dave-Pass-1");
    eprintln!("[{}] plain: {p}", m.name);
    let refusal = p["refusal"].as_str().unwrap_or_default();
    assert!(
        refusal.contains("not allowed") && refusal.contains("imageserving-admin"),
        "{refusal}"
    );
    assert!(
        !refusal.contains("org.freedesktop"),
        "a raw D-Bus error name: {refusal}"
    );
    assert_eq!(p["pid_after"], p["pid_before"]);
    assert_eq!(p["systemd_pid_after"], p["pid_before"]);
}
super::in_layouts!(the_cockpit_page_shows_and_drives_the_stack, cockpit_page, unified => Unified);
