//! Source credentials and their state machine.
//!
//! Allowed moves (a move to the same state is always allowed, so a resumed
//! run can repeat its last step):
//!
//! | from          | to                                                      |
//! |---------------|---------------------------------------------------------|
//! | pending       | kept, reissued, skipped, conflict, blocked, auto-migrated, deleted |
//! | auto-migrated | kept, reissued, skipped, conflict, blocked, deleted     |
//! | conflict      | pending, kept, reissued, skipped, blocked, auto-migrated, deleted |
//! | blocked       | pending, kept, reissued, skipped, conflict, auto-migrated, deleted |
//! | skipped       | pending, auto-migrated, deleted                         |
//! | kept          | reissued (rotation), reverted, deleted                  |
//! | reissued      | revoked (cut-over), reverted, deleted                   |
//! | reverted      | pending                                                 |
//! | revoked       | none: the old secret is gone                            |
//! | deleted       | none: the credential is gone                            |

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use tracing::debug;

use super::{now, CredentialLinks, CredentialRecord, CredentialState, Ledger, LedgerError};

use CredentialState::*;

const COLUMNS: &str = "org_id, key_id, name, role, source, format, expires, \
    effective_expires, last_used_at, use_case, state, reason, holder_sa_id, \
    target_sa_id, replacement_token_id, delivered_at, revoked_at, updated_at";

/// The states a credential in state `from` may move to.
pub fn allowed_moves(from: CredentialState) -> &'static [CredentialState] {
    match from {
        Pending => &[
            Kept,
            Reissued,
            Skipped,
            Conflict,
            Blocked,
            AutoMigrated,
            Deleted,
        ],
        AutoMigrated => &[Kept, Reissued, Skipped, Conflict, Blocked, Deleted],
        Conflict => &[
            Pending,
            Kept,
            Reissued,
            Skipped,
            Blocked,
            AutoMigrated,
            Deleted,
        ],
        Blocked => &[
            Pending,
            Kept,
            Reissued,
            Skipped,
            Conflict,
            AutoMigrated,
            Deleted,
        ],
        Skipped => &[Pending, AutoMigrated, Deleted],
        Kept => &[Reissued, Reverted, Deleted],
        Reissued => &[Revoked, Reverted, Deleted],
        Reverted => &[Pending],
        Revoked | Deleted => &[],
    }
}

fn is_allowed(from: CredentialState, to: CredentialState) -> bool {
    from == to || allowed_moves(from).contains(&to)
}

impl Ledger {
    /// Records discovery data for a credential, inserting it if new.
    ///
    /// An existing record keeps its state unless it is `pending` and the
    /// record's state is an allowed move from there: discovery never moves
    /// a credential backwards; later moves go through
    /// [`Ledger::transition`]. A `None` in an optional field keeps what the
    /// ledger had, so discovery cannot erase what the applier recorded.
    pub fn upsert_credential(&self, record: &CredentialRecord) -> Result<(), LedgerError> {
        let (org, key) = (record.org_id, record.key_id);
        let action = format!("record credential {key} in org {org}");
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.fail(action.clone()))?;

        let current: Option<(CredentialState, Option<String>)> = tx
            .query_row(
                "SELECT state, reason FROM credentials WHERE org_id = ?1 AND key_id = ?2",
                [org, key],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(self.fail(action.clone()))?;
        let (state, reason) = match current {
            Some((Pending, _)) if is_allowed(Pending, record.state) => {
                (record.state, record.reason.clone())
            }
            Some(kept) => kept,
            None => (record.state, record.reason.clone()),
        };

        upsert_row(&tx, record, state, reason.as_deref())
            .and_then(|_| tx.commit())
            .map_err(self.fail(action))
    }

    /// Moves a credential to state `to`, recording why.
    ///
    /// `reason` replaces the previous one (`None` clears it). A move to
    /// `revoked` also stamps `revoked_at`.
    ///
    /// # Errors
    /// `UnknownCredential`, or `InvalidTransition` for a move the table in
    /// this module's documentation does not allow.
    pub fn transition(
        &self,
        org_id: i64,
        key_id: i64,
        to: CredentialState,
        reason: Option<&str>,
    ) -> Result<(), LedgerError> {
        let action = format!("move credential {key_id} in org {org_id} to {to}");
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.fail(action.clone()))?;

