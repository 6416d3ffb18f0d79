//! Output to a reader that went away: every command exits quietly, as command-line tools do.

use crate::harness::Sandbox;

/// Regression: `ImageServing status | true` panicked on the closed pipe and died of SIGABRT
/// (exit 134) with a backtrace; monitoring scripts pipe into `head -1` and `grep -q`.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let sb = Sandbox::new();
    // Each line: the command, then the exit code it has with a reader that stays.
    let cases = [
        ("start", 0),
        ("status", 0),
        ("status --json", 0),
        ("status --pss is", 0),
        ("restart is", 0),
        ("restart", 0),
        ("--help", 0),
        ("--version", 0),
        ("status --help", 0),
        ("stop", 0),
        ("status", 3),
        ("status --json", 3),
    ];
    for (args, code) in cases {
        // The reader is gone before the command writes: `exec 1>&-` would close stdout
        // altogether; a pipe whose reader exited is what `| head -1` leaves behind.
        let r = sb
            .run_shell(&format!(
                "exec 3>&1; {{ sleep 0.2; $IS {args}; echo \"exit=$?\" >&3; }} | true"
            ))
            .code(0);
        assert_eq!(
            r.stdout.trim(),
            format!("exit={code}"),
            "{args}: {}",
            r.stderr
        );
        assert_eq!(r.stderr, "", "{args}: a closed pipe must not be reported");
    }
    // The same for what goes to stderr: a usage error with stderr's reader gone.
    let r = sb
        .run_shell("exec 3>&1; { sleep 0.2; $IS frobnicate; echo \"exit=$?\" >&3; } 2>&1 | true")
        .code(0);
    assert_eq!(r.stdout.trim(), "exit=2", "{}", r.stderr);
}
