//! A fleet of hosts over OpenSSH: `ImageServing --host H1,H2 status`, `--hosts FILE`, and the
//! rolling `restart --serial N`.
//!
//! Each host runs its own `ImageServing` through `ssh -o BatchMode=yes`, so memory and uptime
//! come from that host's procfs, and the user's own `~/.ssh/config` (keys, `ProxyJump`,
//! `ControlMaster`, host-key checking) applies as it is: no agent, no port, no daemon of ours.
//! Host names are validated before they reach ssh, and the remote command is a fixed argument
//! vector, each word single-quoted for the remote shell, so nothing given can inject a
//! command. One host's failure is its own row; the others go on.

//!
//! The parts: [`Host`] and [`Action`] here; `ssh` runs one host's command; `answer` judges
//! what the host said; `batch` runs many at once and the rolling restart; `report` sums them
//! up as a table, a last line and an exit code.

mod answer;
mod batch;
mod report;
mod ssh;

use crate::component::Component;
use crate::request::LogsRequest;
use crate::systemd::Scope;

pub use crate::host::{parse_host, parse_hosts_file, Host, HostError};
pub use answer::{judge, HostResult};
pub use batch::{in_batches, rolling_restart, run_all};
pub use report::{exit_code, grouped, summary, table};

/// The environment key naming an ssh configuration file to use instead of the user's
/// (`ssh -F`): a fleet's own settings, or a test's.
pub const KEY_SSH_CONFIG: &str = "IMAGESERVING_SSH_CONFIG";

/// How many entries `logs` shows per host with `--host` when `-n` is not given (journalctl's
/// own default without `-n` is all of them).
pub const FLEET_LOG_LINES: u32 = 10;

/// What each host is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `status [COMPONENT]` (as JSON).
    Status(Option<Component>),
    /// `start [COMPONENT]`
    Start(Option<Component>),
    /// `stop [COMPONENT]`
    Stop(Option<Component>),
    /// `restart [COMPONENT]`
    Restart(Option<Component>),
    /// `logs [MEMBER] -n N [--since T] [-o F]` (never `--follow`): text, shown grouped.
    Logs(LogsRequest),
}

impl Action {
    /// The remote argument vector (after the program name).
    pub(crate) fn args(&self, scope: Scope) -> Vec<String> {
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
            Action::Start(c) => {
                args.push("start".into());
                args.extend(c.map(|c| c.short_name().to_owned()));
            }
            Action::Stop(c) => {
                args.push("stop".into());
                args.extend(c.map(|c| c.short_name().to_owned()));
            }
            Action::Restart(c) => {
                args.push("restart".into());
                args.extend(c.map(|c| c.short_name().to_owned()));
            }
            Action::Logs(l) => {
                args.push("logs".into());
                args.extend(l.member.map(|m| m.label().to_owned()));
                args.push(format!("--lines={}", l.lines.unwrap_or(FLEET_LOG_LINES)));
                args.extend(l.since.as_ref().map(|t| format!("--since={t}")));
                args.extend(l.output.as_ref().map(|f| format!("--output={f}")));
            }
        }
        args
    }

    pub(crate) fn is_status(&self) -> bool {
        matches!(self, Action::Status(_))
    }

    /// Whether the answer is text to show whole (logs), not one line.
    pub(crate) fn is_text(&self) -> bool {
        matches!(self, Action::Logs(_))
    }
}

/// Quote a word for a POSIX shell: in single quotes, a quote written as `'\''`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(host: &str, ok: bool, text: &str) -> HostResult {
        HostResult {
            host: host.into(),
            ok,
            exit_code: if ok { 0 } else { 1 },
            error: (!ok).then(|| text.to_owned()),
            status: None,
            said: if ok { text.to_owned() } else { String::new() },
        }
    }

    /// As dshbak -c: one block per distinct answer, in the order of the first host that
    /// gave it; failures are answers of their own, the same failure grouped too.
    #[test]
    fn text_answers_group_by_identical_text() {
        let rule = "----------------";
        let out = grouped(&[
            answered("a", true, "x\ny"),
            answered("b", false, "unreachable (refused)"),
            answered("c", true, "x\ny\n"),
            answered("d", true, ""),
            answered("e", false, "unreachable (refused)"),
        ]);
        assert_eq!(
            out,
            format!(
                "{rule}\na,c (2)\n{rule}\nx\ny\n{rule}\nb,e (2)\n{rule}\n(failed: unreachable (refused))\n{rule}\nd\n{rule}\n"
            )
        );
    }

    #[test]
    fn logs_ask_each_host_for_a_bounded_number_of_entries() {
        let args = Action::Logs(LogsRequest {
            member: Some(crate::component::Member::Supervisor),
            since: Some("1h ago".into()),
            ..LogsRequest::default()
        })
        .args(Scope::User);
        assert_eq!(
            args,
            [
                "--user",
                "--no-ask-password",
                "logs",
                "supervisor",
                "--lines=10",
                "--since=1h ago"
            ]
        );
    }

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
            summary(&results, &Action::Status(None), &[]),
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
        let ok = judge("h1", &Action::Status(None), 0, good, "");
        assert!(ok.ok && ok.status.is_some(), "{ok:?}");
        for bad in [
            "Welcome to h1\n".to_owned() + good,
            r#"{"version":1,"stack":"up"}"#.to_owned(),
            good.get(..40).unwrap().to_owned(),
            String::new(),
            "\u{fffd}\u{fffd}".to_owned(),
        ] {
            for code in [0, 3] {
                let r = judge("h1", &Action::Status(None), code, &bad, "");
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
            let r = judge("h1", &Action::Status(None), code, &out, &err);
            if r.ok {
                proptest::prop_assert!(r.status.is_some());
            }
            let table = table(std::slice::from_ref(&r), &Action::Status(None), Some(60));
            proptest::prop_assert!(table.contains("h1"));
            let _ = judge("h1", &Action::Restart(None), code, &out, &err);
        }
    }
}
