//! The supervisor's end of the audit log (`docs/audit.md`):
//! [`Supervisor::audit`], the one call every operation makes to record a
//! decision; coalesced records for what can repeat fast (denied syscalls,
//! refused tokens); the first use of a token attenuated offline; and the
//! background task that flushes counts, signs the chain's head and applies
//! retention.
//!
//! Invariant: recording never blocks the caller on SQLite (a record is a
//! channel send; the store's writer seals it into the chain in order).

use super::events::now_ms;
use super::Supervisor;
use crate::audit::{Coalescer, Kind, Record, Retention, Signer};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Repeats of one key within this window become one record.
const COALESCE_WINDOW_MS: i64 = 10_000;
/// Keys held by the coalescer at most (then everything pending is written).
const COALESCE_KEYS: usize = 4096;
/// Token ids remembered as seen (then the set starts over).
const SEEN_TOKENS: usize = 100_000;

/// How the audit log is kept (from `solo serve` flags).
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// Records older than this go (None: kept by age forever).
    pub max_age: Option<Duration>,
    /// At most this many records are kept (None: no count limit).
    pub max_records: Option<u64>,
    /// How often the head is signed (when it moved).
    pub sign_every: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            max_age: Some(Duration::from_secs(90 * 86_400)),
            max_records: Some(1_000_000),
            sign_every: Duration::from_secs(10),
        }
    }
}

/// The audit log's state in the supervisor.
pub struct AuditLog {
    signer: Signer,
    config: AuditConfig,
    coalescer: Mutex<Coalescer>,
    seen_tokens: Mutex<HashSet<String>>,
}

impl AuditLog {
    pub fn new(key: [u8; 32], config: AuditConfig) -> AuditLog {
        AuditLog {
            signer: Signer::new(key),
            config,
            coalescer: Mutex::new(Coalescer::new(COALESCE_WINDOW_MS, COALESCE_KEYS)),
            seen_tokens: Mutex::new(HashSet::new()),
        }
    }

    /// The anchor signer (verification needs it).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    fn retention(&self) -> Retention {
        Retention {
            max_age_ms: self.config.max_age.map(|d| d.as_millis() as i64),
            max_records: self.config.max_records,
            batch: 10_000,
        }
    }
}

impl Supervisor {
    /// Records one audit record (time filled in when 0). This is the one
    /// call to make for anything security-relevant; see docs/audit.md.
    pub fn audit(&self, mut r: Record) {
        if r.at_ms == 0 {
            r.at_ms = now_ms();
        }
        self.store.append_audit(r);
    }

    /// Records `r` coalesced under `key`: the first at once, repeats within
    /// ten seconds as one record with their count and first/last time.
    pub fn audit_coalesced(&self, key: &str, r: Record) {
        let out = self.audit_log.coalescer.lock().unwrap_or_else(|p| p.into_inner()).note(key, r, now_ms());
        for r in out {
            self.audit(r);
        }
    }

    /// Called for every verified token: the first use of a token that the
    /// daemon did not issue (its holder attenuated it offline) is recorded
    /// once, with its chain.
    pub fn audit_token_use(&self, t: &crate::auth::Token) {
        if t.chain().len() < 2 {
            return;
        }
        {
            let mut seen = self.audit_log.seen_tokens.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(t.id()) {
                return;
            }
            if seen.len() >= SEEN_TOKENS {
                seen.clear();
            }
            seen.insert(t.id().to_owned());
        }
        // Issued through the API: recorded when it was issued.
        if matches!(self.store.token(t.id()), Ok(Some(_))) {
            return;
        }
        let c = t.claims();
        let chain: Vec<&str> = t.chain().iter().map(|b| b.id.as_str()).collect();
        self.audit(
            Record::new(Kind::TokenAttenuate, "")
                .by(&c.parent)
                .message(format!(
                    "token {} (attenuated offline from {}) first presented: {} on '{}' for '{}'",
                    c.id,
                    c.parent,
                    c.perms.names().join(","),
                    c.resource,
                    c.subject
                ))
                .with("token", c.id.clone())
                .with("parent", c.parent.clone())
                .with("chain", chain)
                .with("subject", c.subject.clone())
                .with("resource", c.resource.clone())
                .with("perms", c.perms.names())
                .with("expires_at", c.expires_at),
        );
    }

    /// Records the daemon's start (call once, before services start).
    pub(super) fn audit_daemon_start(&self, restored: usize) {
        let stats = self.store.audit_stats().unwrap_or_default();
        self.audit(
            Record::new(Kind::DaemonStart, "")
                .message(format!("solo {} started (pid {})", env!("CARGO_PKG_VERSION"), std::process::id()))
                .with("version", env!("CARGO_PKG_VERSION"))
                .with("pid", std::process::id())
                .with("state_dir", self.config.state_dir.display().to_string())
                .with("cgroups", self.layout.mode())
                .with("services", restored)
                .with("chain_head", stats.head_seq),
        );
    }

    /// Records the daemon's stop, writes every pending count and signs the
    /// head; returns once it is all committed.
    pub async fn audit_daemon_stop(&self, why: &str) {
        let pending = self.audit_log.coalescer.lock().unwrap_or_else(|p| p.into_inner()).drain();
        for r in pending {
            self.audit(r);
        }
        self.audit(Record::new(Kind::DaemonStop, "").message(format!("solo stopped: {why}")).with("reason", why));
        if let Err(e) = self.store.audit_sign_head(self.audit_log.signer.clone(), now_ms()).await {
            tracing::error!(error = %e, "cannot sign the audit head");
        }
    }
}

