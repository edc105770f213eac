//! The simulated Grafana database: plain data, no HTTP.
//!
//! One key table holds legacy API keys (`service_account_id: None`) and
//! service-account tokens, as in Grafana. Indexes keep every request
//! lookup cheap: (org, name) → key, secret hash → key, login → user,
//! org → service accounts by login, service account → tokens.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::credential::SecretHash;

/// A basic org role, least privileged first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// No basic role (10.2+).
    None,
    /// Read-only.
    Viewer,
    /// Editor.
    Editor,
    /// Org administrator.
    Admin,
}

impl Role {
    /// The role as Grafana spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "None",
            Role::Viewer => "Viewer",
            Role::Editor => "Editor",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();

    // Grafana's RoleType check is an exact comparison.
    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "None" => Ok(Role::None),
            "Viewer" => Ok(Role::Viewer),
            "Editor" => Ok(Role::Editor),
            "Admin" => Ok(Role::Admin),
            _ => Err(()),
        }
    }
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// Org id.
    pub id: i64,
    /// Org name.
    pub name: String,
}

/// The service-account part of a user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    /// The one org the account lives in.
    pub org: i64,
    /// Disabled accounts' tokens are rejected.
    pub disabled: bool,
    /// Managed by Grafana or a plugin (`isExternal`).
    pub external: bool,
}

/// A user or service account (Grafana keeps both in `user`).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// User id (one sequence for users and service accounts).
    pub id: i64,
    /// Short random id, used by UID paths.
    pub uid: String,
    /// Login, unique server-wide (case-insensitively).
    pub login: String,
    /// Email; equals the login for service accounts.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Hash of the password; None for service accounts.
    pub password_hash: Option<SecretHash>,
    /// Grafana server admin.
    pub server_admin: bool,
    /// Org memberships and roles.
    pub orgs: BTreeMap<i64, Role>,
    /// Extra RBAC actions granted beyond the basic role.
    pub permissions: Vec<String>,
    /// Set for service accounts.
    pub service_account: Option<ServiceAccountInfo>,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Last update time.
    pub updated: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("orgs", &self.orgs)
            .field("service_account", &self.service_account)
            .finish_non_exhaustive()
    }
}

impl User {
    /// The role of a service account in its org.
    pub fn sa_role(&self) -> Role {
        let org = self.service_account.as_ref().map(|sa| sa.org);
        org.and_then(|o| self.orgs.get(&o).copied())
            .unwrap_or(Role::None)
    }
}

/// A row of Grafana's `api_key` table: a legacy key or an SA token.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Row id (a migrated key keeps it as its token id).
    pub id: i64,
    /// Org of the row.
    pub org: i64,
    /// Name, unique per org across keys and tokens.
    pub name: String,
    /// Hash of the secret.
    pub hash: SecretHash,
    /// Role of a legacy key; `Viewer` and ignored for tokens.
    pub role: Role,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Expiry; None never expires.
    pub expires: Option<DateTime<Utc>>,
    /// Last authentication with this row.
    pub last_used: Option<DateTime<Utc>>,
    /// Owning service account; None for a plain legacy key.
    pub service_account_id: Option<i64>,
    /// Revoked by secret scanning.
    pub revoked: bool,
}

impl fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRow")
            .field("id", &self.id)
            .field("org", &self.org)
            .field("name", &self.name)
            .field("service_account_id", &self.service_account_id)
            .finish_non_exhaustive()
    }
}

impl KeyRow {
    /// Expired at `now` (Grafana: `expires <= now`).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// Error from a state change that Grafana's database would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A user or service account already has this login.
    #[error("login {login:?} is already taken")]
    LoginTaken {
        /// The colliding login.
        login: String,
    },
    /// A key or token with this name exists in the org.
    #[error("a key or token named {name:?} exists in org {org}")]
    KeyNameTaken {
        /// The org.
        org: i64,
        /// The colliding name.
        name: String,
    },
    /// The key id is already used.
    #[error("key id {0} is already used")]
    KeyIdTaken(i64),
    /// The user id is already used.
    #[error("user id {0} is already used")]
    UserIdTaken(i64),
    /// No org with this id.
    #[error("org {0} does not exist")]
    NoOrg(i64),
    /// No service account with this id.
    #[error("service account {0} does not exist")]
    NoServiceAccount(i64),
    /// No key or token with this id.
    #[error("key {0} does not exist")]
    NoKey(i64),
    /// A time moved by this many seconds leaves the years 0..=9999.
    #[error("moving the time by {seconds} seconds leaves the years 0 to 9999")]
    TimeOutOfRange {
        /// The rejected shift.
        seconds: i64,
    },
}

