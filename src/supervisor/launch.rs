//! The daemon's side of the launcher: starts `solo __launcher`, sends it
//! launch plans, and routes its replies — spawn results to the task that
//! asked, exits to the instance that owns the pid.
//!
//! The daemon is a child subreaper too: if the launcher dies, its children
//! are reparented here and [`Launcher::reap_orphans`] routes their exits
//! the same way, so no exit is lost.

use crate::launcher::protocol::{Reply, Request, MAX_MESSAGE};
use crate::sandbox::plan::{Enforcement, LaunchPlan};
use crate::sandbox::sys::{self, WaitStatus};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{message}")]
    Step { step: String, errno: i32, message: String },
    #[error("the launcher process is not running: {0}")]
    Gone(String),
    #[error("cannot start the launcher: {0}")]
    Start(std::io::Error),
    #[error("launcher i/o: {0}")]
    Io(std::io::Error),
    #[error("the launch plan is {0} bytes, more than the launcher socket takes (raise net.core.wmem_max, give solo CAP_NET_ADMIN, or shrink args and env)")]
    TooLarge(usize),
}

/// A started instance.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub spawn_us: u64,
    pub exit: oneshot::Receiver<WaitStatus>,
    /// The seccomp filter's notification listener.
    pub listener: Option<OwnedFd>,
    pub enforcement: Enforcement,
}

type SpawnReply = Result<Spawned, LaunchError>;

struct Conn {
    sock: AsyncFd<OwnedFd>,
    pending: Mutex<HashMap<u64, oneshot::Sender<SpawnReply>>>,
    /// Seccomp filters this launcher was sent whole: later plans carry
    /// only their id (4 KB less of JSON to encode and decode per spawn).
    filters: Mutex<HashSet<String>>,
}

pub struct Launcher {
    exe: PathBuf,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    exits: Arc<Mutex<HashMap<i32, oneshot::Sender<WaitStatus>>>>,
    next_id: AtomicU64,
    launcher_pid: AtomicI32,
}

impl Launcher {
    /// `exe` is the solo binary (normally `/proc/self/exe`).
    pub fn new(exe: PathBuf) -> Arc<Self> {
        Arc::new(Launcher {
            exe,
            conn: tokio::sync::Mutex::new(None),
            exits: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
            launcher_pid: AtomicI32::new(0),
        })
    }

    pub fn launcher_pid(&self) -> i32 {
        self.launcher_pid.load(Ordering::Relaxed)
    }

    async fn connection(self: &Arc<Self>) -> Result<Arc<Conn>, LaunchError> {
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let (ours, theirs) = sys::seqpacket_pair().map_err(|e| LaunchError::Start(e.into()))?;
        for fd in [&ours, &theirs] {
            // Forcing needs CAP_NET_ADMIN; without it the buffers are capped
            // by net.core.wmem_max, and a plan larger than that fails its
            // own deploy with LaunchError::TooLarge (the launcher lives on).
            if let Err(e) = sys::force_socket_buffers(fd, (MAX_MESSAGE * 2) as i32) {
                tracing::debug!(error = %e, "cannot force launcher socket buffers; using the system maximum");
                let _ = sys::set_socket_buffers(fd, (MAX_MESSAGE * 2) as i32);
            }
        }
        // The launcher is exec'd fresh (posix_spawn: no fork of this
        // multi-threaded process), with its socket as stdin.
        let child = std::process::Command::new(&self.exe)
            .arg("__launcher")
            .stdin(std::process::Stdio::from(theirs))
            .spawn()
            .map_err(LaunchError::Start)?;
        self.launcher_pid.store(child.id() as i32, Ordering::Relaxed);
        tracing::info!(pid = child.id(), "launcher started");
        drop(child); // reaped by reap_orphans, not by std
        sys::set_nonblocking(ours.as_raw_fd()).map_err(|e| LaunchError::Start(e.into()))?;
        let conn = Arc::new(Conn {
            sock: register(ours)?,
            pending: Mutex::new(HashMap::new()),
            filters: Mutex::new(HashSet::new()),
        });
        tokio::spawn(read_loop(self.clone(), conn.clone()));
        *g = Some(conn.clone());
        Ok(conn)
    }

    /// Starts the launcher now (so a broken install fails at start-up).
    pub async fn start(self: &Arc<Self>) -> Result<(), LaunchError> {
        self.connection().await.map(|_| ())
    }

