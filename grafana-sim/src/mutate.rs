//! Out-of-band changes to the state (the control API's `mutate`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::service_accounts::build_service_account;
use crate::credential;
use crate::login;
use crate::profile::Profile;
use crate::state::{shift, KeyRow, Role, State, StateError};

/// One out-of-band change, as tagged JSON (`{"op": "…", …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    /// Delete a service account and its tokens.
    DeleteServiceAccount {
        /// Account id.
        id: i64,
    },
    /// Rename a service account (login unchanged).
    RenameServiceAccount {
        /// Account id.
        id: i64,
        /// New name.
        name: String,
    },
    /// Change a service account's org role.
    SetServiceAccountRole {
        /// Account id.
        id: i64,
        /// New role.
        role: Role,
    },
    /// Disable or enable a service account.
    SetServiceAccountDisabled {
        /// Account id.
        id: i64,
        /// Disabled or not.
        disabled: bool,
    },
    /// Replace the extra RBAC actions of a service account.
    SetServiceAccountPermissions {
        /// Account id.
        id: i64,
        /// Actions such as `serviceaccounts:create`.
        permissions: Vec<String>,
    },
    /// Apply the 10.4.x/11.0 upgrade rewrite of SA logins (§9.3) to
    /// every service account; returns how many changed in `id`.
    UpgradeServiceAccountLogins,
    /// Delete a key or token row.
    DeleteToken {
        /// Row id.
        id: i64,
    },
    /// Revoke a token (as secret scanning does).
    RevokeToken {
        /// Row id.
        id: i64,
    },
    /// Set `lastUsedAt` of a key or token.
    MarkUsed {
        /// Row id.
        credential_id: i64,
        /// When; defaults to the simulator's now.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    /// Create a legacy key in any profile; returns its secret.
    CreateApiKey {
        /// Org id.
        org: i64,
        /// Key name.
        name: String,
        /// Role.
        role: Role,
        /// Lifetime; absent never expires.
        #[serde(default)]
        seconds_to_live: Option<i64>,
    },
    /// Create a service account (login derived per profile).
    CreateServiceAccount {
        /// Org id.
        org: i64,
        /// Name.
        name: String,
        /// Role.
        role: Role,
        /// Disabled.
        #[serde(default)]
        disabled: bool,
    },
    /// Create a token for a service account; returns its secret.
    CreateToken {
        /// Account id.
        service_account_id: i64,
        /// Token name.
        name: String,
        /// Lifetime; absent never expires.
        #[serde(default)]
        seconds_to_live: Option<i64>,
    },
}

/// What a mutation produced.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationOutcome {
    /// Id of a created row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Secret of a created key or token (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl std::fmt::Debug for MutationOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.key.as_ref().map(|_| "***");
        write!(f, "MutationOutcome {{ id: {:?}, key: {key:?} }}", self.id)
    }
}

/// Applies a mutation.
pub fn apply(
    state: &mut State,
    profile: Profile,
    mutation: Mutation,
) -> Result<MutationOutcome, StateError> {
    use Mutation as M;
    let none = MutationOutcome::default();
    match mutation {
        M::DeleteServiceAccount { id } => state.delete_service_account(id).map(|_| none),
        M::RenameServiceAccount { id, name } => {
            update_sa(state, id, |u| u.name = name).map(|_| none)
        }
        M::SetServiceAccountRole { id, role } => update_sa(state, id, |u| {
            let org = u.service_account.as_ref().expect("checked").org;
            u.orgs.insert(org, role);
        })
        .map(|_| none),
        M::SetServiceAccountDisabled { id, disabled } => update_sa(state, id, |u| {
            u.service_account.as_mut().expect("checked").disabled = disabled
        })
        .map(|_| none),
        M::SetServiceAccountPermissions { id, permissions } => {
            update_sa(state, id, |u| u.permissions = permissions).map(|_| none)
        }
        M::UpgradeServiceAccountLogins => Ok(MutationOutcome {
            id: Some(upgrade_logins(state)),
            key: None,
        }),
        M::DeleteToken { id } => state
            .remove_key(id)
            .map(|_| none)
            .ok_or(StateError::NoKey(id)),
        M::RevokeToken { id } => update_key(state, id, |k| k.revoked = true),
        M::MarkUsed { credential_id, at } => {
            let at = at.unwrap_or_else(|| state.now());
            update_key(state, credential_id, |k| k.last_used = Some(at))
        }
        M::CreateApiKey {
            org,
            name,
            role,
            seconds_to_live,
        } => create_api_key(state, org, &name, role, seconds_to_live),
        M::CreateServiceAccount {
            org,
            name,
            role,
            disabled,
        } => create_sa(state, profile, org, &name, role, disabled),
        M::CreateToken {
            service_account_id,
            name,
            seconds_to_live,
        } => create_token(state, service_account_id, &name, seconds_to_live),
    }
}

/// Rewrites old-style logins, then collapses doubled org ids where the
/// result is free, as the two Grafana migrations do.
fn upgrade_logins(state: &mut State) -> i64 {
    let accounts: Vec<(i64, i64, String)> = state
        .users()
        .filter_map(|u| Some((u.id, u.service_account.as_ref()?.org, u.login.clone())))
        .collect();
    let mut changed = 0;
    for (id, org, login) in accounts {
        let mut current = login.clone();
        if let Some(new) = login::upgraded(org, &current) {
            if state.set_login(id, &new).is_ok() {
                current = new;
            }
        }
        if let Some(new) = login::org_once(org, &current) {
            if state.set_login(id, &new).is_ok() {
                current = new;
            }
        }
        changed += i64::from(current != login);
    }
    changed
}

