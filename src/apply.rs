//! Applying a plan: each use case's steps in order, use cases side by side.
//!
//! Every call that changes Grafana is preceded by an intent in the ledger
//! and followed by its result, so that a run killed at any point can be
//! resumed (see [`crate::resume`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::grafana::wire::UpdateServiceAccount;
use crate::grafana::{Client, ErrorKind, GrafanaError, TokenCreated};
use crate::inventory::{Inventory, OrgInventory, Source, SourceCredential, AUTOGEN_PREFIX};
use crate::ledger::{
    CredentialLinks, CredentialRecord, CredentialState, Ledger, LedgerError, OperationKind,
    OperationResult, RunId, SecretFormat, ServiceAccountOrigin, ServiceAccountRecord, SourceKind,
    TokenRecord,
};
use crate::plan::{Action, Member, OrgPlan, Plan, Step, Target, UseCasePlan};
use crate::role::Role;
use crate::sink::{Delivery, Replaced, Sink};

/// What apply needs around it.
pub struct Applier {
    /// Grafana.
    pub client: Client,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Where new secrets go.
    pub sink: Arc<Sink>,
    /// The run this belongs to.
    pub run: RunId,
    /// Use cases worked on at once.
    pub concurrency: usize,
    /// Called once per finished use case, for progress display.
    pub on_progress: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// How one member ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOutcome {
    /// Its secret was kept.
    Kept,
    /// A replacement token was delivered.
    Reissued,
    /// Nothing needed doing.
    Unchanged,
    /// Replaced earlier and now moved out of the capped key list.
    Parked,
    /// Skipped, with the reason.
    Skipped(String),
    /// Needs a decision, with the reason.
    Conflict(String),
    /// Grafana refused, or a step failed, with the reason.
    Failed(String),
}

/// The result of applying a plan.
#[derive(Debug, Default)]
pub struct Applied {
    /// (org, key id) → how the member ended.
    pub members: HashMap<(i64, i64), MemberOutcome>,
    /// Changing calls made.
    pub writes: usize,
    /// Set when the run stopped early, e.g. because the credential was
    /// rejected.
    pub stopped: Option<String>,
    /// Flags the plan raised on members that were migrated (lifetime
    /// shortened, role changed), for the report.
    pub flags: HashMap<(i64, i64), Vec<String>>,
}

/// A step failure: fatal ones stop the whole run.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Grafana refused or failed.
    #[error(transparent)]
    Grafana(#[from] GrafanaError),
    /// The ledger failed: nothing more may be done without it.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The sink did not take the secret.
    #[error("{0}")]
    Undelivered(String),
    /// Another use case hit a fatal error; this one was not finished.
    #[error("stopped before this use case was done")]
    Stopped,
}

impl StepError {
    /// True for errors after which nothing more may be tried this run.
    pub fn is_fatal(&self) -> bool {
        match self {
            StepError::Grafana(e) => e.is_credential_rejected(),
            StepError::Ledger(_) => true,
            StepError::Undelivered(_) => false,
            StepError::Stopped => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            StepError::Grafana(e) if e.kind() == Some(&ErrorKind::Forbidden) => {
                format!("insufficient-privilege: {e}")
            }
            StepError::Grafana(e) if e.kind() == Some(&ErrorKind::LifetimeLimit) => {
                format!("lifetime over the server's limit; set migration.max_token_lifetime: {e}")
            }
            other => other.to_string(),
        }
    }
}

