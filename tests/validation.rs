//! Bad input gets a clear error naming the field, and loses nothing: after
//! every rejected request the daemon is alive and its state unchanged.

mod common;

use common::{program, require_root, Daemon};
use solo::proto::v1 as pb;
use tonic::Code;

fn spec(id: &str, content: Vec<u8>) -> pb::ServiceSpec {
    pb::ServiceSpec {
        id: id.into(),
        artifact: Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact { content, ..Default::default() })),
        }),
        ..Default::default()
    }
}

fn deploy(s: pb::ServiceSpec) -> pb::DeployRequest {
    pb::DeployRequest { spec: Some(s), wait: true }
}

async fn expect_err(c: &mut solo::cli::Client, req: pb::DeployRequest, code: Code, needle: &str) {
    let e = c.deploy(req).await.expect_err("deploy should be refused");
    assert_eq!(e.code(), code, "{}", e.message());
    assert!(e.message().contains(needle), "'{}' does not mention '{needle}'", e.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_rejects_bad_requests_and_keeps_state() {
    if !require_root("grpc_rejects_bad_requests_and_keeps_state") {
        return;
    }
    let d = Daemon::start_with(&["--upload-limit", "64KiB"]);
    let mut c = d.client().await;
    let elf = std::fs::read(program("sleeper")).expect("sleeper");
    let tiny = std::fs::read(program("tiny")).expect("tiny");
    assert!(elf.len() > 64 << 10, "sleeper should exceed the 64KiB test limit");
    c.deploy(deploy(spec("good", tiny.clone()))).await.expect("good deploy");

    // Ids.
    expect_err(&mut c, deploy(spec("Bad_Id", tiny.clone())), Code::InvalidArgument, "spec.id").await;
    expect_err(&mut c, deploy(spec("", tiny.clone())), Code::InvalidArgument, "spec.id: must not be empty").await;
    expect_err(&mut c, deploy(spec(&"a".repeat(64), tiny.clone())), Code::InvalidArgument, "at most 63").await;
    expect_err(&mut c, deploy(spec("good", tiny.clone())), Code::AlreadyExists, "'good' already exists").await;
    // Artifacts.
    let mut s = spec("x", vec![]);
    s.artifact = None;
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.artifact: is required").await;
    expect_err(&mut c, deploy(spec("x", vec![])), Code::InvalidArgument, "spec.artifact.executable.content: is empty")
        .await;
    expect_err(&mut c, deploy(spec("x", b"#!/bin/sh\necho hi\n".to_vec())), Code::InvalidArgument, "not an ELF").await;
    expect_err(&mut c, deploy(spec("x", elf.clone())), Code::ResourceExhausted, "upload limit is 65536").await;
    let mut big = tiny.clone();
    big.resize(8 << 20, 0);
    let e = c.deploy(deploy(spec("x", big))).await.expect_err("huge upload");
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(e.message().contains("upload limit"), "{}", e.message());
    let mut s = spec("x", vec![]);
    s.artifact = Some(pb::Artifact {
        kind: Some(pb::artifact::Kind::Script(pb::ScriptArtifact {
            interpreter: "cobol".into(),
            source: b"x".to_vec(),
            ..Default::default()
        })),
    });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "unknown interpreter 'cobol'").await;
    let mut s = spec("x", vec![]);
    s.artifact = Some(pb::Artifact {
        kind: Some(pb::artifact::Kind::HostPath(pb::HostPathArtifact { path: "/nonexistent/bin".into() })),
    });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.artifact.host_path.path").await;
    let mut s = spec("x", vec![]);
    s.artifact = Some(pb::Artifact {
        kind: Some(pb::artifact::Kind::HostPath(pb::HostPathArtifact { path: "/etc/shadow".into() })),
    });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "not executable by other users").await;
    // Args and env.
    let mut s = spec("x", tiny.clone());
    s.args = vec!["ok".into(), "nul\0byte".into()];
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.args[1]: contains a NUL byte").await;
    let mut s = spec("x", tiny.clone());
    s.env.insert("K".into(), "v\0".into());
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.env[K]: contains a NUL byte").await;
    let mut s = spec("x", tiny.clone());
    s.env.insert("BAD-NAME".into(), "v".into());
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.env[BAD-NAME]").await;
    let mut s = spec("x", tiny.clone());
    for i in 0..40 {
        s.env.insert(format!("HUGE{i}"), "v".repeat(100_000));
    }
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "args and env together").await;
    let mut s = spec("x", tiny.clone());
    s.env.insert("SOLO_SERVICE".into(), "spoof".into());
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "set by the supervisor").await;
    // Profile, limits, restart, replicas.
    let mut s = spec("x", tiny.clone());
    s.profile = "yolo".into();
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "unknown profile 'yolo'").await;
    let limits = |f: fn(&mut pb::Limits)| {
        let mut l = pb::Limits::default();
        f(&mut l);
        let mut s = spec("x", tiny.clone());
        s.limits = Some(l);
        deploy(s)
    };
    expect_err(&mut c, limits(|l| l.memory_bytes = 1), Code::InvalidArgument, "spec.limits.memory_bytes").await;
    expect_err(&mut c, limits(|l| l.memory_bytes = u64::MAX), Code::InvalidArgument, "spec.limits.memory_bytes").await;
    expect_err(&mut c, limits(|l| l.cpu_weight = 1_000_000), Code::InvalidArgument, "spec.limits.cpu_weight").await;
    expect_err(&mut c, limits(|l| l.cpu_max_millicores = 1), Code::InvalidArgument, "spec.limits.cpu_max_millicores")
        .await;
    expect_err(&mut c, limits(|l| l.max_pids = u32::MAX), Code::InvalidArgument, "spec.limits.max_pids").await;
    expect_err(&mut c, limits(|l| l.max_open_files = 1), Code::InvalidArgument, "spec.limits.max_open_files").await;
    let mut s = spec("x", tiny.clone());
    s.restart = Some(pb::RestartSpec { backoff_jitter: -1.0, ..Default::default() });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.restart.backoff_jitter").await;
    let mut s = spec("x", tiny.clone());
    s.restart = Some(pb::RestartSpec { policy: 99, ..Default::default() });
    // An unknown enum value falls back to the default policy, never panics.
    c.deploy(deploy(s)).await.expect("unknown enum is the default");
    c.kill(pb::KillRequest { id: "x".into(), force: true, remove: true, timeout_ms: 0 }).await.expect("cleanup");
    let mut s = spec("x", tiny.clone());
    s.replicas = 1_000_000;
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.replicas").await;
    // Grants and readiness: each bad field named.
    let mut s = spec("x", tiny.clone());
    s.readiness = Some(pb::Readiness { kind: 9, ..Default::default() });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.readiness.kind").await;
    let mut s = spec("x", tiny.clone());
    s.readiness =
        Some(pb::Readiness { kind: pb::ReadinessKind::Tcp as i32, tcp_grant: "web".into(), ..Default::default() });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.readiness.tcp_grant").await;
    let mut s = spec("x", tiny.clone());
    s.readiness = Some(pb::Readiness {
        kind: pb::ReadinessKind::Notify as i32,
        startup_timeout_ms: 999_999_999,
        ..Default::default()
    });
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "spec.readiness.startup_timeout_ms").await;
    for (g, field) in [
        ("dir:/proc:ro", "spec.grants[0]"),
        ("dir:/srv", "spec.grants[0]"),
        ("listen:tcp:nowhere", "spec.grants[0]"),
        ("file:/etc/passwd", "spec.grants[0]"),
        ("dir:/nonexistent-solo-dir:ro", "spec.grants[0]"),
    ] {
        let mut s = spec("x", tiny.clone());
        s.grants = vec![pb::Grant { spec: g.into(), name: String::new() }];
        expect_err(&mut c, deploy(s), Code::InvalidArgument, field).await;
    }
    let mut s = spec("x", tiny.clone());
    s.grants = vec![
        pb::Grant { spec: "service:a".into(), name: "same".into() },
        pb::Grant { spec: "service:b".into(), name: "same".into() },
    ];
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "used twice").await;
    let mut s = spec("x", tiny.clone());
    s.grants = vec![pb::Grant { spec: "service:a".into(), name: "solo-control".into() }];
    expect_err(&mut c, deploy(s), Code::InvalidArgument, "reserved").await;
    // None of the refused deploys left anything behind.
    let e = c.status(pb::StatusRequest { id: "x".into() }).await.expect_err("x must not exist");
    assert_eq!(e.code(), Code::NotFound);
    let e = c.deploy(pb::DeployRequest { spec: None, wait: false }).await.expect_err("no spec");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Other RPCs.
    let e = c.status(pb::StatusRequest { id: "ghost".into() }).await.expect_err("ghost");
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("'ghost' not found"));
    let e = c.status(pb::StatusRequest { id: "../etc".into() }).await.expect_err("bad id");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c.kill(pb::KillRequest { id: "ghost".into(), ..Default::default() }).await.expect_err("kill ghost");
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .kill(pb::KillRequest { id: "good".into(), timeout_ms: u32::MAX, ..Default::default() })
        .await
        .expect_err("timeout");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("timeout_ms"));
    let e = c.list(pb::ListRequest { state: 42, ..Default::default() }).await.expect_err("bad state");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c.watch(pb::WatchRequest { id: "ghost".into(), ..Default::default() }).await.expect_err("watch ghost");
    assert_eq!(e.code(), Code::NotFound);
    let e = c.watch(pb::WatchRequest { tail: 1_000_000, ..Default::default() }).await.expect_err("tail");
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c.update(pb::UpdateRequest::default()).await.expect_err("update");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("spec: is required"), "{}", e.message());
    let bad_updates = [
        (
            pb::UpdateRequest { action: 99, id: "good".into(), ..Default::default() },
            "action: 99 is not an UpdateAction",
        ),
        (
            pb::UpdateRequest { action: pb::UpdateAction::Rollback as i32, ..Default::default() },
            "id: must not be empty",
        ),
        (
            pb::UpdateRequest {
                action: pb::UpdateAction::Promote as i32,
                id: "good".into(),
                spec: Some(spec("good", tiny.clone())),
                ..Default::default()
            },
            "spec: not with action UPDATE_ACTION_PROMOTE",
        ),
        (
            pb::UpdateRequest {
                spec: Some(spec("good", tiny.clone())),
                strategy: Some(pb::update_request::Strategy::Canary(pb::CanaryStrategy {
                    percent: 150,
                    ..Default::default()
                })),
                ..Default::default()
            },
            "canary.percent: 150 is outside 1..=100",
        ),
        (
            pb::UpdateRequest {
                spec: Some(spec("good", tiny.clone())),
                strategy: Some(pb::update_request::Strategy::Rolling(pb::RollingStrategy {
                    max_unavailable: Some(1),
                    max_surge: None,
                })),
                ..Default::default()
            },
            "rolling.max_unavailable: 1 would let all 1 replica(s) be down at once",
        ),
        (
            pb::UpdateRequest { spec: Some(spec("good", tiny.clone())), min_ready_ms: u32::MAX, ..Default::default() },
            "min_ready_ms: 4294967295 ms is more than the maximum",
        ),
    ];
    for (req, want) in bad_updates {
        let e = c.update(req).await.expect_err(want);
        assert_eq!(e.code(), Code::InvalidArgument, "{want}: {}", e.message());
        assert!(e.message().contains(want), "{want}: {}", e.message());
    }
    let e = c.update(pb::UpdateRequest { spec: Some(spec("ghost", tiny.clone())), ..Default::default() }).await;
    assert_eq!(e.expect_err("ghost").code(), Code::NotFound);
    // A good one streams its progress to the end.
    let good = pb::UpdateRequest { spec: Some(spec("good", tiny.clone())), min_ready_ms: 50, ..Default::default() };
    let mut progress = c.update(good).await.expect("update").into_inner();
    let mut last = None;
    while let Some(p) = progress.message().await.expect("progress") {
        last = Some(p);
    }
    let last = last.expect("some progress");
    assert!(last.done && !last.rolled_back && last.revision == 2, "{last:?}");
    let e = c.grant_capability(pb::GrantCapabilityRequest::default()).await.expect_err("grant");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("what"), "{}", e.message());
    let e = c.revoke_capability(pb::RevokeCapabilityRequest::default()).await.expect_err("revoke");
    assert_eq!(e.code(), Code::InvalidArgument);
    for (id, field) in [("nope", "grant_id"), ("Bad/x", "grant_id")] {
        let r = pb::RevokeCapabilityRequest { what: Some(pb::revoke_capability_request::What::GrantId(id.into())) };
        let e = c.revoke_capability(r).await.expect_err("bad grant id");
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains(field), "{}", e.message());
    }
    let r =
        pb::RevokeCapabilityRequest { what: Some(pb::revoke_capability_request::What::GrantId("good/none".into())) };
    assert_eq!(c.revoke_capability(r).await.expect_err("no such grant").code(), Code::NotFound);
    let r = pb::GrantCapabilityRequest {
        service: "good".into(),
        what: Some(pb::grant_capability_request::What::Fd(pb::Grant {
            spec: "dir:/proc:ro".into(),
            name: String::new(),
        })),
    };
    let e = c.grant_capability(r).await.expect_err("bad fd grant");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("fd.spec"), "{}", e.message());
    let r = pb::GrantCapabilityRequest {
        service: "ghost".into(),
        what: Some(pb::grant_capability_request::What::Fd(pb::Grant {
            spec: "service:good".into(),
            name: String::new(),
        })),
    };
    assert_eq!(c.grant_capability(r).await.expect_err("no such service").code(), Code::NotFound);
    let e = c.shutdown(pb::ShutdownRequest { timeout_ms: u32::MAX }).await.expect_err("shutdown timeout");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Nothing was lost or half-created.
    let list = c.list(pb::ListRequest::default()).await.expect("list").into_inner();
    let ids: Vec<_> = list.services.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["good"]);
    assert_eq!(list.services[0].state, pb::ServiceState::Running as i32);
    let db = rusqlite::Connection::open(d.state.join("solo.db")).expect("db");
    let n: i64 = db.query_row("SELECT count(*) FROM services", [], |r| r.get(0)).expect("count");
    assert_eq!(n, 1);
}

