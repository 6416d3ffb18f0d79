//! Every state an operator can leave one component in, crossed with every event that can come
//! next: one test body ([`run_row`]), the states and events as data ([`State`], [`Event`]),
//! the outcome of each pair from one table ([`expect`]). The README's "What happens when"
//! table says the same in words.
//!
//! The component put in each state is svg; ps and is serve throughout, and every row checks
//! what happened to them too. Each row gets a fresh private manager. One test per state runs
//! its events a few at a time, so a failure names the state, the event and what differed.
//!
//! Rows that need the package (an upgrade) are in the booted-system stage
//! (`booted::upgrade`).

use std::time::{Duration, Instant};

use imageserving::component::{Component, SUPERVISOR};
use imageserving::systemd::ActiveState;

use crate::harness::{eventually, is_alive, signal, Options, Run, Sandbox, STANDIN};

/// The component put in a state.
const SUBJECT: Component = Component::Svg;
/// The component `restart` of "another component" restarts.
const OTHER: Component = Component::Image;
/// How long a row may take to settle after its event.
const SETTLE: Duration = Duration::from_secs(30);

/// What the operator (or the world) left the subject in before the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Active and answering its probe.
    Serving,
    /// A start job is running (its `ExecStartPre=` takes 3 s).
    Activating,
    /// `systemctl stop`: inactive, no job.
    Stopped,
    /// It crashed until its start limit: systemd gave up (`failed`).
    Failed,
    /// It crashes and `Restart=` brings it back (`auto-restart`), within its start limit.
    CrashLooping,
    /// Alive, but it stopped answering (as a deadlocked JVM).
    Hung,
    /// Stopped and masked for maintenance.
    Masked,
    /// Its unit file was removed while it runs (`not-found`, active).
    FileRemoved,
    /// Running, but it never answers: a Tomcat whose connector could not bind its port keeps
    /// running exactly like this (the stand-in with `--stay-on-bind-error`, its port held by
    /// a listener that never answers).
    NeverAnswers,
}

/// What comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    Stop,
    Restart,
    RestartThis,
    RestartOther,
    /// `stop svg`: maintenance of the subject alone.
    StopThis,
    StatusAll,
    StatusThis,
    Metrics,
    /// The supervisor is restarted (a crash or a package upgrade does this).
    SupervisorRestart,
    DaemonReload,
    DaemonReexec,
    /// The session bus (dbus-daemon) restarts: the supervisor loses its connection.
    BusRestart,
    /// The supervisor's own start timeout (`IMAGESERVING_START_TIMEOUT_SEC`) expires while it
    /// waits for the subject.
    StartTimeout,
}

pub const EVENTS: [Event; 14] = [
    Event::Start,
    Event::Stop,
    Event::Restart,
    Event::RestartThis,
    Event::RestartOther,
    Event::StopThis,
    Event::StatusAll,
    Event::StatusThis,
    Event::Metrics,
    Event::SupervisorRestart,
    Event::DaemonReload,
    Event::DaemonReexec,
    Event::BusRestart,
    Event::StartTimeout,
];

/// Where the subject ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// Active and answering.
    Serving,
    /// Not running, and it stays so (nothing starts it behind the operator's back).
    Down,
    /// Still running, unit file or not.
    Running,
    /// Whatever its own course brings (a crash loop ends when systemd gives up).
    Any,
}

/// What happens to ps and is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Others {
    /// They keep their main PIDs.
    Kept,
    /// Both get new main PIDs.
    Replaced,
    /// is (the other component restarted) gets a new one, ps keeps its own.
    OtherReplaced,
    /// Stopped, with no process left.
    Stopped,
}

/// The outcome of one (state, event) row.
#[derive(Debug, Clone, Copy)]
struct Expect {
    /// The exit codes the command may end with (`None` for events that are no command).
    codes: Option<&'static [i32]>,
    subject: Subject,
    others: Others,
    /// Whether the supervisor runs afterwards (same PID unless the event restarts it).
    supervisor_up: bool,
    /// How many alerts the event leads to, at least and at most: none for anything an
    /// operator does, one per give-up of systemd's.
    alerts: (usize, usize),
}

