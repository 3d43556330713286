//! Landlock: defence in depth beneath the mount view. Even if the view
//! were wrong, the service could only read and execute its system paths and
//! artifact, write its `/tmp`, `/dev/shm` and `/data`, read `/proc`, use
//! the listed devices, and (ABI 4+) bind or connect TCP only where its
//! network mode allows; from ABI 6 it cannot signal or reach abstract Unix
//! sockets outside its domain.
//!
//! The ruleset is built in the child after `pivot_root`, because the view's
//! tmpfs mounts (`/tmp`, `/dev`, `/proc`) do not exist before; the child is
//! a copy of the single-threaded launcher, so allocating here is safe.

use super::plan::LandlockRules;
use super::sys::{self, Errno};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};

/// The outcome, as the child reports it to the launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Outcome {
    /// The kernel has no Landlock (or it is disabled at boot).
    NotEnforced = 0,
    Partial = 1,
    Full = 2,
}

impl Outcome {
    pub fn from_i32(v: i32) -> Outcome {
        match v {
            2 => Outcome::Full,
            1 => Outcome::Partial,
            _ => Outcome::NotEnforced,
        }
    }
}

/// The ABI the kernel offers (0 when Landlock is unavailable).
pub fn kernel_abi() -> i32 {
    sys::landlock_abi()
}

/// What ABI `abi` adds, in words (for reports and `solo doctor`).
pub fn abi_features(abi: i32) -> &'static str {
    match abi {
        i32::MIN..=0 => "none",
        1 => "file access",
        2 => "file access, cross-directory rename",
        3 => "file access, rename, truncate",
        4 => "file access, rename, truncate, TCP bind/connect",
        5 => "file access, rename, truncate, TCP bind/connect, device ioctl",
        _ => "file access, rename, truncate, TCP bind/connect, device ioctl, signal and abstract-socket scoping",
    }
}

fn err(e: impl std::fmt::Debug) -> Errno {
    // The crate's errors wrap an io::Error where the kernel refused.
    let s = format!("{e:?}");
    if s.contains("NotSupported") || s.contains("ENOSYS") {
        Errno(libc::EOPNOTSUPP)
    } else {
        Errno(libc::EINVAL)
    }
}

/// Restricts this process. Runs in the child, after `pivot_root`.
pub fn restrict(r: &LandlockRules) -> Result<Outcome, Errno> {
    let kabi = kernel_abi();
    if kabi < 1 {
        return Ok(Outcome::NotEnforced);
    }
    let abi = ABI::from(kabi);
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    let read_exec = read | AccessFs::Execute;
    let read_write = all & !AccessFs::Execute;
    let mut ruleset = Ruleset::default().handle_access(all).map_err(err)?;
    let mut net: BitFlags<AccessNet> = BitFlags::EMPTY;
    if kabi >= 4 {
        if r.deny_bind {
            net |= AccessNet::BindTcp;
        }
        if r.deny_connect {
            net |= AccessNet::ConnectTcp;
        }
        if !net.is_empty() {
            ruleset = ruleset.handle_access(net).map_err(err)?;
        }
    }
    if kabi >= 6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(err)?;
    }
    let mut rules: Vec<PathBeneath<PathFd>> = Vec::new();
    let mut add = |paths: &[String], access: BitFlags<AccessFs>| {
        for p in paths {
            // A path the view does not have (a missing host path) has no rule.
            let Ok(fd) = PathFd::new(p) else { continue };
            // Directory-only rights cannot be granted on a file.
            let access = if std::fs::metadata(p).is_ok_and(|m| !m.is_dir()) {
                access & AccessFs::from_file(abi)
            } else {
                access
            };
            rules.push(PathBeneath::new(fd, access));
        }
    };
    add(&r.read_exec, read_exec);
    add(&r.read_write, read_write);
    add(&r.read, read);
    add(&r.devices, AccessFs::ReadFile | AccessFs::WriteFile);
    let created = ruleset
        .create()
        .map_err(err)?
        .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))
        .map_err(err)?;
    let status = created.restrict_self().map_err(err)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Outcome::Full,
        RulesetStatus::PartiallyEnforced => Outcome::Partial,
        RulesetStatus::NotEnforced => Outcome::NotEnforced,
    })
}
