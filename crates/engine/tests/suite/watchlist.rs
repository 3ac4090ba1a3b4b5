//! Managing watched clusters: the store, the OS keychain (a real Secret Service: CI runs the
//! tests in a D-Bus session with GNOME Keyring) and the live engine, against the simulator.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use support::rig::wait_for;

use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::ingest::sink::{ConsoleSink, Recorder, StreamState};
use firebreak_engine::ingest::Engine;
use firebreak_engine::watchlist::{TokenChange, Watchlist};
use firebreak_store::{NewCluster, Store};
use support::cluster::{sim, TOKEN};

fn last_state(recorder: &Recorder, cluster: i64) -> Option<StreamState> {
    recorder
        .statuses
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s.cluster_id == cluster)
        .map(|s| s.stream.clone())
}

async fn event_count(store: &Store, cluster: &str) -> i64 {
    let page = store
        .feed(
            &firebreak_store::feed::FeedFilter::default(),
            firebreak_store::feed::FeedPageRequest {
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    page.events.iter().filter(|e| e.cluster == cluster).count() as i64
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_added_with_a_token_is_watched_and_its_token_lives_only_in_the_keychain() {
    let s = sim("steady", 1.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let store = Store::open(&db).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn ConsoleSink> = recorder.clone();
    let engine = Arc::new(Engine::start(store.clone(), vec![], sink).await.unwrap());
    let watchlist = Watchlist::new(store.clone(), engine.clone());
    let new = NewCluster {
        ca_file: None,
        name: "prod-east".into(),
        events_url: s.events_url(),
        actions_url: s.actions_url(),
    };

    // Bad input is refused with what to fix, and nothing is added.
    let err = watchlist
        .add(
            &NewCluster {
                ca_file: None,
                events_url: "http://not-a-stream".into(),
                ..new.clone()
            },
            Some(TOKEN),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("ws:// or wss://"), "{err}");
    assert!(watchlist.list().await.unwrap().is_empty());

    let added = watchlist.add(&new, Some(TOKEN)).await.unwrap();
    assert!(added.has_token);
    let id = added.cluster.id;
    wait_for(
        Duration::from_secs(20),
        "events from the cluster",
        async || {
            event_count(&store, "prod-east").await > 0
                && matches!(last_state(&recorder, id), Some(StreamState::Live { .. }))
        },
    )
    .await;

    // The token is in the keychain under the cluster's account, and nowhere in the store.
    let account = store.cluster(id).await.unwrap().token_ref.unwrap();
    assert_eq!(
        firebreak_engine::secrets::load(&account)
            .await
            .unwrap()
            .as_deref(),
        Some(TOKEN)
    );
    for file in [db.clone(), dir.path().join("firebreak.db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !contains(&bytes, TOKEN),
            "{} holds the token",
            file.display()
        );
    }

    // A wrong token replaces the connection, which the cluster refuses.
    watchlist
        .update(id, &new, &TokenChange::Set("not-the-token".into()))
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), "the refusal", async || {
        matches!(last_state(&recorder, id), Some(StreamState::Failed { .. }))
    })
    .await;
    let Some(StreamState::Failed { reason }) = last_state(&recorder, id) else {
        unreachable!()
    };
    assert!(reason.contains("401"), "{reason}");

    // Removing stops watching and deletes the token; what was recorded stays.
    let recorded = event_count(&store, "prod-east").await;
    watchlist.remove(id).await.unwrap();
    assert!(watchlist.list().await.unwrap().is_empty());
    assert_eq!(
        firebreak_engine::secrets::load(&account).await.unwrap(),
        None
    );
    assert!(event_count(&store, "prod-east").await >= recorded);

    // The same name again is the same cluster: its history continues.
    let back = watchlist.add(&new, None).await.unwrap();
    assert_eq!(back.cluster.id, id);
    assert!(!back.has_token);
    let err = watchlist.add(&new, None).await.unwrap_err().to_string();
    assert!(err.contains("already watched"), "{err}");

    watchlist.remove(id).await.unwrap();
    drop(watchlist);
    Arc::into_inner(engine).unwrap().stop().await;
    s.shutdown();
}

/// Page script may call `update_cluster`: pointing a cluster at another host must not carry
/// its keychain token there, and no token ever travels in cleartext off this machine.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_never_follows_a_cluster_to_another_host_nor_goes_out_in_cleartext() {
    let s = sim("steady", 1.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    let sink: Arc<dyn ConsoleSink> = Arc::new(Recorder::default());
    let engine = Arc::new(Engine::start(store.clone(), vec![], sink).await.unwrap());
    let watchlist = Watchlist::new(store.clone(), engine.clone());
    let new = NewCluster {
        ca_file: None,
        name: "prod-east".into(),
        events_url: s.events_url(),
        actions_url: s.actions_url(),
    };

    // A token for a ws:// URL off this machine is refused, and nothing is added.
    let err = watchlist
        .add(
            &NewCluster {
                ca_file: None,
                events_url: "ws://cluster.example/v1/events".into(),
                actions_url: "https://cluster.example/v1".into(),
                ..new.clone()
            },
            Some(TOKEN),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cleartext to cluster.example"), "{err}");
    assert!(watchlist.list().await.unwrap().is_empty());

    let added = watchlist.add(&new, Some(TOKEN)).await.unwrap();
    assert!(added.has_token);
    let account = store
        .cluster(added.cluster.id)
        .await
        .unwrap()
        .token_ref
        .unwrap();

    // Same server, another path: the token stays.
    let same = NewCluster {
        ca_file: None,
        events_url: format!("{}?same-server", s.events_url()),
        ..new.clone()
    };
    let kept = watchlist
        .update(added.cluster.id, &same, &TokenChange::Keep)
        .await
        .unwrap();
    assert!(
        kept.has_token,
        "a change on the same server keeps the token"
    );

    // Another host, token not entered again: it is dropped, from the store and the keychain.
    let elsewhere = NewCluster {
        ca_file: None,
        events_url: "wss://attacker.example/v1/events".into(),
        actions_url: "https://attacker.example/v1".into(),
        ..new.clone()
    };
    let moved = watchlist
        .update(added.cluster.id, &elsewhere, &TokenChange::Keep)
        .await
        .unwrap();
    assert!(
        !moved.has_token,
        "the token must not follow the cluster to another host"
    );
    assert_eq!(
        firebreak_engine::secrets::load(&account).await.unwrap(),
        None,
        "and it is gone from the keychain"
    );

    // Entered again in the same change, to a TLS host: kept. To a cleartext host: refused.
    let again = watchlist
        .update(added.cluster.id, &new, &TokenChange::Set(TOKEN.into()))
        .await
        .unwrap();
    assert!(again.has_token);
    let err = watchlist
        .update(
            added.cluster.id,
            &NewCluster {
                ca_file: None,
                events_url: "ws://10.1.2.3/v1/events".into(),
                actions_url: "http://10.1.2.3/v1".into(),
                ..new.clone()
            },
            &TokenChange::Set(TOKEN.into()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cleartext"), "{err}");
    engine.stop().await;
}
