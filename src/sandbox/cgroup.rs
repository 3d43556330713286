//! Per-instance cgroups, created beneath the supervisor's own cgroup.
//!
//! Solo targets cgroup v2. On hybrid hosts (a v2 tree without some
//! controllers, v1 hierarchies for the rest) each controller is served by the
//! v2 tree when it is available there and by its own v1 hierarchy otherwise,
//! so limits are enforced either way. The v2 tree, when mounted at all, is
//! always used for membership: it gives `CLONE_INTO_CGROUP`, `cgroup.kill`
//! and `cgroup.events`, even when it carries no controller.
//!
//! Invariant: nothing here creates a cgroup outside `<own cgroup>/<tag>`,
//! and every directory created is removed by [`InstanceCgroup::remove`].

mod stats;

pub use stats::Pressure;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Resource controllers Solo uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
    /// v1 only: CPU usage accounting (v2 has `cpu.stat` in every cgroup).
    Cpuacct,
    /// v1 only: freeze before killing (v2 has `cgroup.kill`).
    Freezer,
}

impl Controller {
    pub const ALL: [Controller; 5] =
        [Controller::Memory, Controller::Cpu, Controller::Pids, Controller::Cpuacct, Controller::Freezer];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Cpuacct => "cpuacct",
            Controller::Freezer => "freezer",
        }
    }

    /// Controllers that only exist as v1 hierarchies (v2 folds them in).
    fn v1_only(self) -> bool {
        matches!(self, Controller::Cpuacct | Controller::Freezer)
    }
}

/// Which hierarchy serves a controller on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    V2,
    /// The v1 hierarchy; the path is the supervisor's own cgroup in it.
    V1(PathBuf),
    Missing,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {cause}")]
    Read { path: PathBuf, cause: io::Error },
    #[error("cannot write '{value}' to {path}: {cause}")]
    Write { path: PathBuf, value: String, cause: io::Error },
    #[error("cannot create cgroup {path}: {cause}")]
    Create { path: PathBuf, cause: io::Error },
    #[error("cannot remove cgroup {path}: {cause}")]
    Remove { path: PathBuf, cause: io::Error },
    #[error("the {controller} controller is not available on this host (neither the cgroup v2 tree nor a v1 hierarchy offers it), so {limit} cannot be enforced")]
    MissingController { controller: &'static str, limit: &'static str },
    #[error("no cgroup hierarchy is mounted: mount cgroup2 at /sys/fs/cgroup")]
    NoHierarchy,
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|cause| CgroupError::Read { path: path.to_owned(), cause })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|cause| CgroupError::Write { path: path.to_owned(), value: value.to_owned(), cause })
}

/// The cgroup layout of this host, as seen from the supervisor's own cgroup.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Our own cgroup directory in the v2 tree, if it is mounted.
    pub v2_own: Option<PathBuf>,
    /// Controllers enabled-able in our v2 cgroup (`cgroup.controllers`).
    pub v2_controllers: Vec<String>,
    memory: Backend,
    cpu: Backend,
    pids: Backend,
    cpuacct: Backend,
    freezer: Backend,
    /// Directory name for this supervisor beneath its own cgroup(s).
    pub tag: String,
}

/// Mount points of cgroup filesystems from `/proc/self/mountinfo`.
struct Mounts {
    v2: Option<(PathBuf, String)>,
    /// (mount point, mount root, controllers)
    v1: Vec<(PathBuf, String, Vec<String>)>,
}

fn parse_mountinfo(text: &str) -> Mounts {
    let mut m = Mounts { v2: None, v1: Vec::new() };
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let (root, point) = (pre[3].to_owned(), PathBuf::from(pre[4]));
        match post[0] {
            "cgroup2" if m.v2.is_none() => m.v2 = Some((point, root)),
            "cgroup" => {
                let ctrls = post[2].split(',').map(str::to_owned).collect();
                m.v1.push((point, root, ctrls));
            }
            _ => {}
        }
    }
    m
}

/// Our cgroup path per hierarchy from `/proc/self/cgroup`: v2 path, and
/// (controller list, path) for v1.
fn parse_proc_cgroup(text: &str) -> (Option<String>, Vec<(Vec<String>, String)>) {
    let mut v2 = None;
    let mut v1 = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            v2 = Some(path.to_owned());
        } else {
            v1.push((ctrls.split(',').map(str::to_owned).collect(), path.to_owned()));
        }
    }
    (v2, v1)
}

