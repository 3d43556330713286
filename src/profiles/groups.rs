//! Syscall groups (`sandbox-profiles/syscalls.toml`, embedded): the names a
//! profile's `[seccomp] allow` and `deny` lists use, expanded to syscalls.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// The embedded group file.
pub const SOURCE: &str = include_str!("../../sandbox-profiles/syscalls.toml");

/// One group: why it exists and its syscalls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub why: String,
    /// Only for deny lists: no built-in profile may allow it.
    #[serde(default)]
    pub never: bool,
    pub syscalls: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    groups: BTreeMap<String, Group>,
}

/// Every group, by name (with its leading `@`).
pub fn all() -> &'static BTreeMap<String, Group> {
    static GROUPS: OnceLock<BTreeMap<String, Group>> = OnceLock::new();
    GROUPS.get_or_init(|| match toml::from_str::<GroupsFile>(SOURCE) {
        Ok(f) => f.groups,
        // The file is embedded and checked by a unit test; an error here is
        // a build of a broken tree.
        Err(e) => panic!("sandbox-profiles/syscalls.toml is invalid: {e}"),
    })
}

/// Every syscall any group names.
pub fn known_syscalls() -> BTreeSet<&'static str> {
    all().values().flat_map(|g| g.syscalls.iter().map(String::as_str)).collect()
}

/// Expands a list of groups and syscall names. Unknown groups are an error
/// naming the entry; single syscall names are checked against the groups'
/// names and the architecture's table by [`crate::sandbox::seccomp`].
pub fn expand(list: &[String]) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for item in list {
        if let Some(_g) = item.strip_prefix('@') {
            let g = all().get(item).ok_or_else(|| {
                let known: Vec<&str> = all().keys().map(String::as_str).collect();
                format!("unknown syscall group '{item}' (known: {})", known.join(", "))
            })?;
            out.extend(g.syscalls.iter().cloned());
        } else if item.is_empty() || !item.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(format!("'{}' is neither a group (@name) nor a syscall name", item.escape_debug()));
        } else {
            out.insert(item.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_and_explain_themselves() {
        assert!(all().len() >= 10);
        for (name, g) in all() {
            assert!(name.starts_with('@'), "{name}");
            assert!(!g.why.is_empty() && !g.syscalls.is_empty(), "{name}");
        }
    }

    #[test]
    fn never_groups_share_nothing_with_allowable_ones() {
        let never: BTreeSet<&str> =
            all().values().filter(|g| g.never).flat_map(|g| g.syscalls.iter().map(String::as_str)).collect();
        for (name, g) in all().iter().filter(|(_, g)| !g.never) {
            for s in &g.syscalls {
                assert!(!never.contains(s.as_str()), "{s} is in {name} and in a never group");
            }
        }
    }

    #[test]
    fn every_group_syscall_exists_on_this_architecture() {
        for s in known_syscalls() {
            assert!(crate::sandbox::seccomp::resolve(s).is_ok(), "{s} is not a syscall here");
        }
    }

    #[test]
    fn expand_reports_unknown_entries() {
        assert!(expand(&["@basic-io".into()]).is_ok_and(|s| s.contains("read")));
        assert!(expand(&["@nope".into()]).expect_err("unknown group").contains("unknown syscall group '@nope'"));
        assert!(expand(&["Read!".into()]).expect_err("bad name").contains("neither a group"));
    }
}
