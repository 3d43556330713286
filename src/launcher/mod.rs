//! The launcher: a small single-threaded process (`solo __launcher`) that
//! the daemon execs once. It owns every `clone3`, so no sandbox work ever
//! runs in a forked copy of the multi-threaded tokio daemon, and spawn cost
//! does not grow with the daemon's size (SPEC §4).
//!
//! It is the parent (and a child subreaper) of every service: it reaps them
//! and reports each exit over the same socket it receives plans on, so an
//! exit is always reported after the spawn that produced the pid. It
//! outlives the daemon: a daemon that crashed or re-exec'd itself attaches
//! again and takes back the live children and the descriptors kept for
//! them (docs/architecture.md, "Re-adoption").
//!
//! Invariant: single-threaded, blocking, no tokio; nothing here runs in the
//! daemon's address space.

pub mod protocol;
pub mod server;
mod spawn;
