//! After a daemon restart: what became of an update that was under way.
//!
//! Called once at start-up, after every service has been restored from the
//! store. The rule is simple and documented (docs/updates.md): an update
//! that had reached its commit point is recorded as committed (the store
//! already names the new revision, which was restored); any other is
//! rolled back — the store still names the previous revision, which was
//! restored with all its replicas, and whatever still runs of the new
//! revision (cgroups named `ID.REPLICA.rNEW`) is stopped. It reconciles
//! from the persisted row and the instances actually present, so it holds
//! whether the restart found leftovers and stopped them, or re-adopted them.

use super::plan::{self, Resume};
use super::Progress;
use crate::store::UpdateOutcome;
use crate::supervisor::events::{now_ms, Event, EventKind};
use crate::supervisor::service::parse_instance_name;
use crate::supervisor::{instance, Error, Supervisor};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn resume(sup: &Arc<Supervisor>) -> Result<(), Error> {
    let current: HashMap<String, u64> = sup.store.services()?.into_iter().map(|s| (s.id, s.revision)).collect();
    for row in sup.store.updates()? {
        let Some(&revision) = current.get(&row.service_id) else { continue };
        let mut last: Progress = serde_json::from_str(&row.progress).unwrap_or_default();
        last.id = row.service_id.clone();
        last.from_revision = row.from_revision;
        last.to_revision = row.to_revision;
        let running = row.outcome == UpdateOutcome::Running;
        match plan::resume(running, &row.phase, row.from_revision, row.to_revision, revision) {
            Resume::Ended => {
                last.done = true;
                last.phase = row.phase.clone();
                last.rolled_back = row.outcome == UpdateOutcome::RolledBack;
                last.reason = row.reason.clone();
                last.message = if last.rolled_back {
                    format!("rolled back to revision {}: {}", row.from_revision, row.reason)
                } else {
                    format!("revision {} runs", row.to_revision)
                };
                sup.updates.end(&row.service_id, last);
            }
            Resume::Committed => {
                sup.store.mark_update_committed(&row.service_id, now_ms()).await?;
                last.done = true;
                last.phase = super::Phase::Done.as_str().into();
                last.message = format!("revision {} runs (committed before the daemon stopped)", row.to_revision);
                emit(sup, EventKind::Updated, &last);
                sup.updates.end(&row.service_id, last);
            }
            Resume::RollBack(reason) => {
                for name in sup.layout.existing() {
                    if parse_instance_name(&name)
                        .is_some_and(|(id, rev, _)| id == row.service_id && rev == row.to_revision)
                    {
                        instance::cleanup(&sup.layout.instance(&name)).await;
                    }
                }
                sup.store.end_update_rolled_back(&row.service_id, &reason, now_ms()).await?;
                last.done = true;
                last.rolled_back = true;
                last.phase = super::Phase::RolledBack.as_str().into();
                last.message = format!("rolled back to revision {}: {reason}", row.from_revision);
                last.reason = reason;
                last.at_ms = now_ms();
                emit(sup, EventKind::RolledBack, &last);
                sup.updates.end(&row.service_id, last);
            }
        }
    }
    Ok(())
}

/// The event and the audit record of an update's end found at start-up.
fn emit(sup: &Supervisor, kind: EventKind, p: &Progress) {
    let action = if kind == EventKind::RolledBack { "rollback" } else { "commit" };
    sup.audit(
        crate::audit::Record::new(crate::audit::Kind::Update, &p.id)
            .message(format!("update to revision {} (found at start-up): {}", p.to_revision, p.message))
            .with("action", action)
            .with("from_revision", p.from_revision)
            .with("to_revision", p.to_revision)
            .with("reason", p.reason.clone()),
    );
    let mut ev = Event::new(kind, &p.id, 0);
    ev.revision = p.to_revision;
    ev.message = p.message.clone();
    ev.update = Some(Box::new(p.clone()));
    sup.bus.emit(ev);
}
