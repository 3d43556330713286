//! The token authority: the signing key, the operator token, the in-memory
//! revocation set (written through to SQLite), and the checks every RPC
//! makes. Token text never leaves this module's callers except to the one
//! who asked for it; logs, events and errors carry only ids.

use super::events::{Event, EventKind};
use super::{Error, Supervisor};
use crate::audit::{Kind, Record};
use crate::auth::{self, Denied, Key, Perm, Perms, Restriction, Token};
use crate::spec::Tier;
use crate::store::{Store, TokenRow};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// File names in the state dir.
pub const KEY_FILE: &str = "token.key";
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// Default and largest lifetime of a token issued through the API.
pub const DEFAULT_TTL_SECS: u64 = 3600;
pub const MAX_TTL_SECS: u64 = 366 * 24 * 3600;

pub struct Authority {
    key: Key,
    revoked: RwLock<HashSet<String>>,
    /// The operator token's id (a root token: it cannot be revoked through
    /// the API, which would lock the operator out).
    pub operator_id: String,
    /// Requests refused for a bad, expired, revoked or too narrow token.
    pub denials: AtomicU64,
    /// When a refusal without a usable token was last recorded as an event.
    last_anonymous_ms: std::sync::atomic::AtomicI64,
}

/// What an API caller asks to be issued.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub subject: String,
    pub resource: String,
    pub perms: Vec<String>,
    pub ttl_secs: u64,
    /// Issue it to this service (subject defaults to `service:ID`).
    pub service: String,
}

impl Authority {
    /// Loads (or creates) the key and revocation list, and makes sure the
    /// operator token file holds a valid token.
    pub async fn open(state_dir: &Path, store: &Store) -> Result<Authority, Error> {
        let key = Key::load_or_create(&state_dir.join(KEY_FILE)).map_err(|e| Error::Precondition(e.to_string()))?;
        let revoked: HashSet<String> = store.revoked_ids()?.into_iter().collect();
        let path = state_dir.join(OPERATOR_TOKEN_FILE);
        let now = auth::now_secs();
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => match auth::verify(&key, text.trim(), now, |id| revoked.contains(id)) {
                Ok(t) if t.chain().len() == 1 && t.claims().perms == Perms::all() => Some(t),
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "the operator token file holds a narrower token; issuing a new operator token");
                    None
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), reason = %e, "the operator token no longer verifies; issuing a new one");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::Precondition(format!("cannot read {}: {e}", path.display()))),
        };
        let operator = match existing {
            Some(t) => t,
            None => {
                let t = auth::issue(&key, "operator", "*", Perms::all(), now, 0)
                    .map_err(|e| Error::Internal(format!("issue the operator token: {e}")))?;
                write_secret(&path, &t.encode())
                    .map_err(|e| Error::Precondition(format!("cannot write {}: {e}", path.display())))?;
                store.insert_token(&row(&t, "")).await?;
                tracing::info!(path = %path.display(), id = t.id(), "wrote a new operator token (0600)");
                t
            }
        };
        Ok(Authority {
            key,
            revoked: RwLock::new(revoked),
            operator_id: operator.id().to_owned(),
            denials: AtomicU64::new(0),
            last_anonymous_ms: std::sync::atomic::AtomicI64::new(i64::MIN / 2),
        })
    }

    /// The key the audit log signs its anchors with (derived, not the token key).
    pub fn audit_key(&self) -> [u8; 32] {
        self.key.derive("audit-anchors")
    }

    /// Full verification: signature chain, narrowing, time, revocation.
    pub fn verify(&self, text: &str) -> Result<Token, Denied> {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        auth::verify(&self.key, text, auth::now_secs(), |id| revoked.contains(id))
    }
}

/// Writes `text` to a new 0600 file atomically (temp file + rename).
fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn row(t: &Token, issued_by: &str) -> TokenRow {
    let c = t.claims();
    TokenRow {
        id: c.id.clone(),
        parent: c.parent.clone(),
        subject: c.subject.clone(),
        resource: c.resource.clone(),
        perms: c.perms.names().join(","),
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        issued_by: issued_by.to_owned(),
        created_at_ms: super::events::now_ms(),
    }
}

/// The resource name of a service.
pub fn service_resource(id: &str) -> String {
    format!("service:{id}")
}

