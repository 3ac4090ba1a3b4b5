//! The gateway's configuration: one TOML file, validated as a whole before anything starts,
//! every mistake reported with the file, the line and the key (`firebreak gateway --check`
//! runs exactly this, for a team's CI).
//!
//! ```toml
//! cluster = "prod-east"                 # the name consoles record the cluster under
//! listen = "0.0.0.0:7443"               # plain ws/http only on a loopback address
//!
//! [tls]                                 # wss/https: needed unless `listen` is loopback
//! cert = "/etc/firebreak/gateway.crt"
//! key = "/etc/firebreak/gateway.key"
//!
//! [[tokens]]                            # who may connect; the name is the actor on actions
//! name = "oncall"
//! file = "/etc/firebreak/tokens/oncall" # or env = "FIREBREAK_TOKEN_ONCALL"; never the token here
//!
//! [prometheus]
//! url = "http://127.0.0.1:9090"
//! interval_s = 5
//! warm_up_s = 120                       # a query that returns nothing counts after this long
//! batch = true                          # a preset's services: one query per figure for them all
//!
//! [alertmanager]
//! url = "http://127.0.0.1:9093"
//! webhook_token = { env = "FIREBREAK_ALERTMANAGER_TOKEN" }
//! service_label = "service"
//! region_label = "region"
//! severity_label = "severity"
//! cluster_label = "cluster"             # optional: every silence also matches cluster="<cluster>"
//! allow_pattern_silences = false        # regex (=~) and negated (!=) silence matchers: off
//!
//! [[services]]
//! name = "llm-assistant"
//! regions = ["us-east", "eu-west"]
//! stack = "vllm"                        # figures from a preset (vllm, triton, tgi, sglang, kserve)
//! [services.preset]                     # optional: what the preset assumes, when it differs
//! service_label = "model_name"          # the label naming the service on the stack's metrics
//! service_value = "meta-llama/Llama-3.1-8B-Instruct"   # its value (default: the name)
//! region_label = "region"               # the label naming the region
//! revision_label = "pod_template_hash"  # the label naming a revision (figures by revision, with Kubernetes objects)
//! revision_value = "pod_template_hash"  # what it carries: number | pod_template_hash | model_version
//! match = { namespace = "serving" }     # more labels its series carry, where the name is not enough
//! gpu = "dcgm"                          # or "none": GPU use left out
//! [services.queries]                    # PromQL; `$region` is replaced by each region (wins over the preset)
//! latency_p99_ms = 'histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{region="$region"}[1m]))) * 1000'
//! [services.revisions]                  # figures by revision while a rollout runs (the canary verdict)
//! value = "pod_template_hash"           # what `$revision` stands for: number | pod_template_hash | model_version
//! requests_total = 'sum(vllm:request_success_total{region="$region",pod_template_hash="$revision"})'
//! errors_total = '…'                    # counters: the gateway counts what they add between polls
//! latency_p50_ms = '…'                  # and each revision's p50 and p99 now
//! latency_p99_ms = '…'
//! ```

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::presets::{GpuSource, PresetUse, Stack};

pub use crate::presets::METRICS;

/// One figure's PromQL: written in the file, or from a preset as alternatives tried in
/// order (a metric its stack renamed between releases, the current name first).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub alternatives: Vec<String>,
    /// The preset it came from; none when written in the file.
    pub preset: Option<Stack>,
}

impl Query {
    pub fn written(q: impl Into<String>) -> Query {
        Query {
            alternatives: vec![q.into()],
            preset: None,
        }
    }
}

/// A mistake in the configuration: where, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {key}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    /// The key as written in the file, dotted (`services[1].regions`); empty for the file.
    pub key: String,
    pub message: String,
}

/// The gateway's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cluster: String,
    pub listen: SocketAddr,
    pub tls: Option<Tls>,
    pub tokens: Vec<TokenSource>,
    pub prometheus: Option<Prometheus>,
    pub alertmanager: Option<Alertmanager>,
    pub kubernetes: Option<Kubernetes>,
    pub services: Vec<Service>,
    /// Services found instead of listed, when configured.
    pub discovery: Option<Discovery>,
}

/// `[discovery]`: services found by the values of a label on a serving stack's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// How often the sources are read.
    pub interval_s: u32,
    /// `[[discovery.prometheus]]`: each a preset whose `service_label` values become
    /// services (each value its service's name and `service_value`).
    pub prometheus: Vec<PresetUse>,
    /// `[discovery.kubernetes]`: workloads carrying a label, when configured.
    pub kubernetes: Option<KubeDiscovery>,
}

/// Deployments and Argo Rollouts that carry `label` in `namespaces` are services, named by
/// its value. On the workload, `firebreak.dev/stack` (label or annotation) names its
/// serving stack's preset, `firebreak.dev/pool` its node pool, `firebreak.dev/regions` (an
/// annotation, comma-separated) its regions, `firebreak.dev/model` the value of the
/// stack's service label (the service's name unless set).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeDiscovery {
    pub namespaces: Vec<String>,
    pub label: String,
    /// The regions of a workload whose annotation names none.
    pub regions: Vec<String>,
    /// The preset's labels, for the stacks the workloads name.
    pub region_label: String,
    pub gpu: GpuSource,
}

/// How the gateway reaches the cluster's Kubernetes API, and how it reads nodes and
/// model versions there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubernetes {
    /// A kubeconfig file; none: the pod's service account (in the cluster).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context; none: its current one.
    pub context: Option<String>,
    /// The node label that names a node's region.
    pub region_label: String,
    /// The node label that names a node's pool.
    pub pool_label: String,
    /// Where a revision's model version is read from.
    pub model_version: ModelVersionSource,
}

/// Where a pod template says which model it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelVersionSource {
    Annotation(String),
    Label(String),
    /// The image tag of the named container.
    ImageTag(String),
}

/// A service's objects in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceObjects {
    pub namespace: String,
    /// A `Deployment`, or an Argo `Rollout`.
    pub kind: WorkloadKind,
    /// The workload's name (the service's deployment name unless the file says otherwise).
    pub name: String,
    /// Label selector of its pods, `key=value` pairs joined by commas.
    pub pods: Vec<(String, String)>,
    /// The pool (the `pool_label` value) whose nodes serve it.
    pub node_pool: Option<String>,
    /// The route (HTTPRoute or Istio VirtualService) that splits its traffic between
    /// regions, for failover.
    pub route: Option<Route>,
}

impl ServiceObjects {
    /// The pod selector as the API takes it: `app=llm-assistant,tier=serving`.
    pub fn pod_selector(&self) -> String {
        self.pods
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    Rollout,
}

/// A route that splits traffic between regions, and which of its backends serves which
/// region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    /// Region → its backend, as the route's kind identifies one.
    pub backends: BTreeMap<String, Backend>,
}

/// One backend of a route, identified as its kind identifies it. Fields left out of the
/// configuration (a port, an Istio subset) match any value; the check at load refuses two
/// regions whose backends one reference could both match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Ref(BackendRef),
    Destination(Destination),
}

/// A Gateway API `backendRef`: group ("" is core), kind (`Service` by default), the
/// namespace (the route's own when the reference names none), name, and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub port: Option<u16>,
}

/// An Istio destination: `host` exactly as the VirtualService writes it, `subset`, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
}

/// Two optional fields one value could satisfy both of.
fn loose<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    a.is_none() || b.is_none() || a == b
}

