//! The README's two commands on a machine that lacks what they need: a Debian 13 box (a
//! minimal install, no network), where they must stop at once with the exact `apt-get
//! install` line instead of failing later with errors that say nothing about a package.
//! (`.ci/run` proves the other path, the install, on a fresh machine.)

use std::time::{Duration, Instant};

use super::machine::{Layout, Machine};

#[test]
fn the_readme_commands_name_what_to_install_on_a_bare_machine() {
    let m = Machine::boot(Layout::Debian13, &[]);
    let tree = env!("CARGO_MANIFEST_DIR");
    m.sh("useradd -m erin").code(0);
    for (who, command, package) in [
        ("root", "scripts/test.sh", "prometheus"),
        ("erin", "scripts/test.sh", "systemd-container"),
        ("erin", "scripts/demo.sh", "libc6-dev"),
    ] {
        let script = format!("cd {tree} && {command}");
        let t = Instant::now();
        let r = if who == "root" {
            m.sh_timeout(&script, Duration::from_secs(120))
        } else {
            m.sh_as(who, &script)
        };
        let took = t.elapsed();
        assert_eq!(r.code, 1, "{who}: {command}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("apt-get install -y --no-install-recommends")
                && r.stderr.contains(package),
            "{who}: {command}: {}",
            r.stderr
        );
        assert!(
            took < Duration::from_secs(60),
            "{who}: {command} took {took:?} to say what is missing"
        );
        // Nothing ran past the check: no build, no test.
        assert!(!r.stdout.contains("Compiling") && !r.stderr.contains("Compiling"));
    }
}
