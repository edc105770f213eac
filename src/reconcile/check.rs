//! Checks of the service accounts and tokens keyshift owns.

use chrono::Duration;

use super::{FindingKind, Pass, NEAR_LIMIT_PERCENT};
use crate::apply::StepError;
use crate::config::{FixRepair, TokenExpiringRepair, TokenMissingRepair};
use crate::daemon::StopToken;
use crate::grafana::wire::{ServiceAccountProfile, Token};
use crate::grafana::Listing;
use crate::inventory::OrgInventory;
use crate::ledger::{CredentialState, ServiceAccountRecord};

/// A token keyshift watches in one of its accounts.
#[derive(Debug, Clone)]
pub(super) struct Watched {
    /// Grafana's token id.
    pub token_id: i64,
    /// Its name.
    pub name: String,
    /// The credential it stands for.
    pub key_id: i64,
    /// Created by keyshift (else: a kept credential's original row).
    pub owned: bool,
}

/// What is wrong with one watched token, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenDrift {
    /// Gone from a complete list.
    Deleted,
    /// Not in a list that may be cut short.
    Unknown,
    /// Revoked by secret scanning.
    Revoked,
    /// Past its expiry.
    Expired,
    /// Expiring within the window.
    Expiring,
}

// A stop request ends the pass where it is; the report says so.
fn stopped_is_done(result: Result<(), StepError>) -> Result<(), StepError> {
    match result {
        Err(StepError::Stopped) => Ok(()),
        other => other,
    }
}

