//! Human tables and the protobuf JSON mapping for `--json`.

use crate::proto::v1 as pb;
use crate::spec::format_bytes;

pub use super::protojson::json;

pub fn service_state(v: i32) -> &'static str {
    match pb::ServiceState::try_from(v) {
        Ok(pb::ServiceState::Starting) => "starting",
        Ok(pb::ServiceState::Running) => "running",
        Ok(pb::ServiceState::Degraded) => "degraded",
        Ok(pb::ServiceState::Failed) => "failed",
        Ok(pb::ServiceState::Stopped) => "stopped",
        Ok(pb::ServiceState::Exited) => "exited",
        Ok(pb::ServiceState::Quarantined) => "quarantined",
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
        Ok(pb::InstanceState::Quarantined) => "quarantined",
        _ => "unknown",
    }
}

/// What `solo shutdown` prints: each instance stopped, tier by tier.
pub fn shutdown(r: &pb::ShutdownResponse) -> String {
    let rows: Vec<Vec<String>> = r
        .instances
        .iter()
        .map(|i| {
            vec![
                if i.tier == pb::Tier::System as i32 { "system".into() } else { "user".into() },
                if i.revision > 1 {
                    format!("{}.{}.r{}", i.service, i.replica, i.revision)
                } else {
                    format!("{}.{}", i.service, i.replica)
                },
                i.pid.to_string(),
                format!("{} ms", i.stop_ms),
                if i.sigkilled { "SIGKILLed".into() } else { "exited".into() },
                i.how.clone(),
            ]
        })
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&table(&["TIER", "INSTANCE", "PID", "STOPPED AFTER", "STOP", "HOW"], &rows));
        out.push('\n');
    }
    out.push_str(&format!(
        "stopped {} instance(s), {} SIGKILLed after their grace; the daemon is exiting",
        r.stopped, r.sigkilled
    ));
    out
}

/// Who an event is about, as `solo watch` prints it: `web.0`, `web.0.r2`
/// (an instance of revision 2, named like its cgroup), or `web` for an
/// update's events.
pub fn event_source(e: &pb::Event) -> String {
    use pb::EventKind as K;
    match K::try_from(e.kind) {
        Ok(K::Updating | K::Updated | K::RolledBack) => e.service.clone(),
        _ if e.revision > 1 => format!("{}.{}.r{}", e.service, e.replica, e.revision),
        _ => format!("{}.{}", e.service, e.replica),
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
        Ok(pb::EventKind::SeccompDenied) => "seccomp-denied",
        Ok(pb::EventKind::Quarantined) => "quarantined",
        Ok(pb::EventKind::AccessDenied) => "access-denied",
        Ok(pb::EventKind::Granted) => "granted",
        Ok(pb::EventKind::Revoked) => "revoked",
        Ok(pb::EventKind::LimitExceeded) => "limit-exceeded",
        Ok(pb::EventKind::Adopted) => "adopted",
        Ok(pb::EventKind::Updating) => "updating",
        Ok(pb::EventKind::Updated) => "updated",
        Ok(pb::EventKind::RolledBack) => "rolled-back",
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

/// `memory 256MiB  cpu weight 100  cpu max unlimited  pids 64  open files
/// 1024  at the limit: memory kill, cpu throttle`.
pub fn limits_line(l: &pb::Limits) -> String {
    let cpu_max = if l.cpu_max_millicores == 0 { "unlimited".to_owned() } else { format!("{}m", l.cpu_max_millicores) };
    let (mem, cpu) = match pb::LimitAction::try_from(l.limit_exceeded_action) {
        Ok(pb::LimitAction::Kill) => ("kill", "kill"),
        Ok(pb::LimitAction::Throttle) => ("throttle", "throttle"),
        Ok(pb::LimitAction::Warn) => ("warn", "warn"),
        _ => ("kill", "throttle"),
    };
    format!(
        "memory {}  cpu weight {}  cpu max {}  pids {}  open files {}  at the limit: memory {mem}, cpu {cpu}",
        format_bytes(l.memory_bytes),
        l.cpu_weight,
        cpu_max,
        l.max_pids,
        l.max_open_files
    )
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
    out.push_str(&super::update::status_lines(s));
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
    out.push_str(&format!("limits:    {}\n", limits_line(&l)));
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
                i.revision.to_string(),
                if i.frozen {
                    format!("{} (frozen)", instance_state(i.state))
                } else {
                    instance_state(i.state).to_owned()
                },
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
        &["REPLICA", "REV", "STATE", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU", "TASKS", "LAST EXIT"],
        &rows,
    ));
    if s.revisions.len() > 1 || s.revisions.iter().any(|r| !r.note.is_empty()) {
        let rows: Vec<Vec<String>> = s
            .revisions
            .iter()
            .map(|r| {
                vec![
                    format!("{}{}", r.revision, if r.current { " *" } else { "" }),
                    format!("{} {}", r.artifact_kind, r.artifact_sha256.get(..12).unwrap_or("")),
                    r.profile.clone(),
                    r.replicas.to_string(),
                    if r.activated_at_unix_ms == 0 { "never".into() } else { "yes".into() },
                    if r.note.is_empty() { "-".into() } else { r.note.clone() },
                ]
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(&["REVISION", "ARTIFACT", "PROFILE", "REPLICAS", "RAN", "NOTE"], &rows));
    }
    if let Some(i) = s.instances.first() {
        out.push_str(&format!("\n\ncgroup:    {}", i.cgroup.replace(';', "\n           ")));
    }
    for i in &s.instances {
        if i.sandbox.is_empty() {
            continue;
        }
        let last = if i.last_denied_syscall.is_empty() {
            String::new()
        } else {
            format!(", the last {}", i.last_denied_syscall)
        };
        out.push_str(&format!(
            "\n\nsandbox of replica {} (profile {} sha256:{}, {} denied syscall{}{last}):",
            i.replica,
            i.profile,
            &i.profile_sha256.get(..12).unwrap_or(""),
            i.seccomp_denials,
            if i.seccomp_denials == 1 { "" } else { "s" }
        ));
        for l in &i.sandbox {
            out.push_str(&format!("\n  {:<13} {:<9} {}", l.name, l.state, l.detail));
        }
    }
    out
}
