//! `solo profile explain`: a resolved [`Profile`] in plain words, layer by
//! layer: what the service can see, write, reach and call, and what it
//! cannot. Built from the same data the sandbox enforces
//! ([`crate::supervisor::policy`] turns a profile into a launch plan), and
//! from the sandbox's own constants (the syscalls every filter allows, the
//! masked `/proc` files), so the words cannot drift from the code.
//!
//! [`explain`] returns a serialisable [`Explanation`] (`--json`);
//! [`Explanation::render`] is the text form.

use super::{groups, NetMode, OnMissing, OnViolation, Profile, ProfileSet, SeccompAction, BUILTIN};
use crate::sandbox::{landlock, mounts, seccomp};
use crate::spec::{format_bytes, Limits};
use serde::Serialize;
use std::collections::BTreeSet;

/// What every service gets whatever its profile (enforced by the launch
/// sequence, not by the profile; see docs/sandbox.md).
pub const EVERY_SERVICE: &[&str] = &[
    "its own cgroup per instance (memory, CPU and pids limits apply from its first instruction)",
    "its own unprivileged uid and gid, no supplementary groups",
    "no capabilities in any of the five sets, securebits locked, no_new_privs (setuid binaries give nothing)",
    "descriptors 0 (/dev/null), 1 and 2 (pipes to the daemon), nothing else (descriptor grants are not implemented yet)",
    "RLIMIT_CORE 0 (no core dumps) and RLIMIT_NOFILE fixed by the supervisor",
];

/// Host paths a reviewer asks about, and what they hold.
pub const NOTABLE_HOST_PATHS: &[(&str, &str)] = &[
    ("/etc", "host configuration: accounts, passwords, every daemon's settings"),
    ("/home", "users' home directories"),
    ("/root", "root's home directory"),
    ("/var", "host state: databases, caches, mail, logs, other software's data"),
    ("/var/lib/solo", "the daemon's state: its database, every service's artifacts, data and logs"),
    ("/run", "runtime sockets and pids of host daemons"),
    ("/run/solo", "the daemon's control socket"),
    ("/srv", "data served by the host"),
    ("/opt", "add-on software"),
    ("/mnt", "mounted filesystems"),
    ("/media", "removable media"),
    ("/boot", "kernels and boot configuration"),
    ("/sys", "sysfs: devices, kernel and cgroup settings"),
];

/// One namespace, in words.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceUse {
    pub name: &'static str,
    /// True when the service gets its own (not the host's).
    pub own: bool,
    pub meaning: String,
}

