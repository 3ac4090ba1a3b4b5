//! The gateway's action API over a team's own deploy tooling (action hooks): driven by the
//! console's action client over https, trusting the gateway's CA from a file, as a console
//! behind a company CA would. The hooks are shell scripts that keep the "cluster" in a
//! JSON file, so the tests can see what they did.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use firebreak_engine::actions::client::{ActionClient, Outcome};
use firebreak_gateway::config::parse;
use firebreak_protocol::actions::{
    Action, ActionState, FailoverRequest, RollbackRequest, IDEMPOTENCY_KEY,
};

const TOKEN: &str = "console-token-0123456789";

/// Scripts standing in for a deploy tool: `status` prints the state file; `rollback` and
/// `failover` rewrite it (and say what they did), failing when `fail` exists, hanging when
/// `hang` exists.
fn write_hooks(dir: &Path) -> PathBuf {
    let state = dir.join("state.json");
    std::fs::write(
        &state,
        r#"{"revision": 42, "revisions": [{"revision": 41, "model_version": "llama-70b-2026-10"}, {"revision": 42, "model_version": "llama-70b-2026-11"}], "primary_region": "us-east", "nodes_total": 24}"#,
    )
    .unwrap();
    let d = dir.display();
    let scripts = [
        ("status", format!("#!/bin/sh\ncat {d}/state.json\n")),
        (
            "rollback",
            format!(
                "#!/bin/sh\nif [ -e {d}/hang ]; then sleep 30 & echo $! > {d}/child.pid; wait; fi\n\
                 if [ -e {d}/flood ]; then head -c 1048576 /dev/zero | tr '\\0' x; echo; fi\n\
                 if [ -e {d}/leak ]; then env > {d}/env.txt; echo \"the gateway's token is $(cat {d}/oncall.token)\"; fi\n\
                 if [ -e {d}/fail ]; then echo 'deploy-tool: error: cluster API forbidden' >&2; exit 3; fi\n\
                 echo \"rolling $FIREBREAK_DEPLOYMENT back from $1 to $2 for $FIREBREAK_REQUESTED_BY ($FIREBREAK_ACTOR)\"\n\
                 sed -i \"s/\\\"revision\\\": $1,/\\\"revision\\\": $2,/\" {d}/state.json\n\
                 echo \"$FIREBREAK_ACTION_ID\" >> {d}/ran\n"
            ),
        ),
        (
            "failover",
            format!(
                "#!/bin/sh\necho \"moving $FIREBREAK_SERVICE from $FIREBREAK_FROM to $FIREBREAK_TO\"\n\
                 sed -i \"s/\\\"primary_region\\\": \\\"$FIREBREAK_FROM\\\"/\\\"primary_region\\\": \\\"$FIREBREAK_TO\\\"/\" {d}/state.json\n"
            ),
        ),
    ];
    for (name, text) in scripts {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    state
}

/// A gateway configuration with TLS from a test CA, one token called "oncall", and a
/// service whose actions run the scripts.
fn config_text(dir: &Path, listen: &str) -> String {
    write_hooks(dir);
    std::fs::write(dir.join("oncall.token"), TOKEN).unwrap();
    let (_ca, tls) = support::tls::server_files(dir);
    let d = dir.display();
    format!(
        "cluster = \"prod-east\"\nlisten = \"{listen}\"\n\
         [[tokens]]\nname = \"oncall\"\nfile = \"{d}/oncall.token\"\n\
         {tls}\
         [[services]]\nname = \"llm-assistant\"\ndeployment = \"llm-assistant-vllm\"\nregions = [\"us-east\", \"eu-west\"]\n\
         [services.hooks]\ntimeout_s = 2\nenv = [\"CARGO_MANIFEST_DIR\"]\n\
         status = {{ command = [\"{d}/status\"] }}\n\
         rollback = {{ command = [\"{d}/rollback\", \"{{from}}\", \"{{to}}\"] }}\n\
         failover = {{ command = [\"{d}/failover\"] }}\n"
    )
}

async fn start(dir: &Path) -> firebreak_gateway::serve::RunningGateway {
    let text = config_text(dir, "127.0.0.1:0");
    let config = parse(Path::new("gateway.toml"), &text).unwrap();
    firebreak_gateway::serve::start(&config, &dir.join("journal.db"))
        .await
        .unwrap()
}

fn client(dir: &Path, base: &str) -> ActionClient {
    ActionClient::new(base, Some(TOKEN.into()), Some(&dir.join("ca.pem"))).unwrap()
}

fn rollback(expected: u32, to: u32) -> RollbackRequest {
    RollbackRequest {
        to_revision: to,
        expected_revision: expected,
        actor: "alice@laptop".into(),
        reason: "error rate after revision 42".into(),
    }
}

/// Reads the action until its hook has finished.
async fn settled(client: &ActionClient, id: &str) -> Action {
    let mut last = None;
    support::rig::wait_for(Duration::from_secs(20), "the hook to finish", async || {
        if let Outcome::Ok(a) = client.action(id).await {
            let done = a.state.is_final();
            last = Some(a);
            return done;
        }
        false
    })
    .await;
    last.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_runs_the_hook_once_after_checking_the_status_hook() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let c = client(dir.path(), &gw.base_url());

    // What the status hook reports is what the console reads.
    let Outcome::Ok(d) = c.deployment("llm-assistant-vllm").await else {
        panic!("the deployment is readable")
    };
    assert_eq!(d.current_revision, 42);
    assert_eq!(d.service, "llm-assistant");
    assert_eq!(d.revisions.len(), 2);
    let Outcome::Ok(services) = c.services().await else {
        panic!("services are readable")
    };
    assert_eq!(services[0].primary_region, "us-east");

    // A stale precondition: refused with the current state, nothing run.
    match c
        .rollback("llm-assistant-vllm", &rollback(40, 39), "key-stale")
        .await
    {
        Outcome::Refused { status, error } => {
            assert_eq!(status, 409);
            assert_eq!(error.error, "precondition_failed");
            assert_eq!(error.current.unwrap()["revision"], 42);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!dir.path().join("ran").exists(), "no hook ran");

    // The real one: accepted, the hook runs, its output is kept, the actor is the token's.
    let Outcome::Ok(accepted) = c
        .rollback("llm-assistant-vllm", &rollback(42, 41), "key-1")
        .await
    else {
        panic!("accepted")
    };
    assert_eq!(accepted.actor, "oncall");
    assert_eq!((accepted.from.as_str(), accepted.to.as_str()), ("42", "41"));
    let done = settled(&c, &accepted.id).await;
    assert_eq!(done.state, ActionState::Succeeded, "{done:?}");
    let output = done.output.unwrap();
    assert!(
        output.contains("rolling llm-assistant-vllm back from 42 to 41 for alice@laptop (oncall)"),
        "{output}"
    );
    let Outcome::Ok(d) = c.deployment("llm-assistant-vllm").await else {
        panic!("readable")
    };
    assert_eq!(d.current_revision, 41, "the hook changed the cluster");
    assert_eq!(d.last_changed_by.as_deref(), Some("oncall"));

    // The same key again: the first answer, and the hook does not run a second time.
    let Outcome::Ok(again) = c
        .rollback("llm-assistant-vllm", &rollback(42, 41), "key-1")
        .await
    else {
        panic!("replayed")
    };
    assert_eq!(again.id, accepted.id);
    let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
    assert_eq!(ran.lines().count(), 1, "{ran}");

    // The same key with another body is refused.
    match c
        .rollback("llm-assistant-vllm", &rollback(41, 40), "key-1")
        .await
    {
        Outcome::Refused { status, .. } => assert_eq!(status, 422),
        other => panic!("expected 422, got {other:?}"),
    }

    // Failover through its hook, the precondition on the primary region.
    let failover = FailoverRequest {
        to_region: "eu-west".into(),
        expected_primary_region: "us-east".into(),
        actor: "alice@laptop".into(),
        reason: "us-east saturated".into(),
    };
    let Outcome::Ok(moved) = c.failover("llm-assistant", &failover, "key-2").await else {
        panic!("accepted")
    };
    assert_eq!(settled(&c, &moved.id).await.state, ActionState::Succeeded);
    let Outcome::Ok(services) = c.services().await else {
        panic!("readable")
    };
    assert_eq!(services[0].primary_region, "eu-west");
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_hanging_hook_fails_the_action_with_what_it_said() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let c = client(dir.path(), &gw.base_url());

    std::fs::write(dir.path().join("fail"), "").unwrap();
    let Outcome::Ok(a) = c
        .rollback("llm-assistant-vllm", &rollback(42, 41), "key-fail")
        .await
    else {
        panic!("accepted")
    };
    let failed = settled(&c, &a.id).await;
    assert_eq!(failed.state, ActionState::Failed);
    let error = failed.error.unwrap();
    assert!(error.contains("exit status 3"), "{error}");
    assert!(error.contains("cluster API forbidden"), "{error}");
    std::fs::remove_file(dir.path().join("fail")).unwrap();

    // Past timeout_s (2 s) the hook is stopped and the action fails, saying so.
    std::fs::write(dir.path().join("hang"), "").unwrap();
    let Outcome::Ok(a) = c
        .rollback("llm-assistant-vllm", &rollback(42, 41), "key-hang")
        .await
    else {
        panic!("accepted")
    };
    let failed = settled(&c, &a.id).await;
    assert_eq!(failed.state, ActionState::Failed);
    assert!(failed.error.unwrap().contains("timed out"));
    // What the hook started is stopped with it (its process group), not left running.
    let child = std::fs::read_to_string(dir.path().join("child.pid")).unwrap();
    let stat = format!("/proc/{}/stat", child.trim());
    support::rig::wait_for(
        Duration::from_secs(10),
        "the hook's child to stop",
        async || {
            std::fs::read_to_string(&stat)
                .map(|s| s.split_whitespace().nth(2) == Some("Z"))
                .unwrap_or(true)
        },
    )
    .await;
    gw.shutdown();
}

/// A hook runs with a clean environment (the gateway's tokens live in its own), what it
/// prints reaches token holders with the gateway's secrets masked, and a hook that writes
/// a lot without reading its stdin neither blocks nor times out.
#[tokio::test(flavor = "multi_thread")]
async fn a_hook_gets_a_clean_environment_and_cannot_hand_out_the_gateways_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let c = client(dir.path(), &gw.base_url());
    std::fs::write(dir.path().join("leak"), "").unwrap();
    std::fs::write(dir.path().join("flood"), "").unwrap();
    let Outcome::Ok(a) = c
        .rollback("llm-assistant-vllm", &rollback(42, 41), "key-leak")
        .await
    else {
        panic!("accepted")
    };
    let done = settled(&c, &a.id).await;
    assert_eq!(done.state, ActionState::Succeeded, "{done:?}");
    let output = done.output.unwrap();
    assert!(
        !output.contains(TOKEN) && output.contains("the gateway's token is [secret]"),
        "the token a hook printed is masked before any client reads it: …{}",
        &output[output.len().saturating_sub(300)..]
    );
    assert!(
        output.len() <= 17 * 1024 && output.contains("bytes before"),
        "a megabyte of output is cut to its tail, and says so ({} bytes)",
        output.len()
    );
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, _)| n)
        .collect();
    for name in &names {
        assert!(
            ["PATH", "LANG", "PWD", "SHLVL", "_", "CARGO_MANIFEST_DIR"].contains(name)
                || name.starts_with("FIREBREAK_"),
            "{name} reached the hook from the gateway's environment: {names:?}"
        );
    }
    assert!(
        names.contains(&"CARGO_MANIFEST_DIR") && names.contains(&"FIREBREAK_REASON"),
        "the variables the configuration names, and the call's own, are there: {names:?}"
    );
    gw.shutdown();
}

