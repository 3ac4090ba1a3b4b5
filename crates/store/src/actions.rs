//! Actions as recorded: every step is a guarded state change, written with its timeline
//! entry and its audit record in one transaction. A step applies only from the states it
//! names, so a double click, a retry or a restart can never send twice or skip a step.

use serde::{Deserialize, Serialize};
use sqlx::{Sqlite, Transaction};
use ts_rs::TS;

use super::incidents::{insert_entry, Append};
use super::{audit, now_ms, Result, Store, StoreError};
use crate::incident::EntryKind;
use firebreak_protocol::actions::ActionKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Resolved and previewed; nothing decided yet.
    Proposed,
    /// Confirmed, with its idempotency key stored; waiting out the grace period.
    Pending,
    /// Cancelled before anything was sent.
    Cancelled,
    /// The request is on its way (or was, when the app stopped).
    Sent,
    /// No answer came (timeout, lost connection): being reconciled, never re-decided.
    Unknown,
    /// The cluster said no before acting (a precondition failed, say): nothing happened.
    Refused,
    Accepted,
    Running,
    Succeeded,
    Failed,
}

impl ActionState {
    pub const ALL: [ActionState; 10] = [
        Self::Proposed,
        Self::Pending,
        Self::Cancelled,
        Self::Sent,
        Self::Unknown,
        Self::Refused,
        Self::Accepted,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Pending => "pending",
            Self::Cancelled => "cancelled",
            Self::Sent => "sent",
            Self::Unknown => "unknown",
            Self::Refused => "refused",
            Self::Accepted => "accepted",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// No further step will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Cancelled | Self::Refused | Self::Succeeded | Self::Failed
        )
    }
}

/// How the target looks right now, as far as the console can tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    /// `None` when nothing recorded says.
    pub healthy: Option<bool>,
    pub text: String,
}

/// What the engineer sees before confirming: what changes, how much, how healthy the
/// target is, and the precondition that will be sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ActionPreview {
    /// One sentence: "Roll llm-assistant-serving back from revision 42 to 41".
    pub summary: String,
    pub from_label: String,
    pub to_label: String,
    /// Nodes that change.
    pub nodes: u32,
    /// Requests per second the change moves or affects, and their share of the cluster's.
    pub requests_per_s: f64,
    pub traffic_share: f64,
    pub target_health: TargetHealth,
    /// The precondition, as sent: `expected_revision = 42`.
    pub precondition: String,
    /// Things to know before confirming (the stream is not live, say).
    pub warnings: Vec<String>,
    /// The blast radius is above the threshold: confirming needs the service's name typed.
    pub type_to_confirm: bool,
    /// Seconds between confirming and sending, during which Cancel stops it.
    pub grace_s: u32,
    /// For a rollout lever: the canary verdict with its figures, a line each.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// What verifying a succeeded action found: `verification` in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The evidence says the service recovered.
    Recovered,
    /// The evidence says it did not.
    NotRecovered,
    /// The cluster gave no evidence either way in the window (no metrics, no rollout
    /// state): neither a success nor a failure, and no next step is proposed on it.
    Unverified,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Recovered => "recovered",
            Verdict::NotRecovered => "not_recovered",
            Verdict::Unverified => "unverified",
        }
    }
}

/// An action as the console shows it. The idempotency key never leaves Rust.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    pub id: String,
    pub incident_id: i64,
    pub cluster_id: i64,
    #[ts(
        type = "\"rollback\" | \"failover\" | \"silence\" | \"pause_rollout\" | \"resume_rollout\" | \"abort_rollout\" | \"promote_rollout\""
    )]
    pub kind: ActionKind,
    pub service: String,
    pub target: String,
    pub from: String,
    pub to: String,
    pub preview: ActionPreview,
    pub state: ActionState,
    pub proposed_by: String,
    pub confirmed_by: Option<String>,
    pub reason: Option<String>,
    #[serde(skip)]
    #[ts(skip)]
    pub idempotency_key: Option<String>,
    pub send_after_ms: Option<i64>,
    pub remote_id: Option<String>,
    pub error: Option<String>,
    pub succeeded_ms: Option<i64>,
    pub verification: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Why the desk cannot move this action on right now ("stuck, retrying: …"), when it
    /// cannot: filled in by the desk that drives it, never stored.
    pub stuck: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    public_id: String,
    incident_id: i64,
    cluster_id: i64,
    kind: String,
    service: String,
    target: String,
    from_value: String,
    to_value: String,
    preview: String,
    state: String,
    proposed_by: String,
    confirmed_by: Option<String>,
    reason: Option<String>,
    idempotency_key: Option<String>,
    send_after_ms: Option<i64>,
    remote_id: Option<String>,
    error: Option<String>,
    succeeded_ms: Option<i64>,
    verification: Option<String>,
    created_ms: i64,
    updated_ms: i64,
}

