//! `sonde:probe/etcd`: keys and values in the cluster's etcd through
//! etcd-client (gRPC, mutual TLS on rustls as kubeadm's etcd requires). Each
//! call's key (a range's prefix) must be inside a granted prefix; the client
//! connects on first use and is shared by every run; every call is bounded
//! by the configured timeout and what is left of the run, and a range never
//! returns more than the host's key limit (it fails instead, saying so).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use serde::{Deserialize, Serialize};

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::etcd::{Host, KeyValue};
use crate::runtime::RunState;

/// Default per-call timeout.
const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default most keys one range returns.
const DEFAULT_MAX_RANGE_KEYS: u32 = 10_000;

/// Where the cluster's etcd is and how to reach it (`cluster.etcd` in the config).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSettings {
    /// Client URLs, e.g. `https://10.0.0.1:2379`; empty: the capability is unavailable.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// The CA that signed etcd's serving certificate (kubeadm: `/etc/kubernetes/pki/etcd/ca.crt`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for etcd's `--client-cert-auth`
    /// (kubeadm: `apiserver-etcd-client.crt` / `.key`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// A user of etcd's own authentication (`auth enable`), with
    /// `password_file`; sent only over `https://` endpoints.
    #[serde(default)]
    pub username: Option<String>,
    /// The file holding that user's password (one line; the line break at
    /// its end is not part of it). A file, so that the password is in no
    /// config file, command line or environment.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Per-call timeout in milliseconds (default 5000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most keys a range may return (default 10000).
    #[serde(default)]
    pub max_range_keys: Option<u32>,
}

/// Why the etcd settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EtcdSetupError {
    #[error("etcd.endpoints: {0:?} is not a URL like https://10.0.0.1:2379")]
    Endpoint(String),
    #[error("etcd.{field} {path}: {source}")]
    Read {
        field: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("etcd: cert_file and key_file go together")]
    HalfIdentity,
    #[error("etcd: username and password_file go together")]
    HalfUser,
    #[error("etcd.password_file {0}: the file is empty")]
    EmptyPassword(PathBuf),
    #[error(
        "etcd: a password is sent only over TLS, and endpoint {0:?} is plain http (use https://)"
    )]
    PasswordInClear(String),
    #[error("etcd.{0} must be greater than 0")]
    Zero(&'static str),
}

/// The PEM files, read.
struct Pem {
    ca: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// A user of etcd's authentication and its password, read from its file.
struct User {
    name: String,
    password: String,
}

impl EtcdSettings {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))
    }

    fn max_range_keys(&self) -> u32 {
        self.max_range_keys.unwrap_or(DEFAULT_MAX_RANGE_KEYS)
    }

    fn read(field: &'static str, path: &PathBuf) -> Result<Vec<u8>, EtcdSetupError> {
        std::fs::read(path).map_err(|source| EtcdSetupError::Read {
            field,
            path: path.clone(),
            source,
        })
    }

    fn pem(&self) -> Result<Pem, EtcdSetupError> {
        let ca = self
            .ca_file
            .as_ref()
            .map(|p| Self::read("ca_file", p))
            .transpose()?;
        let identity = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Some((Self::read("cert_file", c)?, Self::read("key_file", k)?)),
            (None, None) => None,
            _ => return Err(EtcdSetupError::HalfIdentity),
        };
        Ok(Pem { ca, identity })
    }

    /// The configured user and its password, read from `password_file`.
    fn user(&self) -> Result<Option<User>, EtcdSetupError> {
        let (name, path) = match (&self.username, &self.password_file) {
            (Some(name), Some(path)) => (name, path),
            (None, None) => return Ok(None),
            _ => return Err(EtcdSetupError::HalfUser),
        };
        if let Some(plain) = self.endpoints.iter().find(|e| !e.starts_with("https://")) {
            return Err(EtcdSetupError::PasswordInClear(plain.clone()));
        }
        let bytes = Self::read("password_file", path)?;
        let text = String::from_utf8(bytes).map_err(|_| EtcdSetupError::Read {
            field: "password_file",
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
        })?;
        let password = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if password.is_empty() {
            return Err(EtcdSetupError::EmptyPassword(path.clone()));
        }
        Ok(Some(User {
            name: name.clone(),
            password: password.to_owned(),
        }))
    }

    /// Every problem with these settings (the config check): endpoints that
    /// are not URLs, files that cannot be read, a certificate without its key.
    pub fn check(&self) -> Result<(), EtcdSetupError> {
        for e in &self.endpoints {
            let ok = e.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && !rest.is_empty()
            });
            if !ok {
                return Err(EtcdSetupError::Endpoint(e.clone()));
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(EtcdSetupError::Zero("timeout_ms"));
        }
        if self.max_range_keys == Some(0) {
            return Err(EtcdSetupError::Zero("max_range_keys"));
        }
        self.pem()?;
        self.user().map(drop)
    }

    fn tls(&self) -> Result<Option<TlsOptions>, String> {
        let pem = self.pem().map_err(|e| e.to_string())?;
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if !https && pem.ca.is_none() && pem.identity.is_none() {
            return Ok(None);
        }
        let mut tls = TlsOptions::new().with_enabled_roots();
        if let Some(ca) = pem.ca {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = pem.identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(Some(tls))
    }
}

