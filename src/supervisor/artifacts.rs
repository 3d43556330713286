//! Content-addressed artifact store: `<state>/artifacts/sha256/<hex>`,
//! root-owned, read-only (0555 executables, 0444 scripts), in directories
//! no service can write or list (0711).

use crate::spec::{is_sha256_hex, ArtifactSpec, FieldError, INTERPRETERS, INTERPRETER_DIRS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a revision runs: enough to build argv without the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub kind: String,
    pub sha256: String,
    /// The file executed (by descriptor).
    pub program: String,
    /// For scripts: the stored script path passed to the interpreter.
    pub script: Option<String>,
    pub interpreter: Option<String>,
    pub size: u64,
}

impl ArtifactRef {
    /// `argv` for an instance of service `id`.
    pub fn argv(&self, id: &str, args: &[String]) -> Vec<String> {
        let mut v = Vec::with_capacity(args.len() + 2);
        match (&self.interpreter, &self.script) {
            (Some(i), Some(s)) => {
                v.push(i.clone());
                v.push(s.clone());
            }
            _ if self.kind == "host_path" => v.push(self.program.clone()),
            _ => v.push(id.to_owned()),
        }
        v.extend(args.iter().cloned());
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("cannot store artifact in {path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
}

/// Uploads up to this size are hashed on the calling task (about 15 µs per
/// 32 KiB here); larger ones on a blocking thread.
pub const INLINE_HASH_MAX: usize = 256 << 10;

pub struct ArtifactStore {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |cause| ArtifactError::Io { path: path.to_owned(), cause }
}

impl ArtifactStore {
    /// Creates `<state>/artifacts/sha256` with mode 0711.
    pub fn open(state_dir: &Path) -> Result<Self, ArtifactError> {
        let dir = state_dir.join("artifacts").join("sha256");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for d in [dir.parent().unwrap_or(&dir), &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).map_err(io_err(d))?;
        }
        Ok(ArtifactStore { dir })
    }

    /// The reference of an uploaded artifact already in the store, found
    /// without blocking work: `Ok(None)` when it is not stored yet, larger
    /// than [`INLINE_HASH_MAX`] (hashing it takes a while), or a host path
    /// (read whole to check it). Most deploys upload small programs or
    /// scripts seen before, or name stored ones by digest; [`Self::put`]
    /// does the rest.
    ///
    /// A digest without bytes (a reference) resolves only to a file this
    /// store wrote after hashing the bytes itself; an executable only to a
    /// file stored as an executable (validated as ELF when it came). Else
    /// NOT_FOUND naming the digest's field, so the client sends the bytes.
    /// A digest with bytes is checked against the bytes' own hash.
    pub fn stored(&self, a: &ArtifactSpec) -> Result<Option<ArtifactRef>, ArtifactError> {
        let Some((bytes, claimed)) = a.upload() else { return Ok(None) };
        if bytes.is_empty() {
            let Some(sha) = claimed else {
                return Err(
                    FieldError::invalid(a.sha256_field(), "an empty upload needs the sha256 of stored bytes").into()
                );
            };
            return self.resolve(a, sha).map(Some);
        }
        if bytes.len() > INLINE_HASH_MAX {
            return Ok(None);
        }
        let (path, sha) = self.address(bytes);
        check_claim(a, claimed, &sha)?;
        // Stored files are never changed (content-addressed), and removed
        // only when no kept revision names them, under the supervisor's
        // operation lock that every deploy and update holds while it
        // stores an artifact and commits the revision naming it (a deploy
        // that found it before taking the lock looks again under it).
        if !path.is_file() {
            return Ok(None);
        }
        Ok(match a {
            ArtifactSpec::Script { interpreter, .. } => resolve_interpreter(interpreter)
                .ok()
                .map(|p| script_ref(&path, sha, p, interpreter, bytes.len() as u64)),
            // Stored as a script (0444): `put` makes it executable.
            _ if !is_executable(&path) => None,
            _ => Some(executable_ref(&path, sha, bytes.len() as u64)),
        })
    }

    /// The stored file a reference names, or NOT_FOUND.
    fn resolve(&self, a: &ArtifactSpec, sha: &str) -> Result<ArtifactRef, ArtifactError> {
        // The validator checked it; it becomes a file name, so again here.
        if !is_sha256_hex(sha) {
            return Err(
                FieldError::invalid(a.sha256_field(), "is not a sha256 digest (64 lowercase hex digits)").into()
            );
        }
        let path = self.dir.join(sha);
        let not_stored = || {
            FieldError::not_found(
                a.sha256_field(),
                format!("no {} with sha256 {sha} is stored on this daemon; send the bytes", a.kind()),
            )
        };
        // symlink_metadata: the store holds regular files only; follow nothing.
        let m = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(not_stored().into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_stored().into()),
            Err(e) => return Err(ArtifactError::Io { path, cause: e }),
        };
        match a {
            ArtifactSpec::Script { interpreter, .. } => {
                Ok(script_ref(&path, sha.to_owned(), resolve_interpreter(interpreter)?, interpreter, m.len()))
            }
            _ if m.mode() & 0o111 == 0 => Err(not_stored().into()),
            _ => Ok(executable_ref(&path, sha.to_owned(), m.len())),
        }
    }

