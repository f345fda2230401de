//! The `http` capability against servers the tests start on loopback: plain
//! HTTP (headers, bodies, redirects handed back, the body cap, timeouts,
//! refused connections) and HTTPS with a CA and leaf made here (the peer
//! certificate read back, verification with and without the CA).

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sonde::bindings::ProbeError;
use sonde::caps::HostServices;
use sonde::caps::dns::DnsSettings;
use sonde::caps::http::{HttpClient, HttpSettings};
use sonde::grants::GrantSet;
use sonde::runtime::{FailureReason, RunLimits, RunOutcome};
use sonde_probes::TEST_HOSTILE_PATH as PROBE;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::run;

/// The value of header `name` in a request head, if it has one.
pub fn header_value<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// What the test server answers for a request head and body.
fn answer(head: &str, body: &[u8]) -> (Vec<u8>, Duration) {
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let header = |name: &str| header_value(head, name).unwrap_or_default().to_string();
    let ok = |extra: &str, body: Vec<u8>| {
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend(body);
        out
    };
    match path {
        "/hello" => (ok("X-Sonde: yes\r\n", b"hello".to_vec()), Duration::ZERO),
        "/echo" => {
            let text = format!(
                "{method} {} {}",
                header("x-probe"),
                String::from_utf8_lossy(body)
            );
            (ok("", text.into_bytes()), Duration::ZERO)
        }
        "/big" => (ok("", vec![b'a'; 3 << 20]), Duration::ZERO),
        // A log-in and what its session may read (active-checks' flows).
        "/login" if method == "POST" && String::from_utf8_lossy(body).contains("\"s3cret\"") => (
            ok(
                "Content-Type: application/json\r\nX-Session: s-9\r\n",
                br#"{"token": "t-42", "user": {"id": 7}}"#.to_vec(),
            ),
            Duration::ZERO,
        ),
        "/users/7/orders" if header("authorization") == "Bearer t-42" => {
            (ok("", b"orders: 3".to_vec()), Duration::ZERO)
        }
        "/login" | "/users/7/orders" => (
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
            Duration::ZERO,
        ),
        "/slow" => (ok("", b"late".to_vec()), Duration::from_secs(5)),
        "/redirect" => (
            b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            Duration::ZERO,
        ),
        _ => (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            Duration::ZERO,
        ),
    }
}

/// Reads one request (head and a Content-Length body) and answers it.
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = header_value(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let (out, delay) = answer(&head, &buf[head_end..head_end + length]);
    tokio::time::sleep(delay).await;
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// Serves plain HTTP, or HTTPS with `tls`, on a loopback port; returns the port.
pub async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            handle(stream).await;
                        }
                    }
                    None => handle(tcp).await,
                }
            });
        }
    });
    port
}

fn services(settings: HttpSettings) -> Arc<HostServices> {
    Arc::new(HostServices {
        http: HttpClient::new(settings, DnsSettings::default()).unwrap(),
        ..Default::default()
    })
}

async fn fetch(config: Value, grant: &str, services: Arc<HostServices>) -> RunOutcome {
    let mut config = config;
    config["mode"] = json!("http");
    let mut grants = GrantSet::parse_spec(grant).unwrap();
    // What the test probe declares it needs, beside the grant under test.
    grants.extend(GrantSet::parse_spec("kube:list:Pod").unwrap());
    let limits = RunLimits {
        timeout_ms: 10_000,
        ..Default::default()
    };
    run(PROBE, config, Some(grants), limits, services).await
}

/// The probe's one finding: what it saw of the answer.
fn seen(out: &RunOutcome) -> Value {
    assert!(out.succeeded(), "{:?}", out.reason);
    assert_eq!(out.findings.len(), 1);
    serde_json::from_str(&out.findings[0].message).unwrap()
}

fn probe_error(out: &RunOutcome) -> &ProbeError {
    match &out.reason {
        Some(FailureReason::ProbeError { error }) => error,
        other => panic!("expected the probe's error, got {other:?}"),
    }
}

