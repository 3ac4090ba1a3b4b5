//! Services found instead of listed (`[discovery]`): every interval, each
//! `[[discovery.prometheus]]` source asks Prometheus which values its stack's service label
//! takes, in which regions (`count by (model_name, region) (vllm:num_requests_waiting)`),
//! and each value becomes a service whose figures come from the stack's preset.
//!
//! A service that appears is announced once (`service.discovered`) and polled from the next
//! round on, without a restart; one its source no longer finds in two successful rounds in
//! a row is retired (`service.retired`) and polled no more. A source whose query fails
//! keeps what it found (an outage of Prometheus retires nothing). What was announced is
//! kept in the journal with the announcement, so a restarted gateway announces only what
//! changed. A `[[services]]` entry of the same name wins over a discovered one; a name two
//! sources find is kept from the first and refused from the second, both named.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::config::{Discovery, Prometheus, Service};
use super::journal::DurableJournal;
use super::presets::PresetUse;
use firebreak_protocol::events::{EventType, ServiceDiscovered, ServiceRetired};

/// Rounds in a row a source must not find a service before it is retired.
const MISSED_ROUNDS: u32 = 2;
/// The longest service name discovery accepts (as `service.discovered` allows).
const MAX_NAME: usize = 128;
/// Services one source may bring (a label with a value per request would otherwise grow
/// the gateway's polling without bound).
const MAX_PER_SOURCE: usize = 2000;

/// What discovery last said, for `/v1/gateway/status`.
pub type Status = Arc<Mutex<serde_json::Value>>;

/// One source, in words (the `source` of `service.discovered`).
fn describe(p: &PresetUse) -> String {
    format!("prometheus: {} on {}", p.service_label, p.stack.presence())
}

/// What one round found: name → (source index, regions).
type Found = BTreeMap<String, (usize, BTreeSet<String>)>;

