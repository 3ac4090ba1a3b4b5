//! The gateway's action backend: rollback and failover through each service's hooks (the
//! team's own deploy tooling), with preconditions checked against what the status hook
//! reports as current. Every action is kept in the journal with the idempotency key it was
//! accepted under, and its steps are published on the stream (`action.accepted`,
//! `action.running`, `action.succeeded` / `action.failed`), as the simulator does.
//!
//! The actor recorded on an action is the name of the token that asked; the person the
//! console names (`actor` in the request) is passed to the hook as `requested_by`.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Utc;

use super::config::{Hook, Secret, Service as ServiceConfig};
use super::hooks::{self, Call, Status};
use super::journal::DurableJournal;
use firebreak_protocol::actions::*;
use firebreak_protocol::events::{ActionEvent, EventType};
use firebreak_server::actions::{refusal, Backend, Intent, Refusal};

pub struct HookBackend {
    cluster: String,
    /// The file's services and the discovered ones, as discovery last said.
    services: crate::prometheus::Services,
    /// Where silences are created, and the label names the protocol's fields map to.
    alertmanager: Option<super::config::Alertmanager>,
    journal: Arc<DurableJournal>,
    http: reqwest::Client,
    /// The Kubernetes API, when configured and reachable at start: services with objects
    /// there are read, rolled back and failed over through it instead of hooks.
    kube: Option<(kube::Client, super::config::Kubernetes)>,
}

