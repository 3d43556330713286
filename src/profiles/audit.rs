//! `solo profile audit`: an exposure score for a profile, 0.0 (most locked
//! down) to 10.0, in the spirit of `systemd-analyze security`.
//!
//! Every check is one row of [`CHECKS`]: an id, a weight, why it matters,
//! and a test that says whether the profile is exposed and describes what
//! it found. The score is `10 × (sum of exposed weights) / (sum of all
//! weights)`, rounded to one decimal, so scores of different profiles are
//! comparable: the denominator is the same for every profile.
//!
//! The weights and their reasons are documented in docs/profiles.md; a test
//! checks that every id appears there.

use super::explain::{covered, normalize};
use super::{NetMode, OnMissing, OnViolation, Profile, SeccompAction};
use crate::spec::{format_bytes, Limits};
use serde::Serialize;

/// One check: a row of the weight table.
pub struct Check {
    pub id: &'static str,
    /// The layer it belongs to (for grouping in the output).
    pub layer: &'static str,
    /// How much this exposure counts, relative to the others.
    pub weight: f64,
    /// Why it matters (the documentation of the weight).
    pub why: &'static str,
    /// Whether the profile is exposed, and what was found, in one sentence.
    pub test: fn(&Profile) -> (bool, String),
}

/// The weight table. Keep docs/profiles.md in step (a test checks the ids).
pub const CHECKS: &[Check] = &[
    // Namespaces.
    Check { id: "ns-no-pid", layer: "namespaces", weight: 0.8, why: "without a pid namespace the service sees every host process (command lines, environment of its own uid) and can signal its own uid's processes outside the sandbox", test: no_pid },
    Check { id: "ns-no-ipc", layer: "namespaces", weight: 0.4, why: "without an IPC namespace System V segments and POSIX queues of the host are reachable", test: no_ipc },
    Check { id: "ns-no-uts", layer: "namespaces", weight: 0.1, why: "the host's name leaks; little else", test: no_uts },
    Check { id: "ns-no-cgroup", layer: "namespaces", weight: 0.2, why: "the host's cgroup layout (and the daemon's place in it) leaks", test: no_cgroup },
    Check { id: "ns-no-user", layer: "namespaces", weight: 0.3, why: "defence in depth: a capability regained by a kernel exploit would be the host's, not a user namespace's", test: no_user },
    // Filesystem.
    Check { id: "fs-etc-whole", layer: "filesystem", weight: 1.0, why: "all of /etc: accounts, every daemon's configuration, secrets readable by others", test: etc_whole },
    Check { id: "fs-etc-files", layer: "filesystem", weight: 0.3, why: "single /etc files beyond the loader cache (TLS roots, resolver, hosts) describe the host and its network", test: etc_files },
    Check { id: "fs-host-data", layer: "filesystem", weight: 1.0, why: "/home, /root, /var (the daemon's state is under /var/lib/solo), /run, /srv, /opt, /mnt, /media, /boot or /sys hold users', services' or the kernel's data", test: host_data },
    Check { id: "fs-other-paths", layer: "filesystem", weight: 0.4, why: "a host path outside the system directories (/usr, /bin, /sbin, /lib*) and /etc: unknown content, reviewed case by case", test: other_paths },
    Check { id: "fs-devices", layer: "filesystem", weight: 0.1, why: "every device beyond /dev/null and /dev/zero is more kernel code reachable (all the allowed ones are harmless character devices)", test: devices },
    Check { id: "fs-tmp-large", layer: "filesystem", weight: 0.2, why: "a /tmp (and /dev/shm) above 16MiB lets the service hold more memory in files; it is charged to its memory limit", test: tmp_large },
    // Network.
    Check { id: "net-host", layer: "network", weight: 1.5, why: "the host's network: any destination, the host's loopback services (other services, Solo's --listen port), the host's abstract Unix sockets", test: net_host },
    Check { id: "net-interface", layer: "network", weight: 0.2, why: "any interface at all (loopback or host) is more kernel network code in use", test: net_interface },
    Check { id: "net-bind", layer: "network", weight: 0.8, why: "binding TCP ports on the host's interfaces: the service can offer services to the network or squat a port another service needs", test: net_bind },
    Check { id: "net-bind-unenforced", layer: "network", weight: 0.3, why: "bind = false in the host network left to Landlock alone (ABI 4+) with a lower min_abi: an older kernel runs the service without it. Solo removes bind and listen from the seccomp allow list in that case, so this fires only if that removal is ever lost", test: bind_unenforced },
    // Seccomp.
    Check { id: "seccomp-log", layer: "seccomp", weight: 2.0, why: "default_action = log enforces nothing: every syscall runs, deny lists included", test: seccomp_log },
    Check { id: "seccomp-never-group", layer: "seccomp", weight: 2.0, why: "a syscall of a deny-only group (@mount, @namespaces, @debug, @kernel, @host, @privileged) allowed by name: the loader refuses these groups by group name only, and each of them can undo the sandbox", test: never_group },
    Check { id: "seccomp-not-kill", layer: "seccomp", weight: 0.5, why: "errno (or log) lets a hostile process probe the filter and carry on; kill_process stops it (at once, or after kill_grace_ms, and at its 16th denied call at the latest)", test: seccomp_not_kill },
    Check { id: "seccomp-sockets", layer: "seccomp", weight: 0.3, why: "socket calls at all: even Unix sockets are more kernel code (other address families are counted by seccomp-socket-families)", test: sockets },
    Check { id: "seccomp-socket-families", layer: "seccomp", weight: 0.5, why: "socket() may create IP (inet, inet6) or netlink sockets: the IP stack and netlink are large kernel interfaces and a frequent source of kernel bugs (every other family, AF_VSOCK, AF_PACKET, AF_ALG, ..., is refused whatever the profile)", test: socket_families },
    Check { id: "seccomp-sysv-ipc", layer: "seccomp", weight: 0.3, why: "System V IPC and POSIX message queues are old, large kernel interfaces (pipes are not counted)", test: sysv_ipc },
    Check { id: "seccomp-signals", layer: "seccomp", weight: 0.3, why: "kill, tgkill, pidfd_send_signal and friends act on other processes; the pid namespace and Landlock scoping bound them", test: signals },
    Check { id: "seccomp-aio", layer: "seccomp", weight: 0.3, why: "native AIO is rarely needed and has a history of kernel bugs", test: aio },
    Check { id: "seccomp-chown", layer: "seccomp", weight: 0.2, why: "chown is rarely needed by a service that owns its files already", test: chown },
    Check { id: "seccomp-memfd", layer: "seccomp", weight: 0.3, why: "memfd_create gives anonymous files that no path-based rule (the view, noexec mounts, Landlock) covers; only the kernel's vm.memfd_noexec (Linux 6.3+) keeps code written to one from being executed", test: memfd },
    // Landlock.
    Check { id: "landlock-min-abi", layer: "landlock", weight: 0.2, why: "below ABI 6 nothing guarantees signal and abstract-socket scoping, below 4 no TCP rules", test: landlock_abi },
    Check { id: "landlock-degrade", layer: "landlock", weight: 0.4, why: "on_missing = degrade runs the service without Landlock (or with less), or without vm.memfd_noexec, on a kernel that lacks them", test: landlock_degrade },
    // Limits (defaults for deploys).
    Check { id: "limits-memory", layer: "limits", weight: 0.2, why: "a default memory limit above 128MiB (or none: the global 256MiB) lets a runaway service take more of the host", test: limits_memory },
    Check { id: "limits-pids", layer: "limits", weight: 0.2, why: "more than 32 processes by default (or none: the global 64) makes fork bombs and thread storms costlier", test: limits_pids },
    Check { id: "limits-open-files", layer: "limits", weight: 0.1, why: "more than 1024 descriptors by default", test: limits_open_files },
    Check { id: "limits-cpu-weight", layer: "limits", weight: 0.1, why: "a CPU weight above 100 by default takes CPU from the other services", test: limits_cpu },
    // Violations.
    Check { id: "violation-restart", layer: "seccomp", weight: 0.4, why: "a service its filter killed is restarted, so a hostile one gets to try again", test: violation_restart },
];

