//! Fleet commands over real OpenSSH: each host is a booted box running sshd and the stack,
//! reached with `ssh -o ProxyCommand=...` through its own network namespace (no address is
//! created, nothing on the machine's network changes). Keys and known_hosts are generated
//! in the test's own directory; host keys are checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::machine::{Layout, Machine, IN};
use super::package::machine;
use super::upgrade::Client;
use crate::fleet::run_fleet;
use crate::harness::{env_or, run_with_timeout, Run};

pub(super) struct Fleet {
    pub(super) dir: PathBuf,
    pub(super) hosts: Vec<Machine>,
}

impl Fleet {
    /// `installed` boxes with the package and the stack running, then `bare` boxes without
    /// it; all with sshd and our key.
    pub(super) fn boot(installed: usize, bare: usize) -> Fleet {
        Fleet::boot_with(installed, bare, "")
    }

    /// [`Fleet::boot`], with extra `sshd` options.
    fn boot_with(installed: usize, bare: usize, sshd_options: &str) -> Fleet {
        // A fleet of its own per call: tests of one run boot fleets of the same size at once.
        static FLEETS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = FLEETS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "isfleet-{}-{n}-{installed}-{bare}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fleet dir");
        let key = dir.join("id");
        let out = run_with_timeout(
            std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f"])
                .arg(&key),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "ssh-keygen");
        let mut hosts = Vec::new();
        let mut config = String::new();
        let mut known = String::new();
        for i in 0..installed + bare {
            let m = machine(Layout::Hybrid);
            let pubkey = std::fs::read_to_string(dir.join("id.pub")).expect("pub key");
            // root's dotfiles are the distribution's (this machine's own ones start a
            // Python version manager, ≈ 80 ms of CPU per ssh session, which no host has).
            let setup = format!(
                "set -e; mkdir -p -m 0700 /root/.ssh; echo '{}' >/root/.ssh/authorized_keys; \
                 cp /usr/share/base-files/dot.bashrc /root/.bashrc; \
                 cp /usr/share/base-files/dot.profile /root/.profile; \
                 mkdir -p /run/sshd; systemd-run --unit=test-sshd /usr/sbin/sshd -D -e -o MaxStartups=200 {sshd_options}",
                pubkey.trim()
            );
            m.sh(&setup).code(0);
            if i < installed {
                m.sh(&format!(
                    "dpkg -i {IN}/1.deb >/dev/null && ImageServing start"
                ))
                .code(0);
            }
            let hostkey = m.sh("cat /etc/ssh/ssh_host_ed25519_key.pub").code(0).stdout;
            let name = format!("host{}", i + 1);
            known.push_str(&format!(
                "{name} {}\n",
                hostkey
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
            // socat's `nodelay`: ssh cannot set TCP_NODELAY on the pipe to its ProxyCommand,
            // and each short session would otherwise wait for a delayed ACK (≈ 40 ms).
            config.push_str(&format!(
                "Host {name}\n  HostName 127.0.0.1\n  HostKeyAlias {name}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  ProxyCommand nsenter -t {pid} -n socat STDIO TCP:127.0.0.1:22,nodelay\n\n",
                key = key.display(),
                known = dir.join("known_hosts").display(),
                pid = m.pid1()
            ));
            hosts.push(m);
        }
        std::fs::write(dir.join("known_hosts"), known).expect("known_hosts");
        std::fs::write(dir.join("config"), config).expect("ssh config");
        Fleet { dir, hosts }
    }

    /// `count` ssh aliases (`host1`…) of the first box, each its own connection:
    /// `config-plain` without connection reuse, `config-reuse` with a master per alias
    /// (ControlPath by alias, %n: %C hashes the HostName, which all aliases share here).
    fn aliases(&self, count: usize) {
        let box_config = std::fs::read_to_string(self.dir.join("config")).expect("config");
        let known = std::fs::read_to_string(self.dir.join("known_hosts")).expect("known_hosts");
        let key_line = known
            .lines()
            .next()
            .and_then(|l| l.split_once(' '))
            .map(|(_, key)| key.to_owned())
            .expect("host key");
        let template = box_config
            .split("\n\n")
            .next()
            .expect("first host")
            .replace("Host host1\n", "")
            .replace("HostKeyAlias host1", "HostKeyAlias NAME");
        let mut plain = String::new();
        let mut reuse = String::new();
        let mut known_all = String::new();
        for i in 1..=count {
            let block = template.replace("NAME", &format!("host{i}"));
            plain.push_str(&format!("Host host{i}\n{block}\n\n"));
            reuse.push_str(&format!(
                "Host host{i}\n{block}\n  ControlMaster auto\n  ControlPath {}/cm-%n\n  ControlPersist 120\n\n",
                self.dir.display()
            ));
            known_all.push_str(&format!("host{i} {key_line}\n"));
        }
        std::fs::write(self.dir.join("known_hosts"), known_all).expect("known_hosts");
        std::fs::write(self.dir.join("config-plain"), plain).expect("config");
        std::fs::write(self.dir.join("config-reuse"), reuse).expect("config");
    }

    /// `ImageServing ARGS` on this machine, with the fleet's ssh configuration.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Run {
        run_fleet(&self.dir, args, Duration::from_secs(300))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.hosts.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rows_of<'a>(table: &'a str, host: &str) -> Vec<&'a str> {
    table
        .lines()
        .filter(|l| l.starts_with(&format!("{host} ")))
        .collect()
}

