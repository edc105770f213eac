//! The one-shot jobs: plan and migrate, from config to report.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{info, info_span, warn, Instrument};

use crate::apply::{Applied, Applier, MemberOutcome, StepError};
use crate::grafana::{Client, GrafanaError};
use crate::inventory::{self, Inventory, OrgFilter, OrgScope};
use crate::ledger::{CredentialState, Ledger, LedgerError, RunId, RunKind, RunOutcome};
use crate::plan::{
    self, Known, OwnedAccount, OwnedToken, Plan, Policy, Progress, SettledCredential,
};
use crate::report::{
    ActionEntry, Counts, MemberReport, MemberStatus, OrgReport, RunReport, UseCaseReport,
};
use crate::resume::{self, ResumeError};
use crate::sink::Sink;

/// How many discover-plan-apply passes migrate makes at most; more than
/// one only when Grafana's 100-key list cap hides keys.
const MAX_PASSES: usize = 100;

/// An error that ends a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Grafana failed during discovery.
    #[error(transparent)]
    Grafana(#[from] GrafanaError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Settling interrupted calls failed.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// The sink cannot take secrets.
    #[error("the token sink is not usable")]
    Sink(#[from] crate::sink::SinkError),
}

impl From<StepError> for JobError {
    fn from(error: StepError) -> Self {
        match error {
            StepError::Grafana(e) => JobError::Grafana(e),
            StepError::Ledger(e) => JobError::Ledger(e),
            other => JobError::Grafana(GrafanaError::Unexpected {
                org: 0,
                what: other.to_string(),
            }),
        }
    }
}

/// Everything a job works with.
#[derive(Clone)]
pub struct Job {
    /// Grafana.
    pub client: Client,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// Where new secrets go.
    pub sink: Arc<Sink>,
    /// Migration policy.
    pub policy: Policy,
    /// Orgs to work on.
    pub orgs: OrgFilter,
    /// Use cases worked on at once.
    pub concurrency: usize,
    /// What started the job ("cli", "schedule", "rehearse").
    pub trigger: String,
}

/// What a plan or migrate job produced.
pub struct JobResult {
    /// The run's report.
    pub report: RunReport,
    /// The last plan made (for migrate: after the changes).
    pub plan: Plan,
    /// Calls that changed Grafana.
    pub writes: usize,
}

impl Job {
    /// Discovers and plans; writes nothing to Grafana.
    ///
    /// # Errors
    /// When discovery or the ledger fails.
    pub async fn plan(&self) -> Result<JobResult, JobError> {
        let run = self.ledger.start_run(RunKind::Plan, &self.trigger)?;
        let started = Utc::now();
        let span = info_span!("run", run = run.0, kind = "plan", trigger = %self.trigger);
        let result = self.plan_run(run, started).instrument(span).await;
        self.close(run, result)
    }

    async fn plan_run(&self, run: RunId, started: DateTime<Utc>) -> Result<JobResult, JobError> {
        let inventory = self.discover().await?;
        let plan = plan::plan(&inventory, &known(&self.ledger)?, &self.policy, Utc::now());
        let report = self.report(run, RunKind::Plan, started, &inventory, &plan, None);
        Ok(JobResult {
            report,
            plan,
            writes: 0,
        })
    }

    /// Resumes interrupted calls, then discovers, plans and applies until
    /// nothing is left to do.
    ///
    /// # Errors
    /// When discovery, the sink or the ledger fails; per-credential
    /// failures are in the report instead.
    pub async fn migrate(
        &self,
        on_progress: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> Result<JobResult, JobError> {
        let run = self.ledger.start_run(RunKind::Migrate, &self.trigger)?;
        let started = Utc::now();
        let span = info_span!("run", run = run.0, kind = "migrate", trigger = %self.trigger);
        let result = self
            .migrate_run(run, started, on_progress)
            .instrument(span)
            .await;
        self.close(run, result)
    }

    async fn migrate_run(
        &self,
        run: RunId,
        started: DateTime<Utc>,
        on_progress: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> Result<JobResult, JobError> {
        self.sink.prepare().await?;
        let settled = resume::resume(&self.client, &self.ledger).await?;
        if settled > 0 {
            info!(settled, "settled calls an interrupted run left open");
        }
        let applier = Applier {
            client: self.client.clone(),
            ledger: self.ledger.clone(),
            sink: self.sink.clone(),
            run,
            concurrency: self.concurrency,
            on_progress,
        };
        let mut total = Applied::default();
        let (inventory, plan) = self.passes(&applier, &mut total).await?;
        let mut report = self.report(
            run,
            RunKind::Migrate,
            started,
            &inventory,
            &plan,
            Some(&total),
        );
        if let Some(reason) = &total.stopped {
            report.outcome = RunOutcome::Failed;
            report
                .needs_human
                .insert(0, format!("the run stopped: {reason}"));
        }
        Ok(JobResult {
            report,
            plan,
            writes: total.writes,
        })
    }

    // Applies until a plan has no changes, the run stops, or passes make
    // no progress; returns the final inventory and plan, read afresh.
    async fn passes(
        &self,
        applier: &Applier,
        total: &mut Applied,
    ) -> Result<(Inventory, Plan), JobError> {
        for pass in 1..=MAX_PASSES {
            let inventory = self.discover().await?;
            let plan = plan::plan(
                &inventory,
                &self.known_now(total)?,
                &self.policy,
                Utc::now(),
            );
            if !plan.has_changes() {
                applier.record(&inventory, &plan)?;
                return Ok((inventory, plan));
            }
            let applied = applier.apply(&inventory, &plan).await?;
            info!(pass, writes = applied.writes, "pass applied");
            let progress = applied.members.values().any(is_progress);
            merge(total, applied);
            // After a fatal error (a rejected credential above all) Grafana
            // is not called again, not even to read.
            if total.stopped.is_some() {
                return Ok((inventory, plan));
            }
            if !progress {
                warn!(pass, "a pass made no progress; stopping");
                break;
            }
        }
        let inventory = self.discover().await?;
        let plan = plan::plan(
            &inventory,
            &self.known_now(total)?,
            &self.policy,
            Utc::now(),
        );
        Ok((inventory, plan))
    }

    // A member that failed in this run is not tried again in a later pass:
    // a refusal (403, a limit) would only repeat, and a transient failure
    // gets its retry from the next run.
    fn known_now(&self, total: &Applied) -> Result<Known, LedgerError> {
        let mut known = known(&self.ledger)?;
        for (key, outcome) in &total.members {
            if matches!(outcome, MemberOutcome::Failed(_)) {
                known.credentials.insert(*key, Progress::Deferred);
            }
        }
        Ok(known)
    }

    pub(crate) async fn discover(&self) -> Result<Inventory, GrafanaError> {
        self.discover_until(&|| false).await
    }

    /// Discovers, reading no further org once `stop` says so.
    pub(crate) async fn discover_until(
        &self,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Inventory, GrafanaError> {
        let inventory = inventory::discover_until(&self.client, &self.orgs, stop).await?;
        let version = inventory.capabilities.version_label();
        if let Err(error) = self.ledger.bind_server(&inventory.url, &version) {
            // A ledger of another server must never be mixed in.
            return Err(GrafanaError::Unexpected {
                org: 0,
                what: error.to_string(),
            });
        }
        Ok(inventory)
    }

    fn close(
        &self,
        run: RunId,
        result: Result<JobResult, JobError>,
    ) -> Result<JobResult, JobError> {
        match &result {
            Ok(done) => {
                let report = &done.report;
                self.ledger
                    .finish_run(run, report.outcome, &report.summary())?;
            }
            Err(error) => {
                let summary = serde_json::json!({"error": error.to_string()});
                self.ledger.finish_run(run, RunOutcome::Failed, &summary)?;
            }
        }
        result
    }

    fn report(
        &self,
        run: RunId,
        kind: RunKind,
        started: DateTime<Utc>,
        inventory: &Inventory,
        plan: &Plan,
        applied: Option<&Applied>,
    ) -> RunReport {
        let orgs: Vec<OrgReport> = plan.orgs.iter().map(|o| org_report(o, applied)).collect();
        let actions = self.ledger.operations(run).unwrap_or_default();
        let mut needs_human = needs_human(&orgs, plan);
        for org in &inventory.unmatched {
            needs_human.insert(
                0,
                format!(
                    "org {org:?} is selected in the config but was not found, or these \
                 credentials cannot reach it"
                ),
            );
        }
        let mut notes: Vec<String> = plan
            .orgs
            .iter()
            .flat_map(|o| {
                o.notes
                    .iter()
                    .map(move |n| format!("org {}: {n}", o.org_id))
            })
            .collect();
        if inventory.scope == OrgScope::TokenOrg {
            notes.insert(
                0,
                "authenticated with a token: only its own org was reachable".into(),
            );
        }
        let counts = Counts::tally(&orgs, &[]);
        let outcome = outcome(plan, &counts, &needs_human);
        RunReport {
            run_id: run.0,
            kind,
            trigger: self.trigger.clone(),
            started_at: started,
            finished_at: Utc::now(),
            outcome,
            grafana_url: inventory.url.clone(),
            grafana_version: inventory.capabilities.version_label(),
            counts,
            orgs,
            findings: Vec::new(),
            actions: actions.iter().map(ActionEntry::from).collect(),
            needs_human,
            notes,
        }
    }
}

fn is_progress(outcome: &MemberOutcome) -> bool {
    matches!(
        outcome,
        MemberOutcome::Kept | MemberOutcome::Reissued | MemberOutcome::Parked
    )
}

fn merge(total: &mut Applied, pass: Applied) {
    total.writes += pass.writes;
    for (key, outcome) in pass.members {
        let entry = total.members.entry(key).or_insert(MemberOutcome::Unchanged);
        // What a pass did wins over what a later pass left alone (a member
        // that failed is not tried again, so "unchanged" must not hide
        // it), and migrating it wins over parking it afterwards.
        if weight(&outcome) > weight(entry) {
            *entry = outcome;
        }
    }
    total.stopped = total.stopped.take().or(pass.stopped);
    total.flags.extend(pass.flags);
}

// How much an outcome says about a member's run, for merging passes.
fn weight(outcome: &MemberOutcome) -> u8 {
    match outcome {
        MemberOutcome::Unchanged => 0,
        MemberOutcome::Skipped(_) | MemberOutcome::Conflict(_) => 1,
        MemberOutcome::Failed(_) => 2,
        MemberOutcome::Parked => 3,
        MemberOutcome::Kept | MemberOutcome::Reissued => 4,
    }
}

fn outcome(plan: &Plan, counts: &Counts, needs_human: &[String]) -> RunOutcome {
    let trouble = counts.conflicts + counts.blocked + counts.failed > 0;
    // For a plan: changes to make; for migrate: changes it could not make.
    let pending = plan.has_changes();
    if trouble || pending || !needs_human.is_empty() {
        RunOutcome::Attention
    } else {
        RunOutcome::Done
    }
}

/// Reduces the ledger to what planning needs.
///
/// # Errors
/// When the ledger cannot be read.
pub fn known(ledger: &Ledger) -> Result<Known, LedgerError> {
    let accounts = ledger
        .service_accounts(None)?
        .into_iter()
        .filter(|a| a.deleted_at.is_none());
    let tokens = ledger
        .tokens(None)?
        .into_iter()
        .filter(|t| t.deleted_at.is_none());
    let records = ledger.credentials(None)?;
    let settled = records
        .iter()
        .filter(|c| c.holder_sa_id.is_some() && c.holder_sa_id == c.target_sa_id)
        .map(|c| SettledCredential {
            org: c.org_id,
            key_id: c.key_id,
            name: c.name.clone(),
            role: c.role,
            use_case: c.use_case.clone(),
            state: match c.target_sa_id {
                Some(id) => format!("{} in service account {id}", c.state),
                None => c.state.to_string(),
            },
        })
        .collect();
    let credentials = records.into_iter().map(|c| {
        let progress = match c.state {
            CredentialState::Kept | CredentialState::Reissued | CredentialState::Revoked => {
                Progress::Migrated
            }
            CredentialState::Deleted | CredentialState::Reverted => Progress::Closed,
            _ => Progress::Open,
        };
        ((c.org_id, c.key_id), progress)
    });
    Ok(Known {
        accounts: accounts
            .map(|a| OwnedAccount {
                org: a.org_id,
                id: a.sa_id,
                use_case: a.use_case,
                name: a.name,
                role: a.role,
            })
            .collect(),
        tokens: tokens
            .map(|t| OwnedToken {
                org: t.org_id,
                account: t.sa_id,
                id: t.token_id,
                name: t.name,
                key_id: t.key_id,
                delivered: t.delivered_at.is_some(),
            })
            .collect(),
        credentials: credentials.collect::<HashMap<_, _>>(),
        settled,
    })
}

fn org_report(org: &plan::OrgPlan, applied: Option<&Applied>) -> OrgReport {
    let use_cases = org.use_cases.iter().map(|u| UseCaseReport {
        name: u.name.clone(),
        service_account: describe_target(&u.target),
        role: u.role,
        members: u
            .members
            .iter()
            .map(|m| member_report(org.org_id, m, u.conflict.as_deref(), applied))
            .collect(),
    });
    OrgReport {
        org_id: org.org_id,
        org_name: org.org_name.clone(),
        use_cases: use_cases.collect(),
    }
}

fn describe_target(target: &plan::Target) -> Option<String> {
    match target {
        plan::Target::Owned { id } => Some(format!("service account {id}")),
        plan::Target::New => Some("new".into()),
        plan::Target::MigrateKey { key_id } => Some(format!("from key {key_id}")),
        plan::Target::Adopt { id } => Some(format!("adopt service account {id}")),
        plan::Target::Unresolved => None,
    }
}

fn member_report(
    org: i64,
    member: &plan::Member,
    conflict: Option<&str>,
    applied: Option<&Applied>,
) -> MemberReport {
    use plan::Action;
    let done = applied.and_then(|a| a.members.get(&(org, member.key_id)));
    let (mut action, mut status, mut detail) = match &member.action {
        Action::Keep => ("keep secret", MemberStatus::Planned, String::new()),
        Action::Reissue => ("reissue token", MemberStatus::Planned, String::new()),
        Action::Unchanged(why) => ("none", MemberStatus::Unchanged, why.clone()),
        Action::Skip(why) => ("skip", MemberStatus::Skipped, why.clone()),
        Action::Conflict(why) => (
            "none",
            MemberStatus::Conflict,
            conflict.unwrap_or(why).to_string(),
        ),
    };
    // The final plan shows what is left; the run's outcome shows what was
    // done, so it names the action too.
    if let Some(outcome) = done {
        (action, status, detail) = match outcome {
            MemberOutcome::Kept => ("keep secret", MemberStatus::Done, "secret kept".into()),
            MemberOutcome::Reissued => (
                "reissue token",
                MemberStatus::Done,
                "token reissued and delivered".into(),
            ),
            MemberOutcome::Parked => (
                "park",
                MemberStatus::Done,
                "moved into its own sa-autogen account to uncover keys hidden by the 100-key \
                 list cap; valid until cut-over"
                    .into(),
            ),
            MemberOutcome::Failed(why) if why.starts_with("insufficient-privilege") => {
                ("migrate", MemberStatus::Blocked, why.clone())
            }
            MemberOutcome::Failed(why) => ("migrate", MemberStatus::Failed, why.clone()),
            _ => (action, status, detail),
        };
    }
    let applied_flags = applied.and_then(|a| a.flags.get(&(org, member.key_id)));
    let flags = applied_flags.unwrap_or(&member.flags);
    if !flags.is_empty() {
        let joined = [detail, flags.join("; ")].join("; ");
        detail = joined.trim_matches([' ', ';']).to_string();
    }
    MemberReport {
        key_id: member.key_id,
        name: member.name.clone(),
        action: action.into(),
        status,
        detail,
    }
}

fn needs_human(orgs: &[OrgReport], plan: &Plan) -> Vec<String> {
    let mut items = Vec::new();
    for org in orgs {
        for use_case in &org.use_cases {
            for member in &use_case.members {
                // A token shortened to the server's limit dies early: someone
                // has to plan its rotation.
                let shortened = member.status == MemberStatus::Done
                    && member.detail.contains("lifetime-shortened");
                let attention = shortened
                    || matches!(
                        member.status,
                        MemberStatus::Conflict | MemberStatus::Blocked | MemberStatus::Failed
                    );
                if attention {
                    items.push(format!(
                        "org {} use case {:?}, credential {:?} ({}): {} — {}",
                        org.org_id,
                        use_case.name,
                        member.name,
                        member.key_id,
                        member.status,
                        member.detail
                    ));
                }
            }
        }
    }
    for org in &plan.orgs {
        for note in org
            .notes
            .iter()
            .filter(|n| n.starts_with("API keys could not be listed"))
        {
            items.push(format!("org {}: {note}", org.org_id));
        }
        if org.notes.iter().any(|n| n.contains("more may be hidden")) {
            items.push(format!(
                "org {}: listing saturated: more keys may be hidden",
                org.org_id
            ));
        }
    }
    items
}
