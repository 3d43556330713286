//! Validation of everything an agent can send. Every error names the field
//! (as its path in the request, e.g. `spec.limits.memory_bytes`) and the
//! reason, and says which gRPC code it maps to.

use super::{
    ArtifactSpec, LimitAction, Limits, ProfileDefaults, RestartPolicy, RestartSpec, ServiceId, ServiceSpec, Tier,
    INTERPRETERS,
};
use std::collections::BTreeMap;

/// Which status code a validation failure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The value is malformed or out of range.
    Invalid,
    /// The value is well-formed but larger than this daemon accepts.
    TooLarge,
    /// The value asks for a feature that is not built yet.
    Unimplemented,
    /// The value names something this daemon does not have (an artifact
    /// digest it has not stored).
    NotFound,
}

/// A rejected field: `field: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
    pub kind: FieldErrorKind,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into(), kind: FieldErrorKind::Invalid }
    }
    pub fn too_large(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into(), kind: FieldErrorKind::TooLarge }
    }
    pub fn unimplemented(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into(), kind: FieldErrorKind::Unimplemented }
    }
    pub fn not_found(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into(), kind: FieldErrorKind::NotFound }
    }
}

/// Checks `[a-z0-9][a-z0-9-]{0,62}`; the error says what is wrong.
pub fn validate_service_id(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!("is {} characters long; at most 63 are allowed", s.len()));
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(format!(
            "'{}' must start with a lowercase letter or digit ([a-z0-9][a-z0-9-]{{0,62}})",
            s.escape_debug()
        ));
    }
    if let Some(bad) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!(
            "'{}' contains '{}'; only a-z, 0-9 and '-' are allowed",
            s.escape_debug(),
            bad.escape_debug()
        ));
    }
    Ok(())
}

/// Limits on request sizes (argv/env are bounded well below the kernel's
/// `ARG_MAX` so a request cannot make exec fail with E2BIG at launch time).
pub const MAX_ARGS: usize = 1024;
pub const MAX_ENV: usize = 1024;
pub const MAX_ARG_BYTES: usize = 128 << 10;
pub const MAX_ARGV_ENV_TOTAL: usize = 1 << 20;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_VALUE: usize = 256;
pub const MAX_HOST_PATH: usize = 4096;

/// Environment names the supervisor sets itself; a spec may not override them.
pub const RESERVED_ENV: &[&str] = &["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET"];
pub const RESERVED_ENV_PREFIX: &str = "SOLO_";

/// A spec as received: zero values mean "the default". Built by the API
/// adapter from the proto message; [`Validator::service`] turns it into a
/// [`ServiceSpec`] or names the first bad field.
#[derive(Debug, Clone, Default)]
pub struct RawSpec {
    pub id: String,
    pub artifact: Option<ArtifactSpec>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub profile: String,
    pub memory_bytes: u64,
    pub memory_high_bytes: u64,
    pub cpu_weight: u32,
    pub cpu_max_millicores: u32,
    pub max_pids: u32,
    pub max_open_files: u32,
    /// `kill`, `throttle`, `warn`, or empty for the default.
    pub limit_exceeded_action: String,
    pub restart_policy: Option<RestartPolicy>,
    pub max_restarts: u32,
    pub within_seconds: u32,
    pub backoff_initial_ms: u32,
    pub backoff_max_ms: u32,
    pub backoff_jitter: f64,
    pub reset_after_seconds: u32,
    pub replicas: u32,
    pub tier: Option<Tier>,
    pub shutdown_timeout_ms: u32,
    pub labels: BTreeMap<String, String>,
    /// Readiness: kind ("", "none", "notify", "tcp"), timeout, tcp grant name.
    pub readiness_kind: String,
    pub startup_timeout_ms: u32,
    pub tcp_grant: String,
    /// fd grants: (spec, name).
    pub grants: Vec<(String, String)>,
    pub listen_only: bool,
}

/// What the daemon is configured to accept.
#[derive(Debug, Clone)]
pub struct Validator {
    pub upload_limit: u64,
    /// Known profiles and the limit defaults each provides.
    pub profiles: BTreeMap<String, ProfileDefaults>,
    /// The largest RLIMIT_NOFILE the launcher can grant on this host.
    pub max_open_files: u32,
}

impl Validator {
    /// Validates every field of `raw`, in request order, and resolves defaults.
    pub fn service(&self, raw: RawSpec) -> Result<ServiceSpec, FieldError> {
        self.service_keeping(raw, None)
    }

