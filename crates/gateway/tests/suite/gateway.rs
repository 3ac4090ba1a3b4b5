//! The gateway: its configuration, checked as a whole with file, line and key for every
//! mistake, and `firebreak gateway --check` for a team's CI.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;

use firebreak_gateway::config::{parse, Hook, Secret};

const VALID: &str = r#"cluster = "prod-east"
listen = "0.0.0.0:7443"

[tls]
cert = "/etc/firebreak/gateway.crt"
key = "/etc/firebreak/gateway.key"

[[tokens]]
name = "oncall"
file = "/etc/firebreak/tokens/oncall"

[[tokens]]
name = "ci"
env = "FIREBREAK_TOKEN_CI"

[prometheus]
url = "http://127.0.0.1:9090"
interval_s = 10

[alertmanager]
url = "http://127.0.0.1:9093"
webhook_token = { env = "FIREBREAK_ALERTMANAGER_TOKEN" }
severity_label = "priority"

[[services]]
name = "llm-assistant"
regions = ["us-east", "eu-west"]
[services.queries]
latency_p99_ms = 'histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{region="$region"}[1m]))) * 1000'
error_rate = 'sum(rate(vllm:request_failure_total{region="$region"}[1m])) / sum(rate(vllm:request_success_total{region="$region"}[1m]))'
[services.hooks]
timeout_s = 120
status = { command = ["/opt/deploy/firebreak-status", "{service}"] }
rollback = { command = ["/opt/deploy/rollback", "{deployment}", "{to}"] }
failover = { url = "https://deploy.internal/hooks/failover/{service}", token = { env = "DEPLOY_TOKEN" } }
"#;

/// A `[services.revisions]` table, inserted before the service's hooks in the mistakes.
const REVISIONS: &str = r#"[services.revisions]
value = "pod_template_hash"
requests_total = 'sum(vllm:request_success_total{region="$region",revision="$revision"}) #1'
errors_total = 'sum(vllm:request_failure_total{region="$region",revision="$revision"})'
latency_p50_ms = 'histogram_quantile(0.5, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{region="$region",revision="$revision"}[1m]))) * 1000'
latency_p99_ms = 'histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{region="$region",revision="$revision"}[1m]))) * 1000'
"#;

#[test]
fn a_valid_configuration_reads_as_written() {
    let c = parse(Path::new("gateway.toml"), VALID).unwrap();
    assert_eq!(c.cluster, "prod-east");
    assert_eq!(c.listen.port(), 7443);
    assert!(c.tls.is_some());
    assert_eq!(c.tokens.len(), 2);
    assert_eq!(
        c.tokens[1].secret,
        Secret::Env("FIREBREAK_TOKEN_CI".into()),
        "the token is read from the environment at start, never kept in the file"
    );
    assert_eq!(c.prometheus.as_ref().unwrap().interval_s, 10);
    let am = c.alertmanager.unwrap();
    assert_eq!(
        (
            am.service_label.as_str(),
            am.region_label.as_str(),
            am.severity_label.as_str()
        ),
        ("service", "region", "priority"),
        "unset label names default; set ones are kept"
    );
    assert_eq!(c.services[0].regions, ["us-east", "eu-west"]);
    assert_eq!(c.services[0].queries.len(), 2);
    let s = &c.services[0];
    assert_eq!(
        s.deployment, "llm-assistant",
        "the service's name unless set"
    );
    assert_eq!(s.hooks.timeout, std::time::Duration::from_secs(120));
    assert_eq!(
        s.hooks.failover,
        Some(Hook::Http {
            url: "https://deploy.internal/hooks/failover/{service}".into(),
            token: Some(Secret::Env("DEPLOY_TOKEN".into())),
        })
    );
    assert_eq!(s.team, None, "no team unless the file names one");
    let teamed = VALID.replace(
        "regions = [\"us-east\", \"eu-west\"]\n",
        "regions = [\"us-east\", \"eu-west\"]\nteam = \" assistant-platform \"\n",
    );
    let c = parse(Path::new("gateway.toml"), &teamed).unwrap();
    assert_eq!(
        c.services[0].team.as_deref(),
        Some("assistant-platform"),
        "the team its metrics carry, trimmed"
    );
}

/// A service that names its stack gets every figure from the preset, except what the file
/// writes itself (which wins) and what nothing exports (left out, with why); the GPU and
/// KV-cache signals come with it.
#[test]
fn a_stack_gives_a_service_its_queries_and_the_file_still_wins() {
    let text = VALID.replace(
        "[services.queries]\n",
        "stack = \"vllm\"\n[services.preset]\nservice_value = \"meta-llama/Llama-3.1-8B\"\ngpu = \"none\"\n[services.queries]\n",
    );
    let c = parse(Path::new("gateway.toml"), &text).unwrap();
    let s = &c.services[0];
    let q = |m: &str| s.queries[m].clone();
    assert_eq!(
        q("latency_p99_ms").preset,
        None,
        "written in the file: it wins"
    );
    assert!(q("latency_p99_ms").alternatives[0].contains("region=\"$region\"}[1m]"));
    assert_eq!(
        q("queue_depth").preset,
        Some(firebreak_gateway::presets::Stack::Vllm)
    );
    assert_eq!(
        q("queue_depth").alternatives,
        ["sum(vllm:num_requests_waiting{model_name=\"meta-llama/Llama-3.1-8B\",region=\"$region\"})"]
    );
    assert!(!s.queries.contains_key("gpu_utilization"));
    assert_eq!(s.left_out.len(), 1);
    assert_eq!(s.left_out[0].0, "gpu_utilization");
    let gpu = s
        .gpu
        .as_ref()
        .expect("vLLM's KV-cache signal comes with its preset");
    assert_eq!(gpu.xid, None, "no DCGM, no XIDs");
    assert_eq!(
        gpu.kv_cache_usage.as_ref().unwrap().alternatives.len(),
        2,
        "the current name and the one before vLLM 0.10"
    );
}

