//! Reconciliation: compare what the ledger owns with Grafana.
//!
//! One pass reads the estate, checks every owned service account with
//! `GET /api/serviceaccounts/:id` (no paging to go wrong, FC-05) and its
//! token list, looks for credentials that appeared or that Grafana
//! converted underneath, evaluates the cut-over, and records each
//! difference as a finding ([`FindingKind`] holds the severity table).
//! Repairs are made only when asked for and allowed by
//! `[reconcile.repair]`; each goes through the ledger's intent log like
//! apply's calls (see [`crate::apply::recorded`]).

mod check;
mod estate;
mod kind;
mod repair;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::{info, info_span, warn, Instrument};

pub use kind::FindingKind;

use crate::apply::{recorded, StepError};
use crate::config::{CutoverConfig, ReconcileConfig};
use crate::daemon::StopToken;
use crate::grafana::GrafanaError;
use crate::inventory::{Inventory, OrgScope};
use crate::job::{Job, JobError};
use crate::ledger::{Finding, OperationKind, RunId, RunKind, RunOutcome, Severity};
use crate::report::{ActionEntry, Counts, FindingEntry, RunReport};
use crate::resume;

/// Share of `token_limit` at which `near-token-limit` is reported.
const NEAR_LIMIT_PERCENT: usize = 90;

/// A source of the current time; tests pass the simulator's clock.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The settings reconcile works with, taken from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[reconcile]` and its repair policy.
    pub reconcile: ReconcileConfig,
    /// `[cutover]`.
    pub cutover: CutoverConfig,
    /// `migration.new_credentials`: migrate what appeared, every run.
    pub migrate_new: bool,
    /// Tokens a service account may hold on this server, when limited.
    pub token_limit: Option<usize>,
}

/// A reconcile job: the migrate job's parts plus reconcile settings.
#[derive(Clone)]
pub struct Reconciler {
    /// Client, ledger, sink, policy and org selection.
    pub job: Job,
    /// What to check and what may be repaired.
    pub settings: Settings,
    /// Make the repairs the policy allows (`--repair`).
    pub repair: bool,
    /// The clock findings and cut-over are judged by.
    pub now: Now,
}

/// One observed difference, before it reaches the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What it is about.
    pub kind: FindingKind,
    /// Org it concerns.
    pub org: i64,
    /// What it concerns, e.g. "service account 12 (ci)".
    pub subject: String,
    /// What was seen.
    pub detail: String,
    /// What a repair did about it, if one was made.
    pub repaired: Option<String>,
}

impl Observed {
    /// True when an administrator still has something to do.
    pub fn needs_attention(&self) -> bool {
        self.kind.severity() >= Severity::Warning && self.repaired.is_none()
    }

    fn to_finding(&self) -> Finding {
        let detail = match &self.repaired {
            Some(what) => format!("{}; repaired: {what}", self.detail),
            None => self.detail.clone(),
        };
        Finding {
            kind: self.kind.as_str().to_string(),
            severity: self.kind.severity(),
            org_id: self.org,
            subject: self.subject.clone(),
            detail,
        }
    }
}

/// What a reconcile produced.
#[derive(Debug)]
pub struct ReconcileResult {
    /// The run's report.
    pub report: RunReport,
    /// Every finding, repaired ones included.
    pub findings: Vec<Observed>,
    /// Calls that changed Grafana.
    pub writes: usize,
    /// Reports of runs this one started (the migration of new
    /// credentials), to be written beside its own.
    pub nested: Vec<RunReport>,
}

impl Reconciler {
    /// Runs one reconcile: findings, repairs, cut-over, report.
    ///
    /// Stops between service accounts once `stop` is set; the report then
    /// says where.
    ///
    /// # Errors
    /// When discovery or the ledger fails.
    pub async fn run(&self, stop: &StopToken) -> Result<ReconcileResult, JobError> {
        let ledger = &self.job.ledger;
        let run = ledger.start_run(RunKind::Reconcile, &self.job.trigger)?;
        let span = info_span!("run", run = run.0, kind = "reconcile",
            trigger = %self.job.trigger);
        let result = self.reconcile_run(run, stop).instrument(span).await;
        match &result {
            Ok(done) => ledger.finish_run(run, done.report.outcome, &done.report.summary())?,
            Err(error) => {
                let summary = serde_json::json!({"error": error.to_string()});
                ledger.finish_run(run, RunOutcome::Failed, &summary)?;
            }
        }
        result
    }

    async fn reconcile_run(
        &self,
        run: RunId,
        stop: &StopToken,
    ) -> Result<ReconcileResult, JobError> {
        let started = (self.now)();
        if self.repair {
            self.job.sink.prepare().await?;
        }
        let settled = resume::resume(&self.job.client, &self.job.ledger).await?;
        if settled > 0 {
            info!(settled, "settled calls an interrupted run left open");
        }
        // A stop request ends discovery between orgs; the pass that
        // follows then stops at once and reports where.
        let inventory = self.job.discover_until(&|| stop.is_stopping()).await?;
        let mut pass = Pass::new(self, run, started, stop.clone());
        pass.estate(&inventory, stop).await?;
        pass.migrate_new(stop).await?;
        let report = pass.report(&inventory);
        for finding in &pass.findings {
            self.job.ledger.record_finding(run, &finding.to_finding())?;
        }
        info!(
            findings = pass.findings.len(),
            writes = pass.writes,
            outcome = %report.outcome,
            "reconcile finished"
        );
        Ok(ReconcileResult {
            report,
            findings: pass.findings,
            writes: pass.writes,
            nested: pass.nested,
        })
    }
}

