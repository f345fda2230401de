//! The terminal table, in the shape of KubeEye's `ke audit`: the resources
//! (NAMESPACE, NAME, KIND, MESSAGE: one row per resource, most severe
//! first), then the events, nodes (and their kernel problems) and
//! control-plane components, each table only when it has rows, routed by
//! the rule's category; then the summary.
//! Control characters from probe output are shown escaped, never sent to
//! the terminal.

use std::collections::BTreeMap;
use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};

use super::data::{FindingRecord, ReportDocument};
use crate::audit::AuditReport;

/// The category of event findings (probe `event-audit`).
pub const EVENTS: &str = "events";
/// The category of node findings (probe `node-audit`).
pub const NODES: &str = "nodes";
/// The category of kernel problems on nodes (probe `kernel-audit`), shown in the nodes table.
pub const KERNEL: &str = "kernel";
/// The category of control-plane findings (probe `control-plane-audit`).
pub const CONTROL_PLANE: &str = "control-plane";

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

fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// Most severe first, then by `key`.
fn sorted<K: Ord>(
    mut findings: Vec<&FindingRecord>,
    key: impl Fn(&FindingRecord) -> K,
) -> Vec<&FindingRecord> {
    findings.sort_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then(b.severity_rank().cmp(&a.severity_rank()))
            .then(a.rule.cmp(&b.rule))
    });
    findings
}

/// A label, else `fallback`, made terminal-safe.
fn label_or(f: &FindingRecord, keys: &[&str], fallback: &str) -> String {
    let value = keys.iter().find_map(|k| f.label(k)).unwrap_or(fallback);
    terminal_safe(value)
}

