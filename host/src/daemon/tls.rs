//! HTTPS on the daemon's listener (`tls:` in the config): the certificate
//! chain and key are PEM files, read at start and read again when either
//! file changes (checked at most every [`RECHECK`] on a new connection), so
//! a certificate renewed in place (cert-manager, a mounted Secret) is served
//! without a restart; a renewal that does not load is logged and the
//! certificate in use stays. Each connection is served HTTP/1.1 by hyper
//! with the same router as plain HTTP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};

/// How often the files are looked at for a change, at most.
pub const RECHECK: Duration = Duration::from_secs(5);
/// How long a client has for its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Why a certificate and key do not load.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cert_file {path}: {why}")]
    Cert { path: PathBuf, why: String },
    #[error("key_file {path}: {why}")]
    Key { path: PathBuf, why: String },
}

/// Reads the chain in `cert` and the key in `key` (PEM).
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.into(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.into(),
            why: "no CERTIFICATE in it".into(),
        });
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.into(),
        why: e.to_string(),
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| TlsError::Key {
            path: key.into(),
            why: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: key.into(),
        why: format!("it does not match the certificate: {e}"),
    })?;
    Ok(certified)
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

struct Current {
    key: Arc<CertifiedKey>,
    seen: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// The certificate served, read again when its files change.
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

impl std::fmt::Debug for CertFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CertFiles {
    pub fn open(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let seen = (modified(cert), modified(key));
        let loaded = load(cert, key)?;
        Ok(CertFiles {
            cert: cert.into(),
            key: key.into(),
            current: Mutex::new(Current {
                key: Arc::new(loaded),
                seen,
                checked: Instant::now(),
            }),
        })
    }

    /// The certificate to serve now, read again if its files changed.
    fn now(&self) -> Arc<CertifiedKey> {
        let mut c = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.checked.elapsed() >= RECHECK {
            c.checked = Instant::now();
            let seen = (modified(&self.cert), modified(&self.key));
            if seen != c.seen {
                c.seen = seen;
                match load(&self.cert, &self.key) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "serving the renewed certificate");
                        c.key = Arc::new(k);
                    }
                    // Half-written files are read again at the next change.
                    Err(e) => tracing::warn!("the certificate in use stays: {e}"),
                }
            }
        }
        c.key.clone()
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.now())
    }
}

/// A TLS acceptor serving `files`' certificate, HTTP/1.1 only.
pub fn acceptor(files: Arc<CertFiles>) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // ring's provider supports the default protocol versions.
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| unreachable!("ring supports TLS 1.2 and 1.3: {e}"))
        .with_no_client_auth()
        .with_cert_resolver(files);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors, say: try again shortly.
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
}
