//! The Helm chart in `deploy/helm/sonde`, rendered as `helm template` renders
//! it (tests/helm/render.go: Go's text/template with Sprig and Helm's own
//! functions, Debian shipping no Helm) and checked as the plain manifests
//! are: Sonde's own audit finds nothing beyond the agent's documented needs,
//! the daemon's config is one `sonde serve --check` takes, the agent's
//! settings are valid and point at the chart's Service; it renders the same
//! objects as `deploy/kubernetes/`; and values change what they say.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::deploy::{audit_with_exemptions, check_config};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The renderer, built once per test process.
fn renderer() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm-render");
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(repo().join("tests/helm/render.go"))
            // Debian's Go packages (golang-github-masterminds-sprig-dev,
            // golang-gopkg-yaml.v3-dev), no module download.
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env(
                "GOCACHE",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gocache"),
            )
            .output()
            .expect("go is missing: run scripts/setup.sh --for-tests (Debian's golang-go)");
        assert!(
            built.status.success(),
            "building tests/helm/render.go: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        out
    })
}

/// The chart rendered for `release` in `namespace` with `values` laid over
/// its own, as YAML documents (comments and empty documents dropped).
fn render(release: &str, namespace: &str, values: &str) -> Vec<serde_yaml::Value> {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("values.yaml");
    std::fs::write(&extra, values).unwrap();
    let out = Command::new(renderer())
        .arg(repo().join("deploy/helm/sonde"))
        .args([release, namespace])
        .arg(&extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn plain(file: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect()
}

fn config_entry(doc: &serde_yaml::Value, key: &str) -> serde_yaml::Value {
    serde_yaml::from_str(doc["data"][key].as_str().unwrap()).unwrap()
}

/// A container with the fields a chart may set otherwise taken out.
fn container(doc: &serde_yaml::Value) -> serde_yaml::Value {
    let mut c = doc["spec"]["template"]["spec"]["containers"][0].clone();
    let m = c.as_mapping_mut().unwrap();
    m.remove("imagePullPolicy");
    m.remove("args");
    c
}

#[test]
fn the_chart_passes_sondes_audit_and_renders_the_plain_manifests_objects() {
    let docs = render("sonde", "sonde", "{}");
    // Sonde's own audit over what the chart renders: nothing but what the
    // plain manifests' exemptions allow the agent.
    let dir = tempfile::tempdir().unwrap();
    let rendered = dir.path().join("chart.yaml");
    let mut stream = String::new();
    for d in &docs {
        stream.push_str("---\n");
        stream.push_str(&serde_yaml::to_string(d).unwrap());
    }
    std::fs::write(&rendered, stream).unwrap();
    let report = audit_with_exemptions(&rendered);
    assert!(!report["exempted"].as_array().unwrap().is_empty());

    // The same objects as deploy/kubernetes/, in the release's namespace.
    let daemon = plain("daemon.yaml");
    let agent = plain("agent-daemonset.yaml");
    for (kind, name, from) in [
        ("ClusterRole", "sonde-reader", &daemon),
        ("ClusterRole", "sonde-agent", &agent),
    ] {
        assert_eq!(
            find(&docs, kind, name)["rules"],
            find(from, kind, name)["rules"],
            "{name}"
        );
    }
    assert_eq!(
        config_entry(find(&docs, "ConfigMap", "sonde"), "sonde.yaml"),
        config_entry(find(&daemon, "ConfigMap", "sonde"), "sonde.yaml"),
    );
    assert_eq!(
        config_entry(find(&docs, "ConfigMap", "sonde-agent"), "agent.yaml"),
        config_entry(find(&agent, "ConfigMap", "sonde-agent"), "agent.yaml"),
    );
    assert_eq!(
        container(find(&docs, "Deployment", "sonde")),
        container(find(&daemon, "Deployment", "sonde"))
    );
    let ds = find(&docs, "DaemonSet", "sonde-agent");
    assert_eq!(
        container(ds),
        container(find(&agent, "DaemonSet", "sonde-agent"))
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["volumes"],
        find(&agent, "DaemonSet", "sonde-agent")["spec"]["template"]["spec"]["volumes"]
    );
    let args = &ds["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(
        args,
        &find(&agent, "DaemonSet", "sonde-agent")["spec"]["template"]["spec"]["containers"][0]["args"]
    );
    // Every namespaced object in the release's namespace.
    for d in &docs {
        let kind = d["kind"].as_str().unwrap();
        if !kind.starts_with("Cluster") {
            assert_eq!(d["metadata"]["namespace"], "sonde", "{kind}");
        }
    }
    let (ok, stdout, stderr) = check_config(
        find(&docs, "ConfigMap", "sonde")["data"]["sonde.yaml"]
            .as_str()
            .unwrap(),
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("config ok: 8 probes"), "{stdout}");
}

#[test]
fn values_name_the_release_set_the_config_and_leave_the_agent_out() {
    let docs = render(
        "prod",
        "inspect",
        "image: {tag: \"0.2.0\"}\n\
         tokens: {secretName: prod-tokens}\n\
         storage: {size: 50Gi, storageClassName: fast}\n\
         config:\n  external_url: https://sonde.example.com\n  \
         alerts:\n    - {name: crashes, url: \"https://hooks.example.com/x\", format: slack, findings: false, events: {reasons: [BackOff]}}\n\
         agent: {collectors: [oom, kernel-log], http: {ports: []}}\n",
    );
    let deployment = find(&docs, "Deployment", "prod-sonde");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "ghcr.io/sonde-dev/sonde:0.2.0"
    );
    assert_eq!(pod["serviceAccountName"], "prod-sonde");
    let secrets: Vec<&str> = pod["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
        .collect();
    assert_eq!(secrets, ["prod-tokens"; 4]);
    let pvc = find(&docs, "PersistentVolumeClaim", "prod-sonde-store");
    assert_eq!(pvc["spec"]["storageClassName"], "fast");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "50Gi");
    let service = find(&docs, "Service", "prod-sonde");
    assert_eq!(service["metadata"]["namespace"], "inspect");
    let binding = find(&docs, "ClusterRoleBinding", "prod-sonde-reader");
    assert_eq!(binding["subjects"][0]["namespace"], "inspect");

    let config = find(&docs, "ConfigMap", "prod-sonde")["data"]["sonde.yaml"]
        .as_str()
        .unwrap();
    let (ok, stdout, stderr) = check_config(config);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("config ok: 8 probes"), "{stdout}");
    let parsed: serde_yaml::Value = serde_yaml::from_str(config).unwrap();
    assert_eq!(parsed["alerts"][0]["events"]["reasons"][0], "BackOff");
    assert_eq!(parsed["external_url"], "https://sonde.example.com");

    let ds = find(&docs, "DaemonSet", "prod-sonde-agent");
    let args: Vec<&str> = ds["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let url = args[args.iter().position(|a| *a == "--daemon").unwrap() + 1];
    assert_eq!(url, "http://prod-sonde.inspect.svc:8080");
    sonde::agent::DaemonSink::new(url, None).unwrap();
    let agent: sonde::agent::AgentConfig = serde_yaml::from_value(config_entry(
        find(&docs, "ConfigMap", "prod-sonde-agent"),
        "agent.yaml",
    ))
    .unwrap();
    assert_eq!(agent.problems(""), Vec::<String>::new());
    assert_eq!(agent.collectors, ["oom", "kernel-log"]);
    assert!(agent.http.ports.is_empty());

    // Off by default: no Ingress, no ServiceMonitor.
    assert!(
        docs.iter()
            .all(|d| d["kind"] != "Ingress" && d["kind"] != "ServiceMonitor")
    );

    // No agent: no DaemonSet, nor its account.
    let docs = render("sonde", "sonde", "agent: {enabled: false}\n");
    assert!(docs.iter().all(|d| d["kind"] != "DaemonSet"));
    assert!(
        docs.iter().all(|d| d["metadata"]["name"] != "sonde-agent"),
        "{docs:?}"
    );
    assert!(docs.iter().any(|d| d["kind"] == "Deployment"));
}

#[test]
fn an_ingress_and_a_service_monitor_when_asked_for() {
    let docs = render(
        "sonde",
        "sonde",
        "ingress: {enabled: true, className: nginx, host: sonde.example.com, tlsSecretName: sonde-tls}\n\
         serviceMonitor: {enabled: true, labels: {release: prometheus}}\n",
    );
    let ingress = find(&docs, "Ingress", "sonde");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "sonde-tls");
    assert_eq!(ingress["spec"]["tls"][0]["hosts"][0], "sonde.example.com");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "sonde.example.com");
    let backend = &rule["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "sonde");
    assert_eq!(backend["port"]["name"], "http");
    // The Service it points at has that port.
    let service = find(&docs, "Service", "sonde");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");

    let monitor = find(&docs, "ServiceMonitor", "sonde");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    // It selects the Service by the Service's own labels.
    let labels = service["metadata"]["labels"].as_mapping().unwrap();
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(labels.get(k), Some(v), "{k:?}");
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["port"], "http");
    // /metrics takes a viewer token.
    assert_eq!(
        endpoint["authorization"]["credentials"]["name"],
        "sonde-tokens"
    );
    assert_eq!(endpoint["authorization"]["credentials"]["key"], "viewer");
}

