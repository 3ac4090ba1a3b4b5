//! Services found instead of listed (`[discovery]`). Every interval:
//!
//! - `[discovery.kubernetes]` lists the Deployments and Argo Rollouts of its namespaces
//!   that carry its label (`firebreak.dev/service=chat`): each is a service named by the
//!   label's value, with its workload, pods and pool as Kubernetes objects (watched and
//!   acted on as a listed service's are) and, when the workload names its stack
//!   (`firebreak.dev/stack`), the stack's preset;
//! - each `[[discovery.prometheus]]` asks Prometheus which values its stack's service label
//!   takes, in which regions (`count by (model_name, region) (vllm:num_requests_waiting)`),
//!   and each value becomes a service with the preset's figures.
//!
//! A service that appears is announced once (`service.discovered`) and watched from then
//! on, without a restart; one no longer found in two successful rounds in a row is retired
//! (`service.retired`). A source that cannot be read keeps what it found (an outage of
//! Prometheus or of the API server retires nothing). What was announced is kept in the
//! journal with the announcement, so a restarted gateway announces only what changed. A
//! `[[services]]` entry of the same name wins over a discovered one; a name two sources
//! find is kept from the first (Kubernetes, then the Prometheus sources in order) and
//! refused from the second, both named.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use tokio::sync::watch;

use super::config::{
    Backend, BackendRef, Destination, Discovery, KubeDiscovery, Kubernetes, Prometheus, Route,
    RouteKind, Service, ServiceObjects, WorkloadKind,
};
use super::journal::DurableJournal;
use super::presets::{PresetUse, Stack};
use firebreak_protocol::events::{EventType, ServiceDiscovered, ServiceRetired};

/// Rounds in a row a source must not find a service before it is retired.
const MISSED_ROUNDS: u32 = 2;
/// The longest service name discovery accepts (as `service.discovered` allows).
const MAX_NAME: usize = 128;
/// Services one source may bring (a label with a value per request would otherwise grow
/// the gateway's polling without bound).
const MAX_PER_SOURCE: usize = 2000;
/// What a workload says about itself, beside the discovery label.
const STACK: &str = "firebreak.dev/stack";
const POOL: &str = "firebreak.dev/pool";
const REGIONS: &str = "firebreak.dev/regions";
const MODEL: &str = "firebreak.dev/model";
const ROUTE: &str = "firebreak.dev/route";
const BACKENDS: &str = "firebreak.dev/backends";

/// What discovery last said, for `/v1/gateway/status`.
pub type Status = Arc<Mutex<serde_json::Value>>;

/// Where services are found.
enum Source {
    Kubernetes(KubeDiscovery),
    Prometheus(PresetUse),
}

impl Source {
    /// The source, in words (the `source` of `service.discovered`).
    fn describe(&self) -> String {
        match self {
            Source::Kubernetes(k) => format!(
                "kubernetes: workloads labelled {} in {}",
                k.label,
                k.namespaces.join(", ")
            ),
            Source::Prometheus(p) => {
                format!("prometheus: {} on {}", p.service_label, p.stack.presence())
            }
        }
    }
}

/// A name is 1 to [`MAX_NAME`] characters of text.
fn usable(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control)
}

/// What the sources are read with.
struct Readers {
    http: reqwest::Client,
    prometheus: Option<Prometheus>,
    kube: Option<kube::Client>,
}

