//! The rows of the state matrix (`tests/integration/matrix.rs`) that need the package or the
//! system bus: a package upgrade with one component in each state an operator leaves it in,
//! and repeated restarts of the system bus; on the system manager, with the shipped units,
//! their hardening and polkit.

use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};

use super::machine::{Layout, Machine, IN};
use super::package::installed;
use super::tomcat::tomcat_box;
use super::{in_both_layouts, in_layouts, on_every_image};

/// What runs as ps and svg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Servers {
    /// The stand-ins, at the paths the units name.
    StandIns,
    /// Real Tomcat JVMs (`booted/tomcat.rs`).
    Tomcat,
}

/// The states a package upgrade is tried from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Serving,
    /// `systemctl stop` for maintenance.
    Stopped,
    /// Its program fails until systemd gives up.
    Failed,
    /// Stopped and masked.
    Masked,
    /// Alive, not answering (ps: its probe is HTTP; a hung process still completes TCP
    /// handshakes, so svg's TCP probe could not tell).
    Hung,
}

const STATES: [State; 5] = [
    State::Serving,
    State::Stopped,
    State::Failed,
    State::Masked,
    State::Hung,
];

/// The component a state is tried on.
fn subject(state: State) -> Component {
    match state {
        State::Hung => Component::Platform,
        _ => Component::Svg,
    }
}

const SVG_PROGRAM: &str = "/usr/local/scene7/ImageServing/bin/SvgServer";

/// Where a Tomcat is broken for the Failed state: a JRE that does not exist, so
/// `catalina.sh` exits 1 at once (a missing JAVA_HOME, as on a half-installed host).
const BROKEN_TOMCAT: &str = "/etc/systemd/system/imageserving-svg.service.d/80-broken.conf";

fn enter(m: &Machine, state: State, servers: Servers) {
    let unit = subject(state).unit();
    match state {
        State::Failed if servers == Servers::Tomcat => {
            m.sh(&format!(
                "printf '[Service]\\nEnvironment=JRE_HOME=/nonexistent\\n' >{BROKEN_TOMCAT} && systemctl daemon-reload && systemctl restart {unit}; true"
            ))
            .code(0);
            m.eventually(Duration::from_secs(90), "svg given up", || {
                m.prop(unit, "ActiveState") == "failed"
            });
        }
        // A JVM has its own use for SIGUSR1: a stopped process is hung for any server.
        State::Hung if servers == Servers::Tomcat => {
            m.sh(&format!("kill -STOP {}", m.main_pid(unit))).code(0);
        }
        State::Serving => {}
        State::Stopped => {
            m.sh(&format!("systemctl stop {unit}")).code(0);
        }
        State::Masked => {
            m.sh(&format!("systemctl stop {unit} && systemctl mask {unit}"))
                .code(0);
        }
        State::Failed => {
            m.sh(&format!(
                "cp {SVG_PROGRAM} /root/SvgServer && printf '#!/bin/sh\\nexit 1\\n' >{SVG_PROGRAM} && systemctl restart {unit}; true"
            ))
            .code(0);
            m.eventually(Duration::from_secs(60), "svg given up", || {
                m.prop(unit, "ActiveState") == "failed"
            });
        }
        State::Hung => {
            m.sh(&format!("kill -USR1 {}", m.main_pid(unit))).code(0);
        }
    }
}

/// Back to a serving stack, as an operator would.
fn leave(m: &Machine, state: State, servers: Servers) {
    let unit = subject(state).unit();
    match state {
        State::Failed if servers == Servers::Tomcat => {
            m.sh(&format!("rm {BROKEN_TOMCAT} && systemctl daemon-reload"))
                .code(0);
        }
        State::Masked => {
            m.sh(&format!("systemctl unmask {unit}")).code(0);
        }
        State::Failed => {
            m.sh(&format!("cp /root/SvgServer {SVG_PROGRAM}")).code(0);
        }
        _ => {}
    }
    m.sh_timeout("ImageServing start", Duration::from_secs(180))
        .code(0);
}

fn others(m: &Machine, state: State) -> Vec<(Component, u32)> {
    Component::ALL
        .iter()
        .filter(|c| **c != subject(state))
        .map(|c| (*c, m.main_pid(c.unit())))
        .collect()
}

/// A package upgrade from every state: it ends in seconds, restarts the supervisor only
/// (which comes up, once), keeps the other components' processes and leaves the subject as
/// the operator left it (a hung one is restarted, as it would have been anyway).
fn upgrade_from_every_state(layout: Layout) {
    upgrade_from_every_state_on(&installed(layout), layout, Servers::StandIns);
}

/// The same with ps and svg real Tomcat JVMs.
fn upgrade_from_every_state_with_tomcat(layout: Layout) {
    upgrade_from_every_state_on(&tomcat_box(layout), layout, Servers::Tomcat);
}

