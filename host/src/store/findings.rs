//! Writing findings: a finding's identity across runs, and the batched
//! upsert that turns one successful run's findings into rows (new ones
//! inserted, changed ones rewritten, missing ones resolved).
//!
//! Identity is probe + rule + resource (apiVersion, kind, namespace, name) +
//! a fingerprint of the identifying labels. Labels that change from run to
//! run without making it another finding (`time`, `count`, ...) are left out
//! of the fingerprint, or every run would report a "new" finding.
//!
//! Ingest is bound by SQLite, so the batched path keeps SQLite's work small:
//! - a run reads its probe's open findings (id, identity, content digest)
//!   and compares: a report that says what its open finding says is not
//!   written at all (most findings of most runs), since an open finding's
//!   last-seen time and run are its probe's last successful run (migration
//!   5); open findings it did not report are resolved by id;
//! - one prepared statement per batch size, whose SQL never changes (sqlx
//!   caches prepared statements by their text), binding the probe, the time
//!   and the run once per statement and thirteen values per finding;
//! - a finding that is still open with the same severity is rewritten
//!   without rewriting an index entry (none of the columns its update sets
//!   is indexed); a statement some of whose findings need more (reopened,
//!   new severity) is run again as the full upsert;
//! - values repeated across findings (rule, kind, namespace, labels, ...) are
//!   shared rather than copied, label fingerprints are computed once per
//!   distinct label set, and the rows of the next statement are built while
//!   SQLite runs the current one.

use std::collections::HashMap;
use std::collections::hash_map;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use sqlx::{Arguments, Database};

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

/// Parameters bound once per statement: the probe, the time (first seen,
/// opened, last seen) and the run (first, last).
const SHARED_PARAMS: usize = 6;
/// Parameters bound per finding by [`upsert`].
const PARAMS_PER_ROW: usize = 13;
/// Rows per statement: a power of two that fits the parameter limit, capped
/// so that one statement's text stays small enough to prepare quickly.
const ROWS_PER_STATEMENT: usize = {
    let fit = (dialect::MAX_BIND_PARAMS - SHARED_PARAMS) / PARAMS_PER_ROW;
    let rows = if fit < 1024 { fit } else { 1024 };
    1 << rows.ilog2()
};
/// Statement sizes: `ROWS_PER_STATEMENT` and every smaller power of two
/// (a run's last rows go in at most one statement of each).
const SIZES: usize = ROWS_PER_STATEMENT.ilog2() as usize + 1;

/// The finding's `(identity, fingerprint)`, both hex: what makes two reports
/// of `probe` in different runs the same finding.
pub fn identity_of(probe: &str, finding: &Finding) -> (String, String) {
    let fingerprint = fingerprint_hex(&finding.labels);
    let fingerprint = hex_str(&fingerprint);
    let identity = identity_digest(&probe_hasher(probe), finding, fingerprint);
    (
        hex_str(&hex16(&identity)).to_string(),
        fingerprint.to_string(),
    )
}

/// The hash of the identifying labels (sorted, deduplicated, volatile ones
/// left out), as hex: what the identity takes in.
fn fingerprint_hex(labels: &[(String, String)]) -> [u8; 32] {
    hex16(&fingerprint_digest(labels))
}

