//! One function per subcommand.

use super::artifact::Upload;
use super::output::{self, json};
use super::{Command, DeployArgs, Global, LimitActionArg, RestartArg, TierArg};
use crate::proto::v1 as pb;
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::process::ExitCode;
use tonic::Code;

/// Runs a client subcommand; errors are printed by the caller.
pub async fn run(g: &Global, cmd: Command) -> anyhow::Result<ExitCode> {
    if let Command::Doctor = cmd {
        return doctor(g);
    }
    let cmd = match cmd {
        Command::Profile(p) => return super::profile::run(g.json, p),
        Command::Token(t) => match super::token::run_offline(g, &t.cmd) {
            Some(r) => return r,
            None => Command::Token(t),
        },
        other => other,
    };
    let socket = g.socket.clone().unwrap_or_else(super::default_socket);
    // Connect first: "no daemon there" is the more useful error when both apply.
    let token = g.token();
    let mut c = super::connect(&socket, token.as_ref().ok().map(String::as_str)).await?;
    token?;
    super::timing::mark("connected");
    match cmd {
        Command::Deploy(a) => {
            let (req, upload) = deploy_request(*a)?;
            super::timing::mark("request");
            let r = deploy(&mut c, req, upload).await?;
            super::timing::mark("reply");
            super::timing::note("daemon", r.startup_us as f64 / 1e3);
            if g.json {
                println!("{}", json(&r, "solo.v1.DeployResponse"));
            } else {
                let pids: Vec<String> = r.instances.iter().filter(|i| i.pid != 0).map(|i| i.pid.to_string()).collect();
                println!(
                    "deployed {} revision {} (sha256:{}){}",
                    r.id,
                    r.revision,
                    &r.artifact_sha256[..r.artifact_sha256.len().min(12)],
                    if pids.is_empty() {
                        String::new()
                    } else {
                        format!(", running as pid {} in {} µs", pids.join(","), r.startup_us)
                    }
                );
            }
        }
        Command::Status { id } => {
            let r = c.status(pb::StatusRequest { id }).await.map_err(status_err)?.into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.StatusResponse"));
            } else if let Some(s) = r.service {
                println!("{}", output::status(&s));
            }
        }
        Command::Ls { prefix, state } => {
            let state = match state.as_deref() {
                None => 0,
                Some(s) => state_arg(s)?,
            };
            let r = c
                .list(pb::ListRequest { id_prefix: prefix, state, ..Default::default() })
                .await
                .map_err(status_err)?
                .into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.ListResponse"));
            } else {
                println!("{}", output::list(&r.services));
            }
        }
        Command::Logs { id, follow, tail } => {
            let req = pb::WatchRequest { id, include_logs: true, include_events: false, tail, snapshot: !follow };
            stream(g, &mut c, req).await?;
        }
        Command::Watch { id, logs } => {
            let req = pb::WatchRequest {
                id: id.unwrap_or_default(),
                include_logs: logs,
                include_events: true,
                tail: 0,
                snapshot: false,
            };
            stream(g, &mut c, req).await?;
        }
        Command::Kill { id, force, remove, timeout } => {
            let r = c
                .kill(pb::KillRequest { id, force, remove, timeout_ms: timeout.unwrap_or(0) })
                .await
                .map_err(status_err)?
                .into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.KillResponse"));
            } else {
                let how: Vec<String> = r
                    .instances
                    .iter()
                    .map(|i| {
                        format!(
                            "replica {}: {}",
                            i.replica,
                            i.last_exit.as_ref().map(|e| e.reason.as_str()).unwrap_or("not running")
                        )
                    })
                    .collect();
                println!("{} {} ({})", if r.removed { "removed" } else { "stopped" }, r.id, how.join("; "));
            }
        }
        Command::Shutdown { timeout } => {
            let r = c.shutdown(pb::ShutdownRequest { timeout_ms: timeout }).await.map_err(status_err)?.into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.ShutdownResponse"));
            } else {
                println!("{}", output::shutdown(&r));
            }
        }
        Command::Update(a) => return super::update::update(g, &mut c, *a).await,
        Command::Rollback { id, to, strategy } => return super::update::rollback(g, &mut c, id, to, &strategy).await,
        Command::Token(t) => return super::token::run_online(g, &mut c, t.cmd).await,
        Command::Audit(a) => return super::audit::run(g, &mut c, a).await,
        Command::Daemon { cmd } => return super::daemon::run(g, &mut c, &socket, cmd).await,
        Command::Grant { cmd: super::GrantCommand::Add { service, spec, name } } => {
            let req = pb::GrantCapabilityRequest {
                service,
                what: Some(pb::grant_capability_request::What::Fd(pb::Grant { spec, name: name.unwrap_or_default() })),
            };
            let r = c.grant_capability(req).await.map_err(status_err)?.into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.GrantCapabilityResponse"));
            } else {
                println!("granted {}", r.grant_id);
            }
        }
        Command::Grant { cmd: super::GrantCommand::Revoke { grant_id } } => {
            let req =
                pb::RevokeCapabilityRequest { what: Some(pb::revoke_capability_request::What::GrantId(grant_id)) };
            let r = c.revoke_capability(req).await.map_err(status_err)?.into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.RevokeCapabilityResponse"));
            } else {
                println!(
                    "revoked {} grant(s); the instances that held it were killed and restart without it",
                    r.revoked
                );
            }
        }
        Command::Doctor | Command::Profile(_) => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A gRPC error as the CLI prints it: the code, then the daemon's message.