    /// [`Self::service`] for an update: without an artifact in `raw`, the
    /// one the service runs (`keep`, already stored) is kept.
    pub fn service_keeping(&self, raw: RawSpec, keep: Option<ArtifactSpec>) -> Result<ServiceSpec, FieldError> {
        // Borrowing checks first (fields are reported in request order below).
        let tier = raw.tier.unwrap_or(Tier::User);
        let limits_raw = raw_limits(&raw);
        let restart = restart(&raw, tier);
        let id = ServiceId::parse(&raw.id).map_err(|r| FieldError::invalid("spec.id", r))?;
        let artifact = match (raw.artifact, keep) {
            // Validated when it was stored.
            (None, Some(kept)) => kept,
            (given, _) => self.artifact(given)?,
        };
        let (args, env) = args_env(raw.args, raw.env)?;
        let profile = self.profile(raw.profile)?;
        let defaults = self.profiles.get(&profile).copied().unwrap_or_default();
        let limits = limits(&limits_raw, tier, &defaults)?;
        if limits.max_open_files > self.max_open_files {
            return Err(FieldError::invalid(
                "spec.limits.max_open_files",
                format!(
                    "{} is above {}, the most this host lets the supervisor grant (fs.nr_open, or its own hard RLIMIT_NOFILE when it lacks CAP_SYS_RESOURCE)",
                    limits.max_open_files, self.max_open_files
                ),
            ));
        }
        let restart = restart?;
        let replicas = zero_means_default("spec.replicas", raw.replicas, 1, ServiceSpec::MAX_REPLICAS, "")?;
        let shutdown_timeout_ms = zero_means_default(
            "spec.shutdown_timeout_ms",
            raw.shutdown_timeout_ms,
            ServiceSpec::DEFAULT_SHUTDOWN_TIMEOUT_MS,
            ServiceSpec::MAX_SHUTDOWN_TIMEOUT_MS,
            " ms",
        )?;
        let labels = labels(raw.labels)?;
        let grants = super::grant::parse_all(&raw.grants)?;
        let readiness = super::grant::readiness(&raw.readiness_kind, raw.startup_timeout_ms, &raw.tcp_grant, &grants)?;
        Ok(ServiceSpec {
            id,
            artifact,
            args,
            env,
            profile,
            limits,
            restart,
            replicas,
            tier,
            shutdown_timeout_ms,
            labels,
            grants,
            readiness,
            listen_only: raw.listen_only,
        })
    }

    fn artifact(&self, a: Option<ArtifactSpec>) -> Result<ArtifactSpec, FieldError> {
        let limit = self.upload_limit;
        match a {
            None => Err(FieldError::invalid("spec.artifact", "is required: one of executable, script or host_path")),
            Some(ArtifactSpec::Executable { content, sha256 }) => {
                let sha256 = digest("spec.artifact.executable.sha256", sha256)?;
                let f = "spec.artifact.executable.content";
                if content.is_empty() {
                    // A reference: the store resolves it (or answers NOT_FOUND).
                    return match sha256 {
                        Some(_) => Ok(ArtifactSpec::Executable { content, sha256 }),
                        None => Err(FieldError::invalid(
                            f,
                            "is empty (send the ELF bytes, or the sha256 of bytes this daemon stores)",
                        )),
                    };
                }
                if content.len() as u64 > limit {
                    return Err(FieldError::too_large(
                        f,
                        format!("is {} bytes; the upload limit is {limit} bytes", content.len()),
                    ));
                }
                if !content.starts_with(b"\x7fELF") {
                    return Err(FieldError::invalid(
                        f,
                        "is not an ELF executable (no \\x7fELF magic); send scripts as a script artifact with an interpreter",
                    ));
                }
                Ok(ArtifactSpec::Executable { content, sha256 })
            }
            Some(ArtifactSpec::Script { interpreter, source, sha256 }) => {
                if !INTERPRETERS.contains(&interpreter.as_str()) {
                    return Err(FieldError::invalid(
                        "spec.artifact.script.interpreter",
                        format!(
                            "unknown interpreter '{}' (known: {})",
                            interpreter.escape_debug(),
                            INTERPRETERS.join(", ")
                        ),
                    ));
                }
                let sha256 = digest("spec.artifact.script.sha256", sha256)?;
                let f = "spec.artifact.script.source";
                if source.is_empty() {
                    return match sha256 {
                        Some(_) => Ok(ArtifactSpec::Script { interpreter, source, sha256 }),
                        None => Err(FieldError::invalid(
                            f,
                            "is empty (send the source, or the sha256 of bytes this daemon stores)",
                        )),
                    };
                }
                if source.len() as u64 > limit {
                    return Err(FieldError::too_large(
                        f,
                        format!("is {} bytes; the upload limit is {limit} bytes", source.len()),
                    ));
                }
                Ok(ArtifactSpec::Script { interpreter, source, sha256 })
            }
            Some(ArtifactSpec::HostPath { path }) => {
                let f = "spec.artifact.host_path.path";
                if path.is_empty() {
                    return Err(FieldError::invalid(f, "is empty"));
                }
                if path.len() > MAX_HOST_PATH {
                    return Err(FieldError::invalid(f, format!("is longer than {MAX_HOST_PATH} bytes")));
                }
                if path.contains('\0') {
                    return Err(FieldError::invalid(f, "contains a NUL byte"));
                }
                if !path.starts_with('/') {
                    return Err(FieldError::invalid(f, format!("'{}' is not an absolute path", path.escape_debug())));
                }
                if path.split('/').any(|c| c == "..") {
                    return Err(FieldError::invalid(f, "must not contain '..'"));
                }
                Ok(ArtifactSpec::HostPath { path })
            }
        }
    }

