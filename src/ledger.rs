//! The SQLite ledger: what keyshift owns, did, and decided.
//!
//! One process writes a ledger at a time (see [`lock`]). Inside that
//! process a [`Ledger`] is shared as `Arc<Ledger>`: every method takes
//! `&self`, holds an internal mutex for one short synchronous call, and
//! commits before it returns. Nothing secret is ever written: no table has
//! a column that could hold a token or password.

mod credentials;
mod error;
pub mod lock;
mod model;
mod operations;
mod owned;
mod runs;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tracing::warn;

pub use credentials::allowed_moves;
pub use error::LedgerError;
pub use model::*;
pub use schema::SUPPORTED_VERSION;

use lock::LockFile;

// Long enough for a checkpoint by another connection of this process,
// short enough that a wedged ledger surfaces as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates the database file readable by its owner only, when missing:
/// SQLite gives its WAL and shared-memory files the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// The ledger: a SQLite database plus the lock that makes it ours.
#[derive(Debug)]
pub struct Ledger {
    // Field order matters: the connection closes before the lock goes.
    conn: Mutex<Connection>,
    path: PathBuf,
    interrupted: Vec<RunId>,
    _lock: Option<LockFile>,
}

impl Ledger {
    /// Opens (or creates) the ledger at `path` and takes its lock.
    ///
    /// Brings the schema up to date and closes runs a killed process left
    /// open as [`RunOutcome::Interrupted`].
    ///
    /// # Errors
    /// `Locked` at once when another process holds the ledger,
    /// `SchemaTooNew` for a file from a newer keyshift, `Open` or
    /// `Migration` when SQLite fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Ledger, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let lock = LockFile::acquire(&path)?;
        create_private(&path).map_err(|source| LedgerError::Create {
            path: path.clone(),
            source,
        })?;
        let conn = Connection::open(&path).map_err(|source| LedgerError::Open {
            path: path.clone(),
            source,
        })?;
        Ledger::set_up(conn, path, Some(lock))
    }

    /// Opens a private in-memory ledger, for tests and dry runs.
    pub fn open_in_memory() -> Result<Ledger, LedgerError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| LedgerError::Open {
            path: path.clone(),
            source,
        })?;
        Ledger::set_up(conn, path, None)
    }

    fn set_up(
        mut conn: Connection,
        path: PathBuf,
        lock: Option<LockFile>,
    ) -> Result<Ledger, LedgerError> {
        schema::ensure_supported(&conn, &path)?;
        configure(&conn).map_err(|source| LedgerError::Open {
            path: path.clone(),
            source,
        })?;
        schema::migrate(&mut conn, &path)?;

        let mut ledger = Ledger {
            conn: Mutex::new(conn),
            path,
            interrupted: Vec::new(),
            _lock: lock,
        };
        ledger.interrupted = ledger.close_open_runs()?;
        Ok(ledger)
    }

    /// The database file ("`:memory:`" for an in-memory ledger).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs found open at open time and closed as interrupted.
    pub fn interrupted_runs(&self) -> &[RunId] {
        &self.interrupted
    }

    /// Folds the write-ahead log into the database and truncates it.
    ///
    /// Called at shutdown so the file on disk is complete on its own.
    pub fn checkpoint(&self) -> Result<(), LedgerError> {
        let conn = self.conn();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(self.fail("checkpoint the write-ahead log"))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the guard leaves no open transaction
        // (rusqlite rolls back on drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Maps a SQLite error to `Query` naming the ledger and the action.
    fn fail(&self, action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> LedgerError {
        let path = self.path.clone();
        let action = action.into();
        move |source| LedgerError::Query {
            path,
            action,
            source,
        }
    }

    fn close_open_runs(&self) -> Result<Vec<RunId>, LedgerError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "UPDATE runs SET finished_at = ?1, outcome = ?2 \
                 WHERE finished_at IS NULL RETURNING id",
            )
            .map_err(self.fail("close interrupted runs"))?;
        let ids = stmt
            .query_map((now(), RunOutcome::Interrupted), |row| row.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>())
            .map_err(self.fail("close interrupted runs"))?;

        for id in &ids {
            warn!(
                run = id,
                "run left open by a stopped process closed as interrupted"
            );
        }
        Ok(ids.into_iter().map(RunId).collect())
    }
}

/// Sets the connection's pragmas.
///
/// WAL lets readers (`keyshift report`) work beside the writer, and with
/// WAL `synchronous=NORMAL` loses nothing on a process crash, only on
/// power loss; intents are committed with FULL (see `operations`).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
}

/// The ledger's clock: every timestamp it writes on its own.
fn now() -> DateTime<Utc> {
    Utc::now()
}

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
