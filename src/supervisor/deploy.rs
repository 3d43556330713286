//! Deploy: validate → store the artifact → write desired state → start.

use super::events::{now_ms, Event, EventKind};
use super::instance;
use super::logs::LogSink;
use super::query::InstanceView;
use super::service::{InstanceState, Record, Service};
use super::{Error, Supervisor};
use crate::audit::{Kind, Record as AuditRecord};
use crate::sandbox::cgroup::InstanceCgroup;
use crate::spec::{ArtifactSpec, ServiceSpec};
use crate::store::{Desired, ServiceRow};
use std::sync::Arc;
use std::time::Instant;

pub struct DeployOutcome {
    pub id: String,
    pub revision: u64,
    pub artifact_sha256: String,
    pub instances: Vec<InstanceView>,
    pub startup_us: u64,
}

/// The spec as persisted: artifact bytes live in the artifact store (and
/// its digest in the revision's `ArtifactRef`).
pub(crate) fn strip_bytes(spec: &mut ServiceSpec) {
    match &mut spec.artifact {
        ArtifactSpec::Executable { content, sha256 } | ArtifactSpec::Script { source: content, sha256, .. } => {
            *content = Vec::new();
            *sha256 = None;
        }
        ArtifactSpec::HostPath { .. } => {}
    }
}

/// [`strip_bytes`] of a copy (an update persists the spec it rolls out).
pub fn without_bytes(spec: &ServiceSpec) -> ServiceSpec {
    let mut s = spec.clone();
    strip_bytes(&mut s);
    s
}

impl Supervisor {
    /// `granted_by` is the id of the token that deployed it (recorded with its grants).
    pub async fn deploy(
        self: &Arc<Self>,
        spec: ServiceSpec,
        wait: bool,
        granted_by: &str,
    ) -> Result<DeployOutcome, Error> {
        let received = Instant::now();
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        // Before anything is made for the service (an id in use is checked
        // again under the lock): a reference to bytes not stored here (the
        // client then uploads them) or a digest that does not match small
        // bytes fails in microseconds, with nothing to undo.
        if self.get(spec.id.as_str()).is_ok() {
            return Err(Error::AlreadyExists(spec.id.to_string()));
        }
        let known = self.artifacts.stored(&spec.artifact)?;
        let by_digest = spec.artifact.upload().is_some_and(|(bytes, digest)| bytes.is_empty() && digest.is_some());
        if let (true, Some(a)) = (by_digest, &known) {
            tracing::debug!(service = %spec.id, sha256 = %a.sha256, "artifact named by digest: no upload");
        }
        let (svc, prepared) = {
            let _op = self.ops.lock().await;
            let id = spec.id.to_string();
            if self.get(&id).is_ok() {
                return Err(Error::AlreadyExists(id));
            }
            let uid = self.allocate_uid()?;
            // The host side of the first launch (cgroups, data dir: ~0.2 ms
            // of mkdirs) is made by this task while the store's writer
            // thread commits the desired state: `join!` polls `store_new`
            // first, so the commit is on its way before the mkdirs start.
            // None needs the other, and nothing runs until both are done.
            // Inline rather than on the blocking pool: the two thread
            // hand-offs cost more (~0.12 ms) than the mkdirs hold this
            // worker, and a restart makes its cgroups inline too.
            let cgroups: Vec<InstanceCgroup> =
                (0..spec.replicas).map(|r| self.layout.instance(&super::service::instance_name(&id, 1, r))).collect();
            let limits = instance::cgroup_limits(&spec.limits);
            let data_dir = super::policy::data_dir(&self.config.state_dir, &id);
            let prepare = instance::prepare(&cgroups, &limits, &data_dir, uid);
            let (stored, prepared) = tokio::join!(self.store_new(spec, known, uid, granted_by), prepare);
            let (svc, live) = match stored {
                Ok(x) => x,
                Err(e) => {
                    // Nothing of a refused deploy stays: its cgroups, and
                    // its data dir unless something is in it.
                    for cg in &cgroups {
                        instance::cleanup(cg).await;
                    }
                    let _ = std::fs::remove_dir(super::policy::data_dir(&self.config.state_dir, &id));
                    return Err(e);
                }
            };
            *svc.caps.grants.lock().unwrap_or_else(|p| p.into_inner()) = live;
            self.insert(svc.clone());
            (svc, prepared)
        };
        if let Err(e) = &prepared {
            // The instances report it as their launch failure (and retry).
            tracing::warn!(service = %svc.id(), error = %e, "preparing the first launch failed");
        }
        let mut ev = Event::new(EventKind::Deployed, svc.id(), 0);
        ev.message = format!(
            "deployed revision 1 ({} {}, uid {}, {} replica(s))",
            svc.artifact.kind,
            &svc.artifact.sha256[..12],
            svc.uid,
            svc.spec.replicas
        );
        self.bus.emit(ev);
        self.audit_deploy(&svc, granted_by);
        self.metrics.deployments.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.start_instances(&svc, prepared.is_ok());
        if wait {
            self.wait_running(&svc).await?;
        }
        Ok(DeployOutcome {
            id: svc.id().to_owned(),
            revision: svc.revision,
            artifact_sha256: svc.artifact.sha256.clone(),
            instances: self.started_views(&svc),
            startup_us: received.elapsed().as_micros() as u64,
        })
    }

