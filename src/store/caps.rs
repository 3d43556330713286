//! Capability state: tokens the supervisor issued, revoked token ids, and
//! each service's fd grants. The revocation list is loaded into memory at
//! start and written through here, so a check never waits for SQLite.

use super::{q, Store, StoreError};
use rusqlite::{params, TransactionBehavior};

/// A token the supervisor issued (its claims; never the token text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub parent: String,
    pub subject: String,
    pub resource: String,
    /// Comma-separated permission names.
    pub perms: String,
    pub issued_at: u64,
    pub expires_at: u64,
    /// Id of the token that asked for it ("" for the operator token).
    pub issued_by: String,
    pub created_at_ms: i64,
}

/// One fd grant of a service, as deployed or granted later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub service_id: String,
    /// Its name in `LISTEN_FDNAMES`; unique per service.
    pub name: String,
    /// e.g. `listen:tcp:127.0.0.1:8080`.
    pub spec: String,
    /// The token that granted it.
    pub token_id: String,
    pub created_at_ms: i64,
}

const TOKEN_COLUMNS: &str = "id, parent, subject, resource, perms, issued_at, expires_at, issued_by, created_at_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        parent: r.get(1)?,
        subject: r.get(2)?,
        resource: r.get(3)?,
        perms: r.get(4)?,
        issued_at: r.get::<_, i64>(5)? as u64,
        expires_at: r.get::<_, i64>(6)? as u64,
        issued_by: r.get(7)?,
        created_at_ms: r.get(8)?,
    })
}

/// Writes grant rows inside the caller's transaction.
pub(super) fn insert_grants(tx: &rusqlite::Transaction<'_>, rows: &[GrantRow]) -> Result<(), StoreError> {
    for r in rows {
        tx.execute(
            "INSERT OR REPLACE INTO grants (service_id, name, spec, token_id, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![r.service_id, r.name, r.spec, r.token_id, r.created_at_ms],
        )
        .map_err(q("record grant"))?;
    }
    Ok(())
}

