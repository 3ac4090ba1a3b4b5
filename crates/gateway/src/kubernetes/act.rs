//! Rollback and failover through the Kubernetes API, each a JSON Patch whose first
//! operation is a precondition on what the gateway read: an object someone changed in
//! between is refused by the API server (422 for a failed test operation, 409 for a
//! conflict), and the caller gets the protocol's `precondition_failed` with what is current
//! now.
//!
//! - Rollback of a Deployment, as `kubectl rollout undo` does it: the owned ReplicaSet of
//!   the chosen revision gives its pod template, without the `pod-template-hash` label; its
//!   `kubernetes.io/change-cause` goes with it; the patch tests `metadata.resourceVersion`.
//!   A paused Deployment is refused, as kubectl does.
//! - Rollback of an Argo Rollout, as `kubectl argo rollouts abort` then `undo` do it: while
//!   an update is under way, `status.abort` is set first through the status subresource
//!   (testing the resourceVersion read), so the controller scales the stable ReplicaSet
//!   back up at once ("abort always wins"); then the chosen revision's template, without
//!   the `rollouts-pod-template-hash` label, replaces `spec.template`. That second patch
//!   tests `metadata.generation` rather than the resourceVersion: the abort and the
//!   controller's answer to it change the status (and so the resourceVersion) but never
//!   the generation, which only moves when someone changes the spec.
//! - Rollout levers: a Deployment is paused and resumed through `spec.paused` (it has no
//!   abort or promotion: roll back instead, 501 says so); an Argo Rollout is paused and
//!   resumed through `spec.paused` and its pause conditions, aborted through
//!   `status.abort`, and promoted as `kubectl argo rollouts promote [--full]` does: past
//!   its current pause step, or `status.promoteFull`. Each patch tests the resourceVersion
//!   read.
//! - Failover: the service's Gateway API HTTPRoute or Istio VirtualService; the target
//!   region's backend gets all the weight (100) and the others 0, guarded by the route's
//!   resourceVersion. The primary region is the backend with the most weight.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};

use super::rollouts::model_version;
use super::route::{route_name, Found};
use crate::config::{ModelVersionSource, Route, RouteKind, ServiceObjects, WorkloadKind};
use firebreak_protocol::actions::{ApiError, Revision, RolloutLever, RolloutView};
use firebreak_server::actions::{refusal, Refusal};

const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

fn unavailable(what: &str, e: impl std::fmt::Display) -> Refusal {
    refusal(
        StatusCode::BAD_GATEWAY,
        "status_unavailable",
        format!("the Kubernetes API did not give {what}: {e}"),
    )
}

pub(crate) fn dynamic(
    client: &Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), namespace, &resource)
}

pub(super) fn route_api(client: &Client, route: &Route) -> Api<DynamicObject> {
    match route.kind {
        RouteKind::HttpRoute => dynamic(
            client,
            &route.namespace,
            "gateway.networking.k8s.io",
            "v1",
            "HTTPRoute",
        ),
        RouteKind::VirtualService => dynamic(
            client,
            &route.namespace,
            "networking.istio.io",
            "v1beta1",
            "VirtualService",
        ),
    }
}

pub(crate) fn argo_rollouts(client: &Client, namespace: &str) -> Api<DynamicObject> {
    dynamic(client, namespace, "argoproj.io", "v1alpha1", "Rollout")
}

/// The workload as it is now, with its history, whichever kind it is.
pub struct Current {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub generation: i64,
    pub annotations: BTreeMap<String, String>,
    pub revision: u32,
    /// Owned ReplicaSets by revision, oldest first.
    pub revisions: Vec<(u32, ReplicaSet)>,
    pub replicas: u32,
    pub updated: u32,
    /// (wave reached, waves) while an update is under way.
    pub waves: Option<(u32, u32)>,
    pub stalled: bool,
    /// `spec.paused` of a Deployment (an Argo Rollout can be undone while paused).
    pub paused: bool,
    /// An Argo Rollout with an update under way that is not aborted yet.
    pub abortable: bool,
    /// The update holds before its next step: `spec.paused`, or an Argo pause step or
    /// manual pause (`status.pauseConditions`, phase `Paused`).
    pub rollout_paused: bool,
    /// An Argo Rollout paused by hand (`spec.paused`).
    pub argo_spec_paused: bool,
    /// The stable revision an abort returns to, when known.
    pub stable_revision: Option<u32>,
    /// An Argo canary's `status.currentStepIndex`.
    pub step_index: u64,
}

