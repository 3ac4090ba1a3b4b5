//! What the recorded stream says about a service's health, for action previews and
//! verification: metric samples, the revision a rollout replaced, a region's status.
//! Every query narrows by (cluster, service) first, which the events index serves.

use serde_json::Value;

use super::{Result, Store};

/// One `service.metrics` event, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// The event's place in the store (its order of arrival).
    pub seq: i64,
    pub received_ms: i64,
    pub region: String,
    pub primary: bool,
    pub revision: u32,
    pub error_rate: f64,
    pub latency_p99_ms: f64,
    pub requests_per_s: f64,
}

fn sample(seq: i64, received_ms: i64, raw: &str) -> Option<MetricSample> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let d = v.get("data")?;
    Some(MetricSample {
        seq,
        received_ms,
        region: d.get("region")?.as_str()?.to_owned(),
        primary: d.get("primary")?.as_bool()?,
        revision: d.get("revision")?.as_u64()? as u32,
        error_rate: d.get("error_rate")?.as_f64()?,
        latency_p99_ms: d.get("latency_p99_ms")?.as_f64()?,
        requests_per_s: d.get("requests_per_s")?.as_f64()?,
    })
}

/// A region's last reported status.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionStatus {
    pub received_ms: i64,
    pub status: String,
    pub nodes_up: u64,
    pub nodes_total: u64,
}

impl Store {
    /// A service's metric samples received in `[from_ms, to_ms]`, oldest first (at most
    /// `limit`, the newest ones).
    pub async fn metric_samples(
        &self,
        cluster_id: i64,
        service: &str,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<MetricSample>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, received_ms, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND type = 'dev.firebreak.service.metrics' AND received_ms BETWEEN ? AND ? \
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(from_ms)
        .bind(to_ms)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        let mut samples: Vec<MetricSample> = rows
            .iter()
            .filter_map(|(seq, at, raw)| sample(*seq, *at, raw))
            .collect();
        samples.reverse();
        Ok(samples)
    }

    /// The newest sample that matches `keep`, looking back over at most `scan` samples.
    pub async fn latest_sample(
        &self,
        cluster_id: i64,
        service: &str,
        scan: i64,
        keep: impl Fn(&MetricSample) -> bool,
    ) -> Result<Option<MetricSample>> {
        let samples = self
            .metric_samples(cluster_id, service, i64::MIN, i64::MAX, scan)
            .await?;
        Ok(samples.into_iter().rev().find(|s| keep(s)))
    }

    /// When rollouts of a service were under way, oldest first: from each
    /// `rollout.started` to the next `rollout.completed` or `rollout.failed`, or to a
    /// rollback's `model.version_changed` (open-ended while one runs). Metrics recorded
    /// inside one speak for a mix of revisions. As ranges of `seq` (the order of arrival,
    /// which a burst of catching up does not blur as arrival times would).
    pub async fn rollout_windows(
        &self,
        cluster_id: i64,
        service: &str,
    ) -> Result<Vec<(i64, Option<i64>)>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, type, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND type IN ('dev.firebreak.rollout.started', 'dev.firebreak.rollout.completed', \
             'dev.firebreak.rollout.failed', 'dev.firebreak.model.version_changed') \
             ORDER BY seq LIMIT 10000",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_all(self.reader())
        .await?;
        let mut windows: Vec<(i64, Option<i64>)> = Vec::new();
        for (at, ty, raw) in rows {
            let open = windows.last().is_some_and(|(_, end)| end.is_none());
            match ty.as_str() {
                "dev.firebreak.rollout.started" if !open => windows.push((at, None)),
                "dev.firebreak.rollout.completed" | "dev.firebreak.rollout.failed" if open => {
                    if let Some(w) = windows.last_mut() {
                        w.1 = Some(at);
                    }
                }
                "dev.firebreak.model.version_changed" if open => {
                    let rollback = serde_json::from_str::<Value>(&raw)
                        .ok()
                        .is_some_and(|v| v["data"]["cause"] == "rollback");
                    if rollback {
                        if let Some(w) = windows.last_mut() {
                            w.1 = Some(at);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(windows)
    }

    /// The service's rollout and pod events received from `since_ms` on, oldest first:
    /// `(type without its prefix, received_ms, data)`. Verification reads the rollout an
    /// action started from them when no metrics come.
    pub async fn rollout_state_since(
        &self,
        cluster_id: i64,
        service: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, i64, Value)>> {
        // By our clock of arrival: an event's own time is when the cluster says it happened
        // (a condition's last transition), which can be long before it reached us.
        let mut rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT type, received_ms, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND received_ms >= ? AND type IN ('dev.firebreak.rollout.started', \
             'dev.firebreak.rollout.completed', 'dev.firebreak.rollout.stalled', \
             'dev.firebreak.rollout.failed', 'dev.firebreak.model.version_changed', \
             'dev.firebreak.pod.failing') ORDER BY seq DESC LIMIT 1000",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(since_ms)
        .fetch_all(self.reader())
        .await?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|(ty, at, raw)| {
                let data = serde_json::from_str::<Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("data").cloned())
                    .unwrap_or_default();
                (ty.trim_start_matches("dev.firebreak.").to_owned(), at, data)
            })
            .collect())
    }

    /// Whether the cluster has ever sent metrics of the service.
    pub async fn has_metrics(&self, cluster_id: i64, service: &str) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT seq FROM events WHERE cluster_id = ? AND service = ? \
             AND type = 'dev.firebreak.service.metrics' LIMIT 1",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.is_some())
    }

