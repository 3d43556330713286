//! `Audit`, `AuditVerify` and `AuditExplain`: permission `audit`, and the
//! token's scope: a caller sees the records of the services its resource
//! covers (a `system`-tier one only with `system`), and daemon-wide
//! records (daemon start/stop, token revocations) only with resource `*`.

use super::convert;
use crate::audit::{to_hex, Kind, Stored};
use crate::auth::{Perm, Token};
use crate::proto::v1 as pb;
use crate::store::AuditQuery;
use crate::supervisor::{Error, Supervisor};
use std::sync::Arc;
use tonic::Status;

/// Records one `Audit` call returns at most.
pub const MAX_LIMIT: u32 = 10_000;
const DEFAULT_LIMIT: u32 = 100;

pub fn record(s: &Stored) -> pb::AuditRecord {
    pb::AuditRecord {
        seq: s.seq,
        at_unix_ms: s.at_ms,
        kind: s.kind.clone(),
        service: s.service.clone(),
        actor: s.actor.clone(),
        message: s.message.clone(),
        detail_json: s.detail.clone(),
        prev_sha256: to_hex(&s.prev),
        sha256: to_hex(&s.hash),
    }
}

pub async fn query(sup: &Arc<Supervisor>, caller: &Token, r: pb::AuditRequest) -> Result<pb::AuditResponse, Status> {
    if !r.service.is_empty() {
        convert::check_id("service", &r.service)?;
        sup.authorize("Audit", caller, Perm::Audit, &r.service, None)?;
    } else {
        sup.require_perm("Audit", caller, Perm::Audit)?;
    }
    let mut kinds = Vec::with_capacity(r.kinds.len());
    for k in &r.kinds {
        kinds.push(Kind::parse("kinds", k).map_err(|e| Status::invalid_argument(e.to_string()))?.as_str().to_owned());
    }
    if r.since_unix_ms < 0 {
        return Err(Status::invalid_argument(format!("since_unix_ms: {} is before 1970", r.since_unix_ms)));
    }
    let limit = match r.limit {
        0 => DEFAULT_LIMIT,
        n if n > MAX_LIMIT => {
            return Err(Status::invalid_argument(format!("limit: {n} is more than the maximum of {MAX_LIMIT}")))
        }
        n => n,
    };
    let q = AuditQuery {
        service: (!r.service.is_empty()).then_some(r.service),
        since_ms: (r.since_unix_ms > 0).then_some(r.since_unix_ms),
        kinds,
        after_seq: r.after_seq,
        limit,
    };
    let all = Supervisor::covers_all(caller);
    // Read your writes: what was recorded before this call is committed.
    sup.store.flush().await;
    let sup2 = sup.clone();
    let caller = caller.clone();
    let records = tokio::task::spawn_blocking(move || {
        sup2.store.audit_query(&q, |svc| if svc.is_empty() { all } else { all || sup2.visible(&caller, svc, None) })
    })
    .await
    .map_err(|e| Status::internal(format!("audit query: {e}")))?
    .map_err(Error::from)?;
    Ok(pb::AuditResponse { records: records.iter().map(record).collect(), head_seq: sup.store.audit_head_seq() })
}

pub async fn verify(sup: &Arc<Supervisor>, caller: &Token) -> Result<pb::AuditVerifyResponse, Status> {
    sup.authorize_global("AuditVerify", caller, Perm::Audit)?;
    // Everything recorded so far is in the chain before it is walked.
    sup.store.flush().await;
    let sup2 = sup.clone();
    let r = tokio::task::spawn_blocking(move || sup2.store.audit_verify(sup2.audit_log.signer()))
        .await
        .map_err(|e| Status::internal(format!("audit verify: {e}")))?
        .map_err(Error::from)?;
    let (last_signed_seq, last_signed_unix_ms) = r.last_signed.unwrap_or((0, 0));
    Ok(pb::AuditVerifyResponse {
        ok: r.ok(),
        checked: r.checked,
        first_seq: r.first_seq,
        last_seq: r.last_seq,
        head_sha256: r.head_hex(),
        checkpoint_seq: r.checkpoint_seq,
        heads_checked: r.heads_checked,
        last_signed_seq,
        last_signed_unix_ms,
        broken_seq: r.broken.as_ref().map_or(0, |b| b.seq()),
        broken_kind: r.broken.as_ref().map(|b| b.kind().to_owned()).unwrap_or_default(),
        broken_reason: r.broken.as_ref().map(|b| b.to_string()).unwrap_or_default(),
    })
}

pub async fn explain(
    sup: &Arc<Supervisor>,
    caller: &Token,
    r: pb::AuditExplainRequest,
) -> Result<pb::AuditExplainResponse, Status> {
    convert::check_id("service", &r.service)?;
    sup.authorize("AuditExplain", caller, Perm::Audit, &r.service, None)?;
    let sup2 = sup.clone();
    let e = tokio::task::spawn_blocking(move || sup2.explain(&r.service))
        .await
        .map_err(|e| Status::internal(format!("audit explain: {e}")))??;
    let v = &e.view;
    let service = convert::service(v);
    Ok(pb::AuditExplainResponse {
        service: v.spec.id.to_string(),
        state: v.state.as_str().to_owned(),
        revision: v.revision,
        profile: v.spec.profile.clone(),
        profile_sha256: v.profile_sha256.clone(),
        artifact_sha256: v.artifact_sha256.clone(),
        profile_hashes_seen: e.profile_hashes_seen,
        grants: e
            .grants
            .iter()
            .map(|g| pb::ExplainGrant {
                name: g.name.clone(),
                spec: g.spec.clone(),
                granted_by: g.token_id.clone(),
                at_unix_ms: g.created_at_ms,
            })
            .collect(),
        tokens: e
            .tokens
            .iter()
            .map(|t| pb::ExplainToken {
                id: t.id.clone(),
                subject: t.subject.clone(),
                resource: t.resource.clone(),
                permissions: t.perms.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect(),
                expires_at: t.expires_at,
                issued_by: t.issued_by.clone(),
            })
            .collect(),
        denials: e
            .denials
            .iter()
            .map(|d| pb::ExplainDenial {
                call: d.call.clone(),
                action: d.action.clone(),
                count: d.count,
                first_unix_ms: d.first_ms,
                last_unix_ms: d.last_ms,
            })
            .collect(),
        recent: e.recent.iter().map(record).collect(),
        limits: service.limits,
    })
}
