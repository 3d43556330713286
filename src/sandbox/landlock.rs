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
use std::os::fd::AsFd;

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

/// Drops rules that add nothing, before the child makes them (each is an
/// `open`, a `statx` and a `landlock_add_rule` on the spawn path): a path
/// that is a symlink on the host (the view recreates it as a symlink, and
/// its target, if in the view at all, is beneath a path of its own), and a
/// path beneath another path of the same list (the outer rule covers it).
/// Runs in the launcher, which sees the host paths the view binds.
pub fn prune(r: &LandlockRules) -> LandlockRules {
    fn beneath(p: &str, outer: &str) -> bool {
        p != outer && (outer == "/" || p.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/')))
    }
    let keep = |list: &[String]| -> Vec<String> {
        list.iter()
            .filter(|p| !std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
            .filter(|p| !list.iter().any(|outer| beneath(p, outer)))
            .cloned()
            .collect()
    };
    LandlockRules {
        read_exec: keep(&r.read_exec),
        read_write: keep(&r.read_write),
        read: keep(&r.read),
        devices: r.devices.clone(),
        ..r.clone()
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
            // Directory-only rights cannot be granted on a file (an fstat of
            // the descriptor just opened, not another path walk).
            let access =
                if sys::fd_is_dir(fd.as_fd()).is_ok_and(|d| !d) { access & AccessFs::from_file(abi) } else { access };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_drops_nested_paths_and_host_symlinks_only() {
        let dir = std::env::temp_dir().join(format!("solo-prune-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real/sub")).expect("mkdir");
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("real", &link).expect("symlink");
        let d = |p: &str| dir.join(p).display().to_string();
        let r = LandlockRules {
            min_abi: 1,
            refuse_below_min: false,
            read_exec: vec![d("real"), d("real/sub"), d("link"), "/app".into(), d("realistic")],
            read_write: vec!["/tmp".into(), "/data".into()],
            read: vec!["/proc".into(), "/".into()],
            devices: vec!["/dev/null".into()],
            deny_bind: true,
            deny_connect: false,
        };
        let p = prune(&r);
        // "realistic" shares a prefix with "real" but is not beneath it.
        assert_eq!(p.read_exec, vec![d("real"), "/app".to_owned(), d("realistic")]);
        assert_eq!(p.read_write, r.read_write);
        assert_eq!(p.read, vec!["/".to_owned()]);
        assert_eq!(p.devices, r.devices);
        assert!(p.deny_bind && !p.deny_connect);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
