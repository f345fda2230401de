//! The `etcd` capability against a real etcd (Debian's `etcd-server`) started
//! on loopback: put, get, range and delete under a granted prefix, keys
//! outside it denied, the host's range limit, mutual TLS as kubeadm sets it
//! up (a client certificate required), and an etcd that is not there.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sonde::caps::HostServices;
use sonde::caps::etcd::{EtcdClient, EtcdSettings};
use sonde::grants::GrantSet;
use sonde::runtime::{RunLimits, RunOutcome};
use sonde_probes::TEST_HOSTILE_PATH as PROBE;

use crate::pki::{Pki, pki};
use crate::run;

pub struct Etcd {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts etcd on two free loopback ports; with `tls`, clients need a
/// certificate signed by the test CA (`--client-cert-auth`).
pub fn start_etcd(tls: Option<&Pki>) -> Etcd {
    start_etcd_with(tls.map(|p| (p, true)), &[])
}

/// Starts etcd on two free loopback ports: serving TLS with the test PKI's
/// server certificate when `tls` is set (and requiring client certificates
/// when its flag is), with `extra` arguments.
fn start_etcd_with(tls: Option<(&Pki, bool)>, extra: &[&str]) -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new("etcd");
    cmd.arg("--name=sonde-test")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=sonde-test={peer_url}"))
        .arg("--logger=zap")
        .arg("--log-level=error")
        .stdout(Stdio::null());
    if let Some((p, client_certs)) = tls {
        cmd.arg(format!("--cert-file={}", p.server_cert.display()))
            .arg(format!("--key-file={}", p.server_key.display()));
        if client_certs {
            cmd.arg(format!("--trusted-ca-file={}", p.ca_file.display()))
                .arg("--client-cert-auth");
        }
    }
    cmd.args(extra);
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot start etcd ({e}); scripts/setup.sh --for-tests installs etcd-server")
    });
    Etcd {
        child,
        url,
        _dir: dir,
    }
}

pub fn services(settings: EtcdSettings) -> Arc<HostServices> {
    Arc::new(HostServices {
        etcd: EtcdClient::new(settings).unwrap(),
        ..Default::default()
    })
}

async fn calls(ops: Value, grant: &str, services: Arc<HostServices>) -> RunOutcome {
    let mut grants = GrantSet::parse_spec(grant).unwrap();
    // What the test probe declares it needs, beside the grant under test.
    grants.extend(GrantSet::parse_spec("kube:list:Pod").unwrap());
    let limits = RunLimits {
        timeout_ms: 10_000,
        ..Default::default()
    };
    let config = json!({"mode": "etcd", "ops": ops});
    run(PROBE, config, Some(grants), limits, services).await
}

/// Each call's answer, in order.
fn answers(out: &RunOutcome) -> Vec<String> {
    assert!(out.succeeded(), "{:?}", out.reason);
    out.findings.iter().map(|f| f.message.clone()).collect()
}

