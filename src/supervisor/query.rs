//! Status and List: consistent snapshots of services and instances, with
//! live usage read from each instance's cgroup.

use super::restart::Exit;
use super::service::{derive_state, InstanceState, Service, ServiceState};
use super::{Error, Supervisor};
use crate::sandbox::cgroup::Usage;
use crate::spec::{ServiceSpec, Tier};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct InstanceView {
    pub replica: u32,
    pub state: InstanceState,
    pub pid: i32,
    pub cgroup: String,
    pub started_at_ms: i64,
    pub uptime_ms: u64,
    pub restart_count: u32,
    pub last_exit: Option<Exit>,
    pub usage: Usage,
    pub uid: u32,
    pub spawn_us: u64,
}

#[derive(Debug, Clone)]
pub struct ServiceView {
    pub spec: ServiceSpec,
    pub state: ServiceState,
    pub revision: u64,
    pub artifact_kind: String,
    pub artifact_sha256: String,
    pub instances: Vec<InstanceView>,
    pub created_at_ms: i64,
    pub failure: Option<String>,
    pub uid: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<ServiceState>,
    pub tier: Option<Tier>,
    pub id_prefix: String,
    pub labels: BTreeMap<String, String>,
}

impl Supervisor {
    pub fn instance_views(&self, svc: &Service) -> Vec<InstanceView> {
        let rt = svc.runtime();
        rt.instances
            .iter()
            .map(|i| InstanceView {
                replica: i.replica,
                state: i.state,
                pid: i.pid,
                cgroup: i.cgroup.describe(),
                started_at_ms: i.started_at_ms,
                uptime_ms: match (i.pid, i.started_at) {
                    (p, Some(t)) if p != 0 => t.elapsed().as_millis() as u64,
                    _ => 0,
                },
                restart_count: i.restart_count,
                last_exit: i.last_exit.clone(),
                usage: if i.pid != 0 { i.cgroup.usage() } else { Usage::default() },
                uid: svc.uid,
                spawn_us: i.spawn_us,
            })
            .collect()
    }

    fn view(&self, svc: &Service) -> ServiceView {
        let (state, failure) = {
            let rt = svc.runtime();
            (derive_state(&rt), rt.failure.clone())
        };
        ServiceView {
            spec: svc.spec.clone(),
            state,
            revision: svc.revision,
            artifact_kind: svc.artifact.kind.clone(),
            artifact_sha256: svc.artifact.sha256.clone(),
            instances: self.instance_views(svc),
            created_at_ms: svc.created_at_ms,
            failure,
            uid: svc.uid,
        }
    }

    pub fn status(&self, id: &str) -> Result<ServiceView, Error> {
        let svc = self.get(id)?;
        Ok(self.view(&svc))
    }

    pub fn list(&self, f: &ListFilter) -> Vec<ServiceView> {
        self.all()
            .iter()
            .filter(|s| s.id().starts_with(&f.id_prefix))
            .filter(|s| f.tier.is_none_or(|t| s.spec.tier == t))
            .filter(|s| f.labels.iter().all(|(k, v)| s.spec.labels.get(k) == Some(v)))
            .filter(|s| f.state.is_none_or(|st| s.state() == st))
            .map(|s| self.view(s))
            .collect()
    }

    /// The service's log sink (for tails).
    pub fn logs(&self, id: &str) -> Result<Arc<super::logs::LogSink>, Error> {
        Ok(self.get(id)?.logs.clone())
    }
}
