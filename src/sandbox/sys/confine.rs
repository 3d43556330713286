//! Raw syscalls of the confinement steps: namespaces, mounts, hostname,
//! network, seccomp, and the supervisor's side of seccomp notifications.

use super::{check, check_int, owned, Errno};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `unshare(flags)`.
pub fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: unshare takes integer flags and changes only this process.
    check_int(unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// `setns(fd, nstype)`.
pub fn setns(fd: RawFd, nstype: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integer arguments.
    check_int(unsafe { libc::setns(fd, nstype) })?;
    Ok(())
}

/// `mount(2)`; `None` arguments are passed as NULL.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    check_int(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags, p(data).cast()) })?;
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `mount_setattr(AT_FDCWD, path, [AT_RECURSIVE], {attr_set})`: sets mount
/// flags on the mount at `path` (and every mount beneath it if `recursive`).
pub fn mount_setattr(path: &CStr, set: u64, recursive: bool) -> Result<(), Errno> {
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: path is NUL-terminated; attr is a properly sized mount_attr
    // living across the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// `open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC)`:
/// a detached copy of the mount tree at `path` (a recursive bind mount not
/// yet attached anywhere), to be attached with [`move_mount`] later,
/// possibly in another mount namespace.
pub fn open_tree_clone(path: &CStr) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let flags = OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: a NUL-terminated path; returns a new descriptor or -1.
    let fd = check(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })?;
    Ok(owned(fd as RawFd))
}

/// `open_tree(dir, "", OPEN_TREE_CLONE | AT_EMPTY_PATH | OPEN_TREE_CLOEXEC)`:
/// a detached copy of the one mount `dir` (an `O_PATH` descriptor) is on,
/// from `dir` down, without the mounts beneath it (not `AT_RECURSIVE`: a
/// granted directory shows what is on its own filesystem, never a mount
/// someone made inside it).
pub fn open_tree_clone_fd(dir: RawFd) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as libc::c_uint | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: a descriptor and an empty NUL-terminated path; returns a new
    // descriptor or -1.
    let fd = check(unsafe { libc::syscall(libc::SYS_open_tree, dir, c"".as_ptr(), flags) })?;
    Ok(owned(fd as RawFd))
}

/// The filesystem type (`f_type`, e.g. `PROC_SUPER_MAGIC`) of the file
/// `fd` is on (`fstatfs`; an `O_PATH` descriptor will do).
pub fn fs_type(fd: RawFd) -> Result<i64, Errno> {
    // SAFETY: an all-zero `statfs` is valid; fstatfs fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor and a `statfs` to fill.
    check_int(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st.f_type as i64)
}

/// `move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`:
/// attaches a detached tree from [`open_tree_clone`] at `target`.
pub fn move_mount(tree: RawFd, target: &CStr) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    // SAFETY: an empty and a NUL-terminated path, integer arguments.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
    // SAFETY: two NUL-terminated paths.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

/// `umount2(path, MNT_DETACH)`.
pub fn umount_detach(path: &CStr) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated path.
    check_int(unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) })?;
    Ok(())
}

/// `mkdir(path, mode)`.
pub fn mkdir(path: &CStr, mode: libc::mode_t) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated path.
    check_int(unsafe { libc::mkdir(path.as_ptr(), mode) })?;
    Ok(())
}

/// Creates an empty file (a mount point for a file bind mount).
pub fn touch(path: &CStr) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated path; the descriptor is closed right away.
    let fd = check_int(unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o444) })?;
    drop(owned(fd));
    Ok(())
}

/// `symlink(target, path)`.
pub fn symlink(target: &CStr, path: &CStr) -> Result<(), Errno> {
    // SAFETY: two NUL-terminated paths.
    check_int(unsafe { libc::symlink(target.as_ptr(), path.as_ptr()) })?;
    Ok(())
}

/// `sethostname(name)`.
pub fn sethostname(name: &[u8]) -> Result<(), Errno> {
    // SAFETY: a buffer and its length.
    check_int(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// Brings the loopback interface up (in a fresh network namespace it is down).
pub fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket with integer arguments.
    let s = owned(check_int(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?);
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    check_int(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS as _, &ifr) })?;
    Ok(())
}

/// `prctl(PR_SET_DUMPABLE, on)`.
pub fn set_dumpable(on: bool) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) })?;
    Ok(())
}

/// `prctl(PR_SET_SECUREBITS, bits)`.
pub fn set_securebits(bits: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) })?;
    Ok(())
}

/// Whether capability `cap` is in the bounding set (`PR_CAPBSET_READ`);
/// `EINVAL` past the kernel's last capability.
pub fn capbset_read(cap: u32) -> Result<bool, Errno> {
    // SAFETY: prctl with integer arguments.
    let r = check_int(unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) })?;
    Ok(r == 1)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capget() -> Result<[CapData; 2], Errno> {
    let mut h = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut d = [CapData::default(); 2];
    // SAFETY: a v3 header and the two data structs it asks for.
    check(unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut CapHeader, d.as_mut_ptr()) })?;
    Ok(d)
}

/// The inheritable set (`capget`, both 32-bit halves). With it empty the
/// ambient set is empty too: the kernel clears an ambient capability
/// whenever its inheritable bit is not set.
pub fn inheritable_caps() -> Result<u64, Errno> {
    let d = capget()?;
    Ok(u64::from(d[0].inheritable) | (u64::from(d[1].inheritable) << 32))
}

/// Empties the inheritable set (and with it the ambient set), keeping the
/// effective and permitted sets.
pub fn clear_inheritable() -> Result<(), Errno> {
    let mut d = capget()?;
    d[0].inheritable = 0;
    d[1].inheritable = 0;
    let mut h = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: a v3 header and the two data structs it takes.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) })?;
    Ok(())
}

