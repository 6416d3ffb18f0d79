//! The fleet's results for the operator: a table, a last line, an exit code.

use super::answer::HostResult;
use super::Action;
use crate::error::exit;

/// The exit code of the whole: 0 when every host succeeded, else the highest per-host code
/// (LSB codes grow with severity: 1 failure, 3 not running, 4 unknown or denied, 5 missing).
pub fn exit_code(results: &[HostResult]) -> i32 {
    results
        .iter()
        .map(|r| r.exit_code)
        .max()
        .unwrap_or(exit::OK)
}

/// The last line: "2 of 3 hosts running; h3: unreachable (...)".
pub fn summary(results: &[HostResult], action: &Action, not_restarted: &[String]) -> String {
    let ok = results.iter().filter(|r| r.ok).count();
    let verb = match action {
        Action::Status(_) => "running",
        Action::Start(_) => "started",
        Action::Stop(_) => "stopped",
        Action::Restart(_) => "restarted",
        Action::Logs(_) => "answered",
    };
    let mut line = format!(
        "{ok} of {} hosts {verb}",
        results.len() + not_restarted.len()
    );
    let problems: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| match &r.error {
            Some(e) if r.exit_code == 3 || r.exit_code == 0 => {
                format!("{}: exit {} ({e})", r.host, r.exit_code)
            }
            Some(e) => format!("{}: {e}", r.host),
            None => format!("{}: exit {}", r.host, r.exit_code),
        })
        .collect();
    if !problems.is_empty() {
        line.push_str("; ");
        line.push_str(&problems.join(", "));
    }
    if !not_restarted.is_empty() {
        line.push_str(&format!(
            "; stopped after the failed batch, not restarted: {}",
            not_restarted.join(", ")
        ));
    }
    line
}

/// Text answers (logs) grouped as `dshbak -c` and `clush -b` group them: hosts that answered
/// the same text share one block headed by their names, in the order the hosts were given;
/// a host that failed has a block of its own with its error, so a partial failure never
/// hides the others.
pub fn grouped(results: &[HostResult]) -> String {
    const RULE: &str = "----------------";
    let mut groups: Vec<(Vec<&str>, String)> = Vec::new();
    for r in results {
        let text = if r.ok {
            let mut t = r.said.clone();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t
        } else {
            format!("(failed: {})\n", r.error.as_deref().unwrap_or("no answer"))
        };
        match groups.iter_mut().find(|(_, t)| *t == text) {
            Some((hosts, _)) => hosts.push(&r.host),
            None => groups.push((vec![&r.host], text)),
        }
    }
    let mut out = String::new();
    for (hosts, text) in groups {
        let count = if hosts.len() > 1 {
            format!(" ({})", hosts.len())
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{RULE}\n{}{count}\n{RULE}\n{text}",
            hosts.join(",")
        ));
    }
    out
}

/// The table: one row per component of each host (status), or per host (actions), in the
/// order the hosts were given; fitted to `width` when given (the restart count goes first,
/// then the PID; the state or error is cut last).
pub fn table(results: &[HostResult], action: &Action, width: Option<usize>) -> String {
    use crate::table::{Column, Fit};
    let keep = |header| Column {
        header,
        fit: Fit::Keep,
    };
    let columns = [
        keep("HOST"),
        keep("NAME"),
        Column {
            header: "STATE",
            fit: Fit::Cut(24),
        },
        Column {
            header: "PID",
            fit: Fit::Drop(2),
        },
        keep("UPTIME"),
        keep("RSS"),
        Column {
            header: "RESTARTS",
            fit: Fit::Drop(1),
        },
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in results {
        let components = r
            .status
            .as_ref()
            .and_then(|s| s.get("components")?.as_array().cloned())
            .unwrap_or_default();
        if !action.is_status() || components.is_empty() {
            let what = if r.ok {
                r.said.clone()
            } else {
                r.error.clone().unwrap_or_default()
            };
            rows.push(vec![r.host.clone(), "-".into(), what]);
            continue;
        }
        for c in components {
            let text = |k: &str| c.pointer(k).and_then(serde_json::Value::as_str);
            let number = |k: &str| c.pointer(k).and_then(serde_json::Value::as_u64);
            let n = |k: &str| number(k).map_or("-".to_owned(), |v| v.to_string());
            rows.push(vec![
                r.host.clone(),
                text("/name").unwrap_or("?").to_owned(),
                format!(
                    "{} ({})",
                    text("/state").unwrap_or("?"),
                    text("/sub_state").unwrap_or("?")
                ),
                n("/pid"),
                number("/uptime_seconds").map_or("-".into(), crate::table::duration),
                number("/memory/rss_bytes").map_or("-".into(), crate::table::bytes),
                n("/restarts"),
            ]);
        }
    }
    crate::table::render(&columns, &rows, width, |_, _, cell| cell).text
}
