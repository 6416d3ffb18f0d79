//! `status`: the supervisor check, then per component its state, uptime, memory, process and
//! restart counts.
//!
//! Cost is the hot path here: one connection and one round trip, `ListUnitsByNames` for every
//! state pipelined with reads of what only systemd knows (main PID, restart count); then procfs
//! and the cgroup files for the rest. Nothing is fetched for a component that was not asked
//! for, nor what the output will not show.
//!
//! Looking changes nothing: on a serving stack no unit is loaded and no property changes, so
//! the supervisor and every watcher sleep through a `status` or a Prometheus scrape. The
//! sockets are asked for only if systemd holds them, and a socket it does not hold is asked
//! about on disk.

mod metrics;
mod render;
mod unit;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use zbus::zvariant::OwnedValue;

use crate::component::{Component, Member, SUPERVISOR};
use crate::error::{exit, Error};
use crate::procinfo::{CgroupReader, ProcReader};
use crate::systemd::{
    ActiveState, Manager, PropertyInterface, PropertyRequest, ReadsAndFileStates, Scope,
    UnitsWithProperties,
};
use unit::{collect_unit, Clocks, UnitContext};

pub use metrics::prometheus;
pub use render::{human, Style};

/// What `status` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRequest {
    /// Only this component, or all.
    pub only: Option<Component>,
    /// Also read proportional set sizes.
    pub pss: bool,
    /// Also read systemd's start time of each main process (`ExecMainStartTimestamp`), which
    /// cross-checks the uptime read from procfs ([`UnitStatus::systemd_uptime_seconds`]).
    /// One more message per unit; the table does not show it, `--json` does.
    pub systemd_uptime: bool,
    /// Read the components also when the supervisor is not running (metrics always carry
    /// every series, `--json` every component); the table shows a message instead.
    pub components_anyway: bool,
    /// Also ask each active component's probe now, as the supervisor does
    /// ([`UnitStatus::probe`]).
    pub probe: bool,
}

/// The whole answer, as printed by `--json` (keys are stable once published).
#[derive(Debug, Clone, Serialize)]
pub struct StackStatus {
    /// `system` or `user`.
    pub scope: &'static str,
    /// The Server Supervisor.
    pub supervisor: SupervisorStatus,
    /// One entry per requested component (with `--json`, also when the supervisor is not
    /// running; the table then shows the message alone).
    pub components: Vec<UnitStatus>,
    /// Why there are no rows, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether proportional set sizes were asked for (the table shows PSS instead of RSS).
    #[serde(skip)]
    pub pss: bool,
}

/// The supervisor's part of the answer.
#[derive(Debug, Clone, Serialize)]
pub struct SupervisorStatus {
    /// Whether its unit is active.
    pub running: bool,
    /// Its unit, state and figures (only the state when it is not running).
    #[serde(flatten)]
    pub detail: UnitStatus,
}

/// Memory of a unit, with the source of each figure in its name.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Memory {
    /// Sum of RSS over every process of the unit's cgroup (procfs `statm`).
    pub rss_bytes: u64,
    /// Sum of PSS (procfs `smaps_rollup`), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pss_bytes: Option<u64>,
    /// The memory charged to the unit's cgroup, page cache included: the figure systemd
    /// reports as `MemoryCurrent` (read from the same file, `memory.current`, or
    /// `memory.usage_in_bytes` on cgroup v1).
    pub cgroup_bytes: Option<u64>,
    /// The memory limit above which the supervisor restarts it
    /// (`IMAGESERVING_MEMORY_RESTART`), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

