//! The Prometheus source: every interval, each service's configured PromQL per region
//! through the HTTP API (`/api/v1/query`), published as one `service.metrics` event per
//! (service, region). A query that fails or returns nothing is never skipped silently,
//! and never said more than it needs to be: the gateway keeps every failing query on its
//! status endpoint, publishes no half-filled sample, and publishes one `source.degraded`
//! per service whenever what that service's queries cannot give changes (all of its
//! regions and figures in one event; `degraded: false` once they all answer again). A
//! query that returns nothing counts only once it has done so for the warm-up
//! (`warm_up_s`): a Prometheus that has just started has no minute of data to `rate()`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::config::{Prometheus, Query, RevisionQueries, Service, METRICS};
use super::journal::DurableJournal;
use super::revisions::{Revision, Rollouts};
use firebreak_protocol::events::{
    EventType, RevisionFigures, RevisionMetrics, RevisionRole, ServiceMetrics, SourceDegraded,
};
use firebreak_server::envelope;

/// The Prometheus HTTP API's answer to an instant query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// One query's value, or why there is none.
pub fn read_value(body: &[u8]) -> Result<f64, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("{NOT_AN_ANSWER}: {e}"))?;
    if answer.status != "success" {
        return Err(answer.error.unwrap_or_else(|| "the query failed".into()));
    }
    let data = answer.data.ok_or("the answer has no data")?;
    // A vector sample and a scalar are both [unix seconds, "value as a string"].
    let sample = match data.result_type.as_str() {
        "vector" => match data.result.as_array().map(Vec::as_slice) {
            Some([]) | None => return Err("the query returned nothing".into()),
            Some([one]) => one["value"].clone(),
            Some(many) => {
                return Err(format!(
                    "the query returned {} series; aggregate it to one (sum by (…), max, …)",
                    many.len()
                ))
            }
        },
        "scalar" => data.result.clone(),
        other => {
            return Err(format!(
                "the query returned a {other}, not a vector or scalar"
            ))
        }
    };
    let value: f64 = sample[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or("the sample's value is not a number")?;
    if !value.is_finite() {
        return Err(format!("the value is {value}"));
    }
    Ok(value)
}

/// What the poller knows of each (service, region, metric) that does not answer.
pub type Failures = Arc<Mutex<BTreeMap<(String, String, String), String>>>;

/// The services to poll: the file's, then the discovered ones (`discovery.rs` sends each
/// new list).
pub type Services = tokio::sync::watch::Receiver<Arc<Vec<Service>>>;

/// Which of a preset's alternatives answers for each (service, figure), once one has:
/// its index in the figure's [`Query::alternatives`].
pub type Choices = Arc<Mutex<BTreeMap<(String, String), usize>>>;

/// Polls until the task is stopped.
pub async fn poll(
    prometheus: Prometheus,
    services: Services,
    cluster: String,
    journal: Arc<DurableJournal>,
    (failures, choices): (Failures, Choices),
    rollouts: Rollouts,
) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the Prometheus client");
            return;
        }
    };
    let source = format!("/clusters/{cluster}");
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(prometheus.interval_s)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut poller = Poller {
        http,
        warm_up: Duration::from_secs(u64::from(prometheus.warm_up_s)),
        prometheus,
        failures,
        choices,
        empty_since: BTreeMap::new(),
        said: BTreeMap::new(),
        totals: BTreeMap::new(),
        gpus: Default::default(),
    };
    let mut polled: Vec<String> = Vec::new();
    loop {
        tick.tick().await;
        // The file's services and the discovered ones, as discovery last said.
        let services = services.borrow().clone();
        let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
        if names != polled {
            poller.forget_all_but(&names);
            polled = names;
        }
        let mut events = Vec::new();
        // The services whose every figure is a preset's are asked together, one query per
        // figure per preset; the others one query per figure, region and service.
        let mut batches: BTreeMap<String, Vec<&Service>> = BTreeMap::new();
        for service in services.iter().filter(|s| !s.queries.is_empty()) {
            match service
                .preset
                .as_ref()
                .filter(|_| poller.prometheus.batch && batchable(service))
            {
                Some(p) => batches.entry(p.batch_key()).or_default().push(service),
                None => poller.service(service, &mut events).await,
            }
        }
        for group in batches.values() {
            poller.batch(group, &mut events).await;
        }
        for service in services.iter() {
            let batched = poller.prometheus.batch && batchable(service);
            if let Some(g) = service.gpu.as_ref().filter(|_| !batched) {
                poller.gpu_signals(service, g, &mut events).await;
            }
        }
        for service in services.iter() {
            if let Some(q) = &service.revisions {
                match rollouts.get(&service.name) {
                    Some(under_way) => {
                        poller
                            .by_revision(service, q, &under_way, &mut events)
                            .await
                    }
                    // Counted afresh at the next rollout: no window spans two.
                    None => poller.totals.retain(|k, _| k.0 != service.name),
                }
            }
        }
        if events.is_empty() {
            continue;
        }
        let now = chrono::Utc::now();
        let published = journal
            .publish(events.len(), |seq, i| {
                let (ty, subject, data) = &events[i];
                let id = uuid::Uuid::now_v7().to_string();
                envelope(&source, &id, *ty, now, subject, seq, data)
            })
            .await;
        if let Err(e) = published {
            tracing::error!(error = %e, "cannot record the Prometheus samples");
        }
    }
}

