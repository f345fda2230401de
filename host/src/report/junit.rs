//! The report as JUnit XML, for CI dashboards: one `<testsuite>` per probe
//! run, one `<testcase>` per (rule, resource) with a `<failure>` carrying
//! its messages, a passing `<testcase>` per declared rule that found
//! nothing, and an `<error>` for a failed run or an input problem. Text is
//! escaped by `markup::escape`, which also drops what XML 1.0 forbids.

use std::fmt::Write as _;
use std::io::Write;

use super::data::{FindingRecord, ReportDocument, RunRecord};
use super::markup::escape;
use crate::audit::AuditReport;

/// The catch-all rule id of probes whose rules come from their config.
const ANY_RULE: &str = "*";

/// One `<testcase>`: a rule on one resource and its findings (none when it passed).
struct Case<'a> {
    rule: &'a str,
    resource: Option<String>,
    findings: Vec<&'a FindingRecord>,
}

/// Counts of one suite or of all of them.
#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    seconds: f64,
}

impl Counts {
    fn attributes(&self) -> String {
        format!(
            "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.3}\"",
            self.tests, self.failures, self.errors, self.seconds
        )
    }

    fn add(&mut self, other: &Counts) {
        self.tests += other.tests;
        self.failures += other.failures;
        self.errors += other.errors;
        self.seconds += other.seconds;
    }
}

fn cases<'a>(
    report: &'a AuditReport,
    run: &RunRecord,
    findings: &'a [FindingRecord],
) -> Vec<Case<'a>> {
    let mut cases: Vec<Case> = Vec::new();
    for f in findings {
        let resource = f.has_resource().then(|| f.resource_path());
        match cases
            .iter_mut()
            .find(|c| c.rule == f.rule && c.resource == resource)
        {
            Some(c) => c.findings.push(f),
            None => cases.push(Case {
                rule: &f.rule,
                resource,
                findings: vec![f],
            }),
        }
    }
    if run.status == "succeeded" {
        let declared = report
            .probes
            .iter()
            .find(|p| p.name == run.probe)
            .map(|p| p.rules.as_slice())
            .unwrap_or_default();
        for rule in declared.iter().filter(|r| r.id != ANY_RULE) {
            if !findings.iter().any(|f| f.rule == rule.id) {
                cases.push(Case {
                    rule: &rule.id,
                    resource: None,
                    findings: Vec::new(),
                });
            }
        }
    }
    cases
}

fn write_case(xml: &mut String, probe: &str, case: &Case) {
    let name = match &case.resource {
        Some(r) => format!("{} {r}", case.rule),
        None => case.rule.to_string(),
    };
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\"",
        escape(probe),
        escape(&name)
    );
    let Some(worst) = case.findings.iter().max_by_key(|f| f.severity_rank()) else {
        xml.push_str(" />\n");
        return;
    };
    let message = match case.findings.as_slice() {
        [one] => one.message.clone(),
        many => format!(
            "{} findings: {}",
            many.len(),
            many.iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let mut body = String::new();
    for f in &case.findings {
        let _ = writeln!(body, "[{}] {}", f.severity, f.message);
        if let Some(remedy) = &f.remedy {
            let _ = writeln!(body, "remedy: {remedy}");
        }
        if !f.labels.is_empty() {
            let labels: Vec<String> = f.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(body, "labels: {}", labels.join(", "));
        }
    }
    let _ = write!(
        xml,
        ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
        escape(&message),
        escape(&worst.severity),
        escape(&body)
    );
}

fn write_error_case(xml: &mut String, classname: &str, name: &str, kind: &str, message: &str) {
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\">\n      <error message=\"{}\" type=\"{kind}\">{}</error>\n    </testcase>\n",
        escape(classname),
        escape(name),
        escape(message),
        escape(message)
    );
}

