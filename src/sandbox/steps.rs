//! The launch sequence, in the order the child runs it.
//!
//! [`prepare`] runs in the launcher before `clone3` and does everything that
//! allocates or resolves a path. [`apply`] runs in the new child and makes
//! only raw syscalls on what was prepared; it returns only on failure, with
//! the step and errno, which the child writes to the close-on-exec error
//! pipe so the daemon can say exactly which layer refused.
//!
//! The order is the security argument; each step carries its *why* in
//! [`Step::why`], and `docs/sandbox.md` lists the same steps (a test keeps
//! the two in step).

use super::namespaces::{self, UserMaps};
use super::plan::{LandlockRules, LaunchPlan, Namespaces, MAX_PASSED_FDS};
use super::sys::{self, Errno};
use super::{caps, mounts};
use std::cell::Cell;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// One launch step. The discriminant travels over the error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Done by the launcher before `clone3` (opening the program, cgroup files).
    Prepare = 1,
    /// `clone3(CLONE_INTO_CGROUP | CLONE_PIDFD | CLONE_NEW*)` itself.
    Clone = 2,
    JoinCgroups = 3,
    CgroupNamespace = 15,
    ResetSignals = 4,
    NewSession = 5,
    Hostname = 16,
    Network = 17,
    EnterView = 19,
    Mounts = 18,
    Stdio = 6,
    PassFds = 25,
    Rlimits = 7,
    DropBounding = 20,
    DropGroups = 8,
    SetGid = 9,
    SetUid = 10,
    UserNamespace = 21,
    DropCaps = 22,
    NoNewPrivs = 11,
    Landlock = 23,
    CloseFds = 12,
    Chdir = 13,
    Seccomp = 24,
    Exec = 14,
}

impl Step {
    /// Every step, in the order the code runs them.
    pub const ORDER: [Step; 25] = [
        Step::Prepare,
        Step::Clone,
        Step::JoinCgroups,
        Step::CgroupNamespace,
        Step::ResetSignals,
        Step::NewSession,
        Step::Hostname,
        Step::Network,
        Step::EnterView,
        Step::Mounts,
        Step::Stdio,
        Step::PassFds,
        Step::Rlimits,
        Step::DropBounding,
        Step::DropGroups,
        Step::SetGid,
        Step::SetUid,
        Step::UserNamespace,
        Step::DropCaps,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::CloseFds,
        Step::Chdir,
        Step::Seccomp,
        Step::Exec,
    ];

    pub fn from_u32(v: u32) -> Option<Step> {
        Step::ORDER.iter().copied().find(|s| *s as u32 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Clone => "clone",
            Step::JoinCgroups => "join-cgroups",
            Step::CgroupNamespace => "cgroup-namespace",
            Step::ResetSignals => "reset-signals",
            Step::NewSession => "new-session",
            Step::Hostname => "hostname",
            Step::Network => "network",
            Step::EnterView => "enter-view",
            Step::Mounts => "mounts",
            Step::Stdio => "stdio",
            Step::PassFds => "pass-fds",
            Step::Rlimits => "rlimits",
            Step::DropBounding => "drop-bounding",
            Step::DropGroups => "drop-groups",
            Step::SetGid => "set-gid",
            Step::SetUid => "set-uid",
            Step::UserNamespace => "user-namespace",
            Step::DropCaps => "drop-caps",
            Step::NoNewPrivs => "no-new-privs",
            Step::Landlock => "landlock",
            Step::CloseFds => "close-fds",
            Step::Chdir => "chdir",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
        }
    }

