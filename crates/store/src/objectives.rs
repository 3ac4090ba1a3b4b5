//! Services' objectives (availability, and optionally latency), as set in the console,
//! and the samples they are judged on: each primary-region `service.metrics` as the
//! requests and failed requests it stands for, and its p99.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::incidents::require_author;
use super::{now_ms, Result, Store, StoreError};

/// A service's objectives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Objective {
    /// The share of requests that must succeed (0.995 for 99.5 %).
    pub availability: f64,
    /// The p99 a time slice must stay at or under, when there is a latency objective.
    pub latency_p99_ms: Option<f64>,
    /// The share of time slices that must (0.99 for 99 %).
    pub latency_target: f64,
}

impl Objective {
    /// Refused with why when the numbers cannot be an objective.
    pub fn check(&self) -> std::result::Result<(), String> {
        let share = |x: f64| x > 0.0 && x < 1.0;
        if !share(self.availability) || !share(self.latency_target) {
            return Err("an objective is a share between 0 and 100 % (exclusive)".into());
        }
        if self
            .latency_p99_ms
            .is_some_and(|ms| !(ms > 0.0 && ms.is_finite()))
        {
            return Err("the latency threshold is a number of milliseconds above 0".into());
        }
        Ok(())
    }
}

/// A service's objectives as set, with who set them and when.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServiceObjective {
    pub cluster_id: i64,
    pub cluster: String,
    pub service: String,
    pub objective: Objective,
    pub set_by: String,
    #[ts(type = "number")]
    pub set_at_ms: i64,
}

/// The error budget a service has left over the budget period up to a moment, of each
/// objective (1: untouched, 0: spent, below 0: overspent; none when nothing was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub availability_left: Option<f64>,
    pub latency_left: Option<f64>,
    /// The period counted: 30 days up to `to_ms`, or less when less was recorded.
    #[ts(type = "number")]
    pub from_ms: i64,
    #[ts(type = "number")]
    pub to_ms: i64,
}

/// The period an error budget is counted over.
pub const BUDGET_PERIOD_MS: i64 = firebreak_protocol::slo::BUDGET_PERIOD_S * 1000;

/// One sample of a service: when, the requests and failed requests it stands for, its p99.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub requests: f64,
    pub errors: f64,
    pub p99_ms: f64,
}

type Row = (i64, String, String, f64, Option<f64>, f64, String, i64);
/// requests, failed requests, slow slices, slices, first sample's time.
type BudgetRow = (Option<f64>, Option<f64>, Option<i64>, i64, Option<i64>);
/// time, requests/s, error rate, window, p99 (each as the event says it, or none).
type SampleRow = (i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>);

