//! Event stream types: the CloudEvent envelope, its typed payloads and control frames.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One event in CloudEvents 1.0 JSON structured mode, with the `sequence` extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    /// A UUIDv7: unique per source, and time-ordered.
    pub id: String,
    /// `/clusters/<cluster name>`.
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub time: DateTime<Utc>,
    /// What the event is about: `service/<name>`, `node/<id>`, `region/<name>`, `action/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub datacontenttype: String,
    /// Per-stream, strictly increasing, starting at 1.
    pub sequence: u64,
    pub data: serde_json::Value,
}

/// Frames that are not events: they carry `control` instead of `specversion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum Control {
    /// First frame of every connection.
    Hello {
        protocol: String,
        /// The newest sequence the server has (0 when none yet).
        head: u64,
        /// The oldest sequence it still retains (head + 1 when none).
        first: u64,
        heartbeat_interval_ms: u64,
        /// The stream's identity: it changes when the server's sequence starts over (a
        /// new journal, a restarted simulator). Optional: servers before it send none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_id: Option<String>,
    },
    /// The client asked to start after a sequence the server no longer retains:
    /// sequences `after + 1 ..= first_available - 1` are lost to this client.
    Gap { after: u64, first_available: u64 },
    /// Sent when the stream is otherwise quiet, at the documented interval.
    Heartbeat { head: u64, time: DateTime<Utc> },
}

/// The largest sequence (and head, and gap bound) a client accepts: the store keeps
/// sequences as SQLite integers (i64), and a client adds 1 to them without overflow.
pub const MAX_SEQUENCE: u64 = i64::MAX as u64;

impl Control {
    /// Refuses numbers the client could not do arithmetic on safely.
    fn check_numbers(&self) -> Result<(), FrameError> {
        let numbers: &[u64] = match self {
            Control::Hello { head, first, .. } => &[*head, *first],
            Control::Gap {
                after,
                first_available,
            } => &[*after, *first_available],
            Control::Heartbeat { head, .. } => &[*head],
        };
        match numbers.iter().find(|n| **n > MAX_SEQUENCE) {
            Some(n) => Err(FrameError::Envelope(format!(
                "{n} is above the largest sequence, {MAX_SEQUENCE}"
            ))),
            None => Ok(()),
        }
    }
}

/// The `sequence` of a frame that could not be decoded as an event, when it can still be
/// read (so the position is known to be taken, and the stream can move past it).
pub fn sequence_of(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Probe {
        sequence: Option<u64>,
        control: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_str(text).ok()?;
    if probe.control.is_some() {
        return None;
    }
    probe.sequence.filter(|s| (1..=MAX_SEQUENCE).contains(s))
}

/// A frame as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event(Box<CloudEvent>),
    Control(Control),
}

/// Why a frame was refused; the client quarantines it with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a CloudEvent: {0}")]
    Envelope(String),
    #[error("unsupported specversion {0:?}")]
    SpecVersion(String),
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("data does not match {ty}: {reason}")]
    Data { ty: String, reason: String },
}

/// Decodes one text frame. Never panics: every input is a frame or an error.
///
/// Events, by far the most frequent frames, are parsed straight into `CloudEvent` in one
/// pass; only what fails that is looked at again, to tell control frames from refusals.
pub fn decode(text: &str) -> Result<Frame, FrameError> {
    let event: CloudEvent = match serde_json::from_str(text) {
        Ok(event) => event,
        Err(event_error) => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
            if value.get("control").is_some() {
                let control: Control = serde_json::from_value(value)
                    .map_err(|e| FrameError::Envelope(e.to_string()))?;
                control.check_numbers()?;
                return Ok(Frame::Control(control));
            }
            return Err(FrameError::Envelope(event_error.to_string()));
        }
    };
    if event.sequence == 0 || event.sequence > MAX_SEQUENCE {
        return Err(FrameError::Envelope(format!(
            "sequence {} is outside 1..={MAX_SEQUENCE}",
            event.sequence
        )));
    }
    if event.specversion != "1.0" {
        return Err(FrameError::SpecVersion(event.specversion));
    }
    if event.id.is_empty() || event.source.is_empty() {
        return Err(FrameError::Envelope(
            "id and source must not be empty".into(),
        ));
    }
    let Some(kind) = EventType::parse(&event.ty) else {
        return Err(FrameError::UnknownType(event.ty));
    };
    kind.check_data(&event.data)
        .and_then(|()| counts_add_up(kind, &event.data))
        .map_err(|reason| FrameError::Data {
            ty: event.ty.clone(),
            reason,
        })?;
    Ok(Frame::Event(Box::new(event)))
}

