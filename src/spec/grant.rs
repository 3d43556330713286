//! File-descriptor grants (SPEC §6) and readiness, parsed and validated.
//! Grammar:
//!
//! ```text
//! dir:PATH:ro | dir:PATH:rw        an O_PATH directory fd; PATH also in the view and Landlock
//! listen:tcp:ADDR:PORT             a TCP socket the supervisor binds and keeps across restarts
//! listen:unix:PATH                 a Unix stream socket the supervisor binds and keeps
//! service:ID                       a connected stream socket to service ID
//! connect:tcp:HOST:PORT            an outbound connection the supervisor makes (needs a token with `connect`)
//! ```

use super::validate::FieldError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Largest number of grants a service may hold (the launcher passes at
/// most 64 descriptors, one of them the control socket).
pub const MAX_GRANTS: usize = 32;

/// The name of the control socket in `LISTEN_FDNAMES`.
pub const CONTROL_NAME: &str = "solo-control";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GrantKind {
    Dir { path: String, writable: bool },
    ListenTcp { addr: SocketAddr },
    ListenUnix { path: String },
    Service { id: String },
    ConnectTcp { host: String, port: u16 },
}

/// One grant: what, and its name in `LISTEN_FDNAMES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSpec {
    pub name: String,
    #[serde(flatten)]
    pub kind: GrantKind,
}

impl std::fmt::Display for GrantKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantKind::Dir { path, writable } => write!(f, "dir:{path}:{}", if *writable { "rw" } else { "ro" }),
            GrantKind::ListenTcp { addr } => write!(f, "listen:tcp:{addr}"),
            GrantKind::ListenUnix { path } => write!(f, "listen:unix:{path}"),
            GrantKind::Service { id } => write!(f, "service:{id}"),
            GrantKind::ConnectTcp { host, port } => write!(f, "connect:tcp:{host}:{port}"),
        }
    }
}

/// Paths no grant may expose or shadow: the kernel's interfaces, the
/// view's own mounts, and the host root itself.
const FORBIDDEN: &[&str] = &["/proc", "/sys", "/dev", "/app", "/data", "/tmp", "/run/solo"];

fn clean_path(field: &str, p: &str) -> Result<String, FieldError> {
    let bad = |why: &str| FieldError::invalid(field, format!("'{}' {why}", p.escape_debug()));
    if !p.starts_with('/') {
        return Err(bad("is not an absolute path"));
    }
    if p.len() > 1024 {
        return Err(bad("is longer than 1024 bytes"));
    }
    if p.chars().any(|c| c.is_control() || c == ':') {
        return Err(bad("contains a control character or ':'"));
    }
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    if parts.iter().any(|s| *s == "." || *s == "..") {
        return Err(bad("contains '.' or '..'"));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Parses one grant `spec` (field `field`), naming it `name` or a default.
pub fn parse(field: &str, spec: &str, name: &str) -> Result<GrantSpec, FieldError> {
    let bad = |why: String| FieldError::invalid(field, why);
    let kind = if let Some(rest) = spec.strip_prefix("dir:") {
        let (path, mode) =
            rest.rsplit_once(':').ok_or_else(|| bad(format!("'{spec}': expected dir:PATH:ro or dir:PATH:rw")))?;
        let writable = match mode {
            "ro" => false,
            "rw" => true,
            m => return Err(bad(format!("'{m}' is not ro or rw (dir:PATH:ro|rw)"))),
        };
        let path = clean_path(field, path)?;
        if path == "/" || FORBIDDEN.iter().any(|f| under(&path, f) || under(f, &path)) {
            return Err(bad(format!(
                "'{path}' cannot be granted: it is, contains or lies in one of / {} (the kernel's interfaces and the view's own mounts)",
                FORBIDDEN.join(" ")
            )));
        }
        GrantKind::Dir { path, writable }
    } else if let Some(rest) = spec.strip_prefix("listen:tcp:") {
        let addr: SocketAddr =
            rest.parse().map_err(|_| bad(format!("'{rest}' is not ADDR:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)")))?;
        GrantKind::ListenTcp { addr }
    } else if let Some(rest) = spec.strip_prefix("listen:unix:") {
        let path = clean_path(field, rest)?;
        if path.len() > 107 {
            return Err(bad(format!("'{path}' is longer than a Unix socket path may be (107 bytes)")));
        }
        GrantKind::ListenUnix { path }
    } else if let Some(id) = spec.strip_prefix("service:") {
        super::ServiceId::parse(id).map_err(|r| bad(format!("service:{id}: {r}")))?;
        GrantKind::Service { id: id.to_owned() }
    } else if let Some(rest) = spec.strip_prefix("connect:tcp:") {
        let (host, port) =
            rest.rsplit_once(':').ok_or_else(|| bad(format!("'{rest}' is not HOST:PORT (connect:tcp:HOST:PORT)")))?;
        let port: u16 =
            port.parse().ok().filter(|p| *p != 0).ok_or_else(|| bad(format!("'{port}' is not a port 1-65535")))?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
        if !host_ok {
            return Err(bad(format!("'{}' is not a host name or address", host.escape_debug())));
        }
        GrantKind::ConnectTcp { host: host.to_owned(), port }
    } else {
        return Err(bad(format!(
            "'{}' is not a grant: use dir:PATH:ro|rw, listen:tcp:ADDR:PORT, listen:unix:PATH, service:ID or connect:tcp:HOST:PORT",
            spec.escape_debug()
        )));
    };
    let name = if name.is_empty() { default_name(&kind) } else { name.to_owned() };
    check_name(field, &name)?;
    Ok(GrantSpec { name, kind })
}

/// systemd's rule for `LISTEN_FDNAMES`: 1–255 characters, no ':' and no
/// control characters; Solo also reserves `solo-control`.
pub fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(FieldError::invalid(
            field,
            format!("name '{}' must be 1-255 letters, digits, '-', '_' or '.'", name.escape_debug()),
        ));
    }
    if name == CONTROL_NAME {
        return Err(FieldError::invalid(field, format!("name '{CONTROL_NAME}' is reserved for the control socket")));
    }
    Ok(())
}