/// An event to publish: its type, its subject (`service/NAME`, `node/NAME`) and its data.
type Said = super::gpu::Told;

/// (service, region, metric)
type Key = (String, String, String);

/// The poller's memory between rounds.
struct Poller {
    http: reqwest::Client,
    prometheus: Prometheus,
    warm_up: Duration,
    failures: Failures,
    choices: Choices,
    /// Since when each (service, region, metric) has returned nothing.
    empty_since: BTreeMap<Key, std::time::Instant>,
    /// What each service's last `source.degraded` said cannot be given.
    said: BTreeMap<String, Failing>,
    /// Each revision counter's last value and when it was read: (service, region, the
    /// `$revision` value, query) → (value, when).
    totals: BTreeMap<(String, String, String, &'static str), (f64, std::time::Instant)>,
    /// The GPU and KV-cache detectors' memory.
    gpus: super::gpu::GpuWatch,
}

impl Poller {
    /// One round for a service: its metrics in each region where every figure answered,
    /// and one `source.degraded` when what it cannot give changed.
    async fn service(&mut self, service: &Service, events: &mut Vec<Said>) {
        let mut outcomes = Outcomes::new();
        for region in &service.regions {
            for metric in METRICS {
                if service.left_out.iter().any(|(m, _)| m == metric) {
                    continue;
                }
                let outcome = match service.queries.get(*metric) {
                    None => Err("no query is configured for it".to_owned()),
                    Some(q) => self.ask(&service.name, metric, q, region).await,
                };
                outcomes.insert((region.clone(), metric), outcome);
            }
        }
        self.publish(service, outcomes, events);
    }

    /// One round of the services of one preset, all asked at once: each figure is one
    /// query across every service (by its service and region labels), whatever their
    /// number, and each service's figures are read out of the answers.
    async fn batch(&mut self, services: &[&Service], events: &mut Vec<Said>) {
        let Some(preset) = services.first().and_then(|s| s.preset.clone()) else {
            return;
        };
        let batch = preset.batched();
        let queue = self.batch_figures(&preset, &batch, services, events).await;
        self.batch_signals(&preset, &batch, services, queue, events)
            .await;
    }

    /// The figures of [`Poller::batch`]; the queue depths it read, for the KV-cache signal.
    async fn batch_figures(
        &mut self,
        preset: &super::presets::PresetUse,
        batch: &super::presets::Batch,
        services: &[&Service],
        events: &mut Vec<Said>,
    ) -> Option<ByLabels> {
        let key = format!("batch {}", preset.batch_key());
        // metric → (label values → value), or why the query gave nothing.
        let mut answers: BTreeMap<&str, Result<ByLabels, String>> = BTreeMap::new();
        let gpu = batch.gpu.clone().map(|q| ("gpu_utilization", vec![q]));
        for (metric, alternatives) in batch.figures.iter().cloned().chain(gpu) {
            let by = if metric == "gpu_utilization" {
                super::presets::DEPLOYMENT_LABEL
            } else {
                preset.service_label.as_str()
            };
            let q = Query {
                alternatives,
                preset: Some(preset.stack),
            };
            let answer = self.ask_vector(&key, metric, &q).await.map(|series| {
                series
                    .into_iter()
                    .filter_map(|(labels, v)| {
                        Some((
                            (
                                labels.get(by)?.clone(),
                                labels.get(&preset.region_label)?.clone(),
                            ),
                            v,
                        ))
                    })
                    .collect()
            });
            answers.insert(metric, answer);
        }
        for service in services {
            let Some(p) = &service.preset else { continue };
            let mut outcomes = Outcomes::new();
            for region in &service.regions {
                for metric in METRICS {
                    if service.left_out.iter().any(|(m, _)| m == metric) {
                        continue;
                    }
                    let who = if *metric == "gpu_utilization" {
                        &service.deployment
                    } else {
                        &p.service_value
                    };
                    let outcome = match answers.get(metric) {
                        None => Err("no query is configured for it".to_owned()),
                        Some(Err(why)) => Err(why.clone()),
                        Some(Ok(values)) => values
                            .get(&(who.clone(), region.clone()))
                            .copied()
                            .ok_or_else(|| NOTHING.to_owned()),
                    };
                    outcomes.insert((region.clone(), metric), outcome);
                }
            }
            self.publish(service, outcomes, events);
        }
        answers.remove("queue_depth").and_then(Result::ok)
    }