/// `--check` refuses hooks that would let a person's text become an option, a path or
/// part of a URL, and a hook token sent in clear text across the network.
#[test]
fn the_configuration_check_refuses_hooks_that_trust_typed_text_or_leak_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_text(dir.path(), "127.0.0.1:0");
    let d = dir.path().display();
    for (rollback, why) in [
        (
            format!("rollback = {{ command = [\"{d}/rollback\", \"{{reason}}\"] }}"),
            "text a person typed",
        ),
        (
            format!("rollback = {{ command = [\"{d}/rollback\", \"{{requested_by}}-x\"] }}"),
            "text a person typed",
        ),
        (
            "rollback = { url = \"https://deploy.example/{reason}\" }".to_owned(),
            "cannot be part of a URL",
        ),
        (
            format!("rollback = {{ url = \"http://deploy.example/rollback\", token = {{ file = \"{d}/oncall.token\" }} }}"),
            "clear text",
        ),
    ] {
        let text = base.replace(
            &format!("rollback = {{ command = [\"{d}/rollback\", \"{{from}}\", \"{{to}}\"] }}"),
            &rollback,
        );
        assert_ne!(text, base, "the test replaced the rollback hook");
        let err = parse(Path::new("gateway.toml"), &text).expect_err(&rollback);
        assert!(err.to_string().contains(why), "{rollback}: {err}");
    }
    // Typed text after fixed text in one argument, and a token to this machine, are fine.
    let fine = base.replace("\"{to}\"] }", "\"{to}\", \"--reason={reason}\"] }");
    parse(Path::new("gateway.toml"), &fine).unwrap();
}

