//! Shutdown: end the updates under way, then stop user services, then
//! system services, each tier within its share of the timeout; report each
//! instance stopped and whether it had to be SIGKILLed. Desired state is
//! kept, so the next start brings the services back.
//!
//! The system tier keeps time for itself: the user tier must be done by
//! `timeout - reserve`, where `reserve` is the longest `shutdown_timeout_ms`
//! of the system services, at most half the timeout. Each service gets its
//! own grace, cut to what is left of its tier's time.

use super::service::{Service, StopMode};
use super::Supervisor;
use crate::spec::Tier;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One instance a shutdown stopped.
#[derive(Debug, Clone)]
pub struct StoppedInstance {
    pub service: String,
    pub replica: u32,
    pub revision: u64,
    pub tier: Tier,
    pub pid: i32,
    /// It did not exit within its grace (or could not take SIGTERM) and was SIGKILLed.
    pub sigkilled: bool,
    /// How it ended ("exited with code 0", "killed by SIGKILL").
    pub how: String,
    /// From the start of its tier's stop to its end.
    pub stop_ms: u64,
}

/// What a shutdown did, in the order it did it.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    pub instances: Vec<StoppedInstance>,
}

impl ShutdownReport {
    /// Instances that were running.
    pub fn stopped(&self) -> u32 {
        self.instances.len() as u32
    }

    pub fn sigkilled(&self) -> u32 {
        self.instances.iter().filter(|i| i.sigkilled).count() as u32
    }
}

impl Supervisor {
    pub async fn shutdown(self: &Arc<Self>, timeout: Duration) -> ShutdownReport {
        self.shutting_down.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let deadline = start + timeout;
        // Updates under way first: each keeps the revision its service ran
        // and stops the new one (recorded as rolled back).
        let runs = self.updates.all_active();
        let mut cancels = tokio::task::JoinSet::new();
        for run in runs.clone() {
            cancels.spawn(async move { run.cancel("the daemon shut down during the update").await });
        }
        let _ = tokio::time::timeout(timeout / 2, async { while cancels.join_next().await.is_some() {} }).await;
        // Whatever a slow cancel left of a new revision goes now.
        for run in runs {
            let grace = deadline.saturating_duration_since(Instant::now()).min(timeout / 4);
            self.stop_service(&run.to, StopMode { force: false, timeout: grace }).await;
        }
        let all = self.all();
        let reserve = all
            .iter()
            .filter(|s| s.spec.tier == Tier::System)
            .map(|s| Duration::from_millis(u64::from(s.spec.shutdown_timeout_ms)))
            .max()
            .unwrap_or_default()
            .min(timeout / 2);
        let mut report = ShutdownReport::default();
        for (tier, until) in [(Tier::User, deadline.checked_sub(reserve).unwrap_or(deadline)), (Tier::System, deadline)]
        {
            let svcs: Vec<Arc<Service>> = all.iter().filter(|s| s.spec.tier == tier).cloned().collect();
            let tier_start = Instant::now();
            let left = until.saturating_duration_since(tier_start);
            // (replica, pid) of each running instance, before the stop.
            type Running = Vec<(u32, i32)>;
            let running: Vec<(Arc<Service>, Running)> = svcs
                .iter()
                .map(|s| {
                    let pids =
                        s.runtime().instances.iter().filter(|i| i.pid != 0).map(|i| (i.replica, i.pid)).collect();
                    (s.clone(), pids)
                })
                .collect();
            let mut set = tokio::task::JoinSet::new();
            for svc in svcs {
                let me = self.clone();
                let grace = Duration::from_millis(u64::from(svc.spec.shutdown_timeout_ms)).min(left);
                set.spawn(async move { me.stop_service(&svc, StopMode { force: false, timeout: grace }).await });
            }
            while set.join_next().await.is_some() {}
            let tier_start_ms = super::events::now_ms() - tier_start.elapsed().as_millis() as i64;
            for (svc, pids) in running {
                let rt = svc.runtime();
                for (replica, pid) in pids {
                    let i = &rt.instances[replica as usize];
                    report.instances.push(StoppedInstance {
                        service: svc.id().to_owned(),
                        replica,
                        revision: svc.revision,
                        tier,
                        pid,
                        sigkilled: i.stop_escalated,
                        how: i.last_exit.as_ref().map(|e| e.reason.clone()).unwrap_or_default(),
                        stop_ms: i.last_exit.as_ref().map(|e| (e.at_ms - tier_start_ms).max(0) as u64).unwrap_or(0),
                    });
                }
            }
            let killed: Vec<String> = report
                .instances
                .iter()
                .filter(|i| i.tier == tier && i.sigkilled)
                .map(|i| format!("{}.{} (pid {})", i.service, i.replica, i.pid))
                .collect();
            tracing::info!(tier = tier.as_str(), sigkilled = ?killed, "tier stopped");
        }
        self.layout.remove_base();
        // Nothing is left for a later daemon to adopt.
        self.launcher.quit().await;
        tracing::info!(stopped = report.stopped(), sigkilled = report.sigkilled(), "all services stopped");
        report
    }
}
