//! `solo serve`: configuration, start-up checks, signals, and the serve loop.

use crate::sandbox::sys;
use crate::supervisor::{self, Supervisor};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::cli::{DEFAULT_RUNTIME_DIR, DEFAULT_STATE_DIR};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// `solo serve` flags (each also settable by environment).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// State directory: SQLite database, artifacts, logs.
    #[arg(long, env = "SOLO_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Runtime directory: the control socket lives here.
    #[arg(long, env = "SOLO_RUNTIME_DIR", default_value = DEFAULT_RUNTIME_DIR)]
    pub runtime_dir: PathBuf,
    /// Directory of sandbox profiles (*.toml) that add to or override the
    /// built-ins; each file is checked like `solo profile check` at start.
    #[arg(long, env = "SOLO_PROFILES_DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Also serve gRPC on this TCP address (e.g. 127.0.0.1:50051). Plain
    /// text: bind it to loopback only.
    #[arg(long, env = "SOLO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Largest artifact an agent may upload (e.g. 256MiB).
    #[arg(long, env = "SOLO_UPLOAD_LIMIT", default_value = "256MiB", value_parser = parse_size)]
    pub upload_limit: u64,
    /// Range of uids (and gids) given to services, FIRST-LAST.
    #[arg(long, env = "SOLO_UID_RANGE", default_value = "61184-65519", value_parser = parse_uid_range)]
    pub uid_range: (u32, u32),
    /// Name of this supervisor's directory beneath its own cgroup. Default:
    /// "solo" for the default state dir, else "solo-" and 8 hex digits of the state dir's sha256.
    #[arg(long, env = "SOLO_CGROUP_NAME")]
    pub cgroup_name: Option<String>,
    /// Log format.
    #[arg(long, env = "SOLO_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Log filter (tracing env-filter syntax), e.g. "info" or "solo=debug".
    #[arg(long, env = "SOLO_LOG", default_value = "info")]
    pub log: String,
    /// Threads running the gRPC server and the supervision tasks (1-64).
    /// Default: one fewer than the CPUs, at least 1, so the launcher, the
    /// store's writer and the blocking pool keep a CPU; every extra worker
    /// adds hand-offs between CPUs to each request.
    #[arg(long, env = "SOLO_WORKERS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: Option<u16>,
}

/// `--workers`, or one fewer than the CPUs this process may use (at least 1).
fn workers(args: &ServeArgs) -> usize {
    match args.workers {
        Some(n) => usize::from(n),
        None => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let v = crate::spec::parse_bytes(s)?;
    if v < 1024 {
        return Err(format!("{v} bytes is too small; use at least 1KiB"));
    }
    if v > 4 << 30 {
        return Err(format!("{v} bytes is above the maximum of 4GiB (gRPC messages are held in memory)"));
    }
    Ok(v)
}

pub fn parse_uid_range(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('-').ok_or_else(|| format!("'{s}' is not FIRST-LAST"))?;
    let a: u32 = a.trim().parse().map_err(|_| format!("'{a}' is not a uid"))?;
    let b: u32 = b.trim().parse().map_err(|_| format!("'{b}' is not a uid"))?;
    if a == 0 || a > b {
        return Err(format!("'{s}' must be FIRST-LAST with 0 < FIRST <= LAST (uid 0 is root)"));
    }
    if b >= 4_294_967_294 {
        return Err("LAST must be below 4294967294 (reserved ids)".into());
    }
    Ok((a, b))
}

fn cgroup_tag(args: &ServeArgs, state_dir: &Path) -> String {
    if let Some(n) = &args.cgroup_name {
        return n.clone();
    }
    if state_dir == Path::new(DEFAULT_STATE_DIR) {
        return "solo".into();
    }
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(state_dir.as_os_str().as_encoded_bytes()));
    format!("solo-{}", &h[..8])
}

