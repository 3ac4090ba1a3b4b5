//! Runbook runs as recorded: a run's position is stored, so it survives a restart and
//! resumes at the right step; every step's outcome is a result row and a timeline entry,
//! written together. A step is recorded only while it is the run's current step, so a
//! double submit or a stale window cannot record it twice or skip ahead.

use serde::Serialize;
use ts_rs::TS;

use super::incidents::{append, Append};
use super::{now_ms, Result, Store, StoreError};
use crate::incident::EntryKind;
use crate::runbook_step::Step;

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub step_id: String,
    /// `done`, `skipped`, `value`, `branched` or `action`.
    pub outcome: String,
    pub text: String,
    pub value: Option<f64>,
    /// A query's samples, oldest first, for its chart: [received ms, value].
    pub series: Option<Vec<(i64, f64)>>,
    pub author: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: i64,
    pub incident_id: i64,
    pub runbook_id: String,
    pub runbook_title: String,
    pub runbook_version: String,
    pub steps: Vec<Step>,
    pub current_step: Option<String>,
    pub waiting_action: Option<String>,
    /// `running`, `finished` or `abandoned`.
    pub state: String,
    pub started_by: String,
    pub started_ms: i64,
    pub results: Vec<StepResult>,
}

type RunRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
);
type ResultRow = (
    String,
    String,
    String,
    Option<f64>,
    Option<String>,
    String,
    i64,
);

/// What one recorded step changes.
pub struct Recorded<'a> {
    pub step_id: &'a str,
    pub outcome: &'a str,
    pub text: &'a str,
    pub value: Option<f64>,
    pub series: Option<&'a [(i64, f64)]>,
    /// The step that waits next; `None` ends the run.
    pub next: Option<&'a str>,
    pub author: &'a str,
}

/// The runbook a run follows, as the run keeps it: its steps are copied into the run, so
/// a runbook edited on disk never changes a run already under way.
#[derive(Debug, Clone, Copy)]
pub struct RunbookVersion<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub version: &'a str,
    pub steps: &'a [Step],
}

