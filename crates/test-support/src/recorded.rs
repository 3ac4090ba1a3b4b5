//! An incident recorded off the simulator with hostile text in it, for the suites that
//! report on one (reports' own and the command line's exports).

use std::time::Duration;

use firebreak_engine::actions::ActionSettings;
use firebreak_protocol::actions::ActionKind;
use firebreak_store::incident::{IncidentStatus, Severity};
use firebreak_store::Store;

use crate::rig::Live;

/// Text an attacker could get into an event, a note or a title.
pub const HOSTILE: &str =
    "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> \
     [click](javascript:window.__pwned=3) </td></tr></table><b>bold</b> ' \" & | * _ \
     nul\u{0}byte esc\u{1b}[31m bell\u{7} del\u{7f}";

/// The bad-model-rollout incident, rolled back and verified, with a hostile note, then
/// resolved; the store is left at `db`.
pub async fn recorded_incident(db: &std::path::Path) -> (Store, i64) {
    let sim = crate::cluster::sim("bad-model-rollout", 10.0, |_| {}).await;
    let settings = ActionSettings {
        grace_s: 0,
        verify_window_s: 4,
        ..Default::default()
    };
    let Live {
        store,
        engine,
        desk,
        ..
    } = crate::rig::live(db, &sim, settings).await;
    let incident = crate::rig::incident_where(&store, "a critical incident", |i| {
        i.severity == Severity::Critical
    })
    .await
    .id;
    store
        .change_status(incident, IncidentStatus::Acknowledged, "ana")
        .await
        .unwrap();
    store.add_note(incident, HOSTILE, "ana").await.unwrap();
    let proposal = desk
        .propose(incident, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    desk.confirm(&proposal.id, "ana", HOSTILE, Some("llm-assistant"))
        .await
        .unwrap();
    crate::rig::wait_for(Duration::from_secs(60), "the verification", async || {
        store
            .action(&proposal.id)
            .await
            .unwrap()
            .verification
            .is_some()
    })
    .await;
    store
        .change_status(incident, IncidentStatus::Mitigated, "ana")
        .await
        .unwrap();
    store
        .change_status(incident, IncidentStatus::Resolved, "ana")
        .await
        .unwrap();
    engine.stop().await;
    sim.shutdown();
    (store, incident)
}
