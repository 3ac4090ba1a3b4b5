//! Reading the recorded stream: the live event feed (filtered, searched, paged by key),
//! one event's raw text, the search index that trails ingest, and the diagnostics view.

use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite};
use ts_rs::TS;

use super::{Result, Store};
use firebreak_protocol::events::EventType;
use firebreak_protocol::text::describe;

/// The most rows one feed page returns.
pub const MAX_PAGE: i64 = 500;

/// One row of the event feed.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    pub seq: i64,
    pub cluster: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub subject: Option<String>,
    pub service: Option<String>,
    pub severity: Option<String>,
    pub time_ms: i64,
    /// A one-line description of what the event says.
    pub summary: String,
}

/// What the feed shows; every field narrows it, `None` (or empty) leaves it open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FeedFilter {
    #[ts(optional)]
    pub cluster_id: Option<i64>,
    #[ts(optional)]
    pub service: Option<String>,
    #[serde(rename = "type")]
    #[ts(optional)]
    pub ty: Option<String>,
    #[ts(optional)]
    pub severity: Option<String>,
    /// Free text, matched as word prefixes against type, subject, service and the event's
    /// text fields (all words must match).
    #[ts(optional)]
    pub text: Option<String>,
}

/// Which page: newest first, older than `before`, or newer than `after`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FeedPageRequest {
    #[ts(optional)]
    pub before: Option<i64>,
    #[ts(optional)]
    pub after: Option<i64>,
    pub limit: i64,
}

/// A page of the feed, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// Events recorded but not yet in the search index (text searches cannot find them yet).
    pub unsearchable: i64,
}

/// One event as received, for the raw view.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RawEvent {
    pub seq: i64,
    pub cluster: String,
    pub received_ms: i64,
    /// The CloudEvent as JSON text, indented; shown as text, never as markup.
    pub text: String,
}

/// A frame that was refused, as the diagnostics view lists it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct QuarantinedFrame {
    pub id: i64,
    pub cluster: String,
    pub received_ms: i64,
    pub reason: String,
    /// The frame's full length; `preview` holds its first bytes (invalid UTF-8 replaced).
    pub raw_len: i64,
    pub preview: String,
    /// How often it came (a stream replays what follows its cursor after a reconnect).
    pub times: i64,
    /// When it last came.
    pub last_ms: i64,
}

/// A range of a stream the server could no longer send.
#[derive(Debug, Clone, PartialEq, Serialize, TS, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct StreamGap {
    pub id: i64,
    pub cluster: String,
    pub from_sequence: i64,
    pub to_sequence: i64,
    pub detected_ms: i64,
}

/// The diagnostics view: what the store refused or missed, and how big it is.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    pub events: i64,
    /// Distinct bad frames kept.
    pub quarantined: i64,
    /// How often bad frames came, all told.
    pub quarantine_arrivals: i64,
    /// The newest refused frames (at most 200).
    pub quarantine: Vec<QuarantinedFrame>,
    pub gaps: Vec<StreamGap>,
    pub unsearchable: i64,
    /// Bytes on disk: the database file and its write-ahead log.
    pub database_bytes: i64,
    pub wal_bytes: i64,
    pub database_path: String,
}

/// (id, cluster, received, reason, length, first bytes, times, last) of a quarantined frame.
type QuarantineRow = (i64, String, i64, String, i64, Vec<u8>, i64, i64);

type FeedRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    String,
);

