//! The stack with real servers: Debian's tomcat10 as the Platform Server and the SVG server
//! (`catalina.sh run`, a `CATALINA_BASE` each, through drop-ins, as an operator would point
//! the units at an install), the stand-in as the Image Server, the package as it ships.
//! JVMs behave unlike the stand-ins where it matters (exit 143 on SIGTERM, seconds to start,
//! hundreds of MiB), and these are the cases that went wrong with them: routine stops that
//! paged the on-call, a memory guard that took a component down for good, `start` that
//! called a server that never answered up, and requests failing during an upgrade.

use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};

use super::in_layouts;
use super::machine::{Layout, Machine, IN};
use super::package::installed;
use super::upgrade::Client;

const PS: &str = "imageserving-platform.service";
const SVG: &str = "imageserving-svg.service";
/// Each alert the hook sends is one line here.
const ALERTS: &str = "/var/lib/alert-test/alerts";

/// Build 1 installed, ps and svg real Tomcats, every alert counted.
pub fn tomcat_box(layout: Layout) -> Machine {
    let m = installed(layout);
    for (name, port, unit) in [("platform", 8080, PS), ("svg", 27346, SVG)] {
        m.sh(&format!(
            "set -e; base=/var/lib/imageserving-tomcat/{name}
             mkdir -p $base/conf $base/logs $base/temp $base/work $base/webapps/ROOT/is
             cp -r /etc/tomcat10/. $base/conf/
             sed -i -e 's/port=\"8005\"/port=\"-1\"/' -e 's/<Connector port=\"8080\"/<Connector port=\"{port}\"/' $base/conf/server.xml
             echo 'imageServer.ok=1' >$base/webapps/ROOT/is/image
             jre=$(dirname $(dirname $(readlink -f /usr/bin/java)))
             mkdir -p /etc/systemd/system/{unit}.d
             printf '%s\\n' '[Service]' 'ExecStart=' 'ExecStart=/usr/share/tomcat10/bin/catalina.sh run' \
                 'Environment=CATALINA_HOME=/usr/share/tomcat10 CATALINA_BASE='$base' CATALINA_TMPDIR='$base'/temp JRE_HOME='$jre \
                 'ReadWritePaths='$base >/etc/systemd/system/{unit}.d/60-tomcat.conf"
        ))
        .code(0);
    }
    m.sh(&format!(
        "set -e; mkdir -p /etc/systemd/system/imageserving-alert@.service.d
         install -d -o imageserving-alert /var/lib/alert-test
         printf '%s\\n' '[Service]' 'Environment=\"IMAGESERVING_ALERT_COMMAND=echo $IMAGESERVING_ALERT_UNIT >>{ALERTS}\"' \
             'ReadWritePaths=/var/lib/alert-test' >/etc/systemd/system/imageserving-alert@.service.d/50-count.conf
         systemctl daemon-reload"
    ))
    .code(0);
    m
}

