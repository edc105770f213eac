//! Planning: what migrate would do, as a pure function of the inventory,
//! what the ledger knows, and the policy from the config.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;

use crate::inventory::{
    AccountKind, Inventory, OrgInventory, Source, SourceCredential, AUTOGEN_PREFIX,
};
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
    fn account_for(&self, org: i64, use_case: &str) -> Option<&OwnedAccount> {
        self.accounts
            .iter()
            .find(|a| a.org == org && a.use_case == use_case)
    }

    fn token_for(&self, org: i64, key_id: i64) -> Option<&OwnedToken> {
        self.tokens
            .iter()
            .find(|t| t.org == org && t.key_id == key_id)
    }

    fn progress(&self, org: i64, key_id: i64) -> Progress {
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

/// Makes the plan.
pub fn plan(inventory: &Inventory, known: &Known, policy: &Policy, now: DateTime<Utc>) -> Plan {
    let logins = inventory.logins();
    let claimed = Default::default();
    let orgs = inventory
        .orgs
        .iter()
        .map(|org| plan_org(inventory, org, known, policy, now, &logins, &claimed));
    Plan {
        at: now,
        orgs: orgs.collect(),
    }
}

fn plan_org(
    inventory: &Inventory,
    org: &OrgInventory,
    known: &Known,
    policy: &Policy,
    now: DateTime<Utc>,
    logins: &HashMap<String, (i64, i64)>,
    claimed: &std::cell::RefCell<std::collections::HashSet<String>>,
) -> OrgPlan {
    let sources = sources(org, known);
    let mut groups: BTreeMap<String, (Option<Role>, Vec<SourceCredential>)> = BTreeMap::new();
    for credential in sources.iter().cloned() {
        let (name, role) = use_case_of(policy, org, &credential.name);
        groups
            .entry(name)
            .or_insert((role, Vec::new()))
            .1
            .push(credential);
    }
    let context = OrgContext {
        inventory,
        org,
        known,
        policy,
        now,
        logins,
        claimed,
    };
    let source_ids: std::collections::HashSet<i64> = sources.iter().map(|s| s.key_id).collect();
    let settled: Vec<&SettledCredential> = known
        .settled
        .iter()
        .filter(|s| s.org == org.org.id && !source_ids.contains(&s.key_id))
        .collect();
    for credential in &settled {
        groups
            .entry(credential.use_case.clone())
            .or_insert((None, Vec::new()));
    }
    let use_cases = groups.into_iter().map(|(name, (role, members))| {
        let mut plan = context.plan_use_case(&name, role, members);
        let done = settled.iter().filter(|s| s.use_case == name);
        plan.members.extend(done.map(|s| settled_member(s)));
        plan
    });
    OrgPlan {
        org_id: org.org.id,
        org_name: org.org.name.clone(),
        use_cases: use_cases.collect(),
        notes: org_notes(org),
        sources,
    }
}

/// The org's source credentials, plus the rows of owned accounts that
/// the ledger knows as credentials: a run stopped after renaming an
/// adopted account leaves a kept credential that is no longer in an
/// `sa-autogen-*` account, and it must still be settled.
pub fn sources(org: &OrgInventory, known: &Known) -> Vec<SourceCredential> {
    let mut sources = org.sources();
    let id = org.org.id;
    let owned = known.accounts.iter().filter(|a| a.org == id);
    for account in owned.filter_map(|a| org.account(a.id)) {
        if account.kind == AccountKind::Autogen {
            continue;
        }
        let rows = account.tokens.items.iter();
        let rows = rows.filter(|t| known.credentials.contains_key(&(id, t.id)));
        sources.extend(rows.map(|t| SourceCredential {
            key_id: t.id,
            name: t.name.clone(),
            role: account.account.role,
            expires: t.expiration,
            last_used_at: t.last_used_at,
            source: Source::AutogenToken {
                service_account: account.account.id,
            },
        }));
    }
    sources
}

fn settled_member(credential: &SettledCredential) -> Member {
    Member {
        key_id: credential.key_id,
        name: credential.name.clone(),
        role: credential.role,
        source: "migrated",
        expires: None,
        last_used_at: None,
        action: Action::Unchanged(credential.state.clone()),
        flags: Vec::new(),
    }
}

fn org_notes(org: &OrgInventory) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(reason) = &org.keys_unreadable {
        notes.push(format!("API keys could not be listed: {reason}"));
    }
    if org.keys_maybe_truncated {
        notes.push(format!(
            "the key list holds {} keys, Grafana's cap: more may be hidden; migrate re-lists \
             until the list is short",
            org.keys.len()
        ));
    }
    let managed = org
        .accounts
        .iter()
        .filter(|a| a.kind == AccountKind::Managed)
        .count();
    if managed > 0 {
        notes.push(format!(
            "{managed} service account(s) managed by Grafana or plugins left alone"
        ));
    }
    notes
}