/// Every second: write coalesced counts whose window is over; every
/// `sign_every`: sign the head if it moved; every minute: a retention
/// round (each prunes at most 10,000 records behind a signed checkpoint).
pub fn spawn_task(sup: Arc<Supervisor>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sign_every = sup.audit_log.config.sign_every.as_secs().max(1);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let due = sup.audit_log.coalescer.lock().unwrap_or_else(|p| p.into_inner()).flush_due(now_ms());
            for r in due {
                sup.audit(r);
            }
            if n.is_multiple_of(sign_every) {
                if let Err(e) = sup.store.audit_sign_head(sup.audit_log.signer.clone(), now_ms()).await {
                    tracing::error!(error = %e, "cannot sign the audit head");
                }
            }
            if n % 60 == 1 {
                prune(&sup).await;
            }
        }
    });
}

async fn prune(sup: &Supervisor) {
    let retention = sup.audit_log.retention();
    match sup.store.audit_prune(retention, now_ms(), sup.audit_log.signer.clone()).await {
        Ok(Some((cut, n))) => {
            tracing::info!(up_to = cut, records = n, "audit retention pruned records behind a signed checkpoint");
            sup.audit(
                Record::new(Kind::Prune, "")
                    .message(format!("retention pruned {n} records, up to record {cut}, behind a signed checkpoint"))
                    .with("up_to", cut)
                    .with("records", n),
            );
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "audit retention failed"),
    }
}

/// The facts of an exit, for a record's detail.
fn exit_facts(r: Record, e: &super::restart::Exit) -> Record {
    let r = match e.how {
        super::restart::ExitHow::Code(c) => r.with("code", c),
        super::restart::ExitHow::Signal(s) => r.with("signal", super::restart::signal_name(s)),
    };
    r.with("oom_killed", e.oom_killed).with("reason", e.reason.clone())
}

impl Supervisor {
    /// An instance started (or, `adopted`, was taken over from a previous
    /// daemon image): the profile and its sha256, what the launch enforced
    /// (layers not fully enforced are named).
    pub(super) fn audit_start(
        &self,
        svc: &super::service::Service,
        replica: u32,
        pid: i32,
        restart_count: u32,
        adopted: bool,
    ) {
        let (spawn_us, degraded) = {
            let rt = svc.runtime();
            let i = &rt.instances[replica as usize];
            let degraded: Vec<String> = i
                .enforcement
                .layers
                .iter()
                .filter(|l| l.state != "enforced")
                .map(|l| format!("{}: {} ({})", l.name, l.state, l.detail))
                .collect();
            (i.spawn_us, degraded)
        };
        let profile = &svc.spec.profile;
        let sha = self.profile_sha256(profile);
        self.audit(
            Record::new(Kind::Start, svc.id())
                .message(format!(
                    "replica {replica} {} pid {pid} under profile {profile} (sha256:{})",
                    if adopted { "re-adopted after a daemon restart as" } else { "started as" },
                    &sha[..sha.len().min(12)]
                ))
                .with("adopted", adopted)
                .with("replica", replica)
                .with("pid", pid)
                .with("revision", svc.revision)
                .with("profile", profile.clone())
                .with("profile_sha256", sha)
                .with("artifact_sha256", svc.artifact.sha256.clone())
                .with("restart_count", restart_count)
                .with("spawn_us", spawn_us)
                .with("degraded", degraded),
        );
    }

    /// An instance ended (terminations: reason, code or signal, OOM kill).
    pub(super) fn audit_exit(&self, svc: &str, replica: u32, pid: i32, e: &super::restart::Exit, stopped: bool) {
        let r = Record::new(Kind::Exit, svc)
            .message(format!("replica {replica} (pid {pid}) {}", e.reason))
            .with("replica", replica)
            .with("pid", pid)
            .with("stopped", stopped);
        self.audit(exit_facts(r, e));
    }

    /// A restart decided after an exit (which attempt, after what delay, why).
    pub(super) fn audit_restart(&self, svc: &str, replica: u32, e: &super::restart::Exit, attempt: u32, delay_ms: u64) {
        let r = Record::new(Kind::Restart, svc)
            .message(format!("replica {replica} restarts in {delay_ms} ms (attempt {attempt}) after it {}", e.reason))
            .with("replica", replica)
            .with("attempt", attempt)
            .with("delay_ms", delay_ms);
        self.audit(exit_facts(r, e));
    }

    /// The kernel OOM-killed an instance at its memory limit (action kill).
    pub(super) fn audit_oom(&self, svc: &super::service::Service, replica: u32, pid: i32) {
        let limit = svc.spec.limits.memory_bytes;
        let (limit, why) = match svc.spec.limits.limit_exceeded_action.memory() {
            crate::spec::LimitAction::Kill => (limit, "its memory limit"),
            _ => (limit.saturating_mul(crate::sandbox::cgroup::MEMORY_CEILING), "its memory ceiling (twice its limit)"),
        };
        self.audit(
            Record::new(Kind::Limit, svc.id())
                .message(format!("replica {replica} reached {why} of {limit} bytes: the kernel's OOM killer ended it"))
                .with("replica", replica)
                .with("pid", pid)
                .with("resource", "memory")
                .with("action", "kill")
                .with("detail", format!("OOM kill at {limit} bytes")),
        );
    }

    /// A failure, quarantine or failed launch of an instance.
    pub(super) fn audit_instance(&self, kind: Kind, svc: &str, replica: u32, why: &str) {
        self.audit(Record::new(kind, svc).message(format!("replica {replica}: {why}")).with("replica", replica));
    }
}