#[test]
fn fleet_status_reports_every_host_and_what_failed() {
    let mut fleet = Fleet::boot(3, 1);
    let ok = fleet
        .run(&["--host", "host1,host2", "--host", "host3", "status"])
        .code(0);
    for h in ["host1", "host2", "host3"] {
        let rows = rows_of(&ok.stdout, h);
        assert_eq!(rows.len(), 3, "{h}:\n{}", ok.stdout);
        assert!(
            rows.iter().all(|r| r.contains("active (running)")),
            "{}",
            ok.stdout
        );
    }
    assert_eq!(ok.stderr.trim(), "3 of 3 hosts running");

    // One document: a list of {host, ok, exit_code, error, status}, in the order given.
    let json = fleet
        .run(&[
            "--hosts",
            &write_hosts(&fleet.dir, "# rack 1\nhost2\nhost1 # first\n"),
            "status",
            "--json",
        ])
        .code(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let list = doc.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert_eq!(
        (list[0]["host"].as_str(), list[1]["host"].as_str()),
        (Some("host2"), Some("host1"))
    );
    for h in list {
        assert_eq!(h["ok"], true, "{h}");
        assert_eq!(h["exit_code"], 0);
        assert!(h["error"].is_null());
        assert_eq!(
            h["status"]["components"].as_array().map(Vec::len),
            Some(3),
            "{h}"
        );
    }

    // A host without the package: a clear per-host error; the others are fine.
    let missing = fleet.run(&["--host", "host1,host4", "status"]).code(5);
    assert_eq!(rows_of(&missing.stdout, "host1").len(), 3);
    assert!(
        missing
            .stdout
            .contains("ImageServing is not installed there"),
        "{}",
        missing.stdout
    );
    assert!(
        missing
            .stderr
            .contains("1 of 2 hosts running; host4: ImageServing is not installed there"),
        "{}",
        missing.stderr
    );

    // A host name that tries to inject a command never reaches ssh.
    let marker = fleet.dir.join("pwned");
    let inject = format!("host1;touch {}", marker.display());
    fleet
        .run(&["--host", &inject, "status"])
        .code(2)
        .stderr_one_line()
        .stderr_has("not a valid host name");
    fleet
        .run(&["--host", "-oProxyCommand=touch /tmp/x", "status"])
        .code(2);
    assert!(!marker.exists());

    // Logs of several hosts: a block per distinct answer, headed by the hosts that gave it
    // (the supervisor's own messages carry no PID or host name with -o cat); every host
    // named once.
    let logs = fleet
        .run(&[
            "--host",
            "host1,host2,host3",
            "logs",
            "supervisor",
            "-n",
            "2",
            "-o",
            "cat",
        ])
        .code(0);
    let headers: Vec<&str> = logs
        .stdout
        .lines()
        .filter(|l| l.starts_with("host"))
        .collect();
    let named: Vec<&str> = headers
        .iter()
        .flat_map(|h| h.split(' ').next().unwrap_or_default().split(','))
        .collect();
    assert_eq!(named.len(), 3, "{}", logs.stdout);
    for h in ["host1", "host2", "host3"] {
        assert!(named.contains(&h), "{h} missing:\n{}", logs.stdout);
    }
    assert!(
        logs.stdout.lines().count() > 2 * headers.len() + 2,
        "{}",
        logs.stdout
    );
    assert_eq!(logs.stderr.trim(), "3 of 3 hosts answered");

    // A host powered off: reported as unreachable, the others fine; exit 4 (unknown).
    fleet.hosts[2].power_off();
    let off = fleet
        .run(&["--host", "host1,host2,host3", "status"])
        .code(4);
    assert_eq!(rows_of(&off.stdout, "host1").len(), 3);
    assert_eq!(rows_of(&off.stdout, "host2").len(), 3);
    assert!(
        off.stderr
            .starts_with("2 of 3 hosts running; host3: unreachable ("),
        "{}",
        off.stderr
    );
}

#[test]
fn a_rolling_restart_keeps_all_but_one_host_serving() {
    let fleet = Fleet::boot(3, 0);
    let clients: Vec<Client> = fleet.hosts.iter().map(Client::start).collect();
    std::thread::sleep(Duration::from_secs(1));
    let pids: Vec<String> = fleet
        .hosts
        .iter()
        .map(|m| m.prop("imageserving-platform.service", "MainPID"))
        .collect();
    let r = fleet
        .run(&["--host", "host1,host2,host3", "restart", "--serial", "1"])
        .code(0);
    assert_eq!(r.stderr.trim(), "3 of 3 hosts restarted", "{}", r.stdout);
    std::thread::sleep(Duration::from_secs(1));
    // Every host was restarted...
    for (m, before) in fleet.hosts.iter().zip(&pids) {
        assert_ne!(&m.prop("imageserving-platform.service", "MainPID"), before);
    }
    // ...and at no moment were two hosts down.
    never_two_down(clients);
    // All serve at the end.
    fleet
        .run(&["--host", "host1,host2,host3", "status"])
        .code(0);
}

/// A rolling restart meeting a local `stop` on the host it is restarting (two operators, one
/// on the fleet, one on the host): the local stop wins there, that host's restart exits 1
/// saying another command stopped it, and the rolling restart stops at that batch (exit 1),
/// naming the host it did not restart, which it leaves untouched.
#[test]
fn a_rolling_restart_stops_at_a_host_stopped_under_it() {
    let fleet = Fleet::boot(2, 0);
    // host1's Platform Server answers 4 s after it starts: room for the local stop.
    fleet.hosts[0]
        .sh("sed -i 's|--term-exit=143|--term-exit=143 --start-delay 4|' /usr/local/scene7/ImageServing/bin/PlatformServer && grep -q start-delay /usr/local/scene7/ImageServing/bin/PlatformServer")
        .code(0);
    let host2_ps = fleet.hosts[1].prop("imageserving-platform.service", "MainPID");
    let dir = fleet.dir.clone();
    let rolling = std::thread::spawn(move || {
        run_fleet(
            &dir,
            &["--host", "host1,host2", "restart", "--serial", "1"],
            Duration::from_secs(300),
        )
    });
    // Once host1's restart has begun (its supervisor replaced), its operator stops it.
    let old = fleet.hosts[0].prop("imageserving-supervisor.service", "MainPID");
    fleet.hosts[0].eventually(Duration::from_secs(30), "host1's restart begun", || {
        fleet.hosts[0].prop("imageserving-platform.service", "ActiveState") == "active"
            && fleet.hosts[0].prop("imageserving-supervisor.service", "MainPID") != old
    });
    fleet.hosts[0]
        .sh_timeout("ImageServing stop", Duration::from_secs(60))
        .code(0);
    let r = rolling.join().expect("the rolling restart");
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("another command stopped it")
            || r.stderr.contains("another command stopped it"),
        "host1's failure does not say why:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.contains("not restarted: host2"),
        "the hosts left alone are not named:\n{}",
        r.stderr
    );
    // host1 stays stopped (the later word); host2 was not touched.
    for unit in [
        "imageserving.target",
        "imageserving-supervisor.service",
        "imageserving-platform.service",
    ] {
        assert_eq!(
            fleet.hosts[0].prop(unit, "ActiveState"),
            "inactive",
            "host1 {unit}"
        );
    }
    assert_eq!(
        fleet.hosts[1].prop("imageserving-platform.service", "MainPID"),
        host2_ps,
        "host2 was restarted after the failed batch"
    );
}

