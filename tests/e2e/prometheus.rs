//! The whole chain from a real Prometheus and Alertmanager (Debian's, installed by
//! `.ci/deps.sh --test`) through the gateway to `firebreak watch`, every part a process
//! of its own. The gateway's own suite against Prometheus is in crates/gateway/tests.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::path::Path;
use std::time::Duration;

use support::cluster::sim;
use support::prometheus::prometheus_alerting;
use support::rig::wait_for;
use support::servers::{free_port, KillOnDrop as Killed};

/// `firebreak gateway`: the same gateway as `firebreak-gateway`, from the console's binary.
fn firebreak_gateway() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"));
    c.arg("gateway");
    c
}

/// The whole chain, every part real: the simulator's fleet scraped by Prometheus with the
/// shipped rules, Alertmanager (group_wait 1 s) posting to the gateway, the gateway
/// querying Prometheus, and `firebreak watch` recording from the gateway. The bad rollout
/// opens an incident from Alertmanager's notification, its metrics come from PromQL, the
/// gateway is killed with -9 mid-run and restarted and the console records every event
/// of its stream exactly once, and a silence proposed on the alert through the desk
/// appears in Alertmanager's API.
#[tokio::test(flavor = "multi_thread")]
async fn bad_model_rollout_through_prometheus_alertmanager_and_the_gateway() {
    use firebreak_engine::actions::{ActionDesk, Tokens};
    use firebreak_engine::ingest::sink::{ConsoleSink, Recorder, StatusBoard};
    use firebreak_store::actions::ActionState;
    use firebreak_store::incident::EntryKind;
    use support::rig::count;
    use support::servers::{spawn_gateway, start_alertmanager};

    firebreak_common::process::install_tls_provider();
    let s = sim("bad-model-rollout", 10.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (gw_port, am_port) = (free_port(), free_port());
    let _am = start_alertmanager(dir.path(), gw_port, am_port);
    let (prometheus, _prometheus) = prometheus_alerting(&s, dir.path(), am_port).await;

    // The shipped example configuration, pointed at these servers.
    const CONSOLE: &str = "console-token-0123456789";
    std::fs::write(dir.path().join("console.token"), CONSOLE).unwrap();
    std::fs::write(dir.path().join("webhook.token"), "webhook-token-9876543210").unwrap();
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway/gateway.example.toml"),
    )
    .unwrap()
    .replace("http://127.0.0.1:9090", &prometheus)
    .replace(
        "http://127.0.0.1:9093",
        &format!("http://127.0.0.1:{am_port}"),
    )
    .replace("interval_s = 5", "interval_s = 1")
    .replace("127.0.0.1:7443", &format!("127.0.0.1:{gw_port}"))
    .replace(
        "env = \"FIREBREAK_GATEWAY_TOKEN\"",
        &format!("file = \"{}\"", dir.path().join("console.token").display()),
    )
    .replace(
        "webhook_token = { env = \"FIREBREAK_ALERTMANAGER_TOKEN\" }",
        &format!(
            "webhook_token = {{ file = \"{}\" }}",
            dir.path().join("webhook.token").display()
        ),
    );
    let config_file = dir.path().join("gateway.toml");
    std::fs::write(&config_file, config).unwrap();
    let gateway_data = dir.path().join("gateway-data");
    let mut gateway =
        spawn_gateway(firebreak_gateway(), &config_file, &gateway_data, gw_port).await;

    // The console: `firebreak watch`, as a process, into its own data dir.
    let console_data = dir.path().join("console");
    let watch = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args([
            "watch",
            "--cluster",
            &format!("demo-fleet=ws://127.0.0.1:{gw_port}/v1/events"),
            "--token-env",
            "GATEWAY_TOKEN",
        ])
        .env("GATEWAY_TOKEN", CONSOLE)
        .env("FIREBREAK_DATA_DIR", &console_data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _watch = Killed(watch);
    let db = console_data.join("firebreak.db");

    let from_alertmanager =
        "SELECT COUNT(*) FROM incidents i JOIN timeline_entries t ON t.incident_id = i.id \
         JOIN events e ON e.seq = t.event_seq WHERE i.service = 'llm-assistant' \
         AND e.type = 'dev.firebreak.alert.firing' AND e.raw LIKE '%HighErrorRate%'";
    let metrics = "SELECT COUNT(*) FROM events WHERE type = 'dev.firebreak.service.metrics'";
    // Mid-run: metrics are flowing, the alert may or may not have fired yet.
    wait_for(
        Duration::from_secs(120),
        "metrics from PromQL",
        async || count(&db, metrics).await >= 3,
    )
    .await;
    gateway.kill_9();
    let _gateway = spawn_gateway(firebreak_gateway(), &config_file, &gateway_data, gw_port).await;
    wait_for(
        Duration::from_secs(180),
        "the incident from Alertmanager's notification",
        async || count(&db, from_alertmanager).await >= 1,
    )
    .await;

    // Every event of the gateway's stream, each once: the sequences the console recorded
    // run without a hole or a repeat up to the gateway's head, and no gap was recorded.
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{gw_port}/v1/gateway/status"))
        .bearer_auth(CONSOLE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let head = status["head"].as_i64().unwrap();
    wait_for(
        Duration::from_secs(60),
        "the console to reach the head",
        async || count(&db, "SELECT COALESCE(MAX(stream_sequence), 0) FROM events").await >= head,
    )
    .await;
    let upto = format!("FROM events WHERE stream_sequence <= {head}");
    assert_eq!(count(&db, &format!("SELECT COUNT(*) {upto}")).await, head);
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(DISTINCT stream_sequence) {upto}")
        )
        .await,
        head
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM stream_gaps").await, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM quarantine").await, 0);

    // The silence, proposed on the alert's entry through the desk, lands in Alertmanager.
    let store = firebreak_store::Store::open(&db).await.unwrap();
    let incident = store
        .incidents()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.service.as_deref() == Some("llm-assistant"))
        .unwrap();
    let entry = store
        .timeline(incident.id, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.kind == EntryKind::Event && e.event_type.as_deref() == Some("alert.firing"))
        .unwrap();
    let tokens = Tokens::default();
    tokens.set(incident.cluster_id.unwrap(), CONSOLE);
    let sink: std::sync::Arc<dyn ConsoleSink> = std::sync::Arc::new(Recorder::default());
    let desk = ActionDesk::new(
        store.clone(),
        tokens,
        std::sync::Arc::new(StatusBoard::default()),
        sink,
    );
    let proposal = desk
        .propose_silence(incident.id, entry.id, 3600, "ana")
        .await
        .unwrap();
    let muted = &proposal.preview.target_health.text;
    assert!(
        muted.starts_with("mutes 1 alert firing now")
            && muted.contains("alertname=\"HighErrorRate\""),
        "{muted}"
    );
    desk.confirm(&proposal.id, "ana", "rollback on its way", None)
        .await
        .unwrap();
    assert_eq!(
        desk.drive(&proposal.id).await.unwrap().state,
        ActionState::Succeeded
    );
    let silences: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{am_port}/api/v2/silences"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let silence = &silences.as_array().unwrap()[0];
    assert!(silence["createdBy"]
        .as_str()
        .unwrap()
        .contains("oncall for ana"));
    assert!(silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "alertname" && m["value"] == "HighErrorRate"));
    s.shutdown();
}
