//! A probe that misbehaves on purpose, one way per `mode` in its config, so
//! the tests can check each is contained: endless loop, huge allocation,
//! deep recursion, a flood of findings, a flood of log lines, a flood of
//! stdout, a panic, and calls outside its grant.

#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use sonde_sdk::bindings::sonde::probe::{dns, etcd, http, kube as raw_kube};
use sonde_sdk::{Finding, KubeVerb, Probe, ProbeError, ProbeInfo, Rule, Severity, log};

const SAW: Rule = Rule::new(
    "Saw",
    "What the probe saw",
    "test",
    Severity::Info,
    "A host answer.",
    "None.",
);

#[derive(serde::Deserialize)]
struct Config {
    mode: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    rtype: String,
    #[serde(default)]
    nameserver: Option<String>,
    /// `http` mode: the request.
    #[serde(default)]
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u32>,
    #[serde(default)]
    insecure: bool,
    /// `etcd` mode: the calls, in order.
    #[serde(default)]
    ops: Vec<EtcdOp>,
}

#[derive(serde::Deserialize)]
struct EtcdOp {
    op: String,
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    limit: u32,
}

/// `etcd` mode: each call's answer (or error) as one finding, in order.
fn etcd_ops(ops: &[EtcdOp]) -> Vec<Finding> {
    let shown = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    ops.iter()
        .map(|o| {
            let key = o.key.as_bytes();
            let answer = match o.op.as_str() {
                "put" => etcd::put(key, o.value.as_bytes()).map(|()| "ok".to_string()),
                "get" => etcd::get(key).map(|kv| match kv {
                    Some(kv) => format!("{} (revision {})", shown(&kv.value), kv.mod_revision),
                    None => "none".into(),
                }),
                "range" => etcd::range(key, o.limit).map(|kvs| {
                    kvs.iter()
                        .map(|kv| format!("{}={}", shown(&kv.key), shown(&kv.value)))
                        .collect::<Vec<_>>()
                        .join(",")
                }),
                "delete" => etcd::delete(key).map(|n| format!("{n} deleted")),
                other => Err(ProbeError::InvalidInput(format!("unknown op {other:?}"))),
            };
            let text = match answer {
                Ok(a) => a,
                Err(e) => format!("{e:?}"),
            };
            SAW.cluster_finding(format!("{} {}: {text}", o.op, o.key))
                .into()
        })
        .collect()
}

/// `http` mode: one request, the answer as one finding of JSON.
fn fetch(config: &Config) -> Result<Vec<Finding>, ProbeError> {
    let response = http::send(&http::Request {
        method: config.method.clone().unwrap_or_else(|| "GET".into()),
        url: config.url.clone(),
        headers: config.headers.clone(),
        body: config.body.clone().map(String::into_bytes),
        timeout_ms: config.timeout_ms,
        insecure_skip_verify: config.insecure,
    })?;
    let cert = response.peer_certificate.map(|c| {
        serde_json::json!({
            "subject": c.subject, "issuer": c.issuer, "not_before": c.not_before,
            "not_after": c.not_after, "dns_names": c.dns_names,
        })
    });
    let seen = serde_json::json!({
        "status": response.status,
        "headers": response.headers,
        "body": String::from_utf8_lossy(&response.body[..response.body.len().min(200)]),
        "body_len": response.body.len(),
        "truncated": response.body_truncated,
        "certificate": cert,
    });
    Ok(vec![SAW.cluster_finding(seen.to_string()).into()])
}

fn resolve(config: &Config) -> Result<Vec<Finding>, ProbeError> {
    let rtype = match config.rtype.as_str() {
        "aaaa" => dns::RecordType::Aaaa,
        "srv" => dns::RecordType::Srv,
        "cname" => dns::RecordType::Cname,
        _ => dns::RecordType::A,
    };
    let records = dns::resolve(&config.name, rtype, config.nameserver.as_deref())?;
    Ok(records
        .into_iter()
        .map(|r| {
            let data = match r.data {
                dns::RecordData::A(a) => format!("A {a}"),
                dns::RecordData::Aaaa(a) => format!("AAAA {a}"),
                dns::RecordData::Cname(c) => format!("CNAME {c}"),
                dns::RecordData::Srv(s) => {
                    format!("SRV {} {} {} {}", s.priority, s.weight, s.port, s.target)
                }
            };
            SAW.cluster_finding(data).into()
        })
        .collect())
}

