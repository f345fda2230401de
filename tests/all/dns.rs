//! DNS through a real DNS server (dnsmasq) started on loopback: A, AAAA,
//! CNAME and SRV answers, NXDOMAIN as not-found, and nameserver grants.

use std::net::UdpSocket;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sonde::bindings::ProbeError;
use sonde::caps::HostServices;
use sonde::caps::dns::DnsSettings;
use sonde::grants::GrantSet;
use sonde::runtime::{FailureReason, RunLimits, RunOutcome};
use sonde_probes::TEST_HOSTILE_PATH as PROBE;

use crate::run;

pub struct Dnsmasq {
    child: Child,
    pub addr: String,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_dnsmasq() -> Dnsmasq {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--local=/sonde.test/",
            "--address=/web.sonde.test/127.0.0.7",
            "--address=/v6.sonde.test/fd00::7",
            "--cname=alias.sonde.test,web.sonde.test",
            "--srv-host=_http._tcp.sonde.test,web.sonde.test,8080,10,5",
        ])
        .arg(format!("--port={port}"))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start dnsmasq ({e}); scripts/setup.sh --for-tests installs it")
        });
    Dnsmasq {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

fn grant(nameservers: &str) -> GrantSet {
    let mut g = GrantSet::parse_spec(&format!("dns:{nameservers}")).unwrap();
    g.extend(GrantSet::parse_spec("kube:list:Pod").unwrap());
    g
}

async fn resolve(
    name: &str,
    rtype: &str,
    ns: Option<&str>,
    grants: GrantSet,
    services: Arc<HostServices>,
) -> RunOutcome {
    let config = json!({"mode": "resolve", "name": name, "rtype": rtype, "nameserver": ns});
    run(
        PROBE,
        config,
        Some(grants),
        RunLimits {
            timeout_ms: 10_000,
            ..Default::default()
        },
        services,
    )
    .await
}

fn answers(out: &RunOutcome) -> Vec<String> {
    assert!(out.succeeded(), "{:?}", out.reason);
    out.findings.iter().map(|f| f.message.clone()).collect()
}

/// Waits until dnsmasq answers.
pub async fn ready(dns: &Dnsmasq) {
    for _ in 0..50 {
        let out = resolve(
            "web.sonde.test",
            "a",
            Some(&dns.addr),
            grant("127.0.0.1:*"),
            Default::default(),
        )
        .await;
        if out.succeeded() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dnsmasq did not answer on {}", dns.addr);
}

#[tokio::test]
async fn records_of_every_type_resolve_against_a_named_nameserver() {
    let dns = start_dnsmasq();
    ready(&dns).await;
    let ns = Some(dns.addr.as_str());
    let g = || grant("127.0.0.1:*");
    let none = || Arc::new(HostServices::default());
    assert_eq!(
        answers(&resolve("web.sonde.test", "a", ns, g(), none()).await),
        vec!["A 127.0.0.7"]
    );
    assert_eq!(
        answers(&resolve("v6.sonde.test", "aaaa", ns, g(), none()).await),
        vec!["AAAA fd00::7"]
    );
    let cname = answers(&resolve("alias.sonde.test", "cname", ns, g(), none()).await);
    assert_eq!(cname, vec!["CNAME web.sonde.test."]);
    let srv = answers(&resolve("_http._tcp.sonde.test", "srv", ns, g(), none()).await);
    assert_eq!(srv, vec!["SRV 10 5 8080 web.sonde.test."]);
}

#[tokio::test]
async fn nxdomain_is_not_found() {
    let dns = start_dnsmasq();
    ready(&dns).await;
    let out = resolve(
        "nope.sonde.test",
        "a",
        Some(&dns.addr),
        grant("127.0.0.1:*"),
        Default::default(),
    )
    .await;
    match out.reason {
        Some(FailureReason::ProbeError {
            error: ProbeError::NotFound(m),
        }) => assert!(m.contains("nope.sonde.test"), "{m}"),
        other => panic!("expected not-found, got {other:?}"),
    }
}

#[tokio::test]
async fn the_host_resolver_is_used_when_no_nameserver_is_named() {
    let dns = start_dnsmasq();
    ready(&dns).await;
    let services = Arc::new(HostServices {
        kube: None,
        dns: DnsSettings {
            nameservers: vec![dns.addr.clone()],
            timeout_ms: None,
        },
        ..Default::default()
    });
    let out = resolve("web.sonde.test", "a", None, grant(""), services).await;
    assert_eq!(answers(&out), vec!["A 127.0.0.7"]);
}

#[tokio::test]
async fn a_nameserver_outside_the_grant_is_denied() {
    let dns = start_dnsmasq();
    let out = resolve(
        "web.sonde.test",
        "a",
        Some(&dns.addr),
        grant("10.96.0.10:53"),
        Default::default(),
    )
    .await;
    match &out.reason {
        Some(FailureReason::ProbeError {
            error: ProbeError::Denied(m),
        }) => {
            assert!(
                m.contains(&format!("resolve web.sonde.test at {}", dns.addr)),
                "{m}"
            )
        }
        other => panic!("expected denied, got {other:?}"),
    }
    assert_eq!(out.denials.len(), 1);
}
