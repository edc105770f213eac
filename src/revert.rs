//! `keyshift revert`: undo what keyshift did for a use case or a key.
//!
//! Only what the ledger says keyshift created is deleted: its tokens, and
//! its service account when keyshift created it and it holds no token
//! keyshift did not create (FC-15). An adopted `sa-autogen-*` account is
//! renamed back. What cannot be undone is said plainly: Grafana 11.3+
//! refuses to create legacy keys, and a deleted key's secret is gone.
//! When the original is gone, its replacement is all its consumers have:
//! it is kept and the credential is not reverted, so that a revert never
//! leaves a member with no working credential.

use anyhow::Result;
use chrono::Utc;
use clap::Args;
use serde_json::json;
use tracing::{info, info_span, warn, Instrument};

use crate::apply::{recorded, StepError};
use crate::cli::{print_report, Exit, Format};
use crate::config::Config;
use crate::inventory::{OrgFilter, OrgInventory, AUTOGEN_PREFIX};
use crate::job::{Job, JobError};
use crate::ledger::{
    CredentialRecord, CredentialState, OperationKind, RunId, RunKind, RunOutcome,
    ServiceAccountOrigin, ServiceAccountRecord,
};
use crate::report::{ActionEntry, Counts, RunReport};

/// `keyshift revert`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    /// The org id
    #[arg(long)]
    pub org: i64,
    /// Revert this use case (its account and every member)
    #[arg(long, conflicts_with = "key", required_unless_present = "key")]
    pub use_case: Option<String>,
    /// Revert this credential, by its original key id
    #[arg(long)]
    pub key: Option<i64>,
    /// Say what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format [default: table on a terminal, else markdown]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// What to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A use case: its account and all its members.
    UseCase(String),
    /// One credential, by original key id.
    Key(i64),
}

/// A revert job.
pub struct Revert {
    /// Client, ledger and the rest; `orgs` is replaced by `org`.
    pub job: Job,
    /// The org.
    pub org: i64,
    /// What to revert.
    pub target: Target,
    /// Only say what would be done.
    pub dry_run: bool,
}

/// One step of a revert.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    DeleteToken {
        sa: i64,
        token: i64,
    },
    DeleteAccount {
        sa: i64,
        name: String,
    },
    RenameAccount {
        sa: i64,
        to: String,
    },
    Release {
        sa: i64,
    },
    Mark {
        key: i64,
        to: CredentialState,
        reason: Option<String>,
    },
}

/// Runs `keyshift revert` from the command line.
///
/// # Errors
/// When setup, Grafana or the ledger fails.
pub async fn run_cli(config: &Config, args: &RevertArgs) -> Result<Exit> {
    let target = match (&args.use_case, args.key) {
        (Some(name), _) => Target::UseCase(name.clone()),
        (None, Some(key)) => Target::Key(key),
        (None, None) => anyhow::bail!("name a --use-case or a --key"),
    };
    let revert = Revert {
        job: crate::app::job(config, &[args.org.to_string()], "cli")?,
        org: args.org,
        target,
        dry_run: args.dry_run,
    };
    let report = revert.run().await?;
    if !args.dry_run {
        let path = crate::app::reports(config).write(&report)?;
        eprintln!("report: {}", path.display());
    }
    print_report(&report, args.format)?;
    Ok(Exit::from(report.outcome))
}

impl Revert {
    /// Plans the revert and, unless a dry run, carries it out.
    ///
    /// # Errors
    /// When discovery, a call or the ledger fails; calls already made are
    /// in the ledger.
    pub async fn run(&self) -> Result<RunReport, JobError> {
        let ledger = &self.job.ledger;
        let run = ledger.start_run(RunKind::Revert, &self.job.trigger)?;
        let span = info_span!("run", run = run.0, kind = "revert", org = self.org);
        let result = self.revert_run(run).instrument(span).await;
        match &result {
            Ok(report) => ledger.finish_run(run, report.outcome, &report.summary())?,
            Err(error) => {
                let summary = json!({"error": error.to_string()});
                ledger.finish_run(run, RunOutcome::Failed, &summary)?;
            }
        }
        result
    }