fn join_under(mount: &Path, mount_root: &str, own: &str) -> PathBuf {
    let rel = own.strip_prefix(mount_root).unwrap_or(own).trim_start_matches('/');
    if rel.is_empty() {
        mount.to_owned()
    } else {
        mount.join(rel)
    }
}

impl Layout {
    /// Reads the host's layout. `tag` names this supervisor's directory.
    pub fn detect(tag: &str) -> Result<Self, CgroupError> {
        let mi = read(Path::new("/proc/self/mountinfo"))?;
        let pc = read(Path::new("/proc/self/cgroup"))?;
        Self::from_texts(&mi, &pc, tag, |p| fs::read_to_string(p).ok())
    }

    fn from_texts(
        mountinfo: &str,
        proc_cgroup: &str,
        tag: &str,
        read_file: impl Fn(&Path) -> Option<String>,
    ) -> Result<Self, CgroupError> {
        let mounts = parse_mountinfo(mountinfo);
        let (own_v2, own_v1) = parse_proc_cgroup(proc_cgroup);
        let v2_own = match (&mounts.v2, own_v2) {
            (Some((point, root)), Some(own)) => Some(join_under(point, root, &own)),
            _ => None,
        };
        let v2_controllers: Vec<String> = v2_own
            .as_ref()
            .and_then(|d| read_file(&d.join("cgroup.controllers")))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let has_v2 = v2_own.is_some();
        let backend = |c: Controller| -> Backend {
            if !c.v1_only() && v2_controllers.iter().any(|x| x == c.name()) {
                return Backend::V2;
            }
            // With a v2 tree, usage (cpu.stat) and kill (cgroup.kill) come
            // from it: joining these v1 hierarchies would only add cost.
            if c.v1_only() && has_v2 {
                return Backend::Missing;
            }
            for (point, root, ctrls) in &mounts.v1 {
                if ctrls.iter().any(|x| x == c.name()) {
                    let own = own_v1
                        .iter()
                        .find(|(cs, _)| cs.iter().any(|x| x == c.name()))
                        .map(|(_, p)| p.as_str())
                        .unwrap_or("/");
                    return Backend::V1(join_under(point, root, own));
                }
            }
            Backend::Missing
        };
        if v2_own.is_none() && mounts.v1.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(Layout {
            memory: backend(Controller::Memory),
            cpu: backend(Controller::Cpu),
            pids: backend(Controller::Pids),
            cpuacct: backend(Controller::Cpuacct),
            freezer: backend(Controller::Freezer),
            v2_own,
            v2_controllers,
            tag: tag.to_owned(),
        })
    }

    pub fn backend(&self, c: Controller) -> &Backend {
        match c {
            Controller::Memory => &self.memory,
            Controller::Cpu => &self.cpu,
            Controller::Pids => &self.pids,
            Controller::Cpuacct => &self.cpuacct,
            Controller::Freezer => &self.freezer,
        }
    }

