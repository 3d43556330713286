//! The kinds of audit records: one per security-relevant decision.

use super::AuditError;

/// What an audit record is about. The names are what the store, the API,
/// `solo audit --kind` and `docs/audit.md` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The daemon started (version, pid, cgroup mode, chain head at start).
    DaemonStart,
    /// The daemon stopped (why).
    DaemonStop,
    /// A service was created: artifact digest, profile and its sha256,
    /// limits, grants, tier, by which token.
    Deploy,
    /// A new revision was rolled out (artifact, profile, strategy).
    Update,
    /// A service was stopped through the API (by which token, forced or not).
    Kill,
    /// A service's desired state was deleted.
    Remove,
    /// An instance started: pid, profile name and sha256, what was enforced.
    Start,
    /// An instance ended: reason, exit code or signal, OOM kill.
    Exit,
    /// An instance was started again after an exit (which restart, why).
    Restart,
    /// A service reached its restart intensity limit.
    Failed,
    /// A service was quarantined (killed by its seccomp filter).
    Quarantine,
    /// A launch failed (the sandbox step and errno).
    LaunchFailed,
    /// A resource limit was reached: resource, action taken, figures.
    Limit,
    /// Syscalls denied by a filter, coalesced: name, action, count, first/last.
    SyscallDenied,
    /// A token was issued through the API (a child of the caller's).
    TokenIssue,
    /// A token attenuated offline by its holder was first presented.
    TokenAttenuate,
    /// A token (and its children) was revoked.
    TokenRevoke,
    /// A descriptor was granted to a service (at deploy or later).
    Grant,
    /// A descriptor grant was revoked.
    GrantRevoke,
    /// Requests refused for their token, coalesced.
    AuthFail,
    /// Records were pruned by retention, behind a signed checkpoint.
    Prune,
}

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::DaemonStart,
        Kind::DaemonStop,
        Kind::Deploy,
        Kind::Update,
        Kind::Kill,
        Kind::Remove,
        Kind::Start,
        Kind::Exit,
        Kind::Restart,
        Kind::Failed,
        Kind::Quarantine,
        Kind::LaunchFailed,
        Kind::Limit,
        Kind::SyscallDenied,
        Kind::TokenIssue,
        Kind::TokenAttenuate,
        Kind::TokenRevoke,
        Kind::Grant,
        Kind::GrantRevoke,
        Kind::AuthFail,
        Kind::Prune,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DaemonStart => "daemon-start",
            Kind::DaemonStop => "daemon-stop",
            Kind::Deploy => "deploy",
            Kind::Update => "update",
            Kind::Kill => "kill",
            Kind::Remove => "remove",
            Kind::Start => "start",
            Kind::Exit => "exit",
            Kind::Restart => "restart",
            Kind::Failed => "failed",
            Kind::Quarantine => "quarantine",
            Kind::LaunchFailed => "launch-failed",
            Kind::Limit => "limit",
            Kind::SyscallDenied => "syscall-denied",
            Kind::TokenIssue => "token-issue",
            Kind::TokenAttenuate => "token-attenuate",
            Kind::TokenRevoke => "token-revoke",
            Kind::Grant => "grant",
            Kind::GrantRevoke => "grant-revoke",
            Kind::AuthFail => "auth-fail",
            Kind::Prune => "prune",
        }
    }

    /// Every kind's name, in [`Kind::ALL`] order.
    pub fn names() -> Vec<&'static str> {
        Kind::ALL.iter().map(|k| k.as_str()).collect()
    }

    /// The kind named `value` (exactly); the error names `field` and lists
    /// the valid names.
    pub fn parse(field: &'static str, value: &str) -> Result<Kind, AuditError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| AuditError::UnknownKind { field, value: value.to_owned() })
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_named() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse("kind", k.as_str()), Ok(k));
        }
        let mut names = Kind::names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len(), "names are distinct");
        let e = Kind::parse("--kind", "deploys").expect_err("unknown").to_string();
        assert!(e.starts_with("--kind: unknown audit kind 'deploys' (valid: daemon-start, "), "{e}");
    }
}