impl Backend {
    /// Whether a reference that matches `other` could match this backend too.
    pub fn overlaps(&self, other: &Backend) -> bool {
        match (self, other) {
            (Backend::Ref(a), Backend::Ref(b)) => {
                (&a.group, &a.kind, &a.namespace, &a.name)
                    == (&b.group, &b.kind, &b.namespace, &b.name)
                    && loose(&a.port, &b.port)
            }
            (Backend::Destination(a), Backend::Destination(b)) => {
                a.host == b.host && loose(&a.subset, &b.subset) && loose(&a.port, &b.port)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Backend {
    /// `Service serving-us-east/chat port 8000`, `chat.svc.cluster.local subset v2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = match self {
            Backend::Ref(r) => {
                if !r.group.is_empty() {
                    write!(f, "{}/", r.group)?;
                }
                write!(f, "{} {}/{}", r.kind, r.namespace, r.name)?;
                r.port
            }
            Backend::Destination(d) => {
                write!(f, "{}", d.host)?;
                if let Some(s) = &d.subset {
                    write!(f, " subset {s}")?;
                }
                d.port
            }
        };
        match port {
            Some(p) => write!(f, " port {p}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `gateway.networking.k8s.io/v1` HTTPRoute: `spec.rules[].backendRefs[]`.
    HttpRoute,
    /// `networking.istio.io/v1beta1` VirtualService: `spec.http[].route[]`.
    VirtualService,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::HttpRoute => "HTTPRoute",
            RouteKind::VirtualService => "VirtualService",
        }
    }
}

pub use firebreak_server::secret::Secret;
pub use firebreak_server::tls::Tls;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// Recorded as the actor of what this token's holder does.
    pub name: String,
    pub secret: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prometheus {
    pub url: String,
    pub interval_s: u32,
    /// How long a query may return nothing before it counts as degraded: a Prometheus
    /// that has just started (or a gateway that has) has no `rate()` over a minute yet.
    pub warm_up_s: u32,
    /// Whether a preset's services are asked together (one query per figure across them
    /// all, split by label) rather than one query per figure, region and service.
    pub batch: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alertmanager {
    pub url: String,
    pub webhook_token: Secret,
    pub service_label: String,
    pub region_label: String,
    pub severity_label: String,
    /// The label that names the cluster in an Alertmanager shared by several: every
    /// silence the gateway creates carries it, exactly, with this gateway's cluster.
    pub cluster_label: Option<String>,
    /// Whether a silence may use regular-expression or negated matchers (off: one token
    /// could otherwise silence `alertname=~".+"` for everyone who shares Alertmanager).
    pub allow_pattern_silences: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// The deployment rollbacks name (the service's name unless the file says otherwise).
    pub deployment: String,
    pub regions: Vec<String>,
    /// How this service is rolled back and failed over, and read, by the team's own
    /// tooling (the gateway's action hooks; see `hooks`).
    pub hooks: Hooks,
    /// Its objects in Kubernetes, when the gateway watches the cluster's API.
    pub kubernetes: Option<ServiceObjects>,
    /// Metric name (one of [`METRICS`]) → PromQL, `$region` standing for each region.
    pub queries: BTreeMap<String, Query>,
    /// The serving stack whose preset gave queries, when it names one.
    pub preset: Option<PresetUse>,
    /// Figures its stack cannot give, each with why: left out of `service.metrics`.
    pub left_out: Vec<(&'static str, String)>,
    /// The team that owns it, carried on its metrics (the console's Fleet board filters
    /// by it).
    pub team: Option<String>,
    /// Its figures by revision while a rollout runs, when configured.
    pub revisions: Option<RevisionQueries>,
    /// Its objectives, for `firebreak gateway slo-rules`, when configured.
    pub slo: Option<Slo>,
    /// Its GPU and model-server signals (XIDs, GPUs lost, KV-cache pressure), when
    /// configured.
    pub gpu: Option<GpuQueries>,
}

/// `[services.gpu]`: PromQL with `$region`. `xid` gives one series per GPU (DCGM's
/// `DCGM_FI_DEV_XID_ERRORS`), its node and GPU in `node_label` and `gpu_label`; the
/// GPUs a node reports are counted from the same series. The KV cache's use and the
/// preemptions counter give the pressure signal, with the service's `queue_depth` query.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuQueries {
    pub xid: Option<String>,
    pub node_label: String,
    pub gpu_label: String,
    pub kv_cache_usage: Option<Query>,
    pub preemptions_total: Option<String>,
}

/// A service's objectives and the series they are measured on.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The share of requests that must succeed (0.995).
    pub availability: f64,
    /// A series selector of the requests counter, and of the failed requests one.
    pub requests: String,
    pub errors: String,
    /// The latency objective: a query giving the p99 in ms, the threshold, and the share
    /// of time slices that must be at or under it.
    pub latency: Option<(String, f64, f64)>,
}

/// What `$revision` stands for in a service's revision queries: the label value its
/// revision's pods' metrics carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionValue {
    /// The revision's number (`deployment.kubernetes.io/revision`).
    Number,
    /// The ReplicaSet's pod template hash (the `pod-template-hash` label Kubernetes puts
    /// on its pods, `rollouts-pod-template-hash` for an Argo Rollout).
    PodTemplateHash,
    /// The model version the gateway reads for the revision (`[kubernetes] model_version`),
    /// as a serving stack's `model_name` label carries it.
    ModelVersion,
}

/// A service's figures by revision: PromQL with `$region` and `$revision`. The totals
/// are counters; the gateway counts what each adds between two polls.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionQueries {
    pub value: RevisionValue,
    pub requests_total: String,
    pub errors_total: String,
    pub latency_p50_ms: String,
    pub latency_p99_ms: String,
}

/// A service's action hooks. Without `status` no action runs: preconditions are checked
/// against what it reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hooks {
    pub status: Option<Hook>,
    pub rollback: Option<Hook>,
    pub failover: Option<Hook>,
    /// How long a hook may run before it is stopped and counted as failed.
    pub timeout: std::time::Duration,
    /// The gateway's environment variables a command hook also gets (`env = ["KUBECONFIG"]`):
    /// hooks start from an empty environment (PATH, LANG and their `FIREBREAK_*` values),
    /// so the gateway's own tokens never reach a deploy script unless named here.
    pub pass_env: Vec<String>,
}

/// One hook: a command run without a shell, or an HTTP POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// The program (an absolute path) and its arguments, `{placeholder}`s filled in.
    Command(Vec<String>),
    /// A POST of the request as JSON; the token, if any, as `Authorization: Bearer`.
    Http { url: String, token: Option<Secret> },
}

/// What a hook's arguments (and URL) may name; each is also in its environment as
/// `FIREBREAK_<NAME>`.
pub const HOOK_PLACEHOLDERS: &[&str] = &[
    "service",
    "deployment",
    "kind",
    "action_id",
    "from",
    "to",
    "actor",
    "requested_by",
    "reason",
    "cluster",
];

/// The placeholders whose values a person types (through a console): never a program,
/// an option or a path.
pub const FREE_TEXT_PLACEHOLDERS: &[&str] = &["reason", "requested_by"];

const DEFAULT_HOOK_TIMEOUT_S: u64 = 300;

// What the file says, before it is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: Spanned<String>,
    listen: Spanned<String>,
    tls: Option<RawTls>,
    #[serde(default)]
    tokens: Vec<Spanned<RawToken>>,
    prometheus: Option<RawPrometheus>,
    alertmanager: Option<RawAlertmanager>,
    kubernetes: Option<Spanned<RawKubernetes>>,
    #[serde(default)]
    services: Vec<Spanned<RawService>>,
    discovery: Option<Spanned<RawDiscovery>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<PathBuf>,
    key: Spanned<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    file: Option<Spanned<PathBuf>>,
    env: Option<Spanned<String>>,
    /// Present only to refuse it with a reason.
    token: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    file: Option<Spanned<PathBuf>>,
    env: Option<Spanned<String>>,
    /// Present only to refuse it with a reason.
    token: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    url: Spanned<String>,
    interval_s: Option<Spanned<i64>>,
    warm_up_s: Option<Spanned<i64>>,
    batch: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    url: Spanned<String>,
    webhook_token: Spanned<RawSecret>,
    service_label: Option<Spanned<String>>,
    region_label: Option<Spanned<String>>,
    severity_label: Option<Spanned<String>>,
    cluster_label: Option<Spanned<String>>,
    #[serde(default)]
    allow_pattern_silences: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    deployment: Option<Spanned<String>>,
    regions: Spanned<Vec<String>>,
    hooks: Option<RawHooks>,
    kubernetes: Option<Spanned<RawServiceObjects>>,
    #[serde(default)]
    queries: BTreeMap<String, Spanned<String>>,
    stack: Option<Spanned<String>>,
    preset: Option<Spanned<RawPreset>>,
    team: Option<Spanned<String>>,
    revisions: Option<Spanned<RawRevisions>>,
    slo: Option<Spanned<RawSlo>>,
    gpu: Option<Spanned<RawGpu>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    interval_s: Option<Spanned<u32>>,
    #[serde(default)]
    prometheus: Vec<Spanned<RawFound>>,
    kubernetes: Option<Spanned<RawKubeDiscovery>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubeDiscovery {
    namespaces: Spanned<Vec<String>>,
    label: Option<Spanned<String>>,
    regions: Option<Spanned<Vec<String>>>,
    region_label: Option<Spanned<String>>,
    gpu: Option<Spanned<String>>,
}

