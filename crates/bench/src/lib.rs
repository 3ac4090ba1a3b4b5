//! `firebreak bench …`: measurements for README, each beside a baseline taken in the
//! same run. Benchmarks print figures; they never pass or fail on them. `team` measures
//! the team server with many consoles.

pub mod detection;
pub mod discovery;
pub mod team;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use firebreak_sim::{Scenario, SimOptions};

/// The simulator's synthetic generator: events per second published into the journal with
/// no client (the baseline: serialization alone), then received by one client over a
/// loopback WebSocket.
pub async fn generator(seconds: u64, rate: u64) -> Result<()> {
    let window = Duration::from_secs(seconds.max(1));

    // Baseline: the generator with nobody listening.
    let sim = start_sim(rate, 2_000_000).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (head0, _) = sim.sent_bounds();
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let (head1, _) = sim.sent_bounds();
    let published = (head1 - head0) as f64 / t0.elapsed().as_secs_f64();
    sim.shutdown();

    // Over the wire: one client reading every frame from a fresh simulator.
    let sim = start_sim(rate, 2_000_000).await?;
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

/// The steady scenario at `rate` synthetic events per second, keeping `retain` of them for
/// clients that fall behind (the generator benchmark's client must never fall off the end;
/// the others keep memory for the process they measure).
async fn start_sim(rate: u64, retain: usize) -> Result<firebreak_sim::RunningSim> {
    start_fleet(rate, retain, firebreak_sim::FleetShape::default()).await
}

async fn start_fleet(
    rate: u64,
    retain: usize,
    fleet: firebreak_sim::FleetShape,
) -> Result<firebreak_sim::RunningSim> {
    let mut opts = SimOptions::new(Scenario::load("steady")?, "bench");
    opts.rate = rate;
    opts.retain = retain;
    opts.fleet = fleet;
    firebreak_sim::start(opts).await
}

/// Ingest: events from the simulator over a loopback WebSocket into SQLite, committed,
/// beside a raw baseline (the same rows inserted straight into SQLite with one prepared
/// statement in batched transactions, no network, no decoding, no rules).
pub async fn ingest(seconds: u64, rate: u64, data_dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let live = live_ingest(seconds, rate, data_dir).await?;
    let frames = &live.frames;
    let (rows, ceilings) = ceilings(frames, data_dir).await?;
    let &(best_per_statement, ceiling) = ceilings
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .context("no ceiling measured")?;
    let store_only = store_path_alone(frames, data_dir).await?;

    // The per-row path: one prepared INSERT per row through sqlx.
    let raw_db = data_dir.join(format!("bench-raw-{}.db", std::process::id()));
    let raw = firebreak_store::Store::open(&raw_db).await?;
    let per_row = raw
        .bench_raw_insert(&frames[..frames.len().min(200_000)])
        .await?;
    raw.close().await;
    remove_db(&raw_db);

    let committed = live.committed;
    let mut latencies = live.latencies;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!("ingest (simulator target {rate} events/s over loopback, {seconds} s)");
    println!(
        "  committed to SQLite by the engine:  {committed:>10.0} events/s  ({:.2}x the ceiling)",
        committed / ceiling
    );
    println!(
        "    in {} transactions, {:.0} events each on average",
        live.batches,
        live.events as f64 / live.batches.max(1) as f64
    );
    println!(
        "  ceiling, {rows} prebuilt rows by rusqlite, {best_per_statement} rows a statement, {} a transaction: {ceiling:>10.0} rows/s",
        firebreak_engine::ingest::MAX_BATCH_ROWS
    );
    for (per_statement, rate) in &ceilings {
        println!("    {per_statement:>4} rows a statement: {rate:>10.0} rows/s");
    }
    println!(
        "  the engine's store path alone (decoded beforehand, rules, sqlx): {store_only:>10.0} events/s ({:.2}x)",
        store_only / ceiling
    );
    println!("  per-row sqlx INSERT, 1,000 a transaction: {per_row:>10.0} rows/s");
    println!(
        "  receive-to-commit latency: p50 {} ms, p99 {} ms ({} events)",
        pct(0.50),
        pct(0.99),
        latencies.len()
    );
    Ok(())
}

/// What the engine committed from the simulator over `seconds`, after a second's start.
struct Live {
    /// Events a second.
    committed: f64,
    events: u64,
    batches: u64,
    /// Each event's receive-to-commit time (ms).
    latencies: Vec<u32>,
    /// Every frame the simulator sent, for the baselines.
    frames: Vec<String>,
}

/// The engine ingesting the simulator's stream over loopback into a store of its own.
async fn live_ingest(seconds: u64, rate: u64, data_dir: &std::path::Path) -> Result<Live> {
    use std::sync::{Arc, Mutex};

    use firebreak_engine::ingest::sink::{ClusterStatus, Committed, ConsoleSink};

    #[derive(Default)]
    struct Tally {
        events: Mutex<(u64, Vec<u32>)>,
        batches: std::sync::atomic::AtomicU64,
    }
    impl ConsoleSink for Tally {
        fn cluster_status(&self, _: &ClusterStatus) {}
        fn committed(&self, batch: &Committed) {
            let mut t = self.events.lock().unwrap_or_else(|e| e.into_inner());
            t.0 += batch.events as u64;
            t.1.extend_from_slice(&batch.receive_to_commit_ms);
            if batch.events > 0 {
                self.batches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    let db = data_dir.join(format!("bench-ingest-{}.db", std::process::id()));
    let store = firebreak_store::Store::open(&db).await?;
    let sim = start_sim(rate, 400_000).await?;
    let cluster = store
        .ensure_cluster(&firebreak_store::NewCluster {
            ca_file: None,
            name: "bench".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await?;
    let tally = Arc::new(Tally::default());
    let target = firebreak_engine::ingest::Target {
        cluster_id: cluster.id,
        name: "bench".into(),
        events_url: sim.events_url(),
        token: Some(sim.token.clone()),
        ca_file: None,
    };
    let engine =
        firebreak_engine::ingest::Engine::start(store.clone(), vec![target], tally.clone()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start_count, start_batches) = {
        let mut t = tally.events.lock().unwrap_or_else(|e| e.into_inner());
        t.1.clear();
        (
            t.0,
            tally.batches.load(std::sync::atomic::Ordering::Relaxed),
        )
    };
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds.max(1))).await;
    let (end_count, latencies) = {
        let t = tally.events.lock().unwrap_or_else(|e| e.into_inner());
        (t.0, t.1.clone())
    };
    let batches = tally.batches.load(std::sync::atomic::Ordering::Relaxed) - start_batches;
    let elapsed = t0.elapsed().as_secs_f64();
    engine.stop().await;
    let (_, frames) = sim.sent();
    sim.shutdown();
    drop(engine);
    store.close().await;
    remove_db(&db);
    Ok(Live {
        committed: (end_count - start_count) as f64 / elapsed,
        events: end_count - start_count,
        batches,
        latencies,
        frames,
    })
}

/// The ceiling: the same rows, built beforehand, into a fresh store of the same schema
/// and settings by the thinnest path from Rust, in transactions of the engine's batch
/// size; for several statement sizes (rows a statement, rows a second). Returns the
/// number of rows too.
async fn ceilings(
    frames: &[String],
    data_dir: &std::path::Path,
) -> Result<(usize, Vec<(usize, f64)>)> {
    let rows = firebreak_store::bench::ceiling_rows(frames);
    let ceiling_db = data_dir.join(format!("bench-ceiling-{}.db", std::process::id()));
    let mut ceilings = Vec::new();
    for per_statement in [1, 32, 256] {
        firebreak_store::Store::open(&ceiling_db)
            .await?
            .close()
            .await;
        let (path, rows) = (ceiling_db.clone(), &rows);
        let rate = tokio::task::block_in_place(|| {
            firebreak_store::bench::bench_ceiling_insert(
                &path,
                rows,
                per_statement,
                firebreak_engine::ingest::MAX_BATCH_ROWS,
            )
        })?;
        ceilings.push((per_statement, rate));
        remove_db(&ceiling_db);
    }
    Ok((rows.len(), ceilings))
}

/// The engine's store path alone: the same frames decoded beforehand, through the rules
/// and the store's batch insert in the engine's batch size, no network and no simulator.
/// Events a second.
async fn store_path_alone(frames: &[String], data_dir: &std::path::Path) -> Result<f64> {
    let store_db = data_dir.join(format!("bench-store-{}.db", std::process::id()));
    let store = firebreak_store::Store::open(&store_db).await?;
    let cluster = store
        .ensure_cluster(&firebreak_store::NewCluster {
            ca_file: None,
            name: "bench".into(),
            events_url: "ws://127.0.0.1:1/v1/events".into(),
            actions_url: "http://127.0.0.1:1".into(),
        })
        .await?;
    let items = firebreak_store::bench::decoded_items(
        frames,
        cluster.id,
        firebreak_engine::ingest::MAX_BATCH_ROWS,
    );
    let events: usize = items.iter().map(|i| i.events().len()).sum();
    let mut rules = firebreak_engine::ingest::rules::Rules::default();
    let t = Instant::now();
    for item in &items {
        firebreak_engine::ingest::record_batch(&store, std::slice::from_ref(item), &mut rules)
            .await?;
    }
    let rate = events as f64 / t.elapsed().as_secs_f64();
    store.close().await;
    remove_db(&store_db);
    Ok(rate)
}

/// Pages of an incident's timeline when the incident has `entries` timeline entries (each
/// with its event): the console's keyset page (after the last entry seen) beside the same
/// page fetched by OFFSET, in the same store.
pub async fn timeline(entries: i64, data_dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let db = data_dir.join(format!("bench-timeline-{}.db", std::process::id()));
    let store = firebreak_store::Store::open(&db).await?;
    let filled = Instant::now();
    let incident = store.bench_fill_incident(entries).await?;
    println!(
        "timeline ({entries} events and entries on one incident, filled in {:.1} s)",
        filled.elapsed().as_secs_f64()
    );

    timeline_pages(&store, incident, entries).await?;
    store.close().await;
    remove_db(&db);
    Ok(())
}

/// [`timeline`]'s reads: 100 pages at the start, the middle and the end (a p99 of 60
/// reads was their slowest one, which on two shared cores is the scheduler's as much as
/// the store's), by key as the console reads them, the same without what each entry
/// reads from elsewhere (its event's type, a team refusal), and by OFFSET.
async fn timeline_pages(store: &firebreak_store::Store, incident: i64, entries: i64) -> Result<()> {
    const PAGE: i64 = 200;
    // The first read at each position is kept apart: it meets caches that have not seen
    // those pages yet (each of the store's read connections keeps its own page cache).
    let mut keyset = Vec::new();
    let mut first = Vec::new();
    let mut bare = Vec::new();
    let mut by_offset = Vec::new();
    for position in [0, entries / 2, entries - PAGE] {
        let after = store.bench_timeline_key(incident, position).await?;
        for i in 0..100 {
            let t = Instant::now();
            let page = store.timeline(incident, after, PAGE).await?;
            if i == 0 {
                first.push(t.elapsed());
            } else {
                keyset.push(t.elapsed());
            }
            anyhow::ensure!(page.len() as i64 == PAGE, "short page");
            let t = Instant::now();
            let rows = store.bench_timeline_bare(incident, after, PAGE).await?;
            bare.push(t.elapsed());
            anyhow::ensure!(rows == PAGE, "short bare page");
            let t = Instant::now();
            let rows = store
                .bench_timeline_offset(incident, position, PAGE)
                .await?;
            by_offset.push(t.elapsed());
            anyhow::ensure!(rows == PAGE, "short offset page");
        }
    }
    let ms = |v: &mut Vec<Duration>, p: f64| {
        v.sort_unstable();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "  {PAGE}-entry page by key (the console): p50 {:>7.2} ms, p99 {:>7.2} ms",
        ms(&mut keyset, 0.5),
        ms(&mut keyset, 0.99)
    );
    let firsts: Vec<String> = first
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64() * 1000.0))
        .collect();
    println!(
        "  its first read at each position:   {} ms",
        firsts.join(", ")
    );
    println!(
        "  the page alone (no event type, no team refusal): p50 {:>7.2} ms, p99 {:>7.2} ms",
        ms(&mut bare, 0.5),
        ms(&mut bare, 0.99)
    );
    println!(
        "  same pages by OFFSET (baseline):    p50 {:>7.2} ms, p99 {:>7.2} ms",
        ms(&mut by_offset, 0.5),
        ms(&mut by_offset, 0.99)
    );
    Ok(())
}

/// Exporting an incident with `entries` timeline entries: building, rendering and writing
/// its report in each format and its bundle (what `firebreak report`, `firebreak export`
/// and the window's *Export report…* do), and the report's read of the timeline (keyset
/// pages of 1,000) beside the same pages fetched by OFFSET, in the same store.
pub async fn export(entries: i64, data_dir: &std::path::Path) -> Result<()> {
    use firebreak_reports::{build, render, Format};
    const PAGE: i64 = 1000;
    anyhow::ensure!(entries >= PAGE, "--entries is at least {PAGE}");
    std::fs::create_dir_all(data_dir)?;
    let db = data_dir.join(format!("bench-export-{}.db", std::process::id()));
    let store = firebreak_store::Store::open(&db).await?;
    let filled = Instant::now();
    let incident = store.bench_fill_incident(entries).await?;
    println!(
        "export ({entries} events and entries on one incident, filled in {:.1} s)",
        filled.elapsed().as_secs_f64()
    );
    let secs = |t: Instant| t.elapsed().as_secs_f64();
    // The entries, and the one that says the incident was opened.
    let total = store.incident(incident).await?.entry_count;

    let t = Instant::now();
    let mut after = None;
    let mut read = 0;
    loop {
        let page = store.timeline(incident, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.at_ms, last.id));
        read += page.len() as i64;
    }
    let by_key = secs(t);
    let t = Instant::now();
    let mut by_offset_read = 0;
    while by_offset_read < total {
        by_offset_read += store
            .bench_timeline_offset(incident, by_offset_read, PAGE)
            .await?;
    }
    let by_offset = secs(t);
    let t = Instant::now();
    let mut after = None;
    let mut bulk_read = 0;
    loop {
        let page = store
            .timeline_bulk(incident, after, firebreak_store::MAX_BULK_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.1, last.0));
        bulk_read += page.len() as i64;
    }
    let bulk = secs(t);
    anyhow::ensure!(
        read == total && by_offset_read == total && bulk_read == total,
        "short read"
    );
    println!("  whole timeline by key, {PAGE} a page (the console): {by_key:>7.2} s");
    println!("  same pages by OFFSET (baseline):                {by_offset:>7.2} s");
    println!(
        "  as JSON pages of {} written by SQLite (the reports): {bulk:>7.2} s",
        firebreak_store::MAX_BULK_PAGE
    );

    let out = data_dir.join(format!("bench-export-{}", std::process::id()));
    for (format, name) in [
        (Format::Markdown, "Markdown"),
        (Format::Html, "HTML"),
        (Format::Json, "JSON"),
    ] {
        let t = Instant::now();
        let report = build(&store, incident).await?;
        let built = secs(t);
        let t = Instant::now();
        let text = render(&report, format);
        let rendered = secs(t);
        let t = Instant::now();
        firebreak_reports::write_atomically(&out, &text)?;
        let written = secs(t);
        println!(
            "  report, {name:<8} build {built:>5.2} s + render {rendered:>5.2} s + write {written:>5.2} s \
             = {:>5.2} s, {:.1} MB",
            built + rendered + written,
            text.len() as f64 / 1e6
        );
    }
    let t = Instant::now();
    let (bundle, _) = firebreak_reports::bundle(&store, incident).await?;
    firebreak_reports::write_atomically_with(&out, |f| {
        serde_json::to_writer(f, &bundle).map_err(std::io::Error::from)
    })?;
    println!(
        "  bundle (report in 3 formats, events, timeline, audit): {:>5.2} s, {:.1} MB",
        secs(t),
        std::fs::metadata(&out)?.len() as f64 / 1e6
    );
    store.close().await;
    let _ = std::fs::remove_file(&out);
    remove_db(&db);
    Ok(())
}

