//! Serves the API on the Unix socket (0600) and optionally on TCP, with
//! `grpc.health.v1.Health` and server reflection.

use super::Api;
use crate::proto::v1::solo_server::SoloServer;
use crate::supervisor::Supervisor;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};

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
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unix_err(e)),
    }
    let uds = tokio::net::UnixListener::bind(socket).map_err(unix_err)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(unix_err)?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<SoloServer<Api>>().await;
    // v1 and v1alpha: older grpcurl and grpcio-reflection speak only v1alpha.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    // Every Solo call passes the token check first (super::auth).
    let solo = || {
        tonic::service::interceptor::InterceptedService::new(
            SoloServer::new(Api::new(sup.clone()))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(64 << 20),
            super::auth::Authn { sup: sup.clone() },
        )
    };
    let router = || {
        tonic::transport::Server::builder()
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
    let unix = router().serve_with_incoming_shutdown(UnixListenerStream::new(uds), exit(sup.clone()));
    match tcp {
        None => unix.await?,
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|cause| ServeError::Tcp { addr, cause })?;
            tracing::info!(%addr, "serving gRPC on TCP");
            let tcp = router().serve_with_incoming_shutdown(TcpListenerStream::new(l), exit(sup.clone()));
            let (a, b) = tokio::join!(unix, tcp);
            a?;
            b?;
        }
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
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
