//! Incidents and their append-only timelines.
//!
//! Every change to an incident is written together with the timeline entry that records
//! it, in one transaction: the timeline can never miss a change, nor show one that did
//! not happen.

use sqlx::{Sqlite, Transaction};

use super::{now_ms, Result, Store, StoreError};
use crate::incident::{
    clean_title, EntryKind, Incident, IncidentStatus, NewIncident, Severity, TimelineEntry,
};

/// The longest timeline page a caller may ask for.
pub const MAX_PAGE: i64 = 1000;
/// Entries a bulk read (`timeline_bulk`) returns at most.
pub const MAX_BULK_PAGE: i64 = 10_000;

/// `SELECT` of every incident column, then the rest of the query (static SQL only).
macro_rules! select_incidents {
    ($rest:literal) => {
        concat!(
            "SELECT i.id, i.public_id, i.cluster_id, i.title, i.service, i.severity, i.status, \
             i.commander, i.opened_ms, i.acknowledged_ms, i.mitigated_ms, i.resolved_ms, \
             i.updated_ms, \
             (SELECT COUNT(*) FROM timeline_entries t WHERE t.incident_id = i.id) AS entry_count, \
             (i.demo OR COALESCE((SELECT c.demo FROM clusters c WHERE c.id = i.cluster_id), 0)) AS demo \
             FROM incidents i ",
            $rest
        )
    };
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: i64,
    public_id: String,
    cluster_id: Option<i64>,
    title: String,
    service: Option<String>,
    severity: String,
    status: String,
    commander: Option<String>,
    opened_ms: i64,
    acknowledged_ms: Option<i64>,
    mitigated_ms: Option<i64>,
    resolved_ms: Option<i64>,
    updated_ms: i64,
    entry_count: i64,
    demo: bool,
}

impl TryFrom<IncidentRow> for Incident {
    type Error = StoreError;
    fn try_from(r: IncidentRow) -> Result<Self> {
        Ok(Incident {
            severity: Severity::parse(&r.severity)
                .ok_or_else(|| StoreError::Invalid(format!("unknown severity {:?}", r.severity)))?,
            status: IncidentStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Invalid(format!("unknown status {:?}", r.status)))?,
            id: r.id,
            public_id: r.public_id,
            cluster_id: r.cluster_id,
            title: r.title,
            service: r.service,
            commander: r.commander,
            opened_ms: r.opened_ms,
            acknowledged_ms: r.acknowledged_ms,
            mitigated_ms: r.mitigated_ms,
            resolved_ms: r.resolved_ms,
            updated_ms: r.updated_ms,
            entry_count: r.entry_count,
            demo: r.demo,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    id: i64,
    incident_id: i64,
    at_ms: i64,
    kind: String,
    author: String,
    body: String,
    amends: Option<i64>,
    event_type: Option<String>,
    refused: Option<String>,
    not_applied: bool,
}

/// The columns of a timeline page, `t` being `timeline_entries`: the entry and, for an
/// entry about a recorded event, the event's type.
pub(super) const ENTRY_COLUMNS: &str =
    "t.id, t.incident_id, t.at_ms, t.kind, t.author, t.body, t.amends, \
     (SELECT e.type FROM events e WHERE e.seq = t.event_seq) AS event_type, \
     CASE WHEN t.author = 'team sync' THEN json_extract(t.data, '$.team_refused') END AS refused, \
     EXISTS (SELECT 1 FROM team_entries te JOIN team_outbox o ON o.id = te.record \
             WHERE te.entry_id = t.id AND o.outcome = 'refused') AS not_applied";

impl TryFrom<EntryRow> for TimelineEntry {
    type Error = StoreError;
    fn try_from(r: EntryRow) -> Result<Self> {
        Ok(TimelineEntry {
            kind: EntryKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Invalid(format!("unknown entry kind {:?}", r.kind)))?,
            id: r.id,
            incident_id: r.incident_id,
            at_ms: r.at_ms,
            author: r.author,
            body: r.body,
            amends: r.amends,
            event_type: r
                .event_type
                .map(|t| t.strip_prefix("dev.firebreak.").unwrap_or(&t).to_owned()),
            refused: r.refused.and_then(|json| {
                serde_json::from_str::<crate::incident::RefusedChange>(&json).ok()
            }),
            not_applied: r.not_applied,
        })
    }
}

/// A timeline entry about to be written.
pub struct Append<'a> {
    pub incident_id: i64,
    pub at_ms: i64,
    pub kind: EntryKind,
    pub author: &'a str,
    pub body: &'a str,
    pub amends: Option<i64>,
    /// The recorded event the entry is about, if any.
    pub event_seq: Option<i64>,
}

