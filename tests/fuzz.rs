//! Fuzzing (issue 12; figures in docs/reliability.md), a fixed number of
//! generated cases each, from a fixed seed (`SOLO_FUZZ_CASES` changes the
//! count):
//!
//! - the API: malformed and extreme requests of every kind, sent by a real
//!   gRPC client to a real daemon: the daemon never panics and stays up,
//!   and every refusal is a proper gRPC code, an `INVALID_ARGUMENT` naming
//!   the field it is about;
//! - profile TOML: arbitrary text and mutations of the built-ins never
//!   panic the loader, and every error says `FILE:LINE:COL: message`;
//! - tokens: arbitrary text and mutations of a real token never verify and
//!   never panic.

// Messages are built with `..Default::default()` on purpose: a field added
// to the API later then still compiles and is fuzzed at its default.
#![allow(clippy::needless_update)]

mod common;

use common::{alive, program, require_root, Daemon};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use solo::proto::v1 as pb;
use std::collections::HashMap;
use tonic::Code;

fn cases(default: u32) -> u32 {
    std::env::var("SOLO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn runner(n: u32) -> TestRunner {
    let config = Config { cases: n, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Text that is sometimes valid, sometimes a near miss, sometimes garbage.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9-]{0,20}",
        ".{0,80}",
        Just(String::new()),
        Just("x".repeat(70)),
        Just("a".repeat(5000)),
        Just("../../etc/passwd".to_owned()),
        Just("bad\0nul".to_owned()),
        "[a-z]{1,8}:[a-z/0-9.:]{0,30}",
    ]
}

fn small_map() -> impl Strategy<Value = HashMap<String, String>> {
    proptest::collection::hash_map(text(), text(), 0..4)
}

fn any_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), Just(1), Just(u32::MAX), any::<u32>(), 0u32..100_000]
}

fn any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(u64::MAX), any::<u64>(), 0u64..(1 << 32)]
}

fn enum_i32() -> impl Strategy<Value = i32> {
    prop_oneof![0i32..5, any::<i32>()]
}

fn artifact() -> impl Strategy<Value = Option<pb::Artifact>> {
    use pb::artifact::Kind;
    let kind = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|content| Kind::Executable(pb::ExecutableArtifact { content, ..Default::default() })),
        (text(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(interpreter, source)| {
            Kind::Script(pb::ScriptArtifact { interpreter, source, ..Default::default() })
        }),
        (prop_oneof![Just("sh".to_owned()), Just("python3".to_owned())], ".{0,40}").prop_map(|(interpreter, src)| {
            Kind::Script(pb::ScriptArtifact { interpreter, source: src.into_bytes(), ..Default::default() })
        }),
        text().prop_map(|path| Kind::HostPath(pb::HostPathArtifact { path })),
    ];
    proptest::option::weighted(0.9, kind.prop_map(|k| pb::Artifact { kind: Some(k) }))
}

fn spec() -> impl Strategy<Value = pb::ServiceSpec> {
    let limits =
        (any_u64(), any_u64(), any_u32(), any_u32(), any_u32(), any_u32()).prop_map(|(m, h, w, c, p, f)| pb::Limits {
            memory_bytes: m,
            memory_high_bytes: h,
            cpu_weight: w,
            cpu_max_millicores: c,
            max_pids: p,
            max_open_files: f,
            ..Default::default()
        });
    let restart = (enum_i32(), any_u32(), any_u32(), any_u32(), any_u32(), any::<f64>(), any_u32()).prop_map(
        |(policy, max_restarts, within_seconds, backoff_initial_ms, backoff_max_ms, backoff_jitter, reset)| {
            pb::RestartSpec {
                policy,
                max_restarts,
                within_seconds,
                backoff_initial_ms,
                backoff_max_ms,
                backoff_jitter,
                reset_after_seconds: reset,
            }
        },
    );
    let readiness = (enum_i32(), any_u32(), text()).prop_map(|(kind, startup_timeout_ms, tcp_grant)| pb::Readiness {
        kind,
        startup_timeout_ms,
        tcp_grant,
        ..Default::default()
    });
    let grants = proptest::collection::vec((text(), text()).prop_map(|(spec, name)| pb::Grant { spec, name }), 0..4);
    let args = prop_oneof![proptest::collection::vec(text(), 0..4), Just(vec!["y".repeat(200_000)])];
    let head = (text(), artifact(), args, small_map(), prop_oneof![text(), Just("strict".to_owned())]);
    let tail = (
        proptest::option::of(limits),
        proptest::option::of(restart),
        any_u32(),
        enum_i32(),
        proptest::option::of(readiness),
        grants,
        any_u32(),
        small_map(),
        enum_i32(),
    );
    (head, tail).prop_map(|((id, artifact, args, env, profile), t)| pb::ServiceSpec {
        id,
        artifact,
        args,
        env,
        profile,
        limits: t.0,
        restart: t.1,
        replicas: t.2,
        tier: t.3,
        readiness: t.4,
        grants: t.5,
        shutdown_timeout_ms: t.6,
        labels: t.7,
        socket_activation: t.8,
        ..Default::default()
    })
}