pub(super) fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}: {}", code_name(s.code()), s.message())
}

/// A gRPC status code in words, as the CLI and the MCP tools print it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::InvalidArgument => "invalid argument",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::PermissionDenied => "permission denied",
        Code::Unauthenticated => "unauthenticated",
        Code::Unimplemented => "unimplemented",
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::Cancelled => "cancelled",
        _ => "error",
    }
}

/// `[NAME=]SPEC`: a NAME has no ':' or '/', so a path with '=' stays whole.
pub(super) fn grant_arg(s: &str) -> pb::Grant {
    match s.split_once('=') {
        Some((name, spec)) if !name.is_empty() && !name.contains([':', '/']) => {
            pb::Grant { spec: spec.to_owned(), name: name.to_owned() }
        }
        _ => pb::Grant { spec: s.to_owned(), name: String::new() },
    }
}

pub(super) fn readiness_arg(ready: Option<&str>, timeout: Option<u32>) -> anyhow::Result<Option<pb::Readiness>> {
    let (kind, tcp_grant) = match ready {
        None | Some("none") => (pb::ReadinessKind::None, String::new()),
        Some("notify") => (pb::ReadinessKind::Notify, String::new()),
        Some(t) => match t.strip_prefix("tcp:") {
            Some(name) => (pb::ReadinessKind::Tcp, name.to_owned()),
            None => bail!("--ready: '{t}' is not none, notify or tcp:GRANT_NAME"),
        },
    };
    Ok(Some(pb::Readiness { kind: kind as i32, startup_timeout_ms: timeout.unwrap_or(0), tcp_grant }))
}

pub(super) fn restart_policy(r: Option<RestartArg>) -> pb::RestartPolicy {
    match r {
        None => pb::RestartPolicy::Unspecified,
        Some(RestartArg::Always) => pb::RestartPolicy::Always,
        Some(RestartArg::OnFailure) => pb::RestartPolicy::OnFailure,
        Some(RestartArg::Never) => pb::RestartPolicy::Never,
    }
}

fn state_arg(s: &str) -> anyhow::Result<i32> {
    Ok(match s {
        "starting" => pb::ServiceState::Starting,
        "running" => pb::ServiceState::Running,
        "degraded" => pb::ServiceState::Degraded,
        "failed" => pb::ServiceState::Failed,
        "stopped" => pb::ServiceState::Stopped,
        "exited" => pb::ServiceState::Exited,
        other => bail!("--state: '{other}' is not one of starting, running, degraded, failed, stopped, exited"),
    } as i32)
}

/// Deploys naming the artifact by digest; sends its bytes only when the
/// daemon answers that it does not store them.
async fn deploy(
    c: &mut super::Client,
    mut req: pb::DeployRequest,
    upload: Option<Upload>,
) -> anyhow::Result<pb::DeployResponse> {
    let first = c.deploy(req.clone()).await;
    let artifact = req.spec.as_mut().and_then(|s| s.artifact.as_mut());
    match (first, upload, artifact) {
        (Ok(r), _, _) => Ok(r.into_inner()),
        (Err(s), Some(upload), Some(a)) if Upload::wanted(&s, a) => {
            super::timing::mark("not-stored");
            upload.fill(a)?;
            Ok(c.deploy(req).await.map_err(status_err)?.into_inner())
        }
        (Err(s), _, _) => Err(status_err(s)),
    }
}

fn pairs(flag: &str, v: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut m = HashMap::new();
    for kv in v {
        let (k, val) = kv.split_once('=').with_context(|| format!("{flag}: '{kv}' is not K=V"))?;
        if m.insert(k.to_owned(), val.to_owned()).is_some() {
            bail!("{flag}: '{k}' is given twice");
        }
    }
    Ok(m)
}

