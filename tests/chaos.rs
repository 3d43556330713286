//! Reliability under faults (issue 12; figures in docs/reliability.md):
//!
//! - chaos: 50 services under restart `always`, 10,000 random SIGKILLs of
//!   their processes: every one back to running, no process, cgroup, uid
//!   or daemon descriptor leaked, no instance running twice;
//! - the daemon SIGKILLed at random points while deploys, kills, removals
//!   and rolling updates are under way, 50 times: after each, the state is consistent
//!   (every desired instance running once, nothing of a stopped or removed
//!   service running, no orphan outside the services' cgroups);
//! - soak: 1,000 services held with restarts and log traffic: the daemon's
//!   RSS and descriptor count stay flat.
//!
//! Each is bounded in count and time and stops by itself. The counts can
//! be lowered for a quick look (`SOLO_CHAOS_KILLS`, `SOLO_CRASH_ROUNDS`,
//! `SOLO_SOAK_SECS`, `SOLO_SOAK_SERVICES`); the figures in
//! docs/reliability.md come from the defaults, except the soak's 10-minute
//! figure (`SOLO_SOAK_SECS=600`). Run with `--nocapture` to see them.

mod common;

use common::{alive, program, require_root, Daemon};
use solo::proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn exec(p: &str) -> String {
    program(p).display().to_string()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator (xorshift64*), so a failing run can be
/// repeated: the seed is printed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("SOLO_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
        });
        eprintln!("chaos seed {seed} (SOLO_CHAOS_SEED={seed} repeats this run)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

async fn list(c: &mut solo::cli::Client) -> Vec<pb::ServiceStatus> {
    c.list(pb::ListRequest::default()).await.expect("List").into_inner().services
}

fn fd_count(pid: i64) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `RssAnon`, `RssFile`, ...).
fn status_kib(pid: i64, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib(pid: i64) -> u64 {
    status_kib(pid, "VmRSS")
}

/// RSS split into heap and other anonymous memory, and mapped files
/// (SQLite's WAL index is a shared file mapping).
fn rss_parts(pid: i64) -> String {
    format!(
        "anon {} + file {} + shmem {} KiB",
        status_kib(pid, "RssAnon"),
        status_kib(pid, "RssFile"),
        status_kib(pid, "RssShmem")
    )
}

/// Every process whose real uid is in `uids`, by pid.
fn procs_of(uids: std::ops::Range<u32>) -> BTreeMap<i64, u32> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else { continue };
        let uid = std::fs::read_to_string(e.path().join("status")).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
        });
        if let Some(uid) = uid.filter(|u| uids.contains(u)) {
            if alive(pid) {
                out.insert(pid, uid);
            }
        }
    }
    out
}

/// The membership cgroup directory of an instance (the first listed).
fn cgroup_dir(inst: &pb::Instance) -> PathBuf {
    PathBuf::from(inst.cgroup.split(';').next().unwrap_or(""))
}

fn procs_in(dir: &std::path::Path) -> Vec<i64> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.parse().ok()).collect())
        .unwrap_or_default()
}

