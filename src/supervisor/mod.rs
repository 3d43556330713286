//! The supervisor: owns every service, its instances and their lifecycle.
//!
//! Operations live one per file (`deploy`, `kill`, `query`, `shutdown`,
//! `recover`), and `update/` holds updates (one file per step and
//! strategy); `instance` runs each replica's lifecycle task, `stopping`
//! stops one; `restart` is the pure restart policy; `launch` talks to the
//! single-threaded launcher process; `logs` and `events` carry output and
//! events to watchers and the store.

pub mod artifacts;
pub mod audit_log;
mod denials;
mod deploy;
pub mod events;
pub mod explain;
pub mod grants;
mod handover;
mod instance;
mod kill;
pub mod launch;
pub mod logs;
mod monitor;
pub mod policy;
mod query;
mod readiness;
mod recover;
pub mod restart;
mod scrape;
pub mod service;
mod shutdown;
pub mod snapshot;
mod stopping;
pub mod tokens;
pub mod update;

pub use deploy::DeployOutcome;
pub use handover::Leaving;
pub use query::{InstanceView, ListFilter, ServiceView};
pub use shutdown::{ShutdownReport, StoppedInstance};

use crate::sandbox::cgroup::{CgroupError, Layout};
use crate::spec::{FieldError, Validator};
use crate::store::{Store, StoreError};
use artifacts::{ArtifactError, ArtifactStore};
use events::Bus;
use service::Service;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// What the supervisor needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub uid_first: u32,
    pub uid_last: u32,
    pub upload_limit: u64,
    pub cgroup_tag: String,
    /// The solo binary, exec'd as the launcher.
    pub exe: PathBuf,
    pub service_cwd: String,
    pub log: logs::LogConfig,
    /// Holds the empty directory each instance's view is mounted on.
    pub runtime_dir: PathBuf,
    /// Audit log retention and head signing.
    pub audit: audit_log::AuditConfig,
    /// Sample every instance's usage in the background (for metrics).
    pub sample_usage: bool,
    /// This image was started by a re-exec of the daemon.
    pub reexecuted: bool,
    /// How many revisions of each service are kept (the running one always is).
    pub keep_revisions: u32,
}

impl Config {
    pub const DEFAULT_KEEP_REVISIONS: u32 = 5;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("service '{0}' not found")]
    NotFound(String),
    /// Something other than a service was not found; the message says what.
    #[error("{0}")]
    NoSuch(String),
    #[error("service '{0}' already exists (kill it with --remove first, or pick another id)")]
    AlreadyExists(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Exhausted(String),
    /// Refused for the caller's token; the message names the missing
    /// permission or the reason (expired, revoked, bad signature).
    #[error("{0}")]
    Denied(String),
    #[error("the supervisor is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifact(ArtifactError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<ArtifactError> for Error {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::Field(f) => Error::Invalid(f),
            other => Error::Artifact(other),
        }
    }
}

pub struct Supervisor {
    pub config: Config,
    pub store: Arc<Store>,
    pub bus: Arc<Bus>,
    pub layout: Layout,
    pub launcher: Arc<launch::Launcher>,
    pub artifacts: ArtifactStore,
    pub validator: Validator,
    /// Compiled profiles, by name.
    pub policies: BTreeMap<String, Arc<policy::Policy>>,
    services: RwLock<Registry>,
    /// Serialises deploy/remove so uid allocation and id checks are atomic.
    ops: tokio::sync::Mutex<()>,
    shutting_down: AtomicBool,
    /// The signing key, operator token and revocation set.
    pub tokens: tokens::Authority,
    /// The audit log's signer, coalesced counts and settings.
    pub audit_log: audit_log::AuditLog,
    /// Why the daemon is stopping (for the audit log), once it is.
    pub stop_reason: std::sync::Mutex<Option<String>>,
    /// The daemon's own figures for `/metrics`.
    pub metrics: Arc<crate::metrics::Registry>,
    /// Syscalls denied by every instance's filter since the daemon started.
    pub denials: std::sync::atomic::AtomicU64,
    /// Every service's update under way, or its last one.
    pub updates: update::Updates,
    /// Set to true when the daemon should exit (Shutdown done). Set it with
    /// `send_replace`: `send` drops the value when nobody subscribed yet,
    /// and a SIGTERM can arrive before the server subscribes.
    pub exit: watch::Sender<bool>,
    /// How the daemon leaves, when it leaves its services running (a
    /// re-exec, a detaching stop); `None`: it stops them (or has not been
    /// asked to leave).
    leaving: std::sync::Mutex<Option<Leaving>>,
    /// Listening sockets a previous daemon of this state dir left in the
    /// launcher's vault (`api/unix`, `api/tcp`), for the API server.
    inherited: std::sync::Mutex<BTreeMap<String, std::os::fd::OwnedFd>>,
    /// When this image started (Unix ms); a re-exec starts a new one.
    pub started_at_ms: i64,
    /// Instances re-adopted at start.
    pub adopted: std::sync::atomic::AtomicU32,
}