    /// "v2 (unified)", "v1", "hybrid" — a one-word summary for doctor/logs.
    pub fn mode(&self) -> &'static str {
        let v1 = Controller::ALL.iter().any(|c| matches!(self.backend(*c), Backend::V1(_)) && !c.v1_only());
        match (self.v2_own.is_some(), v1) {
            (true, false) => "unified (cgroup v2)",
            (true, true) => "hybrid (v2 tree + v1 controllers)",
            (false, _) => "legacy (cgroup v1)",
        }
    }

    fn v2_base(&self) -> Option<PathBuf> {
        self.v2_own.as_ref().map(|d| d.join(&self.tag))
    }

    /// v1 hierarchies we use, with the base directory for our instances.
    fn v1_bases(&self) -> Vec<(Controller, PathBuf)> {
        Controller::ALL
            .iter()
            .filter_map(|c| match self.backend(*c) {
                Backend::V1(own) => Some((*c, own.join(&self.tag))),
                _ => None,
            })
            .collect()
    }

    /// Creates `<own>/<tag>` in every hierarchy we use and, on v2, enables
    /// the controllers we need for the instances below it. When our own v2
    /// cgroup is not the root and has controllers to delegate, the
    /// supervisor first moves itself into `<own>/supervisor` (the "no
    /// internal processes" rule: a cgroup that distributes controllers to
    /// children may hold no process itself, as under systemd `Delegate=yes`).
    pub fn prepare(&self) -> Result<(), CgroupError> {
        if let (Some(own), Some(base)) = (&self.v2_own, self.v2_base()) {
            let wanted: Vec<&str> = [Controller::Memory, Controller::Cpu, Controller::Pids]
                .iter()
                .filter(|c| *self.backend(**c) == Backend::V2)
                .map(|c| c.name())
                .collect();
            if !wanted.is_empty() {
                let enable = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
                let subtree = own.join("cgroup.subtree_control");
                if write(&subtree, &enable).is_err() {
                    // Our cgroup holds processes: move into a leaf, then retry.
                    let leaf = own.join("supervisor");
                    mkdir(&leaf)?;
                    write(&leaf.join("cgroup.procs"), "0")?;
                    write(&subtree, &enable)?;
                }
                mkdir(&base)?;
                write(&base.join("cgroup.subtree_control"), &enable)?;
            } else {
                mkdir(&base)?;
            }
        }
        for (_, base) in self.v1_bases() {
            mkdir(&base)?;
        }
        Ok(())
    }

    /// The cgroup paths an instance named `name` would have (not created).
    pub fn instance(&self, name: &str) -> InstanceCgroup {
        InstanceCgroup {
            v2: self.v2_base().map(|b| b.join(name)),
            v1: self.v1_bases().into_iter().map(|(c, b)| (c, b.join(name))).collect(),
            memory_v2: self.memory == Backend::V2,
            cpu_v2: self.cpu == Backend::V2,
            pids_v2: self.pids == Backend::V2,
        }
    }

    /// Whether instances must migrate into v1 hierarchies after clone
    /// (hybrid or legacy hosts); pure v2 places them at clone time.
    pub fn needs_v1_migration(&self) -> bool {
        [Controller::Memory, Controller::Cpu, Controller::Pids]
            .iter()
            .any(|c| matches!(self.backend(*c), Backend::V1(_)))
    }

    /// Names of instance cgroups that exist under our base (leftovers of a
    /// previous run are found this way).
    pub fn existing(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let bases = self.v2_base().into_iter().chain(self.v1_bases().into_iter().map(|(_, b)| b));
        for base in bases {
            if let Ok(rd) = fs::read_dir(&base) {
                for e in rd.flatten() {
                    if e.path().is_dir() {
                        if let Some(n) = e.file_name().to_str() {
                            if n != "supervisor" && !names.iter().any(|x| x == n) {
                                names.push(n.to_owned());
                            }
                        }
                    }
                }
            }
        }
        names
    }

    /// Removes `<own>/<tag>` everywhere (best effort; fails if not empty).
    pub fn remove_base(&self) {
        for base in self.v2_base().into_iter().chain(self.v1_bases().into_iter().map(|(_, b)| b)) {
            let _ = fs::remove_dir(base);
        }
    }
}

fn mkdir(p: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(cause) => Err(CgroupError::Create { path: p.to_owned(), cause }),
    }
}

/// How `memory_bytes` is enforced (the service's `limit_exceeded_action`
/// for memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMode {
    /// `memory.max` (v1 `limit_in_bytes`) = the limit: the kernel
    /// OOM-kills at it.
    Kill,
    /// v2: `memory.high` = the limit (the kernel reclaims and slows the
    /// cgroup's allocations above it), `memory.max` = [`MEMORY_CEILING`]×.
    /// v1 (no `memory.high`): `limit_in_bytes` = the limit with
    /// `oom_kill_disable`: at the limit the kernel makes the tasks wait
    /// instead of killing them.
    Throttle,
    /// `memory.max` = [`MEMORY_CEILING`]× the limit; crossing the limit
    /// itself is reported by the monitor, not enforced.
    Warn,
}

/// The hard ceiling of `throttle` and `warn`, as a multiple of the limit:
/// a service over its limit still cannot take the host.
pub const MEMORY_CEILING: u64 = 2;

/// Limits as cgroup values.
#[derive(Debug, Clone, Copy)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub memory_high_bytes: Option<u64>,
    pub memory_mode: MemoryMode,
    pub cpu_weight: u32,
    pub cpu_max_millicores: Option<u32>,
    pub max_pids: u32,
}

/// CFS period used for `cpu_max_millicores` (100 ms, the kernel default).
const CPU_PERIOD_US: u64 = 100_000;

/// v2 `cpu.weight` (1..10000, default 100) → v1 `cpu.shares` (2..262144,
/// default 1024), the same mapping systemd uses.
pub fn weight_to_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).clamp(2, 262_144)
}