macro_rules! event_types {
    ($($variant:ident => $name:literal, $data:ty;)*) => {
        /// Every event type of protocol v1.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($variant),* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The full CloudEvents `type`, e.g. `dev.firebreak.rollout.started`.
            pub fn name(self) -> &'static str {
                match self { $(EventType::$variant => concat!("dev.firebreak.", $name)),* }
            }

            pub fn parse(ty: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|t| t.name() == ty)
            }

            /// Checks that `data` has this type's shape.
            pub fn check_data(self, data: &serde_json::Value) -> Result<(), String> {
                match self {
                    $(EventType::$variant => <$data as serde::Deserialize>::deserialize(data)
                        .map(|_| ())
                        .map_err(|e| e.to_string())),*
                }
            }

            /// The JSON Schema of this type's `data`.
            pub fn data_schema(self) -> schemars::Schema {
                match self { $(EventType::$variant => schemars::schema_for!($data)),* }
            }
        }
    };
}

event_types! {
    RolloutStarted => "rollout.started", RolloutStarted;
    RolloutWaveProgressed => "rollout.wave_progressed", RolloutWaveProgressed;
    RolloutStalled => "rollout.stalled", RolloutStalled;
    RolloutCompleted => "rollout.completed", RolloutCompleted;
    RolloutFailed => "rollout.failed", RolloutFailed;
    ModelVersionChanged => "model.version_changed", ModelVersionChanged;
    NodeUp => "node.up", NodeUp;
    NodeDown => "node.down", NodeDown;
    NodeDegraded => "node.degraded", NodeDegraded;
    ServiceMetrics => "service.metrics", ServiceMetrics;
    RevisionMetrics => "service.revision_metrics", RevisionMetrics;
    AlertFiring => "alert.firing", AlertFiring;
    AlertResolved => "alert.resolved", AlertResolved;
    RegionStatus => "region.status", RegionStatus;
    ActionAccepted => "action.accepted", ActionEvent;
    ActionRunning => "action.running", ActionEvent;
    ActionSucceeded => "action.succeeded", ActionEvent;
    ActionFailed => "action.failed", ActionEvent;
    SyntheticLoad => "synthetic.load", SyntheticLoad;
    SourceDegraded => "source.degraded", SourceDegraded;
    PodFailing => "pod.failing", PodFailing;
    ClusterWarning => "cluster.warning", ClusterWarning;
    GpuXid => "gpu.xid", GpuXid;
    GpuMissing => "gpu.missing", GpuMissing;
    KvCachePressure => "service.kv_cache_pressure", KvCachePressure;
    ServiceDiscovered => "service.discovered", ServiceDiscovered;
    ServiceRetired => "service.retired", ServiceRetired;
}

/// A GPU reported a new XID error (NVIDIA's driver error codes): sent when the code a GPU
/// reports changes, never for the level it keeps reporting (DCGM's XID figure holds the
/// last code, it does not count or reset). What the code means and what NVIDIA recommends
/// is [`crate::xid::describe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuXid {
    pub node: String,
    pub pool: String,
    pub region: String,
    /// The service the node's pool serves.
    pub service: String,
    /// The GPU on the node, as the exporter names it (its index or UUID).
    pub gpu: String,
    pub xid: u32,
}

/// A node reports fewer GPUs than it has (one fell off the bus, or its driver lost it),
/// and again once it reports them all (`seen` equal to `expected`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuMissing {
    pub node: String,
    pub pool: String,
    pub region: String,
    pub service: String,
    /// The GPUs the node had while healthy, and those it reports now.
    pub expected: u32,
    pub seen: u32,
}

