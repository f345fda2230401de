//! Every report format of the fixture audit (all built-in probes over the
//! real API server's dump), read back with a real parser: SARIF validated
//! against the official SARIF 2.1.0 schema, JUnit and HTML parsed as XML,
//! the table with KubeEye's four headers; and the same through the binary.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, OnceLock};

use sonde::audit::{self, AuditReport, ProbeSource};
use sonde::caps::HostServices;
use sonde::kube::SnapshotBackend;
use sonde::report::{self, Format};

use crate::cli::sonde;
use crate::{runtime, shared_fixture};

/// The fixture audited once per test process by every built-in probe.
fn fixture_report() -> &'static AuditReport {
    static REPORT: OnceLock<AuditReport> = OnceLock::new();
    REPORT.get_or_init(|| audit_all(&shared_fixture("snapshot-dump.yaml")))
}

/// A snapshot audited by every built-in probe, each run asserted to succeed.
fn audit_all(snapshot: &std::path::Path) -> AuditReport {
    {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let snap = SnapshotBackend::load(snapshot).unwrap();
            assert!(snap.issues().is_empty(), "{:?}", snap.issues());
            let services = Arc::new(HostServices {
                kube: Some(Arc::new(snap)),
                ..Default::default()
            });
            let mut probes = Vec::new();
            for p in sonde::builtin::all() {
                let source = ProbeSource::Builtin(p.name);
                let prepared =
                    audit::prepare(runtime(), &source, None, "{}".into(), Default::default())
                        .await
                        .unwrap_or_else(|e| panic!("{}: {e}", p.name));
                probes.push(prepared);
            }
            let report =
                audit::run_audit(runtime(), services, &probes, "fixture".into(), vec![]).await;
            let failed: Vec<_> = report
                .runs
                .iter()
                .filter(|r| !r.succeeded())
                .map(|r| (&r.probe, &r.reason))
                .collect();
            assert!(failed.is_empty(), "{failed:?}");
            report
        })
    }
}

#[track_caller]
fn rendered(report: &AuditReport, format: Format) -> String {
    let mut out = Vec::new();
    report::render(report, format, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn sarif_validator() -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sarif-schema-2.1.0.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    // The official schema's `language` patterns (of `run` and `toolComponent`)
    // have a stray `]`, a literal in ECMAScript's legacy syntax that the
    // meta-schema's `regex` format check refuses; escaped, it means the same.
    for definition in ["run", "toolComponent"] {
        let language = &mut schema["definitions"][definition]["properties"]["language"]["pattern"];
        assert_eq!(language, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
        *language = r"^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\]?$".into();
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[track_caller]
fn assert_valid_sarif(text: &str) -> serde_json::Value {
    let log: serde_json::Value = serde_json::from_str(text).unwrap();
    let validator = sarif_validator();
    let errors: Vec<String> = validator
        .iter_errors(&log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not valid SARIF 2.1.0: {errors:#?}");
    log
}

#[test]
fn sarif_of_the_fixture_is_valid_sarif_2_1_0() {
    let report = fixture_report();
    let log = assert_valid_sarif(&rendered(report, Format::Sarif));
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "sonde");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "rule ids are unique"
    );
    let declared: usize = report
        .probes
        .iter()
        .flat_map(|p| &p.rules)
        .filter(|r| r.id != "*")
        .count();
    assert!(rules.len() >= declared, "every declared rule is listed");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings().count());
    for r in results {
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"], "ruleIndex points at its rule");
    }
    let web = results
        .iter()
        .find(|r| {
            r["ruleId"] == "workload-audit/ImageTagIsLatest"
                && r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
                    == "shop/Deployment/web"
        })
        .expect("the latest-tag finding on shop/web");
    assert_eq!(web["properties"]["apiVersion"], "apps/v1");
    assert_eq!(web["properties"]["probe"], "workload-audit");
    let levels: BTreeSet<&str> = results
        .iter()
        .map(|r| r["level"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels,
        ["error", "note", "warning"].into(),
        "the fixture has every level"
    );
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
}

#[test]
fn sarif_schema_rejects_what_is_not_sarif() {
    // The validator is not vacuous: a log without `version`, a result without `message`.
    let validator = sarif_validator();
    assert!(!validator.is_valid(&serde_json::json!({"runs": []})));
    let bad = serde_json::json!({"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "sonde"}},
        "results": [{"ruleId": "x"}],
    }]});
    assert!(!validator.is_valid(&bad));
}

fn junit_counts(node: roxmltree::Node) -> [usize; 3] {
    ["tests", "failures", "errors"].map(|a| {
        node.attribute(a)
            .unwrap_or_else(|| panic!("{a} on {node:?}"))
            .parse()
            .unwrap()
    })
}

#[test]
fn junit_of_the_fixture_parses_with_consistent_counts() {
    let report = fixture_report();
    let xml = rendered(report, Format::Junit);
    let tree = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}"));
    let root = tree.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), report.runs.len(), "one suite per probe run");
    let mut sum = [0; 3];
    for (suite, run) in suites.iter().zip(&report.runs) {
        assert_eq!(suite.attribute("name"), Some(run.probe.as_str()));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        let failing = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .count();
        // One failing case per (rule, resource) of the run's findings.
        let keys: HashSet<_> = run
            .findings
            .iter()
            .map(|f| {
                let r = f.resource.as_ref();
                (
                    f.rule.clone(),
                    r.map(|r| (r.namespace.clone(), r.kind.clone(), r.name.clone())),
                )
            })
            .collect();
        assert_eq!(failing, keys.len(), "{}", run.probe);
        let counts = junit_counts(*suite);
        assert_eq!(counts, [cases.len(), failing, 0], "{}", run.probe);
        for i in 0..3 {
            sum[i] += counts[i];
        }
    }
    assert_eq!(junit_counts(root), sum);
    let latest = tree
        .descendants()
        .find(|n| n.attribute("name") == Some("ImageTagIsLatest shop/Deployment/web"))
        .unwrap();
    let failure = latest.first_element_child().unwrap();
    assert_eq!(failure.tag_name().name(), "failure");
    assert_eq!(failure.attribute("type"), Some("medium"));
}

