//! What the benchmarks read from /proc to say how quiet a run was.

/// utime + stime + cutime + cstime of a process (its reaped children
/// included), in clock ticks. `pid` may be "self".
pub fn cpu_ticks_all(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // After the comm: state is field 3, utime 14 … cstime 17 (1-based).
    (14..=17).map(|i| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)).sum()
}

/// Busy (non-idle, non-iowait) ticks of the whole machine, all ticks, and
/// steal (time the hypervisor ran something else on our vCPUs).
pub fn machine_ticks() -> (u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).take(8).map(|x| x.parse().unwrap_or(0)).collect();
    let all: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (all - idle, all, v.get(7).copied().unwrap_or(0))
}

/// CPU ticks of this benchmark, its daemon and launcher, and everything
/// they reaped.
pub fn our_ticks(daemon: i32, launcher: Option<i32>) -> u64 {
    cpu_ticks_all("self")
        + cpu_ticks_all(&daemon.to_string())
        + launcher.map(|l| cpu_ticks_all(&l.to_string())).unwrap_or(0)
}

/// The daemon's child running `solo __launcher` (the services' parent).
pub fn launcher_pid(daemon: i32) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
        if ppid != Some(daemon) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.split(|b| *b == 0).any(|a| a == b"__launcher") {
            return Some(pid);
        }
    }
    None
}
