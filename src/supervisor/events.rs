//! The event bus: every event is appended to the store (which numbers it)
//! and broadcast to `Watch` subscribers together with log lines.

use super::restart::Exit;
use crate::store::{EventRow, Store};
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Deployed,
    Started,
    Exited,
    Restarted,
    Backoff,
    Failed,
    OomKilled,
    Killed,
    Removed,
    LaunchFailed,
    Stopped,
    SeccompDenied,
    Quarantined,
    /// A request refused for its token (bad, expired, revoked, too narrow).
    AccessDenied,
    /// A token or fd grant issued.
    Granted,
    /// A token (with its children) or fd grant revoked.
    Revoked,
    /// An update's step: its phase and counts are in `update`.
    Updating,
    /// An update committed: the new revision runs.
    Updated,
    /// An update rolled back: the previous revision runs; the message
    /// and `update.reason` say why.
    RolledBack,
    /// A memory or CPU limit was reached (what was done: the message).
    LimitExceeded,
    /// A running instance taken over after a daemon crash or re-exec.
    Adopted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Deployed => "deployed",
            EventKind::Started => "started",
            EventKind::Exited => "exited",
            EventKind::Restarted => "restarted",
            EventKind::Backoff => "backoff",
            EventKind::Failed => "failed",
            EventKind::OomKilled => "oom-killed",
            EventKind::Killed => "killed",
            EventKind::Removed => "removed",
            EventKind::LaunchFailed => "launch-failed",
            EventKind::Stopped => "stopped",
            EventKind::SeccompDenied => "seccomp-denied",
            EventKind::Quarantined => "quarantined",
            EventKind::AccessDenied => "access-denied",
            EventKind::Granted => "granted",
            EventKind::Revoked => "revoked",
            EventKind::Updating => "updating",
            EventKind::Updated => "updated",
            EventKind::RolledBack => "rolled-back",
            EventKind::LimitExceeded => "limit-exceeded",
            EventKind::Adopted => "adopted",
        }
    }
}

/// One supervisor event.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: EventKind,
    pub service: String,
    pub replica: u32,
    pub pid: i32,
    pub exit: Option<Exit>,
    pub message: String,
    pub restart_count: u32,
    pub delay_ms: u64,
    pub spawn_us: u64,
    /// RESTARTED: exit → running, backoff delay excluded.
    pub restart_us: u64,
    /// SECCOMP_DENIED: the syscall and the action taken.
    pub syscall: String,
    pub action: String,
    /// The revision of the instance (or the one an update rolls out);
    /// 0 when not about one.
    pub revision: u64,
    /// UPDATING, UPDATED, ROLLED_BACK: the update's progress.
    pub update: Option<Box<super::update::Progress>>,
}

impl Event {
    pub fn new(kind: EventKind, service: &str, replica: u32) -> Self {
        Event {
            seq: 0,
            at_ms: now_ms(),
            kind,
            service: service.to_owned(),
            replica,
            pid: 0,
            exit: None,
            message: String::new(),
            restart_count: 0,
            delay_ms: 0,
            spawn_us: 0,
            restart_us: 0,
            syscall: String::new(),
            action: String::new(),
            revision: 0,
            update: None,
        }
    }

    /// An event about one instance of `svc` (its revision included).
    pub fn of(kind: EventKind, svc: &super::service::Service, replica: u32) -> Self {
        let mut e = Event::new(kind, svc.id(), replica);
        e.revision = svc.revision;
        e
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A line the supervisor wrote about the instance (a denied syscall,
    /// a kill by its filter), in the same log so `solo logs` tells why.
    Supervisor,
}

/// One captured output line.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub at_ms: i64,
    pub service: Arc<str>,
    pub replica: u32,
    pub pid: i32,
    pub stream: Stream,
    pub line: String,
}

#[derive(Debug, Clone)]
pub enum Item {
    Event(Arc<Event>),
    Log(Arc<LogLine>),
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub struct Bus {
    tx: broadcast::Sender<Item>,
    store: Arc<Store>,
}

impl Bus {
    pub const CAPACITY: usize = 8192;

    pub fn new(store: Arc<Store>) -> Self {
        Bus { tx: broadcast::channel(Self::CAPACITY).0, store }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Item> {
        self.tx.subscribe()
    }

    /// Records and broadcasts an event. A store failure is logged, not
    /// fatal: the event still reaches watchers.
    pub fn emit(&self, mut e: Event) {
        let row = EventRow {
            at_ms: e.at_ms,
            service: e.service.clone(),
            replica: e.replica,
            kind: e.kind.as_str().to_owned(),
            pid: e.pid,
            message: e.message.clone(),
        };
        e.seq = self.store.append_event(&row);
        tracing::info!(service = %e.service, replica = e.replica, pid = e.pid, kind = e.kind.as_str(), "{}", e.message);
        let _ = self.tx.send(Item::Event(Arc::new(e)));
    }

    pub fn log(&self, l: Arc<LogLine>) {
        let _ = self.tx.send(Item::Log(l));
    }
}
