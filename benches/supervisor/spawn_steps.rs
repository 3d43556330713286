//! `supervisor __spawn_steps POOLED UNPOOLED CLONES PROGRAM DIR UID`: where
//! the time of one spawn under the `default` profile goes, step by step.
//!
//! The benchmark runs this as a separate process, single-threaded like
//! `solo __launcher`, as root. It builds the launch plan the daemon builds
//! for an uploaded executable under `default` (as
//! `supervisor::policy::Policy::confinement` does), then does what the
//! daemon and the launcher do with it, timing each part:
//!
//! - daemon: the instance's cgroup (mkdir and limits), the data dir, the
//!   plan's JSON, the datagram with the two log pipes over a
//!   `SOCK_SEQPACKET` pair;
//! - launcher: the JSON back to a plan, `steps::prepare`, `clone3`, the
//!   seccomp listener hand-over (`pidfd_getfd` and the ack), the exec seen
//!   as the close-on-exec report pipe closing;
//! - child: the launch sequence in the order of `steps::run`, with Solo's
//!   own functions (`solo::sandbox::*`), a `CLOCK_MONOTONIC` timestamp after
//!   each step, sent back in one record just before `execveat`. The mount
//!   step runs the prepared operations of `mounts::prepare` one by one (as
//!   `mounts::apply` does, same syscalls and flags) to time them by kind;
//!   the `UNPOOLED` runs call `mounts::apply` itself, as a cross-check.
//!
//! `POOLED` spawns enter a network namespace made beforehand (the
//! launcher's pool); `UNPOOLED` ones create it in `clone3`, as a spawn does
//! when the pool is empty. `CLONES` runs of bare `clone3` per combination
//! of namespace flags (the child reports and exits at once) split the
//! namespaces' cost.
//!
//! Output on stdout: `S<TAB>name<TAB>microseconds` per sample and
//! `I<TAB>key<TAB>value` for facts (mount operations, BPF size).

use anyhow::{anyhow, bail, ensure, Context};
use solo::launcher::protocol::Request;
use solo::profiles::{NetMode, ProfileSet};
use solo::sandbox::cgroup::{CgroupLimits, InstanceCgroup, Layout};
use solo::sandbox::mounts::{self, Op};
use solo::sandbox::namespaces::{self, NetPool};
use solo::sandbox::plan::{Confinement, LandlockRules, LaunchPlan, Namespaces, Rlimit, SeccompFilter};
use solo::sandbox::sys::{self, Errno, Forked};
use solo::sandbox::{caps, landlock, seccomp, steps};
use solo::supervisor::policy;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The child's checkpoints, in order: sample `i` is the time from
/// checkpoint `i - 1` (or from just before `clone3`, for the first) to `i`.
pub const CHILD_STEPS: [&str; 18] = [
    "clone3 → child running",
    "join-cgroups (v1 tasks writes)",
    "cgroup-namespace (unshare)",
    "reset-signals (rt_sigaction ×62)",
    "new-session (setsid)",
    "hostname",
    "network (setns into the pooled netns)",
    "enter-view (setns into the profile's view + unshare)",
    "mounts (the instance's own, ops below)",
    "stdio (dup2 ×3)",
    "rlimits",
    "drop-bounding (check: the launcher emptied it)",
    "drop-groups + set-gid + set-uid",
    "drop-caps",
    "no-new-privs",
    "landlock (ruleset, rules, restrict_self)",
    "close-fds + chdir + open program",
    "seccomp (load filter + listener)",
];

/// Time spent in the mount step by kind of operation.
pub const MOUNT_KINDS: [&str; 6] = [
    "move_mount (artifact, data dir)",
    "bind mounts",
    "mount_setattr (ro/nosuid/nodev/noexec)",
    "tmpfs mounts",
    "proc mount",
    "mkdir/touch/symlink/sysctl write",
];

/// Record the child sends: status, checkpoints, mount kinds, listener.
const REC: usize = 1 + CHILD_STEPS.len() + MOUNT_KINDS.len() + 1;
const KINDS_AT: usize = 1 + CHILD_STEPS.len();
const LISTENER: usize = REC - 1;

struct Out;

impl Out {
    fn sample(&self, name: &str, d: Duration) {
        println!("S\t{name}\t{:.1}", d.as_secs_f64() * 1e6);
    }
    fn sample_ns(&self, name: &str, ns: u64) {
        println!("S\t{name}\t{:.1}", ns as f64 / 1000.0);
    }
    fn info(&self, key: &str, value: impl std::fmt::Display) {
        println!("I\t{key}\t{value}");
    }
}

