//! The resource monitor: once a second it samples the instances whose
//! limits need watching (a CPU limit, or memory under `throttle` or
//! `warn`), and every five seconds, when metrics are served, every running
//! instance's usage (the cache `List` and `/metrics` read). It acts on
//! each service's `limit_exceeded_action` (docs/api.md):
//!
//! - memory `kill`: nothing to do here; the kernel OOM-kills at the limit
//!   and the exit says so (`oom`);
//! - memory `throttle`: the kernel holds it (v2 `memory.high`, v1 tasks
//!   waiting at the limit); reaching it is reported once per episode;
//! - memory `warn`: usage above `memory_bytes` is reported;
//! - CPU `kill`: throttled by its quota through a whole window: killed
//!   (exit cause `cpu-limit`), and the restart policy decides;
//! - CPU `throttle`: held at the quota by the kernel; reported;
//! - CPU `warn`: no quota; usage above the limit over a window is reported.
//!
//! A report is a `LIMIT_EXCEEDED` event, an audit record (`limit`) and a
//! count (`solo_limit_hits_total`), once per episode: the next one needs
//! the service to have been under its limit for a whole window first.
//!
//! Invariant: the decisions are the pure function [`judge`]; cgroup files
//! are read on the blocking pool, never on an async worker.

use super::events::{Event, EventKind};
use super::Supervisor;
use crate::audit::{Kind, Record};
use crate::sandbox::cgroup::{InstanceCgroup, Pressure, Usage};
use crate::spec::{LimitAction, Limits};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples per CPU window (one a second).
pub const WINDOW: usize = 5;
/// A window is "at the CPU limit" when at least this share of its CFS
/// periods were throttled.
pub const THROTTLED_SHARE: f64 = 0.5;
/// Usage of every running instance is sampled every this many ticks (when
/// metrics are served).
const USAGE_EVERY: u64 = 5;

/// What the monitor concluded about one resource in one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub resource: &'static str,
    pub action: LimitAction,
    /// Over the limit now (an episode starts on the first over).
    pub over: bool,
    /// The figures, for the event and the record.
    pub detail: String,
}

/// One instance's recent samples and open episodes.
#[derive(Default)]
pub struct Watch {
    pid: i32,
    samples: VecDeque<(Instant, Pressure)>,
    /// Episode open, and samples under the limit since (closes at WINDOW).
    memory: (bool, usize),
    cpu: (bool, usize),
}

/// Decides, from the samples (oldest first, the newest last), whether the
/// instance is over its memory and CPU limits.
pub fn judge(l: &Limits, samples: &VecDeque<(Instant, Pressure)>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let Some((now_t, now)) = samples.back() else { return out };
    let prev = samples.len().checked_sub(2).and_then(|i| samples.get(i)).map(|s| s.1);
    match l.limit_exceeded_action.memory() {
        LimitAction::Warn => out.push(Verdict {
            resource: "memory",
            action: LimitAction::Warn,
            over: now.memory_bytes > l.memory_bytes,
            detail: format!("memory {} bytes above its limit of {}", now.memory_bytes, l.memory_bytes),
        }),
        LimitAction::Throttle => {
            let high = prev.is_some_and(|p| now.memory_high_events > p.memory_high_events);
            out.push(Verdict {
                resource: "memory",
                action: LimitAction::Throttle,
                over: high || now.under_oom,
                detail: format!(
                    "memory at its limit of {} bytes ({} in use): the kernel is holding it there",
                    l.memory_bytes, now.memory_bytes
                ),
            });
        }
        _ => {}
    }
    let Some(limit) = l.cpu_max_millicores else { return out };
    let (first_t, first) = match samples.front() {
        Some(f) if samples.len() >= WINDOW => f,
        _ => return out,
    };
    let wall_us = now_t.duration_since(*first_t).as_micros() as f64;
    if wall_us <= 0.0 {
        return out;
    }
    let action = l.limit_exceeded_action.cpu();
    let used = now.cpu_usage_usec.saturating_sub(first.cpu_usage_usec) as f64 / wall_us * 1000.0;
    let (over, why) = if action == LimitAction::Warn {
        (
            used > f64::from(limit),
            format!("used {used:.0} millicores over {:.1} s, above its limit of {limit}", wall_us / 1e6),
        )
    } else {
        let periods = now.nr_periods.saturating_sub(first.nr_periods);
        let throttled = now.nr_throttled.saturating_sub(first.nr_throttled);
        let share = if periods == 0 { 0.0 } else { throttled as f64 / periods as f64 };
        (
            periods >= 10 && share >= THROTTLED_SHARE,
            format!(
                "held at its limit of {limit} millicores: throttled in {throttled} of {periods} CFS periods over {:.1} s ({used:.0} millicores used)",
                wall_us / 1e6
            ),
        )
    };
    out.push(Verdict { resource: "cpu", action, over, detail: why });
    out
}

