//! File-descriptor capabilities (SPEC §6): opening what a grant names,
//! handing the descriptors to every spawn in the systemd socket-activation
//! convention, the per-instance control socket, and grant/revoke.
//!
//! Listening sockets and directory descriptors are opened once, when the
//! grant is made, and owned by the service: every instance (and every
//! restart) gets a copy of the same socket, so a connection waiting in its
//! backlog is served by the next instance instead of being refused.

use super::events::{now_ms, Event, EventKind};
use super::service::Service;
use super::{Error, Supervisor};
use crate::audit::{Kind, Record};
use crate::auth::{self, Perm, Token};
use crate::sandbox::plan::Bind;
use crate::sandbox::sys;
use crate::spec::grant::{self, GrantKind, GrantSpec, CONTROL_NAME};
use crate::spec::FieldError;
use crate::store::GrantRow;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Largest control-socket request.
pub const MAX_REQUEST: usize = 64 << 10;
/// How long the supervisor tries an outbound connection for a service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A grant a service holds, with what the supervisor opened for it.
pub struct Live {
    pub spec: GrantSpec,
    /// The listening socket or `O_PATH` directory (None for service and
    /// connect grants, which are made fresh for every spawn).
    pub fd: Option<Arc<OwnedFd>>,
    /// The token that granted it.
    pub token_id: String,
}

/// A message (and descriptor) the supervisor sends a service unasked:
/// another service connecting, or a grant made while it runs.
pub struct Push {
    pub msg: Value,
    pub fd: OwnedFd,
}

/// A service's capability state.
#[derive(Default)]
pub struct ServiceCaps {
    pub grants: Mutex<Vec<Live>>,
    /// Each running instance's control socket, for pushes.
    controls: Mutex<Vec<(u32, mpsc::Sender<Push>)>>,
    /// Pushes that arrived while no instance was listening (delivered to
    /// the next one, in order).
    pending: Mutex<Vec<Push>>,
    /// Per replica: ids of the tokens under which it obtained descriptors
    /// over its control socket (a revocation of any kills the instance).
    used_tokens: Mutex<Vec<(u32, Vec<String>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ServiceCaps {
    pub fn names(&self) -> Vec<(String, String)> {
        lock(&self.grants).iter().map(|l| (l.spec.name.clone(), l.spec.kind.to_string())).collect()
    }

    /// Sends `p` to one running instance, or (`queue`) keeps it for the next.
    fn push(&self, p: Push, queue: bool) {
        let senders: Vec<mpsc::Sender<Push>> = lock(&self.controls).iter().map(|(_, s)| s.clone()).collect();
        let mut p = p;
        for s in senders {
            match s.try_send(p) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(back) | mpsc::error::TrySendError::Closed(back)) => p = back,
            }
        }
        let mut q = lock(&self.pending);
        if queue && q.len() < 32 {
            q.push(p);
        }
    }
}

/// Is `path` the daemon's own state or runtime dir, inside one, or above one?
fn touches(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) || dir.starts_with(path)
}

