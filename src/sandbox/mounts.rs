//! The filesystem view: a fresh tmpfs root holding only what the profile
//! lists, with the host's tree detached (`pivot_root`).
//!
//! The view has two parts. The shared part (root, read-only system paths,
//! `/dev`) is built once per profile by [`Views`] in the launcher, as a
//! mount namespace of its own. Each instance [`enter`]s a private copy of
//! it and [`apply`]s its own operations: the artifact, the data dir,
//! `/tmp`, `/dev/shm`, `/proc`. [`Views::prepare`] runs in the launcher: it
//! looks at the host (which paths exist, which are symlinks) and turns the
//! [`FsView`] into flat lists of [`Op`]s with every path already a
//! `CString` and every host tree the instance needs already cloned
//! (`open_tree`). [`enter`] and [`apply`] run in the child and only make raw
//! syscalls. Paths in ops are relative to the view's root.

use super::plan::{path_within, Bind, FsView};
use super::sys::{self, Errno, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `/proc` files that reveal the host (kernel memory, keys, timers,
/// scheduler internals); each is hidden behind `/dev/null`.
pub const PROC_MASKED_FILES: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/key-users",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/sched_debug",
    "proc/kallsyms",
    "proc/kmsg",
    "proc/sysrq-trigger",
];
/// `/proc` directories describing host hardware; each is covered by an
/// empty read-only tmpfs.
pub const PROC_MASKED_DIRS: &[&str] = &["proc/acpi", "proc/scsi", "proc/asound", "proc/driver"];
/// `/proc` trees that stay readable but not writable.
pub const PROC_READ_ONLY: &[&str] = &["proc/sys", "proc/irq", "proc/bus", "proc/fs"];

/// One mount-namespace operation.
#[derive(Debug)]
pub enum Op {
    Mkdir(CString),
    Touch(CString),
    Symlink {
        target: CString,
        path: CString,
    },
    Bind {
        source: CString,
        target: CString,
    },
    /// Attaches a detached mount tree (`open_tree`) at `target`.
    Attach {
        tree: OwnedFd,
        target: CString,
    },
    Tmpfs {
        target: CString,
        options: CString,
        flags: libc::c_ulong,
    },
    Proc(CString),
    /// Writes a value to a file (a sysctl of the new pid namespace).
    Write {
        path: CString,
        value: &'static [u8],
    },
    SetAttr {
        target: CString,
        attrs: u64,
        recursive: bool,
    },
}

/// Operations in order, each with whether it may fail (optional).
pub type Ops = Vec<(Op, bool)>;

/// What the child runs, plus what the launcher found missing on the host.
#[derive(Debug)]
pub struct Prepared {
    /// The profile's view, a mount namespace the launcher built once
    /// ([`Views`]); the child enters a private copy of it.
    pub view: RawFd,
    /// The instance's own mounts, made in that copy (paths relative to its
    /// root).
    pub ops: Vec<(Op, bool)>,
    /// Host paths the profile lists that do not exist here (skipped).
    pub missing: Vec<String>,
    /// `vm.memfd_noexec = 2`: `None` when the view does not ask for it,
    /// else whether this kernel has the knob (Linux 6.3+).
    pub memfd_noexec: Option<bool>,
}

impl Prepared {
    /// The highest descriptor number the child uses here: the view and
    /// the granted trees it attaches.
    pub fn highest_fd(&self) -> RawFd {
        let trees = self.ops.iter().filter_map(|(op, _)| match op {
            Op::Attach { tree, .. } => Some(tree.as_raw_fd()),
            _ => None,
        });
        trees.fold(self.view, RawFd::max)
    }
}

/// Where the kernel's per-pid-namespace `memfd_noexec` sysctl lives.
pub const MEMFD_NOEXEC_SYSCTL: &str = "/proc/sys/vm/memfd_noexec";

/// Whether this kernel has `vm.memfd_noexec` (Linux 6.3+). Looked up once:
/// the kernel does not change under a running process.
pub fn kernel_has_memfd_noexec() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::path::Path::new(MEMFD_NOEXEC_SYSCTL).exists())
}

fn c(s: &str) -> Result<CString, Errno> {
    sys::cstring(s)
}