/// The first 16 bytes of the hash of the identifying labels: what is stored.
fn fingerprint_digest(labels: &[(String, String)]) -> [u8; 16] {
    let mut labels: Vec<(&str, &str)> = labels
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
    let mut out = [0; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// A hasher that has taken in the probe: what every identity of the probe starts with.
fn probe_hasher(probe: &str) -> Sha256 {
    let mut h = Sha256::new();
    field(&mut h, probe);
    h
}

/// The identity's 16 bytes, `probe` already in `prefix` (see [`probe_hasher`]).
fn identity_digest(prefix: &Sha256, finding: &Finding, fingerprint: &str) -> [u8; 16] {
    let mut h = prefix.clone();
    field(&mut h, &finding.rule);
    let r = finding.resource.as_ref();
    field(&mut h, r.map_or("", |r| r.api_version.as_str()));
    field(&mut h, r.map_or("", |r| r.kind.as_str()));
    field(&mut h, r.and_then(|r| r.namespace.as_deref()).unwrap_or(""));
    field(&mut h, r.map_or("", |r| r.name.as_str()));
    field(&mut h, fingerprint);
    let mut out = [0; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// Length-prefixed, so `("ab", "c")` and `("a", "bc")` hash differently.
fn field(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// The first 16 bytes of `bytes` as lowercase hex.
fn hex16(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    hex::encode_to_slice(&bytes[..16], &mut out).expect("32 hex digits for 16 bytes");
    out
}

fn hex_str(hex: &[u8; 32]) -> &str {
    std::str::from_utf8(hex).expect("hex digits are ASCII")
}

/// One finding ready to bind. Shared (`Arc`) values: binding one is a
/// reference count, not a copy.
pub(super) struct Row {
    identity: [u8; 16],
    fingerprint: [u8; 16],
    rule: Arc<str>,
    severity: i64,
    api_version: Arc<str>,
    kind: Arc<str>,
    namespace: Arc<str>,
    name: Arc<str>,
    uid: Option<Arc<str>>,
    message: Arc<str>,
    remedy: Option<Arc<str>>,
    labels: Arc<str>,
    content: [u8; 16],
}

/// One copy of each distinct string of a run (rules, kinds, namespaces, ...).
#[derive(Default)]
struct Strings<'a>(HashMap<&'a str, Arc<str>>);

impl<'a> Strings<'a> {
    fn get(&mut self, s: &'a str) -> Arc<str> {
        self.0.entry(s).or_insert_with(|| Arc::from(s)).clone()
    }
}

/// A run's findings, one per identity, in the order they were first
/// reported: a probe that reports the same finding twice in a run gets one
/// row, holding the last report.
pub(super) struct Batch<'a> {
    findings: &'a [Finding],
    entries: Vec<Entry>,
}

/// One distinct finding of a batch.
struct Entry {
    /// The last report of it, in `Batch::findings`.
    finding: usize,
    identity: [u8; 16],
    fingerprint: [u8; 16],
    /// All its labels, as JSON.
    labels: Arc<str>,
    /// What it says beyond its identity (see [`content_digest`]).
    content: [u8; 16],
}

impl<'a> Batch<'a> {
    /// A batch of no findings (a failed run's).
    pub(super) fn empty() -> Batch<'static> {
        Batch {
            findings: &[],
            entries: Vec::new(),
        }
    }

    /// Distinct findings.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries at `indexes` as rows to bind.
    fn rows(&self, indexes: &[usize], strings: &mut Strings<'a>) -> Vec<Row> {
        let empty = strings.get("");
        indexes
            .iter()
            .map(|&i| {
                let e = &self.entries[i];
                let f = &self.findings[e.finding];
                let r = f.resource.as_ref();
                Row {
                    identity: e.identity,
                    fingerprint: e.fingerprint,
                    rule: strings.get(&f.rule),
                    severity: i64::from(f.severity.rank()),
                    api_version: r.map_or_else(|| empty.clone(), |r| strings.get(&r.api_version)),
                    kind: r.map_or_else(|| empty.clone(), |r| strings.get(&r.kind)),
                    namespace: match r.and_then(|r| r.namespace.as_deref()) {
                        Some(ns) => strings.get(ns),
                        None => empty.clone(),
                    },
                    name: r.map_or_else(|| empty.clone(), |r| strings.get(&r.name)),
                    uid: r.and_then(|r| r.uid.as_deref()).map(Arc::from),
                    message: Arc::from(f.message.as_str()),
                    remedy: f.remedy.as_deref().map(|s| strings.get(s)),
                    labels: e.labels.clone(),
                    content: e.content,
                }
            })
            .collect()
    }

    /// What the run changes, against the probe's open findings as stored
    /// (`open`, see [`open_findings`]): the entries to write (new, reopened
    /// or saying something else than their open finding) and the open
    /// findings it did not report (to resolve). An entry that says what its
    /// open finding says needs no write.
    pub(super) fn changes(&self, mut open: OpenFindings) -> Changes {
        let mut write = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            match open.remove(&e.identity) {
                Some(Some(content)) if content == e.content => {}
                _ => write.push(i),
            }
        }
        let mut resolve: Vec<[u8; 16]> = open.into_keys().collect();
        resolve.sort_unstable();
        Changes { write, resolve }
    }
}

/// What one run changes in the stored findings (see [`Batch::changes`]).
#[derive(Debug, Default)]
pub(super) struct Changes {
    /// Indexes of the batch's entries to upsert, in report order.
    pub write: Vec<usize>,
    /// Identities of open findings the run did not report.
    pub resolve: Vec<[u8; 16]>,
}

/// A probe's open findings: identity to content (`None` for a finding
/// stored before contents were kept, migration 5, or of another length:
/// it never matches).
pub(super) type OpenFindings = HashMap<[u8; 16], Option<[u8; 16]>, foldhash::fast::RandomState>;

/// The open findings of `probe`: every one was reported by its last
/// successful run. Read from the probe index alone (migration 5), as one
/// value per severity of 32 bytes per finding (identity, then content; 16
/// zero bytes for none) rather than a row per finding (an identity of
/// another length is none a run reports; the store writes 16 bytes): the store's driver
/// hands each row from its SQLite thread to the caller's task on its own,
/// which costs more than reading it. (SQLite caps a value at 1 GB: some 30
/// million open findings of one severity of one probe.)
const OPEN_FINDINGS: &str = "SELECT CAST(group_concat(identity || CASE WHEN length(content) = 16 \
     THEN content ELSE zeroblob(16) END, '') AS BLOB) \
     FROM findings WHERE probe = $1 AND severity = $2 AND resolved_at IS NULL \
     AND length(identity) = 16";

pub(super) async fn open_findings(
    conn: &mut dialect::Conn,
    probe: &str,
) -> Result<OpenFindings, StoreError> {
    let mut open = OpenFindings::default();
    for severity in crate::bindings::Severity::ALL {
        let packed: Option<Vec<u8>> = sqlx::query_scalar(OPEN_FINDINGS)
            .bind(probe)
            .bind(i64::from(severity.rank()))
            .fetch_one(&mut *conn)
            .await
            .ctx("read open findings")?;
        let packed = packed.unwrap_or_default();
        if !packed.len().is_multiple_of(32) {
            return Err(StoreError::Corrupt {
                what: "findings.identity",
                detail: format!(
                    "the open findings of {probe} read as {} bytes, not 32 per finding",
                    packed.len()
                ),
            });
        }
        // Identity and content halves, 16 bytes each (the length checked above).
        let (halves, _) = packed.as_chunks::<16>();
        for pair in halves.chunks_exact(2) {
            if let [identity, content] = pair {
                open.insert(*identity, (*content != [0; 16]).then_some(*content));
            }
        }
    }
    Ok(open)
}

/// (fingerprint, its hex, labels as JSON) per distinct label list of a run.
type LabelSets<'a> = HashMap<&'a [(String, String)], ([u8; 16], [u8; 32], Arc<str>)>;

/// An identity told apart by the finding's message.
fn split_digest(identity: &[u8; 16], message: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(identity);
    field(&mut h, message);
    let out = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&out[..16]);
    id
}