/// A path in the service's view.
#[derive(Debug, Clone, Serialize)]
pub struct PathUse {
    pub path: String,
    pub meaning: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilesystemView {
    /// Host paths bound read-only (and executable) at the same place.
    pub read_only: Vec<String>,
    /// Other read-only parts of the view (the artifact, /proc).
    pub read_only_other: Vec<PathUse>,
    pub writable: Vec<PathUse>,
    pub tmp_size_bytes: u64,
    /// `/dev/NAME` bound from the host.
    pub devices: Vec<String>,
    /// Host paths the service cannot see, with what they hold.
    pub not_visible: Vec<PathUse>,
    /// Notable host paths that ARE visible (through a `read_only` entry).
    pub visible_notable: Vec<PathUse>,
    pub proc_masked: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkView {
    pub mode: &'static str,
    pub meaning: String,
    /// May it bind new TCP ports (Landlock ABI 4+)?
    pub tcp_bind: bool,
    /// May it open new TCP connections?
    pub tcp_connect: bool,
    /// The address families `socket(2)` may create, each with its meaning
    /// (empty: it creates no socket at all).
    pub socket_families: Vec<FamilyUse>,
    pub notes: Vec<String>,
}

/// A socket address family a profile allows.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyUse {
    pub family: &'static str,
    pub meaning: &'static str,
}

/// An allowed or denied group (or the single syscalls of a list).
#[derive(Debug, Clone, Serialize)]
pub struct GroupUse {
    /// `@name`, or `(single syscalls)`.
    pub name: String,
    pub why: String,
    /// The syscalls this entry contributes (for an allowed group: minus
    /// what the deny list removes).
    pub syscalls: Vec<String>,
    /// For an allowed group: its syscalls that are nevertheless not
    /// allowed, each with the reason (the deny list, or `bind = false` on
    /// the host network).
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeccompView {
    pub default_action: &'static str,
    pub default_action_meaning: String,
    pub on_violation: &'static str,
    pub on_violation_meaning: String,
    /// Every syscall the filter allows (allow expanded, minus deny, plus
    /// the always-allowed ones).
    pub allowed_count: usize,
    pub always_allowed: Vec<String>,
    pub special: Vec<String>,
    pub allowed: Vec<GroupUse>,
    pub denied: Vec<GroupUse>,
    /// Groups neither allowed nor denied: refused by the default action.
    pub not_allowed_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LandlockView {
    pub min_abi: u32,
    pub min_abi_features: &'static str,
    pub on_missing: &'static str,
    pub on_missing_meaning: String,
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitsView {
    /// As the profile says (`None`: the global default applies).
    pub memory_bytes: Option<u64>,
    pub max_pids: Option<u32>,
    pub cpu_weight: Option<u32>,
    pub max_open_files: Option<u32>,
    /// What a deploy that asks for nothing gets.
    pub effective_memory_bytes: u64,
    pub effective_max_pids: u32,
    pub effective_cpu_weight: u32,
    pub effective_max_open_files: u32,
    pub note: String,
}

/// A profile, explained.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub name: String,
    pub description: String,
    pub extends: Option<String>,
    /// This profile, then each ancestor.
    pub chain: Vec<String>,
    pub source: String,
    pub sha256: String,
    pub every_service: Vec<String>,
    pub namespaces: Vec<NamespaceUse>,
    pub filesystem: FilesystemView,
    pub network: NetworkView,
    pub seccomp: SeccompView,
    pub landlock: LandlockView,
    pub limits: LimitsView,
}

/// The TOML spelling of a network mode.
pub fn net_mode_name(m: NetMode) -> &'static str {
    match m {
        NetMode::None => "none",
        NetMode::Loopback => "loopback",
        NetMode::Host => "host",
    }
}

/// The TOML spelling of a seccomp default action.
pub fn action_name(a: SeccompAction) -> &'static str {
    match a {
        SeccompAction::Log => "log",
        SeccompAction::Errno => "errno",
        SeccompAction::KillProcess => "kill_process",
    }
}

pub fn violation_name(v: OnViolation) -> &'static str {
    match v {
        OnViolation::Restart => "restart",
        OnViolation::Quarantine => "quarantine",
    }
}

pub fn on_missing_name(m: OnMissing) -> &'static str {
    match m {
        OnMissing::Degrade => "degrade",
        OnMissing::Refuse => "refuse",
    }
}

/// The network mode in words.
pub fn net_mode_meaning(m: NetMode) -> &'static str {
    match m {
        NetMode::None => "its own network namespace with no interface up: no network at all",
        NetMode::Loopback => "its own network namespace with only its own loopback (lo) up: it can talk to itself, nothing else",
        NetMode::Host => "the host's network namespace: every host interface and address, the host's loopback services, and the host's abstract Unix sockets",
    }
}

/// The default action in words.
pub fn action_meaning(a: SeccompAction, kill_grace_ms: u32) -> String {
    match a {
        SeccompAction::Log => "ALLOWED and recorded: the filter enforces nothing (a mode for writing a profile); deny lists are not enforced either".into(),
        SeccompAction::Errno => "fails with EPERM and is recorded; the service can carry on".into(),
        SeccompAction::KillProcess if kill_grace_ms == 0 => "the calling process is killed (SIGKILL, by the supervisor) and the denial is recorded".into(),
        SeccompAction::KillProcess => format!(
            "fails with EPERM and is recorded; the calling process then has {kill_grace_ms} ms (kill_grace_ms) to exit on its own, writing what it has to say, and is killed (SIGKILL, by the supervisor) if it has not, or at once at its {}th denied call",
            super::KILL_AFTER_DENIALS
        ),
    }
}

pub fn violation_meaning(v: OnViolation) -> &'static str {
    match v {
        OnViolation::Restart => "a main process killed by its filter is restarted like any other failure",
        OnViolation::Quarantine => "a main process killed by its filter is not restarted: the service is quarantined until an operator kills or redeploys it",
    }
}

pub fn on_missing_meaning(m: OnMissing) -> &'static str {
    match m {
        OnMissing::Degrade => "a host whose Landlock ABI is below min_abi (or has no Landlock), or that lacks vm.memfd_noexec (Linux 6.3+), still runs the service with what it has; what was not enforced is recorded per instance",
        OnMissing::Refuse => "a host whose Landlock ABI is below min_abi, or that lacks vm.memfd_noexec (Linux 6.3+), refuses to start the service, naming the layer",
    }
}

