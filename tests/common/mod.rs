//! Shared integration-test harness: starts the real `solo serve` binary with
//! temporary directories, drives it through the real CLI and a real gRPC
//! client, and builds the small C test programs in `tests/programs/`.
//!
//! Tests that need root call [`require_root`]: outside CI they skip with a
//! printed reason; with `CI=true` a missing prerequisite fails the test.
#![allow(dead_code)]

pub mod load;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `solo` binary cargo built for these tests, or `$SOLO_TEST_BIN` when
/// set (the qemu harness in `integration/` runs these tests elsewhere).
pub fn solo_bin() -> PathBuf {
    std::env::var_os("SOLO_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_solo")), PathBuf::from)
}

/// The `solo` binary the load tests (chaos, soak) run as the daemon:
/// `$SOLO_FAST_BIN` when set (scripts/test sets it to the release build, so
/// the figures are a release daemon's), else [`solo_bin`].
pub fn fast_bin() -> PathBuf {
    std::env::var_os("SOLO_FAST_BIN").map_or_else(solo_bin, PathBuf::from)
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when the test may run. Not root: skip with a reason, or panic in CI.
#[must_use]
pub fn require_root(test: &str) -> bool {
    // The effective uid, from /proc/self/status.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false);
    if root {
        return true;
    }
    if in_ci() {
        panic!("{test}: needs root (cgroups, uid switching) and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (run the suite as root, or with CI=true to make this a failure)");
    false
}

/// Directory with the compiled test programs (built once per test binary),
/// or `$SOLO_TEST_PROGRAMS` as it is when set: prebuilt programs, no gcc.
pub fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SOLO_TEST_PROGRAMS") {
            return PathBuf::from(dir);
        }
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-programs");
        std::fs::create_dir_all(&out).expect("create program dir");
        for entry in std::fs::read_dir(&src).expect("tests/programs") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("c") {
                continue;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).expect("name").to_owned();
            let dest = out.join(&name);
            let fresh =
                dest.metadata().and_then(|d| d.modified()).ok() >= path.metadata().and_then(|s| s.modified()).ok();
            if dest.exists() && fresh {
                continue;
            }
            let tmp = out.join(format!(".{name}.{}", std::process::id()));
            let mut cmd = Command::new("gcc");
            cmd.args(["-O2", "-static", "-o"]).arg(&tmp).arg(&path);
            cmd.args(extra_cflags(&path));
            let st = cmd.status().expect("gcc must be installed to build the test programs");
            assert!(st.success(), "gcc failed for {}", path.display());
            std::fs::rename(&tmp, &dest).expect("rename program");
        }
        out
    })
}

