//! The gateway's durable journal: every event it publishes, with its sequence, in its own
//! SQLite file, so a restarted gateway continues the same stream (sequences go on, `after=N`
//! still works) and a laptop that slept resumes without loss. The stream identity is made
//! once, when the file is created: it changes only when the journal is wiped.
//!
//! Retention is by count and by age; a client that asks for what is gone gets the
//! protocol's gap notice (`Read::Gap`). The newest frames are also kept in memory
//! ([`RECENT_FRAMES`]): consoles that follow the stream, however many, read those without
//! touching SQLite (one connection would serialize them), and only a console catching up
//! from further back reads the file. Idempotency keys and their first answers are kept
//! here too, so a request retried after a gateway restart still gets the first answer.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::watch;

pub use firebreak_server::Read;

/// How much of the stream is kept for clients that resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub count: u64,
    pub age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            count: 1_000_000,
            age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

use firebreak_protocol::actions::Action;
pub use firebreak_server::actions::Answer;

/// The most idempotency answers kept; the oldest go first.
pub const MAX_ANSWERS: i64 = 100_000;

/// Frames kept in memory for subscribers that follow the head (about 35 MiB of
/// `service.metrics`; a minute of a busy cluster).
pub const RECENT_FRAMES: usize = 100_000;

pub struct DurableJournal {
    pool: SqlitePool,
    /// The newest frames, in order, shared with every reader (cloning one is a reference
    /// count). Only ever frames already committed.
    recent: std::sync::RwLock<std::collections::VecDeque<(u64, axum::extract::ws::Utf8Bytes)>>,
    recent_frames: usize,
    head: watch::Sender<u64>,
    /// The oldest retained sequence (head + 1 when none).
    first: AtomicU64,
    stream_id: String,
    retention: Retention,
}

/// A service discovery announced: (name, source in words, regions).
pub type Known = (String, String, Vec<String>);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
    seq   INTEGER PRIMARY KEY CHECK (seq >= 1),
    at_ms INTEGER NOT NULL,
    frame TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_by_time ON frames (at_ms);
