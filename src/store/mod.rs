//! Persistent state in SQLite (WAL): desired services, their revisions,
//! instances and the event log. Desired state is written here before the
//! supervisor acts on it, so a restarted daemon knows what should run.
//!
//! Invariant: every write is one transaction; a failed write changes nothing.

mod migrations;

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open state database {path}: {cause}")]
    Open { path: PathBuf, cause: rusqlite::Error },
    #[error("state database migration {version} failed: {cause}")]
    Migrate { version: u32, cause: rusqlite::Error },
    #[error("state database is from a newer solo (schema {found}, this binary knows {known})")]
    TooNew { found: u32, known: u32 },
    #[error("state database {op}: {cause}")]
    Query { op: &'static str, cause: rusqlite::Error },
    #[error("a service with id '{0}' already exists")]
    Exists(String),
}

fn q(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |cause| StoreError::Query { op, cause }
}

/// Whether the supervisor should keep a service running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        }
    }
}

/// A service row with its current revision.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub id: String,
    pub desired: Desired,
    pub revision: u64,
    pub uid: u32,
    pub created_at_ms: i64,
    /// The revision's stored spec and artifact reference (JSON).
    pub spec_json: String,
    pub artifact_json: String,
    /// Why the service failed; empty when it has not.
    pub failure: String,
}

/// One event as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub at_ms: i64,
    pub service: String,
    pub replica: u32,
    pub kind: String,
    pub pid: i32,
    pub message: String,
}

