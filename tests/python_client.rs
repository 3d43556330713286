//! A non-Rust agent drives Solo: `tests/python/solo_client.py` generates
//! grpcio stubs from `proto/` at test time and, with grpcio's defaults, over
//! the Unix socket and over TCP, checks health, reflection with the stock
//! grpcio-reflection client (grpcurl's `list` and `describe`), UNIMPLEMENTED
//! for unknown methods and the token checks; then over the socket Deploy,
//! Status, List, error codes and Kill, against a real `solo serve`.
//!
//! On the socket grpcio sends the socket path as `:authority`, which h2
//! alone resets (`src/api/uds_authority/`): this test is what shows the
//! daemon answers such clients.
//!
//! The Python environment is the shared venv of [`common::python_env`]
//! (`target/py-venv`, `tests/python/requirements.txt`). If it cannot be
//! made (no python3, no PyPI), the test prints
//! `SKIPPED python_client: <reason>`, or fails with `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TEST: &str = "python_client";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the client script with a time limit; returns (success, stdout, stderr).
fn run_client(python: &Path, daemon: &common::Daemon, tcp: &str, program: &Path) -> (bool, String, String) {
    let logs = daemon.dir.path();
    let stdout_path = logs.join("python-client.stdout");
    let stderr_path = logs.join("python-client.stderr");
    let stdout = std::fs::File::create(&stdout_path).expect("create stdout file for the client");
    let stderr = std::fs::File::create(&stderr_path).expect("create stderr file for the client");
    let mut child = Command::new(python)
        .arg(manifest_dir().join("tests/python/solo_client.py"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("--tcp")
        .arg(tcp)
        .arg("--program")
        .arg(program)
        .arg("--token-file")
        .arg(daemon.token_file())
        .arg("--out")
        .arg(logs.join("pystubs"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start the python client");
    let status = common::wait_or_kill(&mut child, Duration::from_secs(180));
    let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let mut err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if status.is_none() {
        err.push_str("\n(timed out after 180 s and was killed)");
    }
    (status.is_some_and(|s| s.success()), out, err)
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn python_grpcio_client_drives_solo() {
    if !common::require_root(TEST) {
        return;
    }
    let python = match common::python_env() {
        Ok(p) => p,
        Err(reason) => {
            if common::in_ci() {
                panic!("{TEST}: Python environment unavailable and CI=true forbids skipping: {reason}");
            }
            eprintln!("SKIPPED {TEST}: {reason}");
            return;
        }
    };
    let tcp = format!("127.0.0.1:{}", common::free_port());
    let daemon = common::Daemon::start_with(&["--listen", &tcp]);
    let program = common::program("sleeper");
    let (ok, out, err) = run_client(&python, &daemon, &tcp, &program);
    print!("{out}");
    eprint!("{err}");
    assert!(
        ok,
        "python client failed\n--- stdout ---\n{out}\n--- stderr ---\n{err}\n--- daemon log (tail) ---\n{}",
        tail(&daemon.log(), 200)
    );
    assert!(out.contains("PASS solo_client.py"), "python client exited 0 without its PASS line:\n{out}");
    for transport in ["unix", "tcp"] {
        for line in [
            ": health: service 'solo.v1.Solo' is SERVING",
            ": DescriptorPool resolved solo.v1.Solo",
            ": reflection v1alpha:",
            ": reflection v1:",
            ": 5 unknown methods answer UNIMPLEMENTED",
            ": 300 calls on one connection",
        ] {
            assert!(
                out.contains(&format!("ok   {transport}{line}")),
                "no check `{transport}{line}` in the client's output:\n{out}"
            );
        }
    }
}