/// What a report says beyond its identity: severity, uid, message, remedy
/// and labels (all of them, as JSON). Equal contents: nothing to rewrite.
fn content_digest(finding: &Finding, labels: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update([finding.severity.rank()]);
    let r = finding.resource.as_ref();
    let optional = |h: &mut Sha256, s: Option<&str>| match s {
        None => h.update([0]),
        Some(s) => {
            h.update([1]);
            field(h, s);
        }
    };
    optional(&mut h, r.and_then(|r| r.uid.as_deref()));
    field(&mut h, &finding.message);
    optional(&mut h, finding.remedy.as_deref());
    field(&mut h, labels);
    let mut out = [0; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// The run's findings as a batch: identities computed (label fingerprints
/// once per distinct label list) and duplicates merged.
pub(super) fn prepare<'a>(probe: &str, findings: &'a [Finding]) -> Result<Batch<'a>, StoreError> {
    let prefix = probe_hasher(probe);
    let mut entries: Vec<Entry> = Vec::with_capacity(findings.len());
    let mut seen: HashMap<[u8; 16], usize> = HashMap::with_capacity(findings.len());
    let mut label_sets = LabelSets::default();
    for (i, f) in findings.iter().enumerate() {
        let (fingerprint, fingerprint_hex, labels) = match label_sets.entry(f.labels.as_slice()) {
            hash_map::Entry::Occupied(e) => e.get().clone(),
            hash_map::Entry::Vacant(e) => {
                let fingerprint = fingerprint_digest(&f.labels);
                let labels: Arc<str> = Arc::from(to_json(&f.labels, "a finding's labels")?);
                e.insert((fingerprint, hex16(&fingerprint), labels)).clone()
            }
        };
        let identity = identity_digest(&prefix, f, hex_str(&fingerprint_hex));
        entries.push(Entry {
            finding: i,
            identity,
            fingerprint,
            labels,
            content: [0; 16],
        });
    }
    // Reports that share an identity but say different things are different
    // claims (a cluster-wide rule reporting two problems): each of them is
    // told apart by its message. Reports that say the same are one finding.
    let mut first: HashMap<[u8; 16], (usize, bool)> = HashMap::with_capacity(entries.len());
    for e in &entries {
        match first.entry(e.identity) {
            hash_map::Entry::Occupied(mut o) => {
                if findings[o.get().0].message != findings[e.finding].message {
                    o.get_mut().1 = true;
                }
            }
            hash_map::Entry::Vacant(v) => {
                v.insert((e.finding, false));
            }
        }
    }
    let mut distinct: Vec<Entry> = Vec::with_capacity(entries.len());
    for mut e in entries {
        if first.get(&e.identity).is_some_and(|(_, split)| *split) {
            e.identity = split_digest(&e.identity, &findings[e.finding].message);
        }
        match seen.entry(e.identity) {
            hash_map::Entry::Occupied(o) => distinct[*o.get()] = e,
            hash_map::Entry::Vacant(v) => {
                v.insert(distinct.len());
                distinct.push(e);
            }
        }
    }
    for e in &mut distinct {
        e.content = content_digest(&findings[e.finding], &e.labels);
    }
    Ok(Batch {
        findings,
        entries: distinct,
    })
}

/// The head of the batched upsert: the values bound once per statement come
/// first (the probe, the time three times, the run twice), then one row of
/// [`PARAMS_PER_ROW`] per finding.
const INSERT_SELECT: &str = "INSERT INTO findings (identity, probe, rule, severity, api_version, \
     kind, namespace, name, uid, fingerprint, message, remedy, labels, content, first_seen, \
     opened_at, last_seen, first_run, last_run) \
     SELECT column1, {}, column2, column3, column4, column5, column6, column7, column8, column9, \
     column10, column11, column12, column13, {}, {}, {}, {}, {} FROM (VALUES ";

/// What the full upsert does to a finding that is already stored: refresh it
/// from the latest report and reopen it if it was fixed.
const FULL_UPDATE: &str = ") AS v WHERE true \
     ON CONFLICT (identity) DO UPDATE SET severity = excluded.severity, \
     uid = excluded.uid, message = excluded.message, remedy = excluded.remedy, \
     labels = excluded.labels, content = excluded.content, last_seen = excluded.last_seen, \
     last_run = excluded.last_run, \
     opened_at = CASE WHEN findings.resolved_at IS NULL THEN findings.opened_at \
     ELSE excluded.opened_at END, \
     resolved_at = NULL";

/// The same for an open finding whose severity did not change (most
/// persisting ones): only unindexed columns change, so the row is rewritten
/// and no index is. Other stored findings are left alone (and not counted).
const TOUCH_UPDATE: &str = ") AS v WHERE true \
     ON CONFLICT (identity) DO UPDATE SET \
     uid = excluded.uid, message = excluded.message, remedy = excluded.remedy, \
     labels = excluded.labels, content = excluded.content, last_seen = excluded.last_seen, \
     last_run = excluded.last_run \
     WHERE findings.resolved_at IS NULL AND findings.severity = excluded.severity";

#[derive(Clone, Copy)]
enum Update {
    Touch,
    Full,
}

