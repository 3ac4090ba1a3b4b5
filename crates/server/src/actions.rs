//! The action API of protocol v1 (PROTOCOL.md, docs/protocol/openapi.json), shared by the
//! simulator and the gateway: reading services and deployments, rollback, the rollout
//! levers (pause, resume, abort, promote) and failover with an idempotency key and a
//! precondition, and reading an action back. What acts is a
//! [`Backend`] (the simulated fleet; the gateway's hooks); where first answers are kept is
//! [`Answers`] (memory for the simulator; the gateway's durable journal).
//!
//! At most once per key: the first request with a key runs in a task of its own, so a
//! client that goes away mid-request does not leave its key half-answered; a retry with
//! the same key and body gets the first answer again (`Idempotent-Replayed: true`), the
//! same key with another body is 422, and the same key while the first is still being
//! answered is 409 `idempotency_key_in_flight`. A 5xx answer says nothing was done (every
//! backend keeps to that) and is not kept: a retry with its key is tried again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use firebreak_protocol::actions::*;

/// A refusal: the status and the protocol's error body.
pub type Refusal = (StatusCode, ApiError);

/// An error body with no current state.
pub fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Refusal {
    (
        status,
        ApiError {
            error: code.into(),
            message: message.into(),
            current: None,
            changed_by: None,
        },
    )
}

pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let (status, body) = refusal(status, code, message);
    (status, Json(body)).into_response()
}

/// Who is asking, as the server's authentication named them (the gateway's token name).
/// Put on the request by the server's auth layer; absent on the simulator.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// What every mutating request carries besides its body.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The authenticated caller, when the server names them.
    pub caller: Option<String>,
    pub idempotency_key: String,
    /// The request as the idempotency rules compare it (route and parsed body).
    pub fingerprint: String,
}

/// Where the fleet is changed: the simulated world, or a real cluster's tooling.
pub trait Backend: Send + Sync + 'static {
    fn services(&self) -> impl Future<Output = Result<Vec<Service>, Refusal>> + Send;
    fn deployments(&self) -> impl Future<Output = Result<Vec<Deployment>, Refusal>> + Send;
    fn deployment(&self, name: &str) -> impl Future<Output = Result<Deployment, Refusal>> + Send;
    fn action(&self, id: &str) -> impl Future<Output = Result<Action, Refusal>> + Send;
    /// Accepts a rollback (the action as accepted) or refuses it (404, 400, 409 with the
    /// current state when the precondition does not hold).
    fn rollback(
        &self,
        deployment: &str,
        request: RollbackRequest,
        intent: &Intent,
    ) -> impl Future<Output = Result<Action, Refusal>> + Send;
    fn failover(
        &self,
        service: &str,
        request: FailoverRequest,
        intent: &Intent,
    ) -> impl Future<Output = Result<Action, Refusal>> + Send;
    /// Accepts a lever on the rollout under way (pause, resume, abort, promote), or
    /// refuses it: 409 with the current state when no rollout to `expected_revision` is
    /// under way or the lever does not apply to it now; 501 where the backend cannot pull
    /// that lever.
    fn rollout(
        &self,
        deployment: &str,
        lever: RolloutLever,
        request: RolloutRequest,
        intent: &Intent,
    ) -> impl Future<Output = Result<Action, Refusal>> + Send;
    /// Creates a silence; the action comes back succeeded (with the silence's id in its
    /// output) or refused.
    fn silence(
        &self,
        request: SilenceRequest,
        intent: &Intent,
    ) -> impl Future<Output = Result<Action, Refusal>> + Send;
    /// Which alerts firing now a silence with these matchers would mute, under the same
    /// rules as [`Backend::silence`]; creates nothing.
    fn silence_preview(
        &self,
        scope: SilenceScope,
    ) -> impl Future<Output = Result<SilencePreview, Refusal>> + Send;
}

/// A request's first answer, replayed to every retry with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What the request said (route and parsed body): a retry must say the same.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// Where first answers are kept.
pub trait Answers: Send + Sync + 'static {
    fn get(&self, key: &str) -> impl Future<Output = anyhow::Result<Option<Answer>>> + Send;
    /// Keeps the first answer under a key; a second one under the same key is ignored.
    fn put(&self, key: &str, answer: &Answer) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// First answers in memory: the simulator's (its world lives as long as the process).
