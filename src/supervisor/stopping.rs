//! How an instance is stopped: the two ways it is asked (with its whole
//! service, or alone when an update replaces it), and the stop itself —
//! SIGTERM and the grace period, then SIGKILL of the whole cgroup, thawing
//! a frozen instance (blue-green) right after the SIGTERM.
//!
//! Invariant: a stop reports whether it had to SIGKILL, and never reports
//! the instance gone before its main process is.

use super::service::{Service, StopMode};
use crate::sandbox::cgroup::InstanceCgroup;
use crate::sandbox::sys::{self, WaitStatus};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// The two ways an instance is asked to stop: with its whole service
/// (kill, shutdown), or alone (an update replacing it).
pub(super) struct Stops {
    all: tokio::sync::watch::Receiver<Option<StopMode>>,
    one: tokio::sync::watch::Receiver<Option<StopMode>>,
}

impl Stops {
    pub(super) fn new(svc: &Service, replica: u32) -> Stops {
        let one = match svc.replica_stop.get(replica as usize) {
            Some(tx) => tx.subscribe(),
            None => tokio::sync::watch::channel(None).1,
        };
        Stops { all: svc.stop.subscribe(), one }
    }

    pub(super) fn mode(&self) -> Option<StopMode> {
        (*self.all.borrow()).or(*self.one.borrow())
    }

    /// Resolves once a stop is asked for.
    pub(super) async fn requested(&mut self) {
        // A sender that went away never asks: then only the other one counts.
        let (mut all_open, mut one_open) = (true, true);
        while all_open || one_open {
            let asked = tokio::select! {
                ok = async { self.all.wait_for(Option::is_some).await.is_ok() }, if all_open => {
                    all_open = ok;
                    ok
                }
                ok = async { self.one.wait_for(Option::is_some).await.is_ok() }, if one_open => {
                    one_open = ok;
                    ok
                }
            };
            if asked {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Whether SIGTERM has its default action (terminate) in `pid`: neither
/// caught nor ignored, per `SigCgt`/`SigIgn` in its status. Unknown counts
/// as no, so the graceful path is kept when in doubt.
fn dies_of_sigterm(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
    };
    let bit = 1u64 << (libc::SIGTERM - 1);
    match (mask("SigCgt:"), mask("SigIgn:")) {
        (Some(c), Some(i)) => c & bit == 0 && i & bit == 0,
        _ => false,
    }
}

/// SIGTERM (if the service can act on it), wait up to the timeout, then
/// SIGKILL the whole cgroup. A frozen instance (blue-green) is thawed
/// right after the SIGTERM, so the signal is the first thing it sees and it
/// does not take one more connection before it. Returns how it ended, and
/// whether it had to be SIGKILLed.
pub(super) async fn stop(
    pid: i32,
    cg: &InstanceCgroup,
    pidfd: &OwnedFd,
    exit_rx: &mut tokio::sync::oneshot::Receiver<WaitStatus>,
    mode: StopMode,
    frozen: bool,
) -> (WaitStatus, bool) {
    // The main process is init of its pid namespace: the kernel drops a
    // SIGTERM it has no handler for, where any other process would die of
    // it. Such a service is killed at once, as it would have been. (One
    // that ignores SIGTERM gets its grace period, as anywhere.)
    let graceful = !mode.force && !dies_of_sigterm(pid);
    if graceful && sys::pidfd_send_signal(pidfd, libc::SIGTERM).is_ok() {
        if frozen {
            thaw(cg).await;
        }
        if let Ok(st) = tokio::time::timeout(mode.timeout, &mut *exit_rx).await {
            return (st.unwrap_or(WaitStatus::Signaled(libc::SIGKILL)), false);
        }
    }
    if frozen {
        // A v1 freezer holds even SIGKILL until it is thawed.
        thaw(cg).await;
    }
    (kill_and_wait(pid, cg, pidfd, exit_rx).await, true)
}

async fn thaw(cg: &InstanceCgroup) {
    let cg = cg.clone();
    let _ = tokio::task::spawn_blocking(move || cg.set_frozen(false)).await;
}

/// SIGKILL of the whole cgroup, then the wait for the main process.
async fn kill_and_wait(
    pid: i32,
    cg: &InstanceCgroup,
    pidfd: &OwnedFd,
    exit_rx: &mut tokio::sync::oneshot::Receiver<WaitStatus>,
) -> WaitStatus {
    let cg2 = cg.clone();
    let _ = tokio::task::spawn_blocking(move || cg2.kill_all()).await;
    let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
    // SIGKILL cannot be caught, but a process in uninterruptible sleep
    // (a hung NFS read, a stuck device) dies only when it wakes. It is not
    // reported gone before it is: the wait goes on, saying so.
    let mut waited = 0u64;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), &mut *exit_rx).await {
            Ok(Ok(st)) => return st,
            // The launcher (and its reaper) went away: the exit is routed
            // by the daemon's own reaper, or the process is gone with it.
            Ok(Err(_)) => return WaitStatus::Signaled(libc::SIGKILL),
            Err(_) => {
                waited += 10;
                tracing::error!(pid, waited_s = waited, "still alive after SIGKILL (uninterruptible sleep?); waiting");
                let cg2 = cg.clone();
                let _ = tokio::task::spawn_blocking(move || cg2.kill_all()).await;
            }
        }
    }
}