    /// The revision a deployment ran before the newest rollout to `revision` began.
    pub async fn revision_before_rollout(
        &self,
        cluster_id: i64,
        service: &str,
        deployment: &str,
        revision: u32,
    ) -> Result<Option<u32>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT raw FROM events WHERE cluster_id = ? AND service = ? \
             AND type = 'dev.firebreak.rollout.started' ORDER BY seq DESC LIMIT 50",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.iter().find_map(|(raw,)| {
            let v: Value = serde_json::from_str(raw).ok()?;
            let d = v.get("data")?;
            (d.get("deployment")?.as_str()? == deployment
                && d.get("to_revision")?.as_u64()? == u64::from(revision))
            .then(|| d.get("from_revision")?.as_u64().map(|r| r as u32))?
        }))
    }

    /// A region's newest `region.status` event.
    pub async fn region_status(
        &self,
        cluster_id: i64,
        region: &str,
    ) -> Result<Option<RegionStatus>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT received_ms, raw FROM events WHERE cluster_id = ? AND service IS NULL \
             AND type = 'dev.firebreak.region.status' AND subject = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(cluster_id)
        .bind(format!("region/{region}"))
        .fetch_optional(self.reader())
        .await?;
        Ok(row.and_then(|(received_ms, raw)| {
            let v: Value = serde_json::from_str(&raw).ok()?;
            let d = v.get("data")?;
            Some(RegionStatus {
                received_ms,
                status: d.get("status")?.as_str()?.to_owned(),
                nodes_up: d.get("nodes_up")?.as_u64()?,
                nodes_total: d.get("nodes_total")?.as_u64()?,
            })
        }))
    }

    /// The types and data of the events attached to an incident (the newest 2,000), for
    /// matching runbooks.
    pub async fn incident_event_data(&self, incident_id: i64) -> Result<Vec<(String, Value)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT e.type, e.raw FROM incident_events ie JOIN events e ON e.seq = ie.event_seq \
             WHERE ie.incident_id = ? ORDER BY ie.event_seq DESC LIMIT 2000",
        )
        .bind(incident_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(ty, raw)| {
                let data = serde_json::from_str::<Value>(&raw)
                    .ok()
                    .and_then(|mut v| v.get_mut("data").map(Value::take))
                    .unwrap_or_default();
                (ty, data)
            })
            .collect())
    }

    /// The service's nodes that are down now, by replaying its node.down and node.up events.
    pub async fn nodes_down(&self, cluster_id: i64, service: &str) -> Result<Vec<String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT type, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND type IN ('dev.firebreak.node.down', 'dev.firebreak.node.up') ORDER BY seq",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_all(self.reader())
        .await?;
        let mut down = std::collections::BTreeSet::new();
        for (ty, raw) in rows {
            let node = serde_json::from_str::<Value>(&raw)
                .ok()
                .and_then(|v| v.get("data")?.get("node")?.as_str().map(str::to_owned));
            if let Some(node) = node {
                if ty.ends_with("node.down") {
                    down.insert(node);
                } else {
                    down.remove(&node);
                }
            }
        }
        Ok(down.into_iter().collect())
    }

    /// When the first sign of trouble attached to an incident arrived (an anomaly, an
    /// alert, a stalled or failed rollout, a node down), by the console's clock.
    pub async fn first_sign_received(&self, incident_id: i64) -> Result<Option<(i64, String)>> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT e.received_ms, t.body FROM timeline_entries t JOIN events e ON e.seq = t.event_seq \
             WHERE t.incident_id = ? AND (t.kind = 'anomaly' OR e.type IN ('dev.firebreak.alert.firing', \
             'dev.firebreak.rollout.stalled', 'dev.firebreak.rollout.failed', 'dev.firebreak.node.down')) \
             ORDER BY e.received_ms, t.id LIMIT 1",
        )
        .bind(incident_id)
        .fetch_optional(self.reader())
        .await?;
        Ok(row)
    }
}
