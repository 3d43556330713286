//! The thin layer that owns every raw syscall Solo makes. Everything else in
//! the crate is `unsafe`-free; each block here says why it is sound.
//!
//! Functions return `Result<_, Errno>` so the launch steps can report the
//! exact errno of the step that failed.
#![allow(unsafe_code)]

mod confine;
mod signal;
mod socket;

pub use confine::*;
pub use signal::*;
pub use socket::*;

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An errno value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    }
    /// Name and description, e.g. `EPERM (Operation not permitted)`.
    pub fn describe(self) -> String {
        let desc = std::io::Error::from_raw_os_error(self.0).to_string();
        let desc = desc.split(" (os error").next().unwrap_or(&desc).to_owned();
        format!("{} ({desc})", errno_name(self.0))
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

/// Symbolic name of the errno values a launch step can plausibly return.
pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => "E?",
    }
}

fn check(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn check_int(r: libc::c_int) -> Result<libc::c_int, Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// Wraps a fresh descriptor returned by the kernel.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just returned to us and
    // that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ------------------------------------------------------------------ clone3

/// What `clone3` returned in the calling process.
pub enum Forked {
    /// We are the child.
    Child,
    /// We are the parent of `pid`, reachable through `pidfd`.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(CLONE_PIDFD [| CLONE_INTO_CGROUP] | extra_flags)`, fork-like (no
/// shared memory, same stack): the child continues from here. Only called
/// from the single-threaded launcher, so the child is a consistent copy.
pub fn clone3(extra_flags: u64, cgroup: Option<RawFd>) -> Result<Forked, Errno> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: libc::CLONE_PIDFD as u64 | extra_flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we
    // pass; without CLONE_VM the child gets a copy of our address space, so
    // continuing on the same stack is the documented fork-like behaviour.
    let r = check(unsafe {
        libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>())
    })?;
    if r == 0 {
        Ok(Forked::Child)
    } else {
        Ok(Forked::Parent { pid: r as libc::pid_t, pidfd: owned(pidfd) })
    }
}

/// Whether `clone3` exists: probed with a deliberately invalid size.
pub fn has_clone3() -> bool {
    // SAFETY: a NULL pointer with size 0 is rejected by the kernel with
    // EINVAL (or ENOSYS when the syscall is missing) before any effect.
    let r = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null_mut::<CloneArgs>(), 0usize) };
    !(r < 0 && Errno::last().0 == libc::ENOSYS)
}

// ------------------------------------------------------------------ pidfds

pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes plain integers and returns a new fd.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    Ok(owned(fd as libc::c_int))
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    check(unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
    })?;
    Ok(())
}

/// `kill(pid, sig)`, for processes found in a cgroup (no pidfd held).
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check_int(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

/// `waitpid(pid, WNOHANG)`; `Ok(None)` when nothing (more) is ready.
pub fn waitpid_nohang(pid: libc::pid_t) -> Result<Option<(libc::pid_t, WaitStatus)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer.
    let r = check_int(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })?;
    if r == 0 {
        return Ok(None);
    }
    Ok(Some((r, decode_status(status))))
}

/// Blocking `waitpid(pid, 0)`.
pub fn waitpid_blocking(pid: libc::pid_t) -> Result<WaitStatus, Errno> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 {
            return Ok(decode_status(status));
        }
        let e = Errno::last();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

fn decode_status(status: libc::c_int) -> WaitStatus {
    if libc::WIFSIGNALED(status) {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    }
}

// ----------------------------------------------------------- process state

/// Marks this process a child subreaper: orphans below it are reparented here.
pub fn set_child_subreaper() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) })?;
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) })?;
    Ok(())
}

pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check_int(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    Ok(())
}

pub fn setsid() -> Result<(), Errno> {
    // SAFETY: no arguments.
    check_int(unsafe { libc::setsid() })?;
    Ok(())
}

pub fn setgroups_empty() -> Result<(), Errno> {
    // SAFETY: a zero-length list with a NULL pointer is valid.
    check_int(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    Ok(())
}

pub fn setresgid(gid: u32) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check_int(unsafe { libc::setresgid(gid, gid, gid) })?;
    Ok(())
}

pub fn setresuid(uid: u32) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check_int(unsafe { libc::setresuid(uid, uid, uid) })?;
    Ok(())
}

pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> Result<(), Errno> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit.
    check_int(unsafe { libc::setrlimit(resource as _, &lim) })?;
    Ok(())
}

pub fn getrlimit(resource: u32) -> Result<(u64, u64), Errno> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid out-pointer.
    check_int(unsafe { libc::getrlimit(resource as _, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

pub fn dup2(from: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: plain integers; `to` is replaced atomically.
    check_int(unsafe { libc::dup2(from, to) })?;
    Ok(())
}

/// `getpid()` as a raw syscall: the caller's pid in its own pid namespace
/// (1 for the first process of a new one). No libc cache involved.
pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as libc::pid_t }
}

/// Whether descriptor `fd` is open (`fcntl(F_GETFD)`).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a
    // valid argument (EBADF when nothing is open there).
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Occupies every free descriptor number in `range` with a close-on-exec
/// `/dev/null` placeholder, so nothing this process opens afterwards gets
/// one of those numbers (the launcher keeps the numbers of passed
/// descriptors free of its own this way). Numbers already open are left as
/// they are (occupied is all that matters). Returns how many were free.
pub fn reserve_fds(range: std::ops::Range<RawFd>) -> Result<usize, Errno> {
    let null = open(c"/dev/null", libc::O_RDONLY)?;
    let mut reserved = 0;
    for fd in range.clone() {
        if fd == null.as_raw_fd() {
            reserved += 1;
            continue;
        }
        if fd_is_open(fd) {
            continue;
        }
        // SAFETY: `fd` is free (checked just above; the process is
        // single-threaded), so dup3 closes nothing of anyone's.
        check_int(unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) })?;
        reserved += 1;
    }
    if range.contains(&null.as_raw_fd()) {
        // The first placeholder itself: kept open for the process's life.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(null);
    }
    Ok(reserved)
}

