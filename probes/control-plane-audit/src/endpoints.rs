//! What the control plane's own endpoints say, over the host's `http`
//! capability: the API server's `/readyz?verbose` (its etcd check included)
//! and serving certificate, and the controller-manager's and scheduler's
//! `/healthz`. The judgements are pure functions of the answers, so they
//! unit-test natively; `crate::run` makes the calls.

use k8s_openapi::api::core::v1::{Endpoints, Service};
use sonde_sdk::{ResourceRef, Rule, Severity, resource_ref};

use crate::components::rfc3339;
use crate::{API_SERVER, ETCD};

/// One API server address to check, and the object it was found in.
#[derive(Debug, Clone)]
pub struct ApiServerTarget {
    /// `https://HOST:PORT`, no trailing slash.
    pub url: String,
    /// The `default/kubernetes` Endpoints or Service; `None` when configured.
    pub resource: Option<ResourceRef>,
}

fn https(host: &str, port: i32) -> String {
    format!("https://{}", sonde_sdk::host_port(host, port))
}

/// Where the API server is: the configured address (`host:port` or a URL),
/// else every address of the `default/kubernetes` Endpoints (one per API
/// server), else that Service's cluster IP.
pub fn api_server_targets(
    configured: Option<&str>,
    service: Option<&Service>,
    endpoints: Option<&Endpoints>,
) -> Vec<ApiServerTarget> {
    if let Some(c) = configured.map(str::trim).filter(|c| !c.is_empty()) {
        let url = if c.contains("://") {
            c.trim_end_matches('/').to_string()
        } else {
            format!("https://{}", c.trim_end_matches('/'))
        };
        return vec![ApiServerTarget {
            url,
            resource: None,
        }];
    }
    let mut out = Vec::new();
    if let Some(ep) = endpoints {
        for subset in ep.subsets.iter().flatten() {
            let ports = subset.ports.as_deref().unwrap_or_default();
            let Some(port) = ports
                .iter()
                .find(|p| p.name.as_deref() == Some("https"))
                .or(ports.first())
            else {
                continue;
            };
            for a in subset.addresses.iter().flatten() {
                out.push(ApiServerTarget {
                    url: https(&a.ip, port.port),
                    resource: Some(resource_ref(ep)),
                });
            }
        }
    }
    if out.is_empty()
        && let Some(svc) = service
        && let Some(spec) = &svc.spec
        && let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
    {
        let ports = spec.ports.as_deref().unwrap_or_default();
        if let Some(port) = ports
            .iter()
            .find(|p| p.name.as_deref() == Some("https"))
            .or(ports.first())
        {
            out.push(ApiServerTarget {
                url: https(ip, port.port),
                resource: Some(resource_ref(svc)),
            });
        }
    }
    out
}

/// The expiry finding's severity and text, when the certificate's `not_after`
/// (seconds since the epoch) is less than `threshold_days` after `now`.
pub fn cert_expiry(not_after: i64, now: i64, threshold_days: u32) -> Option<(Severity, String)> {
    let left = not_after - now;
    let date = rfc3339(not_after);
    if left <= 0 {
        let days = (-left) / 86_400;
        return Some((
            Severity::Critical,
            format!("expired on {date} ({days} days ago)"),
        ));
    }
    if left >= i64::from(threshold_days) * 86_400 {
        return None;
    }
    let days = left / 86_400;
    Some((
        Severity::High,
        format!("expires on {date}, in {days} days (threshold {threshold_days} days)"),
    ))
}

/// Whether an answer speaks of health: a 2xx, or the 5xx a failing health
/// check answers. A refusal (401/403), a 404 or a redirect says nothing of
/// it: the caller lacks rights, or what answered is not that endpoint (a
/// proxy on the way, another server on the port).
pub fn judged(status: u16) -> bool {
    (200..300).contains(&status) || (500..600).contains(&status)
}

/// The failures an API server's `/readyz?verbose` answer shows: its failed
/// etcd checks (`[-]etcd failed: ...`) under ETCDHealthStatus, the others
/// under ApiServerHealthStatus. Empty for a 2xx answer or one not judged (see `judged`).
pub fn readyz(url: &str, status: u16, body: &str) -> Vec<(&'static Rule, String)> {
    if (200..300).contains(&status) || !judged(status) {
        return Vec::new();
    }
    let failed: Vec<&str> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[-]"))
        .collect();
    let (etcd, other): (Vec<&str>, Vec<&str>) = failed.iter().partition(|c| c.starts_with("etcd"));
    let mut out = Vec::new();
    if !etcd.is_empty() {
        out.push((
            &ETCD,
            format!(
                "API server {url} /readyz: status {status}: {}",
                etcd.join("; ")
            ),
        ));
    }
    if !other.is_empty() || etcd.is_empty() {
        let detail = if other.is_empty() {
            first_line(body)
        } else {
            other.join("; ")
        };
        out.push((
            &API_SERVER,
            format!("API server {url} /readyz: status {status}: {detail}"),
        ));
    }
    out
}

