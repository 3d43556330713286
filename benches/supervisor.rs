//! `cargo bench --bench supervisor`: what a service costs in Solo, measured
//! end to end against a real `solo serve` whose every instance runs under
//! the full `default` sandbox profile, next to bare spawn, bubblewrap and
//! runc on the same machine. Results and their reading:
//! `docs/benchmarks.md`.
//!
//! Runs as root (the daemon creates cgroups and switches uids). Under
//! `cargo test --all-targets` (no `--bench` argument) it runs a small smoke
//! version so the benchmark keeps working; the figures only mean something
//! from `cargo bench`.
//!
//! Phases, in order:
//! 1. where a spawn's time goes, step by step, with the daemon idle
//!    ([`spawn_steps`], a single-threaded helper process);
//! 2. restart latency (SIGKILL → running again), back to back and paced,
//!    with the daemon small;
//! 3. deploy → running latency: paced (one every [`PACE`]) and back to back
//!    from 0 services held;
//! 4. fill the daemon to 1,000 running `tiny` services;
//! 5. at 1,000 held: Status latency, RSS, deploy → running (the targets),
//!    a burst of concurrent deploys (the network namespace pool), the
//!    peers (the same static binary started by a plain spawn, bwrap with
//!    comparable isolation, runc and Solo, interleaved), the spawn steps
//!    again, restart latency, and the seccomp cost per syscall (a getppid
//!    loop run directly, under bwrap with and without Solo's filter, and as
//!    a Solo service under `default` and `strict`; the held services are
//!    paused and use no CPU);
//! 6. kill --remove everything;
//! 7. Shutdown, remove temp dirs.
//!
//! `SOLO_BENCH_PAUSE=<seconds>` prints the daemon and launcher pids and
//! waits before measuring (to attach a tracer); `SOLO_BENCH_DUMP=<file>`
//! writes every deploy's client, server and launcher figures as CSV;
//! `SOLO_BENCH_ONLY=deploys` stops after the deploys at 1,000 held and
//! prints their table by band of services held (about 30 s: for trying a
//! change to the deploy path).

use anyhow::{anyhow, bail, ensure, Context};
use rand::Rng;
use solo::proto::v1 as pb;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "supervisor/spawn_steps.rs"]
mod spawn_steps;

#[path = "common/mod.rs"]
mod common;
use common::daemon::Daemon;
use common::procfs::{launcher_pid, machine_ticks, our_ticks};

type Client = solo::cli::Client;

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
    /// Rounds of the peer comparison (each starts every peer once).
    peers: usize,
    /// Deploys and restarts measured one every [`PACE`].
    paced: usize,
    /// Concurrent deploys in the burst.
    burst: usize,
    /// getppid calls per run of the seccomp loop, in `loop_chunks` chunks.
    loop_n: u64,
    loop_chunks: u32,
    /// Runs of the loop per variant (outside, default, strict).
    loop_rounds: usize,
    /// Spawn-steps runs: with a pooled netns, without, and bare clone3 per
    /// namespace combination (the first clone3 round is a warm-up).
    steps_pooled: usize,
    steps_unpooled: usize,
    steps_clones: usize,
    full: bool,
}

const FULL: Scale = Scale {
    deploys: 200,
    held: 1000,
    statuses: 2000,
    restarts: 200,
    peers: 200,
    paced: 100,
    burst: 16,
    loop_n: 10_000_000,
    loop_chunks: 20,
    loop_rounds: 2,
    steps_pooled: 200,
    steps_unpooled: 50,
    steps_clones: 51,
    full: true,
};
const SMOKE: Scale = Scale {
    deploys: 5,
    held: 20,
    statuses: 50,
    restarts: 5,
    peers: 3,
    paced: 3,
    burst: 6,
    loop_n: 100_000,
    loop_chunks: 4,
    loop_rounds: 1,
    steps_pooled: 3,
    steps_unpooled: 2,
    steps_clones: 2,
    full: false,
};

/// Gap between paced operations: an agent deploying one service at a time,
/// rather than a loop. Long enough for the kernel to go idle in between
/// (see "Where the time goes" in docs/benchmarks.md).
const PACE: Duration = Duration::from_millis(100);

/// Service uids, away from the ranges the integration tests use.
const UID_RANGE: &str = "300000-302999";
/// The uid of the spawn-steps helper's child (outside the daemon's range).
const STEPS_UID: u32 = 303_500;

/// The profile every deploy names (it is also what an empty profile means).
const PROFILE: &str = "default";

/// Network namespaces the launcher keeps ready (`launcher::server::NET_POOL`).
const NET_POOL: usize = 4;

/// The peers' program: writes one line, so a peer's "running" can be seen
/// from outside (the first byte on its stdout), then exits 0.
const TINY_HELLO_C: &str = r#"/* A static program with no libc: writes "x\n" to stdout, exits 0. */
#include <sys/syscall.h>
static long sys3(long n, long a, long b, long c) { long r; __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory"); return r; }
void _start(void) { sys3(SYS_write, 1, (long)"x\n", 2); for (;;) sys3(SYS_exit_group, 0, 0, 0); }
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

/// The benchmark's static programs, built with gcc.
struct Programs {
    /// Pauses forever (the held services).
    tiny: PathBuf,
    /// Writes "x\n" and exits (the peer comparison, the spawn steps).
    hello: PathBuf,
    /// `syscall_loop N C`: N getppid calls, timed (the seccomp cost).
    syscall_loop: PathBuf,
}

fn build_programs(dir: &Path) -> anyhow::Result<Programs> {
    std::fs::create_dir_all(dir)?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let hello_src = dir.join("tiny-hello.c");
    std::fs::write(&hello_src, TINY_HELLO_C)?;
    let mut out = Vec::new();
    for (src, name) in
        [(src.join("tiny.c"), "tiny"), (hello_src, "tiny-hello"), (src.join("syscall_loop.c"), "syscall-loop")]
    {
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
    Ok(Programs { tiny: out[0].clone(), hello: out[1].clone(), syscall_loop: out[2].clone() })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        .unwrap_or(None)
        .or_else(|| ["/usr/sbin", "/sbin"].iter().map(|d| Path::new(d).join(name)).find(|f| f.is_file()))
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

/// How much CPU the rest of the machine used while the benchmark ran, so a
/// reader can tell a quiet run from a disturbed one.
struct Noise {
    machine: (u64, u64, u64),
    ours: u64,
    kernel: u64,
}

/// utime + stime of every kernel thread (children of kthreadd, pid 2):
/// kworkers, among them the ones that tear down network namespaces after
/// their last process exited. Threads that end in between are not counted.
fn kernel_thread_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    let mut sum = 0;
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if f.get(1) == Some(&"2") {
            let get = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            sum += get(14) + get(15);
        }
    }
    sum
}

impl Noise {
    fn start(daemon: i32, launcher: Option<i32>) -> Noise {
        Noise { machine: machine_ticks(), ours: our_ticks(daemon, launcher), kernel: kernel_thread_ticks() }
    }
    /// Percentages of the machine's CPU time: busy, busy by other processes
    /// and kernel threads, of that by kernel threads, stolen by the hypervisor.
    fn end(&self, daemon: i32, launcher: Option<i32>) -> (f64, f64, f64, f64) {
        let (busy, all, steal) = machine_ticks();
        let (busy, all) = ((busy - self.machine.0) as f64, (all - self.machine.1).max(1) as f64);
        let steal = steal.saturating_sub(self.machine.2) as f64;
        let ours = our_ticks(daemon, launcher).saturating_sub(self.ours) as f64;
        let kernel = kernel_thread_ticks().saturating_sub(self.kernel) as f64;
        (100.0 * busy / all, 100.0 * (busy - steal - ours).max(0.0) / all, 100.0 * kernel / all, 100.0 * steal / all)
    }
}

fn mib(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "-".into())
}

