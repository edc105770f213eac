//! The plan's data: policy in, what the ledger knows, and the plan out.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;

use crate::inventory::SourceCredential;
use crate::role::Role;

/// A `[[use_case]]` rule of the config.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Use-case name, which is the service account's name.
    pub name: String,
    /// Matches original key names.
    pub pattern: Regex,
    /// Org ids or names the rule applies to; empty means all.
    pub orgs: Vec<String>,
    /// Forced role, if any.
    pub role: Option<Role>,
}

/// What to do with expired credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiredPolicy {
    /// Record as skipped, leave untouched.
    Skip,
    /// Delete the dead legacy key.
    Delete,
}

/// What to do when a credential outlives the server's token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifetimePolicy {
    /// Shorten to the limit and flag it.
    Clamp,
    /// Skip the credential.
    Skip,
}

/// The migration policy, from the config.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Use-case rules, first match wins.
    pub rules: Vec<Rule>,
    /// Keep one secret per use case.
    pub keep_secrets: bool,
    /// Expired credentials.
    pub expired: ExpiredPolicy,
    /// Over-long lifetimes.
    pub lifetime: LifetimePolicy,
    /// The server's token lifetime limit, when it has one.
    pub max_token_lifetime: Option<Duration>,
    /// Prefix of generated token names.
    pub token_prefix: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: Vec::new(),
            keep_secrets: true,
            expired: ExpiredPolicy::Skip,
            lifetime: LifetimePolicy::Clamp,
            max_token_lifetime: None,
            token_prefix: "ks".into(),
        }
    }
}

/// A service account the ledger says keyshift owns.
#[derive(Debug, Clone)]
pub struct OwnedAccount {
    /// Org id.
    pub org: i64,
    /// Account id.
    pub id: i64,
    /// Use case it serves.
    pub use_case: String,
    /// Name keyshift last gave it.
    pub name: String,
    /// Role keyshift last gave it.
    pub role: Role,
}

/// A token the ledger says keyshift created.
#[derive(Debug, Clone)]
pub struct OwnedToken {
    /// Org id.
    pub org: i64,
    /// Account holding it.
    pub account: i64,
    /// Token id.
    pub id: i64,
    /// Token name.
    pub name: String,
    /// The credential it replaces.
    pub key_id: i64,
    /// Its secret reached the sink.
    pub delivered: bool,
}

/// How far the ledger says a credential got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not done yet (pending, conflict, blocked, auto-migrated).
    Open,
    /// Migrated: kept or reissued, or later revoked.
    Migrated,
    /// Skipped for good (expired, deleted, reverted).
    Closed,
    /// Failed earlier in this run: not tried again until the next run.
    Deferred,
}

/// What the ledger knows, reduced to what planning needs.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Owned accounts.
    pub accounts: Vec<OwnedAccount>,
    /// Owned tokens.
    pub tokens: Vec<OwnedToken>,
    /// Progress per (org, key id).
    pub credentials: HashMap<(i64, i64), Progress>,
    /// Migrated credentials that are no longer sources (their row now
    /// lives in an owned account), shown in plans as done.
    pub settled: Vec<SettledCredential>,
}

/// A migrated credential, for display.
#[derive(Debug, Clone)]
pub struct SettledCredential {
    /// Org id.
    pub org: i64,
    /// Original key id.
    pub key_id: i64,
    /// Original key name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its use case.
    pub use_case: String,
    /// Where it stands, e.g. "kept".
    pub state: String,
}

impl Known {
    pub(super) fn account_for(&self, org: i64, use_case: &str) -> Option<&OwnedAccount> {
        self.accounts
            .iter()
            .find(|a| a.org == org && a.use_case == use_case)
    }

    pub(super) fn token_for(&self, org: i64, key_id: i64) -> Option<&OwnedToken> {
        self.tokens
            .iter()
            .find(|t| t.org == org && t.key_id == key_id)
    }

    pub(super) fn progress(&self, org: i64, key_id: i64) -> Progress {
        self.credentials
            .get(&(org, key_id))
            .copied()
            .unwrap_or(Progress::Open)
    }
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Per org.
    pub orgs: Vec<OrgPlan>,
}

/// The plan for one org.
#[derive(Debug, Clone, Serialize)]
pub struct OrgPlan {
    /// Org id.
    pub org_id: i64,
    /// Org name.
    pub org_name: String,
    /// Per use case, sorted by name.
    pub use_cases: Vec<UseCasePlan>,
    /// Things an operator should know about the org.
    pub notes: Vec<String>,
    /// The source credentials the plan was made from.
    #[serde(skip)]
    pub sources: Vec<SourceCredential>,
}

