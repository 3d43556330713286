//! The resource monitor against a real `solo serve`: each
//! `limit_exceeded_action` for memory (tests/programs/memhog.c) and CPU
//! (tests/programs/spinner.c). An OOM kill is an exit of its own (cause
//! `oom`), `throttle` holds a service at its limit without killing it,
//! `warn` lets it go over and says so, CPU `kill` ends a spinner with
//! cause `cpu-limit`. Every hit is an event and an audit record. Runs on
//! this host's cgroups (hybrid v1 here) and in the pure-v2 qemu guest
//! (`integration/qemu/run limits`).

mod common;

use common::{instance0, program, require_root, wait_for, Daemon};
use serde_json::Value;
use solo::proto::v1 as pb;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);

fn exec(p: &str) -> String {
    program(p).display().to_string()
}

fn num(v: &Value) -> u64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64()).unwrap_or(0)
}

/// The `limit` audit records of a service (detail parsed).
fn limit_records(d: &Daemon, id: &str) -> Vec<Value> {
    d.ok(&["--json", "audit", "--service", id, "--kind", "limit"])
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).expect("json line");
            serde_json::from_str(r["detailJson"].as_str().unwrap_or("{}")).expect("detail")
        })
        .collect()
}

/// Waits for the first `limit` record of `id` for `resource`.
fn wait_limit(d: &Daemon, id: &str, resource: &str) -> Value {
    wait_for(&format!("a {resource} limit record for {id}"), T, || {
        limit_records(d, id).into_iter().find(|r| r["resource"] == resource)
    })
}

