//! A fake Kubernetes API server, small and strict, for the gateway's watchers: what a
//! client sees of the real wire format for list and watch.
//!
//! It models: `GET` lists of Deployments, ReplicaSets, Pods, Events, HTTPRoutes, Istio
//! VirtualServices and Argo Rollouts (namespaced)
//! and Nodes (cluster), `GET` of one namespaced object, JSON Patches (`test` failing with
//! 422, a spec change raising `generation`) of an object or of its `status` subresource
//! (only the status kept),
//! with `metadata.resourceVersion`; watches (`?watch=true&resourceVersion=N`) as
//! newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` when asked),
//! from the history after N; `410 Gone` as the API server sends it (an `ERROR` event with
//! a `Status` of code 410, reason `Expired`) when N is older than the compacted history;
//! label selectors `k=v,…`, `k` (exists) and `k in (a,b)`, the field selectors `metadata.name=…` and
//! `type=…` (Events); the
//! watch's `timeoutSeconds`. A rising resourceVersion stamped on every object it stores.
//!
//! It does not model: authentication (any bearer token passes), other kinds, paging
//! (`limit`/`continue`: one page), `resourceVersionMatch`, watch-list (`sendInitialEvents`),
//! merge or apply patches, admission, controllers (the test script plays the Deployment
//! controller: new ReplicaSets, status and `observedGeneration`), or protobuf.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::broadcast;

#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: &'static str,
    namespace: Option<String>,
    ty: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    /// (kind, namespace, name) → object.
    objects: BTreeMap<(&'static str, Option<String>, String), Value>,
    history: Vec<Change>,
    /// Watches resuming from below this resourceVersion are too old (410).
    compacted_to: u64,
}

#[derive(Clone)]
pub struct FakeKube {
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
    /// Bumped to end every open watch (the client then resumes from its resourceVersion).
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    /// Lists served (a watcher's first step, and its step after a 410).
    lists: Arc<std::sync::atomic::AtomicU64>,
    /// The change, and how many patches to let through before it.
    meddle: Arc<Mutex<Option<(u32, Meddle)>>>,
    /// Kinds whose lists and watches are refused (403), as RBAC missing a grant does.
    refused: Arc<Mutex<std::collections::BTreeSet<&'static str>>>,
    pub addr: std::net::SocketAddr,
}

pub const DEPLOYMENTS: &str = "deployments";
pub const REPLICA_SETS: &str = "replicasets";
pub const NODES: &str = "nodes";
pub const HTTP_ROUTES: &str = "httproutes";
pub const PODS: &str = "pods";
pub const EVENTS: &str = "events";
pub const ROLLOUTS: &str = "rollouts";
pub const VIRTUAL_SERVICES: &str = "virtualservices";

/// A change the fake makes to an object just before it applies the next patch to it: a
/// colleague's edit landing between the gateway's read and its write.
type Meddle = Box<dyn FnOnce(&mut Value) + Send>;

