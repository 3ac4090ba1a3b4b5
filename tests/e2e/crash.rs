//! kill -9 of `firebreak watch` during a high-rate ingest, again and again: nothing
//! committed is lost, nothing is stored twice, the file stays sound, and ingest resumes
//! from the committed cursor.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use firebreak_store::Store;
use support::cluster::{sim, TOKEN};

/// Kills per run; FIREBREAK_CRASH_ROUNDS raises it for a longer soak.
fn rounds() -> usize {
    std::env::var("FIREBREAK_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_ingest_loses_nothing_committed() {
    let s = sim("steady", 20.0, |o| {
        o.rate = 5_000;
        o.retain = 2_000_000;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let mut last_cursor = 0u64;
    // A fixed sequence of kill moments between 0.4 and 2.0 s: different points of a
    // batch's life, the same every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..rounds() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(400 + x % 1600);
        let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(["watch", "--cluster"])
            .arg(format!("sim={}", s.events_url()))
            .args([
                "--actions-url",
                &s.actions_url(),
                "--token-env",
                "FB_TEST_TOKEN",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("FB_TEST_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The moment counts from when it has started recording (its cluster is in the
        // store): on a loaded machine a debug build can take longer than the shortest
        // moment just to start, and a kill before that tests nothing.
        let url = format!("sqlite://{}?mode=ro", db.display());
        support::rig::wait_for(
            Duration::from_secs(60),
            "firebreak watch to start recording",
            async || {
                let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
                    return false;
                };
                let clusters: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM clusters")
                    .fetch_one(&pool)
                    .await;
                pool.close().await;
                matches!(clusters, Ok(n) if n > 0)
            },
        )
        .await;
        tokio::time::sleep(after).await;
        child.kill().unwrap(); // SIGKILL: no chance to flush or clean up
        child.wait().unwrap();

        let store = Store::open(&db).await.unwrap();
        assert_eq!(
            store.integrity_check().await.unwrap(),
            "ok",
            "round {round}: the file must survive kill -9"
        );
        let cluster = store.clusters().await.unwrap()[0].id;
        let cursor = store.cursor(cluster).await.unwrap();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT stream_sequence, event_id FROM events WHERE cluster_id = ? ORDER BY stream_sequence",
        )
        .bind(cluster)
        .fetch_all(&sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display())).await.unwrap())
        .await
        .unwrap();
        store.close().await;
        // The cursor is committed with the events it covers: exactly 1..=cursor is stored.
        assert_eq!(
            rows.len() as u64,
            cursor,
            "round {round}: events stored = cursor"
        );
        for (i, (seq, _)) in rows.iter().enumerate() {
            assert_eq!(
                *seq as u64,
                i as u64 + 1,
                "round {round}: no gap and no duplicate"
            );
        }
        let (first, frames) = s.sent();
        let sent: HashMap<u64, &str> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (first + i as u64, f.as_str()))
            .collect();
        for (seq, id) in rows.iter().step_by(97) {
            assert!(
                sent[&(*seq as u64)].contains(id.as_str()),
                "round {round}: sequence {seq} is the event sent"
            );
        }
        assert!(
            cursor >= last_cursor,
            "round {round}: the cursor never goes back"
        );
        last_cursor = cursor;
    }
    assert!(
        last_cursor > 1_000,
        "ingest made progress across restarts ({last_cursor})"
    );
    s.shutdown();
}
