//! One task per replica: launch, wait for exit or a stop request, clean the
//! cgroup, apply the restart policy, back off, launch again.
//!
//! Invariant: when this task ends, its instance has no live process and no
//! cgroup directory left.

use super::events::now_ms;
use super::events::{Event, EventKind, Stream};
use super::launch::{LaunchError, Spawned};
use super::logs;
use super::restart::{self, Decision, Exit, ExitCause, ExitHow, Tracker};
use super::service::{InstanceState, Service, StopMode};
use super::stopping::{stop, Stops};
use super::{denials, policy, Supervisor};
use crate::audit::Kind;
use crate::profiles::OnViolation;
use crate::sandbox::cgroup::{CgroupLimits, InstanceCgroup};
use crate::sandbox::plan::{LaunchPlan, Rlimit};
use crate::sandbox::sys::{self, WaitStatus};
use crate::spec::grant::ReadinessKind;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An instance a previous daemon started and the launcher kept running:
/// its process and the daemon-side descriptors the launcher kept for it.
pub struct Adopted {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub exit: tokio::sync::oneshot::Receiver<WaitStatus>,
    pub listener: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub control: Option<OwnedFd>,
    pub enforcement: crate::sandbox::plan::Enforcement,
    pub spawn_us: u64,
    pub started_at_ms: i64,
    pub restart_count: u32,
}

/// Starts the task for `replica` and counts it alive. `prepared`: its
/// cgroup already exists with its limits ([`prepare`]).
pub fn start(sup: Arc<Supervisor>, svc: Arc<Service>, replica: u32, prepared: bool) {
    spawn_task(sup, svc, replica, prepared, None);
}

/// Starts the task for `replica` around a process that is already running
/// (re-adoption after a daemon crash or re-exec): it is supervised from
/// here on exactly like one this daemon launched.
pub fn adopt(sup: Arc<Supervisor>, svc: Arc<Service>, replica: u32, adopted: Adopted) {
    spawn_task(sup, svc, replica, true, Some(adopted));
}

fn spawn_task(sup: Arc<Supervisor>, svc: Arc<Service>, replica: u32, prepared: bool, adopted: Option<Adopted>) {
    svc.alive.send_modify(|n| *n += 1);
    svc.update(replica, |i, _| {
        i.launched = true;
        i.ended = false;
    });
    tokio::spawn(async move {
        // A panic in the lifecycle is caught here (one task, not a task
        // awaiting another: a spawn and a wake-up less per launch): the
        // instance is marked failed, its cgroup still goes, and
        // Kill/Shutdown (which wait for `alive`) cannot hang on it.
        use futures::FutureExt;
        let lifecycle = std::panic::AssertUnwindSafe(run(&sup, &svc, replica, prepared, adopted));
        if let Err(panic) = lifecycle.catch_unwind().await {
            let e = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            let reason = format!("internal error: the supervision task panicked ({e}); kill --remove and deploy again");
            tracing::error!(service = %svc.id(), replica, "{reason}");
            svc.update(replica, |i, failure| {
                i.state = InstanceState::Failed;
                *failure = Some(reason.clone());
            });
            sup.audit_instance(Kind::Failed, svc.id(), replica, &reason);
            let mut ev = Event::of(EventKind::Failed, &svc, replica);
            ev.message = reason;
            sup.bus.emit(ev);
        }
        // The cgroup lives as long as the task (it is reused across
        // restarts); whatever path ended the task, it goes now.
        let cg = svc.runtime().instances[replica as usize].cgroup.clone();
        cleanup(&cg).await;
        svc.update(replica, |i, _| {
            i.ended = true;
            i.frozen = false;
        });
        svc.alive.send_modify(|n| *n -= 1);
        svc.changed.notify_waiters();
    });
}

enum Ended {
    /// The process exited by itself, observed at this instant.
    Exit(Exit, Instant),
    Stopped(Exit),
}

