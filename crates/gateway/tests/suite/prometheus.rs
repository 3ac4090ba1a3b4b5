//! The simulator against a real Prometheus (Debian's 2.42, installed by `.ci/deps.sh
//! --test`): it scrapes the simulator's /metrics with the bearer token, evaluates the
//! shipped rules (`deploy/prometheus/rules.yml`), and the rules fire on the bad rollout.
//! The shipped files are also checked by the servers' own tools (promtool, amtool).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use support::cluster::sim;
use support::prometheus::{
    deploy, prometheus_file_sd, prometheus_on, prometheus_scraping, prometheus_stacks, query,
    set_targets, value,
};
use support::rig::wait_for;
use support::servers::tool;

#[test]
fn the_shipped_rules_and_configurations_pass_the_servers_own_checks() {
    let passes = |program: &str, args: &[&str], file: &str| {
        let out = tool(program)
            .args(args)
            .arg(deploy().join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {file}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    passes("promtool", &["check", "rules"], "rules.yml");
    // The objectives' rules, as `slo-rules` writes them from the shipped example: current,
    // and sound to promtool.
    let example =
        firebreak_test_support::workspace_root().join("deploy/gateway/gateway.example.toml");
    let config = firebreak_gateway::config::load(&example).unwrap();
    let shipped = std::fs::read_to_string(deploy().join("slo-rules.yml")).unwrap();
    assert_eq!(
        shipped,
        firebreak_gateway::slo::rules(&config, "deploy/gateway/gateway.example.toml"),
        "deploy/prometheus/slo-rules.yml is stale: firebreak-gateway slo-rules --config \
         deploy/gateway/gateway.example.toml --out deploy/prometheus/slo-rules.yml"
    );
    passes("promtool", &["check", "rules"], "slo-rules.yml");
    passes("amtool", &["check-config"], "alertmanager.yml");
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
        firebreak_test_support::workspace_root().join("deploy/gateway/gateway.example.toml"),
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
    let (gateway, db, _store, engine, _) = gateway_and_console(&text, dir.path()).await;

    let metrics = async || recorded(&db, "service.metrics").await;
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

/// Figures by revision through the gateway, from real PromQL: the simulator's bad model
/// rolls out (its counters split by a `revision` label), the Kubernetes API says revision
/// 42 is rolling out over 41, the gateway counts what each revision's counters add between
/// its polls and sends `service.revision_metrics`, and the console that records it fails
/// revision 42 at wave 1, as it does on the simulator's own stream.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_sends_figures_by_revision_and_the_console_fails_the_bad_revision_at_wave_1() {
    let by = |extra: &str| {
        format!("service=\"llm-assistant\",region=\"$region\",revision=\"$revision\"{extra}")
    };
    fails_revision_42_at_wave_1(
        firebreak_sim::exposition::Naming::Generic,
        &format!(
            "[services.revisions]\nvalue = \"number\"\n\
             requests_total = 'sum(http_requests_total{{{all}}})'\n\
             errors_total = 'sum(http_requests_total{{{failed}}})'\n\
             latency_p50_ms = 'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{{all}}}[30s]))) * 1000'\n\
             latency_p99_ms = 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{all}}}[30s]))) * 1000'\n",
            all = by(""),
            failed = by(",code=~\"5..\""),
        ),
    )
    .await;
}

/// The same verdict for a service that names only its stack: its figures by revision come
/// from the vLLM preset, the revision read from the label the configuration names.
#[tokio::test(flavor = "multi_thread")]
async fn a_presets_figures_by_revision_fail_the_bad_revision_at_wave_1() {
    fails_revision_42_at_wave_1(
        firebreak_sim::exposition::Naming::Vllm,
        "stack = \"vllm\"\n[services.preset]\nrevision_label = \"revision\"\nrevision_value = \"number\"\ngpu = \"none\"\n",
    )
    .await;
}

/// The simulator's bad model rolling out (in `naming`), the fake API server saying
/// revision 42 rolls out over 41, and a gateway whose llm-assistant has `figures` (TOML
/// inside its `[[services]]` entry, before its Kubernetes objects): the console that
/// records it fails revision 42 at wave 1.
async fn fails_revision_42_at_wave_1(naming: firebreak_sim::exposition::Naming, figures: &str) {
    use support::fake_kube::{FakeKube, DEPLOYMENTS, REPLICA_SETS};
    firebreak_common::process::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let scenario = support::cluster::slow_bad_rollout(dir.path(), 8);
    let s = sim(&scenario, 10.0, |o| o.metrics = naming).await;
    let (prometheus, _prometheus) = prometheus_on(&s, dir.path()).await;

    // The Deployment mid-rollout: revision 42's ReplicaSet has a wave of the 16 replicas.
    let fake = FakeKube::start().await;
    let replica_set = |revision: u32, replicas: u32| {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("llm-assistant-serving-h{revision}"), "namespace": "serving", "uid": format!("rs-{revision}"),
                "creationTimestamp": "2026-12-07T03:10:00Z",
                "labels": { "app": "llm-assistant", "pod-template-hash": format!("h{revision}") },
                "annotations": { "deployment.kubernetes.io/revision": revision.to_string() },
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-assistant-serving", "uid": "d-1", "controller": true }]
            },
            "spec": { "selector": { "matchLabels": { "app": "llm-assistant" } },
                      "template": { "metadata": { "labels": { "app": "llm-assistant" } }, "spec": { "containers": [{ "name": "vllm", "image": format!("vllm:{revision}") }] } } },
            "status": { "replicas": replicas }
        })
    };
    fake.apply(REPLICA_SETS, replica_set(41, 12));
    fake.apply(REPLICA_SETS, replica_set(42, 4));
    fake.apply(
        DEPLOYMENTS,
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "llm-assistant-serving", "namespace": "serving", "generation": 2, "uid": "d-1",
                          "annotations": { "deployment.kubernetes.io/revision": "42" } },
            "spec": { "replicas": 16, "selector": { "matchLabels": { "app": "llm-assistant" } },
                      "template": { "metadata": { "labels": { "app": "llm-assistant" } }, "spec": { "containers": [{ "name": "vllm", "image": "vllm:42" }] } } },
            "status": { "observedGeneration": 2, "replicas": 16, "updatedReplicas": 4, "availableReplicas": 16,
                        "conditions": [{ "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "",
                                         "lastUpdateTime": "2026-12-07T03:11:00Z", "lastTransitionTime": "2026-12-07T03:10:00Z" }] }
        }),
    );

    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let text = format!(
        "cluster = \"demo-fleet\"\nlisten = \"127.0.0.1:0\"\n\
         [[tokens]]\nname = \"oncall\"\nfile = \"{token}\"\n\
         [prometheus]\nurl = \"{prometheus}\"\ninterval_s = 1\nwarm_up_s = 40\n\
         [kubernetes]\nkubeconfig = \"{kubeconfig}\"\n\
         [[services]]\nname = \"llm-assistant\"\ndeployment = \"llm-assistant-serving\"\nregions = [\"us-east\"]\n\
         {figures}\
         [services.kubernetes]\nnamespace = \"serving\"\npods = \"app=llm-assistant\"\n",
        token = dir.path().join("gateway.token").display(),
        kubeconfig = fake.kubeconfig(dir.path()).display(),
    );
    let (gateway, _db, store, engine, cluster) = gateway_and_console(&text, dir.path()).await;

    let mut verdicts = None;
    wait_for(
        Duration::from_secs(120),
        "a failing verdict from the gateway's figures",
        async || {
            verdicts = firebreak_engine::canary::rollout_verdicts(&store, cluster, "llm-assistant")
                .await
                .unwrap();
            verdicts.as_ref().is_some_and(|v| v.first_fail.is_some())
        },
    )
    .await;
    let v = verdicts.unwrap();
    assert_eq!((v.from_revision, v.to_revision), (41, 42), "{v:?}");
    assert!(!v.no_data);
    let fail = v.first_fail.unwrap();
    assert_eq!(fail.wave, 1, "{fail:?}");
    assert!(
        fail.sentence.starts_with("Revision 42 fails ") && fail.sentence.contains("on revision 41"),
        "{}",
        fail.sentence
    );
    // The figures as sent: counts that add up, both roles, the replicas Kubernetes gives.
    let windows = store
        .revision_windows(cluster, "llm-assistant", 0, None)
        .await
        .unwrap();
    let first = &windows[0].metrics;
    assert_eq!(first.region, "us-east");
    let nodes: Vec<(u32, u32)> = first
        .revisions
        .iter()
        .map(|r| (r.revision, r.nodes))
        .collect();
    assert_eq!(nodes, [(42, 4), (41, 12)]);
    let errors = fail.errors.unwrap();
    assert!(
        errors.canary_rate > 0.05 && errors.stable_rate < 0.02,
        "revision 42 fails on its own series only: {errors:?}"
    );
    engine.stop().await;
    gateway.shutdown();
    s.shutdown();
}

