//! Every proto ⇄ domain conversion, in one place.

use crate::proto::v1 as pb;
use crate::spec::update::{RawStrategy, StrategyKind};
use crate::spec::{self, ArtifactSpec, RawSpec, RestartPolicy, Tier};
use crate::supervisor::events::{Event, EventKind, LogLine, Stream};
use crate::supervisor::restart::{Exit, ExitHow};
use crate::supervisor::service::{InstanceState, ServiceState};
use crate::supervisor::update::Progress;
use crate::supervisor::{InstanceView, ServiceView, ShutdownReport};
use tonic::Status;

pub fn check_id(field: &str, id: &str) -> Result<(), Status> {
    spec::validate_service_id(id).map_err(|r| Status::invalid_argument(format!("{field}: {r}")))
}

/// Proto spec → the validator's raw input (no checks here beyond enums).
pub fn raw_spec(s: pb::ServiceSpec) -> RawSpec {
    let limits = s.limits.unwrap_or_default();
    let restart = s.restart.unwrap_or_default();
    let artifact = s.artifact.and_then(|a| a.kind).map(|k| match k {
        pb::artifact::Kind::Executable(e) => ArtifactSpec::Executable { content: e.content, sha256: Some(e.sha256) },
        pb::artifact::Kind::Script(sc) => {
            ArtifactSpec::Script { interpreter: sc.interpreter, source: sc.source, sha256: Some(sc.sha256) }
        }
        pb::artifact::Kind::HostPath(h) => ArtifactSpec::HostPath { path: h.path },
    });
    let readiness = s.readiness.unwrap_or_default();
    let readiness_kind = match pb::ReadinessKind::try_from(readiness.kind) {
        Ok(pb::ReadinessKind::Unspecified | pb::ReadinessKind::None) => String::new(),
        Ok(pb::ReadinessKind::Notify) => "notify".to_owned(),
        Ok(pb::ReadinessKind::Tcp) => "tcp".to_owned(),
        Err(_) => format!("unknown kind {}", readiness.kind),
    };
    RawSpec {
        id: s.id,
        artifact,
        args: s.args,
        env: s.env.into_iter().collect(),
        profile: s.profile,
        memory_bytes: limits.memory_bytes,
        memory_high_bytes: limits.memory_high_bytes,
        cpu_weight: limits.cpu_weight,
        cpu_max_millicores: limits.cpu_max_millicores,
        max_pids: limits.max_pids,
        max_open_files: limits.max_open_files,
        limit_exceeded_action: match pb::LimitAction::try_from(limits.limit_exceeded_action) {
            Ok(pb::LimitAction::Unspecified) => String::new(),
            Ok(pb::LimitAction::Kill) => "kill".to_owned(),
            Ok(pb::LimitAction::Throttle) => "throttle".to_owned(),
            Ok(pb::LimitAction::Warn) => "warn".to_owned(),
            Err(_) => format!("unknown action {}", limits.limit_exceeded_action),
        },
        restart_policy: match pb::RestartPolicy::try_from(restart.policy) {
            Ok(pb::RestartPolicy::Always) => Some(RestartPolicy::Always),
            Ok(pb::RestartPolicy::OnFailure) => Some(RestartPolicy::OnFailure),
            Ok(pb::RestartPolicy::Never) => Some(RestartPolicy::Never),
            _ => None,
        },
        max_restarts: restart.max_restarts,
        within_seconds: restart.within_seconds,
        backoff_initial_ms: restart.backoff_initial_ms,
        backoff_max_ms: restart.backoff_max_ms,
        backoff_jitter: restart.backoff_jitter,
        reset_after_seconds: restart.reset_after_seconds,
        replicas: s.replicas,
        tier: match pb::Tier::try_from(s.tier) {
            Ok(pb::Tier::System) => Some(Tier::System),
            Ok(pb::Tier::User) => Some(Tier::User),
            _ => None,
        },
        shutdown_timeout_ms: s.shutdown_timeout_ms,
        labels: s.labels.into_iter().collect(),
        readiness_kind,
        startup_timeout_ms: readiness.startup_timeout_ms,
        tcp_grant: readiness.tcp_grant,
        grants: s.grants.into_iter().map(|g| (g.spec, g.name)).collect(),
        listen_only: s.socket_activation == pb::SocketActivation::ListenOnly as i32,
    }
}