#[derive(Default)]
pub struct MemoryAnswers(Mutex<HashMap<String, Answer>>);

impl Answers for MemoryAnswers {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Answer>> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned())
    }
    async fn put(&self, key: &str, answer: &Answer) -> anyhow::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| answer.clone());
        Ok(())
    }
}

/// The action API over a backend and an answer store.
pub struct ActionApi<B, A> {
    pub backend: Arc<B>,
    answers: Arc<A>,
    /// Keys whose first request is being answered, with its fingerprint; and answers that
    /// could not be stored durably, kept here so the key still answers once.
    memory: Mutex<Memory>,
    /// A fault for tests: hold each first answer this long before sending it.
    pub answer_delay: Duration,
}

#[derive(Default)]
struct Memory {
    in_flight: HashMap<String, String>,
    unstored: HashMap<String, Answer>,
}

/// Every route of the action API, as (method, path): checked against the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/services"),
    ("get", "/v1/deployments"),
    ("get", "/v1/deployments/{name}"),
    ("post", "/v1/deployments/{name}/rollback"),
    ("post", "/v1/deployments/{name}/pause"),
    ("post", "/v1/deployments/{name}/resume"),
    ("post", "/v1/deployments/{name}/abort"),
    ("post", "/v1/deployments/{name}/promote"),
    ("post", "/v1/services/{name}/failover"),
    ("get", "/v1/actions/{id}"),
    ("post", "/v1/alerts/silence"),
    ("post", "/v1/alerts/silence/preview"),
];

impl<B: Backend, A: Answers> ActionApi<B, A> {
    pub fn new(backend: Arc<B>, answers: Arc<A>, answer_delay: Duration) -> Arc<Self> {
        Arc::new(ActionApi {
            backend,
            answers,
            memory: Mutex::new(Memory::default()),
            answer_delay,
        })
    }

    /// The routes, for the server to merge into its router behind its own authentication.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/services", get(list_services::<B, A>))
            .route("/v1/deployments", get(list_deployments::<B, A>))
            .route("/v1/deployments/{name}", get(get_deployment::<B, A>))
            .route("/v1/deployments/{name}/rollback", post(rollback::<B, A>))
            .route("/v1/deployments/{name}/pause", post(pause::<B, A>))
            .route("/v1/deployments/{name}/resume", post(resume::<B, A>))
            .route("/v1/deployments/{name}/abort", post(abort::<B, A>))
            .route("/v1/deployments/{name}/promote", post(promote::<B, A>))
            .route("/v1/services/{name}/failover", post(failover::<B, A>))
            .route("/v1/actions/{id}", get(get_action::<B, A>))
            .route("/v1/alerts/silence", post(silence::<B, A>))
            .route("/v1/alerts/silence/preview", post(silence_preview::<B, A>))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self.clone())
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn answer<T: serde::Serialize>(result: Result<T, Refusal>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err((status, e)) => (status, Json(e)).into_response(),
    }
}

async fn list_services<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
) -> Response {
    answer(
        api.backend
            .services()
            .await
            .map(|services| ServiceList { services }),
    )
}

async fn list_deployments<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
) -> Response {
    answer(
        api.backend
            .deployments()
            .await
            .map(|deployments| DeploymentList { deployments }),
    )
}

async fn get_deployment<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
    Path(name): Path<String>,
) -> Response {
    answer(api.backend.deployment(&name).await)
}

async fn get_action<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
    Path(id): Path<String>,
) -> Response {
    answer(api.backend.action(&id).await)
}

enum Op {
    Rollback(String),
    Rollout(String, RolloutLever),
    Failover(String),
    Silence,
}

/// One handler per rollout lever (axum routes name a function each).
macro_rules! lever_handler {
    ($name:ident, $lever:expr) => {
        async fn $name<B: Backend, A: Answers>(
            State(api): State<Arc<ActionApi<B, A>>>,
            Path(name): Path<String>,
            caller: Option<Extension<Caller>>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> Response {
            mutate(api, caller, &headers, Op::Rollout(name, $lever), body).await
        }
    };
}

lever_handler!(pause, RolloutLever::Pause);
lever_handler!(resume, RolloutLever::Resume);
lever_handler!(abort, RolloutLever::Abort);
lever_handler!(promote, RolloutLever::Promote);

async fn rollback<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    mutate(api, caller, &headers, Op::Rollback(name), body).await
}

