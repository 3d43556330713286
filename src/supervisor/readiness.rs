//! Readiness (SPEC §4): an instance counts as running when it says so on
//! `$NOTIFY_SOCKET` (`READY=1`, the sd_notify protocol) or when its
//! granted listening socket accepts a probe connection — within
//! `startup_timeout_ms`, else it is killed and the start counts as failed.
//!
//! The TCP probe cannot just connect: the supervisor owns the listening
//! socket, so the kernel completes the handshake before the service ever
//! calls accept(2). It connects, then watches the socket's accept queue
//! (`tcp_info.tcpi_unacked`) until the service has taken the probe out.

use super::service::Service;
use super::Supervisor;
use crate::sandbox::plan::Bind;
use crate::sandbox::sys;
use crate::spec::grant::{GrantKind, ReadinessKind};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the notify socket's directory appears in the service's view.
pub const NOTIFY_DIR: &str = "/run/solo";
pub const NOTIFY_SOCKET: &str = "/run/solo/notify";

/// One instance's `$NOTIFY_SOCKET`, bound by the supervisor in a
/// directory of its own that the view shows read-only at /run/solo.
pub struct NotifySocket {
    dir: PathBuf,
    sock: tokio::net::UnixDatagram,
}

impl NotifySocket {
    pub fn open(sup: &Supervisor, svc: &Service, replica: u32) -> Result<NotifySocket, String> {
        let err = |e: std::io::Error| format!("step notify socket: {e}");
        let dir = sup.config.runtime_dir.join("notify").join(format!("{}.{replica}", svc.id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(err)?;
        let path = dir.join("notify");
        let sock = tokio::net::UnixDatagram::bind(&path).map_err(err)?;
        // Only the service's uid may reach it.
        for p in [&dir, &path] {
            std::os::unix::fs::chown(p, Some(svc.uid), Some(svc.uid)).map_err(err)?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).map_err(err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        Ok(NotifySocket { dir, sock })
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl NotifySocket {
    /// Its directory, read-only at [`NOTIFY_DIR`] in the view.
    pub fn bind(&self) -> Bind {
        Bind { host: self.dir.display().to_string(), at: NOTIFY_DIR.into(), writable: false }
    }
}

/// The wait for readiness, if the service asks for one.
pub fn wait(svc: &Arc<Service>, notify: Option<NotifySocket>) -> Option<super::instance::ReadyWait> {
    let timeout = Duration::from_millis(u64::from(svc.spec.readiness.startup_timeout_ms));
    let ms = timeout.as_millis();
    match &svc.spec.readiness.kind {
        ReadinessKind::None => None,
        ReadinessKind::Notify => {
            let n = notify?;
            Some(Box::pin(async move {
                tokio::time::timeout(timeout, ready_notify(&n))
                    .await
                    .map_err(|_| format!("not ready within {ms} ms: no READY=1 on $NOTIFY_SOCKET; killed"))
            }))
        }
        ReadinessKind::Tcp { grant } => {
            let found = svc.caps.grants.lock().unwrap_or_else(|p| p.into_inner()).iter().find_map(|l| {
                match (&l.spec.kind, &l.fd) {
                    (GrantKind::ListenTcp { addr }, Some(fd)) if l.spec.name == *grant => Some((*addr, fd.clone())),
                    _ => None,
                }
            });
            // The grant was revoked: nothing left to probe, so the instance
            // is ready when it runs (as with no readiness).
            let (addr, fd) = found?;
            let grant = grant.clone();
            Some(Box::pin(async move {
                tokio::time::timeout(timeout, ready_tcp(addr, &fd)).await.map_err(|_| {
                    format!("not ready within {ms} ms: no accept(2) on granted socket '{grant}' ({addr}); killed")
                })
            }))
        }
    }
}

async fn ready_notify(n: &NotifySocket) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok(len) = n.sock.recv(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        if String::from_utf8_lossy(&buf[..len]).lines().any(|l| l.trim() == "READY=1") {
            return;
        }
    }
}

async fn ready_tcp(addr: SocketAddr, listener: &OwnedFd) {
    let mut probe_addr = addr;
    if addr.ip().is_unspecified() {
        probe_addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    if probe_addr.port() == 0 {
        if let Ok(local) = sys::local_addr(listener.as_raw_fd()) {
            probe_addr.set_port(local.port());
        }
    }
    loop {
        if let Ok(conn) = tokio::net::TcpStream::connect(probe_addr).await {
            // Taken off the queue within 100 ms: the service accepts.
            for _ in 0..50 {
                if sys::accept_backlog(listener.as_raw_fd()).is_ok_and(|n| n == 0) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            drop(conn);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
