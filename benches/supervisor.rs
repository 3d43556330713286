//! `cargo bench --bench supervisor`: what a service costs in Solo, measured
//! end to end against a real `solo serve`, next to bare spawn, bubblewrap
//! and runc on the same machine. Results and their reading:
//! `docs/benchmarks.md`.
//!
//! Runs as root (the daemon creates cgroups and switches uids). Under
//! `cargo test --all-targets` (no `--bench` argument) it runs a small smoke
//! version so the benchmark keeps working; the figures only mean something
//! from `cargo bench`.
//!
//! Phases, in order:
//! 1. restart latency (SIGKILL → running again), back to back and paced,
//!    with the daemon small;
//! 2. deploy → running latency: paced (one every [`PACE`]) and back to back
//!    from 0 services held;
//! 3. fill the daemon to 1,000 running `tiny` services;
//! 4. at 1,000 held: Status latency, RSS, deploy/spawn cost, restart latency;
//! 5. kill --remove everything;
//! 6. peers: the same static binary (`tiny-exit`, exits at once) started by
//!    a plain spawn, bwrap, runc and Solo, full start-to-exit wall time;
//! 7. Shutdown, remove temp dirs.

use anyhow::{anyhow, bail, ensure, Context};
use pb::solo_client::SoloClient;
use rand::Rng;
use solo::proto::v1 as pb;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

type Client = SoloClient<Channel>;

/// The benchmark's size. `full` for `cargo bench`, `smoke` under `cargo test`.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Deploys measured at each end (0 held, 1,000 held).
    deploys: usize,
    /// Services held for the "large daemon" measurements.
    held: usize,
    /// Status RPCs at `held`.
    statuses: usize,
    /// SIGKILL → restart cycles, at each end.
    restarts: usize,
    /// Runs per peer.
    peers: usize,
    /// Deploys and restarts measured one every [`PACE`].
    paced: usize,
    full: bool,
}

const FULL: Scale =
    Scale { deploys: 200, held: 1000, statuses: 2000, restarts: 200, peers: 200, paced: 100, full: true };
const SMOKE: Scale = Scale { deploys: 5, held: 20, statuses: 50, restarts: 5, peers: 5, paced: 3, full: false };

/// Gap between paced operations: an agent deploying one service at a time,
/// rather than a loop. Long enough for the kernel to go idle in between
/// (see "Where the time goes" in docs/benchmarks.md).
const PACE: Duration = Duration::from_millis(100);

/// Service uids, away from the ranges the integration tests use.
const UID_RANGE: &str = "300000-302999";

/// `tiny` that exits at once: the peer comparison needs a full start → exit.
const TINY_EXIT_C: &str = r#"/* The smallest static program: no libc, exits with status 0 at once. */
#include <sys/syscall.h>
static long sys1(long n, long a) { long r; __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a) : "rcx", "r11", "memory"); return r; }
void _start(void) { for (;;) sys1(SYS_exit_group, 0); }
"#;

// ------------------------------------------------------------------ samples

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e6);
    }
    fn push_us(&mut self, us: f64) {
        self.0.push(us);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    /// Nearest-rank percentile, `p` in 0..=100.
    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
    fn p50(&self) -> f64 {
        self.pct(50.0)
    }
    fn p99(&self) -> f64 {
        self.pct(99.0)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::max)
    }
    fn slice(&self, from: usize, to: usize) -> Samples {
        Samples(self.0[from.min(self.0.len())..to.min(self.0.len())].to_vec())
    }
}

/// Microseconds, printed as µs below 10 ms and as ms above.
fn fmt_us(us: f64) -> String {
    if us.is_nan() {
        "-".into()
    } else if us < 10_000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

#[derive(Default)]
struct Report {
    out: String,
    verdicts: Vec<(String, String, bool)>,
}

impl Report {
    fn section(&mut self, title: &str) {
        self.heading(title);
        let _ = writeln!(self.out, "| {:<58} | {:>5} | {:>9} | {:>9} | {:>9} |", "measure", "n", "p50", "p99", "max");
        let _ = writeln!(self.out, "|{:-<60}|{:->7}|{:->11}|{:->11}|{:->11}|", "", "", "", "", "");
    }
    fn heading(&mut self, title: &str) {
        let _ = writeln!(self.out, "\n## {title}\n");
    }
    fn row(&mut self, name: &str, s: &Samples) {
        let _ = writeln!(
            self.out,
            "| {:<58} | {:>5} | {:>9} | {:>9} | {:>9} |",
            name,
            s.len(),
            fmt_us(s.p50()),
            fmt_us(s.p99()),
            fmt_us(s.max())
        );
    }
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }
    fn target(&mut self, what: &str, measured: String, met: bool) {
        self.verdicts.push((what.to_owned(), measured, met));
    }
    fn print(&self, judge: bool) {
        println!("{}", self.out);
        if !judge {
            println!("\n(smoke run under `cargo test`: a few samples of each, possibly a debug build; targets are");
            println!("judged only by `cargo bench --bench supervisor`)");
            return;
        }
        println!("\n## Targets\n");
        println!("| {:<55} | {:<40} | {:<4} |", "target", "measured", "met");
        println!("|{:-<57}|{:-<42}|{:-<6}|", "", "", "");
        for (what, measured, met) in &self.verdicts {
            println!("| {:<55} | {:<40} | {:<4} |", what, measured, if *met { "yes" } else { "NO" });
        }
    }
}

