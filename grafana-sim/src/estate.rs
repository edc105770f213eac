//! The estate document: the whole simulated state as JSON.
//!
//! Loading an exported estate reproduces the state. Exports carry
//! secret hashes only; hand-written estates may give plain secrets so
//! tests know the credentials.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::credential::{self, Credential, SecretHash};
use crate::login;
use crate::profile::Profile;
use crate::state::{KeyRow, Role, ServiceAccountInfo, State, StateError, User};

/// A secret in an estate document; Debug prints `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(***)")
    }
}

/// The estate document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Estate {
    /// Orgs; org 1 "Main Org." exists even when absent here.
    pub orgs: Vec<EstateOrg>,
    /// Users (not service accounts).
    pub users: Vec<EstateUser>,
    /// Plain legacy API keys.
    pub api_keys: Vec<EstateKey>,
    /// Service accounts with their tokens.
    pub service_accounts: Vec<EstateServiceAccount>,
}

/// An org of the estate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstateOrg {
    /// Org id.
    pub id: i64,
    /// Org name.
    pub name: String,
}

/// A user of the estate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstateUser {
    /// User id; absent takes the next id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Login.
    pub login: String,
    /// Plain password (hand-written estates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretText>,
    /// SHA-256 hex of the password (exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Display name; defaults to the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Grafana server admin.
    #[serde(default)]
    pub server_admin: bool,
    /// Memberships: org id → role.
    #[serde(default)]
    pub orgs: BTreeMap<i64, Role>,
    /// Extra RBAC actions beyond the basic role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
}

/// A plain legacy API key of the estate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstateKey {
    /// Row id; absent takes the next id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Org id.
    pub org: i64,
    /// Key name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Creation time; absent means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Expiry; absent never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// Last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    /// The full key as clients send it (`eyJ…`), or its inner secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretText>,
    /// SHA-256 hex of the stored secret (exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
}

/// A service account of the estate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstateServiceAccount {
    /// User id; absent takes the next id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// UID; absent gets a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Org id.
    pub org: i64,
    /// Name.
    pub name: String,
    /// Login; absent is derived from the name per profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Org role.
    pub role: Role,
    /// Disabled.
    #[serde(default)]
    pub disabled: bool,
    /// Managed by Grafana or a plugin.
    #[serde(default)]
    pub external: bool,
    /// Extra RBAC actions beyond the basic role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Creation time; absent means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Tokens (migrated keys included).
    #[serde(default)]
    pub tokens: Vec<EstateToken>,
}

/// A service-account token of the estate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstateToken {
    /// Row id; absent takes the next id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Token name.
    pub name: String,
    /// The token as clients send it (`glsa_…` or a migrated `eyJ…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretText>,
    /// SHA-256 hex of the stored secret (exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    /// Creation time; absent means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Expiry; absent never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    /// Last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    /// Revoked by secret scanning.
    #[serde(default)]
    pub revoked: bool,
}

/// Error loading an estate document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstateError {
    /// A secret or hash cannot be used for this row.
    #[error("unusable secret for {what} {name:?} in org {org}")]
    BadSecret {
        /// "api key", "token" or "user".
        what: &'static str,
        /// Row name or login.
        name: String,
        /// Org id (0 for users).
        org: i64,
    },
    /// The database refused a row.
    #[error("estate row {name:?} refused")]
    Refused {
        /// Row name or login.
        name: String,
        /// Why.
        #[source]
        source: StateError,
    },
}

/// The server admin created at start.
#[derive(Clone)]
pub struct Admin {
    /// Login.
    pub login: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Admin {{ login: {:?}, password: *** }}", self.login)
    }
}

impl Estate {
    /// Builds a fresh state from this estate.
    pub fn to_state(&self, profile: Profile, admin: &Admin) -> Result<State, EstateError> {
        let mut state = State::new();
        for org in &self.orgs {
            state.insert_org(org.id, &org.name);
        }
        self.load_users(&mut state, admin)?;
        for sa in &self.service_accounts {
            load_service_account(&mut state, profile, sa)?;
        }
        for key in &self.api_keys {
            load_key(&mut state, key)?;
        }
        Ok(state)
    }

    fn load_users(&self, state: &mut State, admin: &Admin) -> Result<(), EstateError> {
        let given = self.users.iter().find(|u| u.login == admin.login);
        let all_orgs = state.orgs().map(|o| (o.id, Role::Admin)).collect();
        let mut admin_user = EstateUser {
            id: None,
            login: admin.login.clone(),
            password: None,
            password_hash: None,
            name: None,
            server_admin: true,
            orgs: all_orgs,
            permissions: vec![],
        };
        if let Some(given) = given {
            admin_user.id = given.id;
            admin_user.name = given.name.clone();
            admin_user.orgs = given.orgs.clone();
            admin_user.permissions = given.permissions.clone();
        }
        admin_user.password = Some(SecretText(admin.password.clone()));
        load_user(state, &admin_user)?;
        for user in self.users.iter().filter(|u| u.login != admin.login) {
            load_user(state, user)?;
        }
        Ok(())
    }

