//! Serves the API on the Unix socket (0600) and optionally on TCP, with
//! `grpc.health.v1.Health` and server reflection. Unix-socket connections
//! go through [`super::uds_authority`] first (grpc-core clients send an
//! `:authority` h2 refuses).

use super::uds_authority::{self, UdsAuthority};
use super::Api;
use crate::proto::v1::solo_server::SoloServer;
use crate::sandbox::sys;
use crate::supervisor::Supervisor;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {path}: {cause}")]
    Unix { path: String, cause: std::io::Error },
    #[error("cannot listen on {addr}: {cause}")]
    Tcp { addr: SocketAddr, cause: std::io::Error },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Runs until the supervisor asks to exit.
pub async fn serve(
    sup: Arc<Supervisor>,
    socket: &Path,
    tcp: Option<SocketAddr>,
    max_message: usize,
) -> Result<(), ServeError> {
    let unix_err = |cause| ServeError::Unix { path: socket.display().to_string(), cause };
    let uds = match inherited_unix(&sup, socket) {
        Some(l) => {
            tracing::info!(socket = %socket.display(), "serving on the socket the previous daemon left (no connection refused)");
            l
        }
        None => {
            match std::fs::remove_file(socket) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unix_err(e)),
            }
            let l = std::os::unix::net::UnixListener::bind(socket).map_err(unix_err)?;
            std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(unix_err)?;
            l
        }
    };
    // The launcher keeps a copy, for the daemon after this one: clients that
    // connect while it takes over wait in the backlog instead of being refused.
    sup.launcher.keep(&[(API_UNIX.to_owned(), uds.as_fd())]).await;
    uds.set_nonblocking(true).map_err(unix_err)?;
    let uds = tokio::net::UnixListener::from_std(uds).map_err(unix_err)?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<SoloServer<Api>>().await;
    // v1 and v1alpha (older grpcurl and grpcio-reflection speak only
    // v1alpha), each describing both, so either lists every service.
    let described = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
    };
    let reflection = described().build_v1()?;
    let reflection_alpha = described().build_v1alpha()?;
    // Every Solo call passes the token check first (super::auth); a
    // method Solo does not have is UNIMPLEMENTED, token or not.
    let solo = || super::auth::KnownMethods {
        inner: tonic::service::interceptor::InterceptedService::new(
            SoloServer::new(Api::new(sup.clone()))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(64 << 20),
            super::auth::Authn { sup: sup.clone() },
        ),
    };
    let router = || {
        tonic::transport::Server::builder()
            .layer(super::timing::TimedLayer(sup.metrics.clone()))
            // hyper's defaults, stated: the Unix-socket adapter frames and
            // bounds header blocks by them.
            .max_frame_size(u32::try_from(uds_authority::MAX_FRAME_SIZE).ok())
            .http2_max_header_list_size(u32::try_from(uds_authority::MAX_HEADER_LIST_SIZE).ok())
            .layer(tower::util::MapResponseLayer::new(oversize_is_resource_exhausted))
            .add_service(health.clone())
            .add_service(reflection.clone())
            .add_service(reflection_alpha.clone())
            .add_service(solo())
    };
    let exit = |sup: Arc<Supervisor>| async move {
        let mut rx = sup.exit.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    };
    tracing::info!(socket = %socket.display(), "serving gRPC on the unix socket");
    let incoming = UnixListenerStream::new(uds).map(|conn| conn.map(UdsAuthority::new));
    let unix = router().serve_with_incoming_shutdown(incoming, exit(sup.clone()));
    match tcp {
        None => unix.await?,
        Some(addr) => {
            let tcp_err = |cause| ServeError::Tcp { addr, cause };
            let l = match sup.take_inherited(API_TCP) {
                Some(fd) if sys::is_listening(fd.as_raw_fd()) && sys::local_addr(fd.as_raw_fd()).ok() == Some(addr) => {
                    std::net::TcpListener::from(fd)
                }
                _ => std::net::TcpListener::bind(addr).map_err(tcp_err)?,
            };
            sup.launcher.keep(&[(API_TCP.to_owned(), l.as_fd())]).await;
            l.set_nonblocking(true).map_err(tcp_err)?;
            let l = tokio::net::TcpListener::from_std(l).map_err(tcp_err)?;
            tracing::info!(%addr, "serving gRPC on TCP");
            let tcp = router().serve_with_incoming_shutdown(TcpListenerStream::new(l), exit(sup.clone()));
            let (a, b) = tokio::join!(unix, tcp);
            a?;
            b?;
        }
    }
    // A daemon that hands its services over leaves the socket in place:
    // the next one serves on the very same socket.
    if sup.leaving().is_none() {
        let _ = std::fs::remove_file(socket);
    }
    Ok(())
}

/// Vault names of the API's listening sockets.
const API_UNIX: &str = "api/unix";
const API_TCP: &str = "api/tcp";

/// The Unix socket a previous daemon left, if it is a listening socket
/// still bound at `path`.
fn inherited_unix(sup: &Supervisor, path: &Path) -> Option<std::os::unix::net::UnixListener> {
    let fd = sup.take_inherited(API_UNIX)?;
    let l = std::os::unix::net::UnixListener::from(fd);
    let bound = l.local_addr().ok()?.as_pathname().map(Path::to_path_buf)?;
    let same = bound == path && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket());
    (same && sys::is_listening(l.as_raw_fd())).then_some(l)
}

/// tonic reports a request larger than the decoding limit as OUT_OF_RANGE;
/// the gRPC spec (and Solo's API contract) says RESOURCE_EXHAUSTED. The
/// status travels in the headers of a trailers-only response, so it can be
/// rewritten here without touching the body.
fn oversize_is_resource_exhausted<B>(mut resp: http::Response<B>) -> http::Response<B> {
    const OUT_OF_RANGE: &str = "11";
    let h = resp.headers_mut();
    let oversize = h.get("grpc-status").is_some_and(|v| v == OUT_OF_RANGE)
        && h.get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("message%20length%20too%20large") || m.contains("message length too large"));
    if oversize {
        h.insert("grpc-status", http::HeaderValue::from_static("8"));
        h.insert(
            "grpc-message",
            http::HeaderValue::from_static(
                "request%20exceeds%20the%20upload%20limit%20(solo%20serve%20--upload-limit)",
            ),
        );
    }
    resp
}