/// Everything fixed across iterations.
struct Ctx {
    layout: Layout,
    limits: CgroupLimits,
    dir: PathBuf,
    uid: u32,
    program: PathBuf,
    confine: Confinement,
    rules: LandlockRules,
    bpf: Vec<u8>,
    ns: Namespaces,
    /// The profile's shared view, built on the first spawn (as the launcher).
    views: std::cell::RefCell<mounts::Views>,
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    ensure!(args.len() == 6, "usage: __spawn_steps POOLED UNPOOLED CLONES PROGRAM DIR UID");
    let pooled: usize = args[0].parse()?;
    let unpooled: usize = args[1].parse()?;
    let clones: usize = args[2].parse()?;
    let program = PathBuf::from(&args[3]);
    let dir = PathBuf::from(&args[4]);
    let uid: u32 = args[5].parse()?;
    let out = Out;

    let set = ProfileSet::builtin().map_err(|e| anyhow!("{e}"))?;
    let p = set.get("default").context("no built-in default profile")?.clone();
    let bpf = seccomp::compile(&p.allowed_syscalls(), &p.network.socket_families)?;
    out.info("seccomp BPF instructions (default, binary tree)", bpf.len() / 8);
    std::fs::create_dir_all(dir.join("root"))?;
    std::fs::create_dir_all(dir.join("data"))?;
    // The daemon's own construction (supervisor::policy) for an uploaded
    // executable; the data dir is set per iteration.
    let ns = policy::namespaces(&p);
    let rules = policy::landlock_rules(&p, true, &[]);
    let fs = policy::fs_view(
        &p,
        &dir.join("root"),
        None,
        vec![("bench".into(), program.display().to_string())],
        "/app/bench".into(),
        &[],
    );
    let confine = Confinement {
        namespaces: ns,
        hostname: "bench".into(),
        loopback: p.network.mode == NetMode::Loopback,
        fs: Some(fs),
        landlock: Some(rules.clone()),
        seccomp: Some(SeccompFilter::new(bpf.clone())),
    };
    let layout = Layout::detect(&format!("solo-bench-steps-{}", std::process::id()))?;
    layout.prepare()?;
    out.info("cgroup layout", layout.mode());
    out.info("landlock ABI", landlock::kernel_abi());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    out.info("mounts in the launcher's namespace", mountinfo.lines().count());
    let ctx = Ctx {
        layout,
        limits: CgroupLimits {
            memory_bytes: 256 << 20,
            memory_high_bytes: None,
            memory_mode: solo::sandbox::cgroup::MemoryMode::Kill,
            cpu_weight: 100,
            cpu_max_millicores: None,
            max_pids: 64,
        },
        dir,
        uid,
        program,
        confine,
        rules: landlock::prune(&rules),
        bpf,
        ns,
        views: Default::default(),
    };
    // As the launcher does at start: every child inherits the empty sets.
    caps::drop_bounding().map_err(|e| anyhow!("empty the bounding set: {e}"))?;
    let (sock_a, sock_b) = sys::seqpacket_pair()?;
    let mut pool = NetPool::new(1).map_err(|e| anyhow!("network namespace pool: {e}"))?;
    let r = (|| -> anyhow::Result<()> {
        for i in 0..pooled {
            spawn_once(&ctx, &out, i, Some(&mut pool), (&sock_a, &sock_b), i == 0)?;
        }
        for i in 0..unpooled {
            spawn_once(&ctx, &out, pooled + i, None, (&sock_a, &sock_b), false)?;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |k: &str| {
            status.lines().find(|l| l.starts_with(k)).map(|l| l[k.len()..].trim().to_owned()).unwrap_or_default()
        };
        let maps = std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count()).unwrap_or(0);
        out.info(
            "this helper's address space (what clone3 copies and exec tears down)",
            format!("VmRSS {}, VmSize {}, {maps} mappings", field("VmRSS:"), field("VmSize:")),
        );
        clone_matrix(&out, clones)?;
        exec_matrix(&out, clones, &ctx.program, &ctx.bpf)?;
        seccomp_loads(&out, clones, &ctx.bpf, &p)
    })();
    ctx.layout.remove_base();
    r
}