/// Closes every descriptor from `first` upwards (`close_range(first, ~0, 0)`):
/// what a process inherited beyond those it knows it was given.
pub fn close_fds_from(first: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments; the caller owns no descriptor from `first`
    // upwards (it runs before it opens any), so nothing in use is closed.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) })?;
    Ok(())
}

/// Gives the calling process its own descriptor table holding only the
/// descriptors below `below` (`close_range(below, ~0, CLOSE_RANGE_UNSHARE)`).
/// A child cloned with `CLONE_FILES` calls it first: the kernel then copies
/// those few entries instead of the whole parent table (the launcher holds
/// ~5 descriptors per running service, and a copy costs per descriptor,
/// again when exec closes them).
pub fn unshare_fds_below(below: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments; the descriptors closed are only the
    // caller's own copies (CLOSE_RANGE_UNSHARE unshares the table first).
    check(unsafe { libc::syscall(libc::SYS_close_range, below, u32::MAX, libc::CLOSE_RANGE_UNSHARE) })?;
    Ok(())
}

/// Blocks until one of `fds` is readable (or hung up); returns which are.
pub fn wait_readable<const N: usize>(fds: [RawFd; N]) -> Result<[bool; N], Errno> {
    let mut p = fds.map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
    loop {
        // SAFETY: `p` is a valid array of N pollfd structs for the call.
        let r = unsafe { libc::poll(p.as_mut_ptr(), N as libc::nfds_t, -1) };
        if r >= 0 {
            return Ok(p.map(|x| x.revents != 0));
        }
        let e = Errno::last();
        if e.0 != libc::EINTR {
            return Err(e);
        }
    }
}

/// Marks every descriptor from `first` upwards close-on-exec, so nothing
/// the launcher held reaches the service (CVE-2024-21626 class of leaks).
pub fn close_range_cloexec(first: u32) -> Result<(), Errno> {
    // SAFETY: integer arguments; CLOSE_RANGE_CLOEXEC only sets a flag.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) })?;
    Ok(())
}

pub fn chdir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: a valid NUL-terminated path.
    check_int(unsafe { libc::chdir(path.as_ptr()) })?;
    Ok(())
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs exactly the file the
/// launcher opened, whatever happens to the path afterwards. Returns only on
/// failure.
pub fn execveat(fd: RawFd, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    debug_assert!(envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: argv and envp are NULL-terminated arrays of pointers to
    // NUL-terminated strings that outlive the call (the caller owns them).
    unsafe { libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH) };
    Errno::last()
}

/// Writes all of `buf` to `fd` with raw `write`.
pub fn write_all(fd: RawFd, buf: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice bounds are valid for reads.
        let r = unsafe { libc::write(fd, buf[done..].as_ptr().cast(), buf.len() - done) };
        if r < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        done += r as usize;
    }
    Ok(())
}

/// Reads into `buf` until it is full or EOF; returns the bytes read.
pub fn read_full(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the slice bounds are valid for writes.
        let r = unsafe { libc::read(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
        if r < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            break;
        }
        done += r as usize;
    }
    Ok(done)
}

/// Ends the calling process at once, without running atexit handlers or
/// flushing stdio buffers copied from the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

// ------------------------------------------------------------------- files

/// `open(path, flags | O_CLOEXEC)`.
pub fn open(path: &CStr, flags: libc::c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: a valid NUL-terminated path; the mode is ignored without O_CREAT.
    let fd = check_int(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0) })?;
    Ok(owned(fd))
}

/// `pipe2(O_CLOEXEC | extra)`: (read end, write end).
pub fn pipe(extra: libc::c_int) -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | extra) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

// ----------------------------------------------------------------- sockets

// ---------------------------------------------------------------- signals

// ------------------------------------------------------------------ probes

/// The best Landlock ABI the kernel offers (0 = none).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: the version query takes a NULL attr and size 0 and has no effect.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as i32
    }
}

/// Whether this process could install a seccomp filter (`PR_GET_SECCOMP`
/// works and reports mode 0 or 2).
pub fn seccomp_available() -> bool {
    // SAFETY: prctl with integer arguments; read-only query.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    r >= 0
}

/// Current process's effective uid.
pub fn geteuid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// A `CString` from a Rust string that the validator already checked for NULs.
pub fn cstring(s: &str) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno(libc::EINVAL))
}

/// Non-blocking exclusive `flock`; false if another process holds it.
pub fn try_lock_exclusive(f: &std::fs::File) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Sets the file mode creation mask.
pub fn set_umask(mask: u32) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) };
}

/// Whether capability `cap` is in this process's effective set (from
/// `/proc/self/status`, which needs no libcap).
pub fn has_effective_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("CapEff:")).map(|l| l[7..].trim().to_owned()))
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|mask| cap < 64 && mask & (1u64 << cap) != 0)
}

/// `CAP_SYS_RESOURCE` from `<linux/capability.h>`.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// A close-on-exec copy of `fd` numbered `min` or above
/// (`F_DUPFD_CLOEXEC`); the original is closed. Where nothing that high is
/// allowed (`RLIMIT_NOFILE`), `fd` itself is returned.
pub fn move_above(fd: OwnedFd, min: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one (or
    // fails, leaving everything as it was).
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if r < 0 {
        fd
    } else {
        owned(r)
    }
}