async fn run(sup: &Arc<Supervisor>, svc: &Arc<Service>, replica: u32, prepared: bool, adopted: Option<Adopted>) {
    let mut stops = Stops::new(svc, replica);
    let mut tracker = Tracker::default();
    let mut restarting: Option<Restarting> = None;
    let mut created = prepared;
    let mut adopted = adopted;
    if let Some(a) = &adopted {
        let n = a.restart_count;
        svc.update(replica, |i, _| i.restart_count = n);
    }
    let key = super::launch::instance_key(svc.id(), svc.revision, replica);
    loop {
        if stops.mode().is_some() {
            svc.update(replica, |i, _| i.state = InstanceState::Exited);
            return;
        }
        svc.update(replica, |i, _| {
            i.state = InstanceState::Starting;
            // Every attempt after the first is a restart, launched or not.
            if restarting.is_some() {
                i.restart_count += 1;
            }
        });
        let cg = svc.runtime().instances[replica as usize].cgroup.clone();
        let started = Instant::now();
        let mut how = match restarting.take() {
            Some(r) => Running::Restarted(r),
            None => Running::Started,
        };
        let launched = match adopted.take() {
            Some(a) => {
                how = Running::Adopted(a.started_at_ms);
                resume(sup, svc, replica, a)
            }
            None => launch(sup, svc, replica, &cg, &mut created).await,
        };
        let ended = match launched {
            Ok((sp, ready)) => {
                let Spawned { pid, pidfd, spawn_us, mut exit, listener, enforcement } = sp;
                let pidfd = Arc::new(pidfd);
                let mut denied_before = 0;
                svc.update(replica, |i, _| {
                    i.enforcement = enforcement;
                    i.killed_by_filter = None;
                    i.killed_for_limit = None;
                    denied_before = i.seccomp_denials;
                });
                let denials = match (listener, sup.policies.get(&svc.spec.profile)) {
                    (Some(l), Some(policy)) => Some(denials::watch(sup.clone(), svc.clone(), replica, pid, l, policy)),
                    _ => None,
                };
                // Running once ready: READY=1, or the granted socket accepts.
                let readiness = match ready {
                    None => Some(Ok(())),
                    Some(wait) => tokio::select! {
                        r = wait => Some(r),
                        st = &mut exit => {
                            // Exited before it was ready: hand the status on.
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            let _ = tx.send(st.unwrap_or(WaitStatus::Signaled(libc::SIGKILL)));
                            exit = rx;
                            None
                        }
                        _ = stops.requested() => None,
                    },
                };
                match readiness {
                    Some(Ok(())) => {
                        // An adopted instance was not spawned by this daemon.
                        if !matches!(how, Running::Adopted(_)) {
                            sup.metrics.spawn.observe(spawn_us as f64 / 1e6);
                            sup.metrics.startup.observe(started.elapsed().as_secs_f64());
                        }
                        let running = mark_running(svc, replica, pid, spawn_us, &pidfd, &how);
                        // A `deploy --wait` woken by that answers first: no
                        // caller waits for the bookkeeping below (event,
                        // audit record, stored state: ~70 µs), and this
                        // task does it before anything else of its own.
                        tokio::task::yield_now().await;
                        announce_running(sup, svc, replica, pid, spawn_us, how, running);
                    }
                    Some(Err(why)) => {
                        let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
                        svc.update(replica, |i, _| i.launch_error = Some(why.clone()));
                        sup.audit_instance(Kind::LaunchFailed, svc.id(), replica, &why);
                        let mut ev = Event::of(EventKind::LaunchFailed, svc, replica);
                        ev.pid = pid;
                        ev.message = why;
                        sup.bus.emit(ev);
                    }
                    None => {}
                }
                let ended = supervise(sup, svc, replica, &cg, pid, &pidfd, exit, &mut stops, denied_before).await;
                super::grants::instance_ended(svc, replica);
                // What the launcher kept for a later daemon goes with it.
                sup.launcher.forget(key.clone()).await;
                if let Some(d) = denials {
                    d.abort();
                }
                ended
            }
            Err(e) => {
                let msg = format!("launch failed: {e}");
                empty(&cg).await;
                svc.update(replica, |i, _| {
                    i.launch_error = Some(msg.clone());
                    i.pid = 0;
                });
                sup.audit_instance(Kind::LaunchFailed, svc.id(), replica, &msg);
                let mut ev = Event::of(EventKind::LaunchFailed, svc, replica);
                ev.message = msg.clone();
                sup.bus.emit(ev);
                let exit =
                    Exit { reason: msg, cause: ExitCause::Launch, ..Exit::new(ExitHow::Code(127), false, now_ms()) };
                Ended::Exit(exit, Instant::now())
            }
        };
        let exit = match ended {
            Ended::Stopped(exit) => {
                svc.update(replica, |i, _| {
                    i.state = InstanceState::Exited;
                    i.pid = 0;
                    i.pidfd = None;
                    i.last_exit = Some(exit);
                });
                record(sup, svc, replica);
                return;
            }
            Ended::Exit(exit, at) => (exit, at),
        };
        let (exit, exited_at) = exit;
        if let Some(reason) = quarantine(sup, svc, replica, &exit) {
            svc.update(replica, |i, failure| {
                i.state = InstanceState::Quarantined;
                i.pid = 0;
                i.pidfd = None;
                i.last_exit = Some(exit.clone());
                *failure = Some(reason.clone());
            });
            // Kept across daemon restarts, like a failure.
            if let Err(e) = record_failure(sup, svc, &reason).await {
                tracing::warn!(error = %e, "cannot record the quarantine");
            }
            sup.audit_instance(Kind::Quarantine, svc.id(), replica, &reason);
            let mut ev = Event::of(EventKind::Quarantined, svc, replica);
            ev.message = reason;
            ev.exit = Some(exit);
            sup.bus.emit(ev);
            record(sup, svc, replica);
            return;
        }
        let now = Instant::now();
        let decision =
            restart::decide(&svc.spec.restart, &exit, now - started, now, &mut tracker, rand::random::<f64>());
        svc.update(replica, |i, _| {
            i.pid = 0;
            i.pidfd = None;
            i.last_exit = Some(exit.clone());
        });
        match decision {
            Decision::Done => {
                svc.update(replica, |i, _| i.state = InstanceState::Exited);
                record(sup, svc, replica);
                return;
            }
            Decision::GiveUp { reason } => {
                svc.update(replica, |i, failure| {
                    i.state = InstanceState::Failed;
                    *failure = Some(reason.clone());
                });
                // Remembered across daemon restarts: a failed service is not
                // silently retried by a restart of the supervisor.
                if let Err(e) = record_failure(sup, svc, &reason).await {
                    tracing::warn!(error = %e, "cannot record the failure");
                }
                sup.audit_instance(Kind::Failed, svc.id(), replica, &reason);
                let mut ev = Event::of(EventKind::Failed, svc, replica);
                ev.message = reason;
                ev.exit = Some(exit);
                sup.bus.emit(ev);
                record(sup, svc, replica);
                return;
            }
            Decision::Restart { delay, attempt } => {
                svc.update(replica, |i, _| i.state = InstanceState::Backoff);
                let mut ev = Event::of(EventKind::Backoff, svc, replica);
                // Rounded up: a jittered 999 µs is not "0 ms".
                ev.delay_ms = (delay.as_micros() as u64).div_ceil(1000);
                ev.message = format!("restarting in {:.1} ms (attempt {attempt})", delay.as_secs_f64() * 1000.0);
                sup.audit_restart(svc.id(), replica, &exit, attempt, ev.delay_ms);
                sup.bus.emit(ev);
                record(sup, svc, replica);
                let asleep = Instant::now();
                // The delay counts from the exit, not from the end of the
                // bookkeeping after it.
                tokio::select! {
                    _ = tokio::time::sleep_until((exited_at + delay).into()) => {}
                    _ = stops.requested() => {}
                }
                // The timer may overshoot the nominal delay: what is
                // subtracted from exit → running is what was really slept.
                restarting = Some(Restarting { exited_at, delay, slept: asleep.elapsed() });
            }
        }
    }
}

