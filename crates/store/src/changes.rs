//! What changed on an incident's service in the hour before it opened and since: rollouts,
//! model versions, and actions by anyone (this console, another one, a pipeline), with who
//! and when, newest first, each linked to its timeline entry when the incident has one. It
//! is the first question of every incident review, answered from the recorded stream.

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use super::{Result, Store};

/// How far before the incident opened changes are listed.
pub const BEFORE_MS: i64 = 60 * 60 * 1000;
/// At most this many changes are listed (the newest).
const LIMIT: i64 = 200;

const TYPES: [&str; 8] = [
    "dev.firebreak.rollout.started",
    "dev.firebreak.rollout.stalled",
    "dev.firebreak.rollout.completed",
    "dev.firebreak.rollout.failed",
    "dev.firebreak.model.version_changed",
    "dev.firebreak.action.accepted",
    "dev.firebreak.action.succeeded",
    "dev.firebreak.action.failed",
];

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    #[ts(type = "number")]
    pub at_ms: i64,
    /// `rollout`, `model` or `action`.
    pub kind: String,
    pub text: String,
    /// Who made it, when the event says (an action's actor).
    pub who: Option<String>,
    /// The incident's timeline entry for this event, when it has one.
    #[ts(type = "number | null")]
    pub entry_id: Option<i64>,
    /// It reached this console before the incident opened.
    pub before: bool,
}

fn text(d: &Value, key: &str) -> String {
    match d.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A change in words, or None for an event that is not one (an action still only
/// accepted is listed once it succeeds or fails).
fn describe(ty: &str, d: &Value) -> Option<(&'static str, String, Option<String>)> {
    let service = text(d, "service");
    Some(match ty.trim_start_matches("dev.firebreak.") {
        "rollout.started" => (
            "rollout",
            format!(
                "Rollout of {service} r{} → r{} began ({}, {} waves)",
                text(d, "from_revision"),
                text(d, "to_revision"),
                text(d, "model_version"),
                text(d, "waves")
            ),
            None,
        ),
        "rollout.stalled" => (
            "rollout",
            format!(
                "Rollout to r{} stalled at wave {} of {}: {}",
                text(d, "to_revision"),
                text(d, "wave"),
                text(d, "waves"),
                text(d, "reason")
            ),
            None,
        ),
        "rollout.completed" => (
            "rollout",
            format!("Rollout to r{} completed", text(d, "revision")),
            None,
        ),
        "rollout.failed" => (
            "rollout",
            format!(
                "Rollout to r{} failed: {}",
                text(d, "to_revision"),
                text(d, "reason")
            ),
            None,
        ),
        "model.version_changed" => (
            "model",
            format!(
                "Model {} → {} (r{}, {})",
                text(d, "from_model"),
                text(d, "to_model"),
                text(d, "revision"),
                text(d, "cause")
            ),
            None,
        ),
        "action.accepted" => return None,
        t @ ("action.succeeded" | "action.failed") => {
            let kind = text(d, "kind").replace('_', " ");
            let outcome = if t.ends_with("succeeded") {
                "succeeded".to_owned()
            } else {
                format!("failed: {}", text(d, "error"))
            };
            (
                "action",
                format!(
                    "{kind} {} → {} {outcome} ({})",
                    text(d, "from"),
                    text(d, "to"),
                    text(d, "reason")
                ),
                Some(text(d, "actor")).filter(|a| !a.is_empty()),
            )
        }
        _ => return None,
    })
}

impl Store {
    /// The changes on the incident's service from an hour before it opened until now,
    /// newest first.
    pub async fn incident_changes(&self, incident_id: i64) -> Result<Vec<Change>> {
        let incident = self.incident(incident_id).await?;
        let (Some(cluster_id), Some(service)) = (incident.cluster_id, incident.service.clone())
        else {
            return Ok(Vec::new());
        };
        let placeholders = vec!["?"; TYPES.len()].join(", ");
        // Only `?` placeholders are formatted in; every value is bound.
        let sql = format!(
            "SELECT seq, time_ms, received_ms, type, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND time_ms >= ? AND type IN ({placeholders}) ORDER BY time_ms DESC, seq DESC LIMIT ?"
        );
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String, String)>(sqlx::AssertSqlSafe(sql))
            .bind(cluster_id)
            .bind(&service)
            .bind(incident.opened_ms - BEFORE_MS);
        for t in TYPES {
            q = q.bind(t);
        }
        let rows = q.bind(LIMIT).fetch_all(self.reader()).await?;
        // The incident's entries for those events, in one pass over its timeline.
        let seqs: Vec<i64> = rows.iter().map(|(seq, ..)| *seq).collect();
        let mut entries = std::collections::HashMap::new();
        if !seqs.is_empty() {
            let list = vec!["?"; seqs.len()].join(", ");
            let sql = format!(
                "SELECT event_seq, MIN(id) FROM timeline_entries WHERE incident_id = ? \
                 AND event_seq IN ({list}) GROUP BY event_seq"
            );
            let mut q = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(sql)).bind(incident_id);
            for seq in &seqs {
                q = q.bind(seq);
            }
            entries.extend(q.fetch_all(self.reader()).await?);
        }
        Ok(rows
            .into_iter()
            .filter_map(|(seq, at, received, ty, raw)| {
                let v: Value = serde_json::from_str(&raw).ok()?;
                let (kind, text, who) = describe(&ty, v.get("data")?)?;
                Some(Change {
                    at_ms: at,
                    kind: kind.to_owned(),
                    text,
                    who,
                    entry_id: entries.get(&seq).copied(),
                    // By the console's clock, the one the incident's opening was kept by
                    // (the cluster's may differ: a simulator can run fast).
                    before: received < incident.opened_ms,
                })
            })
            .collect())
    }
}