/// Relative form of an absolute path inside the view.
fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Pushes `Mkdir` for each missing ancestor directory of `path` (relative).
fn parents(path: &str, ops: &mut Vec<(Op, bool)>, made: &mut Vec<String>) -> Result<(), Errno> {
    let mut acc = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        if !made.contains(&acc) {
            made.push(acc.clone());
            // Optional: an ancestor may already exist.
            ops.push((Op::Mkdir(c(&acc)?), true));
        }
    }
    Ok(())
}

/// Mount flags of the system paths: read-only, no setuid, no devices.
const RO: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
/// Mount flags of the service's own writable places: nothing executable.
const PRIVATE_RW: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;

/// The part of a view every instance of a profile shares: the root, the
/// profile's read-only system paths, `/dev`, and empty mount points for the
/// instance's own mounts. Built once per profile, in a mount namespace of
/// its own whose root it already is (`pivot_root` done), and kept by the
/// launcher as that namespace's descriptor.
///
/// Building it per spawn cost 0.9-1.1 ms (92 mount operations, and a
/// `pivot_root` that scans every thread on the host: 60 us idle, 378 us
/// with 1,000 services; docs/benchmarks.md). Entering a copy costs one
/// `setns` and one `unshare(CLONE_NEWNS)`.
fn shared_ops(v: &FsView) -> Result<(Ops, Vec<String>), Errno> {
    let mut ops: Ops = Vec::with_capacity(64);
    let mut made: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    // Read-only system paths, at the same place as on the host. A symlink
    // (/bin -> usr/bin on merged-/usr systems) is recreated as a symlink.
    for path in &v.read_only {
        let r = rel(path);
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(_) => {
                missing.push(path.clone());
                continue;
            }
        };
        parents(r, &mut ops, &mut made)?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
            let target = target.to_str().ok_or(Errno(libc::EINVAL))?;
            ops.push((Op::Symlink { target: c(target)?, path: c(r)? }, false));
            continue;
        }
        if meta.is_dir() {
            made.push(r.to_owned());
            ops.push((Op::Mkdir(c(r)?), true));
        } else {
            ops.push((Op::Touch(c(r)?), false));
        }
        ops.push((Op::Bind { source: c(path)?, target: c(r)? }, false));
        ops.push((Op::SetAttr { target: c(r)?, attrs: RO, recursive: true }, false));
    }
    // Mount points of the instance's own mounts (the root is read-only and
    // shared: nothing can be created in it per instance).
    // (A profile cannot list paths beneath them; `made` covers parents.)
    let mut points = vec!["tmp", "proc"];
    if !v.app.is_empty() {
        points.push("app");
    }
    if v.data.is_some() {
        points.push("data");
    }
    for d in points {
        if !made.iter().any(|m| m == d) {
            ops.push((Op::Mkdir(c(d)?), false));
        }
    }
    // Mount points of granted directories ([`bind_points`]); the view's
    // key names them, so only instances with the same grants share them.
    for at in bind_points(v, &missing) {
        let r = rel(&at);
        parents(r, &mut ops, &mut made)?;
        if !made.iter().any(|m| m == r) {
            made.push(r.to_owned());
            ops.push((Op::Mkdir(c(r)?), false));
        }
    }
    // A minimal /dev: the listed character devices bound from the host,
    // the usual /proc/self/fd links, and nothing else.
    ops.push((Op::Mkdir(c("dev")?), false));
    ops.push((
        Op::Tmpfs {
            target: c("dev")?,
            options: c("mode=0755,size=64k,nr_inodes=64")?,
            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        },
        false,
    ));
    for d in &v.devices {
        let t = format!("dev/{d}");
        ops.push((Op::Touch(c(&t)?), false));
        ops.push((Op::Bind { source: c(&format!("/dev/{d}"))?, target: c(&t)? }, false));
        ops.push((
            Op::SetAttr { target: c(&t)?, attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, recursive: false },
            false,
        ));
    }
    for (target, path) in [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ] {
        ops.push((Op::Symlink { target: c(target)?, path: c(path)? }, false));
    }
    if v.shm {
        ops.push((Op::Mkdir(c("dev/shm")?), false));
    }
    ops.push((
        Op::SetAttr {
            target: c("dev")?,
            attrs: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            recursive: false,
        },
        false,
    ));
    Ok((ops, missing))
}

