//! A polkit authentication agent on the terminal while `start`, `stop` or `restart` runs, as
//! `systemctl` starts one: `pkttyagent` (from polkit) asks for a password when polkit wants
//! one, and our D-Bus calls carry the flag that lets polkit ask
//! ([`crate::systemd::Manager::allow_interactive_auth`]).

use std::io::{IsTerminal, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::systemd::Scope;

/// How long the agent may take to register with polkit.
const REGISTER_WAIT: Duration = Duration::from_secs(5);

/// The running agent; it ends when this is dropped.
pub struct Agent(Child);

/// How long the agent may take to end on SIGTERM (it restores the terminal's echo then).
const TERM_WAIT: Duration = Duration::from_secs(2);

impl Drop for Agent {
    /// SIGTERM first, as `systemctl` ends its agent: killed outright, an agent that was
    /// asking for a password would leave the terminal with echo off.
    fn drop(&mut self) {
        use rustix::process::{kill_process, Pid, Signal};
        let pid = i32::try_from(self.0.id()).ok().and_then(Pid::from_raw);
        if let Some(pid) = pid {
            let _ = kill_process(pid, Signal::TERM);
            let deadline = std::time::Instant::now() + TERM_WAIT;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether polkit may usefully ask: the system manager (a user manager needs no polkit),
/// not root (who needs none), a person at a terminal, and not `--no-ask-password`.
pub fn wanted(scope: Scope, ask_password: bool) -> bool {
    let euid = crate::procinfo::effective_uid();
    ask_password && scope == Scope::System && euid != 0 && std::io::stdin().is_terminal()
}

/// Start `pkttyagent` for this process and wait until it has registered with polkit (it
/// closes its stdout, given as `--notify-fd 1`, then). `None` when there is no agent to run:
/// the calls then fail with "permission denied" as without a terminal.
pub fn start() -> Option<Agent> {
    let (mut ready, notify) = std::io::pipe().ok()?;
    let child = Command::new("pkttyagent")
        .args(["--notify-fd", "1", "--fallback", "--process"])
        .arg(std::process::id().to_string())
        .stdin(Stdio::inherit())
        .stdout(notify)
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let agent = Agent(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = ready.read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(REGISTER_WAIT);
    Some(agent)
}
