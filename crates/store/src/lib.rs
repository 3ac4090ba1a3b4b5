//! The local store: one SQLite file in the data dir.
//!
//! # Connection recipe
//! - **One writer.** Every write goes through `write`, a pool of exactly one connection,
//!   inside `BEGIN IMMEDIATE` so a writer takes the lock up front instead of failing with
//!   SQLITE_BUSY half-way through. Reads use a separate read-only pool and never block it
//!   (WAL lets readers and the writer run side by side).
//! - **WAL, set explicitly**: sqlx does not set a journal mode.
//! - **synchronous = FULL**: with WAL, NORMAL already survives a process crash, but an
//!   on-call laptop's battery can die mid-incident, and FULL keeps the last commits
//!   through a power loss. Writes are batched, so the extra fsync per commit is paid per
//!   batch, not per row.
//! - **foreign_keys on**, **busy_timeout 5 s**.
//! - **Never touch what we cannot own.** Before anything is written, a read-only
//!   connection checks the file: not a database, another program's database, or a
//!   database from a newer Firebreak each give a clear error and leave the file as it was.

pub mod actions;
pub mod audit;
pub mod bench;
pub mod bundle;
pub mod changes;
mod checkpoint;
mod clusters;
pub mod feed;
pub mod fleet;
pub mod guards;
pub mod incident;
mod incidents;
pub mod ingest;
pub mod objectives;
pub mod paths;
pub mod review;
pub mod rollouts;
pub mod runbook_step;
pub mod runs;
mod settings;
pub mod signals;
pub mod team;

pub use clusters::{Cluster, NewCluster};
pub use incidents::{Finding, MAX_BULK_PAGE};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, SqliteConnection, SqlitePool};

/// The schema, from `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The writer connection's settings (see the recipe above), shared with the ingest
/// benchmark's yardstick so that both measure the same SQLite.
pub const WRITER_PRAGMAS: &[(&str, &str)] = &[
    ("journal_mode", "WAL"),
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    ("cache_size", "-32768"),
    ("temp_store", "MEMORY"),
];
const READ_CONNECTIONS: u32 = 4;

