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

/// SECBIT_NOROOT | _LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE | _LOCKED and
/// SECBIT_KEEP_CAPS_LOCKED: uid 0 (or a setuid-root binary) would get no
/// capability at exec, and the ambient set can never be raised again.
/// KEEP_CAPS stays off (and is locked), so the uid switch clears the
/// permitted set.
const SECUREBITS: libc::c_ulong = (1 << 0) | (1 << 1) | (1 << 5) | (1 << 6) | (1 << 7);

/// Empties the bounding, ambient and inheritable sets and locks the
/// securebits so root-ness never brings capabilities back.
///
/// The launcher calls this once at start: all three sets and the
/// securebits are inherited by `clone3` and matter only at `exec`, which
/// the launcher never does for itself, so its children start with them
/// already empty and [`ensure_bounding_dropped`] only has to check (an
/// empty bounding set costs ~80 `prctl`s to make, each a `commit_creds`).
pub fn drop_bounding() -> Result<(), Errno> {
    // Raw syscalls, no allocation (it also runs in a freshly cloned child).
    sys::clear_ambient()?;
    sys::clear_inheritable()?;
    sys::clear_bounding()?;
    sys::set_securebits(SECUREBITS)
}

/// The child's step: checks that the bounding, ambient and inheritable
/// sets are empty and the securebits locked (the launcher did it), and
/// does it here when they are not.
pub fn ensure_bounding_dropped() -> Result<(), Errno> {
    // Raw syscalls, no allocation: a capget and one prctl per capability.
    let locked = sys::get_securebits().is_ok_and(|b| b & SECUREBITS == SECUREBITS);
    let inheritable_empty = sys::inheritable_caps().is_ok_and(|i| i == 0);
    let bounding_empty = (0..64).map(sys::capbset_read).take_while(Result::is_ok).all(|r| r == Ok(false));
    if locked && inheritable_empty && bounding_empty && sys::capbset_read(0).is_ok() {
        return Ok(());
    }
    drop_bounding()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child (it changes the process's capability
    /// sets) and returns its exit code.
    fn in_child(f: fn() -> bool) -> i32 {
        match sys::clone3(0, None).expect("clone3") {
            sys::Forked::Child => sys::exit_now(if f() { 0 } else { 1 }),
            sys::Forked::Parent { pid, .. } => match sys::waitpid_blocking(pid).expect("wait") {
                sys::WaitStatus::Exited(c) => c,
                other => panic!("child ended with {other:?}"),
            },
        }
    }

    /// Raw, like the code under test: the child of a multi-threaded test
    /// process must not allocate.
    fn bounding_empty() -> bool {
        (0..64).map(sys::capbset_read).take_while(Result::is_ok).all(|r| r == Ok(false))
    }

    #[test]
    fn ensure_empties_the_sets_when_the_launcher_did_not() {
        if sys::geteuid() != 0 {
            assert!(std::env::var_os("CI").is_none(), "CI must run the unit tests as root");
            eprintln!("skipped: needs root (CAP_SETPCAP)");
            return;
        }
        // Root with a full bounding set: the check sees it and drops.
        assert_eq!(in_child(|| !bounding_empty() && ensure_bounding_dropped().is_ok() && bounding_empty()), 0);
        // Already dropped (as by the launcher): the check passes, still empty.
        assert_eq!(in_child(|| drop_bounding().is_ok() && ensure_bounding_dropped().is_ok() && bounding_empty()), 0);
    }
}