    fn profile(&self, p: String) -> Result<String, FieldError> {
        let p = if p.is_empty() { "default".to_owned() } else { p };
        if self.profiles.contains_key(&p) {
            Ok(p)
        } else {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            Err(FieldError::invalid(
                "spec.profile",
                format!("unknown profile '{}' (known: {})", p.escape_debug(), known.join(", ")),
            ))
        }
    }
}

type ArgsEnv = (Vec<String>, BTreeMap<String, String>);

/// A count or duration where 0 (proto3's unset) means `default`, refused
/// above `max`; `unit` follows the numbers in the message (" ms" or "").
pub(super) fn zero_means_default(field: &str, n: u32, default: u32, max: u32, unit: &str) -> Result<u32, FieldError> {
    match n {
        0 => Ok(default),
        n if n > max => Err(FieldError::invalid(field, format!("{n}{unit} is more than the maximum of {max}{unit}"))),
        n => Ok(n),
    }
}

fn args_env(args: Vec<String>, env: BTreeMap<String, String>) -> Result<ArgsEnv, FieldError> {
    if args.len() > MAX_ARGS {
        return Err(FieldError::invalid("spec.args", format!("has {} entries; at most {MAX_ARGS}", args.len())));
    }
    let mut total = 0usize;
    for (i, a) in args.iter().enumerate() {
        let f = format!("spec.args[{i}]");
        if a.contains('\0') {
            return Err(FieldError::invalid(f, "contains a NUL byte"));
        }
        if a.len() > MAX_ARG_BYTES {
            return Err(FieldError::invalid(f, format!("is {} bytes; at most {MAX_ARG_BYTES}", a.len())));
        }
        total += a.len() + 1;
    }
    if env.len() > MAX_ENV {
        return Err(FieldError::invalid("spec.env", format!("has {} entries; at most {MAX_ENV}", env.len())));
    }
    for (k, v) in &env {
        let f = format!("spec.env[{}]", k.escape_debug());
        if k.is_empty() {
            return Err(FieldError::invalid(f, "name is empty"));
        }
        if k.contains('\0') || v.contains('\0') {
            return Err(FieldError::invalid(f, "contains a NUL byte"));
        }
        let mut chars = k.chars();
        let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_first || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(FieldError::invalid(f, "name must match [A-Za-z_][A-Za-z0-9_]*"));
        }
        if RESERVED_ENV.contains(&k.as_str()) || k.starts_with(RESERVED_ENV_PREFIX) {
            return Err(FieldError::invalid(f, "is set by the supervisor and cannot be overridden"));
        }
        if v.len() > MAX_ARG_BYTES {
            return Err(FieldError::invalid(f, format!("value is {} bytes; at most {MAX_ARG_BYTES}", v.len())));
        }
        total += k.len() + v.len() + 2;
    }
    if total > MAX_ARGV_ENV_TOTAL {
        return Err(FieldError::invalid(
            "spec.env",
            format!("args and env together are {total} bytes; at most {MAX_ARGV_ENV_TOTAL}"),
        ));
    }
    Ok((args, env))
}