/// The page parses, has only the report's own elements and attributes (no
/// script, image, link, frame; no `src`, `href`, `style` attribute), and
/// its style sheet loads nothing. Probe text may mention a URL or `src=`:
/// escaped, it is text, which the parse shows.
#[track_caller]
fn assert_self_contained_html(html: &str) -> roxmltree::Document<'_> {
    assert!(!html.contains("<script"), "a script in the page");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let tree = roxmltree::Document::parse_with_options(html, options)
        .unwrap_or_else(|e| panic!("the page is not well-formed: {e}"));
    for node in tree.descendants().filter(|n| n.is_element()) {
        let tag = node.tag_name().name();
        assert!(
            matches!(
                tag,
                "html"
                    | "head"
                    | "meta"
                    | "title"
                    | "style"
                    | "body"
                    | "h1"
                    | "h2"
                    | "h3"
                    | "h4"
                    | "p"
                    | "span"
                    | "code"
                    | "br"
                    | "table"
                    | "tr"
                    | "th"
                    | "td"
                    | "ul"
                    | "li"
                    | "section"
            ),
            "<{tag}> in the page"
        );
        for a in node.attributes() {
            assert!(matches!(a.name(), "lang" | "charset" | "class"), "{a:?}");
        }
        if tag == "style" {
            let css = node.text().unwrap_or_default();
            for external in ["url(", "@import", "http", "//"] {
                assert!(!css.contains(external), "{external} in the style sheet");
            }
        }
    }
    tree
}

#[test]
fn html_of_the_fixture_is_self_contained_and_shows_every_finding() {
    let report = fixture_report();
    let html = rendered(report, Format::Html);
    let tree = assert_self_contained_html(&html);
    // Nothing in the fixture's findings names a URL, so the page has none at all.
    for external in ["http://", "https://", "src=", "href="] {
        assert!(!html.contains(external), "{external} in the page");
    }
    let text: String = tree.descendants().filter_map(|n| n.text()).collect();
    for (_, f) in report.findings() {
        assert!(text.contains(&f.message), "{}", f.message);
    }
    for ns in [
        "Namespace shop",
        "Namespace kube-system",
        "(cluster-scoped)",
    ] {
        assert!(text.contains(ns), "{ns}");
    }
}

