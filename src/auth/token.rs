//! The token format, issuing, attenuation, verification and authorization.
//!
//! Text form: `solo1.` + base64url-nopad(block JSON) for each block, joined
//! with `.`, then `.` + base64url-nopad(final signature). Signatures chain:
//! `s0 = HMAC(key, block0)`, `s_i = HMAC(s_{i-1}, block_i)`; only `s_n` is
//! carried. The MAC is over the exact decoded block bytes, so there is no
//! canonical-JSON problem. A holder knows `s_n` and can therefore append a
//! block with a valid MAC; what stops it from widening is the narrowing
//! check [`verify`] runs on every step. What stops it from *removing* a
//! block is that `s_{n-1}` is never revealed.

use super::resource::{resource_matches, resource_narrows, resource_valid};
use super::{format_utc, Denied, Key, Perm, Perms};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Every token's text starts with this (format version 1).
pub const TOKEN_PREFIX: &str = "solo1.";
/// Longest accepted token text, in bytes.
pub const MAX_TOKEN_LEN: usize = 8192;
/// Most blocks in a chain (the root and 7 attenuations).
pub const MAX_DEPTH: usize = 8;
/// Longest subject, in characters (`[A-Za-z0-9._:@-]`).
pub const MAX_SUBJECT_LEN: usize = 128;
/// Longest resource pattern, in bytes.
pub const MAX_RESOURCE_LEN: usize = 256;
/// How far in the future `issued_at` may be, for clock drift between hosts.
pub const CLOCK_SKEW_SECS: u64 = 60;
const SIG_LEN: usize = 32;

/// One block of a token. Serialized as the block JSON:
/// `{"id","sub","res","perms","iat","exp","parent"}`, unknown fields refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// 32 lowercase hex digits (128 random bits); what revocation names.
    pub id: String,
    /// Who holds it: an agent or a service (`[A-Za-z0-9._:@-]{1,128}`).
    #[serde(rename = "sub")]
    pub subject: String,
    /// What it covers (see `resource_valid`).
    #[serde(rename = "res")]
    pub resource: String,
    pub perms: Perms,
    /// Unix seconds.
    #[serde(rename = "iat")]
    pub issued_at: u64,
    /// Unix seconds; 0 = never.
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// The previous block's id, `""` for the root.
    pub parent: String,
}

/// A decoded token: its blocks, root first, and the final signature.
/// Holds at least one block. `Debug` prints the claims, never the signature.
#[derive(Clone)]
pub struct Token {
    pub(super) chain: Vec<Claims>,
    /// Each block's exact bytes, as signed.
    pub(super) raw: Vec<Vec<u8>>,
    pub(super) sig: [u8; SIG_LEN],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("chain", &self.chain).field("sig", &"<secret>").finish()
    }
}

/// What a child block asks for; `None` = the same as the parent.
#[derive(Debug, Clone, Default)]
pub struct Restriction {
    pub subject: Option<String>,
    pub resource: Option<String>,
    pub perms: Option<Perms>,
    pub expires_at: Option<u64>,
}

fn malformed(msg: impl Into<String>) -> Denied {
    Denied::Malformed(msg.into())
}

impl Token {
    /// Decodes without verifying (for `solo token inspect`); checks syntax,
    /// limits and each block's fields, not the signature or the chain.
    pub fn parse(text: &str) -> Result<Token, Denied> {
        let (raw, sig) = split(text)?;
        Token::from_raw(raw, sig)
    }

    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        out.push_str(TOKEN_PREFIX);
        for raw in &self.raw {
            B64.encode_string(raw, &mut out);
            out.push('.');
        }
        B64.encode_string(self.sig, &mut out);
        out
    }

    /// The last (effective) block.
    pub fn claims(&self) -> &Claims {
        // A Token always holds at least one block (`from_raw`, `issue`).
        &self.chain[self.chain.len() - 1]
    }

    /// Every block, root first.
    pub fn chain(&self) -> &[Claims] {
        &self.chain
    }

    /// The last block's id.
    pub fn id(&self) -> &str {
        &self.claims().id
    }

    pub(super) fn encoded_len(&self) -> usize {
        let b64 = |n: usize| (n * 4).div_ceil(3);
        TOKEN_PREFIX.len() + self.raw.iter().map(|r| b64(r.len()) + 1).sum::<usize>() + b64(SIG_LEN)
    }

    fn from_raw(raw: Vec<Vec<u8>>, sig: [u8; SIG_LEN]) -> Result<Token, Denied> {
        let chain = raw.iter().enumerate().map(|(i, bytes)| decode_block(i, bytes)).collect::<Result<Vec<_>, _>>()?;
        Ok(Token { chain, raw, sig })
    }
}

