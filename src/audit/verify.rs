//! Verification of a stored chain: records are fed in sequence order (the
//! store streams them), anchors up front. The first problem in sequence
//! order is the verdict.

use super::{to_hex, Anchor, AnchorKind, Hash, Signer, Stored, GENESIS};
use std::collections::BTreeMap;

/// Why the chain does not verify, at the lowest sequence number affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Record `seq`'s fields no longer give its stored hash: it was edited
    /// in place (or moved to another sequence number).
    Altered { seq: u64 },
    /// Record `seq` is gone: the chain goes on at `found` (0: it ends).
    Missing { seq: u64, found: u64 },
    /// Record `seq + 1` does not link to record `seq` (its `prev` is not
    /// record `seq`'s hash): record `seq` was altered and its hash
    /// recomputed, or record `seq + 1` was replaced.
    Unlinked { seq: u64 },
    /// Every record links, but the head signed at `signed_at_ms` for
    /// record `to` names another hash: records `seq..=to` were rewritten
    /// and re-hashed after it was signed.
    Rewritten { seq: u64, to: u64, signed_at_ms: i64 },
    /// A head was signed for record `signed_seq`, but the chain ends
    /// before it: records from `seq` on were removed.
    Truncated { seq: u64, signed_seq: u64 },
    /// An anchor's signature does not verify (forged, or altered).
    ForgedAnchor { kind: AnchorKind, seq: u64 },
}

impl Broken {
    /// The first sequence number that can no longer be trusted.
    pub fn seq(&self) -> u64 {
        match self {
            Broken::Altered { seq }
            | Broken::Missing { seq, .. }
            | Broken::Unlinked { seq }
            | Broken::Rewritten { seq, .. }
            | Broken::Truncated { seq, .. }
            | Broken::ForgedAnchor { seq, .. } => *seq,
        }
    }

    /// A short name for scripts: altered, missing, unlinked, rewritten,
    /// truncated, forged-anchor.
    pub fn kind(&self) -> &'static str {
        match self {
            Broken::Altered { .. } => "altered",
            Broken::Missing { .. } => "missing",
            Broken::Unlinked { .. } => "unlinked",
            Broken::Rewritten { .. } => "rewritten",
            Broken::Truncated { .. } => "truncated",
            Broken::ForgedAnchor { .. } => "forged-anchor",
        }
    }
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Altered { seq } => {
                write!(f, "record {seq} was altered: its fields no longer give its stored hash")
            }
            Broken::Missing { seq, found: 0 } => write!(f, "record {seq} is missing: the chain ends before it"),
            Broken::Missing { seq, found } if *found == seq + 1 => {
                write!(f, "record {seq} is missing: the chain jumps to record {found}")
            }
            Broken::Missing { seq, found } => write!(
                f,
                "records {seq} to {} are missing (no signed checkpoint covers them): the chain jumps to record {found}",
                found - 1
            ),
            Broken::Unlinked { seq } => write!(
                f,
                "record {} does not link to record {seq}: record {seq} was altered and re-hashed, or record {} was replaced",
                seq + 1,
                seq + 1
            ),
            Broken::Rewritten { seq, to, signed_at_ms } => write!(
                f,
                "records {seq} to {to} were rewritten: the head signed at {signed_at_ms} (unix ms) names another hash for record {to}"
            ),
            Broken::Truncated { seq, signed_seq } => write!(
                f,
                "records from {seq} on were removed: a head was signed for record {signed_seq}, the chain ends at {}",
                seq - 1
            ),
            Broken::ForgedAnchor { kind, seq } => {
                write!(f, "the signed {} for record {seq} does not verify with this daemon's key", kind.as_str())
            }
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records checked (from the checkpoint on).
    pub checked: u64,
    /// The first and last sequence numbers checked (0 when none).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Hash of the last record checked (or of the checkpoint).
    pub head_hash: Hash,
    /// The checkpoint the chain starts from (0: it starts at genesis).
    pub checkpoint_seq: u64,
    /// Signed heads compared with their record.
    pub heads_checked: u64,
    /// The newest signed head: (seq, at_ms).
    pub last_signed: Option<(u64, i64)>,
    pub broken: Option<Broken>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }

    pub fn head_hex(&self) -> String {
        to_hex(&self.head_hash)
    }
}

/// Walks a chain. Feed every stored record in ascending `seq` with
/// [`Verifier::push`] (it says when to stop), then [`Verifier::finish`].
pub struct Verifier {
    expected: u64,
    prev: Hash,
    /// Valid heads after the checkpoint, by seq.
    heads: BTreeMap<u64, Anchor>,
    /// The last sequence number a head vouched for (or the checkpoint).
    vouched: u64,
    report: Report,
    /// The first forged anchor, if any (reported if nothing earlier broke).
    forged: Option<Broken>,
}

