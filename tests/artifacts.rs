//! Artifacts named by digest (`ExecutableArtifact.sha256`,
//! `ScriptArtifact.sha256`): bytes the daemon stores are deployed without
//! being sent again; a digest it does not store is NOT_FOUND naming the
//! field (and the CLI then sends the bytes); a malformed digest, or one
//! that does not match the bytes sent with it, is INVALID_ARGUMENT; and a
//! refused request leaves nothing behind.

mod common;

use common::{program, require_root, Daemon};
use sha2::Digest;
use solo::proto::v1 as pb;
use std::process::{Command, Stdio};
use tonic::Code;

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn exe(id: &str, content: Vec<u8>, sha256: &str) -> pb::DeployRequest {
    let kind = pb::artifact::Kind::Executable(pb::ExecutableArtifact { content, sha256: sha256.to_owned() });
    pb::DeployRequest {
        spec: Some(pb::ServiceSpec {
            id: id.into(),
            artifact: Some(pb::Artifact { kind: Some(kind) }),
            ..Default::default()
        }),
        wait: true,
    }
}

fn script(id: &str, source: &[u8], sha256: &str) -> pb::DeployRequest {
    let mut r = exe(id, Vec::new(), "");
    if let Some(s) = r.spec.as_mut() {
        s.artifact = Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Script(pb::ScriptArtifact {
                interpreter: "sh".into(),
                source: source.to_vec(),
                sha256: sha256.to_owned(),
            })),
        });
    }
    r
}

async fn refused(c: &mut solo::cli::Client, req: pb::DeployRequest, code: Code, needles: &[&str]) {
    let e = c.deploy(req).await.expect_err("deploy should be refused");
    assert_eq!(e.code(), code, "{}", e.message());
    for n in needles {
        assert!(e.message().contains(n), "'{}' does not mention '{n}'", e.message());
    }
}