// ------------------------------------------------------------------- client

fn spec(id: &str, program: &[u8], restart: Option<pb::RestartSpec>) -> pb::ServiceSpec {
    spec_with(id, program, restart, PROFILE, &[])
}

fn spec_with(
    id: &str,
    program: &[u8],
    restart: Option<pb::RestartSpec>,
    profile: &str,
    args: &[String],
) -> pb::ServiceSpec {
    pb::ServiceSpec { restart, ..common::executable_spec(id, program, args, profile) }
}

fn never() -> Option<pb::RestartSpec> {
    Some(pb::RestartSpec { policy: pb::RestartPolicy::Never as i32, ..Default::default() })
}

struct Deployed {
    /// Client-side: Deploy(wait=true) sent → reply decoded.
    rpc: Duration,
    /// Server-side: request received → every instance running.
    startup_us: u64,
    /// Launcher: plan received → child exec'd.
    spawn_us: u64,
    pid: i32,
    /// The instance as the reply shows it (profile, sandbox layers).
    instance: pb::Instance,
}

async fn deploy(c: &mut Client, s: pb::ServiceSpec) -> anyhow::Result<Deployed> {
    let id = s.id.clone();
    let req = pb::DeployRequest { spec: Some(s), wait: true };
    let t = Instant::now();
    let r = c.deploy(req).await.with_context(|| format!("deploy {id}"))?.into_inner();
    let rpc = t.elapsed();
    let inst = r.instances.into_iter().next().ok_or_else(|| anyhow!("deploy {id}: no instance in the reply"))?;
    Ok(Deployed { rpc, startup_us: r.startup_us, spawn_us: inst.spawn_us, pid: inst.pid, instance: inst })
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

/// The next message of a watch stream, within `limit`.
async fn next_msg(
    stream: &mut tonic::Streaming<pb::WatchEvent>,
    limit: Duration,
) -> anyhow::Result<pb::watch_event::Payload> {
    loop {
        let msg = tokio::time::timeout(limit, stream.message())
            .await
            .with_context(|| format!("nothing on the watch stream within {limit:?}"))??
            .ok_or_else(|| anyhow!("the watch stream ended"))?;
        if let Some(p) = msg.payload {
            if let pb::watch_event::Payload::Event(e) = &p {
                if e.kind == pb::EventKind::Lagged as i32 {
                    bail!("the watch stream lagged: {}", e.message);
                }
            }
            return Ok(p);
        }
    }
}

async fn next_event(
    stream: &mut tonic::Streaming<pb::WatchEvent>,
    mut want: impl FnMut(&pb::Event) -> bool,
) -> anyhow::Result<pb::Event> {
    loop {
        if let pb::watch_event::Payload::Event(e) = next_msg(stream, Duration::from_secs(15)).await? {
            if want(&e) {
                return Ok(e);
            }
        }
    }
}

/// An instance's sandbox layers as `name state (detail)`, one per line.
fn layers(i: &pb::Instance) -> Vec<String> {
    i.sandbox.iter().map(|l| format!("{} {}: {}", l.name, l.state, l.detail)).collect()
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

/// A peer's starts: command start → the program's first byte on its
/// stdout (running), and → the peer command's exit (done, cleaned up).
#[derive(Default)]
struct PeerRun {
    running: Samples,
    exited: Samples,
}

/// Starts `cmd` once (stdin from `stdin`, or /dev/null) and times it.
fn run_peer(cmd: &mut Command, stdin: Option<&Path>) -> anyhow::Result<(Duration, Duration)> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p)?),
        None => cmd.stdin(Stdio::null()),
    };
    let t = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start {cmd:?}"))?;
    let mut out = child.stdout.take().context("no stdout pipe")?;
    let mut b = [0u8; 1];
    let n = out.read(&mut b)?;
    let running = t.elapsed();
    let st = child.wait()?;
    let exited = t.elapsed();
    if n != 1 || !st.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        bail!("{cmd:?}: {st}, {n} bytes of output\n{err}");
    }
    Ok((running, exited))
}

/// bubblewrap with isolation comparable to Solo's `default` profile: every
/// namespace bwrap offers (user, pid, net, ipc, uts, cgroup, mount), the
/// profile's read-only system paths (symlinks recreated, missing ones left
/// out, as Solo does), the program read-only at `/app/hello`, a writable
/// `/data`, its own `/proc`, a minimal `/dev`, a private `/tmp`, a new
/// session, no capabilities, a hostname, and Solo's own `default` seccomp
/// filter read from stdin (`--seccomp 0`). It has no cgroup, no uid switch
/// (root inside its user namespace) and no Landlock.
fn bwrap_args(hello: &Path, data: &Path, share_net: bool) -> anyhow::Result<Vec<OsString>> {
    let set = solo::profiles::ProfileSet::builtin().map_err(|e| anyhow!("{e}"))?;
    let p = set.get(PROFILE).context("no default profile")?;
    let mut a: Vec<OsString> = vec!["--unshare-all".into()];
    if share_net {
        a.push("--share-net".into());
    }
    for s in ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "bench"] {
        a.push(s.into());
    }
    for path in &p.filesystem.read_only {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                a.push("--symlink".into());
                a.push(std::fs::read_link(path)?.into());
                a.push(path.into());
            }
            Ok(_) => {
                a.push("--ro-bind".into());
                a.push(path.into());
                a.push(path.into());
            }
            Err(_) => {}
        }
    }
    a.push("--ro-bind".into());
    a.push(hello.into());
    a.push("/app/hello".into());
    a.push("--bind".into());
    a.push(data.into());
    a.push("/data".into());
    for s in ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/", "--seccomp", "0", "/app/hello"] {
        a.push(s.into());
    }
    Ok(a)
}

