//! Writing the live stream: one transaction per batch holds the events, the cursor that
//! covers them, quarantined frames, gaps, and every incident change the rules decide.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::{now_ms, Result, Store};
use crate::incident::{EntryKind, Severity};
use crate::ingest::rules::{describe, Decision, Rules};
use crate::ingest::sink::Committed;
use crate::protocol::events::{CloudEvent, EventType};

/// The name automated timeline entries are recorded under.
pub const ENGINE_AUTHOR: &str = "firebreak";
/// Bytes of a refused frame kept in quarantine.
pub const QUARANTINE_KEEP_BYTES: usize = 4096;
/// When an incident opens, the service's events this far back attach to it.
pub const RELATED_WINDOW_MS: i64 = 15 * 60 * 1000;
/// At most this many earlier events become timeline entries when an incident opens.
const BACKFILL_ENTRIES: i64 = 200;
/// Rows per INSERT statement: 11 parameters a row stays far below SQLite's limit of 32,766
/// bound parameters, and sqlx's cost is per statement, so fewer, larger statements win.
const ROWS_PER_INSERT: usize = 1000;

/// One decoded event on its way to the store.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event: CloudEvent,
    pub ty: EventType,
    pub raw: String,
    pub received_ms: i64,
}

/// Everything a connection hands to the writer.
#[derive(Debug, Clone)]
pub enum Item {
    /// Events in stream order; `last_sequence` is what the cursor may advance to.
    Events {
        cluster_id: i64,
        events: Vec<Incoming>,
        last_sequence: u64,
    },
    Quarantine {
        cluster_id: i64,
        reason: String,
        raw: Vec<u8>,
    },
    Gap {
        cluster_id: i64,
        from: u64,
        to: u64,
    },
}

impl Item {
    pub fn rows(&self) -> usize {
        match self {
            Item::Events { events, .. } => events.len().max(1),
            _ => 1,
        }
    }
}

/// The open incident for a (cluster, service), cached for one batch.
type OpenCache = HashMap<(i64, String), Option<(i64, Severity)>>;

impl Store {
    /// The last committed sequence of a cluster's stream (0 before any).
    pub async fn cursor(&self, cluster_id: i64) -> Result<u64> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT last_sequence FROM stream_cursors WHERE cluster_id = ?")
                .bind(cluster_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.map(|(s,)| s.max(0) as u64).unwrap_or(0))
    }

    /// Commits a batch in one transaction and says what changed.
    pub async fn ingest(&self, items: &[Item], rules: &mut Rules) -> Result<Committed> {
        let mut out = Committed::default();
        let mut open = OpenCache::new();
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        for item in items {
            match item {
                Item::Events {
                    cluster_id,
                    events,
                    last_sequence,
                } => {
                    let inserted = insert_events(&mut tx, *cluster_id, events).await?;
                    out.events += inserted.len() as u32;
                    if let Some((seq, _)) = inserted.last() {
                        out.head_seq = out.head_seq.max(*seq);
                    }
                    out.duplicates += (events.len() - inserted.len()) as u32;
                    for (seq, index) in inserted {
                        let e = &events[index];
                        let decision = rules.decide(*cluster_id, e.ty, &e.event.data);
                        apply(
                            &mut tx,
                            &mut open,
                            &mut out,
                            *cluster_id,
                            seq,
                            &e.event,
                            &decision,
                        )
                        .await?;
                    }
                    advance_cursor(&mut tx, *cluster_id, *last_sequence, now).await?;
                }
                Item::Quarantine {
                    cluster_id,
                    reason,
                    raw,
                } => {
                    let kept = &raw[..raw.len().min(QUARANTINE_KEEP_BYTES)];
                    sqlx::query(
                        "INSERT INTO quarantine (cluster_id, received_ms, reason, raw, raw_len) VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(cluster_id)
                    .bind(now)
                    .bind(reason)
                    .bind(kept)
                    .bind(raw.len() as i64)
                    .execute(&mut *tx)
                    .await?;
                    out.quarantined += 1;
                }
                Item::Gap {
                    cluster_id,
                    from,
                    to,
                } => {
                    record_gap(&mut tx, &mut out, *cluster_id, *from, *to, now).await?;
                }
            }
        }
        tx.commit().await?;
        let committed_ms = now_ms();
        for item in items {
            if let Item::Events { events, .. } = item {
                out.receive_to_commit_ms.extend(
                    events
                        .iter()
                        .map(|e| (committed_ms - e.received_ms).max(0) as u32),
                );
            }
        }
        for incident in &mut out.opened {
            if let Ok(fresh) = self.incident(incident.id).await {
                *incident = fresh;
            }
        }
        out.updated.sort_unstable();
        out.updated.dedup();
        Ok(out)
    }
}

