//! The rollout guard against the simulator's bad model rollout, over real sockets: *pause
//! on fail* stops it at wave 1 through the desk with every step on the timeline and in
//! the audit log, once (a second look and a restart take nothing more); *propose* leaves
//! the pause for a person with the evidence in its preview; read-only mode wins; a good
//! rollout is never paused; a rollout without figures by revision is never judged.

use std::time::Duration;

use firebreak_engine::actions::guard::{Guard, Took, GUARD_ACTOR};
use firebreak_engine::actions::ActionSettings;
use firebreak_protocol::actions::ActionKind;
use firebreak_store::actions::ActionState;
use firebreak_store::guards::GuardMode;
use firebreak_store::incident::EntryKind;
use firebreak_store::Store;

use crate::support;
use support::desk::{has, quick, Rig};

const SERVICE: &str = "llm-assistant";

/// The bad rollout in eight slow waves (a wave a minute of simulated time), so that there
/// is time to pause it before wave 2.
async fn rig(settings: ActionSettings, bad: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(support::cluster::slow_bad_rollout(dir.path(), 8))
        .unwrap()
        .replace("bad = true", &format!("bad = {bad}"));
    let path = dir.path().join("rollout.toml");
    std::fs::write(&path, text).unwrap();
    let rig = Rig::start(&path.display().to_string(), settings, |_| {}).await;
    drop(dir);
    rig
}