    /// Exports a state; secrets appear as hashes only.
    pub fn from_state(state: &State) -> Estate {
        let orgs = state.orgs().map(|o| EstateOrg {
            id: o.id,
            name: o.name.clone(),
        });
        let people = state.users().filter(|u| u.service_account.is_none());
        let accounts = state.users().filter(|u| u.service_account.is_some());
        let plain = state.keys().filter(|k| k.service_account_id.is_none());
        Estate {
            orgs: orgs.collect(),
            users: people.map(export_user).collect(),
            api_keys: plain.map(export_key).collect(),
            service_accounts: accounts.map(|sa| export_sa(state, sa)).collect(),
        }
    }
}

fn load_user(state: &mut State, user: &EstateUser) -> Result<(), EstateError> {
    let bad = || EstateError::BadSecret {
        what: "user",
        name: user.login.clone(),
        org: 0,
    };
    let hash = match (&user.password, &user.password_hash) {
        (Some(p), _) => Some(credential::hash_secret(&p.0)),
        (None, Some(h)) => Some(credential::hash_from_hex(h).ok_or_else(bad)?),
        (None, None) => None,
    };
    let now = state.now();
    let row = User {
        id: user.id.unwrap_or(0),
        uid: String::new(),
        login: user.login.clone(),
        email: user.login.clone(),
        name: user.name.clone().unwrap_or_else(|| user.login.clone()),
        password_hash: hash,
        server_admin: user.server_admin,
        orgs: user.orgs.clone(),
        permissions: user.permissions.clone(),
        service_account: None,
        created: now,
        updated: now,
    };
    state
        .insert_user(row)
        .map(drop)
        .map_err(|source| EstateError::Refused {
            name: user.login.clone(),
            source,
        })
}

fn load_service_account(
    state: &mut State,
    profile: Profile,
    sa: &EstateServiceAccount,
) -> Result<(), EstateError> {
    let refused = |source| EstateError::Refused {
        name: sa.name.clone(),
        source,
    };
    let derived = || match sa.external {
        true => login::external(sa.org, &sa.name),
        false => login::service_account(profile, sa.org, &sa.name),
    };
    let login = sa.login.clone().unwrap_or_else(derived);
    let created = sa.created.unwrap_or_else(|| state.now());
    let user = User {
        id: sa.id.unwrap_or(0),
        uid: sa.uid.clone().unwrap_or_default(),
        email: login.clone(),
        login,
        name: sa.name.clone(),
        password_hash: None,
        server_admin: false,
        orgs: BTreeMap::from([(sa.org, sa.role)]),
        permissions: sa.permissions.clone(),
        service_account: Some(ServiceAccountInfo {
            org: sa.org,
            disabled: sa.disabled,
            external: sa.external,
        }),
        created,
        updated: created,
    };
    let id = state.insert_user(user).map_err(refused)?;
    for token in &sa.tokens {
        load_token(state, sa.org, id, token)?;
    }
    Ok(())
}

fn load_token(
    state: &mut State,
    org: i64,
    sa_id: i64,
    token: &EstateToken,
) -> Result<(), EstateError> {
    let source = SecretSource {
        what: "token",
        org,
        name: &token.name,
        secret: token.secret.as_ref(),
        hash: token.secret_hash.as_deref(),
    };
    let row = KeyRow {
        id: token.id.unwrap_or(0),
        org,
        name: token.name.clone(),
        hash: source.resolve(state)?,
        role: Role::Viewer,
        created: token.created.unwrap_or_else(|| state.now()),
        expires: token.expires,
        last_used: token.last_used,
        service_account_id: Some(sa_id),
        revoked: token.revoked,
    };
    insert_row(state, row)
}

fn load_key(state: &mut State, key: &EstateKey) -> Result<(), EstateError> {
    let source = SecretSource {
        what: "api key",
        org: key.org,
        name: &key.name,
        secret: key.secret.as_ref(),
        hash: key.secret_hash.as_deref(),
    };
    let row = KeyRow {
        id: key.id.unwrap_or(0),
        org: key.org,
        name: key.name.clone(),
        hash: source.resolve(state)?,
        role: key.role,
        created: key.created.unwrap_or_else(|| state.now()),
        expires: key.expires,
        last_used: key.last_used,
        service_account_id: None,
        revoked: false,
    };
    insert_row(state, row)
}

fn insert_row(state: &mut State, row: KeyRow) -> Result<(), EstateError> {
    let name = row.name.clone();
    state
        .insert_key(row)
        .map(drop)
        .map_err(|source| EstateError::Refused { name, source })
}

/// Where the hash of a key row comes from.
struct SecretSource<'a> {
    what: &'static str,
    org: i64,
    name: &'a str,
    secret: Option<&'a SecretText>,
    hash: Option<&'a str>,
}