impl HookBackend {
    /// The backend; actions a previous run left unfinished are closed as failed first,
    /// with what is known: the hook was stopped, whether it acted is not known.
    pub async fn start(
        cluster: String,
        services: crate::prometheus::Services,
        alertmanager: Option<super::config::Alertmanager>,
        kubernetes: Option<super::config::Kubernetes>,
        journal: Arc<DurableJournal>,
    ) -> anyhow::Result<Arc<HookBackend>> {
        firebreak_common::process::install_tls_provider();
        let http = reqwest::Client::builder()
            // A hook never follows a redirect: it could send the action elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        let kube = match &kubernetes {
            None => None,
            Some(k8s) => match super::kubernetes::watch::client(k8s).await {
                Ok(client) => Some((client, k8s.clone())),
                Err(e) => {
                    // The watcher says so on the stream; actions fall back to the hooks.
                    tracing::warn!(error = %format!("{e:#}"), "no Kubernetes client for actions");
                    None
                }
            },
        };
        let backend = Arc::new(HookBackend {
            cluster,
            services,
            alertmanager,
            journal,
            http,
            kube,
        });
        for mut action in backend.journal.unfinished_actions().await? {
            action.state = ActionState::Failed;
            action.error = Some(
                "the gateway stopped while this action's hook ran; whether it acted is not \
                 known: check the deploy tool before acting again"
                    .into(),
            );
            action.updated_at = Utc::now();
            backend.record(&action, EventType::ActionFailed).await;
        }
        Ok(backend)
    }

    /// Every service now.
    fn all(&self) -> Arc<Vec<ServiceConfig>> {
        self.services.borrow().clone()
    }

    fn service(&self, name: &str) -> Option<ServiceConfig> {
        self.all().iter().find(|s| s.name == name).cloned()
    }

    /// The service whose deployment is `name`, or the protocol's 404.
    fn by_deployment(&self, name: &str) -> Result<ServiceConfig, Refusal> {
        self.all()
            .iter()
            .find(|s| s.deployment == name)
            .cloned()
            .ok_or_else(|| not_found(format!("no deployment {name:?}")))
    }

    async fn status(&self, service: &ServiceConfig) -> Result<Option<Status>, Refusal> {
        let Some(hook) = &service.hooks.status else {
            return Ok(None);
        };
        let call = Call {
            cluster: self.cluster.clone(),
            kind: "status".into(),
            service: service.name.clone(),
            deployment: service.deployment.clone(),
            ..Call::default()
        };
        let outcome = hooks::run(
            hook,
            &call,
            service.hooks.timeout,
            &service.hooks.pass_env,
            &self.http,
            read,
        )
        .await;
        hooks::parse_status(&outcome).map(Some).map_err(|why| {
            refusal(
                StatusCode::BAD_GATEWAY,
                "status_unavailable",
                format!("{}: {why}", service.name),
            )
        })
    }

    /// The service's objects in Kubernetes and a client, when actions go through the API.
    fn kube_objects<'a>(
        &'a self,
        s: &'a ServiceConfig,
    ) -> Option<(
        &'a kube::Client,
        &'a super::config::Kubernetes,
        &'a super::config::ServiceObjects,
    )> {
        let (client, k8s) = self.kube.as_ref()?;
        let objects = s.kubernetes.as_ref()?;
        Some((client, k8s, objects))
    }

    async fn service_view(&self, s: &ServiceConfig) -> Result<Service, Refusal> {
        let routed = self
            .kube_objects(s)
            .and_then(|(client, _, o)| Some((client, o.route.as_ref()?)));
        let (primary, traffic) = match routed {
            Some((client, route)) => {
                let (primary, split) = super::kubernetes::act::traffic(client, route).await?;
                (primary, Some(split))
            }
            None => (
                self.status(s)
                    .await?
                    .and_then(|st| st.primary_region)
                    .unwrap_or_else(|| s.regions[0].clone()),
                None,
            ),
        };
        Ok(Service {
            name: s.name.clone(),
            deployment: s.deployment.clone(),
            primary_region: primary,
            regions: s.regions.clone(),
            last_changed_by: self.last_changed_by(&s.name, ActionKind::Failover).await,
            traffic,
        })
    }

    async fn deployment_view(&self, s: &ServiceConfig) -> Result<Deployment, Refusal> {
        if let Some((client, k8s, objects)) = self.kube_objects(s) {
            let now = super::kubernetes::act::current(client, objects).await?;
            let mut view = now.view(&s.name, &k8s.model_version);
            view.last_changed_by = self.last_changed_by(&s.name, ActionKind::Rollback).await;
            return Ok(view);
        }
        let status = self.status(s).await?.unwrap_or_default();
        let now = Utc::now();
        Ok(Deployment {
            name: s.deployment.clone(),
            service: s.name.clone(),
            current_revision: status.revision.unwrap_or(0),
            revisions: status
                .revisions
                .iter()
                .map(|r| Revision {
                    revision: r.revision,
                    model_version: r.model_version.clone(),
                    created_at: r.created_at.unwrap_or(now),
                })
                .collect(),
            rollout: None,
            nodes_total: status.nodes_total.unwrap_or(0),
            last_changed_by: self.last_changed_by(&s.name, ActionKind::Rollback).await,
            object: None,
        })
    }

    /// Who changed it last, when the gateway's own latest action on it succeeded.
    async fn last_changed_by(&self, service: &str, kind: ActionKind) -> Option<String> {
        let last = self.journal.last_action_on(service).await.ok().flatten()?;
        (last.kind == kind && last.state == ActionState::Succeeded).then_some(last.actor)
    }

    /// Keeps the action's new state and publishes the step on the stream.
    async fn record(&self, action: &Action, ty: EventType) {
        if let Err(e) = self.journal.update_action(action).await {
            tracing::error!(action = %action.id, error = %e, "cannot record the action's state");
        }
        self.publish(action, ty).await;
    }

    async fn publish(&self, a: &Action, ty: EventType) {
        let data = ActionEvent {
            action_id: a.id.clone(),
            kind: a.kind,
            service: a.service.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
            actor: a.actor.clone(),
            reason: a.reason.clone(),
            error: a.error.clone(),
        };
        let source = format!("/clusters/{}", self.cluster);
        let subject = format!("action/{}", a.id);
        // A stable id per step: publishing a step twice (a retry) is one event.
        let id = format!(
            "{}-{}",
            a.id,
            ty.name().rsplit('.').next().unwrap_or("step")
        );
        let published = self
            .journal
            .publish_with_ids(vec![id.clone()], |seq, _| {
                firebreak_server::envelope(&source, &id, ty, a.updated_at, &subject, seq, &data)
            })
            .await;
        if let Err(e) = published {
            tracing::error!(action = %a.id, error = %e, "cannot publish the action's step");
        }
    }

    /// Accepts an action: keeps it under its key, publishes it, and runs its hook in the
    /// background (running → succeeded / failed, with the hook's output).
    async fn accept(
        self: &Arc<Self>,
        service: &ServiceConfig,
        hook: Hook,
        step: Step,
        intent: &Intent,
    ) -> Result<Action, Refusal> {
        let Step {
            kind,
            from,
            to,
            requested_by,
            reason,
        } = step;
        let (requested_by, reason) = (requested_by.as_str(), reason.as_str());
        let now = Utc::now();
        let action = Action {
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            service: service.name.clone(),
            deployment: kind
                .acts_on_deployment()
                .then(|| service.deployment.clone()),
            from,
            to,
            state: ActionState::Accepted,
            actor: intent
                .caller
                .clone()
                .unwrap_or_else(|| requested_by.to_owned()),
            reason: reason.to_owned(),
            created_at: now,
            updated_at: now,
            error: None,
            output: None,
        };
        self.journal
            .save_action(&action, &intent.idempotency_key, &intent.fingerprint)
            .await
            .map_err(|e| {
                refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "journal",
                    format!("cannot record the action, so it was not run: {e}"),
                )
            })?;
        self.publish(&action, EventType::ActionAccepted).await;
        let call = Call {
            cluster: self.cluster.clone(),
            kind: kind.as_str().into(),
            service: service.name.clone(),
            deployment: service.deployment.clone(),
            action_id: action.id.clone(),
            from: action.from.clone(),
            to: action.to.clone(),
            actor: action.actor.clone(),
            requested_by: requested_by.to_owned(),
            reason: reason.to_owned(),
        };
        let timeout = service.hooks.timeout;
        let pass_env = service.hooks.pass_env.clone();
        let this = self.clone();
        let mut running = action.clone();
        tokio::spawn(async move {
            running.state = ActionState::Running;
            running.updated_at = Utc::now();
            this.record(&running, EventType::ActionRunning).await;
            let outcome = hooks::run(&hook, &call, timeout, &pass_env, &this.http, read).await;
            running.updated_at = Utc::now();
            running.output = Some(outcome.output.clone());
            let ty = if outcome.ok {
                running.state = ActionState::Succeeded;
                EventType::ActionSucceeded
            } else {
                running.state = ActionState::Failed;
                let last_line = outcome
                    .output
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect::<String>();
                running.error = Some(if last_line.is_empty() {
                    format!("the {} hook failed ({})", call.kind, outcome.status)
                } else {
                    format!(
                        "the {} hook failed ({}): {last_line}",
                        call.kind, outcome.status
                    )
                });
                EventType::ActionFailed
            };
            tracing::info!(action = %running.id, state = ?running.state, status = %outcome.status, "hook finished");
            this.record(&running, ty).await;
        });
        Ok(action)
    }
}

