//! Trends: per day (UTC) and severity, how many findings were open at the
//! end of the day, how many appeared and how many were fixed that day.
//! Computed from the finding rows' first-seen and resolved times; a finding
//! that was fixed and came back counts as open from its first sighting.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use sqlx::{FromRow, QueryBuilder};

use super::finding_queries::severity_of;
use super::{QueryContext, Store, StoreError, dialect};
use crate::bindings::Severity;

/// The longest range [`Store::trends`] answers, in days.
pub const MAX_DAYS: i64 = 400;
const DAY_MS: i64 = 86_400_000;

/// Which days and findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendQuery {
    /// First and last day, inclusive (UTC).
    pub from: Date,
    pub to: Date,
    pub probe: Option<String>,
    pub namespace: Option<String>,
}

/// One day and severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    pub day: Date,
    pub severity: Severity,
    /// Open at the end of the day.
    pub open: i64,
    /// First seen that day.
    pub new: i64,
    /// Resolved that day.
    pub fixed: i64,
}

#[derive(FromRow)]
struct TrendRow {
    day: i64,
    severity: i64,
    open: i64,
    new: i64,
    fixed: i64,
}

impl Store {
    /// Counts per day per severity; days and severities with no finding are
    /// left out.
    pub async fn trends(&self, q: &TrendQuery) -> Result<Vec<TrendPoint>, StoreError> {
        let from = day_number(q.from)?;
        let to = day_number(q.to)?;
        if to < from || to - from >= MAX_DAYS {
            return Err(StoreError::InvalidInput {
                what: "trend range",
                detail: format!(
                    "{} to {} is not a range of 1 to {MAX_DAYS} days",
                    q.from, q.to
                ),
            });
        }
        let mut qb = QueryBuilder::<dialect::Db>::new("WITH RECURSIVE days (d) AS (SELECT ");
        qb.push_bind(from)
            .push(" UNION ALL SELECT d + 1 FROM days WHERE d < ")
            .push_bind(to)
            .push(
                ") SELECT days.d AS day, f.severity AS severity, \
                 SUM(CASE WHEN f.resolved_at IS NULL OR f.resolved_at >= (days.d + 1) * ",
            )
            .push(DAY_MS)
            .push(" THEN 1 ELSE 0 END) AS open, SUM(CASE WHEN f.first_seen >= days.d * ")
            .push(DAY_MS)
            .push(" THEN 1 ELSE 0 END) AS new, SUM(CASE WHEN f.resolved_at < (days.d + 1) * ")
            .push(DAY_MS)
            .push(" THEN 1 ELSE 0 END) AS fixed FROM days JOIN findings f ON f.first_seen < (days.d + 1) * ")
            .push(DAY_MS)
            .push(" AND (f.resolved_at IS NULL OR f.resolved_at >= days.d * ")
            .push(DAY_MS)
            .push(")");
        if let Some(p) = &q.probe {
            qb.push(" AND f.probe = ").push_bind(p.clone());
        }
        if let Some(ns) = &q.namespace {
            qb.push(" AND f.namespace = ").push_bind(ns.clone());
        }
        qb.push(" GROUP BY days.d, f.severity ORDER BY days.d, f.severity");
        let rows = qb
            .build_query_as::<TrendRow>()
            .fetch_all(&self.reader)
            .await
            .ctx("trends")?;
        rows.into_iter()
            .map(|r| {
                Ok(TrendPoint {
                    day: date_of(r.day)?,
                    severity: severity_of(r.severity)?,
                    open: r.open,
                    new: r.new,
                    fixed: r.fixed,
                })
            })
            .collect()
    }
}

/// Days since 1970-01-01 (UTC).
fn day_number(date: Date) -> Result<i64, StoreError> {
    let ts = date
        .to_zoned(TimeZone::UTC)
        .map_err(|e| StoreError::InvalidInput {
            what: "day",
            detail: format!("{date}: {e}"),
        })?;
    Ok(ts.timestamp().as_second().div_euclid(86_400))
}

fn date_of(day: i64) -> Result<Date, StoreError> {
    Timestamp::from_second(day.saturating_mul(86_400))
        .map(|t| t.to_zoned(TimeZone::UTC).date())
        .map_err(|e| StoreError::Corrupt {
            what: "trend day",
            detail: format!("{day}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::civil::date;

    use super::super::test_support::{finding, open, succeeded};
    use super::{TrendPoint, TrendQuery};
    use crate::bindings::Severity;

    #[tokio::test]
    async fn trends_count_open_new_and_fixed_per_day_and_severity() {
        let dir = tempfile::tempdir().unwrap();
        // The test clock starts at 2026-01-10T00:00Z.
        let (store, clock) = open(dir.path()).await;
        let a = finding("R", Severity::High, "shop", "a", None);
        let b = finding("R", Severity::High, "shop", "b", None);
        let c = finding("R", Severity::Low, "kube-system", "c", None);
        clock.advance(Duration::from_secs(3600));
        store
            .record_run_finished(&succeeded("wa", "r1", vec![a.clone(), b.clone()]))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(86_400));
        store
            .record_run_finished(&succeeded("wa", "r2", vec![a.clone(), c.clone()]))
            .await
            .unwrap();

        let q = TrendQuery {
            from: date(2026, 1, 9),
            to: date(2026, 1, 12),
            probe: None,
            namespace: None,
        };
        let points = store.trends(&q).await.unwrap();
        let p = |day, severity, open, new, fixed| TrendPoint {
            day,
            severity,
            open,
            new,
            fixed,
        };
        assert_eq!(
            points,
            [
                p(date(2026, 1, 10), Severity::High, 2, 2, 0),
                p(date(2026, 1, 11), Severity::Low, 1, 1, 0),
                p(date(2026, 1, 11), Severity::High, 1, 0, 1),
                p(date(2026, 1, 12), Severity::Low, 1, 0, 0),
                p(date(2026, 1, 12), Severity::High, 1, 0, 0),
            ]
        );
        let shop = store
            .trends(&TrendQuery {
                namespace: Some("kube-system".into()),
                ..q.clone()
            })
            .await
            .unwrap();
        assert_eq!(shop.len(), 2);
        let backwards = TrendQuery {
            from: date(2026, 1, 12),
            to: date(2026, 1, 9),
            ..q
        };
        assert!(store.trends(&backwards).await.is_err());
    }
}
