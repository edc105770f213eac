//! Versioned schema: ordered migrations tracked by `PRAGMA user_version`.

use std::path::Path;

use rusqlite::Connection;
use tracing::info;

use super::error::LedgerError;

/// Schema migrations in order; entry `i` moves version `i` to `i + 1`.
///
/// Append only: a released migration is never edited. No table has a
/// column that could hold a secret; keep it that way.
const MIGRATIONS: &[&str] = &[V1];

/// The newest schema version this binary knows.
pub const SUPPORTED_VERSION: i64 = MIGRATIONS.len() as i64;

const V1: &str = r#"
CREATE TABLE server (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    url         TEXT NOT NULL,
    version     TEXT NOT NULL,
    bound_at    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome      TEXT,
    summary      TEXT
);

CREATE TABLE credentials (
    org_id                INTEGER NOT NULL,
    key_id                INTEGER NOT NULL,
    name                  TEXT NOT NULL,
    role                  TEXT NOT NULL,
    source                TEXT NOT NULL,
    format                TEXT NOT NULL,
    expires               TEXT,
    effective_expires     TEXT,
    last_used_at          TEXT,
    use_case              TEXT NOT NULL,
    state                 TEXT NOT NULL,
    reason                TEXT,
    holder_sa_id          INTEGER,
    target_sa_id          INTEGER,
    replacement_token_id  INTEGER,
    delivered_at          TEXT,
    revoked_at            TEXT,
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (org_id, key_id)
);

CREATE TABLE service_accounts (
    org_id      INTEGER NOT NULL,
    sa_id       INTEGER NOT NULL,
    use_case    TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    origin      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    deleted_at  TEXT,
    PRIMARY KEY (org_id, sa_id)
);

-- One live account per use case: the product's central promise.
CREATE UNIQUE INDEX service_accounts_live_use_case
    ON service_accounts (org_id, use_case) WHERE deleted_at IS NULL;

CREATE TABLE tokens (
    org_id             INTEGER NOT NULL,
    sa_id              INTEGER NOT NULL,
    token_id           INTEGER NOT NULL,
    name               TEXT NOT NULL,
    key_id             INTEGER NOT NULL,
    requested_expires  TEXT,
    granted_expires    TEXT,
    created_at         TEXT NOT NULL,
    delivered_at       TEXT,
    deleted_at         TEXT,
    PRIMARY KEY (org_id, token_id),
    FOREIGN KEY (org_id, sa_id) REFERENCES service_accounts (org_id, sa_id)
);

CREATE INDEX tokens_by_key ON tokens (org_id, key_id);

CREATE TABLE operations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    org_id       INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    result       TEXT,
    result_detail TEXT,
    status       INTEGER,
    message      TEXT,
    resolved_at  TEXT
);

CREATE INDEX operations_open ON operations (id)
    WHERE result IS NULL OR result = 'unknown';

-- The operation log is evidence: rows are never deleted, and a row only
-- changes to attach a result (or settle an unknown one).
CREATE TRIGGER operations_no_delete BEFORE DELETE ON operations
BEGIN
    SELECT RAISE(ABORT, 'the operation log is append-only');
END;

CREATE TRIGGER operations_result_once BEFORE UPDATE ON operations
WHEN OLD.result IS NOT NULL AND OLD.result != 'unknown'
BEGIN
    SELECT RAISE(ABORT, 'operation already has a result');
END;

CREATE TABLE findings (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    kind         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    org_id       INTEGER NOT NULL,
    subject      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);

CREATE INDEX findings_by_run ON findings (run_id);
"#;

/// Brings the schema up to [`SUPPORTED_VERSION`], one transaction per step.
///
/// # Errors
/// `SchemaTooNew` when the file is newer than this binary; `Migration`
/// when a step fails (that step is rolled back, earlier ones stay).
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    migrate_with(conn, path, MIGRATIONS)
}

fn migrate_with(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<(), LedgerError> {
    let found = check_version(conn, path, migrations.len() as i64)?;

    for (index, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        apply_one(conn, sql, version).map_err(|source| LedgerError::Migration {
            path: path.to_path_buf(),
            version,
            source,
        })?;
        info!(path = %path.display(), version, "ledger schema migrated");
    }
    Ok(())
}

/// Refuses a database newer than this binary; returns its version.
///
/// Called before any pragma that writes, so a refused file is untouched.
pub fn ensure_supported(conn: &Connection, path: &Path) -> Result<i64, LedgerError> {
    check_version(conn, path, SUPPORTED_VERSION)
}

fn check_version(conn: &Connection, path: &Path, supported: i64) -> Result<i64, LedgerError> {
    let found = user_version(conn).map_err(|source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if found > supported {
        return Err(LedgerError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(found)
}

fn apply_one(conn: &mut Connection, sql: &str, version: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(sql)?;
    // user_version takes no bound parameters; `version` is an integer.
    tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
    tx.commit()
}

/// The schema version recorded in the database.
pub fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    // An empty database reaches the supported version with every table.
    #[test]
    fn migrates_from_empty() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SUPPORTED_VERSION);

        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name IN ('server', 'runs', 'credentials', \
                 'service_accounts', 'tokens', 'operations', 'findings')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 7);
    }

    // Running the migrations again is a no-op.
    #[test]
    fn migration_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SUPPORTED_VERSION);
    }

    // A failing step rolls back alone and names its version.
    #[test]
    fn failed_step_rolls_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        let steps = ["CREATE TABLE a (x)", "CREATE TABLE b (x); BOGUS"];
        let err = migrate_with(&mut conn, Path::new("l.db"), &steps).unwrap_err();

        assert!(matches!(err, LedgerError::Migration { version: 2, .. }));
        assert_eq!(user_version(&conn).unwrap(), 1);
        let b: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'b'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(b, 0);
    }

    // A database from a newer keyshift is refused with both versions.
    #[test]
    fn refuses_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let err = migrate(&mut conn, Path::new("/x/ledger.sqlite")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("schema version 99"), "{text}");
        assert!(matches!(
            err,
            LedgerError::SchemaTooNew {
                found: 99,
                supported: SUPPORTED_VERSION,
                ..
            }
        ));
    }
}
