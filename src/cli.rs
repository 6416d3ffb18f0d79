//! The command line: clap's types stay here; the rest of the crate gets a [`Request`].

use clap::{Parser, Subcommand};

use crate::component::{Component, Member, TARGET};
use crate::control::{Outcome, Stack};
use crate::error::{exit, Error};
use crate::output;
use crate::progress::Progress;
use crate::status::StatusRequest;
use crate::systemd::Scope;

/// Control the Image Serving stack: the Server Supervisor, the Platform Server (ps), the Image
/// Server (is) and the SVG server (svg), run as systemd units under imageserving.target.
#[derive(Debug, Parser)]
#[command(name = "ImageServing", version)]
#[command(after_help = "Components: ps (platform), is (image), svg.\n\
Exit codes: 0 success; 1 failure; 2 bad arguments; 4 permission denied; 5 not installed.\n\
status: 0 running; 3 not running; 4 state unknown.")]
struct Args {
    /// Talk to your own user service manager instead of the system manager.
    #[arg(long, global = true, conflicts_with = "system")]
    user: bool,
    /// Talk to the system service manager (the default).
    #[arg(long, global = true)]
    system: bool,
    /// Never ask for a password: without the right to act, fail with exit 4 at once. (On a
    /// terminal, start, stop and restart otherwise let polkit ask, as systemctl does.)
    #[arg(long, global = true)]
    no_ask_password: bool,
    /// Run the command on this host over ssh ([USER@]HOST[:PORT]); repeat it or separate
    /// hosts with commas. For status, start, stop and restart.
    #[arg(
        long = "host",
        global = true,
        value_delimiter = ',',
        value_name = "HOST"
    )]
    hosts: Vec<String>,
    /// Read the hosts from FILE: one per line, '#' starts a comment.
    #[arg(long = "hosts", global = true, value_name = "FILE")]
    hosts_file: Option<std::path::PathBuf>,
    /// With --host: how many hosts to work on at once.
    #[arg(long, global = true, default_value_t = 32, value_name = "N")]
    parallel: usize,
    /// With --host: how long one host may take, in seconds.
    #[arg(
        long = "host-timeout",
        global = true,
        default_value_t = 600,
        value_name = "SECONDS"
    )]
    host_timeout: u64,
    /// On a terminal, show every column of a table whole (status, the fleet's table)
    /// instead of fitting it to the terminal's width. Piped output is always whole.
    #[arg(short = 'l', long, global = true)]
    full: bool,
    #[command(subcommand)]
    command: CommandArgs,
}

#[derive(Debug, Subcommand)]
enum CommandArgs {
    /// Start the Server Supervisor and every component; return once the stack serves.
    Start,
    /// Stop every component and the Server Supervisor; return once no process is left.
    Stop,
    /// Restart the whole stack, or only the component named (ps, is or svg).
    Restart {
        /// Restart only this component; the others keep running untouched.
        component: Option<Component>,
        /// With --host: a rolling restart, N hosts at a time; the next batch starts once the
        /// previous one serves again, and the first failed batch stops it.
        #[arg(long, value_name = "N")]
        serial: Option<usize>,
    },
    /// Show uptime and memory of every component, or of the one named.
    ///
    /// Exit 0 when the supervisor and every component asked for run, 3 when one does not
    /// (with a message instead of the table when the supervisor does not run), 4 when the
    /// state cannot be read.
    Status {
        /// Show only this component.
        component: Option<Component>,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
        /// Report proportional set size (shared pages counted once) instead of RSS; needs
        /// the right to read the processes' memory maps.
        #[arg(long)]
        pss: bool,
    },
    /// Show the journal of the stack's units, merged, or of one (as journalctl does).
    Logs {
        /// Only this member: ps, is, svg or supervisor.
        member: Option<Member>,
        /// Keep printing new entries as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// Show the last N entries.
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<u32>,
        /// Show entries since TIME (as journalctl takes it: "2026-11-27 10:00", "1h ago",
        /// "today").
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
    /// Send the alert for UNIT that failed for good (what imageserving-alert@UNIT.service
    /// runs; run it by hand to try the alert command).
    Alert {
        /// The unit: imageserving-supervisor.service or a component's unit.
        unit: String,
    },
    /// Print the stack's metrics for Prometheus (text exposition format 0.0.4).
    ///
    /// Every component's state, uptime, memory, processes and restarts, and whether it
    /// answers a health probe made for this scrape; whether the supervisor runs. Served over
    /// HTTP by imageserving-metrics.socket once enabled.
    Metrics {
        /// Answer one HTTP request read on stdin, on stdout (how imageserving-metrics@.service
        /// runs it for each connection).
        #[arg(long)]
        http: bool,
    },
}

/// The command-line definition, for generating the man page and shell completions.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

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
    /// `start`
    Start,
    /// `stop`
    Stop,
    /// `restart`, optionally of one component.
    Restart(Option<Component>),
    /// `status`, with how to print it.
    Status(StatusRequest, Format),
    /// `logs`: journalctl with the stack's units.
    Logs {
        /// Only this member's unit.
        member: Option<Member>,
        /// `-f`
        follow: bool,
        /// `-n N`
        lines: Option<u32>,
        /// `--since TIME`
        since: Option<String>,
    },
    /// `alert UNIT`
    Alert(String),
    /// `metrics`, printed or served over HTTP.
    Metrics {
        /// Answer one HTTP request on stdin and stdout.
        http: bool,
    },
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Human,
    /// One JSON document.
    Json,
}

