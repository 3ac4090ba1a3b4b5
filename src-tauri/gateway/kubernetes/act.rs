//! Rollback and failover through the Kubernetes API, each one JSON Patch whose first
//! operation tests the `metadata.resourceVersion` the gateway read: an object someone
//! changed in between is refused by the API server (422 for a failed test operation,
//! 409 for a conflict), and the caller gets the protocol's `precondition_failed` with
//! what is current now.
//!
//! - Rollback, as `kubectl rollout undo` does it: the owned ReplicaSet of the chosen
//!   revision gives its pod template, without the `pod-template-hash` label; its
//!   `kubernetes.io/change-cause` goes with it. A paused Deployment is refused, as kubectl
//!   does.
//! - Failover: the service's HTTPRoute; the target region's backendRef gets all the
//!   weight (100) and the others 0. The primary region is the backend with the most weight.

use axum::http::StatusCode;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};

use super::rollouts::{model_version, REVISION};
use crate::gateway::config::{ModelVersionSource, Route, ServiceObjects};
use crate::protocol::actions::{ApiError, Revision, RolloutView};
use crate::server::actions::{refusal, Refusal};

const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

fn unavailable(what: &str, e: impl std::fmt::Display) -> Refusal {
    refusal(
        StatusCode::BAD_GATEWAY,
        "status_unavailable",
        format!("the Kubernetes API did not give {what}: {e}"),
    )
}

fn http_route(client: &Client, route: &Route) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ));
    Api::namespaced_with(client.clone(), &route.namespace, &resource)
}

/// What the deployment is at now, with its history, as the protocol shows it.
pub struct Current {
    pub deployment: Deployment,
    pub revision: u32,
    pub revisions: Vec<(u32, ReplicaSet)>,
}

pub async fn current(client: &Client, objects: &ServiceObjects) -> Result<Current, Refusal> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &objects.namespace);
    let deployment = deployments.get(&objects.name).await.map_err(|e| {
        unavailable(
            &format!("Deployment {}/{}", objects.namespace, objects.name),
            e,
        )
    })?;
    let selector = objects.pod_selector();
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &objects.namespace);
    let listed = sets
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| unavailable("the ReplicaSets", e))?;
    let mut revisions: Vec<(u32, ReplicaSet)> = listed
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|o| o.kind == "Deployment" && o.name == objects.name)
            })
        })
        .filter_map(|rs| {
            let r = rs
                .metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()?;
            Some((r, rs))
        })
        .collect();
    revisions.sort_by_key(|(r, _)| *r);
    let revision = deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    Ok(Current {
        deployment,
        revision,
        revisions,
    })
}

impl Current {
    /// The protocol's view: revisions oldest first, any rollout under way.
    pub fn view(
        &self,
        service: &str,
        source: &ModelVersionSource,
    ) -> crate::protocol::actions::Deployment {
        let replicas = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1);
        let status = self.deployment.status.clone().unwrap_or_default();
        let updated = status
            .updated_replicas
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(0);
        let stalled = status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        crate::protocol::actions::Deployment {
            name: self.deployment.metadata.name.clone().unwrap_or_default(),
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
            rollout: (updated < replicas).then(|| {
                // Waves as the rollout events count them: maxSurge replicas at a time.
                let step = super::rollouts::wave_size(&self.deployment, replicas);
                RolloutView {
                    to_revision: self.revision,
                    wave: updated / step,
                    waves: replicas.div_ceil(step),
                    stalled,
                }
            }),
            nodes_total: replicas,
            last_changed_by: None,
            object: Some(format!(
                "Deployment {}/{}",
                self.deployment.metadata.namespace.as_deref().unwrap_or(""),
                self.deployment.metadata.name.as_deref().unwrap_or("")
            )),
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

/// Rolls the Deployment back to `to`, if it is at `expected`; what was patched, in words.
pub async fn rollback(
    client: &Client,
    objects: &ServiceObjects,
    to: u32,
    expected: u32,
) -> Result<String, Refusal> {
    let now = current(client, objects).await?;
    let name = format!("{}/{}", objects.namespace, objects.name);
    if now.revision != expected {
        return Err(precondition_failed(
            format!(
                "{name} is at revision {}, not {expected}: someone changed it since you looked",
                now.revision
            ),
            serde_json::json!({ "revision": now.revision }),
        ));
    }
    if now
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.paused)
        .unwrap_or(false)
    {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("{name} is paused: resume it first (kubectl rollout resume), as kubectl refuses to roll back a paused Deployment"),
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
                "revision {to} is not an earlier revision of {name} (history: {})",
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
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    let rv = now
        .deployment
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let mut ops = vec![
        serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": rv }),
        serde_json::json!({ "op": "replace", "path": "/spec/template", "value": template }),
    ];
    if let Some(cause) = target
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHANGE_CAUSE))
    {
        let mut annotations = now
            .deployment
            .metadata
            .annotations
            .clone()
            .unwrap_or_default();
        annotations.insert(CHANGE_CAUSE.into(), cause.clone());
        ops.push(serde_json::json!({ "op": "replace", "path": "/metadata/annotations", "value": annotations }));
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| unavailable("a patch", e))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &objects.namespace);
    match deployments
        .patch(
            &objects.name,
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(format!(
            "patched Deployment {name} (resourceVersion {rv}): the pod template of revision {to}"
        )),
        Err(e) if changed_meanwhile(&e) => {
            let again = current(client, objects).await?;
            Err(precondition_failed(
                format!("{name} changed while the rollback was sent (now at revision {}): nothing was done", again.revision),
                serde_json::json!({ "revision": again.revision }),
            ))
        }
        Err(e) => Err(unavailable(&format!("the patch of {name}"), e)),
    }
}

