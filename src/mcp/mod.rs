//! `solo mcp`: a Model Context Protocol server for agents, built on the
//! official Rust SDK (`rmcp`). It is one more client of the gRPC API, not a
//! second control path: every tool is one RPC of `solo.v1.Solo`, made with
//! the caller's token, so the daemon applies every permission check and
//! records every refusal exactly as for the CLI. This module never imports
//! the supervisor, the store or the daemon (tests/docs.rs checks it).
//!
//! Over stdio the token is the one `solo mcp` was started with (an agent's,
//! attenuated to its scope). Over streamable HTTP (`--http`, loopback only)
//! `solo mcp` holds no token at all: each request presents its own in
//! `Authorization: Bearer`, and is refused with 401 without one.

pub mod schema;
pub mod tools;

use crate::cli::{self, Global};
use axum::http::{header, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::Args;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tools::ToolKind;

/// `solo mcp` options.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  solo token issue --subject agent-a --perm deploy,status,kill,watch,grant \\
      --resource 'service:agent-a-*' --ttl 12h > agent-a.token
  solo mcp --token-file agent-a.token                  # stdio, for the agent's MCP client
  solo mcp --http 127.0.0.1:8765                       # streamable HTTP at /mcp; each
                                                       # request brings its own Bearer token

See docs/mcp.md.")]
pub struct McpArgs {
    /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (a loopback address only).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum McpServeError {
    #[error("--http {0}: not a loopback address; the MCP endpoint takes tokens over plain HTTP, so it listens on 127.0.0.1 or [::1] only (reach it from elsewhere through an SSH tunnel)")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {cause}")]
    Listen { addr: SocketAddr, cause: std::io::Error },
    #[error("no token for `solo mcp`: give the agent's token with --token-file FILE or SOLO_TOKEN (make one with `solo token issue ... --resource 'service:agent-*'`); `solo mcp` does not fall back to the operator token")]
    NoToken,
}

/// The MCP server: the tools, a channel to the daemon, and (over stdio)
/// the token every call presents.
#[derive(Clone)]
pub struct SoloMcp {
    channel: tonic::transport::Channel,
    /// `None` over HTTP: each request's own Bearer token is used.
    token: Option<Arc<str>>,
    tools: Arc<Vec<Tool>>,
}

impl SoloMcp {
    pub fn new(channel: tonic::transport::Channel, token: Option<&str>) -> SoloMcp {
        SoloMcp {
            channel,
            token: token.map(Arc::from),
            tools: Arc::new(ToolKind::OFFERED.iter().map(|k| k.tool()).collect()),
        }
    }

    /// The token of this call: ours, else the HTTP request's Bearer.
    fn token_of(&self, ctx: &RequestContext<RoleServer>) -> Option<String> {
        if let Some(t) = &self.token {
            return Some(t.to_string());
        }
        let parts = ctx.extensions.get::<http::request::Parts>()?;
        bearer(parts.headers.get(header::AUTHORIZATION)?).map(str::to_owned)
    }
}

fn bearer(v: &http::HeaderValue) -> Option<&str> {
    v.to_str().ok()?.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty())
}

impl ServerHandler for SoloMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("solo", env!("CARGO_PKG_VERSION")).with_title("Solo supervisor"))
            .with_instructions(
                "Solo runs every service you deploy as its own sandboxed OS process and restarts it when it crashes. \
                 Deploy with `deploy` (a script's text and its interpreter is simplest), check it with `status` and \
                 `logs`, stop it with `kill`. Your token limits which services you may touch: a refusal names the \
                 scope it covers.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(kind) = ToolKind::parse(&request.name) else {
            return Err(McpError::invalid_params(format!("no tool named '{}'", request.name), None));
        };
        let Some(token) = self.token_of(&context) else {
            return Ok(tools::error("unauthenticated", "no token: send 'Authorization: Bearer <solo token>'").into());
        };
        let mut client = match cli::with_token(self.channel.clone(), Some(&token)) {
            Ok(c) => c,
            Err(e) => return Ok(tools::error("unauthenticated", &e.to_string()).into()),
        };
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
        tracing::debug!(tool = kind.name(), "tool call");
        Ok(tools::call(&mut client, kind, args).await.into())
    }
}

/// Runs `solo mcp` until stdin closes (stdio) or it is interrupted (HTTP).
pub async fn run(g: &Global, a: McpArgs) -> anyhow::Result<ExitCode> {
    let socket = g.socket.clone().unwrap_or_else(cli::default_socket);
    match a.http {
        None => {
            // An explicit token only: an agent gets its own, never the operator's by accident.
            if g.token.is_none() && g.token_file.is_none() {
                return Err(McpServeError::NoToken.into());
            }
            let token = g.token()?;
            let channel = cli::channel(&socket).await?;
            let server = SoloMcp::new(channel, Some(&token)).serve(rmcp::transport::stdio()).await?;
            server.waiting().await?;
        }
        Some(addr) => serve_http(addr, cli::channel_lazy(&socket)?).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves streamable HTTP at `addr`/mcp; each request must bring a token.
pub async fn serve_http(addr: SocketAddr, channel: tonic::transport::Channel) -> anyhow::Result<()> {
    use rmcp::transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    if !addr.ip().is_loopback() {
        return Err(McpServeError::NotLoopback(addr).into());
    }
    // Loopback Host names only (DNS rebinding), and no browser Origin at all.
    let config = StreamableHttpServerConfig::default().enforce_origin_validation();
    let service = StreamableHttpService::new(
        move || Ok(SoloMcp::new(channel.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", service).layer(axum::middleware::from_fn(require_bearer));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|cause| McpServeError::Listen { addr, cause })?;
    eprintln!("solo mcp: serving MCP (streamable HTTP) at http://{addr}/mcp; each request needs 'Authorization: Bearer <solo token>'");
    axum::serve(listener, app).with_graceful_shutdown(ctrl_c()).await?;
    Ok(())
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// 401 for a request without `Authorization: Bearer <token>`; the token
/// itself is checked by the daemon on every RPC the request makes.
async fn require_bearer(req: Request<axum::body::Body>, next: Next) -> Response {
    if req.headers().get(header::AUTHORIZATION).and_then(bearer).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "solo mcp: send 'Authorization: Bearer <solo token>' (see docs/mcp.md)\n",
        )
            .into_response();
    }
    next.run(req).await
}
