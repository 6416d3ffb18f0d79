//! Sequences of events, as operators and systemd produce them, against a model of the stack:
//! a state-machine property test (`proptest-state-machine`) over the real-systemd harness.
//!
//! The model ([`Model`]) knows whether the stack runs, which components the operator stopped
//! and which are masked. Random sequences of [`Step`]s (`start`, `stop`, `restart`, `start
//! NAME`, `restart NAME`, `stop NAME`, `status`, `kill -9` of a component, `SIGSTOP` of one
//! (hung), `systemctl mask` and `unmask` of one, `daemon-reload`, `daemon-reexec`, a
//! supervisor restart, a restart of the bus) run against a fresh private systemd each; after
//! every step the invariants ([`check`]) hold: `status --json` agrees with systemd for every
//! unit and its exit code with the model; the supervisor is active whenever the stack runs,
//! never restarted by systemd; a component the operator stopped stays stopped, a killed or
//! hung one is back; a command that would start a masked unit exits 5 and changes nothing,
//! while `stop` still stops it; after `stop` no process is left; every command exits with a
//! documented code; no alert. A failure shrinks to the shortest failing sequence, and the
//! seed is printed first.
//!
//! CI runs 3 cases of up to 25 steps (`IMAGESERVING_SEQ_CASES`, `IMAGESERVING_SEQ_STEPS`,
//! `IMAGESERVING_SEQ_SEED` change that; `scripts/soak.sh [SEED] [STEPS] [CASES]` runs as long
//! as asked).

use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};
use imageserving::systemd::ActiveState;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use crate::harness::{signal, Options, Sandbox};

/// How long the stack may take to settle after a step.
const SETTLE: Duration = Duration::from_secs(30);

/// What the operator has made of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    running: bool,
    /// Per component (in [`Component::ALL`] order): stopped by the operator.
    stopped: [bool; 3],
    /// Per component: masked (`systemctl mask`).
    masked: [bool; 3],
}

impl Model {
    fn index(c: Component) -> usize {
        Component::ALL.iter().position(|x| *x == c).unwrap_or(0)
    }

    fn masked(&self, c: Component) -> bool {
        self.masked.get(Model::index(c)).copied().unwrap_or(false)
    }

    /// `start` and `restart` refuse (exit 5, nothing changed) while any unit is masked.
    fn any_masked(&self) -> bool {
        self.masked.iter().any(|m| *m)
    }
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Start,
    Stop,
    Restart,
    RestartOne(Component),
    StartOne(Component),
    StopOne(Component),
    Mask(Component),
    Unmask(Component),
    BusRestart,
    Status,
    Kill(Component),
    Hang(Component),
    DaemonReload,
    DaemonReexec,
    SupervisorRestart,
}

pub struct Reference;