/// The view paths of granted directories that need a mount point made in
/// the shared view: every bind not beneath one of the profile's read-only
/// host paths that this host has (beneath one, the host's own directory,
/// bound read-only, is the mount point). Sorted, without duplicates.
///
/// Why in the shared view: its root is one tmpfs shared by every copy, so
/// a directory made in an instance's copy would appear in every other
/// instance's (and its root is read-only anyway). The shared view is keyed
/// by the granted paths ([`view_key`]), so an instance only ever sees the
/// mount points of its own grants.
fn bind_points(v: &FsView, missing: &[String]) -> Vec<String> {
    let mut points: Vec<String> = v
        .binds
        .iter()
        .filter(|b| !v.read_only.iter().any(|r| path_within(&b.at, r) && !missing.contains(r)))
        .map(|b| b.at.clone())
        .collect();
    points.sort_unstable();
    points.dedup();
    points
}

/// A granted directory opened in the launcher: its detached mount tree and
/// where it goes in the view.
#[derive(Debug)]
pub struct Granted {
    tree: OwnedFd,
    /// Relative to the view's root.
    at: CString,
    writable: bool,
    depth: usize,
}

/// `PROC_SUPER_MAGIC` and `SYSFS_MAGIC` (`<linux/magic.h>`).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;

/// Opens each granted host directory (following symlinks, as the daemon
/// checked it) and clones its mount (`open_tree`, not recursive), ready to
/// attach in the child. Refused with `EINVAL` when what was opened is
/// really `/`, under `/proc`, `/sys` or `/dev`, or on a proc or sysfs
/// filesystem (a symlink can point anywhere; the check is on the opened
/// descriptor, so nothing can change between check and clone). Runs in the
/// launcher, before the view is prepared; outer directories come first.
pub fn open_binds(binds: &[Bind]) -> Result<Vec<Granted>, Errno> {
    let mut out = Vec::with_capacity(binds.len());
    for b in binds {
        let dir = sys::open(&c(&b.host)?, libc::O_PATH | libc::O_DIRECTORY)?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let real = real.to_str().ok_or(Errno(libc::EINVAL))?;
        let magic = sys::fs_type(dir.as_raw_fd())?;
        if real == "/"
            || ["/proc", "/sys", "/dev"].iter().any(|d| path_within(real, d))
            || magic == PROC_SUPER_MAGIC
            || magic == SYSFS_MAGIC
        {
            return Err(Errno(libc::EINVAL));
        }
        out.push(Granted {
            tree: sys::open_tree_clone_fd(dir.as_raw_fd())?,
            at: c(rel(&b.at))?,
            writable: b.writable,
            depth: b.at.matches('/').count(),
        });
    }
    // A directory granted inside another granted one is attached on top of it.
    out.sort_by_key(|g| g.depth);
    Ok(out)
}