/// The use case a credential belongs to: the first matching rule, else
/// its own, named after the key.
pub fn use_case_of(policy: &Policy, org: &OrgInventory, key_name: &str) -> (String, Option<Role>) {
    let applies = |rule: &Rule| {
        rule.orgs.is_empty()
            || rule
                .orgs
                .iter()
                .any(|o| o == &org.org.name || o.parse() == Ok(org.org.id))
    };
    let rule = policy
        .rules
        .iter()
        .find(|r| applies(r) && r.pattern.is_match(key_name));
    match rule {
        Some(rule) => (rule.name.clone(), rule.role),
        None => (key_name.to_string(), None),
    }
}

/// The name keyshift gives the token replacing `key_id`.
pub fn token_name(prefix: &str, use_case: &str, key_id: i64) -> String {
    let slug: String = use_case.to_lowercase().replace(' ', "-");
    format!("{prefix}-{slug}-{key_id}")
}

struct OrgContext<'a> {
    inventory: &'a Inventory,
    org: &'a OrgInventory,
    known: &'a Known,
    policy: &'a Policy,
    now: DateTime<Utc>,
    /// Every login on the server (lowercased), read once per plan.
    logins: &'a HashMap<String, (i64, i64)>,
    /// Logins this plan's earlier use cases will create, in every org:
    /// before 10.4.1 logins are unique across the server.
    claimed: &'a std::cell::RefCell<std::collections::HashSet<String>>,
}

