//! The gateway's server: the event stream every console subscribes to, served from the
//! durable journal, and Alertmanager's webhook, whose alerts become events in it.
//!
//! Routes (PROTOCOL.md): `GET /v1/events` (any named token), `POST /v1/alertmanager` (the
//! webhook's own token), `GET /v1/gateway/status` (any named token), and the action API
//! (`server::actions` over the services' hooks; any named token, whose name is the actor).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::alertmanager;
use super::config::Config;
use super::journal::{DurableJournal, Retention};
use firebreak_protocol::events::MAX_SEQUENCE;
use firebreak_server::faults::Faults;
use firebreak_server::stream::StreamFaults;
use firebreak_server::{bearer, constant_time_eq, envelope};

/// Every route the gateway answers, as (method, path): checked against the OpenAPI
/// document (with the action API's `server::actions::ROUTES`).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/events"),
    ("post", "/v1/alertmanager"),
    ("get", "/v1/gateway/status"),
];

/// An Alertmanager notification's body (its default max_alerts keeps it far smaller).
const MAX_WEBHOOK_BYTES: usize = 2 * 1024 * 1024;

/// Inbound WebSocket messages (a console sends next to nothing) are capped low.
const MAX_INBOUND_BYTES: usize = 64 * 1024;

struct Shared {
    cluster: String,
    journal: Arc<DurableJournal>,
    /// (name, token): the name is the actor recorded for what the holder does.
    tokens: Vec<(String, String)>,
    webhook: Option<Webhook>,
    connections: AtomicU64,
    no_faults: Faults,
    malformed_sent: AtomicU64,
    /// The last webhook notification: when, and what was refused in it.
    last_notification: Mutex<Option<serde_json::Value>>,
    /// Prometheus queries that give nothing now, with why.
    prometheus_failures: super::prometheus::Failures,
    prometheus_choices: super::prometheus::Choices,
    /// The services polled (the file's and the discovered ones), for the status endpoint.
    services: super::prometheus::Services,
    /// What discovery last found, refused and could not read.
    discovery: super::discovery::Status,
    /// Whether a preset's services are asked together (`[prometheus] batch`).
    batch: bool,
    /// Wakes the Alertmanager catch-up (a notification could not be recorded).
    catch_up: tokio::sync::Notify,
    /// The last catch-up: when, and what it found or why it failed.
    last_catch_up: Mutex<Option<serde_json::Value>>,
}

/// How often the gateway reads Alertmanager's alerts besides at start and after a
/// notification it could not record: a notification lost on the way is found within this.
const CATCH_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

struct Webhook {
    token: String,
    labels: super::config::Alertmanager,
}

