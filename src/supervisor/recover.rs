//! Start-up: bring every desired service back, re-adopting the instances a
//! previous daemon left running instead of starting duplicates.
//!
//! A previous daemon that crashed, re-exec'd itself or detached leaves the
//! launcher running with its children and the descriptors it kept for them
//! (output pipes, control socket, seccomp listener, granted sockets). Each
//! live child whose instance is still desired, of the same revision, and in
//! the cgroup this daemon manages for it, is adopted: its task supervises
//! it from here on. Instances that ended while no daemon was attached are
//! restarted as their restart policy says. Everything else found in our
//! cgroups (no launcher survived, a service removed meanwhile) is stopped.
//! A re-exec also hands over a snapshot of the runtime state (restart
//! counts, denials, last exits), so `solo status` reads the same after it.

use super::artifacts::ArtifactRef;
use super::events::{Event, EventKind};
use super::instance::Adopted;
use super::launch::{instance_key, Adoptable};
use super::restart::{Exit, ExitHow};
use super::service::{InstanceState, Service};
use super::{instance, snapshot, Error, Supervisor};
use crate::sandbox::sys::WaitStatus;
use crate::spec::{RestartPolicy, ServiceSpec};
use crate::store::Desired;
use std::collections::HashSet;
use std::sync::Arc;

pub async fn run(sup: &Arc<Supervisor>) -> Result<(), Error> {
    let mut found = sup.launcher.take_adoptable().unwrap_or_default();
    let snap = snapshot::take(&mut found);
    // The API's listening sockets, for the server to serve on again (no
    // connection is refused across a re-exec or a detached restart).
    let api: Vec<String> = found.kept.keys().filter(|k| k.starts_with("api/")).cloned().collect();
    for name in api {
        if let Some(fd) = found.kept.remove(&name) {
            sup.inherited.lock().unwrap_or_else(|p| p.into_inner()).insert(name, fd);
        }
    }
    let rows = sup.store.services()?;
    // Instance cgroups that hold a child we may adopt are left alone here;
    // every other leftover is emptied and removed.
    let adoptable: HashSet<String> = found.children.keys().filter_map(|k| cgroup_name(k)).collect();
    let leftovers: Vec<String> = sup.layout.existing().into_iter().filter(|n| !adoptable.contains(n)).collect();
    if !leftovers.is_empty() {
        tracing::warn!(count = leftovers.len(), "stopping instances left by a previous run that cannot be adopted");
        for name in &leftovers {
            instance::cleanup(&sup.layout.instance(name)).await;
        }
    }
    // Services an update was under way for: the update may have been
    // stopping one of their old instances when the daemon went, so one
    // that ended meanwhile is started again whatever its policy (the
    // update is rolled back, and a rollback restores every replica).
    let updating: std::collections::HashSet<String> = sup
        .store
        .updates()?
        .into_iter()
        .filter(|u| u.outcome == crate::store::UpdateOutcome::Running)
        .map(|u| u.service_id)
        .collect();
    let mut grants: std::collections::HashMap<String, Vec<crate::store::GrantRow>> = Default::default();
    for g in sup.store.grants()? {
        grants.entry(g.service_id.clone()).or_default().push(g);
    }
    let (mut adopted, mut restarted) = (0usize, 0usize);
    let mut adopted_keys: Vec<String> = Vec::new();
    for row in rows {
        let spec: ServiceSpec = match crate::spec::from_json(&row.spec_json) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(service = %row.id, error = %e, "cannot read stored spec; service skipped");
                continue;
            }
        };
        let artifact: ArtifactRef = match serde_json::from_str(&row.artifact_json) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(service = %row.id, error = %e, "cannot read stored artifact; service skipped");
                continue;
            }
        };
        let svc = sup.build(spec, artifact, row.revision, row.uid, row.created_at_ms, row.desired);
        reopen_grants(sup, &svc, grants.remove(&row.id).unwrap_or_default(), &mut found);
        snap.apply(&svc);
        svc.logs.restore();
        sup.insert(svc.clone());
        if !row.failure.is_empty() {
            svc.mark_failed(&row.failure);
            let mut ev = Event::new(EventKind::Failed, &row.id, 0);
            ev.message = format!("restored as failed, not restarted: {}", row.failure);
            sup.bus.emit(ev);
            continue;
        }
        if row.desired != Desired::Running {
            continue;
        }
        let mut ev = Event::new(EventKind::Deployed, &row.id, 0);
        ev.message = format!("restored revision {} from the state database", row.revision);
        sup.bus.emit(ev);
        for replica in 0..svc.spec.replicas {
            // Instances of another revision (an update the daemon stopped
            // in) have other keys: not adopted, stopped below, and the
            // update is rolled back by update::resume.
            let key = instance_key(svc.id(), svc.revision, replica);
            if let Some(a) = adoptable_instance(sup, &svc, replica, &key, &mut found) {
                instance::adopt(sup.clone(), svc.clone(), replica, a);
                adopted += 1;
                adopted_keys.push(key);
                continue;
            }
            match found.ended.remove(&key) {
                Some(status) if !restart_after(svc.spec.restart.policy, status) && !updating.contains(svc.id()) => {
                    // It ended while no daemon was attached, and its policy
                    // does not bring it back (a clean exit under
                    // on-failure, or never).
                    let exit = ended_exit(status);
                    svc.update(replica, |i, _| {
                        i.state = InstanceState::Exited;
                        i.last_exit = Some(exit);
                    });
                    let mut ev = Event::new(EventKind::Exited, svc.id(), replica);
                    ev.message = "ended while no daemon was attached; not restarted under its policy".into();
                    sup.bus.emit(ev);
                }
                _ => {
                    instance::start(sup.clone(), svc.clone(), replica, false);
                    restarted += 1;
                }
            }
        }
    }
    // Whatever was not adopted goes: live children of services that no
    // longer want them, and every kept descriptor nobody took.
    for (key, child) in found.children.drain() {
        tracing::warn!(pid = child.pid, instance = %key, "stopping a process no desired instance adopts");
        let _ = crate::sandbox::sys::pidfd_send_signal(&child.pidfd, libc::SIGKILL);
        if let Some(name) = cgroup_name(&key) {
            instance::cleanup(&sup.layout.instance(&name)).await;
        }
    }
    // What adopted instances hold stays kept (for a daemon after this
    // one); what nobody adopted, and the snapshot, go.
    for name in found.kept.keys() {
        if !adopted_keys.iter().any(|k| name.starts_with(k.as_str())) {
            sup.launcher.forget(name.clone()).await;
        }
    }
    sup.adopted.store(adopted as u32, std::sync::atomic::Ordering::Relaxed);
    if adopted > 0 || restarted > 0 {
        tracing::info!(adopted, started = restarted, "services restored");
    }
    Ok(())
}

