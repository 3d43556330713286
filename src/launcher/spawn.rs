//! One launch: prepare, `clone3`, follow the child through its steps
//! (Landlock's outcome, the seccomp listener) until it execs, and say what
//! was enforced, layer by layer.

use crate::sandbox::landlock;
use crate::sandbox::mounts::Views;
use crate::sandbox::plan::{Confinement, Enforcement, LaunchPlan, Layer};
use crate::sandbox::steps::{self, StepError};
use crate::sandbox::sys::{self, Forked};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub struct Launched {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub listener: Option<OwnedFd>,
    pub enforcement: Enforcement,
}

/// Prepares, clones, and follows the child through its steps: it reports
/// Landlock's outcome and its seccomp listener, then execs (the report pipe
/// closes) or reports the step that failed.
pub fn launch(
    plan: &LaunchPlan,
    stdout: OwnedFd,
    stderr: OwnedFd,
    passed: Vec<OwnedFd>,
    netns: Option<OwnedFd>,
    views: &mut Views,
) -> Result<Launched, StepError> {
    let prepared = steps::prepare(plan, stdout, stderr, passed, netns, views)?;
    let prep_err = |errno| StepError { step: steps::Step::Prepare, errno };
    let (rep_r, rep_w) = sys::pipe(0).map_err(prep_err)?;
    let (ack_r, ack_w) = sys::pipe(0).map_err(prep_err)?;
    let cgroup = prepared.cgroup_v2.as_ref().map(|f| f.as_raw_fd());
    // The child starts on this process's descriptor table (CLONE_FILES)
    // and first takes a copy of only what it uses, below `keep_below`:
    // copying the whole table (the vault: ~5 descriptors per running
    // service, all at KEPT_FLOOR and up) cost per descriptor, in the clone
    // and again when exec closed them, so a spawn slowed as services grew.
    // The four pipe ends count too: the child closes its copies of the
    // launcher's two (an `OwnedFd` drop of a number it no longer has would
    // trip std's IO-safety check in a debug build).
    let channel = [&rep_r, &rep_w, &ack_r, &ack_w].map(AsRawFd::as_raw_fd);
    let keep_below = channel.into_iter().chain([prepared.highest_fd()]).max().unwrap_or(2) + 1;
    let flags = prepared.clone_flags | libc::CLONE_FILES as u64;
    let (pid, pidfd) = match sys::clone3(flags, cgroup) {
        Err(errno) => return Err(StepError { step: steps::Step::Clone, errno }),
        Ok(Forked::Child) => {
            // Nothing may be closed before the table is the child's own:
            // until then a close would be the launcher's.
            if let Err(errno) = sys::unshare_fds_below(keep_below as u32) {
                let _ = sys::write_all(rep_w.as_raw_fd(), &StepError { step: steps::Step::Clone, errno }.encode());
                sys::exit_now(127)
            }
            let _ = sys::write_all(rep_w.as_raw_fd(), &steps::record(steps::REPORT_OWN_FDS, 0));
            drop((rep_r, ack_w));
            let ch = steps::Channel { report: rep_w.as_raw_fd(), ack: ack_r.as_raw_fd() };
            let e = steps::apply(&prepared, &ch);
            let _ = sys::write_all(rep_w.as_raw_fd(), &e.encode());
            sys::exit_now(127)
        }
        Ok(Forked::Parent { pid, pidfd }) => (pid, pidfd),
    };
    // Until the child says its table is its own, this process closes
    // nothing (the child would lose it): wait for that report, or its end.
    if let Err(e) = own_fds_reported(rep_r.as_raw_fd(), &pidfd) {
        let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
        let _ = sys::waitpid_blocking(pid);
        return Err(e);
    }
    drop((rep_w, ack_r));
    let missing = prepared.mounts.as_ref().map(|m| m.missing.clone()).unwrap_or_default();
    let memfd_noexec = prepared.mounts.as_ref().and_then(|m| m.memfd_noexec);
    let plan = &plan.confine;
    drop(prepared);
    let mut landlock = None;
    let mut listener = None;
    let fail = |e: StepError| {
        let _ = sys::waitpid_blocking(pid);
        Err(e)
    };
    loop {
        let mut b = [0u8; 8];
        let n = sys::read_full(rep_r.as_raw_fd(), &mut b).unwrap_or(0);
        if n < 8 {
            break; // exec'd: the close-on-exec pipe closed
        }
        let (code, value) = steps::parse_record(&b);
        match code {
            steps::REPORT_LANDLOCK => landlock = Some(landlock::Outcome::from_i32(value)),
            steps::REPORT_LISTENER => {
                match sys::pidfd_getfd(pidfd.as_raw_fd(), value) {
                    Ok(fd) => listener = Some(fd),
                    Err(errno) => {
                        let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
                        return fail(StepError { step: steps::Step::Seccomp, errno });
                    }
                }
                let _ = sys::write_all(ack_w.as_raw_fd(), b"k");
            }
            _ => return fail(StepError::decode(&b)),
        }
    }
    Ok(Launched { pid, pidfd, listener, enforcement: enforcement(plan, &missing, memfd_noexec, landlock) })
}