impl Current {
    /// `Deployment serving/llm-assistant`.
    pub fn object(&self) -> String {
        let kind = match self.kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::Rollout => "Rollout",
        };
        format!("{kind} {}/{}", self.namespace, self.name)
    }
}

/// The ReplicaSets `owner_kind` `name` owns, by the revision in `annotation`.
async fn owned_revisions(
    client: &Client,
    objects: &ServiceObjects,
    owner_kind: &str,
    annotation: &str,
) -> Result<Vec<(u32, ReplicaSet)>, Refusal> {
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &objects.namespace);
    let listed = sets
        .list(&ListParams::default().labels(&objects.pod_selector()))
        .await
        .map_err(|e| unavailable("the ReplicaSets", e))?;
    let mut revisions: Vec<(u32, ReplicaSet)> = listed
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|o| o.kind == owner_kind && o.name == objects.name)
            })
        })
        .filter_map(|rs| {
            let r = rs
                .metadata
                .annotations
                .as_ref()?
                .get(annotation)?
                .parse()
                .ok()?;
            Some((r, rs))
        })
        .collect();
    revisions.sort_by_key(|(r, _)| *r);
    Ok(revisions)
}

fn count(v: Option<i32>) -> u32 {
    v.and_then(|r| u32::try_from(r).ok()).unwrap_or(0)
}

pub async fn current(client: &Client, objects: &ServiceObjects) -> Result<Current, Refusal> {
    match objects.kind {
        WorkloadKind::Deployment => current_deployment(client, objects).await,
        WorkloadKind::Rollout => current_argo(client, objects).await,
    }
}

async fn current_deployment(client: &Client, objects: &ServiceObjects) -> Result<Current, Refusal> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &objects.namespace);
    let deployment = deployments.get(&objects.name).await.map_err(|e| {
        unavailable(
            &format!("Deployment {}/{}", objects.namespace, objects.name),
            e,
        )
    })?;
    let revisions =
        owned_revisions(client, objects, "Deployment", super::rollouts::REVISION).await?;
    let annotations = deployment.metadata.annotations.clone().unwrap_or_default();
    let spec = deployment.spec.clone().unwrap_or_default();
    let status = deployment.status.clone().unwrap_or_default();
    let replicas = spec.replicas.map_or(1, |r| count(Some(r)));
    let updated = count(status.updated_replicas);
    // Waves as the rollout events count them: maxSurge replicas at a time.
    let step = super::rollouts::wave_size(&deployment, replicas);
    Ok(Current {
        kind: WorkloadKind::Deployment,
        namespace: objects.namespace.clone(),
        name: objects.name.clone(),
        resource_version: deployment
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        generation: deployment.metadata.generation.unwrap_or(0),
        revision: annotations
            .get(super::rollouts::REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        annotations,
        revisions,
        replicas,
        updated,
        waves: (updated < replicas).then(|| (updated / step, replicas.div_ceil(step))),
        stalled: status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        }),
        paused: spec.paused.unwrap_or(false),
        abortable: false,
        rollout_paused: spec.paused.unwrap_or(false),
        argo_spec_paused: false,
        stable_revision: None,
        step_index: 0,
    })
}

