//! A Deployment and its ReplicaSets, as protocol v1 rollout events (PROTOCOL.md, "The
//! gateway and Kubernetes"). [`observe`] is a pure function of one snapshot: it reads the
//! rollout to the current revision (waves done so far, stalled or completed) and
//! `story::tell` tells it, every event under a stable id, so the watcher needs no diff of
//! its own.
//!
//! Kubernetes fields used:
//! - the revision: the `deployment.kubernetes.io/revision` annotation (Deployment and
//!   ReplicaSets); the previous revision is the highest other ReplicaSet revision;
//! - the model version: the pod template's annotation, label or a container's image tag
//!   (configured, `ModelVersionSource`);
//! - progress, trusted only once `status.observedGeneration` has caught up with
//!   `metadata.generation`: `status.updatedReplicas` against `spec.replicas`, in waves of
//!   `maxSurge` (25 % by default, as Kubernetes); the `Progressing` condition's reasons
//!   `ReplicaSetUpdated`, `ProgressDeadlineExceeded` (stalled) and `NewReplicaSetAvailable`
//!   (completed, with every replica updated and available);
//! - a rollback: the current ReplicaSet carries `deployment.kubernetes.io/revision-history`
//!   (an older template brought back, as `kubectl rollout undo` does).

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::story::{tell, Ending, Rollout, Story, Wave};
use crate::config::ModelVersionSource;
use crate::revisions::{of_replica_set, UnderWay};
use firebreak_protocol::events::ChangeCause;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The label Kubernetes puts on a Deployment's ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

fn revision_of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<u32> {
    annotations?.get(REVISION)?.trim().parse().ok()
}

/// The model a pod template serves, as configured; "" when it does not say.
pub fn model_version(template: Option<&PodTemplateSpec>, source: &ModelVersionSource) -> String {
    let Some(t) = template else {
        return String::new();
    };
    let meta = t.metadata.as_ref();
    match source {
        ModelVersionSource::Annotation(key) => meta
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(key))
            .cloned()
            .unwrap_or_default(),
        ModelVersionSource::Label(key) => meta
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default(),
        ModelVersionSource::ImageTag(container) => {
            let containers = t
                .spec
                .as_ref()
                .map(|s| s.containers.as_slice())
                .unwrap_or(&[]);
            let c = if container.is_empty() {
                containers.first()
            } else {
                containers.iter().find(|c| c.name == *container)
            };
            c.and_then(|c| c.image.as_deref())
                .map(image_tag)
                .unwrap_or_default()
        }
    }
}

/// `registry:5000/repo/name:tag@sha256:…` → `tag` (the digest when there is no tag).
fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag.to_owned(),
        None => digest.unwrap_or("latest").to_owned(),
    }
}

/// How many replicas a wave adds: `maxSurge` resolved against `replicas` (percentages
/// round up, as Kubernetes does for surge), at least one.
pub(super) fn wave_size(d: &Deployment, replicas: u32) -> u32 {
    let surge = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_surge.as_ref());
    let size = match surge {
        Some(IntOrString::Int(n)) => u32::try_from(*n).unwrap_or(0),
        Some(IntOrString::String(p)) => p
            .trim_end_matches('%')
            .trim()
            .parse::<u32>()
            .map(|pct| (replicas * pct).div_ceil(100))
            .unwrap_or(0),
        None => (replicas * 25).div_ceil(100),
    };
    size.max(1)
}

fn time_of(
    t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
}

