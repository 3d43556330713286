//! `solo profile …` end to end: the real binary, offline (no daemon, no
//! root), on good and bad input; and docs/profiles.md kept in step with
//! sandbox-profiles/syscalls.toml and the audit weight table.
//!
//! The two generated sections of docs/profiles.md (the syscall groups and
//! the audit weights) must equal what the code generates; after changing
//! either, run `SOLO_UPDATE_DOCS=1 cargo test --test profiles` to rewrite
//! them, and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn solo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_solo"));
    // A profiles dir from the environment would change what the tests see.
    c.env_remove("SOLO_PROFILES_DIR");
    c
}

fn run(args: &[&str]) -> Output {
    solo().args(args).output().expect("run solo")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write profile");
    p
}

fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

// ---- check -------------------------------------------------------------

#[test]
fn check_accepts_a_tightening_profile() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = write(
        d.path(),
        "small.toml",
        "name = \"small\"\ndescription = \"d\"\nextends = \"default\"\n[limits]\nmax_pids = 4\n",
    );
    let o = run(&["profile", "check", f.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("profile 'small'") && out.contains("extends 'default'") && out.contains("sha256 "), "{out}");
    let hash = out.rsplit("sha256 ").next().expect("hash").trim();
    assert_eq!(hash.len(), 64, "{out}");
    for name in ["base", "default", "network-client", "web-server", "strict"] {
        let p = format!("{}/sandbox-profiles/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let o = run(&["profile", "check", &p]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    }
}

#[test]
fn check_reports_a_typo_with_line_and_column() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = write(
        d.path(),
        "typo.toml",
        "name = \"typo\"\ndescription = \"d\"\nextends = \"base\"\n\n[limits]\nmax_pidz = 3\n",
    );
    let o = run(&["profile", "check", f.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("{}:6:1: ", f.display())), "{err}");
    assert!(err.contains("unknown field `max_pidz`"), "{err}");
    // A bad value, too.
    let f = write(
        d.path(),
        "mode.toml",
        "name = \"mode\"\ndescription = \"d\"\nextends = \"base\"\n[network]\n  mode = \"wide\"\n",
    );
    let o = run(&["profile", "check", f.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!("{}:5:3: [network] mode: 'wide'", f.display())), "{}", stderr(&o));
}

#[test]
fn check_names_each_widening_at_its_line() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = write(
        d.path(),
        "wide.toml",
        "name = \"wide\"\ndescription = \"d\"\nextends = \"default\"\n[network]\nmode = \"host\"\n[seccomp]\nallow = [\"@default\", \"@aio\"]\n",
    );
    let o = run(&["profile", "check", f.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with(&format!("{}:5:1: ", f.display())) && lines[0].contains("[network] mode"), "{err}");
    // In the file's own words, not the code's.
    assert!(lines[0].contains("\"host\" is wider than the parent's \"none\""), "{err}");
    assert!(lines[1].starts_with(&format!("{}:7:1: ", f.display())) && lines[1].contains("io_submit"), "{err}");
    assert!(err.contains("widens what it extends ('default')"), "{err}");
}

#[test]
fn check_reports_an_unknown_parent_and_a_missing_file() {
    let d = tempfile::tempdir().expect("tempdir");
    let f = write(d.path(), "orphan.toml", "name = \"orphan\"\ndescription = \"d\"\nextends = \"nope\"\n");
    let o = run(&["profile", "check", f.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(":3:1: profile 'orphan' extends unknown profile 'nope'"), "{}", stderr(&o));
    let o = run(&["profile", "check", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read profile /nonexistent/x.toml"), "{}", stderr(&o));
}

// ---- names, paths and --profiles-dir -----------------------------------

#[test]
fn an_unknown_name_lists_the_known_ones() {
    let o = run(&["profile", "explain", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("no such profile"), "{err}");
    for known in ["base", "default", "network-client", "web-server", "strict"] {
        assert!(err.contains(known), "{known} not listed: {err}");
    }
    let o = run(&["profile", "audit", "nope"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn profiles_dir_adds_profiles_by_flag_and_by_environment() {
    let d = tempfile::tempdir().expect("tempdir");
    write(
        d.path(),
        "batch.toml",
        "name = \"batch\"\ndescription = \"Batch jobs.\"\nextends = \"strict\"\n[limits]\nmax_pids = 2\n",
    );
    let dir = d.path().to_str().expect("utf-8");
    let o = run(&["profile", "list", "--profiles-dir", dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.lines().any(|l| l.starts_with("batch ") && l.contains("strict") && l.contains(dir)), "{out}");
    let o = solo().args(["profile", "explain", "batch"]).env("SOLO_PROFILES_DIR", dir).output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("extends:  strict (chain: batch → strict → base)"), "{}", stdout(&o));
    // Without the dir the name is unknown.
    assert_eq!(run(&["profile", "explain", "batch"]).status.code(), Some(1));
    // A path works without the dir, resolved against the built-ins.
    let p = d.path().join("batch.toml");
    let o = run(&["profile", "audit", p.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

// ---- explain -----------------------------------------------------------

#[test]
fn explain_strict_in_words() {
    let o = run(&["profile", "explain", "strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "kill_process",
        "user   own",
        "a user namespace that maps its uid to itself",
        "quarantine",
        "clone3 always fails with ENOSYS",
        "clone is allowed only without namespace flags",
        "read, write, execveat, exit_group",
        "/tmp: private tmpfs of at most 16MiB",
        "not visible: /etc",
        "/home",
        "/var/lib/solo",
        "mode:        none",
        "@mount (11)",
        "not allowed: @aio @chown @ipc @network-io @sync",
        "min ABI:     1",
        "memory:      64MiB",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Every syscall strict allows is printed by name.
    let o = run(&["--json", "profile", "explain", "strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["seccomp"]["default_action"], "kill_process");
    assert_eq!(
        v["namespaces"].as_array().expect("namespaces").iter().find(|n| n["name"] == "user").expect("user")["own"],
        true
    );
    let groups = v["seccomp"]["allowed"].as_array().expect("allowed");
    let process = groups.iter().find(|g| g["name"] == "@process").expect("@process");
    assert!(process["syscalls"].as_array().expect("syscalls").iter().any(|s| s == "wait4"));
    assert_eq!(v["chain"], serde_json::json!(["strict", "base"]));
}

#[test]
fn explain_base_shows_host_network_and_visible_etc_files() {
    let o = run(&["profile", "explain", "base"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in
        ["mode:        host", "TCP bind:    allowed", "/etc/resolv.conf", "errno", "@aio (6)", "on_missing:  degrade"]
    {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

// ---- audit -------------------------------------------------------------

fn score(name: &str) -> f64 {
    let o = run(&["--json", "profile", "audit", name]);
    assert!(o.status.success(), "{}", stderr(&o));
    json(&o)["score"].as_f64().expect("score")
}

#[test]
fn audit_orders_the_builtins() {
    let (strict, default, web, client, base) =
        (score("strict"), score("default"), score("web-server"), score("network-client"), score("base"));
    assert!(strict < default, "strict {strict} default {default}");
    assert_eq!(default, web);
    assert!(default < client, "default {default} network-client {client}");
    assert!(client < base, "network-client {client} base {base}");
    assert!((0.0..=10.0).contains(&strict) && (0.0..=10.0).contains(&base));
}

#[test]
fn audit_prints_one_finding_per_line_and_honours_the_threshold() {
    let o = run(&["profile", "audit", "base"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("base: exposure "), "{out}");
    let findings: Vec<&str> = out.lines().filter(|l| l.starts_with("yes ") || l.starts_with("no ")).collect();
    assert_eq!(findings.len(), solo::profiles::audit::CHECKS.len(), "{out}");
    assert!(out.lines().any(|l| l.starts_with("yes") && l.contains("net-host")), "{out}");

    let o = run(&["profile", "audit", "strict", "--threshold", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&["profile", "audit", "base", "--threshold", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is above the threshold 2.0"), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("base: exposure"), "the report is still printed");
    let o = run(&["profile", "audit", "base", "--threshold", "10"]);
    assert_eq!(o.status.code(), Some(0));
    let o = run(&["profile", "audit", "base", "--threshold", "eleven"]);
    assert_eq!(o.status.code(), Some(2), "a bad flag value is a usage error");
    let o = run(&["profile", "audit", "base", "--threshold", "11"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn audit_json_has_every_finding() {
    let o = run(&["--json", "profile", "audit", "network-client"]);
    let v = json(&o);
    let f = v["findings"].as_array().expect("findings");
    assert_eq!(f.len(), solo::profiles::audit::CHECKS.len());
    for x in f {
        assert!(x["id"].is_string() && x["weight"].is_f64() && x["exposed"].is_boolean() && x["sentence"].is_string());
    }
    let exposed: f64 = f.iter().filter(|x| x["exposed"] == true).map(|x| x["weight"].as_f64().unwrap_or(0.0)).sum();
    let total: f64 = f.iter().map(|x| x["weight"].as_f64().unwrap_or(0.0)).sum();
    assert_eq!(v["score"].as_f64(), Some((100.0 * exposed / total).round() / 10.0));
}

// ---- diff --------------------------------------------------------------

#[test]
fn diff_shows_both_directions() {
    let o = run(&["profile", "diff", "default", "network-client"]);
    assert_eq!(o.status.code(), Some(0));
    // Long lines are wrapped: compare with whitespace collapsed.
    let out = flat(&stdout(&o));
    let (more, less) = out.split_once("What default (A) allows").expect("two sections");
    assert!(more.contains("What network-client (B) allows that default (A) does not:"), "{out}");
    assert!(more.contains("network mode host") && more.contains("where default has none"), "{out}");
    assert!(!less.contains("network mode"), "{out}");

    let o = run(&["profile", "diff", "base", "default"]);
    assert_eq!(o.status.code(), Some(0));
    let out = flat(&stdout(&o));
    let (_, base_more) = out.split_once("What base (A) allows that default (B) does not:").expect("section");
    for needle in ["all of @aio", "io_submit", "all of @chown", "fchownat", "binding new TCP ports"] {
        assert!(base_more.contains(needle), "missing {needle} in:\n{out}");
    }

    let o = run(&["profile", "diff", "default", "web-server"]);
    assert!(stdout(&o).contains("no difference"), "{}", stdout(&o));

    let o = run(&["--json", "profile", "diff", "base", "default"]);
    let v = json(&o);
    assert_eq!(v["b_allows_more"].as_array().map(Vec::len), Some(0));
    let aio = v["a_allows_more"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["key"] == "[seccomp] allow @aio")
        .expect("@aio difference")
        .clone();
    assert_eq!(aio["syscalls"].as_array().map(Vec::len), Some(6));
}

// ---- list and help -----------------------------------------------------

#[test]
fn list_shows_every_builtin() {
    let o = run(&["profile", "list"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("NAME"), "{out}");
    for name in ["base", "default", "network-client", "web-server", "strict"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} missing:\n{out}");
    }
    let v = json(&run(&["--json", "profile", "list"]));
    assert_eq!(v.as_array().map(Vec::len), Some(5));
    assert!(v.as_array().expect("list").iter().all(|p| p["sha256"].as_str().is_some_and(|s| s.len() == 64)));
}

#[test]
fn every_subcommand_has_help() {
    let o = run(&["profile", "--help"]);
    assert!(o.status.success());
    for sub in ["check", "explain", "audit", "diff", "list"] {
        assert!(stdout(&o).contains(sub), "{sub} missing from solo profile --help");
        let h = run(&["profile", sub, "--help"]);
        assert!(h.status.success(), "{sub}");
        assert!(stdout(&h).contains("--profiles-dir"), "{sub}: {}", stdout(&h));
    }
    assert!(stdout(&run(&["--help"])).contains("profile"));
}

// ---- docs/profiles.md --------------------------------------------------

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/profiles.md")
}

/// The text between the BEGIN and END markers of generated section `name`.
fn section(doc: &str, name: &str) -> (usize, usize) {
    let begin = format!("<!-- BEGIN GENERATED {name} -->\n");
    let end = format!("<!-- END GENERATED {name} -->");
    let b = doc.find(&begin).unwrap_or_else(|| panic!("docs/profiles.md has no '{begin}' marker")) + begin.len();
    let e = doc[b..].find(&end).unwrap_or_else(|| panic!("docs/profiles.md has no '{end}' marker")) + b;
    (b, e)
}

/// Compares a generated section with the doc; rewrites it under
/// SOLO_UPDATE_DOCS=1.
fn generated_section_matches(name: &str, want: &str) {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path).expect("docs/profiles.md");
    let (b, e) = section(&doc, name);
    if &doc[b..e] == want {
        return;
    }
    if std::env::var("SOLO_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{want}{}", &doc[..b], &doc[e..]);
        std::fs::write(&path, updated).expect("rewrite docs/profiles.md");
        return;
    }
    panic!(
        "docs/profiles.md section '{name}' is out of date with the code; run\n  SOLO_UPDATE_DOCS=1 cargo test --test profiles\nand review the diff"
    );
}

#[test]
fn doc_lists_every_syscall_group_exactly() {
    generated_section_matches("syscall-groups", &solo::profiles::explain::groups_markdown());
    // And, independently of the generator: every group and every syscall of
    // the embedded syscalls.toml appears in that section.
    let doc = std::fs::read_to_string(doc_path()).expect("doc");
    let (b, e) = section(&doc, "syscall-groups");
    let text = &doc[b..e];
    for (name, g) in solo::profiles::groups::all() {
        let head = format!("#### `{name}`");
        let at = text.find(&head).unwrap_or_else(|| panic!("group {name} is not in docs/profiles.md"));
        let body = &text[at..];
        let body = &body[..body[head.len()..].find("#### ").map_or(body.len(), |i| i + head.len())];
        for s in &g.syscalls {
            assert!(body.contains(&format!("`{s}`")), "{name}: {s} is not listed in docs/profiles.md");
        }
        assert!(body.contains(&format!("{} syscalls:", g.syscalls.len())), "{name}: wrong count in docs/profiles.md");
    }
}

#[test]
fn doc_lists_every_audit_weight() {
    generated_section_matches("audit-weights", &solo::profiles::audit::weights_markdown());
    let doc = std::fs::read_to_string(doc_path()).expect("doc");
    for c in solo::profiles::audit::CHECKS {
        assert!(doc.contains(&format!("`{}`", c.id)), "audit finding {} is not documented in docs/profiles.md", c.id);
    }
}

#[test]
fn doc_describes_every_profile_key() {
    let doc = std::fs::read_to_string(doc_path()).expect("doc");
    for key in [
        "name",
        "description",
        "extends",
        "on_missing",
        "[namespaces]",
        "mount",
        "pid",
        "ipc",
        "uts",
        "cgroup",
        "user",
        "[filesystem]",
        "read_only",
        "tmp_size",
        "devices",
        "[network]",
        "mode",
        "bind",
        "[seccomp]",
        "default_action",
        "allow",
        "deny",
        "on_violation",
        "[landlock]",
        "min_abi",
        "[limits]",
        "memory_bytes",
        "max_pids",
        "cpu_weight",
        "max_open_files",
    ] {
        assert!(doc.contains(&format!("`{key}`")), "docs/profiles.md does not describe `{key}`");
    }
}
