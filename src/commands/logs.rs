//! `logs`: the stack's journal, through `journalctl` ([`crate::journal`]).

use crate::error::exit;
use crate::journal::Selection;
use crate::output;
use crate::request::LogsRequest;
use crate::systemd::Scope;

/// Become `journalctl` with the stack's units (or one member's): its output, pager and
/// follow mode are the ones operators know.
pub(super) fn logs(scope: Scope, request: &LogsRequest) -> i32 {
    // journalctl itself would say "No journal files were found" and exit 1; this is a
    // permission problem, with its own exit code and what to do.
    if scope == Scope::System && crate::journal::system_journal_readable() == Some(false) {
        output::err("ImageServing: permission denied reading the system journal: run as root or as a member of the group systemd-journal (or adm)\n");
        return exit::PRIVILEGE;
    }
    let units: Vec<&str> = match request.member {
        Some(m) => vec![m.unit()],
        None => crate::component::stack_units().collect(),
    };
    let e = crate::journal::show(&Selection {
        scope,
        units: &units,
        follow: request.follow,
        lines: request.lines,
        since: request.since.as_deref(),
        output: request.output.as_deref(),
    });
    output::err(&format!(
        "ImageServing: cannot run journalctl: {e} (is systemd's journalctl installed?)\n"
    ));
    exit::FAILURE
}
