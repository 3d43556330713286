//! Denied syscalls: the supervisor's end of each instance's seccomp
//! listener. Every syscall outside the profile's allow list blocks its
//! caller until this task has recorded it (an event on `Watch` and in the
//! event store, and a counter in `Status`) and answered as the profile's
//! `default_action` says.

use super::events::{Event, EventKind};
use super::service::Service;
use super::Supervisor;
use crate::profiles::SeccompAction;
use crate::sandbox::seccomp;
use crate::sandbox::sys::{self, Pending};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many denial events per instance per second reach the bus
/// and the store; the rest are counted and summarised (a hostile service
/// must not flood the event store).
const EVENTS_PER_SECOND: u32 = 50;

/// Watches `listener` until every process under the filter is gone.
pub fn watch(
    sup: Arc<Supervisor>,
    svc: Arc<Service>,
    replica: u32,
    main_pid: i32,
    listener: OwnedFd,
    action: SeccompAction,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let fd = match super::launch::register_fd(listener) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!(service = %svc.id(), replica, error = %e, "cannot watch seccomp denials");
                return;
            }
        };
        let mut window = (Instant::now(), 0u32, 0u64);
        loop {
            let mut guard = match fd.readable().await {
                Ok(g) => g,
                Err(_) => return,
            };
            loop {
                match sys::notif_pending(fd.get_ref().as_raw_fd()) {
                    Pending::Nothing => break,
                    Pending::Hangup => return,
                    Pending::Notification => {}
                }
                let n = match sys::notif_recv(fd.get_ref().as_raw_fd()) {
                    Ok(n) => n,
                    // The caller died before we received it.
                    Err(_) => continue,
                };
                handle(&sup, &svc, replica, main_pid, fd.get_ref(), n, action, &mut window);
            }
            guard.clear_ready();
        }
    })
}

/// The process (thread group) of thread `tid`, from its status.
fn thread_group(tid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(tid)
}

#[allow(clippy::too_many_arguments)]
fn handle(
    sup: &Supervisor,
    svc: &Service,
    replica: u32,
    main_pid: i32,
    listener: &OwnedFd,
    n: sys::Notification,
    action: SeccompAction,
    window: &mut (Instant, u32, u64),
) {
    let lfd = listener.as_raw_fd();
    let name = seccomp::name_of(n.syscall);
    let verb = match action {
        SeccompAction::Errno => "errno",
        SeccompAction::KillProcess => "kill_process",
        SeccompAction::Log => "log",
    };
    let mut killed_main = false;
    match action {
        SeccompAction::Log => {
            let _ = sys::notif_respond(lfd, n.id, 0, true);
        }
        SeccompAction::Errno => {
            let _ = sys::notif_respond(lfd, n.id, libc::EPERM, false);
        }
        SeccompAction::KillProcess => {
            // Open the caller and check the notification is still pending
            // (so the pid was not reused), then kill it.
            // The caller may be a thread: its process is the thread group.
            let tgid = thread_group(n.pid as i32);
            if let Ok(pidfd) = sys::pidfd_open(tgid) {
                if sys::notif_id_valid(lfd, n.id) {
                    killed_main = tgid == main_pid;
                    if killed_main {
                        svc.update(replica, |i, _| i.killed_by_filter = Some(name.clone()));
                    }
                    let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
                }
            }
            let _ = sys::notif_respond(lfd, n.id, libc::EPERM, false);
        }
    }
    svc.update(replica, |i, _| i.seccomp_denials += 1);
    sup.denials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = Instant::now();
    if now.duration_since(window.0) >= Duration::from_secs(1) {
        if window.2 > 0 {
            let mut ev = Event::new(EventKind::SeccompDenied, svc.id(), replica);
            ev.message = format!("{} more denied syscalls in the last second not shown one by one", window.2);
            sup.bus.emit(ev);
        }
        *window = (now, 0, 0);
    }
    if window.1 >= EVENTS_PER_SECOND {
        window.2 += 1;
        return;
    }
    window.1 += 1;
    tracing::info!(service = %svc.id(), replica, pid = n.pid, syscall = %name, action = verb, "seccomp denied a syscall");
    let mut ev = Event::new(EventKind::SeccompDenied, svc.id(), replica);
    ev.pid = n.pid as i32;
    ev.syscall = name.clone();
    ev.action = verb.to_owned();
    ev.message = if killed_main {
        format!("denied {name} (kill_process): the service's main process was killed by its filter")
    } else {
        format!("denied {name} ({verb})")
    };
    sup.bus.emit(ev);
}
