//! Content-addressed artifact store: `<state>/artifacts/sha256/<hex>`,
//! root-owned, read-only (0555 executables, 0444 scripts), in directories
//! no service can write or list (0711).

use crate::spec::{ArtifactSpec, FieldError, INTERPRETERS, INTERPRETER_DIRS};
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
    /// without blocking work: `None` when it is not stored yet, larger than
    /// [`INLINE_HASH_MAX`] (hashing it takes a while), or a host path (read
    /// whole to check it). Most deploys upload small programs or scripts
    /// seen before; [`Self::put`] does the rest.
    pub fn stored(&self, a: &ArtifactSpec) -> Option<ArtifactRef> {
        let bytes = match a {
            ArtifactSpec::Executable { content } => content,
            ArtifactSpec::Script { source, .. } => source,
            ArtifactSpec::HostPath { .. } => return None,
        };
        if bytes.len() > INLINE_HASH_MAX {
            return None;
        }
        let (path, sha) = self.address(bytes);
        // Stored files are never removed or changed (content-addressed).
        if !path.is_file() {
            return None;
        }
        match a {
            ArtifactSpec::Script { interpreter, .. } => {
                Some(script_ref(&path, sha, resolve_interpreter(interpreter).ok()?, interpreter, bytes.len()))
            }
            _ => Some(executable_ref(&path, sha, bytes.len())),
        }
    }

    /// Stores (or finds) the artifact and returns its reference. Blocking:
    /// hashes the bytes and, for new content, writes and fsyncs them.
    pub fn put(&self, a: &ArtifactSpec) -> Result<ArtifactRef, ArtifactError> {
        match a {
            ArtifactSpec::Executable { content } => {
                let (path, sha) = self.write(content, 0o555)?;
                Ok(executable_ref(&path, sha, content.len()))
            }
            ArtifactSpec::Script { interpreter, source } => {
                let program = resolve_interpreter(interpreter)?;
                let (path, sha) = self.write(source, 0o444)?;
                Ok(script_ref(&path, sha, program, interpreter, source.len()))
            }
            ArtifactSpec::HostPath { path } => host_path(path),
        }
    }

    /// Where `bytes` are stored, and their sha256 (hex).
    fn address(&self, bytes: &[u8]) -> (PathBuf, String) {
        let sha = hex::encode(Sha256::digest(bytes));
        (self.dir.join(&sha), sha)
    }

    fn write(&self, bytes: &[u8], mode: u32) -> Result<(PathBuf, String), ArtifactError> {
        let (path, sha) = self.address(bytes);
        if path.exists() {
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

/// An uploaded executable stored at `path`: run by descriptor.
fn executable_ref(path: &Path, sha256: String, size: usize) -> ArtifactRef {
    ArtifactRef {
        kind: "executable".into(),
        sha256,
        program: path.display().to_string(),
        script: None,
        interpreter: None,
        size: size as u64,
    }
}

/// An uploaded script stored at `path`, run by the interpreter `program`.
fn script_ref(path: &Path, sha256: String, program: String, interpreter: &str, size: usize) -> ArtifactRef {
    ArtifactRef {
        kind: "script".into(),
        sha256,
        program,
        script: Some(path.display().to_string()),
        interpreter: Some(interpreter.to_owned()),
        size: size as u64,
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

    #[test]
    fn stored_finds_only_what_put_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path()).expect("open");
        let exe = ArtifactSpec::Executable { content: b"\x7fELF small program".to_vec() };
        assert_eq!(store.stored(&exe), None, "nothing stored yet");
        let put = store.put(&exe).expect("put");
        assert_eq!(store.stored(&exe), Some(put), "found again, the same reference");
        let other = ArtifactSpec::Executable { content: b"\x7fELF another".to_vec() };
        assert_eq!(store.stored(&other), None, "different bytes, different address");

        let script = ArtifactSpec::Script { interpreter: "sh".into(), source: b"echo hi\n".to_vec() };
        if resolve_interpreter("sh").is_ok() {
            let put = store.put(&script).expect("put script");
            assert_eq!(store.stored(&script), Some(put));
        }

        // Large uploads and host paths always take the blocking path.
        let big = ArtifactSpec::Executable { content: vec![7u8; INLINE_HASH_MAX + 1] };
        store.put(&big).expect("put big");
        assert_eq!(store.stored(&big), None);
        assert_eq!(store.stored(&ArtifactSpec::HostPath { path: "/bin/true".into() }), None);
    }
}