    /// The GPU and KV-cache signals of a preset's services, asked together: every GPU's
    /// XID in one query (each series with its deployment, from its pod's name), and the
    /// KV cache's use and preemptions by service and region.
    async fn batch_signals(
        &mut self,
        preset: &super::presets::PresetUse,
        batch: &super::presets::Batch,
        services: &[&Service],
        queue: Option<ByLabels>,
        events: &mut Vec<Said>,
    ) {
        let key = format!("batch {}", preset.batch_key());
        let seconds = f64::from(self.prometheus.interval_s);
        let xids = match &batch.xid {
            Some(q) => Some(query_vector(&self.http, &self.prometheus.url, q).await),
            None => None,
        };
        let by_service = |series: Vec<Series>, label: &str| -> ByLabels {
            series
                .into_iter()
                .filter_map(|(labels, v)| {
                    Some((
                        (
                            labels.get(label)?.clone(),
                            labels.get(&preset.region_label)?.clone(),
                        ),
                        v,
                    ))
                })
                .collect()
        };
        let kv = match (&batch.kv_cache, queue) {
            (Some((usage, preempted)), Some(queue)) => {
                let usage = Query {
                    alternatives: usage.clone(),
                    preset: Some(preset.stack),
                };
                let preempted = Query::written(preempted.clone());
                let usage = self.ask_vector(&key, "kv_cache_usage", &usage).await;
                let preempted = self.ask_vector(&key, "preemptions_total", &preempted).await;
                match (usage, preempted) {
                    (Ok(u), Ok(p)) => Some(Ok((
                        by_service(u, &preset.service_label),
                        by_service(p, &preset.service_label),
                        queue,
                    ))),
                    (Err(why), _) | (_, Err(why)) => Some(Err(why)),
                }
            }
            _ => None,
        };
        for service in services {
            let Some(p) = &service.preset else { continue };
            let pool = service
                .kubernetes
                .as_ref()
                .and_then(|k| k.node_pool.clone())
                .unwrap_or_default();
            for region in &service.regions {
                match &xids {
                    Some(Ok(series)) => {
                        let key = (service.name.clone(), region.clone(), "xid".to_owned());
                        self.answered(&key);
                        let read: Vec<super::gpu::XidSeries> = series
                            .iter()
                            .filter(|(labels, _)| {
                                labels.get(super::presets::DEPLOYMENT_LABEL)
                                    == Some(&service.deployment)
                                    && labels.get(&preset.region_label) == Some(region)
                            })
                            .filter_map(|(labels, xid)| {
                                Some(super::gpu::XidSeries {
                                    node: labels.get("Hostname")?.clone(),
                                    gpu: labels.get("gpu").cloned().unwrap_or_default(),
                                    xid: *xid,
                                })
                            })
                            .collect();
                        events.extend(self.gpus.xids(&service.name, region, &pool, &read));
                    }
                    Some(Err(why)) => {
                        self.failed(
                            (service.name.clone(), region.clone(), "xid".to_owned()),
                            why,
                        );
                    }
                    None => {}
                }
                match &kv {
                    Some(Ok((usage, preempted, queue))) => {
                        let at = (p.service_value.clone(), region.clone());
                        if let (Some(u), Some(pr), Some(q)) =
                            (usage.get(&at), preempted.get(&at), queue.get(&at))
                        {
                            events.extend(self.gpus.kv(
                                &service.name,
                                region,
                                (*u, *pr, *q),
                                seconds,
                            ));
                        }
                    }
                    Some(Err(why)) => {
                        self.failed(
                            (
                                service.name.clone(),
                                region.clone(),
                                "kv_cache_usage".to_owned(),
                            ),
                            why,
                        );
                    }
                    None => {}
                }
            }
        }
    }