/// The request, with an uploaded artifact's bytes or, for a larger file,
/// its digest only, and the file to send if the daemon does not store it
/// ([`Upload`]).
fn deploy_request(a: DeployArgs) -> anyhow::Result<(pb::DeployRequest, Option<Upload>)> {
    let artifact = super::artifact::from_flags(
        a.exec.as_deref(),
        a.script.as_deref(),
        a.interpreter.as_deref(),
        a.host_path.as_deref(),
    )?;
    let Some((kind, upload)) = artifact else { bail!("one of --exec, --script or --host-path is required") };
    let restart = pb::RestartSpec {
        policy: restart_policy(a.restart) as i32,
        max_restarts: a.max_restarts.unwrap_or(0),
        within_seconds: a.within.unwrap_or(0),
        backoff_initial_ms: a.backoff_ms.unwrap_or(0),
        backoff_max_ms: a.backoff_max_ms.unwrap_or(0),
        ..Default::default()
    };
    // Zero means "default" on the wire; refuse an explicit 0 here so the
    // user is not silently given the default.
    for (flag, v) in [
        ("--cpu-weight", a.cpu_weight),
        ("--max-pids", a.max_pids),
        ("--replicas", a.replicas),
        ("--max-restarts", a.max_restarts),
        ("--within", a.within),
        ("--max-open-files", a.max_open_files),
    ] {
        if v == Some(0) {
            bail!("{flag}: must be at least 1");
        }
    }
    if a.memory == Some(0) {
        bail!("--memory: must be more than 0");
    }
    let req = pb::DeployRequest {
        spec: Some(pb::ServiceSpec {
            id: a.id,
            artifact: Some(pb::Artifact { kind: Some(kind) }),
            args: a.args,
            env: pairs("--env", &a.env)?,
            profile: a.profile.unwrap_or_default(),
            limits: Some(pb::Limits {
                memory_bytes: a.memory.unwrap_or(0),
                memory_high_bytes: 0,
                cpu_weight: a.cpu_weight.unwrap_or(0),
                cpu_max_millicores: a.cpu_max_millicores.unwrap_or(0),
                max_pids: a.max_pids.unwrap_or(0),
                max_open_files: a.max_open_files.unwrap_or(0),
                limit_exceeded_action: match a.limit_action {
                    None => pb::LimitAction::Unspecified,
                    Some(LimitActionArg::Kill) => pb::LimitAction::Kill,
                    Some(LimitActionArg::Throttle) => pb::LimitAction::Throttle,
                    Some(LimitActionArg::Warn) => pb::LimitAction::Warn,
                } as i32,
            }),
            restart: Some(restart),
            replicas: a.replicas.unwrap_or(0),
            tier: match a.tier {
                None => pb::Tier::Unspecified,
                Some(TierArg::User) => pb::Tier::User,
                Some(TierArg::System) => pb::Tier::System,
            } as i32,
            readiness: readiness_arg(a.ready.as_deref(), a.startup_timeout)?,
            grants: a.grants.iter().map(|g| grant_arg(g)).collect(),
            socket_activation: if a.listen_only {
                pb::SocketActivation::ListenOnly as i32
            } else {
                pb::SocketActivation::All as i32
            },
            shutdown_timeout_ms: a.shutdown_timeout_ms.unwrap_or(0),
            labels: pairs("--label", &a.labels)?,
        }),
        wait: a.wait,
    };
    Ok((req, upload))
}

async fn stream(g: &Global, c: &mut super::Client, req: pb::WatchRequest) -> anyhow::Result<()> {
    let mut s = c.watch(req).await.map_err(status_err)?.into_inner();
    while let Some(item) = s.message().await.map_err(status_err)? {
        if g.json {
            println!("{}", json(&item, "solo.v1.WatchEvent"));
            continue;
        }
        match item.payload {
            Some(pb::watch_event::Payload::Log(l)) => {
                let tag = match pb::LogStream::try_from(l.stream) {
                    Ok(pb::LogStream::Stderr) => "err",
                    Ok(pb::LogStream::Supervisor) => "solo",
                    _ => "out",
                };
                println!("{}.{} {tag} | {}", l.service, l.replica, l.line);
            }
            Some(pb::watch_event::Payload::Event(e)) => {
                println!(
                    "{} {} {:<13} {}",
                    item.at_unix_ms,
                    output::event_source(&e),
                    output::event_kind(e.kind),
                    e.message
                );
            }
            None => {}
        }
    }
    Ok(())
}

fn doctor(g: &Global) -> anyhow::Result<ExitCode> {
    let checks = crate::sandbox::probe::run();
    if g.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| vec![if c.ok { "ok".into() } else { "MISSING".into() }, c.layer.clone(), c.detail.clone()])
            .collect();
        println!("{}", output::table(&["", "LAYER", "DETAIL"], &rows));
    }
    Ok(ExitCode::SUCCESS)
}
