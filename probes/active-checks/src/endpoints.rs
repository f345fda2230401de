//! HTTP endpoints the operator names (an ingress host, a service URL): each
//! is called and must answer with an expected status, optionally containing
//! a text, within its latency threshold. An ingress can be reached through
//! its controller's address with a `Host` header. An https endpoint's
//! certificate (as served, whether or not it was verified) must stay valid
//! for a number of days.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sonde_sdk::http::{self, PeerCertificate, Request, Response};
use sonde_sdk::{Finding, ProbeError, log};

use crate::{ENDPOINT_CERTIFICATE, ENDPOINT_FAILURE, ENDPOINT_SLOW, cluster_fault, error_text};

/// One endpoint to call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Shown in findings; default: the URL.
    #[serde(default)]
    pub name: Option<String>,
    pub url: String,
    #[serde(default = "get")]
    pub method: String,
    /// e.g. `Host: shop.example.com` to reach an ingress through its controller's address.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request's body (text), e.g. a JSON document for a POST.
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that pass; empty: any 2xx or 3xx.
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// Text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// An answer slower than this is a finding (default 2000 ms).
    #[serde(default = "default_latency")]
    pub max_latency_ms: u64,
    /// How long to wait at all (default 10000 ms).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Accept any server certificate.
    #[serde(default)]
    pub insecure: bool,
    /// An https endpoint's certificate expiring within this many days is a
    /// finding (default 30; 0: not checked).
    #[serde(default = "default_cert_days")]
    pub cert_expiry_days: u32,
}

fn default_cert_days() -> u32 {
    30
}

pub(crate) fn get() -> String {
    "GET".into()
}

pub(crate) fn default_latency() -> u64 {
    2000
}

pub(crate) fn default_timeout() -> u32 {
    10_000
}

impl Check {
    pub fn shown(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.url)
    }

    fn status_ok(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..400).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }
}

/// What one answer says of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// No answer, or not the one expected: why.
    Failed(String),
    /// Answered as expected, above the latency threshold: how slowly.
    Slow(String),
    /// Not the cluster's fault (a grant or config problem): a line for the log.
    Skipped(String),
}

/// What `answer` (the response and how long it took, or the error) says
/// of `check`; `what` names the request in the messages.
pub fn verdict(
    check: &Check,
    what: &str,
    answer: Result<(&Response, Duration), &ProbeError>,
) -> Verdict {
    let (response, took) = match answer {
        Ok(a) => a,
        Err(e) if cluster_fault(e) => {
            return Verdict::Failed(format!("{what} failed: {}", error_text(e)));
        }
        Err(e) => return Verdict::Skipped(error_text(e)),
    };
    if !check.status_ok(response.status) {
        let expected = if check.expect_status.is_empty() {
            "2xx or 3xx".to_string()
        } else {
            format!("{:?}", check.expect_status)
        };
        return Verdict::Failed(format!(
            "{what} answered {} (expected {expected})",
            response.status
        ));
    }
    if let Some(text) = &check.body_contains
        && !String::from_utf8_lossy(&response.body).contains(text.as_str())
    {
        let cut = if response.body_truncated {
            " (of the part read)"
        } else {
            ""
        };
        return Verdict::Failed(format!(
            "{what} answered {} without {text:?} in its body{cut}",
            response.status
        ));
    }
    if took.as_millis() > u128::from(check.max_latency_ms) {
        return Verdict::Slow(format!(
            "{what} answered in {} ms (threshold {} ms)",
            took.as_millis(),
            check.max_latency_ms
        ));
    }
    Verdict::Pass
}

/// The finding one answer calls for, if any; `Err` is a line for the log
/// (a grant or config problem, not the cluster's).
pub fn judge(
    check: &Check,
    answer: Result<(&Response, Duration), &ProbeError>,
) -> Result<Option<Finding>, String> {
    let what = format!("{} {}", check.method, check.url);
    let finding = |rule: &sonde_sdk::Rule, message: String| -> Finding {
        rule.cluster_finding(format!("{}: {message}", check.shown()))
            .label("check", check.shown())
            .label("url", check.url.clone())
            .into()
    };
    match verdict(check, &what, answer) {
        Verdict::Pass => Ok(None),
        Verdict::Failed(m) => Ok(Some(finding(&ENDPOINT_FAILURE, m))),
        Verdict::Slow(m) => Ok(Some(finding(&ENDPOINT_SLOW, m))),
        Verdict::Skipped(why) => Err(format!("endpoint check {} skipped: {why}", check.shown())),
    }
}

/// The request a check sends.
pub fn request(check: &Check) -> Request {
    Request {
        method: check.method.clone(),
        url: check.url.clone(),
        headers: check
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: check.body.as_ref().map(|b| b.as_bytes().to_vec()),
        timeout_ms: Some(check.timeout_ms),
        insecure_skip_verify: check.insecure,
    }
}