/// The instance directories under the daemon's cgroup (the parent of every
/// instance cgroup).
fn instance_dirs(base: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n != "supervisor")
        .collect()
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// 50 services, restart `always`, 10,000 random SIGKILLs of their
/// processes: all back to running, and nothing leaked or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_sigkills_every_service_comes_back_and_nothing_leaks() {
    if !require_root("chaos_sigkills_every_service_comes_back_and_nothing_leaks") {
        return;
    }
    let (services, kills) = (50usize, env_usize("SOLO_CHAOS_KILLS", 10_000));
    let d = Daemon::start_sized(services as u32, &[]);
    for i in 0..services {
        d.ok(&[
            "deploy",
            &format!("chaos-{i}"),
            "--exec",
            &exec("tiny"),
            "--restart",
            "always",
            "--max-restarts",
            "10000",
            "--within",
            "1",
            "--backoff-ms",
            "1",
            "--backoff-max-ms",
            "5",
        ]);
    }
    let mut c = d.client().await;
    let running = |s: &[pb::ServiceStatus]| {
        s.iter().all(|s| s.instances.iter().all(|i| i.state == pb::InstanceState::Running as i32 && i.pid != 0))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running(&list(&mut c).await) {
        assert!(Instant::now() < deadline, "the services did not all start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let daemon = i64::from(d.pid());
    let launcher = d.launcher_pid().expect("the launcher");
    let (fds_before, launcher_fds_before) = (fd_count(daemon), fd_count(launcher));
    let (rss_before, launcher_rss_before) = (rss_kib(daemon), rss_kib(launcher));
    // Every restart's cost, from the RESTARTED events.
    let mut watch = d.client().await;
    let mut stream =
        watch.watch(pb::WatchRequest { include_events: true, ..Default::default() }).await.expect("watch").into_inner();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(w)) = stream.message().await {
                if let Some(pb::watch_event::Payload::Event(e)) = w.payload {
                    if e.kind == pb::EventKind::Restarted as i32 {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(e.restart_us);
                    }
                }
            }
        })
    };

    let mut rng = Rng::new();
    let started = Instant::now();
    let mut done = 0usize;
    let mut killed = std::collections::HashSet::new();
    while done < kills {
        // Live processes not killed yet (a killed one may still be listed
        // as running until its exit is processed).
        let mut pids: Vec<i32> = list(&mut c)
            .await
            .iter()
            .flat_map(|s| s.instances.iter())
            .filter(|i| i.state == pb::InstanceState::Running as i32 && i.pid != 0 && !killed.contains(&i.pid))
            .map(|i| i.pid)
            .collect();
        if pids.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        // A few per listing: the kills outrun the restarts, as in a storm.
        for _ in 0..4.min(kills - done) {
            if pids.is_empty() {
                break;
            }
            let pid = pids.swap_remove(rng.below(pids.len()));
            if solo::sandbox::sys::kill(pid, libc::SIGKILL).is_ok() {
                killed.insert(pid);
                done += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the chaos run took too long ({done} kills)");
    }
    let killing = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let s = list(&mut c).await;
        if running(&s) {
            break s;
        }
        assert!(Instant::now() < deadline, "not every service came back: {s:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovered = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(watch);

    // 100 % back, once each, in their own cgroups, under their own uids.
    let failed: Vec<&str> =
        after.iter().filter(|s| s.state != pb::ServiceState::Running as i32).map(|s| s.id.as_str()).collect();
    assert!(failed.is_empty(), "services not running after the storm: {failed:?}");
    let mut uids = BTreeSet::new();
    let mut restarts = 0u64;
    for s in &after {
        let inst = &s.instances[0];
        assert_eq!(procs_in(&cgroup_dir(inst)), vec![i64::from(inst.pid)], "{}: one process in its cgroup", s.id);
        assert!(uids.insert(inst.uid), "{}: uid {} shared", s.id, inst.uid);
        restarts += u64::from(inst.restart_count);
    }
    // No stray process of a service uid, no leftover cgroup.
    let strays = procs_of(d.uid_first..d.uid_first + d.uid_count);
    assert_eq!(strays.len(), services, "processes under service uids: {strays:?}");
    let base = cgroup_dir(&after[0].instances[0]).parent().map(PathBuf::from).expect("the daemon's cgroup");
    assert_eq!(instance_dirs(&base).len(), services, "instance cgroups: {:?}", instance_dirs(&base));
    // No descriptor leaked in the daemon or the launcher.
    let (fds_after, launcher_fds_after) = (fd_count(daemon), fd_count(launcher));
    let (rss_after, launcher_rss_after) = (rss_kib(daemon), rss_kib(launcher));
    assert!(fds_after <= fds_before + 2, "daemon descriptors {fds_before} → {fds_after}");
    assert!(
        launcher_fds_after <= launcher_fds_before + 2,
        "launcher descriptors {launcher_fds_before} → {launcher_fds_after}"
    );
    // Every kill of a live process was one restart (a kill can land on a
    // process already exiting).
    assert!(restarts <= kills as u64 && restarts * 100 >= kills as u64 * 99, "{restarts} restarts for {kills} kills");
    assert!(!d.log().contains("panicked"), "the daemon panicked:\n{}", d.log());
    collector.abort();
    let mut us = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    let (p50, p99) = (percentile(&mut us, 0.5), percentile(&mut us, 0.99));
    eprintln!(
        "FIGURE chaos: {services} services, {kills} SIGKILLs in {:.1} s ({:.0} kills/s), all running again {:.1} s after the first; \
         {restarts} restarts, exit to running p50 {p50} µs, p99 {p99} µs ({} RESTARTED events seen); \
         daemon fds {fds_before} → {fds_after}, launcher fds {launcher_fds_before} → {launcher_fds_after}; \
         daemon RSS {rss_before} → {rss_after} KiB, launcher RSS {launcher_rss_before} → {launcher_rss_after} KiB; \
         strays 0, leftover cgroups 0, duplicates 0",
        killing.as_secs_f64(),
        kills as f64 / killing.as_secs_f64(),
        recovered.as_secs_f64(),
        us.len()
    );
}

/// What a consistent state looks like after a daemon start: every service
/// listed; each one that should run has all its instances running, once
/// each in its own cgroup; a stopped one has no process; no process of a
/// service uid outside the listed services' cgroups (no orphan); no
/// instance cgroup of a service that is not listed. Returns `Err(why)` if
/// it does not hold (yet).
async fn consistent(d: &Daemon, c: &mut solo::cli::Client) -> Result<usize, String> {
    let services = list(c).await;
    let mut expected: BTreeSet<i64> = BTreeSet::new();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for s in &services {
        let stopped = s.state == pb::ServiceState::Stopped as i32 || s.state == pb::ServiceState::Exited as i32;
        for i in &s.instances {
            let dir = cgroup_dir(i);
            let procs = procs_in(&dir);
            if let Some(n) = dir.file_name().and_then(|n| n.to_str()) {
                dirs.insert(n.to_owned());
            }
            if stopped {
                if !procs.is_empty() {
                    return Err(format!("{} is {:?} but {procs:?} run in {}", s.id, s.state, dir.display()));
                }
                continue;
            }
            if i.state != pb::InstanceState::Running as i32 || i.pid == 0 {
                return Err(format!("{}.{} is not running ({:?})", s.id, i.replica, i.state));
            }
            if procs != vec![i64::from(i.pid)] {
                return Err(format!("{}.{}: {procs:?} in its cgroup, want [{}]", s.id, i.replica, i.pid));
            }
            expected.insert(i64::from(i.pid));
        }
    }
    let running = procs_of(d.uid_first..d.uid_first + d.uid_count);
    let orphans: Vec<&i64> = running.keys().filter(|p| !expected.contains(p)).collect();
    if !orphans.is_empty() {
        return Err(format!("processes of service uids that no instance owns: {orphans:?}"));
    }
    if let Some(i) = services.iter().flat_map(|s| s.instances.iter()).next() {
        if let Some(base) = cgroup_dir(i).parent() {
            let extra: Vec<String> = instance_dirs(base).difference(&dirs).cloned().collect();
            if !extra.is_empty() {
                return Err(format!("instance cgroups of no listed service: {extra:?}"));
            }
        }
    }
    Ok(expected.len())
}

/// The daemon SIGKILLed at a random moment while deploys, kills,
/// removals and rolling updates run, 50 times: each time the next daemon comes back to a
/// consistent state (see [`consistent`]) with nothing running twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_sigkilled_during_operations_comes_back_consistent() {
    if !require_root("daemon_sigkilled_during_operations_comes_back_consistent") {
        return;
    }
    let rounds = env_usize("SOLO_CRASH_ROUNDS", 50);
    let mut d = Daemon::start_sized(200, &[]);
    for i in 0..4 {
        d.ok(&[
            "deploy",
            &format!("base-{i}"),
            "--exec",
            &exec("steady"),
            "--replicas",
            "2",
            "--arg",
            "1000",
            "--wait",
        ]);
    }
    let mut rng = Rng::new();
    let started = Instant::now();
    let mut ops_done = 0usize;
    let mut settle_ms = Vec::new();
    for round in 0..rounds {
        // Operations in flight: a CLI per operation, from another thread.
        let (socket, state) = (d.socket.clone(), d.state.clone());
        let seed = rng.next();
        let ops = std::thread::spawn(move || {
            let mut r = Rng(seed | 1);
            let mut done = 0usize;
            let run = |args: &[String]| {
                std::process::Command::new(common::solo_bin())
                    .arg("--socket")
                    .arg(&socket)
                    .args(args)
                    .env("SOLO_STATE_DIR", &state)
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            };
            for _ in 0..20 {
                let id = format!("op-{}", r.below(12));
                let args: Vec<String> = match r.below(5) {
                    0 | 1 => vec!["deploy".into(), id, "--exec".into(), exec("steady"), "--arg".into(), "1000".into()],
                    2 => vec!["kill".into(), id, "--force".into()],
                    3 => vec!["kill".into(), id, "--remove".into(), "--force".into()],
                    // A rolling update of a 2-replica service to a new
                    // revision (a new argument), so the crash can land in
                    // the middle of one.
                    _ => vec![
                        "update".into(),
                        format!("base-{}", r.below(4)),
                        "--arg".into(),
                        format!("{}", 900 + r.below(200)),
                        "--min-ready".into(),
                        "100".into(),
                    ],
                };
                // A refused call (the daemon died, the id exists) is fine.
                run(&args);
                done += 1;
            }
            done
        });
        std::thread::sleep(Duration::from_millis(rng.below(400) as u64));
        d.crash();
        // Calls made while no daemon serves wait in the socket's backlog
        // (the launcher keeps it) and are answered by the next daemon.
        d.respawn();
        ops_done += ops.join().expect("the operations thread");
        let mut c = d.client().await;
        let t = Instant::now();
        loop {
            let why = match consistent(&d, &mut c).await {
                Ok(_) => break,
                Err(why) => why,
            };
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "round {round}: not consistent after 30 s: {why}\n{}",
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        settle_ms.push(t.elapsed().as_millis() as u64);
    }
    assert!(!d.log().contains("panicked"), "the daemon panicked:\n{}", d.log());
    let (p50, max) = (percentile(&mut settle_ms.clone(), 0.5), settle_ms.iter().copied().max().unwrap_or(0));
    eprintln!(
        "FIGURE crash: {rounds} SIGKILLs of the daemon during {ops_done} deploy/kill/remove/update calls in {:.0} s; \
         consistent again after each (from respawn) p50 {p50} ms, max {max} ms; 0 duplicates, 0 orphans",
        started.elapsed().as_secs_f64()
    );
}

/// 1,000 services held with restarts (one SIGKILL every 100 ms) and log
/// traffic (each prints a line a second): the daemon's RSS and descriptor
/// count stay flat. Duration `SOLO_SOAK_SECS` (default 120; the figure in
/// docs/reliability.md is a 600 s run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_daemon_memory_and_descriptors_stay_flat() {
    if !require_root("soak_daemon_memory_and_descriptors_stay_flat") {
        return;
    }
    let (n, secs) = (env_usize("SOLO_SOAK_SERVICES", 1000), env_usize("SOLO_SOAK_SECS", 120) as u64);
    // A short log ring (20 lines) fills within the warm-up, so what is
    // measured after it is growth, not the bounded rings filling (at the
    // default 1000 lines and a line a second, they fill after ~17 min).
    let d = Daemon::start_sized(n as u32, &["--log-ring-lines", "20"]);
    let t0 = Instant::now();
    for i in 0..n {
        d.ok(&["deploy", &format!("soak-{i}"), "--exec", &exec("steady"), "--arg", "1000", "--restart", "always"]);
    }
    let mut c = d.client().await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = list(&mut c).await;
        if s.len() == n && s.iter().all(|s| s.state == pb::ServiceState::Running as i32) {
            break;
        }
        assert!(Instant::now() < deadline, "the {n} services did not all start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("soak: {n} services running after {:.0} s", t0.elapsed().as_secs_f64());
    let daemon = i64::from(d.pid());
    let mut rng = Rng::new();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let start = Instant::now();
    let mut kills = 0usize;
    let mut next_sample = Instant::now();
    let mut parts_at_warm = String::new();
    while start.elapsed() < Duration::from_secs(secs) {
        if Instant::now() >= next_sample {
            samples.push((start.elapsed().as_secs_f64(), rss_kib(daemon), fd_count(daemon)));
            if parts_at_warm.is_empty() && start.elapsed().as_secs_f64() >= secs as f64 / 3.0 {
                parts_at_warm = rss_parts(daemon);
            }
            next_sample += Duration::from_secs(5);
        }
        let s = list(&mut c).await;
        let pids: Vec<i32> = s.iter().flat_map(|s| s.instances.iter()).filter(|i| i.pid != 0).map(|i| i.pid).collect();
        if !pids.is_empty() && solo::sandbox::sys::kill(pids[rng.below(pids.len())], libc::SIGKILL).is_ok() {
            kills += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples.push((start.elapsed().as_secs_f64(), rss_kib(daemon), fd_count(daemon)));
    let parts_at_end = rss_parts(daemon);
    // After a warm-up third, a straight line through the samples: the growth
    // per hour of RSS and descriptors.
    let warm: Vec<&(f64, u64, usize)> = samples.iter().filter(|s| s.0 >= secs as f64 / 3.0).collect();
    let slope = |f: &dyn Fn(&(f64, u64, usize)) -> f64| {
        let k = warm.len() as f64;
        let (mx, my) = (warm.iter().map(|s| s.0).sum::<f64>() / k, warm.iter().map(|s| f(s)).sum::<f64>() / k);
        let num: f64 = warm.iter().map(|s| (s.0 - mx) * (f(s) - my)).sum();
        let den: f64 = warm.iter().map(|s| (s.0 - mx).powi(2)).sum();
        if den == 0.0 {
            0.0
        } else {
            num / den * 3600.0
        }
    };
    let rss_per_hour_mib = slope(&|s| s.1 as f64) / 1024.0;
    let fds_per_hour = slope(&|s| s.2 as f64);
    let (first, last) =
        (warm.first().copied().copied().unwrap_or_default(), samples.last().copied().unwrap_or_default());
    eprintln!(
        "FIGURE soak: {n} services, {secs} s, {kills} SIGKILLs, ~{n} log lines/s; daemon RSS {} → {} KiB ({rss_per_hour_mib:+.1} MiB/h), \
         descriptors {} → {} ({fds_per_hour:+.1}/h); RSS at the start of the warm samples {parts_at_warm}, at the end {parts_at_end}",
        first.1, last.1, first.2, last.2
    );
    // Flat: descriptors back where they were (give or take the instances
    // being restarted at the sample), and RSS within a few MiB.
    assert!(last.2 <= first.2 + 16, "descriptors grew {} → {}", first.2, last.2);
    assert!(last.1 <= first.1 + 16 * 1024, "RSS grew {} → {} KiB", first.1, last.1);
    assert!(!d.log().contains("panicked"), "the daemon panicked");
}
