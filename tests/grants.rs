//! File-descriptor capabilities end to end: real services under the
//! no-network `default` profile reach the world only through descriptors
//! the supervisor handed them (systemd socket activation), a real HTTP
//! client gets answers, services talk over granted channels and nothing
//! else, readiness gates `deploy --wait`, and revocation takes effect.

mod common;

use common::{require_root, wait_for, Daemon};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn service_script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services").join(name).display().to_string()
}

fn have_python(test: &str) -> bool {
    if std::path::Path::new("/usr/bin/python3").exists() {
        return true;
    }
    assert!(!common::in_ci(), "{test}: python3 is not installed and CI=true forbids skipping");
    eprintln!("SKIPPED {test}: no /usr/bin/python3");
    false
}

fn logs(d: &Daemon, id: &str) -> String {
    d.ok(&["logs", id, "--tail", "200"])
}

fn wait_log(d: &Daemon, id: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + T;
    loop {
        let l = logs(d, id);
        if l.contains(needle) {
            return l;
        }
        assert!(std::time::Instant::now() < deadline, "no '{needle}' in the logs of {id} after {T:?}:\n{l}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host TCP server answering each line with "echo: <line>"; its port.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("echo");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = c.try_clone().expect("clone");
                let mut line = String::new();
                let _ = BufReader::new(c).read_line(&mut line);
                let _ = w.write_all(format!("echo: {line}").as_bytes());
            });
        }
    });
    port
}

fn deploy_httpd(d: &Daemon, id: &str, port: u16, extra: &[&str]) {
    let grant = format!("http=listen:tcp:127.0.0.1:{port}");
    let script = service_script("httpd.py");
    let mut args = vec!["deploy", id, "--script", &script, "--interpreter", "python3", "--grant", &grant];
    args.extend_from_slice(extra);
    d.ok(&args);
}

#[test]
fn http_service_without_network_serves_on_a_granted_socket_and_loses_no_connection_across_restarts() {
    let test = "http_service_without_network_serves_on_a_granted_socket_and_loses_no_connection_across_restarts";
    if !require_root(test) || !have_python(test) {
        return;
    }
    let d = Daemon::start();
    let port = common::free_port();
    // Ready when it accepts on its socket: --wait returns only then.
    deploy_httpd(&d, "web", port, &["--ready", "tcp:http", "--restart", "always", "--backoff-ms", "50", "--wait"]);
    let st = d.status("web");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_RUNNING", "{st}");
    assert_eq!(st["service"]["grants"][0]["name"], "http", "{st}");
    assert_eq!(st["service"]["grants"][0]["spec"], format!("listen:tcp:127.0.0.1:{port}"), "{st}");
    assert!(d.ok(&["status", "web"]).contains("grants:    solo-control (fd 3), http=listen:tcp:127.0.0.1:"));
    let body = common::http_get(port).expect("GET");
    assert!(body.starts_with("HTTP/1.0 200 OK") && body.contains("hello from web.0"), "{body}");
    // The service's own network namespace has no route out: the socket
    // works only because the supervisor bound it on the host.
    let l = logs(&d, "web");
    assert!(l.contains("fds: ['http', 'solo-control']"), "{l}");

    // A stream of clients while the instance is replaced three times.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match common::http_get(port) {
                    Ok(b) if b.contains("200 OK") => ok += 1,
                    Ok(b) => failed.push(format!("bad answer: {b}")),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        })
    };
    let mut pids = vec![common::pid0(&d.status("web"))];
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        let old = *pids.last().expect("pid");
        common::kill(old, libc::SIGTERM);
        let new = wait_for("a new instance", T, || {
            let p = common::pid0(&d.status("web"));
            (p != 0 && p != old).then_some(p)
        });
        pids.push(new);
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = client.join().expect("client");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across restarts: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(ok > 10, "only {ok} requests were made");
    eprintln!("{ok} requests, 0 lost, across {} instances {pids:?}", pids.len());

    // Revoking the grant: the instance holding the socket is killed and its
    // successor starts without it (and, here, exits: it needs the socket).
    let before = common::pid0(&d.status("web"));
    let out = d.ok(&["--json", "grant", "revoke", "web/http"]);
    assert!(out.contains("\"revoked\": 1") || out.contains("\"revoked\":1"), "{out}");
    wait_for("the holder killed", T, || (!common::alive(before)).then_some(()));
    let l = wait_log(&d, "web", "no socket named http");
    assert!(l.contains("fds: ['solo-control']"), "{l}");
    let e = common::http_get(port).expect_err("nobody listens after the revoke");
    assert!(matches!(e.kind(), std::io::ErrorKind::ConnectionRefused), "{e}");
}

