//! The one wait for jobs (systemctl's `bus-wait-for-jobs.c` is the model): subscribe to the
//! units' signals *before* the job is enqueued, then, on each signal, re-read the units it
//! concerns and let the caller judge where things stand: wait on, done, or failed.
//!
//! Every command that waits on systemd (`start`, `stop`, `restart`, `restart NAME`) is a
//! short composition of [`JobWait::until`] and a judgement; none has a loop of its own.

use zbus::zvariant::OwnedObjectPath;

use super::{Event, Events, Manager, ServiceState, SystemdError};

/// Signals about a set of units, subscribed before their job is enqueued.
pub struct JobWait<'m> {
    mgr: &'m Manager,
    events: Events,
    paths: Vec<String>,
}

/// Where a wait stands, for the caller to judge.
#[derive(Debug)]
pub struct Standing<'a> {
    /// Each unit's state, in the order given, as last read.
    pub states: &'a [ServiceState],
    /// How the job waited for ended (`done`, `failed`, ...), once systemd removed it.
    pub result: Option<&'a str>,
}

impl Standing<'_> {
    /// Whether no job is pending for any of the units.
    pub fn no_job_pending(&self) -> bool {
        self.states.iter().all(|s| s.job_id == 0)
    }
}

/// What the caller makes of a [`Standing`].
#[derive(Debug)]
pub enum Verdict<T, E> {
    /// Not there yet: wait for the next signal.
    Wait,
    /// Done, with this.
    Done(T),
    /// Failed, with this.
    Fail(E),
}

impl<'m> JobWait<'m> {
    /// Listen for signals about the units at `paths` (their object paths). Do this before
    /// enqueueing the job, or its end may be gone before anyone listens.
    pub fn subscribe(mgr: &'m Manager, paths: &[&str]) -> Result<JobWait<'m>, SystemdError> {
        Ok(JobWait {
            mgr,
            events: mgr.events(paths)?,
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        })
    }

    /// Read every unit, judge, and on each signal read again what it concerns (a unit that
    /// changed; every unit when a job ended, since any of their jobs may be the one), until
    /// `judge` says done or failed. `job`, when given, is the job whose result
    /// [`Standing::result`] carries once systemd removed it.
    pub fn until<T, E: From<SystemdError>>(
        &self,
        job: Option<&OwnedObjectPath>,
        mut judge: impl FnMut(&Standing<'_>) -> Verdict<T, E>,
    ) -> Result<T, E> {
        let mut states = self
            .paths
            .iter()
            .map(|p| self.mgr.service_state(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut result: Option<String> = None;
        loop {
            let standing = Standing {
                states: &states,
                result: result.as_deref(),
            };
            match judge(&standing) {
                Verdict::Wait => {}
                Verdict::Done(v) => return Ok(v),
                Verdict::Fail(e) => return Err(e),
            }
            match self.events.next_event()? {
                Event::JobRemoved {
                    job: done,
                    result: r,
                    ..
                } => {
                    if job == Some(&done) {
                        result = Some(r);
                    }
                    for (state, path) in states.iter_mut().zip(&self.paths) {
                        *state = self.mgr.service_state(path)?;
                    }
                }
                Event::UnitChanged { path } => {
                    for (state, p) in states.iter_mut().zip(&self.paths) {
                        if p.as_str() == path.as_str() {
                            *state = self.mgr.service_state(p)?;
                        }
                    }
                }
                Event::Reloaded => {}
            }
        }
    }
}