/// One full spawn, as the daemon and the launcher do it, timed.
fn spawn_once(
    ctx: &Ctx,
    out: &Out,
    i: usize,
    pool: Option<&mut NetPool>,
    (sock_a, sock_b): (&OwnedFd, &OwnedFd),
    first: bool,
) -> anyhow::Result<()> {
    let pooled = pool.is_some();
    let tag = if pooled { "" } else { "no pool: " };
    let name = format!("bench-steps-{i}");
    // ---- daemon
    let cg = ctx.layout.instance(&name);
    let t = Instant::now();
    cg.create(&ctx.limits)?;
    out.sample(&format!("{tag}daemon: cgroup mkdir + limits"), t.elapsed());
    let data = ctx.dir.join("data").join(&name);
    let t = Instant::now();
    ensure_data_dir(&data, ctx.uid)?;
    out.sample(&format!("{tag}daemon: data dir (mkdir, chown, chmod)"), t.elapsed());
    let r = spawn_in(ctx, out, i, pool, (sock_a, sock_b), first, &cg, &data, tag);
    let t = Instant::now();
    if let Some(e) = cg.remove() {
        eprintln!("spawn steps: {e}");
    }
    out.sample(&format!("{tag}daemon: cgroup rmdir (after the exit)"), t.elapsed());
    let _ = std::fs::remove_dir_all(&data);
    r.with_context(|| format!("spawn {i} ({})", if pooled { "pooled netns" } else { "netns in clone3" }))
}

