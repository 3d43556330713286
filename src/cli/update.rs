//! `solo update` and `solo rollback`: the new spec is the running one (from
//! `Status`) with the flags' changes; the update's progress is shown live
//! on a terminal, one line per step otherwise, one JSON object per step
//! with `--json`. Exit status: 0 committed, 3 rolled back, 1 refused.

use super::artifact::Upload;
use super::commands::status_err;
use super::output::json;
use super::{Client, Global, RestartArg};
use crate::proto::v1 as pb;
use crate::spec::update::StrategyKind;
use anyhow::{bail, Context};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit status of an update that rolled back.
pub const ROLLED_BACK: u8 = 3;

/// How the update replaces instances.
#[derive(Debug, Clone, Args)]
pub struct StrategyArgs {
    /// rolling (default), canary or blue-green.
    #[arg(long, value_name = "NAME")]
    pub strategy: Option<String>,
    /// rolling: instances beyond the replicas at once (default 1).
    #[arg(long, value_name = "N")]
    pub max_surge: Option<u32>,
    /// rolling: instances below the replicas at once (default 0; less than the replicas).
    #[arg(long, value_name = "N")]
    pub max_unavailable: Option<u32>,
    /// canary: share of the replicas started beside the old set, at least one (default 10).
    #[arg(long, value_name = "PERCENT")]
    pub canary_percent: Option<u32>,
    /// canary: observation window in milliseconds (default 30000).
    #[arg(long, value_name = "MS")]
    pub window: Option<u32>,
    /// canary: after the window, wait for `solo update ID --promote` (or --abort).
    #[arg(long)]
    pub manual: bool,
    /// blue-green: how long the old set is kept, frozen, after the switch (default 30000).
    #[arg(long, value_name = "MS")]
    pub grace: Option<u32>,
    /// A new instance counts as available once ready this long (default 1000).
    #[arg(long, value_name = "MS")]
    pub min_ready: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// The service to update.
    pub id: String,
    #[command(flatten)]
    pub strategy: StrategyArgs,
    /// Let the update in progress go ahead now (canary window, blue-green grace).
    #[arg(long, conflicts_with_all = ["abort", "follow"])]
    pub promote: bool,
    /// Roll the update in progress back now.
    #[arg(long, conflicts_with = "follow")]
    pub abort: bool,
    /// Only show the progress of the update in progress.
    #[arg(long)]
    pub follow: bool,
    /// New artifact: this ELF executable.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["script", "host_path"])]
    pub exec: Option<PathBuf>,
    /// New artifact: this script (with --interpreter).
    #[arg(long, value_name = "FILE", requires = "interpreter", conflicts_with = "host_path")]
    pub script: Option<PathBuf>,
    /// Interpreter for --script.
    #[arg(long, value_name = "NAME")]
    pub interpreter: Option<String>,
    /// New artifact: a binary on the host.
    #[arg(long, value_name = "PATH")]
    pub host_path: Option<String>,
    /// Arguments (repeatable; replace the current ones).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Set an environment variable K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Remove an environment variable (repeatable).
    #[arg(long = "unset-env", value_name = "K")]
    pub unset_env: Vec<String>,
    /// Sandbox profile (a wider one needs the `system` permission).
    #[arg(long)]
    pub profile: Option<String>,
    /// Memory limit, e.g. 256MiB.
    #[arg(long, value_name = "SIZE", value_parser = crate::spec::parse_bytes)]
    pub memory: Option<u64>,
    /// CPU weight 1..10000.
    #[arg(long, value_name = "N")]
    pub cpu_weight: Option<u32>,
    /// Maximum number of processes/threads.
    #[arg(long, value_name = "N")]
    pub max_pids: Option<u32>,
    /// Restart policy.
    #[arg(long, value_enum)]
    pub restart: Option<RestartArg>,
    /// Intensity limit: at most N restarts ...
    #[arg(long, value_name = "N", requires = "within")]
    pub max_restarts: Option<u32>,
    /// ... within S seconds.
    #[arg(long, value_name = "S", requires = "max_restarts")]
    pub within: Option<u32>,
    /// Number of instances.
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// SIGTERM → SIGKILL grace in milliseconds.
    #[arg(long, value_name = "MS")]
    pub shutdown_timeout_ms: Option<u32>,
    /// Add a grant [NAME=]SPEC (repeatable).
    #[arg(long = "grant", value_name = "[NAME=]SPEC")]
    pub grants: Vec<String>,
    /// Drop the grant named NAME (repeatable).
    #[arg(long = "drop-grant", value_name = "NAME")]
    pub drop_grants: Vec<String>,
    /// Readiness: none, notify or tcp:NAME.
    #[arg(long, value_name = "KIND")]
    pub ready: Option<String>,
    /// How long an instance has to become ready, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub startup_timeout: Option<u32>,
}