fn header<'a>(seen: &'a Value, name: &str) -> Option<&'a str> {
    seen["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

#[tokio::test]
async fn requests_and_answers_over_plain_http() {
    let port = serve(None).await;
    let grant = "http:127.0.0.1:*";
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let hello = seen(
        &fetch(
            json!({"url": url("/hello")}),
            grant,
            services(Default::default()),
        )
        .await,
    );
    assert_eq!(hello["status"], 200);
    assert_eq!(hello["body"], "hello");
    assert_eq!(hello["truncated"], false);
    assert_eq!(header(&hello, "x-sonde"), Some("yes"));
    assert_eq!(hello["certificate"], Value::Null);

    let echo = json!({
        "url": url("/echo"), "method": "POST",
        "headers": [["X-Probe", "sonde"]], "body": "payload",
    });
    let echo = seen(&fetch(echo, grant, services(Default::default())).await);
    assert_eq!(echo["body"], "POST sonde payload");

    // A redirect is the probe's to follow (its target may be outside the grant).
    let moved = seen(
        &fetch(
            json!({"url": url("/redirect")}),
            grant,
            services(Default::default()),
        )
        .await,
    );
    assert_eq!(moved["status"], 302);
    assert_eq!(header(&moved, "location"), Some("http://169.254.169.254/"));

    let missing = seen(
        &fetch(
            json!({"url": url("/nope")}),
            grant,
            services(Default::default()),
        )
        .await,
    );
    assert_eq!(missing["status"], 404);
}

#[tokio::test]
async fn the_body_handed_back_is_capped() {
    let port = serve(None).await;
    let config = json!({"url": format!("http://127.0.0.1:{port}/big")});
    let grant = "http:127.0.0.1:*";
    let default = seen(&fetch(config.clone(), grant, services(Default::default())).await);
    assert_eq!(default["body_len"], 1 << 20);
    assert_eq!(default["truncated"], true);
    let small = services(HttpSettings {
        max_body_bytes: Some(1000),
        ..Default::default()
    });
    let small = seen(&fetch(config, grant, small).await);
    assert_eq!(small["body_len"], 1000);
    assert_eq!(small["truncated"], true);
}

#[tokio::test]
async fn a_slow_server_times_out_and_a_closed_port_is_unavailable() {
    let port = serve(None).await;
    let slow = json!({"url": format!("http://127.0.0.1:{port}/slow"), "timeout_ms": 300});
    let started = std::time::Instant::now();
    let out = fetch(slow, "http:127.0.0.1:*", services(Default::default())).await;
    match probe_error(&out) {
        ProbeError::Timeout(m) => assert!(m.contains("/slow: no answer within 300 ms"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4));

    let closed = StdListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = json!({"url": format!("http://127.0.0.1:{closed_port}/")});
    let out = fetch(refused, "http:127.0.0.1:*", services(Default::default())).await;
    match probe_error(&out) {
        ProbeError::Unavailable(m) => {
            assert!(m.contains("cannot connect"), "{m}");
            assert!(m.contains(&format!("127.0.0.1:{closed_port}")), "{m}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_peer_certificate_and_verification_over_https() {
    let pki = crate::pki::pki();
    let port = serve(Some(pki.acceptor())).await;
    let grant = "http:127.0.0.1:*";
    let url = format!("https://127.0.0.1:{port}/hello");

    // Skipping verification still shows the certificate, to judge its expiry.
    let insecure = seen(
        &fetch(
            json!({"url": url, "insecure": true}),
            grant,
            services(Default::default()),
        )
        .await,
    );
    assert_eq!(insecure["status"], 200);
    let cert = &insecure["certificate"];
    assert_eq!(cert["subject"], "CN=kube-apiserver");
    assert_eq!(cert["issuer"], "CN=sonde-test-ca");
    assert_eq!(cert["not_before"], 1_767_312_000);
    assert_eq!(cert["not_after"], 2_082_844_800);
    assert_eq!(cert["dns_names"], json!(["api.sonde.test"]));

    // Verifying against the system's roots only: an unknown issuer.
    let out = fetch(json!({"url": url}), grant, services(Default::default())).await;
    match probe_error(&out) {
        ProbeError::Unavailable(m) => {
            assert!(m.contains("cannot connect"), "{m}");
            assert!(m.to_lowercase().contains("certificate"), "{m}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }

    // With the CA configured, the same request verifies.
    let trusted = services(HttpSettings {
        ca_files: vec![pki.ca_file.clone()],
        ..Default::default()
    });
    let verified = seen(&fetch(json!({"url": url}), grant, trusted).await);
    assert_eq!(verified["status"], 200);
    assert_eq!(verified["body"], "hello");
    assert_eq!(verified["certificate"]["subject"], "CN=kube-apiserver");
}

#[tokio::test]
async fn bad_requests_and_targets_outside_the_grant_are_refused() {
    let port = serve(None).await;
    let url = format!("http://127.0.0.1:{port}/hello");
    let bad_header = json!({"url": url, "headers": [["Bad Name", "x"]]});
    let out = fetch(bad_header, "http:127.0.0.1:*", services(Default::default())).await;
    match probe_error(&out) {
        ProbeError::InvalidInput(m) => assert!(m.contains("\"Bad Name\""), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    let bad_method = json!({"url": url, "method": "GE T"});
    let out = fetch(bad_method, "http:127.0.0.1:*", services(Default::default())).await;
    assert!(
        matches!(probe_error(&out), ProbeError::InvalidInput(m) if m.contains("\"GE T\"")),
        "{:?}",
        out.reason
    );
    let out = fetch(
        json!({"url": url}),
        "http:127.0.0.1:1",
        services(Default::default()),
    )
    .await;
    match probe_error(&out) {
        ProbeError::Denied(m) => assert!(m.contains(&format!("GET 127.0.0.1:{port}")), "{m}"),
        other => panic!("expected denied, got {other:?}"),
    }
    assert_eq!(out.denials.len(), 1);
}
