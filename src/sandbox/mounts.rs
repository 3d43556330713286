//! The filesystem view: a fresh tmpfs root holding only what the profile
//! lists, entered with `pivot_root`.
//!
//! [`prepare`] runs in the launcher: it looks at the host (which paths
//! exist, which are symlinks) and turns the [`FsView`] into a flat list of
//! [`Op`]s with every path already a `CString`. [`apply`] runs in the child,
//! in its new mount namespace, and only makes raw syscalls. Paths in ops are
//! relative to the new root (the child `chdir`s into it), except bind
//! sources, which are host paths until `pivot_root`.

use super::plan::FsView;
use super::sys::{self, Errno, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use std::ffi::CString;

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

/// What the child runs, plus what the launcher found missing on the host.
#[derive(Debug)]
pub struct Prepared {
    pub root: CString,
    pub ops: Vec<(Op, bool)>,
    /// Host paths the profile lists that do not exist here (skipped).
    pub missing: Vec<String>,
    /// `vm.memfd_noexec = 2`: `None` when the view does not ask for it,
    /// else whether this kernel has the knob (Linux 6.3+).
    pub memfd_noexec: Option<bool>,
}

/// Where the kernel's per-pid-namespace `memfd_noexec` sysctl lives.
pub const MEMFD_NOEXEC_SYSCTL: &str = "/proc/sys/vm/memfd_noexec";

/// Whether this kernel has `vm.memfd_noexec` (Linux 6.3+).
pub fn kernel_has_memfd_noexec() -> bool {
    std::path::Path::new(MEMFD_NOEXEC_SYSCTL).exists()
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

/// Turns the view into operations. Runs in the launcher (allocates, stats).
pub fn prepare(v: &FsView) -> Result<Prepared, Errno> {
    const RO: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    const PRIVATE_RW: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let mut ops: Vec<(Op, bool)> = Vec::with_capacity(64);
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
    // The artifact, read-only.
    if !v.app.is_empty() {
        ops.push((Op::Mkdir(c("app")?), false));
        for (name, host) in &v.app {
            let t = format!("app/{name}");
            ops.push((Op::Touch(c(&t)?), false));
            ops.push((Op::Bind { source: c(host)?, target: c(&t)? }, false));
            ops.push((Op::SetAttr { target: c(&t)?, attrs: RO, recursive: false }, false));
        }
    }
    // The service's persistent data, read-write, nothing executable.
    if let Some(data) = &v.data {
        ops.push((Op::Mkdir(c("data")?), false));
        ops.push((Op::Bind { source: c(data)?, target: c("data")? }, false));
        ops.push((Op::SetAttr { target: c("data")?, attrs: PRIVATE_RW, recursive: false }, false));
    }
    // A private /tmp with a size cap.
    ops.push((Op::Mkdir(c("tmp")?), false));
    let tmp_opts = format!("mode=1777,size={}", v.tmp_size.max(4096));
    ops.push((
        Op::Tmpfs {
            target: c("tmp")?,
            options: c(&tmp_opts)?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        },
        false,
    ));
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
        ops.push((
            Op::Tmpfs {
                target: c("dev/shm")?,
                options: c(&tmp_opts)?,
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            },
            false,
        ));
    }
    ops.push((
        Op::SetAttr {
            target: c("dev")?,
            attrs: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            recursive: false,
        },
        false,
    ));
    // /proc of the service's own pid namespace, with host-revealing files
    // masked and the kernel tunables read-only.
    ops.push((Op::Mkdir(c("proc")?), false));
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
    Ok(Prepared { root: c(&v.root)?, ops, missing, memfd_noexec })
}

/// Builds the view and enters it. Runs in the child, in its own mount
/// namespace; returns the errno of the first failing mandatory operation.
pub fn apply(p: &Prepared) -> Result<(), Errno> {
    // The daemon's umask (077) would make the view's directories
    // untraversable for the service; 022 is also what the service inherits.
    sys::set_umask(0o022);
    // Nothing we mount may propagate back to the host.
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    sys::mount(
        Some(c"solo"),
        &p.root,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(c"mode=0755,size=1m,nr_inodes=4096"),
    )?;
    sys::chdir(&p.root)?;
    for (op, optional) in &p.ops {
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

/// Makes the prepared root the process's `/` and makes it read-only; the
/// host's tree is detached and unreachable afterwards.
pub fn pivot() -> Result<(), Errno> {
    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // detach then removes it (see pivot_root(2), "new_root and put_old may
    // be the same directory").
    sys::pivot_root(c".", c".")?;
    sys::umount_detach(c".")?;
    sys::chdir(c"/")?;
    sys::mount_setattr(c"/", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false)
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
        }
    }

    #[test]
    fn missing_host_paths_are_skipped_and_listed() {
        let p = prepare(&view()).expect("prepare");
        assert_eq!(p.missing, vec!["/nonexistent-solo-path".to_owned()]);
        let dbg = format!("{:?}", p.ops);
        assert!(dbg.contains("\"usr\""), "{dbg}");
        assert!(dbg.contains("\"proc/kcore\""), "{dbg}");
        assert!(dbg.contains("\"app/x\""), "{dbg}");
    }

    #[test]
    fn every_mandatory_bind_is_followed_by_its_flags() {
        let p = prepare(&view()).expect("prepare");
        for (i, (op, optional)) in p.ops.iter().enumerate() {
            if let (Op::Bind { target, .. }, false) = (op, optional) {
                match p.ops.get(i + 1) {
                    Some((Op::SetAttr { target: t, .. }, _)) => assert_eq!(t, target),
                    other => panic!("bind of {target:?} not followed by its flags: {other:?}"),
                }
            }
        }
    }
}
