//! `ImageServing alert UNIT`: what `imageserving-alert@UNIT.service` runs when a unit of the
//! stack fails for good (`OnFailure=`, `systemd.unit(5)`: systemd gave up restarting it), or
//! when the supervisor could not restart a component that stopped serving.
//!
//! An alert means "systemd gave up": a unit that failed without giving up (a routine stop
//! whose process ended with a status the unit does not call a success) is logged at
//! `notice` and sends nothing ([`crate::systemd::gave_up`] is the one definition).
//!
//! It gathers what an operator needs (the unit, the component, systemd's result, the
//! restart count, the last journal lines) and sends it as the operator set on the alert unit
//! (a drop-in): as e-mail to `IMAGESERVING_ALERT_MAIL_TO`, submitted over SMTP to the relay
//! in `IMAGESERVING_ALERT_SMTP` (the local MTA by default), and to the command in
//! `IMAGESERVING_ALERT_COMMAND`, in its environment and, as text, on its stdin. The two
//! channels are independent: each runs whatever the other did, each failure is logged at
//! `crit` with why, and the command exits 1 when one failed (the alert unit then shows
//! failed). When the service manager cannot be asked, a short alert (host, unit, time,
//! "details unavailable") still goes out. With no channel, it writes one journal entry at
//! priority `crit`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, SinglePart};
use lettre::{SmtpTransport, Transport};

use crate::component::{Component, Member, SUPERVISOR};
use crate::error::Error;
use crate::journal;
use crate::systemd::{ActiveState, Manager, Scope};

/// The environment key of the operator's command, run with `sh -c`.
pub const KEY_COMMAND: &str = "IMAGESERVING_ALERT_COMMAND";
/// The environment key of the e-mail recipients (comma-separated addresses).
pub const KEY_MAIL_TO: &str = "IMAGESERVING_ALERT_MAIL_TO";
/// The environment key of the mail's sender (default `imageserving-alert@HOST`).
pub const KEY_MAIL_FROM: &str = "IMAGESERVING_ALERT_MAIL_FROM";
/// The environment key of the SMTP relay: `HOST[:PORT]` (STARTTLS required unless the host
/// is this machine), an `smtp://` or `smtps://` URL (lettre's form, with `?tls=` and
/// credentials), or `sendmail` for `/usr/sbin/sendmail` (which needs the sandbox opened:
/// see the unit).
pub const KEY_SMTP: &str = "IMAGESERVING_ALERT_SMTP";
/// Where mail goes when [`KEY_SMTP`] is not set: the local MTA (Debian's exim listens here).
pub const DEFAULT_SMTP: &str = "localhost:25";
/// The MTA's submission program, for `IMAGESERVING_ALERT_SMTP=sendmail`.
const SENDMAIL: &str = "/usr/sbin/sendmail";
/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
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
        } else if self.summary.contains("details unavailable") {
            "failed"
        } else {
            "needs attention"
        }
    }

    /// The mail's subject: host, component and what happened.
    pub fn subject(&self) -> String {
        format!(
            "[Image Serving] {host}: {component} {what}",
            host = self.host,
            component = self.component,
            what = self.what()
        )
    }

    /// The e-mail from `from` to `to` (comma-separated addresses), as MIME: UTF-8 text,
    /// quoted-printable or base64 as its lines need (none over 998 bytes, RFC 5322, whatever
    /// the journal holds), `Date`, `Message-ID` and `Auto-Submitted`. `Err` names the
    /// address that is not one (a line break in it included).
    pub fn mail(&self, from: &str, to: &str) -> Result<Message, String> {
        let mailbox = |key: &str, a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("'{a}' in {key} is not an e-mail address ({e})"))
        };
        let mut builder = Message::builder()
            .from(mailbox(KEY_MAIL_FROM, from)?)
            .subject(self.subject())
            .message_id(None)
            .header(AutoSubmitted);
        let mut any = false;
        for a in to.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            builder = builder.to(mailbox(KEY_MAIL_TO, a)?);
            any = true;
        }
        if !any {
            return Err(format!("{KEY_MAIL_TO} names no address"));
        }
        builder
            .singlepart(SinglePart::plain(self.text()))
            .map_err(|e| format!("the mail cannot be built: {e}"))
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

/// Gather the alert for `unit` and send it. Without a channel, the alert is one journal
/// entry at priority `crit`; a sent alert is logged at `notice`; a channel that fails is
/// logged at `crit`, the other still runs, and the result is [`Error::AlertNotSent`].
pub fn run(scope: Scope, unit: &str) -> Result<(), Error> {
    let name = Member::from_unit(unit).map(Member::label).ok_or_else(|| {
        Error::Usage(format!(
            "'{unit}' is not a unit of the stack: alerts are for {SUPERVISOR} and the components' units"
        ))
    })?;
    let alert = match gather(scope, unit, name) {
        Ok(Some(alert)) => alert,
        Ok(None) => return Ok(()),
        // The manager could not be asked: what is known still goes out.
        Err(e) => short(unit, name, &e),
    };
    send(&alert)
}