/// The console window's memory (PSS of the app and its WebKit processes) after it has
/// recorded `events` events from a cluster, beside an idle window on an empty store,
/// measured the same way. Needs a display (run under `xvfb-run`) and an OS keychain
/// (the cluster's token is saved there, as a user's would be).
pub async fn memory(events: u64, rate: u64, data_dir: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "the memory benchmark opens the window: run it under a display (xvfb-run -a firebreak bench memory)"
    );
    let exe = std::env::current_exe()?;
    let settle = Duration::from_secs(8);
    let run = data_dir.join(format!("bench-memory-{}", std::process::id()));

    // Baseline: an empty store, no cluster.
    let idle_dir = run.join("idle");
    let idle = Window::open(&exe, &idle_dir)?;
    tokio::time::sleep(settle).await;
    let idle_pss = idle.pss_kib()?;
    idle.close();

    // The same window recording a cluster until it holds `events` events.
    let sim = start_sim(rate, 400_000).await?;
    let busy_dir = run.join("busy");
    let db = busy_dir.join("firebreak.db");
    let account = watching(&db, &sim).await?;

    let busy = Window::open(&exe, &busy_dir)?;
    let started = Instant::now();
    let count = || async {
        use sqlx::Connection;
        let url = format!("sqlite://{}?mode=ro", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut conn)
            .await?;
        anyhow::Ok(n as u64)
    };
    loop {
        let n = count().await.unwrap_or(0);
        if n >= events {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the window recorded only {n} events in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let took = started.elapsed().as_secs_f64();
    sim.shutdown();
    tokio::time::sleep(settle).await;
    let busy_pss = busy.pss_kib()?;
    let recorded = count().await?;
    busy.close();
    let _ = firebreak_engine::secrets::delete(&account).await;
    let _ = std::fs::remove_dir_all(&run);

    let mb = |kib: u64| kib as f64 / 1024.0;
    println!("memory (PSS of the app and its WebKit processes, {settle:?} after settling)");
    println!(
        "  idle window, empty store (baseline): {:>8.0} MiB",
        mb(idle_pss)
    );
    println!(
        "  after recording {recorded} events:      {:>8.0} MiB ({:.0} s at ~{:.0} events/s)",
        mb(busy_pss),
        took,
        recorded as f64 / took
    );
    Ok(())
}

/// A store at `db` that watches `sim` as cluster "bench", its token saved in the OS
/// keychain as a user's would be; returns the keychain account (delete it afterwards).
async fn watching(db: &std::path::Path, sim: &firebreak_sim::RunningSim) -> Result<String> {
    let store = firebreak_store::Store::open(db).await?;
    let cluster = store
        .add_cluster(&firebreak_store::NewCluster {
            ca_file: None,
            name: "bench".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await?;
    let account = firebreak_engine::secrets::new_account();
    firebreak_engine::secrets::save(&account, &sim.token).await?;
    store.set_token_ref(cluster.id, Some(&account)).await?;
    store.close().await;
    Ok(account)
}

/// The console as a child process, measured from outside as `ps` would.
struct Window {
    child: std::process::Child,
}

impl Window {
    fn open(exe: &std::path::Path, data_dir: &std::path::Path) -> Result<Window> {
        let child = std::process::Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start the console")?;
        Ok(Window { child })
    }

    /// Proportional set size of the app and every process below it, in KiB.
    fn pss_kib(&self) -> Result<u64> {
        let mut family = vec![self.child.id()];
        let mut i = 0;
        while i < family.len() {
            family.extend(children_of(family[i]));
            i += 1;
        }
        let mut total = 0;
        for pid in family {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
                .with_context(|| format!("read /proc/{pid}/smaps_rollup"))?;
            total += rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok(total)
    }

    fn close(mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                // The parent pid is the second field after the parenthesised command name.
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                })
                == Some(pid)
        })
        .collect()
}

/// The gateway: how fast it fans its journal out to 1, 10 and 50 subscribers over
/// loopback WebSockets (each reading the whole stream from its start), beside the journal
/// read alone with no network; and how long an Alertmanager notification takes to become
/// an event committed in a console's store, beside the webhook's own answer (the gateway
/// has journaled it by then).
pub async fn gateway(events: u64, samples: usize, data_dir: &std::path::Path) -> Result<()> {
    let dir = data_dir.join(format!("bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = gateway_in(&dir, events, samples).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

const BENCH_TOKEN: &str = "bench-token-0123456789";

async fn gateway_in(dir: &std::path::Path, events: u64, samples: usize) -> Result<()> {
    use firebreak_gateway::journal::{DurableJournal, Retention, RECENT_FRAMES};

    // A journal of `events` service.metrics events, as the Prometheus source writes them.
    let journal_path = dir.join("journal.db");
    {
        let journal = DurableJournal::open(&journal_path, Retention::default()).await?;
        let data = serde_json::json!({
            "service": "llm-assistant", "region": "us-east", "revision": 42, "primary": true,
            "requests_per_s": 812.5, "error_rate": 0.0031, "latency_p50_ms": 412.0,
            "latency_p99_ms": 1830.0, "queue_depth": 17, "gpu_utilization": 0.81,
        });
        let mut left = events;
        while left > 0 {
            let n = left.min(10_000) as usize;
            journal
                .publish(n, |seq, _| {
                    firebreak_server::envelope(
                        "/clusters/bench",
                        &uuid::Uuid::now_v7().to_string(),
                        firebreak_protocol::events::EventType::ServiceMetrics,
                        chrono::Utc::now(),
                        "service/llm-assistant",
                        seq,
                        &data,
                    )
                })
                .await?;
            left -= n as u64;
        }
        journal.close().await;
    }

    std::fs::write(dir.join("token"), BENCH_TOKEN)?;
    std::fs::write(dir.join("webhook"), BENCH_TOKEN)?;
    let text = format!(
        "cluster = \"bench\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"bench\"\nfile = \"{}\"\n\
         [alertmanager]\nurl = \"http://127.0.0.1:9\"\nwebhook_token = {{ file = \"{}\" }}\n",
        dir.join("token").display(),
        dir.join("webhook").display()
    );
    let config = firebreak_gateway::config::parse(std::path::Path::new("bench.toml"), &text)?;
    println!("gateway fan-out ({events} service.metrics events in the journal; each subscriber reads them all from the start over a loopback WebSocket)");
    // Baseline: every read from the SQLite file. The gateway keeps the newest frames in
    // memory too; both in this run.
    for (label, recent) in [
        ("reading the journal file only (baseline)", 0),
        (
            "with the newest frames in memory (as served)",
            RECENT_FRAMES,
        ),
    ] {
        let journal = std::sync::Arc::new(
            DurableJournal::open_with(&journal_path, Retention::default(), recent).await?,
        );
        let gw = firebreak_gateway::serve::start_on(&config, journal.clone()).await?;
        println!("  {label}:");
        for consoles in [1usize, 10, 50] {
            let (each, elapsed) = fan_out(&gw.events_url(), consoles, events).await?;
            println!(
                "    {consoles:>2} subscriber{}: {each:>10.0} events/s each, {:>10.0} events/s in all ({elapsed:.2} s)",
                if consoles == 1 { " " } else { "s" },
                each * consoles as f64
            );
        }
        gw.shutdown();
        journal.close().await;
    }
    alert_latency(dir, samples).await
}

/// `consoles` subscribers reading `events` events from the start at once: events per
/// second each, and the seconds until the last one had them all.
async fn fan_out(events_url: &str, consoles: usize, events: u64) -> Result<(f64, f64)> {
    let url = format!("{events_url}?after=0");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(consoles + 1));
    let mut readers = Vec::new();
    for _ in 0..consoles {
        let url = url.clone();
        let barrier = barrier.clone();
        readers.push(tokio::spawn(async move {
            let mut request = url.into_client_request()?;
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {BENCH_TOKEN}").parse()?);
            let connected = tokio_tungstenite::connect_async(request).await;
            barrier.wait().await;
            let (ws, _) = connected.context("connect")?;
            let (_, mut read) = ws.split();
            let mut got = 0u64;
            while got < events {
                match read.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with("{\"specversion\"") => got += 1,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::Error::from(e)),
                    None => anyhow::bail!("the stream ended after {got} events"),
                }
            }
            Ok::<Instant, anyhow::Error>(Instant::now())
        }));
    }
    barrier.wait().await;
    let t0 = Instant::now();
    let mut last = t0;
    for r in readers {
        last = last.max(r.await??);
    }
    let elapsed = (last - t0).as_secs_f64();
    Ok((events as f64 / elapsed, elapsed))
}

/// Alertmanager notification → event committed in a console's store, one notification at
/// a time, beside the webhook's own answer (the gateway has journaled the alert by then).
async fn alert_latency(dir: &std::path::Path, samples: usize) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use firebreak_engine::ingest::sink::{ClusterStatus, Committed, ConsoleSink};

    struct Commits {
        events: AtomicU64,
        moved: tokio::sync::Notify,
    }
    impl ConsoleSink for Commits {
        fn cluster_status(&self, _: &ClusterStatus) {}
        fn committed(&self, batch: &Committed) {
            self.events
                .fetch_add(u64::from(batch.events), Ordering::SeqCst);
            self.moved.notify_waiters();
        }
    }

    let text = format!(
        "cluster = \"bench\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"bench\"\nfile = \"{}\"\n\
         [alertmanager]\nurl = \"http://127.0.0.1:9\"\nwebhook_token = {{ file = \"{}\" }}\n",
        dir.join("token").display(),
        dir.join("webhook").display()
    );
    let config = firebreak_gateway::config::parse(std::path::Path::new("bench.toml"), &text)?;
    let gw = firebreak_gateway::serve::start(&config, &dir.join("latency-journal.db")).await?;
    let store = firebreak_store::Store::open(&dir.join("console.db")).await?;
    let cluster = store
        .ensure_cluster(&firebreak_store::NewCluster {
            name: "bench".into(),
            events_url: gw.events_url(),
            actions_url: gw.base_url(),
            ca_file: None,
        })
        .await?;
    let sink = Arc::new(Commits {
        events: AtomicU64::new(0),
        moved: tokio::sync::Notify::new(),
    });
    let engine = firebreak_engine::ingest::Engine::start(
        store.clone(),
        vec![firebreak_engine::ingest::Target {
            cluster_id: cluster.id,
            name: "bench".into(),
            events_url: gw.events_url(),
            token: Some(BENCH_TOKEN.into()),
            ca_file: None,
        }],
        sink.clone(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = reqwest::Client::new();
    let webhook = format!("{}/v1/alertmanager", gw.base_url());
    let mut to_console = Vec::with_capacity(samples);
    let mut answered = Vec::with_capacity(samples);
    for i in 0..samples {
        // Minor alerts on many services: each its own, none opens an incident.
        let body = serde_json::json!({
            "version": "4", "status": "firing", "receiver": "firebreak", "groupKey": "bench",
            "alerts": [{
                "status": "firing",
                "labels": {"alertname": "QueueBacklog", "service": format!("svc-{i}"), "region": "us-east", "severity": "info"},
                "annotations": {"summary": "queue backlog"},
                "startsAt": chrono::Utc::now().to_rfc3339(),
                "fingerprint": format!("{i:016x}"),
            }],
        });
        let before = sink.events.load(Ordering::SeqCst);
        let waiting = sink.moved.notified();
        tokio::pin!(waiting);
        let t0 = Instant::now();
        let r = http
            .post(&webhook)
            .bearer_auth(BENCH_TOKEN)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "the webhook answered {}",
            r.status()
        );
        answered.push(t0.elapsed());
        while sink.events.load(Ordering::SeqCst) == before {
            waiting.as_mut().await;
            waiting.set(sink.moved.notified());
        }
        to_console.push(t0.elapsed());
    }
    engine.stop().await;
    store.close().await;
    gw.shutdown();
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort_unstable();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0
    };
    println!("alert latency ({samples} webhook notifications, one at a time, a console on the same machine)");
    println!(
        "  notification → committed in the console's store: p50 {:.1} ms, p99 {:.1} ms",
        pct(&mut to_console, 0.50),
        pct(&mut to_console, 0.99)
    );
    println!(
        "  the webhook's answer alone (journaled, fsync'd; baseline): p50 {:.1} ms, p99 {:.1} ms",
        pct(&mut answered, 0.50),
        pct(&mut answered, 0.99)
    );
    Ok(())
}

