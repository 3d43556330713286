//! `SOLO_TIMING`: where the time of one CLI command goes, for the
//! whole-command benchmark (`cargo bench --bench cli`, docs/benchmarks.md).
//!
//! With `SOLO_TIMING` set, the CLI notes when each phase ends and prints
//! one line to stderr as it exits:
//! `solo-timing: spawn 0.612 parsed 0.301 runtime 0.352 … done 3.100`,
//! milliseconds since `main` began. `spawn` is the time before `main`
//! (exec, the dynamic loader, std's start-up), known only when the value
//! of `SOLO_TIMING` is the caller's clock (`SystemTime`, ns since the Unix
//! epoch) just before it spawned the CLI; otherwise it is left out. A
//! deploy also gives `daemon`, the daemon's own time for it (its
//! `startup_us`), not a point in time, and the line ends with `faults`, the
//! minor page faults the process took. Off, each mark costs one relaxed
//! atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static ON: AtomicBool = AtomicBool::new(false);
static MARKS: Mutex<Marks> = Mutex::new(Marks { start: None, spawn_ms: None, marks: Vec::new() });

struct Marks {
    start: Option<Instant>,
    spawn_ms: Option<f64>,
    marks: Vec<(&'static str, f64)>,
}

/// Called first thing in `main`: reads `SOLO_TIMING`.
pub fn start() {
    let Some(v) = std::env::var_os("SOLO_TIMING") else { return };
    let now = SystemTime::now();
    let spawned =
        v.to_str().and_then(|s| s.parse::<u64>().ok()).map(|ns| UNIX_EPOCH + std::time::Duration::from_nanos(ns));
    let mut m = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    m.start = Some(Instant::now());
    m.spawn_ms = spawned.and_then(|s| now.duration_since(s).ok()).map(|d| d.as_secs_f64() * 1e3);
    ON.store(true, Ordering::Relaxed);
}

/// Notes that phase `what` just ended.
pub fn mark(what: &'static str) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let mut m = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(start) = m.start {
        let at = start.elapsed().as_secs_f64() * 1e3;
        m.marks.push((what, at));
    }
}

/// Notes a figure the daemon reported (ms), e.g. its own part of a deploy
/// (`startup_us`), so the reply's time splits into daemon and transport.
pub fn note(what: &'static str, ms: f64) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    MARKS.lock().unwrap_or_else(|p| p.into_inner()).marks.push((what, ms));
}

/// Prints the line (when on); called last in `main`.
pub fn report() {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    mark("done");
    let m = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    let mut line = String::from("solo-timing:");
    if let Some(s) = m.spawn_ms {
        line.push_str(&format!(" spawn {s:.3}"));
    }
    for (what, at) in &m.marks {
        line.push_str(&format!(" {what} {at:.3}"));
    }
    if let Some(n) = minor_faults() {
        line.push_str(&format!(" faults {n}"));
    }
    eprintln!("{line}");
}

/// The process's minor page faults so far (`/proc/self/stat` field 10):
/// most of a fresh process's start-up cost is faulting in what it touches.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After "(comm)": state is field 3, minflt field 10.
    stat.rsplit_once(')')?.1.split_whitespace().nth(7)?.parse().ok()
}
