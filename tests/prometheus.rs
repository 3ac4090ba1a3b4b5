//! The simulator against a real Prometheus (Debian's 2.42, installed by `.ci/deps.sh
//! --test`): it scrapes the simulator's /metrics with the bearer token, evaluates the
//! shipped rules (`deploy/prometheus/rules.yml`), and the rules fire on the bad rollout.
//! The shipped files are also checked by the servers' own tools (promtool, amtool).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::cluster::{sim, TOKEN};
use support::rig::wait_for;
use support::servers::{free_port, tool, KillOnDrop as Killed};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

#[test]
fn the_shipped_rules_and_configurations_pass_the_servers_own_checks() {
    let out = tool("promtool")
        .args(["check", "rules"])
        .arg(deploy().join("rules.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = tool("amtool")
        .args(["check-config"])
        .arg(deploy().join("alertmanager.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// One instant query; the result vector (empty when nothing matched or it failed).
async fn query(base: &str, promql: &str) -> Vec<serde_json::Value> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", promql)])
        .unwrap();
    let Ok(response) = reqwest::Client::new().get(url).send().await else {
        return Vec::new();
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_simulator_and_the_shipped_rules_fire_on_a_bad_rollout() {
    firebreak_common::process::install_tls_provider();
    let s = sim("bad-model-rollout", 10.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    // The shipped scrape configuration, pointed at this simulator, at test speed.
    let (base, _prometheus) = prometheus_on(&s, dir.path()).await;

    // The scrape works with the bearer token, and PromQL reads the histogram back.
    wait_for(
        Duration::from_secs(60),
        "the simulator's target up",
        async || query(&base, "up{job=\"firebreak-sim\"} == 1").await.len() == 1,
    )
    .await;
    wait_for(
        Duration::from_secs(60),
        "a p99 from the recording rule",
        async || {
            !query(
                &base,
                "service_region:latency_p99_seconds:1m{service=\"recommendations\"} \
             and on (service, region) firebreak_sim_region_primary == 1",
            )
            .await
            .is_empty()
        },
    )
    .await;
    let p99 = query(
        &base,
        "service_region:latency_p99_seconds:1m{service=\"recommendations\"} \
         and on (service, region) firebreak_sim_region_primary == 1",
    )
    .await;
    let ms = value(&p99[0]) * 1000.0;
    // recommendations serves a 35 ms median with a p99 about 2.6 times that, under its
    // 250 ms SLO: a histogram that gave back anything else would be wrong.
    assert!(
        (40.0..250.0).contains(&ms),
        "p99 of recommendations read back as {ms} ms"
    );

    // The bad model rolls out and llm-assistant's errors climb: the shipped alert rule
    // sees it on the primary region (pending first, then firing after its `for`).
    wait_for(
        Duration::from_secs(120),
        "HighErrorRate on llm-assistant",
        async || {
            !query(
                &base,
                "ALERTS{alertname=\"HighErrorRate\",service=\"llm-assistant\"}",
            )
            .await
            .is_empty()
        },
    )
    .await;
    let alerts = query(
        &base,
        "ALERTS{alertname=\"HighErrorRate\",service=\"llm-assistant\"}",
    )
    .await;
    assert_eq!(
        alerts[0]["metric"]["severity"], "critical",
        "the alert carries the severity label the gateway maps"
    );
    assert!(
        query(
            &base,
            "ALERTS{alertname=\"HighErrorRate\",service=\"recommendations\"}"
        )
        .await
        .is_empty(),
        "a healthy service raises no alert"
    );
    s.shutdown();
}

/// Prometheus running as in the test above; returns its base URL and the guard.
async fn prometheus_on(s: &firebreak_sim::RunningSim, dir: &Path) -> (String, Killed) {
    prometheus_alerting(s, dir, 9093).await
}

/// [`prometheus_on`], sending its alerts to the Alertmanager on `am_port`.
async fn prometheus_alerting(
    s: &firebreak_sim::RunningSim,
    dir: &Path,
    am_port: u16,
) -> (String, Killed) {
    std::fs::write(dir.join("sim-token"), TOKEN).unwrap();
    std::fs::copy(deploy().join("rules.yml"), dir.join("rules.yml")).unwrap();
    let config = std::fs::read_to_string(deploy().join("prometheus.yml"))
        .unwrap()
        .replace("127.0.0.1:7700", &s.addr.to_string())
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("evaluation_interval: 5s", "evaluation_interval: 1s")
        .replace("127.0.0.1:9093", &format!("127.0.0.1:{am_port}"));
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = tool("prometheus")
        .current_dir(dir)
        .arg("--config.file=prometheus.yml")
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (format!("http://127.0.0.1:{port}"), Killed(child))
}

/// The gateway's Prometheus source against the real Prometheus, started with no data: the
/// shipped example configuration's queries give the console `service.metrics` from real
/// PromQL once Prometheus has data, and say nothing about the minute before (the
/// warm-up); a service whose queries give nothing is one `source.degraded` naming all of
/// its figures, however many polls they fail.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_turns_real_promql_into_service_metrics_and_says_what_gives_nothing() {
    firebreak_common::process::install_tls_provider();
    let s = sim("bad-model-rollout", 10.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, _prometheus) = prometheus_on(&s, dir.path()).await;

    // The shipped example, pointed at this Prometheus, polled each second, with one more
    // service whose query names a metric nobody exports.
    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/gateway/gateway.example.toml"),
    )
    .unwrap()
    .replace("http://127.0.0.1:9090", &prometheus)
    .replace("interval_s = 5", "interval_s = 1")
    .replace("warm_up_s = 120", "warm_up_s = 40")
    .replace("127.0.0.1:7443", "127.0.0.1:0")
    .replace(
        "env = \"FIREBREAK_GATEWAY_TOKEN\"",
        &format!("file = \"{}\"", dir.path().join("gateway.token").display()),
    )
    .replace(
        "webhook_token = { env = \"FIREBREAK_ALERTMANAGER_TOKEN\" }",
        &format!(
            "webhook_token = {{ file = \"{}\" }}",
            dir.path().join("gateway.token").display()
        ),
    )
    .replace(
        "regions = [\"us-east\", \"eu-west\"]",
        "regions = [\"us-east\"]\nteam = \"assistant-platform\"",
    );
    let text = format!(
        "{example}\n[[services]]\nname = \"search-ranking\"\nregions = [\"eu-west\"]\n[services.queries]\n\
         latency_p50_ms = 'sum(no_such_metric{{region=\"$region\"}})'\n"
    );
    let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
    let gateway = firebreak_gateway::serve::start(&config, &dir.path().join("journal.db"))
        .await
        .unwrap();

    let db = dir.path().join("console.db");
    let (_store, engine, _, _) = support::rig::console(
        &db,
        "demo-fleet",
        &gateway.events_url(),
        &gateway.base_url(),
        Some("gateway-token"),
    )
    .await;

    let metrics = async || -> Vec<serde_json::Value> {
        use sqlx::Connection;
        let Ok(mut conn) =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display())).await
        else {
            return Vec::new();
        };
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT raw FROM events WHERE type = 'dev.firebreak.service.metrics' ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        rows.iter()
            .filter_map(|(r,)| serde_json::from_str::<serde_json::Value>(r).ok())
            .map(|v| v["data"].clone())
            .collect()
    };
    wait_for(
        Duration::from_secs(120),
        "service.metrics from real PromQL",
        async || metrics().await.len() >= 3,
    )
    .await;
    let sample = metrics().await.pop().unwrap();
    assert_eq!(sample["service"], "llm-assistant");
    assert_eq!(sample["region"], "us-east");
    assert_eq!(
        sample["primary"], true,
        "the first region listed serves the traffic"
    );
    let p99 = sample["latency_p99_ms"].as_f64().unwrap();
    let p50 = sample["latency_p50_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p99 > p50, "p50 {p50} ms, p99 {p99} ms");
    assert!(sample["requests_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(
        sample["team"], "assistant-platform",
        "the team the configuration names travels with the figures"
    );

    let degraded = || async {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
                .await
                .unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT raw FROM events WHERE type = 'dev.firebreak.source.degraded' ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        rows
    };
    wait_for(
        Duration::from_secs(150),
        "source.degraded for the silent service, after the warm-up",
        async || !degraded().await.is_empty(),
    )
    .await;
    // Several more polls pass: still one event per failing query, not one per poll.
    let before = metrics().await.len();
    wait_for(Duration::from_secs(60), "three more polls", async || {
        metrics().await.len() >= before + 3
    })
    .await;
    let rows = degraded().await;
    let data: Vec<serde_json::Value> = rows
        .iter()
        .map(|(r,)| serde_json::from_str::<serde_json::Value>(r).unwrap()["data"].clone())
        .collect();
    // The service with data had nothing to say, though Prometheus started empty.
    assert!(
        data.iter().all(|d| d["service"] != "llm-assistant"),
        "nothing said during the warm-up: {data:#?}"
    );
    // The silent one is said once, whole: every figure, both reasons.
    assert_eq!(data.len(), 1, "{data:#?}");
    let said = &data[0];
    assert_eq!(said["service"], "search-ranking");
    assert_eq!(said["region"], "eu-west");
    assert_eq!(said["what"], "6 figures");
    let reason = said["reason"].as_str().unwrap();
    assert!(
        reason.contains("latency_p50_ms (the query returned nothing)")
            && reason.contains("no query is configured for it"),
        "{reason}"
    );
    engine.stop().await;
    gateway.shutdown();
    s.shutdown();
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
    let mut gateway = spawn_gateway(&config_file, &gateway_data, gw_port).await;

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
    let _gateway = spawn_gateway(&config_file, &gateway_data, gw_port).await;
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