    /// A service's figures of this round (per region and metric, each a value or why
    /// not): its metrics in each region where every figure answered, and one
    /// `source.degraded` when what it cannot give changed.
    fn publish(&mut self, service: &Service, mut outcomes: Outcomes, events: &mut Vec<Said>) {
        // A region that serves no requests (a standby one) has no latency or error rate to
        // measure (PromQL gives NaN or nothing): they are 0, beside its 0 requests/s,
        // rather than a figure said missing for as long as the region stands by.
        for region in &service.regions {
            let idle = matches!(
                outcomes.get(&(region.clone(), "requests_per_s")),
                Some(Ok(rps)) if *rps == 0.0
            );
            if idle {
                for metric in ["latency_p50_ms", "latency_p99_ms", "error_rate"] {
                    if let Some(outcome @ Err(_)) = outcomes.get_mut(&(region.clone(), metric)) {
                        *outcome = Ok(0.0);
                    }
                }
            }
        }
        let mut failing = Failing::new();
        // A query of the service still within its warm-up holds the service's statement
        // back, so that it is made once, whole.
        let mut warming = false;
        for (r, region) in service.regions.iter().enumerate() {
            let mut values = BTreeMap::new();
            for metric in METRICS {
                let key = (service.name.clone(), region.clone(), (*metric).to_owned());
                let Some(outcome) = outcomes.remove(&(region.clone(), metric)) else {
                    continue;
                };
                match outcome {
                    Ok(v) => {
                        values.insert(*metric, v);
                        self.answered(&key);
                    }
                    Err(reason) => {
                        if self.failed(key, &reason) {
                            failing.insert((region.clone(), (*metric).to_owned()), reason);
                        } else {
                            warming = true;
                        }
                    }
                }
            }
            if values.len() + service.left_out.len() == METRICS.len() {
                let m = ServiceMetrics {
                    service: service.name.clone(),
                    region: region.clone(),
                    window_s: self.prometheus.interval_s,
                    latency_p50_ms: values["latency_p50_ms"].max(0.0),
                    latency_p99_ms: values["latency_p99_ms"].max(0.0),
                    error_rate: values["error_rate"].clamp(0.0, 1.0),
                    requests_per_s: values["requests_per_s"].max(0.0),
                    queue_depth: values.get("queue_depth").map(|v| v.max(0.0)),
                    gpu_utilization: values.get("gpu_utilization").map(|v| v.clamp(0.0, 1.0)),
                    // The revision comes with the Kubernetes adapter; 0 until then.
                    revision: 0,
                    // The first region listed serves the traffic until the adapter reads
                    // the route's weights.
                    primary: r == 0,
                    team: service.team.clone(),
                };
                if let Ok(data) = serde_json::to_value(m) {
                    events.push((
                        EventType::ServiceMetrics,
                        format!("service/{}", service.name),
                        data,
                    ));
                }
            }
        }
        // One event for the service when what it cannot give changed.
        let before = self.said.get(&service.name).cloned().unwrap_or_default();
        if failing != before && !warming {
            let event = if failing.is_empty() {
                degraded(service, &before, false)
            } else {
                degraded(service, &failing, true)
            };
            events.push(event);
            if failing.is_empty() {
                self.said.remove(&service.name);
            } else {
                self.said.insert(service.name.clone(), failing);
            }
        }
    }

    /// One round of a service's figures by revision while it rolls out: in each region,
    /// the requests and failed requests each revision's counters added since the last
    /// round, and each one's p50 and p99 now. A region is published once both revisions
    /// have a window (the first round of a rollout only reads the counters).
    async fn by_revision(
        &mut self,
        service: &Service,
        q: &RevisionQueries,
        under_way: &super::revisions::UnderWay,
        events: &mut Vec<Said>,
    ) {
        for (r, region) in service.regions.iter().enumerate() {
            let mut revisions = Vec::new();
            let mut window_s = 0u32;
            for (revision, role) in [
                (&under_way.canary, RevisionRole::Canary),
                (&under_way.stable, RevisionRole::Stable),
            ] {
                if let Some((figures, seconds)) =
                    self.revision(service, q, region, revision, role).await
                {
                    window_s = window_s.max(seconds);
                    revisions.push(figures);
                }
            }
            if revisions.len() == 2 && revisions.iter().any(|f| f.requests > 0) {
                let m = RevisionMetrics {
                    service: service.name.clone(),
                    region: region.clone(),
                    window_s: window_s.max(1),
                    primary: r == 0,
                    revisions,
                };
                if let Ok(data) = serde_json::to_value(m) {
                    events.push((
                        EventType::RevisionMetrics,
                        format!("service/{}", service.name),
                        data,
                    ));
                }
            }
        }
    }