/// Writes a timeline entry and its audit record (every entry written here is a change
/// someone made).
pub async fn append(tx: &mut Transaction<'static, Sqlite>, e: Append<'_>) -> Result<i64> {
    let id = insert_entry(tx, &e).await?;
    super::audit::record(
        tx,
        e.author,
        &format!("incident/{}", e.incident_id),
        e.kind.as_str(),
        &serde_json::json!({ "entry": id, "body": e.body, "amends": e.amends }),
    )
    .await?;
    Ok(id)
}

/// Writes a timeline entry alone; the caller writes the audit record that fits it.
/// The one place a timeline entry is inserted.
pub async fn insert_entry(tx: &mut Transaction<'static, Sqlite>, e: &Append<'_>) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, amends, event_seq) \
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(e.incident_id)
    .bind(e.at_ms)
    .bind(e.kind.as_str())
    .bind(e.author)
    .bind(e.body)
    .bind(e.amends)
    .bind(e.event_seq)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// An incident about to be opened, by a person or by the incident rules.
pub struct Opening<'a> {
    pub cluster_id: Option<i64>,
    /// Text from outside: made a valid title by [`clean_title`], or refused.
    pub title: &'a str,
    pub service: Option<&'a str>,
    pub severity: Severity,
    /// The rule that opened it; None when a person did.
    pub rule: Option<&'a str>,
    pub author: &'a str,
    /// When the opening entry happened (the triggering event's time, or now).
    pub at_ms: i64,
    pub event_seq: Option<i64>,
}

/// Opens an incident with its first timeline entry and audit record, in the caller's
/// transaction: the one path for incidents opened by hand and by the rules, with one set
/// of checks. Returns the new id and the title as stored.
pub async fn open_in(
    tx: &mut Transaction<'static, Sqlite>,
    o: Opening<'_>,
) -> Result<(i64, String)> {
    let author = require_author(o.author)?;
    let title = clean_title(o.title)
        .ok_or_else(|| StoreError::Invalid("an incident needs a title".into()))?;
    let service = o.service.map(str::trim).filter(|s| !s.is_empty());
    let now = now_ms();
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO incidents (public_id, cluster_id, title, service, severity, status, \
         opened_ms, updated_ms, opened_by) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?) RETURNING id",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(o.cluster_id)
    .bind(&title)
    .bind(service)
    .bind(o.severity.as_str())
    .bind(now)
    .bind(now)
    .bind(o.rule)
    .fetch_one(&mut **tx)
    .await?;
    let body = match o.rule {
        Some(rule) => format!(
            "Opened automatically as {} by rule {rule}: {title}",
            o.severity.as_str()
        ),
        None => format!("Opened by hand as {}: {title}", o.severity.as_str()),
    };
    append(
        tx,
        Append {
            incident_id: id,
            at_ms: o.at_ms,
            kind: EntryKind::Opened,
            author,
            body: &body,
            amends: None,
            event_seq: o.event_seq,
        },
    )
    .await?;
    Ok((id, title))
}

/// What the console's own detectors (a rollout guard, an objective's burn rate) say about a
/// service: the incident to open when none is open, and the entry to write on it.
pub struct Finding<'a> {
    pub cluster_id: i64,
    pub service: &'a str,
    pub title: &'a str,
    pub severity: Severity,
    pub rule: &'a str,
    pub kind: EntryKind,
    pub entry: &'a str,
    /// When what it is about happened, for the opening entry.
    pub at_ms: i64,
}

