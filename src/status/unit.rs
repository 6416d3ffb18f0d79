//! One unit's row: what systemd said of it (its properties), and what procfs and the cgroup
//! file system say of its processes (memory, uptime, count).

use zbus::zvariant::OwnedValue;

use super::{Memory, UnitStatus};
use crate::procinfo::{CgroupReader, ProcReader, Sample, Usage};
use crate::systemd::{ActiveState, Manager};

/// The time, read once for every row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clocks {
    /// Microseconds since the epoch (systemd's timestamps are on this clock).
    pub(super) wall_us: u128,
    /// Seconds since boot (process start times are on this clock), when readable.
    pub(super) boot: Option<f64>,
}

/// What is known of a unit before its properties are read.
pub(super) struct UnitContext<'a> {
    pub(super) name: &'static str,
    pub(super) title: &'static str,
    pub(super) unit: &'static str,
    pub(super) active: ActiveState,
    pub(super) sub_state: &'a str,
    pub(super) load_state: &'a str,
}

/// What procfs and the cgroup file system say of a unit.
struct Observed {
    usage: Usage,
    /// Seconds since the main process started.
    uptime: Option<f64>,
    /// The cgroup's memory charge.
    cgroup_bytes: Option<u64>,
}

/// Observe a unit through its main process: its cgroup (`/proc/PID/cgroup`), every process in
/// it, their memory. `None` when the main process's cgroup cannot be read (then ask systemd).
fn observe_main(
    pid: u32,
    pss: bool,
    boot: Option<f64>,
    procs: &mut ProcReader,
    cgroups: &CgroupReader,
) -> Option<Observed> {
    let Sample::Value(cgroup) = procs.cgroup_path(pid) else {
        return None;
    };
    let pids = cgroups.pids(&cgroup)?;
    Some(observe(
        &pids,
        Some(pid),
        Some(&cgroup),
        pss,
        boot,
        procs,
        cgroups,
    ))
}

fn observe(
    pids: &[u32],
    main_pid: Option<u32>,
    cgroup: Option<&str>,
    pss: bool,
    boot: Option<f64>,
    procs: &mut ProcReader,
    cgroups: &CgroupReader,
) -> Observed {
    let usage = procs.usage(pids, pss, main_pid);
    let uptime = match (usage.main_start_ticks, boot) {
        (Some(start), Some(now)) => Some(procs.seconds_since(start, now)),
        // The main process is not among the cgroup's (it moved, or the list came from
        // systemd): read it on its own.
        _ => main_pid.and_then(|pid| match procs.process_uptime(pid) {
            Sample::Value(s) => Some(s),
            _ => None,
        }),
    };
    Observed {
        usage,
        uptime,
        cgroup_bytes: cgroup.and_then(|cg| cgroups.memory_bytes(cg)),
    }
}

pub(super) fn collect_unit(
    ctx: &UnitContext<'_>,
    vals: &[Option<OwnedValue>],
    now: Clocks,
    pss: bool,
    procs: &mut ProcReader,
    cgroups: &CgroupReader,
    mgr: &Manager,
) -> UnitStatus {
    let get = |i: usize| vals.get(i).cloned().flatten();
    let main_pid = get(0)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|p| *p > 0);
    let restarts = get(1).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let environment: Vec<String> = get(2)
        .and_then(|v| Vec::<String>::try_from(v).ok())
        .unwrap_or_default();
    // A bad value is the supervisor's configuration error (exit 78, the key named);
    // `status` shows what it can.
    let limit_bytes = crate::probe::memory_limit(ctx.unit, &environment)
        .ok()
        .flatten();
    let status_text = get(3)
        .and_then(|v| String::try_from(v).ok())
        .unwrap_or_default();
    let started_us = get(4)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|t| *t > 0);
    let result = get(5)
        .and_then(|v| String::try_from(v).ok())
        .unwrap_or_else(|| "success".to_owned());
    let micros = |i: usize| get(i).and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    let gave_up = crate::systemd::gave_up(
        ctx.active,
        restarts,
        crate::systemd::exec_status(get(6), get(7)),
        &crate::systemd::prevented(get(8)),
        crate::systemd::FailureTiming {
            exited_us: micros(9),
            failed_us: micros(10),
            restart_us: micros(11),
        },
    );

    let running = ctx.active.is_up();
    // Observed through the main process; else (no main process, e.g. a unit that is stopping
    // but still has control processes) through systemd's list of the unit's processes.
    let seen = main_pid.and_then(|pid| observe_main(pid, pss, now.boot, procs, cgroups));
    let seen = seen.unwrap_or_else(|| {
        let listed = if ctx.active.is_down() {
            Vec::new()
        } else {
            mgr.unit_processes(ctx.unit).unwrap_or_default()
        };
        // systemd names each process's cgroup; the unit's is the shortest.
        let cgroup = listed
            .iter()
            .map(|(cg, _, _)| cg.as_str())
            .min_by_key(|cg| cg.len())
            .map(str::to_owned);
        let pids: Vec<u32> = listed.iter().map(|(_, pid, _)| *pid).collect();
        observe(
            &pids,
            main_pid,
            cgroup.as_deref(),
            pss,
            now.boot,
            procs,
            cgroups,
        )
    });
    let usage = seen.usage;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let uptime_seconds = seen.uptime.filter(|_| running).map(|s| s as u64);
    let systemd_uptime_seconds = started_us
        .filter(|_| running)
        .and_then(|t| u64::try_from(now.wall_us.saturating_sub(u128::from(t)) / 1_000_000).ok());
    UnitStatus {
        name: ctx.name,
        title: ctx.title,
        unit: ctx.unit,
        state: ctx.active.as_str(),
        sub_state: ctx.sub_state.to_owned(),
        load_state: ctx.load_state.to_owned(),
        result,
        pid: main_pid,
        uptime_seconds,
        systemd_uptime_seconds,
        memory: Memory {
            rss_bytes: usage.rss_bytes,
            pss_bytes: usage.pss_bytes,
            cgroup_bytes: seen.cgroup_bytes,
            limit_bytes,
        },
        processes: usage.processes,
        unreadable_processes: usage.unreadable,
        restarts,
        status_text,
        given_up: gave_up,
        probe: None,
        socket: None,
        started_after_boot: now
            .boot
            .zip(seen.uptime)
            .filter(|_| running)
            .map(|(boot, up)| boot - up),
        active: ctx.active,
    }
}