/// The table. Where a state makes no difference the arms say so with `_`.
fn expect(state: State, event: Event) -> Expect {
    use Event as E;
    use State as S;
    // What a start of the subject leads to, by state.
    let started = match state {
        S::Serving | S::Activating | S::Stopped | S::Hung => (0, Subject::Serving),
        // Its program still crashes: systemd gives up again, and the command says so.
        S::Failed | S::CrashLooping => (1, Subject::Down),
        // Refused before anything changes: exit 5 naming the unit.
        S::Masked => (5, Subject::Down),
        S::FileRemoved => (5, Subject::Running),
        // It runs and never answers: the command fails naming it once its start grace and
        // probe failures are over; the supervisor goes on restarting it.
        S::NeverAnswers => (1, Subject::Running),
    };
    // The subject as the event finds it and leaves it when nothing starts or stops it.
    let left_alone = match state {
        S::Serving | S::Activating | S::Hung => Subject::Serving,
        S::Stopped | S::Masked | S::Failed => Subject::Down,
        S::CrashLooping => Subject::Any,
        S::FileRemoved | S::NeverAnswers => Subject::Running,
    };
    // Alerts: a start of a component whose program still crashes ends in one give-up; a
    // crash loop ends in one whatever comes (it may come before or after the event, and a
    // start may add the next); nothing else raises one.
    let gives_up =
        matches!(event, E::Start | E::Restart | E::RestartThis) && matches!(state, S::Failed);
    let alerts = match state {
        S::CrashLooping => (0, 2),
        _ if gives_up => (1, 1),
        _ => (0, 0),
    };
    let not_running: &'static [i32] = match state {
        S::Serving | S::Hung | S::FileRemoved | S::NeverAnswers => &[0],
        S::Activating | S::Stopped | S::Failed | S::Masked => &[3],
        // Between two crashes it is active for a moment.
        S::CrashLooping => &[0, 3],
    };
    let refused = matches!(state, S::Masked | S::FileRemoved);
    let code = |c: i32| -> Option<&'static [i32]> {
        Some(match c {
            0 => &[0],
            1 => &[1],
            3 => &[3],
            _ => &[5],
        })
    };
    let up = |codes, subject, others| Expect {
        codes,
        subject,
        others,
        supervisor_up: true,
        alerts,
    };
    match event {
        E::Start => up(code(started.0), started.1, Others::Kept),
        E::Stop => Expect {
            codes: code(0),
            subject: Subject::Down,
            others: Others::Stopped,
            supervisor_up: false,
            alerts,
        },
        E::Restart if refused => up(code(started.0), started.1, Others::Kept),
        E::Restart => up(code(started.0), started.1, Others::Replaced),
        E::RestartThis => up(code(started.0), started.1, Others::Kept),
        E::RestartOther => up(code(0), left_alone, Others::OtherReplaced),
        // Stopped whatever it was doing (or already down: exit 0 all the same), and left
        // stopped by the supervisor; the others untouched.
        E::StopThis => up(code(0), Subject::Down, Others::Kept),
        E::StatusAll | E::StatusThis => up(Some(not_running), left_alone, Others::Kept),
        E::Metrics => up(code(0), left_alone, Others::Kept),
        E::SupervisorRestart
        | E::DaemonReload
        | E::DaemonReexec
        | E::BusRestart
        | E::StartTimeout => up(None, left_alone, Others::Kept),
    }
}

/// Probe settings that make a hang show within a second or two.
fn options() -> Options {
    Options::default().service(
        SUBJECT,
        // An HTTP probe: a hung stand-in still completes TCP handshakes.
        "Environment=IMAGESERVING_PROBE=http://127.0.0.1:{port}/ IMAGESERVING_PROBE_TIMEOUT_SEC=0.3 IMAGESERVING_PROBE_FAILURES=2 IMAGESERVING_PROBE_START_GRACE_SEC=2",
    )
}

/// A program that runs 0.3 s and fails, restarted after `restart_sec`.
fn crash_dropin(sb: &Sandbox, restart_sec: &str) {
    sb.dropin(
        SUBJECT.unit(),
        "70-crash",
        &format!(
            "[Service]\nExecStart=\nExecStart=/bin/sh -c 'sleep 0.3; exit 1'\nRestartSec={restart_sec}\n"
        ),
    );
    sb.reload();
}

fn subject_state(sb: &Sandbox) -> imageserving::systemd::ServiceState {
    sb.state(SUBJECT.unit())
}

