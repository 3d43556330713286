//! How an update ends. Commit: the store's commit point, the registry's
//! switch to the new revision, the old set's last stop, pruning. Roll
//! back: thaw and restart the old instances the update stopped (waiting
//! until they run), stop every new instance, record why. Either way the
//! last progress (`done`) goes out only when nothing of the other revision
//! runs any more.

use super::drive;
use super::{Phase, Run};
use crate::supervisor::events::{now_ms, EventKind};
use crate::supervisor::service::{InstanceState, StopMode};
use crate::supervisor::Supervisor;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) async fn commit(sup: &Arc<Supervisor>, run: &Arc<Run>) {
    run.record(sup, Phase::Committing, format!("revision {} becomes the service's", run.to.revision)).await;
    let rows = {
        let live = run.to.caps.grants.lock().unwrap_or_else(|p| p.into_inner());
        crate::supervisor::grants::rows(&run.id, &live)
    };
    {
        let _op = sup.ops.lock().await;
        if let Err(e) = sup.store.commit_update(&run.id, run.to.revision, &rows, now_ms()).await {
            drop(_op);
            tracing::error!(service = %run.id, error = %e, "cannot commit the update");
            return roll_back(sup, run, format!("the commit could not be stored: {e}"), true).await;
        }
        sup.insert(run.to.clone());
    }
    // What is left of the old set (blue-green: the frozen set) stops now.
    for r in run.old_live() {
        run.stop_old(r);
    }
    run.from.stopped().await;
    sup.prune_and_collect(&run.id).await;
    let mut p = run.snapshot(
        Phase::Done,
        format!(
            "revision {} runs: {} instance(s) in {} ms",
            run.to.revision,
            run.to.spec.replicas,
            run.started.elapsed().as_millis()
        ),
    );
    p.done = true;
    sup.audit(
        crate::audit::Record::new(crate::audit::Kind::Update, &run.id)
            .message(format!("update to revision {} committed", run.to.revision))
            .with("action", "commit")
            .with("from_revision", run.from.revision)
            .with("to_revision", run.to.revision),
    );
    sup.updates.end(&run.id, p.clone());
    run.publish(sup, p, EventKind::Updated).await;
}

/// Rolls back (`restore`: the old instances the update stopped start
/// again; a cancel for kill or shutdown restores nothing).
pub(super) async fn roll_back(sup: &Arc<Supervisor>, run: &Arc<Run>, reason: String, restore: bool) {
    tracing::warn!(service = %run.id, revision = run.to.revision, %reason, "update rolling back");
    run.record(sup, Phase::RollingBack, format!("rolling back: {reason}")).await;
    thaw_old(run).await;
    if restore {
        let stopped = run.old_stopped();
        for r in &stopped {
            run.from.replica_ended(*r).await;
            drive::relaunch(sup, &run.from, *r);
        }
        wait_running(run, &stopped).await;
    }
    run.to.stop.send_replace(Some(drive::graceful(&run.to)));
    run.to.stopped().await;
    if let Err(e) = sup.store.end_update_rolled_back(&run.id, &reason, now_ms()).await {
        tracing::error!(service = %run.id, error = %e, "cannot record the rollback");
    }
    sup.prune_and_collect(&run.id).await;
    let mut p = run.snapshot(Phase::RolledBack, format!("rolled back to revision {}: {reason}", run.from.revision));
    p.done = true;
    p.rolled_back = true;
    p.reason = reason;
    sup.audit(
        crate::audit::Record::new(crate::audit::Kind::Update, &run.id)
            .message(format!(
                "update to revision {} rolled back to revision {}: {}",
                run.to.revision, run.from.revision, p.reason
            ))
            .with("action", "rollback")
            .with("from_revision", run.from.revision)
            .with("to_revision", run.to.revision)
            .with("reason", p.reason.clone()),
    );
    sup.updates.end(&run.id, p.clone());
    run.publish(sup, p, EventKind::RolledBack).await;
}

/// Thaws the old instances frozen at a blue-green switch.
async fn thaw_old(run: &Run) {
    let frozen: Vec<(u32, crate::sandbox::cgroup::InstanceCgroup)> = {
        let rt = run.from.runtime();
        rt.instances.iter().filter(|i| i.frozen).map(|i| (i.replica, i.cgroup.clone())).collect()
    };
    for (r, cg) in frozen {
        let thawed = tokio::task::spawn_blocking(move || cg.set_frozen(false)).await;
        if !matches!(thawed, Ok(Ok(()))) {
            tracing::error!(service = %run.id, replica = r, "cannot thaw an old instance; it is killed and restarted");
            run.from.stop_replica(r, StopMode { force: true, timeout: Duration::ZERO });
        }
        run.from.update(r, |i, _| i.frozen = false);
    }
}

/// Waits until the restarted old instances run again (or give up), at most
/// their startup timeout and two seconds: the new ones stop only then.
async fn wait_running(run: &Run, replicas: &[u32]) {
    let limit = Duration::from_millis(u64::from(run.from.spec.readiness.startup_timeout_ms)) + Duration::from_secs(2);
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let notified = run.from.changed.notified();
        let pending = {
            let rt = run.from.runtime();
            replicas.iter().any(|r| {
                let i = &rt.instances[*r as usize];
                !i.ever_running && !matches!(i.state, InstanceState::Failed | InstanceState::Quarantined)
            })
        };
        if !pending {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}
