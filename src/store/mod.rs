//! Persistent state in SQLite (WAL): desired services, their revisions,
//! updates in progress, instances, the event log and the audit log's hash chain. Desired state is written here before the
//! supervisor acts on it, so a restarted daemon knows what should run.
//!
//! Invariant: every write is one transaction; a failed write changes nothing.

mod audit;
mod caps;
mod migrations;
mod updates;
mod writer;

pub use audit::{AuditQuery, AuditStats};
pub use caps::{GrantRow, TokenRow};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
pub use updates::{RevisionRow, UpdateOutcome, UpdateRow};

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
    #[error("the state database writer thread is gone")]
    WriterGone,
    #[error("service '{service}' is already being updated (to revision {to})")]
    UpdateInProgress { service: String, to: u64 },
    #[error("no service '{0}' in the state database")]
    NoService(String),
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
    /// For reads only: in WAL mode readers never wait for the writer.
    conn: Mutex<Connection>,
    /// The one connection that writes, on its own thread: desired state
    /// (awaited by the caller) and, in batches, events and instance records.
    writer: writer::Writer,
    next_seq: AtomicU64,
    pub path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut write_conn = writer::connect(path)?;
        migrations::run(&mut write_conn)?;
        let conn = writer::connect(path)?;
        let last: i64 = conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(q("read event sequence"))?;
        let writer = writer::Writer::start(path, write_conn)?;
        Ok(Store { conn: Mutex::new(conn), writer, next_seq: AtomicU64::new(last as u64 + 1), path: path.to_owned() })
    }

    /// The read connection.
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a new service, its revision 1 and its grants in one transaction.
    pub async fn insert_service(&self, row: &ServiceRow, grants: &[GrantRow]) -> Result<(), StoreError> {
        let row = row.clone();
        let grants = grants.to_vec();
        self.writer.exec(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
            let exists: Option<String> = tx
                .query_row("SELECT id FROM services WHERE id = ?1", [&row.id], |r| r.get(0))
                .optional()
                .map_err(q("look up service"))?;
            if exists.is_some() {
                return Err(StoreError::Exists(row.id.clone()));
            }
            tx.execute(
                "INSERT INTO services (id, desired, revision, uid, created_at_ms, last_revision) VALUES (?1, ?2, ?3, ?4, ?5, ?3)",
                params![row.id, row.desired.as_str(), row.revision as i64, row.uid, row.created_at_ms],
            )
            .map_err(q("insert service"))?;
            tx.execute(
                "INSERT INTO revisions (service_id, revision, spec_json, artifact_json, created_at_ms, activated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![row.id, row.revision as i64, row.spec_json, row.artifact_json, row.created_at_ms],
            )
            .map_err(q("insert revision"))?;
            caps::insert_grants(&tx, &grants)?;
            tx.commit().map_err(q("commit"))
        })
        .await
    }

    pub async fn set_desired(&self, id: &str, desired: Desired) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .exec(move |c| {
                c.execute("UPDATE services SET desired = ?2 WHERE id = ?1", params![id, desired.as_str()])
                    .map_err(q("update desired state"))
                    .map(|_| ())
            })
            .await
    }

    /// Records why a service failed (empty string clears it).
    pub async fn set_failure(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let (id, reason) = (id.to_owned(), reason.to_owned());
        self.writer
            .exec(move |c| {
                c.execute("UPDATE services SET failure = ?2 WHERE id = ?1", params![id, reason])
                    .map_err(q("record failure"))
                    .map(|_| ())
            })
            .await
    }

    /// Deletes a service, its revisions, instances and grants (events are kept).
    /// Writes queued before it (the instances' last records) commit first.
    pub async fn delete_service(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .exec(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                tx.execute("DELETE FROM instances WHERE service_id = ?1", [&id]).map_err(q("delete instances"))?;
                tx.execute("DELETE FROM revisions WHERE service_id = ?1", [&id]).map_err(q("delete revisions"))?;
                tx.execute("DELETE FROM grants WHERE service_id = ?1", [&id]).map_err(q("delete grants"))?;
                tx.execute("DELETE FROM updates WHERE service_id = ?1", [&id]).map_err(q("delete updates"))?;
                tx.execute("DELETE FROM services WHERE id = ?1", [&id]).map_err(q("delete service"))?;
                tx.commit().map_err(q("commit"))
            })
            .await
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

    /// Records an instance's latest state (upsert), asynchronously.
    #[allow(clippy::too_many_arguments)]
    pub fn record_instance(
        &self,
        service: &str,
        revision: u64,
        replica: u32,
        pid: i32,
        state: &str,
        restart_count: u32,
        started_at_ms: i64,
        last_exit: &str,
    ) {
        let _ = self.writer.tx.send(writer::Op::Instance {
            service: service.to_owned(),
            revision,
            replica,
            pid,
            state: state.to_owned(),
            restart_count,
            started_at_ms,
            last_exit: last_exit.to_owned(),
        });
    }

    /// Appends an event (asynchronously); returns its sequence number.
    pub fn append_event(&self, e: &EventRow) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let _ = self.writer.tx.send(writer::Op::Event(seq, e.clone()));
        seq
    }

    /// Waits until every event and instance record sent so far is committed.
    pub async fn flush(&self) {
        let _ = self.writer.exec(|_| Ok(())).await;
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

    #[tokio::test]
    async fn services_round_trip_and_conflict() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        s.insert_service(&row("a", 61184), &[]).await.expect("insert");
        assert!(matches!(s.insert_service(&row("a", 61185), &[]).await, Err(StoreError::Exists(_))));
        s.set_desired("a", Desired::Stopped).await.expect("desired");
        s.set_failure("a", "too many restarts").await.expect("failure");
        let all = s.services().expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].desired, Desired::Stopped);
        assert_eq!(all[0].failure, "too many restarts");
        s.delete_service("a").await.expect("delete");
        assert!(s.services().expect("list").is_empty());
    }

    #[tokio::test]
    async fn reopen_keeps_state_and_migrations_are_idempotent() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("solo.db");
        {
            let s = Store::open(&p).expect("open");
            s.insert_service(&row("b", 61190), &[]).await.expect("insert");
            let seq = s.append_event(&EventRow {
                at_ms: 5,
                service: "b".into(),
                replica: 0,
                kind: "started".into(),
                pid: 42,
                message: "m".into(),
            });
            assert_eq!(seq, 1);
        }
        let s = Store::open(&p).expect("reopen");
        assert_eq!(s.services().expect("list")[0].id, "b");
        let ev = s.events(Some("b"), 10).expect("events");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].1.pid, 42);
        // Sequence numbers continue after the stored ones.
        let next = s.append_event(&EventRow {
            at_ms: 6,
            service: "b".into(),
            replica: 0,
            kind: "exited".into(),
            pid: 42,
            message: String::new(),
        });
        assert_eq!(next, 2);
        s.flush().await;
        assert_eq!(s.events(Some("b"), 10).expect("events").len(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn desired_state_writes_survive_concurrent_event_traffic() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = std::sync::Arc::new(Store::open(&d.path().join("solo.db")).expect("open"));
        let noisy = s.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        // Heavy but finite traffic: bursts of events, as a crash storm makes.
        let t = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    noisy.append_event(&EventRow {
                        at_ms: 1,
                        service: "x".into(),
                        replica: 0,
                        kind: "started".into(),
                        pid: 1,
                        message: "m".repeat(200),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        for i in 0..100 {
            s.insert_service(&row(&format!("s{i}"), 61184 + i), &[]).await.expect("insert while the writer commits");
            s.set_desired(&format!("s{i}"), Desired::Stopped).await.expect("update while the writer commits");
        }
        stop.store(true, Ordering::Relaxed);
        t.join().expect("writer traffic");
        s.flush().await;
        assert_eq!(s.services().expect("list").len(), 100);
    }
}
