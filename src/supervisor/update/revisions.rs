//! Kept revisions: which one `solo rollback` goes back to, pruning to the
//! last `--keep-revisions` (the running one is always kept), and removing
//! artifacts no kept revision names any more.

use crate::spec::FieldError;
use crate::store::RevisionRow;
use crate::supervisor::artifacts::ArtifactRef;
use crate::supervisor::service::Service;
use crate::supervisor::{Error, Supervisor};
use std::collections::HashSet;

/// One kept revision, as `Status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionView {
    pub revision: u64,
    pub artifact_sha256: String,
    pub artifact_kind: String,
    pub profile: String,
    pub replicas: u32,
    pub created_at_ms: i64,
    /// When it last became the running revision (0: never).
    pub activated_at_ms: i64,
    pub current: bool,
    /// Why an update to it rolled back.
    pub note: String,
}

/// The revision a rollback without `--to` goes back to: of the kept
/// revisions other than `current`, the one that most recently ran.
pub fn previous(revs: &[RevisionRow], current: u64) -> Option<u64> {
    revs.iter()
        .filter(|r| r.revision != current && r.activated_at_ms > 0)
        .max_by_key(|r| (r.activated_at_ms, r.revision))
        .map(|r| r.revision)
}

fn kept_list(revs: &[RevisionRow], current: u64) -> String {
    let mut v: Vec<String> = revs
        .iter()
        .map(|r| {
            if r.revision == current {
                format!("{} (running)", r.revision)
            } else if r.activated_at_ms == 0 {
                format!("{} (never ran)", r.revision)
            } else {
                r.revision.to_string()
            }
        })
        .collect();
    v.sort();
    v.join(", ")
}

impl Supervisor {
    /// The kept revision `solo rollback ID [--to REV]` rolls out.
    pub(super) fn rollback_target(&self, current: &Service, to: u64) -> Result<RevisionRow, Error> {
        let id = current.id();
        let revs = self.store.revisions(id)?;
        let invalid = |why: String| Error::Invalid(FieldError::invalid("to_revision", why));
        let to = match to {
            0 => previous(&revs, current.revision).ok_or_else(|| {
                invalid(format!(
                    "service '{id}' has no earlier revision that ran to go back to (kept: {}); name one with --to",
                    kept_list(&revs, current.revision)
                ))
            })?,
            r if r == current.revision => {
                return Err(invalid(format!("service '{id}' runs revision {r} already")));
            }
            r => r,
        };
        revs.into_iter().find(|r| r.revision == to).ok_or_else(|| {
            let revs = self.store.revisions(id).unwrap_or_default();
            invalid(format!(
                "revision {to} of service '{id}' is not kept (kept: {}; solo serve --keep-revisions sets how many)",
                kept_list(&revs, current.revision)
            ))
        })
    }

    /// A service's kept revisions, newest first.
    pub fn revisions_view(&self, id: &str) -> Result<Vec<RevisionView>, Error> {
        let current = self.get(id)?.revision;
        Ok(self
            .store
            .revisions(id)?
            .into_iter()
            .map(|r| {
                let a: Option<ArtifactRef> = serde_json::from_str(&r.artifact_json).ok();
                let spec = crate::spec::from_json(&r.spec_json).ok();
                RevisionView {
                    revision: r.revision,
                    artifact_sha256: a.as_ref().map(|a| a.sha256.clone()).unwrap_or_default(),
                    artifact_kind: a.map(|a| a.kind).unwrap_or_default(),
                    profile: spec.as_ref().map(|s| s.profile.clone()).unwrap_or_default(),
                    replicas: spec.map(|s| s.replicas).unwrap_or(0),
                    created_at_ms: r.created_at_ms,
                    activated_at_ms: r.activated_at_ms,
                    current: r.revision == current,
                    note: r.note,
                }
            })
            .collect())
    }

    /// Prunes `id`'s revisions to the kept number, then removes artifacts
    /// nothing names any more.
    pub(crate) async fn prune_and_collect(&self, id: &str) {
        let _op = self.ops.lock().await;
        match self.store.prune_revisions(id, self.config.keep_revisions as usize).await {
            Ok(gone) if !gone.is_empty() => tracing::info!(service = id, revisions = ?gone, "pruned old revisions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(service = id, error = %e, "cannot prune revisions"),
        }
        self.collect_artifacts();
    }

    /// Removes stored artifacts that no kept revision, no service held and
    /// no update under way names. The caller holds the operation lock.
    pub(crate) fn collect_artifacts(&self) {
        let mut keep: HashSet<String> = HashSet::new();
        match self.store.artifact_refs() {
            Ok(refs) => {
                keep.extend(refs.iter().filter_map(|j| serde_json::from_str::<ArtifactRef>(j).ok()).map(|a| a.sha256))
            }
            Err(e) => {
                // Not knowing what is named, nothing is removed.
                tracing::warn!(error = %e, "cannot read the revisions; no artifact collected");
                return;
            }
        }
        keep.extend(self.all().iter().map(|s| s.artifact.sha256.clone()));
        for run in self.updates.all_active() {
            keep.insert(run.from.artifact.sha256.clone());
            keep.insert(run.to.artifact.sha256.clone());
        }
        let gone = self.artifacts.remove_unreferenced(&keep);
        if !gone.is_empty() {
            tracing::info!(artifacts = ?gone, "removed artifacts no kept revision names");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(revision: u64, activated_at_ms: i64) -> RevisionRow {
        RevisionRow {
            service_id: "s".into(),
            revision,
            spec_json: String::new(),
            artifact_json: String::new(),
            created_at_ms: 0,
            activated_at_ms,
            note: String::new(),
        }
    }

    #[test]
    fn previous_is_the_one_that_ran_last() {
        // 1 ran, 2 ran, 3 rolled back (never ran), 2 runs now after a rollback from 4.
        let revs = [rev(1, 10), rev(2, 40), rev(3, 0), rev(4, 30)];
        assert_eq!(previous(&revs, 2), Some(4));
        assert_eq!(previous(&[rev(1, 10), rev(2, 0)], 1), None);
        assert_eq!(previous(&[rev(1, 10), rev(2, 20)], 2), Some(1));
        assert_eq!(kept_list(&revs, 2), "1, 2 (running), 3 (never ran), 4");
    }
}
