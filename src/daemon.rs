//! `solo serve`: configuration, start-up checks, signals, and the serve loop.

use crate::sandbox::sys;
use crate::supervisor::{self, Leaving, Supervisor};
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

/// What SIGTERM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnSigterm {
    /// Stop every service (user tier, then system), then exit.
    Stop,
    /// Exit and leave every service running; the next `solo serve`
    /// re-adopts them (what `systemctl restart solo` wants).
    Detach,
}

// `solo serve` flags (each also settable by environment). A comment, not a
// doc comment: clap would show it instead of the `serve` variant's text.
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
    /// Lines of each service's output kept in memory for `solo logs` and
    /// Watch (1-100000); older lines are only in the service's log files.
    /// The daemon's memory for logs is about this times 200 bytes per service.
    #[arg(long, env = "SOLO_LOG_RING_LINES", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub log_ring_lines: u32,
    /// Threads running the gRPC server and the supervision tasks (1-64).
    /// Default: one fewer than the CPUs, at least 1, so the launcher, the
    /// store's writer and the blocking pool keep a CPU; every extra worker
    /// adds hand-offs between CPUs to each request.
    #[arg(long, env = "SOLO_WORKERS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: Option<u16>,
    /// Revisions kept per service (1-100), for `solo rollback`: the newest
    /// ones, and always the one running. Artifacts no kept revision names
    /// are removed.
    #[arg(long, env = "SOLO_KEEP_REVISIONS", default_value_t = supervisor::Config::DEFAULT_KEEP_REVISIONS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub keep_revisions: u32,
    /// Also serve the operator's live web view on this address (e.g.
    /// 127.0.0.1:8090; off by default). Every page needs a login with a
    /// Solo token and is made from gRPC calls with it (docs/ui.md).
    #[arg(long, env = "SOLO_UI", value_name = "ADDR")]
    pub ui: Option<SocketAddr>,
    /// Allow a non-loopback --ui address (plain HTTP: tokens cross the network in clear).
    #[arg(long, requires = "ui")]
    pub ui_allow_remote: bool,
    /// What SIGTERM does: stop every service then exit, or exit leaving
    /// them running for the next `solo serve` to re-adopt (the systemd
    /// unit's choice). SIGINT always stops; `solo shutdown` always stops;
    /// SIGHUP and `solo daemon reexec` re-exec the binary, leaving them
    /// running.
    #[arg(long, env = "SOLO_ON_SIGTERM", value_enum, default_value = "stop")]
    pub on_sigterm: OnSigterm,
    /// Audit records older than this are pruned, behind a signed checkpoint
    /// (e.g. 90d, 12h; "off" keeps them by age forever). See docs/audit.md.
    #[arg(long, env = "SOLO_AUDIT_RETENTION", default_value = "90d", value_parser = parse_retention, value_name = "AGE")]
    pub audit_retention: AuditAge,
    /// At most this many audit records are kept (the oldest are pruned
    /// behind a signed checkpoint); 0 = no limit.
    #[arg(long, env = "SOLO_AUDIT_MAX_RECORDS", default_value_t = 1_000_000, value_name = "N")]
    pub audit_max_records: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464);
    /// off by default. Loopback only unless --metrics-allow-remote. See docs/metrics.md.
    #[arg(long, env = "SOLO_METRICS", value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Let --metrics bind a non-loopback address (the metrics name every
    /// service; put a firewall or a proxy with authentication in front).
    #[arg(long, env = "SOLO_METRICS_ALLOW_REMOTE", requires = "metrics")]
    pub metrics_allow_remote: bool,
}

/// `--audit-retention`: an age, or `None` for `off`.
#[derive(Debug, Clone, Copy)]
pub struct AuditAge(pub Option<Duration>);