    /// Stores (or finds) the artifact and returns its reference. Blocking:
    /// hashes the bytes and, for new content, writes and fsyncs them.
    pub fn put(&self, a: &ArtifactSpec) -> Result<ArtifactRef, ArtifactError> {
        if let Some((bytes, Some(sha))) = a.upload() {
            if bytes.is_empty() {
                return self.resolve(a, sha);
            }
        }
        match a {
            ArtifactSpec::Executable { content, sha256 } => {
                let (path, sha) = self.write(content, 0o555, a, sha256.as_deref())?;
                Ok(executable_ref(&path, sha, content.len() as u64))
            }
            ArtifactSpec::Script { interpreter, source, sha256 } => {
                let program = resolve_interpreter(interpreter)?;
                let (path, sha) = self.write(source, 0o444, a, sha256.as_deref())?;
                Ok(script_ref(&path, sha, program, interpreter, source.len() as u64))
            }
            ArtifactSpec::HostPath { path } => host_path(path),
        }
    }

    /// Removes every stored artifact whose sha256 is not in `keep` (and
    /// temporary files of interrupted writes); returns the removed ones.
    /// The caller holds the supervisor's operation lock (see [`Self::stored`]).
    pub fn remove_unreferenced(&self, keep: &std::collections::HashSet<String>) -> Vec<String> {
        let mut gone = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return gone };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let artifact = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            let stale_tmp = name.starts_with('.') && name.ends_with(".tmp");
            if (artifact && !keep.contains(&name)) || stale_tmp {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => gone.push(name),
                    Err(err) => {
                        tracing::warn!(artifact = %name, error = %err, "cannot remove an unreferenced artifact")
                    }
                }
            }
        }
        gone
    }

    /// Where `bytes` are stored, and their sha256 (hex).
    fn address(&self, bytes: &[u8]) -> (PathBuf, String) {
        let sha = hex::encode(Sha256::digest(bytes));
        (self.dir.join(&sha), sha)
    }

    fn write(
        &self,
        bytes: &[u8],
        mode: u32,
        a: &ArtifactSpec,
        claimed: Option<&str>,
    ) -> Result<(PathBuf, String), ArtifactError> {
        let (path, sha) = self.address(bytes);
        check_claim(a, claimed, &sha)?;
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            // The same bytes came before as a script (0444) and now as a
            // validated executable: let it run.
            if m.mode() & mode & 0o111 != mode & 0o111 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode((m.mode() | mode) & 0o7777))
                    .map_err(io_err(&path))?;
            }
            return Ok((path, sha));
        }
        let tmp = self.dir.join(format!(".{sha}.{}.tmp", std::process::id()));
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_err(&tmp))?;
        let r = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(ArtifactError::Io { path, cause: e });
        }
        Ok((path, sha))
    }
}

/// Refuses uploaded bytes whose sha256 is not the digest the client gave.
fn check_claim(a: &ArtifactSpec, claimed: Option<&str>, sha: &str) -> Result<(), FieldError> {
    match claimed {
        Some(c) if c != sha => Err(FieldError::invalid(
            a.sha256_field(),
            format!(
                "{c} is not the sha256 of the uploaded bytes ({sha}); the upload was damaged or the digest is wrong"
            ),
        )),
        _ => Ok(()),
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.mode() & 0o111 != 0)
}

