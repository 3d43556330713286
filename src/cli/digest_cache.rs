//! Digests of files the CLI hashed before, by file identity, so deploying
//! the same large program again does not hash it again (~0.5 ms for 760 KB
//! with SHA extensions, a fifth of a whole `solo deploy --wait`).
//!
//! An entry is keyed by what changes whenever the file's content can have
//! changed: device, inode, size, mtime and ctime (nanoseconds). ctime
//! cannot be set from user space, and every write, truncate, chmod or
//! rename sets it. Like git's index, an entry is only written for a file
//! whose mtime and ctime are at least [`SETTLED`] old when it was hashed:
//! file timestamps come from a coarse clock, so a file written again within
//! the same tick as the hashed version could keep its timestamps; one
//! already settled cannot be changed without them moving past the time it
//! was hashed. It is only written when the file's identity was the same
//! before and after hashing it.
//!
//! The cache is the caller's own file, `$XDG_CACHE_HOME/solo/sha256` (or
//! `~/.cache/solo/sha256`), 0600 in a 0700 directory: whoever can write it
//! can already replace the caller's programs. A wrong digest cannot make
//! the daemon run other bytes than the file's unless they are stored under
//! it, and the daemon stores bytes only under their own hash. Any error
//! reading or writing it just means hashing again. `SOLO_DIGEST_CACHE=off`
//! turns it off; deleting the file empties it.

use std::fs::Metadata;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How old a file's timestamps must be for its digest to be kept.
pub const SETTLED: Duration = Duration::from_secs(2);

/// Entries kept: the most recently written first.
const MAX_ENTRIES: usize = 256;

/// Where the cache lives, or `None` when it is off or no home is known.
pub fn default_path() -> Option<PathBuf> {
    if std::env::var_os("SOLO_DIGEST_CACHE").is_some_and(|v| v == "off") {
        return None;
    }
    let base =
        std::env::var_os("XDG_CACHE_HOME").filter(|v| Path::new(v).is_absolute()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|v| Path::new(v).is_absolute()).map(|h| Path::new(&h).join(".cache"))
        })?;
    Some(base.join("solo").join("sha256"))
}

/// A file's identity: what any change of its content changes.
fn key(m: &Metadata) -> String {
    format!("{}:{}:{}:{}.{}:{}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
}

/// The digest recorded for the file `m` describes, if any.
pub fn lookup(cache: &Path, m: &Metadata) -> Option<String> {
    let text = std::fs::read_to_string(cache).ok()?;
    let k = key(m);
    text.lines().find_map(|l| {
        let (lk, sha) = l.split_once(' ')?;
        (lk == k && is_sha256(sha)).then(|| sha.to_owned())
    })
}

/// Records `sha` for the file that `before` and `after` (its metadata
/// before and after hashing) describe: only if they agree and the file's
/// timestamps were at least `settled` old at `now`.
pub fn remember(cache: &Path, before: &Metadata, after: &Metadata, sha: &str, now: SystemTime, settled: Duration) {
    let k = key(after);
    if key(before) != k || !is_sha256(sha) {
        return;
    }
    let at = |secs: i64, nsec: i64| Some(Duration::new(u64::try_from(secs).ok()?, u32::try_from(nsec).ok()?));
    let (Some(mtime), Some(ctime)) = (at(after.mtime(), after.mtime_nsec()), at(after.ctime(), after.ctime_nsec()))
    else {
        return;
    };
    let Ok(now) = now.duration_since(UNIX_EPOCH) else { return };
    if now.saturating_sub(mtime.max(ctime)) < settled {
        return;
    }
    let old = std::fs::read_to_string(cache).unwrap_or_default();
    let mut text = format!("{k} {sha}\n");
    for l in
        old.lines().filter(|l| l.split_once(' ').is_some_and(|(lk, s)| lk != k && is_sha256(s))).take(MAX_ENTRIES - 1)
    {
        text.push_str(l);
        text.push('\n');
    }
    let _ = write(cache, &text);
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Replaces the cache file atomically (a temporary file, then rename), in
/// a 0700 directory, 0600.
fn write(cache: &Path, text: &str) -> std::io::Result<()> {
    let dir = cache.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tmp = dir.join(format!(".sha256.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(&tmp, cache).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(10)
    }

    #[test]
    fn a_settled_file_is_found_by_its_identity_and_a_change_misses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("c/solo/sha256");
        let file = dir.path().join("prog");
        std::fs::write(&file, b"one").expect("write");
        let m = std::fs::metadata(&file).expect("stat");
        assert_eq!(lookup(&cache, &m), None, "nothing yet");
        remember(&cache, &m, &m, A, later(), SETTLED);
        assert_eq!(lookup(&cache, &m).as_deref(), Some(A));
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(&cache), mode(cache.parent().expect("dir"))), (0o600, 0o700));
        // Written again (same size): ctime moves, so the entry no longer applies.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, b"two").expect("write");
        let m2 = std::fs::metadata(&file).expect("stat");
        assert_eq!(lookup(&cache, &m2), None, "a changed file is hashed again");
        remember(&cache, &m2, &m2, B, later(), SETTLED);
        assert_eq!(lookup(&cache, &m2).as_deref(), Some(B));
        assert_eq!(lookup(&cache, &m).as_deref(), Some(A), "older entries stay");
    }

    #[test]
    fn a_fresh_or_changing_file_is_not_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("sha256");
        let file = dir.path().join("prog");
        std::fs::write(&file, b"one").expect("write");
        let before = std::fs::metadata(&file).expect("stat");
        remember(&cache, &before, &before, A, SystemTime::now(), SETTLED);
        assert_eq!(lookup(&cache, &before), None, "timestamps younger than SETTLED");
        std::fs::write(&file, b"longer").expect("write");
        let after = std::fs::metadata(&file).expect("stat");
        remember(&cache, &before, &after, A, later(), SETTLED);
        assert_eq!(lookup(&cache, &after), None, "changed while it was hashed");
        remember(&cache, &after, &after, "not-a-digest", later(), SETTLED);
        assert_eq!(lookup(&cache, &after), None);
    }

    #[test]
    fn a_damaged_cache_is_ignored_and_the_cache_stays_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("sha256");
        let file = dir.path().join("prog");
        std::fs::write(&file, b"x").expect("write");
        let m = std::fs::metadata(&file).expect("stat");
        std::fs::write(&cache, format!("garbage\n{} ZZ\n\u{0}\u{1}", key(&m))).expect("write");
        assert_eq!(lookup(&cache, &m), None);
        let mut text = String::new();
        for i in 0..2 * MAX_ENTRIES {
            text.push_str(&format!("0:{i}:1:0.0:0.0 {A}\n"));
        }
        std::fs::write(&cache, text).expect("write");
        remember(&cache, &m, &m, B, later(), SETTLED);
        let kept = std::fs::read_to_string(&cache).expect("read");
        assert_eq!(kept.lines().count(), MAX_ENTRIES);
        assert_eq!(lookup(&cache, &m).as_deref(), Some(B));
    }
}