#[allow(clippy::too_many_arguments)]
fn spawn_in(
    ctx: &Ctx,
    out: &Out,
    i: usize,
    pool: Option<&mut NetPool>,
    (sock_a, sock_b): (&OwnedFd, &OwnedFd),
    first: bool,
    cg: &InstanceCgroup,
    data: &Path,
    tag: &str,
) -> anyhow::Result<()> {
    let pooled = pool.is_some();
    let mut confine = ctx.confine.clone();
    if let Some(fs) = confine.fs.as_mut() {
        fs.data = Some(data.display().to_string());
    }
    let plan = LaunchPlan {
        service: "bench".into(),
        replica: 0,
        program: ctx.program.display().to_string(),
        argv: vec!["bench".into()],
        env: vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "HOME=/".into(),
            "SOLO_SERVICE=bench".into(),
            "SOLO_REPLICA=0".into(),
            "SOLO_REVISION=1".into(),
        ],
        uid: ctx.uid,
        gid: ctx.uid,
        cgroup_v2: cg.v2.as_ref().map(|p| p.display().to_string()),
        cgroup_v1_tasks: cg.v1_tasks_files().iter().map(|p| p.display().to_string()).collect(),
        rlimits: vec![
            Rlimit { resource: libc::RLIMIT_NOFILE, soft: 1024, hard: 1024 },
            Rlimit { resource: libc::RLIMIT_CORE, soft: 0, hard: 0 },
        ],
        cwd: "/".into(),
        confine,
        fds: Vec::new(),
        listen_fds: None,
    };
    let t = Instant::now();
    let req = Request::Spawn {
        id: i as u64,
        key: format!("inst/bench/{i}/"),
        keep: Vec::new(),
        meta: "{}".into(),
        plan: Box::new(plan),
    };
    let bytes = serde_json::to_vec(&req)?;
    out.sample(&format!("{tag}daemon: plan → JSON"), t.elapsed());
    if first {
        out.info("launch plan JSON bytes", bytes.len());
    }
    let (out_r, out_w) = sys::pipe(0)?;
    let (_err_r, err_w) = sys::pipe(0)?;
    let mut buf = vec![0u8; 1 << 20];
    let t = Instant::now();
    sys::send_with_fds(sock_a.as_raw_fd(), &bytes, &[out_w.as_raw_fd(), err_w.as_raw_fd()])?;
    let (n, fds) = sys::recv_with_fds(sock_b.as_raw_fd(), &mut buf)?;
    out.sample(&format!("{tag}socket: plan datagram + 2 descriptors"), t.elapsed());
    drop(fds);

    // ---- launcher: from here to the exec is what `spawn_us` measures.
    let t = Instant::now();
    let req: Request = serde_json::from_slice(&buf[..n])?;
    let decode = t.elapsed();
    let Request::Spawn { plan, .. } = req else { anyhow::bail!("not a spawn request") };
    out.sample(&format!("{tag}launcher: JSON → plan"), decode);
    let netns = match pool {
        Some(p) => {
            // The launcher refills in idle time, between requests.
            let t = Instant::now();
            p.fill_one().map_err(|e| anyhow!("make a network namespace: {e}"))?;
            out.sample("launcher (idle): pool refill, unshare(CLONE_NEWNET) + setns back", t.elapsed());
            p.take()
        }
        None => None,
    };
    let (d1, d2) = (sys::open(c"/dev/null", libc::O_WRONLY)?, sys::open(c"/dev/null", libc::O_WRONLY)?);
    let t = Instant::now();
    let built = ctx.views.borrow().len();
    let mut prepared =
        steps::prepare(&plan, d1, d2, Vec::new(), None, &mut ctx.views.borrow_mut()).map_err(|e| anyhow!("{e}"))?;
    let prepare = t.elapsed();
    if ctx.views.borrow().len() != built {
        // The first spawn of the profile builds its shared view: once.
        out.info("launcher: building the profile's shared view (once), µs", prepare.as_micros());
    } else {
        out.sample(&format!("{tag}launcher: steps::prepare (opens, open_tree, mount ops)"), prepare);
    }
    let m = prepared.mounts.take().context("no mount view")?;
    let cgroup_v2 = prepared.cgroup_v2.take();
    drop(prepared);
    if first {
        count_mount_ops(out, &m);
    }
    // What `prepare` opened that we need again (its fields are private).
    let mut v1_tasks = Vec::new();
    for p in &plan.cgroup_v1_tasks {
        v1_tasks.push(sys::open(&sys::cstring(p)?, libc::O_WRONLY)?);
    }
    let argv_c: Vec<CString> = plan.argv.iter().map(|a| sys::cstring(a)).collect::<Result<_, _>>()?;
    let env_c: Vec<CString> = plan.env.iter().map(|a| sys::cstring(a)).collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env.push(std::ptr::null());
    let kit = Kit {
        v1_tasks,
        devnull: sys::open(c"/dev/null", libc::O_RDONLY)?,
        out_w,
        err_w,
        ns: ctx.ns,
        netns,
        mounts: &m,
        by_kind: pooled && replicable(&m),
        uid: ctx.uid,
        rules: &ctx.rules,
        bpf: &ctx.bpf,
        view_program: sys::cstring("/app/bench")?,
        argv,
        env,
    };
    let flags = namespaces::clone_flags(&ctx.ns, kit.netns.is_some());
    let t = Instant::now();
    let (rep_r, rep_w) = sys::pipe(0)?;
    let (ack_r, ack_w) = sys::pipe(0)?;
    let pipes = t.elapsed();
    let t0 = Instant::now();
    let (pid, pidfd) = match sys::clone3(flags, cgroup_v2.as_ref().map(|f| f.as_raw_fd())) {
        Err(e) => bail!("clone3: {e}"),
        Ok(Forked::Child) => child(&kit, t0, rep_w.as_raw_fd(), ack_r.as_raw_fd()),
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
    };
    let clone_ret = t0.elapsed();
    drop((rep_w, ack_r));
    drop(kit);
    let mut b = [0u8; REC * 8];
    let got = sys::read_full(rep_r.as_raw_fd(), &mut b)?;
    let rec: Vec<u64> =
        b.chunks_exact(8).map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
    if got != b.len() || rec[0] != 0 {
        let _ = sys::waitpid_blocking(pid);
        let step = (rec[0] >> 32) as usize;
        let errno = Errno((rec[0] & 0xffff_ffff) as i32);
        bail!(
            "the child failed at {} ({errno}); {got} of {} report bytes",
            CHILD_STEPS.get(step.wrapping_sub(1)).unwrap_or(&"?"),
            b.len()
        );
    }
    let t = Instant::now();
    let listener = sys::pidfd_getfd(pidfd.as_raw_fd(), rec[LISTENER] as RawFd)?;
    sys::write_all(ack_w.as_raw_fd(), b"k")?;
    let hand_over = t.elapsed();
    let mut pre = [0u8; 8];
    ensure!(sys::read_full(rep_r.as_raw_fd(), &mut pre)? == 8, "no pre-exec record");
    let pre_exec = Duration::from_nanos(u64::from_ne_bytes(pre));
    let mut e = [0u8; 8];
    let more = sys::read_full(rep_r.as_raw_fd(), &mut e)?;
    let exec_done = t0.elapsed();
    if more != 0 {
        let _ = sys::waitpid_blocking(pid);
        bail!("exec failed: {}", Errno(i32::from_ne_bytes([e[4], e[5], e[6], e[7]])));
    }
    let mut hello = [0u8; 2];
    let n = sys::read_full(out_r.as_raw_fd(), &mut hello)?;
    let running = t0.elapsed();
    ensure!(n == 2, "the program wrote {n} bytes");
    let st = sys::waitpid_blocking(pid)?;
    let reaped = t0.elapsed();
    ensure!(matches!(st, sys::WaitStatus::Exited(0)), "the program ended with {st:?}");
    drop((listener, pidfd));

    out.sample(&format!("{tag}launcher: clone3 returns in the launcher"), clone_ret);
    let mut prev = 0u64;
    for (k, name) in CHILD_STEPS.iter().enumerate() {
        let at = rec[1 + k];
        let name = match (pooled, k) {
            (false, 0) => "clone3 (with CLONE_NEWNET) → child running",
            (false, 6) => "network (nothing: made by clone3)",
            (false, 8) => "mounts (mounts::apply)",
            _ => name,
        };
        out.sample_ns(&format!("{tag}child: {name}"), at.saturating_sub(prev));
        prev = at;
    }
    if pooled && replicable(&m) {
        for (k, name) in MOUNT_KINDS.iter().enumerate() {
            out.sample_ns(&format!("child mounts: {name}"), rec[KINDS_AT + k]);
        }
    }
    let seccomp_done = Duration::from_nanos(prev);
    out.sample(&format!("{tag}launcher: listener pidfd_getfd + ack"), hand_over);
    out.sample(
        &format!("{tag}hand-over: report, pidfd_getfd, ack (seccomp loaded → ack read)"),
        pre_exec.saturating_sub(seccomp_done),
    );
    out.sample(&format!("{tag}execveat (→ the close-on-exec pipe closes)"), exec_done.saturating_sub(pre_exec));
    out.sample(&format!("{tag}exec'd → the program's first output"), running - exec_done);
    out.sample(&format!("{tag}program exit → reaped"), reaped - running);
    // As `spawn_us`: plan received → exec'd (the re-opening done here only
    // for the child's sake, and the idle-time pool refill, left out).
    let spawn = decode + prepare + pipes + exec_done;
    out.sample(&format!("{tag}total: JSON → plan … exec'd (as spawn_us)"), spawn);
    out.sample(&format!("{tag}total: clone3 → exec'd"), exec_done);
    Ok(())
}