/// The plan for one use case.
#[derive(Debug, Clone, Serialize)]
pub struct UseCasePlan {
    /// Use-case name = service-account name.
    pub name: String,
    /// The role the account gets.
    pub role: Option<Role>,
    /// Where the account comes from.
    pub target: Target,
    /// Changes to make, in order.
    pub steps: Vec<Step>,
    /// Each member and what happens to it.
    pub members: Vec<Member>,
    /// Why nothing can be done, when something blocks the whole use case.
    pub conflict: Option<String>,
}

/// Where a use case's service account comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// keyshift already owns it.
    Owned {
        /// Account id.
        id: i64,
    },
    /// Created by keyshift.
    New,
    /// Made by Grafana's per-key migration of this key, then adopted.
    MigrateKey {
        /// The key kept.
        key_id: i64,
    },
    /// An existing `sa-autogen-*` account, adopted as it is.
    Adopt {
        /// Account id.
        id: i64,
    },
    /// None: the use case is blocked or has nothing to migrate.
    Unresolved,
}

/// One change to Grafana.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Create the use case's account.
    CreateServiceAccount {
        /// Name.
        name: String,
        /// Role.
        role: Role,
    },
    /// Move a key into a new `sa-autogen-*` account, keeping its secret.
    MigrateKey {
        /// Key id.
        key_id: i64,
        /// Key name.
        key_name: String,
    },
    /// Take over an `sa-autogen-*` account.
    AdoptServiceAccount {
        /// Account id.
        id: i64,
    },
    /// Rename the account to the use-case name.
    Rename {
        /// New name.
        to: String,
    },
    /// Set the account's role.
    SetRole {
        /// New role.
        role: Role,
    },
    /// Issue a replacement token for a member.
    CreateToken {
        /// The member replaced.
        key_id: i64,
        /// Token name.
        name: String,
        /// 0 for no expiry.
        seconds_to_live: i64,
        /// Expiry of the replaced credential.
        expires: Option<DateTime<Utc>>,
    },
    /// Delete a token whose secret never reached the sink.
    DeleteUndelivered {
        /// Token id.
        token_id: i64,
    },
    /// Move a replaced legacy key into its own `sa-autogen-*` account, out
    /// of the capped key list; it stays valid until cut-over.
    ParkKey {
        /// Key id.
        key_id: i64,
        /// Key name.
        key_name: String,
    },
    /// Delete an expired legacy key (policy `expired = "delete"`).
    DeleteExpiredKey {
        /// Key id.
        key_id: i64,
    },
}

impl Step {
    /// The member this step is for, if any.
    pub fn key_id(&self) -> Option<i64> {
        match self {
            Step::MigrateKey { key_id, .. }
            | Step::CreateToken { key_id, .. }
            | Step::ParkKey { key_id, .. }
            | Step::DeleteExpiredKey { key_id } => Some(*key_id),
            _ => None,
        }
    }
}

/// A member credential of a use case.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// Original key id.
    pub key_id: i64,
    /// Original key name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Legacy key, or autogen token.
    pub source: &'static str,
    /// Expiry.
    pub expires: Option<DateTime<Utc>>,
    /// Last use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// What happens to it.
    pub action: Action,
    /// Flags an operator should see (lifetime shortened, role changed).
    pub flags: Vec<String>,
}

/// What happens to one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "detail", rename_all = "kebab-case")]
pub enum Action {
    /// Its secret stays valid, in the use case's account.
    Keep,
    /// A new token replaces it; it stays valid until cut-over.
    Reissue,
    /// Nothing to do: already migrated.
    Unchanged(String),
    /// Left alone, with the reason.
    Skip(String),
    /// Cannot be migrated as configured, with the reason.
    Conflict(String),
}

impl Plan {
    /// True when migrate would change something.
    pub fn has_changes(&self) -> bool {
        self.use_cases().any(|u| !u.steps.is_empty())
    }

    /// True when something needs an operator's decision.
    pub fn has_conflicts(&self) -> bool {
        self.use_cases().any(|u| {
            u.conflict.is_some()
                || u.members
                    .iter()
                    .any(|m| matches!(m.action, Action::Conflict(_)))
        })
    }

    /// Every use case of every org.
    pub fn use_cases(&self) -> impl Iterator<Item = &UseCasePlan> {
        self.orgs.iter().flat_map(|o| o.use_cases.iter())
    }
}
