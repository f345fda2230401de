//! `sonde:probe/http`: one outbound HTTP(S) request per call, through
//! reqwest on rustls. The target's `host:port` must be inside the run's
//! grant; redirects are handed back to the probe (a `Location` elsewhere
//! would leave the grant), proxies from the environment are ignored, the
//! timeout never outlives the run, and the body handed back is capped. An
//! https answer carries the server's leaf certificate, parsed, so a probe
//! can judge its expiry even when it skipped verification.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::http::{Host, PeerCertificate, Request, Response};
use crate::caps::dns::DnsSettings;
use crate::runtime::RunState;

/// Default per-request timeout when the probe names none.
const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default cap on the body handed back to the probe.
const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Most bytes a probe may send as a request body.
pub const MAX_REQUEST_BODY_BYTES: usize = 8 << 20;
/// Most request headers, and their total size.
const MAX_REQUEST_HEADERS: usize = 100;
const MAX_REQUEST_HEADER_BYTES: usize = 64 << 10;

/// How the host makes probes' HTTP requests (`cluster.http` in the config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// PEM files of CAs trusted besides the system's (e.g. the cluster's CA),
    /// for requests that verify the server.
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    /// Timeout in milliseconds when the probe names none (default 10000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most body bytes handed to the probe (default 1 MiB); the rest is
    /// dropped and `body-truncated` set.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
}

/// Why the HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("http CA file {path}: {source}")]
    CaRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("http CA file {path}: {message}")]
    CaParse { path: PathBuf, message: String },
    #[error("http.max_body_bytes must be greater than 0")]
    ZeroBody,
    #[error("http.timeout_ms must be greater than 0")]
    ZeroTimeout,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl HttpSettings {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    fn max_body(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)
    }

    /// The configured CAs, each file read and parsed; the first problem named
    /// with its file.
    fn certificates(&self) -> Result<Vec<reqwest::Certificate>, HttpSetupError> {
        let mut out = Vec::new();
        for path in &self.ca_files {
            let pem = std::fs::read(path).map_err(|source| HttpSetupError::CaRead {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                HttpSetupError::CaParse {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(HttpSetupError::CaParse {
                    path: path.clone(),
                    message: "no PEM certificate in it".into(),
                });
            }
            out.extend(certs);
        }
        Ok(out)
    }

    /// Every problem with these settings (the config check).
    pub fn check(&self) -> Result<(), HttpSetupError> {
        if self.max_body_bytes == Some(0) {
            return Err(HttpSetupError::ZeroBody);
        }
        if self.timeout_ms == Some(0) {
            return Err(HttpSetupError::ZeroTimeout);
        }
        self.certificates().map(drop)
    }
}

/// The two clients every run shares: one verifying the server against the
/// system's and the configured CAs, one accepting any certificate.
#[derive(Clone)]
struct Clients {
    verifying: reqwest::Client,
    insecure: reqwest::Client,
}

/// The host's HTTP client: its settings, and the clients built on first use.
#[derive(Clone, Default)]
pub struct HttpClient {
    settings: HttpSettings,
    dns: DnsSettings,
    clients: Arc<OnceLock<Result<Clients, String>>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Names resolved through the configured nameservers (`cluster.dns_servers`),
/// so `svc.cluster.local` names work from outside the cluster too.
struct ConfiguredResolver(hickory_resolver::TokioResolver);

impl reqwest::dns::Resolve for ConfiguredResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let ips = resolver.lookup_ip(name.as_str()).await?;
            let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl HttpClient {
    /// Checks the settings now, so a bad CA file stops start-up; the
    /// clients (the system's roots read, TLS set up) are built at the first
    /// request, so a run without one pays nothing.
    pub fn new(settings: HttpSettings, dns: DnsSettings) -> Result<Self, HttpSetupError> {
        settings.check()?;
        Ok(Self {
            settings,
            dns,
            clients: Default::default(),
        })
    }

    fn clients(&self) -> Result<&Clients, ProbeError> {
        self.clients
            .get_or_init(|| build(&self.settings, &self.dns).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ProbeError::Unavailable(e.clone()))
    }
}

fn build(settings: &HttpSettings, dns: &DnsSettings) -> Result<Clients, HttpSetupError> {
    let certificates = settings.certificates()?;
    let resolver = if dns.nameservers.is_empty() {
        None
    } else {
        let r = dns
            .resolver(&[])
            .map_err(|e| HttpSetupError::Client(format!("{e:?}")))?;
        Some(Arc::new(ConfiguredResolver(r)))
    };
    let builder = |insecure: bool| {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("sonde/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tls_info(true)
            .connect_timeout(settings.timeout())
            .danger_accept_invalid_certs(insecure);
        if !insecure {
            for c in &certificates {
                b = b.add_root_certificate(c.clone());
            }
        }
        if let Some(r) = &resolver {
            b = b.dns_resolver(r.clone());
        }
        b.build()
            .map_err(|e| HttpSetupError::Client(crate::errors::chain(&e)))
    };
    Ok(Clients {
        verifying: builder(false)?,
        insecure: builder(true)?,
    })
}

/// `host:port` of a URL, with the scheme's default port.
pub fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority
        .rsplit_once('@')
        .map(|(_, a)| a)
        .unwrap_or(authority);
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        return Some(authority.to_ascii_lowercase());
    }
    let port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    Some(format!("{}:{port}", authority.to_ascii_lowercase()))
}

/// The request's headers, each checked; the first bad one named.
fn headers(pairs: &[(String, String)]) -> Result<HeaderMap, ProbeError> {
    if pairs.len() > MAX_REQUEST_HEADERS {
        return Err(ProbeError::InvalidInput(format!(
            "{} request headers: at most {MAX_REQUEST_HEADERS}",
            pairs.len()
        )));
    }
    let size: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_REQUEST_HEADER_BYTES {
        return Err(ProbeError::InvalidInput(format!(
            "request headers of {size} bytes: at most {MAX_REQUEST_HEADER_BYTES}"
        )));
    }
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ProbeError::InvalidInput(format!("request header name {name:?} is not a valid name"))
        })?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            ProbeError::InvalidInput(format!(
                "request header {name}: value {value:?} has characters a header cannot carry"
            ))
        })?;
        map.append(n, v);
    }
    Ok(map)
}

