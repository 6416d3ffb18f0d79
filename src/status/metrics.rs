//! The stack in the Prometheus text exposition format (version 0.0.4, which Prometheus and
//! OpenMetrics-aware scrapers read): `ImageServing metrics`, and the socket-activated
//! `GET /metrics` endpoint (`imageserving-metrics.socket`).
//!
//! Names follow Prometheus' conventions: the `imageserving_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` for counters, one label per dimension (`component`).
//! Every series is present on every scrape (with the value it has: a stopped component has
//! `up 0`), so that alerts on absence are never needed.

use std::fmt::Write;
use std::time::Duration;

use super::{StackStatus, UnitStatus};

/// What the scrape's own probe of a component found (`None`: it has no probe).
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// The component's short name.
    pub component: &'static str,
    /// Whether it answered.
    pub ok: Option<bool>,
    /// How long the probe took.
    pub duration: Duration,
}

/// The states a unit can be in, exported as a state set (one series each, 1 for the current).
const STATES: [&str; 6] = [
    "active",
    "activating",
    "deactivating",
    "reloading",
    "inactive",
    "failed",
];

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                // Label values here are our own names; escape anyway, as the format says.
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Render `status` and the scrape's probe results. `now_unix` is the wall clock in seconds;
/// `boot_unix`, when known, the boot time (`btime`), from which a main process's start time
/// is exact and the same on every scrape (else it is `now_unix - uptime`, whole seconds).
pub fn prometheus(
    status: &StackStatus,
    probes: &[ProbeResult],
    now_unix: f64,
    boot_unix: Option<f64>,
) -> String {
    let mut out = String::with_capacity(4096);
    let mut f = Family { out: &mut out };
    let units: Vec<&UnitStatus> = status.components.iter().collect();
    let gauge =
        |f: &mut Family<'_>, name: &str, help: &str, value: &dyn Fn(&UnitStatus) -> Option<f64>| {
            f.header(name, "gauge", help);
            for u in &units {
                if let Some(v) = value(u) {
                    f.sample(name, &[("component", u.name)], v);
                }
            }
        };

    f.header(
        "imageserving_supervisor_up",
        "gauge",
        "Whether the Server Supervisor's unit is active (1) or not (0).",
    );
    f.sample(
        "imageserving_supervisor_up",
        &[],
        f64::from(u8::from(status.supervisor.running)),
    );

    f.header(
        "imageserving_component_up",
        "gauge",
        "Whether the component's unit is active and it answered this scrape's probe (1) or not (0).",
    );
    for u in &units {
        let probe_ok = probes
            .iter()
            .find(|p| p.component == u.name)
            .and_then(|p| p.ok)
            .unwrap_or(true);
        let up = u.is_running() && u.state == "active" && probe_ok;
        f.sample(
            "imageserving_component_up",
            &[("component", u.name)],
            f64::from(u8::from(up)),
        );
    }

    f.header(
        "imageserving_component_state",
        "gauge",
        "The component's unit state as systemd reports it: 1 for the current state, 0 for the others.",
    );
    for u in &units {
        for state in STATES {
            f.sample(
                "imageserving_component_state",
                &[("component", u.name), ("state", state)],
                f64::from(u8::from(u.state == state)),
            );
        }
    }

    #[allow(clippy::cast_precision_loss)] // seconds and bytes far below 2^53
    {
        gauge(
            &mut f,
            "imageserving_component_start_time_seconds",
            "Start time of the component's main process, in seconds since the Unix epoch.",
            &|u| match (boot_unix, u.started_after_boot) {
                (Some(boot), Some(after)) => Some(boot + after),
                _ => u.uptime_seconds.map(|s| (now_unix - s as f64).floor()),
            },
        );
        gauge(
            &mut f,
            "imageserving_component_uptime_seconds",
            "Seconds since the component's main process started (procfs).",
            &|u| u.uptime_seconds.map(|s| s as f64),
        );
        gauge(
            &mut f,
            "imageserving_component_resident_memory_bytes",
            "Resident set size summed over every process of the component's unit (procfs statm).",
            &|u| u.is_running().then_some(u.memory.rss_bytes as f64),
        );
        gauge(
            &mut f,
            "imageserving_component_memory_limit_bytes",
            "The memory limit above which the supervisor restarts the component (IMAGESERVING_MEMORY_RESTART), where set.",
            &|u| u.memory.limit_bytes.map(|b| b as f64),
        );
        gauge(
            &mut f,
            "imageserving_component_proportional_memory_bytes",
            "Proportional set size summed over the processes of the unit that could be read (procfs smaps_rollup).",
            &|u| u.memory.pss_bytes.map(|b| b as f64),
        );
        gauge(
            &mut f,
            "imageserving_component_cgroup_memory_bytes",
            "Memory charged to the unit's cgroup, page cache included (systemd's MemoryCurrent), where the memory controller is available.",
            &|u| u.memory.cgroup_bytes.map(|b| b as f64),
        );
    }
    gauge(
        &mut f,
        "imageserving_component_processes",
        "Processes in the component's unit.",
        &|u| Some(f64::from(u.processes)),
    );
    gauge(
        &mut f,
        "imageserving_component_unreadable_processes",
        "Processes of the unit whose memory maps could not be read (not in the PSS sum).",
        &|u| Some(f64::from(u.unreadable_processes)),
    );
    gauge(
        &mut f,
        "imageserving_component_given_up",
        "Whether systemd gave up restarting the component (1: failed at its start limit; 'ImageServing start' resets it).",
        &|u| Some(f64::from(u8::from(u.given_up))),
    );
    f.header(
        "imageserving_component_restarts_total",
        "counter",
        "Automatic restarts of the component by systemd (NRestarts; starts over when the unit is started by hand).",
    );
    for u in &units {
        f.sample(
            "imageserving_component_restarts_total",
            &[("component", u.name)],
            f64::from(u.restarts),
        );
    }
    f.header(
        "imageserving_component_probe_duration_seconds",
        "gauge",
        "How long this scrape's health probe of the component took.",
    );
    for p in probes.iter().filter(|p| p.ok.is_some()) {
        f.sample(
            "imageserving_component_probe_duration_seconds",
            &[("component", p.component)],
            p.duration.as_secs_f64(),
        );
    }
    out
}