/// The JUnit XML document of `report`.
pub fn document(report: &AuditReport) -> String {
    let doc = ReportDocument::from(report);
    let mut suites = String::new();
    let mut total = Counts::default();
    for (run, findings) in doc.runs_with_findings() {
        let cases = cases(report, run, findings);
        let failed = run.status != "succeeded";
        let counts = Counts {
            tests: cases.len() + usize::from(failed),
            failures: cases.iter().filter(|c| !c.findings.is_empty()).count(),
            errors: usize::from(failed),
            seconds: run.duration_ms / 1000.0,
        };
        let _ = write!(
            suites,
            "  <testsuite name=\"{}\" {}>\n    <properties>\n      <property name=\"version\" value=\"{}\" />\n      <property name=\"runId\" value=\"{}\" />\n    </properties>\n",
            escape(&run.probe),
            counts.attributes(),
            escape(&run.version),
            escape(&run.run_id)
        );
        if failed {
            let reason = run.reason.as_deref().unwrap_or("no reason given");
            write_error_case(&mut suites, &run.probe, "probe run", "run failed", reason);
        }
        for case in &cases {
            write_case(&mut suites, &run.probe, case);
        }
        suites.push_str("  </testsuite>\n");
        total.add(&counts);
    }
    if !doc.input_issues.is_empty() {
        let counts = Counts {
            tests: doc.input_issues.len(),
            errors: doc.input_issues.len(),
            ..Default::default()
        };
        let _ = writeln!(
            suites,
            "  <testsuite name=\"input\" {}>",
            counts.attributes()
        );
        for (i, issue) in doc.input_issues.iter().enumerate() {
            let name = format!("input problem {}", i + 1);
            write_error_case(&mut suites, "input", &name, "input problem", issue);
        }
        suites.push_str("  </testsuite>\n");
        total.add(&counts);
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"sonde audit of {}\" {}>\n{suites}</testsuites>\n",
        escape(&doc.source),
        total.attributes()
    )
}

pub fn render(report: &AuditReport, out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(document(report).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{add_failed_run, finding, report, rule};

    fn parsed(xml: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
    }

    fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
        node.attribute(name)
            .unwrap_or_else(|| panic!("{name} on {node:?}"))
    }

    #[test]
    fn one_case_per_rule_and_resource_with_counts() {
        let mut r = report(vec![
            finding(
                "workload-audit",
                "NoCPULimits",
                Some("shop"),
                "Deployment",
                "web",
                &[],
            ),
            finding(
                "workload-audit",
                "NoCPULimits",
                Some("shop"),
                "Deployment",
                "web",
                &[("container", "b")],
            ),
            finding(
                "workload-audit",
                "NoCPULimits",
                Some("shop"),
                "Job",
                "migrate",
                &[],
            ),
        ]);
        r.probes[0].rules.push(rule(
            "NoLivenessProbe",
            "workloads",
            crate::bindings::Severity::Low,
        ));
        add_failed_run(&mut r, "broken", "boom");
        r.input_issues.push("bad.yaml:4: invalid YAML".into());
        let xml = document(&r);
        let tree = parsed(&xml);
        let root = tree.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        assert_eq!(
            ["tests", "failures", "errors"].map(|a| attr(root, a)),
            ["5", "2", "2"],
            "{xml}"
        );
        let suites: Vec<_> = root
            .children()
            .filter(|n| n.has_tag_name("testsuite"))
            .collect();
        assert_eq!(
            suites.iter().map(|s| attr(*s, "name")).collect::<Vec<_>>(),
            ["workload-audit", "broken", "input"]
        );
        assert_eq!(
            ["tests", "failures", "errors"].map(|a| attr(suites[0], a)),
            ["3", "2", "0"]
        );
        let cases: Vec<_> = suites[0]
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(attr(cases[0], "name"), "NoCPULimits shop/Deployment/web");
        let failure = cases[0]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            attr(failure, "message"),
            "2 findings: NoCPULimits on web; NoCPULimits on web"
        );
        assert!(failure.text().unwrap().contains("labels: container=b"));
        assert_eq!(attr(cases[2], "name"), "NoLivenessProbe");
        assert!(
            cases[2].first_element_child().is_none(),
            "a rule that found nothing passes"
        );
        let error = suites[1]
            .descendants()
            .find(|n| n.has_tag_name("error"))
            .unwrap();
        assert_eq!(attr(error, "message"), "the probe panicked: boom");
        assert_eq!(["tests", "errors"].map(|a| attr(suites[2], a)), ["1", "1"]);
    }

    #[test]
    fn markup_and_forbidden_characters_never_reach_the_xml() {
        let evil = "<script>alert(1)</script>\"'&\u{0}\u{1b}[31m\u{FFFF}";
        let mut f = finding(evil, evil, Some(evil), evil, evil, &[(evil, evil)]);
        f.1.message = evil.into();
        let mut r = report(vec![f]);
        r.source = evil.into();
        add_failed_run(&mut r, evil, evil);
        r.input_issues.push(evil.into());
        let xml = document(&r);
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}') && !xml.contains('\u{FFFF}'));
        let tree = parsed(&xml);
        let failure = tree
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            attr(failure, "message"),
            "<script>alert(1)</script>\"'&\u{FFFD}\u{FFFD}[31m\u{FFFD}"
        );
        assert!(tree.descendants().all(|n| !n.has_tag_name("script")));
    }
}
