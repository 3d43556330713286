//! Human tables and the protobuf JSON mapping for `--json`.

use crate::proto::v1 as pb;
use crate::spec::format_bytes;
use prost_reflect::{DescriptorPool, DynamicMessage};
use std::sync::OnceLock;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptor set is generated at build time from our own proto.
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap_or_default()
    })
}

/// Proto3 canonical JSON of a message (field names in lowerCamelCase).
pub fn json<M: prost::Message>(m: &M, full_name: &str) -> String {
    let Some(desc) = pool().get_message_by_name(full_name) else {
        return "{}".into();
    };
    let bytes = m.encode_to_vec();
    match DynamicMessage::decode(desc, bytes.as_slice()) {
        Ok(dm) => serde_json::to_string(&dm).unwrap_or_else(|_| "{}".into()),
        Err(_) => "{}".into(),
    }
}

pub fn service_state(v: i32) -> &'static str {
    match pb::ServiceState::try_from(v) {
        Ok(pb::ServiceState::Starting) => "starting",
        Ok(pb::ServiceState::Running) => "running",
        Ok(pb::ServiceState::Degraded) => "degraded",
        Ok(pb::ServiceState::Failed) => "failed",
        Ok(pb::ServiceState::Stopped) => "stopped",
        Ok(pb::ServiceState::Exited) => "exited",
        _ => "unknown",
    }
}

pub fn instance_state(v: i32) -> &'static str {
    match pb::InstanceState::try_from(v) {
        Ok(pb::InstanceState::Starting) => "starting",
        Ok(pb::InstanceState::Running) => "running",
        Ok(pb::InstanceState::Stopping) => "stopping",
        Ok(pb::InstanceState::Exited) => "exited",
        Ok(pb::InstanceState::Failed) => "failed",
        Ok(pb::InstanceState::Backoff) => "backoff",
        _ => "unknown",
    }
}

pub fn event_kind(v: i32) -> &'static str {
    match pb::EventKind::try_from(v) {
        Ok(pb::EventKind::Deployed) => "deployed",
        Ok(pb::EventKind::Started) => "started",
        Ok(pb::EventKind::Exited) => "exited",
        Ok(pb::EventKind::Restarted) => "restarted",
        Ok(pb::EventKind::Backoff) => "backoff",
        Ok(pb::EventKind::Failed) => "failed",
        Ok(pb::EventKind::OomKilled) => "oom-killed",
        Ok(pb::EventKind::Killed) => "killed",
        Ok(pb::EventKind::Removed) => "removed",
        Ok(pb::EventKind::LaunchFailed) => "launch-failed",
        Ok(pb::EventKind::Stopped) => "stopped",
        Ok(pb::EventKind::Lagged) => "lagged",
        _ => "event",
    }
}

/// A left-aligned text table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn pids(s: &pb::ServiceStatus) -> String {
    let p: Vec<String> = s.instances.iter().filter(|i| i.pid != 0).map(|i| i.pid.to_string()).collect();
    if p.is_empty() {
        "-".into()
    } else {
        p.join(",")
    }
}

pub fn list(services: &[pb::ServiceStatus]) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let running = s.instances.iter().filter(|i| i.state == pb::InstanceState::Running as i32).count();
            let restarts: u32 = s.instances.iter().map(|i| i.restart_count).sum();
            let mem: u64 = s.instances.iter().filter_map(|i| i.usage.as_ref()).map(|u| u.memory_bytes).sum();
            vec![
                s.id.clone(),
                service_state(s.state).to_owned(),
                format!("{running}/{}", s.replicas),
                pids(s),
                restarts.to_string(),
                format_bytes(mem),
                s.profile.clone(),
                s.artifact_kind.clone(),
            ]
        })
        .collect();
    table(&["ID", "STATE", "READY", "PIDS", "RESTARTS", "MEMORY", "PROFILE", "ARTIFACT"], &rows)
}