impl Readers {
    /// The services one source finds now, or why it cannot say; `refused` gets what it
    /// found that cannot be a service.
    async fn read(
        &self,
        source: &Source,
        refused: &mut Vec<String>,
    ) -> Result<Vec<Service>, String> {
        match source {
            Source::Prometheus(p) => {
                let Some(prometheus) = &self.prometheus else {
                    return Err("no [prometheus] section".into());
                };
                let series = super::prometheus::query_vector(
                    &self.http,
                    &prometheus.url,
                    &p.discovery_query(),
                )
                .await?;
                let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (labels, _) in series {
                    let (Some(name), Some(region)) =
                        (labels.get(&p.service_label), labels.get(&p.region_label))
                    else {
                        continue;
                    };
                    if !usable(name) || !usable(region) {
                        refused.push(format!(
                            "{name:?} in {region:?} ({}): a service name is 1 to {MAX_NAME} characters of text, and so is a region",
                            source.describe()
                        ));
                        continue;
                    }
                    if found.len() >= MAX_PER_SOURCE && !found.contains_key(name) {
                        refused.push(format!(
                            "{name:?} ({}): the source already brings {MAX_PER_SOURCE} services",
                            source.describe()
                        ));
                        continue;
                    }
                    found
                        .entry(name.clone())
                        .or_default()
                        .insert(region.clone());
                }
                Ok(found
                    .into_iter()
                    .map(|(name, regions)| {
                        Service::discovered(
                            &name,
                            regions.into_iter().collect(),
                            p.for_value(&name),
                        )
                    })
                    .collect())
            }
            Source::Kubernetes(k) => {
                let Some(client) = &self.kube else {
                    return Err("no client for the Kubernetes API".into());
                };
                self.workloads(client, k, source, refused).await
            }
        }
    }