// ----------------------------------------------------------------- programs

/// Builds `tiny` (pauses) and `tiny-exit` (exits at once) with gcc.
fn build_programs(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let tiny_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/tiny.c");
    let exit_src = dir.join("tiny-exit.c");
    std::fs::write(&exit_src, TINY_EXIT_C)?;
    let mut out = Vec::new();
    for (src, name) in [(tiny_src, "tiny"), (exit_src, "tiny-exit")] {
        let dest = dir.join(name);
        let st = Command::new("gcc")
            .args(["-O2", "-static", "-nostdlib", "-fno-stack-protector", "-o"])
            .arg(&dest)
            .arg(&src)
            .status()
            .context("gcc must be installed to build the benchmark programs")?;
        ensure!(st.success(), "gcc failed for {}", src.display());
        out.push(dest);
    }
    Ok((out[0].clone(), out[1].clone()))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        .unwrap_or(None)
        .or_else(|| ["/usr/sbin", "/sbin"].iter().map(|d| Path::new(d).join(name)).find(|f| f.is_file()))
}

// ------------------------------------------------------------------- daemon

/// A `solo serve` started by this benchmark, with its own temp dirs.
struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Daemon {
    fn start() -> anyhow::Result<Daemon> {
        let dir = tempfile::Builder::new().prefix("solo-bench-").tempdir()?;
        let socket = dir.path().join("run/solo.sock");
        let log = std::fs::File::create(dir.path().join("daemon.log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_solo"))
            .arg("serve")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(["--uid-range", UID_RANGE])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start solo serve")?;
        Ok(Daemon { child: Some(child), dir, socket })
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn connect(&mut self) -> anyhow::Result<Client> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket.exists() {
                if let Ok(mut c) = solo::cli::connect(&self.socket).await {
                    if c.list(pb::ListRequest::default()).await.is_ok() {
                        return Ok(c);
                    }
                }
            }
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("solo serve exited early ({st}):\n{}", self.log_tail());
            }
            ensure!(Instant::now() < deadline, "solo serve did not come up:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the daemon to exit by itself (after Shutdown). Async, so
    /// this runtime keeps answering the server's HTTP/2 GOAWAY/PING while
    /// it drains connections (a blocked client would hold it up).
    async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(c) = self.child.as_mut() {
            if c.try_wait().ok().flatten().is_some() {
                self.child = None;
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// SIGTERM (graceful: services stopped, cgroups removed), then SIGKILL.
    async fn stop(&mut self) {
        if self.child.is_some() {
            let _ = solo::sandbox::sys::kill(self.pid(), libc::SIGTERM);
            if !self.wait_exit(Duration::from_secs(60)).await {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

impl Drop for Daemon {
    /// Last resort (a panic): `stop` is the normal path.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ------------------------------------------------------------------- /proc

/// A `kB` field of `/proc/<pid>/status`, in KiB.
fn proc_kb(pid: i32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn proc_threads(pid: i32) -> u64 {
    proc_kb(pid, "Threads").unwrap_or(0)
}

fn proc_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// utime + stime of a process (all threads), in clock ticks (USER_HZ, 100/s).
fn proc_cpu_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based).
    let get = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(14) + get(15)
}

/// utime + stime + cutime + cstime: a process and its reaped children.
fn proc_cpu_ticks_all(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(14) + get(15) + get(16) + get(17)
}

/// Busy (non-idle, non-iowait) ticks of the whole machine, all ticks, and
/// steal (time the hypervisor ran something else on our vCPUs).
fn machine_ticks() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).take(8).map(|x| x.parse().unwrap_or(0)).collect();
    let all: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all - idle, all, v.get(7).copied().unwrap_or(0))
}

/// How much CPU the rest of the machine used while the benchmark ran, so a
/// reader can tell a quiet run from a disturbed one.
struct Noise {
    machine: (u64, u64, u64),
    ours: u64,
}

impl Noise {
    fn ours(daemon: i32, launcher: Option<i32>) -> u64 {
        proc_cpu_ticks_all("self")
            + proc_cpu_ticks_all(&daemon.to_string())
            + launcher.map(|l| proc_cpu_ticks_all(&l.to_string())).unwrap_or(0)
    }
    fn start(daemon: i32, launcher: Option<i32>) -> Noise {
        Noise { machine: machine_ticks(), ours: Self::ours(daemon, launcher) }
    }
    /// Percentages of the machine's CPU time: busy, busy by other processes
    /// and kernel threads, stolen by the hypervisor.
    fn end(&self, daemon: i32, launcher: Option<i32>) -> (f64, f64, f64) {
        let (busy, all, steal) = machine_ticks();
        let (busy, all) = ((busy - self.machine.0) as f64, (all - self.machine.1).max(1) as f64);
        let steal = steal.saturating_sub(self.machine.2) as f64;
        let ours = Self::ours(daemon, launcher).saturating_sub(self.ours) as f64;
        (100.0 * busy / all, 100.0 * (busy - steal - ours).max(0.0) / all, 100.0 * steal / all)
    }
}

/// The daemon's child running `solo __launcher`.
fn launcher_pid(daemon: i32) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if ppid != Some(daemon) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.split(|b| *b == 0).any(|a| a == b"__launcher") {
            return Some(pid);
        }
    }
    None
}

fn mib(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "-".into())
}

// ------------------------------------------------------------------- client

fn spec(id: &str, program: &[u8], restart: Option<pb::RestartSpec>) -> pb::ServiceSpec {
    pb::ServiceSpec {
        id: id.to_owned(),
        artifact: Some(pb::Artifact {
            kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact { content: program.to_vec() })),
        }),
        restart,
        ..Default::default()
    }
}

