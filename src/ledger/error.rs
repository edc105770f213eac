//! Errors of the ledger boundary.

use std::io;
use std::path::PathBuf;

use super::model::{CredentialState, OperationId, RunId};

/// What can go wrong opening or writing the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database could not be opened or configured.
    #[error("failed to open ledger {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The database file could not be created.
    #[error("failed to create ledger {path}")]
    Create {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The lock file could not be created or written.
    #[error("failed to lock ledger {path} with {lock_path}")]
    LockFile {
        /// The database file.
        path: PathBuf,
        /// The lock file next to it.
        lock_path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// Another process holds the ledger.
    #[error("ledger {path} is in use by {holder}")]
    Locked {
        /// The database file.
        path: PathBuf,
        /// Who holds it: "pid 4242 (keyshift run) since ...".
        holder: String,
    },

    /// The database was written by a newer keyshift.
    #[error(
        "ledger {path} has schema version {found}, this keyshift supports up \
         to {supported}; upgrade keyshift"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },

    /// A schema migration failed; the file is left at the version before.
    #[error("failed to migrate ledger {path} to schema version {version}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version being applied.
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// A read or write failed.
    #[error("ledger {path}: failed to {action}")]
    Query {
        /// The database file.
        path: PathBuf,
        /// What was being done, e.g. "record token 12 in org 3".
        action: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The ledger belongs to another Grafana server.
    #[error(
        "ledger {path} belongs to grafana {bound}, not {requested}; use a \
         separate ledger per server"
    )]
    ServerMismatch {
        /// The database file.
        path: PathBuf,
        /// URL the ledger is bound to.
        bound: String,
        /// URL asked for.
        requested: String,
    },

    /// A credential move the state machine forbids.
    #[error("credential {key_id} in org {org_id} cannot move from {from} to {to}")]
    InvalidTransition {
        /// Org of the credential.
        org_id: i64,
        /// Key id of the credential.
        key_id: i64,
        /// Its current state.
        from: CredentialState,
        /// The state asked for.
        to: CredentialState,
    },

    /// No credential with that key in that org.
    #[error("credential {key_id} in org {org_id} is not in the ledger")]
    UnknownCredential {
        /// Org asked for.
        org_id: i64,
        /// Key id asked for.
        key_id: i64,
    },

    /// No owned service account with that id in that org.
    #[error("service account {sa_id} in org {org_id} is not in the ledger")]
    UnknownServiceAccount {
        /// Org asked for.
        org_id: i64,
        /// Service account id asked for.
        sa_id: i64,
    },

    /// No owned token with that id in that org.
    #[error("token {token_id} in org {org_id} is not in the ledger")]
    UnknownToken {
        /// Org asked for.
        org_id: i64,
        /// Token id asked for.
        token_id: i64,
    },

    /// A use case already has a live service account.
    #[error(
        "use case {use_case:?} in org {org_id} already has service account \
         {existing_sa_id}"
    )]
    UseCaseTaken {
        /// Org of the use case.
        org_id: i64,
        /// The use case.
        use_case: String,
        /// The account already recorded for it.
        existing_sa_id: i64,
    },

    /// No run with that id.
    #[error("run {run} is not in the ledger")]
    UnknownRun {
        /// The run asked for.
        run: RunId,
    },

    /// The run already has an outcome.
    #[error("run {run} is already finished")]
    RunFinished {
        /// The run asked for.
        run: RunId,
    },

    /// No operation with that id.
    #[error("operation {id} is not in the ledger")]
    UnknownOperation {
        /// The operation asked for.
        id: OperationId,
    },

    /// The operation already has a definite result.
    #[error("operation {id} already has a result")]
    OperationFinished {
        /// The operation asked for.
        id: OperationId,
    },
}

impl LedgerError {
    /// True when another connection held SQLite busy; a retry may work.
    pub fn is_retryable(&self) -> bool {
        let source = match self {
            LedgerError::Query { source, .. } => source,
            LedgerError::Open { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
