//! Sandbox profiles: what each service may do, as data a security team
//! reviews (`sandbox-profiles/*.toml`). The built-ins are embedded in the
//! binary; `solo serve --profiles-dir DIR` adds profiles or overrides a
//! built-in of the same name. Every instance records the profile's name and
//! sha256 (of its file, every file it extends, and the syscall groups).
//!
//! A profile names the profile it `extends`; unset keys are inherited, and
//! a child may only tighten its parent ([`tighten::widenings`]). Errors carry
//! the file, line and column.
//!
//! This module is pure data: the sandbox layer ([`crate::sandbox`]) turns a
//! resolved [`Profile`] into a launch plan and a seccomp filter.

pub mod audit;
pub mod diff;
pub mod explain;
pub mod file;
pub mod groups;
pub mod tighten;

pub use crate::sandbox::seccomp::SocketFamily;
use crate::spec::{parse_bytes, ProfileDefaults};
use file::{line_col, locate, ProfileFile};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Built-in profiles: (name, TOML source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("base", include_str!("../../sandbox-profiles/base.toml")),
    ("default", include_str!("../../sandbox-profiles/default.toml")),
    ("network-client", include_str!("../../sandbox-profiles/network-client.toml")),
    ("web-server", include_str!("../../sandbox-profiles/web-server.toml")),
    ("strict", include_str!("../../sandbox-profiles/strict.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// `file` is `path:line:column`.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read profile {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{file}: profile '{name}' extends unknown profile '{parent}'")]
    UnknownParent { file: String, name: String, parent: String },
    #[error("{file}: profile '{name}': extends chain loops ({chain})")]
    Cycle { file: String, name: String, chain: String },
    #[error("{file}: profile '{name}' widens what it extends ('{parent}'): {}", .findings.join("; "))]
    Widens { file: String, name: String, parent: String, findings: Vec<String> },
}

/// What to do when the host lacks a kernel feature a layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OnMissing {
    /// Run with what the host has; record what was not enforced.
    Degrade,
    /// Fail the launch, naming the layer.
    Refuse,
}

/// Network mode, from widest to narrowest access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetMode {
    /// A private network namespace with no interface up.
    None,
    /// A private network namespace with only `lo` up.
    Loopback,
    /// The host's network namespace.
    Host,
}

/// What a syscall outside the allow list gets, from most to least lenient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeccompAction {
    /// Allowed, and recorded (for writing a profile; enforces nothing).
    Log,
    /// Fails with EPERM, recorded.
    Errno,
    /// The calling process is killed, recorded.
    KillProcess,
}

/// What happens to a service whose main process its filter killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OnViolation {
    /// The restart policy applies as for any other exit.
    Restart,
    /// Not restarted; the service is quarantined until killed or redeployed.
    Quarantine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    pub user: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// Host paths bound read-only at the same path.
    pub read_only: Vec<String>,
    /// Size of the private `/tmp` tmpfs, bytes.
    pub tmp_size: u64,
    /// Names under `/dev` bound from the host.
    pub devices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub mode: NetMode,
    /// May the service bind new TCP ports (Landlock, ABI 4+)?
    pub bind: bool,
    /// The address families `socket(2)` may create (seccomp); sorted, no
    /// duplicates. Granted sockets work whatever this says.
    pub socket_families: Vec<SocketFamily>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seccomp {
    pub default_action: SeccompAction,
    /// As written: groups and names.
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub on_violation: OnViolation,
    /// Under `kill_process`: how long a process that made a denied syscall
    /// has (its call failed with EPERM) to exit on its own, writing what it
    /// has to say, before it is killed; 0 kills at once. A process that
    /// keeps making denied calls is killed at its [`KILL_AFTER_DENIALS`]th.
    pub kill_grace_ms: u32,
}

/// Longest `kill_grace_ms` a profile may set.
pub const MAX_KILL_GRACE_MS: u32 = 60_000;

/// Under a `kill_process` profile with a grace period, the denied call
/// that kills its process at once, whatever is left of the grace: a
/// process that goes on probing the filter does not get the whole grace.
pub const KILL_AFTER_DENIALS: u32 = 16;