impl Applier {
    /// Records what the plan found, then carries out its steps.
    ///
    /// # Errors
    /// Only for ledger failures before any step; step failures are
    /// reported per member in [`Applied`].
    pub async fn apply(&self, inventory: &Inventory, plan: &Plan) -> Result<Applied, LedgerError> {
        self.record(inventory, plan)?;
        // Set by the first fatal error: no use case starts another call.
        let stop = AtomicBool::new(false);
        // Indices rather than references keep the stream's future Send.
        let jobs: Vec<(usize, usize)> = plan
            .orgs
            .iter()
            .enumerate()
            .flat_map(|(o, org)| (0..org.use_cases.len()).map(move |u| (o, u)))
            .collect();
        let results: Vec<UseCaseResult> = stream::iter(jobs)
            .map(|(o, u)| {
                self.apply_use_case(&inventory.orgs[o], &plan.orgs[o].use_cases[u], &stop)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut applied = Applied::default();
        for result in results {
            applied.writes += result.writes;
            applied.members.extend(result.members);
            applied.stopped = applied.stopped.or(result.fatal);
        }
        for org in &plan.orgs {
            let members = org.use_cases.iter().flat_map(|u| &u.members);
            let flagged = members.filter(|m| !m.flags.is_empty());
            for member in flagged {
                applied
                    .flags
                    .insert((org.org_id, member.key_id), member.flags.clone());
            }
        }
        Ok(applied)
    }

    // Discovery data and the plan's decisions go to the ledger first.
    /// Records what discovery found and the plan decided, for every org.
    ///
    /// # Errors
    /// When the ledger fails.
    pub fn record(&self, inventory: &Inventory, plan: &Plan) -> Result<(), LedgerError> {
        for (org, org_plan) in inventory.orgs.iter().zip(&plan.orgs) {
            self.record_members(org, org_plan)?;
        }
        Ok(())
    }

    fn record_members(&self, org: &OrgInventory, plan: &OrgPlan) -> Result<(), LedgerError> {
        let sources: HashMap<i64, &SourceCredential> =
            plan.sources.iter().map(|s| (s.key_id, s)).collect();
        for use_case in &plan.use_cases {
            for member in &use_case.members {
                let Some(source) = sources.get(&member.key_id) else {
                    continue;
                };
                self.record_member(org.org.id, &use_case.name, source, member)?;
            }
        }
        Ok(())
    }

    fn record_member(
        &self,
        org: i64,
        use_case: &str,
        source: &SourceCredential,
        member: &Member,
    ) -> Result<(), LedgerError> {
        let known = self.ledger.credential(org, source.key_id)?;
        let (state, reason) = match &member.action {
            Action::Skip(reason) => (CredentialState::Skipped, Some(reason.clone())),
            Action::Conflict(reason) => (CredentialState::Conflict, Some(reason.clone())),
            _ => (CredentialState::Pending, None),
        };
        let record = credential_record(org, use_case, source, state, reason.clone());
        self.ledger.upsert_credential(&record)?;
        let Some(known) = known else { return Ok(()) };
        // Grafana converted a key we knew as legacy (11.6+ at startup).
        let converted = known.source == SourceKind::LegacyKey
            && matches!(source.source, Source::AutogenToken { service_account }
                if self.ledger.service_account(org, service_account)?.is_none());
        if converted && is_open(known.state) && !self.migrating(org, source.key_id)? {
            info!(
                org,
                key = source.key_id,
                "grafana converted the key under keyshift"
            );
            self.ledger
                .transition(org, source.key_id, CredentialState::AutoMigrated, None)?;
        }
        if is_open(known.state) && state != CredentialState::Pending && known.state != state {
            self.ledger
                .transition(org, source.key_id, state, reason.as_deref())?;
        }
        if let Source::AutogenToken { service_account } = source.source {
            self.record_holder(org, use_case, source.key_id, service_account, known.state)?;
        }
        Ok(())
    }

    // True when keyshift's own per-key migration of the key has an unknown
    // outcome: then the conversion is ours, not Grafana's.
    fn migrating(&self, org: i64, key_id: i64) -> Result<bool, LedgerError> {
        let pending = self.ledger.pending_operations()?;
        Ok(pending.iter().any(|op| {
            op.org_id == org
                && op.kind == OperationKind::MigrateKey
                && op.subject.get("key_id").and_then(serde_json::Value::as_i64) == Some(key_id)
        }))
    }

    // A row inside the use case's own account is kept, whichever run
    // moved it there.
    fn record_holder(
        &self,
        org: i64,
        use_case: &str,
        key_id: i64,
        holder: i64,
        state: CredentialState,
    ) -> Result<(), LedgerError> {
        let owner = self.ledger.service_account(org, holder)?;
        let ours = owner.is_some_and(|a| a.use_case == use_case && a.deleted_at.is_none());
        let links = CredentialLinks {
            holder_sa_id: Some(holder),
            target_sa_id: ours.then_some(holder),
            ..Default::default()
        };
        self.ledger.link_credential(org, key_id, &links)?;
        if ours && is_open(state) {
            self.ledger
                .transition(org, key_id, CredentialState::Kept, None)?;
        }
        Ok(())
    }

    async fn apply_use_case(
        &self,
        org: &OrgInventory,
        plan: &UseCasePlan,
        stop: &AtomicBool,
    ) -> UseCaseResult {
        let mut run = UseCaseRun::new(self, org, plan);
        let outcome = run.execute(stop).await;
        if outcome.as_ref().is_err_and(StepError::is_fatal) {
            stop.store(true, Ordering::SeqCst);
        }
        if let Err(error) = &outcome {
            warn!(org = org.org.id, use_case = %plan.name, error = %error, "use case failed");
        }
        let result = run.finish(outcome);
        if let Some(progress) = &self.on_progress {
            progress();
        }
        result
    }
}

fn is_open(state: CredentialState) -> bool {
    matches!(
        state,
        CredentialState::Pending
            | CredentialState::Conflict
            | CredentialState::Blocked
            | CredentialState::AutoMigrated
    )
}

/// The ledger record of a source credential, as discovered.
pub fn credential_record(
    org: i64,
    use_case: &str,
    source: &SourceCredential,
    state: CredentialState,
    reason: Option<String>,
) -> CredentialRecord {
    let (kind, holder) = match source.source {
        Source::LegacyKey => (SourceKind::LegacyKey, None),
        Source::AutogenToken { service_account } => {
            (SourceKind::AutogenServiceAccount, Some(service_account))
        }
    };
    CredentialRecord {
        org_id: org,
        key_id: source.key_id,
        name: source.name.clone(),
        role: source.role,
        source: kind,
        // Inferred: legacy keys use the base64 JSON form, and Grafana keeps
        // it when it converts a key; keyshift never sees the secret itself.
        format: SecretFormat::LegacyJson,
        expires: source.expires,
        effective_expires: None,
        last_used_at: source.last_used_at,
        use_case: use_case.to_string(),
        state,
        reason,
        holder_sa_id: holder,
        target_sa_id: None,
        replacement_token_id: None,
        delivered_at: None,
        revoked_at: None,
        updated_at: Utc::now(),
    }
}

struct UseCaseResult {
    members: HashMap<(i64, i64), MemberOutcome>,
    writes: usize,
    fatal: Option<String>,
}

/// The state of one use case while its steps run.
struct UseCaseRun<'a> {
    applier: &'a Applier,
    org: &'a OrgInventory,
    plan: &'a UseCasePlan,
    account: Option<(i64, String)>,
    outcomes: HashMap<i64, MemberOutcome>,
    writes: usize,
}

impl<'a> UseCaseRun<'a> {
    fn new(applier: &'a Applier, org: &'a OrgInventory, plan: &'a UseCasePlan) -> Self {
        let account = match plan.target {
            Target::Owned { id } | Target::Adopt { id } => {
                org.account(id).map(|a| (id, a.account.name.clone()))
            }
            _ => None,
        };
        UseCaseRun {
            applier,
            org,
            plan,
            account,
            outcomes: HashMap::new(),
            writes: 0,
        }
    }

