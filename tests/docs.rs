//! Repository rules kept as tests: the sandbox doc lists the launch steps
//! in the order the code runs them, and the module import rules of
//! src/lib.rs hold.

use solo::sandbox::steps::Step;
use std::path::Path;

fn read(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn sandbox_doc_lists_the_steps_in_code_order() {
    let doc = read("docs/sandbox.md");
    // Numbered items that start with a step name in backticks: "3. `join-cgroups` — ...".
    let listed: Vec<String> = doc
        .lines()
        .filter_map(|l| {
            let (num, rest) = l.split_once(". `")?;
            num.trim().parse::<u32>().ok()?;
            rest.split('`').next().map(str::to_owned)
        })
        .collect();
    let code: Vec<&str> = Step::ORDER.iter().map(|s| s.name()).collect();
    assert_eq!(listed, code, "docs/sandbox.md and Step::ORDER disagree");
}

#[test]
fn apply_runs_the_steps_in_step_order() {
    // The order in steps.rs's run() body must match Step::ORDER (after the
    // prepare and clone steps, which run in the launcher).
    let src = read("src/sandbox/steps.rs");
    let body = src.split("fn run(p: &Prepared").nth(1).and_then(|b| b.split("\nfn ").next()).expect("run()");
    let mut found: Vec<(usize, &str)> = Step::ORDER[2..]
        .iter()
        .map(|s| {
            let variant = format!("{s:?}");
            let call = match *s {
                Step::JoinCgroups => "join_cgroups(".to_owned(),
                Step::Stdio => "stdio(".to_owned(),
                Step::Rlimits => "rlimits(".to_owned(),
                Step::Landlock => "landlock(p".to_owned(),
                Step::Seccomp => "seccomp(p".to_owned(),
                Step::Exec => "sys::execveat(".to_owned(),
                _ => format!("Step::{variant}"),
            };
            (body.find(&call).unwrap_or_else(|| panic!("{variant} is not run in run()")), s.name())
        })
        .collect();
    found.sort_unstable();
    let order: Vec<&str> = found.iter().map(|(_, n)| *n).collect();
    let expected: Vec<&str> = Step::ORDER[2..].iter().map(|s| s.name()).collect();
    assert_eq!(order, expected);
}

/// Every `.rs` file under `dir` (relative to the crate root).
fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// `use crate::<module>` lines of every file under `src/<dir>`.
fn imports(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in rust_files(&format!("src/{dir}")) {
        let text = std::fs::read_to_string(&p).expect("read");
        for l in text.lines() {
            for m in l.match_indices("crate::") {
                let module = l[m.0 + 7..].split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("");
                out.push((p.display().to_string(), module.to_owned()));
            }
        }
    }
    out
}

#[test]
fn module_import_rules_hold() {
    let spec = imports("spec");
    assert!(spec.is_empty(), "spec must import nothing from the crate: {spec:?}");
    for (file, m) in imports("sandbox") {
        assert!(m == "sandbox", "{file}: sandbox may not import crate::{m}");
    }
    let sandbox_text: String =
        rust_files("src/sandbox").iter().map(|p| std::fs::read_to_string(p).expect("read")).collect();
    for forbidden in ["tokio", "tonic", "rusqlite"] {
        assert!(!sandbox_text.contains(&format!("{forbidden}::")), "sandbox uses {forbidden}");
    }
    for (file, m) in imports("cli") {
        assert!(
            !matches!(m.as_str(), "supervisor" | "store" | "daemon" | "api"),
            "{file}: cli may not import crate::{m}"
        );
    }
    // The MCP adapter and the web view are clients of the API, like the
    // CLI: no shortcut into the daemon (issue 13).
    for dir in ["mcp", "ui"] {
        for (file, m) in imports(dir) {
            assert!(
                matches!(m.as_str(), "cli" | "proto" | "spec" | "auth" | "profiles") || m == dir,
                "{file}: {dir} may not import crate::{m} (it reaches the daemon through the gRPC API only)"
            );
        }
    }
    for (file, m) in imports("launcher") {
        assert!(matches!(m.as_str(), "sandbox" | "launcher"), "{file}: launcher may not import crate::{m}");
    }
    // auth is a pure library under the api, the store and the cli: it may
    // use the syscall layer (geteuid) and nothing of the daemon.
    for (file, m) in imports("auth") {
        assert!(matches!(m.as_str(), "auth" | "sandbox"), "{file}: auth may not import crate::{m}");
    }
    // The audit log's rules and the metrics registry are pure: the store
    // and the supervisor use them, never the reverse.
    for dir in ["audit", "metrics"] {
        for (file, m) in imports(dir) {
            assert!(m == dir, "{file}: {dir} may not import crate::{m}");
        }
    }
}

#[test]
fn unsafe_lives_only_in_the_syscall_layer() {
    let mut offenders = Vec::new();
    for p in rust_files("src") {
        let text = std::fs::read_to_string(&p).expect("read");
        let allowed = p.parent().is_some_and(|d| d.ends_with("sandbox/sys"));
        // Two reviewed exceptions, each a single documented call: taking
        // fd 0 in the launcher entry point, and registering the launcher
        // socket with tokio (AsyncFd::register is unsafe since tokio 1.52).
        let exceptions = p.ends_with("main.rs") || p.ends_with("supervisor/launch.rs");
        let count = text.matches("unsafe {").count() + text.matches("unsafe fn").count();
        if !allowed && (count > 1 || (count == 1 && !exceptions)) {
            offenders.push(format!("{} ({count})", p.display()));
        }
    }
    assert!(offenders.is_empty(), "unsafe outside src/sandbox/sys/: {offenders:?}");
}

/// `systemd/solo.service` passes `systemd-analyze verify` (with ExecStart
/// pointing at the binary under test), and keeps the settings that let
/// services outlive a restart of the unit: `KillMode=process`, SIGTERM
/// detaching, reload re-executing.
#[test]
fn systemd_unit_verifies_and_keeps_services_across_restarts() {
    let unit = read("systemd/solo.service");
    for want in
        ["KillMode=process", "Environment=SOLO_ON_SIGTERM=detach", "ExecReload=/bin/kill -HUP $MAINPID", "Delegate=yes"]
    {
        assert!(unit.lines().any(|l| l == want), "systemd/solo.service lost `{want}`");
    }
    let Some(analyze) =
        ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].into_iter().find(|p| Path::new(p).exists())
    else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "systemd-analyze is missing (scripts/setup installs the systemd package) and CI=true forbids skipping"
        );
        eprintln!("SKIPPED systemd_unit_verifies_and_keeps_services_across_restarts: no systemd-analyze (apt-get install systemd)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("solo.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/solo", env!("CARGO_BIN_EXE_solo"))).expect("write the unit");
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify: {text}");
}