    async fn revert_run(&self, run: RunId) -> Result<RunReport, JobError> {
        let started = Utc::now();
        let mut job = self.job.clone();
        job.orgs = OrgFilter {
            include: vec![self.org.to_string()],
            exclude: Vec::new(),
        };
        let inventory = job.discover().await?;
        let Some(org) = inventory.orgs.iter().find(|o| o.org.id == self.org) else {
            return Err(JobError::Grafana(
                crate::grafana::GrafanaError::Unexpected {
                    org: self.org,
                    what: "the org is not reachable".into(),
                },
            ));
        };
        let version = inventory.capabilities.version;
        let mut plan = Plan::default();
        self.plan(org, version.is_some_and(|v| v >= legacy_gone()), &mut plan)?;
        if !self.dry_run {
            for step in &plan.steps {
                self.execute(run, step).await?;
            }
        }
        info!(
            steps = plan.steps.len(),
            dry_run = self.dry_run,
            "revert done"
        );
        let version = version.map_or_else(|| "hidden".into(), |v| v.to_string());
        let server = (inventory.url.as_str(), version.as_str());
        Ok(self.report(run, started, server, &plan))
    }

    fn plan(&self, org: &OrgInventory, keys_gone: bool, plan: &mut Plan) -> Result<(), JobError> {
        let ledger = &self.job.ledger;
        let credentials: Vec<CredentialRecord> = ledger
            .credentials(Some(self.org))?
            .into_iter()
            .filter(|c| match &self.target {
                Target::UseCase(name) => &c.use_case == name,
                Target::Key(key) => c.key_id == *key,
            })
            .collect();
        if credentials.is_empty() {
            plan.cannot
                .push("the ledger records nothing keyshift did for it".into());
            return Ok(());
        }
        for credential in &credentials {
            self.plan_credential(org, credential, keys_gone, plan)?;
        }
        let account = match &self.target {
            Target::UseCase(name) => ledger.service_account_for_use_case(self.org, name)?,
            Target::Key(_) => credentials[0]
                .target_sa_id
                .map(|id| ledger.service_account(self.org, id))
                .transpose()?
                .flatten()
                .filter(|a| a.deleted_at.is_none()),
        };
        if let Some(account) = account {
            self.plan_account(org, &account, &credentials, plan)?;
        }
        Ok(())
    }

    fn plan_credential(
        &self,
        org: &OrgInventory,
        credential: &CredentialRecord,
        keys_gone: bool,
        plan: &mut Plan,
    ) -> Result<(), JobError> {
        let key = credential.key_id;
        let label = format!("credential {key} ({})", credential.name);
        let exists = crate::reconcile::old_row_exists(org, key);
        match credential.state {
            CredentialState::Kept => {}
            CredentialState::Reissued if exists => {}
            // The original is gone: the replacement is all its consumers
            // have, so it stays and nothing is marked reverted.
            CredentialState::Reissued | CredentialState::Revoked => {
                plan.cannot.push(irreversible(&label, keys_gone));
                return Ok(());
            }
            _ => return Ok(()),
        }
        for token in self.job.ledger.tokens(Some(self.org))? {
            if token.key_id == key && token.deleted_at.is_none() {
                plan.steps.push(Step::DeleteToken {
                    sa: token.sa_id,
                    token: token.token_id,
                });
            }
        }
        plan.steps.push(Step::Mark {
            key,
            to: CredentialState::Reverted,
            reason: None,
        });
        Ok(())
    }