/// One request of any kind.
#[derive(Debug, Clone)]
enum Call {
    Deploy(Box<pb::ServiceSpec>),
    Status(String),
    Kill(String, u32, bool),
    List(i32, i32, String, HashMap<String, String>),
    GrantToken(String, Vec<String>, String, u32, String),
    GrantFd(String, String, String),
    Revoke(bool, String),
    Watch(String, u32),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => spec().prop_map(|s| Call::Deploy(Box::new(s))),
        1 => text().prop_map(Call::Status),
        1 => (text(), any_u32(), any::<bool>()).prop_map(|(i, t, f)| Call::Kill(i, t, f)),
        1 => (enum_i32(), enum_i32(), text(), small_map()).prop_map(|(s, t, p, l)| Call::List(s, t, p, l)),
        1 => (text(), proptest::collection::vec(text(), 0..4), text(), any_u32(), text())
            .prop_map(|(s, p, r, ttl, sub)| Call::GrantToken(s, p, r, ttl, sub)),
        1 => (text(), text(), text()).prop_map(|(s, spec, n)| Call::GrantFd(s, spec, n)),
        1 => (any::<bool>(), text()).prop_map(|(t, id)| Call::Revoke(t, id)),
        1 => (text(), any_u32()).prop_map(|(i, t)| Call::Watch(i, t)),
    ]
}

/// A refusal's code, if it is an acceptable one; and for an
/// `INVALID_ARGUMENT`, a message that names a field (`field.path: ...`).
fn acceptable(s: &tonic::Status) -> Result<(), String> {
    let allowed = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
    ];
    if !allowed.contains(&s.code()) {
        return Err(format!("unexpected code {:?}: {}", s.code(), s.message()));
    }
    if s.code() == Code::InvalidArgument {
        // `field.path: reason`; a map key or a list index in brackets may
        // hold anything (escaped), so only the path before it is checked.
        let field = s.message().split(": ").next().unwrap_or("");
        let path = field.split('[').next().unwrap_or("");
        let named = !path.is_empty()
            && s.message().contains(": ")
            && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && path.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if !named {
            return Err(format!("INVALID_ARGUMENT without a field: {}", s.message()));
        }
    }
    Ok(())
}

