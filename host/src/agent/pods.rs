//! The pods of the node's cluster, by uid, container id and IP, from the
//! configured kube backend (live API server or snapshot), so that an event's
//! pod uid and container id become namespace, pod and container names.
//! Refreshed on a period and when an unknown uid shows up (rate-limited).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kube::{KindRef, KubeBackend, ListQuery};

/// What the directory knows of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Container id (without the `containerd://` scheme) -> container name.
    pub containers: HashMap<String, String>,
    pub node: Option<String>,
}

/// Pods by uid and by IP.
#[derive(Default)]
pub struct PodDirectory {
    backend: Option<Arc<dyn KubeBackend>>,
    by_uid: HashMap<String, Arc<PodInfo>>,
    by_ip: HashMap<IpAddr, Arc<PodInfo>>,
    last_refresh: Option<Instant>,
    /// Shortest time between two refreshes caused by unknown uids.
    pub min_refresh: Duration,
    /// Why the last refresh failed, if it did.
    pub last_error: Option<String>,
}

impl PodDirectory {
    pub fn new(backend: Option<Arc<dyn KubeBackend>>) -> Self {
        Self {
            backend,
            min_refresh: Duration::from_secs(2),
            ..Default::default()
        }
    }

    /// Lists every pod again (all pages).
    pub async fn refresh(&mut self) {
        let Some(backend) = self.backend.clone() else {
            return;
        };
        self.last_refresh = Some(Instant::now());
        let kind = KindRef::new("v1", "Pod");
        let mut query = ListQuery {
            limit: Some(500),
            ..Default::default()
        };
        let mut by_uid = HashMap::new();
        let mut by_ip = HashMap::new();
        loop {
            let page = match backend.list(&kind, &query).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "listing pods for attribution failed");
                    self.last_error = Some(e.to_string());
                    return;
                }
            };
            for item in &page.items {
                if let Some((info, ips)) = pod_info(&item.value) {
                    let info = Arc::new(info);
                    for ip in ips {
                        by_ip.insert(ip, info.clone());
                    }
                    by_uid.insert(info.uid.clone(), info);
                }
            }
            match page.continue_token {
                Some(t) if !t.is_empty() => query.continue_token = Some(t),
                _ => break,
            }
        }
        self.last_error = None;
        self.by_uid = by_uid;
        self.by_ip = by_ip;
    }

    /// The pod with this uid, refreshing once (rate-limited) when unknown.
    pub async fn by_uid(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        if let Some(p) = self.by_uid.get(uid) {
            return Some(p.clone());
        }
        let due = self
            .last_refresh
            .is_none_or(|t| t.elapsed() >= self.min_refresh);
        if due {
            self.refresh().await;
        }
        self.by_uid.get(uid).cloned()
    }

    /// The pod with this IP (host-network pods share the node's: not mapped).
    pub fn by_ip(&self, ip: IpAddr) -> Option<Arc<PodInfo>> {
        self.by_ip.get(&ip).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

/// The fields attribution needs from a Pod object.
pub fn pod_info(pod: &Value) -> Option<(PodInfo, Vec<IpAddr>)> {
    let meta = pod.get("metadata")?;
    let uid = meta.get("uid")?.as_str()?.to_string();
    let name = meta.get("name")?.as_str()?.to_string();
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let status = pod.get("status");
    let mut containers = HashMap::new();
    for list in [
        "initContainerStatuses",
        "containerStatuses",
        "ephemeralContainerStatuses",
    ] {
        for c in status
            .and_then(|s| s.get(list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(cname), Some(id)) = (
                c.get("name").and_then(Value::as_str),
                c.get("containerID").and_then(Value::as_str),
            ) else {
                continue;
            };
            let id = id.split_once("://").map_or(id, |(_, id)| id);
            containers.insert(id.to_string(), cname.to_string());
        }
    }
    let host_network = pod
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut ips = Vec::new();
    if !host_network {
        let status_ips = status
            .and_then(|s| s.get("podIPs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("ip").and_then(Value::as_str));
        let single = status.and_then(|s| s.get("podIP")).and_then(Value::as_str);
        for ip in status_ips.chain(single) {
            if let Ok(ip) = ip.parse()
                && !ips.contains(&ip)
            {
                ips.push(ip);
            }
        }
    }
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .map(String::from);
    Some((
        PodInfo {
            namespace,
            name,
            uid,
            containers,
            node,
        },
        ips,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_uid_containers_and_ips() {
        let pod = json!({
            "metadata": {"name": "cart-0", "namespace": "shop", "uid": "u-1"},
            "spec": {"nodeName": "n1"},
            "status": {
                "podIP": "10.1.0.5",
                "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}],
                "containerStatuses": [
                    {"name": "app", "containerID": "containerd://abc123"},
                    {"name": "waiting"}
                ],
                "initContainerStatuses": [{"name": "init", "containerID": "cri-o://def456"}]
            }
        });
        let (info, ips) = pod_info(&pod).unwrap();
        assert_eq!(info.containers["abc123"], "app");
        assert_eq!(info.containers["def456"], "init");
        assert_eq!(info.containers.len(), 2);
        assert_eq!(ips.len(), 2);
        assert_eq!(info.node.as_deref(), Some("n1"));
        // Host-network pods have the node's IP: not a way to find them.
        let host = json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u-2"},
            "spec": {"hostNetwork": true},
            "status": {"podIP": "192.168.1.10"}
        });
        assert!(pod_info(&host).unwrap().1.is_empty());
        assert!(pod_info(&json!({"metadata": {"name": "x"}})).is_none());
    }
}
