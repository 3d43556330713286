//! Authentication of every `solo.v1.Solo` call: the interceptor verifies
//! the `authorization: Bearer <token>` header and leaves the verified
//! token in the request's extensions; each handler then asks
//! [`caller`] for it and checks the permission it needs on the service it
//! touches. Health and reflection are not behind it: they reveal nothing
//! but liveness and the schema.
//!
//! A method `solo.v1.Solo` does not have is answered `UNIMPLEMENTED`, with
//! or without a token, as gRPC requires: [`KnownMethods`] marks such a
//! request before the interceptor sees it (the interceptor gets no path).
//! Only the absence of the mark leads to a token check, so a request the
//! wrapper never saw is still checked; and every handler asks [`caller`]
//! for the verified token anyway.

use crate::auth::{Denied, Token};
use crate::supervisor::Supervisor;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tonic::server::NamedService;
use tonic::{Request, Status};

/// The verified token of the request's caller.
#[derive(Clone)]
pub struct Caller(pub Arc<Token>);

#[derive(Clone)]
pub struct Authn {
    pub sup: Arc<Supervisor>,
}

/// Largest `authorization` header accepted (a token is at most 8 KiB).
const MAX_HEADER: usize = 9 << 10;

impl tonic::service::Interceptor for Authn {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(UnknownMethod(method)) = req.extensions().get::<UnknownMethod>() {
            return Err(Status::unimplemented(format!("unknown method {method} for service solo.v1.Solo")));
        }
        let Some(value) = req.metadata().get("authorization") else {
            let why = Denied::Malformed("no 'authorization' header".into());
            self.sup.record_denied("", "", None, &why);
            return Err(Status::unauthenticated(
                "no token: send 'authorization: Bearer <token>'; the CLI reads the operator token from STATE_DIR/operator.token (or --token / SOLO_TOKEN); see docs/capability_model.md",
            ));
        };
        let text = value.to_str().ok().filter(|v| v.len() <= MAX_HEADER).and_then(|v| v.strip_prefix("Bearer "));
        let Some(text) = text else {
            let why = Denied::Malformed("the authorization header is not 'Bearer <token>'".into());
            self.sup.record_denied("", "", None, &why);
            return Err(Status::unauthenticated(
                "the authorization header must be 'Bearer <token>' (at most 9 KiB of ASCII)",
            ));
        };
        match self.sup.tokens.verify(text.trim()) {
            Ok(t) => {
                self.sup.audit_token_use(&t);
                req.extensions_mut().insert(Caller(Arc::new(t)));
                Ok(req)
            }
            Err(why) => {
                // The id a bad token claims is recorded as claimed: it is
                // not secret, and it helps an operator find the holder.
                let claimed = Token::parse(text.trim()).ok().map(|t| t.id().to_owned());
                self.sup.record_denied("", "", claimed.as_deref(), &why);
                Err(Status::permission_denied(why.to_string()))
            }
        }
    }
}

/// The caller's verified token (set by [`Authn`]).
pub fn caller<T>(req: &Request<T>) -> Result<Arc<Token>, Status> {
    req.extensions()
        .get::<Caller>()
        .map(|c| c.0.clone())
        .ok_or_else(|| Status::unauthenticated("no verified token on this request"))
}

/// Set on a request for a method `solo.v1.Solo` does not have (the
/// method's name, at most 128 bytes of it).
#[derive(Clone)]
struct UnknownMethod(String);

/// Wraps the authenticated `solo.v1.Solo` service and marks requests for
/// methods it does not have (see the module doc).
#[derive(Clone)]
pub struct KnownMethods<S> {
    pub inner: S,
}

impl<S: NamedService> NamedService for KnownMethods<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for KnownMethods<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().strip_prefix("/solo.v1.Solo/").unwrap_or(req.uri().path());
        if !solo_methods().iter().any(|m| m == method) {
            let shown: String = method.chars().take(128).collect();
            req.extensions_mut().insert(UnknownMethod(shown));
        }
        self.inner.call(req)
    }
}

/// The rpc names of `solo.v1.Solo`, from the descriptor set built from
/// `proto/solo/v1/solo.proto`, so the list cannot drift from the proto.
fn solo_methods() -> &'static [String] {
    static METHODS: OnceLock<Vec<String>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let pool = prost_reflect::DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap_or_default();
        pool.get_service_by_name("solo.v1.Solo")
            .map(|s| s.methods().map(|m| m.name().to_owned()).collect())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_proto_is_known() {
        let proto = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proto/solo/v1/solo.proto"))
            .expect("read solo.proto");
        let rpcs: Vec<&str> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(str::trim)
            .collect();
        assert!(rpcs.len() >= 9, "solo.proto has rpcs {rpcs:?}");
        assert_eq!(solo_methods(), rpcs.as_slice());
    }

    #[test]
    fn unknown_methods_are_marked_and_known_ones_are_not() {
        let marked = |path: &str| {
            let mut svc = KnownMethods {
                inner: tower::service_fn(|req: http::Request<()>| async move {
                    Ok::<_, std::convert::Infallible>(req.extensions().get::<UnknownMethod>().map(|u| u.0.clone()))
                }),
            };
            let req = http::Request::builder().uri(path).body(()).expect("request");
            futures::executor::block_on(tower::Service::call(&mut svc, req)).expect("infallible")
        };
        assert_eq!(marked("/solo.v1.Solo/List"), None);
        assert_eq!(marked("/solo.v1.Solo/Deploy"), None);
        assert_eq!(marked("/solo.v1.Solo/NoSuchMethod"), Some("NoSuchMethod".to_owned()));
        assert_eq!(marked("/solo.v1.Solo/list"), Some("list".to_owned()));
        assert_eq!(marked("/solo.v1.Solo/"), Some(String::new()));
        assert_eq!(marked(&format!("/solo.v1.Solo/{}", "x".repeat(1000))).map(|m| m.len()), Some(128));
    }
}
