//! Watching the cluster's API with kube-rs: for each service with Kubernetes objects, its
//! Deployment (by name), its ReplicaSets and its pods (by the service's pod selector) and
//! the namespace's `Warning` events; and the nodes of the configured pools. Each watcher keeps a reflector store (a list, then a watch
//! from its resourceVersion, bookmarks on; on 410 Gone it lists again); after every change
//! the whole snapshot goes through `rollouts`, `pods`, `warnings` or `nodes::observe`, and what they
//! return is published under its stable ids, so a relist publishes only what is new. The
//! gateway's sequence is its journal's own, never a resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use super::story::Emit;
use crate::config::{Kubernetes, Service, WorkloadKind};
use crate::journal::DurableJournal;
use crate::revisions::Rollouts;

/// A client for the configured cluster: the kubeconfig (and context) when named, else
/// the usual inference (the pod's service account in the cluster, `$KUBECONFIG`,
/// `~/.kube/config`).
pub async fn client(k8s: &Kubernetes) -> anyhow::Result<Client> {
    firebreak_common::process::install_tls_provider();
    let config = match &k8s.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                anyhow::anyhow!("kubernetes.kubeconfig: cannot read {}: {e}", path.display())
            })?;
            let options = kube::config::KubeConfigOptions {
                context: k8s.context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| anyhow::anyhow!("kubernetes.kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| anyhow::anyhow!("no Kubernetes credentials found: {e}"))?,
    };
    Ok(Client::try_from(config)?)
}

/// Publishes events under their stable ids; those already published are left out.
async fn publish(journal: &DurableJournal, source: &str, events: Vec<Emit>) {
    if events.is_empty() {
        return;
    }
    let ids = events.iter().map(|e| e.id.clone()).collect();
    let published = journal
        .publish_with_ids(ids, |seq, i| {
            let e = &events[i];
            firebreak_server::envelope(source, &e.id, e.ty, e.time, &e.subject, seq, &e.data)
        })
        .await;
    match published {
        Ok(n) if n > 0 => tracing::debug!(new = n, "published Kubernetes events"),
        Ok(_) => {}
        // The next change publishes the whole snapshot again: nothing is lost for long.
        Err(e) => tracing::error!(error = %e, "cannot publish Kubernetes events"),
    }
}

/// What a watcher says on the stream about the API: `source.degraded` once when it starts
/// failing (again only when the reason changes), and once with `degraded: false` when it
/// works again, as the Prometheus source does.
struct Health {
    service: String,
    what: String,
    failing: Option<String>,
}

impl Health {
    fn new(service: &str, what: &str) -> Health {
        Health {
            service: service.to_owned(),
            what: what.to_owned(),
            failing: None,
        }
    }

    /// One item of a watch stream, settled the same way by every watcher: a change is
    /// returned after saying the API works (again); an error is said and `None` returned
    /// (the stream retries with backoff). 410 Gone is no error: the history moved on and
    /// the watcher lists again, which is how watching works.
    async fn settle<T>(
        &mut self,
        journal: &DurableJournal,
        source: &str,
        item: Result<T, watcher::Error>,
    ) -> Option<T> {
        match item {
            Ok(change) => {
                self.report(journal, source, Ok(())).await;
                Some(change)
            }
            Err(e) => {
                self.failed(journal, source, &e).await;
                None
            }
        }
    }

    /// Says a watch stream's error (not 410 Gone). For a watcher whose health is more than
    /// its stream working (the route's: does it bear the configuration out), which reports
    /// its own outcome on every change.
    async fn failed(&mut self, journal: &DurableJournal, source: &str, e: &watcher::Error) {
        match e {
            watcher::Error::WatchError(status) if status.code == 410 => {}
            other => self.report(journal, source, Err(other.to_string())).await,
        }
    }