/// One finding of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub layer: &'static str,
    pub weight: f64,
    pub exposed: bool,
    pub sentence: String,
}

/// An audit: the score and every finding.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub name: String,
    pub sha256: String,
    /// 0.0 (most locked down) .. 10.0.
    pub score: f64,
    pub exposed_weight: f64,
    pub total_weight: f64,
    pub findings: Vec<Finding>,
}

/// Audits `p`.
pub fn audit(p: &Profile) -> Audit {
    let findings: Vec<Finding> = CHECKS
        .iter()
        .map(|c| {
            let (exposed, sentence) = (c.test)(p);
            Finding { id: c.id, layer: c.layer, weight: c.weight, exposed, sentence }
        })
        .collect();
    let total: f64 = CHECKS.iter().map(|c| c.weight).sum();
    let exposed: f64 = findings.iter().filter(|f| f.exposed).map(|f| f.weight).sum();
    Audit {
        name: p.name.clone(),
        sha256: p.sha256.clone(),
        score: score(exposed, total),
        exposed_weight: round1(exposed),
        total_weight: round1(total),
        findings,
    }
}

/// `10 × exposed / total`, rounded to one decimal.
pub fn score(exposed: f64, total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    round1(10.0 * exposed / total)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Audit {
    /// The text form: the score, then one finding per line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}: exposure {:.1}/10 ({:.1} of {:.1} weight exposed; 0 is most locked down)\n\n",
            self.name, self.score, self.exposed_weight, self.total_weight
        );
        let w = self.findings.iter().map(|f| f.id.len()).max().unwrap_or(0);
        out.push_str(&format!("{:<7}  {:<w$}  {:>6}  FINDING\n", "EXPOSED", "ID", "WEIGHT"));
        for f in &self.findings {
            out.push_str(&format!(
                "{:<7}  {:<w$}  {:>6.1}  {}\n",
                if f.exposed { "yes" } else { "no" },
                f.id,
                f.weight,
                f.sentence
            ));
        }
        out
    }
}

