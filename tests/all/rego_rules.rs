//! The built-in `rego` probe: KubeEye's OPA rules run unchanged (the seed's
//! imageRegistryRule.rego byte for byte), the RBAC and nodes packages, a
//! file that does not parse, and `sonde audit --rego DIR` with its exit code.

use std::path::{Path, PathBuf};

use serde_json::json;
use sonde::audit::{self, AuditReport, ProbeSource};
use sonde::runtime::LogLevel;

use crate::cli::{sonde, text};
use crate::{resource_key, runtime, snapshot_services};

/// The test fixtures of this crate.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Runs a built-in probe with `config` over the objects of `yaml`.
pub async fn audit_with(name: &'static str, config: serde_json::Value, yaml: &str) -> AuditReport {
    let probe = audit::prepare(
        runtime(),
        &ProbeSource::Builtin(name),
        None,
        config.to_string(),
        Default::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    audit::run_audit(
        runtime(),
        snapshot_services(yaml),
        &[probe],
        "test".into(),
        vec![],
    )
    .await
}

/// `(namespace/Kind/name, rule, severity)` of every finding, sorted.
pub fn found(report: &AuditReport) -> Vec<(String, String, String)> {
    let mut f: Vec<_> = report
        .findings()
        .map(|(_, f)| {
            (
                resource_key(f),
                f.rule.clone(),
                f.severity.as_str().to_string(),
            )
        })
        .collect();
    f.sort();
    f
}

pub fn triples(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn module(path: &str, text: &str) -> serde_json::Value {
    json!({"path": path, "text": text})
}

fn seed_module() -> serde_json::Value {
    let path = fixture("opa/imageRegistryRule.rego");
    module(
        "opa/imageRegistryRule.rego",
        &std::fs::read_to_string(path).unwrap(),
    )
}

/// Workloads with images from myregistry.public.kubesphere/basic/ and from elsewhere,
/// and the objects their controllers own.
pub const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: shop, uid: d-nginx}
spec:
  template:
    spec:
      containers: [{name: nginx, image: "nginx:1.25"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: nginx-5d9f
  namespace: shop
  uid: rs-nginx
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: nginx, uid: d-nginx, controller: true}]
spec:
  template:
    spec:
      containers: [{name: nginx, image: "nginx:1.25"}]
---
apiVersion: v1
kind: Pod
metadata:
  name: nginx-5d9f-abcde
  namespace: shop
  uid: p-nginx
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: nginx-5d9f, uid: rs-nginx, controller: true}]
spec:
  containers: [{name: nginx, image: "nginx:1.25"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: internal, namespace: shop, uid: d-internal}
spec:
  template:
    spec:
      containers: [{name: app, image: "myregistry.public.kubesphere/basic/app:2.1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: kube-system, uid: ds-agent}
spec:
  template:
    spec:
      containers: [{name: agent, image: "myregistry.public.kubesphere/basic/agent:1"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop, uid: sts-db}
spec:
  template:
    spec:
      containers: [{name: db, image: "quay.io/db/postgres:16"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: shop, uid: cj-backup}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: backup, image: "docker.io/library/busybox:1.36"}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: backup-29000000
  namespace: shop
  uid: j-backup
  ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: backup, uid: cj-backup, controller: true}]
spec:
  template:
    spec:
      containers: [{name: backup, image: "docker.io/library/busybox:1.36"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop, uid: j-migrate}
spec:
  template:
    spec:
      containers: [{name: migrate, image: "ghcr.io/shop/migrate:3"}]
"#;

#[tokio::test]
async fn the_seed_rule_flags_images_not_from_myregistry() {
    let report = audit_with("rego", json!({"modules": [seed_module()]}), WORKLOADS).await;
    assert!(report.complete(), "{:?}", report.runs[0]);
    // Each workload once, at its controller: not the Deployment's ReplicaSet or Pod,
    // not the CronJob's Job (and the seed rule has no CronJob branch, as in KubeEye).
    assert_eq!(
        found(&report),
        triples(&[
            (
                "shop/Deployment/nginx",
                "ImageRegistryNotmyregistry",
                "medium"
            ),
            ("shop/Job/migrate", "ImageRegistryNotmyregistry", "medium"),
            (
                "shop/StatefulSet/db",
                "ImageRegistryNotmyregistry",
                "medium"
            ),
        ])
    );
    let (_, f) = report
        .findings()
        .find(|(_, f)| f.resource.as_ref().is_some_and(|r| r.name == "nginx"))
        .unwrap();
    let r = f.resource.as_ref().unwrap();
    assert_eq!(
        (r.api_version.as_str(), r.uid.as_deref()),
        ("apps/v1", Some("d-nginx"))
    );
    assert!(
        f.labels
            .contains(&("file".into(), "opa/imageRegistryRule.rego".into()))
    );
    // The `*` rule's remedy fills in, and no finding is "undeclared".
    assert!(f.remedy.as_deref().is_some_and(|r| r.contains("Rego file")));
    assert!(
        !report.runs[0]
            .logs
            .iter()
            .any(|l| l.message.contains("undeclared")),
        "{:?}",
        report.runs[0].logs
    );
}

const RBAC_RULE: &str = r#"package kubeeye_RBAC_rego

deny[msg] {
    resource := input
    type := resource.Object.kind
    resourcename := resource.Object.metadata.name
    type == "ClusterRole"
    level := "danger"
    resource.Object.rules[_].verbs[_] == "impersonate"
    msg := {
        "Name": sprintf("%v", [resourcename]),
        "Type": sprintf("%v", [type]),
        "Level": sprintf("%v", [level]),
        "Message": "CanImpersonateUser"
    }
}

deny[msg] {
    resource := input
    type := resource.Object.kind
    resourcename := resource.Object.metadata.name
    resourcenamespace := resource.Object.metadata.namespace
    type == "Role"
    resource.Object.rules[_].verbs[_] == "delete"
    msg := {
        "Name": sprintf("%v", [resourcename]),
        "Namespace": sprintf("%v", [resourcenamespace]),
        "Type": sprintf("%v", [type]),
        "Level": "warning",
        "Message": "CanDeleteResources"
    }
}
"#;

const NODES_RULE: &str = r#"package kubeeye_nodes_rego

deny[msg] {
    resource := input
    type := resource.Object.kind
    resourcename := resource.Object.metadata.name
    type == "Node"
    resource.Object.status.conditions[i].type == "Ready"
    resource.Object.status.conditions[i].status != "True"
    msg := {
        "Name": sprintf("%v", [resourcename]),
        "Type": sprintf("%v", [type]),
        "Level": "danger",
        "Message": "NodeNotReady",
        "Reason": resource.Object.status.conditions[i].message
    }
}
"#;

const RBAC_AND_NODES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonator, uid: cr-imp}
rules: [{apiGroups: [""], resources: [users], verbs: [impersonate]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader, uid: cr-read}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cleaner, namespace: shop, uid: r-clean}
rules: [{apiGroups: [""], resources: [pods], verbs: [delete]}]
---
apiVersion: v1
kind: Node
metadata: {name: node-1, uid: n1}
status:
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: kubelet is posting ready status}]
---
apiVersion: v1
kind: Node
metadata: {name: node-2, uid: n2}
status:
  conditions: [{type: Ready, status: Unknown, reason: NodeStatusUnknown, message: Kubelet stopped posting node status.}]
