//! The .deb on a booted system: install, the stack in the system scope with the shipped
//! hardening, polkit, other accounts, removal.

use std::path::PathBuf;
use std::time::Duration;

use imageserving::component::{Component, SUPERVISOR, TARGET};

use super::machine::{Layout, Machine, IN};
use super::{in_both_layouts, on_every_image};

/// A package built by `packaging/build-packages.sh`: `kind` is "deb" or "rpm", `revision` 1
/// or 2 (two builds of this tree, for upgrades).
pub fn package(kind: &str, revision: u32) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/packages"));
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries.flatten().map(|e| e.path()).find(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let prefix = match kind {
                "deb" => format!("imageserving_{version}-{revision}_"),
                _ => format!("imageserving-{version}-{revision}."),
            };
            name.starts_with(&prefix) && name.ends_with(&format!(".{kind}"))
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "no {kind} of imageserving {version}-{revision} in {}: build the packages first with \
             packaging/build-packages.sh (scripts/test.sh does)",
            dir.display()
        )
    })
}

/// A machine with both builds of both packages under [`IN`] (as `1.deb`, `2.deb`, `1.rpm`,
/// `2.rpm`) and stand-ins where the units expect the vendor's programs.
pub fn machine(layout: Layout) -> Machine {
    machine_unmasking(layout, &[])
}

/// [`machine`], with `unmasked` of the image's enabled units left as they are.
pub fn machine_unmasking(layout: Layout, unmasked: &[&str]) -> Machine {
    let files = [
        (package("deb", 1), "1.deb"),
        (package("deb", 2), "2.deb"),
        (package("rpm", 1), "1.rpm"),
        (package("rpm", 2), "2.rpm"),
    ];
    let m = Machine::boot_unmasking(layout, &files, unmasked);
    // The vendor's programs: stand-ins on the original ports, at the paths the units name,
    // so that the shipped units run unchanged; ps and svg exit 143 on SIGTERM, as the JVMs
    // they stand in for do.
    m.sh(&format!(
        "set -e; bin=/usr/local/scene7/ImageServing/bin; mkdir -p $bin
         for spec in 'PlatformServer 8080 /is/image --term-exit=143' 'ImageServer 27345 /' 'SvgServer 27346 / --term-exit=143'; do
             set -- $spec
             printf '#!/bin/sh\\nexec {IN}/imageserving-standin --port %s --path %s %s \"$@\"\\n' $2 $3 \"$4\" >$bin/$1
             chmod 0755 $bin/$1
         done"
    ))
    .code(0);
    m
}

/// A machine with build 1 of the .deb installed.
pub fn installed(layout: Layout) -> Machine {
    let m = machine(layout);
    m.sh(&format!("dpkg -i {IN}/1.deb")).code(0);
    m
}

const MEMBERS: [&str; 4] = [
    SUPERVISOR,
    "imageserving-platform.service",
    "imageserving-image.service",
    "imageserving-svg.service",
];

/// Every member and the target in `state` (`active` or `inactive`).
#[track_caller]
pub fn all_in(m: &Machine, state: &str) {
    for unit in MEMBERS.iter().chain([&TARGET]) {
        assert_eq!(m.prop(unit, "ActiveState"), state, "{unit}");
    }
}

#[track_caller]
fn component_pids(m: &Machine) -> Vec<u32> {
    Component::ALL
        .iter()
        .map(|c| m.main_pid(c.unit()))
        .collect()
}