pub fn status(s: &pb::ServiceStatus) -> String {
    let mut out = String::new();
    let l = s.limits.unwrap_or_default();
    let r = s.restart.unwrap_or_default();
    let policy = match pb::RestartPolicy::try_from(r.policy) {
        Ok(pb::RestartPolicy::Always) => "always",
        Ok(pb::RestartPolicy::Never) => "never",
        _ => "on-failure",
    };
    out.push_str(&format!("service:   {}\n", s.id));
    out.push_str(&format!("state:     {}\n", service_state(s.state)));
    if !s.failure_reason.is_empty() {
        out.push_str(&format!("failure:   {}\n", s.failure_reason));
    }
    out.push_str(&format!("revision:  {}\n", s.revision));
    out.push_str(&format!("tier:      {}\n", if s.tier == pb::Tier::System as i32 { "system" } else { "user" }));
    out.push_str(&format!("artifact:  {} sha256:{}\n", s.artifact_kind, s.artifact_sha256));
    out.push_str(&format!("profile:   {} sha256:{}\n", s.profile, s.profile_sha256));
    out.push_str(&format!("uid/gid:   {}\n", s.uid));
    if !s.grants.is_empty() {
        let g: Vec<String> = s.grants.iter().map(|g| format!("{}={}", g.name, g.spec)).collect();
        out.push_str(&format!("grants:    solo-control (fd 3), {}\n", g.join(", ")));
    }
    if let Some(r) = &s.readiness {
        let kind = match pb::ReadinessKind::try_from(r.kind) {
            Ok(pb::ReadinessKind::Notify) => "notify (READY=1 on $NOTIFY_SOCKET)".to_owned(),
            Ok(pb::ReadinessKind::Tcp) => format!("tcp (grant {} accepts)", r.tcp_grant),
            _ => String::new(),
        };
        if !kind.is_empty() {
            out.push_str(&format!("ready:     {kind}, within {} ms\n", r.startup_timeout_ms));
        }
    }
    let cpu_max = if l.cpu_max_millicores == 0 { "unlimited".to_owned() } else { format!("{}m", l.cpu_max_millicores) };
    out.push_str(&format!(
        "limits:    memory {}  cpu weight {}  cpu max {}  pids {}  open files {}\n",
        format_bytes(l.memory_bytes),
        l.cpu_weight,
        cpu_max,
        l.max_pids,
        l.max_open_files
    ));
    out.push_str(&format!(
        "restart:   {policy}, at most {} within {}s, backoff {}ms..{}ms\n",
        r.max_restarts, r.within_seconds, r.backoff_initial_ms, r.backoff_max_ms
    ));
    let rows: Vec<Vec<String>> = s
        .instances
        .iter()
        .map(|i| {
            let u = i.usage.unwrap_or_default();
            vec![
                i.replica.to_string(),
                instance_state(i.state).to_owned(),
                if i.pid == 0 { "-".into() } else { i.pid.to_string() },
                if i.pid == 0 { "-".into() } else { duration_ms(i.uptime_ms) },
                i.restart_count.to_string(),
                format_bytes(u.memory_bytes),
                format!("{:.2}s", u.cpu_usage_usec as f64 / 1e6),
                u.pids.to_string(),
                i.last_exit.as_ref().map(|e| e.reason.clone()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &["REPLICA", "STATE", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU", "TASKS", "LAST EXIT"],
        &rows,
    ));
    if let Some(i) = s.instances.first() {
        out.push_str(&format!("\n\ncgroup:    {}", i.cgroup.replace(';', "\n           ")));
    }
    for i in &s.instances {
        if i.sandbox.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n\nsandbox of replica {} (profile {} sha256:{}, {} denied syscalls):",
            i.replica,
            i.profile,
            &i.profile_sha256.get(..12).unwrap_or(""),
            i.seccomp_denials
        ));
        for l in &i.sandbox {
            out.push_str(&format!("\n  {:<13} {:<9} {}", l.name, l.state, l.detail));
        }
    }
    out
}