/// Whether the service has anything for the monitor to watch.
fn watched(l: &Limits) -> bool {
    l.cpu_max_millicores.is_some() || l.limit_exceeded_action.memory() != LimitAction::Kill
}

pub fn spawn_task(sup: Arc<Supervisor>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watches: HashMap<(String, u32), Watch> = HashMap::new();
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let all_usage = sup.config.sample_usage && n.is_multiple_of(USAGE_EVERY);
            // (service, replica, pid, cgroup, watched)
            let mut work: Vec<(Arc<super::service::Service>, u32, i32, InstanceCgroup, bool)> = Vec::new();
            for svc in sup.all() {
                let w = watched(&svc.spec.limits);
                if !w && !all_usage {
                    continue;
                }
                let rt = svc.runtime();
                for i in rt.instances.iter().filter(|i| i.pid != 0) {
                    work.push((svc.clone(), i.replica, i.pid, i.cgroup.clone(), w));
                }
            }
            if work.is_empty() {
                watches.clear();
                continue;
            }
            let cgroups: Vec<(InstanceCgroup, bool)> = work.iter().map(|w| (w.3.clone(), w.4)).collect();
            let t0 = Instant::now();
            // Usage alone is 3 files; the limit counters 2 more, only where watched.
            let Ok(read) = tokio::task::spawn_blocking(move || {
                cgroups
                    .iter()
                    .map(|(c, watched)| {
                        let p = if *watched {
                            c.pressure()
                        } else {
                            let u = c.usage();
                            Pressure {
                                memory_bytes: u.memory_bytes,
                                cpu_usage_usec: u.cpu_usage_usec,
                                pids: u.pids,
                                ..Default::default()
                            }
                        };
                        (Instant::now(), p)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            else {
                continue;
            };
            if all_usage {
                sup.metrics.last_sample_us.store(t0.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            let mut live = std::collections::HashSet::new();
            for ((svc, replica, pid, cg, w), (at, p)) in work.into_iter().zip(read) {
                let usage = Usage { memory_bytes: p.memory_bytes, cpu_usage_usec: p.cpu_usage_usec, pids: p.pids };
                svc.update(replica, |i, _| {
                    if i.pid == pid {
                        i.usage = Some((at, usage));
                    }
                });
                if !w {
                    continue;
                }
                let key = (svc.id().to_owned(), replica);
                live.insert(key.clone());
                let watch = watches.entry(key).or_default();
                if watch.pid != pid {
                    *watch = Watch { pid, ..Default::default() };
                }
                watch.samples.push_back((at, p));
                while watch.samples.len() > WINDOW {
                    watch.samples.pop_front();
                }
                for v in judge(&svc.spec.limits, &watch.samples) {
                    act(&sup, &svc, replica, pid, &cg, watch, v);
                }
            }
            watches.retain(|k, _| live.contains(k));
        }
    });
}

/// Opens or closes an episode and, on opening one, does what the action says.
fn act(
    sup: &Arc<Supervisor>,
    svc: &Arc<super::service::Service>,
    replica: u32,
    pid: i32,
    cg: &InstanceCgroup,
    watch: &mut Watch,
    v: Verdict,
) {
    let episode = if v.resource == "memory" { &mut watch.memory } else { &mut watch.cpu };
    if !v.over {
        if episode.0 {
            episode.1 += 1;
            if episode.1 >= WINDOW {
                *episode = (false, 0);
            }
        }
        return;
    }
    episode.1 = 0;
    if episode.0 {
        return;
    }
    episode.0 = true;
    let kill = v.action == LimitAction::Kill && v.resource == "cpu";
    let what = match v.action {
        _ if kill => "killed",
        LimitAction::Warn => "warned (not enforced)",
        _ => "throttled",
    };
    let message = format!("replica {replica} reached its {} limit, {what}: {}", v.resource, v.detail);
    svc.update(replica, |i, _| {
        i.limit_hits += 1;
        if kill && i.pid == pid {
            i.killed_for_limit = Some(format!("killed: CPU limit exceeded ({})", v.detail));
        }
    });
    sup.audit(
        Record::new(Kind::Limit, svc.id())
            .message(message.clone())
            .with("replica", replica)
            .with("pid", pid)
            .with("resource", v.resource)
            .with("action", v.action.as_str())
            .with("detail", v.detail.clone()),
    );
    let mut ev = Event::of(EventKind::LimitExceeded, svc, replica);
    ev.pid = pid;
    ev.action = v.action.as_str().to_owned();
    ev.message = message;
    sup.bus.emit(ev);
    if kill {
        let cg = cg.clone();
        tokio::task::spawn_blocking(move || cg.kill_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(action: LimitAction, cpu: Option<u32>) -> Limits {
        Limits {
            memory_bytes: 100,
            memory_high_bytes: None,
            cpu_weight: 100,
            cpu_max_millicores: cpu,
            max_pids: 64,
            max_open_files: 1024,
            limit_exceeded_action: action,
        }
    }

    /// One sample a second: (cpu usec, periods, throttled, memory, high events).
    fn series(points: &[(u64, u64, u64, u64, u64)]) -> VecDeque<(Instant, Pressure)> {
        let t0 = Instant::now();
        points
            .iter()
            .enumerate()
            .map(|(i, &(cpu, periods, throttled, mem, high))| {
                (
                    t0 + Duration::from_secs(i as u64),
                    Pressure {
                        cpu_usage_usec: cpu,
                        nr_periods: periods,
                        nr_throttled: throttled,
                        memory_bytes: mem,
                        memory_high_events: high,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn over(vs: &[Verdict], resource: &str) -> Option<bool> {
        vs.iter().find(|v| v.resource == resource).map(|v| v.over)
    }

    #[test]
    fn cpu_needs_a_full_window_and_a_throttled_majority() {
        let l = limits(LimitAction::Kill, Some(200));
        // A spinner held at 200m: 10 periods a second, 8 throttled.
        let spin: Vec<_> = (0..5u64).map(|i| (i * 200_000, i * 10, i * 8, 0, 0)).collect();
        assert_eq!(over(&judge(&l, &series(&spin[..4])), "cpu"), None, "not a full window yet");
        assert_eq!(over(&judge(&l, &series(&spin)), "cpu"), Some(true));
        // Mostly idle: rarely throttled.
        let idle: Vec<_> = (0..5u64).map(|i| (i * 20_000, i * 10, i, 0, 0)).collect();
        assert_eq!(over(&judge(&l, &series(&idle)), "cpu"), Some(false));
        // Default action: throttle, judged the same way.
        let v = judge(&limits(LimitAction::Default, Some(200)), &series(&spin));
        assert_eq!(v[0].action, LimitAction::Throttle);
        assert!(v[0].over && v[0].detail.contains("throttled in 32 of 40 CFS periods"), "{v:?}");
    }

    #[test]
    fn cpu_warn_compares_usage_with_the_limit() {
        let l = limits(LimitAction::Warn, Some(200));
        // One full core, no quota (no periods at all).
        let busy: Vec<_> = (0..5u64).map(|i| (i * 1_000_000, 0, 0, 0, 0)).collect();
        let v = judge(&l, &series(&busy));
        assert_eq!(over(&v, "cpu"), Some(true));
        assert!(v.iter().any(|x| x.detail.starts_with("used 1000 millicores")), "{v:?}");
        let calm: Vec<_> = (0..5u64).map(|i| (i * 100_000, 0, 0, 0, 0)).collect();
        assert_eq!(over(&judge(&l, &series(&calm)), "cpu"), Some(false));
    }

    #[test]
    fn memory_by_action() {
        // kill: the kernel's business; nothing judged.
        assert_eq!(over(&judge(&limits(LimitAction::Kill, None), &series(&[(0, 0, 0, 500, 0)])), "memory"), None);
        let warn = limits(LimitAction::Warn, None);
        assert_eq!(over(&judge(&warn, &series(&[(0, 0, 0, 101, 0)])), "memory"), Some(true));
        assert_eq!(over(&judge(&warn, &series(&[(0, 0, 0, 100, 0)])), "memory"), Some(false));
        // throttle (v2): memory.events high rising.
        let t = limits(LimitAction::Throttle, None);
        assert_eq!(over(&judge(&t, &series(&[(0, 0, 0, 99, 3), (0, 0, 0, 99, 7)])), "memory"), Some(true));
        assert_eq!(over(&judge(&t, &series(&[(0, 0, 0, 99, 7), (0, 0, 0, 99, 7)])), "memory"), Some(false));
        // throttle (v1): tasks waiting at the limit.
        let mut s = series(&[(0, 0, 0, 100, 0)]);
        if let Some(last) = s.back_mut() {
            last.1.under_oom = true;
        }
        assert_eq!(over(&judge(&t, &s), "memory"), Some(true));
        assert!(!watched(&limits(LimitAction::Default, None)) && watched(&t));
    }
}
