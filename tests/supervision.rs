//! Supervision against the real daemon: placement, restart, crash loops,
//! memory and pid limits, kill, daemon restart and shutdown.

mod common;

use common::{alive, cgroup_paths, instance0, pid0, program, require_root, wait_for, Daemon, Kernel};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn exec(p: &str) -> String {
    program(p).display().to_string()
}

fn state(d: &Daemon, id: &str) -> String {
    d.status(id)["service"]["state"].as_str().unwrap_or("").to_owned()
}

#[test]
fn deploy_runs_in_own_cgroup_as_own_uid() {
    if !require_root("deploy_runs_in_own_cgroup_as_own_uid") {
        return;
    }
    let d = Daemon::start();
    let out = d.ok(&[
        "deploy",
        "web",
        "--exec",
        &exec("sleeper"),
        "--arg",
        "hello",
        "--wait",
        "--memory",
        "64MiB",
        "--max-pids",
        "16",
        "--cpu-weight",
        "50",
        "--cpu-max-millicores",
        "500",
    ]);
    assert!(out.contains("deployed web revision 1"), "{out}");
    let st = d.status("web");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_RUNNING");
    let pid = pid0(&st);
    assert!(pid > 0 && alive(pid));
    // Its own uid and gid from the configured range, no supplementary groups, no caps.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let uid = d.uid_first.to_string();
    let field = |k: &str| status.lines().find(|l| l.starts_with(k)).unwrap_or("").to_owned();
    assert_eq!(field("Uid:").split_whitespace().skip(1).collect::<Vec<_>>(), vec![uid.as_str(); 4]);
    assert_eq!(field("Gid:").split_whitespace().skip(1).collect::<Vec<_>>(), vec![uid.as_str(); 4]);
    assert_eq!(field("Groups:").trim(), "Groups:");
    assert!(field("CapEff:").ends_with("0000000000000000"), "{}", field("CapEff:"));
    assert!(field("NoNewPrivs:").ends_with('1'));
    // Default signal state: nothing blocked or ignored was inherited (the
    // sleeper installs a SIGTERM handler itself, which shows in SigCgt).
    assert!(field("SigBlk:").ends_with("0000000000000000"), "{}", field("SigBlk:"));
    assert!(field("SigIgn:").ends_with("0000000000000000"), "{}", field("SigIgn:"));
    // Only fds 0, 1, 2 and 3, its control socket (socket activation names it).
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .map(|e| e.expect("fd").file_name().to_string_lossy().into_owned())
        .collect();
    let mut fds = fds;
    fds.sort();
    assert_eq!(fds, vec!["0", "1", "2", "3"]);
    let fd3 = std::fs::read_link(format!("/proc/{pid}/fd/3")).expect("fd 3");
    assert!(fd3.to_string_lossy().starts_with("socket:"), "{fd3:?}");
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let env = String::from_utf8_lossy(&env);
    for want in ["LISTEN_FDS=1", "LISTEN_FDNAMES=solo-control", "LISTEN_PID=1"] {
        assert!(env.split('\0').any(|v| v == want), "{want} not in {env:?}");
    }
    // In every cgroup Status names, and the limits are written there.
    let inst = instance0(&st);
    let cgs = cgroup_paths(&inst);
    assert!(!cgs.is_empty());
    for cg in &cgs {
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).expect("cgroup.procs");
        assert!(procs.lines().any(|l| l == pid.to_string()), "{pid} not in {}", cg.display());
    }
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("proc cgroup");
    assert!(own.lines().filter(|l| l.ends_with("/web.0")).count() >= 1, "{own}");
    let read =
        |file: &str| cgs.iter().find_map(|c| std::fs::read_to_string(c.join(file)).ok()).map(|s| s.trim().to_owned());
    let mem = read("memory.max").or_else(|| read("memory.limit_in_bytes")).expect("memory limit file");
    assert_eq!(mem, (64u64 << 20).to_string());
    assert_eq!(read("pids.max").expect("pids.max"), "16");
    if let Some(w) = read("cpu.weight") {
        assert_eq!(w, "50");
    } else {
        assert_eq!(read("cpu.shares").expect("cpu.shares"), "512");
        assert_eq!(read("cpu.cfs_quota_us").expect("quota"), "50000");
    }
    // The cgroup is beneath the daemon's own cgroup in each hierarchy.
    let daemon_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", d.pid())).expect("daemon cgroup");
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, _, path) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let dpath =
            daemon_cg.lines().find(|l| l.split(':').next() == id).and_then(|l| l.splitn(3, ':').nth(2)).unwrap_or("/");
        if path.ends_with("/web.0") {
            assert!(path.starts_with(dpath), "{path} is not beneath the daemon's {dpath}");
        }
    }
    // Output is captured.
    let logs = wait_for("log line", T, || {
        let l = d.ok(&["logs", "web"]);
        l.contains("sleeper hello up").then_some(l)
    });
    assert!(logs.contains("sleeper stderr line"), "{logs}");
    assert!(std::fs::read_to_string(d.state.join("logs/web/current.log"))
        .expect("log file")
        .contains("sleeper hello up"));
}

