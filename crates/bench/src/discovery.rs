//! `firebreak bench discovery`: a gateway discovering a large vLLM fleet (300 services in
//! 6 regions by default) through the real Prometheus (Debian's `prometheus`, on PATH)
//! scraping the simulator: the time from the gateway's start until every service has its
//! first `service.metrics`, and the queries per minute it asks Prometheus, counted by a
//! proxy in between. Measured twice in the same run: with the preset's services asked
//! together (one query per figure across them all, split by label) and, as the baseline,
//! with one query per figure, region and service (`[prometheus] batch = false`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

const TOKEN: &str = "bench-token-0123456789";

pub async fn discovery(
    fleet: firebreak_sim::FleetShape,
    limit_s: u64,
    data_dir: &std::path::Path,
) -> Result<()> {
    let dir = data_dir.join(format!("bench-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = run(fleet, limit_s, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Kills the child when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(fleet: firebreak_sim::FleetShape, limit_s: u64, dir: &std::path::Path) -> Result<()> {
    firebreak_common::process::install_tls_provider();
    let mut opts = firebreak_sim::SimOptions::new(firebreak_sim::Scenario::load("steady")?, TOKEN);
    opts.fleet = fleet;
    opts.metrics = firebreak_sim::exposition::Naming::Vllm;
    let sim = firebreak_sim::start(opts).await?;

    // Prometheus scraping the simulator every 5 s.
    std::fs::write(dir.join("sim-token"), TOKEN)?;
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: fleet\n    authorization:\n      type: Bearer\n      credentials_file: sim-token\n    static_configs:\n      - targets: [\"{}\"]\n",
            sim.addr
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _prometheus = Child(
        std::process::Command::new("prometheus")
            .current_dir(dir)
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start prometheus (install it: .ci/deps.sh --test)")?,
    );
    let prometheus = format!("http://127.0.0.1:{port}");
    // Two scrapes at least, so that rate() over a minute has something to say.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let url = reqwest::Url::parse_with_params(
            &format!("{prometheus}/api/v1/query"),
            [(
                "query",
                "count(count_over_time(vllm:num_requests_waiting[1m]) >= 2)",
            )],
        )?;
        let ready = match http.get(url).send().await {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()
                        .map(str::to_owned)
                })
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= fleet.services * fleet.regions),
            Err(_) => false,
        };
        if ready {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "Prometheus did not scrape the fleet in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    println!(
        "# gateway discovery: {} services in {} regions (vLLM naming), real Prometheus, polling every 5 s",
        fleet.services, fleet.regions
    );
    println!("| asked | until every service has its first service.metrics | queries to Prometheus per minute |");
    println!("|---|---|---|");
    for batch in [true, false] {
        let (first_all, per_minute) =
            one_gateway(&prometheus, batch, fleet.services, limit_s, dir).await?;
        println!(
            "| {} | {} | {per_minute:.0} |",
            if batch {
                "together: one query per figure across the preset's services (`batch = true`)"
            } else {
                "baseline: one query per figure, region and service (`batch = false`)"
            },
            match first_all {
                Some(d) => format!("{:.1} s", d.as_secs_f64()),
                None => format!("not within {limit_s} s"),
            }
        );
    }
    sim.shutdown();
    Ok(())
}

/// A gateway discovering the fleet through a counting proxy: how long until every one of
/// `services` has its first metrics (none past `limit_s`), and its queries per minute
/// over the minute after (or over the whole run when that never came).
async fn one_gateway(
    prometheus: &str,
    batch: bool,
    services: usize,
    limit_s: u64,
    dir: &std::path::Path,
) -> Result<(Option<Duration>, f64)> {
    let (proxy, queries) = counting_proxy(prometheus.to_owned()).await?;
    std::fs::write(dir.join("gateway.token"), TOKEN)?;
    let text = format!(
        "cluster = \"bench\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"bench\"\nfile = \"{}\"\n\
         [prometheus]\nurl = \"{proxy}\"\ninterval_s = 5\nwarm_up_s = 600\nbatch = {batch}\n\
         [discovery]\ninterval_s = 5\n[[discovery.prometheus]]\nstack = \"vllm\"\n",
        dir.join("gateway.token").display()
    );
    let config = firebreak_gateway::config::parse(std::path::Path::new("gateway.toml"), &text)?;
    let journal_path = dir.join(format!("journal-{batch}.db"));
    let journal = Arc::new(
        firebreak_gateway::journal::DurableJournal::open(
            &journal_path,
            firebreak_gateway::journal::Retention::default(),
        )
        .await?,
    );
    let started = Instant::now();
    let gateway = firebreak_gateway::serve::start_on(&config, journal.clone()).await?;
    let mut seen = BTreeSet::new();
    let mut after = 0u64;
    let mut first_all = None;
    let limit = Duration::from_secs(limit_s);
    while started.elapsed() < limit {
        match journal.read_after(after, 10_000).await? {
            firebreak_server::Read::Frames { frames, last } => {
                after = last;
                for frame in &frames {
                    let v: serde_json::Value =
                        serde_json::from_str(frame.as_str()).unwrap_or_default();
                    if v["type"] == "dev.firebreak.service.metrics" {
                        if let Some(s) = v["data"]["service"].as_str() {
                            seen.insert(s.to_owned());
                        }
                    }
                }
            }
            firebreak_server::Read::Gap { first_available } => {
                after = first_available.saturating_sub(1)
            }
            firebreak_server::Read::Nothing => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        if seen.len() >= services {
            first_all = Some(started.elapsed());
            break;
        }
    }
    // The load: over the minute after every service is up, or the whole run when it never was.
    let per_minute = match first_all {
        Some(_) => {
            let before = queries.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(60)).await;
            (queries.load(Ordering::Relaxed) - before) as f64
        }
        None => queries.load(Ordering::Relaxed) as f64 * 60.0 / started.elapsed().as_secs_f64(),
    };
    gateway.shutdown();
    journal.close().await;
    Ok((first_all, per_minute))
}

/// A proxy to `upstream` that counts the instant queries (`/api/v1/query`) it forwards.
async fn counting_proxy(upstream: String) -> Result<(String, Arc<AtomicU64>)> {
    use axum::extract::{Request, State};
    use axum::response::IntoResponse;

    let queries = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::new();
    let state = (upstream, http, queries.clone());
    let app = axum::Router::new()
        .fallback(
            |State((upstream, http, queries)): State<(String, reqwest::Client, Arc<AtomicU64>)>,
             request: Request| async move {
                if request.uri().path() == "/api/v1/query" {
                    queries.fetch_add(1, Ordering::Relaxed);
                }
                let path = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                match http.get(format!("{upstream}{path}")).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.bytes().await.unwrap_or_default();
                        (
                            axum::http::StatusCode::from_u16(status)
                                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
                            [("content-type", "application/json")],
                            body,
                        )
                            .into_response()
                    }
                    Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
                }
            },
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), queries))
}
