//! A service's rollouts as the stream recorded them, with the figures by revision
//! (`service.revision_metrics`) sent while each ran: what a canary verdict is judged on.

use serde_json::Value;

use firebreak_protocol::events::{RevisionMetrics, RevisionRole};

use super::{Result, Store};

/// One rollout: where it started, the waves that progressed, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRollout {
    /// The `rollout.started` event's place in the store, and its time.
    pub started_seq: i64,
    pub started_ms: i64,
    pub deployment: String,
    pub from_revision: u32,
    pub to_revision: u32,
    pub waves: u32,
    /// Each wave that progressed: (wave, seq, time_ms), in order.
    pub waves_done: Vec<(u32, i64, i64)>,
    /// The event that ended it (`completed`, `failed`, `rolled back`) and its seq.
    pub ended: Option<(i64, String)>,
}

impl RecordedRollout {
    /// The wave the rollout had reached when the event at `seq` arrived (0 before the
    /// first).
    pub fn wave_at(&self, seq: i64) -> u32 {
        self.waves_done
            .iter()
            .filter(|(_, at, _)| *at <= seq)
            .map(|(wave, _, _)| *wave)
            .max()
            .unwrap_or(0)
    }
}

/// One `service.revision_metrics` event: its place, its time and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionWindow {
    pub seq: i64,
    pub time_ms: i64,
    pub metrics: RevisionMetrics,
}

impl RevisionWindow {
    /// The figures of the revision in `role`, if the window has them.
    pub fn role(&self, role: RevisionRole) -> Option<&firebreak_protocol::events::RevisionFigures> {
        self.metrics.revisions.iter().find(|r| r.role == role)
    }
}

/// Rollouts read back at most (the newest).
const ROLLOUTS_READ: i64 = 20;
/// Windows read for one rollout at most: a long rollout's newest.
const WINDOWS_READ: i64 = 5_000;

impl Store {
    /// The service's newest rollouts, oldest first (at most 20).
    pub async fn rollouts(&self, cluster_id: i64, service: &str) -> Result<Vec<RecordedRollout>> {
        let started: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, time_ms, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND type = 'dev.firebreak.rollout.started' ORDER BY seq DESC LIMIT ?",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(ROLLOUTS_READ)
        .fetch_all(self.reader())
        .await?;
        let Some(first) = started.last().map(|(seq, _, _)| *seq) else {
            return Ok(Vec::new());
        };
        let later: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT seq, time_ms, type, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND seq > ? AND type IN ('dev.firebreak.rollout.wave_progressed', \
             'dev.firebreak.rollout.completed', 'dev.firebreak.rollout.failed', \
             'dev.firebreak.model.version_changed') ORDER BY seq LIMIT 10000",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(first)
        .fetch_all(self.reader())
        .await?;
        let mut rollouts: Vec<RecordedRollout> = started
            .into_iter()
            .rev()
            .filter_map(|(seq, time_ms, raw)| {
                let d = data(&raw)?;
                Some(RecordedRollout {
                    started_seq: seq,
                    started_ms: time_ms,
                    deployment: d.get("deployment")?.as_str()?.to_owned(),
                    from_revision: u32::try_from(d.get("from_revision")?.as_u64()?).ok()?,
                    to_revision: u32::try_from(d.get("to_revision")?.as_u64()?).ok()?,
                    waves: u32::try_from(d.get("waves")?.as_u64()?).ok()?,
                    waves_done: Vec::new(),
                    ended: None,
                })
            })
            .collect();
        for (seq, time_ms, ty, raw) in later {
            // The rollout this event belongs to: the newest started before it, still running.
            let Some(r) = rollouts
                .iter_mut()
                .rev()
                .find(|r| r.started_seq < seq)
                .filter(|r| r.ended.is_none())
            else {
                continue;
            };
            let Some(d) = data(&raw) else { continue };
            let to = d
                .get("to_revision")
                .or_else(|| d.get("revision"))
                .and_then(Value::as_u64);
            match ty.as_str() {
                "dev.firebreak.rollout.wave_progressed" if to == Some(r.to_revision.into()) => {
                    if let Some(wave) = d.get("wave").and_then(Value::as_u64) {
                        r.waves_done.push((wave as u32, seq, time_ms));
                    }
                }
                "dev.firebreak.rollout.completed" if to == Some(r.to_revision.into()) => {
                    r.ended = Some((seq, "completed".into()));
                }
                "dev.firebreak.rollout.failed" if to == Some(r.to_revision.into()) => {
                    r.ended = Some((seq, "failed".into()));
                }
                "dev.firebreak.model.version_changed"
                    if d.get("cause").and_then(Value::as_str) == Some("rollback") =>
                {
                    r.ended = Some((seq, "rolled back".into()));
                }
                _ => {}
            }
        }
        Ok(rollouts)
    }

    /// The figures by revision recorded for the service from `from_seq` to `to_seq`
    /// (open-ended: to now), oldest first. An event the store cannot read back is left
    /// out (it was checked when it arrived).
    pub async fn revision_windows(
        &self,
        cluster_id: i64,
        service: &str,
        from_seq: i64,
        to_seq: Option<i64>,
    ) -> Result<Vec<RevisionWindow>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, time_ms, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND type = 'dev.firebreak.service.revision_metrics' AND seq > ? AND seq < ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(from_seq)
        .bind(to_seq.unwrap_or(i64::MAX))
        .bind(WINDOWS_READ)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .rev()
            .filter_map(|(seq, time_ms, raw)| {
                let metrics = serde_json::from_value(data(&raw)?).ok()?;
                Some(RevisionWindow {
                    seq,
                    time_ms,
                    metrics,
                })
            })
            .collect())
    }
}

fn data(raw: &str) -> Option<Value> {
    serde_json::from_str::<Value>(raw)
        .ok()?
        .get("data")
        .cloned()
}