impl Verifier {
    pub fn new(signer: &Signer, anchors: &[Anchor]) -> Verifier {
        let mut forged: Option<Broken> = None;
        let mut valid = Vec::new();
        for a in anchors {
            if signer.valid(a) {
                valid.push(a.clone());
            } else if forged.as_ref().is_none_or(|f| a.seq < f.seq()) {
                forged = Some(Broken::ForgedAnchor { kind: a.kind, seq: a.seq });
            }
        }
        let checkpoint = valid.iter().filter(|a| a.kind == AnchorKind::Checkpoint).max_by_key(|a| a.seq);
        let (start, prev) = checkpoint.map_or((0, GENESIS), |c| (c.seq, c.hash));
        let heads: BTreeMap<u64, Anchor> =
            valid.iter().filter(|a| a.kind == AnchorKind::Head && a.seq > start).map(|a| (a.seq, a.clone())).collect();
        let last_signed =
            valid.iter().filter(|a| a.kind == AnchorKind::Head).max_by_key(|a| a.seq).map(|a| (a.seq, a.at_ms));
        Verifier {
            expected: start + 1,
            prev,
            heads,
            vouched: start,
            report: Report {
                checked: 0,
                first_seq: 0,
                last_seq: 0,
                head_hash: prev,
                checkpoint_seq: start,
                heads_checked: 0,
                last_signed,
                broken: None,
            },
            forged,
        }
    }

    /// Where the chain starts: records below this are covered by the
    /// checkpoint (a store may skip them).
    pub fn start_seq(&self) -> u64 {
        self.expected
    }

    /// Checks the next record; false once the chain is broken (stop feeding).
    pub fn push(&mut self, s: &Stored) -> bool {
        if self.report.broken.is_some() {
            return false;
        }
        if s.seq < self.expected {
            // Covered by the checkpoint (a prune that was interrupted).
            return true;
        }
        let broken = if s.seq > self.expected {
            Some(Broken::Missing { seq: self.expected, found: s.seq })
        } else if s.computed_hash() != s.hash {
            Some(Broken::Altered { seq: s.seq })
        } else if s.prev != self.prev {
            // The predecessor, unless it is the checkpoint (then this one).
            let seq = if s.seq > self.report.checkpoint_seq + 1 { s.seq - 1 } else { s.seq };
            Some(Broken::Unlinked { seq })
        } else {
            match self.heads.get(&s.seq) {
                Some(h) if h.hash != s.hash => {
                    Some(Broken::Rewritten { seq: self.vouched + 1, to: s.seq, signed_at_ms: h.at_ms })
                }
                Some(_) => {
                    self.report.heads_checked += 1;
                    self.vouched = s.seq;
                    None
                }
                None => None,
            }
        };
        if let Some(b) = broken {
            self.report.broken = Some(b);
            return false;
        }
        if self.report.checked == 0 {
            self.report.first_seq = s.seq;
        }
        self.report.checked += 1;
        self.report.last_seq = s.seq;
        self.report.head_hash = s.hash;
        self.prev = s.hash;
        self.expected += 1;
        true
    }