/// The window's frame times on the Fleet view while the cluster sends `rate` events per
/// second, beside the same window while the cluster is quiet, in the same run. The page
/// measures the time between animation frames (`requestAnimationFrame`) for `seconds` and
/// hands them back; a frame over 50 ms is one a person sees stutter. Needs a display and
/// an OS keychain, as `bench memory` does.
pub async fn frames(
    rate: u64,
    seconds: u32,
    fleet: firebreak_sim::FleetShape,
    data_dir: &std::path::Path,
) -> Result<()> {
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "the frames benchmark opens the window: run it under a display (xvfb-run -a firebreak bench frames)"
    );
    let exe = std::env::current_exe()?;
    let run = data_dir.join(format!("bench-frames-{}", std::process::id()));
    let mut results = Vec::new();
    for (label, r) in [("quiet cluster (baseline)", 0), ("storm", rate)] {
        let sim = start_fleet(r, 400_000, fleet).await?;
        let dir = run.join(if r == 0 { "quiet" } else { "storm" });
        let db = dir.join("firebreak.db");
        let account = watching(&db, &sim).await?;
        let out = dir.join("frames.json");
        let log = dir.join("console.log");
        let mut child = std::process::Command::new(&exe)
            .arg("--data-dir")
            .arg(&dir)
            .env(
                "FIREBREAK_BENCH_FRAMES",
                format!("{seconds}:{}", out.display()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start the console")?;
        let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 60);
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&out) {
                if !text.is_empty() {
                    break text;
                }
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the console ({}) ended ({status}) before it reported its frames{}",
                    exe.display(),
                    said(&log)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "the window did not report its frames within {seconds} s + 60 s{}",
                    said(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let _ = child.wait();
        let events = {
            use sqlx::Connection;
            let url = format!("sqlite://{}?mode=ro", db.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await?;
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
                .fetch_one(&mut conn)
                .await?;
            n
        };
        sim.shutdown();
        let _ = firebreak_engine::secrets::delete(&account).await;
        // The board the window asked for (at most once a second), read again from the
        // store it left: how long one read takes, and how many services it carried.
        let board = {
            let store = firebreak_store::Store::open(&db).await?;
            let mut reads = Vec::new();
            let mut services = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let b = store.fleet_board().await?;
                reads.push(t.elapsed().as_secs_f64() * 1000.0);
                services = b.clusters.iter().map(|c| c.services.len()).sum::<usize>();
            }
            store.close().await;
            reads.sort_by(f64::total_cmp);
            (reads[reads.len() / 2], services)
        };
        let mut frames: Vec<f64> = serde_json::from_str(&text)?;
        anyhow::ensure!(!frames.is_empty(), "the window measured no frames");
        frames.sort_by(f64::total_cmp);
        let at = |q: f64| frames[((frames.len() - 1) as f64 * q).round() as usize];
        results.push((
            label,
            frames.len(),
            at(0.5),
            at(0.95),
            at(1.0),
            events,
            board,
        ));
    }
    let _ = std::fs::remove_dir_all(&run);
    println!(
        "frame times of the window on the Fleet view, {} services in {} regions, {seconds} s each (ms between frames)",
        fleet.services, fleet.regions
    );
    for (label, n, p50, p95, max, events, (read, services)) in results {
        println!(
            "  {label:<26} p50 {p50:>6.1}  p95 {p95:>6.1}  max {max:>7.1}  ({n} frames; {events} events recorded; the board of {services} services reads in {read:.0} ms)"
        );
    }
    Ok(())
}

/// The last lines a measured console wrote to its log, for a benchmark that failed: the
/// reason is in there (a store it could not open, a display it could not reach), not in
/// the benchmark's timeout.
fn said(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::from("; it wrote nothing to its log");
    }
    let tail = &lines[lines.len().saturating_sub(8)..];
    format!(
        "; the last it wrote ({}):\n  {}",
        log.display(),
        tail.join("\n  ")
    )
}

