//! The metrics endpoint as shipped: the socket enabled by the operator, each scrape a
//! sandboxed instance, scraped by a real Prometheus server, and robust against bad clients.

use std::time::Duration;

use super::in_both_layouts;
use super::machine::{Layout, Machine};
use super::package::installed;
use crate::harness::{env_or, footprint};

const SOCKET: &str = "imageserving-metrics.socket";

/// Wait until no scrape instance is loaded (each unloads when its scrape ends).
#[track_caller]
fn no_instance_left(m: &Machine) {
    m.eventually(Duration::from_secs(20), "no scrape instance left", || {
        m.sh("systemctl list-units --all --no-legend 'imageserving-metrics@*'")
            .code(0)
            .stdout
            .trim()
            .is_empty()
    });
}

/// The journal's entries (JSON, one a line) that name a scrape instance: systemd's about it
/// and its own, after `cursor` or since boot. (Not `journalctl -u` with a pattern, which
/// fails where no entry names such a unit.)
#[track_caller]
fn instance_journal(m: &Machine, cursor: Option<&str>) -> String {
    let after = cursor.map_or(String::new(), |c| format!("--after-cursor='{c}'"));
    m.sh(&format!(
        "journalctl --sync && journalctl -q --no-pager -o json {after} >/tmp/journal.json && \
         {{ grep -F '\"imageserving-metrics@' /tmp/journal.json || true; }}"
    ))
    .code(0)
    .stdout
}

