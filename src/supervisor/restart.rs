//! Restart policy as pure functions: given how an instance ended, its spec
//! and the restart history, decide restart (with which delay), stop, or
//! fail. No clock, no randomness inside: the caller passes both in, so the
//! rules are tested exactly.

use crate::spec::{RestartPolicy, RestartSpec};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitHow {
    Code(i32),
    Signal(i32),
}

/// Why an instance ended, in one word (the API's `ExitInfo.cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitCause {
    /// It exited by itself (with a code). Also what an exit in a snapshot
    /// from an image before this field reads as.
    #[default]
    Exit,
    /// A signal ended it (a crash, or a kill from outside Solo).
    Signal,
    /// The kernel's OOM killer ended it at its cgroup's memory limit.
    Oom,
    /// Solo killed it for staying at its CPU limit (`limit_exceeded_action = kill`).
    CpuLimit,
    /// Its seccomp filter killed it.
    Seccomp,
    /// It was stopped through the API (kill, shutdown, revocation).
    Stopped,
    /// It never ran: the launch failed.
    Launch,
}

impl ExitCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitCause::Exit => "exit",
            ExitCause::Signal => "signal",
            ExitCause::Oom => "oom",
            ExitCause::CpuLimit => "cpu-limit",
            ExitCause::Seccomp => "seccomp",
            ExitCause::Stopped => "stopped",
            ExitCause::Launch => "launch",
        }
    }
}

/// An instance's end, as recorded and reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    pub how: ExitHow,
    pub oom_killed: bool,
    pub at_ms: i64,
    pub reason: String,
    #[serde(default)]
    pub cause: ExitCause,
}

impl Exit {
    /// An exit observed at `at_ms`, its reason and cause from how it ended.
    pub fn new(how: ExitHow, oom: bool, at_ms: i64) -> Exit {
        let cause = match (oom, how) {
            (true, _) => ExitCause::Oom,
            (false, ExitHow::Code(_)) => ExitCause::Exit,
            (false, ExitHow::Signal(_)) => ExitCause::Signal,
        };
        Exit { how, oom_killed: oom, at_ms, reason: Exit::describe(how, oom), cause }
    }

    pub fn success(&self) -> bool {
        self.how == ExitHow::Code(0)
    }

    /// "exited with code 3", "killed by SIGSEGV", and for an OOM kill its
    /// own reason, not an anonymous SIGKILL.
    pub fn describe(how: ExitHow, oom: bool) -> String {
        match how {
            _ if oom => "out of memory: the kernel's OOM killer ended it at its cgroup memory limit".to_owned(),
            ExitHow::Code(c) => format!("exited with code {c}"),
            ExitHow::Signal(s) => format!("killed by {}", signal_name(s)),
        }
    }
}

pub fn signal_name(s: i32) -> String {
    let n = match s {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {s}"),
    };
    n.to_owned()
}

/// What to do after an exit.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start again after `delay`.
    Restart { delay: Duration, attempt: u32 },
    /// The policy says not to restart (e.g. clean exit under on-failure).
    Done,
    /// The intensity limit was reached: the service is failed.
    GiveUp { reason: String },
}

/// Restart history of one instance.
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    /// Times of recent restarts, oldest first, within the intensity window.
    history: VecDeque<Instant>,
    /// Consecutive quick failures; drives the backoff exponent.
    attempt: u32,
}

/// Backoff delay for the `attempt`-th consecutive restart (1-based):
/// `initial * 2^(attempt-1)`, capped at `max`, then moved by up to
/// `±jitter/2` of itself using `rand` in `[0, 1)`.
pub fn backoff_delay(spec: &RestartSpec, attempt: u32, rand: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = (u64::from(spec.backoff_initial_ms) << exp).min(u64::from(spec.backoff_max_ms)) as f64;
    let spread = base * spec.backoff_jitter;
    let ms = (base - spread / 2.0 + spread * rand.clamp(0.0, 1.0)).max(0.0);
    Duration::from_micros((ms * 1000.0) as u64)
}

