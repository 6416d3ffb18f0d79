//! [`Machine`]: one booted container, and the commands that run inside it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{host_hierarchies, run_with_timeout, Run, STANDIN};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Where the booted OS finds what the tests bring in (read-only).
pub const IN: &str = "/mnt/in";

/// The host image's units that have no business in a test box (and would slow its boot);
/// [`masked_units`] adds whatever else the image has enabled.
const MASKED: [&str; 11] = [
    "postgresql.service",
    "prometheus.service",
    "getty@tty1.service",
    "console-getty.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    "dpkg-db-backup.timer",
    "ssh.service",
];

/// What a box keeps of the image's enabled units: the boot itself needs these.
const KEPT: [&str; 4] = ["dbus", "systemd-", "remote-fs.target", "machines.target"];

/// Every unit the image under `root` enables for the boot (links under
/// `/etc/systemd/system/*.wants`, as a package or an administrator made them: a Tomcat on
/// 8080, a Prometheus on 9090, a PostgreSQL), with [`MASKED`]: a box holds only what its test
/// starts.
fn masked_units(root: &Path) -> Vec<String> {
    let mut units: Vec<String> = MASKED.iter().map(|u| (*u).to_owned()).collect();
    let Ok(dirs) = std::fs::read_dir(root.join("etc/systemd/system")) else {
        return units;
    };
    for dir in dirs.flatten() {
        if !dir.file_name().to_string_lossy().ends_with(".wants") {
            continue;
        }
        for link in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = link.file_name().to_string_lossy().into_owned();
            if !KEPT.iter().any(|k| name.starts_with(k)) && !units.contains(&name) {
                units.push(name);
            }
        }
    }
    units
}

/// What a box boots: the OS image and the cgroup layout its systemd sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// This machine's own root (Debian 12, systemd 252), with cgroup v1 controllers plus the
    /// unified hierarchy at `/sys/fs/cgroup/unified` (what these machines boot).
    Hybrid,
    /// This machine's own root, with one cgroup2 mount at `/sys/fs/cgroup` (what Debian 12,
    /// Fedora and Ubuntu boot).
    Unified,
    /// Debian 13 (systemd 257, polkit 126), the current stable, from the root that
    /// `scripts/debian13-root.sh` makes; pure cgroup v2 (systemd 257 boots nothing else).
    Debian13,
}

impl Layout {
    /// The root file system the box is an overlay of.
    fn root(self) -> PathBuf {
        match self {
            Layout::Hybrid | Layout::Unified => PathBuf::from("/"),
            Layout::Debian13 => {
                let dir = std::env::var_os("IMAGESERVING_DEBIAN13_ROOT").map_or_else(
                    || PathBuf::from("/var/cache/imageserving-tests/debian13"),
                    PathBuf::from,
                );
                assert!(
                    dir.join(".complete").exists(),
                    "no Debian 13 root at {}: make it with scripts/debian13-root.sh (scripts/test.sh does)",
                    dir.display()
                );
                dir
            }
        }
    }
}

/// A booted container. Dropping it powers it off, kills whatever is left in its cgroup and
/// removes the cgroup and the work directory.
pub struct Machine {
    pub layout: Layout,
    pub name: String,
    dir: PathBuf,
    cgroups: Vec<PathBuf>,
    nspawn: Option<Child>,
    pid1: u32,
}

fn nspawn_binary() -> &'static str {
    for p in ["/usr/bin/systemd-nspawn", "/bin/systemd-nspawn"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!(
        "systemd-nspawn is not installed: the booted-system tests need it (apt-get install systemd-container)"
    );
}

impl Machine {
    /// Boot a machine with `files` (host path, name) readable inside under [`IN`]. The
    /// project's tree (with its build outputs) is readable inside at its own path.
    pub fn boot(layout: Layout, files: &[(PathBuf, &str)]) -> Machine {
        Machine::boot_unmasking(layout, files, &[])
    }

