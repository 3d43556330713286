//! Capabilities: none, in all five sets. The bounding and ambient sets are
//! emptied while still root (dropping from the bounding set needs
//! CAP_SETPCAP); the switch to the service uid then clears the permitted and
//! effective sets, and [`clear_all`] makes sure of it — and clears them again
//! after a user namespace, which hands the creator a full set inside it.

use super::sys::{self, Errno};
use caps::CapSet;

fn err(e: caps::errors::CapsError) -> Errno {
    let _ = e;
    Errno(libc::EPERM)
}

/// Empties the bounding, ambient and inheritable sets and locks the
/// securebits so root-ness never brings capabilities back.
pub fn drop_bounding() -> Result<(), Errno> {
    caps::clear(None, CapSet::Ambient).map_err(err)?;
    caps::clear(None, CapSet::Inheritable).map_err(err)?;
    caps::clear(None, CapSet::Bounding).map_err(err)?;
    // SECBIT_NOROOT | _LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE | _LOCKED:
    // uid 0 (or a setuid-root binary) would get no capability, and the
    // ambient set can never be raised again. KEEP_CAPS stays off (and is
    // locked), so the uid switch clears the permitted set.
    let bits = (1 << 0) | (1 << 1) | (1 << 5) | (1 << 6) | (1 << 7);
    sys::set_securebits(bits)
}

/// Empties effective, permitted and inheritable (and bounding and ambient,
/// if still possible). After this the process holds no capability.
pub fn clear_all() -> Result<(), Errno> {
    // Possible only with CAP_SETPCAP, i.e. right after a user namespace.
    let _ = caps::clear(None, CapSet::Bounding);
    let _ = caps::clear(None, CapSet::Ambient);
    caps::clear(None, CapSet::Inheritable).map_err(err)?;
    caps::clear(None, CapSet::Effective).map_err(err)?;
    caps::clear(None, CapSet::Permitted).map_err(err)?;
    if !caps::read(None, CapSet::Permitted).map_err(err)?.is_empty() {
        return Err(Errno(libc::EPERM));
    }
    Ok(())
}
