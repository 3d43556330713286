//! The artifact of `solo deploy` and `solo update`: a small file is sent
//! at once; a larger one by digest first, as bytes only when the daemon
//! does not store them yet.
//!
//! Deploying the same program again is the common case (an agent redeploys
//! what it built, a script deploys one binary under many ids), and sending
//! a realistic binary costs more than the whole deploy otherwise does (a
//! 760 KB static program: ~3-4 ms of HTTP/2 frames and decoding on both
//! sides; see docs/benchmarks.md). So the CLI hashes the file (SHA-NI:
//! ~0.5 ms for 760 KB) and names it by its sha256; the daemon resolves the
//! digest only to a file it hashed and stored itself, or answers NOT_FOUND
//! naming the digest field, and the CLI then sends the bytes with the
//! digest (which the daemon checks against its own hash of them).
//!
//! The digest of a file hashed before and unchanged since is taken from
//! the caller's digest cache (`digest_cache.rs`), not computed again.
//!
//! A file of at most [`INLINE_MAX`] bytes (a script, a small program) goes
//! in the first request: sending it costs less than the NOT_FOUND round
//! trip a new one would take, and agents' scripts are usually new.

use crate::proto::v1 as pb;
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use tonic::Code;

/// The file of `--exec` or `--script`, to be read whole only if the daemon
/// asks for its bytes.
pub struct Upload {
    flag: &'static str,
    path: PathBuf,
}

/// Files up to this size are sent in the first request, not named by
/// digest: one HTTP/2 frame's worth, well inside the initial flow-control
/// window, so no round trip is added either way.
pub const INLINE_MAX: u64 = 16 << 10;

/// What the first request carries for the file of `--exec`/`--script`.
pub struct Prepared {
    /// The sha256 (hex) to name the artifact by; empty when the bytes go
    /// in the first request (the daemon hashes them) or the file is empty.
    pub sha256: String,
    /// The file's bytes, when it is small enough to send at once.
    pub content: Vec<u8>,
    /// The file to send if the daemon answers that it lacks the digest.
    pub upload: Option<Upload>,
}

/// Reads a file of at most [`INLINE_MAX`] bytes whole; otherwise hashes it
/// ([`digest`]) without keeping its bytes.
pub fn prepare(flag: &'static str, path: &Path) -> anyhow::Result<Prepared> {
    let cannot = || format!("{flag}: cannot read {}", path.display());
    let f = std::fs::File::open(path).with_context(cannot)?;
    let len = f.metadata().with_context(cannot)?.len();
    if len <= INLINE_MAX {
        let mut content = Vec::with_capacity(len as usize);
        // One more than the limit: a file that grew meanwhile is hashed instead.
        f.take(INLINE_MAX + 1).read_to_end(&mut content).with_context(cannot)?;
        if content.len() as u64 <= INLINE_MAX {
            return Ok(Prepared { sha256: String::new(), content, upload: None });
        }
    }
    let (upload, sha256) = digest(flag, path)?;
    let upload = (!sha256.is_empty()).then_some(upload);
    Ok(Prepared { sha256, content: Vec::new(), upload })
}

/// The artifact the flags name: `--exec FILE`, `--script FILE` (run by
/// `--interpreter`) or `--host-path PATH`, the first given; for an uploaded
/// file also the [`Upload`] to send if the daemon lacks it ([`prepare`]).
/// `None` when no flag names one. `--interpreter` without `--script` is an
/// error naming it.
pub fn from_flags(
    exec: Option<&Path>,
    script: Option<&Path>,
    interpreter: Option<&str>,
    host_path: Option<&str>,
) -> anyhow::Result<Option<(pb::artifact::Kind, Option<Upload>)>> {
    if interpreter.is_some() && script.is_none() {
        anyhow::bail!("--interpreter goes with --script");
    }
    Ok(if let Some(p) = exec {
        let f = prepare("--exec", p)?;
        let e = pb::ExecutableArtifact { content: f.content, sha256: f.sha256 };
        Some((pb::artifact::Kind::Executable(e), f.upload))
    } else if let Some(p) = script {
        let f = prepare("--script", p)?;
        let s = pb::ScriptArtifact {
            interpreter: interpreter.unwrap_or_default().to_owned(),
            source: f.content,
            sha256: f.sha256,
        };
        Some((pb::artifact::Kind::Script(s), f.upload))
    } else {
        host_path.map(|p| (pb::artifact::Kind::HostPath(pb::HostPathArtifact { path: p.to_owned() }), None))
    })
}