pub fn service_state_filter(v: i32) -> Result<Option<ServiceState>, Status> {
    Ok(match pb::ServiceState::try_from(v) {
        Ok(pb::ServiceState::Unspecified) => None,
        Ok(pb::ServiceState::Starting) => Some(ServiceState::Starting),
        Ok(pb::ServiceState::Running) => Some(ServiceState::Running),
        Ok(pb::ServiceState::Degraded) => Some(ServiceState::Degraded),
        Ok(pb::ServiceState::Failed) => Some(ServiceState::Failed),
        Ok(pb::ServiceState::Stopped) => Some(ServiceState::Stopped),
        Ok(pb::ServiceState::Exited) => Some(ServiceState::Exited),
        Ok(pb::ServiceState::Quarantined) => Some(ServiceState::Quarantined),
        Err(_) => return Err(Status::invalid_argument(format!("state: {v} is not a ServiceState"))),
    })
}

pub fn tier_filter(v: i32) -> Result<Option<Tier>, Status> {
    Ok(match pb::Tier::try_from(v) {
        Ok(pb::Tier::Unspecified) => None,
        Ok(pb::Tier::User) => Some(Tier::User),
        Ok(pb::Tier::System) => Some(Tier::System),
        Err(_) => return Err(Status::invalid_argument(format!("tier: {v} is not a Tier"))),
    })
}

fn service_state(s: ServiceState) -> pb::ServiceState {
    match s {
        ServiceState::Starting => pb::ServiceState::Starting,
        ServiceState::Running => pb::ServiceState::Running,
        ServiceState::Degraded => pb::ServiceState::Degraded,
        ServiceState::Failed => pb::ServiceState::Failed,
        ServiceState::Stopped => pb::ServiceState::Stopped,
        ServiceState::Exited => pb::ServiceState::Exited,
        ServiceState::Quarantined => pb::ServiceState::Quarantined,
    }
}

fn instance_state(s: InstanceState) -> pb::InstanceState {
    match s {
        InstanceState::Starting => pb::InstanceState::Starting,
        InstanceState::Running => pb::InstanceState::Running,
        InstanceState::Stopping => pb::InstanceState::Stopping,
        InstanceState::Exited => pb::InstanceState::Exited,
        InstanceState::Failed => pb::InstanceState::Failed,
        InstanceState::Backoff => pb::InstanceState::Backoff,
        InstanceState::Quarantined => pb::InstanceState::Quarantined,
    }
}

pub fn limit_action(a: spec::LimitAction) -> pb::LimitAction {
    match a {
        spec::LimitAction::Default => pb::LimitAction::Unspecified,
        spec::LimitAction::Kill => pb::LimitAction::Kill,
        spec::LimitAction::Throttle => pb::LimitAction::Throttle,
        spec::LimitAction::Warn => pb::LimitAction::Warn,
    }
}

pub fn exit(e: &Exit) -> pb::ExitInfo {
    pb::ExitInfo {
        how: Some(match e.how {
            ExitHow::Code(c) => pb::exit_info::How::Code(c),
            ExitHow::Signal(s) => pb::exit_info::How::Signal(s),
        }),
        oom_killed: e.oom_killed,
        reason: e.reason.clone(),
        at_unix_ms: e.at_ms,
        cause: e.cause.as_str().to_owned(),
    }
}

pub fn instance(i: &InstanceView) -> pb::Instance {
    pb::Instance {
        replica: i.replica,
        state: instance_state(i.state) as i32,
        pid: i.pid,
        cgroup: i.cgroup.clone(),
        started_at_unix_ms: i.started_at_ms,
        uptime_ms: i.uptime_ms,
        restart_count: i.restart_count,
        last_exit: i.last_exit.as_ref().map(exit),
        usage: i.usage.map(|u| pb::Usage {
            memory_bytes: u.memory_bytes,
            cpu_usage_usec: u.cpu_usage_usec,
            pids: u.pids,
        }),
        uid: i.uid,
        gid: i.uid,
        spawn_us: i.spawn_us,
        profile: i.profile.clone(),
        profile_sha256: i.profile_sha256.clone(),
        sandbox: i
            .enforcement
            .layers
            .iter()
            .map(|l| pb::SandboxLayer { name: l.name.clone(), state: l.state.clone(), detail: l.detail.clone() })
            .collect(),
        seccomp_denials: i.seccomp_denials,
        last_denied_syscall: i.last_denied.clone().unwrap_or_default(),
        revision: i.revision,
        frozen: i.frozen,
    }
}