/// `--audit-retention`: `off`, or a positive age such as `90d`, `12h`, `30m`.
fn parse_retention(s: &str) -> Result<AuditAge, String> {
    if s == "off" {
        return Ok(AuditAge(None));
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{s}' is not an age: use a number and s, m, h or d (e.g. 90d), or off")),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 => n
            .checked_mul(mult)
            .map(|secs| AuditAge(Some(Duration::from_secs(secs))))
            .ok_or_else(|| format!("'{s}' is too long")),
        _ => Err(format!("'{s}' is not an age: use a positive number and s, m, h or d (e.g. 90d), or off")),
    }
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
    // Before anything opens a descriptor of its own: whatever the daemon
    // inherited beyond stdin, stdout and stderr (a script's pipe, a file,
    // a socket) is closed, so it can neither reach the launcher and a
    // service nor keep the starter's pipe open.
    let inherited = close_inherited().context("cannot close inherited descriptors")?;
    init_tracing(&args);
    if !inherited.is_empty() {
        tracing::info!(descriptors = %inherited.join(", "), "closed descriptors inherited from the parent");
    }
    // Nothing the daemon writes (database, logs) is for other uids; files
    // meant for services (artifacts) get their modes set explicitly.
    sys::set_umask(0o077);
    // Instances hold pipes and pidfds: lift the soft fd limit to the hard one.
    if let Ok((_, hard)) = sys::getrlimit(libc::RLIMIT_NOFILE) {
        let _ = sys::setrlimit(libc::RLIMIT_NOFILE, hard, hard);
    }
    sys::set_child_subreaper().context("cannot become a child subreaper")?;
    let reexecuted = std::env::var_os(REEXEC_ENV).is_some();
    // Not passed on to the launcher it may start, nor to a later re-exec
    // (removed while the process is still single-threaded).
    std::env::remove_var(REEXEC_ENV);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(&args))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(args, socket, reexecuted))
}

/// Closes every descriptor from 3 up; returns them as `N (target)`.
fn close_inherited() -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd")?.flatten() {
        if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).filter(|fd| *fd >= 3) {
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
            found.push((fd, target));
        }
    }
    // The directory read above is closed by now: what is still open was inherited.
    found.retain(|(fd, _)| sys::fd_is_open(*fd));
    sys::close_fds_from(3).map_err(|e| std::io::Error::from_raw_os_error(e.0))?;
    Ok(found.into_iter().map(|(fd, t)| format!("{fd} ({t})")).collect())
}

async fn serve(args: ServeArgs, socket: Option<PathBuf>, reexecuted: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create state dir {}", args.state_dir.display()))?;
    let state_dir = args.state_dir.canonicalize().with_context(|| format!("state dir {}", args.state_dir.display()))?;
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o711))?;
    std::fs::create_dir_all(&args.runtime_dir)
        .with_context(|| format!("cannot create runtime dir {}", args.runtime_dir.display()))?;
    check_traversable(&state_dir)?;
    let _lock = lock_state_dir(&state_dir)?;
    // Bound before anything starts: a bad or busy address changes nothing.
    let metrics = match args.metrics {
        Some(addr) => Some(crate::metrics::http::bind(addr, args.metrics_allow_remote).await?),
        None => None,
    };
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
        log: supervisor::logs::LogConfig { ring_lines: args.log_ring_lines as usize, ..Default::default() },
        runtime_dir: args.runtime_dir.clone(),
        keep_revisions: args.keep_revisions,
        audit: supervisor::audit_log::AuditConfig {
            max_age: args.audit_retention.0,
            max_records: (args.audit_max_records > 0).then_some(args.audit_max_records),
            ..Default::default()
        },
        sample_usage: metrics.is_some(),
        reexecuted,
    };
    tracing::info!(state_dir = %config.state_dir.display(), cgroup = %config.cgroup_tag, reexecuted, "starting");
    let profiles =
        crate::profiles::ProfileSet::load(args.profiles_dir.as_deref()).context("cannot load the sandbox profiles")?;
    let sup = Supervisor::start(config, profiles).await.context("cannot start the supervisor")?;
    tracing::info!(mode = sup.layout.mode(), services = sup.len(), "supervisor ready");
    spawn_signal_tasks(sup.clone(), args.on_sigterm)?;
    if let Some(listener) = metrics {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let s = sup.clone();
        crate::metrics::http::serve(listener, Arc::new(move || s.render_metrics()));
        tracing::info!(addr = %addr, "serving Prometheus metrics at /metrics");
    }
    if let Some(addr) = args.ui {
        spawn_ui(&sup, addr, &args, &socket).await?;
    }
    // Room for the artifact plus the rest of the request.
    let max_message = (args.upload_limit as usize).saturating_add(4 << 20);
    crate::api::server::serve(sup.clone(), &socket, args.listen, max_message).await?;
    match sup.leaving() {
        None => {
            let why = sup
                .stop_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "exit requested".into());
            sup.audit_daemon_stop(&why).await;
            // Everything recorded so far reaches the database before exit.
            sup.store.flush().await;
            tracing::info!("bye");
            Ok(())
        }
        Some(how) => {
            let why = match how {
                Leaving::Reexec => "re-exec: services left running for the new image to re-adopt",
                Leaving::Detach => "detached: services left running for the next solo serve to re-adopt",
            };
            sup.audit_daemon_stop(why).await;
            sup.hand_over().await;
            match how {
                Leaving::Detach => {
                    tracing::info!("bye (services left running)");
                    // No runtime tear-down: nothing may stop the services now.
                    std::process::exit(0)
                }
                Leaving::Reexec => Err(reexec(&sup.config.exe)),
            }
        }
    }
}

