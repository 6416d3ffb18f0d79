//! A fleet of hosts over OpenSSH: `ImageServing --host H1,H2 status`, `--hosts FILE`, and the
//! rolling `restart --serial N`.
//!
//! Each host runs its own `ImageServing` through `ssh -o BatchMode=yes`, so memory and uptime
//! come from that host's procfs, and the user's own `~/.ssh/config` (keys, `ProxyJump`,
//! `ControlMaster`, host-key checking) applies as it is: no agent, no port, no daemon of ours.
//! Host names are validated before they reach ssh, and the remote command is a fixed argument
//! vector, each word single-quoted for the remote shell, so nothing given can inject a
//! command. One host's failure is its own row; the others go on.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::component::Component;
use crate::error::exit;
use crate::procinfo::ProcReader;
use crate::systemd::Scope;

/// The environment key naming an ssh configuration file to use instead of the user's
/// (`ssh -F`): a fleet's own settings, or a test's.
pub const KEY_SSH_CONFIG: &str = "IMAGESERVING_SSH_CONFIG";

/// One host as given: `[USER@]HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// As given, for the output.
    pub spec: String,
    user: Option<String>,
    name: String,
    port: Option<u16>,
}

/// Parse and validate one host. Names are what DNS, `/etc/hosts` and ssh aliases use:
/// letters, digits, `.`, `-`, `_`; an IPv6 address goes in brackets. Anything else (a leading
/// `-`, spaces, quotes, `;`, `$`) is refused before ssh sees it.
pub fn parse_host(spec: &str) -> Result<Host, String> {
    let word = |s: &str| {
        !s.is_empty()
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    let (user, rest) = match spec.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, spec),
    };
    if let Some(u) = user {
        if !word(u) {
            return Err(format!("'{spec}': not a valid user name"));
        }
    }
    let (name, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("'{spec}': unclosed '['"))?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("'{spec}': not an IPv6 address"));
        }
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("'{spec}': expected :PORT after ']'")),
        };
        (addr.to_owned(), port)
    } else {
        match rest.split_once(':') {
            Some((n, p)) => (n.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        }
    };
    if !name.contains(':') && !word(&name) {
        return Err(format!(
            "'{spec}': not a valid host name (letters, digits, '.', '-', '_')"
        ));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("'{spec}': port '{p}' is not a number from 1 to 65535"))?,
        ),
        None => None,
    };
    Ok(Host {
        spec: spec.to_owned(),
        user: user.map(str::to_owned),
        name,
        port,
    })
}

/// Hosts from a file: one per line, `#` starts a comment, blank lines are skipped.
pub fn parse_hosts_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What each host is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `status [COMPONENT]` (as JSON).
    Status(Option<Component>),
    /// `start`
    Start,
    /// `stop`
    Stop,
    /// `restart [COMPONENT]`
    Restart(Option<Component>),
}

impl Action {
    /// The remote argument vector (after the program name).
    fn args(self, scope: Scope) -> Vec<String> {
        let mut args = vec![
            match scope {
                Scope::System => "--system",
                Scope::User => "--user",
            }
            .to_owned(),
            "--no-ask-password".to_owned(),
        ];
        match self {
            Action::Status(c) => {
                args.push("status".into());
                args.extend(c.map(|c| c.short_name().to_owned()));
                args.push("--json".into());
            }
            Action::Start => args.push("start".into()),
            Action::Stop => args.push("stop".into()),
            Action::Restart(c) => {
                args.push("restart".into());
                args.extend(c.map(|c| c.short_name().to_owned()));
            }
        }
        args
    }

    fn is_status(self) -> bool {
        matches!(self, Action::Status(_))
    }
}