fn component() -> impl Strategy<Value = Component> {
    prop_oneof![
        Just(Component::Platform),
        Just(Component::Image),
        Just(Component::Svg)
    ]
}

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            running: false,
            stopped: [true; 3],
            masked: [false; 3],
        })
        .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let always = prop_oneof![
            3 => Just(Step::Start),
            1 => Just(Step::Stop),
            2 => Just(Step::Restart),
            2 => Just(Step::Status),
            1 => Just(Step::DaemonReload),
            1 => Just(Step::DaemonReexec),
            1 => Just(Step::BusRestart),
            1 => component().prop_map(Step::Mask),
            2 => component().prop_map(Step::Unmask),
        ];
        if !state.running {
            return always.boxed();
        }
        prop_oneof![
            4 => always,
            2 => component().prop_map(Step::RestartOne),
            1 => component().prop_map(Step::StartOne),
            2 => component().prop_map(Step::StopOne),
            2 => component().prop_map(Step::Kill),
            1 => component().prop_map(Step::Hang),
            1 => Just(Step::SupervisorRestart),
        ]
        .boxed()
    }

    fn preconditions(state: &Model, step: &Step) -> bool {
        match step {
            // Acts on a running stack only; a kill or a hang on a running component.
            Step::RestartOne(_)
            | Step::StartOne(_)
            | Step::StopOne(_)
            | Step::SupervisorRestart => state.running,
            // A masked unit that dies has no unit file to be restarted by: not a case here.
            Step::Kill(c) | Step::Hang(c) => {
                state.running && !state.stopped[Model::index(*c)] && !state.masked(*c)
            }
            Step::Mask(c) => !state.masked(*c),
            Step::Unmask(c) => state.masked(*c),
            _ => true,
        }
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        match step {
            Step::Start | Step::Restart if !state.any_masked() => {
                state.running = true;
                state.stopped = [false; 3];
            }
            Step::Stop => {
                state.running = false;
                state.stopped = [true; 3];
            }
            Step::RestartOne(c) | Step::StartOne(c) if !state.masked(*c) => {
                state.stopped[Model::index(*c)] = false;
            }
            Step::Mask(c) => state.masked[Model::index(*c)] = true,
            Step::Unmask(c) => state.masked[Model::index(*c)] = false,
            Step::StopOne(c) => state.stopped[Model::index(*c)] = true,
            // Killed and hung ones are brought back (systemd, the supervisor); a start
            // refused for a masked unit, and the others, change nothing the operator decided.
            _ => {}
        }
        state
    }
}

pub struct StackTest;

/// Probes that make a hang show within two seconds.
fn options() -> Options {
    let fast = "Environment=IMAGESERVING_PROBE_TIMEOUT_SEC=0.3 IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_START_GRACE_SEC=2";
    Options::default()
        .service(Component::Platform, fast)
        .service(Component::Image, fast)
        .service(Component::Svg, fast)
}

impl StateMachineTest for StackTest {
    type SystemUnderTest = Sandbox;
    type Reference = Reference;

    fn init_test(_: &Model) -> Sandbox {
        Sandbox::with(options())
    }

    fn apply(sb: Sandbox, model: &Model, step: Step) -> Sandbox {
        let cmd = |args: &[&str], codes: &[i32]| {
            let r = sb.run(args);
            assert!(
                !r.stderr.contains("panicked") && codes.contains(&r.code),
                "{args:?}: exit {} (expected {codes:?})\n{}{}",
                r.code,
                r.stdout,
                r.stderr
            );
        };
        // A command that would start a masked unit: exit 5 (not installed), nothing changed.
        let all = if model.any_masked() { &[5][..] } else { &[0] };
        let one = |c: Component| if model.masked(c) { &[5][..] } else { &[0] };
        match step {
            Step::Start => cmd(&["start"], all),
            Step::Stop => cmd(&["stop"], &[0]),
            Step::Restart => cmd(&["restart"], all),
            Step::RestartOne(c) => cmd(&["restart", c.short_name()], one(c)),
            Step::StartOne(c) => cmd(&["start", c.short_name()], one(c)),
            Step::Mask(c) => sb.mask(c.unit()),
            Step::Unmask(c) => sb.unmask(c.unit()),
            Step::BusRestart => {
                sb.systemctl(&["restart", "dbus.service"]).code(0);
                // Long enough for the supervisor to notice and reconnect.
                std::thread::sleep(Duration::from_secs(2));
            }
            Step::StopOne(c) => cmd(&["stop", c.short_name()], &[0]),
            Step::Status => {
                let all_up = model.running && model.stopped.iter().all(|s| !s);
                cmd(&["status"], if all_up { &[0] } else { &[3] });
            }
            Step::Kill(c) => {
                let pid = sb.main_pid(c);
                signal(pid, "KILL");
                sb.wait_replaced(c.unit(), pid, SETTLE);
            }
            Step::Hang(c) => {
                let pid = sb.main_pid(c);
                signal(pid, "STOP");
                sb.wait_replaced(c.unit(), pid, SETTLE);
            }
            Step::DaemonReload => sb.reload(),
            Step::DaemonReexec => {
                sb.systemctl(&["daemon-reexec"]).code(0);
                sb.wait_manager(SETTLE);
            }
            Step::SupervisorRestart => {
                let old = sb.state(SUPERVISOR).main_pid;
                sb.manager()
                    .restart_unit(SUPERVISOR)
                    .expect("restart the supervisor");
                sb.wait_replaced(SUPERVISOR, old, SETTLE);
            }
        }
        sb
    }