    /// [`Machine::boot`], leaving `unmasked` of the image's enabled units as the image has
    /// them (a test that needs the image's Cockpit, say).
    pub fn boot_unmasking(layout: Layout, files: &[(PathBuf, &str)], unmasked: &[&str]) -> Machine {
        let nspawn = nspawn_binary();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("isbox-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["lower", "tmp", "root", "in"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir machine dir");
        }
        for (from, to) in files {
            std::fs::copy(from, dir.join("in").join(to))
                .unwrap_or_else(|e| panic!("bring {} into the machine: {e}", from.display()));
        }
        std::fs::copy(STANDIN, dir.join("in/imageserving-standin")).expect("copy the stand-in");

        // `--system-call-filter=bpf`: nspawn's seccomp filter refuses bpf(2) otherwise, and
        // with it the IP access lists of units (IPAddressAllow=), which the tests check.
        // The overlay: / bound non-recursively (no submounts) and read-only as the lower
        // layer, a tmpfs for the upper one; all in the private mount namespace `unshare`
        // made, so it is gone when the last process in it is. nspawn's own state on the host
        // (/run/systemd/nspawn) goes to a tmpfs of that namespace too.
        let root = layout.root();
        let masks: String = masked_units(&root)
            .into_iter()
            .filter(|u| !unmasked.contains(&u.as_str()))
            .map(|u| format!(" systemd.mask={u}"))
            .collect();
        let d = dir.display();
        let script = format!(
            "set -e\n\
             mount --bind {root} {d}/lower\n\
             mount -o remount,bind,ro {d}/lower\n\
             mount -t tmpfs -o size=2G,mode=0755 tmpfs {d}/tmp\n\
             mkdir {d}/tmp/upper {d}/tmp/work\n\
             mount -t overlay overlay -o lowerdir={d}/lower,upperdir={d}/tmp/upper,workdir={d}/tmp/work {d}/root\n\
             mkdir -p /run/systemd/nspawn\n\
             mount -t tmpfs -o size=1M,mode=0755 tmpfs /run/systemd/nspawn\n\
             exec {nspawn} -q -D {d}/root --register=no --keep-unit --private-network -M {name} \
             --system-call-filter=bpf \
             --console=read-only --bind-ro={d}/in:{IN} --bind-ro={tree} -b{masks}\n",
            tree = env!("CARGO_MANIFEST_DIR"),
            root = root.display()
        );
        std::fs::write(dir.join("boot.sh"), script).expect("write boot.sh");