impl Store {
    pub async fn start_run(
        &self,
        incident_id: i64,
        runbook: impl Into<RunbookVersion<'_>>,
        author: &str,
    ) -> Result<RunRecord> {
        let runbook = runbook.into();
        let steps = serde_json::to_string(&runbook.steps)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let first = runbook.steps.first().map(|s| s.id().to_owned());
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO runbook_runs (incident_id, runbook_id, runbook_title, runbook_version, steps, \
             current_step, state, started_by, started_ms, updated_ms) \
             VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?) RETURNING id",
        )
        .bind(incident_id)
        .bind(runbook.id)
        .bind(runbook.title)
        .bind(runbook.version)
        .bind(steps)
        .bind(first)
        .bind(author)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        append(
            &mut tx,
            Append {
                incident_id,
                at_ms: now,
                kind: EntryKind::Runbook,
                author,
                body: &format!(
                    "Started runbook \"{}\" (v{}, {} steps).",
                    runbook.title,
                    runbook.version,
                    runbook.steps.len()
                ),
                amends: None,
                event_seq: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.run(id).await
    }

    /// Records a step's outcome if it is the run's current step; `Ok(None)` otherwise.
    pub async fn record_step(&self, run_id: i64, r: Recorded<'_>) -> Result<Option<RunRecord>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (incident_id, current, title): (i64, Option<String>, String) = sqlx::query_as(
            "SELECT incident_id, current_step, runbook_title FROM runbook_runs WHERE id = ? AND state = 'running'",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("runbook run {run_id} is not running")))?;
        if current.as_deref() != Some(r.step_id) {
            return Ok(None);
        }
        let series = r
            .series
            .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
        sqlx::query(
            "INSERT INTO runbook_step_results (run_id, step_id, outcome, text, value, series, author, at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(r.step_id)
        .bind(r.outcome)
        .bind(r.text)
        .bind(r.value)
        .bind(series)
        .bind(r.author)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE runbook_runs SET current_step = ?, waiting_action = NULL, \
             state = CASE WHEN ? IS NULL THEN 'finished' ELSE 'running' END, updated_ms = ? WHERE id = ?",
        )
        .bind(r.next)
        .bind(r.next)
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        let mut body = format!("Runbook \"{title}\", step {}: {}", r.step_id, r.text);
        if r.next.is_none() {
            body.push_str(" The runbook is complete.");
        }
        append(
            &mut tx,
            Append {
                incident_id,
                at_ms: now,
                kind: EntryKind::Runbook,
                author: r.author,
                body: &body,
                amends: None,
                event_seq: None,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Some(self.run(run_id).await?))
    }

    /// Stops a running run for good, with the reason on the timeline.
    pub async fn abandon_run(&self, run_id: i64, reason: &str, author: &str) -> Result<RunRecord> {
        let mut tx = self.begin_write().await?;
        let (incident_id, title): (i64, String) = sqlx::query_as(
            "SELECT incident_id, runbook_title FROM runbook_runs WHERE id = ? AND state = 'running'",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Invalid(format!("runbook run {run_id} is not running")))?;
        sqlx::query(
            "UPDATE runbook_runs SET state = 'abandoned', waiting_action = NULL, updated_ms = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        append(
            &mut tx,
            Append {
                incident_id,
                at_ms: now_ms(),
                kind: EntryKind::Runbook,
                author,
                body: &format!("Runbook \"{title}\" stopped: {reason}"),
                amends: None,
                event_seq: None,
            },
        )
        .await?;
        tx.commit().await?;
        self.run(run_id).await
    }

    /// Ties an action to the run's current (action) step.
    pub async fn set_waiting_action(&self, run_id: i64, step_id: &str, action: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE runbook_runs SET waiting_action = ?, updated_ms = ? \
             WHERE id = ? AND current_step = ? AND state = 'running'",
        )
        .bind(action)
        .bind(now_ms())
        .bind(run_id)
        .bind(step_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn run(&self, id: i64) -> Result<RunRecord> {
        let row: RunRow = sqlx::query_as(
            "SELECT id, incident_id, runbook_id, runbook_title, runbook_version, steps, current_step, \
             waiting_action, state, started_by, started_ms FROM runbook_runs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("runbook run {id}"),
        })?;
        let results: Vec<ResultRow> = sqlx::query_as(
            "SELECT step_id, outcome, text, value, series, author, at_ms FROM runbook_step_results \
             WHERE run_id = ? ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        let (
            id,
            incident_id,
            runbook_id,
            runbook_title,
            runbook_version,
            steps,
            current_step,
            waiting_action,
            state,
            started_by,
            started_ms,
        ) = row;
        Ok(RunRecord {
            id,
            incident_id,
            runbook_id,
            runbook_title,
            runbook_version,
            steps: serde_json::from_str(&steps)
                .map_err(|e| StoreError::Invalid(format!("runbook run {id}: {e}")))?,
            current_step,
            waiting_action,
            state,
            started_by,
            started_ms,
            results: results
                .into_iter()
                .map(
                    |(step_id, outcome, text, value, series, author, at_ms)| StepResult {
                        step_id,
                        outcome,
                        text,
                        value,
                        series: series.and_then(|s| serde_json::from_str(&s).ok()),
                        author,
                        at_ms,
                    },
                )
                .collect(),
        })
    }

    /// Running runs whose current step waits on an action that has reached a final state:
    /// (run id, incident id), for whoever moves them on (never a read of the runs).
    pub async fn runs_with_settled_actions(&self) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT r.id, r.incident_id FROM runbook_runs r JOIN actions a ON a.public_id = r.waiting_action \
             WHERE r.state = 'running' AND a.state IN ('cancelled', 'refused', 'failed', 'succeeded') \
             AND (a.state != 'succeeded' OR a.verification IS NOT NULL) ORDER BY r.id",
        )
        .fetch_all(self.reader())
        .await?)
    }

    /// An incident's runbook runs, oldest first.
    pub async fn incident_runs(&self, incident_id: i64) -> Result<Vec<RunRecord>> {
        let ids: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM runbook_runs WHERE incident_id = ? ORDER BY id")
                .bind(incident_id)
                .fetch_all(self.reader())
                .await?;
        let mut runs = Vec::new();
        for (id,) in ids {
            runs.push(self.run(id).await?);
        }
        Ok(runs)
    }
}