    async fn report(
        &mut self,
        journal: &DurableJournal,
        source: &str,
        outcome: Result<(), String>,
    ) {
        let next = outcome.err();
        if next == self.failing {
            return;
        }
        let (degraded, reason) = match (&next, &self.failing) {
            (Some(why), _) => (true, why.clone()),
            (None, Some(was)) => (false, format!("works again (was: {was})")),
            (None, None) => return,
        };
        if degraded {
            tracing::warn!(service = %self.service, what = %self.what, reason = %reason, "Kubernetes source degraded");
        }
        self.failing = next;
        let now = chrono::Utc::now();
        let data = serde_json::to_value(firebreak_protocol::events::SourceDegraded {
            source: "kubernetes".into(),
            service: self.service.clone(),
            region: String::new(),
            what: self.what.clone(),
            reason,
            degraded,
        })
        .unwrap_or_default();
        let event = Emit {
            id: uuid::Uuid::now_v7().to_string(),
            ty: firebreak_protocol::events::EventType::SourceDegraded,
            time: now,
            subject: format!("service/{}", self.service),
            data,
        };
        publish(journal, source, vec![event]).await;
    }
}

/// Watches until the task is stopped; when the API cannot be reached at all (no
/// credentials, a bad kubeconfig), says so on the stream and tries again every 30 s.
pub async fn run_reporting(
    k8s: Kubernetes,
    mut services: crate::prometheus::Services,
    cluster: String,
    journal: Arc<DurableJournal>,
    rollouts: Rollouts,
) {
    let source = format!("/clusters/{cluster}");
    let mut health = Health::new("", "the Kubernetes API");
    // The services with Kubernetes objects: the watchers start over when discovery
    // changes them (their events have stable ids, so nothing is said twice).
    let mut list = watched(&services.borrow_and_update());
    loop {
        let watching = async {
            if list.is_empty() {
                // Nothing to watch (yet): wait for discovery to find something.
                std::future::pending::<()>().await;
            }
            run(
                k8s.clone(),
                list.clone(),
                cluster.clone(),
                journal.clone(),
                rollouts.clone(),
            )
            .await
        };
        let ended = tokio::select! {
            ended = watching => ended,
            now = next_list(&mut services, &list) => {
                tracing::info!(services = now.len(), "watching the services discovery found");
                list = now;
                continue;
            }
        };
        let why = match ended {
            Ok(()) => "every watcher stopped".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        health.report(&journal, &source, Err(why)).await;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
            now = next_list(&mut services, &list) => list = now,
        }
    }
}

/// The services with Kubernetes objects, of `all`.
fn watched(all: &[Service]) -> Vec<Service> {
    all.iter()
        .filter(|s| s.kubernetes.is_some())
        .cloned()
        .collect()
}

/// The next list of watched services that differs from `list` (never, without discovery).
async fn next_list(services: &mut crate::prometheus::Services, list: &[Service]) -> Vec<Service> {
    loop {
        if services.changed().await.is_err() {
            // No discovery: the list never changes.
            std::future::pending::<()>().await;
        }
        let now = watched(&services.borrow_and_update());
        if now != list {
            return now;
        }
    }
}

/// Watches until the task is stopped. Each watcher retries on its own with backoff.
pub async fn run(
    k8s: Kubernetes,
    services: Vec<Service>,
    cluster: String,
    journal: Arc<DurableJournal>,
    rollouts: Rollouts,
) -> anyhow::Result<()> {
    let client = client(&k8s).await?;
    let source = format!("/clusters/{cluster}");
    let mut tasks = tokio::task::JoinSet::new();
    for service in services.iter().filter(|s| s.kubernetes.is_some()) {
        tasks.spawn(watch_workload(
            client.clone(),
            k8s.clone(),
            service.clone(),
            source.clone(),
            journal.clone(),
            rollouts.clone(),
        ));
    }
    for service in &services {
        if let Some(route) = service.kubernetes.as_ref().and_then(|o| o.route.clone()) {
            tasks.spawn(watch_route(
                client.clone(),
                service.name.clone(),
                route,
                source.clone(),
                journal.clone(),
            ));
        }
    }
    let pools: Vec<String> = services
        .iter()
        .filter_map(|s| s.kubernetes.as_ref()?.node_pool.clone())
        .collect();
    if !pools.is_empty() {
        tasks.spawn(watch_nodes(
            client.clone(),
            k8s.clone(),
            services.clone(),
            pools,
            source.clone(),
            journal.clone(),
        ));
    }
    while let Some(ended) = tasks.join_next().await {
        if let Err(e) = ended {
            tracing::error!(error = %e, "a Kubernetes watcher stopped");
        }
    }
    Ok(())
}