    /// Sends `plan` with the stdout/stderr write ends and `fds` (one per
    /// name in `plan.fds`, in order) for the service's fds 3, 4, … (socket
    /// activation), all in one message; the daemon's copies are closed once
    /// sent. Resolves when the instance has exec'd or a step failed.
    pub async fn spawn(
        self: &Arc<Self>,
        mut plan: LaunchPlan,
        stdout: OwnedFd,
        stderr: OwnedFd,
        fds: Vec<OwnedFd>,
    ) -> Result<Spawned, LaunchError> {
        let passed = fds;
        if passed.len() + 2 > sys::MAX_FDS_PER_MSG {
            // More than one message carries; the launcher would refuse far
            // fewer anyway (plan::MAX_PASSED_FDS).
            return Err(LaunchError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} descriptors to pass, more than one message carries", passed.len()),
            )));
        }
        let conn = self.connection().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // A filter goes whole until one send of it succeeded, then by id.
        let mut sends_filter = None;
        if let Some(f) = plan.confine.seccomp.as_mut() {
            if conn.filters.lock().unwrap_or_else(|p| p.into_inner()).contains(&f.id) {
                *f = f.by_id();
            } else {
                sends_filter = Some(f.id.clone());
            }
        }
        let data = serde_json::to_vec(&Request { id, plan }).map_err(|e| LaunchError::Io(e.into()))?;
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        let fds: Vec<i32> =
            [stdout.as_raw_fd(), stderr.as_raw_fd()].into_iter().chain(passed.iter().map(AsRawFd::as_raw_fd)).collect();
        loop {
            let mut guard = conn.sock.writable().await.map_err(LaunchError::Io)?;
            match guard.try_io(|s| sys::send_with_fds(s.as_raw_fd(), &data, &fds).map_err(Into::into)) {
                Ok(Ok(())) => {
                    if let Some(f) = sends_filter {
                        conn.filters.lock().unwrap_or_else(|p| p.into_inner()).insert(f);
                    }
                    break;
                }
                Ok(Err(e)) => {
                    conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    if e.raw_os_error() == Some(libc::EMSGSIZE) {
                        // This plan alone is too big; the launcher is fine.
                        return Err(LaunchError::TooLarge(data.len()));
                    }
                    self.disconnect(&conn).await;
                    return Err(LaunchError::Gone(e.to_string()));
                }
                Err(_would_block) => continue,
            }
        }
        drop((stdout, stderr, passed));
        rx.await.map_err(|_| LaunchError::Gone("no reply".into()))?
    }

    async fn disconnect(&self, conn: &Arc<Conn>) {
        let mut g = self.conn.lock().await;
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *g = None;
        }
        let pending: Vec<_> = conn.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(LaunchError::Gone("the launcher exited".into())));
        }
    }

    fn deliver_exit(&self, pid: i32, status: WaitStatus) {
        let tx = self.exits.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
        match tx {
            Some(tx) => {
                let _ = tx.send(status);
            }
            None => tracing::debug!(pid, ?status, "reaped a process that is not an instance"),
        }
    }

    /// Reaps children of the daemon itself (the launcher, and services
    /// reparented here if the launcher died). Call on SIGCHLD.
    pub fn reap_orphans(&self) {
        while let Ok(Some((pid, status))) = sys::waitpid_nohang(-1) {
            if pid == self.launcher_pid() {
                tracing::error!(pid, ?status, "launcher exited; it is restarted on the next launch");
                self.launcher_pid.store(0, Ordering::Relaxed);
                continue;
            }
            self.deliver_exit(pid, status);
        }
    }
}

async fn read_loop(l: Arc<Launcher>, conn: Arc<Conn>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let r = match conn.sock.readable().await {
            Ok(mut g) => match g.try_io(|s| sys::recv_with_fds(s.as_raw_fd(), &mut buf).map_err(Into::into)) {
                Ok(r) => r,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        let (n, mut fds) = match r {
            Ok((0, _)) | Err(_) => {
                l.disconnect(&conn).await;
                return;
            }
            Ok(x) => x,
        };
        let reply: Reply = match serde_json::from_slice(&buf[..n]) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "malformed launcher reply");
                continue;
            }
        };
        match reply {
            Reply::Spawned { id, pid, spawn_us, listener, enforcement } => {
                // Register the exit route before anyone can see the pid, so
                // an exit reported right after this message finds it.
                let (tx, rx) = oneshot::channel();
                l.exits.lock().unwrap_or_else(|p| p.into_inner()).insert(pid, tx);
                let waiter = conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                let mut fds = fds.drain(..);
                let pidfd = fds.next();
                let listener = if listener { fds.next() } else { None };
                let reply = match pidfd {
                    Some(pidfd) => Ok(Spawned { pid, pidfd, spawn_us, exit: rx, listener, enforcement }),
                    None => Err(LaunchError::Gone("spawn reply without a pidfd".into())),
                };
                if let Some(w) = waiter {
                    let _ = w.send(reply);
                }
            }
            Reply::Failed { id, step, errno, message } => {
                let waiter = conn.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send(Err(LaunchError::Step { step, errno, message }));
                }
            }
            Reply::Exited { pid, code, signal } => {
                let status = match (code, signal) {
                    (_, Some(s)) => WaitStatus::Signaled(s),
                    (Some(c), None) => WaitStatus::Exited(c),
                    (None, None) => WaitStatus::Exited(0),
                };
                l.deliver_exit(pid, status);
            }
        }
    }
}

fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, LaunchError> {
    register_fd(fd).map_err(LaunchError::Start)
}

/// Registers a descriptor (the launcher socket, a seccomp listener) with
/// the tokio reactor.
#[allow(unsafe_code)]
pub(super) fn register_fd(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open for as long as it is owned and always
    // returns the same descriptor from as_raw_fd; the AsyncFd owns it.
    unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))
}