fn upgrade_from_every_state_on(m: &Machine, layout: Layout, servers: Servers) {
    m.sh_timeout("ImageServing start", Duration::from_secs(180))
        .code(0);
    let mut revision = 2;
    for state in STATES {
        enter(m, state, servers);
        let unit = subject(state).unit();
        let before = others(m, state);
        let subject_pid = m.main_pid(unit);
        let supervisor = m.main_pid(SUPERVISOR);
        let t = Instant::now();
        m.sh_timeout(
            &format!("dpkg -i {IN}/{revision}.deb"),
            Duration::from_secs(120),
        )
        .code(0);
        let took = t.elapsed();
        eprintln!("[{layout:?}, {servers:?}] upgrade with {unit} {state:?}: {took:?}");
        assert!(
            took < Duration::from_secs(30),
            "[{state:?}] the upgrade took {took:?}"
        );
        m.eventually(Duration::from_secs(30), "the supervisor active", || {
            m.prop(SUPERVISOR, "ActiveState") == "active"
        });
        let new_supervisor = m.main_pid(SUPERVISOR);
        assert_ne!(
            new_supervisor, supervisor,
            "[{state:?}] supervisor not restarted"
        );
        assert_eq!(
            m.prop(SUPERVISOR, "NRestarts"),
            "0",
            "[{state:?}] supervisor looped"
        );
        assert_eq!(
            others(m, state),
            before,
            "[{state:?}] another component restarted"
        );
        let status_text = m.prop(SUPERVISOR, "StatusText");
        match state {
            State::Serving => assert_eq!(m.main_pid(unit), subject_pid),
            State::Stopped | State::Masked => {
                assert_eq!(m.prop(unit, "ActiveState"), "inactive", "[{state:?}]");
                assert!(
                    status_text.contains("svg stopped"),
                    "[{state:?}] STATUS={status_text}"
                );
                let r = m.sh("ImageServing status").code(3);
                assert!(
                    !r.stdout.contains("not running") && r.stdout.contains("inactive"),
                    "[{state:?}] {}",
                    r.stdout
                );
            }
            State::Failed => {
                assert_eq!(m.prop(unit, "ActiveState"), "failed", "[{state:?}]");
                assert!(
                    status_text.contains("svg failed"),
                    "[{state:?}] STATUS={status_text}"
                );
            }
            State::Hung => {
                m.eventually(
                    Duration::from_secs(60),
                    "the hung ps restarted by the supervisor",
                    || {
                        let pid = m.main_pid(unit);
                        pid != subject_pid && pid != 0
                    },
                );
            }
        }
        leave(m, state, servers);
        revision = 3 - revision;
    }
}
on_every_image!(
    upgrade_from_every_state_ends_in_seconds,
    upgrade_from_every_state
);
in_layouts!(
    upgrade_from_every_state_with_real_tomcat,
    upgrade_from_every_state_with_tomcat,
    unified => Unified
);

/// The system bus restarted six times, 4 s apart (the start limit is 5 in 5 minutes): the
/// supervisor reconnects each time, never exits, and still restarts a hung component
/// afterwards (through polkit, which the bus restarted too).
fn bus_restarts(layout: Layout) {
    let m = installed(layout);
    m.sh("ImageServing start").code(0);
    let supervisor = m.main_pid(SUPERVISOR);
    for i in 0..6 {
        m.sh("systemctl restart dbus.service").code(0);
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(
            m.main_pid(SUPERVISOR),
            supervisor,
            "the supervisor was restarted by bus restart {i}"
        );
    }
    assert_eq!(m.prop(SUPERVISOR, "ActiveState"), "active");
    assert_eq!(m.prop(SUPERVISOR, "NRestarts"), "0");
    m.eventually(Duration::from_secs(30), "STATUS= settled", || {
        m.prop(SUPERVISOR, "StatusText") == "3/3 components serving"
    });
    let journal = m
        .sh("journalctl -u imageserving-supervisor --no-pager -o cat")
        .code(0)
        .stdout;
    assert!(
        journal.matches("reconnected to the bus").count() >= 6,
        "{journal}"
    );
    m.sh("ImageServing status").code(0);
    // Still watching: a hung Platform Server is restarted.
    let ps = m.main_pid(Component::Platform.unit());
    m.sh(&format!("kill -USR1 {ps}")).code(0);
    m.eventually(Duration::from_secs(60), "the hung ps restarted", || {
        let pid = m.main_pid(Component::Platform.unit());
        pid != ps && pid != 0
    });

    // An account without the right to read the journal: exit 4, what to do, one line.
    m.sh("useradd -m erin").code(0);
    m.sh_as("erin", "ImageServing logs -n 1")
        .code(4)
        .stderr_one_line()
        .stderr_has("systemd-journal");
}
in_both_layouts!(the_supervisor_survives_system_bus_restarts, bus_restarts);

/// Without polkit (its daemon stopped and masked), the supervisor cannot restart a hung
/// component: it says so where the operator looks. `STATUS=` and `ImageServing status` name
/// the refused restart, the journal has it at `err`, and the alert hook runs once.
fn without_polkit(layout: Layout) {
    let m = installed(layout);
    m.sh("ImageServing start").code(0);
    m.sh("systemctl mask --now polkit.service").code(0);
    let ps = m.main_pid(Component::Platform.unit());
    m.sh(&format!("kill -USR1 {ps}")).code(0);
    m.eventually(
        Duration::from_secs(90),
        "STATUS= says the restart was refused",
        || {
            m.prop(SUPERVISOR, "StatusText")
                .contains("ps given up (restart refused)")
        },
    );
    let status = m.sh("ImageServing status").stdout;
    assert!(
        status.contains("Supervisor says:") && status.contains("restart refused"),
        "{status}"
    );
    let err = m
        .sh("journalctl -u imageserving-supervisor -p err --no-pager -o cat")
        .stdout;
    assert!(
        err.contains("giving up on imageserving-platform.service for now: restart refused"),
        "{err}"
    );
    // polkit refuses the alert hook's start too: the alert is the supervisor's one `crit`
    // entry, naming polkit.
    m.eventually(Duration::from_secs(30), "one alert", || {
        let crit = m
            .sh("journalctl -u imageserving-supervisor -p crit --no-pager -o cat")
            .stdout;
        crit.lines().count() == 1 && crit.contains("is polkitd running?")
    });
    assert_eq!(
        m.main_pid(Component::Platform.unit()),
        ps,
        "ps was restarted without polkit"
    );
}
in_both_layouts!(
    without_polkit_a_refused_restart_is_reported_everywhere,
    without_polkit
);
