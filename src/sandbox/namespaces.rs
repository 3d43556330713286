//! Namespaces. The pid namespace must be created by `clone3` itself (the
//! caller of `unshare(CLONE_NEWPID)` stays outside it), and so are IPC, UTS
//! and network (the mount namespace is a copy of the profile's view,
//! `mounts::enter`). The cgroup namespace is unshared later, after the
//! child joined its v1 cgroups, so that its root is the instance's cgroup in
//! every hierarchy. A user namespace, where asked, comes last of all, after
//! the switch to the service uid: it maps that uid to itself, and only adds
//! a layer (capabilities regained inside it would own nothing of the host).

use super::plan::Namespaces;
use super::sys::{self, Errno};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// `clone3` flags for the namespaces created at clone time (the network
/// namespace only when no pooled one was taken). Not the mount namespace:
/// the child enters a copy of its profile's view instead
/// (`mounts::enter`), and without a view it keeps the launcher's.
pub fn clone_flags(ns: &Namespaces, pooled_net: bool) -> u64 {
    let mut f = 0;
    if ns.pid {
        f |= libc::CLONE_NEWPID;
    }
    if ns.ipc {
        f |= libc::CLONE_NEWIPC;
    }
    if ns.uts {
        f |= libc::CLONE_NEWUTS;
    }
    if ns.net && !pooled_net {
        f |= libc::CLONE_NEWNET;
    }
    f as u64
}

/// Unshares the cgroup namespace (after every cgroup join).
pub fn cgroup(ns: &Namespaces) -> Result<(), Errno> {
    if ns.cgroup {
        sys::unshare(libc::CLONE_NEWCGROUP)?;
    }
    Ok(())
}

/// Sets the hostname in the new UTS namespace.
pub fn hostname(ns: &Namespaces, name: &[u8]) -> Result<(), Errno> {
    if ns.uts && !name.is_empty() {
        sys::sethostname(name)?;
    }
    Ok(())
}

/// Enters a network namespace made in advance (see [`NetPool`]), if one
/// was taken for this child, and brings `lo` up when the network mode is
/// `loopback`.
pub fn network(ns: &Namespaces, pooled: Option<&OwnedFd>, loopback: bool) -> Result<(), Errno> {
    if let Some(fd) = pooled {
        sys::setns(fd.as_raw_fd(), libc::CLONE_NEWNET)?;
    }
    if ns.net && loopback {
        sys::loopback_up()?;
    }
    Ok(())
}

/// Fresh, empty network namespaces made ahead of need. Creating one costs
/// about a millisecond with multi-millisecond tails (SPEC §4); the launcher
/// makes them while idle, so a spawn only `setns`es into one. Each is used
/// once: a namespace is never shared by two instances.
pub struct NetPool {
    home: OwnedFd,
    ready: Vec<OwnedFd>,
    target: usize,
}

impl NetPool {
    /// `target` namespaces are kept ready (0 disables the pool).
    pub fn new(target: usize) -> Result<NetPool, Errno> {
        let home = sys::open(c"/proc/thread-self/ns/net", libc::O_RDONLY)?;
        Ok(NetPool { home, ready: Vec::with_capacity(target), target })
    }

    /// A ready namespace, if any.
    pub fn take(&mut self) -> Option<OwnedFd> {
        self.ready.pop()
    }

    /// Whether the pool is below its target.
    pub fn wants_more(&self) -> bool {
        self.ready.len() < self.target
    }

    /// Makes one namespace: unshare, keep a descriptor, return home.
    pub fn fill_one(&mut self) -> Result<(), Errno> {
        sys::unshare(libc::CLONE_NEWNET)?;
        let made = sys::open(c"/proc/thread-self/ns/net", libc::O_RDONLY);
        // Going home must work, or the launcher would clone every later
        // instance from inside a namespace it was not meant to share.
        if let Err(e) = sys::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) {
            eprintln!("solo launcher: cannot return to the host network namespace: {e}");
            sys::exit_now(1);
        }
        self.ready.push(made?);
        Ok(())
    }
}

/// The maps a user namespace needs, prepared before `clone3`.
pub struct UserMaps {
    uid_map: CString,
    gid_map: CString,
}

impl UserMaps {
    pub fn new(uid: u32, gid: u32) -> Result<UserMaps, Errno> {
        Ok(UserMaps {
            uid_map: sys::cstring(&format!("{uid} {uid} 1\n"))?,
            gid_map: sys::cstring(&format!("{gid} {gid} 1\n"))?,
        })
    }
}

/// Enters a new user namespace that maps the service's uid and gid to
/// themselves (the only mapping an unprivileged process may write).
pub fn user(ns: &Namespaces, maps: &UserMaps) -> Result<(), Errno> {
    if !ns.user {
        return Ok(());
    }
    sys::unshare(libc::CLONE_NEWUSER)?;
    // After the uid switch /proc/self belongs to root until exec; being
    // dumpable gives it back to us (exec resets the flag anyway).
    sys::set_dumpable(true)?;
    sys::write_file(c"/proc/self/uid_map", maps.uid_map.as_bytes())?;
    sys::write_file(c"/proc/self/setgroups", b"deny")?;
    sys::write_file(c"/proc/self/gid_map", maps.gid_map.as_bytes())
}