impl Request {
    fn from_args(args: Args) -> Result<Request, (String, i32)> {
        let serial = match &args.command {
            CommandArgs::Restart { serial, .. } => *serial,
            _ => None,
        };
        let scope = if args.user {
            Scope::User
        } else {
            Scope::System
        };
        let command = match args.command {
            CommandArgs::Start => Command::Start,
            CommandArgs::Stop => Command::Stop,
            CommandArgs::Metrics { http } => Command::Metrics { http },
            CommandArgs::Alert { unit } => Command::Alert(unit),
            CommandArgs::Logs {
                member,
                follow,
                lines,
                since,
            } => Command::Logs {
                member,
                follow,
                lines,
                since,
            },
            CommandArgs::Restart { component, .. } => Command::Restart(component),
            CommandArgs::Status {
                component,
                json,
                pss,
            } => Command::Status(
                StatusRequest {
                    only: component,
                    pss,
                    // The cross-check figure is part of the JSON document only.
                    systemd_uptime: json,
                    components_anyway: false,
                },
                if json { Format::Json } else { Format::Human },
            ),
        };
        let mut hosts = args.hosts.clone();
        if let Some(file) = &args.hosts_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                (
                    format!(
                        "ImageServing: cannot read the host list {}: {e}",
                        file.display()
                    ),
                    exit::USAGE,
                )
            })?;
            hosts.extend(crate::fleet::parse_hosts_file(&text));
        }
        let usage = |m: &str| {
            Err((
                format!("ImageServing: {m}; see 'ImageServing --help'"),
                exit::USAGE,
            ))
        };
        if serial == Some(0) || args.parallel == 0 {
            return usage("--serial and --parallel take a number of hosts above 0");
        }
        if args.host_timeout == 0 {
            return usage("--host-timeout takes a number of seconds above 0");
        }
        let fleet = if hosts.is_empty() {
            if serial.is_some() {
                return usage(
                    "--serial is for a rolling restart of hosts given with --host or --hosts",
                );
            }
            None
        } else {
            if !matches!(
                command,
                Command::Status(..) | Command::Start | Command::Stop | Command::Restart(_)
            ) {
                return usage("--host and --hosts work with status, start, stop and restart");
            }
            Some(Fleet {
                hosts,
                parallel: args.parallel,
                deadline: std::time::Duration::from_secs(args.host_timeout),
                serial,
            })
        };
        Ok(Request {
            fleet,
            scope,
            ask_password: !args.no_ask_password,
            full: args.full,
            command,
        })
    }
}

