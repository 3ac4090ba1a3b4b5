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

/// The budget left is counted from what was recorded, in SQLite: the requests each
/// primary-region sample stands for and their failures against the availability budget,
/// the slow samples against the latency one.
#[tokio::test]
async fn the_budget_left_is_what_the_recorded_samples_leave_of_each_objective() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    let cluster = support::events::unreachable_cluster(&store, "budget").await;
    // Two samples (900 requests/s for 5 s each, p99 1,200 ms): 0.2 % and 0.4 % errors.
    let events = vec![
        support::events::metrics_event(1, "budget", 0.002),
        support::events::metrics_event(2, "budget", 0.004),
    ];
    crate::recording::record_in_one_batch(&store, cluster.id, events, 2).await;
    let objective = Objective {
        availability: 0.995,
        latency_p99_ms: Some(1000.0),
        latency_target: 0.99,
    };
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T03:00:37Z")
        .unwrap()
        .timestamp_millis();
    let b = store
        .budget(cluster.id, "llm-assistant", &objective, at)
        .await
        .unwrap();
    // 0.3 % of a 0.5 % budget spent: 40 % left; every slice slow against a 1 % budget.
    assert!((b.availability_left.unwrap() - 0.4).abs() < 1e-9, "{b:?}");
    assert!((b.latency_left.unwrap() + 99.0).abs() < 1e-9, "{b:?}");
    // Nothing recorded in the period: nothing to say.
    let none = store
        .budget(
            cluster.id,
            "llm-assistant",
            &objective,
            at - 40 * 24 * 3600 * 1000,
        )
        .await
        .unwrap();
    assert_eq!((none.availability_left, none.latency_left), (None, None));
    // The console counts it for the board once the service has objectives.
    store
        .set_objective(cluster.id, "llm-assistant", Some(objective), "ana")
        .await
        .unwrap();
    let watch = Watch::new(store.clone(), Arc::new(Recorder::default()));
    assert!(watch.budget(cluster.id, "llm-assistant").is_none());
    watch.count_budgets(true).await.unwrap();
    // Counted as of now, past the samples' time but within 30 days of it.
    assert!(watch.budget(cluster.id, "llm-assistant").is_some());
    store.close().await;
}