/// Solo's compiled seccomp filter for `profile`, as classic BPF.
fn profile_bpf(profile: &str) -> anyhow::Result<Vec<u8>> {
    let set = solo::profiles::ProfileSet::builtin().map_err(|e| anyhow!("{e}"))?;
    let p = set.get(profile).with_context(|| format!("no profile {profile}"))?;
    Ok(solo::sandbox::seccomp::compile(&p.allowed_syscalls(), &p.network.socket_families)?)
}

/// An OCI bundle whose process is `/hello`, from `runc spec`.
fn runc_bundle(runc: &Path, dir: &Path, hello: &Path) -> anyhow::Result<PathBuf> {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs"))?;
    std::fs::copy(hello, bundle.join("rootfs/hello"))?;
    let st = Command::new(runc).arg("spec").arg("--bundle").arg(&bundle).status()?;
    ensure!(st.success(), "runc spec failed");
    let path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    cfg["process"]["args"] = serde_json::json!(["/hello"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["root"]["readonly"] = serde_json::json!(true);
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(bundle)
}

struct Peers {
    bare: PeerRun,
    bwrap: Option<PeerRun>,
    bwrap_net: Option<PeerRun>,
    runc: Option<PeerRun>,
    bwrap_cmd: Option<String>,
    /// Solo: Deploy(wait) RPC → running (the reply), → EXITED received.
    solo: PeerRun,
    solo_startup: Samples,
    solo_spawn: Samples,
}

/// `rounds` rounds; each starts the program once with every peer, in the
/// same order, so all see the same machine.
async fn peers(c: &mut Client, rounds: usize, hello: &Path, tmp: &Path) -> anyhow::Result<Peers> {
    let bpf_file = tmp.join("default.bpf");
    std::fs::write(&bpf_file, profile_bpf(PROFILE)?)?;
    let data = tmp.join("bwrap-data");
    std::fs::create_dir_all(&data)?;
    let bwrap_bin = find_in_path("bwrap");
    let bwrap_full = match &bwrap_bin {
        Some(_) => Some(bwrap_args(hello, &data, false)?),
        None => None,
    };
    let bwrap_share = match &bwrap_bin {
        Some(_) => Some(bwrap_args(hello, &data, true)?),
        None => None,
    };
    let runc = find_in_path("runc");
    let bundle = match &runc {
        Some(r) => Some(runc_bundle(r, tmp, hello)?),
        None => None,
    };
    let runc_root = tmp.join("runc-state");
    let tag = std::process::id();
    let program = std::fs::read(hello)?;
    let mut all = c.watch(pb::WatchRequest { include_events: true, ..Default::default() }).await?.into_inner();
    let mut p = Peers {
        bare: PeerRun::default(),
        bwrap: bwrap_bin.as_ref().map(|_| PeerRun::default()),
        bwrap_net: bwrap_bin.as_ref().map(|_| PeerRun::default()),
        runc: runc.as_ref().map(|_| PeerRun::default()),
        bwrap_cmd: bwrap_full.as_ref().map(|a| {
            let args: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            format!("bwrap {}", args.join(" "))
        }),
        solo: PeerRun::default(),
        solo_startup: Samples::default(),
        solo_spawn: Samples::default(),
    };
    let push = |r: &mut PeerRun, (a, b): (Duration, Duration)| {
        r.running.push(a);
        r.exited.push(b);
    };
    for i in 0..rounds {
        push(&mut p.bare, run_peer(&mut Command::new(hello), None)?);
        if let (Some(b), Some(args), Some(r)) = (&bwrap_bin, &bwrap_full, p.bwrap.as_mut()) {
            push(r, run_peer(Command::new(b).args(args), Some(&bpf_file))?);
        }
        if let (Some(b), Some(args), Some(r)) = (&bwrap_bin, &bwrap_share, p.bwrap_net.as_mut()) {
            push(r, run_peer(Command::new(b).args(args), Some(&bpf_file))?);
        }
        if let (Some(bin), Some(bundle), Some(r)) = (&runc, &bundle, p.runc.as_mut()) {
            let mut cmd = Command::new(bin);
            cmd.arg("--root").arg(&runc_root).arg("run").arg("--bundle").arg(bundle).arg(format!("bench-{tag}-{i}"));
            push(r, run_peer(&mut cmd, None)?);
        }
        // Solo: Deploy(wait) of the same binary, restart never; its EXITED event.
        let id = format!("peer-{i:04}");
        let t0 = Instant::now();
        let d = deploy(c, spec(&id, &program, never())).await?;
        let ev = next_event(&mut all, |e| {
            e.service == id
                && (e.kind == pb::EventKind::Exited as i32
                    || e.kind == pb::EventKind::Failed as i32
                    || e.kind == pb::EventKind::LaunchFailed as i32)
        })
        .await?;
        let done = t0.elapsed();
        ensure!(ev.kind == pb::EventKind::Exited as i32, "{id}: {}", ev.message);
        push(&mut p.solo, (d.rpc, done));
        p.solo_startup.push_us(d.startup_us as f64);
        p.solo_spawn.push_us(d.spawn_us as f64);
        remove(c, &id).await?;
    }
    Ok(p)
}

// -------------------------------------------------------------------- burst

/// Concurrent deploys: more spawns at once than the launcher's pool of
/// network namespaces holds.
struct Burst {
    /// launcher `spawn_us` in launch (pid) order.
    spawn_in_order: Vec<f64>,
    rpc: Samples,
    wall: Duration,
}

async fn burst(c: &Client, k: usize, tiny: &[u8]) -> anyhow::Result<Burst> {
    let ids = ids("burst", 0..k);
    let t = Instant::now();
    let futs = ids.iter().map(|id| {
        let mut c = c.clone();
        let s = spec(id, tiny, None);
        async move { deploy(&mut c, s).await }
    });
    let results = futures::future::join_all(futs).await;
    let wall = t.elapsed();
    let mut got = Vec::new();
    let mut rpc = Samples::default();
    for r in results {
        let d = r?;
        rpc.push(d.rpc);
        got.push((d.pid, d.spawn_us as f64));
    }
    got.sort_by_key(|(pid, _)| *pid);
    let mut c = c.clone();
    for id in &ids {
        remove(&mut c, id).await?;
    }
    Ok(Burst { spawn_in_order: got.into_iter().map(|(_, s)| s).collect(), rpc, wall })
}

// ------------------------------------------------------------------ seccomp

/// One run of the syscall loop: the whole loop and each chunk, ns/call.
struct LoopRun {
    per_call: f64,
    chunks: Vec<f64>,
}

/// Parses `syscall_loop getppid n=N ns=T chunks=a,b,…`.
fn parse_loop(line: &str, chunks: u32) -> anyhow::Result<LoopRun> {
    let field = |k: &str| {
        line.split_whitespace().find_map(|w| w.strip_prefix(k)).with_context(|| format!("no {k} in {line:?}"))
    };
    let n: f64 = field("n=")?.parse()?;
    let ns: f64 = field("ns=")?.parse()?;
    let per_chunk = n / f64::from(chunks);
    let chunks =
        field("chunks=")?.split(',').map(|c| c.parse::<f64>().map(|v| v / per_chunk)).collect::<Result<Vec<_>, _>>()?;
    Ok(LoopRun { per_call: ns / n, chunks })
}

/// Runs the loop as a Solo service under `profile` and reads its line.
async fn loop_in_solo(
    c: &mut Client,
    id: &str,
    program: &[u8],
    profile: &str,
    scale: Scale,
) -> anyhow::Result<(LoopRun, pb::Instance)> {
    let mut stream = c
        .watch(pb::WatchRequest { include_events: true, include_logs: true, ..Default::default() })
        .await?
        .into_inner();
    let args = [scale.loop_n.to_string(), scale.loop_chunks.to_string()];
    let d = deploy(c, spec_with(id, program, never(), profile, &args)).await?;
    let (mut line, mut exited) = (None, None);
    while line.is_none() || exited.is_none() {
        match next_msg(&mut stream, Duration::from_secs(120)).await? {
            pb::watch_event::Payload::Log(l) if l.service == id && l.line.starts_with("syscall_loop") => {
                line = Some(l.line)
            }
            pb::watch_event::Payload::Event(e)
                if e.service == id
                    && (e.kind == pb::EventKind::Exited as i32
                        || e.kind == pb::EventKind::Failed as i32
                        || e.kind == pb::EventKind::Quarantined as i32) =>
            {
                ensure!(e.kind == pb::EventKind::Exited as i32, "{id} under {profile}: {}", e.message);
                exited = Some(e);
            }
            _ => {}
        }
    }
    drop(stream);
    remove(c, id).await?;
    let line = line.unwrap_or_default();
    Ok((parse_loop(&line, scale.loop_chunks)?, d.instance))
}

fn loop_outside(cmd: &mut Command, stdin: Option<&Path>) -> anyhow::Result<LoopRun> {
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p)?),
        None => cmd.stdin(Stdio::null()),
    };
    let out = cmd.output()?;
    ensure!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("syscall_loop")).unwrap_or_default();
    let chunks = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("chunks="))
        .map(|c| c.split(',').count() as u32)
        .unwrap_or(1);
    parse_loop(line, chunks)
}

