//! The API server's audit records (`audit.k8s.io/v1` `Event`), as its audit
//! webhook sends them (one `EventList` per POST, `--audit-webhook-mode=batch`)
//! or its log backend writes them (`--audit-log-format=json`: one `Event` per
//! line): checked, and turned into rows of the `kube-audit` collector, which
//! probes query through `sonde:probe/collectors` like the node collectors.
//!
//! What is kept of a record: who (user, groups, impersonation, source IP,
//! user agent), what (verb, resource, subresource, namespace, name, URI),
//! the answer (code, the authorizer's decision and reason), when (the stage's
//! time, and the latency since the request was received), and for a
//! (Cluster)RoleBinding written at `Request` level or above, the role it
//! binds and its subjects. Request and response bodies are not kept.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::runtime::cut;
use crate::store::CollectorEventRow;

/// The collector's name.
pub const COLLECTOR: &str = "kube-audit";
/// What the `node` column of its rows holds: where the records come from.
pub const SOURCE: &str = "kube-apiserver";
/// The longest text kept of one field (a URI, a user agent); longer is cut,
/// on a character boundary, marked `…[truncated]`.
const MAX_TEXT: usize = 2048;

/// Why audit records cannot be taken, and where.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuditError {
    #[error("not an audit.k8s.io/v1 EventList: {0}")]
    NotAList(String),
    #[error("kind is {0:?}; the audit webhook sends an EventList")]
    Kind(String),
    #[error("apiVersion is {0:?}; Sonde reads audit.k8s.io/v1 (Kubernetes 1.12 and later)")]
    Version(String),
    #[error("{at}: {problem}")]
    Record { at: String, problem: String },
}

/// One record: its identity (the same request's stages share the id) and its row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub audit_id: String,
    pub stage: String,
    pub row: CollectorEventRow,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventList {
    kind: Option<String>,
    api_version: Option<String>,
    #[serde(default)]
    items: Vec<Event>,
}

/// A list's kind and version alone, to say what a body that is not an
/// audit EventList is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListHead {
    kind: Option<String>,
    api_version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserInfo {
    username: Option<String>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ObjectRef {
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    api_group: Option<String>,
    subresource: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseStatus {
    code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    kind: Option<String>,
    api_version: Option<String>,
    level: String,
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    verb: String,
    #[serde(default)]
    user: UserInfo,
    impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs")]
    source_ips: Option<Vec<String>>,
    user_agent: Option<String>,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
    request_object: Option<Value>,
    request_received_timestamp: Option<String>,
    stage_timestamp: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

const LEVELS: &[&str] = &["None", "Metadata", "Request", "RequestResponse"];
const STAGES: &[&str] = &[
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];

/// The records of a webhook POST's body: an `EventList`. Every record is
/// checked before any is returned; the first bad one is named
/// (`items[3].stage: ...`).
pub fn parse_event_list(body: &[u8]) -> Result<Vec<AuditRecord>, AuditError> {
    let check_head = |kind: Option<&str>, version: Option<&str>| {
        match kind {
            Some("EventList") => {}
            other => return Err(AuditError::Kind(other.unwrap_or_default().to_string())),
        }
        check_version(version)
    };
    // One typed pass; where it fails, the path says which record and field.
    let mut de = serde_json::Deserializer::from_slice(body);
    let list: EventList = match serde_path_to_error::deserialize(&mut de) {
        Ok(list) => list,
        Err(e) => {
            // Not an audit list at all is said as such, before any record.
            let head: ListHead =
                serde_json::from_slice(body).map_err(|e| AuditError::NotAList(e.to_string()))?;
            check_head(head.kind.as_deref(), head.api_version.as_deref())?;
            let at = e.path().to_string();
            let problem = e.into_inner().to_string();
            return Err(if at.starts_with("items[") {
                AuditError::Record { at, problem }
            } else {
                AuditError::NotAList(problem)
            });
        }
    };
    check_head(list.kind.as_deref(), list.api_version.as_deref())?;
    list.items
        .into_iter()
        .enumerate()
        .map(|(i, event)| record(event, &format!("items[{i}]")))
        .collect()
}

/// The records of an audit log (`--audit-log-format=json`): one `Event` per
/// line, each with its own kind and apiVersion; blank lines are skipped.
/// A bad line is named (`line 12: ...`).
pub fn parse_log_lines(text: &str) -> Result<Vec<AuditRecord>, AuditError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {}", n + 1);
        let mut de = serde_json::Deserializer::from_str(line);
        let event = serde_path_to_error::deserialize::<_, Event>(&mut de).map_err(|e| {
            AuditError::Record {
                at: path_at(&at, e.path()),
                problem: e.into_inner().to_string(),
            }
        })?;
        if let Some(kind) = event.kind.as_deref().filter(|k| *k != "Event") {
            return Err(AuditError::Record {
                at,
                problem: format!("kind is {kind:?}, not an audit Event"),
            });
        }
        check_version(event.api_version.as_deref()).map_err(|e| AuditError::Record {
            at: at.clone(),
            problem: e.to_string(),
        })?;
        out.push(record(event, &at)?);
    }
    Ok(out)
}

fn path_at(at: &str, path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." || path.is_empty() {
        at.to_string()
    } else {
        format!("{at}.{path}")
    }
}

