//! Rollout guards: each service's policy for a failing canary verdict, who approved it,
//! and what the guard did about each rollout it judged (`guard_decisions`, one row per
//! rollout, claimed before anything is done).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::incident::{EntryKind, Severity};
use super::incidents::{append, open_or_attach_in, require_author, Append, Finding};
use super::{now_ms, Result, Store, StoreError};

/// What the console does when a rollout's canary verdict fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    /// The verdict shows on the Fleet board and in Act; nothing more.
    Watch,
    /// Also opens (or updates) the service's incident and proposes a pause, with the
    /// evidence in its preview, for a person to confirm.
    Propose,
    /// Also confirms that pause, as approved in the policy: the grace period still runs
    /// and can be cancelled, and read-only mode still wins.
    PauseOnFail,
}

impl GuardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::Watch => "watch",
            GuardMode::Propose => "propose",
            GuardMode::PauseOnFail => "pause_on_fail",
        }
    }

    /// In words: "pause on fail".
    pub fn words(self) -> &'static str {
        match self {
            GuardMode::Watch => "watch",
            GuardMode::Propose => "propose a pause",
            GuardMode::PauseOnFail => "pause on fail",
        }
    }

    pub fn parse(s: &str) -> Option<GuardMode> {
        [GuardMode::Watch, GuardMode::Propose, GuardMode::PauseOnFail]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A service's guard as approved.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RolloutGuard {
    pub cluster_id: i64,
    pub cluster: String,
    pub service: String,
    pub mode: GuardMode,
    pub approved_by: String,
    #[ts(type = "number")]
    pub approved_at_ms: i64,
    pub reason: String,
}

/// What a guard did, or is doing, about one rollout's failing verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardDecision {
    pub cluster_id: i64,
    pub service: String,
    /// The rollout's `rollout.started` event.
    pub rollout_seq: i64,
    pub mode: GuardMode,
    pub verdict_at_ms: i64,
    pub sentence: String,
    pub incident_id: Option<i64>,
    pub action_id: Option<String>,
    /// How it ended (`confirmed`, `proposed`, `not paused: …`); none while under way.
    pub outcome: Option<String>,
}

type GuardRow = (i64, String, String, String, String, i64, String);
type DecisionRow = (
    i64,
    String,
    i64,
    String,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn guard_of(row: GuardRow) -> RolloutGuard {
    let (cluster_id, cluster, service, mode, approved_by, approved_at_ms, reason) = row;
    RolloutGuard {
        cluster_id,
        cluster,
        service,
        mode: GuardMode::parse(&mode).unwrap_or(GuardMode::Watch),
        approved_by,
        approved_at_ms,
        reason,
    }
}

fn decision_of(row: DecisionRow) -> GuardDecision {
    let (
        cluster_id,
        service,
        rollout_seq,
        mode,
        verdict_at_ms,
        sentence,
        incident,
        action,
        outcome,
    ) = row;
    GuardDecision {
        cluster_id,
        service,
        rollout_seq,
        mode: GuardMode::parse(&mode).unwrap_or(GuardMode::Propose),
        verdict_at_ms,
        sentence,
        incident_id: incident,
        action_id: action,
        outcome,
    }
}

const GUARDS: &str = "SELECT g.cluster_id, c.name, g.service, g.mode, g.approved_by, \
     g.approved_at_ms, g.reason FROM rollout_guards g JOIN clusters c ON c.id = g.cluster_id \
     WHERE c.removed_ms IS NULL";

const DECISION: &str = "SELECT cluster_id, service, rollout_seq, mode, verdict_at_ms, sentence, \
     incident_id, action_id, outcome FROM guard_decisions \
     WHERE cluster_id = ? AND service = ? AND rollout_seq = ?";

/// A failing verdict a guard is about to act on.
pub struct FailedRollout<'a> {
    pub cluster_id: i64,
    pub service: &'a str,
    pub rollout_seq: i64,
    pub mode: GuardMode,
    pub verdict_at_ms: i64,
    pub sentence: &'a str,
}