/// True when host path `p` is visible in a view that binds `read_only`:
/// it is one of them or beneath one.
pub fn covered(p: &str, read_only: &[String]) -> bool {
    let p = normalize(p);
    read_only.iter().any(|r| {
        let r = normalize(r);
        r == "/" || p == r || p.starts_with(&format!("{r}/"))
    })
}

/// `read_only` entries beneath host path `p` (partly visible).
pub fn beneath(p: &str, read_only: &[String]) -> Vec<String> {
    let p = normalize(p);
    read_only.iter().filter(|r| normalize(r).starts_with(&format!("{p}/"))).cloned().collect()
}

/// A path with `.` components, repeated and trailing slashes removed
/// (`/./` is `/`, `/usr//lib/` is `/usr/lib`).
pub fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

/// The profile and each ancestor, by name, following `extends` in `set`.
pub fn chain(p: &Profile, set: &ProfileSet) -> Vec<String> {
    let mut out = vec![p.name.clone()];
    let mut next = p.extends.clone();
    while let Some(n) = next {
        if out.contains(&n) {
            break;
        }
        out.push(n.clone());
        next = set.get(&n).and_then(|q| q.extends.clone());
    }
    out
}

/// Where a profile came from, in words.
pub fn source(p: &Profile) -> String {
    let builtin = BUILTIN.iter().any(|(n, _)| *n == p.name) && p.file == format!("sandbox-profiles/{}.toml", p.name);
    if builtin {
        format!("built-in ({})", p.file)
    } else {
        p.file.clone()
    }
}

/// The group each syscall belongs to (the groups are disjoint).
pub fn group_of(syscall: &str) -> Option<&'static str> {
    groups::all().iter().find(|(_, g)| g.syscalls.iter().any(|s| s == syscall)).map(|(n, _)| n.as_str())
}

/// Explains `p`; `set` resolves the `extends` chain.
pub fn explain(p: &Profile, set: &ProfileSet) -> Explanation {
    Explanation {
        name: p.name.clone(),
        description: p.description.clone(),
        extends: p.extends.clone(),
        chain: chain(p, set),
        source: source(p),
        sha256: p.sha256.clone(),
        every_service: EVERY_SERVICE.iter().map(|s| (*s).to_owned()).collect(),
        namespaces: namespaces(p),
        filesystem: filesystem(p),
        network: network(p),
        seccomp: seccomp_view(p),
        landlock: landlock_view(p),
        limits: limits(p),
    }
}

fn namespaces(p: &Profile) -> Vec<NamespaceUse> {
    let n = &p.namespaces;
    let ns = |name: &'static str, own: bool, yes: &str, no: &str| NamespaceUse {
        name,
        own,
        meaning: if own { yes.to_owned() } else { no.to_owned() },
    };
    vec![
        ns(
            "mount",
            n.mount,
            "its own filesystem view, built from nothing (see FILESYSTEM)",
            "shares the host's mount namespace (not supported: refused when the profile loads)",
        ),
        ns(
            "pid",
            n.pid,
            "sees only its own processes in /proc and cannot signal anything outside its sandbox",
            "shares the host's pid namespace: sees every host process in /proc (command lines included) and may signal processes of its own uid",
        ),
        ns(
            "ipc",
            n.ipc,
            "private System V IPC, POSIX message queues and /dev/shm",
            "shares the host's System V IPC and POSIX message queues: segments and queues others left accessible are reachable; no /dev/shm",
        ),
        ns("uts", n.uts, "its own hostname (the service id)", "sees the host's hostname and domain name"),
        ns(
            "cgroup",
            n.cgroup,
            "/proc/self/cgroup shows / instead of the host's cgroup layout",
            "sees the host's cgroup paths (the daemon's hierarchy and names)",
        ),
        ns(
            "user",
            n.user,
            "a user namespace that maps its uid to itself: a capability regained inside it would own nothing of the host",
            "no user namespace (it still holds no capabilities; a user namespace only adds a layer)",
        ),
        NamespaceUse {
            name: "net",
            own: p.network.mode != NetMode::Host,
            meaning: net_mode_meaning(p.network.mode).to_owned(),
        },
    ]
}