/// A profile with everything inherited filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub extends: Option<String>,
    /// Where it came from: `builtin:sandbox-profiles/NAME.toml` or a path.
    pub file: String,
    /// sha256 of this file's text followed by each ancestor's, in order,
    /// and of `sandbox-profiles/syscalls.toml` (the group definitions).
    pub sha256: String,
    pub on_missing: OnMissing,
    pub namespaces: Namespaces,
    pub filesystem: Filesystem,
    pub network: Network,
    pub seccomp: Seccomp,
    pub landlock_min_abi: u32,
    pub limits: ProfileDefaults,
}

/// Devices a profile may list: harmless character devices only.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

impl Profile {
    /// The syscalls allowed: `allow` expanded, minus `deny` expanded, and
    /// minus `bind` and `listen` on the host network when `bind = false`
    /// (Landlock's TCP rules miss UDP, MPTCP and `listen` on an unbound
    /// socket, which binds a port by itself).
    pub fn allowed_syscalls(&self) -> BTreeSet<String> {
        let allow = groups::expand(&self.seccomp.allow).unwrap_or_default();
        let mut deny = self.denied_syscalls();
        if self.network.mode == NetMode::Host && !self.network.bind {
            deny.extend(["bind".to_owned(), "listen".to_owned()]);
        }
        allow.into_iter().filter(|s| !deny.contains(s)).collect()
    }

    /// The syscalls named by `deny`, expanded.
    pub fn denied_syscalls(&self) -> BTreeSet<String> {
        groups::expand(&self.seccomp.deny).unwrap_or_default()
    }
}

/// A file's own values, validated; `None` where the file is silent.
struct Parsed {
    file: String,
    src: String,
    raw: ProfileFile,
}

fn invalid(file: &str, src: &str, section: &str, key: &str, message: String) -> ProfileError {
    let (l, c) = locate(src, section, key);
    ProfileError::Invalid { file: format!("{file}:{l}:{c}"), message }
}

/// Parses one file (syntax and unknown keys; values are checked when the
/// profile is resolved, with the same line/column reporting).
fn parse(file: &str, src: &str) -> Result<Parsed, ProfileError> {
    let raw: ProfileFile = toml::from_str(src).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(src, s.start)).unwrap_or((1, 1));
        ProfileError::Invalid { file: format!("{file}:{line}:{col}"), message: e.message().to_owned() }
    })?;
    if crate::spec::validate_service_id(&raw.name).is_err() {
        return Err(invalid(
            file,
            src,
            "",
            "name",
            format!("name '{}' must match [a-z0-9][a-z0-9-]{{0,62}}", raw.name.escape_debug()),
        ));
    }
    Ok(Parsed { file: file.to_owned(), src: src.to_owned(), raw })
}

fn one_of<T: Copy>(p: &Parsed, section: &str, key: &str, v: &str, table: &[(&str, T)]) -> Result<T, ProfileError> {
    table.iter().find(|(n, _)| *n == v).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        let at = if section.is_empty() { key.to_owned() } else { format!("[{section}] {key}") };
        invalid(
            &p.file,
            &p.src,
            section,
            key,
            format!("{at}: '{}' is not one of {}", v.escape_debug(), names.join(", ")),
        )
    })
}