/// One field of a decision as it moves on.
enum Field<'a> {
    Incident(i64),
    Action(&'a str),
    Outcome(&'a str),
}

/// Sets one field of a decision, in the caller's transaction.
async fn set_field(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    d: &GuardDecision,
    field: Field<'_>,
) -> Result<()> {
    let q = match field {
        Field::Incident(id) => sqlx::query(
            "UPDATE guard_decisions SET incident_id = ? \
             WHERE cluster_id = ? AND service = ? AND rollout_seq = ?",
        )
        .bind(id),
        Field::Action(id) => sqlx::query(
            "UPDATE guard_decisions SET action_id = ? \
             WHERE cluster_id = ? AND service = ? AND rollout_seq = ?",
        )
        .bind(id.to_owned()),
        Field::Outcome(outcome) => sqlx::query(
            "UPDATE guard_decisions SET outcome = ? \
             WHERE cluster_id = ? AND service = ? AND rollout_seq = ?",
        )
        .bind(outcome.to_owned()),
    };
    q.bind(d.cluster_id)
        .bind(d.service.clone())
        .bind(d.rollout_seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Every service's guard that is not plain watching, by cluster and service.
    pub async fn rollout_guards(&self) -> Result<Vec<RolloutGuard>> {
        let sql = format!("{GUARDS} ORDER BY c.name, g.service");
        let rows: Vec<GuardRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(guard_of).collect())
    }

    /// The service's guard, if one was ever set.
    pub async fn rollout_guard(
        &self,
        cluster_id: i64,
        service: &str,
    ) -> Result<Option<RolloutGuard>> {
        let sql = format!("{GUARDS} AND g.cluster_id = ? AND g.service = ?");
        let row: Option<GuardRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(cluster_id)
            .bind(service)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(guard_of))
    }

    /// Sets a service's guard as approved by `by` for `reason`, with its audit record in
    /// the same transaction (what it was before, what it is now, why).
    pub async fn set_rollout_guard(
        &self,
        cluster_id: i64,
        service: &str,
        mode: GuardMode,
        by: &str,
        reason: &str,
    ) -> Result<RolloutGuard> {
        let by = require_author(by)?;
        let service = service.trim();
        let reason = reason.trim();
        if service.is_empty() || service.len() > 256 {
            return Err(StoreError::Invalid(
                "a guard needs the service's name".into(),
            ));
        }
        if reason.is_empty() || reason.chars().count() > 2000 {
            return Err(StoreError::Invalid(
                "give the reason for the policy (up to 2,000 characters): it goes in the audit \
                 log and on the timeline of every pause it makes"
                    .into(),
            ));
        }
        let cluster = self.cluster(cluster_id).await?;
        let before = self.rollout_guard(cluster_id, service).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rollout_guards (cluster_id, service, mode, approved_by, approved_at_ms, \
             reason) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cluster_id, service) DO UPDATE SET \
             mode = excluded.mode, approved_by = excluded.approved_by, \
             approved_at_ms = excluded.approved_at_ms, reason = excluded.reason",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(mode.as_str())
        .bind(by)
        .bind(now_ms())
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        super::audit::record(
            &mut tx,
            by,
            &format!("guard/{}/{service}", cluster.name),
            "rollout_guard",
            &serde_json::json!({
                "mode": mode.as_str(),
                "was": before.as_ref().map(|g| g.mode.as_str()).unwrap_or("watch"),
                "reason": reason,
            }),
        )
        .await?;
        tx.commit().await?;
        self.rollout_guard(cluster_id, service)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("the guard of {service}"),
            })
    }

    /// The guard's decision about this rollout: the one already taken (a restart carries
    /// it on), else a new one claimed now.
    pub async fn claim_guard_decision(&self, f: &FailedRollout<'_>) -> Result<GuardDecision> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT OR IGNORE INTO guard_decisions (cluster_id, service, rollout_seq, mode, \
             verdict_at_ms, sentence, decided_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(f.cluster_id)
        .bind(f.service)
        .bind(f.rollout_seq)
        .bind(f.mode.as_str())
        .bind(f.verdict_at_ms)
        .bind(f.sentence)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let row: DecisionRow = sqlx::query_as(DECISION)
            .bind(f.cluster_id)
            .bind(f.service)
            .bind(f.rollout_seq)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(decision_of(row))
    }

    /// Writes the verdict on the service's open incident (opening one when none is open)
    /// and keeps which incident in the decision, in one transaction. Returns the incident.
    pub async fn guard_incident(&self, d: &GuardDecision, title: &str, entry: &str) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let incident = open_or_attach_in(
            &mut tx,
            &Finding {
                cluster_id: d.cluster_id,
                service: &d.service,
                title,
                severity: Severity::Major,
                rule: "canary verdict",
                kind: EntryKind::Verdict,
                entry,
                at_ms: d.verdict_at_ms,
            },
        )
        .await?;
        set_field(&mut tx, d, Field::Incident(incident)).await?;
        tx.commit().await?;
        Ok(incident)
    }

    /// Keeps the action a decision proposed.
    pub async fn guard_action(&self, d: &GuardDecision, action_id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        set_field(&mut tx, d, Field::Action(action_id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a decision with its outcome and, when there is more to say than the action's
    /// own steps, an entry on its incident (why it did not pause), in one transaction.
    pub async fn finish_guard_decision(
        &self,
        d: &GuardDecision,
        outcome: &str,
        entry: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        if let (Some(incident_id), Some(body)) = (d.incident_id, entry) {
            append(
                &mut tx,
                Append {
                    incident_id,
                    at_ms: now_ms(),
                    kind: EntryKind::Verdict,
                    author: super::incident::ENGINE_AUTHOR,
                    body,
                    amends: None,
                    event_seq: None,
                },
            )
            .await?;
        }
        set_field(&mut tx, d, Field::Outcome(outcome)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every decision a guard took on the service, newest first.
    pub async fn guard_decisions(
        &self,
        cluster_id: i64,
        service: &str,
    ) -> Result<Vec<GuardDecision>> {
        let rows: Vec<DecisionRow> = sqlx::query_as(
            "SELECT cluster_id, service, rollout_seq, mode, verdict_at_ms, sentence, \
             incident_id, action_id, outcome FROM guard_decisions \
             WHERE cluster_id = ? AND service = ? ORDER BY rollout_seq DESC",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(decision_of).collect())
    }
}