impl Supervisor {
    /// Records a refused request: a counter, a tracing line and an
    /// `access-denied` event (on the service when there is one). Only ids.
    pub fn record_denied(&self, rpc: &str, service: &str, token_id: Option<&str>, why: &Denied) {
        let total = self.tokens.denials.fetch_add(1, Ordering::Relaxed) + 1;
        // Every refusal reaches the audit log, coalesced per caller, call
        // and reason (the first at once, repeats counted).
        let token = token_id.unwrap_or("");
        self.audit_coalesced(
            &format!("auth/{rpc}/{service}/{token}/{why}"),
            Record::new(Kind::AuthFail, service)
                .by(token)
                .message(if rpc.is_empty() {
                    format!("request refused: {why}")
                } else {
                    format!("{rpc} refused: {why}")
                })
                .with("rpc", rpc)
                .with("token", token)
                .with("reason", why.to_string()),
        );
        if token_id.is_none() {
            // Requests without a usable token cost the sender nothing: at
            // most one event a second for them, with the running count, so
            // they cannot fill the event store.
            let now = super::events::now_ms();
            let last = self.tokens.last_anonymous_ms.load(Ordering::Relaxed);
            if now - last < 1000
                || self
                    .tokens
                    .last_anonymous_ms
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                tracing::debug!(rpc, reason = %why, "request without a valid token refused");
                return;
            }
            let mut e = Event::new(EventKind::AccessDenied, service, 0);
            e.message = format!("no valid token: {why} ({total} refusals of any kind since start)");
            self.bus.emit(e);
            tracing::warn!(rpc, reason = %why, "request without a valid token refused");
            return;
        }
        let who = token_id.map_or_else(|| "no valid token".to_owned(), |id| format!("token {id}"));
        tracing::warn!(rpc, service, token = token_id.unwrap_or(""), reason = %why, "request refused");
        let mut e = Event::new(EventKind::AccessDenied, service, 0);
        e.message = if rpc.is_empty() { format!("{who}: {why}") } else { format!("{rpc} refused, {who}: {why}") };
        self.bus.emit(e);
    }

    /// May `caller` do `perm` on service `id` (of `tier`, when known)? A
    /// `system`-tier service also needs the `system` permission.
    pub fn authorize(&self, rpc: &str, caller: &Token, perm: Perm, id: &str, tier: Option<Tier>) -> Result<(), Error> {
        let c = caller.claims();
        let tier = tier.or_else(|| self.get(id).ok().map(|s| s.spec.tier));
        let r = auth::authorize(c, perm, &service_resource(id)).and_then(|()| match tier {
            Some(Tier::System) => auth::authorize(c, Perm::System, &service_resource(id)),
            _ => Ok(()),
        });
        r.map_err(|why| {
            self.record_denied(rpc, id, Some(caller.id()), &why);
            Error::Denied(why.to_string())
        })
    }

    /// May `caller` do `perm` on the whole supervisor (resource `*`)?
    pub fn authorize_global(&self, rpc: &str, caller: &Token, perm: Perm) -> Result<(), Error> {
        let c = caller.claims();
        let why = if !c.perms.contains(perm) {
            Denied::MissingPermission { perm }
        } else if c.resource != "*" {
            Denied::OutOfScope { resource: c.resource.clone(), target: "* (the whole supervisor)".into() }
        } else {
            return Ok(());
        };
        self.record_denied(rpc, "", Some(caller.id()), &why);
        Err(Error::Denied(why.to_string()))
    }

    /// Does the caller's token cover every service (resource `*`)?
    pub fn covers_all(caller: &Token) -> bool {
        caller.claims().resource == "*"
    }

    /// Has the caller's token `perm` at all (on whatever it covers)?
    pub fn require_perm(&self, rpc: &str, caller: &Token, perm: Perm) -> Result<(), Error> {
        if caller.claims().perms.contains(perm) {
            return Ok(());
        }
        let why = Denied::MissingPermission { perm };
        self.record_denied(rpc, "", Some(caller.id()), &why);
        Err(Error::Denied(why.to_string()))
    }

    /// May `caller` see service `id` in lists and watches of everything:
    /// its resource covers it, and a `system`-tier one needs `system`.
    pub fn visible(&self, caller: &Token, id: &str, tier: Option<Tier>) -> bool {
        let c = caller.claims();
        let tier = tier.or_else(|| self.get(id).ok().map(|s| s.spec.tier));
        auth::resource_matches(&c.resource, &service_resource(id))
            && (tier != Some(Tier::System) || c.perms.contains(Perm::System))
    }

    /// Issues a child of `caller`'s token: never wider than it.
    pub async fn issue_token(&self, caller: &Token, req: TokenRequest) -> Result<Token, Error> {
        let invalid = |field: &str, why: String| Error::Invalid(crate::spec::FieldError::invalid(field, why));
        if !req.service.is_empty() {
            self.authorize("GrantCapability", caller, Perm::Grant, &req.service, None)?;
            self.get(&req.service)?;
        } else {
            self.require_perm("GrantCapability", caller, Perm::Grant)?;
        }
        if req.perms.is_empty() {
            return Err(invalid("token.permissions", "name at least one permission".into()));
        }
        let perms = Perms::parse_list(&req.perms.join(",")).map_err(|e| invalid("token.permissions", e))?;
        let resource = if req.resource.is_empty() { caller.claims().resource.clone() } else { req.resource };
        auth::resource_valid(&resource).map_err(|e| invalid("token.resource", e))?;
        let ttl = if req.ttl_secs == 0 { DEFAULT_TTL_SECS } else { req.ttl_secs };
        if ttl > MAX_TTL_SECS {
            return Err(invalid("token.ttl_seconds", format!("{ttl} s is more than the maximum of {MAX_TTL_SECS} s")));
        }
        let subject = match (req.subject.is_empty(), req.service.is_empty()) {
            (false, _) => req.subject,
            (true, false) => service_resource(&req.service),
            (true, true) => return Err(invalid("token.subject", "name who the token is for (e.g. agent-a)".into())),
        };
        let now = auth::now_secs();
        let parent_exp = caller.claims().expires_at;
        let exp = now + ttl;
        // A child cannot outlive its parent: cap the life rather than refuse.
        let exp = if parent_exp != 0 && exp > parent_exp { parent_exp } else { exp };
        let r =
            Restriction { subject: Some(subject), resource: Some(resource), perms: Some(perms), expires_at: Some(exp) };
        let t = auth::attenuate(caller, r, now).map_err(|why| match why {
            Denied::Widened { .. } => {
                self.record_denied("GrantCapability", &req.service, Some(caller.id()), &why);
                Error::Denied(format!("cannot issue a token wider than your own: {why}"))
            }
            other => Error::Invalid(crate::spec::FieldError::invalid("token", other.to_string())),
        })?;
        self.store.insert_token(&row(&t, caller.id())).await?;
        let c = t.claims();
        self.audit(
            Record::new(Kind::TokenIssue, &req.service)
                .by(caller.id())
                .message(format!(
                    "token {} issued to '{}': {} on '{}'",
                    c.id,
                    c.subject,
                    c.perms.names().join(","),
                    c.resource
                ))
                .with("token", c.id.clone())
                .with("parent", c.parent.clone())
                .with("subject", c.subject.clone())
                .with("resource", c.resource.clone())
                .with("perms", c.perms.names())
                .with("expires_at", c.expires_at),
        );
        let mut e = Event::new(EventKind::Granted, &req.service, 0);
        e.message = format!(
            "token {} issued by token {} to '{}': {} on '{}', expires at {}",
            t.id(),
            caller.id(),
            t.claims().subject,
            t.claims().perms.names().join(","),
            t.claims().resource,
            t.claims().expires_at
        );
        self.bus.emit(e);
        Ok(t)
    }

    /// Revokes token `id` and, through the chain every child carries and
    /// the issued-token records, all of its children. Returns how many
    /// token ids were newly revoked.
    pub async fn revoke_token(&self, caller: &Token, id: &str) -> Result<u32, Error> {
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(crate::spec::FieldError::invalid(
                "token_id",
                "a token id is 32 hex digits (solo token inspect shows it)",
            )));
        }
        if id == self.tokens.operator_id {
            return Err(Error::Precondition(
                "the operator token cannot be revoked through the API (it would lock the operator out); to rotate it, stop the daemon, delete token.key and operator.token in the state dir, and start it again".into(),
            ));
        }
        // Who may revoke: the system permission revokes anything; otherwise
        // only the caller's own token or one issued beneath it.
        let c = caller.claims();
        let allowed = c.perms.contains(Perm::Grant)
            && ((c.perms.contains(Perm::System) && c.resource == "*") || self.descends_from(id, caller)?);
        if !allowed {
            let why = Denied::MissingPermission { perm: Perm::Grant };
            self.record_denied("RevokeCapability", "", Some(caller.id()), &why);
            return Err(Error::Denied(format!(
                "token {id} was not issued beneath your token {} (revoking it needs the 'grant' permission on a parent of it, or 'system')",
                caller.id()
            )));
        }
        let fresh = self.store.revoke_tokens(id, caller.id(), super::events::now_ms()).await?;
        {
            let mut set = self.tokens.revoked.write().unwrap_or_else(|p| p.into_inner());
            set.insert(id.to_owned());
            set.extend(fresh.iter().cloned());
        }
        let mut ids = fresh.clone();
        ids.push(id.to_owned());
        self.enforce_token_revocation(&ids);
        self.audit(
            Record::new(Kind::TokenRevoke, "")
                .by(caller.id())
                .message(format!("token {id} revoked, with {} children", fresh.len()))
                .with("token", id)
                .with("children", fresh.clone()),
        );
        let mut e = Event::new(EventKind::Revoked, "", 0);
        e.message = format!("token {id} revoked by token {} ({} ids with its children)", caller.id(), fresh.len());
        self.bus.emit(e);
        Ok(fresh.len() as u32)
    }

    /// Is `id` the caller's own token, or issued (through the API) beneath it?
    fn descends_from(&self, id: &str, caller: &Token) -> Result<bool, Error> {
        // Its own token, never an ancestor's: a child cannot revoke its parent.
        if caller.id() == id {
            return Ok(true);
        }
        let mut cur = id.to_owned();
        for _ in 0..16 {
            match self.store.token(&cur)? {
                Some(r) if r.parent == caller.id() || r.issued_by == caller.id() => return Ok(true),
                Some(r) if !r.parent.is_empty() => cur = r.parent,
                _ => return Ok(false),
            }
        }
        Ok(false)
    }
}