/// (what, the broken file, line, key, words of the message)
fn mistakes() -> Vec<(&'static str, String, usize, &'static str, &'static str)> {
    vec![
        (
            "not TOML",
            VALID.replace("cluster = \"prod-east\"", "cluster = prod-east"),
            1,
            "cluster",
            "string values must be quoted",
        ),
        (
            "unknown key",
            VALID.replace("interval_s = 10", "interval_s = 10\nretention = 3"),
            19,
            "retention",
            "unknown field `retention`",
        ),
        (
            "missing cluster name",
            VALID.replace("cluster = \"prod-east\"", "cluster = \"  \""),
            1,
            "cluster",
            "1 to 64 characters",
        ),
        (
            "bad listen address",
            VALID.replace("0.0.0.0:7443", "everywhere"),
            2,
            "listen",
            "not an address and port",
        ),
        (
            "plain text off loopback",
            VALID
                .replace("[tls]\n", "")
                .replace("cert = \"/etc/firebreak/gateway.crt\"\n", "")
                .replace("key = \"/etc/firebreak/gateway.key\"\n", ""),
            2,
            "listen",
            "need TLS",
        ),
        (
            "a token written into the file",
            VALID.replace("env = \"FIREBREAK_TOKEN_CI\"", "token = \"s3cret\""),
            14,
            "tokens[2].token",
            "never goes in the configuration itself",
        ),
        (
            "a token with both file and env",
            VALID.replace(
                "env = \"FIREBREAK_TOKEN_CI\"",
                "env = \"FIREBREAK_TOKEN_CI\"\nfile = \"/tmp/t\"",
            ),
            12,
            "tokens[2]",
            "exactly one of file",
        ),
        (
            "two tokens of one name",
            VALID.replace("name = \"ci\"", "name = \"oncall\""),
            13,
            "tokens[2].name",
            "two tokens are called \"oncall\"",
        ),
        (
            "no tokens",
            VALID
                .replace(
                    "[[tokens]]\nname = \"oncall\"\nfile = \"/etc/firebreak/tokens/oncall\"\n",
                    "",
                )
                .replace(
                    "[[tokens]]\nname = \"ci\"\nenv = \"FIREBREAK_TOKEN_CI\"\n",
                    "",
                ),
            1,
            "tokens",
            "nobody could connect",
        ),
        (
            "bad Prometheus URL",
            VALID.replace("http://127.0.0.1:9090", "prometheus:9090"),
            17,
            "prometheus.url",
            "not an http:// or https:// URL",
        ),
        (
            "interval out of range",
            VALID.replace("interval_s = 10", "interval_s = 0"),
            18,
            "prometheus.interval_s",
            "from 1 to 3600",
        ),
        (
            "bad label name",
            VALID.replace(
                "severity_label = \"priority\"",
                "severity_label = \"pri-ority\"",
            ),
            23,
            "alertmanager.severity_label",
            "not a Prometheus label name",
        ),
        (
            "no regions",
            VALID.replace("regions = [\"us-east\", \"eu-west\"]", "regions = []"),
            27,
            "services[1].regions",
            "at least one",
        ),
        (
            "an empty team",
            VALID.replace(
                "regions = [\"us-east\", \"eu-west\"]\n",
                "regions = [\"us-east\", \"eu-west\"]\nteam = \"  \"\n",
            ),
            28,
            "services[1].team",
            "1 to 128 characters",
        ),
        (
            "unknown metric",
            VALID.replace("error_rate = 'sum", "error_ratio = 'sum"),
            30,
            "services[1].queries.error_ratio",
            "unknown metric \"error_ratio\"",
        ),
        (
            "queries without Prometheus",
            VALID
                .replace("[prometheus]\n", "")
                .replace("url = \"http://127.0.0.1:9090\"\n", "")
                .replace("interval_s = 10\n", ""),
            23,
            "services[1].queries",
            "need a [prometheus] section",
        ),
        (
            "a hook command that is not an absolute path",
            VALID.replace("\"/opt/deploy/rollback\"", "\"rollback.sh\""),
            34,
            "services[1].hooks.rollback.command",
            "not an absolute path",
        ),
        (
            "an unknown placeholder",
            VALID.replace("\"{to}\"", "\"{to_revision}\""),
            34,
            "services[1].hooks.rollback.command",
            "unknown placeholder {to_revision}",
        ),
        (
            "actions without a status hook",
            VALID.replace(
                "status = { command = [\"/opt/deploy/firebreak-status\", \"{service}\"] }\n",
                "",
            ),
            33,
            "services[1].hooks.status",
            "actions need a status hook",
        ),
        (
            "a hook with both a command and a URL",
            VALID.replace(
                "\"{deployment}\", \"{to}\"] }",
                "\"{deployment}\", \"{to}\"], url = \"https://x\" }",
            ),
            34,
            "services[1].hooks.rollback",
            "exactly one of command",
        ),
        (
            "figures by revision without the service's Kubernetes objects",
            VALID.replace(
                "[services.hooks]\n",
                &format!("{REVISIONS}[services.hooks]\n"),
            ),
            31,
            "services[1].revisions",
            "need a [prometheus] section and the service's Kubernetes objects",
        ),
        (
            "a revision query that selects no revision",
            VALID.replace(
                "[services.hooks]\n",
                &format!(
                    "{}[services.hooks]\n",
                    REVISIONS.replace(",revision=\"$revision\"}) #1", "}) #1")
                ),
            ),
            33,
            "services[1].revisions.requests_total",
            "must select one revision with `$revision`",
        ),
        (
            "an unknown revision value",
            VALID.replace(
                "[services.hooks]\n",
                &format!(
                    "{}[services.hooks]\n",
                    REVISIONS.replace("\"pod_template_hash\"", "\"hash\"")
                ),
            ),
            32,
            "services[1].revisions.value",
            "unknown value \"hash\"",
        ),
        (
            "an objective that is no percentage",
            VALID.replace(
                "[services.hooks]\n",
                "[services.slo]\navailability = 100\nrequests = 'r'\nerrors = 'e'\n[services.hooks]\n",
            ),
            32,
            "services[1].slo.availability",
            "a percentage above 0 and below 100",
        ),
        (
            "an objective on an aggregation, not a counter",
            VALID.replace(
                "[services.hooks]\n",
                "[services.slo]\navailability = 99.5\nrequests = 'sum(rate(r[5m]))'\nerrors = 'e'\n[services.hooks]\n",
            ),
            33,
            "services[1].slo.requests",
            "a series selector of a counter",
        ),
        (
            "a latency objective without its query",
            VALID.replace(
                "[services.hooks]\n",
                "[services.slo]\navailability = 99.5\nrequests = 'r'\nerrors = 'e'\nlatency_p99_ms = 2000\n[services.hooks]\n",
            ),
            35,
            "services[1].slo.latency_query",
            "needs both latency_query and latency_p99_ms",
        ),
        (
            "KV-cache pressure without the queue to watch",
            VALID.replace(
                "[services.hooks]\n",
                "[services.gpu]\nkv_cache_usage = 'max(vllm:kv_cache_usage_perc)'\npreemptions_total = 'sum(vllm:num_preemptions_total)'\n[services.hooks]\n",
            ),
            31,
            "services[1].gpu",
            "the service's queue_depth query",
        ),
        (
            "a GPU label that Prometheus would not allow",
            VALID.replace(
                "[services.hooks]\n",
                "[services.gpu]\nxid = 'DCGM_FI_DEV_XID_ERRORS'\nnode_label = \"host-name\"\n[services.hooks]\n",
            ),
            33,
            "services[1].gpu.node_label",
            "not a Prometheus label name",
        ),
        (
            "an unknown serving stack",
            VALID.replace(
                "[services.queries]\n",
                "stack = \"ollama\"\n[services.queries]\n",
            ),
            28,
            "services[1].stack",
            "presets exist for: vllm, triton, tgi, sglang, kserve",
        ),
        (
            "a preset's adjustments without a stack",
            VALID.replace(
                "[services.hooks]\n",
                "[services.preset]\nservice_label = \"model_name\"\n[services.hooks]\n",
            ),
            31,
            "services[1].preset",
            "name the stack",
        ),
        (
            "a preset's match on a label Prometheus would not allow",
            VALID.replace(
                "[services.queries]\n",
                "stack = \"vllm\"\n[services.preset]\nmatch = { \"kube-namespace\" = \"serving\" }\n[services.queries]\n",
            ),
            30,
            "services[1].preset.match.kube-namespace",
            "not a Prometheus label name",
        ),
        (
            "a GPU source the presets do not know",
            VALID.replace(
                "[services.queries]\n",
                "stack = \"vllm\"\n[services.preset]\ngpu = \"rocm\"\n[services.queries]\n",
            ),
            30,
            "services[1].preset.gpu",
            "\"dcgm\" (NVIDIA's DCGM exporter) or \"none\"",
        ),
        (
            "discovery asked too often",
            format!("{VALID}[discovery]\ninterval_s = 0\n[[discovery.prometheus]]\nstack = \"vllm\"\n"),
            37,
            "discovery.interval_s",
            "1 to 3600 seconds",
        ),
        (
            "discovery with nothing to discover by",
            format!("{VALID}[discovery]\ninterval_s = 60\n"),
            36,
            "discovery",
            "one or more [[discovery.prometheus]]",
        ),
        (
            "discovery by a stack without a preset",
            format!("{VALID}[discovery]\n[[discovery.prometheus]]\nstack = \"ollama\"\n"),
            38,
            "discovery.prometheus[1].stack",
            "presets exist for",
        ),
        (
            "discovery in Kubernetes without the API to ask",
            format!("{VALID}[discovery]\n[discovery.kubernetes]\nnamespaces = [\"serving\"]\n"),
            37,
            "discovery.kubernetes",
            "needs a [kubernetes] section",
        ),
        (
            "discovery in a namespace Kubernetes would not allow",
            format!("{VALID}[kubernetes]\n[discovery]\n[discovery.kubernetes]\nnamespaces = [\"Serving_1\"]\n"),
            39,
            "discovery.kubernetes.namespaces",
            "each a Kubernetes namespace name",
        ),
        (
            "a hook timeout out of range",
            VALID.replace("timeout_s = 120", "timeout_s = 0"),
            32,
            "services[1].hooks.timeout_s",
            "from 1 to 3600",
        ),
    ]
}