/// A gateway running in this process.
pub struct RunningGateway {
    pub addr: SocketAddr,
    /// Whether it serves wss/https.
    pub tls: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    pub fn events_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/v1/events", self.addr)
    }
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
    /// Stops accepting and polling. Streams already open end with the process.
    pub fn shutdown(self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Binds the configured address and serves until the task is stopped. The journal lives
/// at `journal`; its stream continues across restarts.
pub async fn start(config: &Config, journal: &Path) -> Result<RunningGateway> {
    let journal = Arc::new(DurableJournal::open(journal, Retention::default()).await?);
    start_on(config, journal).await
}

/// [`start`] on a journal already open (benchmarks choose how it is kept).
pub async fn start_on(config: &Config, journal: Arc<DurableJournal>) -> Result<RunningGateway> {
    let acceptor = match &config.tls {
        Some(tls) => Some(firebreak_server::tls::acceptor(tls)?),
        None => None,
    };
    let mut tokens = Vec::new();
    for t in &config.tokens {
        tokens.push((
            t.name.clone(),
            firebreak_server::secret::read(&t.secret, &format!("token {:?}", t.name))?,
        ));
    }
    let webhook = match &config.alertmanager {
        Some(am) => Some(Webhook {
            token: firebreak_server::secret::read(&am.webhook_token, "alertmanager.webhook_token")?,
            labels: am.clone(),
        }),
        None => None,
    };
    let mut tasks = Vec::new();
    let (services_tx, services_rx) = tokio::sync::watch::channel(Arc::new(config.services.clone()));
    let shared = Arc::new(Shared {
        cluster: config.cluster.clone(),
        journal,
        tokens,
        webhook,
        connections: AtomicU64::new(0),
        no_faults: Faults::default(),
        malformed_sent: AtomicU64::new(0),
        last_notification: Mutex::new(None),
        prometheus_failures: Default::default(),
        prometheus_choices: Default::default(),
        services: services_rx.clone(),
        discovery: Default::default(),
        batch: config.prometheus.as_ref().is_none_or(|p| p.batch),
        catch_up: tokio::sync::Notify::new(),
        last_catch_up: Mutex::new(None),
    });
    if shared.webhook.is_some() {
        tasks.push(tokio::spawn(catch_up_loop(shared.clone())));
    }
    // Said once, here and on the status endpoint: never a `source.degraded` that stays.
    for service in &config.services {
        for (metric, why) in &service.left_out {
            tracing::info!(service = %service.name, %metric, %why, "left out of the service's metrics");
        }
    }
    // The rollouts under way, as the Kubernetes watcher reads them, for the Prometheus
    // poller's figures by revision.
    let rollouts = super::revisions::Rollouts::default();
    if let Some(k8s) = &config.kubernetes {
        tasks.push(tokio::spawn(super::kubernetes::watch::run_reporting(
            k8s.clone(),
            services_rx.clone(),
            config.cluster.clone(),
            shared.journal.clone(),
            rollouts.clone(),
        )));
    }
    if let Some(discovery) = &config.discovery {
        tasks.push(tokio::spawn(super::discovery::run(
            super::discovery::Inputs {
                discovery: discovery.clone(),
                prometheus: config.prometheus.clone(),
                kubernetes: config.kubernetes.clone(),
                listed: config.services.clone(),
                cluster: config.cluster.clone(),
            },
            shared.journal.clone(),
            services_tx,
            shared.discovery.clone(),
        )));
    }
    if let Some(prometheus) = &config.prometheus {
        tasks.push(tokio::spawn(super::prometheus::poll(
            prometheus.clone(),
            services_rx.clone(),
            config.cluster.clone(),
            shared.journal.clone(),
            (
                shared.prometheus_failures.clone(),
                shared.prometheus_choices.clone(),
            ),
            rollouts,
        )));
    }
    let backend = super::actions::HookBackend::start(
        config.cluster.clone(),
        services_rx,
        config.alertmanager.clone(),
        config.kubernetes.clone(),
        shared.journal.clone(),
    )
    .await?;
    let api = firebreak_server::actions::ActionApi::new(
        Arc::new(super::actions::GatewayActions(backend)),
        shared.journal.clone(),
        std::time::Duration::ZERO,
    );
    let actions = api.routes().layer(axum::middleware::from_fn_with_state(
        shared.clone(),
        authorize,
    ));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route(firebreak_protocol::EVENTS_PATH, get(events))
        .route("/v1/alertmanager", post(alertmanager_webhook))
        .route("/v1/gateway/status", get(status))
        .with_state(shared)
        .merge(actions);
    let tls = acceptor.is_some();
    tasks.push(tokio::spawn(firebreak_server::listen::serve(
        listener,
        acceptor,
        app,
        firebreak_server::listen::Limits::default(),
    )));
    tracing::info!(%addr, tls, "gateway listening");
    Ok(RunningGateway { addr, tls, tasks })
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut r = (
        status,
        Json(serde_json::json!({ "error": code, "message": message.into() })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"firebreak\""),
        );
    }
    r
}

/// The name of the token presented, if it is one of the configured ones.
fn holder<'a>(shared: &'a Shared, headers: &HeaderMap) -> Option<&'a str> {
    let presented = bearer(headers)?;
    shared
        .tokens
        .iter()
        .find(|(_, t)| constant_time_eq(t.as_bytes(), presented.as_bytes()))
        .map(|(name, _)| name.as_str())
}

/// The action API's gate: a named token, whose name goes on as the caller (the actor).
async fn authorize(
    State(shared): State<Arc<Shared>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(who) = holder(&shared, request.headers()).map(str::to_owned) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    };
    request
        .extensions_mut()
        .insert(firebreak_server::actions::Caller(who));
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    after: Option<u64>,
}

async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // The token first, as on every route: who may ask comes before how they asked.
    let Some(who) = holder(&shared, &headers).map(str::to_owned) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let conn = shared.connections.fetch_add(1, Ordering::Relaxed);
    tracing::info!(token = %who, conn, after = ?q.after, "console subscribed");
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| async move {
            let faults = StreamFaults {
                faults: &shared.no_faults,
                seed: 0,
                malformed_sent: &shared.malformed_sent,
            };
            let served = firebreak_server::serve_stream(
                socket,
                shared.journal.clone(),
                q.after.map(|a| a.min(MAX_SEQUENCE)),
                conn,
                faults,
            )
            .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, conn, "stream ended");
            }
        })
}