    fn org_id(&self) -> i64 {
        self.org.org.id
    }

    fn ledger(&self) -> &Ledger {
        &self.applier.ledger
    }

    fn client(&self) -> &Client {
        &self.applier.client
    }

    async fn execute(&mut self, stop: &AtomicBool) -> Result<(), StepError> {
        for step in &self.plan.steps {
            if stop.load(Ordering::SeqCst) {
                return Err(StepError::Stopped);
            }
            debug!(org = self.org_id(), use_case = %self.plan.name, ?step, "step");
            if let Err(error) = self.step(step).await {
                let Some(key_id) = step.key_id().filter(|_| !error.is_fatal()) else {
                    return Err(error);
                };
                // A failed token only affects its own member.
                if matches!(step, Step::CreateToken { .. }) {
                    self.fail_member(key_id, &error)?;
                    continue;
                }
                return Err(error);
            }
        }
        self.settle_kept()
    }

    async fn step(&mut self, step: &Step) -> Result<(), StepError> {
        match step {
            Step::CreateServiceAccount { name, role } => self.create_account(name, *role).await,
            Step::MigrateKey { key_id, key_name } => self.migrate_key(*key_id, key_name).await,
            Step::AdoptServiceAccount { id } => self.adopt(*id),
            Step::Rename { to } => self.rename(to).await,
            Step::SetRole { role } => self.set_role(*role).await,
            Step::CreateToken {
                key_id,
                name,
                seconds_to_live,
                expires,
            } => {
                self.issue_token(*key_id, name, *seconds_to_live, *expires)
                    .await
            }
            Step::DeleteUndelivered { token_id } => self.delete_token(*token_id).await,
            Step::DeleteExpiredKey { key_id } => self.delete_expired(*key_id).await,
            Step::ParkKey { key_id, key_name } => self.park(*key_id, key_name).await,
        }
    }

