//! How a protocol event reads on an incident's timeline: one sentence in the incident
//! commander's words, built from the event's typed data. Plain functions over data, used
//! by the incident rules, the store's backfill and the event feed alike.

use serde_json::Value;

use super::events::EventType;

/// The timeline text for an event attached to an incident; None for events that are
/// evidence only (metrics, region status, synthetic load).
pub fn describe(ty: EventType, data: &Value) -> Option<String> {
    let svc = text(data, "service");
    use EventType as T;
    Some(match ty {
        T::AlertFiring => {
            let figures = match (
                data.get("value").and_then(Value::as_f64),
                data.get("threshold").and_then(Value::as_f64),
            ) {
                (Some(v), Some(t)) => format!("; value {v} over threshold {t}"),
                (Some(v), None) => format!("; value {v}"),
                _ => String::new(),
            };
            format!(
                "Alert {} firing ({}): {}{figures}",
                text(data, "alert"),
                text(data, "severity"),
                text(data, "summary"),
            )
        }
        T::AlertResolved => format!(
            "Alert {} resolved in {}",
            text(data, "alert"),
            text(data, "region")
        ),
        T::RolloutStalled => format!(
            "Rollout of {svc} revision {} stalled at wave {} of {}: {}",
            num(data, "to_revision"),
            num(data, "wave"),
            num(data, "waves"),
            text(data, "reason")
        ),
        T::RolloutFailed => format!(
            "Rollout of {svc} revision {} failed: {}",
            num(data, "to_revision"),
            text(data, "reason")
        ),
        T::NodeDown => format!(
            "Node {} down ({}): {} of {} nodes of pool {} down",
            text(data, "node"),
            text(data, "reason"),
            num(data, "pool_nodes_down"),
            num(data, "pool_nodes_total"),
            text(data, "pool")
        ),
        T::NodeDegraded => format!(
            "Node {} degraded ({}): {}",
            text(data, "node"),
            text(data, "reason"),
            text(data, "detail")
        ),
        T::NodeUp => format!("Node {} back up", text(data, "node")),
        T::RolloutStarted => format!(
            "Rollout started: {svc} revision {} → {} ({}), {} waves",
            num(data, "from_revision"),
            num(data, "to_revision"),
            text(data, "model_version"),
            num(data, "waves")
        ),
        T::RolloutWaveProgressed => format!(
            "Rollout wave {} of {}: {} of {} nodes on revision {}",
            num(data, "wave"),
            num(data, "waves"),
            num(data, "nodes_updated"),
            num(data, "nodes_total"),
            num(data, "to_revision")
        ),
        T::RolloutCompleted => format!(
            "Rollout completed: {svc} on revision {}",
            num(data, "revision")
        ),
        T::ModelVersionChanged => format!(
            "Model changed ({}): {} → {} (revision {})",
            text(data, "cause"),
            text(data, "from_model"),
            text(data, "to_model"),
            num(data, "revision")
        ),
        T::ActionAccepted | T::ActionRunning | T::ActionSucceeded | T::ActionFailed => {
            let state = ty.name().rsplit('.').next().unwrap_or("");
            let error = data
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            format!(
                "Cluster: {} {} → {} {state} (by {}){error}",
                text(data, "kind"),
                text(data, "from"),
                text(data, "to"),
                text(data, "actor")
            )
        }
        T::ClusterWarning => format!(
            "Cluster warning for {svc}: {} {}: {} (seen {} times)",
            text(data, "object"),
            text(data, "reason"),
            text(data, "message"),
            data.get("count").and_then(Value::as_u64).unwrap_or(1)
        ),
        T::PodFailing => {
            let what = match text(data, "reason") {
                "oom_killed" => "was OOMKilled",
                "crash_loop" => "is crash-looping",
                other => other,
            };
            format!(
                "Pod {} of {svc} on {}: container {} {what} ({} restarts): {}",
                text(data, "pod"),
                text(data, "node"),
                text(data, "container"),
                data.get("restarts").and_then(Value::as_u64).unwrap_or(0),
                text(data, "detail")
            )
        }
        T::SourceDegraded => {
            if data
                .get("degraded")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                format!(
                    "Monitoring degraded: {} cannot give {} for {svc} in {}: {}",
                    source_name(text(data, "source")),
                    text(data, "what"),
                    text(data, "region"),
                    text(data, "reason")
                )
            } else {
                format!(
                    "Monitoring recovered: {} gives {} for {svc} in {} again",
                    source_name(text(data, "source")),
                    text(data, "what"),
                    text(data, "region")
                )
            }
        }
        T::GpuXid => format!(
            "GPU {} on node {} ({}, {svc}): {}",
            text(data, "gpu"),
            text(data, "node"),
            text(data, "region"),
            crate::xid::sentence(num(data, "xid") as u32)
        ),
        T::GpuMissing => {
            let (seen, expected) = (num(data, "seen"), num(data, "expected"));
            if seen < expected {
                format!(
                    "Node {} ({}, {svc}) reports {seen} of its {expected} GPUs: one fell off the bus or its driver lost it; drain the node",
                    text(data, "node"),
                    text(data, "region"),
                )
            } else {
                format!(
                    "Node {} ({}, {svc}) reports all {expected} GPUs again",
                    text(data, "node"),
                    text(data, "region"),
                )
            }
        }
        T::KvCachePressure => {
            if data
                .get("pressure")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                format!(
                    "KV cache pressure on {svc} in {}: cache {:.0} % full, {:.1} requests/s preempted, {} waiting: requests are evicted and recomputed, so latency climbs",
                    text(data, "region"),
                    num(data, "kv_cache_usage") * 100.0,
                    num(data, "preemptions_per_s"),
                    num(data, "queue_depth")
                )
            } else {
                format!(
                    "KV cache pressure over on {svc} in {}: cache {:.0} % full, no preemptions",
                    text(data, "region"),
                    num(data, "kv_cache_usage") * 100.0
                )
            }
        }
        T::ServiceDiscovered => format!(
            "Service {svc} discovered ({}) in {}: watched from now on",
            text(data, "stack"),
            data.get("regions")
                .and_then(Value::as_array)
                .map(|r| r
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        T::ServiceRetired => format!(
            "Service {svc} retired: {}; no longer watched",
            text(data, "reason")
        ),
        T::ServiceMetrics | T::RevisionMetrics | T::RegionStatus | T::SyntheticLoad => return None,
    })
}

/// A monitoring source as people name it.
fn source_name(source: &str) -> &str {
    match source {
        "prometheus" => "Prometheus",
        "alertmanager" => "Alertmanager",
        "kubernetes" => "Kubernetes",
        other => other,
    }
}

pub fn text<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn num(data: &Value, key: &str) -> f64 {
    data.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}
