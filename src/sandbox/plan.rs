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

/// Most descriptors a plan may pass to a service (`fds`): they become fds
/// 3 to 3 + n - 1, and the launcher keeps that range free of its own.
pub const MAX_PASSED_FDS: usize = 64;

/// Longest `LISTEN_FDNAMES` name (systemd's `FDNAME_MAX`).
pub const MAX_FD_NAME: usize = 255;

/// One instance to start. The daemon also sends descriptors with it, in one
/// `SCM_RIGHTS` message and in this order: the write ends of the stdout and
/// stderr pipes, then one descriptor per name in [`LaunchPlan::fds`].
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
    /// The `LISTEN_FDNAMES` names of the descriptors passed after stdout and
    /// stderr, in order: the service gets them as fds 3, 4, … with
    /// `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (systemd's socket
    /// activation). At most [`MAX_PASSED_FDS`], each valid by
    /// [`fd_name_valid`].
    #[serde(default)]
    pub fds: Vec<String>,
    /// `Some(k)`: only the first `k` of `fds` are announced in `LISTEN_FDS`
    /// and `LISTEN_FDNAMES` (the listening sockets, for programs that take
    /// every activated descriptor as one); the rest follow at fd 3+k and are
    /// named in `SOLO_FDNAMES`, starting at `SOLO_FDS_START`.
    #[serde(default)]
    pub listen_fds: Option<u32>,
}

/// Whether `name` may be a `LISTEN_FDNAMES` entry (systemd's rule): 1 to
/// [`MAX_FD_NAME`] bytes of printable ASCII, no `:` (the separator).
pub fn fd_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FD_NAME
        && name.bytes().all(|b| b.is_ascii() && !b.is_ascii_control() && b != b':')
}

/// View paths a granted directory may not be at, or beneath: the view's own
/// places (`/proc`, `/sys`, `/dev`, `/app`, `/data`, `/tmp`), and `/`
/// itself. On the host side `/`, `/proc`, `/sys` and `/dev` are refused.
pub const BIND_FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev", "/app", "/data", "/tmp"];
const BIND_HOST_FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev"];

