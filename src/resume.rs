//! Settling intents a killed run left without a result.
//!
//! Each pending intent is looked up in Grafana: a create may have been
//! made although no answer came back. What is found is recorded, so the
//! next plan builds on it instead of colliding with it.

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::apply::find_migrated;
use crate::grafana::{Client, GrafanaError};
use crate::ledger::{
    Ledger, LedgerError, OperationKind, OperationRecord, OperationResult, ServiceAccountOrigin,
    ServiceAccountRecord,
};
use crate::role::Role;

/// An error while settling intents.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// A lookup failed.
    #[error("cannot look up the outcome of operation {op}: {source}")]
    Grafana {
        /// Operation id.
        op: i64,
        /// The lookup error.
        #[source]
        source: GrafanaError,
    },
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Settles every pending intent; returns how many there were.
///
/// # Errors
/// When a lookup or the ledger fails; intents not reached stay pending.
pub async fn resume(client: &Client, ledger: &Ledger) -> Result<usize, ResumeError> {
    let pending = ledger.pending_operations()?;
    for op in &pending {
        let result = look_up(client, ledger, op)
            .await
            .map_err(|source| ResumeError::Grafana {
                op: op.id.0,
                source,
            })?;
        info!(op = op.id.0, org = op.org_id, kind = %op.kind, result = result.as_str(),
            "settled an interrupted call");
        ledger.resolve_operation(op.id, result)?;
    }
    Ok(pending.len())
}

async fn look_up(
    client: &Client,
    ledger: &Ledger,
    op: &OperationRecord,
) -> Result<OperationResult, GrafanaError> {
    let org = op.org_id;
    let subject = &op.subject;
    let found = match op.kind {
        OperationKind::CreateServiceAccount => {
            created_account(client, ledger, org, subject).await?
        }
        OperationKind::MigrateKey => migrated_key(client, ledger, org, subject).await?,
        OperationKind::CreateToken => {
            let name = text(subject, "name");
            let tokens = client.tokens(org, int(subject, "sa_id")).await?;
            let token = tokens.items.iter().find(|t| t.name == name);
            token.map(|t| json!({"id": t.id, "secret_lost": true}))
        }
        OperationKind::DeleteToken => {
            let tokens = client.tokens(org, int(subject, "sa_id")).await?;
            let id = int(subject, "token_id");
            (!tokens.items.iter().any(|t| t.id == id)).then(|| json!({}))
        }
        OperationKind::RenameServiceAccount | OperationKind::UpdateServiceAccountRole => {
            let account = client.service_account(org, int(subject, "id")).await?;
            let done = account
                .is_some_and(|a| a.name == text(subject, "to") || Some(a.role) == role(subject));
            done.then(|| json!({}))
        }
        OperationKind::EnableServiceAccount => {
            let account = client.service_account(org, int(subject, "id")).await?;
            account.is_some_and(|a| !a.is_disabled).then(|| json!({}))
        }
        OperationKind::DeleteServiceAccount => {
            let account = client.service_account(org, int(subject, "id")).await?;
            account.is_none().then(|| json!({}))
        }
        // The key list is capped and a deleted key just disappears: the
        // next discovery sees the truth either way.
        OperationKind::DeleteKey => None,
    };
    Ok(match found {
        Some(detail) => OperationResult::Succeeded(detail),
        None => OperationResult::Failed {
            status: None,
            message: "not found when looked up after an interruption".into(),
        },
    })
}

// An account made by an unanswered create is adopted as keyshift's own,
// unless the ledger already knows it or the use case has an account.
async fn created_account(
    client: &Client,
    ledger: &Ledger,
    org: i64,
    subject: &Value,
) -> Result<Option<Value>, GrafanaError> {
    let (name, use_case) = (text(subject, "name"), text(subject, "use_case"));
    let found = client.service_accounts_named(org, &name).await?;
    let Some(account) = found.first() else {
        return Ok(None);
    };
    let role = role(subject).unwrap_or(account.role);
    own(
        ledger,
        org,
        account.id,
        &use_case,
        &name,
        role,
        ServiceAccountOrigin::Created,
    );
    Ok(Some(json!({"id": account.id})))
}

async fn migrated_key(
    client: &Client,
    ledger: &Ledger,
    org: i64,
    subject: &Value,
) -> Result<Option<Value>, GrafanaError> {
    let (key_id, key_name) = (int(subject, "key_id"), text(subject, "key_name"));
    let Some((id, name)) = find_migrated(client, org, key_id, &key_name).await? else {
        return Ok(None);
    };
    // The role is fixed up by the next plan if the use case wants another.
    let role = client
        .service_account(org, id)
        .await?
        .map_or(Role::Viewer, |a| a.role);
    own(
        ledger,
        org,
        id,
        &text(subject, "use_case"),
        &name,
        role,
        ServiceAccountOrigin::Adopted,
    );
    Ok(Some(json!({"id": id})))
}

fn own(
    ledger: &Ledger,
    org: i64,
    id: i64,
    use_case: &str,
    name: &str,
    role: Role,
    origin: ServiceAccountOrigin,
) {
    let known = ledger.service_account(org, id).ok().flatten().is_some()
        || ledger
            .service_account_for_use_case(org, use_case)
            .ok()
            .flatten()
            .is_some();
    if known {
        return;
    }
    let record = ServiceAccountRecord {
        org_id: org,
        sa_id: id,
        use_case: use_case.to_string(),
        name: name.to_string(),
        role,
        origin,
        created_at: chrono::Utc::now(),
        deleted_at: None,
    };
    if let Err(error) = ledger.record_service_account(&record) {
        warn!(org, sa = id, error = %error, "cannot record a service account found on resume");
    }
}

fn text(subject: &Value, field: &str) -> String {
    subject
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn int(subject: &Value, field: &str) -> i64 {
    subject
        .get(field)
        .and_then(Value::as_i64)
        .unwrap_or_default()
}

fn role(subject: &Value) -> Option<Role> {
    subject
        .get("role")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
}
