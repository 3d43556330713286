//! The update's decisions as pure functions: how many instances to start
//! and stop next, which new instances count as available, and what a
//! restarted daemon does with an interrupted update. No clock, no I/O: the
//! callers pass snapshots and instants in, so the rules are tested exactly.

use crate::supervisor::service::InstanceState;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Where a rolling replacement stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Replicas of the new revision.
    pub target: u32,
    /// Old instances running and not asked to stop.
    pub old_live: u32,
    /// New instances started (available or not).
    pub new_launched: u32,
    /// New instances ready and healthy for `min_ready`.
    pub new_available: u32,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    pub stop_old: u32,
    pub start_new: u32,
}

/// One step of a rolling replacement: stop old instances while at least
/// `target - max_unavailable` stay available (old ones count as available,
/// new ones once they have been ready for `min_ready`), and start new ones
/// while at most `target + max_surge` run (instances asked to stop no
/// longer count).
pub fn rolling_step(c: Counts, max_surge: u32, max_unavailable: u32) -> Step {
    let available = c.old_live + c.new_available;
    let min_available = c.target.saturating_sub(max_unavailable);
    let stop_old = c.old_live.min(available.saturating_sub(min_available));
    let live = c.old_live - stop_old + c.new_launched;
    let start_new = c.target.saturating_sub(c.new_launched).min((c.target + max_surge).saturating_sub(live));
    Step { stop_old, start_new }
}

/// Whether the replacement is complete.
pub fn rolled(c: Counts) -> bool {
    c.old_live == 0 && c.new_available == c.target
}

/// A new instance as the update sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub replica: u32,
    pub launched: bool,
    pub state: InstanceState,
    pub ever_running: bool,
    /// When it last became running (ready).
    pub running_since: Option<Instant>,
    pub restart_count: u32,
    pub launch_error: Option<String>,
    pub last_exit: Option<String>,
    /// The service's failure reason (the restart intensity was reached).
    pub failure: Option<String>,
}

/// The new revision's health.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// Replicas that have just become available.
    pub newly_available: Vec<u32>,
    /// Launched, not yet available.
    pub starting: u32,
    /// Why the update must roll back, if it must.
    pub broken: Option<String>,
}

/// Judges the new instances. An instance becomes available once it has
/// been running (ready) for `min_ready`. The update fails when one cannot
/// be launched or is not ready within its startup timeout, exits (or is
/// restarted) before it was available, or, after that, exceeds its restart
/// intensity (its service fails). An available instance that exits is
/// restarted by its policy like any other.
pub fn assess(snaps: &[Snap], available: &BTreeSet<u32>, min_ready: Duration, now: Instant, revision: u64) -> Health {
    let mut h = Health::default();
    for s in snaps.iter().filter(|s| s.launched) {
        let who = format!("instance {} of revision {revision}", s.replica);
        let broken = if let Some(e) = &s.launch_error {
            Some(format!("{who} did not start: {e}"))
        } else if matches!(s.state, InstanceState::Failed | InstanceState::Quarantined) {
            Some(format!("{who} failed: {}", s.failure.clone().unwrap_or_else(|| "its restart policy gave up".into())))
        } else if available.contains(&s.replica) {
            None
        } else if !s.ever_running && s.last_exit.is_some() {
            Some(format!("{who} exited before it was ready: {}", s.last_exit.clone().unwrap_or_default()))
        } else if s.ever_running && (s.state != InstanceState::Running || s.restart_count > 0) {
            Some(format!(
                "{who} exited within min_ready ({} ms) of becoming ready: {}",
                min_ready.as_millis(),
                s.last_exit.clone().unwrap_or_else(|| "it was restarted".into())
            ))
        } else {
            None
        };
        if let Some(b) = broken {
            h.broken.get_or_insert(b);
            continue;
        }
        if available.contains(&s.replica) {
            continue;
        }
        match (s.state, s.running_since) {
            (InstanceState::Running, Some(t)) if now.saturating_duration_since(t) >= min_ready => {
                h.newly_available.push(s.replica)
            }
            _ => h.starting += 1,
        }
    }
    h
}

/// What a restarted daemon does with an update it finds in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// The update had ended: nothing to do.
    Ended,
    /// The commit point was reached (the service's revision is the new
    /// one): it is recorded as committed.
    Committed,
    /// Not committed: the previous revision runs; the update is recorded
    /// as rolled back for this reason.
    RollBack(String),
}