/// An uploaded executable stored at `path`: run by descriptor.
fn executable_ref(path: &Path, sha256: String, size: u64) -> ArtifactRef {
    ArtifactRef {
        kind: "executable".into(),
        sha256,
        program: path.display().to_string(),
        script: None,
        interpreter: None,
        size,
    }
}

/// An uploaded script stored at `path`, run by the interpreter `program`.
fn script_ref(path: &Path, sha256: String, program: String, interpreter: &str, size: u64) -> ArtifactRef {
    ArtifactRef {
        kind: "script".into(),
        sha256,
        program,
        script: Some(path.display().to_string()),
        interpreter: Some(interpreter.to_owned()),
        size,
    }
}

/// Finds an interpreter in the fixed system directories.
pub fn resolve_interpreter(name: &str) -> Result<String, FieldError> {
    let field = "spec.artifact.script.interpreter";
    if !INTERPRETERS.contains(&name) {
        return Err(FieldError::invalid(field, format!("unknown interpreter '{name}'")));
    }
    for d in INTERPRETER_DIRS {
        let p = Path::new(d).join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_file() && m.mode() & 0o001 != 0 {
                return Ok(p.display().to_string());
            }
        }
    }
    Err(FieldError::invalid(
        field,
        format!("interpreter '{name}' is not installed on this host (looked in {})", INTERPRETER_DIRS.join(", ")),
    ))
}