/// Opens what a grant names (on the host, as the daemon). `reopen`: the
/// grant was opened by an earlier run of the daemon, so a socket file left
/// at a `listen:unix` path is its own and may be replaced.
pub fn open(sup: &Supervisor, g: &GrantSpec, reopen: bool) -> Result<Option<OwnedFd>, String> {
    match &g.kind {
        GrantKind::Dir { path, .. } => {
            let real = std::fs::canonicalize(path).map_err(|e| format!("dir {path}: {e}"))?;
            let real_s = real.to_string_lossy();
            if real_s != path.as_str() {
                return Err(format!("dir {path}: is reached through a symlink (to {real_s}); grant the real path"));
            }
            for own in [&sup.config.state_dir, &sup.config.runtime_dir] {
                let own = std::fs::canonicalize(own).unwrap_or_else(|_| own.clone());
                if touches(&real, &own) {
                    return Err(format!(
                        "dir {path}: overlaps the supervisor's own {} (its key and state)",
                        own.display()
                    ));
                }
            }
            let c = sys::cstring(path).map_err(|e| format!("dir {path}: {e}"))?;
            let fd = sys::open(&c, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .map_err(|e| format!("dir {path}: {e}"))?;
            Ok(Some(fd))
        }
        GrantKind::ListenTcp { addr } => {
            let l = std::net::TcpListener::bind(addr).map_err(|e| format!("listen:tcp:{addr}: {e}"))?;
            Ok(Some(OwnedFd::from(l)))
        }
        GrantKind::ListenUnix { path } => {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            for own in [&sup.config.state_dir, &sup.config.runtime_dir] {
                if touches(Path::new(path), own) {
                    return Err(format!("listen:unix:{path}: lies in the supervisor's own {}", own.display()));
                }
            }
            // Only the daemon's own socket from an earlier run is replaced:
            // a new grant never removes a file (another program's socket).
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if reopen && m.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                } else {
                    return Err(format!("listen:unix:{path}: exists (remove it first if it is stale)"));
                }
            }
            let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| format!("listen:unix:{path}: {e}"))?;
            // Who may connect is decided by the directory it lives in.
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
            Ok(Some(OwnedFd::from(l)))
        }
        GrantKind::Service { .. } | GrantKind::ConnectTcp { .. } => Ok(None),
    }
}

/// The resource a `connect:tcp` grant or request needs the `connect` permission on.
pub fn tcp_resource(host: &str, port: u16) -> String {
    format!("tcp:{host}:{port}")
}

