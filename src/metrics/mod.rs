//! Prometheus metrics (`docs/metrics.md`): the daemon's own figures as
//! lock-free histograms and counters ([`Registry`]), the text format
//! ([`text`]), and the HTTP endpoint ([`http`]). Per-service series are
//! rendered by the supervisor from its registry and the usage sampled in
//! the background; a scrape reads no cgroup file.
//!
//! Invariant: recording is a few relaxed atomic adds (no lock, no
//! allocation), and the label sets are fixed here (methods) or bounded by
//! the services held (capped at [`MAX_SERVICES`]), so cardinality is bounded.

pub mod histogram;
pub mod http;
pub mod text;

pub use histogram::Histogram;
use std::sync::atomic::AtomicU64;

/// Services whose series a scrape carries at most (the rest are counted in
/// `solo_metrics_services_omitted`).
pub const MAX_SERVICES: usize = 5_000;

/// `solo.v1.Solo` methods (and the other services) timed per method; any
/// other path is `other`.
pub const METHODS: [&str; 17] = [
    "Deploy",
    "Status",
    "List",
    "Kill",
    "Watch",
    "GrantCapability",
    "RevokeCapability",
    "Update",
    "Shutdown",
    "Audit",
    "AuditVerify",
    "AuditExplain",
    "Reexec",
    "Info",
    "Health",
    "Reflection",
    "other",
];

/// Buckets of `solo_grpc_request_duration_seconds`.
pub static RPC_S: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets of `solo_spawn_duration_seconds`.
pub static SPAWN_S: [f64; 12] = [0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.008, 0.01, 0.025, 0.05, 0.1, 0.5];
/// Buckets of `solo_service_startup_seconds`.
pub static STARTUP_S: [f64; 14] = [0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0];

/// The daemon's own figures.
pub struct Registry {
    /// Per entry of [`METHODS`].
    pub rpc: Vec<Histogram>,
    pub spawn: Histogram,
    pub startup: Histogram,
    /// Services created by Deploy since the daemon started.
    pub deployments: AtomicU64,
    /// How long the previous scrape took to render, in microseconds.
    pub last_scrape_us: AtomicU64,
    /// How long the latest round sampling every instance's usage took
    /// (cgroup reads on the blocking pool), in microseconds.
    pub last_sample_us: AtomicU64,
    /// When the daemon started, unix seconds.
    pub started_unix: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            rpc: METHODS.iter().map(|_| Histogram::new(&RPC_S)).collect(),
            spawn: Histogram::new(&SPAWN_S),
            startup: Histogram::new(&STARTUP_S),
            deployments: AtomicU64::new(0),
            last_scrape_us: AtomicU64::new(0),
            last_sample_us: AtomicU64::new(0),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

impl Registry {
    /// The [`METHODS`] index of a gRPC path (`/solo.v1.Solo/Deploy`).
    pub fn method_index(path: &str) -> usize {
        let other = METHODS.len() - 1;
        if path.starts_with("/grpc.health.") {
            return other - 2;
        }
        if path.starts_with("/grpc.reflection.") {
            return other - 1;
        }
        path.strip_prefix("/solo.v1.Solo/")
            .and_then(|m| METHODS[..other - 2].iter().position(|x| *x == m))
            .unwrap_or(other)
    }

    /// Records one RPC's duration.
    pub fn rpc_done(&self, path: &str, elapsed: std::time::Duration) {
        self.rpc[Self::method_index(path)].observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_a_bounded_set() {
        assert_eq!(METHODS[Registry::method_index("/solo.v1.Solo/Deploy")], "Deploy");
        assert_eq!(METHODS[Registry::method_index("/solo.v1.Solo/AuditExplain")], "AuditExplain");
        assert_eq!(METHODS[Registry::method_index("/grpc.health.v1.Health/Check")], "Health");
        assert_eq!(
            METHODS[Registry::method_index("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")],
            "Reflection"
        );
        assert_eq!(METHODS[Registry::method_index("/solo.v1.Solo/Health")], "other");
        assert_eq!(METHODS[Registry::method_index("/x/y")], "other");
    }
}
