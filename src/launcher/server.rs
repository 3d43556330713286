//! The launcher's loop: accept the daemon, receive plans, prepare, clone3,
//! report; reap children and report their exits; keep the vault.
//!
//! The launcher outlives the daemon. When the daemon's connection closes
//! (a crash, or a re-exec), the children stay its own, their exits are
//! queued, and the vault keeps every descriptor the daemon left with it;
//! the next daemon connects to the listening socket (fd 0) and takes them
//! back ([`Request::Attach`]). It exits when told ([`Request::Quit`]), or
//! when no daemon is attached and no child is left.

use super::protocol::{Reply, Request, MAX_MESSAGE};
use super::spawn::launch;
use crate::sandbox::mounts::Views;
use crate::sandbox::namespaces::NetPool;
use crate::sandbox::steps::{self, StepError};
use crate::sandbox::sys::{self, WaitStatus};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// Network namespaces kept ready for the next spawns.
const NET_POOL: usize = 4;

/// Most descriptors one reply carries (below `SCM_MAX_FD`).
const FDS_PER_REPLY: usize = 200;

/// The lowest number a kept descriptor gets: everything the launcher keeps
/// for the daemon (several per instance) sits above what a child may open
/// under its own `RLIMIT_NOFILE` (1024 by default), which it sets before
/// its last opens (Landlock's paths, in its view). A child sees them only
/// until its exec (they are close-on-exec).
const KEPT_FLOOR: i32 = 4096;

/// How long a launcher with no daemon attached and no child left waits for
/// a daemon (one re-exec'ing itself, say) before it exits.
const IDLE_EXIT_MS: i32 = 30_000;

/// A live child: the instance it was launched as, and what a daemon that
/// attaches later needs to know about it.
struct Child {
    key: String,
    pidfd: OwnedFd,
    meta: String,
    enforcement: crate::sandbox::plan::Enforcement,
    spawn_us: u64,
    started_at_ms: i64,
}

/// Everything the launcher holds for the daemon.
#[derive(Default)]
struct State {
    /// The attached daemon, if any.
    conn: Option<OwnedFd>,
    children: HashMap<i32, Child>,
    /// Descriptors kept for the daemon, by name.
    vault: BTreeMap<String, OwnedFd>,
    /// Exits reaped while no daemon was attached.
    queued: Vec<Reply>,
}

/// Runs the launcher on `listener` (its stdin: a listening `SOCK_SEQPACKET`
/// socket only root can reach). Never returns.
pub fn run(listener: OwnedFd) -> ! {
    // Whatever the daemon (or whoever started it) left open beyond the
    // socket (fd 0) and stdout/stderr goes first: the launcher holds only
    // what it opens itself, so nothing inherited can reach a service
    // however the child's own close-on-exec sweep is arranged.
    if let Err(e) = sys::close_fds_from(3) {
        eprintln!("solo launcher: cannot close inherited descriptors: {e}");
        sys::exit_now(1)
    }
    // First of all, before anything here opens a descriptor: fill the
    // numbers passed descriptors get in a service (3 to 66) with
    // placeholders, so none of the launcher's own descriptors (sockets,
    // pipes, views, the program) is ever there when the child moves grants
    // into place (steps::pass_fds checks it too).
    if let Err(e) = sys::reserve_fds(steps::PASSED_FDS) {
        eprintln!("solo launcher: cannot reserve descriptors {:?}: {e}", steps::PASSED_FDS);
        sys::exit_now(1)
    }
    // No parent-death signal: the launcher outlives a crash or a re-exec of
    // the daemon, and with it every service keeps its parent, its output
    // pipes and its control socket until the next daemon attaches.
    if let Err(e) = sys::set_child_subreaper() {
        eprintln!("solo launcher: cannot become a child subreaper: {e}");
    }
    // Empty the bounding, ambient and inheritable sets and lock the
    // securebits once, here: every child inherits them (the launcher itself
    // never execs), so a spawn only checks them (caps::ensure_bounding_dropped).
    if let Err(e) = crate::sandbox::caps::drop_bounding() {
        eprintln!("solo launcher: cannot empty the capability bounding set ({e}); each spawn will");
    }
    let sigchld = match sys::sigchld_fd() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("solo launcher: cannot watch SIGCHLD: {e}");
            sys::exit_now(1)
        }
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Without a pool every spawn creates its network namespace in clone3.
    let mut pool = match NetPool::new(NET_POOL) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("solo launcher: no network namespace pool ({e}); each spawn creates its own");
            None
        }
    };
    // Each profile's shared filesystem view, built on its first spawn, and
    // its seccomp filter, sent whole once.
    let mut kept = Kept::default();
    let mut st = State::default();
    loop {
        // Idle time refills the pool; a pending request never waits for it.
        let idle_work = pool.as_ref().is_some_and(NetPool::wants_more);
        // Alone (no daemon, no child): wait a while for a daemon, then go.
        let alone = st.conn.is_none() && st.children.is_empty();
        let timeout = if idle_work {
            0
        } else if alone {
            IDLE_EXIT_MS
        } else {
            -1
        };
        let mut fds = vec![listener.as_raw_fd(), sigchld.as_raw_fd()];
        if let Some(c) = &st.conn {
            fds.push(c.as_raw_fd());
        }
        let ready = match sys::poll_readable(&fds, timeout) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("solo launcher: poll: {e}");
                sys::exit_now(1)
            }
        };
        if alone && !idle_work && !ready.iter().any(|r| *r) {
            sys::exit_now(0)
        }
        if idle_work && !ready.iter().any(|r| *r) {
            if let Some(p) = pool.as_mut() {
                if let Err(e) = p.fill_one() {
                    eprintln!("solo launcher: cannot make a network namespace ahead ({e}); spawns make their own");
                    pool = None;
                }
            }
            continue;
        }
        if ready[1] {
            sys::drain(sigchld.as_raw_fd());
            reap(&mut st);
        }
        if ready.get(2).copied().unwrap_or(false) {
            let conn = st.conn.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1);
            match sys::recv_with_fds(conn, &mut buf) {
                Ok((0, _)) => detach(&mut st),
                Ok((n, fds)) => handle(&mut st, &buf[..n], fds, pool.as_mut(), &mut kept),
                Err(e) if e.0 == libc::EAGAIN || e.0 == libc::EINTR => {}
                Err(e) => {
                    eprintln!("solo launcher: receive: {e}");
                    detach(&mut st);
                }
            }
        }
        if ready[0] {
            accept(&mut st, listener.as_raw_fd());
        }
    }
}

