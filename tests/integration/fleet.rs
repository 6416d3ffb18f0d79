//! Fleet commands whose hosts never answer: the per-host deadline holds, and nothing that ssh
//! started is left behind. No host is needed: the hosts' `ProxyCommand` never connects.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{eventually, run_with_timeout, Run, IMAGESERVING};

/// A directory with an ssh configuration whose every host is reached through a
/// `ProxyCommand`; removed on drop.
struct SshConfig(PathBuf);

impl SshConfig {
    fn new(name: &str, proxy: &str) -> SshConfig {
        let dir = std::env::temp_dir().join(format!("isfleet-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fleet dir");
        std::fs::write(
            dir.join("config"),
            format!("Host *\n  ProxyCommand {proxy}\n  UserKnownHostsFile /dev/null\n"),
        )
        .expect("ssh config");
        SshConfig(dir)
    }

    /// `ImageServing ARGS` with this configuration.
    fn run(&self, args: &[&str]) -> Run {
        run_fleet(&self.0, args, Duration::from_secs(60))
    }
}

/// `ImageServing ARGS` with `dir` as its home and the ssh configuration `dir/config`, in a
/// clean environment, killed after `timeout`.
#[track_caller]
pub fn run_fleet(dir: &Path, args: &[&str], timeout: Duration) -> Run {
    let out = run_with_timeout(
        std::process::Command::new(IMAGESERVING)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", dir)
            .env("IMAGESERVING_SSH_CONFIG", dir.join("config")),
        timeout,
    );
    Run::from(out, format!("ImageServing {}", args.join(" ")))
}

impl Drop for SshConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Regression: a hung `ProxyCommand` kept ssh's pipes open after ssh was killed at the
/// deadline, so `--host-timeout 1` took as long as the proxy hung (and the proxy lived on).
#[test]
fn a_host_that_never_answers_is_cut_off_at_its_deadline_with_its_proxy() {
    // A sleep long enough to tell apart, and unique to this test run.
    let marker = format!("29.{}", std::process::id());
    let config = SshConfig::new("hang", &format!("sleep {marker}"));
    let t = Instant::now();
    let r = config
        .run(&["--host", "h1,h2", "--host-timeout", "1", "status"])
        .code(4);
    let took = t.elapsed();
    for host in ["h1", "h2"] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{host} ")) && l.contains("no answer within 1 s")),
            "{host}: {}",
            r.stdout
        );
    }
    assert!(
        r.stderr
            .contains("0 of 2 hosts running; h1: no answer within 1 s, h2: no answer within 1 s"),
        "{}",
        r.stderr
    );
    assert!(
        took < Duration::from_secs(15),
        "the deadline of 1 s took {took:?}"
    );
    eventually(Duration::from_secs(5), "the hung proxies are gone", || {
        processes_with(&format!("sleep {marker}")).is_empty()
    });
}

/// Regression: a `--host-timeout` too large for the clock panicked.
#[test]
fn a_deadline_too_far_to_represent_is_no_deadline() {
    let config = SshConfig::new("far", "false");
    let far = u64::MAX.to_string();
    let r = config
        .run(&["--host", "h1", "--host-timeout", &far, "status"])
        .code(4);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("h1 ") && l.contains("unreachable (")),
        "{}",
        r.stdout
    );
}

/// A directory whose `ssh` answers for each host from `answers/HOST` (a shell snippet), with
/// `PATH` leading to it: the operator's side of the fleet command, with hosts whose answers
/// the test chooses (a good document, garbage, a failure).
struct FakeHosts(PathBuf);

impl FakeHosts {
    fn new(name: &str, answers: &[(&str, &str)]) -> FakeHosts {
        let dir = std::env::temp_dir().join(format!("isfake-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("answers")).expect("fake hosts dir");
        std::fs::write(dir.join("config"), "").expect("ssh config");
        let ssh = dir.join("ssh");
        // The host is the word after `--`.
        std::fs::write(
            &ssh,
            format!(
                "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done\nprintf '%s\\n' \"$3\" >{d}/cmd-\"$2\"\nexec sh {d}/answers/\"$2\"\n",
                d = dir.display()
            ),
        )
        .expect("fake ssh");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for (host, script) in answers {
            std::fs::write(dir.join("answers").join(host), script).expect("answer");
        }
        FakeHosts(dir)
    }

    /// `program` in a clean environment whose `PATH` leads to the fake `ssh` first.
    fn command(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.0.display()),
            )
            .env("HOME", &self.0)
            .env("IMAGESERVING_SSH_CONFIG", self.0.join("config"));
        cmd
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> Run {
        let out = run_with_timeout(
            self.command(IMAGESERVING).args(args),
            Duration::from_secs(60),
        );
        Run::from(out, format!("ImageServing {}", args.join(" ")))
    }
}

impl Drop for FakeHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RESTARTED: &str = "echo 'Image Serving restarted: ps, is and svg are up.'";
const RESTART_FAILS: &str =
    "echo 'ImageServing: SVG Server (svg, imageserving-svg.service) failed: it exited with an error' >&2; exit 1";

/// Regression: a rolling restart whose failing host was in the last, partial batch sliced
/// past the end of the host list: panic, exit 134, no table and no summary.
#[test]
fn a_rolling_restart_failing_in_its_last_partial_batch_names_the_host() {
    for (hosts, serial, failing) in [("a,b,c", "2", "c"), ("a,b", "5", "b"), ("a,b,c", "1", "a")] {
        let answers: Vec<(&str, &str)> = hosts
            .split(',')
            .map(|h| {
                (
                    h,
                    if h == failing {
                        RESTART_FAILS
                    } else {
                        RESTARTED
                    },
                )
            })
            .collect();
        let fake = FakeHosts::new(&format!("roll-{failing}{serial}"), &answers);
        let r = fake
            .run(&["--host", hosts, "restart", "--serial", serial])
            .code(1);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{failing} ")) && l.contains("failed")),
            "{hosts} --serial {serial}: no row for {failing}:\n{}",
            r.stdout
        );
        assert!(
            r.stderr.contains(&format!("{failing}: SVG Server")),
            "{hosts} --serial {serial}: the summary does not name {failing}: {}",
            r.stderr
        );
    }
}

