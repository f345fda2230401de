//! Writing findings: a finding's identity across runs, and the batched
//! upsert that turns one successful run's findings into rows (new ones
//! inserted, persisting ones touched, missing ones resolved).
//!
//! Identity is probe + rule + resource (apiVersion, kind, namespace, name) +
//! a fingerprint of the identifying labels. Labels that change from run to
//! run without making it another finding (`time`, `count`, ...) are left out
//! of the fingerprint, or every run would report a "new" finding.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::QueryBuilder;

use super::{QueryContext, StoreError, dialect, to_json};
use crate::bindings::Finding;

/// Label keys whose values change between runs of the same finding: when it
/// happened, how often, the last heartbeat. Not part of the fingerprint.
pub const VOLATILE_LABELS: &[&str] = &[
    "time",
    "count",
    "heartbeat",
    "age",
    "timestamp",
    "last-seen",
    "restarts",
];

/// Columns written per finding row by [`upsert`].
const COLUMNS: usize = 18;
/// Rows per statement: as many as fit the parameter limit, capped so one
/// statement's text stays small enough to prepare quickly and cache.
const ROWS_PER_STATEMENT: usize = {
    let fit = dialect::MAX_BIND_PARAMS / COLUMNS;
    if fit < 1000 { fit } else { 1000 }
};