/// The weight table as the Markdown section of docs/profiles.md
/// (tests/profiles.rs compares the two).
pub fn weights_markdown() -> String {
    let total: f64 = CHECKS.iter().map(|c| c.weight).sum();
    let mut o = String::from("| id | layer | weight | why |\n|---|---|---|---|\n");
    for c in CHECKS {
        o.push_str(&format!("| `{}` | {} | {:.1} | {} |\n", c.id, c.layer, c.weight, c.why));
    }
    o.push_str(&format!("\nTotal weight: {total:.1}.\n"));
    o
}

// ---- the tests, one per row --------------------------------------------

fn ns(own: bool, name: &str, yes: &str) -> (bool, String) {
    if own {
        (false, format!("own {name} namespace"))
    } else {
        (true, format!("no {name} namespace: {yes}"))
    }
}

fn no_pid(p: &Profile) -> (bool, String) {
    ns(p.namespaces.pid, "pid", "sees every host process in /proc")
}
fn no_ipc(p: &Profile) -> (bool, String) {
    ns(p.namespaces.ipc, "ipc", "shares the host's System V IPC and POSIX queues")
}
fn no_uts(p: &Profile) -> (bool, String) {
    ns(p.namespaces.uts, "uts", "sees the host's name")
}
fn no_cgroup(p: &Profile) -> (bool, String) {
    ns(p.namespaces.cgroup, "cgroup", "sees the host's cgroup paths")
}
fn no_user(p: &Profile) -> (bool, String) {
    ns(p.namespaces.user, "user", "a regained capability would be the host's")
}

/// The system directories whose content is programs and libraries.
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// Host directories that hold data rather than programs.
const DATA_DIRS: &[&str] = &["/home", "/root", "/var", "/run", "/srv", "/opt", "/mnt", "/media", "/boot", "/sys"];
/// /etc files every program needs and that say nothing about the host.
const HARMLESS_ETC: &[&str] = &["/etc/ld.so.cache"];

