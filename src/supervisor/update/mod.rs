//! Update: replace a service's running revision with another — a new spec
//! and/or artifact, or a kept revision (`solo rollback`) — by a strategy
//! (rolling, canary, blue-green), without closing its granted sockets.
//!
//! Two revisions run side by side during an update, each its own
//! [`Service`] (its instances, cgroups `ID.REPLICA.rN`, stop channels)
//! sharing the service's uid, logs and listening sockets: the new
//! revision's instances get a duplicate of the very socket the old ones
//! accept on, so the kernel's queue is never closed.
//!
//! Invariants:
//! - At most one update per service; its row in the store is written at
//!   every step, before the step acts.
//! - The commit point is one store transaction (`commit_update`); before
//!   it the previous revision is the service's (a crash rolls back, see
//!   [`resume`]), after it the new one is.
//! - The update ends committed (the new revision runs alone) or rolled back
//!   (the previous revision runs with every instance it had, the new one
//!   has no process left); either way the progress stream says so last.
//!
//! One file per operation: `prepare` (validate, authorize, open grants,
//! persist, start), `drive` (the shared loop parts), `rolling`, `canary`,
//! `bluegreen` (the strategies), `finish` (commit, roll back), `revisions`
//! (kept revisions, `rollback` targets, artifact collection), `resume`
//! (after a daemon restart); `plan` holds the decisions as pure functions.

mod bluegreen;
mod canary;
mod drive;
mod finish;
pub mod plan;
mod prepare;
mod resume;
pub mod revisions;
mod rolling;

pub use resume::resume;

use super::service::Service;
use super::{Error, Supervisor};
use crate::spec::update::{RawStrategy, UpdatePolicy};
use crate::spec::RawSpec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Where an update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Persisted, nothing started yet.
    Starting,
    /// Rolling: replacing instances.
    Rolling,
    /// Canary: starting the canaries beside the old set.
    Canary,
    /// Canary: observation window.
    Observing,
    /// Canary (`manual`): waiting for promote or abort.
    AwaitingPromotion,
    /// Canary: replacing the rest.
    Promoting,
    /// Blue-green: the old set is being frozen.
    Switching,
    /// Blue-green: the old set is kept, frozen, for the grace period.
    Grace,
    /// The commit point and the old set's last stop.
    Committing,
    Done,
    RollingBack,
    RolledBack,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Rolling => "rolling",
            Phase::Canary => "canary",
            Phase::Observing => "observing",
            Phase::AwaitingPromotion => "awaiting-promotion",
            Phase::Promoting => "promoting",
            Phase::Switching => "switching",
            Phase::Grace => "grace",
            Phase::Committing => "committing",
            Phase::Done => "done",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
        }
    }
}

/// An update's progress: streamed to the caller, carried by `UPDATING`
/// events, shown by `Status`, and stored at every step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub id: String,
    pub from_revision: u64,
    pub to_revision: u64,
    pub strategy: String,
    pub phase: String,
    /// Old instances running and not asked to stop.
    pub old_running: u32,
    /// New instances started, not yet available.
    pub new_starting: u32,
    /// New instances available (ready for `min_ready`).
    pub new_ready: u32,
    /// Replicas of the new revision.
    pub total: u32,
    pub message: String,
    /// The last progress of the update.
    pub done: bool,
    pub rolled_back: bool,
    /// Why it rolled back.
    pub reason: String,
    pub at_ms: i64,
    pub elapsed_ms: u64,
    /// Old replicas the update stopped, new replicas it launched (what a
    /// rollback restores and removes).
    #[serde(default)]
    pub old_stopped: Vec<u32>,
    #[serde(default)]
    pub new_launched: Vec<u32>,
}

/// What the caller of an update asks of the one in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Proceed,
    /// Canary: go ahead now; blue-green: end the grace period now.
    Promote,
    /// Roll back now (by whom).
    Abort(String),
    /// Stop the new revision without restoring the old one: the service
    /// is being killed, or the daemon shuts down.
    Cancel(String),
}

/// One update under way.
pub struct Run {
    pub id: String,
    /// The revision running when the update started, and the one rolled out.
    pub from: Arc<Service>,
    pub to: Arc<Service>,
    pub policy: UpdatePolicy,
    progress: watch::Sender<Progress>,
    control: watch::Sender<Control>,
    started: Instant,
    /// New replicas counted available.
    available: Mutex<BTreeSet<u32>>,
}

