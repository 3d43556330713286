//! Connecting to the daemon over its Unix socket or TCP, with the caller's
//! token on every call.

use crate::proto::v1::solo_client::SoloClient;
use anyhow::Context;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

pub const DEFAULT_RUNTIME_DIR: &str = "/run/solo";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/solo";

/// A connected client that sends `authorization: Bearer <token>`.
pub type Client = SoloClient<InterceptedService<Channel, Bearer>>;

/// Adds the bearer token to each request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// `None` sends no header (the daemon answers UNAUTHENTICATED).
    pub fn new(token: Option<&str>) -> anyhow::Result<Bearer> {
        match token {
            None => Ok(Bearer(None)),
            Some(t) => {
                let v = format!("Bearer {}", t.trim())
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| anyhow::anyhow!("the token is not printable ASCII (is it a solo token?)"))?;
                Ok(Bearer(Some(v)))
            }
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// The socket path clients use when none is given: `$SOLO_RUNTIME_DIR`
/// (or /run/solo) + `/solo.sock`, as the daemon does.
pub fn default_socket() -> PathBuf {
    let rt =
        std::env::var_os("SOLO_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR));
    rt.join("solo.sock")
}

/// The operator token file clients read when no token is given:
/// `$SOLO_STATE_DIR` (or /var/lib/solo) + `/operator.token`, as the daemon writes it.
pub fn default_token_file() -> PathBuf {
    let st = std::env::var_os("SOLO_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    st.join("operator.token")
}

/// Reads a token file: the first non-empty line.
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the token file {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the token file {} is empty", path.display()))
}

/// Connects to `socket` (a path, or `http://host:port`) presenting `token`,
/// for one command: if the daemon does not answer at all (a Unix socket
/// kept open by the launcher while no daemon serves it: a restart in
/// progress, or a daemon stopped with `--on-sigterm detach`), the command
/// says so after 2 s and gives up after `SOLO_DAEMON_WAIT` seconds
/// (default 30).
pub async fn connect(socket: &Path, token: Option<&str>) -> anyhow::Result<Client> {
    let bearer = Bearer::new(token)?;
    let channel = channel(socket).await?;
    if !is_tcp(socket) {
        watch_for_an_answer(socket.to_owned());
    }
    Ok(with_bearer(channel, bearer))
}

/// Set once the daemon sent anything on a Unix-socket connection.
static ANSWERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn watch_for_an_answer(socket: PathBuf) {
    let limit = std::env::var("SOLO_DAEMON_WAIT").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(30);
    tokio::spawn(async move {
        let answered = || ANSWERED.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        if answered() {
            return;
        }
        eprintln!(
            "solo: waiting for the daemon at {} to answer (it is restarting, or it left its services running and stopped); giving up in {} s",
            socket.display(),
            limit.saturating_sub(2)
        );
        tokio::time::sleep(std::time::Duration::from_secs(limit.saturating_sub(2))).await;
        if !answered() {
            eprintln!(
                "solo: no daemon answered at {} within {limit} s: start it (`solo serve`, `systemctl start solo`)",
                socket.display()
            );
            std::process::exit(1);
        }
    });
}

/// A connected channel to `socket` (a path, or `http://host:port`), with no
/// token: [`with_token`] makes a client of it for one caller. A channel
/// multiplexes calls, so several callers (the sessions of `solo ui`, the
/// requests of `solo mcp --http`) share one.
pub async fn channel(socket: &Path) -> anyhow::Result<Channel> {
    let ep = endpoint(socket)?;
    let connected = if is_tcp(socket) { ep.connect().await } else { ep.connect_with_connector(unix(socket)).await };
    connected.with_context(|| {
        format!(
            "cannot connect to the solo daemon at {} (is `solo serve` running? set --socket or SOLO_SOCKET if it listens elsewhere)",
            socket.display()
        )
    })
}

/// Like [`channel`], but connects on first use (and reconnects after the
/// daemon restarts): for a server that starts before the daemon's socket
/// exists, as `solo serve --ui` does.
pub fn channel_lazy(socket: &Path) -> anyhow::Result<Channel> {
    let ep = endpoint(socket)?;
    Ok(if is_tcp(socket) { ep.connect_lazy() } else { ep.connect_with_connector_lazy(unix(socket)) })
}

/// A client on `channel` presenting `token` on every call.
pub fn with_token(channel: Channel, token: Option<&str>) -> anyhow::Result<Client> {
    Ok(with_bearer(channel, Bearer::new(token)?))
}

fn with_bearer(channel: Channel, bearer: Bearer) -> Client {
    SoloClient::with_interceptor(channel, bearer).max_decoding_message_size(64 << 20).max_encoding_message_size(4 << 30)
}

fn is_tcp(socket: &Path) -> bool {
    let s = socket.to_string_lossy();
    s.starts_with("http://") || s.starts_with("https://")
}

fn endpoint(socket: &Path) -> anyhow::Result<Endpoint> {
    if is_tcp(socket) {
        Ok(Endpoint::from_shared(socket.to_string_lossy().into_owned())?)
    } else {
        // The URI is ignored: the connector dials the socket.
        Ok(Endpoint::try_from("http://[::]:50051")?)
    }
}

/// Dials the Unix socket at `socket`.
fn unix(
    socket: &Path,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<NoSigpipe>,
    Error = std::io::Error,
    Future = impl std::future::Future<Output = std::io::Result<TokioIo<NoSigpipe>>> + Send,
> + Clone
       + Send
       + 'static {
    let path: PathBuf = socket.to_owned();
    tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(NoSigpipe(tokio::net::UnixStream::connect(path).await?))) }
    })
}

/// A Unix stream whose writes never raise `SIGPIPE`: the CLI keeps the
/// signal's default action for its stdout, and a daemon that closes the
/// connection (a re-exec, a shutdown) must give an error, not kill it.
pub struct NoSigpipe(tokio::net::UnixStream);

impl tokio::io::AsyncRead for NoSigpipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if buf.filled().len() > before {
            ANSWERED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }
}

impl tokio::io::AsyncWrite for NoSigpipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::os::fd::AsRawFd;
        use std::task::Poll;
        loop {
            match self.0.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let fd = self.0.as_raw_fd();
            match self.0.try_io(tokio::io::Interest::WRITABLE, || crate::sandbox::sys::send_nosignal(fd, buf)) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
