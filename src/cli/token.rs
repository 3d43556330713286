//! `solo token issue|attenuate|revoke|inspect`. Attenuate and inspect work
//! offline (a holder narrows its own token without the key; the daemon
//! re-checks every step when the token is used). A token is printed only on
//! stdout, only by the command that made it.

use super::client::Client;
use super::output::{self, json};
use super::Global;
use crate::auth::{self, Perms, Restriction, Token};
use crate::proto::v1 as pb;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub cmd: TokenCommand,
}

#[derive(Debug, Clone, Subcommand)]
#[command(defer = true)]
pub enum TokenCommand {
    /// Ask the daemon for a new token, narrower than (or equal to) yours.
    Issue {
        /// Who it is for, e.g. agent-a (default with --service: service:ID).
        #[arg(long)]
        subject: Option<String>,
        /// Permissions, comma-separated: deploy, status, kill, watch, grant, update, shutdown, connect, system, audit.
        #[arg(long = "perm", value_name = "LIST", required = true)]
        perms: Vec<String>,
        /// What it covers: * | service:ID | service:PREFIX* | tcp:HOST:PORT | tcp:HOST:* [default: your token's].
        #[arg(long)]
        resource: Option<String>,
        /// Lifetime, e.g. 90s, 30m, 12h, 7d [default: 1h; never beyond your token's].
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// For this service: the subject defaults to service:ID. Solo does not deliver it; hand it over yourself (e.g. deploy --env).
        #[arg(long, value_name = "ID")]
        service: Option<String>,
    },
    /// Derive a narrower child of a token, offline (no daemon needed).
    Attenuate {
        /// The token to narrow: a file, or - for stdin [default: your token (--token, --token-file, the operator token)].
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Keep only these permissions (comma-separated).
        #[arg(long = "perm", value_name = "LIST")]
        perms: Vec<String>,
        /// A narrower resource.
        #[arg(long)]
        resource: Option<String>,
        /// A shorter life, from now (e.g. 10m).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
        /// Who the child is for.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Revoke a token by id; every token derived from it stops working too.
    Revoke {
        /// The token id (32 hex digits; `solo token inspect` shows it).
        id: String,
    },
    /// Decode a token and show its chain, without verifying it.
    Inspect {
        /// A file, or - for stdin [default: your token].
        #[arg(value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

/// `90s`, `30m`, `12h`, `7d`, or plain seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a duration like 90s, 30m, 12h or 7d"))?;
    let secs = n.checked_mul(mult).ok_or_else(|| format!("'{s}' is too long"))?;
    if secs == 0 {
        return Err("a token's life must be at least 1s".into());
    }
    Ok(secs)
}

fn read_from(g: &Global, from: Option<&PathBuf>) -> anyhow::Result<String> {
    match from {
        Some(p) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("read the token from stdin")?;
            Ok(s.trim().to_owned())
        }
        Some(p) => super::read_token_file(p),
        None => g.token(),
    }
}

/// Runs the offline subcommands; `None` when the daemon is needed.
pub fn run_offline(g: &Global, cmd: &TokenCommand) -> Option<anyhow::Result<ExitCode>> {
    match cmd {
        TokenCommand::Attenuate { from, perms, resource, ttl, subject } => {
            Some(attenuate(g, from.as_ref(), perms, resource.clone(), *ttl, subject.clone()))
        }
        TokenCommand::Inspect { from } => Some(inspect(g, from.as_ref())),
        _ => None,
    }
}

fn attenuate(
    g: &Global,
    from: Option<&PathBuf>,
    perms: &[String],
    resource: Option<String>,
    ttl: Option<u64>,
    subject: Option<String>,
) -> anyhow::Result<ExitCode> {
    let parent = Token::parse(&read_from(g, from)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let perms = if perms.is_empty() {
        None
    } else {
        Some(Perms::parse_list(&perms.join(",")).map_err(|e| anyhow::anyhow!("--perm: {e}"))?)
    };
    if let Some(r) = &resource {
        auth::resource_valid(r).map_err(|e| anyhow::anyhow!("--resource: {e}"))?;
    }
    let now = auth::now_secs();
    let r = Restriction { subject, resource, perms, expires_at: ttl.map(|t| now + t) };
    let child = auth::attenuate(&parent, r, now).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", child.encode());
    eprintln!("token {} (child of {})", child.id(), parent.id());
    Ok(ExitCode::SUCCESS)
}

fn inspect(g: &Global, from: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let t = Token::parse(&read_from(g, from)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    if g.json {
        let chain: Vec<_> = t.chain().to_vec();
        println!("{}", serde_json::to_string_pretty(&chain)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = t
        .chain()
        .iter()
        .map(|c| {
            vec![
                c.id.clone(),
                c.subject.clone(),
                c.perms.names().join(","),
                c.resource.clone(),
                if c.expires_at == 0 { "never".into() } else { c.expires_at.to_string() },
            ]
        })
        .collect();
    println!("{}", output::table(&["ID", "SUBJECT", "PERMISSIONS", "RESOURCE", "EXPIRES (unix s)"], &rows));
    println!("not verified here: the daemon checks the signature, every narrowing, expiry and revocation on use");
    Ok(ExitCode::SUCCESS)
}

/// Runs the subcommands that talk to the daemon.
pub async fn run_online(g: &Global, c: &mut Client, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Issue { subject, perms, resource, ttl, service } => {
            let ttl_seconds = match ttl {
                None => 0,
                Some(t) => u32::try_from(t).map_err(|_| anyhow::anyhow!("--ttl: {t} s is too long"))?,
            };
            let req = pb::GrantCapabilityRequest {
                service: service.unwrap_or_default(),
                what: Some(pb::grant_capability_request::What::Token(pb::TokenGrant {
                    permissions: perms.iter().flat_map(|p| p.split(',')).map(|p| p.trim().to_owned()).collect(),
                    resource: resource.unwrap_or_default(),
                    ttl_seconds,
                    subject: subject.unwrap_or_default(),
                })),
            };
            let r = c.grant_capability(req).await.map_err(super::commands::status_err)?.into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.GrantCapabilityResponse"));
            } else {
                println!("{}", r.token);
                eprintln!("token {} issued; it is shown only now", r.token_id);
            }
        }
        TokenCommand::Revoke { id } => {
            let req = pb::RevokeCapabilityRequest { what: Some(pb::revoke_capability_request::What::TokenId(id)) };
            let r = c.revoke_capability(req).await.map_err(super::commands::status_err)?.into_inner();
            if g.json {
                println!("{}", json(&r, "solo.v1.RevokeCapabilityResponse"));
            } else {
                println!("revoked {} token id(s), children included", r.revoked);
            }
        }
        TokenCommand::Attenuate { .. } | TokenCommand::Inspect { .. } => {
            bail!("internal: an offline subcommand reached the daemon path")
        }
    }
    Ok(ExitCode::SUCCESS)
}