fn update_sa<F: FnOnce(&mut crate::state::User)>(
    state: &mut State,
    id: i64,
    change: F,
) -> Result<(), StateError> {
    let is_sa = state.user(id).is_some_and(|u| u.service_account.is_some());
    if !is_sa {
        return Err(StateError::NoServiceAccount(id));
    }
    state.update_user(id, change);
    Ok(())
}

fn update_key<F: FnOnce(&mut KeyRow)>(
    state: &mut State,
    id: i64,
    change: F,
) -> Result<MutationOutcome, StateError> {
    match state.update_key(id, change) {
        true => Ok(MutationOutcome::default()),
        false => Err(StateError::NoKey(id)),
    }
}

fn expiry(state: &State, seconds: Option<i64>) -> Result<Option<DateTime<Utc>>, StateError> {
    let Some(seconds) = seconds else {
        return Ok(None);
    };
    let at = shift(state.now(), seconds);
    at.map(Some).ok_or(StateError::TimeOutOfRange { seconds })
}

fn create_api_key(
    state: &mut State,
    org: i64,
    name: &str,
    role: Role,
    seconds: Option<i64>,
) -> Result<MutationOutcome, StateError> {
    let (key, secret) = credential::new_legacy(&mut state.rng, org, name);
    let row = KeyRow {
        id: 0,
        org,
        name: name.to_string(),
        hash: credential::hash_secret(&secret),
        role,
        created: state.now(),
        expires: expiry(state, seconds)?,
        last_used: None,
        service_account_id: None,
        revoked: false,
    };
    let id = state.insert_key(row)?;
    Ok(MutationOutcome {
        id: Some(id),
        key: Some(key),
    })
}

fn create_sa(
    state: &mut State,
    profile: Profile,
    org: i64,
    name: &str,
    role: Role,
    disabled: bool,
) -> Result<MutationOutcome, StateError> {
    let login = login::service_account(profile, org, name);
    let user = build_service_account(state.now(), org, name, login, role, disabled);
    let id = state.insert_user(user)?;
    Ok(MutationOutcome {
        id: Some(id),
        key: None,
    })
}

fn create_token(
    state: &mut State,
    sa_id: i64,
    name: &str,
    seconds: Option<i64>,
) -> Result<MutationOutcome, StateError> {
    let user = state.user(sa_id).and_then(|u| u.service_account.as_ref());
    let org = user.ok_or(StateError::NoServiceAccount(sa_id))?.org;
    let token = credential::new_glsa(&mut state.rng);
    let row = KeyRow {
        id: 0,
        org,
        name: name.to_string(),
        hash: credential::hash_secret(&token),
        role: Role::Viewer,
        created: state.now(),
        expires: expiry(state, seconds)?,
        last_used: None,
        service_account_id: Some(sa_id),
        revoked: false,
    };
    let id = state.insert_key(row)?;
    Ok(MutationOutcome {
        id: Some(id),
        key: Some(token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Out-of-band creation works on any profile and returns the secret.
    #[test]
    fn create_api_key_returns_a_working_secret() {
        let mut state = State::new();
        let m = Mutation::CreateApiKey {
            org: 1,
            name: "ci".into(),
            role: Role::Editor,
            seconds_to_live: None,
        };
        let out = apply(&mut state, Profile::V12_1, m).unwrap();
        let key = out.key.clone().unwrap();
        let parsed = credential::Credential::parse(&key).unwrap();
        assert_eq!(state.key(out.id.unwrap()).unwrap().hash, parsed.hash());
        assert!(!format!("{out:?}").contains(&key));
    }

    // The upgrade rewrite renames old logins and keeps the indexes right.
    #[test]
    fn upgrade_rewrites_old_logins() {
        let mut state = State::new();
        let m = Mutation::CreateServiceAccount {
            org: 1,
            name: "ci bot".into(),
            role: Role::Viewer,
            disabled: false,
        };
        let id = apply(&mut state, Profile::V9_5, m).unwrap().id.unwrap();
        let out = apply(
            &mut state,
            Profile::V10_4,
            Mutation::UpgradeServiceAccountLogins,
        );
        assert_eq!(out.unwrap().id, Some(1));
        assert_eq!(state.user(id).unwrap().login, "sa-1-ci-bot");
        assert!(state.user_by_login("sa-1-ci-bot").is_some());
        assert!(!state.is_login_taken("sa-ci-bot"));
    }

    // Mutations on missing rows fail with the missing id.
    #[test]
    fn missing_targets_are_errors() {
        let mut state = State::new();
        let err = apply(&mut state, Profile::V10_4, Mutation::RevokeToken { id: 9 });
        assert_eq!(err, Err(StateError::NoKey(9)));
        let m = Mutation::DeleteServiceAccount { id: 4 };
        assert_eq!(
            apply(&mut state, Profile::V10_4, m),
            Err(StateError::NoServiceAccount(4))
        );
    }
}