/// Moves a cluster's resume cursor forward (never back), in the caller's transaction.
async fn advance_cursor(
    tx: &mut Transaction<'static, Sqlite>,
    cluster_id: i64,
    to: u64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stream_cursors (cluster_id, last_sequence, updated_ms) VALUES (?, ?, ?) \
         ON CONFLICT (cluster_id) DO UPDATE SET \
         last_sequence = MAX(last_sequence, excluded.last_sequence), updated_ms = excluded.updated_ms",
    )
    .bind(cluster_id)
    .bind(to as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts events, skipping ones already stored (same source and id).
/// Returns (local seq, index in `events`) for each row actually inserted.
async fn insert_events(
    tx: &mut Transaction<'static, Sqlite>,
    cluster_id: i64,
    events: &[Incoming],
) -> Result<Vec<(i64, usize)>> {
    let mut inserted = Vec::with_capacity(events.len());
    for (chunk_no, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR IGNORE INTO events (cluster_id, source, event_id, stream_sequence, type, subject, \
             service, severity, time_ms, received_ms, raw) ",
        );
        q.push_values(chunk, |mut b, e| {
            let data = &e.event.data;
            b.push_bind(cluster_id)
                .push_bind(&e.event.source)
                .push_bind(&e.event.id)
                .push_bind(e.event.sequence as i64)
                .push_bind(e.ty.name())
                .push_bind(&e.event.subject)
                .push_bind(data.get("service").and_then(|v| v.as_str()))
                .push_bind(data.get("severity").and_then(|v| v.as_str()))
                .push_bind(e.event.time.timestamp_millis())
                .push_bind(e.received_ms)
                .push_bind(&e.raw);
        });
        // No RETURNING: sqlx hands every returned row to the async side as its own message,
        // which costs more than the insert. One writer allocates `seq` as max + 1 per row,
        // so when every row went in they hold the `changes()` seqs ending at the last rowid.
        let done = q.build().execute(&mut **tx).await?;
        let base = chunk_no * ROWS_PER_INSERT;
        let changed = done.rows_affected() as usize;
        if changed == chunk.len() {
            let first = done.last_insert_rowid() - changed as i64 + 1;
            inserted.extend((0..changed).map(|i| (first + i as i64, base + i)));
        } else if changed > 0 {
            // Some were duplicates: look up which went in, by their seqs.
            let first = done.last_insert_rowid() - changed as i64 + 1;
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT seq, event_id FROM events WHERE seq >= ? ORDER BY seq")
                    .bind(first)
                    .fetch_all(&mut **tx)
                    .await?;
            let mut by_id: HashMap<&str, i64> =
                rows.iter().map(|(seq, id)| (id.as_str(), *seq)).collect();
            for (i, e) in chunk.iter().enumerate() {
                // remove: a repeat of an id within the chunk is the ignored one.
                if let Some(seq) = by_id.remove(e.event.id.as_str()) {
                    inserted.push((seq, base + i));
                }
            }
        }
    }
    inserted.sort_unstable();
    Ok(inserted)
}

async fn open_incident_for(
    tx: &mut Transaction<'static, Sqlite>,
    open: &mut OpenCache,
    cluster_id: i64,
    service: &str,
) -> Result<Option<(i64, Severity)>> {
    let key = (cluster_id, service.to_owned());
    if let Some(known) = open.get(&key) {
        return Ok(*known);
    }
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT id, severity FROM incidents WHERE cluster_id = ? AND service = ? AND status != 'resolved' \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(cluster_id)
    .bind(service)
    .fetch_optional(&mut **tx)
    .await?;
    let found = row.map(|(id, s)| (id, Severity::parse(&s).unwrap_or(Severity::Major)));
    open.insert(key, found);
    Ok(found)
}

