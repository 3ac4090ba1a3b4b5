//! Store-side parts of `firebreak bench`: baselines and bulk fills that the app itself
//! never uses, kept apart so that nothing else calls them by accident.

use super::{Result, Store};

impl Store {
    /// The ingest benchmark's baseline: raw event rows inserted with one prepared
    /// statement, 1,000 rows per transaction, through the same writer connection.
    /// Returns rows per second.
    pub async fn bench_raw_insert(&self, frames: &[String]) -> Result<f64> {
        let cluster = self
            .ensure_cluster(&super::NewCluster {
                ca_file: None,
                name: "baseline".into(),
                events_url: "ws://127.0.0.1:1/v1/events".into(),
                actions_url: "http://127.0.0.1:1".into(),
            })
            .await?;
        let started = std::time::Instant::now();
        for (chunk_no, chunk) in frames.chunks(1_000).enumerate() {
            let mut tx = self.begin_write().await?;
            for (i, raw) in chunk.iter().enumerate() {
                let n = (chunk_no * 1_000 + i) as i64;
                sqlx::query(
                    "INSERT INTO events (cluster_id, source, event_id, stream_sequence, type, subject, service, \
                     severity, time_ms, received_ms, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(cluster.id)
                .bind("/clusters/baseline")
                .bind(format!("{n:016}"))
                .bind(n + 1)
                .bind("dev.firebreak.synthetic.load")
                .bind("service/recommendations")
                .bind("recommendations")
                .bind(Option::<&str>::None)
                .bind(n)
                .bind(n)
                .bind(raw)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        Ok(frames.len() as f64 / started.elapsed().as_secs_f64())
    }

    /// Fills one incident with `n` events, each with its timeline entry, one second
    /// apart: the shape a long incident's timeline has. Returns the incident's id.
    pub async fn bench_fill_incident(&self, n: i64) -> Result<i64> {
        let cluster = self
            .ensure_cluster(&super::NewCluster {
                ca_file: None,
                name: "bench".into(),
                events_url: "ws://127.0.0.1:1/v1/events".into(),
                actions_url: "http://127.0.0.1:1".into(),
            })
            .await?;
        let incident = self
            .open_incident(
                &crate::incident::NewIncident {
                    title: "A long incident".into(),
                    severity: crate::incident::Severity::Major,
                    service: Some("llm-assistant".into()),
                    cluster_id: Some(cluster.id),
                },
                "bench",
            )
            .await?;
        let start_ms = super::now_ms() - n * 1_000;
        let chunk = 100_000;
        let mut done = 0;
        while done < n {
            let rows = chunk.min(n - done);
            let mut tx = self.begin_write().await?;
            let (first,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(
                "WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) \
                 INSERT INTO events (seq, cluster_id, source, event_id, stream_sequence, type, subject, \
                   service, severity, time_ms, received_ms, raw) \
                 SELECT ? + i, ?, '/clusters/bench', 'bench-' || (? + i), ? + i, 'dev.firebreak.node.degraded', \
                   'node/gpu-' || (i % 64), 'llm-assistant', NULL, ? + (? + i) * 1000, ? + (? + i) * 1000, \
                   '{\"data\":{\"node\":\"gpu-' || (i % 64) || '\",\"reason\":\"ECC errors\"}}' FROM k",
            )
            .bind(rows)
            .bind(first)
            .bind(cluster.id)
            .bind(done)
            .bind(done + 1)
            .bind(start_ms)
            .bind(done)
            .bind(start_ms)
            .bind(done)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, event_seq) \
                 SELECT ?, time_ms, 'event', 'firebreak', 'Node ' || subject || ' degraded: ECC errors', seq \
                 FROM events WHERE seq >= ? ORDER BY seq",
            )
            .bind(incident.id)
            .bind(first)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO incident_events (incident_id, event_seq) SELECT ?, seq FROM events WHERE seq >= ?",
            )
            .bind(incident.id)
            .bind(first)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done += rows;
        }
        Ok(incident.id)
    }

    /// The key (time, id) of the timeline entry at `position` (0-based), for a keyset page
    /// that starts right after it; `None` for the first page.
    pub async fn bench_timeline_key(
        &self,
        incident: i64,
        position: i64,
    ) -> Result<Option<(i64, i64)>> {
        if position == 0 {
            return Ok(None);
        }
        let key: (i64, i64) = sqlx::query_as(
            "SELECT at_ms, id FROM timeline_entries WHERE incident_id = ? \
             ORDER BY at_ms, id LIMIT 1 OFFSET ?",
        )
        .bind(incident)
        .bind(position - 1)
        .fetch_one(self.reader())
        .await?;
        Ok(Some(key))
    }

    /// The baseline: the same page by OFFSET, which walks every entry before it.
    /// The console's timeline page by key without what each entry reads from elsewhere
    /// (its event's type, the team's refusal): the page's own cost, for the benchmark's
    /// profile of where a page's time goes.
    pub async fn bench_timeline_bare(
        &self,
        incident: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<i64> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, at_ms, kind, author, body FROM timeline_entries \
             WHERE incident_id = ? AND (at_ms, id) > (?, ?) ORDER BY at_ms, id LIMIT ?",
        )
        .bind(incident)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.len() as i64)
    }

    pub async fn bench_timeline_offset(
        &self,
        incident: i64,
        position: i64,
        limit: i64,
    ) -> Result<i64> {
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, at_ms, kind, author, body FROM timeline_entries WHERE incident_id = ? \
             ORDER BY at_ms, id LIMIT ? OFFSET ?",
        )
        .bind(incident)
        .bind(limit)
        .bind(position)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.len() as i64)
    }
}

