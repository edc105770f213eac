//! Planning: what migrate would do, as a pure function of the inventory,
//! what the ledger knows, and the policy from the config.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::inventory::{
    AccountKind, Inventory, OrgInventory, Source, SourceCredential, AUTOGEN_PREFIX,
};
use crate::role::Role;

mod model;
#[cfg(test)]
mod tests;

pub use model::*;

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
