//! Runs, the server binding and findings.

use rusqlite::{OptionalExtension, Row};
use tracing::info;

use super::{now, Finding, Ledger, LedgerError, RunId, RunKind, RunOutcome};
use super::{RunRecord, ServerBinding};

const RUN_COLUMNS: &str = "id, kind, trigger, started_at, finished_at, outcome, summary";

impl Ledger {
    /// Records which Grafana this ledger belongs to, and its version.
    ///
    /// The first call binds the ledger; later calls only update the
    /// version. A trailing slash does not make a URL different.
    ///
    /// # Errors
    /// `ServerMismatch` when the ledger is bound to another URL.
    pub fn bind_server(&self, url: &str, version: &str) -> Result<(), LedgerError> {
        let url = url.trim_end_matches('/');
        let conn = self.conn();
        let bound: Option<String> = conn
            .query_row("SELECT url FROM server WHERE id = 1", [], |row| row.get(0))
            .optional()
            .map_err(self.fail("read the server binding"))?;

        match bound {
            Some(bound) if bound != url => Err(LedgerError::ServerMismatch {
                path: self.path.clone(),
                bound,
                requested: url.to_string(),
            }),
            Some(_) => conn
                .execute(
                    "UPDATE server SET version = ?1, updated_at = ?2 WHERE id = 1",
                    (version, now()),
                )
                .map(drop)
                .map_err(self.fail("update the server version")),
            None => {
                conn.execute(
                    "INSERT INTO server (id, url, version, bound_at, updated_at) \
                     VALUES (1, ?1, ?2, ?3, ?3)",
                    (url, version, now()),
                )
                .map_err(self.fail("bind the ledger to a server"))?;
                info!(url, version, "ledger bound to grafana server");
                Ok(())
            }
        }
    }

    /// The server this ledger is bound to, if any run bound it yet.
    pub fn server(&self) -> Result<Option<ServerBinding>, LedgerError> {
        self.conn()
            .query_row(
                "SELECT url, version, bound_at, updated_at FROM server WHERE id = 1",
                [],
                |row| {
                    Ok(ServerBinding {
                        url: row.get("url")?,
                        version: row.get("version")?,
                        bound_at: row.get("bound_at")?,
                        updated_at: row.get("updated_at")?,
                    })
                },
            )
            .optional()
            .map_err(self.fail("read the server binding"))
    }