/// What the child uses; everything opened and allocated before `clone3`.
struct Kit<'a> {
    v1_tasks: Vec<OwnedFd>,
    devnull: OwnedFd,
    out_w: OwnedFd,
    err_w: OwnedFd,
    ns: Namespaces,
    netns: Option<OwnedFd>,
    mounts: &'a mounts::Prepared,
    /// Run the mount operations one by one (timed by kind) rather than
    /// through `mounts::apply`.
    by_kind: bool,
    uid: u32,
    rules: &'a LandlockRules,
    bpf: &'a [u8],
    view_program: CString,
    argv: Vec<*const libc::c_char>,
    env: Vec<*const libc::c_char>,
}

/// The child: the launch sequence with a timestamp after each step, then
/// the record, the wait for the ack, and `execveat`. Never returns.
fn child(k: &Kit, t0: Instant, report: RawFd, ack: RawFd) -> ! {
    let mut rec = [0u64; REC];
    match child_steps(k, t0, &mut rec) {
        Ok((listener, program)) => {
            rec[LISTENER] = listener.as_raw_fd() as u64;
            let _ = sys::write_all(report, &encode(&rec));
            let mut b = [0u8; 1];
            if !matches!(sys::read_full(ack, &mut b), Ok(1)) {
                sys::exit_now(126);
            }
            // One more record: the instant just before execveat.
            let _ = sys::write_all(report, &(t0.elapsed().as_nanos() as u64).to_ne_bytes());
            let e = sys::execveat(program.as_raw_fd(), &k.argv, &k.env);
            let mut r = [0u8; 8];
            r[4..].copy_from_slice(&e.0.to_ne_bytes());
            let _ = sys::write_all(report, &r);
            sys::exit_now(127)
        }
        Err((step, e)) => {
            rec[0] = ((step as u64 + 1) << 32) | (e.0 as u32 as u64);
            let _ = sys::write_all(report, &encode(&rec));
            sys::exit_now(127)
        }
    }
}

fn encode(rec: &[u64; REC]) -> [u8; REC * 8] {
    let mut b = [0u8; REC * 8];
    for (i, v) in rec.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    b
}

type StepResult<T> = Result<T, (usize, Errno)>;