/// `--ui`: the web view, in this process but a client of the gRPC socket
/// like any other (it holds no token of its own: each login brings one).
async fn spawn_ui(sup: &Arc<Supervisor>, addr: SocketAddr, args: &ServeArgs, socket: &Path) -> anyhow::Result<()> {
    let channel = crate::cli::channel_lazy(socket)?;
    let bound = crate::ui::bind(addr, args.ui_allow_remote, args.profiles_dir.as_deref(), channel).await?;
    tracing::info!(addr = %bound.addr().unwrap_or(addr), "serving the web view (--ui)");
    let mut exit = sup.exit.subscribe();
    tokio::spawn(async move {
        let stop = async move {
            let _ = exit.wait_for(|e| *e).await;
        };
        if let Err(e) = bound.serve(stop).await {
            tracing::error!(error = %e, "the web view stopped");
        }
    });
    Ok(())
}

/// Execs `exe` with this process's arguments: the same pid, a new image
/// (possibly a new binary at the same path) that attaches to the launcher
/// and re-adopts every service. Returns only on failure; the services stay
/// with the launcher, so the next start (systemd's `Restart=`) re-adopts
/// them.
fn reexec(exe: &Path) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    tracing::info!(binary = %exe.display(), "re-executing");
    let e = std::process::Command::new(exe).args(std::env::args_os().skip(1)).env(REEXEC_ENV, "1").exec();
    anyhow::anyhow!(
        "cannot re-exec {}: {e}; the services keep running with the launcher and the next `solo serve` re-adopts them",
        exe.display()
    )
}

/// Set in the environment of a re-exec'd daemon (for its log line).
const REEXEC_ENV: &str = "SOLO_REEXECUTED";

fn spawn_signal_tasks(sup: Arc<Supervisor>, on_sigterm: OnSigterm) -> anyhow::Result<()> {
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
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let (which, leave) = tokio::select! {
            _ = term.recv() => ("SIGTERM", (on_sigterm == OnSigterm::Detach).then_some(Leaving::Detach)),
            _ = int.recv() => ("SIGINT", None),
            _ = hup.recv() => ("SIGHUP", Some(Leaving::Reexec)),
        };
        match leave {
            Some(how) => {
                tracing::info!(signal = which, ?how, "leaving the services running");
                sup.leave(how);
            }
            None => {
                tracing::info!(signal = which, "graceful shutdown");
                sup.shutdown(Duration::from_secs(30)).await;
                sup.request_exit(which);
            }
        }
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