/// Whether `path` is `dir` or beneath it (both absolute, canonical).
pub fn path_within(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// An absolute path with no empty, `.` or `..` component and no trailing
/// `/` (so that prefix checks on it mean what they say).
fn canonical(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && path.len() <= 4096
        && !path.contains('\0')
        && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

impl LaunchPlan {
    /// Refuses what the launcher must never act on, naming why: too many
    /// passed descriptors, a bad descriptor name, a granted directory at a
    /// bad place. The launcher runs it before anything is opened (step
    /// `prepare`, `EINVAL`); the daemon may run it before sending.
    pub fn check(&self) -> Result<(), String> {
        if self.listen_fds.is_some_and(|k| k as usize > self.fds.len()) {
            return Err(format!(
                "listen_fds {:?} is more than the {} descriptors passed",
                self.listen_fds,
                self.fds.len()
            ));
        }
        if self.fds.len() > MAX_PASSED_FDS {
            return Err(format!("{} descriptors to pass, at most {MAX_PASSED_FDS}", self.fds.len()));
        }
        if let Some(bad) = self.fds.iter().find(|n| !fd_name_valid(n)) {
            return Err(format!(
                "descriptor name {:?}: want 1 to {MAX_FD_NAME} printable ASCII characters without ':'",
                bad.escape_debug().to_string()
            ));
        }
        if let Some(v) = &self.confine.fs {
            for b in &v.binds {
                b.check(v)?;
            }
        }
        Ok(())
    }
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
    /// Granted host directories, each attached in the instance's own copy of
    /// the view (read-only unless `writable`; never executable).
    #[serde(default)]
    pub binds: Vec<Bind>,
}

/// A host directory shown in the view (a `dir:PATH:ro|rw` grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// The host directory (absolute, canonical).
    pub host: String,
    /// Where it appears in the view (the daemon passes `at == host`).
    pub at: String,
    /// Read-write (create, write, remove); else read-only.
    pub writable: bool,
}

impl Bind {
    /// Refuses a bind the view cannot take: a path that is not absolute and
    /// canonical, a view path at `/` or at or beneath one of the view's own
    /// places ([`BIND_FORBIDDEN`]) or covering one of the profile's
    /// read-only system paths, a host path at `/`, `/proc`, `/sys`, `/dev`.
    pub fn check(&self, v: &FsView) -> Result<(), String> {
        for (what, p) in [("host path", &self.host), ("view path", &self.at)] {
            if !canonical(p) {
                return Err(format!(
                    "granted directory {what} {:?}: want an absolute path other than /, without empty, '.' or '..' \
                     components",
                    p.escape_debug().to_string()
                ));
            }
        }
        if let Some(bad) = BIND_FORBIDDEN.iter().find(|d| path_within(&self.at, d)) {
            return Err(format!(
                "granted directory at {}: nothing is granted at or beneath {bad} (the view's own places and the \
                 kernel's: /, {})",
                self.at,
                BIND_FORBIDDEN.join(", ")
            ));
        }
        if let Some(bad) = BIND_HOST_FORBIDDEN.iter().find(|d| path_within(&self.host, d)) {
            return Err(format!("granted directory {}: the host's {bad} is never granted", self.host));
        }
        if let Some(sys) = v.read_only.iter().find(|r| path_within(r, &self.at)) {
            return Err(format!("granted directory at {} would cover the profile's read-only {sys}", self.at));
        }
        Ok(())
    }
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

    fn plan(fds: Vec<String>, binds: Vec<Bind>) -> LaunchPlan {
        let fs = FsView {
            root: "/run/solo/root".into(),
            read_only: vec!["/usr".into(), "/etc/ssl".into()],
            tmp_size: 1 << 20,
            devices: vec![],
            data: None,
            app: vec![],
            program: "/app/x".into(),
            shm: false,
            memfd_noexec: false,
            memfd_noexec_required: false,
            binds,
        };
        LaunchPlan {
            service: "x".into(),
            replica: 0,
            program: "/bin/true".into(),
            argv: vec!["x".into()],
            env: vec![],
            uid: 1000,
            gid: 1000,
            cgroup_v2: None,
            cgroup_v1_tasks: vec![],
            rlimits: vec![],
            cwd: "/".into(),
            confine: Confinement { fs: Some(fs), ..Default::default() },
            fds,
            listen_fds: None,
        }
    }

    fn bind(host: &str, at: &str) -> Bind {
        Bind { host: host.into(), at: at.into(), writable: false }
    }

    #[test]
    fn passed_descriptors_are_bounded_and_named_as_systemd_names_them() {
        let names = |n: usize| (0..n).map(|i| format!("fd{i}")).collect::<Vec<_>>();
        assert_eq!(plan(names(MAX_PASSED_FDS), vec![]).check(), Ok(()));
        let e = plan(names(MAX_PASSED_FDS + 1), vec![]).check().expect_err("65 refused");
        assert!(e.contains("65 descriptors"), "{e}");
        for good in ["web", "solo-control", "a.b_c-d", "x y", &"n".repeat(MAX_FD_NAME)] {
            assert!(fd_name_valid(good), "{good:?}");
        }
        for bad in ["", "a:b", "a\nb", "\u{7f}", "é", &"n".repeat(MAX_FD_NAME + 1)] {
            assert!(!fd_name_valid(bad), "{bad:?}");
            assert!(plan(vec!["ok".into(), bad.into()], vec![]).check().is_err(), "{bad:?}");
        }
        // An old plan without the field still parses: no descriptors.
        let mut json = serde_json::to_value(plan(vec![], vec![])).expect("encode");
        json.as_object_mut().expect("object").remove("fds");
        let old: LaunchPlan = serde_json::from_value(json).expect("decode");
        assert!(old.fds.is_empty());
    }

    #[test]
    fn granted_directories_stay_out_of_the_views_own_places() {
        for ok in [
            bind("/srv/a", "/srv/a"),
            bind("/var/lib/x", "/srv/x"),
            bind("/usr/share/doc", "/usr/share/doc"),
            bind("/etc/myapp", "/etc/myapp"),
            bind("/tmp/x", "/srv/x"),
            bind("/devices", "/devices"),
        ] {
            assert_eq!(plan(vec![], vec![ok.clone()]).check(), Ok(()), "{ok:?}");
        }
        for bad in [
            bind("/srv/a", "/"),
            bind("/", "/srv/a"),
            bind("/srv/a", "/proc"),
            bind("/srv/a", "/proc/1"),
            bind("/srv/a", "/sys"),
            bind("/srv/a", "/dev/shm"),
            bind("/srv/a", "/app"),
            bind("/srv/a", "/data/x"),
            bind("/srv/a", "/tmp"),
            bind("/proc/1/root", "/srv/a"),
            bind("/sys/fs", "/srv/a"),
            bind("/dev", "/srv/a"),
            bind("/srv/../proc", "/srv/a"),
            bind("/srv/a", "/srv/./a"),
            bind("/srv/a", "/srv//a"),
            bind("/srv/a", "/srv/a/"),
            bind("srv/a", "/srv/a"),
            // Covering the profile's read-only system paths.
            bind("/srv/a", "/usr"),
            bind("/srv/a", "/etc"),
        ] {
            assert!(plan(vec![], vec![bad.clone()]).check().is_err(), "{bad:?}");
        }
        assert!(path_within("/proc/1", "/proc") && path_within("/proc", "/proc") && path_within("/x", "/"));
        assert!(!path_within("/procfs", "/proc"));
    }

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
