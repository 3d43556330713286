//! Status and List: consistent snapshots of services and instances, with
//! live usage read from each instance's cgroup.

use super::restart::Exit;
use super::service::{derive_state, InstanceState, Service, ServiceState};
use super::{Error, Supervisor};
use crate::sandbox::cgroup::Usage;
use crate::spec::{ServiceSpec, Tier};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `List` reports usage sampled at most this long ago.
const LIST_USAGE_MAX_AGE: Duration = Duration::from_secs(2);

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
    /// `None` when not sampled (the instances a deploy just started).
    pub usage: Option<Usage>,
    pub uid: u32,
    pub spawn_us: u64,
    pub profile: String,
    pub profile_sha256: String,
    pub enforcement: crate::sandbox::plan::Enforcement,
    pub seccomp_denials: u64,
    pub last_denied: Option<String>,
    /// The revision it runs.
    pub revision: u64,
    /// Frozen (the old set during a blue-green grace period).
    pub frozen: bool,
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
    pub profile_sha256: String,
    /// Grants held now: (name, spec).
    pub grants: Vec<(String, String)>,
    /// The update under way, or the last one.
    pub update: Option<super::update::Progress>,
    /// Kept revisions, newest first (filled by `Status` only).
    pub revisions: Vec<super::update::revisions::RevisionView>,
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
        self.views_with_usage(svc, Some(Duration::ZERO))
    }

    /// Views without usage: what a deploy answers with. Its instances have
    /// just started, and reading three cgroup files per instance would
    /// lengthen every deploy for figures that are still zero.
    pub fn started_views(&self, svc: &Service) -> Vec<InstanceView> {
        self.views_with_usage(svc, None)
    }

    /// Views with usage no older than `max_age` (read from the cgroup when
    /// the cached sample is older; `List` over many services stays cheap),
    /// or none with `None`.
    fn views_with_usage(&self, svc: &Service, max_age: Option<Duration>) -> Vec<InstanceView> {
        self.views_of(svc, max_age, false)
    }

    /// `started_only`: only instances with a task (the other revision of an
    /// update shows what it runs, not its replicas not started yet).
    fn views_of(&self, svc: &Service, max_age: Option<Duration>, started_only: bool) -> Vec<InstanceView> {
        let mut rt = svc.runtime();
        rt.instances
            .iter_mut()
            .filter(|i| !started_only || (i.launched && !i.ended))
            .map(|i| {
                let usage = match max_age {
                    None => None,
                    Some(_) if i.pid == 0 => Some(Usage::default()),
                    Some(max_age) => Some(match i.usage {
                        Some((at, u)) if at.elapsed() <= max_age && !max_age.is_zero() => u,
                        _ => {
                            let u = i.cgroup.usage();
                            i.usage = Some((Instant::now(), u));
                            u
                        }
                    }),
                };
                (i, usage)
            })
            .map(|(i, usage)| InstanceView {
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
                usage,
                uid: svc.uid,
                spawn_us: i.spawn_us,
                profile: svc.spec.profile.clone(),
                profile_sha256: self.profile_sha256(&svc.spec.profile),
                enforcement: i.enforcement.clone(),
                seccomp_denials: i.seccomp_denials,
                last_denied: i.last_denied.clone(),
                revision: svc.revision,
                frozen: i.frozen,
            })
            .collect()
    }

    fn view(&self, svc: &Service, usage_max_age: Duration) -> ServiceView {
        let (state, failure) = {
            let rt = svc.runtime();
            (derive_state(&rt), rt.failure.clone())
        };
        let mut instances = self.views_with_usage(svc, Some(usage_max_age));
        // During an update the other revision's instances are listed too.
        if let Some(run) = self.updates.active(svc.id()) {
            let other = if std::ptr::eq(&*run.from, svc) { &run.to } else { &run.from };
            instances.extend(self.views_of(other, Some(usage_max_age), true));
        }
        ServiceView {
            spec: svc.spec.clone(),
            state,
            revision: svc.revision,
            artifact_kind: svc.artifact.kind.clone(),
            artifact_sha256: svc.artifact.sha256.clone(),
            instances,
            created_at_ms: svc.created_at_ms,
            failure,
            uid: svc.uid,
            profile_sha256: self.profile_sha256(&svc.spec.profile),
            grants: svc.caps.names(),
            update: self.updates.view(svc.id()),
            revisions: Vec::new(),
        }
    }

    /// The sha256 of a profile this daemon serves (empty if unknown).
    pub fn profile_sha256(&self, name: &str) -> String {
        self.policies.get(name).map(|p| p.profile.sha256.clone()).unwrap_or_default()
    }

    pub fn status(&self, id: &str) -> Result<ServiceView, Error> {
        let svc = self.get(id)?;
        let mut v = self.view(&svc, Duration::ZERO);
        v.revisions = self.revisions_view(id)?;
        Ok(v)
    }

    pub fn list(&self, f: &ListFilter) -> Vec<ServiceView> {
        self.all()
            .iter()
            .filter(|s| s.id().starts_with(&f.id_prefix))
            .filter(|s| f.tier.is_none_or(|t| s.spec.tier == t))
            .filter(|s| f.labels.iter().all(|(k, v)| s.spec.labels.get(k) == Some(v)))
            .filter(|s| f.state.is_none_or(|st| s.state() == st))
            .map(|s| self.view(s, LIST_USAGE_MAX_AGE))
            .collect()
    }

    /// The service's log sink (for tails).
    pub fn logs(&self, id: &str) -> Result<Arc<super::logs::LogSink>, Error> {
        Ok(self.get(id)?.logs.clone())
    }
}