/// The services held, by id, and the uids they hold.
#[derive(Default)]
struct Registry {
    by_id: BTreeMap<String, Arc<Service>>,
    /// Every held service's uid: a deploy takes the lowest one free
    /// without visiting each service.
    uids: std::collections::BTreeSet<u32>,
}

impl Supervisor {
    /// Opens state, prepares cgroups, starts the launcher and brings every
    /// desired service back.
    pub async fn start(config: Config, profiles: crate::profiles::ProfileSet) -> Result<Arc<Self>, Error> {
        let policies = policy::compile(&profiles).map_err(Error::Precondition)?;
        let view_root = config.runtime_dir.join("root");
        std::fs::create_dir_all(&view_root)
            .map_err(|e| Error::Precondition(format!("cannot create {}: {e}", view_root.display())))?;
        let data = config.state_dir.join("data");
        std::fs::create_dir_all(&data)
            .and_then(|()| std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o711)))
            .map_err(|e| Error::Precondition(format!("cannot create {}: {e}", data.display())))?;
        let store = Arc::new(Store::open(&config.state_dir.join("solo.db"))?);
        let layout = Layout::detect(&config.cgroup_tag)?;
        layout.prepare()?;
        let artifacts = ArtifactStore::open(&config.state_dir)?;
        let tokens = tokens::Authority::open(&config.state_dir, &store).await?;
        let launcher = launch::Launcher::new(config.exe.clone(), config.runtime_dir.clone());
        launcher.start().await.map_err(|e| Error::Precondition(e.to_string()))?;
        let audit_log = audit_log::AuditLog::new(tokens.audit_key(), config.audit);
        let sup = Arc::new(Supervisor {
            validator: Validator {
                upload_limit: config.upload_limit,
                profiles: profiles.defaults(),
                max_open_files: grantable_nofile(),
            },
            policies,
            bus: Arc::new(Bus::new(store.clone())),
            store,
            layout,
            launcher,
            artifacts,
            config,
            services: RwLock::new(Registry::default()),
            ops: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            denials: Default::default(),
            tokens,
            updates: Default::default(),
            audit_log,
            stop_reason: std::sync::Mutex::new(None),
            metrics: Default::default(),
            exit: watch::channel(false).0,
            leaving: Default::default(),
            inherited: Default::default(),
            started_at_ms: events::now_ms(),
            adopted: Default::default(),
        });
        sup.audit_daemon_start(sup.store.services().map(|s| s.len()).unwrap_or(0));
        audit_log::spawn_task(sup.clone());
        monitor::spawn_task(sup.clone());
        recover::run(&sup).await?;
        // Updates a stopped daemon left under way: after the services are
        // restored, so it sees what runs (docs/updates.md#crash-safety).
        update::resume(&sup).await?;
        Ok(sup)
    }

    pub fn get(&self, id: &str) -> Result<Arc<Service>, Error> {
        self.registry().by_id.get(id).cloned().ok_or_else(|| Error::NotFound(id.to_owned()))
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.services.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn all(&self) -> Vec<Arc<Service>> {
        self.registry().by_id.values().cloned().collect()
    }

    fn insert(&self, svc: Arc<Service>) {
        let mut r = self.services.write().unwrap_or_else(|p| p.into_inner());
        let uid = svc.uid;
        // Each service holds its own uid; a new revision of one keeps it.
        if let Some(old) = r.by_id.insert(svc.id().to_owned(), svc) {
            r.uids.remove(&old.uid);
        }
        r.uids.insert(uid);
    }

    fn remove(&self, id: &str) {
        let mut r = self.services.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = r.by_id.remove(id) {
            r.uids.remove(&old.uid);
        }
    }

    /// Asks the daemon to exit, saying why (recorded in the audit log).
    pub fn request_exit(&self, why: &str) {
        self.stop_reason.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| why.to_owned());
        self.exit.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The listening socket a previous daemon kept under `name`, if any.
    pub fn take_inherited(&self, name: &str) -> Option<std::os::fd::OwnedFd> {
        self.inherited.lock().unwrap_or_else(|p| p.into_inner()).remove(name)
    }

    /// Number of services held.
    pub fn len(&self) -> usize {
        self.registry().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The largest RLIMIT_NOFILE a service can be given: anything up to
/// `fs.nr_open` with CAP_SYS_RESOURCE, else our own hard limit.
fn grantable_nofile() -> u32 {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::from(crate::spec::Limits::MAX_OPEN_FILES));
    let cap = if crate::sandbox::sys::has_effective_capability(crate::sandbox::sys::CAP_SYS_RESOURCE) {
        nr_open
    } else {
        crate::sandbox::sys::getrlimit(libc::RLIMIT_NOFILE).map(|(_, hard)| hard).unwrap_or(1024).min(nr_open)
    };
    cap.min(u64::from(crate::spec::Limits::MAX_OPEN_FILES)) as u32
}
