//! Writing the live stream: one transaction per batch holds the events, the cursor that
//! covers them, quarantined frames, gaps, and every incident change the rules decided.
//!
//! The store takes decisions already made (`Decision`, plain data): it never runs the
//! incident rules, so a batch that fails to commit leaves no rule state behind.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite, Transaction};
use ts_rs::TS;

use super::incidents::{insert_entry, open_in, Append, Opening};
use super::{now_ms, Result, Store, StoreError};
use crate::incident::{clean_title, Decision, EntryKind, Incident, Severity, ENGINE_AUTHOR};
use firebreak_protocol::events::{CloudEvent, EventType};
use firebreak_protocol::text::describe;

/// What one committed batch changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Committed {
    pub events: u32,
    pub duplicates: u32,
    pub quarantined: u32,
    pub gaps: u32,
    pub opened: Vec<Incident>,
    /// Incidents that gained entries or changed.
    pub updated: Vec<i64>,
    /// The store's newest event (`events.seq`) after this batch, 0 when it added none.
    pub head_seq: i64,
    /// For benchmarks: milliseconds from each new event's arrival to its commit.
    #[serde(skip)]
    #[ts(skip)]
    pub receive_to_commit_ms: Vec<u32>,
}

/// What names a bad frame, so that the same one replayed is kept once: its stream and
/// sequence where a sequence (1 or more) could be read from it, else a digest of why it
/// was refused and of all its bytes.
pub fn frame_key(stream: Option<&str>, sequence: Option<u64>, reason: &str, raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    match sequence.filter(|s| *s > 0) {
        Some(seq) => format!("seq:{}:{seq}", stream.unwrap_or("")),
        None => {
            let mut h = Sha256::new();
            h.update(reason.as_bytes());
            h.update([0]);
            h.update(raw);
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{digest}")
        }
    }
}

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
    /// The frame as received, shared with the INSERT that stores it (never copied).
    pub raw: std::sync::Arc<str>,
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
        /// The frame's stream sequence, when it could be read.
        sequence: Option<u64>,
    },
    /// Sequences `from..=to` will never be recorded: the server no longer had them, or
    /// the console skipped past a frame it could not read (`reason` says which).
    Gap {
        cluster_id: i64,
        from: u64,
        to: u64,
        reason: String,
    },
    /// The server's stream started over (a new stream identity, or its head fell below
    /// our cursor): the cursor goes back to 0 and the restart is recorded.
    Restarted {
        cluster_id: i64,
        stream_id: Option<String>,
        reason: String,
    },
    /// The stream's identity, first named by the server (the cursor stays).
    Identity { cluster_id: i64, stream_id: String },
}

impl Item {
    pub fn rows(&self) -> usize {
        match self {
            Item::Events { events, .. } => events.len().max(1),
            _ => 1,
        }
    }