/// Quote a word for a POSIX shell: in single quotes, a quote written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The `ssh` command for one host. ssh joins the words after the host into one command line
/// for the remote shell: each is quoted, and `--` ends ssh's own options.
fn ssh_command(host: &Host, remote: &[String]) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]);
    if let Some(cfg) = std::env::var_os(KEY_SSH_CONFIG) {
        cmd.arg("-F").arg(cfg);
    }
    if let Some(p) = host.port {
        cmd.args(["-p", &p.to_string()]);
    }
    if let Some(u) = &host.user {
        cmd.args(["-l", u]);
    }
    cmd.arg("--").arg(&host.name);
    cmd.arg(
        std::iter::once("ImageServing".to_owned())
            .chain(remote.iter().cloned())
            .map(|w| shell_quote(&w))
            .collect::<Vec<_>>()
            .join(" "),
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// What one host answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostResult {
    /// The host as given.
    pub host: String,
    /// Whether the command succeeded there.
    pub ok: bool,
    /// Its exit code (ours for a host that could not be asked: 4 for status, 1 otherwise).
    pub exit_code: i32,
    /// Why it did not succeed, in one line.
    pub error: Option<String>,
    /// `status --json` of that host.
    pub status: Option<serde_json::Value>,
    /// The host's one line of output for start, stop and restart.
    #[serde(skip)]
    pub said: String,
}

/// Run `action` on one host within `deadline`.
fn run_one(host: &Host, action: Action, scope: Scope, deadline: Duration) -> HostResult {
    let unreachable_code = if action.is_status() {
        exit::PRIVILEGE
    } else {
        exit::FAILURE
    };
    let fail = |code: i32, error: String| HostResult {
        host: host.spec.clone(),
        ok: false,
        exit_code: code,
        error: Some(error),
        status: None,
        said: String::new(),
    };
    let mut child = match ssh_command(host, &action.args(scope)).spawn() {
        Ok(c) => c,
        Err(e) => return fail(unreachable_code, format!("cannot run ssh: {e}")),
    };
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        kill_tree(&mut child);
        return fail(unreachable_code, "ssh's output pipes are missing".into());
    };
    let (tx_out, rx_out) = mpsc::channel();
    let (tx_err, rx_err) = mpsc::channel();
    // Bytes, not text: a host may answer with anything, and what is not UTF-8 is shown
    // with replacement characters rather than lost.
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        let _ = tx_out.send(String::from_utf8_lossy(&v).into_owned());
    });
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        let _ = tx_err.send(String::from_utf8_lossy(&v).into_owned());
    });
    // A deadline too far to represent is no deadline.
    let started = Instant::now();
    let until = started.checked_add(deadline);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if until.is_none_or(|u| Instant::now() < u) => {
                std::thread::sleep(poll_interval(started.elapsed()))
            }
            _ => {
                kill_tree(&mut child);
                break None;
            }
        }
    };
    // The output is complete once ssh and what it started are gone; a process that left
    // ssh's session with our pipes gets a moment, not the deadline again.
    let stdout = rx_out.recv_timeout(PIPE_GRACE).unwrap_or_default();
    let stderr = rx_err.recv_timeout(PIPE_GRACE).unwrap_or_default();
    match status {
        None => fail(
            unreachable_code,
            format!("no answer within {} s", deadline.as_secs()),
        ),
        Some(status) => judge(
            &host.spec,
            action,
            status.code().unwrap_or(unreachable_code),
            &stdout,
            &stderr,
        ),
    }
}

/// What a host's answer means: its exit `code` (ssh's own 255 and the shell's 127
/// included), what it printed on stdout and stderr. A `status` answer must be the document
/// `status --json` prints; anything else (a line a login script echoed first, an older
/// version's JSON, an answer cut off) is that host's error, exit 4, never a success.
pub fn judge(spec: &str, action: Action, code: i32, stdout: &str, stderr: &str) -> HostResult {
    let unreachable_code = if action.is_status() {
        exit::PRIVILEGE
    } else {
        exit::FAILURE
    };
    let fail = |code: i32, error: String| HostResult {
        host: spec.to_owned(),
        ok: false,
        exit_code: code,
        error: Some(error),
        status: None,
        said: String::new(),
    };
    let last_err = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned();
    match code {
        255 => {
            let why = if last_err.contains("Permission denied") {
                "authentication refused"
            } else {
                "unreachable"
            };
            return fail(unreachable_code, format!("{why} ({last_err})"));
        }
        127 => {
            return fail(
                exit::NOT_INSTALLED,
                "ImageServing is not installed there (command not found)".into(),
            )
        }
        2 if last_err.contains("unexpected argument") || last_err.contains("unrecognized") => {
            return fail(
                exit::USAGE,
                format!("ImageServing there is too old for this command ({last_err})"),
            )
        }
        _ => {}
    }
    let status_doc = if action.is_status() && matches!(code, exit::OK | exit::NOT_RUNNING) {
        match status_document(stdout) {
            Ok(doc) => Some(doc),
            Err(why) => {
                return fail(
                    exit::PRIVILEGE,
                    format!(
                        "unreadable answer (exit {code}): {why}; it began {:?}",
                        first_bytes(stdout)
                    ),
                )
            }
        }
    } else if action.is_status() {
        // A failed status prints an error on stderr, and maybe a document with a message.
        serde_json::from_str::<serde_json::Value>(stdout).ok()
    } else {
        None
    };
    let error = (code != 0).then(|| {
        status_doc
            .as_ref()
            .and_then(|d| {
                d.get("message")
                    .and_then(serde_json::Value::as_str)
                    .or_else(|| d.get("error").and_then(serde_json::Value::as_str))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                if last_err.is_empty() {
                    format!("exit {code}")
                } else {
                    last_err.trim_start_matches("ImageServing: ").to_owned()
                }
            })
    });
    HostResult {
        host: spec.to_owned(),
        ok: code == 0,
        exit_code: code,
        error,
        status: status_doc.filter(|d| d.get("supervisor").is_some()),
        said: stdout.lines().last().unwrap_or_default().to_owned(),
    }
}

