//! A third-party program that supports systemd socket activation runs
//! under Solo's no-network `default` profile: gunicorn (from PyPI, pinned
//! in `tests/python/requirements.txt`, not patched) serves a WSGI app with
//! `--workers 2` on a granted `listen:tcp` socket, and this test talks
//! HTTP to it. gunicorn's own code does the activation (LISTEN_PID check,
//! adopting the inherited socket, READY=1 on $NOTIFY_SOCKET); its arbiter
//! forks the workers inside the sandbox, into the instance's cgroup; and a
//! master killed with SIGTERM is restarted and serves again on the same
//! port.
//!
//! gunicorn is imported from the shared test venv (`common::python_env`),
//! whose site-packages the service sees through a `dir:...:ro` grant. The
//! service is `tests/services/gunicorn_app.py`, run by the host's python3;
//! its header says why it narrows LISTEN_FDS to the `http` socket before
//! gunicorn reads it. Without the venv (no python3, no PyPI) the test
//! prints `SKIPPED gunicorn: <reason>`, or fails with `CI=true`.

mod common;

use common::{require_root, wait_for, Daemon};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TEST: &str = "gunicorn";
const T: Duration = Duration::from_secs(30);

fn skip_or_fail(reason: &str) {
    assert!(!common::in_ci(), "{TEST}: {reason}, and CI=true forbids skipping");
    eprintln!("SKIPPED {TEST}: {reason}");
}

/// The real path of the venv's site-packages (where gunicorn is): a `dir:`
/// grant refuses symlinked paths.
fn site_packages(python: &Path) -> Result<PathBuf, String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import gunicorn, os; print(os.path.dirname(os.path.dirname(os.path.abspath(gunicorn.__file__))))",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("gunicorn is not importable in the venv: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::canonicalize(&dir).map_err(|e| format!("{dir}: {e}"))
}

fn assert_served(port: u16, what: &str) {
    for i in 0..6 {
        let r = common::http_get(port).unwrap_or_else(|e| panic!("{what}: GET {i}: {e}"));
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{what}: GET {i}:\n{r}");
        assert!(
            r.contains("\r\n\r\nhello from gunicorn worker ") && r.contains(" of web revision "),
            "{what}: GET {i}:\n{r}"
        );
        assert!(r.contains("\r\nServer: gunicorn\r\n"), "{what}: not gunicorn answering:\n{r}");
    }
}

fn logs(d: &Daemon) -> String {
    d.ok(&["logs", "web", "--tail", "500"])
}

/// Waits until `needle` is in the service's logs `n` times; returns them.
fn wait_log_count(d: &Daemon, needle: &str, n: usize) -> String {
    wait_for(&format!("{n} x '{needle}' in the logs"), T, || {
        let l = logs(d);
        (l.matches(needle).count() == n).then_some(l)
    })
}

/// The processes in the instance's cgroup (every hierarchy lists the same).
fn cgroup_procs(inst: &serde_json::Value) -> Vec<i64> {
    let paths = common::cgroup_paths(inst);
    let first = paths.first().unwrap_or_else(|| panic!("no cgroup in {inst}"));
    let mut procs = Vec::new();
    for p in &paths {
        let text = std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
        let mut here: Vec<i64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        here.sort_unstable();
        if p == first {
            procs = here;
        } else {
            assert_eq!(here, procs, "{} and {} list different processes", p.display(), first.display());
        }
    }
    procs
}

fn ppid(pid: i64) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PPid:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// Waits until the running instance is gunicorn's master and its two
/// workers, all in the instance's cgroup; returns (master, workers).
fn master_and_workers(d: &Daemon, not: i64) -> (i64, Vec<i64>) {
    wait_for("gunicorn's master and 2 workers in the instance's cgroup", T, || {
        let st = d.status("web");
        let inst = common::instance0(&st);
        let master = inst["pid"].as_i64().unwrap_or(0);
        if master == 0 || master == not || inst["state"] != "INSTANCE_STATE_RUNNING" {
            return None;
        }
        let procs = cgroup_procs(&inst);
        let workers: Vec<i64> = procs.iter().copied().filter(|p| ppid(*p) == master).collect();
        (procs.len() == 3 && procs.contains(&master) && workers.len() == 2).then_some((master, workers))
    })
}

