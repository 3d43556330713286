//! The `solo` command-line client. Every subcommand but `serve` and
//! `doctor` is a gRPC call; this module depends only on the generated
//! client and `spec` helpers, never on the supervisor.

mod artifact;
mod audit;
mod client;
mod commands;
mod daemon;
mod digest_cache;
pub mod output;
mod profile;
pub mod protojson;
pub mod timing;
mod token;
mod update;

pub use audit::{AuditArgs, AuditCommand};
pub use client::{
    channel, channel_lazy, connect, default_socket, default_token_file, read_token_file, with_token, Client,
    DEFAULT_RUNTIME_DIR, DEFAULT_STATE_DIR,
};
pub use commands::{code_name, run};
pub use profile::{ProfileArgs, ProfileCommand};
pub use token::{TokenArgs, TokenCommand};
pub use update::{StrategyArgs, UpdateArgs, ROLLED_BACK};

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Global client options.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Control socket path, or http://HOST:PORT for a TCP listener.
    #[arg(long, global = true, env = "SOLO_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Print the protobuf JSON mapping of each reply instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Token to present (prefer SOLO_TOKEN or --token-file: arguments are visible to other users in ps).
    #[arg(long, global = true, env = "SOLO_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the token [default: $SOLO_STATE_DIR/operator.token, else /var/lib/solo/operator.token].
    #[arg(long, global = true, env = "SOLO_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl Global {
    /// The token to present: --token, else --token-file, else the operator
    /// token file the daemon writes in its state dir.
    pub fn token(&self) -> anyhow::Result<String> {
        if let Some(t) = &self.token {
            return Ok(t.trim().to_owned());
        }
        if let Some(f) = &self.token_file {
            return read_token_file(f);
        }
        let f = default_token_file();
        read_token_file(&f).map_err(|e| {
            anyhow::anyhow!(
                "no token: {e:#}. `solo serve` writes the operator token there on first start; if its state dir is elsewhere set SOLO_STATE_DIR, or give a token with --token-file FILE or SOLO_TOKEN"
            )
        })
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RestartArg {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LimitActionArg {
    Kill,
    Throttle,
    Warn,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    User,
    System,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("artifact").required(true).args(["exec", "script", "host_path"])))]
