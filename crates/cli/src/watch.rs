//! `firebreak watch`: the ingest engine without a window. Records every event, opens
//! incidents, and prints each incident as it opens.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use firebreak_engine::ingest::sink::{ClusterStatus, Committed, ConsoleSink, StreamState};
use firebreak_engine::ingest::{Engine, Target};
use firebreak_store::{NewCluster, Store};

/// Prints opened incidents on stdout and stream changes on stderr.
pub struct Terminal;

impl ConsoleSink for Terminal {
    fn cluster_status(&self, s: &ClusterStatus) {
        let text = match &s.stream {
            StreamState::Connecting => "connecting".to_owned(),
            StreamState::Live { head } => format!("live (sequence {head})"),
            StreamState::CatchingUp { behind } => format!("catching up, {behind} behind"),
            StreamState::Reconnecting {
                attempt,
                retry_at_ms,
                reason,
            } => {
                let wait = (retry_at_ms - firebreak_store::now_ms()).max(0) as f64 / 1000.0;
                format!("reconnecting in {wait:.1} s (attempt {attempt}): {reason}")
            }
            StreamState::Failed { reason } => format!("failed: {reason}"),
        };
        eprintln!("cluster {}: {text}", s.name);
    }

    fn recording(&self, paused: Option<&str>) {
        match paused {
            Some(reason) => {
                eprintln!("recording paused: {reason} (retrying; nothing received is lost)")
            }
            None => eprintln!("recording resumed"),
        }
    }

    fn committed(&self, batch: &Committed) {
        let mut out = std::io::stdout().lock();
        for i in &batch.opened {
            let _ = writeln!(
                out,
                "incident #{} opened [{}] {}: {}",
                i.id,
                i.severity.as_str(),
                i.service.as_deref().unwrap_or("-"),
                i.title
            );
        }
        let _ = out.flush();
    }
}

/// `NAME=EVENTS_URL` → (name, events URL, actions URL derived from it), trusting
/// `ca_file` besides the OS store when given.
pub fn parse_cluster(
    spec: &str,
    actions_url: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<NewCluster> {
    let Some((name, url)) = spec.split_once('=') else {
        bail!("--cluster takes NAME=EVENTS_URL, e.g. prod=wss://cluster.example/v1/events");
    };
    let events_url = url.trim().to_owned();
    let actions = match actions_url {
        Some(a) => a.to_owned(),
        None => {
            let (scheme, rest) = events_url
                .split_once("://")
                .with_context(|| format!("{events_url:?} is not a ws:// or wss:// URL"))?;
            let scheme = match scheme {
                "ws" => "http",
                "wss" => "https",
                other => bail!("{other}:// is not a WebSocket scheme; use ws:// or wss://"),
            };
            let host = rest.split('/').next().unwrap_or(rest);
            format!("{scheme}://{host}")
        }
    };
    Ok(NewCluster {
        name: name.trim().to_owned(),
        events_url,
        actions_url: actions,
        ca_file: ca_file.map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        }),
    })
}

/// The demo: a fresh simulator on loopback, recorded as the "demo" cluster. Each start is
/// a new demo world: incidents the previous demo run left open are resolved with a note
/// (their world is gone), and the new simulator's stream identity makes the engine record
/// from the start of its stream. The one path for the window and `watch --demo`.
pub async fn start_demo(
    store: &Store,
    speed: f64,
    scenario: Option<&str>,
) -> Result<(firebreak_sim::RunningSim, Target)> {
    let sim = firebreak_sim::start_demo(speed, scenario).await?;
    let cluster = store
        .ensure_demo_cluster(&NewCluster {
            ca_file: None,
            name: "demo".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await?;
    let left = store
        .close_previous_demo(
            cluster.id,
            "A new demo run started: this incident belongs to the previous demo world, which is gone.",
        )
        .await?;
    if left > 0 {
        tracing::info!(
            incidents = left,
            "resolved the previous demo run's incidents"
        );
    }
    let target = Target {
        cluster_id: cluster.id,
        name: cluster.name,
        events_url: cluster.events_url,
        token: Some(sim.token.clone()),
        ca_file: cluster.ca_file.map(Into::into),
    };
    Ok((sim, target))
}

pub async fn run(store: &Store, clusters: Vec<(NewCluster, Option<String>)>) -> Result<()> {
    let mut targets = Vec::new();
    for (new, token) in clusters {
        let cluster = store
            .ensure_cluster(&new)
            .await
            .with_context(|| format!("cluster {}", new.name))?;
        targets.push(Target {
            cluster_id: cluster.id,
            name: cluster.name,
            events_url: cluster.events_url,
            token,
            ca_file: cluster.ca_file.map(Into::into),
        });
    }
    run_targets(store, targets).await
}

/// Records the targets until Ctrl-C or SIGTERM, then stops within seconds: what is
/// committed stays, the rest is fetched again from the cursor on the next start.
pub async fn run_targets(store: &Store, targets: Vec<Target>) -> Result<()> {
    let engine = Engine::start(store.clone(), targets, Arc::new(Terminal)).await?;
    firebreak_common::process::shutdown_signal().await;
    eprintln!("stopping: committing what was received");
    engine.stop().await;
    Ok(())
}
