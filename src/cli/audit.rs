//! `solo audit [--service ID] [--since WHEN] [--kind K]...`, `solo audit
//! verify` and `solo audit explain ID` (docs/audit.md). `--kind` and
//! `--since` are checked here first, so a typo is named before any call.

use super::client::Client;
use super::commands::status_err;
use super::output::{self, json, table};
use super::Global;
use crate::audit::{parse_since, Kind};
use crate::proto::v1 as pb;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub cmd: Option<AuditCommand>,
    /// Only this service's records.
    #[arg(long, value_name = "ID")]
    pub service: Option<String>,
    /// Only records since WHEN: a duration ago (90s, 30m, 12h, 7d) or a UTC
    /// time (2026-11-21, 2026-11-21T10:00:00Z, or with +HH:MM).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only records of this kind (repeatable); `solo audit --kind help` lists them.
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// At most N records: the newest N, or with --since/--after the first N [default: 100, at most 10000].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Only records after this sequence number (to page through the log).
    #[arg(long, value_name = "SEQ")]
    pub after: Option<u64>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole hash chain and check its signed anchors; exits 1 and
    /// names the first broken record (by sequence number) if it does not hold.
    Verify,
    /// One service for a reviewer: profile and hash, grants and who gave
    /// them, tokens that can act on it, denied syscalls, latest records.
    Explain {
        /// The service id.
        id: String,
    },
    /// Every record your token may read, oldest first, as JSON lines (one
    /// record per line, with its hashes), paged 10,000 at a time.
    Export,
}

pub async fn run(g: &Global, c: &mut Client, a: AuditArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Some(AuditCommand::Verify) => verify(g, c).await,
        Some(AuditCommand::Explain { id }) => explain(g, c, id).await,
        Some(AuditCommand::Export) => export(c).await,
        None => query(g, c, a).await,
    }
}

/// `2026-11-21T10:00:00.123Z` for unix ms.
fn when(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    let t = crate::auth::format_utc(secs);
    format!("{}.{:03}Z", t.trim_end_matches('Z'), ms.rem_euclid(1000))
}

fn short(id: &str) -> String {
    if id.len() > 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id[..12].to_owned()
    } else {
        id.to_owned()
    }
}