/// bwrap around the loop: the same namespaces as the peer comparison,
/// with or without Solo's `default` filter (stdin).
fn bwrap_loop(bwrap: &Path, program: &Path, scale: Scale, filter: bool) -> Command {
    let mut cmd = Command::new(bwrap);
    cmd.args(["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--ro-bind"])
        .arg(program)
        .args(["/app/loop", "--proc", "/proc", "--dev", "/dev"]);
    if filter {
        cmd.args(["--seccomp", "0"]);
    }
    cmd.arg("/app/loop").arg(scale.loop_n.to_string()).arg(scale.loop_chunks.to_string());
    cmd
}

/// The loop outside any filter, under bwrap with and without Solo's
/// filter, and as a service under `default` and `strict`, `rounds` times
/// each, the order rotating every round.
struct Seccomp {
    /// (variant, whole-loop ns/call per run, every chunk's ns/call)
    variants: Vec<(&'static str, Samples, Samples)>,
    default_layers: Vec<String>,
}

const LOOP_VARIANTS: [&str; 6] = [
    "outside any filter",
    "bwrap, no filter",
    "bwrap + Solo's default filter",
    "Solo service, default",
    "Solo service, strict",
    "bwrap + the filter as a linear list",
];

async fn seccomp_cost(c: &mut Client, program: &Path, tmp: &Path, scale: Scale) -> anyhow::Result<Seccomp> {
    let bytes = std::fs::read(program)?;
    let bwrap = find_in_path("bwrap");
    let filter = tmp.join("loop-default.bpf");
    std::fs::write(&filter, profile_bpf(PROFILE)?)?;
    // The same allow-list as a linear list (SCMP_FLTATR_CTL_OPTIMIZE = 1;
    // Solo's is a binary tree).
    let linear = tmp.join("loop-linear.bpf");
    let set = solo::profiles::ProfileSet::builtin().map_err(|e| anyhow!("{e}"))?;
    let p = set.get(PROFILE).context("no default profile")?;
    std::fs::write(
        &linear,
        solo::sandbox::seccomp::compile_as(&p.allowed_syscalls(), &p.network.socket_families, false)?,
    )?;
    let n = LOOP_VARIANTS.len();
    let mut whole: Vec<Samples> = vec![Samples::default(); n];
    let mut chunks: Vec<Samples> = vec![Samples::default(); n];
    let mut default_layers = Vec::new();
    let args = [scale.loop_n.to_string(), scale.loop_chunks.to_string()];
    for round in 0..scale.loop_rounds {
        for k in 0..n {
            let v = (k + round) % n;
            let run = match (v, &bwrap) {
                (0, _) => loop_outside(Command::new(program).args(&args), None)?,
                (1, Some(b)) => loop_outside(&mut bwrap_loop(b, program, scale, false), None)?,
                (2, Some(b)) => loop_outside(&mut bwrap_loop(b, program, scale, true), Some(&filter))?,
                (5, Some(b)) => loop_outside(&mut bwrap_loop(b, program, scale, true), Some(&linear))?,
                (1 | 2 | 5, None) => continue,
                _ => {
                    let profile = if v == 3 { "default" } else { "strict" };
                    let (run, inst) =
                        loop_in_solo(c, &format!("loop-{profile}-{round}"), &bytes, profile, scale).await?;
                    if v == 3 {
                        default_layers = layers(&inst);
                    }
                    run
                }
            };
            whole[v].push_us(run.per_call);
            for x in run.chunks {
                chunks[v].push_us(x);
            }
        }
    }
    let variants = LOOP_VARIANTS
        .iter()
        .zip(whole.into_iter().zip(chunks))
        .filter(|(_, (w, _))| w.len() > 0)
        .map(|(name, (w, c))| (*name, w, c))
        .collect();
    Ok(Seccomp { variants, default_layers })
}

/// Waits (up to `max`) until the machine is quiet: under 15% busy over
/// 200 ms. Network namespaces of removed services are torn down by kernel
/// workers after the fact; a micro-measurement should not share the CPUs
/// with them. Returns how long it waited and the last busy share.
async fn settle(max: Duration) -> (Duration, f64) {
    let t = Instant::now();
    loop {
        let a = machine_ticks();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = machine_ticks();
        let busy = (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64;
        if busy < 0.15 || t.elapsed() >= max {
            return (t.elapsed(), busy);
        }
    }
}

// -------------------------------------------------------------- spawn steps

/// The helper's samples, by name in first-seen order, and its facts.
#[derive(Default)]
struct Steps {
    samples: Vec<(String, Samples)>,
    info: Vec<(String, String)>,
}

impl Steps {
    fn get(&self, name: &str) -> Option<&Samples> {
        self.samples.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// Runs `__spawn_steps` (this executable, a separate single-threaded
/// process) and collects its samples.
fn spawn_steps(scale: Scale, hello: &Path, dir: &Path) -> anyhow::Result<Steps> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .arg("__spawn_steps")
        .arg(scale.steps_pooled.to_string())
        .arg(scale.steps_unpooled.to_string())
        .arg(scale.steps_clones.to_string())
        .arg(hello)
        .arg(dir)
        .arg(STEPS_UID.to_string())
        .stdin(Stdio::null())
        .output()?;
    ensure!(out.status.success(), "spawn steps: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let mut steps = Steps::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        match f.as_slice() {
            ["S", name, v] => {
                let v: f64 = v.parse()?;
                match steps.samples.iter_mut().find(|(n, _)| n == name) {
                    Some((_, s)) => s.push_us(v),
                    None => {
                        let mut s = Samples::default();
                        s.push_us(v);
                        steps.samples.push(((*name).to_owned(), s));
                    }
                }
            }
            ["I", k, v] if !steps.info.iter().any(|(x, _)| x == k) => {
                steps.info.push(((*k).to_owned(), (*v).to_owned()));
            }
            _ => {}
        }
    }
    Ok(steps)
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

fn loadavg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:04}")).collect()
}

fn tool_version(bin: &str) -> String {
    find_in_path(bin)
        .and_then(|b| Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_else(|| "not installed".into())
}

async fn run(scale: Scale) -> anyhow::Result<()> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("solo-bench-peers-").tempdir()?;
    let programs = build_programs(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-programs"))?;
    eprintln!("supervisor bench ({}): {}", if scale.full { "full" } else { "smoke" }, machine());

    let mut daemon = Daemon::start("solo-bench-", UID_RANGE)?;
    let r = measure(scale, &mut daemon, &programs, tmp.path(), started).await;
    if let Err(e) = &r {
        eprintln!("benchmark failed: {e:#}\nlast daemon log lines:\n{}", daemon.log_tail());
    }
    daemon.stop().await;
    drop(tmp);
    r
}

fn progress(started: Instant, what: &str) {
    eprintln!("[{:>5.1}s] {what}", started.elapsed().as_secs_f64());
}

async fn measure(
    scale: Scale,
    daemon: &mut Daemon,
    programs: &Programs,
    tmp: &Path,
    started: Instant,
) -> anyhow::Result<()> {
    let tiny = std::fs::read(&programs.tiny)?;
    let tiny = tiny.as_slice();
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
    let hw = scale.held;
    rep.line(&format!("# Solo supervisor benchmark ({})\n", if scale.full { "full" } else { "smoke" }));
    rep.line(&format!("machine: {}", machine()));
    rep.line(&format!("load average at start: {}", loadavg()));
    rep.line(&format!("peers: {}; {}", tool_version("bwrap"), tool_version("runc")));
    rep.line(&format!(
        "programs: tiny {} bytes, tiny-hello {} bytes, syscall-loop {} bytes (static, no libc)",
        tiny.len(),
        std::fs::metadata(&programs.hello)?.len(),
        std::fs::metadata(&programs.syscall_loop)?.len()
    ));
    rep.line(&format!(
        "daemon pid {dpid}, launcher pid {}; idle: daemon RSS {}, launcher RSS {}",
        lpid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        mib(proc_kb(dpid, "VmRSS")),
        mib(lpid.and_then(|p| proc_kb(p, "VmRSS")))
    ));

    // Warm-up: artifact stored once, code paths and SQLite pages hot. The
    // first reply shows what the sandbox enforced.
    let mut sandbox = Vec::new();
    for id in ids("warm", 0..10) {
        let d = deploy(&mut c, spec(&id, tiny, None)).await?;
        if sandbox.is_empty() {
            ensure!(d.instance.profile == PROFILE, "deployed under {:?}, not {PROFILE}", d.instance.profile);
            sandbox = layers(&d.instance);
        }
        remove(&mut c, &id).await?;
    }

    // 1. Where a spawn's time goes, with the daemon idle.
    progress(started, "spawn steps, 0 services held");
    let settled0 = settle(Duration::from_secs(if scale.full { 10 } else { 1 })).await;
    let steps0 = spawn_steps(scale, &programs.hello, &tmp.join("steps-0"))?;

    // 2. Restart latency, small daemon.
    progress(started, "restart latency, 0 services held");
    let r0 = restart_run(&mut c, "restart-small", tiny, scale.restarts, Duration::ZERO).await?;
    progress(started, "restart latency, paced, 0 services held");
    let r0p = restart_run(&mut c, "restart-paced", tiny, scale.paced, PACE).await?;

    // 3a. Deploy → running, paced (0 → paced held), then removed again.
    progress(started, &format!("{} paced deploys from 0 held", scale.paced));
    let paced_ids = ids("paced", 0..scale.paced);
    let paced = deploy_many(&mut c, dpid, lpid, &paced_ids, tiny, PACE).await?;
    for id in &paced_ids {
        remove(&mut c, id).await?;
    }

    // 3b. Deploy → running, back to back, first deploys (0 → deploys held).
    progress(started, &format!("{} deploys from 0 held", scale.deploys));
    let first = ids("svc", 0..scale.deploys);
    let small = deploy_many(&mut c, dpid, lpid, &first, tiny, Duration::ZERO).await?;

    // 4. Fill to `held` services, in quarters (spawn cost as it grows).
    progress(started, &format!("filling to {} services", scale.held));
    let fill = ids("svc", scale.deploys..scale.held);
    let grow = deploy_many(&mut c, dpid, lpid, &fill, tiny, Duration::ZERO).await?;
    let mut held: Vec<String> = first.iter().chain(fill.iter()).cloned().collect();
    let state = c.list(pb::ListRequest { state: pb::ServiceState::Running as i32, ..Default::default() }).await?;
    let running = state.into_inner().services.len();
    ensure!(running == scale.held, "{running} services running, expected {}", scale.held);

    // 5. With `held` services running.
    let rss = proc_kb(dpid, "VmRSS");
    let hwm = proc_kb(dpid, "VmHWM");
    let lrss = lpid.and_then(|p| proc_kb(p, "VmRSS"));
    let lhwm = lpid.and_then(|p| proc_kb(p, "VmHWM"));
    let (threads, fds) = (proc_threads(dpid), proc_fds(dpid));

    progress(started, &format!("{} Status RPCs at {hw} held", scale.statuses));
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

    progress(started, &format!("{} deploys at {hw} held", scale.deploys));
    let load_large = loadavg();
    let extra = ids("big", 0..scale.deploys);
    let large = deploy_many(&mut c, dpid, lpid, &extra, tiny, Duration::ZERO).await?;
    let hwm_after = proc_kb(dpid, "VmHWM");
    let mut removal = Samples::default();
    for id in &extra {
        removal.push(remove(&mut c, id).await?);
    }
    if std::env::var("SOLO_BENCH_ONLY").is_ok_and(|v| v == "deploys") {
        // The deploy figures alone (about 20 s): for trying a change.
        rep.heading("Deploy → running as the daemon grows (SOLO_BENCH_ONLY=deploys)");
        band_table(&mut rep, scale, &small, &grow, &large);
        rep.line(&format!(
            "\ndaemon: VmRSS {} at {hw} held, VmHWM {} after {} more; daemon+launcher CPU per deploy {:.0} µs at 0 held, {:.0} µs at {hw} held",
            mib(rss),
            mib(hwm_after),
            scale.deploys,
            small.cpu_per_deploy_us,
            large.cpu_per_deploy_us
        ));
        for id in held.drain(..) {
            remove(&mut c, &id).await?;
        }
        c.shutdown(pb::ShutdownRequest { timeout_ms: 10_000 }).await?;
        // No verdicts: the targets are judged on the full run only.
        println!("{}", rep.out);
        return Ok(());
    }

    progress(started, &format!("burst of {} concurrent deploys at {hw} held", scale.burst));
    // Time for the launcher to refill its pool after the removals.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bursts = burst(&c, scale.burst, tiny).await?;

    progress(started, &format!("peers, {} rounds at {hw} held", scale.peers));
    let p = peers(&mut c, scale.peers, &programs.hello, tmp).await?;

    progress(started, &format!("spawn steps, {hw} services held"));
    let settled1 = settle(Duration::from_secs(if scale.full { 10 } else { 1 })).await;
    let steps1 = spawn_steps(scale, &programs.hello, &tmp.join("steps-1"))?;

    progress(started, &format!("restart latency at {hw} held"));
    let r1 = restart_run(&mut c, "restart-large", tiny, scale.restarts, Duration::ZERO).await?;

    // seccomp cost per syscall (the held services are paused: no CPU).
    progress(
        started,
        &format!(
            "seccomp: {} getppid calls × {} variants × {} rounds",
            scale.loop_n,
            LOOP_VARIANTS.len(),
            scale.loop_rounds
        ),
    );
    let settled2 = settle(Duration::from_secs(if scale.full { 10 } else { 1 })).await;
    let sc = seccomp_cost(&mut c, &programs.syscall_loop, tmp, scale).await?;

    // 6. Clean up.
    progress(started, &format!("removing {} services", held.len()));
    for id in held.drain(..) {
        removal.push(remove(&mut c, &id).await?);
    }
    let left = c.list(pb::ListRequest::default()).await?.into_inner().services.len();
    ensure!(left == 0, "{left} services left after removal");

    let (busy, others, kernel, steal) = noise.end(dpid, lpid);
    let t = Instant::now();
    c.shutdown(pb::ShutdownRequest { timeout_ms: 10_000 }).await?;
    drop(c);
    ensure!(
        daemon.wait_exit(Duration::from_secs(30)).await,
        "the daemon did not exit after Shutdown:\n{}",
        daemon.log_tail()
    );
    let shutdown = t.elapsed();

    // SOLO_BENCH_DUMP=<file>: every deploy's figures, in order, as CSV.
    if let Ok(path) = std::env::var("SOLO_BENCH_DUMP") {
        let mut csv = String::from("phase,i,rpc_us,startup_us,spawn_us\n");
        for (phase, r) in [("paced", &paced), ("small", &small), ("grow", &grow), ("large", &large)] {
            for i in 0..r.rpc.len() {
                let _ = writeln!(csv, "{phase},{i},{:.0},{:.0},{:.0}", r.rpc.0[i], r.startup.0[i], r.spawn.0[i]);
            }
        }
        for i in 0..p.solo.running.len() {
            let _ = writeln!(
                csv,
                "peers,{i},{:.0},{:.0},{:.0}",
                p.solo.running.0[i], p.solo_startup.0[i], p.solo_spawn.0[i]
            );
        }
        std::fs::write(&path, csv).with_context(|| format!("write {path}"))?;
    }

    // ------------------------------------------------------------- report
    let pace = PACE.as_millis();
    rep.heading(&format!("a. Sandbox: what every deploy below runs under (profile `{PROFILE}`)"));
    for l in &sandbox {
        rep.line(&format!("- {l}"));
    }

    rep.section(&format!("b. Deploy (wait=true) → running, tiny, profile {PROFILE}"));
    rep.row(&format!("{hw} held, back to back: client Deploy RPC end to end"), &large.rpc);
    rep.row(&format!("{hw} held, back to back: server startup_us"), &large.startup);
    rep.row(&format!("{hw} held, back to back: launcher spawn_us"), &large.spawn);
    rep.row(&format!("0..{} held, back to back: client Deploy RPC", scale.deploys), &small.rpc);
    rep.row("0.. held, back to back: server startup_us", &small.startup);
    rep.row("0.. held, back to back: launcher spawn_us", &small.spawn);
    rep.row(&format!("paced 1/{pace} ms: client Deploy RPC end to end"), &paced.rpc);
    rep.row(&format!("paced 1/{pace} ms: server startup_us"), &paced.startup);
    rep.row(&format!("paced 1/{pace} ms: launcher spawn_us"), &paced.spawn);
    rep.line(&format!(
        "\nload average before the {hw}-held deploys: {load_large}; daemon+launcher CPU per deploy: {:.0} µs at 0 held, \
         {:.0} µs at {hw} held (from /proc utime+stime)",
        small.cpu_per_deploy_us, large.cpu_per_deploy_us
    ));

    rep.section(&format!(
        "c. Peers at {hw} held, {} interleaved rounds: the same static binary (tiny-hello: writes a line, exits)",
        scale.peers
    ));
    let peer_rows: Vec<(&str, Option<&PeerRun>)> = vec![
        ("bare spawn (no isolation)", Some(&p.bare)),
        ("bwrap (comparable, Solo's filter)", p.bwrap.as_ref()),
        ("bwrap (comparable, --share-net)", p.bwrap_net.as_ref()),
        ("runc run (runc spec, ro root)", p.runc.as_ref()),
    ];
    for (name, r) in &peer_rows {
        if let Some(r) = r {
            rep.row(&format!("{name}: start → first output"), &r.running);
            rep.row(&format!("{name}: start → exited"), &r.exited);
        }
    }
    rep.row("Solo: Deploy(wait) RPC → running (reply)", &p.solo.running);
    rep.row("Solo: Deploy(wait) → EXITED event received", &p.solo.exited);
    rep.row("Solo: server startup_us", &p.solo_startup);
    rep.row("Solo: launcher spawn_us", &p.solo_spawn);
    let times = |peer: &Samples, solo: &Samples| peer.p50() / solo.p50();
    rep.line("\nmedian ratios, peer / Solo (above 1: Solo is faster):\n");
    rep.line("| peer | running: peer start→output / Solo Deploy→running | done: peer start→exit / Solo Deploy→EXITED | peer start→output / Solo spawn_us |");
    rep.line("|---|---|---|---|");
    for (name, r) in &peer_rows {
        if let Some(r) = r {
            rep.line(&format!(
                "| {name} | {:.2} | {:.2} | {:.2} |",
                times(&r.running, &p.solo.running),
                times(&r.exited, &p.solo.exited),
                times(&r.running, &p.solo_spawn)
            ));
        }
    }
    rep.line(
        "\n(bare: std::process::Command; first output: the program's first byte read from its stdout pipe; \
         Solo's running is the Deploy reply, sent once the launcher saw the exec)",
    );
    if let Some(cmd) = &p.bwrap_cmd {
        rep.line(&format!("\nbwrap command (stdin: Solo's default filter as BPF):\n`{cmd}`"));
    }
    if p.bwrap.is_none() || p.runc.is_none() {
        rep.line("(missing peers: apt-get install -y bubblewrap runc)");
    }

    rep.heading(&format!(
        "d. Burst: {} concurrent Deploy(wait) at {hw} held (launcher pool: {NET_POOL} network namespaces)",
        scale.burst
    ));
    let pooled_part = Samples(bursts.spawn_in_order.iter().take(NET_POOL).copied().collect());
    let rest_part = Samples(bursts.spawn_in_order.iter().skip(NET_POOL).copied().collect());
    rep.line(&format!(
        "spawn_us in launch order: {}\n\nfirst {NET_POOL} p50 {}, the rest p50 {} (p99 {}); client RPC p50 {}, p99 {}; \
         all {} running after {}",
        bursts.spawn_in_order.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        fmt_us(pooled_part.p50()),
        fmt_us(rest_part.p50()),
        fmt_us(rest_part.p99()),
        fmt_us(bursts.rpc.p50()),
        fmt_us(bursts.rpc.p99()),
        scale.burst,
        fmt_us(bursts.wall.as_secs_f64() * 1e6)
    ));

    rep.heading(&format!(
        "e. seccomp cost per syscall: getppid × {} ({} chunks) × {} rounds",
        scale.loop_n, scale.loop_chunks, scale.loop_rounds
    ));
    rep.line(&format!(
        "| {:<30} | {:>11} | {:>10} | {:>10} | {:>18} |",
        "variant", "ns/call p50", "chunk p50", "chunk min", "vs outside (chunks)"
    ));
    rep.line(&format!("|{:-<32}|{:->13}|{:->12}|{:->12}|{:->20}|", "", "", "", "", ""));
    let chunk_p50 = |name: &str| sc.variants.iter().find(|(n, _, _)| *n == name).map(|(_, _, c)| c.p50());
    let base = chunk_p50(LOOP_VARIANTS[0]).unwrap_or(f64::NAN);
    for (name, w, ch) in &sc.variants {
        rep.line(&format!(
            "| {:<30} | {:>11.1} | {:>10.1} | {:>10.1} | {:>18} |",
            name,
            w.p50(),
            ch.p50(),
            ch.pct(0.0),
            if *name == LOOP_VARIANTS[0] { "-".to_owned() } else { format!("{:+.1} ns", ch.p50() - base) }
        ));
    }
    let filter_only = match (chunk_p50(LOOP_VARIANTS[2]), chunk_p50(LOOP_VARIANTS[1])) {
        (Some(a), Some(b)) => format!("{:+.1} ns", a - b),
        _ => "-".into(),
    };
    rep.line(&format!(
        "\nthe filter alone (bwrap + filter − bwrap without): {filter_only} per call\n\
         (ns/call: whole loop; chunk: per chunk of the loop, the median of all chunks of all rounds; \
         waited {:.1} s for a quiet machine first, {:.0}% busy)",
        settled2.0.as_secs_f64(),
        settled2.1 * 100.0
    ));
    rep.line(&format!("default instance: {}", sc.default_layers.join("; ")));

    rep.heading("f. Where a spawn's time goes (default profile; spawn-steps helper, µs)");
    for (k, v) in &steps0.info {
        rep.line(&format!("- {k}: {v}"));
    }
    rep.line(&format!(
        "- waited for a quiet machine before each run: {:.1} s ({:.0}% busy) at 0 held, {:.1} s ({:.0}% busy) at {hw} held",
        settled0.0.as_secs_f64(),
        settled0.1 * 100.0,
        settled1.0.as_secs_f64(),
        settled1.1 * 100.0
    ));
    rep.line(&format!(
        "\n| {:<62} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "step",
        "0 p50",
        "0 p99",
        format!("{hw} p50"),
        format!("{hw} p99")
    ));
    rep.line(&format!("|{:-<64}|{:->11}|{:->11}|{:->11}|{:->11}|", "", "", "", "", ""));
    for (name, s0) in &steps0.samples {
        let s1 = steps1.get(name);
        rep.line(&format!(
            "| {:<62} | {:>9.1} | {:>9.1} | {:>9} | {:>9} |",
            name,
            s0.p50(),
            s0.p99(),
            s1.map(|s| format!("{:.1}", s.p50())).unwrap_or_else(|| "-".into()),
            s1.map(|s| format!("{:.1}", s.p99())).unwrap_or_else(|| "-".into())
        ));
    }

    rep.section(&format!("g. Restart: SIGKILL → running again (backoff {} ms)", BACKOFF.as_millis()));
    rep.row("back to back, ~0 held: server restart_us", &r0.server);
    rep.row("back to back, ~0 held: client kill → RESTARTED event", &r0.client);
    rep.row("back to back, ~0 held: client, minus the backoff", &r0.client_minus_backoff);
    rep.row(&format!("paced 1/{pace} ms, ~0 held: server restart_us"), &r0p.server);
    rep.row(&format!("paced 1/{pace} ms, ~0 held: client, minus the backoff"), &r0p.client_minus_backoff);
    rep.row(&format!("back to back, {hw} held: server restart_us"), &r1.server);
    rep.row(&format!("back to back, {hw} held: client kill → RESTARTED event"), &r1.client);
    rep.row(&format!("back to back, {hw} held: client, minus the backoff"), &r1.client_minus_backoff);

    rep.section(&format!("h. Status / List with {hw} services running"));
    rep.row("client: Status RPC, random id", &status);
    rep.row(&format!("client: List RPC, all {hw} services"), &list);

    rep.heading(&format!("i. Memory with {hw} services running"));
    rep.line(&format!(
        "daemon: VmRSS {}, VmHWM {} ({} after {} more deploys), {threads} threads, {fds} fds",
        mib(rss),
        mib(hwm),
        mib(hwm_after),
        scale.deploys
    ));
    rep.line(&format!("launcher (solo __launcher): VmRSS {}, VmHWM {}", mib(lrss), mib(lhwm)));

    rep.heading("j. Spawn cost as the daemon grows (p50 / p99 per band of services held)");
    band_table(&mut rep, scale, &small, &grow, &large);
    rep.line("\n(spawn = launcher spawn_us; start = server startup_us; RPC = client Deploy(wait) end to end)");
    rep.line(&format!(
        "\nkill --remove (force) RPC p50 {}, p99 {}; Shutdown {}",
        fmt_us(removal.p50()),
        fmt_us(removal.p99()),
        fmt_us(shutdown.as_secs_f64() * 1e6)
    ));

    rep.line(&format!(
        "\ntotal benchmark time: {:.1} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    ));
    rep.line(&format!(
        "machine CPU during the run: {busy:.0}% busy, of which {others:.0}% by processes other than this benchmark, \
         its daemon, launcher and services ({kernel:.0}% by kernel threads, e.g. the kworkers that tear down the \
         network namespaces of exited instances) and {steal:.1}% stolen by the hypervisor; other user processes \
         above a few % mean the tails are not Solo's alone"
    ));

    // ------------------------------------------------------------ targets
    let ms = |us: f64| us / 1000.0;
    rep.target(
        &format!("spawn_us p50 ≤ 2 ms, {hw} held"),
        format!("{:.2} ms", ms(large.spawn.p50())),
        large.spawn.p50() <= 2000.0,
    );
    rep.target(
        &format!("spawn_us p99 ≤ 8 ms, {hw} held"),
        format!("{:.2} ms", ms(large.spawn.p99())),
        large.spawn.p99() <= 8000.0,
    );
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
    deploy_target(&mut rep, &format!("{hw} held, back to back"), &large);
    deploy_target(&mut rep, "0 held, back to back", &small);
    deploy_target(&mut rep, &format!("paced 1/{pace} ms"), &paced);
    match &p.bwrap {
        Some(b) => {
            let x = times(&b.running, &p.solo.running);
            rep.target(
                &format!("≥ 2× faster than bwrap (start→running, p50), {hw} held"),
                format!(
                    "×{x:.2}: bwrap {:.2} ms, Solo {:.2} ms (to exit: ×{:.2})",
                    ms(b.running.p50()),
                    ms(p.solo.running.p50()),
                    times(&b.exited, &p.solo.exited)
                ),
                x >= 2.0,
            );
        }
        None => rep.target("≥ 2× faster than bwrap", "bwrap not installed".into(), false),
    }
    let solo_default = chunk_p50(LOOP_VARIANTS[3]).unwrap_or(f64::NAN);
    let overhead = solo_default - base;
    rep.target(
        "seccomp overhead ≤ 50 ns per syscall (default, getppid)",
        format!("{overhead:+.1} ns ({solo_default:.1} vs {base:.1} ns/call; filter alone {filter_only})"),
        overhead <= 50.0,
    );
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

/// Spawn, startup and RPC percentiles per band of services held.
fn band_table(rep: &mut Report, scale: Scale, small: &DeployRun, grow: &DeployRun, large: &DeployRun) {
    let hw = scale.held;
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
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__spawn_steps") {
        return spawn_steps::main(&args[2..]);
    }
    let bench = args.iter().any(|a| a == "--bench");
    let scale = if bench { FULL } else { SMOKE };
    if solo::sandbox::sys::geteuid() != 0 {
        eprintln!("SKIPPED supervisor bench: needs root (the daemon creates cgroups and switches uids)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(scale))
}