async fn failover<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    mutate(api, caller, &headers, Op::Failover(name), body).await
}

async fn silence<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    mutate(api, caller, &headers, Op::Silence, body).await
}

/// Read-only: no idempotency key, nothing recorded.
async fn silence_preview<B: Backend, A: Answers>(
    State(api): State<Arc<ActionApi<B, A>>>,
    body: axum::body::Bytes,
) -> Response {
    let scope: Result<SilenceScope, Refusal> = serde_json::from_slice(&body).map_err(|e| {
        refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("request body: {e}"),
        )
    });
    let result = match scope {
        Ok(scope) => match check_matchers(&scope.matchers) {
            Ok(()) => api.backend.silence_preview(scope).await,
            Err(r) => Err(r),
        },
        Err(r) => Err(r),
    };
    answer(result)
}

fn replay(a: &Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::ACCEPTED);
    let mut r = (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        a.body.clone(),
    )
        .into_response();
    r.headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    r
}

/// Runs a mutating request at most once per Idempotency-Key.
async fn mutate<B: Backend, A: Answers>(
    api: Arc<ActionApi<B, A>>,
    caller: Option<Extension<Caller>>,
    headers: &HeaderMap,
    op: Op,
    body: axum::body::Bytes,
) -> Response {
    let Some(key) = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(str::to_owned)
    else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "idempotency_key_missing",
            "mutating requests need an Idempotency-Key header (1 to 200 characters)",
        );
    };
    let route = match &op {
        Op::Rollback(name) => format!("rollback {name}"),
        Op::Rollout(name, lever) => format!("{} {name}", lever.as_str()),
        Op::Failover(name) => format!("failover {name}"),
        Op::Silence => "silence".to_owned(),
    };
    let fingerprint = fingerprint(&route, &body);
    let same = |a: &Answer| {
        if a.fingerprint == fingerprint {
            replay(a)
        } else {
            error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request",
            )
        }
    };
    let stored = match api.answers.get(&key).await {
        Ok(a) => a,
        Err(e) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("cannot read the idempotency record: {e}"),
            )
        }
    };
    if let Some(a) = stored {
        return same(&a);
    }
    {
        let mut memory = api.memory();
        if let Some(a) = memory.unstored.get(&key) {
            return same(a);
        }
        match memory.in_flight.get(&key) {
            Some(f) if *f == fingerprint => {
                return error_response(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_flight",
                    "the first request with this Idempotency-Key is still being handled; read the action later",
                )
            }
            Some(_) => {
                return error_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request",
                )
            }
            None => {
                memory.in_flight.insert(key.clone(), fingerprint.clone());
            }
        }
    }
    let intent = Intent {
        caller: caller.map(|Extension(Caller(c))| c),
        idempotency_key: key.clone(),
        fingerprint: fingerprint.clone(),
    };
    // In a task of its own: the client going away must not stop it half-way.
    let task = tokio::spawn(async move {
        let result = act(&api, op, &body, &intent).await;
        let (status, body) = match result {
            Ok(action) => (
                StatusCode::ACCEPTED,
                serde_json::to_string(&action).unwrap_or_default(),
            ),
            Err((status, e)) => (status, serde_json::to_string(&e).unwrap_or_default()),
        };
        if !api.answer_delay.is_zero() {
            tokio::time::sleep(api.answer_delay).await;
        }
        let first = Answer {
            fingerprint: intent.fingerprint.clone(),
            status: status.as_u16(),
            body: body.clone(),
        };
        // A 5xx answer means nothing was done (a backend promises it): it is not kept, so
        // a retry with the key is tried again rather than told the same failure forever.
        let stored = if status.is_server_error() {
            Ok(())
        } else {
            api.answers.put(&intent.idempotency_key, &first).await
        };
        let mut memory = api.memory();
        memory.in_flight.remove(&intent.idempotency_key);
        if let Err(e) = stored {
            // Still at most once: this process answers the key from memory.
            tracing::error!(error = %e, "cannot store an idempotency record; kept in memory");
            memory
                .unstored
                .insert(intent.idempotency_key.clone(), first);
        }
        (status, body)
    });
    match task.await {
        Ok((status, body)) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request stopped: {e}"),
        ),
    }
}

