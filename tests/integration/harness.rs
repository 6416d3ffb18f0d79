//! A private `systemd --user` manager per test, with its own cgroup, runtime directory, session
//! bus and units installed by `packaging/install.sh --user`; the components run stand-ins.
//!
//! Several sandboxes run at once without seeing each other: each has its own cgroup subtree,
//! bus, unit directories and ports. Everything a sandbox started is killed when it drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use imageserving::component::Component;
use imageserving::systemd::{Manager, Scope, ServiceState, DEFAULT_CALL_TIMEOUT};

pub const IMAGESERVING: &str = env!("CARGO_BIN_EXE_ImageServing");
pub const STANDIN: &str = env!("CARGO_BIN_EXE_imageserving-standin");

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The unified (cgroup v2) hierarchy, wherever the host mounts it: `/sys/fs/cgroup` on a pure
/// v2 host, `/sys/fs/cgroup/unified` on a hybrid one. Panics when there is none, so that no
/// test reads "no process" from a directory that does not exist.
pub fn unified_hierarchy() -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return root.to_path_buf();
    }
    let unified = root.join("unified");
    assert!(
        unified.join("cgroup.controllers").exists(),
        "no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified: the tests cannot see processes"
    );
    unified
}

/// The host's hierarchies a private manager or container gets a subtree in: the unified one
/// and, on a hybrid host, those of the v1 `controllers` that exist.
pub fn host_hierarchies(controllers: &[&str]) -> Vec<PathBuf> {
    let unified = unified_hierarchy();
    let root = Path::new("/sys/fs/cgroup");
    let mut all = vec![unified.clone()];
    if unified != root {
        all.extend(
            controllers
                .iter()
                .map(|c| root.join(c))
                .filter(|p| p.exists()),
        );
    }
    all
}

fn systemd_binary() -> PathBuf {
    for p in ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("systemd is not installed (no /lib/systemd/systemd): the integration tests need a real systemd");
}

/// Options for a sandbox's stand-ins.
#[derive(Clone, Default)]
pub struct Options {
    /// Extra stand-in arguments per component.
    pub args: Vec<(Component, String)>,
    /// Extra `[Service]` lines per component drop-in.
    pub service: Vec<(Component, String)>,
    /// Do not install the units at all.
    pub no_units: bool,
    /// Extra lines for the supervisor's drop-in `[Service]` section.
    pub supervisor: Vec<String>,
    /// The manager's hard time limit (it is killed after it): 900 s unless a test (the soak)
    /// needs longer.
    pub lifetime: Option<Duration>,
}

impl Options {
    pub fn arg(mut self, c: Component, a: &str) -> Self {
        self.args.push((c, a.to_owned()));
        self
    }
    pub fn service(mut self, c: Component, line: &str) -> Self {
        self.service.push((c, line.to_owned()));
        self
    }
    pub fn supervisor(mut self, line: &str) -> Self {
        self.supervisor.push(line.to_owned());
        self
    }
    pub fn lifetime(mut self, limit: Duration) -> Self {
        self.lifetime = Some(limit);
        self
    }
}

pub struct Sandbox {
    pub root: PathBuf,
    pub cgroup: String,
    pub ports: [u16; 3],
    manager: Option<Child>,
    pub bus: String,
    /// The manager's hard time limit ([`Options::lifetime`]).
    lifetime: Duration,
}