/// A model server runs short of KV cache in a region: the cache nearly full, requests
/// preempted (evicted to make room) and the queue growing, together; sent when it starts
/// (`pressure`) and when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvCachePressure {
    pub service: String,
    pub region: String,
    /// The KV cache's use, 0 to 1 (vLLM's `vllm:kv_cache_usage_perc`).
    pub kv_cache_usage: f64,
    /// Requests preempted per second.
    pub preemptions_per_s: f64,
    /// Requests waiting.
    pub queue_depth: f64,
    pub pressure: bool,
}

/// A deployment starts rolling a new revision out, wave by wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutStarted {
    pub deployment: String,
    pub service: String,
    pub from_revision: u32,
    pub to_revision: u32,
    pub model_version: String,
    pub waves: u32,
    pub nodes_total: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutWaveProgressed {
    pub deployment: String,
    pub service: String,
    pub to_revision: u32,
    /// The wave just completed, from 1.
    pub wave: u32,
    pub waves: u32,
    pub nodes_updated: u32,
    pub nodes_total: u32,
    /// The share of traffic (percent) the new revision gets at this wave, when the rollout
    /// shifts traffic by weight (an Argo canary's `setWeight` steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_weight: Option<u32>,
}

/// The pipeline stopped making progress; nodes in the stalled wave are drained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutStalled {
    pub deployment: String,
    pub service: String,
    pub to_revision: u32,
    pub wave: u32,
    pub waves: u32,
    pub reason: String,
    pub nodes_draining: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutCompleted {
    pub deployment: String,
    pub service: String,
    pub revision: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutFailed {
    pub deployment: String,
    pub service: String,
    pub to_revision: u32,
    pub reason: String,
}

/// The model a deployment serves changed (by a rollout or a rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelVersionChanged {
    pub deployment: String,
    pub service: String,
    pub revision: u32,
    pub from_model: String,
    pub to_model: String,
    pub cause: ChangeCause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeCause {
    Rollout,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeUp {
    pub node: String,
    pub pool: String,
    pub region: String,
    /// The service the node's pool serves.
    pub service: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDown {
    pub node: String,
    pub pool: String,
    pub region: String,
    /// The service the node's pool serves.
    pub service: String,
    pub reason: NodeFault,
    pub pool_nodes_down: u32,
    pub pool_nodes_total: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeDegraded {
    pub node: String,
    pub pool: String,
    pub region: String,
    /// The service the node's pool serves.
    pub service: String,
    pub reason: NodeFault,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeFault {
    GpuError,
    Oom,
    Thermal,
    Unreachable,
}

/// A service's health in one region over the last window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceMetrics {
    pub service: String,
    pub region: String,
    pub window_s: u32,
    #[schemars(range(min = 0))]
    pub latency_p50_ms: f64,
    #[schemars(range(min = 0))]
    pub latency_p99_ms: f64,
    /// Failed requests over all requests, 0 to 1.
    #[schemars(range(min = 0, max = 1))]
    pub error_rate: f64,
    #[schemars(range(min = 0))]
    pub requests_per_s: f64,
    /// Requests waiting to be served. Left out by a cluster whose serving stack does not
    /// count them (the gateway says which figures a service's stack cannot give, once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub queue_depth: Option<f64>,
    /// Mean GPU utilisation of the serving nodes, 0 to 1. Left out where nothing exports
    /// it (a fleet without DCGM, a stack that does not report its GPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub gpu_utilization: Option<f64>,
    /// The revision most nodes in this region serve.
    pub revision: u32,
    /// Whether this region is the service's primary (serving its traffic).
    pub primary: bool,
    /// The team that owns the service, as the cluster labels it (optional; the Fleet board
    /// filters by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub team: Option<String>,
}

/// A service's figures in one region over the last window, split by the revision its
/// nodes serve: sent during a rollout, beside `service.metrics`, for each region where
/// the service served requests. Counts, not only rates, so that a console can weigh the
/// evidence of a canary verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionMetrics {
    pub service: String,
    pub region: String,
    pub window_s: u32,
    /// Whether this region is the service's primary (serving its traffic).
    pub primary: bool,
    /// The revisions serving in the region: the rollout's new one (`canary`) and the one
    /// it started from (`stable`).
    #[schemars(length(min = 1, max = 8))]
    pub revisions: Vec<RevisionFigures>,
}

/// What the shape cannot say of figures by revision: no more failed requests than
/// requests, and each role once.
fn counts_add_up(kind: EventType, data: &serde_json::Value) -> Result<(), String> {
    if kind != EventType::RevisionMetrics {
        return Ok(());
    }
    let m: RevisionMetrics = serde_json::from_value(data.clone()).map_err(|e| e.to_string())?;
    for r in &m.revisions {
        if r.errors > r.requests {
            return Err(format!(
                "revision {} has {} failed requests of {}: more failed than served",
                r.revision, r.errors, r.requests
            ));
        }
    }
    for role in [RevisionRole::Canary, RevisionRole::Stable] {
        if m.revisions.iter().filter(|r| r.role == role).count() > 1 {
            return Err(format!("two revisions are both {role:?}").to_lowercase());
        }
    }
    Ok(())
}

/// One revision's share of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionFigures {
    pub revision: u32,
    pub role: RevisionRole,
    /// The nodes serving it in the region.
    pub nodes: u32,
    /// Requests answered over the window, and how many of them failed.
    pub requests: u64,
    pub errors: u64,
    #[schemars(range(min = 0))]
    pub latency_p50_ms: f64,
    #[schemars(range(min = 0))]
    pub latency_p99_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RevisionRole {
    /// The revision a rollout is bringing in.
    Canary,
    /// The revision the rollout started from.
    Stable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    Critical,
    Major,
    Minor,
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertFiring {
    /// Stable name of the rule, e.g. `HighErrorRate`.
    pub alert: String,
    pub service: String,
    pub region: String,
    pub severity: AlertSeverity,
    pub summary: String,
    /// The figure the rule saw, and the threshold it crossed, where the alert gives them
    /// (an Alertmanager alert whose rule has no `value`/`threshold` annotations does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertResolved {
    pub alert: String,
    pub service: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegionHealth {
    Healthy,
    Degraded,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegionStatus {
    pub region: String,
    pub status: RegionHealth,
    pub nodes_up: u32,
    pub nodes_total: u32,
    /// Services whose primary region this is.
    pub primary_for: Vec<String>,
}

/// The lifecycle of an action (`action.accepted` … `action.failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionEvent {
    pub action_id: String,
    pub kind: super::actions::ActionKind,
    pub service: String,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A monitoring source the cluster's events come from cannot say what it should (a
/// Prometheus query fails or returns nothing), or can again (`degraded: false`). Sent by
/// the gateway once when it starts (again if the reason changes) and once when it ends,
/// never per poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceDegraded {
    /// Which source: `prometheus`, `alertmanager`, `kubernetes`.
    pub source: String,
    pub service: String,
    pub region: String,
    /// What cannot be had, e.g. the metric `latency_p99_ms`.
    pub what: String,
    pub reason: String,
    /// false when it works again.
    pub degraded: bool,
}

/// The cluster found a service it was not told of (the gateway's discovery: a label's
/// values on a serving stack's metrics) and watches it from now on. Sent once when it
/// appears (again only after it was retired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDiscovered {
    #[schemars(length(min = 1, max = 128))]
    pub service: String,
    /// The regions it was found in, the first serving its traffic.
    #[schemars(length(min = 1, max = 64))]
    pub regions: Vec<String>,
    /// Its serving stack (`vllm`, `triton`, …).
    pub stack: String,
    /// How it was found, in words: `prometheus: model_name on vllm:num_requests_waiting`.
    pub source: String,
}

/// A discovered service is no longer found, and no longer watched: a console shows it no
/// more (its incidents and history stay). Sent once; a service found again is
/// `service.discovered` again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRetired {
    #[schemars(length(min = 1, max = 128))]
    pub service: String,
    pub reason: String,
}

/// A pod serving the service keeps failing: a container was killed for running out of
/// memory, or it crash-loops. Sent by the gateway from the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodFailing {
    pub pod: String,
    pub service: String,
    /// The node it runs on ("" before it is scheduled).
    pub node: String,
    pub container: String,
    pub reason: PodFault,
    /// The container's restarts so far.
    pub restarts: u32,
    /// What Kubernetes says: the last termination's reason, exit code and message.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PodFault {
    /// The container was OOMKilled.
    OomKilled,
    /// The container is in CrashLoopBackOff.
    CrashLoop,
}

/// The cluster warns about one of the service's objects (a Kubernetes `Warning` event:
/// `FailedScheduling`, `Unhealthy`, `FailedMount`, …). Sent by the gateway, once when it
/// first appears and again as it repeats 10 and 100 times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterWarning {
    pub service: String,
    /// The object it is about, `Kind/name`, e.g. `Pod/llm-assistant-7d9f-x2`.
    pub object: String,
    pub reason: String,
    pub message: String,
    /// How many times the cluster has seen it.
    pub count: u32,
}

/// High-volume filler for benchmarks (`firebreak sim --rate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticLoad {
    pub n: u64,
    pub service: String,
    pub payload: String,
}

