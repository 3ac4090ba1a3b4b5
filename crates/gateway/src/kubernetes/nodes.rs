//! Nodes as protocol v1 events (PROTOCOL.md, "The gateway and Kubernetes"), a pure
//! function of one snapshot of the cluster's nodes, like `rollouts.rs`: each event's id is
//! made from the node, what happened and when Kubernetes says it happened (a condition's
//! `lastTransitionTime`, a taint's `timeAdded`), so observing the same state again
//! publishes nothing twice, and a new transition is a new event.
//!
//! - A node serves the services whose `node_pool` its pool label names; its region is its
//!   region label (both labels configured).
//! - `node.down`: condition `Ready` is `False` or `Unknown` (`Unknown`: the kubelet stopped
//!   reporting → `unreachable`; `False` with `MemoryPressure` → `oom`; else `unreachable`).
//!   `pool_nodes_down` / `pool_nodes_total` count the pool's nodes in this snapshot.
//! - `node.degraded`: a Ready node with a `NoSchedule`/`NoExecute` taint, or a condition
//!   that is `True`, whose name speaks of the GPU or XID errors (what the NVIDIA GPU
//!   operator, DCGM and node-problem-detector set) → `gpu_error`; of heat → `thermal`;
//!   `MemoryPressure` → `oom`.
//! - `node.up`: `Ready` turned `True` less than [`RECOVERY_WINDOW`] ago (older recoveries
//!   are history, not news: a gateway starting on a healthy cluster says nothing).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, NodeCondition};

use super::story::{data, Emit};
use crate::config::{Kubernetes, Service};
use firebreak_protocol::events::{EventType, NodeDegraded, NodeDown, NodeFault, NodeUp};

/// How recent a node's return to Ready must be to be published as `node.up`.
pub const RECOVERY_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

