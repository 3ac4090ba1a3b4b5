//! The simulator's two interfaces on one axum server: the event stream (WebSocket) and
//! the action API (HTTP JSON, `server::actions` over the simulated fleet), both behind
//! the bearer token. Redirects are never sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::journal::Journal;
use super::world::World;
use super::Publisher;
use firebreak_protocol::actions::*;
use firebreak_protocol::EVENTS_PATH;
use firebreak_server::actions::{
    error_response, refusal, ActionApi, Backend, Intent, MemoryAnswers, Refusal,
};
use firebreak_server::faults::Faults;
use firebreak_server::stream::StreamFaults;
use firebreak_server::{bearer, constant_time_eq};

/// Inbound messages (the client sends next to nothing) are capped well below defaults.
const MAX_INBOUND_BYTES: usize = 64 * 1024;

/// Every route the server answers, as (method, path): checked against the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/events"),
    ("get", "/v1/services"),
    ("get", "/v1/deployments"),
    ("get", "/v1/deployments/{name}"),
    ("post", "/v1/deployments/{name}/rollback"),
    ("post", "/v1/services/{name}/failover"),
    ("get", "/v1/actions/{id}"),
    ("post", "/v1/alerts/silence"),
    ("post", "/v1/alerts/silence/preview"),
    ("get", "/v1/sim/stats"),
    ("get", "/metrics"),
];

pub struct Shared {
    pub world: Arc<Mutex<World>>,
    pub journal: Arc<Journal>,
    pub publisher: Publisher,
    pub token: String,
    pub faults: Faults,
    pub seed: u64,
    connections: AtomicU64,
    pub malformed_sent: AtomicU64,
    pub paused: std::sync::atomic::AtomicBool,
    /// Time moves only when a recording says so: what an action request makes the world
    /// emit is published with the next step, not from the request, so the console records
    /// the desk's step and the cluster's event in one order on every run.
    pub stepped: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn new(
        world: Arc<Mutex<World>>,
        journal: Arc<Journal>,
        publisher: Publisher,
        token: String,
        faults: Faults,
        seed: u64,
    ) -> Shared {
        Shared {
            world,
            journal,
            publisher,
            token,
            faults,
            seed,
            connections: AtomicU64::new(0),
            malformed_sent: AtomicU64::new(0),
            paused: std::sync::atomic::AtomicBool::new(false),
            stepped: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The simulated fleet as the action API's backend: requests go to the world, and what
/// the world emits is published in the world's order.
pub struct SimBackend(Arc<Shared>);

fn world(shared: &Shared) -> std::sync::MutexGuard<'_, World> {
    shared.world.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes what an action request made the world emit, unless the simulator is stepped
/// (then the next step publishes it).
fn publish(shared: &Shared, w: &mut World) {
    if !shared.stepped.load(Ordering::SeqCst) {
        shared.publisher.flush(w);
    }
}

fn status_of((status, e): (u16, ApiError)) -> Refusal {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
        e,
    )
}

impl Backend for SimBackend {
    async fn services(&self) -> Result<Vec<Service>, Refusal> {
        Ok(world(&self.0).services())
    }
    async fn deployments(&self) -> Result<Vec<Deployment>, Refusal> {
        Ok(world(&self.0).deployments())
    }
    async fn deployment(&self, name: &str) -> Result<Deployment, Refusal> {
        world(&self.0).deployment(name).ok_or_else(|| {
            refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no deployment {name:?}"),
            )
        })
    }
    async fn action(&self, id: &str) -> Result<Action, Refusal> {
        world(&self.0).action(id).ok_or_else(|| {
            refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no action {id:?}"),
            )
        })
    }
    async fn rollback(
        &self,
        deployment: &str,
        req: RollbackRequest,
        _intent: &Intent,
    ) -> Result<Action, Refusal> {
        let mut w = world(&self.0);
        let result = w.request_rollback(
            deployment,
            req.to_revision,
            req.expected_revision,
            &req.actor,
            &req.reason,
        );
        publish(&self.0, &mut w);
        result.map_err(status_of)
    }
    async fn failover(
        &self,
        service: &str,
        req: FailoverRequest,
        _intent: &Intent,
    ) -> Result<Action, Refusal> {
        let mut w = world(&self.0);
        let result = w.request_failover(
            service,
            &req.to_region,
            &req.expected_primary_region,
            &req.actor,
            &req.reason,
        );
        publish(&self.0, &mut w);
        result.map_err(status_of)
    }
    async fn rollout(
        &self,
        deployment: &str,
        lever: RolloutLever,
        req: RolloutRequest,
        _intent: &Intent,
    ) -> Result<Action, Refusal> {
        let mut w = world(&self.0);
        let result = w.request_rollout(deployment, lever, &req);
        publish(&self.0, &mut w);
        result.map_err(status_of)
    }
    async fn silence_preview(&self, scope: SilenceScope) -> Result<SilencePreview, Refusal> {
        world(&self.0)
            .silence_preview(&scope.matchers)
            .map_err(status_of)
    }
    async fn silence(&self, req: SilenceRequest, _intent: &Intent) -> Result<Action, Refusal> {
        let mut w = world(&self.0);
        let result = w.request_silence(&req.matchers, req.duration_s, &req.actor, &req.comment);
        publish(&self.0, &mut w);
        result.map_err(status_of)
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    let api = ActionApi::new(
        Arc::new(SimBackend(shared.clone())),
        Arc::new(MemoryAnswers::default()),
        Duration::from_millis(shared.faults.action_delay_ms),
    );
    Router::new()
        .route(EVENTS_PATH, get(events))
        .route("/v1/sim/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(shared.clone())
        .merge(api.routes())
        .layer(middleware::from_fn_with_state(shared, authorize))
}

/// A missing or wrong token is 401 on both interfaces, before anything else happens.
async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Some(t) if constant_time_eq(t.as_bytes(), shared.token.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            );
            r.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer realm=\"firebreak\""),
            );
            r
        }
    }
}

/// The fleet in Prometheus' text exposition format (see `exposition.rs`).
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = world(&shared).exposition.render();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let (head, first) = shared.journal.bounds();
    Json(serde_json::json!({
        "head": head,
        "first_retained": first,
        "malformed_sent": shared.malformed_sent.load(Ordering::Relaxed),
        "connections": shared.connections.load(Ordering::Relaxed),
        "sim_time_s": world(&shared).t,
        "actions": world(&shared).action_count(),
        "seed": shared.seed,
    }))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    /// Start after this sequence; absent: only events published from now on.
    after: Option<u64>,
}

async fn events(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<StreamQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let conn = shared.connections.fetch_add(1, Ordering::Relaxed);
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| async move {
            let faults = StreamFaults {
                faults: &shared.faults,
                seed: shared.seed,
                malformed_sent: &shared.malformed_sent,
            };
            let served = firebreak_server::serve_stream(
                socket,
                shared.journal.clone(),
                q.after,
                conn,
                faults,
            )
            .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, conn, "stream ended");
            }
        })
}
