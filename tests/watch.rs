//! `Watch` streams events and log lines, for one service or all; `solo
//! doctor` reports what the host enforces.

mod common;

use common::{program, require_root, Daemon};
use solo::proto::v1 as pb;
use std::time::Duration;
use tokio_stream::StreamExt;

fn kind(e: &pb::WatchEvent) -> Option<pb::EventKind> {
    match &e.payload {
        Some(pb::watch_event::Payload::Event(ev)) => pb::EventKind::try_from(ev.kind).ok(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_streams_lifecycle_events_and_logs() {
    if !require_root("watch_streams_lifecycle_events_and_logs") {
        return;
    }
    let d = Daemon::start();
    let mut c = d.client().await;
    let mut all = c.watch(pb::WatchRequest::default()).await.expect("watch").into_inner();
    // A second watcher on another service must not see "flaky".
    d.ok(&["deploy", "other", "--exec", &program("sleeper").display().to_string(), "--wait"]);
    let mut only_other = c
        .watch(pb::WatchRequest { id: "other".into(), include_events: true, ..Default::default() })
        .await
        .expect("watch")
        .into_inner();

    let crasher = program("crasher").display().to_string();
    d.ok(&[
        "deploy",
        "flaky",
        "--exec",
        &crasher,
        "--arg",
        "4",
        "--arg",
        "30",
        "--restart",
        "always",
        "--backoff-ms",
        "20",
        "--wait",
    ]);
    let mut seen: Vec<pb::WatchEvent> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(item))) = tokio::time::timeout(Duration::from_secs(5), all.next()).await else { break };
        let flaky = match &item.payload {
            Some(pb::watch_event::Payload::Event(e)) => e.service == "flaky",
            Some(pb::watch_event::Payload::Log(l)) => l.service == "flaky",
            None => false,
        };
        if flaky {
            seen.push(item);
        }
        if seen.iter().filter(|e| kind(e) == Some(pb::EventKind::Restarted)).count() >= 2 {
            break;
        }
    }
    let kinds: Vec<_> = seen.iter().filter_map(kind).collect();
    for k in [
        pb::EventKind::Deployed,
        pb::EventKind::Started,
        pb::EventKind::Exited,
        pb::EventKind::Backoff,
        pb::EventKind::Restarted,
    ] {
        assert!(kinds.contains(&k), "no {k:?} in {kinds:?}");
    }
    let started = seen.iter().find(|e| kind(e) == Some(pb::EventKind::Started)).expect("started");
    let Some(pb::watch_event::Payload::Event(s)) = &started.payload else { unreachable!() };
    assert!(s.pid > 0 && s.spawn_us > 0, "{s:?}");
    let exited = seen.iter().find(|e| kind(e) == Some(pb::EventKind::Exited)).expect("exited");
    let Some(pb::watch_event::Payload::Event(x)) = &exited.payload else { unreachable!() };
    assert_eq!(x.exit.as_ref().and_then(|e| e.how), Some(pb::exit_info::How::Code(4)));
    let restarted = seen.iter().find(|e| kind(e) == Some(pb::EventKind::Restarted)).expect("restarted");
    let Some(pb::watch_event::Payload::Event(r)) = &restarted.payload else { unreachable!() };
    assert!(r.restart_count >= 1 && r.delay_ms >= 16, "{r:?}");
    assert!(seen.iter().any(
        |e| matches!(&e.payload, Some(pb::watch_event::Payload::Log(l)) if l.line.contains("crasher will exit 4"))
    ));
    // Sequence numbers come from the event store and increase.
    let seqs: Vec<u64> = seen
        .iter()
        .filter_map(|e| match &e.payload {
            Some(pb::watch_event::Payload::Event(ev)) => Some(ev.seq),
            _ => None,
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    // Kill and remove show up too.
    d.ok(&["kill", "flaky", "--remove"]);
    let mut tail = Vec::new();
    while let Ok(Some(Ok(item))) = tokio::time::timeout(Duration::from_secs(3), all.next()).await {
        tail.push(kind(&item));
        if kind(&item) == Some(pb::EventKind::Removed) {
            break;
        }
    }
    assert!(tail.contains(&Some(pb::EventKind::Removed)), "{tail:?}");

    // The per-service watcher saw only "other".
    while let Ok(Some(Ok(item))) = tokio::time::timeout(Duration::from_millis(300), only_other.next()).await {
        if let Some(pb::watch_event::Payload::Event(e)) = &item.payload {
            assert_eq!(e.service, "other");
        }
    }
}

#[test]
fn logs_tail_and_cli_watch() {
    if !require_root("logs_tail_and_cli_watch") {
        return;
    }
    let d = Daemon::start();
    // stdout and stderr are separate pipes: their relative order is only
    // defined with a pause in between.
    let script = "for i in 1 2 3 4 5; do echo line $i; done; sleep 0.3; echo oops >&2; exec sleep 1000\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("talk.sh");
    std::fs::write(&path, script).expect("script");
    d.ok(&["deploy", "talk", "--script", path.to_str().expect("utf8"), "--interpreter", "sh", "--wait"]);
    let out = common::wait_for("logs", Duration::from_secs(10), || {
        let o = d.ok(&["logs", "talk", "--tail", "3"]);
        o.contains("oops").then_some(o)
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "talk.0 out | line 4");
    assert_eq!(lines[2], "talk.0 err | oops");
    let json = d.ok(&["--json", "logs", "talk", "--tail", "1"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("json line");
    assert_eq!(v["log"]["line"], "oops");
    assert_eq!(v["log"]["stream"], "LOG_STREAM_STDERR");
}

#[test]
fn doctor_reports_host_layers() {
    let o = std::process::Command::new(common::solo_bin()).args(["--json", "doctor"]).output().expect("doctor");
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let layers: Vec<&str> = v.as_array().expect("array").iter().filter_map(|c| c["layer"].as_str()).collect();
    for l in [
        "cgroup mode",
        "controller memory",
        "controller pids",
        "landlock",
        "seccomp",
        "namespace user",
        "pidfd",
        "clone3",
    ] {
        assert!(layers.contains(&l), "doctor has no '{l}' line: {layers:?}");
    }
    let human = std::process::Command::new(common::solo_bin()).arg("doctor").output().expect("doctor");
    assert!(String::from_utf8_lossy(&human.stdout).contains("LAYER"));
}
