//! The daemon's side of the launcher: attaches to the launcher a previous
//! daemon left running (taking back its live children and kept
//! descriptors), or starts `solo __launcher`; sends it launch plans and
//! descriptors to keep, and routes its replies — spawn results to the task
//! that asked, exits to the instance that owns the pid.
//!
//! The daemon is a child subreaper too: if the launcher dies, its children
//! are reparented here and [`Launcher::reap_orphans`] routes their exits
//! the same way, so no exit is lost.

use crate::launcher::protocol::{Reply, Request, MAX_MESSAGE, PID_NAME, SOCKET_NAME};
use crate::sandbox::plan::{Enforcement, LaunchPlan};
use crate::sandbox::sys::{self, WaitStatus};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// How long a daemon waits for a live launcher to hand everything over.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{message}")]
    Step { step: String, errno: i32, message: String },
    #[error("the launcher process is not running: {0}")]
    Gone(String),
    #[error("cannot start the launcher: {0}")]
    Start(std::io::Error),
    #[error("cannot attach to the launcher at {path}: {why}")]
    Attach { path: String, why: String },
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

/// What a live launcher handed a (new) daemon: the instances still running
/// and the descriptors kept for them, by name.
#[derive(Default)]
pub struct Adoptable {
    /// Live children by instance key (`inst/ID/REPLICA/`, `inst/ID/REPLICA.rN/`).
    pub children: HashMap<String, AdoptedChild>,
    /// Vault entries by name.
    pub kept: HashMap<String, OwnedFd>,
    /// Instances that ended while no daemon was attached: key → status.
    pub ended: HashMap<String, WaitStatus>,
    /// The launcher's pid.
    pub launcher_pid: i32,
}

/// A live child of the launcher, as it was launched.
pub struct AdoptedChild {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// What the daemon sent with the spawn (its own notes, as JSON).
    pub meta: String,
    pub enforcement: Enforcement,
    pub spawn_us: u64,
    /// When it was launched, Unix milliseconds.
    pub started_at_ms: i64,
}

impl Adoptable {
    /// Removes and returns the kept descriptor `name`.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        self.kept.remove(name)
    }

    /// A copy of the descriptor of service `id`'s grant `name` that one of
    /// its instances holds (every instance holds the same socket or
    /// directory). The entries stay, for the instances that keep them.
    ///
    /// Only instances of `revision` count: during an update two revisions
    /// run, and the new one may hold a different socket under the same name.
    pub fn take_grant(&self, id: &str, revision: u64, name: &str) -> Option<OwnedFd> {
        let prefix = format!("inst/{id}/");
        let suffix = format!("/{}", grant_key(name));
        self.kept
            .iter()
            .find(|(k, _)| {
                k.starts_with(&prefix)
                    && k.ends_with(&suffix)
                    && k[prefix.len()..].split('/').next().is_some_and(|inst| key_revision(inst) == Some(revision))
            })
            .and_then(|(_, fd)| fd.try_clone().ok())
    }
}

/// The vault prefix of instance `replica` of revision `revision` of
/// service `id`: `inst/ID/REPLICA/` for revision 1, `inst/ID/REPLICA.rN/`
/// for later ones (two revisions of a replica run side by side during an
/// update, and each keeps its own descriptors). The part after `inst/ID/`
/// names the instance as its cgroup does (`ID.REPLICA[.rN]`).
pub fn instance_key(id: &str, revision: u64, replica: u32) -> String {
    if revision <= 1 {
        format!("inst/{id}/{replica}/")
    } else {
        format!("inst/{id}/{replica}.r{revision}/")
    }
}

/// The revision of an instance key's `REPLICA[.rN]` part.
fn key_revision(inst: &str) -> Option<u64> {
    match inst.split_once(".r") {
        None => inst.parse::<u32>().ok().map(|_| 1),
        Some((replica, rev)) => replica.parse::<u32>().ok().and(rev.parse::<u64>().ok()).filter(|r| *r > 1),
    }
}

/// The name, beneath an instance's vault prefix, of the service's grant
/// `name` (a listening socket or directory descriptor, which the service
/// owns and each of its instances holds).
pub fn grant_key(name: &str) -> String {
    format!("grant/{name}")
}

