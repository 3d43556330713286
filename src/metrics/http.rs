//! The metrics endpoint: HTTP/1 on a TCP address, `GET /metrics` only.
//! Loopback unless the operator says otherwise (the names and usage of
//! every service are in there). Rendering runs on the blocking pool, so a
//! scrape of thousands of services never stalls the supervisor's tasks.

use super::text::CONTENT_TYPE;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "--metrics: {addr} is not a loopback address; the metrics name every service and its usage, so Solo serves them on \
         127.0.0.1 or ::1 unless you also pass --metrics-allow-remote"
    )]
    NotLoopback { addr: SocketAddr },
    #[error(
        "--metrics: cannot listen on {addr}: {cause} (is another exporter or solo serve using it? pick another port)"
    )]
    Bind { addr: SocketAddr, cause: std::io::Error },
}

/// Binds the endpoint (before the supervisor starts, so a bad address
/// changes nothing).
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<tokio::net::TcpListener, MetricsError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(MetricsError::NotLoopback { addr });
    }
    tokio::net::TcpListener::bind(addr).await.map_err(|cause| MetricsError::Bind { addr, cause })
}

/// Renders the whole exposition.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves until the task is dropped with the runtime.
pub fn serve(listener: tokio::net::TcpListener, render: Render) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let render = render.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(req, render.clone()));
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                drop(permit);
            });
        }
    });
}

async fn answer(req: Request<hyper::body::Incoming>, render: Render) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |code: StatusCode, ctype: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
        Ok(r)
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "solo serves its metrics at /metrics\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n".into());
    }
    match tokio::task::spawn_blocking(move || render()).await {
        Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("rendering failed: {e}\n")),
    }
}