/// Applies `p`'s own values over `base` (its resolved parent, or the
/// empty profile for a root).
fn apply(p: &Parsed, base: Option<&Profile>) -> Result<Profile, ProfileError> {
    let r = &p.raw;
    let err = |section: &str, key: &str, m: String| invalid(&p.file, &p.src, section, key, m);
    // A root profile must say everything: nothing to inherit from.
    let need = |section: &str, key: &str| {
        err(section, key, format!("[{section}] {key} is required in a profile that extends nothing"))
    };
    let on_missing = match &r.on_missing {
        Some(v) => one_of(p, "", "on_missing", v, &[("degrade", OnMissing::Degrade), ("refuse", OnMissing::Refuse)])?,
        None => base.map(|b| b.on_missing).ok_or_else(|| need("", "on_missing"))?,
    };
    let ns = &r.namespaces;
    let bns = base.map(|b| b.namespaces.clone());
    let pick = |v: Option<bool>, key: &str, f: fn(&Namespaces) -> bool| -> Result<bool, ProfileError> {
        v.or(bns.as_ref().map(f)).ok_or_else(|| need("namespaces", key))
    };
    let namespaces = Namespaces {
        mount: pick(ns.mount, "mount", |n| n.mount)?,
        pid: pick(ns.pid, "pid", |n| n.pid)?,
        ipc: pick(ns.ipc, "ipc", |n| n.ipc)?,
        uts: pick(ns.uts, "uts", |n| n.uts)?,
        cgroup: pick(ns.cgroup, "cgroup", |n| n.cgroup)?,
        user: pick(ns.user, "user", |n| n.user)?,
    };
    if !namespaces.mount {
        return Err(err(
            "namespaces",
            "mount",
            "[namespaces] mount = false is not supported: every Solo service gets its own filesystem view".into(),
        ));
    }
    let fs = &r.filesystem;
    let read_only = match &fs.read_only {
        Some(v) => {
            for path in v {
                let normal = path.starts_with('/')
                    && !path.contains('\0')
                    && path.len() > 1
                    && !path.ends_with('/')
                    && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
                if !normal {
                    return Err(err(
                        "filesystem",
                        "read_only",
                        format!(
                            "[filesystem] read_only: '{}' is not a normalised absolute path (no '.', '..', '//' or trailing '/')",
                            path.escape_debug()
                        ),
                    ));
                }
                let reserved = ["/proc", "/dev", "/tmp", "/data", "/app", "/run", "/sys", "/var/lib/solo"];
                if reserved.iter().any(|r| path == r || path.starts_with(&format!("{r}/"))) {
                    return Err(err("filesystem", "read_only", format!("[filesystem] read_only: '{path}' is managed by the sandbox itself and cannot be bound from the host")));
                }
            }
            v.clone()
        }
        None => base.map(|b| b.filesystem.read_only.clone()).ok_or_else(|| need("filesystem", "read_only"))?,
    };
    let tmp_size = match &fs.tmp_size {
        Some(s) => parse_bytes(s).map_err(|m| err("filesystem", "tmp_size", format!("[filesystem] tmp_size: {m}")))?,
        None => base.map(|b| b.filesystem.tmp_size).ok_or_else(|| need("filesystem", "tmp_size"))?,
    };
    let devices = match &fs.devices {
        Some(v) => {
            for d in v {
                if !DEVICES.contains(&d.as_str()) {
                    return Err(err(
                        "filesystem",
                        "devices",
                        format!("[filesystem] devices: '{}' is not one of {}", d.escape_debug(), DEVICES.join(", ")),
                    ));
                }
            }
            v.clone()
        }
        None => base.map(|b| b.filesystem.devices.clone()).ok_or_else(|| need("filesystem", "devices"))?,
    };
    let mode = match &r.network.mode {
        Some(v) => one_of(
            p,
            "network",
            "mode",
            v,
            &[("none", NetMode::None), ("loopback", NetMode::Loopback), ("host", NetMode::Host)],
        )?,
        None => base.map(|b| b.network.mode).ok_or_else(|| need("network", "mode"))?,
    };
    let bind = match r.network.bind {
        Some(b) => b,
        None => base.map(|b| b.network.bind).ok_or_else(|| need("network", "bind"))?,
    };
    let socket_families = match &r.network.socket_families {
        Some(v) => {
            let mut out = Vec::new();
            for name in v {
                let f = SocketFamily::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = SocketFamily::ALL.iter().map(|f| f.name()).collect();
                    err(
                        "network",
                        "socket_families",
                        format!(
                            "[network] socket_families: '{}' is not one of {} (other address families are never allowed)",
                            name.escape_debug(),
                            names.join(", ")
                        ),
                    )
                })?;
                if !out.contains(&f) {
                    out.push(f);
                }
            }
            out.sort();
            out
        }
        None => base.map(|b| b.network.socket_families.clone()).ok_or_else(|| need("network", "socket_families"))?,
    };
    // A family that reaches a network needs one: in mode none such a socket
    // could only be created, never used, and each is kernel attack surface.
    if mode == NetMode::None {
        if let Some(f) = socket_families.iter().find(|f| **f != SocketFamily::Unix) {
            let (from, fix) = match (&r.network.socket_families, &r.extends) {
                (None, Some(parent)) => (format!(" (inherited from '{parent}')"), "; set socket_families = [\"unix\"]"),
                _ => (String::new(), ""),
            };
            return Err(err(
                "network",
                "socket_families",
                format!(
                    "[network] socket_families: '{}'{from} needs a network, and mode is \"none\" (granted sockets need no family here){fix}",
                    f.name()
                ),
            ));
        }
    }
    let sc = &r.seccomp;
    let default_action = match &sc.default_action {
        Some(v) => one_of(
            p,
            "seccomp",
            "default_action",
            v,
            &[
                ("log", SeccompAction::Log),
                ("errno", SeccompAction::Errno),
                ("kill_process", SeccompAction::KillProcess),
            ],
        )?,
        None => base.map(|b| b.seccomp.default_action).ok_or_else(|| need("seccomp", "default_action"))?,
    };
    let on_violation = match &sc.on_violation {
        Some(v) => one_of(
            p,
            "seccomp",
            "on_violation",
            v,
            &[("restart", OnViolation::Restart), ("quarantine", OnViolation::Quarantine)],
        )?,
        None => base.map(|b| b.seccomp.on_violation).ok_or_else(|| need("seccomp", "on_violation"))?,
    };
    let kill_grace_ms = match sc.kill_grace_ms {
        Some(v) if v > MAX_KILL_GRACE_MS => {
            return Err(err(
                "seccomp",
                "kill_grace_ms",
                format!("[seccomp] kill_grace_ms: {v} is more than {MAX_KILL_GRACE_MS} (one minute)"),
            ))
        }
        Some(_) if default_action != SeccompAction::KillProcess => {
            return Err(err(
                "seccomp",
                "kill_grace_ms",
                format!(
                    "[seccomp] kill_grace_ms: applies only with default_action = \"kill_process\" (this profile's is \"{}\")",
                    explain::action_name(default_action)
                ),
            ))
        }
        Some(v) => v,
        // Only kill_process uses it; a root profile need not say it.
        None => base.map(|b| b.seccomp.kill_grace_ms).unwrap_or(0),
    };
    let list = |v: &Option<Vec<String>>,
                key: &str,
                inherited: Option<Vec<String>>|
     -> Result<Vec<String>, ProfileError> {
        match v {
            Some(l) => {
                let expanded = groups::expand(l).map_err(|m| err("seccomp", key, format!("[seccomp] {key}: {m}")))?;
                let known = groups::known_syscalls();
                if let Some(bad) = expanded.iter().find(|s| !known.contains(s.as_str())) {
                    return Err(err("seccomp", key, format!("[seccomp] {key}: '{bad}' is not a syscall any group in sandbox-profiles/syscalls.toml knows")));
                }
                Ok(l.clone())
            }
            None => inherited.ok_or_else(|| need("seccomp", key)),
        }
    };
    let allow = list(&sc.allow, "allow", base.map(|b| b.seccomp.allow.clone()))?;
    if !allow.iter().any(|a| a == "@default") {
        return Err(err(
            "seccomp",
            "allow",
            "[seccomp] allow: must include @default (no program can start without it)".into(),
        ));
    }
    // A child's deny list adds to its parent's: deny only ever grows.
    let mut deny = base.map(|b| b.seccomp.deny.clone()).unwrap_or_default();
    for d in list(&sc.deny, "deny", Some(Vec::new()))? {
        if !deny.contains(&d) {
            deny.push(d);
        }
    }
    let never: BTreeSet<&str> =
        groups::all().values().filter(|g| g.never).flat_map(|g| g.syscalls.iter().map(String::as_str)).collect();
    if let Some(bad) = groups::expand(&allow).unwrap_or_default().into_iter().find(|s| never.contains(s.as_str())) {
        return Err(err(
            "seccomp",
            "allow",
            format!("[seccomp] allow: {bad} belongs to a deny-only group (it would undo the sandbox)"),
        ));
    }
    let never_allowed: Vec<&String> =
        allow.iter().filter(|a| groups::all().get(a.as_str()).is_some_and(|g| g.never)).collect();
    if let Some(g) = never_allowed.first() {
        return Err(err(
            "seccomp",
            "allow",
            format!("[seccomp] allow: {g} is a deny-only group (it would undo the sandbox)"),
        ));
    }
    let landlock_min_abi = match r.landlock.min_abi {
        Some(v) if !(1..=64).contains(&v) => {
            return Err(err("landlock", "min_abi", format!("[landlock] min_abi: {v} is not between 1 and 64")))
        }
        Some(v) => v,
        None => base.map(|b| b.landlock_min_abi).ok_or_else(|| need("landlock", "min_abi"))?,
    };
    let l = &r.limits;
    let memory_bytes = match &l.memory_bytes {
        Some(s) => {
            Some(parse_bytes(s).map_err(|m| err("limits", "memory_bytes", format!("[limits] memory_bytes: {m}")))?)
        }
        None => None,
    };
    let own = ProfileDefaults {
        memory_bytes,
        max_pids: l.max_pids,
        cpu_weight: l.cpu_weight,
        max_open_files: l.max_open_files,
    };
    let limits = match base {
        Some(b) => own.or(b.limits),
        None => own,
    };
    let mut h = Sha256::new();
    h.update(p.src.as_bytes());
    match base {
        Some(b) => h.update(b.sha256.as_bytes()),
        // A root profile also covers the syscall groups every name in an
        // allow or deny list expands through: the same file under other
        // group definitions is another filter.
        None => h.update(groups::SOURCE.as_bytes()),
    }
    Ok(Profile {
        name: r.name.clone(),
        description: r.description.clone(),
        extends: r.extends.clone(),
        file: p.file.clone(),
        sha256: hex::encode(h.finalize()),
        on_missing,
        namespaces,
        filesystem: Filesystem { read_only, tmp_size, devices },
        network: Network { mode, bind, socket_families },
        seccomp: Seccomp { default_action, allow, deny, on_violation, kill_grace_ms },
        landlock_min_abi,
        limits,
    })
}

