//! Denied syscalls: the supervisor's end of each instance's seccomp
//! listener. Every syscall outside the profile's allow list blocks its
//! caller until this task has recorded it (an event on `Watch` and in the
//! event store, a line in the service's log, and a counter and the call's
//! name in `Status`) and answered as the profile's `default_action` says.
//!
//! Under `kill_process` with a grace (`kill_grace_ms`, strict's is one
//! second) the call fails with EPERM and the calling process is killed
//! when the grace ends unless it has exited by then, so a program can
//! still write what it has to say (buffered output, an error message) and
//! exit; one that goes on probing is killed at its
//! [`KILL_AFTER_DENIALS`]th denied call. Kills go through a pidfd opened
//! while the call was still pending, so a reused pid is never hit.

use super::events::{Event, EventKind};
use super::policy::Policy;
use super::service::Service;
use super::Supervisor;
use crate::audit::{Kind, Record};
use crate::profiles::{SeccompAction, KILL_AFTER_DENIALS};
use crate::sandbox::seccomp;
use crate::sandbox::sys::{self, Pending};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many denial events (and log lines) per instance per
/// second reach the bus and the store; the rest are counted and summarised
/// (a hostile service must not flood the event store).
const EVENTS_PER_SECOND: u32 = 50;

/// What a denial gets, from the instance's profile.
struct Rules {
    action: SeccompAction,
    /// `kill_process` only: time to exit before the kill (zero: at once).
    grace: Duration,
    profile: String,
}

/// A process under a `kill_process` grace: it made a denied call and is
/// killed when its grace ends, or at its [`KILL_AFTER_DENIALS`]th call.
struct Doomed {
    pidfd: Arc<OwnedFd>,
    denials: u32,
}

/// The watcher's state between notifications.
struct State {
    /// (start of the current second, events in it, events not shown).
    window: (Instant, u32, u64),
    doomed: HashMap<i32, Doomed>,
}

