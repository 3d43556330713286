//! A `solo serve` started by a benchmark, with its own temp dirs, and a
//! client presenting its operator token. Shared by the bench targets
//! (`#[path]`-included: `benches/common/` is not a target of its own).

use anyhow::{bail, ensure, Context};
use solo::proto::v1 as pb;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `solo` binary the benchmarks run (daemon and CLI): cargo's build,
/// or `$SOLO_BENCH_BIN` to put another build through the same measures
/// (e.g. the commit before a change).
pub fn solo_bin() -> PathBuf {
    std::env::var_os("SOLO_BENCH_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_solo")), PathBuf::from)
}

pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `solo serve` in a temp dir named `prefix…`, giving services
    /// the uids of `uid_range` (FIRST-LAST).
    pub fn start(prefix: &str, uid_range: &str) -> anyhow::Result<Daemon> {
        Self::start_with(prefix, uid_range, &[])
    }

    /// [`Daemon::start`] with more `solo serve` flags. `SOLO_BENCH_BIN`
    /// runs another solo binary (e.g. an older build, as a peer).
    pub fn start_with(prefix: &str, uid_range: &str, extra: &[&str]) -> anyhow::Result<Daemon> {
        Self::start_exe(solo_bin().as_os_str(), prefix, uid_range, extra)
    }

    /// [`Daemon::start_with`] running the solo binary `bin`.
    pub fn start_exe(bin: &std::ffi::OsStr, prefix: &str, uid_range: &str, extra: &[&str]) -> anyhow::Result<Daemon> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let socket = dir.path().join("run/solo.sock");
        let log = std::fs::File::create(dir.path().join("daemon.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--runtime-dir")
            .arg(dir.path().join("run"))
            .args(["--uid-range", uid_range])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start solo serve")?;
        Ok(Daemon { child: Some(child), dir, socket })
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// The last 30 lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits for the daemon to answer, then returns a client presenting
    /// the operator token it wrote on start.
    pub async fn connect(&mut self) -> anyhow::Result<solo::cli::Client> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.socket.exists() {
                let token = std::fs::read_to_string(self.dir.path().join("state/operator.token")).ok();
                if let Ok(mut c) = solo::cli::connect(&self.socket, token.as_deref().map(str::trim)).await {
                    if c.list(pb::ListRequest::default()).await.is_ok() {
                        return Ok(c);
                    }
                }
            }
            if let Some(st) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("solo serve exited early ({st}):\n{}", self.log_tail());
            }
            ensure!(Instant::now() < deadline, "solo serve did not come up:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the daemon to exit by itself (after Shutdown). Async, so
    /// this runtime keeps answering the server's HTTP/2 GOAWAY/PING while
    /// it drains connections (a blocked client would hold it up).
    pub async fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(c) = self.child.as_mut() {
            if c.try_wait().ok().flatten().is_some() {
                self.child = None;
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// SIGTERM (graceful: services stopped, cgroups removed), then SIGKILL.
    pub async fn stop(&mut self) {
        if self.child.is_some() {
            let _ = solo::sandbox::sys::kill(self.pid(), libc::SIGTERM);
            if !self.wait_exit(Duration::from_secs(60)).await {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

impl Drop for Daemon {
    /// Last resort (a panic): `stop` is the normal path.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
