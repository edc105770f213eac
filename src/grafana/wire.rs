//! Wire types of Grafana's HTTP API, as keyshift reads and writes them.
//!
//! Fields that some Grafana versions omit are optional or defaulted, so
//! one set of types reads every version from 9.1 on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::role::Role;

/// `GET /api/health`.
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    /// `"ok"` or `"failing"`.
    #[serde(default)]
    pub database: String,
    /// Absent when the server hides its version.
    #[serde(default)]
    pub version: Option<String>,
}

/// An item of `GET /api/orgs`, and `GET /api/org`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Org {
    /// Org id.
    pub id: i64,
    /// Org name.
    pub name: String,
}

/// An item of `GET /api/auth/keys`: a legacy API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Key id; Grafana keeps it when the key becomes a token.
    pub id: i64,
    /// Key name, unique in the org across keys and tokens.
    pub name: String,
    /// The key's role.
    #[serde(default = "viewer")]
    pub role: Role,
    /// Absent when the key never expires.
    #[serde(default)]
    pub expiration: Option<DateTime<Utc>>,
    /// Absent when never used, and before Grafana 9.5.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An item of `GET /api/serviceaccounts/search`, or a create response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    /// Service account id (a user id).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Login, derived from the name at creation (rules differ by version).
    #[serde(default)]
    pub login: String,
    /// Org id.
    #[serde(default)]
    pub org_id: i64,
    /// Org role.
    #[serde(default = "viewer")]
    pub role: Role,
    /// Whether the account is disabled.
    #[serde(default)]
    pub is_disabled: bool,
    /// Set for accounts managed by Grafana or plugins (11.x on).
    #[serde(default)]
    pub is_external: bool,
    /// Number of tokens, as far as Grafana counts them.
    #[serde(default)]
    pub tokens: i64,
}

/// `GET /api/serviceaccounts/search`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountPage {
    /// Matches across all pages.
    #[serde(default)]
    pub total_count: i64,
    /// This page's accounts.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccount>,
}

/// `GET /api/serviceaccounts/:id`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountProfile {
    /// Service account id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Login.
    #[serde(default)]
    pub login: String,
    /// Org id.
    #[serde(default)]
    pub org_id: i64,
    /// Org role.
    #[serde(default = "viewer")]
    pub role: Role,
    /// Whether the account is disabled.
    #[serde(default)]
    pub is_disabled: bool,
    /// Managed by Grafana or a plugin.
    #[serde(default)]
    pub is_external: bool,
}

/// An item of `GET /api/serviceaccounts/:id/tokens`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// Token id; for a migrated key, the key's old id.
    pub id: i64,
    /// Token name.
    pub name: String,
    /// Creation time.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// `null` when unused.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// `null` when the token never expires.
    #[serde(default)]
    pub expiration: Option<DateTime<Utc>>,
    /// True once expired.
    #[serde(default)]
    pub has_expired: bool,
    /// Set by secret scanning; `null` or absent on older rows and versions.
    #[serde(default)]
    pub is_revoked: Option<bool>,
}

/// Response of `POST /api/serviceaccounts/:id/tokens`.
#[derive(Deserialize)]
pub struct NewTokenBody {
    /// Token id.
    pub id: i64,
    /// Token name.
    pub name: String,
    /// The secret, shown only in this response.
    pub key: String,
}

/// Body of `POST /api/serviceaccounts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceAccount<'a> {
    /// Display name.
    pub name: &'a str,
    /// Always sent: an omitted role silently becomes Viewer.
    pub role: Role,
    /// Always false for accounts keyshift creates.
    pub is_disabled: bool,
}

/// Body of `PATCH /api/serviceaccounts/:id`; absent fields stay as they are.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceAccount<'a> {
    /// New display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// New role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// New disabled flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_disabled: Option<bool>,
}

/// Body of `POST /api/serviceaccounts/:id/tokens`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateToken<'a> {
    /// Token name, unique in the org.
    pub name: &'a str,
    /// 0 means the token never expires.
    pub seconds_to_live: i64,
}

/// An error body in any of Grafana's three shapes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Structured id, from Grafana 10 on.
    #[serde(default)]
    pub message_id: Option<String>,
}

fn viewer() -> Role {
    Role::Viewer
}

#[cfg(test)]
mod tests {
    use super::*;

    // Optional fields of the token DTO read as absent when a version omits them.
    #[test]
    fn token_reads_old_and_new_shapes() {
        let old: Token = serde_json::from_str(r#"{"id":1,"name":"a","expiration":null}"#).unwrap();
        assert_eq!(old.is_revoked, None);
        let new: Token = serde_json::from_str(
            r#"{"id":2,"name":"b","lastUsedAt":"2024-02-01T08:00:00Z",
                "expiration":"2019-06-26T10:52:03+03:00","hasExpired":true,"isRevoked":true}"#,
        )
        .unwrap();
        assert_eq!(new.is_revoked, Some(true));
        assert_eq!(
            new.expiration.unwrap().to_rfc3339(),
            "2019-06-26T07:52:03+00:00"
        );
    }

    // A role of "None" and an empty role read as Role::None.
    #[test]
    fn service_account_role_none() {
        let sa: ServiceAccount =
            serde_json::from_str(r#"{"id":3,"name":"x","role":"","login":"sa-1-x"}"#).unwrap();
        assert_eq!(sa.role, Role::None);
    }
}