/// sshd's `MaxStartups` (here: no second unauthenticated connection at all) drops
/// connections that start together; the fleet command retries each once and reports what is
/// still dropped as such, with what to do, never as an unreachable host.
#[test]
fn connections_sshd_drops_at_max_startups_are_retried_then_reported() {
    let fleet = Fleet::boot_with(1, 0, "-o MaxStartups=1:100:1");
    fleet.aliases(16);
    std::fs::copy(fleet.dir.join("config-plain"), fleet.dir.join("config")).expect("config");
    let hosts: Vec<String> = (1..=16).map(|i| format!("host{i}")).collect();
    let r = fleet.run(&["--host", &hosts.join(","), "--parallel", "16", "status"]);
    let mut refused = 0;
    for h in &hosts {
        let rows = rows_of(&r.stdout, h);
        if rows.len() == 3 && rows.iter().all(|l| l.contains("active (running)")) {
            continue;
        }
        assert!(
            rows.iter()
                .any(|l| l.contains("closed before the key exchange, twice")),
            "{h} neither answered nor was reported as refused:\n{}",
            r.stdout
        );
        refused += 1;
    }
    assert!(
        refused > 0,
        "sshd dropped nothing: is MaxStartups in force?\n{}",
        r.stdout
    );
    assert!(refused < hosts.len(), "no retry got through:\n{}", r.stdout);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("MaxStartups"), "{}", r.stderr);
}

