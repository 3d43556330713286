//! Connecting to the daemon over its Unix socket or TCP.

use crate::proto::v1::solo_client::SoloClient;
use anyhow::Context;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

pub const DEFAULT_RUNTIME_DIR: &str = "/run/solo";

/// The socket path clients use when none is given: `$SOLO_RUNTIME_DIR`
/// (or /run/solo) + `/solo.sock`, as the daemon does.
pub fn default_socket() -> PathBuf {
    let rt =
        std::env::var_os("SOLO_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR));
    rt.join("solo.sock")
}

/// Connects to `socket` (a path, or `http://host:port`).
pub async fn connect(socket: &Path) -> anyhow::Result<SoloClient<Channel>> {
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
    Ok(SoloClient::new(channel).max_decoding_message_size(64 << 20).max_encoding_message_size(4 << 30))
}
