//! Objectives on a live console: a service with objectives has its budget burn on its
//! incident (opened by the burn when nothing else opened one first), each condition said
//! once per burn, and the fixed error-rate rule stays out of it.

use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::actions::ActionSettings;
use firebreak_engine::ingest::sink::Recorder;
use firebreak_engine::slo::{Objective, Watch};
use firebreak_store::{NewCluster, Store};

use crate::support;

#[tokio::test(flavor = "multi_thread")]
async fn a_service_with_objectives_is_judged_on_its_burn_rate_not_the_fixed_rule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let sim = support::cluster::sim("bad-model-rollout", 20.0, |_| {}).await;
    // The objectives are set before the console records anything.
    let store = Store::open(&db).await.unwrap();
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: "sim".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await
        .unwrap();
    let objective = Objective {
        availability: 0.995,
        latency_p99_ms: None,
        latency_target: 0.99,
    };
    store
        .set_objective(cluster.id, "llm-assistant", Some(objective), "ana")
        .await
        .unwrap();
    store.close().await;
    let live = support::rig::live(&db, &sim, ActionSettings::default()).await;
    let watch = Watch::new(live.store.clone(), Arc::new(Recorder::default()));
    let mut opened = Vec::new();
    support::rig::wait_for(
        Duration::from_secs(60),
        "a burn-rate incident",
        async || {
            opened.extend(watch.look().await.unwrap());
            !opened.is_empty()
        },
    )
    .await;
    // More looks while it burns: each condition is said once.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        watch.look().await.unwrap();
    }
    let incident = live.store.incident(opened[0]).await.unwrap();
    assert_eq!(incident.service.as_deref(), Some("llm-assistant"));
    let bodies: Vec<String> = live
        .store
        .timeline(incident.id, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .collect();
    let burns: Vec<&String> = bodies
        .iter()
        .filter(|b| b.starts_with("Error budget burn: availability: "))
        .collect();
    assert!(!burns.is_empty(), "{bodies:#?}");
    for window in ["over 1h and", "over 6h and"] {
        assert!(
            burns.iter().filter(|b| b.contains(window)).count() <= 1,
            "said once per burn: {burns:#?}"
        );
    }
    assert!(
        !bodies
            .iter()
            .any(|b| b.contains("(SLO 5%)") || b.contains("rule slo:error_rate")),
        "the fixed rule stayed out: {bodies:#?}"
    );
    let audit = live
        .store
        .audit_records(Some("objective/sim/llm-assistant"))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "ana");
    live.engine.stop().await;
    sim.shutdown();
}