/// Alertmanager's webhook: each alert of the notification becomes an event, once.
async fn alertmanager_webhook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let Some(hook) = &shared.webhook else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_configured",
            "this gateway has no [alertmanager] section",
        );
    };
    let presented = bearer(&headers).unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), hook.token.as_bytes()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong webhook token",
        );
    }
    // Read only now, for the webhook's own token holder, bounded in size and time.
    let body: Bytes = match tokio::time::timeout(
        firebreak_server::listen::BODY_READ,
        axum::body::to_bytes(request.into_body(), MAX_WEBHOOK_BYTES),
    )
    .await
    {
        Ok(Ok(body)) => body,
        _ => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_payload",
                format!("a notification is at most {MAX_WEBHOOK_BYTES} bytes, sent within 30 s"),
            )
        }
    };
    let notification = match alertmanager::parse(&body) {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string()),
    };
    let recorded = match record_alerts(&shared, hook, &notification.alerts).await {
        Ok(r) => r,
        // Not accepted: Alertmanager sends the notification again, and the catch-up reads
        // what it holds once the journal takes writes again, so nothing is lost.
        Err(e) => {
            shared.catch_up.notify_one();
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "journal",
                format!("cannot record the alerts: {e}"),
            );
        }
    };
    let mut refused = recorded.refused;
    if notification.truncated_alerts > 0 {
        // The catch-up reads them from Alertmanager's API.
        shared.catch_up.notify_one();
        refused.push(format!(
            "{} alerts were left out of the notification by Alertmanager (max_alerts)",
            notification.truncated_alerts
        ));
    }
    let (accepted, mapped) = (recorded.accepted, recorded.mapped);
    let answer = serde_json::json!({
        "accepted": accepted,
        "duplicates": mapped - accepted,
        "refused": refused,
    });
    *shared
        .last_notification
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(serde_json::json!({
        "at": chrono::Utc::now(),
        "answer": answer,
    }));
    (StatusCode::OK, Json(answer)).into_response()
}

/// What recording a batch of alerts did.
struct Recorded {
    /// Alerts mapped to events, and how many of those were new.
    mapped: usize,
    accepted: usize,
    /// Alerts that could not be ours, with why.
    refused: Vec<String>,
}

/// Publishes alerts (a notification's, or a catch-up's) as events, each once, and keeps
/// track of which are firing.
async fn record_alerts(
    shared: &Shared,
    hook: &Webhook,
    alerts: &[alertmanager::Alert],
) -> anyhow::Result<Recorded> {
    let source = format!("/clusters/{}", shared.cluster);
    let mut mapped = Vec::new();
    let mut refused = Vec::new();
    for alert in alerts {
        match alertmanager::map(alert, &hook.labels, &shared.cluster) {
            Ok(m) => {
                if let Some(note) = &m.note {
                    tracing::warn!(alert = %m.id, %note, "alert mapped with a note");
                }
                mapped.push(m);
            }
            Err(why) => {
                tracing::warn!(%why, "alert not mapped");
                refused.push(why);
            }
        }
    }
    let accepted = shared
        .journal
        .publish_with_ids(mapped.iter().map(|m| m.id.clone()).collect(), |seq, i| {
            let m = &mapped[i];
            envelope(&source, &m.id, m.ty, m.time, &m.subject, seq, &m.data)
        })
        .await?;
    shared.journal.track_alerts(alerts).await?;
    Ok(Recorded {
        mapped: mapped.len(),
        accepted,
        refused,
    })
}

/// Reads what Alertmanager holds at start, every [`CATCH_UP_EVERY`], and whenever a
/// notification could not be recorded: alerts that fired while the gateway was not
/// listening are published (once: same ids as their notifications), and alerts it saw
/// firing that Alertmanager no longer holds are published as resolved.
async fn catch_up_loop(shared: Arc<Shared>) {
    let Some(hook) = &shared.webhook else { return };
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for the Alertmanager catch-up");
            return;
        }
    };
    let mut retry = std::time::Duration::from_secs(1);
    loop {
        let outcome = catch_up(&shared, hook, &http).await;
        let wait = match &outcome {
            Ok(_) => {
                retry = std::time::Duration::from_secs(1);
                CATCH_UP_EVERY
            }
            Err(why) => {
                tracing::warn!(%why, "Alertmanager catch-up failed; trying again");
                retry = (retry * 2).min(std::time::Duration::from_secs(60));
                retry
            }
        };
        *shared
            .last_catch_up
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(match outcome {
            Ok(v) => serde_json::json!({ "at": chrono::Utc::now(), "found": v }),
            Err(why) => serde_json::json!({ "at": chrono::Utc::now(), "error": why }),
        });
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.catch_up.notified() => {}
        }
    }
}

