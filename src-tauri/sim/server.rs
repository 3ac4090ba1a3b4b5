//! The simulator's two interfaces on one axum server: the event stream (WebSocket) and
//! the action API (HTTP JSON), both behind the bearer token. Redirects are never sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::journal::Journal;
use super::world::World;
use super::Publisher;
use crate::protocol::actions::*;
use crate::protocol::EVENTS_PATH;
use crate::server::faults::Faults;
use crate::server::stream::StreamFaults;
use crate::server::{bearer, constant_time_eq};

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
    idempotency: Mutex<HashMap<String, Idem>>,
    connections: AtomicU64,
    pub malformed_sent: AtomicU64,
    pub paused: std::sync::atomic::AtomicBool,
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
            idempotency: Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
            malformed_sent: AtomicU64::new(0),
            paused: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

enum Idem {
    InFlight {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        status: StatusCode,
        body: serde_json::Value,
    },
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(EVENTS_PATH, get(events))
        .route("/v1/services", get(list_services))
        .route("/v1/deployments", get(list_deployments))
        .route("/v1/deployments/{name}", get(get_deployment))
        .route("/v1/deployments/{name}/rollback", post(rollback))
        .route("/v1/services/{name}/failover", post(failover))
        .route("/v1/actions/{id}", get(get_action))
        .route("/v1/sim/stats", get(stats))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .with_state(shared)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ApiError {
        error: code.into(),
        message: message.into(),
        current: None,
        changed_by: None,
    };
    (status, Json(body)).into_response()
}

/// A missing or wrong token is 401 on both interfaces, before anything else happens.
async fn authorize(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Some(t) if constant_time_eq(t.as_bytes(), shared.token.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let mut r = error(
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

fn world(shared: &Shared) -> std::sync::MutexGuard<'_, World> {
    shared.world.lock().unwrap_or_else(|e| e.into_inner())
}

async fn list_services(State(shared): State<Arc<Shared>>) -> Json<ServiceList> {
    Json(ServiceList {
        services: world(&shared).services(),
    })
}

async fn list_deployments(State(shared): State<Arc<Shared>>) -> Json<DeploymentList> {
    Json(DeploymentList {
        deployments: world(&shared).deployments(),
    })
}

async fn get_deployment(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match world(&shared).deployment(&name) {
        Some(d) => Json(d).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no deployment {name:?}"),
        ),
    }
}

async fn get_action(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match world(&shared).action(&id) {
        Some(a) => Json(a).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no action {id:?}"),
        ),
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

async fn rollback(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    mutate(
        &shared,
        &headers,
        &format!("rollback {name}"),
        &body,
        |w, req: RollbackRequest| {
            w.request_rollback(
                &name,
                req.to_revision,
                req.expected_revision,
                &req.actor,
                &req.reason,
            )
        },
    )
    .await
}

async fn failover(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    mutate(
        &shared,
        &headers,
        &format!("failover {name}"),
        &body,
        |w, req: FailoverRequest| {
            w.request_failover(
                &name,
                &req.to_region,
                &req.expected_primary_region,
                &req.actor,
                &req.reason,
            )
        },
    )
    .await
}

/// A mutating request: who asks and why are required of every one.
trait Attributed {
    fn actor(&self) -> &str;
    fn reason(&self) -> &str;
}

impl Attributed for RollbackRequest {
    fn actor(&self) -> &str {
        &self.actor
    }
    fn reason(&self) -> &str {
        &self.reason
    }
}

impl Attributed for FailoverRequest {
    fn actor(&self) -> &str {
        &self.actor
    }
    fn reason(&self) -> &str {
        &self.reason
    }
}

/// Parses the body, runs `act` on the world under the idempotency rules, and publishes
/// what the world emitted, in the world's order.
async fn mutate<Req: serde::de::DeserializeOwned + Attributed>(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    act: impl FnOnce(&mut World, Req) -> Result<Action, (u16, ApiError)>,
) -> Response {
    idempotent(shared, headers, route, body, |shared, body| {
        let req: Req = serde_json::from_slice(body).map_err(|e| invalid_body(&e))?;
        require_text(req.actor(), req.reason())?;
        let mut w = world(shared);
        let result = act(&mut w, req);
        shared.publisher.flush(&mut w);
        result.map_err(|(status, e)| {
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
                e,
            )
        })
    })
    .await
}

type Refusal = (StatusCode, ApiError);

fn invalid_body(e: &serde_json::Error) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        ApiError {
            error: "invalid".into(),
            message: format!("request body: {e}"),
            current: None,
            changed_by: None,
        },
    )
}

fn require_text(actor: &str, reason: &str) -> Result<(), Refusal> {
    if actor.trim().is_empty() || reason.trim().is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            ApiError {
                error: "invalid".into(),
                message: "actor and reason must not be empty".into(),
                current: None,
                changed_by: None,
            },
        ));
    }
    Ok(())
}

/// Runs a mutating request at most once per Idempotency-Key.
/// Same key and body: the first response again. Same key, other body: 422.
/// Same key while the first is still being answered: 409.
async fn idempotent(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    act: impl FnOnce(&Shared, &[u8]) -> Result<Action, Refusal>,
) -> Response {
    let Some(key) = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "idempotency_key_missing",
            "mutating requests need an Idempotency-Key header (1 to 200 characters)",
        );
    };
    // The body is compared as parsed JSON, so whitespace and key order do not matter.
    let fingerprint = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => format!("{route} {v}"),
        Err(_) => format!("{route} {}", String::from_utf8_lossy(body)),
    };
    {
        let mut keys = shared.idempotency.lock().unwrap_or_else(|e| e.into_inner());
        match keys.get(key) {
            Some(Idem::InFlight { fingerprint: f }) if *f == fingerprint => {
                return error(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_flight",
                    "the first request with this Idempotency-Key is still being handled; read the action later",
                );
            }
            Some(Idem::Done {
                fingerprint: f,
                status,
                body,
            }) if *f == fingerprint => {
                let mut r = (*status, Json(body.clone())).into_response();
                r.headers_mut()
                    .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
                return r;
            }
            Some(_) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request",
                );
            }
            None => {
                keys.insert(
                    key.to_owned(),
                    Idem::InFlight {
                        fingerprint: fingerprint.clone(),
                    },
                );
            }
        }
    }
    let (status, body) = match act(shared, body) {
        Ok(action) => (
            StatusCode::ACCEPTED,
            serde_json::to_value(action).unwrap_or_default(),
        ),
        Err((status, e)) => (status, serde_json::to_value(e).unwrap_or_default()),
    };
    // The answer is recorded when this guard drops: after the delay, or when the client
    // goes away during it (the world has acted either way, so the key must not stay in
    // flight forever).
    let answered = Answered {
        shared,
        key: key.to_owned(),
        done: Some(Idem::Done {
            fingerprint,
            status,
            body: body.clone(),
        }),
    };
    if shared.faults.action_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(shared.faults.action_delay_ms)).await;
    }
    drop(answered);
    (status, Json(body)).into_response()
}

struct Answered<'a> {
    shared: &'a Shared,
    key: String,
    done: Option<Idem>,
}

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            self.shared
                .idempotency
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(std::mem::take(&mut self.key), done);
        }
    }
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
            let served =
                crate::server::serve_stream(socket, shared.journal.clone(), q.after, conn, faults)
                    .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, conn, "stream ended");
            }
        })
}