    /// Runs one changing call between its intent and its result.
    async fn call<T>(
        &mut self,
        kind: OperationKind,
        subject: serde_json::Value,
        call: impl std::future::Future<Output = Result<T, GrafanaError>>,
        result: impl FnOnce(&T) -> serde_json::Value,
    ) -> Result<T, StepError> {
        self.writes += 1;
        let (ledger, run, org) = (self.ledger(), self.applier.run, self.org_id());
        recorded(ledger, run, org, kind, &subject, call, result).await
    }

    fn target_id(&self) -> Result<i64, StepError> {
        self.account.as_ref().map(|(id, _)| *id).ok_or_else(|| {
            StepError::Grafana(GrafanaError::Unexpected {
                org: self.org_id(),
                what: format!("use case {} has no service account yet", self.plan.name),
            })
        })
    }

    async fn create_account(&mut self, name: &str, role: Role) -> Result<(), StepError> {
        let subject = json!({"name": name, "role": role, "use_case": self.plan.name});
        let client = self.client().clone();
        let org = self.org_id();
        let account = self
            .call(
                OperationKind::CreateServiceAccount,
                subject,
                client.create_service_account(org, name, role),
                |sa| json!({"id": sa.id, "login": sa.login}),
            )
            .await?;
        self.own(account.id, name, role, ServiceAccountOrigin::Created)?;
        Ok(())
    }

    fn own(
        &mut self,
        id: i64,
        name: &str,
        role: Role,
        origin: ServiceAccountOrigin,
    ) -> Result<(), StepError> {
        self.ledger()
            .record_service_account(&ServiceAccountRecord {
                org_id: self.org_id(),
                sa_id: id,
                use_case: self.plan.name.clone(),
                name: name.to_string(),
                role,
                origin,
                created_at: Utc::now(),
                deleted_at: None,
            })?;
        self.account = Some((id, name.to_string()));
        Ok(())
    }

    async fn migrate_key(&mut self, key_id: i64, key_name: &str) -> Result<(), StepError> {
        let subject = json!({"key_id": key_id, "key_name": key_name, "use_case": self.plan.name});
        let client = self.client().clone();
        let org = self.org_id();
        let called = self
            .call(
                OperationKind::MigrateKey,
                subject,
                client.migrate_key(org, key_id),
                |_| json!({}),
            )
            .await;
        // Grafana answers 200 even when nothing happened, and a 500 or a
        // lost answer may hide a success: the state decides.
        match called {
            Err(StepError::Grafana(e)) if e.may_have_applied() => {}
            other => other?,
        }
        let holder = find_migrated(&client, org, key_id, key_name).await?;
        let Some((id, name)) = holder else {
            let what = format!("key {key_id} was not moved into a service account");
            return Err(StepError::Grafana(GrafanaError::Unexpected { org, what }));
        };
        let role = self.member_role(key_id);
        self.own(id, &name, role, ServiceAccountOrigin::Adopted)?;
        self.link(
            key_id,
            CredentialLinks {
                holder_sa_id: Some(id),
                ..Default::default()
            },
        )
    }

    fn member_role(&self, key_id: i64) -> Role {
        let member = self.plan.members.iter().find(|m| m.key_id == key_id);
        member.map_or(Role::Viewer, |m| m.role)
    }

    fn adopt(&mut self, id: i64) -> Result<(), StepError> {
        let account = self
            .org
            .account(id)
            .map(|a| (a.account.name.clone(), a.account.role));
        let (name, role) = account.unwrap_or_else(|| (String::new(), Role::Viewer));
        self.own(id, &name, role, ServiceAccountOrigin::Adopted)
    }

    async fn rename(&mut self, to: &str) -> Result<(), StepError> {
        let id = self.target_id()?;
        let subject = json!({"id": id, "to": to});
        let update = UpdateServiceAccount {
            name: Some(to),
            ..Default::default()
        };
        let client = self.client().clone();
        let org = self.org_id();
        self.call(
            OperationKind::RenameServiceAccount,
            subject,
            client.update_service_account(org, id, &update),
            |_| json!({}),
        )
        .await?;
        let role = self.recorded_role(id)?;
        self.own(id, to, role, self.recorded_origin(id)?)
    }

