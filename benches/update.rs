//! `cargo bench --bench update`: updates under continuous HTTP load,
//! against a real `solo serve`, next to what an operator does with systemd,
//! in the same run. Results and their reading: `docs/benchmarks.md`
//! (section "Updates").
//!
//! The service is `tests/services/httpd.py` (Python, one connection at a
//! time, socket-activated on a granted `listen:tcp` socket, `READY=1`
//! readiness). The load is `THREADS` client threads, each sending HTTP/1.0
//! `GET /` in a loop (a new connection per request) and recording every
//! request: when it started, how long it took, which revision answered, or
//! why it failed.
//!
//! 1. Rolling update of 4 replicas (defaults: max_surge 1, max_unavailable
//!    0, min_ready 1000 ms) under load: failed requests, the update's
//!    duration, p50/p99 latency in a steady window before and during it,
//!    the longest time without a completed response, and whether anything
//!    but the new revision answered after it.
//! 2. The same for 1 replica (min_ready 100 ms), the peer of:
//! 3. systemd, emulated with `systemd-socket-activate` (PID 1 here is not
//!    systemd): (a) a socket unit's socket held across the restart (the
//!    benchmark holds it, as PID 1 would, and passes it through; `systemctl
//!    restart` = SIGTERM, wait for the exit, start again); (b) no socket
//!    unit: the tool binds the port itself, so a restart closes it.
//! 4. A crashing canary (exits at once) and one never ready (startup
//!    timeout 1000 ms) among 4 replicas: update request → the old revision
//!    serving alone again, and crash → alone.
//!
//! Runs as root, with python3 and systemd-socket-activate. Under `cargo
//! test --all-targets` (no `--bench`) it runs a smoke version.

use anyhow::{bail, ensure, Context};
use solo::proto::v1 as pb;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Shared with the other benches and the tests; this one uses a part.
#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/load.rs"]
mod load;
use common::daemon::Daemon;
use load::{quantile_ms, Hammer, Sample};

type Client = solo::cli::Client;

#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Updates measured per variant.
    runs: usize,
    /// Steady load before each update.
    steady: Duration,
    threads: usize,
    canaries: usize,
    full: bool,
}

const FULL: Scale = Scale { runs: 5, steady: Duration::from_secs(5), threads: 4, canaries: 5, full: true };
const SMOKE: Scale = Scale { runs: 1, steady: Duration::from_millis(500), threads: 2, canaries: 1, full: false };

const UID_RANGE: &str = "304000-304099";
const SSA: &str = "/usr/bin/systemd-socket-activate";

fn httpd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services/httpd.py")
}

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let scale = if bench { FULL } else { SMOKE };
    if solo::sandbox::sys::geteuid() != 0 {
        eprintln!("SKIPPED update bench: needs root (the daemon creates cgroups and switches uids)");
        return Ok(());
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("SKIPPED update bench: no /usr/bin/python3 (the service's interpreter)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(scale))
}

/// The measured service: httpd.py as `id` with `replicas` on `port`.
fn spec(id: &str, port: u16, replicas: u32, source: Vec<u8>, v: &str) -> pb::ServiceSpec {
    pb::ServiceSpec {
        id: id.into(),
        artifact: Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Script(pb::ScriptArtifact {
                interpreter: "python3".into(),
                source,
                ..Default::default()
            })),
        }),
        replicas,
        env: [("V".to_owned(), v.to_owned())].into(),
        readiness: Some(pb::Readiness { kind: pb::ReadinessKind::Notify as i32, ..Default::default() }),
        grants: vec![pb::Grant { spec: format!("listen:tcp:127.0.0.1:{port}"), name: "http".into() }],
        ..Default::default()
    }
}

/// Sends an update and follows it to its end; returns the last progress.
async fn update(c: &mut Client, req: pb::UpdateRequest) -> anyhow::Result<pb::UpdateProgress> {
    let mut s = c.update(req).await?.into_inner();
    let mut last = None;
    while let Some(p) = s.message().await? {
        last = Some(p);
    }
    last.context("no progress")
}

/// One update (or restart) under load.
#[derive(Debug, Clone, Default)]
struct Run {
    requests: usize,
    failed: usize,
    first_error: Option<String>,
    update_ms: f64,
    p50_before: f64,
    p99_before: f64,
    p50_during: f64,
    p99_during: f64,
    max_during: f64,
    /// Longest time without a completed response, from the update's start
    /// to a second after its end.
    gap_ms: f64,
    /// Requests started after the update ended but answered by another revision.
    stale: usize,
}