/// One unit's row.
#[derive(Debug, Clone, Serialize)]
pub struct UnitStatus {
    /// `ps`, `is`, `svg`; `supervisor` for the supervisor.
    pub name: &'static str,
    /// The component's title.
    pub title: &'static str,
    /// The unit.
    pub unit: &'static str,
    /// `active`, `failed`, ...
    pub state: &'static str,
    /// `running`, `auto-restart`, ...
    pub sub_state: String,
    /// systemd's `LoadState`: `loaded`; `not-found` when its unit file is gone (it still
    /// runs); `masked`.
    pub load_state: String,
    /// systemd's `Result` of the last run.
    pub result: String,
    /// Main PID, absent when none.
    pub pid: Option<u32>,
    /// Seconds since the main process started (procfs, boot clock).
    pub uptime_seconds: Option<u64>,
    /// Seconds since systemd started the main process (`ExecMainStartTimestamp`), to
    /// cross-check the above.
    pub systemd_uptime_seconds: Option<u64>,
    /// Memory.
    pub memory: Memory,
    /// Processes in the unit's cgroup.
    pub processes: u32,
    /// Processes we could not read (shown, not summed).
    pub unreadable_processes: u32,
    /// Automatic restarts by systemd (`NRestarts`).
    pub restarts: u32,
    /// What the unit's daemon says of itself (`STATUS=`, sd_notify(3)): the supervisor's
    /// summary, e.g. `2/3 components serving; ps given up (restart refused)`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status_text: String,
    /// systemd stopped restarting it (failed after automatic restarts: the start limit).
    pub given_up: bool,
    /// Its probe's verdict, asked for this `status` (`--probe`); absent when not asked for,
    /// or when the component is not active or has no probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeStatus>,
    /// The socket systemd holds for the component (`imageserving-NAME.socket`), when it is
    /// in use: listening, or switched on and stopped with its component. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketStatus>,
    /// When the main process started, in seconds after boot (what its uptime counts from).
    #[serde(skip)]
    pub started_after_boot: Option<f64>,
    #[serde(skip)]
    active: ActiveState,
}

/// A component's probe, asked once.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeStatus {
    /// What it asks (`http://127.0.0.1:8080/is/image`, `tcp://127.0.0.1:27345`).
    pub target: String,
    /// Whether it answered.
    pub ok: bool,
    /// Why not, in a few words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the probe took.
    pub seconds: f64,
}

/// A component's socket unit, on its row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SocketStatus {
    /// The socket unit.
    pub unit: &'static str,
    /// `listening` (it holds the port: connections wait for the component), `stopped`
    /// (switched on, stopped with its component: connections are refused), `failed`.
    pub state: &'static str,
    /// What it listens on, as systemd writes it (`127.0.0.1:8080`, `[::]:8080`).
    pub listen: Vec<String>,
}

impl UnitStatus {
    /// Whether the unit is up.
    pub fn is_running(&self) -> bool {
        self.active.is_up()
    }
}

/// The properties read for every unit, in the order [`collect_unit`] takes them. Each is one
/// message through the bus daemon, the dearest part of `status`, so the set is kept to what is
/// shown and what only systemd knows: the unit's cgroup comes from procfs
/// (`/proc/MAINPID/cgroup`) rather than `ControlGroup`, its memory charge from the cgroup file
/// that systemd itself reads for `MemoryCurrent`; `Environment` carries the memory limit the
/// table shows beside the memory, `StatusText` what the supervisor says of the stack; the last, the start time, is read only when
/// asked for ([`StatusRequest::systemd_uptime`]); and `Result` only for a unit that is not
/// active, where it explains why.
const PROPS: [&str; 5] = [
    "MainPID",
    "NRestarts",
    "Environment",
    "StatusText",
    "ExecMainStartTimestamp",
];
/// Read in addition for units that are not active: why, and whether systemd gave up
/// ([`crate::systemd::gave_up`]).
const PROPS_DOWN: [(PropertyInterface, &str); 7] = [
    (PropertyInterface::Service, "Result"),
    (PropertyInterface::Service, "ExecMainCode"),
    (PropertyInterface::Service, "ExecMainStatus"),
    (PropertyInterface::Service, "RestartPreventExitStatus"),
    (PropertyInterface::Service, "ExecMainExitTimestampMonotonic"),
    (PropertyInterface::Unit, "InactiveEnterTimestampMonotonic"),
    (PropertyInterface::Service, "RestartUSec"),
];

/// How long `status` waits for the bus or the manager, per call (two at most), before it
/// says so and exits 4. Monitoring runs `status` every few seconds: a stalled manager must
/// not pile up waiting processes.
pub const TIMEOUT: Duration = Duration::from_secs(4);

/// Gather the status of the stack. An error means the state cannot be determined.
pub fn collect(scope: Scope, req: StatusRequest) -> Result<StackStatus, Error> {
    let mgr = Manager::connect_within(scope, scope.bus_address(), TIMEOUT)?;
    collect_with(
        &mgr,
        req,
        &mut ProcReader::new("/proc"),
        &CgroupReader::system(),
    )
}

/// How long changes that come in a burst (a restart sends a dozen signals) are gathered into
/// one document by [`follow`].
const BURST: Duration = Duration::from_millis(250);