#[test]
fn cli_reports_bad_input_clearly() {
    if !require_root("cli_reports_bad_input_clearly") {
        return;
    }
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("s.sh");
    std::fs::write(&script, "echo hi\n").expect("script");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").expect("empty");
    let s = script.to_str().expect("utf8");
    let tiny = program("tiny");
    let tiny = tiny.to_str().expect("utf8");

    let err = d.fails(&["deploy", "Bad", "--exec", tiny]);
    assert!(err.contains("invalid argument: spec.id:"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", s]);
    assert!(err.contains("not an ELF executable"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", empty.to_str().expect("utf8")]);
    assert!(err.contains("is empty"), "{err}");
    let err = d.fails(&["deploy", "x", "--script", s, "--interpreter", "ruby"]);
    assert!(err.contains("unknown interpreter 'ruby'"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", "/nonexistent"]);
    assert!(err.contains("--exec: cannot read /nonexistent"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", tiny, "--memory", "lots"]);
    assert!(err.contains("--memory"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", tiny, "--memory=-5M"]);
    assert!(err.contains("--memory"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", tiny, "--max-pids", "0"]);
    assert!(err.contains("--max-pids: must be at least 1"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", tiny, "--cpu-weight", "99999"]);
    assert!(err.contains("spec.limits.cpu_weight"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", tiny, "--env", "NOEQUALS"]);
    assert!(err.contains("--env: 'NOEQUALS' is not K=V"), "{err}");
    let err = d.fails(&["deploy", "x", "--exec", tiny, "--profile", "nope"]);
    assert!(err.contains("unknown profile 'nope'"), "{err}");
    let err = d.fails(&["deploy", "x"]);
    assert!(err.contains("--exec") || err.contains("required"), "{err}");
    let err = d.fails(&["kill", "ghost"]);
    assert!(err.contains("not found: service 'ghost' not found"), "{err}");
    let err = d.fails(&["status", "ghost"]);
    assert!(err.contains("not found"), "{err}");
    let err = d.fails(&["ls", "--state", "sleepy"]);
    assert!(err.contains("--state: 'sleepy'"), "{err}");
    d.ok(&["deploy", "x", "--exec", tiny, "--wait"]);
    let err = d.fails(&["deploy", "x", "--exec", tiny]);
    assert!(err.contains("already exists"), "{err}");
    // No daemon at all: the error says what to do.
    let o = std::process::Command::new(common::solo_bin())
        .args(["--socket", "/nonexistent/solo.sock", "ls"])
        .output()
        .expect("cli");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is `solo serve` running?"));
}

#[test]
fn serve_refuses_bad_flags() {
    let o =
        std::process::Command::new(common::solo_bin()).args(["serve", "--uid-range", "0-10"]).output().expect("serve");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("uid 0 is root"));
    let o =
        std::process::Command::new(common::solo_bin()).args(["serve", "--upload-limit", "12"]).output().expect("serve");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("too small"));
    for bad in ["0", "65", "two"] {
        let o =
            std::process::Command::new(common::solo_bin()).args(["serve", "--workers", bad]).output().expect("serve");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--workers {bad}: {err}");
        assert!(err.contains("--workers"), "names the flag: {err}");
    }
    for bad in ["0", "100001", "many"] {
        let o = std::process::Command::new(common::solo_bin())
            .args(["serve", "--log-ring-lines", bad])
            .output()
            .expect("serve");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--log-ring-lines {bad}: {err}");
        assert!(err.contains("--log-ring-lines"), "names the flag: {err}");
    }
}

#[test]
fn serve_refuses_a_state_dir_services_cannot_reach() {
    if !require_root("serve_refuses_a_state_dir_services_cannot_reach") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let o = std::process::Command::new(common::solo_bin())
        .arg("serve")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .output()
        .expect("serve");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not reachable by service uids") && err.contains("chmod o+x"), "{err}");
}

#[test]
fn host_path_must_be_an_elf_reachable_by_services() {
    if !require_root("host_path_must_be_an_elf_reachable_by_services") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = d.fails(&["deploy", "x", "--host-path", script.to_str().expect("utf8")]);
    assert!(err.contains("is a script (#!)"), "{err}");
    let hidden = dir.path().join("private");
    std::fs::create_dir(&hidden).expect("mkdir");
    std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let bin = hidden.join("tiny");
    std::fs::copy(program("tiny"), &bin).expect("copy");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = d.fails(&["deploy", "x", "--host-path", bin.to_str().expect("utf8")]);
    assert!(err.contains("which other users cannot enter"), "{err}");
    d.ok(&["deploy", "x", "--host-path", "/bin/sleep", "--arg", "100", "--wait"]);
}

#[test]
fn serve_refuses_to_run_without_root() {
    if !require_root("serve_refuses_to_run_without_root") {
        return;
    }
    // Drop to nobody with setpriv (util-linux) and try to start the daemon.
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(common::solo_bin())
        .args(["serve", "--state-dir", "/nonexistent/state", "--runtime-dir", "/nonexistent/run"])
        .output()
        .expect("setpriv (util-linux) must be installed");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("solo serve must run as root") && err.contains("sudo"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_is_private_and_tcp_listener_serves_the_same_api() {
    if !require_root("socket_is_private_and_tcp_listener_serves_the_same_api") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    // Find a free loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(&["--listen", &addr]);
    let mode = std::fs::metadata(&d.socket).expect("socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let url = format!("http://{addr}");
    let mut tcp = solo::cli::connect(std::path::Path::new(&url), Some(&d.operator_token())).await.expect("tcp connect");
    let tiny = std::fs::read(program("tiny")).expect("tiny");
    tcp.deploy(deploy(spec("over-tcp", tiny))).await.expect("deploy over tcp");
    let out = d.ok(&["ls"]);
    assert!(out.contains("over-tcp"), "{out}");
    let via_cli = std::process::Command::new(common::solo_bin())
        .args(["--socket", &url, "status", "over-tcp"])
        .env("SOLO_STATE_DIR", &d.state)
        .output()
        .expect("cli");
    assert!(via_cli.status.success(), "{}", String::from_utf8_lossy(&via_cli.stderr));
}
