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
//! Some syscalls are special: `clone` is allowed only without namespace
//! flags (checked on its first argument), and `clone3`, whose flags sit
//! behind a pointer the filter cannot read, fails with ENOSYS so the C
//! library falls back to `clone`. `socket` is allowed only for the
//! profile's socket families ([`SocketFamily`]: address family and, for
//! each, the protocols), and `socketpair` only for `AF_UNIX`; every other
//! family (`AF_VSOCK` to the hypervisor, `AF_PACKET`, `AF_ALG`, `AF_XDP`,
//! `AF_NETLINK` but for routing dumps, …) gets the default action. A
//! foreign architecture's syscall ABI (i386 `int 0x80`, x32) kills the
//! process outright.

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

/// The low 32 bits of a syscall argument: `socket`'s arguments are `int`s,
/// so the kernel ignores the upper half of each register. Comparing only
/// the low half means a caller cannot slip past a rule (or into one) by
/// setting upper bits (libseccomp compares all 64 by default).
const INT: u64 = 0xffff_ffff;

/// A socket address family a profile may let its services create with
/// `socket(2)`, with the protocols allowed for it. Everything else (the
/// other ~40 families, and these families' other protocols, such as MPTCP
/// or SCTP for `inet`) gets the filter's default action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SocketFamily {
    /// `AF_UNIX`: sockets among its own processes, and paths in its view.
    Unix,
    /// `AF_INET` with TCP or UDP (protocol 0, `IPPROTO_TCP`, `IPPROTO_UDP`).
    Inet,
    /// `AF_INET6` with TCP or UDP.
    Inet6,
    /// `AF_NETLINK` with `NETLINK_ROUTE` only: reading addresses and routes
    /// (the C library's `getaddrinfo` sorts its answers with it).
    NetlinkRoute,
}

impl SocketFamily {
    /// Every family a profile may name, in the order profiles list them.
    pub const ALL: [SocketFamily; 4] =
        [SocketFamily::Unix, SocketFamily::Inet, SocketFamily::Inet6, SocketFamily::NetlinkRoute];

    /// The profile spelling (`[network] socket_families`).
    pub fn name(self) -> &'static str {
        match self {
            SocketFamily::Unix => "unix",
            SocketFamily::Inet => "inet",
            SocketFamily::Inet6 => "inet6",
            SocketFamily::NetlinkRoute => "netlink-route",
        }
    }

    pub fn from_name(name: &str) -> Option<SocketFamily> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The `AF_*` constant.
    pub fn domain(self) -> i32 {
        match self {
            SocketFamily::Unix => libc::AF_UNIX,
            SocketFamily::Inet => libc::AF_INET,
            SocketFamily::Inet6 => libc::AF_INET6,
            SocketFamily::NetlinkRoute => libc::AF_NETLINK,
        }
    }

    /// The protocol numbers allowed with [`Self::domain`]; `None`: any
    /// (`AF_UNIX` has no protocols the kernel would accept but 0 and 1).
    fn protocols(self) -> Option<&'static [i32]> {
        match self {
            SocketFamily::Unix => None,
            SocketFamily::Inet | SocketFamily::Inet6 => Some(&[0, libc::IPPROTO_TCP, libc::IPPROTO_UDP]),
            SocketFamily::NetlinkRoute => Some(&[libc::NETLINK_ROUTE]),
        }
    }

    /// What it lets a service do, in words (`solo profile explain`).
    pub fn meaning(self) -> &'static str {
        match self {
            SocketFamily::Unix => "Unix sockets (socketpair among its own processes, paths in its view)",
            SocketFamily::Inet => "IPv4 TCP and UDP sockets (not raw, SCTP or MPTCP)",
            SocketFamily::Inet6 => "IPv6 TCP and UDP sockets (not raw, SCTP or MPTCP)",
            SocketFamily::NetlinkRoute => {
                "netlink routing sockets, to read addresses and routes (the C library's getaddrinfo sorts answers with them); changing them needs CAP_NET_ADMIN, which it lacks"
            }
        }
    }
}

/// The `AF_*` name of an address family number, for denial reports.
pub fn family_name(domain: u64) -> String {
    let d = (domain & INT) as i32;
    let name = match d {
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_VSOCK => "AF_VSOCK",
        libc::AF_ALG => "AF_ALG",
        libc::AF_XDP => "AF_XDP",
        libc::AF_KEY => "AF_KEY",
        libc::AF_RDS => "AF_RDS",
        libc::AF_TIPC => "AF_TIPC",
        libc::AF_CAN => "AF_CAN",
        libc::AF_BLUETOOTH => "AF_BLUETOOTH",
        libc::AF_APPLETALK => "AF_APPLETALK",
        libc::AF_X25 => "AF_X25",
        libc::AF_AX25 => "AF_AX25",
        libc::AF_LLC => "AF_LLC",
        libc::AF_PPPOX => "AF_PPPOX",
        _ => return format!("family {d}"),
    };
    name.to_owned()
}

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
/// as a binary tree over syscall numbers; `socket` is allowed only for
/// `families`, `socketpair` only for `AF_UNIX` (and only when `families`
/// holds it).
pub fn compile(allow: &BTreeSet<String>, families: &[SocketFamily]) -> Result<Vec<u8>, SeccompError> {
    compile_as(allow, families, true)
}

/// [`compile`], as a binary tree (`tree`) or as libseccomp's default
/// linear list (what the benchmark compares the tree with).
pub fn compile_as(allow: &BTreeSet<String>, families: &[SocketFamily], tree: bool) -> Result<Vec<u8>, SeccompError> {
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
                ctx.add_rule_conditional(ScmpAction::Allow, nr, &[no_ns]).map_err(lib)?;
            }
            "clone3" => {
                ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), nr).map_err(lib)?;
            }
            "socket" => {
                // One rule per family and protocol (the comparisons of one
                // rule are ANDed, rules are ORed). MPTCP, SCTP and raw
                // protocols are in no list: MPTCP sockets escape Landlock's
                // TCP bind/connect rules.
                for f in families {
                    let domain = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(INT), f.domain() as u64);
                    match f.protocols() {
                        None => {
                            ctx.add_rule_conditional(ScmpAction::Allow, nr, &[domain]).map_err(lib)?;
                        }
                        Some(protocols) => {
                            for &proto in protocols {
                                let p = ScmpArgCompare::new(2, ScmpCompareOp::MaskedEqual(INT), proto as u64);
                                ctx.add_rule_conditional(ScmpAction::Allow, nr, &[domain, p]).map_err(lib)?;
                            }
                        }
                    }
                }
            }
            "socketpair" => {
                // Only Unix socket pairs exist in practice; other families
                // reach protocol code for nothing.
                if families.contains(&SocketFamily::Unix) {
                    let unix = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(INT), libc::AF_UNIX as u64);
                    ctx.add_rule_conditional(ScmpAction::Allow, nr, &[unix]).map_err(lib)?;
                }
            }
            _ => {
                ctx.add_rule(ScmpAction::Allow, nr).map_err(lib)?;
            }
        }
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
        let bpf = compile(&allow, &SocketFamily::ALL).expect("compile");
        assert!(!bpf.is_empty() && bpf.len().is_multiple_of(8), "{} bytes", bpf.len());
        let bad: BTreeSet<String> = ["not_a_syscall".to_string()].into();
        assert!(matches!(compile(&bad, &[]), Err(SeccompError::UnknownSyscall(n)) if n == "not_a_syscall"));
        assert_eq!(name_of(resolve("getppid").expect("nr")), "getppid");
    }
}