/// NAMESPACE NAME KIND MESSAGE: one row per resource, its messages most severe first.
fn resources_table(findings: &[&FindingRecord]) -> Option<Table> {
    let mut groups: BTreeMap<(String, String, String), Vec<&FindingRecord>> = BTreeMap::new();
    for f in findings {
        let key = if f.has_resource() {
            (
                f.namespace.clone().unwrap_or_default(),
                f.kind.clone(),
                f.name.clone(),
            )
        } else {
            (String::new(), "Cluster".into(), "-".into())
        };
        groups.entry(key).or_default().push(f);
    }
    if groups.is_empty() {
        return None;
    }
    let mut table = new_table(&["NAMESPACE", "NAME", "KIND", "MESSAGE"]);
    for ((ns, kind, name), group) in groups {
        let messages: Vec<String> = sorted(group, |_| ())
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
    Some(table)
}

/// NAMESPACE SEVERITY PODNAME EVENTTIME REASON MESSAGE.
fn events_table(findings: &[&FindingRecord]) -> Option<Table> {
    if findings.is_empty() {
        return None;
    }
    let mut table = new_table(&[
        "NAMESPACE",
        "SEVERITY",
        "PODNAME",
        "EVENTTIME",
        "REASON",
        "MESSAGE",
    ]);
    let rows = sorted(findings.to_vec(), |f| {
        (f.namespace.clone(), f.name.clone(), f.kind.clone())
    });
    for f in rows {
        // Events about other objects than pods name the kind, so a Job is not read as a pod.
        let object = if f.kind == "Pod" || f.kind.is_empty() {
            f.name.clone()
        } else {
            format!("{}/{}", f.kind, f.name)
        };
        table.add_row([
            terminal_safe(f.namespace.as_deref().unwrap_or("")),
            f.severity.clone(),
            terminal_safe(&object),
            label_or(f, &["time", "last"], "-"),
            label_or(f, &["reason"], &f.rule),
            terminal_safe(&f.message),
        ]);
    }
    Some(table)
}

/// NODENAME SEVERITY HEARTBEATTIME REASON MESSAGE.
fn nodes_table(findings: &[&FindingRecord]) -> Option<Table> {
    if findings.is_empty() {
        return None;
    }
    let mut table = new_table(&["NODENAME", "SEVERITY", "HEARTBEATTIME", "REASON", "MESSAGE"]);
    let node_of = |f: &FindingRecord| match f.label("node") {
        Some(node) if f.kind != "Node" => node.to_string(),
        _ => f.name.clone(),
    };
    for f in sorted(findings.to_vec(), node_of) {
        table.add_row([
            terminal_safe(&node_of(f)),
            f.severity.clone(),
            label_or(f, &["heartbeat", "time"], "-"),
            label_or(f, &["reason"], &f.rule),
            terminal_safe(&f.message),
        ]);
    }
    Some(table)
}

/// NAME SEVERITY TIME MESSAGE.
fn components_table(findings: &[&FindingRecord]) -> Option<Table> {
    if findings.is_empty() {
        return None;
    }
    let mut table = new_table(&["NAME", "SEVERITY", "TIME", "MESSAGE"]);
    // The pod (which of several schedulers), else the component, else the rule.
    let name_of = |f: &FindingRecord| {
        if f.has_resource() {
            f.name.clone()
        } else {
            f.label("component").unwrap_or(&f.rule).to_string()
        }
    };
    for f in sorted(findings.to_vec(), name_of) {
        table.add_row([
            terminal_safe(&name_of(f)),
            f.severity.clone(),
            label_or(f, &["time"], "-"),
            terminal_safe(&f.message),
        ]);
    }
    Some(table)
}

pub fn render(report: &AuditReport, out: &mut dyn Write) -> std::io::Result<()> {
    let doc = ReportDocument::from(report);
    let in_category = |categories: &[&str]| -> Vec<&FindingRecord> {
        doc.findings
            .iter()
            .filter(|f| {
                f.category
                    .as_deref()
                    .is_some_and(|c| categories.contains(&c))
            })
            .collect()
    };
    let resources: Vec<&FindingRecord> = doc
        .findings
        .iter()
        .filter(|f| {
            !matches!(
                f.category.as_deref(),
                Some(EVENTS | NODES | KERNEL | CONTROL_PLANE)
            )
        })
        .collect();
    let tables: Vec<Table> = [
        resources_table(&resources),
        events_table(&in_category(&[EVENTS])),
        nodes_table(&in_category(&[NODES, KERNEL])),
        components_table(&in_category(&[CONTROL_PLANE])),
    ]
    .into_iter()
    .flatten()
    .collect();
    if tables.is_empty() {
        writeln!(out, "No findings.")?;
    }
    for (i, table) in tables.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{table}")?;
    }
    summary(report, out)
}