/// The upsert of `rows` findings (a power of two up to `ROWS_PER_STATEMENT`):
/// built once, so that its text, and hence sqlx's prepared statement, is reused.
fn upsert_sql(rows: usize, update: Update) -> &'static str {
    static SQL: [[OnceLock<String>; SIZES]; 2] = [
        [const { OnceLock::new() }; SIZES],
        [const { OnceLock::new() }; SIZES],
    ];
    assert!(rows.is_power_of_two() && rows <= ROWS_PER_STATEMENT);
    SQL[update as usize][rows.ilog2() as usize].get_or_init(|| {
        let mut sql = String::with_capacity(INSERT_SELECT.len() + rows * 64 + 600);
        let mut n = 0;
        let mut placeholder = |sql: &mut String| {
            n += 1;
            dialect::push_placeholder(sql, n);
        };
        let mut head = INSERT_SELECT.split("{}");
        sql.push_str(
            head.next()
                .expect("the head starts before its first parameter"),
        );
        for part in head {
            placeholder(&mut sql);
            sql.push_str(part);
        }
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..PARAMS_PER_ROW {
                if c > 0 {
                    sql.push_str(", ");
                }
                placeholder(&mut sql);
            }
            sql.push(')');
        }
        debug_assert_eq!(n, SHARED_PARAMS + rows * PARAMS_PER_ROW);
        sql.push_str(match update {
            Update::Touch => TOUCH_UPDATE,
            Update::Full => FULL_UPDATE,
        });
        sql
    })
}

/// How many rows each statement of a run of `n` findings takes:
/// `ROWS_PER_STATEMENT` while that many are left, then the powers of two of
/// the rest, largest first.
fn statement_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if n == 0 {
            return None;
        }
        let size = ROWS_PER_STATEMENT.min(1 << n.ilog2());
        n -= size;
        Some(size)
    })
}

type Args = <dialect::Db as Database>::Arguments;

/// The parameters of one upsert statement over `rows`.
fn bind_rows(
    probe: &Arc<str>,
    now: i64,
    run_id: &Arc<str>,
    rows: &[Row],
) -> Result<Args, StoreError> {
    fn add<'t, T>(args: &mut Args, value: T) -> Result<(), StoreError>
    where
        T: sqlx::Encode<'t, dialect::Db> + sqlx::Type<dialect::Db>,
    {
        args.add(value)
            .map_err(sqlx::Error::Encode)
            .ctx("bind a finding")
    }
    let mut args = Args::default();
    args.reserve(SHARED_PARAMS + rows.len() * PARAMS_PER_ROW, 0);
    add(&mut args, probe.clone())?;
    for _ in 0..3 {
        add(&mut args, now)?;
    }
    for _ in 0..2 {
        add(&mut args, run_id.clone())?;
    }
    for r in rows {
        add(&mut args, &r.identity[..])?;
        add(&mut args, r.rule.clone())?;
        add(&mut args, r.severity)?;
        add(&mut args, r.api_version.clone())?;
        add(&mut args, r.kind.clone())?;
        add(&mut args, r.namespace.clone())?;
        add(&mut args, r.name.clone())?;
        add(&mut args, r.uid.clone())?;
        add(&mut args, &r.fingerprint[..])?;
        add(&mut args, r.message.clone())?;
        add(&mut args, r.remedy.clone())?;
        add(&mut args, r.labels.clone())?;
        add(&mut args, &r.content[..])?;
    }
    Ok(args)
}

/// Writes the batch's entries at `write` (see [`Batch::changes`]): inserts
/// new findings and refreshes persisting ones (a fixed finding that is
/// reported again is reopened), up to `ROWS_PER_STATEMENT` rows per
/// statement. Each statement first only touches the findings that are open
/// with an unchanged severity; when it left some alone, the full upsert runs
/// over the same rows (for those already written, it writes the same values).
/// The rows of the next statement are built while SQLite runs the current one.
pub(super) async fn upsert(
    conn: &mut dialect::Conn,
    probe: &str,
    run_id: &str,
    now: i64,
    batch: &Batch<'_>,
    write: &[usize],
) -> Result<(), StoreError> {
    let probe: Arc<str> = Arc::from(probe);
    let run_id: Arc<str> = Arc::from(run_id);
    let mut strings = Strings::default();
    let mut sizes = statement_sizes(write.len());
    let mut start = 0;
    let mut next_rows = || {
        sizes.next().map(|size| {
            let rows = batch.rows(&write[start..start + size], &mut strings);
            start += size;
            rows
        })
    };
    let mut next = next_rows();
    while let Some(rows) = next {
        let size = rows.len();
        let touch = sqlx::query_with(
            upsert_sql(size, Update::Touch),
            bind_rows(&probe, now, &run_id, &rows)?,
        )
        .execute(&mut *conn);
        let (written, following) = futures::join!(touch, async { next_rows() });
        next = following;
        if written.ctx("upsert findings")?.rows_affected() < size as u64 {
            sqlx::query_with(
                upsert_sql(size, Update::Full),
                bind_rows(&probe, now, &run_id, &rows)?,
            )
            .execute(&mut *conn)
            .await
            .ctx("upsert reopened or changed findings")?;
        }
    }
    Ok(())
}