fn check_version(v: Option<&str>) -> Result<(), AuditError> {
    match v {
        // A webhook list's items carry none; the list does.
        None | Some("audit.k8s.io/v1") => Ok(()),
        Some(other) => Err(AuditError::Version(other.to_string())),
    }
}

/// One checked record as a collector row.
fn record(e: Event, at: &str) -> Result<AuditRecord, AuditError> {
    let bad = |field: &str, problem: String| AuditError::Record {
        at: format!("{at}.{field}"),
        problem,
    };
    if e.audit_id.is_empty() || e.audit_id.len() > 128 {
        return Err(bad("auditID", "must be 1 to 128 bytes".into()));
    }
    if !STAGES.contains(&e.stage.as_str()) {
        return Err(bad(
            "stage",
            format!("{:?} is not one of {}", e.stage, STAGES.join(", ")),
        ));
    }
    if !LEVELS.contains(&e.level.as_str()) {
        return Err(bad(
            "level",
            format!("{:?} is not one of {}", e.level, LEVELS.join(", ")),
        ));
    }
    if e.verb.is_empty() || e.verb.len() > 64 {
        return Err(bad("verb", "must be 1 to 64 bytes".into()));
    }
    let time = |field: &str, t: Option<&String>| {
        t.map(|t| {
            t.parse::<jiff::Timestamp>()
                .map_err(|err| bad(field, format!("{t:?} is not an RFC 3339 time: {err}")))
        })
        .transpose()
    };
    let received = time(
        "requestReceivedTimestamp",
        e.request_received_timestamp.as_ref(),
    )?;
    let stage = time("stageTimestamp", e.stage_timestamp.as_ref())?;
    let Some(when) = stage.or(received) else {
        return Err(bad(
            "stageTimestamp",
            "missing, and so is requestReceivedTimestamp: the record has no time".into(),
        ));
    };
    let mut fields = Map::new();
    let mut put = |name: &str, value: Value| {
        if !value.is_null() {
            fields.insert(name.to_string(), value);
        }
    };
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::String(cut(s, MAX_TEXT)));
    put("audit_id", Value::String(e.audit_id.clone()));
    put("stage", Value::String(e.stage.clone()));
    put("level", Value::String(e.level.clone()));
    put("user", text(e.user.username.as_deref()));
    if let Some(groups) = e.user.groups.as_ref().filter(|g| !g.is_empty()) {
        put("groups", Value::String(cut(&groups.join(","), MAX_TEXT)));
    }
    if let Some(imp) = &e.impersonated_user {
        put("impersonated_user", text(imp.username.as_deref()));
    }
    put(
        "source_ip",
        text(
            e.source_ips
                .as_ref()
                .and_then(|ips| ips.first())
                .map(String::as_str),
        ),
    );
    put("user_agent", text(e.user_agent.as_deref()));
    put("request_uri", Value::String(cut(&e.request_uri, MAX_TEXT)));
    let object = e.object_ref.unwrap_or_default();
    put("resource", text(object.resource.as_deref()));
    put("subresource", text(object.subresource.as_deref()));
    put("api_group", text(object.api_group.as_deref()));
    put("name", text(object.name.as_deref()));
    if let Some(code) = e.response_status.and_then(|s| s.code) {
        put("code", Value::from(code));
    }
    let annotations = e.annotations.unwrap_or_default();
    put(
        "decision",
        text(
            annotations
                .get("authorization.k8s.io/decision")
                .map(String::as_str),
        ),
    );
    put(
        "reason",
        text(
            annotations
                .get("authorization.k8s.io/reason")
                .map(String::as_str)
                .filter(|r| !r.is_empty()),
        ),
    );
    if let (Some(received), Some(stage)) = (received, stage) {
        let us = stage.as_microsecond() - received.as_microsecond();
        put("latency_ms", Value::from(us as f64 / 1000.0));
    }
    if matches!(
        object.resource.as_deref(),
        Some("rolebindings" | "clusterrolebindings")
    ) && let Some(binding) = &e.request_object
    {
        put("role_ref", text(role_ref(binding).as_deref()));
        put("subjects", text(subjects(binding).as_deref()));
    }
    let pod = (object.resource.as_deref() == Some("pods"))
        .then(|| object.name.clone())
        .flatten();
    Ok(AuditRecord {
        audit_id: e.audit_id,
        stage: e.stage,
        row: CollectorEventRow {
            ts_ms: when.as_millisecond(),
            node: SOURCE.to_string(),
            collector: COLLECTOR.to_string(),
            kind: e.verb,
            namespace: object.namespace.filter(|n| !n.is_empty()),
            pod,
            container: None,
            pod_uid: None,
            container_id: None,
            cgroup: None,
            pid: None,
            comm: None,
            fields,
        },
    })
}