/// `steps::run` with checkpoints (the user namespace step is left out:
/// `default` has none).
fn child_steps(k: &Kit, t0: Instant, rec: &mut [u64; REC]) -> StepResult<(OwnedFd, OwnedFd)> {
    let ns_since = |t: Instant| t.elapsed().as_nanos() as u64;
    let mut step = 0usize;
    let mark = |rec: &mut [u64; REC], step: &mut usize| {
        rec[1 + *step] = ns_since(t0);
        *step += 1;
    };
    let at = |step: usize| move |e: Errno| (step, e);
    mark(rec, &mut step); // running
    for fd in &k.v1_tasks {
        sys::write_all(fd.as_raw_fd(), b"0").map_err(at(step))?;
    }
    mark(rec, &mut step);
    namespaces::cgroup(&k.ns).map_err(at(step))?;
    mark(rec, &mut step);
    sys::unblock_all_signals().and_then(|()| sys::reset_all_signals()).map_err(at(step))?;
    mark(rec, &mut step);
    sys::setsid().map_err(at(step))?;
    mark(rec, &mut step);
    namespaces::hostname(&k.ns, b"bench").map_err(at(step))?;
    mark(rec, &mut step);
    namespaces::network(&k.ns, k.netns.as_ref(), false).map_err(at(step))?;
    mark(rec, &mut step);
    mounts::enter(k.mounts).map_err(at(step))?;
    mark(rec, &mut step);
    if k.by_kind {
        let kinds = mounts_by_kind(k.mounts).map_err(at(step))?;
        for (i, ns) in kinds.iter().enumerate() {
            rec[KINDS_AT + i] = *ns;
        }
    } else {
        mounts::apply(k.mounts).map_err(at(step))?;
    }
    mark(rec, &mut step);
    sys::dup2(k.devnull.as_raw_fd(), 0)
        .and_then(|()| sys::dup2(k.out_w.as_raw_fd(), 1))
        .and_then(|()| sys::dup2(k.err_w.as_raw_fd(), 2))
        .map_err(at(step))?;
    mark(rec, &mut step);
    sys::setrlimit(libc::RLIMIT_NOFILE, 1024, 1024)
        .and_then(|()| sys::setrlimit(libc::RLIMIT_CORE, 0, 0))
        .map_err(at(step))?;
    mark(rec, &mut step);
    caps::ensure_bounding_dropped().map_err(at(step))?;
    mark(rec, &mut step);
    sys::setgroups_empty()
        .and_then(|()| sys::setresgid(k.uid))
        .and_then(|()| sys::setresuid(k.uid))
        .map_err(at(step))?;
    mark(rec, &mut step);
    caps::clear_all().map_err(at(step))?;
    mark(rec, &mut step);
    sys::set_no_new_privs().map_err(at(step))?;
    mark(rec, &mut step);
    landlock::restrict(k.rules).map_err(at(step))?;
    mark(rec, &mut step);
    sys::close_range_cloexec(3).and_then(|()| sys::chdir(c"/")).map_err(at(step))?;
    let program = sys::open(&k.view_program, libc::O_PATH).map_err(at(step))?;
    mark(rec, &mut step);
    let listener = seccomp::load(k.bpf).map_err(at(step))?;
    mark(rec, &mut step);
    Ok((listener, program))
}

/// `mounts::apply`, one operation at a time, with the time of each kind
/// summed (nanoseconds, in [`MOUNT_KINDS`] order).
#[allow(unreachable_patterns)]
fn mounts_by_kind(p: &mounts::Prepared) -> Result<[u64; MOUNT_KINDS.len()], Errno> {
    let mut kinds = [0u64; MOUNT_KINDS.len()];
    sys::set_umask(0o022);
    for (op, optional) in &p.ops {
        let t = Instant::now();
        let (kind, r) = match op {
            Op::Mkdir(d) => (5, sys::mkdir(d, 0o755)),
            Op::Touch(f) => (5, sys::touch(f)),
            Op::Symlink { target, path } => (5, sys::symlink(target, path)),
            Op::Bind { source, target } => {
                (1, sys::mount(Some(source), target, None, libc::MS_BIND | libc::MS_REC, None))
            }
            Op::Attach { tree, target } => (0, sys::move_mount(tree.as_raw_fd(), target)),
            Op::Tmpfs { target, options, flags } => {
                (3, sys::mount(Some(c"tmpfs"), target, Some(c"tmpfs"), *flags, Some(options)))
            }
            Op::Proc(target) => (
                4,
                sys::mount(
                    Some(c"proc"),
                    target,
                    Some(c"proc"),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                ),
            ),
            Op::SetAttr { target, attrs, recursive } => (2, sys::mount_setattr(target, *attrs, *recursive)),
            Op::Write { path, value } => (5, sys::write_file(path, value)),
            _ => return Err(Errno(libc::ENOTSUP)), // ruled out by `replicable`
        };
        kinds[kind] += t.elapsed().as_nanos() as u64;
        if let (Err(e), false) = (r, optional) {
            return Err(e);
        }
    }
    Ok(kinds)
}