fn filesystem(p: &Profile) -> FilesystemView {
    let f = &p.filesystem;
    let size = format_bytes(f.tmp_size);
    let mut writable = vec![
        PathUse {
            path: "/tmp".into(),
            meaning: format!("private tmpfs of at most {size}, gone with the instance; nothing in it can be executed"),
        },
        PathUse {
            path: "/data".into(),
            meaning: "the service's own persistent directory (kept across restarts and redeploys); nothing in it can be executed".into(),
        },
    ];
    if p.namespaces.ipc {
        writable.push(PathUse {
            path: "/dev/shm".into(),
            meaning: format!("private tmpfs of at most {size} (POSIX shared memory); nothing in it can be executed"),
        });
    }
    let proc_meaning = if p.namespaces.pid {
        "its own /proc (of its pid namespace); host-revealing files masked, /proc/sys and other tunables read-only"
    } else {
        "/proc of the HOST's pid namespace (every host process is listed); host-revealing files masked, /proc/sys and other tunables read-only"
    };
    let read_only_other = vec![
        PathUse {
            path: "/app".into(),
            meaning: "the artifact (an uploaded executable or script, or a host binary outside the read-only paths), read-only and executable".into(),
        },
        PathUse { path: "/proc".into(), meaning: proc_meaning.into() },
        PathUse {
            path: "/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr".into(),
            meaning: "links into /proc/self/fd".into(),
        },
    ];
    let mut not_visible = Vec::new();
    let mut visible_notable = Vec::new();
    for (path, what) in NOTABLE_HOST_PATHS {
        if covered(path, &f.read_only) {
            visible_notable.push(PathUse {
                path: (*path).into(),
                meaning: format!("VISIBLE read-only (within its file modes): {what}"),
            });
            continue;
        }
        let part = beneath(path, &f.read_only);
        if part.is_empty() {
            not_visible.push(PathUse { path: (*path).into(), meaning: (*what).into() });
        } else {
            not_visible.push(PathUse {
                path: (*path).into(),
                meaning: format!("{what} — all of it except {}", part.join(", ")),
            });
        }
    }
    not_visible
        .push(PathUse { path: "other services".into(), meaning: "their artifacts, /data, /tmp and processes".into() });
    not_visible
        .push(PathUse { path: "the host's /tmp and /dev/shm".into(), meaning: "replaced by private ones".into() });
    not_visible.push(PathUse {
        path: "every other device".into(),
        meaning: format!("/dev holds only {}", devices_words(&f.devices)),
    });
    FilesystemView {
        read_only: f.read_only.clone(),
        read_only_other,
        writable,
        tmp_size_bytes: f.tmp_size,
        devices: f.devices.clone(),
        not_visible,
        visible_notable,
        proc_masked: mounts::PROC_MASKED_FILES
            .iter()
            .chain(mounts::PROC_MASKED_DIRS)
            .map(|p| format!("/{p}"))
            .collect(),
    }
}

fn devices_words(devices: &[String]) -> String {
    if devices.is_empty() {
        "the /proc/self/fd links (no device at all)".into()
    } else {
        devices.iter().map(|d| format!("/dev/{d}")).collect::<Vec<_>>().join(", ")
    }
}

fn network(p: &Profile) -> NetworkView {
    let n = &p.network;
    let mut notes = Vec::new();
    let tcp_connect = n.mode != NetMode::None;
    match n.mode {
        NetMode::None => {
            notes.push("sockets granted by the supervisor (listen:, service:, connect: grants, passed as LISTEN_FDS) work: it uses them without creating any".into());
            notes.push(
                "Unix sockets work only with paths in its view, and abstract ones only among its own processes".into(),
            );
            notes.push("new TCP connections are also refused by Landlock (ABI 4+)".into());
        }
        NetMode::Loopback => {
            notes.push("127.0.0.1 is its own loopback, not the host's: it cannot reach host services".into());
        }
        NetMode::Host => {
            notes.push("it can connect anywhere the host can, including services on the host's 127.0.0.1 (other services' ports, Solo's --listen port if it is on)".into());
            notes.push(
                "abstract Unix sockets of host processes are reachable unless the kernel has Landlock ABI 6 (scoping)"
                    .into(),
            );
        }
    }
    let calls = p.allowed_syscalls();
    if n.bind {
        notes.push("it may bind and listen on new ports".into());
    } else if n.mode == NetMode::None {
        notes.push("there is no interface to bind on; Landlock also refuses TCP bind (ABI 4+)".into());
    } else if !calls.contains("bind") && !calls.contains("listen") {
        notes.push(
            "bind and listen are not in its syscall allow list (bind = false on the host network removes them): it cannot bind or listen on any socket, TCP, UDP or Unix"
                .into(),
        );
    } else {
        notes.push("Landlock restricts TCP only: UDP sockets can be bound whatever `bind` says".into());
        let enforced = if p.landlock_min_abi >= 4 {
            "guaranteed: min_abi is 4 or more".to_owned()
        } else {
            format!(
                "only on kernels with Landlock ABI 4+; min_abi is {} so {}",
                p.landlock_min_abi,
                match p.on_missing {
                    OnMissing::Degrade => "an older kernel runs it without this restriction",
                    OnMissing::Refuse =>
                        "an older kernel still runs it without this restriction (refuse only checks min_abi)",
                }
            )
        };
        notes.push(format!("binding new TCP ports is refused by Landlock ({enforced})"));
    }
    let socket_families = if calls.contains("socket") {
        n.socket_families.iter().map(|f| FamilyUse { family: f.name(), meaning: f.meaning() }).collect()
    } else {
        Vec::new()
    };
    NetworkView {
        mode: net_mode_name(n.mode),
        meaning: net_mode_meaning(n.mode).to_owned(),
        tcp_bind: n.bind,
        tcp_connect,
        socket_families,
        notes,
    }
}

