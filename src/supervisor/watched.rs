//! One component as the supervisor watches it: its unit's state, and its probes' verdict.

use zbus::zvariant::OwnedObjectPath;

use super::health::Health;
use super::memory::MemoryGuard;
use crate::component::Component;
use crate::probe::ProbeSettings;
use crate::systemd::ActiveState;

/// What `STATUS=` says after a component's name when systemd refused the supervisor a
/// restart of it.
pub const RESTART_REFUSED: &str = "given up (restart refused)";

/// One watched component: what systemd says of its unit, and (when it has a probe) what
/// its probes say ([`Health`], where the decisions are made).
pub(super) struct Watched {
    pub(super) component: Component,
    pub(super) path: OwnedObjectPath,
    pub(super) state: ActiveState,
    pub(super) sub_state: String,
    pub(super) main_pid: u32,
    /// The id of the job pending for its unit, 0 when none.
    pub(super) job_id: u32,
    /// `None` for a component without a probe: it serves when its unit is active.
    pub(super) health: Option<Health>,
    /// Its memory guard, when `IMAGESERVING_MEMORY_RESTART` is set (with or without a probe).
    pub(super) memory: Option<MemoryGuard>,
}

impl Watched {
    pub(super) fn serving(&self) -> bool {
        match &self.health {
            Some(h) => h.serving(),
            None => self.state == ActiveState::Active,
        }
    }

    pub(super) fn settings(&self) -> Option<&ProbeSettings> {
        self.health.as_ref().map(Health::settings)
    }

    /// Down with no job pending that would bring it up: the operator stopped it (`inactive`)
    /// or systemd gave up on it (`failed`). Nothing will change unless someone acts, so the
    /// supervisor does not wait for it, and does not start it either: that is the operator's
    /// call (`ImageServing start`, `restart NAME`). It is taken up again once it is active.
    pub(super) fn settled_down(&self) -> bool {
        self.state.is_down() && self.job_id == 0
    }

    /// Why it does not serve, for `STATUS=` once the stack runs.
    pub(super) fn problem(&self) -> String {
        if self.settled_down() && self.state == ActiveState::Failed {
            format!(
                "{} failed, given up by systemd (reset with 'ImageServing start')",
                self.component
            )
        } else if self.settled_down() {
            format!(
                "{} stopped (not started by the supervisor; 'ImageServing start' starts it)",
                self.component
            )
        } else if self.health.as_ref().is_some_and(Health::refused) {
            format!("{} {RESTART_REFUSED}", self.component)
        } else {
            self.describe_wait()
        }
    }

    pub(super) fn describe_wait(&self) -> String {
        if self.state != ActiveState::Active {
            format!(
                "{} {} ({})",
                self.component,
                self.state.as_str(),
                self.sub_state
            )
        } else {
            match self
                .health
                .as_ref()
                .and_then(|h| Some((h, h.last_error()?)))
            {
                Some((h, e)) => format!(
                    "{} not answering on {}: {e}",
                    self.component,
                    h.settings().target
                ),
                None => format!("{} not yet probed", self.component),
            }
        }
    }
}