/// `inst/ID/REPLICA[.rN]/` → `ID.REPLICA[.rN]` (the instance's cgroup name).
fn cgroup_name(key: &str) -> Option<String> {
    let rest = key.strip_prefix("inst/")?.strip_suffix('/')?;
    let (id, replica) = rest.rsplit_once('/')?;
    Some(format!("{id}.{replica}"))
}

/// The live child kept for `key`, ready to adopt: of this revision, in the
/// cgroup this daemon manages for the instance. One that is not is left in
/// `found` (and stopped by the caller).
fn adoptable_instance(
    sup: &Supervisor,
    svc: &Service,
    replica: u32,
    key: &str,
    found: &mut Adoptable,
) -> Option<Adopted> {
    let child = found.children.get(key)?;
    let meta: serde_json::Value = serde_json::from_str(&child.meta).unwrap_or_default();
    if meta["revision"].as_u64() != Some(svc.revision) {
        tracing::warn!(service = %svc.id(), replica, pid = child.pid, "a running instance of another revision; not adopted");
        return None;
    }
    let cg = svc.runtime().instances[replica as usize].cgroup.clone();
    if !cg.pids().contains(&child.pid) {
        tracing::warn!(service = %svc.id(), replica, pid = child.pid, cgroup = %cg.describe(), "a running instance outside this daemon's cgroup for it; not adopted");
        return None;
    }
    let child = found.children.remove(key)?;
    // What this daemon's predecessor recorded (a re-exec's snapshot) wins
    // over what the launcher noted at the spawn.
    let (known_restarts, known_start) = {
        let rt = svc.runtime();
        let i = &rt.instances[replica as usize];
        (i.restart_count, i.started_at_ms)
    };
    let restart_count = known_restarts.max(meta["restart_count"].as_u64().unwrap_or(0) as u32);
    let started_at_ms = if known_start > 0 { known_start } else { child.started_at_ms };
    Some(Adopted {
        pid: child.pid,
        exit: sup.launcher.claim_exit(child.pid),
        pidfd: child.pidfd,
        listener: found.take(&format!("{key}listener")),
        stdout: found.take(&format!("{key}stdout")),
        stderr: found.take(&format!("{key}stderr")),
        control: found.take(&format!("{key}control")),
        enforcement: child.enforcement,
        spawn_us: child.spawn_us,
        started_at_ms,
        restart_count,
    })
}

