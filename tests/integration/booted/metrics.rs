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