fn under(path: &str, dirs: &[&str]) -> bool {
    let p = normalize(path);
    dirs.iter().any(|d| p == *d || p.starts_with(&format!("{d}/")))
}

fn list(v: &[String]) -> String {
    v.join(", ")
}

fn etc_whole(p: &Profile) -> (bool, String) {
    if covered("/etc", &p.filesystem.read_only) {
        (true, "all of the host's /etc is visible (read-only)".into())
    } else {
        (false, "the host's /etc is not visible as a whole".into())
    }
}

fn etc_files(p: &Profile) -> (bool, String) {
    let files: Vec<String> = p
        .filesystem
        .read_only
        .iter()
        .filter(|r| under(r, &["/etc"]) && normalize(r) != "/etc" && !HARMLESS_ETC.contains(&normalize(r).as_str()))
        .cloned()
        .collect();
    if files.is_empty() {
        (false, "no /etc file beyond the loader cache".into())
    } else {
        (true, format!("reads host configuration: {}", list(&files)))
    }
}

fn host_data(p: &Profile) -> (bool, String) {
    let hit: Vec<String> =
        p.filesystem.read_only.iter().filter(|r| normalize(r) == "/" || under(r, DATA_DIRS)).cloned().collect();
    if hit.is_empty() {
        (false, "no host data directory is visible".into())
    } else {
        (true, format!("host data visible read-only: {}", list(&hit)))
    }
}

fn other_paths(p: &Profile) -> (bool, String) {
    let hit: Vec<String> = p
        .filesystem
        .read_only
        .iter()
        .filter(|r| normalize(r) != "/" && !under(r, SYSTEM_DIRS) && !under(r, &["/etc"]) && !under(r, DATA_DIRS))
        .cloned()
        .collect();
    if hit.is_empty() {
        (false, "every read-only path is a system directory or /etc".into())
    } else {
        (true, format!("other host paths visible: {}", list(&hit)))
    }
}

fn devices(p: &Profile) -> (bool, String) {
    let extra: Vec<String> = p
        .filesystem
        .devices
        .iter()
        .filter(|d| !["null", "zero"].contains(&d.as_str()))
        .map(|d| format!("/dev/{d}"))
        .collect();
    if extra.is_empty() {
        (false, "no device beyond /dev/null and /dev/zero".into())
    } else {
        (true, format!("devices beyond null and zero: {}", list(&extra)))
    }
}

const TMP_LARGE: u64 = 16 << 20;

fn tmp_large(p: &Profile) -> (bool, String) {
    let t = p.filesystem.tmp_size;
    (
        t > TMP_LARGE,
        format!("/tmp holds at most {}{}", format_bytes(t), if t > TMP_LARGE { " (more than 16MiB)" } else { "" }),
    )
}

fn net_host(p: &Profile) -> (bool, String) {
    match p.network.mode {
        NetMode::Host => (true, "shares the host's network namespace".into()),
        m => (false, format!("own network namespace (mode {})", super::explain::net_mode_name(m))),
    }
}

fn net_interface(p: &Profile) -> (bool, String) {
    match p.network.mode {
        NetMode::None => (false, "no network interface".into()),
        NetMode::Loopback => (true, "its own loopback interface".into()),
        NetMode::Host => (true, "every host interface".into()),
    }
}

fn net_bind(p: &Profile) -> (bool, String) {
    match (p.network.bind, p.network.mode) {
        (false, _) => (false, "binding new TCP ports is refused".into()),
        (true, NetMode::Host) => (true, "may bind and listen on TCP ports of the host's interfaces".into()),
        (true, _) => (false, "may bind TCP ports, but only in its own network namespace".into()),
    }
}