/// The fields a probe reads off a DER certificate; `None` if it does not parse.
pub fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(PeerCertificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_names,
    })
}

/// A failed send, as the probe sees it: what, where, and the causes.
fn send_error(what: &str, timeout: Duration, e: &reqwest::Error) -> ProbeError {
    if e.is_timeout() {
        return ProbeError::Timeout(format!(
            "{what}: no answer within {} ms",
            timeout.as_millis()
        ));
    }
    let chain = crate::errors::chain(e);
    if e.is_connect() {
        ProbeError::Unavailable(format!("{what}: cannot connect: {chain}"))
    } else {
        ProbeError::Unavailable(format!("{what}: {chain}"))
    }
}

impl RunState {
    async fn send_checked(&mut self, req: Request) -> Result<Response, ProbeError> {
        let Some(target) = host_port(&req.url) else {
            return Err(ProbeError::InvalidInput(format!(
                "not an http(s) URL: {:?}",
                req.url
            )));
        };
        if !self.ctx.grants.allows_http(&target) {
            let detail = format!("{} {}", req.method, target);
            return Err(ProbeError::Denied(self.ctx.deny("http", detail)));
        }
        let url = reqwest::Url::parse(&req.url)
            .map_err(|e| ProbeError::InvalidInput(format!("URL {:?}: {e}", req.url)))?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| {
            ProbeError::InvalidInput(format!("{:?} is not an HTTP method", req.method))
        })?;
        let headers = headers(&req.headers)?;
        if let Some(body) = &req.body
            && body.len() > MAX_REQUEST_BODY_BYTES
        {
            return Err(ProbeError::InvalidInput(format!(
                "request body of {} bytes: at most {MAX_REQUEST_BODY_BYTES}",
                body.len()
            )));
        }
        let http = &self.ctx.services.http;
        let what = format!("{method} {url}");
        // Never longer than what is left of the run.
        let left = self.ctx.time_left();
        let asked = req
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or_else(|| http.settings.timeout());
        let timeout = asked.min(left);
        if timeout.is_zero() {
            return Err(ProbeError::Timeout(format!(
                "{what}: the run has no time left"
            )));
        }
        let clients = http.clients()?;
        let client = if req.insecure_skip_verify {
            &clients.insecure
        } else {
            &clients.verifying
        };
        let mut builder = client
            .request(method, url)
            .headers(headers)
            .timeout(timeout);
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| send_error(&what, timeout, &e))?;
        let status = response.status().as_u16();
        let peer = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .and_then(peer_certificate);
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let cap = http.settings.max_body();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| send_error(&what, timeout, &e))?
        {
            let room = cap - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        tracing::debug!(probe = %self.ctx.probe, %what, status, bytes = body.len(), truncated, "http");
        Ok(Response {
            status,
            headers,
            body,
            body_truncated: truncated,
            peer_certificate: peer,
        })
    }
}