/// The alert, from what the service manager says of `unit`; `None` (logged at `notice`)
/// when there is nothing to page for: it failed without systemd giving up on it, or it is up
/// again and the supervisor reports nothing wrong with it.
fn gather(scope: Scope, unit: &str, name: &str) -> Result<Option<Alert>, Error> {
    let mgr = Manager::connect(scope)?;
    let path = mgr.load_unit(unit)?;
    let state = mgr.service_state(path.as_str())?;
    let host = crate::procinfo::hostname();
    let title = Component::from_unit(unit).map_or("Server Supervisor", Component::title);
    // Not failed: the supervisor's alert (its `STATUS=` says what it cannot fix), or a
    // failure `OnFailure=` reported that is over (a restart job took the unit up again).
    let says = mgr
        .load_unit(SUPERVISOR)
        .and_then(|p| mgr.service_state(p.as_str()))
        .map(|s| s.status_text)
        .unwrap_or_default();
    if state.active_state != ActiveState::Failed && !crate::supervisor::needs_attention(&says, name)
    {
        crate::output::err(&format!(
            "<5>{unit} is {} and the Server Supervisor reports nothing wrong with it (a failure that is over): no alert\n",
            state.summary()
        ));
        return Ok(None);
    }
    let summary = if state.active_state == ActiveState::Failed {
        if !state.gave_up() {
            crate::output::err(&format!(
                "<5>{unit} failed ({}) but systemd did not give up on it (a stop that ended with a status the unit does not call a success): no alert\n",
                state.failure_reason()
            ));
            return Ok(None);
        }
        format!(
            "Image Serving on {host}: {title} ({name}, {unit}) failed and systemd gave up on it: {}",
            state.failure_reason()
        )
    } else {
        // Started by the supervisor: a restart it could not make, or a memory limit that no
        // restart relieves. Its STATUS= says which.
        format!(
            "Image Serving on {host}: {title} ({name}, {unit}) needs attention the Server Supervisor cannot give it (it says: {says}); see '{}'",
            journal::hint(scope, SUPERVISOR)
        )
    };
    Ok(Some(Alert {
        unit: unit.to_owned(),
        component: name.to_owned(),
        result: state.result.clone(),
        restarts: state.restarts,
        host,
        summary,
        journal: journal::last_lines(scope, unit, JOURNAL_LINES).unwrap_or_default(),
    }))
}

/// The alert that still goes out when the manager cannot be asked: host, unit, time, what
/// systemd passed to the hook (`MONITOR_SERVICE_RESULT`, `MONITOR_EXIT_STATUS`,
/// `systemd.unit(5)` `OnFailure=`), and why the details are missing.
fn short(unit: &str, name: &str, why: &Error) -> Alert {
    let host = crate::procinfo::hostname();
    let monitor = |key| std::env::var(key).ok().filter(|v: &String| !v.is_empty());
    let result = monitor("MONITOR_SERVICE_RESULT").unwrap_or_else(|| "unknown".to_owned());
    let exit = monitor("MONITOR_EXIT_STATUS")
        .map(|s| format!(", exit status {s}"))
        .unwrap_or_default();
    let time = httpdate::fmt_http_date(std::time::SystemTime::now());
    Alert {
        unit: unit.to_owned(),
        component: name.to_owned(),
        result: result.clone(),
        restarts: 0,
        summary: format!(
            "Image Serving on {host}: {unit} failed at {time} (result {result}{exit}); details unavailable: {why}"
        ),
        host,
        journal: Vec::new(),
    }
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
    let mut failed = Vec::new();
    if let Some(to) = mail_to {
        let from = set(KEY_MAIL_FROM).unwrap_or_else(|| default_sender(&alert.host));
        let relay = set(KEY_SMTP).unwrap_or_else(|| DEFAULT_SMTP.to_owned());
        match mail(alert, &from, &to, &relay) {
            Ok(()) => crate::output::err(&format!(
                "<5>alert mailed to {to} through {relay}: {}\n",
                alert.summary
            )),
            Err(why) => {
                crate::output::err(&format!(
                    "<2>alert NOT mailed to {to} through {relay}: {why}\n"
                ));
                failed.push(format!("mail to {to}: {why}"));
            }
        }
    }
    if let Some(command) = command {
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", &command]).envs(alert.environment());
        match pipe_to(&mut sh, &alert.text(), "the command") {
            Ok(()) => crate::output::err(&format!("<5>alert sent: {}\n", alert.summary)),
            Err(why) => {
                crate::output::err(&format!("<2>alert NOT sent to {KEY_COMMAND}: {why}\n"));
                failed.push(why);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::AlertNotSent {
            summary: alert.summary.clone(),
            why: failed.join("; "),
        })
    }
}

/// `imageserving-alert@HOST`, or `@localhost` where the host name is not a mail domain.
fn default_sender(host: &str) -> String {
    let domain = if !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        host
    } else {
        "localhost"
    };
    format!("imageserving-alert@{domain}")
}