impl OrgContext<'_> {
    fn org_id(&self) -> i64 {
        self.org.org.id
    }

    fn plan_use_case(
        &self,
        name: &str,
        forced: Option<Role>,
        sources: Vec<SourceCredential>,
    ) -> UseCasePlan {
        let owned = self.known.account_for(self.org_id(), name);
        let mut members: Vec<Member> = sources.iter().map(|s| self.member(s, forced)).collect();
        // A row already inside the use case's account was kept by an
        // earlier run, possibly one that stopped before recording it.
        for (source, member) in sources.iter().zip(members.iter_mut()) {
            if let Source::AutogenToken { service_account } = source.source {
                if owned.is_some_and(|o| o.id == service_account) {
                    member.action =
                        Action::Unchanged(format!("kept in service account {service_account}"));
                    member.flags.clear();
                } else if matches!(member.action, Action::Unchanged(_)) {
                    // Replaced earlier; Grafana has since converted its row
                    // (11.6+ at startup): the old secret lives on there.
                    let holder = self.org.account(service_account);
                    let holder = holder.map_or("?", |a| a.account.name.as_str());
                    member.action = Action::Unchanged(format!(
                        "replaced; its old secret is now held by {holder} (service account \
                         {service_account}) until cut-over"
                    ));
                }
            }
        }
        let mut plan = UseCasePlan {
            name: name.to_string(),
            role: None,
            target: Target::Unresolved,
            steps: Vec::new(),
            members: Vec::new(),
            conflict: None,
        };
        if let (Some(owned), None) = (owned, forced) {
            conflict_other_roles(owned, &mut members);
        }
        let open: Vec<&SourceCredential> = sources
            .iter()
            .zip(&members)
            .filter(|(_, m)| m.action == Action::Reissue)
            .map(|(s, _)| s)
            .collect();
        if open.is_empty() && owned.is_none_or(|o| o.name == name) {
            if let Some(owned) = owned {
                plan.target = Target::Owned { id: owned.id };
                plan.role = Some(owned.role);
            }
            for (source, member) in sources.iter().zip(&members) {
                self.idle_member_steps(source, member, &mut plan.steps);
            }
            plan.members = members;
            return plan;
        }
        match self.resolve(name, forced, &open, owned) {
            Ok((role, target)) => {
                plan.role = Some(role);
                plan.steps = self.steps(name, role, &target, owned, &sources, &mut members);
                plan.target = target;
            }
            Err(reason) => {
                for member in members.iter_mut().filter(|m| m.action == Action::Reissue) {
                    member.action = Action::Conflict(reason.clone());
                }
                plan.conflict = Some(reason);
            }
        }
        plan.members = members;
        plan
    }

    // A member's action before the use case is resolved: Reissue means
    // "open", to be refined into Keep once a keeper is chosen.
    fn member(&self, source: &SourceCredential, forced: Option<Role>) -> Member {
        let mut member = Member {
            key_id: source.key_id,
            name: source.name.clone(),
            role: source.role,
            source: match source.source {
                Source::LegacyKey => "legacy-key",
                Source::AutogenToken { .. } => "autogen-token",
            },
            expires: source.expires,
            last_used_at: source.last_used_at,
            action: Action::Reissue,
            flags: Vec::new(),
        };
        member.action = match self.known.progress(self.org_id(), source.key_id) {
            Progress::Migrated => Action::Unchanged("migrated; replaced, awaiting cut-over".into()),
            Progress::Closed => Action::Unchanged("closed".into()),
            Progress::Deferred => {
                Action::Unchanged("failed in this run; tried again next run".into())
            }
            Progress::Open if source.is_expired(self.now) => Action::Skip(format!(
                "expired at {}; an expired credential is not revived",
                source.expires.map(|e| e.to_rfc3339()).unwrap_or_default()
            )),
            Progress::Open => Action::Reissue,
        };
        let open = member.action == Action::Reissue;
        if let Some(role) = forced.filter(|r| open && *r != source.role) {
            member
                .flags
                .push(format!("role changes from {} to {role}", source.role));
        }
        member
    }

    fn resolve(
        &self,
        name: &str,
        forced: Option<Role>,
        open: &[&SourceCredential],
        owned: Option<&OwnedAccount>,
    ) -> Result<(Role, Target), String> {
        let role = self.role(forced, open, owned)?;
        if role == Role::None && !self.inventory.capabilities.has_role_none {
            return Err("role None needs Grafana 10.2 or newer".into());
        }
        if let Some(owned) = owned {
            return self.check_owned(owned).map(|t| (role, t));
        }
        let target = self.keeper(open).unwrap_or(Target::New);
        self.check_name(name, &target)?;
        Ok((role, target))
    }

    fn role(
        &self,
        forced: Option<Role>,
        open: &[&SourceCredential],
        owned: Option<&OwnedAccount>,
    ) -> Result<Role, String> {
        if let Some(role) = forced.or(owned.map(|o| o.role)) {
            return Ok(role);
        }
        let mut roles: BTreeMap<Role, Vec<&str>> = BTreeMap::new();
        for source in open {
            roles.entry(source.role).or_default().push(&source.name);
        }
        match roles.len() {
            1 => Ok(*roles.keys().next().expect("one role")),
            _ => Err(format!(
                "members have different roles ({}); name a role in the use-case rule",
                roles
                    .iter()
                    .map(|(r, names)| role_group(*r, names))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    fn check_owned(&self, owned: &OwnedAccount) -> Result<Target, String> {
        match self.org.account(owned.id) {
            Some(_) => Ok(Target::Owned { id: owned.id }),
            None => Err(format!(
                "service account {} recorded in the ledger is gone; run reconcile",
                owned.id
            )),
        }
    }

    // The member most recently used keeps its secret.
    fn keeper(&self, open: &[&SourceCredential]) -> Option<Target> {
        if !self.policy.keep_secrets {
            return None;
        }
        let keeper = open
            .iter()
            .max_by_key(|s| (s.last_used_at, std::cmp::Reverse(s.key_id)))?;
        match keeper.source {
            Source::LegacyKey => self.can_migrate(keeper).then_some(Target::MigrateKey {
                key_id: keeper.key_id,
            }),
            Source::AutogenToken { service_account } => {
                let account = self.org.account(service_account)?;
                let alone = account.tokens.items.len() == 1 && !account.tokens.maybe_truncated;
                alone.then_some(Target::Adopt {
                    id: service_account,
                })
            }
        }
    }

    // Per-key migration fails when the autogen login is taken (before 11.4
    // Grafana does not retry with a suffix).
    fn can_migrate(&self, key: &SourceCredential) -> bool {
        let caps = &self.inventory.capabilities;
        if !caps.has_key_migration {
            return false;
        }
        // From 11.6 Grafana retries a taken login with -001 ... -010.
        if caps.converts_keys_at_startup {
            return true;
        }
        let login = caps.autogen_login(self.org_id(), &key.name);
        self.claim(&login)
    }

    /// Claims a login this plan will create; false when it is taken on the
    /// server or by an earlier use case of this plan (compared without case).
    fn claim(&self, login: &str) -> bool {
        let login = login.to_lowercase();
        if self.logins.contains_key(&login) {
            return false;
        }
        self.claimed.borrow_mut().insert(login)
    }

    fn check_name(&self, name: &str, target: &Target) -> Result<(), String> {
        if name.starts_with("extsvc-") || name.starts_with(AUTOGEN_PREFIX) {
            return Err(format!(
                "use-case name {name:?} uses a prefix Grafana reserves"
            ));
        }
        let adopted = match target {
            Target::Adopt { id } => Some(*id),
            _ => None,
        };
        // Names that differ only in case would be told apart by nobody, and
        // from 10.4 they derive the same login.
        let same = |other: &str| other.to_lowercase() == name.to_lowercase();
        let taken = self
            .org
            .accounts
            .iter()
            .find(|a| same(&a.account.name) && Some(a.account.id) != adopted);
        if let Some(taken) = taken {
            return Err(format!(
                "name-taken: service account {} is already named {:?} and is not keyshift's",
                taken.account.id, taken.account.name
            ));
        }
        if *target == Target::New {
            let login = self
                .inventory
                .capabilities
                .service_account_login(self.org_id(), name);
            if let Some((org, id)) = self.logins.get(&login.to_lowercase()) {
                return Err(format!(
                    "login-taken: service account {id} in org {org} already has login {login:?}"
                ));
            }
            if !self.claim(&login) {
                return Err(format!(
                    "login-taken: another use case of this plan gets login {login:?}"
                ));
            }
        }
        Ok(())
    }

    fn steps(
        &self,
        name: &str,
        role: Role,
        target: &Target,
        owned: Option<&OwnedAccount>,
        sources: &[SourceCredential],
        members: &mut [Member],
    ) -> Vec<Step> {
        let mut steps = target_steps(name, role, target, owned, sources);
        let target_id = match target {
            Target::Owned { id } | Target::Adopt { id } => Some(*id),
            _ => None,
        };
        let names = self.org.credential_names();
        for (source, member) in sources.iter().zip(members.iter_mut()) {
            if member.action != Action::Reissue {
                self.idle_member_steps(source, member, &mut steps);
                continue;
            }
            let kept = match target {
                Target::MigrateKey { key_id } => *key_id == source.key_id,
                _ => matches!(source.source, Source::AutogenToken { service_account }
                    if Some(service_account) == target_id),
            };
            if kept {
                member.action = Action::Keep;
                continue;
            }
            self.reissue(name, target_id, source, member, &names, &mut steps);
        }
        steps
    }

    // Steps for a member that is not migrated in this plan: deleting it
    // when expired (by policy), or parking it when it hides other keys.
    fn idle_member_steps(&self, source: &SourceCredential, member: &Member, steps: &mut Vec<Step>) {
        let legacy = source.source == Source::LegacyKey;
        let deletable = self.policy.expired == ExpiredPolicy::Delete
            && legacy
            && matches!(member.action, Action::Skip(_));
        if deletable {
            steps.push(Step::DeleteExpiredKey {
                key_id: source.key_id,
            });
        }
        // A replaced key stays in Grafana's 100-key list until cut-over; when
        // the list is full, such keys hide the rest. Grafana's per-key
        // migration moves one out of the list with its secret intact, as
        // Grafana 11.6 does to every key at startup.
        // Skipped keys are left untouched, as the policy says, and keys in
        // conflict wait for a decision: only replaced keys move.
        let settled = self.known.progress(self.org_id(), source.key_id) == Progress::Migrated;
        let parkable = legacy
            && self.org.keys_maybe_truncated
            && self.inventory.capabilities.has_key_migration
            && settled;
        if parkable {
            steps.push(Step::ParkKey {
                key_id: source.key_id,
                key_name: source.name.clone(),
            });
        }
    }

    fn reissue(
        &self,
        use_case: &str,
        target: Option<i64>,
        source: &SourceCredential,
        member: &mut Member,
        names: &std::collections::BTreeSet<&str>,
        steps: &mut Vec<Step>,
    ) {
        let name = token_name(&self.policy.token_prefix, use_case, source.key_id);
        let existing = target
            .and_then(|id| self.org.account(id))
            .and_then(|a| a.tokens.items.iter().find(|t| t.name == name));
        let owned = self.known.token_for(self.org_id(), source.key_id);
        if let Some(token) = existing {
            if owned.is_some_and(|o| o.id == token.id && o.delivered) {
                member.action = Action::Unchanged("replacement token delivered".into());
                return;
            }
            // Made by an earlier run whose delivery never completed.
            steps.push(Step::DeleteUndelivered { token_id: token.id });
        } else if names.contains(name.as_str()) {
            member.action = Action::Conflict(format!("token name {name:?} is taken in the org"));
            return;
        }
        match self.lifetime(source, member) {
            Some(seconds) => steps.push(Step::CreateToken {
                key_id: source.key_id,
                name,
                seconds_to_live: seconds,
                expires: source.expires,
            }),
            None => {
                member.action =
                    Action::Skip("lifetime over the server's token limit (policy: skip)".into())
            }
        }
    }

    // The token's lifetime comes from the credential's expiry timestamp,
    // never from secondsUntilExpiration (0 beyond seven days).
    fn lifetime(&self, source: &SourceCredential, member: &mut Member) -> Option<i64> {
        // Rounded up: a token must not expire before what it replaces.
        let wanted = source.expires.map(|e| {
            ((e - self.now).num_milliseconds() + 999)
                .div_euclid(1000)
                .max(1)
        });
        let Some(limit) = self.policy.max_token_lifetime.map(|d| d.as_secs() as i64) else {
            return Some(wanted.unwrap_or(0));
        };
        if wanted.is_some_and(|w| w <= limit) {
            return wanted;
        }
        if self.policy.lifetime == LifetimePolicy::Skip {
            return None;
        }
        member.flags.push(format!(
            "lifetime-shortened to {}s by the server limit; rotation required",
            limit
        ));
        Some(limit)
    }
}

// "Editor: a, b" for a few names, "Viewer: 38, e.g. a, b, c" for many: a
// conflict reason repeated on every member must stay short.
fn role_group(role: Role, names: &[&str]) -> String {
    if names.len() <= 3 {
        return format!("{role}: {}", names.join(", "));
    }
    format!("{role}: {}, e.g. {}", names.len(), names[..3].join(", "))
}

// A new member of a use case that already has its account must share the
// account's role: reissuing it there would silently change its privilege.
fn conflict_other_roles(owned: &OwnedAccount, members: &mut [Member]) {
    let open = members.iter_mut().filter(|m| m.action == Action::Reissue);
    for member in open.filter(|m| m.role != owned.role) {
        member.action = Action::Conflict(format!(
            "role {} differs from the role {} of the use case's service account {}; name a \
             role in the use-case rule to change a credential's privilege",
            member.role, owned.role, owned.id
        ));
    }
}

fn target_steps(
    name: &str,
    role: Role,
    target: &Target,
    owned: Option<&OwnedAccount>,
    sources: &[SourceCredential],
) -> Vec<Step> {
    let mut steps = Vec::new();
    let initial_role = match target {
        Target::New => {
            steps.push(Step::CreateServiceAccount {
                name: name.into(),
                role,
            });
            return steps;
        }
        Target::MigrateKey { key_id } => {
            let key = sources
                .iter()
                .find(|s| s.key_id == *key_id)
                .expect("keeper is a member");
            steps.push(Step::MigrateKey {
                key_id: *key_id,
                key_name: key.name.clone(),
            });
            key.role
        }
        Target::Adopt { id } => {
            steps.push(Step::AdoptServiceAccount { id: *id });
            let kept = sources.iter().find(|s| {
                s.source
                    == Source::AutogenToken {
                        service_account: *id,
                    }
            });
            kept.map_or(role, |s| s.role)
        }
        Target::Owned { .. } => owned.map_or(role, |o| o.role),
        Target::Unresolved => return steps,
    };
    if owned.is_none_or(|o| o.name != name) {
        steps.push(Step::Rename { to: name.into() });
    }
    if initial_role != role {
        steps.push(Step::SetRole { role });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grafana::wire::{ApiKey, Org, ServiceAccount, Token};
    use crate::grafana::{Capabilities, Listing, Version};
    use crate::inventory::{AccountInventory, OrgScope};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn key(id: i64, name: &str, role: Role, used_days_ago: Option<i64>) -> ApiKey {
        ApiKey {
            id,
            name: name.into(),
            role,
            expiration: None,
            last_used_at: used_days_ago.map(|d| now() - chrono::Duration::days(d)),
        }
    }

    fn account(id: i64, name: &str, login: &str, tokens: Vec<Token>) -> AccountInventory {
        let account: ServiceAccount = serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "login": login, "role": "Editor", "orgId": 1
        }))
        .unwrap();
        let kind = crate::inventory::account_kind(&account);
        AccountInventory {
            account,
            kind,
            tokens: Listing {
                items: tokens,
                maybe_truncated: false,
            },
        }
    }

    fn token(id: i64, name: &str) -> Token {
        serde_json::from_value(serde_json::json!({"id": id, "name": name})).unwrap()
    }

    fn inventory(version: &str, keys: Vec<ApiKey>, accounts: Vec<AccountInventory>) -> Inventory {
        let org = OrgInventory {
            org: Org {
                id: 1,
                name: "Main Org.".into(),
            },
            keys,
            keys_maybe_truncated: false,
            keys_unreadable: None,
            accounts,
        };
        Inventory {
            url: "http://127.0.0.1:3000/".into(),
            capabilities: Capabilities::of(version.parse::<Version>().unwrap()),
            scope: OrgScope::AllOrgs,
            orgs: vec![org],
            unmatched: Vec::new(),
        }
    }

    fn rule(name: &str, pattern: &str, role: Option<Role>) -> Rule {
        Rule {
            name: name.into(),
            pattern: Regex::new(pattern).unwrap(),
            orgs: vec![],
            role,
        }
    }

    fn policy(rules: Vec<Rule>) -> Policy {
        Policy {
            rules,
            ..Policy::default()
        }
    }

    fn only_use_case(plan: &Plan) -> &UseCasePlan {
        assert_eq!(plan.use_cases().count(), 1, "{plan:#?}");
        plan.use_cases().next().unwrap()
    }

    // The most recently used key keeps its secret through per-key migration;
    // the others get tokens named after the use case and their key id.
    #[test]
    fn keeps_most_recent_and_reissues_rest() {
        let keys = vec![
            key(1, "ci-a", Role::Editor, Some(10)),
            key(2, "ci-b", Role::Editor, Some(1)),
            key(3, "ci-c", Role::Editor, None),
        ];
        let inv = inventory("10.4.2", keys, vec![]);
        let plan = plan(
            &inv,
            &Known::default(),
            &policy(vec![rule("ci", "^ci-", None)]),
            now(),
        );
        let uc = only_use_case(&plan);
        assert_eq!(uc.target, Target::MigrateKey { key_id: 2 });
        assert_eq!(uc.role, Some(Role::Editor));
        let names: Vec<&str> = uc
            .steps
            .iter()
            .map(|s| match s {
                Step::MigrateKey { .. } => "migrate",
                Step::Rename { .. } => "rename",
                Step::CreateToken { name, .. } => name.as_str(),
                _ => "other",
            })
            .collect();
        assert_eq!(names, ["migrate", "rename", "ks-ci-1", "ks-ci-3"]);
        assert_eq!(uc.members[1].action, Action::Keep);
    }

    // Members with different roles and no role in the rule are a conflict.
    #[test]
    fn mixed_roles_conflict() {
        let keys = vec![
            key(1, "ci-a", Role::Editor, None),
            key(2, "ci-b", Role::Admin, None),
        ];
        let inv = inventory("10.4.2", keys, vec![]);
        let plan = plan(
            &inv,
            &Known::default(),
            &policy(vec![rule("ci", "^ci-", None)]),
            now(),
        );
        let uc = only_use_case(&plan);
        assert!(
            uc.conflict.as_deref().unwrap().contains("different roles"),
            "{uc:?}"
        );
        assert!(uc.steps.is_empty());
        assert!(plan.has_conflicts());
    }

    // A forced role resolves mixed roles and flags the members it changes.
    #[test]
    fn forced_role_flags_changed_members() {
        let keys = vec![
            key(1, "ci-a", Role::Editor, Some(1)),
            key(2, "ci-b", Role::Admin, None),
        ];
        let inv = inventory("10.4.2", keys, vec![]);
        let rules = vec![rule("ci", "^ci-", Some(Role::Editor))];
        let plan = plan(&inv, &Known::default(), &policy(rules), now());
        let uc = only_use_case(&plan);
        assert_eq!(uc.role, Some(Role::Editor));
        assert!(uc.members[1].flags[0].contains("from Admin to Editor"));
        assert!(uc.members[0].flags.is_empty());
    }

    // FC-01: a foreign account with the use-case name blocks the use case.
    #[test]
    fn fc01_name_taken_by_foreign_account() {
        let inv = inventory(
            "10.4.2",
            vec![key(1, "deploy", Role::Editor, None)],
            vec![account(9, "deploy", "sa-1-deploy", vec![])],
        );
        let plan = plan(&inv, &Known::default(), &Policy::default(), now());
        let uc = only_use_case(&plan);
        assert!(uc
            .conflict
            .as_deref()
            .unwrap()
            .starts_with("name-taken: service account 9"));
        assert!(uc.steps.is_empty());
    }

    // A foreign account whose name differs only in case also blocks.
    #[test]
    fn name_taken_ignores_case() {
        let inv = inventory(
            "10.4.2",
            vec![key(1, "mon", Role::Viewer, None)],
            vec![account(9, "Mon", "sa-1-mon", vec![])],
        );
        let plan = plan(&inv, &Known::default(), &Policy::default(), now());
        let conflict = only_use_case(&plan).conflict.clone().unwrap();
        assert!(conflict.contains("already named \"Mon\""), "{conflict}");
    }

    // Role None is refused before 10.2 and accepted from it (FC-17).
    #[test]
    fn fc17_role_none_needs_10_2() {
        let rules = vec![rule("exporter", "^exp", Some(Role::None))];
        for (version, blocked) in [("10.1.5", true), ("10.4.2", false)] {
            let inv = inventory(version, vec![key(1, "exp", Role::Viewer, None)], vec![]);
            let plan = plan(&inv, &Known::default(), &policy(rules.clone()), now());
            assert_eq!(
                only_use_case(&plan).conflict.is_some(),
                blocked,
                "{version}"
            );
        }
    }

    // Expired keys are skipped, and never used as the keeper (FC-06).
    #[test]
    fn fc06_expired_skipped() {
        let mut old = key(1, "app-old", Role::Viewer, Some(0));
        old.expiration = Some(now() - chrono::Duration::days(30));
        let mut soon = key(2, "app-soon", Role::Viewer, Some(5));
        soon.expiration = Some(now() + chrono::Duration::days(3));
        let inv = inventory(
            "10.4.2",
            vec![old, soon, key(3, "app-x", Role::Viewer, Some(9))],
            vec![],
        );
        let plan = plan(
            &inv,
            &Known::default(),
            &policy(vec![rule("app", "^app-", None)]),
            now(),
        );
        let uc = only_use_case(&plan);
        assert!(matches!(uc.members[0].action, Action::Skip(ref r) if r.contains("expired")));
        assert_eq!(uc.target, Target::MigrateKey { key_id: 2 });
        let ttl = uc.steps.iter().find_map(|s| match s {
            Step::CreateToken {
                key_id: 3,
                seconds_to_live,
                ..
            } => Some(*seconds_to_live),
            _ => None,
        });
        assert_eq!(
            ttl,
            Some(0),
            "a key without expiry gets a token without expiry"
        );
    }

    // Lifetimes over the configured limit are clamped and flagged (FC-14).
    #[test]
    fn fc14_lifetime_clamped() {
        let mut long = key(2, "job-long", Role::Viewer, None);
        long.expiration = Some(now() + chrono::Duration::days(90));
        let mut short = key(3, "job-short", Role::Viewer, None);
        short.expiration = Some(now() + chrono::Duration::hours(2));
        let keys = vec![key(1, "job-forever", Role::Viewer, Some(1)), long, short];
        let inv = inventory("10.4.2", keys, vec![]);
        let mut pol = policy(vec![rule("job", "^job-", None)]);
        pol.max_token_lifetime = Some(Duration::from_secs(86_400));
        let plan = plan(&inv, &Known::default(), &pol, now());
        let ttls: Vec<(i64, i64)> = plan
            .use_cases()
            .flat_map(|u| &u.steps)
            .filter_map(|s| match s {
                Step::CreateToken {
                    key_id,
                    seconds_to_live,
                    ..
                } => Some((*key_id, *seconds_to_live)),
                _ => None,
            })
            .collect();
        assert_eq!(ttls, vec![(2, 86_400), (3, 7_200)]);
        let uc = only_use_case(&plan);
        assert!(uc
            .members
            .iter()
            .any(|m| m.key_id == 2 && m.flags.iter().any(|f| f.contains("lifetime-shortened"))));
    }

    // An autogen account with one token is adopted and renamed (11.6+).
    #[test]
    fn adopts_autogen_account() {
        let accounts = vec![
            account(
                20,
                "sa-autogen-etl-a",
                "sa-autogen-1-etl-a",
                vec![token(5, "etl-a")],
            ),
            account(
                21,
                "sa-autogen-etl-b",
                "sa-autogen-1-etl-b",
                vec![token(6, "etl-b")],
            ),
        ];
        let inv = inventory("12.1.0", vec![], accounts);
        let plan = plan(
            &inv,
            &Known::default(),
            &policy(vec![rule("etl", "^etl-", None)]),
            now(),
        );
        let uc = only_use_case(&plan);
        assert!(matches!(uc.target, Target::Adopt { id: 20 | 21 }));
        assert!(uc
            .steps
            .iter()
            .any(|s| *s == Step::Rename { to: "etl".into() }));
        assert_eq!(
            uc.steps
                .iter()
                .filter(|s| matches!(s, Step::CreateToken { .. }))
                .count(),
            1
        );
    }

    // A new member whose role differs from the owned account's is a
    // conflict, not a silent change of privilege.
    #[test]
    fn new_member_with_other_role_is_a_conflict() {
        let inv = inventory(
            "10.4.2",
            vec![
                key(3, "ci-new", Role::Admin, None),
                key(4, "ci-ok", Role::Editor, None),
            ],
            vec![account(30, "ci", "sa-1-ci", vec![token(2, "ci-b")])],
        );
        let known = Known {
            accounts: vec![OwnedAccount {
                org: 1,
                id: 30,
                use_case: "ci".into(),
                name: "ci".into(),
                role: Role::Editor,
            }],
            ..Known::default()
        };
        let plan = plan(&inv, &known, &policy(vec![rule("ci", "^ci-", None)]), now());
        let uc = only_use_case(&plan);
        let action = |id| &uc.members.iter().find(|m| m.key_id == id).unwrap().action;
        assert!(matches!(action(3), Action::Conflict(why) if why.contains("role Admin")));
        assert_eq!(action(4), &Action::Reissue);
        assert_eq!(uc.steps.len(), 1, "{:?}", uc.steps);
    }

    // After a complete migration the plan has no steps (idempotence).
    #[test]
    fn migrated_credentials_are_unchanged() {
        let inv = inventory(
            "10.4.2",
            vec![key(1, "ci-a", Role::Editor, None)],
            vec![account(
                30,
                "ci",
                "sa-autogen-1-ci-b",
                vec![token(2, "ci-b"), token(40, "ks-ci-1")],
            )],
        );
        let known = Known {
            accounts: vec![OwnedAccount {
                org: 1,
                id: 30,
                use_case: "ci".into(),
                name: "ci".into(),
                role: Role::Editor,
            }],
            tokens: vec![OwnedToken {
                org: 1,
                account: 30,
                id: 40,
                name: "ks-ci-1".into(),
                key_id: 1,
                delivered: true,
            }],
            credentials: HashMap::from([
                ((1, 1), Progress::Migrated),
                ((1, 2), Progress::Migrated),
            ]),
            settled: vec![],
        };
        let plan = plan(&inv, &known, &policy(vec![rule("ci", "^ci-", None)]), now());
        assert!(!plan.has_changes(), "{plan:#?}");
    }
}