impl Store {
    pub async fn insert_token(&self, row: &TokenRow) -> Result<(), StoreError> {
        let r = row.clone();
        self.writer
            .exec(move |c| {
                c.execute(
                    "INSERT INTO tokens (id, parent, subject, resource, perms, issued_at, expires_at, issued_by, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        r.id,
                        r.parent,
                        r.subject,
                        r.resource,
                        r.perms,
                        r.issued_at as i64,
                        r.expires_at as i64,
                        r.issued_by,
                        r.created_at_ms
                    ],
                )
                .map_err(q("record token"))
                .map(|_| ())
            })
            .await
    }

    /// Revokes `id` and every issued token descending from it, in one
    /// transaction. Returns the ids newly revoked (already revoked ones are
    /// left out), `id` first.
    pub async fn revoke_tokens(&self, id: &str, by: &str, at_ms: i64) -> Result<Vec<String>, StoreError> {
        let (id, by) = (id.to_owned(), by.to_owned());
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let result = out.clone();
        self.writer
            .exec(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                let mut all: Vec<String> = vec![id.clone()];
                {
                    let mut st = tx
                        .prepare(
                            "WITH RECURSIVE d(id) AS (SELECT id FROM tokens WHERE parent = ?1
                               UNION SELECT t.id FROM tokens t JOIN d ON t.parent = d.id)
                             SELECT id FROM d",
                        )
                        .map_err(q("find child tokens"))?;
                    let rows = st.query_map([&id], |r| r.get::<_, String>(0)).map_err(q("find child tokens"))?;
                    for r in rows {
                        all.push(r.map_err(q("find child tokens"))?);
                    }
                }
                let mut fresh = Vec::new();
                for t in all {
                    let n = tx
                        .execute(
                            "INSERT OR IGNORE INTO revocations (id, at_ms, by_token) VALUES (?1, ?2, ?3)",
                            params![t, at_ms, by],
                        )
                        .map_err(q("revoke token"))?;
                    if n == 1 {
                        fresh.push(t);
                    }
                }
                tx.commit().map_err(q("commit"))?;
                *result.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                Ok(())
            })
            .await?;
        let fresh = std::mem::take(&mut *out.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(fresh)
    }

    /// Every revoked token id.
    pub fn revoked_ids(&self) -> Result<Vec<String>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT id FROM revocations").map_err(q("read revocations"))?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(q("read revocations"))?;
        rows.collect::<Result<_, _>>().map_err(q("read revocations"))
    }

    /// An issued token's record.
    pub fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        use rusqlite::OptionalExtension;
        let c = self.conn();
        c.query_row(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"), [id], token_row)
            .optional()
            .map_err(q("read token"))
    }

    /// Every token the supervisor issued that has not expired at `now`
    /// (revoked ones included: the caller checks the revocation list).
    pub fn unexpired_tokens(&self, now: u64) -> Result<Vec<TokenRow>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE expires_at = 0 OR expires_at > ?1 ORDER BY created_at_ms"
            ))
            .map_err(q("read tokens"))?;
        let rows = st.query_map([now as i64], token_row).map_err(q("read tokens"))?;
        rows.collect::<Result<_, _>>().map_err(q("read tokens"))
    }

    /// Adds or replaces a service's grants (one transaction).
    pub async fn put_grants(&self, rows: &[GrantRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.writer
            .exec(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                insert_grants(&tx, &rows)?;
                tx.commit().map_err(q("commit"))
            })
            .await
    }

    /// Deletes one grant (`name`), or all of a service's grants (`None`).
    /// Returns how many went.
    pub async fn delete_grants(&self, service: &str, name: Option<&str>) -> Result<usize, StoreError> {
        let (service, name) = (service.to_owned(), name.map(str::to_owned));
        let out = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let result = out.clone();
        self.writer
            .exec(move |c| {
                let n = match &name {
                    Some(n) => c.execute("DELETE FROM grants WHERE service_id = ?1 AND name = ?2", params![service, n]),
                    None => c.execute("DELETE FROM grants WHERE service_id = ?1", params![service]),
                }
                .map_err(q("delete grant"))?;
                result.store(n, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            })
            .await?;
        Ok(out.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Every grant, by service then name.
    pub fn grants(&self) -> Result<Vec<GrantRow>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare("SELECT service_id, name, spec, token_id, created_at_ms FROM grants ORDER BY service_id, name")
            .map_err(q("read grants"))?;
        let rows = st
            .query_map([], |r| {
                Ok(GrantRow {
                    service_id: r.get(0)?,
                    name: r.get(1)?,
                    spec: r.get(2)?,
                    token_id: r.get(3)?,
                    created_at_ms: r.get(4)?,
                })
            })
            .map_err(q("read grants"))?;
        rows.collect::<Result<_, _>>().map_err(q("read grants"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, parent: &str) -> TokenRow {
        TokenRow {
            id: id.into(),
            parent: parent.into(),
            subject: "agent".into(),
            resource: "*".into(),
            perms: "status".into(),
            issued_at: 1,
            expires_at: 0,
            issued_by: parent.into(),
            created_at_ms: 1,
        }
    }

    #[tokio::test]
    async fn revoking_a_token_revokes_its_issued_descendants_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        for (id, parent) in [("a", ""), ("b", "a"), ("c", "b"), ("d", "a"), ("x", "")] {
            s.insert_token(&token(id, parent)).await.expect("insert");
        }
        let mut got = s.revoke_tokens("b", "op", 5).await.expect("revoke");
        got.sort();
        assert_eq!(got, vec!["b", "c"]);
        let mut again = s.revoke_tokens("a", "op", 6).await.expect("revoke");
        again.sort();
        assert_eq!(again, vec!["a", "d"], "b and c were already revoked");
        // An id the store never issued (a holder's offline child) is still recorded.
        assert_eq!(s.revoke_tokens("zz", "op", 7).await.expect("revoke"), vec!["zz"]);
        let mut all = s.revoked_ids().expect("ids");
        all.sort();
        assert_eq!(all, vec!["a", "b", "c", "d", "zz"]);
        assert_eq!(s.token("c").expect("read").map(|t| t.parent), Some("b".to_owned()));
        assert_eq!(s.token("nope").expect("read"), None);
    }

    #[tokio::test]
    async fn grants_put_replace_and_delete() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        let g = |svc: &str, name: &str, spec: &str| GrantRow {
            service_id: svc.into(),
            name: name.into(),
            spec: spec.into(),
            token_id: "t".into(),
            created_at_ms: 1,
        };
        s.put_grants(&[g("web", "http", "listen:tcp:127.0.0.1:1"), g("web", "data", "dir:/srv:ro")])
            .await
            .expect("put");
        s.put_grants(&[g("web", "http", "listen:tcp:127.0.0.1:2")]).await.expect("replace");
        let all = s.grants().expect("read");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].spec, "listen:tcp:127.0.0.1:2");
        assert_eq!(s.delete_grants("web", Some("http")).await.expect("delete"), 1);
        assert_eq!(s.delete_grants("web", Some("http")).await.expect("delete"), 0);
        assert_eq!(s.delete_grants("web", None).await.expect("delete"), 1);
        assert!(s.grants().expect("read").is_empty());
    }
}
