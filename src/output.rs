//! Rendering plans and reports for a terminal.

use crate::report::RunReport;

/// Renders a run report as an aligned text table, one row per member.
pub fn table(report: &RunReport) -> String {
    let header = [
        "ORG",
        "USE CASE",
        "ACCOUNT",
        "ROLE",
        "CREDENTIAL",
        "ACTION",
        "STATUS",
        "DETAIL",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    for org in &report.orgs {
        for use_case in &org.use_cases {
            for member in &use_case.members {
                rows.push([
                    org.org_id.to_string(),
                    use_case.name.clone(),
                    use_case
                        .service_account
                        .clone()
                        .unwrap_or_else(|| "-".into()),
                    use_case.role.map_or_else(|| "-".into(), |r| r.to_string()),
                    format!("{} ({})", member.name, member.key_id),
                    member.action.clone(),
                    member.status.to_string(),
                    member.detail.clone(),
                ]);
            }
        }
    }
    let mut out = align(&header, &rows);
    out.push('\n');
    out.push_str(&summary(report));
    out
}

fn align(header: &[&str; 8], rows: &[[String; 8]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            // The last column is not padded: it is free text.
            .map(|(i, (c, w))| {
                if i == 7 {
                    c.to_string()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One paragraph of counts and what needs a human.
pub fn summary(report: &RunReport) -> String {
    let c = &report.counts;
    let mut out = format!(
        "{} run {} ({}): {} planned, {} done, {} unchanged, {} skipped, {} in conflict, \
         {} blocked, {} failed\n",
        report.kind,
        report.run_id,
        report.outcome,
        c.planned,
        c.done,
        c.unchanged,
        c.skipped,
        c.conflicts,
        c.blocked,
        c.failed
    );
    if !report.findings.is_empty() {
        let f = &c.findings;
        out.push_str(&format!(
            "findings: {} critical, {} warning, {} info\n",
            f.critical, f.warning, f.info
        ));
        let mut findings: Vec<_> = report.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for finding in findings {
            out.push_str(&format!(
                "  {:<8} org {} {}: {} — {}\n",
                finding.severity, finding.org_id, finding.kind, finding.subject, finding.detail
            ));
        }
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    if !report.needs_human.is_empty() {
        out.push_str("needs a human:\n");
        for item in &report.needs_human {
            out.push_str(&format!("  - {item}\n"));
        }
    }
    out
}
