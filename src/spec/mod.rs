//! Domain types and their validation. No I/O, no crate imports: every other
//! module turns its input into these types first, so a value of
//! [`ServiceSpec`] is always a spec the supervisor can act on.

pub mod grant;
mod size;
pub mod update;
mod validate;

pub use size::{format_bytes, parse_bytes};
pub use validate::{
    validate_service_id, FieldError, FieldErrorKind, RawSpec, Validator, MAX_ARGS, MAX_ARGV_ENV_TOTAL, MAX_ARG_BYTES,
    MAX_ENV, MAX_HOST_PATH, MAX_LABELS, MAX_LABEL_VALUE, RESERVED_ENV, RESERVED_ENV_PREFIX,
};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Interpreters a `script` artifact may name, and where they are looked up.
/// Resolved against fixed system directories only, never `$PATH`, so a
/// service cannot be pointed at a binary under a user's home.
pub const INTERPRETERS: &[&str] = &["sh", "bash", "python3", "perl", "node"];

/// Directories searched for an interpreter, in order.
pub const INTERPRETER_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin"];

/// A validated service id: `[a-z0-9][a-z0-9-]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceId(String);

impl ServiceId {
    /// Validates `s` as a service id.
    pub fn parse(s: &str) -> Result<Self, String> {
        validate_service_id(s).map(|()| ServiceId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        ServiceId::parse(&s)
    }
}

impl From<ServiceId> for String {
    fn from(id: ServiceId) -> String {
        id.0
    }
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the service runs.
///
/// An uploaded kind carries its bytes, or only the sha256 of bytes the
/// daemon already stores (a reference: empty bytes), or both (the bytes,
/// checked against the digest). The digest is only ever a lookup key or a
/// claim to check: what runs is always bytes the daemon hashed itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactSpec {
    /// ELF bytes uploaded by the agent.
    Executable {
        content: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Source run by a known interpreter.
    Script {
        interpreter: String,
        source: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// An existing binary on the host.
    HostPath { path: String },
}

impl ArtifactSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ArtifactSpec::Executable { .. } => "executable",
            ArtifactSpec::Script { .. } => "script",
            ArtifactSpec::HostPath { .. } => "host_path",
        }
    }

    /// The uploaded bytes and the digest the client gave for them (`None`
    /// for a host path). Empty bytes with a digest: a reference.
    pub fn upload(&self) -> Option<(&[u8], Option<&str>)> {
        match self {
            ArtifactSpec::Executable { content, sha256 } => Some((content, sha256.as_deref())),
            ArtifactSpec::Script { source, sha256, .. } => Some((source, sha256.as_deref())),
            ArtifactSpec::HostPath { .. } => None,
        }
    }

    /// The request field that carries the digest (`spec.artifact.<kind>.sha256`).
    pub fn sha256_field(&self) -> String {
        format!("spec.artifact.{}.sha256", self.kind())
    }
}

/// A sha256 digest as artifacts are addressed: 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "always" => Some(RestartPolicy::Always),
            "on-failure" => Some(RestartPolicy::OnFailure),
            "never" => Some(RestartPolicy::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    User,
    System,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::User => "user",
            Tier::System => "system",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Tier::User),
            "system" => Some(Tier::System),
            _ => None,
        }
    }
}

/// What Solo does when a service reaches its memory or CPU limit
/// (`limit_exceeded_action`; docs/api.md has the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LimitAction {
    /// The kernel's own behaviour: kill for memory, throttle for CPU.
    #[default]
    Default,
    Kill,
    Throttle,
    Warn,
}

impl LimitAction {
    pub const NAMES: &'static str = "kill, throttle or warn";

    pub fn as_str(self) -> &'static str {
        match self {
            LimitAction::Default => "default",
            LimitAction::Kill => "kill",
            LimitAction::Throttle => "throttle",
            LimitAction::Warn => "warn",
        }
    }

    /// `kill`, `throttle`, `warn`, or empty / `default`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "default" => Some(LimitAction::Default),
            "kill" => Some(LimitAction::Kill),
            "throttle" => Some(LimitAction::Throttle),
            "warn" => Some(LimitAction::Warn),
            _ => None,
        }
    }

    /// What happens at the memory limit (the default: kill).
    pub fn memory(self) -> LimitAction {
        if self == LimitAction::Default {
            LimitAction::Kill
        } else {
            self
        }
    }

    /// What happens at the CPU limit (the default: throttle).
    pub fn cpu(self) -> LimitAction {
        if self == LimitAction::Default {
            LimitAction::Throttle
        } else {
            self
        }
    }
}