/// How an instance came to be running.
enum Running {
    /// Its first launch.
    Started,
    /// A launch after an exit.
    Restarted(Restarting),
    /// Launched by a previous daemon at this time (Unix ms), re-adopted.
    Adopted(i64),
}

/// A restart in progress: when the previous instance exited, the nominal
/// backoff delay, and how long the task actually slept.
struct Restarting {
    exited_at: Instant,
    delay: Duration,
    slept: Duration,
}

/// The instance is running: its state (which wakes a waiting `deploy
/// --wait`). Returns its restart count and start time.
fn mark_running(
    svc: &Service,
    replica: u32,
    pid: i32,
    spawn_us: u64,
    pidfd: &Arc<OwnedFd>,
    how: &Running,
) -> (u32, i64) {
    let (started_at_ms, started_at) = match how {
        Running::Adopted(at) => {
            let ago = (super::events::now_ms() - at).max(0) as u64;
            (*at, Instant::now().checked_sub(Duration::from_millis(ago)).unwrap_or_else(Instant::now))
        }
        _ => (super::events::now_ms(), Instant::now()),
    };
    let restart_count = svc.update(replica, |i, _| {
        i.state = InstanceState::Running;
        i.pid = pid;
        i.pidfd = Some(pidfd.clone());
        i.started_at_ms = started_at_ms;
        i.started_at = Some(started_at);
        i.spawn_us = spawn_us;
        i.launch_error = None;
        i.ever_running = true;
        i.restart_count
    });
    (restart_count, started_at_ms)
}

