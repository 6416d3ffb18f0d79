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

/// Run `action` on one host within `deadline`.
pub(super) fn run_one(host: &Host, action: Action, scope: Scope, deadline: Duration) -> HostResult {
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