"#;

#[tokio::test]
async fn rbac_and_nodes_packages_get_their_objects() {
    let config = json!({"modules": [module("opa/rbac.rego", RBAC_RULE), module("opa/nodes.rego", NODES_RULE)]});
    let report = audit_with("rego", config, RBAC_AND_NODES).await;
    assert!(report.complete(), "{:?}", report.runs[0]);
    assert_eq!(
        found(&report),
        triples(&[
            ("/ClusterRole/impersonator", "CanImpersonateUser", "high"),
            ("/Node/node-2", "NodeNotReady", "high"),
            ("shop/Role/cleaner", "CanDeleteResources", "medium"),
        ])
    );
    let node = report
        .findings()
        .find(|(_, f)| f.rule == "NodeNotReady")
        .unwrap()
        .1;
    assert_eq!(node.message, "Kubelet stopped posting node status.");
    let r = node.resource.as_ref().unwrap();
    assert_eq!(
        (r.api_version.as_str(), r.uid.as_deref()),
        ("v1", Some("n2"))
    );
}

#[tokio::test]
async fn a_file_that_does_not_parse_is_an_error_and_the_others_run() {
    let broken =
        "package kubeeye_workloads_rego\n\ndeny[msg] {\n    msg := {\"Message\": \"X\"\n}\n";
    let config = json!({"modules": [module("opa/broken.rego", broken), seed_module()]});
    let report = audit_with("rego", config, WORKLOADS).await;
    assert_eq!(found(&report).len(), 3, "{:?}", report.runs[0]);
    assert!(report.runs[0].succeeded());
    let errors: Vec<_> = report
        .run_errors()
        .map(|(_, l)| l.message.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("opa/broken.rego:") && errors[0].split(':').nth(2).is_some(),
        "{}",
        errors[0]
    );
    assert!(
        !report.complete(),
        "an error-level log makes the audit incomplete"
    );
}

