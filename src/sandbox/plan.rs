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
    #[serde(default)]
    pub confine: Confinement,
}

/// How the instance is confined, beyond cgroup and uid. `None` parts are
/// layers the profile or the host leaves out (each recorded in the report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Confinement {
    pub namespaces: Namespaces,
    /// Hostname inside the UTS namespace (the service id).
    pub hostname: String,
    /// Bring `lo` up in the new network namespace.
    pub loopback: bool,
    /// The filesystem view; `None` keeps the launcher's (tests of the
    /// launcher itself only: every profile has a view).
    pub fs: Option<FsView>,
    pub landlock: Option<LandlockRules>,
    pub seccomp: Option<SeccompFilter>,
}

/// Namespaces to create. The mount namespace comes with [`FsView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Namespaces {
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
    pub cgroup: bool,
    pub user: bool,
}

/// The service's filesystem view, built on a fresh tmpfs and entered with
/// `pivot_root`. Paths in `read_only` are host paths bound at the same place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsView {
    /// An empty host directory the new root tmpfs is mounted on (inside the
    /// child's own mount namespace, so every instance can share it).
    pub root: String,
    pub read_only: Vec<String>,
    /// Size of the private `/tmp` (and `/dev/shm`) tmpfs, bytes.
    pub tmp_size: u64,
    /// Names under `/dev` bound from the host's `/dev`.
    pub devices: Vec<String>,
    /// Host directory bound read-write at `/data`.
    pub data: Option<String>,
    /// Host files bound read-only under `/app` (name → host path).
    pub app: Vec<(String, String)>,
    /// Where the program is inside the view. The child opens it there after
    /// `pivot_root` and executes that descriptor: Landlock allows execution
    /// only beneath the view's paths.
    pub program: String,
    /// Mount a private `/dev/shm` (with an IPC namespace).
    pub shm: bool,
    /// Set `vm.memfd_noexec = 2` (a per-pid-namespace sysctl: only with a
    /// pid namespace of its own, or it would change the host's).
    #[serde(default)]
    pub memfd_noexec: bool,
    /// Refuse the launch when the kernel lacks `vm.memfd_noexec` (the
    /// profile's `on_missing = "refuse"`); else the degrade is recorded.
    #[serde(default)]
    pub memfd_noexec_required: bool,
}

/// Landlock rules, for paths inside the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRules {
    /// Fail the launch when the kernel's ABI is below this; else degrade.
    pub min_abi: u32,
    pub refuse_below_min: bool,
    /// Read and execute beneath these.
    pub read_exec: Vec<String>,
    /// Read, write, create, remove beneath these (no execute).
    pub read_write: Vec<String>,
    /// Read-only, no execute (e.g. `/proc`).
    pub read: Vec<String>,
    /// Device files opened for reading and writing.
    pub devices: Vec<String>,
    /// Deny new TCP binds / connects (ABI 4+).
    pub deny_bind: bool,
    pub deny_connect: bool,
}

/// A compiled seccomp filter (classic BPF, `sock_filter` array bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompFilter {
    #[serde(with = "hex_bytes")]
    pub bpf: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// What a launch actually enforced, layer by layer (sent back with the pid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Enforcement {
    pub layers: Vec<Layer>,
}

/// One layer's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// e.g. `namespaces`, `filesystem`, `landlock`, `seccomp`.
    pub name: String,
    /// `enforced`, `partial` (degraded: some of it), `off` (degraded: none of it).
    pub state: String,
    pub detail: String,
}