    /// One revision's window in one region, with its length in seconds; none when a
    /// query gives nothing or its counters have no earlier reading to count from.
    async fn revision(
        &mut self,
        service: &Service,
        q: &RevisionQueries,
        region: &str,
        revision: &Revision,
        role: RevisionRole,
    ) -> Option<(RevisionFigures, u32)> {
        let value = revision.value(q.value);
        if value.is_empty() {
            return None;
        }
        let fill = |query: &str| {
            query
                .replace("$region", region)
                .replace("$revision", &value)
        };
        let read = |name: &'static str, query: &str| (name, fill(query));
        let asked = [
            read("requests_total", &q.requests_total),
            read("errors_total", &q.errors_total),
            read("latency_p50_ms", &q.latency_p50_ms),
            read("latency_p99_ms", &q.latency_p99_ms),
        ];
        let mut got = BTreeMap::new();
        for (name, promql) in &asked {
            let key = (
                service.name.clone(),
                region.to_owned(),
                format!("{name} of revision {}", revision.number),
            );
            match query(&self.http, &self.prometheus.url, promql).await {
                Ok(v) => {
                    self.answered(&key);
                    got.insert(*name, v);
                }
                // A revision that failed nothing has no failed-request series at all.
                Err(why) if *name == "errors_total" && why == NOTHING => {
                    self.answered(&key);
                    got.insert(*name, 0.0);
                }
                Err(why) => {
                    self.failed(key, &why);
                }
            }
        }
        let now = std::time::Instant::now();
        let mut count = |name: &'static str| -> Option<(u64, f64)> {
            let current = *got.get(name)?;
            let key = (service.name.clone(), region.to_owned(), value.clone(), name);
            let before = self.totals.insert(key, (current, now));
            let (last, at) = before?;
            // A counter that went down was reset (pods replaced): no window this round.
            (current >= last).then(|| {
                (
                    (current - last).round() as u64,
                    now.duration_since(at).as_secs_f64(),
                )
            })
        };
        let requests = count("requests_total");
        let errors = count("errors_total");
        let (requests, seconds) = requests?;
        let (errors, _) = errors?;
        Some((
            RevisionFigures {
                revision: revision.number,
                role,
                nodes: revision.replicas,
                requests,
                errors: errors.min(requests),
                latency_p50_ms: got.get("latency_p50_ms")?.max(0.0),
                latency_p99_ms: got.get("latency_p99_ms")?.max(0.0),
            },
            seconds.round().max(1.0) as u32,
        ))
    }

    /// One round of a service's GPU and model-server signals in each region: its GPUs'
    /// XIDs and counts, and its KV-cache pressure.
    async fn gpu_signals(
        &mut self,
        service: &Service,
        g: &super::config::GpuQueries,
        events: &mut Vec<Said>,
    ) {
        let pool = service
            .kubernetes
            .as_ref()
            .and_then(|k| k.node_pool.clone())
            .unwrap_or_default();
        let seconds = f64::from(self.prometheus.interval_s);
        for region in &service.regions {
            if let Some(xid) = &g.xid {
                let key = (service.name.clone(), region.clone(), "xid".to_owned());
                match query_vector(
                    &self.http,
                    &self.prometheus.url,
                    &xid.replace("$region", region),
                )
                .await
                {
                    Ok(series) => {
                        self.answered(&key);
                        let read: Vec<super::gpu::XidSeries> = series
                            .into_iter()
                            .filter_map(|(labels, xid)| {
                                Some(super::gpu::XidSeries {
                                    node: labels.get(&g.node_label)?.clone(),
                                    gpu: labels.get(&g.gpu_label).cloned().unwrap_or_default(),
                                    xid,
                                })
                            })
                            .collect();
                        events.extend(self.gpus.xids(&service.name, region, &pool, &read));
                    }
                    Err(why) => {
                        self.failed(key, &why);
                    }
                }
            }
            let (Some(usage), Some(preempted), Some(queue)) = (
                &g.kv_cache_usage,
                &g.preemptions_total,
                service.queries.get("queue_depth"),
            ) else {
                continue;
            };
            let preempted = Query::written(preempted.clone());
            let mut read = Vec::new();
            for (name, q) in [
                ("kv_cache_usage", usage),
                ("preemptions_total", &preempted),
                ("queue_depth", queue),
            ] {
                let key = (service.name.clone(), region.clone(), name.to_owned());
                match self.ask(&service.name, name, q, region).await {
                    Ok(v) => {
                        self.answered(&key);
                        read.push(v);
                    }
                    Err(why) => {
                        self.failed(key, &why);
                    }
                }
            }
            if let [usage, preempted, queue] = read[..] {
                events.extend(self.gpus.kv(
                    &service.name,
                    region,
                    (usage, preempted, queue),
                    seconds,
                ));
            }
        }
    }