#[tokio::test]
async fn without_rules_nothing_is_evaluated() {
    let report = audit_with("rego", json!({}), WORKLOADS).await;
    assert!(report.complete());
    assert_eq!(report.findings().count(), 0);
    let logs = &report.runs[0].logs;
    assert!(
        logs.iter()
            .any(|l| l.level == LogLevel::Info && l.message.contains("no Rego rules configured")),
        "{logs:?}"
    );
}

/// A snapshot folder holding `yaml`.
pub fn manifests(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("workloads.yaml"), yaml).unwrap();
    dir
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn cli_rego_and_checks_flags_and_exit_codes() {
    let snap = manifests(WORKLOADS);
    let opa = fixture("opa");
    let rules = fixture("rule.yaml");
    let ok = sonde()
        .args(["audit", "--snapshot", &arg(snap.path()), "--probe", "rego"])
        .args(["--rego", &arg(&opa), "--checks", &arg(&rules), "-o", "json"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{stderr}\n{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["complete"], true);
    // --checks adds schema-checks to the probes --probe named.
    let probes: Vec<&str> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["probe"].as_str().unwrap())
        .collect();
    assert_eq!(probes, ["rego", "schema-checks"]);
    let mut rules: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            ("ImageRegistryNotmyregistry", "db"),
            ("ImageRegistryNotmyregistry", "migrate"),
            ("ImageRegistryNotmyregistry", "nginx"),
            ("imageFromUnauthorizedRegistry", "db"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // A file that does not parse: the others still run, the table names it, exit 4.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        opa.join("imageRegistryRule.rego"),
        dir.path().join("imageRegistryRule.rego"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("more")).unwrap();
    let broken = dir.path().join("more/broken.rego");
    std::fs::write(&broken, "package kubeeye_workloads_rego\n\ndeny[msg {\n}\n").unwrap();
    let incomplete = sonde()
        .args(["audit", "--snapshot", &arg(snap.path()), "--probe", "rego"])
        .args(["--rego", &arg(dir.path())])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&incomplete);
    assert_eq!(incomplete.status.code(), Some(4), "{stderr}\n{stdout}");
    assert!(stdout.contains("ImageRegistryNotmyregistry"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("probe rego ERROR: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&format!("{}:3:", broken.display())), "{line}");

    // A folder that is not there: nothing runs, exit 1, the path named.
    let missing = dir.path().join("nope");
    let bad = sonde()
        .args(["audit", "--snapshot", &arg(snap.path()), "--probe", "rego"])
        .args(["--rego", &arg(&missing)])
        .output()
        .unwrap();
    let (_, stderr) = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read {}", missing.display())),
        "{stderr}"
    );
}
