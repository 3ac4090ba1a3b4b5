//! The simulated fleet: regions, GPU node pools, model-serving services with deployments
//! rolled out in waves, traffic on a daily curve with bursts, alerts, and the effects of
//! rollback and failover. One `tick` is one simulated second; everything that happens
//! is an event in `outbox`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::scenario::{Change, Scenario, Step};
use firebreak_protocol::actions::{
    Action, ActionKind, ActionState, ApiError, Deployment, Revision, RolloutLever, RolloutRequest,
    RolloutView, Service, PROMOTE_ALL, PROMOTE_NEXT,
};
use firebreak_protocol::events::*;
use firebreak_server::rng::Rng;

/// Metrics are reported every this many simulated seconds, per service and region.
pub const METRICS_EVERY_S: u64 = 5;
/// Region status is reported this often, and on every change.
const REGION_STATUS_EVERY_S: u64 = 60;
/// A node whose utilisation stays above this for `OVERLOAD_GRACE_S` runs out of memory.
const OVERLOAD_LIMIT: f64 = 1.05;
const OVERLOAD_GRACE_S: u32 = 8;
/// Nodes lost to overload rejoin after this long, once their pool is cool.
const REJOIN_AFTER_S: u64 = 45;
/// An alert fires after its condition holds this long, and resolves after it has
/// been clear this long.
const FIRE_AFTER_S: u32 = 15;
const RESOLVE_AFTER_S: u32 = 20;
/// Simulated seconds from accepted to running, and from running to done.
const ACTION_START_S: u64 = 2;
const ROLLBACK_TAKES_S: u64 = 15;
const FAILOVER_TAKES_S: u64 = 10;
/// A pause or resume reaches the rollout controller this long after it runs; a promotion
/// starts its wave after this; an abort takes as long as a rollback to bring the stable
/// revision back (but stops further waves the moment it runs: abort always wins).
const PAUSE_TAKES_S: u64 = 1;
const PROMOTE_TAKES_S: u64 = 2;
/// A rollout stalled this long fails (its progress deadline), leaving its nodes drained.
const PROGRESS_DEADLINE_S: u64 = 180;

const ERROR_RATE_LIMIT: f64 = 0.05;
/// What a bad revision does on the nodes that serve it: the share of requests it fails
/// on top, and how much slower its median and its tail are.
const BAD_ERRORS: f64 = 0.3;
/// 1.6 and 2.2 times, as what they add (written out, so that the figures of the built-in
/// bad model stay what they were to the last digit).
const BAD_P50_EXTRA: f64 = 0.6;
const BAD_TAIL_EXTRA: f64 = 1.2;
const QUEUE_LIMIT: f64 = 2_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Up,
    Degraded,
    Down,
}

#[derive(Debug, Clone)]
struct Node {
    id: String,
    state: NodeState,
    revision: u32,
    draining: bool,
    hot_for: u32,
    down_since: Option<u64>,
    rejoins: bool,
    /// The last XID its GPUs reported (0: none), and the GPUs it reports.
    xid: u32,
    gpus: u32,
}

#[derive(Debug, Clone)]
struct Placement {
    region: String,
    pool: String,
    nodes: Vec<Node>,
    queue: f64,
    last: Sample,
    /// While a rollout runs: each revision's share of the window so far.
    by_revision: BTreeMap<u32, RevisionWindow>,
    /// While a rollout runs: each revision's share of the last second, as the Prometheus
    /// exposition splits its counters by revision (empty otherwise).
    last_by_revision: Vec<(u32, Sample)>,
    /// KV-cache pressure: until when (simulated seconds), and whether it was said.
    kv_pressure: Option<(u64, bool)>,
    /// Requests preempted so far (a counter, as vLLM exports it), and those waiting to be
    /// recomputed.
    preempted: f64,
    kv_backlog: f64,
}

/// One revision's requests, failures and latency summed over the seconds of a window.
#[derive(Debug, Clone, Copy, Default)]
struct RevisionWindow {
    nodes: u32,
    requests: f64,
    /// Expected failures (drawn as a count when the window is reported).
    errors: f64,
    p50_sum: f64,
    p99_sum: f64,
    seconds: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    p50: f64,
    p99: f64,
    error_rate: f64,
    rps: f64,
    queue: f64,
    gpu: f64,
}

#[derive(Debug, Clone)]
struct Rollout {
    /// The stable revision the rollout started from (where an abort returns).
    from: u32,
    to: u32,
    waves: u32,
    done_waves: u32,
    interval: u64,
    next_at: u64,
    stall_at_wave: Option<u32>,
    stalled: bool,
    stalled_at: u64,
    paused: bool,
    paused_by: Option<String>,
    /// An abort is running: no wave moves again.
    aborting: bool,
}

#[derive(Debug, Clone)]
struct Rev {
    n: u32,
    model: String,
    bad: bool,
    /// On its nodes, when bad: the share of requests failed on top of the usual, and how
    /// much slower (added to 1) the median and the tail beyond it are.
    errors: f64,
    p50_extra: f64,
    tail_extra: f64,
    created_at: DateTime<Utc>,
}

impl Rev {
    /// A revision's effect on its nodes from a scenario's words.
    fn effect(bad: bool, errors: Option<f64>, latency: Option<f64>) -> (bool, f64, f64, f64) {
        let bad = bad || errors.is_some() || latency.is_some();
        if !bad {
            return (false, 0.0, 0.0, 0.0);
        }
        let (p50_extra, tail_extra) = match (errors, latency) {
            (_, Some(l)) => (0.0, l - 1.0),
            // Errors alone: no slower.
            (Some(_), None) => (0.0, 0.0),
            (None, None) => (BAD_P50_EXTRA, BAD_TAIL_EXTRA),
        };
        let errors = errors.unwrap_or(if latency.is_some() { 0.0 } else { BAD_ERRORS });
        (true, errors, p50_extra, tail_extra)
    }
}

#[derive(Debug, Clone, Default)]
struct AlertState {
    firing: bool,
    held: u32,
    /// While firing: the region it fired in, its severity and since when.
    fired: Option<(String, AlertSeverity, DateTime<Utc>)>,
}

#[derive(Debug, Clone)]
struct Svc {
    name: String,
    team: String,
    deployment: String,
    base_rps: f64,
    capacity_per_node: f64,
    p50_ms: f64,
    slo_p99_ms: f64,
    revisions: Vec<Rev>,
    current: u32,
    rollout: Option<Rollout>,
    placements: Vec<Placement>,
    primary: usize,
    load: f64,
    load_from: f64,
    load_to: f64,
    load_ramp: (u64, u64),
    alerts: BTreeMap<&'static str, AlertState>,
    revision_changed_by: Option<String>,
    primary_changed_by: Option<String>,
}

/// A scheduled effect of an action.
#[derive(Debug, Clone)]
struct Pending {
    due: u64,
    action: String,
    step: ActionStep,
}

#[derive(Debug, Clone, Copy)]
enum ActionStep {
    Run,
    Finish,
}

/// One event produced by the world, before the journal gives it a sequence.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub ty: EventType,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// Fault knobs that reach into the world (the stream faults live with the server).
#[derive(Debug, Clone, Default)]
pub struct ActionFaults {
    /// Probability that an action fails when it starts running.
    pub fail: f64,
}

pub struct World {
    rng: Rng,
    /// Draws the failed-request counts of the figures by revision: a generator of its own,
    /// so that the rest of a seeded run is what it was before they were reported.
    counts_rng: Rng,
    pub t: u64,
    start: DateTime<Utc>,
    start_hour: f64,
    services: Vec<Svc>,
    regions: Vec<String>,
    steps: Vec<Step>,
    next_step: usize,
    actions: HashMap<String, Action>,
    pending: Vec<Pending>,
    burst: Option<(u64, f64)>,
    faults: ActionFaults,
    region_health: HashMap<String, RegionHealth>,
    pub outbox: Vec<Emitted>,
    /// The fleet as Prometheus metrics, fed every simulated second.
    pub exposition: super::exposition::Exposition,
}

struct ServiceSpec {
    name: &'static str,
    team: &'static str,
    primary: usize,
    base_rps: f64,
    capacity_per_node: f64,
    p50_ms: f64,
    slo_p99_ms: f64,
    revisions: &'static [(u32, &'static str)],
}

/// The fleet every scenario runs on.
const FLEET: &[ServiceSpec] = &[
    ServiceSpec {
        name: "recommendations",
        team: "ads-ml",
        primary: 0,
        base_rps: 960.0,
        capacity_per_node: 200.0,
        p50_ms: 35.0,
        slo_p99_ms: 250.0,
        revisions: &[(17, "rec-dlrm-2026.09"), (18, "rec-dlrm-2026.10")],
    },
    ServiceSpec {
        name: "search-ranking",
        team: "search",
        primary: 1,
        base_rps: 670.0,
        capacity_per_node: 140.0,
        p50_ms: 60.0,
        slo_p99_ms: 400.0,
        revisions: &[(30, "ranker-xl-2026.09"), (31, "ranker-xl-2026.10")],
    },
    ServiceSpec {
        name: "llm-assistant",
        team: "assistant-platform",
        primary: 0,
        base_rps: 190.0,
        capacity_per_node: 40.0,
        p50_ms: 900.0,
        slo_p99_ms: 4_000.0,
        revisions: &[(40, "assistant-13b-2026.09"), (41, "assistant-13b-2026.10")],
    },
];
/// The regions a fleet can span, the demo's two first.
const REGIONS: &[&str] = &[
    "us-east",
    "eu-west",
    "us-west",
    "eu-central",
    "ap-south",
    "ap-northeast",
];
/// Teams that own the services a larger fleet adds.
const TEAMS: &[&str] = &[
    "ads-ml",
    "search",
    "assistant-platform",
    "vision",
    "speech",
    "trust-safety",
    "growth-ml",
];
const NODES_PER_POOL: usize = 8;
/// The GPUs on each simulated node.
const GPUS_PER_NODE: u32 = 8;

