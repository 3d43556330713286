//! `Watch`: buffered log tails first, then live events and log lines from
//! the bus, filtered per request. Ends when the client goes away or the
//! daemon shuts down.

use super::convert;
use crate::auth::Token;
use crate::proto::v1 as pb;
use crate::supervisor::events::Item;
use crate::supervisor::Supervisor;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// `caller` limits a watch of every service to the services its token covers.
pub fn stream(sup: Arc<Supervisor>, r: pb::WatchRequest, caller: Arc<Token>) -> super::BoxStream<pb::WatchEvent> {
    let (tx, rx) = mpsc::channel::<Result<pb::WatchEvent, Status>>(256);
    let (logs, events) =
        if !r.include_logs && !r.include_events { (true, true) } else { (r.include_logs, r.include_events) };
    let mut bus = sup.bus.subscribe();
    tokio::spawn(async move {
        if r.tail > 0 {
            let ids: Vec<String> = if r.id.is_empty() {
                sup.list(&Default::default())
                    .into_iter()
                    .map(|v| v.spec.id.to_string())
                    .filter(|id| sup.visible(&caller, id, None))
                    .collect()
            } else {
                vec![r.id.clone()]
            };
            for id in ids {
                if let Ok(sink) = sup.logs(&id) {
                    for l in sink.tail(r.tail as usize) {
                        if tx.send(Ok(convert::log_line(&l))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if r.snapshot {
            return;
        }
        // Supervisor-wide events (service "") only for a token over everything.
        let all = Supervisor::covers_all(&caller);
        let visible = |service: &str| if service.is_empty() { all } else { sup.visible(&caller, service, None) };
        let mut exit = sup.exit.subscribe();
        loop {
            let item = tokio::select! {
                i = bus.recv() => i,
                _ = exit.wait_for(|e| *e) => return,
                _ = tx.closed() => return,
            };
            let msg = match item {
                Ok(Item::Event(e)) if events && (r.id.is_empty() || e.service == r.id) && visible(&e.service) => {
                    convert::event(&e)
                }
                Ok(Item::Log(l)) if logs && (r.id.is_empty() || *l.service == *r.id) && visible(&l.service) => {
                    convert::log_line(&l)
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => convert::lagged(n),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}