/// Bring the subject into `state` on a started stack; what must live as long as the row
/// (the listener that holds a port) is returned.
fn enter(sb: &Sandbox, state: State) -> Option<std::net::TcpListener> {
    let m = sb.manager();
    match state {
        State::Serving => {}
        State::Activating => {
            sb.dropin(
                SUBJECT.unit(),
                "70-slow",
                "[Service]\nExecStartPre=/bin/sleep 3\n",
            );
            sb.reload();
            m.restart_unit(SUBJECT.unit()).expect("restart");
            eventually(Duration::from_secs(5), "svg activating", || {
                let s = subject_state(sb);
                s.active_state == ActiveState::Activating && s.job_id != 0
            });
            // Later starts are quick again; this one goes on with its 3 s.
            std::fs::remove_file(
                sb.root
                    .join("config/systemd/user")
                    .join(format!("{}.d/70-slow.conf", SUBJECT.unit())),
            )
            .expect("remove drop-in");
            sb.reload();
        }
        State::Stopped | State::Masked => {
            m.stop_unit(SUBJECT.unit()).expect("stop");
            eventually(Duration::from_secs(10), "svg stopped", || {
                subject_state(sb).active_state == ActiveState::Inactive
            });
            if state == State::Masked {
                sb.mask(SUBJECT.unit());
            }
        }
        State::Failed => {
            crash_dropin(sb, "100ms");
            m.restart_unit(SUBJECT.unit()).expect("restart");
            eventually(Duration::from_secs(20), "svg given up", || {
                subject_state(sb).gave_up()
            });
            // Its alert belongs to this state, not to the event that comes next.
            eventually(Duration::from_secs(10), "the give-up's alert", || {
                sb.alerts() == 1
            });
        }
        State::CrashLooping => {
            crash_dropin(sb, "600ms");
            m.restart_unit(SUBJECT.unit()).expect("restart");
            eventually(Duration::from_secs(10), "svg in auto-restart", || {
                subject_state(sb).sub_state.starts_with("auto-restart")
            });
        }
        State::Hung => signal(sb.main_pid(SUBJECT), "USR1"),
        State::NeverAnswers => {
            // Its port is held by a listener that accepts and never answers (another
            // process bound it first), and the server runs on without serving.
            sb.dropin(
                SUBJECT.unit(),
                "70-never",
                &format!(
                    "[Service]\nExecStart=\nExecStart={STANDIN} --port {} --path / --stay-on-bind-error --term-exit 143\n",
                    sb.port(SUBJECT)
                ),
            );
            sb.reload();
            m.stop_unit(SUBJECT.unit()).expect("stop");
            eventually(Duration::from_secs(10), "svg stopped", || {
                subject_state(sb).active_state == ActiveState::Inactive
            });
            let holder = std::net::TcpListener::bind(("127.0.0.1", sb.port(SUBJECT)))
                .expect("hold svg's port");
            m.start_unit(SUBJECT.unit()).expect("start");
            eventually(Duration::from_secs(10), "svg running", || {
                subject_state(sb).active_state == ActiveState::Active
            });
            return Some(holder);
        }
        State::FileRemoved => {
            sb.remove_unit_file(SUBJECT.unit());
            let s = sb
                .manager()
                .list_units_by_names(&[SUBJECT.unit()])
                .expect("list");
            assert_eq!(
                (s[0].load_state.as_str(), s[0].active_state),
                ("not-found", ActiveState::Active),
                "svg's unit file removed while it runs"
            );
        }
    }
    None
}

/// Do `event`; the command's result when it is one.
fn fire(sb: &Sandbox, event: Event) -> Option<Run> {
    let cmd = |args: &[&str]| Some(sb.run(args));
    let restart_supervisor = || {
        let old = sb.state(SUPERVISOR).main_pid;
        sb.manager()
            .restart_unit(SUPERVISOR)
            .expect("restart supervisor");
        sb.wait_replaced(SUPERVISOR, old, SETTLE);
    };
    match event {
        Event::Start => cmd(&["start"]),
        Event::Stop => cmd(&["stop"]),
        Event::Restart => cmd(&["restart"]),
        Event::RestartThis => cmd(&["restart", SUBJECT.short_name()]),
        Event::RestartOther => cmd(&["restart", OTHER.short_name()]),
        Event::StopThis => cmd(&["stop", SUBJECT.short_name()]),
        Event::StatusAll => cmd(&["status"]),
        Event::StatusThis => cmd(&["status", SUBJECT.short_name()]),
        Event::Metrics => cmd(&["metrics"]),
        Event::SupervisorRestart => {
            restart_supervisor();
            None
        }
        Event::DaemonReload => {
            sb.reload();
            None
        }
        Event::DaemonReexec => {
            sb.systemctl(&["daemon-reexec"]).code(0);
            sb.wait_manager(SETTLE);
            None
        }
        Event::BusRestart => {
            sb.systemctl(&["restart", "dbus.service"]).code(0);
            // Long enough for the supervisor to notice and reconnect.
            std::thread::sleep(Duration::from_secs(2));
            None
        }
        Event::StartTimeout => {
            sb.dropin(
                SUPERVISOR,
                "70-start-timeout",
                "[Service]\nEnvironment=IMAGESERVING_START_TIMEOUT_SEC=1\n",
            );
            sb.reload();
            restart_supervisor();
            None
        }
    }
}