#[test]
fn sigkill_restarts_with_count() {
    if !require_root("sigkill_restarts_with_count") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "victim", "--exec", &exec("sleeper"), "--restart", "always", "--backoff-ms", "10", "--wait"]);
    let before = pid0(&d.status("victim"));
    common::kill(before, libc::SIGKILL);
    let st = wait_for("restart", T, || {
        let s = d.status("victim");
        (pid0(&s) != 0 && pid0(&s) != before && s["service"]["state"] == "SERVICE_STATE_RUNNING").then_some(s)
    });
    let inst = instance0(&st);
    assert_eq!(inst["restartCount"], 1);
    assert_eq!(inst["lastExit"]["signal"], libc::SIGKILL);
    assert!(!alive(before));
}

#[test]
fn crash_loop_fails_after_intensity_limit() {
    if !require_root("crash_loop_fails_after_intensity_limit") {
        return;
    }
    let d = Daemon::start();
    let started = Instant::now();
    d.ok(&[
        "deploy",
        "crashy",
        "--exec",
        &exec("crasher"),
        "--arg",
        "7",
        "--arg",
        "5",
        "--max-restarts",
        "3",
        "--within",
        "60",
        "--backoff-ms",
        "10",
        "--backoff-max-ms",
        "40",
    ]);
    let st = wait_for("failed state", T, || {
        let s = d.status("crashy");
        (s["service"]["state"] == "SERVICE_STATE_FAILED").then_some(s)
    });
    assert!(started.elapsed() < T);
    let inst = instance0(&st);
    assert_eq!(inst["restartCount"], 3, "{st}");
    assert_eq!(inst["lastExit"]["code"], 7);
    let reason = st["service"]["failureReason"].as_str().unwrap_or("");
    assert!(reason.contains("restart intensity reached") && reason.contains("exited with code 7"), "{reason}");
    // The failure is an event in the store and on Watch history (via ls state filter).
    let failed = d.ok(&["ls", "--state", "failed"]);
    assert!(failed.contains("crashy"), "{failed}");
    // And nothing is left running or in a cgroup (removed as the task ends).
    let cgs = cgroup_paths(&inst);
    wait_for("cgroups removed", T, || cgs.iter().all(|c| !c.exists()).then_some(()));
}

