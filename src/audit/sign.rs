//! Signed anchors of the chain: the head, signed periodically, and the
//! checkpoint retention leaves where it pruned. HMAC-SHA256 with a key
//! derived from the daemon's token key (never the token key itself, so an
//! anchor's MAC can never pass for a token signature or the reverse).

use super::Hash;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"solo-audit-anchor-v1\0";

/// What an anchor marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorKind {
    /// The newest record at the time of signing: every record up to it
    /// must still be there, with this hash.
    Head,
    /// Where retention pruned: the first record kept must follow it.
    Checkpoint,
}

impl AnchorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AnchorKind::Head => "head",
            AnchorKind::Checkpoint => "checkpoint",
        }
    }

    pub fn parse(s: &str) -> Option<AnchorKind> {
        match s {
            "head" => Some(AnchorKind::Head),
            "checkpoint" => Some(AnchorKind::Checkpoint),
            _ => None,
        }
    }
}

/// A signed statement "record `seq` has hash `hash`", made at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub kind: AnchorKind,
    pub seq: u64,
    pub hash: Hash,
    pub at_ms: i64,
    pub mac: Hash,
}

/// Signs and checks anchors.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<secret>)")
    }
}

impl Signer {
    /// `key` is the daemon's audit key (`auth::Key::derive`).
    pub fn new(key: [u8; 32]) -> Signer {
        Signer { key }
    }

    fn mac(&self, kind: AnchorKind, seq: u64, hash: &Hash, at_ms: i64) -> HmacSha256 {
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        m.update(DOMAIN);
        m.update(kind.as_str().as_bytes());
        m.update(&[0]);
        m.update(&seq.to_be_bytes());
        m.update(hash);
        m.update(&at_ms.to_be_bytes());
        m
    }

    pub fn sign(&self, kind: AnchorKind, seq: u64, hash: Hash, at_ms: i64) -> Anchor {
        let mac = self.mac(kind, seq, &hash, at_ms).finalize().into_bytes().into();
        Anchor { kind, seq, hash, at_ms, mac }
    }

    /// Constant-time check of the anchor's MAC.
    pub fn valid(&self, a: &Anchor) -> bool {
        self.mac(a.kind, a.seq, &a.hash, a.at_ms).verify_slice(&a.mac).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_change_or_other_key_fails() {
        let s = Signer::new([7; 32]);
        let a = s.sign(AnchorKind::Head, 10, [1; 32], 1000);
        assert!(s.valid(&a));
        for change in [
            |a: &mut Anchor| a.seq += 1,
            |a: &mut Anchor| a.hash[3] ^= 1,
            |a: &mut Anchor| a.at_ms += 1,
            |a: &mut Anchor| a.kind = AnchorKind::Checkpoint,
            |a: &mut Anchor| a.mac[0] ^= 1,
        ] {
            let mut b = a.clone();
            change(&mut b);
            assert!(!s.valid(&b));
        }
        assert!(!Signer::new([8; 32]).valid(&a));
    }
}
