//! What every strategy's loop does: look at the caller's decisions and at
//! the new instances' health, start new instances and stop old ones, record
//! each step (store, progress stream, `UPDATING` event), and wait for the
//! next change. The strategy files say only *when* to do which.

use super::plan::{self, Counts, Snap};
use super::{finish, Control, Phase, Progress, Run};
use crate::spec::update::Strategy;
use crate::supervisor::events::{now_ms, Event, EventKind};
use crate::supervisor::service::{Service, StopMode};
use crate::supervisor::Supervisor;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a waiting driver looks again without a change (timers:
/// `min_ready`, windows).
const TICK: Duration = Duration::from_millis(25);

/// Why a strategy stopped before its end.
pub(super) enum Abort {
    /// The new revision failed (why): roll back.
    Failed(String),
    /// The caller aborted: roll back.
    Aborted(String),
    /// Kill or shutdown: stop the new revision, restore nothing.
    Cancelled(String),
}

/// The update's task: the strategy, then the commit or the rollback.
pub(super) async fn run(sup: Arc<Supervisor>, run: Arc<Run>) {
    let r = match run.policy.strategy {
        Strategy::Rolling { max_surge, max_unavailable } => {
            super::rolling::converge(&sup, &run, max_surge, max_unavailable, Phase::Rolling).await
        }
        Strategy::Canary { percent, window_ms, manual } => {
            super::canary::run(&sup, &run, percent, Duration::from_millis(u64::from(window_ms)), manual).await
        }
        Strategy::BlueGreen { grace_ms } => {
            super::bluegreen::run(&sup, &run, Duration::from_millis(u64::from(grace_ms))).await
        }
    };
    match r {
        Ok(()) => finish::commit(&sup, &run).await,
        Err(Abort::Failed(why) | Abort::Aborted(why)) => finish::roll_back(&sup, &run, why, true).await,
        Err(Abort::Cancelled(why)) => finish::roll_back(&sup, &run, why, false).await,
    }
}

impl Run {
    /// The caller's decision so far: `Ok(true)` once promoted.
    pub(super) fn check(&self) -> Result<bool, Abort> {
        match &*self.control.borrow() {
            Control::Proceed => Ok(false),
            Control::Promote => Ok(true),
            Control::Abort(by) => Err(Abort::Aborted(by.clone())),
            Control::Cancel(why) => Err(Abort::Cancelled(why.clone())),
        }
    }

    /// Judges the new instances; newly available ones are counted.
    pub(super) fn assess(&self) -> Result<(), Abort> {
        let snaps = snaps(&self.to);
        let min_ready = Duration::from_millis(u64::from(self.policy.min_ready_ms));
        let mut available = self.available.lock().unwrap_or_else(|p| p.into_inner());
        let h = plan::assess(&snaps, &available, min_ready, Instant::now(), self.to.revision);
        if let Some(why) = h.broken {
            return Err(Abort::Failed(why));
        }
        available.extend(h.newly_available);
        Ok(())
    }

    pub(super) fn available_count(&self) -> u32 {
        self.available.lock().unwrap_or_else(|p| p.into_inner()).len() as u32
    }

    /// Old replicas with a task that the update has not asked to stop.
    pub(super) fn old_live(&self) -> Vec<u32> {
        let rt = self.from.runtime();
        rt.instances
            .iter()
            .filter(|i| i.launched && !i.ended && !stop_requested(&self.from, i.replica))
            .map(|i| i.replica)
            .collect()
    }

    /// Old replicas the update asked to stop.
    pub(super) fn old_stopped(&self) -> Vec<u32> {
        (0..self.from.replica_stop.len() as u32).filter(|r| stop_requested(&self.from, *r)).collect()
    }

    fn new_launched(&self) -> Vec<u32> {
        self.to.runtime().instances.iter().filter(|i| i.launched).map(|i| i.replica).collect()
    }

    pub(super) fn counts(&self) -> Counts {
        let new_live = self.to.runtime().instances.iter().filter(|i| i.launched && !i.ended).count();
        Counts {
            target: self.to.spec.replicas,
            old_live: self.old_live().len() as u32,
            new_launched: new_live as u32,
            new_available: self.available_count(),
        }
    }

    /// Starts the lowest new replica not started yet.
    pub(super) fn launch_next(&self, sup: &Arc<Supervisor>) {
        let next = self.to.runtime().instances.iter().find(|i| !i.launched).map(|i| i.replica);
        if let Some(r) = next {
            crate::supervisor::instance::start(sup.clone(), self.to.clone(), r, false);
        }
    }

    /// Asks an old instance to stop: SIGTERM, then its grace to drain
    /// what it accepted (the socket stays open: the rest of its queue goes
    /// to the other instances).
    pub(super) fn stop_old(&self, replica: u32) {
        self.from.stop_replica(replica, graceful(&self.from));
    }

    /// Waits until every old instance asked to stop has ended.
    pub(super) async fn drained(&self) {
        for r in self.old_stopped() {
            self.from.replica_ended(r).await;
        }
    }

    /// Records a step when anything changed: progress stream, store (the
    /// caller waits for the commit), `UPDATING` event.
    pub(super) async fn record(&self, sup: &Supervisor, phase: Phase, message: String) {
        let p = self.snapshot(phase, message);
        let same = {
            let last = self.progress.borrow();
            last.phase == p.phase
                && last.message == p.message
                && (last.old_running, last.new_starting, last.new_ready) == (p.old_running, p.new_starting, p.new_ready)
        };
        if same {
            return;
        }
        self.publish(sup, p, EventKind::Updating).await;
    }

    /// The progress as it stands, in `phase`.
    pub(super) fn snapshot(&self, phase: Phase, message: String) -> Progress {
        let c = self.counts();
        let last = self.progress.borrow().clone();
        Progress {
            phase: phase.as_str().into(),
            old_running: c.old_live,
            new_starting: c.new_launched.saturating_sub(c.new_available),
            new_ready: c.new_available,
            total: c.target,
            message,
            at_ms: now_ms(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            old_stopped: self.old_stopped(),
            new_launched: self.new_launched(),
            done: false,
            rolled_back: false,
            reason: String::new(),
            ..last
        }
    }

    /// Stores `p`, sends it to followers and emits it as a `kind` event.
    pub(super) async fn publish(&self, sup: &Supervisor, p: Progress, kind: EventKind) {
        if !p.done {
            let json = serde_json::to_string(&p).unwrap_or_default();
            if let Err(e) = sup.store.update_step(&self.id, &p.phase, &json, p.at_ms).await {
                tracing::warn!(service = %self.id, error = %e, "cannot record the update's step");
            }
        }
        let mut ev = Event::new(kind, &self.id, 0);
        ev.revision = p.to_revision;
        ev.message = match kind {
            EventKind::Updating => format!(
                "{}: {} (old {} running, new {}/{} available)",
                p.phase, p.message, p.old_running, p.new_ready, p.total
            ),
            _ => p.message.clone(),
        };
        ev.update = Some(Box::new(p.clone()));
        sup.bus.emit(ev);
        self.progress.send_replace(p);
    }

    /// Launches `n` new instances beside the old set and waits until all
    /// of them are available, recording `phase` and `message` meanwhile
    /// (blue-green's whole new set, canary's canaries).
    pub(super) async fn launch_beside(
        &self,
        sup: &Arc<Supervisor>,
        n: u32,
        phase: Phase,
        message: &str,
    ) -> Result<(), Abort> {
        for _ in 0..n {
            self.launch_next(sup);
        }
        loop {
            self.check()?;
            self.assess()?;
            if self.available_count() >= n {
                return Ok(());
            }
            self.record(sup, phase, message.to_owned()).await;
            self.wait().await;
        }
    }

    /// Waits for a change: an instance of either revision, the caller's
    /// decision, or a tick.
    pub(super) async fn wait(&self) {
        let a = self.from.changed.notified();
        let b = self.to.changed.notified();
        let mut c = self.control.subscribe();
        tokio::select! {
            _ = a => {}
            _ = b => {}
            _ = c.changed() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Whether the update asked `svc`'s `replica` to stop.
fn stop_requested(svc: &Service, replica: u32) -> bool {
    svc.replica_stop.get(replica as usize).is_some_and(|tx| tx.borrow().is_some())
}

/// The stop an update gives an instance: SIGTERM and its service's grace.
pub(super) fn graceful(svc: &Service) -> StopMode {
    StopMode { force: false, timeout: Duration::from_millis(u64::from(svc.spec.shutdown_timeout_ms)) }
}

/// Starts an instance again that the update stopped (a rollback).
pub(super) fn relaunch(sup: &Arc<Supervisor>, svc: &Arc<Service>, replica: u32) {
    if let Some(tx) = svc.replica_stop.get(replica as usize) {
        tx.send_replace(None);
    }
    svc.update(replica, |i, _| {
        i.ever_running = false;
        i.launch_error = None;
        i.stop_escalated = false;
    });
    crate::supervisor::instance::start(sup.clone(), svc.clone(), replica, false);
}

/// What the update judges of each new instance.
fn snaps(svc: &Service) -> Vec<Snap> {
    let rt = svc.runtime();
    rt.instances
        .iter()
        .map(|i| Snap {
            replica: i.replica,
            launched: i.launched,
            state: i.state,
            ever_running: i.ever_running,
            running_since: i.started_at.filter(|_| i.pid != 0),
            restart_count: i.restart_count,
            launch_error: i.launch_error.clone(),
            last_exit: i.last_exit.as_ref().map(|e| e.reason.clone()),
            failure: rt.failure.clone(),
        })
        .collect()
}
