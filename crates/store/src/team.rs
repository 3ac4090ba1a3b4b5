//! The console's side of team sync in the store (TEAM.md): the link, the outbox the
//! triggers of migration 0011 fill in the same transaction as each change, the answers,
//! and the records that arrive, applied with the cursor in one transaction so a crash
//! neither loses nor repeats one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::{now_ms, Result, Store, StoreError};
use crate::incident::EntryKind;
use firebreak_protocol::team::{Body, Outcome, Record, Shared};

/// Who writes the entries only this console keeps (a refused command, a record that
/// could not be applied).
pub const SYNC_AUTHOR: &str = "team sync";

/// The store's link to a team server.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub url: String,
    pub team: String,
    pub token_ref: Option<String>,
    pub ca_file: Option<String>,
    pub console: Uuid,
    pub enabled: bool,
    pub cursor: u64,
    /// The id of the record at the cursor, as this console read it (None before the
    /// first, and on stores from before migration 0013 until the next record).
    pub cursor_record: Option<Uuid>,
}

/// A record waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    pub n: i64,
    pub record: Record,
}

/// What one call to [`Store::apply_team`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub records: usize,
    /// Incidents that changed here (their local ids).
    pub incidents: Vec<i64>,
    pub cursor: u64,
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Marks the transaction as writing what the team's triggers must not queue (records that
/// arrived from the team, an imported bundle), or ends the mark.
pub(super) async fn applying(tx: &mut Transaction<'static, Sqlite>, on: bool) -> Result<()> {
    let sql = if on {
        "INSERT INTO team_applying (id) VALUES (1)"
    } else {
        "DELETE FROM team_applying"
    };
    sqlx::query(sql).execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// Links this store to a team: from now on incidents opened here (not on a demo
    /// cluster) are shared. Relinking to another server or team starts its stream over.
    pub async fn link_team(
        &self,
        url: &str,
        team: &str,
        token_ref: Option<&str>,
        ca_file: Option<&str>,
    ) -> Result<Link> {
        let url = url.trim().trim_end_matches('/');
        let team = team.trim();
        if team.is_empty() || team.chars().count() > 64 {
            return Err(StoreError::Invalid(
                "a team's name is 1 to 64 characters".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let same: Option<(String, String)> =
            sqlx::query_as("SELECT url, team FROM team_link WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        match same {
            Some((u, t)) if u == url && t == team => {
                sqlx::query(
                    "UPDATE team_link SET token_ref = ?, ca_file = ?, enabled = 1 WHERE id = 1",
                )
                .bind(token_ref)
                .bind(ca_file)
                .execute(&mut *tx)
                .await?;
            }
            _ => {
                sqlx::query("DELETE FROM team_link")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO team_link (id, url, team, token_ref, ca_file, console, created_ms) \
                     VALUES (1, ?, ?, ?, ?, ?, ?)",
                )
                .bind(url)
                .bind(team)
                .bind(token_ref)
                .bind(ca_file)
                .bind(Uuid::new_v4().to_string())
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Constraint(_) => StoreError::Invalid(format!(
                        "the team server's URL {url:?} must start with https:// (or http:// on this machine)"
                    )),
                    other => other,
                })?;
            }
        }
        super::audit::record(
            &mut tx,
            "console",
            &format!("team:{team}"),
            "team_linked",
            &serde_json::json!({ "url": url, "team": team }),
        )
        .await?;
        tx.commit().await?;
        self.team_link().await?.ok_or_else(|| StoreError::NotFound {
            what: "team link".into(),
        })
    }

    /// Stops syncing (`enabled = false`) or starts again; what is queued stays queued.
    pub async fn set_team_enabled(&self, enabled: bool) -> Result<()> {
        sqlx::query("UPDATE team_link SET enabled = ? WHERE id = 1")
            .bind(enabled)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    pub async fn team_link(&self) -> Result<Option<Link>> {
        type Row = (
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            bool,
            i64,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT url, team, token_ref, ca_file, console, enabled, cursor, cursor_record \
                 FROM team_link WHERE id = 1",
        )
        .fetch_optional(&self.read)
        .await?;
        row.map(
            |(url, team, token_ref, ca_file, console, enabled, cursor, cursor_record)| {
                Ok(Link {
                    url,
                    team,
                    token_ref,
                    ca_file,
                    console: console.parse().map_err(|_| {
                        StoreError::Invalid(format!(
                            "the team link's console id {console:?} is not a UUID"
                        ))
                    })?,
                    enabled,
                    cursor: cursor as u64,
                    cursor_record: cursor_record.and_then(|r| r.parse().ok()),
                })
            },
        )
        .transpose()
    }

    /// How many records wait to be pushed.
    pub async fn team_pending_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM team_outbox WHERE answered_ms IS NULL")
                .fetch_one(&self.read)
                .await?,
        )
    }

    /// The oldest records waiting to be pushed, in the order they were made.
    pub async fn team_pending(&self, limit: i64) -> Result<Vec<Pending>> {
        let rows: Vec<(i64, String, String, String, i64, String, i64)> = sqlx::query_as(
            "SELECT o.n, o.id, i.public_id, o.kind, o.at_ms, o.body, o.incident_id \
             FROM team_outbox o JOIN incidents i ON i.id = o.incident_id \
             WHERE o.answered_ms IS NULL ORDER BY o.n LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for (n, id, incident, kind, at_ms, body, incident_id) in rows {
            match pending_record(n, &id, &incident, kind, at_ms, &body) {
                Ok(record) => pending.push(Pending { n, record }),
                Err(message) => unreadable.push((n, id, incident_id, message)),
            }
        }
        if !unreadable.is_empty() {
            // A record this console cannot read back would block the queue behind it for
            // good: it is answered here, kept in the outbox as it was, and noted.
            self.team_unreadable(&unreadable).await?;
        }
        Ok(pending)
    }

    /// Answers queued records that do not read back (`invalid`, with why) and notes each
    /// on its incident; the rest of the queue goes on.
    async fn team_unreadable(&self, rows: &[(i64, String, i64, String)]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for (n, id, incident_id, message) in rows {
            tracing::warn!(n, %message, "a queued team record does not read back; not pushed");
            let outcome = Outcome::Invalid {
                id: id.parse().unwrap_or_else(|_| Uuid::nil()),
                message: message.clone(),
            };
            sqlx::query(
                "UPDATE team_outbox SET answered_ms = ?, outcome = 'invalid', answer = ? \
                 WHERE n = ? AND answered_ms IS NULL",
            )
            .bind(now)
            .bind(serde_json::to_string(&outcome).map_err(|e| StoreError::Invalid(e.to_string()))?)
            .bind(n)
            .execute(&mut *tx)
            .await?;
            let text = format!(
                "This console could not read back a change it queued for the team ({message}); it was not sent and stays on this console only."
            );
            let data = serde_json::json!({ "team_invalid": { "record": id, "message": message } });
            local_entry(&mut tx, *incident_id, now, &text, &data).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps the server's answers to a push. A refused command also gets an entry on
    /// this console's timeline, saying who changed the field and when, with what the
    /// person wanted in its data so the window can offer to redo it.
    /// Returns the incidents that got such an entry.
    pub async fn team_answered(
        &self,
        pushed: &[Pending],
        outcomes: &[Outcome],
    ) -> Result<Vec<i64>> {
        let now = now_ms();
        let mut noted = Vec::new();
        let mut tx = self.begin_write().await?;
        for (pending, outcome) in pushed.iter().zip(outcomes) {
            let (name, seq) = match outcome {
                Outcome::Accepted { seq, .. } => ("accepted", Some(*seq as i64)),
                Outcome::Duplicate { seq, .. } => ("duplicate", Some(*seq as i64)),
                Outcome::Refused { .. } => ("refused", None),
                Outcome::Invalid { .. } => ("invalid", None),
            };
            sqlx::query(
                "UPDATE team_outbox SET answered_ms = ?, outcome = ?, seq = ?, answer = ? \
                 WHERE n = ? AND answered_ms IS NULL",
            )
            .bind(now)
            .bind(name)
            .bind(seq)
            .bind(serde_json::to_string(outcome).map_err(|e| StoreError::Invalid(e.to_string()))?)
            .bind(pending.n)
            .execute(&mut *tx)
            .await?;
            let (incident_id,): (i64,) =
                sqlx::query_as("SELECT incident_id FROM team_outbox WHERE n = ?")
                    .bind(pending.n)
                    .fetch_one(&mut *tx)
                    .await?;
            match outcome {
                Outcome::Refused {
                    field,
                    current,
                    by,
                    at,
                    ..
                } => {
                    let (wanted, expected) = match &pending.record.body {
                        Body::Command { value, expect, .. } => (value.clone(), expect.clone()),
                        _ => (None, None),
                    };
                    let text =
                        refusal_text(field, current.as_deref(), by, *at, wanted.as_deref(), now);
                    let data = serde_json::json!({
                        "team_refused": {
                            "record": pending.record.id,
                            "field": field,
                            "wanted": wanted,
                            "expected": expected,
                            "current": current,
                            "by": by,
                            "at": at,
                        }
                    });
                    local_entry(&mut tx, incident_id, now, &text, &data).await?;
                    noted.push(incident_id);
                }
                Outcome::Invalid { message, .. } => {
                    let text = format!(
                        "The team did not take this console's {} record: {message}. It stays on this console only.",
                        pending.record.body.kind_name()
                    );
                    let data = serde_json::json!({ "team_invalid": { "record": pending.record.id, "message": message } });
                    local_entry(&mut tx, incident_id, now, &text, &data).await?;
                    noted.push(incident_id);
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(noted)
    }

    /// The team's database was restored from an older copy (the stream ends before this
    /// console's cursor, or has another record at it): reads the team again from the
    /// start, skipping the records already here, and queues this console's own records
    /// that the team had taken to be sent again; the server answers those it still has
    /// as duplicates and takes the others anew, so the team's record is whole again once
    /// every console that held a lost record has connected. Refused and invalid records
    /// stay answered. Audited; returns how many records were queued again.
    pub async fn team_rewind(&self, why: &str) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let link: Option<(String, i64)> =
            sqlx::query_as("SELECT team, cursor FROM team_link WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        let Some((team, cursor)) = link else {
            return Err(StoreError::Invalid(
                "this store is not linked to a team".into(),
            ));
        };
        sqlx::query("UPDATE team_link SET cursor = 0, cursor_record = NULL WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let requeued = sqlx::query(
            "UPDATE team_outbox SET answered_ms = NULL, outcome = NULL, seq = NULL, answer = NULL \
             WHERE outcome IN ('accepted', 'duplicate')",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        super::audit::record(
            &mut tx,
            "console",
            &format!("team:{team}"),
            "team_rewound",
            &serde_json::json!({ "why": why, "cursor_was": cursor, "requeued": requeued }),
        )
        .await?;
        tx.commit().await?;
        self.outbox_queued().notify_one();
        Ok(requeued)
    }

    /// Applies records from the team's stream, in order, with the cursor, in one
    /// transaction. Records this console pushed are already here and only move the
    /// cursor. A record out of order (not the cursor's next) is refused: the stream has
    /// a gap and must be read again from the cursor. A record the store refuses (a value
    /// out of range, a newer console's kind) is left out with a note saying why, and the
    /// rest still apply: the batch is applied again one record at a time, each in a
    /// savepoint, when one of them fails.
    pub async fn apply_team(&self, records: &[Shared]) -> Result<Applied> {
        match self.apply_team_batch(records, false).await {
            Err(e) if e.is_about_data() => self.apply_team_batch(records, true).await,
            other => other,
        }
    }

    async fn apply_team_batch(&self, records: &[Shared], careful: bool) -> Result<Applied> {
        let mut tx = self.begin_write().await?;
        let (cursor,): (i64,) = sqlx::query_as("SELECT cursor FROM team_link WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Invalid("this store is not linked to a team".into()))?;
        let mut cursor = cursor as u64;
        let mut cursor_record: Option<Uuid> = None;
        let mut applied = Applied::default();
        let ids = serde_json::to_string(
            &records
                .iter()
                .map(|r| r.record.id.to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut ctx = Batch {
            ours: sqlx::query_scalar(
                "SELECT id FROM team_outbox WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect(),
            // Looked for in the careful pass only: a record applied here before (read
            // again after a rewind) fails the fast pass on its unique record id, so the
            // fast pass, which is every batch but those, pays nothing for it.
            known: if careful {
                sqlx::query_scalar(
                    "SELECT record FROM team_entries WHERE record IN (SELECT value FROM json_each(?1)) \
                     UNION SELECT record FROM team_runs WHERE record IN (SELECT value FROM json_each(?1)) \
                     UNION SELECT step_record FROM team_run_steps \
                     WHERE step_record IN (SELECT value FROM json_each(?1))",
                )
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
            } else {
                HashSet::new()
            },
            incidents: HashMap::new(),
            audit: super::audit::Chain::read(&mut tx).await?,
            defer: !careful,
            entries: Vec::new(),
        };
        applying(&mut tx, true).await?;
        for shared in records {
            if shared.seq <= cursor {
                continue;
            }
            if shared.seq != cursor + 1 {
                return Err(StoreError::Invalid(format!(
                    "team record {} arrived after {cursor}: the stream skipped {}",
                    shared.seq,
                    cursor + 1
                )));
            }
            let changed = if careful {
                sqlx::query("SAVEPOINT team_record")
                    .execute(&mut *tx)
                    .await?;
                let chain = ctx.audit.clone();
                match apply_one(&mut tx, &mut ctx, shared).await {
                    Ok(changed) => {
                        sqlx::query("RELEASE team_record").execute(&mut *tx).await?;
                        changed
                    }
                    Err(e) if e.is_about_data() => {
                        sqlx::query("ROLLBACK TO team_record")
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("RELEASE team_record").execute(&mut *tx).await?;
                        // What the record did is undone, its audit record too.
                        ctx.audit = chain;
                        ctx.incidents.clear();
                        tracing::warn!(seq = shared.seq, error = %e, "a team record could not be applied");
                        not_applied(&mut tx, shared, &e.to_string()).await?
                    }
                    Err(e) => return Err(e),
                }
            } else {
                apply_one(&mut tx, &mut ctx, shared).await?
            };
            if let Some(id) = changed {
                if !applied.incidents.contains(&id) {
                    applied.incidents.push(id);
                }
            }
            cursor = shared.seq;
            cursor_record = Some(shared.record.id);
            applied.records += 1;
        }
        ctx.flush(&mut tx).await?;
        applying(&mut tx, false).await?;
        if let Some(record) = cursor_record {
            sqlx::query("UPDATE team_link SET cursor = ?, cursor_record = ? WHERE id = 1")
                .bind(cursor as i64)
                .bind(record.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        applied.cursor = cursor;
        Ok(applied)
    }

    /// Makes again, on the incident as it is now, the change a refusal entry says the team
    /// refused: a new command whose precondition is the current value. Refused when the
    /// incident already has what was wanted.
    pub async fn redo_refused(
        &self,
        entry_id: i64,
        author: &str,
    ) -> Result<crate::incident::Incident> {
        let row: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT incident_id, data FROM timeline_entries WHERE id = ?")
                .bind(entry_id)
                .fetch_optional(&self.read)
                .await?;
        let (incident_id, data) = row.ok_or_else(|| StoreError::NotFound {
            what: format!("timeline entry {entry_id}"),
        })?;
        let refused = data
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .map(|d| d["team_refused"].clone())
            .filter(|r| r.is_object())
            .ok_or_else(|| {
                StoreError::Invalid(format!("entry {entry_id} is not a refused team change"))
            })?;
        let wanted = refused["wanted"].as_str();
        let bad = || {
            StoreError::Invalid(format!(
                "entry {entry_id} names a change this console cannot redo"
            ))
        };
        match refused["field"].as_str() {
            Some("status") => {
                let to = wanted
                    .and_then(crate::incident::IncidentStatus::parse)
                    .ok_or_else(bad)?;
                self.change_status(incident_id, to, author).await
            }
            Some("severity") => {
                let to = wanted
                    .and_then(crate::incident::Severity::parse)
                    .ok_or_else(bad)?;
                self.change_severity(incident_id, to, author).await
            }
            Some("commander") => self.set_commander(incident_id, wanted, author).await,
            Some("root_cause") => {
                self.set_root_cause(incident_id, wanted, author).await?;
                self.incident(incident_id).await
            }
            _ => Err(bad()),
        }
    }

    /// Whether an incident is shared with the team.
    pub async fn is_shared(&self, incident_id: i64) -> Result<bool> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM team_incidents WHERE incident_id = ?",
        )
        .bind(incident_id)
        .fetch_one(&self.read)
        .await?
            > 0)
    }
}

/// What teammates' consoles did on an incident: their actions and runbook runs, as
/// their last records said.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct TeamActivity {
    pub actions: Vec<TeamAction>,
    pub runs: Vec<TeamRun>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TeamAction {
    pub public_id: String,
    pub kind: String,
    pub service: String,
    pub target: String,
    pub from_value: String,
    pub to_value: String,
    pub state: String,
    pub proposed_by: String,
    pub confirmed_by: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub verification: Option<String>,
    pub updated_ms: i64,
    /// The person whose console drives it.
    pub by_name: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, ts_rs::TS, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TeamRun {
    pub runbook_title: String,
    pub current_step: Option<String>,
    pub state: String,
    pub started_by: String,
    pub started_ms: i64,
    pub steps_done: i64,
    pub by_name: String,
}

impl Store {
    pub async fn team_activity(&self, incident_id: i64) -> Result<TeamActivity> {
        let actions = sqlx::query_as::<_, TeamAction>(
            "SELECT public_id, kind, service, target, from_value, to_value, state, proposed_by, confirmed_by, \
             reason, error, verification, updated_ms, by_name FROM team_actions WHERE incident_id = ? \
             ORDER BY created_ms",
        )
        .bind(incident_id)
        .fetch_all(&self.read)
        .await?;
        let runs = sqlx::query_as::<_, TeamRun>(
            "SELECT r.runbook_title, r.current_step, r.state, r.started_by, r.started_ms, \
             (SELECT count(*) FROM team_run_steps s WHERE s.record = r.record) AS steps_done, r.by_name \
             FROM team_runs r WHERE r.incident_id = ? ORDER BY r.started_ms",
        )
        .bind(incident_id)
        .fetch_all(&self.read)
        .await?;
        Ok(TeamActivity { actions, runs })
    }
}

/// "ana took command 20 s ago; your change (commander → ben) was not applied."
fn refusal_text(
    field: &str,
    current: Option<&str>,
    by: &str,
    at: DateTime<Utc>,
    wanted: Option<&str>,
    now_ms: i64,
) -> String {
    let ago = ((now_ms - at.timestamp_millis()).max(0) / 1000) as u64;
    let ago = match ago {
        0..=59 => format!("{ago} s ago"),
        60..=3599 => format!("{} min ago", ago / 60),
        _ => format!("{} h ago", ago / 3600),
    };
    let did = match (field, current) {
        ("status", Some("acknowledged")) => format!("{by} acknowledged this"),
        ("status", Some("resolved")) => format!("{by} resolved this"),
        ("status", Some("open")) => format!("{by} reopened this"),
        ("status", Some(s)) => format!("{by} marked this {s}"),
        ("root_cause", Some(v)) => format!("{by} filed the root cause as {v}"),
        ("commander", Some(c)) if c == by => format!("{by} took command"),
        ("commander", Some(c)) => format!("{by} handed command to {c}"),
        ("commander", None) => format!("{by} left it without a commander"),
        (f, Some(v)) => format!("{by} set its {} to {v}", f.replace('_', " ")),
        (f, None) => format!("{by} cleared its {}", f.replace('_', " ")),
    };
    let yours = wanted.unwrap_or("nobody");
    format!(
        "{did} {ago}; your change ({} → {yours}) was not applied: redo it on the current state if it still holds",
        field.replace('_', " ")
    )
}

/// An entry only this console keeps (the triggers are held off while it is written).
/// One outbox row as the record it queued, or why it does not read back.
fn pending_record(
    n: i64,
    id: &str,
    incident: &str,
    kind: String,
    at_ms: i64,
    body: &str,
) -> std::result::Result<Record, String> {
    let mut body: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("outbox record {n}: {e}"))?;
    let Some(fields) = body.as_object_mut() else {
        return Err(format!("outbox record {n}: its body is not an object"));
    };
    fields.insert("kind".into(), kind.into());
    Ok(Record {
        id: id
            .parse()
            .map_err(|_| format!("outbox record {n}: its id is not a UUID"))?,
        incident: incident
            .parse()
            .map_err(|_| format!("outbox record {n}: its incident's id is not a UUID"))?,
        at: ms_to_time(at_ms),
        body: serde_json::from_value(body)
            .map_err(|e| format!("outbox record {n}: its body does not parse: {e}"))?,
    })
}

async fn local_entry(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    at_ms: i64,
    text: &str,
    data: &serde_json::Value,
) -> Result<()> {
    applying(tx, true).await?;
    sqlx::query(
        "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, data) \
         VALUES (?, ?, 'note', ?, ?, ?)",
    )
    .bind(incident_id)
    .bind(at_ms)
    .bind(SYNC_AUTHOR)
    .bind(text)
    .bind(data.to_string())
    .execute(&mut **tx)
    .await?;
    applying(tx, false).await?;
    Ok(())
}

/// What one batch of arriving records reads once: which of them this console pushed,
/// the incidents already looked up, the audit chain's end.
struct Batch {
    ours: HashSet<String>,
    /// Records of the batch already applied here (read again after a rewind); filled in
    /// the careful pass.
    known: HashSet<String>,
    incidents: HashMap<Uuid, i64>,
    audit: super::audit::Chain,
    /// Whether plain appends (a note, an event's entry: most of a long catch-up) wait in
    /// `entries` and the chain's deferred records for one multi-row INSERT each, rather
    /// than three statements a record. Off in the careful pass, whose savepoints undo
    /// one record at a time.
    defer: bool,
    entries: Vec<DeferredEntry>,
}

/// A plain timeline entry from the team, waiting for [`Batch::flush`].
struct DeferredEntry {
    incident_id: i64,
    at_ms: i64,
    kind: EntryKind,
    author: String,
    text: String,
    data: String,
    event_seq: Option<i64>,
    record: String,
}

impl Batch {
    /// Writes the deferred entries (with their record ids) and audit records. Entries are
    /// never deleted, so the ids after the largest are free; this transaction is the only
    /// writer.
    async fn flush(&mut self, tx: &mut Transaction<'static, Sqlite>) -> Result<()> {
        if !self.entries.is_empty() {
            let (last,): (i64,) =
                sqlx::query_as("SELECT coalesce(max(id), 0) FROM timeline_entries")
                    .fetch_one(&mut **tx)
                    .await?;
            for (n, chunk) in self.entries.chunks(500).enumerate() {
                let first = last + 1 + (n * 500) as i64;
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO timeline_entries (id, incident_id, at_ms, kind, author, body, data, event_seq) ",
                );
                q.push_values(chunk.iter().enumerate(), |mut b, (k, e)| {
                    b.push_bind(first + k as i64)
                        .push_bind(e.incident_id)
                        .push_bind(e.at_ms)
                        .push_bind(e.kind.as_str())
                        .push_bind(e.author.as_str())
                        .push_bind(e.text.as_str())
                        .push_bind(e.data.as_str())
                        .push_bind(e.event_seq);
                });
                q.build().execute(&mut **tx).await?;
                let mut q = sqlx::QueryBuilder::new("INSERT INTO team_entries (entry_id, record) ");
                q.push_values(chunk.iter().enumerate(), |mut b, (k, e)| {
                    b.push_bind(first + k as i64).push_bind(e.record.as_str());
                });
                q.build().execute(&mut **tx).await?;
            }
            self.entries.clear();
        }
        self.audit.flush(tx).await
    }
}

async fn apply_one(
    tx: &mut Transaction<'static, Sqlite>,
    ctx: &mut Batch,
    shared: &Shared,
) -> Result<Option<i64>> {
    let record = &shared.record;
    let record_id = record.id.to_string();
    if !(ctx.defer && is_plain_append(&record.body)) {
        // Whatever this record writes comes after the deferred rows.
        ctx.flush(tx).await?;
    }
    if ctx.ours.contains(&record_id) {
        // Pushed from here: already applied. The answer may have been lost; keep it now.
        sqlx::query(
            "UPDATE team_outbox SET answered_ms = ?, outcome = 'accepted', seq = ? \
             WHERE id = ? AND answered_ms IS NULL",
        )
        .bind(now_ms())
        .bind(shared.seq as i64)
        .bind(&record_id)
        .execute(&mut **tx)
        .await?;
        return Ok(None);
    }
    if ctx.known.contains(&record_id) {
        // Applied here before the team's database was restored from an older copy: it is
        // being read again from the start (`Store::team_rewind`).
        return Ok(None);
    }
    let incident = local_incident(tx, ctx, shared).await?;
    let from = Sender::new(shared);
    match &record.body {
        Body::Unknown => Err(StoreError::Invalid(
            "it is of a kind this console does not know (a newer Firebreak's): update Firebreak to see it".into(),
        )),
        Body::Open {
            title,
            severity,
            service,
            entry,
            ..
        } => {
            let id = match incident {
                Some(id) => id,
                None => open_incident(tx, &from, title, severity, service.as_deref(), entry).await?,
            };
            ctx.incidents.insert(record.incident, id);
            sqlx::query("INSERT OR IGNORE INTO team_incidents (incident_id) VALUES (?)")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            ctx.audit
                .append(tx, &shared.by, &from.subject, "team_open", &from.audit("open"))
                .await?;
            Ok(Some(id))
        }
        Body::Append { .. } => match incident {
            Some(id) => apply_append(tx, ctx, &from, id).await.map(Some),
            None => Ok(None),
        },
        Body::Command {
            field,
            value,
            entry,
            ..
        } => match incident {
            Some(id) => apply_command(tx, ctx, &from, id, field, value.as_deref(), entry).await,
            None => Ok(None),
        },
    }
}

/// Who sent a record from the team, and when the server took it: what every change it
/// makes here is stamped with.
struct Sender<'a> {
    shared: &'a Shared,
    record_id: String,
    /// The server's clock, not the sender's: a teammate's console cannot date a change
    /// before the incident opened (or move its figures). What the sender claimed is kept
    /// beside it as `reported_at`.
    at_ms: i64,
    /// The audit chain's name for the incident.
    subject: String,
}

impl<'a> Sender<'a> {
    fn new(shared: &'a Shared) -> Sender<'a> {
        Sender {
            shared,
            record_id: shared.record.id.to_string(),
            at_ms: shared.accepted_at.timestamp_millis(),
            subject: format!("incident:{}", shared.record.incident),
        }
    }

    /// Who wrote it is the person whose token pushed it (the server stamps it); the
    /// console's machinery (the engine's rules) keeps its own name.
    fn author_of(&self, author: &str) -> String {
        if firebreak_protocol::team::MACHINE_AUTHORS.contains(&author.trim()) {
            author.trim().to_owned()
        } else {
            self.shared.by.clone()
        }
    }

    fn audit(&self, what: &str) -> serde_json::Value {
        serde_json::json!({ "seq": self.shared.seq, "record": self.shared.record.id, "by": self.shared.by, "what": what })
    }
}

/// The local id of the incident a record is about, if this console holds it as a shared
/// one. One it holds but never shared is an error: nothing is merged into it.
async fn local_incident(
    tx: &mut Transaction<'static, Sqlite>,
    ctx: &mut Batch,
    shared: &Shared,
) -> Result<Option<i64>> {
    let public = shared.record.incident;
    if let Some(id) = ctx.incidents.get(&public) {
        return Ok(Some(*id));
    }
    let found: Option<(i64, bool)> = sqlx::query_as(
        "SELECT id, EXISTS (SELECT 1 FROM team_incidents t WHERE t.incident_id = i.id) \
         FROM incidents i WHERE public_id = ?",
    )
    .bind(public.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    match found {
        // An incident this console holds but never shared (a demo's, an imported one, one
        // opened before linking): the team learnt its id somehow (a presence frame, a
        // bundle) and nothing it sends about it is merged.
        Some((_, false)) => Err(StoreError::Invalid(format!(
            "it names an incident this console holds but never shared with the team; \
             nothing of {}'s record was merged into it",
            shared.by
        ))),
        Some((id, true)) => {
            ctx.incidents.insert(public, id);
            Ok(Some(id))
        }
        None => Ok(None),
    }
}

/// A teammate's new incident, with its opening entry.
async fn open_incident(
    tx: &mut Transaction<'static, Sqlite>,
    from: &Sender<'_>,
    title: &str,
    severity: &str,
    service: Option<&str>,
    entry: &str,
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO incidents (public_id, cluster_id, title, service, severity, status, \
         opened_ms, updated_ms) VALUES (?, NULL, ?, ?, ?, 'open', ?, ?) RETURNING id",
    )
    .bind(from.shared.record.incident.to_string())
    .bind(title)
    .bind(service)
    .bind(severity)
    .bind(from.at_ms)
    .bind(from.at_ms)
    .fetch_one(&mut **tx)
    .await?;
    let text = if entry.is_empty() {
        format!("Opened as {severity}: {title}")
    } else {
        entry.to_owned()
    };
    entry_in(
        tx,
        id,
        from.at_ms,
        EntryKind::Opened,
        &from.shared.by,
        &text,
        None,
        None,
        None,
        &from.record_id,
    )
    .await?;
    Ok(id)
}

/// An entry for an incident's timeline: an action's, a runbook's or an audit item goes
/// to its own mirror, a review item to the review, the rest to the timeline (deferred
/// for one multi-row write when the batch allows).
async fn apply_append(
    tx: &mut Transaction<'static, Sqlite>,
    ctx: &mut Batch,
    from: &Sender<'_>,
    id: i64,
) -> Result<i64> {
    let Body::Append {
        entry_kind,
        author,
        text,
        data,
        event,
        amends,
    } = &from.shared.record.body
    else {
        unreachable!("apply_append is called for appends")
    };
    let author = &from.author_of(author);
    if entry_kind.starts_with("action.")
        || entry_kind.starts_with("runbook.")
        || entry_kind.starts_with("audit.")
    {
        mirror_item(
            tx,
            id,
            entry_kind,
            author,
            text,
            data.as_ref(),
            from.at_ms,
            &from.record_id,
            &from.shared.by,
        )
        .await?;
        return Ok(id);
    }
    if let Some(item) = entry_kind.strip_prefix("review.") {
        review_item(
            tx,
            id,
            item,
            author,
            text,
            data.as_ref(),
            from.at_ms,
            &from.record_id,
        )
        .await?;
        let action = format!("team_review_{item}");
        ctx.audit
            .append(
                tx,
                &from.shared.by,
                &from.subject,
                &action,
                &from.audit("append"),
            )
            .await?;
        return Ok(id);
    }
    let event_seq: Option<i64> = match event {
        Some(e) => {
            sqlx::query_scalar("SELECT seq FROM events WHERE source = ? AND event_id = ?")
                .bind(&e.source)
                .bind(&e.id)
                .fetch_optional(&mut **tx)
                .await?
        }
        None => None,
    };
    let amends_entry: Option<i64> = match amends {
        Some(a) => {
            sqlx::query_scalar("SELECT entry_id FROM team_entries WHERE record = ?")
                .bind(a.to_string())
                .fetch_optional(&mut **tx)
                .await?
        }
        None => None,
    };
    // A kind this build does not know, or a correction of an entry it never saw, is kept
    // as a note: the text is what matters, the original kind in the data.
    let kind = EntryKind::parse(entry_kind)
        .filter(|k| (*k == EntryKind::Correction) == amends_entry.is_some())
        .unwrap_or(EntryKind::Note);
    let mut data = data.clone().unwrap_or(serde_json::Value::Null);
    if !data.is_object() {
        data = serde_json::json!({ "value": data });
    }
    data["team"] = serde_json::json!({ "seq": from.shared.seq, "by": from.shared.by, "kind": entry_kind, "event": event, "reported_at": from.shared.record.at });
    let action = format!("team_{}", kind.as_str());
    if ctx.defer && is_plain_append(&from.shared.record.body) {
        ctx.entries.push(DeferredEntry {
            incident_id: id,
            at_ms: from.at_ms,
            kind,
            author: non_empty_author(author).to_owned(),
            text: text.clone(),
            data: data.to_string(),
            event_seq,
            record: from.record_id.clone(),
        });
        ctx.audit.defer(
            &from.shared.by,
            &from.subject,
            &action,
            &from.audit("append"),
        );
        return Ok(id);
    }
    entry_in(
        tx,
        id,
        from.at_ms,
        kind,
        author,
        text,
        Some(&data),
        event_seq,
        amends_entry,
        &from.record_id,
    )
    .await?;
    ctx.audit
        .append(
            tx,
            &from.shared.by,
            &from.subject,
            &action,
            &from.audit("append"),
        )
        .await?;
    Ok(id)
}

/// A change of one of an incident's fields (status, severity, commander, title, root
/// cause), with its entry on the timeline. A field this build does not know changes
/// nothing.
async fn apply_command(
    tx: &mut Transaction<'static, Sqlite>,
    ctx: &mut Batch,
    from: &Sender<'_>,
    id: i64,
    field: &str,
    value: Option<&str>,
    entry: &str,
) -> Result<Option<i64>> {
    let at_ms = from.at_ms;
    let by = &from.shared.by;
    let audit = serde_json::json!({ "seq": from.shared.seq, "record": from.shared.record.id, "value": value });
    let kind = match field {
        "status" => {
            sqlx::query(super::incidents::SET_STATUS)
                .bind(value)
                .bind(at_ms)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            EntryKind::StatusChanged
        }
        "severity" | "commander" | "title" => {
            // The column is one of three fixed names, never the record's text.
            let (column, kind) = match field {
                "severity" => ("severity", EntryKind::SeverityChanged),
                "commander" => ("commander", EntryKind::CommanderChanged),
                _ => ("title", EntryKind::Note),
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE incidents SET {column} = ?, updated_ms = ? WHERE id = ?"
            )))
            .bind(value)
            .bind(at_ms)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            kind
        }
        "root_cause" => {
            // The review is kept beside the timeline, never in it.
            sqlx::query(
                "INSERT INTO incident_reviews (incident_id, root_cause, updated_by, updated_ms) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET \
                 root_cause = excluded.root_cause, updated_by = excluded.updated_by, \
                 updated_ms = excluded.updated_ms",
            )
            .bind(id)
            .bind(value)
            .bind(by)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
            ctx.audit
                .append(tx, by, &from.subject, "team_root_cause", &audit)
                .await?;
            return Ok(Some(id));
        }
        _ => return Ok(None),
    };
    let text = if entry.is_empty() {
        format!("{field} → {}", value.unwrap_or("nobody"))
    } else {
        entry.to_owned()
    };
    let data = serde_json::json!({ "team": { "seq": from.shared.seq, "by": by, "field": field, "reported_at": from.shared.record.at } });
    entry_in(
        tx,
        id,
        at_ms,
        kind,
        by,
        &text,
        Some(&data),
        None,
        None,
        &from.record_id,
    )
    .await?;
    ctx.audit
        .append(tx, by, &from.subject, &format!("team_{field}"), &audit)
        .await?;
    Ok(Some(id))
}

/// A review record that arrived from the team, written to the review's own tables.
#[allow(clippy::too_many_arguments)]
async fn review_item(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    item: &str,
    author: &str,
    text: &str,
    data: Option<&serde_json::Value>,
    at_ms: i64,
    record: &str,
) -> Result<()> {
    let null = serde_json::Value::Null;
    let data = data.unwrap_or(&null);
    let field = |k: &str| data[k].as_str().map(str::to_owned);
    match item {
        "moment" => {
            sqlx::query(
                "INSERT INTO moment_edits (incident_id, moment, at_ms, reason, author, edited_ms) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(incident_id)
            .bind(field("moment"))
            .bind(data["at_ms"].as_i64())
            .bind(text)
            .bind(author)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        }
        "annotation" => {
            let entry: Option<i64> =
                sqlx::query_scalar("SELECT entry_id FROM team_entries WHERE record = ?")
                    .bind(field("entry"))
                    .fetch_optional(&mut **tx)
                    .await?;
            let entry = entry.ok_or_else(|| {
                StoreError::Invalid("an annotation of an entry this console does not have".into())
            })?;
            sqlx::query(
                "INSERT INTO annotations (incident_id, entry_id, body, author, created_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(incident_id)
            .bind(entry)
            .bind(text)
            .bind(author)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        }
        "factor" if field("op").as_deref() == Some("remove") => {
            sqlx::query(
                "DELETE FROM contributing_factors WHERE incident_id = ? AND factor_key = ?",
            )
            .bind(incident_id)
            .bind(super::review::factor_key(text))
            .execute(&mut **tx)
            .await?;
        }
        "factor" => {
            sqlx::query(
                "INSERT OR IGNORE INTO contributing_factors (incident_id, factor, factor_key, added_by, added_ms) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(incident_id)
            .bind(text.trim())
            .bind(super::review::factor_key(text))
            .bind(author)
            .bind(at_ms)
            .execute(&mut **tx)
            .await?;
        }
        "follow_up" => match field("follow_up") {
            // A change of a follow-up made earlier: the later record wins.
            Some(first) => {
                sqlx::query(
                    "UPDATE follow_ups SET title = ?, owner = ?, due = ?, status = ?, updated_by = ?, updated_ms = ? \
                     WHERE id = (SELECT follow_up_id FROM team_follow_ups WHERE record = ?)",
                )
                .bind(text)
                .bind(field("owner"))
                .bind(field("due"))
                .bind(field("status"))
                .bind(author)
                .bind(at_ms)
                .bind(first)
                .execute(&mut **tx)
                .await?;
            }
            None => {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO follow_ups (incident_id, title, owner, due, status, created_by, created_ms, \
                     updated_by, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(incident_id)
                .bind(text)
                .bind(field("owner"))
                .bind(field("due"))
                .bind(field("status"))
                .bind(author)
                .bind(at_ms)
                .bind(author)
                .bind(at_ms)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query("INSERT INTO team_follow_ups (follow_up_id, record) VALUES (?, ?)")
                    .bind(id)
                    .bind(record)
                    .execute(&mut **tx)
                    .await?;
            }
        },
        other => {
            return Err(StoreError::Invalid(format!(
                "review record of a kind this build does not know ({other:?})"
            )))
        }
    }
    Ok(())
}

/// A teammate's action or runbook run, kept in the mirrors (never in `actions` or
/// `runbook_runs`: this console's desk and runner drive only its own).
#[allow(clippy::too_many_arguments)]
async fn mirror_item(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    kind: &str,
    author: &str,
    text: &str,
    data: Option<&serde_json::Value>,
    at_ms: i64,
    record: &str,
    by: &str,
) -> Result<()> {
    let null = serde_json::Value::Null;
    let data = data.unwrap_or(&null);
    let field = |k: &str| data[k].as_str().map(str::to_owned);
    let required =
        |k: &str| field(k).ok_or_else(|| StoreError::Invalid(format!("{kind} record without {k}")));
    match kind {
        "action.state" => {
            let written = sqlx::query(
                "INSERT INTO team_actions (public_id, incident_id, kind, service, target, from_value, to_value, \
                 state, proposed_by, confirmed_by, reason, error, verification, created_ms, updated_ms, by_name) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (public_id) DO UPDATE SET \
                 state = excluded.state, confirmed_by = excluded.confirmed_by, error = excluded.error, \
                 verification = excluded.verification, updated_ms = excluded.updated_ms \
                 WHERE team_actions.by_name = excluded.by_name AND team_actions.incident_id = excluded.incident_id",
            )
            .bind(required("public_id")?)
            .bind(incident_id)
            .bind(required("kind")?)
            .bind(required("service")?)
            .bind(required("target")?)
            .bind(required("from")?)
            .bind(required("to")?)
            .bind(required("state")?)
            .bind(field("proposed_by").unwrap_or_else(|| author.to_owned()))
            .bind(field("confirmed_by"))
            .bind(field("reason"))
            .bind(field("error"))
            .bind(field("verification"))
            .bind(data["created_ms"].as_i64().unwrap_or(at_ms))
            .bind(at_ms)
            .bind(by)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            // Only the console that drives an action records its states (the server
            // checks it too); another person's record of it is not merged.
            if written == 0 {
                return Err(StoreError::Invalid(format!(
                    "action {} is driven by another person's console; {by} cannot record its state",
                    field("public_id").unwrap_or_default()
                )));
            }
        }
        "runbook.run" => match field("run") {
            Some(run) => {
                let moved = sqlx::query(
                    "UPDATE team_runs SET current_step = ?, state = ?, updated_ms = ? \
                     WHERE record = ? AND by_name = ?",
                )
                .bind(field("current_step"))
                .bind(required("state")?)
                .bind(at_ms)
                .bind(&run)
                .bind(by)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    return Err(StoreError::Invalid(format!(
                        "runbook run {run} is not {by}'s to move on"
                    )));
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO team_runs (record, incident_id, runbook_id, runbook_title, current_step, state, \
                     started_by, started_ms, updated_ms, by_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(record)
                .bind(incident_id)
                .bind(required("runbook_id")?)
                .bind(text)
                .bind(field("current_step"))
                .bind(required("state")?)
                .bind(author)
                .bind(data["started_ms"].as_i64().unwrap_or(at_ms))
                .bind(at_ms)
                .bind(by)
                .execute(&mut **tx)
                .await?;
            }
        },
        "audit.record" => {
            sqlx::query(
                "INSERT OR IGNORE INTO team_audit (record, by_name, audit_id, at_ms, actor, subject, what, detail, \
                 prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(record)
            .bind(by)
            .bind(data["id"].as_i64().ok_or_else(|| StoreError::Invalid("audit.record without id".into()))?)
            .bind(data["at_ms"].as_i64().unwrap_or(at_ms))
            .bind(author)
            .bind(required("subject")?)
            .bind(text)
            .bind(required("detail")?)
            .bind(required("prev_hash")?)
            .bind(required("hash")?)
            .execute(&mut **tx)
            .await?;
        }
        "runbook.step" => {
            let stepped = sqlx::query(
                "INSERT INTO team_run_steps (record, step_id, outcome, text, value, author, at_ms, step_record) \
                 SELECT record, ?, ?, ?, ?, ?, ?, ? FROM team_runs WHERE record = ? AND by_name = ?",
            )
            .bind(required("step_id")?)
            .bind(required("outcome")?)
            .bind(text)
            .bind(data["value"].as_f64())
            .bind(author)
            .bind(at_ms)
            .bind(record)
            .bind(required("run")?)
            .bind(by)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if stepped == 0 {
                return Err(StoreError::Invalid(format!(
                    "a step of a runbook run that is not {by}'s"
                )));
            }
        }
        other => {
            return Err(StoreError::Invalid(format!(
                "a record of a kind this build does not know ({other:?})"
            )))
        }
    }
    Ok(())
}

/// A record the store refused: a note on the incident (this console only) says which
/// and why; the record stays in the team's stream for a newer build to read again.
async fn not_applied(
    tx: &mut Transaction<'static, Sqlite>,
    shared: &Shared,
    why: &str,
) -> Result<Option<i64>> {
    let incident: Option<i64> = sqlx::query_scalar("SELECT id FROM incidents WHERE public_id = ?")
        .bind(shared.record.incident.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let Some(incident) = incident else {
        return Ok(None);
    };
    let text = format!(
        "Team record {} from {} could not be applied here: {why}",
        shared.seq, shared.by
    );
    sqlx::query(
        "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, data) \
         VALUES (?, ?, 'note', ?, ?, ?)",
    )
    .bind(incident)
    .bind(now_ms())
    .bind(SYNC_AUTHOR)
    .bind(text)
    .bind(serde_json::json!({ "team_not_applied": { "seq": shared.seq, "record": shared.record.id } }).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(Some(incident))
}

/// An entry's author as the store keeps it (a record may come without one).
fn non_empty_author(author: &str) -> &str {
    if author.trim().is_empty() {
        "unknown"
    } else {
        author
    }
}

/// A record that only adds a plain timeline entry: not a mirrored action, run or audit
/// record, not a review item, not a correction (which looks its original up).
fn is_plain_append(body: &Body) -> bool {
    match body {
        Body::Append {
            entry_kind, amends, ..
        } => {
            amends.is_none()
                && !["action.", "runbook.", "audit.", "review."]
                    .iter()
                    .any(|p| entry_kind.starts_with(p))
        }
        _ => false,
    }
}

/// A timeline entry that arrived from the team, with its record id.
#[allow(clippy::too_many_arguments)]
async fn entry_in(
    tx: &mut Transaction<'static, Sqlite>,
    incident_id: i64,
    at_ms: i64,
    kind: EntryKind,
    author: &str,
    text: &str,
    data: Option<&serde_json::Value>,
    event_seq: Option<i64>,
    amends: Option<i64>,
    record: &str,
) -> Result<()> {
    let author = non_empty_author(author);
    let (entry,): (i64,) = sqlx::query_as(
        "INSERT INTO timeline_entries (incident_id, at_ms, kind, author, body, data, event_seq, amends) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(incident_id)
    .bind(at_ms)
    .bind(kind.as_str())
    .bind(author)
    .bind(text)
    .bind(data.map(|d| d.to_string()))
    .bind(event_seq)
    .bind(amends)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO team_entries (entry_id, record) VALUES (?, ?)")
        .bind(entry)
        .bind(record)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