/// Writes a finding on the service's open incident, opening one when none is open, in the
/// caller's transaction. Returns the incident.
pub async fn open_or_attach_in(
    tx: &mut Transaction<'static, Sqlite>,
    f: &Finding<'_>,
) -> Result<i64> {
    let open: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM incidents WHERE cluster_id = ? AND service = ? \
         AND status != 'resolved' ORDER BY id DESC LIMIT 1",
    )
    .bind(f.cluster_id)
    .bind(f.service)
    .fetch_optional(&mut **tx)
    .await?;
    let incident = match open {
        Some((id,)) => id,
        None => {
            open_in(
                tx,
                Opening {
                    cluster_id: Some(f.cluster_id),
                    title: f.title,
                    service: Some(f.service),
                    severity: f.severity,
                    rule: Some(f.rule),
                    author: crate::incident::ENGINE_AUTHOR,
                    at_ms: f.at_ms,
                    event_seq: None,
                },
            )
            .await?
            .0
        }
    };
    append(
        tx,
        Append {
            incident_id: incident,
            at_ms: now_ms(),
            kind: f.kind,
            author: crate::incident::ENGINE_AUTHOR,
            body: f.entry,
            amends: None,
            event_seq: None,
        },
    )
    .await?;
    Ok(incident)
}

