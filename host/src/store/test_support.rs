//! Helpers for the store's tests: a store on a real file in a temporary
//! folder, a clock the test moves, and findings and outcomes to record.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

use super::{FindingFilter, FindingPage, FindingStatus, OpenOptions, Store};
use crate::bindings::{Finding, ResourceRef, Severity};
use crate::runtime::{RunOutcome, RunStatus};

/// A clock that stands still until the test moves it.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

/// 2026-01-10T00:00:00Z, where test clocks start.
pub const T0_MS: i64 = 1_768_003_200_000;

impl TestClock {
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).expect("valid time")
    }
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

/// Opens a store at `dir/sonde.db` with a test clock at [`T0_MS`].
pub async fn open(dir: &Path) -> (Store, TestClock) {
    let clock = TestClock(Arc::new(AtomicI64::new(T0_MS)));
    let c = clock.clone();
    let store = Store::open_with(
        dir.join("sonde.db"),
        OpenOptions {
            clock: Some(Arc::new(move || c.now())),
            ..OpenOptions::default()
        },
    )
    .await
    .expect("open store");
    (store, clock)
}

/// A finding of `rule` on Pod `ns/name`, with a `container` label when given.
pub fn finding(
    rule: &str,
    severity: Severity,
    ns: &str,
    name: &str,
    container: Option<&str>,
) -> Finding {
    Finding {
        rule: rule.to_string(),
        severity,
        resource: Some(ResourceRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(ns.to_string()),
            name: name.to_string(),
            uid: None,
        }),
        message: format!("{rule} on {ns}/{name}"),
        remedy: Some("fix it".into()),
        labels: container
            .map(|c| vec![("container".to_string(), c.to_string())])
            .unwrap_or_default(),
    }
}

/// A successful outcome of `probe` with `findings`.
pub fn succeeded(probe: &str, run_id: &str, findings: Vec<Finding>) -> RunOutcome {
    RunOutcome {
        probe: probe.to_string(),
        run_id: run_id.to_string(),
        status: RunStatus::Succeeded,
        reason: None,
        findings,
        logs: Vec::new(),
        denials: Vec::new(),
        duration: Duration::from_millis(25),
    }
}

/// A failed outcome of `probe`.
pub fn failed(probe: &str, run_id: &str) -> RunOutcome {
    RunOutcome::host_failure(probe.to_string(), run_id.to_string(), "boom".to_string())
}

/// The first `limit` findings, open or resolved, in page order.
pub async fn every_finding(store: &Store, limit: u32) -> FindingPage {
    store
        .findings(
            &FindingFilter {
                status: FindingStatus::All,
                ..Default::default()
            },
            limit,
            None,
        )
        .await
        .unwrap()
}
