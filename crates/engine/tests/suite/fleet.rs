//! The fleet board from recorded data: a console records the bad rollout, and the board
//! built from its store shows each service in each region as it was, with the rollout wave
//! by wave and the failing cell's reason; the same board after a restart with the cluster
//! gone.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::time::Duration;

use firebreak_engine::actions::ActionSettings;
use firebreak_store::fleet::{FleetService, Health};
use firebreak_store::Store;
use support::rig::wait_for;

fn service<'a>(board: &'a firebreak_store::fleet::FleetBoard, name: &str) -> &'a FleetService {
    board.clusters[0]
        .services
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} on the board: {board:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_shows_each_cell_from_the_store_and_the_same_after_a_restart() {
    // The bad rollout slowed down, so it is still under way when the board is read.
    let scenarios = tempfile::tempdir().unwrap();
    let path = support::cluster::slow_bad_rollout(scenarios.path(), 8);
    let sim = support::cluster::sim(&path, 10.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let live = support::rig::live(&db, &sim, ActionSettings::default()).await;
    let incident = support::rig::incident_where(&live.store, "the llm-assistant incident", |i| {
        i.service.as_deref() == Some("llm-assistant")
    })
    .await;
    // Wait until HighErrorRate has been recorded firing, so the cell has its alert.
    wait_for(Duration::from_secs(60), "the critical alert", async || {
        let board = live.store.fleet_board().await.unwrap();
        let llm = service(&board, "llm-assistant");
        llm.cells
            .iter()
            .any(|c| c.alerts.contains(&"HighErrorRate".to_owned()))
    })
    .await;
    let board = live.store.fleet_board().await.unwrap();
    assert_eq!(board.clusters.len(), 1);
    let cluster = &board.clusters[0];
    assert_eq!(cluster.regions, ["eu-west", "us-east"]);
    assert_eq!(
        cluster
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["llm-assistant", "recommendations", "search-ranking"]
    );

    let llm = service(&board, "llm-assistant");
    let rollout = llm.rollout.as_ref().expect("the rollout under way");
    assert_eq!((rollout.from_revision, rollout.to_revision), (41, 42));
    assert_eq!(rollout.waves, 8);
    assert!(
        rollout.wave >= 1 && rollout.nodes_updated >= 2,
        "{rollout:?}"
    );
    assert_eq!(rollout.nodes_total, 16);
    assert_eq!(llm.model_version.as_deref(), Some("assistant-13b-2026.11"));
    assert_eq!(
        llm.team.as_deref(),
        Some("assistant-platform"),
        "the team the cluster labels it with"
    );
    assert_eq!(llm.incident.as_ref().map(|i| i.id), Some(incident.id));
    let east = llm.cells.iter().find(|c| c.region == "us-east").unwrap();
    assert!(east.primary);
    assert_eq!(east.health, Health::Failing, "{}", east.reason);
    assert!(east.reason.contains("HighErrorRate"), "{}", east.reason);
    assert!(!east.error_rate.is_empty() && east.error_rate.len() == east.p99_ms.len());
    assert!(east.requests_per_s.unwrap() > 0.0);
    let west = llm.cells.iter().find(|c| c.region == "eu-west").unwrap();
    assert!(!west.primary);

    let recs = service(&board, "recommendations");
    assert!(recs.rollout.is_none());
    assert!(recs.incident.is_none());
    let primary = recs.cells.iter().find(|c| c.primary).unwrap();
    assert_eq!(primary.health, Health::Healthy, "{}", primary.reason);

    // What changed: the rollout began before the incident opened; a pause by someone else
    // (another tool) shows with who made it, newest first.
    let (status, _) = support::cluster::post(
        &sim,
        "/v1/deployments/llm-assistant-serving/pause",
        "p-1",
        serde_json::json!({"expected_revision": 42, "actor": "bo", "reason": "holding the waves"}),
    )
    .await;
    assert_eq!(status, 202);
    wait_for(
        Duration::from_secs(30),
        "the pause among the changes",
        async || {
            let changes = live.store.incident_changes(incident.id).await.unwrap();
            changes
                .first()
                .is_some_and(|c| c.kind == "action" && c.who.as_deref() == Some("bo"))
        },
    )
    .await;
    let changes = live.store.incident_changes(incident.id).await.unwrap();
    assert!(
        changes[0]
            .text
            .starts_with("pause rollout 42 → paused succeeded"),
        "{:?}",
        changes[0]
    );
    assert!(!changes[0].before);
    let began = changes
        .iter()
        .find(|c| {
            c.text
                .starts_with("Rollout of llm-assistant r41 → r42 began")
        })
        .unwrap_or_else(|| panic!("{changes:#?}"));
    assert!(began.before, "the rollout began before the incident opened");
    assert!(began.entry_id.is_some(), "linked to its timeline entry");
    assert!(
        changes.windows(2).all(|w| w[0].at_ms >= w[1].at_ms),
        "newest first"
    );

    // The app stops, the cluster goes away; the board reads the same from the store.
    live.engine.stop().await;
    let before = live.store.fleet_board().await.unwrap();
    live.store.close().await;
    sim.shutdown();
    let store = Store::open(&db).await.unwrap();
    let after = store.fleet_board().await.unwrap();
    assert_eq!(after, before, "recorded data, read again after a restart");
    store.close().await;
}

/// A stalled rollout shows stalled with its reason and drained nodes; a rollback's model
/// change ends it on the board.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_rollout_shows_why_and_a_rollback_ends_it() {
    let sim = support::cluster::sim("pipeline-bottleneck", 10.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let live = support::rig::live(
        &dir.path().join("firebreak.db"),
        &sim,
        ActionSettings::default(),
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "the stall on the board",
        async || {
            let board = live.store.fleet_board().await.unwrap();
            board.clusters.first().is_some_and(|c| {
                c.services.iter().any(|s| {
                    s.name == "search-ranking"
                        && s.rollout.as_ref().is_some_and(|r| r.stalled.is_some())
                })
            })
        },
    )
    .await;
    let board = live.store.fleet_board().await.unwrap();
    let rollout = service(&board, "search-ranking").rollout.clone().unwrap();
    assert!(rollout.stalled.unwrap().contains("no progress"));
    assert!(rollout.nodes_draining > 0);
    assert_eq!(rollout.wave, 1, "stalled at wave 2: one wave done");

    let (status, _) = support::cluster::post(
        &sim,
        "/v1/deployments/search-ranking-serving/rollback",
        "rb-1",
        serde_json::json!({"to_revision": 31, "expected_revision": 32, "actor": "ana", "reason": "stalled"}),
    )
    .await;
    assert_eq!(status, 202);
    wait_for(
        Duration::from_secs(60),
        "the rollout gone from the board",
        async || {
            let board = live.store.fleet_board().await.unwrap();
            service(&board, "search-ranking").rollout.is_none()
        },
    )
    .await;
    live.engine.stop().await;
    sim.shutdown();
}
