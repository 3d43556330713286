//! Signal state: the launcher's SIGCHLD signalfd and poll loop, and the
//! reset to default dispositions every service starts with.
#![allow(unsafe_code)]

use super::{check, check_int, owned, Errno};
use std::os::fd::{OwnedFd, RawFd};

/// Blocks SIGCHLD in this (single-threaded) process and returns a signalfd
/// for it, so the launcher's poll loop sees child exits as readable data.
pub fn sigchld_fd() -> Result<OwnedFd, Errno> {
    // SAFETY: sigset manipulation on a local, then sigprocmask/signalfd
    // with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        check_int(libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()))?;
        let fd = check_int(libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK))?;
        Ok(owned(fd))
    }
}

/// Unblocks every signal (the child must not inherit the launcher's mask).
pub fn unblock_all_signals() -> Result<(), Errno> {
    // SAFETY: as in `sigchld_fd`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        check_int(libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()))?;
    }
    Ok(())
}

/// Drains a signalfd (the data itself is not needed).
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 128 * 8];
    // SAFETY: reads into a local buffer of the given size.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// `poll` on `fds` for readability; returns which are readable (or hung up).
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> Result<Vec<bool>, Errno> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `pfds` is a valid array of the length we pass.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = Errno::last();
        if e.0 == libc::EINTR {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// Restores the default disposition of `sig` (Rust ignores SIGPIPE, and an
/// ignored signal survives exec).
pub fn default_signal(sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: installing SIG_DFL has no memory-safety requirements.
    let r = unsafe { libc::signal(sig, libc::SIG_DFL) };
    if r == libc::SIG_ERR {
        return Err(Errno::last());
    }
    Ok(())
}

/// The kernel's `struct sigaction` for `rt_sigaction` (x86_64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Restores the default disposition of every signal (1..=64 but SIGKILL
/// and SIGSTOP): ignored signals survive exec, and the service must not
/// inherit whatever the supervisor's own parent ignored. Uses the raw
/// syscall because glibc refuses its two reserved real-time signals.
pub fn reset_all_signals() -> Result<(), Errno> {
    let dfl = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a valid kernel sigaction with SIG_DFL, no old-action
        // pointer, and the kernel's sigset size (8 bytes).
        check(unsafe {
            libc::syscall(libc::SYS_rt_sigaction, sig, &dfl as *const KernelSigaction, std::ptr::null::<u8>(), 8usize)
        })?;
    }
    Ok(())
}