#[test]
fn with_a_tls_secret_the_daemon_serves_https_and_the_agents_trust_its_ca() {
    let docs = render("sonde", "sonde", "tls: {secretName: sonde-tls}\n");
    let config = find(&docs, "ConfigMap", "sonde")["data"]["sonde.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let parsed: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
    assert_eq!(parsed["tls"]["cert_file"], "/etc/sonde-tls/tls.crt");
    assert_eq!(parsed["tls"]["key_file"], "/etc/sonde-tls/tls.key");
    let pod = &find(&docs, "Deployment", "sonde")["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"],
        "HTTPS"
    );
    assert_eq!(
        pod["containers"][0]["livenessProbe"]["httpGet"]["scheme"],
        "HTTPS"
    );
    let tls = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(tls["secret"]["secretName"], "sonde-tls");
    let ds = &find(&docs, "DaemonSet", "sonde-agent")["spec"]["template"]["spec"];
    let args: Vec<&str> = ds["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(at("--daemon"), "https://sonde.sonde.svc:8080");
    assert_eq!(at("--daemon-ca"), "/etc/sonde-tls/ca.crt");
    // The agents get the CA, not the daemon's key.
    let agent_tls = ds["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(agent_tls["secret"]["items"][0]["key"], "ca.crt");
    assert_eq!(agent_tls["secret"]["items"].as_sequence().unwrap().len(), 1);
    // The daemon's config is one it takes once the Secret's files are there.
    let pki = crate::pki::pki();
    let local = config
        .replace("/etc/sonde-tls/tls.crt", pki.server_cert.to_str().unwrap())
        .replace("/etc/sonde-tls/tls.key", pki.server_key.to_str().unwrap());
    let (ok, _, stderr) = check_config(&local);
    assert!(ok, "{stderr}");
}