async fn send(c: &mut solo::cli::Client, call: Call) -> Result<Option<String>, tonic::Status> {
    use pb::grant_capability_request::What;
    use pb::revoke_capability_request::What as R;
    match call {
        Call::Deploy(spec) => {
            let r = c.deploy(pb::DeployRequest { spec: Some(*spec), wait: false }).await?;
            Ok(Some(r.into_inner().id))
        }
        Call::Status(id) => c.status(pb::StatusRequest { id }).await.map(|_| None),
        Call::Kill(id, timeout_ms, force) => c
            .kill(pb::KillRequest { id, timeout_ms: timeout_ms % 2000, force, remove: true, ..Default::default() })
            .await
            .map(|_| None),
        Call::List(state, tier, id_prefix, labels) => {
            c.list(pb::ListRequest { state, tier, id_prefix, labels }).await.map(|_| None)
        }
        Call::GrantToken(service, permissions, resource, ttl_seconds, subject) => {
            let t = pb::TokenGrant { permissions, resource, ttl_seconds, subject };
            c.grant_capability(pb::GrantCapabilityRequest { service, what: Some(What::Token(t)) }).await.map(|_| None)
        }
        Call::GrantFd(service, spec, name) => {
            let g = pb::Grant { spec, name };
            c.grant_capability(pb::GrantCapabilityRequest { service, what: Some(What::Fd(g)) }).await.map(|_| None)
        }
        Call::Revoke(token, id) => {
            let what = if token { R::TokenId(id) } else { R::GrantId(id) };
            c.revoke_capability(pb::RevokeCapabilityRequest { what: Some(what) }).await.map(|_| None)
        }
        Call::Watch(id, tail) => {
            let req = pb::WatchRequest { id, tail: tail % 2000, snapshot: true, ..Default::default() };
            let mut s = c.watch(req).await?.into_inner();
            while s.message().await?.is_some() {}
            Ok(None)
        }
    }
}

/// Malformed and extreme requests of every kind against a real daemon.
#[test]
fn the_api_refuses_malformed_requests_by_field_and_never_falls_over() {
    if !require_root("the_api_refuses_malformed_requests_by_field_and_never_falls_over") {
        return;
    }
    // The generated strategy and the client's futures are deep in a debug
    // build: a thread and runtime with room for them.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(api_fuzz());
        })
        .expect("spawn the fuzz thread")
        .join()
        .expect("the API fuzz run");
}

async fn api_fuzz() {
    let n = cases(2000);
    let d = Daemon::start_sized(200, &[]);
    let mut c = d.client().await;
    let mut r = runner(n);
    let (mut ok, mut refused) = (0u32, HashMap::<String, u32>::new());
    let mut problems = Vec::new();
    let strategy = call();
    for i in 0..n {
        let case = strategy.new_tree(&mut r).expect("generate a case").current();
        let shown = format!("{case:?}");
        match send(&mut c, case).await {
            Ok(deployed) => {
                ok += 1;
                // Keep the daemon small: what a valid deploy made goes again.
                if let Some(id) = deployed {
                    let kill = pb::KillRequest { id, force: true, remove: true, ..Default::default() };
                    let _ = c.kill(kill).await;
                }
            }
            Err(s) => {
                *refused.entry(format!("{:?}", s.code())).or_default() += 1;
                if let Err(why) = acceptable(&s) {
                    problems.push(format!("case {i}: {why}\n  request: {}", &shown[..shown.len().min(400)]));
                }
            }
        }
        assert!(alive(i64::from(d.pid())), "the daemon died at case {i}: {shown}\n{}", d.log());
    }
    assert!(problems.is_empty(), "{} improper refusals:\n{}", problems.len(), problems.join("\n"));
    assert!(!d.log().contains("panicked"), "the daemon panicked:\n{}", d.log());
    // Still serving normally afterwards.
    d.ok(&["deploy", "after-fuzz", "--exec", &program("sleeper").display().to_string(), "--wait"]);
    eprintln!("FIGURE api fuzz: {n} requests, {ok} accepted, refused {refused:?}; 0 daemon panics, 0 refusals without a field");
}