/// The published JSON Schema of one event type: the CloudEvents envelope with this
/// type's `data`. `docs/protocol/schemas/` holds these, one file per type.
pub fn event_schema(ty: EventType) -> serde_json::Value {
    let mut data = serde_json::to_value(ty.data_schema()).unwrap_or_default();
    // Hoist the data schema's definitions to the root, where its `$ref`s point.
    let defs = data
        .as_object_mut()
        .and_then(|o| {
            o.remove("$schema");
            o.remove("title");
            o.remove("$defs")
        })
        .unwrap_or_else(|| serde_json::json!({}));
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://firebreak.dev/protocol/v1/{}.json", ty.name()),
        "title": ty.name(),
        "description": "A Firebreak cluster event (protocol v1): a CloudEvents 1.0 event in JSON structured mode with the integer `sequence` extension.",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "sequence", "data"],
        "additionalProperties": false,
        "properties": {
            "specversion": { "const": "1.0" },
            "id": { "type": "string", "minLength": 1 },
            "source": { "type": "string", "minLength": 1, "format": "uri-reference" },
            "type": { "const": ty.name() },
            "time": { "type": "string", "format": "date-time" },
            "subject": { "type": "string", "minLength": 1 },
            "datacontenttype": { "const": "application/json" },
            "sequence": { "type": "integer", "minimum": 1 },
            "data": data
        },
        "$defs": defs
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_name_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(*t), "{}", t.name());
            assert!(t.name().starts_with(crate::TYPE_PREFIX));
        }
    }

    #[test]
    fn decode_sorts_frames_and_refusals() {
        let hb = r#"{"control":"heartbeat","head":7,"time":"2026-11-27T03:00:00Z"}"#;
        assert!(matches!(
            decode(hb),
            Ok(Frame::Control(Control::Heartbeat { head: 7, .. }))
        ));
        assert!(matches!(decode("{nope"), Err(FrameError::Json(_))));
        assert!(matches!(
            decode(r#"{"id":"x"}"#),
            Err(FrameError::Envelope(_))
        ));
        let unknown = r#"{"specversion":"1.0","id":"a","source":"/clusters/x","type":"com.other.thing",
            "time":"2026-11-27T03:00:00Z","datacontenttype":"application/json","sequence":1,"data":{}}"#;
        assert!(matches!(decode(unknown), Err(FrameError::UnknownType(_))));
        let bad_data = unknown.replace("com.other.thing", "dev.firebreak.node.up");
        assert!(
            matches!(decode(&bad_data), Err(FrameError::Data { .. })),
            "node.up without a node"
        );
    }
}
