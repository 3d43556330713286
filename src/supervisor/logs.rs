//! Output capture: each instance's stdout/stderr pipes are read into lines,
//! kept in a bounded in-memory ring per service (for `Watch` tails and
//! `solo logs`), appended to a size-rotated file under the state dir, and
//! broadcast on the bus.

use super::events::{now_ms, Bus, LogLine, Stream};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;

/// Longest line kept; longer output is split.
pub const MAX_LINE: usize = 16 << 10;

/// How much of a log file a restarted daemon reads back into the ring.
pub const RESTORE_BYTES: u64 = 16 << 10;

/// One `AT_MS REPLICA STREAM LINE` record of a log file.
fn parse_record(service: &Arc<str>, rec: &str) -> Option<LogLine> {
    let mut it = rec.splitn(4, ' ');
    let at_ms = it.next()?.parse().ok()?;
    let replica = it.next()?.parse().ok()?;
    let stream = match it.next()? {
        "out" => Stream::Stdout,
        "err" => Stream::Stderr,
        "solo" => Stream::Supervisor,
        _ => return None,
    };
    let line = it.next().unwrap_or("").to_owned();
    Some(LogLine { at_ms, service: service.clone(), replica, pid: 0, stream, line })
}

/// Log retention settings.
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    pub ring_lines: usize,
    pub file_max_bytes: u64,
    pub file_keep: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { ring_lines: 1000, file_max_bytes: 10 << 20, file_keep: 3 }
    }
}

struct FileState {
    file: Option<File>,
    size: u64,
}

/// One service's log sink. The file is opened lazily, so a quiet service
/// costs no descriptor.
pub struct LogSink {
    service: Arc<str>,
    dir: PathBuf,
    cfg: LogConfig,
    ring: Mutex<VecDeque<Arc<LogLine>>>,
    file: Mutex<FileState>,
}

impl LogSink {
    pub fn new(service: &str, dir: PathBuf, cfg: LogConfig) -> Self {
        LogSink {
            service: Arc::from(service),
            dir,
            cfg,
            ring: Mutex::new(VecDeque::new()),
            file: Mutex::new(FileState { file: None, size: 0 }),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("current.log")
    }

    /// Fills the ring from the end of the log file (at most
    /// [`RESTORE_BYTES`]): a restarted or re-exec'd daemon shows the
    /// output from before it started, not an empty log. Best effort.
    pub fn restore(&self) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = File::open(self.path()) else { return };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = len.saturating_sub(RESTORE_BYTES);
        let mut text = Vec::new();
        if f.seek(SeekFrom::Start(from)).is_err() || f.take(RESTORE_BYTES).read_to_end(&mut text).is_err() {
            return;
        }
        let text = String::from_utf8_lossy(&text);
        let mut lines: Vec<&str> = text.lines().collect();
        if from > 0 && !lines.is_empty() {
            lines.remove(0); // cut mid-line
        }
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        for l in lines.iter().skip(lines.len().saturating_sub(self.cfg.ring_lines)) {
            if let Some(line) = parse_record(&self.service, l) {
                ring.push_back(Arc::new(line));
            }
        }
        while ring.len() > self.cfg.ring_lines {
            ring.pop_front();
        }
    }

    /// The newest `n` buffered lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<Arc<LogLine>> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().skip(ring.len().saturating_sub(n)).cloned().collect()
    }

    /// A line from the supervisor about `replica` (stream `solo`).
    pub fn note(&self, bus: &Bus, replica: u32, pid: i32, line: String) {
        self.push(bus, replica, pid, Stream::Supervisor, line);
    }

    fn push(&self, bus: &Bus, replica: u32, pid: i32, stream: Stream, line: String) {
        let l = Arc::new(LogLine { at_ms: now_ms(), service: self.service.clone(), replica, pid, stream, line });
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            if ring.len() >= self.cfg.ring_lines {
                ring.pop_front();
            }
            ring.push_back(l.clone());
        }
        if let Err(e) = self.write_file(&l) {
            tracing::warn!(service = %self.service, error = %e, "cannot write log file");
        }
        bus.log(l);
    }

    fn write_file(&self, l: &LogLine) -> std::io::Result<()> {
        let mut st = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if st.file.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let f = OpenOptions::new().create(true).append(true).open(self.path())?;
            st.size = f.metadata()?.len();
            st.file = Some(f);
        }
        let stream = match l.stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
            Stream::Supervisor => "solo",
        };
        let rec = format!("{} {} {} {}\n", l.at_ms, l.replica, stream, l.line);
        if let Some(f) = st.file.as_mut() {
            f.write_all(rec.as_bytes())?;
        }
        st.size += rec.len() as u64;
        if st.size >= self.cfg.file_max_bytes {
            st.file = None;
            st.size = 0;
            self.rotate()?;
        }
        Ok(())
    }

    /// current.log → current.log.1 → … → current.log.<keep> (dropped).
    fn rotate(&self) -> std::io::Result<()> {
        let base = self.path();
        let name = |i: u32| PathBuf::from(format!("{}.{i}", base.display()));
        let _ = std::fs::remove_file(name(self.cfg.file_keep));
        for i in (1..self.cfg.file_keep).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&base, name(1))
    }
}

/// Reads one pipe to EOF, splitting it into lines.
pub async fn pump(sink: Arc<LogSink>, bus: Arc<Bus>, fd: OwnedFd, replica: u32, pid: i32, stream: Stream) {
    let mut rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read instance output");
            return;
        }
    };
    let mut buf = [0u8; 2048];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' || line.len() >= MAX_LINE {
                let text = String::from_utf8_lossy(&line).into_owned();
                sink.push(&bus, replica, pid, stream, text);
                line.clear();
                if b == b'\n' {
                    continue;
                }
            }
            line.push(b);
        }
    }
    if !line.is_empty() {
        sink.push(&bus, replica, pid, stream, String::from_utf8_lossy(&line).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn lines_rotate_by_size_and_the_ring_is_bounded() {
        let d = tempfile::tempdir().expect("tempdir");
        let bus = Bus::new(Arc::new(Store::open(&d.path().join("solo.db")).expect("store")));
        let cfg = LogConfig { ring_lines: 10, file_max_bytes: 1000, file_keep: 2 };
        let sink = LogSink::new("svc", d.path().join("logs/svc"), cfg);
        for i in 0..200 {
            sink.push(&bus, 0, 42, Stream::Stdout, format!("line {i:04} {}", "x".repeat(40)));
        }
        let tail = sink.tail(100);
        assert_eq!(tail.len(), 10, "the ring keeps ring_lines");
        assert_eq!(tail.last().map(|l| l.line.starts_with("line 0199")), Some(true));
        let dir = d.path().join("logs/svc");
        let current = std::fs::metadata(dir.join("current.log")).expect("current").len();
        assert!(current < 1000, "current.log is {current} bytes");
        assert!(dir.join("current.log.1").exists() && dir.join("current.log.2").exists());
        assert!(!dir.join("current.log.3").exists(), "only file_keep rotated files are kept");
        let newest = std::fs::read_to_string(dir.join("current.log.1")).expect("rotated");
        assert!(newest.lines().all(|l| l.contains(" 0 out line ")), "{newest}");
        // A new sink for the same dir (a restarted daemon) shows the end
        // of the file again.
        let again = LogSink::new("svc", d.path().join("logs/svc"), cfg);
        again.restore();
        let tail = again.tail(100);
        assert!(!tail.is_empty() && tail.len() <= 10, "{}", tail.len());
        assert_eq!(tail.last().map(|l| l.line.starts_with("line 0199")), Some(true));
    }
}