    fn recorded_role(&self, id: i64) -> Result<Role, StepError> {
        let record = self.ledger().service_account(self.org_id(), id)?;
        Ok(record.map_or(Role::Viewer, |r| r.role))
    }

    fn recorded_origin(&self, id: i64) -> Result<ServiceAccountOrigin, StepError> {
        let record = self.ledger().service_account(self.org_id(), id)?;
        Ok(record.map_or(ServiceAccountOrigin::Adopted, |r| r.origin))
    }

    async fn set_role(&mut self, role: Role) -> Result<(), StepError> {
        let id = self.target_id()?;
        let subject = json!({"id": id, "role": role});
        let update = UpdateServiceAccount {
            role: Some(role),
            ..Default::default()
        };
        let client = self.client().clone();
        let org = self.org_id();
        self.call(
            OperationKind::UpdateServiceAccountRole,
            subject,
            client.update_service_account(org, id, &update),
            |_| json!({}),
        )
        .await?;
        let name = self
            .account
            .as_ref()
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        self.own(id, &name, role, self.recorded_origin(id)?)
    }

    async fn issue_token(
        &mut self,
        key_id: i64,
        name: &str,
        seconds_to_live: i64,
        expires: Option<DateTime<Utc>>,
    ) -> Result<(), StepError> {
        let sa = self.target_id()?;
        let token = match self.create_token(sa, key_id, name, seconds_to_live).await? {
            TokenCreated::New(token) => token,
            // The secret of a token found after an unknown outcome is lost:
            // delete it and make it again.
            TokenCreated::SecretLost(lost) => {
                self.delete_token(lost.id).await?;
                match self.create_token(sa, key_id, name, seconds_to_live).await? {
                    TokenCreated::New(token) => token,
                    TokenCreated::SecretLost(_) => {
                        return Err(StepError::Undelivered("token secret lost twice".into()))
                    }
                }
            }
        };
        let granted =
            (seconds_to_live > 0).then(|| Utc::now() + chrono::Duration::seconds(seconds_to_live));
        self.ledger().record_token(&TokenRecord {
            org_id: self.org_id(),
            sa_id: sa,
            token_id: token.id,
            name: token.name.clone(),
            key_id,
            requested_expires: expires,
            granted_expires: granted,
            created_at: Utc::now(),
            delivered_at: None,
            deleted_at: None,
        })?;
        self.deliver(sa, key_id, token, granted).await
    }

    async fn create_token(
        &mut self,
        sa: i64,
        key_id: i64,
        name: &str,
        seconds_to_live: i64,
    ) -> Result<TokenCreated, StepError> {
        let subject = json!({"sa_id": sa, "name": name, "key_id": key_id,
            "seconds_to_live": seconds_to_live});
        let client = self.client().clone();
        let org = self.org_id();
        self.call(
            OperationKind::CreateToken,
            subject,
            client.create_token(org, sa, name, seconds_to_live),
            |created| match created {
                TokenCreated::New(t) => json!({"id": t.id}),
                TokenCreated::SecretLost(t) => json!({"id": t.id, "secret_lost": true}),
            },
        )
        .await
    }

    async fn deliver(
        &mut self,
        sa: i64,
        key_id: i64,
        token: crate::grafana::NewToken,
        granted: Option<DateTime<Utc>>,
    ) -> Result<(), StepError> {
        let key_name = self.plan.members.iter().find(|m| m.key_id == key_id);
        let delivery = Delivery {
            org_id: self.org_id(),
            org_name: self.org.org.name.clone(),
            use_case: self.plan.name.clone(),
            service_account_id: sa,
            service_account_name: self.plan.name.clone(),
            token_id: token.id,
            token_name: token.name.clone(),
            secret: token.secret,
            expires: granted,
            replaces: Replaced {
                key_id,
                key_name: key_name.map(|m| m.name.clone()).unwrap_or_default(),
            },
        };
        if let Err(error) = self.applier.sink.deliver(&delivery).await {
            // An undelivered secret is useless: delete the token now.
            self.delete_token(token.id).await?;
            return Err(StepError::Undelivered(format!(
                "secret not delivered: {error}"
            )));
        }
        self.ledger()
            .mark_token_delivered(self.org_id(), token.id)?;
        let links = CredentialLinks {
            target_sa_id: Some(sa),
            replacement_token_id: Some(token.id),
            effective_expires: granted,
            ..Default::default()
        };
        self.link(key_id, links)?;
        self.ledger()
            .transition(self.org_id(), key_id, CredentialState::Reissued, None)?;
        self.outcomes.insert(key_id, MemberOutcome::Reissued);
        Ok(())
    }

