//! Any command with `--host`/`--hosts`: run on every host over ssh ([`crate::fleet`]), then a
//! table (or `--json` for status) and a last line that sums up.

use crate::error::{exit, Error};
use crate::output;
use crate::request::{Command, Fleet, Format};
use crate::systemd::Scope;

use super::report;

/// Run the command on every host of `fleet` over ssh: a table (or `--json` for status), and a
/// last line that sums up; the exit code is the most severe of the hosts'.
pub(super) fn run(fleet: &Fleet, scope: Scope, command: &Command, full: bool) -> i32 {
    use crate::fleet::{self, Action};
    let mut hosts = Vec::new();
    for spec in &fleet.hosts {
        match fleet::parse_host(spec) {
            Ok(h) => hosts.push(h),
            Err(e) => return report(&Error::Host(e), exit::USAGE),
        }
    }
    let (action, json) = match command {
        Command::Status(req, format) => (Action::Status(req.only), *format == Format::Json),
        Command::Start(c) => (Action::Start(*c), false),
        Command::Stop(c) => (Action::Stop(*c), false),
        Command::Restart(c) => (Action::Restart(*c), false),
        Command::Logs(l) => (Action::Logs(l.clone()), false),
        _ => return exit::USAGE,
    };
    let (results, left) = match (&action, fleet.serial) {
        (Action::Restart(c), Some(n)) => {
            fleet::rolling_restart(&hosts, *c, scope, (n, fleet.parallel), fleet.deadline)
        }
        _ => (
            fleet::run_all(
                &hosts,
                action.clone(),
                scope,
                fleet.parallel,
                fleet.deadline,
            ),
            Vec::new(),
        ),
    };
    if json {
        match serde_json::to_string_pretty(&results) {
            Ok(text) => output::out(&format!("{text}\n")),
            Err(e) => return report(&Error::Encode(e.to_string()), exit::FAILURE),
        }
    } else if action.is_text() {
        output::out(&fleet::grouped(&results));
    } else {
        let width = if full {
            None
        } else {
            crate::terminal::stdout_width()
        };
        output::out(&fleet::table(&results, &action, width));
    }
    output::err(&format!("{}\n", fleet::summary(&results, &action, &left)));
    let code = fleet::exit_code(&results);
    if code == exit::OK && !left.is_empty() {
        exit::FAILURE
    } else {
        code
    }
}