/// The probing clients' outages (one client per host): at least one host was down at some
/// point (something was restarted), and the outages of different hosts never overlap.
pub(super) fn never_two_down(clients: Vec<Client>) {
    let outages: Vec<Vec<[u64; 2]>> = clients
        .into_iter()
        .map(|c| {
            let mut all = Vec::new();
            for target in c.finish() {
                for o in target["outages"].as_array().cloned().unwrap_or_default() {
                    all.push([o[0].as_u64().unwrap_or(0), o[1].as_u64().unwrap_or(0)]);
                }
            }
            all
        })
        .collect();
    assert!(
        outages.iter().any(|o| !o.is_empty()),
        "no host was ever down: was anything restarted?"
    );
    for (i, a) in outages.iter().enumerate() {
        for (j, b) in outages.iter().enumerate().skip(i + 1) {
            for x in a {
                for y in b {
                    assert!(
                        x[1] <= y[0] || y[1] <= x[0],
                        "host{} down {x:?} while host{} down {y:?}",
                        i + 1,
                        j + 1
                    );
                }
            }
        }
    }
}

/// The same fleet `status` run by the tools operators use today, on the same hosts, with the
/// same ssh configuration (`-F`, the warm ControlMaster connections of the `reuse` rows), the
/// same fan-out (32) and the same remote command, interleaved run by run; then ours against
/// the fastest of them (target ≤ 0.85×) and the Ansible module against Ansible's own
/// `command` module doing the same work (target ≤ 1×).
fn peers(fleet: &Fleet, runs: usize) {
    let dir = &fleet.dir;
    let config = dir.join("config");
    let remote = "ImageServing --system --no-ask-password status --json";
    let collections = dir.join("collections");
    let galaxy = |args: &[&str]| {
        let out = run_with_timeout(
            std::process::Command::new("ansible-galaxy").args(args),
            Duration::from_secs(120),
        );
        assert!(out.status.success(), "ansible-galaxy {args:?}");
    };
    let source = format!(
        "{}/contrib/ansible/imageserving/stack",
        env!("CARGO_MANIFEST_DIR")
    );
    let out_dir = dir.display().to_string();
    galaxy(&[
        "collection",
        "build",
        "--force",
        "--output-path",
        &out_dir,
        &source,
    ]);
    galaxy(&[
        "collection",
        "install",
        "--force",
        "-p",
        &collections.display().to_string(),
        &format!("{out_dir}/imageserving-stack-0.1.0.tar.gz"),
    ]);
    let ansible = |n: usize, module: &str, args: &str| {
        let mut c = std::process::Command::new("ansible");
        c.args(["all", "-i", &format!("{}/inventory-{n}", dir.display())])
            .args(["-f", "32", "-m", module, "-a", args])
            .env("ANSIBLE_SSH_ARGS", format!("-F {}", config.display()))
            .env("ANSIBLE_COLLECTIONS_PATH", &collections)
            .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
            .env("ANSIBLE_HOME", dir.join("ansible-home"))
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .env("ANSIBLE_NOCOLOR", "1");
        c
    };
    type Tool<'a> = (&'a str, Box<dyn Fn(usize) -> std::process::Command + 'a>);
    let tools: Vec<Tool> = vec![
        (
            "ImageServing --host",
            Box::new(|n| {
                let list: Vec<String> = (1..=n).map(|i| format!("host{i}")).collect();
                let mut c = std::process::Command::new(crate::harness::IMAGESERVING);
                c.args(["--host", &list.join(","), "--parallel", "32", "status"])
                    .env("IMAGESERVING_SSH_CONFIG", &config);
                c
            }),
        ),
        (
            "pdsh -R ssh",
            Box::new(|n| {
                let mut c = std::process::Command::new("pdsh");
                c.args([
                    "-R",
                    "ssh",
                    "-f",
                    "32",
                    "-w",
                    &format!("host[1-{n}]"),
                    remote,
                ])
                .env(
                    "PDSH_SSH_ARGS",
                    format!("-F {} -o BatchMode=yes %h", config.display()),
                );
                c
            }),
        ),
        (
            "clush",
            Box::new(|n| {
                let mut c = std::process::Command::new("clush");
                c.args(["-f", "32", "-w", &format!("host[1-{n}]")]).args([
                    "-o",
                    &format!("-F {}", config.display()),
                    remote,
                ]);
                c
            }),
        ),
        (
            "parallel-ssh",
            Box::new(|n| {
                let list: Vec<String> = (1..=n).map(|i| format!("host{i}")).collect();
                let mut c = std::process::Command::new("parallel-ssh");
                c.args(["-p", "32", "-i", "-H", &list.join(" ")]).args([
                    "-x",
                    &format!("-F {}", config.display()),
                    remote,
                ]);
                c
            }),
        ),
        ("ansible -m raw", Box::new(|n| ansible(n, "raw", remote))),
        (
            "ansible -m command",
            Box::new(|n| ansible(n, "command", remote)),
        ),
        (
            "ansible -m imageserving.stack.imageserving",
            Box::new(|n| ansible(n, "imageserving.stack.imageserving", "state=started")),
        ),
    ];
    let time = |cmd: &mut std::process::Command, what: &str| {
        let t = std::time::Instant::now();
        let out = run_with_timeout(cmd, Duration::from_secs(300));
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (ms, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for n in [1usize, 10, 50] {
        let inventory: String = (1..=n).map(|i| format!("host{i}\n")).collect();
        std::fs::write(dir.join(format!("inventory-{n}")), inventory).expect("inventory");
        // Warm-up, and proof that each tool ran the command on every host.
        for (name, make) in &tools {
            let (_, out) = time(&mut make(n), name);
            let answers = out.matches("active").count();
            assert!(
                answers >= n,
                "{name} at {n} hosts: {answers} answers\n{out}"
            );
        }
        let mut ms: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
        for _ in 0..runs {
            for (i, (name, make)) in tools.iter().enumerate() {
                ms[i].push(time(&mut make(n), name).0);
            }
        }
        let medians: Vec<f64> = ms
            .iter_mut()
            .map(|v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect();
        let ours = medians[0];
        for ((name, _), m) in tools.iter().zip(&medians) {
            rows.push(format!("| {n} | {name} | {m:.1} ms | {:.2}× |", ours / m));
        }
        // The peers: every tool but ours and our Ansible module.
        let (fastest, best) = tools[1..tools.len() - 1]
            .iter()
            .zip(&medians[1..medians.len() - 1])
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|((name, _), m)| (*name, *m))
            .expect("peers");
        verdicts.push(format!(
            "{n} hosts: ours {ours:.1} ms / fastest peer ({fastest}) {best:.1} ms = {:.2}× (target ≤ 0.85×: {})",
            ours / best,
            if ours / best <= 0.85 { "met" } else { "NOT met" }
        ));
        let module = medians[tools.len() - 1];
        let command = medians[tools.len() - 2];
        verdicts.push(format!(
            "{n} hosts: the Ansible module {module:.0} ms / ansible -m command {command:.0} ms = {:.2}× (target ≤ 1×: {})",
            module / command,
            if module <= command { "met" } else { "NOT met" }
        ));
    }
    println!(
        "\nfleet status against its peers (same hosts, ssh config, warm masters, fan-out 32, remote command; median of {runs}, interleaved)\n\n| hosts | tool | median | ours / this |\n|---|---|---|---|"
    );
    for r in rows {
        println!("{r}");
    }
    println!();
    for v in verdicts {
        println!("{v}");
    }
}

/// CPU time all this machine's CPUs have been busy, in clock ticks (10 ms), from the
/// first line of /proc/stat: user, nice, system, irq, softirq and steal.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let f: Vec<u64> = stat
        .lines()
        .next()
        .expect("cpu line")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().expect("tick count"))
        .collect();
    f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
}