#[test]
fn clean_exit_under_on_failure_is_not_restarted() {
    if !require_root("clean_exit_under_on_failure_is_not_restarted") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "job", "--exec", &exec("crasher"), "--arg", "0", "--arg", "1"]);
    let st = wait_for("exited state", T, || {
        let s = d.status("job");
        (s["service"]["state"] == "SERVICE_STATE_EXITED").then_some(s)
    });
    assert_eq!(instance0(&st)["restartCount"].as_u64().unwrap_or(0), 0);
    assert_eq!(instance0(&st)["lastExit"]["code"].as_i64().unwrap_or(-1), 0);
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    if !require_root("memory_hog_is_oom_killed_and_reported") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "hog", "--exec", &exec("memhog"), "--memory", "32MiB", "--restart", "never", "--wait"]);
    let st = wait_for("oom kill", T, || {
        let s = d.status("hog");
        (instance0(&s)["lastExit"]["oomKilled"] == true).then_some(s)
    });
    let exit = &instance0(&st)["lastExit"];
    assert_eq!(exit["signal"], libc::SIGKILL);
    assert!(exit["reason"].as_str().unwrap_or("").contains("out of memory"), "{exit}");
    // The event store has an oom-killed event, visible to a watcher's history too.
    // Events are committed by the store's writer thread within moments.
    let db = rusqlite::Connection::open(d.state.join("solo.db")).expect("db");
    wait_for("oom-killed event row", T, || {
        let n: i64 = db
            .query_row("SELECT count(*) FROM events WHERE service = 'hog' AND kind = 'oom-killed'", [], |r| r.get(0))
            .expect("query");
        (n == 1).then_some(())
    });
}

#[test]
fn fork_bomb_stops_at_max_pids_and_daemon_stays_responsive() {
    if !require_root("fork_bomb_stops_at_max_pids_and_daemon_stays_responsive") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "bomb", "--exec", &exec("forkbomb"), "--max-pids", "20", "--wait"]);
    let line = wait_for("fork failure", T, || {
        d.ok(&["logs", "bomb"]).lines().find(|l| l.contains("fork failed")).map(str::to_owned)
    });
    let made: u32 =
        line.split_whitespace().skip_while(|w| *w != "after").nth(1).and_then(|n| n.parse().ok()).expect("count");
    assert!(made < 20, "{line}");
    assert!(line.contains("Resource temporarily unavailable"), "{line}");
    let inst = instance0(&d.status("bomb"));
    assert!(inst["usage"]["pids"].as_u64().unwrap_or(0) <= 20);
    // The daemon answers promptly while the bomb sits at its limit.
    let t = Instant::now();
    d.ok(&["ls"]);
    assert!(t.elapsed() < Duration::from_secs(2), "ls took {:?}", t.elapsed());
    // Kill takes the whole tree with it.
    d.ok(&["kill", "bomb", "--force"]);
    for cg in cgroup_paths(&inst) {
        assert!(!cg.exists(), "{} left behind", cg.display());
    }
}

#[test]
fn graceful_and_forced_kill_leave_nothing_behind() {
    if !require_root("graceful_and_forced_kill_leave_nothing_behind") {
        return;
    }
    let d = Daemon::start();
    // Graceful: the sleeper exits 0 on SIGTERM.
    d.ok(&["deploy", "nice", "--exec", &exec("sleeper"), "--wait"]);
    // "up" is printed after the handler is installed. Before that, SIGTERM
    // would kill it (as pid 1 of its namespace: SIGKILL in its place).
    wait_for("sleeper up", T, || d.ok(&["logs", "nice"]).contains("up as pid").then_some(()));
    let st = d.status("nice");
    let (pid, cgs) = (pid0(&st), cgroup_paths(&instance0(&st)));
    let out = d.ok(&["kill", "nice"]);
    assert!(out.contains("exited with code 0"), "{out}");
    assert!(!alive(pid));
    assert!(cgs.iter().all(|c| !c.exists()));
    assert_eq!(state(&d, "nice"), "SERVICE_STATE_STOPPED");

    // Stubborn: ignores SIGTERM and leaves a grandchild in a new session.
    d.ok(&["deploy", "mule", "--exec", &exec("stubborn"), "--wait"]);
    let line = wait_for("grandchild pid", T, || {
        d.ok(&["logs", "mule"]).lines().find(|l| l.contains("grandchild")).map(str::to_owned)
    });
    // The service prints pids of its own pid namespace; its child's host
    // pid comes from the kernel's list of the main process's children.
    assert!(line.ends_with(" 2"), "the first child is pid 2 of the service's namespace: {line}");
    let st = d.status("mule");
    let (pid, cgs) = (pid0(&st), cgroup_paths(&instance0(&st)));
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).expect("children");
    let grandchild: i64 = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("grandchild pid");
    assert!(alive(grandchild));
    let t = Instant::now();
    let out = d.ok(&["kill", "mule", "--timeout", "300"]);
    assert!(t.elapsed() >= Duration::from_millis(300), "did not wait for the grace period");
    assert!(out.contains("SIGKILL"), "{out}");
    assert!(!alive(pid) && !alive(grandchild), "a process survived the kill");
    assert!(cgs.iter().all(|c| !c.exists()));

    // Forced: no grace at all.
    d.ok(&["deploy", "mule2", "--exec", &exec("stubborn"), "--wait"]);
    let st = d.status("mule2");
    let (pid, cgs) = (pid0(&st), cgroup_paths(&instance0(&st)));
    let t = Instant::now();
    d.ok(&["kill", "mule2", "--force", "--remove"]);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(!alive(pid));
    assert!(cgs.iter().all(|c| !c.exists()));
    assert!(d.fails(&["status", "mule2"]).contains("not found"));
}