fn bind_unenforced(p: &Profile) -> (bool, String) {
    if p.network.bind || p.network.mode != NetMode::Host {
        return (false, "no bind restriction that depends on the kernel".into());
    }
    let calls = p.allowed_syscalls();
    if !calls.contains("bind") && !calls.contains("listen") {
        return (false, "bind = false is enforced by seccomp too: bind and listen are not allowed".into());
    }
    if p.landlock_min_abi >= 4 {
        (false, format!("bind = false is guaranteed (min_abi {})", p.landlock_min_abi))
    } else {
        (
            true,
            format!(
                "bind = false needs Landlock ABI 4 but min_abi is {}: an older kernel lets it bind",
                p.landlock_min_abi
            ),
        )
    }
}

fn seccomp_log(p: &Profile) -> (bool, String) {
    let a = p.seccomp.default_action;
    (a == SeccompAction::Log, format!("default_action = {}", super::explain::action_name(a)))
}

fn never_group(p: &Profile) -> (bool, String) {
    let hit: Vec<String> = p
        .allowed_syscalls()
        .into_iter()
        .filter_map(|s| {
            let g = super::explain::group_of(&s)?;
            super::groups::all().get(g).is_some_and(|gr| gr.never).then(|| format!("{s} ({g})"))
        })
        .collect();
    if hit.is_empty() {
        (false, "no syscall of a deny-only group is allowed".into())
    } else {
        (true, format!("allows syscalls of deny-only groups: {}", hit.join(", ")))
    }
}

fn seccomp_not_kill(p: &Profile) -> (bool, String) {
    let a = p.seccomp.default_action;
    match a {
        SeccompAction::KillProcess if p.seccomp.kill_grace_ms == 0 => {
            (false, "a syscall outside the allow list kills the caller".into())
        }
        SeccompAction::KillProcess => (
            false,
            format!(
                "a syscall outside the allow list kills the caller, {} ms later unless it exits (at once at its {}th)",
                p.seccomp.kill_grace_ms,
                super::KILL_AFTER_DENIALS
            ),
        ),
        _ => (true, format!("a syscall outside the allow list does not kill ({})", super::explain::action_name(a))),
    }
}

/// Exposed when any of `names` is allowed: `yes` followed by the ones
/// allowed, else `no`.
fn allows(p: &Profile, names: &[&str], yes: &str, no: &str) -> (bool, String) {
    let allowed = p.allowed_syscalls();
    let hit: Vec<&str> = names.iter().copied().filter(|n| allowed.contains(*n)).collect();
    if hit.is_empty() {
        (false, no.to_owned())
    } else {
        (true, format!("{yes}: {}", hit.join(", ")))
    }
}

fn sockets(p: &Profile) -> (bool, String) {
    allows(
        p,
        &["socket", "socketpair", "bind", "listen", "connect", "accept", "accept4"],
        "may create and use sockets",
        "cannot create sockets",
    )
}
fn socket_families(p: &Profile) -> (bool, String) {
    let calls = p.allowed_syscalls();
    if !calls.contains("socket") {
        return (false, "socket is not allowed: it creates no socket of any family".into());
    }
    let wide: Vec<&str> =
        p.network.socket_families.iter().filter(|f| **f != super::SocketFamily::Unix).map(|f| f.name()).collect();
    if wide.is_empty() {
        (false, "socket() creates Unix sockets only".into())
    } else {
        (true, format!("socket() creates {} sockets besides Unix ones", wide.join(", ")))
    }
}
fn sysv_ipc(p: &Profile) -> (bool, String) {
    allows(
        p,
        &["msgget", "semget", "shmget", "mq_open"],
        "may use System V IPC or POSIX message queues",
        "no System V IPC or POSIX message queues",
    )
}
fn signals(p: &Profile) -> (bool, String) {
    allows(
        p,
        &["kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal"],
        "may signal other processes",
        "cannot signal other processes",
    )
}
fn aio(p: &Profile) -> (bool, String) {
    allows(p, &["io_setup", "io_submit"], "may use native AIO (@aio)", "no native AIO (@aio)")
}
fn chown(p: &Profile) -> (bool, String) {
    allows(
        p,
        &["chown", "fchown", "fchownat", "lchown"],
        "may change file owners (@chown)",
        "cannot change file owners (@chown)",
    )
}
fn memfd(p: &Profile) -> (bool, String) {
    allows(
        p,
        &["memfd_create"],
        "may create anonymous memory files",
        "cannot create anonymous memory files (memfd_create)",
    )
}