fn write_hosts(dir: &Path, text: &str) -> String {
    let path = dir.join("hosts");
    std::fs::write(&path, text).expect("hosts file");
    path.display().to_string()
}

/// The fleet benchmark (run by scripts/bench.sh): `status` over 1, 10 and 50 hosts, with
/// and without ssh connection reuse (ControlMaster). The hosts are lightweight: 50 ssh
/// aliases of one booted box, each its own connection (and its own master). They share this
/// machine's CPUs with the operator's side, so each row also gives the CPU time both sides
/// spent per host and the floor that sets: no run can be faster than all that CPU time
/// spread over every CPU.
#[test]
#[ignore = "benchmark: run scripts/bench.sh"]
fn fleet_benchmark() {
    // Lightweight hosts: without PAM, an ssh session opens no logind session (which all 50
    // "hosts" would otherwise do on the same two cores). Each alias gets its own master
    // (ControlPath by alias, %n: %C hashes the HostName, which all aliases share here).
    let mut fleet = Fleet::boot_with(1, 0, "-o UsePAM=no");
    fleet.aliases(50);
    let runs = env_or("BENCH_FLEET_RUNS", 10);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut table = Vec::new();
    let mut one_host = [0.0f64; 2];
    for (mode_i, mode) in ["plain", "reuse"].iter().enumerate() {
        std::fs::copy(
            fleet.dir.join(format!("config-{mode}")),
            fleet.dir.join("config"),
        )
        .expect("config");
        for n in [1usize, 10, 50] {
            let hosts: Vec<String> = (1..=n).map(|i| format!("host{i}")).collect();
            let list = hosts.join(",");
            let parallel = n.to_string();
            let args = ["--host", &list, "--parallel", &parallel, "status"];
            fleet.run(&args).code(0); // warm-up (and the masters, with reuse)
            let busy = machine_busy_ticks();
            let host_usec = fleet.hosts[0].cpu_usec();
            let mut ms = Vec::new();
            for _ in 0..runs {
                let t = std::time::Instant::now();
                fleet.run(&args).code(0);
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            let median = ms[ms.len() / 2];
            let per_host = (runs * n) as f64;
            let all_ms = (machine_busy_ticks() - busy) as f64 * 10.0 / per_host;
            let host_ms = (fleet.hosts[0].cpu_usec() - host_usec) as f64 / 1e3 / per_host;
            // The operator's side: ImageServing, the ssh clients, the masters and their
            // ProxyCommands (the masters are no children of ours, so count the machine).
            let operator_ms = all_ms - host_ms;
            // All the "hosts" share this machine's CPUs: no run can take less than the CPU
            // time it needs on both sides divided by the CPUs there are.
            let floor = (operator_ms + host_ms) * n as f64 / cpus;
            if n == 1 {
                one_host[mode_i] = median;
            }
            table.push(format!(
                "| status, {n} hosts, {mode} | {median:.0} ms | {:.2}× | {operator_ms:.1} ms | {host_ms:.1} ms | {floor:.0} ms ({:.2}×) |",
                median / one_host[mode_i],
                median / floor
            ));
        }
        if *mode == "reuse" {
            peers(&fleet, runs);
            for i in 1..=50 {
                let _ = run_with_timeout(
                    std::process::Command::new("ssh")
                        .args(["-F"])
                        .arg(fleet.dir.join("config"))
                        .args(["-O", "exit", &format!("host{i}")]),
                    Duration::from_secs(10),
                );
            }
        }
    }
    println!(
        "\n| figure | median | vs 1 host | operator's CPU per host | host's CPU per host | CPU floor on {cpus} CPUs (median / floor) |\n|---|---|---|---|---|---|"
    );
    for row in table {
        println!("{row}");
    }
    println!("target: 50 hosts with reuse ≤ 3× one host");
    fleet.hosts[0].power_off();
}
