//! One Prometheus scrape (`docs/metrics.md`): the daemon's figures and one
//! set of series per service, from what the supervisor already holds and
//! the usage the monitor sampled. No cgroup file is read here: a scrape of
//! 5,000 services is a walk over their runtime locks.

use super::service::{derive_state, InstanceState, ServiceState};
use super::Supervisor;
use crate::metrics::text::{Type, Writer};
use crate::metrics::{MAX_SERVICES, METHODS};
use std::sync::atomic::Ordering;
use std::time::Instant;

const STATES: [ServiceState; 7] = [
    ServiceState::Starting,
    ServiceState::Running,
    ServiceState::Degraded,
    ServiceState::Failed,
    ServiceState::Stopped,
    ServiceState::Exited,
    ServiceState::Quarantined,
];

/// One service's figures, read under its lock once.
struct Row {
    id: String,
    state: ServiceState,
    replicas: u32,
    ready: u32,
    memory: u64,
    memory_limit: u64,
    cpu_usec: u64,
    cpu_limit: Option<u32>,
    pids: u64,
    restarts: u64,
    denials: u64,
    ooms: u64,
    limit_hits: u64,
}

/// `VmRSS` of this process in bytes, and its CPU time in seconds
/// (`/proc/self/stat` utime + stime, in USER_HZ = 100 ticks per second,
/// fixed by the kernel ABI).
fn own_process() -> (u64, f64) {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state is field 3, utime 14 and stime 15.
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (rss, cpu as f64 / 100.0)
}

impl Supervisor {
    /// The whole exposition, in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let t0 = Instant::now();
        let services = self.all();
        let omitted = services.len().saturating_sub(MAX_SERVICES);
        let rows: Vec<Row> = services
            .iter()
            .take(MAX_SERVICES)
            .map(|s| {
                let rt = s.runtime();
                let mut r = Row {
                    id: s.id().to_owned(),
                    state: derive_state(&rt),
                    replicas: s.spec.replicas,
                    ready: 0,
                    memory: 0,
                    memory_limit: s.spec.limits.memory_bytes,
                    cpu_usec: 0,
                    cpu_limit: s.spec.limits.cpu_max_millicores,
                    pids: 0,
                    restarts: 0,
                    denials: 0,
                    ooms: 0,
                    limit_hits: 0,
                };
                for i in &rt.instances {
                    r.ready += u32::from(i.state == InstanceState::Running);
                    if let (Some((_, u)), true) = (&i.usage, i.pid != 0) {
                        r.memory += u.memory_bytes;
                        r.cpu_usec += u.cpu_usage_usec;
                        r.pids += u.pids;
                    }
                    r.restarts += u64::from(i.restart_count);
                    r.denials += i.seccomp_denials;
                    r.ooms += i.oom_kills;
                    r.limit_hits += i.limit_hits;
                }
                r
            })
            .collect();
        let mut w = Writer::with_capacity(1024 + rows.len() * 900);
        self.daemon_series(&mut w, &rows, services.len(), omitted);
        service_series(&mut w, &rows);
        let out = w.finish();
        self.metrics.last_scrape_us.store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        out
    }

    fn daemon_series(&self, w: &mut Writer, rows: &[Row], held: usize, omitted: usize) {
        let m = &self.metrics;
        w.family("solo_build_info", Type::Gauge, "The running solo's version.");
        w.sample("solo_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        w.family(
            "solo_deployment_count",
            Type::Untyped,
            "Services deployed and held, in any state (a gauge; untyped because the _count suffix is reserved for histograms).",
        );
        w.sample("solo_deployment_count", &[], held as f64);
        w.family("solo_active_services", Type::Gauge, "Services whose every instance is running.");
        w.sample("solo_active_services", &[], rows.iter().filter(|r| r.state == ServiceState::Running).count() as f64);
        w.family("solo_services", Type::Gauge, "Services held, by state.");
        for st in STATES {
            w.sample("solo_services", &[("state", st.as_str())], rows.iter().filter(|r| r.state == st).count() as f64);
        }
        w.family("solo_deployments_total", Type::Counter, "Services created by Deploy since the daemon started.");
        w.sample("solo_deployments_total", &[], m.deployments.load(Ordering::Relaxed) as f64);
        w.family(
            "solo_grpc_request_duration_seconds",
            Type::Histogram,
            "gRPC requests by method, from the request to the start of the answer (for streams: until the stream opens). The seed's solo_grpc_request_duration_ms, in base units.",
        );
        for (i, name) in METHODS.iter().enumerate() {
            w.histogram("solo_grpc_request_duration_seconds", &[("method", name)], &m.rpc[i].snapshot());
        }
        w.family("solo_spawn_duration_seconds", Type::Histogram, "Launcher time per spawn: plan received to exec.");
        w.histogram("solo_spawn_duration_seconds", &[], &m.spawn.snapshot());
        w.family(
            "solo_service_startup_seconds",
            Type::Histogram,
            "Instance start to running (ready, when the service has a readiness check), per start and restart. The seed's solo_service_startup_ms, in base units.",
        );
        w.histogram("solo_service_startup_seconds", &[], &m.startup.snapshot());
        w.family("solo_audit_chain_length", Type::Gauge, "Sequence number of the newest audit record.");
        w.sample("solo_audit_chain_length", &[], self.store.audit_head_seq() as f64);
        w.family(
            "solo_auth_refusals_total",
            Type::Counter,
            "Requests refused for their token since the daemon started.",
        );
        w.sample("solo_auth_refusals_total", &[], self.tokens.denials.load(Ordering::Relaxed) as f64);
        let (rss, cpu) = own_process();
        w.family("process_resident_memory_bytes", Type::Gauge, "Resident memory of the solo daemon.");
        w.sample("process_resident_memory_bytes", &[], rss as f64);
        w.family("process_cpu_seconds_total", Type::Counter, "CPU time of the solo daemon (user + system).");
        w.sample("process_cpu_seconds_total", &[], cpu);
        w.family("process_start_time_seconds", Type::Gauge, "When the solo daemon started, unix seconds.");
        w.sample("process_start_time_seconds", &[], m.started_unix as f64);
        w.family("solo_metrics_scrape_duration_seconds", Type::Gauge, "How long the previous scrape took to render.");
        w.sample("solo_metrics_scrape_duration_seconds", &[], m.last_scrape_us.load(Ordering::Relaxed) as f64 / 1e6);
        w.family(
            "solo_metrics_sample_duration_seconds",
            Type::Gauge,
            "How long the latest round reading every running instance's cgroup usage took (every 5 s).",
        );
        w.sample("solo_metrics_sample_duration_seconds", &[], m.last_sample_us.load(Ordering::Relaxed) as f64 / 1e6);
        w.family(
            "solo_metrics_services_omitted",
            Type::Gauge,
            "Services beyond the 5,000 whose series a scrape carries (bounded cardinality).",
        );
        w.sample("solo_metrics_services_omitted", &[], omitted as f64);
    }
}

