//! The TOML shape of a profile file, as written. Every key is optional
//! except `name` and `description`: an unset key is inherited from the
//! profile named by `extends` (resolved along `extends` by the parent module).

use serde::Deserialize;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub memory_bytes: Option<String>,
    pub max_pids: Option<u32>,
    pub cpu_weight: Option<u32>,
    pub max_open_files: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacesFile {
    pub mount: Option<bool>,
    pub pid: Option<bool>,
    pub ipc: Option<bool>,
    pub uts: Option<bool>,
    pub cgroup: Option<bool>,
    pub user: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemFile {
    pub read_only: Option<Vec<String>>,
    pub tmp_size: Option<String>,
    pub devices: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    pub mode: Option<String>,
    pub bind: Option<bool>,
    pub socket_families: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompFile {
    pub default_action: Option<String>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub on_violation: Option<String>,
    pub kill_grace_ms: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockFile {
    pub min_abi: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub name: String,
    pub description: String,
    pub extends: Option<String>,
    pub on_missing: Option<String>,
    #[serde(default)]
    pub namespaces: NamespacesFile,
    #[serde(default)]
    pub filesystem: FilesystemFile,
    #[serde(default)]
    pub network: NetworkFile,
    #[serde(default)]
    pub seccomp: SeccompFile,
    #[serde(default)]
    pub landlock: LandlockFile,
    #[serde(default)]
    pub limits: LimitsFile,
}

/// 1-based line and column of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count() + 1).unwrap_or(1);
    (line, col)
}

/// Where `key` is set inside `[section]` (or at the top when `section` is
/// empty): the line and column of the key, or of the section header, or
/// 1:1. Used to point semantic errors (a bad value) at the right line.
pub fn locate(src: &str, section: &str, key: &str) -> (usize, usize) {
    let mut current = String::new();
    let mut header = None;
    for (i, raw) in src.lines().enumerate() {
        let line = raw.trim_start();
        let indent = raw.len() - line.len();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_owned();
            if current == section {
                header = Some((i + 1, indent + 1));
            }
            continue;
        }
        if current == section {
            let k = line.split('=').next().unwrap_or("").trim();
            if k == key && line.contains('=') {
                return (i + 1, indent + 1);
            }
        }
    }
    header.unwrap_or((1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_keys_in_sections() {
        let src = "name = \"x\"\n[network]\n  mode = \"wide\"\n[seccomp]\nallow = []\n";
        assert_eq!(locate(src, "network", "mode"), (3, 3));
        assert_eq!(locate(src, "seccomp", "allow"), (5, 1));
        assert_eq!(locate(src, "seccomp", "deny"), (4, 1));
        assert_eq!(locate(src, "", "name"), (1, 1));
    }
}
