//! `cargo bench --bench capabilities`: what a granted channel between two
//! services costs, measured through a real `solo serve` whose services run
//! under the full `default` sandbox profile, next to the same program over
//! a plain `socketpair` between two unsandboxed processes. Results and
//! their reading: `docs/benchmarks.md`, "Capabilities (issue 4)".
//!
//! The program is `tests/programs/pingpong.c` (static, built with gcc).
//! Each round runs eight variants, in an order that rotates:
//! - **Solo**: `pingpong serve` is deployed as a service, then `pingpong
//!   ping peer N M SERVER` with the grant `peer=service:SERVER`, both
//!   through the gRPC client with profile `default`. The pinger times N
//!   one-byte and N 64-byte round trips on its granted descriptor (the
//!   server's end arrives on the server's control socket and is echoed by
//!   a thread of its own), then M `hello` and M `connect` requests on its
//!   own control socket, and prints percentiles; the benchmark reads them
//!   from the service's log on a `Watch` stream, then removes both;
//! - **bare**: `pingpong selftest N`, the same round trips between the
//!   program and a forked copy of itself over `socketpair(AF_UNIX,
//!   SOCK_STREAM)`, started directly by the benchmark: no supervisor, no
//!   sandbox;
//!
//! each unpinned, with both ends on CPU 0, across CPUs 0 and 1
//! (`PINGPONG_CPU` in a service's environment, `selftest N same|cross`),
//! and across CPUs 0 and 1 with both ends polling (`PINGPONG_POLL=1`:
//! reads spin on `MSG_DONTWAIT`, so no end sleeps and no wake-up is timed:
//! the cost of the channel itself): on a VM whether the two ends share a
//! CPU, and whether they sleep, decides most of a round trip's time, so
//! only variants with the same placement are compared.
//! The control requests are made in the unpinned Solo variant only.
//!
//! Runs as root. Under `cargo test --all-targets` (no `--bench` argument)
//! it runs a small smoke version (one round, a few thousand round trips).
//! Token verification has its own benchmark: `cargo bench --bench tokens`.

use anyhow::{anyhow, bail, ensure, Context};
use solo::proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
use common::daemon::Daemon;
use common::procfs::{launcher_pid, machine_ticks, our_ticks};

type Client = solo::cli::Client;

#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Rounds; each runs every variant once.
    rounds: usize,
    /// Round trips per message size per variant.
    n: u32,
    /// Control-socket requests of each kind (Solo only).
    m: u32,
    full: bool,
}

const FULL: Scale = Scale { rounds: 3, n: 100_000, m: 2_000, full: true };
const SMOKE: Scale = Scale { rounds: 1, n: 2_000, m: 50, full: false };

/// Service uids, away from the integration tests' and the supervisor
/// benchmark's (300000–303500).
const UID_RANGE: &str = "305000-305999";
const PROFILE: &str = "default";
/// What the pinger calls its granted descriptor.
const GRANT_NAME: &str = "peer";

/// Where the two ends run: left to the scheduler, both on CPU 0, or the
/// pinger on CPU 0 and the echoing end on CPU 1; in the last, also with
/// both ends polling (`PINGPONG_POLL=1`: no sleeping read, so no wake-up).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    Unpinned,
    Same,
    Cross,
    CrossPolling,
}

impl Placement {
    fn label(self) -> &'static str {
        match self {
            Placement::Unpinned => "unpinned",
            Placement::Same => "both on CPU 0",
            Placement::Cross => "CPUs 0 and 1",
            Placement::CrossPolling => "CPUs 0 and 1, both polling",
        }
    }
    /// `pingpong selftest`'s argument.
    fn selftest_arg(self) -> &'static str {
        match self {
            Placement::Unpinned => "",
            Placement::Same => "same",
            Placement::Cross | Placement::CrossPolling => "cross",
        }
    }
    /// PINGPONG_CPU for the pinger and the server, if pinned.
    fn cpus(self) -> Option<(u32, u32)> {
        match self {
            Placement::Unpinned => None,
            Placement::Same => Some((0, 0)),
            Placement::Cross | Placement::CrossPolling => Some((0, 1)),
        }
    }
    /// Tags services and rounds apart.
    fn tag(self) -> &'static str {
        match self {
            Placement::CrossPolling => "poll",
            other => other.selftest_arg(),
        }
    }
    fn polling(self) -> bool {
        self == Placement::CrossPolling
    }
}

