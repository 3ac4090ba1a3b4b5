//! Golden files of the incident report in every format, from a deterministic recording:
//! the bad-model-rollout simulator, stepped one simulated second at a time, recorded by a
//! console whose clock is set to the simulator's time at each step. The incident opens from
//! the rules, an engineer acknowledges it, notes, rolls back through the action desk, and
//! the desk verifies recovery; then a review moves a key moment, annotates, files a root
//! cause, a factor and a follow-up.
//! Every run records the same incident, so the reports must read the same, byte for byte
//! (ids drawn at random are masked). `cargo insta review` accepts an intended change.
//!
//! The manual clock is process-wide: this file holds one test, so nothing else shares it.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use firebreak_test_support as support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use firebreak_engine::actions::client::{ActionClient, Outcome};
use firebreak_engine::actions::ActionSettings;
use firebreak_protocol::actions::ActionKind;
use firebreak_reports::{build, render, Format};
use firebreak_store::incident::{IncidentStatus, Severity};
use support::rig::{live, wait_for, Live};

/// Simulated time zero, and so the console's clock at the first step.
const T0: &str = "2026-11-02T14:00:00Z";

/// Waits until the action desk has taken the step the clock's last move allowed: every
/// action it drives waits on the clock again, none on a time already reached (a fixed
/// pause instead let a busy machine record a step a second late).
async fn desk_settled(store: &firebreak_store::Store) {
    wait_for(
        Duration::from_secs(10),
        "the action desk to take its step",
        async || {
            let driven = store.unfinished_actions().await.unwrap().len();
            firebreak_common::clock::settled(driven)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incident_reports_match_their_golden_files() {
    let t0: DateTime<Utc> = T0.parse().unwrap();
    let at = |s: i64| t0.timestamp_millis() + s * 1000;
    firebreak_common::clock::set_manual(Some(at(0)));

    let sim = support::cluster::sim("bad-model-rollout", 1.0, |o| {
        o.seed = 7;
        o.start = Some(t0);
        o.stepped = true;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = ActionSettings {
        grace_s: 0,
        verify_window_s: 20,
        ..Default::default()
    };
    let Live {
        store,
        engine,
        desk,
        cluster,
    } = live(&dir.path().join("firebreak.db"), &sim, settings).await;
    let client = ActionClient::new(
        &sim.actions_url(),
        Some(support::cluster::TOKEN.into()),
        None,
    )
    .unwrap();

    // One simulated second: the world moves and the console records all of it at the
    // second's time; then the clock moves on, and the action desk (which waits by that
    // clock) takes its next step, recorded at the new time.
    let mut second = 0;
    let step = async |second: &mut i64| {
        *second += 1;
        sim.advance(1);
        let head = sim.sent_bounds().0;
        wait_for(
            Duration::from_secs(30),
            "the console to record the second",
            async || store.cursor(cluster).await.unwrap() >= head,
        )
        .await;
        firebreak_common::clock::set_manual(Some(at(*second)));
        desk_settled(&store).await;
    };

    let mut incident = None;
    while incident.is_none() {
        step(&mut second).await;
        assert!(second < 300, "no incident opened in five simulated minutes");
        incident = store
            .incidents()
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.severity == Severity::Critical)
            .map(|i| i.id);
    }
    let incident = incident.unwrap();
    for _ in 0..20 {
        step(&mut second).await;
    }
    store
        .change_status(incident, IncidentStatus::Acknowledged, "ana")
        .await
        .unwrap();
    store
        .add_note(
            incident,
            "Errors began with wave 1 of revision 42 <b>(canary skipped)</b>",
            "ana",
        )
        .await
        .unwrap();
    for _ in 0..10 {
        step(&mut second).await;
    }
    let proposal = desk
        .propose(incident, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    desk.confirm(
        &proposal.id,
        "ana",
        "revision 42 returns errors",
        Some("llm-assistant"),
    )
    .await
    .unwrap();
    desk_settled(&store).await;
    // Until the desk has verified: each second, wait for the desk to agree with the cluster.
    // (The desk sends once the clock moves past the confirmation, and verifies once it
    // reaches the end of the window: each is waited for before the world moves again.)
    loop {
        step(&mut second).await;
        assert!(second < 900, "the rollback was not verified in time");
        wait_for(
            Duration::from_secs(10),
            "the cluster's answer",
            async || {
                store
                    .action(&proposal.id)
                    .await
                    .unwrap()
                    .remote_id
                    .is_some()
            },
        )
        .await;
        let action = store.action(&proposal.id).await.unwrap();
        let window_over = action
            .succeeded_ms
            .is_some_and(|ms| at(second) >= ms + 20_000);
        if window_over {
            wait_for(Duration::from_secs(10), "the verification", async || {
                store
                    .action(&proposal.id)
                    .await
                    .unwrap()
                    .verification
                    .is_some()
            })
            .await;
            break;
        }
        if let Some(remote) = &action.remote_id {
            if let Outcome::Ok(remote) = client.action(remote).await {
                let cluster_says = serde_json::to_value(remote.state).unwrap();
                wait_for(
                    Duration::from_secs(10),
                    "the desk to follow the cluster",
                    async || {
                        let a = store.action(&proposal.id).await.unwrap();
                        serde_json::to_value(a.state).unwrap() == cluster_says || a.state.is_final()
                    },
                )
                .await;
            }
        }
    }
    store
        .change_status(incident, IncidentStatus::Mitigated, "ana")
        .await
        .unwrap();
    for _ in 0..30 {
        step(&mut second).await;
    }
    store
        .change_status(incident, IncidentStatus::Resolved, "ana")
        .await
        .unwrap();
    engine.stop().await;
    sim.shutdown();

    support::rig::review(&store, incident).await;

    let report = build(&store, incident).await.unwrap();
    assert_eq!(
        report.actions[0].recovered,
        Some(true),
        "{:?}",
        report.actions
    );
    let mut settings = insta::Settings::clone_current();
    // Random by design: the incident's and the actions' public ids, idempotency keys.
    settings.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[uuid]",
    );
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::assert_snapshot!("incident-report.md", render(&report, Format::Markdown));
        insta::assert_snapshot!("incident-report.html", render(&report, Format::Html));
        insta::assert_snapshot!("incident-report.json", render(&report, Format::Json));
    });
    firebreak_common::clock::set_manual(None);
}