#[test]
fn replicas_each_get_their_own_cgroup() {
    if !require_root("replicas_each_get_their_own_cgroup") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "pool", "--exec", &exec("sleeper"), "--replicas", "3", "--wait"]);
    let st = d.status("pool");
    let insts = st["service"]["instances"].as_array().expect("instances").clone();
    assert_eq!(insts.len(), 3);
    let mut pids: Vec<i64> = insts.iter().map(|i| i["pid"].as_i64().unwrap_or(0)).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3);
    for (i, inst) in insts.iter().enumerate() {
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", inst["pid"])).expect("cgroup");
        assert!(cg.contains(&format!("/pool.{i}")), "{cg}");
    }
}

#[test]
fn daemon_restart_brings_desired_services_back() {
    if !require_root("daemon_restart_brings_desired_services_back") {
        return;
    }
    let mut d = Daemon::start();
    d.ok(&["deploy", "keep", "--exec", &exec("sleeper"), "--wait"]);
    d.ok(&["deploy", "parked", "--exec", &exec("sleeper"), "--wait"]);
    d.ok(&["kill", "parked"]);
    let old = pid0(&d.status("keep"));
    d.restart();
    let st = wait_for("keep running again", T, || {
        let s = d.status("keep");
        (s["service"]["state"] == "SERVICE_STATE_RUNNING").then_some(s)
    });
    assert_ne!(pid0(&st), old);
    assert!(!alive(old), "graceful shutdown stops services");
    // A killed service stays stopped.
    assert_eq!(state(&d, "parked"), "SERVICE_STATE_STOPPED");

    // After a crash (SIGKILL of the daemon) the running instance is
    // re-adopted: the same process, no second one beside it
    // (tests/reliability.rs covers re-adoption in depth).
    let before_crash = pid0(&d.status("keep"));
    d.crash();
    assert!(alive(before_crash), "services outlive a daemon crash");
    d.respawn();
    let st = wait_for("keep running after crash", T, || {
        let s = d.status("keep");
        (s["service"]["state"] == "SERVICE_STATE_RUNNING").then_some(s)
    });
    assert_eq!(pid0(&st), before_crash, "re-adopted, not restarted");
    assert_eq!(state(&d, "parked"), "SERVICE_STATE_STOPPED");
}