fn seccomp_view(p: &Profile) -> SeccompView {
    let s = &p.seccomp;
    let deny = p.denied_syscalls();
    let allowed_set = p.allowed_syscalls();
    let why_removed = |c: &String| {
        if deny.contains(c) {
            format!("{c} (deny list)")
        } else {
            format!("{c} (bind = false on the host network)")
        }
    };
    let all = groups::all();
    let mut allowed = Vec::new();
    let mut single_allowed = Vec::new();
    for item in &s.allow {
        match all.get(item) {
            Some(g) => {
                let (keep, removed): (Vec<String>, Vec<String>) =
                    g.syscalls.iter().cloned().partition(|c| allowed_set.contains(c));
                let mut keep = keep;
                keep.sort();
                allowed.push(GroupUse {
                    name: item.clone(),
                    why: g.why.clone(),
                    syscalls: keep,
                    removed: removed.iter().map(why_removed).collect(),
                });
            }
            None if allowed_set.contains(item) => single_allowed.push(item.clone()),
            None => {}
        }
    }
    if !single_allowed.is_empty() {
        let never: Vec<String> = single_allowed
            .iter()
            .filter_map(|c| {
                let g = group_of(c)?;
                all.get(g).is_some_and(|gr| gr.never).then(|| format!("{c} ({g})"))
            })
            .collect();
        let mut why = "named one by one in [seccomp] allow".to_owned();
        if !never.is_empty() {
            why.push_str(&format!(
                "; WARNING: {} belong to deny-only groups and can undo the sandbox",
                never.join(", ")
            ));
        }
        allowed.push(GroupUse { name: "(single syscalls)".into(), why, syscalls: single_allowed, removed: vec![] });
    }
    let mut denied = Vec::new();
    let mut single_denied = Vec::new();
    for item in &s.deny {
        match all.get(item) {
            Some(g) => {
                let mut sc = g.syscalls.clone();
                sc.sort();
                denied.push(GroupUse { name: item.clone(), why: g.why.clone(), syscalls: sc, removed: vec![] });
            }
            None => single_denied.push(item.clone()),
        }
    }
    if !single_denied.is_empty() {
        denied.push(GroupUse {
            name: "(single syscalls)".into(),
            why: "named one by one in [seccomp] deny".into(),
            syscalls: single_denied,
            removed: vec![],
        });
    }
    let named: BTreeSet<&String> = s.allow.iter().chain(s.deny.iter()).collect();
    let not_allowed_groups: Vec<String> = all.keys().filter(|g| !named.contains(g)).cloned().collect();
    let mut every = p.allowed_syscalls();
    every.extend(seccomp::ALWAYS.iter().map(|s| (*s).to_owned()));
    let overridden: Vec<&str> = seccomp::ALWAYS.iter().copied().filter(|a| deny.contains(*a)).collect();
    let mut always = format!(
        "always allowed, whatever the lists say: {} (the launch needs them between loading the filter and exec)",
        seccomp::ALWAYS.join(", ")
    );
    if !overridden.is_empty() {
        always.push_str(&format!("; so the deny list's {} is NOT enforced", overridden.join(", ")));
    }
    let mut special = vec![always];
    if allowed_set.contains("clone") {
        special.push(
            "clone is allowed only without namespace flags (CLONE_NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWCGROUP); with any of them it gets the default action".into(),
        );
    }
    if allowed_set.contains("socket") {
        let families: Vec<&str> = p.network.socket_families.iter().map(|f| f.name()).collect();
        special.push(format!(
            "socket is allowed only for the families {} ([network] socket_families; IP only with protocol 0, TCP or UDP: no raw, SCTP or MPTCP, whose sockets Landlock's TCP rules do not cover); any other family (AF_VSOCK, AF_PACKET, AF_ALG, AF_XDP, other netlink protocols, ...) gets the default action",
            if families.is_empty() { "(none)".to_owned() } else { families.join(", ") }
        ));
    }
    if allowed_set.contains("socketpair") {
        special.push(if p.network.socket_families.contains(&crate::sandbox::seccomp::SocketFamily::Unix) {
            "socketpair is allowed for AF_UNIX only".into()
        } else {
            "socketpair gets the default action (unix is not among its socket families)".into()
        });
    }
    if allowed_set.contains("clone3") {
        special.push(
            "clone3 always fails with ENOSYS (the filter cannot read its flags), so the C library falls back to clone"
                .into(),
        );
    }
    special.push("a syscall of another architecture's ABI (i386 int 0x80, x32) kills the process outright".into());
    special.push(
        "the supervisor answers every denied syscall; if the daemon is gone, denied syscalls fail with ENOSYS".into(),
    );
    SeccompView {
        default_action: action_name(s.default_action),
        default_action_meaning: action_meaning(s.default_action, s.kill_grace_ms),
        on_violation: violation_name(s.on_violation),
        on_violation_meaning: violation_meaning(s.on_violation).to_owned(),
        allowed_count: every.len(),
        always_allowed: seccomp::ALWAYS.iter().map(|s| (*s).to_owned()).collect(),
        special,
        allowed,
        denied,
        not_allowed_groups,
    }
}