    /// The new service's grants opened, its artifact stored and its
    /// desired state committed (in that order: a port in use or a missing
    /// directory fails the deploy before any state).
    async fn store_new(
        self: &Arc<Self>,
        mut spec: ServiceSpec,
        known: Option<super::artifacts::ArtifactRef>,
        uid: u32,
        granted_by: &str,
    ) -> Result<(Arc<Service>, Vec<super::grants::Live>), Error> {
        let id = spec.id.to_string();
        let live = super::grants::open_all(self, &spec.grants, granted_by, |i| format!("spec.grants[{i}]"))?;
        let grant_rows = super::grants::rows(&id, &live);
        // A reference or a small upload already stored was found in
        // microseconds (`known`). Else hashing and fsyncing up to the upload
        // limit is blocking work: let the runtime move its other tasks off
        // this thread meanwhile (block_in_place itself costs ~0.25 ms: a
        // thread takes over this worker's queue, hence not for the common case).
        // `known` was found before the operation lock was taken: artifact
        // collection (under the lock) may have removed it since, so it is
        // used only if its file is still there; else `put` stores the bytes
        // again, or answers a reference with NOT_FOUND.
        let artifact = match known {
            Some(a) if std::path::Path::new(a.script.as_deref().unwrap_or(&a.program)).is_file() => a,
            _ => tokio::task::block_in_place(|| self.artifacts.put(&spec.artifact))?,
        };
        let created_at_ms = now_ms();
        strip_bytes(&mut spec);
        let stored = spec;
        let row = ServiceRow {
            id: id.clone(),
            desired: Desired::Running,
            revision: 1,
            uid,
            created_at_ms,
            spec_json: crate::spec::to_json(&stored),
            artifact_json: serde_json::to_string(&artifact).map_err(|e| Error::Internal(e.to_string()))?,
            failure: String::new(),
        };
        let svc = self.build(stored, artifact, 1, uid, created_at_ms, Desired::Running);
        // Desired state first: a crash from here on still brings it up.
        self.store.insert_service(&row, &grant_rows).await.map_err(|e| match e {
            crate::store::StoreError::Exists(id) => Error::AlreadyExists(id),
            other => other.into(),
        })?;
        Ok((svc, live))
    }

