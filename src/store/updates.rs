//! Revisions and updates: each service's kept revisions (immutable spec
//! and artifact reference, when each became the one running, why an update
//! to it rolled back) and its update in progress or last update, written
//! at every step so a restarted daemon knows what was under way.
//!
//! Invariant: the commit point of an update is one transaction that moves
//! `services.revision` to the new revision, records its grants and marks
//! the update committed; before it, the previous revision is the service's.

use super::caps::{insert_grants, GrantRow};
use super::{q, Store, StoreError};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

/// One kept revision of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRow {
    pub service_id: String,
    pub revision: u64,
    pub spec_json: String,
    pub artifact_json: String,
    pub created_at_ms: i64,
    /// When it last became the revision that runs; 0 if it never did.
    pub activated_at_ms: i64,
    /// Why an update to it rolled back (empty otherwise).
    pub note: String,
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Still under way (or interrupted by a daemon crash).
    Running,
    Committed,
    RolledBack,
}

impl UpdateOutcome {
    fn parse(s: &str) -> Self {
        match s {
            "committed" => UpdateOutcome::Committed,
            "rolled-back" => UpdateOutcome::RolledBack,
            _ => UpdateOutcome::Running,
        }
    }
}

/// A service's update in progress, or its last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRow {
    pub service_id: String,
    pub from_revision: u64,
    /// The revision rolled out (for a new spec: assigned by
    /// [`Store::begin_update`]).
    pub to_revision: u64,
    /// The strategy and its parameters (JSON).
    pub strategy: String,
    pub phase: String,
    /// Counts and instances at the last step (JSON).
    pub progress: String,
    pub outcome: UpdateOutcome,
    pub reason: String,
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Which revisions pruning removes: all but the one running, the one an
/// update is rolling out, and the `keep` highest numbers.
pub fn prune_selection(revisions: &[u64], current: u64, rolling_out: Option<u64>, keep: usize) -> Vec<u64> {
    let mut sorted: Vec<u64> = revisions.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.into_iter().skip(keep).filter(|r| *r != current && Some(*r) != rolling_out).collect()
}

fn revision_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RevisionRow> {
    Ok(RevisionRow {
        service_id: r.get(0)?,
        revision: r.get::<_, i64>(1)? as u64,
        spec_json: r.get(2)?,
        artifact_json: r.get(3)?,
        created_at_ms: r.get(4)?,
        activated_at_ms: r.get(5)?,
        note: r.get(6)?,
    })
}

const REVISION_COLUMNS: &str = "service_id, revision, spec_json, artifact_json, created_at_ms, activated_at_ms, note";

impl Store {
    /// Starts an update of `row.service_id`: refused while another is in
    /// progress. With `new` (spec and artifact JSON) a new revision is
    /// created and numbered after every revision the service ever had;
    /// else `row.to_revision` must be a kept revision. Returns the
    /// revision rolled out.
    pub async fn begin_update(&self, row: &UpdateRow, new: Option<(String, String)>) -> Result<u64, StoreError> {
        let row = row.clone();
        self.writer
            .exec_value(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                let running: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT outcome, to_revision FROM updates WHERE service_id = ?1",
                        [&row.service_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(q("look up update"))?;
                if let Some((outcome, to)) = running {
                    if outcome.is_empty() {
                        return Err(StoreError::UpdateInProgress { service: row.service_id.clone(), to: to as u64 });
                    }
                }
                let last: Option<i64> = tx
                    .query_row("SELECT last_revision FROM services WHERE id = ?1", [&row.service_id], |r| r.get(0))
                    .optional()
                    .map_err(q("look up service"))?;
                let Some(last) = last else { return Err(StoreError::NoService(row.service_id.clone())) };
                let to = match new {
                    Some((spec_json, artifact_json)) => {
                        let to = last + 1;
                        tx.execute(
                            "INSERT INTO revisions (service_id, revision, spec_json, artifact_json, created_at_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![row.service_id, to, spec_json, artifact_json, row.started_at_ms],
                        )
                        .map_err(q("insert revision"))?;
                        tx.execute("UPDATE services SET last_revision = ?2 WHERE id = ?1", params![row.service_id, to])
                            .map_err(q("number revision"))?;
                        to as u64
                    }
                    None => row.to_revision,
                };
                tx.execute(
                    "INSERT OR REPLACE INTO updates (service_id, from_revision, to_revision, strategy, phase, progress,
                       outcome, reason, started_at_ms, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', '', ?7, ?7)",
                    params![
                        row.service_id,
                        row.from_revision as i64,
                        to as i64,
                        row.strategy,
                        row.phase,
                        row.progress,
                        row.started_at_ms
                    ],
                )
                .map_err(q("record update"))?;
                tx.commit().map_err(q("commit"))?;
                Ok(to)
            })
            .await
    }