    /// Why the step is there, and why at this position.
    pub fn why(self) -> &'static str {
        match self {
            Step::Prepare => "open the program and cgroup files as root before forking, so the child only makes raw syscalls on ready descriptors",
            Step::Clone => "clone3 with CLONE_INTO_CGROUP places the child in its v2 cgroup atomically (no window outside its limits), CLONE_PIDFD gives a race-free handle, and the new mount, pid, IPC, UTS and network namespaces exist from the first instruction; CLONE_FILES with the child's first act close_range(CLOSE_RANGE_UNSHARE) copies only the descriptors the launch uses, not the launcher's vault",
            Step::JoinCgroups => "on hybrid hosts join each v1 hierarchy (memory, cpu, pids) through its tasks file before anything else runs, so every later byte and fork is accounted and limited",
            Step::CgroupNamespace => "unshare the cgroup namespace only after every cgroup join, so its root is the instance's own cgroup in every hierarchy and the host's layout stays hidden",
            Step::ResetSignals => "clear the blocked-signal mask and reset every signal to its default (ignored signals survive exec), so the service sees default signal behaviour",
            Step::NewSession => "setsid: a new session and process group, so signals aimed at the supervisor's group or terminal never reach the service",
            Step::Hostname => "the service's id as hostname, in its own UTS namespace: the host's name is not revealed and cannot be changed",
            Step::Network => "enter the private network namespace the launcher made ahead (unless clone made one), and in network mode loopback bring lo up; in mode none it has no interface up at all",
            Step::EnterView => "enter a private copy of the profile's view: setns into the mount namespace the launcher built once for the profile (a fresh tmpfs root with the system dirs read-only and a minimal /dev, pivot_root'ed into, the host's tree detached and unreachable, / read-only), then unshare(CLONE_NEWNS) so nothing this instance mounts is seen by another",
            Step::Mounts => "the instance's own mounts in its copy: the artifact read-only, the data dir read-write (both cloned from the host by descriptor), a private /tmp with a size cap, /proc of its own pid namespace with host-revealing files masked. Nothing propagates back to the host or to another instance",
            Step::Stdio => "stdin from /dev/null, stdout/stderr to the supervisor's log pipes: the only descriptors 0-2 the service gets",
            Step::PassFds => "the granted descriptors (listening sockets, connections, directories) moved to fds 3, 4, ... in the order of LISTEN_FDNAMES, close-on-exec cleared, with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID (its own pid, as it sees it) in the environment: systemd's socket activation, so existing software runs unmodified. The launcher keeps fds 3 to 66 filled with placeholders from its start, so nothing the child still needs can sit where a grant goes (checked here too)",
            Step::Rlimits => "set RLIMIT_NOFILE and RLIMIT_CORE while still root, so hard limits are set before the uid that could only lower them takes over",
            Step::DropBounding => "check that the bounding, ambient and inheritable capability sets are empty and the securebits locked (the launcher emptied its own once at start; clone3 inherits them), and empty them here while still root if not: no exec can ever bring a capability back",
            Step::DropGroups => "setgroups([]) drops root's supplementary groups while we still may",
            Step::SetGid => "setresgid to the service gid, before the uid (after setuid we could no longer change gid)",
            Step::SetUid => "setresuid to the service's own unprivileged uid: from here on it holds no capability",
            Step::UserNamespace => "where the profile asks: a user namespace mapping only the service's uid and gid to themselves, so even a capability regained inside owns nothing of the host",
            Step::DropCaps => "empty the effective, permitted and inheritable sets (again after a user namespace, which grants a full set inside it) and check that nothing is left",
            Step::NoNewPrivs => "no_new_privs: setuid/setgid bits and file capabilities can never raise privileges again",
            Step::Landlock => "Landlock on the view's own paths: defence in depth beneath the mounts, plus TCP bind/connect and signal/abstract-socket scoping where the kernel has them; the enforcement the kernel reports is recorded",
            Step::CloseFds => "close_range(3 + n.., CLOEXEC), n the number of granted descriptors: no descriptor of the launcher reaches the service (CVE-2024-21626)",
            Step::Chdir => "a working directory inside the service's view, never the launcher's",
            Step::Seccomp => "the seccomp allow-list, loaded last so no earlier step needs a syscall the service may not make; its listener goes to the supervisor, which sees and records every denial",
            Step::Exec => "execveat by descriptor runs exactly the file that was opened, even if the path changes (CVE-2019-5736 class)",
        }
    }
}

/// A failed step: which one and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepError {
    pub step: Step,
    pub errno: Errno,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {}: {}", self.step.name(), self.errno)
    }
}

impl StepError {
    /// Eight bytes: step and errno, native-endian (same machine).
    pub fn encode(self) -> [u8; 8] {
        record(self.step as u32, self.errno.0)
    }
    pub fn decode(b: &[u8; 8]) -> StepError {
        let (step, errno) = parse_record(b);
        StepError { step: Step::from_u32(step).unwrap_or(Step::Exec), errno: Errno(errno) }
    }
}

/// One 8-byte record of the report pipe: a code (a [`Step`] that failed,
/// or one of the `REPORT_*` below) and a value (an errno, or the report's).
pub fn record(code: u32, value: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&code.to_ne_bytes());
    b[4..].copy_from_slice(&value.to_ne_bytes());
    b
}

