//! The operator's live view in a real browser: headless Chromium (Debian's
//! `chromium`, driven through `chromedriver` over WebDriver) logs in to
//! `solo serve --ui` with the operator token; a service deployed through
//! the CLI appears in the page within a second (the page follows the API's
//! `Watch` stream); its detail shows graphs, grants and the profile's
//! audit; a screenshot is kept in `target/test-artifacts/`. Then the
//! guards, over plain HTTP: no page without a login, a bad token refused,
//! a read-only token's action refused by the daemon, CSRF, Origin and
//! Host checks, and `solo ui`'s one-time login link.
//!
//! Needs root (the daemon) and `chromium` + `chromium-driver` (installed by
//! scripts/setup); without them it prints `SKIPPED ui: <reason>`, or fails
//! with `CI=true`.

mod common;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TEST: &str = "ui";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One HTTP/1.1 request to 127.0.0.1:`port` (Connection: close); returns
/// (status, head, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send");
    // Read the head, then Content-Length bytes (chromedriver keeps the
    // connection open whatever the request says).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break raw.len(),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end.min(raw.len())]).into_owned();
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse::<usize>().ok());
    match len {
        Some(n) => {
            while raw.len() < head_end + n {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => raw.extend_from_slice(&buf[..k]),
                }
            }
        }
        None => {
            let _ = s.read_to_end(&mut raw);
        }
    }
    let body = String::from_utf8_lossy(&raw[head_end.min(raw.len())..]).into_owned();
    let head = head.trim_end().to_owned();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head, body)
}

fn form(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Logs in over plain HTTP; returns the cookie header value.
fn login(port: u16, token: &str) -> String {
    let (code, head, body) = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={}", form(token)),
    );
    assert_eq!(code, 303, "login failed: {head}\n{body}");
    cookie_of(&head)
}