async fn current_argo(client: &Client, objects: &ServiceObjects) -> Result<Current, Refusal> {
    let rollout = argo_rollouts(client, &objects.namespace)
        .get(&objects.name)
        .await
        .map_err(|e| {
            unavailable(
                &format!("Rollout {}/{}", objects.namespace, objects.name),
                e,
            )
        })?;
    let revisions = owned_revisions(client, objects, "Rollout", super::argo::REVISION).await?;
    let annotations = rollout.metadata.annotations.clone().unwrap_or_default();
    let status = &rollout.data["status"];
    let replicas =
        u32::try_from(rollout.data["spec"]["replicas"].as_u64().unwrap_or(1)).unwrap_or(1);
    let updating = status["currentPodHash"].as_str().is_some()
        && status["currentPodHash"] != status["stableRS"];
    let aborted = status["abort"].as_bool().unwrap_or(false);
    // Waves are the canary's setWeight steps (one for blue-green), as the rollout events
    // count them.
    let steps = rollout.data["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let step_index = status["currentStepIndex"].as_u64().unwrap_or(0);
    let weights: Vec<u64> = (0u64..)
        .zip(&steps)
        .filter(|(_, s)| s["setWeight"].is_u64())
        .map(|(i, _)| i)
        .collect();
    let waves = u32::try_from(weights.len()).unwrap_or(1).max(1);
    let reached = u32::try_from(weights.iter().filter(|i| **i < step_index).count()).unwrap_or(0);
    let stable_revision = status["stableRS"].as_str().and_then(|hash| {
        revisions.iter().find_map(|(r, rs)| {
            (rs.metadata
                .labels
                .as_ref()?
                .get(super::argo::POD_TEMPLATE_HASH)?
                == hash)
                .then_some(*r)
        })
    });
    Ok(Current {
        kind: WorkloadKind::Rollout,
        namespace: objects.namespace.clone(),
        name: objects.name.clone(),
        resource_version: rollout
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default(),
        generation: rollout.metadata.generation.unwrap_or(0),
        revision: annotations
            .get(super::argo::REVISION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        annotations,
        revisions,
        replicas,
        updated: u32::try_from(status["updatedReplicas"].as_u64().unwrap_or(0)).unwrap_or(0),
        waves: updating.then_some((reached, waves)),
        stalled: aborted || status["phase"] == "Degraded",
        paused: false,
        abortable: updating && !aborted,
        rollout_paused: rollout.data["spec"]["paused"].as_bool().unwrap_or(false)
            || status["pauseConditions"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
            || status["phase"] == "Paused",
        argo_spec_paused: rollout.data["spec"]["paused"].as_bool().unwrap_or(false),
        stable_revision,
        step_index,
    })
}

impl Current {
    /// The protocol's view: revisions oldest first, any rollout under way.
    pub fn view(
        &self,
        service: &str,
        source: &ModelVersionSource,
    ) -> firebreak_protocol::actions::Deployment {
        firebreak_protocol::actions::Deployment {
            name: self.name.clone(),
            service: service.to_owned(),
            current_revision: self.revision,
            revisions: self
                .revisions
                .iter()
                .map(|(r, rs)| Revision {
                    revision: *r,
                    model_version: model_version(
                        rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                        source,
                    ),
                    created_at: rs
                        .metadata
                        .creation_timestamp
                        .as_ref()
                        .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0.as_millisecond()))
                        .unwrap_or_default(),
                })
                .collect(),
            rollout: self.waves.map(|(wave, waves)| RolloutView {
                to_revision: self.revision,
                wave,
                waves,
                stalled: self.stalled,
                paused: self.rollout_paused,
            }),
            nodes_total: self.replicas,
            last_changed_by: None,
            object: Some(self.object()),
        }
    }
}

fn precondition_failed(message: String, current: serde_json::Value) -> Refusal {
    (
        StatusCode::CONFLICT,
        ApiError {
            error: "precondition_failed".into(),
            message,
            current: Some(current),
            changed_by: None,
        },
    )
}

/// Whether the API server refused a patch because the object changed since it was read.
fn changed_meanwhile(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 422)
}

fn json_patch(ops: Vec<serde_json::Value>) -> Result<Patch<()>, Refusal> {
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| unavailable("a patch", e))?;
    Ok(Patch::Json(patch))
}

