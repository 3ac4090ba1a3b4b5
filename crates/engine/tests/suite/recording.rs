//! Recording into a real SQLite store through the engine's batches: a repeated event is
//! stored once, a batch that did not commit leaves the rules as they were, and the
//! write-ahead log is checkpointed while recording.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use firebreak_store::Store;
use firebreak_test_support::events::{alert, event_at, metrics_event, raw, unreachable_cluster};

fn db_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("firebreak.db")
}

#[tokio::test]
async fn repeated_events_are_stored_once_and_each_stored_event_keeps_its_own_row() {
    use firebreak_store::ingest::Item;
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).await.unwrap();
    let cluster = unreachable_cluster(&store, "dup").await;
    let mut rules = firebreak_engine::ingest::rules::Rules::default();
    let batch = |events| {
        vec![Item::Events {
            cluster_id: cluster.id,
            events,
            last_sequence: 3,
        }]
    };

    // A repeat inside one statement, then a batch with one old and one new event.
    let first = firebreak_engine::ingest::record_batch(
        &store,
        &batch(vec![
            alert("a", 1, "svc-a"),
            alert("a", 1, "svc-a"),
            alert("b", 2, "svc-b"),
        ]),
        &mut rules,
    )
    .await
    .unwrap();
    assert_eq!((first.events, first.duplicates), (2, 1));
    let second = firebreak_engine::ingest::record_batch(
        &store,
        &batch(vec![alert("b", 2, "svc-b"), alert("c", 3, "svc-c")]),
        &mut rules,
    )
    .await
    .unwrap();
    assert_eq!((second.events, second.duplicates), (1, 1));

    // Each service's incident was opened by its own event: the engine's seq for each row
    // points at the event with that service.
    let mut conn = raw(&path).await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT i.service, e.event_id FROM incidents i \
         JOIN timeline_entries t ON t.incident_id = i.id AND t.event_seq IS NOT NULL \
         JOIN events e ON e.seq = t.event_seq ORDER BY i.service",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("svc-a".to_string(), "a".to_string()),
            ("svc-b".to_string(), "b".to_string()),
            ("svc-c".to_string(), "c".to_string()),
        ]
    );
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

