//! Events and clusters as the store receives them, for the suites that record into a
//! store directly (the store's and the engine's): an event decoded as the connection hands
//! it over, a cluster nothing listens on, a raw connection beside the store.

use std::path::Path;

use firebreak_store::{NewCluster, Store};
use sqlx::Connection;

/// An event as the connection hands it to the store.
pub fn incoming(raw: serde_json::Value) -> firebreak_store::ingest::Incoming {
    let raw = raw.to_string();
    let firebreak_protocol::events::Frame::Event(event) =
        firebreak_protocol::events::decode(&raw).unwrap()
    else {
        panic!("not an event: {raw}")
    };
    let ty = firebreak_protocol::events::EventType::parse(&event.ty).unwrap();
    firebreak_store::ingest::Incoming {
        event: *event,
        ty,
        raw: raw.into(),
        received_ms: 0,
    }
}

pub fn alert(id: &str, sequence: u64, service: &str) -> firebreak_store::ingest::Incoming {
    let raw = serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/clusters/dup", "sequence": sequence,
        "type": "dev.firebreak.alert.firing", "time": "2026-11-27T03:00:36.000Z",
        "datacontenttype": "application/json", "subject": format!("service/{service}"),
        "data": {"alert": "HighErrorRate", "region": "us-east", "service": service,
                 "severity": "critical", "summary": format!("{service} errors"),
                 "threshold": 0.05, "value": 0.3}
    });
    incoming(raw)
}

/// A `service.metrics` event of llm-assistant in us-east from cluster `cluster`, decoded as
/// the engine hands it to the store.
pub fn metrics_event(
    seq: u64,
    cluster: &str,
    error_rate: f64,
) -> firebreak_store::ingest::Incoming {
    let raw = serde_json::json!({
        "specversion": "1.0", "id": format!("m-{seq}"), "source": format!("/clusters/{cluster}"), "sequence": seq,
        "type": "dev.firebreak.service.metrics", "time": "2026-11-27T03:00:36.000Z",
        "datacontenttype": "application/json", "subject": "service/llm-assistant",
        "data": {"service": "llm-assistant", "region": "us-east", "primary": true, "revision": 7,
                 "window_s": 5, "requests_per_s": 900.0, "error_rate": error_rate, "latency_p50_ms": 400.0,
                 "latency_p99_ms": 1200.0, "queue_depth": 3.0, "gpu_utilization": 0.7}
    })
    .to_string();
    let firebreak_protocol::events::Frame::Event(event) =
        firebreak_protocol::events::decode(&raw).unwrap()
    else {
        panic!("not an event")
    };
    firebreak_store::ingest::Incoming {
        event: *event,
        ty: firebreak_protocol::events::EventType::ServiceMetrics,
        raw: raw.into(),
        received_ms: 0,
    }
}

pub fn event_at(
    seq: u64,
    ty: &str,
    second: u32,
    service: &str,
    data: serde_json::Value,
) -> firebreak_store::ingest::Incoming {
    let raw = serde_json::json!({
        "specversion": "1.0", "id": format!("quiet-{seq}"), "source": "/clusters/quiet", "sequence": seq,
        "type": format!("dev.firebreak.{ty}"), "time": format!("2026-11-27T03:00:{second:02}.000Z"),
        "datacontenttype": "application/json", "subject": format!("service/{service}"),
        "data": data,
    });
    incoming(raw)
}

/// A cluster at an address nothing listens on: events are handed to the store directly.
pub async fn unreachable_cluster(store: &Store, name: &str) -> firebreak_store::Cluster {
    store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: name.into(),
            events_url: "ws://127.0.0.1:1/v1/events".into(),
            actions_url: "http://127.0.0.1:1/v1".into(),
        })
        .await
        .unwrap()
}

/// A raw connection beside the store, to try what the store's API never would.
pub async fn raw(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw connection")
}
