//! The audit log in SQLite: the `audit` table (one row per record, sealed
//! into the hash chain by the writer thread, which alone appends), and
//! `audit_anchors` (signed heads and pruning checkpoints). The chain rules
//! are `crate::audit`'s; this file only stores and streams.
//!
//! Invariant: records are appended by the writer in sequence order, each
//! sealed onto the last committed one; the writer's idea of the head is
//! reloaded from the table whenever a commit fails, so a lost batch never
//! leaves a gap the next record would paper over.

use super::{q, Store, StoreError};
use crate::audit::{
    from_hex32, to_hex, Anchor, AnchorKind, Hash, Record, Retention, Signer, Stored, Verifier, GENESIS,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// The newest record the writer sealed: the next one links to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub seq: u64,
    pub hash: Hash,
}

/// Reads the chain's head: the last record, else the last checkpoint.
pub(super) fn load_head(c: &Connection) -> Result<Head, StoreError> {
    let last: Option<(i64, String)> = c
        .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(q("read the audit head"))?;
    let last = match last {
        Some(x) => Some(x),
        None => c
            .query_row(
                "SELECT seq, hash FROM audit_anchors WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(q("read the audit checkpoint"))?,
    };
    Ok(match last {
        Some((seq, hash)) => Head { seq: seq as u64, hash: from_hex32(&hash).unwrap_or(GENESIS) },
        None => Head { seq: 0, hash: GENESIS },
    })
}

/// Seals `r` onto `head` and inserts it in the writer's transaction;
/// advances `head` only when the row is in.
pub(super) fn append(tx: &rusqlite::Transaction<'_>, head: &mut Head, r: &Record) -> rusqlite::Result<()> {
    let s = Stored::seal(head.seq + 1, head.hash, r);
    tx.prepare_cached(
        "INSERT INTO audit (seq, at_ms, kind, service, actor, message, detail, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        s.seq as i64,
        s.at_ms,
        s.kind,
        s.service,
        s.actor,
        s.message,
        s.detail,
        to_hex(&s.prev),
        to_hex(&s.hash)
    ])?;
    *head = Head { seq: s.seq, hash: s.hash };
    Ok(())
}

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    let prev: String = r.get(7)?;
    let hash: String = r.get(8)?;
    // A hash column that is not 64 hex digits reads as all ones: it can
    // never match, so verification reports the record as altered.
    Ok(Stored {
        seq: r.get::<_, i64>(0)? as u64,
        at_ms: r.get(1)?,
        kind: r.get(2)?,
        service: r.get(3)?,
        actor: r.get(4)?,
        message: r.get(5)?,
        detail: r.get(6)?,
        prev: from_hex32(&prev).unwrap_or([0xff; 32]),
        hash: from_hex32(&hash).unwrap_or([0xff; 32]),
    })
}

const COLUMNS: &str = "seq, at_ms, kind, service, actor, message, detail, prev, hash";

fn anchors(c: &Connection) -> Result<Vec<Anchor>, StoreError> {
    let mut st = c
        .prepare("SELECT kind, seq, hash, at_ms, mac FROM audit_anchors ORDER BY seq")
        .map_err(q("read audit anchors"))?;
    let rows = st
        .query_map([], |r| {
            let kind: String = r.get(0)?;
            let hash: String = r.get(2)?;
            let mac: String = r.get(4)?;
            Ok(Anchor {
                // An unknown kind or bad hex can only come from tampering:
                // kept as a head with a MAC that cannot verify.
                kind: AnchorKind::parse(&kind).unwrap_or(AnchorKind::Head),
                seq: r.get::<_, i64>(1)? as u64,
                hash: from_hex32(&hash).unwrap_or([0xff; 32]),
                at_ms: r.get(3)?,
                mac: from_hex32(&mac).unwrap_or([0; 32]),
            })
        })
        .map_err(q("read audit anchors"))?;
    rows.collect::<Result<_, _>>().map_err(q("read audit anchors"))
}

fn insert_anchor(c: &Connection, a: &Anchor) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR REPLACE INTO audit_anchors (kind, seq, hash, at_ms, mac) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![a.kind.as_str(), a.seq as i64, to_hex(&a.hash), a.at_ms, to_hex(&a.mac)],
    )
    .map_err(q("write an audit anchor"))
    .map(|_| ())
}

