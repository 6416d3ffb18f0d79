//! `status`: numbers checked against procfs, rows, the supervisor-down message, exit codes.

use std::time::Duration;

use imageserving::component::Component;
use imageserving::systemd::{unit_path, PropertyInterface, PropertyRequest};
use serde_json::Value;

use crate::harness::{Options, Sandbox};

fn json(sb: &Sandbox, args: &[&str], code: i32) -> Value {
    let mut full = vec!["status", "--json"];
    full.extend_from_slice(args);
    let r = sb.run(&full).code(code);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
}

fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

fn statm_rss(pid: u64) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .expect("field")
        .parse()
        .expect("number");
    pages * procfs::page_size()
}

/// systemd's `MemoryCurrent` of a unit, or `None` where it has none ("[not set]": no memory
/// controller on the unit's cgroup, as in a booted box on these machines).
fn memory_current(sb: &Sandbox, unit: &str) -> Option<u64> {
    let path = unit_path(unit);
    sb.manager()
        .get_many(&[PropertyRequest {
            path: &path,
            interface: PropertyInterface::Service,
            name: "MemoryCurrent",
        }])
        .expect("MemoryCurrent")
        .pop()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v != u64::MAX)
}

#[test]
fn memory_of_a_64_mib_standin_matches_procfs() {
    let sb = Sandbox::with(Options::default().arg(Component::Image, "--hold-mib 64"));
    sb.run(&["start"]).code(0);
    let doc = json(&sb, &[], 0);
    let is = component(&doc, "is");
    let pid = is["pid"].as_u64().expect("pid");
    let reported = is["memory"]["rss_bytes"].as_u64().expect("rss");
    let procfs = statm_rss(pid);
    assert!(reported >= 64 << 20, "reported {reported}");
    assert!(
        reported.abs_diff(procfs) * 100 < procfs * 3,
        "reported {reported}, procfs {procfs}"
    );
    // The cgroup figure is systemd's MemoryCurrent (read from the same counter), and absent
    // where systemd has none.
    match memory_current(&sb, Component::Image.unit()) {
        Some(systemd) => {
            let cgroup = is["memory"]["cgroup_bytes"].as_u64().expect("cgroup");
            assert!(cgroup >= 64 << 20, "cgroup {cgroup}");
            assert!(
                cgroup.abs_diff(systemd) * 100 < systemd * 3,
                "cgroup_bytes {cgroup}, systemd's MemoryCurrent {systemd}"
            );
        }
        None => assert!(is["memory"]["cgroup_bytes"].is_null(), "{is}"),
    }
    assert!(is["memory"].get("pss_bytes").is_none(), "pss without --pss");
    let ps = component(&doc, "ps");
    assert!(ps["memory"]["rss_bytes"].as_u64().expect("rss") < 32 << 20);
}

#[test]
fn children_are_counted() {
    let sb = Sandbox::with(Options::default().arg(Component::Svg, "--children 3 --hold-mib 16"));
    sb.run(&["start"]).code(0);
    let doc = json(&sb, &["svg"], 0);
    let svg = component(&doc, "svg");
    assert_eq!(svg["processes"], 4, "{svg}");
    let main_rss = statm_rss(svg["pid"].as_u64().expect("pid"));
    assert!(
        svg["memory"]["rss_bytes"].as_u64().expect("rss") > main_rss,
        "children's memory not added: {svg}"
    );
    let pss = json(&sb, &["svg", "--pss"], 0);
    let svg_pss = component(&pss, "svg")["memory"]["pss_bytes"]
        .as_u64()
        .expect("pss with --pss");
    let svg_rss = component(&pss, "svg")["memory"]["rss_bytes"]
        .as_u64()
        .expect("rss");
    assert!(
        svg_pss > 16 << 20 && svg_pss <= svg_rss,
        "pss {svg_pss} rss {svg_rss}"
    );
}