/// What follows [`mark_running`]: the event, the audit record and the
/// instance's stored state. `running`: what `mark_running` returned.
fn announce_running(
    sup: &Supervisor,
    svc: &Service,
    replica: u32,
    pid: i32,
    spawn_us: u64,
    how: Running,
    (restart_count, started_at_ms): (u32, i64),
) {
    let adopted = matches!(how, Running::Adopted(_));
    let mut ev = match how {
        Running::Adopted(_) => {
            let mut ev = Event::of(EventKind::Adopted, svc, replica);
            ev.message = format!("re-adopted pid {pid} (running since {started_at_ms}; restart {restart_count})");
            ev
        }
        Running::Restarted(r) => {
            let mut ev = Event::of(EventKind::Restarted, svc, replica);
            let restart_us = r.exited_at.elapsed().saturating_sub(r.slept).as_micros() as u64;
            ev.restart_us = restart_us;
            ev.delay_ms = (r.delay.as_micros() as u64).div_ceil(1000);
            ev.message = format!(
                "restarted with pid {pid} (restart {restart_count}; exit to running {restart_us} µs besides the {} µs backoff sleep)",
                r.slept.as_micros()
            );
            ev
        }
        Running::Started => {
            let mut ev = Event::of(EventKind::Started, svc, replica);
            ev.message = format!("started with pid {pid} (spawn {spawn_us} µs)");
            ev
        }
    };
    ev.pid = pid;
    ev.spawn_us = spawn_us;
    ev.restart_count = restart_count;
    sup.bus.emit(ev);
    sup.audit_start(svc, replica, pid, restart_count, adopted);
    record(sup, svc, replica);
}

/// Stores a failure (or quarantine) as the service's, so a daemon restart
/// does not retry it: only for the revision the service runs. A revision
/// being rolled out that fails is the update's business (it rolls back),
/// and must not leave the service failed.
async fn record_failure(sup: &Supervisor, svc: &Arc<Service>, reason: &str) -> Result<(), crate::store::StoreError> {
    match sup.get(svc.id()) {
        Ok(current) if Arc::ptr_eq(&current, svc) => sup.store.set_failure(svc.id(), reason).await,
        _ => Ok(()),
    }
}

/// Writes the instance's latest state to the store (best effort).
fn record(sup: &Supervisor, svc: &Service, replica: u32) {
    let (pid, state, restarts, started, last) = {
        let rt = svc.runtime();
        let i = &rt.instances[replica as usize];
        (
            i.pid,
            i.state,
            i.restart_count,
            i.started_at_ms,
            i.last_exit.as_ref().map(|e| e.reason.clone()).unwrap_or_default(),
        )
    };
    sup.store.record_instance(svc.id(), svc.revision, replica, pid, state.as_str(), restarts, started, &last);
}

fn limits(svc: &Service) -> CgroupLimits {
    cgroup_limits(&svc.spec.limits)
}

pub fn cgroup_limits(l: &crate::spec::Limits) -> CgroupLimits {
    use crate::sandbox::cgroup::MemoryMode;
    use crate::spec::LimitAction;
    CgroupLimits {
        memory_bytes: l.memory_bytes,
        memory_high_bytes: l.memory_high_bytes,
        memory_mode: match l.limit_exceeded_action.memory() {
            LimitAction::Throttle => MemoryMode::Throttle,
            LimitAction::Warn => MemoryMode::Warn,
            _ => MemoryMode::Kill,
        },
        cpu_weight: l.cpu_weight,
        // warn: no quota; the monitor reports usage above the limit.
        cpu_max_millicores: l.cpu_max_millicores.filter(|_| l.limit_exceeded_action.cpu() != LimitAction::Warn),
        max_pids: l.max_pids,
    }
}

