//! The runtime state a daemon hands to the daemon after it (a re-exec, or
//! a restart after `--on-sigterm detach`): per instance, what lives only
//! in memory — restart count, denied syscalls, the last exit. It travels
//! as a JSON memfd kept in the launcher's vault, like the instances'
//! descriptors, so the next daemon's `solo status` reads as this one's did.
//! A crashed daemon leaves none: its successor starts those counters over
//! (docs/reliability.md).

use super::launch::Adoptable;
use super::restart::Exit;
use super::service::Service;
use super::Supervisor;
use crate::sandbox::sys;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// The vault name of the snapshot.
pub const NAME: &str = "daemon/snapshot";

/// Largest snapshot read back (a bound on what a vault entry can make the
/// daemon allocate).
const MAX_BYTES: u64 = 64 << 20;

/// One instance's in-memory state.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceState {
    pub restart_count: u32,
    pub seccomp_denials: u64,
    pub last_denied: Option<String>,
    pub last_exit: Option<Exit>,
    pub ever_running: bool,
    /// When its current process started, as this daemon recorded it.
    pub started_at_ms: i64,
}

/// Every instance's state, by `ID.REPLICA`, and the revision it was for.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub instances: BTreeMap<String, (u64, InstanceState)>,
}

impl Snapshot {
    /// The state of every instance the supervisor holds now.
    pub fn of(sup: &Supervisor) -> Snapshot {
        let mut instances = BTreeMap::new();
        for svc in sup.all() {
            for i in &svc.runtime().instances {
                let st = InstanceState {
                    restart_count: i.restart_count,
                    seccomp_denials: i.seccomp_denials,
                    last_denied: i.last_denied.clone(),
                    last_exit: i.last_exit.clone(),
                    ever_running: i.ever_running,
                    started_at_ms: i.started_at_ms,
                };
                instances.insert(format!("{}.{}", svc.id(), i.replica), (svc.revision, st));
            }
        }
        Snapshot { instances }
    }

    /// Restores what the snapshot holds for `svc`'s instances (of the same
    /// revision).
    pub fn apply(&self, svc: &Service) {
        for replica in 0..svc.spec.replicas {
            let Some((rev, st)) = self.instances.get(&format!("{}.{replica}", svc.id())) else { continue };
            if *rev != svc.revision {
                continue;
            }
            let st = st.clone();
            svc.update(replica, |i, _| {
                i.restart_count = st.restart_count;
                i.seccomp_denials = st.seccomp_denials;
                i.last_denied = st.last_denied;
                i.last_exit = st.last_exit;
                i.ever_running = st.ever_running;
                i.started_at_ms = st.started_at_ms;
            });
        }
    }

    /// Written to a fresh memfd, for the vault.
    pub fn to_memfd(&self) -> std::io::Result<OwnedFd> {
        let fd = sys::memfd(c"solo-snapshot").map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
        let mut f = std::fs::File::from(fd);
        serde_json::to_writer(&mut f, self)?;
        f.flush()?;
        Ok(OwnedFd::from(f))
    }
}

/// The snapshot a previous daemon left in the vault, if any (left there:
/// start-up forgets every vault entry it did not use).
pub fn take(found: &mut Adoptable) -> Snapshot {
    let Some(fd) = found.kept.get(NAME) else { return Snapshot::default() };
    let read = || -> std::io::Result<Snapshot> {
        let mut f = std::fs::File::from(fd.try_clone()?);
        f.rewind()?;
        let mut text = Vec::new();
        f.take(MAX_BYTES).read_to_end(&mut text)?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    };
    match read() {
        Ok(s) => {
            tracing::info!(
                instances = s.instances.len(),
                fd = fd.as_raw_fd(),
                "restored the previous daemon's snapshot"
            );
            s
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the previous daemon's snapshot; counters start over");
            Snapshot::default()
        }
    }
}
