//! `solo serve --metrics` against real clients: the scrape carries the
//! seed's series and the daemon's figures and passes Debian's
//! `promtool check metrics`; a real `prometheus` server scrapes it and
//! answers a query about it; bad addresses are refused naming the flag.
//! `promtool` and `prometheus` come from Debian's `prometheus` package
//! (`scripts/setup` installs it); without them these tests skip outside CI
//! and fail in CI.

mod common;

use common::{free_port, in_ci, program, require_root, solo_bin, wait_for, Daemon};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn exec(p: &str) -> String {
    program(p).display().to_string()
}

/// One HTTP/1.0 request to 127.0.0.1:`port`: (status line, body).
fn http(port: u16, method: &str, path: &str) -> std::io::Result<(String, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((head.lines().next().unwrap_or("").to_owned(), body.to_owned()))
}

fn scrape(port: u16) -> String {
    let (status, body) = http(port, "GET", "/metrics").expect("scrape");
    assert!(status.contains("200"), "{status}");
    body
}

/// The value of the sample whose line starts with `series ` (exactly).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A Debian `prometheus` package tool, or a skip (outside CI) / failure (CI).
fn tool(test: &str, name: &str) -> Option<std::path::PathBuf> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = std::path::Path::new(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    let why = format!("{name} is not installed (apt-get install -y prometheus; scripts/setup does it as root)");
    assert!(!in_ci(), "{test}: {why}, and CI=true forbids skipping");
    eprintln!("SKIPPED {test}: {why}");
    None
}

#[test]
fn the_scrape_has_the_series_and_passes_promtool() {
    if !require_root("the_scrape_has_the_series_and_passes_promtool") {
        return;
    }
    let Some(promtool) = tool("the_scrape_has_the_series_and_passes_promtool", "promtool") else { return };
    let port = free_port();
    let d = Daemon::start_with(&["--metrics", &format!("127.0.0.1:{port}")]);
    d.ok(&["deploy", "web", "--exec", &exec("sleeper"), "--wait"]);
    d.ok(&["deploy", "hog", "--exec", &exec("memhog"), "--memory", "16MiB", "--restart", "never", "--wait"]);
    wait_for("the OOM kill", T, || (common::instance0(&d.status("hog"))["lastExit"]["cause"] == "oom").then_some(()));
    // Usage is sampled every 5 s: wait for web's first sample.
    let text = wait_for("a usage sample", T, || {
        let t = scrape(port);
        value(&t, r#"solo_service_memory_bytes{service="web"}"#).filter(|v| *v > 0.0).map(|_| t)
    });
    for (series, want) in [
        ("solo_deployment_count", Some(2.0)),
        ("solo_active_services", Some(1.0)),
        (r#"solo_services{state="running"}"#, Some(1.0)),
        ("solo_deployments_total", Some(2.0)),
        (r#"solo_oom_kills_total{service="hog"}"#, Some(1.0)),
        (r#"solo_oom_kills_total{service="web"}"#, Some(0.0)),
        (r#"solo_restarts_total{service="web"}"#, Some(0.0)),
        (r#"solo_seccomp_denials_total{service="web"}"#, Some(0.0)),
        (r#"solo_service_ready_replicas{service="web"}"#, Some(1.0)),
        (r#"solo_service_state{service="web",state="running"}"#, Some(1.0)),
        (r#"solo_service_memory_limit_bytes{service="hog"}"#, Some(16.0 * 1048576.0)),
        (r#"solo_service_pids{service="web"}"#, Some(1.0)),
        // The CLI offers each binary by its digest first; one the daemon
        // does not have yet takes a second Deploy with the bytes.
        (r#"solo_grpc_request_duration_seconds_count{method="Deploy"}"#, Some(4.0)),
        ("solo_spawn_duration_seconds_count", Some(2.0)),
        ("solo_service_startup_seconds_count", Some(2.0)),
        ("solo_service_cpu_seconds_total{service=\"web\"}", None),
        ("solo_audit_chain_length", None),
        ("process_resident_memory_bytes", None),
    ] {
        let v = value(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        if let Some(w) = want {
            assert_eq!(v, w, "{series}");
        }
    }
    assert!(value(&text, "solo_audit_chain_length").unwrap_or(0.0) >= 5.0);
    assert!(value(&text, r#"solo_grpc_request_duration_seconds_count{method="Status"}"#).unwrap_or(0.0) >= 1.0);
    let mut p = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    p.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = p.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only /metrics, only GET (and HEAD).
    let (status, _) = http(port, "GET", "/").expect("get /");
    assert!(status.contains("404"), "{status}");
    let (status, _) = http(port, "POST", "/metrics").expect("post");
    assert!(status.contains("405"), "{status}");
}

#[test]
fn a_prometheus_server_scrapes_it_and_answers_a_query() {
    if !require_root("a_prometheus_server_scrapes_it_and_answers_a_query") {
        return;
    }
    let Some(prometheus) = tool("a_prometheus_server_scrapes_it_and_answers_a_query", "prometheus") else { return };
    let port = free_port();
    let d = Daemon::start_with(&["--metrics", &format!("127.0.0.1:{port}")]);
    d.ok(&["deploy", "web", "--exec", &exec("sleeper"), "--wait"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: solo\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("config");
    let web = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let query = "/api/v1/query?query=solo_service_state%7Bservice%3D%22web%22%7D";
    let found = wait_for("prometheus to answer about web", Duration::from_secs(90), || {
        let (_, body) = http(web, "GET", query).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let r = v["data"]["result"].as_array()?.first()?.clone();
        (r["value"][1] == "1").then_some(r)
    });
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(found["metric"]["state"], "running", "{found}");
    assert_eq!(found["metric"]["job"], "solo", "{found}");
}

#[test]
fn bad_metrics_addresses_are_refused_naming_the_flag() {
    if !require_root("bad_metrics_addresses_are_refused_naming_the_flag") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = |extra: &[&str]| {
        Command::new(solo_bin())
            .arg("serve")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("run solo serve")
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = busy.local_addr().expect("addr").to_string();
    for (args, want) in [
        (vec!["--metrics".to_owned(), taken.clone()], format!("--metrics: cannot listen on {taken}: Address")),
        (vec!["--metrics".into(), "0.0.0.0:9464".into()], "--metrics: 0.0.0.0:9464 is not a loopback address".into()),
        (vec!["--metrics".into(), "localhost".into()], "invalid value 'localhost' for '--metrics <ADDR>'".into()),
        (vec!["--metrics-allow-remote".into()], "--metrics <ADDR>".into()),
    ] {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = serve(&a);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} started");
        assert!(e.contains(&want), "{args:?}: want '{want}' in:\n{e}");
    }
    // Nothing was started: no socket, no database.
    assert!(!dir.path().join("run/solo.sock").exists());
    assert!(!dir.path().join("state/solo.db").exists());
    // With the explicit flag, a non-loopback address is served.
    let port = free_port();
    let d = Daemon::start_with(&["--metrics", &format!("0.0.0.0:{port}"), "--metrics-allow-remote"]);
    assert!(scrape(port).contains("solo_deployment_count 0"));
    drop(d);
}
