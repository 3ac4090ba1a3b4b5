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

/// One sample of a service: when, the requests and failed requests it stands for, its p99.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub requests: f64,
    pub errors: f64,
    pub p99_ms: f64,
}

type Row = (i64, String, String, f64, Option<f64>, f64, String, i64);
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