/// The sha256 (hex) of the file at `path` (given as `flag`), read through a
/// small buffer: the bytes are not needed unless the daemon lacks them, and
/// a file-sized buffer costs a page fault per 4 KiB (~190 for 760 KB). An
/// empty file gets no digest (nothing can be stored under it): the daemon
/// then says the bytes are empty.
fn digest(flag: &'static str, path: &Path) -> anyhow::Result<(Upload, String)> {
    let cannot = || format!("{flag}: cannot read {}", path.display());
    let mut f = std::fs::File::open(path).with_context(cannot)?;
    let upload = Upload { flag, path: path.to_owned() };
    // Hashed before and unchanged since: see digest_cache.rs.
    let cache = super::digest_cache::default_path();
    let before = f.metadata().with_context(cannot)?;
    if let Some(sha) = cache.as_deref().and_then(|c| super::digest_cache::lookup(c, &before)) {
        return Ok((upload, sha));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut len = 0;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                len += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow::Error::new(e).context(cannot())),
        }
    }
    let sha = if len == 0 { String::new() } else { hex::encode(h.finalize()) };
    if let (Some(c), Ok(after)) = (cache, f.metadata()) {
        let now = std::time::SystemTime::now();
        super::digest_cache::remember(&c, &before, &after, &sha, now, super::digest_cache::SETTLED);
    }
    Ok((upload, sha))
}

impl Upload {
    /// Whether `status`, the answer to a deploy that named the artifact by
    /// digest only, means "send the bytes": NOT_FOUND naming the digest's
    /// field, or, from a daemon older than digest references (which drops
    /// the unknown field), INVALID_ARGUMENT saying the bytes are empty.
    pub fn wanted(status: &tonic::Status, artifact: &pb::Artifact) -> bool {
        let (kind, bytes) = match &artifact.kind {
            Some(pb::artifact::Kind::Executable(_)) => ("executable", "content"),
            Some(pb::artifact::Kind::Script(_)) => ("script", "source"),
            _ => return false,
        };
        let m = status.message();
        match status.code() {
            Code::NotFound => m.starts_with(&format!("spec.artifact.{kind}.sha256:")),
            Code::InvalidArgument => m.starts_with(&format!("spec.artifact.{kind}.{bytes}: is empty")),
            _ => false,
        }
    }

    /// Puts the file's bytes into `artifact`, which keeps its digest: the
    /// daemon refuses the bytes if they are not what was hashed here (the
    /// file changed in between).
    pub fn fill(self, artifact: &mut pb::Artifact) -> anyhow::Result<()> {
        let bytes =
            std::fs::read(&self.path).with_context(|| format!("{}: cannot read {}", self.flag, self.path.display()))?;
        match &mut artifact.kind {
            Some(pb::artifact::Kind::Executable(e)) => e.content = bytes,
            Some(pb::artifact::Kind::Script(s)) => s.source = bytes,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe() -> pb::Artifact {
        pb::Artifact { kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact::default())) }
    }

    fn script() -> pb::Artifact {
        pb::Artifact { kind: Some(pb::artifact::Kind::Script(pb::ScriptArtifact::default())) }
    }