/// Waits until etcd takes a write through the capability.
pub async fn ready(services: &Arc<HostServices>) {
    let mut last = Vec::new();
    for _ in 0..100 {
        let ops = json!([{"op": "put", "key": "/sonde-probe/ready", "value": "1"}]);
        last = answers(&calls(ops, "etcd:/sonde-probe/", services.clone()).await);
        if last == ["put /sonde-probe/ready: ok"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not take a write: {last:?}");
}

/// The revision in an answer like `v (revision 7)`.
fn revision(answer: &str) -> i64 {
    answer
        .rsplit_once("(revision ")
        .and_then(|(_, r)| r.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no revision in {answer:?}"))
}

#[tokio::test]
async fn keys_are_written_read_listed_and_deleted_under_the_grant() {
    let etcd = start_etcd(None);
    let s = services(EtcdSettings {
        endpoints: vec![etcd.url.clone()],
        max_range_keys: Some(3),
        ..Default::default()
    });
    ready(&s).await;
    let ops = json!([
        {"op": "put", "key": "/sonde-probe/a", "value": "1"},
        {"op": "put", "key": "/sonde-probe/b", "value": "2"},
        {"op": "get", "key": "/sonde-probe/a"},
        {"op": "put", "key": "/sonde-probe/a", "value": "3"},
        {"op": "get", "key": "/sonde-probe/a"},
        {"op": "range", "key": "/sonde-probe/", "limit": 0},
        {"op": "range", "key": "/sonde-probe/", "limit": 2},
        {"op": "delete", "key": "/sonde-probe/a"},
        {"op": "delete", "key": "/sonde-probe/a"},
        {"op": "get", "key": "/sonde-probe/a"},
        {"op": "get", "key": "/registry/secrets/shop/db"},
        {"op": "range", "key": "/", "limit": 1},
    ]);
    let got = answers(&calls(ops, "etcd:/sonde-probe/", s.clone()).await);
    assert_eq!(
        got[..2],
        ["put /sonde-probe/a: ok", "put /sonde-probe/b: ok"]
    );
    assert!(
        got[2].starts_with("get /sonde-probe/a: 1 (revision "),
        "{}",
        got[2]
    );
    assert_eq!(got[3], "put /sonde-probe/a: ok");
    assert!(
        got[4].starts_with("get /sonde-probe/a: 3 (revision "),
        "{}",
        got[4]
    );
    assert!(revision(&got[4]) > revision(&got[2]));
    assert_eq!(
        got[5..10],
        [
            "range /sonde-probe/: /sonde-probe/a=3,/sonde-probe/b=2,/sonde-probe/ready=1",
            "range /sonde-probe/: /sonde-probe/a=3,/sonde-probe/b=2",
            "delete /sonde-probe/a: 1 deleted",
            "delete /sonde-probe/a: 0 deleted",
            "get /sonde-probe/a: none",
        ]
    );
    assert!(
        got[10].starts_with(
            "get /registry/secrets/shop/db: ProbeError::Denied(\"etcd access not granted: get /registry/secrets/shop/db"
        ),
        "{}",
        got[10]
    );
    // A prefix wider than the grant is denied even with a limit.
    assert!(
        got[11].starts_with("range /: ProbeError::Denied("),
        "{}",
        got[11]
    );

    // More keys than the host returns: refused, not cut short unsaid.
    let ops = json!([
        {"op": "put", "key": "/sonde-probe/c", "value": "4"},
        {"op": "put", "key": "/sonde-probe/d", "value": "5"},
        {"op": "range", "key": "/sonde-probe/", "limit": 0},
        {"op": "range", "key": "/sonde-probe/", "limit": 3},
    ]);
    let got = answers(&calls(ops, "etcd:/sonde-probe/", s).await);
    assert!(
        got[2].contains("more than 3 keys, the most this host returns; pass a limit"),
        "{}",
        got[2]
    );
    assert_eq!(
        got[3],
        "range /sonde-probe/: /sonde-probe/b=2,/sonde-probe/c=4,/sonde-probe/d=5"
    );
}

#[tokio::test]
async fn mutual_tls_as_kubeadm_sets_it_up() {
    let pki = pki();
    let etcd = start_etcd(Some(&pki));
    let with_cert = services(EtcdSettings {
        endpoints: vec![etcd.url.clone()],
        ca_file: Some(pki.ca_file.clone()),
        cert_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
        ..Default::default()
    });
    ready(&with_cert).await;
    let ops = json!([{"op": "get", "key": "/sonde-probe/ready"}]);
    let got = answers(&calls(ops.clone(), "etcd:/sonde-probe/", with_cert).await);
    assert!(
        got[0].starts_with("get /sonde-probe/ready: 1 (revision"),
        "{got:?}"
    );

    // Without a client certificate etcd ends the handshake: unavailable, and the run goes on.
    let without = services(EtcdSettings {
        endpoints: vec![etcd.url.clone()],
        ca_file: Some(pki.ca_file.clone()),
        timeout_ms: Some(2_000),
        ..Default::default()
    });
    let got = answers(&calls(ops, "etcd:/sonde-probe/", without).await);
    assert!(
        got[0].starts_with(
            "get /sonde-probe/ready: ProbeError::Unavailable(\"etcd get /sonde-probe/ready"
        ),
        "{got:?}"
    );
}

/// Turns on etcd's own authentication, as `etcdctl user add`, `role add`,
/// `role grant-permission --prefix` and `auth enable` would: `root`, and
/// `sonde` with read and write under `/sonde-probe/` only.
async fn enable_auth(url: &str, pki: &Pki) {
    use etcd_client::{Certificate, Client, ConnectOptions, Permission, TlsOptions};
    let ca = std::fs::read(&pki.ca_file).unwrap();
    let tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
    let mut client = None;
    for _ in 0..100 {
        let options = ConnectOptions::new().with_tls(tls.clone());
        if let Ok(mut c) = Client::connect([url], Some(options)).await
            && c.status().await.is_ok()
        {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = client.expect("etcd answers");
    c.role_add("root").await.unwrap();
    c.user_add("root", "root-password", None).await.unwrap();
    c.user_grant_role("root", "root").await.unwrap();
    c.role_add("sonde").await.unwrap();
    let perm = Permission::read_write("/sonde-probe/").with_prefix();
    c.role_grant_permission("sonde", perm).await.unwrap();
    c.user_add("sonde", "sonde-password", None).await.unwrap();
    c.user_grant_role("sonde", "sonde").await.unwrap();
    c.auth_enable().await.unwrap();
}

#[tokio::test]
async fn users_and_passwords_as_etcd_auth_sets_them_up() {
    let pki = pki();
    // Server TLS only (no client certificates), and tokens that lapse after a second.
    let etcd = start_etcd_with(Some((&pki, false)), &["--auth-token-ttl=1"]);
    enable_auth(&etcd.url, &pki).await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "sonde-password\n").unwrap();
    let user = EtcdSettings {
        endpoints: vec![etcd.url.clone()],
        ca_file: Some(pki.ca_file.clone()),
        username: Some("sonde".into()),
        password_file: Some(password.clone()),
        timeout_ms: Some(3_000),
        ..Default::default()
    };
    let s = services(user.clone());
    ready(&s).await;
    let ops = json!([
        {"op": "get", "key": "/sonde-probe/ready"},
        {"op": "put", "key": "/registry/x", "value": "1"},
    ]);
    // The host grants every key; etcd's role for the user does not.
    let got = answers(&calls(ops, "etcd:/", s.clone()).await);
    assert!(
        got[0].starts_with("get /sonde-probe/ready: 1 (revision"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("put /registry/x: ProbeError::Denied(\"etcd put /registry/x: etcdserver: permission denied"),
        "{got:?}"
    );

    // The user's token has lapsed by now: the call authenticates again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let ops = json!([{"op": "get", "key": "/sonde-probe/ready"}]);
    let got = answers(&calls(ops.clone(), "etcd:/sonde-probe/", s).await);
    assert!(
        got[0].starts_with("get /sonde-probe/ready: 1 (revision"),
        "{got:?}"
    );

    // Without a user, or with a wrong password: denied, naming the user.
    let anonymous = services(EtcdSettings {
        username: None,
        password_file: None,
        ..user.clone()
    });
    let got = answers(&calls(ops.clone(), "etcd:/sonde-probe/", anonymous).await);
    assert!(
        got[0].starts_with("get /sonde-probe/ready: ProbeError::Denied(\"etcd get /sonde-probe/ready: etcdserver: user name is empty"),
        "{got:?}"
    );
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "guess").unwrap();
    let wrong = services(EtcdSettings {
        password_file: Some(wrong),
        ..user.clone()
    });
    let got = answers(&calls(ops, "etcd:/sonde-probe/", wrong).await);
    assert!(
        got[0].starts_with("get /sonde-probe/ready: ProbeError::Denied(\"etcd connect ")
            && got[0].contains("authentication failed")
            && got[0].contains("(authenticating as user \\\"sonde\\\")"),
        "{got:?}"
    );

    // Settings refused at start, named.
    let refused = |settings: EtcdSettings| EtcdClient::new(settings).unwrap_err().to_string();
    assert_eq!(
        refused(EtcdSettings {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ..user.clone()
        }),
        "etcd: a password is sent only over TLS, and endpoint \"http://127.0.0.1:2379\" is plain http (use https://)"
    );
    assert_eq!(
        refused(EtcdSettings {
            password_file: None,
            ..user.clone()
        }),
        "etcd: username and password_file go together"
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    assert_eq!(
        refused(EtcdSettings {
            password_file: Some(empty.clone()),
            ..user.clone()
        }),
        format!("etcd.password_file {}: the file is empty", empty.display())
    );
    let missing = dir.path().join("missing");
    assert!(
        refused(EtcdSettings {
            password_file: Some(missing.clone()),
            ..user
        })
        .starts_with(&format!("etcd.password_file {}: ", missing.display()))
    );
}

#[tokio::test]
async fn an_etcd_that_is_not_there_or_not_configured() {
    let s = services(EtcdSettings {
        endpoints: vec![format!("http://127.0.0.1:{}", free_port())],
        timeout_ms: Some(1_000),
        ..Default::default()
    });
    let ops = json!([{"op": "get", "key": "/sonde-probe/x"}]);
    let started = std::time::Instant::now();
    let got = answers(&calls(ops.clone(), "etcd:/sonde-probe/", s).await);
    assert!(
        got[0].starts_with("get /sonde-probe/x: ProbeError::Unavailable(\"etcd get /sonde-probe/x")
            || got[0]
                .starts_with("get /sonde-probe/x: ProbeError::Timeout(\"etcd get /sonde-probe/x"),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let got = answers(&calls(ops, "etcd:/sonde-probe/", Default::default()).await);
    assert!(got[0].contains("no etcd is configured"), "{got:?}");
}