macro_rules! select_actions {
    ($rest:literal) => {
        concat!(
            "SELECT public_id, incident_id, cluster_id, kind, service, target, from_value, \
             to_value, preview, state, proposed_by, confirmed_by, reason, idempotency_key, \
             send_after_ms, remote_id, error, succeeded_ms, verification, created_ms, updated_ms \
             FROM actions ",
            $rest
        )
    };
}

impl TryFrom<Row> for ActionRecord {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self> {
        let bad = |what: &str| StoreError::Invalid(format!("action {}: bad {what}", r.public_id));
        Ok(ActionRecord {
            kind: ActionKind::parse(&r.kind).ok_or_else(|| bad("kind"))?,
            state: ActionState::parse(&r.state).ok_or_else(|| bad("state"))?,
            preview: serde_json::from_str(&r.preview).map_err(|_| bad("preview"))?,
            id: r.public_id,
            incident_id: r.incident_id,
            cluster_id: r.cluster_id,
            service: r.service,
            target: r.target,
            from: r.from_value,
            to: r.to_value,
            proposed_by: r.proposed_by,
            confirmed_by: r.confirmed_by,
            reason: r.reason,
            idempotency_key: r.idempotency_key,
            send_after_ms: r.send_after_ms,
            remote_id: r.remote_id,
            error: r.error,
            succeeded_ms: r.succeeded_ms,
            verification: r.verification,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            stuck: None,
        })
    }
}

/// A proposal about to be recorded.
pub struct NewAction<'a> {
    pub incident_id: i64,
    pub cluster_id: i64,
    pub kind: ActionKind,
    pub service: &'a str,
    pub target: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub preview: &'a ActionPreview,
    pub proposed_by: &'a str,
}

/// What a step changes besides the state; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct Step {
    pub confirmed_by: Option<String>,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub send_after_ms: Option<i64>,
    pub remote_id: Option<String>,
    pub error: Option<String>,
    pub succeeded_ms: Option<i64>,
    pub verification: Option<String>,
}

pub fn kind_str(kind: ActionKind) -> &'static str {
    kind.as_str()
}