    /// The labelled Deployments and Argo Rollouts of the namespaces, as services.
    async fn workloads(
        &self,
        client: &kube::Client,
        k: &KubeDiscovery,
        source: &Source,
        refused: &mut Vec<String>,
    ) -> Result<Vec<Service>, String> {
        let params = ListParams::default().labels(&k.label);
        let mut found = Vec::new();
        for ns in &k.namespaces {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let list = deployments
                .list(&params)
                .await
                .map_err(|e| format!("listing Deployments in {ns}: {e}"))?;
            for d in list.items {
                let meta = &d.metadata;
                let pods = d
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.match_labels.clone())
                    .unwrap_or_default();
                found.push(Workload {
                    kind: WorkloadKind::Deployment,
                    namespace: ns.clone(),
                    name: meta.name.clone().unwrap_or_default(),
                    labels: meta.labels.clone().unwrap_or_default(),
                    annotations: meta.annotations.clone().unwrap_or_default(),
                    pods,
                });
            }
            // Argo Rollouts where its CRD is installed (404 where it is not).
            match super::kubernetes::act::argo_rollouts(client, ns)
                .list(&params)
                .await
            {
                Ok(list) => {
                    for r in list.items {
                        let meta = &r.metadata;
                        let pods =
                            super::prometheus::strings(&r.data["spec"]["selector"]["matchLabels"]);
                        found.push(Workload {
                            kind: WorkloadKind::Rollout,
                            namespace: ns.clone(),
                            name: meta.name.clone().unwrap_or_default(),
                            labels: meta.labels.clone().unwrap_or_default(),
                            annotations: meta.annotations.clone().unwrap_or_default(),
                            pods,
                        });
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(format!("listing Argo Rollouts in {ns}: {e}")),
            }
        }
        let mut services = Vec::new();
        for w in found {
            match w.service(k) {
                Ok(s) if services.len() < MAX_PER_SOURCE => services.push(s),
                Ok(s) => refused.push(format!(
                    "{:?} ({}): the source already brings {MAX_PER_SOURCE} services",
                    s.name,
                    source.describe()
                )),
                Err(why) => refused.push(format!(
                    "{} {}/{} ({}): {why}",
                    w.kind_name(),
                    w.namespace,
                    w.name,
                    source.describe()
                )),
            }
        }
        Ok(services)
    }
}

/// A labelled workload as listed.
struct Workload {
    kind: WorkloadKind,
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    pods: BTreeMap<String, String>,
}

impl Workload {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::Rollout => "Rollout",
        }
    }

    /// What the workload says about itself: a label, else an annotation.
    fn says(&self, key: &str) -> Option<&str> {
        self.labels
            .get(key)
            .or_else(|| self.annotations.get(key))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The service the workload is, or why it cannot be one.
    fn service(&self, k: &KubeDiscovery) -> Result<Service, String> {
        let name = self.labels.get(&k.label).map(|v| v.trim()).unwrap_or("");
        if !usable(name) {
            return Err(format!(
                "its {} label is no service name (1 to {MAX_NAME} characters of text)",
                k.label
            ));
        }
        if self.pods.is_empty() {
            return Err("its selector has no matchLabels to find its pods by".into());
        }
        let regions: Vec<String> = match self.says(REGIONS) {
            Some(list) => list
                .split(',')
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
            None => k.regions.clone(),
        };
        if regions.is_empty() {
            return Err(format!(
                "no regions: annotate it {REGIONS}=\"us-east,eu-west\", or set \
                 [discovery.kubernetes] regions"
            ));
        }
        let preset = match self.says(STACK) {
            None => None,
            Some(stack) => {
                let stack = Stack::parse(stack).ok_or_else(|| {
                    format!(
                        "{STACK}={stack:?} names no preset (known: {})",
                        Stack::ALL.map(Stack::as_str).join(", ")
                    )
                })?;
                Some(PresetUse {
                    stack,
                    service_label: stack.service_label().to_owned(),
                    service_value: self.says(MODEL).unwrap_or(name).to_owned(),
                    region_label: k.region_label.clone(),
                    matching: Vec::new(),
                    revision_label: "pod_template_hash".into(),
                    gpu: k.gpu,
                })
            }
        };
        let mut service = match preset {
            Some(p) => Service::discovered(name, regions, p),
            None => Service::discovered_bare(name, regions),
        };
        let route = self.route(&service.regions)?;
        // Its figures by revision, the watcher saying which revisions roll out.
        service.revisions = service.preset.as_ref().map(|p| {
            super::config::preset_revisions(p, super::config::RevisionValue::PodTemplateHash)
        });
        service.deployment = self.name.clone();
        service.kubernetes = Some(ServiceObjects {
            namespace: self.namespace.clone(),
            kind: self.kind,
            name: self.name.clone(),
            pods: self.pods.clone().into_iter().collect(),
            node_pool: self.says(POOL).map(str::to_owned),
            route,
        });
        Ok(service)
    }

    /// The route that fails it over, when the workload names one: `firebreak.dev/route`
    /// (`HTTPRoute/chat` or `VirtualService/chat`, in the workload's namespace) and
    /// `firebreak.dev/backends` (`us-east=chat-us-east,eu-west=chat-eu-west`: each
    /// region's Service, or Istio host), one for every region, no two alike.
    fn route(&self, regions: &[String]) -> Result<Option<Route>, String> {
        let Some(named) = self.says(ROUTE) else {
            return Ok(None);
        };
        let (kind, name) = match named.split_once('/') {
            Some(("HTTPRoute", name)) => (RouteKind::HttpRoute, name),
            Some(("VirtualService", name)) => (RouteKind::VirtualService, name),
            _ => {
                return Err(format!(
                    "{ROUTE}={named:?}: say HTTPRoute/<name> or VirtualService/<name>"
                ))
            }
        };
        let mut backends = std::collections::BTreeMap::new();
        for pair in self
            .says(BACKENDS)
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let Some((region, target)) = pair.split_once('=') else {
                return Err(format!("{BACKENDS}: {pair:?} is not region=backend"));
            };
            let target = target.trim().to_owned();
            let backend = match kind {
                RouteKind::HttpRoute => Backend::Ref(BackendRef {
                    group: String::new(),
                    kind: "Service".into(),
                    namespace: self.namespace.clone(),
                    name: target,
                    port: None,
                }),
                RouteKind::VirtualService => Backend::Destination(Destination {
                    host: target,
                    subset: None,
                    port: None,
                }),
            };
            if let Some((other, _)) = backends
                .iter()
                .find(|(_, b): &(&String, &Backend)| b.overlaps(&backend))
            {
                return Err(format!(
                    "{BACKENDS}: {} and {other} name the same backend ({backend})",
                    region.trim()
                ));
            }
            backends.insert(region.trim().to_owned(), backend);
        }
        if let Some(missing) = regions.iter().find(|r| !backends.contains_key(*r)) {
            return Err(format!(
                "{ROUTE} is set but {BACKENDS} names no backend for {missing} \
                 (us-east=chat-us-east,eu-west=chat-eu-west)"
            ));
        }
        Ok(Some(Route {
            kind,
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            backends,
        }))
    }
}