/// Turns what the engineer typed into an FTS5 query that cannot be a syntax error:
/// every word quoted (quotes doubled) as a prefix, all of them required.
pub fn search_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Store {
    /// A page of the event feed, newest first, by key (never by offset).
    pub async fn feed(&self, filter: &FeedFilter, page: FeedPageRequest) -> Result<FeedPage> {
        let limit = page.limit.clamp(1, MAX_PAGE);
        let text = nonempty(&filter.text).and_then(search_query);
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT e.seq, c.name, e.type, e.subject, e.service, e.severity, e.time_ms, e.raw ",
        );
        if let Some(text) = &text {
            // Driven by the index, newest match first, so a common word stays cheap.
            q.push("FROM events_search s JOIN events e ON e.seq = s.rowid ")
                .push("JOIN clusters c ON c.id = e.cluster_id WHERE events_search MATCH ")
                .push_bind(text.clone());
        } else {
            q.push("FROM events e JOIN clusters c ON c.id = e.cluster_id WHERE 1 = 1");
        }
        if let Some(id) = filter.cluster_id {
            q.push(" AND e.cluster_id = ").push_bind(id);
        }
        if let Some(service) = nonempty(&filter.service) {
            q.push(" AND e.service = ").push_bind(service.to_owned());
        }
        if let Some(ty) = nonempty(&filter.ty) {
            q.push(" AND e.type = ").push_bind(ty.to_owned());
        }
        if let Some(severity) = nonempty(&filter.severity) {
            q.push(" AND e.severity = ").push_bind(severity.to_owned());
        }
        if let Some(before) = page.before {
            q.push(" AND e.seq < ").push_bind(before);
        }
        if let Some(after) = page.after {
            q.push(" AND e.seq > ").push_bind(after);
        }
        q.push(if text.is_some() {
            " ORDER BY s.rowid DESC LIMIT "
        } else {
            " ORDER BY e.seq DESC LIMIT "
        })
        .push_bind(limit);
        let rows: Vec<FeedRow> = q.build_query_as().fetch_all(self.reader()).await?;
        let events = rows.into_iter().map(feed_event).collect();
        Ok(FeedPage {
            events,
            unsearchable: self.unsearchable().await?,
        })
    }

    /// One event's raw CloudEvent.
    pub async fn raw_event(&self, seq: i64) -> Result<RawEvent> {
        let (seq, cluster, received_ms, raw): (i64, String, i64, String) = sqlx::query_as(
            "SELECT e.seq, c.name, e.received_ms, e.raw FROM events e \
             JOIN clusters c ON c.id = e.cluster_id WHERE e.seq = ?",
        )
        .bind(seq)
        .fetch_optional(self.reader())
        .await?
        .ok_or_else(|| super::StoreError::NotFound {
            what: format!("event {seq}"),
        })?;
        let text = serde_json::from_str::<serde_json::Value>(&raw)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(raw);
        Ok(RawEvent {
            seq,
            cluster,
            received_ms,
            text,
        })
    }

    /// Adds up to `max_rows` events to the search index, oldest first; returns how many.
    /// The writer calls this when it has nothing to record.
    pub async fn index_for_search(&self, max_rows: i64) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let (from,): (i64,) =
            sqlx::query_as("SELECT indexed_seq FROM search_progress WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let (to,): (Option<i64>,) = sqlx::query_as(
            "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
        )
        .bind(from)
        .bind(max_rows)
        .fetch_one(&mut *tx)
        .await?;
        let Some(to) = to else {
            return Ok(0);
        };
        // The text fields of `data` (summary, message, reason, region …) as one column.
        let done = sqlx::query(
            "INSERT INTO events_search (rowid, type, subject, service, body) \
             SELECT seq, type, subject, service, \
               (SELECT group_concat(j.value, ' ') FROM json_each(e.raw, '$.data') AS j WHERE j.type = 'text') \
             FROM events e WHERE seq > ? AND seq <= ?",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE search_progress SET indexed_seq = ? WHERE id = 1")
            .bind(to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() as usize)
    }

    /// Events recorded but not yet searchable.
    pub async fn unsearchable(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COALESCE((SELECT MAX(seq) FROM events), 0) - indexed_seq FROM search_progress WHERE id = 1",
        )
        .fetch_one(self.reader())
        .await?;
        Ok(n.max(0))
    }

    /// What the diagnostics view shows.
    pub async fn diagnostics(&self) -> Result<Diagnostics> {
        let (events,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(self.reader())
            .await?;
        let (quarantined, quarantine_arrivals): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(times), 0) FROM quarantine")
                .fetch_one(self.reader())
                .await?;
        let rows: Vec<QuarantineRow> = sqlx::query_as(
            "SELECT q.id, c.name, q.received_ms, q.reason, q.raw_len, substr(q.raw, 1, 600), \
                    q.times, COALESCE(q.last_ms, q.received_ms) \
             FROM quarantine q JOIN clusters c ON c.id = q.cluster_id ORDER BY q.id DESC LIMIT 200",
        )
        .fetch_all(self.reader())
        .await?;
        let quarantine = rows
            .into_iter()
            .map(
                |(id, cluster, received_ms, reason, raw_len, raw, times, last_ms)| {
                    QuarantinedFrame {
                        id,
                        cluster,
                        received_ms,
                        reason,
                        raw_len,
                        preview: String::from_utf8_lossy(&raw).into_owned(),
                        times,
                        last_ms,
                    }
                },
            )
            .collect();
        let gaps: Vec<StreamGap> = sqlx::query_as(
            "SELECT g.id, c.name AS cluster, g.from_sequence, g.to_sequence, g.detected_ms \
             FROM stream_gaps g JOIN clusters c ON c.id = g.cluster_id ORDER BY g.id DESC LIMIT 200",
        )
        .fetch_all(self.reader())
        .await?;
        let size =
            |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len() as i64).unwrap_or(0);
        let wal = std::path::PathBuf::from(format!("{}-wal", self.path().display()));
        Ok(Diagnostics {
            events,
            quarantined,
            quarantine_arrivals,
            quarantine,
            gaps,
            unsearchable: self.unsearchable().await?,
            database_bytes: size(self.path().to_owned()),
            wal_bytes: size(wal),
            database_path: self.path().display().to_string(),
        })
    }
}

/// The event's own fields as `key value` pairs, for types without a sentence of their own
/// (metrics, say): "error_rate 0.31 · latency_p99_ms 840 · …".
fn fields(data: &serde_json::Value) -> String {
    let Some(map) = data.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "service" | "region"))
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some(format!("{k} {s}")),
            serde_json::Value::Number(n) => Some(format!("{k} {n}")),
            serde_json::Value::Bool(b) => Some(format!("{k} {b}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn feed_event((seq, cluster, ty, subject, service, severity, time_ms, raw): FeedRow) -> FeedEvent {
    let data = serde_json::from_str::<serde_json::Value>(&raw)
        .ok()
        .and_then(|mut v| v.get_mut("data").map(serde_json::Value::take))
        .unwrap_or_default();
    let summary = EventType::parse(&ty)
        .and_then(|t| describe(t, &data))
        .or_else(|| {
            data.get("summary")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| fields(&data));
    FeedEvent {
        seq,
        cluster,
        ty,
        subject,
        service,
        severity,
        time_ms,
        summary,
    }
}
