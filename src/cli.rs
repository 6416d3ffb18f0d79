//! The command line, and only that: clap's types, and the parse into a [`Request`] that is
//! handed down to [`crate::commands`]. The top floor: nothing below calls back up here, and
//! nothing here does the work itself.

use clap::{Parser, Subcommand};

use crate::component::{Component, Member};
use crate::error::{exit, Error};
use crate::request::{Command, Fleet, Format, LogsRequest, Request};
use crate::status::StatusRequest;
use crate::systemd::Scope;

/// The whole `ImageServing` command: parse the process's arguments and hand the request down
/// to [`crate::commands`]; returns the exit code.
pub fn main() -> i32 {
    match parse(std::env::args_os()) {
        Ok(Parsed::Run(request)) => crate::commands::execute(&request),
        Ok(Parsed::Print(text)) => {
            crate::output::out(&text);
            exit::OK
        }
        Err(e) => crate::commands::report(&e, e.exit_code()),
    }
}

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
    /// With --host: how many hosts to work on at once (ssh sessions open at once; also
    /// within each batch of a rolling restart).
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
    /// Start the Server Supervisor and every component, or only the component named (ps, is
    /// or svg: after 'stop NAME'); return once what was started serves.
    Start {
        /// Start only this component (and its socket, when switched on); the others are not
        /// touched, and one that runs is left as it is.
        component: Option<Component>,
    },
    /// Stop every component and the Server Supervisor, or only the component named (ps, is
    /// or svg); return once no process of what was stopped is left.
    ///
    /// A component stopped alone stays stopped (maintenance): the supervisor does not start
    /// it again; 'ImageServing start' or 'restart NAME' does.
    Stop {
        /// Stop only this component; the others and the supervisor keep running.
        component: Option<Component>,
    },
    /// Restart the whole stack, or only the component named (ps, is or svg).
    Restart {
        /// Restart only this component; the others keep running untouched.
        component: Option<Component>,
        /// With --host: a rolling restart, N hosts at a time; the next batch starts once the
        /// previous one serves again, and the first failed batch stops it. Within a batch,
        /// at most --parallel hosts are worked on at once.
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
        /// Also ask each active component's health probe now, as the supervisor does (the
        /// PROBE column; "probe" in JSON).
        #[arg(long)]
        probe: bool,
        /// With --json: keep printing, one compact document per line, whenever a unit of
        /// the stack changes and at the latest every --every seconds (for a web page).
        #[arg(long, requires = "json")]
        follow: bool,
        /// With --follow: the longest time between two documents, in seconds.
        #[arg(
            long,
            value_name = "SECONDS",
            default_value_t = 5.0,
            requires = "follow"
        )]
        every: f64,
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
        /// journalctl's output format: short (the default), short-iso, short-precise,
        /// short-monotonic, with-unit, cat (the messages alone: with --host, hosts that
        /// logged the same group together), json or verbose.
        #[arg(short = 'o', long, value_name = "FORMAT", value_parser = [
            "short", "short-iso", "short-precise", "short-monotonic", "with-unit", "cat", "json", "verbose",
        ])]
        output: Option<String>,
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

/// The request `args` make, checked for what clap cannot check.
fn request(args: Args) -> Result<Request, Error> {
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
        CommandArgs::Start { component } => Command::Start(component),
        CommandArgs::Stop { component } => Command::Stop(component),
        CommandArgs::Metrics { http } => Command::Metrics { http },
        CommandArgs::Alert { unit } => Command::Alert(unit),
        CommandArgs::Logs {
            member,
            follow,
            lines,
            since,
            output,
        } => Command::Logs(LogsRequest {
            member,
            follow,
            lines,
            since,
            output,
        }),
        CommandArgs::Restart { component, .. } => Command::Restart(component),
        CommandArgs::Status {
            component,
            json,
            pss,
            probe,
            follow,
            every,
        } => Command::Status(
            StatusRequest {
                only: component,
                pss,
                // The cross-check figure is part of the JSON document only.
                systemd_uptime: json,
                // A document for programs is whole: the components also when the
                // supervisor does not run (the table shows the message alone).
                components_anyway: json,
                probe,
            },
            match (json, follow) {
                (true, true) => {
                    if !(every.is_finite() && (0.5..=3600.0).contains(&every)) {
                        return Err(Error::Usage(format!(
                            "--every {every}: give a number of seconds from 0.5 to 3600"
                        )));
                    }
                    Format::JsonLines(std::time::Duration::from_secs_f64(every))
                }
                (true, false) => Format::Json,
                _ => Format::Human,
            },
        ),
    };
    let mut hosts = args.hosts.clone();
    if let Some(file) = &args.hosts_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::Usage(format!("cannot read the host list {}: {e}", file.display()))
        })?;
        hosts.extend(crate::fleet::parse_hosts_file(&text));
    }
    let usage = |m: &str| Err(Error::Usage(format!("{m}; see 'ImageServing --help'")));
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
        match &command {
            Command::Status(_, Format::JsonLines(_)) => {
                return usage("status --follow works on one host")
            }
            Command::Status(..) | Command::Start(_) | Command::Stop(_) | Command::Restart(_) => {}
            Command::Logs(l) if !l.follow => {}
            Command::Logs(_) => return usage(
                "logs --follow works on one host; with --host, logs shows each host's last entries",
            ),
            _ => {
                return usage("--host and --hosts work with status, start, stop, restart and logs")
            }
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

/// What the command line asks for: a request to run, or text for stdout (help, version).
#[derive(Debug)]
pub enum Parsed {
    /// Run this.
    Run(Request),
    /// Print this and exit 0.
    Print(String),
}

/// Parse `args` (program name first). Help and version are [`Parsed::Print`]; anything wrong
/// is an [`Error::Usage`] of one line (exit 2).
pub fn parse<I, T>(args: I) -> Result<Parsed, Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Args::try_parse_from(args) {
        Ok(args) => request(args).map(Parsed::Run),
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Parsed::Print(e.render().to_string()))
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Err(Error::Usage(
                    "a command is needed: start, stop, restart, status, logs or metrics; see 'ImageServing --help'".to_owned(),
                )),
                _ => Err(Error::Usage(one_line_usage_error(&e))),
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
    format!("{first}; see 'ImageServing --help'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Request {
        match parse(std::iter::once("ImageServing").chain(args.iter().copied())).unwrap() {
            Parsed::Run(r) => r,
            Parsed::Print(text) => panic!("printed {text}"),
        }
    }

    fn parse_err(args: &[&str]) -> (String, i32) {
        let e = parse(std::iter::once("ImageServing").chain(args.iter().copied())).unwrap_err();
        (e.to_string(), e.exit_code())
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
    fn stop_takes_one_component_and_logs_an_output_format() {
        assert_eq!(
            parse_ok(&["stop", "svg"]).command,
            Command::Stop(Some(Component::Svg))
        );
        assert_eq!(parse_ok(&["stop"]).command, Command::Stop(None));
        match parse_ok(&["--host", "a", "logs", "svg", "-n", "5", "-o", "cat"]).command {
            Command::Logs(l) => {
                assert_eq!(
                    (l.lines, l.output.as_deref(), l.follow),
                    (Some(5), Some("cat"), false)
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_err(&["logs", "-o", "bogus"]).1, 2);
        assert_eq!(parse_err(&["--host", "a", "logs", "-f"]).1, 2);
        assert_eq!(parse_err(&["--host", "a", "alert", "x.service"]).1, 2);
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
