//! The ledger's vocabulary: enums stored as text and the record types.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::role::Role;

/// Error for text that names no value of a ledger enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// Which enum was expected, e.g. "run kind".
    pub kind: &'static str,
    /// The text that matched no value.
    pub value: String,
}

// One source of truth for each enum's spelling: the ledger column, the
// JSON report and `Display` all use the same lowercase text, so a value
// read back from any of them parses.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value as the ledger stores it and reports show it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: $what, value: s.to_string() }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                text.parse().map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

text_enum! {
    /// What a run does.
    pub enum RunKind ("run kind") {
        /// A dry run: reads Grafana, writes nothing to it.
        Plan => "plan",
        /// A migration of source credentials to service accounts.
        Migrate => "migrate",
        /// A drift check, with repairs when configured.
        Reconcile => "reconcile",
        /// An undo of what keyshift did for a use case or credential.
        Revert => "revert",
    }
}

text_enum! {
    /// How a run ended.
    pub enum RunOutcome ("run outcome") {
        /// Finished with nothing outstanding.
        Done => "done",
        /// Finished, but something needs an administrator.
        Attention => "attention",
        /// Stopped by an error.
        Failed => "failed",
        /// Stopped by a signal or a crash before it could finish.
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// Where a source credential lives in Grafana.
    pub enum SourceKind ("source kind") {
        /// A legacy API key not attached to any service account.
        LegacyKey => "legacy-key",
        /// The token of an `sa-autogen-*` service account Grafana made
        /// from a key.
        AutogenServiceAccount => "autogen-service-account",
    }
}

text_enum! {
    /// The shape of a credential's secret, judged without seeing it.
    pub enum SecretFormat ("secret format") {
        /// Old base64 JSON (`eyJ...`); Grafana finds its row by name.
        LegacyJson => "legacy-json",
        /// A `glsa_` token; Grafana finds its row by hash.
        Glsa => "glsa",
        /// Not known from the listing.
        Unknown => "unknown",
    }
}

text_enum! {
    /// Where a source credential stands in its migration.
    pub enum CredentialState ("credential state") {
        /// Discovered, not yet handled.
        Pending => "pending",
        /// Its own secret now lives in the use case's service account.
        Kept => "kept",
        /// A replacement token was delivered; the old credential awaits
        /// cut-over.
        Reissued => "reissued",
        /// Left alone on purpose (expired, or by policy); see the reason.
        Skipped => "skipped",
        /// Cannot be migrated as configured (names, roles); see the reason.
        Conflict => "conflict",
        /// Grafana refused or a limit stops it; see the reason.
        Blocked => "blocked",
        /// Grafana converted it to an `sa-autogen-*` account under us
        /// (11.6+).
        AutoMigrated => "auto-migrated",
        /// Replaced and then revoked at cut-over.
        Revoked => "revoked",
        /// What keyshift did for it was undone.
        Reverted => "reverted",
        /// Gone from Grafana by someone else's hand.
        Deleted => "deleted",
    }
}

text_enum! {
    /// How keyshift came to own a service account.
    pub enum ServiceAccountOrigin ("service account origin") {
        /// keyshift created it.
        Created => "created",
        /// keyshift took over an `sa-autogen-*` account Grafana made.
        Adopted => "adopted",
    }
}

text_enum! {
    /// A call that changes Grafana, recorded before it is made.
    pub enum OperationKind ("operation kind") {
        /// `POST /api/serviceaccounts`.
        CreateServiceAccount => "create-service-account",
        /// `PATCH /api/serviceaccounts/:id` with a new name.
        RenameServiceAccount => "rename-service-account",
        /// `PATCH /api/serviceaccounts/:id` with a new role.
        UpdateServiceAccountRole => "update-service-account-role",
        /// `POST /api/serviceaccounts/migrate/:keyId`.
        MigrateKey => "migrate-key",
        /// `POST /api/serviceaccounts/:id/tokens`.
        CreateToken => "create-token",
        /// `DELETE /api/serviceaccounts/:id/tokens/:tokenId`.
        DeleteToken => "delete-token",
        /// `DELETE /api/auth/keys/:id`.
        DeleteKey => "delete-key",
        /// `DELETE /api/serviceaccounts/:id`.
        DeleteServiceAccount => "delete-service-account",
        /// `PATCH /api/serviceaccounts/:id` with `isDisabled: false`.
        EnableServiceAccount => "enable-service-account",
    }
}

text_enum! {
    /// How much a finding matters.
    pub enum Severity ("severity") {
        /// Worth knowing; nothing to do.
        Info => "info",
        /// An administrator should look.
        Warning => "warning",
        /// Access is broken or wider than intended.
        Critical => "critical",
    }
}

/// The id of a run in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The id of an operation (an intent and its result) in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(pub i64);

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The Grafana server a ledger belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBinding {
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Version last seen by `bind_server`.
    pub version: String,
    /// When the first run bound the ledger to this server.
    pub bound_at: DateTime<Utc>,
    /// When the version was last recorded.
    pub updated_at: DateTime<Utc>,
}

/// One run: what it did, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: RunId,
    /// What the run does.
    pub kind: RunKind,
    /// What started it ("cli", "schedule", "catch-up", ...).
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished; `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended; `None` while it runs.
    pub outcome: Option<RunOutcome>,
    /// The summary given at finish (counts, report path).
    pub summary: Option<serde_json::Value>,
}

/// A source credential and where its migration stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialRecord {
    /// Org the credential belongs to.
    pub org_id: i64,
    /// The original key id; Grafana keeps it when it converts a key.
    pub key_id: i64,
    /// The original key name.
    pub name: String,
    /// The key's role.
    pub role: Role,
    /// Legacy key or `sa-autogen-*` token.
    pub source: SourceKind,
    /// The secret's format, as far as known.
    pub format: SecretFormat,
    /// The key's own expiry; `None` = never.
    pub expires: Option<DateTime<Utc>>,
    /// Expiry of what replaces it, after any lifetime clamp.
    pub effective_expires: Option<DateTime<Utc>>,
    /// Grafana's `lastUsedAt` (updated lazily by Grafana).
    pub last_used_at: Option<DateTime<Utc>>,
    /// The use case the config assigns it to.
    pub use_case: String,
    /// Where its migration stands.
    pub state: CredentialState,
    /// Why it is skipped, in conflict or blocked.
    pub reason: Option<String>,
    /// Service account currently holding this credential's row.
    pub holder_sa_id: Option<i64>,
    /// The use case's service account.
    pub target_sa_id: Option<i64>,
    /// The token that replaces it, once reissued.
    pub replacement_token_id: Option<i64>,
    /// When the replacement's secret reached the sink.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the old credential was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last change to this record (set by the ledger on write).
    pub updated_at: DateTime<Utc>,
}

/// Links the applier records on a credential; `None` leaves a field be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialLinks {
    /// Service account now holding the credential's row.
    pub holder_sa_id: Option<i64>,
    /// The use case's service account.
    pub target_sa_id: Option<i64>,
    /// The token that replaces the credential.
    pub replacement_token_id: Option<i64>,
    /// Expiry of the replacement after any clamp.
    pub effective_expires: Option<DateTime<Utc>>,
}

/// A service account keyshift owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccountRecord {
    /// Org of the account.
    pub org_id: i64,
    /// Grafana's id of the account.
    pub sa_id: i64,
    /// The use case it serves.
    pub use_case: String,
    /// Its display name as keyshift set it.
    pub name: String,
    /// Its intended role.
    pub role: Role,
    /// Created by keyshift or adopted.
    pub origin: ServiceAccountOrigin,
    /// When keyshift created or adopted it.
    pub created_at: DateTime<Utc>,
    /// When keyshift deleted it.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A token keyshift created (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Org of the token.
    pub org_id: i64,
    /// The service account holding it.
    pub sa_id: i64,
    /// Grafana's id of the token.
    pub token_id: i64,
    /// The token's name.
    pub name: String,
    /// Key id of the credential it replaces.
    pub key_id: i64,
    /// Expiry asked for; `None` = never.
    pub requested_expires: Option<DateTime<Utc>>,
    /// Expiry Grafana granted, when known.
    pub granted_expires: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its secret reached the sink.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When keyshift deleted it.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What a call that changed Grafana came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", content = "detail", rename_all = "kebab-case")]
pub enum OperationResult {
    /// It worked; the value holds ids Grafana returned (no secrets).
    Succeeded(serde_json::Value),
    /// Grafana refused it, or it could not be sent.
    Failed {
        /// HTTP status, when there was a response.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// Timed out or cut off: Grafana may or may not have done it.
    Unknown,
}

impl OperationResult {
    /// The result's name as the ledger stores it.
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationResult::Succeeded(_) => "succeeded",
            OperationResult::Failed { .. } => "failed",
            OperationResult::Unknown => "unknown",
        }
    }
}

/// An intent to change Grafana, and its result once known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The operation's id.
    pub id: OperationId,
    /// The run that made the call.
    pub run_id: RunId,
    /// Org the call was aimed at.
    pub org_id: i64,
    /// Which call.
    pub kind: OperationKind,
    /// What it acts on (names, ids; never a secret).
    pub subject: serde_json::Value,
    /// When the intent was recorded.
    pub started_at: DateTime<Utc>,
    /// When a result was attached.
    pub finished_at: Option<DateTime<Utc>>,
    /// The result; `None` while the call is in flight or was cut off.
    pub result: Option<OperationResult>,
    /// When an unknown or missing result was settled by a later lookup.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl OperationRecord {
    /// True when the outcome still has to be looked up in Grafana.
    pub fn is_pending(&self) -> bool {
        matches!(self.result, None | Some(OperationResult::Unknown))
    }
}

/// One observed difference between intent and Grafana's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Kind, e.g. "token-deleted", "role-escalated".
    pub kind: String,
    /// How much it matters.
    pub severity: Severity,
    /// Org it concerns.
    pub org_id: i64,
    /// What it concerns, e.g. "service account 12 (ci)".
    pub subject: String,
    /// What was seen, for a human.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every enum value survives text, JSON and a bad value is refused.
    #[test]
    fn enum_text_round_trips() {
        for state in CredentialState::ALL {
            let back: CredentialState = state.as_str().parse().unwrap();
            assert_eq!(back, *state);
            let json = serde_json::to_string(state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
        }
        let err = "migrated".parse::<CredentialState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown credential state \"migrated\"");
        assert!(Severity::Critical > Severity::Warning);
    }

    // Operation results serialize with an explicit tag.
    #[test]
    fn operation_result_json_is_tagged() {
        let failed = OperationResult::Failed {
            status: Some(409),
            message: "name taken".into(),
        };
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json["result"], "failed");
        assert_eq!(json["detail"]["status"], 409);
        let back: OperationResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, failed);
    }
}
