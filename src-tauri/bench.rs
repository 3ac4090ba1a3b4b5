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
    opts.retain = 2_000_000;
    crate::sim::start(opts).await
}