/// Presets per serving stack against the real Prometheus: one simulator per stack exposes
/// the fleet under that stack's own names (vLLM, vLLM before 0.10, Triton, TGI, SGLang,
/// KServe's queue-proxy, DCGM beside each), and a gateway whose services name only their
/// stack (and, where it differs from the service's name, the label's value) gives the
/// console every figure of each. vLLM 0.9's KV-cache gauge is found under its older name
/// and said on the status endpoint; a service without DCGM leaves GPU use out, said there
/// once, never as a `source.degraded`.
#[tokio::test(flavor = "multi_thread")]
async fn services_that_name_only_their_stack_get_every_figure_from_real_promql() {
    use firebreak_sim::exposition::Naming;
    firebreak_common::process::install_tls_provider();
    let stacks = [
        ("vllm", Naming::Vllm, "vllm"),
        ("vllm-old", Naming::VllmOld, "vllm"),
        ("triton", Naming::Triton, "triton"),
        ("tgi", Naming::Tgi, "tgi"),
        ("sglang", Naming::Sglang, "sglang"),
        ("kserve", Naming::Kserve, "kserve"),
    ];
    let sims = sims_in("kv-cache-pressure", stacks.iter().map(|s| s.1)).await;
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<(&str, &firebreak_sim::RunningSim)> = stacks
        .iter()
        .zip(&sims)
        .map(|((job, ..), s)| (*job, s))
        .collect();
    let (prometheus, _prometheus) = prometheus_scraping(&targets, dir.path()).await;
    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let mut text = format!(
        "cluster = \"presets\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"console\"\nfile = \"{}\"\n\
         [prometheus]\nurl = \"{prometheus}\"\ninterval_s = 1\nwarm_up_s = 60\n",
        dir.path().join("gateway.token").display()
    );
    for (job, _, stack) in &stacks {
        // Each simulator serves llm-assistant; the job tells the stacks' series apart.
        text.push_str(&format!(
            "[[services]]\nname = \"chat-{job}\"\ndeployment = \"llm-assistant\"\nregions = [\"us-east\"]\n\
             stack = \"{stack}\"\n[services.preset]\nservice_value = \"llm-assistant\"\n\
             match = {{ job = \"{job}\" }}\n{}",
            if *job == "tgi" { "gpu = \"none\"\n" } else { "" }
        ));
    }
    let (gateway, db, store, engine, _) = gateway_and_console(&text, dir.path()).await;

    let metrics = async || recorded(&db, "service.metrics").await;
    let every = async || {
        let seen = metrics().await;
        stacks.iter().all(|(job, ..)| {
            seen.iter()
                .any(|m| m["service"] == format!("chat-{job}").as_str())
        })
    };
    wait_for(
        Duration::from_secs(120),
        "service.metrics for the service of every stack",
        every,
    )
    .await;
    let seen = metrics().await;
    for (job, ..) in &stacks {
        let name = format!("chat-{job}");
        let m = seen
            .iter()
            .rev()
            .find(|m| m["service"] == name.as_str())
            .unwrap();
        let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            f("latency_p50_ms") > 0.0 && f("latency_p99_ms") >= f("latency_p50_ms"),
            "{name}: {m}"
        );
        assert!((0.0..=1.0).contains(&f("error_rate")), "{name}: {m}");
        assert!(f("requests_per_s") > 0.0, "{name}: {m}");
        assert!(f("queue_depth") >= 0.0, "{name}: {m}");
        if *job == "tgi" {
            assert!(m.get("gpu_utilization").is_none(), "left out: {m}");
        } else {
            assert!((0.0..=1.0).contains(&f("gpu_utilization")), "{name}: {m}");
        }
    }
    // The console's Fleet board shows GPU use where it is given and nothing (not 0 %)
    // where it is left out.
    let board = store.fleet_board().await.unwrap();
    let cell = |name: &str| {
        board.clusters[0]
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .cells[0]
            .clone()
    };
    assert_eq!(cell("chat-tgi").gpu_utilization, None);
    assert!(!cell("chat-tgi").queue_depth.is_empty());
    assert!(cell("chat-triton").gpu_utilization.is_some());
    // What the presets did, on the status endpoint: vLLM 0.9's older KV-cache name, and
    // GPU use left out where there is no DCGM.
    let status = async || status_of(&gateway.base_url()).await;
    let preset = |body: &serde_json::Value, name: &str| {
        body["presets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["service"] == name)
            .cloned()
            .unwrap()
    };
    wait_for(
        Duration::from_secs(60),
        "vLLM 0.9's KV-cache gauge under its older name",
        async || {
            preset(&status().await, "chat-vllm-old")["figures"]["kv_cache_usage"]["older_name"]
                == true
        },
    )
    .await;
    let body = status().await;
    let old = preset(&body, "chat-vllm-old");
    assert!(
        old["figures"]["kv_cache_usage"]["query"]
            .as_str()
            .unwrap()
            .contains("vllm:gpu_cache_usage_perc"),
        "{old:#}"
    );
    let vllm = preset(&body, "chat-vllm");
    assert_eq!(
        vllm["figures"]["kv_cache_usage"]["older_name"], false,
        "{vllm:#}"
    );
    assert_eq!(vllm["figures"]["latency_p99_ms"]["from"], "preset vllm");
    assert_eq!(
        vllm["figures"]["latency_p99_ms"]["with_all_its_services"], true,
        "a preset's services are asked together, one query per figure: {vllm:#}"
    );
    assert!(
        vllm["figures"]["latency_p99_ms"]["query"]
            .as_str()
            .unwrap()
            .contains("sum by (le, model_name, region)"),
        "{vllm:#}"
    );
    let tgi = preset(&body, "chat-tgi");
    assert_eq!(tgi["left_out"][0]["metric"], "gpu_utilization", "{tgi:#}");
    assert!(
        recorded(&db, "source.degraded").await.is_empty(),
        "nothing is degraded: a figure a stack cannot give is left out, not failing"
    );
    engine.stop().await;
    gateway.shutdown();
    for s in sims {
        s.shutdown();
    }
}