/// Which instance a spawn is, for the launcher: its vault prefix, the
/// daemon's notes on it, and the daemon's descriptors to keep with it.
pub struct Who<'a> {
    pub key: &'a str,
    pub meta: &'a str,
    pub keep: &'a [(&'a str, BorrowedFd<'a>)],
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
    runtime_dir: PathBuf,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    exits: Arc<Mutex<HashMap<i32, oneshot::Sender<WaitStatus>>>>,
    /// Exits of pids nobody had claimed yet (an adopted instance whose task
    /// is not started), delivered when it claims them.
    unclaimed: Mutex<HashMap<i32, WaitStatus>>,
    next_id: AtomicU64,
    launcher_pid: AtomicI32,
    /// Set once by [`Launcher::start`] when it attached to a live launcher.
    adoptable: Mutex<Option<Adoptable>>,
    /// Set when the daemon hands over: no more launches, no new launcher.
    closed: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Launcher {
    /// `exe` is the solo binary (normally `/proc/self/exe`); the launcher's
    /// socket and pid file live in `runtime_dir`.
    pub fn new(exe: PathBuf, runtime_dir: PathBuf) -> Arc<Self> {
        Arc::new(Launcher {
            exe,
            runtime_dir,
            conn: tokio::sync::Mutex::new(None),
            exits: Arc::new(Mutex::new(HashMap::new())),
            unclaimed: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            launcher_pid: AtomicI32::new(0),
            adoptable: Mutex::new(None),
            closed: Default::default(),
        })
    }

    pub fn launcher_pid(&self) -> i32 {
        self.launcher_pid.load(Ordering::Relaxed)
    }

    fn socket_path(&self) -> PathBuf {
        self.runtime_dir.join(SOCKET_NAME)
    }

    /// What a live launcher handed over at start (once; `None` after a
    /// fresh start).
    pub fn take_adoptable(&self) -> Option<Adoptable> {
        lock(&self.adoptable).take()
    }

    async fn connection(self: &Arc<Self>) -> Result<Arc<Conn>, LaunchError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(LaunchError::Gone("the daemon is handing its services over to the next one".into()));
        }
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let sock = self.spawn_launcher()?;
        let conn = self.register_conn(sock)?;
        *g = Some(conn.clone());
        Ok(conn)
    }

    /// Binds the launcher's socket (root-only: the runtime dir is 0700 and
    /// the umask 077), execs `solo __launcher` with it as stdin, connects.
    fn spawn_launcher(&self) -> Result<OwnedFd, LaunchError> {
        let path = self.socket_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LaunchError::Start(e)),
        }
        let errno = |e: sys::Errno| LaunchError::Start(std::io::Error::from_raw_os_error(e.0));
        let listener = sys::seqpacket_listen(&path, 4).map_err(errno)?;
        // The launcher is exec'd fresh (posix_spawn: no fork of this
        // multi-threaded process), with its listening socket as stdin.
        let child = std::process::Command::new(&self.exe)
            .arg("__launcher")
            .stdin(std::process::Stdio::from(listener))
            .spawn()
            .map_err(LaunchError::Start)?;
        self.launcher_pid.store(child.id() as i32, Ordering::Relaxed);
        let _ = std::fs::write(self.runtime_dir.join(PID_NAME), format!("{}\n", child.id()));
        tracing::info!(pid = child.id(), "launcher started");
        drop(child); // reaped by reap_orphans, not by std
        let sock = sys::seqpacket_connect(&path).map_err(errno)?;
        tune(&sock);
        Ok(sock)
    }

    fn register_conn(self: &Arc<Self>, sock: OwnedFd) -> Result<Arc<Conn>, LaunchError> {
        sys::set_nonblocking(sock.as_raw_fd()).map_err(|e| LaunchError::Start(e.into()))?;
        let conn = Arc::new(Conn {
            sock: register_fd(sock).map_err(LaunchError::Start)?,
            pending: Mutex::new(HashMap::new()),
            filters: Mutex::new(HashSet::new()),
        });
        tokio::spawn(read_loop(self.clone(), conn.clone()));
        Ok(conn)
    }

    /// Attaches to the launcher a previous daemon left (a crash, a re-exec)
    /// and takes back what it kept; without one, starts a fresh launcher
    /// (so a broken install fails at start-up).
    pub async fn start(self: &Arc<Self>) -> Result<(), LaunchError> {
        let path = self.socket_path();
        let mut g = self.conn.lock().await;
        let sock = match sys::seqpacket_connect(&path) {
            Ok(sock) => sock,
            // Nothing listening: no launcher survived.
            Err(_) => {
                drop(g);
                return self.connection().await.map(|_| ());
            }
        };
        let attach_err = |why: String| LaunchError::Attach { path: path.display().to_string(), why };
        // Only root's launcher (the socket is in the 0700 runtime dir, but
        // a stale path could be anyone's).
        match sys::peer_cred(sock.as_raw_fd()) {
            Ok((0, _)) => {}
            Ok((uid, _)) => return Err(attach_err(format!("its socket belongs to uid {uid}, not root"))),
            Err(e) => return Err(attach_err(e.to_string())),
        }
        tune(&sock);
        let adoptable = attach(&sock).map_err(attach_err)?;
        let pid = adoptable.launcher_pid;
        self.launcher_pid.store(pid, Ordering::Relaxed);
        let _ = std::fs::write(self.runtime_dir.join(PID_NAME), format!("{pid}\n"));
        tracing::info!(
            pid,
            instances = adoptable.children.len(),
            kept = adoptable.kept.len(),
            ended = adoptable.ended.len(),
            "attached to the running launcher"
        );
        *lock(&self.adoptable) = Some(adoptable);
        *g = Some(self.register_conn(sock)?);
        Ok(())
    }

    /// Sends `plan` for instance `who.key` (with `who.meta`, the daemon's
    /// notes on it, handed back to a later daemon) with the stdout/stderr
    /// write ends, the descriptors to keep for a later daemon (`who.keep`,
    /// named), and `fds` (one per name in `plan.fds`, in order) for the
    /// service's fds 3, 4, … (socket activation), all in one message; the
    /// daemon's copies of the write ends and passed descriptors are closed
    /// once sent. Resolves when the instance has exec'd or a step failed.
    pub async fn spawn(
        self: &Arc<Self>,
        mut plan: LaunchPlan,
        who: Who<'_>,
        stdout: OwnedFd,
        stderr: OwnedFd,
        fds: Vec<OwnedFd>,
    ) -> Result<Spawned, LaunchError> {
        let Who { key, meta, keep } = who;
        let passed = fds;
        if passed.len() + keep.len() + 2 > sys::MAX_FDS_PER_MSG {
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
            if lock(&conn.filters).contains(&f.id) {
                *f = f.by_id();
            } else {
                sends_filter = Some(f.id.clone());
            }
        }
        let keep_names = keep.iter().map(|(n, _)| (*n).to_owned()).collect();
        let req =
            Request::Spawn { id, key: key.to_owned(), keep: keep_names, meta: meta.to_owned(), plan: Box::new(plan) };
        let data = serde_json::to_vec(&req).map_err(|e| LaunchError::Io(e.into()))?;
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        let fds: Vec<RawFd> = [stdout.as_raw_fd(), stderr.as_raw_fd()]
            .into_iter()
            .chain(keep.iter().map(|(_, fd)| fd.as_raw_fd()))
            .chain(passed.iter().map(AsRawFd::as_raw_fd))
            .collect();
        if let Err(e) = self.send(&conn, &data, &fds).await {
            lock(&conn.pending).remove(&id);
            return Err(e);
        }
        if let Some(f) = sends_filter {
            lock(&conn.filters).insert(f);
        }
        drop((stdout, stderr, passed));
        rx.await.map_err(|_| LaunchError::Gone("no reply".into()))?
    }

    async fn send(&self, conn: &Arc<Conn>, data: &[u8], fds: &[RawFd]) -> Result<(), LaunchError> {
        loop {
            let mut guard = conn.sock.writable().await.map_err(LaunchError::Io)?;
            match guard.try_io(|s| sys::send_with_fds(s.as_raw_fd(), data, fds).map_err(Into::into)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    if e.raw_os_error() == Some(libc::EMSGSIZE) {
                        // This message alone is too big; the launcher is fine.
                        return Err(LaunchError::TooLarge(data.len()));
                    }
                    self.disconnect(conn).await;
                    return Err(LaunchError::Gone(e.to_string()));
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// A request without a reply, to the launcher if one is attached.
    async fn tell(self: &Arc<Self>, req: &Request, fds: &[RawFd]) -> Result<(), LaunchError> {
        let conn = self.conn.lock().await.clone();
        let Some(conn) = conn else { return Err(LaunchError::Gone("not attached".into())) };
        let data = serde_json::to_vec(req).map_err(|e| LaunchError::Io(e.into()))?;
        self.send(&conn, &data, fds).await
    }

    /// Keeps copies of `fds` in the launcher's vault under their names, for
    /// a daemon that comes back after this one (best effort: a launcher
    /// that is gone keeps nothing, and a re-adoption then reopens them).
    pub async fn keep(self: &Arc<Self>, fds: &[(String, BorrowedFd<'_>)]) {
        if fds.is_empty() {
            return;
        }
        let names = fds.iter().map(|(n, _)| n.clone()).collect();
        let raw: Vec<RawFd> = fds.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        if let Err(e) = self.tell(&Request::Keep { names }, &raw).await {
            tracing::debug!(error = %e, "cannot keep descriptors in the launcher");
        }
    }

    /// Drops every kept descriptor whose name starts with `prefix`.
    pub async fn forget(self: &Arc<Self>, prefix: String) {
        if let Err(e) = self.tell(&Request::Forget { prefix }, &[]).await {
            tracing::debug!(error = %e, "cannot tell the launcher to forget descriptors");
        }
    }

    /// No more launches from this daemon (it hands over).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Detaches from the launcher on purpose: from now on it queues exits
    /// for the next daemon.
    pub async fn detach(self: &Arc<Self>) {
        if let Err(e) = self.tell(&Request::Detach, &[]).await {
            tracing::warn!(error = %e, "cannot detach from the launcher");
        }
    }

    /// Tells the launcher to exit (a clean shutdown, every service stopped).
    pub async fn quit(self: &Arc<Self>) {
        let _ = self.tell(&Request::Quit, &[]).await;
        let _ = std::fs::remove_file(self.runtime_dir.join(PID_NAME));
        let _ = std::fs::remove_file(self.socket_path());
    }

    /// The exit of `pid` (a child adopted from a previous daemon), whether
    /// it already came or comes later.
    pub fn claim_exit(&self, pid: i32) -> oneshot::Receiver<WaitStatus> {
        let (tx, rx) = oneshot::channel();
        match lock(&self.unclaimed).remove(&pid) {
            Some(status) => {
                let _ = tx.send(status);
            }
            None => {
                lock(&self.exits).insert(pid, tx);
            }
        }
        rx
    }

    async fn disconnect(&self, conn: &Arc<Conn>) {
        let mut g = self.conn.lock().await;
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *g = None;
        }
        let pending: Vec<_> = lock(&conn.pending).drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Err(LaunchError::Gone("the launcher exited".into())));
        }
    }

    fn deliver_exit(&self, pid: i32, status: WaitStatus) {
        let tx = lock(&self.exits).remove(&pid);
        match tx {
            Some(tx) => {
                let _ = tx.send(status);
            }
            None => {
                tracing::debug!(pid, ?status, "an exit nobody claimed yet");
                let mut u = lock(&self.unclaimed);
                // Bounded: pids that are no instance's are not kept forever.
                if u.len() >= 4096 {
                    u.clear();
                }
                u.insert(pid, status);
            }
        }
    }

    /// Reaps children of the daemon itself (the launcher it started, and
    /// services reparented here if the launcher died). Call on SIGCHLD.
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

/// Raises the socket buffers to fit the largest plan (forced where
/// CAP_NET_ADMIN allows; else capped by net.core.wmem_max, and a larger
/// plan fails its own deploy with [`LaunchError::TooLarge`]).
fn tune(sock: &OwnedFd) {
    if let Err(e) = sys::force_socket_buffers(sock, (MAX_MESSAGE * 2) as i32) {
        tracing::debug!(error = %e, "cannot force launcher socket buffers; using the system maximum");
        let _ = sys::set_socket_buffers(sock, (MAX_MESSAGE * 2) as i32);
    }
}

/// The attach exchange, blocking, before the socket joins the runtime:
/// `Attach`, then children, kept descriptors and queued exits until
/// `Attached`.
fn attach(sock: &OwnedFd) -> Result<Adoptable, String> {
    let data = serde_json::to_vec(&Request::Attach).map_err(|e| e.to_string())?;
    sys::send_with_fds(sock.as_raw_fd(), &data, &[]).map_err(|e| e.to_string())?;
    let mut a = Adoptable::default();
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = sys::poll_readable(&[sock.as_raw_fd()], left.as_millis() as i32).map_err(|e| e.to_string())?;
        if !ready[0] {
            return Err(format!("no answer within {} s", ATTACH_TIMEOUT.as_secs()));
        }
        let (n, fds) = sys::recv_with_fds(sock.as_raw_fd(), &mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the launcher closed the connection (is another daemon attached to it?)".into());
        }
        let reply: Reply = serde_json::from_slice(&buf[..n]).map_err(|e| format!("malformed reply: {e}"))?;
        let mut fds = fds.into_iter();
        match reply {
            Reply::Child { pid, key, meta, enforcement, spawn_us, started_at_ms } => {
                let pidfd = fds.next().ok_or("a child without its pidfd")?;
                a.children.insert(key, AdoptedChild { pid, pidfd, meta, enforcement, spawn_us, started_at_ms });
            }
            Reply::Kept { names } => {
                for name in names {
                    let fd = fds.next().ok_or("a kept name without its descriptor")?;
                    a.kept.insert(name, fd);
                }
            }
            Reply::Exited { code, signal, key, .. } => {
                if !key.is_empty() {
                    a.ended.insert(key, status(code, signal));
                }
            }
            Reply::Attached { pid, .. } => {
                a.launcher_pid = pid;
                return Ok(a);
            }
            Reply::Spawned { .. } | Reply::Failed { .. } => return Err("a spawn reply during attach".into()),
        }
    }
}

fn status(code: Option<i32>, signal: Option<i32>) -> WaitStatus {
    match (code, signal) {
        (_, Some(s)) => WaitStatus::Signaled(s),
        (Some(c), None) => WaitStatus::Exited(c),
        (None, None) => WaitStatus::Exited(0),
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
                lock(&l.exits).insert(pid, tx);
                let waiter = lock(&conn.pending).remove(&id);
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
                let waiter = lock(&conn.pending).remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send(Err(LaunchError::Step { step, errno, message }));
                }
            }
            Reply::Exited { pid, code, signal, .. } => l.deliver_exit(pid, status(code, signal)),
            Reply::Child { .. } | Reply::Kept { .. } | Reply::Attached { .. } => {
                tracing::warn!("an attach reply outside the attach exchange; ignored");
            }
        }
    }
}

