//! The sandbox under attack: `tests/programs/probe.c` is deployed as a
//! service under every built-in profile and tries one escape after another;
//! each attempt is checked against what the kernel must answer under that
//! profile ([`ATTEMPTS`]). Also: two services cannot reach each other, every
//! denied syscall is reported (Watch, the event store, `seccompDenials`), a
//! forbidden syscall in a `strict` service's main process quarantines it,
//! and an interpreted service runs in the `default` view. At the launcher
//! level ([`grants`]): granted descriptors reach a service as fds 3, 4, …
//! with `LISTEN_*` (socket activation), granted directories appear in its
//! view read-only or read-write, and bad grants are refused.
//!
//! The expectations are for a kernel with every feature the sandbox uses
//! (Landlock ABI 6+, `vm.memfd_noexec`); where the kernel under test lacks
//! one ([`Kernel`], detected at run time; `integration/qemu` runs Debian's
//! 6.1 with ABI 2 and no `vm.memfd_noexec`), [`expectations`] replaces the
//! rows that depend on it with what that kernel really answers, and a
//! `refuse` profile (`strict`) must be refused at launch.

mod common;

use common::{alive, pid0, program, require_root, wait_for, Daemon, Kernel};
use solo::proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};
use std::os::linux::net::SocketAddrExt;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

const T: Duration = Duration::from_secs(20);
/// How long a whole probe run may take (it takes 2-4 s here).
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// The built-in profiles, in the column order of [`ATTEMPTS`].
const PROFILES: [&str; 5] = ["base", "default", "network-client", "web-server", "strict"];

/// A syscall outside the profile's allow list: EPERM from the supervisor
/// under every profile (under `strict` the caller is then killed unless it
/// exits within the profile's grace; each attempt runs in its own child,
/// which reports and exits at once).
const SECCOMP: [&str; 5] = ["denied EPERM", "denied EPERM", "denied EPERM", "denied EPERM", "denied EPERM"];
/// Socket syscalls: allowed by every profile but `strict` (no @network-io).
const fn sock(s: &'static str) -> [&'static str; 5] {
    [s, s, s, s, "denied EPERM"]
}
const fn all(s: &'static str) -> [&'static str; 5] {
    [s, s, s, s, s]
}

/// Attempt → accepted results per profile (base, default, network-client,
/// web-server, strict). A cell lists alternatives separated by `|`; an
/// alternative ending in `*` matches as a prefix, otherwise the result must
/// be equal or continue with a space (details such as counts follow).
/// "allowed" is accepted only where the profile grants it.
#[rustfmt::skip]
const ATTEMPTS: &[(&str, [&str; 5])] = &[
    // No descriptor of the launcher reaches the service (CVE-2024-21626).
    ("inherited-fds",         all("denied none")),
    // Host files are simply not in the view.
    ("shadow",                all("denied ENOENT")),
    ("list-root",             all("denied ENOENT")),
    ("state-dir",             all("denied ENOENT")),
    ("state-db",              all("denied ENOENT")),
    ("daemon-socket-open",    all("denied ENOENT")),
    ("daemon-socket-connect", sock("denied ENOENT")),
    // The control socket gives nothing that was not granted: no channel to
    // another service, no outbound TCP, not with a forged token either
    // (strict has no socket calls at all: its filter kills the asking).
    ("control-service",       sock("denied refused")),
    ("control-tcp",           sock("denied refused")),
    ("control-forged-token",  sock("denied refused")),
    ("other-data-read",       all("denied ENOENT")),
    ("other-data-write",      all("denied ENOENT")),
    // Positive control: its own /data is writable.
    ("own-data-write",        all("allowed*")),
    // Read-only mounts (EROFS) and root-owned files (EACCES, DAC before the mount check).
    ("write-usr",             all("denied EROFS")),
    ("write-root",            all("denied EROFS")),
    ("write-etc",             all("denied EACCES")),
    ("write-app",             all("denied EACCES")),
    ("exe-write",             all("denied EACCES")),
    // noexec mounts and Landlock (no execute right outside system paths and /app).
    ("tmp-exec",              all("denied EACCES")),
    ("data-exec",             all("denied EACCES")),
    ("shm-exec",              all("denied EACCES")),
    // Executing code written at run time from an anonymous file must be
    // refused like /tmp and /data are (any denial will do).
    ("memfd-exec",            all("denied*|killed*")),
    // Mounts and namespaces: the seccomp filter.
    ("mount",                 SECCOMP),
    ("fsopen",                SECCOMP),
    ("umount-proc",           SECCOMP),
    ("chroot",                SECCOMP),
    ("pivot-root",            SECCOMP),
    ("unshare-user",          SECCOMP),
    ("unshare-mount",         SECCOMP),
    ("clone-newuser",         SECCOMP),
    ("clone-newpid",          SECCOMP),
    // clone3's flags are behind a pointer: always ENOSYS, even under strict.
    ("clone3-newuser",        all("denied ENOSYS")),
    ("setns",                 SECCOMP),
    ("ptrace-parent",         SECCOMP),
    ("ptrace-traceme",        SECCOMP),
    ("process-vm-readv",      SECCOMP),
    // Processes outside its pid namespace do not exist for it.
    ("kill-daemon",           all("denied ESRCH")),
    ("pidfd-daemon",          all("denied ESRCH")),
    ("kill-other-service",    all("denied ESRCH")),
    ("kill-all",              all("denied ESRCH")),
    ("host-pids",             all("denied visible=*")),
    // Raw and packet sockets: refused by the filter (their families and
    // protocols are in no profile's socket_families), and by the kernel for
    // want of CAP_NET_RAW anyway.
    ("packet-socket",         sock("denied EPERM")),
    ("raw-socket",            sock("denied EPERM")),
    // Address families no profile allows: the filter refuses each (EPERM
    // from the supervisor), whatever modules the host has. AF_VSOCK reaches
    // the hypervisor on a VM. Upper register bits must not carry a family or
    // a protocol past the filter (the kernel reads ints from the low half).
    ("vsock-socket",          sock("denied EPERM")),
    ("vsock-high-bits",       sock("denied EPERM")),
    ("netlink-audit",         sock("denied EPERM")),
    ("netlink-uevent",        sock("denied EPERM")),
    ("alg-socket",            sock("denied EPERM")),
    ("xdp-socket",            sock("denied EPERM")),
    ("key-socket",            sock("denied EPERM")),
    ("rds-socket",            sock("denied EPERM")),
    ("tipc-socket",           sock("denied EPERM")),
    ("can-socket",            sock("denied EPERM")),
    ("bluetooth-socket",      sock("denied EPERM")),
    ("sctp-socket",           sock("denied EPERM")),
    ("mptcp-high-bits",       sock("denied EPERM")),
    ("socketpair-inet",       sock("denied EPERM")),
    // The families a profile lists: IP and netlink routing only with a
    // network (base, network-client), Unix everywhere sockets are allowed.
    ("inet-socket",           ["allowed*", "denied EPERM", "allowed*", "denied EPERM", "denied EPERM"]),
    ("inet6-socket",          ["allowed*|denied EAFNOSUPPORT", "denied EPERM", "allowed*|denied EAFNOSUPPORT", "denied EPERM", "denied EPERM"]),
    ("netlink-route",         ["allowed*", "denied EPERM", "allowed*", "denied EPERM", "denied EPERM"]),
    ("unix-socket",           sock("allowed*")),
    ("socketpair-unix",       sock("allowed*")),
    // Outbound TCP: host network for base and network-client; in mode none
    // the filter refuses the IP socket itself (and Landlock would refuse
    // the connect, EACCES, and the namespace has no route).
    ("tcp-connect-host",      ["allowed*", "denied EPERM", "allowed*", "denied EPERM", "denied EPERM"]),
    // The Internet may or may not answer from this host: anything but a
    // hang where the network is the host's.
    ("tcp-connect-internet",  ["allowed*|denied*", "denied EPERM", "allowed*|denied*", "denied EPERM", "denied EPERM"]),
    ("udp-send-internet",     ["allowed*|denied*", "denied EPERM", "allowed*|denied*", "denied EPERM", "denied EPERM"]),
    // Listening: only base has `bind = true`; network-client has no bind
    // or listen (seccomp); in mode none no IP socket can be created.
    ("tcp-bind",              ["allowed*", "denied EPERM", "denied EPERM", "denied EPERM", "denied EPERM"]),
    ("tcp-listen-autobind",   ["allowed*", "denied EPERM", "denied*", "denied EPERM", "denied EPERM"]),
    ("udp-bind",              ["allowed*", "denied EPERM", "denied*", "denied EPERM", "denied EPERM"]),
    // MPTCP escapes Landlock's TCP rules: no profile lets socket() make one.
    ("mptcp-bind",            sock("denied EPERM")),
    // A host abstract socket: Landlock scoping (ABI 6) in the host network
    // namespace, simply absent in a private one.
    ("abstract-unix",         ["denied EPERM", "denied ECONNREFUSED", "denied EPERM", "denied ECONNREFUSED", "denied EPERM"]),
    // Kernel attack surface: the seccomp filter.
    ("bpf",                   SECCOMP),
    ("perf-event-open",       SECCOMP),
    ("keyctl",                SECCOMP),
    ("add-key",               SECCOMP),
    ("userfaultfd",           SECCOMP),
    ("io-uring",              SECCOMP),
    ("kexec-load",            SECCOMP),
    ("init-module",           SECCOMP),
    ("finit-module",          SECCOMP),
    ("open-by-handle",        SECCOMP),
    ("mknod",                 SECCOMP),
    ("iopl",                  SECCOMP),
    ("settime",               SECCOMP),
    ("syslog",                SECCOMP),
    // Kernel interfaces in /dev and /proc: absent, masked by /dev/null, or read-only.
    ("dev-kmsg",              all("denied ENOENT")),
    ("proc-kmsg",             all("denied masked by /dev/null|denied ENOENT")),
    ("sysrq-trigger",         all("denied masked by /dev/null|denied ENOENT|denied EACCES")),
    ("proc-masks",            all("denied masked=*")),
    ("core-pattern",          all("denied EACCES|denied EROFS")),
    ("raw-disk",              all("denied ENOENT")),
    ("sys-cgroup",            all("denied ENOENT")),
    ("cgroup-view",           all("denied every hierarchy at /")),
    // Credentials: setrlimit is allowed by every filter, the kernel refuses.
    ("setrlimit-nofile",      all("denied EPERM")),
    ("setuid0",               SECCOMP),
    ("capset",                SECCOMP),
    ("nice",                  all("denied EACCES")),
    ("setuid-binaries",       all("denied nosuid+no_new_privs=1*|denied no setuid binary in the view")),
    ("hostname",              SECCOMP),
    // Resources: the pids limit, the /tmp size cap, the memory limit (OOM kill).
    ("fork-bomb",             all("denied EAGAIN*")),
    ("tmp-fill",              all("denied ENOSPC*")),
    ("memory-bomb",           all("killed SIGKILL")),
];

