//! The rootless stack: real unprivileged users with lingering user managers on the booted
//! system, running the packaged user units (alice) and units installed with
//! `packaging/install.sh --user` (bob), side by side on other ports.

use std::time::Duration;

use imageserving::component::{Component, SUPERVISOR};

use super::in_both_layouts;
use super::machine::{Layout, Machine, IN};
use super::package::machine;

/// What a login gives a user's shell: the runtime directory of the user's manager.
const USER_ENV: &str = "export XDG_RUNTIME_DIR=/run/user/$(id -u); cd;";

/// Drop-ins that point the user's components at stand-ins on `ports` (ps, is, svg), with a
/// fast probe for ps.
fn standins(ports: [u16; 3]) -> String {
    let mut script = String::from("set -e; u=~/.config/systemd/user;");
    for (c, port) in Component::ALL.iter().zip(ports) {
        let (path, probe) = match c {
            Component::Platform => (
                "/is/image",
                format!("http://127.0.0.1:{port}/is/image\\nEnvironment=IMAGESERVING_PROBE_INTERVAL_SEC=0.5"),
            ),
            _ => ("/", format!("tcp://127.0.0.1:{port}")),
        };
        // ps and svg exit 143 on SIGTERM, as the JVMs they stand in for.
        let jvm = match c {
            Component::Image => "",
            _ => " --term-exit 143",
        };
        script.push_str(&format!(
            " mkdir -p $u/{unit}.d; printf '[Service]\\nExecStart=\\nExecStart={IN}/imageserving-standin --port {port} --path {path}{jvm}\\nEnvironment=IMAGESERVING_PROBE={probe}\\n' >$u/{unit}.d/standin.conf;",
            unit = c.unit()
        ));
    }
    script
}

#[track_caller]
fn as_user(m: &Machine, user: &str, script: &str) -> crate::harness::Run {
    m.sh_as(user, &format!("{USER_ENV} {script}"))
}

#[track_caller]
fn user_main_pid(m: &Machine, user: &str, unit: &str) -> u32 {
    as_user(
        m,
        user,
        &format!("systemctl --user show -p MainPID --value {unit}"),
    )
    .code(0)
    .stdout
    .trim()
    .parse()
    .unwrap_or(0)
}