    #[test]
    fn only_the_daemons_ask_for_the_bytes_leads_to_an_upload() {
        let missing =
            tonic::Status::not_found("spec.artifact.executable.sha256: no executable with sha256 ab is stored");
        assert!(Upload::wanted(&missing, &exe()));
        assert!(!Upload::wanted(&missing, &script()), "the field of another kind");
        let old_daemon = tonic::Status::invalid_argument("spec.artifact.script.source: is empty");
        assert!(Upload::wanted(&old_daemon, &script()));
        for other in [
            tonic::Status::not_found("grant db: service:db: no such service"),
            tonic::Status::invalid_argument("spec.artifact.executable.sha256: 'x' is not a sha256 digest"),
            tonic::Status::already_exists("service 'x' already exists"),
            tonic::Status::permission_denied("the token lacks permission 'deploy'"),
        ] {
            assert!(!Upload::wanted(&other, &exe()), "{other:?}");
        }
    }

    #[test]
    fn the_flags_name_one_artifact_and_the_interpreter_goes_with_a_script() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().join("svc.sh");
        std::fs::write(&s, b"exec sleep 1\n").expect("write");
        let Ok(Some((pb::artifact::Kind::Script(sc), None))) = from_flags(None, Some(&s), Some("sh"), None) else {
            panic!("a small script: its bytes, nothing more to send")
        };
        assert_eq!(
            (sc.interpreter.as_str(), sc.source.as_slice(), sc.sha256.as_str()),
            ("sh", &b"exec sleep 1\n"[..], "")
        );
        let Ok(Some((pb::artifact::Kind::HostPath(h), None))) = from_flags(None, None, None, Some("/usr/bin/true"))
        else {
            panic!("a host path")
        };
        assert_eq!(h.path, "/usr/bin/true");
        assert!(matches!(from_flags(None, None, None, None), Ok(None)), "no artifact flag");
        let e = from_flags(Some(&s), None, Some("sh"), None).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("--interpreter goes with --script"));
        let e = from_flags(None, Some(&dir.path().join("nope")), None, None).err().map(|e| format!("{e:#}"));
        assert!(e.is_some_and(|e| e.starts_with("--script: cannot read ")), "names the flag");
    }

    #[test]
    fn the_digest_is_the_files_sha256_and_fill_sends_its_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prog");
        // Larger than the read buffer, so the digest spans several reads.
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let (upload, sha) = digest("--exec", &path).expect("digest");
        assert_eq!(sha, hex::encode(Sha256::digest(&bytes)));
        let mut a = pb::Artifact {
            kind: Some(pb::artifact::Kind::Executable(pb::ExecutableArtifact { content: Vec::new(), sha256: sha })),
        };
        upload.fill(&mut a).expect("fill");
        let Some(pb::artifact::Kind::Executable(e)) = a.kind else { panic!("kind changed") };
        assert_eq!(e.content, bytes);
        assert_eq!(e.sha256, hex::encode(Sha256::digest(&bytes)), "the digest goes along");
        let big = prepare("--exec", &path).expect("prepare");
        assert!(big.content.is_empty() && big.upload.is_some(), "200 KB: named by digest");
        assert_eq!(big.sha256, hex::encode(Sha256::digest(&bytes)));
        let small = &bytes[..INLINE_MAX as usize];
        std::fs::write(&path, small).expect("write");
        let p = prepare("--exec", &path).expect("prepare");
        assert!(p.sha256.is_empty() && p.upload.is_none() && p.content == small, "at the limit: sent at once");
        std::fs::write(&path, &bytes[..INLINE_MAX as usize + 1]).expect("write");
        assert!(prepare("--exec", &path).expect("prepare").content.is_empty(), "one byte over: by digest");
        let e = prepare("--exec", &dir.path().join("empty-too"));
        assert!(e.err().is_some_and(|e| format!("{e:#}").starts_with("--exec: cannot read ")));
        std::fs::write(dir.path().join("empty"), b"").expect("write");
        let p = prepare("--exec", &dir.path().join("empty")).expect("prepare");
        assert!(p.content.is_empty() && p.sha256.is_empty() && p.upload.is_none(), "the daemon says it is empty");
        assert_eq!(digest("--exec", &dir.path().join("empty")).expect("digest").1, "", "no digest of nothing");
        let err = digest("--exec", &dir.path().join("nope")).err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.starts_with("--exec: cannot read ")), "names the flag");
    }
}
