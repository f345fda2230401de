//! The workload kinds that run pods, as JSON: where each keeps its pod
//! spec, and the rule every workload probe reports by: an object controlled
//! by another listed object (a Deployment's ReplicaSets, their Pods, a
//! CronJob's Jobs) is reported once, at its controller.
//!
//! Probes that read objects as the API server's JSON (Rego rules, JSON-schema
//! checks) use this; `workload-audit` does the same over typed objects.

use std::collections::HashSet;

use serde_json::Value;

use crate::{ProbeError, ResourceRef, kube, log};

/// A workload kind and where it keeps its pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadKind {
    pub api_version: &'static str,
    pub group: &'static str,
    pub kind: &'static str,
    /// JSON pointer to the pod spec inside the object.
    pub pod_spec: &'static str,
}

/// Every workload kind, controllers first.
pub const KINDS: &[WorkloadKind] = &[
    WorkloadKind {
        api_version: "batch/v1",
        group: "batch",
        kind: "CronJob",
        pod_spec: "/spec/jobTemplate/spec/template/spec",
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "Deployment",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "StatefulSet",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "DaemonSet",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        api_version: "apps/v1",
        group: "apps",
        kind: "ReplicaSet",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        api_version: "batch/v1",
        group: "batch",
        kind: "Job",
        pod_spec: "/spec/template/spec",
    },
    WorkloadKind {
        api_version: "v1",
        group: "",
        kind: "Pod",
        pod_spec: "/spec",
    },
];

/// One listed object of a kind, as the API server's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The object, with `apiVersion` and `kind` set (list items may lack them).
    pub value: Value,
}

impl Object {
    /// `value` as an object of this kind: `apiVersion` and `kind` filled in when absent.
    pub fn new(api_version: &'static str, kind: &'static str, mut value: Value) -> Self {
        if let Some(map) = value.as_object_mut() {
            map.entry("apiVersion")
                .or_insert_with(|| Value::String(api_version.into()));
            map.entry("kind")
                .or_insert_with(|| Value::String(kind.into()));
        }
        Object {
            api_version,
            kind,
            value,
        }
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> Option<&str> {
        self.value.pointer("/metadata/uid").and_then(Value::as_str)
    }

    /// The uid of the owner reference marked `controller: true`.
    pub fn controller_uid(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)?
            .iter()
            .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
            .and_then(|o| o.get("uid"))
            .and_then(Value::as_str)
    }

    /// A reference to the object.
    pub fn resource(&self) -> ResourceRef {
        let meta = |field: &str| {
            self.value
                .get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        ResourceRef {
            api_version: self.api_version.into(),
            kind: self.kind.into(),
            namespace: meta("namespace").filter(|n| !n.is_empty()),
            name: meta("name").unwrap_or_default(),
            uid: meta("uid"),
        }
    }
}

/// A listed workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: &'static WorkloadKind,
    pub object: Object,
}

impl Workload {
    /// The pod spec (absent when the object has none).
    pub fn pod_spec(&self) -> Option<&Value> {
        self.object
            .value
            .pointer(self.kind.pod_spec)
            .filter(|v| v.is_object())
    }
}

/// Keeps the objects whose controller is not among them, in order: each
/// workload once, at the top of its chain of controllers that was listed.
pub fn top_level<T>(objects: Vec<T>, object: impl Fn(&T) -> &Object) -> Vec<T> {
    let uids: HashSet<String> = objects
        .iter()
        .filter_map(|o| object(o).uid().map(str::to_string))
        .collect();
    objects
        .into_iter()
        .filter(|o| !object(o).controller_uid().is_some_and(|c| uids.contains(c)))
        .collect()
}

/// Lists every object of a kind. A kind the cluster does not serve or the
/// grant does not cover is skipped with a warning (`Ok(None)`).
pub fn list_kind(
    api_version: &'static str,
    kind: &'static str,
    params: &kube::ListParams,
) -> Result<Option<Vec<Object>>, ProbeError> {
    match kube::list_values(api_version, kind, params) {
        Ok(items) => Ok(Some(
            items
                .into_iter()
                .map(|v| Object::new(api_version, kind, v))
                .collect(),
        )),
        Err(e @ (ProbeError::NotFound(_) | ProbeError::Denied(_))) => {
            log::warn(&format!("{kind} skipped: {e:?}"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Every workload of every kind, each once at its top-level listed controller.
pub fn list_top_level(params: &kube::ListParams) -> Result<Vec<Workload>, ProbeError> {
    let mut all = Vec::new();
    for kind in KINDS {
        for object in list_kind(kind.api_version, kind.kind, params)?.unwrap_or_default() {
            all.push(Workload { kind, object });
        }
    }
    Ok(top_level(all, |w| &w.object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &'static str, uid: &str, controller: Option<&str>) -> Object {
        let owners: Vec<Value> = controller
            .map(|c| json!({"uid": c, "controller": true, "kind": "X", "name": "x", "apiVersion": "v1"}))
            .into_iter()
            .collect();
        Object::new(
            "v1",
            kind,
            json!({"metadata": {"name": uid, "namespace": "ns", "uid": uid, "ownerReferences": owners}}),
        )
    }

    #[test]
    fn controlled_objects_are_reported_at_their_listed_controller() {
        let objects = vec![
            obj("Deployment", "d", None),
            obj("ReplicaSet", "rs", Some("d")),
            obj("Pod", "p", Some("rs")),
            // Its controller was not listed: reported itself.
            obj("Pod", "orphan", Some("gone")),
            obj("Pod", "bare", None),
        ];
        let kept: Vec<String> = top_level(objects, |o| o)
            .iter()
            .map(|o| o.resource().name)
            .collect();
        assert_eq!(kept, ["d", "orphan", "bare"]);
    }

    #[test]
    fn a_non_controller_owner_does_not_hide_an_object() {
        let mut pod = obj("Pod", "p", None);
        pod.value["metadata"]["ownerReferences"] = json!([{"uid": "d", "controller": false}]);
        let kept = top_level(vec![obj("Deployment", "d", None), pod], |o| o);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn list_items_get_kind_and_api_version() {
        let o = Object::new("apps/v1", "Deployment", json!({"metadata": {"name": "a"}}));
        assert_eq!(o.value["kind"], "Deployment");
        assert_eq!(o.value["apiVersion"], "apps/v1");
        let r = o.resource();
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.namespace),
            ("Deployment", "a", None)
        );
        let w = Workload {
            kind: &KINDS[1],
            object: Object::new(
                "apps/v1",
                "Deployment",
                json!({"spec": {"template": {"spec": {"containers": []}}}}),
            ),
        };
        assert_eq!(w.pod_spec(), Some(&json!({"containers": []})));
    }
}
