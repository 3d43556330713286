//! Shutdown: stop user services, then system services, within a timeout;
//! desired state is kept, so the next start brings them back.

use super::service::StopMode;
use super::Supervisor;
use crate::spec::Tier;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Supervisor {
    pub async fn shutdown(self: &Arc<Self>, timeout: Duration) -> u32 {
        self.shutting_down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut stopped = 0u32;
        for tier in [Tier::User, Tier::System] {
            let svcs: Vec<_> = self.all().into_iter().filter(|s| s.spec.tier == tier).collect();
            let left = deadline.saturating_duration_since(Instant::now());
            let mut set = tokio::task::JoinSet::new();
            for svc in svcs {
                stopped += svc.runtime().instances.iter().filter(|i| i.pid != 0).count() as u32;
                let me = self.clone();
                let grace = Duration::from_millis(u64::from(svc.spec.shutdown_timeout_ms)).min(left);
                set.spawn(async move { me.stop_service(&svc, StopMode { force: false, timeout: grace }).await });
            }
            while set.join_next().await.is_some() {}
        }
        self.layout.remove_base();
        tracing::info!(stopped, "all services stopped");
        stopped
    }
}