/// Discovery against the real Prometheus, whose targets change while it runs: a vLLM
/// fleet and an SGLang one are found by their services' label values (the file's own
/// llm-assistant entry wins over the discovered one; names both stacks serve are kept from
/// the first source and refused from the second, both named), each announced once and
/// polled for every figure without a restart; when the SGLang fleet is gone its services
/// are retired and leave the console's board; a restarted gateway on the same journal
/// announces nothing again.
#[tokio::test(flavor = "multi_thread")]
async fn discovered_services_are_watched_without_a_restart_and_retired_when_gone() {
    use firebreak_sim::exposition::Naming;
    firebreak_common::process::install_tls_provider();
    let vllm = sim("steady", 10.0, |o| o.metrics = Naming::Vllm).await;
    let sglang = sim("steady", 10.0, |o| {
        o.metrics = Naming::Sglang;
        o.fleet = "5x2".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (prometheus, _prometheus) = prometheus_file_sd(dir.path()).await;
    set_targets(dir.path(), &[&vllm, &sglang]);
    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let text = format!(
        "cluster = \"found\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"console\"\nfile = \"{}\"\n\
         [prometheus]\nurl = \"{prometheus}\"\ninterval_s = 1\nwarm_up_s = 60\n\
         [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\nstack = \"vllm\"\n\
         [discovery]\ninterval_s = 2\n[[discovery.prometheus]]\nstack = \"vllm\"\ngpu = \"none\"\n\
         [[discovery.prometheus]]\nstack = \"sglang\"\ngpu = \"none\"\n",
        dir.path().join("gateway.token").display()
    );
    let (gateway, db, store, engine, _) = gateway_and_console(&text, dir.path()).await;
    // What the SGLang fleet serves beyond the vLLM one's three services.
    let only_sglang: Vec<String> = {
        let mut names = Vec::new();
        wait_for(
            Duration::from_secs(60),
            "the SGLang fleet scraped",
            async || {
                names = query(&prometheus, "count by (model_name) (sglang:num_queue_reqs)")
                    .await
                    .iter()
                    .filter_map(|s| s["metric"]["model_name"].as_str().map(str::to_owned))
                    .filter(|n| {
                        !["llm-assistant", "recommendations", "search-ranking"]
                            .contains(&n.as_str())
                    })
                    .collect();
                names.len() == 2
            },
        )
        .await;
        names
    };
    let announced = async || -> Vec<String> {
        recorded(&db, "service.discovered")
            .await
            .iter()
            .map(|d| d["service"].as_str().unwrap().to_owned())
            .collect()
    };
    wait_for(
        Duration::from_secs(90),
        "four services discovered",
        async || announced().await.len() >= 4,
    )
    .await;
    let mut names = announced().await;
    names.sort();
    let mut expected = vec!["recommendations".to_owned(), "search-ranking".to_owned()];
    expected.extend(only_sglang.clone());
    expected.sort();
    assert_eq!(
        names, expected,
        "each once; the file's llm-assistant is not discovered"
    );
    // A discovered service gets every figure its stack gives, from the next round on.
    let figures = async || {
        recorded(&db, "service.metrics")
            .await
            .into_iter()
            .filter(|m| m["service"] == only_sglang[0].as_str())
            .collect::<Vec<_>>()
    };
    wait_for(
        Duration::from_secs(90),
        "metrics of a discovered service",
        async || !figures().await.is_empty(),
    )
    .await;
    let m = figures().await.pop().unwrap();
    assert!(m["latency_p99_ms"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["requests_per_s"].as_f64().unwrap() > 0.0, "{m}");
    let status = async || status_of(&gateway.base_url()).await;
    let said = status().await;
    let refused: Vec<&str> = said["discovery"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("\"recommendations\": found by both")
                && r.contains(
                    "model_name on vllm:num_requests_waiting ([[discovery.prometheus]] 1)"
                )
                && r.contains("model_name on sglang:num_queue_reqs ([[discovery.prometheus]] 2)")),
        "a name both stacks serve is refused from the second, both named: {refused:#?}"
    );
    assert!(
        refused.iter().all(|r| !r.contains("llm-assistant")),
        "the file's entry wins, quietly: {refused:#?}"
    );

    // The SGLang fleet goes away: its own services are retired, the vLLM fleet's stay.
    set_targets(dir.path(), &[&vllm]);
    let retired = async || -> Vec<String> {
        let mut r: Vec<String> = recorded(&db, "service.retired")
            .await
            .iter()
            .map(|d| d["service"].as_str().unwrap().to_owned())
            .collect();
        r.sort();
        r
    };
    wait_for(
        Duration::from_secs(90),
        "the SGLang services retired",
        async || retired().await.len() >= 2,
    )
    .await;
    let mut gone = only_sglang.clone();
    gone.sort();
    assert_eq!(retired().await, gone);
    let board = store.fleet_board().await.unwrap();
    let shown: Vec<&str> = board.clusters[0]
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert!(shown.contains(&"recommendations"), "{shown:?}");
    for name in &only_sglang {
        assert!(
            !shown.contains(&name.as_str()),
            "a retired service leaves the board: {shown:?}"
        );
    }
    engine.stop().await;
    gateway.shutdown();

    // A restart on the same journal announces nothing again.
    let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text).unwrap();
    let again = firebreak_gateway::serve::start(&config, &dir.path().join("journal.db"))
        .await
        .unwrap();
    let rounds = async || status_of(&again.base_url()).await["discovery"]["at"].clone();
    let first = {
        let mut at = serde_json::Value::Null;
        wait_for(
            Duration::from_secs(30),
            "a round after the restart",
            async || {
                at = rounds().await;
                !at.is_null()
            },
        )
        .await;
        at
    };
    wait_for(Duration::from_secs(30), "another round", async || {
        rounds().await != first
    })
    .await;
    again.shutdown();
    let frames = frames_of(&dir.path().join("journal.db"), "service.discovered").await;
    assert_eq!(frames, 4, "nothing announced twice across the restart");
    vllm.shutdown();
    sglang.shutdown();
}

/// The gateway's `/v1/gateway/status`, asked with the console's token.
async fn status_of(base: &str) -> serde_json::Value {
    support::rig::gateway_status(base, "gateway-token").await
}

/// How many events of type `dev.firebreak.<ty>` a gateway's journal holds.
async fn frames_of(journal: &Path, ty: &str) -> usize {
    use sqlx::Connection;
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", journal.display()))
            .await
            .unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM frames WHERE frame LIKE ?")
        .bind(format!("%\"type\":\"dev.firebreak.{ty}\"%"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    usize::try_from(n).unwrap()
}

/// `firebreak gateway init` against the real Prometheus scraping a fleet on every stack
/// (vLLM, vLLM before 0.10, Triton, TGI, SGLang and KServe, each naming its own models,
/// DCGM beside them): it writes a configuration `--check` accepts, names each choice and
/// why, and under it every service of each stack has every figure its stack gives.
#[tokio::test(flavor = "multi_thread")]
async fn gateway_init_writes_a_configuration_under_which_every_service_has_its_figures() {
    use firebreak_sim::exposition::Naming;
    firebreak_common::process::install_tls_provider();
    let stacks = [
        ("vllm", Naming::Vllm, "model_name"),
        ("vllmold", Naming::VllmOld, "model_name"),
        ("triton", Naming::Triton, "model"),
        ("tgi", Naming::Tgi, "service"),
        ("sglang", Naming::Sglang, "model_name"),
        ("kserve", Naming::Kserve, "service_name"),
    ];
    let sims = sims_in("steady", stacks.iter().map(|s| s.1)).await;
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<(&str, &firebreak_sim::RunningSim, &str)> = stacks
        .iter()
        .zip(&sims)
        .map(|((job, _, label), s)| (*job, s, *label))
        .collect();
    let (prometheus, _prometheus) = prometheus_stacks(&targets, dir.path()).await;
    // Init reads what Prometheus holds: wait until every job has been scraped.
    wait_for(Duration::from_secs(60), "every stack scraped", async || {
        query(&prometheus, "count by (job) (up == 1)").await.len() == stacks.len()
    })
    .await;

    let args = firebreak_gateway::init::InitArgs {
        prometheus: prometheus.clone(),
        kubeconfig: None,
        in_cluster: false,
        context: None,
        namespaces: Vec::new(),
        cluster: Some("fleet".into()),
        out: None,
    };
    let found = firebreak_gateway::init::inspect(&args).await.unwrap();
    let text = firebreak_gateway::init::write(&args, &found);
    let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), &text)
        .unwrap_or_else(|e| panic!("--check refuses what init wrote: {e}\n{text}"));
    let stacks_found: Vec<&str> = config
        .discovery
        .as_ref()
        .unwrap()
        .prometheus
        .iter()
        .map(|p| p.stack.as_str())
        .collect();
    assert_eq!(
        stacks_found,
        ["vllm", "triton", "tgi", "sglang", "kserve"],
        "{text}"
    );
    assert!(
        text.contains("service from model_name, the stack's own label"),
        "{text}"
    );
    assert!(
        text.contains("gpu = \"dcgm\"   # DCGM_FI_DEV_GPU_UTIL found with the pod"),
        "{text}"
    );
    assert!(text.contains("vLLM before 0.10 is running"), "{text}");
    let said = firebreak_gateway::init::summary(&found);
    assert!(
        said.iter().any(
            |l| l.starts_with("vllm-llm-assistant: vLLM metrics found with labels")
                && l.contains("service from model_name, region from region (eu-west, us-east)")
        ),
        "{said:#?}"
    );

    // Run as written (a token file of the test's, polled each second).
    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let text = text
        .replace(
            "/etc/firebreak/tokens/oncall",
            &dir.path().join("gateway.token").display().to_string(),
        )
        .replace("interval_s = 5", "interval_s = 1")
        .replace("interval_s = 60", "interval_s = 1")
        .replace("listen = \"127.0.0.1:7443\"", "listen = \"127.0.0.1:0\"");
    let (gateway, db, _store, engine, _) = gateway_and_console(&text, dir.path()).await;
    let expected: Vec<String> = stacks
        .iter()
        .flat_map(|(job, ..)| {
            ["llm-assistant", "recommendations", "search-ranking"].map(|s| format!("{job}-{s}"))
        })
        .collect();
    let with_figures = async || -> BTreeSet<String> {
        whole_figures(&db)
            .await
            .into_iter()
            .map(|(service, _)| service)
            .collect()
    };
    wait_for(
        Duration::from_secs(120),
        "every figure of every service",
        async || with_figures().await.len() == expected.len(),
    )
    .await;
    let got = with_figures().await;
    for name in &expected {
        assert!(got.contains(name), "{name} lacks figures; has: {got:?}");
    }
    assert!(
        recorded(&db, "source.degraded").await.is_empty(),
        "nothing the stacks give is missing"
    );
    engine.stop().await;
    gateway.shutdown();
    for s in sims {
        s.shutdown();
    }
}

/// What the issue asks of a new fleet: a configuration that names only the cluster,
/// Prometheus, Kubernetes and the namespace to discover in; a labelled Deployment on each
/// stack (vLLM, Triton, TGI, SGLang, KServe, each naming its model) in the fake API server,
/// their fleets scraped by the real Prometheus; each becomes a service with every figure
/// its stack gives, in each region (the standby one too).
#[tokio::test(flavor = "multi_thread")]
async fn labelled_workloads_get_every_figure_of_their_stack_from_real_promql() {
    use firebreak_sim::exposition::Naming;
    use support::fake_kube::{FakeKube, DEPLOYMENTS};
    firebreak_common::process::install_tls_provider();
    // (job, naming, the stack's service label, the stack as a workload names it)
    let stacks = [
        ("vllm", Naming::Vllm, "model_name", "vllm"),
        ("triton", Naming::Triton, "model", "triton"),
        ("tgi", Naming::Tgi, "service", "tgi"),
        ("sglang", Naming::Sglang, "model_name", "sglang"),
        ("kserve", Naming::Kserve, "service_name", "kserve"),
    ];
    let sims = sims_in("steady", stacks.iter().map(|s| s.1)).await;
    let dir = tempfile::tempdir().unwrap();
    let targets: Vec<(&str, &firebreak_sim::RunningSim, &str)> = stacks
        .iter()
        .zip(&sims)
        .map(|((job, _, label, _), s)| (*job, s, *label))
        .collect();
    let (prometheus, _prometheus) = prometheus_stacks(&targets, dir.path()).await;
    let fake = FakeKube::start().await;
    for (job, _, _, stack) in &stacks {
        // Each fleet's llm-assistant, as its own workload, labelled as the service
        // "<job>-chat" on its stack, naming the model its metrics carry.
        let workload = format!("{job}-llm-assistant");
        fake.apply(
            DEPLOYMENTS,
            serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {
                    "name": workload, "namespace": "serving", "generation": 1, "uid": workload,
                    "labels": { "firebreak.dev/service": format!("{job}-chat"), "firebreak.dev/stack": stack },
                    "annotations": {
                        "firebreak.dev/model": workload,
                        "firebreak.dev/regions": "us-east,eu-west",
                        "deployment.kubernetes.io/revision": "1"
                    }
                },
                "spec": {
                    "replicas": 4,
                    "selector": { "matchLabels": { "app": workload } },
                    "template": { "metadata": { "labels": { "app": workload } },
                                  "spec": { "containers": [{ "name": "server", "image": format!("{stack}:1") }] } }
                },
                "status": { "observedGeneration": 1, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4 }
            }),
        );
    }
    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let text = format!(
        "cluster = \"fleet\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"console\"\nfile = \"{}\"\n\
         [prometheus]\nurl = \"{prometheus}\"\ninterval_s = 1\nwarm_up_s = 60\n\
         [kubernetes]\nkubeconfig = \"{}\"\n\
         [discovery]\ninterval_s = 1\n[discovery.kubernetes]\nnamespaces = [\"serving\"]\n",
        dir.path().join("gateway.token").display(),
        fake.kubeconfig(dir.path()).display()
    );
    let (gateway, db, _store, engine, _) = gateway_and_console(&text, dir.path()).await;
    let whole = async || whole_figures(&db).await;
    wait_for(
        Duration::from_secs(120),
        "every figure of every service in both regions",
        async || whole().await.len() == 2 * stacks.len(),
    )
    .await;
    let got = whole().await;
    for (job, ..) in &stacks {
        let service = format!("{job}-chat");
        for region in ["us-east", "eu-west"] {
            assert!(
                got.contains(&(service.to_owned(), region.to_owned())),
                "{got:?}"
            );
        }
    }
    engine.stop().await;
    gateway.shutdown();
    for s in sims {
        s.shutdown();
    }
}