/// Cold start of the window, `runs` times: from starting the process to its window being
/// mapped (as the window manager sees it), and to the page's first paint of the console
/// frame (reported by the page). Prints the binary's size. Needs a display and xdotool.
pub async fn startup(runs: u32, data_dir: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some(),
        "the startup benchmark opens the window: run it under a display (xvfb-run -a firebreak bench startup)"
    );
    let exe = std::env::current_exe()?;
    let size = std::fs::metadata(&exe)?.len();
    let run = data_dir.join(format!("bench-startup-{}", std::process::id()));
    let mut mapped = Vec::new();
    let mut painted = Vec::new();
    let (mut navigation, mut scripted) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let dir = run.join(i.to_string());
        // A store made beforehand, as a user's would be: the first run creates none.
        firebreak_store::Store::open(&dir.join("firebreak.db"))
            .await?
            .close()
            .await;
        let out = dir.join("paint.json");
        let log = dir.join("console.log");
        let started_ms = firebreak_store::now_ms();
        let started = Instant::now();
        let mut child = std::process::Command::new(&exe)
            .arg("--data-dir")
            .arg(&dir)
            .env("FIREBREAK_BENCH_PAINT", &out)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start the console")?;
        let pid = child.id().to_string();
        let mut map = None;
        let deadline = started + Duration::from_secs(60);
        let paint = loop {
            if map.is_none() {
                let found = std::process::Command::new("xdotool")
                    .args([
                        "search",
                        "--onlyvisible",
                        "--pid",
                        &pid,
                        "--name",
                        "Firebreak",
                    ])
                    .output()
                    .context("xdotool (apt install xdotool)")?;
                if !found.stdout.is_empty() {
                    map = Some(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            if let Ok(text) = std::fs::read_to_string(&out) {
                if let Ok(v) = serde_json::from_str::<Vec<f64>>(&text) {
                    if let [at, rest @ ..] = v.as_slice() {
                        let since = |t: f64| t - started_ms as f64;
                        if let [navigated, script, ..] = rest {
                            navigation.push(since(*navigated));
                            scripted.push(since(*script));
                        }
                        break since(*at);
                    }
                }
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the console ({}) ended ({status}) before its window painted{}",
                    exe.display(),
                    said(&log)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "the window of {} did not paint within 60 s ({}){}",
                    exe.display(),
                    match map {
                        Some(ms) =>
                            format!("it was mapped after {ms:.0} ms, so the page never reported"),
                        None => "no window was ever mapped".into(),
                    },
                    said(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let _ = child.wait();
        mapped.push(map.unwrap_or(paint));
        painted.push(paint);
    }
    let _ = std::fs::remove_dir_all(&run);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0])
    };
    let (map_med, map_min) = median(&mut mapped);
    let (paint_med, paint_min) = median(&mut painted);
    println!(
        "cold start of the window, {runs} runs ({}, {:.1} MB)",
        exe.display(),
        size as f64 / 1e6
    );
    println!("  window mapped (baseline)        median {map_med:>6.0} ms  min {map_min:>6.0} ms");
    println!(
        "  first paint of the console      median {paint_med:>6.0} ms  min {paint_min:>6.0} ms"
    );
    if navigation.len() == painted.len() {
        let (nav_med, nav_min) = median(&mut navigation);
        let (script_med, script_min) = median(&mut scripted);
        println!("  where the time went before the paint:");
        println!(
            "    the page's navigation started median {nav_med:>6.0} ms  min {nav_min:>6.0} ms"
        );
        println!(
            "    its script started           median {script_med:>6.0} ms  min {script_min:>6.0} ms"
        );
    }
    Ok(())
}

/// Removes a benchmark's database file with its WAL and shared-memory files.
fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
