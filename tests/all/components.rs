//! Bad components are refused before they run, with an error that names
//! the file and what is wrong.

use sonde::runtime::LoadError;
use sonde_probes::{TEST_FUTURE_VERSION_PATH, TEST_OTHER_WORLD_PATH, TEST_TRIVIAL_PATH};

use crate::runtime;

fn load_err(name: &str, bytes: &[u8]) -> (String, LoadError) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = match runtime().load_file(&path) {
        Ok(_) => panic!("{name} should be refused"),
        Err(e) => e,
    };
    (path.display().to_string(), err)
}

#[test]
fn random_bytes_are_not_a_component() {
    let (path, err) = load_err("random.wasm", b"\x7fELF this is not wasm at all");
    assert!(matches!(err, LoadError::NotWasm { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("{path}: not a WebAssembly component")),
        "{err}"
    );
}

#[test]
fn a_core_module_is_told_apart_from_a_component() {
    // The smallest valid core module: magic and version 1.
    let (path, err) = load_err("core.wasm", b"\0asm\x01\0\0\0");
    assert!(matches!(err, LoadError::CoreModule { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with(&path) && text.contains("core WebAssembly module, not a component"),
        "{text}"
    );
    assert!(text.contains("wasm32-wasip2"), "says what to do: {text}");
}

#[test]
fn a_truncated_component_is_invalid() {
    let bytes = std::fs::read(TEST_TRIVIAL_PATH).unwrap();
    let (path, err) = load_err("truncated.wasm", &bytes[..bytes.len() / 2]);
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{path}: invalid component")),
        "{err}"
    );
}

#[test]
fn a_component_for_another_world_is_refused() {
    let err = match runtime().load_file(TEST_OTHER_WORLD_PATH.as_ref()) {
        Ok(_) => panic!("another world's component must be refused"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{text}");
    assert!(
        text.contains("acme:greeter/names@1.0.0"),
        "names the foreign import: {text}"
    );
    assert!(text.starts_with(TEST_OTHER_WORLD_PATH), "{text}");
}

#[test]
fn a_component_for_an_incompatible_version_is_refused() {
    let err = match runtime().load_file(TEST_FUTURE_VERSION_PATH.as_ref()) {
        Ok(_) => panic!("a sonde:probe@0.2.0 component must be refused"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{text}");
    assert!(
        text.contains("targets sonde:probe@0.2.0, but this host implements sonde:probe@0.1.0"),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = runtime()
        .load_file("/nonexistent/probe.wasm".as_ref())
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/probe.wasm: cannot read"),
        "{err}"
    );
}

#[tokio::test]
async fn describe_reports_the_probe_and_its_world() {
    let probe = crate::load(TEST_TRIVIAL_PATH);
    let info = runtime()
        .describe(&probe, &Default::default())
        .await
        .unwrap();
    assert_eq!(info.name, "trivial");
    assert_eq!(info.rules.len(), 1);
    assert!(probe.world.exports.contains(&"run: func".to_string()));
    assert!(
        probe
            .world
            .imports
            .iter()
            .any(|i| i.starts_with("sonde:probe/"))
    );
}