/// One simulator of `scenario` at ten times real speed for each of `namings`.
async fn sims_in(
    scenario: &str,
    namings: impl Iterator<Item = firebreak_sim::exposition::Naming>,
) -> Vec<firebreak_sim::RunningSim> {
    let mut sims = Vec::new();
    for naming in namings {
        sims.push(sim(scenario, 10.0, move |o| o.metrics = naming).await);
    }
    sims
}

/// The (service, region) pairs the console in `db` recorded `service.metrics` of with
/// every figure.
async fn whole_figures(db: &Path) -> BTreeSet<(String, String)> {
    recorded(db, "service.metrics")
        .await
        .iter()
        .filter(|m| {
            firebreak_gateway::config::METRICS
                .iter()
                .all(|k| m[*k].is_number())
        })
        .map(|m| {
            (
                m["service"].as_str().unwrap().to_owned(),
                m["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A gateway on the configuration `text` (its journal in `dir`) and a console recording
/// it as "demo-fleet" with the token "gateway-token": the gateway, the console's database
/// file, its store and engine, and the cluster's id there.
async fn gateway_and_console(
    text: &str,
    dir: &Path,
) -> (
    firebreak_gateway::serve::RunningGateway,
    std::path::PathBuf,
    firebreak_store::Store,
    firebreak_engine::ingest::Engine,
    i64,
) {
    let config = firebreak_gateway::config::parse(Path::new("gateway.toml"), text).unwrap();
    let gateway = firebreak_gateway::serve::start(&config, &dir.join("journal.db"))
        .await
        .unwrap();
    let db = dir.join("console.db");
    let (store, engine, _, cluster) = support::rig::console(
        &db,
        "demo-fleet",
        &gateway.events_url(),
        &gateway.base_url(),
        Some("gateway-token"),
    )
    .await;
    (gateway, db, store, engine, cluster)
}

/// The burn-rate conditions as Prometheus evaluates the rules `slo-rules` writes and as a
/// console evaluates them, on the same eight hours of series: a fast burn (15 % errors), a
/// slow one (4 % for two hours), and twenty-six slow minutes. Firebreak's evaluator says which
/// alerts fire at each minute; the real promtool (Debian's) runs the generated rules on
/// the same series and must expect exactly those, minute by minute.
#[test]
fn the_generated_burn_rate_rules_and_the_consoles_evaluator_agree_with_promtool() {
    use firebreak_engine::slo::{burns, Objective, Sample};
    let config = firebreak_gateway::config::parse(
        Path::new("gateway.toml"),
        "cluster = \"c\"\nlisten = \"127.0.0.1:0\"\n[[tokens]]\nname = \"oncall\"\nenv = \"T\"\n\
         [[services]]\nname = \"chat\"\nregions = [\"us-east\"]\n[services.slo]\navailability = 99.5\n\
         requests = 'http_requests_total{service=\"chat\"}'\nerrors = 'http_requests_total{service=\"chat\",code=~\"5..\"}'\n\
         latency_query = 'max(p99_ms{service=\"chat\"})'\nlatency_p99_ms = 4000\nlatency_target = 99\n",
    )
    .unwrap();
    let slo = config.services[0].slo.clone().unwrap();
    let objective = Objective {
        availability: slo.availability,
        latency_p99_ms: slo.latency.as_ref().map(|l| l.1),
        latency_target: slo.latency.as_ref().map_or(0.99, |l| l.2),
    };
    const MINUTES: i64 = 480;
    let failed = |m: i64| match m {
        100..=140 => 150.0,
        200..=330 => 40.0,
        _ => 2.0,
    };
    let p99 = |m: i64| {
        if (380..=405).contains(&m) {
            5000.0
        } else {
            800.0
        }
    };
    // The console's samples: minute m's requests and failures (none at minute 0), its p99.
    let samples: Vec<Sample> = (0..=MINUTES)
        .map(|m| Sample {
            at_ms: m * 60_000,
            requests: if m == 0 { 0.0 } else { 1000.0 },
            errors: if m == 0 { 0.0 } else { failed(m) },
            p99_ms: p99(m),
        })
        .collect();
    // The same as Prometheus series: the counters' totals and the p99 each minute.
    let (mut ok_total, mut failed_total) = (0.0, 0.0);
    let (mut ok, mut bad, mut slow) = (Vec::new(), Vec::new(), Vec::new());
    for s in &samples {
        ok_total += s.requests - s.errors;
        failed_total += s.errors;
        ok.push(format!("{ok_total}"));
        bad.push(format!("{failed_total}"));
        slow.push(format!("{}", s.p99_ms));
    }
    let mut tests = String::new();
    let mut fired = std::collections::BTreeSet::new();
    for m in 0..=MINUTES {
        let firing: Vec<_> = burns(&objective, &samples, m * 60_000)
            .into_iter()
            .filter(|b| b.firing)
            .collect();
        tests.push_str(&format!(
            "      - eval_time: {m}m\n        alertname: {}\n        exp_alerts:{}\n",
            firebreak_gateway::slo::ALERT,
            if firing.is_empty() { " []" } else { "" }
        ));
        for b in firing {
            let c = firebreak_protocol::slo::PAGE
                .into_iter()
                .find(|c| c.long_s == b.long_s)
                .unwrap();
            let (long, short) = (
                firebreak_protocol::slo::range(b.long_s),
                firebreak_protocol::slo::range(b.short_s),
            );
            fired.insert((b.sli.as_str(), long.clone()));
            tests.push_str(&format!(
                "          - exp_labels: {{service: chat, slo: {}, long: {long}, short: {short}, severity: critical}}\n            \
                 exp_annotations: {{summary: {}}}\n",
                b.sli.as_str(),
                serde_json::to_string(&firebreak_gateway::slo::summary("chat", b.sli.as_str(), &c)).unwrap(),
            ));
        }
    }
    // Every condition is tried: each objective and each pair of windows fires somewhere.
    assert_eq!(
        fired.into_iter().collect::<Vec<_>>(),
        [
            ("availability", "1h".to_owned()),
            ("availability", "6h".to_owned()),
            ("latency", "1h".to_owned()),
            ("latency", "6h".to_owned()),
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        firebreak_gateway::slo::rules(&config, "gateway.toml"),
    )
    .unwrap();
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n\
         \x20     - series: 'http_requests_total{{service=\"chat\",code=\"200\"}}'\n        values: '{}'\n\
         \x20     - series: 'http_requests_total{{service=\"chat\",code=\"503\"}}'\n        values: '{}'\n\
         \x20     - series: 'p99_ms{{service=\"chat\"}}'\n        values: '{}'\n    alert_rule_test:\n{tests}",
        ok.join(" "),
        bad.join(" "),
        slow.join(" "),
    );
    std::fs::write(dir.path().join("test.yml"), test).unwrap();
    let out = tool("promtool")
        .current_dir(dir.path())
        .args(["test", "rules", "test.yml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool disagrees with Firebreak's evaluator:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GPU and model-server signals from the real metric names, through the real Prometheus
/// scraping the simulator: DCGM's XID field changing on one GPU (79: fallen off the bus,
/// so its node also reports one GPU fewer) and vLLM's KV cache filling while preemptions
/// rise and the queue grows. The gateway says each once, and the console that records it
/// opens an incident that names what to do.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_says_xids_lost_gpus_and_kv_cache_pressure_from_dcgm_and_vllm_metrics() {
    let on = |metric: &str| format!("{metric}{{service=\"llm-assistant\",region=\"$region\"}}");
    gpu_signals_said(
        firebreak_sim::exposition::Naming::Generic,
        &format!(
            "[[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\n\
             [services.queries]\nqueue_depth = 'sum({queue})'\n\
             [services.gpu]\nxid = '{xid}'\nkv_cache_usage = 'max({usage})'\npreemptions_total = 'sum({preempted})'\n",
            queue = on("vllm:num_requests_waiting"),
            xid = on("DCGM_FI_DEV_XID_ERRORS"),
            usage = on("vllm:kv_cache_usage_perc"),
            preempted = on("vllm:num_preemptions_total"),
        ),
    )
    .await;
}

/// The same signals for a service that names only its stack: asked with the preset's
/// other services (every GPU's XID in one query, its deployment read from its pod's
/// name; the KV cache by service and region), each said once all the same.
#[tokio::test(flavor = "multi_thread")]
async fn a_presets_services_get_their_gpu_signals_from_queries_across_them_all() {
    gpu_signals_said(
        firebreak_sim::exposition::Naming::Vllm,
        "[[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\"]\nstack = \"vllm\"\n\
         [[services]]\nname = \"recommendations\"\nregions = [\"us-east\"]\nstack = \"vllm\"\n",
    )
    .await;
}

/// A GPU falls off the bus and the KV cache fills on the simulator (in `naming`), scraped
/// by the real Prometheus; a gateway with `services` (its TOML) says the XID, the GPU
/// lost and the pressure once each, and the console opens an incident saying what to do.
async fn gpu_signals_said(naming: firebreak_sim::exposition::Naming, services: &str) {
    firebreak_common::process::install_tls_provider();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("gpus.toml");
    std::fs::write(
        &scenario,
        "name = \"gpus\"\nsummary = \"a GPU falls off the bus; the KV cache fills\"\n\
         remedy = { action = \"none\" }\n\
         [[steps]]\nat = 200\ndo = \"kv_pressure\"\nservice = \"llm-assistant\"\nregion = \"us-east\"\nseconds = 3600\n\
         [[steps]]\nat = 300\ndo = \"gpu_xid\"\nservice = \"llm-assistant\"\nregion = \"us-east\"\nxid = 79\n",
    )
    .unwrap();
    let s = sim(&scenario.display().to_string(), 10.0, |o| {
        o.metrics = naming
    })
    .await;
    let (prometheus, _prometheus) = prometheus_on(&s, dir.path()).await;
    std::fs::write(dir.path().join("gateway.token"), "gateway-token").unwrap();
    let text = format!(
        "cluster = \"demo-fleet\"\nlisten = \"127.0.0.1:0\"\n\
         [[tokens]]\nname = \"oncall\"\nfile = \"{token}\"\n\
         [prometheus]\nurl = \"{prometheus}\"\ninterval_s = 1\nwarm_up_s = 40\n{services}",
        token = dir.path().join("gateway.token").display(),
    );
    let (gateway, db, store, engine, _cluster) = gateway_and_console(&text, dir.path()).await;
    let of = async |ty: &str| recorded(&db, ty).await;
    wait_for(
        Duration::from_secs(120),
        "the XID, the lost GPU and the pressure",
        async || {
            !of("gpu.xid").await.is_empty()
                && !of("gpu.missing").await.is_empty()
                && !of("service.kv_cache_pressure").await.is_empty()
        },
    )
    .await;
    // A few more polls: each said once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let xid = of("gpu.xid").await;
    assert_eq!(xid.len(), 1, "{xid:?}");
    assert_eq!(
        (
            xid[0]["xid"].clone(),
            xid[0]["gpu"].clone(),
            xid[0]["service"].clone()
        ),
        (79.into(), "3".into(), "llm-assistant".into())
    );
    let missing = of("gpu.missing").await;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(
        (missing[0]["expected"].clone(), missing[0]["seen"].clone()),
        (8.into(), 7.into())
    );
    assert_eq!(missing[0]["node"], xid[0]["node"]);
    let kv = of("service.kv_cache_pressure").await;
    assert_eq!(kv.len(), 1, "{kv:?}");
    assert_eq!(kv[0]["pressure"], true);
    assert_eq!(kv[0]["service"], "llm-assistant");
    assert!(kv[0]["kv_cache_usage"].as_f64().unwrap() > 0.9);
    // The console opened an incident on them, saying what to do.
    let incidents = store.incidents().await.unwrap();
    let bodies: Vec<String> =
        futures_util::future::join_all(incidents.iter().map(|i| store.timeline(i.id, None, 1000)))
            .await
            .into_iter()
            .flat_map(|t| t.unwrap())
            .map(|e| e.body)
            .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("XID 79 (GPU has fallen off the bus): drain the node")),
        "{bodies:#?}"
    );
    engine.stop().await;
    gateway.shutdown();
    s.shutdown();
}

/// The data of every event of type `dev.firebreak.<ty>` the console recorded in `db`, in
/// order, read as a person inspecting the file would (none while it cannot be opened).
async fn recorded(db: &Path, ty: &str) -> Vec<serde_json::Value> {
    use sqlx::Connection;
    let Ok(mut conn) =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display())).await
    else {
        return Vec::new();
    };
    let rows: Vec<(String,)> = sqlx::query_as("SELECT raw FROM events WHERE type = ? ORDER BY seq")
        .bind(format!("dev.firebreak.{ty}"))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    rows.iter()
        .filter_map(|(r,)| serde_json::from_str::<serde_json::Value>(r).ok())
        .map(|v| v["data"].clone())
        .collect()
}
