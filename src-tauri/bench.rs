//! `firebreak bench …`: measurements for README, each beside a baseline taken in the
//! same run. Benchmarks print figures; they never pass or fail on them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::sim::{Scenario, SimOptions};

/// The simulator's synthetic generator: events per second published into the journal with
/// no client (the baseline: serialization alone), then received by one client over a
/// loopback WebSocket.
pub async fn generator(seconds: u64, rate: u64) -> Result<()> {
    let window = Duration::from_secs(seconds.max(1));

    // Baseline: the generator with nobody listening.
    let sim = start_sim(rate).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (head0, _) = sim.sent_bounds();
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let (head1, _) = sim.sent_bounds();
    let published = (head1 - head0) as f64 / t0.elapsed().as_secs_f64();
    sim.shutdown();

    // Over the wire: one client reading every frame from a fresh simulator.
    let sim = start_sim(rate).await?;
    let mut request = sim.events_url().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", sim.token).parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("connect")?;
    let (_, mut read) = ws.split();
    let mut received: u64 = 0;
    let mut bytes: u64 = 0;
    let warmup = Instant::now() + Duration::from_millis(500);
    let mut started: Option<Instant> = None;
    while let Some(msg) = read.next().await {
        if let Message::Text(t) = msg? {
            let now = Instant::now();
            if now < warmup {
                continue;
            }
            let s = *started.get_or_insert(now);
            received += 1;
            bytes += t.len() as u64;
            if now - s >= window {
                break;
            }
        }
    }
    let elapsed = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0);
    sim.shutdown();
    let over_wire = received as f64 / elapsed;
    println!("generator (target {rate} events/s, {seconds} s windows)");
    println!(
        "  published, no client (baseline): {:>10.0} events/s",
        published
    );
    println!(
        "  received over loopback WebSocket: {:>10.0} events/s ({:.1} MB/s, {:.0} bytes/event)",
        over_wire,
        bytes as f64 / elapsed / 1e6,
        bytes as f64 / received.max(1) as f64
    );
    Ok(())
}

async fn start_sim(rate: u64) -> Result<crate::sim::RunningSim> {
    let mut opts = SimOptions::new(Scenario::load("steady")?, "bench");
    opts.rate = rate;
    opts.retain = 400_000;
    crate::sim::start(opts).await
}

/// Ingest: events from the simulator over a loopback WebSocket into SQLite, committed,
/// beside a raw baseline (the same rows inserted straight into SQLite with one prepared
/// statement in batched transactions, no network, no decoding, no rules).
pub async fn ingest(seconds: u64, rate: u64, data_dir: &std::path::Path) -> Result<()> {
    use std::sync::{Arc, Mutex};

    use crate::ingest::sink::{ClusterStatus, Committed, ConsoleSink};

    #[derive(Default)]
    struct Tally {
        events: Mutex<(u64, Vec<u32>)>,
    }
    impl ConsoleSink for Tally {
        fn cluster_status(&self, _: &ClusterStatus) {}
        fn committed(&self, batch: &Committed) {
            let mut t = self.events.lock().unwrap_or_else(|e| e.into_inner());
            t.0 += batch.events as u64;
            t.1.extend_from_slice(&batch.receive_to_commit_ms);
        }
    }

    std::fs::create_dir_all(data_dir)?;
    let db = data_dir.join(format!("bench-ingest-{}.db", std::process::id()));
    let store = crate::store::Store::open(&db).await?;
    let sim = start_sim(rate).await?;
    let cluster = store
        .ensure_cluster(&crate::store::NewCluster {
            name: "bench".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await?;
    let tally = Arc::new(Tally::default());
    let target = crate::ingest::Target {
        cluster_id: cluster.id,
        name: "bench".into(),
        events_url: sim.events_url(),
        token: Some(sim.token.clone()),
    };
    let engine = crate::ingest::Engine::start(store.clone(), vec![target], tally.clone()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start_count, _) = {
        let mut t = tally.events.lock().unwrap_or_else(|e| e.into_inner());
        t.1.clear();
        (t.0, ())
    };
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds.max(1))).await;
    let (end_count, mut latencies) = {
        let t = tally.events.lock().unwrap_or_else(|e| e.into_inner());
        (t.0, t.1.clone())
    };
    let elapsed = t0.elapsed().as_secs_f64();
    engine.stop().await;
    let (_, frames) = sim.sent();
    sim.shutdown();
    let committed = (end_count - start_count) as f64 / elapsed;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    // Baseline: the same kind of rows, straight into a fresh file.
    let raw_db = data_dir.join(format!("bench-raw-{}.db", std::process::id()));
    let raw = crate::store::Store::open(&raw_db).await?;
    let rows: Vec<String> = frames.into_iter().take(200_000).collect();
    let baseline = raw.bench_raw_insert(&rows).await?;
    raw.close().await;
    store.close().await;
    for f in [&db, &raw_db] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", f.display()));
        }
    }
    println!("ingest (simulator target {rate} events/s over loopback, {seconds} s)");
    println!("  committed to SQLite by the engine:       {committed:>10.0} events/s");
    println!("  raw baseline (prepared INSERT, batched): {baseline:>10.0} events/s");
    println!(
        "  receive-to-commit latency: p50 {} ms, p99 {} ms ({} events)",
        pct(0.50),
        pct(0.99),
        latencies.len()
    );
    Ok(())
}
