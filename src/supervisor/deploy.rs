//! Deploy: validate → store the artifact → write desired state → start.

use super::events::{now_ms, Event, EventKind};
use super::instance;
use super::logs::LogSink;
use super::query::InstanceView;
use super::service::{InstanceState, Record, Service};
use super::{Error, Supervisor};
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

/// The spec as persisted: artifact bytes live in the artifact store.
pub fn without_bytes(spec: &ServiceSpec) -> ServiceSpec {
    let mut s = spec.clone();
    s.artifact = match &spec.artifact {
        ArtifactSpec::Executable { .. } => ArtifactSpec::Executable { content: Vec::new() },
        ArtifactSpec::Script { interpreter, .. } => {
            ArtifactSpec::Script { interpreter: interpreter.clone(), source: Vec::new() }
        }
        other => other.clone(),
    };
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
        let (svc, prepared) = {
            let _op = self.ops.lock().await;
            let id = spec.id.to_string();
            if self.get(&id).is_ok() {
                return Err(Error::AlreadyExists(id));
            }
            let uid = self.allocate_uid()?;
            // The host side of the first launch (cgroups, data dir: ~0.3 ms
            // of mkdirs) is made while the rest of the deploy (grants,
            // artifact, the desired state's commit) runs: none needs the
            // other, and nothing runs until both are done.
            let cgroups: Vec<InstanceCgroup> =
                (0..spec.replicas).map(|r| self.layout.instance(&format!("{id}.{r}"))).collect();
            let prepare = tokio::task::spawn_blocking({
                let cgroups = cgroups.clone();
                let limits = instance::cgroup_limits(&spec.limits);
                let data_dir = super::policy::data_dir(&self.config.state_dir, &id);
                move || instance::prepare_blocking(&cgroups, &limits, &data_dir, uid)
            });
            let stored = self.store_new(&spec, &id, uid, granted_by).await;
            let prepared = prepare.await.map_err(|e| e.to_string()).and_then(|r| r);
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
        spec: &ServiceSpec,
        id: &str,
        uid: u32,
        granted_by: &str,
    ) -> Result<(Arc<Service>, Vec<super::grants::Live>), Error> {
        let live = super::grants::open_all(self, &spec.grants, granted_by, |i| format!("spec.grants[{i}]"))?;
        let grant_rows = super::grants::rows(id, &live);
        // A small upload already stored is found in microseconds. Else
        // hashing and fsyncing up to the upload limit is blocking work: let
        // the runtime move its other tasks off this thread meanwhile
        // (block_in_place itself costs ~0.25 ms: a thread takes over this
        // worker's queue, hence not for the common case).
        let artifact = match self.artifacts.stored(&spec.artifact) {
            Some(a) => a,
            None => tokio::task::block_in_place(|| self.artifacts.put(&spec.artifact))?,
        };
        let created_at_ms = now_ms();
        let stored = without_bytes(spec);
        let row = ServiceRow {
            id: id.to_owned(),
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
        let cgroups = (0..spec.replicas).map(|r| self.layout.instance(&format!("{id}.{r}"))).collect();
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