/// The story one snapshot of a Deployment tells, for `service`. `now` stamps events
/// whose moment Kubernetes does not record (a wave).
pub fn observe(
    service: &str,
    source: &ModelVersionSource,
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    now: DateTime<Utc>,
) -> Story {
    let name = d.metadata.name.clone().unwrap_or_default();
    let namespace = d.metadata.namespace.clone().unwrap_or_default();
    let revision = revision_of(d.metadata.annotations.as_ref()).unwrap_or(0);
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let current = status.observed_generation.unwrap_or(0) >= generation;
    if !current || revision == 0 {
        return Story::waiting(revision, current);
    }
    // The ReplicaSets this Deployment owns, by revision.
    let owned: Vec<(u32, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| {
            rs.metadata.namespace.as_deref() == Some(namespace.as_str())
                && rs
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o.kind == "Deployment" && o.name == name))
        })
        .filter_map(|rs| revision_of(rs.metadata.annotations.as_ref()).map(|r| (r, rs)))
        .collect();
    let Some(new_rs) = owned
        .iter()
        .find(|(r, _)| *r == revision)
        .map(|(_, rs)| *rs)
    else {
        // The controller has not made (or we have not seen) the new ReplicaSet yet.
        return Story::waiting(revision, true);
    };
    let Some(from) = owned
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| *r < revision)
        .max()
    else {
        // One revision only: nothing has rolled out since the Deployment was made.
        return Story::quiet(revision);
    };
    let old_rs = owned.iter().find(|(r, _)| *r == from).map(|(_, rs)| *rs);
    let to_model = model_version(
        new_rs.spec.as_ref().and_then(|s| s.template.as_ref()),
        source,
    );
    let from_model = model_version(
        old_rs
            .and_then(|rs| rs.spec.as_ref())
            .and_then(|s| s.template.as_ref()),
        source,
    );
    let rollback = new_rs
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REVISION_HISTORY));

    let replicas = d
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(1);
    let updated = status
        .updated_replicas
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0)
        .min(replicas);
    let available = status
        .available_replicas
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0);
    let step = wave_size(d, replicas);
    let waves = replicas.div_ceil(step).max(1);
    let progressing = status
        .conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"));
    let reason = progressing.and_then(|c| c.reason.as_deref()).unwrap_or("");
    let started_at = new_rs
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond()))
        .unwrap_or(now);

    let done_waves = if updated == replicas {
        waves
    } else {
        (updated / step).min(waves)
    };
    let done: Vec<Wave> = (1..=done_waves)
        .map(|wave| Wave {
            wave,
            nodes_updated: (wave * step).min(replicas),
            traffic_weight: None,
        })
        .collect();
    let complete =
        reason == "NewReplicaSetAvailable" && updated == replicas && available >= replicas;
    let ending = if reason == "ProgressDeadlineExceeded"
        && progressing.is_some_and(|c| c.status == "False")
    {
        Ending::Stalled {
            at: progressing
                .and_then(|c| time_of(c.last_transition_time.as_ref()))
                .unwrap_or(now),
            wave: (done_waves + 1).min(waves),
            reason: progressing
                .and_then(|c| c.message.clone())
                .unwrap_or_else(|| "the rollout made no progress before its deadline".into()),
            nodes_draining: replicas.saturating_sub(available),
        }
    } else if complete {
        Ending::Completed {
            at: progressing
                .and_then(|c| time_of(c.last_update_time.as_ref()))
                .unwrap_or(now),
            cause: if rollback {
                ChangeCause::Rollback
            } else {
                ChangeCause::Rollout
            },
        }
    } else {
        Ending::Running
    };
    let under_way = match (&ending, old_rs) {
        (Ending::Running | Ending::Stalled { .. }, Some(old_rs)) => Some(UnderWay {
            canary: of_replica_set(revision, new_rs, POD_TEMPLATE_HASH, to_model.clone()),
            stable: of_replica_set(from, old_rs, POD_TEMPLATE_HASH, from_model.clone()),
        }),
        _ => None,
    };
    let rollout = Rollout {
        service,
        key: format!("k8s/{namespace}/deployments/{name}/revision/{revision}"),
        subject: format!("deployment/{name}"),
        workload: name,
        started_at,
        from,
        to: revision,
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

    /// A Deployment as the API server sends it.
    fn deployment(
        revision: u32,
        generation: i64,
        observed: i64,
        updated: i32,
        available: i32,
        progressing: (&str, &str, &str),
    ) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "llm-assistant", "namespace": "serving", "generation": generation,
                "annotations": { REVISION: revision.to_string() }
            },
            "spec": {
                "replicas": 16,
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": 0 } },
                "template": { "metadata": { "labels": { "app": "llm-assistant" } }, "spec": { "containers": [{ "name": "vllm", "image": "vllm/vllm-openai:v0.6" }] } }
            },
            "status": {
                "observedGeneration": observed, "replicas": 16, "updatedReplicas": updated,
                "availableReplicas": available, "readyReplicas": available,
                "conditions": [{
                    "type": "Progressing", "status": progressing.0, "reason": progressing.1,
                    "message": progressing.2,
                    "lastUpdateTime": "2026-11-30T03:20:00Z", "lastTransitionTime": "2026-11-30T03:19:00Z"
                }]
            }
        }))
        .unwrap()
    }

    fn replica_set(revision: u32, model: &str, history: bool) -> ReplicaSet {
        let mut annotations = serde_json::json!({ REVISION: revision.to_string() });
        if history {
            annotations[REVISION_HISTORY] = serde_json::json!("40");
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("llm-assistant-{revision}abc"), "namespace": "serving",
                "creationTimestamp": format!("2026-11-30T03:{:02}:00Z", revision % 60),
                "annotations": annotations,
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-assistant", "uid": "u-1", "controller": true }]
            },
            "spec": {
                "selector": { "matchLabels": { "app": "llm-assistant" } },
                "template": {
                    "metadata": { "labels": { "app": "llm-assistant" }, "annotations": { "serving.example.com/model-version": model } },
                    "spec": { "containers": [{ "name": "vllm", "image": format!("registry.example.com:5000/serving/llama:{model}@sha256:abc") }] }
                }
            }
        }))
        .unwrap()
    }

    fn source() -> ModelVersionSource {
        ModelVersionSource::Annotation("serving.example.com/model-version".into())
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T03:25:00Z")
            .unwrap()
            .into()
    }

    fn types(story: &Story) -> Vec<&'static str> {
        story
            .events
            .iter()
            .map(|e| e.ty.name().trim_start_matches("dev.firebreak."))
            .collect()
    }

    #[test]
    fn a_rollout_half_way_is_its_start_and_the_waves_done_and_the_same_ids_every_time() {
        let rss = [
            replica_set(41, "llama-70b-2026-10", false),
            replica_set(42, "llama-70b-2026-11", false),
        ];
        let d = deployment(
            42,
            7,
            7,
            8,
            8,
            ("True", "ReplicaSetUpdated", "ReplicaSet is progressing"),
        );
        let story = observe("llm-assistant", &source(), &d, &rss, now());
        assert!(story.current && !story.settled);
        assert_eq!(
            types(&story),
            [
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed"
            ]
        );
        let started = &story.events[0].data;
        assert_eq!(started["from_revision"], 41);
        assert_eq!(started["to_revision"], 42);
        assert_eq!(started["model_version"], "llama-70b-2026-11");
        assert_eq!(
            started["waves"], 4,
            "16 replicas, maxSurge 25 %: 4 at a time"
        );
        assert_eq!(story.events[2].data["nodes_updated"], 8);
        for e in &story.events {
            e.ty.check_data(&e.data).unwrap();
        }
        // Seen again later (a resync, a relist after 410 Gone): the same events, the same ids.
        let later = now() + chrono::Duration::minutes(3);
        let again = observe("llm-assistant", &source(), &d, &rss, later);
        let ids = |s: &Story| s.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&again), ids(&story));
    }

    #[test]
    fn progress_deadline_exceeded_is_a_stall_with_the_controllers_message() {
        let rss = [
            replica_set(41, "m-10", false),
            replica_set(42, "m-11", false),
        ];
        let d = deployment(
            42,
            7,
            7,
            8,
            12,
            (
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"llm-assistant-42abc\" has timed out progressing.",
            ),
        );
        let story = observe("llm-assistant", &source(), &d, &rss, now());
        let stalled = story
            .events
            .iter()
            .find(|e| e.ty == EventType::RolloutStalled)
            .unwrap();
        assert_eq!(
            stalled.data["reason"],
            "ReplicaSet \"llm-assistant-42abc\" has timed out progressing."
        );
        assert_eq!(stalled.data["wave"], 3, "waves 1 and 2 were done");
        assert_eq!(stalled.data["nodes_draining"], 4);
        assert_eq!(
            stalled.time.to_rfc3339(),
            "2026-11-30T03:19:00+00:00",
            "when the condition turned"
        );
        assert!(!story.settled);
        stalled.ty.check_data(&stalled.data).unwrap();
    }

    #[test]
    fn a_completed_rollout_changes_the_model_and_a_rollback_says_so() {
        let d = deployment(
            42,
            7,
            7,
            16,
            16,
            (
                "True",
                "NewReplicaSetAvailable",
                "ReplicaSet has successfully progressed.",
            ),
        );
        let rss = [
            replica_set(41, "m-10", false),
            replica_set(42, "m-11", false),
        ];
        let story = observe("llm-assistant", &source(), &d, &rss, now());
        assert!(story.settled);
        assert_eq!(
            types(&story),
            [
                "rollout.started",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.wave_progressed",
                "rollout.completed",
                "model.version_changed"
            ]
        );
        let changed = story.events.last().unwrap();
        assert_eq!(changed.data["from_model"], "m-10");
        assert_eq!(changed.data["to_model"], "m-11");
        assert_eq!(changed.data["cause"], "rollout");
        // `kubectl rollout undo` brings revision 41's template back as revision 43.
        let d = deployment(43, 8, 8, 16, 16, ("True", "NewReplicaSetAvailable", "ok"));
        let rss = [
            replica_set(42, "m-11", false),
            replica_set(43, "m-10", true),
        ];
        let undo = observe("llm-assistant", &source(), &d, &rss, now());
        assert_eq!(undo.events.last().unwrap().data["cause"], "rollback");
    }

    #[test]
    fn nothing_is_said_before_the_controller_has_caught_up_or_when_nothing_rolled_out() {
        let rss = [
            replica_set(41, "m-10", false),
            replica_set(42, "m-11", false),
        ];
        let behind = deployment(42, 8, 7, 16, 16, ("True", "NewReplicaSetAvailable", "ok"));
        let story = observe("llm-assistant", &source(), &behind, &rss, now());
        assert!(
            !story.current && story.events.is_empty(),
            "status of an older spec is not trusted"
        );
        let only = deployment(41, 1, 1, 16, 16, ("True", "NewReplicaSetAvailable", "ok"));
        let story = observe("llm-assistant", &source(), &only, &rss[..1], now());
        assert!(story.events.is_empty() && story.settled);
        // Another Deployment's ReplicaSets are not this one's.
        let mut foreign = replica_set(40, "m-9", false);
        foreign.metadata.owner_references.as_mut().unwrap()[0].name = "recommendations".into();
        let story = observe(
            "llm-assistant",
            &source(),
            &only,
            &[rss[0].clone(), foreign],
            now(),
        );
        assert!(story.events.is_empty());
    }

    #[test]
    fn model_versions_come_from_where_the_configuration_says() {
        let rs = replica_set(42, "3.1-70b", false);
        let template = rs.spec.as_ref().unwrap().template.as_ref();
        assert_eq!(model_version(template, &source()), "3.1-70b");
        assert_eq!(
            model_version(template, &ModelVersionSource::ImageTag(String::new())),
            "3.1-70b"
        );
        assert_eq!(
            model_version(template, &ModelVersionSource::ImageTag("vllm".into())),
            "3.1-70b"
        );
        assert_eq!(
            model_version(template, &ModelVersionSource::ImageTag("sidecar".into())),
            ""
        );
        assert_eq!(
            model_version(template, &ModelVersionSource::Label("app".into())),
            "llm-assistant"
        );
        assert_eq!(image_tag("registry:5000/a/b"), "latest");
        assert_eq!(image_tag("b@sha256:123"), "sha256:123");
    }
}