/// `[[discovery.prometheus]]`: a stack and what its preset assumes, but no one service.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFound {
    stack: Spanned<String>,
    service_label: Option<Spanned<String>>,
    region_label: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    matching: BTreeMap<String, Spanned<String>>,
    gpu: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    service_label: Option<Spanned<String>>,
    service_value: Option<Spanned<String>>,
    region_label: Option<Spanned<String>>,
    revision_label: Option<Spanned<String>>,
    revision_value: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    matching: BTreeMap<String, Spanned<String>>,
    gpu: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpu {
    xid: Option<Spanned<String>>,
    node_label: Option<Spanned<String>>,
    gpu_label: Option<Spanned<String>>,
    kv_cache_usage: Option<Spanned<String>>,
    preemptions_total: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    availability: Spanned<f64>,
    requests: Spanned<String>,
    errors: Spanned<String>,
    latency_query: Option<Spanned<String>>,
    latency_p99_ms: Option<Spanned<f64>>,
    latency_target: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevisions {
    value: Option<Spanned<String>>,
    requests_total: Spanned<String>,
    errors_total: Spanned<String>,
    latency_p50_ms: Spanned<String>,
    latency_p99_ms: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    kubeconfig: Option<Spanned<PathBuf>>,
    context: Option<Spanned<String>>,
    region_label: Option<Spanned<String>>,
    pool_label: Option<Spanned<String>>,
    model_version: Option<Spanned<RawModelVersion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModelVersion {
    annotation: Option<String>,
    label: Option<String>,
    image_tag: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceObjects {
    namespace: Spanned<String>,
    kind: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    pods: Spanned<String>,
    node_pool: Option<Spanned<String>>,
    route: Option<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    kind: Option<Spanned<String>>,
    namespace: Spanned<String>,
    name: Spanned<String>,
    backends: Spanned<BTreeMap<String, RawBackend>>,
}

/// A backend as written: a name (HTTPRoute) or host (VirtualService) alone, or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawBackend {
    Name(String),
    Table(RawBackendTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackendTable {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    port: Option<i64>,
    host: Option<String>,
    subset: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    timeout_s: Option<Spanned<i64>>,
    env: Option<Spanned<Vec<String>>>,
    status: Option<Spanned<RawHook>>,
    rollback: Option<Spanned<RawHook>>,
    failover: Option<Spanned<RawHook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    command: Option<Spanned<Vec<String>>>,
    url: Option<Spanned<String>>,
    token: Option<Spanned<RawSecret>>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: 0,
        key: String::new(),
        message: format!("cannot read it: {e}"),
    })?;
    parse(path, &text)
}

/// Checks a configuration's text; `file` names it in errors.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let at = |span: Range<usize>, key: &str, message: String| ConfigError {
        file: file.to_owned(),
        line: line_at(text, span.start),
        key: key.to_owned(),
        message,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at(
            span.clone(),
            &key_at(text, span),
            e.message().trim().to_owned(),
        )
    })?;

    let cluster = raw.cluster.get_ref().trim();
    if cluster.is_empty() || cluster.chars().count() > 64 {
        return Err(at(
            raw.cluster.span(),
            "cluster",
            "the cluster's name is 1 to 64 characters".into(),
        ));
    }
    let listen: SocketAddr = raw.listen.get_ref().parse().map_err(|_| {
        at(
            raw.listen.span(),
            "listen",
            format!(
                "{:?} is not an address and port, like \"0.0.0.0:7443\"",
                raw.listen.get_ref()
            ),
        )
    })?;
    let tls = raw.tls.map(|t| Tls {
        cert: t.cert.into_inner(),
        key: t.key.into_inner(),
    });
    if tls.is_none() && !listen.ip().is_loopback() {
        return Err(at(
            raw.listen.span(),
            "listen",
            format!(
                "{listen} is reachable from the network, so tokens and events need TLS: add a [tls] \
                 section with cert and key, or listen on 127.0.0.1"
            ),
        ));
    }
    let tokens = tokens(&raw.tokens, &at)?;
    let prometheus = raw.prometheus.map(|p| prometheus(&p, &at)).transpose()?;
    let alertmanager = raw
        .alertmanager
        .map(|a| alertmanager(&a, &at))
        .transpose()?;
    let kubernetes = match &raw.kubernetes {
        None => None,
        Some(k) => Some(kubernetes(k, &at)?),
    };
    let mut services = Vec::new();
    let mut seen = HashSet::new();
    for (i, s) in raw.services.iter().enumerate() {
        let key = format!("services[{}]", i + 1);
        let service = service(s.get_ref(), &key, &prometheus, &kubernetes, &at)?;
        if !seen.insert(service.name.clone()) {
            return Err(at(
                s.get_ref().name.span(),
                &format!("{key}.name"),
                format!("two services are called {:?}", service.name),
            ));
        }
        services.push(service);
    }
    let discovery = match &raw.discovery {
        None => None,
        Some(d) => Some(discovery(d, &prometheus, &kubernetes, &at)?),
    };

    Ok(Config {
        cluster: cluster.to_owned(),
        listen,
        tls,
        tokens,
        prometheus,
        alertmanager,
        kubernetes,
        services,
        discovery,
    })
}