impl Pass<'_> {
    pub(super) async fn org(
        &mut self,
        org: &OrgInventory,
        version: &str,
        stop: &StopToken,
    ) -> Result<(), StepError> {
        self.now = (self.rec.now)();
        let id = org.org.id;
        let accounts = self.job().ledger.service_accounts(Some(id))?;
        for account in accounts.iter().filter(|a| a.deleted_at.is_none()) {
            if stop.is_stopping() {
                self.stopped = true;
                return Ok(());
            }
            stopped_is_done(self.account(org, account).await)?;
        }
        self.new_credentials(org)?;
        stopped_is_done(self.cutover(org, version).await)
    }

    async fn account(
        &mut self,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        let client = self.job().client.clone();
        let Some(profile) = client.service_account(id, sa.sa_id).await? else {
            return self.account_deleted(org, sa).await;
        };
        self.account_fields(org, sa, &profile).await?;
        let listing = client.tokens(id, sa.sa_id).await?;
        let subject = subject(sa);
        if listing.maybe_truncated {
            self.observe(
                FindingKind::ListingIncomplete,
                id,
                &subject,
                format!(
                    "the token list holds {} tokens, Grafana's cap: some may be hidden; \
                     nothing is repaired in this account",
                    listing.items.len()
                ),
            );
        }
        self.token_limit(id, &subject, &listing);
        for watched in self.watched(id, sa.sa_id)? {
            self.token(org, sa, &watched, &listing).await?;
        }
        Ok(())
    }

    async fn account_fields(
        &mut self,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
        profile: &ServiceAccountProfile,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        let repair = self.settings().reconcile.repair.clone();
        let subject = subject(sa);
        if profile.name != sa.name {
            let detail = format!("named {:?}, keyshift set {:?}", profile.name, sa.name);
            let i = self.observe(FindingKind::SaRenamed, id, &subject, detail);
            if self.rec.repair && repair.name_changed == FixRepair::Fix {
                self.fix_name(i, id, sa).await?;
            }
        }
        if profile.role != sa.role {
            let kind = match profile.role > sa.role {
                true => FindingKind::SaRoleEscalated,
                false => FindingKind::SaRoleReduced,
            };
            let detail = format!("role {}, intended {}", profile.role, sa.role);
            let i = self.observe(kind, id, &subject, detail);
            if self.rec.repair && repair.role_changed == FixRepair::Fix {
                self.fix_role(i, id, sa).await?;
            }
        }
        if profile.is_disabled {
            let detail = "disabled in Grafana: its tokens do not work";
            let i = self.observe(FindingKind::SaDisabled, id, &subject, detail);
            // A disabled account may be a deliberate lock-out.
            if self.rec.repair && self.settings().reconcile.reenable_disabled {
                self.reenable(i, id, sa).await?;
            }
        }
        Ok(())
    }

    fn token_limit(&mut self, org: i64, subject: &str, listing: &Listing<Token>) {
        let Some(limit) = self.settings().token_limit else {
            return;
        };
        let held = listing.items.len();
        if held * 100 >= limit * NEAR_LIMIT_PERCENT {
            let expired = listing.items.iter().filter(|t| self.is_expired(t)).count();
            let detail = format!("holds {held} of {limit} tokens, {expired} of them expired");
            self.observe(FindingKind::NearTokenLimit, org, subject, detail);
        }
    }

    /// The tokens keyshift watches in an account: those it created, and
    /// the original rows of credentials it kept there.
    pub(super) fn watched(&self, org: i64, sa: i64) -> Result<Vec<Watched>, StepError> {
        let ledger = &self.job().ledger;
        let owned = ledger
            .tokens_of(org, sa)?
            .into_iter()
            .filter(|t| t.deleted_at.is_none())
            .map(|t| Watched {
                token_id: t.token_id,
                name: t.name,
                key_id: t.key_id,
                owned: true,
            });
        let kept = ledger
            .credentials(Some(org))?
            .into_iter()
            .filter(|c| c.state == CredentialState::Kept && c.holder_sa_id == Some(sa))
            .map(|c| Watched {
                token_id: c.key_id,
                name: c.name,
                key_id: c.key_id,
                owned: false,
            });
        Ok(owned.chain(kept).collect())
    }

    async fn token(
        &mut self,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
        watched: &Watched,
        listing: &Listing<Token>,
    ) -> Result<(), StepError> {
        let found = listing.items.iter().find(|t| t.id == watched.token_id);
        let Some(drift) = self.drift(found, listing.maybe_truncated) else {
            return Ok(());
        };
        let (kind, detail) = describe(drift, found);
        let id = org.org.id;
        let subject = format!(
            "token {} ({}) in {}",
            watched.token_id,
            watched.name,
            subject(sa)
        );
        let i = self.observe(kind, id, subject, detail);
        let repair = &self.settings().reconcile.repair;
        let allowed = match drift {
            TokenDrift::Deleted | TokenDrift::Revoked => {
                repair.token_missing == TokenMissingRepair::Reissue
            }
            TokenDrift::Expiring => repair.token_expiring == TokenExpiringRepair::Rotate,
            TokenDrift::Unknown | TokenDrift::Expired => false,
        };
        // Never act on a list that may be cut short (FC-05).
        if self.rec.repair && allowed && !listing.maybe_truncated {
            self.repair_token(i, org, sa, watched, drift, found).await?;
        }
        Ok(())
    }

    fn drift(&self, found: Option<&Token>, truncated: bool) -> Option<TokenDrift> {
        let Some(token) = found else {
            return Some(match truncated {
                true => TokenDrift::Unknown,
                false => TokenDrift::Deleted,
            });
        };
        let window =
            Duration::from_std(self.settings().reconcile.expiring_within).unwrap_or(Duration::MAX);
        if token.is_revoked == Some(true) {
            Some(TokenDrift::Revoked)
        } else if self.is_expired(token) {
            Some(TokenDrift::Expired)
        } else if token.expiration.is_some_and(|e| e - self.now <= window) {
            Some(TokenDrift::Expiring)
        } else {
            None
        }
    }

    /// Grafana: a token is expired when `expires <= now`.
    pub(super) fn is_expired(&self, token: &Token) -> bool {
        token.has_expired || token.expiration.is_some_and(|e| e <= self.now)
    }
}

fn describe(drift: TokenDrift, found: Option<&Token>) -> (FindingKind, String) {
    let expiry = found
        .and_then(|t| t.expiration)
        .map_or_else(|| "never".into(), |e| e.to_rfc3339());
    match drift {
        TokenDrift::Deleted => (
            FindingKind::TokenDeleted,
            "gone from the account's complete token list".into(),
        ),
        TokenDrift::Unknown => (
            FindingKind::TokenUnknown,
            "not in a token list at Grafana's cap: it may exist beyond it".into(),
        ),
        TokenDrift::Revoked => (
            FindingKind::TokenRevoked,
            "revoked by Grafana (isRevoked), probably by secret scanning".into(),
        ),
        TokenDrift::Expired => (FindingKind::TokenExpired, format!("expired at {expiry}")),
        TokenDrift::Expiring => (FindingKind::TokenExpiring, format!("expires at {expiry}")),
    }
}

/// How findings name an owned account.
pub(super) fn subject(sa: &ServiceAccountRecord) -> String {
    format!("service account {} ({})", sa.sa_id, sa.name)
}
