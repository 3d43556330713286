//! The audit log against a real `solo serve`: every decision is recorded
//! (deploy, grants, starts with their profile hash, tokens, kills, denied
//! syscalls), the hash chain verifies, and editing, deleting, reordering
//! or truncating records directly in the SQLite store is caught by
//! `solo audit verify` at the right sequence number. Scope: an agent's
//! token sees only its services. Retention prunes behind a signed
//! checkpoint and the chain still verifies. Bad input names the field.

mod common;

use common::{program, require_root, wait_for, Daemon};
use serde_json::Value;
use solo::proto::v1 as pb;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn exec(p: &str) -> String {
    program(p).display().to_string()
}

/// `solo audit --json ARGS`: one record per line.
fn records(d: &Daemon, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["--json", "audit", "--limit", "10000"];
    a.extend_from_slice(args);
    d.ok(&a).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn kinds(recs: &[Value]) -> Vec<String> {
    recs.iter().map(|r| r["kind"].as_str().unwrap_or("").to_owned()).collect()
}

fn detail(r: &Value) -> Value {
    serde_json::from_str(r["detailJson"].as_str().unwrap_or("{}")).expect("detail JSON")
}

fn seq(r: &Value) -> u64 {
    r["seq"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The store, opened beside the running daemon (WAL: both may write).
fn db(d: &Daemon) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(d.state.join("solo.db")).expect("open the state database");
    c.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    c
}

/// `solo audit verify`: (exit ok, stdout).
fn verify(d: &Daemon) -> (bool, String) {
    let o = d.cli(&["audit", "verify"]);
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
}

#[test]
fn every_decision_is_recorded_and_the_chain_verifies() {
    if !require_root("every_decision_is_recorded_and_the_chain_verifies") {
        return;
    }
    let d = Daemon::start();
    let data = tempfile::Builder::new().prefix("solo-audit-").tempdir_in("/var/tmp").expect("tempdir");
    let grant = format!("data=dir:{}:ro", data.path().display());
    d.ok(&["deploy", "web", "--exec", &exec("sleeper"), "--grant", &grant, "--wait"]);
    let token = d.ok(&["token", "issue", "--subject", "agent-a", "--perm", "status", "--resource", "service:web"]);
    let token = token.trim();
    let id = solo::auth::Token::parse(token).expect("token").id().to_owned();
    d.ok(&["token", "revoke", &id]);
    d.ok(&["kill", "web", "--remove"]);
    let all = records(&d, &[]);
    let k = kinds(&all);
    for want in ["daemon-start", "deploy", "grant", "start", "token-issue", "token-revoke", "kill", "exit", "remove"] {
        assert!(k.iter().any(|x| x == want), "no {want} record in {k:?}");
    }
    // Sequence numbers are contiguous from 1, each links to the one before.
    for (i, r) in all.iter().enumerate() {
        assert_eq!(seq(r), i as u64 + 1);
        if i > 0 {
            assert_eq!(r["prevSha256"], all[i - 1]["sha256"], "record {} does not link", i + 1);
        }
    }
    let operator = solo::auth::Token::parse(&d.operator_token()).expect("operator token").id().to_owned();
    let deploy = all.iter().find(|r| r["kind"] == "deploy").expect("deploy");
    assert_eq!(deploy["actor"], operator.as_str(), "who deployed");
    let dd = detail(deploy);
    assert_eq!(dd["profile"], "default");
    assert_eq!(dd["profile_sha256"].as_str().map(str::len), Some(64), "{dd}");
    assert_eq!(dd["artifact_sha256"].as_str().map(str::len), Some(64), "{dd}");
    assert!(dd["grants"][0].as_str().unwrap_or("").starts_with("data=dir:"), "{dd}");
    assert!(dd["limits"]["memory_bytes"].as_u64().is_some(), "{dd}");
    // Every start names the profile and the hash it ran under.
    let start = all.iter().find(|r| r["kind"] == "start").expect("start");
    assert_eq!(detail(start)["profile_sha256"], dd["profile_sha256"]);
    let issue = all.iter().find(|r| r["kind"] == "token-issue").expect("token-issue");
    assert_eq!(detail(issue)["token"], id.as_str());
    // Token text never reaches the log, only ids.
    let text = d.ok(&["--json", "audit", "--limit", "10000"]);
    assert!(!text.contains(token), "token text in the audit log");
    let exit = all.iter().find(|r| r["kind"] == "exit").expect("exit");
    assert_eq!(detail(exit)["stopped"], true);
    // Export: the same records, every one.
    let exported = d.ok(&["audit", "export"]);
    assert!(exported.lines().count() >= all.len());
    for l in exported.lines() {
        let r: Value = serde_json::from_str(l).expect("one JSON record per line");
        assert!(seq(&r) > 0 && r["sha256"].as_str().is_some_and(|h| h.len() == 64), "{l}");
    }
    // Filters: by service and by kind.
    assert!(records(&d, &["--service", "web"]).iter().all(|r| r["service"] == "web"));
    assert_eq!(kinds(&records(&d, &["--kind", "kill"])), ["kill"]);
    let (ok, out) = verify(&d);
    assert!(ok, "{out}");
    assert!(out.starts_with("audit chain intact: records 1.."), "{out}");
    // The human table has the columns.
    let t = d.ok(&["audit", "--service", "web"]);
    assert!(t.starts_with("SEQ") && t.contains("deploy"), "{t}");
}

#[test]
fn tampering_in_the_store_is_found_at_its_record() {
    if !require_root("tampering_in_the_store_is_found_at_its_record") {
        return;
    }
    let mut d = Daemon::start();
    for i in 0..3 {
        d.ok(&["deploy", &format!("s{i}"), "--exec", &exec("sleeper"), "--wait"]);
    }
    for i in 0..3 {
        d.ok(&["kill", &format!("s{i}"), "--remove"]);
    }
    let all = records(&d, &[]);
    assert!(all.len() >= 15, "{} records", all.len());
    assert!(verify(&d).0);
    let c = db(&d);
    // The daemon's own triggers refuse rewrites; someone editing the file
    // drops them first. The chain still tells.
    let e = c.execute("UPDATE audit SET message = 'x' WHERE seq = 5", []).expect_err("the trigger refuses");
    assert!(e.to_string().contains("append-only"), "{e}");
    c.execute_batch("DROP TRIGGER audit_append_only; DROP TRIGGER audit_prune_behind_checkpoint;").expect("drop");
    let broken = |d: &Daemon, want: &str| {
        let (ok, out) = verify(d);
        assert!(!ok, "verify passed after tampering:\n{out}");
        assert!(out.contains(want), "want '{want}' in:\n{out}");
    };

    // 1. Edit a record in place.
    let msg: String = c.query_row("SELECT message FROM audit WHERE seq = 7", [], |r| r.get(0)).expect("read");
    c.execute("UPDATE audit SET message = 'nothing happened' WHERE seq = 7", []).expect("edit");
    broken(&d, "audit chain BROKEN at record 7 (altered)");
    c.execute("UPDATE audit SET message = ?1 WHERE seq = 7", [&msg]).expect("restore");
    assert!(verify(&d).0, "restored");

    // 2. Delete a record.
    c.execute_batch("CREATE TEMP TABLE saved AS SELECT * FROM audit WHERE seq = 9; DELETE FROM audit WHERE seq = 9;")
        .expect("delete");
    broken(&d, "audit chain BROKEN at record 9 (missing)");
    c.execute_batch("INSERT INTO audit SELECT * FROM saved; DROP TABLE saved;").expect("restore");
    assert!(verify(&d).0, "restored");

    // 3. Reorder two records (swap their sequence numbers).
    c.execute_batch(
        "UPDATE audit SET seq = -1 WHERE seq = 11; UPDATE audit SET seq = 11 WHERE seq = 12; UPDATE audit SET seq = 12 WHERE seq = -1;",
    )
    .expect("swap");
    broken(&d, "audit chain BROKEN at record 11 (altered)");
    c.execute_batch(
        "UPDATE audit SET seq = -1 WHERE seq = 12; UPDATE audit SET seq = 12 WHERE seq = 11; UPDATE audit SET seq = 11 WHERE seq = -1;",
    )
    .expect("swap back");
    assert!(verify(&d).0, "restored");

    // 4. Edit a record and recompute its hash (anyone can compute SHA-256):
    // the next record no longer links to it.
    let (orig_hash, s13): (String, solo::audit::Stored) = {
        let mut st = c
            .prepare("SELECT seq, at_ms, kind, service, actor, message, detail, prev, hash FROM audit WHERE seq = 13")
            .expect("prepare");
        st.query_row([], |r| {
            let h = |i: usize| -> rusqlite::Result<[u8; 32]> {
                Ok(solo::audit::from_hex32(&r.get::<_, String>(i)?).unwrap_or([0; 32]))
            };
            Ok((
                r.get::<_, String>(8)?,
                solo::audit::Stored {
                    seq: 13,
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    service: r.get(3)?,
                    actor: r.get(4)?,
                    message: "rewritten".into(),
                    detail: r.get(6)?,
                    prev: h(7)?,
                    hash: h(8)?,
                },
            ))
        })
        .expect("read 13")
    };
    let forged = solo::audit::to_hex(&s13.computed_hash());
    c.execute("UPDATE audit SET message = 'rewritten', hash = ?1 WHERE seq = 13", [&forged]).expect("rehash");
    broken(&d, "audit chain BROKEN at record 13 (unlinked)");
    let orig: String = all[12]["message"].as_str().unwrap_or("").to_owned();
    c.execute("UPDATE audit SET message = ?1, hash = ?2 WHERE seq = 13", [&orig, &orig_hash]).expect("restore");
    assert!(verify(&d).0, "restored");

    // 5. Remove the newest records after a head was signed (a stop signs).
    d.restart();
    let head: i64 =
        c.query_row("SELECT MAX(seq) FROM audit_anchors WHERE kind = 'head'", [], |r| r.get(0)).expect("head");
    assert!(head as usize > all.len(), "a head was signed at stop ({head})");
    c.execute("DELETE FROM audit WHERE seq >= ?1", [head - 1]).expect("truncate");
    broken(&d, &format!("audit chain BROKEN at record {} (truncated)", head - 1));
    drop(d);
}

/// A re-exec keeps the chain: the old image records why it left (and signs
/// the head), the new one its start, and each re-adopted instance is a
/// `start` record marked `adopted`, under the same profile hash.
#[test]
fn a_reexec_is_recorded_and_the_chain_goes_on() {
    if !require_root("a_reexec_is_recorded_and_the_chain_goes_on") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "web", "--exec", &exec("sleeper"), "--wait"]);
    d.ok(&["daemon", "reexec"]);
    let all = wait_for("the new image's records", T, || {
        let all = records(&d, &[]);
        all.iter().any(|r| r["kind"] == "start" && detail(r)["adopted"] == true).then_some(all)
    });
    let k = kinds(&all);
    let stop = k.iter().position(|x| x == "daemon-stop").expect("daemon-stop");
    let start2 = k.iter().rposition(|x| x == "daemon-start").expect("a second daemon-start");
    assert!(stop < start2, "{k:?}");
    assert!(all[stop]["message"].as_str().unwrap_or("").contains("re-exec"), "{}", all[stop]);
    let starts: Vec<Value> = all.iter().filter(|r| r["kind"] == "start").map(detail).collect();
    assert_eq!(starts.len(), 2, "one spawn, one adoption: {starts:?}");
    assert_eq!(starts[0]["profile_sha256"], starts[1]["profile_sha256"]);
    assert_eq!(starts[0]["pid"], starts[1]["pid"], "the same process, adopted");
    let (ok, out) = verify(&d);
    assert!(ok, "{out}");
    assert!(out.contains("signed heads: "), "the leaving image signed its head: {out}");
}

