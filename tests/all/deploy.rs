//! The manifests in `deploy/kubernetes/`, checked by Sonde itself: its own
//! audit finds nothing in them beyond what `deploy/exemptions.yaml` allows
//! (each with its reason), the daemon's ConfigMap holds a config that
//! `sonde serve --check` takes, and the agent's holds valid agent settings.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::cli::{sonde, text};

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The documents of a manifest file.
fn documents(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(deploy().join("kubernetes").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect()
}

/// `key` of the ConfigMap in `file`.
fn config_map_entry(file: &str, key: &str) -> String {
    let docs = documents(file);
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap_or_else(|| panic!("{file}: no ConfigMap"));
    cm["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: no {key} in its ConfigMap"))
        .to_string()
}

/// Sonde's audit of the manifests at `path` with `deploy/exemptions.yaml`:
/// it must read them all and find nothing; its JSON report.
pub(crate) fn audit_with_exemptions(path: &std::path::Path) -> Value {
    let out = sonde()
        .args(["audit", "--snapshot"])
        .arg(path)
        .arg("--exemptions")
        .arg(deploy().join("exemptions.yaml"))
        .args(["-o", "json", "--fail-on", "info"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["inputIssues"], serde_json::json!([]));
    assert_eq!(report["findings"], serde_json::json!([]), "{stdout}");
    report
}

#[test]
fn sondes_own_manifests_pass_its_audit_but_for_the_agents_documented_needs() {
    let report = audit_with_exemptions(&deploy().join("kubernetes"));
    assert_eq!(report["complete"], true);
    // What is exempted is the agent's, each with its reason; the daemon
    // needs none.
    let exempted = report["exempted"].as_array().unwrap();
    assert!(!exempted.is_empty());
    for e in exempted {
        let text = e.to_string();
        assert!(text.contains("sonde-agent"), "{text}");
        assert!(!text.contains("\"Deployment\""), "{text}");
    }
    // Without the exemptions, the agent's needs are findings.
    let out = sonde()
        .args(["audit", "--snapshot"])
        .arg(deploy().join("kubernetes"))
        .args(["-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"HostPIDAllowed"), "{rules:?}");
}

/// `sonde serve --check` of a daemon config (as a manifest's ConfigMap
/// holds it), with the four tokens it names in the environment: whether it
/// passed, stdout, stderr.
pub fn check_config(config: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sonde.yaml");
    std::fs::write(&path, config).unwrap();
    let out = sonde()
        .args(["serve", "-c"])
        .arg(&path)
        .arg("--check")
        .env("SONDE_VIEWER_TOKEN", "viewer-0123456789abcdef")
        .env("SONDE_ADMIN_TOKEN", "admin-0123456789abcdef")
        .env("SONDE_AGENT_TOKEN", "agent-0123456789abcdef")
        .env("SONDE_AUDIT_TOKEN", "audit-0123456789abcdef")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

#[test]
fn the_daemons_config_map_is_a_config_it_takes_and_the_agents_settings_are_valid() {
    let (ok, stdout, stderr) = check_config(&config_map_entry("daemon.yaml", "sonde.yaml"));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("config ok: 8 probes"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sonde.yaml");
    std::fs::write(&config, config_map_entry("daemon.yaml", "sonde.yaml")).unwrap();
    // It listens beyond loopback, so it must not start without its tokens.
    let out = sonde()
        .args(["serve", "-c"])
        .arg(&config)
        .arg("--check")
        .env_remove("SONDE_AGENT_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());

    let agent: sonde::agent::AgentConfig =
        serde_yaml::from_str(&config_map_entry("agent-daemonset.yaml", "agent.yaml")).unwrap();
    assert_eq!(agent.problems(""), Vec::<String>::new());
    // The agent sends to the daemon's Service, with the daemon's agent token.
    let docs = documents("agent-daemonset.yaml");
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let url = args[args.iter().position(|a| *a == "--daemon").unwrap() + 1];
    assert_eq!(url, "http://sonde.sonde.svc:8080");
    sonde::agent::DaemonSink::new(url, None).unwrap();
    assert_eq!(
        ds["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirstWithHostNet",
        "on the host's network, the Service name must still resolve"
    );
    let daemon = documents("daemon.yaml");
    let service = daemon.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(
        (
            service["metadata"]["name"].as_str(),
            service["metadata"]["namespace"].as_str()
        ),
        (Some("sonde"), Some("sonde"))
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
}