impl Store {
    /// [`open_or_attach_in`] in a transaction of its own.
    pub async fn open_or_attach(&self, f: &Finding<'_>) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let id = open_or_attach_in(&mut tx, f).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// The fields a change checks before it is made: (status, severity, commander).
async fn current(
    tx: &mut Transaction<'static, Sqlite>,
    id: i64,
) -> Result<(String, String, Option<String>)> {
    sqlx::query_as("SELECT status, severity, commander FROM incidents WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("incident {id}"),
        })
}

/// Sets an incident's status (?1) at ?2 (?3: its id); each status keeps the time it was
/// first reached, skipped steps stay empty. Changes made here and ones from the team.
pub(super) const SET_STATUS: &str = "UPDATE incidents SET status = ?1, \
     acknowledged_ms = CASE WHEN ?1 = 'acknowledged' THEN COALESCE(acknowledged_ms, ?2) ELSE acknowledged_ms END, \
     mitigated_ms = CASE WHEN ?1 = 'mitigated' THEN COALESCE(mitigated_ms, ?2) ELSE mitigated_ms END, \
     resolved_ms = CASE WHEN ?1 = 'resolved' THEN COALESCE(resolved_ms, ?2) ELSE resolved_ms END, \
     updated_ms = ?2 WHERE id = ?3";

pub(super) fn require_author(author: &str) -> Result<&str> {
    let author = author.trim();
    if author.is_empty() {
        return Err(StoreError::Invalid("every change needs an author".into()));
    }
    Ok(author)
}

impl Store {
    /// Opens an incident by hand; its first timeline entry says who opened it and why.
    pub async fn open_incident(&self, new: &NewIncident, author: &str) -> Result<Incident> {
        let mut tx = self.begin_write().await?;
        let (id, _) = open_in(
            &mut tx,
            Opening {
                cluster_id: new.cluster_id,
                title: &new.title,
                service: new.service.as_deref(),
                severity: new.severity,
                rule: None,
                author,
                at_ms: now_ms(),
                event_seq: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.incident(id).await
    }

    /// Resolves the incidents a previous demo run left unresolved on the demo cluster,
    /// each with a note saying why; returns how many. Only demo clusters are touched.
    pub async fn close_previous_demo(&self, cluster_id: i64, note: &str) -> Result<usize> {
        let open: Vec<(i64,)> = sqlx::query_as(
            "SELECT i.id FROM incidents i JOIN clusters c ON c.id = i.cluster_id \
             WHERE i.cluster_id = ? AND c.demo = 1 AND i.status != 'resolved'",
        )
        .bind(cluster_id)
        .fetch_all(self.reader())
        .await?;
        for (id,) in &open {
            self.add_note(*id, note, crate::incident::ENGINE_AUTHOR)
                .await?;
            self.change_status(
                *id,
                IncidentStatus::Resolved,
                crate::incident::ENGINE_AUTHOR,
            )
            .await?;
        }
        Ok(open.len())
    }

    pub async fn incident(&self, id: i64) -> Result<Incident> {
        let row: Option<IncidentRow> = sqlx::query_as(select_incidents!("WHERE i.id = ?"))
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.ok_or_else(|| StoreError::NotFound {
            what: format!("incident {id}"),
        })?
        .try_into()
    }

    /// Every incident: unresolved first, most severe first, then oldest first.
    pub async fn incidents(&self) -> Result<Vec<Incident>> {
        let rows: Vec<IncidentRow> = sqlx::query_as(select_incidents!(
            "ORDER BY (i.status = 'resolved'), \
             CASE i.severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END, \
             i.opened_ms, i.id"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(Incident::try_from).collect()
    }

    /// Writes the timeline entry for a change made in `tx`, commits both, and returns
    /// the incident as it now is.
    async fn record_change(
        &self,
        mut tx: Transaction<'static, Sqlite>,
        id: i64,
        at_ms: i64,
        kind: EntryKind,
        author: &str,
        body: &str,
    ) -> Result<Incident> {
        append(
            &mut tx,
            Append {
                incident_id: id,
                at_ms,
                kind,
                author,
                body,
                amends: None,
                event_seq: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.incident(id).await
    }

    /// Moves an incident forward and records when. Backward moves are refused.
    pub async fn change_status(
        &self,
        id: i64,
        to: IncidentStatus,
        author: &str,
    ) -> Result<Incident> {
        let author = require_author(author)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (current, _, _) = current(&mut tx, id).await?;
        let from = IncidentStatus::parse(&current)
            .ok_or_else(|| StoreError::Invalid(format!("unknown status {current:?}")))?;
        if !from.can_move_to(to) {
            return Err(StoreError::Invalid(format!(
                "incident {id} is {}: it cannot move to {}",
                from.as_str(),
                to.as_str()
            )));
        }
        // Each status keeps the time it was first reached; skipped steps stay empty.
        sqlx::query(SET_STATUS)
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let body = format!("Status {} → {}", from.as_str(), to.as_str());
        self.record_change(tx, id, now, EntryKind::StatusChanged, author, &body)
            .await
    }

    /// Changes an incident's severity, with the reason on the timeline.
    pub async fn change_severity(&self, id: i64, to: Severity, author: &str) -> Result<Incident> {
        let author = require_author(author)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (_, current, _) = current(&mut tx, id).await?;
        if current == to.as_str() {
            return Err(StoreError::Invalid(format!(
                "incident {id} is already {current}"
            )));
        }
        sqlx::query("UPDATE incidents SET severity = ?, updated_ms = ? WHERE id = ?")
            .bind(to.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let body = format!("Severity {current} → {}", to.as_str());
        self.record_change(tx, id, now, EntryKind::SeverityChanged, author, &body)
            .await
    }

    /// Sets who commands the incident: the author taking it, or handing it to someone.
    /// `None` steps down without a successor.
    pub async fn set_commander(
        &self,
        id: i64,
        commander: Option<&str>,
        author: &str,
    ) -> Result<Incident> {
        let author = require_author(author)?;
        let commander = commander.map(str::trim).filter(|c| !c.is_empty());
        if commander.is_some_and(|c| c.chars().count() > 100) {
            return Err(StoreError::Invalid(
                "a commander's name is at most 100 characters".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (current,): (Option<String>,) =
            sqlx::query_as("SELECT commander FROM incidents WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("incident {id}"),
                })?;
        if current.as_deref() == commander {
            return Err(StoreError::Invalid(format!(
                "{} already commands incident {id}",
                commander.unwrap_or("nobody")
            )));
        }
        sqlx::query("UPDATE incidents SET commander = ?, updated_ms = ? WHERE id = ?")
            .bind(commander)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let from = current.as_deref().unwrap_or("nobody");
        let body = match commander {
            Some(c) if c == author => format!("{author} took command (was {from})"),
            Some(c) => format!("Command handed from {from} to {c}"),
            None => format!("{from} stepped down as commander"),
        };
        self.record_change(tx, id, now, EntryKind::CommanderChanged, author, &body)
            .await
    }

    /// Adds a note to the timeline.
    pub async fn add_note(
        &self,
        incident_id: i64,
        text: &str,
        author: &str,
    ) -> Result<TimelineEntry> {
        self.append_text(incident_id, EntryKind::Note, text, author, None)
            .await
    }

    /// Corrects an earlier entry. The original stays; the correction names it.
    pub async fn add_correction(
        &self,
        incident_id: i64,
        amends: i64,
        text: &str,
        author: &str,
    ) -> Result<TimelineEntry> {
        self.append_text(
            incident_id,
            EntryKind::Correction,
            text,
            author,
            Some(amends),
        )
        .await
    }

    async fn append_text(
        &self,
        incident_id: i64,
        kind: EntryKind,
        text: &str,
        author: &str,
        amends: Option<i64>,
    ) -> Result<TimelineEntry> {
        let author = require_author(author)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreError::Invalid("an empty note says nothing".into()));
        }
        let mut tx = self.begin_write().await?;
        if let Some(amended) = amends {
            // A correction must amend an entry of the same incident.
            let owner: Option<(i64,)> =
                sqlx::query_as("SELECT incident_id FROM timeline_entries WHERE id = ?")
                    .bind(amended)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner.map(|(i,)| i) != Some(incident_id) {
                return Err(StoreError::Invalid(format!(
                    "entry {amended} is not on incident {incident_id}'s timeline"
                )));
            }
        }
        let id = append(
            &mut tx,
            Append {
                incident_id,
                at_ms: now_ms(),
                kind,
                author,
                body: text,
                amends,
                event_seq: None,
            },
        )
        .await?;
        sqlx::query("UPDATE incidents SET updated_ms = ? WHERE id = ?")
            .bind(now_ms())
            .bind(incident_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let row: EntryRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM timeline_entries t WHERE t.id = ?"
        )))
        .bind(id)
        .fetch_one(self.reader())
        .await?;
        row.try_into()
    }

    /// One page of an incident's timeline in time order (ties in recording order),
    /// after the entry at `after` = (at_ms, id): keyset pagination, never OFFSET.
    pub async fn timeline(
        &self,
        incident_id: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<TimelineEntry>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM timeline_entries t \
             WHERE t.incident_id = ? AND (t.at_ms, t.id) > (?, ?) ORDER BY t.at_ms, t.id LIMIT ?"
        )))
        .bind(incident_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(TimelineEntry::try_from).collect()
    }

    /// Up to `limit` entries after `after` (time, id) in timeline order, as
    /// `(id, at_ms, kind, author, body)`: for reading a whole timeline at once (reports).
    /// SQLite writes the page as one JSON array; read row by row through sqlx a
    /// 100,000-entry timeline costs about 0.3 s (every value copied, each row a message
    /// to the async side), this way well under half that.
    pub async fn timeline_bulk(
        &self,
        incident_id: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<(i64, i64, String, String, String)>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let (page,): (String,) = sqlx::query_as(
            "SELECT json_group_array(json_array(id, at_ms, kind, author, body) ORDER BY at_ms, id) \
             FROM (SELECT id, at_ms, kind, author, body FROM timeline_entries \
                   WHERE incident_id = ? AND (at_ms, id) > (?, ?) ORDER BY at_ms, id LIMIT ?)",
        )
        .bind(incident_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit.clamp(1, MAX_BULK_PAGE))
        .fetch_one(self.reader())
        .await?;
        serde_json::from_str(&page).map_err(|e| StoreError::Invalid(format!("timeline page: {e}")))
    }

    /// Entries recorded after entry `since_id`, in recording order: what a live view has
    /// not seen yet, wherever their times put them on the timeline (a backfilled event or
    /// a step stamped by another clock can sort before entries already shown).
    pub async fn timeline_since(
        &self,
        incident_id: i64,
        since_id: i64,
        limit: i64,
    ) -> Result<Vec<TimelineEntry>> {
        let rows: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM timeline_entries t \
             WHERE t.incident_id = ? AND t.id > ? ORDER BY t.id LIMIT ?"
        )))
        .bind(incident_id)
        .bind(since_id)
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(TimelineEntry::try_from).collect()
    }
}
