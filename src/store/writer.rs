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

use super::{q, EventRow, StoreError};
use rusqlite::{params, Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the WAL is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most writes committed in one transaction.
const BATCH: usize = 512;

type Exec = Box<dyn FnOnce(&mut Connection) -> Result<(), StoreError> + Send>;

pub(super) enum Op {
    Event(u64, EventRow),
    /// A write of its own (desired state); the result goes back.
    Exec(Exec, tokio::sync::oneshot::Sender<Result<(), StoreError>>),
    Instance {
        service: String,
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
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel();
        let spawn_err = |cause: std::io::Error| StoreError::Open {
            path: path.to_owned(),
            cause: rusqlite::Error::ToSqlConversionFailure(Box::new(cause)),
        };
        let w = std::thread::Builder::new()
            .name("solo-store-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(spawn_err)?;
        let p: PathBuf = path.to_owned();
        let c = std::thread::Builder::new()
            .name("solo-store-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop_rx, p))
            .map_err(spawn_err)?;
        Ok(Writer { tx, stop_checkpoints: Some(stop_tx), threads: vec![w, c] })
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

fn write_loop(mut conn: Connection, rx: Receiver<Op>) {
    let mut batch: Vec<Op> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Exec(f, reply) => {
                    // Everything queued before it commits first.
                    flush_batch(&mut conn, &mut batch);
                    let _ = reply.send(f(&mut conn));
                }
                other => batch.push(other),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        flush_batch(&mut conn, &mut batch);
    }
}

fn flush_batch(conn: &mut Connection, batch: &mut Vec<Op>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = commit(conn, std::mem::take(batch)) {
        tracing::error!(error = %e, "cannot record events or instance state");
    }
}

fn commit(conn: &mut Connection, ops: Vec<Op>) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
    for op in ops {
        let r = match op {
            Op::Event(seq, e) => tx
                .prepare_cached(
                    "INSERT INTO events (seq, at_ms, service, replica, kind, pid, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut st| st.execute(params![seq as i64, e.at_ms, e.service, e.replica, e.kind, e.pid, e.message])),
            Op::Instance { service, replica, pid, state, restart_count, started_at_ms, last_exit } => tx
                .prepare_cached(
                    "INSERT INTO instances (service_id, replica, pid, state, restart_count, started_at_ms, last_exit)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM services WHERE id = ?1)
                     ON CONFLICT(service_id, replica) DO UPDATE SET pid = ?3, state = ?4, restart_count = ?5,
                       started_at_ms = ?6, last_exit = ?7",
                )
                .and_then(|mut st| st.execute(params![service, replica, pid, state, restart_count, started_at_ms, last_exit])),
            Op::Exec(..) => Ok(0),
        };
        // One bad row must not lose the rest of the batch.
        if let Err(e) = r {
            tracing::warn!(error = %e, "dropped one store write");
        }
    }
    tx.commit().map_err(q("commit"))
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