/// Nothing gunicorn did was refused by the `default` seccomp filter (a
/// denial would also be a SECCOMP_DENIED event naming the syscall).
fn assert_no_denials(d: &Daemon, what: &str) {
    let st = d.status("web");
    let n: u64 = common::instance0(&st)["seccompDenials"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert_eq!(n, 0, "{what}: seccomp denied {n} syscalls (see `solo watch web`)\n{}", d.log());
}

/// The directory to grant for gunicorn (with the temp copy that must live
/// as long as it is used), or `None` after printing why the test skips.
fn gunicorn_site() -> Option<(String, Option<tempfile::TempDir>)> {
    if !Path::new("/usr/bin/python3").exists() {
        skip_or_fail("no /usr/bin/python3 (the service's interpreter)");
        return None;
    }
    let site = match common::python_env().and_then(|py| site_packages(&py)) {
        Ok(s) => s,
        Err(reason) => {
            skip_or_fail(&format!("Python environment unavailable: {reason}"));
            return None;
        }
    };
    // A checkout under /tmp puts the venv there, and nothing under /tmp can
    // be granted (the view's /tmp is its own): then serve a copy of the
    // package from /var/tmp instead.
    let mut copy = None;
    let site = if site.starts_with("/tmp") {
        let dir = tempfile::Builder::new().prefix("solo-gunicorn-site-").tempdir_in("/var/tmp").expect("tempdir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let ok =
            Command::new("cp").arg("-r").arg(site.join("gunicorn")).arg(dir.path()).status().is_ok_and(|s| s.success());
        assert!(ok, "copy gunicorn to {}", dir.path().display());
        let path = std::fs::canonicalize(dir.path()).expect("real path");
        copy = Some(dir);
        path
    } else {
        site
    };
    Some((site.to_str().expect("utf-8 site-packages path").to_owned(), copy))
}

/// Deploys gunicorn_app.py as `web` (see the test below for each flag).
fn deploy_gunicorn(d: &Daemon, site: &str, port: u16, extra: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services/gunicorn_app.py");
    let http = format!("http=listen:tcp:127.0.0.1:{port}");
    let dir = format!("site=dir:{site}:ro");
    let mut args = vec![
        "deploy",
        "web",
        "--script",
        script.to_str().expect("utf-8 path"),
        "--interpreter",
        "python3",
        "--arg",
        site,
        "--grant",
        &http,
        "--grant",
        &dir,
        "--listen-only",
        "--ready",
        "notify",
        "--wait",
    ];
    args.extend_from_slice(extra);
    d.ok(&args);
}

#[test]
fn a_rolling_update_of_gunicorn_under_load_drops_no_request() {
    const TEST: &str = "gunicorn_rolling_update";
    if !require_root(TEST) {
        return;
    }
    let Some((site, _copy)) = gunicorn_site() else { return };
    let d = Daemon::start();
    let port = common::free_port();
    deploy_gunicorn(&d, &site, port, &["--replicas", "2"]);
    let mut watch = Command::new(common::solo_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["--json", "watch", "web"])
        .env("SOLO_STATE_DIR", &d.state)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    let load = common::load::Hammer::start(port, 4);
    std::thread::sleep(Duration::from_millis(800));
    // gunicorn's arbiter says READY=1 itself; on SIGTERM it stops its
    // workers gracefully and closes (not shuts down) the shared socket.
    let o = d.cli(&["update", "web", "--env", "V=2", "--min-ready", "500"]);
    let ended = load.now();
    std::thread::sleep(Duration::from_millis(1000));
    let samples = load.stop();
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let failed: Vec<_> = samples.iter().filter(|s| s.outcome.is_err()).collect();
    eprintln!("{TEST}: {} requests, {} failed", samples.len(), failed.len());
    assert!(failed.is_empty(), "{} of {} failed: {:?}", failed.len(), samples.len(), &failed[..failed.len().min(5)]);
    assert!(samples.len() > 100, "{}", samples.len());
    let stale: Vec<_> = samples.iter().filter(|s| s.start >= ended && s.revision() != Some(2)).collect();
    assert!(stale.is_empty(), "the old revision answered after the update: {stale:?}");
    assert!(samples.iter().any(|s| s.revision() == Some(1)));
    eprintln!(
        "{TEST}: revision 1 answered {}, revision 2 {}",
        samples.iter().filter(|s| s.revision() == Some(1)).count(),
        samples.iter().filter(|s| s.revision() == Some(2)).count()
    );
    // Both old masters got SIGTERM and exited 0 (gunicorn's graceful stop).
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let killed: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"]["kind"] == "EVENT_KIND_KILLED")
        .collect();
    assert_eq!(killed.len(), 2, "{killed:?}");
    assert!(killed.iter().all(|e| e["event"]["message"] == "exited with code 0"), "{killed:?}");
}

#[test]
fn gunicorn_with_two_workers_serves_on_a_granted_socket_and_comes_back_after_sigterm() {
    if !require_root(TEST) {
        return;
    }
    let Some((site, _copy)) = gunicorn_site() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services/gunicorn_app.py");
    let script = script.to_str().expect("utf-8 path");
    let d = Daemon::start();
    let port = common::free_port();
    let http = format!("http=listen:tcp:127.0.0.1:{port}");
    let dir = format!("site=dir:{site}:ro");
    // `--ready notify`: `--wait` returns once gunicorn's arbiter itself has
    // sent READY=1 (gunicorn/systemd.py sd_notify), after adopting the socket.
    d.ok(&[
        "deploy",
        "web",
        "--script",
        script,
        "--interpreter",
        "python3",
        "--arg",
        &site,
        "--grant",
        &http,
        "--grant",
        &dir,
        // gunicorn takes every activated descriptor as a listener: announce
        // only the listening sockets (solo-control and the directory follow,
        // named in SOLO_FDNAMES).
        "--listen-only",
        "--ready",
        "notify",
        "--restart",
        "always",
        "--backoff-ms",
        "50",
        "--wait",
    ]);
    let st = d.status("web");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_RUNNING", "{st}");
    assert_eq!(st["service"]["profile"], "default", "{st}");

    assert_served(port, "first instance");
    let l = logs(&d);
    assert!(
        l.contains("LISTEN_FDS=1 LISTEN_FDNAMES=http LISTEN_PID=1 my pid 1; SOLO_FDNAMES=solo-control:site from fd 4"),
        "{l}"
    );
    assert!(l.contains("[INFO] Starting gunicorn 27.0.1"), "{l}");
    // No `bind` is configured (gunicorn's default would be 127.0.0.1:8000)
    // and the `default` profile has no network: this is the socket the
    // supervisor bound on the host and passed, adopted by the arbiter, pid 1
    // in the instance's pid namespace.
    let listening = format!("[1] [INFO] Listening at: http://127.0.0.1:{port} (1)");
    assert_eq!(l.matches(&listening).count(), 1, "{l}");
    let (master, workers) = master_and_workers(&d, 0);
    eprintln!("gunicorn master {master}, workers {workers:?}");
    wait_log_count(&d, "[INFO] Booting worker with pid:", 2);
    assert_no_denials(&d, "first instance");

    // SIGTERM to the master: gunicorn's graceful shutdown (exit 0); the
    // `always` policy starts a new instance, which adopts the same socket.
    common::kill(master, libc::SIGTERM);
    let (master2, workers2) = master_and_workers(&d, master);
    eprintln!("after SIGTERM: gunicorn master {master2}, workers {workers2:?}");
    assert!(!common::alive(master) && workers.iter().all(|w| !common::alive(*w)), "the old instance lingers");
    let st = d.status("web");
    let inst = common::instance0(&st);
    assert_eq!(inst["lastExit"]["code"], 0, "{st}");
    assert_served(port, "after the restart");
    wait_log_count(&d, "[INFO] Booting worker with pid:", 4);
    let l = wait_log_count(&d, &listening, 2);
    assert!(l.contains("[1] [INFO] Handling signal: term") && l.contains("[1] [INFO] Shutting down: Master"), "{l}");

    assert_no_denials(&d, "second instance");
}