    pub fn finish(mut self) -> Report {
        if self.report.broken.is_none() {
            if let Some((&signed_seq, _)) = self.heads.range(self.expected..).next_back() {
                self.report.broken = Some(Broken::Truncated { seq: self.expected, signed_seq });
            }
        }
        // A forged anchor counts where it lies in sequence order.
        if let Some(f) = self.forged.take() {
            if self.report.broken.as_ref().is_none_or(|b| f.seq() < b.seq()) {
                self.report.broken = Some(f);
            }
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, Record};
    use super::*;

    fn chain(n: u64) -> Vec<Stored> {
        let mut out: Vec<Stored> = Vec::new();
        let mut prev = GENESIS;
        for seq in 1..=n {
            let r = Record::new(Kind::Start, "svc").message(format!("record {seq}")).with("n", seq);
            let s = Stored::seal(seq, prev, &Record { at_ms: seq as i64 * 10, ..r });
            prev = s.hash;
            out.push(s);
        }
        out
    }

    fn verify(signer: &Signer, anchors: &[Anchor], records: &[Stored]) -> Report {
        let mut v = Verifier::new(signer, anchors);
        for r in records {
            if !v.push(r) {
                break;
            }
        }
        v.finish()
    }

    fn signer() -> Signer {
        Signer::new([9; 32])
    }

    fn head(c: &[Stored], seq: u64) -> Anchor {
        signer().sign(AnchorKind::Head, seq, c[seq as usize - 1].hash, 1)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(10);
        let r = verify(&signer(), &[head(&c, 5), head(&c, 10)], &c);
        assert!(r.ok(), "{:?}", r.broken);
        assert_eq!((r.checked, r.first_seq, r.last_seq, r.heads_checked), (10, 1, 10, 2));
        assert_eq!(r.head_hash, c[9].hash);
        assert_eq!(r.last_signed, Some((10, 1)));
        let empty = verify(&signer(), &[], &[]);
        assert!(empty.ok() && empty.checked == 0);
    }

    #[test]
    fn an_edit_is_found_at_its_record() {
        let mut c = chain(10);
        c[3].message = "nothing happened".into();
        assert_eq!(verify(&signer(), &[], &c).broken, Some(Broken::Altered { seq: 4 }));
        // Re-hashed alone, it no longer links to what follows.
        c[3].hash = c[3].computed_hash();
        assert_eq!(verify(&signer(), &[], &c).broken, Some(Broken::Unlinked { seq: 4 }));
    }

    #[test]
    fn a_deletion_is_found_where_the_gap_starts() {
        let mut c = chain(10);
        c.remove(6);
        assert_eq!(verify(&signer(), &[], &c).broken, Some(Broken::Missing { seq: 7, found: 8 }));
        // The first records gone with no checkpoint.
        let c = chain(10);
        assert_eq!(verify(&signer(), &[], &c[3..]).broken, Some(Broken::Missing { seq: 1, found: 4 }));
    }

    #[test]
    fn a_reorder_is_found_at_the_first_moved_record() {
        let c = chain(10);
        // Swap the contents of 5 and 6, keeping the sequence numbers.
        let mut swapped = c.clone();
        swapped[4] = Stored { seq: 5, ..c[5].clone() };
        swapped[5] = Stored { seq: 6, ..c[4].clone() };
        assert_eq!(verify(&signer(), &[], &swapped).broken, Some(Broken::Altered { seq: 5 }));
    }

    #[test]
    fn a_rehashed_tail_is_caught_by_the_signed_head() {
        let c = chain(10);
        let anchors = [head(&c, 3), head(&c, 8)];
        // Rewrite record 5 and re-hash everything after it: every link holds.
        let mut forged = c[..4].to_vec();
        let mut prev = c[3].hash;
        for s in &c[4..] {
            let mut n = Stored { prev, ..s.clone() };
            if n.seq == 5 {
                n.message = "rewritten".into();
            }
            n.hash = n.computed_hash();
            prev = n.hash;
            forged.push(n);
        }
        assert_eq!(
            verify(&signer(), &anchors, &forged).broken,
            Some(Broken::Rewritten { seq: 4, to: 8, signed_at_ms: 1 })
        );
        // Without a head after the rewrite, nothing can tell.
        assert!(verify(&signer(), &anchors[..1], &forged).ok());
    }

    #[test]
    fn truncation_after_a_signed_head_is_caught() {
        let c = chain(10);
        let r = verify(&signer(), &[head(&c, 9)], &c[..6]);
        assert_eq!(r.broken, Some(Broken::Truncated { seq: 7, signed_seq: 9 }));
        assert_eq!(
            r.broken.map(|b| b.to_string()).unwrap_or_default(),
            "records from 7 on were removed: a head was signed for record 9, the chain ends at 6"
        );
    }

    #[test]
    fn a_checkpoint_lets_pruned_chains_verify() {
        let c = chain(10);
        let cp = signer().sign(AnchorKind::Checkpoint, 4, c[3].hash, 2);
        let r = verify(&signer(), &[cp.clone(), head(&c, 10)], &c[4..]);
        assert!(r.ok(), "{:?}", r.broken);
        assert_eq!((r.checkpoint_seq, r.first_seq, r.checked), (4, 5, 6));
        // Records the checkpoint covers, still present, are skipped.
        assert!(verify(&signer(), std::slice::from_ref(&cp), &c).ok());
        // A gap right after the checkpoint is still a gap.
        assert_eq!(
            verify(&signer(), std::slice::from_ref(&cp), &c[5..]).broken,
            Some(Broken::Missing { seq: 5, found: 6 })
        );
        // A first record not linking to the checkpoint is reported at itself.
        let mut bad = c[4..].to_vec();
        bad[0].prev = [1; 32];
        bad[0].hash = bad[0].computed_hash();
        assert_eq!(verify(&signer(), std::slice::from_ref(&cp), &bad).broken, Some(Broken::Unlinked { seq: 5 }));
    }

    #[test]
    fn a_forged_anchor_is_reported() {
        let c = chain(10);
        let other = Signer::new([1; 32]);
        let fake = other.sign(AnchorKind::Checkpoint, 6, c[5].hash, 3);
        let r = verify(&signer(), &[fake], &c[6..]);
        // The forged checkpoint is ignored: records 1..6 are missing (seq 1
        // comes first).
        assert_eq!(r.broken, Some(Broken::Missing { seq: 1, found: 7 }));
        let r = verify(&signer(), &[other.sign(AnchorKind::Head, 3, c[2].hash, 3)], &c);
        assert_eq!(r.broken, Some(Broken::ForgedAnchor { kind: AnchorKind::Head, seq: 3 }));
    }
}
