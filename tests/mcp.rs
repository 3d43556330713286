//! `solo mcp` driven by a real MCP client: the official Python `mcp`
//! package (tests/python/mcp_client.py) starts `solo mcp` over stdio with
//! an agent token scoped to `service:mcp-*`, lists the tools, deploys an
//! HTTP server on a granted socket, reads its status and logs, updates it,
//! kills it;
//! calls outside the scope come back as tool errors. Then the same client
//! over streamable HTTP, where each request brings its own token.
//!
//! The Python environment is [`common::python_env`]; if it cannot be made
//! the test prints `SKIPPED mcp: <reason>`, or fails with `CI=true`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const TEST: &str = "mcp";

fn python_or_skip() -> Option<PathBuf> {
    match common::python_env() {
        Ok(p) => Some(p),
        Err(reason) => {
            if common::in_ci() {
                panic!("{TEST}: Python environment unavailable and CI=true forbids skipping: {reason}");
            }
            eprintln!("SKIPPED {TEST}: {reason}");
            None
        }
    }
}

#[test]
fn an_mcp_client_deploys_inspects_and_kills_within_its_scope() {
    if !common::require_root(TEST) {
        return;
    }
    let Some(python) = python_or_skip() else { return };
    let daemon = common::Daemon::start();
    let token_file = daemon.dir.path().join("agent.token");
    let out = daemon.ok(&[
        "token",
        "issue",
        "--subject",
        "agent-m",
        "--perm",
        "deploy,status,kill,watch,grant,update",
        "--resource",
        "service:mcp-*",
        "--ttl",
        "1h",
    ]);
    std::fs::write(&token_file, out.trim()).expect("write the agent token");
    // An operator's service the agent must not touch.
    let sleeper = common::program("sleeper");
    daemon.ok(&["deploy", "ops-db", "--exec", sleeper.to_str().expect("utf-8 path"), "--wait"]);
    let pid_before = common::pid0(&daemon.status("ops-db"));

    let http_port = common::free_port();
    let mut http = Command::new(common::solo_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["mcp", "--http", &format!("127.0.0.1:{http_port}")])
        .env_remove("SOLO_TOKEN")
        .env_remove("SOLO_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start solo mcp --http");
    common::wait_for("solo mcp --http to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", http_port)).ok()
    });

    let port = common::free_port().to_string();
    let mut client = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_client.py"))
        .arg("--solo")
        .arg(common::solo_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("--token-file")
        .arg(&token_file)
        .arg("--service")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services/httpd.py"))
        .args(["--port", &port, "--outside", "ops-db", "--http-port", &http_port.to_string()])
        .env_remove("SOLO_TOKEN")
        .env_remove("SOLO_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the MCP client");
    let status = common::wait_or_kill(&mut client, Duration::from_secs(180));
    let _ = http.kill();
    let _ = http.wait();
    let output = client.wait_with_output().expect("client output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("mcp client: all checks passed"),
        "the MCP client failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- daemon log ---\n{}",
        daemon.log()
    );
    // The refused calls changed nothing: the operator's service runs on.
    let s = daemon.status("ops-db");
    assert_eq!(s["service"]["state"], "SERVICE_STATE_RUNNING");
    assert_eq!(common::pid0(&s), pid_before);
    // The out-of-scope deploy created nothing.
    let o = daemon.cli(&["--json", "ls"]);
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("intruder"), "the refused deploy left a service behind");
}

#[test]
fn solo_mcp_wants_an_explicit_token_and_a_loopback_address() {
    // No daemon needed: both are refused before connecting.
    let o = Command::new(common::solo_bin())
        .args(["--socket", "/nonexistent/solo.sock", "mcp"])
        .env_remove("SOLO_TOKEN")
        .env_remove("SOLO_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run solo mcp");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("no token for `solo mcp`") && err.contains("--token-file"), "{err}");
    let o = Command::new(common::solo_bin())
        .args(["--socket", "/nonexistent/solo.sock", "mcp", "--http", "0.0.0.0:8765"])
        .stdin(Stdio::null())
        .output()
        .expect("run solo mcp --http");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("not a loopback address"), "{err}");
}
