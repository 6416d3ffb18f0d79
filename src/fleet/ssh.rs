//! One host's command through `ssh`: the command line, the wait within a deadline, and
//! killing what ssh started when the deadline passes.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use super::answer::{judge, HostResult};
use super::{shell_quote, Action, Host, KEY_SSH_CONFIG};
use crate::error::exit;
use crate::procinfo::ProcReader;
use crate::systemd::Scope;

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

/// Run `action` on one host within `deadline`. A connection closed before the key exchange
/// (sshd's `MaxStartups` limit of unauthenticated connections, reached when many sessions
/// start at once through one sshd, a bastion's say; ssh cannot tell it from a
/// `ProxyCommand` that exited) is tried once more after a short random pause: nothing ran
/// on the host. Closed twice, that is the host's error, which names both causes.
pub(super) fn run_one(
    host: &Host,
    action: &Action,
    scope: Scope,
    deadline: Duration,
) -> HostResult {
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
    // A deadline too far to represent is no deadline.
    let until = Instant::now().checked_add(deadline);
    let remote = action.args(scope);
    let mut answer = attempt(host, &remote, until);
    if let Ok(a) = &answer {
        if a.dropped_before_key_exchange() {
            std::thread::sleep(retry_pause(host));
            answer = attempt(host, &remote, until);
            if let Ok(a) = &answer {
                if a.dropped_before_key_exchange() {
                    return fail(
                        unreachable_code,
                        format!(
                            "unreachable (closed before the key exchange, twice: sshd's MaxStartups turning away connections that start together, so lower --parallel; or the ProxyCommand failed; ssh said: {})",
                            a.last_error_line()
                        ),
                    );
                }
            }
        }
    }
    match answer {
        Err(Failure::Spawn(e)) => fail(unreachable_code, format!("cannot run ssh: {e}")),
        Err(Failure::Pipes) => fail(unreachable_code, "ssh's output pipes are missing".into()),
        Err(Failure::Deadline) => fail(
            unreachable_code,
            format!("no answer within {} s", deadline.as_secs()),
        ),
        Ok(a) => judge(
            &host.spec,
            action,
            a.code.unwrap_or(unreachable_code),
            &a.stdout,
            &a.stderr,
        ),
    }
}

/// What one ssh run gave.
struct Answer {
    /// Its exit code; `None` when a signal ended it.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Answer {
    /// ssh's own failure (255) with the words OpenSSH prints when the server closes or
    /// resets the connection before the key exchange.
    fn dropped_before_key_exchange(&self) -> bool {
        self.code == Some(255)
            && (self.stderr.contains("kex_exchange_identification")
                || self.stderr.contains("ssh_exchange_identification"))
    }

    fn last_error_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
    }
}

/// Why there is no [`Answer`].
enum Failure {
    Spawn(std::io::Error),
    Pipes,
    Deadline,
}

/// One ssh run, until it ends or `until`. The wait blocks on the child (a thread per ssh):
/// no polling delay between ssh's exit and the answer.
fn attempt(host: &Host, remote: &[String], until: Option<Instant>) -> Result<Answer, Failure> {
    let mut child = ssh_command(host, remote).spawn().map_err(Failure::Spawn)?;
    let pid = child.id();
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        kill_tree(pid);
        let _ = child.wait();
        return Err(Failure::Pipes);
    };
    // Bytes, not text: a host may answer with anything, and what is not UTF-8 is shown
    // with replacement characters rather than lost.
    let rx_out = read_all(out);
    let rx_err = read_all(err);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait().ok().map(|s| s.code()));
    });
    let status = match until {
        None => rx.recv().ok().flatten(),
        Some(u) => match rx.recv_timeout(u.saturating_duration_since(Instant::now())) {
            Ok(s) => s,
            Err(_) => {
                kill_tree(pid);
                let _ = rx.recv();
                return Err(Failure::Deadline);
            }
        },
    };
    // The output is complete once ssh and what it started are gone; a process that left
    // ssh's session with our pipes gets a moment, not the deadline again.
    Ok(Answer {
        code: status.flatten(),
        stdout: rx_out.recv_timeout(PIPE_GRACE).unwrap_or_default(),
        stderr: rx_err.recv_timeout(PIPE_GRACE).unwrap_or_default(),
    })
}

/// Read `pipe` to its end on a thread of its own; the text arrives on the channel.
fn read_all(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = pipe.read_to_end(&mut v);
        let _ = tx.send(String::from_utf8_lossy(&v).into_owned());
    });
    rx
}

/// The pause before the second try of a dropped connection: 200 to 700 ms, different for
/// each host (its name and this process), so that the retries do not arrive together again.
fn retry_pause(host: &Host) -> Duration {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(&host.spec);
    Duration::from_millis(200 + random % 500)
}

/// How long the output of a finished ssh may take to reach its end.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Kill ssh and every process below it: its `ProxyCommand` holds our pipes too, and a hung
/// one would outlive the deadline. (A `ControlPersist` master has left ssh's process tree by
/// then, and is not touched.)
fn kill_tree(pid: u32) {
    let below = ProcReader::new("/proc").descendants(pid);
    for pid in std::iter::once(pid).chain(below) {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}
