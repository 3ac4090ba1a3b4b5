//! A console recording a simulator live: a store, the ingest engine and an action desk
//! that holds the simulator's token. Actions, runbooks and reports tests start from it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_engine::actions::{ActionDesk, ActionSettings, Tokens};
use firebreak_engine::ingest::sink::{ConsoleSink, Recorder, StatusBoard, Tee};
use firebreak_engine::ingest::{Engine, Target};
use firebreak_sim::RunningSim;
use firebreak_store::{NewCluster, Store};

use crate::cluster::TOKEN;

pub struct Live {
    pub store: Store,
    pub engine: Engine,
    pub desk: Arc<ActionDesk>,
    pub cluster: i64,
}

/// Opens (or reopens) the store at `db` with `settings`, and records `sim` into it as
/// cluster "sim".
pub async fn live(db: &Path, sim: &RunningSim, settings: ActionSettings) -> Live {
    live_on(
        db,
        "sim",
        (&sim.events_url(), &sim.actions_url()),
        TOKEN,
        settings,
    )
    .await
}

/// [`live`] on any cluster that speaks the protocol (a gateway, say): its events and
/// actions URLs, and the token it takes.
pub async fn live_on(
    db: &Path,
    name: &str,
    (events_url, actions_url): (&str, &str),
    token: &str,
    settings: ActionSettings,
) -> Live {
    let store = Store::open(db).await.unwrap();
    settings.save(&store).await.unwrap();
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: name.into(),
            events_url: events_url.into(),
            actions_url: actions_url.into(),
        })
        .await
        .unwrap()
        .id;
    let board = Arc::new(StatusBoard::default());
    let sink: Arc<dyn ConsoleSink> =
        Arc::new(Tee(vec![board.clone(), Arc::new(Recorder::default())]));
    let target = Target {
        cluster_id: cluster,
        name: name.into(),
        events_url: events_url.into(),
        token: Some(token.into()),
        ca_file: None,
    };
    let engine = Engine::start(store.clone(), vec![target], sink.clone())
        .await
        .unwrap();
    let tokens = Tokens::default();
    tokens.set(cluster, token);
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
    pick: impl Fn(&firebreak_store::incident::Incident) -> bool,
) -> firebreak_store::incident::Incident {
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

/// Records a review of `incident`: impact began moved two minutes earlier with a reason,
/// an annotation on its first entry, a root cause, a factor and a follow-up.
pub async fn review(store: &Store, incident: i64) {
    use firebreak_store::review::{FollowUpDraft, FollowUpStatus};
    let opened = store.incident(incident).await.unwrap().opened_ms;
    store
        .set_moment(
            incident,
            "impact_began",
            Some(opened - 120_000),
            "users reported errors two minutes before the alert",
            "bo",
        )
        .await
        .unwrap();
    let first = store.timeline(incident, None, 1).await.unwrap()[0].id;
    store
        .annotate(incident, first, "this is where it started", "bo")
        .await
        .unwrap();
    store
        .set_root_cause(incident, Some("bad model version"), "bo")
        .await
        .unwrap();
    store
        .add_factor(incident, "no canary for model weights", "bo")
        .await
        .unwrap();
    store
        .add_follow_up(
            incident,
            &FollowUpDraft {
                title: "Canary model weights".into(),
                owner: "bo".into(),
                due: Some("2027-01-15".into()),
                status: FollowUpStatus::Open,
            },
            "bo",
        )
        .await
        .unwrap();
}

/// A console recording one cluster (any server of protocol v1: a gateway, a scripted
/// server) into a store of its own at `db`, with the engine's reports kept.
pub async fn console(
    db: &Path,
    name: &str,
    events_url: &str,
    actions_url: &str,
    token: Option<&str>,
) -> (Store, Engine, Arc<Recorder>, i64) {
    console_trusting(db, name, events_url, actions_url, token, None).await
}

/// [`console`], trusting the CA certificate file `ca_file` besides the OS store.
pub async fn console_trusting(
    db: &Path,
    name: &str,
    events_url: &str,
    actions_url: &str,
    token: Option<&str>,
    ca_file: Option<&Path>,
) -> (Store, Engine, Arc<Recorder>, i64) {
    let store = Store::open(db).await.unwrap();
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: ca_file.map(|p| p.display().to_string()),
            name: name.into(),
            events_url: events_url.into(),
            actions_url: actions_url.into(),
        })
        .await
        .unwrap()
        .id;
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn ConsoleSink> = recorder.clone();
    let target = Target {
        cluster_id: cluster,
        name: name.into(),
        events_url: events_url.into(),
        token: token.map(str::to_owned),
        ca_file: ca_file.map(Path::to_path_buf),
    };
    let engine = Engine::start(store.clone(), vec![target], sink)
        .await
        .unwrap();
    (store, engine, recorder, cluster)
}

/// One number from a read-only connection to the SQLite file at `db`: what a person
/// inspecting the file would see. 0 while the file or its tables do not exist yet.
pub async fn count(db: &Path, sql: &str) -> i64 {
    use sqlx::Connection;
    let Ok(mut conn) =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display())).await
    else {
        return 0;
    };
    sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .map_or(0, |(n,)| n)
}

/// A gateway's `/v1/gateway/status` at `base`, asked with `token`.
pub async fn gateway_status(base: &str, token: &str) -> serde_json::Value {
    crate::cluster::get_json(
        &reqwest::Client::new(),
        &format!("{base}/v1/gateway/status"),
        token,
    )
    .await
}
