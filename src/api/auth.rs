//! Authentication of every `solo.v1.Solo` call: the interceptor verifies
//! the `authorization: Bearer <token>` header and leaves the verified
//! token in the request's extensions; each handler then asks
//! [`caller`] for it and checks the permission it needs on the service it
//! touches. Health and reflection are not behind it: they reveal nothing
//! but liveness and the schema.

use crate::auth::{Denied, Token};
use crate::supervisor::Supervisor;
use std::sync::Arc;
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