fn rootless(layout: Layout) {
    let m = machine(layout);
    m.sh(&format!(
        "dpkg -i {IN}/1.deb >/dev/null && useradd -m alice && useradd -m bob && loginctl enable-linger alice bob"
    ))
    .code(0);
    m.eventually(
        Duration::from_secs(30),
        "both user managers running",
        || {
            ["alice", "bob"].iter().all(|u| {
                let state = as_user(&m, u, "systemctl --user is-system-running").stdout;
                matches!(state.trim(), "running" | "degraded")
            })
        },
    );

    // The user units' exposure, as alice's own manager computes it (README figures):
    // PrivateUsers= keeps every restriction but ProtectKernelLogs= in force.
    for (unit, limit) in [
        (SUPERVISOR, 1.7),
        ("imageserving-platform.service", 2.2),
        ("imageserving-image.service", 2.1),
        ("imageserving-svg.service", 2.2),
    ] {
        let out = as_user(
            &m,
            "alice",
            &format!("systemd-analyze --user security --no-pager {unit}"),
        )
        .code(0)
        .stdout;
        let line = out
            .lines()
            .rev()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_default();
        let level: f64 = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure in {out}"));
        assert!(
            level <= limit,
            "{unit}: user exposure {level} above {limit}"
        );
    }

    // alice: the packaged user units. bob: his own install from the source tree.
    as_user(
        &m,
        "alice",
        &format!(
            "{} systemctl --user daemon-reload",
            standins([18080, 18345, 18346])
        ),
    )
    .code(0);
    let tree = env!("CARGO_MANIFEST_DIR");
    as_user(
        &m,
        "bob",
        &format!(
            "sh {tree}/packaging/install.sh --user --from {tree}/target/release && {} systemctl --user daemon-reload",
            standins([28080, 28345, 28346])
        ),
    )
    .code(0)
    .stdout_has("reloaded the --user manager");
    let bob = "~/.local/bin/ImageServing";

    as_user(&m, "alice", "ImageServing --user start")
        .code(0)
        .stdout_has("Image Serving started");
    as_user(&m, "bob", &format!("{bob} --user start"))
        .code(0)
        .stdout_has("Image Serving started");

    // Each sees its own stack: memory and uptime read without privilege, nothing unreadable.
    for (user, cmd) in [("alice", "ImageServing"), ("bob", bob)] {
        as_user(&m, user, &format!("{cmd} --user status"))
            .code(0)
            .stdout_has("Server Supervisor: active (running)");
        let doc: serde_json::Value = serde_json::from_str(
            &as_user(&m, user, &format!("{cmd} --user status --json --pss"))
                .code(0)
                .stdout,
        )
        .expect("status --json");
        assert_eq!(doc["scope"], "user");
        for c in doc["components"].as_array().expect("components") {
            let unit = c["unit"].as_str().expect("unit");
            assert_eq!(
                c["pid"].as_u64(),
                Some(u64::from(user_main_pid(&m, user, unit))),
                "{user}: {c}"
            );
            assert!(
                c["memory"]["rss_bytes"].as_u64().unwrap_or(0) > 0,
                "{user}: {c}"
            );
            assert!(
                c["memory"]["pss_bytes"].as_u64().unwrap_or(0) > 0,
                "{user}: {c}"
            );
            assert_eq!(c["unreadable_processes"], 0, "{user}: {c}");
            assert!(c["uptime_seconds"].is_u64(), "{user}: {c}");
        }
    }
    // bob's supervisor is his own build, alice's the packaged one.
    let exe = |user: &str| {
        let pid = user_main_pid(&m, user, SUPERVISOR);
        m.sh(&format!("readlink /proc/{pid}/exe"))
            .code(0)
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(
        exe("alice"),
        "/usr/libexec/imageserving/imageserving-supervisor"
    );
    assert!(
        exe("bob").starts_with("/home/bob/.local/"),
        "{}",
        exe("bob")
    );

    // restart is: the others keep their PIDs; bob's stack is untouched.
    let pids = |user: &str| -> Vec<u32> {
        Component::ALL
            .iter()
            .map(|c| user_main_pid(&m, user, c.unit()))
            .collect()
    };
    let (a, b) = (pids("alice"), pids("bob"));
    as_user(&m, "alice", "ImageServing --user restart is")
        .code(0)
        .stdout_has("Image Server (is) restarted");
    let a2 = pids("alice");
    assert_eq!((a[0], a[2]), (a2[0], a2[2]), "ps or svg restarted");
    assert_ne!(a[1], a2[1], "is kept its PID");
    assert_eq!(b, pids("bob"), "bob's stack changed");

    // A hung Platform Server is restarted by alice's own supervisor (no polkit involved).
    as_user(&m, "alice", &format!("kill -USR1 {}", a2[0])).code(0);
    m.eventually(Duration::from_secs(40), "alice's hung ps restarted", || {
        let pid = user_main_pid(&m, "alice", Component::Platform.unit());
        pid != 0 && pid != a2[0]
    });
    as_user(
        &m,
        "alice",
        "journalctl --user --no-pager -u imageserving-supervisor.service; true",
    );

    // stop: no process of alice's stack left; bob's runs on.
    as_user(&m, "alice", "ImageServing --user stop")
        .code(0)
        .stdout_has("stopped");
    for unit in imageserving::component::stack_units() {
        assert_eq!(
            m.user_unit_pids("alice", unit),
            Vec::<u32>::new(),
            "alice {unit}"
        );
        assert!(!m.user_unit_pids("bob", unit).is_empty(), "bob {unit}");
    }
    as_user(&m, "bob", &format!("{bob} --user status")).code(0);
    as_user(&m, "bob", &format!("{bob} --user stop")).code(0);
    for unit in imageserving::component::stack_units() {
        assert_eq!(
            m.user_unit_pids("bob", unit),
            Vec::<u32>::new(),
            "bob {unit}"
        );
    }
}
in_both_layouts!(unprivileged_users_run_their_own_stacks, rootless);
