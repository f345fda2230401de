//! The few validations the fake server performs on writes, worded and shaped
//! exactly as the recorded kube-apiserver answered (`error-422-*.json`):
//! object names (RFC 1123 subdomains), a pod container's required image, a
//! Deployment's replicas and selector.

use serde_json::{Value, json};

use crate::store::Resource;

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

struct Cause {
    reason: &'static str,
    message: String,
    field: String,
}

fn is_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Go's `%#v` of a `map[string]string`: keys sorted.
fn go_map(labels: &Value) -> String {
    let mut pairs: Vec<(String, String)> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

fn causes(resource: &Resource, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if !is_subdomain(name) {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {name:?}: {SUBDOMAIN}"),
            field: "metadata.name".into(),
        });
    }
    if resource.kind == "Pod" {
        for (i, c) in object["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if c["image"].as_str().unwrap_or_default().is_empty() {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    message: "Required value".into(),
                    field: format!("spec.containers[{i}].image"),
                });
            }
        }
    }
    if resource.kind == "Deployment" {
        if let Some(r) = object["spec"]["replicas"].as_i64().filter(|r| *r < 0) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {r}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            });
        }
        let selector = &object["spec"]["selector"]["matchLabels"];
        let labels = &object["spec"]["template"]["metadata"]["labels"];
        let matches = selector
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        if !matches {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    go_map(labels)
                ),
                field: "spec.template.metadata.labels".into(),
            });
        }
    }
    causes
}

/// The 422 Status for an invalid object, or `None` when it passes.
pub fn invalid(resource: &Resource, object: &Value) -> Option<Value> {
    let causes = causes(resource, object);
    if causes.is_empty() {
        return None;
    }
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let what = if resource.group.is_empty() {
        resource.kind.clone()
    } else {
        format!("{}.{}", resource.kind, resource.group)
    };
    let list: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let summary = if list.len() == 1 {
        list[0].clone()
    } else {
        format!("[{}]", list.join(", "))
    };
    let mut details = json!({"name": name});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    details["kind"] = json!(resource.kind);
    details["causes"] = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    Some(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{what} {name:?} is invalid: {summary}"), "reason": "Invalid", "details": details, "code": 422}),
    )
}