/// Parse `args` (program name first). `Err` carries what to print and the exit code: help and
/// version go to stdout with 0, usage errors to stderr as one line with 2.
pub fn parse<I, T>(args: I) -> Result<Request, (String, i32)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Args::try_parse_from(args) {
        Ok(args) => Request::from_args(args),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let code = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        exit::USAGE
                    } else {
                        exit::OK
                    };
                    Err((e.render().to_string(), code))
                }
                _ => Err((one_line_usage_error(&e), exit::USAGE)),
            }
        }
    }
}

/// clap's message without its usage block: `unexpected argument 'x' found`.
fn one_line_usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    format!("ImageServing: {first}; see 'ImageServing --help'")
}

/// Run a parsed request; returns the process exit code.
pub fn execute(request: &Request) -> i32 {
    let scope = request.scope;
    if let Some(fleet) = &request.fleet {
        return on_fleet(fleet, scope, &request.command, request.full);
    }
    let ask = request.ask_password;
    match request.command {
        Command::Status(req, format) => status(scope, req, format, request.full),
        Command::Alert(ref unit) => crate::alert::run(scope, unit),
        Command::Logs {
            member,
            follow,
            lines,
            ref since,
        } => logs(scope, member, follow, lines, since.as_deref()),
        Command::Metrics { http: false } => match crate::status::metrics_text(scope) {
            Ok(text) => {
                output::out(&text);
                exit::OK
            }
            Err(e) => report(&e, e.status_exit_code()),
        },
        Command::Metrics { http: true } => crate::serve::one_request(|| {
            crate::status::metrics_text(scope).map_err(|e| e.to_string())
        }),
        Command::Start => control(
            scope,
            ask,
            ("Starting", "Image Serving"),
            TARGET,
            Stack::start,
        ),
        Command::Stop => control(
            scope,
            ask,
            ("Stopping", "Image Serving"),
            TARGET,
            Stack::stop,
        ),
        Command::Restart(None) => control(
            scope,
            ask,
            ("Restarting", "Image Serving"),
            TARGET,
            Stack::restart,
        ),
        Command::Restart(Some(c)) => control(
            scope,
            ask,
            ("Restarting", c.short_name()),
            c.unit(),
            |stack, p| stack.restart_component(c, p),
        ),
    }
}

/// `(verb, what)`: `("Restarting", "svg")`, for the progress line and the interrupt message.
fn control(
    scope: Scope,
    ask_password: bool,
    (verb, what): (&str, &str),
    unit: &str,
    action: impl FnOnce(&Stack, &mut Progress) -> Result<Outcome, Error>,
) -> i32 {
    let mut progress = Progress::for_stderr(&format!("{verb} {what}"));
    on_interrupt(format!(
        "ImageServing: interrupted; systemd goes on {} {unit}: see 'ImageServing{} status'\n",
        verb.to_lowercase(),
        scope.flag()
    ));
    // As systemctl: on a terminal, polkit may ask for a password through a text agent.
    let interactive = crate::agent::wanted(scope, ask_password);
    let agent = interactive.then(crate::agent::start).flatten();
    let outcome =
        Stack::open(scope, agent.is_some()).and_then(|stack| action(&stack, &mut progress));
    drop(agent);
    progress.clear();
    match outcome {
        Ok(outcome) => {
            // On a terminal, broken at spaces to fit: a line the terminal wraps is one it
            // cannot erase or redraw.
            let text = outcome.to_string();
            let lines = match crate::terminal::stdout_width() {
                Some(w) => crate::terminal::wrap(&text, w),
                None => vec![text],
            };
            output::out(&format!("{}\n", lines.join("\n")));
            exit::OK
        }
        Err(e) => {
            let code = report(&e, e.exit_code());
            if let Some(unit) = e.failed_unit() {
                explain_from_journal(scope, unit);
            }
            code
        }
    }
}

/// After a unit's failure, its last journal lines and how to see more, as `systemctl
/// status` shows them: what the program itself said is usually the reason (a wrong
/// JAVA_HOME, a missing file). Nothing when the journal cannot be read.
fn explain_from_journal(scope: Scope, unit: &str) {
    const LINES: u32 = 8;
    if let Some(lines) = crate::journal::last_lines(scope, unit, LINES) {
        let mut text = format!("Last journal lines of {unit}:\n");
        for line in lines {
            text.push_str("  ");
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!(
            "See more with '{}'.\n",
            crate::journal::hint(scope, unit)
        ));
        output::err(&text);
    }
}