/// The child's first record: [`steps::REPORT_OWN_FDS`], or the failure it
/// sent, or (the child died before writing: `pidfd` readable) ECHILD.
fn own_fds_reported(rep_r: RawFd, pidfd: &OwnedFd) -> Result<(), StepError> {
    let clone_err = |errno: i32| StepError { step: steps::Step::Clone, errno: sys::Errno(errno) };
    let [report, _] = sys::wait_readable([rep_r, pidfd.as_raw_fd()]).map_err(|e| clone_err(e.0))?;
    if !report {
        return Err(clone_err(libc::ECHILD));
    }
    let mut b = [0u8; 8];
    match sys::read_full(rep_r, &mut b) {
        Ok(8) if steps::parse_record(&b).0 == steps::REPORT_OWN_FDS => Ok(()),
        Ok(8) => Err(StepError::decode(&b)),
        Ok(_) => Err(clone_err(libc::ECHILD)),
        Err(e) => Err(clone_err(e.0)),
    }
}

/// What was enforced, layer by layer, for the daemon to record.
fn enforcement(
    c: &Confinement,
    missing: &[String],
    memfd_noexec: Option<bool>,
    landlock: Option<landlock::Outcome>,
) -> Enforcement {
    let mut layers = Vec::new();
    let mut layer =
        |name: &str, state: &str, detail: String| layers.push(Layer { name: name.into(), state: state.into(), detail });
    let ns = &c.namespaces;
    let mut kinds = vec![];
    if c.fs.is_some() {
        kinds.push("mount");
    }
    for (on, k) in
        [(ns.pid, "pid"), (ns.ipc, "ipc"), (ns.uts, "uts"), (ns.net, "net"), (ns.cgroup, "cgroup"), (ns.user, "user")]
    {
        if on {
            kinds.push(k);
        }
    }
    layer("namespaces", "enforced", kinds.join(","));
    match &c.fs {
        Some(_) if missing.is_empty() => layer("filesystem", "enforced", "a private copy of the profile's view (pivot_root, host tree detached)".into()),
        Some(_) => layer(
            "filesystem",
            "enforced",
            format!(
                "a private copy of the profile's view (pivot_root, host tree detached); not on this host, so not in the view: {}",
                missing.join(" ")
            ),
        ),
        None => layer("filesystem", "off", "the launcher's own view".into()),
    }
    match memfd_noexec {
        Some(true) => layer("memfd", "enforced", "vm.memfd_noexec = 2: no executable memfd".into()),
        Some(false) => layer(
            "memfd",
            "off",
            "this kernel has no vm.memfd_noexec (Linux 6.3+): code written to a memfd can be executed (degraded)"
                .into(),
        ),
        None => layer("memfd", "off", "no pid namespace of its own: the host's vm.memfd_noexec applies".into()),
    }
    layer("capabilities", "enforced", "none in any of the five sets; no_new_privs".into());
    let abi = landlock::kernel_abi();
    match (c.landlock.as_ref(), landlock) {
        (None, _) => layer("landlock", "off", "not requested".into()),
        (Some(_), Some(landlock::Outcome::Full)) => {
            layer("landlock", "enforced", format!("ABI {abi}: {}", landlock::abi_features(abi)))
        }
        (Some(r), Some(landlock::Outcome::Partial)) => layer(
            "landlock",
            "partial",
            format!("ABI {abi} (profile asks {}): {}", r.min_abi, landlock::abi_features(abi)),
        ),
        (Some(_), _) => layer("landlock", "off", "this kernel has no Landlock (degraded)".into()),
    }
    match &c.seccomp {
        Some(f) => layer(
            "seccomp",
            "enforced",
            format!("allow-list of {} BPF instructions; denials reported", f.bpf.len() / 8),
        ),
        None => layer("seccomp", "off", "not requested".into()),
    }
    Enforcement { layers }
}