fn default_name(k: &GrantKind) -> String {
    let safe =
        |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect::<String>();
    let n = match k {
        GrantKind::Dir { path, .. } => format!("dir-{}", safe(path.rsplit('/').next().unwrap_or("root"))),
        GrantKind::ListenTcp { addr } => format!("tcp-{}", addr.port()),
        GrantKind::ListenUnix { path } => format!("unix-{}", safe(path.rsplit('/').next().unwrap_or("sock"))),
        GrantKind::Service { id } => id.clone(),
        GrantKind::ConnectTcp { host, port } => format!("connect-{}-{port}", safe(host)),
    };
    n.chars().take(255).collect()
}

/// Validates a service's list: names unique, count bounded.
pub fn parse_all(raw: &[(String, String)]) -> Result<Vec<GrantSpec>, FieldError> {
    if raw.len() > MAX_GRANTS {
        return Err(FieldError::invalid(
            "spec.grants",
            format!("{} grants is more than the maximum of {MAX_GRANTS}", raw.len()),
        ));
    }
    let mut out: Vec<GrantSpec> = Vec::with_capacity(raw.len());
    for (i, (spec, name)) in raw.iter().enumerate() {
        let g = parse(&format!("spec.grants[{i}]"), spec, name)?;
        if out.iter().any(|o| o.name == g.name) {
            return Err(FieldError::invalid(format!("spec.grants[{i}].name"), format!("'{}' is used twice", g.name)));
        }
        out.push(g);
    }
    Ok(out)
}