async fn ids(c: &mut solo::cli::Client) -> Vec<String> {
    let l = c.list(pb::ListRequest::default()).await.expect("list").into_inner();
    l.services.into_iter().map(|s| s.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_resolves_only_to_bytes_the_daemon_stored_and_hashed() {
    if !require_root("a_digest_resolves_only_to_bytes_the_daemon_stored_and_hashed") {
        return;
    }
    let d = Daemon::start();
    let mut c = d.client().await;
    let tiny = std::fs::read(program("tiny")).expect("tiny");
    let sleeper = std::fs::read(program("sleeper")).expect("sleeper");
    let (tiny_sha, sleeper_sha) = (sha256(&tiny), sha256(&sleeper));

    // Not stored yet: NOT_FOUND naming the field, before anything is made.
    let field = "spec.artifact.executable.sha256";
    refused(&mut c, exe("a", Vec::new(), &tiny_sha), Code::NotFound, &[field, &tiny_sha, "send the bytes"]).await;
    // Malformed digests never reach the store (they would be file names).
    let dots = format!("../../{}", &tiny_sha[6..]);
    for bad in ["xyz", &tiny_sha.to_uppercase(), &tiny_sha[1..], &dots, &format!("{tiny_sha}0")] {
        refused(&mut c, exe("a", Vec::new(), bad), Code::InvalidArgument, &[field, "is not a sha256 digest"]).await;
    }
    // A digest that is not the bytes' own: refused, small (hashed on the
    // handler) or large (hashed with the store's blocking work).
    for (content, other) in [(tiny.clone(), &sleeper_sha), (sleeper.clone(), &tiny_sha)] {
        refused(
            &mut c,
            exe("a", content, other),
            Code::InvalidArgument,
            &[field, "is not the sha256 of the uploaded bytes"],
        )
        .await;
    }
    assert!(ids(&mut c).await.is_empty(), "a refused deploy leaves no service");
    assert!(!d.state.join("artifacts/sha256").join(&tiny_sha).exists(), "nor the bytes it was refused with");
    assert!(!d.state.join("data/a").exists(), "nor a data dir");

    // Sent once with a matching digest, then named by digest only.
    let r = c.deploy(exe("first", tiny.clone(), &tiny_sha)).await.expect("upload with digest").into_inner();
    assert_eq!(r.artifact_sha256, tiny_sha);
    let r = c.deploy(exe("again", Vec::new(), &tiny_sha)).await.expect("by digest").into_inner();
    assert_eq!(r.artifact_sha256, tiny_sha);
    assert!(r.instances.iter().all(|i| i.pid > 0), "running: {:?}", r.instances);
    let st = c.status(pb::StatusRequest { id: "again".into() }).await.expect("status").into_inner();
    let svc = st.service.expect("service");
    assert_eq!((svc.artifact_kind.as_str(), svc.artifact_sha256.as_str()), ("executable", tiny_sha.as_str()));
    assert!(d.log().contains("artifact named by digest: no upload service=again"), "{}", d.log());
    // Large bytes too (the blocking store path), then by digest.
    c.deploy(exe("big", sleeper.clone(), "")).await.expect("large upload");
    c.deploy(exe("big-again", Vec::new(), &sleeper_sha)).await.expect("large by digest");

    // Scripts: the same, with their own field.
    let src = b"#!/bin/sh\nexec sleep 1000\n";
    let src_sha = sha256(src);
    refused(&mut c, script("s0", &[], &src_sha), Code::NotFound, &["spec.artifact.script.sha256"]).await;
    c.deploy(script("s1", src, "")).await.expect("script upload");
    c.deploy(script("s2", &[], &src_sha)).await.expect("script by digest");
    // Bytes stored as a script were never checked as an ELF: an executable
    // cannot name them.
    refused(&mut c, exe("x", Vec::new(), &src_sha), Code::NotFound, &[field]).await;
    assert_eq!(ids(&mut c).await.len(), 6, "first, again, big, big-again, s1, s2");
}

/// A shell script of `cmd` padded with a comment past the size the CLI
/// sends in its first request (`cli::artifact::INLINE_MAX`, 16 KiB), so it
/// is named by digest first.
fn big_script(cmd: &str) -> String {
    format!("# {}\n{cmd}\n", "x".repeat(20 << 10))
}

/// The CLI with `SOLO_TIMING`, which shows whether the daemon asked for
/// the bytes (`not-stored`).
fn cli_timed(d: &Daemon, args: &[&str]) -> (bool, String) {
    cli_timed_env(d, args, &[])
}

/// [`cli_timed`] with more environment.
fn cli_timed_env(d: &Daemon, args: &[&str], env: &[(&str, &std::path::Path)]) -> (bool, String) {
    let o = Command::new(common::solo_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .env("SOLO_STATE_DIR", &d.state)
        .env("SOLO_TIMING", "1")
        .envs(env.iter().copied())
        .env_remove("SOLO_TOKEN")
        .env_remove("SOLO_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run solo CLI");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "solo {args:?} failed: {stderr}");
    (stderr.contains(" not-stored "), stderr)
}

#[test]
fn the_cli_sends_a_program_only_when_the_daemon_lacks_it() {
    if !require_root("the_cli_sends_a_program_only_when_the_daemon_lacks_it") {
        return;
    }
    let d = Daemon::start();
    let sleeper = program("sleeper");
    let p = sleeper.to_str().expect("utf8");
    let sha = sha256(&std::fs::read(&sleeper).expect("sleeper"));

    let (asked, err) = cli_timed(&d, &["deploy", "one", "--exec", p, "--wait"]);
    assert!(asked, "a new program: named by digest, NOT_FOUND, then sent: {err}");
    assert!(d.state.join("artifacts/sha256").join(&sha).is_file(), "stored under its digest");
    let (asked, err) = cli_timed(&d, &["deploy", "two", "--exec", p, "--wait"]);
    assert!(!asked, "the same program again: not sent: {err}");
    assert!(d.log().contains("artifact named by digest: no upload service=two"));

    // A script larger than the CLI sends at once: the same way.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = dir.path().join("svc.sh");
    std::fs::write(&s, big_script("exec sleep 1000")).expect("script");
    let s = s.to_str().expect("utf8");
    let (asked, _) = cli_timed(&d, &["deploy", "s1", "--script", s, "--interpreter", "sh", "--wait"]);
    assert!(asked);
    let (asked, _) = cli_timed(&d, &["deploy", "s2", "--script", s, "--interpreter", "sh", "--wait"]);
    assert!(!asked);
    assert!(d.log().contains("artifact named by digest: no upload service=s2"));
    // A small one goes in the first request, new or not: no NOT_FOUND round trip.
    let small = dir.path().join("small.sh");
    std::fs::write(&small, "exec sleep 1002\n").expect("script");
    let small = small.to_str().expect("utf8");
    for id in ["s3", "s4"] {
        let (asked, err) = cli_timed(&d, &["deploy", id, "--script", small, "--interpreter", "sh", "--wait"]);
        assert!(!asked, "a small script is sent at once: {err}");
        assert!(!d.log().contains(&format!("artifact named by digest: no upload service={id}")), "{id}");
    }
    assert!(d.state.join("artifacts/sha256").join(sha256(b"exec sleep 1002\n")).is_file());
    for id in ["one", "two", "s1", "s2", "s3", "s4"] {
        assert_eq!(d.status(id)["service"]["state"], "SERVICE_STATE_RUNNING", "{id}");
    }
}

/// The CLI's digest cache (`src/cli/digest_cache.rs`, here in a cache
/// directory of the test's own): an unchanged settled file is named by its
/// remembered digest; the same file rewritten in place, to the same size,
/// is hashed again and its new bytes run, never the old ones.
#[test]
fn a_file_changed_in_place_is_hashed_again_never_deployed_stale() {
    if !require_root("a_file_changed_in_place_is_hashed_again_never_deployed_stale") {
        return;
    }
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_home = dir.path().join("cache");
    let deploy = |id: &str, path: &str| {
        let args = ["deploy", id, "--script", path, "--interpreter", "sh", "--wait"];
        cli_timed_env(&d, &args, &[("XDG_CACHE_HOME", &cache_home), ("SOLO_DIGEST_CACHE", std::path::Path::new("on"))])
            .0
    };
    let cache = cache_home.join("solo/sha256");
    let entries = || std::fs::read_to_string(&cache).map(|t| t.lines().count()).unwrap_or(0);
    let s = dir.path().join("svc.sh");
    std::fs::write(&s, big_script("echo version-one; exec sleep 1000")).expect("script");
    let p = s.to_str().expect("utf8");
    // Settled: its timestamps older than the cache's 2 s.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert!(deploy("c1", p), "new to the daemon: sent");
    assert_eq!(entries(), 1, "a settled file's digest is remembered");
    assert!(!deploy("c2", p), "the remembered digest names the stored bytes");
    std::fs::write(&s, big_script("echo version-two; exec sleep 1000")).expect("rewrite in place");
    assert!(deploy("c3", p), "changed in place, same size: hashed again, a new digest, sent");
    assert_eq!(entries(), 1, "a fresh file is not remembered");
    for (id, want) in [("c1", "version-one"), ("c2", "version-one"), ("c3", "version-two")] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let logs = d.ok(&["logs", id]);
            if logs.contains(want) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} should print {want}: {logs}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn solo_update_sends_a_program_only_when_the_daemon_lacks_it() {
    if !require_root("solo_update_sends_a_program_only_when_the_daemon_lacks_it") {
        return;
    }
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.sh"), dir.path().join("b.sh"));
    let (a_src, b_src) = (big_script("exec sleep 1000"), big_script("exec sleep 1001"));
    std::fs::write(&a, &a_src).expect("a");
    std::fs::write(&b, &b_src).expect("b");
    let (a, b) = (a.to_str().expect("utf8"), b.to_str().expect("utf8"));
    let b_sha = sha256(b_src.as_bytes());

    let (asked, _) = cli_timed(&d, &["deploy", "u", "--script", a, "--interpreter", "sh", "--wait"]);
    assert!(asked, "a new script: sent after NOT_FOUND");
    // A new revision's script: named by digest, NOT_FOUND, then sent.
    let (asked, err) = cli_timed(&d, &["update", "u", "--script", b, "--interpreter", "sh", "--min-ready", "100"]);
    assert!(asked, "the update's new script is sent: {err}");
    let st = d.status("u");
    assert_eq!(st["service"]["revision"], "2", "{st}");
    assert_eq!(st["service"]["artifactSha256"], b_sha.as_str(), "{st}");
    // Back to revision 1's script, which the daemon keeps: not sent.
    let (asked, err) = cli_timed(&d, &["update", "u", "--script", a, "--interpreter", "sh", "--min-ready", "100"]);
    assert!(!asked, "a stored script is named by digest only: {err}");
    let st = d.status("u");
    assert_eq!(st["service"]["revision"], "3", "{st}");
    assert_eq!(st["service"]["artifactSha256"], sha256(a_src.as_bytes()).as_str(), "{st}");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_RUNNING", "{st}");
}