pub fn service(v: &ServiceView) -> pb::ServiceStatus {
    let s = &v.spec;
    pb::ServiceStatus {
        id: s.id.to_string(),
        state: service_state(v.state) as i32,
        revision: v.revision,
        tier: tier(s.tier) as i32,
        profile: s.profile.clone(),
        profile_sha256: v.profile_sha256.clone(),
        artifact_sha256: v.artifact_sha256.clone(),
        artifact_kind: v.artifact_kind.clone(),
        limits: Some(pb::Limits {
            memory_bytes: s.limits.memory_bytes,
            memory_high_bytes: s.limits.memory_high_bytes.unwrap_or(0),
            cpu_weight: s.limits.cpu_weight,
            cpu_max_millicores: s.limits.cpu_max_millicores.unwrap_or(0),
            max_pids: s.limits.max_pids,
            max_open_files: s.limits.max_open_files,
            limit_exceeded_action: limit_action(s.limits.limit_exceeded_action) as i32,
        }),
        restart: Some(pb::RestartSpec {
            policy: match s.restart.policy {
                RestartPolicy::Always => pb::RestartPolicy::Always,
                RestartPolicy::OnFailure => pb::RestartPolicy::OnFailure,
                RestartPolicy::Never => pb::RestartPolicy::Never,
            } as i32,
            max_restarts: s.restart.max_restarts,
            within_seconds: s.restart.within_seconds,
            backoff_initial_ms: s.restart.backoff_initial_ms,
            backoff_max_ms: s.restart.backoff_max_ms,
            backoff_jitter: s.restart.backoff_jitter,
            reset_after_seconds: s.restart.reset_after_seconds,
        }),
        replicas: s.replicas,
        instances: v.instances.iter().map(instance).collect(),
        created_at_unix_ms: v.created_at_ms,
        failure_reason: v.failure.clone().unwrap_or_default(),
        labels: s.labels.clone().into_iter().collect(),
        uid: v.uid,
        grants: v.grants.iter().map(|(name, spec)| pb::Grant { spec: spec.clone(), name: name.clone() }).collect(),
        readiness: Some(readiness(&s.readiness)),
        args: s.args.clone(),
        env: s.env.clone().into_iter().collect(),
        shutdown_timeout_ms: s.shutdown_timeout_ms,
        socket_activation: if s.listen_only {
            pb::SocketActivation::ListenOnly as i32
        } else {
            pb::SocketActivation::All as i32
        },
        update: v.update.as_ref().map(progress),
        revisions: v
            .revisions
            .iter()
            .map(|r| pb::RevisionInfo {
                revision: r.revision,
                artifact_sha256: r.artifact_sha256.clone(),
                artifact_kind: r.artifact_kind.clone(),
                profile: r.profile.clone(),
                replicas: r.replicas,
                created_at_unix_ms: r.created_at_ms,
                activated_at_unix_ms: r.activated_at_ms,
                current: r.current,
                note: r.note.clone(),
            })
            .collect(),
    }
}

/// An update's progress.
pub fn progress(p: &Progress) -> pb::UpdateProgress {
    pb::UpdateProgress {
        id: p.id.clone(),
        revision: p.to_revision,
        phase: p.phase.clone(),
        updated: p.new_ready,
        total: p.total,
        message: p.message.clone(),
        done: p.done,
        rolled_back: p.rolled_back,
        from_revision: p.from_revision,
        strategy: p.strategy.clone(),
        old_running: p.old_running,
        new_starting: p.new_starting,
        reason: p.reason.clone(),
        at_unix_ms: p.at_ms,
        elapsed_ms: p.elapsed_ms,
    }
}

/// The strategy of an update request (validated by the supervisor).
pub fn raw_strategy(s: &Option<pb::update_request::Strategy>, min_ready_ms: u32) -> RawStrategy {
    use pb::update_request::Strategy as S;
    let base = RawStrategy { min_ready_ms, ..Default::default() };
    match s {
        None => base,
        Some(S::Rolling(r)) => RawStrategy {
            kind: StrategyKind::Rolling,
            max_surge: r.max_surge,
            max_unavailable: r.max_unavailable,
            ..base
        },
        Some(S::Canary(c)) => RawStrategy {
            kind: StrategyKind::Canary,
            percent: c.percent,
            window_ms: c.window_ms,
            manual: c.manual,
            ..base
        },
        Some(S::BlueGreen(b)) => RawStrategy { kind: StrategyKind::BlueGreen, grace_ms: b.grace_ms, ..base },
    }
}

