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

/// Connects to `socket` (a path, or `http://host:port`) presenting `token`.
pub async fn connect(socket: &Path, token: Option<&str>) -> anyhow::Result<Client> {
    let bearer = Bearer::new(token)?;
    let s = socket.to_string_lossy();
    let channel = if s.starts_with("http://") || s.starts_with("https://") {
        Endpoint::from_shared(s.into_owned())?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", socket.display()))?
    } else {
        let path: PathBuf = socket.to_owned();
        Endpoint::try_from("http://[::]:50051")?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .with_context(|| {
                format!(
                    "cannot connect to the solo daemon at {} (is `solo serve` running? set --socket or SOLO_SOCKET if it listens elsewhere)",
                    socket.display()
                )
            })?
    };
    Ok(SoloClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(4 << 30))
}