/// `at` moved by `seconds`; None when that leaves the years 0..=9999.
///
/// Checked throughout, so no input can make the simulator panic.
pub fn shift(at: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
    let moved = at.checked_add_signed(Duration::try_seconds(seconds)?)?;
    (0..=9999).contains(&moved.year()).then_some(moved)
}

/// The whole simulated database plus the simulator's clock.
#[derive(Debug)]
pub struct State {
    pub(crate) orgs: BTreeMap<i64, Org>,
    pub(crate) users: BTreeMap<i64, User>,
    pub(crate) keys: BTreeMap<i64, KeyRow>,
    logins: HashMap<String, i64>,
    uids: HashMap<String, i64>,
    key_names: BTreeMap<(i64, String), i64>,
    key_hashes: HashMap<SecretHash, i64>,
    sa_by_org: HashMap<i64, BTreeMap<String, i64>>,
    sa_tokens: HashMap<i64, BTreeSet<i64>>,
    next_user_id: i64,
    next_key_id: i64,
    next_org_id: i64,
    clock_offset: Duration,
    /// 9.x kv-store `migrationStatus` per org.
    pub(crate) migrated_orgs: BTreeSet<i64>,
    /// 9.x kv-store `hideApiKeys` per org.
    pub(crate) hidden_key_orgs: BTreeSet<i64>,
    /// Failed basic-auth attempts per lower-cased login.
    pub(crate) login_failures: HashMap<String, VecDeque<DateTime<Utc>>>,
    /// Last run of the startup migration under the server lock.
    pub(crate) migration_lock_at: Option<DateTime<Utc>>,
    pub(crate) rng: StdRng,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    /// An empty database with org 1 "Main Org.".
    pub fn new() -> State {
        let mut state = State {
            orgs: BTreeMap::new(),
            users: BTreeMap::new(),
            keys: BTreeMap::new(),
            logins: HashMap::new(),
            uids: HashMap::new(),
            key_names: BTreeMap::new(),
            key_hashes: HashMap::new(),
            sa_by_org: HashMap::new(),
            sa_tokens: HashMap::new(),
            next_user_id: 1,
            next_key_id: 1,
            next_org_id: 1,
            clock_offset: Duration::zero(),
            migrated_orgs: BTreeSet::new(),
            hidden_key_orgs: BTreeSet::new(),
            login_failures: HashMap::new(),
            migration_lock_at: None,
            rng: StdRng::from_entropy(),
        };
        state.insert_org(1, "Main Org.");
        state
    }

    /// The simulator's clock: real UTC now plus the advanced offset,
    /// truncated to seconds like Grafana's unix-second columns.
    pub fn now(&self) -> DateTime<Utc> {
        let real = Utc::now();
        // The offset was checked when set; real time alone cannot overflow.
        let now = real.checked_add_signed(self.clock_offset).unwrap_or(real);
        now.duration_trunc(Duration::seconds(1)).unwrap_or(now)
    }

    /// Moves the clock forward (or back, for a negative duration).
    ///
    /// # Errors
    /// When the clock would leave the years 0..=9999; it stays put.
    pub fn advance_clock(&mut self, by: Duration) -> Result<(), StateError> {
        let out_of_range = || StateError::TimeOutOfRange {
            seconds: by.num_seconds(),
        };
        let offset = self
            .clock_offset
            .checked_add(&by)
            .ok_or_else(out_of_range)?;
        let seconds = offset.num_seconds();
        shift(Utc::now(), seconds).ok_or_else(out_of_range)?;
        self.clock_offset = offset;
        Ok(())
    }

    /// Sets the clock offset of a freshly loaded state to a checked one.
    pub(crate) fn keep_clock_of(&mut self, other: &State) {
        self.clock_offset = other.clock_offset;
    }

    /// The clock offset from real time.
    pub fn clock_offset(&self) -> Duration {
        self.clock_offset
    }

    /// Adds or renames an org.
    pub fn insert_org(&mut self, id: i64, name: &str) {
        let org = Org {
            id,
            name: name.to_string(),
        };
        self.orgs.insert(id, org);
        self.next_org_id = self.next_org_id.max(id + 1);
    }

    /// The org with this id.
    pub fn org(&self, id: i64) -> Option<&Org> {
        self.orgs.get(&id)
    }

