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

use super::plan::LaunchPlan;
use super::sys::{self, Errno};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// One launch step. The discriminant travels over the error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Done by the launcher before `clone3` (opening the program, cgroup files).
    Prepare = 1,
    /// `clone3(CLONE_INTO_CGROUP | CLONE_PIDFD)` itself.
    Clone = 2,
    JoinCgroups = 3,
    ResetSignals = 4,
    NewSession = 5,
    Stdio = 6,
    Rlimits = 7,
    DropGroups = 8,
    SetGid = 9,
    SetUid = 10,
    NoNewPrivs = 11,
    CloseFds = 12,
    Chdir = 13,
    Exec = 14,
}

impl Step {
    /// Every step, in the order the code runs them.
    pub const ORDER: [Step; 14] = [
        Step::Prepare,
        Step::Clone,
        Step::JoinCgroups,
        Step::ResetSignals,
        Step::NewSession,
        Step::Stdio,
        Step::Rlimits,
        Step::DropGroups,
        Step::SetGid,
        Step::SetUid,
        Step::NoNewPrivs,
        Step::CloseFds,
        Step::Chdir,
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
            Step::ResetSignals => "reset-signals",
            Step::NewSession => "new-session",
            Step::Stdio => "stdio",
            Step::Rlimits => "rlimits",
            Step::DropGroups => "drop-groups",
            Step::SetGid => "set-gid",
            Step::SetUid => "set-uid",
            Step::NoNewPrivs => "no-new-privs",
            Step::CloseFds => "close-fds",
            Step::Chdir => "chdir",
            Step::Exec => "exec",
        }
    }

    /// Why the step is there, and why at this position.
    pub fn why(self) -> &'static str {
        match self {
            Step::Prepare => "open the program and cgroup files as root before forking, so the child only makes raw syscalls on ready descriptors",
            Step::Clone => "clone3 with CLONE_INTO_CGROUP places the child in its v2 cgroup atomically (no window outside its limits) and CLONE_PIDFD gives a race-free handle",
            Step::JoinCgroups => "on hybrid hosts join each v1 hierarchy (memory, cpu, pids) through its tasks file before anything else runs, so every later byte and fork is accounted and limited",
            Step::ResetSignals => "clear the blocked-signal mask and reset every signal to its default (ignored signals survive exec), so the service sees default signal behaviour",
            Step::NewSession => "setsid: a new session and process group, so signals aimed at the supervisor's group or terminal never reach the service",
            Step::Stdio => "stdin from /dev/null, stdout/stderr to the supervisor's log pipes: the only descriptors 0-2 the service gets",
            Step::Rlimits => "set RLIMIT_NOFILE and RLIMIT_CORE while still root, so hard limits are set before the uid that could only lower them takes over",
            Step::DropGroups => "setgroups([]) drops root's supplementary groups while we still may",
            Step::SetGid => "setresgid to the service gid, before the uid (after setuid we could no longer change gid)",
            Step::SetUid => "setresuid to the service's own unprivileged uid: from here on it holds no capability",
            Step::NoNewPrivs => "no_new_privs: setuid/setgid bits and file capabilities can never raise privileges again",
            Step::CloseFds => "close_range(3.., CLOEXEC): no descriptor of the launcher reaches the service (CVE-2024-21626)",
            Step::Chdir => "a working directory inside the service's view, never the launcher's",
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
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(self.step as u32).to_ne_bytes());
        b[4..].copy_from_slice(&self.errno.0.to_ne_bytes());
        b
    }
    pub fn decode(b: &[u8; 8]) -> StepError {
        let step = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let errno = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        StepError { step: Step::from_u32(step).unwrap_or(Step::Exec), errno: Errno(errno) }
    }
}

/// What the child needs, ready to use without allocating.
pub struct Prepared {
    program: OwnedFd,
    v1_tasks: Vec<OwnedFd>,
    devnull: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    // Owned strings; the pointer arrays below point into them.
    _argv: Vec<CString>,
    _env: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    env_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    uid: u32,
    gid: u32,
    rlimits: Vec<super::plan::Rlimit>,
    /// The v2 cgroup directory for `CLONE_INTO_CGROUP`.
    pub cgroup_v2: Option<OwnedFd>,
}

fn prep<T>(r: Result<T, Errno>) -> Result<T, StepError> {
    r.map_err(|errno| StepError { step: Step::Prepare, errno })
}

/// Opens and allocates everything `apply` will use. Runs in the launcher.
pub fn prepare(plan: &LaunchPlan, stdout: OwnedFd, stderr: OwnedFd) -> Result<Prepared, StepError> {
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
    let env: Vec<CString> = prep(plan.env.iter().map(|a| sys::cstring(a)).collect())?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    Ok(Prepared {
        program,
        v1_tasks,
        devnull,
        stdout,
        stderr,
        _argv: argv,
        _env: env,
        argv_ptrs,
        env_ptrs,
        cwd: prep(sys::cstring(&plan.cwd))?,
        uid: plan.uid,
        gid: plan.gid,
        rlimits: plan.rlimits.clone(),
        cgroup_v2,
    })
}

fn at(step: Step, r: Result<(), Errno>) -> Result<(), StepError> {
    r.map_err(|errno| StepError { step, errno })
}

/// The launch sequence. Runs in the freshly cloned child; on success it
/// does not return (the process becomes the service).
pub fn apply(p: &Prepared) -> StepError {
    match run(p) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn run(p: &Prepared) -> Result<std::convert::Infallible, StepError> {
    join_cgroups(p)?;
    at(Step::ResetSignals, sys::unblock_all_signals().and_then(|()| sys::reset_all_signals()))?;
    at(Step::NewSession, sys::setsid())?;
    stdio(p)?;
    rlimits(p)?;
    at(Step::DropGroups, sys::setgroups_empty())?;
    at(Step::SetGid, sys::setresgid(p.gid))?;
    at(Step::SetUid, sys::setresuid(p.uid))?;
    at(Step::NoNewPrivs, sys::set_no_new_privs())?;
    at(Step::CloseFds, sys::close_range_cloexec(3))?;
    at(Step::Chdir, sys::chdir(&p.cwd))?;
    Err(StepError { step: Step::Exec, errno: sys::execveat(p.program.as_raw_fd(), &p.argv_ptrs, &p.env_ptrs) })
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

fn rlimits(p: &Prepared) -> Result<(), StepError> {
    for l in &p.rlimits {
        at(Step::Rlimits, sys::setrlimit(l.resource, l.soft, l.hard))?;
    }
    Ok(())
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
    fn order_is_unique_and_ends_with_exec() {
        let mut names: Vec<_> = Step::ORDER.iter().map(|s| s.name()).collect();
        assert_eq!(names.last(), Some(&"exec"));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Step::ORDER.len());
    }
}