impl Host for RunState {
    async fn send(&mut self, req: Request) -> wasmtime::Result<Result<Response, ProbeError>> {
        Ok(self.send_checked(req).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(
            host_port("https://Example.com/x").as_deref(),
            Some("example.com:443")
        );
        assert_eq!(host_port("http://a:8080?q").as_deref(), Some("a:8080"));
        assert_eq!(host_port("http://u:p@h/").as_deref(), Some("h:80"));
        assert_eq!(host_port("http://[::1]/").as_deref(), Some("[::1]:80"));
        assert_eq!(host_port("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(host_port("ftp://h/"), None);
        assert_eq!(host_port("nonsense"), None);
    }

    #[test]
    fn bad_headers_are_named() {
        let invalid = |pairs: &[(String, String)]| match headers(pairs) {
            Err(ProbeError::InvalidInput(m)) => m,
            other => panic!("expected invalid input, got {other:?}"),
        };
        let bad_name = invalid(&[("Bad Name".into(), "x".into())]);
        assert!(bad_name.contains("\"Bad Name\""), "{bad_name}");
        let bad_value = invalid(&[("X-A".into(), "a\r\nInjected: 1".into())]);
        assert!(bad_value.starts_with("request header X-A:"), "{bad_value}");
        let many: Vec<_> = (0..101).map(|i| (format!("x-{i}"), "v".into())).collect();
        assert!(invalid(&many).contains("at most 100"));
        let ok = headers(&[("Accept".into(), "text/plain".into())]).unwrap();
        assert_eq!(ok["accept"], "text/plain");
    }

    #[test]
    fn ca_file_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = HttpSettings {
            ca_files: vec![dir.path().join("nope.pem")],
            ..Default::default()
        };
        let e = missing.check().unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = HttpSettings {
            ca_files: vec![empty],
            ..Default::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let zero = HttpSettings {
            max_body_bytes: Some(0),
            ..Default::default()
        };
        assert!(zero.check().is_err());
    }

    #[test]
    fn certificate_fields() {
        let mut params =
            rcgen::CertificateParams::new(vec!["api.sonde.test".into(), "kubernetes".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2027, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let peer = peer_certificate(cert.der()).unwrap();
        assert_eq!(peer.subject, "CN=kube-apiserver");
        assert_eq!(peer.issuer, "CN=kube-apiserver");
        assert_eq!(peer.not_before, 1_767_312_000);
        assert_eq!(peer.not_after, 1_798_848_000);
        assert_eq!(peer.dns_names, ["api.sonde.test", "kubernetes"]);
        assert!(peer_certificate(b"garbage").is_none());
    }
}
