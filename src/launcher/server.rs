//! The launcher's loop: receive a plan, prepare, clone3, report; reap
//! children and report their exits. Exits when the daemon's end closes.

use super::protocol::{Reply, Request, MAX_MESSAGE};
use crate::sandbox::steps::{self, StepError};
use crate::sandbox::sys::{self, Forked, WaitStatus};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

/// Runs the launcher on `sock` (its stdin). Never returns.
pub fn run(sock: OwnedFd) -> ! {
    // If the daemon dies, so does the launcher; services live on (they are
    // reparented to the next subreaper) and are found again on restart.
    let _ = sys::set_parent_death_signal(libc::SIGKILL);
    if let Err(e) = sys::set_child_subreaper() {
        eprintln!("solo launcher: cannot become a child subreaper: {e}");
    }
    let sigchld = match sys::sigchld_fd() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("solo launcher: cannot watch SIGCHLD: {e}");
            sys::exit_now(1)
        }
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let ready = match sys::poll_readable(&[sock.as_raw_fd(), sigchld.as_raw_fd()], -1) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("solo launcher: poll: {e}");
                sys::exit_now(1)
            }
        };
        if ready[1] {
            sys::drain(sigchld.as_raw_fd());
            reap(&sock);
        }
        if ready[0] {
            match sys::recv_with_fds(sock.as_raw_fd(), &mut buf) {
                Ok((0, _)) => sys::exit_now(0),
                Ok((n, fds)) => handle(&sock, &buf[..n], fds),
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

fn handle(sock: &OwnedFd, data: &[u8], fds: Vec<OwnedFd>) {
    let started = Instant::now();
    let req: Request = match serde_json::from_slice(data) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("solo launcher: malformed request: {e}");
            return;
        }
    };
    let id = req.id;
    let fail =
        |e: StepError| Reply::Failed { id, step: e.step.name().to_owned(), errno: e.errno.0, message: e.to_string() };
    let mut fds = fds.into_iter();
    let (Some(stdout), Some(stderr)) = (fds.next(), fds.next()) else {
        let e = StepError { step: steps::Step::Prepare, errno: sys::Errno(libc::EBADF) };
        send(sock, &fail(e), &[]);
        return;
    };
    match launch(&req, stdout, stderr) {
        Ok((pid, pidfd)) => {
            let spawn_us = started.elapsed().as_micros() as u64;
            send(sock, &Reply::Spawned { id, pid, spawn_us }, &[pidfd.as_raw_fd()]);
        }
        Err(e) => send(sock, &fail(e), &[]),
    }
}

/// Prepares, clones and waits for the child to exec (the error pipe closes)
/// or to report the step that failed.
fn launch(req: &Request, stdout: OwnedFd, stderr: OwnedFd) -> Result<(i32, OwnedFd), StepError> {
    let prepared = steps::prepare(&req.plan, stdout, stderr)?;
    let (err_r, err_w) = sys::pipe(0).map_err(|errno| StepError { step: steps::Step::Prepare, errno })?;
    let cgroup = prepared.cgroup_v2.as_ref().map(|f| f.as_raw_fd());
    match sys::clone3(0, cgroup) {
        Err(errno) => Err(StepError { step: steps::Step::Clone, errno }),
        Ok(Forked::Child) => {
            drop(err_r);
            let e = steps::apply(&prepared);
            let _ = sys::write_all(err_w.as_raw_fd(), &e.encode());
            sys::exit_now(127)
        }
        Ok(Forked::Parent { pid, pidfd }) => {
            drop(err_w);
            drop(prepared);
            let mut b = [0u8; 8];
            let n = sys::read_full(err_r.as_raw_fd(), &mut b).unwrap_or(0);
            if n == 8 {
                let _ = sys::waitpid_blocking(pid);
                return Err(StepError::decode(&b));
            }
            Ok((pid, pidfd))
        }
    }
}
