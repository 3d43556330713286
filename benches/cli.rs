//! `cargo bench --bench cli`: what a user or a shell-scripting agent waits
//! for. The whole `solo deploy ID --exec BIN --profile default --wait`
//! command, a new CLI process each time, timed from spawn to exit against a
//! real `solo serve` holding 200 services, interleaved round by round with
//! bubblewrap starting `/usr/bin/true` (the peer of issue 14, item 5) and
//! with the `Deploy` RPC alone from a client that stays connected (the RPC
//! figure of docs/benchmarks.md). Results and their reading:
//! docs/benchmarks.md, "The whole CLI command".
//!
//! Each round runs every measure once, in a new random order; the report
//! gives medians (and p10/p90) over the rounds and each command's ratio to
//! bwrap's median of the same run. Every CLI run gets `SOLO_TIMING` (the
//! spawn time), so the CLI prints where its time went
//! (`src/cli/timing.rs`); the report has the median of each phase.
//!
//! Runs as root (the daemon creates cgroups and switches uids); needs gcc
//! (the two programs deployed) and bubblewrap (`apt-get install -y
//! bubblewrap`): without bwrap the full run stops and says so, the smoke
//! run (`cargo test --all-targets`, a few rounds) leaves its row out.
//!
//! `SOLO_BENCH_ROUNDS=<n>` sets the rounds (default 100); `SOLO_BENCH_BIN`
//! runs another build of `solo` (daemon and CLI) through the same rounds,
//! e.g. the commit before a change: a daemon that does not know artifact
//! digests leaves the by-digest RPC row out. `SOLO_BENCH_CLI_ALSO=
//! LABEL=PATH[,…]` adds other CLI builds to the same rounds, against the
//! same daemon (an older CLI, a statically linked one): rows `… [LABEL]`.
//!
//! Measure the binary users run: `cargo build --release --bin solo` and
//! `SOLO_BENCH_BIN=$PWD/target/release/solo`. Without it the CLI under test
//! is the one `cargo bench` builds, whose dependencies carry the features
//! the dev-dependencies unify in (proptest, h2): 250 KB more `.rodata`,
//! ~60 more page faults and ~0.1 ms more per start than the release build.

use anyhow::{bail, ensure, Context};
use rand::seq::SliceRandom;
use sha2::Digest;
use solo::proto::v1 as pb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "common/mod.rs"]
mod common;
use common::daemon::{solo_bin, Daemon};
use common::procfs::{launcher_pid, machine_ticks, our_ticks};

/// Service uids, away from the other benchmarks' and the tests' ranges.
const UID_RANGE: &str = "3500000-3507999";

/// The bwrap command of the report (issue 14): a fresh sandbox of every
/// namespace bwrap offers, /usr read-only, /proc and /dev, running true.
const BWRAP_ARGS: &[&str] = &[
    "--unshare-all",
    "--die-with-parent",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/lib",
    "/lib",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "/usr/bin/true",
];

#[derive(Debug, Clone, Copy)]
struct Scale {
    rounds: usize,
    warmup: usize,
    held: usize,
    full: bool,
}

/// What each round measures once (the CLI kinds once per CLI build).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Bwrap,
    Version,
    CliTiny,
    CliSleeper,
    CliNewBytes,
    CliTinyNew,
    RpcTiny,
    RpcSleeper,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Bwrap,
        Kind::Version,
        Kind::CliTiny,
        Kind::CliSleeper,
        Kind::CliNewBytes,
        Kind::CliTinyNew,
        Kind::RpcTiny,
        Kind::RpcSleeper,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Bwrap => "bwrap … /usr/bin/true",
            Kind::Version => "solo --version (start-up and exit only)",
            Kind::CliTiny => "solo deploy --wait, tiny (9 KB)",
            Kind::CliSleeper => "solo deploy --wait, sleeper (760 KB)",
            Kind::CliNewBytes => "solo deploy --wait, sleeper, new bytes each time",
            Kind::CliTinyNew => "solo deploy --wait, tiny, new bytes each time",
            Kind::RpcTiny => "Deploy RPC, connected client, tiny by content",
            Kind::RpcSleeper => "Deploy RPC, connected client, sleeper by digest",
        }
    }

    fn is_cli(self) -> bool {
        matches!(self, Kind::Version | Kind::CliTiny | Kind::CliSleeper | Kind::CliNewBytes | Kind::CliTinyNew)
    }
}

