//! The private user-manager tests, once more inside a box that boots the pure cgroup v2
//! layout operators' hosts boot (the host here boots the hybrid one).

use std::time::Duration;

use super::machine::{Layout, Machine};

#[test]
fn user_manager_tests_pass_in_the_pure_cgroup_v2_layout() {
    let m = Machine::boot(Layout::Unified, &[]);
    let exe = std::env::current_exe().expect("the test binary");
    // `collection` reads files only (Ansible's linters), and the box has no network for
    // their package index: it says nothing about a cgroup layout. The suite takes about 10
    // minutes here on a quiet machine; the ceiling leaves room for a loaded one, inside the
    // box's own life (1200 s, `Machine::boot`).
    let run = m.sh_timeout(
        &format!(
            "cd {} && {} --skip booted --skip collection --test-threads=2 2>&1",
            env!("CARGO_MANIFEST_DIR"),
            exe.display()
        ),
        Duration::from_secs(1100),
    );
    let summary = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        run.code == 0 && summary.starts_with("test result: ok."),
        "the user-manager tests failed in the v2 box ({summary}):\n{}",
        run.stdout
    );
    // They ran, and ran there.
    let passed: u32 = summary
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 30, "{summary}");
}
