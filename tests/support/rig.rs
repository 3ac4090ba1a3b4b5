//! A console recording a simulator live: a store, the ingest engine and an action desk
//! that holds the simulator's token. Actions, runbooks and reports tests start from it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak::actions::{ActionDesk, ActionSettings, Tokens};
use firebreak::ingest::sink::{ConsoleSink, Recorder, StatusBoard, Tee};
use firebreak::ingest::{Engine, Target};
use firebreak::sim::RunningSim;
use firebreak::store::{NewCluster, Store};

use super::cluster::TOKEN;

pub struct Live {
    pub store: Store,
    pub engine: Engine,
    pub desk: Arc<ActionDesk>,
    pub cluster: i64,
}

/// Opens (or reopens) the store at `db` with `settings`, and records `sim` into it as
/// cluster "sim".
pub async fn live(db: &Path, sim: &RunningSim, settings: ActionSettings) -> Live {
    let store = Store::open(db).await.unwrap();
    settings.save(&store).await.unwrap();
    let cluster = store
        .ensure_cluster(&NewCluster {
            name: "sim".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await
        .unwrap()
        .id;
    let board = Arc::new(StatusBoard::default());
    let sink: Arc<dyn ConsoleSink> =
        Arc::new(Tee(vec![board.clone(), Arc::new(Recorder::default())]));
    let target = Target {
        cluster_id: cluster,
        name: "sim".into(),
        events_url: sim.events_url(),
        token: Some(TOKEN.into()),
    };
    let engine = Engine::start(store.clone(), vec![target], sink.clone())
        .await
        .unwrap();
    let tokens = Tokens::default();
    tokens.set(cluster, TOKEN);
    let desk = ActionDesk::new(store.clone(), tokens, board, sink);
    Live {
        store,
        engine,
        desk,
        cluster,
    }
}

/// Polls `done` until it holds, failing the test after `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The first incident the rules open that satisfies `pick`.
pub async fn incident_where(
    store: &Store,
    what: &str,
    pick: impl Fn(&firebreak::incident::Incident) -> bool,
) -> firebreak::incident::Incident {
    let mut found = None;
    wait_for(Duration::from_secs(60), what, async || {
        found = store
            .incidents()
            .await
            .unwrap()
            .into_iter()
            .find(|i| pick(i));
        found.is_some()
    })
    .await;
    found.unwrap()
}