struct RawLimits {
    action: String,
    memory_bytes: u64,
    memory_high_bytes: u64,
    cpu_weight: u32,
    cpu_max_millicores: u32,
    max_pids: u32,
    max_open_files: u32,
}

fn raw_limits(r: &RawSpec) -> RawLimits {
    RawLimits {
        action: r.limit_exceeded_action.clone(),
        memory_bytes: r.memory_bytes,
        memory_high_bytes: r.memory_high_bytes,
        cpu_weight: r.cpu_weight,
        cpu_max_millicores: r.cpu_max_millicores,
        max_pids: r.max_pids,
        max_open_files: r.max_open_files,
    }
}

fn limits(r: &RawLimits, tier: Tier, d: &ProfileDefaults) -> Result<Limits, FieldError> {
    let memory_bytes = match r.memory_bytes {
        0 => d.memory_bytes.unwrap_or(Limits::DEFAULT_MEMORY),
        n if n < Limits::MIN_MEMORY => {
            return Err(FieldError::invalid(
                "spec.limits.memory_bytes",
                format!("{n} bytes is below the minimum of {} (1MiB)", Limits::MIN_MEMORY),
            ))
        }
        n if n > Limits::MAX_MEMORY => {
            return Err(FieldError::invalid(
                "spec.limits.memory_bytes",
                format!("{n} bytes is above the maximum of {} (1TiB)", Limits::MAX_MEMORY),
            ))
        }
        n => n,
    };
    let memory_high_bytes = match r.memory_high_bytes {
        0 => None,
        n if n > memory_bytes => {
            return Err(FieldError::invalid(
                "spec.limits.memory_high_bytes",
                format!("{n} is above memory_bytes ({memory_bytes}); the throttle point must be below the hard limit"),
            ))
        }
        n if n < Limits::MIN_MEMORY => {
            return Err(FieldError::invalid(
                "spec.limits.memory_high_bytes",
                format!("{n} bytes is below the minimum of {}", Limits::MIN_MEMORY),
            ))
        }
        n => Some(n),
    };
    let cpu_weight = match r.cpu_weight {
        0 if tier == Tier::System => Limits::DEFAULT_SYSTEM_CPU_WEIGHT,
        0 => d.cpu_weight.unwrap_or(Limits::DEFAULT_CPU_WEIGHT),
        n if n > Limits::MAX_CPU_WEIGHT => {
            return Err(FieldError::invalid(
                "spec.limits.cpu_weight",
                format!("{n} is outside 1..={}", Limits::MAX_CPU_WEIGHT),
            ))
        }
        n => n,
    };
    let cpu_max_millicores = match r.cpu_max_millicores {
        0 => None,
        n if !(Limits::MIN_MILLICORES..=Limits::MAX_MILLICORES).contains(&n) => {
            return Err(FieldError::invalid(
                "spec.limits.cpu_max_millicores",
                format!("{n} is outside {}..={}", Limits::MIN_MILLICORES, Limits::MAX_MILLICORES),
            ))
        }
        n => Some(n),
    };
    let max_pids = match r.max_pids {
        0 => d.max_pids.unwrap_or(Limits::DEFAULT_MAX_PIDS),
        n if n > Limits::MAX_PIDS => {
            return Err(FieldError::invalid(
                "spec.limits.max_pids",
                format!("{n} is above the maximum of {}", Limits::MAX_PIDS),
            ))
        }
        n => n,
    };
    let max_open_files = match r.max_open_files {
        0 => d.max_open_files.unwrap_or(Limits::DEFAULT_MAX_OPEN_FILES),
        n if !(16..=Limits::MAX_OPEN_FILES).contains(&n) => {
            return Err(FieldError::invalid(
                "spec.limits.max_open_files",
                format!("{n} is outside 16..={}", Limits::MAX_OPEN_FILES),
            ))
        }
        n => n,
    };
    let limit_exceeded_action = LimitAction::parse(&r.action).ok_or_else(|| {
        FieldError::invalid(
            "spec.limits.limit_exceeded_action",
            format!("'{}' is not an action: use {}", r.action.escape_debug(), LimitAction::NAMES),
        )
    })?;
    if limit_exceeded_action == LimitAction::Throttle && memory_high_bytes.is_some() {
        return Err(FieldError::invalid(
            "spec.limits.memory_high_bytes",
            "cannot be combined with limit_exceeded_action = throttle, which makes memory_bytes itself the throttle point",
        ));
    }
    Ok(Limits {
        memory_bytes,
        memory_high_bytes,
        cpu_weight,
        cpu_max_millicores,
        max_pids,
        max_open_files,
        limit_exceeded_action,
    })
}

