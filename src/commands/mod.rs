//! What each command does, given a [`Request`]: one small module per command, each a short
//! composition of the floors below (the stack's jobs, status, the journal, the fleet) that
//! prints the outcome and returns the exit code. The command line ([`crate::cli`]) is above
//! and is never called from here.

mod control;
mod fleet;
mod logs;
mod status;

use crate::component::TARGET;
use crate::control::Stack;
use crate::error::{exit, Error};
use crate::output;
use crate::request::{Command, Request};
use crate::systemd::Scope;

/// Run a parsed request; returns the process exit code.
pub fn execute(request: &Request) -> i32 {
    let scope = request.scope;
    if let Some(fleet) = &request.fleet {
        return fleet::run(fleet, scope, &request.command, request.full);
    }
    let ask = request.ask_password;
    match request.command {
        Command::Status(req, format) => status::status(scope, req, format, request.full),
        Command::Alert(ref unit) => alert(scope, unit),
        Command::Logs(ref request) => logs::logs(scope, request),
        Command::Metrics { http: false } => status::metrics(scope),
        Command::Metrics { http: true } => crate::serve::one_request(|| {
            crate::status::metrics_text(scope).map_err(|e| e.to_string())
        }),
        Command::Start(None) => control::control(
            scope,
            ask,
            ("Starting", "Image Serving"),
            TARGET,
            Stack::start,
        ),
        Command::Start(Some(c)) => control::control(
            scope,
            ask,
            ("Starting", c.short_name()),
            c.unit(),
            |stack, p| stack.start_component(c, p),
        ),
        Command::Stop(None) => control::control(
            scope,
            ask,
            ("Stopping", "Image Serving"),
            TARGET,
            Stack::stop,
        ),
        Command::Stop(Some(c)) => control::control(
            scope,
            ask,
            ("Stopping", c.short_name()),
            c.unit(),
            |stack, p| stack.stop_component(c, p),
        ),
        Command::Restart(None) => control::control(
            scope,
            ask,
            ("Restarting", "Image Serving"),
            TARGET,
            Stack::restart,
        ),
        Command::Restart(Some(c)) => control::control(
            scope,
            ask,
            ("Restarting", c.short_name()),
            c.unit(),
            |stack, p| stack.restart_component(c, p),
        ),
    }
}

/// `alert UNIT`: gather and send the alert; its lines carry the journal's priority prefix
/// (`sd-daemon(3)`), as the unit runs it with its output in the journal.
fn alert(scope: Scope, unit: &str) -> i32 {
    match crate::alert::run(scope, unit) {
        Ok(()) => exit::OK,
        // Each channel that failed has been logged at crit with why; this sums it up.
        Err(e @ Error::AlertNotSent { .. }) => {
            output::err(&format!("<3>{e}\n"));
            e.exit_code()
        }
        Err(e) => {
            output::err(&format!("<3>ImageServing alert: {e}\n"));
            e.exit_code()
        }
    }
}

/// Print `e` as one line on stderr; returns `code`.
pub(crate) fn report(e: &Error, code: i32) -> i32 {
    output::err(&format!("ImageServing: {e}\n"));
    code
}