#[test]
fn readiness_gates_deploy_wait() {
    if !require_root("readiness_gates_deploy_wait") || !have_python("readiness_gates_deploy_wait") {
        return;
    }
    let d = Daemon::start();
    // READY=1 over $NOTIFY_SOCKET.
    deploy_httpd(&d, "notified", common::free_port(), &["--ready", "notify", "--wait"]);
    assert!(logs(&d, "notified").contains("sent READY=1"));
    assert_eq!(d.status("notified")["service"]["state"], "SERVICE_STATE_RUNNING");
    // A listening Unix socket works the same way.
    let sock = d.dir.path().join("web.sock");
    let grant = format!("http=listen:unix:{}", sock.display());
    let script = service_script("httpd.py");
    d.ok(&["deploy", "unixweb", "--script", &script, "--interpreter", "python3", "--grant", &grant, "--wait"]);
    let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect to the granted unix socket");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    assert!(body.contains("hello from unixweb.0"), "{body}");
    // Never ready (the socket is granted under another name, so it exits;
    // a sleeper would do too): --wait fails, naming the timeout.
    let script = service_script("peer.py");
    let port = common::free_port();
    let grant = format!("web=listen:tcp:127.0.0.1:{port}");
    let err = d.fails(&[
        "deploy",
        "silent",
        "--script",
        &script,
        "--interpreter",
        "python3",
        "--arg",
        "serve",
        "--grant",
        &grant,
        "--ready",
        "tcp:web",
        "--startup-timeout",
        "800",
        "--restart",
        "never",
        "--wait",
    ]);
    assert!(err.contains("not ready within 800 ms"), "{err}");
}