#[test]
fn uptime_restarts_from_zero_for_the_restarted_component_only() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    // Bounds from the clock, not from sleeps: a loaded machine may take seconds per step.
    let up_since = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(2200));
    let restarting = std::time::Instant::now();
    sb.run(&["restart", "is"]).code(0);
    let doc = json(&sb, &[], 0);
    let since_restart = restarting.elapsed().as_secs_f64().ceil() as u64;
    let at_least = restarting.duration_since(up_since).as_secs();
    let up = |n: &str| {
        component(&doc, n)["uptime_seconds"]
            .as_u64()
            .expect("uptime")
    };
    assert!(
        up("is") <= since_restart,
        "is uptime {} although it restarted {since_restart} s ago",
        up("is")
    );
    assert!(up("ps") >= at_least && up("svg") >= at_least, "{doc}");
    // procfs and systemd agree.
    for n in ["ps", "is", "svg"] {
        let c = component(&doc, n);
        let a = c["uptime_seconds"].as_u64().expect("procfs");
        let b = c["systemd_uptime_seconds"].as_u64().expect("systemd");
        assert!(a.abs_diff(b) <= 1, "{n}: procfs {a} s, systemd {b} s");
    }
    assert!(
        doc["supervisor"]["uptime_seconds"]
            .as_u64()
            .expect("supervisor uptime")
            >= at_least
    );
}

#[test]
fn status_of_one_component_shows_only_its_row() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let r = sb.run(&["status", "svg"]).code(0);
    assert!(
        r.stdout.contains("imageserving-svg.service"),
        "{}",
        r.stdout
    );
    for other in [
        "imageserving-image.service",
        "imageserving-platform.service",
    ] {
        assert!(!r.stdout.contains(other), "{other} shown:\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains("Server Supervisor: active (running)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\x1b'), "colour when not on a terminal");
    let full = sb.run(&["status"]).code(0);
    assert_eq!(
        full.stdout
            .lines()
            .filter(|l| l.contains("imageserving-"))
            .count(),
        3,
        "{}",
        full.stdout
    );
}

#[test]
fn supervisor_down_gives_the_message_and_exit_3() {
    let sb = Sandbox::new();
    sb.run(&["status"])
        .code(3)
        .stdout_has("Server Supervisor is not running")
        .stdout_has("ImageServing --user start");
    let doc = json(&sb, &[], 3);
    assert_eq!(doc["supervisor"]["running"], false);
    assert_eq!(doc["supervisor"]["state"], "inactive");
    assert_eq!(doc["supervisor"]["unit"], "imageserving-supervisor.service");
    assert!(doc["message"]
        .as_str()
        .expect("message")
        .contains("not running"));
    // The document is whole: every component, each in its own state.
    let components = doc["components"].as_array().expect("components");
    assert_eq!(components.len(), 3, "{doc}");
    assert!(components.iter().all(|c| c["state"] == "inactive"), "{doc}");
    sb.run(&["start"]).code(0);
    sb.run(&["stop"]).code(0);
    sb.run(&["status", "is"]).code(3);
}

#[test]
fn json_carries_the_published_keys() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let r = sb.run(&["status", "--json"]).code(0);
    // Every object's keys are distinct (serde_json would silently keep the last duplicate).
    for line in r.stdout.lines().filter(|l| l.starts_with("    \"")) {
        let key = line.trim().split(':').next().expect("key");
        let supervisor_block = r.stdout.split("\"components\"").next().expect("block");
        assert!(
            supervisor_block.matches(&format!("\n    {key}:")).count() <= 1,
            "duplicate key {key}"
        );
    }
    let doc = json(&sb, &[], 0);
    assert_eq!(doc["supervisor"]["running"], true);
    assert!(doc["supervisor"]["pid"].as_u64().is_some());
    assert!(doc["supervisor"]["uptime_seconds"].as_u64().is_some());
    let names: Vec<&str> = doc["components"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["ps", "is", "svg"]);
    for c in doc["components"].as_array().expect("array") {
        for key in [
            "unit",
            "state",
            "sub_state",
            "pid",
            "uptime_seconds",
            "processes",
            "restarts",
        ] {
            assert!(
                c.get(key).is_some_and(|v| !v.is_null()),
                "{key} missing in {c}"
            );
        }
        assert_eq!(c["state"], "active");
        assert_eq!(c["sub_state"], "running");
        assert!(c["memory"]["rss_bytes"].as_u64().is_some());
        let unit = c["unit"].as_str().expect("unit");
        assert_eq!(
            c["memory"]["cgroup_bytes"].as_u64().is_some(),
            memory_current(&sb, unit).is_some(),
            "cgroup_bytes present exactly where systemd has MemoryCurrent: {c}"
        );
        assert_eq!(c["processes"], 1);
        assert_eq!(c["restarts"], 0);
    }
}

