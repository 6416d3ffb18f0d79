//! The Ansible collection (`contrib/ansible/imageserving/stack`) against Ansible's own quality
//! tools: `ansible-lint --offline --profile production` (from PyPI, in a venv of its own)
//! and `ansible-test sanity` (the ansible-core Debian ships). No box is needed: both read
//! the collection's files.
//!
//! Both want the collection at `…/ansible_collections/NAMESPACE/NAME`, so each runs on a copy
//! laid out that way. Their downloads (the venv, ansible-test's per-test venvs) are kept in
//! `/var/cache/imageserving-tests/ansible`, as the Debian 13 root is, so a second run takes
//! seconds. The one reason to skip is a package index that cannot be reached; then the test
//! says so in one line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::run_with_timeout;

/// The versions the suite checks with, pinned so that a new release of the linter (with new
/// rules) cannot turn the suite red on its own.
const ANSIBLE_LINT: &[&str] = &["ansible-lint==26.10.1", "ansible-core==2.19.14"];

/// ansible-test downloads its pip bootstrap from a host this machine cannot reach; this one
/// takes pip from the interpreter's own `ensurepip`, then installs what ansible-test asks
/// for (its pinned pip and the rest) from the package index, as the original would.
const GET_PIP: &str = "\
# ansible-test's pip bootstrap, offline: pip from the interpreter's ensurepip, then the
# packages ansible-test asks for from the package index.
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\"] + sys.argv[1:])
";

fn cache() -> PathBuf {
    std::env::var_os("IMAGESERVING_ANSIBLE_CACHE").map_or_else(
        || PathBuf::from("/var/cache/imageserving-tests/ansible"),
        PathBuf::from,
    )
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/ansible/imageserving/stack")
}

/// A copy of the collection at `DIR/ansible_collections/imageserving/stack`, without Python's
/// byte code; removed on drop.
struct Copy(PathBuf);

impl Copy {
    fn new(name: &str) -> Copy {
        let root = std::env::temp_dir().join(format!("iscoll-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dest = root.join("ansible_collections/imageserving/stack");
        copy_tree(&source(), &dest);
        Copy(root)
    }

    fn collection(&self) -> PathBuf {
        self.0.join("ansible_collections/imageserving/stack")
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("collection copy");
    for e in std::fs::read_dir(from)
        .expect("collection source")
        .flatten()
    {
        let name = e.file_name();
        if name == "__pycache__" || name == "output" || name.to_string_lossy().ends_with(".tar.gz")
        {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy a collection file");
        }
    }
}

/// Why the package index cannot be reached, if it cannot: `pip download` of one small
/// package, asking no cache.
fn index_unreachable(python: &Path) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("iscoll-probe-{}", std::process::id()));
    let out = run_with_timeout(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "-q",
                "-d",
            ])
            .arg(&dir)
            .arg("six"),
        Duration::from_secs(120),
    );
    let _ = std::fs::remove_dir_all(&dir);
    (!out.status.success()).then(|| {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("pip download failed")
            .trim()
            .to_owned()
    })
}

#[track_caller]
fn passed(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's own interpreter: its venv module and ensurepip are what ansible-test uses.
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn the_ansible_collection_passes_ansible_lint_production_and_ansible_test_sanity() {
    let cache = cache();
    std::fs::create_dir_all(&cache).expect("ansible cache dir");
    let venv = cache.join("lint-venv");
    let venv_python = venv.join("bin/python");
    if !venv_python.exists() {
        passed(
            "python3 -m venv",
            &run_with_timeout(
                Command::new(PYTHON).args(["-m", "venv"]).arg(&venv),
                Duration::from_secs(120),
            ),
        );
    }
    if let Some(why) = index_unreachable(&venv_python) {
        eprintln!("skipped: the package index cannot be reached for ansible-lint ({why})");
        return;
    }
    passed(
        "pip install ansible-lint",
        &run_with_timeout(
            Command::new(&venv_python)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(ANSIBLE_LINT),
            Duration::from_secs(600),
        ),
    );

    // ansible-lint's production profile, offline, with the collection's own configuration
    // (.ansible-lint) and nothing from the machine's collections.
    let copy = Copy::new("lint");
    let lint = run_with_timeout(
        Command::new(venv.join("bin/ansible-lint"))
            .args(["--offline", "--profile", "production"])
            .current_dir(copy.collection())
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    venv.join("bin").display()
                ),
            )
            .env("ANSIBLE_COLLECTIONS_PATH", &copy.0)
            .env("ANSIBLE_HOME", copy.0.join("ansible-home"))
            .env("NO_COLOR", "1"),
        Duration::from_secs(600),
    );
    passed("ansible-lint --offline --profile production", &lint);
    let said = String::from_utf8_lossy(&lint.stderr);
    assert!(
        said.contains("Profile 'production' was required, and it passed"),
        "ansible-lint did not check the production profile:\n{said}"
    );

    // ansible-test sanity, every test it has for a collection, with Debian's interpreter.
    // Its home is the cache: the pip bootstrap above, and the venvs it makes per test.
    let home = cache.join("test-home");
    let bootstrap = home.join(".ansible/test/cache");
    std::fs::create_dir_all(&bootstrap).expect("ansible-test cache");
    let version = ansible_test_pip_version();
    std::fs::write(
        bootstrap.join(format!("get_pip_{}.py", version.replace('.', "_"))),
        GET_PIP,
    )
    .expect("pip bootstrap");
    let copy = Copy::new("sanity");
    let sanity = run_with_timeout(
        Command::new("ansible-test")
            .args(["sanity", "--local", "--python", "3.11", "--color", "no"])
            .current_dir(copy.collection())
            .env("HOME", &home),
        Duration::from_secs(1200),
    );
    passed("ansible-test sanity --local --python 3.11", &sanity);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&sanity.stdout),
        String::from_utf8_lossy(&sanity.stderr)
    );
    for test in [
        "validate-modules",
        "ansible-doc",
        "pylint",
        "pep8",
        "import",
        "yamllint",
    ] {
        assert!(
            said.contains(&format!("Running sanity test \"{test}\"")),
            "ansible-test did not run {test}:\n{said}"
        );
    }
}

/// The pip version ansible-test bootstraps (it names its bootstrap script after it).
fn ansible_test_pip_version() -> String {
    let out = run_with_timeout(
        Command::new(PYTHON).args([
            "-c",
            "import re, ansible_test._internal.python_requirements as r, inspect; \
             print(re.search(r\"pip='([0-9.]+)'\", inspect.getsource(r)).group(1))",
        ]),
        Duration::from_secs(60),
    );
    passed("ansible-test's pip version", &out);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
