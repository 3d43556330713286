//! Leaving without stopping the services: a re-exec of the daemon (`solo
//! daemon reexec`, SIGHUP) or a detaching stop (`--on-sigterm detach`, the
//! systemd unit's choice, so `systemctl restart solo` keeps services).
//!
//! The daemon stops taking requests, leaves a snapshot of its in-memory
//! state in the launcher's vault, and detaches from the launcher, which
//! from then on queues exits for the next daemon. Everything the services
//! hold (their output pipes, control sockets, granted sockets, seccomp
//! listeners) is already in the vault: nothing is closed under them.

use super::snapshot::{self, Snapshot};
use super::Supervisor;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How a daemon leaves its services running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// It execs its binary again (possibly a new one); the new image
    /// attaches and re-adopts everything.
    Reexec,
    /// It exits; the next `solo serve` re-adopts everything.
    Detach,
}

impl Supervisor {
    /// Asks the daemon to leave its services running and go (`how`); the
    /// API server stops, then [`Supervisor::hand_over`] runs.
    pub fn leave(&self, how: Leaving) {
        *self.leaving.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
        self.exit.send_replace(true);
    }

    /// Instances with a live process.
    pub fn running_instances(&self) -> usize {
        self.all().iter().map(|s| s.runtime().instances.iter().filter(|i| i.pid != 0).count()).sum()
    }

    /// How the daemon was asked to leave (`None`: it stopped its services).
    pub fn leaving(&self) -> Option<Leaving> {
        *self.leaving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands everything over to the next daemon: no more deploys or
    /// launches, the snapshot into the vault, the store flushed, then the
    /// launcher detached. Returns how many instances were left running.
    pub async fn hand_over(self: &Arc<Self>) -> usize {
        self.shutting_down.store(true, Ordering::SeqCst);
        // Restarts in flight must not start a second launcher once this one
        // is detached.
        self.launcher.close();
        let snap = Snapshot::of(self);
        let running = self.running_instances();
        match snap.to_memfd() {
            Ok(fd) => self.launcher.keep(&[(snapshot::NAME.to_owned(), fd.as_fd())]).await,
            Err(e) => tracing::warn!(error = %e, "cannot write the snapshot; the next daemon starts counters over"),
        }
        self.store.flush().await;
        self.launcher.detach().await;
        tracing::info!(running, "handed over: services keep running for the next daemon");
        running
    }
}