fn status(scope: Scope, req: StatusRequest, format: Format, full: bool) -> i32 {
    match crate::status::collect(scope, req) {
        Ok(s) => {
            match format {
                Format::Human => output::out(&crate::status::human(
                    &s,
                    crate::status::Style::detect(full),
                )),
                Format::Json => match serde_json::to_string_pretty(&s) {
                    Ok(text) => output::out(&format!("{text}\n")),
                    Err(e) => return report(&Error::Encode(e.to_string()), exit::FAILURE),
                },
            }
            crate::status::exit_code(&s)
        }
        Err(e) => {
            let code = e.status_exit_code();
            if format == Format::Json {
                // Monitoring scripts parse stdout: give them a document that says why.
                let doc = serde_json::json!({ "error": e.to_string(), "exit_code": code });
                output::out(&format!("{doc}\n"));
            }
            report(&e, code)
        }
    }
}

/// On Ctrl-C (or SIGTERM, SIGHUP) while `start`, `stop` or `restart` waits: erase the
/// progress line, say that systemd's job goes on (only the wait ends), and exit 128 + the
/// signal's number, as a shell reports a command a signal ended. Best effort: without a
/// signal thread the default action (termination) remains.
fn on_interrupt(message: String) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                use std::io::{IsTerminal, Write};
                // Holding stderr's lock until the exit keeps the progress line from being
                // drawn again.
                let mut err = std::io::stderr().lock();
                if err.is_terminal() {
                    let _ = err.write_all(b"\r\x1b[2K");
                }
                let _ = err.write_all(message.as_bytes());
                let _ = err.flush();
                std::process::exit(128 + signal);
            }
        });
}

/// Run the command on every host of `fleet` over ssh: a table (or `--json` for status), and a
/// last line that sums up; the exit code is the most severe of the hosts'.
fn on_fleet(fleet: &Fleet, scope: Scope, command: &Command, full: bool) -> i32 {
    use crate::fleet::{self, Action};
    let mut hosts = Vec::new();
    for spec in &fleet.hosts {
        match fleet::parse_host(spec) {
            Ok(h) => hosts.push(h),
            Err(e) => {
                output::err(&format!("ImageServing: invalid host {e}\n"));
                return exit::USAGE;
            }
        }
    }
    let (action, json) = match *command {
        Command::Status(req, format) => (Action::Status(req.only), format == Format::Json),
        Command::Start => (Action::Start, false),
        Command::Stop => (Action::Stop, false),
        Command::Restart(c) => (Action::Restart(c), false),
        _ => return exit::USAGE,
    };
    let (results, left) = match (action, fleet.serial) {
        (Action::Restart(c), Some(n)) => {
            fleet::rolling_restart(&hosts, c, scope, n, fleet.deadline)
        }
        _ => (
            fleet::run_all(&hosts, action, scope, fleet.parallel, fleet.deadline),
            Vec::new(),
        ),
    };
    if json {
        match serde_json::to_string_pretty(&results) {
            Ok(text) => output::out(&format!("{text}\n")),
            Err(e) => return report(&Error::Encode(e.to_string()), exit::FAILURE),
        }
    } else {
        let width = if full {
            None
        } else {
            crate::terminal::stdout_width()
        };
        output::out(&fleet::table(&results, action, width));
    }
    output::err(&format!("{}\n", fleet::summary(&results, action, &left)));
    let code = fleet::exit_code(&results);
    if code == exit::OK && !left.is_empty() {
        exit::FAILURE
    } else {
        code
    }
}