/// What an Idempotency-Key is bound to: the route and a digest of the body, compared as
/// parsed JSON so whitespace and key order do not matter. A digest, not the body: the
/// journal keeps every first answer's fingerprint, and a stranger's 300 KiB request must
/// not become 300 KiB on the gateway's disk.
fn fingerprint(route: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let canonical = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.to_string().into_bytes(),
        Err(_) => body.to_vec(),
    };
    let digest = Sha256::digest(&canonical);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{route} sha256:{hex}")
}

/// The longest `actor` a request may name (a person's name).
pub const MAX_ACTOR_CHARS: usize = 100;
/// The longest `reason` (or a silence's comment) a request may give.
pub const MAX_REASON_CHARS: usize = 2_000;
/// At most this many matchers in one silence, each name and value this long at most.
pub const MAX_MATCHERS: usize = 20;
pub const MAX_MATCHER_CHARS: usize = 200;
/// A mutating request's body: the largest valid one is a few KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A text field within its bound, or a 400 that names the field: every action's text is
/// published to every console's timeline, so its size is the server's to bound.
fn bounded(field: &str, text: &str, max: usize) -> Result<(), Refusal> {
    let n = text.chars().count();
    if n > max {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("{field} is {n} characters; at most {max} are taken"),
        ));
    }
    Ok(())
}

/// A silence's matchers within their bounds (a silence and its preview alike).
fn check_matchers(matchers: &[Matcher]) -> Result<(), Refusal> {
    if matchers.is_empty() {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            "a silence needs at least one matcher",
        ));
    }
    if matchers.len() > MAX_MATCHERS {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!(
                "matchers: {} given; a silence takes at most {MAX_MATCHERS}",
                matchers.len()
            ),
        ));
    }
    for m in matchers {
        bounded("matchers[].name", &m.name, MAX_MATCHER_CHARS)?;
        bounded("matchers[].value", &m.value, MAX_MATCHER_CHARS)?;
    }
    Ok(())
}

async fn act<B: Backend, A: Answers>(
    api: &ActionApi<B, A>,
    op: Op,
    body: &[u8],
    intent: &Intent,
) -> Result<Action, Refusal> {
    fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
        serde_json::from_slice(body).map_err(|e| {
            refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("request body: {e}"),
            )
        })
    }
    fn require_text(actor: &str, reason: &str) -> Result<(), Refusal> {
        if actor.trim().is_empty() || reason.trim().is_empty() {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "invalid",
                "actor and reason (a silence's comment) must not be empty",
            ));
        }
        bounded("actor", actor, MAX_ACTOR_CHARS)?;
        bounded("reason", reason, MAX_REASON_CHARS)
    }
    match op {
        Op::Rollback(name) => {
            let req: RollbackRequest = parse(body)?;
            require_text(&req.actor, &req.reason)?;
            api.backend.rollback(&name, req, intent).await
        }
        Op::Rollout(name, lever) => {
            let req: RolloutRequest = parse(body)?;
            require_text(&req.actor, &req.reason)?;
            if req.full && lever != RolloutLever::Promote {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "`full` is for promote only",
                ));
            }
            api.backend.rollout(&name, lever, req, intent).await
        }
        Op::Failover(name) => {
            let req: FailoverRequest = parse(body)?;
            require_text(&req.actor, &req.reason)?;
            bounded("to_region", &req.to_region, MAX_ACTOR_CHARS)?;
            bounded(
                "expected_primary_region",
                &req.expected_primary_region,
                MAX_ACTOR_CHARS,
            )?;
            api.backend.failover(&name, req, intent).await
        }
        Op::Silence => {
            let req: SilenceRequest = parse(body)?;
            require_text(&req.actor, &req.comment)?;
            check_matchers(&req.matchers)?;
            if !SILENCE_DURATION_S.contains(&req.duration_s) {
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("a silence lasts 60 s to 7 days, not {} s", req.duration_s),
                ));
            }
            api.backend.silence(req, intent).await
        }
    }
}