    /// Forgets what it knew of services no longer polled (retired by discovery).
    fn forget_all_but(&mut self, names: &[String]) {
        let kept = |service: &String| names.contains(service);
        self.empty_since.retain(|k, _| kept(&k.0));
        self.said.retain(|k, _| kept(k));
        self.totals.retain(|k, _| kept(&k.0));
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| kept(&k.0));
        // A preset's batch choices stay: they are the preset's, not one service's.
        self.choices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| kept(&k.0) || k.0.starts_with("batch "));
    }

    /// One figure's value in one region: the alternative that answered last, else each
    /// in order until one does (a stack that renamed the metric answers to one name only).
    async fn ask(
        &self,
        service: &str,
        metric: &str,
        q: &Query,
        region: &str,
    ) -> Result<f64, String> {
        let key = (service.to_owned(), metric.to_owned());
        let chosen = self
            .choices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
            .min(q.alternatives.len().saturating_sub(1));
        let ask = |i: usize| {
            let promql = q.alternatives[i].replace("$region", region);
            async move { query(&self.http, &self.prometheus.url, &promql).await }
        };
        let first = ask(chosen).await;
        if first.as_ref().err().is_none_or(|why| why != NOTHING) {
            return first;
        }
        for i in (0..q.alternatives.len()).filter(|i| *i != chosen) {
            if let Ok(v) = ask(i).await {
                tracing::info!(%service, %metric, query = %q.alternatives[i], "a preset's other metric name answers");
                self.choices
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, i);
                return Ok(v);
            }
        }
        first
    }

    /// [`Poller::ask`] for a query across services: its series, the alternative that
    /// answered last, else each in order until one gives any series. `key` names the
    /// preset's batch in the choices.
    async fn ask_vector(&self, key: &str, metric: &str, q: &Query) -> Result<Vec<Series>, String> {
        let choice = (key.to_owned(), metric.to_owned());
        let chosen = self
            .choices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&choice)
            .copied()
            .unwrap_or(0)
            .min(q.alternatives.len().saturating_sub(1));
        let first = query_vector(&self.http, &self.prometheus.url, &q.alternatives[chosen]).await;
        if !matches!(&first, Ok(series) if series.is_empty()) {
            return first;
        }
        for i in (0..q.alternatives.len()).filter(|i| *i != chosen) {
            if let Ok(series) =
                query_vector(&self.http, &self.prometheus.url, &q.alternatives[i]).await
            {
                if !series.is_empty() {
                    tracing::info!(batch = %key, %metric, query = %q.alternatives[i], "a preset's other metric name answers");
                    self.choices
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(choice, i);
                    return Ok(series);
                }
            }
        }
        first
    }

    fn answered(&mut self, key: &Key) {
        self.empty_since.remove(key);
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Notes a query that gave nothing, and whether it counts as failing yet: nothing
    /// yet counts after the warm-up; no answer at all after a short grace (a Prometheus
    /// starting or restarting); anything else (a query Prometheus refuses) at once.
    fn failed(&mut self, key: Key, reason: &str) -> bool {
        let grace = if reason == NOTHING {
            Some(self.warm_up)
        } else if reason.starts_with(UNANSWERED) {
            Some(self.warm_up.min(UNANSWERED_GRACE))
        } else {
            None
        };
        let counts = match grace {
            Some(grace) => {
                let since = *self
                    .empty_since
                    .entry(key.clone())
                    .or_insert_with(std::time::Instant::now);
                since.elapsed() >= grace
            }
            None => {
                self.empty_since.remove(&key);
                true
            }
        };
        let shown = if counts {
            reason.to_owned()
        } else {
            format!("{reason} (within the {} s warm-up)", self.warm_up.as_secs())
        };
        let (service, region, metric) = (key.0.clone(), key.1.clone(), key.2.clone());
        let before = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, shown.clone());
        if before.as_deref() != Some(shown.as_str()) {
            tracing::warn!(%service, %region, %metric, reason = %shown, "Prometheus query gives nothing");
        }
        counts
    }
}

