//! Certificates made per test: a CA, a serving certificate it signed for
//! 127.0.0.1 and `api.sonde.test` (valid 2026-01-02 to 2036-01-02), and a
//! client certificate, each written as PEM into a temporary folder.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

pub struct Pki {
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    server: (rcgen::Certificate, KeyPair),
    _dir: tempfile::TempDir,
}

fn signed(
    names: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    params.not_before = rcgen::date_time_ymd(2026, 1, 2);
    params.not_after = rcgen::date_time_ymd(2036, 1, 2);
    (params.signed_by(&key, issuer).unwrap(), key)
}

pub fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sonde-test-ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server = signed(
        &["127.0.0.1", "api.sonde.test"],
        "kube-apiserver",
        ExtendedKeyUsagePurpose::ServerAuth,
        &issuer,
    );
    let client = signed(
        &[],
        "apiserver-etcd-client",
        ExtendedKeyUsagePurpose::ClientAuth,
        &issuer,
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca_file: write("ca.crt", ca.pem()),
        server_cert: write("server.crt", server.0.pem()),
        server_key: write("server.key", server.1.serialize_pem()),
        client_cert: write("client.crt", client.0.pem()),
        client_key: write("client.key", client.1.serialize_pem()),
        server,
        _dir: dir,
    }
}

impl Pki {
    /// A TLS acceptor serving the server certificate (no client certificates asked).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        use tokio_rustls::rustls;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![self.server.0.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(self.server.1.serialize_der()).unwrap(),
        )
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}