#[test]
fn a_stopped_component_makes_status_exit_3() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    sb.manager()
        .stop_unit(Component::Image.unit())
        .expect("stop is");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sb.state(Component::Image.unit()).active_state.is_down() {
        assert!(std::time::Instant::now() < deadline, "is did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let doc = json(&sb, &[], 3);
    assert_eq!(component(&doc, "is")["state"], "inactive");
    json(&sb, &["svg"], 0);
}

#[test]
fn status_errors_use_lsb_status_codes() {
    let sb = Sandbox::with(Options {
        no_units: true,
        ..Options::default()
    });
    sb.run(&["status"])
        .code(4)
        .stderr_one_line()
        .stderr_has("not installed");
    let doc = json(&sb, &[], 4);
    assert!(doc["error"]
        .as_str()
        .expect("error")
        .contains("not installed"));
    let addr = format!("unix:path={}/absent", sb.root.display());
    sb.run_env(&["status"], &[("DBUS_SESSION_BUS_ADDRESS", &addr)])
        .code(4)
        .stderr_has(&addr);
    sb.run(&["status", "tomcat"]).code(2);
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let on_tty = |extra: &[(&str, &str)]| sb.run_on_tty(&["status"], extra).code(0).stdout;
    let coloured = on_tty(&[]);
    assert!(
        coloured.contains("\x1b[32mactive (running)"),
        "{coloured:?}"
    );
    let plain = on_tty(&[("NO_COLOR", "1")]);
    assert!(
        plain.contains("active (running)") && !plain.contains("\x1b["),
        "{plain:?}"
    );
}

#[test]
fn processes_it_may_not_read_are_reported_unreadable() {
    // svg runs as another account; status runs as root without capabilities, so it may not
    // read that account's memory maps. RSS (statm) stays readable, PSS (smaps_rollup) not.
    // (Without PrivateUsers=: in a user namespace that root's manager owns, root may read
    // everything, capabilities or not.)
    let sb =
        Sandbox::with(Options::default().service(Component::Svg, "User=nobody\nPrivateUsers=no"));
    sb.run(&["start"]).code(0);
    let without_caps = |args: &[&str]| {
        let out = crate::harness::run_with_timeout(
            std::process::Command::new("setpriv")
                .args(["--bounding-set=-all", "--inh-caps=-all", "--"])
                .arg(crate::harness::IMAGESERVING)
                .arg("--user")
                .args(args)
                .env_clear()
                .envs(sb.env()),
            Duration::from_secs(30),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let table = without_caps(&["status", "--pss", "svg"]);
    assert!(table.contains("(1 unreadable)"), "{table}");
    let text = without_caps(&["status", "--pss", "--json", "svg"]);
    let doc: Value = serde_json::from_str(&text).expect("json");
    let svg = component(&doc, "svg");
    let pid = svg["pid"].as_u64().expect("pid");
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid = uid
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(svg["processes"], 1, "{svg}");
    assert_eq!(svg["unreadable_processes"], 1, "{svg} {uid}");
    assert!(
        svg["memory"]["rss_bytes"].as_u64().expect("rss") > 0,
        "{svg}"
    );
    // Absent, not 0: no process's PSS could be read.
    assert!(svg["memory"].get("pss_bytes").is_none(), "{svg}");
}

/// The signals systemd sends on the sandbox's bus from now on: (member, object path, first
/// string argument), gathered by a thread until the bus goes away.
struct Signals {
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl Signals {
    fn watch(bus: &str) -> Signals {
        let conn = zbus::blocking::connection::Builder::address(bus)
            .and_then(|b| b.build())
            .expect("connect to the sandbox's bus");
        conn.call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "Subscribe",
            &(),
        )
        .expect("Subscribe");
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .sender("org.freedesktop.systemd1")
            .expect("sender")
            .build();
        // The match is in place when this returns: nothing sent after it is missed.
        let messages = zbus::blocking::MessageIterator::for_match_rule(rule, &conn, Some(4096))
            .expect("match rule");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            let _conn = conn;
            for msg in messages.flatten() {
                let header = msg.header();
                let member = header.member().map(|m| m.to_string()).unwrap_or_default();
                let path = header.path().map(|p| p.to_string()).unwrap_or_default();
                let first = msg
                    .body()
                    .deserialize::<(String,)>()
                    .map(|(s,)| s)
                    .or_else(|_| {
                        msg.body()
                            .deserialize::<(String, zbus::zvariant::OwnedObjectPath)>()
                            .map(|(s, _)| s)
                    })
                    .unwrap_or_default();
                if let Ok(mut v) = sink.lock() {
                    v.push((member, path, first));
                }
            }
        });
        Signals { seen }
    }

    /// What arrived so far, after `settle` for stragglers.
    fn after(&self, settle: Duration) -> Vec<(String, String, String)> {
        std::thread::sleep(settle);
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Looking at a serving stack changes nothing in systemd: `status` in its views and
/// `metrics` (what each Prometheus scrape runs) load no unit and change no property, so the
/// supervisor and every watcher (`status --follow`, the console page) sleep through them.
/// Loading a component's socket only to look at it made systemd announce it, add and drop
/// the service's `TriggeredBy`, and remove it again: six wake-ups of the supervisor per
/// scrape.
#[test]
fn looking_at_a_serving_stack_wakes_no_one() {
    let sb = Sandbox::new();
    sb.run(&["start"]).code(0);
    let signals = Signals::watch(&sb.bus);
    for _ in 0..5 {
        sb.run(&["status"]).code(0);
        sb.run(&["status", "--json", "--probe"]).code(0);
        sb.run(&["status", "svg"]).code(0);
        sb.run(&["metrics"]).code(0);
    }
    let stack: Vec<String> = std::iter::once(imageserving::component::SUPERVISOR.to_owned())
        .chain(Component::ALL.iter().map(|c| c.unit().to_owned()))
        .chain(Component::ALL.iter().map(|c| c.socket().to_owned()))
        .collect();
    let paths: Vec<String> = stack.iter().map(|u| unit_path(u)).collect();
    let woke: Vec<_> = signals
        .after(Duration::from_secs(2))
        .into_iter()
        .filter(|(member, path, first)| {
            member == "UnitNew"
                || member == "UnitRemoved"
                || (member == "PropertiesChanged" && paths.contains(path))
                || stack.contains(first)
        })
        .collect();
    assert!(
        woke.is_empty(),
        "20 looks at the stack made systemd signal: {woke:#?}"
    );
    // The watcher does see what loading a unit makes systemd say.
    sb.manager()
        .list_units_by_names(&[Component::Platform.socket()])
        .expect("list the ps socket");
    let seen = signals.after(Duration::from_secs(2));
    assert!(
        seen.iter()
            .any(|(m, _, first)| m == "UnitNew" && first == Component::Platform.socket()),
        "loading {} was not seen: {seen:#?}",
        Component::Platform.socket()
    );
}
