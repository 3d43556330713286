//! The launcher's loop: receive a plan, prepare, clone3, report; reap
//! children and report their exits. Exits when the daemon's end closes.

use super::protocol::{Reply, Request, MAX_MESSAGE};
use crate::sandbox::landlock;
use crate::sandbox::mounts::Views;
use crate::sandbox::namespaces::NetPool;

/// Network namespaces kept ready for the next spawns.
const NET_POOL: usize = 4;
use crate::sandbox::plan::{Confinement, Enforcement, Layer};
use crate::sandbox::steps::{self, StepError};
use crate::sandbox::sys::{self, Forked, WaitStatus};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// Runs the launcher on `sock` (its stdin). Never returns.
pub fn run(sock: OwnedFd) -> ! {
    // First of all, before anything here opens a descriptor: fill the
    // numbers passed descriptors get in a service (3 to 66) with
    // placeholders, so none of the launcher's own descriptors (sockets,
    // pipes, views, the program) is ever there when the child moves grants
    // into place (steps::pass_fds checks it too).
    if let Err(e) = sys::reserve_fds(steps::PASSED_FDS) {
        eprintln!("solo launcher: cannot reserve descriptors {:?}: {e}", steps::PASSED_FDS);
        sys::exit_now(1)
    }
    // If the daemon dies, so does the launcher; services live on (they are
    // reparented to the next subreaper) and are found again on restart.
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
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
    loop {
        // Idle time refills the pool; a pending request never waits for it.
        let idle_work = pool.as_ref().is_some_and(NetPool::wants_more);
        let timeout = if idle_work { 0 } else { -1 };
        let ready = match sys::poll_readable(&[sock.as_raw_fd(), sigchld.as_raw_fd()], timeout) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("solo launcher: poll: {e}");
                sys::exit_now(1)
            }
        };
        if idle_work && !ready[0] && !ready[1] {
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
            reap(&sock);
        }
        if ready[0] {
            match sys::recv_with_fds(sock.as_raw_fd(), &mut buf) {
                Ok((0, _)) => sys::exit_now(0),
                Ok((n, fds)) => handle(&sock, &buf[..n], fds, pool.as_mut(), &mut kept),
                Err(e) if e.0 == libc::EAGAIN => {}
                Err(e) => {
                    eprintln!("solo launcher: receive: {e}");
                    sys::exit_now(1)
                }
            }
        }
    }
}

fn send(sock: &OwnedFd, reply: &Reply, fds: &[i32]) {
    let data = match serde_json::to_vec(reply) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("solo launcher: encode reply: {e}");
            return;
        }
    };
    if let Err(e) = sys::send_with_fds(sock.as_raw_fd(), &data, fds) {
        // The daemon is gone: nothing left to report to.
        eprintln!("solo launcher: send: {e}");
        sys::exit_now(0)
    }
}

fn reap(sock: &OwnedFd) {
    while let Ok(Some((pid, status))) = sys::waitpid_nohang(-1) {
        let (code, signal) = match status {
            WaitStatus::Exited(c) => (Some(c), None),
            WaitStatus::Signaled(s) => (None, Some(s)),
        };
        send(sock, &Reply::Exited { pid, code, signal }, &[]);
    }
}

/// What the launcher keeps across spawns, per profile.
#[derive(Default)]
struct Kept {
    views: Views,
    /// Seccomp filters by id (sha256), as the daemon sent them.
    filters: HashMap<String, Vec<u8>>,
}

