//! The gateway: its configuration, checked as a whole with file, line and key for every
//! mistake, and `firebreak gateway --check` for a team's CI.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;

use firebreak::gateway::config::{parse, Secret};

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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["gateway", "--check"])
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["gateway", "--check"])
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

    use firebreak::gateway::journal::{Answer, DurableJournal, Read, Retention};

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