    fn check_invariants(sb: &Sandbox, model: &Model) {
        check(sb, model);
    }
}

/// The invariants, once the stack has settled (no job pending, every unit where the model
/// says, within [`SETTLE`]).
fn check(sb: &Sandbox, model: &Model) {
    let want = |c: usize| model.running && !model.stopped.get(c).copied().unwrap_or(true);
    let deadline = Instant::now() + SETTLE;
    loop {
        let settled = Component::ALL.iter().enumerate().all(|(i, c)| {
            let s = sb.state(c.unit());
            s.job_id == 0
                && if want(i) {
                    s.active_state == ActiveState::Active
                } else {
                    s.active_state.is_down()
                }
        });
        let sup = sb.state(SUPERVISOR);
        let sup_ok = sup.job_id == 0
            && if model.running {
                sup.active_state == ActiveState::Active
            } else {
                sup.active_state.is_down()
            };
        if settled && sup_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled within {SETTLE:?} for {model:?}: supervisor {}, {}",
            sup.summary(),
            Component::ALL
                .iter()
                .map(|c| format!("{c} {}", sb.state(c.unit()).summary()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The supervisor: never restarted by systemd.
    if model.running {
        assert_eq!(sb.state(SUPERVISOR).restarts, 0, "the supervisor restarted");
    }
    // status --json agrees with systemd, and its exit code with the model.
    let r = sb.run(&["status", "--json"]);
    let all_up = model.running && model.stopped.iter().all(|s| !s);
    assert_eq!(r.code, if all_up { 0 } else { 3 }, "status: {}", r.stdout);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("status --json");
    assert_eq!(doc["supervisor"]["running"], model.running, "{doc}");
    for c in Component::ALL {
        let row = doc["components"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == c.short_name()))
            .unwrap_or_else(|| panic!("no {c} in {doc}"));
        let s = sb.state(c.unit());
        assert_eq!(row["state"], s.active_state.as_str(), "{c}: {row}");
        if s.main_pid != 0 {
            assert_eq!(row["pid"], s.main_pid, "{c}: {row}");
        }
    }
    // After stop, nothing of the stack is left.
    if !model.running {
        assert!(sb.stack_pids().is_empty(), "left: {:?}", sb.stack_pids());
    }
    // No alert: nothing here is a give-up.
    assert_eq!(sb.alerts(), 0, "alerts:\n{}", sb.alert_log());
}

fn env_number(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's configuration: its seed printed first, so that a failure can be replayed.
fn config() -> Config {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let seed = std::env::var("IMAGESERVING_SEQ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos().into())
                    .unwrap_or(1)
            });
        eprintln!("sequences: seed {seed} (IMAGESERVING_SEQ_SEED={seed} replays it)");
        seed
    });
    Config {
        cases: u32::try_from(env_number("IMAGESERVING_SEQ_CASES", 3)).unwrap_or(3),
        rng_seed: RngSeed::Fixed(seed),
        // Each shrinking step replays a sequence on a new manager: keep it bounded.
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    }
}

fn steps() -> std::ops::Range<usize> {
    1..usize::try_from(env_number("IMAGESERVING_SEQ_STEPS", 25)).unwrap_or(25) + 1
}

prop_state_machine! {
    #![proptest_config(config())]
    #[test]
    fn random_sequences_keep_the_stack_and_status_in_step_with_the_model(sequential steps() => StackTest);
}