/// Whether [`mounts_by_kind`] knows every operation (a kind added to
/// `mounts::Op` later is run through `mounts::apply` instead, untimed by kind).
#[allow(unreachable_patterns)]
fn replicable(p: &mounts::Prepared) -> bool {
    p.ops.iter().all(|(op, _)| {
        matches!(
            op,
            Op::Mkdir(_)
                | Op::Touch(_)
                | Op::Symlink { .. }
                | Op::Bind { .. }
                | Op::Attach { .. }
                | Op::Tmpfs { .. }
                | Op::Proc(_)
                | Op::SetAttr { .. }
                | Op::Write { .. }
        )
    })
}

fn count_mount_ops(out: &Out, m: &mounts::Prepared) {
    let (mut bind, mut attach, mut setattr, mut tmpfs, mut proc_, mut fsops) = (0, 0, 0, 0, 0, 0);
    for (op, _) in &m.ops {
        match op {
            Op::Bind { .. } => bind += 1,
            Op::Attach { .. } => attach += 1,
            Op::SetAttr { .. } => setattr += 1,
            Op::Tmpfs { .. } => tmpfs += 1,
            Op::Proc(_) => proc_ += 1,
            _ => fsops += 1,
        }
    }
    // + setns and unshare(CLONE_NEWNS) in enter.
    let mount_calls = bind + attach + setattr + tmpfs + proc_;
    out.info(
        "mount operations per spawn",
        format!(
            "setns + unshare(CLONE_NEWNS) into a copy of the profile's view, then {mount_calls} mount-table syscalls \
             ({attach} move_mount, {bind} bind, {setattr} mount_setattr, {tmpfs} tmpfs, {proc_} proc) and {fsops} \
             mkdir/touch/sysctl writes"
        ),
    );
    if !m.missing.is_empty() {
        out.info("profile paths missing on this host (left out of the view)", m.missing.join(" "));
    }
}

