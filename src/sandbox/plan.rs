//! The launch plan: everything the launcher needs to start one instance,
//! computed by the daemon and sent as one datagram. All allocation and path
//! resolution happens before `clone3`; the child only runs [`super::steps`].

use serde::{Deserialize, Serialize};

/// A resource limit to set with `setrlimit` before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// `RLIMIT_*` number.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// One instance to start. The daemon also sends two descriptors with it, in
/// this order: the write ends of the stdout and stderr pipes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub service: String,
    pub replica: u32,
    /// Absolute path of the program to execute; opened `O_PATH` by the
    /// launcher and executed by descriptor (`execveat`).
    pub program: String,
    /// `argv`, including `argv[0]`.
    pub argv: Vec<String>,
    /// `envp` as `KEY=VALUE`.
    pub env: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    /// The instance's cgroup v2 directory, joined atomically by `clone3`.
    pub cgroup_v2: Option<String>,
    /// `tasks` files of v1 hierarchies the child joins before exec.
    pub cgroup_v1_tasks: Vec<String>,
    pub rlimits: Vec<Rlimit>,
    pub cwd: String,
}