-- The sequence a wiped-by-retention journal has reached, so it never starts over.
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
-- Events published under a stable id (an Alertmanager alert's notification): a second
-- notification of the same alert is not a second event.
CREATE TABLE IF NOT EXISTS published (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS answers (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);
-- Actions the gateway accepted, with the idempotency key they were accepted under: a
-- retry after a crash between accepting and answering gets this action, not a second one.
CREATE TABLE IF NOT EXISTS actions (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    service     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    final       INTEGER NOT NULL DEFAULT 0,
    body        TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_by_service ON actions (service, at_ms);
-- Alerts published as firing and not yet as resolved (the webhook's alert, as JSON): an
-- alert that resolved while the gateway was not listening is found missing at catch-up.
-- Services the gateway's discovery found and announced (service.discovered) and has not
-- retired since: after a restart it announces only what changed meanwhile.
CREATE TABLE IF NOT EXISTS discovered (
    name    TEXT PRIMARY KEY,
    source  TEXT NOT NULL,
    regions TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS firing_alerts (
    fingerprint TEXT PRIMARY KEY,
    alert       TEXT NOT NULL
) WITHOUT ROWID;
";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl DurableJournal {
    /// Opens (creating if absent) the journal at `path`.
    pub async fn open(path: &Path, retention: Retention) -> anyhow::Result<DurableJournal> {
        Self::open_with(path, retention, RECENT_FRAMES).await
    }

    /// [`DurableJournal::open`], keeping `recent_frames` of the newest frames in memory
    /// (0: every read goes to the file; the benchmark's baseline).
    pub async fn open_with(
        path: &Path,
        retention: Retention,
        recent_frames: usize,
    ) -> anyhow::Result<DurableJournal> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // What the gateway publishes is what every console will record: an fsync per
            // published batch keeps it through a power loss of the gateway's machine.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let fresh = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT OR IGNORE INTO meta (key, value) VALUES ('stream_id', ?)")
            .bind(&fresh)
            .execute(&pool)
            .await?;
        let (stream_id,): (String,) =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'stream_id'")
                .fetch_one(&pool)
                .await?;
        let (head,): (i64,) = sqlx::query_as(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM frames), 0), COALESCE((SELECT seq FROM head), 0))",
        )
        .fetch_one(&pool)
        .await?;
        let (first,): (Option<i64>,) = sqlx::query_as("SELECT MIN(seq) FROM frames")
            .fetch_one(&pool)
            .await?;
        let head = u64::try_from(head).unwrap_or(0);
        let first = first
            .and_then(|f| u64::try_from(f).ok())
            .unwrap_or(head + 1);
        let mut recent = std::collections::VecDeque::with_capacity(recent_frames);
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, frame FROM (SELECT seq, frame FROM frames ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        )
        .bind(i64::try_from(recent_frames).unwrap_or(i64::MAX))
        .fetch_all(&pool)
        .await?;
        for (seq, frame) in rows {
            recent.push_back((u64::try_from(seq).unwrap_or(0), frame.into()));
        }
        Ok(DurableJournal {
            pool,
            recent: std::sync::RwLock::new(recent),
            recent_frames,
            head: watch::channel(head).0,
            first: AtomicU64::new(first),
            stream_id,
            retention,
        })
    }

    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// (head, first retained).
    pub fn bounds(&self) -> (u64, u64) {
        (self.head(), self.first.load(Ordering::Acquire))
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Appends `count` events, each serialized by `make(sequence, i)`, in one transaction
    /// (committed before any reader sees the new head), then applies retention.
    pub async fn publish(
        &self,
        count: usize,
        make: impl FnMut(u64, usize) -> String,
    ) -> anyhow::Result<u64> {
        Ok(self.append(None, None, count, make).await?.0)
    }

    /// Appends the events whose stable ids were never published before (`make(seq, i)`
    /// serializes `ids[i]`'s event); returns how many were new. Checked in the same
    /// transaction, so two deliveries of one notification at once still publish it once.
    pub async fn publish_with_ids(
        &self,
        ids: Vec<String>,
        make: impl FnMut(u64, usize) -> String,
    ) -> anyhow::Result<usize> {
        let count = ids.len();
        Ok(self.append(Some(&ids), None, count, make).await?.1)
    }

    /// The services discovery announced and has not retired.
    pub async fn discovered(&self) -> anyhow::Result<Vec<Known>> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT name, source, regions FROM discovered ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, source, regions)| {
                (
                    name,
                    source,
                    serde_json::from_str(&regions).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Publishes discovery's announcements (`make(seq, i)`) in the same transaction as
    /// what it now knows: `found` (name, source, regions) kept, `retired` forgotten. A
    /// crash between the two cannot announce a service twice or never.
    pub async fn publish_discovery(
        &self,
        found: &[Known],
        retired: &[String],
        count: usize,
        make: impl FnMut(u64, usize) -> String,
    ) -> anyhow::Result<u64> {
        Ok(self
            .append(None, Some((found, retired)), count, make)
            .await?
            .0)
    }

    async fn append(
        &self,
        ids: Option<&[String]>,
        known: Option<(&[Known], &[String])>,
        count: usize,
        mut make: impl FnMut(u64, usize) -> String,
    ) -> anyhow::Result<(u64, usize)> {
        if count == 0 {
            return Ok((self.head(), 0));
        }
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some((found, retired)) = known {
            for (name, source, regions) in found {
                sqlx::query(
                    "INSERT INTO discovered (name, source, regions) VALUES (?, ?, ?) \
                     ON CONFLICT (name) DO UPDATE SET source = excluded.source, regions = excluded.regions",
                )
                .bind(name)
                .bind(source)
                .bind(serde_json::to_string(regions)?)
                .execute(&mut *tx)
                .await?;
            }
            for name in retired {
                sqlx::query("DELETE FROM discovered WHERE name = ?")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Read under the write lock, so two publishers never take the same numbers.
        let (start,): (i64,) = sqlx::query_as("SELECT COALESCE((SELECT seq FROM head), 0)")
            .fetch_one(&mut *tx)
            .await?;
        let mut seq = u64::try_from(start).unwrap_or(0);
        let mut published = 0;
        let mut fresh_frames = Vec::with_capacity(count);
        for i in 0..count {
            if let Some(ids) = ids {
                let fresh = sqlx::query("INSERT OR IGNORE INTO published (id, seq) VALUES (?, ?)")
                    .bind(&ids[i])
                    .bind(seq_i64(seq + 1))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if fresh == 0 {
                    continue;
                }
            }
            seq += 1;
            published += 1;
            let frame = make(seq, i);
            sqlx::query("INSERT INTO frames (seq, at_ms, frame) VALUES (?, ?, ?)")
                .bind(seq_i64(seq))
                .bind(now)
                .bind(&frame)
                .execute(&mut *tx)
                .await?;
            fresh_frames.push((seq, frame));
        }
        if published == 0 {
            tx.commit().await?;
            return Ok((seq, 0));
        }
        sqlx::query("INSERT INTO head (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq")
            .bind(seq_i64(seq))
            .execute(&mut *tx)
            .await?;
        // Retention: past the count, and older than the age; the newest frame always stays.
        let keep_from = seq.saturating_sub(self.retention.count.max(1)) + 1;
        let too_old = now - i64::try_from(self.retention.age.as_millis()).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM frames WHERE seq < ? OR (at_ms < ? AND seq < ?)")
            .bind(seq_i64(keep_from))
            .bind(too_old)
            .bind(seq_i64(seq))
            .execute(&mut *tx)
            .await?;
        let (first,): (Option<i64>,) = sqlx::query_as("SELECT MIN(seq) FROM frames")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        {
            let mut recent = self.recent.write().unwrap_or_else(|e| e.into_inner());
            for (s, f) in fresh_frames {
                recent.push_back((s, f.into()));
            }
            while recent.len() > self.recent_frames {
                recent.pop_front();
            }
        }
        self.first.store(
            first.and_then(|f| u64::try_from(f).ok()).unwrap_or(seq + 1),
            Ordering::Release,
        );
        self.head.send_replace(seq);
        Ok((seq, published))
    }

    /// Up to `max` frames after sequence `after`.
    pub async fn read_after(&self, after: u64, max: usize) -> anyhow::Result<Read> {
        self.read(after, max).await
    }

    async fn read(&self, after: u64, max: usize) -> anyhow::Result<Read> {
        let (head, first) = self.bounds();
        if after.saturating_add(1) < first {
            return Ok(Read::Gap {
                first_available: first,
            });
        }
        if after >= head {
            return Ok(Read::Nothing);
        }
        if let Some(read) = self.read_recent(after, max, first) {
            return Ok(read);
        }
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, frame FROM frames WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(seq_i64(after))
                .bind(i64::try_from(max).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
        // Retention may have moved between the bounds and the read.
        match rows.first() {
            Some((seq, _)) if u64::try_from(*seq).ok() != Some(after + 1) => Ok(Read::Gap {
                first_available: u64::try_from(*seq).unwrap_or(after + 1),
            }),
            None => Ok(Read::Nothing),
            Some(_) => {
                let last = rows
                    .last()
                    .and_then(|(s, _)| u64::try_from(*s).ok())
                    .unwrap_or(after);
                Ok(Read::Frames {
                    frames: rows.into_iter().map(|(_, f)| f.into()).collect(),
                    last,
                })
            }
        }
    }

    /// Frames after `after` from memory, when memory still holds the one right after it.
    fn read_recent(&self, after: u64, max: usize, first: u64) -> Option<Read> {
        let recent = self.recent.read().unwrap_or_else(|e| e.into_inner());
        let oldest = recent.front()?.0;
        let from = after.saturating_add(1).max(first);
        if from < oldest {
            return None;
        }
        let skip = usize::try_from(from - oldest).ok()?;
        let frames: Vec<_> = recent.iter().skip(skip).take(max.max(1)).collect();
        let last = frames.last()?.0;
        if frames.first()?.0 != after.saturating_add(1) {
            // Retention moved past what was asked for.
            return Some(Read::Gap {
                first_available: frames.first()?.0,
            });
        }
        Some(Read::Frames {
            frames: frames.into_iter().map(|(_, f)| f.clone()).collect(),
            last,
        })
    }

    /// The first answer given under an idempotency key, if any.
    pub async fn answer(&self, key: &str) -> anyhow::Result<Option<Answer>> {
        let row: Option<(String, i64, String)> =
            sqlx::query_as("SELECT fingerprint, status, body FROM answers WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(fingerprint, status, body)| Answer {
            fingerprint,
            status: u16::try_from(status).unwrap_or(500),
            body,
        }))
    }

    /// Keeps the first answer under a key; a second answer under the same key is ignored
    /// (the first one stands, as every retry must get it).
    /// Answers are kept as long as the stream's frames (the retention's age), and at most
    /// [`MAX_ANSWERS`] of them: anyone holding a token can make answers (a refused request
    /// is one), and the gateway's disk must not grow with them.
    pub async fn remember(&self, key: &str, answer: &Answer) -> anyhow::Result<()> {
        let now = now_ms();
        let too_old = now - i64::try_from(self.retention.age.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT OR IGNORE INTO answers (key, fingerprint, status, body, at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(key)
        .bind(&answer.fingerprint)
        .bind(i64::from(answer.status))
        .bind(&answer.body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM answers WHERE at_ms < ?1 OR rowid <= (SELECT max(rowid) FROM answers) - ?2",
        )
        .bind(too_old)
        .bind(MAX_ANSWERS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many first answers the journal holds (tests, status).
    pub async fn answers_kept(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM answers")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Records an action as accepted under its idempotency key (see the `actions` table).
    pub async fn save_action(
        &self,
        action: &Action,
        key: &str,
        fingerprint: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO actions (id, key, fingerprint, service, kind, final, body, at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&action.id)
        .bind(key)
        .bind(fingerprint)
        .bind(&action.service)
        .bind(serde_json::to_string(&action.kind)?)
        .bind(action.state.is_final())
        .bind(serde_json::to_string(action)?)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an action's new state.
    pub async fn update_action(&self, action: &Action) -> anyhow::Result<()> {
        sqlx::query("UPDATE actions SET body = ?, final = ? WHERE id = ?")
            .bind(serde_json::to_string(action)?)
            .bind(action.state.is_final())
            .bind(&action.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn action(&self, id: &str) -> anyhow::Result<Option<Action>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT body FROM actions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(b,)| serde_json::from_str(&b).map_err(Into::into))
            .transpose()
    }

    /// Actions not yet succeeded or failed (after a restart: their hooks were stopped).
    pub async fn unfinished_actions(&self) -> anyhow::Result<Vec<Action>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM actions WHERE final = 0 ORDER BY at_ms")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(b,)| serde_json::from_str(&b).map_err(Into::into))
            .collect()
    }

    /// The newest action on a service, of any kind.
    pub async fn last_action_on(&self, service: &str) -> anyhow::Result<Option<Action>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT body FROM actions WHERE service = ? ORDER BY at_ms DESC, rowid DESC LIMIT 1",
        )
        .bind(service)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(b,)| serde_json::from_str(&b).map_err(Into::into))
            .transpose()
    }

    /// Keeps track of which alerts are firing: a firing one is remembered, a resolved one
    /// forgotten.
    pub async fn track_alerts(&self, alerts: &[super::alertmanager::Alert]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for a in alerts.iter().filter(|a| !a.fingerprint.is_empty()) {
            if a.status == "firing" {
                sqlx::query(
                    "INSERT INTO firing_alerts (fingerprint, alert) VALUES (?, ?) \
                     ON CONFLICT (fingerprint) DO UPDATE SET alert = excluded.alert",
                )
                .bind(&a.fingerprint)
                .bind(serde_json::to_string(a)?)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query("DELETE FROM firing_alerts WHERE fingerprint = ?")
                    .bind(&a.fingerprint)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The alerts published as firing and not yet resolved.
    pub async fn firing_alerts(&self) -> anyhow::Result<Vec<super::alertmanager::Alert>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT alert FROM firing_alerts")
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(a,)| serde_json::from_str(&a).map_err(Into::into))
            .collect()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl firebreak_server::actions::Answers for DurableJournal {
    /// The first answer; or, when the gateway stopped after accepting an action and before
    /// storing its answer, that action (202), so the retry does not act a second time.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Answer>> {
        if let Some(a) = self.answer(key).await? {
            return Ok(Some(a));
        }
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT fingerprint, body FROM actions WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(fingerprint, body)| Answer {
            fingerprint,
            status: 202,
            body,
        }))
    }
    async fn put(&self, key: &str, answer: &Answer) -> anyhow::Result<()> {
        self.remember(key, answer).await
    }
}

impl firebreak_server::EventSource for DurableJournal {
    fn bounds(&self) -> (u64, u64) {
        DurableJournal::bounds(self)
    }
    fn stream_id(&self) -> String {
        self.stream_id.clone()
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        DurableJournal::subscribe(self)
    }
    async fn read_after(&self, after: u64, max: usize) -> Read {
        match self.read(after, max).await {
            Ok(read) => read,
            Err(e) => {
                // The stream waits and reads again when the head moves: nothing is skipped.
                tracing::error!(error = %e, after, "cannot read the journal");
                Read::Nothing
            }
        }
    }
}
