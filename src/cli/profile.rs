//! `solo profile …`: security-team tooling for sandbox profiles. Works
//! offline: it reads the built-in profiles embedded in this binary plus
//! `--profiles-dir`, exactly as `solo serve` would, and never talks to a
//! daemon.

use super::output::table;
use crate::profiles::{self, audit, diff, explain, file::locate, Profile, ProfileError, ProfileSet, BUILTIN};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// `solo profile` and its subcommands. A comment, not a doc comment: clap
// would show it instead of the `profile` variant's text.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
NAME is a profile name (a built-in: base, default, network-client, web-server, strict; or a file of \
--profiles-dir) or a path to a .toml file (anything with a '/' or ending in .toml).

Examples:
  solo profile list
  solo profile explain strict
  solo profile audit network-client --threshold 5
  solo profile diff default network-client
  solo profile check ./my-profile.toml --profiles-dir /etc/solo/profiles

The format, the syscall groups and the audit weights are documented in docs/profiles.md.")]
pub struct ProfileArgs {
    /// Directory of extra profiles (*.toml), as for `solo serve --profiles-dir`: each file adds a
    /// profile or overrides the built-in of the same name.
    #[arg(long, global = true, env = "SOLO_PROFILES_DIR", value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub cmd: ProfileCommand,
}

#[derive(Debug, Clone, Subcommand)]
#[command(defer = true)]
pub enum ProfileCommand {
    /// Check a profile file: it parses, every value is valid, and it only tightens what it extends.
    ///
    /// Errors are printed as FILE:LINE:COLUMN: message (one line each; a profile that widens its
    /// parent gets one line per widening) and the exit status is 1. A valid file prints one line
    /// with its name, what it extends and its sha256 (the hash Solo records for every instance),
    /// and the exit status is 0.
    #[command(
        after_help = "Example:\n  solo profile check my-profile.toml\n  my-profile.toml:7:1: [network] mode: 'wide' is not one of none, loopback, host"
    )]
    Check {
        /// The .toml file to check.
        file: PathBuf,
    },
    /// Say in plain words what a service under this profile can and cannot do.
    ///
    /// Layer by layer: namespaces, the filesystem view (what is visible, writable, and what is
    /// not visible at all), network, seccomp (every allowed group with why it is allowed and its
    /// syscalls, every denied one, the special cases), Landlock, limits. With --json, the same as
    /// one JSON object.
    #[command(after_help = "Example:\n  solo profile explain strict\n  solo profile explain ./my-profile.toml --json")]
    Explain {
        /// Profile name or path to a .toml file.
        name: String,
    },
    /// Score how exposed a service under this profile is: 0.0 (most locked down) to 10.0.
    ///
    /// Prints the score, then one finding per line: whether it is exposed, its id, its weight and
    /// what was found. The score is 10 × (exposed weight) / (total weight); the weights and the
    /// reason for each are in docs/profiles.md. Like `systemd-analyze security`, it measures the
    /// profile's configuration, not the host: use `solo doctor` for what the kernel enforces.
    #[command(after_help = "Exit status: 0, or 1 when --threshold is given and the score is above it \
(for CI: `solo profile audit my-profile.toml --threshold 3`).")]
    Audit {
        /// Profile name or path to a .toml file.
        name: String,
        /// Exit 1 when the score is above this (0 to 10).
        #[arg(long, value_name = "SCORE", value_parser = threshold)]
        threshold: Option<f64>,
    },
    /// Show what B allows that A does not, and what A allows that B does not, layer by layer.
    ///
    /// Namespaces, read-only paths, devices, /tmp size, network, seccomp syscalls (by name,
    /// grouped), default action, Landlock, limits. Exit status 0 whether or not they differ.
    #[command(after_help = "Example:\n  solo profile diff default network-client")]
    Diff {
        /// The first profile (name or path).
        a: String,
        /// The second profile (name or path).
        b: String,
    },
    /// List the known profiles: name, what it extends, exposure score, sha256 prefix, description.
    List,
}

fn threshold(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=10.0).contains(&v) {
        return Err(format!("{v} is not between 0 and 10"));
    }
    Ok(v)
}

