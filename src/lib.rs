//! Solo: a Linux supervisor that runs every service an AI agent deploys as
//! its own OS process in its own sandbox, restarts what crashes, and is
//! driven over gRPC.
//!
//! # Architecture
//!
//! ```text
//!  solo CLI / any gRPC client
//!        │  unix socket (0600) or TCP
//!  ┌─────▼──────────────── solo serve (tokio) ─────────────────────────┐
//!  │ api/        thin tonic adapters, proto ⇄ domain, one error map     │
//!  │ supervisor/ services, instance tasks, restart policy, logs, events │
//!  │ store/      SQLite (WAL): desired state, revisions, events         │
//!  └─────┬──────────────────────────────────────────────────────────────┘
//!        │ SOCK_SEQPACKET: launch plans in, pidfds + exits out
//!  ┌─────▼──── solo __launcher (single-threaded, exec'd once) ──────────┐
//!  │ launcher/   clone3(CLONE_INTO_CGROUP|CLONE_PIDFD), reap, report    │
//!  │ sandbox/    ordered launch steps in the child, cgroups, raw sys    │
//!  └─────┬──────────────────────────────────────────────────────────────┘
//!        ▼ service processes, each in its own cgroup, own uid
//! ```
//!
//! # Module map and import rules
//!
//! - [`spec`]: domain types and validation; imports nothing from the crate.
//! - [`sandbox`]: synchronous; never imports tokio, tonic, rusqlite or the
//!   supervisor. [`sandbox::sys`] is the only module with `unsafe`.
//! - [`launcher`]: the single-threaded launcher process.
//! - [`supervisor`]: the daemon's core; [`store`] persists it.
//! - [`api`]: gRPC adapters. [`cli`]: the client; it depends on the
//!   generated client, [`spec`] helpers and (for `doctor`) [`sandbox::probe`],
//!   never on the supervisor, the store or the daemon.
//! - [`mcp`]: `solo mcp`, an MCP server for agents; [`ui`]: the operator's
//!   live web view. Both are clients of the API like [`cli`] (they import
//!   [`cli`], [`proto`], [`spec`], [`auth`], [`profiles`]), never the
//!   supervisor, the store, the api or the daemon.
//! - [`daemon`]: `solo serve` (flags, start-up checks, signals); it may
//!   start [`ui`], which still reaches it only through the gRPC socket.
//! - [`profiles`]: embedded sandbox profiles.
//! - [`auth`]: signed, attenuable tokens (pure library: key file, format,
//!   verification, authorization); imports only [`sandbox::sys`] (geteuid).
//! - [`audit`]: the audit log's rules (record, hash chain, signed anchors,
//!   verification, coalescing, retention); pure, imports nothing from the
//!   crate. The store keeps the chain, the supervisor feeds it.
//! - [`metrics`]: Prometheus registry, text format and HTTP endpoint;
//!   imports nothing from the crate (the supervisor renders its services
//!   with it).

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod daemon;
pub mod launcher;
pub mod mcp;
pub mod metrics;
pub mod profiles;
pub mod sandbox;
pub mod spec;
pub mod store;
pub mod supervisor;
pub mod ui;

/// Generated gRPC code for `proto/solo/v1/solo.proto`.
pub mod proto {
    #[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("solo.v1");
    }
    /// Encoded descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/solo_descriptor.bin"));
}
