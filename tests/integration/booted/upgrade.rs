//! Package upgrades while the stack serves: only the supervisor restarts, no request fails.

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};

use super::machine::{Layout, Machine, IN};
use super::package::{all_in, machine};
use super::{in_both_layouts, on_every_image};
use crate::harness::STANDIN;

#[derive(Clone, Copy)]
enum Kind {
    Deb,
    Rpm,
}

impl Kind {
    fn install(self, revision: u32) -> String {
        match self {
            Kind::Deb => format!("dpkg -i {IN}/{revision}.deb"),
            // Debian's rpm has no database of Debian's packages: --nodeps. --oldpackage lets
            // the tests go back to build 1.
            Kind::Rpm => format!("rpm -U --nodeps --oldpackage {IN}/{revision}.rpm"),
        }
    }

    fn installed_version(self, m: &Machine) -> String {
        let q = match self {
            Kind::Deb => "dpkg-query -W -f '${Version}' imageserving",
            Kind::Rpm => "rpm -q --qf '%{VERSION}-%{RELEASE}' imageserving",
        };
        m.sh(q).code(0).stdout.trim().to_owned()
    }

    fn remove(self) -> &'static str {
        match self {
            Kind::Deb => "dpkg -r imageserving",
            Kind::Rpm => "rpm -e --nodeps imageserving",
        }
    }
}

/// A client in the box's network that probes all three components every 20 ms.
pub struct Client(Child, usize);

impl Client {
    pub fn start(m: &Machine) -> Client {
        Client::asking(
            m,
            &[
                "http://127.0.0.1:8080/is/image",
                "tcp://127.0.0.1:27345",
                "tcp://127.0.0.1:27346",
            ],
            1000,
        )
    }

    /// A client asking each of `targets` every 20 ms, waiting up to `timeout_ms` for each
    /// answer.
    pub fn asking(m: &Machine, targets: &[&str], timeout_ms: u64) -> Client {
        let timeout = timeout_ms.to_string();
        let mut args: Vec<&str> = Vec::new();
        for t in targets {
            args.extend(["--client", t]);
        }
        args.extend(["--every-ms", "20", "--timeout-ms", &timeout]);
        Client(m.spawn_in_network(STANDIN, &args), targets.len())
    }

    /// Stop it and return its report, one JSON object per component.
    pub fn finish(mut self) -> Vec<serde_json::Value> {
        drop(self.0.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.0.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the probing client did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(mut s) = self.0.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        let report: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(report.len(), self.1, "client report: {out}");
        report
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn upgrade_without_outage(layout: Layout, kind: Kind) {
    let m = machine(layout);
    m.sh(&kind.install(1)).code(0);
    assert_eq!(
        m.sh("systemctl is-enabled imageserving.target")
            .stdout
            .trim(),
        "enabled"
    );
    m.sh("ImageServing start").code(0);
    let components: Vec<u32> = Component::ALL
        .iter()
        .map(|c| m.main_pid(c.unit()))
        .collect();
    let supervisor = m.main_pid(SUPERVISOR);
    // As if build 1 had shipped another unit for the Image Server: the upgrade changes it
    // under the running component, and must say so.
    m.sh("sed -i 's/^TimeoutStopSec=60$/TimeoutStopSec=61/' /usr/lib/systemd/system/imageserving-image.service && systemctl daemon-reload")
        .code(0);

    // The metrics endpoint, enabled and active, stays so through the upgrade.
    m.sh("systemctl enable --now imageserving-metrics.socket")
        .code(0);

    let client = Client::start(&m);
    std::thread::sleep(Duration::from_secs(1));
    let upgrade = m.sh(&kind.install(2)).code(0);
    std::thread::sleep(Duration::from_secs(1));
    let report = client.finish();
    let name = match kind {
        Kind::Deb => "deb",
        Kind::Rpm => "rpm",
    };
    eprintln!("[{layout:?} {name}] requests during the upgrade: {report:?}");

    assert_eq!(
        kind.installed_version(&m),
        concat!(env!("CARGO_PKG_VERSION"), "-2")
    );
    for target in &report {
        assert_eq!(
            target["failures"], 0,
            "requests failed during the upgrade: {target}"
        );
        assert!(
            target["requests"].as_u64().unwrap_or(0) >= 50,
            "too few requests: {target}"
        );
    }
    assert_eq!(
        m.prop("imageserving-metrics.socket", "ActiveState"),
        "active",
        "the upgrade left the enabled metrics endpoint inactive"
    );
    assert_eq!(
        m.sh("curl -sS -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:9917/metrics")
            .stdout
            .trim(),
        "200"
    );
    let new_supervisor = m.main_pid(SUPERVISOR);
    assert!(
        new_supervisor != supervisor && new_supervisor != 0,
        "the supervisor was not restarted ({supervisor} -> {new_supervisor})"
    );
    assert_eq!(m.prop(SUPERVISOR, "ActiveState"), "active");
    let after: Vec<u32> = Component::ALL
        .iter()
        .map(|c| m.main_pid(c.unit()))
        .collect();
    assert_eq!(
        components, after,
        "a component was restarted by the upgrade"
    );
    let notices: Vec<&str> = upgrade
        .stdout
        .lines()
        .chain(upgrade.stderr.lines())
        .filter(|l| l.starts_with("imageserving:"))
        .collect();
    assert_eq!(notices.len(), 1, "{}\n{}", upgrade.stdout, upgrade.stderr);
    assert!(notices[0].contains("( is )"), "{}", notices[0]);

    // A stopped stack stays stopped on upgrade.
    m.sh("ImageServing stop").code(0);
    let back = m.sh(&kind.install(1)).code(0);
    assert!(!back.stdout.contains("imageserving:"), "{}", back.stdout);
    assert_eq!(
        kind.installed_version(&m),
        concat!(env!("CARGO_PKG_VERSION"), "-1")
    );
    all_in(&m, "inactive");
    assert_eq!(m.stack_pids(), Vec::<u32>::new());

    // Removal stops everything.
    m.sh("ImageServing start").code(0);
    assert!(m.stack_pids().len() >= 4);
    m.sh(kind.remove()).code(0);
    assert_eq!(
        m.stack_pids(),
        Vec::<u32>::new(),
        "processes left after removal"
    );
    for unit in imageserving::component::stack_units() {
        assert_eq!(m.prop(unit, "ActiveState"), "inactive", "{unit}");
    }
}

fn deb(layout: Layout) {
    upgrade_without_outage(layout, Kind::Deb);
}
on_every_image!(deb_upgrade_restarts_only_the_supervisor, deb);

fn rpm(layout: Layout) {
    upgrade_without_outage(layout, Kind::Rpm);
}
in_both_layouts!(rpm_upgrade_restarts_only_the_supervisor, rpm);