/// Become `journalctl` with the stack's units (or one member's): its output, pager and
/// follow mode are the ones operators know.
fn logs(
    scope: Scope,
    member: Option<Member>,
    follow: bool,
    lines: Option<u32>,
    since: Option<&str>,
) -> i32 {
    use std::os::unix::process::CommandExt;
    // journalctl itself would say "No journal files were found" and exit 1; this is a
    // permission problem, with its own exit code and what to do.
    if scope == Scope::System && crate::journal::system_journal_readable() == Some(false) {
        output::err("ImageServing: permission denied reading the system journal: run as root or as a member of the group systemd-journal (or adm)\n");
        return exit::PRIVILEGE;
    }
    let units: Vec<&str> = match member {
        Some(m) => vec![m.unit()],
        None => crate::component::stack_units().collect(),
    };
    let mut cmd = std::process::Command::new("journalctl");
    cmd.args(crate::journal::unit_args(scope, &units));
    if follow {
        cmd.arg("--follow");
    }
    if let Some(n) = lines {
        cmd.args(["--lines", &n.to_string()]);
    }
    if let Some(t) = since {
        cmd.args(["--since", t]);
    }
    let e = cmd.exec();
    output::err(&format!(
        "ImageServing: cannot run journalctl: {e} (is systemd's journalctl installed?)\n"
    ));
    exit::FAILURE
}

fn report(e: &Error, code: i32) -> i32 {
    output::err(&format!("ImageServing: {e}\n"));
    code
}

/// The whole command: parse the process arguments and run them.
pub fn run() -> i32 {
    match parse(std::env::args_os()) {
        Ok(request) => execute(&request),
        Err((text, code)) => {
            if code == exit::OK {
                output::out(&text);
            } else {
                output::err(&format!("{}\n", text.trim_end()));
            }
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Request {
        parse(std::iter::once("ImageServing").chain(args.iter().copied())).unwrap()
    }

    fn parse_err(args: &[&str]) -> (String, i32) {
        parse(std::iter::once("ImageServing").chain(args.iter().copied())).unwrap_err()
    }

    #[test]
    fn restart_takes_short_and_long_names() {
        assert_eq!(
            parse_ok(&["restart", "is"]).command,
            Command::Restart(Some(Component::Image))
        );
        assert_eq!(
            parse_ok(&["restart", "platform"]).command,
            Command::Restart(Some(Component::Platform))
        );
        assert_eq!(parse_ok(&["restart"]).command, Command::Restart(None));
    }

    #[test]
    fn fleet_defaults_are_pdsh_fanout_and_ten_minutes() {
        let fleet = parse_ok(&["--host", "a,b", "status"]).fleet.unwrap();
        assert_eq!(fleet.hosts.len(), 2);
        assert_eq!(fleet.parallel, 32);
        assert_eq!(fleet.deadline, std::time::Duration::from_secs(600));
        assert_eq!(fleet.serial, None);
    }

    #[test]
    fn zero_hosts_or_seconds_at_once_are_usage_errors() {
        for args in [
            &["--host", "a", "--parallel", "0", "status"][..],
            &["--host", "a", "--host-timeout", "0", "status"],
            &["--host", "a", "restart", "--serial", "0"],
        ] {
            let (msg, code) = parse_err(args);
            assert_eq!(code, 2, "{args:?}");
            assert_eq!(msg.lines().count(), 1, "{msg}");
            assert!(msg.contains("above 0"), "{msg}");
        }
    }

    #[test]
    fn user_flag_goes_anywhere() {
        assert_eq!(parse_ok(&["--user", "start"]).scope, Scope::User);
        assert_eq!(parse_ok(&["stop", "--user"]).scope, Scope::User);
        assert_eq!(parse_ok(&["stop"]).scope, Scope::System);
    }

    #[test]
    fn unknown_component_is_one_line_with_exit_2() {
        let (msg, code) = parse_err(&["restart", "tomcat"]);
        assert_eq!(code, 2);
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(msg.contains("ps (platform), is (image), svg"), "{msg}");
    }

    #[test]
    fn extra_arguments_are_usage_errors() {
        for args in [
            &["start", "now"][..],
            &["stop", "--force"],
            &["restart", "is", "svg"],
            &["frobnicate"],
            &[],
        ] {
            let (msg, code) = parse_err(args);
            assert_eq!(code, 2, "{args:?}: {msg}");
        }
    }
}