/// Registers a descriptor (the launcher socket, a seccomp listener) with
/// the tokio reactor.
#[allow(unsafe_code)]
pub(super) fn register_fd(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open for as long as it is owned and always
    // returns the same descriptor from as_raw_fd; the AsyncFd owns it.
    unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_keys_carry_the_revision_and_grants_are_taken_from_it() {
        assert_eq!(instance_key("web", 1, 0), "inst/web/0/");
        assert_eq!(instance_key("web", 3, 0), "inst/web/0.r3/");
        // One instance's prefix is never another's.
        assert!(!instance_key("web", 3, 0).starts_with(&instance_key("web", 1, 0)));
        assert_eq!((key_revision("0"), key_revision("2.r7"), key_revision("2.r1")), (Some(1), Some(7), None));
        let dev_null = |_| OwnedFd::from(std::fs::File::open("/dev/null").expect("open /dev/null"));
        let mut kept = HashMap::new();
        kept.insert(format!("{}{}", instance_key("web", 2, 0), grant_key("http")), dev_null(0));
        let found = Adoptable { children: HashMap::new(), kept, ended: HashMap::new(), launcher_pid: 0 };
        // The new revision's socket is not the old one's, though named alike.
        assert!(found.take_grant("web", 1, "http").is_none());
        assert!(found.take_grant("web", 2, "http").is_some());
    }
}