        let from: CredentialState = tx
            .query_row(
                "SELECT state FROM credentials WHERE org_id = ?1 AND key_id = ?2",
                [org_id, key_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.fail(action.clone()))?
            .ok_or(LedgerError::UnknownCredential { org_id, key_id })?;
        if !is_allowed(from, to) {
            return Err(LedgerError::InvalidTransition {
                org_id,
                key_id,
                from,
                to,
            });
        }

        let revoked_at = (to == Revoked).then(now);
        tx.execute(
            "UPDATE credentials SET state = ?1, reason = ?2, updated_at = ?3, \
             revoked_at = COALESCE(revoked_at, ?4) WHERE org_id = ?5 AND key_id = ?6",
            params![to, reason, now(), revoked_at, org_id, key_id],
        )
        .and_then(|_| tx.commit())
        .map_err(self.fail(action))?;
        debug!(org = org_id, key = key_id, %from, %to, "credential moved");
        Ok(())
    }

    /// Records where a credential's row and replacement are.
    ///
    /// Only the `Some` fields of `links` are written.
    pub fn link_credential(
        &self,
        org_id: i64,
        key_id: i64,
        links: &CredentialLinks,
    ) -> Result<(), LedgerError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE credentials SET \
                 holder_sa_id = COALESCE(?1, holder_sa_id), \
                 target_sa_id = COALESCE(?2, target_sa_id), \
                 replacement_token_id = COALESCE(?3, replacement_token_id), \
                 effective_expires = COALESCE(?4, effective_expires), \
                 updated_at = ?5 WHERE org_id = ?6 AND key_id = ?7",
                params![
                    links.holder_sa_id,
                    links.target_sa_id,
                    links.replacement_token_id,
                    links.effective_expires,
                    now(),
                    org_id,
                    key_id
                ],
            )
            .map_err(self.fail(format!("link credential {key_id} in org {org_id}")))?;
        match changed {
            0 => Err(LedgerError::UnknownCredential { org_id, key_id }),
            _ => Ok(()),
        }
    }

    /// One credential by org and original key id.
    pub fn credential(
        &self,
        org_id: i64,
        key_id: i64,
    ) -> Result<Option<CredentialRecord>, LedgerError> {
        let sql = format!("SELECT {COLUMNS} FROM credentials WHERE org_id = ?1 AND key_id = ?2");
        self.conn()
            .query_row(&sql, [org_id, key_id], credential_from_row)
            .optional()
            .map_err(self.fail(format!("read credential {key_id} in org {org_id}")))
    }

    /// Every credential, or those of one org, by org then key id.
    pub fn credentials(&self, org_id: Option<i64>) -> Result<Vec<CredentialRecord>, LedgerError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM credentials WHERE ?1 IS NULL OR org_id = ?1 \
             ORDER BY org_id, key_id"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(self.fail("list credentials"))?;
        let rows = stmt
            .query_map([org_id], credential_from_row)
            .and_then(Iterator::collect)
            .map_err(self.fail("list credentials"));
        rows
    }
}

fn upsert_row(
    tx: &rusqlite::Transaction<'_>,
    r: &CredentialRecord,
    state: CredentialState,
    reason: Option<&str>,
) -> rusqlite::Result<usize> {
    let sql = format!(
        "INSERT INTO credentials ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
          ?16, ?17, ?18) \
         ON CONFLICT (org_id, key_id) DO UPDATE SET \
         name = excluded.name, role = excluded.role, source = excluded.source, \
         format = excluded.format, expires = excluded.expires, \
         use_case = excluded.use_case, state = excluded.state, \
         reason = excluded.reason, updated_at = excluded.updated_at, \
         effective_expires = COALESCE(excluded.effective_expires, effective_expires), \
         last_used_at = COALESCE(excluded.last_used_at, last_used_at), \
         holder_sa_id = COALESCE(excluded.holder_sa_id, holder_sa_id), \
         target_sa_id = COALESCE(excluded.target_sa_id, target_sa_id), \
         replacement_token_id = \
             COALESCE(excluded.replacement_token_id, replacement_token_id), \
         delivered_at = COALESCE(excluded.delivered_at, delivered_at), \
         revoked_at = COALESCE(excluded.revoked_at, revoked_at)"
    );
    tx.execute(
        &sql,
        params![
            r.org_id,
            r.key_id,
            r.name,
            r.role.as_str(),
            r.source,
            r.format,
            r.expires,
            r.effective_expires,
            r.last_used_at,
            r.use_case,
            state,
            reason,
            r.holder_sa_id,
            r.target_sa_id,
            r.replacement_token_id,
            r.delivered_at,
            r.revoked_at,
            now(),
        ],
    )
}

