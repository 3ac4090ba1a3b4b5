//! `firebreak sim`: a simulated multi-node AI model-serving fleet that speaks the cluster
//! protocol. It is the demo a new user sees first and the counterpart every test runs
//! against. Deterministic for a seed: the same scenario and seed tell the same story.

pub mod cli;
pub mod exposition;
mod journal;
pub mod scenario;
mod server;
mod world;

pub use firebreak_server::faults::Faults;
pub use scenario::{Remedy, Scenario};
pub use server::ROUTES;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use firebreak_protocol::events::{EventType, SyntheticLoad};
use firebreak_server::envelope;
use firebreak_server::rng::Rng;
use journal::Journal;
pub use world::FleetShape;
use world::{ActionFaults, World};

/// How the simulator runs.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub listen: SocketAddr,
    pub scenario: Scenario,
    pub seed: u64,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Extra synthetic events per second, for benchmarks.
    pub rate: u64,
    pub token: String,
    pub faults: Faults,
    /// Events kept for clients that resume.
    pub retain: usize,
    /// The cluster's name, in every event's `source`.
    pub cluster: String,
    /// Simulated time zero (default: now, to the second).
    pub start: Option<DateTime<Utc>>,
    /// Time moves only when told to ([`RunningSim::advance`]), for recordings that must
    /// come out the same on every run.
    pub stepped: bool,
    /// How many services in how many regions.
    pub fleet: FleetShape,
    /// Whose metric names `/metrics` uses.
    pub metrics: exposition::Naming,
}

impl SimOptions {
    pub fn new(scenario: Scenario, token: impl Into<String>) -> SimOptions {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            scenario,
            seed: 1,
            speed: 1.0,
            rate: 0,
            token: token.into(),
            faults: Faults::default(),
            retain: 200_000,
            cluster: "sim".into(),
            start: None,
            stepped: false,
            fleet: FleetShape::default(),
            metrics: exposition::Naming::Generic,
        }
    }
}

/// Serializes what the world emits into the journal, numbering it as it goes.
pub struct Publisher {
    journal: Arc<Journal>,
    source: String,
    ids: Mutex<Rng>,
}

impl Publisher {
    /// Moves the world's outbox into the journal. Called with the world locked, so the
    /// stream's order is the world's order.
    pub fn flush(&self, world: &mut World) {
        let events = std::mem::take(&mut world.outbox);
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        self.journal.publish(events.len(), |seq, i| {
            let e = &events[i];
            let id = event_id(&mut ids, e.time);
            envelope(&self.source, &id, e.ty, e.time, &e.subject, seq, &e.data)
        });
    }
}

fn event_id(rng: &mut Rng, time: DateTime<Utc>) -> String {
    uuid::Builder::from_unix_timestamp_millis(
        time.timestamp_millis().max(0) as u64,
        &rng.bytes::<10>(),
    )
    .into_uuid()
    .to_string()
}