/// What a shutdown stopped.
pub fn shutdown(r: &ShutdownReport) -> pb::ShutdownResponse {
    pb::ShutdownResponse {
        stopped: r.stopped(),
        sigkilled: r.sigkilled(),
        instances: r
            .instances
            .iter()
            .map(|i| pb::StoppedInstance {
                service: i.service.clone(),
                replica: i.replica,
                revision: i.revision,
                tier: tier(i.tier) as i32,
                pid: i.pid,
                sigkilled: i.sigkilled,
                how: i.how.clone(),
                stop_ms: i.stop_ms,
            })
            .collect(),
    }
}

fn tier(t: Tier) -> pb::Tier {
    match t {
        Tier::User => pb::Tier::User,
        Tier::System => pb::Tier::System,
    }
}

fn event_kind(k: EventKind) -> pb::EventKind {
    match k {
        EventKind::Deployed => pb::EventKind::Deployed,
        EventKind::Started => pb::EventKind::Started,
        EventKind::Exited => pb::EventKind::Exited,
        EventKind::Restarted => pb::EventKind::Restarted,
        EventKind::Backoff => pb::EventKind::Backoff,
        EventKind::Failed => pb::EventKind::Failed,
        EventKind::OomKilled => pb::EventKind::OomKilled,
        EventKind::Killed => pb::EventKind::Killed,
        EventKind::Removed => pb::EventKind::Removed,
        EventKind::LaunchFailed => pb::EventKind::LaunchFailed,
        EventKind::Stopped => pb::EventKind::Stopped,
        EventKind::SeccompDenied => pb::EventKind::SeccompDenied,
        EventKind::Quarantined => pb::EventKind::Quarantined,
        EventKind::AccessDenied => pb::EventKind::AccessDenied,
        EventKind::Granted => pb::EventKind::Granted,
        EventKind::Revoked => pb::EventKind::Revoked,
        EventKind::LimitExceeded => pb::EventKind::LimitExceeded,
        EventKind::Adopted => pb::EventKind::Adopted,
        EventKind::Updating => pb::EventKind::Updating,
        EventKind::Updated => pb::EventKind::Updated,
        EventKind::RolledBack => pb::EventKind::RolledBack,
    }
}

pub fn event(e: &Event) -> pb::WatchEvent {
    pb::WatchEvent {
        at_unix_ms: e.at_ms,
        payload: Some(pb::watch_event::Payload::Event(pb::Event {
            kind: event_kind(e.kind) as i32,
            service: e.service.clone(),
            replica: e.replica,
            pid: e.pid,
            exit: e.exit.as_ref().map(exit),
            message: e.message.clone(),
            restart_count: e.restart_count,
            delay_ms: e.delay_ms,
            spawn_us: e.spawn_us,
            seq: e.seq,
            restart_us: e.restart_us,
            syscall: e.syscall.clone(),
            action: e.action.clone(),
            revision: e.revision,
            update: e.update.as_deref().map(progress),
        })),
    }
}

pub fn log_line(l: &LogLine) -> pb::WatchEvent {
    pb::WatchEvent {
        at_unix_ms: l.at_ms,
        payload: Some(pb::watch_event::Payload::Log(pb::LogLine {
            service: l.service.to_string(),
            replica: l.replica,
            stream: match l.stream {
                Stream::Stdout => pb::LogStream::Stdout,
                Stream::Supervisor => pb::LogStream::Supervisor,
                Stream::Stderr => pb::LogStream::Stderr,
            } as i32,
            line: l.line.clone(),
            pid: l.pid,
        })),
    }
}

pub fn lagged(n: u64) -> pb::WatchEvent {
    pb::WatchEvent {
        at_unix_ms: crate::supervisor::events::now_ms(),
        payload: Some(pb::watch_event::Payload::Event(pb::Event {
            kind: pb::EventKind::Lagged as i32,
            message: format!("this watcher fell behind; {n} events and log lines were dropped"),
            ..Default::default()
        })),
    }
}

fn readiness(r: &crate::spec::grant::Readiness) -> pb::Readiness {
    use crate::spec::grant::ReadinessKind;
    let (kind, tcp_grant) = match &r.kind {
        ReadinessKind::None => (pb::ReadinessKind::None, String::new()),
        ReadinessKind::Notify => (pb::ReadinessKind::Notify, String::new()),
        ReadinessKind::Tcp { grant } => (pb::ReadinessKind::Tcp, grant.clone()),
    };
    pb::Readiness { kind: kind as i32, startup_timeout_ms: r.startup_timeout_ms, tcp_grant }
}