    /// All orgs by id.
    pub fn orgs(&self) -> impl Iterator<Item = &Org> {
        self.orgs.values()
    }

    /// The user or service account with this id.
    pub fn user(&self, id: i64) -> Option<&User> {
        self.users.get(&id)
    }

    /// All users and service accounts by id.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The user whose login matches case-insensitively.
    pub fn user_by_login(&self, login: &str) -> Option<&User> {
        let id = self.logins.get(&login.to_lowercase())?;
        self.users.get(id)
    }

    /// The service account with this id in this org.
    pub fn service_account(&self, org: i64, id: i64) -> Option<&User> {
        let user = self.users.get(&id)?;
        let sa = user.service_account.as_ref()?;
        (sa.org == org).then_some(user)
    }

    /// The service account with this UID in this org.
    pub fn service_account_by_uid(&self, org: i64, uid: &str) -> Option<&User> {
        let id = *self.uids.get(uid)?;
        self.service_account(org, id)
    }

    /// Service accounts of an org, ordered by login (= email).
    pub fn service_accounts_in(&self, org: i64) -> impl Iterator<Item = &User> {
        let ids = self
            .sa_by_org
            .get(&org)
            .into_iter()
            .flat_map(|m| m.values());
        ids.filter_map(|id| self.users.get(id))
    }

    /// Is this login (case-insensitively) in use?
    pub fn is_login_taken(&self, login: &str) -> bool {
        self.logins.contains_key(&login.to_lowercase())
    }

    /// The next id of the user sequence.
    pub fn next_user_id(&self) -> i64 {
        self.next_user_id
    }

    /// Inserts a user or service account, keeping every index.
    pub fn insert_user(&mut self, mut user: User) -> Result<i64, StateError> {
        if self.is_login_taken(&user.login) {
            return Err(StateError::LoginTaken { login: user.login });
        }
        if user.id == 0 {
            user.id = self.next_user_id;
        } else if self.users.contains_key(&user.id) {
            return Err(StateError::UserIdTaken(user.id));
        }
        if let Some(sa) = &user.service_account {
            if !self.orgs.contains_key(&sa.org) {
                return Err(StateError::NoOrg(sa.org));
            }
        }
        if user.uid.is_empty() || self.uids.contains_key(&user.uid) {
            user.uid = self.new_uid();
        }
        self.index_user(&user);
        let id = user.id;
        self.next_user_id = self.next_user_id.max(id + 1);
        self.users.insert(id, user);
        Ok(id)
    }

    fn index_user(&mut self, user: &User) {
        self.logins.insert(user.login.to_lowercase(), user.id);
        self.uids.insert(user.uid.clone(), user.id);
        if let Some(sa) = &user.service_account {
            let by_login = self.sa_by_org.entry(sa.org).or_default();
            by_login.insert(user.login.to_lowercase(), user.id);
        }
    }

    fn new_uid(&mut self) -> String {
        use rand::distributions::Alphanumeric;
        use rand::Rng;
        loop {
            let uid: String = (0..14)
                .map(|_| self.rng.sample(Alphanumeric) as char)
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if !self.uids.contains_key(&uid) {
                return uid;
            }
        }
    }

    /// Changes a user in place; login, uid and org must not change.
    pub fn update_user<F: FnOnce(&mut User)>(&mut self, id: i64, change: F) -> bool {
        let now = self.now();
        let Some(user) = self.users.get_mut(&id) else {
            return false;
        };
        change(user);
        user.updated = now;
        true
    }

    /// Changes a user's login, keeping the indexes.
    pub fn set_login(&mut self, id: i64, login: &str) -> Result<(), StateError> {
        let user = self
            .users
            .get(&id)
            .ok_or(StateError::NoServiceAccount(id))?;
        let old = user.login.to_lowercase();
        if old != login.to_lowercase() && self.is_login_taken(login) {
            let login = login.to_string();
            return Err(StateError::LoginTaken { login });
        }
        let org = user.service_account.as_ref().map(|sa| sa.org);
        self.logins.remove(&old);
        self.logins.insert(login.to_lowercase(), id);
        if let Some(by_login) = org.and_then(|o| self.sa_by_org.get_mut(&o)) {
            by_login.remove(&old);
            by_login.insert(login.to_lowercase(), id);
        }
        let user = self.users.get_mut(&id).expect("checked above");
        user.login = login.to_string();
        user.email = login.to_string();
        Ok(())
    }