/// Rows of [`ATTEMPTS`] as a kernel without Landlock scoping (ABI < 6)
/// answers them: in the host's network namespace (`base`, `network-client`)
/// nothing stops a connect to a host abstract unix socket, so it succeeds
/// (a real gap on such kernels: the probe reports it as ESCAPED, which is
/// accepted only here). A private namespace (`default`, `web-server`) still
/// has no such socket.
#[rustfmt::skip]
const WITHOUT_LANDLOCK_SCOPING: &[(&str, [&str; 5])] = &[
    ("abstract-unix",         ["ESCAPED connect(host abstract socket) returned 0", "denied ECONNREFUSED", "ESCAPED connect(host abstract socket) returned 0", "denied ECONNREFUSED", "denied EPERM"]),
];

/// Rows of [`ATTEMPTS`] as a kernel without `vm.memfd_noexec` (before 6.3)
/// answers them: code written to a memfd runs (no mount option or Landlock
/// rule covers anonymous files), so under the `degrade` profiles the probe's
/// copy executes (ESCAPED, accepted only here; Status records layer `memfd`
/// as `off`). `strict` (`refuse`) is not started at all on such a kernel
/// (see [`probe_under_strict`]); were it started it would still have to deny.
#[rustfmt::skip]
const WITHOUT_MEMFD_NOEXEC: &[(&str, [&str; 5])] = &[
    ("memfd-exec",            ["ESCAPED exec of a copy*", "ESCAPED exec of a copy*", "ESCAPED exec of a copy*", "ESCAPED exec of a copy*", "denied*|killed*"]),
];

/// [`ATTEMPTS`] with the rows that depend on a feature `k` lacks replaced.
fn expectations(k: &Kernel) -> Vec<(&'static str, [&'static str; 5])> {
    let mut rows = ATTEMPTS.to_vec();
    let mut replace = |with: &[(&'static str, [&'static str; 5])]| {
        for (name, cells) in with {
            let row = rows.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} is not in ATTEMPTS"));
            row.1 = *cells;
        }
    };
    if !k.landlock_scoping() {
        replace(WITHOUT_LANDLOCK_SCOPING);
    }
    if !k.memfd_noexec {
        replace(WITHOUT_MEMFD_NOEXEC);
    }
    rows
}

/// Syscalls whose denial must show up in the event store under every
/// profile (the probe makes them early, well inside the per-second budget
/// of denial events).
const DENIED_SYSCALLS: &[&str] = &["mount", "unshare", "ptrace", "bpf", "setns"];

fn exec(p: &str) -> String {
    program(p).display().to_string()
}

fn accepts(cell: &str, result: &str) -> bool {
    cell.split('|').map(str::trim).any(|alt| match alt.strip_suffix('*') {
        Some(prefix) => result.starts_with(prefix),
        None => result == alt || result.strip_prefix(alt).is_some_and(|rest| rest.starts_with(' ')),
    })
}

