//! `start`, `stop`, `restart` and `restart NAME`: the stack's jobs ([`crate::control`]) with
//! a progress line, polkit's agent on a terminal, and Ctrl-C that says the job goes on.

use crate::control::{Outcome, Stack};
use crate::error::{exit, Error};
use crate::output;
use crate::progress::Progress;
use crate::systemd::Scope;

use super::report;

/// `(verb, what)`: `("Restarting", "svg")`, for the progress line and the interrupt message.
pub(super) fn control(
    scope: Scope,
    ask_password: bool,
    (verb, what): (&str, &str),
    unit: &str,
    action: impl FnOnce(&Stack, &mut Progress) -> Result<Outcome, Error>,
) -> i32 {
    let mut progress = Progress::for_stderr(&format!("{verb} {what}"));
    on_interrupt(format!(
        "ImageServing: interrupted; systemd goes on {} {unit}: see 'ImageServing{} status'\n",
        verb.to_lowercase(),
        scope.flag()
    ));
    // As systemctl: on a terminal, polkit may ask for a password through a text agent.
    let interactive = crate::agent::wanted(scope, ask_password);
    let agent = interactive.then(crate::agent::start).flatten();
    let outcome =
        Stack::open(scope, agent.is_some()).and_then(|stack| action(&stack, &mut progress));
    drop(agent);
    progress.clear();
    match outcome {
        Ok(outcome) => {
            // On a terminal, broken at spaces to fit: a line the terminal wraps is one it
            // cannot erase or redraw.
            let text = outcome.to_string();
            let lines = match crate::terminal::stdout_width() {
                Some(w) => crate::terminal::wrap(&text, w),
                None => vec![text],
            };
            output::out(&format!("{}\n", lines.join("\n")));
            exit::OK
        }
        Err(e) => {
            let code = report(&e, e.exit_code());
            if let Some(unit) = e.failed_unit() {
                explain_from_journal(scope, unit);
            }
            code
        }
    }
}

/// After a unit's failure, its last journal lines and how to see more, as `systemctl
/// status` shows them: what the program itself said is usually the reason (a wrong
/// JAVA_HOME, a missing file). Nothing when the journal cannot be read.
fn explain_from_journal(scope: Scope, unit: &str) {
    const LINES: u32 = 8;
    if let Some(lines) = crate::journal::last_lines(scope, unit, LINES) {
        let mut text = format!("Last journal lines of {unit}:\n");
        for line in lines {
            text.push_str("  ");
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!(
            "See more with '{}'.\n",
            crate::journal::hint(scope, unit)
        ));
        output::err(&text);
    }
}

/// On Ctrl-C (or SIGTERM, SIGHUP) while `start`, `stop` or `restart` waits: erase the
/// progress line, say that systemd's job goes on (only the wait ends), and exit 128 + the
/// signal's number, as a shell reports a command a signal ended. Best effort: without a
/// signal thread the default action (termination) remains.
fn on_interrupt(message: String) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                use std::io::{IsTerminal, Write};
                // Holding stderr's lock until the exit keeps the progress line from being
                // drawn again.
                let mut err = std::io::stderr().lock();
                if err.is_terminal() {
                    let _ = err.write_all(b"\r\x1b[2K");
                }
                let _ = err.write_all(message.as_bytes());
                let _ = err.flush();
                std::process::exit(128 + signal);
            }
        });
}