/// Splits token text into block bytes and the signature: syntax and size
/// limits only. Never quotes the text in an error.
fn split(text: &str) -> Result<(Vec<Vec<u8>>, [u8; SIG_LEN]), Denied> {
    if text.is_empty() {
        return Err(malformed("the token is empty"));
    }
    if text.len() > MAX_TOKEN_LEN {
        return Err(malformed(format!("the token is {} bytes; at most {MAX_TOKEN_LEN} are allowed", text.len())));
    }
    let Some(body) = text.strip_prefix(TOKEN_PREFIX) else {
        return Err(malformed(format!("the token does not start with '{TOKEN_PREFIX}'")));
    };
    let parts: Vec<&str> = body.split('.').collect();
    let Some((sig_text, blocks)) = parts.split_last() else { return Err(malformed("the token has no signature")) };
    if blocks.is_empty() {
        return Err(malformed("the token has no claim block"));
    }
    if blocks.len() > MAX_DEPTH {
        return Err(malformed(format!("the token has {} blocks; at most {MAX_DEPTH} are allowed", blocks.len())));
    }
    let sig = B64
        .decode(sig_text)
        .ok()
        .and_then(|s| <[u8; SIG_LEN]>::try_from(s).ok())
        .ok_or_else(|| malformed(format!("the signature is not {SIG_LEN} bytes of unpadded base64url")))?;
    let raw = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| B64.decode(b).map_err(|_| malformed(format!("block {i} is not unpadded base64url"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((raw, sig))
}

/// Parses and checks one block's JSON. Errors say which block and field,
/// never quote the content (it may be attacker-chosen and would end up in
/// logs).
fn decode_block(i: usize, bytes: &[u8]) -> Result<Claims, Denied> {
    let c: Claims =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("block {i}: {}", describe_json_error(&e))))?;
    if !is_id(&c.id) {
        return Err(malformed(format!("block {i}: id must be 32 lowercase hex digits")));
    }
    subject_valid(&c.subject).map_err(|e| malformed(format!("block {i}: {e}")))?;
    resource_valid(&c.resource).map_err(|e| malformed(format!("block {i}: {e}")))?;
    match (i, c.parent.as_str()) {
        (0, "") => {}
        (0, _) => return Err(malformed("block 0 (the root) must have an empty parent")),
        (_, p) if !is_id(p) => return Err(malformed(format!("block {i}: parent must be 32 lowercase hex digits"))),
        _ => {}
    }
    Ok(c)
}

fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let head = msg.split(" at line ").next().unwrap_or_default();
    let what = if head.starts_with("missing field") || head.starts_with("duplicate field") {
        // The field name is one of ours.
        head.replace('`', "'")
    } else if head.starts_with("unknown field") {
        "has a field other than id, sub, res, perms, iat, exp, parent".to_owned()
    } else if head.starts_with("unknown permission") {
        let valid: Vec<&str> = Perm::ALL.iter().map(|p| p.name()).collect();
        format!("names an unknown permission (valid: {})", valid.join(", "))
    } else if e.is_data() {
        "a field has the wrong type or an out-of-range value".to_owned()
    } else {
        "is not valid JSON".to_owned()
    };
    format!("{what} (at byte column {})", e.column())
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a subject: 1 to 128 characters of `[A-Za-z0-9._:@-]`. The error
/// does not quote it.
pub fn subject_valid(s: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
    if s.is_empty() || s.len() > MAX_SUBJECT_LEN || !s.chars().all(ok) {
        return Err(format!("a subject is 1 to {MAX_SUBJECT_LEN} characters of A-Z a-z 0-9 . _ : @ -"));
    }
    Ok(())
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn hmac(key: &[u8], data: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (RFC 2104 §2); this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(data);
    m
}

fn sign(key: &[u8], data: &[u8]) -> [u8; SIG_LEN] {
    hmac(key, data).finalize().into_bytes().into()
}

fn encode_claims(c: &Claims) -> Result<Vec<u8>, Denied> {
    serde_json::to_vec(c).map_err(|e| malformed(format!("cannot encode claims: {e}")))
}

/// `child` ends later than `parent` (0 = never).
fn ends_later(child: u64, parent: u64) -> bool {
    parent != 0 && (child == 0 || child > parent)
}

/// How `c` widens its parent `p`, naming the field first; `None` if it is
/// within it. The one narrowing rule, used by [`attenuate`] and [`verify`].
fn widening(c: &Claims, p: &Claims) -> Option<String> {
    if !c.perms.is_subset(p.perms) {
        let extra: Vec<String> = c.perms.difference(p.perms).iter().map(|x| format!("'{}'", x.name())).collect();
        return Some(format!("perms (adds {}, which the parent lacks)", extra.join(", ")));
    }
    if !resource_narrows(&c.resource, &p.resource) {
        return Some(format!("resource ('{}' is not within the parent's '{}')", c.resource, p.resource));
    }
    if ends_later(c.expires_at, p.expires_at) {
        return Some(format!(
            "expires_at ({} is later than the parent's {})",
            format_utc(c.expires_at),
            format_utc(p.expires_at)
        ));
    }
    if c.issued_at < p.issued_at {
        return Some(format!("issued_at ({} is before the parent's {})", c.issued_at, p.issued_at));
    }
    None
}

/// Issues a root token (block 0) signed with `key`. Validates the subject,
/// the resource, that `perms` is not empty, and `expires_at` (0 = never, or
/// after `issued_at`).
pub fn issue(
    key: &Key,
    subject: &str,
    resource: &str,
    perms: Perms,
    issued_at: u64,
    expires_at: u64,
) -> Result<Token, Denied> {
    subject_valid(subject).map_err(malformed)?;
    resource_valid(resource).map_err(malformed)?;
    if perms.is_empty() {
        return Err(malformed("a token needs at least one permission"));
    }
    if expires_at != 0 && expires_at <= issued_at {
        return Err(malformed(format!("expires_at {expires_at} must be 0 (never) or after issued_at {issued_at}")));
    }
    let claims = Claims {
        id: new_id(),
        subject: subject.to_owned(),
        resource: resource.to_owned(),
        perms,
        issued_at,
        expires_at,
        parent: String::new(),
    };
    let raw = encode_claims(&claims)?;
    let sig = sign(&key.0, &raw);
    Ok(Token { chain: vec![claims], raw: vec![raw], sig })
}

/// Adds a child block (no key needed): `issued_at` is `now` (or the
/// parent's, if later), the rest comes from `r` or the parent. Refuses
/// anything wider than the parent with [`Denied::Widened`] naming the field
/// (its id is the refused child's), an expired parent, a chain already
/// [`MAX_DEPTH`] long, and a result over [`MAX_TOKEN_LEN`]. The verifier
/// re-checks all of it.
pub fn attenuate(parent: &Token, r: Restriction, now: u64) -> Result<Token, Denied> {
    let p = parent.claims();
    if parent.chain.len() >= MAX_DEPTH {
        return Err(malformed(format!("token {} already has {MAX_DEPTH} blocks, the most a chain may have", p.id)));
    }
    if p.expires_at != 0 && now >= p.expires_at {
        return Err(Denied::Expired { id: p.id.clone(), at: p.expires_at });
    }
    let child = Claims {
        id: new_id(),
        subject: r.subject.unwrap_or_else(|| p.subject.clone()),
        resource: r.resource.unwrap_or_else(|| p.resource.clone()),
        perms: r.perms.unwrap_or(p.perms),
        issued_at: now.max(p.issued_at),
        expires_at: r.expires_at.unwrap_or(p.expires_at),
        parent: p.id.clone(),
    };
    subject_valid(&child.subject).map_err(malformed)?;
    resource_valid(&child.resource).map_err(malformed)?;
    if let Some(what) = widening(&child, p) {
        return Err(Denied::Widened { id: child.id, what });
    }
    if child.perms.is_empty() {
        return Err(malformed("a token needs at least one permission"));
    }
    if child.expires_at != 0 && child.expires_at <= child.issued_at {
        return Err(malformed(format!(
            "expires_at {} must be 0 (never) or after issued_at {}",
            child.expires_at, child.issued_at
        )));
    }
    let raw = encode_claims(&child)?;
    let mut token = parent.clone();
    token.sig = sign(&parent.sig, &raw);
    token.chain.push(child);
    token.raw.push(raw);
    if token.encoded_len() > MAX_TOKEN_LEN {
        return Err(malformed(format!("the attenuated token would be longer than {MAX_TOKEN_LEN} bytes")));
    }
    Ok(token)
}

/// Full verification, trusting nothing the holder sent: syntax and limits;
/// the HMAC chain recomputed with `key` and the final MAC compared in
/// constant time (before any JSON is parsed); each block's fields; every
/// step links to and narrows its parent; ids distinct; not expired; not
/// issued more than [`CLOCK_SKEW_SECS`] ahead of `now`; then `revoked(id)`
/// is asked for every id in the chain (all of them, in order, root first).
pub fn verify(key: &Key, text: &str, now: u64, revoked: impl Fn(&str) -> bool) -> Result<Token, Denied> {
    let (raw, sig) = split(text)?;
    let (last, ancestors) = raw.split_last().ok_or_else(|| malformed("the token has no claim block"))?;
    let mut s = key.0;
    for block in ancestors {
        s = sign(&s, block);
    }
    // `verify_slice` compares in constant time (subtle::ConstantTimeEq).
    hmac(&s, last).verify_slice(&sig).map_err(|_| Denied::BadSignature)?;

    let token = Token::from_raw(raw, sig)?;
    let chain = &token.chain;
    for (i, pair) in chain.windows(2).enumerate() {
        let (p, c) = (&pair[0], &pair[1]);
        if c.parent != p.id {
            return Err(malformed(format!(
                "block {} names parent {} but follows block {i}, {}",
                i + 1,
                c.parent,
                p.id
            )));
        }
        if let Some(what) = widening(c, p) {
            return Err(Denied::Widened { id: c.id.clone(), what });
        }
    }
    for (i, c) in chain.iter().enumerate() {
        if chain[..i].iter().any(|a| a.id == c.id) {
            return Err(malformed(format!("id {} appears more than once in the chain", c.id)));
        }
    }
    // Expiry only shrinks and issued_at only grows along a verified chain,
    // so the last block bounds them all.
    let eff = token.claims();
    if eff.expires_at != 0 && now >= eff.expires_at {
        return Err(Denied::Expired { id: eff.id.clone(), at: eff.expires_at });
    }
    if eff.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(Denied::NotYetValid { id: eff.id.clone() });
    }
    let hits: Vec<bool> = chain.iter().map(|c| revoked(&c.id)).collect();
    if hits.last().copied().unwrap_or(false) {
        return Err(Denied::Revoked { id: eff.id.clone() });
    }
    if let Some((a, _)) = chain.iter().zip(&hits).find(|(_, hit)| **hit) {
        return Err(Denied::ParentRevoked { id: eff.id.clone(), parent: a.id.clone() });
    }
    Ok(token)
}

/// Does a verified token's effective claims allow `perm` on `target` (a
/// concrete resource such as `service:web` or `tcp:db.internal:5432`)?
pub fn authorize(claims: &Claims, perm: Perm, target: &str) -> Result<(), Denied> {
    if !claims.perms.contains(perm) {
        return Err(Denied::MissingPermission { perm });
    }
    if !resource_matches(&claims.resource, target) {
        return Err(Denied::OutOfScope { resource: claims.resource.clone(), target: target.to_owned() });
    }
    Ok(())
}