/// Extra gcc flags a program's source asks for in a line `cflags: ...`
/// (e.g. `-nostdlib` for the libc-free ones). `integration/qemu/run`
/// reads the same line, so the two builders cannot drift apart.
fn extra_cflags(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read program source");
    text.lines()
        .find_map(|l| l.split_once("cflags:").map(|(_, f)| f.trim().trim_end_matches("*/").to_owned()))
        .map(|f| f.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

pub fn program(name: &str) -> PathBuf {
    programs().join(name)
}

/// The kernel features the sandbox's expectations depend on, detected at
/// test time the way the launcher detects them. The tests run on this
/// host's kernel and on Debian's 6.1 in `integration/qemu` (Landlock ABI 2,
/// no `vm.memfd_noexec`); what such a kernel answers differs, so an
/// expectation that depends on a feature is derived from these.
#[derive(Debug, Clone, Copy)]
pub struct Kernel {
    /// The Landlock ABI (0: no Landlock).
    pub landlock_abi: i32,
    /// `vm.memfd_noexec` exists (Linux 6.3+).
    pub memfd_noexec: bool,
}

impl Kernel {
    pub fn detect() -> Kernel {
        Kernel {
            landlock_abi: solo::sandbox::landlock::kernel_abi(),
            memfd_noexec: solo::sandbox::mounts::kernel_has_memfd_noexec(),
        }
    }

    /// Landlock ABI 6+: abstract unix sockets and signals scoped to the domain.
    pub fn landlock_scoping(&self) -> bool {
        self.landlock_abi >= 6
    }

    /// How the launch of a built-in `profile` fails on this kernel, as the
    /// deploy error and `lastExit.reason` name it (`step mounts: EOPNOTSUPP`),
    /// or `None` when it starts. Only `on_missing = "refuse"` profiles are
    /// refused: first for a missing `vm.memfd_noexec` (when the profile has
    /// its own pid namespace, where the knob would be set), then for a
    /// Landlock ABI below the profile's `min_abi` (`src/sandbox/steps.rs`).
    pub fn refusal(&self, profile: &str) -> Option<&'static str> {
        let set = solo::profiles::ProfileSet::builtin().expect("built-in profiles");
        let p = set.get(profile).unwrap_or_else(|| panic!("no built-in profile {profile}"));
        if p.on_missing != solo::profiles::OnMissing::Refuse {
            return None;
        }
        if p.namespaces.pid && !self.memfd_noexec {
            return Some("step mounts: EOPNOTSUPP");
        }
        if self.landlock_abi < p.landlock_min_abi as i32 {
            return Some("step landlock: EOPNOTSUPP");
        }
        None
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running `solo serve` with its own state, runtime dir and uid range.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub uid_first: u32,
    /// How many uids (so services) the daemon may give out.
    pub uid_count: u32,
    /// The binary run as `solo serve`.
    bin: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// A program that starts the daemon (it execs its arguments), standing
    /// for whoever started it: `holdfds` leaves descriptors open.
    wrapper: Option<PathBuf>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Daemon {
        Self::start_under(None, extra)
    }

    /// Starts the daemon through `wrapper` (a program that execs its
    /// arguments, so the daemon keeps its pid), with `extra` flags.
    pub fn start_under(wrapper: Option<&Path>, extra: &[&str]) -> Daemon {
        Self::start_full(wrapper, 50, extra)
    }

    /// A daemon with room for `uids` services (at most 2,000), in a uid
    /// range of its own apart from the 50-uid ranges of the others, run
    /// from [`fast_bin`] (it is for load tests).
    pub fn start_sized(uids: u32, extra: &[&str]) -> Daemon {
        assert!(uids <= 2000, "at most 2000 uids per test daemon");
        Self::start_full(None, uids, extra)
    }

    fn start_full(wrapper: Option<&Path>, uids: u32, extra: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new().prefix("solo-test-").tempdir().expect("tempdir");
        // Services (other uids) must be able to reach artifacts under it.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).expect("chmod");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Distinct uid ranges per daemon, so parallel tests never share a uid.
        let uid_first = if uids <= 50 {
            200_000 + (std::process::id() % 1000) * 1000 + n * 50
        } else {
            3_000_000 + (std::process::id() % 500) * 20_000 + (n % 10) * 2_000
        };
        let mut d = Daemon {
            socket: dir.path().join("run/solo.sock"),
            state: dir.path().join("state"),
            dir,
            uid_first,
            uid_count: uids,
            bin: if uids > 50 { fast_bin() } else { solo_bin() },
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            wrapper: wrapper.map(Path::to_path_buf),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let mut cmd = match &self.wrapper {
            Some(w) => {
                let mut c = Command::new(w);
                c.arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = cmd
            .arg("serve")
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--runtime-dir")
            .arg(self.dir.path().join("run"))
            .arg("--uid-range")
            .arg(format!("{}-{}", self.uid_first, self.uid_first + self.uid_count - 1))
            .arg("--log")
            .arg("solo=debug")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start solo serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket.exists() && self.cli(&["ls"]).status.success() {
                return;
            }
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("solo serve exited early ({st}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "solo serve did not come up:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The launcher's pid, while it runs (it outlives a crashed daemon).
    pub fn launcher_pid(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.dir.path().join("run/launcher.pid")).ok()?;
        let pid: i64 = text.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// The operator token the daemon wrote on its first start.
    pub fn token_file(&self) -> PathBuf {
        self.state.join("operator.token")
    }

    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.token_file()).expect("read the operator token").trim().to_owned()
    }

    /// Runs the real CLI against this daemon, as the operator (the CLI
    /// finds the token through SOLO_STATE_DIR, as an operator's shell would).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(solo_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env("SOLO_STATE_DIR", &self.state)
            .env_remove("SOLO_TOKEN")
            .env_remove("SOLO_TOKEN_FILE")
            .stdin(Stdio::null())
            .output()
            .expect("run solo CLI")
    }

    /// Runs the CLI presenting `token` (through SOLO_TOKEN, as an agent would).
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(solo_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env("SOLO_TOKEN", token)
            .env_remove("SOLO_TOKEN_FILE")
            .env_remove("SOLO_STATE_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run solo CLI")
    }

    /// Runs the CLI and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "solo {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs the CLI and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(!o.status.success(), "solo {args:?} unexpectedly succeeded: {}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `solo status ID --json`, parsed.
    pub fn status(&self, id: &str) -> serde_json::Value {
        let out = self.ok(&["--json", "status", id]);
        serde_json::from_str(&out).expect("status json")
    }

    /// A real gRPC client on the unix socket.
    pub async fn client(&self) -> solo::cli::Client {
        solo::cli::connect(&self.socket, Some(&self.operator_token())).await.expect("connect")
    }

    /// A real gRPC client presenting `token` (None: no header at all).
    pub async fn client_as(&self, token: Option<&str>) -> solo::cli::Client {
        solo::cli::connect(&self.socket, token).await.expect("connect")
    }

    /// SIGTERM and wait (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // kill(1) by the pid of the child this harness started.
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            wait_or_kill(&mut c, Duration::from_secs(40));
        }
    }

    /// SIGKILL the daemon (a crash), leaving its services behind.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same state.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts again after a crash.
    pub fn respawn(&mut self) {
        self.spawn();
    }

    /// Waits for the daemon process to exit by itself (after Shutdown).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if let Some(c) = self.child.as_mut() {
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            return false;
        }
        true
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A test that crashed the daemon and did not start it again left
        // the launcher running with the services: a daemon started now
        // re-adopts them, and its graceful stop ends them all.
        if self.child.is_none() && self.launcher_pid().is_some() && !std::thread::panicking() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.spawn()));
        }
        self.stop();
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: i64) -> bool {
    let mut s = String::new();
    match std::fs::File::open(format!("/proc/{pid}/stat")) {
        Ok(mut f) => {
            let _ = f.read_to_string(&mut s);
            // Field 3 is the state; Z = zombie, X = dead.
            let state = s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).unwrap_or("X");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// First instance of a status JSON.
pub fn instance0(status: &serde_json::Value) -> serde_json::Value {
    status["service"]["instances"][0].clone()
}

pub fn pid0(status: &serde_json::Value) -> i64 {
    instance0(status)["pid"].as_i64().unwrap_or(0)
}

/// Cgroup directories of an instance (from Status), one per hierarchy.
pub fn cgroup_paths(inst: &serde_json::Value) -> Vec<PathBuf> {
    inst["cgroup"].as_str().unwrap_or("").split(';').filter(|s| !s.is_empty()).map(PathBuf::from).collect()
}

/// Sends `sig` to `pid` with kill(1) (a process this test started).
pub fn kill(pid: i64, sig: i32) {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Waits for `child` (one this test started) to exit; after `timeout` kills
/// it and returns `None`, so a failing test leaves nothing behind.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("wait for a child") {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a setup command; Err carries its output when it fails.
fn run_setup(what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The tests' Python environment: a venv at `target/py-venv`, created once
/// with `$PYTHON` (default `python3`) and reused, with the pinned
/// `tests/python/requirements.txt` installed into it whenever that file
/// changes. Returns the venv's python. Err names why it cannot be made (no
/// python3, no PyPI); callers skip with that reason, or fail under CI.
pub fn python_env() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/py-venv");
    let python = venv.join("bin/python");
    let requirements = root.join("tests/python/requirements.txt");
    let wanted =
        std::fs::read_to_string(&requirements).map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;

    // Tests in one binary run on threads (cargo runs the binaries one after
    // another): two pips installing into one venv read each other's
    // half-written packages (CI once failed so). One lock covers creating
    // the venv and installing into it.
    static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SETUP.lock().unwrap_or_else(std::sync::PoisonError::into_inner);

    if !python.exists() {
        let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        run_setup("creating the venv", Command::new(&base).arg("-m").arg("venv").arg(&venv))?;
    }
    // The requirements last installed successfully; pip runs only when they change.
    let stamp = venv.join(".solo-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run_setup(
            "pip install -r tests/python/requirements.txt",
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements),
        )?;
        std::fs::write(&stamp, &wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    }
    Ok(python)
}

/// A TCP port free on 127.0.0.1 right now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One HTTP/1.0 GET of `/` on 127.0.0.1:`port`; the whole response.
pub fn http_get(port: u16) -> std::io::Result<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