/// One row: a stack started, the subject put in `state`, `event`, then every check.
fn run_row(state: State, event: Event) -> Result<(), String> {
    let want = expect(state, event);
    let sb = Sandbox::with(options());
    sb.run(&["start"]).code(0);
    let _holder = enter(&sb, state);
    let before = sb.component_pids();
    let supervisor = sb.state(SUPERVISOR);
    let alerts_before = sb.alerts();
    let ran = fire(&sb, event);
    let mut problems = Vec::new();
    if let Some(run) = &ran {
        if run.stderr.contains("panicked") || [101, 134].contains(&run.code) {
            problems.push(format!("it panicked: exit {}: {}", run.code, run.stderr));
        }
        if let Some(codes) = want.codes {
            if !codes.contains(&run.code) {
                problems.push(format!(
                    "exit {} (expected one of {codes:?})\nstdout:\n{}stderr:\n{}",
                    run.code, run.stdout, run.stderr
                ));
            }
        }
    }
    check_others(&sb, &before, want.others, &mut problems);
    check_supervisor(
        &sb,
        event,
        supervisor.main_pid,
        want.supervisor_up,
        &mut problems,
    );
    check_subject(&sb, state, want.subject, &mut problems);
    if let (Some(run), Event::StatusAll | Event::StatusThis) = (&ran, event) {
        check_status_output(state, run, &mut problems);
    }
    check_alerts(&sb, alerts_before, want.alerts, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{state:?} × {event:?}: {}", problems.join("; ")))
    }
}

fn check_others(sb: &Sandbox, before: &[u32], want: Others, problems: &mut Vec<String>) {
    let pid = |c: Component| before[Component::ALL.iter().position(|x| *x == c).unwrap_or(0)];
    let now = |c: Component| sb.main_pid(c);
    let others = [Component::Platform, Component::Image];
    match want {
        Others::Stopped => {
            let left = sb.stack_pids();
            if !left.is_empty() {
                problems.push(format!("processes left after stop: {left:?}"));
            }
        }
        Others::Kept => {
            for c in others {
                if now(c) != pid(c) {
                    problems.push(format!("{c} was restarted ({} → {})", pid(c), now(c)));
                }
            }
        }
        Others::Replaced | Others::OtherReplaced => {
            for c in others {
                let replaced = want == Others::Replaced || c == OTHER;
                let (old, new) = (pid(c), now(c));
                if replaced && (new == old || new == 0) {
                    problems.push(format!("{c} was not restarted ({old} → {new})"));
                }
                if !replaced && new != old {
                    problems.push(format!("{c} was restarted ({old} → {new})"));
                }
            }
        }
    }
}

fn check_supervisor(
    sb: &Sandbox,
    event: Event,
    old_pid: u32,
    want_up: bool,
    problems: &mut Vec<String>,
) {
    if !want_up {
        let s = sb.state(SUPERVISOR);
        if !s.active_state.is_down() {
            problems.push(format!("the supervisor is {}", s.summary()));
        }
        return;
    }
    // Up within the time, and not restarting in a loop.
    let deadline = Instant::now() + SETTLE;
    let mut s = sb.state(SUPERVISOR);
    while s.active_state != ActiveState::Active && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        s = sb.state(SUPERVISOR);
    }
    if s.active_state != ActiveState::Active {
        problems.push(format!(
            "the supervisor is {} after {SETTLE:?}: {}",
            s.summary(),
            s.status_text
        ));
        return;
    }
    if s.restarts != 0 {
        problems.push(format!(
            "the supervisor restarted itself {} times",
            s.restarts
        ));
    }
    let restarted_by_event = matches!(
        event,
        Event::SupervisorRestart | Event::StartTimeout | Event::Restart
    );
    if !restarted_by_event && s.main_pid != old_pid {
        problems.push(format!(
            "the supervisor's PID changed ({old_pid} → {})",
            s.main_pid
        ));
    }
    // And `status` sees it running.
    let status = sb.run(&["status", "--json"]);
    if !status.stdout.contains("\"running\":true") && !status.stdout.contains("\"running\": true") {
        problems.push(format!(
            "status does not see the supervisor running: {}",
            status.stdout
        ));
    }
}