impl FakeKube {
    pub async fn start() -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeKube {
            inner: Arc::default(),
            changes: broadcast::channel(4096).0,
            generation: Arc::new(tokio::sync::watch::channel(0).0),
            lists: Arc::default(),
            meddle: Arc::default(),
            refused: Arc::default(),
            addr,
        };
        let app = Router::new()
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{kind}",
                get(namespaced),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{kind}/{name}",
                get(get_one).patch(patch_one),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{kind}/{name}/status",
                axum::routing::patch(patch_status),
            )
            .route("/api/v1/{kind}", get(cluster))
            .route("/api/v1/namespaces/{ns}/{kind}", get(core_namespaced))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    /// A kubeconfig file pointing at this server.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
                 clusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
                 users:\n- name: gateway\n  user:\n    token: fake-token\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: gateway\n",
                self.addr
            ),
        )
        .unwrap();
        path
    }

    /// Stores `object` (added or modified) under a new resourceVersion and tells watchers.
    pub fn apply(&self, kind: &'static str, mut object: Value) {
        let change = {
            let mut inner = self.inner.lock().unwrap();
            inner.rv += 1;
            let rv = inner.rv;
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
            let name = object["metadata"]["name"].as_str().unwrap().to_owned();
            let key = (kind, namespace.clone(), name);
            let ty = if inner.objects.contains_key(&key) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            inner.objects.insert(key, object.clone());
            let change = Change {
                rv,
                kind,
                namespace,
                ty,
                object,
            };
            inner.history.push(change.clone());
            change
        };
        let _ = self.changes.send(change);
    }

    /// Deletes the object and tells watchers (`DELETED`, with the object as it was).
    pub fn delete(&self, kind: &'static str, namespace: &str, name: &str) {
        let change = {
            let mut inner = self.inner.lock().unwrap();
            let key = (kind, Some(namespace.to_owned()), name.to_owned());
            let Some(mut object) = inner.objects.remove(&key) else {
                return;
            };
            inner.rv += 1;
            let rv = inner.rv;
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            let change = Change {
                rv,
                kind,
                namespace: Some(namespace.to_owned()),
                ty: "DELETED",
                object,
            };
            inner.history.push(change.clone());
            change
        };
        let _ = self.changes.send(change);
    }

    /// Forgets the history so far, as the cluster moves on (its resourceVersion goes up
    /// by one, as other objects' changes would make it): a watch resuming from any
    /// resourceVersion handed out before gets 410 Gone, whatever bookmark it last had; a
    /// list made after it resumes normally.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.rv += 1;
        inner.compacted_to = inner.rv;
        inner.history.clear();
    }

    /// The object as stored now.
    pub fn object(&self, kind: &'static str, namespace: &str, name: &str) -> Value {
        self.inner.lock().unwrap().objects[&(kind, Some(namespace.to_owned()), name.to_owned())]
            .clone()
    }

    /// Makes `change` to the next patched object just before the patch applies.
    pub fn meddle_before_next_patch(&self, change: impl FnOnce(&mut Value) + Send + 'static) {
        self.meddle_before_patch(1, change);
    }

    /// Makes `change` to the `nth` patched object from now (1: the next) just before that
    /// patch applies.
    pub fn meddle_before_patch(&self, nth: u32, change: impl FnOnce(&mut Value) + Send + 'static) {
        *self.meddle.lock().unwrap() = Some((nth, Box::new(change)));
    }

    /// How many lists it has served.
    pub fn lists(&self) -> u64 {
        self.lists.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Refuses lists and watches of `kind` (403 Forbidden) from now on, or with `false`
    /// serves them again. Open watches go on until they end ([`FakeKube::drop_watches`]).
    pub fn refuse(&self, kind: &'static str, refused: bool) {
        let mut set = self.refused.lock().unwrap();
        if refused {
            set.insert(kind);
        } else {
            set.remove(kind);
        }
    }

    /// Ends every open watch, as an API server restart or a load balancer would.
    pub fn drop_watches(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    watch: Option<String>,
    resource_version: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    allow_watch_bookmarks: Option<String>,
    timeout_seconds: Option<u64>,
}

fn kind_of(kind: &str) -> Option<(&'static str, &'static str, &'static str)> {
    match kind {
        "httproutes" => Some((HTTP_ROUTES, "gateway.networking.k8s.io/v1", "HTTPRoute")),
        "deployments" => Some((DEPLOYMENTS, "apps/v1", "Deployment")),
        "replicasets" => Some((REPLICA_SETS, "apps/v1", "ReplicaSet")),
        "nodes" => Some((NODES, "v1", "Node")),
        "pods" => Some((PODS, "v1", "Pod")),
        "events" => Some((EVENTS, "v1", "Event")),
        "rollouts" => Some((ROLLOUTS, "argoproj.io/v1alpha1", "Rollout")),
        "virtualservices" => Some((
            VIRTUAL_SERVICES,
            "networking.istio.io/v1beta1",
            "VirtualService",
        )),
        _ => None,
    }
}

async fn namespaced(
    State(fake): State<FakeKube>,
    Path((_group, _version, ns, kind)): Path<(String, String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    serve(fake, &kind, Some(ns), q).await
}

/// A `Status` as the API server sends it for a failure.
fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    });
    (
        axum::http::StatusCode::from_u16(code).unwrap(),
        axum::Json(body),
    )
        .into_response()
}

