//! Human output of `status`: a table with humane units, coloured only on a terminal.

use std::fmt::Write;

use super::{StackStatus, UnitStatus};

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours (a terminal, and no `NO_COLOR`).
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty (no-color.org).
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: std::io::stdout().is_terminal() && !no_color,
        }
    }
}

/// `2h 13m`, `45s`, `3d 4h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `612.4 MiB`, `3.1 GiB`, `812.0 KiB`, `0 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all we print
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or_default())
}

fn paint(style: Style, code: &str, text: &str) -> String {
    if style.color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn state_text(u: &UnitStatus) -> String {
    let text = state_only(u);
    match u.load_state.as_str() {
        "not-found" => format!("{text}, unit file missing"),
        "masked" => format!("{text}, masked"),
        _ => text,
    }
}

fn state_only(u: &UnitStatus) -> String {
    if u.given_up {
        format!(
            "failed ({}), gave up after {} restarts",
            u.result, u.restarts
        )
    } else if u.state == "failed" {
        format!("failed ({})", u.result)
    } else {
        format!("{} ({})", u.state, u.sub_state)
    }
}

fn state_color(u: &UnitStatus) -> &'static str {
    match u.state {
        "active" => "32",
        "failed" => "31",
        _ => "33",
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn memory_cell(u: &UnitStatus, pss: bool) -> String {
    // PSS is absent when no process of the unit could be read: "-", not 0.
    let v = if pss {
        u.memory.pss_bytes
    } else {
        Some(u.memory.rss_bytes)
    };
    let mut s = v.map_or_else(|| "-".to_owned(), bytes);
    if u.unreadable_processes > 0 {
        let _ = write!(s, " ({} unreadable)", u.unreadable_processes);
    }
    s
}

/// The table (or the informational message) as printed without `--json`.
pub fn human(s: &StackStatus, style: Style) -> String {
    let mut out = String::new();
    let sup = &s.supervisor.detail;
    if !s.supervisor.running {
        let _ = writeln!(
            out,
            "{}",
            s.message
                .as_deref()
                .unwrap_or("The Server Supervisor is not running.")
        );
        return out;
    }
    let pss = s.pss;
    let mem_label = if pss { "PSS" } else { "RSS" };
    let _ = writeln!(
        out,
        "Server Supervisor: {} pid {} up {} {} {}",
        paint(style, state_color(sup), &state_text(sup)),
        opt(sup.pid),
        sup.uptime_seconds.map_or_else(|| "-".to_owned(), duration),
        mem_label.to_ascii_lowercase(),
        memory_cell(sup, pss),
    );
    let header = [
        "NAME",
        "COMPONENT",
        "UNIT",
        "STATE",
        "PID",
        "UPTIME",
        mem_label,
        "CGROUP MEM",
        "PROCS",
        "RESTARTS",
    ];
    let rows: Vec<[String; 10]> = s
        .components
        .iter()
        .map(|u| {
            [
                u.name.to_owned(),
                u.title.to_owned(),
                u.unit.to_owned(),
                state_text(u),
                opt(u.pid),
                u.uptime_seconds.map_or_else(|| "-".to_owned(), duration),
                memory_cell(u, pss),
                u.memory.cgroup_bytes.map_or_else(|| "-".to_owned(), bytes),
                u.processes.to_string(),
                u.restarts.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String], colors: Option<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let padded = format!("{cell:<w$}");
            let padded = if i == 3 {
                colors.map_or(padded.clone(), |c| paint(style, c, &padded))
            } else {
                padded
            };
            l.push_str(&padded);
            if i + 1 < cells.len() {
                l.push_str("  ");
            }
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&header.map(str::to_owned), None));
    for (row, u) in rows.iter().zip(&s.components) {
        let _ = writeln!(out, "{}", line(row, Some(state_color(u))));
    }
    let _ = writeln!(
        out,
        "{mem_label}: summed over every process of the unit; CGROUP MEM: systemd's MemoryCurrent (includes page cache)."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humane_durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(2 * 3600 + 13 * 60 + 5), "2h 13m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600), "3d 4h");
    }

    #[test]
    fn humane_sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(642_150_000), "612.4 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 + 100 * 1024 * 1024), "3.1 GiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }
}
