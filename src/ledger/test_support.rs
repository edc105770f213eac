//! Record builders shared by the ledger's tests.

use chrono::{TimeZone, Utc};

use super::*;
use crate::role::Role;

/// A pending legacy key credential named "etl".
pub fn credential(org_id: i64, key_id: i64) -> CredentialRecord {
    CredentialRecord {
        org_id,
        key_id,
        name: "etl".into(),
        role: Role::Editor,
        source: SourceKind::LegacyKey,
        format: SecretFormat::LegacyJson,
        expires: Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()),
        effective_expires: None,
        last_used_at: None,
        use_case: "etl".into(),
        state: CredentialState::Pending,
        reason: None,
        holder_sa_id: None,
        target_sa_id: None,
        replacement_token_id: None,
        delivered_at: None,
        revoked_at: None,
        updated_at: Utc::now(),
    }
}

/// A live service account keyshift created for `use_case`.
pub fn service_account(org_id: i64, sa_id: i64, use_case: &str) -> ServiceAccountRecord {
    ServiceAccountRecord {
        org_id,
        sa_id,
        use_case: use_case.into(),
        name: use_case.into(),
        role: Role::Editor,
        origin: ServiceAccountOrigin::Created,
        created_at: Utc::now(),
        deleted_at: None,
    }
}

/// A live, undelivered token replacing credential `key_id`.
pub fn token(org_id: i64, sa_id: i64, token_id: i64, key_id: i64) -> TokenRecord {
    TokenRecord {
        org_id,
        sa_id,
        token_id,
        name: format!("etl-{key_id}"),
        key_id,
        requested_expires: None,
        granted_expires: None,
        created_at: Utc::now(),
        delivered_at: None,
        deleted_at: None,
    }
}
