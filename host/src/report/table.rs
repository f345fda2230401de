//! The terminal table, in the shape of KubeEye's `ke audit`: one row per
//! resource (NAMESPACE, NAME, KIND) with its messages, most severe first.
//! Control characters from probe output are shown escaped, never sent to
//! the terminal.

use std::collections::BTreeMap;
use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};

use crate::audit::AuditReport;
use crate::bindings::Finding;

/// Replaces control characters (ANSI escapes, carriage returns, newlines) with visible escapes.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn render(report: &AuditReport, out: &mut dyn Write) -> std::io::Result<()> {
    // (namespace, kind, name) -> findings
    let mut groups: BTreeMap<(String, String, String), Vec<&Finding>> = BTreeMap::new();
    for (_, f) in report.findings() {
        let key = match &f.resource {
            Some(r) => (
                r.namespace.clone().unwrap_or_default(),
                r.kind.clone(),
                r.name.clone(),
            ),
            None => (String::new(), "Cluster".into(), "-".into()),
        };
        groups.entry(key).or_default().push(f);
    }
    if groups.is_empty() {
        writeln!(out, "No findings.")?;
    } else {
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(["NAMESPACE", "NAME", "KIND", "MESSAGE"]);
        for ((ns, kind, name), mut findings) in groups {
            findings.sort_by(|a, b| {
                b.severity
                    .rank()
                    .cmp(&a.severity.rank())
                    .then(a.rule.cmp(&b.rule))
            });
            let messages: Vec<String> = findings
                .iter()
                .map(|f| {
                    format!(
                        "[{}] {}: {}",
                        f.severity,
                        terminal_safe(&f.rule),
                        terminal_safe(&f.message)
                    )
                })
                .collect();
            table.add_row([
                terminal_safe(&ns),
                terminal_safe(&name),
                terminal_safe(&kind),
                messages.join("\n"),
            ]);
        }
        writeln!(out, "{table}")?;
    }
    let counts: Vec<String> = report
        .counts()
        .iter()
        .rev()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    writeln!(out)?;
    writeln!(
        out,
        "{} findings{} from {} probe run(s) on {}",
        report.findings().count(),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        },
        report.runs.len(),
        terminal_safe(&report.source)
    )?;
    for run in report.runs.iter().filter(|r| !r.succeeded()) {
        let reason = run
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        writeln!(
            out,
            "probe {} FAILED: {}",
            terminal_safe(&run.probe),
            terminal_safe(&reason)
        )?;
    }
    for issue in &report.input_issues {
        writeln!(out, "input problem: {}", terminal_safe(issue))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn escapes_reach_the_terminal_escaped() {
        assert_eq!(
            terminal_safe("a\u{1b}[31mred\r\nb"),
            "a\\u{1b}[31mred\\r\\nb"
        );
        assert_eq!(terminal_safe("plain ünïcode"), "plain ünïcode");
    }
}
