//! Off the async runtime: the one thread that writes — desired state when
//! asked (the caller waits for the commit), events and instance records in
//! batches — and a thread that checkpoints the WAL.
//!
//! One writer, because two writing connections contend for SQLite's write
//! lock, and a writer committing back to back starves the other's busy
//! handler ("database is locked"). In one thread, writes are also ordered:
//! an instance's last record always commits before its service is deleted.
//!
//! Why: with `synchronous=NORMAL` a WAL commit does not fsync, but a
//! checkpoint does (several ms, sometimes far more). Letting SQLite
//! auto-checkpoint inside a commit made that fsync land on a tokio worker
//! in the middle of a deploy or a restart. Here commits never checkpoint
//! (`wal_autocheckpoint=0`) and the checkpoint thread does it once a
//! second on its own connection (PASSIVE: it never blocks writers).

use super::audit::{self, Head};
use super::{q, EventRow, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the WAL is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most writes committed in one transaction.
const BATCH: usize = 512;
/// Events kept in the state database (the newest; older ones are deleted):
/// `Watch` replays and `solo events` read from here. A service restarting
/// every second for a year would otherwise grow the database without bound.
pub const EVENTS_KEPT: u64 = 100_000;
/// Events written between two prunings.
const PRUNE_EVERY: u64 = 1_000;

type Exec = Box<dyn FnOnce(&mut Connection) -> Result<(), StoreError> + Send>;

pub(super) enum Op {
    Event(u64, EventRow),
    /// An audit record, sealed into the chain when it is written.
    Audit(Box<crate::audit::Record>),
    /// A write of its own (desired state); the result goes back.
    Exec(Exec, tokio::sync::oneshot::Sender<Result<(), StoreError>>),
    Instance {
        service: String,
        revision: u64,
        replica: u32,
        pid: i32,
        state: String,
        restart_count: u32,
        started_at_ms: i64,
        last_exit: String,
    },
}

pub(super) struct Writer {
    pub tx: Sender<Op>,
    /// Sequence number of the newest committed audit record.
    pub audit_head: Arc<AtomicU64>,
    stop_checkpoints: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// Opens a connection configured like every other one.
pub(super) fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |cause| StoreError::Open { path: path.to_owned(), cause };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
    Ok(conn)
}

impl Writer {
    /// Starts the writer on `conn` (already migrated).
    pub fn start(path: &Path, conn: Connection) -> Result<Writer, StoreError> {
        let checkpoint_conn = connect(path)?;
        let head = audit::load_head(&conn)?;
        let audit_head = Arc::new(AtomicU64::new(head.seq));
        let published = audit_head.clone();
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel();
        let spawn_err = |cause: std::io::Error| StoreError::Open {
            path: path.to_owned(),
            cause: rusqlite::Error::ToSqlConversionFailure(Box::new(cause)),
        };
        let w = std::thread::Builder::new()
            .name("solo-store-writer".into())
            .spawn(move || write_loop(conn, rx, head, &published))
            .map_err(spawn_err)?;
        let p: PathBuf = path.to_owned();
        let c = std::thread::Builder::new()
            .name("solo-store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop_rx, p))
            .map_err(spawn_err)?;
        Ok(Writer { tx, audit_head, stop_checkpoints: Some(stop_tx), threads: vec![w, c] })
    }
}

impl Writer {
    /// Runs `f` on the writer's connection after every write queued before
    /// it, and waits for its result.
    /// The caller's task waits without holding a runtime thread.
    pub async fn exec(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Op::Exec(Box::new(f), tx)).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// [`Writer::exec`] for a write that answers with a value.
    pub async fn exec_value<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.exec(move |c| {
            let _ = tx.send(f(c)?);
            Ok(())
        })
        .await?;
        rx.await.map_err(|_| StoreError::WriterGone)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channels ends both threads after a last commit and
        // a last checkpoint.
        let (dead, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, dead));
        drop(self.stop_checkpoints.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the write loop carries between batches: the audit chain's head
/// (the next record links to it) and where it is published.
struct Chain<'a> {
    head: Head,
    published: &'a AtomicU64,
    /// Events committed since the last pruning.
    events_unpruned: u64,
}

fn write_loop(mut conn: Connection, rx: Receiver<Op>, head: Head, published: &AtomicU64) {
    let mut chain = Chain { head, published, events_unpruned: PRUNE_EVERY };
    let mut batch: Vec<Op> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Exec(f, reply) => {
                    // Everything queued before it commits first.
                    flush_batch(&mut conn, &mut batch, &mut chain);
                    let _ = reply.send(f(&mut conn));
                    // It may have pruned the chain: the head is re-read.
                    reload_head(&conn, &mut chain);
                }
                other => batch.push(other),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        flush_batch(&mut conn, &mut batch, &mut chain);
    }
}

fn reload_head(conn: &Connection, chain: &mut Chain<'_>) {
    match audit::load_head(conn) {
        Ok(h) => chain.head = h,
        Err(e) => tracing::error!(error = %e, "cannot read the audit head"),
    }
    chain.published.store(chain.head.seq, Ordering::Relaxed);
}

fn flush_batch(conn: &mut Connection, batch: &mut Vec<Op>, chain: &mut Chain<'_>) {
    if batch.is_empty() {
        return;
    }
    let mut head = chain.head;
    match commit(conn, std::mem::take(batch), &mut head) {
        Ok(events) => {
            chain.head = head;
            chain.published.store(head.seq, Ordering::Relaxed);
            chain.events_unpruned += events;
            if chain.events_unpruned >= PRUNE_EVERY {
                chain.events_unpruned = 0;
                if let Err(e) = prune_events(conn, EVENTS_KEPT) {
                    tracing::warn!(error = %e, "cannot prune old events");
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record events, audit records or instance state");
            // The batch's records are lost: the next one links to what is stored.
            reload_head(conn, chain);
        }
    }
}

/// Deletes all but the newest `keep` events.
fn prune_events(conn: &Connection, keep: u64) -> Result<usize, StoreError> {
    conn.prepare_cached("DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1")
        .and_then(|mut st| st.execute(params![keep as i64]))
        .map_err(q("prune events"))
}

/// Commits `ops` in one transaction; returns how many were events.
fn commit(conn: &mut Connection, ops: Vec<Op>, head: &mut Head) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
    let events = ops.iter().filter(|o| matches!(o, Op::Event(..))).count() as u64;
    for op in ops {
        let r = match op {
            Op::Audit(r) => audit::append(&tx, head, &r).map(|()| 1),
            Op::Event(seq, e) => tx
                .prepare_cached(
                    "INSERT INTO events (seq, at_ms, service, replica, kind, pid, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut st| st.execute(params![seq as i64, e.at_ms, e.service, e.replica, e.kind, e.pid, e.message])),
            Op::Instance { service, revision, replica, pid, state, restart_count, started_at_ms, last_exit } => tx
                .prepare_cached(
                    "INSERT INTO instances (service_id, revision, replica, pid, state, restart_count, started_at_ms, last_exit)
                     SELECT ?1, ?8, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM services WHERE id = ?1)
                     ON CONFLICT(service_id, revision, replica) DO UPDATE SET pid = ?3, state = ?4, restart_count = ?5,
                       started_at_ms = ?6, last_exit = ?7",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        service,
                        replica,
                        pid,
                        state,
                        restart_count,
                        started_at_ms,
                        last_exit,
                        revision as i64
                    ])
                }),
            Op::Exec(..) => Ok(0),
        };
        // One bad row must not lose the rest of the batch.
        if let Err(e) = r {
            tracing::warn!(error = %e, "dropped one store write");
        }
    }
    tx.commit().map_err(q("commit"))?;
    Ok(events)
}

fn checkpoint_loop(conn: Connection, stop: Receiver<()>, path: PathBuf) {
    loop {
        let last = matches!(stop.recv_timeout(CHECKPOINT_EVERY), Err(RecvTimeoutError::Disconnected) | Ok(()));
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(db = %path.display(), error = %e, "WAL checkpoint failed");
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_events() {
        let mut c = Connection::open_in_memory().expect("open");
        super::super::migrations::run(&mut c).expect("schema");
        for seq in 1..=50i64 {
            c.execute(
                "INSERT INTO events (seq, at_ms, service, replica, kind, pid, message) VALUES (?1, 0, 'a', 0, 'started', 1, '')",
                params![seq],
            )
            .expect("event");
        }
        assert_eq!(prune_events(&c, 10).expect("prune"), 40);
        let (n, lo, hi): (i64, i64, i64) = c
            .query_row("SELECT COUNT(*), MIN(seq), MAX(seq) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("count");
        assert_eq!((n, lo, hi), (10, 41, 50));
        assert_eq!(prune_events(&c, 10).expect("prune again"), 0, "nothing more to delete");
    }
}
