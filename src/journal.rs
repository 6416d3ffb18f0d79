//! The journal, read through `journalctl` (`journalctl(1)`): the one program that knows its
//! files, their rotation and their access rules. This module is the only place that runs it.

use std::process::{Command, Stdio};

use crate::systemd::Scope;

/// The `journalctl` arguments that select `units` of `scope`'s manager: `--user` and
/// `--user-unit` for a user manager, `-u` for the system one.
pub fn unit_args(scope: Scope, units: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if scope == Scope::User {
        args.push("--user".to_owned());
    }
    for unit in units {
        args.push(
            if scope == Scope::User {
                "--user-unit"
            } else {
                "-u"
            }
            .to_owned(),
        );
        args.push((*unit).to_owned());
    }
    args
}

/// What to show of the journal.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// Which manager's units.
    pub scope: Scope,
    /// The units.
    pub units: &'a [&'a str],
    /// Keep printing new entries (`--follow`).
    pub follow: bool,
    /// The last N entries.
    pub lines: Option<u32>,
    /// Entries since this time, as journalctl reads it.
    pub since: Option<&'a str>,
    /// journalctl's output format (`--output`).
    pub output: Option<&'a str>,
}

/// Become `journalctl` showing `what`; returns only when it could not be run.
pub fn show(what: &Selection<'_>) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("journalctl");
    cmd.args(unit_args(what.scope, what.units));
    if what.follow {
        cmd.arg("--follow");
    }
    if let Some(n) = what.lines {
        cmd.args(["--lines", &n.to_string()]);
    }
    if let Some(t) = what.since {
        cmd.args(["--since", t]);
    }
    if let Some(f) = what.output {
        cmd.args(["--output", f]);
    }
    cmd.exec()
}

/// Whether this process may read the system journal: `Some(false)` when journal files exist
/// and the first one found cannot be opened (not root, not in `systemd-journal` or `adm`),
/// `None` when there is none to try (journalctl then says what it finds).
pub fn system_journal_readable() -> Option<bool> {
    for dir in ["/var/log/journal", "/run/log/journal"] {
        let Ok(machines) = std::fs::read_dir(dir) else {
            continue;
        };
        for machine in machines.flatten() {
            let file = machine.path().join("system.journal");
            if file.exists() {
                return Some(std::fs::File::open(&file).is_ok());
            }
        }
    }
    None
}

/// The command an operator runs to see more of `unit`'s journal.
pub fn hint(scope: Scope, unit: &str) -> String {
    match scope {
        Scope::System => format!("journalctl -u {unit}"),
        Scope::User => format!("journalctl --user-unit {unit}"),
    }
}

/// The last `n` lines the processes of `unit` wrote to the journal (short format, no
/// pager): what the program said, not systemd's messages about the unit (`-u` has both, and
/// after a give-up systemd's own lines fill the end). `None` when they cannot be read (no
/// journalctl, no permission, nothing there). Never blocks for long: `journalctl -n` reads
/// from the end and exits.
pub fn last_lines(scope: Scope, unit: &str, n: u32) -> Option<Vec<String>> {
    let matching = match scope {
        Scope::System => vec![format!("_SYSTEMD_UNIT={unit}")],
        Scope::User => vec!["--user".to_owned(), format!("_SYSTEMD_USER_UNIT={unit}")],
    };
    let out = Command::new("journalctl")
        .args(matching)
        .args(["-n", &n.to_string(), "--no-pager", "-q", "-o", "short-iso"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    (out.status.success() && !lines.is_empty()).then_some(lines)
}

/// The first line `unit`'s processes wrote to the journal since `since` that contains
/// `needle`; `None` when there is none, or the journal cannot be read. Reads at most the last
/// 200 entries.
pub fn find_since(
    scope: Scope,
    unit: &str,
    since: std::time::SystemTime,
    needle: &str,
) -> Option<String> {
    let secs = since.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let matching = match scope {
        Scope::System => vec![format!("_SYSTEMD_UNIT={unit}")],
        Scope::User => vec!["--user".to_owned(), format!("_SYSTEMD_USER_UNIT={unit}")],
    };
    let out = Command::new("journalctl")
        .args(matching)
        .args([
            "--since",
            &format!("@{secs}"),
            "-n",
            "200",
            "--no-pager",
            "-q",
            "-o",
            "cat",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains(needle))
        .map(|l| l.chars().take(300).collect())
}
