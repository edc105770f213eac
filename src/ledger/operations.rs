//! The append-only log of calls that change Grafana.
//!
//! The applier records an intent before each such call and its result
//! after. After a crash, an intent without a definite result is what the
//! next run must look up in Grafana before doing anything else.

use rusqlite::types::Type;
use rusqlite::{params, Connection, Row};
use tracing::debug;

use super::{now, Ledger, LedgerError, OperationId, OperationKind};
use super::{OperationRecord, OperationResult, RunId};

const COLUMNS: &str = "id, run_id, org_id, kind, subject, started_at, finished_at, \
    result, result_detail, status, message, resolved_at";

const OPEN: &str = "result IS NULL OR result = 'unknown'";

impl Ledger {
    /// Records the intent to make a call; durable when it returns.
    ///
    /// The commit is made with `synchronous=FULL`: an intent lost to a
    /// power cut after its call reached Grafana would leave an account or
    /// token nobody knows about. Other writes can be lost that way only
    /// together with a later intent, which FULL flushes in order.
    pub fn begin_operation(
        &self,
        run: RunId,
        org_id: i64,
        kind: OperationKind,
        subject: &serde_json::Value,
    ) -> Result<OperationId, LedgerError> {
        let conn = self.conn();
        let insert = |conn: &Connection| {
            conn.execute(
                "INSERT INTO operations (run_id, org_id, kind, subject, started_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run.0, org_id, kind, subject.to_string(), now()],
            )?;
            Ok(conn.last_insert_rowid())
        };
        let id = with_full_sync(&conn, insert)
            .map_err(self.fail(format!("record intent to {kind} in org {org_id}")))?;
        debug!(run = run.0, org = org_id, op = id, %kind, "intent recorded");
        Ok(OperationId(id))
    }

    /// Attaches the result of a call to its intent.
    ///
    /// # Errors
    /// `OperationFinished` when it already has a result (use
    /// [`Ledger::resolve_operation`] to settle an unknown one).
    pub fn finish_operation(
        &self,
        id: OperationId,
        result: OperationResult,
    ) -> Result<(), LedgerError> {
        self.attach(id, &result, "result IS NULL", false)
    }

    /// Settles an intent that has no result or an unknown one.
    ///
    /// Used on resume, after looking Grafana up; stamps `resolved_at`.
    pub fn resolve_operation(
        &self,
        id: OperationId,
        result: OperationResult,
    ) -> Result<(), LedgerError> {
        self.attach(id, &result, OPEN, true)
    }

    fn attach(
        &self,
        id: OperationId,
        result: &OperationResult,
        condition: &str,
        resolving: bool,
    ) -> Result<(), LedgerError> {
        let (detail, status, message) = result_columns(result);
        let at = now();
        let resolved_at = resolving.then_some(at);
        let sql = format!(
            "UPDATE operations SET result = ?1, result_detail = ?2, status = ?3, \
             message = ?4, finished_at = COALESCE(finished_at, ?5), \
             resolved_at = ?6 WHERE id = ?7 AND ({condition})"
        );
        let changed = self
            .conn()
            .execute(
                &sql,
                params![
                    result.as_str(),
                    detail,
                    status,
                    message,
                    at,
                    resolved_at,
                    id.0
                ],
            )
            .map_err(self.fail(format!("record the result of operation {id}")))?;
        if changed == 1 {
            return Ok(());
        }
        match self.operation(id)? {
            Some(_) => Err(LedgerError::OperationFinished { id }),
            None => Err(LedgerError::UnknownOperation { id }),
        }
    }

    /// One operation by id.
    pub fn operation(&self, id: OperationId) -> Result<Option<OperationRecord>, LedgerError> {
        let rows = self.query_operations("id = ?1", &[&id.0])?;
        Ok(rows.into_iter().next())
    }

    /// Intents of any run whose outcome is not known, oldest first.
    pub fn pending_operations(&self) -> Result<Vec<OperationRecord>, LedgerError> {
        self.query_operations(OPEN, &[])
    }

    /// The operations of one run, in order.
    pub fn operations(&self, run: RunId) -> Result<Vec<OperationRecord>, LedgerError> {
        self.query_operations("run_id = ?1", &[&run.0])
    }

    fn query_operations(
        &self,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<OperationRecord>, LedgerError> {
        let sql = format!("SELECT {COLUMNS} FROM operations WHERE {filter} ORDER BY id");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(self.fail("list operations"))?;
        let rows = stmt
            .query_map(params, operation_from_row)
            .and_then(Iterator::collect)
            .map_err(self.fail("list operations"));
        rows
    }
}

/// Runs `f` with `synchronous=FULL`, restoring NORMAL whatever happens.
fn with_full_sync<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    let result = f(conn);
    let restored = conn.execute_batch("PRAGMA synchronous = NORMAL");
    let value = result?;
    restored.map(|_| value)
}

