//! Estate-wide checks: credentials that appeared or were converted,
//! listings that may be cut short, and the cut-over.

use std::collections::HashMap;

use super::{FindingKind, Pass};
use crate::apply::StepError;
use crate::config::{CutoverPolicy, NewCredentialsRepair};
use crate::cutover::{self, Evidence, Verdict};
use crate::daemon::StopToken;
use crate::grafana::wire::{ApiKey, Token};
use crate::inventory::{AccountInventory, AccountKind, OrgInventory};
use crate::job::JobError;
use crate::ledger::{CredentialLinks, CredentialRecord, CredentialState, SourceKind};

/// Where a replaced credential's old row is now.
pub(super) enum OldRow<'i> {
    /// Still a legacy key.
    Key(&'i ApiKey),
    /// A token in some account (an `sa-autogen-*` one, or the use case's).
    Token(&'i AccountInventory, &'i Token),
}

impl OldRow<'_> {
    fn last_used(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            OldRow::Key(key) => key.last_used_at,
            OldRow::Token(_, token) => token.last_used_at,
        }
    }
}

impl Pass<'_> {
    /// Legacy keys and `sa-autogen-*` accounts the ledger does not know,
    /// known keys Grafana converted, and key lists at Grafana's cap.
    pub(super) fn new_credentials(&mut self, org: &OrgInventory) -> Result<(), StepError> {
        let id = org.org.id;
        let known: HashMap<i64, CredentialRecord> = self
            .job()
            .ledger
            .credentials(Some(id))?
            .into_iter()
            .map(|c| (c.key_id, c))
            .collect();
        if org.keys_maybe_truncated {
            let detail = "the key list holds 100 keys, Grafana's cap: more may be hidden";
            self.observe(
                FindingKind::ListingIncomplete,
                id,
                "legacy key list",
                detail,
            );
        }
        for key in org.keys.iter().filter(|k| !known.contains_key(&k.id)) {
            let subject = format!("legacy key {} ({})", key.id, key.name);
            let detail = format!("role {}, not in the ledger", key.role);
            self.observe(FindingKind::NewLegacyKey, id, subject, detail);
        }
        let autogen = org
            .accounts
            .iter()
            .filter(|a| a.kind == AccountKind::Autogen);
        for account in autogen {
            self.autogen_account(id, account, &known)?;
        }
        Ok(())
    }

    fn autogen_account(
        &mut self,
        org: i64,
        account: &AccountInventory,
        known: &HashMap<i64, CredentialRecord>,
    ) -> Result<(), StepError> {
        let subject = format!(
            "service account {} ({})",
            account.account.id, account.account.name
        );
        if account.tokens.maybe_truncated {
            let detail = "its token list is at Grafana's cap: some may be hidden";
            self.observe(FindingKind::ListingIncomplete, org, &subject, detail);
        }
        let mut any_known = false;
        for token in &account.tokens.items {
            let Some(credential) = known.get(&token.id) else {
                continue;
            };
            any_known = true;
            let moved = credential.holder_sa_id != Some(account.account.id);
            if credential.source == SourceKind::LegacyKey && moved {
                self.converted(org, account, credential)?;
            }
        }
        let owned = self.job().ledger.service_account(org, account.account.id)?;
        if !any_known && owned.is_none() {
            let detail = format!(
                "{} token(s), not in the ledger: Grafana converted a key keyshift never saw",
                account.tokens.items.len()
            );
            self.observe(FindingKind::NewAutogenAccount, org, subject, detail);
        }
        Ok(())
    }

    // Grafana 11.6+ moved a key we knew into an `sa-autogen-*` account at
    // startup; the token id is the key id, so nothing was lost (FC-08).
    fn converted(
        &mut self,
        org: i64,
        account: &AccountInventory,
        credential: &CredentialRecord,
    ) -> Result<(), StepError> {
        let ledger = &self.job().ledger;
        let links = CredentialLinks {
            holder_sa_id: Some(account.account.id),
            ..Default::default()
        };
        ledger.link_credential(org, credential.key_id, &links)?;
        let open = matches!(
            credential.state,
            CredentialState::Pending | CredentialState::Conflict | CredentialState::Blocked
        );
        if open {
            ledger.transition(org, credential.key_id, CredentialState::AutoMigrated, None)?;
        }
        let subject = format!("credential {} ({})", credential.key_id, credential.name);
        let detail = match credential.state {
            CredentialState::Reissued => format!(
                "Grafana moved the replaced key into {} (id {}), which now holds the \
                 legacy secret; it stays until cut-over",
                account.account.name, account.account.id
            ),
            _ => format!(
                "Grafana moved the key into {} (id {}); recorded as auto-migrated",
                account.account.name, account.account.id
            ),
        };
        self.observe(FindingKind::ConvertedByGrafana, org, subject, detail);
        Ok(())
    }

    /// Judges every replaced credential of the org and revokes those the
    /// policy lets go.
    pub(super) async fn cutover(
        &mut self,
        org: &OrgInventory,
        version: &str,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        let credentials = self.job().ledger.credentials(Some(id))?;
        let replaced = credentials
            .into_iter()
            .filter(|c| c.state == CredentialState::Reissued);
        for credential in replaced {
            let Some(delivered) = credential.delivered_at else {
                continue;
            };
            let Some(old) = locate(org, credential.key_id) else {
                continue;
            };
            let evidence = Evidence {
                last_used: old.last_used(),
                delivered,
            };
            self.judge(org, &credential, &old, evidence, version)
                .await?;
        }
        Ok(())
    }

    async fn judge(
        &mut self,
        org: &OrgInventory,
        credential: &CredentialRecord,
        old: &OldRow<'_>,
        evidence: Evidence,
        version: &str,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        let config = &self.settings().cutover;
        let subject = format!("credential {} ({})", credential.key_id, credential.name);
        if matches!(old, OldRow::Key(_)) && !self.key_use_reported {
            // No `lastUsedAt` in the key list is no evidence of non-use.
            let detail = format!(
                "Grafana <9.5 does not report key use (version {version}): \
                 confirm non-use by hand before revoking"
            );
            self.observe(FindingKind::CutoverUnjudged, id, subject, detail);
            return Ok(());
        }
        let used = evidence.last_used.map_or_else(
            || "never used".into(),
            |t| format!("last used {}", t.to_rfc3339()),
        );
        if cutover::is_used_past_grace(config, evidence) {
            let detail = format!("{used}, after its replacement was delivered and the grace");
            self.observe(FindingKind::LegacyStillUsed, id, &subject, detail);
        }
        let breaks = breaks_all(credential, old);
        match cutover::judge(config, version, self.now, evidence) {
            Verdict::Unjudged => {
                let detail = format!(
                    "{used}; lastUsedAt is unreliable on Grafana {version}: \
                     confirm non-use by hand before revoking"
                );
                self.observe(FindingKind::CutoverUnjudged, id, subject, detail);
            }
            Verdict::Waiting { until } => {
                let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let detail = format!("{used}; may be revoked from {until}");
                self.observe(FindingKind::CutoverWaiting, id, subject, detail);
            }
            Verdict::Qualifies if config.policy == CutoverPolicy::Never => {
                let detail = format!("{used}; ready to revoke (policy never){breaks}");
                self.observe(FindingKind::CutoverReady, id, subject, detail);
            }
            Verdict::Qualifies => match self.replacement_fault(id, credential).await? {
                Some(fault) => {
                    let detail = format!("{used}; not revoked: {fault}");
                    self.observe(FindingKind::CutoverBlocked, id, subject, detail);
                }
                None => self.revoke(org, credential, old, &used, &breaks).await?,
            },
        }
        Ok(())
    }

    /// Why the replacement of `credential` cannot stand in for it, if it
    /// cannot: revoking the old row would leave its consumers nothing.
    async fn replacement_fault(
        &self,
        org: i64,
        credential: &CredentialRecord,
    ) -> Result<Option<String>, StepError> {
        let (Some(sa), Some(token)) = (credential.target_sa_id, credential.replacement_token_id)
        else {
            return Ok(Some("the ledger records no replacement token".into()));
        };
        let client = self.job().client.clone();
        let Some(profile) = client.service_account(org, sa).await? else {
            return Ok(Some(format!(
                "its replacement's service account {sa} is gone"
            )));
        };
        if profile.is_disabled {
            return Ok(Some(format!(
                "its replacement's service account {sa} is disabled"
            )));
        }
        let listing = client.tokens(org, sa).await?;
        let found = listing.items.iter().find(|t| t.id == token);
        Ok(match found {
            None if listing.maybe_truncated => Some(format!(
                "replacement token {token} is not in a token list at Grafana's cap"
            )),
            None => Some(format!("replacement token {token} is gone")),
            Some(t) if t.is_revoked == Some(true) => {
                Some(format!("replacement token {token} is revoked"))
            }
            Some(t) if self.is_expired(t) => Some(format!("replacement token {token} has expired")),
            Some(_) => None,
        })
    }

    /// Migrates what appeared when the config asks for it, as its own
    /// migrate run.
    pub(super) async fn migrate_new(&mut self, stop: &StopToken) -> Result<(), JobError> {
        let new = |k: FindingKind| {
            matches!(
                k,
                FindingKind::NewLegacyKey
                    | FindingKind::NewAutogenAccount
                    | FindingKind::ConvertedByGrafana
            )
        };
        let found: Vec<usize> = (0..self.findings.len())
            .filter(|i| new(self.findings[*i].kind))
            .collect();
        let repair = self.settings().reconcile.repair.new_credentials;
        // Migrating is a repair: never without --repair (the daemon always
        // has it), whichever of the two keys asks for it.
        let wanted = self.rec.repair
            && (self.settings().migrate_new || repair == NewCredentialsRepair::Migrate);
        if found.is_empty() || !wanted || stop.is_stopping() || self.stopped {
            return Ok(());
        }
        let migrated = self.job().migrate(None).await?;
        self.writes += migrated.writes;
        let note = format!(
            "handed to migrate run {}; its report says what was done",
            migrated.report.run_id
        );
        for i in found {
            if self.findings[i].kind != FindingKind::ConvertedByGrafana {
                self.repaired(i, note.clone());
            }
        }
        self.notes.push(format!(
            "new credentials were handed to migrate run {} ({})",
            migrated.report.run_id, migrated.report.outcome
        ));
        self.nested.push(migrated.report);
        Ok(())
    }
}

/// Finds a credential's old row: a legacy key, or a token with its id.
pub(super) fn locate(org: &OrgInventory, key_id: i64) -> Option<OldRow<'_>> {
    if let Some(key) = org.keys.iter().find(|k| k.id == key_id) {
        return Some(OldRow::Key(key));
    }
    org.accounts.iter().find_map(|account| {
        let token = account.tokens.items.iter().find(|t| t.id == key_id)?;
        Some(OldRow::Token(account, token))
    })
}

// Legacy keys are found by name and secret hash: deleting the row ends
// every consumer of the old secret at once (FC-20).
fn breaks_all(credential: &CredentialRecord, old: &OldRow<'_>) -> String {
    let legacy = matches!(old, OldRow::Key(_))
        || credential.format == crate::ledger::SecretFormat::LegacyJson;
    match legacy {
        true => "; revoking it breaks every consumer of the old secret at once".into(),
        false => String::new(),
    }
}
