//! Start-up: clear what a previous run left in our cgroups, then start
//! every service whose desired state is running.
//!
//! Re-adopting live instances (instead of restarting them) is a later
//! step; today a restarted daemon stops leftovers and starts fresh ones, so
//! a service never runs twice. See docs/operations.md.

use super::artifacts::ArtifactRef;
use super::events::{Event, EventKind};
use super::{instance, Error, Supervisor};
use crate::spec::ServiceSpec;
use crate::store::Desired;
use std::sync::Arc;

pub async fn run(sup: &Arc<Supervisor>) -> Result<(), Error> {
    let leftovers = sup.layout.existing();
    if !leftovers.is_empty() {
        tracing::warn!(
            count = leftovers.len(),
            "stopping instances left by a previous run (re-adoption is not implemented yet)"
        );
        for name in &leftovers {
            instance::cleanup(&sup.layout.instance(name)).await;
        }
    }
    let mut grants: std::collections::HashMap<String, Vec<crate::store::GrantRow>> = Default::default();
    for g in sup.store.grants()? {
        grants.entry(g.service_id.clone()).or_default().push(g);
    }
    for row in sup.store.services()? {
        let spec: ServiceSpec = match crate::spec::from_json(&row.spec_json) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(service = %row.id, error = %e, "cannot read stored spec; service skipped");
                continue;
            }
        };
        let artifact: ArtifactRef = match serde_json::from_str(&row.artifact_json) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(service = %row.id, error = %e, "cannot read stored artifact; service skipped");
                continue;
            }
        };
        let svc = sup.build(spec, artifact, row.revision, row.uid, row.created_at_ms, row.desired);
        reopen_grants(sup, &svc, grants.remove(&row.id).unwrap_or_default());
        sup.insert(svc.clone());
        if !row.failure.is_empty() {
            svc.mark_failed(&row.failure);
            let mut ev = Event::new(EventKind::Failed, &row.id, 0);
            ev.message = format!("restored as failed, not restarted: {}", row.failure);
            sup.bus.emit(ev);
        } else if row.desired == Desired::Running {
            let mut ev = Event::new(EventKind::Deployed, &row.id, 0);
            ev.message = format!("restored revision {} from the state database", row.revision);
            sup.bus.emit(ev);
            sup.start_instances(&svc, false);
        }
    }
    Ok(())
}

/// Opens a restored service's grants again (its old instances, which held
/// the previous sockets, were stopped above). A grant that cannot be
/// opened is reported and left out; the service still starts.
fn reopen_grants(sup: &Supervisor, svc: &super::service::Service, rows: Vec<crate::store::GrantRow>) {
    let mut live = Vec::with_capacity(rows.len());
    for r in rows {
        let opened = crate::spec::grant::parse("grant", &r.spec, &r.name)
            .map_err(|e| e.to_string())
            .and_then(|g| super::grants::open(sup, &g, true).map(|fd| (g, fd)));
        match opened {
            Ok((spec, fd)) => live.push(super::grants::Live { spec, fd: fd.map(Arc::new), token_id: r.token_id }),
            Err(e) => {
                tracing::error!(service = %svc.id(), grant = %r.name, error = %e, "cannot reopen a grant; left out");
                let mut ev = Event::new(EventKind::LaunchFailed, svc.id(), 0);
                ev.message = format!("grant {} ({}) could not be reopened and is left out: {e}", r.name, r.spec);
                sup.bus.emit(ev);
            }
        }
    }
    *svc.caps.grants.lock().unwrap_or_else(|p| p.into_inner()) = live;
}