/// A port no other sandbox of this run hands out: a per-process range walked by a counter,
/// skipping ports something else holds. (Ephemeral ports from bind(0) can be handed out again
/// to a parallel test as soon as they are released.) The range stays below the kernel's
/// ephemeral range (32768 and up): a probe's outgoing connection takes its source port from
/// there, and its TIME_WAIT would make a stand-in's later bind fail with EADDRINUSE for a
/// minute.
fn free_port() -> u16 {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 440) * 50;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(LOW + (offset + n) % SPAN).expect("port in range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::with(Options::default())
    }

    pub fn with(opts: Options) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("imageserving-test-{}-{n}", std::process::id());
        let root = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&root);
        for d in [
            "rt",
            "home",
            "config/systemd/user",
            "data/systemd/user",
            "harness",
        ] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir sandbox");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("rt"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod rt");
        let ports = [free_port(), free_port(), free_port()];
        let sb = Sandbox {
            bus: format!("unix:path={}/rt/bus", root.display()),
            root,
            cgroup: name,
            ports,
            manager: None,
            lifetime: opts.lifetime.unwrap_or(Duration::from_secs(900)),
        };
        sb.write_harness_units();
        write(
            &sb.root.join("config/systemd/user.conf"),
            "[Manager]\nDefaultTimeoutStopSec=5s\n",
        );
        if !opts.no_units {
            sb.install();
            sb.write_standin_dropins(&opts);
        }
        let mut sb = sb;
        sb.boot();
        sb
    }

    fn write_harness_units(&self) {
        let h = self.root.join("harness");
        write(
            &h.join("imageserving-test.target"),
            "[Unit]\nDescription=test harness\nWants=dbus.socket\n",
        );
        write(
            &h.join("dbus.socket"),
            "[Unit]\nDescription=D-Bus session bus socket\n[Socket]\nListenStream=%t/bus\n",
        );
        write(
            &h.join("dbus.service"),
            "[Unit]\nDescription=D-Bus session bus\nRequires=dbus.socket\n[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/dbus-daemon --session --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n",
        );
        for t in [
            "basic.target",
            "sockets.target",
            "shutdown.target",
            "default.target",
            "exit.target",
        ] {
            write(&h.join(t), &format!("[Unit]\nDescription={t}\n"));
        }
    }

    /// The environment every process of this sandbox runs with.
    pub fn env(&self) -> Vec<(String, String)> {
        let r = |p: &str| self.root.join(p).display().to_string();
        vec![
            (
                "PATH".into(),
                "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
            ),
            ("HOME".into(), r("home")),
            ("XDG_RUNTIME_DIR".into(), r("rt")),
            ("XDG_CONFIG_HOME".into(), r("config")),
            ("XDG_DATA_HOME".into(), r("data")),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus.clone()),
            ("LANG".into(), "C.UTF-8".into()),
        ]
    }

    pub fn install(&self) {
        let bin_dir = Path::new(IMAGESERVING).parent().expect("bin dir");
        let out = run_with_timeout(
            Command::new("sh")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/install.sh"))
                .args(["--user", "--no-reload", "--from"])
                .arg(bin_dir)
                .env_clear()
                .envs(self.env()),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "install.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn port(&self, c: Component) -> u16 {
        self.ports[Component::ALL
            .iter()
            .position(|x| *x == c)
            .expect("component")]
    }

    /// Drop-ins that point each component at a stand-in on its own port, as an operator
    /// would point them at an install elsewhere.
    fn write_standin_dropins(&self, opts: &Options) {
        for c in Component::ALL {
            let port = self.port(c);
            let (path, probe) = match c {
                Component::Platform => ("/is/image", format!("http://127.0.0.1:{port}/is/image")),
                _ => ("/", format!("tcp://127.0.0.1:{port}")),
            };
            // "{root}" in a stand-in argument is the sandbox's directory (writable to it).
            let root = self.root.display().to_string();
            // ps and svg are JVMs (Tomcat): they exit 143 on SIGTERM, hold tens of MiB and
            // answer a second or more after they start. A test's own arguments come after
            // these, and win.
            let jvm_like = match c {
                Component::Platform | Component::Svg => {
                    "--term-exit 143 --hold-mib 24 --start-delay 1"
                }
                Component::Image => "",
            };
            let extra: Vec<String> = std::iter::once(jvm_like.to_owned())
                .chain(
                    opts.args
                        .iter()
                        .filter(|(x, _)| *x == c)
                        .map(|(_, a)| a.replace("{root}", &root)),
                )
                .collect();
            // "{port}" in a service line is the component's port, "{root}" the sandbox's
            // directory and "{standin}" the stand-in's path.
            let lines: Vec<String> = opts
                .service
                .iter()
                .filter(|(x, _)| *x == c)
                .map(|(_, l)| {
                    l.replace("{port}", &port.to_string())
                        .replace("{root}", &root)
                        .replace("{standin}", STANDIN)
                })
                .collect();
            self.dropin(
                c.unit(),
                "50-standin",
                &format!(
                    "[Service]\nExecStart=\nExecStart={STANDIN} --port {port} --path {path} {}\nEnvironment=IMAGESERVING_PROBE={probe}\nEnvironment=IMAGESERVING_PROBE_INTERVAL_SEC=0.5\nRestartSec=100ms\nTimeoutStopSec=5s\nStandardError=append:{}\n{}\n",
                    extra.join(" "),
                    self.root.join(format!("{}.log", c.short_name())).display(),
                    lines.join("\n")
                ),
            );
        }
        // Each component's socket (off unless a test enables it) on the component's port.
        for c in Component::ALL {
            self.dropin(
                c.socket(),
                "50-port",
                &format!(
                    "[Socket]\nListenStream=\nListenStream=127.0.0.1:{}\n",
                    self.port(c)
                ),
            );
        }
        // Three restrictions of the units cannot hold in this sandbox; every other one stays
        // on, so the tests run the hardened units:
        // - PrivateTmp= hides /tmp, where the sandbox (its bus socket, its installed binaries)
        //   and maybe the checkout live; ProtectSystem=strict would keep the stand-ins from
        //   writing their ready files, hence the ReadWritePaths=;
        // - ProtectKernelTunables= and ProtectKernelLogs= need to remount parts of /proc, which
        //   a manager that is not PID 1 on these machines cannot (status 226/NAMESPACE).
        let paths = format!(
            "[Service]\nPrivateTmp=no\nReadWritePaths=-{}\nProtectKernelTunables=no\nProtectKernelLogs=no\n",
            self.root.display()
        );
        for unit in imageserving::component::stack_units().chain(["imageserving-alert@.service"]) {
            self.dropin(unit, "40-sandbox-paths", &paths);
        }
        // Every alert the hook sends is one line in `alerts.log` ([`Sandbox::alerts`]); a
        // test that sets its own command (a later drop-in) replaces this one.
        self.dropin(
            "imageserving-alert@.service",
            "40-count",
            &format!(
                "[Service]\nEnvironment=\"IMAGESERVING_ALERT_COMMAND=echo $IMAGESERVING_ALERT_UNIT >>{}\"\nStandardError=append:{}\n",
                self.root.join("alerts.log").display(),
                self.root.join("alert-hook.log").display()
            ),
        );
        if !opts.supervisor.is_empty() {
            self.dropin(
                imageserving::component::SUPERVISOR,
                "50-test",
                &format!("[Service]\n{}\n", opts.supervisor.join("\n")),
            );
        }
    }

    /// How many alerts the hook has sent (one line each in `alerts.log`).
    pub fn alerts(&self) -> usize {
        std::fs::read_to_string(self.root.join("alerts.log"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// What the alert hook logged (its stderr, with the journal's priority prefixes).
    pub fn alert_log(&self) -> String {
        std::fs::read_to_string(self.root.join("alert-hook.log")).unwrap_or_default()
    }

    /// Write a drop-in where `systemctl --user edit` would.
    pub fn dropin(&self, unit: &str, name: &str, text: &str) {
        write(
            &self
                .root
                .join(format!("config/systemd/user/{unit}.d/{name}.conf")),
            text,
        );
    }

    fn boot(&mut self) {
        let systemd = systemd_binary();
        for base in host_hierarchies(&["systemd", "memory", "pids"]) {
            std::fs::create_dir(base.join(&self.cgroup)).unwrap_or_else(|e| {
                panic!(
                    "create cgroup {}/{}: {e} (the tests must run as root)",
                    base.display(),
                    self.cgroup
                )
            });
        }
        let join: String = host_hierarchies(&["systemd", "memory", "pids"])
            .iter()
            .map(|h| format!("echo $$ > {}/{}/cgroup.procs && ", h.display(), self.cgroup))
            .collect();
        // A manager expects /run/systemd/system (sd_booted()); where PID 1 is not systemd, a
        // tmpfs of the private mount namespace provides it. Where PID 1 is systemd (inside a
        // booted box) the real one stays visible: it also holds the inaccessible nodes that
        // units' mount namespaces are built from (hiding them fails those units with 226).
        let script = format!(
            "{join}exec timeout -s KILL {} unshare -m --propagation private sh -c '{{ [ -d /run/systemd/system ] || {{ mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system; }}; }} && exec {} --user --unit=imageserving-test.target'",
            self.lifetime.as_secs(),
            systemd.display()
        );
        let unit_path = format!(
            "{}:{}:{}",
            self.root.join("config/systemd/user").display(),
            self.root.join("data/systemd/user").display(),
            self.root.join("harness").display()
        );
        let log = std::fs::File::create(self.root.join("manager.log")).expect("log file");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env_clear()
            .envs(self.env())
            .env("SYSTEMD_UNIT_PATH", unit_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn systemd --user");
        self.manager = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.manager_running() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private systemd manager did not come up in 15 s; see {}",
                self.root.join("manager.log").display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn manager(&self) -> Manager {
        Manager::connect_within(Scope::User, self.bus.clone(), DEFAULT_CALL_TIMEOUT)
            .expect("connect to the private manager")
    }

    /// Point a component at a program that does not exist (as when the vendor install is
    /// missing), and reload.
    pub fn remove_program(&self, c: Component) {
        self.dropin(
            c.unit(),
            "60-missing",
            &format!(
                "[Service]\nExecStart=\nExecStart=/nonexistent/{}\n",
                c.title().replace(' ', "")
            ),
        );
        self.reload();
    }

    /// Mask `unit` as `systemctl --user mask` does (a link to /dev/null in the unit
    /// directory that wins), and reload.
    pub fn mask(&self, unit: &str) {
        std::os::unix::fs::symlink(
            "/dev/null",
            self.root.join("config/systemd/user").join(unit),
        )
        .expect("mask");
        self.reload();
    }

    /// Undo [`Sandbox::mask`].
    pub fn unmask(&self, unit: &str) {
        std::fs::remove_file(self.root.join("config/systemd/user").join(unit)).expect("unmask");
        self.reload();
    }

    /// Remove `unit`'s file where the install put it, and reload: what a half-done package
    /// removal or a file moved by hand leaves (systemd still knows the unit while it runs).
    pub fn remove_unit_file(&self, unit: &str) {
        std::fs::remove_file(self.root.join("data/systemd/user").join(unit))
            .expect("remove the unit file");
        self.reload();
    }

    /// Run `systemctl --user ARGS` against this sandbox's manager (to act as an operator
    /// does; the product itself never runs systemctl).
    #[track_caller]
    pub fn systemctl(&self, args: &[&str]) -> Run {
        let out = run_with_timeout(
            Command::new("systemctl")
                .arg("--user")
                .args(args)
                .env_clear()
                .envs(self.env()),
            Duration::from_secs(60),
        );
        Run::from(out, format!("systemctl --user {}", args.join(" ")))
    }

    /// Wait until the manager answers again and has finished starting (after a re-exec).
    #[track_caller]
    pub fn wait_manager(&self, limit: Duration) {
        eventually(limit, "the manager answers again", || {
            self.manager_running()
        });
    }

    /// Whether the manager answers on the bus and has finished starting (`SystemState`
    /// `running` or `degraded`), read with zbus directly: the product has no use for it.
    fn manager_running(&self) -> bool {
        let state = || -> zbus::Result<String> {
            let conn = zbus::blocking::connection::Builder::address(self.bus.as_str())?.build()?;
            let proxy = zbus::blocking::Proxy::new(
                &conn,
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
            )?;
            proxy.get_property("SystemState")
        };
        state().is_ok_and(|s| s == "running" || s == "degraded")
    }

    /// Make the manager re-read units after a drop-in changed.
    pub fn reload(&self) {
        self.manager().reload().expect("daemon-reload");
    }

    pub fn state(&self, unit: &str) -> ServiceState {
        let m = self.manager();
        let path = m.load_unit(unit).expect("load unit");
        m.service_state(path.as_str()).expect("service state")
    }

    pub fn main_pid(&self, c: Component) -> u32 {
        self.state(c.unit()).main_pid
    }

    /// The main PIDs of ps, is and svg.
    pub fn component_pids(&self) -> Vec<u32> {
        Component::ALL.iter().map(|c| self.main_pid(*c)).collect()
    }

    /// Wait until `unit` is active again under a main PID other than `old`; return it.
    #[track_caller]
    pub fn wait_replaced(&self, unit: &str, old: u32, limit: Duration) -> u32 {
        let mut new = 0;
        eventually(
            limit,
            &format!("{unit} active again with a new main PID"),
            || {
                let s = self.state(unit);
                new = s.main_pid;
                s.active_state == imageserving::systemd::ActiveState::Active
                    && new != old
                    && new != 0
            },
        );
        new
    }

    /// Run `ImageServing --user ARGS` with a hard timeout.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    #[track_caller]
    pub fn run_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let out = run_with_timeout(
            Command::new(IMAGESERVING)
                .arg("--user")
                .args(args)
                .env_clear()
                .envs(self.env())
                .envs(extra_env.iter().map(|(k, v)| (*k, *v))),
            Duration::from_secs(60),
        );
        Run::from(out, format!("ImageServing --user {}", args.join(" ")))
    }

    /// Run a bash script with this sandbox's environment; `$IS` is `ImageServing --user`.
    #[track_caller]
    pub fn run_shell(&self, script: &str) -> Run {
        let out = run_with_timeout(
            Command::new("bash")
                .args(["-c", script])
                .env_clear()
                .envs(self.env())
                .env("IS", format!("{IMAGESERVING} --user")),
            Duration::from_secs(60),
        );
        Run::from(out, format!("bash -c {script:?}"))
    }

    /// Run `ImageServing --user ARGS` on a terminal (script(1) provides one); what it wrote
    /// there comes back as stdout.
    #[track_caller]
    pub fn run_on_tty(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let line = format!("{IMAGESERVING} --user {}", args.join(" "));
        let out = run_with_timeout(
            Command::new("script")
                .args(["-qec", &line, "/dev/null"])
                .env_clear()
                .envs(self.env())
                .envs(extra_env.iter().map(|(k, v)| (*k, *v))),
            Duration::from_secs(60),
        );
        Run::from(out, format!("(on a terminal) {line}"))
    }

    /// The PID of the sandbox's process named `comm` among the manager (`systemd`) and the
    /// session bus (`dbus-daemon`).
    pub fn pid_of(&self, comm: &str) -> Option<u32> {
        let mut candidates = Vec::new();
        collect_pids(&self.cgroup_dir(), &mut candidates);
        candidates.into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
    }

    /// This sandbox's cgroup in the unified hierarchy (its manager and everything below).
    pub fn cgroup_dir(&self) -> PathBuf {
        unified_hierarchy().join(&self.cgroup)
    }

    /// Processes in this sandbox's cgroup subtree below the manager (the stack's processes).
    /// Panics when the sandbox's cgroup cannot be read: an empty list means no process.
    pub fn stack_pids(&self) -> Vec<u32> {
        let dir = self.cgroup_dir();
        if let Err(e) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            panic!(
                "cannot read the sandbox's cgroup {}: {e}; the test cannot see the stack's processes",
                dir.display()
            );
        }
        let mut pids = Vec::new();
        let app = dir.join("app.slice");
        for unit in imageserving::component::stack_units() {
            collect_pids(&app.join(unit), &mut pids);
        }
        pids.retain(|p| is_alive(*p));
        pids
    }
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// VmRSS (KiB), open descriptors and threads of a process at rest: the least of 50
/// readings 7 ms apart (the supervisor's probe rounds and systemd's forks hold threads,
/// sockets and pages for a moment; a reading in the middle of one sees them).
pub fn footprint(pid: u32) -> (u64, usize, u64) {
    let readings: Vec<(u64, usize, u64)> = (0..50)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(7));
            reading(pid)
        })
        .collect();
    (
        readings.iter().map(|r| r.0).min().unwrap_or(0),
        readings.iter().map(|r| r.1).min().unwrap_or(0),
        readings.iter().map(|r| r.2).min().unwrap_or(0),
    )
}

fn reading(pid: u32) -> (u64, usize, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0);
    (field("VmRSS:"), fds, field("Threads:"))
}