/// A simulator running in this process, on real sockets.
pub struct RunningSim {
    pub addr: SocketAddr,
    pub token: String,
    shared: Arc<server::Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningSim {
    pub fn events_url(&self) -> String {
        format!("ws://{}{}", self.addr, firebreak_protocol::EVENTS_PATH)
    }

    pub fn actions_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every event the simulator has published and still retains (its own record).
    pub fn sent(&self) -> (u64, Vec<String>) {
        self.shared.journal.snapshot()
    }

    /// The stream's identity, as its hello names it.
    pub fn stream_id(&self) -> String {
        firebreak_server::EventSource::stream_id(&*self.shared.journal)
    }

    /// (head, first retained) of the journal.
    pub fn sent_bounds(&self) -> (u64, u64) {
        self.shared.journal.bounds()
    }

    /// Malformed frames sent so far, over all connections.
    pub fn malformed_sent(&self) -> u64 {
        self.shared
            .malformed_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Simulated seconds elapsed.
    pub fn sim_time(&self) -> u64 {
        self.shared.world.lock().map(|w| w.t).unwrap_or(0)
    }

    /// Advances simulated time by `seconds`, publishing what the world emits (a stepped
    /// simulator's only clock; a running one's ticks go on as well).
    pub fn advance(&self, seconds: u64) {
        let mut w = self.shared.world.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..seconds {
            w.tick();
            self.shared.publisher.flush(&mut w);
        }
    }

    /// Stops simulated time and the synthetic generator; the servers keep serving.
    /// Tests use it to let a client catch up with a stream that no longer grows.
    pub fn pause(&self) {
        self.shared
            .paused
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The demo: bad-model-rollout (or `scenario`, a name or a TOML file) on a loopback port
/// with a fresh random token, in real time unless `speed` says otherwise.
pub async fn start_demo(speed: f64, scenario: Option<&str>) -> Result<RunningSim> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut opts = SimOptions::new(
        Scenario::load(scenario.unwrap_or("bad-model-rollout"))?,
        token,
    );
    opts.cluster = "demo".into();
    opts.speed = speed;
    opts.seed = Utc::now().timestamp() as u64;
    start(opts).await
}

/// Binds, then runs the world and the server in the background of the current runtime.
/// One event of a run told without a server ([`story`]).
#[derive(Debug, Clone)]
pub struct Told {
    pub ty: EventType,
    pub time: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// The events `scenario` tells over its first `seconds` for `seed`, stepped as fast as the
/// machine goes, without a socket: what the benchmarks judge many runs on. The same as a
/// running simulator sends (less its synthetic load), in order.
pub fn story(scenario: &Scenario, seed: u64, start: DateTime<Utc>, seconds: u64) -> Vec<Told> {
    let mut world = World::new(
        scenario,
        seed,
        start,
        ActionFaults::default(),
        FleetShape::default(),
    );
    let mut told = Vec::new();
    for _ in 0..seconds {
        world.tick();
        told.extend(world.outbox.drain(..).map(|e| Told {
            ty: e.ty,
            time: e.time,
            data: e.data,
        }));
    }
    told
}

pub async fn start(opts: SimOptions) -> Result<RunningSim> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let start = opts.start.unwrap_or_else(|| {
        DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now)
    });
    let journal = Arc::new(Journal::new(opts.retain));
    let publisher = Publisher {
        journal: journal.clone(),
        source: format!("/clusters/{}", opts.cluster),
        ids: Mutex::new(Rng::new(opts.seed.wrapping_add(17))),
    };
    let world = Arc::new(Mutex::new(World::new(
        &opts.scenario,
        opts.seed,
        start,
        ActionFaults {
            fail: opts.faults.action_fail,
        },
        opts.fleet,
    )));
    world
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .exposition
        .naming = opts.metrics;
    let shared = Arc::new(server::Shared::new(
        world.clone(),
        journal.clone(),
        publisher,
        opts.token.clone(),
        opts.faults.clone(),
        opts.seed,
    ));

    let mut tasks = Vec::new();
    let app = server::router(shared.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "simulator server stopped");
        }
    }));

    if opts.stepped {
        shared
            .paused
            .store(true, std::sync::atomic::Ordering::SeqCst);
        shared
            .stepped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    // The world's clock: one tick per simulated second.
    let tick_every = Duration::from_secs_f64(1.0 / opts.speed.clamp(0.01, 10_000.0));
    let clock_shared = shared.clone();
    tasks.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick_every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            interval.tick().await;
            if clock_shared
                .paused
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                continue;
            }
            let mut w = clock_shared.world.lock().unwrap_or_else(|e| e.into_inner());
            w.tick();
            clock_shared.publisher.flush(&mut w);
        }
    }));

    if opts.rate > 0 {
        tasks.push(tokio::spawn(synthetic_load(
            shared.clone(),
            opts.rate,
            opts.seed,
        )));
    }
    tracing::info!(%addr, scenario = %opts.scenario.name, seed = opts.seed, "simulator listening");
    Ok(RunningSim {
        addr,
        token: opts.token,
        shared,
        tasks,
    })
}

/// `--rate`: synthetic events in batches every 10 ms, paced against the wall clock.
async fn synthetic_load(shared: Arc<server::Shared>, rate: u64, seed: u64) {
    const TICK: Duration = Duration::from_millis(10);
    let services = ["recommendations", "search-ranking", "llm-assistant"];
    let subjects = services.map(|s| format!("service/{s}"));
    let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
    let mut ids = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    let started = tokio::time::Instant::now();
    let mut made: u64 = 0;
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if shared.paused.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        // Catch up at most two ticks' worth at once: a stall never becomes one huge batch
        // that holds the journal's lock while the senders wait.
        let count = due.saturating_sub(made).min((rate / 50).max(1)) as usize;
        // Published in chunks, yielding between them, so the journal's lock is never
        // held long and the stream senders keep up even when the generator is saturated.
        let now = Utc::now();
        let source = &shared.publisher.source;
        let mut left = count;
        while left > 0 {
            let chunk = left.min(1_000);
            let base = made;
            shared.journal.publish(chunk, |seq, i| {
                let n = base + i as u64;
                let service = services[(n % 3) as usize];
                let data = SyntheticLoad {
                    n,
                    service: service.into(),
                    payload: "p99=412ms err=0.002 rps=1187 q=3 gpu=0.71".into(),
                };
                let id = event_id(&mut ids, now);
                envelope(
                    source,
                    &id,
                    EventType::SyntheticLoad,
                    now,
                    subjects[(n % 3) as usize],
                    seq,
                    &data,
                )
            });
            made += chunk as u64;
            left -= chunk;
            tokio::task::yield_now().await;
        }
    }
}