/// Rolls the workload back to `to`, if it is at `expected`; what was patched, in words.
pub async fn rollback(
    client: &Client,
    objects: &ServiceObjects,
    to: u32,
    expected: u32,
) -> Result<String, Refusal> {
    let now = current(client, objects).await?;
    let object = now.object();
    if now.revision != expected {
        return Err(precondition_failed(
            format!(
                "{object} is at revision {}, not {expected}: someone changed it since you looked",
                now.revision
            ),
            serde_json::json!({ "revision": now.revision }),
        ));
    }
    if now.paused {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("{object} is paused: resume it first (kubectl rollout resume), as kubectl refuses to roll back a paused Deployment"),
        ));
    }
    let Some((_, target)) = now
        .revisions
        .iter()
        .find(|(r, _)| *r == to && *r != now.revision)
    else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!(
                "revision {to} is not an earlier revision of {object} (history: {})",
                now.revisions
                    .iter()
                    .map(|(r, _)| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let mut template = target
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or_else(|| unavailable("the revision's pod template", "it has none"))?;
    let hash_label = match now.kind {
        WorkloadKind::Deployment => "pod-template-hash",
        WorkloadKind::Rollout => super::argo::POD_TEMPLATE_HASH,
    };
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(hash_label);
    }
    let rv = now.resource_version.clone();
    let refused = async |e: kube::Error, what: &str| -> Refusal {
        if !changed_meanwhile(&e) {
            return unavailable(&format!("the patch of {object}"), e);
        }
        let again = current(client, objects).await.map(|c| c.revision);
        let again = again.map_or_else(|_| "unknown".to_owned(), |r| r.to_string());
        precondition_failed(
            format!(
                "{object} changed while the rollback was sent (now at revision {again}): {what}"
            ),
            serde_json::json!({ "revision": again }),
        )
    };
    let mut done = Vec::new();
    let mut ops = Vec::new();
    if now.kind == WorkloadKind::Rollout {
        if now.abortable {
            let abort = json_patch(vec![
                serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": rv }),
                serde_json::json!({ "op": "add", "path": "/status/abort", "value": true }),
            ])?;
            if let Err(e) = argo_rollouts(client, &now.namespace)
                .patch_status(&now.name, &PatchParams::default(), &abort)
                .await
            {
                return Err(refused(e, "nothing was done").await);
            }
            done.push(format!(
                "aborted the update of {object} (status.abort, resourceVersion {rv})"
            ));
        }
        ops.push(serde_json::json!({ "op": "test", "path": "/metadata/generation", "value": now.generation }));
    } else {
        ops.push(
            serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": rv }),
        );
    }
    ops.push(serde_json::json!({ "op": "replace", "path": "/spec/template", "value": template }));
    if let Some(cause) = target
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHANGE_CAUSE))
    {
        let mut annotations = now.annotations.clone();
        annotations.insert(CHANGE_CAUSE.into(), cause.clone());
        ops.push(serde_json::json!({ "op": "replace", "path": "/metadata/annotations", "value": annotations }));
    }
    let undo = json_patch(ops)?;
    let patched = match now.kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), &now.namespace)
            .patch(&now.name, &PatchParams::default(), &undo)
            .await
            .map(drop),
        WorkloadKind::Rollout => argo_rollouts(client, &now.namespace)
            .patch(&now.name, &PatchParams::default(), &undo)
            .await
            .map(drop),
    };
    match patched {
        Ok(()) => {
            let precondition = match now.kind {
                WorkloadKind::Deployment => format!("resourceVersion {rv}"),
                WorkloadKind::Rollout => format!("generation {}", now.generation),
            };
            done.push(format!(
                "patched {object} ({precondition}): the pod template of revision {to}"
            ));
            Ok(done.join("; "))
        }
        Err(e) if done.is_empty() => Err(refused(e, "nothing was done").await),
        Err(e) => Err(refused(
            e,
            "the update stays aborted (the stable revision serves), but its template was not rolled back",
        )
        .await),
    }
}

/// Pulls `lever` on the rollout under way to `expected`; what was patched, in words (and
/// the action's `to`).
pub async fn lever(
    client: &Client,
    objects: &ServiceObjects,
    lever: RolloutLever,
    expected: u32,
    full: bool,
) -> Result<(String, String), Refusal> {
    let now = current(client, objects).await?;
    let object = now.object();
    check_lever(&now, lever, expected)?;
    let rv = now.resource_version.clone();
    let test =
        serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": rv });
    let LeverPatch {
        status,
        ops,
        done,
        to,
    } = lever_patch(&now, lever, full)?;
    let patch = json_patch(std::iter::once(test).chain(ops).collect())?;
    let result = match (now.kind, status) {
        (WorkloadKind::Deployment, _) => {
            Api::<Deployment>::namespaced(client.clone(), &now.namespace)
                .patch(&now.name, &PatchParams::default(), &patch)
                .await
                .map(drop)
        }
        (WorkloadKind::Rollout, false) => argo_rollouts(client, &now.namespace)
            .patch(&now.name, &PatchParams::default(), &patch)
            .await
            .map(drop),
        (WorkloadKind::Rollout, true) => argo_rollouts(client, &now.namespace)
            .patch_status(&now.name, &PatchParams::default(), &patch)
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Ok((
            format!("patched {object} (resourceVersion {rv}): {done}"),
            to,
        )),
        Err(e) if changed_meanwhile(&e) => Err(precondition_failed(
            format!(
                "{object} changed while the {} was sent: nothing was done",
                lever.as_str()
            ),
            serde_json::json!({ "revision": now.revision }),
        )),
        Err(e) => Err(unavailable(&format!("the patch of {object}"), e)),
    }
}

