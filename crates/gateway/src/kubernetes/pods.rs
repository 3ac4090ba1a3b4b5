//! A service's pods as `pod.failing` events, a pure function of one snapshot like
//! `rollouts.rs` and `nodes.rs`:
//!
//! - a container whose last termination was `OOMKilled`: one event per termination (its
//!   id from the pod, the container and the termination's `finishedAt`);
//! - a container waiting in `CrashLoopBackOff`: one event when its restarts reach 3, 10,
//!   30 and 100 (a crash loop is one story, not one event per restart), with the last
//!   termination's reason, exit code and message.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::story::{stable_id, Emit};
use firebreak_protocol::events::{EventType, PodFailing, PodFault};

/// Restart counts at which a crash loop is told again.
pub const CRASH_LOOP_MARKS: [u32; 4] = [3, 10, 30, 100];

fn last_termination(c: &ContainerStatus) -> String {
    let Some(t) = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return "no termination recorded".into();
    };
    let mut text = format!(
        "{} (exit code {})",
        t.reason.as_deref().unwrap_or("terminated"),
        t.exit_code
    );
    if let Some(m) = t
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        text.push_str(&format!(": {}", m.chars().take(300).collect::<String>()));
    }
    text
}

/// The events one snapshot of a service's pods implies.
pub fn observe(service: &str, pods: &[Pod], now: DateTime<Utc>) -> Vec<Emit> {
    let mut out = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_else(|| name.clone());
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for c in statuses {
            let restarts = u32::try_from(c.restart_count).unwrap_or(0);
            let event = |reason: PodFault, key: String, at: DateTime<Utc>| Emit {
                id: stable_id(&key, at),
                ty: EventType::PodFailing,
                time: at,
                subject: format!("pod/{name}"),
                data: serde_json::to_value(PodFailing {
                    pod: name.clone(),
                    service: service.to_owned(),
                    node: node.clone(),
                    container: c.name.clone(),
                    reason,
                    restarts,
                    detail: last_termination(c),
                })
                .unwrap_or_default(),
            };
            let terminated = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            if let Some(t) = terminated.filter(|t| t.reason.as_deref() == Some("OOMKilled")) {
                let at = t
                    .finished_at
                    .as_ref()
                    .and_then(|f| DateTime::from_timestamp_millis(f.0.as_millisecond()));
                if let Some(at) = at {
                    out.push(event(
                        PodFault::OomKilled,
                        format!("k8s/pods/{uid}/{}/oom/{}", c.name, at.timestamp_millis()),
                        at,
                    ));
                }
            }
            let looping = c
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"));
            if looping {
                if let Some(mark) = CRASH_LOOP_MARKS.iter().rev().find(|m| restarts >= **m) {
                    // The id's time is the pod's start: the same mark is the same event.
                    let started = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.start_time.as_ref())
                        .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
                        .unwrap_or(now);
                    let mut e = event(
                        PodFault::CrashLoop,
                        format!("k8s/pods/{uid}/{}/crash-loop/{mark}", c.name),
                        started,
                    );
                    e.time = now;
                    out.push(e);
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

    fn pod(restarts: i32, waiting: Option<&str>, last: Option<(&str, i32, &str)>) -> Pod {
        let mut status = serde_json::json!({
            "name": "vllm", "ready": false, "restartCount": restarts, "image": "vllm:1", "imageID": "x",
            "state": {}, "lastState": {}
        });
        if let Some(w) = waiting {
            status["state"] = serde_json::json!({ "waiting": { "reason": w, "message": "back-off 5m0s restarting failed container" } });
        }
        if let Some((reason, code, finished)) = last {
            status["lastState"] = serde_json::json!({ "terminated": {
                "reason": reason, "exitCode": code, "finishedAt": finished, "startedAt": "2026-11-30T03:00:00Z",
                "message": "CUDA out of memory"
            } });
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "llm-assistant-7d9f-x2", "namespace": "serving", "uid": "p-1" },
            "spec": { "nodeName": "gpu-3", "containers": [{ "name": "vllm", "image": "vllm:1" }] },
            "status": { "startTime": "2026-11-30T02:00:00Z", "containerStatuses": [status] }
        }))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T03:30:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn an_oom_kill_and_a_crash_loop_are_told_once_each() {
        let oom = observe(
            "llm-assistant",
            &[pod(
                1,
                None,
                Some(("OOMKilled", 137, "2026-11-30T03:20:00Z")),
            )],
            now(),
        );
        assert_eq!(oom.len(), 1);
        assert_eq!(oom[0].data["reason"], "oom_killed");
        assert_eq!(oom[0].data["node"], "gpu-3");
        assert_eq!(
            oom[0].data["detail"],
            "OOMKilled (exit code 137): CUDA out of memory"
        );
        EventType::PodFailing.check_data(&oom[0].data).unwrap();

        // Crash-looping: silent below 3 restarts, one event per mark after.
        assert!(observe(
            "llm-assistant",
            &[pod(
                2,
                Some("CrashLoopBackOff"),
                Some(("Error", 1, "2026-11-30T03:21:00Z"))
            )],
            now()
        )
        .is_empty());
        let at_4 = observe(
            "llm-assistant",
            &[pod(
                4,
                Some("CrashLoopBackOff"),
                Some(("Error", 1, "2026-11-30T03:22:00Z")),
            )],
            now(),
        );
        let at_5 = observe(
            "llm-assistant",
            &[pod(
                5,
                Some("CrashLoopBackOff"),
                Some(("Error", 1, "2026-11-30T03:24:00Z")),
            )],
            now(),
        );
        let at_12 = observe(
            "llm-assistant",
            &[pod(
                12,
                Some("CrashLoopBackOff"),
                Some(("Error", 1, "2026-11-30T03:29:00Z")),
            )],
            now(),
        );
        assert_eq!(at_4[0].data["reason"], "crash_loop");
        assert_eq!(
            at_4[0].id, at_5[0].id,
            "restarts 4 and 5 are the same story"
        );
        assert_ne!(at_4[0].id, at_12[0].id, "ten restarts are news again");
        // A healthy pod says nothing.
        assert!(observe("llm-assistant", &[pod(0, None, None)], now()).is_empty());
    }
}
