//! Every workload-audit rule: a resource that triggers it and one that does
//! not, with the Kubernetes semantics that decide the edge cases (defaults,
//! pod-to-container inheritance, the image grammar, init vs sidecar
//! containers, Windows pods, controllers).

use serde_json::{Value, json};
use sonde::builtin;
use sonde::caps::HostServices;
use sonde::kube::SnapshotBackend;
use std::sync::Arc;

use crate::runtime;

/// A fully compliant Deployment: no rule fires on it.
fn compliant(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "t", "uid": format!("uid-{name}")},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "priorityClassName": "high",
                "securityContext": {"runAsNonRoot": true},
                "containers": [{
                    "name": "app",
                    "image": "registry.local:5000/team/app:1.0",
                    "imagePullPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                    "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
                }]
            }
        }}
    })
}

fn with(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut d = compliant(name);
    edit(&mut d["spec"]["template"]["spec"]);
    d
}

/// The built-in workload audit, loaded and described.
async fn workload_audit() -> (sonde::runtime::LoadedProbe, sonde::bindings::ProbeInfo) {
    let probe = builtin::find("workload-audit").unwrap();
    let loaded = runtime()
        .load_bytes("builtin:workload-audit", probe.wasm)
        .unwrap();
    let info = runtime()
        .describe(&loaded, &Default::default())
        .await
        .unwrap();
    (loaded, info)
}

/// Runs the built-in workload audit over `objects`; returns (rule, object name) pairs.
async fn audit(objects: Vec<Value>) -> Vec<(String, String)> {
    let (loaded, info) = workload_audit().await;
    let snap = SnapshotBackend::from_values("test", objects);
    let services = Arc::new(HostServices {
        kube: Some(Arc::new(snap)),
        ..Default::default()
    });
    let req = sonde::runtime::RunRequest {
        run_id: "t".into(),
        config: "{}".into(),
        grants: sonde::grants::GrantSet::from_requested(&info.capabilities),
        limits: Default::default(),
        services,
    };
    let out = runtime().run(&loaded, &info, req).await;
    assert!(out.succeeded(), "{:?}", out.reason);
    let mut found: Vec<(String, String)> = out
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.resource.as_ref().unwrap().name.clone()))
        .collect();
    found.sort();
    found
}

fn fired(found: &[(String, String)], rule: &str, name: &str) -> bool {
    found.iter().any(|(r, n)| r == rule && n == name)
}

fn container(spec: &mut Value) -> &mut Value {
    &mut spec["containers"][0]
}

#[tokio::test]
async fn compliant_workload_has_no_findings() {
    assert_eq!(audit(vec![compliant("good")]).await, vec![]);
}