/// A kind run by one CLI build: 0 is the build under test (`solo_bin`),
/// the others come from `SOLO_BENCH_CLI_ALSO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Measure {
    kind: Kind,
    build: usize,
}

/// The CLI builds a run compares: the one under test, then `LABEL=PATH`
/// pairs from `SOLO_BENCH_CLI_ALSO` (comma-separated), run against the
/// same daemon in the same rounds.
fn cli_builds() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut v = vec![(String::new(), solo_bin())];
    for pair in std::env::var("SOLO_BENCH_CLI_ALSO").unwrap_or_default().split(',').filter(|p| !p.is_empty()) {
        let (label, path) = pair.split_once('=').context("SOLO_BENCH_CLI_ALSO: expected LABEL=PATH[,LABEL=PATH]")?;
        ensure!(Path::new(path).is_file(), "SOLO_BENCH_CLI_ALSO: {path} is not a file");
        v.push((label.to_owned(), PathBuf::from(path)));
    }
    Ok(v)
}

/// Milliseconds.
#[derive(Default, Clone)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e3);
    }
    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
    fn median(&self) -> f64 {
        self.pct(50.0)
    }
}

struct Programs {
    tiny: PathBuf,
    sleeper: PathBuf,
}

fn build_programs(dir: &Path) -> anyhow::Result<Programs> {
    std::fs::create_dir_all(dir)?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let build = |name: &str, flags: &[&str]| -> anyhow::Result<PathBuf> {
        let dest = dir.join(name);
        let st = Command::new("gcc")
            .args(flags)
            .arg("-o")
            .arg(&dest)
            .arg(src.join(format!("{name}.c")))
            .status()
            .context("gcc must be installed to build the benchmark programs (apt-get install -y gcc)")?;
        ensure!(st.success(), "gcc failed for tests/programs/{name}.c");
        Ok(dest)
    };
    Ok(Programs {
        tiny: build("tiny", &["-O2", "-static", "-nostdlib", "-fno-stack-protector"])?,
        sleeper: build("sleeper", &["-O2", "-static"])?,
    })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

/// One run of a command, spawn to exit; its `solo-timing` line, if any.
fn run_cmd(cmd: &mut Command) -> anyhow::Result<(Duration, Option<String>)> {
    let spawned = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    cmd.env("SOLO_TIMING", spawned.to_string()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{cmd:?} failed ({}): {stderr}", out.status);
    Ok((took, stderr.lines().find_map(|l| l.strip_prefix("solo-timing:")).map(str::to_owned)))
}

/// The CLI as a user runs it: socket and state dir (for the operator
/// token) from the environment, as `SOLO_SOCKET=… SOLO_STATE_DIR=… solo …`.
fn cli(d: &Daemon, bin: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("SOLO_SOCKET", &d.socket).env("SOLO_STATE_DIR", d.dir.path().join("state"));
    c.env_remove("SOLO_TOKEN").env_remove("SOLO_TOKEN_FILE");
    c
}

fn deploy_args(id: &str, program: &Path) -> Vec<String> {
    ["deploy", id, "--exec", &program.display().to_string(), "--profile", "default", "--wait"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn spec_by_digest(id: &str, sha256: &str) -> pb::ServiceSpec {
    let mut s = common::executable_spec(id, &[], &[], "default");
    if let Some(pb::Artifact { kind: Some(pb::artifact::Kind::Executable(e)) }) = s.artifact.as_mut() {
        e.sha256 = sha256.to_owned();
    }
    s
}

/// One Deploy RPC: its time, and the same split as the CLI's (`daemon`,
/// its `startup_us`; `transport`, the rest) in `SOLO_TIMING` form.
async fn rpc(c: &mut solo::cli::Client, spec: pb::ServiceSpec) -> Result<(Duration, Option<String>), tonic::Status> {
    let t = Instant::now();
    let r = c.deploy(pb::DeployRequest { spec: Some(spec), wait: true }).await?.into_inner();
    let took = t.elapsed();
    let daemon = r.startup_us as f64 / 1e3;
    Ok((took, Some(format!("daemon {daemon:.3} transport {:.3}", took.as_secs_f64() * 1e3 - daemon))))
}

#[derive(Default)]
struct Results {
    /// The CLI builds' labels (the first, the build under test: empty).
    builds: Vec<String>,
    samples: BTreeMap<Measure, Samples>,
    /// Per CLI measure, per phase: ms since the CLI's main.
    phases: BTreeMap<Measure, BTreeMap<String, Samples>>,
    /// Measures this build cannot do (the reason).
    unsupported: BTreeMap<Measure, String>,
}

impl Results {
    fn name(&self, m: Measure) -> String {
        match self.builds.get(m.build).filter(|l| !l.is_empty()) {
            Some(label) => format!("{} [{label}]", m.kind.name()),
            None => m.kind.name().to_owned(),
        }
    }

    fn record(&mut self, m: Measure, took: Duration, timing: Option<String>) {
        self.samples.entry(m).or_default().push(took);
        let Some(line) = timing else { return };
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut run: BTreeMap<String, f64> = words
            .chunks(2)
            .filter_map(|p| match p {
                [name, ms] => ms.parse::<f64>().ok().map(|ms| ((*name).to_owned(), ms)),
                _ => None,
            })
            .collect();
        // Derived per run: `exit`, the run less the time before `main` and
        // to `done` (teardown, the parent's wait); `transport`, the wait for
        // the reply (from the request, or from the NOT_FOUND) less the
        // daemon's own time (socket, HTTP/2, protobuf, both ends).
        let total = took.as_secs_f64() * 1e3;
        if let (Some(spawn), Some(done)) = (run.get("spawn"), run.get("done")) {
            run.insert("exit".into(), total - spawn - done);
        }
        let asked = run.get("not-stored").or(run.get("request")).copied();
        if let (Some(asked), Some(reply), Some(daemon)) = (asked, run.get("reply"), run.get("daemon")) {
            run.insert("transport".into(), reply - asked - daemon);
        }
        let phases = self.phases.entry(m).or_default();
        for (name, ms) in run {
            phases.entry(name).or_default().0.push(ms);
        }
    }
}

async fn measure(scale: Scale, d: &mut Daemon, p: &Programs, tmp: &Path) -> anyhow::Result<Results> {
    let mut c = d.connect().await?;
    let bwrap = find_in_path("bwrap");
    if bwrap.is_none() {
        let msg = "bubblewrap is not installed: `apt-get install -y bubblewrap` (as root), then run again";
        if scale.full {
            bail!("{msg}");
        }
        eprintln!("SKIPPED the bwrap row: {msg}");
    }
    let tiny = std::fs::read(&p.tiny)?;
    let sleeper = std::fs::read(&p.sleeper)?;
    let sleeper_sha = hex::encode(sha2::Sha256::digest(&sleeper));

    eprintln!("holding {} services …", scale.held);
    for i in 0..scale.held {
        let s = common::executable_spec(&format!("held-{i:04}"), &tiny, &[], "default");
        c.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.context("deploy a held service")?;
    }
    // Both programs stored once, as a first deploy would have done.
    for (id, prog) in [("first-tiny", &tiny), ("first-sleeper", &sleeper)] {
        let s = common::executable_spec(id, prog, &[], "default");
        c.deploy(pb::DeployRequest { spec: Some(s), wait: true }).await.context("store the programs")?;
    }

    let builds = cli_builds()?;
    let mut all = Vec::new();
    for kind in Kind::ALL {
        let n = if kind.is_cli() { builds.len() } else { 1 };
        all.extend((0..n).map(|build| Measure { kind, build }));
    }
    let mut res = Results { builds: builds.iter().map(|b| b.0.clone()).collect(), ..Results::default() };
    let mut rng = rand::rng();
    let mut n = 0usize;
    let total = scale.warmup + scale.rounds;
    for round in 0..total {
        let keep = round >= scale.warmup;
        let mut order = all.clone();
        order.shuffle(&mut rng);
        for m in order {
            n += 1;
            let id = format!("r{round:03}-{n:04}");
            let bin = &builds[m.build].1;
            let (took, timing) = match m.kind {
                Kind::Bwrap => match &bwrap {
                    Some(b) => run_cmd(Command::new(b).args(BWRAP_ARGS))?,
                    None => continue,
                },
                Kind::Version => run_cmd(cli(d, bin).arg("--version"))?,
                Kind::CliTiny => run_cmd(cli(d, bin).args(deploy_args(&id, &p.tiny)))?,
                Kind::CliSleeper => run_cmd(cli(d, bin).args(deploy_args(&id, &p.sleeper)))?,
                Kind::CliNewBytes | Kind::CliTinyNew => {
                    // Other bytes every time (a trailer the program never
                    // reads): the daemon has not stored them.
                    let (name, bytes) = match m.kind {
                        Kind::CliNewBytes => ("sleeper", &sleeper),
                        _ => ("tiny", &tiny),
                    };
                    let path = tmp.join(format!("{name}-{n}"));
                    let mut b = bytes.clone();
                    b.extend_from_slice(format!("round {round} {n}").as_bytes());
                    std::fs::write(&path, &b)?;
                    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                    run_cmd(cli(d, bin).args(deploy_args(&id, &path)))?
                }
                Kind::RpcTiny => {
                    let s = common::executable_spec(&id, &tiny, &[], "default");
                    rpc(&mut c, s).await.context("Deploy RPC")?
                }
                Kind::RpcSleeper => match rpc(&mut c, spec_by_digest(&id, &sleeper_sha)).await {
                    Ok(r) => r,
                    Err(s) => {
                        res.unsupported.entry(m).or_insert_with(|| format!("{:?}: {}", s.code(), s.message()));
                        continue;
                    }
                },
            };
            if keep {
                res.record(m, took, timing);
            }
        }
        if round + 1 == scale.warmup || (round + 1) % 20 == 0 {
            eprintln!("round {}/{total}", round + 1);
        }
    }
    Ok(res)
}

fn report(res: &Results, scale: Scale, context: &str) {
    let med = |kind: Kind| res.samples.get(&Measure { kind, build: 0 }).map(Samples::median).unwrap_or(f64::NAN);
    let bwrap = med(Kind::Bwrap);
    println!("\n## The whole `solo deploy … --wait` command against bwrap\n");
    println!("{context}\n");
    println!("| measure | n | median | p10 | p90 | median / bwrap's |");
    println!("|---|---|---|---|---|---|");
    let mut rows: Vec<Measure> = res.samples.keys().chain(res.unsupported.keys()).copied().collect();
    rows.sort_unstable();
    rows.dedup();
    for m in rows {
        if let Some(why) = res.unsupported.get(&m) {
            println!("| {} | - | not supported by this build ({why}) | | | |", res.name(m));
            continue;
        }
        let Some(s) = res.samples.get(&m) else { continue };
        println!(
            "| {} | {} | {:.2} ms | {:.2} | {:.2} | ×{:.2} |",
            res.name(m),
            s.0.len(),
            s.median(),
            s.pct(10.0),
            s.pct(90.0),
            s.median() / bwrap
        );
    }

    println!("\n## Where a CLI command's time goes (`SOLO_TIMING`)\n");
    println!("Medians over the runs, ms since the CLI's `main` began; `spawn` is the time before");
    println!("it, `exit` the run less `spawn` and `done` (teardown and the parent's wait), `daemon`");
    println!("the daemon's own time for the deploy (`startup_us`) and `transport` the wait for the");
    println!("reply less `daemon` (socket, HTTP/2, protobuf, both ends); `faults` is a count, the");
    println!("minor page faults of the CLI process.\n");
    let cols = [
        "spawn",
        "parsed",
        "runtime",
        "connected",
        "request",
        "not-stored",
        "reply",
        "done",
        "exit",
        "daemon",
        "transport",
        "faults",
    ];
    println!("| command | {} |", cols.join(" | "));
    println!("|---|{}", "---|".repeat(cols.len()));
    for (m, phases) in &res.phases {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match phases.get(*c) {
                Some(s) if *c == "faults" => format!("{:.0}", s.median()),
                Some(s) => format!("{:.2}", s.median()),
                None => "-".into(),
            })
            .collect();
        println!("| {} | {} |", res.name(*m), cells.join(" | "));
    }

    if !scale.full {
        println!("\n(smoke run under `cargo test`: a few rounds; the figures mean something only from");
        println!("`cargo bench --bench cli`)");
        return;
    }
    println!("\n## Targets (issue 14, item 5)\n");
    println!("| target | measured | met |");
    println!("|---|---|---|");
    let verdict = |ok: bool| if ok { "yes" } else { "NO" };
    for (cli, rpc) in [(Kind::CliTiny, Kind::RpcTiny), (Kind::CliSleeper, Kind::RpcSleeper)] {
        let (c, r) = (med(cli), med(rpc));
        println!(
            "| {} ≤ bwrap | {c:.2} ms vs {bwrap:.2} ms (×{:.2}) | {} |",
            cli.name(),
            c / bwrap,
            verdict(c <= bwrap)
        );
        if !r.is_nan() {
            println!("| {} ≤ RPC + 2 ms | {c:.2} ms vs {r:.2} + 2 ms | {} |", cli.name(), verdict(c <= r + 2.0));
        }
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} CPUs ({cpu}), Linux {}", kernel.trim())
}

fn tool_version(bin: &str) -> String {
    find_in_path(bin)
        .and_then(|b| Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_owned())
        .unwrap_or_else(|| "not installed".into())
}

async fn run(scale: Scale) -> anyhow::Result<()> {
    let programs = build_programs(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-cli-programs"))?;
    let tmp = tempfile::Builder::new().prefix("solo-bench-cli-").tempdir()?;
    eprintln!(
        "cli bench ({}): {}; solo: {}",
        if scale.full { "full" } else { "smoke" },
        machine(),
        solo_bin().display()
    );
    let mut d = Daemon::start("solo-bench-cli-", UID_RANGE)?;
    let load_before = loadavg();
    let (busy0, all0, steal0) = machine_ticks();
    let ours0 = our_ticks(d.pid(), launcher_pid(d.pid()));
    let started = Instant::now();
    let r = measure(scale, &mut d, &programs, tmp.path()).await;
    let (busy1, all1, steal1) = machine_ticks();
    let ours1 = our_ticks(d.pid(), launcher_pid(d.pid()));
    if let Err(e) = &r {
        eprintln!("benchmark failed: {e:#}\nlast daemon log lines:\n{}", d.log_tail());
    }
    d.stop().await;
    let res = r?;
    let all = (all1 - all0).max(1) as f64;
    let context = format!(
        "{} rounds after {} of warm-up, each measure once per round in a random order; the daemon held {}→{} \
         services. {}; {}; solo {}. Load average {} at the start, {} at the end; {:.0}% of the machine busy \
         during the run, {:.0}% of it not this benchmark, its CLIs, daemon or launcher (steal {:.0}%); {:.0} s.",
        scale.rounds,
        scale.warmup,
        scale.held,
        scale.held + 2 + (scale.rounds + scale.warmup) * (2 + 3 * cli_builds()?.len()),
        machine(),
        tool_version("bwrap"),
        solo_bin().display(),
        load_before,
        loadavg(),
        (busy1 - busy0) as f64 / all * 100.0,
        ((busy1 - busy0) as f64 - (ours1 - ours0) as f64).max(0.0) / all * 100.0,
        (steal1 - steal0) as f64 / all * 100.0,
        started.elapsed().as_secs_f64(),
    );
    report(&res, scale, &context);
    println!("\nbwrap command: `bwrap {}`", BWRAP_ARGS.join(" "));
    println!("CLI command: `SOLO_SOCKET=… SOLO_STATE_DIR=… solo deploy ID --exec BIN --profile default --wait`");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = std::env::var("SOLO_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok());
    let scale = if full {
        Scale { rounds: rounds.unwrap_or(100), warmup: 5, held: 200, full }
    } else {
        Scale { rounds: rounds.unwrap_or(3), warmup: 1, held: 5, full }
    };
    if solo::sandbox::sys::geteuid() != 0 {
        eprintln!("SKIPPED cli bench: needs root (the daemon creates cgroups and switches uids)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(scale))
}
