//! A tower layer timing every gRPC request by method, for
//! `solo_grpc_request_duration_seconds`: from the request to the start of the
//! answer (for a stream, until it opens). One boxed future and two atomic
//! adds per request.

use crate::metrics::Registry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

#[derive(Clone)]
pub struct TimedLayer(pub Arc<Registry>);

impl<S> tower::Layer<S> for TimedLayer {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner, metrics: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    metrics: Arc<Registry>,
}

impl<S, B> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = Registry::method_index(req.uri().path());
        let metrics = self.metrics.clone();
        let t0 = Instant::now();
        let f = self.inner.call(req);
        Box::pin(async move {
            let r = f.await;
            metrics.rpc[method].observe(t0.elapsed().as_secs_f64());
            r
        })
    }
}