struct Deployed {
    /// Client-side: Deploy(wait=true) sent → reply decoded.
    rpc: Duration,
    /// Server-side: request received → every instance running.
    startup_us: u64,
    /// Launcher: plan received → child exec'd.
    spawn_us: u64,
    pid: i32,
}

async fn deploy(c: &mut Client, s: pb::ServiceSpec) -> anyhow::Result<Deployed> {
    let id = s.id.clone();
    let req = pb::DeployRequest { spec: Some(s), wait: true };
    let t = Instant::now();
    let r = c.deploy(req).await.with_context(|| format!("deploy {id}"))?.into_inner();
    let rpc = t.elapsed();
    let inst = r.instances.first().ok_or_else(|| anyhow!("deploy {id}: no instance in the reply"))?;
    Ok(Deployed { rpc, startup_us: r.startup_us, spawn_us: inst.spawn_us, pid: inst.pid })
}

async fn remove(c: &mut Client, id: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    c.kill(pb::KillRequest { id: id.to_owned(), force: true, remove: true, timeout_ms: 0 })
        .await
        .with_context(|| format!("kill --remove {id}"))?;
    Ok(t.elapsed())
}

/// Deploy latency figures for a run of deploys.
#[derive(Default)]
struct DeployRun {
    rpc: Samples,
    startup: Samples,
    spawn: Samples,
    /// Daemon + launcher CPU time per deploy, µs.
    cpu_per_deploy_us: f64,
}

impl DeployRun {
    fn subset(&self, from: usize, to: usize) -> DeployRun {
        DeployRun {
            rpc: self.rpc.slice(from, to),
            startup: self.startup.slice(from, to),
            spawn: self.spawn.slice(from, to),
            cpu_per_deploy_us: self.cpu_per_deploy_us,
        }
    }
}

/// Deploys `ids` one after the other, with `gap` between a reply and the
/// next request.
async fn deploy_many(
    c: &mut Client,
    daemon: i32,
    launcher: Option<i32>,
    ids: &[String],
    program: &[u8],
    gap: Duration,
) -> anyhow::Result<DeployRun> {
    let cpu = || proc_cpu_ticks(daemon) + launcher.map(proc_cpu_ticks).unwrap_or(0);
    let cpu0 = cpu();
    let mut run = DeployRun::default();
    for id in ids {
        let d = deploy(c, spec(id, program, None)).await?;
        run.rpc.push(d.rpc);
        run.startup.push_us(d.startup_us as f64);
        run.spawn.push_us(d.spawn_us as f64);
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    run.cpu_per_deploy_us = (cpu() - cpu0) as f64 * 10_000.0 / ids.len().max(1) as f64;
    Ok(run)
}

async fn next_event(
    stream: &mut tonic::Streaming<pb::WatchEvent>,
    mut want: impl FnMut(&pb::Event) -> bool,
) -> anyhow::Result<pb::Event> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), stream.message())
            .await
            .context("no event within 15 s")??
            .ok_or_else(|| anyhow!("the watch stream ended"))?;
        if let Some(pb::watch_event::Payload::Event(e)) = msg.payload {
            if e.kind == pb::EventKind::Lagged as i32 {
                bail!("the watch stream lagged: {}", e.message);
            }
            if want(&e) {
                return Ok(e);
            }
        }
    }
}

