//! Capabilities: none, in all five sets. The bounding and ambient sets are
//! emptied while still root (dropping from the bounding set needs
//! CAP_SETPCAP); the switch to the service uid then clears the permitted and
//! effective sets, and [`clear_all`] makes sure of it — and clears them again
//! after a user namespace, which hands the creator a full set inside it.

use super::sys::{self, Errno};

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

/// Empties effective, permitted and inheritable (and bounding and ambient
/// where it still can). After this the process holds no capability.
///
/// Raw syscalls, no allocation: a `capget`, a `prctl`, one `capset` and a
/// `capget` to check; the bounding set's ~40 `prctl`s only when the
/// process still holds `CAP_SETPCAP` (right after a user namespace, which
/// grants a full set inside it). Without it they would all fail, and the
/// launcher emptied that set before the clone anyway.
pub fn clear_all() -> Result<(), Errno> {
    const CAP_SETPCAP: u64 = 1 << 8;
    let (effective, _, _) = sys::cap_sets()?;
    if effective & CAP_SETPCAP != 0 {
        sys::clear_bounding()?;
    }
    // Kernels before 4.3 have no ambient set.
    match sys::clear_ambient() {
        Ok(()) | Err(Errno(libc::EINVAL)) => {}
        Err(e) => return Err(e),
    }
    sys::clear_caps()?;
    match sys::cap_sets()? {
        (0, 0, 0) => Ok(()),
        _ => Err(Errno(libc::EPERM)),
    }
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
        if !crate::sandbox::test_has_root("CAP_SETPCAP") {
            return;
        }
        // Root with a full bounding set: the check sees it and drops.
        assert_eq!(in_child(|| !bounding_empty() && ensure_bounding_dropped().is_ok() && bounding_empty()), 0);
        // Already dropped (as by the launcher): the check passes, still empty.
        assert_eq!(in_child(|| drop_bounding().is_ok() && ensure_bounding_dropped().is_ok() && bounding_empty()), 0);
    }

    #[test]
    fn clear_all_leaves_no_capability_in_any_set() {
        if !crate::sandbox::test_has_root("a full set to clear") {
            return;
        }
        fn none_left() -> bool {
            sys::cap_sets() == Ok((0, 0, 0)) && bounding_empty()
        }
        // Root with every set full (as after a user namespace): all emptied,
        // the bounding set too (CAP_SETPCAP was held).
        assert_eq!(in_child(|| !none_left() && clear_all().is_ok() && none_left()), 0);
        // Again, now without CAP_SETPCAP: still succeeds, still empty.
        assert_eq!(in_child(|| clear_all().is_ok() && clear_all().is_ok() && none_left()), 0);
    }
}