/// The host's etcd client: settings, and the connection made on first use.
#[derive(Clone, Default)]
pub struct EtcdClient {
    settings: Arc<EtcdSettings>,
    client: Arc<tokio::sync::OnceCell<Client>>,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.settings.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdClient {
    /// A client for `settings`, checked now; it connects at its first call.
    pub fn new(settings: EtcdSettings) -> Result<Self, EtcdSetupError> {
        settings.check()?;
        Ok(Self {
            settings: Arc::new(settings),
            client: Default::default(),
        })
    }

    /// The connected client; a failed connection is tried again at the next call.
    async fn client(&self) -> Result<Client, ProbeError> {
        if self.settings.endpoints.is_empty() {
            return Err(ProbeError::Unavailable(
                "no etcd is configured (cluster.etcd.endpoints, or --etcd-endpoint)".into(),
            ));
        }
        let client = self
            .client
            .get_or_try_init(|| async {
                let mut options = ConnectOptions::new()
                    .with_connect_timeout(self.settings.timeout())
                    .with_timeout(self.settings.timeout());
                if let Some(tls) = self.settings.tls().map_err(ProbeError::Unavailable)? {
                    options = options.with_tls(tls);
                }
                let user = self
                    .settings
                    .user()
                    .map_err(|e| ProbeError::Unavailable(e.to_string()))?;
                let name = user.as_ref().map(|u| u.name.clone());
                if let Some(user) = user {
                    // A simple token lapses after etcd's --auth-token-ttl
                    // (5 minutes by default): a call that finds it lapsed
                    // authenticates again and is sent once more.
                    options = options
                        .with_user(user.name, user.password)
                        .with_auto_token_refresh(true);
                }
                Client::connect(&self.settings.endpoints, Some(options))
                    .await
                    .map_err(|e| {
                        let endpoints = self.settings.endpoints.join(",");
                        match (&name, error("connect", &endpoints, e)) {
                            // Connecting authenticates the user.
                            (Some(name), ProbeError::Denied(m)) => {
                                ProbeError::Denied(format!("{m} (authenticating as user {name:?})"))
                            }
                            (_, e) => e,
                        }
                    })
            })
            .await?;
        Ok(client.clone())
    }
}

/// An etcd error as the probe sees it, with the operation and key.
fn error(op: &str, key: &str, e: etcd_client::Error) -> ProbeError {
    use tonic::Code;
    let what = format!("etcd {op} {key}");
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let mut message = format!("{what}: {}", s.message());
            // A transport failure's cause (refused, handshake) is behind the status.
            if let Some(cause) = std::error::Error::source(&s) {
                message = format!("{message}: {}", crate::errors::chain(cause));
            }
            // etcd answers a missing user or a wrong password with
            // InvalidArgument; its messages are its API (its own Go client
            // matches them too), and they mean the credentials, not the call.
            let credentials = [
                "etcdserver: user name is empty",
                "etcdserver: authentication failed",
            ]
            .iter()
            .any(|m| s.message().starts_with(m));
            match s.code() {
                Code::PermissionDenied | Code::Unauthenticated => ProbeError::Denied(message),
                Code::InvalidArgument if credentials => ProbeError::Denied(message),
                Code::DeadlineExceeded => ProbeError::Timeout(message),
                Code::InvalidArgument | Code::OutOfRange => ProbeError::InvalidInput(message),
                Code::NotFound => ProbeError::NotFound(message),
                _ => ProbeError::Unavailable(format!("{message} ({:?})", s.code())),
            }
        }
        other => ProbeError::Unavailable(format!("{what}: {}", crate::errors::chain(&other))),
    }
}

fn shown(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    }
}