/// The incident rules' memory (SLO burn counters, anomaly baselines) changes only with a
/// batch that committed: a refused batch leaves it as it was, so the retry decides the
/// same way and no counter runs ahead of what the store holds.
#[tokio::test]
async fn a_batch_that_did_not_commit_leaves_the_rules_as_they_were() {
    use firebreak_store::ingest::Item;
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).await.unwrap();
    let cluster = unreachable_cluster(&store, "rules").await;
    let metrics = |seq: u64| metrics_event(seq, "rules", 0.3);
    let batch = |seqs: std::ops::RangeInclusive<u64>| {
        vec![Item::Events {
            cluster_id: cluster.id,
            last_sequence: *seqs.end(),
            events: seqs.map(metrics).collect(),
        }]
    };
    {
        let mut conn = raw(&path).await;
        sqlx::query(
            "CREATE TRIGGER refuse_all BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let mut rules = firebreak_engine::ingest::rules::Rules::default();
    assert!(
        firebreak_engine::ingest::record_batch(&store, &batch(1..=2), &mut rules)
            .await
            .is_err()
    );
    assert_eq!(rules.tracked(), 0, "the refused batch left no rule state");
    {
        let mut conn = raw(&path).await;
        sqlx::query("DROP TRIGGER refuse_all")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // Had the refused samples counted, the SLO burn (three samples over 5 %) would open
    // the incident at the first of these; it opens at the third.
    let first = firebreak_engine::ingest::record_batch(&store, &batch(1..=2), &mut rules)
        .await
        .unwrap();
    assert!(
        first.opened.is_empty(),
        "two burning samples are not yet an incident"
    );
    let third = firebreak_engine::ingest::record_batch(&store, &batch(3..=3), &mut rules)
        .await
        .unwrap();
    assert_eq!(
        third.opened.len(),
        1,
        "the third burning sample opens the incident"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_write_ahead_log_is_checkpointed_while_recording_and_removed_on_close() {
    // The writer never checkpoints itself (store/checkpoint.rs does, on its own
    // connection): if that stopped, the log would grow by everything ever recorded.
    use firebreak_store::ingest::{Incoming, Item};
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    let store = Store::open(&path).await.unwrap();
    let cluster = unreachable_cluster(&store, "wal").await;
    let metrics = |seq: u64| metrics_event(seq, "wal", 0.001);
    const BATCHES: u64 = 40;
    const PER_BATCH: u64 = 2_000;
    let mut rules = firebreak_engine::ingest::rules::Rules::default();
    let mut recorded_bytes = 0u64;
    for b in 0..BATCHES {
        let events: Vec<Incoming> = (b * PER_BATCH + 1..=(b + 1) * PER_BATCH)
            .map(metrics)
            .collect();
        recorded_bytes += events.iter().map(|e| e.raw.len() as u64).sum::<u64>();
        let items = [Item::Events {
            cluster_id: cluster.id,
            last_sequence: (b + 1) * PER_BATCH,
            events,
        }];
        firebreak_engine::ingest::record_batch(&store, &items, &mut rules)
            .await
            .unwrap();
        // A moment between batches for the checkpoint each commit asks for.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let wal_bytes = std::fs::metadata(&wal).unwrap().len();
    assert!(
        wal_bytes < recorded_bytes / 4,
        "the log holds {wal_bytes} bytes after {recorded_bytes} bytes of events"
    );

    // Closed, the log is folded into the database file and removed; nothing is missing.
    store.close().await;
    assert!(!wal.exists(), "the write-ahead log outlived the store");
    let store = Store::open(&path).await.unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
        .fetch_one(&mut raw(&path).await)
        .await
        .unwrap();
    assert_eq!(count as u64, BATCHES * PER_BATCH);
    store.close().await;
}

/// Records `events` as one batch from the connection, through fresh incident rules.
pub(crate) async fn record_in_one_batch(
    store: &Store,
    cluster_id: i64,
    events: Vec<firebreak_store::ingest::Incoming>,
    last_sequence: u64,
) {
    let mut rules = firebreak_engine::ingest::rules::Rules::default();
    firebreak_engine::ingest::record_batch(
        store,
        &[firebreak_store::ingest::Item::Events {
            cluster_id,
            events,
            last_sequence,
        }],
        &mut rules,
    )
    .await
    .unwrap();
}

/// A gateway starting while Prometheus has no data yet says its queries give nothing, then
/// that they do: that is not the incident's story. An incident opened afterwards shows
/// what led up to it (a rollout) but not those monitoring events; what monitoring says
/// while it is open does attach. An alert whose rule gives no value or threshold says
/// nothing about them.
#[tokio::test]
async fn monitoring_noise_before_an_incident_stays_off_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let cluster = unreachable_cluster(&store, "quiet").await;
    let degraded = |degraded: bool| {
        serde_json::json!({"source": "prometheus", "service": "chat", "region": "us-east and eu-west",
            "what": "6 figures", "reason": if degraded { "the query returned nothing" } else { "" },
            "degraded": degraded})
    };
    let events = vec![
        event_at(1, "source.degraded", 1, "chat", degraded(true)),
        event_at(2, "source.degraded", 2, "chat", degraded(false)),
        event_at(
            3,
            "rollout.started",
            3,
            "chat",
            serde_json::json!({"service": "chat", "deployment": "chat", "from_revision": 6,
                "to_revision": 7, "model_version": "chat-v7", "waves": 4, "nodes_total": 16}),
        ),
        event_at(
            4,
            "alert.firing",
            4,
            "chat",
            serde_json::json!({"alert": "ChatErrors", "service": "chat", "region": "us-east",
                "severity": "critical", "summary": "chat errors above 5%"}),
        ),
        event_at(5, "source.degraded", 5, "chat", degraded(true)),
    ];
    record_in_one_batch(&store, cluster.id, events, 5).await;
    let incident = store.incidents().await.unwrap().remove(0);
    let bodies: Vec<String> = store
        .timeline(incident.id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.body)
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("Rollout started: chat")),
        "{bodies:#?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b == "Alert ChatErrors firing (critical): chat errors above 5%"),
        "no made-up value or threshold: {bodies:#?}"
    );
    let monitoring: Vec<&String> = bodies
        .iter()
        .filter(|b| b.starts_with("Monitoring"))
        .collect();
    assert_eq!(
        monitoring,
        ["Monitoring degraded: Prometheus cannot give 6 figures for chat in us-east and eu-west: the query returned nothing"],
        "only what monitoring said while the incident was open"
    );
}