/// The finding an https endpoint's certificate calls for at `now` (seconds
/// since the epoch): expired, not valid yet, or expiring within the
/// check's days.
pub fn certificate(check: &Check, cert: &PeerCertificate, now: i64) -> Option<Finding> {
    if check.cert_expiry_days == 0 {
        return None;
    }
    const DAY: i64 = 86_400;
    let whose = format!(
        "{}: the certificate of {} ({}, issued by {})",
        check.shown(),
        check.url,
        cert.subject,
        cert.issuer
    );
    let until = sonde_sdk::time::date(cert.not_after);
    let (message, expired) = if cert.not_after <= now {
        let ago = (now - cert.not_after) / DAY;
        (format!("{whose} expired on {until} ({ago} days ago)"), true)
    } else if cert.not_before > now {
        let from = sonde_sdk::time::date(cert.not_before);
        (format!("{whose} is not valid before {from}"), true)
    } else if cert.not_after - now < i64::from(check.cert_expiry_days) * DAY {
        let left = (cert.not_after - now) / DAY;
        (
            format!(
                "{whose} expires on {until} (in {left} days, under the {}-day threshold)",
                check.cert_expiry_days
            ),
            false,
        )
    } else {
        return None;
    };
    let mut f = ENDPOINT_CERTIFICATE
        .cluster_finding(message)
        .label("check", check.shown())
        .label("url", check.url.clone());
    if expired {
        f = f.severity(sonde_sdk::Severity::Critical);
    }
    Some(f.into())
}

/// Calls one endpoint.
pub fn run(check: &Check, out: &mut Vec<Finding>) {
    let request = request(check);
    let started = Instant::now();
    let answer = http::send(&request);
    let took = started.elapsed();
    match judge(check, answer.as_ref().map(|r| (r, took))) {
        Ok(Some(f)) => out.push(f),
        Ok(None) => log::debug(&format!("endpoint {} passed", check.shown())),
        Err(line) => log::error(&line),
    }
    if let Ok(Some(cert)) = answer.as_ref().map(|r| r.peer_certificate.as_ref()) {
        out.extend(certificate(check, cert, sonde_sdk::time::now_secs()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: serde_json::Value) -> Check {
        let mut v = serde_json::json!({"name": "shop", "url": "http://10.0.0.20/healthz"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            body_truncated: false,
            peer_certificate: None,
        }
    }

    fn message(c: &Check, r: &Response, ms: u64) -> Option<String> {
        judge(c, Ok((r, Duration::from_millis(ms))))
            .unwrap()
            .map(|f| format!("{}: {}", f.rule, f.message))
    }

    #[test]
    fn a_certificate_must_stay_valid_for_the_days_given() {
        let c = check(serde_json::json!({"url": "https://10.0.0.20/healthz"}));
        let cert = |not_before: i64, not_after: i64| PeerCertificate {
            subject: "CN=shop".into(),
            issuer: "CN=ca".into(),
            not_before,
            not_after,
            dns_names: vec!["shop.example.com".into()],
        };
        let now = 2_082_844_800 - 10 * 86_400; // 2035-12-23
        let soon = certificate(&c, &cert(0, 2_082_844_800), now).unwrap();
        assert_eq!(soon.rule, "EndpointCertificateExpiring");
        assert_eq!(soon.severity, sonde_sdk::Severity::High);
        assert_eq!(
            soon.message,
            "shop: the certificate of https://10.0.0.20/healthz (CN=shop, issued by CN=ca) expires on 2036-01-02 (in 10 days, under the 30-day threshold)"
        );
        assert!(certificate(&c, &cert(0, now + 31 * 86_400), now).is_none());
        let expired = certificate(&c, &cert(0, now - 2 * 86_400), now).unwrap();
        assert_eq!(expired.severity, sonde_sdk::Severity::Critical);
        assert!(
            expired
                .message
                .ends_with("expired on 2035-12-21 (2 days ago)"),
            "{}",
            expired.message
        );
        let early = certificate(&c, &cert(now + 86_400, now + 400 * 86_400), now).unwrap();
        assert!(
            early.message.ends_with("is not valid before 2035-12-24"),
            "{}",
            early.message
        );
        let off = check(serde_json::json!({"cert_expiry_days": 0}));
        assert!(certificate(&off, &cert(0, now - 1), now).is_none());
    }

    #[test]
    fn status_text_and_latency() {
        let plain = check(serde_json::json!({}));
        assert_eq!(message(&plain, &response(200, "ok"), 5), None);
        assert_eq!(message(&plain, &response(301, ""), 5), None);
        assert_eq!(
            message(&plain, &response(503, ""), 5),
            Some("EndpointCheckFailed: shop: GET http://10.0.0.20/healthz answered 503 (expected 2xx or 3xx)".into())
        );
        let strict = check(serde_json::json!({"expect_status": [204], "body_contains": "ready"}));
        assert_eq!(
            message(&strict, &response(200, "ready"), 5),
            Some("EndpointCheckFailed: shop: GET http://10.0.0.20/healthz answered 200 (expected [204])".into())
        );
        assert_eq!(
            message(&strict, &response(204, "starting"), 5),
            Some("EndpointCheckFailed: shop: GET http://10.0.0.20/healthz answered 204 without \"ready\" in its body".into())
        );
        assert_eq!(
            message(&plain, &response(200, "ok"), 2500),
            Some("EndpointCheckSlow: shop: GET http://10.0.0.20/healthz answered in 2500 ms (threshold 2000 ms)".into())
        );
        let timeout = ProbeError::Timeout("no answer within 10000 ms".into());
        let f = judge(&plain, Err(&timeout)).unwrap().unwrap();
        assert_eq!(f.rule, "EndpointCheckFailed");
        assert!(f.labels.contains(&("check".into(), "shop".into())));
        let denied = ProbeError::Denied("http access not granted: GET 10.0.0.20:80".into());
        assert_eq!(
            judge(&plain, Err(&denied)).unwrap_err(),
            "endpoint check shop skipped: denied: http access not granted: GET 10.0.0.20:80"
        );
    }
}