/// The instance's own mounts, made in its copy of the shared view: the
/// artifact, the data dir, granted directories, `/tmp`, `/dev/shm`, and
/// `/proc` of its pid namespace. Host trees (artifact, data, grants) are
/// cloned in the launcher's namespace and attached by descriptor in the
/// child's.
fn instance_ops(v: &FsView, granted: Vec<Granted>) -> Result<(Ops, Option<bool>), Errno> {
    let mut ops: Ops = Vec::with_capacity(48);
    // The artifact, read-only, on a small tmpfs of the instance's own
    // (the shared root cannot hold per-instance mount points).
    if !v.app.is_empty() {
        ops.push((
            Op::Tmpfs {
                target: c("app")?,
                options: c("mode=0755,size=16k,nr_inodes=16")?,
                flags: libc::MS_NOSUID | libc::MS_NODEV,
            },
            false,
        ));
        for (name, host) in &v.app {
            let t = format!("app/{name}");
            ops.push((Op::Touch(c(&t)?), false));
            ops.push((Op::Attach { tree: sys::open_tree_clone(&c(host)?)?, target: c(&t)? }, false));
            ops.push((Op::SetAttr { target: c(&t)?, attrs: RO, recursive: false }, false));
        }
        ops.push((Op::SetAttr { target: c("app")?, attrs: RO, recursive: false }, false));
    }
    // The service's persistent data, read-write, nothing executable.
    if let Some(data) = &v.data {
        ops.push((Op::Attach { tree: sys::open_tree_clone(&c(data)?)?, target: c("data")? }, false));
        ops.push((Op::SetAttr { target: c("data")?, attrs: PRIVATE_RW, recursive: false }, false));
    }
    // Granted directories: read-only unless writable, never executable,
    // no setuid, no devices (the clone is one mount: flags on it suffice).
    for g in granted {
        let attrs = if g.writable { PRIVATE_RW } else { RO | MOUNT_ATTR_NOEXEC };
        ops.push((Op::Attach { tree: g.tree, target: g.at.clone() }, false));
        ops.push((Op::SetAttr { target: g.at, attrs, recursive: false }, false));
    }
    // A private /tmp (and /dev/shm) with a size cap.
    let tmp_opts = format!("mode=1777,size={}", v.tmp_size.max(4096));
    let mut dirs = vec!["tmp"];
    if v.shm {
        dirs.push("dev/shm");
    }
    for d in dirs {
        ops.push((
            Op::Tmpfs {
                target: c(d)?,
                options: c(&tmp_opts)?,
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            },
            false,
        ));
    }
    // /proc of the service's own pid namespace, with host-revealing files
    // masked and the kernel tunables read-only.
    ops.push((Op::Proc(c("proc")?), false));
    // vm.memfd_noexec = 2 in the service's pid namespace (Linux 6.3+; it
    // cannot be lowered inside): no executable memfd, so code written to
    // memory cannot be exec'd past noexec mounts and Landlock, which do
    // not see memfd files. Older kernels lack the knob: the caller refuses
    // or records the degrade (`memfd_noexec` below), never silently.
    let memfd_noexec = v.memfd_noexec.then(kernel_has_memfd_noexec);
    if memfd_noexec == Some(true) {
        ops.push((Op::Write { path: c(rel(MEMFD_NOEXEC_SYSCTL))?, value: b"2" }, false));
    }
    for f in PROC_MASKED_FILES {
        // Optional: not every kernel has every file.
        ops.push((Op::Bind { source: c("dev/null")?, target: c(f)? }, true));
    }
    for d in PROC_MASKED_DIRS {
        ops.push((
            Op::Tmpfs {
                target: c(d)?,
                options: c("size=0,nr_inodes=1")?,
                flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            },
            true,
        ));
    }
    for d in PROC_READ_ONLY {
        ops.push((Op::Bind { source: c(d)?, target: c(d)? }, true));
        ops.push((Op::SetAttr { target: c(d)?, attrs: RO | MOUNT_ATTR_NOEXEC, recursive: true }, true));
    }
    Ok((ops, memfd_noexec))
}

/// The launcher's shared views, one per distinct shared part (in practice
/// one per profile), each a mount namespace kept open by descriptor.
///
/// A view is rebuilt when a host path it binds was replaced (another
/// inode, e.g. `/etc/resolv.conf` rewritten by rename): a bind mount pins
/// the inode it was made on, so the old view would keep showing the old
/// file. The check is one `lstat` per read-only path per spawn.
///
/// Views are keyed by profile and by the view paths of granted
/// directories, so a service with `dir:` grants has a view of its own; at
/// most [`MAX_VIEWS`] are kept, the least recently used dropped first
/// (instances already started keep their copies).
#[derive(Debug, Default)]
pub struct Views {
    views: HashMap<String, View>,
    /// Spawns prepared so far: the clock of `View::used`.
    clock: u64,
}

/// Most shared views the launcher keeps.
pub const MAX_VIEWS: usize = 64;

#[derive(Debug)]
struct View {
    /// (device, inode, ctime) of each read-only host path, in order.
    signature: Vec<(u64, u64, i64, i64)>,
    ns: OwnedFd,
    missing: Vec<String>,
    used: u64,
}

/// What identifies a shared view: everything [`shared_ops`] reads.
fn view_key(v: &FsView) -> String {
    let mut binds: Vec<&str> = v.binds.iter().map(|b| b.at.as_str()).collect();
    binds.sort_unstable();
    binds.dedup();
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        v.root,
        v.read_only.join("\u{1}"),
        v.devices.join("\u{1}"),
        v.shm,
        v.data.is_some(),
        v.app.is_empty(),
        binds.join("\u{1}")
    )
}

fn signature(v: &FsView) -> Vec<(u64, u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    v.read_only
        .iter()
        .map(|p| match std::fs::symlink_metadata(p) {
            Ok(m) => (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()),
            Err(_) => (0, 0, 0, 0),
        })
        .collect()
}

