//! What this host can enforce, layer by layer (`solo doctor`).

use super::cgroup::{Backend, Controller, Layout};
use super::sys;
use std::path::Path;

/// One line of the doctor report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub layer: String,
    pub ok: bool,
    pub detail: String,
}

fn check(layer: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check { layer: layer.to_owned(), ok, detail: detail.into() }
}

/// Probes the host. Read-only: nothing is created or changed.
pub fn run() -> Vec<Check> {
    let mut out = Vec::new();
    out.push(check(
        "root",
        sys::geteuid() == 0,
        if sys::geteuid() == 0 { "running as root" } else { "not root: solo serve must run as root" },
    ));
    match Layout::detect("solo") {
        Ok(l) => {
            out.push(check("cgroup mode", true, l.mode()));
            if let Some(own) = &l.v2_own {
                out.push(check(
                    "cgroup v2",
                    true,
                    format!(
                        "own cgroup {} (controllers: {})",
                        own.display(),
                        if l.v2_controllers.is_empty() { "none".to_owned() } else { l.v2_controllers.join(" ") }
                    ),
                ));
                if l.needs_v1_migration() {
                    out.push(check(
                        "v1 placement",
                        true,
                        "each service joins its v1 hierarchies through their tasks files before exec (one thread: no RCU grace period)",
                    ));
                }
                let kill = own.join("cgroup.kill").exists() || kernel_at_least(5, 14);
                out.push(check(
                    "cgroup.kill",
                    kill,
                    if kill {
                        "whole-cgroup kill available"
                    } else {
                        "missing (kernel before 5.14): kill falls back to per-pid SIGKILL of the cgroup's processes"
                    },
                ));
            } else {
                out.push(check("cgroup v2", false, "no cgroup2 mount: membership and kill use v1 (freezer)"));
            }
            for c in Controller::ALL {
                let (ok, detail) = match l.backend(c) {
                    Backend::V2 => (true, "cgroup v2".to_owned()),
                    Backend::V1(p) => (true, format!("cgroup v1 at {}", p.display())),
                    Backend::Missing if matches!(c, Controller::Cpuacct | Controller::Freezer) => {
                        (true, "not needed (v2 provides it)".to_owned())
                    }
                    Backend::Missing => (false, "missing: this limit cannot be enforced".to_owned()),
                };
                out.push(check(&format!("controller {}", c.name()), ok, detail));
            }
        }
        Err(e) => out.push(check("cgroup mode", false, e.to_string())),
    }
    let abi = sys::landlock_abi();
    out.push(check(
        "landlock",
        abi > 0,
        if abi > 0 {
            format!("ABI {abi}: {}", super::landlock::abi_features(abi))
        } else {
            "not available (kernel without CONFIG_SECURITY_LANDLOCK or not in lsm=)".to_owned()
        },
    ));
    let seccomp = sys::seccomp_available();
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    out.push(check(
        "seccomp",
        seccomp,
        if seccomp {
            format!("filter mode available (actions: {})", actions.trim())
        } else {
            "not available".to_owned()
        },
    ));
    let notif = actions.split_whitespace().any(|a| a == "user_notif");
    out.push(check(
        "seccomp denials",
        notif,
        if notif {
            "user notification available: every denied syscall is seen by the supervisor"
        } else {
            "no user_notif action (kernel before 5.0): filters cannot report denials"
        },
    ));
    let memfd = super::mounts::kernel_has_memfd_noexec();
    out.push(check(
        "memfd_noexec",
        memfd,
        if memfd {
            "vm.memfd_noexec = 2 per service: code written to a memfd cannot be executed"
        } else {
            "missing (kernel before 6.3): profiles with on_missing = \"refuse\" are refused, others run degraded (memfd exec possible)"
        },
    ));
    let setattr = kernel_at_least(5, 12);
    out.push(check(
        "mount_setattr",
        setattr,
        if setattr {
            "recursive read-only bind mounts for the filesystem view"
        } else {
            "missing (kernel before 5.12): the filesystem view cannot be built"
        },
    ));
    for ns in ["mnt", "pid", "ipc", "uts", "net", "cgroup", "user", "time"] {
        let ok = Path::new("/proc/self/ns").join(ns).exists();
        out.push(check(&format!("namespace {ns}"), ok, if ok { "available" } else { "missing" }));
    }
    let pidfd = sys::pidfd_open(std::process::id() as i32).is_ok();
    out.push(check(
        "pidfd",
        pidfd,
        if pidfd {
            "pidfd_open works: processes tracked without pid-reuse races"
        } else {
            "pidfd_open failed: kernel older than 5.3"
        },
    ));
    let clone3 = sys::has_clone3();
    out.push(check(
        "clone3",
        clone3,
        if clone3 { "clone3 available (CLONE_INTO_CGROUP, CLONE_PIDFD)" } else { "missing: kernel older than 5.3" },
    ));
    out
}

/// Whether `uname -r` is at least `major.minor`.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = rel.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|s| s.parse::<u32>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