/// Regression: each batch of a rolling restart opened `--serial` sessions at once whatever
/// `--parallel` said, while the MaxStartups message told the operator to lower `--parallel`.
#[test]
fn a_rolling_restart_opens_at_most_parallel_sessions_at_once() {
    let hosts = ["a", "b", "c", "d", "e", "f"];
    let dir = std::env::temp_dir().join(format!("isfake-conc-{}", std::process::id()));
    // Each session marks itself open for 0.5 s; the most marks seen at once is the
    // concurrency.
    let session = format!(
        "d={}/open; mkdir -p $d; touch $d/$$; n=$(ls $d | wc -l); echo $n >>{}/seen; sleep 0.5; rm $d/$$; {RESTARTED}",
        dir.display(),
        dir.display()
    );
    let answers: Vec<(&str, &str)> = hosts.iter().map(|h| (*h, session.as_str())).collect();
    let fake = FakeHosts::new("conc", &answers);
    assert_eq!(fake.0, dir);
    for (serial, parallel, most) in [("6", "2", 2), ("3", "1", 1), ("2", "8", 2)] {
        let _ = std::fs::remove_file(dir.join("seen"));
        fake.run(&[
            "--host",
            &hosts.join(","),
            "--parallel",
            parallel,
            "restart",
            "--serial",
            serial,
        ])
        .code(0);
        let seen = std::fs::read_to_string(dir.join("seen")).unwrap_or_default();
        let max = seen
            .lines()
            .filter_map(|l| l.trim().parse::<usize>().ok())
            .max();
        assert_eq!(
            seen.lines().count(),
            hosts.len(),
            "--serial {serial} --parallel {parallel}: every host once: {seen}"
        );
        assert!(
            max.is_some_and(|m| m <= most),
            "--serial {serial} --parallel {parallel}: up to {max:?} sessions at once, want at most {most}"
        );
    }
}

/// Regression: a host whose answer was not the status document (a login banner before it,
/// another version's JSON, a cut-off answer) was counted as running, with exit 0.
#[test]
fn a_host_whose_status_answer_cannot_be_read_is_its_error_with_exit_4() {
    let doc = r#"{"scope":"system","supervisor":{"running":true,"name":"supervisor","state":"active"},"components":[{"name":"ps","state":"active","sub_state":"running"}]}"#;
    for (name, script) in [
        ("banner", format!("echo 'Welcome to h1!'; echo '{doc}'")),
        (
            "older",
            "echo '{\"stack\":\"running\",\"version\":1}'".to_owned(),
        ),
        ("cut", format!("printf '%s' '{}'", &doc[..50])),
    ] {
        let fake = FakeHosts::new(
            &format!("status-{name}"),
            &[("h1", &script), ("h2", &format!("echo '{doc}'"))],
        );
        let r = fake.run(&["--host", "h1,h2", "status"]).code(4);
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with("h1 ") && l.contains("unreadable answer")),
            "{name}: {}",
            r.stdout
        );
        assert!(
            r.stderr
                .contains("1 of 2 hosts running; h1: unreadable answer"),
            "{name}: {}",
            r.stderr
        );
        let json = fake.run(&["--host", "h1", "status", "--json"]).code(4);
        assert!(
            json.stdout.contains("\"ok\": false") || json.stdout.contains("\"ok\":false"),
            "{name}: {}",
            json.stdout
        );
    }
}