/// The finding's `(identity, fingerprint)`, both hex: what makes two reports
/// of `probe` in different runs the same finding.
pub fn identity_of(probe: &str, finding: &Finding) -> (String, String) {
    let mut labels: Vec<(&str, &str)> = finding
        .labels
        .iter()
        .filter(|(k, _)| !VOLATILE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let mut h = Sha256::new();
    for (k, v) in &labels {
        field(&mut h, k);
        field(&mut h, v);
    }
    let fingerprint = hex::encode(&h.finalize()[..16]);

    let mut h = Sha256::new();
    field(&mut h, probe);
    field(&mut h, &finding.rule);
    let r = finding.resource.as_ref();
    field(&mut h, r.map_or("", |r| r.api_version.as_str()));
    field(&mut h, r.map_or("", |r| r.kind.as_str()));
    field(&mut h, r.and_then(|r| r.namespace.as_deref()).unwrap_or(""));
    field(&mut h, r.map_or("", |r| r.name.as_str()));
    field(&mut h, &fingerprint);
    (hex::encode(&h.finalize()[..16]), fingerprint)
}

/// Length-prefixed, so `("ab", "c")` and `("a", "bc")` hash differently.
fn field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// One finding ready to bind: owned values, moved into the statement.
pub(super) struct Row {
    identity: String,
    fingerprint: String,
    rule: String,
    severity: i64,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: Option<String>,
    message: String,
    remedy: Option<String>,
    labels: String,
}

/// The run's findings as rows, one per identity (a probe that reports the
/// same finding twice in a run gets one row, holding the last report).
pub(super) fn prepare(probe: &str, findings: &[Finding]) -> Result<Vec<Row>, StoreError> {
    let mut rows: Vec<Row> = Vec::with_capacity(findings.len());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(findings.len());
    for f in findings {
        let (identity, fingerprint) = identity_of(probe, f);
        let r = f.resource.as_ref();
        let row = Row {
            identity: identity.clone(),
            fingerprint,
            rule: f.rule.clone(),
            severity: i64::from(f.severity.rank()),
            api_version: r.map(|r| r.api_version.clone()).unwrap_or_default(),
            kind: r.map(|r| r.kind.clone()).unwrap_or_default(),
            namespace: r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
            name: r.map(|r| r.name.clone()).unwrap_or_default(),
            uid: r.and_then(|r| r.uid.clone()),
            message: f.message.clone(),
            remedy: f.remedy.clone(),
            labels: to_json(&f.labels, "a finding's labels")?,
        };
        match seen.get(&identity) {
            Some(&i) => rows[i] = row,
            None => {
                seen.insert(identity, rows.len());
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// Inserts new findings and refreshes persisting ones (a fixed finding that
/// is reported again is reopened), `ROWS_PER_STATEMENT` rows per statement.
pub(super) async fn upsert(
    conn: &mut dialect::Conn,
    probe: &str,
    run_id: &str,
    now: i64,
    rows: Vec<Row>,
) -> Result<(), StoreError> {
    let probe: Arc<str> = Arc::from(probe);
    let run_id: Arc<str> = Arc::from(run_id);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk = rows.by_ref().take(ROWS_PER_STATEMENT);
        let mut qb = QueryBuilder::<dialect::Db>::new(
            "INSERT INTO findings (identity, probe, rule, severity, api_version, kind, namespace, \
             name, uid, fingerprint, message, remedy, labels, first_seen, opened_at, last_seen, \
             first_run, last_run) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.identity)
                .push_bind(probe.clone())
                .push_bind(r.rule)
                .push_bind(r.severity)
                .push_bind(r.api_version)
                .push_bind(r.kind)
                .push_bind(r.namespace)
                .push_bind(r.name)
                .push_bind(r.uid)
                .push_bind(r.fingerprint)
                .push_bind(r.message)
                .push_bind(r.remedy)
                .push_bind(r.labels)
                .push_bind(now)
                .push_bind(now)
                .push_bind(now)
                .push_bind(run_id.clone())
                .push_bind(run_id.clone());
        });
        qb.push(
            " ON CONFLICT (identity) DO UPDATE SET severity = excluded.severity, \
             uid = excluded.uid, message = excluded.message, remedy = excluded.remedy, \
             labels = excluded.labels, last_seen = excluded.last_seen, \
             last_run = excluded.last_run, \
             opened_at = CASE WHEN findings.resolved_at IS NULL THEN findings.opened_at \
             ELSE excluded.opened_at END, \
             resolved_at = NULL",
        );
        qb.build()
            .execute(&mut *conn)
            .await
            .ctx("upsert findings")?;
    }
    Ok(())
}

/// The baseline the batched path is measured against: one statement per
/// finding (same transaction, same upsert). Used by the ingest benchmark.
pub(super) async fn upsert_one_by_one(
    conn: &mut dialect::Conn,
    probe: &str,
    run_id: &str,
    now: i64,
    rows: Vec<Row>,
) -> Result<(), StoreError> {
    for r in rows {
        sqlx::query(
            "INSERT INTO findings (identity, probe, rule, severity, api_version, kind, namespace, \
             name, uid, fingerprint, message, remedy, labels, first_seen, opened_at, last_seen, \
             first_run, last_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $14, $15, $15) \
             ON CONFLICT (identity) DO UPDATE SET severity = excluded.severity, \
             uid = excluded.uid, message = excluded.message, remedy = excluded.remedy, \
             labels = excluded.labels, last_seen = excluded.last_seen, \
             last_run = excluded.last_run, \
             opened_at = CASE WHEN findings.resolved_at IS NULL THEN findings.opened_at \
             ELSE excluded.opened_at END, \
             resolved_at = NULL",
        )
        .bind(r.identity)
        .bind(probe)
        .bind(r.rule)
        .bind(r.severity)
        .bind(r.api_version)
        .bind(r.kind)
        .bind(r.namespace)
        .bind(r.name)
        .bind(r.uid)
        .bind(r.fingerprint)
        .bind(r.message)
        .bind(r.remedy)
        .bind(r.labels)
        .bind(now)
        .bind(run_id)
        .execute(&mut *conn)
        .await
        .ctx("insert finding")?;
    }
    Ok(())
}

/// Resolves the open findings of `probe` that run `run_id` did not report.
pub(super) async fn resolve_missing(
    conn: &mut dialect::Conn,
    probe: &str,
    run_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE findings SET resolved_at = $1 \
         WHERE probe = $2 AND resolved_at IS NULL AND last_run <> $3",
    )
    .bind(now)
    .bind(probe)
    .bind(run_id)
    .execute(&mut *conn)
    .await
    .ctx("resolve findings")?;
    Ok(done.rows_affected())
}

/// How many findings run `run_id` reported for the first time.
pub(super) async fn count_new(conn: &mut dialect::Conn, run_id: &str) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM findings WHERE first_run = $1")
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await
        .ctx("count new findings")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{failed, finding, open, succeeded};
    use super::super::{FindingFilter, FindingStatus};
    use crate::bindings::Severity;

    #[tokio::test]
    async fn a_finding_seen_in_two_runs_is_one_row_with_first_and_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let f = finding("NoLimits", Severity::High, "shop", "web", Some("app"));
        let t1 = clock.now();
        let first = store
            .record_run_finished(&succeeded("wa", "r1", vec![f.clone()]))
            .await
            .unwrap();
        assert_eq!((first.findings, first.new, first.resolved), (1, 1, 0));
        clock.advance(Duration::from_secs(3600));
        let t2 = clock.now();
        let mut again = f.clone();
        again.message = "still no limits".into();
        let second = store
            .record_run_finished(&succeeded("wa", "r2", vec![again]))
            .await
            .unwrap();
        assert_eq!((second.findings, second.new, second.resolved), (1, 0, 0));

        let page = store
            .findings(&FindingFilter::default(), 10, None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        let row = &page.items[0];
        assert_eq!((row.first_seen, row.last_seen, row.opened_at), (t1, t2, t1));
        assert_eq!(
            (row.first_run.as_str(), row.last_run.as_str()),
            ("r1", "r2")
        );
        assert_eq!(
            row.finding.message, "still no limits",
            "the latest report wins"
        );
        assert_eq!(row.resolved_at, None);
    }

    #[tokio::test]
    async fn a_fixed_finding_is_resolved_and_reopened_when_it_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let a = finding("NoLimits", Severity::High, "shop", "web", None);
        let b = finding("NoLimits", Severity::High, "shop", "db", None);
        store
            .record_run_finished(&succeeded("wa", "r1", vec![a.clone(), b.clone()]))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(60));
        let fixed_at = clock.now();
        let r2 = store
            .record_run_finished(&succeeded("wa", "r2", vec![a.clone()]))
            .await
            .unwrap();
        assert_eq!(r2.resolved, 1);
        let fixed = store
            .findings(
                &FindingFilter {
                    status: FindingStatus::Fixed { since: fixed_at },
                    ..Default::default()
                },
                10,
                None,
            )
            .await
            .unwrap();
        assert_eq!(fixed.items.len(), 1);
        assert_eq!(fixed.items[0].finding.resource.as_ref().unwrap().name, "db");
        assert_eq!(fixed.items[0].resolved_at, Some(fixed_at));

        clock.advance(Duration::from_secs(60));
        let back_at = clock.now();
        store
            .record_run_finished(&succeeded("wa", "r3", vec![a, b]))
            .await
            .unwrap();
        let all = store
            .findings(
                &FindingFilter {
                    status: FindingStatus::All,
                    ..Default::default()
                },
                10,
                None,
            )
            .await
            .unwrap();
        assert_eq!(all.items.len(), 2, "still one row each");
        let db = all
            .items
            .iter()
            .find(|f| f.finding.resource.as_ref().unwrap().name == "db")
            .unwrap();
        assert_eq!(db.resolved_at, None);
        assert_eq!(db.opened_at, back_at, "back again counts as new");
        assert!(db.first_seen < back_at);
        let new = store
            .count_findings(&FindingFilter {
                status: FindingStatus::New { since: back_at },
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(new, 1);
    }

    #[tokio::test]
    async fn a_failed_run_leaves_findings_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let a = finding("NoLimits", Severity::High, "shop", "web", None);
        store
            .record_run_finished(&succeeded("wa", "r1", vec![a]))
            .await
            .unwrap();
        let before = store
            .findings(&FindingFilter::default(), 10, None)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(60));
        let ingest = store
            .record_run_finished(&failed("wa", "r2"))
            .await
            .unwrap();
        assert_eq!((ingest.findings, ingest.resolved), (0, 0));
        let after = store
            .findings(&FindingFilter::default(), 10, None)
            .await
            .unwrap();
        assert_eq!(before, after);
        // A later successful run of another probe does not resolve it either.
        store
            .record_run_finished(&succeeded("other", "r3", vec![]))
            .await
            .unwrap();
        assert_eq!(
            store
                .count_findings(&FindingFilter::default())
                .await
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn identity_splits_on_container_but_not_on_volatile_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let app = finding("NoLimits", Severity::High, "shop", "web", Some("app"));
        let sidecar = finding("NoLimits", Severity::High, "shop", "web", Some("sidecar"));
        let mut timed = app.clone();
        timed
            .labels
            .push(("time".into(), "2026-01-10T00:00:00Z".into()));
        let mut timed_later = app.clone();
        timed_later
            .labels
            .push(("time".into(), "2026-01-10T00:05:00Z".into()));
        store
            .record_run_finished(&succeeded("wa", "r1", vec![timed, sidecar.clone()]))
            .await
            .unwrap();
        let ingest = store
            .record_run_finished(&succeeded("wa", "r2", vec![timed_later, sidecar]))
            .await
            .unwrap();
        assert_eq!((ingest.new, ingest.resolved), (0, 0));
        assert_eq!(
            store
                .count_findings(&FindingFilter::default())
                .await
                .unwrap(),
            2
        );
        // The same finding from another probe is another finding.
        assert_ne!(
            super::identity_of("wa", &app).0,
            super::identity_of("other", &app).0
        );
    }

    #[tokio::test]
    async fn duplicates_in_one_run_are_one_row_and_big_runs_span_statements() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let n = super::ROWS_PER_STATEMENT * 2 + 17;
        let mut fs: Vec<_> = (0..n)
            .map(|i| finding("R", Severity::Low, "ns", &format!("pod-{i}"), None))
            .collect();
        fs.push(fs[0].clone());
        let ingest = store
            .record_run_finished(&succeeded("wa", "r1", fs))
            .await
            .unwrap();
        assert_eq!((ingest.findings, ingest.new), (n as u64, n as u64));
        assert_eq!(
            store
                .count_findings(&FindingFilter::default())
                .await
                .unwrap(),
            n as u64
        );
        let run = store.run("r1").await.unwrap().unwrap();
        assert_eq!(run.findings_count, n as i64);
    }
}