async fn get_one(
    State(fake): State<FakeKube>,
    Path((_group, _version, ns, kind, name)): Path<(String, String, String, String, String)>,
) -> Response {
    let Some((kind, _, _)) = kind_of(&kind) else {
        return status(404, "NotFound", format!("no resource {kind}"));
    };
    let inner = fake.inner.lock().unwrap();
    match inner.objects.get(&(kind, Some(ns), name.clone())) {
        Some(o) => axum::Json(o.clone()).into_response(),
        None => status(404, "NotFound", format!("{kind} \"{name}\" not found")),
    }
}

/// A JSON Patch (`application/json-patch+json` only), applied in full or not at all: a
/// failed `test` operation is 422, as the API server answers since Kubernetes 1.12. A
/// change to `spec` raises `metadata.generation`, as the API server does.
async fn patch_one(
    State(fake): State<FakeKube>,
    Path((_group, _version, ns, kind_path, name)): Path<(String, String, String, String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    patch(fake, ns, kind_path, name, headers, body, false)
}

/// A JSON Patch of the `status` subresource: the patch sees the whole object (a `test`
/// of `metadata` works), but only its `status` is kept, and `generation` stays.
async fn patch_status(
    State(fake): State<FakeKube>,
    Path((_group, _version, ns, kind_path, name)): Path<(String, String, String, String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    patch(fake, ns, kind_path, name, headers, body, true)
}

fn patch(
    fake: FakeKube,
    ns: String,
    kind_path: String,
    name: String,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
    status_only: bool,
) -> Response {
    let Some((kind, _, _)) = kind_of(&kind_path) else {
        return status(404, "NotFound", format!("no resource {kind_path}"));
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/json-patch+json" {
        return status(
            415,
            "UnsupportedMediaType",
            format!("the fake takes JSON Patch only, not {content_type}"),
        );
    }
    let patch: json_patch::Patch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return status(400, "BadRequest", format!("not a JSON Patch: {e}")),
    };
    let meddle = {
        let mut slot = fake.meddle.lock().unwrap();
        match slot.take() {
            Some((1, change)) => Some(change),
            Some((n, change)) => {
                *slot = Some((n - 1, change));
                None
            }
            None => None,
        }
    };
    if let Some(change) = meddle {
        let mut object = fake.object(kind, &ns, &name);
        change(&mut object);
        fake.apply(kind, object);
    }
    let key = (kind, Some(ns.clone()), name.clone());
    let Some(mut object) = fake.inner.lock().unwrap().objects.get(&key).cloned() else {
        return status(404, "NotFound", format!("{kind} \"{name}\" not found"));
    };
    let before = object.clone();
    if let Err(e) = json_patch::patch(&mut object, &patch) {
        return status(
            422,
            "Invalid",
            format!("the server rejected our request due to an error in our request: {e}"),
        );
    }
    if status_only {
        let status = object["status"].take();
        object = before;
        object["status"] = status;
    } else if object["spec"] != before["spec"] {
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object["metadata"]["generation"] = json!(generation);
    }
    fake.apply(kind, object);
    axum::Json(fake.object(kind, &ns, &name)).into_response()
}

async fn core_namespaced(
    State(fake): State<FakeKube>,
    Path((ns, kind)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Response {
    serve(fake, &kind, Some(ns), q).await
}

async fn cluster(
    State(fake): State<FakeKube>,
    Path(kind): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    serve(fake, &kind, None, q).await
}

/// Whether `object` passes the label and field selectors.
fn selected(object: &Value, labels: Option<&str>, fields: Option<&str>) -> bool {
    let label = |k: &str| object["metadata"]["labels"][k].as_str().map(str::to_owned);
    if let Some(sel) = labels.filter(|s| !s.is_empty()) {
        if let Some((key, set)) = sel.split_once(" in ") {
            let values: Vec<&str> = set
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect();
            if !label(key.trim()).is_some_and(|v| values.contains(&v.as_str())) {
                return false;
            }
        } else {
            for part in sel.split(',') {
                match part.split_once('=') {
                    Some((k, v)) => {
                        if label(k.trim()).as_deref() != Some(v.trim()) {
                            return false;
                        }
                    }
                    // A bare key: the label exists, whatever its value.
                    None => {
                        if label(part.trim()).is_none() {
                            return false;
                        }
                    }
                }
            }
        }
    }
    if let Some(sel) = fields.filter(|s| !s.is_empty()) {
        for part in sel.split(',') {
            let (k, v) = part
                .split_once('=')
                .expect("the fake reads k=v field selectors");
            let value = match k {
                "metadata.name" => object["metadata"]["name"].as_str(),
                "type" => object["type"].as_str(),
                other => {
                    panic!("the fake knows the field selectors metadata.name and type, not {other}")
                }
            };
            if value != Some(v) {
                return false;
            }
        }
    }
    true
}

async fn serve(fake: FakeKube, kind: &str, ns: Option<String>, q: ListQuery) -> Response {
    let Some((kind, api_version, kind_name)) = kind_of(kind) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such resource").into_response();
    };
    if fake.refused.lock().unwrap().contains(kind) {
        return status(
            403,
            "Forbidden",
            format!("{kind} is forbidden: the gateway's service account cannot list or watch it"),
        );
    }
    let labels = q.label_selector.clone();
    let fields = q.field_selector.clone();
    let matches = {
        let ns = ns.clone();
        move |c_kind: &str, c_ns: &Option<String>, object: &Value| {
            c_kind == kind
                && (ns.is_none() || *c_ns == ns)
                && selected(object, labels.as_deref(), fields.as_deref())
        }
    };
    if q.watch.as_deref() != Some("true") && q.watch.as_deref() != Some("1") {
        fake.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inner = fake.inner.lock().unwrap();
        let items: Vec<Value> = inner
            .objects
            .iter()
            .filter(|((k, n, _), o)| matches(k, n, o))
            .map(|(_, o)| o.clone())
            .collect();
        let body = json!({
            "apiVersion": api_version,
            "kind": format!("{kind_name}List"),
            "metadata": { "resourceVersion": inner.rv.to_string() },
            "items": items,
        });
        return axum::Json(body).into_response();
    }

    // A watch: the history after the asked resourceVersion, then what comes.
    let from: u64 = q
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Subscribed before the history is read: nothing falls between the two.
    let mut live = fake.changes.subscribe();
    let (backlog, expired, head) = {
        let inner = fake.inner.lock().unwrap();
        let expired = from < inner.compacted_to;
        let backlog: Vec<Change> = inner
            .history
            .iter()
            .filter(|c| c.rv > from && matches(c.kind, &c.namespace, &c.object))
            .cloned()
            .collect();
        (backlog, expired, inner.rv)
    };
    let mut ended = fake.generation.subscribe();
    ended.mark_unchanged();
    let bookmarks = q.allow_watch_bookmarks.as_deref() == Some("true");
    let timeout = Duration::from_secs(q.timeout_seconds.unwrap_or(300).min(300));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let line = |v: Value| format!("{v}\n");
    tokio::spawn(async move {
        if expired {
            let status = json!({
                "type": "ERROR",
                "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("too old resource version: {from} ({head})"),
                    "reason": "Expired", "code": 410
                }
            });
            let _ = tx.send(Ok(line(status))).await;
            return;
        }
        let mut sent = from;
        // What this watch has seen of the history: a bookmark never claims more.
        let mut seen = head.max(from);
        for c in backlog {
            sent = c.rv;
            if tx
                .send(Ok(line(json!({ "type": c.ty, "object": c.object }))))
                .await
                .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                c = live.recv() => match c {
                    Ok(c) if c.rv > sent && matches(c.kind, &c.namespace, &c.object) => {
                        sent = c.rv;
                        seen = seen.max(c.rv);
                        if tx.send(Ok(line(json!({ "type": c.ty, "object": c.object })))).await.is_err() {
                            return;
                        }
                    }
                    Ok(c) => seen = seen.max(c.rv),
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let rv = seen;
                    let mark = json!({
                        "type": "BOOKMARK",
                        "object": { "apiVersion": api_version, "kind": kind_name, "metadata": { "resourceVersion": rv.to_string() } }
                    });
                    if tx.send(Ok(line(mark))).await.is_err() {
                        return;
                    }
                }
                _ = ended.changed() => return,
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(stream))
        .unwrap()
}