fn landlock_view(p: &Profile) -> LandlockView {
    let mut rules = vec![
        "read and execute: the read-only paths and /app".to_owned(),
        format!("read and write (no execute): /tmp, /data{}", if p.namespaces.ipc { ", /dev/shm" } else { "" }),
        "read: /proc and the view's root".to_owned(),
        format!("read and write: {}", devices_words(&p.filesystem.devices)),
    ];
    let mut net = Vec::new();
    if !p.network.bind {
        net.push("bind");
    }
    if p.network.mode == NetMode::None {
        net.push("connect");
    }
    if net.is_empty() {
        rules.push("TCP: no restriction".into());
    } else {
        rules.push(format!("TCP {} refused (ABI 4+)", net.join(" and ")));
    }
    rules.push("signals and abstract Unix sockets scoped to the sandbox (ABI 6+)".into());
    LandlockView {
        min_abi: p.landlock_min_abi,
        min_abi_features: landlock::abi_features(p.landlock_min_abi as i32),
        on_missing: on_missing_name(p.on_missing),
        on_missing_meaning: on_missing_meaning(p.on_missing).to_owned(),
        rules,
    }
}

fn limits(p: &Profile) -> LimitsView {
    let l = &p.limits;
    LimitsView {
        memory_bytes: l.memory_bytes,
        max_pids: l.max_pids,
        cpu_weight: l.cpu_weight,
        max_open_files: l.max_open_files,
        effective_memory_bytes: l.memory_bytes.unwrap_or(Limits::DEFAULT_MEMORY),
        effective_max_pids: l.max_pids.unwrap_or(Limits::DEFAULT_MAX_PIDS),
        effective_cpu_weight: l.cpu_weight.unwrap_or(Limits::DEFAULT_CPU_WEIGHT),
        effective_max_open_files: l.max_open_files.unwrap_or(Limits::DEFAULT_MAX_OPEN_FILES),
        note: "defaults for a deploy that sets none; a deploy may ask for other values (up to the global maximums), and a system-tier service's default CPU weight is 1000".into(),
    }
}

/// `words` joined by spaces, wrapped at `width` columns, every line
/// starting with `indent` spaces.
pub fn wrap(words: &[String], indent: usize, width: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut line = pad.clone();
    for w in words {
        if line.len() > indent && line.len() + 1 + w.len() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = pad.clone();
        }
        if line.len() > indent {
            line.push(' ');
        }
        line.push_str(w);
    }
    if line.len() > indent {
        out.push_str(&line);
    }
    out
}

/// One `label: text` line with continuation lines indented under the text.
fn field(out: &mut String, label: &str, width: usize, text: &str) {
    let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    let body = wrap(&words, width + 2, 100);
    out.push_str(&format!("  {label:<width$}{}\n", body.trim_start()));
}

