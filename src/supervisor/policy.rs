//! Profiles turned into what the launcher enforces: one [`Policy`] per
//! profile, its seccomp filter compiled once when the daemon starts, and
//! the per-instance [`Confinement`] built from it.

use super::service::Service;
use crate::profiles::{NetMode, OnMissing, Profile, ProfileSet};
use crate::sandbox::plan::{Bind, Confinement, FsView, LandlockRules, Namespaces, SeccompFilter};
use crate::sandbox::seccomp;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A profile ready to launch under.
#[derive(Debug)]
pub struct Policy {
    pub profile: Profile,
    pub filter: SeccompFilter,
}

/// Compiles every profile's filter. A profile whose syscalls this
/// architecture lacks fails the daemon's start, naming profile and syscall.
pub fn compile(set: &ProfileSet) -> Result<BTreeMap<String, Arc<Policy>>, String> {
    let mut out = BTreeMap::new();
    for (name, p) in &set.profiles {
        let bpf = seccomp::compile(&p.allowed_syscalls(), &p.network.socket_families)
            .map_err(|e| format!("profile {name} ({}): {e}", p.file))?;
        out.insert(name.clone(), Arc::new(Policy { profile: p.clone(), filter: SeccompFilter::new(bpf) }));
    }
    Ok(out)
}

/// Where things live on the host for the view.
pub struct Paths<'a> {
    /// The empty directory each child mounts its root tmpfs on.
    pub view_root: &'a Path,
    /// The service's data directory (bound at `/data`).
    pub data: &'a Path,
    /// Granted directories (and the notify socket's), shown in the view and
    /// in the Landlock rules.
    pub binds: &'a [Bind],
}

/// The view's path of the artifact, for `argv`.
pub const APP_DIR: &str = "/app";
/// A script's interpreter under `/app` when the view's system paths lack it.
const INTERPRETER: &str = ".interpreter";

impl Policy {
    /// What an instance of `svc` gets.
    pub fn confinement(&self, svc: &Service, paths: &Paths<'_>) -> Confinement {
        let p = &self.profile;
        let mut app = Vec::new();
        let host_program = Path::new(&svc.artifact.program);
        let in_view = p.filesystem.read_only.iter().any(|r| host_program.starts_with(r));
        let program = if let Some(script) = &svc.artifact.script {
            app.push((artifact_name(svc), script.clone()));
            if in_view {
                svc.artifact.program.clone()
            } else {
                app.push((INTERPRETER.into(), svc.artifact.program.clone()));
                format!("{APP_DIR}/{INTERPRETER}")
            }
        } else if svc.artifact.kind == "host_path" && in_view {
            svc.artifact.program.clone()
        } else {
            // An uploaded executable, or a host binary outside the view's
            // system paths: shown read-only under /app.
            app.push((artifact_name(svc), svc.artifact.program.clone()));
            format!("{APP_DIR}/{}", artifact_name(svc))
        };
        let with_app = !app.is_empty();
        let fs = fs_view(p, paths.view_root, Some(paths.data), app, program, paths.binds);
        Confinement {
            namespaces: namespaces(p),
            hostname: svc.spec.id.to_string(),
            loopback: p.network.mode == NetMode::Loopback,
            fs: Some(fs),
            landlock: Some(landlock_rules(p, with_app, paths.binds)),
            seccomp: Some(self.filter.clone()),
        }
    }
}

/// The namespaces an instance under `p` gets.
pub fn namespaces(p: &Profile) -> Namespaces {
    Namespaces {
        pid: p.namespaces.pid,
        ipc: p.namespaces.ipc,
        uts: p.namespaces.uts,
        net: p.network.mode != NetMode::Host,
        cgroup: p.namespaces.cgroup,
        user: p.namespaces.user,
    }
}

/// The filesystem view of an instance under `p`: its root's mount point,
/// its data dir, what is shown under `/app`, the program's view path, and
/// the granted directories (`dir:` grants; [`landlock_rules`] takes the
/// same list).
pub fn fs_view(
    p: &Profile,
    root: &Path,
    data: Option<&Path>,
    app: Vec<(String, String)>,
    program: String,
    binds: &[Bind],
) -> FsView {
    FsView {
        root: root.display().to_string(),
        read_only: p.filesystem.read_only.clone(),
        tmp_size: p.filesystem.tmp_size,
        devices: p.filesystem.devices.clone(),
        data: data.map(|d| d.display().to_string()),
        app,
        program,
        shm: p.namespaces.ipc,
        memfd_noexec: p.namespaces.pid,
        memfd_noexec_required: p.on_missing == OnMissing::Refuse,
        binds: binds.to_vec(),
    }
}

/// Landlock's rules for the view of [`fs_view`] (`with_app`: something is
/// shown under `/app`; `binds`: the granted directories, read-only or
/// read-write, never executable).
pub fn landlock_rules(p: &Profile, with_app: bool, binds: &[Bind]) -> LandlockRules {
    let mut read_exec = p.filesystem.read_only.clone();
    if with_app {
        read_exec.push(APP_DIR.into());
    }
    let mut read_write = vec!["/tmp".to_owned(), "/data".to_owned()];
    if p.namespaces.ipc {
        read_write.push("/dev/shm".into());
    }
    let mut read = vec!["/proc".to_owned(), "/".to_owned()];
    for b in binds {
        if b.writable {
            read_write.push(b.at.clone());
        } else {
            // Covered by "/" today (and pruned as such in the launcher);
            // listed so the rules say what the grant is on their own.
            read.push(b.at.clone());
        }
    }
    LandlockRules {
        min_abi: p.landlock_min_abi,
        refuse_below_min: p.on_missing == OnMissing::Refuse,
        read_exec,
        read_write,
        read,
        devices: p.filesystem.devices.iter().map(|d| format!("/dev/{d}")).collect(),
        deny_bind: !p.network.bind,
        deny_connect: p.network.mode == NetMode::None,
    }
}

/// The artifact's file name under `/app`: the service id (a script keeps
/// its interpreter's view of a file name with no extension).
pub fn artifact_name(svc: &Service) -> String {
    svc.spec.id.to_string()
}

/// The service's data directory on the host.
pub fn data_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("data").join(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_directories_reach_the_view_and_the_landlock_rules() {
        let set = ProfileSet::builtin().expect("built-in profiles");
        let p = set.get("default").expect("default");
        let binds = [
            Bind { host: "/srv/ro".into(), at: "/srv/ro".into(), writable: false },
            Bind { host: "/srv/rw".into(), at: "/srv/rw".into(), writable: true },
        ];
        let root = Path::new("/run/solo/root");
        let fs = fs_view(p, root, None, vec![], "/app/x".into(), &binds);
        assert_eq!(fs.binds, binds.to_vec());
        let rules = landlock_rules(p, true, &binds);
        assert!(rules.read_write.contains(&"/srv/rw".to_owned()), "{rules:?}");
        assert!(rules.read.contains(&"/srv/ro".to_owned()), "{rules:?}");
        for list in [&rules.read_exec, &rules.read] {
            assert!(!list.contains(&"/srv/rw".to_owned()), "{rules:?}");
        }
        assert!(!rules.read_exec.contains(&"/srv/ro".to_owned()), "{rules:?}");
        // Without grants, exactly as before.
        assert_eq!(fs_view(p, root, None, vec![], "/app/x".into(), &[]).binds, vec![]);
        let plain = landlock_rules(p, true, &[]);
        assert_eq!(plain.read, vec!["/proc".to_owned(), "/".to_owned()]);
        assert!(!plain.read_write.iter().any(|p| p.starts_with("/srv")));
    }
}
