//! Reading findings: the filters the API and the UI offer (resource, rule,
//! severity, probe, new/persisting/fixed since a time, text in the message),
//! counted or paged with a keyset cursor (most severe first, newest first).
//! Each common filter has an index in page order (migration 0003); the text
//! filter asks the trigram index for candidates when they are few.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use serde::Deserialize;
use sqlx::QueryBuilder;

use super::{QueryContext, Store, StoreError, dialect, from_json, timestamp, to_json};
use crate::bindings::{Finding, ResourceRef, Severity};

/// Which findings by their state, relative to a moment where it matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingStatus {
    /// Not resolved.
    #[default]
    Open,
    /// Open, resolved or not.
    All,
    /// Open, and opened at or after `since` (first seen, or back after a fix).
    New { since: Timestamp },
    /// Open since before `since`.
    Persisting { since: Timestamp },
    /// Resolved at or after `since`.
    Fixed { since: Timestamp },
}

/// What to select. Empty fields select everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    pub probe: Option<String>,
    pub rule: Option<String>,
    /// `Some("")` selects cluster-scoped objects and cluster-wide findings.
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    /// Any of these severities; empty means all.
    pub severities: Vec<Severity>,
    pub status: FindingStatus,
    /// Text the message contains (ASCII case ignored).
    pub text: Option<String>,
}

/// One finding as stored, with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFinding {
    pub id: i64,
    pub probe: String,
    /// The latest report of it.
    pub finding: Finding,
    pub first_seen: Timestamp,
    /// When it last became open: `first_seen`, or when it came back after a fix.
    pub opened_at: Timestamp,
    pub last_seen: Timestamp,
    pub first_run: String,
    pub last_run: String,
    pub resolved_at: Option<Timestamp>,
}

/// A page of findings and the cursor of the next one, if there is more.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingPage {
    pub items: Vec<StoredFinding>,
    pub next: Option<String>,
}

/// What one run changed (see [`Store::run_changes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunChanges {
    pub opened: Vec<StoredFinding>,
    pub fixed: Vec<StoredFinding>,
}

/// The largest page [`Store::findings`] returns.
pub const MAX_PAGE: u32 = 1000;

/// One finding as read: an element of the JSON array a finding query
/// returns (see [`rows_query`]), its columns in [`COLUMNS`] order.
#[derive(Deserialize)]
struct FindingRow {
    id: i64,
    probe: String,
    rule: String,
    severity: i64,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: Option<String>,
    message: String,
    remedy: Option<String>,
    labels: Vec<(String, String)>,
    first_seen: i64,
    opened_at: i64,
    last_seen: i64,
    first_run: String,
    last_run: String,
    resolved_at: Option<i64>,
}

/// The columns of a [`FindingRow`], in its order.
const COLUMNS: &[&str] = &[
    "id",
    "probe",
    "rule",
    "severity",
    "api_version",
    "kind",
    "namespace",
    "name",
    "uid",
    "message",
    "remedy",
    "labels",
    "first_seen",
    "opened_at",
    "last_seen",
    "first_run",
    "last_run",
    "resolved_at",
];

/// The rows of a finding query: [`COLUMNS`] of `findings`, where an open
/// finding was last seen by its probe's last successful run (a run writes
/// only the findings it changes, see migration 5) and a resolved one by the
/// run its row names.
const SELECT: &str = "SELECT id, probe, rule, severity, api_version, kind, namespace, name, uid, \
     message, remedy, labels, first_seen, opened_at, \
     CASE WHEN resolved_at IS NULL THEN COALESCE((SELECT p.seen_at FROM probes p \
     WHERE p.name = findings.probe), last_seen) ELSE last_seen END AS last_seen, first_run, \
     CASE WHEN resolved_at IS NULL THEN COALESCE((SELECT p.seen_run FROM probes p \
     WHERE p.name = findings.probe), last_run) ELSE last_run END AS last_run, resolved_at \
     FROM findings";