fn measure(
    samples: &[Sample],
    before: (Duration, Duration),
    during: (Duration, Duration),
    new_rev: Option<u64>,
) -> Run {
    let in_window = |w: (Duration, Duration)| samples.iter().filter(move |s| s.start >= w.0 && s.start < w.1);
    let b: Vec<&Sample> = in_window(before).collect();
    let d: Vec<&Sample> = in_window(during).collect();
    let mut done: Vec<Duration> =
        samples.iter().filter(|s| s.outcome.is_ok()).map(|s| s.start + s.latency).filter(|t| *t >= during.0).collect();
    done.sort_unstable();
    let horizon = during.1 + Duration::from_secs(1);
    let mut gap = Duration::ZERO;
    let mut prev = during.0;
    for t in done.iter().copied().take_while(|t| *t <= horizon) {
        gap = gap.max(t.saturating_sub(prev));
        prev = t;
    }
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.outcome.is_err()).collect();
    Run {
        requests: samples.len(),
        failed: failed.len(),
        first_error: failed.first().and_then(|s| s.outcome.clone().err()),
        update_ms: (during.1 - during.0).as_secs_f64() * 1000.0,
        p50_before: quantile_ms(&b, 0.5),
        p99_before: quantile_ms(&b, 0.99),
        p50_during: quantile_ms(&d, 0.5),
        p99_during: quantile_ms(&d, 0.99),
        max_during: quantile_ms(&d, 1.0),
        gap_ms: gap.as_secs_f64() * 1000.0,
        stale: match new_rev {
            Some(r) => samples.iter().filter(|s| s.start >= during.1 && s.revision() != Some(r)).count(),
            None => 0,
        },
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn report(name: &str, runs: &[Run]) {
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let failed: usize = runs.iter().map(|r| r.failed).sum();
    let requests: usize = runs.iter().map(|r| r.requests).sum();
    let stale: usize = runs.iter().map(|r| r.stale).sum();
    println!(
        "{name:<44} runs {:>2}  requests {requests:>7}  failed {failed:>4}  stale {stale}  time {:>7.0} ms  gap {:>6.1} ms  \
         p50 {:>5.1}/{:>5.1} ms  p99 {:>6.1}/{:>6.1} ms  max {:>7.1} ms (before/during, medians)",
        runs.len(),
        m(|r| r.update_ms),
        m(|r| r.gap_ms),
        m(|r| r.p50_before),
        m(|r| r.p50_during),
        m(|r| r.p99_before),
        m(|r| r.p99_during),
        m(|r| r.max_during),
    );
    if let Some(e) = runs.iter().find_map(|r| r.first_error.clone()) {
        println!("{:<44} first error: {e}", "");
    }
}

async fn run(s: Scale) -> anyhow::Result<()> {
    let source = std::fs::read(httpd_path()).context("tests/services/httpd.py")?;
    let mut d = Daemon::start("solo-bench-update-", UID_RANGE)?;
    let mut c = d.connect().await?;
    println!("update bench: {} runs per variant, {} load threads, {:?} steady window", s.runs, s.threads, s.steady);

    // 1 and 2: rolling updates under load.
    for (replicas, min_ready, name) in [
        (4u32, 0u32, "solo rolling, 4 replicas (min_ready 1000 ms)"),
        (1, 100, "solo rolling, 1 replica (min_ready 100 ms)"),
    ] {
        let id = format!("web{replicas}");
        let port = free_port()?;
        c.deploy(pb::DeployRequest { spec: Some(spec(&id, port, replicas, source.clone(), "1")), wait: true }).await?;
        let mut runs = Vec::new();
        for i in 0..s.runs {
            let load = Hammer::start(port, s.threads);
            tokio::time::sleep(s.steady).await;
            let before = (Duration::from_millis(500), load.now());
            let from = load.now();
            let req = pb::UpdateRequest {
                spec: Some(spec(&id, port, replicas, source.clone(), &(i + 2).to_string())),
                min_ready_ms: min_ready,
                ..Default::default()
            };
            let p = update(&mut c, req).await?;
            ensure!(p.done && !p.rolled_back, "{name}: the update did not commit: {p:?}");
            let to = load.now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let samples = tokio::task::spawn_blocking(move || load.stop()).await?;
            runs.push(measure(&samples, before, (from, to), Some(p.revision)));
        }
        report(name, &runs);
        c.kill(pb::KillRequest { id, force: true, remove: true, timeout_ms: 0 }).await?;
    }

    // 3: systemd's restart, emulated.
    if std::path::Path::new(SSA).exists() {
        for held in [true, false] {
            let name = if held {
                "systemd-socket-activate, socket unit held"
            } else {
                "systemd-socket-activate, no socket unit"
            };
            let mut runs = Vec::new();
            let port = free_port()?;
            let socket = if held { Some(TcpListener::bind(("127.0.0.1", port))?) } else { None };
            let mut unit = start_unit(socket.as_ref(), port, 1)?;
            wait_serving(port).await?;
            for i in 0..s.runs {
                let load = Hammer::start(port, s.threads);
                tokio::time::sleep(s.steady).await;
                let before = (Duration::from_millis(500), load.now());
                let from = load.now();
                // systemctl restart: stop (SIGTERM, wait), start.
                let pid = unit.id().to_string();
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
                let _ = unit.wait();
                unit = start_unit(socket.as_ref(), port, i as u64 + 2)?;
                let to = load.now();
                tokio::time::sleep(Duration::from_secs(1)).await;
                let samples = tokio::task::spawn_blocking(move || load.stop()).await?;
                runs.push(measure(&samples, before, (from, to), None));
            }
            report(name, &runs);
            let _ = unit.kill();
            let _ = unit.wait();
        }
    } else {
        println!("systemd comparison skipped: {SSA} is not installed (apt install systemd)");
    }

    // 4: failing canaries.
    let port = free_port()?;
    c.deploy(pb::DeployRequest { spec: Some(spec("can", port, 4, source.clone(), "1")), wait: true }).await?;
    for (what, code, timeout) in [
        ("crashing canary (exits at once)", "import sys\nsys.exit(3)\n", 0u32),
        ("canary never ready (startup timeout 1000 ms)", "import time\ntime.sleep(600)\n", 1000),
    ] {
        let mut total = Vec::new();
        let mut after_crash = Vec::new();
        for _ in 0..s.canaries {
            let mut bad = spec("can", port, 4, code.as_bytes().to_vec(), "bad");
            if timeout > 0 {
                bad.readiness = Some(pb::Readiness {
                    kind: pb::ReadinessKind::Notify as i32,
                    startup_timeout_ms: timeout,
                    ..Default::default()
                });
            }
            let mut watch = c
                .watch(pb::WatchRequest { id: "can".into(), include_events: true, ..Default::default() })
                .await?
                .into_inner();
            let sent = solo::supervisor::events::now_ms();
            let t0 = Instant::now();
            let req = pb::UpdateRequest {
                spec: Some(bad),
                strategy: Some(pb::update_request::Strategy::Canary(pb::CanaryStrategy::default())),
                ..Default::default()
            };
            let p = update(&mut c, req).await?;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            ensure!(p.rolled_back, "{what}: did not roll back: {p:?}");
            // The canary's end (EXITED, or the kill after the readiness timeout).
            let mut crashed_at = None;
            while let Ok(Some(Some(ev))) =
                tokio::time::timeout(Duration::from_millis(200), watch.message()).await.map(Result::ok)
            {
                if let Some(pb::watch_event::Payload::Event(e)) = ev.payload {
                    let canary_end = e.revision > 1
                        && (e.kind == pb::EventKind::Exited as i32 || e.kind == pb::EventKind::LaunchFailed as i32);
                    if canary_end && crashed_at.is_none() {
                        crashed_at = Some(ev.at_unix_ms);
                    }
                }
            }
            total.push(ms);
            if let Some(at) = crashed_at {
                after_crash.push((p.at_unix_ms - at) as f64);
            }
            let _ = sent;
            let alone = c.status(pb::StatusRequest { id: "can".into() }).await?.into_inner();
            let svc = alone.service.context("status")?;
            ensure!(
                svc.instances.iter().all(|i| i.revision == svc.revision) && svc.instances.len() == 4,
                "{what}: not alone after the rollback: {:?}",
                svc.instances
            );
        }
        println!(
            "{what:<44} runs {:>2}  request → old revision alone: median {:>6.0} ms (max {:>6.0})  canary's end → alone: median {:>5.0} ms",
            total.len(),
            median(total.clone()),
            total.iter().copied().fold(0.0, f64::max),
            median(after_crash)
        );
    }
    c.shutdown(pb::ShutdownRequest { timeout_ms: 20_000 }).await?;
    if !d.wait_exit(Duration::from_secs(30)).await {
        bail!("the daemon did not exit after Shutdown:\n{}", d.log_tail());
    }
    if !s.full {
        println!("(smoke run: `cargo bench --bench update` for the figures)");
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts httpd.py under systemd-socket-activate: on the `held` socket
/// (passed through as LISTEN_FDS, as PID 1 passes a socket unit's), or on
/// a socket the tool binds itself.
fn start_unit(held: Option<&TcpListener>, port: u16, revision: u64) -> anyhow::Result<Child> {
    let httpd = httpd_path().display().to_string();
    let env = format!("-E SOLO_SERVICE=web -E SOLO_REPLICA=0 -E SOLO_REVISION={revision}");
    let mut cmd = Command::new("sh");
    match held {
        Some(l) => {
            // The socket arrives as stdin; the shell moves it to fd 3 and
            // names itself (exec keeps its pid) as LISTEN_PID.
            let fd: OwnedFd = l.try_clone()?.into();
            cmd.arg("-c")
                .arg(format!(
                    "exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec {SSA} --fdname=http {env} python3 {httpd}"
                ))
                .stdin(Stdio::from(fd));
        }
        None => {
            cmd.arg("-c")
                .arg(format!("exec {SSA} -l 127.0.0.1:{port} --fdname=http {env} python3 {httpd}"))
                .stdin(Stdio::null());
        }
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("start systemd-socket-activate")
}

async fn wait_serving(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while load::get(([127, 0, 0, 1], port).into()).is_err() {
        ensure!(Instant::now() < deadline, "the systemd emulation does not serve on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