fn handle(sock: &OwnedFd, data: &[u8], fds: Vec<OwnedFd>, pool: Option<&mut NetPool>, kept: &mut Kept) {
    let started = Instant::now();
    let mut req: Request = match serde_json::from_slice(data) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("solo launcher: malformed request: {e}");
            return;
        }
    };
    let id = req.id;
    let fail =
        |e: StepError| Reply::Failed { id, step: e.step.name().to_owned(), errno: e.errno.0, message: e.to_string() };
    // First, whatever else is wrong with the request: the daemon counts a
    // filter as sent once the message went out, so it must be kept.
    if let Some(f) = req.plan.confine.seccomp.as_mut() {
        if !f.resolve(&mut kept.filters) {
            // The daemon sends a filter whole before it refers to it; a
            // reference to one this launcher never got is the daemon's bug.
            let e = StepError { step: steps::Step::Prepare, errno: sys::Errno(libc::ENOENT) };
            send(sock, &fail(e), &[]);
            return;
        }
    }
    let mut fds = fds.into_iter();
    let (Some(stdout), Some(stderr)) = (fds.next(), fds.next()) else {
        let e = StepError { step: steps::Step::Prepare, errno: sys::Errno(libc::EBADF) };
        send(sock, &fail(e), &[]);
        return;
    };
    let passed: Vec<OwnedFd> = fds.collect();
    // Refused before anything is opened, saying why.
    let refuse = |errno: i32, why: String| {
        let e = StepError { step: steps::Step::Prepare, errno: sys::Errno(errno) };
        Reply::Failed { id, step: e.step.name().to_owned(), errno, message: format!("{e}: {why}") }
    };
    if let Err(why) = req.plan.check() {
        send(sock, &refuse(libc::EINVAL, why), &[]);
        return;
    }
    if passed.len() != req.plan.fds.len() {
        let why = format!("{} descriptors named, {} sent", req.plan.fds.len(), passed.len());
        send(sock, &refuse(libc::EBADF, why), &[]);
        return;
    }
    let netns = if req.plan.confine.namespaces.net { pool.and_then(NetPool::take) } else { None };
    match launch(&req, stdout, stderr, passed, netns, &mut kept.views) {
        Ok(l) => {
            let spawn_us = started.elapsed().as_micros() as u64;
            let mut fds = vec![l.pidfd.as_raw_fd()];
            if let Some(f) = &l.listener {
                fds.push(f.as_raw_fd());
            }
            let reply =
                Reply::Spawned { id, pid: l.pid, spawn_us, listener: l.listener.is_some(), enforcement: l.enforcement };
            send(sock, &reply, &fds);
        }
        Err(e) => send(sock, &fail(e), &[]),
    }
}

struct Launched {
    pid: i32,
    pidfd: OwnedFd,
    listener: Option<OwnedFd>,
    enforcement: Enforcement,
}