#[tokio::test]
async fn each_rule_fires_on_its_trigger() {
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit)> = vec![
        ("NoCPULimits", |s| {
            container(s)["resources"]["limits"]
                .as_object_mut()
                .unwrap()
                .remove("cpu");
        }),
        ("NoCPURequests", |s| {
            container(s)["resources"] =
                json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}});
        }),
        ("NoMemoryLimits", |s| {
            container(s)["resources"]["limits"]
                .as_object_mut()
                .unwrap()
                .remove("memory");
        }),
        ("NoMemoryRequests", |s| {
            container(s)["resources"] = json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1"}});
        }),
        ("NoLivenessProbe", |s| {
            container(s)
                .as_object_mut()
                .unwrap()
                .remove("livenessProbe");
        }),
        ("NoReadinessProbe", |s| {
            container(s)
                .as_object_mut()
                .unwrap()
                .remove("readinessProbe");
        }),
        ("ImageTagIsLatest", |s| {
            container(s)["image"] = json!("nginx:latest");
        }),
        ("ImageTagMiss", |s| {
            container(s)["image"] = json!("registry.local:5000/team/app");
        }),
        ("ImagePullPolicyNotAlways", |s| {
            container(s)
                .as_object_mut()
                .unwrap()
                .remove("imagePullPolicy");
        }),
        ("NoPriorityClassName", |s| {
            s.as_object_mut().unwrap().remove("priorityClassName");
        }),
        ("PrivilegedAllowed", |s| {
            container(s)["securityContext"]["privileged"] = json!(true);
            container(s)["securityContext"]
                .as_object_mut()
                .unwrap()
                .remove("allowPrivilegeEscalation");
        }),
        ("PrivilegeEscalationAllowed", |s| {
            container(s)["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        }),
        ("NotRunAsNonRoot", |s| {
            container(s)["securityContext"]["runAsNonRoot"] = json!(false);
        }),
        ("NotReadOnlyRootFilesystem", |s| {
            container(s)["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        }),
        ("HostIPCAllowed", |s| {
            s["hostIPC"] = json!(true);
        }),
        ("HostNetworkAllowed", |s| {
            s["hostNetwork"] = json!(true);
        }),
        ("HostPIDAllowed", |s| {
            s["hostPID"] = json!(true);
        }),
        ("HostPortAllowed", |s| {
            container(s)["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        }),
        ("HighRiskCapabilities", |s| {
            container(s)["securityContext"]["capabilities"]["add"] = json!(["NET_ADMIN"]);
        }),
        ("InsecureCapabilities", |s| {
            container(s)["securityContext"]["capabilities"]["add"] = json!(["cap_chown"]);
        }),
    ];
    let names: Vec<String> = cases
        .iter()
        .map(|(rule, _)| rule.to_ascii_lowercase())
        .collect();
    let objects = cases
        .iter()
        .zip(&names)
        .map(|((_, edit), name)| with(name, *edit))
        .collect();
    let found = audit(objects).await;
    for ((rule, _), name) in cases.iter().zip(&names) {
        assert!(
            fired(&found, rule, name),
            "{rule} should fire on {name}: {found:?}"
        );
    }
    // Every rule of the probe is covered by a case above.
    let (_, info) = workload_audit().await;
    for rule in &info.rules {
        assert!(
            cases.iter().any(|(r, _)| *r == rule.id),
            "no test case for {}",
            rule.id
        );
    }
}

#[tokio::test]
async fn kubernetes_semantics_prevent_false_positives() {
    let objects = vec![
        // Requests default to limits.
        with("limits-only", |s| {
            container(s)["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        }),
        // Pod-level resources cover every container.
        with("pod-resources", |s| {
            container(s).as_object_mut().unwrap().remove("resources");
            s["resources"] = json!({"limits": {"cpu": "1", "memory": "1Gi"}});
        }),
        // A non-zero runAsUser runs as non-root even without runAsNonRoot.
        with("uid-1000", |s| {
            s.as_object_mut().unwrap().remove("securityContext");
            container(s)["securityContext"]["runAsUser"] = json!(1000);
        }),
        // Pod-level runAsUser is inherited.
        with("pod-uid", |s| {
            s["securityContext"] = json!({"runAsUser": 2000});
        }),
        // A digest pins the image; a registry port is not a tag.
        with("digest", |s| {
            container(s)["image"] = json!(
                "registry.local:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            );
        }),
        // `latest` defaults the pull policy to Always (only the tag itself is a finding).
        with("latest-default-policy", |s| {
            container(s)["image"] = json!("nginx:latest");
            container(s)
                .as_object_mut()
                .unwrap()
                .remove("imagePullPolicy");
        }),
        // Init containers cannot have probes; their absence is no finding.
        with("init", |s| {
            let mut init = s["containers"][0].clone();
            init["name"] = json!("migrate");
            init.as_object_mut().unwrap().remove("livenessProbe");
            init.as_object_mut().unwrap().remove("readinessProbe");
            s["initContainers"] = json!([init]);
        }),
        // Windows pods cannot set Linux security settings.
        with("windows", |s| {
            s["os"] = json!({"name": "windows"});
            s.as_object_mut().unwrap().remove("securityContext");
            container(s)
                .as_object_mut()
                .unwrap()
                .remove("securityContext");
        }),
        // Dropping capabilities is not adding them.
        with("drop-only", |s| {
            container(s)["securityContext"]["capabilities"] = json!({"drop": ["ALL", "NET_RAW"]});
        }),
    ];
    let found = audit(objects).await;
    let expected = vec![(
        "ImageTagIsLatest".to_string(),
        "latest-default-policy".to_string(),
    )];
    assert_eq!(found, expected, "no other rule may fire on these");
}

#[tokio::test]
async fn edge_cases_that_do_fire() {
    let objects = vec![
        // A sidecar (init container with restartPolicy Always) needs probes.
        with("sidecar", |s| {
            let mut side = s["containers"][0].clone();
            side["name"] = json!("proxy");
            side["restartPolicy"] = json!("Always");
            side.as_object_mut().unwrap().remove("livenessProbe");
            s["initContainers"] = json!([side]);
        }),
        // runAsUser 0 overrides the pod's runAsNonRoot? No: runAsNonRoot wins (the kubelet refuses to start it).
        // But a container that sets runAsNonRoot false over the pod's true may run as root.
        with("override", |s| {
            container(s)["securityContext"]["runAsNonRoot"] = json!(false);
        }),
        // No tag and an explicit IfNotPresent.
        with("untagged", |s| {
            container(s)["image"] = json!("redis");
            container(s)["imagePullPolicy"] = json!("IfNotPresent");
        }),
    ];
    let found = audit(objects).await;
    assert!(fired(&found, "NoLivenessProbe", "sidecar"), "{found:?}");
    assert!(!fired(&found, "NoReadinessProbe", "sidecar"));
    assert!(fired(&found, "NotRunAsNonRoot", "override"));
    assert!(fired(&found, "ImageTagMiss", "untagged"));
    assert!(fired(&found, "ImagePullPolicyNotAlways", "untagged"));
    assert_eq!(found.len(), 4, "{found:?}");
}

#[tokio::test]
async fn controlled_objects_are_reported_at_their_controller() {
    let bad = |kind: &str, api: &str, name: &str, owner: Option<&str>| {
        let mut o = json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": "t", "uid": format!("uid-{name}")},
            "spec": {"hostPID": true, "containers": [{"name": "c", "image": "x:1"}]}});
        if let Some(owner) = owner {
            o["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": format!("uid-{owner}"), "controller": true}]);
        }
        o
    };
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "rs", "namespace": "t", "uid": "uid-rs"},
        "spec": {"selector": {}, "template": {"spec": {"hostPID": true, "containers": [{"name": "c", "image": "x:1"}]}}}});
    let objects = vec![
        rs,
        bad("Pod", "v1", "owned", Some("rs")),
        bad("Pod", "v1", "orphan", Some("gone")),
        bad("Pod", "v1", "bare", None),
    ];
    let found = audit(objects).await;
    let host_pid: Vec<&str> = found
        .iter()
        .filter(|(r, _)| r == "HostPIDAllowed")
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(host_pid, vec!["bare", "orphan", "rs"]);
}

#[tokio::test]
async fn unreadable_objects_are_skipped_not_fatal() {
    let broken = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "broken", "namespace": "t"},
        "spec": {"template": {"spec": {"containers": "not-a-list"}}}});
    let found = audit(vec![
        broken,
        with("nopc", |s| {
            s.as_object_mut().unwrap().remove("priorityClassName");
        }),
    ])
    .await;
    assert_eq!(
        found,
        vec![("NoPriorityClassName".to_string(), "nopc".to_string())]
    );
}
