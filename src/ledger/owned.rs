//! Service accounts and tokens keyshift owns.

use rusqlite::types::{FromSqlError, Type};
use rusqlite::{params, ErrorCode, OptionalExtension, Row};

use super::{now, Ledger, LedgerError, ServiceAccountRecord, TokenRecord};
use crate::role::Role;

const SA_COLUMNS: &str = "org_id, sa_id, use_case, name, role, origin, created_at, deleted_at";

const TOKEN_COLUMNS: &str = "org_id, sa_id, token_id, name, key_id, requested_expires, \
    granted_expires, created_at, delivered_at, deleted_at";

impl Ledger {
    /// Records (or updates) a service account keyshift owns.
    ///
    /// # Errors
    /// `UseCaseTaken` when another live account serves the same use case.
    pub fn record_service_account(&self, sa: &ServiceAccountRecord) -> Result<(), LedgerError> {
        let action = format!("record service account {} in org {}", sa.sa_id, sa.org_id);
        let result = self.conn().execute(
            &format!(
                "INSERT INTO service_accounts ({SA_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (org_id, sa_id) DO UPDATE SET \
                 use_case = excluded.use_case, name = excluded.name, \
                 role = excluded.role, origin = excluded.origin, \
                 deleted_at = excluded.deleted_at"
            ),
            params![
                sa.org_id,
                sa.sa_id,
                sa.use_case,
                sa.name,
                sa.role.as_str(),
                sa.origin,
                sa.created_at,
                sa.deleted_at
            ],
        );
        match result {
            Err(err) if is_constraint(&err) => Err(self.use_case_taken(sa, err)),
            other => other.map(drop).map_err(self.fail(action)),
        }
    }

    fn use_case_taken(&self, sa: &ServiceAccountRecord, err: rusqlite::Error) -> LedgerError {
        match self.service_account_for_use_case(sa.org_id, &sa.use_case) {
            Ok(Some(existing)) => LedgerError::UseCaseTaken {
                org_id: sa.org_id,
                use_case: sa.use_case.clone(),
                existing_sa_id: existing.sa_id,
            },
            _ => self.fail(format!("record service account {}", sa.sa_id))(err),
        }
    }

    /// One owned service account by id (deleted ones included).
    pub fn service_account(
        &self,
        org_id: i64,
        sa_id: i64,
    ) -> Result<Option<ServiceAccountRecord>, LedgerError> {
        let sql =
            format!("SELECT {SA_COLUMNS} FROM service_accounts WHERE org_id = ?1 AND sa_id = ?2");
        self.conn()
            .query_row(&sql, [org_id, sa_id], sa_from_row)
            .optional()
            .map_err(self.fail(format!("read service account {sa_id} in org {org_id}")))
    }

    /// The live service account serving a use case, if any.
    pub fn service_account_for_use_case(
        &self,
        org_id: i64,
        use_case: &str,
    ) -> Result<Option<ServiceAccountRecord>, LedgerError> {
        let sql = format!(
            "SELECT {SA_COLUMNS} FROM service_accounts \
             WHERE org_id = ?1 AND use_case = ?2 AND deleted_at IS NULL"
        );
        self.conn()
            .query_row(&sql, params![org_id, use_case], sa_from_row)
            .optional()
            .map_err(self.fail(format!("find the account of {use_case:?} in org {org_id}")))
    }

