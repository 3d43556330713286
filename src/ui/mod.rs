//! The operator's live view: a small web page (server-rendered HTML, one
//! script, one stylesheet, all embedded in the binary) with the service
//! tree, per-service CPU and memory over the last minutes, the live event
//! stream (`Watch`, as server-sent events), each service's grants and its
//! profile explained and audited.
//!
//! Invariant: it is a client of the gRPC API like the CLI. There is no
//! page without a login, the login is a Solo token, and every page is made
//! from RPCs that present that token: the view shows what the token may
//! see and does (stop, remove, revoke) only what it may do. Run inside the
//! daemon (`solo serve --ui`) it still reaches the daemon through its
//! socket. It never imports the supervisor, the store, the api or the
//! daemon (tests/docs.rs checks it).

mod page;
mod server;
mod session;

use crate::cli::{self, Global};
use crate::profiles::ProfileSet;
use clap::Args;
use session::Sessions;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tonic::transport::Channel;

/// `solo ui` options.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Example:
  solo ui --listen 127.0.0.1:8090
      prints a one-time login link for your token (the operator's by default);
      anyone else logs in with a token of their own

See docs/ui.md.")]
pub struct UiArgs {
    /// Address to serve the page on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Allow a non-loopback --listen address. Tokens then cross the network in clear (plain HTTP): prefer an SSH tunnel.
    #[arg(long)]
    pub allow_remote: bool,
    /// The daemon's --profiles-dir, so profile explain/audit match what services run under.
    #[arg(long, env = "SOLO_PROFILES_DIR", value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Do not print a login link (every browser logs in with a token).
    #[arg(long)]
    pub no_link: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("{addr}: not a loopback address; the page takes tokens over plain HTTP, so it listens on loopback unless you also pass --ui-allow-remote (solo serve) or --allow-remote (solo ui); an SSH tunnel (ssh -L 8090:127.0.0.1:8090 HOST) is better")]
    NotLoopback { addr: SocketAddr },
    #[error("cannot listen on {addr}: {cause}")]
    Listen { addr: SocketAddr, cause: std::io::Error },
    #[error("web view: {0}")]
    Serve(std::io::Error),
    #[error("cannot load the sandbox profiles: {0}")]
    Profiles(#[from] crate::profiles::ProfileError),
}

/// What every handler shares.
pub struct Ui {
    sessions: Arc<Sessions>,
    channel: Channel,
    profiles: ProfileSet,
    /// Bound to loopback: the Host header must name loopback too.
    loopback: bool,
}

/// A bound web view, not serving yet.
pub struct Bound {
    listener: tokio::net::TcpListener,
    ui: Arc<Ui>,
}

impl Bound {
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// A one-time login link for `token`.
    pub fn login_link(&self, token: String) -> String {
        let code = self.ui.sessions.code_for(token);
        match self.addr() {
            Some(a) => format!("http://{a}/login?code={code}"),
            None => format!("/login?code={code}"),
        }
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), UiError> {
        axum::serve(self.listener, server::router(self.ui))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(UiError::Serve)
    }
}

/// Binds the view at `addr`; it reaches the daemon through `channel`.
pub async fn bind(
    addr: SocketAddr,
    allow_remote: bool,
    profiles_dir: Option<&std::path::Path>,
    channel: Channel,
) -> Result<Bound, UiError> {
    let loopback = addr.ip().is_loopback();
    if !loopback && !allow_remote {
        return Err(UiError::NotLoopback { addr });
    }
    let profiles = ProfileSet::load(profiles_dir)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|cause| UiError::Listen { addr, cause })?;
    if !loopback {
        tracing::warn!(%addr, "the web view listens beyond loopback over plain HTTP: tokens cross the network in clear");
    }
    let ui = Arc::new(Ui { sessions: Arc::new(Sessions::default()), channel, profiles, loopback });
    Ok(Bound { listener, ui })
}

/// `solo ui`: serves the page until interrupted.
pub async fn run(g: &Global, a: UiArgs) -> anyhow::Result<ExitCode> {
    if !a.listen.ip().is_loopback() && !a.allow_remote {
        return Err(UiError::NotLoopback { addr: a.listen }.into());
    }
    let socket = g.socket.clone().unwrap_or_else(cli::default_socket);
    let channel = cli::channel(&socket).await?;
    let bound = bind(a.listen, a.allow_remote, a.profiles_dir.as_deref(), channel).await?;
    let addr = bound.addr().unwrap_or(a.listen);
    eprintln!("solo ui: serving http://{addr}/ (log in with a Solo token)");
    if !a.no_link {
        match g.token() {
            Ok(t) => println!("{}", bound.login_link(t)),
            Err(e) => eprintln!("solo ui: no login link ({e:#})"),
        }
    }
    bound.serve(async { drop(tokio::signal::ctrl_c().await) }).await?;
    Ok(ExitCode::SUCCESS)
}
