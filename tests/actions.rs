//! One-click actions against the simulator over real sockets: the desk, the store, the
//! engine recording the stream, and the command line, as an engineer would use them.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::actions::{ActionDesk, ActionSettings, Tokens};
use firebreak_engine::ingest::sink::{Recorder, StatusBoard};
use firebreak_engine::ingest::Engine;
use firebreak_protocol::actions::ActionKind;
use firebreak_sim::{RunningSim, SimOptions};
use firebreak_store::actions::{ActionRecord, ActionState};
use firebreak_store::incident::{EntryKind, Incident};
use firebreak_store::Store;
use support::cluster::{sim, TOKEN};
use support::rig::wait_for;

struct Rig {
    sim: RunningSim,
    dir: tempfile::TempDir,
    store: Store,
    engine: Option<Engine>,
    desk: Arc<ActionDesk>,
    cluster: i64,
}

impl Rig {
    async fn start(
        scenario: &str,
        settings: ActionSettings,
        configure: impl FnOnce(&mut SimOptions),
    ) -> Rig {
        let sim = sim(scenario, 10.0, configure).await;
        let dir = tempfile::tempdir().unwrap();
        let live = support::rig::live(&dir.path().join("firebreak.db"), &sim, settings).await;
        Rig {
            sim,
            dir,
            store: live.store,
            engine: Some(live.engine),
            desk: live.desk,
            cluster: live.cluster,
        }
    }

    /// The incident the rules open for `service`.
    async fn incident(&self, service: &str) -> Incident {
        support::rig::incident_where(&self.store, &format!("an incident on {service}"), |i| {
            i.service.as_deref() == Some(service)
        })
        .await
    }

    /// The bad-model-rollout incident with a rollback proposed and confirmed by ana.
    async fn confirmed_rollback(&self) -> (Incident, ActionRecord) {
        let incident = self.incident("llm-assistant").await;
        let proposal = self
            .desk
            .propose(incident.id, ActionKind::Rollback, "ana")
            .await
            .unwrap();
        self.desk
            .confirm(&proposal.id, "ana", "errors on 42", Some("llm-assistant"))
            .await
            .unwrap();
        (incident, proposal)
    }

    /// Waits until the action has finished and, when it succeeded, been verified.
    async fn settled(&self, id: &str) -> ActionRecord {
        wait_for(
            Duration::from_secs(90),
            "the action to settle",
            async || {
                let a = self.store.action(id).await.unwrap();
                a.state.is_final()
                    && (a.state != ActionState::Succeeded || a.verification.is_some())
            },
        )
        .await;
        self.store.action(id).await.unwrap()
    }

    async fn actions_at_sim(&self) -> u64 {
        support::cluster::get(&self.sim, "/v1/sim/stats").await["actions"]
            .as_u64()
            .unwrap()
    }

    async fn steps(&self, incident: i64) -> Vec<String> {
        self.store
            .timeline(incident, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.kind, EntryKind::Action | EntryKind::Verification))
            .map(|e| e.body)
            .collect()
    }

    async fn stop(mut self) {
        if let Some(e) = self.engine.take() {
            e.stop().await;
        }
        self.sim.shutdown();
    }
}

fn quick() -> ActionSettings {
    ActionSettings {
        grace_s: 1,
        verify_window_s: 4,
        ..ActionSettings::default()
    }
}

fn has(steps: &[String], start: &str) -> bool {
    steps.iter().any(|s| s.starts_with(start))
}

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