impl RunState {
    /// The grant check, then the client and the time this call may take.
    async fn etcd_call(
        &mut self,
        op: &str,
        key: &[u8],
    ) -> Result<(Client, Duration, u32), ProbeError> {
        if !self.ctx.grants.allows_etcd(key) {
            let detail = format!("{op} {}", shown(key));
            return Err(ProbeError::Denied(self.ctx.deny("etcd", detail)));
        }
        let etcd = &self.ctx.services.etcd;
        let left = self.ctx.time_left();
        let timeout = etcd.settings.timeout().min(left);
        if timeout.is_zero() {
            return Err(ProbeError::Timeout(format!(
                "etcd {op} {}: the run has no time left",
                shown(key)
            )));
        }
        let max = etcd.settings.max_range_keys();
        let client = tokio::time::timeout(timeout, etcd.client())
            .await
            .map_err(|_| {
                ProbeError::Timeout(format!(
                    "etcd {op} {}: no connection within {} ms",
                    shown(key),
                    timeout.as_millis()
                ))
            })??;
        Ok((client, timeout, max))
    }
}

/// Runs one etcd request within `timeout`.
async fn bounded<T>(
    op: &str,
    key: &[u8],
    timeout: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(|e| error(op, &shown(key), e)),
        Err(_) => Err(ProbeError::Timeout(format!(
            "etcd {op} {}: no answer within {} ms",
            shown(key),
            timeout.as_millis()
        ))),
    }
}

impl Host for RunState {
    async fn get(
        &mut self,
        key: Vec<u8>,
    ) -> wasmtime::Result<Result<Option<KeyValue>, ProbeError>> {
        let (mut client, timeout, _) = match self.etcd_call("get", &key).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let answer = bounded("get", &key, timeout, client.get(key.clone(), None)).await;
        Ok(answer.map(|r| r.kvs().first().map(key_value)))
    }

    async fn range(
        &mut self,
        prefix: Vec<u8>,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<KeyValue>, ProbeError>> {
        let (mut client, timeout, max) = match self.etcd_call("range", &prefix).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        // A limit above the host's, or none, asks for one key more than the
        // host returns: that key says the answer would not be whole.
        let capped = limit == 0 || limit > max;
        let asked = if capped { max + 1 } else { limit };
        let options = GetOptions::new().with_prefix().with_limit(i64::from(asked));
        let answer = bounded(
            "range",
            &prefix,
            timeout,
            client.get(prefix.clone(), Some(options)),
        )
        .await;
        Ok(answer.and_then(|r| {
            if capped && r.kvs().len() > max as usize {
                return Err(ProbeError::InvalidInput(format!(
                    "etcd range {}: more than {max} keys, the most this host returns; pass a limit",
                    shown(&prefix)
                )));
            }
            Ok(r.kvs().iter().map(key_value).collect())
        }))
    }

    async fn put(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), ProbeError>> {
        let (mut client, timeout, _) = match self.etcd_call("put", &key).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let answer = bounded("put", &key, timeout, client.put(key.clone(), value, None)).await;
        Ok(answer.map(drop))
    }

    async fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<Result<u64, ProbeError>> {
        let (mut client, timeout, _) = match self.etcd_call("delete", &key).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let answer = bounded("delete", &key, timeout, client.delete(key.clone(), None)).await;
        Ok(answer.map(|r| u64::try_from(r.deleted()).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_problems_are_named() {
        let bad = EtcdSettings {
            endpoints: vec!["10.0.0.1:2379".into()],
            ..Default::default()
        };
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("\"10.0.0.1:2379\"")
        );
        let half = EtcdSettings {
            endpoints: vec!["https://10.0.0.1:2379".into()],
            cert_file: Some("/c.crt".into()),
            ..Default::default()
        };
        assert!(matches!(half.check(), Err(EtcdSetupError::HalfIdentity)));
        let missing = EtcdSettings {
            endpoints: vec!["https://10.0.0.1:2379".into()],
            ca_file: Some("/no/such/ca.crt".into()),
            ..Default::default()
        };
        let e = missing.check().unwrap_err().to_string();
        assert!(e.starts_with("etcd.ca_file /no/such/ca.crt:"), "{e}");
        assert!(EtcdSettings::default().check().is_ok());
    }

    #[tokio::test]
    async fn no_endpoints_is_unavailable() {
        let client = EtcdClient::default();
        match client.client().await {
            Err(ProbeError::Unavailable(m)) => assert!(m.contains("no etcd is configured"), "{m}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a client without endpoints"),
        }
    }
}