/// Submit the alert's mail to `relay` ([`KEY_SMTP`]).
fn mail(alert: &Alert, from: &str, to: &str, relay: &str) -> Result<(), String> {
    let message = alert.mail(from, to)?;
    if relay == "sendmail" {
        let mut sendmail = Command::new(SENDMAIL);
        // -odi: deliver before returning. The alert unit ends when this process does, and
        // systemd then stops what is left in its cgroup: a delivery forked to the
        // background would be killed.
        sendmail.args(["-t", "-oi", "-odi"]);
        let text = String::from_utf8_lossy(&message.formatted()).into_owned();
        return pipe_to(&mut sendmail, &text, "sendmail");
    }
    smtp_transport(relay)?
        .send(&message)
        .map(|_| ())
        .map_err(|e| format!("the SMTP relay did not take it: {e}"))
}

/// The SMTP transport for [`KEY_SMTP`]: a URL as lettre reads it, or `HOST[:PORT]` (port
/// 25), in clear to this machine's own MTA and with STARTTLS required to any other host.
fn smtp_transport(relay: &str) -> Result<SmtpTransport, String> {
    let bad =
        |e: lettre::transport::smtp::Error| format!("{KEY_SMTP}='{relay}' cannot be used: {e}");
    let builder = if relay.contains("://") {
        SmtpTransport::from_url(relay).map_err(bad)?
    } else {
        let (host, port) = match relay.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("{KEY_SMTP}='{relay}': the port is not a number from 1 to 65535")
                })?,
            ),
            _ => (relay, 25),
        };
        if host.is_empty() {
            return Err(format!("{KEY_SMTP}='{relay}' names no host"));
        }
        let local = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if local {
            SmtpTransport::builder_dangerous(host).port(port)
        } else {
            SmtpTransport::starttls_relay(host).map_err(bad)?.port(port)
        }
    };
    Ok(builder.timeout(Some(SMTP_TIMEOUT)).build())
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies to the alert's sender.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
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
        assert_eq!(a.subject(), "[Image Serving] h1: svg needs attention");
        let mail = String::from_utf8(
            a.mail("alert@h1", "ops@example.org, oncall@example.org")
                .unwrap()
                .formatted(),
        )
        .unwrap();
        for header in [
            "From: alert@h1\r\n",
            "To: ops@example.org, oncall@example.org\r\n",
            "Subject: [Image Serving] h1: svg needs attention\r\n",
            "Auto-Submitted: auto-generated\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "\r\nDate: ",
            "\r\nMessage-ID: <",
        ] {
            assert!(mail.contains(header), "{header:?} missing:\n{mail}");
        }
        assert!(mail.contains("line 2"), "{mail}");
        // An address with a line break cannot smuggle a header.
        let e = a
            .mail("alert@h1", "ops@example.org\nBcc: x@example.org")
            .unwrap_err();
        assert!(e.contains("is not an e-mail address"), "{e}");
        assert!(a.mail("alert@h1", " , ").is_err());
    }

    /// Regression: journal lines went raw into the body, and a relay refuses a line over
    /// 998 bytes (RFC 5322 2.1.1): such an alert bounced while the hook said "mailed".
    #[test]
    fn no_line_of_the_mail_passes_998_bytes_whatever_the_journal_holds() {
        let a = Alert {
            unit: "imageserving-svg.service".into(),
            component: "svg".into(),
            result: "exit-code".into(),
            restarts: 5,
            host: "h1".into(),
            summary: "Image Serving on h1: SVG Server failed".into(),
            journal: vec![
                "x".repeat(100_000),
                "é".repeat(3000),
                "SvgServer: JAVA_HOME is not set".into(),
            ],
        };
        let mail = a.mail("alert@h1", "ops@example.org").unwrap().formatted();
        let longest = mail
            .split(|b| *b == b'\n')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest <= 998, "a line of {longest} bytes");
        let text = String::from_utf8(mail).unwrap();
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable")
                || text.contains("Content-Transfer-Encoding: base64"),
            "{}",
            text.lines().take(12).collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn the_relay_setting_is_read_strictly() {
        for (relay, ok) in [
            ("localhost:25", true),
            ("127.0.0.1:2525", true),
            ("[::1]:25", true),
            ("localhost", true),
            ("smtp://localhost:25", true),
            ("localhost:0", false),
            ("localhost:x", false),
            (":25", false),
            ("smtp://", false),
        ] {
            assert_eq!(smtp_transport(relay).is_ok(), ok, "{relay}");
        }
        assert_eq!(
            default_sender("h1.example.org"),
            "imageserving-alert@h1.example.org"
        );
        assert_eq!(default_sender("bad_host"), "imageserving-alert@localhost");
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
