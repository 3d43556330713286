//! Resources a token covers, and the narrowing order between them.
//!
//! A resource pattern is `*` (everything) or `KIND:VALUE` with KIND `service`
//! or `tcp`. A trailing `*` makes it a prefix (`service:agent-a-*`,
//! `tcp:10.0.0.5:*`); otherwise it is exact (`service:web`,
//! `tcp:db.internal:5432`). `*` may appear only as the last character.
//!
//! A *target* is a concrete resource an operation acts on: `KIND:VALUE`,
//! VALUE non-empty, no `*`, characters from the kind's set. Matching is on
//! strings, so [`resource_narrows`] is exact over all such strings (proven
//! against brute-force enumeration in the tests below).
//!
//! Error messages never quote the input: a resource may come from token
//! text, and the caller knows which value it passed.

use super::token::MAX_RESOURCE_LEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern<'a> {
    Any,
    /// Matches the target equal to this string (`kind:value`).
    Exact(&'a str),
    /// Matches targets starting with this string (`kind:` at least).
    Prefix(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Tcp,
}

impl Kind {
    fn of(s: &str) -> Option<(Kind, &str)> {
        if let Some(v) = s.strip_prefix("service:") {
            Some((Kind::Service, v))
        } else {
            s.strip_prefix("tcp:").map(|v| (Kind::Tcp, v))
        }
    }

    /// Characters a value of this kind may contain.
    fn allows(self, c: char) -> bool {
        match self {
            // Service ids: `[a-z0-9][a-z0-9-]{0,62}` (spec::ServiceId).
            Kind::Service => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            // Host names, IPv4, bracketed IPv6, then `:PORT`.
            Kind::Tcp => c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'),
        }
    }

    fn charset(self) -> &'static str {
        match self {
            Kind::Service => "a-z, 0-9 and '-'",
            Kind::Tcp => "letters, digits and . - _ : [ ]",
        }
    }
}

fn parse(s: &str) -> Result<Pattern<'_>, String> {
    if s.is_empty() {
        return Err("a resource must not be empty".into());
    }
    if s.len() > MAX_RESOURCE_LEN {
        return Err(format!("a resource is at most {MAX_RESOURCE_LEN} bytes; this one has {}", s.len()));
    }
    if s == "*" {
        return Ok(Pattern::Any);
    }
    let (body, prefix) = match s.strip_suffix('*') {
        Some(body) => (body, true),
        None => (s, false),
    };
    if body.contains('*') {
        return Err("'*' may only be the last character of a resource".into());
    }
    let Some((kind, value)) = Kind::of(body) else {
        return Err("a resource is '*' or KIND:VALUE with KIND 'service' or 'tcp'".into());
    };
    if !value.chars().all(|c| kind.allows(c)) {
        return Err(format!("a {} resource may contain only {}", kind_name(kind), kind.charset()));
    }
    if prefix {
        return Ok(Pattern::Prefix(body));
    }
    match kind {
        Kind::Service => exact_service(value)?,
        Kind::Tcp => exact_tcp(value)?,
    }
    Ok(Pattern::Exact(body))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Service => "service",
        Kind::Tcp => "tcp",
    }
}

fn exact_service(id: &str) -> Result<(), String> {
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok || id.len() > 63 {
        return Err(
            "service:ID needs a service id ([a-z0-9][a-z0-9-]{0,62}) or a prefix ending in '*' (service:*)".into()
        );
    }
    Ok(())
}

fn exact_tcp(addr: &str) -> Result<(), String> {
    const HOW: &str = "tcp:HOST:PORT needs a host and a port 1-65535 without leading zeros, or a prefix ending in '*'";
    let Some((host, port)) = addr.rsplit_once(':') else { return Err(HOW.into()) };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && !port.starts_with('0')
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|v6| !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':'))
    } else {
        !host.is_empty() && !host.contains([':', '[', ']'])
    };
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(HOW.into())
    }
}

/// Checks that `s` is a resource pattern; the error says what is wrong
/// without quoting `s`.
pub fn resource_valid(s: &str) -> Result<(), String> {
    parse(s).map(|_| ())
}

