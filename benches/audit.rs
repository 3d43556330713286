//! `cargo bench --bench audit`: what the audit log costs per record, next
//! to the event log (the same batched writer, no chain) in the same run.
//! Results and their reading: `docs/benchmarks.md` (Audit log and metrics).
//!
//! Measured on a temporary SQLite store, the daemon's own code:
//! 1. sealing one record (SHA-256 over its fields and the previous hash);
//! 2. the caller's side of `Store::append_audit` (what a deploy pays: a
//!    channel send) and of `append_event`;
//! 3. the writer's side: records committed per second, audit vs events;
//! 4. verification (`audit_verify`) of the whole chain, records per second;
//! 5. a retention round (checkpoint + delete of 10,000 records) and
//!    signing a head;
//! 6. with `SOLO_BENCH_PEER_BIN=<a solo binary without the audit log>`
//!    (e.g. main at the merge base, built with `cargo build --release`),
//!    as root: deploy → running with and without the audit log, *paired*:
//!    both daemons run side by side, each holding 1,000 services under
//!    `default`, and deploys alternate between them, so whatever else the
//!    machine does falls on both alike. `SOLO_BENCH_THIS_BIN` runs another
//!    binary than this build's as the side with the audit log. Reported:
//!    each side's p50, and the median of the per-pair ratios (the two
//!    deploys of a pair are a few milliseconds apart: the same load).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a small
//! smoke version; the figures only mean something from `cargo bench`.

use anyhow::Context;
use solo::audit::{Kind, Record, Retention, Signer, Stored, GENESIS};
use solo::proto::v1 as pb;
use solo::store::{EventRow, Store};
use std::time::{Duration, Instant};

// Shared with the other bench targets; this one uses part of it.
#[allow(dead_code)]
#[path = "common/mod.rs"]
mod common;
use common::daemon::Daemon;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// A record the size of a deploy's (about 600 bytes sealed).
fn deploy_record(i: u64) -> Record {
    Record::new(Kind::Deploy, &format!("svc-{i}"))
        .by("4f1c2a9be0d34c5e8f7a6b5c4d3e2f10")
        .message(format!("deployed revision 1 (executable sha256:{}) under profile default", "ab".repeat(32)))
        .with("revision", 1)
        .with("artifact_kind", "executable")
        .with("artifact_sha256", "ab".repeat(32))
        .with("profile", "default")
        .with("profile_sha256", "cd".repeat(32))
        .with("limits", serde_json::json!({"memory_bytes": 268435456u64, "cpu_weight": 100, "max_pids": 64}))
        .with("tier", "user")
        .with("replicas", 1)
        .with("uid", 61184 + i)
        .with("grants", Vec::<String>::new())
}

