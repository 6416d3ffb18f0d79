//! `ImageServing alert UNIT`: what `imageserving-alert@UNIT.service` runs when a unit of the
//! stack fails for good (`OnFailure=`, `systemd.unit(5)`: systemd gave up restarting it), or
//! when the supervisor could not restart a component that stopped serving.
//!
//! It gathers what an operator needs (the unit, the component, systemd's result, the
//! restart count, the last journal lines) and sends it as the operator set on the alert unit
//! (a drop-in): as e-mail to `IMAGESERVING_ALERT_MAIL_TO`, through `/usr/sbin/sendmail`, the
//! interface every MTA provides; and to the command in `IMAGESERVING_ALERT_COMMAND`, in its
//! environment and, as text, on its stdin. With neither, it writes one journal entry at
//! priority `crit`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::component::{Component, Member, SUPERVISOR};
use crate::error::Error;
use crate::journal;
use crate::systemd::{ActiveState, Manager, Scope};

/// The environment key of the operator's command, run with `sh -c`.
pub const KEY_COMMAND: &str = "IMAGESERVING_ALERT_COMMAND";
/// The environment key of the e-mail recipients (comma-separated addresses).
pub const KEY_MAIL_TO: &str = "IMAGESERVING_ALERT_MAIL_TO";
/// The MTA's submission interface.
const SENDMAIL: &str = "/usr/sbin/sendmail";
/// The longest value passed in the command's environment: a journal line may be 48 KiB, and
/// the kernel refuses to run a command with one string over 128 KiB (`MAX_ARG_STRLEN`).
pub const MAX_VALUE: usize = 32 * 1024;
/// How many journal lines go with an alert.
const JOURNAL_LINES: u32 = 20;

/// What one alert says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The unit that failed.
    pub unit: String,
    /// `ps`, `is`, `svg` or `supervisor`.
    pub component: String,
    /// systemd's `Result` of its last run (`exit-code`, `signal`, ...).
    pub result: String,
    /// Automatic restarts systemd made (`NRestarts`).
    pub restarts: u32,
    /// This host's name.
    pub host: String,
    /// One line.
    pub summary: String,
    /// The unit's last journal lines (empty when unreadable).
    pub journal: Vec<String>,
}

impl Alert {
    /// The environment the command gets, each value at most [`MAX_VALUE`] bytes (cut, with a
    /// line that says so; stdin carries the whole text).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IMAGESERVING_ALERT_UNIT", self.unit.clone()),
            ("IMAGESERVING_ALERT_COMPONENT", self.component.clone()),
            ("IMAGESERVING_ALERT_RESULT", self.result.clone()),
            ("IMAGESERVING_ALERT_RESTARTS", self.restarts.to_string()),
            ("IMAGESERVING_ALERT_HOST", self.host.clone()),
            ("IMAGESERVING_ALERT_SUMMARY", self.summary.clone()),
            ("IMAGESERVING_ALERT_JOURNAL", self.journal.join("\n")),
        ]
        .into_iter()
        .map(|(k, v)| (k, bounded(v, MAX_VALUE)))
        .collect()
    }

    /// What happened, in a few words, for a mail's subject.
    fn what(&self) -> &'static str {
        if self.summary.contains("systemd gave up") {
            "failed, systemd gave up"
        } else {
            "not serving, restart refused"
        }
    }

    /// The e-mail to `to`: headers (the subject names host, component and what happened),
    /// then the text. `None` when `to` could smuggle a header (a line break).
    pub fn mail(&self, to: &str) -> Option<String> {
        if to.contains(['\r', '\n']) {
            return None;
        }
        Some(format!(
            "To: {to}\nSubject: [Image Serving] {host}: {component} {what}\nAuto-Submitted: auto-generated\nContent-Type: text/plain; charset=utf-8\n\n{text}",
            host = self.host,
            component = self.component,
            what = self.what(),
            text = self.text()
        ))
    }

    /// The text on the command's stdin: the summary, then the journal lines (a mail body).
    pub fn text(&self) -> String {
        let mut text = format!("{}\n", self.summary);
        if !self.journal.is_empty() {
            text.push_str("\nLast journal lines:\n");
            for line in &self.journal {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// Gather the alert for `unit` and send it. Without a command, the alert is one journal
/// entry at priority `crit`; a sent alert is logged at `notice`; a command that cannot be run
/// or fails is [`Error::AlertNotSent`], which the caller logs at `crit`.
pub fn run(scope: Scope, unit: &str) -> Result<(), Error> {
    send(&gather(scope, unit)?)
}

fn gather(scope: Scope, unit: &str) -> Result<Alert, Error> {
    let name = Member::from_unit(unit).map(Member::label).ok_or_else(|| {
        Error::Usage(format!(
            "'{unit}' is not a unit of the stack: alerts are for {SUPERVISOR} and the components' units"
        ))
    })?;
    let mgr = Manager::connect(scope)?;
    let path = mgr.load_unit(unit)?;
    let state = mgr.service_state(path.as_str())?;
    let host = crate::procinfo::hostname();
    let title = Component::from_unit(unit).map_or("Server Supervisor", Component::title);
    let summary = if state.active_state == ActiveState::Failed {
        format!(
            "Image Serving on {host}: {title} ({name}, {unit}) failed and systemd gave up on it: {}",
            state.failure_reason()
        )
    } else {
        format!(
            "Image Serving on {host}: {title} ({name}, {unit}) does not serve and the Server Supervisor could not restart it; see '{}'",
            journal::hint(scope, SUPERVISOR)
        )
    };
    Ok(Alert {
        unit: unit.to_owned(),
        component: name.to_owned(),
        result: state.result.clone(),
        restarts: state.restarts,
        host,
        summary,
        journal: journal::last_lines(scope, unit, JOURNAL_LINES).unwrap_or_default(),
    })
}

fn send(alert: &Alert) -> Result<(), Error> {
    let set = |key| {
        std::env::var(key)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let (mail_to, command) = (set(KEY_MAIL_TO), set(KEY_COMMAND));
    if mail_to.is_none() && command.is_none() {
        // No channel: one entry at priority crit (the `<2>` prefix, sd-daemon(3)).
        crate::output::err(&format!("<2>{}\n", alert.summary));
        return Ok(());
    }
    let not_sent = |why: String| Error::AlertNotSent {
        summary: alert.summary.clone(),
        why,
    };
    if let Some(to) = mail_to {
        let message = alert
            .mail(&to)
            .ok_or_else(|| not_sent(format!("has a line break in {KEY_MAIL_TO}")))?;
        let mut sendmail = Command::new(SENDMAIL);
        // -odi: deliver before returning. The alert unit ends when this process does, and
        // systemd then stops what is left in its cgroup: a delivery forked to the
        // background (exim's default without a queue runner) would be killed.
        sendmail.args(["-t", "-oi", "-odi"]);
        pipe_to(&mut sendmail, &message, "sendmail").map_err(not_sent)?;
        crate::output::err(&format!("<5>alert mailed to {to}: {}\n", alert.summary));
    }
    if let Some(command) = command {
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", &command]).envs(alert.environment());
        pipe_to(&mut sh, &alert.text(), "command").map_err(not_sent)?;
        crate::output::err(&format!("<5>alert sent: {}\n", alert.summary));
    }
    Ok(())
}

/// Run `cmd` with `input` on its stdin; `Err` says what went wrong with the `what`.
fn pipe_to(cmd: &mut Command, input: &str, what: &str) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what} could not be run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(input.as_bytes());
    }
    match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{what} failed: {status}")),
        Err(e) => Err(format!("{what} could not be waited for: {e}")),
    }
}

