//! What the bench targets share: the daemon they start and the /proc
//! readings that tell a quiet run from a disturbed one. Included with
//! `#[path]` (a directory without `main.rs` is not a target of its own).

pub mod daemon;
pub mod procfs;
