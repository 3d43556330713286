//! Seccomp: an allow-list filter per profile, compiled once (by the daemon,
//! when it loads its profiles) with libseccomp and loaded last in the
//! child, just before `execveat`.
//!
//! Every syscall outside the allow list returns `SECCOMP_RET_USER_NOTIF`:
//! the calling thread blocks and the supervisor, holding the filter's
//! listener, sees the syscall, records the denial (service, instance,
//! syscall name, action) and answers as the profile's `default_action`
//! says — fail with EPERM, kill the caller, or (for `log`) let it run.
//! So no denial goes unseen, and the decision is made outside the sandbox.
//! If the listener is gone (the daemon died) the kernel fails such calls
//! with ENOSYS: still denied.
//!
//! Two syscalls are special: `clone` is allowed only without namespace
//! flags (checked on its first argument), and `clone3`, whose flags sit
//! behind a pointer the filter cannot read, fails with ENOSYS so the C
//! library falls back to `clone`. A foreign architecture's syscall ABI
//! (i386 `int 0x80`, x32) kills the process outright.

use super::sys::{self, Errno};
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: '{0}' is not a syscall on this architecture")]
    UnknownSyscall(String),
    #[error("seccomp: libseccomp refused the filter: {0}")]
    Library(String),
    #[error("seccomp: cannot export the filter: {0}")]
    Export(Errno),
}

/// Syscalls every filter allows, whatever the profile: the child needs them
/// between loading the filter and `execveat` (reporting to the launcher).
pub const ALWAYS: &[&str] = &["read", "write", "execveat", "exit_group"];

/// `CLONE_NEW*` flags: `clone` with any of them is denied.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `IPPROTO_MPTCP` from `<netinet/in.h>`.
const IPPROTO_MPTCP: u64 = 262;

fn lib(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Library(e.to_string())
}

/// The number of `name` on this architecture.
pub fn resolve(name: &str) -> Result<i32, SeccompError> {
    let nr = ScmpSyscall::from_name(name).map_err(|_| SeccompError::UnknownSyscall(name.to_owned()))?;
    let raw: i32 = nr.into();
    if raw < 0 {
        return Err(SeccompError::UnknownSyscall(name.to_owned()));
    }
    Ok(raw)
}

/// The name of syscall `nr` on this architecture, or `syscall_<nr>`.
pub fn name_of(nr: i32) -> String {
    ScmpSyscall::from(nr).get_name().unwrap_or_else(|_| format!("syscall_{nr}"))
}

/// Compiles the allow list into classic BPF (`struct sock_filter` array),
/// as a binary tree over syscall numbers.
pub fn compile(allow: &BTreeSet<String>) -> Result<Vec<u8>, SeccompError> {
    compile_as(allow, true)
}

/// [`compile`], as a binary tree (`tree`) or as libseccomp's default
/// linear list (what the benchmark compares the tree with).
pub fn compile_as(allow: &BTreeSet<String>, tree: bool) -> Result<Vec<u8>, SeccompError> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Notify).map_err(lib)?;
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(lib)?;
    // The child sets no_new_privs itself, earlier in the sequence.
    ctx.set_ctl_nnp(false).map_err(lib)?;
    // A binary tree over syscall numbers instead of a linear list: the
    // kernel emulates the filter for every syscall number at load time to
    // fill its action cache, so a shallow tree loads 2-3x faster (399 ->
    // 166 us here, docs/benchmarks.md); per-call cost is the cache either
    // way. libseccomp before 2.5 has no tree: the linear list still works.
    let _ = ctx.set_ctl_optimize(if tree { 2 } else { 1 });
    let names: BTreeSet<&str> = allow.iter().map(String::as_str).chain(ALWAYS.iter().copied()).collect();
    for name in names {
        let nr = ScmpSyscall::from(resolve(name)?);
        match name {
            "clone" => {
                let no_ns = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS), 0);
                ctx.add_rule_conditional(ScmpAction::Allow, nr, &[no_ns]).map_err(lib)?
            }
            "clone3" => ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), nr).map_err(lib)?,
            "socket" => {
                // MPTCP sockets escape Landlock's TCP bind/connect rules.
                let not_mptcp = ScmpArgCompare::new(2, ScmpCompareOp::NotEqual, IPPROTO_MPTCP);
                ctx.add_rule_conditional(ScmpAction::Allow, nr, &[not_mptcp]).map_err(lib)?
            }
            _ => ctx.add_rule(ScmpAction::Allow, nr).map_err(lib)?,
        };
    }
    // libseccomp 2.5 (Debian 12) has no in-memory export: go through a memfd.
    let fd = sys::memfd(c"solo-seccomp").map_err(SeccompError::Export)?;
    ctx.export_bpf(&fd).map_err(lib)?;
    let mut file = std::fs::File::from(fd);
    let mut bpf = Vec::new();
    use std::io::{Read, Seek};
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bpf))
        .map_err(|e| SeccompError::Export(Errno(e.raw_os_error().unwrap_or(libc::EIO))))?;
    Ok(bpf)
}

/// Loads `bpf` on this process and returns the notification listener.
/// Runs in the child, last before exec.
pub fn load(bpf: &[u8]) -> Result<std::os::fd::OwnedFd, Errno> {
    sys::seccomp_load_with_listener(bpf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_rejects_unknown_names() {
        let allow: BTreeSet<String> =
            ["read", "write", "clone", "clone3", "exit_group"].iter().map(|s| s.to_string()).collect();
        let bpf = compile(&allow).expect("compile");
        assert!(!bpf.is_empty() && bpf.len() % 8 == 0, "{} bytes", bpf.len());
        let bad: BTreeSet<String> = ["not_a_syscall".to_string()].into();
        assert!(matches!(compile(&bad), Err(SeccompError::UnknownSyscall(n)) if n == "not_a_syscall"));
        assert_eq!(name_of(resolve("getppid").expect("nr")), "getppid");
    }
}