/// The stream of a reflector over `api`, with backoff; yields after every change.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    (store, stream)
}

async fn watch_workload(
    client: Client,
    k8s: Kubernetes,
    service: Service,
    source: String,
    journal: Arc<DurableJournal>,
    rollouts: Rollouts,
) {
    let Some(objects) = service.kubernetes.clone() else {
        return;
    };
    if objects.kind == WorkloadKind::Rollout {
        return watch_argo(client, k8s, service, source, journal, rollouts).await;
    }
    let selector = objects.pod_selector();
    let (deployments, d_stream) = reflect(
        Api::<Deployment>::namespaced(client.clone(), &objects.namespace),
        watcher::Config::default().fields(&format!("metadata.name={}", objects.name)),
    );
    let (replica_sets, rs_stream) = reflect(
        Api::<ReplicaSet>::namespaced(client.clone(), &objects.namespace),
        watcher::Config::default().labels(&selector),
    );
    let (pods, pod_stream) = reflect(
        Api::<Pod>::namespaced(client.clone(), &objects.namespace),
        watcher::Config::default().labels(&selector),
    );
    let (warnings, warning_stream) = reflect(
        Api::<Event>::namespaced(client, &objects.namespace),
        watcher::Config::default().fields("type=Warning"),
    );
    let mut d_stream = std::pin::pin!(d_stream);
    let mut rs_stream = std::pin::pin!(rs_stream);
    let mut pod_stream = std::pin::pin!(pod_stream);
    let mut warning_stream = std::pin::pin!(warning_stream);
    let mut health = Health::new(
        &service.name,
        &format!("Deployment {}/{}", objects.namespace, objects.name),
    );
    loop {
        let next = tokio::select! {
            e = d_stream.next() => e.map(|r| r.map(drop)),
            e = rs_stream.next() => e.map(|r| r.map(drop)),
            e = pod_stream.next() => e.map(|r| r.map(drop)),
            e = warning_stream.next() => e.map(|r| r.map(drop)),
        };
        let Some(item) = next else { return };
        if health.settle(&journal, &source, item).await.is_none() {
            continue;
        }
        let rss: Vec<ReplicaSet> = replica_sets.state().iter().map(|r| (**r).clone()).collect();
        for d in deployments.state() {
            let story = super::rollouts::observe(
                &service.name,
                &k8s.model_version,
                &d,
                &rss,
                chrono::Utc::now(),
            );
            if story.current {
                rollouts.set(&service.name, story.under_way);
            }
            publish(&journal, &source, story.events).await;
        }
        let snapshot: Vec<Pod> = pods.state().iter().map(|p| (**p).clone()).collect();
        let failing = super::pods::observe(&service.name, &snapshot, chrono::Utc::now());
        publish(&journal, &source, failing).await;
        // Warnings about the service's own objects only.
        let mut ours = vec![format!("Deployment/{}", objects.name)];
        ours.extend(
            rss.iter()
                .filter_map(|r| Some(format!("ReplicaSet/{}", r.metadata.name.as_deref()?))),
        );
        ours.extend(
            snapshot
                .iter()
                .filter_map(|p| Some(format!("Pod/{}", p.metadata.name.as_deref()?))),
        );
        let events: Vec<Event> = warnings.state().iter().map(|e| (**e).clone()).collect();
        let told = super::warnings::observe(&service.name, &ours, &events, chrono::Utc::now());
        publish(&journal, &source, told).await;
    }
}