/// Profile files: arbitrary text and mutations of the built-ins.
#[test]
fn profile_files_never_panic_the_loader_and_errors_point_at_a_line() {
    let n = cases(3000);
    let dir = tempfile::tempdir().expect("tempdir");
    let builtins: Vec<&str> = solo::profiles::BUILTIN.iter().map(|(_, src)| *src).collect();
    let mutation = (0..builtins.len(), proptest::collection::vec((any::<u16>(), 0usize..4, ".{0,30}"), 1..4));
    let strategy = prop_oneof![
        ".{0,300}".prop_map(|t| (None, t)),
        mutation.prop_map(|(b, edits)| (Some((b, edits)), String::new()))
    ];
    let mut r = runner(n);
    let (mut valid, mut invalid) = (0u32, 0u32);
    for i in 0..n {
        let (m, raw) = strategy.new_tree(&mut r).expect("generate").current();
        let text = match m {
            None => raw,
            Some((b, edits)) => {
                let mut lines: Vec<String> = builtins[b].lines().map(str::to_owned).collect();
                for (at, what, t) in edits {
                    let at = usize::from(at) % (lines.len() + 1);
                    match what {
                        0 => lines.insert(at, t),
                        1 if at < lines.len() => {
                            lines.remove(at);
                        }
                        2 if at < lines.len() => lines[at].push_str(&t),
                        _ => lines.insert(at, format!("{} = {}", t.replace([' ', '='], ""), t)),
                    }
                }
                lines.join("\n")
            }
        };
        let path = dir.path().join(format!("p{i}.toml"));
        std::fs::write(&path, &text).expect("write");
        let file = path.display().to_string();
        let result = std::panic::catch_unwind(|| solo::profiles::check_file(&path, None));
        match result {
            Err(_) => panic!("the profile loader panicked on:\n{text}"),
            Ok(Ok(_)) => valid += 1,
            Ok(Err(e)) => {
                invalid += 1;
                let msg = e.to_string();
                let located = msg.strip_prefix(&format!("{file}:")).is_some_and(|rest| {
                    let mut p = rest.splitn(3, ':');
                    p.next().is_some_and(|l| l.parse::<u32>().is_ok())
                        && p.next().is_some_and(|c| c.parse::<u32>().is_ok())
                });
                let named_file = msg.starts_with(&file) || msg.contains(&file);
                assert!(located || named_file, "an error that does not point at the file: {msg}\n{text}");
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    eprintln!("FIGURE profile fuzz: {n} files, {valid} valid, {invalid} refused with FILE:LINE:COL; 0 panics");
}

/// Tokens: arbitrary text and byte mutations of a real token.
#[test]
fn mangled_tokens_never_verify_and_never_panic() {
    use solo::auth::{issue, verify, Key, Perms};
    let n = cases(20_000);
    let key = Key::from_bytes([7; 32]);
    let now = 1_800_000_000;
    let real = issue(
        &key,
        "agent-a",
        "service:agent-a-*",
        Perms::parse_list("deploy,status").expect("perms"),
        now - 10,
        now + 3600,
    )
    .expect("issue")
    .encode();
    assert!(verify(&key, &real, now, |_| false).is_ok(), "the unmangled token verifies");
    let bytes = real.clone().into_bytes();
    let len = bytes.len();
    let mangle = proptest::collection::vec((0..len + 8, any::<u8>(), 0u8..4), 1..6);
    let strategy = prop_oneof![".{0,400}".prop_map(Err), mangle.prop_map(Ok)];
    let mut r = runner(n);
    let mut rejected = 0u32;
    for _ in 0..n {
        let text = match strategy.new_tree(&mut r).expect("generate").current() {
            Err(t) => t,
            Ok(edits) => {
                let mut b = bytes.clone();
                for (at, byte, op) in edits {
                    let at = at.min(b.len());
                    match op {
                        0 if at < b.len() => b[at] = byte,
                        1 => b.insert(at, byte),
                        2 if at < b.len() => {
                            b.remove(at);
                        }
                        _ => b.truncate(at),
                    }
                }
                String::from_utf8_lossy(&b).into_owned()
            }
        };
        if text == real {
            continue;
        }
        let v = std::panic::catch_unwind(|| verify(&key, &text, now, |_| false));
        match v {
            Err(_) => panic!("verify panicked on {text:?}"),
            Ok(Ok(t)) => panic!("a mangled token verified: {text:?} → {:?}", t.claims()),
            Ok(Err(_)) => rejected += 1,
        }
    }
    eprintln!("FIGURE token fuzz: {n} mangled or arbitrary tokens, {rejected} rejected, 0 verified, 0 panics");
}