/// The header rows of a table report, split into words.
fn headers(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.last() == Some(&"MESSAGE"))
        .collect()
}

const RESOURCES: [&str; 4] = ["NAMESPACE", "NAME", "KIND", "MESSAGE"];
const EVENTS: [&str; 6] = [
    "NAMESPACE",
    "SEVERITY",
    "PODNAME",
    "EVENTTIME",
    "REASON",
    "MESSAGE",
];
const NODES: [&str; 5] = ["NODENAME", "SEVERITY", "HEARTBEATTIME", "REASON", "MESSAGE"];
const COMPONENTS: [&str; 4] = ["NAME", "SEVERITY", "TIME", "MESSAGE"];

/// A kube-scheduler static pod that is running but not ready.
const SCHEDULER_NOT_READY: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kube-scheduler-node-1
  namespace: kube-system
  labels: {component: kube-scheduler, tier: control-plane}
spec:
  nodeName: node-1
  priorityClassName: system-node-critical
  containers:
  - name: kube-scheduler
    image: registry.k8s.io/kube-scheduler:v1.28.7
status:
  phase: Running
  conditions:
  - type: Ready
    status: 'False'
    lastTransitionTime: '2026-11-22T18:10:00Z'
  containerStatuses:
  - name: kube-scheduler
    ready: false
    restartCount: 0
    image: registry.k8s.io/kube-scheduler:v1.28.7
    imageID: ''
    state: {running: {startedAt: '2026-11-22T17:40:00Z'}}
";

#[test]
fn table_of_the_fixture_with_a_failing_scheduler_has_kubeeyes_four_tables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        shared_fixture("snapshot-dump.yaml"),
        dir.path().join("dump.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("scheduler.yaml"), SCHEDULER_NOT_READY).unwrap();
    let report = audit_all(dir.path());
    let table = rendered(&report, Format::Table);
    assert_eq!(
        headers(&table),
        [&RESOURCES[..], &EVENTS, &NODES, &COMPONENTS],
        "{table}"
    );
    let scheduler = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&"kube-scheduler-node-1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(scheduler[1], "high", "{scheduler:?}");
}

#[test]
fn table_of_the_fixture_has_kubeeyes_tables() {
    let report = fixture_report();
    let table = rendered(report, Format::Table);
    let headers = headers(&table);
    let category_has_findings = |c: &str| {
        report.probes.iter().any(|p| {
            p.rules.iter().any(|r| {
                r.category == c
                    && report
                        .runs
                        .iter()
                        .filter(|run| run.probe == p.name)
                        .flat_map(|run| &run.findings)
                        .any(|f| f.rule == r.id)
            })
        })
    };
    let mut expected: Vec<&[&str]> = vec![&RESOURCES, &EVENTS, &NODES];
    // The dump has no control-plane pods: the components table shows only when the probe finds something.
    if category_has_findings("control-plane") {
        expected.push(&COMPONENTS);
    }
    assert_eq!(headers, expected, "{table}");
    let node3 = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&"node-3") && w.contains(&"NodeStatusUnknown"))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(node3[..3], ["node-3", "critical", "2026-11-22T17:57:46Z"]);
    let backoff = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.get(2) == Some(&"web-7d9c6b5f4-9hzrm") && w.get(4) == Some(&"BackOff"))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(
        backoff[..4],
        [
            "shop",
            "medium",
            "web-7d9c6b5f4-9hzrm",
            "2026-11-22T18:21:13Z"
        ]
    );
    assert!(table.contains(" findings ("), "the summary line follows");
}