struct Hostile;

fn recurse(n: u64) -> u64 {
    // Small frames: the engine's wasm stack runs out before the shadow stack.
    if std::hint::black_box(n) == u64::MAX {
        0
    } else {
        std::hint::black_box(recurse(n + 1)).wrapping_add(1)
    }
}

fn describe_error(call: &str, e: &ProbeError) -> Finding {
    SAW.cluster_finding(format!("{call}: {e:?}")).into()
}

impl Probe for Hostile {
    type Config = Config;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe("hostile", "0.1.0", "Misbehaves on purpose")
            .rules(&[SAW])
            .kube("", "Pod", &[KubeVerb::List])
            .build()
    }

    fn run(config: Config) -> Result<Vec<Finding>, ProbeError> {
        match config.mode.as_str() {
            "ok" => Ok(vec![SAW.cluster_finding("fine").into()]),
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                // 4 GiB in 64 MiB chunks, each touched.
                let mut chunks: Vec<Vec<u8>> = Vec::new();
                for _ in 0..64 {
                    chunks.push(vec![1u8; 64 << 20]);
                }
                Ok(vec![
                    SAW.cluster_finding(format!("{}", chunks.len())).into(),
                ])
            }
            "recurse" => Ok(vec![SAW.cluster_finding(format!("{}", recurse(1))).into()]),
            "findings" => {
                // About 100 MB of findings.
                let text = "x".repeat(1000);
                Ok((0..100_000)
                    .map(|i| SAW.cluster_finding(format!("{i} {text}")).into())
                    .collect())
            }
            "logs" => loop {
                log::info("flooding the log");
            },
            "stdout" => loop {
                println!("flooding stdout");
            },
            "panic" => panic!("hostile probe gave up: {}", 42),
            "forbidden" => {
                let mut seen = Vec::new();
                match raw_kube::get("v1", "Secret", Some("shop"), "db-credentials") {
                    Ok(_) => seen.push(SAW.cluster_finding("kube get secret: allowed").into()),
                    Err(e) => seen.push(describe_error("kube get secret", &e)),
                }
                match raw_kube::delete("v1", "Pod", Some("shop"), "web") {
                    Ok(_) => seen.push(SAW.cluster_finding("kube delete pod: allowed").into()),
                    Err(e) => seen.push(describe_error("kube delete pod", &e)),
                }
                if let Err(e) = dns::resolve("example.com", dns::RecordType::A, None) {
                    seen.push(describe_error("dns", &e));
                }
                let req = http::Request {
                    method: "GET".into(),
                    url: "http://169.254.169.254/latest/meta-data".into(),
                    headers: vec![],
                    body: None,
                    timeout_ms: Some(100),
                    insecure_skip_verify: false,
                };
                if let Err(e) = http::send(&req) {
                    seen.push(describe_error("http", &e));
                }
                if let Err(e) = etcd::get(b"/registry/secrets/shop/db-credentials") {
                    seen.push(describe_error("etcd", &e));
                }
                Ok(seen)
            }
            "resolve" => resolve(&config),
            "http" => fetch(&config),
            "etcd" => Ok(etcd_ops(&config.ops)),
            "list-pods" => {
                let pods = sonde_sdk::kube::list_values("v1", "Pod", &Default::default())?;
                Ok(pods
                    .iter()
                    .map(|p| {
                        let ns = p["metadata"]["namespace"].as_str().unwrap_or_default();
                        let name = p["metadata"]["name"].as_str().unwrap_or_default();
                        SAW.cluster_finding(format!("{ns}/{name}")).into()
                    })
                    .collect())
            }
            "create" | "create-then-panic" => {
                let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"sonde-check","namespace":"shop"},"data":{"k":"v"}}"#;
                let created = raw_kube::create(cm)?;
                if config.mode == "create-then-panic" {
                    panic!("gave up after creating {}", created.len());
                }
                Ok(vec![SAW.cluster_finding(created).into()])
            }
            "xss" => Ok(vec![
                SAW.cluster_finding("<script>alert(1)</script>").into(),
                SAW.cluster_finding("<img src=x onerror=alert(2)>\u{1b}[31mred\r\nnext")
                    .into(),
            ]),
            other => Err(ProbeError::InvalidInput(format!("unknown mode {other:?}"))),
        }
    }
}

sonde_sdk::export_probe!(Hostile);