/// A service's update: the one under way, or how the last one ended.
enum Slot {
    Active(Arc<Run>),
    Ended(Box<Progress>),
}

/// Every service's update.
#[derive(Default)]
pub struct Updates {
    slots: Mutex<BTreeMap<String, Slot>>,
}

impl Updates {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The update in progress for `id`.
    pub fn active(&self, id: &str) -> Option<Arc<Run>> {
        match self.lock().get(id) {
            Some(Slot::Active(r)) => Some(r.clone()),
            _ => None,
        }
    }

    /// The progress of the update in progress, else of the last one.
    pub fn view(&self, id: &str) -> Option<Progress> {
        match self.lock().get(id) {
            Some(Slot::Active(r)) => Some(r.progress()),
            Some(Slot::Ended(p)) => Some((**p).clone()),
            None => None,
        }
    }

    /// Every update in progress.
    pub fn all_active(&self) -> Vec<Arc<Run>> {
        self.lock()
            .values()
            .filter_map(|s| match s {
                Slot::Active(r) => Some(r.clone()),
                Slot::Ended(_) => None,
            })
            .collect()
    }

    fn start(&self, run: Arc<Run>) {
        self.lock().insert(run.id.clone(), Slot::Active(run));
    }

    fn end(&self, id: &str, last: Progress) {
        self.lock().insert(id.to_owned(), Slot::Ended(Box::new(last)));
    }

    /// Forgets a removed service's updates.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl Run {
    /// The latest progress.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Every progress from now on; the last one has `done`.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// Asks the driver to cancel (kill, shutdown) and waits until the
    /// update has ended.
    pub async fn cancel(&self, why: &str) {
        self.control.send_if_modified(|c| {
            if matches!(c, Control::Cancel(_)) {
                false
            } else {
                *c = Control::Cancel(why.to_owned());
                true
            }
        });
        self.ended().await;
    }

    /// Waits until the update has ended.
    pub async fn ended(&self) {
        let mut rx = self.progress.subscribe();
        let _ = rx.wait_for(|p| p.done).await;
    }
}

/// What an `Update` call rolls out.
#[derive(Debug, Clone)]
pub enum Target {
    /// A new spec (`artifact` unset: the current artifact is kept).
    Spec(Box<RawSpec>),
    /// A kept revision; 0: the one that ran before the current one.
    Revision(u64),
}

/// An `Update` call.
#[derive(Debug, Clone)]
pub struct Request {
    pub id: String,
    pub target: Target,
    pub strategy: RawStrategy,
}

/// A decision on the update in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Promote,
    Abort,
    /// Only follow its progress.
    Follow,
}

impl Supervisor {
    /// Promotes, aborts or just follows the update of `id` in progress.
    pub fn update_action(&self, id: &str, action: Action, by: &str) -> Result<Arc<Run>, Error> {
        self.get(id)?;
        let run = self.updates.active(id).ok_or_else(|| {
            let last = self
                .updates
                .view(id)
                .map(|p| format!(" (the last one, to revision {}, ended: {})", p.to_revision, p.phase))
                .unwrap_or_default();
            Error::Precondition(format!("id: service '{id}' has no update in progress{last}"))
        })?;
        match action {
            Action::Follow => {}
            Action::Promote => {
                self.audit(
                    crate::audit::Record::new(crate::audit::Kind::Update, id)
                        .by(by)
                        .message(format!("update to revision {} promoted", run.to.revision))
                        .with("action", "promote")
                        .with("to_revision", run.to.revision),
                );
                run.control.send_if_modified(|c| {
                    if *c == Control::Proceed {
                        *c = Control::Promote;
                        true
                    } else {
                        false
                    }
                });
            }
            Action::Abort => {
                self.audit(
                    crate::audit::Record::new(crate::audit::Kind::Update, id)
                        .by(by)
                        .message(format!("update to revision {} aborted", run.to.revision))
                        .with("action", "abort")
                        .with("to_revision", run.to.revision),
                );
                run.control.send_if_modified(|c| match c {
                    Control::Proceed | Control::Promote => {
                        *c = Control::Abort(format!("aborted by token {by}"));
                        true
                    }
                    _ => false,
                });
            }
        }
        Ok(run)
    }
}