impl SecretSource<'_> {
    /// The stored hash: from the secret, the hex hash, or a random secret
    /// nobody knows (a row that exists but cannot be used).
    fn resolve(&self, state: &mut State) -> Result<SecretHash, EstateError> {
        let bad = || EstateError::BadSecret {
            what: self.what,
            name: self.name.to_string(),
            org: self.org,
        };
        if let Some(secret) = self.secret {
            return self.hash_of(&secret.0).ok_or_else(bad);
        }
        if let Some(hex) = self.hash {
            return credential::hash_from_hex(hex).ok_or_else(bad);
        }
        Ok(credential::hash_secret(&credential::new_glsa(
            &mut state.rng,
        )))
    }

    // A legacy key must name this row's org and name, or it could never
    // be found by (org, name); other text is taken as the inner secret.
    fn hash_of(&self, secret: &str) -> Option<SecretHash> {
        match Credential::parse(secret) {
            Some(Credential::Legacy {
                secret: inner,
                name,
                org,
            }) => (org == self.org && name == self.name).then(|| credential::hash_secret(&inner)),
            Some(glsa @ Credential::Glsa(_)) => Some(glsa.hash()),
            None if self.what == "api key" => Some(credential::hash_secret(secret)),
            None => None,
        }
    }
}

fn export_user(user: &User) -> EstateUser {
    EstateUser {
        id: Some(user.id),
        login: user.login.clone(),
        password: None,
        password_hash: user.password_hash.as_ref().map(credential::hash_to_hex),
        name: Some(user.name.clone()),
        server_admin: user.server_admin,
        orgs: user.orgs.clone(),
        permissions: user.permissions.clone(),
    }
}

fn export_key(row: &KeyRow) -> EstateKey {
    EstateKey {
        id: Some(row.id),
        org: row.org,
        name: row.name.clone(),
        role: row.role,
        created: Some(row.created),
        expires: row.expires,
        last_used: row.last_used,
        secret: None,
        secret_hash: Some(credential::hash_to_hex(&row.hash)),
    }
}

fn export_sa(state: &State, user: &User) -> EstateServiceAccount {
    let info = user.service_account.as_ref().expect("filtered on accounts");
    let tokens = state.tokens_of(user.id).into_iter().map(|row| EstateToken {
        id: Some(row.id),
        name: row.name.clone(),
        secret: None,
        secret_hash: Some(credential::hash_to_hex(&row.hash)),
        created: Some(row.created),
        expires: row.expires,
        last_used: row.last_used,
        revoked: row.revoked,
    });
    EstateServiceAccount {
        id: Some(user.id),
        uid: Some(user.uid.clone()),
        org: info.org,
        name: user.name.clone(),
        login: Some(user.login.clone()),
        role: user.sa_role(),
        disabled: info.disabled,
        external: info.external,
        permissions: user.permissions.clone(),
        created: Some(user.created),
        tokens: tokens.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Admin {
        Admin {
            login: "admin".into(),
            password: "pw".into(),
        }
    }

    fn sample() -> Estate {
        let json = r#"{
          "orgs": [{"id": 2, "name": "team-b"}],
          "users": [{"login": "alice", "password": "a", "orgs": {"2": "Editor"}}],
          "api_keys": [{"org": 2, "name": "ci", "role": "Editor",
                        "expires": "2030-01-01T00:00:00Z", "secret": "raw-secret"}],
          "service_accounts": [{"org": 1, "name": "Deploy Bot", "role": "Admin",
             "tokens": [{"name": "t1",
                         "secret": "glsa_AbCdEfGhIjKlMnOpQrStUvWxYz012345_00000000"}]}]
        }"#;
        serde_json::from_str(json).unwrap()
    }

    // A glsa secret with a wrong checksum is refused, naming the row.
    #[test]
    fn bad_token_secret_is_refused() {
        let err = sample().to_state(Profile::V10_4, &admin()).unwrap_err();
        assert!(matches!(err, EstateError::BadSecret { what: "token", .. }));
    }

    // Export then load reproduces the same state, and exports carry no secret.
    #[test]
    fn export_round_trips_without_secrets() {
        let mut estate = sample();
        estate.service_accounts[0].tokens[0].secret = None;
        let state = estate.to_state(Profile::V10_4, &admin()).unwrap();
        let exported = Estate::from_state(&state);
        let text = serde_json::to_string(&exported).unwrap();
        assert!(!text.contains("raw-secret") && !text.contains("\"secret\""));
        let again = exported.to_state(Profile::V10_4, &admin()).unwrap();
        let mut second = Estate::from_state(&again);
        // The admin's password hash is rewritten from the given admin.
        second.users[0].password_hash = exported.users[0].password_hash.clone();
        assert_eq!(second, exported);
    }

    // The admin is Admin of every estate org; logins derive per profile.
    #[test]
    fn admin_joins_every_org_and_logins_derive() {
        let state = sample_without_token_secret(Profile::V10_4);
        let admin = state.user_by_login("admin").unwrap();
        assert!(admin.server_admin);
        assert_eq!(admin.orgs.get(&2), Some(&Role::Admin));
        assert!(state.user_by_login("sa-1-deploy-bot").is_some());
        let old = sample_without_token_secret(Profile::V9_5);
        assert!(old.user_by_login("sa-deploy-bot").is_some());
    }

    fn sample_without_token_secret(profile: Profile) -> State {
        let mut estate = sample();
        estate.service_accounts[0].tokens[0].secret = None;
        estate.to_state(profile, &admin()).unwrap()
    }
}