    /// Deletes a service account and every token it owns.
    pub fn delete_service_account(&mut self, id: i64) -> Result<(), StateError> {
        let user = self.users.get(&id);
        let Some(sa) = user.and_then(|u| u.service_account.clone()) else {
            return Err(StateError::NoServiceAccount(id));
        };
        for key_id in self.sa_tokens.remove(&id).unwrap_or_default() {
            self.remove_key(key_id);
        }
        let user = self.users.remove(&id).expect("checked above");
        self.logins.remove(&user.login.to_lowercase());
        self.uids.remove(&user.uid);
        if let Some(by_login) = self.sa_by_org.get_mut(&sa.org) {
            by_login.remove(&user.login.to_lowercase());
        }
        Ok(())
    }

    /// The key or token row with this id.
    pub fn key(&self, id: i64) -> Option<&KeyRow> {
        self.keys.get(&id)
    }

    /// All key rows by id.
    pub fn keys(&self) -> impl Iterator<Item = &KeyRow> {
        self.keys.values()
    }

    /// The row with this name in this org.
    pub fn key_by_name(&self, org: i64, name: &str) -> Option<&KeyRow> {
        let id = self.key_names.get(&(org, name.to_string()))?;
        self.keys.get(id)
    }

    /// The row whose secret hashes to this value.
    pub fn key_by_hash(&self, hash: &SecretHash) -> Option<&KeyRow> {
        self.keys.get(self.key_hashes.get(hash)?)
    }

    /// Rows of an org, ordered by name.
    pub fn keys_in(&self, org: i64) -> impl Iterator<Item = &KeyRow> {
        let start = (org, String::new());
        let names = self.key_names.range(start..);
        let ids = names.take_while(move |((o, _), _)| *o == org);
        ids.filter_map(|(_, id)| self.keys.get(id))
    }

    /// Plain (unattached) legacy keys of an org, ordered by name.
    pub fn plain_keys_in(&self, org: i64) -> impl Iterator<Item = &KeyRow> {
        self.keys_in(org).filter(|k| k.service_account_id.is_none())
    }

    /// Tokens of a service account, ordered by name.
    pub fn tokens_of(&self, sa_id: i64) -> Vec<&KeyRow> {
        let ids = self.sa_tokens.get(&sa_id).into_iter().flatten();
        let mut rows: Vec<&KeyRow> = ids.filter_map(|id| self.keys.get(id)).collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// Number of tokens a service account owns.
    pub fn token_count(&self, sa_id: i64) -> usize {
        self.sa_tokens.get(&sa_id).map_or(0, BTreeSet::len)
    }

    /// The next id of the key sequence.
    pub fn next_key_id(&self) -> i64 {
        self.next_key_id
    }

    /// Inserts a key row; id 0 takes the next id.
    pub fn insert_key(&mut self, mut row: KeyRow) -> Result<i64, StateError> {
        if self.key_names.contains_key(&(row.org, row.name.clone())) {
            return Err(StateError::KeyNameTaken {
                org: row.org,
                name: row.name,
            });
        }
        if row.id == 0 {
            row.id = self.next_key_id;
        } else if self.keys.contains_key(&row.id) {
            return Err(StateError::KeyIdTaken(row.id));
        }
        if !self.orgs.contains_key(&row.org) {
            return Err(StateError::NoOrg(row.org));
        }
        let id = row.id;
        self.next_key_id = self.next_key_id.max(id + 1);
        self.index_key(&row);
        self.keys.insert(id, row);
        Ok(id)
    }

    fn index_key(&mut self, row: &KeyRow) {
        self.key_names.insert((row.org, row.name.clone()), row.id);
        self.key_hashes.insert(row.hash, row.id);
        if let Some(sa) = row.service_account_id {
            self.sa_tokens.entry(sa).or_default().insert(row.id);
        }
    }

    /// Deletes a key row; returns it when it existed.
    pub fn remove_key(&mut self, id: i64) -> Option<KeyRow> {
        let row = self.keys.remove(&id)?;
        self.key_names.remove(&(row.org, row.name.clone()));
        if self.key_hashes.get(&row.hash) == Some(&id) {
            self.key_hashes.remove(&row.hash);
        }
        if let Some(sa) = row.service_account_id {
            if let Some(set) = self.sa_tokens.get_mut(&sa) {
                set.remove(&id);
            }
        }
        Some(row)
    }

    /// Attaches a key to a service account (or detaches it with None).
    pub fn set_key_owner(&mut self, id: i64, owner: Option<i64>) -> Result<(), StateError> {
        let row = self.keys.get_mut(&id).ok_or(StateError::NoKey(id))?;
        if let Some(old) = row.service_account_id {
            if let Some(set) = self.sa_tokens.get_mut(&old) {
                set.remove(&id);
            }
        }
        row.service_account_id = owner;
        if let Some(sa) = owner {
            self.sa_tokens.entry(sa).or_default().insert(id);
        }
        Ok(())
    }

    /// Changes a key row in place; id, org, name and hash must not change.
    pub fn update_key<F: FnOnce(&mut KeyRow)>(&mut self, id: i64, change: F) -> bool {
        match self.keys.get_mut(&id) {
            Some(row) => {
                change(row);
                true
            }
            None => false,
        }
    }
}

/// Formats a timestamp as Grafana writes it (RFC3339, seconds).
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sa(org: i64, login: &str) -> User {
        User {
            id: 0,
            uid: String::new(),
            login: login.into(),
            email: login.into(),
            name: login.into(),
            password_hash: None,
            server_admin: false,
            orgs: BTreeMap::from([(org, Role::Viewer)]),
            permissions: vec![],
            service_account: Some(ServiceAccountInfo {
                org,
                disabled: false,
                external: false,
            }),
            created: Utc::now(),
            updated: Utc::now(),
        }
    }

