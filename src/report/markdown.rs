//! Markdown rendering of a run report, for an administrator to read.

use std::fmt::Write;

use super::{Counts, OrgReport, RunReport};
use crate::ledger::Severity;

/// Renders a report as Markdown.
///
/// Order: title and facts, "Needs a human" (when non-empty, so it is seen
/// first), summary counts, per-org tables, findings by severity, actions,
/// notes.
pub fn render_markdown(report: &RunReport) -> String {
    let mut out = String::new();
    title(&mut out, report);
    needs_human(&mut out, report);
    summary(&mut out, &report.counts);
    for org in &report.orgs {
        org_table(&mut out, org);
    }
    findings(&mut out, report);
    actions(&mut out, report);
    notes(&mut out, report);
    out
}

// `write!` into a String cannot fail; the results are ignored below.

fn title(out: &mut String, r: &RunReport) {
    let _ = writeln!(
        out,
        "# keyshift {} run {}: {}\n",
        r.kind, r.run_id, r.outcome
    );
    let _ = writeln!(
        out,
        "- Grafana: {} (version {})",
        r.grafana_url, r.grafana_version
    );
    let _ = writeln!(out, "- Trigger: {}", r.trigger);
    let _ = writeln!(
        out,
        "- Started: {}",
        r.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let seconds = (r.finished_at - r.started_at).num_seconds();
    let finished = r.finished_at.format("%Y-%m-%d %H:%M:%S UTC");
    let _ = writeln!(out, "- Finished: {finished} ({seconds} s)\n");
}

fn needs_human(out: &mut String, r: &RunReport) {
    if r.needs_human.is_empty() {
        return;
    }
    out.push_str("## Needs a human\n\n");
    for item in &r.needs_human {
        let _ = writeln!(out, "- {}", inline(item));
    }
    out.push('\n');
}

fn summary(out: &mut String, c: &Counts) {
    out.push_str("## Summary\n\n| | count |\n|---|---:|\n");
    let rows = [
        ("planned", c.planned),
        ("done", c.done),
        ("unchanged", c.unchanged),
        ("skipped", c.skipped),
        ("conflicts", c.conflicts),
        ("blocked", c.blocked),
        ("failed", c.failed),
        ("critical findings", c.findings.critical),
        ("warnings", c.findings.warning),
        ("info findings", c.findings.info),
    ];
    for (label, count) in rows {
        let _ = writeln!(out, "| {label} | {count} |");
    }
    out.push('\n');
}

fn org_table(out: &mut String, org: &OrgReport) {
    let _ = writeln!(out, "## Org {} ({})\n", org.org_id, cell(&org.org_name));
    if org.use_cases.is_empty() {
        out.push_str("Nothing to do.\n\n");
        return;
    }
    out.push_str("| use case | service account | role | member | action | status | detail |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for use_case in &org.use_cases {
        let account = use_case.service_account.as_deref().unwrap_or("—");
        let role = use_case.role.map_or("—", |r| r.as_str());
        for m in &use_case.members {
            let member = format!("{} (key {})", m.name, m.key_id);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&use_case.name),
                cell(account),
                role,
                cell(&member),
                cell(&m.action),
                m.status,
                cell(&m.detail),
            );
        }
    }
    out.push('\n');
}

fn findings(out: &mut String, r: &RunReport) {
    if r.findings.is_empty() {
        return;
    }
    out.push_str("## Findings\n\n");
    for severity in [Severity::Critical, Severity::Warning, Severity::Info] {
        let mut of_severity = r.findings.iter().filter(|f| f.severity == severity);
        let Some(first) = of_severity.next() else {
            continue;
        };
        let _ = writeln!(out, "### {}\n", heading(severity));
        for f in std::iter::once(first).chain(of_severity) {
            let _ = writeln!(
                out,
                "- org {}: **{}** {}: {}",
                f.org_id,
                inline(&f.kind),
                inline(&f.subject),
                inline(&f.detail)
            );
        }
        out.push('\n');
    }
}

fn heading(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "Critical",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
}

fn actions(out: &mut String, r: &RunReport) {
    if r.actions.is_empty() {
        // Runs this one started (a reconcile's migration) say theirs.
        out.push_str("## Actions taken\n\nThis run itself made no change to Grafana.\n\n");
        return;
    }
    out.push_str("## Actions taken\n\n| time | org | action | subject | result |\n");
    out.push_str("|---|---|---|---|---|\n");
    for a in &r.actions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            a.at.format("%H:%M:%S"),
            a.org_id,
            cell(&a.action),
            cell(&a.subject),
            cell(&a.result)
        );
    }
    out.push('\n');
}

fn notes(out: &mut String, r: &RunReport) {
    if r.notes.is_empty() {
        return;
    }
    out.push_str("## Notes\n\n");
    for note in &r.notes {
        let _ = writeln!(out, "- {}", inline(note));
    }
    out.push('\n');
}

/// Text for a table cell: pipes escaped, one line.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// Text for a list item: one line.
// Text from Grafana may hold control characters: shown escaped, never
// passed to a terminal or a Markdown renderer as they are.
fn inline(text: &str) -> String {
    crate::output::escape(&text.replace(['\r', '\n'], " ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::sample;
    use super::*;

    // The title names run, kind and outcome; "Needs a human" comes first.
    #[test]
    fn title_then_needs_human_first() {
        let text = render_markdown(&sample(7));
        assert!(
            text.starts_with("# keyshift migrate run 7: attention\n"),
            "{text}"
        );
        let human = text.find("## Needs a human").unwrap();
        let summary = text.find("## Summary").unwrap();
        assert!(human < summary);
        assert!(text.contains("rename or remove service account \"deploy\""));
    }

    // Control characters from Grafana's names reach no reader raw.
    #[test]
    fn control_characters_are_escaped() {
        let mut report = sample(7);
        report.orgs[0].use_cases[0].members[0].name = "evil\u{1b}[2Jname".into();
        let text = render_markdown(&report);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("evil\\u{1b}[2Jname"), "{text}");
    }

    // The summary table and the org tables carry every member.
    #[test]
    fn tables_show_counts_and_members() {
        let text = render_markdown(&sample(7));
        assert!(text.contains("| done | 2 |"), "{text}");
        assert!(text.contains("| conflicts | 1 |"), "{text}");
        assert!(text.contains("## Org 1 (Main Org.)"));
        assert!(
            text.contains("| etl | new | Editor | etl-2 (key 43) | reissue | done | token 7001 |")
        );
        // A pipe in a key name must not break the table.
        assert!(text.contains("old\\|backup (key 44)"), "{text}");
        assert!(
            text.contains("| deploy | — | — | deploy (key 50) |"),
            "{text}"
        );
    }

    // Findings are grouped, critical first; actions are listed.
    #[test]
    fn findings_by_severity_and_actions() {
        let text = render_markdown(&sample(7));
        let critical = text.find("### Critical").unwrap();
        let warning = text.find("### Warning").unwrap();
        assert!(critical < warning);
        assert!(!text.contains("### Info"));
        assert!(text.contains("| 10:00:01 | 1 | create-token |"), "{text}");
    }

    // A quiet run has no "Needs a human" section and says nothing changed.
    #[test]
    fn quiet_run() {
        let mut report = sample(8);
        report.needs_human.clear();
        report.actions.clear();
        let text = render_markdown(&report);
        assert!(!text.contains("Needs a human"));
        assert!(text.contains("This run itself made no change to Grafana."));
    }
}