/// Whether an instance that ended while no daemon was attached is started
/// again: as its restart policy would have decided at the exit.
fn restart_after(policy: RestartPolicy, status: WaitStatus) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => status != WaitStatus::Exited(0),
        RestartPolicy::Never => false,
    }
}

fn ended_exit(status: WaitStatus) -> Exit {
    let how = match status {
        WaitStatus::Exited(c) => ExitHow::Code(c),
        WaitStatus::Signaled(s) => ExitHow::Signal(s),
    };
    let reason = format!("{} while no daemon was attached", Exit::describe(how, false));
    Exit { reason, ..Exit::new(how, false, super::events::now_ms()) }
}

/// Opens a restored service's grants again, or takes the very sockets and
/// directories its running instances hold from the launcher (so a listening
/// socket keeps its backlog). A grant that cannot be opened is reported and
/// left out; the service still starts.
fn reopen_grants(sup: &Supervisor, svc: &Service, rows: Vec<crate::store::GrantRow>, found: &mut Adoptable) {
    let mut live = Vec::with_capacity(rows.len());
    for r in rows {
        let kept = found.take_grant(svc.id(), svc.revision, &r.name);
        let opened =
            crate::spec::grant::parse("grant", &r.spec, &r.name).map_err(|e| e.to_string()).and_then(|g| match kept {
                Some(fd) => Ok((g, Some(fd))),
                None => super::grants::open(sup, &g, true).map(|fd| (g, fd)),
            });
        match opened {
            Ok((spec, fd)) => live.push(super::grants::Live { spec, fd: fd.map(Arc::new), token_id: r.token_id }),
            Err(e) => {
                tracing::error!(service = %svc.id(), grant = %r.name, error = %e, "cannot reopen a grant; left out");
                let mut ev = Event::new(EventKind::LaunchFailed, svc.id(), 0);
                ev.message = format!("grant {} ({}) could not be reopened and is left out: {e}", r.name, r.spec);
                sup.bus.emit(ev);
            }
        }
    }
    *svc.caps.grants.lock().unwrap_or_else(|p| p.into_inner()) = live;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_cgroup_names_and_policies_decide() {
        assert_eq!(cgroup_name("inst/web-1/3/").as_deref(), Some("web-1.3"));
        assert_eq!(
            cgroup_name(&instance_key("web-1", 4, 3)).as_deref(),
            Some(super::super::service::instance_name("web-1", 4, 3).as_str())
        );
        assert_eq!(cgroup_name("grant/web/http"), None);
        assert!(restart_after(RestartPolicy::Always, WaitStatus::Exited(0)));
        assert!(!restart_after(RestartPolicy::OnFailure, WaitStatus::Exited(0)));
        assert!(restart_after(RestartPolicy::OnFailure, WaitStatus::Signaled(libc::SIGKILL)));
        assert!(!restart_after(RestartPolicy::Never, WaitStatus::Exited(1)));
        assert!(ended_exit(WaitStatus::Exited(3)).reason.contains("exited with code 3 while no daemon"));
    }
}