impl Explanation {
    /// The text form.
    pub fn render(&self) -> String {
        let mut o = String::new();
        o.push_str(&format!("{} — {}\n", self.name, self.description));
        match &self.extends {
            Some(e) => o.push_str(&format!("  extends:  {e} (chain: {})\n", self.chain.join(" → "))),
            None => o.push_str("  extends:  nothing (a root profile: it says everything itself)\n"),
        }
        o.push_str(&format!("  source:   {}\n", self.source));
        o.push_str(&format!("  sha256:   {}\n", self.sha256));
        o.push_str("\nEVERY SERVICE, WHATEVER ITS PROFILE\n");
        for s in &self.every_service {
            field(&mut o, "-", 2, s);
        }
        o.push_str("\nNAMESPACES\n");
        for n in &self.namespaces {
            let state = if n.own { "own" } else { "HOST's" };
            field(&mut o, &format!("{:<7}{state}", n.name), 15, &n.meaning);
        }
        let f = &self.filesystem;
        o.push_str("\nFILESYSTEM: a fresh root holding only what is listed here; / itself is read-only\n");
        let ro: Vec<String> = f.read_only.clone();
        field(
            &mut o,
            "read-only:",
            13,
            &format!("{} (host paths, read-only and executable; missing ones are skipped)", ro.join(" ")),
        );
        for u in &f.read_only_other {
            field(&mut o, "", 13, &format!("{}: {}", u.path, u.meaning));
        }
        for (i, u) in f.writable.iter().enumerate() {
            field(&mut o, if i == 0 { "writable:" } else { "" }, 13, &format!("{}: {}", u.path, u.meaning));
        }
        field(&mut o, "devices:", 13, &format!("{} (read and write); nothing else of /dev", devices_words(&f.devices)));
        field(&mut o, "masked:", 13, &format!("{} (in /proc)", f.proc_masked.join(" ")));
        for (i, u) in f.visible_notable.iter().enumerate() {
            field(&mut o, if i == 0 { "EXPOSED:" } else { "" }, 13, &format!("{}: {}", u.path, u.meaning));
        }
        for (i, u) in f.not_visible.iter().enumerate() {
            field(&mut o, if i == 0 { "not visible:" } else { "" }, 13, &format!("{}: {}", u.path, u.meaning));
        }
        let n = &self.network;
        o.push_str("\nNETWORK\n");
        field(&mut o, "mode:", 13, &format!("{}: {}", n.mode, n.meaning));
        field(&mut o, "TCP bind:", 13, if n.tcp_bind { "allowed" } else { "refused" });
        field(&mut o, "TCP connect:", 13, if n.tcp_connect { "allowed" } else { "refused" });
        if n.socket_families.is_empty() {
            field(&mut o, "sockets:", 13, "creates no socket of any family (socket is not allowed)");
        }
        for (i, f) in n.socket_families.iter().enumerate() {
            field(&mut o, if i == 0 { "sockets:" } else { "" }, 13, &format!("{}: {}", f.family, f.meaning));
        }
        if !n.socket_families.is_empty() {
            field(&mut o, "", 13, "every other address family is refused (AF_VSOCK, AF_PACKET, AF_ALG, AF_XDP, ...)");
        }
        for note in &n.notes {
            field(&mut o, "-", 13, note);
        }
        let s = &self.seccomp;
        o.push_str(&format!("\nSECCOMP: an allow list of {} syscalls\n", s.allowed_count));
        field(&mut o, "otherwise:", 13, &format!("{}: {}", s.default_action, s.default_action_meaning));
        field(&mut o, "violation:", 13, &format!("{}: {}", s.on_violation, s.on_violation_meaning));
        for sp in &s.special {
            field(&mut o, "-", 13, sp);
        }
        o.push_str("  allowed:\n");
        for g in &s.allowed {
            group(&mut o, g);
        }
        if s.denied.is_empty() {
            o.push_str("  denied: nothing named (everything not allowed is refused anyway)\n");
        } else {
            o.push_str(
                "  denied by name (refused by the default action; no profile extending this one can allow them):\n",
            );
            for g in &s.denied {
                group(&mut o, g);
            }
        }
        if !s.not_allowed_groups.is_empty() {
            field(
                &mut o,
                "not allowed:",
                13,
                &format!("{} (refused by the default action)", s.not_allowed_groups.join(" ")),
            );
        }
        let l = &self.landlock;
        o.push_str("\nLANDLOCK\n");
        field(&mut o, "min ABI:", 13, &format!("{} ({})", l.min_abi, l.min_abi_features));
        field(&mut o, "on_missing:", 13, &format!("{}: {}", l.on_missing, l.on_missing_meaning));
        for r in &l.rules {
            field(&mut o, "-", 13, r);
        }
        let m = &self.limits;
        o.push_str("\nLIMITS (defaults)\n");
        let src = |set: bool| if set { "" } else { " (global default)" };
        field(
            &mut o,
            "memory:",
            13,
            &format!("{}{}", format_bytes(m.effective_memory_bytes), src(m.memory_bytes.is_some())),
        );
        field(&mut o, "pids:", 13, &format!("{}{}", m.effective_max_pids, src(m.max_pids.is_some())));
        field(&mut o, "cpu weight:", 13, &format!("{}{}", m.effective_cpu_weight, src(m.cpu_weight.is_some())));
        field(&mut o, "open files:", 13, &format!("{}{}", m.effective_max_open_files, src(m.max_open_files.is_some())));
        field(&mut o, "-", 13, &m.note);
        o
    }
}