/// Resource limits with every default resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: u64,
    /// `memory.high`; `None` = no throttle point.
    pub memory_high_bytes: Option<u64>,
    pub cpu_weight: u32,
    /// `None` = no CPU quota.
    pub cpu_max_millicores: Option<u32>,
    pub max_pids: u32,
    pub max_open_files: u32,
    /// What happens at the memory and CPU limits.
    #[serde(default)]
    pub limit_exceeded_action: LimitAction,
}

impl Limits {
    pub const DEFAULT_MEMORY: u64 = 256 << 20;
    pub const DEFAULT_CPU_WEIGHT: u32 = 100;
    pub const DEFAULT_SYSTEM_CPU_WEIGHT: u32 = 1000;
    pub const DEFAULT_MAX_PIDS: u32 = 64;
    pub const DEFAULT_MAX_OPEN_FILES: u32 = 1024;
    pub const MIN_MEMORY: u64 = 1 << 20;
    pub const MAX_MEMORY: u64 = 1 << 40;
    pub const MAX_CPU_WEIGHT: u32 = 10_000;
    pub const MIN_MILLICORES: u32 = 10;
    pub const MAX_MILLICORES: u32 = 1_024_000;
    pub const MAX_PIDS: u32 = 4_194_304;
    pub const MAX_OPEN_FILES: u32 = 1_048_576;
}

/// Limit defaults a sandbox profile provides (unset = Solo's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileDefaults {
    pub memory_bytes: Option<u64>,
    pub max_pids: Option<u32>,
    pub cpu_weight: Option<u32>,
    pub max_open_files: Option<u32>,
}

impl ProfileDefaults {
    /// Each value from `self`, else from `parent`.
    pub fn or(self, parent: ProfileDefaults) -> ProfileDefaults {
        ProfileDefaults {
            memory_bytes: self.memory_bytes.or(parent.memory_bytes),
            max_pids: self.max_pids.or(parent.max_pids),
            cpu_weight: self.cpu_weight.or(parent.cpu_weight),
            max_open_files: self.max_open_files.or(parent.max_open_files),
        }
    }
}

/// Restart policy with every default resolved (OTP-style intensity limit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    pub max_restarts: u32,
    pub within_seconds: u32,
    pub backoff_initial_ms: u32,
    pub backoff_max_ms: u32,
    pub backoff_jitter: f64,
    pub reset_after_seconds: u32,
}

impl RestartSpec {
    pub const DEFAULT_MAX_RESTARTS: u32 = 5;
    pub const DEFAULT_WITHIN_SECONDS: u32 = 60;
    pub const DEFAULT_BACKOFF_INITIAL_MS: u32 = 100;
    pub const DEFAULT_BACKOFF_MAX_MS: u32 = 30_000;
    pub const DEFAULT_JITTER: f64 = 0.2;
    pub const DEFAULT_RESET_AFTER_SECONDS: u32 = 10;
}

impl Default for RestartSpec {
    fn default() -> Self {
        RestartSpec {
            policy: RestartPolicy::OnFailure,
            max_restarts: Self::DEFAULT_MAX_RESTARTS,
            within_seconds: Self::DEFAULT_WITHIN_SECONDS,
            backoff_initial_ms: Self::DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: Self::DEFAULT_BACKOFF_MAX_MS,
            backoff_jitter: Self::DEFAULT_JITTER,
            reset_after_seconds: Self::DEFAULT_RESET_AFTER_SECONDS,
        }
    }
}

/// A complete, validated service specification (one revision's worth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub id: ServiceId,
    pub artifact: ArtifactSpec,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub profile: String,
    pub limits: Limits,
    pub restart: RestartSpec,
    pub replicas: u32,
    pub tier: Tier,
    pub shutdown_timeout_ms: u32,
    pub labels: BTreeMap<String, String>,
    /// fd grants as deployed (grants added later live in the store).
    #[serde(default)]
    pub grants: Vec<grant::GrantSpec>,
    #[serde(default)]
    pub readiness: grant::Readiness,
    /// Announce only listening sockets in `LISTEN_FDS` (see the proto).
    #[serde(default)]
    pub listen_only: bool,
}

impl ServiceSpec {
    pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u32 = 5_000;
    pub const MAX_SHUTDOWN_TIMEOUT_MS: u32 = 600_000;
    pub const MAX_REPLICAS: u32 = 64;
}

/// Serialises a spec for the state database.
pub fn to_json(spec: &ServiceSpec) -> String {
    // Serialising plain data structures with string keys cannot fail.
    serde_json::to_string(spec).unwrap_or_default()
}

/// Reads a spec written by [`to_json`].
pub fn from_json(s: &str) -> Result<ServiceSpec, serde_json::Error> {
    serde_json::from_str(s)
}