/// Refuses a lever the rollout under way cannot take: none under way, another revision
/// than the one the person saw, or a state the lever cannot move.
fn check_lever(now: &Current, lever: RolloutLever, expected: u32) -> Result<(), Refusal> {
    let object = now.object();
    let state = if now.stalled {
        "stalled"
    } else if now.rollout_paused {
        "paused"
    } else {
        "running"
    };
    let refuse = |why: String| {
        Err(precondition_failed(
            why,
            serde_json::json!({
                "revision": now.revision,
                "rollout": now.waves.map(|_| state),
            }),
        ))
    };
    if now.waves.is_none() {
        return refuse(format!(
            "no rollout is under way on {object} (it is at revision {})",
            now.revision
        ));
    }
    if now.revision != expected {
        return refuse(format!(
            "the rollout under way on {object} is to revision {}, not {expected}",
            now.revision
        ));
    }
    let why_not = match lever {
        RolloutLever::Pause if now.rollout_paused => Some("it is already paused"),
        RolloutLever::Pause if now.stalled => {
            Some("it is stalled, so there is no wave to hold back: abort or roll back")
        }
        RolloutLever::Resume if !now.rollout_paused => Some("it is not paused"),
        RolloutLever::Promote if now.stalled => {
            Some("it is stalled: its wave cannot move, so promoting cannot help")
        }
        RolloutLever::Abort if now.kind == WorkloadKind::Rollout && !now.abortable => {
            Some("it is already aborted")
        }
        _ => None,
    };
    if let Some(why) = why_not {
        return refuse(format!(
            "cannot {} the rollout of {object} to revision {}: {why}",
            lever.as_str(),
            now.revision
        ));
    }
    Ok(())
}

/// A lever's JSON patch: on the object or its status, the operations, what it did in
/// words, and the action's `to`.
struct LeverPatch {
    status: bool,
    ops: Vec<serde_json::Value>,
    done: &'static str,
    to: String,
}