/// Whether a service's figures can be asked with its preset's others: every one of them
/// is the preset's (a query written in the file is asked on its own).
pub(crate) fn batchable(service: &Service) -> bool {
    service.preset.is_some() && service.queries.values().all(|q| q.preset.is_some())
}

/// A query's values across services: (service or deployment, region) → value.
type ByLabels = BTreeMap<(String, String), f64>;

/// A round's figures of one service: (region, metric) → its value, or why there is none.
type Outcomes = BTreeMap<(String, &'static str), Result<f64, String>>;

/// What a query answers when the series it names has no samples (yet).
const NOTHING: &str = "the query returned nothing";
/// How an answer that is not Prometheus's JSON is refused.
const NOT_AN_ANSWER: &str = "not a Prometheus answer";
/// How a query that reached no Prometheus begins.
const UNANSWERED: &str = "Prometheus did not answer";
/// How long Prometheus may not answer before its figures count as degraded.
const UNANSWERED_GRACE: Duration = Duration::from_secs(30);

/// One service's figures that cannot be had: (region, metric) → why.
type Failing = BTreeMap<(String, String), String>;

/// One `source.degraded` for a service: every region and figure it names, grouped by
/// reason. `degraded: false` names what gives figures again.
fn degraded(
    service: &Service,
    failing: &Failing,
    degraded: bool,
) -> (EventType, String, serde_json::Value) {
    let (region, what, reason) = summary(failing, &service.regions);
    let data = serde_json::to_value(SourceDegraded {
        source: "prometheus".into(),
        service: service.name.clone(),
        region,
        what,
        reason: if degraded { reason } else { String::new() },
        degraded,
    })
    .unwrap_or_default();
    (
        EventType::SourceDegraded,
        format!("service/{}", service.name),
        data,
    )
}

/// (regions, figures, reasons) in words: `us-east and eu-west`, `6 figures` or the one
/// figure's name, and each reason once with the figures it stands for when they differ.
fn summary(failing: &Failing, order: &[String]) -> (String, String, String) {
    // Regions in the order the configuration lists them.
    let regions: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|r| failing.keys().any(|(f, _)| f == r))
        .collect();
    let metrics: std::collections::BTreeSet<&str> =
        failing.keys().map(|(_, m)| m.as_str()).collect();
    let mut by_reason: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for ((_, metric), reason) in failing {
        by_reason.entry(reason).or_default().insert(metric);
    }
    let words = |items: Vec<&str>| match items.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let what = match metrics.len() {
        1 => metrics
            .iter()
            .next()
            .map(|m| (*m).to_owned())
            .unwrap_or_default(),
        n => format!("{n} figures"),
    };
    let reason = if by_reason.len() == 1 {
        by_reason
            .keys()
            .next()
            .map(|r| (*r).to_owned())
            .unwrap_or_default()
    } else {
        by_reason
            .iter()
            .map(|(reason, metrics)| {
                format!("{} ({reason})", words(metrics.iter().copied().collect()))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    (words(regions), what, reason)
}

/// Why no answer came, without the query's URL (every query of a service would otherwise
/// give a reason of its own for one cause), and with the cause reqwest's own message hides.
fn unanswered(e: &reqwest::Error) -> String {
    let mut why = e.to_string();
    if let Some(url) = e.url() {
        why = why.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        why.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    format!("{UNANSWERED}: {why}")
}

/// Series a vector query may return at most (a fleet's GPUs, one per series).
pub const MAX_SERIES: usize = 20_000;

/// One series of an instant vector: its labels and its value.
pub type Series = (BTreeMap<String, String>, f64);

/// An instant vector's series, each with its labels and value (an empty vector is no
/// series, not a failure: a fleet with nothing to report).
pub fn read_vector(body: &[u8]) -> Result<Vec<Series>, String> {
    let answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("{NOT_AN_ANSWER}: {e}"))?;
    if answer.status != "success" {
        return Err(answer.error.unwrap_or_else(|| "the query failed".into()));
    }
    let data = answer.data.ok_or("the answer has no data")?;
    if data.result_type != "vector" {
        return Err(format!(
            "the query returned a {}, not a vector of series",
            data.result_type
        ));
    }
    let all = data.result.as_array().map(Vec::as_slice).unwrap_or(&[]);
    if all.len() > MAX_SERIES {
        return Err(format!(
            "the query returned {} series, more than the {MAX_SERIES} read: narrow it",
            all.len()
        ));
    }
    let mut out = Vec::new();
    for series in all {
        let labels = strings(&series["metric"]);
        let value: Option<f64> = series["value"][1].as_str().and_then(|v| v.parse().ok());
        if let Some(v) = value.filter(|v| v.is_finite()) {
            out.push((labels, v));
        }
    }
    Ok(out)
}

/// A JSON object's string values by key (labels, a selector's matchLabels); nothing for
/// anything else.
pub(crate) fn strings(object: &serde_json::Value) -> BTreeMap<String, String> {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn query_vector(
    http: &reqwest::Client,
    base: &str,
    promql: &str,
) -> Result<Vec<Series>, String> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", promql)])
        .map_err(|e| e.to_string())?;
    let response = http.get(url).send().await.map_err(|e| unanswered(&e))?;
    let body = response.bytes().await.map_err(|e| unanswered(&e))?;
    read_vector(&body)
}

async fn query(http: &reqwest::Client, base: &str, promql: &str) -> Result<f64, String> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", promql)])
        .map_err(|e| e.to_string())?;
    let response = http.get(url).send().await.map_err(|e| unanswered(&e))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| unanswered(&e))?;
    match read_value(&body) {
        // A Prometheus still starting answers 503 in plain text: not an answer yet.
        Err(why) if !status.is_success() && why.starts_with(NOT_AN_ANSWER) => {
            Err(format!("{UNANSWERED}: it answered {status}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_or_refused_with_why() {
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764471681.5,"0.091"]}]}}"#;
        assert_eq!(read_value(one), Ok(0.091));
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1764471681.5,"42"]}}"#;
        assert_eq!(read_value(scalar), Ok(42.0));
        let none = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(read_value(none), Err("the query returned nothing".into()));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert!(read_value(two).unwrap_err().contains("2 series"));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(read_value(bad), Err("parse error at char 3".into()));
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"NaN"]}]}}"#;
        assert!(read_value(nan).is_err(), "NaN is no figure to publish");
        assert!(read_value(b"<html>").is_err());
    }

    #[test]
    fn vectors_are_read_with_their_labels_and_refused_past_the_bound() {
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"Hostname":"n1","gpu":"0"},"value":[1,"79"]},{"metric":{"Hostname":"n1","gpu":"1"},"value":[1,"NaN"]}]}}"#;
        let read = read_vector(two).unwrap();
        assert_eq!(read.len(), 1, "a NaN is no reading");
        assert_eq!(read[0].0["Hostname"], "n1");
        assert_eq!(read[0].1, 79.0);
        let many: Vec<String> = (0..=MAX_SERIES)
            .map(|i| format!(r#"{{"metric":{{"gpu":"{i}"}},"value":[1,"0"]}}"#))
            .collect();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            many.join(",")
        );
        assert!(read_vector(body.as_bytes())
            .unwrap_err()
            .contains("narrow it"));
        assert!(read_vector(
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#
        )
        .is_err());
    }

    #[test]
    fn a_service_that_gives_nothing_is_said_in_one_sentence() {
        let mut failing = Failing::new();
        for region in ["us-east", "eu-west"] {
            for metric in METRICS {
                failing.insert((region.into(), (*metric).into()), NOTHING.into());
            }
        }
        let order = ["us-east".to_owned(), "eu-west".to_owned()];
        assert_eq!(
            summary(&failing, &order),
            (
                "us-east and eu-west".into(),
                "6 figures".into(),
                NOTHING.into()
            )
        );
        failing.retain(|(r, m), _| r == "us-east" && m.starts_with("latency"));
        failing.insert(
            ("us-east".into(), "queue_depth".into()),
            "no query is configured for it".into(),
        );
        let (region, what, reason) = summary(&failing, &order);
        assert_eq!((region.as_str(), what.as_str()), ("us-east", "3 figures"));
        assert_eq!(
            reason,
            "queue_depth (no query is configured for it); latency_p50_ms and latency_p99_ms (the query returned nothing)"
        );
    }
}