    /// Events this item carries (the rules decide one `Decision` for each).
    pub fn events(&self) -> &[Incoming] {
        match self {
            Item::Events { events, .. } => events,
            _ => &[],
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

    /// Commits a batch in one transaction and says what changed. `decisions` holds one
    /// decision per event, in the order of `items`' events; events the store already had
    /// (duplicates) have theirs ignored.
    pub async fn ingest(&self, items: &[Item], decisions: &[Decision]) -> Result<Committed> {
        let expected: usize = items.iter().map(|i| i.events().len()).sum();
        if decisions.len() != expected {
            return Err(StoreError::Invalid(format!(
                "{} decisions for {expected} events",
                decisions.len()
            )));
        }
        let mut out = Committed::default();
        let mut open = OpenCache::new();
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let mut decided = 0;
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
                        apply(
                            &mut tx,
                            &mut open,
                            &mut out,
                            *cluster_id,
                            seq,
                            &events[index].event,
                            &decisions[decided + index],
                        )
                        .await?;
                    }
                    decided += events.len();
                    advance_cursor(&mut tx, *cluster_id, *last_sequence, now).await?;
                }
                Item::Quarantine {
                    cluster_id,
                    reason,
                    raw,
                    sequence,
                } => {
                    let kept = &raw[..raw.len().min(QUARANTINE_KEEP_BYTES)];
                    let stream: Option<Option<String>> = sqlx::query_scalar(
                        "SELECT stream_id FROM stream_cursors WHERE cluster_id = ?",
                    )
                    .bind(cluster_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let key = frame_key(stream.flatten().as_deref(), *sequence, reason, raw);
                    // A frame seen before (a replay after a reconnect) counts on its row.
                    sqlx::query(
                        "INSERT INTO quarantine (cluster_id, received_ms, reason, raw, raw_len, stream_sequence, frame_key, last_ms) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (cluster_id, frame_key) DO UPDATE SET times = times + 1, last_ms = excluded.last_ms",
                    )
                    .bind(cluster_id)
                    .bind(now)
                    .bind(reason)
                    .bind(kept)
                    .bind(raw.len() as i64)
                    .bind(sequence.and_then(|s| i64::try_from(s).ok()))
                    .bind(key)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    out.quarantined += 1;
                }
                Item::Gap {
                    cluster_id,
                    from,
                    to,
                    reason,
                } => {
                    record_gap(&mut tx, &mut out, *cluster_id, (*from, *to), reason, now).await?;
                }
                Item::Restarted {
                    cluster_id,
                    stream_id,
                    reason,
                } => {
                    record_restart(
                        &mut tx,
                        &mut out,
                        *cluster_id,
                        stream_id.as_deref(),
                        reason,
                        now,
                    )
                    .await?;
                }
                Item::Identity {
                    cluster_id,
                    stream_id,
                } => set_stream_id(&mut tx, *cluster_id, stream_id).await?,
            }
        }
        tx.commit().await?;
        self.checkpointer.committed();
        let committed_ms = now_ms();
        for item in items {
            out.receive_to_commit_ms.extend(
                item.events()
                    .iter()
                    .map(|e| (committed_ms - e.received_ms).max(0) as u32),
            );
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

    /// The stream identity the cursor belongs to (None before any, or from an old server).
    pub async fn stream_id(&self, cluster_id: i64) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT stream_id FROM stream_cursors WHERE cluster_id = ?")
                .bind(cluster_id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.and_then(|(s,)| s))
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
    .bind(seq_i64(to)?)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stream sequence as the store keeps it. The decoder refuses sequences above
/// `i64::MAX`, so this fails only on a bug; it never wraps to a negative number.
fn seq_i64(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| StoreError::Invalid(format!("sequence {seq} is out of range")))
}

/// Inserts events, skipping ones already stored (same source and id).
/// Returns (local seq, index in `events`) for each row actually inserted.
async fn insert_events(
    tx: &mut Transaction<'static, Sqlite>,
    cluster_id: i64,
    events: &[Incoming],
) -> Result<Vec<(i64, usize)>> {
    let mut inserted = Vec::with_capacity(events.len());
    let statement = |chunk: &[Incoming]| {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR IGNORE INTO events (cluster_id, source, event_id, stream_sequence, type, subject, \
             service, severity, time_ms, received_ms, raw) ",
        );
        q.push_values(chunk, |mut b, e| {
            let data = &e.event.data;
            b.push_bind(cluster_id)
                .push_bind(&e.event.source)
                .push_bind(&e.event.id)
                .push_bind(i64::try_from(e.event.sequence).unwrap_or(i64::MAX))
                .push_bind(e.ty.name())
                .push_bind(&e.event.subject)
                .push_bind(data.get("service").and_then(|v| v.as_str()))
                .push_bind(data.get("severity").and_then(|v| v.as_str()))
                .push_bind(e.event.time.timestamp_millis())
                .push_bind(e.received_ms)
                .push_bind(e.raw.clone());
        });
        q
    };
    let mut chunks = events.chunks(ROWS_PER_INSERT).enumerate();
    let mut next = chunks.next().map(|(n, c)| (n, c, statement(c)));
    while let Some((chunk_no, chunk, mut q)) = next.take() {
        // The next statement's parameters are bound here while SQLite runs this one on
        // the connection's own thread.
        let (done, following) = tokio::join!(q.build().execute(&mut **tx), async {
            chunks.next().map(|(n, c)| (n, c, statement(c)))
        });
        next = following;
        let done = done?;
        // No RETURNING: sqlx hands every returned row to the async side as its own message,
        // which costs more than the insert. One writer allocates `seq` as max + 1 per row,
        // so when every row went in they hold the `changes()` seqs ending at the last rowid.
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

/// An entry the rules write: through the store's one timeline insert; changes they make
/// to an incident are audited like anyone's, what they merely attach (events,
/// anomalies, gaps) is evidence, not a change.
async fn entry(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    at_ms: i64,
    kind: EntryKind,
    body: &str,
    event_seq: Option<i64>,
) -> Result<()> {
    insert_entry(
        tx,
        &Append {
            incident_id,
            at_ms,
            kind,
            author: ENGINE_AUTHOR,
            body,
            amends: None,
            event_seq,
        },
    )
    .await?;
    if matches!(kind, EntryKind::StatusChanged | EntryKind::SeverityChanged) {
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
            let (id, title) = open_in(
                tx,
                Opening {
                    cluster_id: Some(cluster_id),
                    title: &title,
                    service: Some(service),
                    severity,
                    rule: Some(&rule),
                    author: ENGINE_AUTHOR,
                    at_ms: at,
                    event_seq: Some(seq),
                },
            )
            .await?;
            backfill(tx, id, cluster_id, service, at, seq).await?;
            open.insert((cluster_id, service.to_owned()), Some((id, severity)));
            let (demo,): (bool,) = sqlx::query_as("SELECT demo FROM clusters WHERE id = ?")
                .bind(cluster_id)
                .fetch_one(&mut **tx)
                .await?;
            out.opened.push(Incident {
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
                demo,
            });
            current = Some((id, severity));
        }
    } else if let (Some((id, severity)), Some(signal)) = (current, d.signal.as_ref()) {
        // A more severe signal raises the open incident (Critical sorts before Major).
        if signal.severity < severity {
            // An incident the anomaly detector opened takes the stronger signal's title.
            sqlx::query(
                "UPDATE incidents SET severity = ?, updated_ms = ?, \
                 title = CASE WHEN opened_by = 'anomaly' THEN COALESCE(?, title) ELSE title END WHERE id = ?",
            )
            .bind(signal.severity.as_str())
            .bind(now)
            .bind(clean_title(&signal.title))
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
/// own times, so the timeline shows what led up to the incident. What monitoring said
/// about itself before (`source.degraded`) is not the incident's: it attaches only while
/// the incident is open.
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
         SELECT ?, seq FROM events WHERE cluster_id = ? AND service = ? AND time_ms >= ? AND seq < ? \
         AND type != 'dev.firebreak.source.degraded'",
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
         AND seq < ? AND type NOT IN ('dev.firebreak.service.metrics', 'dev.firebreak.service.revision_metrics', 'dev.firebreak.synthetic.load', \
                                      'dev.firebreak.source.degraded') \
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

/// A stretch of the stream that will never be recorded, kept for diagnosis with its
/// reason and put on the timeline of every open incident of the cluster.
async fn record_gap(
    tx: &mut Transaction<'static, Sqlite>,
    out: &mut Committed,
    cluster_id: i64,
    (from, to): (u64, u64),
    reason: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stream_gaps (cluster_id, from_sequence, to_sequence, detected_ms, reason) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(cluster_id)
    .bind(seq_i64(from)?)
    .bind(seq_i64(to)?)
    .bind(now)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    // What is gone is gone: a restart must not ask for it (and record the gap) again.
    advance_cursor(tx, cluster_id, to, now).await?;
    let count = to.saturating_sub(from).saturating_add(1);
    let body = if from == to {
        format!("Stream gap: event {from} is missing here: {reason}")
    } else {
        format!("Stream gap: events {from}–{to} ({count} events) are missing here: {reason}")
    };
    on_open_incidents(tx, out, cluster_id, EntryKind::Gap, &body, now).await?;
    out.gaps += 1;
    Ok(())
}

/// The server's stream started over: the cursor goes back to 0 under the new identity,
/// and every open incident of the cluster says so (the numbers start again).
async fn record_restart(
    tx: &mut Transaction<'static, Sqlite>,
    out: &mut Committed,
    cluster_id: i64,
    stream_id: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stream_cursors (cluster_id, last_sequence, updated_ms, stream_id) VALUES (?, 0, ?, ?) \
         ON CONFLICT (cluster_id) DO UPDATE SET last_sequence = 0, updated_ms = excluded.updated_ms, \
         stream_id = excluded.stream_id",
    )
    .bind(cluster_id)
    .bind(now)
    .bind(stream_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO stream_gaps (cluster_id, from_sequence, to_sequence, detected_ms, reason) \
         VALUES (?, 0, 0, ?, ?)",
    )
    .bind(cluster_id)
    .bind(now)
    .bind(format!("stream restarted: {reason}"))
    .execute(&mut **tx)
    .await?;
    let body = format!("Stream restarted: {reason}; recording from the start of the new stream");
    on_open_incidents(tx, out, cluster_id, EntryKind::Gap, &body, now).await?;
    Ok(())
}

/// The stream identity a cursor belongs to, recorded when the first hello names one.
async fn set_stream_id(
    tx: &mut Transaction<'static, Sqlite>,
    cluster_id: i64,
    stream_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO stream_cursors (cluster_id, last_sequence, updated_ms, stream_id) VALUES (?, 0, ?, ?) \
         ON CONFLICT (cluster_id) DO UPDATE SET stream_id = excluded.stream_id",
    )
    .bind(cluster_id)
    .bind(now_ms())
    .bind(stream_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn on_open_incidents(
    tx: &mut Transaction<'static, Sqlite>,
    out: &mut Committed,
    cluster_id: i64,
    kind: EntryKind,
    body: &str,
    now: i64,
) -> Result<()> {
    let open: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM incidents WHERE cluster_id = ? AND status != 'resolved'")
            .bind(cluster_id)
            .fetch_all(&mut **tx)
            .await?;
    for (id,) in open {
        entry(tx, id, now, kind, body, None).await?;
        out.updated.push(id);
    }
    Ok(())
}