/// Every buffered line of a service's output, without the `id.0 out | ` prefix.
fn output(d: &Daemon, id: &str) -> Vec<String> {
    d.ok(&["logs", id, "--tail", "1000"])
        .lines()
        .map(|l| l.split_once(" | ").map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

/// The `PROBE <name> <result>` lines, by name (a repeated name is an error).
fn probe_results(lines: &[String]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut problems = Vec::new();
    for l in lines {
        let Some(rest) = l.strip_prefix("PROBE ") else { continue };
        if rest == "done" {
            continue;
        }
        let (name, result) = rest.split_once(' ').unwrap_or((rest, ""));
        if map.insert(name.to_owned(), result.to_owned()).is_some() {
            problems.push(format!("{name}: reported twice"));
        }
    }
    (map, problems)
}

fn state(d: &Daemon, id: &str) -> String {
    d.status(id)["service"]["state"].as_str().unwrap_or("").to_owned()
}

/// Messages of the `kind` events of service `id` in the daemon's event store.
fn stored_events(d: &Daemon, id: &str, kind: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        d.state.join("solo.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the event store");
    let mut q =
        conn.prepare("SELECT message FROM events WHERE service = ?1 AND kind = ?2 ORDER BY seq").expect("query");
    let rows = q.query_map([id, kind], |r| r.get::<_, String>(0)).expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

fn proc_field(pid: i64, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find(|l| l.starts_with(key)).map(|l| l[key.len()..].trim().to_owned()).unwrap_or_default()
}

fn ns_of(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|p| p.display().to_string()).unwrap_or_default()
}

/// What a finished probe run left to check.
struct ProbeRun {
    d: Daemon,
    lines: Vec<String>,
    results: BTreeMap<String, String>,
    failures: Vec<String>,
}

/// Deploys a victim (a sleeper with a secret in its data dir) and the probe
/// under `profile`, aimed at the daemon, the victim and two host listeners;
/// waits for `PROBE done` and checks every attempt against [`expectations`] and
/// the host side (victim and daemon untouched, namespaces, denials recorded,
/// the layers Status reports).
fn run_probe(profile: &str) -> ProbeRun {
    let col = PROFILES.iter().position(|p| *p == profile).expect("known profile");
    let strict = profile == "strict";
    let kernel = Kernel::detect();
    let rows = expectations(&kernel);
    eprintln!("probe under {profile}: kernel {kernel:?}");
    let started = Instant::now();
    let d = Daemon::start();
    // A host TCP listener and a host abstract unix socket for the probe to reach for.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp listener");
    let tcp_addr = tcp.local_addr().expect("addr");
    let abstract_name = format!("solo-probe-{}-{profile}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).expect("abstract name");
    let _abstract = std::os::unix::net::UnixListener::bind_addr(&addr).expect("abstract listener");

    d.ok(&["deploy", "victim", "--exec", &exec("sleeper"), "--restart", "never", "--wait"]);
    let victim = d.status("victim");
    let victim_pid = pid0(&victim);
    let victim_uid = victim["service"]["uid"].as_u64().expect("victim uid") as u32;
    let victim_data = d.state.join("data/victim");
    let secret = victim_data.join("secret");
    std::fs::write(&secret, "victim's secret\n").expect("write the victim's secret");
    std::os::unix::fs::chown(&secret, Some(victim_uid), Some(victim_uid)).expect("chown secret");

    // /tmp (64 MiB, 16 MiB under strict) is charged to the memory limit:
    // leave room for it, and keep the memory bomb short.
    let memory = if strict { "64MiB" } else { "128MiB" };
    let args = [
        format!("state={}", d.state.display()),
        format!("socket={}", d.socket.display()),
        format!("other-data={}", victim_data.display()),
        "other-service=victim".to_owned(),
        format!("other-pid={victim_pid}"),
        format!("daemon-pid={}", d.pid()),
        format!("tcp={tcp_addr}"),
        format!("abstract={abstract_name}"),
    ];
    let probe = exec("probe");
    let mut deploy: Vec<&str> =
        vec!["deploy", "probe", "--exec", &probe, "--profile", profile, "--restart", "never", "--memory", memory];
    for a in &args {
        deploy.push("--arg");
        deploy.push(a);
    }
    deploy.push("--wait");
    d.ok(&deploy);
    let probe_status = d.status("probe");
    let probe_pid = pid0(&probe_status);
    let mut failures = Vec::new();
    // Status records each layer as enforced: vm.memfd_noexec (set in the
    // service's own pid namespace, which every built-in profile has) is
    // `enforced` where the kernel has the knob, `off` (degraded) where not.
    let want_memfd = if kernel.memfd_noexec { "enforced" } else { "off" };
    let layers = probe_status["service"]["instances"][0]["sandbox"].as_array().cloned().unwrap_or_default();
    match layers.iter().find(|l| l["name"] == "memfd") {
        Some(l) if l["state"] == want_memfd => {}
        other => failures.push(format!("Status layer memfd: {other:?}, want state {want_memfd} (layers {layers:?})")),
    }
    // Host side, while it runs: credentials and namespaces.
    for (key, want) in
        [("CapEff:", "0000000000000000"), ("CapBnd:", "0000000000000000"), ("NoNewPrivs:", "1"), ("Seccomp:", "2")]
    {
        let got = proc_field(probe_pid, key);
        // The process may already be gone if the probe died early; reported below.
        if !got.is_empty() && got != want {
            failures.push(format!("host view of the probe: {key} {got}, want {want}"));
        }
    }
    let mut own_ns = vec!["mnt", "pid", "ipc", "uts", "cgroup"];
    if matches!(profile, "default" | "web-server" | "strict") {
        own_ns.push("net");
    }
    if strict {
        own_ns.push("user");
    }
    for ns in own_ns {
        let (mine, its) = (ns_of("self", ns), ns_of(&probe_pid.to_string(), ns));
        if !its.is_empty() && mine == its {
            failures.push(format!("namespace {ns}: the probe shares the host's {mine}"));
        }
    }

    let deadline = Instant::now() + PROBE_TIMEOUT;
    let lines = loop {
        let lines = output(&d, "probe");
        if lines.iter().any(|l| l == "PROBE done") {
            break lines;
        }
        let st = state(&d, "probe");
        if st != "SERVICE_STATE_RUNNING" && st != "SERVICE_STATE_STARTING" {
            panic!("probe under {profile} stopped before it was done ({st}):\n{}", lines.join("\n"));
        }
        assert!(Instant::now() < deadline, "probe under {profile} did not finish:\n{}", lines.join("\n"));
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("probe under {profile}: done in {:?} after the daemon started", started.elapsed());

    let (results, mut problems) = probe_results(&lines);
    failures.append(&mut problems);
    for l in lines.iter().filter(|l| l.contains("ESCAPED")) {
        // Accepted only where this kernel's row names the escape: a gap of
        // an older kernel, documented with the row.
        let expected = l.strip_prefix("PROBE ").and_then(|r| r.split_once(' ')).is_some_and(|(name, result)| {
            rows.iter().any(|(n, cells)| *n == name && cells[col].contains("ESCAPED") && accepts(cells[col], result))
        });
        if expected {
            eprintln!("probe under {profile}: known gap of this kernel ({kernel:?}): {l}");
        } else {
            failures.push(format!("escape: {l}"));
        }
    }
    for (name, cells) in &rows {
        match results.get(*name) {
            None => failures.push(format!("{name}: no result")),
            Some(r) if !accepts(cells[col], r) => {
                failures.push(format!("{name}: got `{r}`, want `{}`", cells[col]));
            }
            Some(_) => {}
        }
    }
    let known: BTreeSet<&str> = rows.iter().map(|(n, _)| *n).collect();
    for name in results.keys().filter(|n| !known.contains(n.as_str())) {
        failures.push(format!("{name}: not in the expectation table ({})", results[name]));
    }
    // The limits behind the resource attempts.
    let number = |name: &str, key: &str| -> Option<u64> {
        let r = results.get(name)?;
        let at = r.find(key)? + key.len();
        r[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
    };
    let (max_pids, tmp_mib) = if strict { (8, 16) } else { (64, 64) };
    match number("fork-bomb", "forks=") {
        Some(n) if n < max_pids => {}
        other => failures.push(format!("fork-bomb: {other:?} forks, want fewer than pids.max {max_pids}")),
    }
    match number("tmp-fill", "wrote=") {
        Some(n) if n <= tmp_mib => {}
        other => failures.push(format!("tmp-fill: {other:?} MiB written, want at most tmp_size {tmp_mib} MiB")),
    }
    match number("host-pids", "visible=") {
        Some(n) if n <= 3 => {}
        other => failures.push(format!("host-pids: {other:?} pids visible, want at most 3")),
    }

    // Nothing outside was touched: the victim, its secret, the daemon.
    if !alive(victim_pid) || pid0(&d.status("victim")) != victim_pid {
        failures.push("the victim service was killed or restarted".into());
    }
    if std::fs::read_to_string(&secret).ok().as_deref() != Some("victim's secret\n") {
        failures.push("the victim's secret was changed".into());
    }
    if victim_data.join("probe-was-here").exists() {
        failures.push("the probe created a file in the victim's data dir".into());
    }
    if !alive(i64::from(d.pid())) {
        failures.push("the daemon died".into());
    }
    // Its own /data write (the positive control) landed in its own host dir.
    if !d.state.join("data/probe/probe-own").exists() {
        failures.push("own-data-write: /data/probe-own is not in the probe's host data dir".into());
    }

    // Every denial was counted and recorded.
    let denials = d.status("probe")["service"]["instances"][0]["seccompDenials"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let want_denials = DENIED_SYSCALLS.len() as u64;
    if denials < want_denials {
        failures.push(format!("seccompDenials is {denials}, want at least {want_denials}"));
    }
    let verb = if strict { "kill_process" } else { "errno" };
    let stored = wait_for("denials in the event store", T, || {
        let ev = stored_events(&d, "probe", "seccomp-denied");
        DENIED_SYSCALLS.iter().all(|s| ev.iter().any(|m| m.starts_with(&format!("denied {s} ")))).then_some(ev)
    });
    // Under strict the call failed and its process was given the grace:
    // "denied mount (kill_process): the call failed with EPERM; ...".
    for s in DENIED_SYSCALLS {
        let want = format!("denied {s} ({verb})");
        if !stored.iter().any(|m| m == &want || m.starts_with(&format!("{want}: the call failed with EPERM"))) {
            failures.push(format!("event store: no `{want}` in {stored:?}"));
        }
    }
    drop(tcp);
    ProbeRun { d, lines, results, failures }
}

/// `profile` on a kernel that refuses it (`refusal`, from [`Kernel`]): the
/// deploy fails naming the step and EOPNOTSUPP, before anything runs.
fn check_refused(profile: &str, refusal: &str) {
    let d = Daemon::start();
    let err =
        d.fails(&["deploy", "probe", "--exec", &exec("probe"), "--profile", profile, "--restart", "never", "--wait"]);
    assert!(err.contains(refusal), "deploy under {profile} on {:?}: want `{refusal}` in: {err}", Kernel::detect());
    let st = d.status("probe");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_EXITED", "{st:#}");
    let reason = st["service"]["instances"][0]["lastExit"]["reason"].as_str().unwrap_or("").to_owned();
    assert!(reason.contains(refusal), "want `{refusal}` in lastExit.reason: {st:#}");
    assert_eq!(pid0(&st), 0, "{st:#}");
    assert!(!output(&d, "probe").iter().any(|l| l.starts_with("PROBE")), "the probe ran");
}

fn check(profile: &str) {
    if let Some(refusal) = Kernel::detect().refusal(profile) {
        eprintln!("{profile} is refused on this kernel ({:?}): {refusal}", Kernel::detect());
        check_refused(profile, refusal);
        return;
    }
    let run = run_probe(profile);
    // The probe itself is still running (it waits after `PROBE done`).
    assert_eq!(state(&run.d, "probe"), "SERVICE_STATE_RUNNING", "{}", run.lines.join("\n"));
    assert!(!run.results.is_empty());
    assert!(
        run.failures.is_empty(),
        "sandbox under profile {profile}: {} problem(s):\n  {}\n\nprobe output:\n{}",
        run.failures.len(),
        run.failures.join("\n  "),
        run.lines.iter().filter(|l| l.starts_with("PROBE")).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn probe_under_base() {
    if require_root("probe_under_base") {
        check("base");
    }
}

#[test]
fn probe_under_default() {
    if require_root("probe_under_default") {
        check("default");
    }
}

#[test]
fn probe_under_network_client() {
    if require_root("probe_under_network_client") {
        check("network-client");
    }
}

#[test]
fn probe_under_web_server() {
    if require_root("probe_under_web_server") {
        check("web-server");
    }
}

/// On a kernel without `vm.memfd_noexec` or below its Landlock `min_abi`,
/// `strict` (`on_missing = "refuse"`) must be refused at launch instead.
#[test]
fn probe_under_strict() {
    if require_root("probe_under_strict") {
        check("strict");
    }
}

/// The descriptors a `listfds` instance printed (`FDS 0=... 1=...`), by number.
fn listed_fds(d: &Daemon, id: &str) -> BTreeMap<u32, String> {
    let line =
        wait_for(&format!("{id}'s descriptor list"), T, || output(d, id).into_iter().find(|l| l.starts_with("FDS ")));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('=').and_then(|(k, v)| Some((k.parse().ok()?, v.to_owned()))))
        .collect()
}

/// The descriptors of process `pid`, by number (root reads any).
fn fds_of(pid: u32) -> BTreeMap<u32, String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.parse().ok()?;
                    Some((n, std::fs::read_link(e.path()).ok()?.display().to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A daemon started by a careless parent (`holdfds`: a pipe at fds 3 and
/// 4, a file at 5 and 1003, a socket at 9, none close-on-exec) passes none
/// of them on: the daemon and its launcher close them at start, and a
/// service under every built-in profile sees exactly 0, 1, 2, its control
/// socket and what it was granted (found by an independent check: a
/// script's fd 5 reached a service).
#[test]
fn no_inherited_descriptor_reaches_a_service() {
    if !require_root("no_inherited_descriptor_reaches_a_service") {
        return;
    }
    let d = Daemon::start_under(Some(&program("holdfds")), &[]);
    let kernel = Kernel::detect();
    let leaked = |fds: &BTreeMap<u32, String>| -> Vec<String> {
        fds.iter()
            // holdfds' file is /etc/hostname, also at 1003; the launcher
            // keeps its own vault at 4096 and above, not inherited.
            .filter(|(n, t)| (1000..4096).contains(*n) || t.as_str() == "/etc/hostname")
            .map(|(n, t)| format!("{n}={t}"))
            .collect()
    };
    assert!(leaked(&fds_of(d.pid())).is_empty(), "the daemon kept inherited descriptors: {:?}", fds_of(d.pid()));
    assert!(d.log().contains("closed descriptors inherited from the parent"), "{}", d.log());
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", d.pid())).unwrap_or_default();
    let launcher: u32 = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("the launcher");
    let lfds = fds_of(launcher);
    assert!(leaked(&lfds).is_empty(), "the launcher holds inherited descriptors: {lfds:?}");
    for profile in PROFILES {
        if let Some(refusal) = kernel.refusal(profile) {
            eprintln!(
                "{profile} is refused on this kernel ({refusal}); its launch is checked by probe_under_{profile}"
            );
            continue;
        }
        let id = format!("fds-{profile}");
        d.ok(&["deploy", &id, "--exec", &exec("listfds"), "--profile", profile, "--wait"]);
        let fds = listed_fds(&d, &id);
        let numbers: Vec<u32> = fds.keys().copied().collect();
        assert_eq!(numbers, [0, 1, 2, 3], "{profile}: {fds:?}");
        assert_eq!(fds[&0], "/dev/null", "{profile}: {fds:?}");
        assert!(fds[&1].starts_with("pipe:") && fds[&2].starts_with("pipe:"), "{profile}: {fds:?}");
        assert!(fds[&3].starts_with("socket:"), "{profile}: fd 3 is solo-control: {fds:?}");
    }
    // With grants: exactly the granted ones follow, in LISTEN_FDNAMES order.
    let port = common::free_port().to_string();
    let dir = tempfile::Builder::new().prefix("solo-fds-").tempdir_in("/var/tmp").expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let listen = format!("http=listen:tcp:127.0.0.1:{port}");
    let grant_dir = format!("files=dir:{}:ro", dir.path().display());
    d.ok(&["deploy", "fds-granted", "--exec", &exec("listfds"), "--grant", &listen, "--grant", &grant_dir, "--wait"]);
    let fds = listed_fds(&d, "fds-granted");
    assert_eq!(fds.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5], "{fds:?}");
    assert!(fds[&4].starts_with("socket:"), "{fds:?}");
    assert_eq!(fds[&5], dir.path().display().to_string(), "fd 5 is the granted directory: {fds:?}");
    let env = output(&d, "fds-granted").into_iter().find(|l| l.starts_with("ENV ")).expect("ENV line");
    assert_eq!(env, "ENV LISTEN_FDS=3 LISTEN_FDNAMES=solo-control:http:files", "{fds:?}");
}

/// The table covers exactly the attempts the probe makes, and its matcher
/// does what the table's comment says (no root needed).
#[test]
fn expectation_table_matches_the_probe() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs/probe.c")).expect("probe.c");
    let in_probe: BTreeSet<&str> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("attempt(\""))
        .filter_map(|l| l.split('"').next())
        .chain(std::iter::once("inherited-fds"))
        .collect();
    let in_table: BTreeSet<&str> = ATTEMPTS.iter().map(|(n, _)| *n).collect();
    assert_eq!(in_probe, in_table);
    // Every kernel-dependent row replaces one of the table (expectations()
    // panics otherwise), and an escape is accepted only where a feature is
    // missing: never on a kernel that has them all.
    let old = Kernel { landlock_abi: 2, memfd_noexec: false };
    let new = Kernel { landlock_abi: 6, memfd_noexec: true };
    assert_eq!(expectations(&old).len(), ATTEMPTS.len());
    assert_eq!(expectations(&new), ATTEMPTS.to_vec());
    assert!(ATTEMPTS.iter().all(|(_, cells)| cells.iter().all(|c| !c.contains("ESCAPED"))));
    assert!(accepts("ESCAPED exec of a copy*", "ESCAPED exec of a copy of the probe ran"));
    assert!(accepts("denied EPERM", "denied EPERM"));
    assert!(!accepts("denied EPERM", "denied EPERMX"));
    assert!(accepts("denied EAGAIN*", "denied EAGAIN forks=62"));
    assert!(accepts("denied EAGAIN", "denied EAGAIN forks=62"));
    assert!(accepts("allowed*|denied*", "denied ETIMEDOUT"));
    assert!(!accepts("denied*", "allowed TCP listening"));
    assert!(!accepts("denied ENOENT", "ESCAPED opened /etc/shadow"));
}

/// Two services: the probe's attempts on the other (its data dir, its pid)
/// are part of every profile run; here the victim is itself a probe that
/// finished its own run, and the second probe is aimed at it.
#[test]
fn two_probes_cannot_reach_each_other() {
    if !require_root("two_probes_cannot_reach_each_other") {
        return;
    }
    let d = Daemon::start();
    let probe = exec("probe");
    d.ok(&["deploy", "first", "--exec", &probe, "--restart", "never", "--memory", "128MiB", "--wait"]);
    wait_for("the first probe", PROBE_TIMEOUT, || output(&d, "first").iter().any(|l| l == "PROBE done").then_some(()));
    let first_pid = pid0(&d.status("first"));
    let first_data = d.state.join("data/first");
    let args = [format!("other-data={}", first_data.display()), format!("other-pid={first_pid}")];
    d.ok(&[
        "deploy",
        "second",
        "--exec",
        &probe,
        "--restart",
        "never",
        "--memory",
        "128MiB",
        "--arg",
        &args[0],
        "--arg",
        &args[1],
        "--wait",
    ]);
    let lines = wait_for("the second probe", PROBE_TIMEOUT, || {
        let l = output(&d, "second");
        l.iter().any(|x| x == "PROBE done").then_some(l)
    });
    let (results, _) = probe_results(&lines);
    assert_eq!(results["other-data-read"], "denied ENOENT", "{}", lines.join("\n"));
    assert_eq!(results["other-data-write"], "denied ENOENT", "{}", lines.join("\n"));
    assert_eq!(results["kill-other-service"], "denied ESRCH", "{}", lines.join("\n"));
    // The first is untouched: same pid, still running, its data intact.
    assert!(alive(first_pid));
    assert_eq!(pid0(&d.status("first")), first_pid);
    assert_eq!(state(&d, "first"), "SERVICE_STATE_RUNNING");
    assert_eq!(std::fs::read_to_string(first_data.join("probe-own")).expect("first's data"), "ok\n");
    assert!(!first_data.join("probe-was-here").exists());
    // Different uids: each service is its own user.
    let (u1, u2) = (d.status("first")["service"]["uid"].clone(), d.status("second")["service"]["uid"].clone());
    assert_ne!(u1, u2);
}

fn event(e: &pb::WatchEvent) -> Option<&pb::Event> {
    match &e.payload {
        Some(pb::watch_event::Payload::Event(ev)) => Some(ev),
        _ => None,
    }
}

/// Collects events of service `id` from a Watch stream until `done` says so.
async fn collect(
    stream: &mut tonic::Streaming<pb::WatchEvent>,
    id: &str,
    timeout: Duration,
    mut done: impl FnMut(&[pb::Event]) -> bool,
) -> Vec<pb::Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline && !done(&seen) {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(item))) => {
                if let Some(ev) = event(&item).filter(|e| e.service == id) {
                    seen.push(ev.clone());
                }
            }
            Ok(_) => break,
            Err(_) => {}
        }
    }
    seen
}

/// Each denied syscall reaches a Watch client as a SECCOMP_DENIED event with
/// the syscall's name, the caller's pid and the action taken.
#[tokio::test(flavor = "multi_thread")]
async fn seccomp_denials_are_watched() {
    if !require_root("seccomp_denials_are_watched") {
        return;
    }
    let d = Daemon::start();
    let mut c = d.client().await;
    // Every service (a watch on one id needs the service to exist already).
    let req = pb::WatchRequest { include_events: true, ..Default::default() };
    let mut stream = c.watch(req).await.expect("watch").into_inner();
    let probe = exec("probe");
    d.ok(&["deploy", "probe", "--exec", &probe, "--restart", "never", "--memory", "128MiB"]);
    let denied = |seen: &[pb::Event], name: &str| {
        seen.iter().any(|e| e.kind == pb::EventKind::SeccompDenied as i32 && e.syscall == name)
    };
    let seen =
        collect(&mut stream, "probe", PROBE_TIMEOUT, |seen| DENIED_SYSCALLS.iter().all(|s| denied(seen, s))).await;
    for s in DENIED_SYSCALLS {
        let e = seen
            .iter()
            .find(|e| e.kind == pb::EventKind::SeccompDenied as i32 && e.syscall == *s)
            .unwrap_or_else(|| panic!("no SECCOMP_DENIED for {s} in {seen:#?}"));
        assert_eq!(e.service, "probe");
        assert_eq!(e.action, "errno", "{e:?}");
        assert!(e.pid > 0, "{e:?}");
        assert!(e.message.contains(s), "{e:?}");
    }
    // The same denials are counted in Status.
    let n = wait_for("seccompDenials", T, || {
        let n = d.status("probe")["service"]["instances"][0]["seccompDenials"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        (n >= DENIED_SYSCALLS.len() as u64).then_some(n)
    });
    assert!(n >= DENIED_SYSCALLS.len() as u64);
}

/// Under `strict` a forbidden syscall in the main process (pid 1 of its
/// namespace) fails with EPERM, the process gets the profile's grace (one
/// second) to say so and exit, and when it does not, it is killed and the
/// service quarantined: not restarted, even with `--restart always`. What
/// it printed after the refusal is kept, and `solo status`, the event
/// stream and `solo logs` all name the syscall. One that goes on probing is
/// killed at its 16th denied call, without the rest of the grace. Under an
/// `errno` profile the same call only fails.
///
/// A kernel that refuses `strict` ([`Kernel::refusal`]) must refuse it here
/// too; the quarantine is then checked under `strict-degraded`, `strict`
/// with `on_missing = "degrade"` (a root profile, since a child may not
/// relax `on_missing`): the same seccomp filter and `kill_process`, which
/// do not depend on the missing feature.
#[tokio::test(flavor = "multi_thread")]
async fn strict_quarantines_on_a_forbidden_syscall_in_main() {
    if !require_root("strict_quarantines_on_a_forbidden_syscall_in_main") {
        return;
    }
    let probe = exec("probe");
    let refusal = Kernel::detect().refusal("strict");
    let profiles = tempfile::tempdir().expect("profiles dir");
    let (d, profile) = match refusal {
        None => (Daemon::start(), "strict"),
        Some(_) => {
            let strict = include_str!("../sandbox-profiles/strict.toml");
            let degraded = strict.replacen("name = \"strict\"", "name = \"strict-degraded\"", 1).replacen(
                "on_missing = \"refuse\"",
                "on_missing = \"degrade\"",
                1,
            );
            assert!(degraded.contains("strict-degraded") && degraded.contains("on_missing = \"degrade\""));
            std::fs::write(profiles.path().join("strict-degraded.toml"), degraded).expect("write profile");
            let dir = profiles.path().display().to_string();
            (Daemon::start_with(&["--profiles-dir", &dir]), "strict-degraded")
        }
    };
    if let Some(refusal) = refusal {
        let err =
            d.fails(&["deploy", "refused", "--exec", &probe, "--profile", "strict", "--restart", "never", "--wait"]);
        assert!(err.contains(refusal), "strict on {:?}: want `{refusal}` in: {err}", Kernel::detect());
        assert_eq!(pid0(&d.status("refused")), 0);
    }
    let mut c = d.client().await;
    let req = pb::WatchRequest { include_events: true, ..Default::default() };
    let mut stream = c.watch(req).await.expect("watch").into_inner();
    let deploy = |id: &str, die_on: &str| {
        d.ok(&[
            "deploy",
            id,
            "--exec",
            &probe,
            "--profile",
            profile,
            "--restart",
            "always",
            "--backoff-ms",
            "10",
            "--arg",
            &format!("die-on={die_on}"),
        ]);
    };
    let deployed = Instant::now();
    deploy("bad", "ptrace");
    let seen =
        collect(&mut stream, "bad", T, |seen| seen.iter().any(|e| e.kind == pb::EventKind::Quarantined as i32)).await;
    let denial = seen
        .iter()
        .find(|e| e.kind == pb::EventKind::SeccompDenied as i32)
        .unwrap_or_else(|| panic!("no SECCOMP_DENIED in {seen:#?}"));
    assert_eq!(denial.syscall, "ptrace");
    assert_eq!(denial.action, "kill_process");
    assert!(denial.message.contains("killed in 1000 ms unless it exits"), "{denial:?}");
    let q = seen
        .iter()
        .find(|e| e.kind == pb::EventKind::Quarantined as i32)
        .unwrap_or_else(|| panic!("no QUARANTINED in {seen:#?}"));
    assert!(q.message.contains("ptrace"), "{q:?}");
    // The kill came a grace after the denial (which came after the deploy).
    let waited = deployed.elapsed();
    assert!(waited >= Duration::from_millis(1000), "quarantined {waited:?} after the deploy, within the 1000 ms grace");
    let st = d.status("bad");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_QUARANTINED", "{st:#}");
    let inst = &st["service"]["instances"][0];
    assert_eq!(inst["state"], "INSTANCE_STATE_QUARANTINED", "{st:#}");
    assert_eq!(inst["lastExit"]["signal"], libc::SIGKILL, "{st:#}");
    let reason = inst["lastExit"]["reason"].as_str().unwrap_or("");
    assert_eq!(reason, format!("killed by its seccomp filter for calling ptrace (profile {profile})"), "{st:#}");
    assert_eq!(inst["lastDeniedSyscall"], "ptrace", "{st:#}");
    assert_eq!(inst["restartCount"].as_u64().unwrap_or(0), 0, "{st:#}");
    // The human status says the same.
    let human = d.ok(&["status", "bad"]);
    for want in ["state:     quarantined", "ptrace", "the last ptrace"] {
        assert!(human.contains(want), "no `{want}` in:\n{human}");
    }
    // Not restarted: well past the 10 ms backoff, nothing has changed.
    std::thread::sleep(Duration::from_millis(1500));
    let st = d.status("bad");
    assert_eq!(st["service"]["state"], "SERVICE_STATE_QUARANTINED", "{st:#}");
    assert_eq!(st["service"]["instances"][0]["restartCount"].as_u64().unwrap_or(0), 0, "{st:#}");
    assert_eq!(pid0(&st), 0, "{st:#}");
    // Its output after the refusal is there, and Solo's own lines say why.
    let logs = d.ok(&["logs", "bad", "--tail", "1000"]);
    assert_eq!(logs.matches("PROBE die-on ptrace calling").count(), 1, "{logs}");
    assert!(logs.contains("out | PROBE die-on ptrace survived: EPERM"), "{logs}");
    assert!(
        logs.contains(&format!(
            "solo | denied ptrace (not allowed by profile {profile}): the call failed with EPERM; the main process"
        )),
        "{logs}"
    );
    assert!(logs.contains("solo | killed process") && logs.contains("after its filter denied ptrace"), "{logs}");
    wait_for("the quarantine in the event store", T, || {
        (!stored_events(&d, "bad", "quarantined").is_empty()).then_some(())
    });
    assert_eq!(stored_events(&d, "bad", "started").len(), 1, "started more than once");

    // Probing on: killed at the 16th denied call, long before the grace ends.
    deploy("prober", "ptrace-loop");
    collect(&mut stream, "prober", T, |seen| seen.iter().any(|e| e.kind == pb::EventKind::Quarantined as i32)).await;
    let st = d.status("prober");
    let inst = &st["service"]["instances"][0];
    assert_eq!(inst["state"], "INSTANCE_STATE_QUARANTINED", "{st:#}");
    assert_eq!(inst["seccompDenials"], "16", "killed at the 16th denied call: {st:#}");
    let logs = output(&d, "prober").join("\n");
    assert!(!logs.contains("survived"), "{logs}");

    // The same call under `default` fails with EPERM and the service runs on.
    d.ok(&["deploy", "mild", "--exec", &probe, "--restart", "always", "--arg", "die-on=ptrace", "--wait"]);
    let logs = wait_for("mild survives", T, || {
        let l = output(&d, "mild").join("\n");
        l.contains("survived").then_some(l)
    });
    assert!(logs.contains("PROBE die-on ptrace survived: EPERM"), "{logs}");
    assert_eq!(state(&d, "mild"), "SERVICE_STATE_RUNNING");
}

/// `examples/strict-compute.c`, a static C program that prints, forks
/// workers, talks to them through pipes and reads /proc, runs under
/// `strict` to the end with all its output; with `--try-network` its
/// socket(2) is refused, it reports the error and exits 3 within the grace,
/// and `solo status` and `solo logs` say which syscall was denied (found
/// by an independent check: such a program ran to silence under strict).
#[test]
fn strict_example_runs_and_a_denial_is_reported() {
    if !require_root("strict_example_runs_and_a_denial_is_reported") {
        return;
    }
    let kernel = Kernel::detect();
    if let Some(refusal) = kernel.refusal("strict") {
        eprintln!("strict is refused on this kernel ({refusal}); the refusal is checked by probe_under_strict");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("strict-compute");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/strict-compute.c");
    let st = std::process::Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc must be installed to build the example");
    assert!(st.success(), "gcc failed for {}", src.display());
    let bin = bin.display().to_string();
    let d = Daemon::start();
    let exited = |id: &str| {
        wait_for(&format!("{id} to exit"), T, || {
            let st = d.status(id);
            (st["service"]["state"] == "SERVICE_STATE_EXITED").then_some(st)
        })
    };
    d.ok(&["deploy", "primes", "--exec", &bin, "--profile", "strict", "--restart", "never"]);
    let st = exited("primes");
    assert_eq!(st["service"]["instances"][0]["lastExit"]["reason"], "exited with code 0", "{st:#}");
    let out = output(&d, "primes");
    for want in ["worker 0 (pid", "worker 2 (pid", "total: 17984 primes below 200000", "done"] {
        assert!(out.iter().any(|l| l.contains(want)), "no `{want}` in {out:#?}");
    }
    assert_eq!(st["service"]["instances"][0]["seccompDenials"].as_str().unwrap_or("0"), "0", "{st:#}");

    d.ok(&[
        "deploy",
        "primes-net",
        "--exec",
        &bin,
        "--profile",
        "strict",
        "--restart",
        "never",
        "--arg",
        "--try-network",
    ]);
    let st = exited("primes-net");
    let inst = &st["service"]["instances"][0];
    assert_eq!(
        inst["lastExit"]["reason"], "exited with code 3 after its filter denied socket(AF_INET) (profile strict)",
        "{st:#}"
    );
    assert_eq!(inst["lastDeniedSyscall"], "socket(AF_INET)", "{st:#}");
    let logs = d.ok(&["logs", "primes-net", "--tail", "1000"]);
    for want in [
        "out | total: 17984 primes below 200000",
        "solo | denied socket(AF_INET) (not allowed by profile strict): the call failed with EPERM",
        "out | strict-compute: socket: Operation not permitted (strict allows no sockets)",
    ] {
        assert!(logs.contains(want), "no `{want}` in:\n{logs}");
    }
    assert!(!logs.contains("killed process"), "it exited within the grace:\n{logs}");
}

/// A Python script runs under `default`: the interpreter and its standard
/// library come from the read-only /usr of the view; the host's files do not.
#[test]
fn python_script_runs_under_default() {
    if !require_root("python_script_runs_under_default") {
        return;
    }
    if !std::path::Path::new("/usr/bin/python3").exists() {
        assert!(!common::in_ci(), "python3 is not installed and CI=true forbids skipping");
        eprintln!("SKIPPED python_script_runs_under_default: no /usr/bin/python3");
        return;
    }
    let d = Daemon::start();
    let script = d.dir.path().join("hello.py");
    std::fs::write(
        &script,
        r#"import json, os, socket, sys
try:
    open("/etc/shadow").read()
    shadow = "readable"
except OSError as e:
    shadow = type(e).__name__
print("py-hello " + json.dumps({"uid": os.getuid(), "host": socket.gethostname(), "pid": os.getpid(),
      "shadow": shadow, "argv": sys.argv[1:]}), flush=True)
"#,
    )
    .expect("write script");
    let script = script.display().to_string();
    d.ok(&[
        "deploy",
        "py",
        "--script",
        &script,
        "--interpreter",
        "python3",
        "--profile",
        "default",
        "--restart",
        "never",
        "--arg",
        "one",
        "--wait",
    ]);
    let line = wait_for("python output", T, || output(&d, "py").into_iter().find(|l| l.starts_with("py-hello ")));
    let v: serde_json::Value = serde_json::from_str(line.trim_start_matches("py-hello ")).expect("json");
    let uid = d.status("py")["service"]["uid"].clone();
    assert_eq!(v["uid"], uid, "{line}");
    assert_eq!(v["host"], "py", "{line}");
    assert_eq!(v["pid"], 1, "{line}");
    assert_eq!(v["shadow"], "FileNotFoundError", "{line}");
    assert_eq!(v["argv"], serde_json::json!(["one"]), "{line}");
    let st = wait_for("python exit", T, || {
        let s = d.status("py");
        (s["service"]["state"] == "SERVICE_STATE_EXITED").then_some(s)
    });
    assert_eq!(st["service"]["instances"][0]["lastExit"]["code"].as_i64().unwrap_or(0), 0, "{st:#}");
}

// ---------------------------------------------------------------------------
// Granted descriptors and directories, at the launcher level: plans sent to
// the real `solo __launcher` through the daemon's own client
// (`supervisor::launch::Launcher`), confined by the `default` profile as the
// daemon builds it (`supervisor::policy`), running `tests/programs/grants.c`.

mod grants {
    use super::common::{program, require_root};
    use solo::profiles::{NetMode, ProfileSet};
    use solo::sandbox::plan::{Bind, Confinement, LaunchPlan, Rlimit, SeccompFilter, MAX_PASSED_FDS};
    use solo::sandbox::{seccomp, sys};
    use solo::supervisor::launch::{LaunchError, Launcher, Spawned};
    use solo::supervisor::policy;
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    const T: Duration = Duration::from_secs(20);

    /// A uid of its own for each spawn of this test binary (the daemons of
    /// the other tests use 200,000 to 1,200,000).
    fn uid(k: u32) -> u32 {
        1_300_000 + (std::process::id() % 1000) * 10 + k
    }

    /// A directory for a test's files, outside `/tmp` (the view's own
    /// `/tmp` cannot be granted) and traversable by root only: the view
    /// shows a granted directory, not its host ancestors.
    fn workdir(tag: &str) -> tempfile::TempDir {
        // The target dir may itself be under /tmp (a checkout there).
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let base =
            if base.is_dir() && !base.starts_with("/tmp") { base.to_path_buf() } else { PathBuf::from("/var/tmp") };
        std::fs::create_dir_all(&base).expect("test base dir");
        tempfile::Builder::new().prefix(&format!("solo-grants-{tag}-")).tempdir_in(base).expect("tempdir")
    }

    /// A plan for `grants` with `args` under the `default` profile, built
    /// with the daemon's own functions; `binds` go into both the view and
    /// the Landlock rules.
    fn grants_plan(dir: &Path, uid: u32, args: &[String], binds: &[Bind], fds: &[&str], env: &[&str]) -> LaunchPlan {
        let set = ProfileSet::builtin().expect("built-in profiles");
        let p = set.get("default").expect("default profile");
        let bpf =
            seccomp::compile(&p.allowed_syscalls(), &p.network.socket_families).expect("compile the default filter");
        let root = dir.join("root");
        let data = dir.join("data");
        std::fs::create_dir_all(&root).expect("view root");
        std::fs::create_dir_all(&data).expect("data dir");
        std::os::unix::fs::chown(&data, Some(uid), Some(uid)).expect("chown data");
        let prog = program("grants").display().to_string();
        let fs =
            policy::fs_view(p, &root, Some(&data), vec![("grants".into(), prog.clone())], "/app/grants".into(), binds);
        let confine = Confinement {
            namespaces: policy::namespaces(p),
            hostname: "grants".into(),
            loopback: p.network.mode == NetMode::Loopback,
            fs: Some(fs),
            landlock: Some(policy::landlock_rules(p, true, binds)),
            seccomp: Some(SeccompFilter::new(bpf)),
        };
        let mut argv = vec!["grants".to_owned()];
        argv.extend(args.iter().cloned());
        let mut environment = vec!["PATH=/usr/local/bin:/usr/bin:/bin".to_owned(), "HOME=/".to_owned()];
        environment.extend(env.iter().map(|s| (*s).to_owned()));
        LaunchPlan {
            service: "grants".into(),
            replica: 0,
            program: prog,
            argv,
            env: environment,
            uid,
            gid: uid,
            cgroup_v2: None,
            cgroup_v1_tasks: vec![],
            rlimits: vec![
                Rlimit { resource: libc::RLIMIT_NOFILE, soft: 1024, hard: 1024 },
                Rlimit { resource: libc::RLIMIT_CORE, soft: 0, hard: 0 },
            ],
            cwd: "/".into(),
            confine,
            fds: fds.iter().map(|s| (*s).to_owned()).collect(),
            listen_fds: None,
        }
    }

    /// A started `grants`: its pidfd (SIGKILL on drop, so a failing test
    /// leaves nothing behind) and its stdout and stderr, read to the end by
    /// threads.
    struct Run {
        sp: Spawned,
        out: std::sync::mpsc::Receiver<String>,
        err: std::sync::mpsc::Receiver<String>,
    }

    impl Drop for Run {
        fn drop(&mut self) {
            let _ = sys::pidfd_send_signal(&self.sp.pidfd, libc::SIGKILL);
        }
    }

    fn reader(fd: OwnedFd) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::fs::File::from(fd).read_to_string(&mut s);
            let _ = tx.send(s);
        });
        rx
    }

    async fn spawn(l: &Arc<Launcher>, plan: LaunchPlan, fds: Vec<OwnedFd>) -> Result<Run, LaunchError> {
        let (out_r, out_w) = sys::pipe(0).expect("pipe");
        let (err_r, err_w) = sys::pipe(0).expect("pipe");
        let sp = tokio::time::timeout(
            T,
            l.spawn(
                plan,
                solo::supervisor::launch::Who { key: "inst/test/0/", meta: "{}", keep: &[] },
                out_w,
                err_w,
                fds,
            ),
        )
        .await
        .expect("the launcher answers")?;
        Ok(Run { sp, out: reader(out_r), err: reader(err_r) })
    }

    impl Run {
        /// The `GRANT <check> <result>` lines of stdout (all of it: the
        /// program has exited), and its stderr, once it has exited 0.
        async fn finish(mut self) -> (BTreeMap<String, String>, String) {
            let out = self.out.recv_timeout(T).expect("the service's stdout closes");
            let err = self.err.recv_timeout(T).expect("the service's stderr closes");
            let status = tokio::time::timeout(T, &mut self.sp.exit).await.expect("it exits").expect("exit status");
            assert_eq!(status, sys::WaitStatus::Exited(0), "stdout:\n{out}\nstderr:\n{err}");
            let mut results = BTreeMap::new();
            for l in out.lines() {
                let Some(rest) = l.strip_prefix("GRANT ") else { continue };
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                assert!(results.insert(k.to_owned(), v.to_owned()).is_none(), "{k} reported twice:\n{out}");
            }
            assert_eq!(results.get("done").map(String::as_str), Some("ok"), "stdout:\n{out}\nstderr:\n{err}");
            (results, err)
        }
    }

    fn get<'a>(r: &'a BTreeMap<String, String>, k: &str) -> &'a str {
        r.get(k).map_or("<missing>", String::as_str)
    }

    /// Socket activation: a TCP listener the test bound on the host and one
    /// end of a socketpair become fds 3 and 4 with LISTEN_FDS=2, the names,
    /// and LISTEN_PID the service's own pid: 1 in its pid namespace, its
    /// real pid without one. The listener works although the service has
    /// network "none"; nothing else is open from fd 5 on; faked LISTEN_*
    /// variables of the plan are replaced.
    async fn socket_activation(l: &Arc<Launcher>, pid_namespace: bool) {
        let dir = workdir("fds");
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp listener");
        let port = tcp.local_addr().expect("addr").port();
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let fake = ["LISTEN_FDS=9", "LISTEN_PID=12345", "LISTEN_FDNAMES=fake"];
        let mut plan = grants_plan(
            dir.path(),
            uid(if pid_namespace { 0 } else { 1 }),
            &["fds".into()],
            &[],
            &["web", "peer"],
            &fake,
        );
        if !pid_namespace {
            plan.confine.namespaces.pid = false;
            if let Some(fs) = plan.confine.fs.as_mut() {
                // A per-pid-namespace sysctl: only with a pid namespace.
                fs.memfd_noexec = false;
            }
        }
        let run = spawn(l, plan, vec![OwnedFd::from(tcp), OwnedFd::from(theirs)]).await.expect("spawned");
        let pid = run.sp.pid;
        // The host connects to the service's granted listener.
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the granted listener");
        c.set_read_timeout(Some(T)).expect("timeout");
        let mut reply = String::new();
        c.read_to_string(&mut reply).expect("the service's reply");
        assert_eq!(reply, "hello from the service\n");
        // The socketpair: the service writes first, then reads.
        ours.set_read_timeout(Some(T)).expect("timeout");
        let mut line = String::new();
        BufReader::new(&ours).read_line(&mut line).expect("read from the service");
        assert_eq!(line, "ping\n");
        ours.write_all(b"pong\n").expect("answer the service");
        let (r, err) = run.finish().await;
        let want_pid = if pid_namespace { 1 } else { pid };
        let want = [
            ("listen-fds", "2".to_owned()),
            ("listen-fdnames", "web:peer".to_owned()),
            ("listen-pid", format!("{want_pid} getpid={want_pid}")),
            ("listen-vars", "3".to_owned()),
            // A listening TCP socket (AF_INET 2, SOCK_STREAM 1), inherited.
            ("fd3", "socket cloexec=0 acceptconn=1 domain=2 type=1".to_owned()),
            ("accept", "allowed wrote=23".to_owned()),
            // A unix (1) stream socket.
            ("fd4", "socket cloexec=0 domain=1 type=1".to_owned()),
            ("pair", "allowed read=pong".to_owned()),
            ("fds-beyond", "none".to_owned()),
            ("stdin", "chardev read=0".to_owned()),
            ("stdout", "pipe".to_owned()),
            ("stderr", "pipe".to_owned()),
        ];
        for (k, v) in want {
            assert_eq!(get(&r, k), v, "{k} (pid namespace: {pid_namespace}): {r:#?}");
        }
        assert_eq!(err, "GRANT stderr-line ok\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn launcher_passes_sockets_in_the_systemd_convention() {
        if !require_root("launcher_passes_sockets_in_the_systemd_convention") {
            return;
        }
        let rt = workdir("launcher");
        let l = Launcher::new(super::common::solo_bin(), rt.path().to_path_buf());
        socket_activation(&l, true).await;
        socket_activation(&l, false).await;
        // No descriptors: no LISTEN_* at all, even faked ones of the plan,
        // and nothing open from fd 3 on.
        let dir = workdir("nofds");
        let fake = ["LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=fake", "LISTEN_PIDFDID=7"];
        let plan = grants_plan(dir.path(), uid(2), &["fds".into()], &[], &[], &fake);
        let (r, _) = spawn(&l, plan, vec![]).await.expect("spawned").finish().await;
        assert_eq!(get(&r, "listen-fds"), "unset", "{r:#?}");
        assert_eq!(get(&r, "listen-fdnames"), "unset", "{r:#?}");
        assert_eq!(get(&r, "listen-pid"), "unset getpid=1", "{r:#?}");
        assert_eq!(get(&r, "listen-vars"), "0", "{r:#?}");
        assert_eq!(get(&r, "fd3"), "EBADF cloexec=-1 acceptconn=-9 domain=-9 type=-9", "{r:#?}");
        assert_eq!(get(&r, "fds-beyond"), "none", "{r:#?}");
    }

    /// Granted directories: read-only (readable; not writable: EROFS, even
    /// for a file its mode lets anyone write; not executable: EACCES) and
    /// read-write (a file created there is the host's), at their host
    /// paths; a sibling that is not granted does not exist in the view.
    #[tokio::test(flavor = "multi_thread")]
    async fn launcher_binds_granted_directories() {
        if !require_root("launcher_binds_granted_directories") {
            return;
        }
        let dir = workdir("binds");
        let base = dir.path().join("grants");
        let (ro, rw, secret) = (base.join("ro"), base.join("rw"), base.join("secret"));
        for d in [&ro, &rw, &secret] {
            std::fs::create_dir_all(d).expect("mkdir");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let uid = uid(3);
        std::os::unix::fs::chown(&rw, Some(uid), Some(uid)).expect("chown rw");
        std::fs::write(ro.join("hello"), "hello from the host\n").expect("write");
        std::fs::write(ro.join("open"), "anyone may write me\n").expect("write");
        std::fs::set_permissions(ro.join("open"), std::fs::Permissions::from_mode(0o666)).expect("chmod");
        std::fs::copy(program("grants"), ro.join("prog")).expect("copy the program");
        std::fs::set_permissions(ro.join("prog"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(secret.join("file"), "not granted\n").expect("write");
        let s = |p: &Path| p.display().to_string();
        let binds =
            [Bind { host: s(&ro), at: s(&ro), writable: false }, Bind { host: s(&rw), at: s(&rw), writable: true }];
        let args = [
            format!("read={}", s(&ro.join("hello"))),
            format!("create={}", s(&ro.join("new"))),
            format!("write={}", s(&ro.join("open"))),
            format!("exec={}", s(&ro.join("prog"))),
            format!("create={}", s(&rw.join("out"))),
            format!("read={}", s(&rw.join("out"))),
            format!("absent={}", s(&secret)),
            format!("absent={}", s(&secret.join("file"))),
        ];
        let rt = workdir("launcher");
        let l = Launcher::new(super::common::solo_bin(), rt.path().to_path_buf());
        let plan = grants_plan(dir.path(), uid, &args, &binds, &[], &[]);
        let (r, _) = spawn(&l, plan, vec![]).await.expect("spawned").finish().await;
        let want = [
            (format!("read:{}", s(&ro.join("hello"))), "allowed hello from the host"),
            // A read-only mount: creating is refused before any permission check.
            (format!("create:{}", s(&ro.join("new"))), "denied EROFS"),
            (format!("write:{}", s(&ro.join("open"))), "denied EROFS"),
            // noexec on the mount (and no execute right in Landlock).
            (format!("exec:{}", s(&ro.join("prog"))), "denied EACCES"),
            (format!("create:{}", s(&rw.join("out"))), "allowed wrote=23"),
            (format!("read:{}", s(&rw.join("out"))), "allowed written by the service"),
            (format!("absent:{}", s(&secret)), "denied ENOENT"),
            (format!("absent:{}", s(&secret.join("file"))), "denied ENOENT"),
        ];
        for (k, v) in &want {
            assert_eq!(get(&r, k), *v, "{k}: {r:#?}");
        }
        assert_eq!(std::fs::read_to_string(rw.join("out")).expect("the host sees it"), "written by the service\n");
        assert!(!ro.join("new").exists());
        assert_eq!(std::fs::read_to_string(ro.join("open")).expect("read"), "anyone may write me\n");
        // The same binds in a second instance (its view is kept): a
        // different instance without them sees none of their mount points.
        let plan = grants_plan(
            dir.path(),
            uid,
            &[format!("absent={}", s(&ro)), format!("absent={}", s(&base))],
            &[],
            &[],
            &[],
        );
        let (r, _) = spawn(&l, plan, vec![]).await.expect("spawned").finish().await;
        assert_eq!(get(&r, &format!("absent:{}", s(&ro))), "denied ENOENT", "{r:#?}");
        assert_eq!(get(&r, &format!("absent:{}", s(&base))), "denied ENOENT", "{r:#?}");
    }

    fn refused(r: Result<Run, LaunchError>, what: &str) -> String {
        match r {
            Err(LaunchError::Step { step, errno, message }) => {
                assert_eq!((step.as_str(), errno), ("prepare", libc::EINVAL), "{what}: {message}");
                message
            }
            Err(e) => panic!("{what}: refused, but not by step prepare: {e}"),
            Ok(_) => panic!("{what}: started"),
        }
    }

    fn devnulls(n: usize) -> Vec<OwnedFd> {
        (0..n).map(|_| sys::open(c"/dev/null", libc::O_RDONLY).expect("open /dev/null")).collect()
    }

    /// What the launcher refuses before anything is opened (step prepare,
    /// EINVAL, saying why), and that it goes on launching afterwards.
    #[tokio::test(flavor = "multi_thread")]
    async fn launcher_refuses_bad_grants() {
        if !require_root("launcher_refuses_bad_grants") {
            return;
        }
        let dir = workdir("bad");
        let rt = workdir("launcher");
        let l = Launcher::new(super::common::solo_bin(), rt.path().to_path_buf());
        let uid = uid(4);
        // One descriptor more than a service may get.
        let names: Vec<String> = (0..=MAX_PASSED_FDS).map(|i| format!("fd{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let p = grants_plan(dir.path(), uid, &[], &[], &refs, &[]);
        let m = refused(spawn(&l, p, devnulls(MAX_PASSED_FDS + 1)).await, "65 descriptors");
        assert!(m.contains("65 descriptors to pass, at most 64"), "{m}");
        // Names systemd would not accept.
        for bad in ["", "a:b", "new\nline", "tab\there", "é", &"x".repeat(256)] {
            let p = grants_plan(dir.path(), uid, &[], &[], &["ok", bad], &[]);
            let m = refused(spawn(&l, p, devnulls(2)).await, &format!("name {bad:?}"));
            assert!(m.contains("descriptor name"), "{m}");
        }
        // Granted directories at the view's own places, or the host's.
        let host = dir.path().join("d");
        std::fs::create_dir_all(&host).expect("mkdir");
        let h = host.display().to_string();
        let link = dir.path().join("link-to-proc");
        std::os::unix::fs::symlink("/proc/self", &link).expect("symlink");
        let l2 = link.display().to_string();
        for (host, at, why) in [
            (h.as_str(), "/proc", "at /proc"),
            (h.as_str(), "/proc/x", "beneath /proc"),
            (h.as_str(), "/", "at /"),
            (h.as_str(), "/tmp/x", "beneath /tmp"),
            (h.as_str(), "/dev/shm", "beneath /dev"),
            (h.as_str(), "/data", "at /data"),
            (h.as_str(), "/app/x", "beneath /app"),
            (h.as_str(), "/usr", "over the profile's /usr"),
            (h.as_str(), "relative", "a relative path"),
            ("/proc/1", h.as_str(), "the host's /proc"),
            ("/sys/kernel", h.as_str(), "the host's /sys"),
            (l2.as_str(), l2.as_str(), "a symlink into /proc"),
        ] {
            let binds = [Bind { host: host.into(), at: at.into(), writable: false }];
            let p = grants_plan(dir.path(), uid, &[], &binds, &[], &[]);
            let m = refused(spawn(&l, p, vec![]).await, why);
            eprintln!("refused {why}: {m}");
        }
        // Descriptors that do not match the names: EBADF.
        let p = grants_plan(dir.path(), uid, &[], &[], &["a", "b"], &[]);
        match spawn(&l, p, devnulls(1)).await {
            Err(LaunchError::Step { step, errno, .. }) => assert_eq!((step.as_str(), errno), ("prepare", libc::EBADF)),
            Err(e) => panic!("one descriptor for two names: {e}"),
            Ok(_) => panic!("one descriptor for two names: started"),
        }
        // The launcher is still there and launches.
        let p = grants_plan(dir.path(), uid, &[], &[], &[], &[]);
        let (r, _) = spawn(&l, p, vec![]).await.expect("spawned after the refusals").finish().await;
        assert_eq!(get(&r, "done"), "ok");
    }
}
