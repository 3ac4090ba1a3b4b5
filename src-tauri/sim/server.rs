//! The simulator's two interfaces on one axum server: the event stream (WebSocket) and
//! the action API (HTTP JSON), both behind the bearer token. Redirects are never sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;

use super::faults::{malformed_frame, Faults, MalformedFrame};
use super::journal::{Journal, Read};
use super::rng::Rng;
use super::world::World;
use super::Publisher;
use crate::protocol::actions::*;
use crate::protocol::events::Control;
use crate::protocol::{EVENTS_PATH, EVENTS_PROTOCOL, HEARTBEAT_INTERVAL_MS};

/// Frames sent per flush: large enough to amortise syscalls, small enough to stay fair.
const SEND_BATCH: usize = 1024;
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
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
            if let Err(e) = stream(socket, shared, q.after, conn).await {
                tracing::debug!(error = %e, conn, "stream ended");
            }
        })
}

async fn stream(
    socket: WebSocket,
    shared: Arc<Shared>,
    after: Option<u64>,
    conn: u64,
) -> Result<(), axum::Error> {
    let (mut sink, mut incoming) = socket.split();
    let journal = shared.journal.clone();
    let (head, first) = journal.bounds();
    let hello = Control::Hello {
        protocol: EVENTS_PROTOCOL.into(),
        head,
        first,
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        stream_id: Some(journal.stream_id().to_owned()),
    };
    sink.send(control(&hello)).await?;

    let mut cursor = after.unwrap_or(head);
    let mut head_rx = journal.subscribe();
    // A heartbeat goes out every interval, busy or idle, so a client always knows the head.
    let every = Duration::from_millis(HEARTBEAT_INTERVAL_MS);
    let mut next_heartbeat = tokio::time::Instant::now() + every;
    let mut rng = Rng::new(shared.seed ^ (conn.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    let faults = shared.faults.clone();
    let mut sent_events: u64 = 0;
    let mut held: Option<axum::extract::ws::Utf8Bytes> = None;

    loop {
        match journal.read_after(cursor, SEND_BATCH) {
            Read::Gap { first_available } => {
                sink.send(control(&Control::Gap {
                    after: cursor,
                    first_available,
                }))
                .await?;
                cursor = first_available - 1;
            }
            Read::Frames { frames, last } => {
                for frame in frames {
                    if rng.chance(faults.malformed) {
                        let n = shared.malformed_sent.fetch_add(1, Ordering::Relaxed);
                        let bad = match malformed_frame(n) {
                            MalformedFrame::Text(t) => Message::Text(t.into()),
                            MalformedFrame::Binary(b) => Message::Binary(b.into()),
                        };
                        sink.feed(bad).await?;
                    }
                    if let Some(h) = held.take() {
                        // A reordered frame goes out right after the one that overtook it.
                        sink.feed(Message::Text(frame.clone())).await?;
                        sink.feed(Message::Text(h)).await?;
                    } else if rng.chance(faults.reorder) {
                        held = Some(frame.clone());
                    } else {
                        sink.feed(Message::Text(frame.clone())).await?;
                    }
                    if rng.chance(faults.duplicate) {
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sent_events += 1;
                    if faults
                        .drop_every
                        .is_some_and(|n| sent_events.is_multiple_of(n))
                    {
                        // Abrupt: no close frame, as a dead link would behave.
                        let _ = sink.flush().await;
                        return Ok(());
                    }
                }
                if held.is_none() {
                    sink.flush().await?;
                }
                cursor = last;
                if tokio::time::Instant::now() >= next_heartbeat {
                    sink.send(heartbeat(&journal)).await?;
                    next_heartbeat = tokio::time::Instant::now() + every;
                }
            }
            Read::Nothing => {
                if let Some(h) = held.take() {
                    sink.send(Message::Text(h)).await?;
                }
                tokio::select! {
                    changed = head_rx.changed() => {
                        if changed.is_err() { return Ok(()); }
                    }
                    _ = tokio::time::sleep_until(next_heartbeat) => {
                        sink.send(heartbeat(&journal)).await?;
                        next_heartbeat = tokio::time::Instant::now() + every;
                    }
                    msg = incoming.next() => match msg {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
    }
}

fn heartbeat(journal: &Journal) -> Message {
    control(&Control::Heartbeat {
        head: journal.head(),
        time: chrono::Utc::now(),
    })
}

fn control(c: &Control) -> Message {
    Message::Text(serde_json::to_string(c).unwrap_or_default().into())
}
