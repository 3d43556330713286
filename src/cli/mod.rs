//! The `solo` command-line client. Every subcommand but `serve` and
//! `doctor` is a gRPC call; this module depends only on the generated
//! client and `spec` helpers, never on the supervisor.

mod client;
mod commands;
mod output;
mod profile;

pub use client::{connect, default_socket, DEFAULT_RUNTIME_DIR};
pub use commands::run;
pub use profile::{ProfileArgs, ProfileCommand};

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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RestartArg {
    Always,
    OnFailure,
    Never,
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
    /// Return only when every instance is running.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Clone, Subcommand)]
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
    /// Stop every service and the daemon.
    Shutdown {
        /// Overall timeout in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 30_000)]
        timeout: u32,
    },
    /// Show what this host can enforce (cgroups, Landlock, seccomp, namespaces, pidfd, clone3).
    Doctor,
    /// Check, explain, audit, compare and list sandbox profiles (offline: no daemon needed).
    Profile(ProfileArgs),
}
