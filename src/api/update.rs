//! `Update`: start an update (a new spec, or a kept revision), or act on
//! the one under way (promote, abort, follow); either way the reply is the
//! update's progress stream, which ends with its last step (`done`).

use super::convert;
use crate::auth::{Perm, Token};
use crate::proto::v1 as pb;
use crate::supervisor::update::{Action, Request, Run, Target};
use crate::supervisor::Supervisor;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

/// Checks the request and starts (or finds) the update.
pub async fn start(sup: &Arc<Supervisor>, caller: &Token, r: pb::UpdateRequest) -> Result<Arc<Run>, Status> {
    let action = pb::UpdateAction::try_from(r.action)
        .map_err(|_| Status::invalid_argument(format!("action: {} is not an UpdateAction", r.action)))?;
    let strategy = convert::raw_strategy(&r.strategy, r.min_ready_ms);
    if action == pb::UpdateAction::Unspecified {
        let Some(spec) = r.spec else {
            return Err(Status::invalid_argument(
                "spec: is required to roll out a new revision (or give id with an action: rollback, promote, abort, follow)",
            ));
        };
        if !r.id.is_empty() && r.id != spec.id {
            return Err(Status::invalid_argument(format!(
                "id: '{}' differs from spec.id '{}'; the spec names the service",
                r.id, spec.id
            )));
        }
        convert::check_id("spec.id", &spec.id)?;
        let id = spec.id.clone();
        sup.authorize("Update", caller, Perm::Update, &id, None)?;
        let req = Request { id, target: Target::Spec(Box::new(convert::raw_spec(spec))), strategy };
        return Ok(sup.update(caller, req).await?);
    }
    convert::check_id("id", &r.id)?;
    if r.spec.is_some() {
        return Err(Status::invalid_argument(format!(
            "spec: not with action {}; it acts on the service named by id",
            action.as_str_name()
        )));
    }
    let perm = if action == pb::UpdateAction::Follow { Perm::Status } else { Perm::Update };
    sup.authorize("Update", caller, perm, &r.id, None)?;
    let run = match action {
        pb::UpdateAction::Rollback => {
            sup.update(caller, Request { id: r.id, target: Target::Revision(r.to_revision), strategy }).await?
        }
        pb::UpdateAction::Promote => sup.update_action(&r.id, Action::Promote, caller.id())?,
        pb::UpdateAction::Abort => sup.update_action(&r.id, Action::Abort, caller.id())?,
        _ => sup.update_action(&r.id, Action::Follow, caller.id())?,
    };
    Ok(run)
}

/// The update's progress from now on, ending with its last step.
pub fn stream(run: Arc<Run>) -> super::BoxStream<pb::UpdateProgress> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut progress = run.subscribe();
        loop {
            let p = progress.borrow_and_update().clone();
            if tx.send(Ok(convert::progress(&p))).await.is_err() || p.done {
                return;
            }
            if progress.changed().await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}