fn service_series(w: &mut Writer, rows: &[Row]) {
    type Get = fn(&Row) -> Option<f64>;
    let families: [(&str, Type, &str, Get); 12] = [
        ("solo_service_replicas", Type::Gauge, "Instances the service should run.", |r| Some(f64::from(r.replicas))),
        ("solo_service_ready_replicas", Type::Gauge, "Instances running (and ready).", |r| Some(f64::from(r.ready))),
        ("solo_service_memory_bytes", Type::Gauge, "Memory in use (cgroup), sampled every few seconds.", |r| {
            Some(r.memory as f64)
        }),
        ("solo_service_memory_limit_bytes", Type::Gauge, "The service's memory_bytes.", |r| {
            Some(r.memory_limit as f64)
        }),
        (
            "solo_service_cpu_seconds_total",
            Type::Counter,
            "CPU time of the running instances (cgroup), sampled.",
            |r| Some(r.cpu_usec as f64 / 1e6),
        ),
        ("solo_service_cpu_limit_millicores", Type::Gauge, "The service's cpu_max_millicores (absent: none).", |r| {
            r.cpu_limit.map(f64::from)
        }),
        ("solo_service_pids", Type::Gauge, "Processes and threads (cgroup), sampled.", |r| Some(r.pids as f64)),
        ("solo_restarts_total", Type::Counter, "Restarts of the service's instances.", |r| Some(r.restarts as f64)),
        ("solo_seccomp_denials_total", Type::Counter, "Syscalls denied by the service's filters.", |r| {
            Some(r.denials as f64)
        }),
        (
            "solo_oom_kills_total",
            Type::Counter,
            "Instances ended by the kernel's OOM killer at the memory limit.",
            |r| Some(r.ooms as f64),
        ),
        (
            "solo_limit_hits_total",
            Type::Counter,
            "Times the service reached its memory or CPU limit (limit_exceeded_action).",
            |r| Some(r.limit_hits as f64),
        ),
        ("solo_service_up", Type::Gauge, "1 when every instance runs, else 0.", |r| {
            Some(if r.state == ServiceState::Running { 1.0 } else { 0.0 })
        }),
    ];
    for (name, kind, help, get) in families {
        w.family(name, kind, help);
        for r in rows {
            if let Some(v) = get(r) {
                w.sample(name, &[("service", &r.id)], v);
            }
        }
    }
    w.family("solo_service_state", Type::Gauge, "The service's state: 1 for the current one.");
    for r in rows {
        w.sample("solo_service_state", &[("service", &r.id), ("state", r.state.as_str())], 1.0);
    }
}