impl Views {
    /// The number of views held.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Turns the view into what the child needs: the shared view's
    /// namespace (built now if it is not held or is stale) and the
    /// instance's own operations, with the granted directories
    /// [`open_binds`] opened. Runs in the launcher.
    pub fn prepare(&mut self, v: &FsView, granted: Vec<Granted>) -> Result<Prepared, Errno> {
        let key = view_key(v);
        let sig = signature(v);
        self.clock += 1;
        let fresh = self.views.get(&key).is_some_and(|view| view.signature == sig);
        if !fresh {
            let (ops, missing) = shared_ops(v)?;
            let ns = build(&c(&v.root)?, &ops)?;
            if !self.views.contains_key(&key) && self.views.len() >= MAX_VIEWS {
                let oldest = self.views.iter().min_by_key(|(_, view)| view.used).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.views.remove(&k);
                }
            }
            self.views.insert(key.clone(), View { signature: sig, ns, missing, used: 0 });
        }
        let view = self.views.get_mut(&key).ok_or(Errno(libc::ENOENT))?;
        view.used = self.clock;
        let (ops, memfd_noexec) = instance_ops(v, granted)?;
        Ok(Prepared { view: view.ns.as_raw_fd(), ops, missing: view.missing.clone(), memfd_noexec })
    }
}

/// Builds a shared view: a child in a new mount namespace makes the ops on
/// a fresh tmpfs, `pivot_root`s into it and makes it read-only; the
/// launcher keeps that namespace's descriptor and lets the child exit.
fn build(root: &CStr, ops: &[(Op, bool)]) -> Result<OwnedFd, Errno> {
    let (rep_r, rep_w) = sys::pipe(libc::O_CLOEXEC)?;
    let (hold_r, hold_w) = sys::pipe(libc::O_CLOEXEC)?;
    match sys::clone3(libc::CLONE_NEWNS as u64, None)? {
        sys::Forked::Child => {
            drop((rep_r, hold_w));
            let errno = match make_view(root, ops) {
                Ok(()) => 0,
                Err(e) => e.0,
            };
            let _ = sys::write_all(rep_w.as_raw_fd(), &errno.to_ne_bytes());
            // Stay until the launcher has the namespace (its end closes).
            let mut b = [0u8; 1];
            let _ = sys::read_full(hold_r.as_raw_fd(), &mut b);
            sys::exit_now(0)
        }
        sys::Forked::Parent { pid, pidfd } => {
            drop((rep_w, hold_r));
            let mut b = [0u8; 4];
            let n = sys::read_full(rep_r.as_raw_fd(), &mut b).unwrap_or(0);
            let errno = if n == 4 { i32::from_ne_bytes(b) } else { libc::ECHILD };
            let ns = if errno == 0 {
                sys::open(&c(&format!("/proc/{pid}/ns/mnt"))?, libc::O_RDONLY | libc::O_CLOEXEC)
            } else {
                Err(Errno(errno))
            };
            drop(hold_w);
            if ns.is_err() {
                let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
            }
            let _ = sys::waitpid_blocking(pid);
            ns
        }
    }
}