/// A request's text fields are bounded (a 300 KiB reason would be published to every
/// console), and a refused request leaves a digest, not its body, in the journal.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_text_is_refused_naming_the_field_and_no_request_body_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let c = client(dir.path(), &gw.base_url());
    let mut huge = rollback(42, 41);
    huge.reason = "x".repeat(300 * 1024);
    match c.rollback("llm-assistant-vllm", &huge, "key-huge").await {
        // Over 64 KiB the body is not read past the limit: 413, nothing published.
        Outcome::Refused { status, .. } => assert_eq!(status, 413),
        other => panic!("expected 413, got {other:?}"),
    }
    let mut long = rollback(42, 41);
    long.reason = "y".repeat(5_000);
    match c.rollback("llm-assistant-vllm", &long, "key-long").await {
        Outcome::Refused { status, error } => {
            assert_eq!(status, 400);
            assert!(
                error.message.contains("reason is 5000 characters"),
                "{error:?}"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
    long.actor = "z".repeat(500);
    long.reason = "fine".into();
    match c.rollback("llm-assistant-vllm", &long, "key-actor").await {
        Outcome::Refused { status, error } => {
            assert_eq!(status, 400);
            assert!(
                error.message.contains("actor is 500 characters"),
                "{error:?}"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert!(!dir.path().join("ran").exists(), "no hook ran");
    gw.shutdown();
    let journal = std::fs::read(dir.path().join("journal.db")).unwrap();
    let text = String::from_utf8_lossy(&journal);
    assert!(
        !text.contains(&"y".repeat(1000)),
        "the journal keeps a digest of a refused request, not its 5,000-character reason"
    );
}

/// The journal keeps actions and first answers: after a kill -9 mid-hook the action is
/// failed with what is known (not left running forever), and the retry with the same key
/// gets the first answer rather than a second rollback.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_kill_9_mid_hook_the_action_is_closed_and_its_key_still_answers_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config_text(dir.path(), &format!("127.0.0.1:{port}"))).unwrap();
    let data = dir.path().join("data");
    let spawn = || {
        support::servers::spawn_gateway(
            std::process::Command::new(env!("CARGO_BIN_EXE_firebreak-gateway")),
            &file,
            &data,
            port,
        )
    };
    let base = format!("https://127.0.0.1:{port}");
    let c = client(dir.path(), &base);
    let up = async || matches!(c.services().await, Outcome::Ok(_));

    let mut gateway = spawn().await;
    support::rig::wait_for(Duration::from_secs(30), "the gateway", up).await;
    std::fs::write(dir.path().join("hang"), "").unwrap();
    let Outcome::Ok(a) = c
        .rollback("llm-assistant-vllm", &rollback(42, 41), "key-crash")
        .await
    else {
        panic!("accepted")
    };
    let running =
        async || matches!(c.action(&a.id).await, Outcome::Ok(x) if x.state == ActionState::Running);
    support::rig::wait_for(Duration::from_secs(20), "the hook to run", running).await;
    gateway.kill_9();
    std::fs::remove_file(dir.path().join("hang")).unwrap();

    let _gateway = spawn().await;
    support::rig::wait_for(Duration::from_secs(30), "the gateway again", up).await;
    let closed = settled(&c, &a.id).await;
    assert_eq!(closed.state, ActionState::Failed);
    assert!(
        closed
            .error
            .unwrap()
            .contains("whether it acted is not known"),
        "the error says what is known"
    );
    // The retry: the first answer, no second hook run.
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}/v1/deployments/llm-assistant-vllm/rollback"))
        .bearer_auth(TOKEN)
        .header(IDEMPOTENCY_KEY, "key-crash")
        .json(&rollback(42, 41))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let replayed: Action = r.json().await.unwrap();
    assert_eq!(replayed.id, a.id);
    assert!(
        !dir.path().join("ran").exists(),
        "the hook never completed a rollback"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_api_wants_a_named_token() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let stranger = ActionClient::new(
        &gw.base_url(),
        Some("not-a-token".into()),
        Some(&dir.path().join("ca.pem")),
    )
    .unwrap();
    match stranger.services().await {
        Outcome::Refused { status, .. } => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    // Without the CA file the console does not trust the gateway, and says why.
    let untrusting = ActionClient::new(&gw.base_url(), Some(TOKEN.into()), None).unwrap();
    match untrusting.services().await {
        Outcome::NoAnswer(why) => assert!(
            why.contains("not signed by a CA this console trusts"),
            "{why}"
        ),
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    gw.shutdown();
}

/// A service whose actions go through hooks has no rollout levers: each answers 501 with
/// what would make it work, and nothing is recorded under the key.
#[tokio::test(flavor = "multi_thread")]
async fn rollout_levers_without_kubernetes_are_501() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let c = client(dir.path(), &gw.base_url());
    for lever in firebreak_protocol::actions::RolloutLever::ALL {
        let body = firebreak_protocol::actions::RolloutRequest {
            expected_revision: 42,
            full: false,
            actor: "alice".into(),
            reason: "bad model".into(),
        };
        match c
            .rollout(
                "llm-assistant-vllm",
                lever,
                &body,
                &format!("k-{}", lever.as_str()),
            )
            .await
        {
            Outcome::Refused { status, error } => {
                assert_eq!((status, error.error.as_str()), (501, "not_implemented"));
                assert!(
                    error.message.contains("[services.kubernetes]"),
                    "{}",
                    error.message
                );
            }
            other => panic!("{}: expected 501, got {other:?}", lever.as_str()),
        }
    }
    gw.shutdown();
}

/// Every route the OpenAPI document lists for the gateway is one it answers: asked
/// without a token, each says who may ask (or that it is not configured), never the
/// router's bare "no such route".
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_gateway_route_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path()).await;
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap())
                .unwrap(),
        )
        .build()
        .unwrap();
    let routes = firebreak_gateway::serve::ROUTES
        .iter()
        .chain(firebreak_server::actions::ROUTES);
    for (method, path) in routes {
        let path = path.replace("{name}", "llm-assistant").replace("{id}", "x");
        let url = format!("{}{path}", gw.base_url());
        let r = match *method {
            "get" => http.get(&url),
            _ => http.post(&url).json(&serde_json::json!({})),
        }
        .send()
        .await
        .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(
            status == 401 || (status == 404 && body["error"] == "not_configured"),
            "{method} {path}: {status} {body}"
        );
    }
    gw.shutdown();
}