#[test]
fn shutdown_stops_everything_and_exits() {
    if !require_root("shutdown_stops_everything_and_exits") {
        return;
    }
    let mut d = Daemon::start();
    d.ok(&["deploy", "a", "--exec", &exec("sleeper"), "--wait"]);
    d.ok(&["deploy", "b", "--exec", &exec("stubborn"), "--shutdown-timeout-ms", "200", "--wait"]);
    d.ok(&["deploy", "sys", "--exec", &exec("sleeper"), "--tier", "system", "--wait"]);
    let pids: Vec<i64> = ["a", "b", "sys"].iter().map(|s| pid0(&d.status(s))).collect();
    let cgs: Vec<_> = ["a", "b", "sys"].iter().flat_map(|s| cgroup_paths(&instance0(&d.status(s)))).collect();
    let out = d.ok(&["shutdown", "--timeout", "5000"]);
    assert!(out.contains("stopped 3 instance(s)"), "{out}");
    assert!(d.wait_exit(Duration::from_secs(10)), "daemon did not exit");
    for p in pids {
        assert!(!alive(p), "pid {p} survived shutdown");
    }
    for c in cgs {
        assert!(!c.exists(), "{} left behind", c.display());
    }
    assert!(!Path::new(&d.socket).exists(), "socket left behind");
}

#[test]
fn state_files_are_private_to_root() {
    if !require_root("state_files_are_private_to_root") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    d.ok(&["deploy", "chatty", "--exec", &exec("sleeper"), "--env", "SECRET=hunter2", "--wait"]);
    wait_for("log file", T, || d.state.join("logs/chatty/current.log").exists().then_some(()));
    for f in ["solo.db", "logs/chatty/current.log", "logs/chatty", "logs"] {
        let mode = std::fs::metadata(d.state.join(f)).expect(f).permissions().mode();
        assert_eq!(mode & 0o077, 0, "{f} has mode {:o}: readable by service uids", mode & 0o7777);
    }
    // Artifacts stay executable by services, but not writable or listable.
    let art = d.state.join("artifacts/sha256");
    assert_eq!(std::fs::metadata(&art).expect("artifacts").permissions().mode() & 0o777, 0o711);
    for e in std::fs::read_dir(&art).expect("read artifacts") {
        let m = e.expect("entry").metadata().expect("meta").permissions().mode() & 0o777;
        assert!(m == 0o555 || m == 0o444, "artifact mode {m:o}");
    }
}

#[test]
fn failed_service_stays_failed_across_daemon_restart() {
    if !require_root("failed_service_stays_failed_across_daemon_restart") {
        return;
    }
    let mut d = Daemon::start();
    d.ok(&[
        "deploy",
        "doomed",
        "--exec",
        &exec("crasher"),
        "--arg",
        "2",
        "--arg",
        "1",
        "--max-restarts",
        "2",
        "--within",
        "60",
        "--backoff-ms",
        "5",
    ]);
    wait_for("failed", T, || (state(&d, "doomed") == "SERVICE_STATE_FAILED").then_some(()));
    d.restart();
    let st = d.status("doomed");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_FAILED", "{st}");
    assert!(st["service"]["failureReason"].as_str().unwrap_or("").contains("restart intensity reached"));
    assert_eq!(pid0(&st), 0, "a failed service must not be restarted by a daemon restart");
}

#[test]
fn profile_limits_are_the_defaults() {
    if !require_root("profile_limits_are_the_defaults") {
        return;
    }
    let d = Daemon::start();
    let deploy = ["deploy", "tight", "--exec", &exec("sleeper"), "--profile", "strict", "--wait"];
    // A kernel that lacks what `strict` refuses to run without (vm.memfd_noexec,
    // its Landlock min_abi) refuses the launch: the service is still created
    // with the profile's limits, but has no cgroup to check.
    let refusal = Kernel::detect().refusal("strict");
    match refusal {
        None => _ = d.ok(&deploy),
        Some(why) => {
            let err = d.fails(&deploy);
            assert!(err.contains(why), "want `{why}` on {:?}: {err}", Kernel::detect());
        }
    }
    let st = d.status("tight");
    assert_eq!(st["service"]["limits"]["memoryBytes"], (64u64 << 20).to_string());
    assert_eq!(st["service"]["limits"]["maxPids"], 8);
    assert_eq!(st["service"]["profile"], "strict");
    assert_eq!(st["service"]["profileSha256"].as_str().map(str::len), Some(64));
    if refusal.is_some() {
        assert_eq!(pid0(&st), 0, "{st}");
        return;
    }
    let cg = cgroup_paths(&instance0(&st));
    let pids = cg.iter().find_map(|c| std::fs::read_to_string(c.join("pids.max")).ok()).expect("pids.max");
    assert_eq!(pids.trim(), "8");
}