fn install_and_lifecycle(layout: Layout) {
    let m = machine(layout);
    m.sh("getent passwd imageserving").code(2);
    m.sh(&format!("dpkg -i {IN}/1.deb")).code(0);

    // What the package did.
    m.sh("getent passwd imageserving").code(0);
    assert_eq!(
        m.sh("systemctl is-enabled imageserving.target")
            .stdout
            .trim(),
        "enabled"
    );
    all_in(&m, "inactive");
    m.sh("set -e; ImageServing --version; imageserving --version; man -w ImageServing; \
          bash -c '. /usr/share/bash-completion/completions/ImageServing && complete -p ImageServing'; \
          test -e /usr/share/polkit-1/rules.d/50-imageserving.rules; \
          test -e /usr/lib/systemd/user/imageserving.target")
        .code(0)
        .stdout_has(concat!("ImageServing ", env!("CARGO_PKG_VERSION")));
    let verify = m
        .sh("cd / && systemd-analyze verify --man=no /lib/systemd/system/imageserving*")
        .code(0);
    assert_eq!(verify.stdout.trim(), "", "{}", verify.stderr);
    assert_eq!(verify.stderr.trim(), "", "systemd-analyze verify");

    // The exposure the live manager computes is the one the offline check computes from
    // the same files (the hardening test holds the offline figures to their thresholds).
    for unit in MEMBERS {
        let live = exposure(
            &m.sh(&format!("systemd-analyze security --no-pager {unit}"))
                .code(0)
                .stdout,
        );
        let offline = exposure(
            &m.sh(&format!(
                "systemd-analyze security --offline=true --no-pager /lib/systemd/system/{unit}"
            ))
            .code(0)
            .stdout,
        );
        assert_eq!(
            live, offline,
            "{unit}: live exposure {live}, offline {offline}"
        );
    }

    // The system scope (the tool's default) with the shipped hardening: no drop-in at all.
    m.sh("ImageServing start")
        .code(0)
        .stdout_has("Image Serving started");
    all_in(&m, "active");
    for unit in MEMBERS {
        assert_eq!(m.prop(unit, "DropInPaths"), "", "{unit} has drop-ins");
        for p in [
            "PrivateTmp",
            "ProtectKernelTunables",
            "ProtectKernelLogs",
            "NoNewPrivileges",
        ] {
            assert_eq!(m.prop(unit, p), "yes", "{unit}: {p}");
        }
    }
    assert_eq!(
        m.sh(&format!("ps -o user= -p {}", m.main_pid(SUPERVISOR)))
            .stdout
            .trim(),
        "imageserving"
    );
    let status = m.sh("ImageServing status --json").code(0).stdout;
    let json: serde_json::Value = serde_json::from_str(&status).expect("status --json");
    assert_eq!(json["scope"], "system");
    for c in json["components"].as_array().expect("components") {
        assert_eq!(c["state"], "active", "{c}");
        assert!(c["pid"].as_u64().unwrap_or(0) > 0, "{c}");
        assert!(c["memory"]["rss_bytes"].as_u64().unwrap_or(0) > 0, "{c}");
        assert!(c["uptime_seconds"].is_u64(), "{c}");
    }
    m.sh("ImageServing status")
        .code(0)
        .stdout_has("Server Supervisor: active (running)");

    let before = component_pids(&m);
    let supervisor = m.main_pid(SUPERVISOR);
    m.sh("ImageServing restart is")
        .code(0)
        .stdout_has("Image Server (is) restarted");
    let after = component_pids(&m);
    assert_eq!(
        (before[0], before[2]),
        (after[0], after[2]),
        "ps or svg restarted"
    );
    assert_ne!(before[1], after[1], "is kept its PID");
    assert_eq!(
        supervisor,
        m.main_pid(SUPERVISOR),
        "the supervisor was restarted"
    );

    m.sh("ImageServing stop").code(0).stdout_has("stopped");
    all_in(&m, "inactive");
    assert_eq!(
        m.stack_pids(),
        Vec::<u32>::new(),
        "processes left after stop"
    );

    // systemctl and ImageServing are two views of one truth, both ways.
    m.sh("systemctl start imageserving.target").code(0);
    all_in(&m, "active");
    m.sh("ImageServing status").code(0);
    m.sh("ImageServing stop").code(0);
    all_in(&m, "inactive");
    m.sh("ImageServing start").code(0);
    assert_eq!(
        m.sh("systemctl is-active imageserving.target")
            .stdout
            .trim(),
        "active"
    );
    m.sh("systemctl stop imageserving.target").code(0);
    m.eventually(Duration::from_secs(30), "every member stopped", || {
        m.stack_pids().is_empty()
    });
    all_in(&m, "inactive");
    m.sh("ImageServing status")
        .code(3)
        .stdout_has("The Server Supervisor is not running");

    // An unprivileged account reads status, and is refused the rest with the hint.
    m.sh("ImageServing start && useradd -m alice").code(0);
    m.sh_as("alice", "ImageServing status")
        .code(0)
        .stdout_has("imageserving-image.service");
    for cmd in ["start", "stop", "restart", "restart is"] {
        m.sh_as("alice", &format!("ImageServing {cmd}"))
            .code(4)
            .stderr_one_line()
            .stderr_has("run as root");
    }
    all_in(&m, "active");

    // Removal stops everything; purge leaves no unit.
    let pids = m.stack_pids();
    assert!(pids.len() >= 4, "{pids:?}");
    m.sh("dpkg -r imageserving").code(0);
    assert_eq!(
        m.stack_pids(),
        Vec::<u32>::new(),
        "processes left after remove"
    );
    let alive = m.sh(&format!(
        "for p in {}; do test -e /proc/$p && echo $p; done; true",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    assert_eq!(
        alive.stdout.trim(),
        "",
        "stack processes alive after remove"
    );
    m.sh("dpkg -P imageserving").code(0);
    for unit in MEMBERS.iter().chain([&TARGET]) {
        assert_eq!(
            m.prop(unit, "LoadState"),
            "not-found",
            "{unit} still loaded"
        );
    }
    let left = m.sh("find /etc /usr/lib/systemd /lib/systemd /usr/bin /usr/libexec /usr/share -name '*imageserving*' 2>/dev/null; true");
    assert_eq!(left.stdout.trim(), "", "files left after purge");
}
on_every_image!(
    install_start_status_restart_stop_remove,
    install_and_lifecycle
);

/// The overall exposure figure of `systemd-analyze security`'s last line.
fn exposure(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{text}"));
    line.split_whitespace()
        .find_map(|w| w.parse::<f64>().ok().map(|_| w.to_owned()))
        .unwrap_or_else(|| panic!("no figure in {line:?}"))
}

fn supervisor_and_polkit(layout: Layout) {
    let m = installed(layout);
    // Faster probes (the probe settings are the operator's to tune; no restriction changes).
    let dir = "/etc/systemd/system/imageserving-platform.service.d";
    m.sh(&format!(
        "mkdir -p {dir} && printf '[Service]\\nEnvironment=IMAGESERVING_PROBE_INTERVAL_SEC=0.5\\n' \
         >{dir}/probe.conf && systemctl daemon-reload && ImageServing start"
    ))
    .code(0);
    let unit = Component::Platform.unit();
    let hung = m.main_pid(unit);
    let others = [
        m.main_pid(Component::Image.unit()),
        m.main_pid(Component::Svg.unit()),
    ];
    // The stand-in stops answering HTTP on SIGUSR1 and stays alive: only the supervisor's
    // HTTP probe can tell.
    m.sh(&format!("kill -USR1 {hung}")).code(0);
    m.eventually(
        Duration::from_secs(45),
        "the hung Platform Server restarted",
        || {
            let pid = m.main_pid(unit);
            pid != hung && pid != 0 && m.prop(unit, "ActiveState") == "active"
        },
    );
    // The supervisor did it as its own account, which only polkit lets restart a unit.
    m.sh("journalctl --no-pager -u imageserving-supervisor.service")
        .stdout_has(unit);
    assert_eq!(m.prop("polkit.service", "ActiveState"), "active");
    assert_eq!(
        others,
        [
            m.main_pid(Component::Image.unit()),
            m.main_pid(Component::Svg.unit())
        ]
    );

    // The account may try-restart the three components (restart one that runs) and nothing
    // else: a component the operator stopped stays stopped.
    let svg = m.main_pid(Component::Svg.unit());
    m.sh_as(
        "imageserving",
        "systemctl --no-ask-password try-restart imageserving-svg.service",
    )
    .code(0);
    assert_ne!(svg, m.main_pid(Component::Svg.unit()));
    m.sh("systemctl stop imageserving-svg.service").code(0);
    m.sh_as(
        "imageserving",
        "systemctl --no-ask-password try-restart imageserving-svg.service",
    )
    .code(0);
    assert_eq!(m.prop(Component::Svg.unit(), "ActiveState"), "inactive");
    m.sh("systemctl start imageserving-svg.service").code(0);
    let journald = m.main_pid("systemd-journald.service");
    for (verb, unit) in [
        ("stop", "imageserving.target"),
        ("restart", "imageserving.target"),
        ("stop", "imageserving-svg.service"),
        ("restart", "imageserving-svg.service"),
        ("start", "imageserving-image.service"),
        ("restart", "systemd-journald.service"),
        ("restart", "imageserving-supervisor.service"),
    ] {
        let r = m.sh_as(
            "imageserving",
            &format!("systemctl --no-ask-password {verb} {unit}"),
        );
        assert_ne!(r.code, 0, "imageserving may {verb} {unit}");
        assert!(
            r.stderr.contains("Access denied")
                || r.stderr.contains("Interactive authentication required"),
            "{verb} {unit}: {}",
            r.stderr
        );
    }
    all_in(&m, "active");
    assert_eq!(journald, m.main_pid("systemd-journald.service"));
}
on_every_image!(
    supervisor_restarts_a_hung_component_through_polkit,
    supervisor_and_polkit
);

fn admin_group(layout: Layout) {
    let m = installed(layout);
    m.sh("getent group imageserving-admin && useradd -m -G imageserving-admin carol && useradd -m dave")
        .code(0);
    // A member runs the stack without root and without a password...
    m.sh_as("carol", "ImageServing start").code(0);
    all_in(&m, "active");
    let is = m.main_pid(Component::Image.unit());
    m.sh_as("carol", "ImageServing restart is").code(0);
    assert_ne!(is, m.main_pid(Component::Image.unit()));
    m.sh_as("carol", "ImageServing restart").code(0);
    // ...but nothing else.
    let journald = m.main_pid("systemd-journald.service");
    let r = m.sh_as(
        "carol",
        "systemctl --no-ask-password restart systemd-journald.service",
    );
    assert_ne!(r.code, 0, "a member restarted an unrelated unit");
    assert_eq!(journald, m.main_pid("systemd-journald.service"));
    m.sh_as(
        "carol",
        "systemctl --no-ask-password disable imageserving.target",
    )
    .code(1);
    // A non-member gets exit 4 and the hint, and the stack is untouched.
    for cmd in ["start", "stop", "restart is"] {
        m.sh_as("dave", &format!("ImageServing {cmd}"))
            .code(4)
            .stderr_one_line()
            .stderr_has("imageserving-admin");
    }
    all_in(&m, "active");
    // On a terminal, in a login session, a non-member is asked for a password as systemctl
    // asks: polkit's text agent prompts; no password (end of input) is a refusal, exit 4.
    // `--no-ask-password` fails at once, without a prompt.
    let on_terminal = |args: &str| {
        m.sh_timeout(
            &format!(
                r#"printf '\n\n\n' | timeout 30 su - dave -c "script -qec 'ImageServing {args}; echo exit=\$?' /dev/null""#
            ),
            Duration::from_secs(60),
        )
        .stdout
    };
    let asked = on_terminal("stop");
    assert!(
        asked.contains("AUTHENTICATING FOR org.freedesktop.systemd1.manage-units"),
        "no polkit prompt:\n{asked}"
    );
    assert!(asked.contains("exit=4"), "{asked}");
    let quiet = on_terminal("--no-ask-password stop");
    assert!(!quiet.contains("AUTHENTICATING"), "{quiet}");
    assert!(quiet.contains("exit=4"), "{quiet}");
    all_in(&m, "active");
    m.sh_as("carol", "ImageServing stop").code(0);
    all_in(&m, "inactive");
}
in_both_layouts!(the_admin_group_runs_the_stack_and_nothing_else, admin_group);