#[test]
fn every_kind_of_mistake_names_the_file_the_line_and_the_key() {
    for (what, text, line, key, words) in mistakes() {
        let err = parse(Path::new("deploy/gateway.toml"), &text).expect_err(what);
        assert_eq!(err.line, line, "{what}: {err}");
        assert_eq!(err.key, key, "{what}: {err}");
        assert!(err.message.contains(words), "{what}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("deploy/gateway.toml:{line}: ")),
            "{what}: {err}"
        );
    }
}

#[test]
fn gateway_check_exits_non_zero_with_the_mistake_and_zero_when_sound() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, VALID).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak-gateway"))
        .arg("--check")
        .arg(&good)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: cluster prod-east"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        VALID.replace("env = \"FIREBREAK_TOKEN_CI\"", "token = \"s3cret\""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak-gateway"))
        .arg("--check")
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "a mistake must fail the check");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains(":14: tokens[2].token:"), "{said}");
    assert!(
        !said.contains("s3cret"),
        "the refusal never repeats the secret: {said}"
    );
}

mod journal {
    use std::time::Duration;

    use firebreak_gateway::journal::{Answer, DurableJournal, Read, Retention};

    fn event(seq: u64) -> String {
        format!("{{\"sequence\":{seq}}}")
    }

    #[tokio::test]
    async fn sequences_and_the_stream_identity_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = DurableJournal::open(&path, Retention::default())
            .await
            .unwrap();
        let id = j.stream_id().to_owned();
        assert_eq!(j.publish(3, |seq, _| event(seq)).await.unwrap(), 3);
        // No close: as after a crash, what was published is committed.
        drop(j);

        let j = DurableJournal::open(&path, Retention::default())
            .await
            .unwrap();
        assert_eq!(j.stream_id(), id, "a restart is the same stream");
        assert_eq!(j.bounds(), (3, 1));
        assert_eq!(
            j.publish(2, |seq, _| event(seq)).await.unwrap(),
            5,
            "sequences go on from where they were"
        );
        assert_eq!(
            j.read_after(2, 10).await.unwrap(),
            Read::Frames {
                frames: (3..=5).map(|s| event(s).into()).collect(),
                last: 5
            },
            "after=N works across the restart"
        );
        assert_eq!(j.read_after(5, 10).await.unwrap(), Read::Nothing);
        j.close().await;