/// What a silence may mute: at least one configured service, named exactly, and only this
/// gateway's cluster when Alertmanager is shared (`cluster_label`). Regular-expression and
/// negated matchers only where the configuration allows them. Returns the service.
fn silence_scope(
    am: &super::config::Alertmanager,
    services: &[ServiceConfig],
    cluster: &str,
    matchers: &[Matcher],
) -> Result<String, Refusal> {
    let invalid = |message: String| refusal(StatusCode::BAD_REQUEST, "invalid", message);
    if !am.allow_pattern_silences {
        if let Some(m) = matchers.iter().find(|m| m.is_regex || !m.is_equal) {
            return Err(invalid(format!(
                "{} is a pattern or negated matcher; this gateway takes only exact matchers                  (alertmanager.allow_pattern_silences is off)",
                describe_matchers(std::slice::from_ref(m))
            )));
        }
    }
    let service = matchers
        .iter()
        .find(|m| m.name == "service" && m.is_equal && !m.is_regex)
        .map(|m| m.value.clone())
        .ok_or_else(|| {
            invalid("a silence must name the service it quiets exactly (service=\"…\")".to_owned())
        })?;
    if !services.iter().any(|s| s.name == service) {
        return Err(invalid(format!(
            "{service:?} is not a service of this gateway (it serves {})",
            services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(label) = &am.cluster_label {
        // The gateway adds the cluster itself; a request may only repeat it.
        if let Some(m) = matchers
            .iter()
            .find(|m| m.name == *label || (m.name == "cluster"))
            .filter(|m| !(m.is_equal && !m.is_regex && m.value == cluster))
        {
            return Err(invalid(format!(
                "{} reaches beyond this gateway's cluster {cluster:?}",
                describe_matchers(std::slice::from_ref(m))
            )));
        }
    }
    Ok(service)
}

/// The silence as Alertmanager's API v2 takes it (`POST /api/v2/silences`): the request's
/// matchers with the protocol's names mapped to the configured labels, and this gateway's
/// cluster added when Alertmanager is shared.
fn alertmanager_silence(
    am: &super::config::Alertmanager,
    req: &SilenceRequest,
    cluster: &str,
    created_by: &str,
    starts: chrono::DateTime<Utc>,
    ends: chrono::DateTime<Utc>,
) -> serde_json::Value {
    let matchers: Vec<serde_json::Value> = alertmanager_matchers(am, &req.matchers, cluster)
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "value": m.value,
                "isRegex": m.is_regex,
                "isEqual": m.is_equal,
            })
        })
        .collect();
    serde_json::json!({
        "matchers": matchers,
        "startsAt": starts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "endsAt": ends.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "createdBy": created_by,
        "comment": req.comment,
    })
}

