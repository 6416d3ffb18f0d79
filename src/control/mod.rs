//! `start`, `stop` and `restart`: systemd jobs on the stack's units, and the wait for the
//! states they promise.
//!
//! Every wait follows the same pattern: listen for signals, enqueue the job, then re-read
//! state on each signal until the job is gone and the units are where they should be. Nothing
//! sleeps; a unit that fails ends the wait at once with the unit's own account of why.

use std::time::Duration;

use zbus::zvariant::OwnedObjectPath;

mod serving;
mod sockets;
mod stop;

use crate::component::{self, Component, TARGET};
use crate::error::Error;
use crate::probe;
use crate::progress::Progress;
use crate::systemd::{
    ActiveState, JobWait, Manager, Scope, ServiceState, SocketState, UnitInfo, Verdict,
};

/// How long a call may wait while polkit asks the user for a password.
const PASSWORD_WAIT: Duration = Duration::from_secs(300);

/// A job result that means the unit is where the job meant it to be: `done`, or `skipped`
/// (nothing was left to do), as `systemctl` counts them.
fn job_succeeded(result: &str) -> bool {
    matches!(result, "done" | "skipped")
}

/// One unit of the stack, loaded.
#[derive(Debug, Clone)]
struct StackUnit {
    name: &'static str,
    component: Option<Component>,
    path: OwnedObjectPath,
}

impl StackUnit {
    fn label(&self) -> String {
        component::label_of(self.name).to_owned()
    }

    fn failure(&self, state: &ServiceState) -> Error {
        let reason = state.failure_reason();
        match self.component {
            Some(component) => Error::ComponentFailed { component, reason },
            None => Error::SupervisorFailed { reason },
        }
    }
}

/// The stack as the manager knows it: the target, the supervisor and the components.
pub struct Stack {
    mgr: Manager,
    target: OwnedObjectPath,
    /// Supervisor first, then the components.
    services: Vec<StackUnit>,
    /// The target, then the services, as the manager listed them when the stack was opened:
    /// their load states say which can be started (not masked, unit file present).
    loaded: Vec<UnitInfo>,
    /// Each component's socket unit, as the manager had it when the stack was opened.
    sockets: Vec<(Component, SocketState)>,
}

/// What a command did, for the one line printed on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The stack is up and the supervisor reported it ready.
    Started,
    /// Everything is stopped and no process is left.
    Stopped,
    /// It was already stopped.
    AlreadyStopped,
    /// The whole stack was restarted and is ready again.
    Restarted,
    /// One component was restarted and is active again, with its new main PID.
    ComponentRestarted(Component, u32),
    /// One component was started (or already ran) and answers, with its main PID.
    ComponentStarted(Component, u32),
    /// One component was stopped and no process of its unit is left.
    ComponentStopped(Component),
    /// That component was already stopped.
    ComponentAlreadyStopped(Component),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Started => f.write_str("Image Serving started: ps, is and svg are up and the Server Supervisor reports ready."),
            Outcome::Stopped => f.write_str("Image Serving stopped: every unit is inactive and no process is left."),
            Outcome::AlreadyStopped => f.write_str("Image Serving is already stopped."),
            Outcome::Restarted => f.write_str("Image Serving restarted: ps, is and svg are up and the Server Supervisor reports ready."),
            Outcome::ComponentRestarted(c, pid) => write!(
                f,
                "{} ({c}) restarted: {} is active, main PID {pid}.",
                c.title(),
                c.unit()
            ),
            Outcome::ComponentStarted(c, pid) => write!(
                f,
                "{} ({c}) started: {} is active, main PID {pid}.",
                c.title(),
                c.unit()
            ),
            Outcome::ComponentStopped(c) => write!(
                f,
                "{} ({c}) stopped: {} is inactive and no process of it is left; the supervisor leaves it stopped.",
                c.title(),
                c.unit()
            ),
            Outcome::ComponentAlreadyStopped(c) => {
                write!(f, "{} ({c}) is already stopped.", c.title())
            }
        }
    }
}

