//! A service as the supervisor holds it: its spec and artifact, and the
//! runtime state of its instances, guarded by one lock per service so a
//! `Status` reads a consistent snapshot without touching other services.

use super::artifacts::ArtifactRef;
use super::logs::LogSink;
use super::restart::Exit;
use crate::sandbox::cgroup::InstanceCgroup;
use crate::spec::ServiceSpec;
use crate::store::Desired;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Starting,
    Running,
    Stopping,
    Exited,
    Failed,
    Backoff,
    /// Killed by its seccomp filter; not restarted.
    Quarantined,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Exited => "exited",
            InstanceState::Failed => "failed",
            InstanceState::Backoff => "backoff",
            InstanceState::Quarantined => "quarantined",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Starting,
    Running,
    Degraded,
    Failed,
    Stopped,
    Exited,
    Quarantined,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Degraded => "degraded",
            ServiceState::Failed => "failed",
            ServiceState::Stopped => "stopped",
            ServiceState::Exited => "exited",
            ServiceState::Quarantined => "quarantined",
        }
    }
}

/// How to stop instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopMode {
    pub force: bool,
    pub timeout: Duration,
}

/// The name of an instance's cgroup (and notify directory): `ID.REPLICA`
/// for revision 1, `ID.REPLICA.rREVISION` for later ones, so two
/// revisions of one replica can run side by side during an update.
pub fn instance_name(id: &str, revision: u64, replica: u32) -> String {
    if revision <= 1 {
        format!("{id}.{replica}")
    } else {
        format!("{id}.{replica}.r{revision}")
    }
}

/// `(id, revision, replica)` of an [`instance_name`], if it is one.
pub fn parse_instance_name(name: &str) -> Option<(String, u64, u32)> {
    let mut parts = name.split('.');
    let id = parts.next()?;
    let replica = parts.next()?.parse().ok()?;
    let revision = match parts.next() {
        None => 1,
        Some(r) => r.strip_prefix('r')?.parse().ok().filter(|r| *r > 1)?,
    };
    if parts.next().is_some() || crate::spec::validate_service_id(id).is_err() {
        return None;
    }
    Some((id.to_owned(), revision, replica))
}

/// One replica's runtime state.
#[derive(Debug)]
pub struct Instance {
    pub replica: u32,
    pub state: InstanceState,
    pub pid: i32,
    pub pidfd: Option<Arc<OwnedFd>>,
    pub started_at_ms: i64,
    pub started_at: Option<Instant>,
    pub restart_count: u32,
    pub last_exit: Option<Exit>,
    pub cgroup: InstanceCgroup,
    pub spawn_us: u64,
    /// Set when the latest launch failed; cleared by a successful one.
    pub launch_error: Option<String>,
    /// Whether this instance has ever reached running.
    pub ever_running: bool,
    /// Last usage sample and when it was read.
    pub usage: Option<(Instant, crate::sandbox::cgroup::Usage)>,
    /// Syscalls the filter denied, over the instance's life.
    pub seccomp_denials: u64,
    /// Set when the filter killed the main process (the syscall's name).
    pub killed_by_filter: Option<String>,
    /// The latest syscall the filter denied in the current run (its name,
    /// with the address family for `socket`).
    pub last_denied: Option<String>,
    /// What the latest launch enforced.
    pub enforcement: crate::sandbox::plan::Enforcement,
    /// Its lifecycle task was started (a revision being rolled out starts
    /// its instances one by one).
    pub launched: bool,
    /// Its lifecycle task has ended (no process, no cgroup left).
    pub ended: bool,
    /// The last stop had to SIGKILL it (grace expired, or forced).
    pub stop_escalated: bool,
    /// Frozen (cgroup freezer): kept, but not running (blue-green grace).
    pub frozen: bool,
    /// Runs of this instance the kernel OOM-killed.
    pub oom_kills: u64,
    /// Times the instance reached its memory or CPU limit (the monitor).
    pub limit_hits: u64,
    /// Set when the monitor killed the instance for its CPU limit (why).
    pub killed_for_limit: Option<String>,
}

/// The persisted facts about a service besides its spec.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub revision: u64,
    pub uid: u32,
    pub created_at_ms: i64,
    pub desired: Desired,
}

pub struct Runtime {
    pub desired: Desired,
    pub instances: Vec<Instance>,
    pub failure: Option<String>,
}

pub struct Service {
    pub spec: ServiceSpec,
    pub artifact: ArtifactRef,
    pub revision: u64,
    pub uid: u32,
    pub created_at_ms: i64,
    pub logs: Arc<LogSink>,
    runtime: Mutex<Runtime>,
    /// Notified on every runtime change (for `--wait`).
    pub changed: Notify,
    /// `Some` once instances are asked to stop.
    pub stop: watch::Sender<Option<StopMode>>,
    /// Per replica: `Some` once that one instance is asked to stop (an
    /// update replaces instances one at a time).
    pub replica_stop: Vec<watch::Sender<Option<StopMode>>>,
    /// Number of live instance tasks.
    pub alive: watch::Sender<usize>,
    /// fd grants, control sockets, pending pushes.
    pub caps: super::grants::ServiceCaps,
}