/// A request's matchers as Alertmanager would take them: the protocol's names mapped to the
/// configured labels, and this gateway's cluster added when Alertmanager is shared.
fn alertmanager_matchers(
    am: &super::config::Alertmanager,
    matchers: &[Matcher],
    cluster: &str,
) -> Vec<Matcher> {
    let label = |name: &str| match name {
        "service" => am.service_label.clone(),
        "region" => am.region_label.clone(),
        "severity" => am.severity_label.clone(),
        other => other.to_owned(),
    };
    let mut mapped: Vec<Matcher> = matchers
        .iter()
        .filter(|m| Some(&m.name) != am.cluster_label.as_ref() && m.name != "cluster")
        .map(|m| Matcher {
            name: label(&m.name),
            ..m.clone()
        })
        .collect();
    if let Some(cluster_label) = &am.cluster_label {
        mapped.push(Matcher {
            name: cluster_label.clone(),
            value: cluster.to_owned(),
            is_regex: false,
            is_equal: true,
        });
    }
    mapped
}

/// A matcher in the syntax of Alertmanager's `filter` query parameter:
/// `name="value"`, `name=~"pattern"`, `name!="value"`, `name!~"pattern"`.
fn alertmanager_filter(m: &Matcher) -> String {
    let op = match (m.is_equal, m.is_regex) {
        (true, false) => "=",
        (false, false) => "!=",
        (true, true) => "=~",
        (false, true) => "!~",
    };
    let value = m.value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{}{op}\"{value}\"", m.name)
}

/// An action carried out at once (a Kubernetes patch): recorded as succeeded with what was
/// patched, and published as accepted then succeeded.
impl HookBackend {
    async fn record_done(
        &self,
        service: &ServiceConfig,
        step: Step,
        output: String,
        intent: &Intent,
    ) -> Result<Action, Refusal> {
        let now = Utc::now();
        let action = Action {
            id: uuid::Uuid::now_v7().to_string(),
            kind: step.kind,
            service: service.name.clone(),
            deployment: step
                .kind
                .acts_on_deployment()
                .then(|| service.deployment.clone()),
            from: step.from,
            to: step.to,
            state: ActionState::Succeeded,
            actor: intent
                .caller
                .clone()
                .unwrap_or_else(|| step.requested_by.clone()),
            reason: step.reason,
            created_at: now,
            updated_at: now,
            error: None,
            output: Some(output),
        };
        if let Err(e) = self
            .journal
            .save_action(&action, &intent.idempotency_key, &intent.fingerprint)
            .await
        {
            // The patch is applied; the answer still says so (and is kept as the key's
            // first answer when the journal can take it).
            tracing::error!(error = %e, action = %action.id, "cannot record the action");
        }
        self.publish(&action, EventType::ActionAccepted).await;
        self.publish(&action, EventType::ActionSucceeded).await;
        Ok(action)
    }
}

