//! The Ansible collection (`contrib/ansible/imageserving/stack`), with the ansible-core
//! Debian ships, against booted boxes over their real sshd (the fleet tests' boxes): built
//! and installed with `ansible-galaxy`, documented for `ansible-doc`, each point of the
//! module (idempotence, check mode, components, the status document, the tool's own errors)
//! and the rolling-restart playbook under probing clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::fleet::{never_two_down, Fleet};
use super::upgrade::Client;
use crate::harness::run_with_timeout;

const MODULE: &str = "imageserving.stack.imageserving";
const SVG: &str = "imageserving-svg.service";
const PS: &str = "imageserving-platform.service";

/// The collection built and installed under the fleet's directory, and an inventory of its
/// hosts: `host1`, `host2` (installed), `host3` (bare), `host1-ops` (host1 as an account
/// polkit gives no right to act).
struct Ansible<'a> {
    fleet: &'a Fleet,
    collections: PathBuf,
    inventory: PathBuf,
}

/// One `ansible` or `ansible-playbook` run.
struct Played {
    code: i32,
    /// Each host's result, from the `-o` (oneline) output of ad-hoc runs.
    results: std::collections::BTreeMap<String, Value>,
    raw: String,
}

impl Played {
    /// The result of the (single) task on `host`; `Null` when the host gave none.
    fn on(&self, host: &str) -> &Value {
        self.results.get(host).unwrap_or(&Value::Null)
    }
}

/// The hosts' results in the output of ansible-core's own `oneline` callback (`ansible -o`),
/// one line per host: `HOST | SUCCESS => {json}`, `HOST | CHANGED => {json}`,
/// `HOST | FAILED! => {json}`, or `HOST | UNREACHABLE!: MSG`. Only ansible-core is needed:
/// the `json` callback is the `ansible.posix` collection's, which ansible-core does not ship.
fn oneline_results(stdout: &str) -> std::collections::BTreeMap<String, Value> {
    let mut results = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        let Some((host, rest)) = line.split_once(" | ") else {
            continue;
        };
        let result = if let Some((_, json)) = rest.split_once(" => ") {
            let mut v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            if rest.starts_with("FAILED!") {
                v["failed"] = Value::Bool(true);
            }
            v
        } else if let Some(msg) = rest.strip_prefix("UNREACHABLE!: ") {
            serde_json::json!({"unreachable": true, "failed": true, "msg": msg})
        } else {
            continue;
        };
        results.insert(host.to_owned(), result);
    }
    results
}