#[track_caller]
fn stdout_of(out: Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn audit_fixture(format: &str) -> String {
    let dump = shared_fixture("snapshot-dump.yaml");
    let out = sonde()
        .args(["audit", "-o", format, "--snapshot"])
        .arg(dump)
        .output()
        .unwrap();
    stdout_of(out, 0)
}

#[test]
fn the_binary_writes_sarif_junit_and_html() {
    let log = assert_valid_sarif(&audit_fixture("sarif"));
    let findings = log["runs"][0]["results"].as_array().unwrap().len();
    let json: serde_json::Value = serde_json::from_str(&audit_fixture("json")).unwrap();
    assert_eq!(json["summary"]["total"], findings, "one result per finding");

    let xml = audit_fixture("junit");
    let tree = roxmltree::Document::parse(&xml).unwrap();
    let [tests, failures, errors] = junit_counts(tree.root_element());
    assert!(failures > 0 && tests > failures && errors == 0);

    assert_self_contained_html(&audit_fixture("html"));
}

/// The hostile probe's payloads through `sonde run` in one format.
fn hostile(mode: &str, format: &str, code: i32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, format!(r#"{{"mode": "{mode}"}}"#)).unwrap();
    let out = sonde()
        .args([
            "run",
            sonde_probes::TEST_HOSTILE_PATH,
            "--grant-requested",
            "--timeout-ms",
            "300",
            "-o",
            format,
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    stdout_of(out, code)
}

#[test]
fn hostile_probe_text_is_inert_in_every_format() {
    let html = hostile("xss", "html", 0);
    let tree = assert_self_contained_html(&html);
    assert!(tree.descendants().all(|n| !n.has_tag_name("img")));
    let text: String = tree.descendants().filter_map(|n| n.text()).collect();
    assert!(text.contains("<script>alert(1)</script>"), "shown as text");
    assert!(!html.contains('\u{1b}') && !html.contains('\r'));

    let xml = hostile("xss", "junit", 0);
    let tree = roxmltree::Document::parse(&xml).unwrap();
    let messages: Vec<&str> = tree
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .filter_map(|n| n.attribute("message"))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("<script>alert(1)</script>")),
        "{messages:?}"
    );
    assert!(!xml.contains('\u{1b}'), "XML 1.0 forbids ESC");

    let log = assert_valid_sarif(&hostile("xss", "sarif", 0));
    assert_eq!(
        log["runs"][0]["results"][0]["message"]["text"],
        "<script>alert(1)</script>"
    );
}

#[test]
fn a_failed_run_is_an_error_in_junit_and_a_notification_in_sarif() {
    let xml = hostile("loop", "junit", 4);
    let tree = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(junit_counts(tree.root_element()), [1, 0, 1]);
    let error = tree
        .descendants()
        .find(|n| n.has_tag_name("error"))
        .unwrap();
    assert_eq!(error.attribute("message"), Some("timed out after 300 ms"));

    let log = assert_valid_sarif(&hostile("loop", "sarif", 4));
    let invocation = &log["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    assert_eq!(
        invocation["toolExecutionNotifications"][0]["message"]["text"],
        "probe hostile failed: timed out after 300 ms"
    );

    let html = hostile("loop", "html", 4);
    assert_self_contained_html(&html);
    assert!(html.contains("Probe <code>hostile</code> failed: timed out after 300 ms"));
}

#[test]
fn rules_take_an_output_format() {
    let json = sonde().args(["rules", "-o", "json"]).output().unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout_of(json, 0)).unwrap();
    let legacy = sonde().args(["rules", "--json"]).output().unwrap();
    let legacy: Vec<serde_json::Value> = serde_json::from_str(&stdout_of(legacy, 0)).unwrap();
    assert_eq!(rows, legacy, "--json still works");
    assert!(rows.iter().all(|r| {
        ["id", "category", "severity", "description"]
            .iter()
            .all(|k| r[k].as_str().is_some_and(|v| !v.is_empty()))
    }));
    let table = stdout_of(sonde().args(["rules", "-o", "table"]).output().unwrap(), 0);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["RULE", "PROBE", "CATEGORY", "SEVERITY", "DESCRIPTION"]
    );
    for r in &rows {
        assert!(table.contains(r["id"].as_str().unwrap()), "{r}");
    }
    let both = sonde()
        .args(["rules", "--json", "-o", "table"])
        .output()
        .unwrap();
    assert_eq!(
        both.status.code(),
        Some(2),
        "contradicting flags are refused"
    );
}