        // Wiped: a new stream, whose numbers start over, under a new identity.
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_file(dir.path().join("journal.db-wal"));
        let _ = std::fs::remove_file(dir.path().join("journal.db-shm"));
        let j = DurableJournal::open(&path, Retention::default())
            .await
            .unwrap();
        assert_ne!(j.stream_id(), id, "a wiped journal is another stream");
        assert_eq!(j.bounds(), (0, 1));
    }

    /// The newest frames are served from memory, older ones from the file, and the two
    /// give the same frames; retention below the memory tail is still a gap.
    #[tokio::test]
    async fn the_memory_tail_and_the_file_give_the_same_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let retention = Retention {
            count: 50,
            age: Duration::from_secs(3600),
        };
        let j = DurableJournal::open_with(&path, retention, 10)
            .await
            .unwrap();
        j.publish(60, |seq, _| event(seq)).await.unwrap();
        let all = |from: u64, to: u64| -> Vec<axum::extract::ws::Utf8Bytes> {
            (from..=to).map(|s| event(s).into()).collect()
        };
        // 11..=60 are kept (retention 50); 51..=60 are in memory.
        assert_eq!(
            j.read_after(55, 100).await.unwrap(),
            Read::Frames {
                frames: all(56, 60),
                last: 60
            }
        );
        assert_eq!(
            j.read_after(20, 100).await.unwrap(),
            Read::Frames {
                frames: all(21, 60),
                last: 60
            },
            "from the file, across into what memory also holds"
        );
        assert_eq!(
            j.read_after(3, 100).await.unwrap(),
            Read::Gap {
                first_available: 11
            }
        );
        j.close().await;
        // Reopened: the memory tail is loaded from the file.
        let j = DurableJournal::open_with(&path, retention, 10)
            .await
            .unwrap();
        assert_eq!(
            j.read_after(58, 100).await.unwrap(),
            Read::Frames {
                frames: all(59, 60),
                last: 60
            }
        );
        j.close().await;
    }

    #[tokio::test]
    async fn what_retention_dropped_is_a_gap_and_the_numbers_never_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = DurableJournal::open(
            &path,
            Retention {
                count: 4,
                age: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        j.publish(10, |seq, _| event(seq)).await.unwrap();
        assert_eq!(j.bounds(), (10, 7), "the newest four are kept");
        assert_eq!(
            j.read_after(2, 10).await.unwrap(),
            Read::Gap { first_available: 7 },
            "a client behind retention is told what it missed"
        );
        j.close().await;

        // Everything older than the age goes, but never the head's number.
        let j = DurableJournal::open(
            &path,
            Retention {
                count: 100,
                age: Duration::ZERO,
            },
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(j.publish(1, |seq, _| event(seq)).await.unwrap(), 11);
        assert_eq!(j.bounds(), (11, 11), "only the newest frame stays");
        j.close().await;
        let j = DurableJournal::open(&path, Retention::default())
            .await
            .unwrap();
        assert_eq!(
            j.publish(1, |seq, _| event(seq)).await.unwrap(),
            12,
            "a journal emptied by retention goes on from its head"
        );
    }

    #[tokio::test]
    async fn the_first_answer_to_an_idempotency_key_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = DurableJournal::open(&path, Retention::default())
            .await
            .unwrap();
        let first = Answer {
            fingerprint: "rollback llm-assistant-serving to 41".into(),
            status: 202,
            body: "{\"id\":\"a1\"}".into(),
        };
        j.remember("key-1", &first).await.unwrap();
        let second = Answer {
            status: 409,
            ..first.clone()
        };
        j.remember("key-1", &second).await.unwrap();
        drop(j);
        let j = DurableJournal::open(&path, Retention::default())
            .await
            .unwrap();
        assert_eq!(
            j.answer("key-1").await.unwrap(),
            Some(first),
            "a retry after a restart replays the first answer"
        );
        assert_eq!(j.answer("key-2").await.unwrap(), None);
    }
}

mod serving {
    use crate::support::rig::{console, count};
    use crate::support::servers::KillOnDrop;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use firebreak_gateway::config::parse;

    const CONSOLE_TOKEN: &str = "console-token-0123456789";
    const WEBHOOK_TOKEN: &str = "webhook-token-9876543210";

    /// A gateway configuration on a loopback port, its tokens in files under `dir`.
    fn config_text(dir: &Path, listen: &str) -> String {
        config_text_am(dir, listen, "http://127.0.0.1:9093")
    }

    /// [`config_text`] with Alertmanager at `am_url`.
    fn config_text_am(dir: &Path, listen: &str, am_url: &str) -> String {
        std::fs::write(dir.join("console.token"), format!("{CONSOLE_TOKEN}\n")).unwrap();
        std::fs::write(dir.join("webhook.token"), WEBHOOK_TOKEN).unwrap();
        let text = format!(
            "cluster = \"prod-east\"\nlisten = \"{listen}\"\n\
             [[tokens]]\nname = \"oncall\"\nfile = \"{}\"\n\
             [alertmanager]\nurl = \"{am_url}\"\nwebhook_token = {{ file = \"{}\" }}\n\
             cluster_label = \"cluster\"\n\
             [[services]]\nname = \"llm-assistant\"\nregions = [\"us-east\", \"eu-west\"]\n",
            dir.join("console.token").display(),
            dir.join("webhook.token").display()
        );
        parse(Path::new("gateway.toml"), &text).expect("the test's configuration is sound");
        text
    }

