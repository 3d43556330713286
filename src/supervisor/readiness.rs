//! Readiness (SPEC §4): an instance counts as running when it says so on
//! `$NOTIFY_SOCKET` (`READY=1`, the sd_notify protocol) or when its
//! granted listening socket accepts a probe connection — within
//! `startup_timeout_ms`, else it is killed and the start counts as failed.
//!
//! The TCP probe cannot just connect: the supervisor owns the listening
//! socket, so the kernel completes the handshake before the service ever
//! calls accept(2). It connects, then watches the socket's accept queue
//! (`tcp_info.tcpi_unacked`) until the service has taken the probe out.
//! The socket is shared by every instance of the service (other replicas,
//! and the old revision during an update), so the probe counts only when a
//! process of *this* instance holds the accepted connection: its inode, from
//! `/proc/net/tcp{,6}`, is among the instance's descriptors. Accepted by
//! another instance, the probe is closed and sent again.

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
        let dir = sup.config.runtime_dir.join("notify").join(svc.instance_name(replica));
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
pub fn wait(
    svc: &Arc<Service>,
    notify: Option<NotifySocket>,
    cg: &crate::sandbox::cgroup::InstanceCgroup,
) -> Option<super::instance::ReadyWait> {
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
            let cg = cg.clone();
            Some(Box::pin(async move {
                tokio::time::timeout(timeout, ready_tcp(addr, &fd, &cg)).await.map_err(|_| {
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

async fn ready_tcp(addr: SocketAddr, listener: &OwnedFd, cg: &crate::sandbox::cgroup::InstanceCgroup) {
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
            // Taken off the queue within 100 ms: an instance accepts.
            for _ in 0..50 {
                if sys::accept_backlog(listener.as_raw_fd()).is_ok_and(|n| n == 0) {
                    let mine = match conn.local_addr() {
                        Ok(local) => accepted_by(cg, local.port(), probe_addr.port()).await,
                        Err(_) => None,
                    };
                    // Unknown (the connection was already closed, or /proc
                    // unreadable): as before sharing, the accept counts.
                    if mine != Some(false) {
                        return;
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            drop(conn);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a process of the instance in `cg` holds the server side of the
/// probe connection from local port `probe_port` to `listen_port`:
/// `Some(false)` when another process does, `None` when it cannot be told.
async fn accepted_by(cg: &crate::sandbox::cgroup::InstanceCgroup, probe_port: u16, listen_port: u16) -> Option<bool> {
    // accept(2) installs the descriptor right after it takes the
    // connection off the queue: look a few times.
    for _ in 0..10 {
        let inode = server_inode(probe_port, listen_port)?;
        let pids = cg.pids();
        if pids.is_empty() {
            return None;
        }
        let wanted = format!("socket:[{inode}]");
        let held = pids.iter().any(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
                rd.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.as_os_str() == wanted.as_str()))
            })
        });
        if held {
            return Some(true);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Some(false)
}

/// The inode of the accepted socket (local port `listen_port`, remote port
/// `probe_port`) in the daemon's network namespace, where granted sockets live.
fn server_inode(probe_port: u16, listen_port: u16) -> Option<u64> {
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"].iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().skip(1).find_map(|l| parse_tcp_row(l, probe_port, listen_port))
    })
}

/// One row of `/proc/net/tcp{,6}`: its inode when it is the connection
/// from `remote` to local port `local`.
fn parse_tcp_row(line: &str, remote: u16, local: u16) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let port = |a: &str| a.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    let (l, r, state, inode) = (port(f.get(1)?)?, port(f.get(2)?)?, *f.get(3)?, f.get(9)?.parse::<u64>().ok()?);
    // 0A is LISTEN; a live accepted connection has an inode.
    (l == local && r == remote && state != "0A" && inode != 0).then_some(inode)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tcp_rows_are_matched_by_both_ports() {
        // Ports 0x1F90 = 8080 and 0xD3A2 = 54178.
        let row = "   3: 0100007F:1F90 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000  1000        0 424242 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(super::parse_tcp_row(row, 54178, 8080), Some(424242));
        assert_eq!(super::parse_tcp_row(row, 54179, 8080), None);
        let listen =
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1";
        assert_eq!(super::parse_tcp_row(listen, 0, 8080), None);
        let v6 = "   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D3A2 01 00000000:00000000 00:00000000 00000000     0        0 777 1";
        assert_eq!(super::parse_tcp_row(v6, 54178, 8080), Some(777));
    }
}
