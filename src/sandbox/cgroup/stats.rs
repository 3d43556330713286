//! What the resource monitor reads from an instance's cgroup, once per
//! sample: usage, the CPU controller's throttling counters, and whether
//! the memory limit is being hit (v2 `memory.events` `high`, v1
//! `memory.oom_control` `under_oom`).

use super::{stat_field, Controller, InstanceCgroup};
use std::fs;

/// One sample of an instance's cgroup (missing files read as 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory_bytes: u64,
    pub cpu_usage_usec: u64,
    pub pids: u64,
    /// CFS periods with runnable tasks, and those throttled by the quota
    /// (`cpu.stat` of the cpu controller, v2 or v1).
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// v2: times the cgroup went over `memory.high` (`memory.events`).
    pub memory_high_events: u64,
    /// v1: the cgroup's tasks wait at `memory.limit_in_bytes`
    /// (`oom_kill_disable` is set and `under_oom` is 1).
    pub under_oom: bool,
}

impl InstanceCgroup {
    /// Reads a sample (4–6 small files).
    pub fn pressure(&self) -> Pressure {
        let u = self.usage();
        let cpu_stat = if self.cpu_v2 {
            self.v2.as_ref().and_then(|d| fs::read_to_string(d.join("cpu.stat")).ok())
        } else {
            self.v1_dir(Controller::Cpu).and_then(|d| fs::read_to_string(d.join("cpu.stat")).ok())
        }
        .unwrap_or_default();
        let (high, under_oom) = if self.memory_v2 {
            let ev = self.v2.as_ref().and_then(|d| fs::read_to_string(d.join("memory.events")).ok());
            (ev.and_then(|s| stat_field(&s, "high")).unwrap_or(0), false)
        } else {
            let oc =
                self.v1_dir(Controller::Memory).and_then(|d| fs::read_to_string(d.join("memory.oom_control")).ok());
            (0, oc.and_then(|s| stat_field(&s, "under_oom")).unwrap_or(0) == 1)
        };
        Pressure {
            memory_bytes: u.memory_bytes,
            cpu_usage_usec: u.cpu_usage_usec,
            pids: u.pids,
            nr_periods: stat_field(&cpu_stat, "nr_periods").unwrap_or(0),
            nr_throttled: stat_field(&cpu_stat, "nr_throttled").unwrap_or(0),
            memory_high_events: high,
            under_oom,
        }
    }

    /// Whether memory is served by the v2 tree (memory.high exists there).
    pub fn memory_is_v2(&self) -> bool {
        self.memory_v2
    }
}