    fn plan_account(
        &self,
        org: &OrgInventory,
        account: &ServiceAccountRecord,
        credentials: &[CredentialRecord],
        plan: &mut Plan,
    ) -> Result<(), JobError> {
        let sa = account.sa_id;
        let Some(live) = org.account(sa) else {
            plan.notes
                .push(format!("service account {sa} no longer exists in Grafana"));
            plan.steps.push(Step::Release { sa });
            return Ok(());
        };
        let deleting: Vec<i64> = plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::DeleteToken { sa: s, token } if *s == sa => Some(*token),
                _ => None,
            })
            .collect();
        let owned: Vec<i64> = self
            .job
            .ledger
            .tokens_of(self.org, sa)?
            .iter()
            .map(|t| t.token_id)
            .collect();
        let remaining: Vec<_> = live
            .tokens
            .items
            .iter()
            .filter(|t| !deleting.contains(&t.id))
            .collect();
        let foreign: Vec<&str> = remaining
            .iter()
            .filter(|t| !owned.contains(&t.id) && !credentials.iter().any(|c| c.key_id == t.id))
            .map(|t| t.name.as_str())
            .collect();
        match account.origin {
            ServiceAccountOrigin::Created if !foreign.is_empty() => plan.kept.push(format!(
                "service account {sa} ({}) kept: it holds token(s) keyshift did not create: {}",
                account.name,
                foreign.join(", ")
            )),
            ServiceAccountOrigin::Created if !remaining.is_empty() => plan.notes.push(format!(
                "service account {sa} ({}) kept: it still serves other credentials",
                account.name
            )),
            ServiceAccountOrigin::Created => plan.steps.push(Step::DeleteAccount {
                sa,
                name: account.name.clone(),
            }),
            ServiceAccountOrigin::Adopted => {
                // Tokens that stay besides the kept row: replacements whose
                // originals are gone, or tokens keyshift did not make.
                let others = remaining.iter().any(|t| {
                    !credentials
                        .iter()
                        .any(|c| c.key_id == t.id && c.holder_sa_id == Some(sa))
                });
                self.plan_adopted(account, credentials, others, plan)
            }
        }
        Ok(())
    }

    // An adopted account holds a kept secret: give it back its
    // `sa-autogen-*` name rather than delete a working credential.
    fn plan_adopted(
        &self,
        account: &ServiceAccountRecord,
        credentials: &[CredentialRecord],
        others: bool,
        plan: &mut Plan,
    ) {
        let kept = credentials
            .iter()
            .find(|c| c.state == CredentialState::Kept && c.holder_sa_id == Some(account.sa_id));
        match (&self.target, kept) {
            // Still serving tokens that stay: renamed and released, they
            // would be the only credentials of their consumers, unwatched.
            (Target::UseCase(_), Some(kept)) if others => {
                // The kept secret stays in the use case's account: still kept.
                plan.steps
                    .retain(|s| !matches!(s, Step::Mark { key, .. } if *key == kept.key_id));
                plan.notes.push(format!(
                    "service account {} ({}) stays keyshift's, under its name: it holds \
                     tokens that stay",
                    account.sa_id, account.name
                ));
            }
            (Target::UseCase(_), Some(kept)) => {
                let to = format!("{AUTOGEN_PREFIX}{}", kept.name);
                plan.steps.push(Step::RenameAccount {
                    sa: account.sa_id,
                    to,
                });
                plan.steps.push(Step::Release { sa: account.sa_id });
            }
            _ => plan.notes.push(format!(
                "service account {} ({}) stays: keyshift adopted it and it holds a kept secret",
                account.sa_id, account.name
            )),
        }
    }

    async fn execute(&self, run: RunId, step: &Step) -> Result<(), StepError> {
        let (ledger, client, org) = (&self.job.ledger, &self.job.client, self.org);
        match step {
            Step::DeleteToken { sa, token } => {
                let subject = json!({"sa_id": sa, "token_id": token, "reason": "revert"});
                let call = client.delete_token(org, *sa, *token);
                recorded::<_, StepError>(
                    ledger,
                    run,
                    org,
                    OperationKind::DeleteToken,
                    &subject,
                    call,
                    |_| json!({}),
                )
                .await?;
                let name = ledger
                    .tokens_of(org, *sa)?
                    .into_iter()
                    .find(|t| t.token_id == *token)
                    .map(|t| t.name);
                ledger.mark_token_deleted(org, *token)?;
                if let Some(name) = name {
                    self.retract(org, &name).await;
                }
            }
            Step::DeleteAccount { sa, name } => {
                let subject = json!({"id": sa, "name": name, "reason": "revert"});
                let call = client.delete_service_account(org, *sa);
                recorded::<_, StepError>(
                    ledger,
                    run,
                    org,
                    OperationKind::DeleteServiceAccount,
                    &subject,
                    call,
                    |_| json!({}),
                )
                .await?;
                ledger.mark_service_account_deleted(org, *sa)?;
            }
            Step::RenameAccount { sa, to } => {
                let update = crate::grafana::wire::UpdateServiceAccount {
                    name: Some(to),
                    ..Default::default()
                };
                let subject = json!({"id": sa, "to": to});
                let call = client.update_service_account(org, *sa, &update);
                recorded::<_, StepError>(
                    ledger,
                    run,
                    org,
                    OperationKind::RenameServiceAccount,
                    &subject,
                    call,
                    |_| json!({}),
                )
                .await?;
            }
            Step::Release { sa } => ledger.mark_service_account_deleted(org, *sa)?,
            Step::Mark { key, to, reason } => {
                ledger.transition(org, *key, *to, reason.as_deref())?
            }
        }
        Ok(())
    }

    // The token is gone; its file in the sink would be a dead secret.
    async fn retract(&self, org: i64, name: &str) {
        if let Err(error) = self.job.sink.retract(org, name).await {
            warn!(org, token = name, error = %error, "token file not removed");
        }
    }

    fn report(
        &self,
        run: RunId,
        started: chrono::DateTime<Utc>,
        (url, version): (&str, &str),
        plan: &Plan,
    ) -> RunReport {
        let verb = if self.dry_run { "would" } else { "did" };
        let mut notes: Vec<String> = plan
            .steps
            .iter()
            .map(|s| format!("{verb}: {}", describe(s)))
            .collect();
        notes.extend(plan.notes.iter().cloned());
        let needs_human: Vec<String> = plan.cannot.iter().chain(&plan.kept).cloned().collect();
        let outcome = match needs_human.is_empty() {
            true => RunOutcome::Done,
            false => RunOutcome::Attention,
        };
        let actions = self.job.ledger.operations(run).unwrap_or_default();
        RunReport {
            run_id: run.0,
            kind: RunKind::Revert,
            trigger: self.job.trigger.clone(),
            started_at: started,
            finished_at: Utc::now(),
            outcome,
            grafana_url: url.to_string(),
            grafana_version: version.to_string(),
            counts: Counts::default(),
            orgs: Vec::new(),
            findings: Vec::new(),
            actions: actions.iter().map(ActionEntry::from).collect(),
            needs_human,
            notes,
        }
    }
}

