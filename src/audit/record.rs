//! One audit record, as built by the supervisor ([`Record`]) and as stored
//! in the chain ([`Stored`]), and the chain's link function.

use super::Kind;
use sha2::{Digest, Sha256};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// The predecessor of the first record ever written.
pub const GENESIS: Hash = [0; 32];

/// Domain separation: a record hash is never valid as anything else.
const DOMAIN: &[u8] = b"solo-audit-record-v1\0";

/// A record before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unix milliseconds; 0 = "now" (the supervisor fills it in).
    pub at_ms: i64,
    pub kind: Kind,
    /// The service it is about; empty for the daemon as a whole.
    pub service: String,
    /// Who caused it: a token id, or `supervisor` for the daemon's own
    /// decisions (restarts, OOM kills, denials).
    pub actor: String,
    /// One human sentence.
    pub message: String,
    /// Structured facts (a JSON object): digests, limits, counts.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Record {
    /// The daemon's own actor name.
    pub const SUPERVISOR: &'static str = "supervisor";

    pub fn new(kind: Kind, service: &str) -> Record {
        Record {
            at_ms: 0,
            kind,
            service: service.to_owned(),
            actor: Record::SUPERVISOR.to_owned(),
            message: String::new(),
            detail: serde_json::Map::new(),
        }
    }

    /// Who caused it (a token id).
    pub fn by(mut self, actor: &str) -> Record {
        actor.clone_into(&mut self.actor);
        self
    }

    pub fn message(mut self, m: impl Into<String>) -> Record {
        self.message = m.into();
        self
    }

    /// Adds one fact to `detail`.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Record {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// A record as stored: sealed with its sequence number, its predecessor's
/// hash and its own. Fields are kept as stored text so verification hashes
/// exactly what is in the store (an unknown `kind` is a broken record, not
/// a parse error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub service: String,
    pub actor: String,
    pub message: String,
    /// `detail` as JSON text.
    pub detail: String,
    pub prev: Hash,
    pub hash: Hash,
}

impl Stored {
    /// Seals `r` as record `seq` after a record whose hash is `prev`.
    pub fn seal(seq: u64, prev: Hash, r: &Record) -> Stored {
        let detail = serde_json::Value::Object(r.detail.clone()).to_string();
        let mut s = Stored {
            seq,
            at_ms: r.at_ms,
            kind: r.kind.as_str().to_owned(),
            service: r.service.clone(),
            actor: r.actor.clone(),
            message: r.message.clone(),
            detail,
            prev,
            hash: GENESIS,
        };
        s.hash = s.computed_hash();
        s
    }

    /// The hash its fields and `prev` give (equal to `hash` unless altered).
    pub fn computed_hash(&self) -> Hash {
        link(&self.prev, self)
    }
}

/// `SHA-256(domain ‖ prev ‖ seq ‖ at_ms ‖ kind ‖ service ‖ actor ‖ message ‖ detail)`,
/// integers big-endian, strings each preceded by their length (u32
/// big-endian), so no two different records encode alike.
pub fn link(prev: &Hash, s: &Stored) -> Hash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(s.seq.to_be_bytes());
    h.update(s.at_ms.to_be_bytes());
    for field in [&s.kind, &s.service, &s.actor, &s.message, &s.detail] {
        h.update((field.len() as u32).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record::new(Kind::Deploy, "web").by("ab12").message("deployed").with("replicas", 2)
    }

    #[test]
    fn every_field_is_covered() {
        let base = Stored::seal(7, GENESIS, &Record { at_ms: 5, ..rec() });
        assert_eq!(base.hash, base.computed_hash());
        let variants: [fn(&mut Stored); 8] = [
            |s| s.seq += 1,
            |s| s.at_ms += 1,
            |s| s.kind = "kill".into(),
            |s| s.service = "web2".into(),
            |s| s.actor = "ab13".into(),
            |s| s.message.push('!'),
            |s| s.detail = r#"{"replicas":3}"#.into(),
            |s| s.prev[0] ^= 1,
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut s = base.clone();
            change(&mut s);
            assert_ne!(s.computed_hash(), base.hash, "variant {i} left the hash unchanged");
        }
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        // "ab" + "c" and "a" + "bc" must not hash alike.
        let a = Stored::seal(1, GENESIS, &Record { service: "ab".into(), actor: "c".into(), ..rec() });
        let b = Stored::seal(1, GENESIS, &Record { service: "a".into(), actor: "bc".into(), ..rec() });
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn detail_is_json_text() {
        let s = Stored::seal(1, GENESIS, &rec());
        assert_eq!(s.detail, r#"{"replicas":2}"#);
        assert_eq!(s.kind, "deploy");
    }
}