fn result_columns(result: &OperationResult) -> (Option<String>, Option<u16>, Option<&str>) {
    match result {
        OperationResult::Succeeded(value) => (Some(value.to_string()), None, None),
        OperationResult::Failed { status, message } => (None, *status, Some(message)),
        OperationResult::Unknown => (None, None, None),
    }
}

fn operation_from_row(row: &Row<'_>) -> rusqlite::Result<OperationRecord> {
    Ok(OperationRecord {
        id: OperationId(row.get("id")?),
        run_id: RunId(row.get("run_id")?),
        org_id: row.get("org_id")?,
        kind: row.get("kind")?,
        subject: row.get("subject")?,
        started_at: row.get("started_at")?,
        finished_at: row.get("finished_at")?,
        result: result_from_row(row)?,
        resolved_at: row.get("resolved_at")?,
    })
}

fn result_from_row(row: &Row<'_>) -> rusqlite::Result<Option<OperationResult>> {
    let name: Option<String> = row.get("result")?;
    let result = match name.as_deref() {
        None => None,
        Some("succeeded") => {
            let detail: Option<serde_json::Value> = row.get("result_detail")?;
            Some(OperationResult::Succeeded(detail.unwrap_or_default()))
        }
        Some("failed") => Some(OperationResult::Failed {
            status: row.get("status")?,
            message: row.get::<_, Option<String>>("message")?.unwrap_or_default(),
        }),
        Some("unknown") => Some(OperationResult::Unknown),
        Some(other) => {
            let err = super::UnknownValue {
                kind: "operation result",
                value: other.to_string(),
            };
            return Err(rusqlite::Error::FromSqlConversionFailure(
                7,
                Type::Text,
                Box::new(err),
            ));
        }
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ledger::RunKind;

    fn ledger_with_run() -> (Ledger, RunId) {
        let ledger = Ledger::open_in_memory().unwrap();
        let run = ledger.start_run(RunKind::Migrate, "test").unwrap();
        (ledger, run)
    }

    // An intent is pending until a definite result is attached.
    #[test]
    fn intent_then_result() {
        let (ledger, run) = ledger_with_run();
        let subject = json!({"name": "etl", "role": "Editor"});
        let op = ledger
            .begin_operation(run, 1, OperationKind::CreateServiceAccount, &subject)
            .unwrap();
        assert_eq!(ledger.pending_operations().unwrap().len(), 1);

        let ids = json!({"sa_id": 12});
        ledger
            .finish_operation(op, OperationResult::Succeeded(ids.clone()))
            .unwrap();
        assert!(ledger.pending_operations().unwrap().is_empty());

        let stored = ledger.operations(run).unwrap().remove(0);
        assert_eq!(stored.subject, subject);
        assert_eq!(stored.result, Some(OperationResult::Succeeded(ids)));
        assert!(stored.finished_at.is_some() && stored.resolved_at.is_none());
    }

    // A definite result is never overwritten.
    #[test]
    fn result_is_attached_once() {
        let (ledger, run) = ledger_with_run();
        let op = ledger
            .begin_operation(run, 1, OperationKind::DeleteKey, &json!({"key_id": 4}))
            .unwrap();
        let failed = OperationResult::Failed {
            status: Some(404),
            message: "api key not found".into(),
        };
        ledger.finish_operation(op, failed.clone()).unwrap();

        let again = ledger.finish_operation(op, OperationResult::Unknown);
        assert!(matches!(again, Err(LedgerError::OperationFinished { .. })));
        let resolve = ledger.resolve_operation(op, OperationResult::Unknown);
        assert!(matches!(
            resolve,
            Err(LedgerError::OperationFinished { .. })
        ));
        assert_eq!(ledger.operation(op).unwrap().unwrap().result, Some(failed));
        let missing = ledger.finish_operation(OperationId(99), OperationResult::Unknown);
        assert!(matches!(missing, Err(LedgerError::UnknownOperation { .. })));
    }

    // An unknown result stays pending until resolved by a lookup.
    #[test]
    fn unknown_result_is_resolved_later() {
        let (ledger, run) = ledger_with_run();
        let op = ledger
            .begin_operation(
                run,
                2,
                OperationKind::CreateToken,
                &json!({"name": "etl-42"}),
            )
            .unwrap();
        ledger
            .finish_operation(op, OperationResult::Unknown)
            .unwrap();
        assert_eq!(ledger.pending_operations().unwrap()[0].id, op);

        let found = OperationResult::Succeeded(json!({"token_id": 7001}));
        ledger.resolve_operation(op, found.clone()).unwrap();
        let stored = ledger.operation(op).unwrap().unwrap();
        assert_eq!(stored.result, Some(found));
        assert!(stored.resolved_at.is_some());
        assert!(ledger.pending_operations().unwrap().is_empty());
    }

    // The log refuses deletion at the database level.
    #[test]
    fn log_rows_cannot_be_deleted() {
        let (ledger, run) = ledger_with_run();
        ledger
            .begin_operation(run, 1, OperationKind::MigrateKey, &json!({"key_id": 4}))
            .unwrap();
        let conn = ledger.conn();
        let err = conn.execute("DELETE FROM operations", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
}