/// A finding query to complete with its `WHERE ...` (and order and limit):
/// [`SELECT`], its rows returned as one JSON array (see
/// [`dialect::json_rows_head`]) that [`fetch_rows`] reads.
fn rows_query() -> QueryBuilder<dialect::Db> {
    static HEAD: OnceLock<String> = OnceLock::new();
    let head = HEAD.get_or_init(|| {
        let mut head = dialect::json_rows_head(COLUMNS, &["labels"]);
        head.push_str(SELECT);
        head
    });
    QueryBuilder::new(head.as_str())
}

/// Runs a query begun with [`dialect::json_rows_head`] (as [`rows_query`]
/// does): its rows, in no given order.
async fn fetch_rows<T: serde::de::DeserializeOwned>(
    mut qb: QueryBuilder<dialect::Db>,
    pool: &dialect::Pool,
    what: &'static str,
) -> Result<Vec<T>, StoreError> {
    qb.push(dialect::JSON_ROWS_TAIL);
    let rows: Option<String> = qb.build_query_scalar().fetch_one(pool).await.ctx(what)?;
    rows.as_deref()
        .map_or(Ok(Vec::new()), |rows| from_json(rows, what))
}

impl Store {
    /// A page of the findings `filter` selects, at most `limit` (capped at
    /// [`MAX_PAGE`]), after the `after` cursor of the previous page.
    pub async fn findings(
        &self,
        filter: &FindingFilter,
        limit: u32,
        after: Option<&str>,
    ) -> Result<FindingPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let want = limit as usize + 1;
        let after = after.map(parse_cursor).transpose()?;
        // Taken before anything is read (see `Store::generation`).
        let generation = self.generation();
        let key = filter.text.is_some().then(|| format!("{filter:?}"));
        let cached = key.as_ref().and_then(|key| {
            let searches = self.searches.lock().unwrap_or_else(|e| e.into_inner());
            searches.get(key, generation)
        });
        let matches = match cached {
            Some(matches) => Some(matches),
            None => match self.text_plan(filter).await? {
                TextPlan::Scan => None,
                TextPlan::Index(query) => {
                    let matches = self.text_matches(filter, query).await?;
                    if let Some(key) = key {
                        let mut searches = self.searches.lock().unwrap_or_else(|e| e.into_inner());
                        searches.put(key, generation, matches.clone());
                    }
                    Some(matches)
                }
            },
        };
        // More matches past the page, as far as the search's matches tell
        // (a row deleted since they were read leaves the page short).
        let mut listed_more = false;
        let mut rows = match (matches, after) {
            (Some(matches), after) => {
                let start = after.map_or(0, |cursor| matches.partition_point(|m| *m >= cursor));
                listed_more = matches.len() - start > limit as usize;
                self.match_rows(filter, &matches[start..], want).await?
            }
            (None, None) => self.page_rows(filter, None, want).await?,
            // The rest of the cursor's severity, then the severities below:
            // each part is one seek into an index in page order. (SQLite
            // uses only the severity of a row value `(severity, id) < (?, ?)`
            // for the seek, and walks every row of that severity above the
            // cursor: 200,000 here at worst.)
            (None, Some((sev, id))) => {
                let mut rows = self
                    .page_rows(filter, Some(Seek::Within(sev, id)), want)
                    .await?;
                if rows.len() < want {
                    // As many as the first part asked for (the same
                    // statement whatever the cursor), the surplus dropped.
                    let rest = self.page_rows(filter, Some(Seek::Below(sev)), want).await?;
                    rows.extend(rest);
                }
                rows
            }
        };
        let more = rows.len() > limit as usize || listed_more;
        rows.truncate(limit as usize);
        let next = match (more, rows.last()) {
            (true, Some(last)) => Some(format!("{}.{}", last.severity, last.id)),
            _ => None,
        };
        let items = rows
            .into_iter()
            .map(StoredFinding::try_from)
            .collect::<Result<_, _>>()?;
        Ok(FindingPage { items, next })
    }

    /// At most `n` rows of a page in page order, from where `seek` says.
    async fn page_rows(
        &self,
        filter: &FindingFilter,
        seek: Option<Seek>,
        n: usize,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let mut qb = rows_query();
        push_filter(&mut qb, filter, TextPlan::Scan);
        match seek {
            None => {}
            Some(Seek::Within(sev, id)) => {
                qb.push(" AND severity = ")
                    .push_bind(sev)
                    .push(" AND id < ")
                    .push_bind(id);
            }
            Some(Seek::Below(sev)) => {
                qb.push(" AND severity < ").push_bind(sev);
            }
        }
        // The limit is written into the SQL, not bound: SQLite plans with a
        // bound LIMIT's value and prepares the statement again whenever it is
        // bound to another one (a quarter of a page's CPU when every page
        // asked for a different rest). Callers ask for the page size.
        qb.push(format_args!(" ORDER BY severity DESC, id DESC LIMIT {n}"));
        let mut rows: Vec<FindingRow> = fetch_rows(qb, &self.reader, "list findings").await?;
        rows.sort_unstable_by_key(|r| std::cmp::Reverse((r.severity, r.id)));
        Ok(rows)
    }

    /// Every match of `filter`, whose text the index `query` finds few
    /// candidates for, as `(severity, id)` in page order.
    async fn text_matches(
        &self,
        filter: &FindingFilter,
        query: String,
    ) -> Result<Matches, StoreError> {
        let mut qb =
            QueryBuilder::<dialect::Db>::new(dialect::json_rows_head(&["severity", "id"], &[]));
        qb.push("SELECT severity, id FROM findings");
        push_filter(&mut qb, filter, TextPlan::Index(query));
        let mut matches: Vec<(i64, i64)> =
            fetch_rows(qb, &self.reader, "find text matches").await?;
        matches.sort_unstable_by(|a, b| b.cmp(a));
        Ok(Arc::new(matches))
    }

    /// The rows of the first `n` of `matches` (a search's matches from where
    /// a page starts, in page order), in page order. Each row is checked
    /// against `filter` again as it is read.
    async fn match_rows(
        &self,
        filter: &FindingFilter,
        matches: &[(i64, i64)],
        n: usize,
    ) -> Result<Vec<FindingRow>, StoreError> {
        let ids: Vec<i64> = matches.iter().take(n).map(|m| m.1).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = rows_query();
        push_filter(&mut qb, filter, TextPlan::Scan);
        qb.push(" AND id IN (")
            .push(dialect::ids_in_json_bound())
            .push_bind(to_json(&ids, "a page's findings")?)
            .push("))");
        let mut rows: Vec<FindingRow> = fetch_rows(qb, &self.reader, "list text matches").await?;
        rows.sort_unstable_by_key(|r| std::cmp::Reverse((r.severity, r.id)));
        Ok(rows)
    }

    /// How many findings `filter` selects.
    pub async fn count_findings(&self, filter: &FindingFilter) -> Result<u64, StoreError> {
        let mut qb = QueryBuilder::<dialect::Db>::new("SELECT COUNT(*) FROM findings");
        // A count visits every match: only the candidates the index finds.
        let text = match filter.text.as_deref().and_then(dialect::text_index_query) {
            Some(query) => TextPlan::Index(query),
            None => TextPlan::Scan,
        };
        push_filter(&mut qb, filter, text);
        let n: i64 = qb
            .build_query_scalar()
            .fetch_one(&self.reader)
            .await
            .ctx("count findings")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The `limit` open findings opened most recently.
    pub async fn newest_findings(&self, limit: u32) -> Result<Vec<StoredFinding>, StoreError> {
        let mut qb = rows_query();
        qb.push(" WHERE resolved_at IS NULL ORDER BY opened_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit.clamp(1, MAX_PAGE)));
        let mut rows: Vec<FindingRow> = fetch_rows(qb, &self.reader, "newest findings").await?;
        rows.sort_unstable_by_key(|r| std::cmp::Reverse((r.opened_at, r.id)));
        rows.into_iter().map(StoredFinding::try_from).collect()
    }

    /// Open findings per severity, lowest first.
    pub async fn open_counts(&self) -> Result<[(Severity, u64); 5], StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT severity, COUNT(*) FROM findings WHERE resolved_at IS NULL GROUP BY severity",
        )
        .fetch_all(&self.reader)
        .await
        .ctx("count open findings")?;
        let mut out = Severity::ALL.map(|s| (s, 0u64));
        for (rank, n) in rows {
            let sev = severity_of(rank)?;
            if let Some(slot) = out.iter_mut().find(|(s, _)| *s == sev) {
                slot.1 = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// What the run of `probe` that finished `at` changed, at or above
    /// `min`: the findings it opened (new, or back after a fix) and those it
    /// found fixed, most severe first, at most `limit` of each. A run writes
    /// `at` into both (`opened_at`, `resolved_at`), so they are its own.
    pub async fn run_changes(
        &self,
        probe: &str,
        at: Timestamp,
        min: Severity,
        limit: u32,
    ) -> Result<RunChanges, StoreError> {
        let at = at.as_millisecond();
        let mut lists = Vec::new();
        for (column, open) in [("opened_at", true), ("resolved_at", false)] {
            let mut qb = rows_query();
            qb.push(" WHERE probe = ")
                .push_bind(probe.to_string())
                .push(format_args!(" AND {column} = "))
                .push_bind(at)
                .push(if open { " AND resolved_at IS NULL" } else { "" })
                .push(" AND severity >= ")
                .push_bind(i64::from(min.rank()))
                .push(format_args!(
                    " ORDER BY severity DESC, id DESC LIMIT {}",
                    limit.clamp(1, MAX_PAGE)
                ));
            let mut rows: Vec<FindingRow> = fetch_rows(qb, &self.reader, "a run's changes").await?;
            rows.sort_unstable_by_key(|r| std::cmp::Reverse((r.severity, r.id)));
            lists.push(
                rows.into_iter()
                    .map(StoredFinding::try_from)
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let fixed = lists.pop().unwrap_or_default();
        let opened = lists.pop().unwrap_or_default();
        Ok(RunChanges { opened, fixed })
    }

    /// One finding by id.
    pub async fn finding(&self, id: i64) -> Result<Option<StoredFinding>, StoreError> {
        let mut qb = rows_query();
        qb.push(" WHERE id = ").push_bind(id);
        let row = fetch_rows::<FindingRow>(qb, &self.reader, "get finding")
            .await?
            .pop();
        row.map(StoredFinding::try_from).transpose()
    }
}

/// The sorted matches of recent text searches, each under the store
/// generation it was read at: a search's pages are then read by id, like
/// any page, instead of each fetching, checking and sorting every candidate
/// again. A newer generation (a run finished, retention) misses, and the
/// search is read again.
#[derive(Default)]
pub(super) struct Searches {
    /// Key: the filter; value: the generation and the matches.
    entries: HashMap<String, (u64, Matches)>,
    /// Keys, oldest first.
    order: VecDeque<String>,
}

/// A search's matches, `(severity, id)` in page order.
type Matches = Arc<Vec<(i64, i64)>>;

/// How many searches [`Searches`] keeps (each at most `FEW_CANDIDATES`
/// matches, 16 bytes each).
const SEARCHES_KEPT: usize = 64;

impl Searches {
    fn get(&self, key: &str, generation: u64) -> Option<Matches> {
        self.entries
            .get(key)
            .filter(|(g, _)| *g == generation)
            .map(|(_, m)| m.clone())
    }

    fn put(&mut self, key: String, generation: u64, matches: Matches) {
        if self
            .entries
            .insert(key.clone(), (generation, matches))
            .is_none()
        {
            self.order.push_back(key);
            while self.order.len() > SEARCHES_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }
}

/// Where a page after a cursor `(severity, id)` starts.
#[derive(Debug, Clone, Copy)]
enum Seek {
    /// Rows of this severity with a smaller id.
    Within(i64, i64),
    /// Rows of a lower severity.
    Below(i64),
}

/// How a page looks for the text filter's matches.
#[derive(Debug, Clone)]
enum TextPlan {
    /// Walk the findings in page order, checking each message: quick when
    /// matches are common (or there is no text filter).
    Scan,
    /// Only the candidates of this text index query (a superset of the
    /// matches, each still checked): quick when matches are rare.
    Index(String),
}

/// Past this many candidates, a page walks the findings in page order
/// instead: its first matches come soon, while fetching and sorting every
/// candidate would take longer.
const FEW_CANDIDATES: i64 = 10_000;

impl Store {
    /// The plan for `filter`'s text, if any: the index when it finds few candidates.
    async fn text_plan(&self, filter: &FindingFilter) -> Result<TextPlan, StoreError> {
        let Some(query) = filter.text.as_deref().and_then(dialect::text_index_query) else {
            return Ok(TextPlan::Scan);
        };
        let n = dialect::text_candidates(&self.reader, &query, FEW_CANDIDATES + 1).await?;
        Ok(if n <= FEW_CANDIDATES {
            TextPlan::Index(query)
        } else {
            TextPlan::Scan
        })
    }
}

/// Appends ` WHERE ...` for `f` (always a WHERE, so callers can add `AND`).
fn push_filter(qb: &mut QueryBuilder<dialect::Db>, f: &FindingFilter, text: TextPlan) {
    qb.push(" WHERE 1 = 1");
    for (column, value) in [
        ("probe", &f.probe),
        ("rule", &f.rule),
        ("namespace", &f.namespace),
        ("kind", &f.kind),
        ("name", &f.name),
    ] {
        if let Some(v) = value {
            qb.push(" AND ")
                .push(column)
                .push(" = ")
                .push_bind(v.clone());
        }
    }
    if !f.severities.is_empty() {
        qb.push(" AND severity IN (");
        let mut list = qb.separated(", ");
        for s in &f.severities {
            list.push_bind(i64::from(s.rank()));
        }
        qb.push(")");
    }
    match f.status {
        FindingStatus::All => {}
        FindingStatus::Open => {
            qb.push(" AND resolved_at IS NULL");
        }
        FindingStatus::New { since } => {
            qb.push(" AND resolved_at IS NULL AND opened_at >= ")
                .push_bind(since.as_millisecond());
        }
        FindingStatus::Persisting { since } => {
            qb.push(" AND resolved_at IS NULL AND opened_at < ")
                .push_bind(since.as_millisecond());
        }
        FindingStatus::Fixed { since } => {
            qb.push(" AND resolved_at >= ")
                .push_bind(since.as_millisecond());
        }
    }
    if let Some(needle) = f.text.as_deref().filter(|t| !t.is_empty()) {
        if let TextPlan::Index(query) = text {
            qb.push(" AND ");
            dialect::push_text_candidates(qb, "id", query);
        }
        qb.push(" AND ");
        dialect::push_contains_ci(qb, "message", needle);
    }
}

fn parse_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad = || StoreError::InvalidInput {
        what: "cursor",
        detail: format!("{cursor:?} is not a cursor this store returned"),
    };
    let (sev, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        sev.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}

/// A stored severity rank back to the severity.
pub(super) fn severity_of(rank: i64) -> Result<Severity, StoreError> {
    usize::try_from(rank)
        .ok()
        .and_then(|i| Severity::ALL.get(i).copied())
        .ok_or_else(|| StoreError::Corrupt {
            what: "findings.severity",
            detail: format!("{rank} is not a severity rank (0-4)"),
        })
}

impl TryFrom<FindingRow> for StoredFinding {
    type Error = StoreError;
    fn try_from(r: FindingRow) -> Result<Self, StoreError> {
        let resource = (!r.kind.is_empty() || !r.name.is_empty()).then(|| ResourceRef {
            api_version: r.api_version,
            kind: r.kind,
            namespace: (!r.namespace.is_empty()).then_some(r.namespace),
            name: r.name,
            uid: r.uid,
        });
        Ok(StoredFinding {
            id: r.id,
            probe: r.probe,
            finding: Finding {
                rule: r.rule,
                severity: severity_of(r.severity)?,
                resource,
                message: r.message,
                remedy: r.remedy,
                labels: r.labels,
            },
            first_seen: timestamp(r.first_seen, "findings.first_seen")?,
            opened_at: timestamp(r.opened_at, "findings.opened_at")?,
            last_seen: timestamp(r.last_seen, "findings.last_seen")?,
            first_run: r.first_run,
            last_run: r.last_run,
            resolved_at: r
                .resolved_at
                .map(|t| timestamp(t, "findings.resolved_at"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{finding, open, succeeded};
    use super::{FindingFilter, FindingStatus};
    use crate::bindings::{Finding, Severity};

    #[tokio::test]
    async fn a_runs_changes_are_what_it_opened_and_fixed_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let web = finding("NoLimits", Severity::High, "shop", "web", None);
        let db = finding("NoLimits", Severity::High, "shop", "db", None);
        let low = finding("LatestTag", Severity::Low, "shop", "web", None);
        store
            .record_run_finished(&succeeded(
                "wa",
                "r1",
                vec![web.clone(), db.clone(), low.clone()],
            ))
            .await
            .unwrap();
        let first = clock.now();
        let names = |list: &[super::StoredFinding]| -> Vec<String> {
            list.iter()
                .map(|f| {
                    format!(
                        "{}/{}",
                        f.finding.rule,
                        f.finding.resource.as_ref().unwrap().name
                    )
                })
                .collect()
        };
        let c = store
            .run_changes("wa", first, Severity::Info, 10)
            .await
            .unwrap();
        assert_eq!(
            names(&c.opened),
            ["NoLimits/db", "NoLimits/web", "LatestTag/web"]
        );
        assert!(c.fixed.is_empty());
        let c = store
            .run_changes("wa", first, Severity::High, 10)
            .await
            .unwrap();
        assert_eq!(
            names(&c.opened),
            ["NoLimits/db", "NoLimits/web"],
            "at or above high"
        );
        assert!(
            store
                .run_changes("other", first, Severity::Info, 10)
                .await
                .unwrap()
                .opened
                .is_empty()
        );

        // The next run: db fixed, the rest persist (not opened again).
        clock.advance(Duration::from_secs(60));
        store
            .record_run_finished(&succeeded("wa", "r2", vec![web.clone(), low.clone()]))
            .await
            .unwrap();
        let second = clock.now();
        let c = store
            .run_changes("wa", second, Severity::Info, 10)
            .await
            .unwrap();
        assert!(c.opened.is_empty(), "{:?}", names(&c.opened));
        assert_eq!(names(&c.fixed), ["NoLimits/db"]);
        // The first run's changes are still its own.
        let c = store
            .run_changes("wa", first, Severity::Info, 10)
            .await
            .unwrap();
        assert_eq!(
            names(&c.opened),
            ["NoLimits/web", "LatestTag/web"],
            "db is fixed now"
        );

        // Back again: opened by the run that saw it return.
        clock.advance(Duration::from_secs(60));
        store
            .record_run_finished(&succeeded("wa", "r3", vec![web, db, low]))
            .await
            .unwrap();
        let c = store
            .run_changes("wa", clock.now(), Severity::Info, 10)
            .await
            .unwrap();
        assert_eq!(names(&c.opened), ["NoLimits/db"]);
    }

    /// Every page of `filter`, `limit` at a time, following the cursors.
    async fn all_pages(store: &super::Store, filter: &FindingFilter, limit: u32) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .findings(filter, limit, after.as_deref())
                .await
                .unwrap();
            ids.extend(page.items.iter().map(|f| f.id));
            match page.next {
                Some(next) => after = Some(next),
                None => return ids,
            }
        }
    }

    #[tokio::test]
    async fn a_search_pages_through_its_matches_and_sees_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let run = |n: usize| -> Vec<Finding> {
            (0..n)
                .map(|i| {
                    let sev = Severity::ALL[i % 5];
                    let mut f = finding("R", sev, "ns", &format!("p{i}"), None);
                    f.message = if i % 3 == 0 {
                        format!("needle in service-{i}")
                    } else {
                        format!("hay of service-{i}")
                    };
                    f
                })
                .collect()
        };
        store
            .record_run_finished(&succeeded("wa", "r1", run(40)))
            .await
            .unwrap();
        let search = FindingFilter {
            text: Some("needle".into()),
            ..Default::default()
        };
        let scan = |s: &FindingFilter| FindingFilter {
            text: None,
            ..s.clone()
        };
        // What the search's pages hold: the matches of a walk of every
        // finding, in page order, whatever the page size.
        let every = all_pages(&store, &scan(&search), 7).await;
        let all = store.findings(&scan(&search), 1000, None).await.unwrap();
        let want: Vec<i64> = every
            .iter()
            .copied()
            .filter(|id| {
                all.items
                    .iter()
                    .any(|f| f.id == *id && f.finding.message.contains("needle"))
            })
            .collect();
        assert_eq!(want.len(), 14);
        for limit in [1, 3, 5, 50] {
            assert_eq!(
                all_pages(&store, &search, limit).await,
                want,
                "limit {limit}"
            );
        }
        // Another run (60 findings: 6 more needles, the others again): the
        // search reads its matches again.
        store
            .record_run_finished(&succeeded("wa", "r2", run(60)))
            .await
            .unwrap();
        assert_eq!(all_pages(&store, &search, 4).await.len(), 20);
        let high = FindingFilter {
            severities: vec![Severity::High],
            ..search.clone()
        };
        let highs = all_pages(&store, &high, 2).await;
        assert!(!highs.is_empty() && highs.len() < 20);
        for id in highs {
            let f = store.finding(id).await.unwrap().unwrap();
            assert_eq!(f.finding.severity, Severity::High);
            assert!(f.finding.message.contains("needle"));
        }
    }

    async fn seeded() -> (
        tempfile::TempDir,
        super::Store,
        super::super::test_support::TestClock,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let mut cluster = finding("OldVersion", Severity::Critical, "", "", None);
        cluster.resource = None;
        cluster.message = "The API server is 50% out of date".into();
        store
            .record_run_finished(&succeeded("cp", "c1", vec![cluster]))
            .await
            .unwrap();
        store
            .record_run_finished(&succeeded(
                "wa",
                "w1",
                vec![
                    finding("NoLimits", Severity::High, "shop", "web", Some("app")),
                    finding("NoLimits", Severity::High, "shop", "db", None),
                    finding("Latest", Severity::Low, "shop", "web", Some("app")),
                    finding("Latest", Severity::Low, "kube-system", "dns", None),
                ],
            ))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(3600));
        store
            .record_run_finished(&succeeded(
                "wa",
                "w2",
                vec![
                    finding("NoLimits", Severity::High, "shop", "web", Some("app")),
                    finding("Latest", Severity::Low, "shop", "web", Some("app")),
                    finding("Latest", Severity::Low, "kube-system", "dns", None),
                    finding("NoProbe", Severity::Medium, "shop", "cart", None),
                ],
            ))
            .await
            .unwrap();
        (dir, store, clock)
    }

    fn names(items: &[super::StoredFinding]) -> Vec<String> {
        items
            .iter()
            .map(|f| {
                let r = f.finding.resource.as_ref();
                format!(
                    "{}:{}",
                    f.finding.rule,
                    r.map(|r| r.name.as_str()).unwrap_or("-")
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn filters_select_by_resource_rule_severity_probe_status_and_text() {
        let (_dir, store, clock) = seeded().await;
        let hour_ago = clock.now() - Duration::from_secs(1800);
        let q = |f: FindingFilter| {
            let store = store.clone();
            async move { names(&store.findings(&f, 100, None).await.unwrap().items) }
        };
        assert_eq!(
            q(FindingFilter::default()).await.len(),
            5,
            "open only by default"
        );
        assert_eq!(
            q(FindingFilter {
                status: FindingStatus::All,
                ..Default::default()
            })
            .await
            .len(),
            6
        );
        assert_eq!(
            q(FindingFilter {
                namespace: Some("kube-system".into()),
                ..Default::default()
            })
            .await,
            ["Latest:dns"]
        );
        assert_eq!(
            q(FindingFilter {
                namespace: Some(String::new()),
                ..Default::default()
            })
            .await,
            ["OldVersion:-"],
            "the empty namespace selects cluster-wide findings"
        );
        assert_eq!(
            q(FindingFilter {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                ..Default::default()
            })
            .await,
            ["NoLimits:web", "Latest:web"],
            "most severe first"
        );
        assert_eq!(
            q(FindingFilter {
                rule: Some("NoProbe".into()),
                ..Default::default()
            })
            .await,
            ["NoProbe:cart"]
        );
        assert_eq!(
            q(FindingFilter {
                severities: vec![Severity::Critical, Severity::Medium],
                ..Default::default()
            })
            .await,
            ["OldVersion:-", "NoProbe:cart"]
        );
        assert_eq!(
            q(FindingFilter {
                probe: Some("cp".into()),
                ..Default::default()
            })
            .await
            .len(),
            1
        );
        assert_eq!(
            q(FindingFilter {
                status: FindingStatus::New { since: hour_ago },
                ..Default::default()
            })
            .await,
            ["NoProbe:cart"]
        );
        assert_eq!(
            q(FindingFilter {
                status: FindingStatus::Persisting { since: hour_ago },
                ..Default::default()
            })
            .await
            .len(),
            4
        );
        assert_eq!(
            q(FindingFilter {
                status: FindingStatus::Fixed { since: hour_ago },
                ..Default::default()
            })
            .await,
            ["NoLimits:db"]
        );
        assert_eq!(
            q(FindingFilter {
                text: Some("API SERVER".into()),
                ..Default::default()
            })
            .await,
            ["OldVersion:-"],
            "text search ignores case"
        );
        assert!(
            q(FindingFilter {
                text: Some("50_".into()),
                ..Default::default()
            })
            .await
            .is_empty(),
            "_ is a character, not a wildcard"
        );
        assert_eq!(
            q(FindingFilter {
                text: Some("50%".into()),
                ..Default::default()
            })
            .await,
            ["OldVersion:-"]
        );
        let cluster = &store
            .findings(
                &FindingFilter {
                    probe: Some("cp".into()),
                    ..Default::default()
                },
                1,
                None,
            )
            .await
            .unwrap()
            .items[0];
        assert_eq!(cluster.finding.resource, None);
        let again = store.finding(cluster.id).await.unwrap().unwrap();
        assert_eq!(&again, cluster);
    }

    #[tokio::test]
    async fn pages_cover_everything_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let fs: Vec<Finding> = (0..53)
            .map(|i| finding("R", Severity::ALL[i % 5], "ns", &format!("p{i}"), None))
            .collect();
        store
            .record_run_finished(&succeeded("wa", "r1", fs))
            .await
            .unwrap();
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store
                .findings(&FindingFilter::default(), 10, after.as_deref())
                .await
                .unwrap();
            pages += 1;
            all.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(pages, 6);
        assert_eq!(all.len(), 53);
        let mut ids: Vec<i64> = all.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 53, "no finding twice");
        let keys: Vec<(u8, i64)> = all
            .iter()
            .map(|f| (f.finding.severity.rank(), f.id))
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] > w[1]),
            "severity then id, descending"
        );
        assert_eq!(
            store
                .count_findings(&FindingFilter::default())
                .await
                .unwrap(),
            53
        );
        let err = store
            .findings(&FindingFilter::default(), 10, Some("4"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cursor"), "{err}");
    }
}
