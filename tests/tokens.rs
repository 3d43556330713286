//! Tokens on the control plane, attacked: a real `solo serve`, the real CLI
//! and a real gRPC client present forged, tampered, expired, revoked,
//! parent-revoked, widened, replayed, wrong-service and wrong-permission
//! tokens; each is refused with the reason, recorded as an `access-denied`
//! event in the event store, and no token text ever reaches the log or the
//! store.

mod common;

use common::{program, require_root, Daemon};
use solo::proto::v1 as pb;
use std::time::Duration;
use tonic::Code;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

/// Runs the CLI as `token` and asserts it is refused with `needle` in the error.
fn refused(d: &Daemon, token: &str, args: &[&str], needle: &str) {
    let o = d.cli_as(token, args);
    assert!(!o.status.success(), "solo {args:?} should be refused, got: {}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains(needle), "solo {args:?}: '{e}' does not mention '{needle}'");
}

/// Issues a token as the operator; returns (token, id).
fn issue(d: &Daemon, args: &[&str]) -> (String, String) {
    let mut all = vec!["--json", "token", "issue"];
    all.extend_from_slice(args);
    let out = d.ok(&all);
    let v: serde_json::Value = serde_json::from_str(&out).expect("issue json");
    (v["token"].as_str().expect("token").to_owned(), v["tokenId"].as_str().expect("id").to_owned())
}

/// The denial events recorded in the state database.
fn denials(d: &Daemon) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(d.state.join("solo.db")).expect("open db");
    let mut st =
        db.prepare("SELECT service, message FROM events WHERE kind = 'access-denied' ORDER BY seq").expect("query");
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("rows");
    rows.collect::<Result<_, _>>().expect("read")
}

fn wait_denials(d: &Daemon, n: usize) -> Vec<(String, String)> {
    common::wait_for("denial events", Duration::from_secs(10), || {
        let v = denials(d);
        (v.len() >= n).then_some(v)
    })
}

/// Appends a hand-made block to `token` as a holder can (it knows the last
/// signature, which keys the next MAC), without any narrowing check.
fn append_block(token: &str, block: &serde_json::Value) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (head, sig) = token.rsplit_once('.').expect("token has a signature");
    let sig = b64.decode(sig).expect("signature is base64");
    let bytes = serde_json::to_vec(block).expect("block json");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&sig).expect("hmac key");
    mac.update(&bytes);
    let next = mac.finalize().into_bytes();
    format!("{head}.{}.{}", b64.encode(&bytes), b64.encode(next))
}

/// A request for a token with `permissions` on `resource` (empty: the
/// caller's own), valid `ttl_seconds` (0: the default), for `subject`.
fn token_request(permissions: &[&str], resource: &str, ttl_seconds: u32, subject: &str) -> pb::GrantCapabilityRequest {
    pb::GrantCapabilityRequest {
        service: String::new(),
        what: Some(pb::grant_capability_request::What::Token(pb::TokenGrant {
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            resource: resource.into(),
            ttl_seconds,
            subject: subject.into(),
        })),
    }
}

