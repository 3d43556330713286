//! The audit log's rules, as pure code: what a record is and which kinds
//! there are ([`Kind`]), how records chain (SHA-256 of the predecessor's
//! hash and every field, [`link`]), how a head or a pruning checkpoint is
//! signed (HMAC-SHA256 with a key derived from the daemon's token key,
//! [`Signer`]), how a stored chain is verified ([`Verifier`]), how repeats
//! are coalesced ([`Coalescer`]) and what retention keeps ([`Retention`]).
//! See `docs/audit.md`.
//!
//! Invariants:
//! - no I/O and no clock: the store keeps the records, the supervisor
//!   feeds them and passes the time in, so every rule is tested exactly;
//! - the hash of record `n` covers every field of it (sequence number
//!   included) and the hash of record `n - 1`: editing, deleting or
//!   reordering any record breaks the chain at the lowest sequence number
//!   touched, and [`Verifier`] reports that one;
//! - records carry token ids, never token text.

mod coalesce;
mod kind;
mod record;
mod retention;
mod sign;
mod since;
mod verify;

pub use coalesce::Coalescer;
pub use kind::Kind;
pub use record::{link, Hash, Record, Stored, GENESIS};
pub use retention::Retention;
pub use sign::{Anchor, AnchorKind, Signer};
pub use since::parse_since;
pub use verify::{Broken, Report, Verifier};

/// Bad input to the audit log's queries. Each message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("{field}: unknown audit kind '{value}' (valid: {})", Kind::names().join(", "))]
    UnknownKind { field: &'static str, value: String },
    #[error("{field}: '{value}' is not a time: {reason}")]
    BadTime { field: &'static str, value: String, reason: String },
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// A 32-byte value from 64 hex digits, if it is one.
pub fn from_hex32(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}