fn alerts(m: &Machine) -> Vec<String> {
    m.sh(&format!("cat {ALERTS} 2>/dev/null; true"))
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn none_failed(m: &Machine, after: &str) {
    for c in Component::ALL {
        assert_ne!(
            m.prop(c.unit(), "ActiveState"),
            "failed",
            "after {after}: {} is failed ({})",
            c,
            m.prop(c.unit(), "Result")
        );
    }
}

/// Routine work on real JVMs raises no alert and leaves no unit failed; an upgrade under a
/// 20 ms client fails no request; the memory guard backs off without spending the start
/// limit and says once that the limit is too low; a Tomcat whose port is taken makes
/// `restart ps` fail naming it within its grace and probe failures; a give-up with the mail
/// relay down still reaches the command, and the alert unit shows the failure.
fn real_tomcat(layout: Layout) {
    let m = tomcat_box(layout);
    let t = Instant::now();
    m.sh_timeout("ImageServing start", Duration::from_secs(180))
        .code(0);
    let started_in = t.elapsed();
    // They are JVMs: hundreds of MiB each.
    let rss: u64 = m
        .sh(&format!("ps -o rss= -p {} | tr -d ' '", m.main_pid(SVG)))
        .code(0)
        .stdout
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(rss > 100 * 1024, "svg's JVM holds only {rss} KiB");

    // 1. Routine stops and restarts: exit 0, nothing failed, no alert.
    for cmd in [
        "ImageServing stop svg",
        "ImageServing start",
        "ImageServing restart svg",
        "ImageServing restart ps",
        "ImageServing restart",
    ] {
        m.sh_timeout(cmd, Duration::from_secs(180)).code(0);
        none_failed(&m, cmd);
    }

    // 2. A package upgrade under a client asking every 20 ms: no request fails.
    let client = Client::start(&m);
    std::thread::sleep(Duration::from_secs(1));
    m.sh_timeout(&format!("dpkg -i {IN}/2.deb"), Duration::from_secs(180))
        .code(0);
    std::thread::sleep(Duration::from_secs(1));
    for r in client.finish() {
        assert!(
            r["failures"] == 0 && r["requests"].as_u64().unwrap_or(0) > 100,
            "requests failed during the upgrade: {r}"
        );
    }
    none_failed(&m, "the upgrade");

    m.sh_timeout("ImageServing stop", Duration::from_secs(180))
        .code(0);
    none_failed(&m, "ImageServing stop");
    assert!(m.stack_pids().is_empty(), "{:?}", m.stack_pids());
    // They stopped as JVMs do: status 143, which their units call a success.
    for unit in [PS, SVG] {
        assert_eq!(
            (
                m.prop(unit, "ExecMainStatus").as_str(),
                m.prop(unit, "Result").as_str()
            ),
            ("143", "success"),
            "{unit}'s stop did not end as a JVM's does"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts(&m), Vec::<String>::new(), "alerts for routine work");

    // 3. The memory guard, on svg without a probe: a JVM always above 64 MiB.
    m.sh(
        "mkdir -p /etc/systemd/system/imageserving-svg.service.d && \
         printf '%s\\n' '[Service]' 'Environment=IMAGESERVING_PROBE= IMAGESERVING_MEMORY_RESTART=64M IMAGESERVING_PROBE_START_GRACE_SEC=5 IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_INTERVAL_SEC=1' \
             >/etc/systemd/system/imageserving-svg.service.d/70-memory.conf && systemctl daemon-reload",
    )
    .code(0);
    m.sh_timeout("ImageServing start", Duration::from_secs(180))
        .code(0);
    let mut pids = vec![m.main_pid(SVG)];
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(80) {
        let state = m.prop(SVG, "ActiveState");
        assert_ne!(
            state,
            "failed",
            "the memory guard took svg down: {}",
            m.prop(SVG, "Result")
        );
        let pid = m.main_pid(SVG);
        if pid != 0 && pids.last() != Some(&pid) {
            pids.push(pid);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let restarts = pids.len() - 1;
    let said = || {
        m.sh("journalctl -u imageserving-supervisor.service -u 'imageserving-alert@*' -o short-monotonic --no-pager | grep -E 'memory|restarting|alert' | tail -30")
            .stdout
    };
    assert!(
        (2..=3).contains(&restarts),
        "{restarts} memory restarts in 80 s (back-off 10 s, 20 s; start limit 5 in 120 s):\n{}",
        said()
    );
    if restarts == 3 {
        let until = Instant::now() + Duration::from_secs(30);
        while alerts(&m).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(alerts(&m), vec![SVG.to_owned()], "{}", said());
        let status = m.prop(SUPERVISOR, "StatusText");
        assert!(status.contains("svg is above its memory limit"), "{status}");
    }
    assert_eq!(m.prop(SUPERVISOR, "NRestarts"), "0");
    m.sh("rm /etc/systemd/system/imageserving-svg.service.d/70-memory.conf && systemctl daemon-reload")
        .code(0);

    // 4. ps's port taken by a listener that never answers: Tomcat cannot bind it, logs it,
    // and runs on without serving. `restart ps` fails naming it, after its grace and probe
    // failures (10 + 2 × (2 + 2) = 18 s), not the ten minutes of the start timeout.
    m.sh(
        "printf '%s\\n' 'import socket, time' 's = socket.socket()' \
             's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)' \
             's.bind((\"127.0.0.1\", 8080)); s.listen(64)' 'time.sleep(600)' >/root/hold.py && \
         mkdir -p /etc/systemd/system/imageserving-platform.service.d && \
         printf '%s\\n' '[Service]' 'Environment=IMAGESERVING_PROBE_START_GRACE_SEC=10 IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_INTERVAL_SEC=2 IMAGESERVING_PROBE_TIMEOUT_SEC=2' \
             >/etc/systemd/system/imageserving-platform.service.d/70-grace.conf && \
         systemctl daemon-reload && systemctl stop imageserving-platform.service && \
         systemd-run --unit=hold-8080 python3 /root/hold.py && sleep 1",
    )
    .code(0);
    let t = Instant::now();
    let r = m
        .sh_timeout("ImageServing restart ps", Duration::from_secs(120))
        .code(1);
    let took = t.elapsed();
    assert!(
        r.stderr.contains("ps on http://127.0.0.1:8080/is/image")
            && r.stderr.contains("is active but not serving after 18s"),
        "{}",
        r.stderr
    );
    assert!(took < Duration::from_secs(45), "restart ps took {took:?}");
    let log = m.sh("journalctl -u imageserving-platform.service --no-pager -o cat | grep -c 'Address already in use'; true");
    assert!(
        log.stdout.trim().parse::<u32>().unwrap_or(0) > 0,
        "Tomcat did not fail to bind: {}",
        log.stdout
    );
    // 5. A give-up with both channels set and no mail relay (nothing on port 1): the mail's
    // failure is logged at crit, the command still runs, the alert unit ends failed.
    let before = alerts(&m).len();
    m.sh(
        "rm /etc/systemd/system/imageserving-platform.service.d/70-grace.conf && systemctl stop hold-8080 && \
         printf '%s\\n' '[Service]' 'Environment=IMAGESERVING_ALERT_MAIL_TO=ops@localhost IMAGESERVING_ALERT_SMTP=127.0.0.1:1' \
             >/etc/systemd/system/imageserving-alert@.service.d/51-mail.conf && \
         printf '[Service]\\nEnvironment=JRE_HOME=/nonexistent\\n' >/etc/systemd/system/imageserving-svg.service.d/80-broken.conf && \
         systemctl daemon-reload && systemctl restart imageserving-svg.service; true",
    )
    .code(0);
    let alert_unit = "imageserving-alert@imageserving-svg.service.service";
    m.eventually(
        Duration::from_secs(90),
        "the give-up's alert unit failed",
        || m.prop(alert_unit, "ActiveState") == "failed",
    );
    assert_eq!(alerts(&m).len(), before + 1, "the command did not run once");
    let said = m
        .sh(&format!(
            "journalctl -u {alert_unit} -p crit -o cat --no-pager"
        ))
        .stdout;
    assert!(
        said.contains("alert NOT mailed to ops@localhost through 127.0.0.1:1"),
        "{said}"
    );
    eprintln!(
        "[{}] real Tomcat: started in {started_in:?}; svg RSS {} MiB; memory restarts {restarts}; restart ps failed after {took:?}",
        m.name,
        rss / 1024
    );
}
in_layouts!(the_stack_with_real_tomcat_jvms, real_tomcat, unified => Unified);
