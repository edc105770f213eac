//! Run reports: one per run, as Markdown for people and JSON for tools.
//!
//! The model has no field that could hold a secret: members are named by
//! key id and key name, tokens by id.

mod markdown;
mod store;

use std::fmt;
use std::io;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::{Finding, OperationRecord, OperationResult, RunKind, RunOutcome, Severity};
use crate::role::Role;

pub use markdown::render_markdown;
pub use store::{ReportStore, StoredReport};

/// Everything one run did and found, for one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run's id in the ledger.
    pub run_id: i64,
    /// What the run did.
    pub kind: RunKind,
    /// What started it ("cli", "schedule", ...).
    pub trigger: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// The Grafana server's base URL.
    pub grafana_url: String,
    /// The Grafana server's version.
    pub grafana_version: String,
    /// Totals over every org and finding.
    pub counts: Counts,
    /// Per-org tables of use cases and members.
    pub orgs: Vec<OrgReport>,
    /// Drift and problems found.
    pub findings: Vec<FindingEntry>,
    /// Calls that changed Grafana.
    pub actions: Vec<ActionEntry>,
    /// What an administrator must decide or do, one sentence each.
    pub needs_human: Vec<String>,
    /// Anything else worth saying.
    pub notes: Vec<String>,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Members with work still to do (a dry run's changes).
    pub planned: usize,
    /// Members handled in this run.
    pub done: usize,
    /// Members left alone on purpose.
    pub skipped: usize,
    /// Members in conflict.
    pub conflicts: usize,
    /// Members Grafana or a limit blocked.
    pub blocked: usize,
    /// Members whose handling failed.
    pub failed: usize,
    /// Members already as intended.
    pub unchanged: usize,
    /// Findings by severity.
    pub findings: SeverityCounts,
}

/// Findings counted by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    /// Informational findings.
    pub info: usize,
    /// Warnings.
    pub warning: usize,
    /// Critical findings.
    pub critical: usize,
}

impl Counts {
    /// Counts the members and findings of a report's parts.
    pub fn tally(orgs: &[OrgReport], findings: &[FindingEntry]) -> Counts {
        let mut counts = Counts::default();
        let members = orgs
            .iter()
            .flat_map(|org| &org.use_cases)
            .flat_map(|use_case| &use_case.members);
        for member in members {
            *counts.slot(member.status) += 1;
        }
        for finding in findings {
            match finding.severity {
                Severity::Info => counts.findings.info += 1,
                Severity::Warning => counts.findings.warning += 1,
                Severity::Critical => counts.findings.critical += 1,
            }
        }
        counts
    }

    fn slot(&mut self, status: MemberStatus) -> &mut usize {
        match status {
            MemberStatus::Planned => &mut self.planned,
            MemberStatus::Done => &mut self.done,
            MemberStatus::Skipped => &mut self.skipped,
            MemberStatus::Conflict => &mut self.conflicts,
            MemberStatus::Blocked => &mut self.blocked,
            MemberStatus::Failed => &mut self.failed,
            MemberStatus::Unchanged => &mut self.unchanged,
        }
    }
}

/// One org's use cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgReport {
    /// Grafana's org id.
    pub org_id: i64,
    /// The org's name.
    pub org_name: String,
    /// Its use cases, in plan order.
    pub use_cases: Vec<UseCaseReport>,
}

/// One use case: its service account and member credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UseCaseReport {
    /// The use case's name (and its service account's).
    pub name: String,
    /// "new", "sa 12", "adopted sa 12"; `None` when none is chosen.
    pub service_account: Option<String>,
    /// The shared role; `None` when members disagree (a conflict).
    pub role: Option<Role>,
    /// Its member credentials.
    pub members: Vec<MemberReport>,
}

/// One source credential in a use case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    /// The original key id.
    pub key_id: i64,
    /// The original key name.
    pub name: String,
    /// What is (or was) done: "keep secret", "reissue", "revoke", ...
    pub action: String,
    /// Where it stands after the run.
    pub status: MemberStatus,
    /// Why, for a human: a reason, a token id, a last-use time.
    pub detail: String,
}

/// Where a member stands in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberStatus {
    /// To be done (dry run, or not reached).
    Planned,
    /// Done in this run.
    Done,
    /// Left alone on purpose.
    Skipped,
    /// Cannot be done as configured.
    Conflict,
    /// Refused by Grafana or a limit.
    Blocked,
    /// Tried and failed.
    Failed,
    /// Already as intended.
    Unchanged,
}

