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