/// What a deploy or grant needs of the caller's token beyond `deploy`:
/// `grant` on the service, `connect` on each outbound address, and
/// `grant` on every service it is connected to.
pub fn authorize_grants(
    sup: &Supervisor,
    rpc: &str,
    caller: &Token,
    service: &str,
    grants: &[GrantSpec],
    field: &str,
) -> Result<(), Error> {
    if grants.is_empty() {
        return Ok(());
    }
    sup.authorize(rpc, caller, Perm::Grant, service, None)?;
    for g in grants {
        match &g.kind {
            // Host paths and privileged ports are the host's to hand out:
            // a directory of the host, a socket file anywhere on it, a port
            // below 1024 (ssh, http, …) need the operator's `system`.
            GrantKind::Dir { .. } | GrantKind::ListenUnix { .. } => {
                need_system(sup, rpc, caller, service, g, "a host path")?
            }
            GrantKind::ListenTcp { addr } if addr.port() != 0 && addr.port() < 1024 => {
                need_system(sup, rpc, caller, service, g, "a privileged port")?
            }
            GrantKind::ConnectTcp { host, port } => {
                auth::authorize(caller.claims(), Perm::Connect, &tcp_resource(host, *port)).map_err(|why| {
                    sup.record_denied(rpc, service, Some(caller.id()), &why);
                    Error::Denied(format!("grant '{}': {why}", g.name))
                })?
            }
            GrantKind::Service { id } => {
                sup.authorize(rpc, caller, Perm::Grant, id, None)?;
                if sup.get(id).is_err() {
                    return Err(Error::Invalid(FieldError::invalid(
                        field,
                        format!("service:{id}: no such service (deploy it before the services that connect to it)"),
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn need_system(
    sup: &Supervisor,
    rpc: &str,
    caller: &Token,
    service: &str,
    g: &GrantSpec,
    what: &str,
) -> Result<(), Error> {
    auth::authorize(caller.claims(), Perm::System, &super::tokens::service_resource(service)).map_err(|why| {
        sup.record_denied(rpc, service, Some(caller.id()), &why);
        Error::Denied(format!("grant '{}' ({}) gives {what}: {why}", g.name, g.kind))
    })
}

/// Opens a new service's grants (before anything is committed).
/// `field(i)` names grant `i` in errors (`spec.grants[i]`, `fd.spec`).
pub fn open_all(
    sup: &Supervisor,
    grants: &[GrantSpec],
    token_id: &str,
    field: impl Fn(usize) -> String,
) -> Result<Vec<Live>, Error> {
    grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let fd = open(sup, g, false).map_err(|e| Error::Invalid(FieldError::invalid(field(i), e)))?;
            Ok(Live { spec: g.clone(), fd: fd.map(Arc::new), token_id: token_id.to_owned() })
        })
        .collect()
}

pub fn rows(service: &str, live: &[Live]) -> Vec<GrantRow> {
    live.iter()
        .map(|l| GrantRow {
            service_id: service.to_owned(),
            name: l.spec.name.clone(),
            spec: l.spec.kind.to_string(),
            token_id: l.token_id.clone(),
            created_at_ms: now_ms(),
        })
        .collect()
}

/// The descriptors one spawn gets, in `LISTEN_FDNAMES` order: the control
/// socket first, then each grant.
pub struct Passed {
    pub names: Vec<String>,
    pub fds: Vec<OwnedFd>,
    /// The supervisor's end of the control socket.
    pub control: OwnedFd,
    /// Granted directories, shown at their host path.
    pub binds: Vec<Bind>,
    /// With listen-only activation: how many (the first) are listening sockets.
    pub listen: Option<u32>,
    /// The service's own grant descriptors among them (listening sockets,
    /// directories), by grant name, for the launcher's vault.
    pub owned: Vec<(String, Arc<OwnedFd>)>,
}

/// Assembles a spawn's descriptors. A `service:` grant makes a fresh
/// socket pair (the target gets its end on its control socket); a
/// `connect:` grant connects now.
pub async fn for_spawn(sup: &Arc<Supervisor>, svc: &Arc<Service>, replica: u32) -> Result<Passed, String> {
    let (control, theirs) = sys::seqpacket_pair().map_err(|e| format!("step control socket: {e}"))?;
    let mut p = Passed { names: vec![], fds: vec![], control, binds: Vec::new(), listen: None, owned: Vec::new() };
    let mut planned: Vec<(GrantSpec, Option<Arc<OwnedFd>>)> =
        lock(&svc.caps.grants).iter().map(|l| (l.spec.clone(), l.fd.clone())).collect();
    let is_listen = |g: &GrantSpec| matches!(g.kind, GrantKind::ListenTcp { .. } | GrantKind::ListenUnix { .. });
    if svc.spec.listen_only {
        // Listening sockets first (announced), the rest after solo-control.
        planned.sort_by_key(|(g, _)| !is_listen(g));
        let n = planned.iter().filter(|(g, _)| is_listen(g)).count();
        p.listen = Some(n as u32);
        let rest = planned.split_off(n);
        for (g, fd) in planned {
            push_grant(sup, svc, replica, &mut p, g, fd).await?;
        }
        p.names.push(CONTROL_NAME.to_owned());
        p.fds.push(theirs);
        for (g, fd) in rest {
            push_grant(sup, svc, replica, &mut p, g, fd).await?;
        }
        return Ok(p);
    }
    p.names.push(CONTROL_NAME.to_owned());
    p.fds.push(theirs);
    for (g, fd) in planned {
        push_grant(sup, svc, replica, &mut p, g, fd).await?;
    }
    Ok(p)
}

async fn push_grant(
    sup: &Supervisor,
    svc: &Service,
    replica: u32,
    p: &mut Passed,
    g: GrantSpec,
    fd: Option<Arc<OwnedFd>>,
) -> Result<(), String> {
    if let Some(fd) = &fd {
        p.owned.push((g.name.clone(), fd.clone()));
    }
    let fd = match (&g.kind, fd) {
        (GrantKind::Dir { path, writable }, Some(fd)) => {
            p.binds.push(Bind { host: path.clone(), at: path.clone(), writable: *writable });
            fd.try_clone().map_err(|e| format!("grant {}: {e}", g.name))?
        }
        (_, Some(fd)) => fd.try_clone().map_err(|e| format!("grant {}: {e}", g.name))?,
        (GrantKind::Service { id }, None) => {
            channel(sup, svc.id(), replica, id).map_err(|e| format!("grant {}: {e}", g.name))?
        }
        (GrantKind::ConnectTcp { host, port }, None) => {
            connect_tcp(host, *port).await.map_err(|e| format!("grant {}: {e}", g.name))?
        }
        (_, None) => return Err(format!("grant {}: its descriptor was not opened", g.name)),
    };
    p.names.push(g.name);
    p.fds.push(fd);
    Ok(())
}

/// A connected stream pair from `from` to service `to`: one end for the
/// caller, the other pushed to `to` (now, or when it next starts).
fn channel(sup: &Supervisor, from: &str, replica: u32, to: &str) -> Result<OwnedFd, String> {
    let target = sup.get(to).map_err(|_| format!("service {to} does not exist"))?;
    let (mine, theirs) = sys::stream_pair().map_err(|e| format!("socketpair: {e}"))?;
    target.caps.push(Push { msg: json!({"event": "connection", "from": from, "replica": replica}), fd: theirs }, true);
    Ok(mine)
}

async fn connect_tcp(host: &str, port: u16) -> Result<OwnedFd, String> {
    let s =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port)))
            .await
            .map_err(|_| format!("connect {host}:{port}: timed out after {} s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let s = s.into_std().map_err(|e| format!("connect {host}:{port}: {e}"))?;
    // Services expect blocking sockets, as from accept(2) or connect(2).
    s.set_nonblocking(false).map_err(|e| format!("connect {host}:{port}: {e}"))?;
    Ok(OwnedFd::from(s))
}

/// Receives one request datagram: `None` when the instance closed its end.
/// The receive buffer is per thread: one per instance (64 KiB) would cost a
/// daemon holding 1,000 services 64 MiB.
fn recv_request(fd: RawFd) -> Result<Option<Vec<u8>>, sys::Errno> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; MAX_REQUEST]);
    }
    BUF.with_borrow_mut(|buf| {
        // Descriptors sent along are not used, and closed here.
        let (n, _ignored_fds) = sys::recv_with_fds(fd, buf)?;
        Ok((n > 0).then(|| buf[..n].to_vec()))
    })
}

/// Serves one instance's control socket until the instance closes it.
pub fn serve_control(sup: Arc<Supervisor>, svc: Arc<Service>, replica: u32, fd: OwnedFd) -> Result<(), String> {
    sys::set_nonblocking(fd.as_raw_fd()).map_err(|e| format!("control socket: {e}"))?;
    let sock = super::launch::register_fd(fd).map_err(|e| format!("control socket: {e}"))?;
    let (tx, mut rx) = mpsc::channel::<Push>(32);
    {
        let mut pending = lock(&svc.caps.pending);
        for p in pending.drain(..) {
            let _ = tx.try_send(p);
        }
    }
    lock(&svc.caps.controls).push((replica, tx.clone()));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = sock.readable() => {
                    let Ok(mut guard) = r else { break };
                    match guard.try_io(|s| recv_request(s.as_raw_fd()).map_err(Into::into)) {
                        Ok(Ok(None)) => break,
                        Ok(Ok(Some(request))) => {
                            let (reply, fd) = handle(&sup, &svc, replica, &request).await;
                            if send(&sock, &reply, fd).await.is_err() {
                                break;
                            }
                        }
                        Ok(Err(e)) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                            let reply = json!({"ok": false, "error": format!("request larger than {MAX_REQUEST} bytes")});
                            if send(&sock, &reply, None).await.is_err() {
                                break;
                            }
                        }
                        Ok(Err(_)) => break,
                        Err(_would_block) => continue,
                    }
                }
                p = rx.recv() => {
                    let Some(p) = p else { break };
                    if send(&sock, &p.msg, Some(p.fd)).await.is_err() {
                        break;
                    }
                }
            }
        }
        lock(&svc.caps.controls).retain(|(r, s)| !(*r == replica && s.same_channel(&tx)));
    });
    Ok(())
}