/// Decides what follows an exit. `ran_for` is how long the instance ran;
/// `now` is when it exited; `rand` is uniform in `[0, 1)`.
pub fn decide(
    spec: &RestartSpec,
    exit: &Exit,
    ran_for: Duration,
    now: Instant,
    t: &mut Tracker,
    rand: f64,
) -> Decision {
    let wanted = match spec.policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !exit.success(),
        RestartPolicy::Never => false,
    };
    if !wanted {
        return Decision::Done;
    }
    // A run longer than the stable period forgives earlier failures.
    if ran_for >= Duration::from_secs(u64::from(spec.reset_after_seconds)) {
        t.attempt = 0;
    }
    let window = Duration::from_secs(u64::from(spec.within_seconds));
    while t.history.front().is_some_and(|&at| now.duration_since(at) > window) {
        t.history.pop_front();
    }
    if t.history.len() >= spec.max_restarts as usize {
        return Decision::GiveUp {
            reason: format!(
                "restart intensity reached: {} restarts within {}s (max_restarts {}); last: {}",
                t.history.len(),
                spec.within_seconds,
                spec.max_restarts,
                exit.reason
            ),
        };
    }
    t.history.push_back(now);
    t.attempt += 1;
    Decision::Restart { delay: backoff_delay(spec, t.attempt, rand), attempt: t.attempt }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(how: ExitHow) -> Exit {
        Exit::new(how, false, 0)
    }

    fn spec(policy: RestartPolicy) -> RestartSpec {
        RestartSpec { policy, backoff_jitter: 0.0, ..RestartSpec::default() }
    }

    #[test]
    fn policies() {
        let now = Instant::now();
        let short = Duration::from_millis(5);
        let ok = exit(ExitHow::Code(0));
        let bad = exit(ExitHow::Signal(libc::SIGKILL));
        let mut t = Tracker::default();
        assert_eq!(decide(&spec(RestartPolicy::Never), &bad, short, now, &mut t, 0.5), Decision::Done);
        assert_eq!(decide(&spec(RestartPolicy::OnFailure), &ok, short, now, &mut t, 0.5), Decision::Done);
        assert!(matches!(
            decide(&spec(RestartPolicy::OnFailure), &bad, short, now, &mut t, 0.5),
            Decision::Restart { .. }
        ));
        assert!(matches!(decide(&spec(RestartPolicy::Always), &ok, short, now, &mut t, 0.5), Decision::Restart { .. }));
    }

    #[test]
    fn exponential_backoff_capped() {
        let s = RestartSpec {
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            backoff_jitter: 0.0,
            ..RestartSpec::default()
        };
        let d: Vec<u128> = (1..=6).map(|a| backoff_delay(&s, a, 0.3).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_in_band() {
        let s = RestartSpec { backoff_initial_ms: 1000, backoff_jitter: 0.2, ..RestartSpec::default() };
        assert_eq!(backoff_delay(&s, 1, 0.0).as_millis(), 900);
        assert_eq!(backoff_delay(&s, 1, 0.999_999).as_millis(), 1099);
    }

    #[test]
    fn intensity_limit_fails_the_service() {
        let s = RestartSpec { max_restarts: 3, within_seconds: 10, ..spec(RestartPolicy::Always) };
        let mut t = Tracker::default();
        let t0 = Instant::now();
        let e = exit(ExitHow::Code(1));
        for i in 0..3 {
            let d = decide(&s, &e, Duration::ZERO, t0 + Duration::from_secs(i), &mut t, 0.5);
            assert!(matches!(d, Decision::Restart { .. }), "restart {i}: {d:?}");
        }
        let d = decide(&s, &e, Duration::ZERO, t0 + Duration::from_secs(3), &mut t, 0.5);
        assert!(matches!(d, Decision::GiveUp { .. }), "{d:?}");
        // Outside the window the history has aged out.
        let mut t = Tracker::default();
        for i in 0..10 {
            let d = decide(&s, &e, Duration::ZERO, t0 + Duration::from_secs(i * 11), &mut t, 0.5);
            assert!(matches!(d, Decision::Restart { .. }));
        }
    }

    #[test]
    fn stable_run_resets_backoff() {
        let s = spec(RestartPolicy::Always);
        let mut t = Tracker::default();
        let now = Instant::now();
        let e = exit(ExitHow::Code(1));
        for _ in 0..3 {
            decide(&s, &e, Duration::ZERO, now, &mut t, 0.5);
        }
        let long = Duration::from_secs(u64::from(s.reset_after_seconds));
        assert_eq!(
            decide(&s, &e, long, now, &mut t, 0.5),
            Decision::Restart { delay: Duration::from_millis(100), attempt: 1 }
        );
    }
}
