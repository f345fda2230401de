//! The built-in `schema-checks` probe: the seed's rule.yaml byte for byte
//! (Polaris's semantics: a check fails when the target does not validate, so
//! `not: {pattern: ^quay.io}` flags quay.io images), Pod and Controller
//! targets, and a bad check named with its file and line while the others run.

use serde_json::json;

use crate::rego_rules::{audit_with, fixture, found, triples};

fn seed_file() -> serde_json::Value {
    json!({"path": "rule.yaml", "text": std::fs::read_to_string(fixture("rule.yaml")).unwrap()})
}

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx, namespace: default, uid: d-nginx}
spec:
  template:
    spec:
      containers: [{name: nginx, image: "nginx:1.25"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: exporter, namespace: monitoring, uid: d-exp}
spec:
  template:
    spec:
      initContainers: [{name: setup, image: "quay.io/prometheus/busybox:latest"}]
      containers: [{name: exporter, image: "docker.io/prom/node-exporter:v1.7.0"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: exporter-7c9
  namespace: monitoring
  uid: rs-exp
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: exporter, uid: d-exp, controller: true}]
spec:
  template:
    spec:
      initContainers: [{name: setup, image: "quay.io/prometheus/busybox:latest"}]
      containers: [{name: exporter, image: "docker.io/prom/node-exporter:v1.7.0"}]
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: default, uid: p-debug}
spec:
  hostNetwork: true
  containers: [{name: shell, image: "quay.io/toolbox/shell:1"}]
"#;

#[tokio::test]
async fn the_seed_rule_yaml_flags_quay_images_not_nginx() {
    let report = audit_with("schema-checks", json!({"files": [seed_file()]}), WORKLOADS).await;
    assert!(report.complete(), "{:?}", report.runs[0]);
    // Init containers are checked too (as Polaris does); the ReplicaSet is the
    // Deployment's, so it is not reported again.
    assert_eq!(
        found(&report),
        triples(&[
            (
                "default/Pod/debug",
                "imageFromUnauthorizedRegistry",
                "medium"
            ),
            (
                "monitoring/Deployment/exporter",
                "imageFromUnauthorizedRegistry",
                "medium"
            ),
        ])
    );
    let (_, f) = report
        .findings()
        .find(|(_, f)| f.resource.as_ref().is_some_and(|r| r.name == "exporter"))
        .unwrap();
    assert_eq!(
        f.message,
        "container \"setup\": When the corresponding rule does not match. Show that image from an unauthorized registry."
    );
    assert!(f.labels.contains(&("container".into(), "setup".into())));
    assert!(f.labels.contains(&("file".into(), "rule.yaml".into())));
    let r = f.resource.as_ref().unwrap();
    assert_eq!(
        (r.api_version.as_str(), r.uid.as_deref()),
        ("apps/v1", Some("d-exp"))
    );
    assert!(f.remedy.is_some());
}

#[tokio::test]
async fn pod_and_controller_targets_and_a_bad_check_with_its_line() {
    let rules = "checks:
  hostNetworkSet: danger
  brokenSchema: warning
  needsTwoReplicas: warning

customChecks:
  hostNetworkSet:
    successMessage: Host network is not configured
    failureMessage: Host network should not be configured
    category: Security
    target: Pod
    schema:
      '$schema': http://json-schema.org/draft-07/schema
      type: object
      properties:
        hostNetwork:
          not:
            const: true
  brokenSchema:
    promptMessage: never runs
    target: Container
    schema:
      type: 12
  needsTwoReplicas:
    promptMessage: Run at least two replicas
    target: Controller
    controllers:
      include: [Deployment]
    schema:
      properties:
        spec:
          required: [replicas]
          properties:
            replicas: {minimum: 2}
";
    let config = json!({"files": [{"path": "checks/more.yaml", "text": rules}, seed_file()]});
    let report = audit_with("schema-checks", config, WORKLOADS).await;
    assert!(report.runs[0].succeeded(), "{:?}", report.runs[0]);
    assert_eq!(
        found(&report),
        triples(&[
            ("default/Deployment/nginx", "needsTwoReplicas", "medium"),
            ("default/Pod/debug", "hostNetworkSet", "high"),
            (
                "default/Pod/debug",
                "imageFromUnauthorizedRegistry",
                "medium"
            ),
            (
                "monitoring/Deployment/exporter",
                "imageFromUnauthorizedRegistry",
                "medium"
            ),
            (
                "monitoring/Deployment/exporter",
                "needsTwoReplicas",
                "medium"
            ),
        ])
    );
    let errors: Vec<String> = report
        .run_errors()
        .map(|(_, l)| l.message.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("checks/more.yaml:19: check brokenSchema: invalid schema"),
        "{}",
        errors[0]
    );
    assert!(!report.complete());
}

#[tokio::test]
async fn malformed_rule_yaml_names_file_and_line() {
    let config = json!({"files": [{"path": "bad.yaml", "text": "checks:\n  a: warning\n customChecks: [\n"}, seed_file()]});
    let report = audit_with("schema-checks", config, WORKLOADS).await;
    assert_eq!(found(&report).len(), 2, "the seed file still runs");
    let errors: Vec<String> = report
        .run_errors()
        .map(|(_, l)| l.message.clone())
        .collect();
    assert!(
        errors.len() == 1 && errors[0].starts_with("bad.yaml:3:"),
        "{errors:?}"
    );
}
