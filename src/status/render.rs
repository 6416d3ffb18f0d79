//! Human output of `status`: a table with humane units, coloured only on a terminal and fitted
//! to its width (see [`crate::table`]: the unit name goes first, then the component's title,
//! the cgroup memory and the process count; the state is cut last; numbers never).

use std::fmt::Write;

use super::{StackStatus, UnitStatus};
use crate::table::{bytes, duration, Column, Fit};
use crate::terminal;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours (a terminal, and no `NO_COLOR`).
    pub color: bool,
    /// The terminal's width to fit, when stdout is one (and `--full` was not asked for).
    pub width: Option<usize>,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty (no-color.org); its
    /// width unless `full`.
    pub fn detect(full: bool) -> Style {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: std::io::stdout().is_terminal() && !no_color,
            width: if full { None } else { terminal::stdout_width() },
        }
    }
}

/// Lines of `text`, each broken at spaces to fit `width` when there is one.
fn fitted(out: &mut String, text: &str, width: Option<usize>) {
    match width {
        Some(w) => {
            for line in terminal::wrap(text, w) {
                let _ = writeln!(out, "{line}");
            }
        }
        None => {
            let _ = writeln!(out, "{text}");
        }
    }
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
    if let Some(limit) = u.memory.limit_bytes {
        let _ = write!(s, " / {}", bytes(limit));
    }
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
        fitted(
            &mut out,
            s.message
                .as_deref()
                .unwrap_or("The Server Supervisor is not running."),
            style.width,
        );
        return out;
    }
    let pss = s.pss;
    let mem_label = if pss { "PSS" } else { "RSS" };
    // Painted after fitting: escape sequences take no columns.
    let sup_line = format!(
        "Server Supervisor: {} pid {} up {} {} {}",
        state_text(sup),
        opt(sup.pid),
        sup.uptime_seconds.map_or_else(|| "-".to_owned(), duration),
        mem_label.to_ascii_lowercase(),
        memory_cell(sup, pss),
    );
    let mut sup_text = String::new();
    fitted(&mut sup_text, &sup_line, style.width);
    out.push_str(&sup_text.replacen(
        &state_text(sup),
        &paint(style, state_color(sup), &state_text(sup)),
        1,
    ));
    // What the supervisor says, when it has something to say: a component it does not
    // serve, why (stopped, failed, a restart refused by polkit).
    if sup.status_text.contains(';') {
        fitted(
            &mut out,
            &format!("Supervisor says: {}", sup.status_text),
            style.width,
        );
    }
    let mut header = vec![
        Column {
            header: "NAME",
            fit: Fit::Keep,
        },
        Column {
            header: "COMPONENT",
            fit: Fit::Drop(2),
        },
        Column {
            header: "UNIT",
            fit: Fit::Drop(1),
        },
        Column {
            header: "STATE",
            fit: Fit::Cut(18),
        },
        Column {
            header: "PID",
            fit: Fit::Keep,
        },
        Column {
            header: "UPTIME",
            fit: Fit::Keep,
        },
        Column {
            header: mem_label,
            fit: Fit::Keep,
        },
        Column {
            header: "CGROUP MEM",
            fit: Fit::Drop(3),
        },
        Column {
            header: "PROCS",
            fit: Fit::Drop(4),
        },
        Column {
            header: "RESTARTS",
            fit: Fit::Keep,
        },
    ];
    // A PROBE column only when probes were asked for; a SOCKET column only when a component
    // uses one.
    let probes = s.components.iter().any(|u| u.probe.is_some());
    if probes {
        header.push(Column {
            header: "PROBE",
            fit: Fit::Cut(12),
        });
    }
    let sockets = s.components.iter().any(|u| u.socket.is_some());
    if sockets {
        header.push(Column {
            header: "SOCKET",
            fit: Fit::Cut(16),
        });
    }
    let rows: Vec<Vec<String>> = s
        .components
        .iter()
        .map(|u| {
            let mut row = vec![
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
            ];
            if probes {
                row.push(u.probe.as_ref().map_or_else(
                    || "-".to_owned(),
                    |p| match &p.error {
                        None => format!("ok {:.0} ms", p.seconds * 1000.0),
                        Some(e) => format!("failed: {e}"),
                    },
                ));
            }
            if sockets {
                row.push(u.socket.as_ref().map_or_else(
                    || "-".to_owned(),
                    |k| {
                        if k.listen.is_empty() {
                            k.state.to_owned()
                        } else {
                            format!("{} {}", k.state, k.listen.join(" "))
                        }
                    },
                ));
            }
            row
        })
        .collect();
    let table = crate::table::render(&header, &rows, style.width, |row, col, cell| {
        match (col, s.components.get(row)) {
            (3, Some(u)) => paint(style, state_color(u), &cell),
            _ => cell,
        }
    });
    out.push_str(&table.text);
    let cgroup_shown = table.shown.get(7).copied().unwrap_or(false);
    let legend = if cgroup_shown {
        format!("{mem_label}: summed over every process of the unit; CGROUP MEM: systemd's MemoryCurrent (includes page cache).")
    } else {
        format!("{mem_label}: summed over every process of the unit.")
    };
    fitted(&mut out, &legend, style.width);
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
