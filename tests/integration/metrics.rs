//! `ImageServing metrics`: the Prometheus text format, checked by a real client (`promtool`),
//! and the one-request HTTP mode the socket-activated endpoint runs.

use std::time::{Duration, Instant};

use imageserving::component::Component;

use crate::harness::{eventually, signal, Sandbox};

/// The value of the one sample named `series` (with its labels, as printed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_pass_promtool_and_carry_every_series() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let text = sb.run(&["metrics"]).code(0).stdout;
    // promtool, from Debian's prometheus package: a parser and linter no one here wrote.
    let check = sb.run_shell("$IS metrics | promtool check metrics").code(0);
    assert_eq!(check.stdout.trim(), "", "promtool: {}", check.stdout);
    assert_eq!(
        value(&text, "imageserving_supervisor_up"),
        Some(1.0),
        "{text}"
    );
    for c in ["ps", "is", "svg"] {
        let l = |name: &str| format!("{name}{{component=\"{c}\"}}");
        assert_eq!(
            value(&text, &l("imageserving_component_up")),
            Some(1.0),
            "{c}: {text}"
        );
        assert_eq!(
            value(
                &text,
                &format!("imageserving_component_state{{component=\"{c}\",state=\"active\"}}")
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                &format!("imageserving_component_state{{component=\"{c}\",state=\"failed\"}}")
            ),
            Some(0.0)
        );
        assert!(
            value(&text, &l("imageserving_component_resident_memory_bytes")).unwrap_or(0.0) > 0.0
        );
        assert!(
            value(
                &text,
                &l("imageserving_component_proportional_memory_bytes")
            )
            .unwrap_or(0.0)
                > 0.0
        );
        assert_eq!(
            value(&text, &l("imageserving_component_processes")),
            Some(1.0)
        );
        assert_eq!(
            value(&text, &l("imageserving_component_restarts_total")),
            Some(0.0)
        );
        let started =
            value(&text, &l("imageserving_component_start_time_seconds")).expect("start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(
            (now - started).abs() < 120.0,
            "{c}: started {started}, now {now}"
        );
        assert!(value(&text, &l("imageserving_component_probe_duration_seconds")).is_some());
    }
    // A hung component is down in the next scrape (its probe fails), though its unit runs.
    signal(sb.main_pid(Component::Platform), "USR1");
    eventually(Duration::from_secs(10), "ps down in the metrics", || {
        value(
            &sb.run(&["metrics"]).code(0).stdout,
            "imageserving_component_up{component=\"ps\"}",
        ) == Some(0.0)
    });
    // With the stack stopped every series is still there, at 0.
    sb.run(&["stop"]).code(0);
    let text = sb.run(&["metrics"]).code(0).stdout;
    assert_eq!(value(&text, "imageserving_supervisor_up"), Some(0.0));
    assert_eq!(
        value(&text, "imageserving_component_up{component=\"is\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "imageserving_component_state{component=\"is\",state=\"inactive\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn the_http_mode_answers_one_request_and_refuses_the_rest() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let ask = |request: &str| {
        sb.run_shell(&format!("printf '{request}' | $IS metrics --http"))
            .code(0)
            .stdout
    };
    let ok = ask("GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n");
    assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4"),
        "{ok}"
    );
    assert!(
        ok.contains("\r\n\r\n# HELP imageserving_supervisor_up"),
        "{ok}"
    );
    assert!(ask("GET / HTTP/1.1\\r\\n\\r\\n").starts_with("HTTP/1.0 404"));
    assert!(ask("POST /metrics HTTP/1.1\\r\\n\\r\\n").starts_with("HTTP/1.0 405"));
    assert!(ask("\\x00\\x01garbage\\r\\n\\r\\n").starts_with("HTTP/1.0 400"));
    let big = sb
        .run_shell("{ printf 'GET /metrics HTTP/1.1\\r\\n'; head -c 100000 /dev/zero | tr '\\0' a; } | $IS metrics --http")
        .code(0)
        .stdout;
    assert!(big.starts_with("HTTP/1.0 431"), "{big}");
    // A client that sends nothing is cut off at the read deadline (5 s).
    let t = Instant::now();
    let slow = sb
        .run_shell("$IS metrics --http < <(sleep 30 2>/dev/null)")
        .code(0)
        .stdout;
    assert!(slow.starts_with("HTTP/1.0 408"), "{slow}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

/// The alerting rules the packages ship: `promtool check rules` and `promtool test rules`
/// (their unit tests: each alert fires after its `for:` and stays silent otherwise), and every
/// series they use is one `ImageServing metrics` prints.
#[test]
fn the_shipped_alert_rules_pass_promtool_and_use_real_series() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/prometheus");
    for args in [
        &["check", "rules", "imageserving.rules.yml"][..],
        &["test", "rules", "imageserving.rules.test.yml"],
    ] {
        let out = crate::harness::run_with_timeout(
            std::process::Command::new("promtool")
                .args(args)
                .current_dir(dir),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sb = Sandbox::with(
        crate::harness::Options::default()
            .service(Component::Svg, "Environment=IMAGESERVING_MEMORY_RESTART=1G"),
    );
    sb.run(&["start"]).code(0);
    let text = sb.run(&["metrics"]).code(0).stdout;
    let rules = std::fs::read_to_string(format!("{dir}/imageserving.rules.yml")).expect("rules");
    let used: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("imageserving_"))
        .collect();
    assert!(used.len() >= 6, "{used:?}");
    for series in used {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{series}{{"))
                    || l.starts_with(&format!("{series} "))),
            "the rules use {series}, which 'ImageServing metrics' does not print"
        );
    }
}