pub struct Store {
    conn: Mutex<Connection>,
    pub path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |cause| StoreError::Open { path: path.to_owned(), cause };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        migrations::run(&mut conn)?;
        Ok(Store { conn: Mutex::new(conn), path: path.to_owned() })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a new service and its revision 1 in one transaction.
    pub fn insert_service(&self, row: &ServiceRow) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction().map_err(q("begin"))?;
        let exists: Option<String> = tx
            .query_row("SELECT id FROM services WHERE id = ?1", [&row.id], |r| r.get(0))
            .optional()
            .map_err(q("look up service"))?;
        if exists.is_some() {
            return Err(StoreError::Exists(row.id.clone()));
        }
        tx.execute(
            "INSERT INTO services (id, desired, revision, uid, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.desired.as_str(), row.revision as i64, row.uid, row.created_at_ms],
        )
        .map_err(q("insert service"))?;
        tx.execute(
            "INSERT INTO revisions (service_id, revision, spec_json, artifact_json, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.revision as i64, row.spec_json, row.artifact_json, row.created_at_ms],
        )
        .map_err(q("insert revision"))?;
        tx.commit().map_err(q("commit"))
    }

    pub fn set_desired(&self, id: &str, desired: Desired) -> Result<(), StoreError> {
        self.conn()
            .execute("UPDATE services SET desired = ?2 WHERE id = ?1", params![id, desired.as_str()])
            .map_err(q("update desired state"))?;
        Ok(())
    }

    /// Records why a service failed (empty string clears it).
    pub fn set_failure(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("UPDATE services SET failure = ?2 WHERE id = ?1", params![id, reason])
            .map_err(q("record failure"))?;
        Ok(())
    }

    /// Deletes a service, its revisions and instances (events are kept).
    pub fn delete_service(&self, id: &str) -> Result<(), StoreError> {
        let mut c = self.conn();
        let tx = c.transaction().map_err(q("begin"))?;
        tx.execute("DELETE FROM instances WHERE service_id = ?1", [id]).map_err(q("delete instances"))?;
        tx.execute("DELETE FROM revisions WHERE service_id = ?1", [id]).map_err(q("delete revisions"))?;
        tx.execute("DELETE FROM services WHERE id = ?1", [id]).map_err(q("delete service"))?;
        tx.commit().map_err(q("commit"))
    }

    /// Every service with its current revision.
    pub fn services(&self) -> Result<Vec<ServiceRow>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT s.id, s.desired, s.revision, s.uid, s.created_at_ms, r.spec_json, r.artifact_json, s.failure
                 FROM services s JOIN revisions r ON r.service_id = s.id AND r.revision = s.revision
                 ORDER BY s.id",
            )
            .map_err(q("list services"))?;
        let rows = st
            .query_map([], |r| {
                let desired: String = r.get(1)?;
                Ok(ServiceRow {
                    id: r.get(0)?,
                    desired: if desired == "stopped" { Desired::Stopped } else { Desired::Running },
                    revision: r.get::<_, i64>(2)? as u64,
                    uid: r.get(3)?,
                    created_at_ms: r.get(4)?,
                    spec_json: r.get(5)?,
                    artifact_json: r.get(6)?,
                    failure: r.get(7)?,
                })
            })
            .map_err(q("list services"))?;
        rows.collect::<Result<_, _>>().map_err(q("list services"))
    }

    /// Uids assigned to existing services.
    pub fn used_uids(&self) -> Result<Vec<u32>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT uid FROM services").map_err(q("list uids"))?;
        let rows = st.query_map([], |r| r.get(0)).map_err(q("list uids"))?;
        rows.collect::<Result<_, _>>().map_err(q("list uids"))
    }

    /// Records an instance's latest state (upsert).
    #[allow(clippy::too_many_arguments)]
    pub fn record_instance(
        &self,
        service: &str,
        replica: u32,
        pid: i32,
        state: &str,
        restart_count: u32,
        started_at_ms: i64,
        last_exit: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO instances (service_id, replica, pid, state, restart_count, started_at_ms, last_exit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(service_id, replica) DO UPDATE SET pid = ?3, state = ?4, restart_count = ?5,
                   started_at_ms = ?6, last_exit = ?7",
                params![service, replica, pid, state, restart_count, started_at_ms, last_exit],
            )
            .map_err(q("record instance"))?;
        Ok(())
    }

    /// Appends an event; returns its sequence number.
    pub fn append_event(&self, e: &EventRow) -> Result<u64, StoreError> {
        let c = self.conn();
        c.execute(
            "INSERT INTO events (at_ms, service, replica, kind, pid, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.at_ms, e.service, e.replica, e.kind, e.pid, e.message],
        )
        .map_err(q("append event"))?;
        Ok(c.last_insert_rowid() as u64)
    }

    /// The newest `limit` events of a service (or all), oldest first.
    pub fn events(&self, service: Option<&str>, limit: u32) -> Result<Vec<(u64, EventRow)>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT seq, at_ms, service, replica, kind, pid, message FROM events
                 WHERE ?1 IS NULL OR service = ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(q("read events"))?;
        let rows = st
            .query_map(params![service, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    EventRow {
                        at_ms: r.get(1)?,
                        service: r.get(2)?,
                        replica: r.get(3)?,
                        kind: r.get(4)?,
                        pid: r.get(5)?,
                        message: r.get(6)?,
                    },
                ))
            })
            .map_err(q("read events"))?;
        let mut v: Vec<_> = rows.collect::<Result<_, _>>().map_err(q("read events"))?;
        v.reverse();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, uid: u32) -> ServiceRow {
        ServiceRow {
            id: id.into(),
            desired: Desired::Running,
            revision: 1,
            uid,
            created_at_ms: 1,
            spec_json: "{}".into(),
            artifact_json: "{}".into(),
            failure: String::new(),
        }
    }

    #[test]
    fn services_round_trip_and_conflict() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        s.insert_service(&row("a", 61184)).expect("insert");
        assert!(matches!(s.insert_service(&row("a", 61185)), Err(StoreError::Exists(_))));
        s.set_desired("a", Desired::Stopped).expect("desired");
        s.set_failure("a", "too many restarts").expect("failure");
        let all = s.services().expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].desired, Desired::Stopped);
        assert_eq!(all[0].failure, "too many restarts");
        assert_eq!(s.used_uids().expect("uids"), vec![61184]);
        s.delete_service("a").expect("delete");
        assert!(s.services().expect("list").is_empty());
    }

    #[test]
    fn reopen_keeps_state_and_migrations_are_idempotent() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("solo.db");
        {
            let s = Store::open(&p).expect("open");
            s.insert_service(&row("b", 61190)).expect("insert");
            s.append_event(&EventRow {
                at_ms: 5,
                service: "b".into(),
                replica: 0,
                kind: "started".into(),
                pid: 42,
                message: "m".into(),
            })
            .expect("event");
        }
        let s = Store::open(&p).expect("reopen");
        assert_eq!(s.services().expect("list")[0].id, "b");
        let ev = s.events(Some("b"), 10).expect("events");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1.pid, 42);
    }
}