pub struct DeployArgs {
    /// Service id: up to 63 lowercase letters, digits and dashes, not starting with a dash.
    pub id: String,
    /// Upload this ELF executable.
    #[arg(long, value_name = "FILE")]
    pub exec: Option<PathBuf>,
    /// Upload this script (with --interpreter).
    #[arg(long, value_name = "FILE", requires = "interpreter")]
    pub script: Option<PathBuf>,
    /// Interpreter for --script: sh, bash, python3, perl, node.
    #[arg(long, value_name = "NAME")]
    pub interpreter: Option<String>,
    /// Run a binary that already exists on the host.
    #[arg(long, value_name = "PATH")]
    pub host_path: Option<String>,
    /// Argument passed to the service (repeatable).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Environment variable K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Sandbox profile (default: "default").
    #[arg(long)]
    pub profile: Option<String>,
    /// Memory limit, e.g. 256MiB.
    #[arg(long, value_name = "SIZE", value_parser = crate::spec::parse_bytes)]
    pub memory: Option<u64>,
    /// CPU weight 1..10000 (default 100).
    #[arg(long, value_name = "N")]
    pub cpu_weight: Option<u32>,
    /// CPU quota in millicores (1000 = one core).
    #[arg(long, value_name = "N")]
    pub cpu_max_millicores: Option<u32>,
    /// Maximum number of processes/threads.
    #[arg(long, value_name = "N")]
    pub max_pids: Option<u32>,
    /// RLIMIT_NOFILE.
    #[arg(long, value_name = "N")]
    pub max_open_files: Option<u32>,
    /// What happens at the memory and CPU limits: kill, throttle or warn
    /// [default: kill at the memory limit, throttle at the CPU limit].
    #[arg(long, value_enum, value_name = "ACTION")]
    pub limit_action: Option<LimitActionArg>,
    /// Restart policy.
    #[arg(long, value_enum)]
    pub restart: Option<RestartArg>,
    /// Intensity limit: at most N restarts ...
    #[arg(long, value_name = "N", requires = "within")]
    pub max_restarts: Option<u32>,
    /// ... within S seconds, else the service is failed.
    #[arg(long, value_name = "S", requires = "max_restarts")]
    pub within: Option<u32>,
    /// First restart delay in milliseconds.
    #[arg(long, value_name = "MS")]
    pub backoff_ms: Option<u32>,
    /// Largest restart delay in milliseconds.
    #[arg(long, value_name = "MS")]
    pub backoff_max_ms: Option<u32>,
    /// Number of instances.
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Tier.
    #[arg(long, value_enum)]
    pub tier: Option<TierArg>,
    /// SIGTERM → SIGKILL grace in milliseconds.
    #[arg(long, value_name = "MS")]
    pub shutdown_timeout_ms: Option<u32>,
    /// Label K=V (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Grant a descriptor, [NAME=]SPEC (repeatable): dir:PATH:ro|rw, listen:tcp:ADDR:PORT,
    /// listen:unix:PATH, service:ID, connect:tcp:HOST:PORT. Passed as LISTEN_FDS (fd 3 is solo-control).
    #[arg(long = "grant", value_name = "[NAME=]SPEC")]
    pub grants: Vec<String>,
    /// When an instance counts as ready: notify (READY=1 on $NOTIFY_SOCKET) or tcp:NAME (a listen:tcp grant accepts).
    #[arg(long, value_name = "KIND")]
    pub ready: Option<String>,
    /// Announce only the listening sockets in LISTEN_FDS (for programs such as gunicorn that
    /// take every activated descriptor as a listener); solo-control and the other grants
    /// follow, named in SOLO_FDNAMES from fd SOLO_FDS_START.
    #[arg(long)]
    pub listen_only: bool,
    /// How long an instance has to become ready, in milliseconds (default 30000).
    #[arg(long, value_name = "MS")]
    pub startup_timeout: Option<u32>,
    /// Return only when every instance is running (and ready).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, Subcommand)]
#[command(defer = true)]
pub enum GrantCommand {
    /// Grant SPEC to SERVICE: held from now on, pushed to one running
    /// instance on solo-control, and in LISTEN_FDS of every later start.
    Add {
        service: String,
        /// dir:PATH:ro|rw, listen:tcp:ADDR:PORT, listen:unix:PATH, service:ID, connect:tcp:HOST:PORT.
        spec: String,
        /// Its name in LISTEN_FDNAMES (default: derived from SPEC).
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke grant SERVICE/NAME: its holders are killed and restart without it.
    Revoke {
        /// SERVICE/NAME, as `grant add` printed it.
        grant_id: String,
    },
}

/// Each subcommand's arguments are built only when it is the one given
/// (`defer`), not all of them on every run (see docs/benchmarks.md).
#[derive(Debug, Clone, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Deploy a new service.
    Deploy(Box<DeployArgs>),
    /// Show one service: state, instances, usage, limits, last exit.
    Status { id: String },
    /// List services.
    #[command(alias = "list")]
    Ls {
        /// Only services whose id starts with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only services in this state (starting, running, degraded, failed, stopped, exited).
        #[arg(long)]
        state: Option<String>,
    },
    /// Print a service's captured output.
    Logs {
        id: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// How many buffered lines to print first.
        #[arg(long, default_value_t = 100)]
        tail: u32,
    },
    /// Stream events (and with --logs, output) for one service or all.
    Watch {
        id: Option<String>,
        /// Include log lines.
        #[arg(long)]
        logs: bool,
    },
    /// Stop a service (SIGTERM, grace, then SIGKILL of its cgroup).
    Kill {
        id: String,
        /// SIGKILL at once.
        #[arg(long)]
        force: bool,
        /// Also delete its desired state (it will not come back).
        #[arg(long)]
        remove: bool,
        /// Grace period in milliseconds (default: the service's shutdown_timeout_ms).
        #[arg(long, value_name = "MS")]
        timeout: Option<u32>,
    },
    /// Roll out a new artifact and/or spec (rolling, canary or blue-green), or act on the
    /// update in progress; a failing update rolls back by itself (exit status 3).
    Update(Box<UpdateArgs>),
    /// Roll back to a kept revision: the one that ran before (default), or --to REV
    /// (`solo status ID` lists them). Exit status 3 if it rolls back itself.
    Rollback {
        /// The service to roll back.
        id: String,
        /// The revision to run again.
        #[arg(long, value_name = "REV")]
        to: Option<u64>,
        #[command(flatten)]
        strategy: StrategyArgs,
    },
    /// Stop every service (user tier, then system tier) and the daemon.
    Shutdown {
        /// Overall timeout in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 30_000)]
        timeout: u32,
    },
    /// Show what this host can enforce (cgroups, Landlock, seccomp, namespaces, pidfd, clone3).
    Doctor,
    /// Check, explain, audit, compare and list sandbox profiles (offline: no daemon needed).
    Profile(ProfileArgs),
    /// Issue, attenuate, revoke and inspect capability tokens.
    Token(TokenArgs),
    /// Give a running service a descriptor, or take one back.
    Grant {
        #[command(subcommand)]
        cmd: GrantCommand,
    },
    /// Read the audit log, verify its hash chain, explain one service.
    Audit(AuditArgs),
    /// The daemon itself: its version and uptime, or a re-exec (an upgrade
    /// that keeps every service running).
    Daemon {
        #[command(subcommand)]
        cmd: DaemonCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DaemonCommand {
    /// Version, pid, binary, when this image started, what it re-adopted.
    Info,
    /// Exec the daemon's binary again (install the new one at the same
    /// path first), keeping every service, its pid, its logs and its
    /// sockets; waits until the new image answers.
    Reexec {
        /// How long to wait for the new image, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 30_000)]
        timeout: u32,
    },
}