fn group(o: &mut String, g: &GroupUse) {
    let head: Vec<String> =
        format!("{} ({}): {}", g.name, g.syscalls.len(), g.why).split_whitespace().map(str::to_owned).collect();
    let head = wrap(&head, 8, 100);
    o.push_str(&format!("    {}\n", head.trim_start()));
    o.push_str(&wrap(&g.syscalls, 8, 100));
    o.push('\n');
    if !g.removed.is_empty() {
        o.push_str(&format!("        minus: {}\n", g.removed.join(", ")));
    }
}

/// The syscall groups of `sandbox-profiles/syscalls.toml` as the Markdown
/// section of docs/profiles.md (tests/profiles.rs compares the two).
pub fn groups_markdown() -> String {
    let mut o = String::new();
    for (name, g) in groups::all() {
        let mut calls = g.syscalls.clone();
        calls.sort();
        o.push_str(&format!("#### `{name}`{}\n\n", if g.never { " (deny only)" } else { "" }));
        o.push_str(&format!("{}\n\n", g.why));
        let names: Vec<String> = calls.iter().map(|c| format!("`{c}`")).collect();
        o.push_str(&format!("{} syscalls: {}\n\n", calls.len(), names.join(", ")));
    }
    o
}

/// The syscalls `crate::sandbox::seccomp::compile_as` treats specially (each
/// has a sentence in [`SeccompView::special`]); a test keeps this in step
/// with the compiler.
pub const SPECIAL_SYSCALLS: &[&str] = &["clone", "clone3", "socket", "socketpair"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_special_case_of_the_filter_is_explained() {
        let src = include_str!("../sandbox/seccomp.rs");
        let body = src.split("pub fn compile_as(").nth(1).and_then(|b| b.split("\npub fn ").next()).unwrap_or("");
        let arms: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix('"')?.split_once("\" =>").map(|(n, _)| n))
            .collect();
        assert_eq!(arms, SPECIAL_SYSCALLS, "seccomp::compile special-cases syscalls explain.rs does not describe");
        let set = ProfileSet::builtin().expect("built-ins");
        let e = explain(&set.profiles["base"], &set);
        for s in SPECIAL_SYSCALLS {
            assert!(e.seccomp.special.iter().any(|t| t.starts_with(s)), "no sentence for {s}");
        }
    }

    #[test]
    fn paths_normalize_and_cover() {
        assert_eq!(normalize("/./"), "/");
        assert_eq!(normalize("/usr//lib/"), "/usr/lib");
        let ro = vec!["/etc/ssl".to_owned(), "/usr".to_owned()];
        assert!(covered("/usr/lib", &ro));
        assert!(!covered("/etc", &ro));
        assert_eq!(beneath("/etc", &ro), vec!["/etc/ssl".to_owned()]);
        assert!(covered("/home", &["/.".to_owned()]));
    }

    #[test]
    fn strict_in_words() {
        let set = ProfileSet::builtin().expect("built-ins");
        let e = explain(&set.profiles["strict"], &set);
        let t = e.render();
        for needle in ["kill_process", "user   own", "clone3", "exit_group", "/home", "16MiB", "@mount", "quarantine"] {
            assert!(t.contains(needle), "missing {needle}:\n{t}");
        }
        assert_eq!(e.chain, vec!["strict".to_owned(), "base".to_owned()]);
        assert!(e.seccomp.not_allowed_groups.contains(&"@aio".to_owned()));
    }
}