/// What can go wrong in the store, by what a caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {reason}")]
    Unopenable { path: PathBuf, reason: String },
    #[error(
        "the database {path} was written by a newer Firebreak (schema version {found}; this build \
         knows up to {known}). It was left untouched: update Firebreak, or choose another --data-dir"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("{path} is not a Firebreak database ({reason}). It was left untouched")]
    Foreign { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("refused by the store: {0}")]
    Constraint(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // SQLite's extended result codes keep the primary code in the low byte;
            // 19 is SQLITE_CONSTRAINT (unique, check, foreign key, NOT NULL, trigger RAISE).
            let constraint = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .is_some_and(|c| c & 0xff == 19);
            if constraint {
                return StoreError::Constraint(db.message().to_owned());
            }
        }
        if let sqlx::Error::RowNotFound = e {
            return StoreError::NotFound { what: "row".into() };
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    /// Whether the store refused this because of the data itself (a CHECK, a unique key,
    /// a value it cannot take), so the same data will be refused again. Everything else
    /// (disk full, I/O error, locked past the timeout) is about the store, and may pass later.
    pub fn is_about_data(&self) -> bool {
        match self {
            StoreError::Constraint(_) | StoreError::Invalid(_) => true,
            StoreError::Database(sqlx::Error::Database(db)) => {
                // SQLITE_TOOBIG (18), SQLITE_MISMATCH (20), SQLITE_RANGE (25).
                db.code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 18 | 20 | 25))
            }
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Firebreak's SQLite store. Cheap to clone: both pools are shared handles.
#[derive(Clone, Debug)]
pub struct Store {
    read: SqlitePool,
    write: SqlitePool,
    checkpointer: std::sync::Arc<checkpoint::Checkpointer>,
    /// Signalled after a transaction that queued records for the team commits.
    outbox: std::sync::Arc<tokio::sync::Notify>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if absent) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let unopenable = |reason: String| StoreError::Unopenable {
            path: path.to_owned(),
            reason,
        };
        if path.exists() {
            check_existing(path).await?;
        } else if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| unopenable(format!("cannot create {}: {e}", parent.display())))?;
        }

        let base = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|e| unopenable(e.to_string()))?
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        let outbox = std::sync::Arc::new(tokio::sync::Notify::new());
        let queued = outbox.clone();
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Whatever code path changed a shared incident, its transaction queued records
            // in team_outbox (migration 0011's triggers): the writer tells the team sync
            // when such a transaction commits, so it pushes at once rather than at its
            // next look.
            .after_connect(move |conn, _| {
                let queued = queued.clone();
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    let dirty = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let seen = dirty.clone();
                    handle.set_update_hook(move |change| {
                        if change.table == "team_outbox"
                            && matches!(change.operation, sqlx::sqlite::SqliteOperation::Insert)
                        {
                            seen.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                    });
                    let undone = dirty.clone();
                    handle.set_rollback_hook(move || {
                        undone.store(false, std::sync::atomic::Ordering::Relaxed);
                    });
                    handle.set_commit_hook(move || {
                        if dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
                            queued.notify_one();
                        }
                        true
                    });
                    Ok(())
                })
            })
            // A failed COMMIT or ROLLBACK (disk full, I/O error) can leave sqlx believing the
            // connection is still inside a transaction, and every later BEGIN then fails.
            // The ping runs after any rollback still queued on the connection; a connection
            // that is still in a transaction after it is closed and replaced.
            .before_acquire(|conn, _| {
                Box::pin(async move {
                    conn.ping().await?;
                    if conn.is_in_transaction() {
                        tracing::warn!(
                            "the writer's connection was left inside a transaction; reopening it"
                        );
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
            .connect_with(
                WRITER_PRAGMAS
                    .iter()
                    .fold(base.clone().create_if_missing(true), |o, (k, v)| {
                        o.pragma(*k, *v)
                    })
                    // Checkpoints run on a connection of their own (checkpoint.rs).
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await
            .map_err(|e| unopenable(e.to_string()))?;
        MIGRATOR.run(&write).await?;

        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(base.clone().read_only(true))
            .await
            .map_err(|e| unopenable(e.to_string()))?;

        let checkpointer = checkpoint::Checkpointer::start(&base)
            .await
            .map_err(|e| unopenable(e.to_string()))?;

        tracing::info!(path = %path.display(), "store open");
        Ok(Store {
            read,
            write,
            checkpointer: std::sync::Arc::new(checkpointer),
            outbox,
            path: path.to_owned(),
        })
    }

    /// Notified when a transaction that queued records for the team commits. The
    /// notification comes from inside the commit: [`Store::writes_done`] waits for it to
    /// be visible.
    pub fn outbox_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox.clone()
    }

    /// Returns once the transaction on the writer now (if any) has ended: the single
    /// writer connection is handed out only after its commit or rollback.
    pub async fn writes_done(&self) -> Result<()> {
        drop(self.write.acquire().await?);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a write transaction on the single writer, holding the write lock from the start.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// `PRAGMA integrity_check`, for crash tests and `firebreak doctor`-style checks.
    pub async fn integrity_check(&self) -> Result<String> {
        let (verdict,): (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(&self.read)
            .await?;
        Ok(verdict)
    }

    /// The newest schema version applied to this database.
    pub async fn schema_version(&self) -> Result<i64> {
        let (v,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.read)
                .await?;
        Ok(v)
    }

    /// Closes the store's connections, the writer last: the last connection to close
    /// checkpoints the write-ahead log into the database file and removes it, which a
    /// read-only one cannot do.
    pub async fn close(&self) {
        self.read.close().await;
        self.checkpointer.stop().await;
        self.write.close().await;
    }
}

/// The newest migration this build knows.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Looks at an existing file through a read-only connection and refuses what we must not
/// touch. Nothing here can write: the connection is opened read-only.
async fn check_existing(path: &Path) -> Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Unopenable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let result = inspect(&mut conn, path).await;
    let _ = conn.close().await;
    result
}

async fn inspect(conn: &mut SqliteConnection, path: &Path) -> Result<()> {
    let foreign = |reason: String| StoreError::Foreign {
        path: path.to_owned(),
        reason,
    };
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| foreign(e.to_string()))?;
    if tables.is_empty() {
        return Ok(()); // an empty database: ours to initialise
    }
    if !tables.iter().any(|(t,)| t == "_sqlx_migrations") {
        return Err(foreign(
            "it has tables but no Firebreak schema history".into(),
        ));
    }
    let (found,): (i64,) =
        sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    let known = known_schema_version();
    if found > known {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    Ok(())
}

/// Milliseconds since the Unix epoch by the console's clock, the store's one time unit.
pub fn now_ms() -> i64 {
    firebreak_common::clock::now_ms()
}