/// The host side of a new service's first launch, made while its desired
/// state commits: anything left in its cgroups emptied (on the blocking
/// pool, only when something is there), the cgroups created with their
/// limits, the data dir made. The mkdirs run on the caller's task (~0.2 ms).
pub async fn prepare(
    cgroups: &[InstanceCgroup],
    limits: &CgroupLimits,
    data_dir: &std::path::Path,
    uid: u32,
) -> Result<(), String> {
    for cg in cgroups {
        empty(cg).await;
        cg.create(limits).map_err(|e| format!("step cgroup: {e}"))?;
    }
    ensure_data_dir(data_dir, uid).map_err(|e| format!("step data-dir: {e}"))
}

/// Resolves when the instance is ready, or with why it is not.
pub(super) type ReadyWait = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

async fn launch(
    sup: &Arc<Supervisor>,
    svc: &Arc<Service>,
    replica: u32,
    cg: &InstanceCgroup,
    created: &mut bool,
) -> Result<(Spawned, Option<ReadyWait>), String> {
    // Created once per instance task and reused across restarts.
    if !*created {
        // A leftover from a crashed daemon would hold stale processes.
        empty(cg).await;
        cg.create(&limits(svc)).map_err(|e| format!("step cgroup: {e}"))?;
        *created = true;
    }
    ensure_data_dir(&policy::data_dir(&sup.config.state_dir, svc.id()), svc.uid)
        .map_err(|e| format!("step data-dir: {e}"))?;
    let (out_r, out_w) = sys::pipe(0).map_err(|e| format!("step pipes: {e}"))?;
    let (err_r, err_w) = sys::pipe(0).map_err(|e| format!("step pipes: {e}"))?;
    let passed = super::grants::for_spawn(sup, svc, replica).await?;
    let notify = match svc.spec.readiness.kind {
        ReadinessKind::Notify => Some(super::readiness::NotifySocket::open(sup, svc, replica)?),
        _ => None,
    };
    let plan = plan(sup, svc, replica, cg, &passed, notify.as_ref());
    let super::grants::Passed { fds, control, owned, .. } = passed;
    // The daemon's ends, kept by the launcher too so that a daemon that
    // crashes or re-execs leaves the instance its output, its control
    // socket and the service's granted sockets (docs/architecture.md,
    // "Re-adoption").
    use std::os::fd::AsFd;
    let grant_names: Vec<String> = owned.iter().map(|(n, _)| super::launch::grant_key(n)).collect();
    let mut keep = vec![("stdout", out_r.as_fd()), ("stderr", err_r.as_fd()), ("control", control.as_fd())];
    keep.extend(grant_names.iter().map(String::as_str).zip(owned.iter().map(|(_, fd)| fd.as_fd())));
    let key = super::launch::instance_key(svc.id(), svc.revision, replica);
    let meta = serde_json::json!({ "restart_count": svc.runtime().instances[replica as usize].restart_count, "revision": svc.revision }).to_string();
    let who = super::launch::Who { key: &key, meta: &meta, keep: &keep };
    let sp = match sup.launcher.spawn(plan, who, out_w, err_w, fds).await {
        Ok(sp) => sp,
        Err(e) => {
            return Err(match e {
                LaunchError::Step { message, .. } => message,
                other => other.to_string(),
            })
        }
    };
    for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
        tokio::spawn(logs::pump(svc.logs.clone(), sup.bus.clone(), fd, replica, sp.pid, stream));
    }
    // The task ends when every process holding the service's end is gone.
    super::grants::serve_control(sup.clone(), svc.clone(), replica, control)?;
    let ready = super::readiness::wait(svc, notify, cg);
    Ok((sp, ready))
}

/// An adopted instance as if just launched: its output and control socket
/// are served again from the descriptors the launcher kept. It was running
/// (and ready, if it had been seen ready) before; readiness is not waited
/// for again.
fn resume(
    sup: &Arc<Supervisor>,
    svc: &Arc<Service>,
    replica: u32,
    a: Adopted,
) -> Result<(Spawned, Option<ReadyWait>), String> {
    for (fd, stream) in [(a.stdout, Stream::Stdout), (a.stderr, Stream::Stderr)] {
        if let Some(fd) = fd {
            tokio::spawn(logs::pump(svc.logs.clone(), sup.bus.clone(), fd, replica, a.pid, stream));
        }
    }
    if let Some(control) = a.control {
        super::grants::serve_control(sup.clone(), svc.clone(), replica, control)?;
    }
    let sp = Spawned {
        pid: a.pid,
        pidfd: a.pidfd,
        spawn_us: a.spawn_us,
        exit: a.exit,
        listener: a.listener,
        enforcement: a.enforcement,
    };
    Ok((sp, None))
}

