//! The daemon's store: probes, runs and their findings in one SQLite file
//! (WAL mode, migrations from `host/migrations/` applied at open). A finding
//! that persists across runs is one row with first/last seen, so "new since
//! yesterday", "fixed" and trends are cheap; an open finding was last seen
//! by its probe's last successful run, so a run writes only the findings it
//! changes (new, reopened, saying something else, resolved). A run and its findings are
//! written in one transaction: a crash loses no committed run and leaves no
//! half-written one. Every SQL statement of the daemon lives here; what only
//! SQLite says this way is in [`dialect`], so PostgreSQL can be added beside it.
//!
//! One process owns a database file: [`Store::open`] marks the runs left
//! queued or running by a previous process as interrupted.

mod collectors;
mod dialect;
mod finding_queries;
mod findings;
mod http_hours;
mod probes;
mod retention;
mod runs;
mod trends;

#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

pub use collectors::{
    AgentRequest, CollectorBatch, CollectorCountRow, CollectorEventRow, CollectorStatusRow,
    HttpRedRow, count_events,
};
pub use dialect::{VacuumAction, VacuumPolicy};
pub use finding_queries::{
    FindingFilter, FindingPage, FindingStatus, MAX_PAGE, RunChanges, StoredFinding,
};
pub use findings::{VOLATILE_LABELS, identity_of};
pub use http_hours::{HOUR_MS, HttpWindow, add_up_hours, hour_of};
pub use probes::{ProbeRecord, ScheduleState};
pub use retention::{Retention, RetentionReport};
pub use runs::{RunIngest, RunPage, RunPhase, RunRecord, Trigger};
pub use trends::{MAX_DAYS as MAX_TREND_DAYS, TrendPoint, TrendQuery};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot apply the store's migrations to {path}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed; `what` says which.
    #[error("store: {what} failed")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A value could not be written as JSON.
    #[error("store: cannot encode {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A value read back is not what the store writes (hand-edited file?).
    #[error("store: corrupt value in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// A caller's argument was out of range or malformed (a bad cursor).
    #[error("store: invalid {what}: {detail}")]
    InvalidInput { what: &'static str, detail: String },
}

/// Names the statement a sqlx error came from.
pub(crate) trait QueryContext<T> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn ctx(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { what, source })
    }
}

/// Where the store reads the time; tests substitute a controllable one.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How to open a store.
#[derive(Clone)]
pub struct OpenOptions {
    /// Connections for reads (the writer has its own single connection).
    pub readers: u32,
    /// The time source; the system clock when `None`.
    pub clock: Option<Clock>,
    /// Whether this process runs probes against the store (the daemon).
    /// Only the owner marks runs left unfinished as interrupted; a node
    /// agent writing collector data into the same file is not the owner.
    pub owner: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            readers: 4,
            clock: None,
            owner: true,
        }
    }
}

/// The store. Cheap to clone: clones share the pools.
#[derive(Clone)]
pub struct Store {
    /// One connection: SQLite has one writer at a time, so writes queue here
    /// rather than on the file lock.
    writer: dialect::Pool,
    /// Readers see the last committed state and never wait for the writer.
    reader: dialect::Pool,
    clock: Clock,
    path: PathBuf,
    /// Moves on before and after every write that may change findings.
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// The sorted matches of recent text searches, per generation.
    searches: Arc<std::sync::Mutex<finding_queries::Searches>>,
}

/// Moves the store's generation on when made and when dropped, around a
/// write that may change findings: a reader that takes the generation and
/// then reads never keeps what it read under a generation that is current
/// after the write committed (as long as nobody read during the write).
struct Changing(Arc<std::sync::atomic::AtomicU64>);

impl Changing {
    fn new(generation: &Arc<std::sync::atomic::AtomicU64>) -> Changing {
        generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Changing(generation.clone())
    }
}

impl Drop for Changing {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it and
    /// marks runs a previous process left unfinished as interrupted.
    pub async fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, OpenOptions::default()).await
    }

    /// [`Store::open`] with options.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: OpenOptions,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let writer = dialect::connect(&path, 1).await.map_err(open_err)?;
        sqlx::migrate!()
            .run(&writer)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.clone(),
                source,
            })?;
        let reader = dialect::connect(&path, options.readers)
            .await
            .map_err(open_err)?;
        let clock = options.clock.unwrap_or_else(|| Arc::new(Timestamp::now));
        let store = Store {
            writer,
            reader,
            clock,
            path,
            generation: Arc::default(),
            searches: Arc::default(),
        };
        let interrupted = if options.owner {
            store.mark_interrupted().await?
        } else {
            0
        };
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "runs left unfinished by the previous process were marked interrupted"
            );
        }
        Ok(store)
    }

    /// Changes whenever this store's findings may have changed (runs
    /// finished, retention): what is derived from them and kept, such as
    /// the API's pages and totals, is valid for one generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks a write that may change findings (see [`Changing`]).
    fn changing(&self) -> Changing {
        Changing::new(&self.generation)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's integrity check: `ok` when the file is sound, else the problems.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        dialect::integrity_check(&self.reader).await
    }

    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.reader)
            .await
            .is_ok()
    }

    /// Closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Now, in the store's unit (milliseconds since the epoch).
    fn now_ms(&self) -> i64 {
        (self.clock)().as_millisecond()
    }
}

/// Milliseconds since the epoch back to a timestamp.
fn timestamp(ms: i64, what: &'static str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt {
        what,
        detail: format!("{ms} is not a time: {e}"),
    })
}

/// A value to JSON text.
fn to_json<T: serde::Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// JSON text back to a value.
fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::test_support::open;

    async fn scalar_text(store: &super::Store, sql: &'static str) -> String {
        sqlx::query_scalar::<_, String>(sql)
            .fetch_one(&store.writer)
            .await
            .expect(sql)
    }

    #[tokio::test]
    async fn migrations_apply_to_an_empty_file_and_set_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path()).await;
        assert!(dir.path().join("sonde.db").exists());
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                "_sqlx_migrations",
                "collector_agents",
                "collector_counts",
                "collector_events",
                "collector_seen",
                "collector_status",
                "findings",
                "findings_text",
                "findings_text_config",
                "findings_text_data",
                "findings_text_docsize",
                "findings_text_idx",
                "http_red",
                "http_red_hours",
                "http_red_minutes_kept",
                "http_red_stale_hours",
                "probes",
                "runs"
            ]
        );
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'collector_events' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap();
        assert_eq!(indexes.len(), 4, "{indexes:?}");
        assert_eq!(scalar_text(&store, "PRAGMA journal_mode").await, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(vacuum, 2, "INCREMENTAL");
        for pool in [&store.writer, &store.reader] {
            let mmap: i64 = sqlx::query_scalar("PRAGMA mmap_size")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(mmap, 1 << 30, "pages are read from a mapping of the file");
        }
        assert_eq!(store.integrity_check().await.unwrap(), "ok");
        store.close().await;

        // Reopening applies nothing twice.
        let (store, _) = open(dir.path()).await;
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .count();
        assert_eq!(applied as usize, files);
    }

    #[tokio::test]
    async fn open_names_the_file_it_cannot_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("sonde.db");
        let err = super::Store::open(&path).await.unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }
}
