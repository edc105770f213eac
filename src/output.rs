//! Rendering plans and reports for a terminal.
//!
//! Names and details come from Grafana, where anyone with a key can put
//! a newline or an escape sequence in a name; every such field is shown
//! escaped so that it cannot forge lines or drive the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

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
                let account = use_case.service_account.as_deref();
                rows.push([
                    org.org_id.to_string(),
                    escape(&use_case.name).into_owned(),
                    escape(account.unwrap_or("-")).into_owned(),
                    use_case.role.map_or_else(|| "-".into(), |r| r.to_string()),
                    format!("{} ({})", escape(&member.name), member.key_id),
                    escape(&member.action).into_owned(),
                    member.status.to_string(),
                    escape(&member.detail).into_owned(),
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
        for f in findings {
            let _ = writeln!(
                out,
                "  {:<8} org {} {}: {} — {}",
                f.severity,
                f.org_id,
                escape(&f.kind),
                escape(&f.subject),
                escape(&f.detail)
            );
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {}", escape(note));
    }
    if !report.needs_human.is_empty() {
        out.push_str("needs a human:\n");
        for item in &report.needs_human {
            let _ = writeln!(out, "  - {}", escape(item));
        }
    }
    out
}

/// `text` with control characters escaped as Rust writes them (`\n`,
/// `\u{1b}`); text without any is returned as is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters, and the bidirectional overrides that reorder
/// what a terminal shows.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::sample;

    // Control characters in names and free text are escaped in the table
    // and the summary; ordinary text is left alone.
    #[test]
    fn control_characters_are_escaped() {
        let mut report = sample(1);
        let use_case = &mut report.orgs[0].use_cases[0];
        use_case.members[0].name = "newline\nname".into();
        use_case.members[0].detail = "red \u{1b}[31m".into();
        use_case.service_account = Some("tab\there".into());
        report.findings[0].subject = "sa\r\n".into();
        report.notes.push("bell\u{7}".into());
        report.needs_human.push("rtl\u{202e}txt".into());

        let out = table(&report);
        assert!(out.contains("newline\\nname (42)"), "{out}");
        assert!(out.contains("red \\u{1b}[31m"), "{out}");
        assert!(out.contains("tab\\there"), "{out}");
        assert!(out.contains("sa\\r\\n"), "{out}");
        assert!(out.contains("note: bell\\u{7}"), "{out}");
        assert!(out.contains("rtl\\u{202e}txt"), "{out}");
        let raw = out.chars().filter(|c| *c != '\n' && is_unsafe(*c));
        assert_eq!(raw.count(), 0, "{out:?}");
        assert!(out.contains("old|backup"), "plain text unchanged");
    }

    // Every row is one line however the names are written.
    #[test]
    fn rows_stay_on_one_line() {
        let mut report = sample(1);
        report.orgs[0].use_cases[0].members[1].name = "a\nb\nc".into();
        let plain = table(&sample(1));
        assert_eq!(table(&report).lines().count(), plain.lines().count());
    }
}