/// Decides for an update row (`outcome_running`: not ended) given the
/// revision the service's desired state names now.
pub fn resume(outcome_running: bool, phase: &str, from: u64, to: u64, current: u64) -> Resume {
    if !outcome_running {
        Resume::Ended
    } else if current == to && from != to {
        Resume::Committed
    } else {
        Resume::RollBack(format!(
            "the daemon stopped during the update (phase {phase}); revision {from} was kept and revision {to} stopped"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(target: u32, old_live: u32, new_launched: u32, new_available: u32) -> Counts {
        Counts { target, old_live, new_launched, new_available }
    }

    /// Runs a rolling replacement to its end, making every launched new
    /// instance available one step later; returns the largest number of
    /// instances at once and the smallest number available.
    fn simulate(target: u32, old: u32, surge: u32, unavail: u32) -> (u32, u32, u32) {
        let (mut old_live, mut launched, mut avail) = (old, 0, 0);
        let (mut most, mut least, mut steps) = (old, old, 0);
        while !rolled(c(target, old_live, launched, avail)) {
            steps += 1;
            assert!(steps < 100, "no progress: {target} {old} {surge} {unavail}");
            // New instances launched in an earlier step are now available.
            avail = launched;
            let s = rolling_step(c(target, old_live, launched, avail), surge, unavail);
            old_live -= s.stop_old;
            launched += s.start_new;
            most = most.max(old_live + launched);
            least = least.min(old_live + avail);
        }
        (most, least, steps)
    }

    #[test]
    fn surge_one_never_goes_below_the_replicas() {
        let first = rolling_step(c(4, 4, 0, 0), 1, 0);
        assert_eq!(first, Step { stop_old: 0, start_new: 1 });
        // The new one is not available yet: nothing more.
        assert_eq!(rolling_step(c(4, 4, 1, 0), 1, 0), Step::default());
        // Available: one old goes, the next new one starts.
        assert_eq!(rolling_step(c(4, 4, 1, 1), 1, 0), Step { stop_old: 1, start_new: 1 });
        let (most, least, _) = simulate(4, 4, 1, 0);
        assert_eq!((most, least), (5, 4));
    }

    #[test]
    fn in_place_replacement_stops_first() {
        assert_eq!(rolling_step(c(3, 3, 0, 0), 0, 1), Step { stop_old: 1, start_new: 1 });
        assert_eq!(rolling_step(c(3, 2, 1, 0), 0, 1), Step::default());
        let (most, least, _) = simulate(3, 3, 0, 1);
        assert_eq!((most, least), (3, 2));
    }

    #[test]
    fn wider_limits_go_faster_and_scaling_works_both_ways() {
        let (_, _, slow) = simulate(6, 6, 1, 0);
        let (most, least, fast) = simulate(6, 6, 3, 2);
        assert!(fast < slow, "{fast} vs {slow}");
        assert!(most <= 9 && least >= 4, "{most} {least}");
        // Scaling up 2 → 4 and down 4 → 2 while replacing.
        let (most, least, _) = simulate(4, 2, 1, 0);
        assert!(most <= 5 && least >= 2, "{most} {least}");
        let (most, least, _) = simulate(2, 4, 1, 0);
        assert!(most <= 4 && least >= 2, "{most} {least}");
    }

    fn snap(replica: u32) -> Snap {
        Snap {
            replica,
            launched: true,
            state: InstanceState::Starting,
            ever_running: false,
            running_since: None,
            restart_count: 0,
            launch_error: None,
            last_exit: None,
            failure: None,
        }
    }

    #[test]
    fn availability_needs_min_ready() {
        let t0 = Instant::now();
        let mut s = snap(0);
        s.state = InstanceState::Running;
        s.ever_running = true;
        s.running_since = Some(t0);
        let none = BTreeSet::new();
        let h = assess(std::slice::from_ref(&s), &none, Duration::from_secs(1), t0 + Duration::from_millis(500), 2);
        assert_eq!((h.newly_available.len(), h.starting, h.broken), (0, 1, None));
        let h = assess(&[s], &none, Duration::from_secs(1), t0 + Duration::from_secs(1), 2);
        assert_eq!(h.newly_available, vec![0]);
    }

    #[test]
    fn each_failure_is_named() {
        let now = Instant::now();
        let none = BTreeSet::new();
        let min = Duration::from_secs(1);
        let mut crashed = snap(1);
        crashed.state = InstanceState::Backoff;
        crashed.last_exit = Some("exited with code 3".into());
        let b = assess(&[crashed], &none, min, now, 2).broken.expect("broken");
        assert!(b.contains("instance 1 of revision 2 exited before it was ready: exited with code 3"), "{b}");
        let mut slow = snap(0);
        slow.launch_error = Some("not ready within 500 ms: no READY=1 on $NOTIFY_SOCKET; killed".into());
        let b = assess(&[slow], &none, min, now, 2).broken.expect("broken");
        assert!(b.contains("did not start: not ready within 500 ms"), "{b}");
        let mut flapping = snap(0);
        flapping.ever_running = true;
        flapping.state = InstanceState::Running;
        flapping.running_since = Some(now);
        flapping.restart_count = 1;
        flapping.last_exit = Some("killed by SIGSEGV".into());
        let b = assess(&[flapping.clone()], &none, min, now, 2).broken.expect("broken");
        assert!(b.contains("within min_ready (1000 ms)"), "{b}");
        // Once available, a restart is the restart policy's business ...
        let avail: BTreeSet<u32> = [0].into();
        assert_eq!(assess(&[flapping.clone()], &avail, min, now, 2).broken, None);
        // ... until the intensity limit fails it.
        flapping.state = InstanceState::Failed;
        flapping.failure = Some("restart intensity reached: 2 restarts within 60s".into());
        let b = assess(&[flapping], &avail, min, now, 2).broken.expect("broken");
        assert!(b.contains("failed: restart intensity reached"), "{b}");
        // Not launched: not judged.
        let mut idle = snap(3);
        idle.launched = false;
        idle.launch_error = Some("x".into());
        assert_eq!(assess(&[idle], &none, min, now, 2), Health::default());
    }

    #[test]
    fn resume_rolls_back_unless_committed() {
        assert_eq!(resume(false, "done", 1, 2, 2), Resume::Ended);
        assert_eq!(resume(true, "committing", 1, 2, 2), Resume::Committed);
        let r = resume(true, "rolling", 1, 2, 1);
        assert!(
            matches!(&r, Resume::RollBack(why) if why.contains("phase rolling") && why.contains("revision 1 was kept")),
            "{r:?}"
        );
        // A rollback to revision 1 from 2 that had not committed: 2 stays.
        assert!(matches!(resume(true, "rolling", 2, 1, 2), Resume::RollBack(_)));
    }
}