fn endpoint(layout: Layout) {
    let m = installed(layout);
    m.sh("ImageServing start").code(0);
    // Not enabled by the package: the operator opts in.
    assert_eq!(
        m.sh(&format!("systemctl is-enabled {SOCKET}"))
            .stdout
            .trim(),
        "disabled"
    );
    m.sh(&format!("systemctl enable --now {SOCKET}")).code(0);

    let scrape = m
        .sh("curl -sS -i --max-time 10 http://127.0.0.1:9917/metrics")
        .code(0)
        .stdout;
    assert!(scrape.starts_with("HTTP/1.0 200 OK"), "{scrape}");
    for c in ["ps", "is", "svg"] {
        assert!(
            scrape.contains(&format!(
                "imageserving_component_up{{component=\"{c}\"}} 1\n"
            )),
            "{c}: {scrape}"
        );
    }
    assert!(
        scrape.contains("imageserving_supervisor_up 1\n"),
        "{scrape}"
    );
    // A scrape that worked leaves nothing in the journal (systemd's started and deactivated
    // lines about the instance are dropped by its LogLevelMax=).
    no_instance_left(&m);
    assert_eq!(instance_journal(&m, None), "", "journal lines of a scrape");

    // Garbage, an oversized request and a slow client: answered or cut off, nothing hangs,
    // and the endpoint keeps serving.
    let raw = |send: &str| {
        m.bash(
            &format!("exec 3<>/dev/tcp/127.0.0.1/9917; {send} >&3; timeout 15 cat <&3"),
            Duration::from_secs(30),
        )
        .stdout
    };
    assert!(raw("printf '\\001\\002garbage\\r\\n\\r\\n'").starts_with("HTTP/1.0 400"));
    assert!(raw(
        "{ printf 'GET /metrics HTTP/1.1\\r\\n'; head -c 100000 /dev/zero | tr '\\0' a; }"
    )
    .starts_with("HTTP/1.0 431"));
    let slow = m.bash(
        "exec 3<>/dev/tcp/127.0.0.1/9917; \
         curl -sS -o /dev/null -w '%{http_code}\\n' --max-time 10 http://127.0.0.1:9917/metrics; \
         timeout 15 cat <&3",
        Duration::from_secs(30),
    );
    assert!(
        slow.stdout.starts_with("200\nHTTP/1.0 408"),
        "{}",
        slow.stdout
    );
    no_instance_left(&m);
    assert_eq!(m.prop(SOCKET, "ActiveState"), "active");

    // A real Prometheus server scrapes it every second; its HTTP API has the series.
    m.sh("printf 'global:\\n  scrape_interval: 1s\\nscrape_configs:\\n  - job_name: imageserving\\n    static_configs:\\n      - targets: [\"127.0.0.1:9917\"]\\n' >/tmp/prometheus.yml && \
          systemd-run --unit=test-prometheus --property=RuntimeMaxSec=300 \
          prometheus --config.file=/tmp/prometheus.yml --storage.tsdb.path=/tmp/prometheus-data \
          --web.listen-address=127.0.0.1:9090")
        .code(0);
    let query = |q: &str| -> serde_json::Value {
        let out = m
            .sh(&format!(
                "curl -sS --max-time 5 'http://127.0.0.1:9090/api/v1/query?query={q}'"
            ))
            .stdout;
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
    };
    m.eventually(
        Duration::from_secs(60),
        "Prometheus has every component up",
        || {
            let doc = query("imageserving_component_up");
            let results = doc["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            results.len() == 3 && results.iter().all(|r| r["value"][1] == "1")
        },
    );
    let sup = query("imageserving_supervisor_up");
    assert_eq!(sup["data"]["result"][0]["value"][1], "1", "{sup}");
    let up = query("up");
    assert_eq!(
        up["data"]["result"][0]["value"][1], "1",
        "the scrape itself failed: {up}"
    );
    m.sh("systemctl stop test-prometheus").code(0);
}
in_both_layouts!(prometheus_scrapes_the_socket_activated_endpoint, endpoint);

/// The endpoint widened as documented, and its limits: an allowed source gets its 200 and
/// another nothing (two network namespaces inside the box, each with a veth pair to it);
/// idle connections that an unprivileged account keeps open do not stop a scrape; an
/// instance killed mid-way leaves no failed unit.
fn endpoint_safety(layout: Layout) {
    let m = installed(layout);
    m.sh("ImageServing start").code(0);
    m.sh(&format!("systemctl enable --now {SOCKET}")).code(0);

    // Idle clients: an unprivileged account holds 8 connections that send nothing, and
    // opens them again when they are cut off.
    m.sh("useradd -m mallory && systemd-run --uid=mallory --unit=test-idlers \
          --property=RuntimeMaxSec=120 /bin/bash -c \
          'while true; do for i in 1 2 3 4 5 6 7 8; do (exec 3<>/dev/tcp/127.0.0.1/9917 && sleep 7) & done; wait; done'")
        .code(0);
    std::thread::sleep(Duration::from_secs(1));
    let scrapes = m.bash(
        "ok=0; for i in $(seq 10); do \
           c=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:9917/metrics); \
           [ \"$c\" = 200 ] && ok=$((ok+1)); sleep 0.5; done; echo $ok",
        Duration::from_secs(120),
    );
    assert_eq!(
        scrapes.stdout.trim(),
        "10",
        "scrapes that got 200 while idle clients held connections: {}",
        scrapes.stdout
    );
    m.sh("systemctl stop test-idlers").code(0);

    // An instance killed mid-way (a silent client keeps it waiting) leaves no failed unit.
    m.bash(
        "exec 3<>/dev/tcp/127.0.0.1/9917; sleep 1; \
         systemctl kill -s KILL 'imageserving-metrics@*.service'; sleep 1",
        Duration::from_secs(30),
    );
    let mut failed = String::new();
    for _ in 0..100 {
        failed = m
            .sh("systemctl list-units --failed --no-legend --plain")
            .stdout
            .trim()
            .to_owned();
        if failed.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(failed, "", "failed units after a scrape was killed");
    // ... and is in the journal: the quiet instances keep their failures.
    let journal = instance_journal(&m, None);
    assert!(
        journal.contains("status=9/KILL"),
        "no journal line about the killed scrape: {journal}"
    );

    // Widened as the socket unit's comment says: the access list on the socket acts.
    m.sh("set -e
          ip netns add allowed; ip netns add other
          ip link add v-allowed type veth peer name eth0 netns allowed
          ip link add v-other type veth peer name eth0 netns other
          ip addr add 192.0.2.1/30 dev v-allowed; ip link set v-allowed up
          ip addr add 198.51.100.1/30 dev v-other; ip link set v-other up
          ip -n allowed addr add 192.0.2.2/30 dev eth0; ip -n allowed link set eth0 up
          ip -n other addr add 198.51.100.2/30 dev eth0; ip -n other link set eth0 up
          mkdir -p /etc/systemd/system/imageserving-metrics.socket.d
          printf '[Socket]\\nListenStream=\\nListenStream=0.0.0.0:9917\\nIPAddressAllow=192.0.2.2\\n' \
              >/etc/systemd/system/imageserving-metrics.socket.d/50-wide.conf
          systemctl daemon-reload
          systemctl restart imageserving-metrics.socket")
        .code(0);
    let from = |ns: &str, addr: &str| {
        m.sh(&format!(
            "ip netns exec {ns} curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 http://{addr}:9917/metrics; true"
        ))
        .stdout
        .trim()
        .to_owned()
    };
    assert_eq!(from("allowed", "192.0.2.1"), "200", "the allowed source");
    assert_ne!(
        from("other", "198.51.100.1"),
        "200",
        "a source outside the list"
    );
    assert_eq!(
        m.sh("curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9917/metrics; true")
            .stdout
            .trim(),
        "200",
        "loopback stays allowed (the drop-in adds to the unit's list)"
    );
}
in_both_layouts!(
    the_endpoint_widens_safely_and_idle_clients_cannot_stop_a_scrape,
    endpoint_safety
);

/// The shipped alerting rules in a real Prometheus (their `for:` shortened to seconds; the
/// durations themselves are `promtool test rules`' part): a hung Platform Server makes
/// `ImageServingComponentDown` fire, and it resolves once the supervisor restarted it.
fn alert_fires_and_resolves(layout: Layout) {
    let m = installed(layout);
    m.sh("ImageServing start").code(0);
    m.sh(&format!("systemctl enable --now {SOCKET}")).code(0);
    m.sh("sed 's/for: [0-9]*m/for: 5s/' /usr/share/imageserving/prometheus/imageserving.rules.yml >/tmp/rules.yml && \
          printf 'global:\\n  scrape_interval: 5s\\n  scrape_timeout: 4s\\n  evaluation_interval: 1s\\nrule_files: [/tmp/rules.yml]\\nscrape_configs:\\n  - job_name: imageserving\\n    static_configs:\\n      - targets: [\"127.0.0.1:9917\"]\\n' >/tmp/prometheus.yml && \
          systemd-run --unit=test-prometheus --property=RuntimeMaxSec=300 \
          prometheus --config.file=/tmp/prometheus.yml --storage.tsdb.path=/tmp/prometheus-data \
          --web.listen-address=127.0.0.1:9090")
        .code(0);
    let alerts = || -> Vec<serde_json::Value> {
        let out = m
            .sh("curl -sS --max-time 5 http://127.0.0.1:9090/api/v1/alerts")
            .stdout;
        serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|d| d["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
    };
    let down_ps = |state: &str| {
        alerts().iter().any(|a| {
            a["labels"]["alertname"] == "ImageServingComponentDown"
                && a["labels"]["component"] == "ps"
                && a["state"] == state
        })
    };
    m.eventually(
        Duration::from_secs(60),
        "Prometheus scrapes the host",
        || {
            m.sh("curl -sS --max-time 5 'http://127.0.0.1:9090/api/v1/query?query=up'")
                .stdout
                .contains("\"1\"")
        },
    );
    assert!(
        alerts().is_empty(),
        "alerts on a serving stack: {:?}",
        alerts()
    );
    let ps = m.main_pid("imageserving-platform.service");
    m.sh(&format!("kill -USR1 {ps}")).code(0);
    m.eventually(
        Duration::from_secs(60),
        "ImageServingComponentDown firing for ps",
        || down_ps("firing"),
    );
    m.eventually(Duration::from_secs(90), "the alert resolved", || {
        !down_ps("firing") && !down_ps("pending")
    });
    assert_ne!(
        m.main_pid("imageserving-platform.service"),
        ps,
        "ps was not restarted"
    );
    m.sh("systemctl stop test-prometheus").code(0);
}
in_both_layouts!(
    a_real_prometheus_fires_and_resolves_the_shipped_alert,
    alert_fires_and_resolves
);

/// The journal's cursor now (its newest entry).
fn journal_cursor(m: &Machine) -> String {
    let out = m
        .sh("journalctl --sync && journalctl -q -n 0 --show-cursor")
        .code(0)
        .stdout;
    out.trim()
        .strip_prefix("-- cursor: ")
        .unwrap_or_else(|| panic!("no cursor in {out:?}"))
        .to_owned()
}

/// Scrape the endpoint `n` times from inside the box, by two clients at once (each one
/// scrape after another, as Prometheus does; two keep both CPUs busy); the HTTP codes
/// counted. In rounds of at most 1,000, each under its own timeout.
fn scrape(m: &Machine, n: u32) -> Vec<(String, u32)> {
    let mut codes: Vec<(String, u32)> = Vec::new();
    let mut left = n;
    while left > 0 {
        let round = left.min(1000);
        left -= round;
        let (a, b) = (round / 2, round - round / 2);
        let out = m
            .sh_timeout(
                &format!(
                    "client() {{ for i in $(seq $1); do \
                       curl -sS -o /dev/null -w '%{{http_code}}\\n' --max-time 10 http://127.0.0.1:9917/metrics 2>/dev/null; \
                     done; }}; \
                     client {a} >/tmp/codes.a & client {b} >/tmp/codes.b & wait; \
                     cat /tmp/codes.a /tmp/codes.b | sort | uniq -c"
                ),
                Duration::from_secs(600),
            )
            .code(0)
            .stdout;
        for l in out.lines() {
            let Some((count, code)) = l.trim().split_once(' ') else {
                continue;
            };
            let count: u32 = count.parse().unwrap_or(0);
            match codes.iter_mut().find(|(c, _)| c == code) {
                Some(entry) => entry.1 += count,
                None => codes.push((code.to_owned(), count)),
            }
        }
    }
    codes
}

/// The endpoint scraped 10,000 times (`IMAGESERVING_SOAK_SCRAPES`; two clients), what
/// Prometheus makes in 42 hours at 15 s, in the pure cgroup v2 layout, as shipped: every
/// scrape answered 200, the socket counted each and holds none, no instance is left loaded,
/// the box's systemd keeps its descriptors and its RSS within 1 MiB of where it was after
/// the warm-up, and no journal line is written about the instances. Run by
/// `scripts/bench.sh`.
#[test]
#[ignore = "benchmark: run scripts/bench.sh"]
fn endpoint_soak() {
    let n: u32 = env_or("IMAGESERVING_SOAK_SCRAPES", 10_000);
    let m = installed(Layout::Unified);
    m.sh("ImageServing start").code(0);
    m.sh(&format!("systemctl enable --now {SOCKET}")).code(0);
    // Warm-up: the first instances grow systemd's unit tables and the journal's files.
    let warm = scrape(&m, 200);
    assert_eq!(warm, [("200".to_owned(), 200)], "warm-up scrapes");
    no_instance_left(&m);
    let (rss0, fds0, _) = footprint(m.pid1());
    let accepted0: u64 = m.prop(SOCKET, "NAccepted").parse().unwrap_or(0);
    let cursor = journal_cursor(&m);
    let t = std::time::Instant::now();
    let codes = scrape(&m, n);
    let took = t.elapsed();
    no_instance_left(&m);
    let (rss1, fds1, _) = footprint(m.pid1());
    let accepted = m.prop(SOCKET, "NAccepted").parse::<u64>().unwrap_or(0) - accepted0;
    let connections = m.prop(SOCKET, "NConnections");
    let about_instances = instance_journal(&m, Some(&cursor));
    let box_lines = m
        .sh(&format!(
            "journalctl --sync && journalctl -q --no-pager -o cat --after-cursor='{cursor}' | wc -l"
        ))
        .code(0)
        .stdout
        .trim()
        .parse::<u64>()
        .unwrap_or(0);
    // The reference: 100 scrapes logged as systemd logs any unit (at its own level, info).
    m.sh(
        "mkdir -p /run/systemd/system/imageserving-metrics@.service.d && \
          printf '[Service]\\nLogLevelMax=info\\n' \
            >/run/systemd/system/imageserving-metrics@.service.d/90-loud.conf && \
          systemctl daemon-reload",
    )
    .code(0);
    let loud_cursor = journal_cursor(&m);
    let loud = scrape(&m, 100);
    assert_eq!(loud, [("200".to_owned(), 100)], "reference scrapes");
    no_instance_left(&m);
    let loud_text = instance_journal(&m, Some(&loud_cursor));
    let loud_lines = loud_text.lines().count();
    let ok = codes
        .iter()
        .find(|(c, _)| c == "200")
        .map_or(0, |(_, k)| *k);
    let growth = rss1.saturating_sub(rss0);
    println!(
        "metrics endpoint soak: {n} scrapes in {:.0} s ({:.1} ms each), answers {codes:?}; socket: {accepted} accepted, {connections} open at the end",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / f64::from(n)
    );
    println!(
        "  systemd (PID 1) RSS {rss0} -> {rss1} KiB (growth {growth} KiB, bound 1024: {}); fds {fds0} -> {fds1} ({}); journal lines about the instances: {} ({}; at systemd's level {:.1} a scrape); the whole box's journal: {box_lines} lines",
        if growth <= 1024 { "met" } else { "NOT MET" },
        if fds0 == fds1 { "constant" } else { "CHANGED" },
        about_instances.lines().count(),
        if about_instances.is_empty() { "none" } else { "SOME" },
        loud_lines as f64 / 100.0,
    );
    assert_eq!(ok, n, "scrapes answered 200: {codes:?}");
    assert_eq!(accepted, u64::from(n), "connections the socket accepted");
    assert_eq!(connections, "0");
    assert_eq!(about_instances, "", "journal lines about the instances");
    assert_eq!(fds0, fds1, "systemd's open descriptors");
    assert!(growth <= 1024, "systemd's RSS grew by {growth} KiB");
    assert_eq!(m.prop(SOCKET, "ActiveState"), "active");
    assert!(
        loud_lines >= 100,
        "the reference logged {loud_lines} lines for 100 scrapes: the check cannot see them"
    );
}
