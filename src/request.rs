//! What the operator asked for, in the crate's own terms: the command line ([`crate::cli`])
//! parses into a [`Request`], and [`crate::commands`] runs it. Nothing here knows clap.

use crate::component::{Component, Member};
use crate::status::StatusRequest;
use crate::systemd::Scope;

/// Where a command runs: here, or on hosts over ssh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The hosts, as given (validated when run).
    pub hosts: Vec<String>,
    /// How many at once.
    pub parallel: usize,
    /// How long one host may take.
    pub deadline: std::time::Duration,
    /// For restart: hosts per batch of a rolling restart.
    pub serial: Option<usize>,
}

/// What the operator asked for, in the crate's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `None`: this host. Else the fleet to run it on.
    pub fleet: Option<Fleet>,
    /// Which manager.
    pub scope: Scope,
    /// Whether polkit may ask for a password on the terminal (`--no-ask-password` says no).
    pub ask_password: bool,
    /// Tables whole on a terminal too (`--full`).
    pub full: bool,
    /// What to do.
    pub command: Command,
}

/// One action on the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `start`, optionally of one component.
    Start(Option<Component>),
    /// `stop`, optionally of one component.
    Stop(Option<Component>),
    /// `restart`, optionally of one component.
    Restart(Option<Component>),
    /// `status`, with how to print it.
    Status(StatusRequest, Format),
    /// `logs`: journalctl with the stack's units.
    Logs(LogsRequest),
    /// `alert UNIT`
    Alert(String),
    /// `metrics`, printed or served over HTTP.
    Metrics {
        /// Answer one HTTP request on stdin and stdout.
        http: bool,
    },
}

/// What `logs` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogsRequest {
    /// Only this member's unit.
    pub member: Option<Member>,
    /// `-f`
    pub follow: bool,
    /// `-n N`
    pub lines: Option<u32>,
    /// `--since TIME`
    pub since: Option<String>,
    /// `-o FORMAT`, journalctl's output format.
    pub output: Option<String>,
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Human,
    /// One JSON document.
    Json,
    /// One compact JSON document per line: now, then again whenever a unit of the stack
    /// changes, and at the latest after this long (`status --json --follow`).
    JsonLines(std::time::Duration),
}