fn init_tracing(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A failed log write must never take the daemon down: tracing-subscriber
    // would report it with eprintln!, which panics when stderr is gone.
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    match args.log_format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Runs the daemon until Shutdown, SIGTERM or SIGINT.
pub fn run(args: ServeArgs, socket: Option<PathBuf>) -> anyhow::Result<()> {
    if sys::geteuid() != 0 {
        bail!(
            "solo serve must run as root: it creates a cgroup per service and runs each service under its own uid, which needs root. \
             Start it with sudo (sudo solo serve) or as the systemd unit in systemd/solo.service"
        );
    }
    if let Some(n) = &args.cgroup_name {
        crate::spec::validate_service_id(n).map_err(|r| anyhow::anyhow!("--cgroup-name: {r}"))?;
    }
    init_tracing(&args);
    // Nothing the daemon writes (database, logs) is for other uids; files
    // meant for services (artifacts) get their modes set explicitly.
    sys::set_umask(0o077);
    // Instances hold pipes and pidfds: lift the soft fd limit to the hard one.
    if let Ok((_, hard)) = sys::getrlimit(libc::RLIMIT_NOFILE) {
        let _ = sys::setrlimit(libc::RLIMIT_NOFILE, hard, hard);
    }
    sys::set_child_subreaper().context("cannot become a child subreaper")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(&args))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(args, socket))
}

async fn serve(args: ServeArgs, socket: Option<PathBuf>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create state dir {}", args.state_dir.display()))?;
    let state_dir = args.state_dir.canonicalize().with_context(|| format!("state dir {}", args.state_dir.display()))?;
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o711))?;
    std::fs::create_dir_all(&args.runtime_dir)
        .with_context(|| format!("cannot create runtime dir {}", args.runtime_dir.display()))?;
    check_traversable(&state_dir)?;
    let _lock = lock_state_dir(&state_dir)?;
    let socket = socket.unwrap_or_else(|| args.runtime_dir.join("solo.sock"));
    let exe = std::env::current_exe().context("cannot find the solo binary for the launcher")?;
    let config = supervisor::Config {
        cgroup_tag: cgroup_tag(&args, &state_dir),
        state_dir,
        uid_first: args.uid_range.0,
        uid_last: args.uid_range.1,
        upload_limit: args.upload_limit,
        exe,
        service_cwd: "/".into(),
        log: Default::default(),
        runtime_dir: args.runtime_dir.clone(),
    };
    tracing::info!(state_dir = %config.state_dir.display(), cgroup = %config.cgroup_tag, "starting");
    let profiles =
        crate::profiles::ProfileSet::load(args.profiles_dir.as_deref()).context("cannot load the sandbox profiles")?;
    let sup = Supervisor::start(config, profiles).await.context("cannot start the supervisor")?;
    tracing::info!(mode = sup.layout.mode(), services = sup.len(), "supervisor ready");
    spawn_signal_tasks(sup.clone())?;
    // Room for the artifact plus the rest of the request.
    let max_message = (args.upload_limit as usize).saturating_add(4 << 20);
    crate::api::server::serve(sup.clone(), &socket, args.listen, max_message).await?;
    // Everything recorded so far reaches the database before exit.
    sup.store.flush().await;
    tracing::info!("bye");
    Ok(())
}

fn spawn_signal_tasks(sup: Arc<Supervisor>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut chld = signal(SignalKind::child())?;
    let s = sup.clone();
    tokio::spawn(async move {
        while chld.recv().await.is_some() {
            s.launcher.reap_orphans();
        }
    });
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = which, "graceful shutdown");
        sup.shutdown(Duration::from_secs(30)).await;
        sup.exit.send_replace(true);
    });
    Ok(())
}

/// Services run as other uids and must reach their artifacts under the
/// state dir: every ancestor needs the search bit for others.
fn check_traversable(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for a in dir.ancestors() {
        let mode = std::fs::metadata(a).with_context(|| format!("cannot stat {}", a.display()))?.permissions().mode();
        if mode & 0o001 == 0 {
            bail!(
                "state dir {} is not reachable by service uids: {} has mode {:o} (no search permission for others), \
                 so services could not open their artifacts. Run `chmod o+x {}` or choose another --state-dir",
                dir.display(),
                a.display(),
                mode & 0o7777,
                a.display()
            );
        }
    }
    Ok(())
}

/// One daemon per state dir: an exclusive `flock` held for the process's life.
fn lock_state_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("solo.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    if !sys::try_lock_exclusive(&f) {
        bail!("another solo serve is already using the state dir {} (lock {} is held)", dir.display(), path.display());
    }
    Ok(f)
}