async fn query(g: &Global, c: &mut Client, a: AuditArgs) -> anyhow::Result<ExitCode> {
    if a.kinds.iter().any(|k| k == "help") {
        println!("{}", Kind::names().join("\n"));
        return Ok(ExitCode::SUCCESS);
    }
    for k in &a.kinds {
        Kind::parse("--kind", k)?;
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let since = a.since.as_deref().map(|s| parse_since("--since", s, now)).transpose()?;
    if let Some(n) = a.limit {
        if n == 0 || n > 10_000 {
            anyhow::bail!("--limit: {n} is not between 1 and 10000");
        }
    }
    let req = pb::AuditRequest {
        service: a.service.unwrap_or_default(),
        since_unix_ms: since.unwrap_or(0),
        kinds: a.kinds,
        after_seq: a.after.unwrap_or(0),
        limit: a.limit.unwrap_or(0),
    };
    let r = c.audit(req).await.map_err(status_err)?.into_inner();
    if g.json {
        // JSON lines: one record per line, the export format.
        for rec in &r.records {
            println!("{}", json(rec, "solo.v1.AuditRecord"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = r
        .records
        .iter()
        .map(|x| {
            vec![
                x.seq.to_string(),
                when(x.at_unix_ms),
                x.kind.clone(),
                if x.service.is_empty() { "-".into() } else { x.service.clone() },
                short(&x.actor),
                x.message.clone(),
            ]
        })
        .collect();
    println!("{}", table(&["SEQ", "TIME (UTC)", "KIND", "SERVICE", "ACTOR", "MESSAGE"], &rows));
    if r.records.is_empty() {
        eprintln!("no records match (chain head: record {})", r.head_seq);
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(c: &mut Client) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut after = 0;
    loop {
        let req = pb::AuditRequest { after_seq: after, limit: 10_000, ..Default::default() };
        let r = c.audit(req).await.map_err(status_err)?.into_inner();
        let Some(last) = r.records.last() else { break };
        after = last.seq;
        for rec in &r.records {
            writeln!(out, "{}", json(rec, "solo.v1.AuditRecord"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(g: &Global, c: &mut Client) -> anyhow::Result<ExitCode> {
    let r = c.audit_verify(pb::AuditVerifyRequest {}).await.map_err(status_err)?.into_inner();
    if g.json {
        println!("{}", json(&r, "solo.v1.AuditVerifyResponse"));
    } else if r.ok {
        println!(
            "audit chain intact: records {}..{} ({} checked{}), head sha256:{}",
            r.first_seq,
            r.last_seq,
            r.checked,
            if r.checkpoint_seq > 0 {
                format!(", from the signed checkpoint at record {}", r.checkpoint_seq)
            } else {
                String::new()
            },
            r.head_sha256
        );
        if r.last_signed_seq > 0 {
            println!(
                "signed heads: {} checked, the latest for record {} at {}",
                r.heads_checked,
                r.last_signed_seq,
                when(r.last_signed_unix_ms)
            );
        }
    } else {
        println!("audit chain BROKEN at record {} ({}): {}", r.broken_seq, r.broken_kind, r.broken_reason);
        println!("records {}..{} before it verified ({} checked)", r.first_seq, r.last_seq, r.checked);
    }
    Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn explain(g: &Global, c: &mut Client, id: String) -> anyhow::Result<ExitCode> {
    let r = c.audit_explain(pb::AuditExplainRequest { service: id }).await.map_err(status_err)?.into_inner();
    if g.json {
        println!("{}", json(&r, "solo.v1.AuditExplainResponse"));
        return Ok(ExitCode::SUCCESS);
    }
    let mut o = String::new();
    o.push_str(&format!("service:   {} ({}, revision {})\n", r.service, r.state, r.revision));
    o.push_str(&format!("profile:   {} sha256:{}\n", r.profile, r.profile_sha256));
    let others: Vec<&String> = r.profile_hashes_seen.iter().filter(|h| **h != r.profile_sha256).collect();
    if !others.is_empty() {
        let o2: Vec<String> = others.iter().map(|h| format!("sha256:{}", &h[..h.len().min(12)])).collect();
        o.push_str(&format!("           earlier starts ran under other profile hashes: {}\n", o2.join(", ")));
    }
    o.push_str(&format!("artifact:  sha256:{}\n", r.artifact_sha256));
    if let Some(l) = r.limits {
        o.push_str(&format!("limits:    {}\n", output::limits_line(&l)));
    }
    o.push_str("\ngrants held:\n");
    if r.grants.is_empty() {
        o.push_str("  none (only solo-control)\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .grants
            .iter()
            .map(|x| vec![x.name.clone(), x.spec.clone(), short(&x.granted_by), when(x.at_unix_ms)])
            .collect();
        o.push_str(&indent(&table(&["NAME", "SPEC", "GRANTED BY", "AT"], &rows)));
    }
    o.push_str("\ntokens that can act on it (live, unrevoked, covering it):\n");
    let rows: Vec<Vec<String>> = r
        .tokens
        .iter()
        .map(|t| {
            vec![
                short(&t.id),
                t.subject.clone(),
                t.resource.clone(),
                t.permissions.join(","),
                crate::auth::format_utc(t.expires_at),
                if t.issued_by.is_empty() { "-".into() } else { short(&t.issued_by) },
            ]
        })
        .collect();
    o.push_str(&indent(&table(&["ID", "SUBJECT", "RESOURCE", "PERMISSIONS", "EXPIRES", "ISSUED BY"], &rows)));
    o.push_str("\ndenied syscalls:\n");
    if r.denials.is_empty() {
        o.push_str("  none recorded\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .denials
            .iter()
            .map(|d| {
                vec![d.call.clone(), d.action.clone(), d.count.to_string(), when(d.first_unix_ms), when(d.last_unix_ms)]
            })
            .collect();
        o.push_str(&indent(&table(&["CALL", "ACTION", "COUNT", "FIRST", "LAST"], &rows)));
    }
    o.push_str("\nlatest records:\n");
    let rows: Vec<Vec<String>> = r
        .recent
        .iter()
        .map(|x| vec![x.seq.to_string(), when(x.at_unix_ms), x.kind.clone(), x.message.clone()])
        .collect();
    o.push_str(&indent(&table(&["SEQ", "TIME (UTC)", "KIND", "MESSAGE"], &rows)));
    print!("{o}");
    Ok(ExitCode::SUCCESS)
}

fn indent(t: &str) -> String {
    t.lines().map(|l| format!("  {l}\n")).collect()
}
