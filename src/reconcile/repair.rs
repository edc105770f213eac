//! Repairs: fix in place, reissue, rotate, recreate, revoke.
//!
//! Each changing call goes through [`Pass::write`], so its intent is in
//! the ledger before it is made. A repair that fails becomes a
//! `repair-failed` finding unless the failure must stop the run.

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::warn;

use super::check::{subject, TokenDrift, Watched};
use super::estate::OldRow;
use super::{FindingKind, Pass};
use crate::apply::{find_migrated, StepError};
use crate::grafana::wire::{Token, UpdateServiceAccount};
use crate::grafana::{ErrorKind, GrafanaError, NewToken, TokenCreated};
use crate::inventory::{AccountKind, OrgInventory};
use crate::ledger::{
    CredentialLinks, CredentialRecord, CredentialState, OperationKind, ServiceAccountOrigin,
    ServiceAccountRecord, TokenRecord,
};
use crate::sink::{Delivery, Replaced};

/// Where a new token goes and what it replaces.
struct Reissue<'a> {
    org: &'a OrgInventory,
    sa: &'a ServiceAccountRecord,
    watched: &'a Watched,
    seconds_to_live: i64,
}

impl Pass<'_> {
    pub(super) async fn fix_name(
        &mut self,
        finding: usize,
        org: i64,
        sa: &ServiceAccountRecord,
    ) -> Result<(), StepError> {
        let update = UpdateServiceAccount {
            name: Some(&sa.name),
            ..Default::default()
        };
        let subject = json!({"id": sa.sa_id, "to": sa.name});
        let what = format!("renamed back to {:?}", sa.name);
        let kind = OperationKind::RenameServiceAccount;
        self.patch_account(finding, org, sa, &update, kind, subject, what)
            .await
    }

    pub(super) async fn fix_role(
        &mut self,
        finding: usize,
        org: i64,
        sa: &ServiceAccountRecord,
    ) -> Result<(), StepError> {
        let update = UpdateServiceAccount {
            role: Some(sa.role),
            ..Default::default()
        };
        let subject = json!({"id": sa.sa_id, "role": sa.role});
        let what = format!("role set back to {}", sa.role);
        let kind = OperationKind::UpdateServiceAccountRole;
        self.patch_account(finding, org, sa, &update, kind, subject, what)
            .await
    }

    pub(super) async fn reenable(
        &mut self,
        finding: usize,
        org: i64,
        sa: &ServiceAccountRecord,
    ) -> Result<(), StepError> {
        let update = UpdateServiceAccount {
            is_disabled: Some(false),
            ..Default::default()
        };
        let subject = json!({"id": sa.sa_id});
        let what = "re-enabled (reconcile.reenable_disabled)".to_string();
        let kind = OperationKind::EnableServiceAccount;
        self.patch_account(finding, org, sa, &update, kind, subject, what)
            .await
    }

    // One recorded PATCH of an owned account, settled as a repair.
    #[allow(clippy::too_many_arguments)] // each is one fact of the repair
    async fn patch_account(
        &mut self,
        finding: usize,
        org: i64,
        sa: &ServiceAccountRecord,
        update: &UpdateServiceAccount<'_>,
        kind: OperationKind,
        subject: serde_json::Value,
        what: String,
    ) -> Result<(), StepError> {
        let client = self.job().client.clone();
        let call = client.update_service_account(org, sa.sa_id, update);
        let done = self.write(org, kind, subject, call, |_| json!({})).await;
        self.settle(finding, org, sa, done, what)
    }

    // Records a repair's outcome; only fatal errors end the run.
    fn settle(
        &mut self,
        finding: usize,
        org: i64,
        sa: &ServiceAccountRecord,
        done: Result<(), StepError>,
        what: impl Into<String>,
    ) -> Result<(), StepError> {
        match done {
            Ok(()) => self.repaired(finding, what),
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => self.repair_failed(org, &subject(sa), &error),
        }
        Ok(())
    }

    /// An owned account answered 404: report it, and only with
    /// `sa_deleted = "recreate"` recreate it and reissue its tokens (the
    /// old secrets are gone); a deletion may have been deliberate.
    pub(super) async fn account_deleted(
        &mut self,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        let watched = self.watched(id, sa.sa_id)?;
        let detail = format!(
            "GET /api/serviceaccounts/{} answers 404; {} watched token(s) went with it",
            sa.sa_id,
            watched.len()
        );
        let finding = self.observe(FindingKind::SaDeleted, id, subject(sa), detail);
        let recreate = self.settings().reconcile.repair.sa_deleted;
        if !self.rec.repair || recreate != crate::config::SaDeletedRepair::Recreate {
            return Ok(());
        }
        match self.recreate(org, sa, &watched).await {
            Ok(new) => {
                let what = format!(
                    "recreated as service account {new} with {} new token(s); \
                     consumers must receive the new secrets",
                    watched.len()
                );
                self.repaired(finding, what);
                Ok(())
            }
            Err(error) if error.is_fatal() => Err(error),
            Err(error) => {
                self.repair_failed(id, &subject(sa), &error);
                Ok(())
            }
        }
    }

    async fn recreate(
        &mut self,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
        watched: &[Watched],
    ) -> Result<i64, StepError> {
        let id = org.org.id;
        let client = self.job().client.clone();
        let subject = json!({"name": sa.name, "role": sa.role, "use_case": sa.use_case});
        let call = client.create_service_account(id, &sa.name, sa.role);
        let created = self
            .write(
                id,
                OperationKind::CreateServiceAccount,
                subject,
                call,
                |a| json!({"id": a.id, "login": a.login}),
            )
            .await?;
        let ledger = &self.job().ledger;
        ledger.mark_service_account_deleted(id, sa.sa_id)?;
        for token in ledger.tokens_of(id, sa.sa_id)? {
            ledger.mark_token_deleted(id, token.token_id)?;
            self.retract(id, &token.name).await;
        }
        let new = ServiceAccountRecord {
            sa_id: created.id,
            origin: ServiceAccountOrigin::Created,
            created_at: Utc::now(),
            deleted_at: None,
            ..sa.clone()
        };
        ledger.record_service_account(&new)?;
        for token in watched {
            let seconds_to_live = self.remaining_lifetime(id, token.key_id)?;
            let reissue = Reissue {
                org,
                sa: &new,
                watched: token,
                seconds_to_live,
            };
            self.reissue(reissue).await?;
        }
        Ok(created.id)
    }

    /// Reissues a deleted or revoked token, or rotates an expiring one.
    pub(super) async fn repair_token(
        &mut self,
        finding: usize,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
        watched: &Watched,
        drift: TokenDrift,
        found: Option<&Token>,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        if let (TokenDrift::Expiring, Some(old)) = (drift, found) {
            if let Some(why) = self.rotation_futile(old) {
                let detail = &mut self.findings[finding].detail;
                detail.push_str(&format!("; rotation would not help: {why}"));
                return Ok(());
            }
        }
        let result = self.replace_token(org, sa, watched, drift, found).await;
        let label = format!("token {} in {}", watched.token_id, subject(sa));
        match result {
            Ok(what) => self.repaired(finding, what),
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => self.repair_failed(id, &label, &error),
        }
        Ok(())
    }

    async fn replace_token(
        &mut self,
        org: &OrgInventory,
        sa: &ServiceAccountRecord,
        watched: &Watched,
        drift: TokenDrift,
        found: Option<&Token>,
    ) -> Result<String, StepError> {
        let id = org.org.id;
        let seconds_to_live = match (drift, found) {
            (TokenDrift::Expiring, Some(old)) => same_lifetime(old)?,
            _ => self.remaining_lifetime(id, watched.key_id)?,
        };
        let reissue = Reissue {
            org,
            sa,
            watched,
            seconds_to_live,
        };
        let new = self.reissue(reissue).await?;
        // Only now that the new secret is delivered may the old one go;
        // a kept credential's original row waits for cut-over instead.
        let ledger = &self.job().ledger;
        match (drift, watched.owned) {
            (TokenDrift::Deleted, true) => {
                ledger.mark_token_deleted(id, watched.token_id)?;
                self.retract(id, &watched.name).await;
            }
            (_, true) => self.delete_token(id, sa.sa_id, watched.token_id).await?,
            (_, false) => {}
        }
        Ok(format!(
            "new token {new} delivered; consumers must receive the new secret"
        ))
    }

    /// Why a successor of `old` would expire within the window too, if
    /// it would: rotating then only churns tokens and secrets.
    fn rotation_futile(&self, old: &Token) -> Option<String> {
        let window = self.settings().reconcile.expiring_within;
        let copied = same_lifetime(old).ok()?;
        let limit = self.job().policy.max_token_lifetime;
        let (lifetime, source) = match limit.map(|l| l.as_secs() as i64) {
            Some(limit) if limit < copied => (limit, "the server's lifetime limit"),
            _ => (copied, "copied from the old token"),
        };
        let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        (lifetime <= window_secs).then(|| {
            format!(
                "a new token would live {} ({source}), within expiring_within ({})",
                days(lifetime),
                days(window_secs)
            )
        })
    }

    // The lifetime left to the credential the token stands for.
    fn remaining_lifetime(&self, org: i64, key_id: i64) -> Result<i64, StepError> {
        let credential = self.job().ledger.credential(org, key_id)?;
        let expires = credential.and_then(|c| c.effective_expires.or(c.expires));
        let Some(expires) = expires else {
            return Ok(0);
        };
        let seconds = (expires - self.now).num_seconds();
        if seconds <= 0 {
            // An expired credential is not revived.
            return Err(undelivered("its credential has expired; not reissued"));
        }
        Ok(seconds)
    }

    /// Creates, records and delivers a token; moves its credential to
    /// reissued. Returns the new token's id.
    async fn reissue(&mut self, r: Reissue<'_>) -> Result<i64, StepError> {
        let id = r.org.org.id;
        let name = self.unique_name(r.org, &r.watched.name, &r.sa.use_case, r.watched.key_id);
        let token = self
            .create_token(
                r.org,
                r.sa.sa_id,
                r.watched.key_id,
                &name,
                r.seconds_to_live,
            )
            .await?;
        let granted = (r.seconds_to_live > 0)
            .then(|| self.now + chrono::Duration::seconds(r.seconds_to_live));
        self.job().ledger.record_token(&TokenRecord {
            org_id: id,
            sa_id: r.sa.sa_id,
            token_id: token.id,
            name: token.name.clone(),
            key_id: r.watched.key_id,
            requested_expires: granted,
            granted_expires: granted,
            created_at: Utc::now(),
            delivered_at: None,
            deleted_at: None,
        })?;
        let new_id = token.id;
        self.deliver(r, token, granted).await?;
        Ok(new_id)
    }

    async fn deliver(
        &mut self,
        r: Reissue<'_>,
        token: NewToken,
        granted: Option<DateTime<Utc>>,
    ) -> Result<(), StepError> {
        let id = r.org.org.id;
        let credential = self.job().ledger.credential(id, r.watched.key_id)?;
        let delivery = Delivery {
            org_id: id,
            org_name: r.org.org.name.clone(),
            use_case: r.sa.use_case.clone(),
            service_account_id: r.sa.sa_id,
            service_account_name: r.sa.name.clone(),
            token_id: token.id,
            token_name: token.name.clone(),
            secret: token.secret,
            expires: granted,
            replaces: Replaced {
                key_id: r.watched.key_id,
                key_name: credential
                    .as_ref()
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
            },
        };
        let job = self.job();
        if let Err(error) = job.sink.deliver(&delivery).await {
            // An undelivered secret is useless: delete the token now.
            self.delete_token(id, r.sa.sa_id, token.id).await?;
            return Err(undelivered(&format!("secret not delivered: {error}")));
        }
        job.ledger.mark_token_delivered(id, token.id)?;
        let links = CredentialLinks {
            target_sa_id: Some(r.sa.sa_id),
            replacement_token_id: Some(token.id),
            effective_expires: granted,
            ..Default::default()
        };
        job.ledger.link_credential(id, r.watched.key_id, &links)?;
        if credential.is_some_and(|c| c.state == CredentialState::Kept) {
            job.ledger
                .transition(id, r.watched.key_id, CredentialState::Reissued, None)?;
        }
        Ok(())
    }

    // `<old name>-r<n>`, the first n free in the org (keys and tokens
    // share one name space, FC-02). A kept credential's own row carries
    // the original key name: its replacement gets keyshift's form,
    // `<prefix>-<use case>-<key id>`, rather than a name near a foreign one.
    fn unique_name(&self, org: &OrgInventory, old: &str, use_case: &str, key_id: i64) -> String {
        let prefix = &self.job().policy.token_prefix;
        let ours = old.starts_with(&format!("{prefix}-"));
        let old = match ours {
            true => old.to_string(),
            false => crate::plan::token_name(prefix, use_case, key_id),
        };
        let names = org.credential_names();
        let owned: Vec<String> = self
            .job()
            .ledger
            .tokens(Some(org.org.id))
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let base = strip_round(&old).to_string();
        let first = (!ours).then(|| base.clone());
        first
            .into_iter()
            .chain((1..).map(|n| format!("{base}-r{n}")))
            .find(|n| !names.contains(n.as_str()) && !owned.contains(n))
            .expect("some round number is free")
    }

    /// Creates a token; at a per-account limit, deletes the oldest
    /// expired tokens keyshift made (never foreign ones) and tries once
    /// more (FC-23).
    async fn create_token(
        &mut self,
        org: &OrgInventory,
        sa: i64,
        key_id: i64,
        name: &str,
        seconds_to_live: i64,
    ) -> Result<NewToken, StepError> {
        match self
            .create_once(org.org.id, sa, key_id, name, seconds_to_live)
            .await
        {
            Err(StepError::Grafana(e)) if e.kind() == Some(&ErrorKind::TokenLimit) => {
                let freed = self.free_expired(org.org.id, sa).await?;
                if freed == 0 {
                    return Err(StepError::Grafana(e));
                }
                self.notes.push(format!(
                    "org {}: service account {sa} was at its token limit; \
                     deleted {freed} expired token(s) keyshift had created",
                    org.org.id
                ));
                self.create_once(org.org.id, sa, key_id, name, seconds_to_live)
                    .await
            }
            other => other,
        }
    }

    async fn create_once(
        &mut self,
        org: i64,
        sa: i64,
        key_id: i64,
        name: &str,
        seconds_to_live: i64,
    ) -> Result<NewToken, StepError> {
        let subject = json!({"sa_id": sa, "name": name, "key_id": key_id,
            "seconds_to_live": seconds_to_live});
        let client = self.job().client.clone();
        let call = client.create_token(org, sa, name, seconds_to_live);
        let created = self
            .write(
                org,
                OperationKind::CreateToken,
                subject,
                call,
                |c| match c {
                    TokenCreated::New(t) => json!({"id": t.id}),
                    TokenCreated::SecretLost(t) => json!({"id": t.id, "secret_lost": true}),
                },
            )
            .await?;
        match created {
            TokenCreated::New(token) => Ok(token),
            TokenCreated::SecretLost(lost) => {
                self.delete_token(org, sa, lost.id).await?;
                Err(undelivered("the new token's secret was lost; deleted it"))
            }
        }
    }

    // Deletes the single oldest expired token keyshift created in `sa`:
    // the minimum that makes room for one more.
    async fn free_expired(&mut self, org: i64, sa: i64) -> Result<usize, StepError> {
        let listing = self.job().client.tokens(org, sa).await?;
        let mut ours: Vec<TokenRecord> = self
            .job()
            .ledger
            .tokens_of(org, sa)?
            .into_iter()
            .filter(|t| t.deleted_at.is_none())
            .filter(|t| {
                let live = listing.items.iter().find(|g| g.id == t.token_id);
                live.is_some_and(|g| self.is_expired(g))
            })
            .collect();
        ours.sort_by_key(|t| (t.created_at, t.token_id));
        let Some(oldest) = ours.first() else {
            return Ok(0);
        };
        self.delete_token(org, sa, oldest.token_id).await?;
        Ok(1)
    }

    async fn delete_token(&mut self, org: i64, sa: i64, token: i64) -> Result<(), StepError> {
        let subject = json!({"sa_id": sa, "token_id": token});
        let client = self.job().client.clone();
        let call = client.delete_token(org, sa, token);
        self.write(
            org,
            OperationKind::DeleteToken,
            subject,
            call,
            |_| json!({}),
        )
        .await?;
        // Only tokens keyshift made are in the ledger's token table.
        let ledger = &self.job().ledger;
        let ours = ledger
            .tokens_of(org, sa)?
            .into_iter()
            .find(|t| t.token_id == token);
        if let Some(ours) = ours {
            ledger.mark_token_deleted(org, token)?;
            self.retract(org, &ours.name).await;
        }
        Ok(())
    }

    // A dead secret left in the sink would only mislead its consumers;
    // failing to remove it is noted, not fatal: the token is gone anyway.
    async fn retract(&mut self, org: i64, name: &str) {
        if let Err(error) = self.job().sink.retract(org, name).await {
            warn!(org, token = name, error = %error, "token file not removed");
            self.notes
                .push(format!("org {org}: {error}; remove it by hand"));
        }
    }

    /// Revokes a replaced credential at cut-over: deletes the legacy key,
    /// or the token and then its `sa-autogen-*` account once empty.
    pub(super) async fn revoke(
        &mut self,
        org: &OrgInventory,
        credential: &CredentialRecord,
        old: &OldRow<'_>,
        used: &str,
        breaks: &str,
    ) -> Result<(), StepError> {
        let id = org.org.id;
        let label = format!("credential {} ({})", credential.key_id, credential.name);
        match self.revoke_row(id, credential, old).await {
            Ok(what) => {
                let ledger = &self.job().ledger;
                ledger.transition(id, credential.key_id, CredentialState::Revoked, None)?;
                let detail = format!("{used}; {what}{breaks}");
                self.observe(FindingKind::CutoverRevoked, id, label, detail);
            }
            Err(error) if error.is_fatal() => return Err(error),
            Err(error) => self.repair_failed(id, &label, &error),
        }
        Ok(())
    }

    async fn revoke_row(
        &mut self,
        org: i64,
        credential: &CredentialRecord,
        old: &OldRow<'_>,
    ) -> Result<String, StepError> {
        let client = self.job().client.clone();
        let key = credential.key_id;
        let (account, _) = match old {
            OldRow::Key(_) => {
                let subject = json!({"key_id": key, "reason": "cut-over"});
                let call = client.delete_api_key(org, key);
                self.write(org, OperationKind::DeleteKey, subject, call, |_| json!({}))
                    .await?;
                // Grafana 11.6+ may have converted the key since it was
                // listed: the delete then finds nothing and the secret lives
                // on as a token. Revoked only once it is gone everywhere.
                let name = &credential.name;
                if let Some((sa, holder)) = find_migrated(&client, org, key, name).await? {
                    let what = format!(
                        "key {key} was moved into {holder} (service account {sa}) during this \
                         run; its token is revoked by the next reconcile"
                    );
                    return Err(StepError::Grafana(GrafanaError::Unexpected { org, what }));
                }
                return Ok(format!("legacy key {key} deleted"));
            }
            OldRow::Token(account, token) => (account, token),
        };
        let sa = account.account.id;
        self.delete_token(org, sa, key).await?;
        let owned = self.job().ledger.service_account(org, sa)?;
        let ours = owned.is_some_and(|a| a.deleted_at.is_none());
        if account.kind != AccountKind::Autogen || ours {
            return Ok(format!("token {key} deleted from service account {sa}"));
        }
        if !client.tokens(org, sa).await?.items.is_empty() {
            return Ok(format!(
                "token {key} deleted; {} keeps other tokens",
                account.account.name
            ));
        }
        let subject = json!({"id": sa, "name": account.account.name, "reason": "cut-over"});
        let call = client.delete_service_account(org, sa);
        self.write(
            org,
            OperationKind::DeleteServiceAccount,
            subject,
            call,
            |_| json!({}),
        )
        .await?;
        Ok(format!(
            "token {key} and the emptied service account {} ({sa}) deleted",
            account.account.name
        ))
    }
}

/// The lifetime an expiring token had, for its successor.
fn same_lifetime(old: &Token) -> Result<i64, StepError> {
    match (old.created, old.expiration) {
        (Some(created), Some(expires)) if expires > created => {
            Ok((expires - created).num_seconds().max(1))
        }
        _ => Err(undelivered(
            "the token's lifetime is unknown; cannot rotate it",
        )),
    }
}

// Whole days, else hours: enough to compare a lifetime with a window.
fn days(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 86_400 => format!("{:.1}d", s as f64 / 86_400.0),
        s => format!("{}h", s / 3600),
    }
}

fn strip_round(name: &str) -> &str {
    match name.rsplit_once("-r") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

fn undelivered(what: &str) -> StepError {
    StepError::Undelivered(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Round suffixes are replaced, not stacked, so names stay short.
    #[test]
    fn round_suffix_is_stripped() {
        assert_eq!(strip_round("ci-deploy-r3"), "ci-deploy");
        assert_eq!(strip_round("ci-r"), "ci-r");
        assert_eq!(strip_round("etl-runner"), "etl-runner");
    }
}