/// Watches `listener` until every process under the filter is gone.
pub fn watch(
    sup: Arc<Supervisor>,
    svc: Arc<Service>,
    replica: u32,
    main_pid: i32,
    listener: OwnedFd,
    policy: &Policy,
) -> tokio::task::JoinHandle<()> {
    let s = &policy.profile.seccomp;
    let rules = Rules {
        action: s.default_action,
        grace: Duration::from_millis(u64::from(s.kill_grace_ms)),
        profile: policy.profile.name.clone(),
    };
    tokio::spawn(async move {
        let fd = match super::launch::register_fd(listener) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!(service = %svc.id(), replica, error = %e, "cannot watch seccomp denials");
                return;
            }
        };
        let mut st = State { window: (Instant::now(), 0, 0), doomed: HashMap::new() };
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
                handle(&sup, &svc, replica, main_pid, fd.get_ref(), n, &rules, &mut st);
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

/// What happened to the caller, for the event and the log line.
enum Outcome {
    /// `log`: the call ran.
    Allowed,
    /// The call failed with EPERM; the process goes on.
    Failed,
    /// The call failed with EPERM; the process is killed when its grace ends.
    Doomed(Duration),
    /// The process was killed.
    Killed,
}

#[allow(clippy::too_many_arguments)]
fn handle(
    sup: &Arc<Supervisor>,
    svc: &Arc<Service>,
    replica: u32,
    main_pid: i32,
    listener: &OwnedFd,
    n: sys::Notification,
    rules: &Rules,
    st: &mut State,
) {
    let lfd = listener.as_raw_fd();
    let name = seccomp::name_of(n.syscall);
    // What was asked, where the arguments say it safely: the address
    // family of a refused socket or socketpair.
    let call = match name.as_str() {
        "socket" | "socketpair" => format!("{name}({})", seccomp::family_name(n.args[0])),
        _ => name.clone(),
    };
    let verb = match rules.action {
        SeccompAction::Errno => "errno",
        SeccompAction::KillProcess => "kill_process",
        SeccompAction::Log => "log",
    };
    // The caller may be a thread: its process is the thread group.
    let tgid = thread_group(n.pid as i32);
    let outcome = match rules.action {
        SeccompAction::Log => {
            let _ = sys::notif_respond(lfd, n.id, 0, true);
            Outcome::Allowed
        }
        SeccompAction::Errno => {
            let _ = sys::notif_respond(lfd, n.id, libc::EPERM, false);
            Outcome::Failed
        }
        SeccompAction::KillProcess => {
            let outcome = doom(sup, svc, replica, main_pid, tgid, lfd, n.id, &call, rules, st);
            let _ = sys::notif_respond(lfd, n.id, libc::EPERM, false);
            outcome
        }
    };
    svc.update(replica, |i, _| {
        i.seccomp_denials += 1;
        i.last_denied = Some(call.clone());
    });
    sup.denials.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Every denial reaches the audit log, coalesced per call and action
    // (the first at once, repeats counted), before any rate limit below.
    sup.audit_coalesced(
        &format!("denied/{}/{replica}/{call}/{verb}", svc.id()),
        Record::new(Kind::SyscallDenied, svc.id())
            .message(format!("replica {replica}: {call} denied ({verb}) by profile {}", rules.profile))
            .with("replica", replica)
            .with("syscall", name.clone())
            .with("call", call.clone())
            .with("action", verb)
            .with("profile", rules.profile.clone())
            .with("pid", n.pid),
    );
    let now = Instant::now();
    let window = &mut st.window;
    if now.duration_since(window.0) >= Duration::from_secs(1) {
        if window.2 > 0 {
            let mut ev = Event::of(EventKind::SeccompDenied, svc, replica);
            ev.message = format!("{} more denied syscalls in the last second not shown one by one", window.2);
            svc.logs.note(&sup.bus, replica, 0, ev.message.clone());
            sup.bus.emit(ev);
        }
        *window = (now, 0, 0);
    }
    if window.1 >= EVENTS_PER_SECOND {
        window.2 += 1;
        return;
    }
    window.1 += 1;
    tracing::info!(service = %svc.id(), replica, pid = n.pid, syscall = %call, action = verb, "seccomp denied a syscall");
    let main = tgid == main_pid;
    let whose = if main { format!("main process {tgid}") } else { format!("process {tgid}") };
    let mut ev = Event::of(EventKind::SeccompDenied, svc, replica);
    ev.pid = n.pid as i32;
    ev.syscall = name;
    ev.action = verb.to_owned();
    ev.message = match outcome {
        Outcome::Killed if main => {
            format!("denied {call} (kill_process): the service's main process was killed by its filter")
        }
        Outcome::Doomed(g) => format!(
            "denied {call} (kill_process): the call failed with EPERM; the {whose} is killed in {} ms unless it exits",
            g.as_millis()
        ),
        _ => format!("denied {call} ({verb})"),
    };
    // The same in the service's own log, so `solo logs` says why.
    let note = match outcome {
        Outcome::Allowed => format!("{call} is not allowed by profile {} but ran (default_action = log)", rules.profile),
        Outcome::Failed => format!("denied {call} (not allowed by profile {}): the call failed with EPERM", rules.profile),
        Outcome::Doomed(g) => format!(
            "denied {call} (not allowed by profile {}): the call failed with EPERM; the {whose} is killed in {} ms unless it exits",
            rules.profile,
            g.as_millis()
        ),
        Outcome::Killed => format!("denied {call} (not allowed by profile {}): the {whose} was killed", rules.profile),
    };
    svc.logs.note(&sup.bus, replica, n.pid as i32, note);
    sup.bus.emit(ev);
}

/// `kill_process`: kills the calling process now, or when its grace ends
/// (a timer), or now if it has used up [`KILL_AFTER_DENIALS`].
#[allow(clippy::too_many_arguments)]
fn doom(
    sup: &Arc<Supervisor>,
    svc: &Arc<Service>,
    replica: u32,
    main_pid: i32,
    tgid: i32,
    lfd: std::os::fd::RawFd,
    id: u64,
    call: &str,
    rules: &Rules,
    st: &mut State,
) -> Outcome {
    // A process met before is the same one only while it lives (pids are
    // reused within the instance's namespace); dead ones are forgotten, so
    // the table (and its pidfds) stays within the instance's pids limit.
    let alive = |d: &Doomed| sys::pidfd_send_signal(&d.pidfd, 0).is_ok();
    if st.doomed.get(&tgid).is_some_and(|d| !alive(d)) {
        st.doomed.remove(&tgid);
    }
    if st.doomed.len() >= 32 {
        st.doomed.retain(|_, d| alive(d));
    }
    if let std::collections::hash_map::Entry::Vacant(slot) = st.doomed.entry(tgid) {
        // Open the caller and check the notification is still pending, so
        // the pidfd is the caller's and not a reuse of its pid.
        let Ok(pidfd) = sys::pidfd_open(tgid) else { return Outcome::Failed };
        if !sys::notif_id_valid(lfd, id) {
            return Outcome::Failed;
        }
        let pidfd = Arc::new(pidfd);
        slot.insert(Doomed { pidfd: pidfd.clone(), denials: 0 });
        if !rules.grace.is_zero() {
            let (sup, svc, call, grace) = (sup.clone(), svc.clone(), call.to_owned(), rules.grace);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if kill(&svc, replica, main_pid, tgid, &pidfd, &call) {
                    let why = format!("it was still running {} ms after its filter denied {call}", grace.as_millis());
                    svc.logs.note(&sup.bus, replica, tgid, format!("killed process {tgid}: {why}"));
                }
            });
        }
    }
    let Some(d) = st.doomed.get_mut(&tgid) else { return Outcome::Failed };
    d.denials += 1;
    if rules.grace.is_zero() || d.denials >= KILL_AFTER_DENIALS {
        kill(svc, replica, main_pid, tgid, &d.pidfd, call);
        return Outcome::Killed;
    }
    Outcome::Doomed(rules.grace)
}

/// SIGKILL through `pidfd`; the main process's kill is remembered for its
/// exit (reason, quarantine). False when it had already exited.
fn kill(svc: &Service, replica: u32, main_pid: i32, tgid: i32, pidfd: &OwnedFd, call: &str) -> bool {
    if tgid == main_pid {
        // Before the signal: the exit may be reported as soon as it lands.
        // A process that exited by itself in between exits with a code, and
        // the reason is only used with a SIGKILL.
        svc.update(replica, |i, _| i.killed_by_filter = Some(call.to_owned()));
    }
    sys::pidfd_send_signal(pidfd, libc::SIGKILL).is_ok()
}