/// An action as checked, before it is accepted.
struct Step {
    kind: ActionKind,
    from: String,
    to: String,
    /// The person the console names.
    requested_by: String,
    reason: String,
}

fn read(secret: &Secret) -> anyhow::Result<String> {
    firebreak_server::secret::read(secret, "hook token")
}

fn not_found(what: String) -> Refusal {
    refusal(StatusCode::NOT_FOUND, "not_found", what)
}

fn not_configured(what: String) -> Refusal {
    refusal(StatusCode::BAD_REQUEST, "not_configured", what)
}

/// The backend behind `Arc`, as the action API holds it (hooks run in tasks that outlive
/// the request).
pub struct GatewayActions(pub Arc<HookBackend>);

impl Backend for GatewayActions {
    async fn services(&self) -> Result<Vec<Service>, Refusal> {
        let mut out = Vec::new();
        for s in self.0.all().iter() {
            out.push(self.0.service_view(s).await?);
        }
        Ok(out)
    }

    async fn deployments(&self) -> Result<Vec<Deployment>, Refusal> {
        let mut out = Vec::new();
        for s in self.0.all().iter() {
            out.push(self.0.deployment_view(s).await?);
        }
        Ok(out)
    }

    async fn deployment(&self, name: &str) -> Result<Deployment, Refusal> {
        let s = self.0.by_deployment(name)?;
        self.0.deployment_view(&s).await
    }