fn lever_patch(now: &Current, lever: RolloutLever, full: bool) -> Result<LeverPatch, Refusal> {
    let object = now.object();
    let (status, ops, done, to): (bool, Vec<serde_json::Value>, &'static str, String) =
        match (now.kind, lever) {
            (_, RolloutLever::Pause) => (
                false,
                vec![serde_json::json!({ "op": "add", "path": "/spec/paused", "value": true })],
                "spec.paused set",
                "paused".into(),
            ),
            (WorkloadKind::Deployment, RolloutLever::Resume) => (
                false,
                vec![serde_json::json!({ "op": "add", "path": "/spec/paused", "value": false })],
                "spec.paused cleared",
                "running".into(),
            ),
            (WorkloadKind::Deployment, RolloutLever::Abort | RolloutLever::Promote) => {
                return Err(refusal(
                    StatusCode::NOT_IMPLEMENTED,
                    "not_implemented",
                    format!(
                        "a Deployment has no {} (it rolls every replica in one go): roll {object} back instead",
                        if lever == RolloutLever::Abort { "abort" } else { "promotion" }
                    ),
                ))
            }
            // Argo: a manual pause is spec.paused; a pause step holds in pauseConditions.
            (WorkloadKind::Rollout, RolloutLever::Resume) if now.argo_spec_paused => (
                false,
                vec![serde_json::json!({ "op": "add", "path": "/spec/paused", "value": false })],
                "spec.paused cleared",
                "running".into(),
            ),
            (WorkloadKind::Rollout, RolloutLever::Resume) => (
                true,
                vec![serde_json::json!({ "op": "add", "path": "/status/pauseConditions", "value": null })],
                "its pause step released (status.pauseConditions cleared)",
                "running".into(),
            ),
            (WorkloadKind::Rollout, RolloutLever::Abort) => (
                true,
                vec![serde_json::json!({ "op": "add", "path": "/status/abort", "value": true })],
                "status.abort set: the stable ReplicaSet takes the traffic back",
                now.stable_revision
                    .map_or_else(|| "stable".to_owned(), |r| r.to_string()),
            ),
            (WorkloadKind::Rollout, RolloutLever::Promote) if full => (
                true,
                vec![serde_json::json!({ "op": "add", "path": "/status/promoteFull", "value": true })],
                "status.promoteFull set: every remaining step now",
                firebreak_protocol::actions::PROMOTE_ALL.into(),
            ),
            (WorkloadKind::Rollout, RolloutLever::Promote) => (
                true,
                vec![
                    serde_json::json!({ "op": "add", "path": "/status/pauseConditions", "value": null }),
                    serde_json::json!({ "op": "add", "path": "/status/currentStepIndex", "value": now.step_index + 1 }),
                ],
                "moved past its current step (status.currentStepIndex)",
                firebreak_protocol::actions::PROMOTE_NEXT.into(),
            ),
        };
    if now.kind == WorkloadKind::Rollout && lever == RolloutLever::Promote && now.argo_spec_paused {
        // A manual pause would hold the promoted step too: lift it first, as Argo's CLI does.
        return Err(refuse_manual_pause(&object));
    }
    Ok(LeverPatch {
        status,
        ops,
        done,
        to,
    })
}

fn refuse_manual_pause(object: &str) -> Refusal {
    precondition_failed(
        format!("{object} is paused by hand (spec.paused): resume it, then promote"),
        serde_json::json!({ "rollout": "paused" }),
    )
}

/// (resourceVersion, where each configured region's backend is and its weight now, the
/// primary region) of the service's route. A configured backend the route has twice in
/// one rule is refused: a failover must know what it moves.
async fn route_now(
    client: &Client,
    route: &Route,
) -> Result<(String, Vec<Found>, String), Refusal> {
    let object = route_api(client, route)
        .get(&route.name)
        .await
        .map_err(|e| unavailable(&route_name(route), e))?;
    let rv = object.metadata.resource_version.clone().unwrap_or_default();
    let reading = super::route::read(route, &object.data);
    if let Some(why) = reading.problems.iter().find(|p| p.contains(" rule ")) {
        return Err(refusal(
            StatusCode::CONFLICT,
            "route_mismatch",
            format!("{why}; nothing was patched"),
        ));
    }
    let primary = reading.primary().map(str::to_owned).ok_or_else(|| {
        let mut why = format!(
            "{} sends no weight to any configured backend",
            route_name(route)
        );
        if !reading.problems.is_empty() {
            why = format!("{why} ({})", reading.problems.join("; "));
        }
        unavailable("a primary region", why)
    })?;
    Ok((rv, reading.found, primary))
}

/// The region the route sends most traffic to.
pub async fn primary_region(client: &Client, route: &Route) -> Result<String, Refusal> {
    Ok(route_now(client, route).await?.2)
}

/// The primary region, and the split as people read it:
/// `HTTPRoute serving/llm-assistant (us-east 100, eu-west 0)`.
pub async fn traffic(client: &Client, route: &Route) -> Result<(String, String), Refusal> {
    let (_, backends, primary) = route_now(client, route).await?;
    let split = backends
        .iter()
        .map(|f| format!("{} {}", f.region, f.weight))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((primary, format!("{} ({split})", route_name(route))))
}

/// Moves all of the route's traffic to `to`, if `expected` is the primary now.
pub async fn failover(
    client: &Client,
    route: &Route,
    to: &str,
    expected: &str,
) -> Result<String, Refusal> {
    let name = route_name(route);
    let (rv, backends, primary) = route_now(client, route).await?;
    if primary != expected {
        return Err(precondition_failed(
            format!("the primary region is {primary}, not {expected}: someone changed {name} since you looked"),
            serde_json::json!({ "primary_region": primary }),
        ));
    }
    if !backends.iter().any(|f| f.region == to) {
        let wanted = route
            .backends
            .get(to)
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("{name} has no backend for region {to:?}{wanted}"),
        ));
    }
    let (rules_key, backends_key) = super::route::layout(route.kind);
    let mut ops =
        vec![serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": rv })];
    for f in &backends {
        let weight = if f.region == to { 100 } else { 0 };
        let (i, j) = (f.rule, f.index);
        ops.push(serde_json::json!({
            "op": "add", "path": format!("/spec/{rules_key}/{i}/{backends_key}/{j}/weight"), "value": weight
        }));
    }
    let patch = json_patch(ops)?;
    match route_api(client, route)
        .patch(&route.name, &PatchParams::default(), &patch)
        .await
    {
        Ok(_) => Ok(format!(
            "patched {name} (resourceVersion {rv}): all weight to {to}, 0 elsewhere"
        )),
        Err(e) if changed_meanwhile(&e) => {
            let again = primary_region(client, route).await.unwrap_or_default();
            Err(precondition_failed(
                format!("{name} changed while the failover was sent (primary now {again}): nothing was done"),
                serde_json::json!({ "primary_region": again }),
            ))
        }
        Err(e) => Err(unavailable(&format!("the patch of {name}"), e)),
    }
}