/// `[[tokens]]`: at least one, each named (the name is the actor of what its holder
/// does), no two alike.
fn tokens(
    raw: &[Spanned<RawToken>],
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Vec<TokenSource>, ConfigError> {
    let mut tokens = Vec::new();
    let mut names = HashSet::new();
    for (i, t) in raw.iter().enumerate() {
        let key = format!("tokens[{}]", i + 1);
        let name = t.get_ref().name.get_ref().trim();
        if name.is_empty() {
            return Err(at(
                t.get_ref().name.span(),
                &format!("{key}.name"),
                "a token needs a name: it is recorded as the actor of what its holder does".into(),
            ));
        }
        if !names.insert(name.to_owned()) {
            return Err(at(
                t.get_ref().name.span(),
                &format!("{key}.name"),
                format!("two tokens are called {name:?}"),
            ));
        }
        tokens.push(TokenSource {
            name: name.to_owned(),
            secret: secret(
                &RawSecret {
                    file: t.get_ref().file.clone(),
                    env: t.get_ref().env.clone(),
                    token: t.get_ref().token.clone(),
                },
                t.span(),
                &key,
                at,
            )?,
        });
    }
    if tokens.is_empty() {
        return Err(at(
            0..0,
            "tokens",
            "no [[tokens]]: nobody could connect. Add one with a name and a file or env".into(),
        ));
    }
    Ok(tokens)
}

/// `[prometheus]`: its url, how often it is asked, and the warm-up before a query that
/// still answers nothing is said to be broken.
fn prometheus(
    p: &RawPrometheus,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Prometheus, ConfigError> {
    let seconds = |v: &Option<Spanned<i64>>, key: &str, default: u32, min: u32| match v {
        None => Ok(default),
        Some(v) => u32::try_from(*v.get_ref())
            .ok()
            .filter(|s| (min..=3600).contains(s))
            .ok_or_else(|| {
                at(
                    v.span(),
                    key,
                    format!(
                        "{} is not a number of seconds from {min} to 3600",
                        v.get_ref()
                    ),
                )
            }),
    };
    Ok(Prometheus {
        url: http_url(&p.url, "prometheus.url", at)?,
        interval_s: seconds(&p.interval_s, "prometheus.interval_s", 5, 1)?,
        warm_up_s: seconds(&p.warm_up_s, "prometheus.warm_up_s", 120, 0)?,
        batch: p.batch.unwrap_or(true),
    })
}

/// `[alertmanager]`: its url, the webhook's token, and which labels carry the service,
/// region, severity and (optionally) cluster.
fn alertmanager(
    a: &RawAlertmanager,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Alertmanager, ConfigError> {
    let label = |v: &Option<Spanned<String>>, key: &str, default: &str| match v {
        None => Ok(default.to_owned()),
        Some(s) if is_label_name(s.get_ref()) => Ok(s.get_ref().clone()),
        Some(s) => Err(at(
            s.span(),
            key,
            format!("{:?} is not a Prometheus label name", s.get_ref()),
        )),
    };
    Ok(Alertmanager {
        url: http_url(&a.url, "alertmanager.url", at)?,
        webhook_token: secret(
            a.webhook_token.get_ref(),
            a.webhook_token.span(),
            "alertmanager.webhook_token",
            at,
        )?,
        service_label: label(&a.service_label, "alertmanager.service_label", "service")?,
        region_label: label(&a.region_label, "alertmanager.region_label", "region")?,
        severity_label: label(&a.severity_label, "alertmanager.severity_label", "severity")?,
        cluster_label: match &a.cluster_label {
            None => None,
            Some(_) => Some(label(&a.cluster_label, "alertmanager.cluster_label", "")?),
        },
        allow_pattern_silences: a.allow_pattern_silences,
    })
}

/// One `[[services]]` entry (`key` names it in errors): its regions, queries, deployment,
/// hooks, Kubernetes objects and team.
fn service(
    s: &RawService,
    key: &str,
    prometheus: &Option<Prometheus>,
    kubernetes: &Option<Kubernetes>,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Service, ConfigError> {
    let name = s.name.get_ref().trim();
    if name.is_empty() {
        return Err(at(
            s.name.span(),
            &format!("{key}.name"),
            "a service needs a name".into(),
        ));
    }
    let regions: Vec<String> = s
        .regions
        .get_ref()
        .iter()
        .map(|r| r.trim().to_owned())
        .collect();
    if regions.is_empty() || regions.iter().any(String::is_empty) {
        return Err(at(
            s.regions.span(),
            &format!("{key}.regions"),
            "list the service's regions, at least one, none empty".into(),
        ));
    }
    let mut queries = BTreeMap::new();
    for (metric, query) in &s.queries {
        let qkey = format!("{key}.queries.{metric}");
        if !METRICS.contains(&metric.as_str()) {
            return Err(at(
                query.span(),
                &qkey,
                format!("unknown metric {metric:?}; known: {}", METRICS.join(", ")),
            ));
        }
        if query.get_ref().trim().is_empty() {
            return Err(at(query.span(), &qkey, "the query is empty".into()));
        }
        queries.insert(metric.clone(), Query::written(query.get_ref().trim()));
    }
    let deployment = match &s.deployment {
        None => name.to_owned(),
        Some(d) if d.get_ref().trim().is_empty() => {
            return Err(at(
                d.span(),
                &format!("{key}.deployment"),
                "the deployment's name is empty (leave the key out to use the service's name)"
                    .into(),
            ))
        }
        Some(d) => d.get_ref().trim().to_owned(),
    };
    let preset = preset_use(s, key, name, at)?;
    let given = preset.as_ref().map(|p| p.give(&deployment));
    let left_out = match (&preset, &given) {
        (Some(p), Some(given)) => preset_queries(p.stack, given, &mut queries),
        _ => Vec::new(),
    };
    if (!queries.is_empty() || preset.is_some()) && prometheus.is_none() {
        return Err(at(
            s.name.span(),
            &format!("{key}.queries"),
            "queries need a [prometheus] section with its url".into(),
        ));
    }
    let hooks = match &s.hooks {
        None => Hooks::default(),
        Some(h) => hooks(h, &format!("{key}.hooks"), at)?,
    };
    let objects = match &s.kubernetes {
        None => None,
        Some(o) => {
            let okey = format!("{key}.kubernetes");
            if kubernetes.is_none() {
                return Err(at(
                    o.span(),
                    &okey,
                    "a service's Kubernetes objects need a [kubernetes] section".into(),
                ));
            }
            Some(service_objects(o, &okey, &deployment, &regions, at)?)
        }
    };
    let team = match &s.team {
        None => None,
        Some(t) => {
            let team = t.get_ref().trim();
            if team.is_empty() || team.len() > 128 || team.chars().any(char::is_control) {
                return Err(at(
                    t.span(),
                    &format!("{key}.team"),
                    "a team is 1 to 128 characters of text (leave the key out for none)".into(),
                ));
            }
            Some(team.to_owned())
        }
    };
    let revisions = match &s.revisions {
        // The preset's, where the watcher can say which revisions roll out.
        None if objects.is_some() => match &preset {
            Some(p) => Some(preset_revisions(
                p,
                revision_value(
                    s.preset
                        .as_ref()
                        .and_then(|r| r.get_ref().revision_value.as_ref()),
                    &format!("{key}.preset.revision_value"),
                    at,
                )?,
            )),
            None => None,
        },
        None => None,
        Some(r) => {
            let rkey = format!("{key}.revisions");
            let queries = revision_queries(r.get_ref(), &rkey, at)?;
            if prometheus.is_none() || objects.is_none() {
                return Err(at(
                    r.span(),
                    &rkey,
                    "figures by revision need a [prometheus] section and the service's \
                     Kubernetes objects (the rollout's revisions are read from them)"
                        .into(),
                ));
            }
            Some(queries)
        }
    };
    let slo = match &s.slo {
        None => None,
        Some(o) => Some(slo(o.get_ref(), &format!("{key}.slo"), at)?),
    };
    let gpu = match &s.gpu {
        // The preset's GPU and KV-cache signals, where its stack and DCGM give them.
        None => given.and_then(|given| preset_signals(preset.as_ref()?.stack, given)),
        Some(g) => {
            let gkey = format!("{key}.gpu");
            let gq = gpu_queries(g.get_ref(), &gkey, at)?;
            let kv = gq.kv_cache_usage.is_some() || gq.preemptions_total.is_some();
            if prometheus.is_none()
                || (kv
                    && (gq.kv_cache_usage.is_none()
                        || gq.preemptions_total.is_none()
                        || !queries.contains_key("queue_depth")))
            {
                return Err(at(
                    g.span(),
                    &gkey,
                    "GPU signals need a [prometheus] section; KV-cache pressure needs both \
                     kv_cache_usage and preemptions_total, and the service's queue_depth query"
                        .into(),
                ));
            }
            Some(gq)
        }
    };
    Ok(Service {
        name: name.to_owned(),
        deployment,
        regions,
        hooks,
        kubernetes: objects,
        queries,
        preset,
        left_out,
        team,
        revisions,
        slo,
        gpu,
    })
}

/// `[discovery]`: an interval of 10 s to an hour, and presets to find services by (a
/// Prometheus to read them from).
fn discovery(
    raw: &Spanned<RawDiscovery>,
    prometheus: &Option<Prometheus>,
    kubernetes: &Option<Kubernetes>,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Discovery, ConfigError> {
    let d = raw.get_ref();
    let interval_s = match &d.interval_s {
        None => 60,
        Some(i) if (1..=3600).contains(i.get_ref()) => *i.get_ref(),
        Some(i) => {
            return Err(at(
                i.span(),
                "discovery.interval_s",
                "how often services are looked for: 1 to 3600 seconds".into(),
            ))
        }
    };
    if d.prometheus.is_empty() && d.kubernetes.is_none() {
        return Err(at(
            raw.span(),
            "discovery",
            "name what to discover by: [discovery.kubernetes] with the namespaces to look in, \
             or one or more [[discovery.prometheus]] with a stack"
                .into(),
        ));
    }
    let kube = match &d.kubernetes {
        None => None,
        Some(k) => Some(kube_discovery(k, kubernetes, at)?),
    };
    if !d.prometheus.is_empty() && prometheus.is_none() {
        return Err(at(
            raw.span(),
            "discovery.prometheus",
            "discovery by metrics needs a [prometheus] section with its url".into(),
        ));
    }
    let mut found = Vec::new();
    for (i, f) in d.prometheus.iter().enumerate() {
        let key = format!("discovery.prometheus[{}]", i + 1);
        let f = f.get_ref();
        let adjust = RawPreset {
            service_label: f.service_label.clone(),
            service_value: None,
            region_label: f.region_label.clone(),
            revision_label: None,
            revision_value: None,
            matching: f.matching.clone(),
            gpu: f.gpu.clone(),
        };
        // Each value found is its service's name and value; the preset is the template.
        found.push(preset_fields(
            &f.stack,
            &adjust,
            &key,
            &format!("{key}.stack"),
            "",
            at,
        )?);
    }
    Ok(Discovery {
        interval_s,
        prometheus: found,
        kubernetes: kube,
    })
}

/// `[discovery.kubernetes]`: namespaces as Kubernetes names them, a label key, regions.
fn kube_discovery(
    raw: &Spanned<RawKubeDiscovery>,
    kubernetes: &Option<Kubernetes>,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<KubeDiscovery, ConfigError> {
    let key = "discovery.kubernetes";
    let k = raw.get_ref();
    if kubernetes.is_none() {
        return Err(at(
            raw.span(),
            key,
            "discovery in Kubernetes needs a [kubernetes] section (how to reach the API)".into(),
        ));
    }
    let namespaces = k.namespaces.get_ref();
    if namespaces.is_empty() || namespaces.iter().any(|n| !is_dns_label(n)) {
        return Err(at(
            k.namespaces.span(),
            &format!("{key}.namespaces"),
            "the namespaces to look in, at least one, each a Kubernetes namespace name \
             (the gateway's Role grants reading them, not the whole cluster)"
                .into(),
        ));
    }
    let label = match &k.label {
        None => "firebreak.dev/service".to_owned(),
        Some(l) if is_k8s_label_key(l.get_ref()) => l.get_ref().clone(),
        Some(l) => {
            return Err(at(
                l.span(),
                &format!("{key}.label"),
                format!("{:?} is not a Kubernetes label key", l.get_ref()),
            ))
        }
    };
    let regions = match &k.regions {
        None => Vec::new(),
        Some(r) if r.get_ref().iter().all(|x| !x.trim().is_empty()) => {
            r.get_ref().iter().map(|x| x.trim().to_owned()).collect()
        }
        Some(r) => {
            return Err(at(
                r.span(),
                &format!("{key}.regions"),
                "regions are names, none empty".into(),
            ))
        }
    };
    // The preset adjustments every discovered workload's stack shares.
    let adjust = RawPreset {
        service_label: None,
        service_value: None,
        region_label: k.region_label.clone(),
        revision_label: None,
        revision_value: None,
        matching: BTreeMap::new(),
        gpu: k.gpu.clone(),
    };
    let template = preset_fields(
        &Spanned::new(0..0, "vllm".to_owned()),
        &adjust,
        key,
        key,
        "",
        at,
    )?;
    Ok(KubeDiscovery {
        namespaces: namespaces.clone(),
        label,
        regions,
        region_label: template.region_label,
        gpu: template.gpu,
    })
}

/// `stack` and `[services.preset]`: a known stack, label names as Prometheus allows them.
fn preset_use(
    s: &RawService,
    key: &str,
    name: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Option<PresetUse>, ConfigError> {
    let Some(raw) = &s.stack else {
        if let Some(p) = &s.preset {
            return Err(at(
                p.span(),
                &format!("{key}.preset"),
                "[services.preset] adjusts a stack's preset: name the stack (stack = \"vllm\")"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let empty = RawPreset {
        service_label: None,
        service_value: None,
        region_label: None,
        revision_label: None,
        revision_value: None,
        matching: BTreeMap::new(),
        gpu: None,
    };
    let p = s.preset.as_ref().map(Spanned::get_ref).unwrap_or(&empty);
    preset_fields(
        raw,
        p,
        &format!("{key}.preset"),
        &format!("{key}.stack"),
        name,
        at,
    )
    .map(Some)
}

/// A stack's preset as `p` adjusts it (`pkey` names `p` in errors, `skey` the stack).
fn preset_fields(
    raw: &Spanned<String>,
    p: &RawPreset,
    pkey: &str,
    skey: &str,
    name: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<PresetUse, ConfigError> {
    let stack = Stack::parse(raw.get_ref().trim()).ok_or_else(|| {
        at(
            raw.span(),
            skey,
            format!(
                "unknown stack {:?}; presets exist for: {}",
                raw.get_ref(),
                Stack::ALL.map(Stack::as_str).join(", ")
            ),
        )
    })?;
    let label = |v: &Option<Spanned<String>>, field: &str, default: &str| match v {
        None => Ok(default.to_owned()),
        Some(l) if is_label_name(l.get_ref().trim()) => Ok(l.get_ref().trim().to_owned()),
        Some(l) => Err(at(
            l.span(),
            &format!("{pkey}.{field}"),
            format!("{:?} is not a Prometheus label name", l.get_ref()),
        )),
    };
    let service_value = match &p.service_value {
        None => name.to_owned(),
        Some(v) if v.get_ref().is_empty() || v.get_ref().chars().any(char::is_control) => {
            return Err(at(
                v.span(),
                &format!("{pkey}.service_value"),
                "the label's value is text, not empty (leave the key out for the service's name)"
                    .into(),
            ))
        }
        Some(v) => v.get_ref().clone(),
    };
    let gpu = match &p.gpu {
        None => GpuSource::Dcgm,
        Some(g) => match g.get_ref().trim() {
            "dcgm" => GpuSource::Dcgm,
            "none" => GpuSource::None,
            other => {
                return Err(at(
                    g.span(),
                    &format!("{pkey}.gpu"),
                    format!(
                    "unknown GPU source {other:?}: \"dcgm\" (NVIDIA's DCGM exporter) or \"none\""
                ),
                ))
            }
        },
    };
    let mut matching = Vec::new();
    for (name, value) in &p.matching {
        let mkey = format!("{pkey}.match.{name}");
        if !is_label_name(name) {
            return Err(at(
                value.span(),
                &mkey,
                format!("{name:?} is not a Prometheus label name"),
            ));
        }
        if value.get_ref().chars().any(char::is_control) {
            return Err(at(
                value.span(),
                &mkey,
                "a label's value is one line of text".into(),
            ));
        }
        matching.push((name.clone(), value.get_ref().clone()));
    }
    Ok(PresetUse {
        stack,
        matching,
        service_label: label(&p.service_label, "service_label", stack.service_label())?,
        service_value,
        region_label: label(&p.region_label, "region_label", "region")?,
        revision_label: label(&p.revision_label, "revision_label", "pod_template_hash")?,
        gpu,
    })
}

/// What `$revision` stands for, as written (the pod template hash unless said).
fn revision_value(
    raw: Option<&Spanned<String>>,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<RevisionValue, ConfigError> {
    match raw {
        None => Ok(RevisionValue::PodTemplateHash),
        Some(v) => parse_revision_value(v, key, at),
    }
}

/// `number`, `pod_template_hash` or `model_version`.
fn parse_revision_value(
    v: &Spanned<String>,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<RevisionValue, ConfigError> {
    match v.get_ref().trim() {
        "number" => Ok(RevisionValue::Number),
        "pod_template_hash" => Ok(RevisionValue::PodTemplateHash),
        "model_version" => Ok(RevisionValue::ModelVersion),
        other => Err(at(
            v.span(),
            key,
            format!(
                "unknown value {other:?}; `$revision` stands for one of: number, \
                 pod_template_hash, model_version"
            ),
        )),
    }
}

/// A preset's figures by revision, `$revision` standing for `value`.
pub fn preset_revisions(p: &PresetUse, value: RevisionValue) -> RevisionQueries {
    let [requests_total, errors_total, latency_p50_ms, latency_p99_ms] = p.revision_queries();
    RevisionQueries {
        value,
        requests_total,
        errors_total,
        latency_p50_ms,
        latency_p99_ms,
    }
}

/// The preset's figures into `queries` where the file wrote none (a figure written in the
/// file wins); what it leaves out that the file does not give either.
fn preset_queries(
    stack: Stack,
    given: &crate::presets::Given,
    queries: &mut BTreeMap<String, Query>,
) -> Vec<(&'static str, String)> {
    for (metric, alternatives) in &given.figures {
        queries.entry((*metric).to_owned()).or_insert(Query {
            alternatives: alternatives.clone(),
            preset: Some(stack),
        });
    }
    given
        .left_out
        .iter()
        .filter(|(metric, _)| !queries.contains_key(*metric))
        .cloned()
        .collect()
}

/// The preset's GPU and KV-cache signals, where its stack and DCGM give them.
fn preset_signals(stack: Stack, given: crate::presets::Given) -> Option<GpuQueries> {
    let (usage, preempted) = match given.kv_cache {
        Some((usage, preempted)) => (
            Some(Query {
                alternatives: usage,
                preset: Some(stack),
            }),
            Some(preempted),
        ),
        None => (None, None),
    };
    (given.xid.is_some() || usage.is_some()).then(|| GpuQueries {
        xid: given.xid,
        node_label: "Hostname".into(),
        gpu_label: "gpu".into(),
        kv_cache_usage: usage,
        preemptions_total: preempted,
    })
}

impl Service {
    /// A service discovery found with no stack to read its figures by: watched through
    /// its Kubernetes objects alone.
    pub fn discovered_bare(name: &str, regions: Vec<String>) -> Service {
        Service {
            name: name.to_owned(),
            deployment: name.to_owned(),
            regions,
            hooks: Hooks::default(),
            kubernetes: None,
            queries: BTreeMap::new(),
            left_out: Vec::new(),
            gpu: None,
            preset: None,
            team: None,
            revisions: None,
            slo: None,
        }
    }

    /// A service discovery found in `regions` (the first serving its traffic): its
    /// figures and signals from `preset`, its deployment named as it is.
    pub fn discovered(name: &str, regions: Vec<String>, preset: PresetUse) -> Service {
        let given = preset.give(name);
        let mut queries = BTreeMap::new();
        let left_out = preset_queries(preset.stack, &given, &mut queries);
        Service {
            name: name.to_owned(),
            deployment: name.to_owned(),
            regions,
            hooks: Hooks::default(),
            kubernetes: None,
            queries,
            left_out,
            gpu: preset_signals(preset.stack, given),
            preset: Some(preset),
            team: None,
            revisions: None,
            slo: None,
        }
    }
}

/// `[services.gpu]`: non-empty queries, label names as Prometheus allows them.
fn gpu_queries(
    g: &RawGpu,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<GpuQueries, ConfigError> {
    let query = |q: &Option<Spanned<String>>, name: &str| -> Result<Option<String>, ConfigError> {
        match q {
            None => Ok(None),
            Some(v) if v.get_ref().trim().is_empty() => Err(at(
                v.span(),
                &format!("{key}.{name}"),
                "the query is empty".into(),
            )),
            Some(v) => Ok(Some(v.get_ref().trim().to_owned())),
        }
    };
    let label =
        |l: &Option<Spanned<String>>, name: &str, default: &str| -> Result<String, ConfigError> {
            match l {
                None => Ok(default.to_owned()),
                Some(v) => {
                    let text = v.get_ref().trim();
                    let ok = !text.is_empty()
                        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !text.starts_with(|c: char| c.is_ascii_digit());
                    if ok {
                        Ok(text.to_owned())
                    } else {
                        Err(at(
                            v.span(),
                            &format!("{key}.{name}"),
                            format!("{text:?} is not a Prometheus label name"),
                        ))
                    }
                }
            }
        };
    Ok(GpuQueries {
        xid: query(&g.xid, "xid")?,
        node_label: label(&g.node_label, "node_label", "Hostname")?,
        gpu_label: label(&g.gpu_label, "gpu_label", "gpu")?,
        kv_cache_usage: query(&g.kv_cache_usage, "kv_cache_usage")?.map(Query::written),
        preemptions_total: query(&g.preemptions_total, "preemptions_total")?,
    })
}

/// `[services.slo]`: percentages of 0 to 100 (exclusive), series selectors for the
/// counters, and the latency objective whole or not at all.
fn slo(
    o: &RawSlo,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Slo, ConfigError> {
    let percent = |v: &Spanned<f64>, name: &str| -> Result<f64, ConfigError> {
        let p = *v.get_ref();
        if p > 0.0 && p < 100.0 {
            Ok(p / 100.0)
        } else {
            Err(at(
                v.span(),
                &format!("{key}.{name}"),
                format!(
                    "{p} is no objective: a percentage above 0 and below 100 (99.5 for 99.5 %)"
                ),
            ))
        }
    };
    let selector = |v: &Spanned<String>, name: &str| -> Result<String, ConfigError> {
        let text = v.get_ref().trim();
        if text.is_empty() || text.contains('[') || text.starts_with("sum") {
            return Err(at(
                v.span(),
                &format!("{key}.{name}"),
                "a series selector of a counter, as rate() takes it (http_requests_total{service=\"chat\"}), \
                 without a range or an aggregation"
                    .into(),
            ));
        }
        Ok(text.to_owned())
    };
    let latency = match (&o.latency_query, &o.latency_p99_ms) {
        (None, None) => None,
        (Some(q), Some(ms)) => {
            if q.get_ref().trim().is_empty() {
                return Err(at(
                    q.span(),
                    &format!("{key}.latency_query"),
                    "the query is empty".into(),
                ));
            }
            let threshold = *ms.get_ref();
            if !(threshold > 0.0 && threshold.is_finite()) {
                return Err(at(
                    ms.span(),
                    &format!("{key}.latency_p99_ms"),
                    "the threshold is a number of milliseconds above 0".into(),
                ));
            }
            let target = match &o.latency_target {
                Some(t) => percent(t, "latency_target")?,
                None => 0.99,
            };
            Some((q.get_ref().trim().to_owned(), threshold, target))
        }
        (Some(q), None) => {
            return Err(at(
                q.span(),
                &format!("{key}.latency_p99_ms"),
                "a latency objective needs both latency_query and latency_p99_ms".into(),
            ))
        }
        (None, Some(ms)) => {
            return Err(at(
                ms.span(),
                &format!("{key}.latency_query"),
                "a latency objective needs both latency_query and latency_p99_ms".into(),
            ))
        }
    };
    Ok(Slo {
        availability: percent(&o.availability, "availability")?,
        requests: selector(&o.requests, "requests")?,
        errors: selector(&o.errors, "errors")?,
        latency,
    })
}

/// `[services.revisions]`: four queries that each name `$revision`, and what it stands for.
fn revision_queries(
    r: &RawRevisions,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<RevisionQueries, ConfigError> {
    let value = match &r.value {
        None => RevisionValue::Number,
        Some(v) => parse_revision_value(v, &format!("{key}.value"), at)?,
    };
    let query = |q: &Spanned<String>, name: &str| -> Result<String, ConfigError> {
        let text = q.get_ref().trim();
        let qkey = format!("{key}.{name}");
        if text.is_empty() {
            return Err(at(q.span(), &qkey, "the query is empty".into()));
        }
        if !text.contains("$revision") {
            return Err(at(
                q.span(),
                &qkey,
                "the query must select one revision with `$revision` (e.g. \
                 revision=\"$revision\"), or every revision would count as both"
                    .into(),
            ));
        }
        Ok(text.to_owned())
    };
    Ok(RevisionQueries {
        value,
        requests_total: query(&r.requests_total, "requests_total")?,
        errors_total: query(&r.errors_total, "errors_total")?,
        latency_p50_ms: query(&r.latency_p50_ms, "latency_p50_ms")?,
        latency_p99_ms: query(&r.latency_p99_ms, "latency_p99_ms")?,
    })
}

fn kubernetes(
    raw: &Spanned<RawKubernetes>,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Kubernetes, ConfigError> {
    let k = raw.get_ref();
    let label = |v: &Option<Spanned<String>>, key: &str, default: &str| match v {
        None => Ok(default.to_owned()),
        Some(s) if is_k8s_label_key(s.get_ref()) => Ok(s.get_ref().clone()),
        Some(s) => Err(at(
            s.span(),
            key,
            format!("{:?} is not a Kubernetes label key", s.get_ref()),
        )),
    };
    let model_version = match &k.model_version {
        None => ModelVersionSource::ImageTag(String::new()),
        Some(m) => {
            let r = m.get_ref();
            match (&r.annotation, &r.label, &r.image_tag) {
                (Some(a), None, None) if is_k8s_label_key(a) => {
                    ModelVersionSource::Annotation(a.clone())
                }
                (None, Some(l), None) if is_k8s_label_key(l) => ModelVersionSource::Label(l.clone()),
                (None, None, Some(c)) => ModelVersionSource::ImageTag(c.trim().to_owned()),
                _ => {
                    return Err(at(
                        m.span(),
                        "kubernetes.model_version",
                        "say where the model version is: exactly one of annotation = \"key\", \
                         label = \"key\" or image_tag = \"container name\" (\"\" for the first container)"
                            .into(),
                    ))
                }
            }
        }
    };
    Ok(Kubernetes {
        kubeconfig: k.kubeconfig.as_ref().map(|p| p.get_ref().clone()),
        context: k
            .context
            .as_ref()
            .map(|c| c.get_ref().trim().to_owned())
            .filter(|c| !c.is_empty()),
        region_label: label(
            &k.region_label,
            "kubernetes.region_label",
            "topology.kubernetes.io/region",
        )?,
        pool_label: label(&k.pool_label, "kubernetes.pool_label", "firebreak.dev/pool")?,
        model_version,
    })
}

fn service_objects(
    raw: &Spanned<RawServiceObjects>,
    key: &str,
    deployment: &str,
    regions: &[String],
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<ServiceObjects, ConfigError> {
    let o = raw.get_ref();
    let name_of = |v: &Spanned<String>, k: &str| dns_label(v, k, at);
    let namespace = name_of(&o.namespace, &format!("{key}.namespace"))?;
    let kind = match &o.kind {
        None => WorkloadKind::Deployment,
        Some(k) => match k.get_ref().as_str() {
            "Deployment" => WorkloadKind::Deployment,
            "Rollout" => WorkloadKind::Rollout,
            other => {
                return Err(at(
                    k.span(),
                    &format!("{key}.kind"),
                    format!("{other:?}: the workload is a \"Deployment\" or an Argo \"Rollout\""),
                ))
            }
        },
    };
    let name = match &o.name {
        None => deployment.to_owned(),
        Some(n) => {
            let checked = n.get_ref().trim();
            if !is_dns_subdomain(checked) {
                return Err(at(
                    n.span(),
                    &format!("{key}.name"),
                    format!("{checked:?} is not a Kubernetes object name"),
                ));
            }
            checked.to_owned()
        }
    };
    let mut pods = Vec::new();
    for part in o.pods.get_ref().split(',') {
        match part.split_once('=') {
            Some((k, v)) if is_k8s_label_key(k.trim()) && !v.trim().is_empty() => {
                pods.push((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => {
                return Err(at(
                    o.pods.span(),
                    &format!("{key}.pods"),
                    format!(
                        "{:?} is not a label selector of key=value pairs joined by commas (e.g. \"app=llm-assistant\")",
                        o.pods.get_ref()
                    ),
                ))
            }
        }
    }
    let route = match &o.route {
        None => None,
        Some(r) => Some(route(r.get_ref(), &format!("{key}.route"), regions, at)?),
    };
    Ok(ServiceObjects {
        namespace,
        kind,
        name,
        pods,
        node_pool: o
            .node_pool
            .as_ref()
            .map(|p| p.get_ref().trim().to_owned())
            .filter(|p| !p.is_empty()),
        route,
    })
}

/// A service's route (`rkey` names it in errors): its kind, and one backend for each of
/// the service's regions, no two of which could be the same.
fn route(
    rr: &RawRoute,
    rkey: &str,
    regions: &[String],
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Route, ConfigError> {
    let name_of = |v: &Spanned<String>, k: &str| dns_label(v, k, at);
    let written = rr.backends.get_ref();
    let missing: Vec<&String> = regions
        .iter()
        .filter(|g| !written.contains_key(*g))
        .collect();
    let unknown: Vec<&String> = written.keys().filter(|g| !regions.contains(g)).collect();
    if !missing.is_empty() || !unknown.is_empty() {
        return Err(at(
            rr.backends.span(),
            &format!("{rkey}.backends"),
            format!(
                "name the backendRef of each of the service's regions, and only those (missing: {}; not a region of the service: {})",
                if missing.is_empty() { "none".into() } else { missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") },
                if unknown.is_empty() { "none".into() } else { unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") },
            ),
        ));
    }
    let kind = match &rr.kind {
        None => RouteKind::HttpRoute,
        Some(k) => match k.get_ref().as_str() {
            "HTTPRoute" => RouteKind::HttpRoute,
            "VirtualService" => RouteKind::VirtualService,
            other => {
                return Err(at(
                    k.span(),
                    &format!("{rkey}.kind"),
                    format!("{other:?}: the route is a Gateway API \"HTTPRoute\" or an Istio \"VirtualService\""),
                ))
            }
        },
    };
    let route_namespace = name_of(&rr.namespace, &format!("{rkey}.namespace"))?;
    let bad = |region: &str, why: String| {
        at(
            rr.backends.span(),
            &format!("{rkey}.backends.{region}"),
            why,
        )
    };
    let mut backends = BTreeMap::new();
    for (region, raw) in written {
        let backend = route_backend(kind, &route_namespace, raw).map_err(|why| bad(region, why))?;
        backends.insert(region.clone(), backend);
    }
    // One reference must never answer for two regions.
    let listed: Vec<(&String, &Backend)> = backends.iter().collect();
    for (i, (a, ba)) in listed.iter().enumerate() {
        for (b, bb) in &listed[i + 1..] {
            if ba.overlaps(bb) {
                let why = if ba == bb {
                    format!("{a} and {b} name the same backend ({ba}): each region needs its own")
                } else {
                    format!(
                        "{a} ({ba}) and {b} ({bb}) could be the same backend: name what tells them apart ({})",
                        match kind {
                            RouteKind::HttpRoute => "the namespace or the port",
                            RouteKind::VirtualService => "the subset or the port",
                        }
                    )
                };
                return Err(bad(b, why));
            }
        }
    }
    Ok(Route {
        kind,
        namespace: route_namespace,
        name: name_of(&rr.name, &format!("{rkey}.name"))?,
        backends,
    })
}

/// A region's backend as written, read as the route's kind identifies backends.
fn route_backend(
    kind: RouteKind,
    route_namespace: &str,
    raw: &RawBackend,
) -> Result<Backend, String> {
    let port = |p: Option<i64>| match p {
        None => Ok(None),
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p > 0)
            .map(Some)
            .ok_or_else(|| format!("port {p} is not a port (1 to 65535)")),
    };
    let word = |v: &str, what: &str| {
        let v = v.trim();
        if v.is_empty() {
            Err(format!("{what} is empty"))
        } else {
            Ok(v.to_owned())
        }
    };
    match (kind, raw) {
        (RouteKind::HttpRoute, RawBackend::Name(name)) => Ok(Backend::Ref(BackendRef {
            group: String::new(),
            kind: "Service".into(),
            namespace: route_namespace.to_owned(),
            name: word(name, "the backend's name")?,
            port: None,
        })),
        (RouteKind::VirtualService, RawBackend::Name(host)) => {
            Ok(Backend::Destination(Destination {
                host: word(host, "the destination's host")?,
                subset: None,
                port: None,
            }))
        }
        (RouteKind::HttpRoute, RawBackend::Table(t)) => {
            if t.host.is_some() || t.subset.is_some() {
                return Err("an HTTPRoute's backendRef has group, kind, namespace, name and port (host and subset are an Istio VirtualService's)".into());
            }
            let name = t.name.as_deref().ok_or("a backendRef needs its name")?;
            Ok(Backend::Ref(BackendRef {
                group: t.group.as_deref().unwrap_or("").trim().to_owned(),
                kind: match &t.kind {
                    Some(k) => word(k, "the backend's kind")?,
                    None => "Service".into(),
                },
                namespace: match &t.namespace {
                    Some(ns) => word(ns, "the backend's namespace")?,
                    None => route_namespace.to_owned(),
                },
                name: word(name, "the backend's name")?,
                port: port(t.port)?,
            }))
        }
        (RouteKind::VirtualService, RawBackend::Table(t)) => {
            if t.name.is_some() || t.namespace.is_some() || t.group.is_some() || t.kind.is_some() {
                return Err("a VirtualService's destination has host, subset and port (group, kind, namespace and name are an HTTPRoute's)".into());
            }
            let host = t.host.as_deref().ok_or("a destination needs its host")?;
            Ok(Backend::Destination(Destination {
                host: word(host, "the destination's host")?,
                subset: match &t.subset {
                    Some(s) => Some(word(s, "the subset")?),
                    None => None,
                },
                port: port(t.port)?,
            }))
        }
    }
}

/// A DNS label (RFC 1123), as namespaces and most names are.
/// A Kubernetes name (a namespace, a route).
fn dns_label(
    v: &Spanned<String>,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<String, ConfigError> {
    let n = v.get_ref().trim();
    if is_dns_label(n) {
        Ok(n.to_owned())
    } else {
        Err(at(
            v.span(),
            key,
            format!(
                "{n:?} is not a Kubernetes name (lower case letters, digits and '-', at most 63)"
            ),
        ))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS subdomain (RFC 1123): labels joined by dots, at most 253.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label or annotation key: an optional DNS-subdomain prefix and `/`, then a name of
/// letters, digits, `-`, `_` and `.` (at most 63), starting and ending alphanumeric.
fn is_k8s_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

fn secret(
    raw: &RawSecret,
    span: Range<usize>,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Secret, ConfigError> {
    if let Some(t) = &raw.token {
        return Err(at(
            t.span(),
            &format!("{key}.token"),
            "a token never goes in the configuration itself: put it in a file (file = \"…\") \
             or an environment variable (env = \"…\")"
                .into(),
        ));
    }
    match (&raw.file, &raw.env) {
        (Some(f), None) => Ok(Secret::File(f.get_ref().clone())),
        (None, Some(e)) if !e.get_ref().trim().is_empty() => {
            Ok(Secret::Env(e.get_ref().trim().to_owned()))
        }
        (None, Some(e)) => Err(at(
            e.span(),
            &format!("{key}.env"),
            "the variable's name is empty".into(),
        )),
        _ => Err(at(
            span,
            key,
            "say where the token is read from: exactly one of file = \"…\" or env = \"…\"".into(),
        )),
    }
}

/// A service's `hooks`: status, rollback and failover (actions need a status hook), how
/// long each may take, and which of the gateway's environment variables they are given.
fn hooks(
    raw: &RawHooks,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Hooks, ConfigError> {
    let timeout_s = match &raw.timeout_s {
        None => DEFAULT_HOOK_TIMEOUT_S,
        Some(v) => u64::try_from(*v.get_ref())
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .ok_or_else(|| {
                at(
                    v.span(),
                    &format!("{key}.timeout_s"),
                    format!("{} is not a number of seconds from 1 to 3600", v.get_ref()),
                )
            })?,
    };
    let one = |h: &Option<Spanned<RawHook>>, name: &str| match h {
        None => Ok(None),
        Some(h) => hook(h, &format!("{key}.{name}"), at).map(Some),
    };
    let pass_env = match &raw.env {
        None => Vec::new(),
        Some(names) => {
            for name in names.get_ref() {
                let ok = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with("FIREBREAK_");
                if !ok {
                    return Err(at(
                        names.span(),
                        &format!("{key}.env"),
                        format!(
                            "{name:?} is not an environment variable a hook can be given \
                             (letters, digits and _; FIREBREAK_* are the gateway's own)"
                        ),
                    ));
                }
            }
            names.get_ref().clone()
        }
    };
    let hooks = Hooks {
        status: one(&raw.status, "status")?,
        rollback: one(&raw.rollback, "rollback")?,
        failover: one(&raw.failover, "failover")?,
        timeout: std::time::Duration::from_secs(timeout_s),
        pass_env,
    };
    if hooks.status.is_none() && (hooks.rollback.is_some() || hooks.failover.is_some()) {
        let span = raw
            .rollback
            .as_ref()
            .or(raw.failover.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(at(
            span,
            &format!("{key}.status"),
            "actions need a status hook: their preconditions are checked against what it reports"
                .into(),
        ));
    }
    Ok(hooks)
}

/// One hook (`hkey` names it in errors): a program run without a shell, or a URL.
fn hook(
    h: &Spanned<RawHook>,
    hkey: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Hook, ConfigError> {
    let raw = h.get_ref();
    match (&raw.command, &raw.url) {
        (Some(command), None) => {
            if let Some(t) = &raw.token {
                return Err(at(
                    t.span(),
                    &format!("{hkey}.token"),
                    "a token goes with url = \"…\" hooks; a command reads its own secrets".into(),
                ));
            }
            command_hook(command, &format!("{hkey}.command"), at)
        }
        (None, Some(url)) => {
            let ukey = format!("{hkey}.url");
            let checked = http_url(url, &ukey, at)?;
            check_placeholders(&checked, url.span(), &ukey, at)?;
            if let Some(free) = FREE_TEXT_PLACEHOLDERS
                .iter()
                .find(|p| checked.contains(&format!("{{{p}}}")))
            {
                return Err(at(
                    url.span(),
                    &ukey,
                    format!(
                        "{{{free}}} is text a person typed and cannot be part of a URL; \
                         it is in the JSON body the hook receives"
                    ),
                ));
            }
            let token = match &raw.token {
                None => None,
                Some(t) => {
                    if checked.starts_with("http://") && !loopback_url(&checked) {
                        return Err(at(
                            t.span(),
                            &format!("{hkey}.token"),
                            format!(
                                "the token would cross the network in clear text to {checked}: \
                                 use https:// (plain http only to this machine)"
                            ),
                        ));
                    }
                    Some(secret(t.get_ref(), t.span(), &format!("{hkey}.token"), at)?)
                }
            };
            Ok(Hook::Http {
                url: checked,
                token,
            })
        }
        _ => Err(at(
            h.span(),
            hkey,
            "say how the hook runs: exactly one of command = [\"/path/to/program\", \"arg\", …] or url = \"https://…\"".into(),
        )),
    }
}

/// A command hook: an absolute program, placeholders it knows, and a person's free text
/// never the program, an argument's start or an argument of its own.
fn command_hook(
    command: &Spanned<Vec<String>>,
    ckey: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<Hook, ConfigError> {
    let argv = command.get_ref();
    let Some(program) = argv.first() else {
        return Err(at(
            command.span(),
            ckey,
            "the command is empty: name the program and its arguments".into(),
        ));
    };
    if !Path::new(program).is_absolute() {
        return Err(at(
            command.span(),
            ckey,
            format!(
                "{program:?} is not an absolute path: hooks run without a shell and without PATH lookups"
            ),
        ));
    }
    for (n, arg) in argv.iter().enumerate() {
        check_placeholders(arg, command.span(), ckey, at)?;
        // A person's free text must never be the program, start an argument (where
        // "--force" would be an option) or be an argument of its own (where ".." would
        // be a path): only `--reason={reason}` style.
        if let Some(free) = FREE_TEXT_PLACEHOLDERS
            .iter()
            .find(|p| arg.contains(&format!("{{{p}}}")))
        {
            if n == 0 || arg.starts_with(&format!("{{{free}}}")) {
                return Err(at(
                    command.span(),
                    ckey,
                    format!(
                        "{arg:?}: {{{free}}} is text a person typed; put it after fixed text \
                         in one argument (\"--{free}={{{free}}}\"), or read FIREBREAK_{} \
                         or the JSON on stdin",
                        free.to_ascii_uppercase()
                    ),
                ));
            }
        }
    }
    Ok(Hook::Command(argv.clone()))
}

/// Every `{name}` in a hook's text is one of [`HOOK_PLACEHOLDERS`].
fn check_placeholders(
    text: &str,
    span: Range<usize>,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if !HOOK_PLACEHOLDERS.contains(&name) {
            return Err(at(
                span,
                key,
                format!(
                    "unknown placeholder {{{name}}}; known: {}",
                    HOOK_PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn http_url(
    v: &Spanned<String>,
    key: &str,
    at: &dyn Fn(Range<usize>, &str, String) -> ConfigError,
) -> Result<String, ConfigError> {
    let ok = reqwest::Url::parse(v.get_ref())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    match ok {
        Some(_) => Ok(v.get_ref().trim_end_matches('/').to_owned()),
        None => Err(at(
            v.span(),
            key,
            format!("{:?} is not an http:// or https:// URL", v.get_ref()),
        )),
    }
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The key a parse error points into: the span itself when it is a key (an unknown
/// field), else the key written on that line (`key = …`, or a `[table]` header).
fn key_at(text: &str, span: Range<usize>) -> String {
    let spanned = text
        .get(span.clone())
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    let line = text
        .lines()
        .nth(line_at(text, span.start) - 1)
        .unwrap_or("");
    let written = match line.split_once('=') {
        Some((key, _)) => key.trim(),
        None => line.trim().trim_matches(|c| c == '[' || c == ']'),
    };
    if !spanned.is_empty() && written == spanned {
        return spanned.to_owned();
    }
    if !written.is_empty() && written.len() <= 64 {
        return written.trim_matches('"').to_owned();
    }
    spanned.chars().take(64).collect()
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// Whether an `http://` URL's host is this machine (a bearer token may go there in clear).
fn loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}