impl Service {
    pub fn new(
        spec: ServiceSpec,
        artifact: ArtifactRef,
        rec: Record,
        logs: Arc<LogSink>,
        cgroups: Vec<InstanceCgroup>,
    ) -> Self {
        let Record { revision, uid, created_at_ms, desired } = rec;
        let replicas = cgroups.len();
        let instances = cgroups
            .into_iter()
            .enumerate()
            .map(|(i, cgroup)| Instance {
                replica: i as u32,
                state: if desired == Desired::Running { InstanceState::Starting } else { InstanceState::Exited },
                pid: 0,
                pidfd: None,
                started_at_ms: 0,
                started_at: None,
                restart_count: 0,
                last_exit: None,
                cgroup,
                spawn_us: 0,
                launch_error: None,
                ever_running: false,
                usage: None,
                seccomp_denials: 0,
                killed_by_filter: None,
                last_denied: None,
                enforcement: Default::default(),
                launched: false,
                ended: false,
                stop_escalated: false,
                frozen: false,
                oom_kills: 0,
                limit_hits: 0,
                killed_for_limit: None,
            })
            .collect();
        let replica_stop = (0..replicas).map(|_| watch::channel(None).0).collect();
        Service {
            spec,
            artifact,
            revision,
            uid,
            created_at_ms,
            logs,
            runtime: Mutex::new(Runtime { desired, instances, failure: None }),
            changed: Notify::new(),
            stop: watch::channel(None).0,
            replica_stop,
            alive: watch::channel(0).0,
            caps: Default::default(),
        }
    }

    pub fn id(&self) -> &str {
        self.spec.id.as_str()
    }

    pub fn runtime(&self) -> MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to one instance and wakes waiters.
    pub fn update<R>(&self, replica: u32, f: impl FnOnce(&mut Instance, &mut Option<String>) -> R) -> R {
        let r = {
            let mut rt = self.runtime();
            let rt = &mut *rt;
            let inst = &mut rt.instances[replica as usize];
            f(inst, &mut rt.failure)
        };
        self.changed.notify_waiters();
        r
    }

    pub fn set_desired(&self, d: Desired) {
        self.runtime().desired = d;
        self.changed.notify_waiters();
    }

    /// Marks every instance failed with `reason` (a restored failure), or
    /// quarantined when the reason says so.
    pub fn mark_failed(&self, reason: &str) {
        let mut rt = self.runtime();
        rt.failure = Some(reason.to_owned());
        let state =
            if reason.starts_with(QUARANTINE_PREFIX) { InstanceState::Quarantined } else { InstanceState::Failed };
        for i in &mut rt.instances {
            i.state = state;
        }
    }

    /// The service's state, derived from its instances.
    pub fn state(&self) -> ServiceState {
        let rt = self.runtime();
        derive_state(&rt)
    }

    /// Waits until no instance task is alive.
    pub async fn stopped(&self) {
        let mut rx = self.alive.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// This revision's instance name for `replica`.
    pub fn instance_name(&self, replica: u32) -> String {
        instance_name(self.id(), self.revision, replica)
    }

    /// Asks one instance to stop (its task ends after the stop).
    pub fn stop_replica(&self, replica: u32, mode: StopMode) {
        if let Some(tx) = self.replica_stop.get(replica as usize) {
            tx.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some(mode);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Waits until the task of `replica` has ended (or was never started).
    pub async fn replica_ended(&self, replica: u32) {
        loop {
            let notified = self.changed.notified();
            {
                let rt = self.runtime();
                match rt.instances.get(replica as usize) {
                    Some(i) if i.launched && !i.ended => {}
                    _ => return,
                }
            }
            notified.await;
        }
    }
}

/// Failure reasons that start with this put the service in quarantine.
pub const QUARANTINE_PREFIX: &str = "quarantined: ";

pub fn derive_state(rt: &Runtime) -> ServiceState {
    if rt.instances.iter().any(|i| i.state == InstanceState::Quarantined) {
        return ServiceState::Quarantined;
    }
    if rt.failure.is_some() || rt.instances.iter().any(|i| i.state == InstanceState::Failed) {
        return ServiceState::Failed;
    }
    if rt.desired == Desired::Stopped {
        return ServiceState::Stopped;
    }
    let all = |s: InstanceState| rt.instances.iter().all(|i| i.state == s);
    if all(InstanceState::Running) {
        ServiceState::Running
    } else if all(InstanceState::Exited) {
        ServiceState::Exited
    } else if rt.instances.iter().any(|i| i.state == InstanceState::Backoff) {
        ServiceState::Degraded
    } else {
        ServiceState::Starting
    }
}
