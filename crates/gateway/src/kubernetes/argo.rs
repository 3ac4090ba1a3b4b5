//! An Argo Rollout (`argoproj.io/v1alpha1`, read as plain JSON: the gateway needs no
//! Argo types) and its ReplicaSets as rollout events, a pure function of one snapshot like
//! `rollouts.rs`, told by the same `story::tell`.
//!
//! - Revisions: the ReplicaSets' `rollout.argoproj.io/revision` annotation; the new one is
//!   the ReplicaSet whose `rollouts-pod-template-hash` label is `status.currentPodHash`,
//!   the stable one `status.stableRS`.
//! - `rollout.started` while the two differ: `from_revision` the stable one, `waves` the
//!   canary's `setWeight` steps (1 for blue-green).
//! - `rollout.wave_progressed` for each `setWeight` step before `status.currentStepIndex`,
//!   with `traffic_weight`.
//! - `rollout.failed`: `status.phase` `Degraded`, or `status.abort` (reason
//!   `status.message`).
//! - `rollout.completed` (and `model.version_changed`) once the new ReplicaSet is the
//!   stable one and the phase is `Healthy`.
//! - Trusted only once `status.observedGeneration` (a string in Argo) has caught up with
//!   `metadata.generation`.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::Value;

use super::rollouts::model_version;
use super::story::{tell, Ending, Rollout, Story, Wave};
use crate::config::ModelVersionSource;
use crate::revisions::{of_replica_set, UnderWay};
use firebreak_protocol::events::ChangeCause;

pub const REVISION: &str = "rollout.argoproj.io/revision";
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";

