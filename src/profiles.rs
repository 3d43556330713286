//! Sandbox profiles. The built-ins in `sandbox-profiles/*.toml` are embedded
//! in the binary; every instance records the profile's name and sha256.
//!
//! This foundation parses each profile's identity, `extends`, `[network]`
//! and `[limits]` (the defaults a deploy gets when it names no limit), and
//! enforces the layers common to every profile (cgroup, own uid,
//! no_new_privs, rlimits, no inherited fds). Namespaces, Landlock and
//! seccomp per profile are the sandbox layer's work (docs/sandbox.md).

use crate::spec::{parse_bytes, ProfileDefaults};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Built-in profiles: (name, TOML source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("base", include_str!("../sandbox-profiles/base.toml")),
    ("default", include_str!("../sandbox-profiles/default.toml")),
    ("network-client", include_str!("../sandbox-profiles/network-client.toml")),
    ("web-server", include_str!("../sandbox-profiles/web-server.toml")),
    ("strict", include_str!("../sandbox-profiles/strict.toml")),
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile {file}: {message}")]
    Parse { file: String, message: String },
    #[error("profile {file}: [limits] {key}: {message}")]
    Limit { file: String, key: &'static str, message: String },
    #[error("profile {name}: extends unknown profile '{parent}'")]
    UnknownParent { name: String, parent: String },
    #[error("profile {name}: extends chain loops")]
    Cycle { name: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    memory_bytes: Option<String>,
    max_pids: Option<u32>,
    cpu_weight: Option<u32>,
    max_open_files: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkFile {
    mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    description: String,
    extends: Option<String>,
    #[serde(default)]
    network: NetworkFile,
    #[serde(default)]
    limits: LimitsFile,
}

/// A parsed profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub extends: Option<String>,
    pub network: Option<String>,
    /// Its own limits (not yet merged with its parent's).
    pub limits: ProfileDefaults,
    pub sha256: String,
}

/// Parses one profile; errors carry the file, line and column.
pub fn parse(file: &str, src: &str) -> Result<Profile, ProfileError> {
    let f: ProfileFile = toml::from_str(src).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(src, s.start)).unwrap_or((0, 0));
        ProfileError::Parse { file: format!("{file}:{line}:{col}"), message: e.message().to_owned() }
    })?;
    let memory_bytes = match &f.limits.memory_bytes {
        Some(s) => Some(parse_bytes(s).map_err(|m| ProfileError::Limit {
            file: file.into(),
            key: "memory_bytes",
            message: m,
        })?),
        None => None,
    };
    if let Some(m) = &f.network.mode {
        if !matches!(m.as_str(), "none" | "loopback" | "host") {
            return Err(ProfileError::Parse {
                file: file.into(),
                message: format!("[network] mode: '{m}' is not one of none, loopback, host"),
            });
        }
    }
    Ok(Profile {
        name: f.name,
        description: f.description,
        extends: f.extends,
        network: f.network.mode,
        limits: ProfileDefaults {
            memory_bytes,
            max_pids: f.limits.max_pids,
            cpu_weight: f.limits.cpu_weight,
            max_open_files: f.limits.max_open_files,
        },
        sha256: hex::encode(Sha256::digest(src.as_bytes())),
    })
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count() + 1).unwrap_or(1);
    (line, col)
}

/// Every built-in profile, with limits merged along `extends` (a child's
/// value wins over its parent's).
pub fn builtin() -> Result<BTreeMap<String, (Profile, ProfileDefaults)>, ProfileError> {
    let parsed: BTreeMap<String, Profile> = BUILTIN
        .iter()
        .map(|(n, src)| parse(&format!("sandbox-profiles/{n}.toml"), src).map(|p| ((*n).to_owned(), p)))
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for (name, p) in &parsed {
        let mut merged = p.limits;
        let mut cur = p;
        let mut hops = 0;
        while let Some(parent) = &cur.extends {
            hops += 1;
            if hops > parsed.len() {
                return Err(ProfileError::Cycle { name: name.clone() });
            }
            cur = parsed
                .get(parent)
                .ok_or_else(|| ProfileError::UnknownParent { name: name.clone(), parent: parent.clone() })?;
            merged = merged.or(cur.limits);
        }
        out.insert(name.clone(), (p.clone(), merged));
    }
    Ok(out)
}

/// sha256 of a built-in profile's source.
pub fn sha256(name: &str) -> Option<String> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, src)| hex::encode(Sha256::digest(src.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_name_themselves() {
        let all = builtin().expect("built-in profiles parse");
        assert_eq!(all.len(), BUILTIN.len());
        for (name, (p, _)) in &all {
            assert_eq!(&p.name, name);
            assert!(!p.description.is_empty());
        }
    }

    #[test]
    fn limits_inherit_along_extends() {
        let all = builtin().expect("parse");
        let (_, strict) = &all["strict"];
        assert_eq!(strict.memory_bytes, Some(64 << 20));
        assert_eq!(strict.max_pids, Some(8));
        assert_eq!(strict.max_open_files, Some(1024), "inherited from base");
        let (_, default) = &all["default"];
        assert_eq!(default.memory_bytes, Some(256 << 20));
    }

    #[test]
    fn errors_have_line_and_column() {
        let e =
            parse("x.toml", "name = \"x\"\ndescription = \"d\"\n[limits]\nmax_pidz = 3\n").expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("x.toml:4:1"), "{msg}");
        assert!(msg.contains("max_pidz"), "{msg}");
        let e = parse("y.toml", "name = \"y\"\ndescription = \"d\"\n[limits]\nmemory_bytes = \"lots\"\n")
            .expect_err("bad size");
        assert!(e.to_string().contains("memory_bytes"), "{e}");
        let e =
            parse("z.toml", "name = \"z\"\ndescription = \"d\"\n[network]\nmode = \"wide\"\n").expect_err("bad mode");
        assert!(e.to_string().contains("'wide'"), "{e}");
    }
}