/// Whether `target` is something an operation can act on: `KIND:VALUE` with
/// a non-empty VALUE of the kind's characters (no `*`).
fn is_target(t: &str) -> bool {
    t.len() <= MAX_RESOURCE_LEN
        && Kind::of(t).is_some_and(|(kind, value)| !value.is_empty() && value.chars().all(|c| kind.allows(c)))
}

/// Does `pattern` cover the concrete `target` (`service:ID`, `tcp:HOST:PORT`)?
/// False when either is invalid (fails closed).
pub fn resource_matches(pattern: &str, target: &str) -> bool {
    if !is_target(target) {
        return false;
    }
    match parse(pattern) {
        Ok(Pattern::Any) => true,
        Ok(Pattern::Exact(e)) => e == target,
        Ok(Pattern::Prefix(p)) => target.starts_with(p),
        Err(_) => false,
    }
}

/// True iff every target `child` matches, `parent` matches too. False when
/// either is invalid (fails closed).
///
/// Why prefix-vs-prefix is `starts_with`: if the child prefix `q` does not
/// start with the parent prefix `r`, the target `q` + one character that
/// differs from `r[len q]` (or any, when `r` is no longer than `q`) is
/// matched by the child and not by the parent; every kind has at least two
/// value characters, so such a target exists.
pub fn resource_narrows(child: &str, parent: &str) -> bool {
    let (Ok(c), Ok(p)) = (parse(child), parse(parent)) else { return false };
    match (c, p) {
        (_, Pattern::Any) => true,
        (Pattern::Any, _) => false,
        // An exact pattern is itself a target.
        (Pattern::Exact(e), Pattern::Exact(f)) => e == f,
        (Pattern::Exact(e), Pattern::Prefix(r)) => e.starts_with(r),
        // A prefix matches infinitely many targets; an exact pattern one.
        (Pattern::Prefix(_), Pattern::Exact(_)) => false,
        (Pattern::Prefix(q), Pattern::Prefix(r)) => q.starts_with(r),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_and_invalid_patterns() {
        for ok in [
            "*",
            "service:*",
            "service:web",
            "service:agent-a-*",
            "tcp:*",
            "tcp:10.0.0.5:*",
            "tcp:db.internal:5432",
            "tcp:[::1]:80",
            "tcp:10.0.0.*",
        ] {
            assert_eq!(resource_valid(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "**",
            "service",
            "service:",
            "service:*web",
            "service:we*b",
            "service:Web",
            "service:-web",
            "file:/etc/*",
            "tcp:db",
            "tcp:db:0",
            "tcp:db:65536",
            "tcp:db:05432",
            "tcp::80",
            "tcp:[zz]:80",
            "tcp:a:b:80",
            "tcp:db.internal:5432 ",
        ] {
            assert!(resource_valid(bad).is_err(), "{bad:?} accepted");
        }
        assert!(resource_valid(&format!("service:{}", "a".repeat(300))).unwrap_err().contains("at most 256"));
        assert!(!resource_valid("service:we*b").unwrap_err().contains("we"), "error quotes its input");
    }

    #[test]
    fn matching() {
        assert!(resource_matches("*", "service:web"));
        assert!(resource_matches("service:agent-a-*", "service:agent-a-1"));
        assert!(!resource_matches("service:agent-a-*", "service:agent-b-1"));
        assert!(!resource_matches("service:agent-a-*", "tcp:agent-a-1:80"));
        assert!(resource_matches("service:web", "service:web"));
        assert!(!resource_matches("service:web", "service:web2"));
        assert!(resource_matches("tcp:10.0.0.5:*", "tcp:10.0.0.5:5432"));
        assert!(!resource_matches("tcp:10.0.0.5:*", "tcp:10.0.0.50:5432"));
        // Targets are concrete: never a pattern, never empty, never invalid.
        assert!(!resource_matches("*", "service:*"));
        assert!(!resource_matches("service:*", "service:"));
        assert!(!resource_matches("*", ""));
        assert!(!resource_matches("*", "file:/etc/passwd"));
        assert!(!resource_matches("service:we*b", "service:web"));
    }

    #[test]
    fn narrowing_examples() {
        assert!(resource_narrows("service:agent-a-1", "service:agent-a-*"));
        assert!(resource_narrows("service:agent-a-x*", "service:agent-a-*"));
        assert!(resource_narrows("service:*", "*"));
        assert!(resource_narrows("service:web", "service:web"));
        assert!(!resource_narrows("*", "service:*"));
        assert!(!resource_narrows("service:agent-*", "service:agent-a-*"));
        assert!(!resource_narrows("service:web*", "service:web"));
        assert!(!resource_narrows("tcp:*", "service:*"));
        assert!(!resource_narrows("service:x", "bad"));
    }

    // Brute force: small alphabets per kind, every target up to a length
    // past the longest generated pattern, so a counterexample target (at
    // most one character longer than either pattern) is always enumerated.
    const KINDS: [(&str, &[char]); 2] = [("service:", &['a', '-']), ("tcp:", &['a', '1', ':'])];
    const MAX_VALUE: usize = 3;

    fn values(alphabet: &[char], max: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..max {
            layer = layer.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            out.extend(layer.iter().cloned());
        }
        out
    }

    fn all_targets() -> Vec<String> {
        KINDS
            .iter()
            .flat_map(|(k, a)| {
                values(a, MAX_VALUE + 2).into_iter().filter(|v| !v.is_empty()).map(move |v| format!("{k}{v}"))
            })
            .collect()
    }

    fn pattern() -> impl Strategy<Value = String> {
        let kinded = (0..KINDS.len(), proptest::collection::vec(0..3usize, 0..=MAX_VALUE), any::<bool>()).prop_map(
            |(k, idx, star)| {
                let (kind, alphabet) = KINDS[k];
                let v: String = idx.iter().map(|i| alphabet[i % alphabet.len()]).collect();
                format!("{kind}{v}{}", if star { "*" } else { "" })
            },
        );
        prop_oneof![1 => Just("*".to_owned()), 8 => kinded]
    }

    fn brute_narrows(child: &str, parent: &str, targets: &[String]) -> bool {
        targets.iter().all(|t| !resource_matches(child, t) || resource_matches(parent, t))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn narrows_agrees_with_enumeration(child in pattern(), parent in pattern()) {
            let targets = all_targets();
            let fast = resource_narrows(&child, &parent);
            if resource_valid(&child).is_ok() && resource_valid(&parent).is_ok() {
                prop_assert_eq!(fast, brute_narrows(&child, &parent, &targets), "{} within {}", child, parent);
            } else {
                prop_assert!(!fast);
            }
        }

        #[test]
        fn narrows_is_a_preorder(a in pattern(), b in pattern(), c in pattern()) {
            if resource_valid(&a).is_ok() {
                prop_assert!(resource_narrows(&a, &a));
            }
            if resource_narrows(&a, &b) && resource_narrows(&b, &c) {
                prop_assert!(resource_narrows(&a, &c));
            }
        }
    }

    #[test]
    fn enumeration_covers_every_pattern_pair() {
        // Exhaustive over the same space as the proptest, so the law holds
        // for all of it, not only for the sampled cases.
        let targets = all_targets();
        let mut patterns = vec!["*".to_owned()];
        for (k, a) in KINDS {
            for v in values(a, MAX_VALUE) {
                patterns.push(format!("{k}{v}*"));
                patterns.push(format!("{k}{v}"));
            }
        }
        let valid: Vec<&String> = patterns.iter().filter(|p| resource_valid(p).is_ok()).collect();
        assert!(valid.len() > 40, "too few valid patterns: {}", valid.len());
        let covers: Vec<Vec<bool>> =
            valid.iter().map(|p| targets.iter().map(|t| resource_matches(p, t)).collect()).collect();
        for (c, cm) in valid.iter().zip(&covers) {
            for (p, pm) in valid.iter().zip(&covers) {
                let brute = cm.iter().zip(pm).all(|(in_c, in_p)| !in_c || *in_p);
                assert_eq!(resource_narrows(c, p), brute, "{c} within {p}");
            }
        }
    }
}