/// A daemon connects: root only, one at a time.
fn accept(st: &mut State, listener: RawFd) {
    let conn = match sys::accept(listener) {
        Ok(c) => c,
        Err(_) => return,
    };
    match sys::peer_cred(conn.as_raw_fd()) {
        Ok((0, _)) => {}
        Ok((uid, pid)) => {
            eprintln!("solo launcher: refused a connection from uid {uid} (pid {pid}): only root's daemon may attach");
            return;
        }
        Err(e) => {
            eprintln!("solo launcher: refused a connection: {e}");
            return;
        }
    }
    if st.conn.is_some() {
        // Another daemon is attached (the state-dir lock should make this
        // impossible); the newcomer sees its connection close.
        eprintln!("solo launcher: refused a second daemon while one is attached");
        return;
    }
    // Plans are large: raise the buffers (forced where CAP_NET_ADMIN allows).
    if sys::force_socket_buffers(&conn, (MAX_MESSAGE * 2) as i32).is_err() {
        let _ = sys::set_socket_buffers(&conn, (MAX_MESSAGE * 2) as i32);
    }
    st.conn = Some(conn);
}

/// The daemon is gone: keep everything for the next one (a launcher left
/// alone exits after [`IDLE_EXIT_MS`]).
fn detach(st: &mut State) {
    st.conn = None;
}

/// Sends one reply; a daemon that cannot be reached is detached (its
/// successor gets what it missed through [`Request::Attach`]).
fn send(st: &mut State, reply: &Reply, fds: &[RawFd]) -> bool {
    let Some(conn) = st.conn.as_ref() else { return false };
    let data = match serde_json::to_vec(reply) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("solo launcher: encode reply: {e}");
            return false;
        }
    };
    if let Err(e) = sys::send_with_fds(conn.as_raw_fd(), &data, fds) {
        eprintln!("solo launcher: send: {e}");
        detach(st);
        return false;
    }
    true
}

fn reap(st: &mut State) {
    while let Ok(Some((pid, status))) = sys::waitpid_nohang(-1) {
        let key = st.children.remove(&pid).map(|c| c.key).unwrap_or_default();
        let (code, signal) = match status {
            WaitStatus::Exited(c) => (Some(c), None),
            WaitStatus::Signaled(s) => (None, Some(s)),
        };
        let reply = Reply::Exited { pid, code, signal, key };
        if st.conn.is_none() || !send(st, &reply, &[]) {
            st.queued.push(reply);
        }
    }
}

/// What the launcher keeps across spawns, per profile.
#[derive(Default)]
struct Kept {
    views: Views,
    /// Seccomp filters by id (sha256), as the daemon sent them.
    filters: HashMap<String, Vec<u8>>,
}

fn handle(st: &mut State, data: &[u8], fds: Vec<OwnedFd>, pool: Option<&mut NetPool>, kept: &mut Kept) {
    let req: Request = match serde_json::from_slice(data) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("solo launcher: malformed request: {e}");
            return;
        }
    };
    match req {
        Request::Spawn { id, key, keep, meta, plan } => {
            spawn(st, id, Named { key, keep, meta }, *plan, fds, pool, kept)
        }
        Request::Keep { names } => {
            if names.len() != fds.len() {
                eprintln!("solo launcher: keep: {} names for {} descriptors; ignored", names.len(), fds.len());
                return;
            }
            st.vault.extend(names.into_iter().zip(fds.into_iter().map(|fd| sys::move_above(fd, KEPT_FLOOR))));
        }
        Request::Forget { prefix } => st.vault.retain(|name, _| !name.starts_with(&prefix)),
        Request::Attach => attach(st),
        Request::Detach => detach(st),
        Request::Quit => sys::exit_now(0),
    }
}