/// Which records a query returns.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub service: Option<String>,
    pub since_ms: Option<i64>,
    /// Kind names (empty: every kind).
    pub kinds: Vec<String>,
    /// Only records after this sequence number (paging).
    pub after_seq: u64,
    pub limit: u32,
}

/// Counts and bounds of what is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    pub records: u64,
    pub first_seq: u64,
    pub head_seq: u64,
    pub checkpoint_seq: u64,
    pub last_signed_seq: u64,
    pub last_signed_at_ms: i64,
}

impl Store {
    /// Appends an audit record (asynchronously, in order, sealed into the
    /// chain by the writer). Call it through `Supervisor::audit`.
    pub fn append_audit(&self, r: Record) {
        let _ = self.writer.tx.send(super::writer::Op::Audit(Box::new(r)));
    }

    /// Sequence number of the newest committed audit record.
    pub fn audit_head_seq(&self) -> u64 {
        self.writer.audit_head.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Signs the current head (after every record sent so far) unless it
    /// is signed already; returns the new anchor.
    pub async fn audit_sign_head(&self, signer: Signer, at_ms: i64) -> Result<Option<Anchor>, StoreError> {
        self.writer
            .exec_value(move |c| {
                let head = load_head(c)?;
                if head.seq == 0 {
                    return Ok(None);
                }
                let signed: Option<i64> = c
                    .query_row("SELECT MAX(seq) FROM audit_anchors WHERE kind = 'head'", [], |r| r.get(0))
                    .map_err(q("read the signed head"))?;
                if signed == Some(head.seq as i64) {
                    return Ok(None);
                }
                let a = signer.sign(AnchorKind::Head, head.seq, head.hash, at_ms);
                insert_anchor(c, &a)?;
                Ok(Some(a))
            })
            .await
    }

    /// One retention round: signs a checkpoint at the cut and deletes the
    /// records up to it (and anchors before it) in one transaction.
    /// Returns (cut, records deleted).
    pub async fn audit_prune(
        &self,
        retention: Retention,
        now_ms: i64,
        signer: Signer,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        self.writer
            .exec_value(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                let head = load_head(&tx)?;
                let checkpoint: i64 = tx
                    .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_anchors WHERE kind = 'checkpoint'", [], |r| {
                        r.get(0)
                    })
                    .map_err(q("read the audit checkpoint"))?;
                let aged: Option<i64> = match retention.max_age_ms {
                    Some(age) => tx
                        .query_row("SELECT MAX(seq) FROM audit WHERE at_ms < ?1", [now_ms - age], |r| r.get(0))
                        .map_err(q("find aged audit records"))?,
                    None => None,
                };
                let Some(cut) = retention.cut(checkpoint as u64, head.seq, aged.map(|s| s as u64)) else {
                    return Ok(None);
                };
                let hash: Option<String> = tx
                    .query_row("SELECT hash FROM audit WHERE seq = ?1", [cut as i64], |r| r.get(0))
                    .optional()
                    .map_err(q("read the audit cut"))?;
                // A record missing at the cut is a broken chain: never
                // sign over it (verify must keep reporting it).
                let Some(hash) = hash.as_deref().and_then(from_hex32) else { return Ok(None) };
                insert_anchor(&tx, &signer.sign(AnchorKind::Checkpoint, cut, hash, now_ms))?;
                let n =
                    tx.execute("DELETE FROM audit WHERE seq <= ?1", [cut as i64]).map_err(q("prune audit records"))?;
                tx.execute("DELETE FROM audit_anchors WHERE seq < ?1", [cut as i64])
                    .map_err(q("prune audit anchors"))?;
                tx.commit().map_err(q("commit"))?;
                Ok(Some((cut, n as u64)))
            })
            .await
    }

    /// Records matching `query` that `keep(service)` allows, oldest first:
    /// the newest `limit` of them, or with `since_ms`/`after_seq` the first.
    pub fn audit_query(&self, query: &AuditQuery, keep: impl Fn(&str) -> bool) -> Result<Vec<Stored>, StoreError> {
        let newest = query.since_ms.is_none() && query.after_seq == 0;
        let mut sql = format!("SELECT {COLUMNS} FROM audit WHERE seq > ?1");
        let mut args: Vec<rusqlite::types::Value> = vec![(query.after_seq as i64).into()];
        if let Some(s) = &query.service {
            args.push(s.clone().into());
            sql.push_str(&format!(" AND service = ?{}", args.len()));
        }
        if let Some(t) = query.since_ms {
            args.push(t.into());
            sql.push_str(&format!(" AND at_ms >= ?{}", args.len()));
        }
        if !query.kinds.is_empty() {
            let marks: Vec<String> = query
                .kinds
                .iter()
                .map(|k| {
                    args.push(k.clone().into());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND kind IN ({})", marks.join(", ")));
        }
        sql.push_str(if newest { " ORDER BY seq DESC" } else { " ORDER BY seq ASC" });
        let c = self.conn();
        let mut st = c.prepare(&sql).map_err(q("read audit records"))?;
        let mut rows = st.query(rusqlite::params_from_iter(args)).map_err(q("read audit records"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(q("read audit records"))? {
            let s = stored(row).map_err(q("read audit records"))?;
            if keep(&s.service) {
                out.push(s);
                if out.len() >= query.limit as usize {
                    break;
                }
            }
        }
        if newest {
            out.reverse();
        }
        Ok(out)
    }

    /// Walks the whole chain on a connection of its own (a long walk never
    /// holds up `Status`), checking anchors with `signer`.
    pub fn audit_verify(&self, signer: &Signer) -> Result<crate::audit::Report, StoreError> {
        let c = super::writer::connect(&self.path)?;
        // One read transaction: a consistent snapshot while the writer goes on.
        let tx = c.unchecked_transaction().map_err(q("begin"))?;
        let mut v = Verifier::new(signer, &anchors(&tx)?);
        {
            let mut st = tx
                .prepare(&format!("SELECT {COLUMNS} FROM audit WHERE seq >= ?1 ORDER BY seq"))
                .map_err(q("read audit records"))?;
            let mut rows = st.query([v.start_seq() as i64]).map_err(q("read audit records"))?;
            while let Some(row) = rows.next().map_err(q("read audit records"))? {
                if !v.push(&stored(row).map_err(q("read audit records"))?) {
                    break;
                }
            }
        }
        Ok(v.finish())
    }

    /// Counts and bounds, for metrics and `solo audit verify`.
    pub fn audit_stats(&self) -> Result<AuditStats, StoreError> {
        let c = self.conn();
        let (records, first, head): (i64, i64, i64) = c
            .query_row("SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM audit", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(q("count audit records"))?;
        let checkpoint: i64 = c
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_anchors WHERE kind = 'checkpoint'", [], |r| r.get(0))
            .map_err(q("read the audit checkpoint"))?;
        let signed: Option<(i64, i64)> = c
            .query_row("SELECT seq, at_ms FROM audit_anchors WHERE kind = 'head' ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(q("read the signed head"))?;
        Ok(AuditStats {
            records: records as u64,
            first_seq: first as u64,
            head_seq: head.max(checkpoint) as u64,
            checkpoint_seq: checkpoint as u64,
            last_signed_seq: signed.map_or(0, |s| s.0 as u64),
            last_signed_at_ms: signed.map_or(0, |s| s.1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Kind;

    fn open() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        (d, s)
    }

    fn rec(n: u64) -> Record {
        Record { at_ms: n as i64 * 1000, ..Record::new(Kind::Start, if n.is_multiple_of(2) { "even" } else { "odd" }) }
            .message(format!("record {n}"))
    }

    fn signer() -> Signer {
        Signer::new([3; 32])
    }

    #[tokio::test]
    async fn appends_chain_and_survive_reopen() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("solo.db");
        {
            let s = Store::open(&p).expect("open");
            for n in 1..=5 {
                s.append_audit(rec(n));
            }
            s.flush().await;
            assert_eq!(s.audit_head_seq(), 5);
            assert!(s.audit_sign_head(signer(), 10).await.expect("sign").is_some());
            // Nothing new: no second anchor for the same head.
            assert!(s.audit_sign_head(signer(), 11).await.expect("sign").is_none());
        }
        let s = Store::open(&p).expect("reopen");
        for n in 6..=8 {
            s.append_audit(rec(n));
        }
        s.flush().await;
        let r = s.audit_verify(&signer()).expect("verify");
        assert!(r.ok(), "{:?}", r.broken);
        assert_eq!((r.checked, r.last_seq, r.heads_checked), (8, 8, 1));
        let stats = s.audit_stats().expect("stats");
        assert_eq!((stats.records, stats.head_seq, stats.last_signed_seq), (8, 8, 5));
    }

    #[tokio::test]
    async fn queries_filter_and_page() {
        let (_d, s) = open();
        for n in 1..=10 {
            s.append_audit(rec(n));
        }
        s.append_audit(Record::new(Kind::Deploy, "odd").message("deploy"));
        s.flush().await;
        let all = |q: AuditQuery| s.audit_query(&q, |_| true).expect("query");
        // The newest `limit`, oldest first.
        let last3 = all(AuditQuery { limit: 3, ..Default::default() });
        assert_eq!(last3.iter().map(|r| r.seq).collect::<Vec<_>>(), [9, 10, 11]);
        let odd = all(AuditQuery { service: Some("odd".into()), limit: 100, ..Default::default() });
        assert_eq!(odd.len(), 6);
        let deploys = all(AuditQuery { kinds: vec!["deploy".into()], limit: 100, ..Default::default() });
        assert_eq!(deploys.iter().map(|r| r.seq).collect::<Vec<_>>(), [11]);
        let since = all(AuditQuery { since_ms: Some(8000), limit: 2, ..Default::default() });
        assert_eq!(since.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 9]);
        let page = all(AuditQuery { after_seq: 9, limit: 100, ..Default::default() });
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [10, 11]);
        let scoped = s.audit_query(&AuditQuery { limit: 100, ..Default::default() }, |svc| svc == "even").expect("q");
        assert_eq!(scoped.len(), 5);
    }

    #[tokio::test]
    async fn pruning_leaves_a_checkpoint_that_verifies() {
        let (_d, s) = open();
        for n in 1..=30 {
            s.append_audit(rec(n));
        }
        s.flush().await;
        s.audit_sign_head(signer(), 1).await.expect("sign");
        let keep20 = Retention { max_age_ms: None, max_records: Some(20), batch: 4 };
        let mut rounds = 0;
        while let Some((cut, n)) = s.audit_prune(keep20, 100_000, signer()).await.expect("prune") {
            assert!(n <= 4);
            rounds += 1;
            assert!(cut <= 10);
        }
        assert_eq!(rounds, 3, "10 records in batches of 4");
        let stats = s.audit_stats().expect("stats");
        assert_eq!((stats.records, stats.first_seq, stats.checkpoint_seq), (20, 11, 10));
        let r = s.audit_verify(&signer()).expect("verify");
        assert!(r.ok(), "{:?}", r.broken);
        assert_eq!((r.checkpoint_seq, r.first_seq, r.checked, r.heads_checked), (10, 11, 20, 1));
        // The chain goes on after pruning.
        s.append_audit(rec(31));
        s.flush().await;
        assert!(s.audit_verify(&signer()).expect("verify").ok());
        // By age: records older than 25 s.
        let by_age = Retention { max_age_ms: Some(5_000), max_records: None, batch: 100 };
        assert_eq!(s.audit_prune(by_age, 30_000, signer()).await.expect("prune"), Some((24, 14)));
        assert!(s.audit_verify(&signer()).expect("verify").ok());
    }

    #[tokio::test]
    async fn the_table_refuses_updates_and_unanchored_deletes() {
        let (_d, s) = open();
        for n in 1..=3 {
            s.append_audit(rec(n));
        }
        s.flush().await;
        let c = super::super::writer::connect(&s.path).expect("connect");
        let e = c.execute("UPDATE audit SET message = 'x' WHERE seq = 2", []).expect_err("update refused");
        assert!(e.to_string().contains("append-only"), "{e}");
        let e = c.execute("DELETE FROM audit WHERE seq = 2", []).expect_err("delete refused");
        assert!(e.to_string().contains("signed checkpoint"), "{e}");
    }
}
