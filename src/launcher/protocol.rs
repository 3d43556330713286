//! Messages between the daemon and the launcher: one JSON document per
//! `SOCK_SEQPACKET` datagram, descriptors alongside as `SCM_RIGHTS`.

use crate::sandbox::plan::{Enforcement, LaunchPlan};
use serde::{Deserialize, Serialize};

/// Largest datagram either side sends or accepts.
pub const MAX_MESSAGE: usize = 4 << 20;

/// Daemon → launcher. Carries, in one `SCM_RIGHTS` message, the stdout and
/// stderr pipe write ends, then one descriptor per name in `plan.fds`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub plan: LaunchPlan,
}

/// Launcher → daemon.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// The instance exec'd; its pidfd travels with this message, followed
    /// by its seccomp listener when `listener` is set.
    Spawned { id: u64, pid: i32, spawn_us: u64, listener: bool, enforcement: Enforcement },
    /// A launch step failed; the child was reaped.
    Failed { id: u64, step: String, errno: i32, message: String },
    /// A child of the launcher ended (reaped).
    Exited { pid: i32, code: Option<i32>, signal: Option<i32> },
}