/// Resolves every parsed file along `extends`, checking that each child
/// only tightens its parent.
fn resolve(parsed: &BTreeMap<String, Parsed>) -> Result<BTreeMap<String, Profile>, ProfileError> {
    let mut done: BTreeMap<String, Profile> = BTreeMap::new();
    for name in parsed.keys() {
        resolve_one(name, parsed, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

fn resolve_one(
    name: &str,
    parsed: &BTreeMap<String, Parsed>,
    done: &mut BTreeMap<String, Profile>,
    chain: &mut Vec<String>,
) -> Result<(), ProfileError> {
    if done.contains_key(name) {
        return Ok(());
    }
    let p = &parsed[name];
    if chain.iter().any(|c| c == name) {
        chain.push(name.to_owned());
        return Err(ProfileError::Cycle { file: p.file.clone(), name: name.to_owned(), chain: chain.join(" → ") });
    }
    chain.push(name.to_owned());
    let parent = match &p.raw.extends {
        Some(parent) => {
            if !parsed.contains_key(parent) {
                let (l, c) = locate(&p.src, "", "extends");
                return Err(ProfileError::UnknownParent {
                    file: format!("{}:{l}:{c}", p.file),
                    name: name.to_owned(),
                    parent: parent.clone(),
                });
            }
            resolve_one(parent, parsed, done, chain)?;
            Some(done[parent].clone())
        }
        None => None,
    };
    chain.pop();
    let profile = apply(p, parent.as_ref())?;
    if let Some(parent) = &parent {
        let findings = tighten::widenings(parent, &profile);
        if !findings.is_empty() {
            return Err(ProfileError::Widens {
                file: p.file.clone(),
                name: name.to_owned(),
                parent: parent.name.clone(),
                findings,
            });
        }
    }
    done.insert(name.to_owned(), profile);
    Ok(())
}

/// The profiles a daemon serves: the built-ins, plus every `*.toml` in
/// `dir` (a file overrides the built-in of the same name).
#[derive(Debug, Clone)]
pub struct ProfileSet {
    pub profiles: BTreeMap<String, Profile>,
}

impl ProfileSet {
    pub fn builtin() -> Result<ProfileSet, ProfileError> {
        ProfileSet::load(None)
    }

    pub fn load(dir: Option<&Path>) -> Result<ProfileSet, ProfileError> {
        let parsed = parse_sources(dir)?;
        Ok(ProfileSet { profiles: resolve(&parsed)? })
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Limit defaults per profile, for spec validation.
    pub fn defaults(&self) -> BTreeMap<String, ProfileDefaults> {
        self.profiles.iter().map(|(n, p)| (n.clone(), p.limits)).collect()
    }
}

/// The built-ins, then every `*.toml` of `dir` (a file overrides the
/// built-in of the same name), parsed but not resolved.
fn parse_sources(dir: Option<&Path>) -> Result<BTreeMap<String, Parsed>, ProfileError> {
    let mut parsed = BTreeMap::new();
    for (name, src) in BUILTIN {
        let p = parse(&format!("sandbox-profiles/{name}.toml"), src)?;
        parsed.insert((*name).to_owned(), p);
    }
    let Some(dir) = dir else { return Ok(parsed) };
    let entries = std::fs::read_dir(dir).map_err(|cause| ProfileError::Read { path: dir.into(), cause })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        // The syscall groups file sits next to the built-ins.
        .filter(|p| p.file_name().is_none_or(|n| n != "syscalls.toml"))
        .collect();
    files.sort();
    for path in files {
        let p = parse_path(&path)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if stem != p.raw.name {
            return Err(invalid(
                &p.file,
                &p.src,
                "",
                "name",
                format!("name '{}' must match the file name '{stem}.toml'", p.raw.name),
            ));
        }
        parsed.insert(p.raw.name.clone(), p);
    }
    Ok(parsed)
}

fn parse_path(path: &Path) -> Result<Parsed, ProfileError> {
    let src = std::fs::read_to_string(path).map_err(|cause| ProfileError::Read { path: path.into(), cause })?;
    parse(&path.display().to_string(), &src)
}

/// Checks one profile file (for `solo profile check`): it parses, its
/// values are valid, and it only tightens what it extends. A file that
/// extends a built-in is resolved against the built-ins; `dir` adds more.
pub fn check_file(path: &Path, dir: Option<&Path>) -> Result<Profile, ProfileError> {
    let p = parse_path(path)?;
    let mut parsed = parse_sources(dir)?;
    // The profiles it may extend must themselves be valid.
    resolve(&parsed)?;
    let name = p.raw.name.clone();
    parsed.insert(name.clone(), p);
    let mut done = BTreeMap::new();
    resolve_one(&name, &parsed, &mut done, &mut Vec::new())?;
    done.remove(&name)
        .ok_or_else(|| ProfileError::Invalid { file: path.display().to_string(), message: "did not resolve".into() })
}

/// Finds a profile by name, or loads it from a path (a name with a `/` or
/// ending in `.toml`).
pub fn find(name_or_path: &str, dir: Option<&Path>) -> Result<Profile, ProfileError> {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        return check_file(Path::new(name_or_path), dir);
    }
    let set = ProfileSet::load(dir)?;
    set.get(name_or_path).cloned().ok_or_else(|| {
        let known: Vec<&str> = set.profiles.keys().map(String::as_str).collect();
        ProfileError::Invalid {
            file: name_or_path.to_owned(),
            message: format!("no such profile (known: {}; or give a path to a .toml file)", known.join(", ")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ProfileSet {
        ProfileSet::builtin().expect("built-in profiles resolve")
    }

    #[test]
    fn builtins_resolve_and_name_themselves() {
        let s = set();
        assert_eq!(s.profiles.len(), BUILTIN.len());
        for (name, p) in &s.profiles {
            assert_eq!(&p.name, name);
            assert!(!p.description.is_empty());
            assert!(p.allowed_syscalls().contains("exit_group"));
            assert!(!p.allowed_syscalls().contains("ptrace"), "{name} allows ptrace");
        }
    }

    #[test]
    fn values_inherit_along_extends() {
        let s = set();
        let strict = &s.profiles["strict"];
        assert_eq!(strict.limits.memory_bytes, Some(64 << 20));
        assert_eq!(strict.limits.max_pids, Some(8));
        assert_eq!(strict.limits.max_open_files, Some(1024), "inherited from base");
        assert!(strict.namespaces.pid, "inherited from base");
        assert!(strict.namespaces.user);
        assert_eq!(s.profiles["default"].network.mode, NetMode::None);
        assert_eq!(s.profiles["default"].limits.memory_bytes, Some(256 << 20));
        assert!(strict.seccomp.deny.iter().any(|d| d == "@mount"), "deny is inherited");
        // Socket families: IP and netlink only with a network.
        use SocketFamily::*;
        assert_eq!(s.profiles["base"].network.socket_families, [Unix, Inet, Inet6, NetlinkRoute]);
        assert_eq!(s.profiles["network-client"].network.socket_families, [Unix, Inet, Inet6, NetlinkRoute]);
        assert_eq!(s.profiles["default"].network.socket_families, [Unix]);
        assert_eq!(s.profiles["web-server"].network.socket_families, [Unix]);
        assert!(strict.network.socket_families.is_empty());
    }

    #[test]
    fn a_change_in_a_parent_changes_the_childs_hash() {
        let s = set();
        assert_ne!(s.profiles["default"].sha256, s.profiles["base"].sha256);
        assert_eq!(s.profiles["default"].sha256.len(), 64);
    }

    #[test]
    fn errors_have_file_line_and_column() {
        let cases = [
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[limits]\nmax_pidz = 3\n",
                "x.toml:5:1",
                "max_pidz",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[limits]\nmemory_bytes = \"lots\"\n",
                "x.toml:5:1",
                "memory_bytes",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[network]\nmode = \"wide\"\n",
                "x.toml:5:1",
                "'wide'",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[seccomp]\nallow = [\"@default\", \"@nope\"]\n",
                "x.toml:5:1",
                "@nope",
            ),
            ("name = \"x\"\ndescription = \"d\"\nextends = \"nope\"\n", "x.toml:3:1", "unknown profile 'nope'"),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"default\"\n[network]\nmode = \"host\"\n",
                "x.toml",
                "[network] mode",
            ),
            // kill_grace_ms: bounded, only with kill_process, and a child
            // of strict may shorten it, not lengthen it.
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"strict\"\n[seccomp]\nkill_grace_ms = 60001\n",
                "x.toml:5:1",
                "[seccomp] kill_grace_ms: 60001 is more than 60000",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[seccomp]\nkill_grace_ms = 10\n",
                "x.toml:5:1",
                "[seccomp] kill_grace_ms: applies only with default_action = \"kill_process\" (this profile's is \"errno\")",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"strict\"\n[seccomp]\nkill_grace_ms = 5000\n",
                "x.toml",
                "[seccomp] kill_grace_ms: 5000 ms is longer than the parent's 1000 ms",
            ),
            // Address families: only the known names; IP ones need a
            // network; a child cannot add one its parent lacks.
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[network]\nsocket_families = [\"unix\", \"vsock\"]\n",
                "x.toml:5:1",
                "[network] socket_families: 'vsock' is not one of unix, inet, inet6, netlink-route",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"base\"\n[network]\nmode = \"none\"\n",
                "x.toml:4:1",
                "[network] socket_families: 'inet' (inherited from 'base') needs a network, and mode is \"none\"",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"default\"\n[network]\nmode = \"none\"\nsocket_families = [\"unix\", \"inet\"]\n",
                "x.toml:6:1",
                "'inet' needs a network",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nextends = \"network-client\"\n[network]\nsocket_families = [\"unix\", \"inet\"]\n",
                "",
                "",
            ),
        ];
        let dir = std::env::temp_dir().join(format!("solo-profile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (src, at, what) in cases {
            let f = dir.join("x.toml");
            std::fs::write(&f, src).expect("write");
            if at.is_empty() {
                // A valid narrowing, as a control.
                let p = check_file(&f, None).expect(src);
                assert_eq!(p.network.socket_families, [SocketFamily::Unix, SocketFamily::Inet]);
                continue;
            }
            let e = check_file(&f, None).expect_err(src).to_string();
            assert!(e.contains(at) && e.contains(what), "{src}\n→ {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