    fn notification(status: &str, ends_at: &str) -> String {
        format!(
            r#"{{"receiver":"firebreak","status":"{status}","version":"4","groupKey":"g","truncatedAlerts":0,
            "groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am",
            "alerts":[{{"status":"{status}",
              "labels":{{"alertname":"HighErrorRate","service":"llm-assistant","region":"us-east","severity":"critical"}},
              "annotations":{{"summary":"llm-assistant error rate 9.1 % in us-east","value":"0.091","threshold":"0.05"}},
              "startsAt":"2026-11-30T03:01:21.5Z","endsAt":"{ends_at}","generatorURL":"http://prom/graph",
              "fingerprint":"5b2a1f4c9e0d7a31"}}]}}"#
        )
    }

    async fn post(base: &str, token: &str, body: String) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{base}/v1/alertmanager"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// A stranger who can reach the port holds 2,000 idle connections and starts 40
    /// webhook posts announcing 2 MiB bodies with a wrong token: each post is refused on
    /// its headers (no body byte read), the connections over the per-address cap are
    /// closed at once and the rest once their headers are overdue, and meanwhile a console
    /// from another address is served.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_stranger_holding_thousands_of_connections_cannot_take_the_gateway_down() {
        use crate::support::servers::{
            answer_without_body, closed_by_server, free_port, hold_connections,
        };
        firebreak_common::process::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let _gw = spawn_gateway(dir.path(), port).await;
        let mut idle = hold_connections(port, 2_000, None).await;
        let mut slow = Vec::new();
        for _ in 0..40 {
            slow.push(
                answer_without_body(
                    port,
                    "POST /v1/alertmanager HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer wrong\r\n\
                     content-type: application/json\r\ncontent-length: 2097152\r\n\r\n",
                )
                .await,
            );
        }
        assert!(
            slow.iter().all(|l| l.starts_with("HTTP/1.1 401")),
            "the token is checked before the body is read: {slow:?}"
        );
        let status = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/v1/gateway/status"))
            .bearer_auth(CONSOLE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(status.status(), 200, "the console is served meanwhile");
        crate::support::rig::wait_for(
            Duration::from_secs(60),
            "the gateway to let go of every idle connection",
            async || closed_by_server(&mut idle).await == idle.len(),
        )
        .await;
    }

    /// `firebreak gateway --config` as a process of its own, on a fixed loopback port.
    async fn spawn_gateway(dir: &Path, port: u16) -> KillOnDrop {
        spawn_gateway_am(dir, port, "http://127.0.0.1:9093").await
    }

    /// [`spawn_gateway`] with Alertmanager at `am_url`.
    async fn spawn_gateway_am(dir: &Path, port: u16, am_url: &str) -> KillOnDrop {
        let file = dir.join("gateway.toml");
        std::fs::write(
            &file,
            config_text_am(dir, &format!("127.0.0.1:{port}"), am_url),
        )
        .unwrap();
        crate::support::servers::spawn_gateway(
            std::process::Command::new(env!("CARGO_BIN_EXE_firebreak-gateway")),
            &file,
            &dir.join("gateway-data"),
            port,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_alertmanager_notification_reaches_the_console_once_across_a_gateway_kill_9() {
        firebreak_common::process::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let events_url = format!("ws://127.0.0.1:{port}/v1/events");
        let gw = spawn_gateway(dir.path(), port).await;

        // A console subscribes with its named token, as it would to any cluster.
        let db = dir.path().join("console/firebreak.db");
        let (store, engine, _, _) = console(
            &db,
            "prod-east",
            &events_url,
            &base.clone(),
            Some(CONSOLE_TOKEN),
        )
        .await;

        // Only the webhook's own token is accepted on the webhook.
        let firing = notification("firing", "0001-01-01T00:00:00Z");
        let (status, _) = post(&base, CONSOLE_TOKEN, firing.clone()).await;
        assert_eq!(status, 401, "the console's token is not the webhook's");
        let (status, answer) = post(&base, WEBHOOK_TOKEN, firing.clone()).await;
        assert_eq!(
            (status, answer["accepted"].as_u64()),
            (200, Some(1)),
            "{answer}"
        );
        // Alertmanager sends the same notification again: not a new event.
        let (_, again) = post(&base, WEBHOOK_TOKEN, firing.clone()).await;
        assert_eq!(again["duplicates"].as_u64(), Some(1), "{again}");
        let (status, bad) = post(&base, WEBHOOK_TOKEN, "{\"version\":\"3\"}".into()).await;
        assert_eq!(status, 400, "{bad}");

        crate::support::rig::wait_for(
            Duration::from_secs(30),
            "the incident the alert opens",
            async || !store.incidents().await.unwrap().is_empty(),
        )
        .await;
        let incident = store.incidents().await.unwrap().remove(0);
        assert_eq!(incident.title, "llm-assistant error rate 9.1 % in us-east");
        assert_eq!(incident.service.as_deref(), Some("llm-assistant"));

        // kill -9 and restart on the same journal: the stream goes on; the notification
        // Alertmanager repeats is still no new event, and the resolved one is the next.
        drop(gw);
        let _gw = spawn_gateway(dir.path(), port).await;
        let (_, again) = post(&base, WEBHOOK_TOKEN, firing).await;
        assert_eq!(again["duplicates"].as_u64(), Some(1), "{again}");
        let (_, answer) = post(
            &base,
            WEBHOOK_TOKEN,
            notification("resolved", "2026-11-30T03:09:00Z"),
        )
        .await;
        assert_eq!(answer["accepted"].as_u64(), Some(1), "{answer}");
        crate::support::rig::wait_for(Duration::from_secs(60), "the resolved alert", async || {
            count(
                &db,
                "SELECT COUNT(*) FROM events WHERE type = 'dev.firebreak.alert.resolved'",
            )
            .await
                == 1
        })
        .await;
        engine.stop().await;
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM events").await,
            2,
            "each alert notification once: nothing lost, nothing repeated"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM stream_gaps").await,
            0,
            "a gateway restart is the same stream: no restart, no gap"
        );
    }

    /// The real Alertmanager (Debian's 0.25) posts to the gateway: an alert sent to its
    /// API is grouped, notified to the webhook with the webhook's token, and opens the
    /// incident on the console.
    /// Posts alerts to Alertmanager's API (as Prometheus does), once it is up.
    async fn post_alerts(am_port: u16, alerts: serde_json::Value) {
        let am_api = format!("http://127.0.0.1:{am_port}/api/v2/alerts");
        crate::support::rig::wait_for(
            Duration::from_secs(30),
            "Alertmanager to take the alerts",
            async || {
                reqwest::Client::new()
                    .post(&am_api)
                    .json(&alerts)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
    }

    /// Alertmanager takes an alert while the gateway is down (its notification fails):
    /// the gateway reads it from Alertmanager's API when it starts, and the console opens
    /// the incident. The engineer silences the alert from its timeline entry through the
    /// desk: the silence appears in Alertmanager with the alert's matchers and who asked.
    /// The alert resolves while the gateway is down again: after it is back, the console
    /// records the resolution exactly once.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_gateway_catches_up_with_alertmanager_and_the_console_silences_an_alert() {
        use firebreak_engine::actions::{ActionDesk, Tokens};
        use firebreak_engine::ingest::sink::{ConsoleSink, StatusBoard};
        use firebreak_store::actions::ActionState;
        firebreak_common::process::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (port, am_port) = (
            crate::support::servers::free_port(),
            crate::support::servers::free_port(),
        );
        let am_url = format!("http://127.0.0.1:{am_port}");
        let _am = crate::support::servers::start_alertmanager(dir.path(), port, am_port);
        let starts = chrono::Utc::now() - chrono::Duration::seconds(30);
        let alert = |ends: Option<chrono::DateTime<chrono::Utc>>| {
            let mut a = serde_json::json!({
                "labels": {"alertname": "GpuXidErrors", "service": "llm-assistant", "region": "us-east",
                           "severity": "critical", "cluster": "prod-east"},
                "annotations": {"summary": "XID 79 on 3 GPU nodes of llm-assistant in us-east"},
                "startsAt": starts.to_rfc3339(),
            });
            if let Some(e) = ends {
                a["endsAt"] = serde_json::json!(e.to_rfc3339());
            }
            serde_json::json!([a])
        };
        // The gateway is not running: Alertmanager's notification goes nowhere. The
        // Alertmanager is shared: the same alert fires in cluster prod-west, whose gateway
        // is not this one.
        post_alerts(am_port, alert(None)).await;
        let mut west = alert(None);
        west[0]["labels"]["cluster"] = serde_json::json!("prod-west");
        post_alerts(am_port, west).await;

        let mut gw = spawn_gateway_am(dir.path(), port, &am_url).await;
        let db = dir.path().join("console/firebreak.db");
        let (store, engine, recorder, cluster) = console(
            &db,
            "prod-east",
            &format!("ws://127.0.0.1:{port}/v1/events"),
            &format!("http://127.0.0.1:{port}"),
            Some(CONSOLE_TOKEN),
        )
        .await;
        crate::support::rig::wait_for(
            Duration::from_secs(60),
            "the incident from the catch-up",
            async || !store.incidents().await.unwrap().is_empty(),
        )
        .await;
        let incident = store.incidents().await.unwrap().remove(0);
        assert_eq!(
            incident.title,
            "XID 79 on 3 GPU nodes of llm-assistant in us-east"
        );

        // Silence it from its entry, through the desk's guard rails.
        let entry = store
            .timeline(incident.id, None, 200)
            .await
            .unwrap()
            .into_iter()
            .find(|e| {
                e.kind == firebreak_store::incident::EntryKind::Event
                    && e.event_type.as_deref() == Some("alert.firing")
            })
            .expect("the alert's entry");
        let tokens = Tokens::default();
        tokens.set(cluster, CONSOLE_TOKEN);
        let sink: Arc<dyn ConsoleSink> = recorder.clone();
        let desk = ActionDesk::new(
            store.clone(),
            tokens,
            Arc::new(StatusBoard::default()),
            sink,
        );
        let proposed = desk
            .propose_silence(incident.id, entry.id, 3600, "alice")
            .await
            .unwrap();
        assert_eq!(
            proposed.preview.summary,
            "Silence GpuXidErrors on llm-assistant in us-east for 1 h"
        );
        // The preview says exactly what it mutes now, as Alertmanager has it: this
        // cluster's alert, not prod-west's, under the matchers the silence will have.
        assert_eq!(
            proposed.preview.precondition,
            "matchers: alertname=\"GpuXidErrors\", service=\"llm-assistant\", region=\"us-east\", cluster=\"prod-east\""
        );
        let muted = &proposed.preview.target_health.text;
        assert!(
            muted.starts_with("mutes 1 alert firing now")
                && muted.contains("cluster=\"prod-east\"")
                && !muted.contains("prod-west"),
            "{muted}"
        );
        assert_eq!(
            store.incidents().await.unwrap().len(),
            1,
            "prod-west's alert opens nothing here"
        );
        // An entry that is not an alert cannot be silenced.
        let opened = store
            .timeline(incident.id, None, 200)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.kind == firebreak_store::incident::EntryKind::Opened)
            .unwrap();
        assert!(desk
            .propose_silence(incident.id, opened.id, 3600, "alice")
            .await
            .is_err());
        desk.confirm(
            &proposed.id,
            "alice",
            "known GPU fault, vendor ticket open",
            None,
        )
        .await
        .unwrap();
        let done = desk.drive(&proposed.id).await.unwrap();
        assert_eq!(done.state, ActionState::Succeeded, "{done:?}");
        let silences: serde_json::Value = reqwest::get(format!("{am_url}/api/v2/silences"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let silences = silences.as_array().unwrap();
        assert_eq!(silences.len(), 1, "{silences:?}");
        let s = &silences[0];
        assert_eq!(s["status"]["state"], "active");
        assert_eq!(s["comment"], "known GPU fault, vendor ticket open");
        assert!(s["createdBy"]
            .as_str()
            .unwrap()
            .contains("oncall for alice"));
        let mut matchers: Vec<(String, String)> = s["matchers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        matchers.sort();
        assert_eq!(
            matchers,
            [
                ("alertname".to_owned(), "GpuXidErrors".to_owned()),
                ("cluster".to_owned(), "prod-east".to_owned()),
                ("region".to_owned(), "us-east".to_owned()),
                ("service".to_owned(), "llm-assistant".to_owned())
            ],
            "the gateway adds its own cluster to every silence in a shared Alertmanager"
        );

        // A console token cannot mute more than one configured service of this cluster.
        let hostile = [
            (
                serde_json::json!([{"name": "alertname", "value": ".+", "is_regex": true}]),
                "pattern or negated matcher",
            ),
            (
                serde_json::json!([{"name": "alertname", "value": "GpuXidErrors"}]),
                "must name the service",
            ),
            (
                serde_json::json!([{"name": "service", "value": "billing"}]),
                "not a service of this gateway",
            ),
            (
                serde_json::json!([{"name": "service", "value": "llm-assistant"},
                                   {"name": "region", "value": "us-east", "is_equal": false}]),
                "pattern or negated matcher",
            ),
            (
                serde_json::json!([{"name": "service", "value": "llm-assistant"},
                                   {"name": "cluster", "value": "prod-west"}]),
                "beyond this gateway's cluster",
            ),
        ];
        for (n, (matchers, why)) in hostile.into_iter().enumerate() {
            let answer = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/v1/alerts/silence"))
                .bearer_auth(CONSOLE_TOKEN)
                .header("idempotency-key", format!("hostile-silence-{n}"))
                .json(&serde_json::json!({
                    "matchers": matchers, "duration_s": 604_800,
                    "comment": "quiet please", "actor": "mallory",
                }))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            assert_eq!(status, 400, "{matchers} must be refused: {body}");
            assert!(body.contains(why), "{body} says why ({why})");
            // Nor can it list what such a silence would reach.
            let preview = reqwest::Client::new()
                .post(format!("http://127.0.0.1:{port}/v1/alerts/silence/preview"))
                .bearer_auth(CONSOLE_TOKEN)
                .json(&serde_json::json!({ "matchers": matchers }))
                .send()
                .await
                .unwrap();
            assert_eq!(preview.status().as_u16(), 400, "{matchers}");
            assert!(preview.text().await.unwrap().contains(why));
        }
        // The preview is behind the token like every other route.
        let stranger = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/alerts/silence/preview"))
            .json(
                &serde_json::json!({ "matchers": [{"name": "service", "value": "llm-assistant"}] }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(stranger.status().as_u16(), 401);
        let silences: serde_json::Value = reqwest::get(format!("{am_url}/api/v2/silences"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            silences.as_array().unwrap().len(),
            1,
            "no hostile silence reached Alertmanager: {silences}"
        );

        // Resolved while the gateway is down; recorded once after it is back.
        gw.kill_9();
        post_alerts(am_port, alert(Some(chrono::Utc::now()))).await;
        let _gw = spawn_gateway_am(dir.path(), port, &am_url).await;
        let resolved = "SELECT COUNT(*) FROM events WHERE type = 'dev.firebreak.alert.resolved'";
        crate::support::rig::wait_for(Duration::from_secs(60), "the resolution", async || {
            count(&db, resolved).await == 1
        })
        .await;
        // Later catch-ups and Alertmanager's own retries add nothing.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(count(&db, resolved).await, 1);
        let firing = "SELECT COUNT(*) FROM events WHERE type = 'dev.firebreak.alert.firing'";
        assert_eq!(count(&db, firing).await, 1);
        engine.stop().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_real_alertmanager_notifies_the_gateway_and_the_console_opens_the_incident() {
        firebreak_common::process::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (port, am_port) = (
            crate::support::servers::free_port(),
            crate::support::servers::free_port(),
        );
        let _gw = spawn_gateway(dir.path(), port).await;
        let _am = crate::support::servers::start_alertmanager(dir.path(), port, am_port);

        let db = dir.path().join("console/firebreak.db");
        let (store, engine, _, _) = console(
            &db,
            "prod-east",
            &format!("ws://127.0.0.1:{port}/v1/events"),
            &format!("http://127.0.0.1:{port}"),
            Some(CONSOLE_TOKEN),
        )
        .await;

        let alert = serde_json::json!([{
            "labels": {"alertname": "QueueBacklog", "service": "search-ranking", "region": "eu-west", "severity": "critical"},
            "annotations": {"summary": "search-ranking has 420 requests waiting in eu-west", "value": "420", "threshold": "200"},
            "startsAt": chrono::Utc::now().to_rfc3339(),
        }]);
        let am_api = format!("http://127.0.0.1:{am_port}/api/v2/alerts");
        crate::support::rig::wait_for(
            Duration::from_secs(30),
            "Alertmanager to take the alert",
            async || {
                reqwest::Client::new()
                    .post(&am_api)
                    .json(&alert)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
        crate::support::rig::wait_for(
            Duration::from_secs(60),
            "the incident from Alertmanager",
            async || !store.incidents().await.unwrap().is_empty(),
        )
        .await;
        let incident = store.incidents().await.unwrap().remove(0);
        assert_eq!(
            incident.title,
            "search-ranking has 420 requests waiting in eu-west"
        );
        assert_eq!(
            incident.severity,
            firebreak_store::incident::Severity::Critical
        );
        engine.stop().await;
    }

    /// The gateway serves wss and https itself, with the certificate and key the
    /// configuration names; a client that trusts its CA connects, one that does not is
    /// refused at the handshake.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_gateway_serves_wss_and_https_and_a_client_without_its_ca_is_refused() {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        firebreak_common::process::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let (ca, text) = tls_config(dir.path());
        let config = parse(Path::new("gateway.toml"), &text).unwrap();
        let gw = firebreak_gateway::serve::start(&config, &dir.path().join("journal.db"))
            .await
            .unwrap();
        assert!(gw.events_url().starts_with("wss://"));

        // https, trusting the CA.
        let trusting = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        let status = trusting
            .get(format!("{}/v1/gateway/status", gw.base_url()))
            .bearer_auth(CONSOLE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(status.status().as_u16(), 200);
        let body: serde_json::Value = status.json().await.unwrap();
        assert_eq!(body["cluster"], "prod-east");

        // wss, trusting the CA: the stream's hello arrives.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut request = gw.events_url().into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {CONSOLE_TOKEN}").parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
        )
        .await
        .unwrap();
        let hello = ws.next().await.unwrap().unwrap().into_text().unwrap();
        assert!(hello.contains("\"control\":\"hello\""), "{hello}");

        // A client that trusts only the public roots is refused at the handshake.
        let refused = reqwest::Client::new()
            .get(format!("{}/v1/gateway/status", gw.base_url()))
            .send()
            .await
            .unwrap_err();
        let chain = format!("{refused:?}");
        assert!(
            chain.contains("UnknownIssuer") || chain.to_lowercase().contains("certificate"),
            "{chain}"
        );
        gw.shutdown();
    }

    /// A certificate authority of the test's own, and a gateway configuration serving
    /// wss/https with a certificate from it for localhost and 127.0.0.1.
    fn tls_config(dir: &Path) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
        let (ca, tls) = crate::support::tls::server_files(dir);
        (ca, format!("{}{tls}", config_text(dir, "127.0.0.1:0")))
    }

    /// A gateway behind a company's own CA: the console's stream trusts what the OS trusts
    /// plus the cluster's CA file, and goes live; a console given another CA is refused
    /// with a message that says the certificate is not signed by a CA it trusts.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_console_trusts_the_clusters_ca_file_and_says_so_when_the_ca_is_wrong() {
        use firebreak_engine::ingest::sink::StreamState;
        let dir = tempfile::tempdir().unwrap();
        let (_ca, text) = tls_config(dir.path());
        let config = parse(Path::new("gateway.toml"), &text).unwrap();
        let gw = firebreak_gateway::serve::start(&config, &dir.path().join("journal.db"))
            .await
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        let (_store, engine, recorder, _) = crate::support::rig::console_trusting(
            &dir.path().join("trusting.db"),
            "prod-east",
            &gw.events_url(),
            &gw.base_url(),
            Some(CONSOLE_TOKEN),
            Some(&ca_file),
        )
        .await;
        let live = async || {
            recorder
                .statuses
                .lock()
                .unwrap()
                .iter()
                .any(|s| matches!(s.stream, StreamState::Live { .. }))
        };
        crate::support::rig::wait_for(Duration::from_secs(20), "the stream to go live", live).await;
        engine.stop().await;

        // Another CA: refused at the handshake, and the reason says what to fix.
        let other = crate::support::tls::ca("Somebody else's CA");
        let wrong = dir.path().join("other-ca.pem");
        std::fs::write(&wrong, other.pem()).unwrap();
        let (_store, engine, recorder, _) = crate::support::rig::console_trusting(
            &dir.path().join("wrong.db"),
            "prod-east",
            &gw.events_url(),
            &gw.base_url(),
            Some(CONSOLE_TOKEN),
            Some(&wrong),
        )
        .await;
        let reason = async || {
            recorder
                .statuses
                .lock()
                .unwrap()
                .iter()
                .find_map(|s| match &s.stream {
                    StreamState::Reconnecting { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
        };
        let mut said = None;
        crate::support::rig::wait_for(Duration::from_secs(20), "a refusal", async || {
            said = reason().await;
            said.is_some()
        })
        .await;
        let said = said.unwrap();
        assert!(
            said.contains("not signed by a CA this console trusts"),
            "{said}"
        );
        assert!(said.contains("other-ca.pem"), "{said}");
        assert!(
            !recorder
                .statuses
                .lock()
                .unwrap()
                .iter()
                .any(|s| matches!(s.stream, StreamState::Live { .. })),
            "never live with the wrong CA"
        );
        engine.stop().await;
        gw.shutdown();
    }
}

/// The Kubernetes side of a configuration: where the API is, how nodes and model versions
/// are read, and each service's objects; each mistake named by line and key.
mod kubernetes_config {
    use std::path::Path;

    use firebreak_gateway::config::{parse, ModelVersionSource, RouteKind, WorkloadKind};

    const K8S: &str = r#"cluster = "prod-east"
listen = "127.0.0.1:7443"

[[tokens]]
name = "oncall"
env = "FIREBREAK_TOKEN"

[kubernetes]
context = "prod-east-admin"
pool_label = "cloud.google.com/gke-nodepool"
model_version = { annotation = "serving.example.com/model-version" }

[[services]]
name = "llm-assistant"
regions = ["us-east", "eu-west"]
[services.kubernetes]
namespace = "serving"
name = "llm-assistant-vllm"
pods = "app=llm-assistant,tier=serving"
node_pool = "gpu-a100"
[services.kubernetes.route]
namespace = "serving"
name = "llm-assistant"
backends = { us-east = "llm-assistant-us-east", eu-west = "llm-assistant-eu-west" }
"#;

    #[test]
    fn a_kubernetes_section_reads_as_written() {
        let c = parse(Path::new("gateway.toml"), K8S).unwrap();
        let k = c.kubernetes.unwrap();
        assert_eq!(k.kubeconfig, None, "the service account, in the cluster");
        assert_eq!(k.context.as_deref(), Some("prod-east-admin"));
        assert_eq!(k.region_label, "topology.kubernetes.io/region");
        assert_eq!(k.pool_label, "cloud.google.com/gke-nodepool");
        assert_eq!(
            k.model_version,
            ModelVersionSource::Annotation("serving.example.com/model-version".into())
        );
        let o = c.services[0].kubernetes.clone().unwrap();
        assert_eq!(o.kind, WorkloadKind::Deployment);
        assert_eq!(o.name, "llm-assistant-vllm");
        assert_eq!(
            o.pods,
            [
                ("app".to_owned(), "llm-assistant".to_owned()),
                ("tier".to_owned(), "serving".to_owned())
            ]
        );
        let route = o.route.unwrap();
        assert_eq!(route.kind, RouteKind::HttpRoute, "the default");
        assert_eq!(
            route.backends["eu-west"].to_string(),
            "Service serving/llm-assistant-eu-west",
            "a name alone: a Service in the route's namespace, any port"
        );
        let istio = K8S.replace(
            "[services.kubernetes.route]\n",
            "[services.kubernetes.route]\nkind = \"VirtualService\"\n",
        );
        let c = parse(Path::new("gateway.toml"), &istio).unwrap();
        let route = c.services[0].kubernetes.clone().unwrap().route.unwrap();
        assert_eq!(route.kind, RouteKind::VirtualService);

        // Same-named Services in two namespaces, told apart as the Gateway API does.
        let apart = K8S.replace(
            "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
            "{ us-east = { name = \"chat\", namespace = \"serving-us-east\", port = 8000 }, eu-west = { name = \"chat\", namespace = \"serving-eu-west\" } }",
        );
        let c = parse(Path::new("gateway.toml"), &apart).unwrap();
        let route = c.services[0].kubernetes.clone().unwrap().route.unwrap();
        assert_eq!(
            route.backends["us-east"].to_string(),
            "Service serving-us-east/chat port 8000"
        );
        assert_eq!(
            route.backends["eu-west"].to_string(),
            "Service serving-eu-west/chat"
        );
        // Istio: one host, two subsets.
        let subsets = istio.replace(
            "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
            "{ us-east = { host = \"chat\", subset = \"us-east\" }, eu-west = { host = \"chat\", subset = \"eu-west\" } }",
        );
        let c = parse(Path::new("gateway.toml"), &subsets).unwrap();
        let route = c.services[0].kubernetes.clone().unwrap().route.unwrap();
        assert_eq!(route.backends["eu-west"].to_string(), "chat subset eu-west");
        let one_host = istio.replace(
            "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
            "{ us-east = { host = \"chat\", subset = \"us-east\" }, eu-west = \"chat\" }",
        );
        let err = parse(Path::new("gateway.toml"), &one_host).unwrap_err();
        assert!(err.message.contains("the subset or the port"), "{err}");
    }

    #[test]
    fn each_kubernetes_mistake_names_its_line_and_key() {
        let cases = [
            (
                K8S.replace(
                    "[kubernetes]\ncontext = \"prod-east-admin\"\npool_label = \"cloud.google.com/gke-nodepool\"\nmodel_version = { annotation = \"serving.example.com/model-version\" }\n",
                    "",
                ),
                12,
                "services[1].kubernetes",
                "need a [kubernetes] section",
            ),
            (
                K8S.replace("eu-west = \"llm-assistant-eu-west\" ", ""),
                24,
                "services[1].kubernetes.route.backends",
                "missing: eu-west",
            ),
            (
                K8S.replace("name = \"llm-assistant-vllm\"", "name = \"llm-assistant-vllm\"\nkind = \"StatefulSet\""),
                19,
                "services[1].kubernetes.kind",
                "\"Deployment\" or an Argo \"Rollout\"",
            ),
            (
                K8S.replace(
                    "[services.kubernetes.route]\n",
                    "[services.kubernetes.route]\nkind = \"Ingress\"\n",
                ),
                22,
                "services[1].kubernetes.route.kind",
                "an Istio \"VirtualService\"",
            ),
            (
                K8S.replace("app=llm-assistant,tier=serving", "app in (llm-assistant)"),
                19,
                "services[1].kubernetes.pods",
                "key=value pairs",
            ),
            (
                K8S.replace(
                    "{ annotation = \"serving.example.com/model-version\" }",
                    "{ annotation = \"a\", label = \"b\" }",
                ),
                11,
                "kubernetes.model_version",
                "exactly one of annotation",
            ),
            (
                K8S.replace("namespace = \"serving\"\nname = \"llm-assistant-vllm\"", "namespace = \"Serving_NS\"\nname = \"llm-assistant-vllm\""),
                17,
                "services[1].kubernetes.namespace",
                "not a Kubernetes name",
            ),
            (
                K8S.replace(
                    "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
                    "{ us-east = \"chat\", eu-west = \"chat\" }",
                ),
                24,
                "services[1].kubernetes.route.backends.us-east",
                "eu-west and us-east name the same backend (Service serving/chat)",
            ),
            (
                K8S.replace(
                    "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
                    "{ us-east = { name = \"chat\", port = 8000 }, eu-west = \"chat\" }",
                ),
                24,
                "services[1].kubernetes.route.backends.us-east",
                "eu-west (Service serving/chat) and us-east (Service serving/chat port 8000) could be the same backend",
            ),
            (
                K8S.replace(
                    "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
                    "{ us-east = { name = \"chat\", port = 70000 }, eu-west = \"chat-eu\" }",
                ),
                24,
                "services[1].kubernetes.route.backends.us-east",
                "port 70000 is not a port",
            ),
            (
                K8S.replace(
                    "{ us-east = \"llm-assistant-us-east\", eu-west = \"llm-assistant-eu-west\" }",
                    "{ us-east = { host = \"chat.us\" }, eu-west = \"chat-eu\" }",
                ),
                24,
                "services[1].kubernetes.route.backends.us-east",
                "host and subset are an Istio VirtualService's",
            ),
        ];
        for (text, line, key, words) in cases {
            let err = parse(Path::new("gateway.toml"), &text).expect_err(key);
            assert_eq!(err.key, key, "{err}");
            assert_eq!(err.line, line, "{err}");
            assert!(err.message.contains(words), "{err}");
        }
    }
}