/// The story one snapshot of an Argo Rollout tells, for `service`.
pub fn observe(
    service: &str,
    source: &ModelVersionSource,
    rollout: &Value,
    replica_sets: &[ReplicaSet],
    now: DateTime<Utc>,
) -> Story {
    let name = rollout["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let namespace = rollout["metadata"]["namespace"].as_str().unwrap_or("");
    let status = &rollout["status"];
    let generation = rollout["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = match &status["observedGeneration"] {
        Value::String(s) => s.parse().unwrap_or(-1),
        v => v.as_i64().unwrap_or(-1),
    };
    if observed < generation {
        return Story::waiting(0, false);
    }
    // The Rollout's ReplicaSets by pod-template hash, with their revisions.
    let owned: Vec<(u32, &str, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(namespace)
                && rs
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o.kind == "Rollout" && o.name == name))
        })
        .filter_map(|rs| {
            let revision = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            let hash = rs
                .metadata
                .labels
                .as_ref()?
                .get(POD_TEMPLATE_HASH)?
                .as_str();
            Some((revision, hash, rs))
        })
        .collect();
    let by_hash = |h: &str| owned.iter().find(|(_, hash, _)| *hash == h);
    let Some(&(to, _, new_rs)) = status["currentPodHash"].as_str().and_then(by_hash) else {
        return Story::waiting(0, true);
    };
    let stable = status["stableRS"].as_str().and_then(by_hash);
    // The revision the rollout came from: the stable one while it runs; once done, the
    // newest older one.
    let from = match stable {
        Some(&(r, _, rs)) if r != to => Some((r, rs)),
        _ => owned
            .iter()
            .filter(|(r, _, _)| *r < to)
            .max_by_key(|(r, _, _)| *r)
            .map(|&(r, _, rs)| (r, rs)),
    };
    let Some((from, old_rs)) = from else {
        return Story::quiet(to);
    };
    let template = |rs: &ReplicaSet| rs.spec.as_ref().and_then(|s| s.template.clone());
    let to_model = model_version(template(new_rs).as_ref(), source);
    let from_model = model_version(template(old_rs).as_ref(), source);
    let replicas = u32::try_from(rollout["spec"]["replicas"].as_u64().unwrap_or(1)).unwrap_or(1);
    let steps = rollout["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Canary steps that shift traffic: (step index, weight).
    let weights: Vec<(usize, u32)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, u32::try_from(s["setWeight"].as_u64()?).ok()?)))
        .collect();
    let waves = u32::try_from(weights.len()).unwrap_or(1).max(1);
    let started_at = new_rs
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
        .unwrap_or(now);
    let promoted = stable.is_some_and(|&(r, _, _)| r == to);
    let step_index = usize::try_from(status["currentStepIndex"].as_u64().unwrap_or(0)).unwrap_or(0);
    let done: Vec<Wave> = weights
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| promoted || *i < step_index)
        .map(|(wave, (_, weight))| Wave {
            wave: u32::try_from(wave + 1).unwrap_or(u32::MAX),
            nodes_updated: (replicas * weight).div_ceil(100).min(replicas),
            traffic_weight: Some(*weight),
        })
        .collect();
    let phase = status["phase"].as_str().unwrap_or("");
    let aborted = status["abort"].as_bool().unwrap_or(false);
    let ending = if phase == "Degraded" || aborted {
        Ending::Failed {
            reason: status["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .unwrap_or(if aborted {
                    "the rollout was aborted"
                } else {
                    "the rollout is degraded"
                })
                .to_owned(),
        }
    } else if promoted && phase == "Healthy" {
        Ending::Completed {
            at: now,
            cause: ChangeCause::Rollout,
        }
    } else {
        Ending::Running
    };
    let under_way = matches!(ending, Ending::Running).then(|| UnderWay {
        canary: of_replica_set(to, new_rs, POD_TEMPLATE_HASH, to_model.clone()),
        stable: of_replica_set(from, old_rs, POD_TEMPLATE_HASH, from_model.clone()),
    });
    let rollout = Rollout {
        service,
        key: format!("k8s/{namespace}/rollouts/{name}/revision/{to}"),
        subject: format!("rollout/{name}"),
        workload: name,
        started_at,
        from,
        to,
        from_model,
        to_model,
        waves,
        replicas,
    };
    Story {
        under_way,
        ..tell(rollout, &done, ending, now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a panic is how a test fails
    use super::*;
    use firebreak_protocol::events::EventType;

    fn rollout(current: &str, stable: &str, step: u64, phase: &str, abort: bool) -> Value {
        serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": { "name": "llm-assistant", "namespace": "serving", "generation": 4 },
            "spec": {
                "replicas": 10,
                "strategy": { "canary": { "steps": [
                    { "setWeight": 10 }, { "pause": { "duration": "10m" } },
                    { "setWeight": 50 }, { "pause": {} }, { "setWeight": 100 }
                ] } }
            },
            "status": {
                "observedGeneration": "4", "currentPodHash": current, "stableRS": stable,
                "currentStepIndex": step, "phase": phase, "abort": abort,
                "message": if abort { "RolloutAborted: Rollout aborted update to revision 7" } else { "" }
            }
        })
    }

    fn replica_set(revision: u32, hash: &str, model: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("llm-assistant-{hash}"), "namespace": "serving",
                "creationTimestamp": "2026-11-30T03:00:00Z",
                "labels": { POD_TEMPLATE_HASH: hash },
                "annotations": { REVISION: revision.to_string() },
                "ownerReferences": [{ "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "llm-assistant", "uid": "r-1" }]
            },
            "spec": {
                "selector": { "matchLabels": { POD_TEMPLATE_HASH: hash } },
                "template": { "metadata": { "annotations": { "model": model } }, "spec": { "containers": [{ "name": "vllm", "image": "vllm:1" }] } }
            }
        }))
        .unwrap()
    }

    fn source() -> ModelVersionSource {
        ModelVersionSource::Annotation("model".into())
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T03:30:00Z")
            .unwrap()
            .into()
    }

    fn types(s: &Story) -> Vec<&'static str> {
        s.events
            .iter()
            .map(|e| e.ty.name().trim_start_matches("dev.firebreak."))
            .collect()
    }

    #[test]
    fn a_canary_at_its_second_weight_is_its_start_and_two_waves_with_their_weights() {
        let rss = [replica_set(6, "aaa", "m-6"), replica_set(7, "bbb", "m-7")];
        // Step 3 is the pause after setWeight 50: steps 0 and 2 are done.
        let story = observe(
            "llm-assistant",
            &source(),
            &rollout("bbb", "aaa", 3, "Paused", false),
            &rss,
            now(),
        );
        assert_eq!(
            types(&story),
            [
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed"
            ]
        );
        assert_eq!(story.events[0].data["from_revision"], 6);
        assert_eq!(story.events[0].data["waves"], 3);
        assert_eq!(story.events[2].data["traffic_weight"], 50);
        assert_eq!(story.events[2].data["nodes_updated"], 5);
        for e in &story.events {
            e.ty.check_data(&e.data).unwrap();
        }
    }

    #[test]
    fn an_aborted_canary_fails_and_a_promoted_one_completes() {
        let rss = [replica_set(6, "aaa", "m-6"), replica_set(7, "bbb", "m-7")];
        let aborted = observe(
            "llm-assistant",
            &source(),
            &rollout("bbb", "aaa", 1, "Degraded", true),
            &rss,
            now(),
        );
        let failed = aborted
            .events
            .iter()
            .find(|e| e.ty == EventType::RolloutFailed)
            .unwrap();
        assert_eq!(
            failed.data["reason"],
            "RolloutAborted: Rollout aborted update to revision 7"
        );
        let done = observe(
            "llm-assistant",
            &source(),
            &rollout("bbb", "bbb", 5, "Healthy", false),
            &rss,
            now(),
        );
        assert!(done.settled);
        assert_eq!(
            types(&done),
            [
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.completed",
                "model.version_changed"
            ]
        );
        // The same steps under the same ids as while it ran.
        let running = observe(
            "llm-assistant",
            &source(),
            &rollout("bbb", "aaa", 3, "Paused", false),
            &rss,
            now(),
        );
        assert_eq!(running.events[0].id, done.events[0].id);
    }

    #[test]
    fn a_status_behind_its_spec_is_not_trusted() {
        let mut r = rollout("bbb", "aaa", 3, "Paused", false);
        r["metadata"]["generation"] = serde_json::json!(5);
        let story = observe(
            "llm-assistant",
            &source(),
            &r,
            &[replica_set(7, "bbb", "m")],
            now(),
        );
        assert!(!story.current && story.events.is_empty());
    }
}