impl<'a> Ansible<'a> {
    fn new(fleet: &'a Fleet) -> Ansible<'a> {
        let dir = &fleet.dir;
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/ansible/imageserving/stack");
        let build = run_with_timeout(
            Command::new("ansible-galaxy")
                .args(["collection", "build", "--force", "--output-path"])
                .arg(dir)
                .arg(&source),
            Duration::from_secs(120),
        );
        assert!(
            build.status.success(),
            "ansible-galaxy collection build: {}",
            String::from_utf8_lossy(&build.stderr)
        );
        let collections = dir.join("collections");
        let install = run_with_timeout(
            Command::new("ansible-galaxy")
                .args(["collection", "install", "--force", "-p"])
                .arg(&collections)
                .arg(dir.join("imageserving-stack-0.1.0.tar.gz")),
            Duration::from_secs(120),
        );
        assert!(
            install.status.success(),
            "ansible-galaxy collection install: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let inventory = dir.join("inventory");
        std::fs::write(
            &inventory,
            "[imageserving]\nhost1\nhost2\n\n[bare]\nhost3\n\n[ops]\nhost1-ops ansible_host=host1 ansible_user=ops\n\n\
             [all:vars]\nansible_python_interpreter=/usr/bin/python3\n",
        )
        .expect("inventory");
        Ansible {
            fleet,
            collections,
            inventory,
        }
    }

    fn command(&self, program: &str) -> Command {
        let dir = &self.fleet.dir;
        let mut cmd = Command::new(program);
        cmd.env("ANSIBLE_COLLECTIONS_PATH", &self.collections)
            .env("ANSIBLE_INVENTORY", &self.inventory)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
            .env("ANSIBLE_HOME", dir.join("ansible-home"))
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"))
            .env(
                "ANSIBLE_SSH_ARGS",
                format!(
                    "-F {} -o ControlMaster=auto -o ControlPersist=20s",
                    dir.join("config").display()
                ),
            );
        cmd
    }

    fn parse(out: std::process::Output) -> Played {
        let raw = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let results = oneline_results(&String::from_utf8_lossy(&out.stdout));
        assert!(
            !raw.contains("Traceback"),
            "a Python traceback reached the user:\n{raw}"
        );
        Played {
            code: out.status.code().unwrap_or(-1),
            results,
            raw,
        }
    }

    /// `ansible PATTERN -o -m imageserving.stack.imageserving -a ARGS [--check]`.
    fn module(&self, pattern: &str, args: &str, check: bool) -> Played {
        let mut cmd = self.command("ansible");
        cmd.args([pattern, "-o", "-m", MODULE, "-a", args]);
        if check {
            cmd.arg("--check");
        }
        Ansible::parse(run_with_timeout(&mut cmd, Duration::from_secs(300)))
    }

    /// The module's result on one host, which must have succeeded.
    #[track_caller]
    fn ok(&self, host: &str, args: &str, check: bool) -> Value {
        let p = self.module(host, args, check);
        let r = p.on(host).clone();
        assert!(
            p.code == 0 && r["failed"] != true,
            "{args}{} on {host}: exit {}\n{}",
            if check { " (check)" } else { "" },
            p.code,
            p.raw
        );
        // Every result carries the host's status document, as status --json prints it.
        assert!(
            r["status"]["supervisor"].is_object() && r["status"]["components"].is_array(),
            "no status document: {r}"
        );
        r
    }

    /// The module's result on one host, which must have failed with the tool's exit code.
    #[track_caller]
    fn fails(&self, host: &str, args: &str, rc: i64) -> Value {
        let p = self.module(host, args, false);
        let r = p.on(host).clone();
        assert_ne!(p.code, 0, "{args} on {host} did not fail:\n{}", p.raw);
        assert_eq!(r["failed"], true, "{r}");
        assert_eq!(r["rc"], rc, "{args} on {host}: {r}");
        let msg = r["msg"].as_str().unwrap_or_default();
        assert!(
            !msg.is_empty() && !msg.contains('\n'),
            "not the tool's one-line message: {msg:?}"
        );
        r
    }
}

fn changed(r: &Value) -> bool {
    r["changed"] == true
}

#[test]
fn the_ansible_module_is_idempotent_checks_and_reports_the_tools_errors() {
    let fleet = Fleet::boot(2, 1);
    let host1 = &fleet.hosts[0];
    host1
        .sh("useradd -m ops && mkdir -p -m 0700 ~ops/.ssh && cp /root/.ssh/authorized_keys ~ops/.ssh/ && chown -R ops: ~ops/.ssh")
        .code(0);
    let a = Ansible::new(&fleet);

    // ansible-doc reads the module's documentation.
    let doc = run_with_timeout(
        a.command("ansible-doc").arg(MODULE),
        Duration::from_secs(120),
    );
    let doc_text = String::from_utf8_lossy(&doc.stdout);
    assert!(
        doc.status.success()
            && doc_text.contains("restarted")
            && doc_text.contains("EXAMPLES")
            && doc_text.contains("choices: [ps, is, svg, platform, image]"),
        "ansible-doc {MODULE}:\n{doc_text}{}",
        String::from_utf8_lossy(&doc.stderr)
    );

    // Started on a running stack: nothing to do.
    let r = a.ok("host1", "state=started", false);
    assert!(!changed(&r), "{r}");
    assert_eq!(r["status"]["supervisor"]["running"], true);
    assert_eq!(r["status"]["components"].as_array().map(Vec::len), Some(3));

    // Check mode says what it would do, and does nothing.
    let r = a.ok("host1", "state=stopped", true);
    assert!(changed(&r), "{r}");
    assert_eq!(host1.prop(SVG, "ActiveState"), "active");

    // Stopped: changed, and nothing of the stack runs; stopped again: unchanged.
    let r = a.ok("host1", "state=stopped", false);
    assert!(changed(&r), "{r}");
    assert_eq!(r["status"]["supervisor"]["running"], false);
    assert!(host1.stack_pids().is_empty(), "{:?}", host1.stack_pids());
    assert!(!changed(&a.ok("host1", "state=stopped", false)));
    // The document carries every component also when the supervisor does not run.
    let r = a.ok("host1", "state=started", true);
    assert!(changed(&r), "{r}");
    assert_eq!(r["status"]["components"].as_array().map(Vec::len), Some(3));
    assert!(
        host1.stack_pids().is_empty(),
        "check mode started something"
    );

    // Started: changed, and serving.
    let r = a.ok("host1", "state=started", false);
    assert!(changed(&r), "{r}");
    assert_eq!(r["status"]["supervisor"]["running"], true);
    assert!(!changed(&a.ok("host1", "state=started", false)));

    // One component: restarted always changes, and only it is replaced.
    let ps = host1.main_pid(PS);
    let svg = host1.main_pid(SVG);
    let r = a.ok("host1", "state=restarted component=svg", false);
    assert!(changed(&r), "{r}");
    assert_ne!(host1.main_pid(SVG), svg);
    assert_eq!(host1.main_pid(PS), ps);
    // Stopped for maintenance, alone; idempotent; started again alone.
    assert!(changed(&a.ok(
        "host1",
        "state=stopped component=svg",
        false
    )));
    assert_eq!(host1.prop(SVG, "ActiveState"), "inactive");
    assert!(!changed(&a.ok(
        "host1",
        "state=stopped component=svg",
        false
    )));
    assert!(!changed(&a.ok(
        "host1",
        "state=started component=image",
        true
    )));
    let r = a.ok("host1", "state=started component=svg", false);
    assert!(changed(&r), "{r}");
    assert_eq!(host1.prop(SVG, "ActiveState"), "active");
    assert_eq!(host1.main_pid(PS), ps, "starting svg touched ps");

    // Restarted (the whole stack): always changed, every process replaced.
    assert!(changed(&a.ok("host1", "state=restarted", false)));
    assert_ne!(host1.main_pid(PS), ps);

    // A component not in the choices, the empty one included (what `default('')` gives), is
    // refused by Ansible itself before anything runs, naming the valid values.
    let ps = host1.main_pid(PS);
    for (args, check) in [
        ("state=restarted component=tomcat", false),
        ("state=stopped component=''", false),
        ("state=stopped component=''", true),
    ] {
        let p = a.module("host1", args, check);
        let r = p.on("host1");
        assert!(p.code != 0 && r["failed"] == true, "{args}: {}", p.raw);
        let msg = r["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("value of component must be one of: ps, is, svg, platform, image"),
            "{args}: {msg}"
        );
        assert!(r.get("cmd").is_none(), "{args} ran something: {r}");
    }
    assert_eq!(host1.main_pid(PS), ps, "a refused component touched ps");
    assert_eq!(host1.prop(SVG, "ActiveState"), "active");

    // The tool's own errors, one line and its exit code, never a traceback.
    let r = a.fails("host3", "state=started", 5);
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("not installed"),
        "{r}"
    );
    let r = a.fails("host1-ops", "state=restarted", 4);
    assert!(
        r["msg"].as_str().unwrap_or_default().contains("ermission"),
        "{r}"
    );
    // A bad state is Ansible's own argument check, also without a traceback.
    let p = a.module("host1", "state=bogus", false);
    assert_ne!(p.code, 0);
    assert!(p.on("host1")["msg"]
        .as_str()
        .unwrap_or_default()
        .contains("state"));
}

#[test]
fn the_rolling_restart_playbook_never_has_both_hosts_down() {
    let fleet = Fleet::boot(2, 0);
    let a = Ansible::new(&fleet);
    let before: Vec<u32> = fleet.hosts.iter().map(|m| m.main_pid(PS)).collect();
    let clients: Vec<Client> = fleet.hosts.iter().map(Client::start).collect();
    std::thread::sleep(Duration::from_secs(1));
    let out = run_with_timeout(
        a.command("ansible-playbook")
            .arg("imageserving.stack.rolling_restart")
            .args(["-e", "target=imageserving"]),
        Duration::from_secs(600),
    );
    let p = Ansible::parse(out);
    assert_eq!(p.code, 0, "{}", p.raw);
    // serial: 1 runs the task once per host, one batch after the other: each task banner of
    // ansible-core's default callback is followed by one host's result.
    let results: Vec<&str> = p
        .raw
        .lines()
        .filter(|l| {
            l.starts_with("TASK [") || l.starts_with("changed: [") || l.starts_with("ok: [")
        })
        .collect();
    assert_eq!(
        results
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect::<Vec<_>>(),
        ["TASK", "changed:", "TASK", "changed:"],
        "{}",
        p.raw
    );
    std::thread::sleep(Duration::from_secs(1));
    for (m, pid) in fleet.hosts.iter().zip(&before) {
        assert_ne!(m.main_pid(PS), *pid, "a host was not restarted");
    }
    never_two_down(clients);
}
