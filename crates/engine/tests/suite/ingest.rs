//! Live ingest against the simulator over real sockets into a real SQLite file.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use support::rig::wait_for;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_engine::ingest::sink::{ConsoleSink, Recorder, StreamState};
use firebreak_engine::ingest::{Engine, Target};
use firebreak_sim::{Faults, RunningSim};
use firebreak_store::incident::{EntryKind, NewIncident, Severity};
use firebreak_store::{NewCluster, Store};
use support::cluster::{sim, TOKEN};

async fn store_and_cluster(dir: &tempfile::TempDir, s: &RunningSim) -> (Store, i64) {
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: "sim".into(),
            events_url: s.events_url(),
            actions_url: s.actions_url(),
        })
        .await
        .unwrap();
    (store, cluster.id)
}

fn target(s: &RunningSim, id: i64, token: &str) -> Target {
    Target {
        cluster_id: id,
        name: "sim".into(),
        events_url: s.events_url(),
        token: Some(token.into()),
        ca_file: None,
    }
}

/// Starts the engine on the simulator's stream, recording what it reports.
async fn watch(
    store: &Store,
    s: &RunningSim,
    cluster: i64,
    token: &str,
) -> (Engine, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn ConsoleSink> = recorder.clone();
    let engine = Engine::start(store.clone(), vec![target(s, cluster, token)], sink)
        .await
        .unwrap();
    (engine, recorder)
}

/// (stream_sequence, event id) of every stored event of a cluster, in sequence order.
async fn stored(path: &std::path::Path, cluster: i64) -> Vec<(u64, String)> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT stream_sequence, event_id FROM events WHERE cluster_id = ? ORDER BY stream_sequence")
            .bind(cluster)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|(s, id)| (s as u64, id)).collect()
}