/// The state of one reconcile while it runs.
pub(crate) struct Pass<'a> {
    rec: &'a Reconciler,
    /// Set by SIGTERM: no write starts after it.
    stop: StopToken,
    run: RunId,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    findings: Vec<Observed>,
    writes: usize,
    notes: Vec<String>,
    stopped: bool,
    /// The server reports `lastUsedAt` for legacy keys (9.5 on).
    key_use_reported: bool,
    /// Reports of runs started by this one.
    nested: Vec<RunReport>,
}

impl<'a> Pass<'a> {
    fn new(rec: &'a Reconciler, run: RunId, started: DateTime<Utc>, stop: StopToken) -> Self {
        Pass {
            rec,
            stop,
            run,
            started,
            now: started,
            findings: Vec::new(),
            writes: 0,
            notes: Vec::new(),
            stopped: false,
            key_use_reported: false,
            nested: Vec::new(),
        }
    }

    fn job(&self) -> &'a Job {
        &self.rec.job
    }

    fn settings(&self) -> &'a Settings {
        &self.rec.settings
    }

    // Every org, in order; a stop request ends the pass between accounts.
    async fn estate(&mut self, inventory: &Inventory, stop: &StopToken) -> Result<(), JobError> {
        let version = inventory.capabilities.version_label();
        self.key_use_reported = inventory.capabilities.reports_key_last_used;
        for org in &inventory.orgs {
            self.org(org, &version, stop).await?;
            if self.stopped {
                self.notes.push(format!(
                    "the run stopped for shutdown during org {}",
                    org.org.id
                ));
                break;
            }
        }
        Ok(())
    }

    /// Records a finding; returns its index for a later repair note.
    fn observe(
        &mut self,
        kind: FindingKind,
        org: i64,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> usize {
        let observed = Observed {
            kind,
            org,
            subject: subject.into(),
            detail: detail.into(),
            repaired: None,
        };
        info!(org, kind = %kind, subject = %observed.subject, "finding");
        self.findings.push(observed);
        self.findings.len() - 1
    }

    fn repaired(&mut self, index: usize, what: impl Into<String>) {
        self.findings[index].repaired = Some(what.into());
    }

    fn repair_failed(&mut self, org: i64, subject: &str, error: &StepError) {
        warn!(org, subject, error = %error, "repair failed");
        self.observe(FindingKind::RepairFailed, org, subject, error.to_string());
    }

    /// Runs one changing call between its intent and its result.
    async fn write<T>(
        &mut self,
        org: i64,
        kind: OperationKind,
        subject: serde_json::Value,
        call: impl std::future::Future<Output = Result<T, GrafanaError>>,
        result: impl FnOnce(&T) -> serde_json::Value,
    ) -> Result<T, StepError> {
        // A stop request lets the call in flight finish and starts no other.
        if self.stop.is_stopping() {
            self.stopped = true;
            return Err(StepError::Stopped);
        }
        self.writes += 1;
        let ledger = &self.job().ledger;
        recorded(ledger, self.run, org, kind, &subject, call, result).await
    }

    fn report(&self, inventory: &Inventory) -> RunReport {
        let entries: Vec<FindingEntry> = self
            .findings
            .iter()
            .map(|f| FindingEntry::from(&f.to_finding()))
            .collect();
        let needs_human: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.needs_attention())
            .map(|f| format!("org {}: {} {}: {}", f.org, f.kind, f.subject, f.detail))
            .collect();
        let mut notes = self.notes.clone();
        if inventory.scope == OrgScope::TokenOrg {
            notes.insert(
                0,
                "authenticated with a token: only its own org was reachable".into(),
            );
        }
        let outcome = match (self.stopped, needs_human.is_empty()) {
            (true, _) => RunOutcome::Interrupted,
            (false, false) => RunOutcome::Attention,
            (false, true) => RunOutcome::Done,
        };
        let actions = self.job().ledger.operations(self.run).unwrap_or_default();
        RunReport {
            run_id: self.run.0,
            kind: RunKind::Reconcile,
            trigger: self.job().trigger.clone(),
            started_at: self.started,
            finished_at: (self.rec.now)(),
            outcome,
            grafana_url: inventory.url.clone(),
            grafana_version: inventory.capabilities.version_label(),
            counts: Counts::tally(&[], &entries),
            orgs: Vec::new(),
            findings: entries,
            actions: actions.iter().map(ActionEntry::from).collect(),
            needs_human,
            notes,
        }
    }
}

/// True when a credential's old row (key or token) is still in Grafana.
pub fn old_row_exists(org: &crate::inventory::OrgInventory, key_id: i64) -> bool {
    estate::locate(org, key_id).is_some()
}