    fn key(org: i64, name: &str, owner: Option<i64>) -> KeyRow {
        KeyRow {
            id: 0,
            org,
            name: name.into(),
            hash: crate::credential::hash_secret(name),
            role: Role::Viewer,
            created: Utc::now(),
            expires: None,
            last_used: None,
            service_account_id: owner,
            revoked: false,
        }
    }

    // Key names are unique per org across keys and tokens.
    #[test]
    fn key_names_are_unique_per_org() {
        let mut state = State::new();
        state.insert_org(2, "two");
        let sa_id = state.insert_user(sa(1, "sa-1-x")).unwrap();
        state.insert_key(key(1, "ci", None)).unwrap();
        let err = state.insert_key(key(1, "ci", Some(sa_id))).unwrap_err();
        assert!(matches!(err, StateError::KeyNameTaken { org: 1, .. }));
        state.insert_key(key(2, "ci", None)).unwrap();
        assert_eq!(state.plain_keys_in(1).count(), 1);
    }

    // Deleting a service account deletes its tokens and frees its login.
    #[test]
    fn deleting_a_service_account_deletes_its_tokens() {
        let mut state = State::new();
        let sa_id = state.insert_user(sa(1, "sa-1-x")).unwrap();
        let token = state.insert_key(key(1, "t", Some(sa_id))).unwrap();
        state.insert_key(key(1, "plain", None)).unwrap();
        assert_eq!(state.token_count(sa_id), 1);
        state.delete_service_account(sa_id).unwrap();
        assert!(state.key(token).is_none());
        assert!(state.key_by_name(1, "t").is_none());
        assert!(!state.is_login_taken("SA-1-X"));
        assert_eq!(state.keys().count(), 1);
    }

    // Logins collide case-insensitively; ids come from one sequence.
    #[test]
    fn logins_collide_case_insensitively() {
        let mut state = State::new();
        let a = state.insert_user(sa(1, "sa-1-ci")).unwrap();
        let err = state.insert_user(sa(1, "SA-1-CI")).unwrap_err();
        assert!(matches!(err, StateError::LoginTaken { .. }));
        let b = state.insert_user(sa(1, "sa-1-cd")).unwrap();
        assert_eq!(b, a + 1);
    }

    // Attaching a key moves it from the plain keys to the account's tokens.
    #[test]
    fn attaching_a_key_moves_it_to_tokens() {
        let mut state = State::new();
        let sa_id = state.insert_user(sa(1, "sa-1-x")).unwrap();
        let id = state.insert_key(key(1, "k", None)).unwrap();
        state.set_key_owner(id, Some(sa_id)).unwrap();
        assert_eq!(state.plain_keys_in(1).count(), 0);
        assert_eq!(state.tokens_of(sa_id)[0].id, id);
    }

    // The clock moves by the advanced offset.
    #[test]
    fn clock_advances() {
        let mut state = State::new();
        let before = state.now();
        state.advance_clock(Duration::days(2)).unwrap();
        let gap = state.now() - before;
        assert!(gap >= Duration::days(2) && gap < Duration::days(2) + Duration::seconds(5));
    }
}