    async fn delete_token(&mut self, token_id: i64) -> Result<(), StepError> {
        let sa = self.target_id()?;
        let subject = json!({"sa_id": sa, "token_id": token_id});
        let client = self.client().clone();
        let org = self.org_id();
        self.call(
            OperationKind::DeleteToken,
            subject,
            client.delete_token(org, sa, token_id),
            |_| json!({}),
        )
        .await?;
        let name = self.token_name(sa, token_id)?;
        // A token made by a run that stopped before recording it is not in
        // the ledger; deleting it is all there is to do.
        match self.ledger().mark_token_deleted(org, token_id) {
            Err(LedgerError::UnknownToken { .. }) | Ok(()) => {}
            Err(error) => return Err(error.into()),
        }
        // A file left behind would hold a dead secret.
        if let Some(name) = name {
            if let Err(error) = self.applier.sink.retract(org, &name).await {
                warn!(org, token = token_id, error = %error, "cannot remove a dead token's file");
            }
        }
        Ok(())
    }

    // The name of a token, from the ledger or from discovery.
    fn token_name(&self, sa: i64, token_id: i64) -> Result<Option<String>, StepError> {
        let recorded = self.ledger().tokens_of(self.org_id(), sa)?;
        if let Some(token) = recorded.into_iter().find(|t| t.token_id == token_id) {
            return Ok(Some(token.name));
        }
        let listed = self.org.account(sa).map(|a| &a.tokens.items);
        let found = listed.and_then(|items| items.iter().find(|t| t.id == token_id));
        Ok(found.map(|t| t.name.clone()))
    }

    async fn park(&mut self, key_id: i64, key_name: &str) -> Result<(), StepError> {
        let subject = json!({"key_id": key_id, "key_name": key_name, "park": true});
        let client = self.client().clone();
        let org = self.org_id();
        self.call(
            OperationKind::MigrateKey,
            subject,
            client.migrate_key(org, key_id),
            |_| json!({}),
        )
        .await?;
        let Some((holder, _)) = find_migrated(&client, org, key_id, key_name).await? else {
            return Err(StepError::Grafana(GrafanaError::Unexpected {
                org,
                what: format!("key {key_id} was not moved into a service account"),
            }));
        };
        let links = CredentialLinks {
            holder_sa_id: Some(holder),
            ..Default::default()
        };
        self.link(key_id, links)?;
        self.outcomes.insert(key_id, MemberOutcome::Parked);
        Ok(())
    }

    async fn delete_expired(&mut self, key_id: i64) -> Result<(), StepError> {
        let subject = json!({"key_id": key_id, "reason": "expired"});
        let client = self.client().clone();
        let org = self.org_id();
        self.call(
            OperationKind::DeleteKey,
            subject,
            client.delete_api_key(org, key_id),
            |_| json!({}),
        )
        .await?;
        self.ledger()
            .transition(org, key_id, CredentialState::Deleted, Some("expired"))?;
        Ok(())
    }

    fn link(&self, key_id: i64, links: CredentialLinks) -> Result<(), StepError> {
        self.ledger()
            .link_credential(self.org_id(), key_id, &links)?;
        Ok(())
    }

    fn fail_member(&mut self, key_id: i64, error: &StepError) -> Result<(), StepError> {
        let reason = error.describe();
        self.ledger().transition(
            self.org_id(),
            key_id,
            CredentialState::Blocked,
            Some(&reason),
        )?;
        self.outcomes.insert(key_id, MemberOutcome::Failed(reason));
        Ok(())
    }