/// What the simulator sent: sequence → id, from its own journal.
fn sent_ids(s: &RunningSim) -> HashMap<u64, String> {
    let (first, frames) = s.sent();
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            (first + i as u64, v["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_lose_nothing_duplicate_nothing_and_quarantine_every_malformed_frame() {
    let s = sim("steady", 20.0, |o| {
        o.rate = 4_000;
        o.faults =
            Faults::parse("drop_every=2500,duplicate=0.02,reorder=0.02,malformed=0.01").unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (store, cluster) = store_and_cluster(&dir, &s).await;
    let (engine, recorder) = watch(&store, &s, cluster, TOKEN).await;

    wait_for(Duration::from_secs(90), "20,000 events", async || {
        store.cursor(cluster).await.unwrap() >= 20_000
    })
    .await;
    s.pause();
    let head = s.sent_bounds().0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.cursor(cluster).await.unwrap() < head {
        if Instant::now() > deadline {
            let cursor = store.cursor(cluster).await.unwrap();
            let statuses = recorder.statuses.lock().unwrap().clone();
            let last = &statuses[statuses.len().saturating_sub(5)..];
            panic!(
                "the engine did not catch up: cursor {cursor} of head {head}; last states {last:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;

    let got = stored(&dir.path().join("firebreak.db"), cluster).await;
    let sent = sent_ids(&s);
    // Every sequence the simulator sent is stored exactly once, with the id it was sent with.
    assert_eq!(
        got.len() as u64,
        head,
        "one row per sequence, none lost, none twice"
    );
    for (i, (seq, id)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "sequences are contiguous from 1");
        assert_eq!(
            Some(id),
            sent.get(seq),
            "sequence {seq} carries the event that was sent"
        );
    }
    // Every malformed frame is kept in quarantine with a reason, none silently dropped.
    let quarantined: u32 = recorder
        .batches
        .lock()
        .unwrap()
        .iter()
        .map(|b| b.quarantined)
        .sum();
    assert!(s.malformed_sent() > 10, "the fault knob must have fired");
    assert_eq!(
        quarantined as u64,
        s.malformed_sent(),
        "every malformed frame is quarantined"
    );
    let reconnects = recorder
        .statuses
        .lock()
        .unwrap()
        .iter()
        .filter(|st| matches!(st.stream, StreamState::Reconnecting { .. }))
        .count();
    assert!(
        reconnects >= 5,
        "drop_every must have forced reconnects ({reconnects})"
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_model_rollout_opens_one_incident_with_the_story_on_its_timeline() {
    let s = sim("bad-model-rollout", 20.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (store, cluster) = store_and_cluster(&dir, &s).await;
    let (engine, _) = watch(&store, &s, cluster, TOKEN).await;

    wait_for(
        Duration::from_secs(60),
        "HighErrorRate on the timeline",
        async || {
            let Some(i) = store.incidents().await.unwrap().into_iter().next() else {
                return false;
            };
            let t = store.timeline(i.id, None, 1000).await.unwrap();
            t.iter().any(|e| e.body.contains("HighErrorRate firing"))
        },
    )
    .await;
    // Later signals about the same service attach; they never open a second incident.
    tokio::time::sleep(Duration::from_secs(2)).await;
    engine.stop().await;
    let incidents = store.incidents().await.unwrap();
    assert_eq!(
        incidents.len(),
        1,
        "one incident per service: {incidents:#?}"
    );
    let incident = &incidents[0];
    assert_eq!(incident.service.as_deref(), Some("llm-assistant"));
    assert_eq!(incident.severity, Severity::Critical);

    let timeline = store.timeline(incident.id, None, 1000).await.unwrap();
    let position = |needle: &str| timeline.iter().position(|e| e.body.contains(needle));
    let rollout =
        position("Rollout started").expect("the rollout that began it is on the timeline");
    let anomaly = timeline
        .iter()
        .position(|e| e.kind == EntryKind::Anomaly)
        .expect("an anomaly entry");
    let alert = position("HighErrorRate firing").expect("the alert is on the timeline");
    // The story in order: the rollout, then the detector's early warning, then the alert.
    assert!(
        rollout < anomaly && anomaly < alert,
        "order: rollout {rollout}, anomaly {anomaly}, alert {alert}"
    );
    assert!(
        timeline
            .windows(2)
            .all(|w| (w[0].at_ms, w[0].id) < (w[1].at_ms, w[1].id)),
        "time order"
    );
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gap_the_server_cannot_fill_is_recorded_on_open_incidents() {
    let s = sim("steady", 1.0, |o| {
        o.rate = 3_000;
        o.retain = 1_000;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (store, cluster) = store_and_cluster(&dir, &s).await;
    let incident = store
        .open_incident(
            &NewIncident {
                title: "watching".into(),
                severity: Severity::Minor,
                service: Some("search-ranking".into()),
                cluster_id: Some(cluster),
            },
            "ana",
        )
        .await
        .unwrap();
    // The console starts after the simulator has dropped its first events.
    while s.sent_bounds().1 < 5_000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (engine, _) = watch(&store, &s, cluster, TOKEN).await;
    wait_for(Duration::from_secs(30), "the gap entry", async || {
        store
            .timeline(incident.id, None, 100)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == EntryKind::Gap)
    })
    .await;
    engine.stop().await;
    let gap = store
        .timeline(incident.id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == EntryKind::Gap)
        .unwrap();
    assert!(
        gap.body.starts_with("Stream gap: events 1–"),
        "the entry names the range: {}",
        gap.body
    );
    let first_stored = stored(&dir.path().join("firebreak.db"), cluster).await[0].0;
    assert!(
        first_stored > 5_000,
        "ingest resumed at the first retained sequence"
    );
    // The diagnostics view lists the same range.
    let diagnostics = store.diagnostics().await.unwrap();
    let listed = &diagnostics.gaps[0];
    assert_eq!(
        (
            listed.cluster.as_str(),
            listed.from_sequence,
            listed.to_sequence + 1
        ),
        ("sim", 1, first_stored as i64),
        "{diagnostics:?}"
    );
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_fails_with_the_reason_and_stops_retrying() {
    let s = sim("steady", 1.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (store, cluster) = store_and_cluster(&dir, &s).await;
    let (engine, recorder) = watch(&store, &s, cluster, "wrong").await;
    wait_for(Duration::from_secs(10), "the failed state", async || {
        recorder
            .statuses
            .lock()
            .unwrap()
            .iter()
            .any(|st| matches!(st.stream, StreamState::Failed { .. }))
    })
    .await;
    let statuses = recorder.statuses.lock().unwrap().clone();
    let StreamState::Failed { reason } = &statuses.last().unwrap().stream else {
        panic!("ends failed: {statuses:?}")
    };
    assert!(
        reason.contains("401"),
        "the reason names the refusal: {reason}"
    );
    assert!(
        !statuses
            .iter()
            .any(|st| matches!(st.stream, StreamState::Reconnecting { .. })),
        "a wrong token is not retried in a loop"
    );
    engine.stop().await;
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn wss_urls_go_through_tls() {
    firebreak_common::process::install_tls_provider();
    // A listener that is not a TLS server: the handshake must be attempted and fail
    // there, not be refused because TLS is missing from the build.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = socket.write_all(b"HTTP/1.1 400 not tls\r\n\r\n").await;
        }
    });
    let err = tokio_tungstenite::connect_async(format!("wss://127.0.0.1:{port}/v1/events"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("TLS support not compiled in"),
        "wss must be supported: {text}"
    );
    assert!(
        matches!(
            err,
            tokio_tungstenite::tungstenite::Error::Tls(_)
                | tokio_tungstenite::tungstenite::Error::Io(_)
        ),
        "{err:?}"
    );
}