fn time_of(
    t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn condition<'a>(node: &'a Node, ty: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

/// What a name (a taint key, a condition type) says about the fault, if anything.
fn fault_named(name: &str) -> Option<NodeFault> {
    let n = name.to_ascii_lowercase();
    if n.contains("thermal") || n.contains("temperature") {
        Some(NodeFault::Thermal)
    } else if n.contains("gpu") || n.contains("xid") || n.contains("nvidia") {
        Some(NodeFault::GpuError)
    } else if n.contains("memorypressure") || n.contains("memory-pressure") || n.contains("oom") {
        Some(NodeFault::Oom)
    } else {
        None
    }
}

/// A node's trouble while Ready: the first taint or true condition that names a fault.
fn degraded(node: &Node) -> Option<(NodeFault, String, Option<DateTime<Utc>>)> {
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for t in taints {
        if t.effect != "NoSchedule" && t.effect != "NoExecute" {
            continue;
        }
        if let Some(fault) = fault_named(&t.key) {
            let detail = format!(
                "taint {}{}:{}",
                t.key,
                t.value
                    .as_deref()
                    .map(|v| format!("={v}"))
                    .unwrap_or_default(),
                t.effect
            );
            return Some((fault, detail, time_of(t.time_added.as_ref())));
        }
    }
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for c in conditions {
        if c.type_ == "Ready" || c.status != "True" {
            continue;
        }
        if let Some(fault) = fault_named(&c.type_) {
            let detail = match &c.message {
                Some(m) if !m.trim().is_empty() => format!("{}: {}", c.type_, m.trim()),
                _ => c.type_.clone(),
            };
            return Some((fault, detail, time_of(c.last_transition_time.as_ref())));
        }
    }
    None
}

/// The events one snapshot of the cluster's nodes implies for the configured services.
pub fn observe(
    k8s: &Kubernetes,
    services: &[Service],
    nodes: &[Node],
    now: DateTime<Utc>,
) -> Vec<Emit> {
    let mut out = Vec::new();
    for service in services {
        let Some(pool) = service
            .kubernetes
            .as_ref()
            .and_then(|o| o.node_pool.as_deref())
        else {
            continue;
        };
        let in_pool: Vec<&Node> = nodes
            .iter()
            .filter(|n| label(n, &k8s.pool_label) == Some(pool))
            .collect();
        let pool_down = in_pool
            .iter()
            .filter(|n| condition(n, "Ready").is_none_or(|c| c.status != "True"))
            .count();
        let pool_down = u32::try_from(pool_down).unwrap_or(u32::MAX);
        let pool_total = u32::try_from(in_pool.len()).unwrap_or(u32::MAX);
        for node in &in_pool {
            let name = node.metadata.name.clone().unwrap_or_default();
            let region = label(node, &k8s.region_label).unwrap_or("").to_owned();
            let ready = condition(node, "Ready");
            let since = ready
                .and_then(|c| time_of(c.last_transition_time.as_ref()))
                .unwrap_or(now);
            let subject = format!("node/{name}");
            let mut emit =
                |what: &str, at: DateTime<Utc>, ty: EventType, data: serde_json::Value| {
                    out.push(Emit {
                        id: super::story::stable_id(
                            &format!(
                                "k8s/nodes/{name}/{}/{what}/{}",
                                service.name,
                                at.timestamp_millis()
                            ),
                            at,
                        ),
                        ty,
                        time: at,
                        subject: subject.clone(),
                        data,
                    });
                };
            match ready.map(|c| c.status.as_str()) {
                Some("True") => {
                    if let Some((reason, detail, at)) = degraded(node) {
                        emit(
                            "degraded",
                            at.unwrap_or(since),
                            EventType::NodeDegraded,
                            data(&NodeDegraded {
                                node: name.clone(),
                                pool: pool.to_owned(),
                                region: region.clone(),
                                service: service.name.clone(),
                                reason,
                                detail,
                            }),
                        );
                    } else if now - since < RECOVERY_WINDOW {
                        emit(
                            "up",
                            since,
                            EventType::NodeUp,
                            data(&NodeUp {
                                node: name.clone(),
                                pool: pool.to_owned(),
                                region: region.clone(),
                                service: service.name.clone(),
                            }),
                        );
                    }
                }
                status => {
                    let reason = match status {
                        Some("False")
                            if condition(node, "MemoryPressure")
                                .is_some_and(|c| c.status == "True") =>
                        {
                            NodeFault::Oom
                        }
                        Some("False") => degraded(node)
                            .map(|(f, _, _)| f)
                            .unwrap_or(NodeFault::Unreachable),
                        _ => NodeFault::Unreachable,
                    };
                    emit(
                        "down",
                        since,
                        EventType::NodeDown,
                        data(&NodeDown {
                            node: name.clone(),
                            pool: pool.to_owned(),
                            region: region.clone(),
                            service: service.name.clone(),
                            reason,
                            pool_nodes_down: pool_down,
                            pool_nodes_total: pool_total,
                        }),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test fails
    use super::*;
    use std::path::Path;

    fn config() -> crate::config::Config {
        crate::config::parse(
            Path::new("gateway.toml"),
            r#"cluster = "c"
listen = "127.0.0.1:7443"
[[tokens]]
name = "oncall"
env = "T"
[kubernetes]
pool_label = "firebreak.dev/pool"
[[services]]
name = "llm-assistant"
regions = ["us-east"]
[services.kubernetes]
namespace = "serving"
pods = "app=llm-assistant"
node_pool = "gpu-a100"
"#,
        )
        .unwrap()
    }

    /// A node as the API server sends it.
    fn node(
        name: &str,
        pool: &str,
        ready: &str,
        since: &str,
        extra_conditions: serde_json::Value,
        taints: serde_json::Value,
    ) -> Node {
        let mut conditions = vec![serde_json::json!({
            "type": "Ready", "status": ready, "reason": "KubeletReady",
            "lastHeartbeatTime": since, "lastTransitionTime": since
        })];
        conditions.extend(extra_conditions.as_array().cloned().unwrap_or_default());
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "labels": { "firebreak.dev/pool": pool, "topology.kubernetes.io/region": "us-east" } },
            "spec": { "taints": taints },
            "status": { "conditions": conditions }
        }))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T03:30:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn a_node_down_a_gpu_fault_and_a_fresh_recovery_are_events_and_old_health_is_not() {
        let c = config();
        let k8s = c.kubernetes.clone().unwrap();
        let nodes = [
            node(
                "gpu-1",
                "gpu-a100",
                "Unknown",
                "2026-11-30T03:20:00Z",
                serde_json::json!([]),
                serde_json::json!([]),
            ),
            node(
                "gpu-2",
                "gpu-a100",
                "True",
                "2026-11-28T00:00:00Z",
                serde_json::json!([]),
                serde_json::json!([{ "key": "nvidia.com/gpu-xid-79", "value": "true", "effect": "NoSchedule", "timeAdded": "2026-11-30T03:22:00Z" }]),
            ),
            node(
                "gpu-3",
                "gpu-a100",
                "True",
                "2026-11-30T03:25:00Z",
                serde_json::json!([]),
                serde_json::json!([]),
            ),
            node(
                "gpu-4",
                "gpu-a100",
                "True",
                "2026-11-01T00:00:00Z",
                serde_json::json!([]),
                serde_json::json!([]),
            ),
            node(
                "cpu-1",
                "general",
                "False",
                "2026-11-30T03:20:00Z",
                serde_json::json!([]),
                serde_json::json!([]),
            ),
        ];
        let events = observe(&k8s, &c.services, &nodes, now());
        let kinds: Vec<(&str, String)> = events
            .iter()
            .map(|e| {
                (
                    e.ty.name().trim_start_matches("dev.firebreak."),
                    e.data["node"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("node.down", "gpu-1".to_owned()),
                ("node.degraded", "gpu-2".to_owned()),
                ("node.up", "gpu-3".to_owned()),
            ],
            "gpu-4 has been healthy for weeks; cpu-1 is in no service's pool"
        );
        assert_eq!(events[0].data["reason"], "unreachable");
        assert_eq!(events[0].data["pool_nodes_down"], 1);
        assert_eq!(events[0].data["pool_nodes_total"], 4);
        assert_eq!(events[1].data["reason"], "gpu_error");
        assert_eq!(
            events[1].data["detail"],
            "taint nvidia.com/gpu-xid-79=true:NoSchedule"
        );
        assert_eq!(events[1].time.to_rfc3339(), "2026-11-30T03:22:00+00:00");
        for e in &events {
            e.ty.check_data(&e.data).unwrap();
        }
        // The same snapshot later: the same ids (gpu-3's recovery still inside the window).
        let again = observe(
            &k8s,
            &c.services,
            &nodes,
            now() + chrono::Duration::minutes(1),
        );
        assert_eq!(
            again.iter().map(|e| &e.id).collect::<Vec<_>>(),
            events.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn conditions_name_the_fault() {
        let c = config();
        let k8s = c.kubernetes.clone().unwrap();
        let hot = node(
            "gpu-5",
            "gpu-a100",
            "True",
            "2026-11-01T00:00:00Z",
            serde_json::json!([{ "type": "GpuThermalThrottling", "status": "True", "message": "GPU 3 at 91 C", "lastTransitionTime": "2026-11-30T03:28:00Z" }]),
            serde_json::json!([]),
        );
        let oom = node(
            "gpu-6",
            "gpu-a100",
            "False",
            "2026-11-30T03:29:00Z",
            serde_json::json!([{ "type": "MemoryPressure", "status": "True", "lastTransitionTime": "2026-11-30T03:28:30Z" }]),
            serde_json::json!([]),
        );
        let events = observe(&k8s, &c.services, &[hot, oom], now());
        assert_eq!(events[0].data["reason"], "thermal");
        assert_eq!(
            events[0].data["detail"],
            "GpuThermalThrottling: GPU 3 at 91 C"
        );
        assert_eq!(events[1].ty, EventType::NodeDown);
        assert_eq!(events[1].data["reason"], "oom");
    }
}
