//! The supervisor's token key: 32 random bytes in a 0600 file of the state
//! directory, created on first start.

use rand::RngCore;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Length of the HMAC-SHA256 key, in bytes.
pub const KEY_LEN: usize = 32;

/// An HMAC-SHA256 key. `Debug` never prints the bytes.
#[derive(Clone)]
pub struct Key(pub(super) [u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

/// Why the key file could not be used. Each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {op} token key file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "token key file {} is {len} bytes, a key is exactly {KEY_LEN}; restore the right file, or delete it to have a \
         new key made on start (every token issued so far then stops verifying)",
        path.display()
    )]
    WrongSize { path: PathBuf, len: u64 },
    #[error(
        "token key file {} has mode {mode:04o}: group or others may access it; run `chmod 600 {}` (and consider the \
         key leaked if anyone else read it)",
        path.display(),
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("token key file {} is owned by uid {owner}, not by this process's uid {uid}; chown it or remove it", path.display())]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("token key file {} is not a regular file (a symlink, directory or device); replace it with the 32-byte key file", path.display())]
    NotRegular { path: PathBuf },
}

impl Key {
    /// A fresh random key. `rand::rng()` is a ChaCha CSPRNG seeded and
    /// periodically reseeded from the operating system.
    pub fn generate() -> Key {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Key(bytes)
    }

    /// A key with these bytes (tests, or a key kept elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// A key for another purpose, derived from this one:
    /// `HMAC-SHA256(key, "solo-derive-v1\0" ‖ label)`. It reveals nothing
    /// of this key, and a MAC made with it never verifies as a token
    /// signature (the audit log signs its anchors with one).
    pub fn derive(&self, label: &str) -> [u8; KEY_LEN] {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        m.update(b"solo-derive-v1\0");
        m.update(label.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Reads the key, or creates it (0600, `O_EXCL`, fsync of the file and
    /// its directory) if absent. Refuses a file that is not exactly 32
    /// bytes, is not a regular file (symlinks are not followed), is owned by
    /// another uid, or is accessible to group or others.
    pub fn load_or_create(path: &Path) -> Result<Key, KeyError> {
        // Two tries: if another process creates the file between our failed
        // open and our O_EXCL create, the second open reads its key.
        for _ in 0..2 {
            // O_NONBLOCK: opening a FIFO planted at the path must not hang
            // start-up; the type check below then refuses it.
            let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
            match OpenOptions::new().read(true).custom_flags(flags).open(path) {
                Ok(f) => return read_key(path, f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match create_key(path) {
                    Ok(key) => return Ok(key),
                    Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                },
                // ELOOP: the last component is a symlink.
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(KeyError::NotRegular { path: path.to_owned() })
                }
                Err(e) => return Err(io_err(path, "open")(e)),
            }
        }
        Err(KeyError::Io {
            path: path.to_owned(),
            op: "create",
            source: std::io::Error::other("the file appeared and vanished twice while being created"),
        })
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> KeyError + 'a {
    move |source| KeyError::Io { path: path.to_owned(), op, source }
}

fn read_key(path: &Path, mut f: File) -> Result<Key, KeyError> {
    // Checked on the open descriptor, so the file cannot be swapped between
    // the check and the read.
    let meta = f.metadata().map_err(io_err(path, "stat"))?;
    if !meta.file_type().is_file() {
        return Err(KeyError::NotRegular { path: path.to_owned() });
    }
    let uid = crate::sandbox::sys::geteuid();
    if meta.uid() != uid {
        return Err(KeyError::WrongOwner { path: path.to_owned(), owner: meta.uid(), uid });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(KeyError::TooOpen { path: path.to_owned(), mode: meta.mode() & 0o7777 });
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(KeyError::WrongSize { path: path.to_owned(), len: meta.len() });
    }
    let mut bytes = [0u8; KEY_LEN];
    f.read_exact(&mut bytes).map_err(io_err(path, "read"))?;
    // The file may have grown since the stat.
    let mut extra = [0u8; 1];
    if f.read(&mut extra).map_err(io_err(path, "read"))? != 0 {
        return Err(KeyError::WrongSize { path: path.to_owned(), len: KEY_LEN as u64 + 1 });
    }
    Ok(Key(bytes))
}

fn create_key(path: &Path) -> Result<Key, KeyError> {
    let key = Key::generate();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path, "create"))?;
    // A partly written key would be refused (wrong size) on the next start;
    // remove it so the next start makes a new one instead.
    let written = f.write_all(&key.0).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(io_err(path, "write")(e));
    }
    // The directory entry must survive a crash too, or the next start makes
    // a second key and every token issued meanwhile stops verifying.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir, "fsync the directory of"))?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        let a = Key::load_or_create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let b = Key::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(format!("{a:?}"), "Key(<secret>)");
        assert_ne!(Key::generate().0, Key::generate().0);
    }

    #[test]
    fn refuses_wrong_size_open_mode_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.key");
        std::fs::write(&path, [7u8; 31]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Key::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyError::WrongSize { len: 31, .. }), "{err}");
        assert!(err.to_string().contains("31 bytes"), "{err}");

        std::fs::write(&path, [7u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Key::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyError::TooOpen { mode: 0o640, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Key::load_or_create(&path).unwrap().0, [7u8; 32]);

        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = Key::load_or_create(&link).unwrap_err();
        assert!(matches!(err, KeyError::NotRegular { .. }), "{err}");
        let err = Key::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotRegular { .. }), "{err}");
    }
}