/// `--strategy` and its parameters as the request's strategy.
fn strategy(a: &StrategyArgs) -> anyhow::Result<(Option<pb::update_request::Strategy>, u32)> {
    use pb::update_request::Strategy as S;
    let kind = match a.strategy.as_deref() {
        None => StrategyKind::Rolling,
        Some(s) => StrategyKind::parse(s)
            .with_context(|| format!("--strategy: '{s}' is not one of {}", StrategyKind::NAMES))?,
    };
    let only = |flag: &str, set: bool, k: StrategyKind, name: &str| -> anyhow::Result<()> {
        if set && kind != k {
            bail!("{flag}: goes with --strategy {name}");
        }
        Ok(())
    };
    only("--max-surge", a.max_surge.is_some(), StrategyKind::Rolling, "rolling")?;
    only("--max-unavailable", a.max_unavailable.is_some(), StrategyKind::Rolling, "rolling")?;
    only("--canary-percent", a.canary_percent.is_some(), StrategyKind::Canary, "canary")?;
    only("--window", a.window.is_some(), StrategyKind::Canary, "canary")?;
    only("--manual", a.manual, StrategyKind::Canary, "canary")?;
    only("--grace", a.grace.is_some(), StrategyKind::BlueGreen, "blue-green")?;
    for (flag, v) in [("--canary-percent", a.canary_percent), ("--window", a.window), ("--grace", a.grace)] {
        if v == Some(0) {
            bail!("{flag}: must be at least 1");
        }
    }
    let s = match kind {
        StrategyKind::Rolling => {
            S::Rolling(pb::RollingStrategy { max_surge: a.max_surge, max_unavailable: a.max_unavailable })
        }
        StrategyKind::Canary => S::Canary(pb::CanaryStrategy {
            percent: a.canary_percent.unwrap_or(0),
            window_ms: a.window.unwrap_or(0),
            manual: a.manual,
        }),
        StrategyKind::BlueGreen => S::BlueGreen(pb::BlueGreenStrategy { grace_ms: a.grace.unwrap_or(0) }),
    };
    if a.min_ready == Some(0) {
        bail!("--min-ready: must be at least 1 (ms)");
    }
    Ok((Some(s), a.min_ready.unwrap_or(0)))
}