        let cgroups: Vec<PathBuf> =
            host_hierarchies(&["systemd", "memory", "pids", "cpu", "cpuacct"])
                .iter()
                .map(|h| h.join(&name))
                .collect();
        for cg in &cgroups {
            std::fs::create_dir(cg).unwrap_or_else(|e| {
                panic!(
                    "create cgroup {}: {e} (the booted-system tests must run as root)",
                    cg.display()
                )
            });
        }
        // The shell joins the cgroups with its own PID, then becomes `timeout`, which runs
        // unshare, which becomes nspawn: nspawn and the container start inside them.
        let join: String = cgroups
            .iter()
            .map(|cg| format!("echo $$ > {}/cgroup.procs && ", cg.display()))
            .collect();
        let log = std::fs::File::create(dir.join("console.log")).expect("console log");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "{join}exec timeout -s KILL 1200 unshare -m --propagation private sh {d}/boot.sh"
            ))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        // Unset, nspawn gives the container the host's layout (hybrid here); "0" would mean
        // the legacy v1-only layout, which no current host boots.
        if layout != Layout::Hybrid {
            cmd.env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn systemd-nspawn");
        let mut m = Machine {
            layout,
            name,
            dir,
            cgroups,
            pid1: 0,
            nspawn: Some(child),
        };
        m.pid1 = m.find_pid1();
        m.wait_booted();
        m.check_layout();
        // A real host has no policy-rc.d (the image's one refuses every service action in
        // maintainer scripts), and has never seen the package.
        m.sh("rm -f /usr/sbin/policy-rc.d; userdel imageserving 2>/dev/null; groupdel imageserving 2>/dev/null; true")
            .code(0);
        m
    }

    /// The container's PID 1 (as the host sees it): the process named `systemd` whose
    /// ancestors include the process we started.
    fn find_pid1(&mut self) -> u32 {
        let top = self.nspawn.as_ref().expect("nspawn").id();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(pid) = descendants_named(top, "systemd").first() {
                return *pid;
            }
            if let Some(child) = self.nspawn.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "systemd-nspawn exited ({status}) before the container's systemd ran: {}",
                        self.console()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no systemd inside the container after 20 s: {}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_booted(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = run_with_timeout(
                self.nsenter().args(["systemctl", "is-system-running"]),
                Duration::from_secs(20),
            );
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if state == "running" || state == "degraded" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the container did not finish booting in 60 s (state {state:?}): {}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The layout asked for is the layout booted: a test of the v2 layout that ran on the
    /// hybrid one would prove nothing.
    fn check_layout(&self) {
        let fs = self
            .sh("stat -f -c %T /sys/fs/cgroup; stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null; true")
            .code(0)
            .stdout;
        let expected = match self.layout {
            Layout::Unified | Layout::Debian13 => "cgroup2fs",
            Layout::Hybrid => "tmpfs\ncgroup2fs",
        };
        assert_eq!(
            fs.trim(),
            expected,
            "{:?} box: the file systems of /sys/fs/cgroup and /sys/fs/cgroup/unified",
            self.layout
        );
    }

    /// CPU time used by everything in the box so far, in microseconds (`usage_usec` of its
    /// cgroup in the unified hierarchy, which counts CPU time with or without controllers).
    pub fn cpu_usec(&self) -> u64 {
        let path = self.cgroups[0].join("cpu.stat");
        let stat = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no usage_usec in {}", path.display()))
    }

    fn console(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "last console lines:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }

    fn nsenter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid1.to_string(), "-a", "--"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", "/root");
        cmd
    }

    /// Run a shell script inside, as root, with a hard timeout of 120 s.
    #[track_caller]
    pub fn sh(&self, script: &str) -> Run {
        self.sh_timeout(script, Duration::from_secs(120))
    }

    #[track_caller]
    pub fn sh_timeout(&self, script: &str, timeout: Duration) -> Run {
        let out = run_with_timeout(self.nsenter().args(["sh", "-c", script]), timeout);
        Run::from(out, format!("[{}] {script}", self.name))
    }

    /// Run a bash script inside, as root (for bash's `/dev/tcp`), with a hard timeout.
    #[track_caller]
    pub fn bash(&self, script: &str, timeout: Duration) -> Run {
        let out = run_with_timeout(self.nsenter().args(["bash", "-c", script]), timeout);
        Run::from(out, format!("[{}] bash: {script}", self.name))
    }

    /// Run a shell script inside as `user` (its own UID, GID and groups only).
    #[track_caller]
    pub fn sh_as(&self, user: &str, script: &str) -> Run {
        let out = run_with_timeout(
            self.nsenter().args([
                "setpriv",
                &format!("--reuid={user}"),
                &format!("--regid={user}"),
                "--init-groups",
                "--reset-env",
                "sh",
                "-c",
                script,
            ]),
            Duration::from_secs(120),
        );
        Run::from(out, format!("[{} as {user}] {script}", self.name))
    }

    /// Power the box off now (as a host that goes down), and wait until it is gone.
    pub fn power_off(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "RTMIN+4", &self.pid1.to_string()])
            .stderr(Stdio::null())
            .status();
        if let Some(child) = self.nspawn.as_mut() {
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The container's PID 1 as the host sees it.
    pub fn pid1(&self) -> u32 {
        self.pid1
    }

    /// Start a long-running command inside the container's network namespace only, from the
    /// host's file system (a client of the container's loopback). It is killed on drop of
    /// the returned child, and by its own `timeout`.
    pub fn spawn_in_network(&self, program: &str, args: &[&str]) -> Child {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-n", "--"])
            .args(["timeout", "-s", "KILL", "600", program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a command in the container's network")
    }

    /// PIDs (as the box sees them) of every process in the cgroup of the system `unit`,
    /// read from the container's own view of its cgroups. Panics when the container's cgroup
    /// tree cannot be found, so that an empty answer always means "no process". (A unit's
    /// cgroup may vanish while it is read: its processes are gone then.)
    pub fn unit_pids(&self, unit: &str) -> Vec<u32> {
        self.cgroup_pids(&format!("system.slice/{unit}"))
    }

    /// The same for a unit of `user`'s manager.
    pub fn user_unit_pids(&self, user: &str, unit: &str) -> Vec<u32> {
        let uid = self
            .sh(&format!("id -u {user}"))
            .code(0)
            .stdout
            .trim()
            .to_owned();
        self.cgroup_pids(&format!(
            "user.slice/user-{uid}.slice/user@{uid}.service/app.slice/{unit}"
        ))
    }

    fn cgroup_pids(&self, sub: &str) -> Vec<u32> {
        let out = self
            .sh(&format!(
                "base=/sys/fs/cgroup; [ -e $base/cgroup.controllers ] || base=/sys/fs/cgroup/unified; \
                 [ -e $base/init.scope ] || [ -e $base/system.slice ] || {{ echo \"no cgroup tree at $base\" >&2; exit 9; }}; \
                 d=$base/{sub}; [ -d $d ] || exit 0; \
                 find $d -name cgroup.procs -exec cat {{}} + 2>/dev/null; true"
            ))
            .code(0)
            .stdout;
        out.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Every process of the stack's units inside the box.
    pub fn stack_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for unit in imageserving::component::stack_units() {
            pids.extend(self.unit_pids(unit));
        }
        pids
    }

    /// `systemctl show -p PROP --value UNIT` inside.
    #[track_caller]
    pub fn prop(&self, unit: &str, prop: &str) -> String {
        self.sh(&format!("systemctl show -p {prop} --value {unit}"))
            .code(0)
            .stdout
            .trim()
            .to_owned()
    }

    /// The main PID of a unit (0 when it has none).
    #[track_caller]
    pub fn main_pid(&self, unit: &str) -> u32 {
        self.prop(unit, "MainPID").parse().unwrap_or(0)
    }

    /// Poll `cond` every 100 ms until it holds; fail if `limit` passes first.
    #[track_caller]
    pub fn eventually(&self, limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "[{}] not within {limit:?}: {what}\n{}",
                self.name,
                self.sh("systemctl list-units 'imageserving*' --all --no-pager; journalctl -n 40 --no-pager -u 'imageserving*'").stdout
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Processes named `comm` below `top` in the process tree.
fn descendants_named(top: u32, comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm) {
            let mut p = pid;
            for _ in 0..64 {
                match parent_of(p) {
                    Some(pp) if pp == top => {
                        found.push(pid);
                        break;
                    }
                    Some(pp) if pp > 1 => p = pp,
                    _ => break,
                }
            }
        }
    }
    found
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fourth field, after the parenthesised command name (which may hold spaces).
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Power off (SIGRTMIN+4 to the container's systemd), then make sure.
        if self.pid1 != 0 {
            self.power_off();
        }
        if let Some(mut child) = self.nspawn.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for cg in &self.cgroups {
            let deadline = Instant::now() + Duration::from_secs(10);
            while cg.exists() && Instant::now() < deadline {
                let _ = std::fs::write(cg.join("cgroup.kill"), "1");
                crate::harness::remove_cgroup_tree(cg);
                if cg.exists() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if cg.exists() {
                eprintln!("cgroup {} could not be removed", cg.display());
            }
        }
        if std::thread::panicking() {
            eprintln!("[{}] {}", self.name, self.console());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