/// The baseline the batched path is measured against: one statement per
/// finding, every finding of the run written (same transaction, same
/// upsert). Used by the ingest benchmark.
pub(super) async fn upsert_one_by_one(
    conn: &mut dialect::Conn,
    probe: &str,
    run_id: &str,
    now: i64,
    batch: &Batch<'_>,
) -> Result<(), StoreError> {
    let every: Vec<usize> = (0..batch.len()).collect();
    for r in batch.rows(&every, &mut Strings::default()) {
        sqlx::query(
            "INSERT INTO findings (identity, probe, rule, severity, api_version, kind, namespace, \
             name, uid, fingerprint, message, remedy, labels, content, first_seen, opened_at, \
             last_seen, first_run, last_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $15, \
             $16, $16) \
             ON CONFLICT (identity) DO UPDATE SET severity = excluded.severity, \
             uid = excluded.uid, message = excluded.message, remedy = excluded.remedy, \
             labels = excluded.labels, content = excluded.content, \
             last_seen = excluded.last_seen, \
             last_run = excluded.last_run, \
             opened_at = CASE WHEN findings.resolved_at IS NULL THEN findings.opened_at \
             ELSE excluded.opened_at END, \
             resolved_at = NULL",
        )
        .bind(&r.identity[..])
        .bind(probe)
        .bind(r.rule)
        .bind(r.severity)
        .bind(r.api_version)
        .bind(r.kind)
        .bind(r.namespace)
        .bind(r.name)
        .bind(r.uid)
        .bind(&r.fingerprint[..])
        .bind(r.message)
        .bind(r.remedy)
        .bind(r.labels)
        .bind(&r.content[..])
        .bind(now)
        .bind(run_id)
        .execute(&mut *conn)
        .await
        .ctx("insert finding")?;
    }
    Ok(())
}

/// Resolves the open findings of `identities` (those a run did not report,
/// see [`Batch::changes`]) at `now`. They were last seen by the probe's previous
/// successful run, `seen` (when, which): that is written into them, now that
/// the probe's last run no longer stands for it. (`None`: the probe has not
/// run since migration 5, and the findings' own values are still current.)
pub(super) async fn resolve(
    conn: &mut dialect::Conn,
    identities: &[[u8; 16]],
    now: i64,
    seen: (Option<i64>, Option<&str>),
) -> Result<u64, StoreError> {
    let mut resolved = 0;
    for chunk in identities.chunks(RESOLVE_PER_STATEMENT) {
        let ids = to_json(
            &chunk.iter().map(hex::encode).collect::<Vec<_>>(),
            "the findings to resolve",
        )?;
        let done = sqlx::query(resolve_sql())
            .bind(now)
            .bind(seen.0)
            .bind(seen.1)
            .bind(ids)
            .execute(&mut *conn)
            .await
            .ctx("resolve findings")?;
        resolved += done.rows_affected();
    }
    Ok(resolved)
}

/// Identities per resolving statement (one JSON array of hex bound).
const RESOLVE_PER_STATEMENT: usize = 10_000;

fn resolve_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE findings SET resolved_at = $1, last_seen = COALESCE($2, last_seen), \
             last_run = COALESCE($3, last_run) \
             WHERE resolved_at IS NULL AND identity IN ({})",
            dialect::blobs_in_json("$4")
        )
    })
}

/// Adds the findings inserted after `watermark` (see [`id_watermark`]) to
/// the text index, in one statement. A finding is inserted only here (by a
/// run's ingest), and a message changed later is re-indexed by a trigger.
/// (A finding inserted by this run is not updated again by it with another
/// message: a run reports each identity once, so the trigger cannot index
/// one of these twice.)
pub(super) async fn index_new_text(
    conn: &mut dialect::Conn,
    watermark: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO findings_text (rowid, message) SELECT id, message FROM findings \
         WHERE id > $1",
    )
    .bind(watermark)
    .execute(&mut *conn)
    .await
    .ctx("index the new findings' messages")?;
    Ok(())
}

/// The largest finding id (0 for none): taken in a run's transaction before
/// its findings are written, the findings inserted after it are the run's
/// new ones (a new row's id is above every stored id, and the transaction
/// holds the write lock, so nothing else inserts in between).
pub(super) async fn id_watermark(conn: &mut dialect::Conn) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM findings")
        .fetch_one(&mut *conn)
        .await
        .ctx("find the largest finding id")
}