/// The `status --json` document, checked for what the table and the summary read: an
/// object with `supervisor.running` and a `components` list whose entries name their
/// component and state.
fn status_document(stdout: &str) -> Result<serde_json::Value, String> {
    let doc: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| format!("not the JSON document of 'status --json' ({e})"))?;
    let running = doc
        .get("supervisor")
        .and_then(|s| s.get("running"))
        .and_then(serde_json::Value::as_bool);
    let components = doc.get("components").and_then(serde_json::Value::as_array);
    match (running, components) {
        (Some(_), Some(list))
            if list.iter().all(|c| {
                c.get("name").and_then(serde_json::Value::as_str).is_some()
                    && c.get("state").and_then(serde_json::Value::as_str).is_some()
            }) =>
        {
            Ok(doc)
        }
        _ => Err("JSON, but not the document of 'status --json' (supervisor.running, components[].name and .state); is ImageServing there another version?".to_owned()),
    }
}

/// The first bytes of an answer, for an error message: at most 60 characters, cut on a
/// character boundary.
fn first_bytes(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// How long the output of a finished ssh may take to reach its end.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Kill ssh and every process below it: its `ProxyCommand` holds our pipes too, and a hung
/// one would outlive the deadline. (A `ControlPersist` master has left ssh's process tree by
/// then, and is not touched.)
fn kill_tree(child: &mut std::process::Child) {
    let below = ProcReader::new("/proc").descendants(child.id());
    let _ = child.kill();
    for pid in below {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
    let _ = child.wait();
}

/// How long to wait before looking at ssh again, `elapsed` after it started: soon while it
/// is young (a multiplexed `status` answers in about 12 ms), then every 20 ms. (The exit is
/// polled to keep the deadline: a blocking wait has none.)
fn poll_interval(elapsed: Duration) -> Duration {
    (elapsed / 8).clamp(Duration::from_millis(1), Duration::from_millis(20))
}

/// Run `action` on every host, at most `parallel` at once, each within `deadline`; results
/// in the order the hosts were given.
pub fn run_all(
    hosts: &[Host],
    action: Action,
    scope: Scope,
    parallel: usize,
    deadline: Duration,
) -> Vec<HostResult> {
    let next = Arc::new(Mutex::new(0usize));
    let results: Arc<Mutex<Vec<Option<HostResult>>>> =
        Arc::new(Mutex::new(vec![None; hosts.len()]));
    let hosts: Arc<Vec<Host>> = Arc::new(hosts.to_vec());
    let workers: Vec<_> = (0..parallel.clamp(1, hosts.len().max(1)))
        .map(|_| {
            let (next, results, hosts) = (next.clone(), results.clone(), hosts.clone());
            std::thread::spawn(move || loop {
                let i = {
                    let mut n = next
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(host) = hosts.get(i) else {
                    return;
                };
                let r = run_one(host, action, scope, deadline);
                if let Some(slot) = results
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(i)
                {
                    *slot = Some(r);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let results = std::mem::take(
        &mut *results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    results
        .into_iter()
        .zip(hosts.iter())
        .map(|(r, h)| {
            r.unwrap_or_else(|| HostResult {
                host: h.spec.clone(),
                ok: false,
                exit_code: exit::FAILURE,
                error: Some("not run".into()),
                status: None,
                said: String::new(),
            })
        })
        .collect()
}

/// A rolling restart: `serial` hosts at a time. Each batch's `restart` returns only once
/// that host serves again (its supervisor ready, its probes passing), so the next batch
/// starts only then. Stops at the first batch with a failure; returns the results so far and
/// the hosts that were not restarted.
pub fn rolling_restart(
    hosts: &[Host],
    component: Option<Component>,
    scope: Scope,
    serial: usize,
    deadline: Duration,
) -> (Vec<HostResult>, Vec<String>) {
    in_batches(hosts, serial, |batch| {
        run_all(
            batch,
            Action::Restart(component),
            scope,
            batch.len(),
            deadline,
        )
    })
}

/// Run `batch` on `serial` hosts at a time until a batch has a failure: the results so far,
/// and the hosts of the batches not run. The last batch may be partial.
pub fn in_batches(
    hosts: &[Host],
    serial: usize,
    mut batch: impl FnMut(&[Host]) -> Vec<HostResult>,
) -> (Vec<HostResult>, Vec<String>) {
    let mut done = Vec::new();
    let mut rest = hosts;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(serial.clamp(1, rest.len()));
        let results = batch(now);
        let failed = results.iter().any(|r| !r.ok);
        done.extend(results);
        if failed {
            return (done, later.iter().map(|h| h.spec.clone()).collect());
        }
        rest = later;
    }
    (done, Vec::new())
}

/// The exit code of the whole: 0 when every host succeeded, else the highest per-host code
/// (LSB codes grow with severity: 1 failure, 3 not running, 4 unknown or denied, 5 missing).
pub fn exit_code(results: &[HostResult]) -> i32 {
    results
        .iter()
        .map(|r| r.exit_code)
        .max()
        .unwrap_or(exit::OK)
}

/// The last line: "2 of 3 hosts running; h3: unreachable (...)".
pub fn summary(results: &[HostResult], action: Action, not_restarted: &[String]) -> String {
    let ok = results.iter().filter(|r| r.ok).count();
    let verb = match action {
        Action::Status(_) => "running",
        Action::Start => "started",
        Action::Stop => "stopped",
        Action::Restart(_) => "restarted",
    };
    let mut line = format!(
        "{ok} of {} hosts {verb}",
        results.len() + not_restarted.len()
    );
    let problems: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| match &r.error {
            Some(e) if r.exit_code == 3 || r.exit_code == 0 => {
                format!("{}: exit {} ({e})", r.host, r.exit_code)
            }
            Some(e) => format!("{}: {e}", r.host),
            None => format!("{}: exit {}", r.host, r.exit_code),
        })
        .collect();
    if !problems.is_empty() {
        line.push_str("; ");
        line.push_str(&problems.join(", "));
    }
    if !not_restarted.is_empty() {
        line.push_str(&format!(
            "; stopped after the failed batch, not restarted: {}",
            not_restarted.join(", ")
        ));
    }
    line
}

/// The table: one row per component of each host (status), or per host (actions), in the
/// order the hosts were given; fitted to `width` when given (the restart count goes first,
/// then the PID; the state or error is cut last).
pub fn table(results: &[HostResult], action: Action, width: Option<usize>) -> String {
    use crate::table::{Column, Fit};
    let keep = |header| Column {
        header,
        fit: Fit::Keep,
    };
    let columns = [
        keep("HOST"),
        keep("NAME"),
        Column {
            header: "STATE",
            fit: Fit::Cut(24),
        },
        Column {
            header: "PID",
            fit: Fit::Drop(2),
        },
        keep("UPTIME"),
        keep("RSS"),
        Column {
            header: "RESTARTS",
            fit: Fit::Drop(1),
        },
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in results {
        let components = r
            .status
            .as_ref()
            .and_then(|s| s.get("components")?.as_array().cloned())
            .unwrap_or_default();
        if !action.is_status() || components.is_empty() {
            let what = if r.ok {
                r.said.clone()
            } else {
                r.error.clone().unwrap_or_default()
            };
            rows.push(vec![r.host.clone(), "-".into(), what]);
            continue;
        }
        for c in components {
            let text = |k: &str| c.pointer(k).and_then(serde_json::Value::as_str);
            let number = |k: &str| c.pointer(k).and_then(serde_json::Value::as_u64);
            let n = |k: &str| number(k).map_or("-".to_owned(), |v| v.to_string());
            rows.push(vec![
                r.host.clone(),
                text("/name").unwrap_or("?").to_owned(),
                format!(
                    "{} ({})",
                    text("/state").unwrap_or("?"),
                    text("/sub_state").unwrap_or("?")
                ),
                n("/pid"),
                number("/uptime_seconds").map_or("-".into(), crate::status::format_duration),
                number("/memory/rss_bytes").map_or("-".into(), crate::status::format_bytes),
                n("/restarts"),
            ]);
        }
    }
    crate::table::render(&columns, &rows, width, |_, _, cell| cell).text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_with_user_and_port() {
        let h = parse_host("ops@img-01.example.org:2222").unwrap();
        assert_eq!(
            (h.user.as_deref(), h.name.as_str(), h.port),
            (Some("ops"), "img-01.example.org", Some(2222))
        );
        let h = parse_host("[2001:db8::1]:22").unwrap();
        assert_eq!((h.name.as_str(), h.port), ("2001:db8::1", Some(22)));
        assert_eq!(parse_host("h3").unwrap().port, None);
    }

    /// Regression guard: a host name must never reach ssh as an option or a shell word.
    #[test]
    fn host_names_that_could_inject_are_refused() {
        for bad in [
            "-oProxyCommand=touch /tmp/x",
            "h1;touch /tmp/x",
            "h1 touch",
            "$(touch /tmp/x)",
            "`id`",
            "h1'",
            "a@-b",
            "h1:0",
            "h1:99999",
            "h1:22x",
            "",
            "[::1",
            "[zz]",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn remote_words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("status"), "'status'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let args = Action::Status(Some(Component::Svg)).args(Scope::System);
        assert_eq!(
            args,
            ["--system", "--no-ask-password", "status", "svg", "--json"]
        );
    }

    #[test]
    fn host_files_have_comments_and_blank_lines() {
        assert_eq!(
            parse_hosts_file("# fleet\nh1\n\n  h2  # rack 2\n#h3\n"),
            ["h1", "h2"]
        );
    }

    #[test]
    fn the_summary_names_each_failed_host() {
        let r = |host: &str, ok: bool, code: i32, error: Option<&str>| HostResult {
            host: host.into(),
            ok,
            exit_code: code,
            error: error.map(str::to_owned),
            status: None,
            said: String::new(),
        };
        let results = [
            r("h1", true, 0, None),
            r(
                "h3",
                false,
                4,
                Some("unreachable (ssh: connect to host h3 port 22: No route to host)"),
            ),
            r("h7", false, 3, Some("is not running")),
        ];
        assert_eq!(
            summary(&results, Action::Status(None), &[]),
            "1 of 3 hosts running; h3: unreachable (ssh: connect to host h3 port 22: No route to host), h7: exit 3 (is not running)"
        );
        assert_eq!(exit_code(&results), 4);
        assert_eq!(exit_code(&results[..1]), 0);
    }

    fn host(i: usize) -> Host {
        parse_host(&format!("h{i}")).unwrap()
    }

    fn result(spec: &str, ok: bool) -> HostResult {
        HostResult {
            host: spec.into(),
            ok,
            exit_code: if ok { 0 } else { 1 },
            error: (!ok).then(|| "failed".into()),
            status: None,
            said: String::new(),
        }
    }

    /// Regression: a failing host in the last, partial batch sliced past the end of the
    /// host list (panic, exit 134, no table).
    #[test]
    fn a_failure_in_the_last_partial_batch_names_the_host() {
        for (n, serial, failing) in [(3, 2, 2), (2, 5, 1), (3, 1, 0), (1, 1, 0)] {
            let hosts: Vec<Host> = (0..n).map(host).collect();
            let (done, left) = in_batches(&hosts, serial, |batch| {
                batch
                    .iter()
                    .map(|h| result(&h.spec, h.spec != format!("h{failing}")))
                    .collect()
            });
            let failed: Vec<&str> = done
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.host.as_str())
                .collect();
            assert_eq!(
                failed,
                [format!("h{failing}")],
                "{n} hosts, serial {serial}"
            );
            assert_eq!(done.len() + left.len(), n);
        }
    }

    /// Regression: an answer that was not the status document counted as running.
    #[test]
    fn an_unreadable_status_answer_is_that_hosts_error() {
        let good = r#"{"scope":"system","supervisor":{"running":true,"name":"supervisor"},"components":[{"name":"ps","state":"active"}]}"#;
        let ok = judge("h1", Action::Status(None), 0, good, "");
        assert!(ok.ok && ok.status.is_some(), "{ok:?}");
        for bad in [
            "Welcome to h1\n".to_owned() + good,
            r#"{"version":1,"stack":"up"}"#.to_owned(),
            good.get(..40).unwrap().to_owned(),
            String::new(),
            "\u{fffd}\u{fffd}".to_owned(),
        ] {
            for code in [0, 3] {
                let r = judge("h1", Action::Status(None), code, &bad, "");
                assert!(!r.ok, "{bad:?} counted as running");
                assert_eq!(r.exit_code, 4, "{bad:?}");
                let why = r.error.unwrap_or_default();
                assert!(why.contains("unreadable answer"), "{why}");
            }
        }
    }

    fn answer() -> impl proptest::strategy::Strategy<Value = (i32, String)> {
        use proptest::prelude::*;
        let good = r#"{"scope":"system","supervisor":{"running":true},"components":[{"name":"ps","state":"active"}]}"#;
        prop_oneof![
            Just((0, good.to_owned())),
            (0..=255i32, any::<String>()),
            (
                prop_oneof![Just(0), Just(3)],
                proptest::collection::vec(any::<u8>(), 0..200)
            )
                .prop_map(|(c, b)| (c, String::from_utf8_lossy(&b).into_owned())),
            (0..good.len())
                .prop_map(move |cut| (0, good.get(..cut).unwrap_or_default().to_owned())),
            Just((255, String::new())),
            Just((127, String::new())),
        ]
    }

    proptest::proptest! {
        /// Host lists × --serial × which hosts fail: every host is either run or listed as
        /// not restarted, the run stops after the first failing batch, nothing panics.
        #[test]
        fn rolling_batches_account_for_every_host(
            n in 0usize..40,
            serial in 0usize..50,
            failing in proptest::collection::vec(proptest::prelude::any::<bool>(), 40),
        ) {
            let hosts: Vec<Host> = (0..n).map(host).collect();
            let mut batches = 0;
            let (done, left) = in_batches(&hosts, serial, |batch| {
                batches += 1;
                batch.iter().map(|h| {
                    let i: usize = h.spec.trim_start_matches('h').parse().unwrap();
                    result(&h.spec, !failing[i])
                }).collect()
            });
            proptest::prop_assert_eq!(done.len() + left.len(), n);
            let first_fail = (0..n).find(|i| failing[*i]);
            let step = serial.max(1);
            let expect_done = first_fail.map_or(n, |f| ((f / step) + 1).saturating_mul(step).min(n));
            proptest::prop_assert_eq!(done.len(), expect_done);
            proptest::prop_assert!(batches <= n.div_ceil(step));
        }

        /// Host names and host files as a user types them: parsing never panics, and what is
        /// accepted has no character a shell or ssh would read as syntax.
        #[test]
        fn any_host_spec_is_parsed_without_panic(spec in ".{0,40}", file in ".{0,200}") {
            if let Ok(h) = parse_host(&spec) {
                proptest::prop_assert!(!h.name.starts_with('-'));
                proptest::prop_assert!(h.name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c)), "{:?}", h.name);
            }
            for line in parse_hosts_file(&file) {
                let _ = parse_host(&line);
            }
        }

        /// Whatever a host answers (exit code, bytes), judging it never panics, and a status
        /// counted as a success always carries the document.
        #[test]
        fn any_answer_is_judged_without_panic((code, out) in answer(), err in proptest::prelude::any::<String>()) {
            let r = judge("h1", Action::Status(None), code, &out, &err);
            if r.ok {
                proptest::prop_assert!(r.status.is_some());
            }
            let table = table(std::slice::from_ref(&r), Action::Status(None), Some(60));
            proptest::prop_assert!(table.contains("h1"));
            let _ = judge("h1", Action::Restart(None), code, &out, &err);
        }
    }
}
