//! `logs`: the stack's journal, through `journalctl` ([`crate::journal`]).

use crate::component::Member;
use crate::error::exit;
use crate::journal::Selection;
use crate::output;
use crate::systemd::Scope;

/// Become `journalctl` with the stack's units (or one member's): its output, pager and
/// follow mode are the ones operators know.
pub(super) fn logs(
    scope: Scope,
    member: Option<Member>,
    follow: bool,
    lines: Option<u32>,
    since: Option<&str>,
) -> i32 {
    // journalctl itself would say "No journal files were found" and exit 1; this is a
    // permission problem, with its own exit code and what to do.
    if scope == Scope::System && crate::journal::system_journal_readable() == Some(false) {
        output::err("ImageServing: permission denied reading the system journal: run as root or as a member of the group systemd-journal (or adm)\n");
        return exit::PRIVILEGE;
    }
    let units: Vec<&str> = match member {
        Some(m) => vec![m.unit()],
        None => crate::component::stack_units().collect(),
    };
    let e = crate::journal::show(&Selection {
        scope,
        units: &units,
        follow,
        lines,
        since,
    });
    output::err(&format!(
        "ImageServing: cannot run journalctl: {e} (is systemd's journalctl installed?)\n"
    ));
    exit::FAILURE
}
