//! The `sonde` binary as a user runs it: reports, exit codes, and errors
//! that name the file and the problem.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::shared_fixture;

/// The `sonde` binary built beside this test binary.
pub(crate) fn sonde() -> Command {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("sonde");
    // `cargo test` does not build another package's binary: scripts/test.sh builds it first.
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p sonde`",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    let cache = PathBuf::from(sonde_probes::TEST_TRIVIAL_PATH)
        .ancestors()
        .nth(3)
        .unwrap()
        .join("test-component-cache");
    cmd.env("SONDE_CACHE_DIR", cache).env_remove("SONDE_LOG");
    cmd
}

pub(crate) fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dump() -> String {
    shared_fixture("snapshot-dump.yaml").display().to_string()
}

#[test]
fn audit_table_groups_messages_per_resource() {
    let out = sonde()
        .args(["audit", "--snapshot", &dump()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let header = stdout.lines().next().unwrap();
    for col in ["NAMESPACE", "NAME", "KIND", "MESSAGE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = stdout.lines().find(|l| l.contains("node-agent")).unwrap();
    assert!(
        row.contains("kube-system")
            && row.contains("DaemonSet")
            && row.contains("PrivilegedAllowed"),
        "{row}"
    );
    assert!(
        stdout.contains("89 findings (3 critical, 14 high, 32 medium, 34 low, 6 info)"),
        "{stdout}"
    );
}

#[test]
fn fail_on_sets_exit_code_three() {
    let high = sonde()
        .args([
            "audit",
            "--snapshot",
            &dump(),
            "--fail-on",
            "high",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(high.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&high.stdout).unwrap();
    assert_eq!(doc["summary"]["total"], 89);
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["findings"].as_array().unwrap().len(), 89);
    let yaml = sonde()
        .args(["audit", "--snapshot", &dump(), "-o", "yaml"])
        .output()
        .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
    assert_eq!(doc["summary"]["critical"].as_u64(), Some(3));
    let bad = sonde()
        .args(["audit", "--snapshot", &dump(), "--fail-on", "severe"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("unknown severity \"severe\""));
}

#[test]
fn a_bad_file_is_named_and_the_rest_still_audited() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostPID: true\n  containers: [{name: c, image: 'x:1'}]\n").unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    let out = sonde()
        .args(["audit", "--snapshot"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(4), "incomplete");
    assert!(stdout.contains("HostPIDAllowed"), "{stdout}");
    let problem = stdout
        .lines()
        .find(|l| l.starts_with("input problem:"))
        .unwrap();
    assert!(problem.contains("bad.yaml:4: invalid YAML"), "{problem}");
}

#[test]
fn errors_name_what_is_wrong() {
    let none = sonde()
        .args(["audit"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none)
            .1
            .contains("no cluster to audit: pass --snapshot PATH"),
        "{}",
        text(&none).1
    );

    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = sonde().arg("run").arg(&core).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out).1;
    assert!(
        stderr.contains(&format!(
            "{}: this is a core WebAssembly module",
            core.display()
        )),
        "{stderr}"
    );

    let missing = sonde()
        .args(["audit", "--snapshot", "/no/such/dir"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing)
            .1
            .contains("cannot read snapshot /no/such/dir"),
        "{}",
        text(&missing).1
    );

    let unknown = sonde()
        .args(["audit", "--snapshot", &dump(), "--probe", "nope"])
        .output()
        .unwrap();
    assert!(text(&unknown).1.contains(
        "unknown probe \"nope\": not a built-in probe (workload-audit, rbac-audit, node-audit, event-audit, pod-audit, control-plane-audit, active-checks, kernel-audit, node-signals, audit-activity, rego, schema-checks)"
    ));

    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(&bad_yaml, "apiserver: [unclosed\n").unwrap();
    for (spec, expected) in [
        (
            "nope=x.yaml".to_string(),
            "\"nope\" is not a built-in probe",
        ),
        ("control-plane-audit".to_string(), "expected NAME=FILE"),
        (
            "control-plane-audit=/no/such.yaml".to_string(),
            "--probe-config control-plane-audit: cannot read /no/such.yaml",
        ),
        (
            format!("control-plane-audit={}", bad_yaml.display()),
            "is not JSON or YAML",
        ),
        (
            format!("pod-audit={}", bad_yaml.display()),
            "is not JSON or YAML",
        ),
    ] {
        let out = sonde()
            .args(["audit", "--snapshot", &dump(), "--probe-config", &spec])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{spec}");
        assert!(text(&out).1.contains(expected), "{spec}: {}", text(&out).1);
    }
    let ok = dir.path().join("cp.yaml");
    std::fs::write(&ok, "cert_expiry_days: 60\n").unwrap();
    let out = sonde()
        .args(["audit", "--snapshot", &dump(), "--probe", "pod-audit"])
        .args([
            "--probe-config",
            &format!("control-plane-audit={}", ok.display()),
        ])
        .output()
        .unwrap();
    assert!(
        text(&out)
            .1
            .contains("--probe-config control-plane-audit: no such probe in this audit"),
        "{}",
        text(&out).1
    );
}

#[test]
fn run_reports_a_failed_probe_with_exit_four() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "mode: loop\n").unwrap();
    let out = sonde()
        .args([
            "run",
            sonde_probes::TEST_HOSTILE_PATH,
            "--grant-requested",
            "--timeout-ms",
            "300",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stdout.contains("probe hostile FAILED: timed out after 300 ms"),
        "{stdout}"
    );
}

#[test]
fn probe_output_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, r#"{"mode": "xss"}"#).unwrap();
    let out = sonde()
        .args([
            "run",
            sonde_probes::TEST_HOSTILE_PATH,
            "--grant-requested",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = text(&out).0;
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r'),
        "raw control characters reached the terminal"
    );
    assert!(
        stdout.contains("<img src=x onerror=alert(2)>\\u{1b}[31mred\\r\\nnext"),
        "{stdout}"
    );
}

#[test]
fn inspect_prints_rules_and_world() {
    let out = sonde()
        .args(["probe", "inspect", "workload-audit"])
        .output()
        .unwrap();
    let stdout = text(&out).0;
    assert!(
        stdout.contains("targets sonde:probe/probe@0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("HighRiskCapabilities") && stdout.contains("apps/Deployment list"),
        "{stdout}"
    );
    let json = sonde()
        .args([
            "probe",
            "inspect",
            "--json",
            sonde_probes::TEST_TRIVIAL_PATH,
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["info"]["name"], "trivial");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_a_live_cluster_through_a_kubeconfig() {
    use sonde_fake_apiserver::{ADMIN_TOKEN, FakeApiServer};
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig(dir.path(), ADMIN_TOKEN);
    let kc = kubeconfig.clone();
    // The control-plane audit calls the API server at the fake's address (not the
    // recorded Service's cluster IP, which is no machine's here); the grant it asks
    // for (ports 443 and 6443) does not reach the fake's port, so the call is denied.
    let cp = dir.path().join("cp.yaml");
    std::fs::write(&cp, format!("apiserver: {}\n", server.url())).unwrap();
    let cp_spec = format!("control-plane-audit={}", cp.display());
    let out = tokio::task::spawn_blocking(move || {
        sonde()
            .args(["audit", "-o", "json", "--kubeconfig"])
            .arg(kc)
            .args(["--probe-config", &cp_spec])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["summary"]["total"], 92,
        "89 as from the snapshot, and what needs the API server: kubelet skew and the two unhealthy ComponentStatuses"
    );
    let cp_run = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["probe"] == "control-plane-audit")
        .unwrap();
    let port = server.url().rsplit(':').next().unwrap().to_string();
    assert!(
        cp_run
            .to_string()
            .contains(&format!("http access not granted: GET 127.0.0.1:{port}")),
        "{cp_run}"
    );
    assert_eq!(
        doc["source"],
        format!("cluster {} (context fake)", server.url())
    );

    let mut server = server;
    server.stop();
    let kc = kubeconfig.clone();
    let out = tokio::task::spawn_blocking(move || {
        sonde()
            .args(["audit", "--kubeconfig"])
            .arg(kc)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the API server {} (context fake)",
            server.url()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfig_from_several_files_with_an_exec_plugin() {
    use sonde_fake_apiserver::FakeApiServer;
    let server = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The exec plugin prints an ExecCredential holding the admin token.
    let plugin = dir.path().join("credential.sh");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"admin-token\"}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // As kubectl merges KUBECONFIG=a:b: clusters and users in one file, contexts in the other.
    let a = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: exec-user\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        server.url(),
        plugin.display()
    );
    let b = "apiVersion: v1\nkind: Config\ncurrent-context: other\ncontexts:\n- name: other\n  context: {cluster: nowhere, user: nobody}\n- name: via-exec\n  context: {cluster: fake, user: exec-user}\n";
    std::fs::write(dir.path().join("a.yaml"), a).unwrap();
    std::fs::write(dir.path().join("b.yaml"), b).unwrap();
    let kubeconfig = format!(
        "{}:{}",
        dir.path().join("a.yaml").display(),
        dir.path().join("b.yaml").display()
    );
    // The control-plane audit aims at the fake (see audit_a_live_cluster_through_a_kubeconfig).
    let cp = dir.path().join("cp.yaml");
    std::fs::write(&cp, format!("apiserver: {}\n", server.url())).unwrap();
    let cp_spec = format!("control-plane-audit={}", cp.display());
    let out = tokio::task::spawn_blocking(move || {
        sonde()
            .args(["audit", "-o", "json", "--context", "via-exec"])
            .args(["--probe-config", &cp_spec])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["summary"]["total"], 92,
        "89 as from the snapshot, and what needs the API server: kubelet skew and the two unhealthy ComponentStatuses"
    );
    assert!(!server.requests().is_empty());
    assert!(
        server.requests().iter().all(|r| r.user == "realkube-admin"),
        "the exec plugin's token was used"
    );
}

#[test]
fn rules_lists_every_rule_of_the_built_in_probes() {
    let out = sonde().args(["rules", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows.len(),
        101,
        "20 workload rules, 5 RBAC rules, 11 node rules, 6 event rules, 14 pod rules, \
         5 control-plane rules, 9 active-check rules, 17 kernel rules, 6 node-signals rules, \
         6 audit-activity rules, 1 rego rule, 1 schema-checks rule"
    );
    let high_risk = rows
        .iter()
        .find(|r| r["id"] == "HighRiskCapabilities")
        .unwrap();
    assert_eq!(
        (high_risk["probe"].as_str(), high_risk["severity"].as_str()),
        (Some("workload-audit"), Some("high"))
    );
    assert!(
        rows.iter()
            .all(|r| !r["remedy"].as_str().unwrap().is_empty()
                && !r["description"].as_str().unwrap().is_empty())
    );
    let table = sonde().arg("rules").output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines().next().unwrap().contains("RULE") && text.contains("ClusterAdminBinding"),
        "{text}"
    );
}

#[test]
fn csv_export_parses_and_neutralises_formulas() {
    let out = sonde()
        .args(["audit", "--snapshot", &dump(), "-o", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header[..3], ["probe", "rule", "severity"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 89);
    assert!(rows.iter().any(|r| &r[1] == "ClusterAdminBinding"
        && &r[4] == "ClusterRoleBinding"
        && &r[5] == "ci-admin"));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json");
    std::fs::write(&cfg, r#"{"mode": "xss"}"#).unwrap();
    let out = sonde()
        .args([
            "run",
            sonde_probes::TEST_HOSTILE_PATH,
            "--grant-requested",
            "-o",
            "csv",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let messages: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[7].to_string())
        .collect();
    assert_eq!(
        messages[0], "<script>alert(1)</script>",
        "CSV keeps the text; it is the viewer's to escape"
    );
    assert!(messages[1].starts_with("<img src=x onerror=alert(2)>"));
}
