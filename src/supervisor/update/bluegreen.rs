//! Blue-green: start the complete new set beside the old one; once every
//! new instance is available, switch at once: the whole old set is frozen
//! (cgroup freezer), so it takes no more connections from the shared
//! socket, yet keeps everything it holds. It stays so for the grace period,
//! for an instant rollback (thaw, then stop the new set); at the commit it
//! gets SIGTERM and is thawed to drain and exit.
//!
//! Until the switch both sets accept from the shared socket: with a socket
//! the supervisor holds there is no router to hold traffic back, so the
//! switch is the moment the old set stops accepting.

use super::drive::Abort;
use super::{Phase, Run};
use crate::supervisor::Supervisor;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) async fn run(sup: &Arc<Supervisor>, run: &Run, grace: Duration) -> Result<(), Abort> {
    let n = run.to.spec.replicas;
    let starting = format!("the new set of {n} instance(s) is starting beside the old set");
    run.launch_beside(sup, n, Phase::Starting, &starting).await?;
    run.record(sup, Phase::Switching, "every new instance is available; freezing the old set".into()).await;
    let frozen = freeze_old(sup, run).await;
    let until = Instant::now() + grace;
    let mut promoted = false;
    while !promoted && Instant::now() < until {
        promoted = run.check()?;
        run.assess()?;
        let msg = format!(
            "switched: the new set serves; {frozen} old instance(s) kept frozen for {} ms (rollback thaws them)",
            grace.as_millis()
        );
        run.record(sup, Phase::Grace, msg).await;
        run.wait().await;
    }
    Ok(())
}

/// Freezes every old instance at once (one thread each); an old instance
/// without a process (in backoff) is stopped instead, so it cannot come
/// back unfrozen. Returns how many were frozen.
async fn freeze_old(sup: &Arc<Supervisor>, run: &Run) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for r in run.old_live() {
        let (pid, cg) = {
            let rt = run.from.runtime();
            let i = &rt.instances[r as usize];
            (i.pid, i.cgroup.clone())
        };
        if pid == 0 {
            run.stop_old(r);
            continue;
        }
        set.spawn_blocking(move || (r, cg.set_frozen(true)));
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        let Ok((r, result)) = done else { continue };
        match result {
            Ok(()) => {
                run.from.update(r, |i, _| i.frozen = true);
                n += 1;
            }
            Err(e) => {
                // Not frozen: it would go on accepting. It is stopped
                // now instead (the instant rollback is lost for it).
                tracing::warn!(service = %run.id, replica = r, error = %e, "cannot freeze an old instance; stopping it");
                run.stop_old(r);
            }
        }
    }
    let _ = sup;
    n
}