async fn catch_up(
    shared: &Shared,
    hook: &Webhook,
    http: &reqwest::Client,
) -> Result<serde_json::Value, String> {
    let held = alertmanager::held(http, &hook.labels.url).await?;
    let fired = record_alerts(shared, hook, &held.active)
        .await
        .map_err(|e| format!("cannot record the alerts: {e}"))?;
    let gone: Vec<alertmanager::Alert> = shared
        .journal
        .firing_alerts()
        .await
        .map_err(|e| format!("cannot read the journal: {e}"))?
        .into_iter()
        .filter(|a| !held.all.contains(&a.fingerprint))
        .map(|mut a| {
            a.status = "resolved".into();
            a.ends_at = None;
            a
        })
        .collect();
    let resolved = record_alerts(shared, hook, &gone)
        .await
        .map_err(|e| format!("cannot record the alerts: {e}"))?;
    if fired.accepted + resolved.accepted > 0 {
        tracing::info!(
            fired = fired.accepted,
            resolved = resolved.accepted,
            "caught up with Alertmanager"
        );
    }
    Ok(serde_json::json!({
        "held": held.all.len(),
        "new_firing": fired.accepted,
        "resolved_meanwhile": resolved.accepted,
    }))
}

/// Each preset service: its stack, the labels it assumes, each figure's query in use
/// (and whether it is an older metric name the stack used), what it leaves out and why.
fn presets_status(shared: &Shared) -> Vec<serde_json::Value> {
    let choices = shared
        .prometheus_choices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let services = shared.services.borrow().clone();
    services
        .iter()
        .filter_map(|service| {
            let p = service.preset.as_ref()?;
            // Asked with the preset's other services: one query per figure for them all.
            let batched =
                (shared.batch && super::prometheus::batchable(service)).then(|| p.batched());
            let batch_key = format!("batch {}", p.batch_key());
            let owned: Vec<(String, super::config::Query)> = service
                .queries
                .iter()
                .map(|(m, q)| {
                    let across = batched.as_ref().and_then(|b| {
                        if m == "gpu_utilization" {
                            b.gpu.clone().map(|g| vec![g])
                        } else {
                            b.figures
                                .iter()
                                .find(|(f, _)| f == m)
                                .map(|(_, a)| a.clone())
                        }
                    });
                    let q = match across {
                        Some(alternatives) => super::config::Query {
                            alternatives,
                            preset: q.preset,
                        },
                        None => q.clone(),
                    };
                    (m.clone(), q)
                })
                .collect();
            let mut queries: Vec<(&str, &super::config::Query)> =
                owned.iter().map(|(m, q)| (m.as_str(), q)).collect();
            let kv = service
                .gpu
                .as_ref()
                .and_then(|g| g.kv_cache_usage.as_ref())
                .map(
                    |kv| match batched.as_ref().and_then(|b| b.kv_cache.as_ref()) {
                        Some((usage, _)) => super::config::Query {
                            alternatives: usage.clone(),
                            preset: kv.preset,
                        },
                        None => kv.clone(),
                    },
                );
            if let Some(kv) = &kv {
                queries.push(("kv_cache_usage", kv));
            }
            let figures: serde_json::Map<String, serde_json::Value> = queries
                .into_iter()
                .map(|(metric, q)| {
                    let whose = if batched.is_some() {
                        batch_key.clone()
                    } else {
                        service.name.clone()
                    };
                    let i = choices
                        .get(&(whose, metric.to_owned()))
                        .copied()
                        .unwrap_or(0)
                        .min(q.alternatives.len() - 1);
                    let said = serde_json::json!({
                        "from": q.preset.map_or("file".to_owned(), |s| format!("preset {s}")),
                        "with_all_its_services": batched.is_some(),
                        "query": q.alternatives[i],
                        "older_name": i > 0,
                        "alternatives": q.alternatives.len(),
                    });
                    (metric.to_owned(), said)
                })
                .collect();
            Some(serde_json::json!({
                "service": service.name,
                "stack": p.stack.as_str(),
                "service_label": p.service_label,
                "service_value": p.service_value,
                "region_label": p.region_label,
                "figures": figures,
                "left_out": service.left_out.iter().map(|(metric, why)| serde_json::json!({
                    "metric": metric, "why": why,
                })).collect::<Vec<_>>(),
            }))
        })
        .collect()
}

async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if holder(&shared, &headers).is_none() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
    }
    let (head, first) = shared.journal.bounds();
    Json(serde_json::json!({
        "cluster": shared.cluster,
        "stream_id": shared.journal.stream_id(),
        "head": head,
        "first": first,
        "presets": presets_status(&shared),
        "discovery": shared.discovery.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        "prometheus": {
            "failing": shared
                .prometheus_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|((service, region, metric), why)| serde_json::json!({
                    "service": service, "region": region, "metric": metric, "reason": why,
                }))
                .collect::<Vec<_>>(),
        },
        "alertmanager": {
            "configured": shared.webhook.is_some(),
            "last_notification": shared.last_notification.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            "last_catch_up": shared.last_catch_up.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        },
    }))
    .into_response()
}