/// The code and value of a [`record`].
pub fn parse_record(b: &[u8; 8]) -> (u32, i32) {
    (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), i32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
}

/// Records the child sends the launcher besides a failure: codes above
/// every [`Step`] discriminant.
pub const REPORT_LANDLOCK: u32 = 200;
/// The child's seccomp listener descriptor number; the launcher copies it
/// with `pidfd_getfd` and answers one byte on the ack pipe.
pub const REPORT_LISTENER: u32 = 201;
/// The child's first record: its descriptor table is its own (it was
/// cloned sharing the launcher's, `CLONE_FILES`), so the launcher may
/// close its copies of what the child uses.
pub const REPORT_OWN_FDS: u32 = 202;

/// The pipes between the child and the launcher, both close-on-exec.
pub struct Channel {
    /// Child → launcher: 8-byte records (a failure, or a report).
    pub report: std::os::fd::RawFd,
    /// Launcher → child: one byte once the listener is copied.
    pub ack: std::os::fd::RawFd,
}

/// The first descriptor number a passed descriptor gets (`SD_LISTEN_FDS_START`).
pub const FIRST_PASSED_FD: RawFd = 3;

/// The descriptor numbers passed descriptors may get: the launcher fills
/// the free ones with placeholders at start ([`sys::reserve_fds`]), so
/// nothing it opens later lands there.
pub const PASSED_FDS: std::ops::Range<RawFd> = FIRST_PASSED_FD..FIRST_PASSED_FD + MAX_PASSED_FDS as RawFd;

/// `LISTEN_PID=`, the start of the entry the child completes with its pid.
const LISTEN_PID: &[u8] = b"LISTEN_PID=";
/// The preallocated `LISTEN_PID=` entry: the prefix, room for a pid's
/// digits (at most 10), and the NUL.
const LISTEN_PID_LEN: usize = LISTEN_PID.len() + 10 + 1;