/// Resource usage of one instance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub memory_bytes: u64,
    pub cpu_usage_usec: u64,
    pub pids: u64,
}

/// One instance's cgroup in every hierarchy we use.
#[derive(Debug, Clone)]
pub struct InstanceCgroup {
    pub v2: Option<PathBuf>,
    pub v1: Vec<(Controller, PathBuf)>,
    memory_v2: bool,
    cpu_v2: bool,
    pids_v2: bool,
}

impl InstanceCgroup {
    fn v1_dir(&self, c: Controller) -> Option<&Path> {
        self.v1.iter().find(|(x, _)| *x == c).map(|(_, p)| p.as_path())
    }

    /// Human/API form: every directory, `;`-separated.
    pub fn describe(&self) -> String {
        self.v2
            .iter()
            .map(|p| p.display().to_string())
            .chain(self.v1.iter().map(|(_, p)| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// `tasks` files of the v1 hierarchies: the launched child writes its
    /// own tid into each before exec (v2 placement is done by clone3).
    ///
    /// `tasks`, not `cgroup.procs`: moving a whole thread group takes the
    /// kernel's global threadgroup rwsem for write, which waits for an RCU
    /// grace period (~15 ms per spawn measured here); moving one thread
    /// does not. The child is single-threaded, so one thread is the
    /// whole process.
    pub fn v1_tasks_files(&self) -> Vec<PathBuf> {
        self.v1.iter().map(|(_, p)| p.join("tasks")).collect()
    }

    /// Creates the directories and writes the limits. A limit whose
    /// controller is missing fails with [`CgroupError::MissingController`].
    pub fn create(&self, l: &CgroupLimits) -> Result<(), CgroupError> {
        if let Some(v2) = &self.v2 {
            mkdir(v2)?;
        }
        for (_, p) in &self.v1 {
            mkdir(p)?;
        }
        let r = self.write_limits(l);
        if r.is_err() {
            self.remove();
        }
        r
    }

    fn write_limits(&self, l: &CgroupLimits) -> Result<(), CgroupError> {
        // Memory: a hard limit the kernel enforces with the OOM killer (at
        // the limit, or at the ceiling for throttle and warn).
        let ceiling = l.memory_bytes.saturating_mul(MEMORY_CEILING);
        if self.memory_v2 {
            let d = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
            let (max, high) = match l.memory_mode {
                MemoryMode::Kill => (l.memory_bytes, l.memory_high_bytes),
                MemoryMode::Throttle => (ceiling, Some(l.memory_bytes)),
                MemoryMode::Warn => (ceiling, l.memory_high_bytes),
            };
            write(&d.join("memory.max"), &max.to_string())?;
            if let Some(h) = high {
                write(&d.join("memory.high"), &h.to_string())?;
            }
            // No swap escape hatch for a bounded service.
            let _ = write(&d.join("memory.swap.max"), "0");
        } else if let Some(d) = self.v1_dir(Controller::Memory) {
            let max = if l.memory_mode == MemoryMode::Warn { ceiling } else { l.memory_bytes };
            write(&d.join("memory.limit_in_bytes"), &max.to_string())?;
            // memory.high has no v1 equivalent; soft_limit is the nearest hint.
            if let Some(h) = l.memory_high_bytes {
                write(&d.join("memory.soft_limit_in_bytes"), &h.to_string())?;
            }
            // Throttle: wait at the limit instead of being killed (the
            // cgroup is reused across restarts: written either way).
            let pause = if l.memory_mode == MemoryMode::Throttle { "1" } else { "0" };
            write(&d.join("memory.oom_control"), pause)?;
        } else {
            return Err(CgroupError::MissingController { controller: "memory", limit: "memory_bytes" });
        }
        // CPU: weight always; quota when asked.
        let quota = l.cpu_max_millicores.map(|m| u64::from(m) * CPU_PERIOD_US / 1000);
        if self.cpu_v2 {
            let d = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
            write(&d.join("cpu.weight"), &l.cpu_weight.to_string())?;
            if let Some(q) = quota {
                write(&d.join("cpu.max"), &format!("{q} {CPU_PERIOD_US}"))?;
            }
        } else if let Some(d) = self.v1_dir(Controller::Cpu) {
            write(&d.join("cpu.shares"), &weight_to_shares(l.cpu_weight).to_string())?;
            if let Some(q) = quota {
                write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
            }
        } else {
            return Err(CgroupError::MissingController { controller: "cpu", limit: "cpu_weight" });
        }
        // Pids: the fork-bomb stop.
        if self.pids_v2 {
            let d = self.v2.as_ref().ok_or(CgroupError::NoHierarchy)?;
            write(&d.join("pids.max"), &l.max_pids.to_string())?;
        } else if let Some(d) = self.v1_dir(Controller::Pids) {
            write(&d.join("pids.max"), &l.max_pids.to_string())?;
        } else {
            return Err(CgroupError::MissingController { controller: "pids", limit: "max_pids" });
        }
        Ok(())
    }

    /// Pids of every process in the instance (from the v2 tree when there
    /// is one, else from the first v1 hierarchy).
    pub fn pids(&self) -> Vec<i32> {
        let dir = self.v2.as_deref().or(self.v1.first().map(|(_, p)| p.as_path()));
        dir.and_then(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs every process in the cgroup: `cgroup.kill` on v2; on v1,
    /// freeze (so nothing can fork while we kill), kill each pid, thaw.
    pub fn kill_all(&self) {
        if let Some(v2) = &self.v2 {
            if fs::write(v2.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        let freezer = self.v1_dir(Controller::Freezer).map(|d| d.join("freezer.state"));
        if let Some(f) = &freezer {
            let _ = fs::write(f, "FROZEN");
            let deadline = Instant::now() + Duration::from_millis(500);
            while Instant::now() < deadline {
                match fs::read_to_string(f) {
                    Ok(s) if s.trim() == "FROZEN" => break,
                    Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                    Err(_) => break,
                }
            }
        }
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = super::sys::kill(pid, libc::SIGKILL);
            }
            if freezer.is_some() {
                break;
            }
        }
        if let Some(f) = &freezer {
            let _ = fs::write(f, "THAWED");
        }
    }

    /// Freezes (`true`) or thaws every process of the instance: the v2
    /// `cgroup.freeze`, else the v1 freezer, else SIGSTOP/SIGCONT to each
    /// pid. Freezing waits (at most 1 s) until the kernel reports the
    /// cgroup frozen: a frozen process takes no connection, yet keeps
    /// everything it holds (a blue-green rollback thaws it at once).
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(1);
        if let Some(v2) = &self.v2 {
            let f = v2.join("cgroup.freeze");
            if f.exists() {
                write(&f, if frozen { "1" } else { "0" })?;
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                while Instant::now() < deadline {
                    match fs::read_to_string(v2.join("cgroup.events")) {
                        Ok(s) if s.lines().any(|l| l == want) || !s.lines().any(|l| l == "populated 1") => {
                            return Ok(())
                        }
                        Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                        Err(cause) => return Err(CgroupError::Read { path: v2.join("cgroup.events"), cause }),
                    }
                }
                return Ok(());
            }
        }
        if let Some(d) = self.v1_dir(Controller::Freezer) {
            let f = d.join("freezer.state");
            write(&f, if frozen { "FROZEN" } else { "THAWED" })?;
            let want = if frozen { "FROZEN" } else { "THAWED" };
            while Instant::now() < deadline {
                match fs::read_to_string(&f) {
                    Ok(s) if s.trim() == want => return Ok(()),
                    Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                    Err(cause) => return Err(CgroupError::Read { path: f, cause }),
                }
            }
            return Ok(());
        }
        for pid in self.pids() {
            let _ = super::sys::kill(pid, if frozen { libc::SIGSTOP } else { libc::SIGCONT });
        }
        Ok(())
    }

    /// Whether any process is left in the instance.
    pub fn populated(&self) -> bool {
        if let Some(v2) = &self.v2 {
            if let Ok(s) = fs::read_to_string(v2.join("cgroup.events")) {
                return s.lines().any(|l| l == "populated 1");
            }
        }
        !self.pids().is_empty()
    }

    /// Removes every directory, waiting briefly for dying tasks to leave.
    /// Returns the first error if a directory could not be removed in time.
    pub fn remove(&self) -> Option<CgroupError> {
        let dirs = self.v2.iter().chain(self.v1.iter().map(|(_, p)| p));
        let mut first = None;
        for d in dirs {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(cause) => {
                        first.get_or_insert(CgroupError::Remove { path: d.clone(), cause });
                        break;
                    }
                }
            }
        }
        first
    }

    /// Current usage (missing files read as 0).
    pub fn usage(&self) -> Usage {
        let num = |p: PathBuf| fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
        let memory_bytes = if self.memory_v2 {
            self.v2.as_ref().map(|d| num(d.join("memory.current"))).unwrap_or(0)
        } else {
            self.v1_dir(Controller::Memory).map(|d| num(d.join("memory.usage_in_bytes"))).unwrap_or(0)
        };
        let pids = if self.pids_v2 {
            self.v2.as_ref().map(|d| num(d.join("pids.current"))).unwrap_or(0)
        } else {
            self.v1_dir(Controller::Pids).map(|d| num(d.join("pids.current"))).unwrap_or(0)
        };
        let cpu_usage_usec = match (&self.v2, self.v1_dir(Controller::Cpuacct)) {
            // cpu.stat's usage_usec exists in every v2 cgroup, controller or not.
            (Some(d), _) => {
                fs::read_to_string(d.join("cpu.stat")).ok().and_then(|s| stat_field(&s, "usage_usec")).unwrap_or(0)
            }
            (None, Some(d)) => num(d.join("cpuacct.usage")) / 1000,
            (None, None) => 0,
        };
        Usage { memory_bytes, cpu_usage_usec, pids }
    }

    /// How many processes the kernel OOM-killed in this cgroup so far.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.memory_v2 {
            self.v2.as_ref().map(|d| d.join("memory.events"))
        } else {
            self.v1_dir(Controller::Memory).map(|d| d.join("memory.oom_control"))
        };
        file.and_then(|f| fs::read_to_string(f).ok()).and_then(|s| stat_field(&s, "oom_kill")).unwrap_or(0)
    }
}

