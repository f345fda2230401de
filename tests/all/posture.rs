//! Exemptions (annotations and the exemptions file) and the 0-100 score,
//! through `sonde audit` as a user runs it, on the real API server's dump
//! and on small manifests.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cli::{sonde, text};
use crate::shared_fixture;

fn audit_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let out = sonde()
        .args(["audit", "-o", "json"])
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    let doc = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code(), doc, stderr)
}

fn keys(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}/{}:{}",
                f["namespace"].as_str().unwrap_or(""),
                f["kind"].as_str().unwrap(),
                f["name"].as_str().unwrap(),
                f["rule"].as_str().unwrap()
            )
        })
        .collect()
}

const ANNOTATED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  namespace: apps
  annotations:
    sonde.dev/exempt-NoCPULimits: "true"
    sonde.dev/exempt-NoMemoryLimits: "false"
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: app, image: "example.org/legacy:1.0"}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vendor
  namespace: apps
  annotations: {sonde.dev/exempt: "true"}
spec:
  selector: {matchLabels: {app: vendor}}
  template:
    metadata: {labels: {app: vendor}}
    spec:
      containers: [{name: app, image: "example.org/vendor:2.0"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain, namespace: apps}
spec:
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec:
      containers: [{name: app, image: "example.org/plain:1.0"}]
"#;

#[test]
fn annotations_exempt_one_rule_or_every_rule_of_an_object() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("apps.yaml"), ANNOTATED).unwrap();
    let snap = dir.path().display().to_string();
    let (code, doc, stderr) = audit_json(&["--snapshot", &snap, "--probe", "workload-audit"]);
    assert_eq!(code, Some(0), "{stderr}");
    let findings = keys(&doc["findings"]);
    let exempted = keys(&doc["exempted"]);
    assert!(exempted.contains("apps/Deployment/legacy:NoCPULimits"));
    assert!(!findings.contains("apps/Deployment/legacy:NoCPULimits"));
    // "false" exempts nothing.
    assert!(findings.contains("apps/Deployment/legacy:NoMemoryLimits"));
    assert!(
        findings.iter().all(|k| !k.contains("/vendor:")),
        "{findings:?}"
    );
    assert!(exempted.contains("apps/Deployment/vendor:NoCPULimits"));
    assert!(findings.contains("apps/Deployment/plain:NoCPULimits"));
    let reasons: BTreeSet<&str> = doc["exempted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from([
            "annotation sonde.dev/exempt",
            "annotation sonde.dev/exempt-NoCPULimits"
        ])
    );
    // The score counts the exempt object as clean: three Deployments, vendor has no finding left.
    let apps = &doc["score"]["namespaces"]["apps"];
    assert_eq!(apps["objects"], 3, "{apps}");
    assert_eq!(apps["affected"], 2, "{apps}");

    let (_, ignoring, _) = audit_json(&[
        "--snapshot",
        &snap,
        "--probe",
        "workload-audit",
        "--no-annotation-exemptions",
    ]);
    assert!(ignoring["exempted"].as_array().unwrap().is_empty());
    assert!(keys(&ignoring["findings"]).contains("apps/Deployment/vendor:NoCPULimits"));
}

#[test]
fn exemptions_file_selects_by_rule_namespace_kind_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exemptions.yaml");
    std::fs::write(
        &file,
        "exemptions:\n\
         - rules: [Privilege*, Host*]\n  namespaces: [kube-system]\n  kinds: [DaemonSet]\n  names: [node-*]\n  reason: node agent needs the host\n\
         - probes: [rbac-audit]\n  namespaces: ['']\n  reason: cluster roles reviewed\n",
    )
    .unwrap();
    let dump = shared_fixture("snapshot-dump.yaml").display().to_string();
    let (code, plain, stderr) = audit_json(&["--snapshot", &dump]);
    assert!(matches!(code, Some(0 | 4)), "{stderr}");
    let (code2, doc, stderr) = audit_json(&[
        "--snapshot",
        &dump,
        "--exemptions",
        &file.display().to_string(),
    ]);
    assert_eq!(code, code2, "{stderr}");
    let before = keys(&plain["findings"]);
    let after = keys(&doc["findings"]);
    let exempted = keys(&doc["exempted"]);
    // Nothing is lost: every finding is either still reported or exempted.
    assert_eq!(
        before,
        after.union(&exempted).cloned().collect::<BTreeSet<_>>()
    );
    let expected: BTreeSet<String> = [
        "kube-system/DaemonSet/node-agent:PrivilegedAllowed",
        "kube-system/DaemonSet/node-agent:PrivilegeEscalationAllowed",
        "kube-system/DaemonSet/node-agent:HostNetworkAllowed",
        "kube-system/DaemonSet/node-agent:HostPIDAllowed",
        "/ClusterRole/impersonator:CanImpersonateUser",
        "/ClusterRole/everything-deleter:CanDeleteResources",
        "/ClusterRoleBinding/ci-admin:ClusterAdminBinding",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(exempted, expected);
    // The namespaced Role deployer is rbac-audit's too, but not cluster-scoped.
    assert!(
        after.contains("shop/Role/deployer:CanDeleteResources"),
        "{after:?}"
    );
    // Fewer findings: a better cluster score (the three cluster roles are clean
    // now); node-agent keeps enough findings to stay at the capped penalty.
    let score = |d: &Value, ns: &str| d["score"]["namespaces"][ns]["score"].as_u64().unwrap();
    assert!(score(&doc, "kube-system") >= score(&plain, "kube-system"));
    assert!(
        doc["score"]["cluster"]["score"].as_u64() > plain["score"]["cluster"]["score"].as_u64()
    );
    assert_eq!(score(&doc, "shop"), score(&plain, "shop"));
}

#[test]
fn a_bad_exemptions_file_is_refused_before_any_probe_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ex.yaml");
    std::fs::write(&file, "exemptions:\n- reason: all of it\n").unwrap();
    let dump = shared_fixture("snapshot-dump.yaml").display().to_string();
    let out = sonde()
        .args(["audit", "--snapshot", &dump, "--exemptions"])
        .arg(&file)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stderr.contains("ex.yaml: exemption 1 selects every finding"),
        "{stderr}"
    );
    std::fs::write(&file, "exemptions:\n  - rules: [a]\n    namspaces: [b]\n").unwrap();
    let out = sonde()
        .args(["audit", "--snapshot", &dump, "--exemptions"])
        .arg(&file)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("ex.yaml") && stderr.contains("namspaces") && stderr.contains("line 3"),
        "{stderr}"
    );
}
