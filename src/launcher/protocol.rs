//! Messages between the daemon and the launcher: one JSON document per
//! `SOCK_SEQPACKET` datagram, descriptors alongside as `SCM_RIGHTS`.
//!
//! The launcher outlives the daemon (docs/architecture.md, "Re-adoption"):
//! it keeps, besides its children, the daemon-side descriptors of every
//! instance (output pipes, control socket, seccomp listener) and the
//! services' granted sockets in a *vault* of named descriptors, so that a
//! daemon that crashed, or re-exec'd itself, attaches again and takes
//! everything back.

use crate::sandbox::plan::{Enforcement, LaunchPlan};
use serde::{Deserialize, Serialize};

/// Largest datagram either side sends or accepts.
pub const MAX_MESSAGE: usize = 4 << 20;

/// The file name of the launcher's socket in the runtime dir.
pub const SOCKET_NAME: &str = "launcher.sock";
/// The file name holding the launcher's pid in the runtime dir.
pub const PID_NAME: &str = "launcher.pid";

/// Daemon → launcher.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Launch `plan` as the instance `key` (a vault prefix such as
    /// `inst/web/0/`). Carries, in one `SCM_RIGHTS` message: the stdout and
    /// stderr pipe write ends, then one descriptor per name in `keep` (kept
    /// in the vault under `key` + name, so they survive the daemon), then
    /// one per name in `plan.fds`. The seccomp listener is kept as
    /// `key` + `listener`.
    Spawn { id: u64, key: String, keep: Vec<String>, meta: String, plan: Box<LaunchPlan> },
    /// Keep the descriptors sent along under these names (one each, in
    /// order), replacing what the vault held under each.
    Keep { names: Vec<String> },
    /// Drop every vault entry whose name starts with `prefix`.
    Forget { prefix: String },
    /// A daemon takes over: the launcher sends every live child
    /// ([`Reply::Child`]), every vault entry ([`Reply::Kept`]), the exits it
    /// reaped while no daemon was attached ([`Reply::Exited`]), then
    /// [`Reply::Attached`].
    Attach,
    /// This daemon goes away on purpose (a re-exec, a detaching stop):
    /// from now on exits are queued for the next daemon, and nothing more is
    /// sent on this connection.
    Detach,
    /// Exit now (the daemon stopped every service first).
    Quit,
}

/// Launcher → daemon.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// The instance exec'd; its pidfd travels with this message, followed
    /// by its seccomp listener when `listener` is set.
    Spawned { id: u64, pid: i32, spawn_us: u64, listener: bool, enforcement: Enforcement },
    /// A launch step failed; the child was reaped.
    Failed { id: u64, step: String, errno: i32, message: String },
    /// A child of the launcher ended (reaped); `key` is the instance it
    /// was launched as (empty for a process the launcher did not launch).
    Exited {
        pid: i32,
        code: Option<i32>,
        signal: Option<i32>,
        #[serde(default)]
        key: String,
    },
    /// (Attach) a live child, launched as instance `key` with `meta`, what
    /// was enforced, the spawn's cost and when (Unix ms); its pidfd travels
    /// with this message.
    Child { pid: i32, key: String, meta: String, enforcement: Enforcement, spawn_us: u64, started_at_ms: i64 },
    /// (Attach) vault entries, one descriptor each, in this order.
    Kept { names: Vec<String> },
    /// (Attach) everything was sent; `pid` is the launcher's.
    Attached {
        children: usize,
        kept: usize,
        #[serde(default)]
        pid: i32,
    },
}