/// A setting of a benchmark or soak from the environment (`name`), or `default` where it is
/// unset or not a number.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Poll `cond` every 20 ms until it holds; fail the test if `limit` passes first.
#[track_caller]
pub fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `signal` (a name, e.g. `KILL`) to `pid`.
#[track_caller]
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{signal} {pid}");
}

/// Alive and not a zombie (PID 1 here reaps slowly).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(false)
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Kill everything in the sandbox's cgroup, the manager included.
        let _ = std::fs::write(self.cgroup_dir().join("cgroup.kill"), "1");
        if let Some(mut child) = self.manager.take() {
            let _ = child.kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for h in host_hierarchies(&["systemd", "memory", "pids"]) {
            let dir = h.join(&self.cgroup);
            let deadline = Instant::now() + Duration::from_secs(5);
            while dir.exists() && Instant::now() < deadline {
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
                remove_cgroup_tree(&dir);
                if dir.exists() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            eprintln!("sandbox kept for inspection: {}", self.root.display());
        }
    }
}

pub fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Run a command with a hard timeout; it is killed if it overruns.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    // Read pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command timed out after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// The result of one command, with assertions that report the whole output on failure.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Run {
    pub fn from(out: Output, what: String) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
        }
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "{}: exit {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Run {
        assert!(
            self.stdout.contains(needle),
            "{}: stdout lacks {needle:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "{}: stderr lacks {needle:?}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_one_line(self) -> Run {
        assert_eq!(
            self.stderr.trim_end().lines().count(),
            1,
            "{}: stderr is not one line:\n{}",
            self.what,
            self.stderr
        );
        self
    }
}