/// The closing lines: counts per severity, failed runs, input problems.
fn summary(report: &AuditReport, out: &mut dyn Write) -> std::io::Result<()> {
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
    if let Some(score) = &report.score {
        let namespaces: Vec<String> = score
            .namespaces
            .iter()
            .map(|(ns, s)| format!("{} {}", terminal_safe(ns), s.score))
            .collect();
        writeln!(
            out,
            "score: cluster {}/100{}",
            score.cluster.score,
            if namespaces.is_empty() {
                String::new()
            } else {
                format!("; {}", namespaces.join(", "))
            }
        )?;
    }
    if !report.exempted.is_empty() {
        writeln!(
            out,
            "{} finding(s) exempted (listed with their reasons in -o json)",
            report.exempted.len()
        )?;
    }
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
    for (probe, line) in report.run_errors() {
        writeln!(
            out,
            "probe {} ERROR: {}",
            terminal_safe(probe),
            terminal_safe(&line.message)
        )?;
    }
    for issue in &report.input_issues {
        writeln!(out, "input problem: {}", terminal_safe(issue))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{finding, report};

    #[test]
    fn escapes_reach_the_terminal_escaped() {
        assert_eq!(
            terminal_safe("a\u{1b}[31mred\r\nb"),
            "a\\u{1b}[31mred\\r\\nb"
        );
        assert_eq!(terminal_safe("plain ünïcode"), "plain ünïcode");
    }

    fn rendered(r: &AuditReport) -> String {
        let mut out = Vec::new();
        render(r, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_category_has_its_table_only_when_it_has_rows() {
        let only_workloads = report(vec![finding(
            "workload-audit",
            "NoCPULimits",
            Some("shop"),
            "Deployment",
            "web",
            &[],
        )]);
        let text = rendered(&only_workloads);
        assert!(text.trim_start().starts_with("NAMESPACE"), "{text}");
        for absent in ["PODNAME", "NODENAME", "HEARTBEATTIME", "EVENTTIME"] {
            assert!(!text.contains(absent), "{text}");
        }

        let all = report(vec![
            finding(
                "event-audit",
                "EventBackOff",
                Some("shop"),
                "Pod",
                "web-1",
                &[("reason", "BackOff"), ("time", "2026-11-22T18:21:13Z")],
            ),
            finding(
                "event-audit",
                "EventWarning",
                Some("shop"),
                "Job",
                "migrate",
                &[("reason", "BackoffLimitExceeded")],
            ),
            finding(
                "node-audit",
                "NodeStatusUnknown",
                None,
                "Node",
                "node-3",
                &[
                    ("heartbeat", "2026-11-22T17:57:46Z"),
                    ("reason", "NodeStatusUnknown"),
                ],
            ),
            finding(
                "kernel-audit",
                "NodeOOM",
                None,
                "Node",
                "node-2",
                &[("reason", "OOMKilling"), ("time", "2026-11-22T18:11:43Z")],
            ),
            finding(
                "control-plane-audit",
                "SchedulerHealth",
                Some("kube-system"),
                "Pod",
                "kube-scheduler-node-1",
                &[("time", "2026-11-27T17:09:59Z")],
            ),
        ]);
        let text = rendered(&all);
        assert!(!text.contains("KIND"), "no resource table: {text}");
        let line = |needle: &str| {
            text.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in {text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("PODNAME"),
            [
                "NAMESPACE",
                "SEVERITY",
                "PODNAME",
                "EVENTTIME",
                "REASON",
                "MESSAGE"
            ]
        );
        assert_eq!(
            line("web-1")[..5],
            ["shop", "medium", "web-1", "2026-11-22T18:21:13Z", "BackOff"]
        );
        assert_eq!(
            line("Job/migrate")[..5],
            ["shop", "medium", "Job/migrate", "-", "BackoffLimitExceeded"]
        );
        assert_eq!(
            line("NODENAME"),
            ["NODENAME", "SEVERITY", "HEARTBEATTIME", "REASON", "MESSAGE"]
        );
        assert_eq!(
            line("node-3")[..4],
            [
                "node-3",
                "medium",
                "2026-11-22T17:57:46Z",
                "NodeStatusUnknown"
            ]
        );
        let components = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&"NAME"));
        assert_eq!(
            components.unwrap_or_default(),
            ["NAME", "SEVERITY", "TIME", "MESSAGE"]
        );
        assert_eq!(
            line("kube-scheduler-node-1")[..3],
            ["kube-scheduler-node-1", "medium", "2026-11-27T17:09:59Z"]
        );
        assert_eq!(
            line("node-2")[..4],
            ["node-2", "medium", "2026-11-22T18:11:43Z", "OOMKilling"]
        );
        assert!(
            text.contains("5 findings (5 medium) from 4 probe run(s)"),
            "{text}"
        );
    }

    #[test]
    fn probe_text_is_escaped_in_every_table() {
        let r = report(vec![
            finding(
                "event-audit",
                "EventWarning",
                Some("ns\u{1b}[2J"),
                "Pod",
                "p\r\n",
                &[("reason", "R\u{7}"), ("time", "t\u{1b}")],
            ),
            finding(
                "node-audit",
                "NodeNotReady",
                None,
                "Node",
                "n\u{1b}",
                &[("reason", "x\u{8}")],
            ),
        ]);
        let text = rendered(&r);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("ns\\u{1b}[2J") && text.contains("p\\r\\n"));
    }
}