    // Once the account exists under its final name, the kept member is done.
    fn settle_kept(&mut self) -> Result<(), StepError> {
        let Some((id, _)) = self.account.clone() else {
            return Ok(());
        };
        for member in self
            .plan
            .members
            .iter()
            .filter(|m| m.action == Action::Keep)
        {
            let links = CredentialLinks {
                holder_sa_id: Some(id),
                target_sa_id: Some(id),
                ..Default::default()
            };
            self.link(member.key_id, links)?;
            self.ledger()
                .transition(self.org_id(), member.key_id, CredentialState::Kept, None)?;
            self.outcomes.insert(member.key_id, MemberOutcome::Kept);
        }
        Ok(())
    }

    fn finish(mut self, outcome: Result<(), StepError>) -> UseCaseResult {
        let mut fatal = None;
        if let Err(error) = outcome {
            let reason = error.describe();
            if error.is_fatal() {
                fatal = Some(reason.clone());
            }
            // Members not reached stay pending: nothing was wrong with them.
            if !matches!(error, StepError::Stopped) {
                self.block_open_members(&reason);
            }
        }
        let members = self.plan.members.iter().map(|m| {
            let outcome = self
                .outcomes
                .remove(&m.key_id)
                .unwrap_or_else(|| planned_outcome(m));
            ((self.org_id(), m.key_id), outcome)
        });
        UseCaseResult {
            members: members.collect(),
            writes: self.writes,
            fatal,
        }
    }

    fn block_open_members(&mut self, reason: &str) {
        let open: Vec<i64> = self
            .plan
            .members
            .iter()
            .filter(|m| matches!(m.action, Action::Keep | Action::Reissue))
            .filter(|m| !self.outcomes.contains_key(&m.key_id))
            .map(|m| m.key_id)
            .collect();
        for key_id in open {
            let blocked = self.ledger().transition(
                self.org_id(),
                key_id,
                CredentialState::Blocked,
                Some(reason),
            );
            if let Err(error) = blocked {
                warn!(org = self.org_id(), key = key_id, error = %error, "cannot record failure");
            }
            self.outcomes
                .insert(key_id, MemberOutcome::Failed(reason.to_string()));
        }
    }
}

/// Runs one call that changes Grafana between its intent and its result
/// in the ledger, so that a kill at any point leaves a record to resume.
///
/// An error without a status that may have reached Grafana is recorded as
/// unknown; the next run looks it up (see [`crate::resume`]).
///
/// # Errors
/// The call's error, or a ledger error recording it.
pub async fn recorded<T, E>(
    ledger: &Ledger,
    run: RunId,
    org: i64,
    kind: OperationKind,
    subject: &serde_json::Value,
    call: impl std::future::Future<Output = Result<T, GrafanaError>>,
    result: impl FnOnce(&T) -> serde_json::Value,
) -> Result<T, E>
where
    E: From<GrafanaError> + From<LedgerError>,
{
    let op = ledger.begin_operation(run, org, kind, subject)?;
    match call.await {
        Ok(value) => {
            let detail = result(&value);
            ledger.finish_operation(op, OperationResult::Succeeded(detail))?;
            Ok(value)
        }
        Err(error) => {
            let failure = match error.may_have_applied() && error.status().is_none() {
                true => OperationResult::Unknown,
                false => OperationResult::Failed {
                    status: error.status(),
                    message: error.to_string(),
                },
            };
            ledger.finish_operation(op, failure)?;
            Err(error.into())
        }
    }
}

fn planned_outcome(member: &Member) -> MemberOutcome {
    match &member.action {
        Action::Unchanged(_) => MemberOutcome::Unchanged,
        Action::Skip(reason) => MemberOutcome::Skipped(reason.clone()),
        Action::Conflict(reason) => MemberOutcome::Conflict(reason.clone()),
        Action::Keep | Action::Reissue => MemberOutcome::Failed("not reached".into()),
    }
}

/// Finds the account Grafana moved key `key_id` into: named
/// `sa-autogen-<key name>`, holding a token with the key's id.
///
/// # Errors
/// When a listing fails.
pub async fn find_migrated(
    client: &Client,
    org: i64,
    key_id: i64,
    key_name: &str,
) -> Result<Option<(i64, String)>, GrafanaError> {
    let name = format!("{AUTOGEN_PREFIX}{key_name}");
    // From 11.6 two accounts may share this name (login suffixes).
    for account in client.service_accounts_named(org, &name).await? {
        let tokens = client.tokens(org, account.id).await?;
        if tokens.items.iter().any(|t| t.id == key_id) {
            return Ok(Some((account.id, account.name)));
        }
    }
    Ok(None)
}
