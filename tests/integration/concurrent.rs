//! Two operators at once: a second command while the first one waits. One test body
//! ([`run_pair`]), the pairs and their outcomes as data ([`PAIRS`]); the README's "Two
//! operators at once" says the same in words.
//!
//! ps and svg take a second to start (`--start-delay 1`) and ps one to stop (it exits 143
//! a second after SIGTERM, as a JVM finishing its requests); the second command is started
//! once systemd holds the first one's job on ps, so it always lands while the first waits. Every pair checks: both end within a minute with one of the
//! codes the table allows, never a panic; each prints at most one line on stderr and that
//! line says what happened; the stack ends in the state the table says, with no half-done
//! unit (no job pending, and either every member up or every member down).

use std::time::Duration;

use imageserving::component::{Component, SUPERVISOR};
use imageserving::systemd::ActiveState;

use crate::harness::{eventually, run_with_timeout, Options, Sandbox, IMAGESERVING};

/// How the stack ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Every member active and every component answering.
    Serving,
    /// Every member down, no process of the stack left.
    Down,
}

/// One pair: the first command, the second (started once the first's job runs), the codes
/// each may end with, what the loser's message must say, and how the stack ends.
struct Pair {
    first: &'static [&'static str],
    second: &'static [&'static str],
    first_codes: &'static [i32],
    second_codes: &'static [i32],
    /// Text the first command's stderr must hold when it exits 1.
    first_says: &'static str,
    /// Text the second command's stderr must hold when it exits 1.
    second_says: &'static str,
    end: End,
}

const PAIRS: [Pair; 5] = [
    // Both ask for svg to be restarted and serving: both get it.
    Pair {
        first: &["restart"],
        second: &["restart", "svg"],
        first_codes: &[0],
        second_codes: &[0],
        first_says: "",
        second_says: "",
        end: End::Serving,
    },
    // The stop wins: the stack ends down; the restart says another command stopped it.
    Pair {
        first: &["restart"],
        second: &["stop"],
        first_codes: &[1],
        second_codes: &[0],
        first_says: "another command stopped it",
        second_says: "",
        end: End::Down,
    },
    // The start wins: the stack ends up; the stop says another command started it.
    Pair {
        first: &["stop"],
        second: &["start"],
        first_codes: &[1],
        second_codes: &[0],
        first_says: "another command started it",
        second_says: "",
        end: End::Serving,
    },
    // Two components restarted at once: both restarted, both serve.
    Pair {
        first: &["restart", "ps"],
        second: &["restart", "svg"],
        first_codes: &[0],
        second_codes: &[0],
        first_says: "",
        second_says: "",
        end: End::Serving,
    },
    // A stop while a start waits: the stop wins, the start says so.
    Pair {
        first: &["start"],
        second: &["stop"],
        first_codes: &[1],
        second_codes: &[0],
        first_says: "another command stopped it",
        second_says: "",
        end: End::Down,
    },
];

fn run_pair(pair: &Pair) -> Result<(), String> {
    let sb = Sandbox::with(
        Options::default()
            .arg(Component::Platform, "--start-delay 1 --stop-delay 1")
            .arg(Component::Svg, "--start-delay 1"),
    );
    // `start` as the first command starts a stopped stack; the others act on a running one.
    if pair.first != ["start"] {
        sb.run(&["start"]).code(0);
    }
    let env = sb.env();
    let spawn = |args: &'static [&'static str]| {
        let env = env.clone();
        std::thread::spawn(move || {
            run_with_timeout(
                std::process::Command::new(IMAGESERVING)
                    .arg("--user")
                    .args(args)
                    .env_clear()
                    .envs(env),
                Duration::from_secs(60),
            )
        })
    };
    // The second command comes while the first one waits: once systemd holds the first's
    // job on ps (which takes a second to start and to stop), not after a fixed delay that
    // a loaded machine can outrun.
    let a = spawn(pair.first);
    eventually(
        Duration::from_secs(20),
        "the first command's job on ps",
        || sb.state(Component::Platform.unit()).job_id != 0,
    );
    let b = spawn(pair.second);
    let outs = [
        a.join()
            .map_err(|_| "the first command's thread panicked")?,
        b.join()
            .map_err(|_| "the second command's thread panicked")?,
    ];
    let mut problems = Vec::new();
    for ((args, codes, says), out) in [
        (pair.first, pair.first_codes, pair.first_says),
        (pair.second, pair.second_codes, pair.second_says),
    ]
    .iter()
    .zip(&outs)
    {
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !codes.contains(&code) {
            problems.push(format!(
                "{args:?} exit {code} (expected {codes:?}): {stderr}"
            ));
        }
        if stderr.trim_end().lines().count() > 1 {
            problems.push(format!("{args:?} printed more than one line: {stderr}"));
        }
        if code == 1 && !stderr.contains(says) {
            problems.push(format!("{args:?} does not say {says:?}: {stderr}"));
        }
    }
    // Nothing half-done: no job pending, every member on the same side.
    let members = [
        SUPERVISOR,
        Component::Platform.unit(),
        Component::Image.unit(),
        Component::Svg.unit(),
    ];
    eventually(Duration::from_secs(20), "no job pending", || {
        members.iter().all(|u| sb.state(u).job_id == 0)
    });
    let states: Vec<ActiveState> = members.iter().map(|u| sb.state(u).active_state).collect();
    let ok = match pair.end {
        End::Serving => {
            states.iter().all(|s| *s == ActiveState::Active) && sb.run(&["status"]).code == 0
        }
        End::Down => states.iter().all(|s| s.is_down()) && sb.stack_pids().is_empty(),
    };
    if !ok {
        problems.push(format!("the stack is {states:?} (expected {:?})", pair.end));
    }
    if sb.alerts() != 0 {
        problems.push(format!("alerts: {}", sb.alert_log()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{:?} then {:?}: {}",
            pair.first,
            pair.second,
            problems.join("; ")
        ))
    }
}

#[test]
fn two_operators_at_once_end_as_the_readme_says() {
    let handles: Vec<_> = (0..PAIRS.len())
        .map(|i| std::thread::spawn(move || PAIRS.get(i).map(run_pair)))
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| match h.join() {
            Ok(Some(Ok(()))) => None,
            Ok(Some(Err(e))) => Some(e),
            Ok(None) => None,
            Err(_) => Some("a pair's test panicked".to_owned()),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
