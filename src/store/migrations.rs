//! Versioned schema migrations. Each entry runs once, in order, in its own
//! transaction; `PRAGMA user_version` records how far a database has come.

use super::StoreError;
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: desired services, immutable revisions, instances, events.
    "CREATE TABLE services (
        id TEXT PRIMARY KEY,
        desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
        revision INTEGER NOT NULL,
        uid INTEGER NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL
     );
     CREATE TABLE revisions (
        service_id TEXT NOT NULL REFERENCES services(id),
        revision INTEGER NOT NULL,
        spec_json TEXT NOT NULL,
        artifact_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (service_id, revision)
     );
     CREATE TABLE instances (
        service_id TEXT NOT NULL REFERENCES services(id),
        replica INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        state TEXT NOT NULL,
        restart_count INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        last_exit TEXT NOT NULL,
        PRIMARY KEY (service_id, replica)
     );
     CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        service TEXT NOT NULL,
        replica INTEGER NOT NULL,
        kind TEXT NOT NULL,
        pid INTEGER NOT NULL,
        message TEXT NOT NULL
     );
     CREATE INDEX events_by_service ON events(service, seq);",
    // 2: why a service failed (intensity limit), kept across restarts.
    "ALTER TABLE services ADD COLUMN failure TEXT NOT NULL DEFAULT '';",
    // 3: capabilities: tokens the supervisor issued, revoked token ids
    // (checked on every use), and each service's fd grants.
    "CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        parent TEXT NOT NULL,
        subject TEXT NOT NULL,
        resource TEXT NOT NULL,
        perms TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        issued_by TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
     );
     CREATE INDEX tokens_by_parent ON tokens(parent);
     CREATE TABLE revocations (
        id TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        by_token TEXT NOT NULL
     );
     CREATE TABLE grants (
        service_id TEXT NOT NULL,
        name TEXT NOT NULL,
        spec TEXT NOT NULL,
        token_id TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (service_id, name)
     );",
    // 4: updates. Each revision records when it became the one running
    // (0: never, e.g. an update that rolled back) and a note (why it
    // rolled back); `last_revision` keeps revision numbers increasing
    // after old revisions are pruned; `updates` holds each service's
    // update in progress, or its last one, written at every step;
    // instances are keyed by revision too (two revisions run side by side
    // during an update).
    "ALTER TABLE revisions ADD COLUMN activated_at_ms INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE revisions ADD COLUMN note TEXT NOT NULL DEFAULT '';
     UPDATE revisions SET activated_at_ms = created_at_ms
        WHERE revision = (SELECT s.revision FROM services s WHERE s.id = revisions.service_id);
     ALTER TABLE services ADD COLUMN last_revision INTEGER NOT NULL DEFAULT 0;
     UPDATE services SET last_revision = revision;
     CREATE TABLE instances_by_revision (
        service_id TEXT NOT NULL REFERENCES services(id),
        revision INTEGER NOT NULL,
        replica INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        state TEXT NOT NULL,
        restart_count INTEGER NOT NULL,
        started_at_ms INTEGER NOT NULL,
        last_exit TEXT NOT NULL,
        PRIMARY KEY (service_id, revision, replica)
     );
     INSERT INTO instances_by_revision
        SELECT i.service_id, s.revision, i.replica, i.pid, i.state, i.restart_count, i.started_at_ms, i.last_exit
        FROM instances i JOIN services s ON s.id = i.service_id;
     DROP TABLE instances;
     ALTER TABLE instances_by_revision RENAME TO instances;
     CREATE TABLE updates (
        service_id TEXT PRIMARY KEY,
        from_revision INTEGER NOT NULL,
        to_revision INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        phase TEXT NOT NULL,
        progress TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('', 'committed', 'rolled-back')),
        reason TEXT NOT NULL,
        started_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
     );",
    // 5: the audit log, a hash chain (docs/audit.md): records, and the
    // signed anchors (heads, pruning checkpoints). The triggers keep the
    // daemon itself from ever rewriting a record or deleting one that no
    // signed checkpoint covers; the chain, not the triggers, is what
    // makes tampering by anyone else evident.
    "CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        service TEXT NOT NULL,
        actor TEXT NOT NULL,
        message TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
     );
     CREATE INDEX audit_by_service ON audit(service, seq);
     CREATE INDEX audit_by_time ON audit(at_ms);
     CREATE TABLE audit_anchors (
        kind TEXT NOT NULL,
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        mac TEXT NOT NULL,
        PRIMARY KEY (kind, seq)
     );
     CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
     BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
     CREATE TRIGGER audit_prune_behind_checkpoint BEFORE DELETE ON audit
     WHEN OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_anchors WHERE kind = 'checkpoint')
     BEGIN SELECT RAISE(ABORT, 'audit records are deleted only behind a signed checkpoint'); END;",
];

pub fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|cause| StoreError::Migrate { version: 0, cause })?;
    let known = MIGRATIONS.len() as u32;
    if current > known {
        return Err(StoreError::TooNew { found: current, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let err = |cause| StoreError::Migrate { version, cause };
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", version).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_3_database_keeps_its_services_revisions_and_instances() {
        let mut c = Connection::open_in_memory().expect("open");
        for (i, sql) in MIGRATIONS[..3].iter().enumerate() {
            c.execute_batch(sql).expect("old migration");
            c.pragma_update(None, "user_version", i as u32 + 1).expect("version");
        }
        c.execute_batch(
            "INSERT INTO services (id, desired, revision, uid, created_at_ms) VALUES ('web', 'running', 1, 61184, 7);
             INSERT INTO revisions VALUES ('web', 1, '{}', '{}', 7);
             INSERT INTO instances VALUES ('web', 0, 42, 'running', 0, 8, '');",
        )
        .expect("old rows");
        run(&mut c).expect("migrate");
        let (last, activated): (i64, i64) = c
            .query_row(
                "SELECT s.last_revision, r.activated_at_ms FROM services s JOIN revisions r ON r.service_id = s.id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("service");
        assert_eq!((last, activated), (1, 7), "the running revision counts as activated when it was created");
        let (rev, pid): (i64, i64) =
            c.query_row("SELECT revision, pid FROM instances", [], |r| Ok((r.get(0)?, r.get(1)?))).expect("instance");
        assert_eq!((rev, pid), (1, 42));
        run(&mut c).expect("idempotent");
    }
}