    /// Every owned service account (deleted ones included), by org and id.
    pub fn service_accounts(
        &self,
        org_id: Option<i64>,
    ) -> Result<Vec<ServiceAccountRecord>, LedgerError> {
        let sql = format!(
            "SELECT {SA_COLUMNS} FROM service_accounts \
             WHERE ?1 IS NULL OR org_id = ?1 ORDER BY org_id, sa_id"
        );
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&sql)
            .map_err(self.fail("list service accounts"))?;
        let rows = stmt
            .query_map([org_id], sa_from_row)
            .and_then(Iterator::collect)
            .map_err(self.fail("list service accounts"));
        rows
    }

    /// Marks an owned service account as deleted by keyshift.
    pub fn mark_service_account_deleted(&self, org_id: i64, sa_id: i64) -> Result<(), LedgerError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE service_accounts SET deleted_at = COALESCE(deleted_at, ?1) \
                 WHERE org_id = ?2 AND sa_id = ?3",
                params![now(), org_id, sa_id],
            )
            .map_err(self.fail(format!("delete service account {sa_id} in org {org_id}")))?;
        match changed {
            0 => Err(LedgerError::UnknownServiceAccount { org_id, sa_id }),
            _ => Ok(()),
        }
    }

    /// Records a token keyshift created; its account must be recorded.
    pub fn record_token(&self, token: &TokenRecord) -> Result<(), LedgerError> {
        let (org, id) = (token.org_id, token.token_id);
        self.conn()
            .execute(
                &format!(
                    "INSERT INTO tokens ({TOKEN_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    token.org_id,
                    token.sa_id,
                    token.token_id,
                    token.name,
                    token.key_id,
                    token.requested_expires,
                    token.granted_expires,
                    token.created_at,
                    token.delivered_at,
                    token.deleted_at
                ],
            )
            .map(drop)
            .map_err(self.fail(format!("record token {id} in org {org}")))
    }

    /// Marks a token's secret delivered, on the token and its credential.
    pub fn mark_token_delivered(&self, org_id: i64, token_id: i64) -> Result<(), LedgerError> {
        let action = format!("mark token {token_id} in org {org_id} delivered");
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.fail(action.clone()))?;
        let at = now();

        let changed = tx
            .execute(
                "UPDATE tokens SET delivered_at = COALESCE(delivered_at, ?1) \
                 WHERE org_id = ?2 AND token_id = ?3",
                params![at, org_id, token_id],
            )
            .map_err(self.fail(action.clone()))?;
        if changed == 0 {
            return Err(LedgerError::UnknownToken { org_id, token_id });
        }
        // The credential learns when its replacement arrived: cut-over
        // grace is counted from here.
        tx.execute(
            "UPDATE credentials SET delivered_at = ?1, updated_at = ?1 \
             WHERE (org_id, key_id) = \
             (SELECT org_id, key_id FROM tokens WHERE org_id = ?2 AND token_id = ?3)",
            params![at, org_id, token_id],
        )
        .and_then(|_| tx.commit())
        .map_err(self.fail(action))
    }

    /// Marks a token as deleted by keyshift.
    pub fn mark_token_deleted(&self, org_id: i64, token_id: i64) -> Result<(), LedgerError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE tokens SET deleted_at = COALESCE(deleted_at, ?1) \
                 WHERE org_id = ?2 AND token_id = ?3",
                params![now(), org_id, token_id],
            )
            .map_err(self.fail(format!("delete token {token_id} in org {org_id}")))?;
        match changed {
            0 => Err(LedgerError::UnknownToken { org_id, token_id }),
            _ => Ok(()),
        }
    }

    /// Every owned token (deleted ones included), by org and id.
    pub fn tokens(&self, org_id: Option<i64>) -> Result<Vec<TokenRecord>, LedgerError> {
        self.query_tokens("WHERE ?1 IS NULL OR org_id = ?1", params![org_id])
    }

    /// The owned tokens of one service account, deleted ones included.
    pub fn tokens_of(&self, org_id: i64, sa_id: i64) -> Result<Vec<TokenRecord>, LedgerError> {
        self.query_tokens("WHERE org_id = ?1 AND sa_id = ?2", params![org_id, sa_id])
    }

    /// The newest live token replacing a credential.
    pub fn token_for_credential(
        &self,
        org_id: i64,
        key_id: i64,
    ) -> Result<Option<TokenRecord>, LedgerError> {
        let filter = "WHERE org_id = ?1 AND key_id = ?2 AND deleted_at IS NULL";
        let tokens = self.query_tokens(filter, params![org_id, key_id])?;
        Ok(tokens
            .into_iter()
            .max_by_key(|t| (t.created_at, t.token_id)))
    }

    fn query_tokens(
        &self,
        filter: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<TokenRecord>, LedgerError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens {filter} ORDER BY org_id, token_id");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(self.fail("list tokens"))?;
        let rows = stmt
            .query_map(params, token_from_row)
            .and_then(Iterator::collect)
            .map_err(self.fail("list tokens"));
        rows
    }
}