    /// Opens a run and returns its id.
    pub fn start_run(&self, kind: RunKind, trigger: &str) -> Result<RunId, LedgerError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (kind, trigger, started_at) VALUES (?1, ?2, ?3)",
            (kind, trigger, now()),
        )
        .map_err(self.fail(format!("start a {kind} run")))?;
        Ok(RunId(conn.last_insert_rowid()))
    }

    /// Closes a run with its outcome and summary.
    ///
    /// # Errors
    /// `UnknownRun`, or `RunFinished` when it already has an outcome.
    pub fn finish_run(
        &self,
        id: RunId,
        outcome: RunOutcome,
        summary: &serde_json::Value,
    ) -> Result<(), LedgerError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE runs SET finished_at = ?1, outcome = ?2, summary = ?3 \
                 WHERE id = ?4 AND finished_at IS NULL",
                (now(), outcome, summary.to_string(), id.0),
            )
            .map_err(self.fail(format!("finish run {id}")))?;
        if changed == 1 {
            return Ok(());
        }
        match self.run(id)? {
            Some(_) => Err(LedgerError::RunFinished { run: id }),
            None => Err(LedgerError::UnknownRun { run: id }),
        }
    }

    /// One run by id.
    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, LedgerError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1");
        self.conn()
            .query_row(&sql, [id.0], run_from_row)
            .optional()
            .map_err(self.fail(format!("read run {id}")))
    }

    /// The most recently started run, of one kind or of any.
    pub fn last_run(&self, kind: Option<RunKind>) -> Result<Option<RunRecord>, LedgerError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR kind = ?1 \
             ORDER BY id DESC LIMIT 1"
        );
        self.conn()
            .query_row(&sql, [kind], run_from_row)
            .optional()
            .map_err(self.fail("read the last run"))
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, LedgerError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(self.fail("list runs"))?;
        let rows = stmt
            .query_map([limit], run_from_row)
            .and_then(Iterator::collect)
            .map_err(self.fail("list runs"));
        rows
    }

    /// Records a finding of a run.
    pub fn record_finding(&self, run: RunId, finding: &Finding) -> Result<(), LedgerError> {
        self.conn()
            .execute(
                "INSERT INTO findings \
                 (run_id, kind, severity, org_id, subject, detail, recorded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                (
                    run.0,
                    &finding.kind,
                    finding.severity,
                    finding.org_id,
                    &finding.subject,
                    &finding.detail,
                    now(),
                ),
            )
            .map(drop)
            .map_err(self.fail(format!("record a {} finding of run {run}", finding.kind)))
    }

    /// The findings of a run, in the order they were recorded.
    pub fn findings(&self, run: RunId) -> Result<Vec<Finding>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT kind, severity, org_id, subject, detail FROM findings \
                 WHERE run_id = ?1 ORDER BY id",
            )
            .map_err(self.fail(format!("list findings of run {run}")))?;
        let rows = stmt
            .query_map([run.0], |row| {
                Ok(Finding {
                    kind: row.get("kind")?,
                    severity: row.get("severity")?,
                    org_id: row.get("org_id")?,
                    subject: row.get("subject")?,
                    detail: row.get("detail")?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(self.fail(format!("list findings of run {run}")));
        rows
    }
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: RunId(row.get("id")?),
        kind: row.get("kind")?,
        trigger: row.get("trigger")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        outcome: row.get("outcome")?,
        summary: row.get("summary")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::Severity;

    // A run opens without outcome and closes once, with its summary.
    #[test]
    fn run_lifecycle() {
        let ledger = Ledger::open_in_memory().unwrap();
        let id = ledger.start_run(RunKind::Migrate, "cli").unwrap();
        let open = ledger.run(id).unwrap().unwrap();
        assert_eq!(open.outcome, None);

        let summary = json!({"done": 3});
        ledger.finish_run(id, RunOutcome::Done, &summary).unwrap();
        let closed = ledger.run(id).unwrap().unwrap();
        assert_eq!(closed.outcome, Some(RunOutcome::Done));
        assert_eq!(closed.summary, Some(summary.clone()));

        let again = ledger.finish_run(id, RunOutcome::Failed, &summary);
        assert!(matches!(again, Err(LedgerError::RunFinished { .. })));
        let missing = ledger.finish_run(RunId(99), RunOutcome::Done, &summary);
        assert!(matches!(missing, Err(LedgerError::UnknownRun { .. })));
    }

    // last_run filters by kind; runs lists newest first.
    #[test]
    fn last_run_and_listing() {
        let ledger = Ledger::open_in_memory().unwrap();
        let plan = ledger.start_run(RunKind::Plan, "cli").unwrap();
        let migrate = ledger.start_run(RunKind::Migrate, "cli").unwrap();
        let reconcile = ledger.start_run(RunKind::Reconcile, "schedule").unwrap();

        let last = ledger.last_run(None).unwrap().unwrap();
        assert_eq!(last.id, reconcile);
        let last_plan = ledger.last_run(Some(RunKind::Plan)).unwrap().unwrap();
        assert_eq!(last_plan.id, plan);
        assert!(ledger.last_run(Some(RunKind::Revert)).unwrap().is_none());

        let ids: Vec<RunId> = ledger.runs(2).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![reconcile, migrate]);
    }

    // The first server binds; a second URL is refused; versions update.
    #[test]
    fn server_binding() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger
            .bind_server("http://127.0.0.1:3000/", "11.5.0")
            .unwrap();
        ledger
            .bind_server("http://127.0.0.1:3000", "11.6.0")
            .unwrap();
        assert_eq!(ledger.server().unwrap().unwrap().version, "11.6.0");

        let err = ledger
            .bind_server("http://127.0.0.1:4000", "12.0.0")
            .unwrap_err();
        assert!(matches!(err, LedgerError::ServerMismatch { .. }));
        assert!(err.to_string().contains("http://127.0.0.1:3000"), "{err}");
    }

    // Findings come back per run, in order.
    #[test]
    fn findings_per_run() {
        let ledger = Ledger::open_in_memory().unwrap();
        let one = ledger.start_run(RunKind::Reconcile, "cli").unwrap();
        let two = ledger.start_run(RunKind::Reconcile, "cli").unwrap();
        let finding = Finding {
            kind: "token-deleted".into(),
            severity: Severity::Critical,
            org_id: 2,
            subject: "token 7001".into(),
            detail: "gone from service account 12".into(),
        };
        ledger.record_finding(one, &finding).unwrap();

        assert_eq!(ledger.findings(one).unwrap(), vec![finding]);
        assert!(ledger.findings(two).unwrap().is_empty());
    }
}
