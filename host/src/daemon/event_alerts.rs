//! Alerts on the cluster's events (seed 003's event alarms: a pod that
//! cannot be scheduled, an image that cannot be pulled, a container in a
//! restart loop): each occurrence the daemon keeps (`daemon::history`) is
//! sent, once, to every alert destination whose `events` choose it by type,
//! reason, namespace and object kind, one request per pass and destination,
//! in the destination's format (Sonde's JSON, Alertmanager alerts, Slack
//! text) and with its retries. Occurrences older than the destination's
//! `max_age_minutes` when first read are kept and not sent: a first start
//! finds the API server's last hour, which is history, not news.
//!
//! An event's text is the cluster's (anyone who may create an Event
//! writes it): it is carried as JSON strings, and escaped in Slack text as
//! findings are.

use serde_json::{Value, json};

use super::Daemon;
use super::alerts::{MAX_PER_REQUEST, deliver, slack_escape};
use super::config::{AlertFormat, EventAlertConfig};
use crate::store::CollectorEventRow;

fn field<'a>(row: &'a CollectorEventRow, name: &str) -> &'a str {
    row.fields.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Whether `filter` chooses `row`, read at `now_ms`.
pub fn chooses(filter: &EventAlertConfig, row: &CollectorEventRow, now_ms: i64) -> bool {
    let holds = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
    let max_age_ms = i64::try_from(filter.max_age_minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(60_000);
    holds(&filter.types, field(row, "type"))
        && holds(&filter.reasons, &row.kind)
        && holds(&filter.namespaces, row.namespace.as_deref().unwrap_or(""))
        && holds(&filter.kinds, field(row, "object_kind"))
        && now_ms.saturating_sub(row.ts_ms) <= max_age_ms
}

impl Daemon {
    /// Sends the occurrences just kept to the destinations that choose
    /// them; the deliveries go on in tasks of their own.
    pub(super) fn alert_events(&self, client: &reqwest::Client, rows: &[CollectorEventRow]) {
        let loaded = self.loaded();
        let now = jiff::Timestamp::now().as_millisecond();
        let external = loaded.checked.config.external_url.as_deref();
        for sink in &loaded.checked.alerts {
            let Some(filter) = &sink.config.events else {
                continue;
            };
            let chosen: Vec<&CollectorEventRow> =
                rows.iter().filter(|r| chooses(filter, r, now)).collect();
            if chosen.is_empty() {
                continue;
            }
            let mut body = render(sink.config.format, &chosen, external);
            super::alerts::name_cluster(
                sink.config.format,
                &mut body,
                loaded.checked.config.cluster_name.as_deref(),
            );
            let (client, sink, metrics) = (client.clone(), sink.clone(), self.clone());
            tokio::spawn(async move {
                let sent = deliver(&client, &sink, &body).await;
                metrics.metrics().record_alert(&sink.config.name, sent);
            });
        }
    }
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The object an event is about, as `Kind namespace/name`.
fn subject(row: &CollectorEventRow) -> String {
    let kind = field(row, "object_kind");
    let name = field(row, "object_name");
    match row.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    }
}

/// The link to the kept events of the object's namespace.
fn history_url(external: &str, row: &CollectorEventRow) -> String {
    let mut pairs = vec![
        ("collector", "kube-events".to_string()),
        ("minutes", "1440".to_string()),
    ];
    if let Some(ns) = row.namespace.as_deref().filter(|n| !n.is_empty()) {
        pairs.push(("where", format!("namespace={ns}")));
    }
    format!(
        "{}/#/history?{}",
        external.trim_end_matches('/'),
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    )
}

/// The request body for `format`: at most [`MAX_PER_REQUEST`] occurrences,
/// the total said.
pub fn render(format: AlertFormat, rows: &[&CollectorEventRow], external: Option<&str>) -> Value {
    let head = &rows[..rows.len().min(MAX_PER_REQUEST)];
    match format {
        AlertFormat::Json => json!({
            "source": "sonde",
            "kind": "events",
            "total": rows.len(),
            "events": head.iter().map(|r| json!({
                "time": time(r.ts_ms),
                "type": field(r, "type"),
                "reason": r.kind,
                "namespace": r.namespace,
                "object": {"kind": field(r, "object_kind"), "name": field(r, "object_name")},
                "message": field(r, "message"),
                "count": r.fields.get("count").cloned().unwrap_or(Value::Null),
                "node": r.node,
                "source": field(r, "source"),
                "url": external.map(|u| history_url(u, r)),
            })).collect::<Vec<_>>(),
        }),
        AlertFormat::Alertmanager => Value::Array(
            head.iter()
                .map(|r| {
                    let mut labels = json!({
                        "alertname": "KubernetesEvent",
                        "reason": r.kind,
                        "type": field(r, "type"),
                        "source": "sonde",
                    });
                    for (k, v) in [
                        ("namespace", r.namespace.as_deref().unwrap_or("")),
                        ("kind", field(r, "object_kind")),
                        ("name", field(r, "object_name")),
                    ] {
                        if !v.is_empty() {
                            labels[k] = Value::String(v.to_string());
                        }
                    }
                    let mut a = json!({
                        "labels": labels,
                        "annotations": {
                            "summary": field(r, "message"),
                            "count": r.fields.get("count").map(Value::to_string).unwrap_or_default(),
                        },
                        "startsAt": time(r.ts_ms),
                    });
                    if let Some(u) = external {
                        a["generatorURL"] = Value::String(history_url(u, r));
                    }
                    a
                })
                .collect(),
        ),
        AlertFormat::Slack => {
            let mut text = format!("*Sonde*: {} Kubernetes events", rows.len());
            for r in head {
                let count = r.fields.get("count").and_then(Value::as_i64).unwrap_or(1);
                let what = format!(
                    "{} {} on {}{}: {}",
                    field(r, "type"),
                    r.kind,
                    subject(r),
                    if count > 1 {
                        format!(" (x{count})")
                    } else {
                        String::new()
                    },
                    field(r, "message")
                );
                text.push_str("\n• ");
                text.push_str(&slack_escape(&what));
            }
            if rows.len() > head.len() {
                text.push_str(&format!("\n… and {} more", rows.len() - head.len()));
            }
            json!({ "text": text })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn row(ts_ms: i64, kind: &str, reason: &str, ns: &str, message: &str) -> CollectorEventRow {
        let mut fields = Map::new();
        fields.insert("type".into(), kind.into());
        fields.insert("message".into(), message.into());
        fields.insert("object_kind".into(), "Pod".into());
        fields.insert("object_name".into(), "web-0".into());
        fields.insert("count".into(), 5.into());
        CollectorEventRow {
            ts_ms,
            node: "node-1".into(),
            collector: "kube-events".into(),
            kind: reason.into(),
            namespace: Some(ns.into()),
            pod: Some("web-0".into()),
            container: None,
            pod_uid: None,
            container_id: None,
            cgroup: None,
            pid: None,
            comm: None,
            fields,
        }
    }

    fn filter(yaml: &str) -> EventAlertConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_filter_chooses_by_type_reason_namespace_kind_and_age() {
        let now = 1_800_000_000_000;
        let warning = row(now - 60_000, "Warning", "BackOff", "shop", "m");
        let normal = row(now - 60_000, "Normal", "Pulled", "shop", "m");
        let old = row(now - 16 * 60_000, "Warning", "BackOff", "shop", "m");
        let any = filter("{}");
        assert!(chooses(&any, &warning, now));
        assert!(!chooses(&any, &normal, now), "Warning only by default");
        assert!(!chooses(&any, &old, now), "older than 15 minutes");
        assert!(chooses(&filter("{max_age_minutes: 20}"), &old, now));
        assert!(chooses(&filter("{types: [Normal, Warning]}"), &normal, now));
        assert!(chooses(
            &filter("{reasons: [BackOff, Failed]}"),
            &warning,
            now
        ));
        assert!(!chooses(&filter("{reasons: [Failed]}"), &warning, now));
        assert!(!chooses(
            &filter("{namespaces: [kube-system]}"),
            &warning,
            now
        ));
        assert!(chooses(&filter("{kinds: [Pod]}"), &warning, now));
        assert!(!chooses(&filter("{kinds: [Node]}"), &warning, now));
    }

    #[test]
    fn each_format_carries_the_events_and_slack_text_is_escaped() {
        let r = row(
            1_800_000_000_000,
            "Warning",
            "BackOff",
            "shop",
            "<!channel> back-off & <http://x|y>",
        );
        let rows = vec![&r];
        let j = render(AlertFormat::Json, &rows, Some("https://sonde.example/"));
        assert_eq!(j["total"], 1);
        assert_eq!(j["events"][0]["reason"], "BackOff");
        assert_eq!(j["events"][0]["object"]["name"], "web-0");
        assert_eq!(j["events"][0]["count"], 5);
        assert_eq!(j["events"][0]["time"], "2027-01-15T08:00:00Z");
        assert_eq!(
            j["events"][0]["url"],
            "https://sonde.example/#/history?collector=kube-events&minutes=1440&where=namespace%3Dshop"
        );
        let a = render(AlertFormat::Alertmanager, &rows, None);
        assert_eq!(a[0]["labels"]["alertname"], "KubernetesEvent");
        assert_eq!(a[0]["labels"]["reason"], "BackOff");
        assert_eq!(a[0]["labels"]["namespace"], "shop");
        assert_eq!(a[0]["startsAt"], "2027-01-15T08:00:00Z");
        assert!(a[0].get("endsAt").is_none());
        let s = render(AlertFormat::Slack, &rows, None);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("Warning BackOff on Pod shop/web-0 (x5): &lt;!channel&gt; back-off &amp; &lt;http://x|y&gt;"), "{text}");
        assert!(!text.contains("<!channel>"));
    }

    #[test]
    fn a_request_holds_at_most_a_hundred_events_and_says_how_many() {
        let many: Vec<CollectorEventRow> = (0..150)
            .map(|i| row(i, "Warning", "Failed", "shop", "m"))
            .collect();
        let refs: Vec<&CollectorEventRow> = many.iter().collect();
        let j = render(AlertFormat::Json, &refs, None);
        assert_eq!(j["total"], 150);
        assert_eq!(j["events"].as_array().unwrap().len(), 100);
        let s = render(AlertFormat::Slack, &refs, None);
        assert!(s["text"].as_str().unwrap().ends_with("… and 50 more"));
    }
}