/// An Argo Rollout (through the dynamic API: the gateway needs no Argo types) and its
/// ReplicaSets, through `argo::observe`.
async fn watch_argo(
    client: Client,
    k8s: Kubernetes,
    service: Service,
    source: String,
    journal: Arc<DurableJournal>,
    under_way: Rollouts,
) {
    use kube::api::DynamicObject;
    use kube::core::{ApiResource, GroupVersionKind};
    let Some(objects) = service.kubernetes.clone() else {
        return;
    };
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"));
    let rollouts: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &objects.namespace, &resource);
    let selector = objects.pod_selector();
    let (replica_sets, rs_stream) = reflect(
        Api::<ReplicaSet>::namespaced(client, &objects.namespace),
        watcher::Config::default().labels(&selector),
    );
    let r_stream = watcher(
        rollouts,
        watcher::Config::default().fields(&format!("metadata.name={}", objects.name)),
    )
    .default_backoff();
    let mut r_stream = std::pin::pin!(r_stream);
    let mut rs_stream = std::pin::pin!(rs_stream);
    let mut health = Health::new(
        &service.name,
        &format!("Rollout {}/{}", objects.namespace, objects.name),
    );
    let mut latest: Option<serde_json::Value> = None;
    loop {
        let (rollout_event, item) = tokio::select! {
            e = r_stream.next() => {
                let Some(item) = e else { return };
                (item.as_ref().ok().cloned(), item.map(drop))
            }
            e = rs_stream.next() => {
                let Some(item) = e else { return };
                (None, item.map(drop))
            }
        };
        if health.settle(&journal, &source, item).await.is_none() {
            continue;
        }
        match rollout_event {
            Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                latest = serde_json::to_value(&o).ok();
            }
            Some(watcher::Event::Delete(_)) => latest = None,
            Some(watcher::Event::Init | watcher::Event::InitDone) | None => {}
        }
        let Some(rollout) = &latest else { continue };
        let rss: Vec<ReplicaSet> = replica_sets.state().iter().map(|r| (**r).clone()).collect();
        let story = super::argo::observe(
            &service.name,
            &k8s.model_version,
            rollout,
            &rss,
            chrono::Utc::now(),
        );
        if story.current {
            under_way.set(&service.name, story.under_way);
        }
        publish(&journal, &source, story.events).await;
    }
}

/// The service's route, read at start and at every change as failover would read it:
/// a configured backend the route does not have (or has twice in one rule) is said on the
/// stream once, naming it, and once more when the route bears the configuration out again.
async fn watch_route(
    client: Client,
    service: String,
    route: crate::config::Route,
    source: String,
    journal: Arc<DurableJournal>,
) {
    let name = super::route::route_name(&route);
    let stream = watcher(
        super::act::route_api(&client, &route),
        watcher::Config::default().fields(&format!("metadata.name={}", route.name)),
    )
    .default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut health = Health::new(&service, &name);
    let mut latest: Option<serde_json::Value> = None;
    let mut listed = false;
    while let Some(event) = stream.next().await {
        match event {
            Err(e) => {
                health.failed(&journal, &source, &e).await;
                continue;
            }
            Ok(watcher::Event::Init) => {
                latest = None;
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitApply(o)) | Ok(watcher::Event::Apply(o)) => {
                latest = Some(o.data);
                if !listed {
                    continue;
                }
            }
            Ok(watcher::Event::Delete(_)) => latest = None,
            Ok(watcher::Event::InitDone) => listed = true,
        }
        let outcome = match &latest {
            None => Err(format!(
                "{name} does not exist: failover has no route to move"
            )),
            Some(object) => {
                let reading = super::route::read(&route, object);
                if !reading.problems.is_empty() {
                    Err(reading.problems.join("; "))
                } else if reading.primary().is_none() {
                    Err(format!("{name} sends no weight to any configured backend"))
                } else {
                    Ok(())
                }
            }
        };
        health.report(&journal, &source, outcome).await;
    }
}

async fn watch_nodes(
    client: Client,
    k8s: Kubernetes,
    services: Vec<Service>,
    pools: Vec<String>,
    source: String,
    journal: Arc<DurableJournal>,
) {
    let selector = format!("{} in ({})", k8s.pool_label, pools.join(","));
    let (nodes, stream) = reflect(
        Api::<Node>::all(client),
        watcher::Config::default().labels(&selector),
    );
    let mut stream = std::pin::pin!(stream);
    let mut health = Health::new("", &format!("nodes ({selector})"));
    // Node recoveries age out of their window: look again now and then even when quiet.
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            e = stream.next() => {
                let Some(item) = e else { return };
                if health.settle(&journal, &source, item).await.is_none() {
                    continue;
                }
            }
            _ = tick.tick() => {}
        }
        let snapshot: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
        let events = super::nodes::observe(&k8s, &services, &snapshot, chrono::Utc::now());
        publish(&journal, &source, events).await;
    }
}