fn check_subject(sb: &Sandbox, state: State, want: Subject, problems: &mut Vec<String>) {
    let unit = SUBJECT.unit();
    match want {
        Subject::Any => {}
        Subject::Serving => {
            let deadline = Instant::now() + SETTLE;
            loop {
                let s = sb.state(unit);
                if s.active_state == ActiveState::Active && answers(sb) {
                    break;
                }
                if Instant::now() > deadline {
                    problems.push(format!("svg is {} and not serving", s.summary()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Subject::Down => {
            // It stays down: nothing starts it behind the operator's back.
            std::thread::sleep(Duration::from_secs(2));
            let s = sb.state(unit);
            if !s.active_state.is_down() || s.job_id != 0 {
                problems.push(format!("svg is {} (expected it down)", s.summary()));
            }
            if state == State::Stopped || state == State::Masked {
                let status_text = sb.state(SUPERVISOR).status_text;
                if sb.state(SUPERVISOR).active_state == ActiveState::Active
                    && !status_text.contains("svg stopped")
                {
                    problems.push(format!(
                        "STATUS= does not say svg is stopped: {status_text}"
                    ));
                }
            }
        }
        Subject::Running => {
            let s = sb.state(unit);
            if s.main_pid == 0 || !is_alive(s.main_pid) {
                problems.push(format!(
                    "svg is {} (expected it still running)",
                    s.summary()
                ));
            }
        }
    }
}

/// The alerts the event led to: within `(least, most)`, counted after the hook has had
/// the time to run.
fn check_alerts(
    sb: &Sandbox,
    before: usize,
    (least, most): (usize, usize),
    problems: &mut Vec<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.alerts().saturating_sub(before) < least && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let sent = sb.alerts().saturating_sub(before);
    if sent < least || sent > most {
        problems.push(format!(
            "{sent} alerts (expected {least} to {most}):\n{}",
            sb.alert_log()
        ));
    }
}

fn check_status_output(state: State, run: &Run, problems: &mut Vec<String>) {
    if run.stdout.contains("Server Supervisor is not running") {
        problems.push(format!(
            "status says the supervisor is not running:\n{}",
            run.stdout
        ));
    }
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("svg "))
        .unwrap_or_default();
    let says = match state {
        State::FileRemoved => Some("unit file missing"),
        State::Masked => Some("masked"),
        State::Stopped => Some("inactive"),
        State::Failed => Some("failed"),
        _ => None,
    };
    if let Some(says) = says {
        if !row.contains(says) {
            problems.push(format!("svg's row lacks {says:?}:\n{}", run.stdout));
        }
    }
}

/// Whether svg answers its HTTP probe.
fn answers(sb: &Sandbox) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], sb.port(SUBJECT)).into(),
        Duration::from_millis(300),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok()
        && (buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200"))
}

/// Run every event from `state`, three rows at a time; fail with every row that failed.
fn run_state(state: State) {
    let failures: Vec<String> = EVENTS
        .chunks(3)
        .flat_map(|chunk| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|&event| {
                    std::thread::spawn(move || {
                        std::panic::catch_unwind(|| run_row(state, event)).unwrap_or_else(|e| {
                            let msg = e
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            Err(format!("{state:?} × {event:?}: the test panicked: {msg}"))
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().and_then(Result::err))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        EVENTS.len(),
        failures.join("\n\n")
    );
}

macro_rules! states {
    ($($name:ident => $state:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_state($state);
            }
        )*
    };
}

states! {
    from_serving => State::Serving,
    from_activating => State::Activating,
    from_stopped => State::Stopped,
    from_failed => State::Failed,
    from_crash_looping => State::CrashLooping,
    from_hung => State::Hung,
    from_masked => State::Masked,
    from_file_removed => State::FileRemoved,
    from_never_answering => State::NeverAnswers,
}
