//! The cluster's events kept past the API server's one hour (its
//! `--event-ttl`): core/v1 `Event` objects, read from the cluster again and
//! again by the daemon (`daemon::history`), turned into rows of the
//! `kube-events` collector, one per occurrence. An event the API server
//! aggregates (the same reason and message again: `count`, or `series.count`)
//! is one object whose count grows; each count seen is one row, so a count
//! over a window is the number of occurrences seen in it. Probes query the
//! rows like the node collectors' (`collectors:kube-events`).

use serde_json::{Map, Value};

use crate::runtime::cut;
use crate::store::CollectorEventRow;

/// The collector's name.
pub const COLLECTOR: &str = "kube-events";
/// The `node` of an event that names none (not from a kubelet, not about a node).
pub const NO_NODE: &str = "cluster";
/// The longest message kept; longer is cut on a character boundary (`…[truncated]`).
const MAX_MESSAGE: usize = 4096;

/// One occurrence of an event: the key it is kept once by (its uid and
/// count) and its row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOccurrence {
    pub key: String,
    pub row: CollectorEventRow,
}

fn text<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str().filter(|s| !s.is_empty())
}

fn time_ms(v: &Value, path: &[&str]) -> Option<i64> {
    text(v, path)?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The occurrence an Event object stands for now; `None` for an object
/// without a uid or any time (not an Event the API server wrote).
pub fn occurrence(event: &Value) -> Option<EventOccurrence> {
    let uid = text(event, &["metadata", "uid"])?;
    // The newest occurrence's time: a series' last observation, the
    // aggregated event's last time, the new-style event time, or creation.
    let ts = time_ms(event, &["series", "lastObservedTime"])
        .or_else(|| time_ms(event, &["lastTimestamp"]))
        .or_else(|| time_ms(event, &["eventTime"]))
        .or_else(|| time_ms(event, &["metadata", "creationTimestamp"]))?;
    let count = event
        .get("series")
        .and_then(|s| s.get("count"))
        .or_else(|| event.get("count"))
        .and_then(Value::as_i64)
        .filter(|c| *c > 0)
        .unwrap_or(1);
    let object = event.get("involvedObject").unwrap_or(&Value::Null);
    let object_kind = text(object, &["kind"]);
    let object_name = text(object, &["name"]);
    let node = text(event, &["source", "host"])
        .or_else(|| {
            (object_kind == Some("Node"))
                .then_some(object_name)
                .flatten()
        })
        .unwrap_or(NO_NODE);
    let mut fields = Map::new();
    let mut put = |name: &str, v: Option<&str>| {
        if let Some(v) = v {
            fields.insert(name.to_string(), Value::String(cut(v, MAX_MESSAGE)));
        }
    };
    put("type", text(event, &["type"]));
    put("reason", text(event, &["reason"]));
    put("message", text(event, &["message"]));
    put("object_kind", object_kind);
    put("object_name", object_name);
    put("object_uid", text(object, &["uid"]));
    put("field_path", text(object, &["fieldPath"]));
    put(
        "source",
        text(event, &["source", "component"]).or_else(|| text(event, &["reportingComponent"])),
    );
    put("event", text(event, &["metadata", "name"]));
    fields.insert("count".into(), Value::from(count));
    if let Some(first) =
        time_ms(event, &["firstTimestamp"]).or_else(|| time_ms(event, &["eventTime"]))
    {
        fields.insert("first_seen".into(), Value::from(first));
    }
    let namespace =
        text(object, &["namespace"]).or_else(|| text(event, &["metadata", "namespace"]));
    Some(EventOccurrence {
        key: format!("{uid}/{count}"),
        row: CollectorEventRow {
            ts_ms: ts,
            node: node.to_string(),
            collector: COLLECTOR.to_string(),
            kind: text(event, &["reason"]).unwrap_or("Unknown").to_string(),
            namespace: namespace.map(String::from),
            pod: (object_kind == Some("Pod"))
                .then(|| object_name.map(String::from))
                .flatten(),
            container: None,
            pod_uid: (object_kind == Some("Pod"))
                .then(|| text(object, &["uid"]).map(String::from))
                .flatten(),
            container_id: None,
            cgroup: None,
            pid: None,
            comm: None,
            fields,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backoff(count: i64) -> Value {
        json!({
            "kind": "Event", "apiVersion": "v1",
            "metadata": {"name": "web-9hzrm.17a", "namespace": "shop", "uid": "e-1",
                "creationTimestamp": "2026-11-22T17:40:00Z"},
            "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-9hzrm",
                "uid": "p-1", "fieldPath": "spec.containers{web}"},
            "reason": "BackOff", "message": "Back-off restarting failed container",
            "source": {"component": "kubelet", "host": "node-2"},
            "firstTimestamp": "2026-11-22T17:40:00Z", "lastTimestamp": "2026-11-22T18:19:00Z",
            "count": count, "type": "Warning"
        })
    }

    #[test]
    fn each_count_of_an_event_is_one_occurrence() {
        let a = occurrence(&backoff(61)).unwrap();
        let b = occurrence(&backoff(62)).unwrap();
        assert_eq!((a.key.as_str(), b.key.as_str()), ("e-1/61", "e-1/62"));
        let r = &b.row;
        assert_eq!(r.kind, "BackOff");
        assert_eq!(r.node, "node-2");
        assert_eq!(
            (r.namespace.as_deref(), r.pod.as_deref()),
            (Some("shop"), Some("web-9hzrm"))
        );
        assert_eq!(r.pod_uid.as_deref(), Some("p-1"));
        let last = "2026-11-22T18:19:00Z".parse::<jiff::Timestamp>().unwrap();
        assert_eq!(r.ts_ms, last.as_millisecond());
        assert_eq!(r.fields["type"], "Warning");
        assert_eq!(r.fields["count"], 62);
        assert_eq!(r.fields["field_path"], "spec.containers{web}");
        assert_eq!(r.fields["source"], "kubelet");
    }

    #[test]
    fn a_series_or_a_node_event_is_read_as_the_api_server_writes_it() {
        let series = json!({
            "metadata": {"uid": "e-2", "namespace": "default", "creationTimestamp": "2026-11-22T18:00:00Z"},
            "involvedObject": {"kind": "Node", "name": "node-3"},
            "reason": "NodeNotReady", "eventTime": "2026-11-22T18:00:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2026-11-22T18:05:00.000000Z"},
            "reportingComponent": "node-controller", "type": "Normal"
        });
        let o = occurrence(&series).unwrap();
        assert_eq!(o.key, "e-2/4");
        assert_eq!(o.row.node, "node-3", "a node's event is on that node");
        assert_eq!(o.row.pod, None);
        assert_eq!(o.row.namespace.as_deref(), Some("default"));
        assert_eq!(o.row.fields["source"], "node-controller");
        let t = "2026-11-22T18:05:00Z".parse::<jiff::Timestamp>().unwrap();
        assert_eq!(o.row.ts_ms, t.as_millisecond());
        // Not an event the API server wrote: no uid, or no time at all.
        assert_eq!(occurrence(&json!({"reason": "X"})), None);
        assert_eq!(occurrence(&json!({"metadata": {"uid": "u"}})), None);
    }
}
