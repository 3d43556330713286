//! The gRPC control plane: thin tonic adapters over the supervisor.
//! Conversions live in `convert`, the single error mapping in `error`,
//! serving (Unix socket, TCP, health, reflection) in [`server`], and in
//! [`uds_authority`] the adapter that lets grpc-core clients reach h2 over
//! the Unix socket.

mod audit;
pub mod auth;
mod convert;
mod error;
pub mod server;
mod timing;
pub mod uds_authority;
mod update;
mod watch;

use crate::auth::Perm;
use crate::proto::v1 as pb;
use crate::supervisor::{ListFilter, Supervisor};
use pb::solo_server::Solo;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub struct Api {
    sup: Arc<Supervisor>,
}

impl Api {
    pub fn new(sup: Arc<Supervisor>) -> Self {
        Api { sup }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Solo for Api {
    async fn deploy(&self, req: Request<pb::DeployRequest>) -> Result<Response<pb::DeployResponse>, Status> {
        let caller = auth::caller(&req)?;
        let req = req.into_inner();
        let spec = req.spec.ok_or_else(|| Status::invalid_argument("spec: is required"))?;
        let spec = self.sup.validator.service(convert::raw_spec(spec)).map_err(crate::supervisor::Error::from)?;
        self.sup.authorize("Deploy", &caller, Perm::Deploy, spec.id.as_str(), Some(spec.tier))?;
        crate::supervisor::grants::authorize_grants(
            &self.sup,
            "Deploy",
            &caller,
            spec.id.as_str(),
            &spec.grants,
            "spec.grants",
        )?;
        let out = self.sup.deploy(spec, req.wait, caller.id()).await?;
        Ok(Response::new(pb::DeployResponse {
            id: out.id,
            revision: out.revision,
            artifact_sha256: out.artifact_sha256,
            instances: out.instances.iter().map(convert::instance).collect(),
            startup_us: out.startup_us,
        }))
    }

    async fn status(&self, req: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let caller = auth::caller(&req)?;
        let id = req.into_inner().id;
        convert::check_id("id", &id)?;
        self.sup.authorize("Status", &caller, Perm::Status, &id, None)?;
        let v = self.sup.status(&id)?;
        Ok(Response::new(pb::StatusResponse { service: Some(convert::service(&v)) }))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let caller = auth::caller(&req)?;
        let r = req.into_inner();
        // Only the services the token covers are listed.
        self.sup.require_perm("List", &caller, Perm::Status)?;
        let filter = ListFilter {
            state: convert::service_state_filter(r.state)?,
            tier: convert::tier_filter(r.tier)?,
            id_prefix: r.id_prefix,
            labels: r.labels.into_iter().collect(),
        };
        let services = self
            .sup
            .list(&filter)
            .iter()
            .filter(|v| self.sup.visible(&caller, v.spec.id.as_str(), Some(v.spec.tier)))
            .map(convert::service)
            .collect();
        Ok(Response::new(pb::ListResponse { services }))
    }

    async fn kill(&self, req: Request<pb::KillRequest>) -> Result<Response<pb::KillResponse>, Status> {
        let caller = auth::caller(&req)?;
        let r = req.into_inner();
        convert::check_id("id", &r.id)?;
        self.sup.authorize("Kill", &caller, Perm::Kill, &r.id, None)?;
        if r.timeout_ms > crate::spec::ServiceSpec::MAX_SHUTDOWN_TIMEOUT_MS {
            return Err(Status::invalid_argument(format!(
                "timeout_ms: {} ms is more than the maximum of {} ms",
                r.timeout_ms,
                crate::spec::ServiceSpec::MAX_SHUTDOWN_TIMEOUT_MS
            )));
        }
        let out = self.sup.kill(&r.id, r.force, r.remove, r.timeout_ms, caller.id()).await?;
        Ok(Response::new(pb::KillResponse {
            id: r.id,
            instances: out.instances.iter().map(convert::instance).collect(),
            removed: out.removed,
        }))
    }

    type WatchStream = BoxStream<pb::WatchEvent>;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let caller = auth::caller(&req)?;
        let r = req.into_inner();
        if !r.id.is_empty() {
            convert::check_id("id", &r.id)?;
            self.sup.authorize("Watch", &caller, Perm::Watch, &r.id, None)?;
            self.sup.get(&r.id)?;
        } else {
            self.sup.require_perm("Watch", &caller, Perm::Watch)?;
        }
        if r.tail > 10_000 {
            return Err(Status::invalid_argument(format!("tail: {} is more than the maximum of 10000", r.tail)));
        }
        Ok(Response::new(watch::stream(self.sup.clone(), r, caller)))
    }

    async fn grant_capability(
        &self,
        req: Request<pb::GrantCapabilityRequest>,
    ) -> Result<Response<pb::GrantCapabilityResponse>, Status> {
        let caller = auth::caller(&req)?;
        let r = req.into_inner();
        if !r.service.is_empty() {
            convert::check_id("service", &r.service)?;
        }
        match r.what {
            Some(pb::grant_capability_request::What::Token(t)) => {
                let req = crate::supervisor::tokens::TokenRequest {
                    subject: t.subject,
                    resource: t.resource,
                    perms: t.permissions,
                    ttl_secs: u64::from(t.ttl_seconds),
                    service: r.service,
                };
                let token = self.sup.issue_token(&caller, req).await?;
                Ok(Response::new(pb::GrantCapabilityResponse {
                    token: token.encode(),
                    token_id: token.id().to_owned(),
                    grant_id: String::new(),
                }))
            }
            Some(pb::grant_capability_request::What::Fd(g)) => {
                if r.service.is_empty() {
                    return Err(Status::invalid_argument("service: an fd grant needs the service to give it to"));
                }
                let grant_id = self.sup.grant_fd(&caller, &r.service, &g.spec, &g.name).await?;
                Ok(Response::new(pb::GrantCapabilityResponse { grant_id, ..Default::default() }))
            }
            None => Err(Status::invalid_argument("what: set either token or fd")),
        }
    }

    async fn revoke_capability(
        &self,
        req: Request<pb::RevokeCapabilityRequest>,
    ) -> Result<Response<pb::RevokeCapabilityResponse>, Status> {
        let caller = auth::caller(&req)?;
        let revoked = match req.into_inner().what {
            Some(pb::revoke_capability_request::What::TokenId(id)) => self.sup.revoke_token(&caller, &id).await?,
            Some(pb::revoke_capability_request::What::GrantId(id)) => self.sup.revoke_fd(&caller, &id).await?,
            None => return Err(Status::invalid_argument("what: set either token_id or grant_id")),
        };
        Ok(Response::new(pb::RevokeCapabilityResponse { revoked }))
    }

    type UpdateStream = BoxStream<pb::UpdateProgress>;

    async fn update(&self, req: Request<pb::UpdateRequest>) -> Result<Response<Self::UpdateStream>, Status> {
        let caller = auth::caller(&req)?;
        let run = update::start(&self.sup, &caller, req.into_inner()).await?;
        Ok(Response::new(update::stream(run)))
    }

    async fn audit(&self, req: Request<pb::AuditRequest>) -> Result<Response<pb::AuditResponse>, Status> {
        let caller = auth::caller(&req)?;
        audit::query(&self.sup, &caller, req.into_inner()).await.map(Response::new)
    }

    async fn audit_verify(
        &self,
        req: Request<pb::AuditVerifyRequest>,
    ) -> Result<Response<pb::AuditVerifyResponse>, Status> {
        let caller = auth::caller(&req)?;
        audit::verify(&self.sup, &caller).await.map(Response::new)
    }

    async fn audit_explain(
        &self,
        req: Request<pb::AuditExplainRequest>,
    ) -> Result<Response<pb::AuditExplainResponse>, Status> {
        let caller = auth::caller(&req)?;
        audit::explain(&self.sup, &caller, req.into_inner()).await.map(Response::new)
    }

    async fn shutdown(&self, req: Request<pb::ShutdownRequest>) -> Result<Response<pb::ShutdownResponse>, Status> {
        let caller = auth::caller(&req)?;
        self.sup.authorize_global("Shutdown", &caller, Perm::Shutdown)?;
        let r = req.into_inner();
        if r.timeout_ms > 600_000 {
            return Err(Status::invalid_argument(format!(
                "timeout_ms: {} ms is more than the maximum of 600000 ms",
                r.timeout_ms
            )));
        }
        let timeout = Duration::from_millis(u64::from(if r.timeout_ms == 0 { 30_000 } else { r.timeout_ms }));
        let report = self.sup.shutdown(timeout).await;
        let sup = self.sup.clone();
        let why = format!("Shutdown RPC by token {}", caller.id());
        // Let this reply go out before the server stops accepting.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sup.request_exit(&why);
        });
        Ok(Response::new(convert::shutdown(&report)))
    }

    async fn reexec(&self, req: Request<pb::ReexecRequest>) -> Result<Response<pb::ReexecResponse>, Status> {
        let caller = auth::caller(&req)?;
        // As global as Shutdown: the whole daemon is replaced.
        self.sup.authorize_global("Reexec", &caller, Perm::Shutdown)?;
        if self.sup.is_shutting_down() {
            return Err(Status::failed_precondition("the daemon is already stopping or re-executing"));
        }
        let running = self.sup.running_instances();
        let sup = self.sup.clone();
        // Let this reply go out before the server stops accepting.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sup.leave(crate::supervisor::Leaving::Reexec);
        });
        Ok(Response::new(pb::ReexecResponse {
            running: running as u32,
            pid: std::process::id() as i32,
            binary: self.sup.config.exe.display().to_string(),
            image_started_at_unix_ms: self.sup.started_at_ms,
        }))
    }

    async fn info(&self, req: Request<pb::InfoRequest>) -> Result<Response<pb::DaemonInfo>, Status> {
        // Any valid token (checked before this handler runs): nothing here
        // is about a service.
        auth::caller(&req)?;
        let s = &self.sup;
        Ok(Response::new(pb::DaemonInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id() as i32,
            binary: s.config.exe.display().to_string(),
            image_started_at_unix_ms: s.started_at_ms,
            reexecuted: s.config.reexecuted,
            adopted: s.adopted.load(std::sync::atomic::Ordering::Relaxed),
            services: s.len() as u32,
        }))
    }
}