/// (resourceVersion, the rule/backend positions of each configured region, the weights
/// now, the primary region) of the service's HTTPRoute.
async fn route_now(
    client: &Client,
    route: &Route,
) -> Result<(String, Vec<(String, usize, usize, i64)>, String), Refusal> {
    let object = http_route(client, route)
        .get(&route.name)
        .await
        .map_err(|e| unavailable(&format!("HTTPRoute {}/{}", route.namespace, route.name), e))?;
    let rv = object.metadata.resource_version.clone().unwrap_or_default();
    let mut found = Vec::new();
    let rules = object.data["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        for (j, backend) in rule["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = backend["name"].as_str().unwrap_or_default();
            if let Some((region, _)) = route.backends.iter().find(|(_, b)| *b == name) {
                found.push((
                    region.clone(),
                    i,
                    j,
                    backend["weight"].as_i64().unwrap_or(1),
                ));
            }
        }
    }
    let primary = found
        .iter()
        .max_by_key(|(_, _, _, w)| *w)
        .filter(|(_, _, _, w)| *w > 0)
        .map(|(r, _, _, _)| r.clone())
        .ok_or_else(|| {
            unavailable(
                "a primary region",
                format!(
                    "HTTPRoute {}/{} sends no weight to any configured backend",
                    route.namespace, route.name
                ),
            )
        })?;
    Ok((rv, found, primary))
}

/// The region the HTTPRoute sends most traffic to.
pub async fn primary_region(client: &Client, route: &Route) -> Result<String, Refusal> {
    Ok(route_now(client, route).await?.2)
}

/// The primary region, and the split as people read it:
/// `HTTPRoute serving/llm-assistant (us-east 100, eu-west 0)`.
pub async fn traffic(client: &Client, route: &Route) -> Result<(String, String), Refusal> {
    let (_, backends, primary) = route_now(client, route).await?;
    let split = backends
        .iter()
        .map(|(region, _, _, w)| format!("{region} {w}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((
        primary,
        format!("HTTPRoute {}/{} ({split})", route.namespace, route.name),
    ))
}

/// Moves all of the route's traffic to `to`, if `expected` is the primary now.
pub async fn failover(
    client: &Client,
    route: &Route,
    to: &str,
    expected: &str,
) -> Result<String, Refusal> {
    let name = format!("{}/{}", route.namespace, route.name);
    let (rv, backends, primary) = route_now(client, route).await?;
    if primary != expected {
        return Err(precondition_failed(
            format!("the primary region is {primary}, not {expected}: someone changed HTTPRoute {name} since you looked"),
            serde_json::json!({ "primary_region": primary }),
        ));
    }
    if !backends.iter().any(|(r, _, _, _)| r == to) {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("HTTPRoute {name} has no backendRef for region {to:?}"),
        ));
    }
    let mut ops =
        vec![serde_json::json!({ "op": "test", "path": "/metadata/resourceVersion", "value": rv })];
    for (region, i, j, _) in &backends {
        let weight = if region == to { 100 } else { 0 };
        ops.push(serde_json::json!({
            "op": "add", "path": format!("/spec/rules/{i}/backendRefs/{j}/weight"), "value": weight
        }));
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| unavailable("a patch", e))?;
    match http_route(client, route)
        .patch(
            &route.name,
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(format!(
            "patched HTTPRoute {name} (resourceVersion {rv}): all weight to {to}, 0 elsewhere"
        )),
        Err(e) if changed_meanwhile(&e) => {
            let again = primary_region(client, route).await.unwrap_or_default();
            Err(precondition_failed(
                format!("HTTPRoute {name} changed while the failover was sent (primary now {again}): nothing was done"),
                serde_json::json!({ "primary_region": again }),
            ))
        }
        Err(e) => Err(unavailable(&format!("the patch of {name}"), e)),
    }
}