/// `value` cut to at most `max` bytes on a character boundary, with a last line that says
/// how much was left out.
pub fn bounded(value: String, max: usize) -> String {
    if value.len() <= max {
        return value;
    }
    let note = format!(
        "\n[cut here: {} more bytes; the whole text is on stdin]",
        value.len()
    );
    let mut end = max.saturating_sub(note.len());
    while end > 0 && !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = value.get(..end).unwrap_or_default().to_owned();
    out.push_str(&note);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_gets_every_field_and_a_mail_body() {
        let a = Alert {
            unit: "imageserving-svg.service".into(),
            component: "svg".into(),
            result: "signal".into(),
            restarts: 5,
            host: "h1".into(),
            summary: "Image Serving on h1: SVG Server failed".into(),
            journal: vec!["line 1".into(), "line 2".into()],
        };
        let env = a.environment();
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("IMAGESERVING_ALERT_RESTARTS"), Some("5"));
        assert_eq!(get("IMAGESERVING_ALERT_COMPONENT"), Some("svg"));
        assert_eq!(get("IMAGESERVING_ALERT_JOURNAL"), Some("line 1\nline 2"));
        assert_eq!(
            a.text(),
            "Image Serving on h1: SVG Server failed\n\nLast journal lines:\nline 1\nline 2\n"
        );
        let mail = a.mail("ops@example.org").unwrap();
        assert!(mail.starts_with("To: ops@example.org\nSubject: [Image Serving] h1: svg not serving, restart refused\n"), "{mail}");
        assert!(mail.ends_with("line 2\n"), "{mail}");
        assert_eq!(a.mail("ops@example.org\nBcc: x@example.org"), None);
    }

    #[test]
    fn oversized_values_are_cut_and_say_so() {
        let journal = vec!["x".repeat(48 * 1024); 20];
        let a = Alert {
            unit: "u".into(),
            component: "svg".into(),
            result: "signal".into(),
            restarts: 5,
            host: "h1".into(),
            summary: "s".into(),
            journal,
        };
        for (_, v) in a.environment() {
            assert!(v.len() <= MAX_VALUE, "{}", v.len());
        }
        let j = bounded("é".repeat(40_000), 1000);
        assert!(
            j.len() <= 1000 && j.ends_with("the whole text is on stdin]"),
            "{j}"
        );
    }
}