impl MemberStatus {
    /// The status as reports show it.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Planned => "planned",
            MemberStatus::Done => "done",
            MemberStatus::Skipped => "skipped",
            MemberStatus::Conflict => "conflict",
            MemberStatus::Blocked => "blocked",
            MemberStatus::Failed => "failed",
            MemberStatus::Unchanged => "unchanged",
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingEntry {
    /// How much it matters.
    pub severity: Severity,
    /// Org it concerns.
    pub org_id: i64,
    /// Finding kind, e.g. "role-escalated".
    pub kind: String,
    /// What it concerns.
    pub subject: String,
    /// What was seen.
    pub detail: String,
}

impl From<&Finding> for FindingEntry {
    fn from(finding: &Finding) -> Self {
        FindingEntry {
            severity: finding.severity,
            org_id: finding.org_id,
            kind: finding.kind.clone(),
            subject: finding.subject.clone(),
            detail: finding.detail.clone(),
        }
    }
}

/// A call that changed Grafana, as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionEntry {
    /// When the intent was recorded.
    pub at: DateTime<Utc>,
    /// Org the call was aimed at.
    pub org_id: i64,
    /// The call, e.g. "create-token".
    pub action: String,
    /// What it acted on, as recorded in the ledger.
    pub subject: String,
    /// "succeeded", "failed (409): ...", "unknown" or "pending".
    pub result: String,
}

impl From<&OperationRecord> for ActionEntry {
    fn from(op: &OperationRecord) -> Self {
        let result = match &op.result {
            None => "pending".to_string(),
            Some(OperationResult::Succeeded(_)) => "succeeded".to_string(),
            Some(OperationResult::Unknown) => "unknown".to_string(),
            Some(OperationResult::Failed {
                status: Some(s),
                message,
            }) => {
                format!("failed ({s}): {message}")
            }
            Some(OperationResult::Failed {
                status: None,
                message,
            }) => {
                format!("failed: {message}")
            }
        };
        ActionEntry {
            at: op.started_at,
            org_id: op.org_id,
            action: op.kind.to_string(),
            subject: op.subject.to_string(),
            result,
        }
    }
}

impl RunReport {
    /// The short summary recorded with the run in the ledger.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "outcome": self.outcome,
            "counts": self.counts,
            "needs_human": self.needs_human.len(),
        })
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // A model of plain strings, numbers and maps always serializes.
        serde_json::to_string_pretty(self).expect("run report serializes")
    }
}

/// What can go wrong writing or reading reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report directory could not be created or read.
    #[error("failed to use report directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A report file could not be written, renamed or removed.
    #[error("failed to write report {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A report file could not be read.
    #[error("failed to read report {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A report file is not a report this keyshift understands.
    #[error("report {path} is not valid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// No report for that run (or none at all).
    #[error("no report for {} in {dir}", run.map_or("any run".to_string(), |r| format!("run {r}")))]
    NotFound {
        /// The report directory.
        dir: PathBuf,
        /// The run asked for; `None` = the latest.
        run: Option<i64>,
    },
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::sample;
    use super::*;

    // Counts follow member statuses and finding severities.
    #[test]
    fn tally_counts_members_and_findings() {
        let report = sample(7);
        let counts = Counts::tally(&report.orgs, &report.findings);
        assert_eq!((counts.done, counts.conflicts, counts.skipped), (2, 1, 1));
        assert_eq!(counts.findings.critical, 1);
        assert_eq!(counts.findings.warning, 1);
        assert_eq!(counts, report.counts);
    }

    // JSON round-trips the whole model.
    #[test]
    fn json_round_trips() {
        let report = sample(7);
        let back: RunReport = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(back, report);
        assert_eq!(report.summary()["counts"]["done"], 2);
    }

    // An operation record becomes a readable action line.
    #[test]
    fn action_from_operation() {
        let op = OperationRecord {
            id: crate::ledger::OperationId(1),
            run_id: crate::ledger::RunId(7),
            org_id: 2,
            kind: crate::ledger::OperationKind::CreateToken,
            subject: serde_json::json!({"name": "ci-42"}),
            started_at: Utc::now(),
            finished_at: None,
            result: Some(OperationResult::Failed {
                status: Some(400),
                message: "token name taken".into(),
            }),
            resolved_at: None,
        };
        let action = ActionEntry::from(&op);
        assert_eq!(action.action, "create-token");
        assert_eq!(action.result, "failed (400): token name taken");
    }
}
