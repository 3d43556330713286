//! Sandbox profiles. The built-ins in `sandbox-profiles/*.toml` are embedded
//! in the binary; every instance records the profile's name and sha256.
//!
//! This foundation knows profiles by name and hash and enforces the layers
//! common to all of them (cgroup, own uid, no_new_privs, rlimits, no
//! inherited fds). Namespaces, Landlock and seccomp per profile are the
//! sandbox layer's work (docs/sandbox.md).

use sha2::{Digest, Sha256};

/// Built-in profiles: (name, TOML source).
pub const BUILTIN: &[(&str, &str)] = &[
    ("base", include_str!("../sandbox-profiles/base.toml")),
    ("default", include_str!("../sandbox-profiles/default.toml")),
    ("network-client", include_str!("../sandbox-profiles/network-client.toml")),
    ("web-server", include_str!("../sandbox-profiles/web-server.toml")),
    ("strict", include_str!("../sandbox-profiles/strict.toml")),
];

pub fn names() -> Vec<String> {
    BUILTIN.iter().map(|(n, _)| (*n).to_owned()).collect()
}

/// sha256 of a built-in profile's source.
pub fn sha256(name: &str) -> Option<String> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, src)| hex::encode(Sha256::digest(src.as_bytes())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_builtin_names_itself() {
        for (name, src) in super::BUILTIN {
            assert!(src.contains(&format!("name = \"{name}\"")), "{name}.toml does not declare its name");
        }
    }
}