/// Prepares, clones, and follows the child through its steps: it reports
/// Landlock's outcome and its seccomp listener, then execs (the report pipe
/// closes) or reports the step that failed.
fn launch(
    req: &Request,
    stdout: OwnedFd,
    stderr: OwnedFd,
    passed: Vec<OwnedFd>,
    netns: Option<OwnedFd>,
    views: &mut Views,
) -> Result<Launched, StepError> {
    let prepared = steps::prepare(&req.plan, stdout, stderr, passed, netns, views)?;
    let prep_err = |errno| StepError { step: steps::Step::Prepare, errno };
    let (rep_r, rep_w) = sys::pipe(0).map_err(prep_err)?;
    let (ack_r, ack_w) = sys::pipe(0).map_err(prep_err)?;
    let cgroup = prepared.cgroup_v2.as_ref().map(|f| f.as_raw_fd());
    let (pid, pidfd) = match sys::clone3(prepared.clone_flags, cgroup) {
        Err(errno) => return Err(StepError { step: steps::Step::Clone, errno }),
        Ok(Forked::Child) => {
            drop((rep_r, ack_w));
            let ch = steps::Channel { report: rep_w.as_raw_fd(), ack: ack_r.as_raw_fd() };
            let e = steps::apply(&prepared, &ch);
            let _ = sys::write_all(rep_w.as_raw_fd(), &e.encode());
            sys::exit_now(127)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
    };
    drop((rep_w, ack_r));
    let missing = prepared.mounts.as_ref().map(|m| m.missing.clone()).unwrap_or_default();
    let memfd_noexec = prepared.mounts.as_ref().and_then(|m| m.memfd_noexec);
    let plan = &req.plan.confine;
    drop(prepared);
    let mut landlock = None;
    let mut listener = None;
    let fail = |e: StepError| {
        let _ = sys::waitpid_blocking(pid);
        Err(e)
    };
    loop {
        let mut b = [0u8; 8];
        let n = sys::read_full(rep_r.as_raw_fd(), &mut b).unwrap_or(0);
        if n < 8 {
            break; // exec'd: the close-on-exec pipe closed
        }
        let code = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let value = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        match code {
            steps::REPORT_LANDLOCK => landlock = Some(landlock::Outcome::from_i32(value)),
            steps::REPORT_LISTENER => {
                match sys::pidfd_getfd(pidfd.as_raw_fd(), value) {
                    Ok(fd) => listener = Some(fd),
                    Err(errno) => {
                        let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
                        return fail(StepError { step: steps::Step::Seccomp, errno });
                    }
                }
                let _ = sys::write_all(ack_w.as_raw_fd(), b"k");
            }
            _ => return fail(StepError::decode(&b)),
        }
    }
    Ok(Launched { pid, pidfd, listener, enforcement: enforcement(plan, &missing, memfd_noexec, landlock) })
}

/// What was enforced, layer by layer, for the daemon to record.
fn enforcement(
    c: &Confinement,
    missing: &[String],
    memfd_noexec: Option<bool>,
    landlock: Option<landlock::Outcome>,
) -> Enforcement {
    let mut layers = Vec::new();
    let mut layer =
        |name: &str, state: &str, detail: String| layers.push(Layer { name: name.into(), state: state.into(), detail });
    let ns = &c.namespaces;
    let mut kinds = vec![];
    if c.fs.is_some() {
        kinds.push("mount");
    }
    for (on, k) in
        [(ns.pid, "pid"), (ns.ipc, "ipc"), (ns.uts, "uts"), (ns.net, "net"), (ns.cgroup, "cgroup"), (ns.user, "user")]
    {
        if on {
            kinds.push(k);
        }
    }
    layer("namespaces", "enforced", kinds.join(","));
    match &c.fs {
        Some(_) if missing.is_empty() => layer("filesystem", "enforced", "a private copy of the profile's view (pivot_root, host tree detached)".into()),
        Some(_) => layer(
            "filesystem",
            "enforced",
            format!(
                "a private copy of the profile's view (pivot_root, host tree detached); not on this host, so not in the view: {}",
                missing.join(" ")
            ),
        ),
        None => layer("filesystem", "off", "the launcher's own view".into()),
    }
    match memfd_noexec {
        Some(true) => layer("memfd", "enforced", "vm.memfd_noexec = 2: no executable memfd".into()),
        Some(false) => layer(
            "memfd",
            "off",
            "this kernel has no vm.memfd_noexec (Linux 6.3+): code written to a memfd can be executed (degraded)"
                .into(),
        ),
        None => layer("memfd", "off", "no pid namespace of its own: the host's vm.memfd_noexec applies".into()),
    }
    layer("capabilities", "enforced", "none in any of the five sets; no_new_privs".into());
    let abi = landlock::kernel_abi();
    match (c.landlock.as_ref(), landlock) {
        (None, _) => layer("landlock", "off", "not requested".into()),
        (Some(_), Some(landlock::Outcome::Full)) => {
            layer("landlock", "enforced", format!("ABI {abi}: {}", landlock::abi_features(abi)))
        }
        (Some(r), Some(landlock::Outcome::Partial)) => layer(
            "landlock",
            "partial",
            format!("ABI {abi} (profile asks {}): {}", r.min_abi, landlock::abi_features(abi)),
        ),
        (Some(_), _) => layer("landlock", "off", "this kernel has no Landlock (degraded)".into()),
    }
    match &c.seccomp {
        Some(f) => layer(
            "seccomp",
            "enforced",
            format!("allow-list of {} BPF instructions; denials reported", f.bpf.len() / 8),
        ),
        None => layer("seccomp", "off", "not requested".into()),
    }
    Enforcement { layers }
}