fn landlock_abi(p: &Profile) -> (bool, String) {
    let a = p.landlock_min_abi;
    (a < 6, format!("min_abi = {a} ({})", crate::sandbox::landlock::abi_features(a as i32)))
}

fn landlock_degrade(p: &Profile) -> (bool, String) {
    match p.on_missing {
        OnMissing::Degrade => (
            true,
            "on_missing = degrade: runs with less Landlock, or without memfd_noexec, where the kernel has less".into(),
        ),
        OnMissing::Refuse => (false, "on_missing = refuse".into()),
    }
}

fn limits_memory(p: &Profile) -> (bool, String) {
    let m = p.limits.memory_bytes.unwrap_or(Limits::DEFAULT_MEMORY);
    let how = if p.limits.memory_bytes.is_some() { "" } else { " (global default)" };
    (m > 128 << 20, format!("memory {}{how}", format_bytes(m)))
}
fn limits_pids(p: &Profile) -> (bool, String) {
    let m = p.limits.max_pids.unwrap_or(Limits::DEFAULT_MAX_PIDS);
    let how = if p.limits.max_pids.is_some() { "" } else { " (global default)" };
    (m > 32, format!("{m} processes{how}"))
}
fn limits_open_files(p: &Profile) -> (bool, String) {
    let m = p.limits.max_open_files.unwrap_or(Limits::DEFAULT_MAX_OPEN_FILES);
    let how = if p.limits.max_open_files.is_some() { "" } else { " (global default)" };
    (m > 1024, format!("{m} open files{how}"))
}
fn limits_cpu(p: &Profile) -> (bool, String) {
    let m = p.limits.cpu_weight.unwrap_or(Limits::DEFAULT_CPU_WEIGHT);
    let how = if p.limits.cpu_weight.is_some() { "" } else { " (global default)" };
    (m > 100, format!("CPU weight {m}{how}"))
}

fn violation_restart(p: &Profile) -> (bool, String) {
    match p.seccomp.on_violation {
        OnViolation::Restart => (true, "on_violation = restart".into()),
        OnViolation::Quarantine => (false, "on_violation = quarantine".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ProfileSet;

    #[test]
    fn ids_are_unique_and_weights_positive() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len());
        assert!(CHECKS.iter().all(|c| c.weight > 0.0 && !c.why.is_empty()));
    }

    #[test]
    fn builtins_order_sensibly() {
        let s = ProfileSet::builtin().expect("built-ins");
        let sc = |n: &str| audit(&s.profiles[n]).score;
        assert!(sc("strict") < sc("default"), "{} {}", sc("strict"), sc("default"));
        assert_eq!(sc("default"), sc("web-server"));
        assert!(sc("default") < sc("network-client"));
        assert!(sc("network-client") < sc("base"));
    }

    #[test]
    fn a_wide_open_profile_scores_high() {
        let s = ProfileSet::builtin().expect("built-ins");
        let mut p = s.profiles["base"].clone();
        p.namespaces.pid = false;
        p.namespaces.ipc = false;
        p.namespaces.uts = false;
        p.namespaces.cgroup = false;
        p.filesystem.read_only.push("/./".into());
        p.filesystem.read_only.push("/nix".into());
        p.filesystem.devices.push("tty".into());
        p.seccomp.default_action = SeccompAction::Log;
        p.seccomp.deny.clear();
        p.seccomp.allow.push("ptrace".into());
        p.seccomp.on_violation = OnViolation::Restart;
        p.limits.max_open_files = Some(65536);
        p.limits.cpu_weight = Some(1000);
        let a = audit(&p);
        assert!(a.score >= 9.5, "{}", a.render());
        assert!(a.findings.iter().any(|f| f.id == "fs-host-data" && f.exposed));
    }
}
