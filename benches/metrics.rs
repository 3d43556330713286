//! `cargo bench --bench metrics`: what a Prometheus scrape of `solo serve
//! --metrics` costs with 1,000 and with 5,000 services held (the bound on
//! the series a scrape carries), next to `List` of the same services in
//! the same run; the size of a scrape; the background round that samples
//! every instance's usage (every 5 s). Results: `docs/benchmarks.md`.
//!
//! Runs as root. Every service is `tests/programs/tiny.c` (it pauses)
//! under the `base` profile (host network: no network namespace per
//! instance, so 5,000 deploys take a minute rather than several; the
//! profile has no bearing on a scrape). Under `cargo test --all-targets`
//! (no `--bench` argument) it runs a smoke version with 20 and 50 services.

use anyhow::{ensure, Context};
use solo::proto::v1 as pb;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

// Shared with the other bench targets; this one uses part of it.
#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;
use common::daemon::Daemon;

const UID_RANGE: &str = "320000-325199";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

/// One scrape: (milliseconds, body).
fn scrape(port: u16) -> anyhow::Result<(f64, String)> {
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP header")?;
    ensure!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    Ok((ms, body.to_owned()))
}

fn gauge(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

fn rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse::<f64>().ok()))
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (steps, rounds): (&[usize], usize) = if full { (&[1000, 5000], 30) } else { (&[20, 50], 3) };
    let tmp = tempfile::tempdir()?;
    let tiny = tmp.path().join("tiny");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/tiny.c");
    let st = Command::new("gcc")
        .args(["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-o"])
        .arg(&tiny)
        .arg(&src)
        .status()
        .context("gcc must be installed to build tests/programs/tiny.c")?;
    ensure!(st.success(), "gcc failed");
    let program = std::fs::read(&tiny)?;
    // A running instance holds 5 descriptors in the daemon (pidfd, control
    // socket, two log pipes, the seccomp listener): 5,000 need ~25,000,
    // more than a default hard RLIMIT_NOFILE (20,000 here).
    // systemd/solo.service sets LimitNOFILE=1048576; the daemon inherits
    // this process's limit, raised if we may (CAP_SYS_RESOURCE). If not,
    // the services beyond what fits are deployed and then stopped: still
    // held, their series still in every scrape, no process.
    let _ = solo::sandbox::sys::setrlimit(libc::RLIMIT_NOFILE, 1 << 20, 1 << 20);
    let hard = solo::sandbox::sys::getrlimit(libc::RLIMIT_NOFILE).map_or(20_000, |l| l.1);
    // The launcher holds about as many (its vault, for re-adoption), and a
    // child inherits them until exec; its RLIMIT_NOFILE (max_open_files) is
    // set before Landlock opens its paths, so it is raised to fit them
    // (with the default 1,024 the 183rd launch fails: see docs/benchmarks.md).
    let running_cap = (hard.saturating_sub(2_000) / 6) as usize;
    let nofile = u32::try_from(hard.saturating_sub(1_000).min(1 << 20)).unwrap_or(16_384);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = Daemon::start_with("solo-bench-metrics-", UID_RANGE, &["--metrics", &addr])?;
    let mut c = daemon.connect().await?;
    // Whatever happens while measuring, the daemon stops its services:
    // its launcher would keep them running after the daemon is gone.
    let measured = measure(&mut c, &daemon, port, &program, steps, rounds, (running_cap, nofile)).await;
    eprintln!("shutting down");
    c.shutdown(pb::ShutdownRequest { timeout_ms: 120_000 }).await?;
    drop(c);
    ensure!(daemon.wait_exit(Duration::from_secs(180)).await, "the daemon did not exit:\n{}", daemon.log_tail());
    let out = measured?;
    println!(
        "### Metrics scrape, {rounds} scrapes per size (medians)\n\nhard RLIMIT_NOFILE {hard}: at most {running_cap} running\n\n{out}"
    );
    Ok(())
}

/// Deploys up to each of `steps` services and measures scrapes and `List`.
async fn measure(
    c: &mut solo::cli::Client,
    daemon: &Daemon,
    port: u16,
    program: &[u8],
    steps: &[usize],
    rounds: usize,
    (running_cap, nofile): (usize, u32),
) -> anyhow::Result<String> {
    let mut out = String::from(
        "| services (running) | scrape p50 | scrape p90 | scrape size | series | render (daemon) | `List` p50 (peer) | usage sampling round | daemon RSS |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut held = 0usize;
    let mut retried = 0u32;
    let started = Instant::now();
    for &target in steps {
        while held < target {
            let mut spec = common::executable_spec(&format!("m-{held}"), program, &[], "base");
            spec.limits = Some(pb::Limits { max_open_files: nofile, ..Default::default() });
            if let Err(e) = c.deploy(pb::DeployRequest { spec: Some(spec.clone()), wait: true }).await {
                // A launch that failed on a busy host (the error says why) is
                // removed and tried once more; the count is reported.
                eprintln!("deploy m-{held} failed, once more: {}", e.message());
                retried += 1;
                let id = format!("m-{held}");
                c.kill(pb::KillRequest { id, force: true, remove: true, timeout_ms: 0 }).await.context("remove")?;
                c.deploy(pb::DeployRequest { spec: Some(spec), wait: true }).await.context("deploy")?;
            }
            if held >= running_cap {
                let id = format!("m-{held}");
                c.kill(pb::KillRequest { id, force: true, remove: false, timeout_ms: 0 }).await.context("kill")?;
            }
            held += 1;
            if held.is_multiple_of(500) {
                eprintln!("[{:>5.1} s] {held} services", started.elapsed().as_secs_f64());
            }
        }
        // Two sampling rounds (every 5 s), so every instance has a sample.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let (mut times, mut last) = (Vec::new(), String::new());
        for _ in 0..rounds {
            let (ms, body) = scrape(port)?;
            times.push(ms);
            last = body;
        }
        let series = last.lines().filter(|l| !l.starts_with('#')).count();
        ensure!(gauge(&last, "solo_deployment_count") as usize == held, "solo_deployment_count is not {held}");
        let render_ms = gauge(&last, "solo_metrics_scrape_duration_seconds") * 1e3;
        let sample_ms = gauge(&last, "solo_metrics_sample_duration_seconds") * 1e3;
        eprintln!("[{:>5.1} s] {held} services: {rounds} scrapes", started.elapsed().as_secs_f64());
        let mut list = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let r = c.list(pb::ListRequest::default()).await?.into_inner();
            list.push(t.elapsed().as_secs_f64() * 1e3);
            ensure!(r.services.len() == held);
        }
        out.push_str(&format!(
            "| {held} ({}) | {:.1} ms | {:.1} ms | {:.0} KiB | {series} | {render_ms:.1} ms | {:.1} ms | {sample_ms:.0} ms | {:.1} MiB |\n",
            held.min(running_cap),
            median(times.clone()),
            pct(times, 0.9),
            last.len() as f64 / 1024.0,
            median(list),
            rss_mib(daemon.pid()),
        ));
    }
    if retried > 0 {
        out.push_str(&format!("\n{retried} deploys failed to launch once and were retried\n"));
    }
    Ok(out)
}
