//! The metrics endpoint as shipped: the socket enabled by the operator, each scrape a
//! sandboxed instance, scraped by a real Prometheus server, and robust against bad clients.

use std::time::Duration;

use super::in_both_layouts;
use super::machine::Layout;
use super::package::installed;

const SOCKET: &str = "imageserving-metrics.socket";

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
    m.eventually(Duration::from_secs(20), "no scrape instance left", || {
        m.sh("systemctl list-units --no-legend --state=active,activating 'imageserving-metrics@*'")
            .stdout
            .trim()
            .is_empty()
    });
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