/// Hands a (new) daemon everything: children, vault, queued exits.
fn attach(st: &mut State) {
    let children: Vec<(Reply, RawFd)> = st
        .children
        .iter()
        .map(|(pid, c)| {
            let reply = Reply::Child {
                pid: *pid,
                key: c.key.clone(),
                meta: c.meta.clone(),
                enforcement: c.enforcement.clone(),
                spawn_us: c.spawn_us,
                started_at_ms: c.started_at_ms,
            };
            (reply, c.pidfd.as_raw_fd())
        })
        .collect();
    let count = children.len();
    for (reply, pidfd) in children {
        if !send(st, &reply, &[pidfd]) {
            return;
        }
    }
    let vault: Vec<(String, RawFd)> = st.vault.iter().map(|(n, fd)| (n.clone(), fd.as_raw_fd())).collect();
    for chunk in vault.chunks(FDS_PER_REPLY) {
        let names = chunk.iter().map(|(n, _)| n.clone()).collect();
        let fds: Vec<RawFd> = chunk.iter().map(|(_, fd)| *fd).collect();
        if !send(st, &Reply::Kept { names }, &fds) {
            return;
        }
    }
    for reply in std::mem::take(&mut st.queued) {
        if !send(st, &reply, &[]) {
            return;
        }
    }
    let done = Reply::Attached { children: count, kept: vault.len(), pid: sys::getpid() };
    send(st, &done, &[]);
}

/// A spawn's instance key, the names of the descriptors to keep, and the
/// daemon's notes.
struct Named {
    key: String,
    keep: Vec<String>,
    meta: String,
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    st: &mut State,
    id: u64,
    named: Named,
    mut plan: crate::sandbox::plan::LaunchPlan,
    fds: Vec<OwnedFd>,
    pool: Option<&mut NetPool>,
    kept: &mut Kept,
) {
    let started = Instant::now();
    let Named { key, keep, meta } = named;
    let fail =
        |e: StepError| Reply::Failed { id, step: e.step.name().to_owned(), errno: e.errno.0, message: e.to_string() };
    // First, whatever else is wrong with the request: the daemon counts a
    // filter as sent once the message went out, so it must be kept.
    if let Some(f) = plan.confine.seccomp.as_mut() {
        if !f.resolve(&mut kept.filters) {
            // The daemon sends a filter whole before it refers to it; a
            // reference to one this launcher never got is the daemon's bug.
            let e = StepError { step: steps::Step::Prepare, errno: sys::Errno(libc::ENOENT) };
            send(st, &fail(e), &[]);
            return;
        }
    }
    // Refused before anything is opened, saying why.
    let refuse = |errno: i32, why: String| {
        let e = StepError { step: steps::Step::Prepare, errno: sys::Errno(errno) };
        Reply::Failed { id, step: e.step.name().to_owned(), errno, message: format!("{e}: {why}") }
    };
    if fds.len() != 2 + keep.len() + plan.fds.len() {
        let why = format!("{} descriptors sent, {} expected", fds.len(), 2 + keep.len() + plan.fds.len());
        send(st, &refuse(libc::EBADF, why), &[]);
        return;
    }
    let mut fds = fds.into_iter();
    let (Some(stdout), Some(stderr)) = (fds.next(), fds.next()) else { return };
    // The daemon's own ends, kept for a daemon that comes back.
    let kept_fds: Vec<OwnedFd> = fds.by_ref().take(keep.len()).collect();
    let passed: Vec<OwnedFd> = fds.collect();
    if let Err(why) = plan.check() {
        send(st, &refuse(libc::EINVAL, why), &[]);
        return;
    }
    let netns = if plan.confine.namespaces.net { pool.and_then(NetPool::take) } else { None };
    match launch(&plan, stdout, stderr, passed, netns, &mut kept.views) {
        Ok(l) => {
            let spawn_us = started.elapsed().as_micros() as u64;
            let mut out = vec![l.pidfd.as_raw_fd()];
            if let Some(f) = &l.listener {
                out.push(f.as_raw_fd());
            }
            let enforcement = l.enforcement.clone();
            let reply =
                Reply::Spawned { id, pid: l.pid, spawn_us, listener: l.listener.is_some(), enforcement: l.enforcement };
            send(st, &reply, &out);
            for (name, fd) in keep.into_iter().zip(kept_fds) {
                st.vault.insert(format!("{key}{name}"), sys::move_above(fd, KEPT_FLOOR));
            }
            if let Some(listener) = l.listener {
                st.vault.insert(format!("{key}listener"), sys::move_above(listener, KEPT_FLOOR));
            }
            let started_at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let pidfd = sys::move_above(l.pidfd, KEPT_FLOOR);
            st.children.insert(l.pid, Child { key, pidfd, meta, enforcement, spawn_us, started_at_ms });
        }
        Err(e) => {
            send(st, &fail(e), &[]);
        }
    }
}