/// The service's private data directory: its uid's alone (0700).
fn ensure_data_dir(dir: &std::path::Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // Already right (every restart): one stat.
    if let Ok(m) = std::fs::symlink_metadata(dir) {
        if m.is_dir() && m.uid() == uid && m.gid() == uid && m.mode() & 0o7777 == 0o700 {
            return Ok(());
        }
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    }
    std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Whether this exit puts the instance in quarantine: its filter killed the
/// main process (or the kernel did, with SIGSYS, for a foreign syscall ABI)
/// and the profile says `on_violation = "quarantine"`.
fn quarantine(sup: &Supervisor, svc: &Service, replica: u32, exit: &Exit) -> Option<String> {
    let policy = sup.policies.get(&svc.spec.profile)?;
    if policy.profile.seccomp.on_violation != OnViolation::Quarantine {
        return None;
    }
    let by_filter = svc.runtime().instances[replica as usize].killed_by_filter.clone();
    let why = match (by_filter, exit.how) {
        (Some(syscall), ExitHow::Signal(libc::SIGKILL)) => {
            format!("its seccomp filter killed it for calling {syscall} (profile {})", policy.profile.name)
        }
        (_, ExitHow::Signal(libc::SIGSYS)) => {
            format!("the kernel's seccomp filter killed it with SIGSYS (profile {})", policy.profile.name)
        }
        _ => return None,
    };
    Some(format!(
        "{}{why}; not restarted: inspect it with `solo logs {}` and `solo watch`, then redeploy (kill --remove, deploy)",
        super::service::QUARANTINE_PREFIX,
        svc.id()
    ))
}

fn plan(
    sup: &Supervisor,
    svc: &Service,
    replica: u32,
    cg: &InstanceCgroup,
    passed: &super::grants::Passed,
    notify: Option<&super::readiness::NotifySocket>,
) -> LaunchPlan {
    let spec = &svc.spec;
    let mut env: Vec<String> = Vec::with_capacity(spec.env.len() + 5);
    if !spec.env.contains_key("PATH") {
        env.push("PATH=/usr/local/bin:/usr/bin:/bin".into());
    }
    if !spec.env.contains_key("HOME") {
        env.push("HOME=/".into());
    }
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    env.push(format!("SOLO_SERVICE={}", spec.id));
    env.push(format!("SOLO_REPLICA={replica}"));
    env.push(format!("SOLO_REVISION={}", svc.revision));
    let mut binds = passed.binds.clone();
    if let Some(n) = notify {
        env.push(format!("NOTIFY_SOCKET={}", super::readiness::NOTIFY_SOCKET));
        binds.push(n.bind());
    }
    let nofile = u64::from(spec.limits.max_open_files);
    let data = policy::data_dir(&sup.config.state_dir, spec.id.as_str());
    let view_root = sup.config.runtime_dir.join("root");
    let confine = match sup.policies.get(&spec.profile) {
        Some(p) => p.confinement(svc, &policy::Paths { view_root: &view_root, data: &data, binds: &binds }),
        None => Default::default(),
    };
    let mut argv = svc.artifact.argv(spec.id.as_str(), &spec.args);
    if svc.artifact.script.is_some() && argv.len() > 1 {
        // The interpreter reads the script where the view shows it.
        argv[1] = format!("{}/{}", policy::APP_DIR, policy::artifact_name(svc));
    }
    LaunchPlan {
        service: spec.id.to_string(),
        replica,
        program: svc.artifact.program.clone(),
        argv,
        env,
        uid: svc.uid,
        gid: svc.uid,
        cgroup_v2: cg.v2.as_ref().map(|p| p.display().to_string()),
        cgroup_v1_tasks: cg.v1_tasks_files().iter().map(|p| p.display().to_string()).collect(),
        rlimits: vec![
            Rlimit { resource: libc::RLIMIT_NOFILE, soft: nofile, hard: nofile },
            Rlimit { resource: libc::RLIMIT_CORE, soft: 0, hard: 0 },
        ],
        cwd: sup.config.service_cwd.clone(),
        confine,
        fds: passed.names.clone(),
        listen_fds: passed.listen,
    }
}

/// Waits for the instance to exit or to be asked to stop.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    sup: &Supervisor,
    svc: &Service,
    replica: u32,
    cg: &InstanceCgroup,
    pid: i32,
    pidfd: &OwnedFd,
    mut exit_rx: tokio::sync::oneshot::Receiver<WaitStatus>,
    stops: &mut Stops,
    denied_before: u64,
) -> Ended {
    let oom_before = cg.oom_kills();
    let status = tokio::select! {
        st = &mut exit_rx => Some(st),
        _ = stops.requested() => None,
    };
    let exited_at = Instant::now();
    let (status, stopped) = match status {
        Some(st) => (st.unwrap_or(WaitStatus::Signaled(libc::SIGKILL)), false),
        None => {
            let mode = stops.mode().unwrap_or(StopMode { force: true, timeout: Duration::ZERO });
            let frozen = svc.update(replica, |i, _| {
                i.state = InstanceState::Stopping;
                i.frozen
            });
            let (st, escalated) = stop(pid, cg, pidfd, &mut exit_rx, mode, frozen).await;
            svc.update(replica, |i, _| {
                i.stop_escalated = escalated;
                i.frozen = false;
            });
            (st, true)
        }
    };
    let oom = cg.oom_kills() > oom_before;
    if oom {
        svc.update(replica, |i, _| {
            i.oom_kills += 1;
            i.limit_hits += 1;
        });
        sup.audit_oom(svc, replica, pid);
    }
    // Whatever the main process left behind goes with it.
    empty(cg).await;
    let how = match status {
        WaitStatus::Exited(c) => ExitHow::Code(c),
        WaitStatus::Signaled(s) => ExitHow::Signal(s),
    };
    let mut exit = Exit::new(how, oom, now_ms());
    if stopped {
        exit.cause = ExitCause::Stopped;
    }
    if !stopped {
        // Say what its filter had to do with it: a SIGKILL from the filter
        // is not an anonymous SIGKILL, and an exit after a denial is
        // probably an answer to it.
        let (by_filter, last, denied, for_limit) = {
            let rt = svc.runtime();
            let i = &rt.instances[replica as usize];
            (i.killed_by_filter.clone(), i.last_denied.clone(), i.seccomp_denials, i.killed_for_limit.clone())
        };
        match (by_filter, how) {
            (_, ExitHow::Signal(libc::SIGKILL)) if for_limit.is_some() && !oom => {
                exit.reason = for_limit.unwrap_or_default();
                exit.cause = ExitCause::CpuLimit;
            }
            (Some(call), ExitHow::Signal(libc::SIGKILL)) => {
                exit.reason = format!("killed by its seccomp filter for calling {call} (profile {})", svc.spec.profile);
                exit.cause = ExitCause::Seccomp;
            }
            _ if denied > denied_before => {
                if let Some(call) = last {
                    exit.reason.push_str(&format!(" after its filter denied {call} (profile {})", svc.spec.profile));
                }
            }
            _ => {}
        }
    }
    let kind = match (stopped, oom) {
        (true, _) => EventKind::Killed,
        (false, true) => EventKind::OomKilled,
        (false, false) => EventKind::Exited,
    };
    let mut ev = Event::of(kind, svc, replica);
    ev.pid = pid;
    ev.message = exit.reason.clone();
    ev.exit = Some(exit.clone());
    ev.restart_count = svc.runtime().instances[replica as usize].restart_count;
    sup.bus.emit(ev);
    sup.audit_exit(svc.id(), replica, pid, &exit, stopped);
    if stopped {
        Ended::Stopped(exit)
    } else {
        Ended::Exit(exit, exited_at)
    }
}

/// Kills anything left in the cgroup (it stays, for the next start).
async fn empty(cg: &InstanceCgroup) {
    if !cg.populated() {
        return;
    }
    let cg = cg.clone();
    let _ = tokio::task::spawn_blocking(move || empty_blocking(&cg)).await;
}

/// Kills what is in the cgroup until it is empty (at most 5 s).
fn empty_blocking(cg: &InstanceCgroup) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.populated() && Instant::now() < deadline {
        cg.kill_all();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills anything left in the cgroup and removes its directories.
pub async fn cleanup(cg: &InstanceCgroup) {
    empty(cg).await;
    let cg = cg.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(e) = cg.remove() {
            tracing::warn!(error = %e, "cgroup left behind");
        }
    })
    .await;
}
