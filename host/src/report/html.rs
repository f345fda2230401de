//! The report as one self-contained HTML page: inline CSS, no script, no
//! external reference of any kind, readable offline. Summary counts, failed
//! runs and input problems first, then the findings grouped by namespace
//! and severity (rule, resource, message, labels, remedy). Every piece of
//! probe text goes through `markup::escape`; the page is also well-formed
//! XML, so it can be checked with an XML parser.

use std::collections::BTreeMap;
use std::io::Write;

use super::data::{FindingRecord, ReportDocument};
use super::markup::escape;
use crate::audit::AuditReport;
use crate::bindings::Severity;

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#1d2330;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}
h2{border-bottom:1px solid #ccd;padding-bottom:.2em;margin-top:1.6em}
h3{margin:1.2em 0 .4em}
h4{margin:.8em 0 .3em;font-size:1em}
.meta{color:#556}
table{border-collapse:collapse;width:100%;margin:.3em 0 1em}
th,td{border:1px solid #dde;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#f3f4f8}
td{white-space:pre-wrap;word-break:break-word}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
.counts td,.counts th{text-align:center;width:16%}
.problems li{color:#8a1c1c;margin:.2em 0}
.ok{color:#1d6b2f}
.bad{color:#8a1c1c;font-weight:bold}
.sev{display:inline-block;min-width:5.5em;padding:.1em .4em;border-radius:.3em;color:#fff;font-weight:bold}
.sev-critical{background:#7a0d0d}
.sev-high{background:#c0392b}
.sev-medium{background:#c77c00}
.sev-low{background:#2e6da4}
.sev-info{background:#6b7280}
.labels{color:#556;font-size:.9em}
";

/// The namespace heading of findings without one.
const CLUSTER_SCOPED: &str = "(cluster-scoped)";

pub fn render(report: &AuditReport, out: &mut dyn Write) -> std::io::Result<()> {
    let doc = ReportDocument::from(report);
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n");
    page.push_str(&format!(
        "<title>Sonde audit: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&doc.source)
    ));
    page.push_str(&format!(
        "<h1>Sonde audit</h1>\n<p class=\"meta\">Source: <code>{}</code>. Started: {}. {}</p>\n",
        escape(&doc.source),
        escape(&doc.started_at),
        if doc.complete {
            "<span class=\"ok\">Complete.</span>"
        } else {
            "<span class=\"bad\">Incomplete: see the problems below.</span>"
        }
    ));
    summary(&doc, &mut page);
    problems(&doc, &mut page);
    runs(&doc, &mut page);
    findings(&doc, &mut page);
    page.push_str("</body>\n</html>\n");
    out.write_all(page.as_bytes())
}

fn summary(doc: &ReportDocument, page: &mut String) {
    page.push_str("<h2>Summary</h2>\n<table class=\"counts\"><tr>");
    for s in Severity::ALL.iter().rev() {
        page.push_str(&format!(
            "<th><span class=\"sev sev-{0}\">{0}</span></th>",
            s.as_str()
        ));
    }
    page.push_str("<th>total</th></tr>\n<tr>");
    for s in Severity::ALL.iter().rev() {
        let n = doc.summary.get(s.as_str()).copied().unwrap_or(0);
        page.push_str(&format!("<td>{n}</td>"));
    }
    let total = doc.summary.get("total").copied().unwrap_or(0);
    page.push_str(&format!("<td>{total}</td></tr></table>\n"));
    if let Some(score) = &doc.score {
        page.push_str(&format!(
            "<h2>Score</h2>\n<p class=\"meta\">Cluster: <code>{}/100</code> over {} objects.</p>\n",
            score.cluster.score, score.cluster.objects
        ));
        page.push_str(
            "<table class=\"counts\"><tr><th>namespace</th><th>score</th><th>objects</th><th>with findings</th><th>findings</th></tr>\n",
        );
        for (ns, s) in &score.namespaces {
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(ns),
                s.score,
                s.objects,
                s.affected,
                s.findings
            ));
        }
        page.push_str("</table>\n");
    }
    if !doc.exempted.is_empty() {
        page.push_str(
            "<h2>Exempted</h2>\n<table class=\"counts\"><tr><th>rule</th><th>resource</th><th>reason</th></tr>\n"
        );
        for e in &doc.exempted {
            let resource = match &e.namespace {
                Some(ns) => format!("{ns}/{}/{}", e.kind, e.name),
                None => format!("{}/{}", e.kind, e.name),
            };
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(&e.rule),
                escape(&resource),
                escape(&e.reason)
            ));
        }
        page.push_str("</table>\n");
    }
}

fn problems(doc: &ReportDocument, page: &mut String) {
    let failed: Vec<_> = doc
        .runs
        .iter()
        .filter(|r| r.status != "succeeded")
        .collect();
    if failed.is_empty() && doc.input_issues.is_empty() {
        return;
    }
    page.push_str("<h2>Problems</h2>\n<ul class=\"problems\">\n");
    for run in failed {
        page.push_str(&format!(
            "<li>Probe <code>{}</code> failed: {}</li>\n",
            escape(&run.probe),
            escape(run.reason.as_deref().unwrap_or("no reason given"))
        ));
    }
    for issue in &doc.input_issues {
        page.push_str(&format!("<li>Input problem: {}</li>\n", escape(issue)));
    }
    page.push_str("</ul>\n");
}

fn runs(doc: &ReportDocument, page: &mut String) {
    page.push_str("<h2>Probe runs</h2>\n<table>\n<tr><th>Probe</th><th>Version</th><th>Status</th><th>Duration</th><th>Findings</th><th>Denied calls</th></tr>\n");
    for run in &doc.runs {
        let class = if run.status == "succeeded" {
            "ok"
        } else {
            "bad"
        };
        page.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"{class}\">{}</td><td>{:.1} ms</td><td>{}</td><td>{}</td></tr>\n",
            escape(&run.probe),
            escape(&run.version),
            escape(&run.status),
            run.duration_ms,
            run.findings,
            run.denials.len()
        ));
    }
    page.push_str("</table>\n");
}

fn findings(doc: &ReportDocument, page: &mut String) {
    page.push_str("<h2>Findings</h2>\n");
    if doc.findings.is_empty() {
        page.push_str("<p>No findings.</p>\n");
        return;
    }
    // namespace -> severity rank -> findings; cluster-scoped first.
    let mut groups: BTreeMap<Option<&str>, BTreeMap<u8, Vec<&FindingRecord>>> = BTreeMap::new();
    for f in &doc.findings {
        groups
            .entry(f.namespace.as_deref())
            .or_default()
            .entry(f.severity_rank())
            .or_default()
            .push(f);
    }
    for (namespace, by_severity) in groups {
        let n: usize = by_severity.values().map(Vec::len).sum();
        let heading = match namespace {
            Some(ns) => format!("Namespace <code>{}</code>", escape(ns)),
            None => CLUSTER_SCOPED.into(),
        };
        page.push_str(&format!("<section>\n<h3>{heading} ({n})</h3>\n"));
        for (_, mut list) in by_severity.into_iter().rev() {
            list.sort_by(|a, b| (&a.kind, &a.name, &a.rule).cmp(&(&b.kind, &b.name, &b.rule)));
            let severity = escape(&list[0].severity);
            page.push_str(&format!(
                "<h4><span class=\"sev sev-{severity}\">{severity}</span> ({})</h4>\n<table>\n<tr><th>Rule</th><th>Resource</th><th>Message</th><th>Remedy</th></tr>\n",
                list.len()
            ));
            for f in list {
                row(f, page);
            }
            page.push_str("</table>\n");
        }
        page.push_str("</section>\n");
    }
}

fn row(f: &FindingRecord, page: &mut String) {
    let resource = if f.has_resource() {
        format!("{}/{}", escape(&f.kind), escape(&f.name))
    } else {
        "the cluster".into()
    };
    let labels: Vec<String> = f
        .labels
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("\n<span class=\"labels\">{}</span>", labels.join(", "))
    };
    page.push_str(&format!(
        "<tr><td><code>{}</code><br /><span class=\"labels\">{}</span></td><td><code>{resource}</code></td><td>{}{labels}</td><td>{}</td></tr>\n",
        escape(&f.rule),
        escape(&f.probe),
        escape(&f.message),
        escape(f.remedy.as_deref().unwrap_or(""))
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{add_failed_run, finding, report};

    const XSS: &str = "<script>alert(1)</script><img src=x onerror=\"alert('2')\">";

    fn page(r: &AuditReport) -> String {
        let mut out = Vec::new();
        render(r, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn groups_by_namespace_then_severity() {
        let mut low = finding(
            "workload-audit",
            "NoPriorityClassName",
            Some("shop"),
            "Deployment",
            "web",
            &[],
        );
        low.1.severity = Severity::Low;
        let r = report(vec![
            low,
            finding(
                "workload-audit",
                "NoCPULimits",
                Some("shop"),
                "Deployment",
                "web",
                &[],
            ),
            finding("node-audit", "NodeNotReady", None, "Node", "node-3", &[]),
        ]);
        let html = page(&r);
        let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(at(CLUSTER_SCOPED) < at("Namespace <code>shop</code>"));
        assert!(
            at("NoCPULimits") < at("NoPriorityClassName"),
            "medium before low"
        );
        assert!(html.contains(
            "<td><code>Deployment/web</code></td><td>NoCPULimits on web</td><td>fix web</td>"
        ));
        assert!(
            html.contains("<td>0</td><td>0</td><td>2</td><td>1</td><td>0</td><td>3</td>"),
            "counts: {html}"
        );
        assert!(!html.contains("Problems"));
    }

    #[test]
    fn probe_text_is_escaped_everywhere_and_nothing_is_external() {
        let mut f = finding(XSS, XSS, Some(XSS), XSS, XSS, &[(XSS, XSS)]);
        f.1.message = XSS.into();
        f.1.remedy = Some(format!("{XSS}\u{1b}[31m\u{0}"));
        let mut r = report(vec![f]);
        r.source = XSS.into();
        r.input_issues.push(XSS.into());
        add_failed_run(&mut r, XSS, XSS);
        let html = page(&r);
        for raw in [
            "<script",
            "<img",
            "onerror=\"",
            "http://",
            "https://",
            "url(",
            "@import",
        ] {
            assert!(!html.contains(raw), "{raw} in {html}");
        }
        // Parsed, the page has only its own elements and attributes: the payload stayed text.
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let tree = roxmltree::Document::parse_with_options(&html, options).unwrap();
        for node in tree.descendants().filter(|n| n.is_element()) {
            assert!(
                !matches!(
                    node.tag_name().name(),
                    "script" | "img" | "link" | "iframe" | "object"
                ),
                "{node:?}"
            );
            for a in node.attributes() {
                assert!(matches!(a.name(), "lang" | "charset" | "class"), "{a:?}");
            }
        }
        let texts: String = tree.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains(XSS), "the payload reads as text");
        assert!(!html.chars().any(|c| c.is_control() && c != '\n'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            html.contains("Probe <code>&lt;script&gt;"),
            "failed run shown"
        );
        assert!(html.contains("Input problem: &lt;script&gt;"));
    }
}