#[test]
fn every_bad_token_is_refused_with_its_reason_and_recorded() {
    if !require_root("every_bad_token_is_refused_with_its_reason_and_recorded") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let tiny = program("tiny");
    let tiny = tiny.to_str().expect("path");
    // The key and the operator token are the daemon's alone.
    for f in ["token.key", "operator.token"] {
        let mode = std::fs::metadata(d.state.join(f)).expect(f).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let operator = d.operator_token();

    // No token, a garbage one, a forged one (another key), a tampered one.
    let o = std::process::Command::new(common::solo_bin())
        .args(["--socket"])
        .arg(&d.socket)
        .args(["--token-file", "/nonexistent/token", "ls"])
        .output()
        .expect("cli");
    assert!(
        !o.status.success() && stderr(&o).contains("cannot read the token file /nonexistent/token"),
        "{}",
        stderr(&o)
    );
    refused(&d, "garbage", &["ls"], "permission denied");
    let forged = solo::auth::issue(
        &solo::auth::Key::generate(),
        "operator",
        "*",
        solo::auth::Perms::all(),
        solo::auth::now_secs(),
        0,
    )
    .expect("forge")
    .encode();
    refused(&d, &forged, &["ls"], "signature");
    let mut parts: Vec<String> = operator.split('.').map(str::to_owned).collect();
    let block = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let raw = b64.decode(&parts[1]).expect("block");
        let text = String::from_utf8(raw).expect("utf8").replace("operator", "operatoR");
        b64.encode(text)
    };
    parts[1] = block;
    refused(&d, &parts.join("."), &["ls"], "signature");

    // An agent token scoped to agent-a-*, without kill or watch.
    let (agent, agent_id) =
        issue(&d, &["--subject", "agent-a", "--perm", "deploy,status,grant", "--resource", "service:agent-a-*"]);
    d.ok(&["deploy", "other", "--exec", tiny, "--wait"]);
    let o = d.cli_as(&agent, &["deploy", "agent-a-web", "--exec", tiny, "--wait"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.cli_as(&agent, &["status", "agent-a-web"]).status.success());
    // Wrong service, wrong permission, nothing global.
    refused(&d, &agent, &["status", "other"], "'service:other'");
    refused(&d, &agent, &["deploy", "web", "--exec", tiny], "'service:web'");
    refused(&d, &agent, &["kill", "agent-a-web"], "lacks permission 'kill'");
    refused(&d, &agent, &["shutdown"], "lacks permission 'shutdown'");
    // Listing shows only what the token covers.
    let ls = stdout(&d.cli_as(&agent, &["ls"]));
    assert!(ls.contains("agent-a-web") && !ls.contains("other"), "{ls}");

    // Attenuation: the CLI refuses to widen; a hand-made wider block (a
    // valid MAC chain) is refused by the verifier.
    let o = d.cli_as(&agent, &["token", "attenuate", "--perm", "kill"]);
    assert!(!o.status.success(), "widening must be refused");
    let widened = append_block(
        &agent,
        &serde_json::json!({"id": "0123456789abcdef0123456789abcdef", "sub": "agent-a", "res": "*",
            "perms": ["deploy", "status", "grant", "kill"], "iat": solo::auth::now_secs(), "exp": 0, "parent": agent_id}),
    );
    refused(&d, &widened, &["kill", "agent-a-web"], "");
    let o = d.cli_as(&widened, &["ls"]);
    assert!(!o.status.success(), "a widened chain must not verify: {}", stdout(&o));
    // A narrower child works, offline-made.
    let o = d.cli_as(
        &agent,
        &["token", "attenuate", "--perm", "status", "--resource", "service:agent-a-web", "--ttl", "10m"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let child = stdout(&o);
    assert!(d.cli_as(&child, &["status", "agent-a-web"]).status.success());
    refused(&d, &child, &["deploy", "agent-a-x", "--exec", tiny], "lacks permission 'deploy'");

    // Expired.
    let (short, _) = issue(&d, &["--subject", "brief", "--perm", "status", "--ttl", "1s"]);
    assert!(d.cli_as(&short, &["ls"]).status.success());
    std::thread::sleep(Duration::from_millis(2100));
    refused(&d, &short, &["ls"], "expired");

    // Revoked, parent-revoked (API-issued and offline children), replayed.
    let o = d.cli_as(&agent, &["--json", "token", "issue", "--subject", "agent-a-helper", "--perm", "status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let grandchild = v["token"].as_str().expect("token").to_owned();
    assert!(d.cli_as(&grandchild, &["status", "agent-a-web"]).status.success(), "used once before revocation");
    // An agent cannot revoke what was not issued beneath it; nobody revokes the operator token.
    let (stranger, stranger_id) = issue(&d, &["--subject", "b", "--perm", "status"]);
    refused(&d, &agent, &["token", "revoke", &stranger_id], "not issued beneath");
    let o = d.cli_as(&agent, &["--json", "token", "issue", "--subject", "sub", "--perm", "grant,status"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let sub_agent = v["token"].as_str().expect("token").to_owned();
    refused(&d, &sub_agent, &["token", "revoke", &agent_id], "not issued beneath");
    let op_id = solo::auth::Token::parse(&operator).expect("parse").id().to_owned();
    assert!(d.fails(&["token", "revoke", &op_id]).contains("cannot be revoked"));
    let out = d.ok(&["token", "revoke", &agent_id]);
    assert!(out.contains("revoked 3"), "agent + its two issued children: {out}");
    refused(&d, &agent, &["status", "agent-a-web"], "revoked");
    refused(&d, &grandchild, &["status", "agent-a-web"], "revoked");
    refused(&d, &child, &["status", "agent-a-web"], "revoked");
    // Revocation survives a daemon restart (it is in SQLite).
    let mut d = d;
    d.restart();
    refused(&d, &agent, &["status", "agent-a-web"], "revoked");
    assert!(d.cli_as(&stranger, &["ls"]).status.success(), "unrelated tokens still work");
    assert_eq!(d.operator_token(), operator, "the operator token is kept across restarts");

    // Every refusal was recorded, by id, never by text.
    let events = wait_denials(&d, 12);
    let all: String = events.iter().map(|(s, m)| format!("{s}: {m}\n")).collect();
    assert!(all.contains(&agent_id), "{all}");
    assert!(all.contains("expired") && all.contains("revoked") && all.contains("signature"), "{all}");
    let db = std::fs::read(d.state.join("solo.db")).expect("db");
    let log = d.log();
    for (name, t) in [("operator", &operator), ("agent", &agent), ("child", &child), ("forged", &forged)] {
        let sig = t.rsplit('.').next().expect("sig");
        assert!(!log.contains(sig), "{name} token signature in the daemon log");
        assert!(!db.windows(sig.len()).any(|w| w == sig.as_bytes()), "{name} token signature in the database");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_calls_need_a_token_and_system_services_need_system() {
    if !require_root("grpc_calls_need_a_token_and_system_services_need_system") {
        return;
    }
    let d = Daemon::start();
    let tiny = std::fs::read(program("tiny")).expect("tiny");
    let spec = |id: &str, tier: pb::Tier| pb::ServiceSpec {
        id: id.into(),
        artifact: Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact {
                content: tiny.clone(),
                ..Default::default()
            })),
        }),
        tier: tier as i32,
        ..Default::default()
    };
    // No header at all: UNAUTHENTICATED, for every RPC.
    let mut anon = d.client_as(None).await;
    let e = anon.list(pb::ListRequest::default()).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let e = anon.shutdown(pb::ShutdownRequest::default()).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated);
    // Health stays open (liveness probes carry no token).
    let mut op = d.client().await;
    op.deploy(pb::DeployRequest { spec: Some(spec("core", pb::Tier::System)), wait: true })
        .await
        .expect("system deploy");
    op.deploy(pb::DeployRequest { spec: Some(spec("app", pb::Tier::User)), wait: true }).await.expect("user deploy");
    // An agent token over everything, but without `system`.
    let r = op
        .grant_capability(token_request(&["status", "kill", "deploy"], "*", 600, "agent-x"))
        .await
        .expect("issue")
        .into_inner();
    assert_eq!(r.token_id.len(), 32);
    let mut agent = d.client_as(Some(&r.token)).await;
    agent.status(pb::StatusRequest { id: "app".into() }).await.expect("user tier is fine");
    let e = agent.kill(pb::KillRequest { id: "core".into(), ..Default::default() }).await.expect_err("system tier");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("'system'"), "{}", e.message());
    let e = agent
        .deploy(pb::DeployRequest { spec: Some(spec("core2", pb::Tier::System)), wait: true })
        .await
        .expect_err("deploying a system service");
    assert_eq!(e.code(), Code::PermissionDenied);
    // A token cannot issue a wider one (no grant permission here at all).
    let e = agent.grant_capability(token_request(&["status"], "", 0, "y")).await.expect_err("no grant permission");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("'grant'"), "{}", e.message());
    // Bad requests name the field.
    let e = op.grant_capability(token_request(&["fly"], "", 0, "y")).await.expect_err("bad permission");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("token.permissions") && e.message().contains("fly"), "{}", e.message());
    let e = op
        .revoke_capability(pb::RevokeCapabilityRequest {
            what: Some(pb::revoke_capability_request::What::TokenId("xyz".into())),
        })
        .await
        .expect_err("bad id");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("token_id"), "{}", e.message());
    // The operator still reaches the system service.
    op.status(pb::StatusRequest { id: "core".into() }).await.expect("operator sees system services");

    // An agent that may deploy and grant, but not `system`: no host paths,
    // no privileged ports, no system services even in lists.
    let r = op
        .grant_capability(token_request(&["deploy", "grant", "status"], "*", 600, "agent-g"))
        .await
        .expect("issue")
        .into_inner();
    let mut granter = d.client_as(Some(&r.token)).await;
    let listed = granter.list(pb::ListRequest::default()).await.expect("list").into_inner();
    let ids: Vec<&str> = listed.services.iter().map(|s| s.id.as_str()).collect();
    assert!(ids.contains(&"app") && !ids.contains(&"core"), "{ids:?}");
    let sock = d.dir.path().join("agent.sock");
    for (g, why) in [
        ("dir:/srv:ro".to_owned(), "a host path"),
        (format!("listen:unix:{}", sock.display()), "a host path"),
        ("listen:tcp:127.0.0.1:80".to_owned(), "a privileged port"),
    ] {
        let mut s = spec("grabby", pb::Tier::User);
        s.grants = vec![pb::Grant { spec: g.clone(), name: String::new() }];
        let e = granter.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.expect_err("host grant");
        assert_eq!(e.code(), Code::PermissionDenied, "{g}: {}", e.message());
        assert!(e.message().contains(why) && e.message().contains("'system'"), "{g}: {}", e.message());
    }
    // An unprivileged port is the agent's to ask for.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut s = spec("fine", pb::Tier::User);
    s.grants = vec![pb::Grant { spec: format!("listen:tcp:127.0.0.1:{port}"), name: "http".into() }];
    granter.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.expect("unprivileged listen grant");
    // The same port again, or an existing file as a unix socket: refused, nothing created.
    let mut s = spec("twice", pb::Tier::User);
    s.grants = vec![pb::Grant { spec: format!("listen:tcp:127.0.0.1:{port}"), name: "http".into() }];
    let e = op.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.expect_err("port in use");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("spec.grants[0]") && e.message().contains("in use"), "{}", e.message());
    std::fs::write(&sock, b"not a socket").expect("file");
    let mut s = spec("clobber", pb::Tier::User);
    s.grants = vec![pb::Grant { spec: format!("listen:unix:{}", sock.display()), name: "u".into() }];
    let e = op.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.expect_err("existing path");
    assert!(e.message().contains("exists"), "{}", e.message());
    assert_eq!(std::fs::read(&sock).expect("file kept"), b"not a socket");
    for id in ["twice", "clobber", "grabby"] {
        let e = op.status(pb::StatusRequest { id: id.into() }).await.expect_err("not created");
        assert_eq!(e.code(), Code::NotFound);
    }
}
