//! The daemon over HTTPS (`tls:`): served with its certificate, read by a
//! client that trusts the CA, refused to one that does not; a node agent
//! sends to it with `--daemon-ca`; a certificate renewed in place is
//! served without a restart; and files that do not load are named at start.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use crate::serve::Served;

const VIEWER: &str = "viewer-token-0123456789";
const AGENT: &str = "agent-token-0123456789";

/// `GET path` over TLS to `url`'s port, trusting only `ca`: the status
/// line, or the handshake's error.
async fn get(url: &str, path: &str, ca: &Path) -> Result<String, String> {
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("api.sonde.test").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: api.sonde.test\r\nAuthorization: Bearer {VIEWER}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

fn config() -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         tls: {{cert_file: tls.crt, key_file: tls.key}}\n\
         cluster: {{snapshot: \"{{cluster}}\"}}\n\
         store: {{path: \"{{dir}}/sonde.db\"}}\n\
         auth:\n  tokens:\n    - {{name: dash, role: viewer, token: \"{VIEWER}\"}}\n    - {{name: agents, role: agent, token: \"{AGENT}\"}}\n\
         probes: []\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_https_and_a_renewed_certificate_without_a_restart() {
    let first = crate::pki::pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&first.server_cert, dir.path().join("tls.crt")).unwrap();
    std::fs::copy(&first.server_key, dir.path().join("tls.key")).unwrap();
    let s = Served::start_in(dir.path(), &config()).unwrap();
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);

    assert_eq!(
        get(&s.url, "/healthz", &first.ca_file).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        get(&s.url, "/api/v1/whoami", &first.ca_file).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    // A client that does not trust the CA is refused in the handshake.
    let other = crate::pki::pki();
    let refused = get(&s.url, "/healthz", &other.ca_file).await.unwrap_err();
    assert!(refused.contains("invalid peer certificate"), "{refused}");
    // Plain HTTP to the port gets no HTTP answer.
    let port = s
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let mut plain = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // A node agent sends over HTTPS, trusting the daemon's CA.
    let url = s.url.trim_end_matches('/').to_string();
    let ca = first.ca_file.clone();
    let agent = sonde::agent::DaemonSink::with_ca(&url, Some(AGENT.into()), Some(&ca)).unwrap();
    agent.check().await.unwrap();
    // With the public roots only, it is refused.
    let public = sonde::agent::DaemonSink::new(&url, Some(AGENT.into())).unwrap();
    let e = sonde::agent::loader::chain(&public.check().await.unwrap_err());
    assert!(e.contains("cannot send collector data"), "{e}");

    // The certificate renewed in place: served at the next check.
    std::fs::copy(&other.server_cert, dir.path().join("tls.crt")).unwrap();
    std::fs::copy(&other.server_key, dir.path().join("tls.key")).unwrap();
    tokio::time::sleep(sonde::daemon::tls::RECHECK + Duration::from_millis(500)).await;
    assert_eq!(
        get(&s.url, "/healthz", &other.ca_file).await.unwrap(),
        "HTTP/1.1 200 OK"
    );
    assert!(get(&s.url, "/healthz", &first.ca_file).await.is_err());
    assert!(
        s.log().contains("serving the renewed certificate"),
        "{}",
        s.log()
    );
}

#[test]
fn certificate_files_that_do_not_load_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::pki::pki();
    // The key of another certificate.
    let other = crate::pki::pki();
    std::fs::copy(&pki.server_cert, dir.path().join("tls.crt")).unwrap();
    std::fs::copy(&other.server_key, dir.path().join("tls.key")).unwrap();
    let config = dir.path().join("sonde.yaml");
    for (tls, want) in [
        (
            "{cert_file: missing.crt, key_file: tls.key}",
            format!(
                "tls.cert_file {}: ",
                dir.path().join("missing.crt").display()
            ),
        ),
        (
            "{cert_file: tls.crt, key_file: tls.key}",
            format!(
                "tls.key_file {}: it does not match the certificate",
                dir.path().join("tls.key").display()
            ),
        ),
    ] {
        std::fs::write(&config, format!("tls: {tls}\nprobes: []\n")).unwrap();
        let out = crate::cli::sonde()
            .args(["serve", "-c"])
            .arg(&config)
            .arg("--check")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(&want), "{want}: {stderr}");
    }
}