#[test]
fn an_agent_sees_only_its_own_services() {
    if !require_root("an_agent_sees_only_its_own_services") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "agent-a-web", "--exec", &exec("sleeper"), "--wait"]);
    d.ok(&["deploy", "ops-db", "--exec", &exec("sleeper"), "--wait"]);
    let issue = |perms: &str| {
        d.ok(&["token", "issue", "--subject", "agent-a", "--perm", perms, "--resource", "service:agent-a-*"])
            .trim()
            .to_owned()
    };
    let agent = issue("audit,status");
    let o = d.cli_as(&agent, &["--json", "audit", "--limit", "10000"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert!(!recs.is_empty());
    for r in &recs {
        assert_eq!(r["service"], "agent-a-web", "the agent saw {r}");
    }
    // Another service's records, the whole chain, explaining another: refused.
    let denied = |args: &[&str], want: &str| {
        let o = d.cli_as(&agent, args);
        assert!(!o.status.success(), "{args:?} passed");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("permission denied") && e.contains(want), "{args:?}: {e}");
    };
    denied(&["audit", "--service", "ops-db"], "service:ops-db");
    denied(&["audit", "verify"], "* (the whole supervisor)");
    denied(&["audit", "explain", "ops-db"], "service:ops-db");
    let o = d.cli_as(&agent, &["audit", "explain", "agent-a-web"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without the permission: nothing.
    let status_only = issue("status");
    let o = d.cli_as(&status_only, &["audit"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("the token lacks permission 'audit'"));
    // The refusals are themselves recorded (coalesced), for the operator.
    let fails = records(&d, &["--kind", "auth-fail"]);
    assert!(fails.iter().any(|r| r["message"].as_str().unwrap_or("").contains("Audit refused")), "{fails:?}");
}

#[test]
fn explain_answers_the_reviewers_question() {
    if !require_root("explain_answers_the_reviewers_question") {
        return;
    }
    let d = Daemon::start();
    let data = tempfile::Builder::new().prefix("solo-audit-").tempdir_in("/var/tmp").expect("tempdir");
    let grant = format!("data=dir:{}:ro", data.path().display());
    // The probe calls ptrace 100 times in its main process: denied (errno).
    d.ok(&[
        "deploy",
        "web",
        "--exec",
        &exec("probe"),
        "--arg",
        "die-on=ptrace-loop",
        "--grant",
        &grant,
        "--restart",
        "never",
    ]);
    let agent =
        d.ok(&["token", "issue", "--subject", "agent-a", "--perm", "deploy,kill", "--resource", "service:web*"]);
    let agent_id = solo::auth::Token::parse(agent.trim()).expect("token").id().to_owned();
    d.ok(&["token", "issue", "--subject", "other", "--perm", "deploy", "--resource", "service:db"]);
    let st = d.status("web");
    let sha = st["service"]["profileSha256"].as_str().unwrap_or("").to_owned();
    let e: Value = wait_for("ptrace denials in explain", T, || {
        let e: Value = serde_json::from_str(&d.ok(&["--json", "audit", "explain", "web"])).expect("json");
        let n: u64 = e["denials"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["call"] == "ptrace"))
            .and_then(|x| x["count"].as_str())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (n >= 1).then_some(e)
    });
    assert_eq!(e["profile"], "default");
    assert_eq!(e["profileSha256"], sha.as_str());
    assert_eq!(e["profileHashesSeen"][0], sha.as_str());
    let operator = solo::auth::Token::parse(&d.operator_token()).expect("operator").id().to_owned();
    assert_eq!(e["grants"][0]["name"], "data");
    assert_eq!(e["grants"][0]["grantedBy"], operator.as_str());
    let tokens: Vec<&str> = e["tokens"].as_array().expect("tokens").iter().filter_map(|t| t["id"].as_str()).collect();
    assert!(tokens.contains(&agent_id.as_str()) && tokens.contains(&operator.as_str()), "{tokens:?}");
    assert_eq!(tokens.len(), 2, "the token for service:db cannot act on web: {tokens:?}");
    assert_eq!(e["denials"][0]["action"], "errno");
    // The screen a reviewer reads.
    let text = d.ok(&["audit", "explain", "web"]);
    for want in
        ["profile:   default sha256:", "grants held:", "tokens that can act on it", "denied syscalls:", "ptrace"]
    {
        assert!(text.contains(want), "no '{want}' in:\n{text}");
    }
    // Every one of the 100 denials is in the log, coalesced (the first at
    // once, the rest counted and written when the ten-second window ends):
    // the counts add up to what Status counted.
    let counted: u64 = wait_for("100 denials counted", T, || {
        let n: u64 = d.status("web")["service"]["instances"][0]["seccompDenials"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (n >= 100).then_some(n)
    });
    assert_eq!(counted, 100);
    wait_for("coalesced denials flushed", Duration::from_secs(30), || {
        let sum: u64 = records(&d, &["--service", "web", "--kind", "syscall-denied"])
            .iter()
            .map(|r| detail(r)["count"].as_u64().unwrap_or(0))
            .sum();
        (sum == counted).then_some(())
    });
}

#[test]
fn retention_prunes_behind_a_signed_checkpoint() {
    if !require_root("retention_prunes_behind_a_signed_checkpoint") {
        return;
    }
    let mut d = Daemon::start_with(&["--audit-max-records", "20"]);
    for i in 0..4 {
        d.ok(&["deploy", &format!("r{i}"), "--exec", &exec("sleeper"), "--wait"]);
        d.ok(&["kill", &format!("r{i}"), "--remove"]);
    }
    // A round runs a second after start: restart to see it now.
    d.restart();
    let (ok, out) = wait_for("a pruning round", T, || {
        let (ok, out) = verify(&d);
        out.contains("from the signed checkpoint at record").then_some((ok, out))
    });
    assert!(ok, "{out}");
    let recs = records(&d, &[]);
    assert!(recs.len() <= 25, "{} records kept", recs.len());
    let prune = records(&d, &["--kind", "prune"]);
    assert_eq!(prune.len(), 1, "{prune:?}");
    assert!(detail(&prune[0])["records"].as_u64().unwrap_or(0) > 0);
    drop(d);
}

#[tokio::test]
async fn bad_audit_input_names_the_field() {
    if !require_root("bad_audit_input_names_the_field") {
        return;
    }
    let d = Daemon::start();
    for (args, want) in [
        (
            vec!["audit", "--kind", "deploys"],
            "--kind: unknown audit kind 'deploys' (valid: daemon-start, daemon-stop, deploy,",
        ),
        (vec!["audit", "--since", "yesterday"], "--since: 'yesterday' is not a time: use a duration (30m, 12h, 7d) or"),
        (
            vec!["audit", "--since", "2026-11-21T10:00:00"],
            "--since: '2026-11-21T10:00:00' is not a time: a time needs Z or an offset",
        ),
        (vec!["audit", "--limit", "0"], "--limit: 0 is not between 1 and 10000"),
        (vec!["audit", "--service", "Bad"], "service: 'Bad' must start with a lowercase letter"),
        (vec!["audit", "explain", "nope"], "service 'nope' not found"),
    ] {
        let e = d.fails(&args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let mut c = d.client().await;
    let bad = |r: pb::AuditRequest| {
        let mut c = c.clone();
        async move { c.audit(r).await.expect_err("refused") }
    };
    let e = bad(pb::AuditRequest { kinds: vec!["nope".into()], ..Default::default() }).await;
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("kinds: unknown audit kind 'nope'"), "{}", e.message());
    let e = bad(pb::AuditRequest { since_unix_ms: -5, ..Default::default() }).await;
    assert_eq!(e.message(), "since_unix_ms: -5 is before 1970");
    let e = bad(pb::AuditRequest { limit: 10_001, ..Default::default() }).await;
    assert_eq!(e.message(), "limit: 10001 is more than the maximum of 10000");
    let ok = c.audit(pb::AuditRequest::default()).await.expect("audit").into_inner();
    assert!(!ok.records.is_empty());
    // Bad serve flags.
    let o = std::process::Command::new(common::solo_bin())
        .args(["serve", "--audit-retention", "forever"])
        .output()
        .expect("run");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--audit-retention") && e.contains("'forever' is not an age"), "{e}");
}