/// The running spec (from `Status`) with the flags' changes; a new
/// uploaded artifact is sent as `solo deploy` sends it (a small file's
/// bytes, or a larger one's digest with the file to send if the daemon
/// lacks it: [`Upload`]).
fn new_spec(s: &pb::ServiceStatus, a: &UpdateArgs) -> anyhow::Result<(pb::ServiceSpec, Option<Upload>)> {
    let (artifact, upload) = super::artifact::from_flags(
        a.exec.as_deref(),
        a.script.as_deref(),
        a.interpreter.as_deref(),
        a.host_path.as_deref(),
    )?
    .unzip();
    let upload = upload.flatten();
    for (flag, v) in [("--cpu-weight", a.cpu_weight), ("--max-pids", a.max_pids), ("--replicas", a.replicas)] {
        if v == Some(0) {
            bail!("{flag}: must be at least 1");
        }
    }
    let mut env = s.env.clone();
    for kv in &a.env {
        let (k, v) = kv.split_once('=').with_context(|| format!("--env: '{kv}' is not K=V"))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    for k in &a.unset_env {
        if env.remove(k).is_none() {
            bail!("--unset-env: '{k}' is not set in the service's environment");
        }
    }
    let mut grants = s.grants.clone();
    for name in &a.drop_grants {
        let before = grants.len();
        grants.retain(|g| &g.name != name);
        if grants.len() == before {
            bail!("--drop-grant: the service holds no grant named '{name}'");
        }
    }
    grants.extend(a.grants.iter().map(|g| super::commands::grant_arg(g)));
    let mut limits = s.limits.unwrap_or_default();
    limits.memory_bytes = a.memory.unwrap_or(limits.memory_bytes);
    limits.cpu_weight = a.cpu_weight.unwrap_or(limits.cpu_weight);
    limits.max_pids = a.max_pids.unwrap_or(limits.max_pids);
    let mut restart = s.restart.unwrap_or_default();
    if let Some(p) = a.restart {
        restart.policy = super::commands::restart_policy(Some(p)) as i32;
    }
    restart.max_restarts = a.max_restarts.unwrap_or(restart.max_restarts);
    restart.within_seconds = a.within.unwrap_or(restart.within_seconds);
    let readiness = match (&a.ready, a.startup_timeout) {
        (None, None) => s.readiness.clone(),
        (ready, timeout) => {
            let current = s.readiness.clone().unwrap_or_default();
            let current_timeout = current.startup_timeout_ms;
            let mut r = match ready {
                Some(k) => super::commands::readiness_arg(Some(k), None)?.unwrap_or_default(),
                None => current,
            };
            r.startup_timeout_ms = timeout.unwrap_or(current_timeout);
            Some(r)
        }
    };
    let spec = pb::ServiceSpec {
        id: s.id.clone(),
        artifact: artifact.map(|k| pb::Artifact { kind: Some(k) }),
        args: if a.args.is_empty() { s.args.clone() } else { a.args.clone() },
        env,
        profile: a.profile.clone().unwrap_or_else(|| s.profile.clone()),
        limits: Some(limits),
        restart: Some(restart),
        replicas: a.replicas.unwrap_or(s.replicas),
        tier: s.tier,
        readiness,
        grants,
        shutdown_timeout_ms: a.shutdown_timeout_ms.unwrap_or(s.shutdown_timeout_ms),
        labels: s.labels.clone(),
        socket_activation: s.socket_activation,
    };
    Ok((spec, upload))
}

/// `solo update`.
pub async fn update(g: &Global, c: &mut Client, a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let (strategy, min_ready_ms) = strategy(&a.strategy)?;
    let action = if a.promote {
        pb::UpdateAction::Promote
    } else if a.abort {
        pb::UpdateAction::Abort
    } else if a.follow {
        pb::UpdateAction::Follow
    } else {
        pb::UpdateAction::Unspecified
    };
    let (req, upload) = if action == pb::UpdateAction::Unspecified {
        let status = c.status(pb::StatusRequest { id: a.id.clone() }).await.map_err(status_err)?.into_inner();
        let current = status.service.context("the daemon sent an empty status")?;
        let (spec, upload) = new_spec(&current, &a)?;
        (pb::UpdateRequest { spec: Some(spec), strategy, min_ready_ms, ..Default::default() }, upload)
    } else {
        (pb::UpdateRequest { id: a.id.clone(), action: action as i32, ..Default::default() }, None)
    };
    follow(g, c, req, upload).await
}

/// `solo rollback`.
pub async fn rollback(
    g: &Global,
    c: &mut Client,
    id: String,
    to: Option<u64>,
    s: &StrategyArgs,
) -> anyhow::Result<ExitCode> {
    let (strategy, min_ready_ms) = strategy(s)?;
    if to == Some(0) {
        bail!("--to: revisions are numbered from 1");
    }
    let req = pb::UpdateRequest {
        id,
        action: pb::UpdateAction::Rollback as i32,
        to_revision: to.unwrap_or(0),
        strategy,
        min_ready_ms,
        ..Default::default()
    };
    follow(g, c, req, None).await
}

/// Sends the request (again with the artifact's bytes if the daemon does
/// not store them) and shows the progress until the update ends.
async fn follow(
    g: &Global,
    c: &mut Client,
    mut req: pb::UpdateRequest,
    upload: Option<Upload>,
) -> anyhow::Result<ExitCode> {
    let first = c.update(req.clone()).await;
    let artifact = req.spec.as_mut().and_then(|s| s.artifact.as_mut());
    let mut stream = match (first, upload, artifact) {
        (Ok(r), _, _) => r.into_inner(),
        (Err(s), Some(upload), Some(a)) if Upload::wanted(&s, a) => {
            super::timing::mark("not-stored");
            upload.fill(a)?;
            c.update(req).await.map_err(status_err)?.into_inner()
        }
        (Err(s), _, _) => return Err(status_err(s)),
    };
    let live = !g.json && std::io::stdout().is_terminal();
    let mut last_phase = String::new();
    let mut end = None;
    while let Some(p) = stream.message().await.map_err(status_err)? {
        if g.json {
            println!("{}", json(&p, "solo.v1.UpdateProgress"));
        } else {
            let line = format!(
                "{:<18} old {} · new {}/{} ready{} · {:>5.1}s  {}",
                p.phase,
                p.old_running,
                p.updated,
                p.total,
                if p.new_starting > 0 { format!(" ({} starting)", p.new_starting) } else { String::new() },
                p.elapsed_ms as f64 / 1000.0,
                p.message
            );
            let mut out = std::io::stdout().lock();
            if live {
                // The same phase redraws its line; a new phase keeps the old one.
                if !last_phase.is_empty() && last_phase != p.phase {
                    let _ = writeln!(out);
                }
                let _ = write!(out, "\r\x1b[K{line}");
            } else {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            last_phase = p.phase.clone();
        }
        if p.done {
            end = Some(p);
            break;
        }
    }
    if live {
        println!();
    }
    let Some(p) = end else {
        bail!("the daemon ended the progress stream before the update ended (see `solo status`)")
    };
    if !g.json {
        if p.rolled_back {
            println!("rolled back {} to revision {}: {}", p.id, p.from_revision, p.reason);
        } else {
            println!("updated {} to revision {} in {:.1} s", p.id, p.revision, p.elapsed_ms as f64 / 1000.0);
        }
    }
    Ok(if p.rolled_back { ExitCode::from(ROLLED_BACK) } else { ExitCode::SUCCESS })
}

/// The update lines of `solo status`.
pub fn status_lines(s: &pb::ServiceStatus) -> String {
    let mut out = String::new();
    if let Some(u) = &s.update {
        let how = if !u.done {
            format!("in progress ({}, {}): {}", u.strategy, u.phase, u.message)
        } else if u.rolled_back {
            format!("rolled back ({}): {}", u.strategy, u.reason)
        } else {
            format!("committed ({})", u.strategy)
        };
        out.push_str(&format!("update:    revision {} to {}: {how}\n", u.from_revision, u.revision));
    }
    out
}