/// The daemon's `ensure_data_dir`.
fn ensure_data_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Loading the filter alone, in a fresh child (no_new_privs set first, as
/// in the launch sequence): Solo's filter (a binary tree) against the same
/// allow-list as a linear list.
fn seccomp_loads(out: &Out, n: usize, tree: &[u8], p: &solo::profiles::Profile) -> anyhow::Result<()> {
    let linear = match seccomp::compile_as(&p.allowed_syscalls(), &p.network.socket_families, false) {
        Ok(t) => t,
        Err(e) => {
            out.info("seccomp linear list", format!("not available: {e}"));
            return Ok(());
        }
    };
    out.info("seccomp BPF instructions, linear list (SCMP_FLTATR_CTL_OPTIMIZE=1)", linear.len() / 8);
    let cases = [("Solo's filter (binary tree)", tree), ("the same allow-list as a linear list", &linear[..])];
    for i in 0..n {
        for (name, bpf) in cases {
            let (r, w) = sys::pipe(0)?;
            let pid = match sys::clone3(0, None) {
                Err(e) => bail!("clone3: {e}"),
                Ok(Forked::Child) => {
                    let _ = sys::set_no_new_privs();
                    let t = Instant::now();
                    let ok = seccomp::load(bpf).is_ok();
                    let ns = if ok { t.elapsed().as_nanos() as u64 } else { u64::MAX };
                    let _ = sys::write_all(w.as_raw_fd(), &ns.to_ne_bytes());
                    sys::exit_now(0)
                }
                Ok(Forked::Parent { pid, .. }) => pid,
            };
            drop(w);
            let mut b = [0u8; 8];
            let got = sys::read_full(r.as_raw_fd(), &mut b)?;
            let _ = sys::waitpid_blocking(pid)?;
            let ns = u64::from_ne_bytes(b);
            ensure!(got == 8 && ns != u64::MAX, "seccomp load of {name} failed");
            if i > 0 {
                out.sample_ns(&format!("seccomp load + listener: {name}"), ns);
            }
        }
    }
    Ok(())
}

/// `execveat` of the same program from a bare fork of this process (no
/// sandbox), and after only no_new_privs and Solo's filter: the floor of
/// the exec step (most of it is tearing down the forked address space).
fn exec_matrix(out: &Out, n: usize, program: &Path, bpf: &[u8]) -> anyhow::Result<()> {
    let prog = sys::open(&sys::cstring(&program.display().to_string())?, libc::O_PATH)?;
    let argv_c = sys::cstring("bench")?;
    let argv = [argv_c.as_ptr(), std::ptr::null()];
    let env = [std::ptr::null()];
    for i in 0..n {
        for (name, filter) in [("bare fork", false), ("fork + no_new_privs + Solo's filter", true)] {
            let (rep_r, rep_w) = sys::pipe(0)?;
            let (out_r, out_w) = sys::pipe(0)?;
            let t0 = Instant::now();
            let pid = match sys::clone3(0, None) {
                Err(e) => bail!("clone3: {e}"),
                Ok(Forked::Child) => {
                    let _ = sys::dup2(out_w.as_raw_fd(), 1);
                    if filter {
                        let _ = sys::set_no_new_privs();
                        if seccomp::load(bpf).is_err() {
                            sys::exit_now(125);
                        }
                    }
                    let _ = sys::write_all(rep_w.as_raw_fd(), &(t0.elapsed().as_nanos() as u64).to_ne_bytes());
                    let _ = sys::execveat(prog.as_raw_fd(), &argv, &env);
                    sys::exit_now(127)
                }
                Ok(Forked::Parent { pid, .. }) => pid,
            };
            drop((rep_w, out_w));
            let mut b = [0u8; 8];
            let got = sys::read_full(rep_r.as_raw_fd(), &mut b)?;
            let mut e = [0u8; 8];
            let more = sys::read_full(rep_r.as_raw_fd(), &mut e)?;
            let exec_done = t0.elapsed();
            let mut hello = [0u8; 2];
            let said = sys::read_full(out_r.as_raw_fd(), &mut hello)?;
            let st = sys::waitpid_blocking(pid)?;
            ensure!(
                got == 8 && more == 0 && said == 2 && matches!(st, sys::WaitStatus::Exited(0)),
                "exec from a {name}: {st:?}"
            );
            if i > 0 {
                let pre = Duration::from_nanos(u64::from_ne_bytes(b));
                out.sample(&format!("execveat from a {name}"), exec_done.saturating_sub(pre));
            }
        }
    }
    Ok(())
}

/// Bare `clone3` with each namespace flag alone and in Solo's
/// combinations; the child writes one timestamp and exits at once.
fn clone_matrix(out: &Out, n: usize) -> anyhow::Result<()> {
    let cases: [(&str, libc::c_int); 8] = [
        ("fork (no namespace)", 0),
        ("+ mount ns (copy of the mount table)", libc::CLONE_NEWNS),
        ("+ pid ns", libc::CLONE_NEWPID),
        ("+ ipc ns", libc::CLONE_NEWIPC),
        ("+ uts ns", libc::CLONE_NEWUTS),
        ("+ net ns", libc::CLONE_NEWNET),
        ("mount+pid+ipc+uts (Solo, netns from the pool)", {
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS
        }),
        ("mount+pid+ipc+uts+net (Solo, pool empty)", {
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNET
        }),
    ];
    for i in 0..n {
        for (name, flags) in cases {
            let (r, w) = sys::pipe(0)?;
            let t0 = Instant::now();
            let pid = match sys::clone3(flags as u64, None) {
                Err(e) => bail!("clone3 {name}: {e}"),
                Ok(Forked::Child) => {
                    let ns = t0.elapsed().as_nanos() as u64;
                    let _ = sys::write_all(w.as_raw_fd(), &ns.to_ne_bytes());
                    sys::exit_now(0)
                }
                Ok(Forked::Parent { pid, .. }) => pid,
            };
            let ret = t0.elapsed();
            drop(w);
            let mut b = [0u8; 8];
            let got = sys::read_full(r.as_raw_fd(), &mut b)?;
            let st = sys::waitpid_blocking(pid)?;
            let reaped = t0.elapsed();
            ensure!(got == 8 && matches!(st, sys::WaitStatus::Exited(0)), "clone3 {name}: child {st:?}");
            if i == 0 {
                continue; // warm-up round
            }
            let _ = ret;
            out.sample_ns(&format!("clone3: {name}: → child running"), u64::from_ne_bytes(b));
            out.sample(&format!("clone3: {name}: → child exited and reaped"), reaped);
        }
    }
    Ok(())
}