/// Runs a `solo profile` subcommand.
pub fn run(json: bool, a: ProfileArgs) -> anyhow::Result<ExitCode> {
    let dir = a.profiles_dir.as_deref();
    let result = match a.cmd {
        ProfileCommand::Check { file } => check(&file, dir),
        ProfileCommand::Explain { name } => load(&name, dir).and_then(|(p, set)| {
            let e = explain::explain(&p, &set);
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!("{}", e.render());
            }
            Ok(ExitCode::SUCCESS)
        }),
        ProfileCommand::Audit { name, threshold } => load(&name, dir).and_then(|(p, _)| {
            let r = audit::audit(&p);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", r.render());
            }
            match threshold {
                Some(t) if r.score > t => {
                    eprintln!("solo: profile {}: exposure {:.1} is above the threshold {t:.1}", r.name, r.score);
                    Ok(ExitCode::FAILURE)
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }),
        ProfileCommand::Diff { a, b } => load(&a, dir).and_then(|(pa, _)| {
            let (pb, _) = load(&b, dir)?;
            let x = diff::diff(&pa, &pb);
            if json {
                println!("{}", serde_json::to_string_pretty(&x)?);
            } else {
                print!("{}", x.render());
            }
            Ok(ExitCode::SUCCESS)
        }),
        ProfileCommand::List => list(json, dir),
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => match e.downcast::<ProfileError>() {
            // Profile errors print as compiler messages (FILE:LINE:COL: ...),
            // without the "solo: " prefix, so editors and CI can jump to them.
            Ok(pe) => {
                eprintln!("{}", located(&pe).join("\n"));
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e),
        },
    }
}

/// A profile and the set it was resolved in.
fn load(name: &str, dir: Option<&Path>) -> anyhow::Result<(Profile, ProfileSet)> {
    let set = ProfileSet::load(dir)?;
    let p = profiles::find(name, dir)?;
    Ok((p, set))
}

fn check(file: &Path, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let p = profiles::check_file(file, dir)?;
    let extends = match &p.extends {
        Some(e) => format!("extends '{e}' and only tightens it"),
        None => "extends nothing".to_owned(),
    };
    println!("{}: ok: profile '{}' {extends}; sha256 {}", file.display(), p.name, p.sha256);
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if stem != p.name {
        eprintln!(
            "note: in a profiles directory this file must be named {}.toml (solo serve refuses a name that differs from the file name)",
            p.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(json: bool, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let set = ProfileSet::load(dir)?;
    if json {
        let v: Vec<serde_json::Value> = set
            .profiles
            .values()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "extends": p.extends,
                    "description": p.description,
                    "source": explain::source(p),
                    "sha256": p.sha256,
                    "score": audit::audit(p).score,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).context("json")?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = set
        .profiles
        .values()
        .map(|p| {
            vec![
                p.name.clone(),
                p.extends.clone().unwrap_or_else(|| "-".into()),
                format!("{:.1}", audit::audit(p).score),
                p.sha256[..p.sha256.len().min(12)].to_owned(),
                if explain::source(p).starts_with("built-in") { "built-in".into() } else { p.file.clone() },
                p.description.clone(),
            ]
        })
        .collect();
    println!("{}", table(&["NAME", "EXTENDS", "SCORE", "SHA256", "SOURCE", "DESCRIPTION"], &rows));
    Ok(ExitCode::SUCCESS)
}

/// The error as lines of `FILE:LINE:COL: message`. A widening gets one
/// line per finding, each pointing at the key it comes from.
fn located(e: &ProfileError) -> Vec<String> {
    match e {
        ProfileError::Widens { file, name, parent, findings } => {
            let src = source_of(file);
            findings
                .iter()
                .map(|f| {
                    let (section, key) = finding_key(f);
                    let (l, c) = src.as_deref().map_or((1, 1), |s| locate(s, section, key));
                    format!("{file}:{l}:{c}: profile '{name}' widens what it extends ('{parent}'): {f}")
                })
                .collect()
        }
        ProfileError::Cycle { file, .. } => {
            let (l, c) = source_of(file).as_deref().map_or((1, 1), |s| locate(s, "", "extends"));
            vec![format!("{file}:{l}:{c}: {}", strip(e, file))]
        }
        other => vec![other.to_string()],
    }
}

/// `e`'s message without its leading `file: `.
fn strip(e: &ProfileError, file: &str) -> String {
    let s = e.to_string();
    s.strip_prefix(&format!("{file}: ")).map(str::to_owned).unwrap_or(s)
}

/// The `[section] key` a widening finding names (`on_missing` is top-level).
fn finding_key(f: &str) -> (&str, &str) {
    if let Some(rest) = f.strip_prefix('[') {
        if let Some((section, rest)) = rest.split_once(']') {
            let key = rest.trim_start().split([':', ' ']).next().unwrap_or("");
            return (section, key);
        }
    }
    ("", f.split(':').next().unwrap_or(""))
}

/// The text of a profile file named in an error: a built-in or a path.
fn source_of(file: &str) -> Option<String> {
    for (name, src) in BUILTIN {
        if file == format!("sandbox-profiles/{name}.toml") {
            return Some((*src).to_owned());
        }
    }
    std::fs::read_to_string(file).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_name_their_key() {
        assert_eq!(finding_key("[network] mode: Host is wider"), ("network", "mode"));
        assert_eq!(finding_key("[seccomp] allow: adds syscalls"), ("seccomp", "allow"));
        assert_eq!(finding_key("on_missing: degrades where"), ("", "on_missing"));
    }
}