fn firebreak(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"));
    c.env("FIREBREAK_DATA_DIR", dir).env("FB_TOKEN", TOKEN);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_send_and_answer_then_a_restart_acts_once() {
    // The cluster takes 4 s to answer: the request is in flight when the process dies.
    let rig = Rig::start(
        "bad-model-rollout",
        ActionSettings {
            grace_s: 0,
            ..quick()
        },
        |o| o.faults.action_delay_ms = 4_000,
    )
    .await;
    let incident = rig.incident("llm-assistant").await;
    let mut act = firebreak(rig.dir.path())
        .args(["act", "rollback", "--incident", &incident.id.to_string()])
        .args([
            "--reason",
            "errors on 42",
            "--yes",
            "--confirm-service",
            "llm-assistant",
        ])
        .args(["--token-env", "FB_TOKEN"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the request to be sent",
        async || {
            rig.store
                .incident_actions(incident.id)
                .await
                .unwrap()
                .first()
                .is_some_and(|a| a.state == ActionState::Sent)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    act.kill().unwrap(); // SIGKILL
    act.wait().unwrap();
    let action = rig
        .store
        .incident_actions(incident.id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(action.state, ActionState::Sent, "killed before the answer");

    let resumed = firebreak(rig.dir.path())
        .args(["actions", "--resume", "--token-env", "FB_TOKEN"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let done = rig.settled(&action.id).await;
    assert_eq!(
        done.state,
        ActionState::Succeeded,
        "{:#?}",
        rig.steps(incident.id).await
    );
    assert_eq!(
        rig.actions_at_sim().await,
        1,
        "the same key: the cluster acted once"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_one_audit_record_is_caught() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let store = Store::open(&db).await.unwrap();
    let i = store
        .open_incident(
            &firebreak_store::incident::NewIncident {
                title: "checkout errors".into(),
                severity: firebreak_store::incident::Severity::Major,
                service: Some("checkout".into()),
                cluster_id: None,
            },
            "ana",
        )
        .await
        .unwrap();
    for n in 0..4 {
        store
            .add_note(i.id, &format!("note {n}"), "ana")
            .await
            .unwrap();
    }
    store.close().await;
    let ok = firebreak(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("5 records"));

    // Someone with the file drops the guard and rewrites what a note said.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET detail = replace(detail, 'note 2', 'nothing to see') WHERE id = 4",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let bad = firebreak(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("record 4"), "{said}");
}

/// Two processes on one store never both drive its actions: while one does (the window,
/// here the test's own desk), `firebreak actions --resume` and `firebreak act` are refused
/// with who drives them, and send nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_never_drives_the_actions_of_a_store_another_drives() {
    let rig = Rig::start("bad-model-rollout", quick(), |_| {}).await;
    rig.desk.set_driver_name("the console window");
    rig.desk.resume_unfinished().await.unwrap();
    let incident = rig.incident("llm-assistant").await;

    let resumed = firebreak(rig.dir.path())
        .args(["actions", "--resume", "--token-env", "FB_TOKEN"])
        .output()
        .unwrap();
    assert!(!resumed.status.success(), "a second driver must be refused");
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        said.contains("driven by the console window (pid"),
        "the refusal says who drives: {said}"
    );

    let act = firebreak(rig.dir.path())
        .args(["act", "rollback", "--incident", &incident.id.to_string()])
        .args([
            "--reason",
            "errors on 42",
            "--yes",
            "--confirm-service",
            "llm-assistant",
        ])
        .args(["--token-env", "FB_TOKEN"])
        .output()
        .unwrap();
    assert!(!act.status.success(), "`act` is a driver too");
    let said = String::from_utf8_lossy(&act.stderr);
    assert!(said.contains("driven by the console window"), "{said}");
    assert_eq!(rig.actions_at_sim().await, 0, "nothing reached the cluster");
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

/// `firebreak act VERB --incident N --reason … --yes --token-env FB_TOKEN` plus `extra`.
fn act_cli(rig: &Rig, incident: i64, verb: &str, extra: &[&str]) -> std::process::Output {
    firebreak(rig.dir.path())
        .args(["act", verb, "--incident", &incident.to_string()])
        .args(["--reason", "from the command line", "--yes"])
        .args(["--token-env", "FB_TOKEN"])
        .args(extra)
        .output()
        .unwrap()
}

/// The one JSON document `act --json` prints: the outcome and the action.
fn outcome(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every lever from the command line, through the same desk as the window: an option of
/// another lever is refused before anything is proposed; pause, resume and abort of a slow
/// bad rollout with `--json` for scripts (the exit status follows the verification); a
/// rollback to a chosen revision; a silence of the incident's alert by name; and the
/// incident's own changes (note, ack, severity, command, resolve) headless.
#[tokio::test(flavor = "multi_thread")]
async fn every_lever_and_incident_change_from_the_command_line() {
    let scenarios = tempfile::tempdir().unwrap();
    let rig = Rig::start(
        &support::cluster::slow_bad_rollout(scenarios.path(), 8),
        ActionSettings {
            grace_s: 0,
            ..quick()
        },
        |_| {},
    )
    .await;
    let incident = rig.incident("llm-assistant").await;
    let id = incident.id;
    for (verb, extra, said) in [
        (
            "pause",
            &["--to-revision", "41"][..],
            "--to-revision is a rollback's",
        ),
        ("rollback", &["--full"][..], "--full is a promotion's"),
        ("silence", &[][..], "a silence needs --alert NAME"),
        (
            "failover",
            &["--alert", "HighErrorRate"][..],
            "--alert and --region are a silence's",
        ),
    ] {
        let out = act_cli(&rig, id, verb, extra);
        assert!(!out.status.success(), "{verb} {extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{verb} {extra:?}: {err}");
    }
    assert!(
        rig.store.incident_actions(id).await.unwrap().is_empty(),
        "nothing was proposed"
    );

    let paused = act_cli(&rig, id, "pause", &["--json"]);
    let doc = outcome(&paused);
    assert_eq!(doc["action"]["kind"], "pause_rollout", "{doc}");
    assert_eq!(doc["action"]["state"], "succeeded", "{doc}");
    let verdict = doc["outcome"].as_str().unwrap();
    assert!(
        ["recovered", "not_recovered"].contains(&verdict),
        "the simulator sends metrics: {doc}"
    );
    assert_eq!(
        paused.status.code(),
        Some(if verdict == "recovered" { 0 } else { 1 }),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    let d = support::cluster::get(&rig.sim, "/v1/deployments/llm-assistant-serving").await;
    assert_eq!(d["rollout"]["paused"], true);
    // The preview and progress went to stderr, not into the document.
    assert!(String::from_utf8_lossy(&paused.stderr).contains("Pause the rollout"));

    let resumed = outcome(&act_cli(&rig, id, "resume", &["--json"]));
    assert_eq!(resumed["action"]["kind"], "resume_rollout", "{resumed}");
    assert_eq!(resumed["action"]["state"], "succeeded", "{resumed}");
    let aborted = act_cli(
        &rig,
        id,
        "abort",
        &["--json", "--confirm-service", "llm-assistant"],
    );
    let doc = outcome(&aborted);
    assert_eq!(doc["action"]["kind"], "abort_rollout", "{doc}");
    assert_eq!(
        doc["outcome"], "recovered",
        "the abort heals the service: {doc}"
    );
    assert!(aborted.status.success());

    let rolled = act_cli(
        &rig,
        id,
        "rollback",
        &[
            "--to-revision",
            "40",
            "--confirm-service",
            "llm-assistant",
            "--json",
        ],
    );
    let doc = outcome(&rolled);
    assert_eq!(doc["action"]["kind"], "rollback", "{doc}");
    assert_eq!(doc["action"]["to"], "40", "the revision chosen: {doc}");
    assert_eq!(doc["action"]["state"], "succeeded", "{doc}");

    // The incident's alert, silenced by its name.
    let mut alert = None;
    wait_for(Duration::from_secs(60), "the alert to fire", async || {
        for e in rig.store.timeline(id, None, 2000).await.unwrap() {
            if e.event_type.as_deref() == Some("alert.firing") {
                alert = rig.store.alert_of_entry(id, e.id).await.unwrap();
            }
        }
        alert.is_some()
    })
    .await;
    let alert = alert.unwrap();
    let unknown = act_cli(&rig, id, "silence", &["--alert", "NoSuchAlert"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no alert \"NoSuchAlert\" fired"));
    let before = rig.actions_at_sim().await;
    let silenced = act_cli(
        &rig,
        id,
        "silence",
        &["--alert", &alert.alert, "--for", "30m", "--json"],
    );
    let doc = outcome(&silenced);
    assert_eq!(doc["action"]["kind"], "silence", "{doc}");
    assert_eq!(doc["outcome"], "succeeded", "{doc}");
    assert!(silenced.status.success());
    assert!(
        doc["action"]["preview"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("for 0.5 h"),
        "{doc}"
    );
    assert_eq!(rig.actions_at_sim().await, before + 1);

    // The incident's own changes, as the window makes them.
    let change = |args: &[&str]| {
        let out = firebreak(rig.dir.path())
            .args(["incident", &id.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(change(&["ack"]).contains("acknowledged by"));
    change(&["note", "paged the model team"]);
    change(&["severity", "minor"]);
    change(&["command", "bo"]);
    let resolved: serde_json::Value =
        serde_json::from_str(&change(&["resolve", "--json"])).unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["severity"], "minor");
    assert_eq!(resolved["commander"], "bo");
    let notes: Vec<String> = rig
        .store
        .timeline(id, None, 5000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Note)
        .map(|e| e.body)
        .collect();
    assert_eq!(notes, ["paged the model team"]);
    let bad = firebreak(rig.dir.path())
        .args(["incident", &id.to_string(), "severity", "apocalyptic"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    rig.stop().await;
}