/// Runs in the builder child, in its new mount namespace.
fn make_view(root: &CStr, ops: &[(Op, bool)]) -> Result<(), Errno> {
    // The daemon's umask (077) would make the view's directories
    // untraversable for the service.
    sys::set_umask(0o022);
    // Nothing we mount may propagate back to the host.
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    sys::mount(
        Some(c"solo"),
        root,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755,size=1m,nr_inodes=4096"),
    )?;
    sys::chdir(root)?;
    run_all(ops)?;
    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // detach then removes it (see pivot_root(2), "new_root and put_old may
    // be the same directory").
    sys::pivot_root(c".", c".")?;
    sys::umount_detach(c".")?;
    sys::chdir(c"/")?;
    sys::mount_setattr(c"/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false)
}

/// Enters a private copy of the shared view: `setns` into its namespace
/// (root and working directory become the view's root), then
/// `unshare(CLONE_NEWNS)` so that what this instance mounts is its own.
/// Runs in the child.
pub fn enter(p: &Prepared) -> Result<(), Errno> {
    sys::setns(p.view, libc::CLONE_NEWNS)?;
    sys::unshare(libc::CLONE_NEWNS)?;
    sys::chdir(c"/")
}

/// Makes the instance's own mounts. Runs in the child, after [`enter`];
/// returns the errno of the first failing mandatory operation.
pub fn apply(p: &Prepared) -> Result<(), Errno> {
    sys::set_umask(0o022);
    run_all(&p.ops)
}

fn run_all(ops: &[(Op, bool)]) -> Result<(), Errno> {
    for (op, optional) in ops {
        match (run(op), optional) {
            (Ok(()), _) => {}
            (Err(_), true) => {}
            (Err(e), false) => return Err(e),
        }
    }
    Ok(())
}

fn run(op: &Op) -> Result<(), Errno> {
    match op {
        Op::Mkdir(p) => sys::mkdir(p, 0o755),
        Op::Touch(p) => sys::touch(p),
        Op::Symlink { target, path } => sys::symlink(target, path),
        Op::Bind { source, target } => sys::mount(Some(source), target, None, libc::MS_BIND | libc::MS_REC, None),
        Op::Attach { tree, target } => sys::move_mount(tree.as_raw_fd(), target),
        Op::Tmpfs { target, options, flags } => {
            sys::mount(Some(c"tmpfs"), target, Some(c"tmpfs"), *flags, Some(options))
        }
        Op::Proc(t) => {
            sys::mount(Some(c"proc"), t, Some(c"proc"), libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
        }
        Op::Write { path, value } => sys::write_file(path, value),
        Op::SetAttr { target, attrs, recursive } => sys::mount_setattr(target, *attrs, *recursive),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> FsView {
        FsView {
            root: "/run/solo/root".into(),
            read_only: vec!["/usr".into(), "/nonexistent-solo-path".into(), "/etc/hostname".into()],
            tmp_size: 1 << 20,
            devices: vec!["null".into()],
            data: Some("/var/lib/solo/data/x".into()),
            app: vec![("x".into(), "/var/lib/solo/artifacts/sha256/ab".into())],
            program: "/app/x".into(),
            shm: true,
            memfd_noexec: true,
            memfd_noexec_required: false,
            binds: vec![],
        }
    }

    #[test]
    fn missing_host_paths_are_skipped_and_listed() {
        let (ops, missing) = shared_ops(&view()).expect("shared ops");
        assert_eq!(missing, vec!["/nonexistent-solo-path".to_owned()]);
        let dbg = format!("{ops:?}");
        assert!(dbg.contains("\"usr\""), "{dbg}");
        // Per-instance mounts are not in the shared view, only their mount points.
        assert!(!dbg.contains("proc/kcore") && !dbg.contains("Proc("), "{dbg}");
        assert!(dbg.contains("Mkdir(\"app\")") && dbg.contains("Mkdir(\"data\")"), "{dbg}");
    }

    #[test]
    fn instance_ops_mask_proc_and_mount_their_own_places() {
        let v = FsView { data: None, app: vec![], ..view() };
        let (ops, _) = instance_ops(&v, vec![]).expect("instance ops");
        let dbg = format!("{ops:?}");
        for want in ["Proc(\"proc\")", "\"proc/kcore\"", "\"tmp\"", "\"dev/shm\""] {
            assert!(dbg.contains(want), "{want} missing: {dbg}");
        }
        assert!(!dbg.contains("\"usr\""), "{dbg}");
    }

    #[test]
    fn every_mandatory_bind_is_followed_by_its_flags() {
        let (ops, _) = shared_ops(&view()).expect("shared ops");
        let v = FsView { data: None, app: vec![], ..view() };
        let (inst, _) = instance_ops(&v, vec![]).expect("instance ops");
        for list in [ops, inst] {
            for (i, (op, optional)) in list.iter().enumerate() {
                if let (Op::Bind { target, .. } | Op::Attach { target, .. }, false) = (op, optional) {
                    match list.get(i + 1) {
                        Some((Op::SetAttr { target: t, .. }, _)) => assert_eq!(t, target),
                        other => panic!("bind of {target:?} not followed by its flags: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn granted_directories_get_mount_points_in_a_view_of_their_own() {
        let bind = |at: &str, writable| Bind { host: at.into(), at: at.into(), writable };
        let v = FsView {
            binds: vec![
                bind("/srv/grant/a", false),
                bind("/usr/share/x", true),
                bind("/nonexistent-solo-path/y", false),
            ],
            ..view()
        };
        let (ops, _) = shared_ops(&v).expect("shared ops");
        let dbg = format!("{ops:?}");
        // A mount point beneath no read-only path is made, with its parents.
        assert!(dbg.contains("Mkdir(\"srv\")") && dbg.contains("Mkdir(\"srv/grant/a\")"), "{dbg}");
        // Beneath /usr the host's own directory (bound read-only) is it.
        assert!(!dbg.contains("usr/share"), "{dbg}");
        // Beneath a read-only path this host lacks, it is made.
        assert!(dbg.contains("Mkdir(\"nonexistent-solo-path/y\")"), "{dbg}");
        // The granted paths are part of the view's key; read-only or not,
        // and their order, are not.
        let plain = view();
        assert_ne!(view_key(&v), view_key(&plain));
        let reordered = FsView {
            binds: vec![
                bind("/usr/share/x", false),
                bind("/nonexistent-solo-path/y", true),
                bind("/srv/grant/a", true),
            ],
            ..view()
        };
        assert_eq!(view_key(&v), view_key(&reordered));
    }

    #[test]
    fn granted_directories_are_cloned_by_descriptor_and_attached_with_their_flags() {
        if !crate::sandbox::test_has_root("open_tree") {
            return;
        }
        let dir = std::env::temp_dir().join(format!("solo-binds-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::write(dir.join("file"), "x").expect("write");
        let link = dir.join("proc-link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/proc/self", &link).expect("symlink");
        let d = |p: &str| dir.join(p).display().to_string();
        let bind = |p: &str, at: &str, writable| Bind { host: d(p), at: at.into(), writable };
        // Inner first in the list: attached after the outer one.
        let granted = open_binds(&[bind("a/b", "/srv/a/b", true), bind("a", "/srv/a", false)]).expect("open");
        let v = FsView { data: None, app: vec![], ..view() };
        let (ops, _) = instance_ops(&v, granted).expect("instance ops");
        let mine: Vec<String> = ops
            .iter()
            .filter_map(|(op, _)| match op {
                Op::Attach { target, .. } => Some(format!("attach {target:?}")),
                Op::SetAttr { target, attrs, .. } if target.to_bytes().starts_with(b"srv") => {
                    Some(format!("flags {target:?} {attrs:#x}"))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            mine,
            vec![
                "attach \"srv/a\"".to_owned(),
                format!("flags \"srv/a\" {:#x}", RO | MOUNT_ATTR_NOEXEC),
                "attach \"srv/a/b\"".to_owned(),
                format!("flags \"srv/a/b\" {PRIVATE_RW:#x}"),
            ]
        );
        for (p, errno) in [("proc-link", libc::EINVAL), ("file", libc::ENOTDIR), ("missing", libc::ENOENT)] {
            assert_eq!(open_binds(&[bind(p, "/srv/x", false)]).map(|_| ()), Err(Errno(errno)), "{p}");
        }
        assert_eq!(
            open_binds(&[Bind { host: "/proc".into(), at: "/srv/x".into(), writable: false }]).map(|_| ()),
            Err(Errno(libc::EINVAL))
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn views_are_built_once_and_rebuilt_when_a_host_path_changes() {
        if !crate::sandbox::test_has_root("building a view") {
            return;
        }
        let dir = std::env::temp_dir().join(format!("solo-views-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        let file = dir.join("conf");
        std::fs::write(&file, "one").expect("write");
        let v = FsView {
            root: root.display().to_string(),
            read_only: vec!["/usr".into(), file.display().to_string()],
            data: None,
            app: vec![],
            ..view()
        };
        let mut views = Views::default();
        let first = views.prepare(&v, vec![]).expect("first view");
        let again = views.prepare(&v, vec![]).expect("same view");
        assert_eq!(first.view, again.view, "the view is reused");
        assert_eq!(views.len(), 1);
        // Replaced by rename, as editors and resolvconf do: a new inode.
        let tmp = dir.join("conf.new");
        std::fs::write(&tmp, "two").expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        let _rebuilt = views.prepare(&v, vec![]).expect("rebuilt view");
        assert_eq!(views.len(), 1, "the stale view is replaced, not kept");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