/// The fleet's table on a terminal of 60 and 80 columns: no line wraps, and no number is cut;
/// piped, it is whole.
#[test]
fn the_fleet_table_fits_the_terminal() {
    let doc = r#"{"scope":"system","supervisor":{"running":true},"components":[{"name":"ps","state":"active","sub_state":"running","pid":1234567,"uptime_seconds":93784,"memory":{"rss_bytes":641728102},"restarts":12}]}"#;
    let answer = format!("echo '{doc}'");
    let fake = FakeHosts::new(
        "pty",
        &[
            ("img-01.example.org", &answer),
            ("img-02.example.org", "echo 'ssh: connect to host img-02.example.org port 22: No route to host' >&2; exit 255"),
        ],
    );
    for cols in [80, 60] {
        let line = format!(
            "stty cols {cols} rows 50; exec {IMAGESERVING} --host img-01.example.org,img-02.example.org status"
        );
        let out = run_with_timeout(
            fake.command("script").args(["-qec", &line, "/dev/null"]),
            Duration::from_secs(60),
        );
        let raw = String::from_utf8_lossy(&out.stdout);
        let table: Vec<&str> = raw
            .split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .take_while(|l| !l.contains("hosts running"))
            .collect();
        for l in &table {
            assert!(l.chars().count() <= cols, "{cols}: {l:?}\n{raw}");
        }
        // Numbers are whole or left out, never cut.
        assert!(
            raw.contains("612.0 MiB") && raw.contains("1d 2h"),
            "{cols}: {raw}"
        );
        assert!(cols < 80 || raw.contains("1234567"), "{cols}: {raw}");
    }
    let piped = fake.run(&["--host", "img-01.example.org,img-02.example.org", "status"]);
    assert!(
        piped.stdout.contains("No route to host"),
        "{}",
        piped.stdout
    );
    assert!(
        piped.stdout.lines().any(|l| l.len() > 80),
        "{}",
        piped.stdout
    );
}

/// A connection sshd drops before the key exchange (its MaxStartups limit) is tried once
/// more, as nothing ran on the host; dropped twice, it is that host's error, which says so
/// and what to do, and the other hosts are not held up.
#[test]
fn a_connection_sshd_drops_at_max_startups_is_retried_once() {
    let dir = std::env::temp_dir().join(format!("isfake-drop-{}", std::process::id()));
    let drop_line = "echo 'kex_exchange_identification: Connection closed by remote host' >&2; \
                     echo 'Connection closed by UNKNOWN port 65535' >&2; exit 255";
    let once = format!(
        "echo x >>{d}/a.tries; if [ $(wc -l <{d}/a.tries) -gt 1 ]; then {RESTARTED}; else {drop_line}; fi",
        d = dir.display()
    );
    let always = format!("echo x >>{d}/b.tries; {drop_line}", d = dir.display());
    let fake = FakeHosts::new("drop", &[("a", &once), ("b", &always), ("c", RESTARTED)]);
    let r = fake.run(&["--host", "a,b,c", "restart"]).code(1);
    let tries = |h: &str| {
        std::fs::read_to_string(dir.join(format!("{h}.tries")))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert_eq!((tries("a"), tries("b")), (2, 2), "{}", r.stdout);
    assert!(
        r.stderr.starts_with(
            "2 of 3 hosts restarted; b: unreachable (closed before the key exchange, twice"
        ) && r.stderr.contains("MaxStartups")
            && r.stderr.contains("lower --parallel"),
        "{}",
        r.stderr
    );
}

/// Text answers (logs) are grouped as `dshbak -c` groups them: the hosts that logged the same
/// share one block; a host that failed has its own block and is named in the last line.
#[test]
fn fleet_logs_group_identical_answers_and_show_every_failure() {
    let same = "printf 'supervisor ready\\nps serving\\n'";
    let fake = FakeHosts::new(
        "logs",
        &[
            ("a", same),
            ("b", "printf 'svg restarted\\n'"),
            ("c", same),
            (
                "d",
                "echo 'ssh: connect to host d port 22: Connection refused' >&2; exit 255",
            ),
        ],
    );
    let r = fake
        .run(&["--host", "a,b,c,d", "logs", "-n", "5", "-o", "cat"])
        .code(1);
    let rule = "----------------";
    assert_eq!(
        r.stdout,
        format!(
            "{rule}\na,c (2)\n{rule}\nsupervisor ready\nps serving\n\
             {rule}\nb\n{rule}\nsvg restarted\n\
             {rule}\nd\n{rule}\n(failed: unreachable (ssh: connect to host d port 22: Connection refused))\n"
        )
    );
    assert!(
        r.stderr
            .starts_with("3 of 4 hosts answered; d: unreachable ("),
        "{}",
        r.stderr
    );
    // Each host ran logs with the lines and format asked for, never --follow.
    let cmd = std::fs::read_to_string(fake.0.join("cmd-a")).expect("remote command");
    assert!(
        cmd.contains("'logs'") && cmd.contains("'--lines=5'") && cmd.contains("'--output=cat'"),
        "{cmd}"
    );
    // Without -n, ten entries per host, not the whole journal.
    fake.run(&["--host", "a", "logs"]).code(0);
    let cmd = std::fs::read_to_string(fake.0.join("cmd-a")).expect("remote command");
    assert!(cmd.contains("'--lines=10'"), "{cmd}");
    fake.run(&["--host", "a", "logs", "-f"])
        .code(2)
        .stderr_one_line()
        .stderr_has("logs --follow works on one host");
    fake.run(&["--host", "a", "logs", "-o", "bogus"])
        .code(2)
        .stderr_one_line();
}
