//! Sonde's integration tests, one binary (as wasmtime does): the real
//! runtime running real components built by `probes/artifacts`.

mod active_checks;
mod alerts;
mod api;
mod audit_webhook;
mod cli;
mod collectors;
mod components;
mod control_plane_rules;
mod daemon;
mod deploy;
mod dns;
mod etcd;
mod event_history;
mod event_rules;
mod fixture_audit;
mod grants;
mod helm;
mod hostile;
mod http;
mod kernel_rules;
mod live;
mod node_rules;
mod pki;
mod pod_rules;
mod posture;
mod rbac_rules;
mod rego_rules;
mod report_formats;
mod schema_checks;
mod seed_examples;
mod serve;
mod tls;
mod web_ui;
mod workload_rules;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use sonde::caps::HostServices;
use sonde::grants::GrantSet;
use sonde::kube::SnapshotBackend;
use sonde::runtime::{LoadedProbe, ProbeRuntime, RunLimits, RunOutcome, RunRequest, RuntimeConfig};

/// The shared runtime; its component cache lives beside the build output.
pub fn runtime() -> &'static ProbeRuntime {
    static RUNTIME: OnceLock<ProbeRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cache = PathBuf::from(sonde_probes::TEST_TRIVIAL_PATH)
            .ancestors()
            .nth(3)
            .expect("guest target folder")
            .join("test-component-cache");
        ProbeRuntime::new(RuntimeConfig {
            cache_dir: Some(cache),
            ..Default::default()
        })
        .expect("runtime starts")
    })
}

/// A component loaded once per test process.
#[track_caller]
pub fn load(path: &str) -> Arc<LoadedProbe> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<LoadedProbe>>>> = OnceLock::new();
    let mut map = LOADED.get_or_init(Default::default).lock().unwrap();
    map.entry(path.to_string())
        .or_insert_with(|| {
            Arc::new(
                runtime()
                    .load_file(path.as_ref())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .clone()
}

/// Services over objects given as YAML documents.
pub fn snapshot_services(yaml: &str) -> Arc<HostServices> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("objects.yaml"), yaml).unwrap();
    let snap = SnapshotBackend::load(dir.path()).unwrap();
    assert!(snap.issues().is_empty(), "{:?}", snap.issues());
    Arc::new(HostServices {
        kube: Some(Arc::new(snap)),
        ..Default::default()
    })
}

/// Runs a component once with the given config, grant (or exactly what it asks for) and limits.
pub async fn run(
    path: &str,
    config: serde_json::Value,
    grants: Option<GrantSet>,
    limits: RunLimits,
    services: Arc<HostServices>,
) -> RunOutcome {
    let probe = load(path);
    let info = runtime()
        .describe(&probe, &limits)
        .await
        .expect("describe works");
    let grants = grants.unwrap_or_else(|| GrantSet::from_requested(&info.capabilities));
    let req = RunRequest {
        run_id: "test".into(),
        config: config.to_string(),
        grants,
        limits,
        services,
    };
    runtime().run(&probe, &info, req).await
}

/// The path of the fixtures shared by every Sonde repository.
pub fn shared_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/kube-apiserver-1.28")
        .join(name)
}

/// Runs one built-in probe over `backend`, asserting the run completed.
pub async fn audit_builtin(
    name: &'static str,
    backend: Arc<dyn sonde::kube::KubeBackend>,
) -> sonde::audit::AuditReport {
    use sonde::audit::{self, ProbeSource};
    let services = Arc::new(HostServices {
        kube: Some(backend),
        ..Default::default()
    });
    let probe = audit::prepare(
        runtime(),
        &ProbeSource::Builtin(name),
        None,
        "{}".into(),
        Default::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let report = audit::run_audit(runtime(), services, &[probe], "test".into(), vec![]).await;
    assert!(report.complete(), "{:?}", report.runs[0].reason);
    report
}

/// `namespace/Kind/name` of a finding's resource.
pub fn resource_key(f: &sonde::bindings::Finding) -> String {
    let r = f.resource.as_ref().expect("a finding about a resource");
    format!(
        "{}/{}/{}",
        r.namespace.as_deref().unwrap_or(""),
        r.kind,
        r.name
    )
}
