//! Turning legacy keys into `sa-autogen-*` service accounts (§8).

use serde::Serialize;

use crate::api::service_accounts::build_service_account;
use crate::login;
use crate::profile::Profile;
use crate::state::State;

/// The 10.x+ `POST /migrate` result object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationResult {
    /// Keys considered.
    pub total: usize,
    /// Keys migrated.
    pub migrated: usize,
    /// Keys that failed.
    pub failed: usize,
    /// Ids of the failed keys.
    #[serde(rename = "failedApikeyIDs")]
    pub failed_apikey_ids: Vec<i64>,
    /// `API key name: <name> - Error: <text>` per failure.
    pub failed_details: Vec<String>,
}

/// Why one key could not be migrated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// Every candidate login is taken.
    #[error("failed to create service account: service account already exists")]
    LoginTaken,
    /// The key is gone or already attached.
    #[error("api key {0} is not an unattached key")]
    NotPlain(i64),
}

/// Migrates one plain key: new SA with the key's role, row attached.
///
/// The row keeps its id, name, hash, expiry and last use, so the old
/// secret keeps working, now as the service account.
pub fn migrate_key(state: &mut State, profile: Profile, key_id: i64) -> Result<i64, MigrateError> {
    let row = state.key(key_id).filter(|k| k.service_account_id.is_none());
    let row = row.cloned().ok_or(MigrateError::NotPlain(key_id))?;
    let attempts = if profile.migration_login_retry() {
        0..=10
    } else {
        0..=0
    };
    let login = attempts
        .map(|n| login::autogen(profile, row.org, &row.name, n))
        .find(|l| !state.is_login_taken(l))
        .ok_or(MigrateError::LoginTaken)?;
    let name = login::autogen_name(&row.name);
    let user = build_service_account(state.now(), row.org, &name, login, row.role, false);
    let sa_id = state
        .insert_user(user)
        .map_err(|_| MigrateError::LoginTaken)?;
    state
        .set_key_owner(key_id, Some(sa_id))
        .expect("row checked above");
    Ok(sa_id)
}

/// Migrates every plain key of an org, by name.
///
/// `stop_on_error` is the 9.x behaviour: the loop ends at the first
/// failure, leaving earlier keys migrated.
pub fn migrate_org(
    state: &mut State,
    profile: Profile,
    org: i64,
    stop_on_error: bool,
) -> MigrationResult {
    let ids: Vec<(i64, String)> = state
        .plain_keys_in(org)
        .map(|k| (k.id, k.name.clone()))
        .collect();
    let mut result = MigrationResult {
        total: ids.len(),
        ..MigrationResult::default()
    };
    for (id, name) in ids {
        match migrate_key(state, profile, id) {
            Ok(_) => result.migrated += 1,
            Err(err) => {
                result.failed += 1;
                result.failed_apikey_ids.push(id);
                let detail = format!("API key name: {name} - Error: {err}");
                result.failed_details.push(detail);
                if stop_on_error {
                    break;
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{KeyRow, Role};

    fn key(state: &mut State, name: &str) -> i64 {
        let row = KeyRow {
            id: 0,
            org: 1,
            name: name.into(),
            hash: crate::credential::hash_secret(name),
            role: Role::Editor,
            created: state.now(),
            expires: None,
            last_used: None,
            service_account_id: None,
            revoked: false,
        };
        state.insert_key(row).unwrap()
    }

    // Migration keeps the row id and role and names the SA sa-autogen-<name>.
    #[test]
    fn migrated_key_keeps_its_row() {
        let mut state = State::new();
        let id = key(&mut state, "CI");
        let sa = migrate_key(&mut state, Profile::V10_4, id).unwrap();
        let user = state.user(sa).unwrap();
        assert_eq!(user.name, "sa-autogen-CI");
        assert_eq!(user.login, "sa-autogen-1-CI");
        assert_eq!(user.sa_role(), Role::Editor);
        assert_eq!(state.tokens_of(sa)[0].id, id);
    }

    // 11.6 retries a taken login with -001; earlier versions fail the key.
    #[test]
    fn login_collisions_retry_only_from_11_6() {
        for (profile, migrated) in [(Profile::V10_4, 0), (Profile::V11_6, 1)] {
            let mut state = State::new();
            let taken = login::autogen(profile, 1, "ci", 0);
            let user = build_service_account(state.now(), 1, "x", taken, Role::Viewer, false);
            state.insert_user(user).unwrap();
            key(&mut state, "ci");
            let result = migrate_org(&mut state, profile, 1, false);
            assert_eq!(result.migrated, migrated, "{profile}");
        }
        let mut state = State::new();
        let user = build_service_account(
            state.now(),
            1,
            "x",
            "sa-autogen-1-ci".into(),
            Role::Viewer,
            false,
        );
        state.insert_user(user).unwrap();
        key(&mut state, "ci");
        migrate_org(&mut state, Profile::V11_6, 1, false);
        assert!(state.user_by_login("sa-autogen-1-ci-001").is_some());
    }
}