impl Store {
    /// Every service's objectives, by cluster and service.
    pub async fn objectives(&self) -> Result<Vec<ServiceObjective>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT o.cluster_id, c.name, o.service, o.availability, o.latency_p99_ms, \
             o.latency_target, o.set_by, o.set_at_ms FROM objectives o \
             JOIN clusters c ON c.id = o.cluster_id WHERE c.removed_ms IS NULL \
             ORDER BY c.name, o.service",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(cluster_id, cluster, service, a, ms, t, set_by, set_at_ms)| ServiceObjective {
                    cluster_id,
                    cluster,
                    service,
                    objective: Objective {
                        availability: a,
                        latency_p99_ms: ms,
                        latency_target: t,
                    },
                    set_by,
                    set_at_ms,
                },
            )
            .collect())
    }

    /// Sets (or, with none, removes) a service's objectives, with its audit record.
    pub async fn set_objective(
        &self,
        cluster_id: i64,
        service: &str,
        objective: Option<Objective>,
        by: &str,
    ) -> Result<()> {
        let by = require_author(by)?;
        let service = service.trim();
        if service.is_empty() {
            return Err(StoreError::Invalid(
                "objectives need the service's name".into(),
            ));
        }
        if let Some(o) = &objective {
            o.check().map_err(StoreError::Invalid)?;
        }
        let cluster = self.cluster(cluster_id).await?;
        let mut tx = self.begin_write().await?;
        match &objective {
            Some(o) => {
                sqlx::query(
                    "INSERT INTO objectives (cluster_id, service, availability, latency_p99_ms, \
                     latency_target, set_by, set_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (cluster_id, service) DO UPDATE SET \
                     availability = excluded.availability, latency_p99_ms = excluded.latency_p99_ms, \
                     latency_target = excluded.latency_target, set_by = excluded.set_by, \
                     set_at_ms = excluded.set_at_ms",
                )
                .bind(cluster_id)
                .bind(service)
                .bind(o.availability)
                .bind(o.latency_p99_ms)
                .bind(o.latency_target)
                .bind(by)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM objectives WHERE cluster_id = ? AND service = ?")
                    .bind(cluster_id)
                    .bind(service)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        super::audit::record(
            &mut tx,
            by,
            &format!("objective/{}/{service}", cluster.name),
            "objective",
            &serde_json::json!({ "objective": objective }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The error budget the service had left at `to_ms`, over the 30 days before it: one
    /// pass over its primary-region samples, summed in SQLite.
    pub async fn budget(
        &self,
        cluster_id: i64,
        service: &str,
        objective: &Objective,
        to_ms: i64,
    ) -> Result<Budget> {
        let from = to_ms - BUDGET_PERIOD_MS;
        let (requests, errors, slow, slices, first): BudgetRow = sqlx::query_as(
            "SELECT SUM(r * w), SUM(r * w * e), SUM(CASE WHEN p > ? THEN 1 ELSE 0 END), \
             COUNT(*), MIN(time_ms) FROM (SELECT time_ms, \
             MAX(CAST(json_extract(raw, '$.data.requests_per_s') AS REAL), 0) AS r, \
             MAX(CAST(json_extract(raw, '$.data.window_s') AS REAL), 0) AS w, \
             MIN(MAX(CAST(json_extract(raw, '$.data.error_rate') AS REAL), 0), 1) AS e, \
             CAST(json_extract(raw, '$.data.latency_p99_ms') AS REAL) AS p FROM events \
             WHERE cluster_id = ? AND service = ? AND type = 'dev.firebreak.service.metrics' \
             AND time_ms > ? AND time_ms <= ? AND json_extract(raw, '$.data.primary') = 1)",
        )
        .bind(objective.latency_p99_ms.unwrap_or(f64::INFINITY))
        .bind(cluster_id)
        .bind(service)
        .bind(from)
        .bind(to_ms)
        .fetch_one(self.reader())
        .await?;
        let availability_left = match (requests, errors) {
            (Some(r), Some(e)) if r > 0.0 => Some(1.0 - (e / r) / (1.0 - objective.availability)),
            _ => None,
        };
        let latency_left = match (objective.latency_p99_ms, slow) {
            (Some(_), Some(slow)) if slices > 0 => {
                Some(1.0 - (slow as f64 / slices as f64) / (1.0 - objective.latency_target))
            }
            _ => None,
        };
        Ok(Budget {
            availability_left,
            latency_left,
            from_ms: first.unwrap_or(to_ms).max(from),
            to_ms,
        })
    }

    /// The objectives of one service, if it has any.
    pub async fn objective_of(&self, cluster_id: i64, service: &str) -> Result<Option<Objective>> {
        Ok(self
            .objectives()
            .await?
            .into_iter()
            .find(|o| o.cluster_id == cluster_id && o.service == service)
            .map(|o| o.objective))
    }

    /// The service's primary-region samples since `since_ms`, oldest first: each
    /// `service.metrics` as the requests (requests/s × its window) and failed requests it
    /// stands for, and its p99.
    pub async fn service_samples(
        &self,
        cluster_id: i64,
        service: &str,
        since_ms: i64,
    ) -> Result<Vec<Sample>> {
        let rows: Vec<SampleRow> = sqlx::query_as(
            "SELECT time_ms, CAST(json_extract(raw, '$.data.requests_per_s') AS REAL), \
             CAST(json_extract(raw, '$.data.error_rate') AS REAL), \
             CAST(json_extract(raw, '$.data.window_s') AS REAL), \
             CAST(json_extract(raw, '$.data.latency_p99_ms') AS REAL) FROM events \
             WHERE cluster_id = ? AND service = ? AND type = 'dev.firebreak.service.metrics' \
             AND time_ms > ? AND json_extract(raw, '$.data.primary') = 1 ORDER BY time_ms, seq",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(since_ms)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at_ms, rps, error_rate, window_s, p99)| {
                let requests = rps.unwrap_or(0.0).max(0.0) * window_s.unwrap_or(5.0).max(0.0);
                Sample {
                    at_ms,
                    requests,
                    errors: requests * error_rate.unwrap_or(0.0).clamp(0.0, 1.0),
                    p99_ms: p99.unwrap_or(0.0),
                }
            })
            .collect())
    }
}