/// The inputs of a discovery run.
pub struct Inputs {
    pub discovery: Discovery,
    pub prometheus: Option<Prometheus>,
    pub kubernetes: Option<Kubernetes>,
    /// The file's services (they win over discovered ones of the same name).
    pub listed: Vec<Service>,
    pub cluster: String,
}

/// Runs discovery until the task is stopped, sending each new list of services (the
/// file's, then the discovered ones) on `tx`.
pub async fn run(
    inputs: Inputs,
    journal: Arc<DurableJournal>,
    tx: watch::Sender<Arc<Vec<Service>>>,
    status: Status,
) {
    let Inputs {
        discovery,
        prometheus,
        kubernetes,
        listed,
        cluster,
    } = inputs;
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the Prometheus client for discovery");
            return;
        }
    };
    let mut sources = Vec::new();
    if let Some(k) = discovery.kubernetes.clone() {
        sources.push(Source::Kubernetes(k));
    }
    sources.extend(discovery.prometheus.iter().cloned().map(Source::Prometheus));
    let mut readers = Readers {
        http,
        prometheus,
        kube: None,
    };
    let source_url = format!("/clusters/{cluster}");
    // What the journal says was announced and not retired (kept across restarts).
    let mut announced: BTreeSet<String> = match journal.discovered().await {
        Ok(rows) => rows.into_iter().map(|(name, ..)| name).collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read what discovery announced before");
            BTreeSet::new()
        }
    };
    // Each source's last answer (kept while it cannot be read), and the services sent.
    let mut last: Vec<Option<Vec<Service>>> = sources.iter().map(|_| None).collect();
    let mut current: BTreeMap<String, (usize, Service)> = BTreeMap::new();
    let mut missed: BTreeMap<String, u32> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(discovery.interval_s)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if readers.kube.is_none() {
            if let (Some(k8s), Some(_)) = (&kubernetes, &discovery.kubernetes) {
                readers.kube = super::kubernetes::watch::client(k8s).await.ok();
            }
        }
        let mut errors = Vec::new();
        let mut refused = Vec::new();
        let mut answered = vec![false; sources.len()];
        for (i, source) in sources.iter().enumerate() {
            match readers.read(source, &mut refused).await {
                Ok(found) => {
                    answered[i] = true;
                    last[i] = Some(found);
                }
                Err(why) => errors.push(format!("{}: {why}", source.describe())),
            }
        }
        // Merge: the file's entries win; a name two sources find is the first's.
        let mut merged: BTreeMap<String, (usize, Service)> = BTreeMap::new();
        for (i, found) in last.iter().enumerate() {
            for service in found.iter().flatten() {
                if listed.iter().any(|s| s.name == service.name) {
                    continue;
                }
                match merged.get(&service.name) {
                    Some((first, _)) => refused.push(format!(
                        "{:?}: found by both {} ({}) and {} ({}); kept from the first",
                        service.name,
                        sources[*first].describe(),
                        source_key(&sources, *first),
                        sources[i].describe(),
                        source_key(&sources, i),
                    )),
                    None => {
                        merged.insert(service.name.clone(), (i, service.clone()));
                    }
                }
            }
        }
        // Retire only what sources that answered did not find, twice in a row.
        let mut retired = Vec::new();
        for name in &announced {
            // Listed in the file now: served from there, never retired.
            if merged.contains_key(name) || listed.iter().any(|s| &s.name == name) {
                missed.remove(name);
                continue;
            }
            if !answered.iter().any(|a| *a) {
                continue;
            }
            let n = missed.entry(name.clone()).or_default();
            *n += 1;
            if *n >= MISSED_ROUNDS {
                retired.push(name.clone());
            } else if let Some(before) = current.get(name) {
                // Not yet: it stays watched (its figures simply give nothing meanwhile).
                merged.insert(name.clone(), before.clone());
            }
        }
        let new: Vec<(usize, Service)> = merged
            .values()
            .filter(|(_, s)| !announced.contains(&s.name))
            .cloned()
            .collect();
        if !new.is_empty() || !retired.is_empty() {
            match announce(&journal, &source_url, &sources, &new, &retired).await {
                Ok(()) => {
                    for (_, s) in &new {
                        tracing::info!(service = %s.name, regions = ?s.regions, "service discovered");
                        announced.insert(s.name.clone());
                    }
                    for name in &retired {
                        tracing::info!(service = %name, "service retired: no longer found");
                        announced.remove(name);
                        missed.remove(name);
                        merged.remove(name);
                    }
                }
                // Not recorded: tried again next round, and nothing changes meanwhile.
                Err(e) => {
                    tracing::error!(error = %e, "cannot record what discovery found");
                    errors.push(format!("cannot record what discovery found: {e}"));
                    merged.retain(|name, _| announced.contains(name));
                }
            }
        }
        *status.lock().unwrap_or_else(|e| e.into_inner()) = serde_json::json!({
            "at": chrono::Utc::now().to_rfc3339(),
            "services": merged.values().map(|(i, s)| serde_json::json!({
                "service": s.name,
                "regions": s.regions,
                "source": sources[*i].describe(),
            })).collect::<Vec<_>>(),
            "refused": refused,
            "errors": errors,
        });
        let mut services = listed.clone();
        services.extend(merged.values().map(|(_, s)| s.clone()));
        current = merged;
        tx.send_if_modified(|sent| {
            if **sent == services {
                false
            } else {
                *sent = Arc::new(services);
                true
            }
        });
    }
}