async fn fetch(tx: &mut Transaction<'static, Sqlite>, public_id: &str) -> Result<ActionRecord> {
    let row: Option<Row> = sqlx::query_as(select_actions!("WHERE public_id = ?"))
        .bind(public_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.ok_or_else(|| StoreError::NotFound {
        what: format!("action {public_id}"),
    })?
    .try_into()
}

/// The timeline entry and the audit record of one step, in the step's transaction.
async fn record_step(
    tx: &mut Transaction<'static, Sqlite>,
    action: &ActionRecord,
    actor: &str,
    body: &str,
) -> Result<()> {
    insert_entry(
        tx,
        &Append {
            incident_id: action.incident_id,
            at_ms: now_ms(),
            kind: EntryKind::Action,
            author: actor,
            body,
            amends: None,
            event_seq: None,
        },
    )
    .await?;
    audit::record(
        tx,
        actor,
        &format!("action/{}", action.id),
        &format!("action.{}", action.state.as_str()),
        &serde_json::json!({
            "incident": action.incident_id,
            "kind": kind_str(action.kind),
            "service": action.service,
            "target": action.target,
            "from": action.from,
            "to": action.to,
            "reason": action.reason,
            "idempotency_key": action.idempotency_key,
            "remote_id": action.remote_id,
            "error": action.error,
            "verification": action.verification,
            "summary": body,
        }),
    )
    .await
}

impl Store {
    /// Records a proposal, with its timeline entry and audit record.
    pub async fn propose_action(&self, new: &NewAction<'_>) -> Result<ActionRecord> {
        let public_id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO actions (public_id, incident_id, cluster_id, kind, service, target, from_value, \
             to_value, preview, state, proposed_by, created_ms, updated_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'proposed', ?, ?, ?)",
        )
        .bind(&public_id)
        .bind(new.incident_id)
        .bind(new.cluster_id)
        .bind(kind_str(new.kind))
        .bind(new.service)
        .bind(new.target)
        .bind(new.from)
        .bind(new.to)
        .bind(serde_json::to_string(new.preview).unwrap_or_else(|_| "{}".into()))
        .bind(new.proposed_by)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let action = fetch(&mut tx, &public_id).await?;
        record_step(
            &mut tx,
            &action,
            new.proposed_by,
            &format!("Proposed: {}", new.preview.summary),
        )
        .await?;
        tx.commit().await?;
        Ok(action)
    }

    /// Moves an action to `to` if it is in one of `from`; otherwise changes nothing and
    /// returns `Ok(None)`. The timeline entry says `body`, recorded as `actor`.
    pub async fn step_action(
        &self,
        public_id: &str,
        from: &[ActionState],
        to: ActionState,
        step: Step,
        actor: &str,
        body: &str,
    ) -> Result<Option<ActionRecord>> {
        let mut tx = self.begin_write().await?;
        let before = fetch(&mut tx, public_id).await?;
        if !from.contains(&before.state) {
            return Ok(None);
        }
        // Only the installation whose person confirmed an action ever moves it on: an
        // action that came in a bundle, or in a store copied from another machine, is
        // history here, whatever state it was left in.
        let (imported, ours): (bool, bool) = sqlx::query_as(
            "SELECT imported, confirmed_install IS NULL \
               OR confirmed_install = (SELECT value FROM settings WHERE key = 'install_id') \
             FROM actions WHERE public_id = ?",
        )
        .bind(public_id)
        .fetch_one(&mut *tx)
        .await?;
        if imported || !ours {
            return Err(StoreError::Invalid(format!(
                "action {public_id} was confirmed on another installation (it came in a bundle or a \
                 copied store): it is history here and is never sent or followed"
            )));
        }
        sqlx::query(
            "UPDATE actions SET state = ?, \
             confirmed_install = CASE WHEN ? IS NOT NULL \
               THEN (SELECT value FROM settings WHERE key = 'install_id') ELSE confirmed_install END, \
             confirmed_by = COALESCE(?, confirmed_by), reason = COALESCE(?, reason), \
             idempotency_key = COALESCE(idempotency_key, ?), send_after_ms = COALESCE(?, send_after_ms), \
             remote_id = COALESCE(?, remote_id), error = COALESCE(?, error), \
             succeeded_ms = COALESCE(?, succeeded_ms), verification = COALESCE(?, verification), \
             updated_ms = ? WHERE public_id = ?",
        )
        .bind(to.as_str())
        .bind(step.confirmed_by.as_ref().map(|_| 1))
        .bind(step.confirmed_by)
        .bind(step.reason)
        .bind(step.idempotency_key)
        .bind(step.send_after_ms)
        .bind(step.remote_id)
        .bind(step.error)
        .bind(step.succeeded_ms)
        .bind(step.verification)
        .bind(now_ms())
        .bind(public_id)
        .execute(&mut *tx)
        .await?;
        let after = fetch(&mut tx, public_id).await?;
        record_step(&mut tx, &after, actor, body).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Records a verification result (the action stays succeeded). False when the action
    /// was verified already (by another driver): the first verdict stands.
    pub async fn verify_action(
        &self,
        public_id: &str,
        verdict: Verdict,
        body: &str,
    ) -> Result<bool> {
        let recovered = match verdict {
            Verdict::Recovered => Some(true),
            Verdict::NotRecovered => Some(false),
            Verdict::Unverified => None,
        };
        let mut tx = self.begin_write().await?;
        // Two drivers of one action (the window's, a resumed one) verify it once: the
        // first verdict stands and the second records nothing.
        let took = sqlx::query(
            "UPDATE actions SET verification = ?, updated_ms = ? \
             WHERE public_id = ? AND verification IS NULL",
        )
        .bind(verdict.as_str())
        .bind(now_ms())
        .bind(public_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let action = fetch(&mut tx, public_id).await?;
        if took == 0 {
            return Ok(false);
        }
        insert_entry(
            &mut tx,
            &Append {
                incident_id: action.incident_id,
                at_ms: now_ms(),
                kind: EntryKind::Verification,
                author: crate::incident::ENGINE_AUTHOR,
                body,
                amends: None,
                event_seq: None,
            },
        )
        .await?;
        audit::record(
            &mut tx,
            crate::incident::ENGINE_AUTHOR,
            &format!("action/{public_id}"),
            "action.verified",
            &serde_json::json!({ "recovered": recovered, "verification": verdict.as_str(), "summary": body }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn action(&self, public_id: &str) -> Result<ActionRecord> {
        let row: Option<Row> = sqlx::query_as(select_actions!("WHERE public_id = ?"))
            .bind(public_id)
            .fetch_optional(self.reader())
            .await?;
        row.ok_or_else(|| StoreError::NotFound {
            what: format!("action {public_id}"),
        })?
        .try_into()
    }

    /// An incident's actions, oldest first.
    pub async fn incident_actions(&self, incident_id: i64) -> Result<Vec<ActionRecord>> {
        let rows: Vec<Row> = sqlx::query_as(select_actions!("WHERE incident_id = ? ORDER BY id"))
            .bind(incident_id)
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Actions a restart must carry on: confirmed and not yet finished (or not yet verified).
    pub async fn unfinished_actions(&self) -> Result<Vec<ActionRecord>> {
        let rows: Vec<Row> = sqlx::query_as(select_actions!(
            "WHERE (state IN ('pending', 'sent', 'unknown', 'accepted', 'running') \
             OR (state = 'succeeded' AND verification IS NULL)) \
             AND imported = 0 AND confirmed_install = (SELECT value FROM settings WHERE key = 'install_id') \
             ORDER BY id"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }
}

/// An alert a timeline entry recorded: what a silence of it would match.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedAlert {
    pub cluster_id: i64,
    pub alert: String,
    pub service: String,
    pub region: String,
    pub severity: String,
    pub received_ms: i64,
}

/// (cluster, alert, service, region, severity, received) as read from an event's JSON.
type AlertRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

impl Store {
    /// The incident's newest entry of alert `alert` firing (in `region`, when given): what
    /// `firebreak act silence --alert` silences.
    pub async fn alert_entry(
        &self,
        incident_id: i64,
        alert: &str,
        region: Option<&str>,
    ) -> Result<Option<i64>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT t.id FROM timeline_entries t JOIN events e ON e.seq = t.event_seq \
             WHERE t.incident_id = ? AND t.kind = 'event' AND e.type = 'dev.firebreak.alert.firing' \
               AND json_extract(e.raw, '$.data.alert') = ? \
               AND (? IS NULL OR json_extract(e.raw, '$.data.region') = ?) \
             ORDER BY t.at_ms DESC, t.id DESC LIMIT 1",
        )
        .bind(incident_id)
        .bind(alert)
        .bind(region)
        .bind(region)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|(id,)| id))
    }

    /// The `alert.firing` event a timeline entry of the incident recorded, if it is one.
    pub async fn alert_of_entry(
        &self,
        incident_id: i64,
        entry_id: i64,
    ) -> Result<Option<RecordedAlert>> {
        let row: Option<AlertRow> = sqlx::query_as(
            "SELECT e.cluster_id, json_extract(e.raw, '$.data.alert'), \
                 json_extract(e.raw, '$.data.service'), json_extract(e.raw, '$.data.region'), \
                 json_extract(e.raw, '$.data.severity'), e.received_ms \
                 FROM timeline_entries t JOIN events e ON e.seq = t.event_seq \
                 WHERE t.id = ? AND t.incident_id = ? AND t.kind = 'event' \
                   AND e.type = 'dev.firebreak.alert.firing'",
        )
        .bind(entry_id)
        .bind(incident_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.and_then(
            |(cluster_id, alert, service, region, severity, received_ms)| {
                Some(RecordedAlert {
                    cluster_id,
                    alert: alert?,
                    service: service?,
                    region: region?,
                    severity: severity.unwrap_or_default(),
                    received_ms,
                })
            },
        ))
    }

    /// The regions where `alert` on `service` fired last and has not resolved since, as
    /// the console recorded the cluster's stream: what a silence of it would quiet now.
    pub async fn firing_regions(
        &self,
        cluster_id: i64,
        alert: &str,
        service: &str,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT region FROM ( \
               SELECT json_extract(raw, '$.data.region') AS region, type, \
                      ROW_NUMBER() OVER (PARTITION BY json_extract(raw, '$.data.region') \
                                         ORDER BY time_ms DESC, seq DESC) AS newest \
               FROM events WHERE cluster_id = ? AND service = ? AND time_ms >= ? \
                 AND type IN ('dev.firebreak.alert.firing', 'dev.firebreak.alert.resolved') \
                 AND json_extract(raw, '$.data.alert') = ?) \
             WHERE newest = 1 AND type = 'dev.firebreak.alert.firing' AND region IS NOT NULL \
             ORDER BY region",
        )
        .bind(cluster_id)
        .bind(service)
        // A week back: older alerts are not what an on-call engineer silences now.
        .bind(now_ms() - 7 * 24 * 3600 * 1000)
        .bind(alert)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }
}