/// The effective, permitted and inheritable sets, in one `capget`.
pub fn cap_sets() -> Result<(u64, u64, u64), Errno> {
    let d = capget()?;
    let both = |f: fn(&CapData) -> u32| u64::from(f(&d[0])) | (u64::from(f(&d[1])) << 32);
    Ok((both(|c| c.effective), both(|c| c.permitted), both(|c| c.inheritable)))
}

/// Empties the effective, permitted and inheritable sets in one `capset`
/// (dropping is always allowed).
pub fn clear_caps() -> Result<(), Errno> {
    let d = [CapData::default(); 2];
    let mut h = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: a v3 header and the two data structs it takes.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut CapHeader, d.as_ptr()) })?;
    Ok(())
}

/// `PR_CAP_AMBIENT_CLEAR_ALL`.
pub fn clear_ambient() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// Drops every capability from the bounding set (`PR_CAPBSET_DROP` up to
/// the kernel's last one).
pub fn clear_bounding() -> Result<(), Errno> {
    for cap in 0..64u32 {
        // SAFETY: prctl with integer arguments.
        match check_int(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }) {
            Ok(_) => {}
            Err(Errno(libc::EINVAL)) if cap > 0 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `fd` (an `O_PATH` descriptor will do) is a directory (`fstat`).
pub fn fd_is_dir(fd: std::os::fd::BorrowedFd<'_>) -> Result<bool, Errno> {
    // SAFETY: an all-zero `stat` is valid; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a `stat` to fill.
    check_int(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

pub fn get_securebits() -> Result<libc::c_ulong, Errno> {
    // SAFETY: prctl with integer arguments.
    let r = check_int(unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) })?;
    Ok(r as libc::c_ulong)
}

/// Writes `data` to an already-open path (one `open`+`write`+`close`).
pub fn write_file(path: &CStr, data: &[u8]) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated path.
    let fd = owned(check_int(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?);
    super::write_all(fd.as_raw_fd(), data)
}

// ----------------------------------------------------------------- seccomp

/// Installs the classic-BPF program `bpf` (8-byte `sock_filter`s) as this
/// thread's seccomp filter and returns the user-notification listener.
/// Needs no_new_privs (or CAP_SYS_ADMIN).
pub fn seccomp_load_with_listener(bpf: &[u8]) -> Result<OwnedFd, Errno> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
    if bpf.is_empty() || !bpf.len().is_multiple_of(8) || bpf.len() / 8 > u16::MAX as usize {
        return Err(Errno(libc::EINVAL));
    }
    let prog = libc::sock_fprog { len: (bpf.len() / 8) as u16, filter: bpf.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prog points at `bpf`, which outlives the call; the kernel
    // copies and verifies the program.
    let fd = check(unsafe {
        libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog)
    })?;
    Ok(owned(fd as libc::c_int))
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a copy of another process's descriptor.
pub fn pidfd_getfd(pidfd: RawFd, target: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: integer arguments.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) })?;
    Ok(owned(fd as libc::c_int))
}

/// Writes a file descriptor-free byte stream into an anonymous memory file
/// and returns it (used to collect libseccomp's BPF export).
pub fn memfd(name: &CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: a NUL-terminated name and integer flags.
    let fd = check(unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), libc::MFD_CLOEXEC) })?;
    Ok(owned(fd as libc::c_int))
}

/// One pending seccomp user notification.
#[derive(Debug, Clone, Copy)]
pub struct Notification {
    pub id: u64,
    /// The caller, in this process's pid namespace.
    pub pid: u32,
    pub syscall: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

// _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp),
// _IOW('!', 2, __u64).
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;

/// Receives one notification (blocks if none is pending).
pub fn notif_recv(listener: RawFd) -> Result<Notification, Errno> {
    let mut n = SeccompNotif::default();
    // SAFETY: the kernel fills a zeroed seccomp_notif we own.
    check_int(unsafe { libc::ioctl(listener, NOTIF_RECV as _, &mut n as *mut SeccompNotif) })?;
    Ok(Notification { id: n.id, pid: n.pid, syscall: n.data.nr, arch: n.data.arch, args: n.data.args })
}

/// Answers notification `id`: fail the syscall with `errno`, or let it run
/// (`allow`, `SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
pub fn notif_respond(listener: RawFd, id: u64, errno: i32, allow: bool) -> Result<(), Errno> {
    const CONTINUE: u32 = 1;
    let r = if allow {
        SeccompNotifResp { id, val: 0, error: 0, flags: CONTINUE }
    } else {
        SeccompNotifResp { id, val: 0, error: -errno, flags: 0 }
    };
    // SAFETY: the kernel reads a seccomp_notif_resp we own.
    check_int(unsafe { libc::ioctl(listener, NOTIF_SEND as _, &r as *const SeccompNotifResp) })?;
    Ok(())
}

/// Whether notification `id` is still pending (its caller still blocked).
pub fn notif_id_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: the kernel reads a u64 we own.
    unsafe { libc::ioctl(listener, NOTIF_ID_VALID as _, &id as *const u64) == 0 }
}

/// What a listener has: a notification to receive, nothing yet, or no
/// filter user left (`POLLHUP`: every process under the filter is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Notification,
    Nothing,
    Hangup,
}

/// Non-blocking check of a listener (receiving blocks when nothing is
/// pending, whatever `O_NONBLOCK` says).
pub fn notif_pending(listener: RawFd) -> Pending {
    let mut p = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd we own, zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r <= 0 {
        Pending::Nothing
    } else if p.revents & libc::POLLIN != 0 {
        Pending::Notification
    } else if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        Pending::Hangup
    } else {
        Pending::Nothing
    }
}