#[test]
fn launch_failure_names_the_step_and_errno() {
    if !require_root("launch_failure_names_the_step_and_errno") {
        return;
    }
    let d = Daemon::start();
    // ELF magic, then garbage: the kernel refuses it at exec.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.elf");
    let mut bytes = b"\x7fELF".to_vec();
    bytes.extend_from_slice(&[0xAB; 60]);
    std::fs::write(&bad, bytes).expect("write");
    let err = d.fails(&["deploy", "broken", "--exec", bad.to_str().expect("utf8"), "--restart", "never", "--wait"]);
    assert!(err.contains("step exec: ENOEXEC"), "{err}");
    let st = d.status("broken");
    assert!(st["service"]["state"] == "SERVICE_STATE_EXITED", "{st}");
    let reason = instance0(&st)["lastExit"]["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains("step exec: ENOEXEC"), "{reason}");
    // An RLIMIT_NOFILE the host cannot grant is refused at deploy, naming
    // the field; a host that can grant it starts the service.
    let o = d.cli(&["deploy", "nofile", "--exec", &exec("sleeper"), "--max-open-files", "1048576", "--wait"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() || err.contains("spec.limits.max_open_files: 1048576 is above"), "{err}");
}

#[test]
fn sigterm_shuts_down_even_when_stderr_is_gone() {
    if !require_root("sigterm_shuts_down_even_when_stderr_is_gone") {
        return;
    }
    use std::process::{Command, Stdio};
    let dir = tempfile::Builder::new().prefix("solo-test-").tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).expect("chmod");
    let mut child = Command::new(common::solo_bin())
        .args(["serve", "--uid-range", "990000-990009", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let sock = dir.path().join("run/solo.sock");
    wait_for("socket", T, || sock.exists().then_some(()));
    // The log reader goes away (a closed terminal, a dead log shipper).
    drop(child.stderr.take());
    common::kill(i64::from(child.id()), libc::SIGTERM);
    let exited = common::wait_or_kill(&mut child, T);
    assert!(exited.is_some_and(|s| s.success()), "daemon did not exit on SIGTERM: {exited:?}");
}

#[test]
fn uids_are_lowest_free_reused_and_exhausted() {
    if !require_root("uids_are_lowest_free_reused_and_exhausted") {
        return;
    }
    let d = Daemon::start();
    let uid = |id: &str| d.status(id)["service"]["uid"].as_u64().expect("uid") as u32;
    // The daemon's range is 50 uids: fill it (no --wait: the uids are the point).
    for n in 0..50 {
        d.ok(&["deploy", &format!("u{n}"), "--exec", &exec("sleeper")]);
    }
    assert_eq!(uid("u0"), d.uid_first);
    assert_eq!(uid("u49"), d.uid_first + 49);
    let err = d.fails(&["deploy", "one-too-many", "--exec", &exec("sleeper")]);
    assert!(err.contains("no free service uid"), "{err}");
    // A removed service's uid is the next one handed out, and only once.
    d.ok(&["kill", "u17", "--remove"]);
    d.ok(&["deploy", "again", "--exec", &exec("sleeper")]);
    assert_eq!(uid("again"), d.uid_first + 17);
    let err = d.fails(&["deploy", "and-again", "--exec", &exec("sleeper")]);
    assert!(err.contains("no free service uid"), "{err}");
}