/// `key value` lines (cpu.stat, memory.events, memory.oom_control).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs rw
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
36 30 0:32 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
";
    const HYBRID_CGROUP: &str = "\
6:freezer:/
5:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn hybrid_uses_v1_for_missing_v2_controllers() {
        let l = Layout::from_texts(HYBRID_MOUNTINFO, HYBRID_CGROUP, "solo-t", |p| {
            (p == Path::new("/sys/fs/cgroup/unified/cgroup.controllers")).then(|| "hugetlb\n".to_owned())
        })
        .expect("layout");
        assert_eq!(l.v2_own.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(*l.backend(Controller::Memory), Backend::V1("/sys/fs/cgroup/memory/process_api/abc".into()));
        assert_eq!(*l.backend(Controller::Pids), Backend::V1("/sys/fs/cgroup/pids".into()));
        // The v2 tree gives usage and kill: no cpuacct or freezer joins.
        assert_eq!(*l.backend(Controller::Cpuacct), Backend::Missing);
        assert_eq!(*l.backend(Controller::Freezer), Backend::Missing);
        assert!(l.needs_v1_migration());
        let i = l.instance("web.0");
        assert_eq!(i.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified/solo-t/web.0")));
        assert!(i
            .v1_tasks_files()
            .contains(&PathBuf::from("/sys/fs/cgroup/memory/process_api/abc/solo-t/web.0/tasks")));
        assert_eq!(l.mode(), "hybrid (v2 tree + v1 controllers)");
    }

    #[test]
    fn pure_v2_uses_only_the_unified_tree() {
        let mi = "31 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let pc = "0::/system.slice/solo.service\n";
        let l = Layout::from_texts(mi, pc, "solo", |_| Some("cpuset cpu io memory pids\n".into())).expect("layout");
        assert_eq!(l.v2_own.as_deref(), Some(Path::new("/sys/fs/cgroup/system.slice/solo.service")));
        for c in [Controller::Memory, Controller::Cpu, Controller::Pids] {
            assert_eq!(*l.backend(c), Backend::V2);
        }
        assert_eq!(*l.backend(Controller::Freezer), Backend::Missing);
        assert!(l.instance("a.0").v1.is_empty());
        assert_eq!(l.mode(), "unified (cgroup v2)");
        assert!(!l.needs_v1_migration());
    }

    #[test]
    fn shares_mapping() {
        assert_eq!(weight_to_shares(100), 1024);
        assert_eq!(weight_to_shares(1), 10);
        assert_eq!(weight_to_shares(10_000), 102_400);
    }

    #[test]
    fn stat_fields() {
        assert_eq!(stat_field("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), Some(3));
        assert_eq!(stat_field("usage_usec 42\nuser_usec 1\n", "usage_usec"), Some(42));
    }
}
