//! The sandbox: everything that touches the kernel to place and confine a
//! service. Synchronous by design — nothing here imports tokio, tonic,
//! rusqlite or the supervisor, so it can run in the single-threaded
//! launcher and be lifted into its own crate unchanged.
//!
//! - [`plan`]: the serialisable launch plan the daemon sends the launcher.
//! - [`steps`]: the ordered launch sequence run in the new child; one file
//!   per layer below does the work of its steps.
//! - [`cgroup`]: per-instance cgroups (v2, or v1 per controller on hybrid hosts).
//! - [`namespaces`], [`mounts`], [`caps`], [`landlock`], [`seccomp`].
//! - [`probe`]: what this host can enforce (for `solo doctor`).
//! - [`sys`]: the only module with `unsafe`: raw syscalls.

pub mod caps;
pub mod cgroup;
pub mod landlock;
pub mod mounts;
pub mod namespaces;
pub mod plan;
pub mod probe;
pub mod seccomp;
pub mod steps;
pub mod sys;

/// For unit tests that need root: whether this is root. Otherwise the test
/// prints why it is skipped, or fails under `CI=true`, which must run them.
#[cfg(test)]
pub(crate) fn test_has_root(why: &str) -> bool {
    if sys::geteuid() == 0 {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must run the unit tests as root ({why})");
    eprintln!("skipped: needs root ({why})");
    false
}
