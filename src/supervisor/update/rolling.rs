//! Rolling: replace the old instances a few at a time. At most
//! `replicas + max_surge` instances run at once and at least
//! `replicas - max_unavailable` are available, where a new instance counts
//! only once it has been ready for `min_ready` ([`plan::rolling_step`]).
//! The old instance stopped last goes once the last new one is available.

use super::drive::Abort;
use super::plan;
use super::{Phase, Run};
use crate::supervisor::Supervisor;
use std::sync::Arc;

/// Brings the service to the new revision alone; also the second half of
/// a promoted canary (`phase` says which).
pub(super) async fn converge(
    sup: &Arc<Supervisor>,
    run: &Run,
    max_surge: u32,
    max_unavailable: u32,
    phase: Phase,
) -> Result<(), Abort> {
    loop {
        run.check()?;
        run.assess()?;
        let c = run.counts();
        if plan::rolled(c) {
            run.record(sup, phase, format!("all {} new instance(s) available; the old ones drain", c.target)).await;
            run.drained().await;
            return Ok(());
        }
        let step = plan::rolling_step(c, max_surge, max_unavailable);
        // The highest old replicas go first; new ones start from 0.
        for r in run.old_live().into_iter().rev().take(step.stop_old as usize) {
            run.stop_old(r);
        }
        for _ in 0..step.start_new {
            run.launch_next(sup);
        }
        let c = run.counts();
        run.record(
            sup,
            phase,
            format!(
                "{} of {} new instance(s) available, {} starting; {} old running",
                c.new_available,
                c.target,
                c.new_launched - c.new_available,
                c.old_live
            ),
        )
        .await;
        run.wait().await;
    }
}
