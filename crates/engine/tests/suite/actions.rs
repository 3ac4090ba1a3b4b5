//! One-click actions against the simulator over real sockets: the desk, the store, the
//! engine recording the stream, and the command line, as an engineer would use them.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::actions::{ActionDesk, ActionSettings, Tokens};
use firebreak_engine::ingest::sink::{Recorder, StatusBoard};
use firebreak_protocol::actions::ActionKind;
use firebreak_store::actions::ActionState;
use firebreak_store::incident::EntryKind;
use support::desk::{has, quick, Rig};
use support::rig::wait_for;

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_heals_bad_model_rollout_and_is_recorded_as_verified() {
    let rig = Rig::start("bad-model-rollout", quick(), |_| {}).await;
    let incident = rig.incident("llm-assistant").await;
    // Let the rollout reach a few waves, so there is something to heal.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let proposal = rig
        .desk
        .propose(incident.id, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    assert_eq!(
        (proposal.from.as_str(), proposal.to.as_str()),
        ("42", "41"),
        "{proposal:?}"
    );
    let p = &proposal.preview;
    assert_eq!(p.precondition, "expected_revision = 42");
    assert!(
        p.target_health.text.contains("revision 41"),
        "{:?}",
        p.target_health
    );
    assert_eq!(p.target_health.healthy, Some(true), "{:?}", p.target_health);
    assert_eq!(p.nodes, 16);
    assert!(
        p.type_to_confirm,
        "16 nodes is over the default threshold of 12"
    );

    // Over the threshold, the service's name must be typed.
    let err = rig
        .desk
        .confirm(&proposal.id, "ana", "errors since revision 42", Some("llm"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("type the service name"), "{err}");
    let err = rig
        .desk
        .confirm(&proposal.id, "ana", "  ", Some("llm-assistant"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reason"), "{err}");

    rig.desk
        .confirm(
            &proposal.id,
            "ana",
            "errors since revision 42",
            Some("llm-assistant"),
        )
        .await
        .unwrap();
    let done = rig.settled(&proposal.id).await;
    assert_eq!(done.state, ActionState::Succeeded);
    assert_eq!(
        done.verification.as_deref(),
        Some("recovered"),
        "{:?}",
        rig.steps(incident.id).await
    );
    assert_eq!(rig.actions_at_sim().await, 1);

    let steps = rig.steps(incident.id).await;
    for step in [
        "Proposed:",
        "Confirmed by ana",
        "Sent to the cluster",
        "Accepted by the cluster",
        "Succeeded:",
        "Recovered:",
    ] {
        assert!(has(&steps, step), "no {step:?} step in {steps:#?}");
    }
    let recovered = steps.iter().find(|s| s.starts_with("Recovered:")).unwrap();
    assert!(
        recovered.contains("error rate") && recovered.contains("p99"),
        "{recovered}"
    );
    assert!(rig.store.verify_audit().await.unwrap().first_bad.is_none());
    let audited = rig
        .store
        .audit_records(Some(&format!("action/{}", proposal.id)))
        .await
        .unwrap();
    assert!(
        audited.iter().any(|r| r.what == "action.succeeded"),
        "{audited:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failover_relieves_pipeline_bottleneck() {
    let rig = Rig::start("pipeline-bottleneck", quick(), |_| {}).await;
    let incident = rig.incident("search-ranking").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let proposal = rig
        .desk
        .propose(incident.id, ActionKind::Failover, "ana")
        .await
        .unwrap();
    assert_eq!(
        (proposal.from.as_str(), proposal.to.as_str()),
        ("eu-west", "us-east"),
        "{proposal:?}"
    );
    assert_eq!(
        proposal.preview.precondition,
        "expected_primary_region = eu-west"
    );
    assert!(
        proposal
            .preview
            .target_health
            .text
            .starts_with("us-east: healthy"),
        "{:?}",
        proposal.preview.target_health
    );
    assert!(
        !proposal.preview.type_to_confirm,
        "8 nodes is under the threshold"
    );
    rig.desk
        .confirm(
            &proposal.id,
            "ana",
            "eu-west pool drained by the stalled rollout",
            None,
        )
        .await
        .unwrap();
    let done = rig.settled(&proposal.id).await;
    assert_eq!(
        (done.state, done.verification.as_deref()),
        (ActionState::Succeeded, Some("recovered")),
        "{:#?}",
        rig.steps(incident.id).await
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_cannot_help_is_recorded_as_not_recovered_and_a_failover_is_proposed() {
    let rig = Rig::start("node-loss-cascade", quick(), |_| {}).await;
    let incident = rig.incident("recommendations").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let proposal = rig
        .desk
        .propose(incident.id, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    rig.desk
        .confirm(
            &proposal.id,
            "ana",
            "trying the previous build",
            Some("recommendations"),
        )
        .await
        .unwrap();
    let done = rig.settled(&proposal.id).await;
    let steps = rig.steps(incident.id).await;
    assert_eq!(
        (done.state, done.verification.as_deref()),
        (ActionState::Succeeded, Some("not_recovered")),
        "{steps:#?}"
    );
    assert!(has(&steps, "NOT recovered:"), "{steps:#?}");
    // The verdict is recorded first, the next proposal right after it.
    wait_for(
        Duration::from_secs(20),
        "the failover proposal",
        async || rig.store.incident_actions(incident.id).await.unwrap().len() > 1,
    )
    .await;
    let actions = rig.store.incident_actions(incident.id).await.unwrap();
    let next = actions.last().unwrap();
    assert_eq!(
        (next.kind, next.state),
        (ActionKind::Failover, ActionState::Proposed),
        "{actions:#?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_double_click_acts_once() {
    let rig = Rig::start("bad-model-rollout", quick(), |_| {}).await;
    let incident = rig.incident("llm-assistant").await;
    let proposal = rig
        .desk
        .propose(incident.id, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    let confirm = || {
        rig.desk
            .confirm(&proposal.id, "ana", "errors on 42", Some("llm-assistant"))
    };
    let (a, b) = tokio::join!(confirm(), confirm());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.id, b.id);
    rig.settled(&proposal.id).await;
    assert_eq!(rig.actions_at_sim().await, 1, "the cluster acted once");
    let confirmed = rig
        .steps(incident.id)
        .await
        .iter()
        .filter(|s| s.starts_with("Confirmed"))
        .count();
    assert_eq!(confirmed, 1);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_action_sends_nothing() {
    let settings = ActionSettings {
        grace_s: 3,
        ..quick()
    };
    let rig = Rig::start("bad-model-rollout", settings, |_| {}).await;
    let (incident, proposal) = rig.confirmed_rollback().await;
    let cancelled = rig.desk.cancel(&proposal.id, "ana").await.unwrap();
    assert_eq!(cancelled.state, ActionState::Cancelled);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rig.actions_at_sim().await, 0);
    assert_eq!(
        rig.store.action(&proposal.id).await.unwrap().state,
        ActionState::Cancelled
    );
    assert!(has(
        &rig.steps(incident.id).await,
        "Cancelled by ana; nothing was sent."
    ));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_precondition_conflict_shows_the_current_state_and_who_changed_it() {
    let settings = ActionSettings {
        grace_s: 3,
        ..quick()
    };
    let rig = Rig::start("bad-model-rollout", settings, |_| {}).await;
    let (_, proposal) = rig.confirmed_rollback().await;
    // In the grace period, someone else rolls the deployment back from another tool.
    let (status, _) = support::cluster::post(
        &rig.sim,
        "/v1/deployments/llm-assistant-serving/rollback",
        "other-tool-key",
        serde_json::json!({"to_revision": 41, "expected_revision": 42, "actor": "bo", "reason": "paged first"}),
    )
    .await;
    assert_eq!(status, 202);
    let done = rig.settled(&proposal.id).await;
    assert_eq!(done.state, ActionState::Refused);
    let error = done.error.unwrap();
    assert!(
        error.contains("revision 41") && error.contains("changed by bo"),
        "{error}"
    );
    assert_eq!(rig.actions_at_sim().await, 1, "only bo's rollback happened");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_the_cluster_fails_is_shown_failed_with_its_reason() {
    let rig = Rig::start("bad-model-rollout", quick(), |o| o.faults.action_fail = 1.0).await;
    let (incident, proposal) = rig.confirmed_rollback().await;
    let done = rig.settled(&proposal.id).await;
    assert_eq!(done.state, ActionState::Failed);
    assert!(!done.error.clone().unwrap_or_default().is_empty());
    assert!(has(&rig.steps(incident.id).await, "Failed on the cluster:"));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_refuses_and_a_missing_token_blocks_sending() {
    let rig = Rig::start(
        "bad-model-rollout",
        ActionSettings {
            read_only: true,
            ..quick()
        },
        |_| {},
    )
    .await;
    let incident = rig.incident("llm-assistant").await;
    let err = rig
        .desk
        .propose(incident.id, ActionKind::Rollback, "ana")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");

    quick().save(&rig.store).await.unwrap();
    // A desk with no token for the cluster (and none in the keychain) previews but cannot send.
    let board = Arc::new(StatusBoard::default());
    let tokenless = ActionDesk::new(
        rig.store.clone(),
        Tokens::default(),
        board,
        Arc::new(Recorder::default()),
    );
    // The action API refuses an anonymous read, so the proposal itself explains.
    let err = tokenless
        .propose(incident.id, ActionKind::Rollback, "ana")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("401") || err.to_string().contains("token"),
        "{err}"
    );
    assert_eq!(rig.actions_at_sim().await, 0);
    let _ = rig.cluster;
    rig.stop().await;
}

/// A store that cannot be written for a while (another process holds its write lock past
/// the busy timeout) does not stop an action for good: its panel says it is stuck and
/// why, the desk retries with backoff, and the action ends once, as confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn an_action_the_store_cannot_move_says_it_is_stuck_and_carries_on_when_it_can() {
    use sqlx::Connection;
    let rig = Rig::start(
        "bad-model-rollout",
        ActionSettings {
            grace_s: 2,
            ..quick()
        },
        |_| {},
    )
    .await;
    let (incident, action) = rig.confirmed_rollback().await;
    // Another process takes the write lock during the grace period and keeps it.
    let db = rig.dir.path().join("firebreak.db");
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the action to be marked stuck",
        async || {
            rig.desk
                .stuck(&action.id)
                .is_some_and(|s| s.starts_with("stuck, retrying:") && s.contains("locked"))
        },
    )
    .await;
    let listed = rig
        .desk
        .with_status(rig.store.incident_actions(incident.id).await.unwrap());
    assert!(
        listed[0]
            .stuck
            .as_deref()
            .is_some_and(|s| s.contains("locked")),
        "what the panel reads says why the action waits"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    drop(other);

    let done = rig.settled(&action.id).await;
    assert_eq!(
        done.state,
        ActionState::Succeeded,
        "{:#?}",
        rig.steps(incident.id).await
    );
    assert_eq!(rig.actions_at_sim().await, 1, "retrying never sends twice");
    assert_eq!(
        rig.desk.stuck(&action.id),
        None,
        "once it moves, it is no longer stuck"
    );
    rig.stop().await;
}

/// A silence proposed from the alert's timeline entry goes through the same desk: the
/// preview names the matchers and says what is firing, read-only mode refuses it, and once
/// confirmed it is sent once, succeeds, and is recorded with no verification (a silence
/// changes what notifies, not the service).
#[tokio::test(flavor = "multi_thread")]
async fn a_silence_from_an_alert_entry_goes_through_the_desk_once() {
    let rig = Rig::start("bad-model-rollout", quick(), |_| {}).await;
    let incident = rig.incident("llm-assistant").await;
    // The incident may open on an anomaly before the alert fires: wait for the alert.
    let firing = async || {
        rig.store
            .timeline(incident.id, None, 1000)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == EntryKind::Event && e.event_type.as_deref() == Some("alert.firing"))
    };
    wait_for(Duration::from_secs(60), "the alert to fire", firing).await;
    let entries = rig.store.timeline(incident.id, None, 1000).await.unwrap();
    let alert = entries
        .iter()
        .find(|e| e.kind == EntryKind::Event && e.event_type.as_deref() == Some("alert.firing"))
        .expect("the incident's alert entry");
    let not_alert = entries
        .iter()
        .find(|e| e.event_type.as_deref() != Some("alert.firing"))
        .unwrap();
    let refused = rig
        .desk
        .propose_silence(incident.id, not_alert.id, 3600, "ana")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("only an alert that fired"),
        "{refused}"
    );

    let proposal = rig
        .desk
        .propose_silence(incident.id, alert.id, 3600, "ana")
        .await
        .unwrap();
    assert_eq!(proposal.kind, ActionKind::Silence);
    assert!(
        proposal.preview.summary.starts_with("Silence ")
            && proposal.preview.summary.ends_with(" for 1 h"),
        "{}",
        proposal.preview.summary
    );
    assert!(proposal
        .preview
        .precondition
        .contains("service=\"llm-assistant\""));
    // What it mutes now, as the cluster says: the one alert, by its labels.
    let muted = &proposal.preview.target_health.text;
    assert!(
        muted.starts_with("mutes 1 alert firing now")
            && muted.contains("service=\"llm-assistant\""),
        "{muted}"
    );
    assert!(proposal
        .preview
        .warnings
        .iter()
        .any(|w| w.contains("it fixes nothing")));
    // Too long a silence is refused before anything is recorded.
    assert!(rig
        .desk
        .propose_silence(incident.id, alert.id, 30 * 24 * 3600, "ana")
        .await
        .is_err());

    let before = rig.actions_at_sim().await;
    rig.desk
        .confirm(
            &proposal.id,
            "ana",
            "known bad model; rollback under way",
            None,
        )
        .await
        .unwrap();
    let finished = async || {
        rig.store
            .action(&proposal.id)
            .await
            .unwrap()
            .state
            .is_final()
    };
    wait_for(Duration::from_secs(60), "the silence", finished).await;
    let done = rig.store.action(&proposal.id).await.unwrap();
    assert_eq!(done.state, ActionState::Succeeded, "{done:?}");
    // Left to run, the desk starts no verification for it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let done = rig.store.action(&proposal.id).await.unwrap();
    assert_eq!(
        done.verification, None,
        "a silence is not verified as a recovery"
    );
    // A second confirm and drive change nothing: one silence at the cluster.
    rig.desk
        .confirm(&proposal.id, "ana", "again", None)
        .await
        .unwrap();
    rig.desk.drive(&proposal.id).await.unwrap();
    assert_eq!(rig.actions_at_sim().await, before + 1);
    let steps = rig.steps(incident.id).await;
    assert!(has(&steps, "Confirmed by ana: Silence "), "{steps:?}");
    assert!(has(&steps, "Succeeded: Silence "), "{steps:?}");
    rig.stop().await;
}

/// The rollout levers through the desk: a pause proposed with its preview, confirmed and
/// verified; a second person's pause of the same rollout, proposed before, is refused at
/// confirmation because it is already paused; a promotion's preview warns; a rollback can
/// name any revision of the history; the abort heals the service.
#[tokio::test(flavor = "multi_thread")]
async fn the_rollout_levers_go_through_the_desk_with_their_guard_rails() {
    let scenarios = tempfile::tempdir().unwrap();
    let rig = Rig::start(
        &support::cluster::slow_bad_rollout(scenarios.path(), 8),
        quick(),
        |_| {},
    )
    .await;
    let incident = rig.incident("llm-assistant").await;

    let ana = rig
        .desk
        .propose(incident.id, ActionKind::PauseRollout, "ana")
        .await
        .unwrap();
    let bo = rig
        .desk
        .propose(incident.id, ActionKind::PauseRollout, "bo")
        .await
        .unwrap();
    assert_eq!((ana.from.as_str(), ana.to.as_str()), ("42", "paused"));
    assert!(
        ana.preview
            .summary
            .starts_with("Pause the rollout of llm-assistant-serving to revision 42 at wave"),
        "{}",
        ana.preview.summary
    );
    assert_eq!(ana.preview.nodes, 0, "a pause changes no node");
    assert!(ana.preview.to_label.contains("no further waves"));
    assert!(ana.preview.precondition.contains("expected_revision = 42"));
    rig.desk
        .confirm(&ana.id, "ana", "errors climb with each wave", None)
        .await
        .unwrap();
    let paused = rig.settled(&ana.id).await;
    assert_eq!(paused.state, ActionState::Succeeded, "{paused:?}");
    assert!(paused.verification.is_some(), "verified with figures");
    let d = support::cluster::get(&rig.sim, "/v1/deployments/llm-assistant-serving").await;
    assert_eq!(d["rollout"]["paused"], true);
    // What the window shows: the paused rollout, and each revision's record. 41 served
    // alone before the rollout (its samples since speak for a mix); 42 never did.
    let state = rig.desk.rollout_state(incident.id).await.unwrap();
    let r = state.rollout.clone().unwrap();
    assert!(r.paused && !r.stalled, "{r:?}");
    assert_eq!((r.to_revision, r.waves), (42, 8));
    assert_eq!(
        state
            .revisions
            .iter()
            .map(|v| (v.revision, v.current))
            .collect::<Vec<_>>(),
        [(40, false), (41, false), (42, true)]
    );
    let r41 = &state.revisions[1];
    assert!(r41.error_rate.unwrap() < 0.02, "{r41:?}");
    assert!(
        state.revisions[2].live_from_ms.is_none(),
        "{:?}",
        state.revisions[2]
    );
    assert_eq!(state.healthy, Some(false), "the bad wave is serving");

    // bo's proposal was made before the pause: its confirmation re-reads the cluster.
    let err = rig
        .desk
        .confirm(&bo.id, "bo", "same idea", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already paused"), "{err}");
    assert_eq!(
        rig.store.action(&bo.id).await.unwrap().state,
        ActionState::Refused
    );
    // And the desk will not propose a second pause.
    let again = rig
        .desk
        .propose(incident.id, ActionKind::PauseRollout, "bo")
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already paused"), "{again}");

    // Resuming it is possible too, and the preview says what it spreads to.
    let resume = rig
        .desk
        .propose(incident.id, ActionKind::ResumeRollout, "bo")
        .await
        .unwrap();
    assert_eq!(
        (resume.from.as_str(), resume.to.as_str()),
        ("42", "running")
    );
    assert!(
        resume
            .preview
            .warnings
            .iter()
            .any(|w| w.contains("resuming spreads it")),
        "{:?}",
        resume.preview.warnings
    );
    rig.desk.cancel(&resume.id, "bo").await.unwrap();

    // Promoting a bad rollout is possible, with the warning in the preview.
    let promote = rig
        .desk
        .propose_with(
            incident.id,
            ActionKind::PromoteRollout,
            firebreak_engine::actions::Choice {
                full: true,
                ..Default::default()
            },
            "bo",
        )
        .await
        .unwrap();
    assert_eq!(promote.to, "all waves");
    assert!(
        promote
            .preview
            .warnings
            .iter()
            .any(|w| w.contains("promoting spreads it")),
        "{:?}",
        promote.preview.warnings
    );
    rig.desk.cancel(&promote.id, "bo").await.unwrap();

    // A rollback can name any revision of the history, and only those.
    let to_40 = rig
        .desk
        .propose_with(
            incident.id,
            ActionKind::Rollback,
            firebreak_engine::actions::Choice {
                to_revision: Some(40),
                ..Default::default()
            },
            "ana",
        )
        .await
        .unwrap();
    assert_eq!((to_40.from.as_str(), to_40.to.as_str()), ("42", "40"));
    rig.desk.cancel(&to_40.id, "ana").await.unwrap();
    let nowhere = rig
        .desk
        .propose_with(
            incident.id,
            ActionKind::Rollback,
            firebreak_engine::actions::Choice {
                to_revision: Some(99),
                ..Default::default()
            },
            "ana",
        )
        .await
        .unwrap_err();
    assert!(
        nowhere.to_string().contains("history: 40, 41, 42"),
        "{nowhere}"
    );

    // The abort sends every node back to 41, and the service recovers.
    let abort = rig
        .desk
        .propose(incident.id, ActionKind::AbortRollout, "ana")
        .await
        .unwrap();
    assert_eq!(abort.to, "41");
    rig.desk
        .confirm(&abort.id, "ana", "bad model", Some("llm-assistant"))
        .await
        .unwrap();
    let done = rig.settled(&abort.id).await;
    assert_eq!(done.state, ActionState::Succeeded);
    assert_eq!(done.verification.as_deref(), Some("recovered"), "{done:?}");
    let steps = rig.steps(incident.id).await;
    assert!(
        has(
            &steps,
            "Succeeded: Abort the rollout of llm-assistant-serving"
        ),
        "{steps:?}"
    );
    assert_eq!(
        rig.actions_at_sim().await,
        2,
        "the pause and the abort; nothing else was sent"
    );
    rig.stop().await;
}