/// `status --json --follow`: gather the status now and hand it to `emit`; again whenever a
/// unit of the stack (or a component's socket) changes, a burst of changes counting once;
/// and at the latest after `every`. Ends when `emit` returns `false` (its reader went away)
/// or the manager cannot be read.
pub fn follow(
    scope: Scope,
    req: StatusRequest,
    every: Duration,
    mut emit: impl FnMut(&StackStatus) -> bool,
) -> Result<(), Error> {
    let mgr = Manager::connect_within(scope, scope.bus_address(), TIMEOUT)?;
    let paths: Vec<String> = crate::component::stack_units()
        .chain(Component::ALL.map(Component::socket))
        .map(crate::systemd::unit_path)
        .collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let events = mgr.events(&paths)?;
    let mut procs = ProcReader::new("/proc");
    let cgroups = CgroupReader::system();
    loop {
        let status = collect_with(&mgr, req, &mut procs, &cgroups)?;
        if !emit(&status) {
            return Ok(());
        }
        if let Some(Err(e)) = events.next_event_within(every) {
            return Err(e.into());
        }
        let burst = std::time::Instant::now();
        while burst.elapsed() < BURST * 4 {
            match events.next_event_within(BURST) {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// The stack as metrics (see [`metrics`]): every component's status, whether or not the
/// supervisor runs, and a probe of each active component made for this scrape.
pub fn metrics_text(scope: Scope) -> Result<String, Error> {
    let mgr = Manager::connect_within(scope, scope.bus_address(), TIMEOUT)?;
    let req = StatusRequest {
        only: None,
        pss: true,
        systemd_uptime: false,
        components_anyway: true,
        probe: false,
    };
    let status = collect_with(
        &mgr,
        req,
        &mut ProcReader::new("/proc"),
        &CgroupReader::system(),
    )?;
    let results: Vec<metrics::ProbeResult> = probe_all(&mgr, &status.components)?
        .into_iter()
        .map(|(component, p)| metrics::ProbeResult {
            component,
            ok: Some(p.ok),
            duration: Duration::from_secs_f64(p.seconds),
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let boot = ProcReader::new("/proc").boot_time_unix();
    #[allow(clippy::cast_precision_loss)] // seconds since the epoch fit an f64 exactly
    Ok(prometheus(&status, &results, now, boot.map(|b| b as f64)))
}

/// Ask the probe of each active component among `rows`, all at once (a round takes at most
/// the longest probe timeout). A probe whose settings cannot be used counts as failed, with
/// the setting's error: the supervisor refuses to start with it, and `start` names the key.
fn probe_all(
    mgr: &Manager,
    rows: &[UnitStatus],
) -> Result<Vec<(&'static str, ProbeStatus)>, Error> {
    let mut out = Vec::new();
    let mut asked = Vec::new();
    let mut probes = Vec::new();
    for u in rows.iter().filter(|u| u.is_running()) {
        let env = mgr.unit_environment(&crate::systemd::unit_path(u.unit))?;
        match crate::probe::ProbeSettings::from_environment(u.unit, &env) {
            Ok(Some(p)) => {
                asked.push((u.name, p.target.to_string()));
                probes.push((p.target, p.timeout));
            }
            Ok(None) => {}
            Err(e) => out.push((
                u.name,
                ProbeStatus {
                    target: String::new(),
                    ok: false,
                    error: Some(e.to_string()),
                    seconds: 0.0,
                },
            )),
        }
    }
    out.extend(
        crate::probe::check_all_timed(&probes)
            .into_iter()
            .zip(asked)
            .map(|((r, took), (name, target))| {
                (
                    name,
                    ProbeStatus {
                        target,
                        ok: r.is_ok(),
                        error: r.err(),
                        seconds: took.as_secs_f64(),
                    },
                )
            }),
    );
    Ok(out)
}

fn collect_with(
    mgr: &Manager,
    req: StatusRequest,
    procs: &mut ProcReader,
    cgroups: &CgroupReader,
) -> Result<StackStatus, Error> {
    let components: Vec<Component> = match req.only {
        Some(c) => vec![c],
        None => Component::ALL.to_vec(),
    };
    let names: Vec<&str> = std::iter::once(SUPERVISOR)
        .chain(components.iter().map(|c| c.unit()))
        .collect();
    let socket_names: Vec<&str> = components.iter().map(|c| c.socket()).collect();
    // One round trip: the states of the stack's units (ListUnitsByNames loads unit files not
    // yet loaded), the sockets systemd holds (loading none: loading one to look at it would
    // wake everyone watching the stack), and the properties the table shows.
    let props = if req.systemd_uptime {
        &PROPS[..]
    } else {
        PROPS.get(..PROPS.len() - 1).unwrap_or_default()
    };
    let UnitsWithProperties {
        units: infos,
        loaded: socket_infos,
        values,
    } = mgr.units_with_properties(&names, &socket_names, props)?;
    // Not installed: no unit file and nothing running, for every unit asked for. Any other
    // member is shown; one whose file was removed while it runs (`not-found`, active) says
    // so on its row.
    let absent = |i: &crate::systemd::UnitInfo| !i.is_installed() && i.active_state.is_down();
    if infos.iter().all(absent) {
        if let Some(missing) = infos.first() {
            return Err(Error::NotInstalled {
                unit: missing.name.clone(),
                scope: mgr.scope(),
            });
        }
    }
    let scope = match mgr.scope() {
        Scope::System => "system",
        Scope::User => "user",
    };
    let Some(sup_info) = infos.first() else {
        return Err(Error::BadAnswer {
            scope: mgr.scope(),
            what: "the units asked for".into(),
        });
    };
    if !sup_info.active_state.is_up() && !req.components_anyway {
        return Ok(StackStatus {
            scope,
            supervisor: SupervisorStatus {
                running: false,
                detail: UnitStatus {
                    name: Member::Supervisor.label(),
                    title: "Server Supervisor",
                    unit: SUPERVISOR,
                    state: sup_info.active_state.as_str(),
                    sub_state: sup_info.sub_state.clone(),
                    load_state: sup_info.load_state.clone(),
                    result: String::new(),
                    pid: None,
                    uptime_seconds: None,
                    systemd_uptime_seconds: None,
                    memory: Memory {
                        rss_bytes: 0,
                        pss_bytes: None,
                        cgroup_bytes: None,
                        limit_bytes: None,
                    },
                    processes: 0,
                    unreadable_processes: 0,
                    restarts: 0,
                    status_text: String::new(),
                    given_up: false,
                    probe: None,
                    socket: None,
                    started_after_boot: None,
                    active: sup_info.active_state,
                },
            },
            components: Vec::new(),
            pss: req.pss,
            message: Some(supervisor_down(sup_info, mgr.scope())),
        });
    }
    // Why a unit is not running is worth a second round trip; on the hot path all run.
    let running = |i: &crate::systemd::UnitInfo| i.active_state.is_up();
    let result_requests: Vec<PropertyRequest<'_>> = infos
        .iter()
        .filter(|i| !running(i))
        .flat_map(|i| {
            PROPS_DOWN.map(|(interface, name)| PropertyRequest {
                path: i.path.as_str(),
                interface,
                name,
            })
        })
        .collect();
    // A socket in use shows on its component's row: what it listens on, when it holds the
    // port (or failed); whether it is switched on, when it is stopped with its component
    // (both read in this same round trip, and only then). A socket in use is loaded; one
    // that is not is asked about on disk, not loaded.
    let mut listen_reads: Vec<usize> = Vec::new();
    let mut file_reads: Vec<usize> = Vec::new();
    for (i, (sock, service)) in socket_infos.iter().zip(infos.iter().skip(1)).enumerate() {
        let in_use = sock.as_ref().is_some_and(|s| {
            s.is_installed()
                && !s.is_masked()
                && (!s.active_state.is_down() || s.active_state == ActiveState::Failed)
        });
        if in_use {
            listen_reads.push(i);
        } else if !running(service) {
            file_reads.push(i);
        }
    }
    let all_requests: Vec<PropertyRequest<'_>> = result_requests
        .iter()
        .copied()
        .chain(listen_reads.iter().filter_map(|i| {
            socket_infos
                .get(*i)
                .and_then(Option::as_ref)
                .map(|info| PropertyRequest {
                    path: info.path.as_str(),
                    interface: PropertyInterface::Socket,
                    name: "Listen",
                })
        }))
        .collect();
    let files: Vec<&str> = file_reads
        .iter()
        .filter_map(|i| socket_names.get(*i).copied())
        .collect();
    let ReadsAndFileStates {
        values: mut answers,
        file_states,
    } = if all_requests.is_empty() && files.is_empty() {
        ReadsAndFileStates::default()
    } else {
        mgr.get_many_and_file_states(&all_requests, &files)?
    };
    let listens = answers.split_off(result_requests.len().min(answers.len()));
    let mut sockets: Vec<Option<SocketStatus>> = vec![None; socket_infos.len()];
    for (i, value) in listen_reads.iter().zip(listens) {
        let (Some(Some(info)), Some(slot), Some(c)) = (
            socket_infos.get(*i),
            sockets.get_mut(*i),
            components.get(*i),
        ) else {
            continue;
        };
        *slot = Some(SocketStatus {
            unit: c.socket(),
            state: if info.active_state == ActiveState::Failed {
                "failed"
            } else if info.active_state == ActiveState::Active {
                "listening"
            } else {
                info.active_state.as_str()
            },
            listen: value
                .and_then(|v| Vec::<(String, String)>::try_from(v).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
        });
    }
    for (i, state) in file_reads.iter().zip(file_states) {
        let (Some(slot), Some(c)) = (sockets.get_mut(*i), components.get(*i)) else {
            continue;
        };
        // `enabled` and `enabled-runtime`: switched on, stopped with its component.
        *slot = state
            .is_some_and(|s| s.starts_with("enabled"))
            .then_some(SocketStatus {
                unit: c.socket(),
                state: "stopped",
                listen: Vec::new(),
            });
    }
    let mut sockets = sockets.into_iter();
    let mut results = answers.into_iter();
    let mut values = values.into_iter();
    // One reading of each clock for every uptime.
    let now = Clocks {
        wall_us: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0),
        boot: procs.boot_clock(),
    };
    let mut rows = Vec::with_capacity(infos.len());
    let members = std::iter::once(None).chain(components.iter().copied().map(Some));
    for (info, member) in infos.iter().zip(members) {
        let mut vals: Vec<Option<OwnedValue>> = values.by_ref().take(props.len()).collect();
        // What was not asked for is unknown.
        vals.resize_with(PROPS.len(), || None);
        if !running(info) {
            vals.extend(results.by_ref().take(PROPS_DOWN.len()));
        }
        let (name, title, unit) = match member {
            None => (Member::Supervisor.label(), "Server Supervisor", SUPERVISOR),
            Some(c) => (c.short_name(), c.title(), c.unit()),
        };
        let ctx = UnitContext {
            name,
            title,
            unit,
            active: info.active_state,
            sub_state: &info.sub_state,
            load_state: &info.load_state,
        };
        let mut row = collect_unit(&ctx, &vals, now, req.pss, procs, cgroups, mgr);
        if member.is_some() {
            row.socket = sockets.next().flatten();
        }
        rows.push(row);
    }
    let supervisor = rows.remove(0);
    if req.probe {
        for (name, p) in probe_all(mgr, &rows)? {
            if let Some(row) = rows.iter_mut().find(|r| r.name == name) {
                row.probe = Some(p);
            }
        }
    }
    Ok(StackStatus {
        scope,
        supervisor: SupervisorStatus {
            running: sup_info.active_state.is_up(),
            detail: supervisor,
        },
        components: rows,
        message: (!sup_info.active_state.is_up()).then(|| supervisor_down(sup_info, mgr.scope())),
        pss: req.pss,
    })
}

/// What `status` says when the supervisor does not run.
fn supervisor_down(sup_info: &crate::systemd::UnitInfo, scope: Scope) -> String {
    if sup_info.is_installed() {
        format!(
            "The Server Supervisor is not running ({SUPERVISOR} is {}); start the stack with 'ImageServing{} start'.",
            describe_state(sup_info.active_state, &sup_info.sub_state),
            scope.flag()
        )
    } else {
        format!(
            "The Server Supervisor is not running and its unit file {SUPERVISOR} is missing: reinstall the imageserving package (or run 'packaging/install.sh{}').",
            scope.flag()
        )
    }
}

fn describe_state(active: ActiveState, sub: &str) -> String {
    format!("{} ({sub})", active.as_str())
}

/// LSB exit code of a status: 0 all running, 3 something not running.
pub fn exit_code(s: &StackStatus) -> i32 {
    if s.supervisor.running && s.components.iter().all(UnitStatus::is_running) {
        exit::OK
    } else {
        exit::NOT_RUNNING
    }
}