/// How the configuration names source `i`.
fn source_key(sources: &[Source], i: usize) -> String {
    match &sources[i] {
        Source::Kubernetes(_) => "[discovery.kubernetes]".into(),
        Source::Prometheus(_) => {
            let before = sources[..i]
                .iter()
                .filter(|s| matches!(s, Source::Prometheus(_)))
                .count();
            format!("[[discovery.prometheus]] {}", before + 1)
        }
    }
}

/// Publishes the announcements and what they announce, in one transaction.
async fn announce(
    journal: &DurableJournal,
    source_url: &str,
    sources: &[Source],
    new: &[(usize, Service)],
    retired: &[String],
) -> anyhow::Result<()> {
    let mut events: Vec<(EventType, String, serde_json::Value)> = Vec::new();
    let mut kept = Vec::new();
    for (i, s) in new {
        let data = ServiceDiscovered {
            service: s.name.clone(),
            regions: s.regions.clone(),
            stack: s
                .preset
                .as_ref()
                .map_or("none", |p| p.stack.as_str())
                .to_owned(),
            source: sources[*i].describe(),
        };
        events.push((
            EventType::ServiceDiscovered,
            format!("service/{}", s.name),
            serde_json::to_value(data)?,
        ));
        kept.push((s.name.clone(), sources[*i].describe(), s.regions.clone()));
    }
    for name in retired {
        let data = ServiceRetired {
            service: name.clone(),
            reason: format!("discovery has not found it in {MISSED_ROUNDS} rounds in a row"),
        };
        events.push((
            EventType::ServiceRetired,
            format!("service/{name}"),
            serde_json::to_value(data)?,
        ));
    }
    let now = chrono::Utc::now();
    journal
        .publish_discovery(&kept, retired, events.len(), |seq, i| {
            let (ty, subject, data) = &events[i];
            let id = uuid::Uuid::now_v7().to_string();
            firebreak_server::envelope(source_url, &id, *ty, now, subject, seq, data)
        })
        .await?;
    Ok(())
}