/// One way of running the round trips.
#[derive(Debug, Clone, Copy)]
struct Variant {
    solo: bool,
    at: Placement,
}

/// Solo and bare, each unpinned, on one CPU and across two: the pinned
/// pairs compare like with like (the placement decides most of a round
/// trip's time on this VM), the unpinned pair is what a service gets.
/// Round 0 runs them in this order; later rounds rotate it.
const VARIANTS: [Variant; 8] = [
    Variant { solo: true, at: Placement::Unpinned },
    Variant { solo: false, at: Placement::Unpinned },
    Variant { solo: true, at: Placement::Same },
    Variant { solo: false, at: Placement::Same },
    Variant { solo: true, at: Placement::Cross },
    Variant { solo: false, at: Placement::Cross },
    Variant { solo: true, at: Placement::CrossPolling },
    Variant { solo: false, at: Placement::CrossPolling },
];

impl Variant {
    fn label(self) -> String {
        let who = if self.solo { "Solo: two `default` services, granted channel" } else { "bare: socketpair, fork" };
        format!("{who}, {}", self.at.label())
    }
}
/// The measures pingpong prints, with their unit.
const RTT: [&str; 2] = ["rtt_ns size=1", "rtt_ns size=64"];
const CONTROL: [&str; 2] = ["control_hello_us", "control_connect_us"];

// ---------------------------------------------------------------- programs

/// Builds `tests/programs/pingpong.c` as tests/common `programs()` does:
/// `gcc -O2 -static` plus the flags of the source's `cflags:` line.
fn build_pingpong(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/pingpong.c");
    let text = std::fs::read_to_string(&src)?;
    let extra: Vec<String> = text
        .lines()
        .find_map(|l| l.split_once("cflags:").map(|(_, f)| f.trim().trim_end_matches("*/").to_owned()))
        .map(|f| f.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let dest = dir.join("pingpong");
    let st = Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&dest)
        .arg(&src)
        .args(&extra)
        .status()
        .context("gcc must be installed to build the benchmark program")?;
    ensure!(st.success(), "gcc failed for {}", src.display());
    Ok(dest)
}

// ---------------------------------------------------------------- figures

/// One measure as pingpong prints it: `name [size=S] p50=… p99=… n=…`.
#[derive(Debug, Clone, Default)]
struct Line(BTreeMap<String, f64>);

impl Line {
    fn get(&self, k: &str) -> f64 {
        self.0.get(k).copied().unwrap_or(f64::NAN)
    }
}

/// The measures of pingpong's output, by name (`rtt_ns size=1`, …).
fn parse(out: &str) -> BTreeMap<String, Line> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let mut words = l.split_whitespace();
        let Some(name) = words.next() else { continue };
        if !name.starts_with("rtt_ns") && !name.starts_with("control_") {
            continue;
        }
        let mut name = name.to_owned();
        let mut fields = BTreeMap::new();
        for w in words {
            let Some((k, v)) = w.split_once('=') else { continue };
            if k == "size" {
                name = format!("{name} size={v}");
            } else if let Ok(v) = v.parse::<f64>() {
                fields.insert(k.to_owned(), v);
            }
        }
        m.insert(name, Line(fields));
    }
    m
}

/// Median of the values (NaNs left out).
fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let k = v.len();
    if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

/// `median [min–max]` of one field over the rounds, in µs.
/// `| label | p50 | p90 | p99 | p99.9 | min | mean |`, each a [`cell`].
fn percentile_row(label: &str, rounds: &[&Line], scale: f64) -> String {
    let cells: Vec<String> =
        ["p50", "p90", "p99", "p999", "min", "mean"].iter().map(|f| cell(rounds, f, scale)).collect();
    format!("| {label} | {} |", cells.join(" | "))
}

