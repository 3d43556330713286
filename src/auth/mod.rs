//! Control-plane authorization: signed, attenuable, revocable tokens
//! (`docs/capability_model.md`, SPEC §7). This is *not* capabilities(7):
//! nothing here touches process privileges; a "permission" is the right to
//! call an operation of the supervisor on a resource.
//!
//! Invariants:
//! - pure library code: no I/O except [`Key::load_or_create`], no clock
//!   except [`now_secs`] (every check takes `now` so tests pin time);
//! - nothing a token holder sends is trusted before [`verify`] has checked
//!   the whole HMAC chain with the key and every narrowing step;
//! - no error, `Debug` or `Display` output contains token text, signature or
//!   key bytes; only token ids, which are not secret.
//!
//! A token is a chain of claim blocks, macaroon-style: the supervisor signs
//! block 0 with the key; a holder appends narrower blocks by keying the next
//! HMAC with the previous signature, so it can attenuate offline but cannot
//! remove a block or recover the key.

mod key;
mod perm;
mod resource;
mod token;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests;

pub use key::{Key, KeyError, KEY_LEN};
pub use perm::{Perm, Perms};
pub use resource::{resource_matches, resource_narrows, resource_valid};
pub use token::{
    attenuate, authorize, issue, subject_valid, verify, Claims, Restriction, Token, CLOCK_SKEW_SECS, MAX_DEPTH,
    MAX_RESOURCE_LEN, MAX_SUBJECT_LEN, MAX_TOKEN_LEN, TOKEN_PREFIX,
};

/// Why a token was refused or could not be made. Messages name the token id,
/// the permission or the field, never token text or signature bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The text is not a well-formed token, or a request to issue/attenuate
    /// is invalid. Says what is wrong without quoting the token.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The HMAC chain does not verify: the token was forged, altered,
    /// truncated, or signed by another supervisor's key.
    #[error("token signature is invalid: the token was altered, truncated or signed with another key")]
    BadSignature,
    #[error("token {id}: expired at {}", format_utc(*at))]
    Expired { id: String, at: u64 },
    #[error("token {id}: issued more than {CLOCK_SKEW_SECS} s in the future by this host's clock")]
    NotYetValid { id: String },
    #[error("token {id} has been revoked")]
    Revoked { id: String },
    #[error("token {id}: its ancestor token {parent} has been revoked")]
    ParentRevoked { id: String, parent: String },
    /// `what` starts with the field (`perms`, `resource`, `expires_at`,
    /// `issued_at`) and says how it widens the parent's.
    #[error("token {id} widens its parent: {what}")]
    Widened { id: String, what: String },
    #[error("the token lacks permission '{}'", perm.name())]
    MissingPermission { perm: Perm },
    #[error("token covers '{resource}', not '{target}'")]
    OutOfScope { resource: String, target: String },
}

/// Seconds since the Unix epoch by the system clock (0 if the clock is set
/// before 1970, which makes every expiring token look fresh — such a host has
/// bigger problems, and [`verify`] still checks `issued_at` against it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `2026-11-21T10:00:00Z` for unix seconds `secs` (proleptic Gregorian, UTC),
/// `never` for 0.
pub fn format_utc(secs: u64) -> String {
    if secs == 0 {
        return "never".to_owned();
    }
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