impl Stack {
    /// Connect to `scope`'s manager and load the stack's units (with `ask_password`, polkit may
    /// ask the user on the terminal, through an agent the caller runs). With no unit file
    /// and nothing running, the stack is [`Error::NotInstalled`]. A unit whose file is gone
    /// ([`Error::NotInstalled`]) or that is masked ([`Error::Masked`]) cannot be started: the
    /// commands that would start it refuse before they change anything; `stop` stops it.
    pub fn open(scope: Scope, ask_password: bool) -> Result<Stack, Error> {
        let mut mgr = Manager::connect(scope)?;
        if ask_password {
            mgr.allow_interactive_auth(PASSWORD_WAIT);
        }
        let names: Vec<&str> = std::iter::once(TARGET)
            .chain(component::stack_units())
            .collect();
        // One call: ListUnitsByNames loads unit files not loaded yet, and reports the ones
        // that do not exist as not-found.
        let infos = mgr.list_units_by_names(&names)?;
        if infos
            .iter()
            .all(|i| !i.is_installed() && i.active_state.is_down())
        {
            return Err(Error::NotInstalled {
                unit: TARGET.to_owned(),
                scope,
            });
        }
        let loaded = infos.clone();
        let mut paths = infos.into_iter().map(|i| i.path);
        let target = paths.next().ok_or_else(|| Error::BadAnswer {
            scope,
            what: "the units asked for".into(),
        })?;
        let services = component::stack_units()
            .zip(paths)
            .map(|(name, path)| StackUnit {
                name,
                component: Component::from_unit(name),
                path,
            })
            .collect();
        let socket_names = Component::ALL.map(Component::socket);
        let sockets = Component::ALL
            .into_iter()
            .zip(mgr.sockets(&socket_names, TARGET)?)
            .collect();
        Ok(Stack {
            mgr,
            target,
            services,
            loaded,
            sockets,
        })
    }

    /// Whether `units` can be started: a masked one cannot, nor one whose file is gone.
    /// Checked before anything is changed, so a refused command leaves nothing half-done.
    fn startable(&self, mut units: impl FnMut(&str) -> bool) -> Result<(), Error> {
        let scope = self.mgr.scope();
        for info in self.loaded.iter().filter(|i| units(&i.name)) {
            if info.is_masked() {
                return Err(Error::Masked {
                    unit: info.name.clone(),
                    scope,
                });
            }
            if !info.is_installed() {
                return Err(Error::NotInstalled {
                    unit: info.name.clone(),
                    scope,
                });
            }
        }
        Ok(())
    }