#[test]
fn services_reach_each_other_only_through_grants() {
    if !require_root("services_reach_each_other_only_through_grants")
        || !have_python("services_reach_each_other_only_through_grants")
    {
        return;
    }
    let d = Daemon::start();
    let script = service_script("peer.py");
    for id in ["b", "c"] {
        d.ok(&["deploy", id, "--script", &script, "--interpreter", "python3", "--arg", "serve", "--wait"]);
    }
    // A host TCP echo server that the no-network service may reach only
    // through the supervisor, with a token allowing it.
    let target = format!("127.0.0.1:{}", echo_server());
    let out = d.ok(&[
        "--json",
        "token",
        "issue",
        "--subject",
        "service:a",
        "--perm",
        "connect",
        "--resource",
        &format!("tcp:{target}"),
        "--ttl",
        "10m",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let (token, token_id) = (v["token"].as_str().expect("token"), v["tokenId"].as_str().expect("id"));
    let env_token = format!("PEER_TOKEN={token}");
    let env_tcp = format!("PEER_TCP={target}");
    // A second server, granted at deploy (so the first stays ungranted).
    let echo_grant = format!("echo=connect:tcp:127.0.0.1:{}", echo_server());
    d.ok(&[
        "deploy",
        "a",
        "--script",
        &script,
        "--interpreter",
        "python3",
        "--arg",
        "call",
        "--arg",
        "b",
        "--grant",
        "service:b",
        "--grant",
        &echo_grant,
        "--env",
        "PEER_TRY=c,b",
        "--env",
        &env_tcp,
        "--env",
        &env_token,
        "--restart",
        "never",
        "--wait",
    ]);
    let l = wait_log(&d, "a", "done");
    assert!(l.contains("reply: pong from b: ping"), "A reaches B over its granted fd:\n{l}");
    assert!(l.contains("fds: b:echo:solo-control"), "{l}");
    assert!(l.contains("granted tcp reply: echo: via grant"), "a connect:tcp grant at deploy:\n{l}");
    assert!(l.contains("connect c: ok=False fd=False error=service:c is not granted"), "A cannot reach C:\n{l}");
    assert!(l.contains("connect b: ok=True fd=True"), "a second channel to B on request:\n{l}");
    assert!(l.contains("tcp without token: ok=False"), "{l}");
    assert!(l.contains("tcp with token: ok=True") && l.contains("tcp reply: echo: over tcp"), "{l}");
    let c_logs = logs(&d, "c");
    assert!(!c_logs.contains("connection"), "C was never connected to:\n{c_logs}");
    assert!(logs(&d, "b").contains("'from': 'a'"), "B saw who connected");
    assert!(!d.log().contains(token.rsplit('.').next().expect("sig")), "the token reached the daemon log");
    // Revoking the token kills the instance that holds a descriptor obtained under it.
    let pid = common::pid0(&d.status("a"));
    d.ok(&["token", "revoke", token_id]);
    wait_for("A killed after the revoke", T, || (!common::alive(pid)).then_some(()));
    // A service cannot be granted a channel to a service that does not exist,
    // and bad grant requests name the field.
    let err = d.fails(&["grant", "add", "a", "service:ghost"]);
    assert!(err.contains("ghost"), "{err}");
    let err = d.fails(&["grant", "add", "a", "dir:/proc:ro"]);
    assert!(err.contains("fd.spec") && err.contains("cannot be granted"), "{err}");
}

/// Directories named `name` under `root`, at most `depth` levels down.
fn find_dirs(root: &std::path::Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(root) else { return };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if e.file_name() == name {
                out.push(e.path());
            }
            if depth > 0 {
                find_dirs(&e.path(), name, depth - 1, out);
            }
        }
    }
}

#[test]
fn a_deploy_refused_for_a_port_in_use_leaves_nothing_behind() {
    if !require_root("a_deploy_refused_for_a_port_in_use_leaves_nothing_behind") {
        return;
    }
    let d = Daemon::start();
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let grant = format!("http=listen:tcp:127.0.0.1:{port}");
    let sleeper = common::program("sleeper").display().to_string();
    let err = d.fails(&["deploy", "refused", "--exec", &sleeper, "--grant", &grant]);
    assert!(err.contains("spec.grants[0]"), "the error names the field: {err}");
    assert!(err.contains("in use"), "and the reason: {err}");
    // No service, no data dir, no cgroup in any hierarchy below the daemon's.
    let err = d.fails(&["status", "refused"]);
    assert!(err.contains("not found") || err.contains("no service"), "{err}");
    assert!(!d.state.join("data/refused").exists(), "data dir left behind");
    let instance_cgroups = || {
        let mut found = Vec::new();
        for line in std::fs::read_to_string(format!("/proc/{}/cgroup", d.pid())).expect("cgroup").lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctl, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
            let hier = match ctl {
                "" if std::path::Path::new("/sys/fs/cgroup/unified").is_dir() => "unified",
                "" => "",
                c => c.trim_start_matches("name="),
            };
            let root = PathBuf::from("/sys/fs/cgroup").join(hier).join(path.trim_start_matches('/'));
            find_dirs(&root, "refused.0", 4, &mut found);
        }
        found
    };
    let left = instance_cgroups();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    // The same id deploys once the port is free.
    drop(taken);
    d.ok(&["deploy", "refused", "--exec", &sleeper, "--grant", &grant, "--wait"]);
    assert!(!instance_cgroups().is_empty(), "the search above finds a live instance's cgroups");
}
