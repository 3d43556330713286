//! `solo profile diff A B`: what each of two resolved profiles allows that
//! the other does not, layer by layer. Where [`super::tighten::widenings`]
//! answers "does the child widen its parent?", this answers it both ways
//! for any two profiles, with syscalls listed by name and grouped.

use super::explain::{action_name, covered, group_of, net_mode_name, on_missing_name, violation_name};
use super::{Profile, SeccompAction};
use crate::spec::{format_bytes, Limits};
use serde::Serialize;
use std::collections::BTreeMap;

/// One thing one profile allows that the other does not.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// namespaces, filesystem, network, seccomp, landlock, limits.
    pub layer: &'static str,
    /// The TOML key (`[network] mode`, `[seccomp] allow @aio`, ...).
    pub key: String,
    /// In words: what the wider side allows, and what the other says.
    pub what: String,
    /// For seccomp: the syscalls, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub name: String,
    pub sha256: String,
}

/// Both directions of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub a: Side,
    pub b: Side,
    /// What B allows that A does not.
    pub b_allows_more: Vec<Difference>,
    /// What A allows that B does not.
    pub a_allows_more: Vec<Difference>,
}

/// Compares `a` and `b`.
pub fn diff(a: &Profile, b: &Profile) -> Diff {
    Diff {
        a: Side { name: a.name.clone(), sha256: a.sha256.clone() },
        b: Side { name: b.name.clone(), sha256: b.sha256.clone() },
        b_allows_more: wider(b, a),
        a_allows_more: wider(a, b),
    }
}

fn d(layer: &'static str, key: impl Into<String>, what: String) -> Difference {
    Difference { layer, key: key.into(), what, syscalls: vec![] }
}

/// What `x` allows that `y` does not.
pub fn wider(x: &Profile, y: &Profile) -> Vec<Difference> {
    let mut out = Vec::new();
    let (xn, yn) = (&x.namespaces, &y.namespaces);
    for (kind, xo, yo) in [
        ("mount", xn.mount, yn.mount),
        ("pid", xn.pid, yn.pid),
        ("ipc", xn.ipc, yn.ipc),
        ("uts", xn.uts, yn.uts),
        ("cgroup", xn.cgroup, yn.cgroup),
        ("user", xn.user, yn.user),
    ] {
        if !xo && yo {
            out.push(d(
                "namespaces",
                format!("[namespaces] {kind}"),
                format!("no {kind} namespace (the host's), where {} has its own", y.name),
            ));
        }
    }
    for path in &x.filesystem.read_only {
        if !covered(path, &y.filesystem.read_only) {
            out.push(d("filesystem", "[filesystem] read_only", format!("sees {path} (read-only)")));
        }
    }
    for dev in &x.filesystem.devices {
        if !y.filesystem.devices.contains(dev) {
            out.push(d("filesystem", "[filesystem] devices", format!("device /dev/{dev} (read and write)")));
        }
    }
    if x.filesystem.tmp_size > y.filesystem.tmp_size {
        out.push(d(
            "filesystem",
            "[filesystem] tmp_size",
            format!(
                "/tmp of {} where {} has {}",
                format_bytes(x.filesystem.tmp_size),
                y.name,
                format_bytes(y.filesystem.tmp_size)
            ),
        ));
    }
    if x.namespaces.ipc && !y.namespaces.ipc {
        out.push(d("filesystem", "[namespaces] ipc", "a private /dev/shm (writable)".into()));
    }
    if x.network.mode > y.network.mode {
        out.push(d(
            "network",
            "[network] mode",
            format!(
                "network mode {} ({}) where {} has {} ({})",
                net_mode_name(x.network.mode),
                super::explain::net_mode_meaning(x.network.mode),
                y.name,
                net_mode_name(y.network.mode),
                super::explain::net_mode_meaning(y.network.mode)
            ),
        ));
    }
    if x.network.mode != super::NetMode::None && y.network.mode == super::NetMode::None {
        out.push(d("network", "[network] mode", "new TCP connections (Landlock refuses them in mode none)".into()));
    }
    for f in &x.network.socket_families {
        if !y.network.socket_families.contains(f) && x.allowed_syscalls().contains("socket") {
            out.push(d("network", "[network] socket_families", format!("{} sockets: {}", f.name(), f.meaning())));
        }
    }
    let kills = |p: &Profile| p.seccomp.default_action == SeccompAction::KillProcess;
    if kills(x) && kills(y) && x.seccomp.kill_grace_ms > y.seccomp.kill_grace_ms {
        out.push(d(
            "seccomp",
            "[seccomp] kill_grace_ms",
            format!(
                "a process its filter refused runs on for {} ms before the kill, where {} gives {} ms",
                x.seccomp.kill_grace_ms, y.name, y.seccomp.kill_grace_ms
            ),
        ));
    }
    if x.network.bind && !y.network.bind {
        out.push(d("network", "[network] bind", "binding new TCP ports".into()));
    }
    // Syscalls, grouped by the group they come from.
    let ya = y.allowed_syscalls();
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in x.allowed_syscalls().into_iter().filter(|s| !ya.contains(s)) {
        let g = group_of(&s).map_or_else(|| "(no group)".to_owned(), str::to_owned);
        by_group.entry(g).or_default().push(s);
    }
    for (g, calls) in by_group {
        let whole = super::groups::all().get(&g).is_some_and(|gr| gr.syscalls.len() == calls.len());
        let what = if whole {
            format!("all of {g} ({} syscalls): {}", calls.len(), calls.join(", "))
        } else {
            format!("from {g}: {}", calls.join(", "))
        };
        out.push(Difference { layer: "seccomp", key: format!("[seccomp] allow {g}"), what, syscalls: calls });
    }
    if x.seccomp.default_action < y.seccomp.default_action {
        out.push(d(
            "seccomp",
            "[seccomp] default_action",
            format!(
                "a syscall outside the allow list {} where {} says {}",
                match x.seccomp.default_action {
                    SeccompAction::Log => "runs (log)",
                    SeccompAction::Errno => "fails with EPERM and the caller carries on (errno)",
                    SeccompAction::KillProcess => "kills the caller (kill_process)",
                },
                y.name,
                action_name(y.seccomp.default_action)
            ),
        ));
    }
    if x.seccomp.on_violation < y.seccomp.on_violation {
        out.push(d(
            "seccomp",
            "[seccomp] on_violation",
            format!(
                "a service its filter killed is restarted ({}) where {} says {}",
                violation_name(x.seccomp.on_violation),
                y.name,
                violation_name(y.seccomp.on_violation)
            ),
        ));
    }
    if x.landlock_min_abi < y.landlock_min_abi {
        out.push(d(
            "landlock",
            "[landlock] min_abi",
            format!("accepts Landlock ABI {} where {} needs {}", x.landlock_min_abi, y.name, y.landlock_min_abi),
        ));
    }
    if x.on_missing < y.on_missing {
        out.push(d(
            "landlock",
            "on_missing",
            format!(
                "runs with less Landlock than asked ({}) where {} says {}",
                on_missing_name(x.on_missing),
                y.name,
                on_missing_name(y.on_missing)
            ),
        ));
    }
    let (xl, yl) = (&x.limits, &y.limits);
    let more = |key: &str, xv: u64, yv: u64, fmt: &dyn Fn(u64) -> String, out: &mut Vec<Difference>| {
        if xv > yv {
            out.push(d(
                "limits",
                format!("[limits] {key}"),
                format!("{key} {} where {} has {}", fmt(xv), y.name, fmt(yv)),
            ));
        }
    };
    let bytes = |v: u64| format_bytes(v);
    let num = |v: u64| v.to_string();
    more(
        "memory_bytes",
        xl.memory_bytes.unwrap_or(Limits::DEFAULT_MEMORY),
        yl.memory_bytes.unwrap_or(Limits::DEFAULT_MEMORY),
        &bytes,
        &mut out,
    );
    more(
        "max_pids",
        u64::from(xl.max_pids.unwrap_or(Limits::DEFAULT_MAX_PIDS)),
        u64::from(yl.max_pids.unwrap_or(Limits::DEFAULT_MAX_PIDS)),
        &num,
        &mut out,
    );
    more(
        "cpu_weight",
        u64::from(xl.cpu_weight.unwrap_or(Limits::DEFAULT_CPU_WEIGHT)),
        u64::from(yl.cpu_weight.unwrap_or(Limits::DEFAULT_CPU_WEIGHT)),
        &num,
        &mut out,
    );
    more(
        "max_open_files",
        u64::from(xl.max_open_files.unwrap_or(Limits::DEFAULT_MAX_OPEN_FILES)),
        u64::from(yl.max_open_files.unwrap_or(Limits::DEFAULT_MAX_OPEN_FILES)),
        &num,
        &mut out,
    );
    out
}

