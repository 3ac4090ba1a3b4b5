//! Ingest against a hostile cluster: a scripted WebSocket server on loopback that sends
//! what real clusters can (frames over every limit, frames the store refuses, a stream that
//! restarts under the console, a disk that fills), into a real SQLite file.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::ingest::sink::{ConsoleSink, Recorder};
use firebreak_engine::ingest::{Engine, Target};
use firebreak_store::{NewCluster, Store};
use futures_util::SinkExt;
use support::rig::{count, wait_for};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// What the server sends at one position of its stream.
#[derive(Clone)]
enum Slot {
    Text(String),
    /// A frame of this many bytes: over the console's 16 MiB hard limit when large enough.
    Huge(usize),
    Binary(Vec<u8>),
}

impl Slot {
    fn message(&self) -> Message {
        match self {
            Slot::Text(t) => Message::text(t.clone()),
            Slot::Huge(n) => Message::text("x".repeat(*n)),
            Slot::Binary(b) => Message::binary(b.clone()),
        }
    }
}

/// A stream the server replays from `after` on every connection, then holds open with
/// heartbeats: slot `i` is sequence `i + 1`.
#[derive(Default)]
struct Script {
    stream_id: Option<String>,
    slots: Vec<Slot>,
    /// Frames that take no position, sent just before slot `i` (malformed, binary, …).
    before: std::collections::HashMap<usize, Vec<Slot>>,
    /// Slot `i` is sent a second time right after itself.
    duplicate: std::collections::HashSet<usize>,
    /// Slots `i` and `i + 1` are sent the other way round.
    swap: std::collections::HashSet<usize>,
    /// Connection `n` (counted from 0) is cut, without a close frame, after this many
    /// frames past the hello (None: never).
    cut_after: Option<fn(u64) -> usize>,
    /// A pause after every hundred frames, so a stream takes a while to replay.
    pace: Option<Duration>,
}

