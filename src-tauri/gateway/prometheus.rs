//! The Prometheus source: every interval, each service's configured PromQL per region
//! through the HTTP API (`/api/v1/query`), published as one `service.metrics` event per
//! (service, region). A query that fails or returns nothing is never skipped silently:
//! the gateway publishes `source.degraded` for it once (and `degraded: false` once it
//! answers again), keeps it on its status endpoint, and publishes no half-filled sample.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::config::{Prometheus, Service, METRICS};
use super::journal::DurableJournal;
use crate::protocol::events::{EventType, ServiceMetrics, SourceDegraded};
use crate::server::envelope;

/// The Prometheus HTTP API's answer to an instant query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// One query's value, or why there is none.
pub fn read_value(body: &[u8]) -> Result<f64, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("not a Prometheus answer: {e}"))?;
    if answer.status != "success" {
        return Err(answer.error.unwrap_or_else(|| "the query failed".into()));
    }
    let data = answer.data.ok_or("the answer has no data")?;
    // A vector sample and a scalar are both [unix seconds, "value as a string"].
    let sample = match data.result_type.as_str() {
        "vector" => match data.result.as_array().map(Vec::as_slice) {
            Some([]) | None => return Err("the query returned nothing".into()),
            Some([one]) => one["value"].clone(),
            Some(many) => {
                return Err(format!(
                    "the query returned {} series; aggregate it to one (sum by (…), max, …)",
                    many.len()
                ))
            }
        },
        "scalar" => data.result.clone(),
        other => {
            return Err(format!(
                "the query returned a {other}, not a vector or scalar"
            ))
        }
    };
    let value: f64 = sample[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or("the sample's value is not a number")?;
    if !value.is_finite() {
        return Err(format!("the value is {value}"));
    }
    Ok(value)
}

/// What the poller knows of each (service, region, metric) that does not answer.
pub type Failures = Arc<Mutex<BTreeMap<(String, String, String), String>>>;

/// Polls until the task is stopped.
pub async fn poll(
    prometheus: Prometheus,
    services: Vec<Service>,
    cluster: String,
    journal: Arc<DurableJournal>,
    failures: Failures,
) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the Prometheus client");
            return;
        }
    };
    let source = format!("/clusters/{cluster}");
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(prometheus.interval_s)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut events: Vec<(EventType, String, serde_json::Value)> = Vec::new();
        for service in services.iter().filter(|s| !s.queries.is_empty()) {
            for (r, region) in service.regions.iter().enumerate() {
                let mut values = BTreeMap::new();
                for metric in METRICS {
                    let key = (service.name.clone(), region.clone(), (*metric).to_owned());
                    let outcome = match service.queries.get(*metric) {
                        None => Err("no query is configured for it".to_owned()),
                        Some(q) => {
                            query(&http, &prometheus.url, &q.replace("$region", region)).await
                        }
                    };
                    let before = failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&key)
                        .cloned();
                    match outcome {
                        Ok(v) => {
                            values.insert(*metric, v);
                            if before.is_some() {
                                failures
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .remove(&key);
                                events.push(degraded(service, region, metric, "", false));
                            }
                        }
                        Err(reason) => {
                            if before.as_deref() != Some(reason.as_str()) {
                                tracing::warn!(service = %service.name, %region, metric, %reason, "Prometheus query gives nothing");
                                events.push(degraded(service, region, metric, &reason, true));
                                failures
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(key, reason);
                            }
                        }
                    }
                }
                if values.len() == METRICS.len() {
                    let m = ServiceMetrics {
                        service: service.name.clone(),
                        region: region.clone(),
                        window_s: prometheus.interval_s,
                        latency_p50_ms: values["latency_p50_ms"].max(0.0),
                        latency_p99_ms: values["latency_p99_ms"].max(0.0),
                        error_rate: values["error_rate"].clamp(0.0, 1.0),
                        requests_per_s: values["requests_per_s"].max(0.0),
                        queue_depth: values["queue_depth"].max(0.0),
                        gpu_utilization: values["gpu_utilization"].clamp(0.0, 1.0),
                        // The revision comes with the Kubernetes adapter; 0 until then.
                        revision: 0,
                        // The first region listed serves the traffic until the adapter
                        // reads the route's weights.
                        primary: r == 0,
                    };
                    if let Ok(data) = serde_json::to_value(m) {
                        events.push((EventType::ServiceMetrics, service.name.clone(), data));
                    }
                }
            }
        }
        if events.is_empty() {
            continue;
        }
        let now = chrono::Utc::now();
        let published = journal
            .publish(events.len(), |seq, i| {
                let (ty, service, data) = &events[i];
                let id = uuid::Uuid::now_v7().to_string();
                envelope(
                    &source,
                    &id,
                    *ty,
                    now,
                    &format!("service/{service}"),
                    seq,
                    data,
                )
            })
            .await;
        if let Err(e) = published {
            tracing::error!(error = %e, "cannot record the Prometheus samples");
        }
    }
}

fn degraded(
    service: &Service,
    region: &str,
    metric: &str,
    reason: &str,
    degraded: bool,
) -> (EventType, String, serde_json::Value) {
    let data = serde_json::to_value(SourceDegraded {
        source: "prometheus".into(),
        service: service.name.clone(),
        region: region.to_owned(),
        what: metric.to_owned(),
        reason: reason.to_owned(),
        degraded,
    })
    .unwrap_or_default();
    (EventType::SourceDegraded, service.name.clone(), data)
}

async fn query(http: &reqwest::Client, base: &str, promql: &str) -> Result<f64, String> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", promql)])
        .map_err(|e| e.to_string())?;
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("Prometheus did not answer: {e}"))?;
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("Prometheus did not answer: {e}"))?;
    read_value(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_or_refused_with_why() {
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764471681.5,"0.091"]}]}}"#;
        assert_eq!(read_value(one), Ok(0.091));
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1764471681.5,"42"]}}"#;
        assert_eq!(read_value(scalar), Ok(42.0));
        let none = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(read_value(none), Err("the query returned nothing".into()));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(read_value(two).unwrap_err().contains("2 series"));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(read_value(bad), Err("parse error at char 3".into()));
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"NaN"]}]}}"#;
        assert!(read_value(nan).is_err(), "NaN is no figure to publish");
        assert!(read_value(b"<html>").is_err());
    }
}
