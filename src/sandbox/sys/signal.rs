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

/// Signals (bit `n - 1` for signal `n`) whose disposition in this process
/// is not the default, read once per process by
/// [`note_signal_dispositions`].
static NOT_DEFAULT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Reads which signals this process does not leave at their default
/// disposition (62 `rt_sigaction` queries, once per process) and keeps the
/// answer for [`reset_all_signals`] in children cloned afterwards. The
/// launcher calls it before its first clone; it never changes a
/// disposition after its start (SIGCHLD comes through a signalfd).
pub fn note_signal_dispositions() -> u64 {
    *NOT_DEFAULT.get_or_init(|| {
        let mut mask = 0u64;
        for sig in 1..=64 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
            // SAFETY: no new action, a valid old-action buffer of the
            // kernel's layout, and the kernel's sigset size (8 bytes).
            let r = check(unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<u8>(),
                    &mut old as *mut KernelSigaction,
                    8usize,
                )
            });
            // An unreadable one is reset too.
            if r.is_err() || old.handler != 0 {
                mask |= 1 << (sig - 1);
            }
        }
        mask
    })
}

/// Restores the default disposition of every signal (1..=64 but SIGKILL
/// and SIGSTOP) not at its default already: ignored signals survive exec,
/// and the service must not inherit whatever the supervisor's own parent
/// ignored. Only the signals [`note_signal_dispositions`] found changed
/// (SIGPIPE, which Rust ignores, and a few more: 2 or 3 calls instead of
/// 62), or every one if it was not called before the clone. Uses the raw
/// syscall because glibc refuses its two reserved real-time signals. No
/// allocation: it runs in a freshly cloned child.
pub fn reset_all_signals() -> Result<(), Errno> {
    let not_default = NOT_DEFAULT.get().copied().unwrap_or(u64::MAX);
    let dfl = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || not_default & (1 << (sig - 1)) == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn disposition(sig: libc::c_int) -> usize {
        let mut old = KernelSigaction { handler: 0, flags: 0, restorer: 0, mask: 0 };
        // SAFETY: as in `note_signal_dispositions`.
        let r = unsafe {
            libc::syscall(libc::SYS_rt_sigaction, sig, std::ptr::null::<u8>(), &mut old as *mut KernelSigaction, 8usize)
        };
        assert_eq!(r, 0, "rt_sigaction query of {sig}");
        old.handler
    }

    #[test]
    fn the_noted_dispositions_are_the_ones_reset_in_a_child() {
        // Rust ignores SIGPIPE: noted, and default again in the child.
        assert_eq!(disposition(libc::SIGPIPE), libc::SIG_IGN);
        let noted = note_signal_dispositions();
        assert_ne!(noted & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE noted: {noted:#x}");
        assert_eq!(noted & (1 << (libc::SIGTERM - 1)), 0, "SIGTERM is at its default: {noted:#x}");
        match super::super::clone3(0, None).expect("clone3") {
            super::super::Forked::Child => {
                let ok = reset_all_signals().is_ok() && disposition(libc::SIGPIPE) == libc::SIG_DFL;
                super::super::exit_now(if ok { 0 } else { 1 })
            }
            super::super::Forked::Parent { pid, .. } => {
                let st = super::super::waitpid_blocking(pid).expect("wait");
                assert_eq!(st, super::super::WaitStatus::Exited(0), "the child's SIGPIPE was not reset");
            }
        }
    }
}