/// Runs discovery until the task is stopped, sending each new list of services on `tx`.
pub async fn run(
    prometheus: Prometheus,
    discovery: Discovery,
    listed: Vec<Service>,
    cluster: String,
    journal: Arc<DurableJournal>,
    tx: watch::Sender<Arc<Vec<Service>>>,
    status: Status,
) {
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
    let source = format!("/clusters/{cluster}");
    // What the journal says was announced and not retired (kept across restarts).
    let mut announced: BTreeMap<String, Vec<String>> = match journal.discovered().await {
        Ok(rows) => rows.into_iter().map(|(n, _, r)| (n, r)).collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read what discovery announced before");
            BTreeMap::new()
        }
    };
    let mut last: Vec<Option<BTreeMap<String, BTreeSet<String>>>> =
        vec![None; discovery.prometheus.len()];
    let mut missed: BTreeMap<String, u32> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(discovery.interval_s)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut errors = Vec::new();
        let mut refused = Vec::new();
        let mut answered = vec![false; discovery.prometheus.len()];
        for (i, p) in discovery.prometheus.iter().enumerate() {
            match super::prometheus::query_vector(&http, &prometheus.url, &p.discovery_query())
                .await
            {
                Ok(series) => {
                    answered[i] = true;
                    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                    for (labels, _) in series {
                        let (Some(name), Some(region)) =
                            (labels.get(&p.service_label), labels.get(&p.region_label))
                        else {
                            continue;
                        };
                        if name.is_empty()
                            || name.chars().count() > MAX_NAME
                            || name.chars().any(char::is_control)
                            || region.is_empty()
                            || region.chars().any(char::is_control)
                        {
                            refused.push(format!(
                                "{name:?} in {region:?} ({}): a service name is 1 to {MAX_NAME} characters of text, and so is a region",
                                describe(p)
                            ));
                            continue;
                        }
                        if found.len() >= MAX_PER_SOURCE && !found.contains_key(name) {
                            refused.push(format!(
                                "{name:?} ({}): the source already brings {MAX_PER_SOURCE} services",
                                describe(p)
                            ));
                            continue;
                        }
                        found
                            .entry(name.clone())
                            .or_default()
                            .insert(region.clone());
                    }
                    last[i] = Some(found);
                }
                Err(why) => errors.push(format!("{}: {why}", describe(p))),
            }
        }
        // Merge: the file's entries win; a name two sources find is the first's.
        let mut merged: Found = BTreeMap::new();
        for (i, found) in last.iter().enumerate() {
            for (name, regions) in found.iter().flatten() {
                if listed.iter().any(|s| &s.name == name) {
                    continue;
                }
                match merged.get(name) {
                    Some((first, _)) => refused.push(format!(
                        "{name:?}: found by both {} ([[discovery.prometheus]] {}) and {} ({}); kept from the first",
                        describe(&discovery.prometheus[*first]),
                        first + 1,
                        describe(&discovery.prometheus[i]),
                        i + 1
                    )),
                    None => {
                        merged.insert(name.clone(), (i, regions.clone()));
                    }
                }
            }
        }
        // Retire only what a source that answered did not find, twice in a row.
        let mut retired = Vec::new();
        for name in announced.keys() {
            // Listed in the file now: served from there, never retired.
            if merged.contains_key(name) || listed.iter().any(|s| &s.name == name) {
                missed.remove(name);
                continue;
            }
            let source_answered = answered.iter().any(|a| *a);
            if !source_answered {
                continue;
            }
            let n = missed.entry(name.clone()).or_default();
            *n += 1;
            if *n >= MISSED_ROUNDS {
                retired.push(name.clone());
            } else {
                // Not yet: it stays polled (its figures simply give nothing meanwhile).
                let regions = announced[name].iter().cloned().collect();
                let i = last
                    .iter()
                    .position(|f| f.as_ref().is_some_and(|f| f.contains_key(name)))
                    .unwrap_or(0);
                merged.entry(name.clone()).or_insert((i, regions));
            }
        }
        let new: Vec<(String, usize, Vec<String>)> = merged
            .iter()
            .filter(|(name, _)| !announced.contains_key(*name))
            .map(|(name, (i, regions))| (name.clone(), *i, regions.iter().cloned().collect()))
            .collect();
        if !new.is_empty() || !retired.is_empty() {
            let mut events: Vec<(EventType, String, serde_json::Value)> = Vec::new();
            for (name, i, regions) in &new {
                let data = ServiceDiscovered {
                    service: name.clone(),
                    regions: regions.clone(),
                    stack: discovery.prometheus[*i].stack.as_str().to_owned(),
                    source: describe(&discovery.prometheus[*i]),
                };
                if let Ok(d) = serde_json::to_value(data) {
                    events.push((EventType::ServiceDiscovered, format!("service/{name}"), d));
                }
            }
            for name in &retired {
                let data = ServiceRetired {
                    service: name.clone(),
                    reason: format!(
                        "discovery has not found it in {MISSED_ROUNDS} rounds in a row"
                    ),
                };
                if let Ok(d) = serde_json::to_value(data) {
                    events.push((EventType::ServiceRetired, format!("service/{name}"), d));
                }
            }
            let kept: Vec<(String, String, Vec<String>)> = new
                .iter()
                .map(|(name, i, regions)| {
                    (
                        name.clone(),
                        describe(&discovery.prometheus[*i]),
                        regions.clone(),
                    )
                })
                .collect();
            let now = chrono::Utc::now();
            let published = journal
                .publish_discovery(&kept, &retired, events.len(), |seq, i| {
                    let (ty, subject, data) = &events[i];
                    let id = uuid::Uuid::now_v7().to_string();
                    firebreak_server::envelope(&source, &id, *ty, now, subject, seq, data)
                })
                .await;
            match published {
                Ok(_) => {
                    for (name, _, regions) in new {
                        tracing::info!(service = %name, ?regions, "service discovered");
                        announced.insert(name, regions);
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
                    merged.retain(|name, _| announced.contains_key(name));
                }
            }
        }
        let mut services = listed.clone();
        for (name, (i, regions)) in &merged {
            let p = &discovery.prometheus[*i];
            services.push(Service::discovered(
                name,
                regions.iter().cloned().collect(),
                p.for_value(name),
            ));
        }
        *status.lock().unwrap_or_else(|e| e.into_inner()) = serde_json::json!({
            "at": chrono::Utc::now().to_rfc3339(),
            "services": merged.iter().map(|(name, (i, regions))| serde_json::json!({
                "service": name,
                "regions": regions,
                "source": describe(&discovery.prometheus[*i]),
            })).collect::<Vec<_>>(),
            "refused": refused,
            "errors": errors,
        });
        tx.send_if_modified(|current| {
            if **current == services {
                false
            } else {
                *current = Arc::new(services);
                true
            }
        });
    }
}