/// Environment names of socket activation: the launcher sets them (only
/// with passed descriptors) and drops them from the plan's `env`, so a
/// deployer cannot fake them.
pub const LISTEN_ENV: &[&str] =
    &["LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "LISTEN_PIDFDID", "SOLO_FDNAMES", "SOLO_FDS_START"];

/// What the child needs, ready to use without allocating.
pub struct Prepared {
    program: OwnedFd,
    v1_tasks: Vec<OwnedFd>,
    devnull: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// Descriptors for fds 3, 4, … (`LISTEN_FDS`), in order.
    passed: Vec<OwnedFd>,
    /// The `LISTEN_PID=` entry of `env_ptrs`, completed in the child with
    /// the pid it sees for itself (no allocation after `clone3`; the child
    /// writes its own copy of this memory).
    listen_pid: Option<Box<[Cell<u8>]>>,
    // Owned strings; the pointer arrays below point into them.
    _argv: Vec<CString>,
    _env: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    uid: u32,
    gid: u32,
    rlimits: Vec<super::plan::Rlimit>,
    namespaces: Namespaces,
    hostname: Vec<u8>,
    loopback: bool,
    /// A network namespace made in advance, entered instead of a new one.
    netns: Option<OwnedFd>,
    user_maps: UserMaps,
    /// The filesystem view's operations (None: keep the launcher's view).
    pub mounts: Option<mounts::Prepared>,
    /// The program's path inside the view, opened after `pivot_root`.
    view_program: Option<CString>,
    landlock: Option<LandlockRules>,
    seccomp: Option<Vec<u8>>,
    /// The v2 cgroup directory for `CLONE_INTO_CGROUP`.
    pub cgroup_v2: Option<OwnedFd>,
    /// `clone3` namespace flags.
    pub clone_flags: u64,
}

impl Prepared {
    /// The highest descriptor number the child uses. A child cloned with
    /// `CLONE_FILES` keeps only the descriptors up to this one (and the
    /// channel's) in a table of its own: see [`sys::unshare_fds_below`].
    pub fn highest_fd(&self) -> RawFd {
        let own = [&self.program, &self.devnull, &self.stdout, &self.stderr]
            .into_iter()
            .chain(&self.v1_tasks)
            .chain(&self.passed)
            .chain(&self.netns)
            .map(AsRawFd::as_raw_fd);
        let view = self.mounts.as_ref().map(mounts::Prepared::highest_fd);
        own.chain(view).max().unwrap_or(2)
    }
}

fn prep<T>(r: Result<T, Errno>) -> Result<T, StepError> {
    r.map_err(|errno| StepError { step: Step::Prepare, errno })
}

/// Opens and allocates everything `apply` will use. Runs in the launcher.
/// `passed` are the descriptors for [`LaunchPlan::fds`], in order.
pub fn prepare(
    plan: &LaunchPlan,
    stdout: OwnedFd,
    stderr: OwnedFd,
    passed: Vec<OwnedFd>,
    netns: Option<OwnedFd>,
    views: &mut mounts::Views,
) -> Result<Prepared, StepError> {
    // The launcher reports why (LaunchPlan::check) before it gets here.
    if plan.check().is_err() {
        return Err(StepError { step: Step::Prepare, errno: Errno(libc::EINVAL) });
    }
    if passed.len() != plan.fds.len() {
        return Err(StepError { step: Step::Prepare, errno: Errno(libc::EBADF) });
    }
    // For the child's reset-signals: which dispositions are not the
    // default (read once per process).
    sys::note_signal_dispositions();
    let program = prep(sys::open(&prep(sys::cstring(&plan.program))?, libc::O_PATH))?;
    let cgroup_v2 = match &plan.cgroup_v2 {
        Some(d) => Some(prep(sys::open(&prep(sys::cstring(d))?, libc::O_PATH | libc::O_DIRECTORY))?),
        None => None,
    };
    let mut v1_tasks = Vec::with_capacity(plan.cgroup_v1_tasks.len());
    for p in &plan.cgroup_v1_tasks {
        v1_tasks.push(prep(sys::open(&prep(sys::cstring(p))?, libc::O_WRONLY))?);
    }
    let devnull = prep(sys::open(c"/dev/null", libc::O_RDONLY))?;
    let argv: Vec<CString> = prep(plan.argv.iter().map(|a| sys::cstring(a)).collect())?;
    let mut env: Vec<CString> = prep(
        plan.env
            .iter()
            .filter(|kv| !LISTEN_ENV.iter().any(|k| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == *k))
            .map(|a| sys::cstring(a))
            .collect(),
    )?;
    // Announced by socket activation: all, or the first `listen_fds`; the
    // rest are named in SOLO_FDNAMES from SOLO_FDS_START.
    let announced = plan.listen_fds.map_or(passed.len(), |k| (k as usize).min(passed.len()));
    if announced < passed.len() {
        env.push(prep(sys::cstring(&format!("SOLO_FDS_START={}", 3 + announced)))?);
        env.push(prep(sys::cstring(&format!("SOLO_FDNAMES={}", plan.fds[announced..].join(":"))))?);
    }
    let listen_pid = if announced == 0 {
        None
    } else {
        env.push(prep(sys::cstring(&format!("LISTEN_FDS={announced}")))?);
        env.push(prep(sys::cstring(&format!("LISTEN_FDNAMES={}", plan.fds[..announced].join(":"))))?);
        let buf: Box<[Cell<u8>]> =
            (0..LISTEN_PID_LEN).map(|i| Cell::new(LISTEN_PID.get(i).copied().unwrap_or(0))).collect();
        Some(buf)
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    if let Some(buf) = &listen_pid {
        // Completed by the child (pass_fds) before exec reads it.
        env_ptrs.push(buf.as_ptr().cast::<libc::c_char>());
    }
    env_ptrs.push(std::ptr::null());
    let c = &plan.confine;
    let mounts = match &c.fs {
        Some(v) => {
            let granted = prep(mounts::open_binds(&v.binds))?;
            Some(views.prepare(v, granted).map_err(|errno| StepError { step: Step::EnterView, errno })?)
        }
        None => None,
    };
    if let (Some(v), Some(m)) = (&c.fs, &mounts) {
        // A kernel without vm.memfd_noexec (before 6.3) cannot stop a
        // service from executing code it wrote to a memfd: refused here
        // when the profile says so, else recorded as a degrade.
        if v.memfd_noexec_required && m.memfd_noexec == Some(false) {
            return Err(StepError { step: Step::Mounts, errno: Errno(libc::EOPNOTSUPP) });
        }
    }
    if let Some(l) = &c.landlock {
        // Refused before anything is started, naming the layer.
        if l.refuse_below_min && super::landlock::kernel_abi() < l.min_abi as i32 {
            return Err(StepError { step: Step::Landlock, errno: Errno(libc::EOPNOTSUPP) });
        }
    }
    Ok(Prepared {
        program,
        v1_tasks,
        devnull,
        stdout,
        stderr,
        passed,
        listen_pid,
        _argv: argv,
        _env: env,
        argv_ptrs,
        env_ptrs,
        cwd: prep(sys::cstring(&plan.cwd))?,
        uid: plan.uid,
        gid: plan.gid,
        rlimits: plan.rlimits.clone(),
        namespaces: c.namespaces,
        hostname: c.hostname.as_bytes().to_vec(),
        loopback: c.loopback,
        user_maps: prep(UserMaps::new(plan.uid, plan.gid))?,
        clone_flags: namespaces::clone_flags(&c.namespaces, netns.is_some()),
        netns: if c.namespaces.net { netns } else { None },
        view_program: match &c.fs {
            Some(v) => Some(prep(sys::cstring(&v.program))?),
            None => None,
        },
        mounts,
        landlock: c.landlock.as_ref().map(super::landlock::prune),
        seccomp: c.seccomp.as_ref().map(|s| s.bpf.clone()),
        cgroup_v2,
    })
}

fn at(step: Step, r: Result<(), Errno>) -> Result<(), StepError> {
    r.map_err(|errno| StepError { step, errno })
}

/// The launch sequence. Runs in the freshly cloned child; on success it
/// does not return (the process becomes the service).
pub fn apply(p: &Prepared, ch: &Channel) -> StepError {
    match run(p, ch) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// The order is the security argument; see [`Step::why`] for each line.
fn run(p: &Prepared, ch: &Channel) -> Result<std::convert::Infallible, StepError> {
    let ns = &p.namespaces;
    join_cgroups(p)?;
    at(Step::CgroupNamespace, namespaces::cgroup(ns))?;
    at(Step::ResetSignals, sys::unblock_all_signals().and_then(|()| sys::reset_all_signals()))?;
    at(Step::NewSession, sys::setsid())?;
    at(Step::Hostname, namespaces::hostname(ns, &p.hostname))?;
    at(Step::Network, namespaces::network(ns, p.netns.as_ref(), p.loopback))?;
    if let Some(m) = &p.mounts {
        at(Step::EnterView, mounts::enter(m))?;
        at(Step::Mounts, mounts::apply(m))?;
    }
    stdio(p)?;
    at(Step::PassFds, pass_fds(p, ch))?;
    rlimits(p)?;
    at(Step::DropBounding, caps::ensure_bounding_dropped())?;
    at(Step::DropGroups, sys::setgroups_empty())?;
    at(Step::SetGid, sys::setresgid(p.gid))?;
    at(Step::SetUid, sys::setresuid(p.uid))?;
    at(Step::UserNamespace, namespaces::user(ns, &p.user_maps))?;
    at(Step::DropCaps, caps::clear_all())?;
    at(Step::NoNewPrivs, sys::set_no_new_privs())?;
    landlock(p, ch)?;
    at(Step::CloseFds, sys::close_range_cloexec((FIRST_PASSED_FD as usize + p.passed.len()) as u32))?;
    at(Step::Chdir, sys::chdir(&p.cwd))?;
    // Inside the view the program is opened where the view shows it (the
    // same file, bound read-only); Landlock allows execution only there.
    let view_program = match &p.view_program {
        Some(path) => Some(sys::open(path, libc::O_PATH).map_err(|errno| StepError { step: Step::Exec, errno })?),
        None => None,
    };
    let program = view_program.as_ref().unwrap_or(&p.program);
    seccomp(p, ch)?;
    Err(StepError { step: Step::Exec, errno: sys::execveat(program.as_raw_fd(), &p.argv_ptrs, &p.env_ptrs) })
}

fn join_cgroups(p: &Prepared) -> Result<(), StepError> {
    for fd in &p.v1_tasks {
        // "0" means the writing process itself.
        at(Step::JoinCgroups, sys::write_all(fd.as_raw_fd(), b"0"))?;
    }
    Ok(())
}

fn stdio(p: &Prepared) -> Result<(), StepError> {
    at(Step::Stdio, sys::dup2(p.devnull.as_raw_fd(), 0))?;
    at(Step::Stdio, sys::dup2(p.stdout.as_raw_fd(), 1))?;
    at(Step::Stdio, sys::dup2(p.stderr.as_raw_fd(), 2))
}

/// Places the passed descriptors at 3, 4, … (`dup2` clears close-on-exec)
/// and completes `LISTEN_PID=`. Refuses (EBADF) rather than overwrite a
/// descriptor the child still needs: the launcher's placeholders keep
/// every such descriptor above [`PASSED_FDS`], and this checks it.
fn pass_fds(p: &Prepared, ch: &Channel) -> Result<(), Errno> {
    let n = p.passed.len();
    if n == 0 {
        return Ok(());
    }
    let end = FIRST_PASSED_FD + n as RawFd;
    let needed = [p.program.as_raw_fd(), ch.report, ch.ack];
    if needed.iter().copied().chain(p.passed.iter().map(AsRawFd::as_raw_fd)).any(|fd| fd < end) {
        return Err(Errno(libc::EBADF));
    }
    for (i, fd) in p.passed.iter().enumerate() {
        sys::dup2(fd.as_raw_fd(), FIRST_PASSED_FD + i as RawFd)?;
    }
    if let Some(buf) = &p.listen_pid {
        write_listen_pid(buf, sys::getpid());
    }
    Ok(())
}

/// Writes `pid` in decimal after the `LISTEN_PID=` prefix of `buf`, then
/// a NUL. No allocation (runs in the child).
fn write_listen_pid(buf: &[Cell<u8>], pid: libc::pid_t) {
    let mut digits = [0u8; 10];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        if let Some(c) = buf.get(LISTEN_PID.len() + i) {
            c.set(*d);
        }
    }
    if let Some(c) = buf.get(LISTEN_PID.len() + len) {
        c.set(0);
    }
}

fn rlimits(p: &Prepared) -> Result<(), StepError> {
    for l in &p.rlimits {
        at(Step::Rlimits, sys::setrlimit(l.resource, l.soft, l.hard))?;
    }
    Ok(())
}

fn report(ch: &Channel, code: u32, value: i32) -> Result<(), Errno> {
    sys::write_all(ch.report, &record(code, value))
}

fn landlock(p: &Prepared, ch: &Channel) -> Result<(), StepError> {
    let Some(rules) = &p.landlock else { return Ok(()) };
    let outcome = super::landlock::restrict(rules).map_err(|errno| StepError { step: Step::Landlock, errno })?;
    at(Step::Landlock, report(ch, REPORT_LANDLOCK, outcome as i32))
}

fn seccomp(p: &Prepared, ch: &Channel) -> Result<(), StepError> {
    let Some(bpf) = &p.seccomp else { return Ok(()) };
    let listener = super::seccomp::load(bpf).map_err(|errno| StepError { step: Step::Seccomp, errno })?;
    // From here on only the filter's ALWAYS syscalls are sure to pass:
    // write the descriptor number, wait for the copy, exec.
    at(Step::Seccomp, report(ch, REPORT_LISTENER, listener.as_raw_fd()))?;
    let mut b = [0u8; 1];
    match sys::read_full(ch.ack, &mut b) {
        Ok(1) => Ok(()),
        Ok(_) => Err(StepError { step: Step::Seccomp, errno: Errno(libc::EPIPE) }),
        Err(errno) => Err(StepError { step: Step::Seccomp, errno }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_codes_round_trip() {
        for s in Step::ORDER {
            let e = StepError { step: s, errno: Errno(libc::EPERM) };
            assert_eq!(StepError::decode(&e.encode()), e);
        }
    }

    #[test]
    fn listen_pid_is_written_in_place() {
        let buf: Vec<Cell<u8>> =
            (0..LISTEN_PID_LEN).map(|i| Cell::new(LISTEN_PID.get(i).copied().unwrap_or(0))).collect();
        let text = |b: &[Cell<u8>]| {
            let bytes: Vec<u8> = b.iter().map(Cell::get).take_while(|&c| c != 0).collect();
            String::from_utf8(bytes).expect("ascii")
        };
        write_listen_pid(&buf, 4_194_304);
        assert_eq!(text(&buf), "LISTEN_PID=4194304");
        write_listen_pid(&buf, 1);
        assert_eq!(text(&buf), "LISTEN_PID=1");
        write_listen_pid(&buf, i32::MAX);
        assert_eq!(text(&buf), "LISTEN_PID=2147483647");
        assert_eq!(buf.last().map(Cell::get), Some(0));
    }

    #[test]
    fn order_is_unique_and_ends_with_exec() {
        let mut names: Vec<_> = Step::ORDER.iter().map(|s| s.name()).collect();
        assert_eq!(names.last(), Some(&"exec"));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Step::ORDER.len());
    }
}
