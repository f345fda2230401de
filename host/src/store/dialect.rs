//! Everything in the store that only SQLite says this way: connection
//! options and pragmas, the transaction that takes the write lock, the limit
//! on bound parameters and the placeholders of generated statements,
//! case-insensitive search and its trigram index, and how space is reclaimed.
//!
//! The rest of the store writes SQL that PostgreSQL also accepts (`$N`
//! placeholders, `INSERT ... ON CONFLICT (...) DO UPDATE ... excluded.x`,
//! window functions, `WITH RECURSIVE`, integers for times). A PostgreSQL
//! backend replaces this module (and `migrations/`), not the queries.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};

use super::{QueryContext, StoreError};

/// The database the store is written for.
pub type Db = sqlx::Sqlite;
/// One connection to it (a transaction derefs to one).
pub type Conn = sqlx::SqliteConnection;
/// A pool of connections to it.
pub type Pool = sqlx::SqlitePool;

/// Starts a transaction that takes the write lock at once. A deferred
/// transaction that reads and then writes can fail with SQLITE_BUSY without
/// waiting when another connection wrote in between; IMMEDIATE waits on the
/// busy timeout instead.
pub const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Sizes the page cache of the connection ingesting a run (in KiB, 64 MiB).
/// A run's transaction should fit in it (about 400 bytes per new finding,
/// indexes included): past SQLite's default of 2 MiB, it spills dirty pages
/// to the WAL mid-transaction and reads them back, which slows ingest by a
/// third. Pages are allocated as they are used; only the writer sets this.
pub const INGEST_CACHE: &str = "PRAGMA cache_size = -65536";

/// How many parameters one statement may bind (SQLITE_MAX_VARIABLE_NUMBER
/// since SQLite 3.32; PostgreSQL allows 65535).
pub const MAX_BIND_PARAMS: usize = 32_766;

/// Appends the placeholder of a statement's `n`th parameter (from 1), for
/// statements built with their parameters in the order they are bound.
/// SQLite's is a bare `?`: sqlx binds `$N` by looking each name up in the
/// statement, a linear search per parameter, so a statement of thousands of
/// `$N` takes seconds to bind. (PostgreSQL would write `$n`.)
pub fn push_placeholder(sql: &mut String, _n: usize) {
    sql.push('?');
}

/// The head of a query that returns the rows of the query after it as one
/// value, a JSON array of arrays of `columns` (those in `json` are JSON text
/// and go in as JSON, not as strings); [`JSON_ROWS_TAIL`] closes it. A page
/// of rows read this way crosses from the driver's SQLite thread to the
/// caller once, not once per row, and SQLite writes the JSON rather than
/// the driver copying each value. (PostgreSQL: `json_agg(json_build_array(...))`.)
pub fn json_rows_head(columns: &[&str], json: &[&str]) -> String {
    let columns: Vec<String> = columns
        .iter()
        .map(|c| {
            if json.contains(c) {
                format!("json({c})")
            } else {
                (*c).to_string()
            }
        })
        .collect();
    format!(
        "SELECT json_group_array(json_array({})) FROM (",
        columns.join(", ")
    )
}

/// Closes [`json_rows_head`].
pub const JSON_ROWS_TAIL: &str = ")";

/// The head of a subquery of the integers in a JSON array, for a query
/// builder: the array is bound right after it, then `)` closes it
/// (PostgreSQL: `SELECT unnest(` ... `::bigint[]`).
pub fn ids_in_json_bound() -> &'static str {
    "SELECT value FROM json_each("
}

/// A subquery of the byte strings whose hex is in the JSON array bound to
/// `param` (one parameter however many; PostgreSQL would take a `bytea[]`
/// with `SELECT unnest(...)`).
pub fn blobs_in_json(param: &str) -> String {
    format!("SELECT unhex(value) FROM json_each({param})")
}

/// A subquery of the `[text, integer]` pairs in the JSON array bound to
/// `param`, as columns `a` and `b` (PostgreSQL would take two arrays with
/// `SELECT * FROM unnest(...)`).
pub fn pairs_in_json(param: &str) -> String {
    format!("SELECT value ->> 0 AS a, value ->> 1 AS b FROM json_each({param})")
}

/// How much of the database file a connection maps (bytes).
const MMAP_SIZE: &str = "1073741824";

/// How long a connection waits for the write lock held by another one.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a pool on the database file at `path`, creating the file if needed.
pub async fn connect(path: &Path, max_connections: u32) -> Result<Pool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .create_if_missing(true)
        // Must come before the first table exists to take effect; sqlx
        // issues it before journal_mode, as SQLite requires.
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        // Readers never block the writer and the writer never blocks readers;
        // a commit is one append to the WAL file.
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL syncs the WAL at checkpoints, not at every
        // commit. A commit is durable against a crash of the process (kill -9:
        // the WAL is in the OS page cache and is replayed at the next open);
        // only a power loss or OS crash can lose the last commits, and never
        // corrupts the database. FULL would cost an fsync per run.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Statement journals (a multi-row upsert keeps one, to undo itself
        // alone on an error) and temporary b-trees stay in memory instead of
        // spilling to temporary files.
        .pragma("temp_store", "memory")
        // Pages are read from a shared mapping of the file instead of a
        // read() into each connection's own cache: a page of findings read
        // from the store spent a tenth of its CPU copying pages in. Up to
        // 1 GiB of address space per connection, not memory: the kernel's
        // page cache backs it.
        .pragma("mmap_size", MMAP_SIZE)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(1)
        .connect_with(options)
        .await
}