/// How many findings were inserted after `watermark` (see [`id_watermark`]):
/// those the run reported for the first time.
pub(super) async fn count_new(conn: &mut dialect::Conn, watermark: i64) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM findings WHERE id > $1")
        .bind(watermark)
        .fetch_one(&mut *conn)
        .await
        .ctx("count new findings")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{every_finding, failed, finding, open, succeeded};
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
        let all = every_finding(&store, 10).await;
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

    /// The row's own (last_run, content is set) as written, not as read.
    async fn row_of(store: &super::super::Store, name: &str) -> (String, bool, Option<i64>) {
        sqlx::query_as(
            "SELECT last_run, content IS NOT NULL, resolved_at FROM findings WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&store.writer)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_run_writes_only_what_changed_and_open_findings_were_seen_by_the_last_run() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let a = finding("NoLimits", Severity::High, "shop", "a", None);
        let b = finding("NoLimits", Severity::High, "shop", "b", None);
        let c = finding("NoLimits", Severity::High, "shop", "c", None);
        let mut c2 = c.clone();
        c2.message = "limits removed again".into();
        let all = || vec![a.clone(), b.clone(), c.clone()];
        store
            .record_run_finished(&succeeded("wa", "r1", all()))
            .await
            .unwrap();

        // r2 says the same of a and b, something else of c: only c is written.
        clock.advance(Duration::from_secs(60));
        let t2 = clock.now();
        let r2 = store
            .record_run_finished(&succeeded("wa", "r2", vec![a.clone(), b.clone(), c2]))
            .await
            .unwrap();
        assert_eq!((r2.findings, r2.new, r2.resolved), (3, 0, 0));
        assert_eq!(
            row_of(&store, "a").await.0,
            "r1",
            "a's row is not rewritten"
        );
        assert_eq!(row_of(&store, "c").await.0, "r2", "c's row is");
        for f in every_finding(&store, 10).await.items {
            assert_eq!((f.last_seen, f.last_run.as_str()), (t2, "r2"));
        }

        // r3 reports a only: b and c are resolved, last seen by r2.
        clock.advance(Duration::from_secs(60));
        let t3 = clock.now();
        let r3 = store
            .record_run_finished(&succeeded("wa", "r3", vec![a.clone()]))
            .await
            .unwrap();
        assert_eq!(r3.resolved, 2);
        // A failed run sees nothing: it moves no finding's last-seen time.
        clock.advance(Duration::from_secs(60));
        store
            .record_run_finished(&failed("wa", "r4"))
            .await
            .unwrap();
        for f in every_finding(&store, 10).await.items {
            let name = f.finding.resource.as_ref().unwrap().name.clone();
            let want = match name.as_str() {
                "a" => (t3, "r3", None),
                _ => (t2, "r2", Some(t3)),
            };
            assert_eq!(
                (f.last_seen, f.last_run.as_str(), f.resolved_at),
                want,
                "{name}"
            );
        }

        // Rows from before contents were kept (migration 5) are rewritten by
        // their next report, and read as they were stored until then.
        sqlx::query("UPDATE findings SET content = NULL")
            .execute(&store.writer)
            .await
            .unwrap();
        sqlx::query("UPDATE probes SET seen_at = NULL, seen_run = NULL")
            .execute(&store.writer)
            .await
            .unwrap();
        let page = every_finding(&store, 10).await;
        let a_seen = page
            .items
            .iter()
            .find(|f| f.finding.resource.as_ref().unwrap().name == "a")
            .unwrap();
        assert_eq!(a_seen.last_run, "r1", "a's own row, from r1");
        clock.advance(Duration::from_secs(60));
        store
            .record_run_finished(&succeeded("wa", "r5", vec![a.clone()]))
            .await
            .unwrap();
        assert_eq!(row_of(&store, "a").await, ("r5".into(), true, None));
        assert_eq!(
            row_of(&store, "b").await.0,
            "r2",
            "resolved rows keep their run"
        );

        // The open findings are read from the probe index, no row visited.
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            super::OPEN_FINDINGS
        )))
        .bind("wa")
        .bind(3)
        .fetch_all(&store.writer)
        .await
        .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.3.contains("COVERING INDEX findings_by_probe")),
            "{plan:?}"
        );
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

    #[tokio::test]
    async fn same_identity_but_different_messages_are_different_findings() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let cluster = |msg: &str| crate::bindings::Finding {
            rule: "Saw".into(),
            severity: Severity::Info,
            resource: None,
            message: msg.into(),
            remedy: None,
            labels: Vec::new(),
        };
        let run = |id: &str, msgs: &[&str]| {
            succeeded("hostile", id, msgs.iter().map(|m| cluster(m)).collect())
        };
        let ingest = store
            .record_run_finished(&run("r1", &["dns: denied", "etcd: denied", "dns: denied"]))
            .await
            .unwrap();
        assert_eq!(
            (ingest.findings, ingest.new),
            (2, 2),
            "two claims, one said twice"
        );
        // The same two again, in the other order: both persist.
        let ingest = store
            .record_run_finished(&run("r2", &["etcd: denied", "dns: denied"]))
            .await
            .unwrap();
        assert_eq!((ingest.findings, ingest.new, ingest.resolved), (2, 0, 0));
        let page = store
            .findings(&FindingFilter::default(), 10, None)
            .await
            .unwrap();
        let mut msgs: Vec<_> = page
            .items
            .iter()
            .map(|f| f.finding.message.as_str())
            .collect();
        msgs.sort();
        assert_eq!(msgs, ["dns: denied", "etcd: denied"]);
    }

    #[test]
    fn statements_cover_a_run_with_few_texts_within_the_parameter_limit() {
        use super::{PARAMS_PER_ROW, ROWS_PER_STATEMENT, SHARED_PARAMS, Update, upsert_sql};
        for n in [0, 1, 2, 3, 17, 1023, 1024, 1025, 2 * 1024 + 300, 100_000] {
            let sizes: Vec<usize> = super::statement_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
            assert!(
                sizes
                    .iter()
                    .all(|s| s.is_power_of_two() && *s <= ROWS_PER_STATEMENT)
            );
            // Full statements, then at most one of each smaller size.
            let rest: Vec<_> = sizes.iter().filter(|&&s| s < ROWS_PER_STATEMENT).collect();
            assert!(rest.windows(2).all(|w| w[0] > w[1]), "{n}: {sizes:?}");
        }
        for update in [Update::Touch, Update::Full] {
            let sql = upsert_sql(ROWS_PER_STATEMENT, update);
            let params = sql.matches('?').count();
            assert_eq!(params, SHARED_PARAMS + ROWS_PER_STATEMENT * PARAMS_PER_ROW);
            assert!(params <= super::dialect::MAX_BIND_PARAMS);
            assert!(
                std::ptr::eq(sql, upsert_sql(ROWS_PER_STATEMENT, update)),
                "the same text each time, so the prepared statement is reused"
            );
            assert_eq!(
                upsert_sql(1, update).matches('?').count(),
                SHARED_PARAMS + PARAMS_PER_ROW
            );
        }
    }

    #[tokio::test]
    async fn a_run_spanning_statements_touches_reopens_and_rescores_the_right_findings() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = open(dir.path()).await;
        let rows = super::ROWS_PER_STATEMENT;
        // Three full statements and the rest in smaller ones: more parameters
        // than one statement may bind.
        let n = rows * 3 + 300;
        assert!(n * super::PARAMS_PER_ROW > super::super::dialect::MAX_BIND_PARAMS);
        let pod = |i: usize| finding("R", Severity::Low, "ns", &format!("pod-{i}"), None);
        let r1 = store
            .record_run_finished(&succeeded("wa", "r1", (0..n).map(pod).collect()))
            .await
            .unwrap();
        assert_eq!((r1.findings, r1.new, r1.resolved), (n as u64, n as u64, 0));
        clock.advance(Duration::from_secs(60));
        let r2 = store
            .record_run_finished(&succeeded("wa", "r2", (0..n - 10).map(pod).collect()))
            .await
            .unwrap();
        assert_eq!((r2.findings, r2.new, r2.resolved), ((n - 10) as u64, 0, 10));

        // Run 3: the 10 fixed ones come back, 5 are new, one finding in each
        // statement gets a new severity, and every message changes.
        clock.advance(Duration::from_secs(60));
        let t3 = clock.now();
        let rescored = [0, rows + 1, 2 * rows + 5, 3 * rows + 299];
        let third: Vec<_> = (0..n + 5)
            .map(|i| {
                let mut f = pod(i);
                f.message = format!("again {i}");
                if rescored.contains(&i) {
                    f.severity = Severity::High;
                }
                f
            })
            .collect();
        let r3 = store
            .record_run_finished(&succeeded("wa", "r3", third))
            .await
            .unwrap();
        assert_eq!((r3.findings, r3.new, r3.resolved), ((n + 5) as u64, 5, 0));

        let count = |filter: FindingFilter| {
            let store = store.clone();
            async move { store.count_findings(&filter).await.unwrap() }
        };
        assert_eq!(count(FindingFilter::default()).await, (n + 5) as u64);
        assert_eq!(
            count(FindingFilter {
                status: FindingStatus::New { since: t3 },
                ..Default::default()
            })
            .await,
            15,
            "5 new and 10 reopened"
        );
        assert_eq!(
            count(FindingFilter {
                severities: vec![Severity::High],
                ..Default::default()
            })
            .await,
            4
        );
        assert_eq!(
            count(FindingFilter {
                text: Some("again".into()),
                ..Default::default()
            })
            .await,
            (n + 5) as u64,
            "every finding holds the latest report"
        );
        let mut after = None;
        let mut seen = 0;
        loop {
            let page = store
                .findings(
                    &FindingFilter::default(),
                    super::super::MAX_PAGE,
                    after.as_deref(),
                )
                .await
                .unwrap();
            for f in &page.items {
                assert_eq!((f.last_run.as_str(), f.last_seen), ("r3", t3));
                assert_eq!(f.resolved_at, None);
            }
            seen += page.items.len();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, n + 5);
        assert_eq!(
            store.integrity_check().await.unwrap(),
            "ok",
            "indexes match the rows"
        );
    }

    #[tokio::test]
    async fn duplicates_in_a_run_count_once_and_keep_the_last_report_in_the_first_place() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let web = finding("R", Severity::Low, "ns", "web", Some("app"));
        let db = finding("R", Severity::Low, "ns", "db", Some("app"));
        let mut web_again = web.clone();
        // The same claim again (same message), now at another severity.
        web_again.severity = Severity::High;
        let ingest = store
            .record_run_finished(&succeeded(
                "wa",
                "r1",
                vec![web.clone(), db.clone(), web_again],
            ))
            .await
            .unwrap();
        assert_eq!((ingest.findings, ingest.new), (2, 2));
        assert_eq!(store.run("r1").await.unwrap().unwrap().findings_count, 2);
        let all = store
            .findings(&FindingFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        let by_name = |name: &str| {
            all.iter()
                .find(|f| f.finding.resource.as_ref().unwrap().name == name)
                .unwrap()
                .clone()
        };
        let (w, d) = (by_name("web"), by_name("db"));
        assert_eq!(w.finding.severity, Severity::High);
        assert!(w.id < d.id, "where it was first reported");

        // Next run: reported twice again, the second time with a volatile
        // label only, and a lower severity: still the same finding.
        let mut timed = web.clone();
        timed.labels.push(("time".into(), "12:00".into()));
        let ingest = store
            .record_run_finished(&succeeded("wa", "r2", vec![db.clone(), timed, db]))
            .await
            .unwrap();
        assert_eq!((ingest.findings, ingest.new, ingest.resolved), (2, 0, 0));
        let all = store
            .findings(&FindingFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        let w = all
            .iter()
            .find(|f| f.finding.resource.as_ref().unwrap().name == "web")
            .unwrap();
        assert_eq!(w.finding.severity, Severity::Low);
        assert!(w.finding.labels.iter().any(|(k, _)| k == "time"));
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn migration_3_keeps_stored_findings_their_identity_and_makes_them_searchable() {
        use sqlx::Row;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sonde.db");
        // A store as migrations 1 and 2 left it, with findings written the old
        // way: identity and fingerprint as hex text.
        let pool = super::dialect::connect(&path, 1).await.unwrap();
        let mut before = sqlx::migrate!();
        before.migrations = before
            .migrations
            .iter()
            .filter(|m| m.version < 3)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        before.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO probes (name, origin, created_at, updated_at) VALUES ('wa', 'builtin', 1, 1)")
            .execute(&pool)
            .await
            .unwrap();
        let open_one = finding("NoLimits", Severity::High, "shop", "web", Some("app"));
        let mut fixed = finding("Latest", Severity::Low, "shop", "db", None);
        fixed.message = "Uses the LATEST tag: pin it".into();
        for (id, f, resolved) in [(7_i64, &open_one, None), (9, &fixed, Some(3_i64))] {
            let (identity, fingerprint) = super::identity_of("wa", f);
            let r = f.resource.as_ref().unwrap();
            sqlx::query(
                "INSERT INTO findings (id, identity, probe, rule, severity, api_version, kind, \
                 namespace, name, fingerprint, message, remedy, labels, first_seen, opened_at, \
                 last_seen, first_run, last_run, resolved_at) \
                 VALUES ($1, $2, 'wa', $3, $4, $5, $6, $7, $8, $9, $10, $11, '[]', 1, 1, 2, 'r0', 'r0', $12)",
            )
            .bind(id)
            .bind(identity)
            .bind(&f.rule)
            .bind(i64::from(f.severity.rank()))
            .bind(&r.api_version)
            .bind(&r.kind)
            .bind(r.namespace.as_deref().unwrap())
            .bind(&r.name)
            .bind(fingerprint)
            .bind(&f.message)
            .bind(&f.remedy)
            .bind(resolved)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let (store, _) = open(dir.path()).await;
        let all = every_finding(&store, 10).await.items;
        let ids: Vec<i64> = all.iter().map(|f| f.id).collect();
        assert_eq!(ids, [7, 9], "same ids, most severe first");
        assert_eq!(all[1].finding.message, fixed.message);
        assert_eq!(all[1].resolved_at.map(|t| t.as_millisecond()), Some(3));
        let stored = sqlx::query("SELECT identity, fingerprint FROM findings WHERE id = 7")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        let (identity, fingerprint) = super::identity_of("wa", &open_one);
        assert_eq!(hex::encode(stored.get::<Vec<u8>, _>(0)), identity);
        assert_eq!(hex::encode(stored.get::<Vec<u8>, _>(1)), fingerprint);
        // Old messages are in the text index.
        let text = |t: &str| FindingFilter {
            status: FindingStatus::All,
            text: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(store.count_findings(&text("latest TAG")).await.unwrap(), 1);
        assert_eq!(
            store
                .findings(&text("latest TAG"), 10, None)
                .await
                .unwrap()
                .items[0]
                .id,
            9
        );
        // The next run finds both by their identity: one persists, one is back.
        let ingest = store
            .record_run_finished(&succeeded("wa", "r1", vec![open_one, fixed]))
            .await
            .unwrap();
        assert_eq!((ingest.findings, ingest.new, ingest.resolved), (2, 0, 0));
        assert_eq!(
            store
                .count_findings(&FindingFilter::default())
                .await
                .unwrap(),
            2
        );
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn the_text_filter_matches_as_the_scan_does_whichever_way_it_looks() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        let messages = [
            "Mixed CASE and \"quotes\" and 50% off",
            "ünïcödé Straße",
            "short",
            "ab",
        ];
        let fs: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut f = finding("R", Severity::Low, "ns", &format!("p{i}"), None);
                f.message = (*m).into();
                f
            })
            .collect();
        store
            .record_run_finished(&succeeded("wa", "r1", fs))
            .await
            .unwrap();
        for (needle, matches) in [
            ("case AND", 1),
            ("\"quotes\"", 1),
            ("0% o", 1),
            ("50_", 0),
            ("ünïc", 1),
            ("ÜNÏC", 0), // ASCII case only, as LIKE
            ("STRAßE", 1),
            ("b", 1),
            ("ort", 1),
            ("shorter", 0),
            ("s", 3),
        ] {
            let filter = FindingFilter {
                text: Some(needle.into()),
                ..Default::default()
            };
            let page = store.findings(&filter, 10, None).await.unwrap();
            assert_eq!(page.items.len(), matches, "{needle:?}");
            assert_eq!(
                store.count_findings(&filter).await.unwrap(),
                matches as u64,
                "{needle:?}"
            );
        }
        // A message that changes is searched by its new text only.
        let mut f = finding("R", Severity::Low, "ns", "p2", None);
        f.message = "renamed".into();
        store
            .record_run_finished(&succeeded("wa", "r2", vec![f]))
            .await
            .unwrap();
        let by = |t: &str| FindingFilter {
            status: FindingStatus::All,
            text: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(store.count_findings(&by("short")).await.unwrap(), 0);
        assert_eq!(store.count_findings(&by("renamed")).await.unwrap(), 1);
    }

    #[test]
    fn identities_are_those_the_store_has_always_written() {
        // Stored rows are matched by identity: it must never change.
        let f = finding("NoLimits", Severity::High, "shop", "web", Some("app"));
        let (identity, fingerprint) = super::identity_of("wa", &f);
        let digest = |parts: &[&str]| {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for p in parts {
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            hex::encode(&h.finalize()[..16])
        };
        assert_eq!(fingerprint, digest(&["container", "app"]));
        assert_eq!(
            identity,
            digest(&["wa", "NoLimits", "v1", "Pod", "shop", "web", &fingerprint])
        );
    }
}