/// A binding's role as `Kind/name` (`ClusterRole/cluster-admin`).
fn role_ref(binding: &Value) -> Option<String> {
    let r = binding.get("roleRef")?;
    Some(format!(
        "{}/{}",
        r.get("kind")?.as_str()?,
        r.get("name")?.as_str()?
    ))
}

/// A binding's subjects as `Kind:name` (a service account as
/// `ServiceAccount:namespace/name`), comma-separated.
fn subjects(binding: &Value) -> Option<String> {
    let list = binding.get("subjects")?.as_array()?;
    let names: Vec<String> = list
        .iter()
        .filter_map(|s| {
            let kind = s.get("kind")?.as_str()?;
            let name = s.get("name")?.as_str()?;
            Some(match s.get("namespace").and_then(Value::as_str) {
                Some(ns) if kind == "ServiceAccount" => format!("{kind}:{ns}/{name}"),
                _ => format!("{kind}:{name}"),
            })
        })
        .collect();
    Some(names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items
        }))
        .unwrap()
    }

    fn event() -> Value {
        serde_json::json!({
            "level": "RequestResponse",
            "auditID": "a1",
            "stage": "ResponseComplete",
            "requestURI": "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings",
            "verb": "create",
            "user": {"username": "alice", "groups": ["dev", "system:authenticated"]},
            "impersonatedUser": {"username": "bob"},
            "sourceIPs": ["10.0.0.7", "10.0.0.1"],
            "userAgent": "kubectl/v1.28",
            "objectRef": {"resource": "rolebindings", "namespace": "shop", "name": "x",
                "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 201},
            "requestObject": {"kind": "RoleBinding", "roleRef": {"kind": "ClusterRole",
                "name": "cluster-admin", "apiGroup": "rbac.authorization.k8s.io"},
                "subjects": [{"kind": "User", "name": "mallory"},
                    {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}]},
            "requestReceivedTimestamp": "2026-11-22T18:20:46.244211Z",
            "stageTimestamp": "2026-11-22T18:20:46.246711Z",
            "annotations": {"authorization.k8s.io/decision": "allow",
                "authorization.k8s.io/reason": "RBAC: allowed"}
        })
    }

    #[test]
    fn a_record_keeps_who_what_answer_and_when() {
        let records = parse_event_list(&list(serde_json::json!([event()]))).unwrap();
        let r = &records[0];
        assert_eq!(
            (r.audit_id.as_str(), r.stage.as_str()),
            ("a1", "ResponseComplete")
        );
        assert_eq!(r.row.kind, "create");
        assert_eq!(r.row.namespace.as_deref(), Some("shop"));
        assert_eq!(r.row.pod, None);
        assert_eq!(r.row.node, SOURCE);
        let ts = "2026-11-22T18:20:46.246711Z"
            .parse::<jiff::Timestamp>()
            .unwrap();
        assert_eq!(r.row.ts_ms, ts.as_millisecond());
        let f = &r.row.fields;
        assert_eq!(f["user"], "alice");
        assert_eq!(f["groups"], "dev,system:authenticated");
        assert_eq!(f["impersonated_user"], "bob");
        assert_eq!(f["source_ip"], "10.0.0.7");
        assert_eq!(f["code"], 201);
        assert_eq!(f["decision"], "allow");
        assert_eq!(f["reason"], "RBAC: allowed");
        assert_eq!(f["latency_ms"], 2.5);
        assert_eq!(f["role_ref"], "ClusterRole/cluster-admin");
        assert_eq!(f["subjects"], "User:mallory,ServiceAccount:tools/ci");
        assert!(!f.contains_key("subresource"));
    }

    #[test]
    fn bad_records_are_named_where_they_are() {
        let mut no_stage = event();
        no_stage.as_object_mut().unwrap().remove("stage");
        let err = parse_event_list(&list(serde_json::json!([event(), no_stage]))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("items[1]: missing field `stage` at line 1 column "),
            "{err}"
        );

        let mut bad_groups = event();
        bad_groups["user"]["groups"] = serde_json::json!([1]);
        let err = parse_event_list(&list(serde_json::json!([bad_groups]))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("items[0].user.groups[0]: invalid type"),
            "{err}"
        );

        let mut bad_stage = event();
        bad_stage["stage"] = "Done".into();
        let err = parse_event_list(&list(serde_json::json!([bad_stage]))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("items[0].stage: \"Done\" is not one of")
        );

        let mut bad_time = event();
        bad_time["stageTimestamp"] = "yesterday".into();
        let err = parse_event_list(&list(serde_json::json!([bad_time]))).unwrap_err();
        assert!(
            err.to_string().starts_with("items[0].stageTimestamp: "),
            "{err}"
        );

        let mut v1beta1 = serde_json::from_slice::<Value>(&list(serde_json::json!([]))).unwrap();
        v1beta1["apiVersion"] = "audit.k8s.io/v1beta1".into();
        let err = parse_event_list(&serde_json::to_vec(&v1beta1).unwrap()).unwrap_err();
        assert_eq!(err, AuditError::Version("audit.k8s.io/v1beta1".into()));
        let err = parse_event_list(b"{\"kind\": \"PodList\"}").unwrap_err();
        assert_eq!(err, AuditError::Kind("PodList".into()));
        assert!(matches!(
            parse_event_list(b"[1"),
            Err(AuditError::NotAList(_))
        ));
    }

    #[test]
    fn log_lines_are_read_one_event_each() {
        let mut line = event();
        line["kind"] = "Event".into();
        line["apiVersion"] = "audit.k8s.io/v1".into();
        let text = format!("{line}\n\n{line}\n");
        assert_eq!(parse_log_lines(&text).unwrap().len(), 2);
        let err = parse_log_lines(&format!("{line}\n{{\"kind\": 1}}\n")).unwrap_err();
        assert!(err.to_string().starts_with("line 2"), "{err}");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let mut e = event();
        e["requestURI"] = format!("/{}", "é".repeat(3000)).into();
        let records = parse_event_list(&list(serde_json::json!([e]))).unwrap();
        let uri = records[0].row.fields["request_uri"].as_str().unwrap();
        assert!(
            uri.ends_with("…[truncated]") && uri.len() <= MAX_TEXT + 14,
            "{uri}"
        );
    }
}
