//! `ImageServing alert UNIT`: what `imageserving-alert@UNIT.service` runs when a unit of the
//! stack fails for good (`OnFailure=`, `systemd.unit(5)`: systemd gave up restarting it), or
//! when the supervisor could not restart a component that stopped serving.
//!
//! It gathers what an operator needs (the unit, the component, systemd's result, the
//! restart count, the last journal lines) and hands it to the command the operator set in
//! `IMAGESERVING_ALERT_COMMAND` (a drop-in on the alert unit): in its environment and, as
//! text, on its stdin. Without a command it writes one journal entry at priority `crit`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::component::{Component, Member, SUPERVISOR};
use crate::error::Error;
use crate::journal;
use crate::systemd::{ActiveState, Manager, Scope};

/// The environment key of the operator's command, run with `sh -c`.
pub const KEY_COMMAND: &str = "IMAGESERVING_ALERT_COMMAND";
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
    /// The environment the command gets.
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
    let command = std::env::var(KEY_COMMAND)
        .ok()
        .filter(|c| !c.trim().is_empty());
    let Some(command) = command else {
        // No command: one entry at priority crit (the `<2>` prefix, sd-daemon(3)).
        crate::output::err(&format!("<2>{}\n", alert.summary));
        return Ok(());
    };
    let not_sent = |why: String| Error::AlertNotSent {
        summary: alert.summary.clone(),
        why,
    };
    let child = Command::new("/bin/sh")
        .args(["-c", &command])
        .envs(alert.environment())
        .stdin(Stdio::piped())
        .spawn();
    let mut child = child.map_err(|e| not_sent(format!("could not be run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(alert.text().as_bytes());
    }
    match child.wait() {
        Ok(status) if status.success() => {
            crate::output::err(&format!("<5>alert sent: {}\n", alert.summary));
            Ok(())
        }
        Ok(status) => Err(not_sent(format!("failed: {status}"))),
        Err(e) => Err(not_sent(format!("could not be waited for: {e}"))),
    }
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
    }
}
