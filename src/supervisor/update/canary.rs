//! Canary: start a share of the new revision (at least one instance)
//! beside the complete old set, observe it for a window, then — at once,
//! or with `manual` only on `promote` — replace the rest as a rolling
//! update would (max_surge 1, max_unavailable 0). A canary that fails in
//! the window rolls the update back: the old set was never touched.

use super::drive::Abort;
use super::{rolling, Phase, Run};
use crate::spec::update::canary_instances;
use crate::supervisor::Supervisor;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After promotion the rest is replaced one instance beyond the replicas at
/// a time, never below them (the canaries already count).
const CANARY_MAX_SURGE: u32 = 1;

pub(super) async fn run(
    sup: &Arc<Supervisor>,
    run: &Run,
    percent: u32,
    window: Duration,
    manual: bool,
) -> Result<(), Abort> {
    let n = canary_instances(percent, run.to.spec.replicas);
    let starting = format!("{n} canary instance(s) ({percent}%) starting beside the old set");
    run.launch_beside(sup, n, Phase::Canary, &starting).await?;
    let until = Instant::now() + window;
    let mut promoted = false;
    while !promoted && Instant::now() < until {
        promoted = run.check()?;
        run.assess()?;
        let msg = format!("observing {n} canary instance(s) for {} ms", window.as_millis());
        run.record(sup, Phase::Observing, msg).await;
        run.wait().await;
    }
    while manual && !promoted {
        promoted = run.check()?;
        run.assess()?;
        let msg = format!(
            "{n} canary instance(s) healthy for the window; waiting for `solo update {} --promote` (or --abort)",
            run.id
        );
        run.record(sup, Phase::AwaitingPromotion, msg).await;
        run.wait().await;
    }
    rolling::converge(sup, run, CANARY_MAX_SURGE, 0, Phase::Promoting).await
}