/// Appends `column` contains `needle`, ignoring ASCII case (SQLite's LIKE is
/// case-insensitive for ASCII; PostgreSQL would say ILIKE).
pub fn push_contains_ci(qb: &mut QueryBuilder<Db>, column: &str, needle: &str) {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    qb.push(column)
        .push(" LIKE ")
        .push_bind(pattern)
        .push(" ESCAPE '\\'");
}

/// The text index's query for the messages that may contain `needle`
/// (ignoring case): the trigrams of `needle` at every third character and
/// its last, each quoted, all required. Every message that contains
/// `needle` has them, so the index finds a superset of the matches, which
/// the caller narrows with [`push_contains_ci`]. `None` when the index
/// cannot help (fewer than three characters, or a NUL it would cut at).
pub fn text_index_query(needle: &str) -> Option<String> {
    let chars: Vec<char> = needle.chars().collect();
    if chars.len() < 3 || chars.contains(&'\0') {
        return None;
    }
    let mut starts: Vec<usize> = (0..=chars.len() - 3).step_by(3).collect();
    if starts.last() != Some(&(chars.len() - 3)) {
        starts.push(chars.len() - 3);
    }
    let mut query = String::with_capacity(needle.len() * 2 + 8);
    for (n, start) in starts.into_iter().enumerate() {
        if n > 0 {
            query.push(' ');
        }
        query.push('"');
        for &c in &chars[start..start + 3] {
            if c == '"' {
                query.push('"');
            }
            query.push(c);
        }
        query.push('"');
    }
    Some(query)
}

/// Appends "`id_column` is a row the text index `query` (from
/// [`text_index_query`]) finds".
pub fn push_text_candidates(qb: &mut QueryBuilder<Db>, id_column: &str, query: String) {
    qb.push(id_column)
        .push(" IN (SELECT rowid FROM findings_text WHERE findings_text MATCH ")
        .push_bind(query)
        .push(")");
}

/// How many rows the text index `query` finds, counting no further than `cap`.
pub async fn text_candidates(pool: &Pool, query: &str, cap: i64) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT rowid FROM findings_text \
         WHERE findings_text MATCH $1 LIMIT $2)",
    )
    .bind(query)
    .bind(cap)
    .fetch_one(pool)
    .await
    .ctx("count text candidates")
}

/// Runs SQLite's `PRAGMA integrity_check`; `ok` when the file is sound.
pub async fn integrity_check(pool: &Pool) -> Result<String, StoreError> {
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(pool)
        .await
        .ctx("integrity check")?;
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .ctx("integrity check")?;
    Ok(lines.join("; "))
}

/// When reclaiming free space is worth it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VacuumPolicy {
    /// Reclaim when at least this share of the file's pages is free ...
    pub min_free_fraction: f64,
    /// ... and at least this many pages (4 KiB each by default) are free.
    pub min_free_pages: i64,
}

impl Default for VacuumPolicy {
    fn default() -> Self {
        VacuumPolicy {
            min_free_fraction: 0.25,
            min_free_pages: 1024,
        }
    }
}

/// What reclaiming space did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VacuumAction {
    /// Too little free space to bother.
    None,
    /// `PRAGMA incremental_vacuum` returned this many free pages to the OS.
    Incremental { pages: i64 },
    /// The file was not created with incremental auto-vacuum: a full VACUUM
    /// rewrote it.
    Full { pages: i64 },
}

/// Gives free pages back to the file system when `policy` says so.
pub async fn reclaim_space(pool: &Pool, policy: VacuumPolicy) -> Result<VacuumAction, StoreError> {
    let pages: i64 = pragma_int(pool, "PRAGMA page_count").await?;
    let free: i64 = pragma_int(pool, "PRAGMA freelist_count").await?;
    if free < policy.min_free_pages || (free as f64) < policy.min_free_fraction * pages as f64 {
        return Ok(VacuumAction::None);
    }
    // 2 = INCREMENTAL: set at creation by `connect`.
    let action = if pragma_int(pool, "PRAGMA auto_vacuum").await? == 2 {
        sqlx::query("PRAGMA incremental_vacuum")
            .execute(pool)
            .await
            .ctx("incremental vacuum")?;
        VacuumAction::Incremental { pages: free }
    } else {
        sqlx::query("VACUUM").execute(pool).await.ctx("vacuum")?;
        VacuumAction::Full { pages: free }
    };
    // The freed pages went through the WAL; fold it back and truncate it.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .ctx("checkpoint")?;
    Ok(action)
}

async fn pragma_int(pool: &Pool, pragma: &'static str) -> Result<i64, StoreError> {
    sqlx::query_scalar::<_, i64>(pragma)
        .fetch_one(pool)
        .await
        .ctx(pragma)
}
