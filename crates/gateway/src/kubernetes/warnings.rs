//! Kubernetes `Warning` events about a service's objects (its Deployment, the ReplicaSets
//! it owns, its pods) as `cluster.warning`, a pure function of one snapshot: each once
//! when it first appears and again when its count reaches 10 and 100 (a warning that
//! repeats every few seconds is one story), its id from the event's uid and the mark.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Event;

use super::story::{stable_id, Emit};
use firebreak_protocol::events::{ClusterWarning, EventType};

/// Counts at which a repeated warning is told again.
pub const REPEAT_MARKS: [u32; 3] = [1, 10, 100];

/// The warnings among `events` about the objects named in `objects` (`Kind/name`).
pub fn observe(
    service: &str,
    objects: &[String],
    events: &[Event],
    now: DateTime<Utc>,
) -> Vec<Emit> {
    let mut out = Vec::new();
    for e in events {
        if e.type_.as_deref() != Some("Warning") {
            continue;
        }
        let involved = format!(
            "{}/{}",
            e.involved_object.kind.as_deref().unwrap_or(""),
            e.involved_object.name.as_deref().unwrap_or("")
        );
        if !objects.contains(&involved) {
            continue;
        }
        let count = u32::try_from(e.count.unwrap_or(1)).unwrap_or(1).max(1);
        let Some(mark) = REPEAT_MARKS.iter().rev().find(|m| count >= **m) else {
            continue;
        };
        let uid = e.metadata.uid.clone().unwrap_or_default();
        let first = e
            .first_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
            .unwrap_or(now);
        let last = e
            .last_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
            .unwrap_or(now);
        out.push(Emit {
            id: stable_id(&format!("k8s/events/{uid}/{mark}"), first),
            ty: EventType::ClusterWarning,
            time: last,
            subject: involved.to_lowercase(),
            data: serde_json::to_value(ClusterWarning {
                service: service.to_owned(),
                object: involved,
                reason: e.reason.clone().unwrap_or_default(),
                message: e
                    .message
                    .clone()
                    .unwrap_or_default()
                    .chars()
                    .take(500)
                    .collect(),
                count,
            })
            .unwrap_or_default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test fails
    use super::*;

    fn event(kind: &str, name: &str, ty: &str, count: i32) -> Event {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": { "name": "e1", "namespace": "serving", "uid": "e-1" },
            "involvedObject": { "kind": kind, "name": name, "namespace": "serving" },
            "reason": "FailedScheduling", "message": "0/8 nodes are available: 8 Insufficient nvidia.com/gpu.",
            "type": ty, "count": count,
            "firstTimestamp": "2026-11-30T03:20:00Z", "lastTimestamp": "2026-11-30T03:25:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn a_warning_about_the_service_is_told_at_its_marks_and_others_are_not() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T03:30:00Z")
            .unwrap()
            .into();
        let ours = ["Pod/llm-assistant-x1".to_owned()];
        let once = observe(
            "llm-assistant",
            &ours,
            &[event("Pod", "llm-assistant-x1", "Warning", 1)],
            now,
        );
        assert_eq!(once.len(), 1);
        assert_eq!(once[0].data["object"], "Pod/llm-assistant-x1");
        assert_eq!(once[0].data["reason"], "FailedScheduling");
        EventType::ClusterWarning.check_data(&once[0].data).unwrap();
        let again = observe(
            "llm-assistant",
            &ours,
            &[event("Pod", "llm-assistant-x1", "Warning", 7)],
            now,
        );
        assert_eq!(again[0].id, once[0].id, "7 repeats are the same story");
        let tenth = observe(
            "llm-assistant",
            &ours,
            &[event("Pod", "llm-assistant-x1", "Warning", 10)],
            now,
        );
        assert_ne!(tenth[0].id, once[0].id);
        assert!(observe(
            "llm-assistant",
            &ours,
            &[event("Pod", "other", "Warning", 1)],
            now
        )
        .is_empty());
        assert!(observe(
            "llm-assistant",
            &ours,
            &[event("Pod", "llm-assistant-x1", "Normal", 1)],
            now
        )
        .is_empty());
    }
}