struct Hostile {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// The handshake callback's signature is tungstenite's: its error type is an HTTP response.
#[allow(clippy::result_large_err)]
async fn serve(script: Script) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/events", listener.local_addr().unwrap());
    let script = Arc::new(script);
    let task = tokio::spawn(async move {
        // Connections this server accepted (cuts vary by it).
        let mut accepted = 0u64;
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let conn = accepted;
            accepted += 1;
            let script = script.clone();
            tokio::spawn(async move {
                let mut after = 0u64;
                let callback = |req: &Request, resp: Response| {
                    if let Some(q) = req.uri().query() {
                        for pair in q.split('&') {
                            if let Some(v) = pair.strip_prefix("after=") {
                                after = v.parse().unwrap_or(0);
                            }
                        }
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                let head = script.slots.len() as u64;
                let mut hello = serde_json::json!({"control": "hello", "protocol": "firebreak.events.v1",
                    "head": head, "first": 1, "heartbeat_interval_ms": 5000});
                if let Some(id) = &script.stream_id {
                    hello["stream_id"] = id.clone().into();
                }
                if ws.send(Message::text(hello.to_string())).await.is_err() {
                    return;
                }
                let mut order: Vec<usize> = (after as usize..script.slots.len()).collect();
                for k in 0..order.len().saturating_sub(1) {
                    if script.swap.contains(&order[k]) && order[k + 1] == order[k] + 1 {
                        order.swap(k, k + 1);
                    }
                }
                let mut frames = Vec::new();
                for i in order {
                    frames.extend(script.before.get(&i).into_iter().flatten().cloned());
                    frames.push(script.slots[i].clone());
                    if script.duplicate.contains(&i) {
                        frames.push(script.slots[i].clone());
                    }
                }
                let cut = script.cut_after.map(|f| f(conn));
                for (n, frame) in frames.iter().enumerate() {
                    if cut == Some(n) {
                        return; // dropped mid-stream, without a close frame
                    }
                    if ws.send(frame.message()).await.is_err() {
                        return;
                    }
                    if let Some(pace) = script.pace.filter(|_| n % 100 == 99) {
                        tokio::time::sleep(pace).await;
                    }
                }
                loop {
                    let beat = serde_json::json!({"control": "heartbeat", "head": head,
                        "time": "2026-11-30T03:00:00Z"});
                    if ws.send(Message::text(beat.to_string())).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
    });
    Hostile { url, task }
}

/// A valid `service.metrics` event at `seq` (id unique per stream name and sequence).
fn metrics(stream: &str, seq: u64) -> String {
    serde_json::json!({"specversion": "1.0", "id": format!("{stream}-{seq}"), "source": "/clusters/hostile",
        "type": "dev.firebreak.service.metrics", "time": "2026-11-30T03:00:00Z", "subject": "service/llm-assistant",
        "datacontenttype": "application/json", "sequence": seq,
        "data": {"service": "llm-assistant", "region": "us-east", "primary": true, "revision": 7, "window_s": 5,
                 "requests_per_s": 900.0, "error_rate": 0.001, "latency_p50_ms": 400.0,
                 "latency_p99_ms": 1200.0, "queue_depth": 3.0, "gpu_utilization": 0.7}})
    .to_string()
}

/// A valid critical alert whose summary is empty, for a service with no open incident.
fn blank_alert(seq: u64) -> String {
    serde_json::json!({"specversion": "1.0", "id": format!("alert-{seq}"), "source": "/clusters/hostile",
        "type": "dev.firebreak.alert.firing", "time": "2026-11-30T03:00:00Z", "subject": "service/llm-assistant",
        "datacontenttype": "application/json", "sequence": seq,
        "data": {"alert": "HighErrorRate", "service": "llm-assistant", "region": "us-east",
                 "severity": "critical", "summary": "", "value": 0.09, "threshold": 0.05}})
    .to_string()
}

async fn setup(dir: &Path, url: &str) -> (Store, Engine, Arc<Recorder>, i64) {
    support::rig::console(
        &dir.join("firebreak.db"),
        "hostile",
        url,
        "http://127.0.0.1:1/v1",
        None,
    )
    .await
}

async fn start_engine(store: &Store, url: &str, cluster_id: i64) -> (Engine, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn ConsoleSink> = recorder.clone();
    let target = Target {
        cluster_id,
        name: "hostile".into(),
        events_url: url.into(),
        token: None,
        ca_file: None,
    };
    let engine = Engine::start(store.clone(), vec![target], sink)
        .await
        .unwrap();
    (engine, recorder)
}

/// Gap entries that say the console skipped `seq` after its tries.
async fn skip_gaps(db: &Path, seq: u64) -> i64 {
    count(
        db,
        &format!(
            "SELECT COUNT(*) FROM stream_gaps WHERE from_sequence = {seq} AND to_sequence = {seq} \
             AND reason LIKE 'sequence {seq} skipped after 3 tries%'"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blank_alert_summary_opens_its_incident_and_costs_no_neighbour() {
    // 600 events in what the connection hands over at once, with the blank alert among them.
    let slots = (1..=600u64)
        .map(|s| {
            Slot::Text(if s == 300 {
                blank_alert(s)
            } else {
                metrics("a", s)
            })
        })
        .collect();
    let server = serve(Script {
        stream_id: None,
        slots,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let (store, engine, _, cluster) = setup(dir.path(), &server.url).await;
    wait_for(Duration::from_secs(30), "all 600 events", async || {
        store.cursor(cluster).await.unwrap() == 600
    })
    .await;
    engine.stop().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events").await,
        600,
        "every valid event is stored"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM quarantine").await,
        0,
        "a valid event is never quarantined"
    );
    let incidents = store.incidents().await.unwrap();
    assert_eq!(incidents.len(), 1, "the critical alert opens its incident");
    assert_eq!(incidents[0].title, "HighErrorRate on llm-assistant");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_the_store_refuses_is_quarantined_alone() {
    let slots = (1..=500u64).map(|s| Slot::Text(metrics("b", s))).collect();
    let server = serve(Script {
        stream_id: None,
        slots,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let store = Store::open(&db).await.unwrap();
    // A refusal the store makes for one event's data: a trigger is the seam (the real
    // refusals it stands for, a CHECK or a type, are fixed at their cause).
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON events WHEN NEW.event_id = 'b-250' \
             BEGIN SELECT RAISE(ABORT, 'refused for this test'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: "hostile".into(),
            events_url: server.url.clone(),
            actions_url: "http://127.0.0.1:1/v1".into(),
        })
        .await
        .unwrap();
    let (engine, _) = start_engine(&store, &server.url, cluster.id).await;
    wait_for(
        Duration::from_secs(30),
        "the cursor past every event",
        async || store.cursor(cluster.id).await.unwrap() == 500,
    )
    .await;
    engine.stop().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events").await,
        499,
        "only the refused event is missing from the events"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM quarantine WHERE stream_sequence = 250 AND reason LIKE '%refused for this test%'"
        )
        .await,
        1,
        "the refused event is kept with the database's reason"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM quarantine").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_the_stream_is_stuck_on_is_skipped_with_a_gap_naming_it() {
    // Position 11 is over even the 16 MiB hard limit; position 21 is refused (an unknown
    // type) while later ones arrive, and is never sent validly.
    let mut slots: Vec<Slot> = (1..=30u64).map(|s| Slot::Text(metrics("c", s))).collect();
    slots[10] = Slot::Huge(17 * 1024 * 1024);
    slots[20] = Slot::Text(metrics("c", 21).replace("service.metrics", "service.unheard_of"));
    // Position 26 is over the protocol's 256 KiB but readable: quarantined with its
    // sequence, then skipped like the others.
    let mut padded: serde_json::Value = serde_json::from_str(&metrics("c", 26)).unwrap();
    padded["data"]["padding"] = "y".repeat(300 * 1024).into();
    slots[25] = Slot::Text(padded.to_string());
    let server = serve(Script {
        stream_id: None,
        slots,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let (store, engine, recorder, cluster) = setup(dir.path(), &server.url).await;
    wait_for(
        Duration::from_secs(60),
        "the stream past its stuck frames",
        async || store.cursor(cluster).await.unwrap() == 30,
    )
    .await;
    engine.stop().await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events").await,
        27,
        "every valid event around the bad frames is stored"
    );
    for seq in [11, 21, 26] {
        assert_eq!(
            skip_gaps(&db, seq).await,
            1,
            "the skipped sequence {seq} is recorded as a gap naming it and why"
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM quarantine WHERE stream_sequence = 21"
        )
        .await,
        1,
        "a refused frame is quarantined once, however often it is replayed"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM quarantine WHERE reason LIKE 'a frame after sequence 10 over the 16777216-byte hard limit%'"
        )
        .await,
        1,
        "a frame too large to read is kept as the one after the last sequence read, once"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM quarantine WHERE stream_sequence = 26 AND reason LIKE 'oversized frame%'"
        )
        .await,
        1
    );
    // While stuck, the status never claimed the stream was live at the stuck position.
    let statuses = recorder.statuses.lock().unwrap().clone();
    assert!(statuses.iter().any(|s| matches!(
        s.stream,
        firebreak_engine::ingest::sink::StreamState::Reconnecting { .. }
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_stream_is_recorded_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let first = serve(Script {
        stream_id: Some("one".into()),
        slots: (1..=50u64).map(|s| Slot::Text(metrics("one", s))).collect(),
        ..Default::default()
    })
    .await;
    let (store, engine, _, cluster) = setup(dir.path(), &first.url).await;
    wait_for(Duration::from_secs(30), "the first stream", async || {
        store.cursor(cluster).await.unwrap() == 50
    })
    .await;
    engine.stop().await;
    drop(first);

    // The server starts over with a new identity and fewer events than the cursor.
    let second = serve(Script {
        stream_id: Some("two".into()),
        slots: (1..=80u64).map(|s| Slot::Text(metrics("two", s))).collect(),
        ..Default::default()
    })
    .await;
    let (engine, _) = start_engine(&store, &second.url, cluster).await;
    wait_for(
        Duration::from_secs(30),
        "the second stream from its start",
        async || {
            count(
                &db,
                "SELECT COUNT(*) FROM events WHERE event_id LIKE 'two-%'",
            )
            .await
                == 80
        },
    )
    .await;
    engine.stop().await;
    assert_eq!(
        store.stream_id(cluster).await.unwrap().as_deref(),
        Some("two")
    );
    assert_eq!(store.cursor(cluster).await.unwrap(), 80);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM stream_gaps WHERE reason LIKE 'stream restarted:%'"
        )
        .await,
        1,
        "the restart is recorded for diagnosis"
    );

    // An old server names no identity: its head below the cursor is the restart sign.
    let third = serve(Script {
        stream_id: None,
        slots: (1..=20u64)
            .map(|s| Slot::Text(metrics("three", s)))
            .collect(),
        ..Default::default()
    })
    .await;
    let (engine, _) = start_engine(&store, &third.url, cluster).await;
    wait_for(
        Duration::from_secs(30),
        "the third stream from its start",
        async || {
            count(
                &db,
                "SELECT COUNT(*) FROM events WHERE event_id LIKE 'three-%'",
            )
            .await
                == 20
        },
    )
    .await;
    engine.stop().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events").await, 150);
}

/// Mounts a tmpfs of `size` at `dir`; None where this process may not mount (not root).
fn tiny_filesystem(dir: &Path, size: &str) -> Option<()> {
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .ok()?;
    status.success().then_some(())
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_pauses_recording_and_loses_nothing_when_room_returns() {
    let outer = tempfile::tempdir().unwrap();
    let mount = outer.path().join("tiny");
    std::fs::create_dir(&mount).unwrap();
    if tiny_filesystem(&mount, "6m").is_none() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let _unmount = Unmount(&mount);
    let db = mount.join("firebreak.db");
    let store = Store::open(&db).await.unwrap();
    let server = serve(Script {
        stream_id: None,
        slots: (1..=3000u64).map(|s| Slot::Text(metrics("d", s))).collect(),
        ..Default::default()
    })
    .await;
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: "hostile".into(),
            events_url: server.url.clone(),
            actions_url: "http://127.0.0.1:1/v1".into(),
        })
        .await;
    let cluster = match cluster {
        Ok(c) => c,
        Err(e) => panic!("the cluster row must fit before the disk is full: {e}"),
    };
    // Fill the disk, leaving the store nowhere to grow.
    let filler = mount.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let (engine, recorder) = start_engine(&store, &server.url, cluster.id).await;
    wait_for(Duration::from_secs(30), "recording to pause", async || {
        recorder
            .recording
            .lock()
            .unwrap()
            .iter()
            .any(Option::is_some)
    })
    .await;
    let reason = recorder
        .recording
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .next()
        .cloned()
        .unwrap();
    assert!(reason.contains("full"), "the pause says why: {reason}");

    // Room again: recording resumes from the cursor and nothing is lost.
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        Duration::from_secs(60),
        "every event after the disk had room",
        async || store.cursor(cluster.id).await.unwrap() == 3000,
    )
    .await;
    assert_eq!(
        recorder.recording.lock().unwrap().last().cloned(),
        Some(None),
        "the sink is told recording resumed"
    );
    engine.stop().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events").await, 3000);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM quarantine").await,
        0,
        "a full disk is not the data's fault: nothing is quarantined for it"
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
}

/// `firebreak watch` on a disk that fills: it says recording is paused and why, and a
/// SIGTERM ends it (it once kept "committing what was received" for as long as it lived).
#[tokio::test(flavor = "multi_thread")]
async fn watch_on_a_full_disk_says_so_and_stops_on_sigterm_keeping_what_was_committed() {
    let outer = tempfile::tempdir().unwrap();
    let mount = outer.path().join("tiny");
    std::fs::create_dir(&mount).unwrap();
    if tiny_filesystem(&mount, "6m").is_none() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let _unmount = Unmount(&mount);
    let server = serve(Script {
        stream_id: None,
        slots: (1..=200_000u64)
            .map(|s| Slot::Text(metrics("e", s)))
            .collect(),
        ..Default::default()
    })
    .await;
    let said = outer.path().join("stderr.txt");
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["watch", "--cluster"])
        .arg(format!("hostile={}", server.url))
        .arg("--data-dir")
        .arg(&mount)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    // 200,000 events do not fit in 6 MB: the disk fills while recording.
    wait_for(
        Duration::from_secs(120),
        "watch to say recording is paused",
        async || {
            std::fs::read_to_string(&said)
                .unwrap_or_default()
                .contains("recording paused: ")
        },
    )
    .await;
    let text = std::fs::read_to_string(&said).unwrap();
    assert!(text.contains("full"), "the pause says why: {text}");
    let _ = std::process::Command::new("kill")
        .arg(watch.id().to_string())
        .status();
    // A hang guard, not a speed: the process must end at all while the disk is full.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = watch.kill();
            panic!("watch did not stop on SIGTERM while recording was paused");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&said).unwrap()
    );
    let db = mount.join("firebreak.db");
    let committed = count(
        &db,
        "SELECT COALESCE((SELECT last_sequence FROM stream_cursors), 0)",
    )
    .await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events").await,
        committed,
        "the cursor never runs ahead of the stored events"
    );
    assert!(committed < 200_000);
}

/// The soak: every kind of bad frame at once, duplicates, reordering, connections cut
/// mid-stream, and the console killed with SIGKILL and restarted, against one stream.
/// Afterwards every valid event is stored exactly once, every position the stream was
/// stuck on is one gap entry naming it, and every malformed frame is in quarantine.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_stream_with_cuts_and_kill_9_rounds_loses_and_repeats_nothing() {
    const N: usize = 4000;
    // Positions whose frame never comes validly: skipped with a gap, each one.
    let refused_at = [300usize, 1250, 2999];
    let oversized_at = [800usize, 3500];
    let huge_at = 2100usize;
    let mut script = Script {
        stream_id: Some("soak".into()),
        cut_after: Some(|conn| 150 + (conn as usize * 389) % 900),
        // About two seconds a replay of the whole stream: kills land mid-stream.
        pace: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    for i in 0..N {
        let seq = i as u64 + 1;
        let slot = if refused_at.contains(&i) {
            Slot::Text(metrics("soak", seq).replace("\"window_s\":5", "\"window_s\":-5"))
        } else if oversized_at.contains(&i) {
            let mut v: serde_json::Value = serde_json::from_str(&metrics("soak", seq)).unwrap();
            v["data"]["padding"] = "p".repeat(300 * 1024).into();
            Slot::Text(v.to_string())
        } else if i == huge_at {
            Slot::Huge(17 * 1024 * 1024)
        } else {
            Slot::Text(metrics("soak", seq))
        };
        script.slots.push(slot);
        // Frames that take no position, each one different so each can be found again.
        match i % 97 {
            3 => script.before.entry(i).or_default().push(Slot::Text(format!("{{\"garbage\": {i}"))),
            5 => script.before.entry(i).or_default().push(Slot::Binary(vec![0xff, 0, i as u8])),
            7 => script.before.entry(i).or_default().push(Slot::Text(format!(
                "{{\"control\":\"gap\",\"after\":{},\"first_available\":18446744073709551615, \"n\": {i}}}",
                u64::MAX - 1
            ))),
            11 => script.before.entry(i).or_default().push(Slot::Text(
                metrics("soak", seq).replace("service.metrics", &format!("service.unheard_of_{i}")).replace(&format!("\"sequence\":{seq}"), "\"sequence\":0"),
            )),
            _ => {}
        }
        if i % 53 == 0 {
            script.duplicate.insert(i);
        }
        if i % 41 == 0 {
            script.swap.insert(i);
        }
    }
    let malformed_kinds = script.before.values().flatten().count();
    let skipped: Vec<u64> = refused_at
        .iter()
        .chain(&oversized_at)
        .chain(std::iter::once(&huge_at))
        .map(|i| *i as u64 + 1)
        .collect();
    let server = serve(script).await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let watch = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(["watch", "--cluster"])
            .arg(format!("soak={}", server.url))
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // The console's committed cursor (0 while its store is still being created).
    let cursor = || {
        count(
            &db,
            "SELECT COALESCE((SELECT last_sequence FROM stream_cursors), 0)",
        )
    };
    // Kill -9 rounds at different points of the stream: each once the console has
    // recorded some more (by progress, not by time, so a slow machine kills as late).
    let mut killed_at = Vec::new();
    let mut last = 0;
    for _ in 0..6 {
        let mut console = watch();
        wait_for(
            Duration::from_secs(120),
            "progress before the kill",
            async || {
                let at = cursor().await;
                at >= last + 300 || at == N as i64
            },
        )
        .await;
        console.kill().unwrap(); // SIGKILL
        console.wait().unwrap();
        last = cursor().await;
        killed_at.push(last);
    }
    assert!(
        killed_at
            .iter()
            .filter(|c| **c > 0 && **c < N as i64)
            .count()
            >= 3,
        "the kills must land mid-stream to test anything: {killed_at:?}"
    );
    let mut console = watch();
    wait_for(Duration::from_secs(180), "the whole stream", async || {
        cursor().await == N as i64
    })
    .await;
    // SIGTERM: a clean stop.
    let _ = std::process::Command::new("kill")
        .arg(console.id().to_string())
        .status();
    console.wait().unwrap();

    let valid = (N - skipped.len()) as i64;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events").await,
        valid,
        "every valid event stored"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT event_id) FROM events").await,
        valid,
        "and none twice"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM events WHERE event_id != 'soak-' || stream_sequence"
        )
        .await,
        0,
        "each at its own position"
    );
    for seq in &skipped {
        assert_eq!(
            skip_gaps(&db, *seq).await,
            1,
            "position {seq} is one gap entry naming it"
        );
    }
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM stream_gaps").await,
        skipped.len() as i64,
        "no valid position was skipped"
    );
    assert!(
        count(&db, "SELECT COUNT(DISTINCT raw) FROM quarantine").await >= malformed_kinds as i64,
        "every malformed frame is kept for diagnosis"
    );
    // Kept once each, however often the cuts and restarts made the stream replay it; how
    // often it came is counted on its row.
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM quarantine").await,
        (malformed_kinds + skipped.len()) as i64,
        "one row per distinct bad frame"
    );
    assert!(
        count(&db, "SELECT SUM(times) FROM quarantine").await
            > count(&db, "SELECT COUNT(*) FROM quarantine").await,
        "the replays came, and were counted"
    );
    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let diagnostics = store.diagnostics().await.unwrap();
    assert_eq!(
        diagnostics.quarantined,
        (malformed_kinds + skipped.len()) as i64
    );
    assert!(diagnostics.quarantine_arrivals > diagnostics.quarantined);
}

/// A link that is cut again and again before any event arrives is the network's doing: the
/// console keeps retrying the same position and never skips a valid event for it.
#[tokio::test(flavor = "multi_thread")]
async fn links_cut_before_any_event_never_make_the_console_skip_one() {
    let server = serve(Script {
        stream_id: None,
        slots: (1..=40u64).map(|s| Slot::Text(metrics("f", s))).collect(),
        cut_after: Some(|conn| if conn < 6 { 0 } else { usize::MAX }),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let (store, engine, _, cluster) = setup(dir.path(), &server.url).await;
    wait_for(
        Duration::from_secs(120),
        "every event after the cuts",
        async || store.cursor(cluster).await.unwrap() == 40,
    )
    .await;
    engine.stop().await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM events").await, 40);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM stream_gaps").await,
        0,
        "no valid position was skipped for the network's cuts"
    );
}
