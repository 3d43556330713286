//! The one mapping from supervisor errors to gRPC status codes.

use crate::spec::FieldErrorKind;
use crate::supervisor::Error;
use tonic::{Code, Status};

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let code = match &e {
            Error::Invalid(f) => match f.kind {
                FieldErrorKind::Invalid => Code::InvalidArgument,
                FieldErrorKind::TooLarge => Code::ResourceExhausted,
                FieldErrorKind::Unimplemented => Code::Unimplemented,
                FieldErrorKind::NotFound => Code::NotFound,
            },
            Error::NotFound(_) | Error::NoSuch(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::Precondition(_) | Error::Cgroup(_) => Code::FailedPrecondition,
            Error::Exhausted(_) => Code::ResourceExhausted,
            Error::ShuttingDown => Code::Unavailable,
            Error::Denied(_) => Code::PermissionDenied,
            Error::Store(_) | Error::Artifact(_) | Error::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
