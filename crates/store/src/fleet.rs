//! The fleet at a glance, from what the store recorded: for every watched cluster, each
//! service in each region with its health, the last 15 minutes of its signals, its
//! revision and model, a rollout under way wave by wave, its pool's nodes, and its open
//! incident. Built from the store alone, so it reads the same after a restart or with the
//! network gone; the window asks again as the engine commits (at most once a second).
//!
//! Every read goes through an index: the services of a cluster by a skip-scan of
//! `events_by_service_time`; each service's window of samples, and its newest rollout,
//! node and alert events type by type, by seeks of `events_by_service_type`, so a read
//! costs the same after a day of history or a storm of other events as after a minute.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use super::{Result, Store};

/// The board's window of signals, before the newest event of a service.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Error rate above which a cell is failing (the SLO the rules open incidents on).
pub const FAILING_ERROR_RATE: f64 = crate::incident::ERROR_RATE_SLO;
/// Error rate above which a cell is degraded.
pub const DEGRADED_ERROR_RATE: f64 = 0.01;
/// Points per sparkline at most (the window's samples, thinned evenly).
const SPARK_POINTS: usize = 90;

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetBoard {
    pub clusters: Vec<FleetCluster>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetCluster {
    pub id: i64,
    pub name: String,
    /// Every region any of its services reported from, in name order.
    pub regions: Vec<String>,
    pub services: Vec<FleetService>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetService {
    pub name: String,
    /// The newest revision any region reported, and the model it serves.
    pub revision: Option<u32>,
    pub model_version: Option<String>,
    /// The team that owns it, as its newest metrics said.
    pub team: Option<String>,
    pub rollout: Option<FleetRollout>,
    /// One per region of the cluster (a region it did not report from is `unknown`).
    pub cells: Vec<FleetCell>,
    pub incident: Option<FleetIncident>,
    /// The error budget it has left, when it has objectives (filled in by the console
    /// from its last count: counting 30 days is not done on every read of the board).
    pub budget: Option<crate::objectives::Budget>,
    /// What its rollout guard does on a failing verdict, when it is more than watching.
    pub guard: Option<crate::guards::GuardMode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetRollout {
    pub deployment: String,
    pub from_revision: u32,
    pub to_revision: u32,
    pub model_version: String,
    pub wave: u32,
    pub waves: u32,
    pub nodes_updated: u32,
    pub nodes_total: u32,
    /// Nodes drained by a stalled wave.
    pub nodes_draining: u32,
    /// Why it stalled, when it did.
    pub stalled: Option<String>,
    /// Who paused it, when an action did.
    pub paused_by: Option<String>,
    /// When the current wave began (the rollout's start before its first wave).
    #[ts(type = "number")]
    pub wave_since_ms: i64,
}

/// `healthy`, `degraded`, `failing`, or `unknown` (no signals in the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Degraded,
    Failing,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetCell {
    pub region: String,
    pub health: Health,
    /// Why, in words (shown on hover).
    pub reason: String,
    pub primary: bool,
    pub revision: Option<u32>,
    /// The window's samples, oldest first (thinned to at most 90 points).
    pub error_rate: Vec<f64>,
    pub p99_ms: Vec<f64>,
    pub queue_depth: Vec<f64>,
    /// The newest sample's figures.
    pub requests_per_s: Option<f64>,
    pub gpu_utilization: Option<f64>,
    #[ts(type = "number | null")]
    pub last_ms: Option<i64>,
    /// The pool's nodes that reported trouble, newest state each, and the pool's size
    /// when a node event said it.
    pub nodes: Vec<FleetNode>,
    pub pool: Option<String>,
    pub pool_nodes_total: Option<u32>,
    /// An anomaly flagged on this service before any alert (its incident opened on it).
    pub anomaly: Option<String>,
    /// Alerts firing here now, as recorded.
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetNode {
    pub name: String,
    /// `up`, `degraded` or `down`.
    pub state: String,
    /// The fault (`gpu_error`, `oom`, …) and what the event said.
    pub fault: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FleetIncident {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub status: String,
    /// Opened by the anomaly detector, before any alert or rule.
    pub anomaly: bool,
}

struct Sample {
    time_ms: i64,
    region: String,
    primary: bool,
    revision: u32,
    error_rate: f64,
    p99: f64,
    /// Absent where the cluster's serving stack cannot give it.
    queue: Option<f64>,
    rps: f64,
    gpu: Option<f64>,
    team: Option<String>,
}

fn num(d: &Value, key: &str) -> f64 {
    d.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text(d: &Value, key: &str) -> String {
    d.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn revision(d: &Value, key: &str) -> u32 {
    u32::try_from(d.get(key).and_then(Value::as_u64).unwrap_or(0)).unwrap_or(u32::MAX)
}

/// Evenly thinned to at most `n` points, the last always kept.
fn thin(values: Vec<f64>, n: usize) -> Vec<f64> {
    if values.len() <= n {
        return values;
    }
    let step = values.len() as f64 / n as f64;
    let mut out: Vec<f64> = (0..n).map(|i| values[(i as f64 * step) as usize]).collect();
    if let (Some(last), Some(kept)) = (values.last(), out.last_mut()) {
        *kept = *last;
    }
    out
}

impl Store {
    /// The board of every watched cluster, as recorded.
    pub async fn fleet_board(&self) -> Result<FleetBoard> {
        let clusters: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM clusters ORDER BY name")
                .fetch_all(self.reader())
                .await?;
        let guards = self.rollout_guards().await?;
        let mut out = Vec::new();
        for (id, name) in clusters {
            let mut cluster = self.fleet_cluster(id, name).await?;
            for service in &mut cluster.services {
                service.guard = guards
                    .iter()
                    .find(|g| g.cluster_id == id && g.service == service.name)
                    .map(|g| g.mode)
                    .filter(|m| *m != crate::guards::GuardMode::Watch);
            }
            out.push(cluster);
        }
        Ok(FleetBoard { clusters: out })
    }

    /// Every service each watched cluster recorded events of: (cluster id, cluster name,
    /// service), by cluster name and service.
    pub async fn services(&self) -> Result<Vec<(i64, String, String)>> {
        let clusters: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM clusters WHERE removed_ms IS NULL ORDER BY name")
                .fetch_all(self.reader())
                .await?;
        let mut out = Vec::new();
        for (id, name) in clusters {
            for service in self.recorded_services(id).await? {
                out.push((id, name.clone(), service));
            }
        }
        Ok(out)
    }

    /// The services a cluster recorded events of, by a skip-scan of the service index.
    async fn recorded_services(&self, cluster_id: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "WITH RECURSIVE s(name) AS ( \
               SELECT MIN(service) FROM events WHERE cluster_id = ?1 AND service IS NOT NULL \
               UNION ALL \
               SELECT (SELECT MIN(service) FROM events WHERE cluster_id = ?1 AND service > s.name) \
               FROM s WHERE s.name IS NOT NULL) \
             SELECT name FROM s WHERE name IS NOT NULL LIMIT 2000",
        )
        .bind(cluster_id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    /// Whether the cluster retired the service (it no longer finds it) since it last
    /// found it: the board shows it no more; its incidents and history stay.
    async fn retired(&self, cluster_id: i64, service: &str) -> Result<bool> {
        let newest = self
            .newest_of(
                cluster_id,
                service,
                &[
                    "dev.firebreak.service.retired",
                    "dev.firebreak.service.discovered",
                ],
                1,
            )
            .await?;
        Ok(newest
            .first()
            .is_some_and(|(_, _, ty, _)| ty == "dev.firebreak.service.retired"))
    }

    /// A service's newest events of these types, newest first: each type's newest `limit`
    /// by a seek of `events_by_service_type`, then the newest `limit` of them all.
    async fn newest_of(
        &self,
        cluster_id: i64,
        service: &str,
        types: &[&str],
        limit: i64,
    ) -> Result<Vec<(i64, i64, String, Value)>> {
        let one = "SELECT * FROM (SELECT seq, time_ms, type, raw FROM events \
                   WHERE cluster_id = ? AND service = ? AND type = ? \
                   ORDER BY time_ms DESC, seq DESC LIMIT ?)";
        let sql = format!(
            "SELECT seq, time_ms, type, raw FROM ({}) ORDER BY time_ms DESC, seq DESC LIMIT ?",
            vec![one; types.len()].join(" UNION ALL ")
        );
        // Only the fixed text above is formatted in; the service and types are bound.
        let mut q = sqlx::query_as::<_, (i64, i64, String, String)>(sqlx::AssertSqlSafe(sql));
        for t in types {
            q = q.bind(cluster_id).bind(service).bind(*t).bind(limit);
        }
        let rows = q.bind(limit).fetch_all(self.reader()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, at, ty, raw)| {
                let v: Value = serde_json::from_str(&raw).ok()?;
                Some((seq, at, ty, v.get("data").cloned().unwrap_or(Value::Null)))
            })
            .collect())
    }

    async fn fleet_cluster(&self, cluster_id: i64, name: String) -> Result<FleetCluster> {
        let mut services = Vec::new();
        let mut regions: Vec<String> = Vec::new();
        for service in self.recorded_services(cluster_id).await? {
            if self.retired(cluster_id, &service).await? {
                continue;
            }
            let Some(built) = self.fleet_service(cluster_id, &service).await? else {
                continue;
            };
            for c in &built.cells {
                if !regions.contains(&c.region) {
                    regions.push(c.region.clone());
                }
            }
            services.push(built);
        }
        regions.sort();
        // Every service gets a cell per region, in the same order.
        for s in &mut services {
            for r in &regions {
                if !s.cells.iter().any(|c| &c.region == r) {
                    s.cells.push(FleetCell {
                        region: r.clone(),
                        health: Health::Unknown,
                        reason: format!("no signals from {r} in the last 15 minutes"),
                        primary: false,
                        revision: None,
                        error_rate: Vec::new(),
                        p99_ms: Vec::new(),
                        queue_depth: Vec::new(),
                        requests_per_s: None,
                        gpu_utilization: None,
                        last_ms: None,
                        nodes: Vec::new(),
                        pool: None,
                        pool_nodes_total: None,
                        anomaly: None,
                        alerts: Vec::new(),
                    });
                }
            }
            s.cells.sort_by(|a, b| a.region.cmp(&b.region));
        }
        Ok(FleetCluster {
            id: cluster_id,
            name,
            regions,
            services,
        })
    }

    /// One service's row; None when it reported no metrics in its newest window (a name
    /// that only ever appeared in, say, a warning).
    async fn fleet_service(&self, cluster_id: i64, service: &str) -> Result<Option<FleetService>> {
        let Some(samples) = self.recent_samples(cluster_id, service).await? else {
            return Ok(None);
        };
        let firing = self.alerts_of(cluster_id, service).await?;
        let nodes = self.nodes_of(cluster_id, service).await?;
        let rollout = self.fleet_rollout(cluster_id, service).await?;
        let model_version = self.model_version_of(cluster_id, service).await?;
        let incident = self.open_incident_of(cluster_id, service).await?;
        let anomaly_text = match &incident {
            Some(i) if i.anomaly => Some(i.title.clone()),
            _ => None,
        };

        let mut by_region: HashMap<&str, Vec<&Sample>> = HashMap::new();
        for s in &samples {
            by_region.entry(s.region.as_str()).or_default().push(s);
        }
        let cells = by_region
            .into_iter()
            .map(|(region, list)| cell(region, &list, &firing, &nodes, anomaly_text.as_deref()))
            .collect();
        let revision = samples.iter().map(|s| s.revision).max();
        let team = samples.last().and_then(|s| s.team.clone());
        Ok(Some(FleetService {
            name: service.to_owned(),
            revision: rollout.as_ref().map(|r| r.to_revision).or(revision),
            model_version,
            team,
            rollout,
            cells,
            incident,
            budget: None,
            guard: None,
        }))
    }

    /// The service's metrics samples of its newest window (`WINDOW_MS` back from its newest
    /// sample), oldest first; None when it has none.
    async fn recent_samples(&self, cluster_id: i64, service: &str) -> Result<Option<Vec<Sample>>> {
        // Walked down the service's index from its newest event, stopping at the first
        // sample: `MAX(time_ms)` with the type filter would read the service's whole history.
        let newest: Option<(i64,)> = sqlx::query_as(
            "SELECT time_ms FROM events WHERE cluster_id = ? AND service = ? \
             AND type = 'dev.firebreak.service.metrics' ORDER BY time_ms DESC LIMIT 1",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_optional(self.reader())
        .await?;
        let Some((newest,)) = newest else {
            return Ok(None);
        };
        let from = newest - WINDOW_MS;
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT time_ms, raw FROM events WHERE cluster_id = ? AND service = ? \
             AND time_ms >= ? AND type = 'dev.firebreak.service.metrics' ORDER BY time_ms, seq",
        )
        .bind(cluster_id)
        .bind(service)
        .bind(from)
        .fetch_all(self.reader())
        .await?;
        let samples = rows
            .iter()
            .filter_map(|(at, raw)| {
                let v: Value = serde_json::from_str(raw).ok()?;
                let d = v.get("data")?;
                Some(Sample {
                    time_ms: *at,
                    region: d.get("region")?.as_str()?.to_owned(),
                    primary: d.get("primary")?.as_bool()?,
                    revision: revision(d, "revision"),
                    error_rate: num(d, "error_rate"),
                    p99: num(d, "latency_p99_ms"),
                    queue: d.get("queue_depth").and_then(Value::as_f64),
                    rps: num(d, "requests_per_s"),
                    gpu: d.get("gpu_utilization").and_then(Value::as_f64),
                    team: d.get("team").and_then(Value::as_str).map(str::to_owned),
                })
            })
            .collect();
        Ok(Some(samples))
    }

    /// Alerts by (alert, region): whether the newest of its firing or resolved fired, and
    /// its severity.
    async fn alerts_of(&self, cluster_id: i64, service: &str) -> Result<Alerts> {
        // Alerts firing now: each (alert, region)'s newest firing or resolved.
        let mut firing: BTreeMap<(String, String), (bool, String)> = BTreeMap::new();
        for (_, _, ty, d) in self
            .newest_of(
                cluster_id,
                service,
                &["dev.firebreak.alert.firing", "dev.firebreak.alert.resolved"],
                500,
            )
            .await?
        {
            firing
                .entry((text(&d, "alert"), text(&d, "region")))
                .or_insert((ty.ends_with("firing"), text(&d, "severity")));
        }
        Ok(firing)
    }

    /// Each node's newest state, by name.
    async fn nodes_of(&self, cluster_id: i64, service: &str) -> Result<BTreeMap<String, NodeSeen>> {
        // Nodes: each node's newest state.
        let mut nodes: BTreeMap<String, (String, FleetNode, Option<u32>, String)> = BTreeMap::new();
        for (_, _, ty, d) in self
            .newest_of(
                cluster_id,
                service,
                &[
                    "dev.firebreak.node.down",
                    "dev.firebreak.node.degraded",
                    "dev.firebreak.node.up",
                ],
                2_000,
            )
            .await?
        {
            let node = text(&d, "node");
            if nodes.contains_key(&node) {
                continue;
            }
            let state = ty.rsplit('.').next().unwrap_or("up").to_owned();
            let fault = (state != "up").then(|| {
                let reason = text(&d, "reason");
                match d.get("detail").and_then(Value::as_str) {
                    Some(detail) if !detail.is_empty() => format!("{reason}: {detail}"),
                    _ => reason,
                }
            });
            let total = d
                .get("pool_nodes_total")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok());
            nodes.insert(
                node.clone(),
                (
                    text(&d, "region"),
                    FleetNode {
                        name: node,
                        state,
                        fault,
                    },
                    total,
                    text(&d, "pool"),
                ),
            );
        }
        Ok(nodes)
    }

    /// The model the service serves: the newest model change's, or the newest rollout's.
    async fn model_version_of(&self, cluster_id: i64, service: &str) -> Result<Option<String>> {
        Ok(self
            .newest_of(
                cluster_id,
                service,
                &[
                    "dev.firebreak.model.version_changed",
                    "dev.firebreak.rollout.started",
                ],
                1,
            )
            .await?
            .into_iter()
            .next()
            .map(|(_, _, ty, d)| {
                if ty.ends_with("version_changed") {
                    text(&d, "to_model")
                } else {
                    text(&d, "model_version")
                }
            }))
    }

    /// The service's newest incident that is not resolved.
    async fn open_incident_of(
        &self,
        cluster_id: i64,
        service: &str,
    ) -> Result<Option<FleetIncident>> {
        let incident: Option<(i64, String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, title, severity, status, opened_by FROM incidents \
             WHERE cluster_id = ? AND service = ? AND status != 'resolved' \
             ORDER BY opened_ms DESC LIMIT 1",
        )
        .bind(cluster_id)
        .bind(service)
        .fetch_optional(self.reader())
        .await?;
        Ok(
            incident.map(|(id, title, severity, status, by)| FleetIncident {
                id,
                title,
                severity,
                status,
                anomaly: by.as_deref() == Some("anomaly"),
            }),
        )
    }

    /// The rollout under way on a service, folded from its newest rollout events since
    /// the newest `rollout.started` (none once it completed or failed, or a rollback's
    /// model change ended it).
    async fn fleet_rollout(&self, cluster_id: i64, service: &str) -> Result<Option<FleetRollout>> {
        let events = self
            .newest_of(
                cluster_id,
                service,
                &[
                    "dev.firebreak.rollout.started",
                    "dev.firebreak.rollout.wave_progressed",
                    "dev.firebreak.rollout.stalled",
                    "dev.firebreak.rollout.completed",
                    "dev.firebreak.rollout.failed",
                    "dev.firebreak.action.succeeded",
                    "dev.firebreak.model.version_changed",
                ],
                400,
            )
            .await?;
        let Some(start) = events
            .iter()
            .position(|(_, _, ty, _)| ty == "dev.firebreak.rollout.started")
        else {
            return Ok(None);
        };
        let (start_seq, start_at, _, d) = &events[start];
        let mut r = FleetRollout {
            deployment: text(d, "deployment"),
            from_revision: revision(d, "from_revision"),
            to_revision: revision(d, "to_revision"),
            model_version: text(d, "model_version"),
            wave: 0,
            waves: revision(d, "waves"),
            nodes_updated: 0,
            nodes_total: revision(d, "nodes_total"),
            nodes_draining: 0,
            stalled: None,
            paused_by: None,
            wave_since_ms: *start_at,
        };
        // Oldest first from the start.
        for (seq, at, ty, d) in events[..start].iter().rev() {
            if seq < start_seq {
                continue;
            }
            match ty.as_str() {
                "dev.firebreak.rollout.wave_progressed" => {
                    r.wave = revision(d, "wave");
                    r.nodes_updated = revision(d, "nodes_updated");
                    r.wave_since_ms = *at;
                }
                "dev.firebreak.rollout.stalled" => {
                    r.stalled = Some(text(d, "reason"));
                    r.nodes_draining = revision(d, "nodes_draining");
                }
                "dev.firebreak.rollout.completed" | "dev.firebreak.rollout.failed" => {
                    return Ok(None)
                }
                "dev.firebreak.model.version_changed" if text(d, "cause") == "rollback" => {
                    return Ok(None)
                }
                "dev.firebreak.action.succeeded" => match text(d, "kind").as_str() {
                    "pause_rollout" => r.paused_by = Some(text(d, "actor")),
                    "resume_rollout" | "promote_rollout" => r.paused_by = None,
                    "rollback" | "abort_rollout" => return Ok(None),
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(Some(r))
    }
}

/// Alerts by (alert, region): whether it fires now, and its severity.
type Alerts = BTreeMap<(String, String), (bool, String)>;

/// A node as last seen: its region, state, its pool's size when said, and its pool.
type NodeSeen = (String, FleetNode, Option<u32>, String);

/// One region's cell of a service: its health and why (critical alerts or errors over the
/// SLO fail it; other alerts, errors over the degraded line, nodes down or degraded and an
/// anomaly before any alert degrade it), its sparklines and its nodes.
fn cell(
    region: &str,
    list: &[&Sample],
    firing: &Alerts,
    nodes: &BTreeMap<String, NodeSeen>,
    anomaly_text: Option<&str>,
) -> FleetCell {
    let last = list[list.len() - 1];
    let alerts: Vec<(String, String)> = firing
        .iter()
        .filter(|((_, r), (on, _))| r == region && *on)
        .map(|((a, _), (_, sev))| (a.clone(), sev.clone()))
        .collect();
    let here: Vec<&(String, FleetNode, Option<u32>, String)> =
        nodes.values().filter(|(r, ..)| r == region).collect();
    let down = here.iter().filter(|(_, n, ..)| n.state == "down").count();
    let degraded = here
        .iter()
        .filter(|(_, n, ..)| n.state == "degraded")
        .count();
    let mut why = Vec::new();
    let critical = alerts.iter().any(|(_, s)| s == "critical");
    if critical {
        why.push(format!(
            "critical alert firing: {}",
            alerts
                .iter()
                .filter(|(_, s)| s == "critical")
                .map(|(a, _)| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if last.primary && last.error_rate > FAILING_ERROR_RATE {
        why.push(format!(
            "error rate {:.1} % over the {:.0} % SLO",
            last.error_rate * 100.0,
            FAILING_ERROR_RATE * 100.0
        ));
    }
    let failing = !why.is_empty();
    let others: Vec<&str> = alerts
        .iter()
        .filter(|(_, s)| s != "critical")
        .map(|(a, _)| a.as_str())
        .collect();
    if !others.is_empty() {
        why.push(format!("alert firing: {}", others.join(", ")));
    }
    if last.primary
        && last.error_rate > DEGRADED_ERROR_RATE
        && last.error_rate <= FAILING_ERROR_RATE
    {
        why.push(format!("error rate {:.1} %", last.error_rate * 100.0));
    }
    if down + degraded > 0 {
        why.push(format!("{down} nodes down, {degraded} degraded"));
    }
    if last.primary {
        if let Some(a) = anomaly_text {
            why.push(format!("anomaly before any alert: {a}"));
        }
    }
    let health = if failing {
        Health::Failing
    } else if !why.is_empty() {
        Health::Degraded
    } else {
        Health::Healthy
    };
    let reason = if why.is_empty() {
        format!(
            "error rate {:.1} %, p99 {:.0} ms, no alert firing",
            last.error_rate * 100.0,
            last.p99
        )
    } else {
        why.join("; ")
    };
    let pool = here.iter().map(|(.., p)| p.clone()).find(|p| !p.is_empty());
    let pool_nodes_total = here.iter().filter_map(|(_, _, t, _)| *t).max();
    FleetCell {
        region: region.to_owned(),
        health,
        reason,
        primary: last.primary,
        revision: Some(last.revision),
        error_rate: thin(list.iter().map(|s| s.error_rate).collect(), SPARK_POINTS),
        p99_ms: thin(list.iter().map(|s| s.p99).collect(), SPARK_POINTS),
        queue_depth: thin(list.iter().filter_map(|s| s.queue).collect(), SPARK_POINTS),
        requests_per_s: Some(last.rps),
        gpu_utilization: last.gpu,
        last_ms: Some(last.time_ms),
        nodes: here.iter().map(|(_, n, ..)| n.clone()).collect(),
        pool,
        pool_nodes_total,
        anomaly: if last.primary {
            anomaly_text.map(str::to_owned)
        } else {
            None
        },
        alerts: alerts.into_iter().map(|(a, _)| a).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::thin;

    #[test]
    fn thinning_keeps_the_ends_and_the_count() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = thin(v, 90);
        assert_eq!(t.len(), 90);
        assert_eq!(t[0], 0.0);
        assert_eq!(t[89], 999.0);
        assert_eq!(thin(vec![1.0, 2.0], 90), [1.0, 2.0]);
    }
}