/// Stored events of a kind for a service.
fn events(d: &Daemon, id: &str, kind: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(d.state.join("solo.db")).expect("open");
    let mut q = c.prepare("SELECT message FROM events WHERE service = ?1 AND kind = ?2 ORDER BY seq").expect("q");
    let rows = q.query_map([id, kind], |r| r.get::<_, String>(0)).expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

/// CPU time used by instance 0 over `over`, in cores.
fn cores(d: &Daemon, id: &str, over: Duration) -> f64 {
    let cpu = |d: &Daemon| num(&instance0(&d.status(id))["usage"]["cpuUsageUsec"]);
    let (a, t) = (cpu(d), Instant::now());
    std::thread::sleep(over);
    (cpu(d) - a) as f64 / t.elapsed().as_micros() as f64
}

fn running(d: &Daemon, id: &str) -> bool {
    instance0(&d.status(id))["state"] == "INSTANCE_STATE_RUNNING"
}

#[test]
fn memory_kill_is_an_oom_exit_of_its_own() {
    if !require_root("memory_kill_is_an_oom_exit_of_its_own") {
        return;
    }
    let d = Daemon::start();
    d.ok(&["deploy", "hog", "--exec", &exec("memhog"), "--memory", "32MiB", "--restart", "never", "--wait"]);
    let exit = wait_for("the OOM kill", T, || {
        let e = instance0(&d.status("hog"))["lastExit"].clone();
        (e["cause"] == "oom").then_some(e)
    });
    assert_eq!(exit["oomKilled"], true);
    let reason = exit["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("out of memory: the kernel's OOM killer"), "{reason}");
    assert!(!reason.contains("killed by SIGKILL"), "not an anonymous SIGKILL: {reason}");
    assert_eq!(events(&d, "hog", "oom-killed").len(), 1);
    let exits = d.ok(&["--json", "audit", "--service", "hog", "--kind", "exit"]);
    assert!(exits.contains(r#"\"oom_killed\":true"#), "{exits}");
    // A limit hit too, as every limit hit is.
    let r = wait_limit(&d, "hog", "memory");
    assert_eq!(r["action"], "kill", "{r}");
}

#[test]
fn memory_throttle_holds_it_at_the_limit_without_killing() {
    if !require_root("memory_throttle_holds_it_at_the_limit_without_killing") {
        return;
    }
    let d = Daemon::start();
    // It wants 48 MiB; its limit is 32 MiB.
    let args = ["deploy", "hog", "--exec", &exec("memhog"), "--arg", "48", "--memory", "32MiB"];
    d.ok(&[&args[..], &["--limit-action", "throttle", "--restart", "never", "--wait"]].concat());
    let r = wait_limit(&d, "hog", "memory");
    assert_eq!(r["action"], "throttle", "{r}");
    assert_eq!(events(&d, "hog", "limit-exceeded").len(), 1, "one event per episode");
    // Held, not killed: still there a while later, below the 2x ceiling.
    std::thread::sleep(Duration::from_secs(3));
    let st = d.status("hog");
    assert!(running(&d, "hog"), "{st}");
    assert_eq!(instance0(&st)["lastExit"], Value::Null, "{st}");
    let used = num(&instance0(&st)["usage"]["memoryBytes"]);
    assert!(used <= 64 << 20, "{used} bytes in use");
    let logs = d.ok(&["logs", "hog"]);
    assert!(!logs.contains("holding 48 MiB, done"), "it got all it wanted: {logs}");
}

#[test]
fn memory_warn_lets_it_go_over_and_says_so() {
    if !require_root("memory_warn_lets_it_go_over_and_says_so") {
        return;
    }
    let d = Daemon::start();
    let args = ["deploy", "hog", "--exec", &exec("memhog"), "--arg", "48", "--memory", "32MiB"];
    d.ok(&[&args[..], &["--limit-action", "warn", "--restart", "never", "--wait"]].concat());
    let r = wait_limit(&d, "hog", "memory");
    assert_eq!(r["action"], "warn", "{r}");
    assert!(r["detail"].as_str().unwrap_or("").contains("above its limit of 33554432"), "{r}");
    wait_for("memhog to hold 48 MiB", T, || d.ok(&["logs", "hog"]).contains("holding 48 MiB, done").then_some(()));
    assert!(running(&d, "hog"));
    assert!(num(&instance0(&d.status("hog"))["usage"]["memoryBytes"]) > 32 << 20);
    let ev = events(&d, "hog", "limit-exceeded");
    assert!(ev.len() == 1 && ev[0].contains("reached its memory limit, warned (not enforced)"), "{ev:?}");
}

#[test]
fn cpu_kill_ends_a_spinner_with_its_own_cause() {
    if !require_root("cpu_kill_ends_a_spinner_with_its_own_cause") {
        return;
    }
    let d = Daemon::start();
    let args = ["deploy", "spin", "--exec", &exec("spinner"), "--cpu-max-millicores", "200"];
    d.ok(&[&args[..], &["--limit-action", "kill", "--restart", "never", "--wait"]].concat());
    let exit = wait_for("the CPU-limit kill", T, || {
        let e = instance0(&d.status("spin"))["lastExit"].clone();
        (e["cause"] == "cpu-limit").then_some(e)
    });
    let reason = exit["reason"].as_str().unwrap_or("");
    assert!(reason.starts_with("killed: CPU limit exceeded (held at its limit of 200 millicores"), "{reason}");
    assert_ne!(exit["oomKilled"], true);
    let r = wait_limit(&d, "spin", "cpu");
    assert_eq!(r["action"], "kill");
    assert_eq!(d.status("spin")["service"]["state"], "SERVICE_STATE_EXITED");
}

#[test]
fn cpu_throttle_holds_a_spinner_at_its_quota() {
    if !require_root("cpu_throttle_holds_a_spinner_at_its_quota") {
        return;
    }
    let d = Daemon::start();
    // The default CPU action is throttle.
    d.ok(&["deploy", "spin", "--exec", &exec("spinner"), "--cpu-max-millicores", "200", "--wait"]);
    let r = wait_limit(&d, "spin", "cpu");
    assert_eq!(r["action"], "throttle", "{r}");
    assert!(running(&d, "spin"));
    let c = cores(&d, "spin", Duration::from_secs(3));
    assert!(c < 0.3, "held at 0.2 cores, used {c:.2}");
    assert_eq!(events(&d, "spin", "limit-exceeded").len(), 1, "one event per episode");
}

#[test]
fn cpu_warn_reports_a_spinner_over_its_limit() {
    if !require_root("cpu_warn_reports_a_spinner_over_its_limit") {
        return;
    }
    let d = Daemon::start();
    let args = ["deploy", "spin", "--exec", &exec("spinner"), "--cpu-max-millicores", "100"];
    d.ok(&[&args[..], &["--limit-action", "warn", "--wait"]].concat());
    let r = wait_limit(&d, "spin", "cpu");
    assert_eq!(r["action"], "warn", "{r}");
    assert!(running(&d, "spin"));
    // No quota: it uses more than its 0.1 core.
    let c = cores(&d, "spin", Duration::from_secs(2));
    assert!(c > 0.15, "not throttled, yet used only {c:.2} cores");
    let st = d.status("spin");
    assert!(st["service"]["limits"]["limitExceededAction"] == "LIMIT_ACTION_WARN", "{st}");
}

#[tokio::test]
async fn a_limit_action_outside_the_set_is_refused() {
    if !require_root("a_limit_action_outside_the_set_is_refused") {
        return;
    }
    let d = Daemon::start();
    let e = d.fails(&["deploy", "x", "--exec", &exec("sleeper"), "--limit-action", "pause"]);
    assert!(e.contains("invalid value 'pause' for '--limit-action <ACTION>'"), "{e}");
    let mut c = d.client().await;
    let spec = |limits: pb::Limits| pb::ServiceSpec {
        id: "x".into(),
        artifact: Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact {
                content: std::fs::read(program("sleeper")).expect("read"),
                ..Default::default()
            })),
        }),
        limits: Some(limits),
        ..Default::default()
    };
    let e = c
        .deploy(pb::DeployRequest {
            spec: Some(spec(pb::Limits { limit_exceeded_action: 9, ..Default::default() })),
            wait: false,
        })
        .await
        .expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "spec.limits.limit_exceeded_action: 'unknown action 9' is not an action: use kill, throttle or warn"
    );
    let e = c
        .deploy(pb::DeployRequest {
            spec: Some(spec(pb::Limits {
                limit_exceeded_action: pb::LimitAction::Throttle as i32,
                memory_high_bytes: 16 << 20,
                ..Default::default()
            })),
            wait: false,
        })
        .await
        .expect_err("refused");
    assert!(e
        .message()
        .starts_with("spec.limits.memory_high_bytes: cannot be combined with limit_exceeded_action = throttle"));
    // Nothing was created.
    assert!(d.fails(&["status", "x"]).contains("not found"));
}
