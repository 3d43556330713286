//! Starting an update: validate the target and the strategy, authorize
//! (profile widening and new host grants need more than `update`), open
//! the new revision's grants (sharing every socket the service holds),
//! persist the update, then hand it to its driver. A refused update
//! changes nothing: no revision, no row, no socket, no instance.

use super::{drive, Control, Phase, Progress, Request, Run, Target};
use crate::auth::{self, Perm, Token};
use crate::spec::{FieldError, ServiceSpec};
use crate::store::{Desired, StoreError, UpdateOutcome, UpdateRow};
use crate::supervisor::artifacts::ArtifactRef;
use crate::supervisor::events::{now_ms, Event, EventKind};
use crate::supervisor::grants::{self, Live};
use crate::supervisor::service::{instance_name, Record, Service};
use crate::supervisor::{Error, Supervisor};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// What an update rolls out.
struct Resolved {
    spec: ServiceSpec,
    artifact: ArtifactRef,
    /// A kept revision (`solo rollback`); `None`: a new one.
    revision: Option<u64>,
}

impl Supervisor {
    /// Starts an update of `req.id` for `caller`; returns it under way
    /// (its progress stream ends when it has committed or rolled back).
    pub async fn update(self: &Arc<Self>, caller: &Token, req: Request) -> Result<Arc<Run>, Error> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let _op = self.ops.lock().await;
        let current = self.get(&req.id)?;
        if let Some(run) = self.updates.active(&req.id) {
            let p = run.progress();
            return Err(Error::Precondition(format!(
                "id: service '{}' is already being updated (revision {} to {}, phase {}); wait for it to end, or roll it back with `solo update {} --abort`",
                req.id, p.from_revision, p.to_revision, p.phase, req.id
            )));
        }
        if current.runtime().desired == Desired::Stopped {
            return Err(Error::Precondition(format!(
                "id: service '{}' is stopped; an update replaces running instances (kill --remove and deploy it to run it again)",
                req.id
            )));
        }
        let target = self.update_target(&current, req.target)?;
        let policy = crate::spec::update::validate(&req.strategy, target.spec.replicas)?;
        self.authorize_update(caller, &current, &target.spec)?;
        let live = self.next_grants(caller, &current, &target.spec)?;
        let stored = crate::supervisor::deploy::without_bytes(&target.spec);
        let started_at_ms = now_ms();
        let mut first = Progress {
            id: req.id.clone(),
            from_revision: current.revision,
            to_revision: target.revision.unwrap_or(0),
            strategy: policy.strategy.name().into(),
            phase: Phase::Starting.as_str().into(),
            total: stored.replicas,
            old_running: current.runtime().instances.iter().filter(|i| i.launched && !i.ended).count() as u32,
            message: "update stored; starting".into(),
            at_ms: started_at_ms,
            ..Default::default()
        };
        let row = UpdateRow {
            service_id: req.id.clone(),
            from_revision: current.revision,
            to_revision: first.to_revision,
            strategy: json(&policy)?,
            phase: first.phase.clone(),
            progress: json(&first)?,
            outcome: UpdateOutcome::Running,
            reason: String::new(),
            started_at_ms,
            updated_at_ms: started_at_ms,
        };
        let new = match target.revision {
            Some(_) => None,
            None => Some((crate::spec::to_json(&stored), json(&target.artifact)?)),
        };
        let revision = self.store.begin_update(&row, new).await.map_err(|e| match e {
            StoreError::UpdateInProgress { service, to } => Error::Precondition(format!(
                "id: service '{service}' is already being updated (to revision {to}); wait for it to end, or roll it back with `solo update {service} --abort`"
            )),
            StoreError::NoService(id) => Error::NotFound(id),
            other => other.into(),
        })?;
        first.to_revision = revision;
        let to = self.build_next(&current, stored, target.artifact, revision, live);
        let run = Arc::new(Run {
            id: req.id.clone(),
            from: current,
            to,
            policy,
            progress: watch::channel(first.clone()).0,
            control: watch::channel(Control::Proceed).0,
            started: Instant::now(),
            available: Mutex::new(Default::default()),
        });
        self.updates.start(run.clone());
        let mut ev = Event::new(EventKind::Updating, &req.id, 0);
        ev.revision = revision;
        ev.message = format!(
            "update from revision {} to revision {revision} started by token {} ({}, min_ready {} ms)",
            first.from_revision,
            caller.id(),
            describe(&policy.strategy),
            policy.min_ready_ms
        );
        ev.update = Some(Box::new(first));
        self.bus.emit(ev);
        self.audit_update_start(&run, caller.id());
        tokio::spawn(drive::run(self.clone(), run.clone()));
        Ok(run)
    }

    /// The update's audit record (what is rolled out, under which profile
    /// and its hash, by whom), and one per descriptor it newly grants.
    fn audit_update_start(&self, run: &Run, by: &str) {
        let (from, to) = (&run.from, &run.to);
        let grants: Vec<String> = to.spec.grants.iter().map(|g| format!("{}={}", g.name, g.kind)).collect();
        self.audit(
            crate::audit::Record::new(crate::audit::Kind::Update, &run.id)
                .by(by)
                .message(format!(
                    "update from revision {} to revision {} ({} sha256:{}) under profile {}, {}",
                    from.revision,
                    to.revision,
                    to.artifact.kind,
                    &to.artifact.sha256[..to.artifact.sha256.len().min(12)],
                    to.spec.profile,
                    describe(&run.policy.strategy)
                ))
                .with("action", "start")
                .with("from_revision", from.revision)
                .with("to_revision", to.revision)
                .with("strategy", run.policy.strategy.name())
                .with("artifact_kind", to.artifact.kind.clone())
                .with("artifact_sha256", to.artifact.sha256.clone())
                .with("profile", to.spec.profile.clone())
                .with("profile_sha256", self.profile_sha256(&to.spec.profile))
                .with("limits", serde_json::to_value(to.spec.limits).unwrap_or_default())
                .with("replicas", to.spec.replicas)
                .with("grants", grants),
        );
        for g in
            to.spec.grants.iter().filter(|g| !from.spec.grants.iter().any(|o| o.name == g.name && o.kind == g.kind))
        {
            self.audit(
                crate::audit::Record::new(crate::audit::Kind::Grant, &run.id)
                    .by(by)
                    .message(format!("granted {} as '{}' by an update", g.kind, g.name))
                    .with("grant", g.name.clone())
                    .with("spec", g.kind.to_string()),
            );
        }
    }

    /// The spec and artifact an update rolls out.
    fn update_target(&self, current: &Service, target: Target) -> Result<Resolved, Error> {
        match target {
            Target::Spec(raw) => {
                let given = raw.artifact.is_some();
                let spec = self.validator.service_keeping(*raw, Some(current.spec.artifact.clone()))?;
                let artifact = if !given {
                    current.artifact.clone()
                } else {
                    // A reference (digest, no bytes) resolves here or is
                    // NOT_FOUND, and the client sends the bytes.
                    match self.artifacts.stored(&spec.artifact)? {
                        Some(a) => a,
                        None => tokio::task::block_in_place(|| self.artifacts.put(&spec.artifact))?,
                    }
                };
                Ok(Resolved { spec, artifact, revision: None })
            }
            Target::Revision(to) => {
                let row = self.rollback_target(current, to)?;
                let spec: ServiceSpec = crate::spec::from_json(&row.spec_json).map_err(|e| {
                    Error::Internal(format!("revision {} of {}: cannot read its spec: {e}", row.revision, current.id()))
                })?;
                let artifact: ArtifactRef = serde_json::from_str(&row.artifact_json).map_err(|e| {
                    Error::Internal(format!(
                        "revision {} of {}: cannot read its artifact: {e}",
                        row.revision,
                        current.id()
                    ))
                })?;
                let file = artifact.script.clone().unwrap_or_else(|| artifact.program.clone());
                if !std::path::Path::new(&file).exists() {
                    return Err(Error::Precondition(format!(
                        "to_revision: the artifact of revision {} ({file}) is gone",
                        row.revision
                    )));
                }
                if !self.policies.contains_key(&spec.profile) {
                    return Err(Error::Precondition(format!(
                        "to_revision: revision {} runs under profile '{}', which this daemon no longer has",
                        row.revision, spec.profile
                    )));
                }
                Ok(Resolved { spec, artifact, revision: Some(row.revision) })
            }
        }
    }

    /// `update` on the service (and `system` for a system-tier one, before
    /// or after), and `system` for a profile that allows more than the one
    /// running: an update must not widen a running service's sandbox
    /// unless the operator says so.
    fn authorize_update(&self, caller: &Token, current: &Service, spec: &ServiceSpec) -> Result<(), Error> {
        let id = current.id();
        self.authorize("Update", caller, Perm::Update, id, Some(current.spec.tier))?;
        if spec.tier != current.spec.tier {
            self.authorize("Update", caller, Perm::Update, id, Some(spec.tier))?;
        }
        if spec.profile == current.spec.profile {
            return Ok(());
        }
        let (Some(new), Some(old)) = (self.policies.get(&spec.profile), self.policies.get(&current.spec.profile))
        else {
            return Ok(());
        };
        let wider = crate::profiles::diff::wider(&new.profile, &old.profile);
        let Some(first) = wider.first() else { return Ok(()) };
        auth::authorize(caller.claims(), Perm::System, &super::super::tokens::service_resource(id)).map_err(|why| {
            self.record_denied("Update", id, Some(caller.id()), &why);
            let more = match wider.len() {
                1 => String::new(),
                n => format!(" and {} more (solo profile diff {} {})", n - 1, old.profile.name, new.profile.name),
            };
            Error::Denied(format!(
                "spec.profile: '{}' allows what '{}' (revision {}) does not: {} ({}){more}; widening the profile of a running service needs the 'system' permission: {why}",
                new.profile.name, old.profile.name, current.revision, first.what, first.key
            ))
        })
    }

    /// The new revision's grants: a grant the service holds already (same
    /// spec) shares its descriptor — the same listening socket, so no
    /// connection is refused while instances are replaced; a new one is
    /// authorized (as at deploy) and opened.
    fn next_grants(&self, caller: &Token, current: &Service, spec: &ServiceSpec) -> Result<Vec<Live>, Error> {
        let held: Vec<(String, Option<Arc<std::os::fd::OwnedFd>>, String)> = current
            .caps
            .grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| (l.spec.kind.to_string(), l.fd.clone(), l.token_id.clone()))
            .collect();
        let find = |g: &crate::spec::grant::GrantSpec| held.iter().find(|(kind, ..)| *kind == g.kind.to_string());
        let fresh: Vec<_> = spec.grants.iter().filter(|g| find(g).is_none()).cloned().collect();
        grants::authorize_grants(self, "Update", caller, current.id(), &fresh, "spec.grants")?;
        let mut live = Vec::with_capacity(spec.grants.len());
        for (i, g) in spec.grants.iter().enumerate() {
            match find(g) {
                Some((_, fd, token)) => live.push(Live { spec: g.clone(), fd: fd.clone(), token_id: token.clone() }),
                None => {
                    let fd = grants::open(self, g, false)
                        .map_err(|e| Error::Invalid(FieldError::invalid(format!("spec.grants[{i}]"), e)))?;
                    live.push(Live { spec: g.clone(), fd: fd.map(Arc::new), token_id: caller.id().to_owned() });
                }
            }
        }
        Ok(live)
    }

    /// The new revision as a service of its own: same uid, logs and
    /// creation time; its instances are started by the driver.
    fn build_next(
        &self,
        current: &Service,
        spec: ServiceSpec,
        artifact: ArtifactRef,
        revision: u64,
        live: Vec<Live>,
    ) -> Arc<Service> {
        let id = spec.id.to_string();
        let cgroups = (0..spec.replicas).map(|r| self.layout.instance(&instance_name(&id, revision, r))).collect();
        let rec =
            Record { revision, uid: current.uid, created_at_ms: current.created_at_ms, desired: Desired::Running };
        let svc = Arc::new(Service::new(spec, artifact, rec, current.logs.clone(), cgroups));
        *svc.caps.grants.lock().unwrap_or_else(|p| p.into_inner()) = live;
        svc
    }
}

/// A strategy and its parameters, in words.
pub(super) fn describe(s: &crate::spec::update::Strategy) -> String {
    use crate::spec::update::Strategy;
    match *s {
        Strategy::Rolling { max_surge, max_unavailable } => {
            format!("rolling, max_surge {max_surge}, max_unavailable {max_unavailable}")
        }
        Strategy::Canary { percent, window_ms, manual } => {
            format!("canary, {percent}%, window {window_ms} ms{}", if manual { ", manual promotion" } else { "" })
        }
        Strategy::BlueGreen { grace_ms } => format!("blue-green, grace {grace_ms} ms"),
    }
}

/// Plain data as JSON for the store.
fn json<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))
}