/// One event row as the ingest benchmark's yardstick inserts it: every column worked out
/// beforehand, so that the timed loop does nothing but hand rows to SQLite.
pub struct CeilingRow {
    source: String,
    event_id: String,
    sequence: i64,
    ty: &'static str,
    subject: Option<String>,
    service: Option<String>,
    severity: Option<String>,
    time_ms: i64,
    raw: String,
}

/// The frames that decode as events, as the yardstick's rows (the columns the engine
/// derives from each).
pub fn ceiling_rows(frames: &[String]) -> Vec<CeilingRow> {
    use firebreak_protocol::events::{decode, EventType, Frame};
    frames
        .iter()
        .filter_map(|raw| match decode(raw) {
            Ok(Frame::Event(e)) => Some(CeilingRow {
                ty: EventType::parse(&e.ty)?.name(),
                sequence: i64::try_from(e.sequence).ok()?,
                time_ms: e.time.timestamp_millis(),
                service: e
                    .data
                    .get("service")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                severity: e
                    .data
                    .get("severity")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                subject: e.subject,
                source: e.source,
                event_id: e.id,
                raw: raw.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The ingest benchmark's ceiling: `rows` inserted into the events table of the store at
/// `path` (made by `Store::open`: the same schema and indexes) through rusqlite, the
/// thinnest layer over SQLite in Rust, with the writer's own settings. One prepared
/// statement of `per_statement` rows, its parameters bound in place and stepped in a
/// tight loop, `per_transaction` rows to a transaction. Blocking; returns rows per second.
pub fn bench_ceiling_insert(
    path: &std::path::Path,
    rows: &[CeilingRow],
    per_statement: usize,
    per_transaction: usize,
) -> rusqlite::Result<f64> {
    use rusqlite::Connection;
    const COLUMNS: usize = 11;
    let conn = Connection::open(path)?;
    for (key, value) in super::WRITER_PRAGMAS {
        // journal_mode answers with a row; the others answer nothing.
        conn.query_row(&format!("PRAGMA {key} = {value}"), [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })?;
    }
    conn.execute(
        "INSERT INTO clusters (name, events_url, actions_url, created_ms) \
         VALUES ('ceiling', 'ws://127.0.0.1:1', 'http://127.0.0.1:1', 0)",
        [],
    )?;
    let cluster = conn.last_insert_rowid();
    let statement = |n: usize| {
        let row = format!("({})", ["?"; COLUMNS].join(", "));
        format!(
            "INSERT OR IGNORE INTO events (cluster_id, source, event_id, stream_sequence, type, subject, \
             service, severity, time_ms, received_ms, raw) VALUES {}",
            vec![row; n].join(", ")
        )
    };
    let per_transaction = per_transaction.max(per_statement);
    let started = std::time::Instant::now();
    let mut full = conn.prepare(&statement(per_statement))?;
    for batch in rows.chunks(per_transaction) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for chunk in batch.chunks(per_statement) {
            let mut tail;
            let stmt = if chunk.len() == per_statement {
                &mut full
            } else {
                tail = conn.prepare(&statement(chunk.len()))?;
                &mut tail
            };
            for (i, r) in chunk.iter().enumerate() {
                let at = i * COLUMNS;
                stmt.raw_bind_parameter(at + 1, cluster)?;
                stmt.raw_bind_parameter(at + 2, r.source.as_str())?;
                stmt.raw_bind_parameter(at + 3, r.event_id.as_str())?;
                stmt.raw_bind_parameter(at + 4, r.sequence)?;
                stmt.raw_bind_parameter(at + 5, r.ty)?;
                stmt.raw_bind_parameter(at + 6, r.subject.as_deref())?;
                stmt.raw_bind_parameter(at + 7, r.service.as_deref())?;
                stmt.raw_bind_parameter(at + 8, r.severity.as_deref())?;
                stmt.raw_bind_parameter(at + 9, r.time_ms)?;
                stmt.raw_bind_parameter(at + 10, r.time_ms)?;
                stmt.raw_bind_parameter(at + 11, r.raw.as_str())?;
            }
            stmt.raw_execute()?;
        }
        conn.execute_batch("COMMIT")?;
    }
    Ok(rows.len() as f64 / started.elapsed().as_secs_f64())
}

/// The frames that decode as events, as the writer receives them: items of `per_item`
/// events each, in stream order.
pub fn decoded_items(
    frames: &[String],
    cluster_id: i64,
    per_item: usize,
) -> Vec<super::ingest::Item> {
    use firebreak_protocol::events::{decode, EventType, Frame};
    let events: Vec<super::ingest::Incoming> = frames
        .iter()
        .filter_map(|raw| match decode(raw) {
            Ok(Frame::Event(e)) => Some(super::ingest::Incoming {
                ty: EventType::parse(&e.ty)?,
                event: *e,
                raw: raw.as_str().into(),
                received_ms: super::now_ms(),
            }),
            _ => None,
        })
        .collect();
    events
        .chunks(per_item.max(1))
        .map(|chunk| super::ingest::Item::Events {
            cluster_id,
            last_sequence: chunk.last().map(|e| e.event.sequence).unwrap_or(0),
            events: chunk.to_vec(),
        })
        .collect()
}
