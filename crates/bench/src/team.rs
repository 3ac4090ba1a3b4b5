//! `firebreak bench team`: the team server's figures for README, each beside a baseline
//! measured in the same run (a scratch PostgreSQL of its own unless `--database-url`).
//!
//! - records/s one server process accepts (consoles pushing notes over HTTP), beside the
//!   same rows inserted straight into PostgreSQL (no HTTP, no checks, no sequence lock);
//! - sync lag from a note written on one console to its appearance in another console's
//!   store, p50/p99, with 10 and 50 consoles connected, beside the lag to a bare
//!   subscriber that only reads the stream;
//! - a new console catching up on 100,000 records, beside a bare subscriber reading them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use uuid::Uuid;

use firebreak_engine::team::client::{TeamClient, TeamLink};
use firebreak_protocol::team::{Body, Frame, Record};
use firebreak_store::incident::{NewIncident, Severity};
use firebreak_store::Store;
use firebreak_team_server::db::TeamDb;

pub async fn team(
    database_url: Option<String>,
    catch_up: u64,
    data_dir: &std::path::Path,
) -> Result<()> {
    let scratch = match &database_url {
        Some(_) => None,
        None => Some(firebreak_team_server::scratch::ScratchPostgres::start().await?),
    };
    let url = match (&database_url, &scratch) {
        (Some(u), _) => u.clone(),
        (None, Some(s)) => s.database("firebreak_bench").await?,
        _ => unreachable!(),
    };
    let dir = data_dir.join(format!("bench-team-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let outcome = run(&url, catch_up, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn note(incident: Uuid, text: String) -> Record {
    Record {
        id: Uuid::new_v4(),
        incident,
        at: Utc::now(),
        body: Body::Append {
            entry_kind: "note".into(),
            author: "bench".into(),
            text,
            data: None,
            event: None,
            amends: None,
        },
    }
}

fn open(incident: Uuid) -> Record {
    Record {
        id: Uuid::new_v4(),
        incident,
        at: Utc::now(),
        body: Body::Open {
            title: "bench".into(),
            severity: "minor".into(),
            service: None,
            cluster: None,
            entry: "Opened for the benchmark".into(),
        },
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(url: &str, catch_up: u64, dir: &std::path::Path) -> Result<()> {
    let db = TeamDb::connect(url, 4).await?;
    let config = firebreak_team_server::config::Config {
        listen: "127.0.0.1:0".parse()?,
        database: firebreak_server::secret::Secret::Env("FIREBREAK_BENCH_UNUSED".into()),
        max_connections: 32,
        tls: None,
    };
    let server = firebreak_team_server::server::start_with_url(&config, url).await?;
    let base = server.base_url();
    // Each measurement has a team (and so a stream) of its own.
    let teams = ["bench", "lag-10", "lag-50", "catch-up"].map(String::from);
    let token = db.add_person("bench", &teams).await?;
    let incident = Uuid::now_v7();
    team_client(&base, &token, "bench", Uuid::new_v4())?
        .push(vec![open(incident)])
        .await?;
    let team_id: i64 = sqlx::query_scalar("SELECT id FROM teams WHERE name = 'bench'")
        .fetch_one(db.pool())
        .await?;

    accepting(&base, &token, incident).await?;
    accepting_baseline(&db, team_id, incident).await?;

    // 2. Sync lag.
    println!("sync lag, a note written on one console until it is in another console's store (40 notes, one each 250 ms)");
    for consoles in [10usize, 50] {
        let (lags, bare) = lag(dir, &base, &token, consoles).await?;
        println!(
            "  {consoles:>2} consoles: p50 {:>6.1} ms, p99 {:>6.1} ms ({} arrivals); a bare subscriber: p50 {:>6.1} ms, p99 {:>6.1} ms",
            percentile(&lags, 0.5),
            percentile(&lags, 0.99),
            lags.len(),
            percentile(&bare, 0.5),
            percentile(&bare, 0.99),
        );
    }

    // 3. Catching up.
    catching_up(&db, dir, &base, &token, catch_up).await?;
    server.shutdown();
    Ok(())
}

fn team_client(base: &str, token: &str, team: &str, console: Uuid) -> Result<TeamClient> {
    Ok(TeamClient::new(TeamLink {
        url: base.to_owned(),
        team: team.into(),
        token: token.to_owned(),
        console,
        ca_file: None,
    })?)
}

/// Records accepted by the server (the first figure): notes pushed over HTTP by 8 consoles
/// at once, one and a hundred a push.
async fn accepting(base: &str, token: &str, incident: Uuid) -> Result<()> {
    let client = |console: Uuid| team_client(base, token, "bench", console);
    println!("team server, records accepted by one server process (notes pushed over HTTP, 8 consoles at once)");
    for batch in [1usize, 100] {
        let total = if batch == 1 { 4_000 } else { 40_000 };
        let per_console = total / 8;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let c = client(Uuid::new_v4())?;
            tasks.push(tokio::spawn(async move {
                let mut left = per_console;
                while left > 0 {
                    let n = left.min(batch);
                    let records = (0..n)
                        .map(|k| note(incident, format!("bench note {k}")))
                        .collect();
                    c.push(records).await?;
                    left -= n;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let rate = total as f64 / started.elapsed().as_secs_f64();
        println!("  {batch:>3} record(s) a push: {rate:>9.0} records/s");
    }
    Ok(())
}

/// The baseline: the same rows straight into the table, 100 a transaction, 8 connections.
async fn accepting_baseline(db: &TeamDb, team_id: i64, incident: Uuid) -> Result<()> {
    let total = 40_000usize;
    let next: i64 = sqlx::query_scalar("SELECT max(seq) + 1000000 FROM records WHERE team_id = $1")
        .bind(team_id)
        .fetch_one(db.pool())
        .await?;
    let body = serde_json::to_string(&note(incident, "bench note".into()).body)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8i64 {
        let pool = db.pool().clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..(total as i64 / 8 / 100) {
                let mut tx = pool.begin().await?;
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO records (team_id, seq, id, incident, kind, author, console, at, body) ",
                );
                q.push_values(0..100i64, |mut row, k| {
                    row.push_bind(team_id)
                        .push_bind(next + worker * 1_000_000 + b * 100 + k)
                        .push_bind(Uuid::new_v4())
                        .push_bind(incident)
                        .push_bind("append")
                        .push_bind("bench")
                        .push_bind(Uuid::nil())
                        .push_bind(Utc::now())
                        .push_bind(body.clone())
                        .push_unseparated("::json");
                });
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("  baseline, the rows inserted straight into PostgreSQL (100 a transaction): {rate:>9.0} records/s");
    sqlx::query("DELETE FROM records WHERE team_id = $1 AND seq >= $2")
        .bind(team_id)
        .bind(next)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A new console catching up on `catch_up` records (the third figure): a bare subscriber
/// reading them beside a console applying them to its store.
async fn catching_up(
    db: &TeamDb,
    dir: &std::path::Path,
    base: &str,
    token: &str,
    catch_up: u64,
) -> Result<()> {
    let client_of = |team: &str, console: Uuid| team_client(base, token, team, console);
    let catch_incident = Uuid::now_v7();
    let pusher = client_of("catch-up", Uuid::new_v4())?;
    pusher.push(vec![open(catch_incident)]).await?;
    let mut left = catch_up;
    while left > 0 {
        let n = left.min(500);
        pusher
            .push(
                (0..n)
                    .map(|k| note(catch_incident, format!("catch-up note {k}")))
                    .collect(),
            )
            .await?;
        left -= n;
    }
    let catch_id: i64 = sqlx::query_scalar("SELECT id FROM teams WHERE name = 'catch-up'")
        .fetch_one(db.pool())
        .await?;
    let head = db.head(catch_id).await?;
    println!("a new console catching up on {head} records (one incident and its notes)");
    let started = Instant::now();
    let mut sub = client_of("catch-up", Uuid::new_v4())?.subscribe(0).await?;
    let mut read = 0u64;
    while let Some(frame) = sub.next().await {
        if let Frame::CaughtUp { .. } = frame? {
            break;
        }
        read += 1;
    }
    let bare = started.elapsed().as_secs_f64();
    println!(
        "  baseline, a bare subscriber reading them: {bare:.2} s ({:.0} records/s)",
        read as f64 / bare
    );
    let store = Store::open(&dir.join("catch-up.db")).await?;
    store.link_team(base, "catch-up", None, None).await?;
    let started = Instant::now();
    let sync = firebreak_engine::team::sync::TeamSync::start(
        store.clone(),
        token.to_owned(),
        Arc::new(|_| {}),
    );
    loop {
        let link = store.team_link().await?.context("linked")?;
        if link.cursor >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "  a console applying them to its store: {took:.2} s ({:.0} records/s)",
        head as f64 / took
    );
    drop(sync);
    store.close().await;
    Ok(())
}

/// Lags (ms) of notes from console 0 to every other console's store, and to a bare
/// subscriber, with `consoles` consoles connected to a team of their own.
async fn lag(
    dir: &std::path::Path,
    base: &str,
    token: &str,
    consoles: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let team = format!("lag-{consoles}");
    // When the note being measured was written; each arrival is measured from it (notes
    // are 250 ms apart, far more than any lag measured).
    let sent: Arc<Mutex<Option<Instant>>> = Default::default();
    let arrivals: Arc<Mutex<Vec<f64>>> = Default::default();
    let mut stores = Vec::new();
    let mut syncs = Vec::new();
    for n in 0..consoles {
        let store = Store::open(&dir.join(format!("lag-{consoles}-{n}.db"))).await?;
        store.link_team(base, &team, None, None).await?;
        let (sent, arrivals) = (sent.clone(), arrivals.clone());
        let on_applied: firebreak_engine::team::sync::OnApplied = Arc::new(move |_| {
            let at = Instant::now();
            if let Some(sent) = *sent.lock().unwrap_or_else(|e| e.into_inner()) {
                if n != 0 {
                    arrivals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(at.duration_since(sent).as_secs_f64() * 1000.0);
                }
            }
        });
        syncs.push(firebreak_engine::team::sync::TeamSync::start(
            store.clone(),
            token.to_owned(),
            on_applied,
        ));
        stores.push(store);
    }
    let bare: Arc<Mutex<Vec<f64>>> = Default::default();
    let bare_task = {
        let client = TeamClient::new(TeamLink {
            url: base.to_owned(),
            team: team.clone(),
            token: token.to_owned(),
            console: Uuid::new_v4(),
            ca_file: None,
        })?;
        let mut sub = client.subscribe(0).await?;
        let (sent, bare) = (sent.clone(), bare.clone());
        tokio::spawn(async move {
            while let Some(Ok(frame)) = sub.next().await {
                if let Frame::Record(_) = frame {
                    if let Some(at) = *sent.lock().unwrap_or_else(|e| e.into_inner()) {
                        bare.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(at.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while syncs
        .iter()
        .any(|s| s.status().state != firebreak_engine::team::sync::SyncState::Synced)
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the consoles did not connect within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writer = &stores[0];
    let incident = writer
        .open_incident(
            &NewIncident {
                title: format!("lag with {consoles} consoles"),
                severity: Severity::Minor,
                service: None,
                cluster_id: None,
            },
            "bench",
        )
        .await?;
    // Everyone has the incident before the first note.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for k in 0..40 {
        *sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        writer
            .add_note(incident.id, &format!("lag note {k}"), "bench")
            .await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    *sent.lock().unwrap_or_else(|e| e.into_inner()) = None;
    bare_task.abort();
    drop(syncs);
    for s in stores {
        s.close().await;
    }
    let mut lags = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut bare = bare.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lags.sort_by(f64::total_cmp);
    bare.sort_by(f64::total_cmp);
    Ok((lags, bare))
}