#[derive(Default)]
struct RestartRun {
    /// Server: exit → running, backoff excluded (RESTARTED.restart_us).
    server: Samples,
    /// Client: SIGKILL sent → RESTARTED event (new pid) received.
    client: Samples,
    /// The same, minus the backoff delay the event reports.
    client_minus_backoff: Samples,
}

/// The restart benchmark's backoff (initial = max, no jitter to speak of).
const BACKOFF: Duration = Duration::from_millis(1);

/// Deploys `id` with restart=always and a 1 ms backoff, then SIGKILLs its
/// pid `n` times, each time waiting for the RESTARTED event, then `gap`.
async fn restart_run(c: &mut Client, id: &str, tiny: &[u8], n: usize, gap: Duration) -> anyhow::Result<RestartRun> {
    let restart = pb::RestartSpec {
        policy: pb::RestartPolicy::Always as i32,
        max_restarts: 10_000,
        within_seconds: 1,
        backoff_initial_ms: BACKOFF.as_millis() as u32,
        backoff_max_ms: BACKOFF.as_millis() as u32,
        // 0 would mean "the default" (0.2); this is as good as none.
        backoff_jitter: 1e-9,
        reset_after_seconds: 0,
    };
    let d = deploy(c, spec(id, tiny, Some(restart))).await?;
    let mut pid = d.pid;
    let mut stream =
        c.watch(pb::WatchRequest { id: id.to_owned(), include_events: true, ..Default::default() }).await?.into_inner();
    let mut run = RestartRun::default();
    for _ in 0..n {
        let t0 = Instant::now();
        solo::sandbox::sys::kill(pid, libc::SIGKILL).map_err(|e| anyhow!("kill {pid}: {e}"))?;
        let ev = next_event(&mut stream, |e| {
            e.kind == pb::EventKind::Restarted as i32
                || e.kind == pb::EventKind::Failed as i32
                || e.kind == pb::EventKind::LaunchFailed as i32
        })
        .await?;
        let client = t0.elapsed();
        ensure!(ev.kind == pb::EventKind::Restarted as i32, "{id}: {}", ev.message);
        ensure!(ev.pid != pid, "{id}: restarted with the old pid {pid}");
        pid = ev.pid;
        run.server.push_us(ev.restart_us as f64);
        run.client.push(client);
        run.client_minus_backoff.push(client.saturating_sub(BACKOFF));
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    drop(stream);
    remove(c, id).await?;
    Ok(run)
}

// -------------------------------------------------------------------- peers

/// Times `n` runs of a command to completion (it must exit 0).
fn time_command(n: usize, mut mk: impl FnMut(usize) -> Command) -> anyhow::Result<Samples> {
    let mut s = Samples::default();
    for i in 0..n {
        let mut cmd = mk(i);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let t = Instant::now();
        let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
        s.push(t.elapsed());
        ensure!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(s)
}

/// An OCI bundle whose process is `/tiny` (tiny-exit), from `runc spec`.
fn runc_bundle(runc: &Path, dir: &Path, tiny_exit: &Path) -> anyhow::Result<PathBuf> {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs"))?;
    std::fs::copy(tiny_exit, bundle.join("rootfs/tiny"))?;
    let st = Command::new(runc).arg("spec").arg("--bundle").arg(&bundle).status()?;
    ensure!(st.success(), "runc spec failed");
    let path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    cfg["process"]["args"] = serde_json::json!(["/tiny"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["root"]["readonly"] = serde_json::json!(true);
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(bundle)
}

struct Peers {
    bare: Samples,
    bwrap: Option<Samples>,
    bwrap_net: Option<Samples>,
    runc: Option<Samples>,
    solo_exec: Samples,
    solo_exited: Samples,
    solo_startup: Samples,
    solo_spawn: Samples,
}

async fn peers(c: &mut Client, scale: Scale, tiny_exit: &Path, tmp: &Path) -> anyhow::Result<Peers> {
    let n = scale.peers;
    let bare = time_command(n, |_| Command::new(tiny_exit))?;
    let bwrap_bin = find_in_path("bwrap");
    let bwrap_with = |extra: &'static [&'static str]| {
        bwrap_bin.as_ref().map(|b| {
            time_command(n, |_| {
                let mut cmd = Command::new(b);
                cmd.arg("--unshare-all").args(extra).args(["--die-with-parent", "--ro-bind", "/", "/"]).arg(tiny_exit);
                cmd
            })
        })
    };
    let bwrap = bwrap_with(&[]).transpose()?;
    let bwrap_net = bwrap_with(&["--share-net"]).transpose()?;
    let runc = match find_in_path("runc") {
        Some(runc) => {
            let bundle = runc_bundle(&runc, tmp, tiny_exit)?;
            let root = tmp.join("runc-state");
            let tag = std::process::id();
            Some(time_command(n, |i| {
                let mut cmd = Command::new(&runc);
                cmd.arg("--root").arg(&root).arg("run").arg("--bundle").arg(&bundle).arg(format!("bench-{tag}-{i}"));
                cmd
            })?)
        }
        None => None,
    };
    // Solo: Deploy(wait) of tiny-exit, restart never; then its EXITED event.
    let program = std::fs::read(tiny_exit)?;
    let mut all = c.watch(pb::WatchRequest { include_events: true, ..Default::default() }).await?.into_inner();
    let never = pb::RestartSpec { policy: pb::RestartPolicy::Never as i32, ..Default::default() };
    let (mut exec, mut exited, mut startup, mut spawn) =
        (Samples::default(), Samples::default(), Samples::default(), Samples::default());
    for i in 0..n {
        let id = format!("peer-{i:04}");
        let s = spec(&id, &program, Some(never));
        let t0 = Instant::now();
        let d = deploy(c, s).await?;
        let ev = next_event(&mut all, |e| {
            e.service == id
                && (e.kind == pb::EventKind::Exited as i32
                    || e.kind == pb::EventKind::Failed as i32
                    || e.kind == pb::EventKind::LaunchFailed as i32)
        })
        .await?;
        let done = t0.elapsed();
        ensure!(ev.kind == pb::EventKind::Exited as i32, "{id}: {}", ev.message);
        exec.push(d.rpc);
        exited.push(done);
        startup.push_us(d.startup_us as f64);
        spawn.push_us(d.spawn_us as f64);
        remove(c, &id).await?;
    }
    Ok(Peers {
        bare,
        bwrap,
        bwrap_net,
        runc,
        solo_exec: exec,
        solo_exited: exited,
        solo_startup: startup,
        solo_spawn: spawn,
    })
}

// --------------------------------------------------------------------- main

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let mem = proc_mem_total().map(|k| format!("{:.1} GiB", k as f64 / 1048576.0)).unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} CPUs ({cpu}), {mem} RAM, Linux {kernel}")
}

fn proc_mem_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:04}")).collect()
}