fn cell(rounds: &[&Line], field: &str, scale: f64) -> String {
    let v: Vec<f64> = rounds.iter().map(|l| l.get(field) / scale).collect();
    let (lo, hi) = range(&v);
    if v.len() <= 1 {
        format!("{:.2}", median(&v))
    } else {
        format!("{:.2} [{lo:.2}–{hi:.2}]", median(&v))
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ------------------------------------------------------------------- runs

/// `pingpong selftest N [same|cross]`, started directly: no supervisor.
fn bare(program: &Path, n: u32, at: Placement) -> anyhow::Result<BTreeMap<String, Line>> {
    let pin = at.selftest_arg();
    let mut cmd = Command::new(program);
    cmd.arg("selftest").arg(n.to_string());
    if !pin.is_empty() {
        cmd.arg(pin);
    }
    if at.polling() {
        cmd.env("PINGPONG_POLL", "1");
    }
    let out = cmd.stdin(Stdio::null()).output().context("run pingpong selftest")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success() && text.contains("pingpong done"), "{cmd:?}: {}\n{text}", out.status);
    Ok(parse(&text))
}

fn spec(
    id: &str,
    program: &[u8],
    args: &[String],
    grants: Vec<pb::Grant>,
    cpu: Option<u32>,
    poll: bool,
) -> pb::ServiceSpec {
    let mut env: std::collections::HashMap<String, String> =
        cpu.map(|c| ("PINGPONG_CPU".to_owned(), c.to_string())).into_iter().collect();
    if poll {
        env.insert("PINGPONG_POLL".into(), "1".into());
    }
    pb::ServiceSpec {
        restart: Some(pb::RestartSpec { policy: pb::RestartPolicy::Never as i32, ..Default::default() }),
        grants,
        env,
        ..common::executable_spec(id, program, args, PROFILE)
    }
}

async fn deploy(c: &mut Client, s: pb::ServiceSpec) -> anyhow::Result<pb::Instance> {
    let id = s.id.clone();
    let r = c.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.with_context(|| format!("deploy {id}"))?;
    r.into_inner().instances.into_iter().next().ok_or_else(|| anyhow!("deploy {id}: no instance in the reply"))
}

async fn remove(c: &mut Client, id: &str) -> anyhow::Result<()> {
    c.kill(pb::KillRequest { id: id.to_owned(), force: true, remove: true, timeout_ms: 0 })
        .await
        .with_context(|| format!("kill --remove {id}"))?;
    Ok(())
}

/// What one Solo round gives: the pinger's measures, its sandbox layers,
/// and the server's own log lines.
struct SoloRun {
    figures: BTreeMap<String, Line>,
    layers: Vec<String>,
    server_log: Vec<String>,
}

/// Deploys the server and the pinger (pinned as `at` says; the control
/// requests only when unpinned), reads the pinger's figures from its log on
/// a Watch stream, removes both.
async fn solo_round(
    c: &mut Client,
    program: &[u8],
    round: usize,
    at: Placement,
    scale: Scale,
) -> anyhow::Result<SoloRun> {
    let tag = format!("{}-{round}", at.tag());
    let (srv, cli) = (format!("pp-srv{tag}"), format!("pp-cli{tag}"));
    let (cli_cpu, srv_cpu) = (at.cpus().map(|c| c.0), at.cpus().map(|c| c.1));
    deploy(c, spec(&srv, program, &["serve".into()], vec![], srv_cpu, at.polling())).await?;
    let mut stream = c
        .watch(pb::WatchRequest { include_events: true, include_logs: true, ..Default::default() })
        .await?
        .into_inner();
    let m = if at == Placement::Unpinned { scale.m } else { 0 };
    let args: Vec<String> = vec!["ping".into(), GRANT_NAME.into(), scale.n.to_string(), m.to_string(), srv.clone()];
    let grant = pb::Grant { spec: format!("service:{srv}"), name: GRANT_NAME.into() };
    let inst = deploy(c, spec(&cli, program, &args, vec![grant], cli_cpu, at.polling())).await?;
    let (mut out, mut server_log) = (String::new(), Vec::new());
    let limit = Duration::from_secs(if scale.full { 300 } else { 60 });
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, stream.message())
            .await
            .with_context(|| format!("{cli}: no `pingpong done` within {limit:?}; its output so far:\n{out}"))??
            .ok_or_else(|| anyhow!("the watch stream ended"))?;
        match msg.payload {
            Some(pb::watch_event::Payload::Log(l)) if l.service == cli => {
                out.push_str(&l.line);
                out.push('\n');
                if l.line.starts_with("pingpong done") {
                    break;
                }
            }
            Some(pb::watch_event::Payload::Log(l)) if l.service == srv => server_log.push(l.line),
            Some(pb::watch_event::Payload::Event(e))
                if e.kind == pb::EventKind::Lagged as i32
                    || ((e.service == cli || e.service == srv)
                        && [pb::EventKind::Exited, pb::EventKind::Failed, pb::EventKind::Quarantined]
                            .iter()
                            .any(|k| e.kind == *k as i32)) =>
            {
                bail!("{}: {} ({:?}); the pinger's output:\n{out}", e.service, e.message, e.kind());
            }
            _ => {}
        }
    }
    drop(stream);
    remove(c, &cli).await?;
    remove(c, &srv).await?;
    let layers = inst.sandbox.iter().map(|l| format!("{} {}: {}", l.name, l.state, l.detail)).collect();
    Ok(SoloRun { figures: parse(&out), layers, server_log })
}