fn credential_from_row(row: &Row<'_>) -> rusqlite::Result<CredentialRecord> {
    Ok(CredentialRecord {
        org_id: row.get("org_id")?,
        key_id: row.get("key_id")?,
        name: row.get("name")?,
        role: super::owned::role_column(row, "role")?,
        source: row.get("source")?,
        format: row.get("format")?,
        expires: row.get("expires")?,
        effective_expires: row.get("effective_expires")?,
        last_used_at: row.get("last_used_at")?,
        use_case: row.get("use_case")?,
        state: row.get("state")?,
        reason: row.get("reason")?,
        holder_sa_id: row.get("holder_sa_id")?,
        target_sa_id: row.get("target_sa_id")?,
        replacement_token_id: row.get("replacement_token_id")?,
        delivered_at: row.get("delivered_at")?,
        revoked_at: row.get("revoked_at")?,
        updated_at: row.get("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::test_support::credential;

    // Every listed move is accepted; every other move is refused.
    #[test]
    fn state_machine_follows_the_table() {
        for &from in CredentialState::ALL {
            for &to in CredentialState::ALL {
                let ledger = Ledger::open_in_memory().unwrap();
                let mut record = credential(1, 42);
                record.state = from;
                ledger.upsert_credential(&record).unwrap();

                let result = ledger.transition(1, 42, to, Some("test"));
                let expected = from == to || allowed_moves(from).contains(&to);
                assert_eq!(result.is_ok(), expected, "{from} -> {to}");
                if let Err(err) = result {
                    assert!(matches!(err, LedgerError::InvalidTransition { .. }));
                }
            }
        }
    }

    // A refused move names the credential and both states.
    #[test]
    fn invalid_transition_message() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger.upsert_credential(&credential(3, 7)).unwrap();
        let err = ledger.transition(3, 7, Revoked, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential 7 in org 3 cannot move from pending to revoked"
        );
        let unknown = ledger.transition(3, 8, Kept, None).unwrap_err();
        assert!(matches!(
            unknown,
            LedgerError::UnknownCredential { key_id: 8, .. }
        ));
    }

    // Discovery never moves a migrated credential back to pending.
    #[test]
    fn upsert_does_not_move_state_backwards() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger.upsert_credential(&credential(1, 42)).unwrap();
        ledger.transition(1, 42, Reissued, None).unwrap();
        let links = CredentialLinks {
            replacement_token_id: Some(7001),
            ..CredentialLinks::default()
        };
        ledger.link_credential(1, 42, &links).unwrap();

        let mut rediscovered = credential(1, 42);
        rediscovered.name = "etl-renamed".into();
        ledger.upsert_credential(&rediscovered).unwrap();

        let stored = ledger.credential(1, 42).unwrap().unwrap();
        assert_eq!(stored.state, Reissued);
        assert_eq!(stored.name, "etl-renamed");
        assert_eq!(stored.replacement_token_id, Some(7001));
    }

    // Discovery may record a first decision for a pending credential.
    #[test]
    fn upsert_moves_pending_forward() {
        let ledger = Ledger::open_in_memory().unwrap();
        ledger.upsert_credential(&credential(1, 42)).unwrap();
        let mut auto = credential(1, 42);
        auto.state = AutoMigrated;
        auto.holder_sa_id = Some(12);
        ledger.upsert_credential(&auto).unwrap();

        let stored = ledger.credential(1, 42).unwrap().unwrap();
        assert_eq!(stored.state, AutoMigrated);
        assert_eq!(stored.holder_sa_id, Some(12));
    }

    // Revoking stamps revoked_at; listing filters by org.
    #[test]
    fn revoke_stamps_time_and_listing_filters() {
        let ledger = Ledger::open_in_memory().unwrap();
        let mut record = credential(1, 42);
        record.state = Reissued;
        ledger.upsert_credential(&record).unwrap();
        ledger.upsert_credential(&credential(2, 43)).unwrap();
        ledger
            .transition(1, 42, Revoked, Some("unused 30 days"))
            .unwrap();

        let stored = ledger.credential(1, 42).unwrap().unwrap();
        assert!(stored.revoked_at.is_some());
        assert_eq!(stored.reason.as_deref(), Some("unused 30 days"));
        assert_eq!(ledger.credentials(Some(2)).unwrap().len(), 1);
        assert_eq!(ledger.credentials(None).unwrap().len(), 2);
    }
}