/// Looks until the guard takes something, failing after `limit`.
async fn first_take(guard: &Guard, limit: Duration) -> Took {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let took = guard.look().await.unwrap();
        if let Some(t) = took.into_iter().next() {
            return t;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the guard took nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set(rig: &Rig, mode: GuardMode) {
    rig.store
        .set_rollout_guard(
            rig.cluster,
            SERVICE,
            mode,
            "ana",
            "canaries of this model fail fast",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_on_fail_stops_the_bad_model_rollout_at_wave_1_once_with_every_step_recorded() {
    let rig = rig(quick(), true).await;
    set(&rig, GuardMode::PauseOnFail).await;
    let guard = Guard::new(rig.desk.clone());
    let Took::Paused { service, action } = first_take(&guard, Duration::from_secs(60)).await else {
        panic!("the guard did not pause")
    };
    assert_eq!(service, SERVICE);
    let paused = rig.settled(&action).await;
    assert_eq!(paused.state, ActionState::Succeeded, "{paused:?}");
    assert_eq!(paused.kind, ActionKind::PauseRollout);
    assert_eq!(paused.proposed_by, GUARD_ACTOR);
    assert_eq!(paused.confirmed_by.as_deref(), Some(GUARD_ACTOR));
    let reason = paused.reason.clone().unwrap();
    assert!(
        reason.starts_with("Revision 42 fails ") && reason.contains("approved by ana at"),
        "{reason}"
    );
    assert!(
        paused.preview.summary.ends_with("at wave 1 of 8"),
        "paused at wave 1: {}",
        paused.preview.summary
    );
    assert!(
        paused.preview.evidence[0].starts_with("Canary verdict at wave 1 of 8: Revision 42 fails"),
        "{:?}",
        paused.preview.evidence
    );
    // The cluster stopped: paused, at wave 1.
    let d = support::cluster::get(&rig.sim, "/v1/deployments/llm-assistant-serving").await;
    assert_eq!(d["rollout"]["paused"], true, "{d}");
    assert_eq!(d["rollout"]["wave"], 1, "{d}");

    // The timeline: the verdict with the policy and who approved it, then the desk's steps.
    let incident = rig.store.incident(paused.incident_id).await.unwrap();
    let entries = rig.store.timeline(incident.id, None, 1000).await.unwrap();
    let verdict = entries
        .iter()
        .find(|e| e.kind == EntryKind::Verdict)
        .expect("the verdict on the timeline");
    assert!(
        verdict.body.contains("Revision 42 fails")
            && verdict
                .body
                .contains("Rollout guard of llm-assistant: pause on fail, approved by ana at")
            && verdict.body.contains("canaries of this model fail fast"),
        "{}",
        verdict.body
    );
    let steps = rig.steps(incident.id).await;
    for step in [
        "Proposed:",
        "Confirmed by rollout guard",
        "Sent to the cluster",
        "Succeeded: Pause",
    ] {
        assert!(has(&steps, step), "no {step:?} in {steps:#?}");
    }
    // The audit log: the policy with who approved it, and every step of the pause.
    let policy = rig
        .store
        .audit_records(Some("guard/sim/llm-assistant"))
        .await
        .unwrap();
    assert_eq!(policy.len(), 1, "{policy:?}");
    assert_eq!(policy[0].actor, "ana");
    assert!(policy[0].detail.contains("pause_on_fail"), "{policy:?}");
    let steps = rig
        .store
        .audit_records(Some(&format!("action/{action}")))
        .await
        .unwrap();
    assert!(
        steps.iter().any(|r| r.actor == GUARD_ACTOR),
        "the guard's confirmation is audited: {steps:?}"
    );
    assert!(steps.len() >= 4, "{steps:?}");

    // Once per rollout: another look, and a restarted console on the same store, take
    // nothing more.
    assert_eq!(guard.look().await.unwrap(), Vec::new());
    let again = Guard::new(rig.desk.clone());
    assert_eq!(again.look().await.unwrap(), Vec::new());
    let pauses = rig
        .store
        .incident_actions(incident.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == ActionKind::PauseRollout)
        .count();
    assert_eq!(pauses, 1);
    assert_eq!(rig.actions_at_sim().await, 1, "the cluster acted once");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn propose_leaves_the_pause_to_a_person_with_the_evidence_in_its_preview() {
    let rig = rig(quick(), true).await;
    set(&rig, GuardMode::Propose).await;
    let guard = Guard::new(rig.desk.clone());
    let Took::Proposed { action, .. } = first_take(&guard, Duration::from_secs(60)).await else {
        panic!("the guard did not propose")
    };
    let proposal = rig.store.action(&action).await.unwrap();
    assert_eq!(proposal.state, ActionState::Proposed);
    let evidence = proposal.preview.evidence.join("\n");
    for part in [
        "Canary verdict at wave 1 of 8: Revision 42 fails",
        "Errors: ",
        "interval [",
        "p99: ",
        "each look needs p < ",
    ] {
        assert!(evidence.contains(part), "no {part:?} in {evidence}");
    }
    assert!(guard.look().await.unwrap().is_empty(), "proposed once");
    assert_eq!(rig.actions_at_sim().await, 0, "nothing was sent");
    // A person confirms it as any proposal.
    rig.desk
        .confirm(&action, "bo", "the verdict is clear", None)
        .await
        .unwrap();
    assert_eq!(rig.settled(&action).await.state, ActionState::Succeeded);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_mode_wins_over_pause_on_fail_and_says_so_on_the_timeline() {
    let rig = rig(
        ActionSettings {
            read_only: true,
            ..quick()
        },
        true,
    )
    .await;
    set(&rig, GuardMode::PauseOnFail).await;
    let guard = Guard::new(rig.desk.clone());
    let took = first_take(&guard, Duration::from_secs(60)).await;
    assert_eq!(
        took,
        Took::NotPaused {
            service: SERVICE.into(),
            why: "read-only mode is on (Settings)".into()
        }
    );
    let incident = rig.incident(SERVICE).await;
    let bodies: Vec<String> = rig
        .store
        .timeline(incident.id, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Verdict)
        .map(|e| e.body)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("Rollout guard: not paused: read-only mode is on")),
        "{bodies:#?}"
    );
    assert!(rig
        .store
        .incident_actions(incident.id)
        .await
        .unwrap()
        .is_empty());
    assert!(guard.look().await.unwrap().is_empty(), "said once");
    assert_eq!(rig.actions_at_sim().await, 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_rollout_is_never_paused() {
    let rig = rig(quick(), false).await;
    set(&rig, GuardMode::PauseOnFail).await;
    let guard = Guard::new(rig.desk.clone());
    // Three waves land (a wave every six seconds at ten times real speed).
    support::rig::wait_for(Duration::from_secs(60), "wave 3", async || {
        assert!(
            guard.look().await.unwrap().is_empty(),
            "a good rollout was acted on"
        );
        let d = support::cluster::get(&rig.sim, "/v1/deployments/llm-assistant-serving").await;
        d["rollout"]["wave"].as_u64().unwrap_or(0) >= 3
    })
    .await;
    assert!(rig
        .store
        .guard_decisions(rig.cluster, SERVICE)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(rig.actions_at_sim().await, 0);
    rig.stop().await;
}

/// A cluster that sends no figures by revision (an older gateway): the rollout has no
/// verdict, and the guard never pauses on what it cannot judge.
#[tokio::test]
async fn a_rollout_without_figures_by_revision_is_never_judged_or_paused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    let cluster = support::events::unreachable_cluster(&store, "quiet").await;
    let mut events = vec![support::events::event_at(
        1,
        "rollout.started",
        1,
        "chat",
        serde_json::json!({"service": "chat", "deployment": "chat", "from_revision": 6,
            "to_revision": 7, "model_version": "chat-v7", "waves": 4, "nodes_total": 16}),
    )];
    for wave in 1..=2u32 {
        events.push(support::events::event_at(
            u64::from(wave) + 1,
            "rollout.wave_progressed",
            10 * wave,
            "chat",
            serde_json::json!({"service": "chat", "deployment": "chat", "to_revision": 7,
                "wave": wave, "waves": 4, "nodes_updated": 4 * wave, "nodes_total": 16}),
        ));
    }
    crate::recording::record_in_one_batch(&store, cluster.id, events, 3).await;
    store
        .set_rollout_guard(
            cluster.id,
            "chat",
            GuardMode::PauseOnFail,
            "ana",
            "fail fast",
        )
        .await
        .unwrap();
    let verdicts = firebreak_engine::canary::rollout_verdicts(&store, cluster.id, "chat")
        .await
        .unwrap()
        .unwrap();
    assert!(
        verdicts.no_data && verdicts.first_fail.is_none(),
        "{verdicts:?}"
    );
    let desk = firebreak_engine::actions::ActionDesk::new(
        store.clone(),
        firebreak_engine::actions::Tokens::default(),
        std::sync::Arc::new(firebreak_engine::ingest::sink::StatusBoard::default()),
        std::sync::Arc::new(firebreak_engine::ingest::sink::Recorder::default()),
    );
    assert!(Guard::new(desk).look().await.unwrap().is_empty());
    assert!(store
        .guard_decisions(cluster.id, "chat")
        .await
        .unwrap()
        .is_empty());
    assert!(store.incidents().await.unwrap().is_empty());
    store.close().await;
}