// ------------------------------------------------------------------- main

async fn run(scale: Scale) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("solo-bench-caps-prog-").tempdir()?;
    let program = build_pingpong(tmp.path())?;
    let bytes = std::fs::read(&program)?;
    let mut daemon = Daemon::start("solo-bench-caps-", UID_RANGE)?;
    let mut c = daemon.connect().await?;
    let daemon_pid = daemon.pid();
    let launcher = launcher_pid(daemon_pid);
    let load_start = loadavg();
    let (ticks0, ours0) = (machine_ticks(), our_ticks(daemon_pid, launcher));

    // results[variant][round] = measures
    let mut results: Vec<Vec<BTreeMap<String, Line>>> = vec![Vec::new(); VARIANTS.len()];
    let mut layers = Vec::new();
    let mut server_notes = Vec::new();
    for round in 0..scale.rounds {
        for k in 0..VARIANTS.len() {
            let v = (k + round) % VARIANTS.len();
            let var = VARIANTS[v];
            eprintln!("round {round}: {}", var.label());
            let figures = if var.solo {
                let r = solo_round(&mut c, &bytes, round, var.at, scale).await?;
                layers = r.layers;
                server_notes.extend(r.server_log.into_iter().filter(|l| l.contains("no thread")));
                r.figures
            } else {
                bare(&program, scale.n, var.at)?
            };
            let control = var.solo && var.at == Placement::Unpinned;
            for name in RTT.iter().chain(if control { CONTROL.iter() } else { [].iter() }) {
                ensure!(figures.contains_key(*name), "{}: no `{name}` line in {figures:?}", var.label());
            }
            results[v].push(figures);
        }
    }
    let (ticks1, ours1) = (machine_ticks(), our_ticks(daemon_pid, launcher));
    let all = (ticks1.1 - ticks0.1).max(1) as f64;
    let busy = 100.0 * (ticks1.0 - ticks0.0) as f64 / all;
    let others = 100.0 * (ticks1.0 - ticks0.0).saturating_sub(ours1.saturating_sub(ours0)) as f64 / all;
    let load_end = loadavg();
    drop(c);
    daemon.stop().await;

    // ------------------------------------------------------------ report
    let rounds_of = |v: usize, name: &str| -> Vec<&Line> { results[v].iter().filter_map(|m| m.get(name)).collect() };
    let mut out = String::new();
    let mut p = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    p(format!(
        "\n## Capabilities: service-to-service round trip, {} rounds × {} round trips per size\n",
        scale.rounds, scale.n
    ));
    p(format!("pinger instance (profile `{PROFILE}`):"));
    for l in &layers {
        p(format!("- {l}"));
    }
    for name in RTT {
        p(format!("\n### {name}: write → echoed back, µs (median of the rounds' percentiles [min–max])\n"));
        p("| variant | p50 | p90 | p99 | p99.9 | min | mean |".into());
        p("|---|---|---|---|---|---|---|".into());
        for (v, var) in VARIANTS.iter().enumerate() {
            let r = rounds_of(v, name);
            p(percentile_row(&var.label(), &r, 1e3));
        }
        // Per round: Solo / bare with the same placement, the same round.
        p("\nSolo / bare, same placement, per round (median [min–max]); difference of the p50s:\n".into());
        p("| placement | p50 ratio | p99 ratio | p50 difference, µs |".into());
        p("|---|---|---|---|".into());
        for at in [Placement::Unpinned, Placement::Same, Placement::Cross, Placement::CrossPolling] {
            let find = |solo: bool| VARIANTS.iter().position(|v| v.solo == solo && v.at == at);
            let (Some(s), Some(b)) = (find(true), find(false)) else { continue };
            let per_round = |f: &dyn Fn(&Line, &Line) -> f64| -> Vec<f64> {
                rounds_of(s, name).iter().zip(rounds_of(b, name)).map(|(x, y)| f(x, y)).collect()
            };
            let r50 = per_round(&|x, y| x.get("p50") / y.get("p50"));
            let r99 = per_round(&|x, y| x.get("p99") / y.get("p99"));
            let d50 = per_round(&|x, y| (x.get("p50") - y.get("p50")) / 1e3);
            let fmt = |v: &[f64], sign: bool| {
                let (lo, hi) = range(v);
                if sign {
                    format!("{:+.2} [{lo:+.2}…{hi:+.2}]", median(v))
                } else {
                    format!("×{:.2} [{lo:.2}–{hi:.2}]", median(v))
                }
            };
            p(format!("| {} | {} | {} | {} |", at.label(), fmt(&r50, false), fmt(&r99, false), fmt(&d50, true)));
        }
    }
    p("\n### Control socket (Solo's pinger), request sent → reply received, µs\n".into());
    p("| request | p50 | p90 | p99 | p99.9 | min | mean |".into());
    p("|---|---|---|---|---|---|---|".into());
    for name in CONTROL {
        let r = rounds_of(0, name);
        p(percentile_row(&format!("`{name}`"), &r, 1.0));
    }
    p(format!("\n({} of each per round; `connect` returns a new channel's descriptor, closed at once)", scale.m));
    if !server_notes.is_empty() {
        p(format!("server: {}", server_notes.join("; ")));
    }
    p(format!(
        "\nload average {load_start} at the start, {load_end} at the end; the machine was {busy:.0}% busy \
         during the run, {others:.0}% by other processes than the benchmark, its daemon, launcher, services \
         and bare processes (kernel threads and interrupts included); {:.1} s in all",
        started.elapsed().as_secs_f64()
    ));
    p("token verification: see `cargo bench --bench tokens`".into());
    println!("{out}");

    if !scale.full {
        println!("(smoke run under `cargo test`: targets are judged only by `cargo bench --bench capabilities`)");
        return Ok(());
    }
    println!("\n## Targets\n");
    println!("| target | measured | met |\n|---|---|---|");
    for (v, var) in VARIANTS.iter().enumerate().filter(|(_, v)| v.solo) {
        let p50 = median(&rounds_of(v, RTT[0]).iter().map(|l| l.get("p50")).collect::<Vec<_>>()) / 1e3;
        println!(
            "| service-to-service round trip p50 ≤ 10 µs (1 byte, granted channel, {}) | {p50:.2} µs | {} |",
            var.at.label(),
            if p50 <= 10.0 { "yes" } else { "NO" }
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let scale = if bench { FULL } else { SMOKE };
    if solo::sandbox::sys::geteuid() != 0 {
        eprintln!("SKIPPED capabilities bench: needs root (the daemon creates cgroups and switches uids)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(scale))
}
