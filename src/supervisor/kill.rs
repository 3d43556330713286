//! Kill: write the new desired state, stop every instance (SIGTERM, grace,
//! SIGKILL of the cgroup), and with `remove` forget the service.

use super::events::{Event, EventKind};
use super::query::InstanceView;
use super::service::StopMode;
use super::{Error, Supervisor};
use crate::audit::{Kind, Record};
use crate::store::Desired;
use std::sync::Arc;
use std::time::Duration;

pub struct KillOutcome {
    pub instances: Vec<InstanceView>,
    pub removed: bool,
}

impl Supervisor {
    pub async fn kill(
        self: &Arc<Self>,
        id: &str,
        force: bool,
        remove: bool,
        timeout_ms: u32,
        by: &str,
    ) -> Result<KillOutcome, Error> {
        self.get(id)?;
        // An update under way ends first: its new instances stop and
        // nothing is restored (the revision the service ran is stopped next).
        if let Some(run) = self.updates.active(id) {
            run.cancel("the service was killed during the update").await;
        }
        let svc = self.get(id)?;
        let timeout =
            Duration::from_millis(u64::from(if timeout_ms == 0 { svc.spec.shutdown_timeout_ms } else { timeout_ms }));
        // Desired state before action: a crash mid-kill must not revive it.
        self.store.set_desired(id, Desired::Stopped).await?;
        svc.set_desired(Desired::Stopped);
        self.stop_service(&svc, StopMode { force, timeout }).await;
        let instances = self.instance_views(&svc);
        let mut ev = Event::new(EventKind::Stopped, id, 0);
        ev.message = format!("stopped ({})", if force { "forced" } else { "graceful" });
        self.bus.emit(ev);
        self.audit(
            Record::new(Kind::Kill, id)
                .by(by)
                .message(format!("stopped ({})", if force { "forced" } else { "graceful" }))
                .with("force", force)
                .with("timeout_ms", timeout.as_millis() as u64)
                .with("remove", remove),
        );
        if remove {
            let _op = self.ops.lock().await;
            self.store.delete_service(id).await?;
            self.remove(id);
            self.updates.forget(id);
            self.collect_artifacts();
            // The data directory belongs to the service; it goes with it (a
            // new service of the same id, under another uid, starts empty).
            let data = super::policy::data_dir(&self.config.state_dir, id);
            let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&data)).await;
            if let Ok(Err(e)) = removed {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(service = id, error = %e, "cannot remove the data directory");
                }
            }
            let mut ev = Event::new(EventKind::Removed, id, 0);
            ev.message = "desired state and data directory removed".into();
            self.bus.emit(ev);
            self.audit(Record::new(Kind::Remove, id).by(by).message("desired state and data directory removed"));
        }
        Ok(KillOutcome { instances, removed: remove })
    }

    /// Asks every instance task to stop and waits for all of them.
    pub(super) async fn stop_service(&self, svc: &super::service::Service, mode: StopMode) {
        svc.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(mode);
                true
            } else {
                false
            }
        });
        svc.stopped().await;
    }
}