/// What a revert will do and what it cannot.
#[derive(Debug, Default)]
struct Plan {
    steps: Vec<Step>,
    notes: Vec<String>,
    kept: Vec<String>,
    cannot: Vec<String>,
}

fn describe(step: &Step) -> String {
    match step {
        Step::DeleteToken { sa, token } => {
            format!("delete token {token} keyshift created in service account {sa}")
        }
        Step::DeleteAccount { sa, name } => {
            format!("delete service account {sa} ({name}), which keyshift created")
        }
        Step::RenameAccount { sa, to } => format!("rename service account {sa} back to {to}"),
        Step::Release { sa } => format!("stop owning service account {sa}"),
        Step::Mark { key, to, .. } => format!("mark credential {key} {to}"),
    }
}

fn irreversible(label: &str, keys_gone: bool) -> String {
    let why = match keys_gone {
        true => {
            "its legacy key is gone and cannot be re-created on this version \
                 (Grafana 11.3+ refuses new API keys)"
        }
        false => {
            "its legacy key is gone and its secret with it; a new key would \
                  have a new secret"
        }
    };
    format!(
        "{label} cannot be reverted: {why}; its replacement was kept, with its \
         token and service account"
    )
}

// Grafana 11.3 stopped creating legacy keys.
fn legacy_gone() -> crate::grafana::Version {
    "11.3.0".parse().expect("a valid version")
}