fn restart(r: &RawSpec, tier: Tier) -> Result<RestartSpec, FieldError> {
    let d = RestartSpec::default();
    let policy = match (tier, r.restart_policy) {
        (Tier::System, Some(p)) if p != RestartPolicy::Always => {
            return Err(FieldError::invalid(
                "spec.restart.policy",
                format!("system-tier services always restart; '{}' is not allowed", p.as_str()),
            ))
        }
        (Tier::System, _) => RestartPolicy::Always,
        (Tier::User, p) => p.unwrap_or(d.policy),
    };
    let or = |v: u32, dv: u32| if v == 0 { dv } else { v };
    let max_restarts = or(r.max_restarts, d.max_restarts);
    if max_restarts > 10_000 {
        return Err(FieldError::invalid("spec.restart.max_restarts", format!("{max_restarts} is above 10000")));
    }
    let within_seconds = or(r.within_seconds, d.within_seconds);
    if within_seconds > 86_400 {
        return Err(FieldError::invalid(
            "spec.restart.within_seconds",
            format!("{within_seconds} is above 86400 (one day)"),
        ));
    }
    let backoff_initial_ms = or(r.backoff_initial_ms, d.backoff_initial_ms);
    let backoff_max_ms = or(r.backoff_max_ms, d.backoff_max_ms.max(backoff_initial_ms));
    if backoff_max_ms > 3_600_000 {
        return Err(FieldError::invalid(
            "spec.restart.backoff_max_ms",
            format!("{backoff_max_ms} is above 3600000 (one hour)"),
        ));
    }
    if backoff_initial_ms > backoff_max_ms {
        return Err(FieldError::invalid(
            "spec.restart.backoff_initial_ms",
            format!("{backoff_initial_ms} is above backoff_max_ms ({backoff_max_ms})"),
        ));
    }
    // 0.0 means "the default" like every other zero in the request.
    let backoff_jitter = if r.backoff_jitter == 0.0 { d.backoff_jitter } else { r.backoff_jitter };
    if !(0.0..=1.0).contains(&backoff_jitter) {
        return Err(FieldError::invalid(
            "spec.restart.backoff_jitter",
            format!("{backoff_jitter} is outside 0.0..=1.0"),
        ));
    }
    let reset_after_seconds = or(r.reset_after_seconds, d.reset_after_seconds);
    if reset_after_seconds > 86_400 {
        return Err(FieldError::invalid(
            "spec.restart.reset_after_seconds",
            format!("{reset_after_seconds} is above 86400"),
        ));
    }
    Ok(RestartSpec {
        policy,
        max_restarts,
        within_seconds,
        backoff_initial_ms,
        backoff_max_ms,
        backoff_jitter,
        reset_after_seconds,
    })
}

