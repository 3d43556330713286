//! "`extends` may only tighten": every way a child profile could allow
//! more than the profile it extends, listed as findings. An empty list means
//! the child is at most as permissive as its parent, layer by layer.

use super::Profile;

/// What `child` allows that `parent` does not (empty when it only tightens).
pub fn widenings(parent: &Profile, child: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    let (pn, cn) = (&parent.namespaces, &child.namespaces);
    for (kind, p, c) in [
        ("mount", pn.mount, cn.mount),
        ("pid", pn.pid, cn.pid),
        ("ipc", pn.ipc, cn.ipc),
        ("uts", pn.uts, cn.uts),
        ("cgroup", pn.cgroup, cn.cgroup),
        ("user", pn.user, cn.user),
    ] {
        if p && !c {
            out.push(format!("[namespaces] {kind}: turns off a namespace the parent has"));
        }
    }
    for path in &child.filesystem.read_only {
        if !parent.filesystem.read_only.contains(path) {
            out.push(format!("[filesystem] read_only: adds {path}"));
        }
    }
    for d in &child.filesystem.devices {
        if !parent.filesystem.devices.contains(d) {
            out.push(format!("[filesystem] devices: adds /dev/{d}"));
        }
    }
    if child.filesystem.tmp_size > parent.filesystem.tmp_size {
        out.push(format!(
            "[filesystem] tmp_size: {} bytes is more than the parent's {}",
            child.filesystem.tmp_size, parent.filesystem.tmp_size
        ));
    }
    if child.network.mode > parent.network.mode {
        out.push(format!(
            "[network] mode: \"{}\" is wider than the parent's \"{}\"",
            super::explain::net_mode_name(child.network.mode),
            super::explain::net_mode_name(parent.network.mode)
        ));
    }
    if child.network.bind && !parent.network.bind {
        out.push("[network] bind: allows binding ports the parent forbids".into());
    }
    for f in &child.network.socket_families {
        if !parent.network.socket_families.contains(f) {
            out.push(format!("[network] socket_families: adds {}", f.name()));
        }
    }
    if child.seccomp.default_action < parent.seccomp.default_action {
        out.push(format!(
            "[seccomp] default_action: \"{}\" is more lenient than the parent's \"{}\"",
            super::explain::action_name(child.seccomp.default_action),
            super::explain::action_name(parent.seccomp.default_action)
        ));
    }
    let kills = |p: &Profile| p.seccomp.default_action == super::SeccompAction::KillProcess;
    if kills(parent) && kills(child) && child.seccomp.kill_grace_ms > parent.seccomp.kill_grace_ms {
        out.push(format!(
            "[seccomp] kill_grace_ms: {} ms is longer than the parent's {} ms",
            child.seccomp.kill_grace_ms, parent.seccomp.kill_grace_ms
        ));
    }
    if child.seccomp.on_violation < parent.seccomp.on_violation {
        out.push("[seccomp] on_violation: restarts what the parent quarantines".into());
    }
    let allowed = parent.allowed_syscalls();
    let extra: Vec<String> = child.allowed_syscalls().into_iter().filter(|s| !allowed.contains(s)).collect();
    if !extra.is_empty() {
        out.push(format!("[seccomp] allow: adds syscalls the parent does not allow: {}", extra.join(", ")));
    }
    if child.landlock_min_abi < parent.landlock_min_abi {
        out.push(format!(
            "[landlock] min_abi: {} is lower than the parent's {}",
            child.landlock_min_abi, parent.landlock_min_abi
        ));
    }
    if child.on_missing < parent.on_missing {
        out.push("on_missing: degrades where the parent refuses".into());
    }
    let (pl, cl) = (&parent.limits, &child.limits);
    let over = |name: &str, p: Option<u64>, c: Option<u64>, out: &mut Vec<String>| {
        if let (Some(p), Some(c)) = (p, c) {
            if c > p {
                out.push(format!("[limits] {name}: {c} is more than the parent's {p}"));
            }
        }
    };
    over("memory_bytes", pl.memory_bytes, cl.memory_bytes, &mut out);
    over("max_pids", pl.max_pids.map(u64::from), cl.max_pids.map(u64::from), &mut out);
    over("cpu_weight", pl.cpu_weight.map(u64::from), cl.cpu_weight.map(u64::from), &mut out);
    over("max_open_files", pl.max_open_files.map(u64::from), cl.max_open_files.map(u64::from), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{NetMode, ProfileSet, SeccompAction};

    #[test]
    fn builtins_only_tighten_and_widening_is_caught() {
        let s = ProfileSet::builtin().expect("resolve");
        let base = &s.profiles["base"];
        for p in s.profiles.values() {
            assert!(widenings(base, p).is_empty(), "{}: {:?}", p.name, widenings(base, p));
        }
        let default = &s.profiles["default"];
        let mut wide = default.clone();
        wide.network.mode = NetMode::Host;
        wide.seccomp.default_action = SeccompAction::Log;
        wide.seccomp.allow.push("@aio".into());
        wide.filesystem.read_only.push("/opt".into());
        wide.namespaces.pid = false;
        wide.limits.max_pids = Some(1_000_000);
        wide.network.socket_families.push(crate::profiles::SocketFamily::Inet);
        let found = widenings(default, &wide).join("\n");
        for what in
            ["[network] mode", "default_action", "io_submit", "/opt", "[namespaces] pid", "max_pids", "adds inet"]
        {
            assert!(found.contains(what), "missing {what} in:\n{found}");
        }
    }
}