fn is_constraint(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

/// Reads a role column, refusing text that names no role.
pub(super) fn role_column(row: &Row<'_>, column: &str) -> rusqlite::Result<Role> {
    let text: String = row.get(column)?;
    text.parse().map_err(|err| {
        let index = row.as_ref().column_index(column).unwrap_or(0);
        let source = FromSqlError::Other(Box::new(err));
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(source))
    })
}

fn sa_from_row(row: &Row<'_>) -> rusqlite::Result<ServiceAccountRecord> {
    Ok(ServiceAccountRecord {
        org_id: row.get("org_id")?,
        sa_id: row.get("sa_id")?,
        use_case: row.get("use_case")?,
        name: row.get("name")?,
        role: role_column(row, "role")?,
        origin: row.get("origin")?,
        created_at: row.get("created_at")?,
        deleted_at: row.get("deleted_at")?,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        org_id: row.get("org_id")?,
        sa_id: row.get("sa_id")?,
        token_id: row.get("token_id")?,
        name: row.get("name")?,
        key_id: row.get("key_id")?,
        requested_expires: row.get("requested_expires")?,
        granted_expires: row.get("granted_expires")?,
        created_at: row.get("created_at")?,
        delivered_at: row.get("delivered_at")?,
        deleted_at: row.get("deleted_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::test_support::{credential, service_account, token};

    // A service account is found by id and by use case until deleted.
    #[test]
    fn service_account_lookup() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger
            .record_service_account(&service_account(1, 12, "etl"))
            .unwrap();

        let by_case = ledger.service_account_for_use_case(1, "etl").unwrap();
        assert_eq!(by_case.map(|sa| sa.sa_id), Some(12));
        ledger.mark_service_account_deleted(1, 12).unwrap();
        assert!(ledger
            .service_account_for_use_case(1, "etl")
            .unwrap()
            .is_none());
        let kept = ledger.service_account(1, 12).unwrap().unwrap();
        assert!(kept.deleted_at.is_some());
        let missing = ledger.mark_service_account_deleted(1, 99);
        assert!(matches!(
            missing,
            Err(LedgerError::UnknownServiceAccount { .. })
        ));
    }

    // A use case cannot get a second live service account.
    #[test]
    fn one_live_account_per_use_case() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger
            .record_service_account(&service_account(1, 12, "etl"))
            .unwrap();
        let err = ledger
            .record_service_account(&service_account(1, 13, "etl"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::UseCaseTaken {
                    existing_sa_id: 12,
                    ..
                }
            ),
            "{err:?}"
        );
        // Same use case in another org is fine.
        ledger
            .record_service_account(&service_account(2, 13, "etl"))
            .unwrap();
        assert_eq!(ledger.service_accounts(None).unwrap().len(), 2);
    }

    // Delivery stamps both the token and the credential it replaces.
    #[test]
    fn delivery_reaches_the_credential() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger.upsert_credential(&credential(1, 42)).unwrap();
        ledger
            .record_service_account(&service_account(1, 12, "etl"))
            .unwrap();
        ledger.record_token(&token(1, 12, 7001, 42)).unwrap();

        ledger.mark_token_delivered(1, 7001).unwrap();
        let cred = ledger.credential(1, 42).unwrap().unwrap();
        let tok = ledger.token_for_credential(1, 42).unwrap().unwrap();
        assert_eq!(cred.delivered_at, tok.delivered_at);
        assert!(tok.delivered_at.is_some());
    }

    // Deleted tokens drop out of token_for_credential but stay listed.
    #[test]
    fn deleted_tokens_stay_on_record() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger
            .record_service_account(&service_account(1, 12, "etl"))
            .unwrap();
        ledger.record_token(&token(1, 12, 7001, 42)).unwrap();
        ledger.mark_token_deleted(1, 7001).unwrap();

        assert!(ledger.token_for_credential(1, 42).unwrap().is_none());
        assert_eq!(ledger.tokens_of(1, 12).unwrap().len(), 1);
        assert_eq!(ledger.tokens(Some(1)).unwrap().len(), 1);
        let missing = ledger.mark_token_deleted(1, 1);
        assert!(matches!(missing, Err(LedgerError::UnknownToken { .. })));
    }

    // A token of an account the ledger does not own is refused.
    #[test]
    fn token_needs_an_owned_account() {
        let ledger = Ledger::open_in_memory().unwrap();
        assert!(ledger.record_token(&token(1, 12, 7001, 42)).is_err());
    }
}
