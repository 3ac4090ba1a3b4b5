//! Export bundles: one incident with everything recorded about it (its raw events, its
//! timeline, its actions, the store's whole audit chain and its report), as one file for
//! a colleague or an archive; and importing one into another store, refused when the
//! bundle's audit chain does not verify.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::audit::{self, AuditRecord};
use super::{now_ms, Result, Store, StoreError};

pub const BUNDLE_FORMAT: &str = "firebreak.bundle.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleCluster {
    pub name: String,
    pub events_url: String,
    pub actions_url: String,
    /// The simulated demo fleet (bundles made before this field are taken as not).
    #[serde(default)]
    pub demo: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleIncident {
    pub public_id: String,
    pub title: String,
    pub service: Option<String>,
    pub severity: String,
    pub status: String,
    pub commander: Option<String>,
    pub opened_ms: i64,
    pub acknowledged_ms: Option<i64>,
    pub mitigated_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub updated_ms: i64,
    pub opened_by: Option<String>,
    /// Demo data, by the incident's own mark or its cluster's: it stays marked wherever
    /// the bundle is imported, whatever cluster it lands on there.
    #[serde(default)]
    pub demo: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleEvent {
    pub seq: i64,
    pub source: String,
    pub event_id: String,
    pub stream_sequence: i64,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub ty: String,
    pub subject: Option<String>,
    pub service: Option<String>,
    pub severity: Option<String>,
    pub time_ms: i64,
    pub received_ms: i64,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleEntry {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub author: String,
    pub body: String,
    pub data: Option<String>,
    pub event_seq: Option<i64>,
    pub amends: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleAction {
    pub public_id: String,
    pub kind: String,
    pub service: String,
    pub target: String,
    pub from_value: String,
    pub to_value: String,
    pub preview: String,
    pub state: String,
    pub proposed_by: String,
    pub confirmed_by: Option<String>,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub send_after_ms: Option<i64>,
    pub remote_id: Option<String>,
    pub error: Option<String>,
    pub succeeded_ms: Option<i64>,
    pub verification: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What reviewers recorded (see `store::review`). Bundles made before review existed
/// have none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleReview {
    pub root_cause: Option<BundleRootCause>,
    pub factors: Vec<BundleFactor>,
    pub moment_edits: Vec<BundleMomentEdit>,
    /// `entry_id` is the entry's `id` in the bundle's timeline.
    pub annotations: Vec<BundleAnnotation>,
    pub follow_ups: Vec<BundleFollowUp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleRootCause {
    pub root_cause: Option<String>,
    pub updated_by: String,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleFactor {
    pub factor: String,
    pub factor_key: String,
    pub added_by: String,
    pub added_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleMomentEdit {
    pub moment: String,
    pub at_ms: Option<i64>,
    pub reason: String,
    pub author: String,
    pub edited_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleAnnotation {
    pub entry_id: i64,
    pub body: String,
    pub author: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BundleFollowUp {
    pub title: String,
    pub owner: String,
    pub due: Option<String>,
    pub status: String,
    pub created_by: String,
    pub created_ms: i64,
    pub updated_by: String,
    pub updated_ms: i64,
}

/// The rendered reports, as they read when the bundle was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleReports<Json = serde_json::Value> {
    pub markdown: String,
    pub html: String,
    pub json: Json,
}

/// A bundle as read back (`Bundle`, the defaults) or as exported (`BundleOut`): one JSON
/// shape, and in the exported form the long lists are JSON text written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle<Events = Vec<BundleEvent>, Timeline = Vec<BundleEntry>, Json = serde_json::Value>
{
    pub format: String,
    pub exported_ms: i64,
    pub cluster: Option<BundleCluster>,
    pub incident: BundleIncident,
    pub events: Events,
    /// Events attached to the incident (their `seq` in `events`).
    pub attached: Vec<i64>,
    pub timeline: Timeline,
    pub actions: Vec<BundleAction>,
    /// The exporting store's whole audit chain, so every link can be checked.
    pub audit: Vec<AuditRecord>,
    #[serde(default)]
    pub review: BundleReview,
    pub reports: Option<BundleReports<Json>>,
}

/// JSON text carried into a bundle's file as it is.
pub type RawJson = Box<serde_json::value::RawValue>;

/// A bundle on its way to a file. Its events and timeline (100,000 rows and more in a
/// long incident) are written as JSON by SQLite itself: read row by row through sqlx they
/// cost about 10 µs each, SQLite writes them at about 1 µs, and they are serialized once.
pub type BundleOut = Bundle<RawJson, RawJson, RawJson>;

/// What an exported bundle holds, for the person who asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleCounts {
    pub events: usize,
    pub timeline: usize,
    pub actions: usize,
    pub audit: usize,
}

/// Rows per JSON array SQLite builds in one piece, at most (rows are grouped by their key
/// divided by this): a bounded string whatever the incident's size.
const JSON_CHUNK_ROWS: i64 = 10_000;

/// Runs `sql`, whose rows are (a JSON array, its length) in order, and joins the arrays
/// into one. Returns the array and the number of elements.
async fn json_array(
    query: sqlx::query::QueryAs<'_, sqlx::Sqlite, (String, i64), sqlx::sqlite::SqliteArguments>,
    r: &sqlx::SqlitePool,
) -> Result<(RawJson, usize)> {
    let chunks: Vec<(String, i64)> = query.fetch_all(r).await?;
    let total: i64 = chunks.iter().map(|(_, n)| n).sum();
    let mut joined = String::with_capacity(chunks.iter().map(|(j, _)| j.len()).sum::<usize>() + 2);
    joined.push('[');
    for (i, (chunk, _)) in chunks.iter().enumerate() {
        let inner = chunk
            .strip_prefix('[')
            .and_then(|c| c.strip_suffix(']'))
            .ok_or_else(|| {
                StoreError::Invalid("SQLite returned a JSON array that is not one".into())
            })?;
        if i > 0 && !inner.is_empty() {
            joined.push(',');
        }
        joined.push_str(inner);
    }
    joined.push(']');
    let raw = serde_json::value::RawValue::from_string(joined)
        .map_err(|e| StoreError::Invalid(format!("bundle JSON: {e}")))?;
    Ok((raw, total.max(0) as usize))
}

impl Store {
    /// Everything recorded about one incident, with its service's metric samples received
    /// in `metrics_window` (ms, inclusive), the ones its report's chart draws on. Reports
    /// are added by the caller (`reports::bundle`).
    pub async fn bundle(
        &self,
        incident_id: i64,
        metrics_window: (i64, i64),
    ) -> Result<(BundleOut, BundleCounts)> {
        let r = self.reader();
        let incident: BundleIncident = sqlx::query_as(
            "SELECT public_id, title, service, severity, status, commander, opened_ms, acknowledged_ms, \
             mitigated_ms, resolved_ms, updated_ms, opened_by, \
             (demo OR COALESCE((SELECT c.demo FROM clusters c WHERE c.id = cluster_id), 0)) AS demo \
             FROM incidents WHERE id = ?",
        )
        .bind(incident_id)
        .fetch_optional(r)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("incident {incident_id}"),
        })?;
        let cluster: Option<BundleCluster> = sqlx::query_as(
            "SELECT c.name, c.events_url, c.actions_url, c.demo FROM clusters c \
             JOIN incidents i ON i.cluster_id = c.id WHERE i.id = ?",
        )
        .bind(incident_id)
        .fetch_optional(r)
        .await?;
        let (events, event_count) = json_array(
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                // json_object inside the aggregate: a subquery's column would lose its
                // JSON subtype and be quoted as a string.
                "SELECT json_group_array(json_object('seq', seq, 'source', source, \
                   'event_id', event_id, 'stream_sequence', stream_sequence, 'type', type, \
                   'subject', subject, 'service', service, 'severity', severity, \
                   'time_ms', time_ms, 'received_ms', received_ms, 'raw', raw) ORDER BY seq), \
                   count(*) \
                 FROM events WHERE seq IN ( \
                   SELECT event_seq FROM incident_events WHERE incident_id = ?1 \
                   UNION SELECT event_seq FROM timeline_entries WHERE incident_id = ?1 AND event_seq IS NOT NULL \
                   UNION SELECT e.seq FROM events e JOIN incidents i ON i.id = ?1 \
                     WHERE e.cluster_id = i.cluster_id AND e.service = i.service \
                     AND e.type IN ('dev.firebreak.service.metrics', 'dev.firebreak.service.revision_metrics') \
                     AND e.received_ms BETWEEN ?2 AND ?3) \
                 GROUP BY seq / {JSON_CHUNK_ROWS} ORDER BY seq / {JSON_CHUNK_ROWS}"
            )))
            .bind(incident_id)
            .bind(metrics_window.0)
            .bind(metrics_window.1),
            r,
        )
        .await?;
        // One row of JSON rather than a row per event (see `BundleOut`).
        let (attached,): (String,) = sqlx::query_as(
            "SELECT json_group_array(event_seq ORDER BY event_seq) FROM incident_events \
             WHERE incident_id = ?",
        )
        .bind(incident_id)
        .fetch_one(r)
        .await?;
        let attached: Vec<i64> = serde_json::from_str(&attached)
            .map_err(|e| StoreError::Invalid(format!("attached events: {e}")))?;
        let (timeline, entry_count) = json_array(
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT json_group_array(json_object('id', id, 'at_ms', at_ms, 'kind', kind, \
                   'author', author, 'body', body, 'data', data, 'event_seq', event_seq, \
                   'amends', amends) ORDER BY id), count(*) \
                 FROM timeline_entries WHERE incident_id = ? \
                 GROUP BY id / {JSON_CHUNK_ROWS} ORDER BY id / {JSON_CHUNK_ROWS}"
            )))
            .bind(incident_id),
            r,
        )
        .await?;
        let actions: Vec<BundleAction> = sqlx::query_as(
            "SELECT public_id, kind, service, target, from_value, to_value, preview, state, proposed_by, \
             confirmed_by, reason, idempotency_key, send_after_ms, remote_id, error, succeeded_ms, \
             verification, created_ms, updated_ms FROM actions WHERE incident_id = ? ORDER BY id",
        )
        .bind(incident_id)
        .fetch_all(r)
        .await?;
        let review = BundleReview {
            root_cause: sqlx::query_as(
                "SELECT root_cause, updated_by, updated_ms FROM incident_reviews WHERE incident_id = ?",
            )
            .bind(incident_id)
            .fetch_optional(r)
            .await?,
            factors: sqlx::query_as(
                "SELECT factor, factor_key, added_by, added_ms FROM contributing_factors \
                 WHERE incident_id = ? ORDER BY id",
            )
            .bind(incident_id)
            .fetch_all(r)
            .await?,
            moment_edits: sqlx::query_as(
                "SELECT moment, at_ms, reason, author, edited_ms FROM moment_edits \
                 WHERE incident_id = ? ORDER BY id",
            )
            .bind(incident_id)
            .fetch_all(r)
            .await?,
            annotations: sqlx::query_as(
                "SELECT entry_id, body, author, created_ms FROM annotations \
                 WHERE incident_id = ? ORDER BY id",
            )
            .bind(incident_id)
            .fetch_all(r)
            .await?,
            follow_ups: sqlx::query_as(
                "SELECT title, owner, due, status, created_by, created_ms, updated_by, updated_ms \
                 FROM follow_ups WHERE incident_id = ? ORDER BY id",
            )
            .bind(incident_id)
            .fetch_all(r)
            .await?,
        };
        let audit = self.audit_records(None).await?;
        let counts = BundleCounts {
            events: event_count,
            timeline: entry_count,
            actions: actions.len(),
            audit: audit.len(),
        };
        let bundle = Bundle {
            format: BUNDLE_FORMAT.into(),
            exported_ms: now_ms(),
            cluster,
            incident,
            events,
            attached,
            timeline,
            actions,
            audit,
            review,
            reports: None,
        };
        Ok((bundle, counts))
    }

    /// Loads a bundle as a new incident of this store, in one transaction. Refused when
    /// its audit chain does not verify, or when the incident is already here.
    pub async fn import(&self, bundle: &Bundle, actor: &str) -> Result<i64> {
        if bundle.format != BUNDLE_FORMAT {
            return Err(StoreError::Invalid(format!(
                "not a Firebreak bundle (format {:?})",
                bundle.format
            )));
        }
        let check = audit::verify_chain(&bundle.audit);
        if let Some((id, why)) = check.first_bad {
            return Err(StoreError::Invalid(format!(
                "the bundle's audit chain is broken at record {id} of {}: {why}. Nothing was imported",
                check.records
            )));
        }
        let mut tx = self.begin_write().await?;
        // An imported incident is history from another store: it stays here, never
        // shared with this store's team (a teammate importing the same bundle would
        // otherwise append its timeline to the team's record a second time).
        super::team::applying(&mut tx, true).await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM incidents WHERE public_id = ?")
            .bind(&bundle.incident.public_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((id,)) = exists {
            return Err(StoreError::Invalid(format!(
                "this incident is already here, as incident {id}"
            )));
        }
        let cluster_id = match &bundle.cluster {
            None => None,
            Some(c) => Some(import_cluster(&mut tx, c).await?),
        };
        let seqs = import_events(&mut tx, cluster_id, &bundle.events).await?;
        let incident_id = import_incident(&mut tx, bundle, cluster_id).await?;
        for old in &bundle.attached {
            if let Some(seq) = seqs.get(old) {
                sqlx::query(
                    "INSERT OR IGNORE INTO incident_events (incident_id, event_seq) VALUES (?, ?)",
                )
                .bind(incident_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        let entries = import_timeline(&mut tx, incident_id, &bundle.timeline, &seqs).await?;
        if let Some(cluster) = cluster_id {
            import_actions(&mut tx, incident_id, cluster, &bundle.actions).await?;
        }
        import_review(&mut tx, incident_id, &bundle.review, &entries).await?;
        audit::record(
            &mut tx,
            actor,
            &format!("incident/{incident_id}"),
            "imported",
            &serde_json::json!({
                "public_id": bundle.incident.public_id,
                "bundle_audit_records": bundle.audit.len(),
                "bundle_audit_head": bundle.audit.last().map(|r| r.hash.clone()),
                "entries": bundle.timeline.len(),
                "events": bundle.events.len(),
            }),
        )
        .await?;
        super::team::applying(&mut tx, false).await?;
        tx.commit().await?;
        Ok(incident_id)
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// The store's id of a bundle's cluster: the one of that name here, else a new one kept
/// as removed (known only from the bundle, it is history, not something to watch).
async fn import_cluster(tx: &mut Tx, c: &BundleCluster) -> Result<i64> {
    let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM clusters WHERE name = ?")
        .bind(&c.name)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some((id,)) = found {
        return Ok(id);
    }
    let now = now_ms();
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO clusters (name, events_url, actions_url, created_ms, removed_ms, demo) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&c.name)
    .bind(&c.events_url)
    .bind(&c.actions_url)
    .bind(now)
    .bind(now)
    .bind(c.demo)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// The bundle's events (those already here are kept as they are), and each one's `seq`
/// in the bundle mapped to its `seq` here.
async fn import_events(
    tx: &mut Tx,
    cluster_id: Option<i64>,
    events: &[BundleEvent],
) -> Result<HashMap<i64, i64>> {
    let mut seqs = HashMap::new();
    for e in events {
        let cluster = cluster_id
            .ok_or_else(|| StoreError::Invalid("the bundle has events but no cluster".into()))?;
        sqlx::query(
            "INSERT OR IGNORE INTO events (cluster_id, source, event_id, stream_sequence, type, subject, \
             service, severity, time_ms, received_ms, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(cluster)
        .bind(&e.source)
        .bind(&e.event_id)
        .bind(e.stream_sequence)
        .bind(&e.ty)
        .bind(&e.subject)
        .bind(&e.service)
        .bind(&e.severity)
        .bind(e.time_ms)
        .bind(e.received_ms)
        .bind(&e.raw)
        .execute(&mut **tx)
        .await?;
        let (seq,): (i64,) =
            sqlx::query_as("SELECT seq FROM events WHERE source = ? AND event_id = ?")
                .bind(&e.source)
                .bind(&e.event_id)
                .fetch_one(&mut **tx)
                .await?;
        seqs.insert(e.seq, seq);
    }
    Ok(seqs)
}

/// The incident itself; a demo's stays marked as one.
async fn import_incident(tx: &mut Tx, bundle: &Bundle, cluster_id: Option<i64>) -> Result<i64> {
    let i = &bundle.incident;
    let (incident_id,): (i64,) = sqlx::query_as(
        "INSERT INTO incidents (public_id, cluster_id, title, service, severity, status, commander, \
         opened_ms, acknowledged_ms, mitigated_ms, resolved_ms, updated_ms, opened_by, demo) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&i.public_id)
    .bind(cluster_id)
    .bind(&i.title)
    .bind(&i.service)
    .bind(&i.severity)
    .bind(&i.status)
    .bind(&i.commander)
    .bind(i.opened_ms)
    .bind(i.acknowledged_ms)
    .bind(i.mitigated_ms)
    .bind(i.resolved_ms)
    .bind(i.updated_ms)
    .bind(&i.opened_by)
    .bind(i.demo || bundle.cluster.as_ref().is_some_and(|c| c.demo))
    .fetch_one(&mut **tx)
    .await?;
    Ok(incident_id)
}

/// The timeline, its events and corrections pointed at their rows here. Returns each
/// entry's id in the bundle mapped to its id here.
async fn import_timeline(
    tx: &mut Tx,
    incident_id: i64,
    timeline: &[BundleEntry],
    seqs: &HashMap<i64, i64>,
) -> Result<HashMap<i64, i64>> {
    let mut entries = HashMap::new();
    for e in timeline {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, data, event_seq, amends) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(incident_id)
        .bind(e.at_ms)
        .bind(&e.kind)
        .bind(&e.author)
        .bind(&e.body)
        .bind(&e.data)
        .bind(e.event_seq.and_then(|s| seqs.get(&s).copied()))
        .bind(e.amends.and_then(|a| entries.get(&a).copied()))
        .fetch_one(&mut **tx)
        .await?;
        entries.insert(e.id, id);
    }
    Ok(entries)
}

/// The incident's actions, marked as imported: history, never sent from here.
async fn import_actions(
    tx: &mut Tx,
    incident_id: i64,
    cluster: i64,
    actions: &[BundleAction],
) -> Result<()> {
    for a in actions {
        sqlx::query(
            "INSERT OR IGNORE INTO actions (public_id, incident_id, cluster_id, kind, service, target, \
             from_value, to_value, preview, state, proposed_by, confirmed_by, reason, idempotency_key, \
             send_after_ms, remote_id, error, succeeded_ms, verification, created_ms, updated_ms, imported) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        )
        .bind(&a.public_id)
        .bind(incident_id)
        .bind(cluster)
        .bind(&a.kind)
        .bind(&a.service)
        .bind(&a.target)
        .bind(&a.from_value)
        .bind(&a.to_value)
        .bind(&a.preview)
        .bind(&a.state)
        .bind(&a.proposed_by)
        .bind(&a.confirmed_by)
        .bind(&a.reason)
        .bind(&a.idempotency_key)
        .bind(a.send_after_ms)
        .bind(&a.remote_id)
        .bind(&a.error)
        .bind(a.succeeded_ms)
        .bind(&a.verification)
        .bind(a.created_ms)
        .bind(a.updated_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The review's rows, onto the imported incident (annotations onto its new entry ids).
async fn import_review(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    incident_id: i64,
    review: &BundleReview,
    entries: &HashMap<i64, i64>,
) -> Result<()> {
    if let Some(rc) = &review.root_cause {
        sqlx::query(
            "INSERT INTO incident_reviews (incident_id, root_cause, updated_by, updated_ms) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(incident_id)
        .bind(&rc.root_cause)
        .bind(&rc.updated_by)
        .bind(rc.updated_ms)
        .execute(&mut **tx)
        .await?;
    }
    for f in &review.factors {
        sqlx::query(
            "INSERT INTO contributing_factors (incident_id, factor, factor_key, added_by, added_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(incident_id)
        .bind(&f.factor)
        .bind(&f.factor_key)
        .bind(&f.added_by)
        .bind(f.added_ms)
        .execute(&mut **tx)
        .await?;
    }
    for m in &review.moment_edits {
        sqlx::query(
            "INSERT INTO moment_edits (incident_id, moment, at_ms, reason, author, edited_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(incident_id)
        .bind(&m.moment)
        .bind(m.at_ms)
        .bind(&m.reason)
        .bind(&m.author)
        .bind(m.edited_ms)
        .execute(&mut **tx)
        .await?;
    }
    for a in &review.annotations {
        let entry = entries.get(&a.entry_id).ok_or_else(|| {
            StoreError::Invalid(format!(
                "an annotation names timeline entry {} which is not in the bundle",
                a.entry_id
            ))
        })?;
        sqlx::query(
            "INSERT INTO annotations (incident_id, entry_id, body, author, created_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(incident_id)
        .bind(entry)
        .bind(&a.body)
        .bind(&a.author)
        .bind(a.created_ms)
        .execute(&mut **tx)
        .await?;
    }
    for f in &review.follow_ups {
        sqlx::query(
            "INSERT INTO follow_ups (incident_id, title, owner, due, status, created_by, created_ms, \
             updated_by, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(incident_id)
        .bind(&f.title)
        .bind(&f.owner)
        .bind(&f.due)
        .bind(&f.status)
        .bind(&f.created_by)
        .bind(f.created_ms)
        .bind(&f.updated_by)
        .bind(f.updated_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