    async fn action(&self, id: &str) -> Result<Action, Refusal> {
        match self.0.journal.action(id).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(not_found(format!("no action {id:?}"))),
            Err(e) => Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "journal",
                format!("cannot read the action: {e}"),
            )),
        }
    }

    async fn rollback(
        &self,
        deployment: &str,
        req: RollbackRequest,
        intent: &Intent,
    ) -> Result<Action, Refusal> {
        let b = &self.0;
        let s = &b.by_deployment(deployment)?;
        if let Some((client, _, objects)) = b.kube_objects(s) {
            let output = super::kubernetes::act::rollback(
                client,
                objects,
                req.to_revision,
                req.expected_revision,
            )
            .await?;
            let step = Step {
                kind: ActionKind::Rollback,
                from: req.expected_revision.to_string(),
                to: req.to_revision.to_string(),
                requested_by: req.actor,
                reason: req.reason,
            };
            return b.record_done(s, step, output, intent).await;
        }
        let Some(hook) = s.hooks.rollback.clone() else {
            return Err(not_configured(format!(
                "{} has no rollback hook in the gateway's configuration",
                s.name
            )));
        };
        let status = b.status(s).await?.unwrap_or_default();
        let Some(current) = status.revision else {
            return Err(refusal(
                StatusCode::BAD_GATEWAY,
                "status_unavailable",
                format!(
                    "{}: the status hook reports no revision, so the precondition cannot be checked",
                    s.name
                ),
            ));
        };
        if current != req.expected_revision {
            return Err((
                StatusCode::CONFLICT,
                ApiError {
                    error: "precondition_failed".into(),
                    message: format!(
                        "{deployment} is at revision {current}, not {}: someone changed it since you looked",
                        req.expected_revision
                    ),
                    current: Some(serde_json::json!({ "revision": current })),
                    changed_by: b.last_changed_by(&s.name, ActionKind::Rollback).await,
                },
            ));
        }
        let known = status.revisions.is_empty()
            || status
                .revisions
                .iter()
                .any(|r| r.revision == req.to_revision);
        if req.to_revision == current || !known {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!(
                    "revision {} is not an earlier revision of {deployment} (history: {})",
                    req.to_revision,
                    status
                        .revisions
                        .iter()
                        .map(|r| r.revision.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let step = Step {
            kind: ActionKind::Rollback,
            from: current.to_string(),
            to: req.to_revision.to_string(),
            requested_by: req.actor,
            reason: req.reason,
        };
        b.accept(s, hook, step, intent).await
    }

    async fn rollout(
        &self,
        deployment: &str,
        lever: RolloutLever,
        req: RolloutRequest,
        intent: &Intent,
    ) -> Result<Action, Refusal> {
        let b = &self.0;
        let s = &b.by_deployment(deployment)?;
        let Some((client, _, objects)) = b.kube_objects(s) else {
            return Err(refusal(
                StatusCode::NOT_IMPLEMENTED,
                "not_implemented",
                format!(
                    "{}: the gateway pulls rollout levers through the Kubernetes API only; give the service a \
                     [services.kubernetes] section (its hooks carry rollback and failover)",
                    s.name
                ),
            ));
        };
        let (output, to) =
            super::kubernetes::act::lever(client, objects, lever, req.expected_revision, req.full)
                .await?;
        let step = Step {
            kind: lever.kind(),
            from: req.expected_revision.to_string(),
            to,
            requested_by: req.actor,
            reason: req.reason,
        };
        b.record_done(s, step, output, intent).await
    }

    async fn failover(
        &self,
        service: &str,
        req: FailoverRequest,
        intent: &Intent,
    ) -> Result<Action, Refusal> {
        let b = &self.0;
        let s = &b
            .service(service)
            .ok_or_else(|| not_found(format!("no service {service:?}")))?;
        let routed = b
            .kube_objects(s)
            .and_then(|(client, _, o)| Some((client, o.route.as_ref()?)));
        if let Some((client, route)) = routed {
            if req.to_region == req.expected_primary_region || !s.regions.contains(&req.to_region) {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!(
                        "{:?} is not another region of {service} (regions: {})",
                        req.to_region,
                        s.regions.join(", ")
                    ),
                ));
            }
            let output = super::kubernetes::act::failover(
                client,
                route,
                &req.to_region,
                &req.expected_primary_region,
            )
            .await?;
            let step = Step {
                kind: ActionKind::Failover,
                from: req.expected_primary_region,
                to: req.to_region,
                requested_by: req.actor,
                reason: req.reason,
            };
            return b.record_done(s, step, output, intent).await;
        }
        let Some(hook) = s.hooks.failover.clone() else {
            return Err(not_configured(format!(
                "{} has no failover hook in the gateway's configuration",
                s.name
            )));
        };
        let status = b.status(s).await?.unwrap_or_default();
        let Some(primary) = status.primary_region else {
            return Err(refusal(
                StatusCode::BAD_GATEWAY,
                "status_unavailable",
                format!(
                    "{}: the status hook reports no primary_region, so the precondition cannot be checked",
                    s.name
                ),
            ));
        };
        if primary != req.expected_primary_region {
            return Err((
                StatusCode::CONFLICT,
                ApiError {
                    error: "precondition_failed".into(),
                    message: format!(
                        "{service}'s primary region is {primary}, not {}: someone changed it since you looked",
                        req.expected_primary_region
                    ),
                    current: Some(serde_json::json!({ "primary_region": primary })),
                    changed_by: b.last_changed_by(&s.name, ActionKind::Failover).await,
                },
            ));
        }
        if req.to_region == primary || !s.regions.contains(&req.to_region) {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!(
                    "{:?} is not another region of {service} (regions: {})",
                    req.to_region,
                    s.regions.join(", ")
                ),
            ));
        }
        let step = Step {
            kind: ActionKind::Failover,
            from: primary,
            to: req.to_region,
            requested_by: req.actor,
            reason: req.reason,
        };
        b.accept(s, hook, step, intent).await
    }

    async fn silence_preview(&self, scope: SilenceScope) -> Result<SilencePreview, Refusal> {
        let b = &self.0;
        let Some(am) = &b.alertmanager else {
            return Err(not_configured(
                "this gateway has no [alertmanager] section, so it cannot create silences".into(),
            ));
        };
        silence_scope(am, &b.all(), &b.cluster, &scope.matchers)?;
        let matchers = alertmanager_matchers(am, &scope.matchers, &b.cluster);
        let query: Vec<(&str, String)> = std::iter::once(("active", "true".to_owned()))
            .chain(matchers.iter().map(|m| ("filter", alertmanager_filter(m))))
            .collect();
        let unavailable = |why: String| {
            refusal(
                StatusCode::BAD_GATEWAY,
                "alertmanager_unavailable",
                format!("Alertmanager at {}: {why}", am.url),
            )
        };
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v2/alerts", am.url), &query)
            .map_err(|e| unavailable(format!("not a URL: {e}")))?;
        let response = b
            .http
            .get(url)
            .timeout(std::time::Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| unavailable(format!("did not answer: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let text: String = text.trim().chars().take(300).collect();
            return Err(unavailable(format!("answered {status}: {text}")));
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct AmAlert {
            labels: std::collections::BTreeMap<String, String>,
            #[serde(default)]
            starts_at: Option<chrono::DateTime<Utc>>,
        }
        let found: Vec<AmAlert> = response
            .json()
            .await
            .map_err(|e| unavailable(format!("its list of alerts does not read: {e}")))?;
        let mut alerts: Vec<MutedAlert> = found
            .into_iter()
            .map(|a| MutedAlert {
                labels: a.labels,
                starts_at: a.starts_at,
            })
            .collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(SilencePreview { matchers, alerts })
    }

    async fn silence(&self, req: SilenceRequest, intent: &Intent) -> Result<Action, Refusal> {
        let b = &self.0;
        let Some(am) = &b.alertmanager else {
            return Err(not_configured(
                "this gateway has no [alertmanager] section, so it cannot create silences".into(),
            ));
        };
        let service = silence_scope(am, &b.all(), &b.cluster, &req.matchers)?;
        let caller = intent.caller.clone().unwrap_or_else(|| req.actor.clone());
        let created_by = format!("{caller} for {} (Firebreak)", req.actor);
        let starts = Utc::now();
        let ends = starts + chrono::Duration::seconds(i64::from(req.duration_s));
        let body = alertmanager_silence(am, &req, &b.cluster, &created_by, starts, ends);
        let sent = b
            .http
            .post(format!("{}/api/v2/silences", am.url))
            .timeout(std::time::Duration::from_secs(15))
            .json(&body)
            .send()
            .await;
        let response = sent.map_err(|e| {
            refusal(
                StatusCode::BAD_GATEWAY,
                "alertmanager_unavailable",
                format!("Alertmanager at {} did not answer: {e}", am.url),
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_client_error() {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!(
                    "Alertmanager refused the silence ({status}): {}",
                    text.trim()
                ),
            ));
        }
        if !status.is_success() {
            return Err(refusal(
                StatusCode::BAD_GATEWAY,
                "alertmanager_unavailable",
                format!("Alertmanager answered {status}: {}", text.trim()),
            ));
        }
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["silenceID"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let action = Action {
            id: uuid::Uuid::now_v7().to_string(),
            kind: ActionKind::Silence,
            service,
            deployment: None,
            from: describe_matchers(&req.matchers),
            to: ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            state: ActionState::Succeeded,
            actor: caller,
            reason: req.comment.clone(),
            created_at: starts,
            updated_at: Utc::now(),
            error: None,
            output: Some(format!("Alertmanager silence {id}")),
        };
        if let Err(e) = b
            .journal
            .save_action(&action, &intent.idempotency_key, &intent.fingerprint)
            .await
        {
            // The silence exists; the answer below still says so (and is kept as the
            // key's first answer when the journal can take it).
            tracing::error!(error = %e, silence = %id, "cannot record the silence action");
        }
        b.publish(&action, EventType::ActionAccepted).await;
        b.publish(&action, EventType::ActionSucceeded).await;
        Ok(action)
    }
}
