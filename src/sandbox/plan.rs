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
///
/// The same for every spawn of a profile, so the daemon sends its bytes to
/// a launcher once and afterwards only its `id` (the bytes' sha256): the
/// launcher keeps the filters it was sent ([`SeccompFilter::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompFilter {
    /// Empty when the launcher already has the filter `id`.
    #[serde(with = "hex_bytes")]
    pub bpf: Vec<u8>,
    #[serde(default)]
    pub id: String,
}

impl SeccompFilter {
    pub fn new(bpf: Vec<u8>) -> SeccompFilter {
        use sha2::Digest;
        let id = hex::encode(sha2::Sha256::digest(&bpf));
        SeccompFilter { bpf, id }
    }

    /// The same filter by reference only (its bytes left out).
    pub fn by_id(&self) -> SeccompFilter {
        SeccompFilter { bpf: Vec::new(), id: self.id.clone() }
    }

    /// In the launcher: fills in the bytes of a filter sent by reference
    /// from `known`, and remembers a filter sent whole. `false` when the
    /// reference is unknown.
    pub fn resolve(&mut self, known: &mut std::collections::HashMap<String, Vec<u8>>) -> bool {
        if self.bpf.is_empty() {
            match known.get(&self.id) {
                Some(b) if !self.id.is_empty() => {
                    self.bpf = b.clone();
                    true
                }
                _ => false,
            }
        } else {
            if !self.id.is_empty() && !known.contains_key(&self.id) {
                known.insert(self.id.clone(), self.bpf.clone());
            }
            true
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_filter_sent_whole_once_resolves_by_id_afterwards() {
        let whole = SeccompFilter::new(vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(whole.id.len(), 64);
        let mut known = HashMap::new();
        // By reference before the launcher ever got it: refused.
        let mut early = whole.by_id();
        assert!(!early.resolve(&mut known));
        // Whole: remembered, unchanged.
        let mut first = whole.clone();
        assert!(first.resolve(&mut known));
        assert_eq!(first, whole);
        // By reference, through JSON as on the socket: the bytes come back.
        let json = serde_json::to_string(&whole.by_id()).expect("encode");
        assert!(json.len() < 100, "{json}");
        let mut later: SeccompFilter = serde_json::from_str(&json).expect("decode");
        assert!(later.resolve(&mut known));
        assert_eq!(later, whole);
        // An empty reference never resolves.
        let mut none = SeccompFilter { bpf: vec![], id: String::new() };
        assert!(!none.resolve(&mut known));
    }
}