fn labels(l: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, FieldError> {
    if l.len() > MAX_LABELS {
        return Err(FieldError::invalid("spec.labels", format!("has {} entries; at most {MAX_LABELS}", l.len())));
    }
    for (k, v) in &l {
        let f = format!("spec.labels[{}]", k.escape_debug());
        validate_service_id(k).map_err(|r| FieldError::invalid(&f, format!("key {r}")))?;
        if v.len() > MAX_LABEL_VALUE || v.contains('\0') {
            return Err(FieldError::invalid(f, format!("value must be at most {MAX_LABEL_VALUE} bytes without NUL")));
        }
    }
    Ok(l)
}

/// An optional artifact digest: empty means not given; else 64 lowercase
/// hex digits (the store's file names, so it can name nothing else).
fn digest(field: &str, d: Option<String>) -> Result<Option<String>, FieldError> {
    match d {
        None => Ok(None),
        Some(d) if d.is_empty() => Ok(None),
        Some(d) if super::is_sha256_hex(&d) => Ok(Some(d)),
        Some(d) => Err(FieldError::invalid(
            field,
            format!(
                "'{}' is not a sha256 digest (64 lowercase hex digits)",
                d.chars().take(80).collect::<String>().escape_debug()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validator {
        let strict = ProfileDefaults { memory_bytes: Some(64 << 20), max_pids: Some(8), ..Default::default() };
        Validator {
            upload_limit: 1024,
            profiles: [("default".to_owned(), ProfileDefaults::default()), ("strict".to_owned(), strict)].into(),
            max_open_files: Limits::MAX_OPEN_FILES,
        }
    }

    fn ok_raw() -> RawSpec {
        RawSpec {
            id: "web-1".into(),
            artifact: Some(ArtifactSpec::HostPath { path: "/bin/true".into() }),
            ..RawSpec::default()
        }
    }

    fn field_of(r: RawSpec) -> String {
        match v().service(r) {
            Err(e) => e.field,
            Ok(_) => "<accepted>".into(),
        }
    }

    #[test]
    fn defaults_resolve() {
        let s = v().service(ok_raw()).expect("valid");
        assert_eq!(s.profile, "default");
        assert_eq!(s.replicas, 1);
        assert_eq!(s.limits.memory_bytes, Limits::DEFAULT_MEMORY);
        assert_eq!(s.restart.policy, RestartPolicy::OnFailure);
        assert_eq!(s.tier, Tier::User);
    }

    #[test]
    fn ids() {
        for bad in ["", "-a", "A", "a_b", "a.b", "ü", &"a".repeat(64)] {
            assert!(validate_service_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "0", "a-b-c", &"a".repeat(63)] {
            assert!(validate_service_id(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn artifacts() {
        let mut r = ok_raw();
        r.artifact = None;
        assert_eq!(field_of(r), "spec.artifact");
        let mut r = ok_raw();
        r.artifact = Some(ArtifactSpec::Executable { content: vec![], sha256: None });
        assert_eq!(field_of(r), "spec.artifact.executable.content");
        let mut r = ok_raw();
        r.artifact = Some(ArtifactSpec::Executable { content: b"#!/bin/sh\n".to_vec(), sha256: None });
        assert_eq!(field_of(r), "spec.artifact.executable.content");
        let mut r = ok_raw();
        let mut big = b"\x7fELF".to_vec();
        big.resize(2048, 0);
        r.artifact = Some(ArtifactSpec::Executable { content: big, sha256: None });
        let e = v().service(r).expect_err("too big");
        assert_eq!(e.kind, FieldErrorKind::TooLarge);
        let mut r = ok_raw();
        r.artifact = Some(ArtifactSpec::Script { interpreter: "ruby".into(), source: b"x".to_vec(), sha256: None });
        assert_eq!(field_of(r), "spec.artifact.script.interpreter");
        let mut r = ok_raw();
        r.artifact = Some(ArtifactSpec::HostPath { path: "bin/true".into() });
        assert_eq!(field_of(r), "spec.artifact.host_path.path");
    }

    #[test]
    fn artifact_digests() {
        let sha = "ab".repeat(32);
        let exe = |content: &[u8], d: &str| {
            let mut r = ok_raw();
            r.artifact = Some(ArtifactSpec::Executable { content: content.to_vec(), sha256: Some(d.to_owned()) });
            r
        };
        // A digest alone is a reference; with bytes it is kept to be checked.
        let s = v().service(exe(&[], &sha)).expect("reference");
        assert_eq!(s.artifact, ArtifactSpec::Executable { content: vec![], sha256: Some(sha.clone()) });
        assert!(v().service(exe(b"\x7fELF", &sha)).is_ok());
        // Empty means "not given": bytes required then.
        assert_eq!(field_of(exe(&[], "")), "spec.artifact.executable.content");
        let s = v().service(exe(b"\x7fELF", "")).expect("no digest");
        assert_eq!(s.artifact, ArtifactSpec::Executable { content: b"\x7fELF".to_vec(), sha256: None });
        // Anything but 64 lowercase hex digits names the field.
        for bad in ["xyz", &sha.to_uppercase(), &sha[1..], &format!("{sha}0"), &format!("../{}", &sha[3..])] {
            assert_eq!(field_of(exe(&[], bad)), "spec.artifact.executable.sha256", "{bad}");
            assert_eq!(field_of(exe(b"\x7fELF", bad)), "spec.artifact.executable.sha256", "{bad}");
        }
        let mut r = ok_raw();
        r.artifact =
            Some(ArtifactSpec::Script { interpreter: "sh".into(), source: vec![], sha256: Some("g".repeat(64)) });
        assert_eq!(field_of(r), "spec.artifact.script.sha256");
        let mut r = ok_raw();
        r.artifact = Some(ArtifactSpec::Script { interpreter: "sh".into(), source: vec![], sha256: Some(sha) });
        assert!(v().service(r).is_ok(), "a script by digest");
    }

    #[test]
    fn args_and_env() {
        let mut r = ok_raw();
        r.args = vec!["ok".into(), "b\0d".into()];
        assert_eq!(field_of(r), "spec.args[1]");
        let mut r = ok_raw();
        r.env.insert("A".into(), "x\0".into());
        assert_eq!(field_of(r), "spec.env[A]");
        let mut r = ok_raw();
        r.env.insert("1A".into(), "x".into());
        assert_eq!(field_of(r), "spec.env[1A]");
        let mut r = ok_raw();
        r.env.insert("SOLO_X".into(), "x".into());
        assert_eq!(field_of(r), "spec.env[SOLO_X]");
        let mut r = ok_raw();
        for i in 0..20 {
            r.env.insert(format!("K{i}"), "v".repeat(100_000));
        }
        assert_eq!(field_of(r), "spec.env");
    }

    #[test]
    fn limits_bounds() {
        type Mutate = fn(&mut RawSpec);
        let cases: Vec<(Mutate, &str)> = vec![
            (|r| r.memory_bytes = 10, "spec.limits.memory_bytes"),
            (|r| r.memory_bytes = u64::MAX, "spec.limits.memory_bytes"),
            (|r| r.memory_high_bytes = 1 << 40, "spec.limits.memory_high_bytes"),
            (|r| r.cpu_weight = 10_001, "spec.limits.cpu_weight"),
            (|r| r.cpu_max_millicores = 1, "spec.limits.cpu_max_millicores"),
            (|r| r.max_pids = u32::MAX, "spec.limits.max_pids"),
            (|r| r.max_open_files = 3, "spec.limits.max_open_files"),
            (|r| r.limit_exceeded_action = "pause".into(), "spec.limits.limit_exceeded_action"),
            (
                |r| {
                    r.limit_exceeded_action = "throttle".into();
                    r.memory_high_bytes = 8 << 20
                },
                "spec.limits.memory_high_bytes",
            ),
            (|r| r.replicas = 1000, "spec.replicas"),
            (|r| r.backoff_jitter = f64::NAN, "spec.restart.backoff_jitter"),
            (|r| r.backoff_jitter = -0.5, "spec.restart.backoff_jitter"),
            (
                |r| {
                    r.backoff_initial_ms = 5000;
                    r.backoff_max_ms = 10
                },
                "spec.restart.backoff_initial_ms",
            ),
            (|r| r.within_seconds = 1_000_000, "spec.restart.within_seconds"),
            (|r| r.profile = "nope".into(), "spec.profile"),
            (|r| r.shutdown_timeout_ms = u32::MAX, "spec.shutdown_timeout_ms"),
            (
                |r| {
                    r.labels.insert("Bad Key".into(), "v".into());
                },
                "spec.labels[Bad Key]",
            ),
        ];
        for (mutate, field) in cases {
            let mut r = ok_raw();
            mutate(&mut r);
            assert_eq!(field_of(r), field);
        }
    }

    #[test]
    fn profile_limits_are_defaults_the_request_can_override() {
        let mut r = ok_raw();
        r.profile = "strict".into();
        let s = v().service(r).expect("valid");
        assert_eq!((s.limits.memory_bytes, s.limits.max_pids), (64 << 20, 8));
        let mut r = ok_raw();
        r.profile = "strict".into();
        r.max_pids = 4;
        assert_eq!(v().service(r).expect("valid").limits.max_pids, 4);
    }

    #[test]
    fn system_tier_always_restarts() {
        let mut r = ok_raw();
        r.tier = Some(Tier::System);
        let s = v().service(r).expect("valid");
        assert_eq!(s.restart.policy, RestartPolicy::Always);
        assert_eq!(s.limits.cpu_weight, Limits::DEFAULT_SYSTEM_CPU_WEIGHT);
        let mut r = ok_raw();
        r.tier = Some(Tier::System);
        r.restart_policy = Some(RestartPolicy::Never);
        assert_eq!(field_of(r), "spec.restart.policy");
    }
}