/// How big the simulated fleet is: the demo's three services in two regions, or a larger
/// one made of the same three kinds of service (the first three keep the demo's names, so
/// every scenario runs on any fleet; the rest are numbered, `search-ranking-017`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetShape {
    pub services: usize,
    pub regions: usize,
}

impl FleetShape {
    pub const MAX_SERVICES: usize = 1_000;
}

impl Default for FleetShape {
    fn default() -> FleetShape {
        FleetShape {
            services: FLEET.len(),
            regions: 2,
        }
    }
}

impl std::str::FromStr for FleetShape {
    type Err = String;

    /// `SERVICESxREGIONS`, as in `300x6`.
    fn from_str(s: &str) -> Result<FleetShape, String> {
        let (services, regions) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("{s:?}: write the fleet as SERVICESxREGIONS, e.g. 300x6"))?;
        let services: usize = services
            .trim()
            .parse()
            .map_err(|_| format!("{services:?} is not a number of services"))?;
        let regions: usize = regions
            .trim()
            .parse()
            .map_err(|_| format!("{regions:?} is not a number of regions"))?;
        if !(FLEET.len()..=FleetShape::MAX_SERVICES).contains(&services) {
            return Err(format!(
                "a fleet has {} to {} services",
                FLEET.len(),
                FleetShape::MAX_SERVICES
            ));
        }
        if !(2..=REGIONS.len()).contains(&regions) {
            return Err(format!("a fleet spans 2 to {} regions", REGIONS.len()));
        }
        Ok(FleetShape { services, regions })
    }
}