fn cookie_of(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

fn csrf_of(page: &str) -> String {
    page.split("<meta name=\"csrf\" content=\"").nth(1).and_then(|r| r.split('"').next()).expect("csrf").to_owned()
}

/// A minimal WebDriver client for chromedriver.
struct Driver {
    port: u16,
    session: String,
    child: Child,
}

impl Driver {
    fn start(profile_dir: &Path) -> Driver {
        let port = common::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        common::wait_for("chromedriver to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let mut d = Driver { port, session: String::new(), child };
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1440,900",
                     format!("--user-data-dir={}", profile_dir.display())],
        } } } });
        let r = d.call("POST", "/session", &caps);
        d.session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {r}")).to_owned();
        d
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "GET" || method == "DELETE" { String::new() } else { body.to_string() };
        let (_, _, out) = http(self.port, method, path, &[("Content-Type", "application/json")], &body);
        serde_json::from_str(&out).unwrap_or_else(|_| panic!("webdriver {path}: {out}"))
    }

    fn cmd(&self, method: &str, what: &str, body: Value) -> Value {
        let v = self.call(method, &format!("/session/{}{what}", self.session), &body)["value"].clone();
        if let Some(e) = v.get("error") {
            panic!("webdriver {what}: {e}: {}", v["message"]);
        }
        v
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd("POST", "/element", json!({ "using": "css selector", "value": css }));
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_owned()
    }

    fn js(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    /// Polls `script` (returning a truthy value when done) every 20 ms.
    fn wait_js(&self, what: &str, timeout: Duration, script: &str) -> Duration {
        let start = Instant::now();
        loop {
            let v = self.js(script);
            if v.as_bool() == Some(true) || (v.is_string() && v != json!("")) {
                return start.elapsed();
            }
            assert!(start.elapsed() < timeout, "timed out ({timeout:?}) waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn screenshot(&self, to: &Path) {
        use base64::Engine;
        let b64 = self.cmd("GET", "/screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or("")).expect("png");
        std::fs::write(to, png).expect("write the screenshot");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), &json!({}));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn browser_or_skip() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} missing: apt-get install chromium chromium-driver (scripts/setup does)", missing.join(", "));
    if common::in_ci() {
        panic!("{TEST}: {why}, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {TEST}: {why}");
    false
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

#[test]
fn the_live_view_shows_a_new_service_within_a_second_in_a_real_browser() {
    if !common::require_root(TEST) || !browser_or_skip() {
        return;
    }
    let port = common::free_port();
    let daemon = common::Daemon::start_with(&["--ui", &format!("127.0.0.1:{port}")]);
    let sleeper = common::program("sleeper");
    let sleeper = sleeper.to_str().expect("utf-8 path");
    let web_port = common::free_port();
    let httpd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services/httpd.py");
    daemon.ok(&[
        "deploy",
        "web",
        "--script",
        httpd.to_str().expect("utf-8"),
        "--interpreter",
        "python3",
        "--profile",
        "web-server",
        "--grant",
        &format!("http=listen:tcp:127.0.0.1:{web_port}"),
        "--ready",
        "tcp:http",
        "--replicas",
        "2",
        "--wait",
    ]);
    daemon.ok(&["deploy", "db", "--exec", sleeper, "--tier", "system", "--wait"]);

    let profile = tempfile::tempdir().expect("browser profile dir");
    let d = Driver::start(profile.path());
    d.goto(&format!("http://127.0.0.1:{port}/"));
    let token = daemon.operator_token();
    let field = d.element("#token");
    d.cmd("POST", &format!("/element/{field}/value"), json!({ "text": token }));
    let button = d.element("#login");
    d.cmd("POST", &format!("/element/{button}/click"), json!({}));
    d.wait_js("the page to load", Duration::from_secs(10), "return !!document.getElementById('tree')");
    d.wait_js("the event stream", Duration::from_secs(10), "return document.getElementById('live').className === 'on'");
    let tree = d.js("return document.getElementById('tree').innerText").as_str().unwrap_or("").to_lowercase();
    assert!(tree.contains("web") && tree.contains("db") && tree.contains("web.1"), "tree: {tree}");
    assert!(tree.contains("system") && tree.contains("user"), "tiers: {tree}");

    // Deploy through the CLI; the page learns it from Watch, not a poll.
    daemon.ok(&["deploy", "ui-probe", "--exec", sleeper]);
    let took = d.wait_js(
        "ui-probe to appear in the page",
        Duration::from_secs(1),
        "return !!document.querySelector('tbody.svc[data-service=\"ui-probe\"]')",
    );
    println!("ui-probe appeared in the page {} ms after `solo deploy` returned", took.as_millis());
    d.wait_js(
        "the deployed event",
        Duration::from_secs(2),
        "return document.getElementById('events').innerText.includes('ui-probe')",
    );

    // A crash loop, for the event stream (and the screenshot).
    let crashy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/crashy.sh");
    daemon.ok(&["deploy", "crashy", "--script", crashy.to_str().expect("utf-8"), "--interpreter", "sh"]);
    // The detail of a service: grants, graphs, the profile's audit.
    for _ in 0..10 {
        let _ = common::http_get(web_port); // some CPU for the graph
        std::thread::sleep(Duration::from_millis(500)); // usage samples for the graphs
    }
    d.js("document.querySelector('tbody.svc[data-service=\"web\"]').click(); return true");
    d.wait_js(
        "web's detail",
        Duration::from_secs(5),
        "return (document.getElementById('detail-id') || {}).textContent || ''",
    );
    d.wait_js("web's audit", Duration::from_secs(5), "return !!document.getElementById('audit')");
    let detail = d.js("return document.getElementById('detail-pane').innerText").as_str().unwrap_or("").to_owned();
    assert!(detail.contains(&format!("listen:tcp:127.0.0.1:{web_port}")), "grants: {detail}");
    assert!(detail.contains("exposure"), "audit: {detail}");
    assert!(detail.contains("CPU, last") && detail.contains("memory"), "graphs: {detail}");
    let points = d.js("return document.querySelector('#detail svg.mem polyline').getAttribute('points')");
    assert!(points.as_str().unwrap_or("").split(' ').count() >= 2, "memory graph: {points}");
    let shot = artifacts().join("ui-live-view.png");
    d.screenshot(&shot);
    println!("screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 10_000, "screenshot too small");

    // Stop from the page (the operator token allows it).
    d.js("window.confirm = () => true; document.querySelector('button.act[data-act=\"kill\"]').click(); return true");
    common::wait_for("web to stop", Duration::from_secs(30), || {
        (daemon.status("web")["service"]["state"] == "SERVICE_STATE_STOPPED").then_some(())
    });
}

#[test]
fn the_live_view_needs_a_login_and_does_only_what_the_token_allows() {
    if !common::require_root(TEST) {
        return;
    }
    let port = common::free_port();
    let daemon = common::Daemon::start_with(&["--ui", &format!("127.0.0.1:{port}")]);
    daemon.ok(&["deploy", "svc", "--exec", common::program("sleeper").to_str().expect("utf-8"), "--wait"]);

    // Nothing without a login.
    let (code, _, body) = http(port, "GET", "/", &[], "");
    assert_eq!(code, 200);
    assert!(body.contains("Log in with a Solo token") && !body.contains("svc"), "{body}");
    for path in ["/tree", "/service/svc", "/service/svc/profile", "/events"] {
        assert_eq!(http(port, "GET", path, &[], "").0, 401, "{path}");
    }
    let (code, _, _) = http(port, "POST", "/action/kill", &[("Content-Type", "application/json")], "{\"id\":\"svc\"}");
    assert_eq!(code, 401);
    // A bad token is refused with the daemon's reason.
    let (code, _, body) =
        http(port, "POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], "token=solo1.bogus");
    assert_eq!(code, 401);
    assert!(body.contains("login-error"), "{body}");
    // Another site's name for 127.0.0.1 (DNS rebinding) gets nothing.
    assert_eq!(http(port, "GET", "/", &[("Host", &format!("evil.example:{port}"))], "").0, 421);

    // A read-only token sees the service but cannot stop it.
    let ro = daemon.ok(&["token", "issue", "--subject", "viewer", "--perm", "status,watch", "--ttl", "1h"]);
    let cookie = login(port, ro.trim());
    let (_, _, page) = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert!(page.contains("read-only") && page.contains("data-service=\"svc\""), "{page}");
    let (_, _, detail) = http(port, "GET", "/service/svc", &[("Cookie", &cookie)], "");
    assert!(!detail.contains("data-act=\"kill\""), "no stop button for a read-only token: {detail}");
    let csrf = csrf_of(&page);
    let kill = |extra: &[(&str, &str)]| {
        let mut h = vec![("Cookie", cookie.as_str()), ("Content-Type", "application/json")];
        h.extend_from_slice(extra);
        http(port, "POST", "/action/kill", &h, "{\"id\":\"svc\"}")
    };
    let (code, _, body) = kill(&[("X-Solo-Csrf", &csrf)]);
    assert_eq!(code, 200);
    assert!(body.contains("\"ok\":false") && body.contains("permission denied"), "{body}");
    assert_eq!(kill(&[("X-Solo-Csrf", "0000")]).0, 403, "a wrong CSRF token is refused");
    assert_eq!(kill(&[]).0, 403, "a missing CSRF token is refused");
    let origin = format!("http://evil.example:{port}");
    assert_eq!(kill(&[("X-Solo-Csrf", &csrf), ("Origin", &origin)]).0, 403, "cross-origin is refused");
    assert_eq!(daemon.status("svc")["service"]["state"], "SERVICE_STATE_RUNNING");

    // The operator token may: the daemon stops it.
    let cookie = login(port, &daemon.operator_token());
    let (_, _, page) = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    let csrf = csrf_of(&page);
    let (_, _, body) = http(
        port,
        "POST",
        "/action/kill",
        &[("Cookie", &cookie), ("Content-Type", "application/json"), ("X-Solo-Csrf", &csrf)],
        "{\"id\":\"svc\"}",
    );
    assert!(body.contains("\"ok\":true") && body.contains("stopped svc"), "{body}");
    // A re-exec of the daemon serves the view again (sessions end with the
    // old image: they live in its memory).
    daemon.ok(&["daemon", "reexec"]);
    common::wait_for("the view after the re-exec", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    assert_eq!(http(port, "GET", "/tree", &[("Cookie", &cookie)], "").0, 401, "the old session is gone");
    let cookie = login(port, &daemon.operator_token());
    let (_, _, page) = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert!(page.contains("(re-exec'd)") && page.contains("data-service=\"svc\""), "{page}");
    let csrf = csrf_of(&page);
    // Logging out ends the session.
    let form_body = format!("csrf={csrf}");
    http(
        port,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("Content-Type", "application/x-www-form-urlencoded")],
        &form_body,
    );
    assert_eq!(http(port, "GET", "/tree", &[("Cookie", &cookie)], "").0, 401);
}

#[test]
fn solo_ui_prints_a_one_time_login_link_and_refuses_non_loopback() {
    if !common::require_root(TEST) {
        return;
    }
    let daemon = common::Daemon::start();
    let port = common::free_port();
    let mut ui = Command::new(common::solo_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
        .env("SOLO_STATE_DIR", &daemon.state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start solo ui");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = ui.stdout.take().expect("stdout");
        std::io::BufReader::new(out).read_line(&mut line).expect("read the link");
    }
    let path = line.trim().split_once(&format!("127.0.0.1:{port}")).map(|(_, p)| p.to_owned()).expect("a link");
    assert!(path.starts_with("/login?code="), "{line}");
    let (code, head, _) = http(port, "GET", &path, &[], "");
    assert_eq!(code, 303, "{head}");
    let cookie = cookie_of(&head);
    assert_eq!(http(port, "GET", "/tree", &[("Cookie", &cookie)], "").0, 200);
    assert_eq!(http(port, "GET", &path, &[], "").0, 401, "the link works once");
    let _ = ui.kill();
    let _ = ui.wait();

    let o = Command::new(common::solo_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["ui", "--listen", "0.0.0.0:0"])
        .env("SOLO_STATE_DIR", &daemon.state)
        .stdin(Stdio::null())
        .output()
        .expect("run solo ui");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("not a loopback address"), "{err}");
}