    /// Records an update's step (phase and progress); the caller waits
    /// for the commit, so a crash after it finds the step.
    pub async fn update_step(&self, service: &str, phase: &str, progress: &str, at_ms: i64) -> Result<(), StoreError> {
        let (service, phase, progress) = (service.to_owned(), phase.to_owned(), progress.to_owned());
        self.writer
            .exec(move |c| {
                c.execute(
                    "UPDATE updates SET phase = ?2, progress = ?3, updated_at_ms = ?4 WHERE service_id = ?1 AND outcome = ''",
                    params![service, phase, progress, at_ms],
                )
                .map_err(q("record update step"))
                .map(|_| ())
            })
            .await
    }

    /// The commit point: `to` becomes the service's revision (its failure,
    /// if any, is cleared), with `grants` as the grants it holds.
    pub async fn commit_update(
        &self,
        service: &str,
        to: u64,
        grants: &[GrantRow],
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let service = service.to_owned();
        let grants = grants.to_vec();
        self.writer
            .exec(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                let to = to as i64;
                tx.execute("UPDATE services SET revision = ?2, failure = '' WHERE id = ?1", params![service, to])
                    .map_err(q("switch revision"))?;
                tx.execute(
                    "UPDATE revisions SET activated_at_ms = ?3, note = '' WHERE service_id = ?1 AND revision = ?2",
                    params![service, to, at_ms],
                )
                .map_err(q("activate revision"))?;
                tx.execute(
                    "UPDATE updates SET phase = 'done', outcome = 'committed', reason = '', updated_at_ms = ?2
                     WHERE service_id = ?1",
                    params![service, at_ms],
                )
                .map_err(q("commit update"))?;
                tx.execute("DELETE FROM grants WHERE service_id = ?1", [&service]).map_err(q("replace grants"))?;
                insert_grants(&tx, &grants)?;
                tx.execute("DELETE FROM instances WHERE service_id = ?1 AND revision != ?2", params![service, to])
                    .map_err(q("forget instances"))?;
                tx.commit().map_err(q("commit"))
            })
            .await
    }

    /// Ends an update that rolled back (or was cancelled): the service
    /// keeps its revision; a revision that never ran is noted with why.
    pub async fn end_update_rolled_back(&self, service: &str, reason: &str, at_ms: i64) -> Result<(), StoreError> {
        let (service, reason) = (service.to_owned(), reason.to_owned());
        self.writer
            .exec(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                let to: Option<i64> = tx
                    .query_row("SELECT to_revision FROM updates WHERE service_id = ?1", [&service], |r| r.get(0))
                    .optional()
                    .map_err(q("look up update"))?;
                tx.execute(
                    "UPDATE updates SET phase = 'rolled-back', outcome = 'rolled-back', reason = ?2, updated_at_ms = ?3
                     WHERE service_id = ?1",
                    params![service, reason, at_ms],
                )
                .map_err(q("end update"))?;
                if let Some(to) = to {
                    tx.execute(
                        "UPDATE revisions SET note = ?3 WHERE service_id = ?1 AND revision = ?2 AND activated_at_ms = 0",
                        params![service, to, format!("rolled back: {reason}")],
                    )
                    .map_err(q("note revision"))?;
                    tx.execute(
                        "DELETE FROM instances WHERE service_id = ?1 AND revision = ?2
                           AND revision != (SELECT revision FROM services WHERE id = ?1)",
                        params![service, to],
                    )
                    .map_err(q("forget instances"))?;
                }
                tx.commit().map_err(q("commit"))
            })
            .await
    }

    /// Marks an update committed whose commit point was reached before the
    /// daemon stopped (found by a restarted daemon).
    pub async fn mark_update_committed(&self, service: &str, at_ms: i64) -> Result<(), StoreError> {
        let service = service.to_owned();
        self.writer
            .exec(move |c| {
                c.execute(
                    "UPDATE updates SET phase = 'done', outcome = 'committed', updated_at_ms = ?2 WHERE service_id = ?1",
                    params![service, at_ms],
                )
                .map_err(q("commit update"))
                .map(|_| ())
            })
            .await
    }

    /// Every service's update row (in progress or last).
    pub fn updates(&self) -> Result<Vec<UpdateRow>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(
                "SELECT service_id, from_revision, to_revision, strategy, phase, progress, outcome, reason,
                        started_at_ms, updated_at_ms FROM updates ORDER BY service_id",
            )
            .map_err(q("read updates"))?;
        let rows = st
            .query_map([], |r| {
                Ok(UpdateRow {
                    service_id: r.get(0)?,
                    from_revision: r.get::<_, i64>(1)? as u64,
                    to_revision: r.get::<_, i64>(2)? as u64,
                    strategy: r.get(3)?,
                    phase: r.get(4)?,
                    progress: r.get(5)?,
                    outcome: UpdateOutcome::parse(&r.get::<_, String>(6)?),
                    reason: r.get(7)?,
                    started_at_ms: r.get(8)?,
                    updated_at_ms: r.get(9)?,
                })
            })
            .map_err(q("read updates"))?;
        rows.collect::<Result<_, _>>().map_err(q("read updates"))
    }

    /// A service's kept revisions, newest first.
    pub fn revisions(&self, service: &str) -> Result<Vec<RevisionRow>, StoreError> {
        let c = self.conn();
        let mut st = c
            .prepare(&format!("SELECT {REVISION_COLUMNS} FROM revisions WHERE service_id = ?1 ORDER BY revision DESC"))
            .map_err(q("read revisions"))?;
        let rows = st.query_map([service], revision_row).map_err(q("read revisions"))?;
        rows.collect::<Result<_, _>>().map_err(q("read revisions"))
    }

    /// One kept revision.
    pub fn revision(&self, service: &str, revision: u64) -> Result<Option<RevisionRow>, StoreError> {
        let c = self.conn();
        c.query_row(
            &format!("SELECT {REVISION_COLUMNS} FROM revisions WHERE service_id = ?1 AND revision = ?2"),
            params![service, revision as i64],
            revision_row,
        )
        .optional()
        .map_err(q("read revision"))
    }

    /// Deletes the revisions `prune_selection` picks; returns them.
    pub async fn prune_revisions(&self, service: &str, keep: usize) -> Result<Vec<u64>, StoreError> {
        let service = service.to_owned();
        self.writer
            .exec_value(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(q("begin"))?;
                let current: Option<i64> = tx
                    .query_row("SELECT revision FROM services WHERE id = ?1", [&service], |r| r.get(0))
                    .optional()
                    .map_err(q("look up service"))?;
                let Some(current) = current else { return Ok(Vec::new()) };
                let rolling_out: Option<i64> = tx
                    .query_row(
                        "SELECT to_revision FROM updates WHERE service_id = ?1 AND outcome = ''",
                        [&service],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(q("look up update"))?;
                let all: Vec<u64> = {
                    let mut st = tx
                        .prepare("SELECT revision FROM revisions WHERE service_id = ?1")
                        .map_err(q("read revisions"))?;
                    let rows = st.query_map([&service], |r| r.get::<_, i64>(0)).map_err(q("read revisions"))?;
                    rows.map(|r| r.map(|v| v as u64)).collect::<Result<_, _>>().map_err(q("read revisions"))?
                };
                let gone = prune_selection(&all, current as u64, rolling_out.map(|r| r as u64), keep);
                for r in &gone {
                    tx.execute(
                        "DELETE FROM revisions WHERE service_id = ?1 AND revision = ?2",
                        params![service, *r as i64],
                    )
                    .map_err(q("prune revision"))?;
                }
                tx.commit().map_err(q("commit"))?;
                Ok(gone)
            })
            .await
    }

    /// The artifact reference (JSON) of every kept revision of every service.
    pub fn artifact_refs(&self) -> Result<Vec<String>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare("SELECT artifact_json FROM revisions").map_err(q("read artifacts"))?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(q("read artifacts"))?;
        rows.collect::<Result<_, _>>().map_err(q("read artifacts"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Desired, ServiceRow};
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_the_current_and_the_one_rolling_out() {
        assert_eq!(prune_selection(&[1, 2, 3, 4, 5, 6, 7], 7, None, 5), vec![2, 1]);
        // A rollback made revision 2 current again: it stays.
        assert_eq!(prune_selection(&[1, 2, 3, 4, 5, 6, 7], 2, None, 3), vec![4, 3, 1]);
        assert_eq!(prune_selection(&[1, 2, 3], 1, Some(3), 1), vec![2]);
        assert!(prune_selection(&[1], 1, None, 1).is_empty());
    }

    fn row(id: &str) -> ServiceRow {
        ServiceRow {
            id: id.into(),
            desired: Desired::Running,
            revision: 1,
            uid: 61184,
            created_at_ms: 1,
            spec_json: "{\"v\":1}".into(),
            artifact_json: "{}".into(),
            failure: String::new(),
        }
    }

    fn update(id: &str, from: u64) -> UpdateRow {
        UpdateRow {
            service_id: id.into(),
            from_revision: from,
            to_revision: 0,
            strategy: "{}".into(),
            phase: "starting".into(),
            progress: "{}".into(),
            outcome: UpdateOutcome::Running,
            reason: String::new(),
            started_at_ms: 10,
            updated_at_ms: 10,
        }
    }

    #[tokio::test]
    async fn an_update_numbers_its_revision_commits_and_refuses_a_second_one() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        s.insert_service(&row("a"), &[]).await.expect("insert");
        let to = s.begin_update(&update("a", 1), Some(("{\"v\":2}".into(), "{}".into()))).await.expect("begin");
        assert_eq!(to, 2);
        let second = s.begin_update(&update("a", 1), Some(("{\"v\":3}".into(), "{}".into()))).await;
        assert!(matches!(second, Err(StoreError::UpdateInProgress { to: 2, .. })), "{second:?}");
        // Before the commit point the service runs revision 1.
        assert_eq!(s.services().expect("list")[0].revision, 1);
        s.update_step("a", "rolling", "{\"n\":1}", 11).await.expect("step");
        assert_eq!(s.updates().expect("updates")[0].phase, "rolling");
        s.commit_update("a", 2, &[], 12).await.expect("commit");
        let svc = &s.services().expect("list")[0];
        assert_eq!((svc.revision, svc.spec_json.as_str()), (2, "{\"v\":2}"));
        assert_eq!(s.updates().expect("updates")[0].outcome, UpdateOutcome::Committed);
        let revs = s.revisions("a").expect("revisions");
        assert_eq!(revs.iter().map(|r| (r.revision, r.activated_at_ms)).collect::<Vec<_>>(), vec![(2, 12), (1, 1)]);
    }

    #[tokio::test]
    async fn a_rolled_back_update_keeps_the_revision_and_numbers_stay_increasing_after_pruning() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("solo.db")).expect("open");
        s.insert_service(&row("b"), &[]).await.expect("insert");
        let to = s.begin_update(&update("b", 1), Some(("{}".into(), "{}".into()))).await.expect("begin");
        s.end_update_rolled_back("b", "canary crashed", 20).await.expect("roll back");
        assert_eq!(s.services().expect("list")[0].revision, 1);
        let r = s.revision("b", to).expect("read").expect("kept");
        assert_eq!((r.activated_at_ms, r.note.as_str()), (0, "rolled back: canary crashed"));
        assert_eq!(s.prune_revisions("b", 1).await.expect("prune"), Vec::<u64>::new(), "1 is current, 2 newest");
        let to = s.begin_update(&update("b", 1), Some(("{}".into(), "{}".into()))).await.expect("begin");
        assert_eq!(to, 3);
        s.commit_update("b", 3, &[], 30).await.expect("commit");
        assert_eq!(s.prune_revisions("b", 1).await.expect("prune"), vec![2, 1]);
        let to = s.begin_update(&update("b", 3), Some(("{}".into(), "{}".into()))).await.expect("begin");
        assert_eq!(to, 4, "numbers are never reused, even after pruning");
    }
}