    /// Listen for the signals of `units` (before their job is enqueued).
    fn listen(&self, units: &[StackUnit]) -> Result<JobWait<'_>, Error> {
        let paths: Vec<&str> = units.iter().map(|u| u.path.as_str()).collect();
        Ok(JobWait::subscribe(&self.mgr, &paths)?)
    }

    /// Clear earlier failures and start-limit counters, so that this start is judged on its
    /// own and a unit that hit its start limit gets another chance: an operator who runs
    /// `start` or `restart` means "try again". The limit still stops automatic restart loops
    /// (systemd's and the supervisor's), which is what it is for.
    fn reset_failed(&self, units: &[&str]) -> Result<(), Error> {
        for unit in units {
            self.mgr.reset_failed_unit(unit)?;
        }
        Ok(())
    }

    /// The unit of `component`, as loaded.
    fn unit_of(&self, component: Component) -> Result<&StackUnit, Error> {
        self.services
            .iter()
            .find(|u| u.component == Some(component))
            .ok_or_else(|| Error::BadAnswer {
                scope: self.mgr.scope(),
                what: component.unit().to_owned(),
            })
    }

    /// The target, the services, and the sockets switched on.
    fn all_names(&self) -> Vec<&'static str> {
        std::iter::once(TARGET)
            .chain(self.services.iter().map(|u| u.name))
            .chain(
                self.sockets
                    .iter()
                    .filter(|(_, s)| s.wanted)
                    .map(|(c, _)| c.socket()),
            )
            .collect()
    }

    /// Start the target and wait until the supervisor reports the stack ready.
    pub fn start(&self, progress: &mut Progress) -> Result<Outcome, Error> {
        self.bring_up(Manager::start_unit, "Starting", progress)?;
        Ok(Outcome::Started)
    }

    /// Restart every unit of the stack, supervisor included, and wait until ready again.
    pub fn restart(&self, progress: &mut Progress) -> Result<Outcome, Error> {
        self.bring_up(Manager::restart_unit, "Restarting", progress)?;
        Ok(Outcome::Restarted)
    }

    /// The target's start or restart job (`enqueue`), after the checks and the clean slate
    /// it needs, and the wait until the stack serves.
    fn bring_up(
        &self,
        enqueue: impl FnOnce(&Manager, &str) -> Result<OwnedObjectPath, crate::systemd::SystemdError>,
        verb: &str,
        progress: &mut Progress,
    ) -> Result<(), Error> {
        self.startable(|_| true)?;
        self.check_probes_behind_sockets(&Component::ALL)?;
        let began = std::time::Instant::now();
        self.switch_to_sockets(&Component::ALL, progress)?;
        let wait = self.listen(&self.services)?;
        self.reset_failed(&self.all_names())?;
        let job = enqueue(&self.mgr, TARGET)?;
        self.wait_ready(&wait, &job, (verb, began), progress)
    }

    /// Restart one component only; the others keep their processes.
    pub fn restart_component(
        &self,
        component: Component,
        progress: &mut Progress,
    ) -> Result<Outcome, Error> {
        let pid = self.bring_component(component, Manager::restart_unit, "restart", progress)?;
        Ok(Outcome::ComponentRestarted(component, pid))
    }

    /// Start one component (after `stop NAME`, say); one that runs is left as it is, and
    /// waited for until it answers. The others are not touched.
    pub fn start_component(
        &self,
        component: Component,
        progress: &mut Progress,
    ) -> Result<Outcome, Error> {
        let pid = self.bring_component(component, Manager::start_unit, "start", progress)?;
        Ok(Outcome::ComponentStarted(component, pid))
    }

    /// The start or restart job (`enqueue`, `kind`) of one component, after the checks and
    /// the clean slate it needs, and the wait until it answers; its main PID then.
    fn bring_component(
        &self,
        component: Component,
        enqueue: impl FnOnce(&Manager, &str) -> Result<OwnedObjectPath, crate::systemd::SystemdError>,
        kind: &'static str,
        progress: &mut Progress,
    ) -> Result<u32, Error> {
        self.startable(|unit| unit == component.unit())?;
        self.check_probes_behind_sockets(&[component])?;
        let began = std::time::Instant::now();
        let unit = self.unit_of(component)?;
        // A socket switched on takes the port before the new process starts, which then
        // runs on it; one that holds it already keeps it (and its waiting clients).
        self.switch_to_sockets(&[component], progress)?;
        self.start_socket(component)?;
        let wait = self.listen(std::slice::from_ref(unit))?;
        self.reset_failed(&[unit.name])?;
        let job = enqueue(&self.mgr, unit.name)?;
        progress.show(&format!("waiting for the {kind} job"));
        // Until the job is gone; a failure of the unit ends the wait early.
        let result = wait.until(Some(&job), |now| match (now.states.first(), now.result) {
            (Some(state), _) if state.has_failed() => Verdict::Fail(unit.failure(state)),
            (_, Some(result)) => Verdict::Done(result.to_owned()),
            _ => Verdict::Wait,
        })?;
        let state = self.mgr.service_state(unit.path.as_str())?;
        let verb = if kind == "start" {
            "Starting"
        } else {
            "Restarting"
        };
        // A unit that Restart= brings back is waited for as one that came up at once.
        if state.active_state == ActiveState::Active || state.will_retry() {
            self.wait_serving(std::slice::from_ref(unit), (verb, began), None, progress)?;
            let state = self.mgr.service_state(unit.path.as_str())?;
            return Ok(state.main_pid);
        }
        if state.has_failed() || !job_succeeded(&result) {
            return Err(unit.failure(&state));
        }
        Err(Error::StoppedMeanwhile {
            label: unit.label(),
            unit: unit.name.to_owned(),
            state: state.summary(),
            doing: kind.into(),
        })
    }

    /// The shared wait of `start` and `restart`: until the target's job and every job it
    /// pulled in are gone, then until every component answers its probe. The supervisor's
    /// `READY=1` already means "serving" when it started with us; the probe check covers a
    /// stack whose supervisor was already up (a start that only brought back one component).
    fn wait_ready(
        &self,
        wait: &JobWait<'_>,
        job: &OwnedObjectPath,
        (verb, began): (&str, std::time::Instant),
        progress: &mut Progress,
    ) -> Result<(), Error> {
        let watched = &self.services;
        // Until the target's job and every job it pulled in are gone; a unit that fails
        // for good ends the wait early.
        let result = wait.until(Some(job), |now| {
            if let Some((unit, state)) =
                watched.iter().zip(now.states).find(|(_, s)| s.has_failed())
            {
                return Verdict::Fail(unit.failure(state));
            }
            match now.result {
                Some(result) if now.no_job_pending() => Verdict::Done(result.to_owned()),
                _ => {
                    progress.show(&waiting_line(watched, now.states));
                    Verdict::Wait
                }
            }
        })?;
        // Every job is gone: judge every unit on its state now.
        for unit in watched {
            let state = self.mgr.service_state(unit.path.as_str())?;
            // One that Restart= brings back is waited for below, by its probe.
            if state.active_state != ActiveState::Active
                && !(state.will_retry() && unit.component.is_some())
            {
                // Failed is a failure; down and not failed (the supervisor included) is
                // another command's stop, and the message says so.
                if state.has_failed() {
                    return Err(unit.failure(&state));
                }
                return Err(Error::StoppedMeanwhile {
                    label: unit.label(),
                    unit: unit.name.to_owned(),
                    state: state.summary(),
                    doing: verb.to_lowercase(),
                });
            }
        }
        if !job_succeeded(&result) {
            return Err(Error::JobFailed {
                kind: if verb == "Restarting" {
                    "restart"
                } else {
                    "start"
                },
                unit: TARGET.to_owned(),
                result,
            });
        }
        self.sockets_hold(&Component::ALL)?;
        let components: Vec<StackUnit> = watched
            .iter()
            .filter(|u| u.component.is_some())
            .cloned()
            .collect();
        // No longer than the supervisor's own ceiling for a start, after which it reports
        // ready with what does not serve.
        let ceiling = match watched.iter().find(|u| u.component.is_none()) {
            Some(sup) => {
                let env = self.mgr.unit_environment(sup.path.as_str())?;
                Some(probe::start_timeout(sup.name, &env)?)
            }
            None => None,
        };
        self.wait_serving(&components, (verb, began), ceiling, progress)
    }
}

/// What the progress line says while jobs run: the members not active yet, with their
/// state (`waiting for supervisor (activating), svg (auto-restart)`). The supervisor's own
/// account (which component it waits for, and why) is in its `STATUS=`, and in the error
/// when the start fails: a line that redraws stays short.
fn waiting_line(watched: &[StackUnit], states: &[ServiceState]) -> String {
    let waiting: Vec<String> = watched
        .iter()
        .zip(states)
        .filter(|(_, state)| state.active_state != ActiveState::Active)
        // "dead" with a job pending is a start that has not begun: the name says it.
        .map(|(u, state)| match state.sub_state.as_str() {
            "dead" | "" => u.label(),
            sub => format!("{} ({sub})", u.label()),
        })
        .collect();
    if waiting.is_empty() {
        "waiting for systemd's jobs".to_owned()
    } else {
        format!("waiting for {}", waiting.join(", "))
    }
}
