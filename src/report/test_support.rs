//! A sample report shared by the report tests.

use chrono::{TimeZone, Utc};

use super::*;

/// A migrate run with two orgs, a conflict, a skip and two findings.
pub fn sample(run_id: i64) -> RunReport {
    let orgs = vec![
        OrgReport {
            org_id: 1,
            org_name: "Main Org.".into(),
            use_cases: vec![UseCaseReport {
                name: "etl".into(),
                service_account: Some("new".into()),
                role: Some(Role::Editor),
                members: vec![
                    member(42, "etl", "keep secret", MemberStatus::Done, "now in sa 12"),
                    member(43, "etl-2", "reissue", MemberStatus::Done, "token 7001"),
                    member(44, "old|backup", "skip", MemberStatus::Skipped, "expired"),
                ],
            }],
        },
        OrgReport {
            org_id: 2,
            org_name: "Ops".into(),
            use_cases: vec![UseCaseReport {
                name: "deploy".into(),
                service_account: None,
                role: None,
                members: vec![member(
                    50,
                    "deploy",
                    "none",
                    MemberStatus::Conflict,
                    "service account \"deploy\" (sa 9) is not ours",
                )],
            }],
        },
    ];
    let findings = vec![
        finding(
            Severity::Warning,
            "token-expiring",
            "token 7001 expires in 3 days",
        ),
        finding(
            Severity::Critical,
            "role-escalated",
            "sa 12 is Admin, intended Editor",
        ),
    ];
    RunReport {
        run_id,
        kind: RunKind::Migrate,
        trigger: "cli".into(),
        started_at: Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap(),
        finished_at: Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 9).unwrap(),
        outcome: RunOutcome::Attention,
        grafana_url: "http://127.0.0.1:3000".into(),
        grafana_version: "11.5.2".into(),
        counts: Counts::tally(&orgs, &findings),
        orgs,
        findings,
        actions: vec![ActionEntry {
            at: Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 1).unwrap(),
            org_id: 1,
            action: "create-token".into(),
            subject: "{\"name\":\"etl-43\",\"sa_id\":12}".into(),
            result: "succeeded".into(),
        }],
        needs_human: vec!["org 2: rename or remove service account \"deploy\" (sa 9)".into()],
        notes: vec!["3 credentials seen in 2 orgs".into()],
    }
}

fn member(
    key_id: i64,
    name: &str,
    action: &str,
    status: MemberStatus,
    detail: &str,
) -> MemberReport {
    MemberReport {
        key_id,
        name: name.into(),
        action: action.into(),
        status,
        detail: detail.into(),
    }
}

fn finding(severity: Severity, kind: &str, detail: &str) -> FindingEntry {
    FindingEntry {
        severity,
        org_id: 1,
        kind: kind.into(),
        subject: "sa 12".into(),
        detail: detail.into(),
    }
}
