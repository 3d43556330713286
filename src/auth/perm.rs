//! Permissions: one per supervisor operation, and a bit set of them.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One operation a token may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Perm {
    Deploy,
    Status,
    Kill,
    Watch,
    Grant,
    Update,
    Shutdown,
    Connect,
    System,
    /// Read the audit log (records of the services the token covers;
    /// verifying the whole chain needs resource `*`).
    Audit,
}

impl Perm {
    /// Every permission, in the order of [`Perm::name`] listings.
    pub const ALL: [Perm; 10] = [
        Perm::Deploy,
        Perm::Status,
        Perm::Kill,
        Perm::Watch,
        Perm::Grant,
        Perm::Update,
        Perm::Shutdown,
        Perm::Connect,
        Perm::System,
        Perm::Audit,
    ];

    /// The lowercase name used in tokens, the CLI and messages.
    pub fn name(self) -> &'static str {
        match self {
            Perm::Deploy => "deploy",
            Perm::Status => "status",
            Perm::Kill => "kill",
            Perm::Watch => "watch",
            Perm::Grant => "grant",
            Perm::Update => "update",
            Perm::Shutdown => "shutdown",
            Perm::Connect => "connect",
            Perm::System => "system",
            Perm::Audit => "audit",
        }
    }

    /// The permission named `s` (exactly, lowercase), if any.
    pub fn parse(s: &str) -> Option<Perm> {
        Perm::ALL.into_iter().find(|p| p.name() == s)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`Perm`]s. Serialized as a list of names in [`Perm::ALL`] order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u16);

impl Perms {
    /// The empty set.
    pub const NONE: Perms = Perms(0);

    /// Every permission.
    pub fn all() -> Perms {
        Perm::ALL.into_iter().collect()
    }

    pub fn contains(self, p: Perm) -> bool {
        self.0 & p.bit() != 0
    }

    /// True iff every permission in `self` is in `other`.
    pub fn is_subset(self, other: Perms) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self` with `p` added.
    pub fn with(self, p: Perm) -> Perms {
        Perms(self.0 | p.bit())
    }

    /// The permissions in `self` that are not in `other`.
    pub fn difference(self, other: Perms) -> Perms {
        Perms(self.0 & !other.0)
    }

    /// The permissions in [`Perm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Perm> {
        Perm::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Perm::name).collect()
    }

    /// Parses a comma-separated list such as `deploy,status,kill` (spaces
    /// around names are ignored; an empty list is the empty set). The error
    /// names the first unknown word and lists the valid ones.
    pub fn parse_list(s: &str) -> Result<Perms, String> {
        let mut set = Perms::NONE;
        if s.trim().is_empty() {
            return Ok(set);
        }
        for word in s.split(',').map(str::trim) {
            match Perm::parse(word) {
                Some(p) => set = set.with(p),
                None => return Err(unknown_perm(word)),
            }
        }
        Ok(set)
    }
}

fn unknown_perm(word: &str) -> String {
    let valid: Vec<&str> = Perm::ALL.iter().map(|p| p.name()).collect();
    format!("unknown permission '{word}' (valid: {})", valid.join(", "))
}

impl FromIterator<Perm> for Perms {
    fn from_iter<I: IntoIterator<Item = Perm>>(iter: I) -> Perms {
        iter.into_iter().fold(Perms::NONE, Perms::with)
    }
}

impl fmt::Debug for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Perm::name)).finish()
    }
}

/// `deploy,status` (empty string for the empty set), as [`Perms::parse_list`] reads it.
impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for Perms {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.iter().count()))?;
        for p in self.iter() {
            seq.serialize_element(p.name())?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Perms {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Perms, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Perms;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of permission names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Perms, A::Error> {
                let mut set = Perms::NONE;
                while let Some(word) = seq.next_element::<String>()? {
                    match Perm::parse(&word) {
                        Some(p) => set = set.with(p),
                        None => return Err(de::Error::custom(unknown_perm(&word))),
                    }
                }
                Ok(set)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_distinct_bits() {
        let mut seen = 0u16;
        for p in Perm::ALL {
            assert_eq!(Perm::parse(p.name()), Some(p));
            assert_eq!(seen & p.bit(), 0);
            seen |= p.bit();
        }
        assert_eq!(Perm::parse("Deploy"), None);
        assert_eq!(Perms::all().iter().count(), Perm::ALL.len());
    }

    #[test]
    fn parse_list_names_the_bad_word_and_the_valid_ones() {
        let set = Perms::parse_list("deploy, kill,status").unwrap();
        assert_eq!(set.names(), ["deploy", "status", "kill"]);
        let err = Perms::parse_list("deploy,reboot").unwrap_err();
        assert!(err.contains("'reboot'") && err.contains("deploy, status, kill"), "{err}");
        assert!(Perms::parse_list("").unwrap().is_empty());
        assert!(Perms::parse_list("deploy,,kill").is_err());
    }

    #[test]
    fn subset_and_serde() {
        let a = Perms::parse_list("deploy,kill").unwrap();
        let b = Perms::parse_list("deploy,kill,watch").unwrap();
        assert!(a.is_subset(b) && !b.is_subset(a) && Perms::NONE.is_subset(a));
        assert_eq!(b.difference(a).names(), ["watch"]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"["deploy","kill"]"#);
        assert_eq!(serde_json::from_str::<Perms>(&json).unwrap(), a);
        let err = serde_json::from_str::<Perms>(r#"["deploy","root"]"#).unwrap_err().to_string();
        assert!(err.contains("unknown permission 'root'"), "{err}");
        assert!(serde_json::from_str::<Perms>(r#""deploy""#).is_err());
    }
}