fn host_path(path: &str) -> Result<ArtifactRef, ArtifactError> {
    let field = "spec.artifact.host_path.path";
    let m = std::fs::metadata(path).map_err(|e| FieldError::invalid(field, format!("'{path}': {e}")))?;
    if !m.is_file() {
        return Err(FieldError::invalid(field, format!("'{path}' is not a regular file")).into());
    }
    if m.mode() & 0o001 == 0 {
        return Err(FieldError::invalid(
            field,
            format!(
                "'{path}' is not executable by other users (mode {:o}); services never run as root",
                m.mode() & 0o7777
            ),
        )
        .into());
    }
    // The launcher opens the file as root: make sure the service's uid could
    // reach it itself, so host_path cannot run what sits in a root-only dir.
    for dir in Path::new(path).ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| FieldError::invalid(field, format!("'{}': {e}", dir.display())))?;
        if m.mode() & 0o001 == 0 {
            return Err(FieldError::invalid(
                field,
                format!(
                    "'{path}' is inside {} (mode {:o}), which other users cannot enter",
                    dir.display(),
                    m.mode() & 0o7777
                ),
            )
            .into());
        }
    }
    let bytes = std::fs::read(path).map_err(|e| FieldError::invalid(field, format!("'{path}': {e}")))?;
    if bytes.starts_with(b"#!") {
        return Err(FieldError::invalid(
            field,
            format!("'{path}' is a script (#!); deploy it as a script artifact (--script FILE --interpreter NAME)"),
        )
        .into());
    }
    if !bytes.starts_with(b"\x7fELF") {
        return Err(FieldError::invalid(field, format!("'{path}' is not an ELF executable")).into());
    }
    Ok(ArtifactRef {
        kind: "host_path".into(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        program: path.to_owned(),
        script: None,
        interpreter: None,
        size: m.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(content: &[u8], sha256: Option<&str>) -> ArtifactSpec {
        ArtifactSpec::Executable { content: content.to_vec(), sha256: sha256.map(str::to_owned) }
    }

    fn script(source: &[u8], sha256: Option<&str>) -> ArtifactSpec {
        ArtifactSpec::Script { interpreter: "sh".into(), source: source.to_vec(), sha256: sha256.map(str::to_owned) }
    }

    fn found(store: &ArtifactStore, a: &ArtifactSpec) -> Option<ArtifactRef> {
        store.stored(a).expect("no error")
    }

    /// The field of a refusal, and whether it is NOT_FOUND.
    fn refusal(r: Result<impl std::fmt::Debug, ArtifactError>) -> (String, bool) {
        match r {
            Err(ArtifactError::Field(f)) => (f.field, f.kind == crate::spec::FieldErrorKind::NotFound),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn stored_finds_only_what_put_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path()).expect("open");
        let small = exe(b"\x7fELF small program", None);
        assert_eq!(found(&store, &small), None, "nothing stored yet");
        let put = store.put(&small).expect("put");
        assert_eq!(found(&store, &small), Some(put), "found again, the same reference");
        assert_eq!(found(&store, &exe(b"\x7fELF another", None)), None, "different bytes, different address");

        if resolve_interpreter("sh").is_ok() {
            let s = script(b"echo hi\n", None);
            let put = store.put(&s).expect("put script");
            assert_eq!(found(&store, &s), Some(put));
        }

        // Large uploads and host paths always take the blocking path.
        let big = exe(&vec![7u8; INLINE_HASH_MAX + 1], None);
        store.put(&big).expect("put big");
        assert_eq!(found(&store, &big), None);
        assert_eq!(found(&store, &ArtifactSpec::HostPath { path: "/bin/true".into() }), None);

        // Collection keeps what is named and removes the rest; a digest
        // then names only what is kept.
        let big_sha = hex::encode(Sha256::digest(vec![7u8; INLINE_HASH_MAX + 1]));
        let keep: std::collections::HashSet<String> = [found(&store, &small).expect("stored").sha256].into();
        let gone = store.remove_unreferenced(&keep);
        assert!(gone.contains(&big_sha) && found(&store, &small).is_some(), "{gone:?}");
        assert_eq!(found(&store, &exe(b"\x7fELF small program", None)).map(|a| a.size), Some(18));
        let small_sha = hex::encode(Sha256::digest(b"\x7fELF small program"));
        assert!(found(&store, &exe(&[], Some(&small_sha))).is_some());
        assert!(matches!(
            store.stored(&exe(&[], Some(&big_sha))),
            Err(ArtifactError::Field(f)) if f.kind == crate::spec::FieldErrorKind::NotFound
        ));
    }

    #[test]
    fn a_digest_names_only_bytes_stored_here_and_must_match_bytes_sent_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path()).expect("open");
        let bytes = b"\x7fELF a program".to_vec();
        let sha = hex::encode(Sha256::digest(&bytes));
        let field = "spec.artifact.executable.sha256";

        // A reference to bytes not stored: NOT_FOUND, from both paths.
        assert_eq!(refusal(store.stored(&exe(&[], Some(&sha)))), (field.to_owned(), true));
        assert_eq!(refusal(store.put(&exe(&[], Some(&sha)))), (field.to_owned(), true));
        // Not a digest (the validator refuses it first): never a path.
        for bad in ["../sha256", ".", ""] {
            assert_eq!(refusal(store.stored(&exe(&[], Some(bad)))), (field.to_owned(), false), "{bad}");
            assert_eq!(refusal(store.put(&exe(&[], Some(bad)))), (field.to_owned(), false), "{bad}");
        }
        // Bytes with another digest: INVALID_ARGUMENT, small and large.
        let wrong = "0".repeat(64);
        assert_eq!(refusal(store.stored(&exe(&bytes, Some(&wrong)))), (field.to_owned(), false));
        let big = vec![7u8; INLINE_HASH_MAX + 1];
        assert_eq!(refusal(store.put(&exe(&big, Some(&wrong)))), (field.to_owned(), false));
        assert_eq!(std::fs::read_dir(&store.dir).expect("dir").count(), 0, "nothing stored by a refusal");

        // Sent with the right digest, then named by it alone.
        let put = store.put(&exe(&bytes, Some(&sha))).expect("put");
        assert_eq!(put.sha256, sha);
        assert_eq!(found(&store, &exe(&[], Some(&sha))), Some(put.clone()));
        assert_eq!(store.put(&exe(&[], Some(&sha))).expect("put by digest"), put);

        // Bytes stored as a script are no executable until sent as one
        // (and checked as ELF by the validator): then they are made so.
        if resolve_interpreter("sh").is_ok() {
            let src = b"\x7fELF and also a script".to_vec();
            let src_sha = hex::encode(Sha256::digest(&src));
            let s = store.put(&script(&src, None)).expect("put script");
            assert_eq!(found(&store, &script(&[], Some(&src_sha))).map(|r| r.script), Some(s.script));
            assert_eq!(refusal(store.stored(&exe(&[], Some(&src_sha)))), (field.to_owned(), true));
            assert_eq!(found(&store, &exe(&src, None)), None, "not found as an executable");
            let e = store.put(&exe(&src, None)).expect("put as executable");
            let mode = std::fs::metadata(&e.program).expect("stat").mode() & 0o777;
            assert_eq!(mode, 0o555);
            assert!(found(&store, &exe(&[], Some(&src_sha))).is_some());
        }
    }
}