async fn send(sock: &tokio::io::unix::AsyncFd<OwnedFd>, msg: &Value, fd: Option<OwnedFd>) -> std::io::Result<()> {
    let data = msg.to_string().into_bytes();
    let fds: Vec<i32> = fd.iter().map(|f| f.as_raw_fd()).collect();
    loop {
        let mut guard = sock.writable().await?;
        match guard.try_io(|s| sys::send_with_fds(s.as_raw_fd(), &data, &fds).map_err(Into::into)) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Answers one request: `(reply, descriptor to pass)`.
async fn handle(sup: &Arc<Supervisor>, svc: &Arc<Service>, replica: u32, data: &[u8]) -> (Value, Option<OwnedFd>) {
    let req: Value = match serde_json::from_slice(data) {
        Ok(v @ Value::Object(_)) => v,
        _ => return (json!({"ok": false, "error": "a request is one JSON object per message"}), None),
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let reply = |r: Result<(Value, Option<OwnedFd>), String>| match r {
        Ok((mut v, fd)) => {
            v["ok"] = json!(true);
            v["id"] = id.clone();
            (v, fd)
        }
        Err(e) => (json!({"ok": false, "id": id.clone(), "error": e}), None),
    };
    let s = |k: &str| req.get(k).and_then(Value::as_str);
    match s("op") {
        Some("hello") => {
            let grants: Vec<Value> =
                svc.caps.names().into_iter().map(|(n, spec)| json!({"name": n, "spec": spec})).collect();
            reply(Ok((json!({"service": svc.id(), "replica": replica, "grants": grants}), None)))
        }
        Some("fd") => reply(refetch(svc, s("name").unwrap_or(""))),
        Some("connect") => reply(connect(sup, svc, replica, s("service"), s("tcp"), s("token")).await),
        Some(other) => reply(Err(format!("unknown op '{}': use hello, fd or connect", other.escape_debug()))),
        None => reply(Err("missing \"op\" (hello, fd or connect)".into())),
    }
}

/// A second copy of a granted listening socket or directory.
fn refetch(svc: &Service, name: &str) -> Result<(Value, Option<OwnedFd>), String> {
    let grants = lock(&svc.caps.grants);
    let l = grants
        .iter()
        .find(|l| l.spec.name == name)
        .ok_or_else(|| format!("no grant named '{}'", name.escape_debug()))?;
    let fd = l.fd.as_ref().ok_or_else(|| format!("grant '{name}' is made per connection: use op connect"))?;
    let fd = fd.try_clone().map_err(|e| format!("dup: {e}"))?;
    Ok((json!({"name": name}), Some(fd)))
}

/// A channel to another service or an outbound TCP connection: allowed
/// by a grant the service holds, or by a token it presents with the
/// `connect` permission on the target.
async fn connect(
    sup: &Arc<Supervisor>,
    svc: &Arc<Service>,
    replica: u32,
    service: Option<&str>,
    tcp: Option<&str>,
    token: Option<&str>,
) -> Result<(Value, Option<OwnedFd>), String> {
    // The same grammar and checks as a grant of the same thing.
    let kind = match (service, tcp) {
        (Some(to), None) => grant::parse("service", &format!("service:{to}"), "request"),
        (None, Some(addr)) => grant::parse("tcp", &format!("connect:tcp:{addr}"), "request"),
        _ => return Err("connect needs exactly one of \"service\" or \"tcp\"".into()),
    }
    .map_err(|e| e.to_string())?
    .kind;
    let resource = match &kind {
        GrantKind::Service { id } => super::tokens::service_resource(id),
        GrantKind::ConnectTcp { host, port } => tcp_resource(host, *port),
        _ => return Err("connect needs exactly one of \"service\" or \"tcp\"".into()),
    };
    let granted = lock(&svc.caps.grants).iter().any(|l| l.spec.kind == kind);
    let rpc = "control:connect";
    if !granted {
        let Some(text) = token else {
            let why = auth::Denied::Malformed(format!("no grant and no token for {resource}"));
            sup.record_denied(rpc, svc.id(), None, &why);
            return Err(format!("{resource} is not granted to this service; present a token with 'connect' on it"));
        };
        let t = sup.tokens.verify(text).map_err(|why| {
            sup.record_denied(rpc, svc.id(), Token::parse(text).ok().as_ref().map(Token::id), &why);
            why.to_string()
        })?;
        auth::authorize(t.claims(), Perm::Connect, &resource).map_err(|why| {
            sup.record_denied(rpc, svc.id(), Some(t.id()), &why);
            why.to_string()
        })?;
        let ids: Vec<String> = t.chain().iter().map(|c| c.id.clone()).collect();
        lock(&svc.caps.used_tokens).push((replica, ids));
        // A capability used under a token: recorded (coalesced per token
        // and target), so explain can tell what a token was used for.
        sup.audit_coalesced(
            &format!("use/{}/{replica}/{resource}/{}", svc.id(), t.id()),
            Record::new(Kind::Grant, svc.id())
                .by(t.id())
                .message(format!("replica {replica} was connected to {resource} under token {}", t.id()))
                .with("replica", replica)
                .with("via", "token")
                .with("resource", resource.clone()),
        );
    }
    let fd = match &kind {
        GrantKind::Service { id } => channel(sup, svc.id(), replica, id)?,
        GrantKind::ConnectTcp { host, port } => connect_tcp(host, *port).await?,
        _ => return Err("connect needs exactly one of \"service\" or \"tcp\"".into()),
    };
    Ok((json!({"resource": resource}), Some(fd)))
}

impl Supervisor {
    /// Adds an fd grant to a service: held from now on, pushed to its
    /// running instances, and passed to every later spawn.
    pub async fn grant_fd(&self, caller: &Token, service: &str, spec: &str, name: &str) -> Result<String, Error> {
        let g = grant::parse("fd.spec", spec, name).map_err(Error::Invalid)?;
        // Permission first: a caller without it learns nothing, not even
        // whether the service exists.
        authorize_grants(self, "GrantCapability", caller, service, std::slice::from_ref(&g), "fd.spec")?;
        let svc = self.get(service)?;
        self.not_updating(service)?;
        if lock(&svc.caps.grants).iter().any(|l| l.spec.name == g.name) {
            return Err(Error::Invalid(FieldError::invalid(
                "fd.name",
                format!(
                    "service {service} already holds a grant named '{}' (revoke {service}/{} first)",
                    g.name, g.name
                ),
            )));
        }
        if lock(&svc.caps.grants).len() >= grant::MAX_GRANTS {
            return Err(Error::Exhausted(format!("service {service} already holds {} grants", grant::MAX_GRANTS)));
        }
        let mut live = open_all(self, std::slice::from_ref(&g), caller.id(), |_| "fd.spec".to_owned())?;
        self.store.put_grants(&rows(service, &live)).await?;
        let l = live.pop().ok_or_else(|| Error::Internal("no grant opened".into()))?;
        if let Some(fd) = l.fd.as_ref().and_then(|f| f.try_clone().ok()) {
            // To a running instance only: the next start passes it anyway.
            svc.caps
                .push(Push { msg: json!({"event": "grant", "name": g.name, "spec": g.kind.to_string()}), fd }, false);
        }
        lock(&svc.caps.grants).push(l);
        let id = format!("{service}/{}", g.name);
        self.audit(
            Record::new(Kind::Grant, service)
                .by(caller.id())
                .message(format!("granted {} as '{}'", g.kind, g.name))
                .with("grant", g.name.clone())
                .with("spec", g.kind.to_string()),
        );
        let mut e = Event::new(EventKind::Granted, service, 0);
        e.message = format!("fd grant {id} ({}) by token {}", g.kind, caller.id());
        self.bus.emit(e);
        Ok(id)
    }

    /// Revokes fd grant `SERVICE/NAME`. A descriptor already passed cannot
    /// be pulled out of a process, so every running instance of the
    /// service is killed and, by its restart policy, started again without it.
    pub async fn revoke_fd(&self, caller: &Token, grant_id: &str) -> Result<u32, Error> {
        let bad = || {
            Error::Invalid(FieldError::invalid(
                "grant_id",
                format!("'{}' is not SERVICE/NAME", grant_id.escape_debug()),
            ))
        };
        let (service, name) = grant_id.split_once('/').ok_or_else(bad)?;
        crate::spec::validate_service_id(service).map_err(|_| bad())?;
        self.authorize("RevokeCapability", caller, Perm::Grant, service, None)?;
        let svc = self.get(service)?;
        self.not_updating(service)?;
        let removed = {
            let mut g = lock(&svc.caps.grants);
            let before = g.len();
            g.retain(|l| l.spec.name != name);
            before - g.len()
        };
        if removed == 0 {
            return Err(Error::NoSuch(format!("service {service} holds no grant named '{name}'")));
        }
        self.store.delete_grants(service, Some(name)).await?;
        let killed = self.kill_holders(&svc, |_| true);
        self.audit(
            Record::new(Kind::GrantRevoke, service)
                .by(caller.id())
                .message(format!("grant '{name}' revoked; {killed} running instance(s) that held it killed"))
                .with("grant", name)
                .with("killed", killed),
        );
        let mut e = Event::new(EventKind::Revoked, service, 0);
        e.message = format!(
            "fd grant {grant_id} revoked by token {}; {killed} running instance(s) that held it killed, to be restarted without it",
            caller.id()
        );
        self.bus.emit(e);
        Ok(removed as u32)
    }

    /// Refuses a grant change while an update replaces the service's
    /// instances (the update's new revision took its grants at the start).
    fn not_updating(&self, service: &str) -> Result<(), Error> {
        match self.updates.active(service) {
            Some(run) => Err(Error::Precondition(format!(
                "service {service} is being updated to revision {}; change its grants when the update has ended (or with the update: solo update {service} --grant …)",
                run.to.revision
            ))),
            None => Ok(()),
        }
    }

    /// After token revocations: kills every instance that obtained a
    /// descriptor over its control socket under one of `ids`.
    pub fn enforce_token_revocation(&self, ids: &[String]) {
        // Both revisions of a service being updated.
        let mut svcs = self.all();
        for run in self.updates.all_active() {
            for s in [&run.from, &run.to] {
                if !svcs.iter().any(|x| Arc::ptr_eq(x, s)) {
                    svcs.push(s.clone());
                }
            }
        }
        for svc in svcs {
            let holders: Vec<u32> = {
                let mut used = lock(&svc.caps.used_tokens);
                let hit: Vec<u32> =
                    used.iter().filter(|(_, chain)| chain.iter().any(|c| ids.contains(c))).map(|(r, _)| *r).collect();
                used.retain(|(r, _)| !hit.contains(r));
                hit
            };
            if holders.is_empty() {
                continue;
            }
            let n = self.kill_holders(&svc, |r| holders.contains(&r));
            self.audit(
                Record::new(Kind::GrantRevoke, svc.id())
                    .message(format!("{n} instance(s) killed: they held descriptors obtained under a revoked token"))
                    .with("replicas", holders.clone())
                    .with("tokens", ids.to_vec()),
            );
            let mut e = Event::new(EventKind::Revoked, svc.id(), 0);
            e.message = format!("{n} instance(s) killed: they held descriptors obtained under a revoked token");
            self.bus.emit(e);
        }
    }

    /// SIGKILLs the running instances `which` selects; returns how many.
    fn kill_holders(&self, svc: &Service, which: impl Fn(u32) -> bool) -> usize {
        let rt = svc.runtime();
        let mut n = 0;
        for i in rt.instances.iter().filter(|i| which(i.replica)) {
            if let Some(pidfd) = &i.pidfd {
                if i.pid != 0 && sys::pidfd_send_signal(pidfd, libc::SIGKILL).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }
}

/// Forgets an instance's token uses when it ends.
pub fn instance_ended(svc: &Service, replica: u32) {
    lock(&svc.caps.used_tokens).retain(|(r, _)| *r != replica);
}