async fn run(scale: Scale) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("solo-bench-peers-").tempdir()?;
    let programs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-programs");
    let (tiny_path, tiny_exit) = build_programs(&programs)?;
    let tiny = std::fs::read(&tiny_path)?;
    eprintln!("supervisor bench ({}): {}", if scale.full { "full" } else { "smoke" }, machine());

    let mut daemon = Daemon::start()?;
    let r = measure(scale, &mut daemon, &tiny, &tiny_exit, tmp.path(), started).await;
    if let Err(e) = &r {
        eprintln!("benchmark failed: {e:#}\nlast daemon log lines:\n{}", daemon.log_tail());
    }
    daemon.stop().await;
    drop(tmp);
    r
}

async fn measure(
    scale: Scale,
    daemon: &mut Daemon,
    tiny: &[u8],
    tiny_exit: &Path,
    tmp: &Path,
    started: Instant,
) -> anyhow::Result<()> {
    let mut c = daemon.connect().await?;
    let dpid = daemon.pid();
    let lpid = launcher_pid(dpid);
    // On stderr at once, for attaching perf/bpftrace/strace to a run.
    eprintln!("daemon pid {dpid}, launcher pid {}", lpid.unwrap_or(0));
    // SOLO_BENCH_PAUSE=<seconds>: time to attach a tracer before measuring.
    if let Some(secs) = std::env::var("SOLO_BENCH_PAUSE").ok().and_then(|v| v.parse::<u64>().ok()) {
        eprintln!("pausing {secs} s (SOLO_BENCH_PAUSE)");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let noise = Noise::start(dpid, lpid);
    let mut rep = Report::default();
    rep.line(&format!("# Solo supervisor benchmark ({})\n", if scale.full { "full" } else { "smoke" }));
    rep.line(&format!("machine: {}", machine()));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    rep.line(&format!("load average at start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")));
    rep.line(&format!(
        "programs: tiny {} bytes, tiny-exit {} bytes (static, no libc)",
        tiny.len(),
        std::fs::metadata(tiny_exit)?.len()
    ));
    rep.line(&format!(
        "daemon pid {dpid}, launcher pid {}; idle: daemon RSS {}, launcher RSS {}",
        lpid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        mib(proc_kb(dpid, "VmRSS")),
        mib(lpid.and_then(|p| proc_kb(p, "VmRSS")))
    ));

    // Warm-up: artifact stored once, code paths and SQLite pages hot.
    for id in ids("warm", 0..10) {
        deploy(&mut c, spec(&id, tiny, None)).await?;
        remove(&mut c, &id).await?;
    }

    // 1. Restart latency, small daemon.
    eprintln!("[{:>5.1}s] restart latency, 0 services held", started.elapsed().as_secs_f64());
    let r0 = restart_run(&mut c, "restart-small", tiny, scale.restarts, Duration::ZERO).await?;
    eprintln!("[{:>5.1}s] restart latency, paced, 0 services held", started.elapsed().as_secs_f64());
    let r0p = restart_run(&mut c, "restart-paced", tiny, scale.paced, PACE).await?;

    // 2a. Deploy → running, paced (0 → paced held), then removed again.
    eprintln!("[{:>5.1}s] {} paced deploys from 0 held", started.elapsed().as_secs_f64(), scale.paced);
    let paced_ids = ids("paced", 0..scale.paced);
    let paced = deploy_many(&mut c, dpid, lpid, &paced_ids, tiny, PACE).await?;
    for id in &paced_ids {
        remove(&mut c, id).await?;
    }

    // 2b. Deploy → running, back to back, first deploys (0 → deploys held).
    eprintln!("[{:>5.1}s] {} deploys from 0 held", started.elapsed().as_secs_f64(), scale.deploys);
    let first = ids("svc", 0..scale.deploys);
    let small = deploy_many(&mut c, dpid, lpid, &first, tiny, Duration::ZERO).await?;

    // 3. Fill to `held` services, in quarters (spawn cost as it grows).
    eprintln!("[{:>5.1}s] filling to {} services", started.elapsed().as_secs_f64(), scale.held);
    let fill = ids("svc", scale.deploys..scale.held);
    let grow = deploy_many(&mut c, dpid, lpid, &fill, tiny, Duration::ZERO).await?;
    let mut held: Vec<String> = first.iter().chain(fill.iter()).cloned().collect();
    let state = c.list(pb::ListRequest { state: pb::ServiceState::Running as i32, ..Default::default() }).await?;
    let running = state.into_inner().services.len();
    ensure!(running == scale.held, "{running} services running, expected {}", scale.held);

    // 4. With `held` services running.
    let rss = proc_kb(dpid, "VmRSS");
    let hwm = proc_kb(dpid, "VmHWM");
    let lrss = lpid.and_then(|p| proc_kb(p, "VmRSS"));
    let lhwm = lpid.and_then(|p| proc_kb(p, "VmHWM"));
    let (threads, fds) = (proc_threads(dpid), proc_fds(dpid));

    eprintln!("[{:>5.1}s] {} Status RPCs at {} held", started.elapsed().as_secs_f64(), scale.statuses, scale.held);
    let mut rng = rand::rng();
    let mut status = Samples::default();
    for i in 0..scale.statuses + 50 {
        let id = held[rng.random_range(0..held.len())].clone();
        let t = Instant::now();
        let r = c.status(pb::StatusRequest { id }).await?.into_inner();
        let d = t.elapsed();
        let st = r.service.map(|s| s.state).unwrap_or(0);
        ensure!(st == pb::ServiceState::Running as i32, "status: service not running ({st})");
        if i >= 50 {
            status.push(d);
        }
    }
    let mut list = Samples::default();
    for _ in 0..if scale.full { 20 } else { 3 } {
        let t = Instant::now();
        c.list(pb::ListRequest::default()).await?;
        list.push(t.elapsed());
    }

    eprintln!("[{:>5.1}s] {} deploys at {} held", started.elapsed().as_secs_f64(), scale.deploys, scale.held);
    let extra = ids("big", 0..scale.deploys);
    let large = deploy_many(&mut c, dpid, lpid, &extra, tiny, Duration::ZERO).await?;
    let hwm_after = proc_kb(dpid, "VmHWM");
    let mut removal = Samples::default();
    for id in &extra {
        removal.push(remove(&mut c, id).await?);
    }

    eprintln!("[{:>5.1}s] restart latency at {} held", started.elapsed().as_secs_f64(), scale.held);
    let r1 = restart_run(&mut c, "restart-large", tiny, scale.restarts, Duration::ZERO).await?;

    // 5. Clean up.
    eprintln!("[{:>5.1}s] removing {} services", started.elapsed().as_secs_f64(), held.len());
    for id in held.drain(..) {
        removal.push(remove(&mut c, &id).await?);
    }
    let left = c.list(pb::ListRequest::default()).await?.into_inner().services.len();
    ensure!(left == 0, "{left} services left after removal");

    // Peers last: bwrap's network namespaces are torn down by kernel
    // workers after each run exits, which would disturb what follows.
    eprintln!("[{:>5.1}s] peers ({} runs each)", started.elapsed().as_secs_f64(), scale.peers);
    let p = peers(&mut c, scale, tiny_exit, tmp).await?;
    let (busy, others, steal) = noise.end(dpid, lpid);
    let t = Instant::now();
    c.shutdown(pb::ShutdownRequest { timeout_ms: 10_000 }).await?;
    drop(c);
    ensure!(
        daemon.wait_exit(Duration::from_secs(30)).await,
        "the daemon did not exit after Shutdown:\n{}",
        daemon.log_tail()
    );
    let shutdown = t.elapsed();

    // ------------------------------------------------------------- report
    let hw = scale.held;
    let pace = PACE.as_millis();
    rep.section("a. Deploy (wait=true) → running, tiny, from 0 services held");
    rep.row(&format!("back to back: client Deploy RPC end to end (0..{} held)", scale.deploys), &small.rpc);
    rep.row("back to back: server startup_us (received → running)", &small.startup);
    rep.row("back to back: launcher spawn_us (plan received → exec'd)", &small.spawn);
    rep.row(&format!("paced 1/{pace} ms: client Deploy RPC end to end"), &paced.rpc);
    rep.row(&format!("paced 1/{pace} ms: server startup_us"), &paced.startup);
    rep.row(&format!("paced 1/{pace} ms: launcher spawn_us"), &paced.spawn);
    rep.line(&format!("\ndaemon+launcher CPU per deploy: {:.0} µs (from /proc utime+stime)", small.cpu_per_deploy_us));

    rep.section(&format!("b. Restart: SIGKILL → running again (backoff {} ms)", BACKOFF.as_millis()));
    rep.row("back to back, ~0 held: server restart_us", &r0.server);
    rep.row("back to back, ~0 held: client kill → RESTARTED event", &r0.client);
    rep.row("back to back, ~0 held: client, minus the backoff", &r0.client_minus_backoff);
    rep.row(&format!("paced 1/{pace} ms, ~0 held: server restart_us"), &r0p.server);
    rep.row(&format!("paced 1/{pace} ms, ~0 held: client, minus the backoff"), &r0p.client_minus_backoff);
    rep.row(&format!("back to back, {hw} held: server restart_us"), &r1.server);
    rep.row(&format!("back to back, {hw} held: client kill → RESTARTED event"), &r1.client);
    rep.row(&format!("back to back, {hw} held: client, minus the backoff"), &r1.client_minus_backoff);

    rep.section(&format!("c. Status / List with {hw} services running"));
    rep.row("client: Status RPC, random id", &status);
    rep.row(&format!("client: List RPC, all {hw} services"), &list);

    rep.heading(&format!("d. Memory with {hw} services running"));
    rep.line(&format!(
        "daemon: VmRSS {}, VmHWM {} ({} after {} more deploys), {threads} threads, {fds} fds",
        mib(rss),
        mib(hwm),
        mib(hwm_after),
        scale.deploys
    ));
    rep.line(&format!("launcher (solo __launcher): VmRSS {}, VmHWM {}", mib(lrss), mib(lhwm)));

    rep.heading("e. Spawn cost as the daemon grows (p50 / p99 per band of services held)");
    rep.line(&format!(
        "| {:<20} | {:>5} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "held during deploys", "n", "spawn p50", "spawn p99", "start p50", "start p99", "RPC p50", "RPC p99"
    ));
    rep.line(&format!(
        "|{:-<22}|{:->7}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", "", "", ""
    ));
    let mut bands: Vec<(String, DeployRun)> = vec![(format!("0..{}", scale.deploys), small.subset(0, usize::MAX))];
    let q = (scale.held - scale.deploys).div_ceil(4);
    for k in 0..4 {
        let (a, b) = (k * q, ((k + 1) * q).min(grow.rpc.len()));
        bands.push((format!("{}..{}", scale.deploys + a, scale.deploys + b), grow.subset(a, b)));
    }
    bands.push((format!("{hw}..{}", hw + scale.deploys), large.subset(0, usize::MAX)));
    for (name, r) in &bands {
        rep.line(&format!(
            "| {:<20} | {:>5} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
            name,
            r.rpc.len(),
            fmt_us(r.spawn.p50()),
            fmt_us(r.spawn.p99()),
            fmt_us(r.startup.p50()),
            fmt_us(r.startup.p99()),
            fmt_us(r.rpc.p50()),
            fmt_us(r.rpc.p99())
        ));
    }
    rep.line("\n(spawn = launcher spawn_us; start = server startup_us; RPC = client Deploy(wait) end to end)");
    rep.line(&format!(
        "\ndaemon+launcher CPU per deploy at {hw} held: {:.0} µs; kill --remove (force) RPC p50 {}, p99 {}; Shutdown {}",
        large.cpu_per_deploy_us,
        fmt_us(removal.p50()),
        fmt_us(removal.p99()),
        fmt_us(shutdown.as_secs_f64() * 1e6)
    ));

    rep.section("f. Peers: the same static binary (tiny-exit), start → exit");
    rep.row("bare: posix_spawn + wait (std::process::Command)", &p.bare);
    if let Some(s) = &p.bwrap {
        rep.row("bwrap --unshare-all --die-with-parent --ro-bind / /", s);
    }
    if let Some(s) = &p.bwrap_net {
        rep.row("bwrap --unshare-all --share-net (no network namespace)", s);
    }
    if let Some(s) = &p.runc {
        rep.row("runc run (runc spec: pid,net,ipc,uts,mnt ns; ro rootfs)", s);
    }
    rep.row("Solo: Deploy(wait) → EXITED event received", &p.solo_exited);
    rep.row("Solo: Deploy(wait) RPC → running (exec'd)", &p.solo_exec);
    rep.row("Solo: server startup_us", &p.solo_startup);
    rep.row("Solo: launcher spawn_us", &p.solo_spawn);
    let ratio = |s: &Option<Samples>| {
        s.as_ref().map(|s| format!("{:.2}", p.solo_exited.p50() / s.p50())).unwrap_or_else(|| "-".into())
    };
    rep.line(&format!(
        "\nmedian ratios, Solo (Deploy → EXITED) / peer: bare {:.1}, bwrap {}, bwrap --share-net {}, runc {}",
        p.solo_exited.p50() / p.bare.p50(),
        ratio(&p.bwrap),
        ratio(&p.bwrap_net),
        ratio(&p.runc)
    ));
    if p.bwrap.is_none() || p.runc.is_none() {
        rep.line("(missing peers: apt-get install -y bubblewrap runc)");
    }
    rep.line(&format!("\ntotal benchmark time: {:.1} s", started.elapsed().as_secs_f64()));
    rep.line(&format!(
        "machine CPU during the run: {busy:.0}% busy, of which {others:.0}% by processes other than this benchmark, \
         its daemon and launcher (kernel workers included) and {steal:.1}% stolen by the hypervisor; \
         above a few % the tails are not Solo's alone"
    ));

    let ms = |us: f64| us / 1000.0;
    let deploy_target = |rep: &mut Report, label: &str, r: &DeployRun| {
        rep.target(
            &format!("deploy→running p50 ≤ 3 ms, {label}"),
            format!("{:.2} ms", ms(r.rpc.p50())),
            r.rpc.p50() <= 3000.0,
        );
        rep.target(
            &format!("deploy→running p99 ≤ 10 ms, {label}"),
            format!("{:.2} ms", ms(r.rpc.p99())),
            r.rpc.p99() <= 10_000.0,
        );
    };
    deploy_target(&mut rep, "back to back, 0 held", &small);
    deploy_target(&mut rep, &format!("back to back, {hw} held"), &large);
    deploy_target(&mut rep, &format!("paced 1/{pace} ms"), &paced);
    for (label, r) in
        [("back to back, ~0 held", &r0), (&format!("paced 1/{pace} ms") as &str, &r0p), (&format!("{hw} held"), &r1)]
    {
        rep.target(
            &format!("restart exit→running p99 ≤ 5 ms, {label}"),
            format!("server {:.2} ms, client {:.2} ms", ms(r.server.p99()), ms(r.client_minus_backoff.p99())),
            r.server.p99().max(r.client_minus_backoff.p99()) <= 5000.0,
        );
    }
    rep.target(
        &format!("Status p99 ≤ 1 ms with {hw} services"),
        format!("{:.3} ms (p50 {:.3} ms)", ms(status.p99()), ms(status.p50())),
        status.p99() <= 1000.0,
    );
    let hwm_mib = hwm_after.unwrap_or(u64::MAX) as f64 / 1024.0;
    rep.target(
        &format!("{hw} services, daemon RSS < 64 MiB"),
        format!("RSS {}, HWM {}", mib(rss), mib(hwm_after)),
        rss.is_some_and(|k| (k as f64 / 1024.0) < 64.0) && hwm_mib < 64.0,
    );
    let growth = large.spawn.p50() / small.spawn.p50();
    rep.target(
        "spawn cost flat as the daemon grows (p50 ratio ≤ 1.25)",
        format!("{} → {} (×{growth:.2})", fmt_us(small.spawn.p50()), fmt_us(large.spawn.p50())),
        growth <= 1.25,
    );
    rep.print(scale.full);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let scale = if bench { FULL } else { SMOKE };
    if solo::sandbox::sys::geteuid() != 0 {
        eprintln!("SKIPPED supervisor bench: needs root (the daemon creates cgroups and switches uids)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(scale))
}
