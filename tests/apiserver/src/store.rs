//! Objects the fake server answers with when no recording matches: seeded
//! from the recorded cluster-wide lists (so every recorded object is there),
//! replaceable by generated objects, and served in the recorded shapes:
//! lists ordered by namespace/name, `limit` with the apiserver's continue
//! token and `remainingItemCount`, and Status objects worded as RBAC and the
//! registry word them.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

/// One resource the server knows (from the recorded discovery documents).
#[derive(Debug, Clone)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`: how Status messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Objects per resource.
pub struct Store {
    pub resources: Vec<Resource>,
    /// (group, plural) -> items keyed by "namespace/name".
    pub objects: BTreeMap<(String, String), BTreeMap<String, Value>>,
    pub resource_version: u64,
}

/// Every served resource, from the recorded aggregated discovery documents (all groups, all versions).
fn discovered(responses: &Path) -> Vec<Resource> {
    let mut resources = Vec::new();
    for file in [
        "discovery-aggregated-api.json",
        "discovery-aggregated-apis.json",
    ] {
        let doc: Value =
            serde_json::from_slice(&std::fs::read(responses.join(file)).unwrap()).unwrap();
        for group in doc["items"].as_array().into_iter().flatten() {
            let name = group["metadata"]["name"].as_str().unwrap_or_default();
            for version in group["versions"].as_array().into_iter().flatten() {
                let v = version["version"].as_str().unwrap_or_default();
                for r in version["resources"].as_array().into_iter().flatten() {
                    resources.push(Resource {
                        group: name.into(),
                        version: v.into(),
                        plural: r["resource"].as_str().unwrap_or_default().into(),
                        kind: r["responseKind"]["kind"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                        namespaced: r["scope"].as_str() == Some("Namespaced"),
                    });
                }
            }
        }
    }
    resources
}

impl Store {
    /// The resources of the recorded discovery documents, and the objects of the recorded lists.
    pub fn seed(responses: &Path) -> Self {
        let resources = discovered(responses);
        let mut store = Store {
            resources,
            objects: BTreeMap::new(),
            resource_version: 308,
        };
        for r in store.resources.clone() {
            let file = responses.join(format!("list-{}.json", r.plural));
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let list: Value = serde_json::from_slice(&bytes).unwrap();
            if list["apiVersion"].as_str() != Some(r.api_version().as_str()) {
                continue; // e.g. list-events-v1.json vs core events
            }
            let items = list["items"].as_array().cloned().unwrap_or_default();
            store.set(&r.group, &r.plural, items);
        }
        store
    }

    /// Replaces every object of a resource.
    pub fn set(&mut self, group: &str, plural: &str, items: Vec<Value>) {
        let map = items
            .into_iter()
            .map(|item| (key_of(&item), item))
            .collect();
        self.objects
            .insert((group.to_string(), plural.to_string()), map);
    }

    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }
}

pub fn key_of(item: &Value) -> String {
    let ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = item["metadata"]["name"].as_str().unwrap_or_default();
    if ns.is_empty() {
        name.to_string()
    } else {
        format!("{ns}/{name}")
    }
}

/// The apiserver's continue token: base64url of `{"v":"meta.k8s.io/v1","rv":RV,"start":"KEY\u0000"}`.
pub fn continue_token(rv: u64, last_key: &str) -> String {
    let doc = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}")});
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// A continue token with any RV (the apiserver offers `-1` after an expiry).
pub fn continue_token_raw(rv: i64, start_key: &str) -> String {
    let doc = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{start_key}\u{0}")});
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

/// The key a continue token resumes after, and its RV.
pub fn parse_continue(token: &str) -> Option<(i64, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    let start = doc["start"].as_str()?.trim_end_matches('\u{0}').to_string();
    Some((doc["rv"].as_i64()?, start))
}

/// A `kind: Status` failure in the apiserver's shape.
pub fn status(code: u16, reason: &str, message: &str, details: Value) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code})
}

/// An object with `kind` and `apiVersion` first, as a GET returns it.
pub fn with_type(r: &Resource, item: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(r.kind.clone()));
    out.insert("apiVersion".into(), Value::String(r.api_version()));
    if let Some(obj) = item.as_object() {
        for (k, v) in obj {
            if k != "kind" && k != "apiVersion" {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}