/// The failure a component's `/healthz` answer shows: a 5xx, or a 2xx that
/// is not `ok`. None for answers not judged (see `judged`).
pub fn healthz(url: &str, status: u16, body: &str) -> Option<String> {
    if !judged(status) || ((200..300).contains(&status) && body.trim() == "ok") {
        return None;
    }
    Some(format!("GET {url}: status {status}: {}", first_line(body)))
}

fn first_line(body: &str) -> String {
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty body)");
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-11-18T11:06:40Z
    const NOW: i64 = 1_795_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn certificate_expiry_against_the_threshold() {
        assert_eq!(cert_expiry(NOW + 365 * DAY, NOW, 30), None);
        assert_eq!(
            cert_expiry(NOW + 30 * DAY, NOW, 30),
            None,
            "exactly 30 days is not less"
        );
        let (sev, msg) = cert_expiry(NOW + 29 * DAY + 5, NOW, 30).unwrap();
        assert_eq!(sev, Severity::High);
        assert_eq!(
            msg,
            format!(
                "expires on {}, in 29 days (threshold 30 days)",
                rfc3339(NOW + 29 * DAY + 5)
            )
        );
        assert_eq!(
            cert_expiry(NOW + 9 * DAY, NOW, 7),
            None,
            "configurable threshold"
        );
        let (sev, msg) = cert_expiry(NOW - 2 * DAY, NOW, 30).unwrap();
        assert_eq!(sev, Severity::Critical);
        assert_eq!(
            msg,
            format!("expired on {} (2 days ago)", rfc3339(NOW - 2 * DAY))
        );
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn readyz_failures_by_check() {
        let url = "https://10.0.0.1:6443";
        assert!(readyz(url, 200, "[+]ping ok\n[+]etcd ok\nreadyz check passed").is_empty());
        assert!(
            readyz(url, 401, "Unauthorized").is_empty(),
            "a refusal says nothing of health"
        );
        let body = "[+]ping ok\n[-]etcd failed: reason withheld\n[-]informer-sync failed: reason withheld\nreadyz check failed";
        let found: Vec<(&str, String)> = readyz(url, 500, body)
            .into_iter()
            .map(|(r, m)| (r.id, m))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "ETCDHealthStatus",
                    format!("API server {url} /readyz: status 500: etcd failed: reason withheld")
                ),
                (
                    "ApiServerHealthStatus",
                    format!(
                        "API server {url} /readyz: status 500: informer-sync failed: reason withheld"
                    )
                ),
            ]
        );
        let found = readyz(url, 503, "service unavailable\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.id, "ApiServerHealthStatus");
        assert!(found[0].1.ends_with("status 503: service unavailable"));
    }

    #[test]
    fn healthz_answers() {
        let url = "https://127.0.0.1:10259/healthz";
        assert_eq!(healthz(url, 200, "ok"), None);
        assert_eq!(healthz(url, 403, "forbidden"), None);
        assert_eq!(
            healthz(url, 500, "[-]leaderElection failed\nhealthz check failed").as_deref(),
            Some("GET https://127.0.0.1:10259/healthz: status 500: [-]leaderElection failed")
        );
        assert!(judged(200) && judged(500) && !judged(401));
        // What answers 404 or redirects is not the health endpoint.
        assert!(!judged(404) && !judged(302));
        assert!(readyz(url, 404, "404 page not found").is_empty());
        assert_eq!(healthz(url, 404, "not found"), None);
    }

    #[test]
    fn api_server_address_from_config_endpoints_or_service() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 6443}]},
        }))
        .unwrap();
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::1"}],
                         "ports": [{"name": "https", "port": 6443}]}],
        }))
        .unwrap();
        let urls = |t: Vec<ApiServerTarget>| t.into_iter().map(|t| t.url).collect::<Vec<_>>();
        assert_eq!(
            urls(api_server_targets(
                Some("api.example.com:8443"),
                Some(&svc),
                Some(&ep)
            )),
            ["https://api.example.com:8443"]
        );
        assert_eq!(
            urls(api_server_targets(
                Some("https://api.example.com/"),
                None,
                None
            )),
            ["https://api.example.com"]
        );
        assert_eq!(
            urls(api_server_targets(None, Some(&svc), Some(&ep))),
            ["https://192.0.2.10:6443", "https://[2001:db8::1]:6443"]
        );
        // No Endpoints (the reconciler off, as in the fixture): the Service's cluster IP.
        let t = api_server_targets(None, Some(&svc), None);
        assert_eq!(t[0].url, "https://10.96.0.1:443");
        assert_eq!(t[0].resource.as_ref().unwrap().kind, "Service");
        assert!(api_server_targets(None, None, None).is_empty());
    }
}