impl Diff {
    /// The text form.
    pub fn render(&self) -> String {
        let mut o = format!(
            "A = {} (sha256 {})\nB = {} (sha256 {})\n",
            self.a.name,
            &self.a.sha256[..self.a.sha256.len().min(12)],
            self.b.name,
            &self.b.sha256[..self.b.sha256.len().min(12)]
        );
        if self.a_allows_more.is_empty() && self.b_allows_more.is_empty() {
            o.push_str("\nThey allow the same: no difference in any layer.\n");
            return o;
        }
        for (title, list) in [
            (format!("What {} (B) allows that {} (A) does not:", self.b.name, self.a.name), &self.b_allows_more),
            (format!("What {} (A) allows that {} (B) does not:", self.a.name, self.b.name), &self.a_allows_more),
        ] {
            o.push('\n');
            o.push_str(&title);
            o.push('\n');
            if list.is_empty() {
                o.push_str("  nothing\n");
            }
            for x in list {
                let words: Vec<String> = x.what.split_whitespace().map(str::to_owned).collect();
                let body = super::explain::wrap(&words, 15, 100);
                o.push_str(&format!("  {:<12} {}\n", format!("{}:", x.layer), body.trim_start()));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ProfileSet;

    #[test]
    fn base_allows_aio_and_chown_that_default_does_not() {
        let s = ProfileSet::builtin().expect("built-ins");
        let x = diff(&s.profiles["base"], &s.profiles["default"]);
        assert!(x.b_allows_more.is_empty(), "{}", x.render());
        let t = x.render();
        for needle in ["io_submit", "fchownat", "network mode host", "binding new TCP ports"] {
            assert!(t.contains(needle), "missing {needle}:\n{t}");
        }
        let same = diff(&s.profiles["default"], &s.profiles["web-server"]);
        assert!(same.a_allows_more.is_empty() && same.b_allows_more.is_empty());
    }
}