async fn entry(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    at_ms: i64,
    kind: EntryKind,
    body: &str,
    event_seq: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, event_seq) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(incident_id)
    .bind(at_ms)
    .bind(kind.as_str())
    .bind(ENGINE_AUTHOR)
    .bind(body)
    .bind(event_seq)
    .execute(&mut **tx)
    .await?;
    // Changes the rules make to an incident are audited like anyone's; what they merely
    // attach (events, anomalies, gaps) is evidence, not a change.
    if matches!(
        kind,
        EntryKind::Opened | EntryKind::StatusChanged | EntryKind::SeverityChanged
    ) {
        super::audit::record(
            tx,
            ENGINE_AUTHOR,
            &format!("incident/{incident_id}"),
            kind.as_str(),
            &serde_json::json!({ "body": body, "event_seq": event_seq }),
        )
        .await?;
    }
    Ok(())
}

async fn attach(tx: &mut Transaction<'static, Sqlite>, incident_id: i64, seq: i64) -> Result<()> {
    sqlx::query("INSERT OR IGNORE INTO incident_events (incident_id, event_seq) VALUES (?, ?)")
        .bind(incident_id)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Carries out one decision inside the batch's transaction.
async fn apply(
    tx: &mut Transaction<'static, Sqlite>,
    open: &mut OpenCache,
    out: &mut Committed,
    cluster_id: i64,
    seq: i64,
    event: &CloudEvent,
    d: &Decision,
) -> Result<()> {
    let Some(service) = d.service.as_deref() else {
        return Ok(());
    };
    let at = event.time.timestamp_millis();
    let now = now_ms();
    let mut current = open_incident_for(tx, open, cluster_id, service).await?;

    let opener = d
        .signal
        .as_ref()
        .map(|s| (s.severity, s.title.clone(), s.rule.clone()))
        .or_else(|| {
            d.anomaly
                .as_ref()
                .map(|a| (Severity::Minor, a.clone(), "anomaly".to_owned()))
        });
    if current.is_none() {
        if let Some((severity, title, rule)) = opener {
            let title: String = title.chars().take(200).collect();
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO incidents (public_id, cluster_id, title, service, severity, status, opened_ms, \
                 updated_ms, opened_by) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?) RETURNING id",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(cluster_id)
            .bind(&title)
            .bind(service)
            .bind(severity.as_str())
            .bind(now)
            .bind(now)
            .bind(&rule)
            .fetch_one(&mut **tx)
            .await?;
            let body = format!(
                "Opened automatically as {} by rule {rule}: {title}",
                severity.as_str()
            );
            entry(tx, id, at, EntryKind::Opened, &body, Some(seq)).await?;
            backfill(tx, id, cluster_id, service, at, seq).await?;
            open.insert((cluster_id, service.to_owned()), Some((id, severity)));
            out.opened.push(crate::incident::Incident {
                id,
                public_id: String::new(),
                cluster_id: Some(cluster_id),
                title,
                service: Some(service.to_owned()),
                severity,
                status: crate::incident::IncidentStatus::Open,
                commander: None,
                opened_ms: now,
                acknowledged_ms: None,
                mitigated_ms: None,
                resolved_ms: None,
                updated_ms: now,
                entry_count: 1,
            });
            current = Some((id, severity));
        }
    } else if let (Some((id, severity)), Some(signal)) = (current, d.signal.as_ref()) {
        // A more severe signal raises the open incident (Critical sorts before Major).
        if signal.severity < severity {
            // An incident the anomaly detector opened takes the stronger signal's title.
            sqlx::query(
                "UPDATE incidents SET severity = ?, updated_ms = ?, \
                 title = CASE WHEN opened_by = 'anomaly' THEN ? ELSE title END WHERE id = ?",
            )
            .bind(signal.severity.as_str())
            .bind(now)
            .bind(signal.title.chars().take(200).collect::<String>())
            .bind(id)
            .execute(&mut **tx)
            .await?;
            let body = format!(
                "Severity {} → {} (rule {}: {})",
                severity.as_str(),
                signal.severity.as_str(),
                signal.rule,
                signal.title
            );
            entry(tx, id, at, EntryKind::SeverityChanged, &body, Some(seq)).await?;
            open.insert(
                (cluster_id, service.to_owned()),
                Some((id, signal.severity)),
            );
            current = Some((id, signal.severity));
        }
    }

    let Some((id, _)) = current else {
        return Ok(());
    };
    attach(tx, id, seq).await?;
    let mut touched = false;
    if let Some(body) = &d.anomaly {
        entry(tx, id, at, EntryKind::Anomaly, body, Some(seq)).await?;
        touched = true;
    }
    if let Some(body) = &d.entry {
        entry(tx, id, at, EntryKind::Event, body, Some(seq)).await?;
        touched = true;
    }
    if touched {
        sqlx::query("UPDATE incidents SET updated_ms = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        out.updated.push(id);
    }
    Ok(())
}

/// Attaches the service's recent events to a newly opened incident: metrics as evidence,
/// the rest (rollouts, model changes, nodes, alerts) also as timeline entries, at their
/// own times, so the timeline shows what led up to the incident.
async fn backfill(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    cluster_id: i64,
    service: &str,
    at: i64,
    trigger: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO incident_events (incident_id, event_seq) \
         SELECT ?, seq FROM events WHERE cluster_id = ? AND service = ? AND time_ms >= ? AND seq < ?",
    )
    .bind(incident_id)
    .bind(cluster_id)
    .bind(service)
    .bind(at - RELATED_WINDOW_MS)
    .bind(trigger)
    .execute(&mut **tx)
    .await?;
    let earlier: Vec<(i64, String, i64, String)> = sqlx::query_as(
        "SELECT seq, type, time_ms, raw FROM events WHERE cluster_id = ? AND service = ? AND time_ms >= ? \
         AND seq < ? AND type NOT IN ('dev.firebreak.service.metrics', 'dev.firebreak.synthetic.load') \
         ORDER BY seq DESC LIMIT ?",
    )
    .bind(cluster_id)
    .bind(service)
    .bind(at - RELATED_WINDOW_MS)
    .bind(trigger)
    .bind(BACKFILL_ENTRIES)
    .fetch_all(&mut **tx)
    .await?;
    for (seq, ty, time_ms, raw) in earlier.into_iter().rev() {
        let Some(ty) = EventType::parse(&ty) else {
            continue;
        };
        let data = serde_json::from_str::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v.get("data").cloned())
            .unwrap_or_default();
        if let Some(body) = describe(ty, &data) {
            entry(tx, incident_id, time_ms, EntryKind::Event, &body, Some(seq)).await?;
        }
    }
    Ok(())
}

/// A stretch of the stream the server could not replay: kept for diagnosis and put on
/// the timeline of every open incident of the cluster.
async fn record_gap(
    tx: &mut Transaction<'static, Sqlite>,
    out: &mut Committed,
    cluster_id: i64,
    from: u64,
    to: u64,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO stream_gaps (cluster_id, from_sequence, to_sequence, detected_ms) VALUES (?, ?, ?, ?)")
        .bind(cluster_id)
        .bind(from as i64)
        .bind(to as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    // What is gone is gone: a restart must not ask for it (and record the gap) again.
    advance_cursor(tx, cluster_id, to, now).await?;
    let open: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM incidents WHERE cluster_id = ? AND status != 'resolved'")
            .bind(cluster_id)
            .fetch_all(&mut **tx)
            .await?;
    let body = format!(
        "Stream gap: events {from}–{to} ({} events) were no longer kept by the cluster and are missing here",
        to - from + 1
    );
    for (id,) in open {
        entry(tx, id, now, EntryKind::Gap, &body, None).await?;
        out.updated.push(id);
    }
    out.gaps += 1;
    Ok(())
}