impl World {
    pub fn new(
        scenario: &Scenario,
        seed: u64,
        start: DateTime<Utc>,
        faults: ActionFaults,
        shape: FleetShape,
    ) -> World {
        let regions: Vec<String> = REGIONS
            .iter()
            .take(shape.regions.clamp(1, REGIONS.len()))
            .map(|r| r.to_string())
            .collect();
        let services = (0..shape.services.clamp(FLEET.len(), FleetShape::MAX_SERVICES))
            .map(|i| {
                let spec = &FLEET[i % FLEET.len()];
                let (name, team) = if i < FLEET.len() {
                    (spec.name.to_owned(), spec.team)
                } else {
                    (
                        format!("{}-{:03}", spec.name, i / FLEET.len()),
                        TEAMS[i % TEAMS.len()],
                    )
                };
                let current = spec.revisions.last().map(|r| r.0).unwrap_or(1);
                let revisions = spec
                    .revisions
                    .iter()
                    .enumerate()
                    .map(|(i, (n, model))| Rev {
                        n: *n,
                        model: model.to_string(),
                        bad: false,
                        errors: 0.0,
                        p50_extra: 0.0,
                        tail_extra: 0.0,
                        created_at: start - Duration::days(30 * (spec.revisions.len() - i) as i64),
                    })
                    .collect();
                let placements = regions
                    .iter()
                    .map(|region| {
                        let pool = format!("{name}-{region}");
                        Placement {
                            nodes: (1..=NODES_PER_POOL)
                                .map(|i| Node {
                                    id: format!("{pool}-gpu{i:02}"),
                                    state: NodeState::Up,
                                    revision: current,
                                    draining: false,
                                    hot_for: 0,
                                    down_since: None,
                                    rejoins: true,
                                    xid: 0,
                                    gpus: GPUS_PER_NODE,
                                })
                                .collect(),
                            region: region.clone(),
                            by_revision: BTreeMap::new(),
                            last_by_revision: Vec::new(),
                            kv_pressure: None,
                            preempted: 0.0,
                            kv_backlog: 0.0,
                            pool,
                            queue: 0.0,
                            last: Sample::default(),
                        }
                    })
                    .collect();
                Svc {
                    deployment: format!("{name}-serving"),
                    name,
                    team: team.to_owned(),
                    base_rps: spec.base_rps,
                    capacity_per_node: spec.capacity_per_node,
                    p50_ms: spec.p50_ms,
                    slo_p99_ms: spec.slo_p99_ms,
                    revisions,
                    current,
                    rollout: None,
                    placements,
                    primary: spec.primary,
                    load: 1.0,
                    load_from: 1.0,
                    load_to: 1.0,
                    load_ramp: (0, 0),
                    alerts: BTreeMap::new(),
                    revision_changed_by: None,
                    primary_changed_by: None,
                }
            })
            .collect();
        let mut steps = scenario.steps.clone();
        steps.sort_by_key(|s| s.at);
        World {
            rng: Rng::new(seed),
            counts_rng: Rng::new(seed ^ 0x5eed_c0de_cafe_f00d),
            t: 0,
            start,
            start_hour: 14.0,
            services,
            region_health: regions
                .iter()
                .map(|r| (r.clone(), RegionHealth::Healthy))
                .collect(),
            regions,
            steps,
            next_step: 0,
            actions: HashMap::new(),
            pending: Vec::new(),
            burst: None,
            faults,
            outbox: Vec::new(),
            exposition: Default::default(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.start + Duration::seconds(self.t as i64)
    }

    fn emit<T: Serialize>(&mut self, ty: EventType, subject: String, data: &T) {
        let data = serde_json::to_value(data).unwrap_or(serde_json::Value::Null);
        let time = self.now();
        self.outbox.push(Emitted {
            ty,
            subject,
            time,
            data,
        });
    }

    /// Advances the world by one simulated second.
    pub fn tick(&mut self) {
        self.t += 1;
        while self.next_step < self.steps.len() && self.steps[self.next_step].at <= self.t {
            let step = self.steps[self.next_step].clone();
            self.next_step += 1;
            self.apply(step.change);
        }
        self.run_pending_actions();
        for s in 0..self.services.len() {
            self.progress_rollout(s);
            self.update_load(s);
        }
        self.update_burst();
        for s in 0..self.services.len() {
            self.serve(s);
            self.kv_pressure(s);
            self.evaluate_alerts(s);
        }
        self.expose();
        self.background_noise();
        if self.t.is_multiple_of(METRICS_EVERY_S) {
            self.report_metrics();
        }
        self.report_regions(self.t % REGION_STATUS_EVERY_S == 1);
    }

    fn service_index(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Rollout {
                service,
                revision,
                model,
                bad,
                errors,
                latency,
                waves,
                wave_interval_s,
                stall_at_wave,
            } => {
                let Some(s) = self.service_index(&service) else {
                    return;
                };
                let now = self.now();
                let svc = &mut self.services[s];
                let from = svc.current;
                let from_model = svc.model(from);
                let (bad, errors, p50_extra, tail_extra) = Rev::effect(bad, errors, latency);
                svc.revisions.push(Rev {
                    n: revision,
                    model: model.clone(),
                    bad,
                    errors,
                    p50_extra,
                    tail_extra,
                    created_at: now,
                });
                svc.current = revision;
                svc.revision_changed_by = Some("deployment pipeline".into());
                svc.rollout = Some(Rollout {
                    from,
                    to: revision,
                    waves: waves.max(1),
                    done_waves: 0,
                    interval: wave_interval_s.max(1),
                    next_at: self.t + wave_interval_s.max(1),
                    stall_at_wave,
                    stalled: false,
                    stalled_at: 0,
                    paused: false,
                    paused_by: None,
                    aborting: false,
                });
                let started = RolloutStarted {
                    deployment: svc.deployment.clone(),
                    service: service.clone(),
                    from_revision: from,
                    to_revision: revision,
                    model_version: model.clone(),
                    waves: waves.max(1),
                    nodes_total: svc.nodes_total(),
                };
                let changed = ModelVersionChanged {
                    deployment: svc.deployment.clone(),
                    service: service.clone(),
                    revision,
                    from_model,
                    to_model: model,
                    cause: ChangeCause::Rollout,
                };
                let subject = format!("service/{service}");
                self.emit(EventType::RolloutStarted, subject.clone(), &started);
                self.emit(EventType::ModelVersionChanged, subject, &changed);
            }
            Change::Load {
                service,
                multiplier,
                ramp_s,
            } => {
                let Some(s) = self.service_index(&service) else {
                    return;
                };
                let svc = &mut self.services[s];
                svc.load_from = svc.load;
                svc.load_to = multiplier.max(0.0);
                svc.load_ramp = (self.t, self.t + ramp_s.max(1));
            }
            Change::GpuXid {
                service,
                region,
                xid,
            } => self.gpu_xid(&service, &region, xid),
            Change::KvPressure {
                service,
                region,
                seconds,
            } => {
                let Some(s) = self.service_index(&service) else {
                    return;
                };
                let until = self.t + seconds;
                if let Some(p) = self.services[s]
                    .placements
                    .iter_mut()
                    .find(|p| p.region == region)
                {
                    p.kv_pressure = Some((until, false));
                }
            }
            Change::NodesDown {
                service,
                region,
                count,
                reason,
            } => {
                let Some(s) = self.service_index(&service) else {
                    return;
                };
                let Some(p) = self.services[s]
                    .placements
                    .iter()
                    .position(|p| p.region == region)
                else {
                    return;
                };
                for _ in 0..count {
                    let placement = &self.services[s].placements[p];
                    let Some(n) = placement
                        .nodes
                        .iter()
                        .position(|n| n.state != NodeState::Down)
                    else {
                        break;
                    };
                    // Nodes taken down by the scenario stay down: the fleet must cope without them.
                    self.node_down(s, p, n, reason, false);
                }
            }
        }
    }

    /// An XID on the first serving node of the service's pool in `region` (its GPU 3);
    /// XID 79 takes that GPU off the bus: the node serves on the rest (degraded).
    fn gpu_xid(&mut self, service: &str, region: &str, xid: u32) {
        let Some(s) = self.service_index(service) else {
            return;
        };
        let Some(placement) = self.services[s]
            .placements
            .iter_mut()
            .find(|p| p.region == region)
        else {
            return;
        };
        let Some(node) = placement
            .nodes
            .iter_mut()
            .find(|n| n.state == NodeState::Up)
        else {
            return;
        };
        let fell_off = xid == 79;
        node.xid = xid;
        if fell_off {
            node.state = NodeState::Degraded;
            node.gpus = GPUS_PER_NODE - 1;
        }
        let (node, pool) = (node.id.clone(), placement.pool.clone());
        let region = placement.region.clone();
        let subject = format!("node/{node}");
        let data = GpuXid {
            node: node.clone(),
            pool: pool.clone(),
            region: region.clone(),
            service: service.to_owned(),
            gpu: "3".into(),
            xid,
        };
        self.emit(EventType::GpuXid, subject.clone(), &data);
        if fell_off {
            let data = GpuMissing {
                node,
                pool,
                region,
                service: service.to_owned(),
                expected: GPUS_PER_NODE,
                seen: GPUS_PER_NODE - 1,
            };
            self.emit(EventType::GpuMissing, subject, &data);
        }
    }

    /// Each region under KV-cache pressure while it serves: latency climbs (preempted
    /// requests are recomputed), said when it starts and when it ends (its time is up, or
    /// the region no longer serves the service's traffic).
    fn kv_pressure(&mut self, s: usize) {
        let t = self.t;
        let mut said = Vec::new();
        let svc = &mut self.services[s];
        for placement in &mut svc.placements {
            let Some((until, announced)) = placement.kv_pressure else {
                continue;
            };
            let serving = placement.last.rps > 0.0;
            if t >= until || (announced && !serving) {
                placement.kv_pressure = None;
                placement.kv_backlog = 0.0;
                if announced {
                    said.push((placement.region.clone(), 0.55, 0.0, placement.queue, false));
                }
                continue;
            }
            if !serving {
                continue;
            }
            placement.last.p50 *= 1.4;
            placement.last.p99 *= 3.0;
            let preempting = placement.last.rps * 0.004;
            placement.preempted += preempting;
            // Preempted requests wait to be recomputed: the queue grows while it lasts.
            placement.kv_backlog += preempting * 5.0;
            placement.last.queue += placement.kv_backlog;
            if !announced {
                placement.kv_pressure = Some((until, true));
                said.push((
                    placement.region.clone(),
                    0.97,
                    preempting,
                    placement.queue,
                    true,
                ));
            }
        }
        let service = svc.name.clone();
        for (region, usage, preemptions, queue, pressure) in said {
            let data = KvCachePressure {
                service: service.clone(),
                region,
                kv_cache_usage: usage,
                preemptions_per_s: (preemptions * 10.0_f64).round() / 10.0,
                queue_depth: queue.round(),
                pressure,
            };
            self.emit(
                EventType::KvCachePressure,
                format!("service/{service}"),
                &data,
            );
        }
    }

    fn node_down(&mut self, s: usize, p: usize, n: usize, reason: NodeFault, rejoins: bool) {
        let t = self.t;
        let service_name = self.services[s].name.clone();
        let placement = &mut self.services[s].placements[p];
        let node = &mut placement.nodes[n];
        node.state = NodeState::Down;
        node.down_since = Some(t);
        node.hot_for = 0;
        node.rejoins = rejoins;
        let data = NodeDown {
            node: node.id.clone(),
            pool: placement.pool.clone(),
            region: placement.region.clone(),
            service: service_name.clone(),
            reason,
            pool_nodes_down: placement
                .nodes
                .iter()
                .filter(|n| n.state == NodeState::Down)
                .count() as u32,
            pool_nodes_total: placement.nodes.len() as u32,
        };
        let subject = format!("node/{}", data.node);
        self.emit(EventType::NodeDown, subject, &data);
    }

    fn progress_rollout(&mut self, s: usize) {
        let t = self.t;
        let svc = &mut self.services[s];
        let Some(r) = svc.rollout.as_mut() else {
            return;
        };
        // Paused or being aborted: no wave moves, and no progress deadline runs.
        if r.paused || r.aborting {
            return;
        }
        if r.stalled && t >= r.stalled_at + PROGRESS_DEADLINE_S {
            let data = RolloutFailed {
                deployment: svc.deployment.clone(),
                service: svc.name.clone(),
                to_revision: r.to,
                reason: format!(
                    "progress deadline exceeded: wave {} of {} made no progress for {PROGRESS_DEADLINE_S} s",
                    r.done_waves + 1,
                    r.waves
                ),
            };
            svc.rollout = None;
            let subject = format!("service/{}", data.service);
            self.emit(EventType::RolloutFailed, subject, &data);
            return;
        }
        if r.stalled || t < r.next_at {
            return;
        }
        let wave = r.done_waves + 1;
        let total = svc.placements.iter().map(|p| p.nodes.len()).sum::<usize>() as u32;
        let per_wave = total.div_ceil(r.waves);
        let first = (r.done_waves * per_wave) as usize;
        let last = ((wave * per_wave).min(total)) as usize;
        let to = r.to;
        let waves = r.waves;
        let stall = r.stall_at_wave == Some(wave);
        // Waves take nodes in order across the service's pools, primary region first.
        let order: Vec<(usize, usize)> = {
            let mut order = Vec::new();
            let mut ps: Vec<usize> = (0..svc.placements.len()).collect();
            ps.sort_by_key(|p| *p != svc.primary);
            for p in ps {
                for n in 0..svc.placements[p].nodes.len() {
                    order.push((p, n));
                }
            }
            order
        };
        for &(p, n) in &order[first..last] {
            let node = &mut svc.placements[p].nodes[n];
            if stall {
                node.draining = true;
            } else {
                node.revision = to;
            }
        }
        let subject = format!("service/{}", svc.name);
        if stall {
            r.stalled = true;
            r.stalled_at = t;
            let data = RolloutStalled {
                deployment: svc.deployment.clone(),
                service: svc.name.clone(),
                to_revision: to,
                wave,
                waves,
                reason: "image pull queue saturated: wave has made no progress".into(),
                nodes_draining: (last - first) as u32,
            };
            self.emit(EventType::RolloutStalled, subject, &data);
            return;
        }
        r.done_waves = wave;
        r.next_at = t + r.interval;
        let data = RolloutWaveProgressed {
            deployment: svc.deployment.clone(),
            service: svc.name.clone(),
            to_revision: to,
            wave,
            waves,
            nodes_updated: last as u32,
            nodes_total: total,
            traffic_weight: None,
        };
        let completed = wave >= waves;
        if completed {
            svc.rollout = None;
        }
        let done = RolloutCompleted {
            deployment: svc.deployment.clone(),
            service: svc.name.clone(),
            revision: to,
        };
        self.emit(EventType::RolloutWaveProgressed, subject.clone(), &data);
        if completed {
            self.emit(EventType::RolloutCompleted, subject, &done);
        }
    }

    fn update_load(&mut self, s: usize) {
        let t = self.t;
        let svc = &mut self.services[s];
        let (from, to) = svc.load_ramp;
        if to > from && t <= to {
            let f = (t.saturating_sub(from)) as f64 / (to - from) as f64;
            svc.load = svc.load_from + (svc.load_to - svc.load_from) * f;
        }
    }

    fn update_burst(&mut self) {
        match self.burst {
            Some((until, _)) if self.t >= until => self.burst = None,
            None if self.rng.chance(0.004) => {
                let len = 10 + (self.rng.unit() * 10.0) as u64;
                self.burst = Some((self.t + len, 1.08 + self.rng.unit() * 0.07));
            }
            _ => {}
        }
    }

    /// Daily curve: busiest mid-afternoon, quietest before dawn.
    fn daily(&self) -> f64 {
        let hour = (self.start_hour + self.t as f64 / 3600.0) % 24.0;
        1.0 + 0.12 * ((hour - 9.0) / 24.0 * std::f64::consts::TAU).sin()
    }

    /// One second of serving traffic: queues, latency, errors and overload.
    fn serve(&mut self, s: usize) {
        let daily = self.daily();
        let burst = self.burst.map(|(_, f)| f).unwrap_or(1.0);
        let jitter = 1.0 + 0.03 * self.rng.noise();
        let t = self.t;
        let mut overloaded: Vec<(usize, usize)> = Vec::new();
        let mut rejoined: Vec<(usize, usize)> = Vec::new();
        {
            let svc = &mut self.services[s];
            let demand = svc.base_rps * daily * burst * svc.load;
            // Each bad revision and what it does on its nodes.
            let bad: Vec<(u32, f64, f64, f64)> = svc
                .revisions
                .iter()
                .filter(|r| r.bad)
                .map(|r| (r.n, r.errors, r.p50_extra, r.tail_extra))
                .collect();
            let primary = svc.primary;
            let rolling = svc.rollout.is_some();
            for (p, placement) in svc.placements.iter_mut().enumerate() {
                let rps = if p == primary { demand } else { 0.0 };
                let serving: Vec<&Node> = placement
                    .nodes
                    .iter()
                    .filter(|n| n.state != NodeState::Down && !n.draining)
                    .collect();
                let weight = |n: &&Node| {
                    if n.state == NodeState::Degraded {
                        0.5
                    } else {
                        1.0
                    }
                };
                let capacity: f64 = serving.iter().map(weight).sum::<f64>() * svc.capacity_per_node;
                // The bad revisions' shares of the serving nodes, weighing what each does.
                let (mut bad_errors, mut p50_extra, mut tail_extra) = (0.0, 0.0, 0.0);
                for (r, errors, p50, tail) in &bad {
                    let share = if serving.is_empty() {
                        0.0
                    } else {
                        serving.iter().filter(|n| n.revision == *r).count() as f64
                            / serving.len() as f64
                    };
                    bad_errors += share * errors;
                    p50_extra += p50 * share;
                    tail_extra += tail * share;
                }
                let u = if capacity > 0.0 {
                    rps / capacity
                } else if rps > 0.0 {
                    10.0
                } else {
                    0.0
                };
                placement.queue = (placement.queue + rps - capacity).max(0.0);
                if rps == 0.0 {
                    placement.queue = 0.0;
                }
                let queue_delay_ms = if capacity > 0.0 {
                    placement.queue / capacity * 1000.0
                } else {
                    0.0
                };
                let p50 =
                    svc.p50_ms * (1.0 + 0.3 * u.min(1.0).powi(2)) * (1.0 + p50_extra) * jitter
                        + queue_delay_ms;
                let congestion = if u > 0.9 { 1.0 + 4.0 * (u - 0.9) } else { 1.0 };
                let p99 = p50 * 2.6 * (1.0 + tail_extra) * congestion;
                let mut error_rate = 0.002 * jitter + bad_errors;
                if u > 1.1 {
                    error_rate += ((u - 1.1) * 0.6).min(0.5);
                }
                if capacity == 0.0 && rps > 0.0 {
                    error_rate = 1.0;
                }
                placement.last_by_revision.clear();
                if rolling && rps > 0.0 && capacity > 0.0 {
                    // Each revision's share of the requests goes with its nodes' weight; a
                    // bad one fails and slows only on its own nodes.
                    let overload = if u > 1.1 {
                        ((u - 1.1) * 0.6).min(0.5)
                    } else {
                        0.0
                    };
                    let total: f64 = serving.iter().map(weight).sum();
                    let mut revisions: Vec<u32> = serving.iter().map(|n| n.revision).collect();
                    revisions.sort_unstable();
                    revisions.dedup();
                    for r in revisions {
                        let on: Vec<&&Node> = serving.iter().filter(|n| n.revision == r).collect();
                        let share = on.iter().map(|n| weight(n)).sum::<f64>() / total;
                        let (errors, p50_extra, tail_extra) = bad
                            .iter()
                            .find(|b| b.0 == r)
                            .map_or((0.0, 0.0, 0.0), |b| (b.1, b.2, b.3));
                        let p50 = svc.p50_ms
                            * (1.0 + 0.3 * u.min(1.0).powi(2))
                            * (1.0 + p50_extra)
                            * jitter
                            + queue_delay_ms;
                        let p99 = p50 * 2.6 * (1.0 + tail_extra) * congestion;
                        let error_rate = (0.002 * jitter + errors + overload).clamp(0.0, 1.0);
                        let requests = rps * jitter * share;
                        placement.last_by_revision.push((
                            r,
                            Sample {
                                p50,
                                p99,
                                error_rate,
                                rps: requests,
                                queue: placement.queue,
                                gpu: (u.min(1.0) * 0.93).clamp(0.0, 1.0),
                            },
                        ));
                        let w = placement.by_revision.entry(r).or_default();
                        w.nodes = on.len() as u32;
                        w.requests += requests;
                        w.errors += requests * error_rate;
                        w.p50_sum += p50;
                        w.p99_sum += p99;
                        w.seconds += 1;
                    }
                }
                placement.last = Sample {
                    p50: if rps > 0.0 { p50 } else { 0.0 },
                    p99: if rps > 0.0 { p99 } else { 0.0 },
                    error_rate: if rps > 0.0 {
                        error_rate.clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                    rps: rps * (if rps > 0.0 { jitter } else { 1.0 }),
                    queue: placement.queue,
                    gpu: (u.min(1.0) * 0.93).clamp(0.0, 1.0),
                };
                // Overload: the hottest pool loses a node to OOM after a grace period.
                for (n, node) in placement.nodes.iter_mut().enumerate() {
                    if node.state == NodeState::Down {
                        let cool = u < 0.8;
                        if node.rejoins
                            && cool
                            && node.down_since.is_some_and(|d| t >= d + REJOIN_AFTER_S)
                        {
                            rejoined.push((p, n));
                        }
                        continue;
                    }
                    if node.draining {
                        continue;
                    }
                    if u > OVERLOAD_LIMIT {
                        node.hot_for += 1;
                    } else {
                        node.hot_for = 0;
                    }
                }
                if let Some(n) = placement.nodes.iter().rposition(|n| {
                    n.state != NodeState::Down && !n.draining && n.hot_for >= OVERLOAD_GRACE_S
                }) {
                    overloaded.push((p, n));
                }
            }
        }
        for (p, n) in overloaded {
            for node in self.services[s].placements[p].nodes.iter_mut() {
                node.hot_for = 0;
            }
            self.node_down(s, p, n, NodeFault::Oom, true);
        }
        for (p, n) in rejoined {
            let service = self.services[s].name.clone();
            let placement = &mut self.services[s].placements[p];
            let node = &mut placement.nodes[n];
            node.state = NodeState::Up;
            node.down_since = None;
            let data = NodeUp {
                node: node.id.clone(),
                pool: placement.pool.clone(),
                region: placement.region.clone(),
                service,
            };
            self.emit(EventType::NodeUp, format!("node/{}", data.node), &data);
        }
    }

    fn evaluate_alerts(&mut self, s: usize) {
        let svc = &self.services[s];
        let placement = &svc.placements[svc.primary];
        let sample = placement.last;
        let region = placement.region.clone();
        let service = svc.name.clone();
        let rules: [(&'static str, AlertSeverity, f64, f64, String); 3] = [
            (
                "HighErrorRate",
                AlertSeverity::Critical,
                sample.error_rate,
                ERROR_RATE_LIMIT,
                format!("{service} error rate above 5% in {region}"),
            ),
            (
                "LatencySLOBurn",
                AlertSeverity::Major,
                sample.p99,
                svc.slo_p99_ms,
                format!(
                    "{service} p99 latency above its {} ms SLO in {region}",
                    svc.slo_p99_ms
                ),
            ),
            (
                "QueueBacklog",
                AlertSeverity::Major,
                sample.queue,
                QUEUE_LIMIT,
                format!("{service} request queue backing up in {region}"),
            ),
        ];
        for (name, severity, value, threshold, summary) in rules {
            let state = self.services[s].alerts.entry(name).or_default();
            let breached = value > threshold;
            if breached != state.firing {
                state.held += 1;
            } else {
                state.held = 0;
            }
            let needed = if state.firing {
                RESOLVE_AFTER_S
            } else {
                FIRE_AFTER_S
            };
            if state.held < needed {
                continue;
            }
            state.firing = breached;
            state.held = 0;
            let now = self.start + Duration::seconds(self.t as i64);
            state.fired = breached.then(|| (region.clone(), severity, now));
            let subject = format!("service/{service}");
            if breached {
                let data = AlertFiring {
                    alert: name.into(),
                    service: service.clone(),
                    region: region.clone(),
                    severity,
                    summary,
                    value: Some(round(value)),
                    threshold: Some(threshold),
                };
                self.emit(EventType::AlertFiring, subject, &data);
            } else {
                let data = AlertResolved {
                    alert: name.into(),
                    service: service.clone(),
                    region: region.clone(),
                    value: Some(round(value)),
                    threshold: Some(threshold),
                };
                self.emit(EventType::AlertResolved, subject, &data);
            }
        }
    }

    /// The odd GPU hiccup on an otherwise healthy node, healed a little later.
    fn background_noise(&mut self) {
        if !self.rng.chance(0.003) {
            return;
        }
        let s = (self.rng.unit() * self.services.len() as f64) as usize % self.services.len();
        let p = (self.rng.unit() * 2.0) as usize % self.services[s].placements.len();
        let n = (self.rng.unit() * NODES_PER_POOL as f64) as usize % NODES_PER_POOL;
        let reason = if self.rng.chance(0.5) {
            NodeFault::GpuError
        } else {
            NodeFault::Thermal
        };
        let service = self.services[s].name.clone();
        let placement = &mut self.services[s].placements[p];
        let node = &mut placement.nodes[n];
        match node.state {
            NodeState::Up => {
                node.state = NodeState::Degraded;
                let detail = match reason {
                    NodeFault::GpuError => {
                        "XID 79: GPU has fallen off the bus; serving on remaining GPUs"
                    }
                    _ => "GPU temperature 91 °C: clocks throttled",
                };
                let data = NodeDegraded {
                    node: node.id.clone(),
                    pool: placement.pool.clone(),
                    region: placement.region.clone(),
                    service: service.clone(),
                    reason,
                    detail: detail.into(),
                };
                self.emit(
                    EventType::NodeDegraded,
                    format!("node/{}", data.node),
                    &data,
                );
            }
            NodeState::Degraded => {
                node.state = NodeState::Up;
                let data = NodeUp {
                    node: node.id.clone(),
                    pool: placement.pool.clone(),
                    region: placement.region.clone(),
                    service,
                };
                self.emit(EventType::NodeUp, format!("node/{}", data.node), &data);
            }
            NodeState::Down => {}
        }
    }

    /// This second of every (service, region) into the Prometheus exposition: during a
    /// rollout each revision's requests under its own `revision` label (a bad one's
    /// failures and latency on its own series), else all of them under the one most
    /// nodes serve.
    fn expose(&mut self) {
        for svc in &self.services {
            for (p, placement) in svc.placements.iter().enumerate() {
                let whole = [(svc.majority_revision(p), placement.last)];
                let parts = if placement.last_by_revision.is_empty() {
                    &whole[..]
                } else {
                    &placement.last_by_revision[..]
                };
                let under_pressure = placement.kv_pressure.is_some_and(|(_, said)| said);
                self.exposition.serving(
                    &svc.name,
                    &placement.region,
                    super::exposition::Serving {
                        kv_cache_usage: if under_pressure { 0.97 } else { 0.45 },
                        preemptions: placement.preempted,
                        gpus: placement
                            .nodes
                            .iter()
                            .filter(|n| n.state != NodeState::Down)
                            .map(|n| (n.id.clone(), n.gpus, n.xid))
                            .collect(),
                    },
                );
                for (revision, s) in parts {
                    self.exposition.record(
                        &svc.name,
                        &placement.region,
                        super::exposition::Second {
                            p50_ms: s.p50,
                            p99_ms: s.p99,
                            error_rate: s.error_rate,
                            rps: s.rps,
                            queue: s.queue,
                            gpu: s.gpu,
                            revision: *revision,
                            primary: p == svc.primary,
                        },
                    );
                }
            }
        }
    }

    fn report_metrics(&mut self) {
        let mut out = Vec::new();
        for svc in &self.services {
            for (p, placement) in svc.placements.iter().enumerate() {
                let s = placement.last;
                out.push(ServiceMetrics {
                    service: svc.name.clone(),
                    region: placement.region.clone(),
                    window_s: METRICS_EVERY_S as u32,
                    latency_p50_ms: round(s.p50),
                    latency_p99_ms: round(s.p99),
                    error_rate: (s.error_rate * 10_000.0).round() / 10_000.0,
                    requests_per_s: round(s.rps),
                    queue_depth: Some(s.queue.round()),
                    gpu_utilization: Some((s.gpu * 1000.0).round() / 1000.0),
                    revision: svc.majority_revision(p),
                    primary: p == svc.primary,
                    team: Some(svc.team.clone()),
                });
            }
        }
        for m in out {
            self.emit(
                EventType::ServiceMetrics,
                format!("service/{}", m.service),
                &m,
            );
        }
        self.report_revisions();
    }

    /// While a rollout runs, each region's window split by revision: the new one and the
    /// one it started from, with their requests and failed requests counted.
    fn report_revisions(&mut self) {
        let mut out = Vec::new();
        for svc in &mut self.services {
            let roles = svc.rollout.as_ref().map(|r| (r.to, r.from));
            for (p, placement) in svc.placements.iter_mut().enumerate() {
                let window = std::mem::take(&mut placement.by_revision);
                let Some((canary, stable)) = roles else {
                    continue;
                };
                let mut revisions = Vec::new();
                // The seconds the window covers: fewer than five in the one a rollout began in.
                let seconds = window.values().map(|w| w.seconds).max().unwrap_or(0);
                for (revision, role) in [
                    (canary, RevisionRole::Canary),
                    (stable, RevisionRole::Stable),
                ] {
                    let Some(w) = window.get(&revision).filter(|w| w.seconds > 0) else {
                        continue;
                    };
                    let requests = w.requests.round() as u64;
                    let share = if w.requests > 0.0 {
                        w.errors / w.requests
                    } else {
                        0.0
                    };
                    revisions.push(RevisionFigures {
                        revision,
                        role,
                        nodes: w.nodes,
                        requests,
                        errors: binomial(&mut self.counts_rng, requests, share),
                        latency_p50_ms: round(w.p50_sum / f64::from(w.seconds)),
                        latency_p99_ms: round(w.p99_sum / f64::from(w.seconds)),
                    });
                }
                if revisions.iter().any(|r| r.requests > 0) {
                    out.push(RevisionMetrics {
                        service: svc.name.clone(),
                        region: placement.region.clone(),
                        window_s: seconds,
                        primary: p == svc.primary,
                        revisions,
                    });
                }
            }
        }
        for m in out {
            self.emit(
                EventType::RevisionMetrics,
                format!("service/{}", m.service),
                &m,
            );
        }
    }

    fn report_regions(&mut self, always: bool) {
        let mut out = Vec::new();
        for region in &self.regions {
            let (mut up, mut total) = (0u32, 0u32);
            let mut primary_for = Vec::new();
            let mut worst_error: f64 = 0.0;
            for svc in &self.services {
                for (p, placement) in svc.placements.iter().enumerate() {
                    if &placement.region != region {
                        continue;
                    }
                    total += placement.nodes.len() as u32;
                    up += placement
                        .nodes
                        .iter()
                        .filter(|n| n.state != NodeState::Down)
                        .count() as u32;
                    if p == svc.primary {
                        primary_for.push(svc.name.clone());
                        worst_error = worst_error.max(placement.last.error_rate);
                    }
                }
            }
            let status = if up == 0 {
                RegionHealth::Down
            } else if (up as f64) < total as f64 * 0.85 || worst_error > ERROR_RATE_LIMIT {
                RegionHealth::Degraded
            } else {
                RegionHealth::Healthy
            };
            let changed = self.region_health.get(region) != Some(&status);
            if always || changed {
                out.push(RegionStatus {
                    region: region.clone(),
                    status,
                    nodes_up: up,
                    nodes_total: total,
                    primary_for,
                });
            }
        }
        for r in out {
            self.region_health.insert(r.region.clone(), r.status);
            self.emit(EventType::RegionStatus, format!("region/{}", r.region), &r);
        }
    }

    // ---- the action API's view and effects ----

    pub fn services(&self) -> Vec<Service> {
        self.services
            .iter()
            .map(|s| Service {
                name: s.name.clone(),
                deployment: s.deployment.clone(),
                primary_region: s.placements[s.primary].region.clone(),
                regions: s.placements.iter().map(|p| p.region.clone()).collect(),
                last_changed_by: s.primary_changed_by.clone(),
                traffic: None,
            })
            .collect()
    }

    pub fn deployments(&self) -> Vec<Deployment> {
        self.services.iter().map(Svc::deployment_view).collect()
    }

    pub fn deployment(&self, name: &str) -> Option<Deployment> {
        self.services
            .iter()
            .find(|s| s.deployment == name)
            .map(Svc::deployment_view)
    }

    pub fn action(&self, id: &str) -> Option<Action> {
        self.actions.get(id).cloned()
    }

    fn new_action(
        &mut self,
        kind: ActionKind,
        s: usize,
        from: String,
        to: String,
        actor: &str,
        reason: &str,
    ) -> Action {
        let now = self.now();
        let id = super::event_id(&mut self.rng, now);
        let svc = &self.services[s];
        let action = Action {
            id: id.clone(),
            kind,
            service: svc.name.clone(),
            deployment: kind.acts_on_deployment().then(|| svc.deployment.clone()),
            from,
            to,
            state: ActionState::Accepted,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            created_at: now,
            updated_at: now,
            error: None,
            output: None,
        };
        self.actions.insert(id.clone(), action.clone());
        self.pending.push(Pending {
            due: self.t + ACTION_START_S,
            action: id,
            step: ActionStep::Run,
        });
        self.emit_action(EventType::ActionAccepted, &action);
        action
    }

    fn emit_action(&mut self, ty: EventType, a: &Action) {
        let data = ActionEvent {
            action_id: a.id.clone(),
            kind: a.kind,
            service: a.service.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
            actor: a.actor.clone(),
            reason: a.reason.clone(),
            error: a.error.clone(),
        };
        self.emit(ty, format!("action/{}", a.id), &data);
    }

    /// Accepts a rollback, or says why not (404, 400, 409 with the current state).
    /// Actions accepted so far (each idempotency key counts once).
    pub fn action_count(&self) -> usize {
        self.actions.len()
    }

    pub fn request_rollback(
        &mut self,
        deployment: &str,
        to: u32,
        expected: u32,
        actor: &str,
        reason: &str,
    ) -> Result<Action, (u16, ApiError)> {
        let Some(s) = self
            .services
            .iter()
            .position(|s| s.deployment == deployment)
        else {
            return Err(not_found(format!("no deployment {deployment:?}")));
        };
        let svc = &self.services[s];
        if svc.current != expected {
            return Err((
                409,
                ApiError {
                    error: "precondition_failed".into(),
                    message: format!(
                        "{deployment} is at revision {}, not {expected}: someone changed it since you looked",
                        svc.current
                    ),
                    current: Some(serde_json::json!({ "revision": svc.current })),
                    changed_by: svc.revision_changed_by.clone(),
                },
            ));
        }
        if to == svc.current || !svc.revisions.iter().any(|r| r.n == to) {
            return Err(invalid(format!(
                "revision {to} is not an earlier revision of {deployment} (history: {})",
                svc.revisions
                    .iter()
                    .map(|r| r.n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let from = svc.current.to_string();
        Ok(self.new_action(ActionKind::Rollback, s, from, to.to_string(), actor, reason))
    }

    /// Accepts a failover, or says why not.
    pub fn request_failover(
        &mut self,
        service: &str,
        to_region: &str,
        expected: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Action, (u16, ApiError)> {
        let Some(s) = self.service_index(service) else {
            return Err(not_found(format!("no service {service:?}")));
        };
        let svc = &self.services[s];
        let primary = svc.placements[svc.primary].region.clone();
        if primary != expected {
            return Err((
                409,
                ApiError {
                    error: "precondition_failed".into(),
                    message: format!("{service}'s primary region is {primary}, not {expected}"),
                    current: Some(serde_json::json!({ "primary_region": primary })),
                    changed_by: svc.primary_changed_by.clone(),
                },
            ));
        }
        if to_region == primary || !svc.placements.iter().any(|p| p.region == to_region) {
            return Err(invalid(format!(
                "{to_region:?} is not another region of {service} (regions: {})",
                svc.placements
                    .iter()
                    .map(|p| p.region.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(self.new_action(
            ActionKind::Failover,
            s,
            primary,
            to_region.to_owned(),
            actor,
            reason,
        ))
    }

    fn run_pending_actions(&mut self) {
        let t = self.t;
        let (due, later): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.due <= t);
        self.pending = later;
        for p in due {
            let Some(mut action) = self.actions.get(&p.action).cloned() else {
                continue;
            };
            action.updated_at = self.now();
            match p.step {
                ActionStep::Run => {
                    if self.rng.chance(self.faults.fail) {
                        action.state = ActionState::Failed;
                        action.error =
                            Some("injected failure: the controller rejected the change".into());
                        self.actions.insert(action.id.clone(), action.clone());
                        self.emit_action(EventType::ActionFailed, &action);
                        continue;
                    }
                    action.state = ActionState::Running;
                    self.start(&action);
                    let takes = match action.kind {
                        ActionKind::Rollback | ActionKind::AbortRollout => ROLLBACK_TAKES_S,
                        ActionKind::Failover => FAILOVER_TAKES_S,
                        ActionKind::PauseRollout | ActionKind::ResumeRollout => PAUSE_TAKES_S,
                        ActionKind::PromoteRollout => PROMOTE_TAKES_S,
                        ActionKind::Silence => 0,
                    };
                    self.pending.push(Pending {
                        due: t + takes,
                        action: action.id.clone(),
                        step: ActionStep::Finish,
                    });
                    self.actions.insert(action.id.clone(), action.clone());
                    self.emit_action(EventType::ActionRunning, &action);
                }
                ActionStep::Finish => match self.finish(&action) {
                    Ok(()) => {
                        action.state = ActionState::Succeeded;
                        self.actions.insert(action.id.clone(), action.clone());
                        self.emit_action(EventType::ActionSucceeded, &action);
                    }
                    Err(why) => {
                        action.state = ActionState::Failed;
                        action.error = Some(why);
                        self.actions.insert(action.id.clone(), action.clone());
                        self.emit_action(EventType::ActionFailed, &action);
                    }
                },
            }
        }
    }

    /// What an action does the moment it starts running: an abort stops the rollout's
    /// waves at once, whatever else is in flight.
    fn start(&mut self, action: &Action) {
        if action.kind != ActionKind::AbortRollout {
            return;
        }
        if let Some(r) = self
            .service_index(&action.service)
            .and_then(|s| self.services[s].rollout.as_mut())
        {
            r.aborting = true;
        }
    }

    /// Carries out an action's effect; why not, when the world moved on under it.
    fn finish(&mut self, action: &Action) -> Result<(), String> {
        let Some(s) = self.service_index(&action.service) else {
            return Err(format!("no service {:?}", action.service));
        };
        if let Some(lever) = action.kind.lever() {
            return self.finish_lever(s, lever, action);
        }
        match action.kind {
            ActionKind::Rollback => {
                let Ok(to) = action.to.parse::<u32>() else {
                    return Err(format!("{:?} is not a revision", action.to));
                };
                let svc = &mut self.services[s];
                let from_model = svc.model(svc.current);
                svc.current = to;
                svc.rollout = None;
                svc.revision_changed_by = Some(action.actor.clone());
                for placement in &mut svc.placements {
                    for node in &mut placement.nodes {
                        node.revision = to;
                        node.draining = false;
                    }
                }
                let data = ModelVersionChanged {
                    deployment: svc.deployment.clone(),
                    service: svc.name.clone(),
                    revision: to,
                    from_model,
                    to_model: svc.model(to),
                    cause: ChangeCause::Rollback,
                };
                self.emit(
                    EventType::ModelVersionChanged,
                    format!("service/{}", action.service),
                    &data,
                );
            }
            ActionKind::Failover => {
                let svc = &mut self.services[s];
                if let Some(p) = svc.placements.iter().position(|p| p.region == action.to) {
                    svc.primary = p;
                    svc.primary_changed_by = Some(action.actor.clone());
                }
            }
            // Silences are done when accepted (see `request_silence`); levers above.
            _ => {}
        }
        Ok(())
    }

    fn finish_lever(
        &mut self,
        s: usize,
        lever: RolloutLever,
        action: &Action,
    ) -> Result<(), String> {
        let t = self.t;
        let svc = &mut self.services[s];
        let Some(r) = svc.rollout.as_mut() else {
            return Err(format!(
                "the rollout of {} ended before the {} took effect",
                svc.deployment,
                lever.as_str()
            ));
        };
        if r.aborting && lever != RolloutLever::Abort {
            return Err("the rollout is being aborted: abort always wins".into());
        }
        match lever {
            RolloutLever::Pause => {
                r.paused = true;
                r.paused_by = Some(action.actor.clone());
            }
            RolloutLever::Resume => {
                r.paused = false;
                r.paused_by = None;
                r.next_at = t + r.interval;
            }
            RolloutLever::Promote => {
                r.paused = false;
                r.paused_by = None;
                r.next_at = t;
                let all = action.to == PROMOTE_ALL;
                // The next wave now; with `all`, every remaining wave, until the rollout
                // completes or a wave stalls.
                loop {
                    self.progress_rollout(s);
                    match self.services[s].rollout.as_mut() {
                        Some(r) if all && !r.stalled => r.next_at = t,
                        _ => break,
                    }
                }
            }
            RolloutLever::Abort => {
                let (from, to) = (r.from, r.to);
                let from_model = svc.model(to);
                svc.current = from;
                svc.rollout = None;
                svc.revision_changed_by = Some(action.actor.clone());
                for placement in &mut svc.placements {
                    for node in &mut placement.nodes {
                        if node.revision == to || node.draining {
                            node.revision = from;
                            node.draining = false;
                        }
                    }
                }
                let failed = RolloutFailed {
                    deployment: svc.deployment.clone(),
                    service: svc.name.clone(),
                    to_revision: to,
                    reason: format!("aborted by {}: {}", action.actor, action.reason),
                };
                let changed = ModelVersionChanged {
                    deployment: svc.deployment.clone(),
                    service: svc.name.clone(),
                    revision: from,
                    from_model,
                    to_model: svc.model(from),
                    cause: ChangeCause::Rollback,
                };
                let subject = format!("service/{}", action.service);
                self.emit(EventType::RolloutFailed, subject.clone(), &failed);
                self.emit(EventType::ModelVersionChanged, subject, &changed);
            }
        }
        Ok(())
    }

    /// Accepts a lever on the rollout under way, or says why not: 404 for no such
    /// deployment; 409 with the current state when no rollout to `expected_revision` is
    /// under way, or the lever does not apply to it now (pause a running one; resume a
    /// paused one; promote one that is not stalled; abort any, once).
    pub fn request_rollout(
        &mut self,
        deployment: &str,
        lever: RolloutLever,
        request: &RolloutRequest,
    ) -> Result<Action, (u16, ApiError)> {
        let Some(s) = self
            .services
            .iter()
            .position(|s| s.deployment == deployment)
        else {
            return Err(not_found(format!("no deployment {deployment:?}")));
        };
        if request.full && lever != RolloutLever::Promote {
            return Err(invalid("`full` is for promote only".into()));
        }
        let svc = &self.services[s];
        let refuse = |message: String, svc: &Svc| {
            Err((
                409,
                ApiError {
                    error: "precondition_failed".into(),
                    message,
                    current: Some(serde_json::json!({
                        "revision": svc.current,
                        "rollout": svc.rollout.as_ref().map(rollout_state),
                    })),
                    changed_by: svc
                        .rollout
                        .as_ref()
                        .and_then(|r| r.paused_by.clone())
                        .or_else(|| svc.revision_changed_by.clone()),
                },
            ))
        };
        let Some(r) = svc.rollout.as_ref() else {
            return refuse(
                format!(
                    "no rollout is under way on {deployment} (it is at revision {})",
                    svc.current
                ),
                svc,
            );
        };
        if r.to != request.expected_revision {
            return refuse(
                format!(
                    "the rollout under way on {deployment} is to revision {}, not {}",
                    r.to, request.expected_revision
                ),
                svc,
            );
        }
        let state = rollout_state(r);
        let why_not = match lever {
            _ if r.aborting => Some("it is being aborted".to_owned()),
            RolloutLever::Pause if r.paused => Some("it is already paused".into()),
            RolloutLever::Pause if r.stalled => {
                Some("it is stalled, so there is no wave to hold back: abort or roll back".into())
            }
            RolloutLever::Resume if !r.paused => Some(format!("it is {state}, not paused")),
            RolloutLever::Promote if r.stalled => {
                Some("it is stalled: its wave cannot move, so promoting cannot help".into())
            }
            _ => None,
        };
        if let Some(why) = why_not {
            return refuse(
                format!(
                    "cannot {} the rollout of {deployment} to revision {}: {why}",
                    lever.as_str(),
                    r.to
                ),
                svc,
            );
        }
        let to = match lever {
            RolloutLever::Pause => "paused".to_owned(),
            RolloutLever::Resume => "running".to_owned(),
            RolloutLever::Abort => r.from.to_string(),
            RolloutLever::Promote if request.full => PROMOTE_ALL.to_owned(),
            RolloutLever::Promote => PROMOTE_NEXT.to_owned(),
        };
        let from = r.to.to_string();
        Ok(self.new_action(lever.kind(), s, from, to, &request.actor, &request.reason))
    }

    /// The alerts firing now that a silence with `matchers` would mute, under the same
    /// rules as [`World::request_silence`].
    pub fn silence_preview(
        &self,
        matchers: &[firebreak_protocol::actions::Matcher],
    ) -> Result<firebreak_protocol::actions::SilencePreview, (u16, ApiError)> {
        use firebreak_protocol::actions::{MutedAlert, SilencePreview};
        let service = matchers
            .iter()
            .find(|m| m.name == "service" && m.is_equal && !m.is_regex)
            .map(|m| m.value.clone());
        match &service {
            Some(name) if self.service_index(name).is_none() => {
                return Err(not_found(format!("no service {name:?}")))
            }
            Some(_) => {}
            None => {
                return Err(invalid(
                    "the simulator silences one service's alerts: add a service matcher".into(),
                ))
            }
        }
        let mut patterns = Vec::new();
        for m in matchers.iter().filter(|m| m.is_regex) {
            // Anchored, as Alertmanager anchors them.
            match regex::Regex::new(&format!("^(?:{})$", m.value)) {
                Ok(re) => patterns.push((m.name.clone(), re)),
                Err(e) => return Err(invalid(format!("{}: {e}", m.name))),
            }
        }
        let selects = |labels: &std::collections::BTreeMap<String, String>| {
            matchers.iter().all(|m| {
                let value = labels.get(&m.name).map(String::as_str).unwrap_or("");
                let hit = if m.is_regex {
                    patterns
                        .iter()
                        .find(|(n, _)| *n == m.name)
                        .is_some_and(|(_, re)| re.is_match(value))
                } else {
                    value == m.value
                };
                hit == m.is_equal
            })
        };
        let mut alerts = Vec::new();
        for svc in &self.services {
            for (name, state) in &svc.alerts {
                let Some((region, severity, since)) = &state.fired else {
                    continue;
                };
                let labels: std::collections::BTreeMap<String, String> = [
                    ("alertname", name.to_string()),
                    ("service", svc.name.clone()),
                    ("region", region.clone()),
                    (
                        "severity",
                        serde_json::to_value(severity)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                    ),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                if selects(&labels) {
                    alerts.push(MutedAlert {
                        labels,
                        starts_at: Some(*since),
                    });
                }
            }
        }
        Ok(SilencePreview {
            matchers: matchers.to_vec(),
            alerts,
        })
    }

    /// Records a silence. The simulated fleet has no notification routing, so a silence
    /// changes nothing it emits: it is accepted, kept and reported succeeded at once, as
    /// an Alertmanager would create it.
    pub fn request_silence(
        &mut self,
        matchers: &[firebreak_protocol::actions::Matcher],
        duration_s: u32,
        actor: &str,
        comment: &str,
    ) -> Result<Action, (u16, ApiError)> {
        if matchers.is_empty() {
            return Err(invalid("a silence needs at least one matcher".into()));
        }
        if !firebreak_protocol::actions::SILENCE_DURATION_S.contains(&duration_s) {
            return Err(invalid(format!(
                "a silence lasts 60 s to 7 days, not {duration_s} s"
            )));
        }
        let service = matchers
            .iter()
            .find(|m| m.name == "service" && m.is_equal && !m.is_regex)
            .map(|m| m.value.clone());
        let s = match &service {
            Some(name) => match self.service_index(name) {
                Some(s) => s,
                None => return Err(not_found(format!("no service {name:?}"))),
            },
            None => {
                return Err(invalid(
                    "the simulator silences one service's alerts: add a service matcher".into(),
                ))
            }
        };
        let text = firebreak_protocol::actions::describe_matchers(matchers);
        let ends = self.now() + chrono::Duration::seconds(i64::from(duration_s));
        let mut action = self.new_action(
            ActionKind::Silence,
            s,
            text,
            ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            actor,
            comment,
        );
        // Done at once: no pending steps.
        self.pending.retain(|p| p.action != action.id);
        action.state = ActionState::Succeeded;
        action.output = Some(format!("silence {} until {}", action.id, action.to));
        self.actions.insert(action.id.clone(), action.clone());
        self.emit_action(EventType::ActionSucceeded, &action);
        Ok(action)
    }
}

impl Svc {
    fn model(&self, revision: u32) -> String {
        self.revisions
            .iter()
            .find(|r| r.n == revision)
            .map(|r| r.model.clone())
            .unwrap_or_default()
    }

    fn nodes_total(&self) -> u32 {
        self.placements.iter().map(|p| p.nodes.len() as u32).sum()
    }

    fn majority_revision(&self, p: usize) -> u32 {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for n in &self.placements[p].nodes {
            *counts.entry(n.revision).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, c)| *c)
            .map(|(r, _)| r)
            .unwrap_or(self.current)
    }

    fn deployment_view(&self) -> Deployment {
        Deployment {
            name: self.deployment.clone(),
            service: self.name.clone(),
            current_revision: self.current,
            revisions: self
                .revisions
                .iter()
                .map(|r| Revision {
                    revision: r.n,
                    model_version: r.model.clone(),
                    created_at: r.created_at,
                })
                .collect(),
            rollout: self.rollout.as_ref().map(|r| RolloutView {
                to_revision: r.to,
                wave: r.done_waves,
                waves: r.waves,
                stalled: r.stalled,
                paused: r.paused,
            }),
            nodes_total: self.nodes_total(),
            last_changed_by: self.revision_changed_by.clone(),
            object: None,
        }
    }
}

/// A rollout's state in words: `running`, `paused`, `stalled`, `aborting`.
fn rollout_state(r: &Rollout) -> &'static str {
    if r.aborting {
        "aborting"
    } else if r.stalled {
        "stalled"
    } else if r.paused {
        "paused"
    } else {
        "running"
    }
}

/// A count of failures among `n` requests that each fail with probability `p`: exact
/// for a few hundred, the normal approximation beyond.
fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 500 {
        return (0..n).filter(|_| rng.chance(p)).count() as u64;
    }
    let mean = n as f64 * p;
    let sd = (mean * (1.0 - p)).sqrt();
    // Box-Muller: a standard normal from two uniforms (the first kept off zero).
    let u1 = 1.0 - rng.unit();
    let u2 = rng.unit();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean + sd * z).round().clamp(0.0, n as f64) as u64
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn not_found(message: String) -> (u16, ApiError) {
    (
        404,
        ApiError {
            error: "not_found".into(),
            message,
            current: None,
            changed_by: None,
        },
    )
}

fn invalid(message: String) -> (u16, ApiError) {
    (
        400,
        ApiError {
            error: "invalid".into(),
            message,
            current: None,
            changed_by: None,
        },
    )
}

#[cfg(test)]
mod tests {
    //! The rollout levers' semantics on the simulated fleet, tick by tick: bad-model-rollout
    //! rolls revision 42 (bad) to llm-assistant's 16 nodes in 4 waves of 4, one every 12 s
    //! from t = 10, primary region first.

    use super::*;

    const DEPLOYMENT: &str = "llm-assistant-serving";

    fn world() -> World {
        World::new(
            &Scenario::load("bad-model-rollout").unwrap(),
            7,
            Utc::now(),
            ActionFaults { fail: 0.0 },
            FleetShape::default(),
        )
    }

    fn run_to(w: &mut World, t: u64) {
        while w.t < t {
            w.tick();
        }
    }

    fn ask(
        w: &mut World,
        lever: RolloutLever,
        expected: u32,
        full: bool,
    ) -> Result<Action, (u16, ApiError)> {
        w.request_rollout(
            DEPLOYMENT,
            lever,
            &RolloutRequest {
                expected_revision: expected,
                full,
                actor: "ana".into(),
                reason: "bad model".into(),
            },
        )
    }

    fn on_revision(w: &World, revision: u32) -> usize {
        let s = w.service_index("llm-assistant").unwrap();
        w.services[s]
            .placements
            .iter()
            .flat_map(|p| &p.nodes)
            .filter(|n| n.revision == revision)
            .count()
    }

    fn primary_error_rate(w: &World) -> f64 {
        let s = w.service_index("llm-assistant").unwrap();
        let svc = &w.services[s];
        svc.placements[svc.primary].last.error_rate
    }

    fn emitted(w: &World, ty: EventType) -> Vec<&serde_json::Value> {
        w.outbox
            .iter()
            .filter(|e| e.ty == ty)
            .map(|e| &e.data)
            .collect()
    }

    #[test]
    fn pausing_a_bad_rollout_at_wave_1_limits_the_damage() {
        let mut paused = world();
        run_to(&mut paused, 25);
        assert_eq!(on_revision(&paused, 42), 4, "wave 1 of 4 is out");
        let action = ask(&mut paused, RolloutLever::Pause, 42, false).unwrap();
        assert_eq!((action.from.as_str(), action.to.as_str()), ("42", "paused"));
        run_to(&mut paused, 200);
        assert_eq!(on_revision(&paused, 42), 4, "no further waves");
        let view = paused.deployment(DEPLOYMENT).unwrap().rollout.unwrap();
        assert!(view.paused);
        assert_eq!((view.wave, view.waves), (1, 4));
        assert!(
            emitted(&paused, EventType::RolloutFailed).is_empty(),
            "a pause runs no progress deadline"
        );

        let mut left = world();
        run_to(&mut left, 200);
        assert_eq!(
            on_revision(&left, 42),
            16,
            "without the pause every node runs it"
        );
        assert!(
            primary_error_rate(&paused) < primary_error_rate(&left),
            "paused {} vs left alone {}",
            primary_error_rate(&paused),
            primary_error_rate(&left)
        );

        // Resuming lets the waves go on from where they stopped.
        ask(&mut paused, RolloutLever::Resume, 42, false).unwrap();
        run_to(&mut paused, 300);
        assert_eq!(on_revision(&paused, 42), 16);
        assert_eq!(emitted(&paused, EventType::RolloutCompleted).len(), 1);
    }

    #[test]
    fn promoting_a_bad_rollout_spreads_it_at_once() {
        let mut w = world();
        run_to(&mut w, 25);
        let action = ask(&mut w, RolloutLever::Promote, 42, true).unwrap();
        assert_eq!(action.to, PROMOTE_ALL);
        run_to(&mut w, 30);
        assert_eq!(on_revision(&w, 42), 16, "every remaining wave at once");
        assert_eq!(emitted(&w, EventType::RolloutCompleted).len(), 1);
        assert!(w.deployment(DEPLOYMENT).unwrap().rollout.is_none());

        // The next wave only: one more wave now, the rest at the usual pace.
        let mut w = world();
        run_to(&mut w, 25);
        ask(&mut w, RolloutLever::Promote, 42, false).unwrap();
        run_to(&mut w, 30);
        assert_eq!(on_revision(&w, 42), 8, "wave 2 came early");
    }

    #[test]
    fn abort_returns_every_node_to_the_stable_revision_and_always_wins() {
        let mut w = world();
        run_to(&mut w, 35);
        assert_eq!(on_revision(&w, 42), 8);
        // A promotion in flight when the abort runs fails: abort always wins.
        let promote = ask(&mut w, RolloutLever::Promote, 42, false).unwrap();
        w.tick();
        let abort = ask(&mut w, RolloutLever::Abort, 42, false).unwrap();
        assert_eq!(abort.to, "41", "back to the stable revision");
        run_to(&mut w, 39);
        let (status, err) = ask(&mut w, RolloutLever::Resume, 42, false).unwrap_err();
        assert_eq!((status, err.error.as_str()), (409, "precondition_failed"));
        assert!(err.message.contains("being aborted"), "{}", err.message);
        run_to(&mut w, 80);
        assert_eq!(w.action(&promote.id).unwrap().state, ActionState::Failed);
        assert!(w
            .action(&promote.id)
            .unwrap()
            .error
            .unwrap()
            .contains("abort always wins"));
        assert_eq!(w.action(&abort.id).unwrap().state, ActionState::Succeeded);
        assert_eq!(on_revision(&w, 42), 0);
        assert_eq!(on_revision(&w, 41), 16);
        let d = w.deployment(DEPLOYMENT).unwrap();
        assert_eq!(d.current_revision, 41);
        assert!(d.rollout.is_none());
        assert_eq!(d.last_changed_by.as_deref(), Some("ana"));
        let failed = emitted(&w, EventType::RolloutFailed);
        assert_eq!(failed.len(), 1);
        assert!(failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("aborted by ana"));
        run_to(&mut w, 200);
        assert!(
            primary_error_rate(&w) < 0.05,
            "healed: {}",
            primary_error_rate(&w)
        );
    }

    /// pipeline-bottleneck stalls search-ranking's rollout at wave 2 with that wave's nodes
    /// drained: pause and promote cannot help a stalled wave and are refused; abort brings
    /// the drained nodes back into service on the stable revision.
    #[test]
    fn abort_brings_a_stalled_waves_drained_nodes_back() {
        let mut w = World::new(
            &Scenario::load("pipeline-bottleneck").unwrap(),
            7,
            Utc::now(),
            ActionFaults { fail: 0.0 },
            FleetShape::default(),
        );
        run_to(&mut w, 40);
        let s = w.service_index("search-ranking").unwrap();
        let drained = |w: &World| {
            w.services[s]
                .placements
                .iter()
                .flat_map(|p| &p.nodes)
                .filter(|n| n.draining)
                .count()
        };
        assert!(drained(&w) > 0, "the stalled wave is drained");
        let lever = |w: &mut World, lever| {
            w.request_rollout(
                "search-ranking-serving",
                lever,
                &RolloutRequest {
                    expected_revision: 32,
                    full: false,
                    actor: "ana".into(),
                    reason: "stalled".into(),
                },
            )
        };
        assert_eq!(lever(&mut w, RolloutLever::Pause).unwrap_err().0, 409);
        assert_eq!(lever(&mut w, RolloutLever::Promote).unwrap_err().0, 409);
        lever(&mut w, RolloutLever::Abort).unwrap();
        run_to(&mut w, 70);
        assert_eq!(drained(&w), 0);
        assert_eq!(
            w.deployment("search-ranking-serving")
                .unwrap()
                .current_revision,
            31
        );
    }

    #[test]
    fn a_larger_fleet_keeps_the_demo_names_numbers_the_rest_and_labels_every_team() {
        let shape: FleetShape = "300x6".parse().unwrap();
        let mut w = World::new(
            &Scenario::load("bad-model-rollout").unwrap(),
            7,
            Utc::now(),
            ActionFaults { fail: 0.0 },
            shape,
        );
        let services = w.services();
        assert_eq!(services.len(), 300);
        assert_eq!(
            services[..3]
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["recommendations", "search-ranking", "llm-assistant"],
            "the scenarios name these"
        );
        assert_eq!(services[299].name, "llm-assistant-099");
        let names: std::collections::HashSet<_> = services.iter().map(|s| &s.name).collect();
        assert_eq!(names.len(), 300, "no two services share a name");
        assert!(services.iter().all(|s| s.regions.len() == 6));
        run_to(&mut w, METRICS_EVERY_S);
        let metrics: Vec<_> = w
            .outbox
            .iter()
            .filter(|e| e.ty == EventType::ServiceMetrics)
            .collect();
        assert_eq!(metrics.len(), 300 * 6, "one sample per service and region");
        assert!(metrics.iter().all(|m| m.data["team"].is_string()));
        assert_eq!(
            metrics
                .iter()
                .find(|m| m.data["service"] == "llm-assistant")
                .map(|m| m.data["team"].clone()),
            Some(serde_json::json!("assistant-platform"))
        );

        for (bad, says) in [
            ("300", "SERVICESxREGIONS"),
            ("2x2", "3 to 1000 services"),
            ("1001x2", "3 to 1000 services"),
            ("300x7", "2 to 6 regions"),
            ("300x1", "2 to 6 regions"),
            ("lots x6", "not a number"),
        ] {
            let err = bad.parse::<FleetShape>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn each_lever_is_refused_when_it_does_not_apply() {
        let mut w = world();
        run_to(&mut w, 5);
        let (status, err) = ask(&mut w, RolloutLever::Pause, 42, false).unwrap_err();
        assert_eq!(status, 409);
        assert!(
            err.message.contains("no rollout is under way"),
            "{}",
            err.message
        );
        assert_eq!(err.current.unwrap()["revision"], 41);

        run_to(&mut w, 25);
        let (status, err) = ask(&mut w, RolloutLever::Pause, 43, false).unwrap_err();
        assert_eq!(status, 409);
        assert_eq!(err.current.unwrap()["rollout"], "running");
        let (status, _) = ask(&mut w, RolloutLever::Resume, 42, false).unwrap_err();
        assert_eq!(status, 409, "not paused");
        let (status, err) = ask(&mut w, RolloutLever::Pause, 42, true).unwrap_err();
        assert_eq!((status, err.error.as_str()), (400, "invalid"));
        let (status, _) = w
            .request_rollout(
                "nope",
                RolloutLever::Pause,
                &RolloutRequest {
                    expected_revision: 42,
                    full: false,
                    actor: "a".into(),
                    reason: "r".into(),
                },
            )
            .unwrap_err();
        assert_eq!(status, 404);
        ask(&mut w, RolloutLever::Pause, 42, false).unwrap();
        run_to(&mut w, 30);
        let (status, err) = ask(&mut w, RolloutLever::Pause, 42, false).unwrap_err();
        assert_eq!(status, 409);
        assert!(err.message.contains("already paused"));
        assert_eq!(err.changed_by.as_deref(), Some("ana"), "who paused it");
    }
}