fn event(i: u64) -> EventRow {
    EventRow {
        at_ms: i as i64,
        service: format!("svc-{i}"),
        replica: 0,
        kind: "deployed".into(),
        pid: 0,
        message: format!("deployed revision 1 (executable {}, uid {}, 1 replica(s))", "ab".repeat(6), 61184 + i),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if full { (100_000u64, 5) } else { (2_000u64, 1) };
    let dir = tempfile::tempdir()?;
    let signer = Signer::new([7; 32]);
    let mut out = String::new();
    out.push_str(&format!("### Audit log, {n} records per round, {rounds} rounds (medians)\n\n| measure | audit | events (peer) | ratio |\n|---|---|---|---|\n"));

    // 1. Sealing alone.
    let mut seal = Vec::new();
    for _ in 0..rounds {
        let recs: Vec<Record> = (0..n).map(|i| Record { at_ms: i as i64, ..deploy_record(i) }).collect();
        let t = Instant::now();
        let mut prev = GENESIS;
        for (i, r) in recs.iter().enumerate() {
            prev = Stored::seal(i as u64 + 1, prev, r).hash;
        }
        std::hint::black_box(prev);
        seal.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let sealed_len = Stored::seal(1, GENESIS, &deploy_record(1)).detail.len();

    // 2 and 3: the caller's side and the writer's, audit and events in turn.
    let (mut call_a, mut call_e, mut write_a, mut write_e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut verify_rate = Vec::new();
    let mut last_store = None;
    for round in 0..rounds {
        let store = Store::open(&dir.path().join(format!("bench-{round}.db")))?;
        let recs: Vec<Record> = (0..n).map(|i| Record { at_ms: i as i64, ..deploy_record(i) }).collect();
        let t = Instant::now();
        for r in recs {
            store.append_audit(r);
        }
        call_a.push(t.elapsed().as_nanos() as f64 / n as f64);
        store.flush().await;
        write_a.push(t.elapsed().as_nanos() as f64 / n as f64);
        let evs: Vec<EventRow> = (0..n).map(event).collect();
        let t = Instant::now();
        for e in &evs {
            store.append_event(e);
        }
        call_e.push(t.elapsed().as_nanos() as f64 / n as f64);
        store.flush().await;
        write_e.push(t.elapsed().as_nanos() as f64 / n as f64);
        // 4. Verification of what was written.
        let t = Instant::now();
        let r = store.audit_verify(&signer)?;
        anyhow::ensure!(r.ok() && r.checked == n, "verify: {:?}", r.broken);
        verify_rate.push(n as f64 / t.elapsed().as_secs_f64());
        last_store = Some(store);
    }
    let row = |out: &mut String, what: &str, a: f64, e: f64, unit: &str| {
        out.push_str(&format!("| {what} | {a:.2} {unit} | {e:.2} {unit} | ×{:.2} |\n", a / e));
    };
    out.push_str(&format!(
        "| seal one record (SHA-256, {sealed_len}-byte detail) | {:.2} µs | — | — |\n",
        median(seal) / 1000.0
    ));
    row(&mut out, "caller: append one (channel send)", median(call_a) / 1000.0, median(call_e) / 1000.0, "µs");
    row(
        &mut out,
        "writer: append one, committed (wall / records)",
        median(write_a) / 1000.0,
        median(write_e) / 1000.0,
        "µs",
    );
    out.push_str(&format!("| verify the chain | {:.0} records/s | — | — |\n", median(verify_rate)));

    // 5. A retention round and a head signature, on the last store.
    if let Some(store) = last_store {
        let t = Instant::now();
        store.audit_sign_head(signer.clone(), 1).await?;
        let sign_us = t.elapsed().as_secs_f64() * 1e6;
        let keep = Retention { max_age_ms: None, max_records: Some(n / 2), batch: 10_000.min(n / 2) };
        let t = Instant::now();
        let cut = store.audit_prune(keep, 2, signer.clone()).await?;
        let prune_ms = t.elapsed().as_secs_f64() * 1e3;
        let r = store.audit_verify(&signer)?;
        anyhow::ensure!(r.ok(), "verify after pruning: {:?}", r.broken);
        out.push_str(&format!("| sign the head | {sign_us:.0} µs | — | — |\n"));
        out.push_str(&format!(
            "| one retention round ({} records deleted behind a checkpoint) | {prune_ms:.1} ms | — | — |\n",
            cut.map_or(0, |c| c.1)
        ));
    }
    println!("{out}");
    match std::env::var_os("SOLO_BENCH_PEER_BIN") {
        Some(peer) if solo::sandbox::sys::geteuid() == 0 => {
            let (held, measured) = if full { (1000, 400) } else { (10, 10) };
            println!("{}", paired_deploys(&peer, held, measured).await?);
        }
        Some(_) => eprintln!("paired deploys skipped: they need root (cgroups, service uids)"),
        None => eprintln!("paired deploys skipped: set SOLO_BENCH_PEER_BIN to a solo binary without the audit log"),
    }
    Ok(())
}

/// One deploy → running: (RPC µs, daemon's own µs = startup_us − spawn_us).
async fn deploy(c: &mut solo::cli::Client, id: &str, program: &[u8]) -> anyhow::Result<(f64, f64)> {
    let spec = common::executable_spec(id, program, &[], "default");
    let t = Instant::now();
    let r = c.deploy(pb::DeployRequest { spec: Some(spec), wait: true }).await.context("deploy")?.into_inner();
    let rpc = t.elapsed().as_secs_f64() * 1e6;
    let spawn = r.instances.first().map_or(0, |i| i.spawn_us);
    Ok((rpc, r.startup_us.saturating_sub(spawn) as f64))
}

/// Deploys alternating between the peer (no audit log) and this build.
async fn paired_deploys(peer: &std::ffi::OsStr, held: usize, measured: usize) -> anyhow::Result<String> {
    let tmp = tempfile::tempdir()?;
    let tiny = tmp.path().join("tiny");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/tiny.c");
    let st = std::process::Command::new("gcc")
        .args(["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-o"])
        .arg(&tiny)
        .arg(&src)
        .status()
        .context("gcc must be installed to build tests/programs/tiny.c")?;
    anyhow::ensure!(st.success(), "gcc failed");
    let program = std::fs::read(&tiny)?;
    let mut a = Daemon::start_exe(peer, "solo-bench-peer-", "330000-331499", &[])?;
    let this = std::env::var_os("SOLO_BENCH_THIS_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_solo").into());
    let mut b = Daemon::start_exe(&this, "solo-bench-audit-", "332000-333499", &[])?;
    let (mut ca, mut cb) = (a.connect().await?, b.connect().await?);
    let started = Instant::now();
    for i in 0..held {
        deploy(&mut ca, &format!("h-{i}"), &program).await?;
        deploy(&mut cb, &format!("h-{i}"), &program).await?;
        if (i + 1).is_multiple_of(250) {
            eprintln!("[{:>5.1} s] {} held by each", started.elapsed().as_secs_f64(), i + 1);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut ra, mut rb, mut da, mut db) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..measured {
        // Alternate which goes first, so neither always follows the other.
        let id = format!("m-{i}");
        let (x, y) = if i.is_multiple_of(2) {
            let x = deploy(&mut ca, &id, &program).await?;
            (x, deploy(&mut cb, &id, &program).await?)
        } else {
            let y = deploy(&mut cb, &id, &program).await?;
            (deploy(&mut ca, &id, &program).await?, y)
        };
        ra.push(x.0);
        da.push(x.1);
        rb.push(y.0);
        db.push(y.1);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    for (c, d) in [(&mut ca, &mut a), (&mut cb, &mut b)] {
        c.shutdown(pb::ShutdownRequest { timeout_ms: 120_000 }).await?;
        anyhow::ensure!(d.wait_exit(Duration::from_secs(180)).await, "a daemon did not exit");
    }
    let row = |what: &str, x: Vec<f64>, y: Vec<f64>| {
        let pair = median(x.iter().zip(&y).map(|(a, b)| b / a).collect());
        let slower = x.iter().zip(&y).filter(|(a, b)| b > a).count() as f64 / x.len().max(1) as f64;
        let (mx, my) = (median(x), median(y));
        format!(
            "| {what} | {:.0} µs | {:.0} µs | ×{:.3} ({:+.1} %) | ×{pair:.3} ({:+.1} %) | {:.0} % |\n",
            mx,
            my,
            my / mx,
            (my / mx - 1.0) * 100.0,
            (pair - 1.0) * 100.0,
            slower * 100.0
        )
    };
    Ok(format!(
        "### Deploy → running at {held} held, with and without the audit log ({measured} pairs, p50)\n\n\
         | measure | without (peer) | with the audit log | ratio of p50s | median per-pair ratio | pairs where it was slower |\n|---|---|---|---|---|---|\n{}{}\nload average at the end: {}",
        row("Deploy RPC (client)", ra, rb),
        row("daemon's own share (startup_us − spawn_us)", da, db),
        load.trim()
    ))
}