/// When an instance counts as running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReadinessKind {
    /// As soon as exec succeeded.
    #[default]
    None,
    /// When it sends `READY=1` to `$NOTIFY_SOCKET` (sd_notify).
    Notify,
    /// When the supervisor can connect to this listen grant.
    Tcp { grant: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Readiness {
    #[serde(flatten)]
    pub kind: ReadinessKind,
    /// How long an instance has to become ready before it is killed and
    /// counted as a failed start.
    pub startup_timeout_ms: u32,
}

impl Readiness {
    pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;
    pub const MAX_TIMEOUT_MS: u32 = 600_000;
}

/// Validates readiness against the service's grants.
pub fn readiness(kind: &str, timeout_ms: u32, tcp_grant: &str, grants: &[GrantSpec]) -> Result<Readiness, FieldError> {
    let startup_timeout_ms = super::validate::zero_means_default(
        "spec.readiness.startup_timeout_ms",
        timeout_ms,
        Readiness::DEFAULT_TIMEOUT_MS,
        Readiness::MAX_TIMEOUT_MS,
        " ms",
    )?;
    let kind = match kind {
        "" | "none" => ReadinessKind::None,
        "notify" => ReadinessKind::Notify,
        "tcp" => {
            let g = grants.iter().find(|g| g.name == tcp_grant).ok_or_else(|| {
                FieldError::invalid(
                    "spec.readiness.tcp_grant",
                    format!(
                        "'{}' names no grant of this service (give the name of a listen:tcp grant)",
                        tcp_grant.escape_debug()
                    ),
                )
            })?;
            if !matches!(g.kind, GrantKind::ListenTcp { .. }) {
                return Err(FieldError::invalid(
                    "spec.readiness.tcp_grant",
                    format!("grant '{}' is {}, not a listen:tcp grant", g.name, g.kind),
                ));
            }
            ReadinessKind::Tcp { grant: tcp_grant.to_owned() }
        }
        other => {
            return Err(FieldError::invalid("spec.readiness.kind", format!("'{other}' is not none, notify or tcp")))
        }
    };
    Ok(Readiness { kind, startup_timeout_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> GrantSpec {
        parse("g", s, "").unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn err(s: &str) -> String {
        match parse("g", s, "") {
            Ok(g) => panic!("{s} parsed as {g:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn grants_parse_and_print_back() {
        for s in [
            "dir:/srv/data:ro",
            "dir:/srv/data:rw",
            "listen:tcp:127.0.0.1:8080",
            "listen:tcp:[::1]:80",
            "listen:unix:/run/web.sock",
            "service:db",
            "connect:tcp:db.internal:5432",
        ] {
            assert_eq!(ok(s).kind.to_string(), s);
        }
        assert_eq!(ok("dir:/srv//data/:ro").kind.to_string(), "dir:/srv/data:ro");
        assert_eq!(ok("listen:tcp:127.0.0.1:8080").name, "tcp-8080");
        assert_eq!(ok("service:db").name, "db");
        assert_eq!(parse("g", "service:db", "backend").map(|g| g.name).ok(), Some("backend".to_owned()));
    }

    #[test]
    fn bad_grants_name_the_problem() {
        assert!(err("file:/etc/passwd").contains("not a grant"));
        assert!(err("dir:/srv").contains("expected dir:PATH:ro"));
        assert!(err("dir:/srv:rx").contains("not ro or rw"));
        assert!(err("dir:relative:ro").contains("absolute"));
        assert!(err("dir:/srv/../etc:ro").contains("'..'"));
        for p in ["/", "/proc", "/proc/1", "/sys/fs", "/dev", "/tmp", "/data", "/run/solo/x", "/run"] {
            assert!(err(&format!("dir:{p}:ro")).contains("cannot be granted"), "{p}");
        }
        assert!(err("listen:tcp:localhost:80").contains("ADDR:PORT"));
        assert!(err("listen:tcp:127.0.0.1:99999").contains("ADDR:PORT"));
        assert!(err("service:Bad_Id").contains("service:Bad_Id"));
        assert!(err("connect:tcp:db:0").contains("port"));
        assert!(err("connect:tcp:d b:80").contains("host"));
        assert!(parse("g", "service:db", "a:b").is_err());
        assert!(parse("g", "service:db", CONTROL_NAME).is_err());
        let dup = parse_all(&[("service:a".into(), "x".into()), ("service:b".into(), "x".into())]);
        assert!(dup.is_err_and(|e| e.to_string().contains("used twice")));
    }

    #[test]
    fn readiness_checks_its_grant() {
        let g = vec![ok("listen:tcp:127.0.0.1:8080"), ok("service:db")];
        assert_eq!(readiness("", 0, "", &g).map(|r| r.startup_timeout_ms).ok(), Some(30_000));
        assert!(readiness("tcp", 0, "tcp-8080", &g).is_ok());
        assert!(readiness("tcp", 0, "db", &g).is_err_and(|e| e.to_string().contains("not a listen:tcp")));
        assert!(readiness("tcp", 0, "nope", &g).is_err_and(|e| e.to_string().contains("names no grant")));
        assert!(readiness("notify", 700_000, "", &g).is_err_and(|e| e.to_string().contains("maximum")));
    }
}