    /// The deploy's audit records: what runs, under which profile (and
    /// its hash), with which limits, by whom; and one per descriptor granted.
    fn audit_deploy(&self, svc: &Service, by: &str) {
        let spec = &svc.spec;
        let grants: Vec<String> = spec.grants.iter().map(|g| format!("{}={}", g.name, g.kind)).collect();
        self.audit(
            AuditRecord::new(Kind::Deploy, svc.id())
                .by(by)
                .message(format!(
                    "deployed revision {} ({} sha256:{}) under profile {}",
                    svc.revision,
                    svc.artifact.kind,
                    &svc.artifact.sha256[..svc.artifact.sha256.len().min(12)],
                    spec.profile
                ))
                .with("revision", svc.revision)
                .with("artifact_kind", svc.artifact.kind.clone())
                .with("artifact_sha256", svc.artifact.sha256.clone())
                .with("profile", spec.profile.clone())
                .with("profile_sha256", self.profile_sha256(&spec.profile))
                .with("limits", serde_json::to_value(spec.limits).unwrap_or_default())
                .with("tier", spec.tier.as_str())
                .with("replicas", spec.replicas)
                .with("uid", svc.uid)
                .with("grants", grants),
        );
        for g in &spec.grants {
            self.audit(
                AuditRecord::new(Kind::Grant, svc.id())
                    .by(by)
                    .message(format!("granted {} as '{}' at deploy", g.kind, g.name))
                    .with("grant", g.name.clone())
                    .with("spec", g.kind.to_string()),
            );
        }
    }

    pub(super) fn build(
        &self,
        spec: ServiceSpec,
        artifact: super::artifacts::ArtifactRef,
        revision: u64,
        uid: u32,
        created_at_ms: i64,
        desired: Desired,
    ) -> Arc<Service> {
        let id = spec.id.to_string();
        let logs = Arc::new(LogSink::new(&id, self.config.state_dir.join("logs").join(&id), self.config.log));
        let cgroups = (0..spec.replicas)
            .map(|r| self.layout.instance(&super::service::instance_name(&id, revision, r)))
            .collect();
        Arc::new(Service::new(spec, artifact, Record { revision, uid, created_at_ms, desired }, logs, cgroups))
    }

    pub(super) fn start_instances(self: &Arc<Self>, svc: &Arc<Service>, prepared: bool) {
        for r in 0..svc.spec.replicas {
            instance::start(self.clone(), svc.clone(), r, prepared);
        }
    }

    /// Lowest uid of the range not held by a service.
    fn allocate_uid(&self) -> Result<u32, Error> {
        let registry = self.registry();
        // The first gap in the used uids (in order) from the range's start.
        let mut free = u64::from(self.config.uid_first);
        for &u in registry.uids.range(self.config.uid_first..=self.config.uid_last) {
            if u64::from(u) != free {
                break;
            }
            free += 1;
        }
        u32::try_from(free).ok().filter(|u| *u <= self.config.uid_last).ok_or_else(|| {
            Error::Exhausted(format!(
                "no free service uid: all {} uids of the range {}-{} are in use (remove services or widen --uid-range)",
                self.config.uid_last - self.config.uid_first + 1,
                self.config.uid_first,
                self.config.uid_last
            ))
        })
    }

    /// Waits until every instance has run (or one failed to launch).
    async fn wait_running(&self, svc: &Service) -> Result<(), Error> {
        loop {
            let notified = svc.changed.notified();
            {
                let rt = svc.runtime();
                if let Some(err) = rt.instances.iter().find_map(|i| i.launch_error.clone()) {
                    return Err(Error::Precondition(format!(
                        "service '{}' was created but did not start: {err} (see `solo status {}`)",
                        svc.id(),
                        svc.id()
                    )));
                }
                if rt.instances.iter().all(|i| i.ever_running) {
                    return Ok(());
                }
                if rt.instances.iter().any(|i| i.state == InstanceState::Failed) {
                    return Err(Error::Precondition(format!(
                        "service '{}' failed: {}",
                        svc.id(),
                        rt.failure.clone().unwrap_or_default()
                    )));
                }
            }
            if *svc.alive.borrow() == 0 {
                return Err(Error::Precondition(format!("service '{}' stopped before it ran", svc.id())));
            }
            notified.await;
        }
    }
}
