//! One-click actions against the simulator over real sockets: the desk, the store, the
//! engine recording the stream, and the command line, as an engineer would use them.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::time::Duration;

use firebreak_engine::actions::ActionSettings;
use firebreak_store::actions::ActionState;
use firebreak_store::incident::EntryKind;
use firebreak_store::Store;
use support::cluster::TOKEN;
use support::desk::{quick, Rig};
use support::rig::wait_for;

fn firebreak(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"));
    c.env("FIREBREAK_DATA_DIR", dir).env("FB_TOKEN", TOKEN);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_send_and_answer_then_a_restart_acts_once() {
    // The cluster takes 4 s to answer: the request is in flight when the process dies.
    let rig = Rig::start(
        "bad-model-rollout",
        ActionSettings {
            grace_s: 0,
            ..quick()
        },
        |o| o.faults.action_delay_ms = 4_000,
    )
    .await;
    let incident = rig.incident("llm-assistant").await;
    let mut act = firebreak(rig.dir.path())
        .args(["act", "rollback", "--incident", &incident.id.to_string()])
        .args([
            "--reason",
            "errors on 42",
            "--yes",
            "--confirm-service",
            "llm-assistant",
        ])
        .args(["--token-env", "FB_TOKEN"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the request to be sent",
        async || {
            rig.store
                .incident_actions(incident.id)
                .await
                .unwrap()
                .first()
                .is_some_and(|a| a.state == ActionState::Sent)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    act.kill().unwrap(); // SIGKILL
    act.wait().unwrap();
    let action = rig
        .store
        .incident_actions(incident.id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(action.state, ActionState::Sent, "killed before the answer");

    let resumed = firebreak(rig.dir.path())
        .args(["actions", "--resume", "--token-env", "FB_TOKEN"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let done = rig.settled(&action.id).await;
    assert_eq!(
        done.state,
        ActionState::Succeeded,
        "{:#?}",
        rig.steps(incident.id).await
    );
    assert_eq!(
        rig.actions_at_sim().await,
        1,
        "the same key: the cluster acted once"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_one_audit_record_is_caught() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let store = Store::open(&db).await.unwrap();
    let i = store
        .open_incident(
            &firebreak_store::incident::NewIncident {
                title: "checkout errors".into(),
                severity: firebreak_store::incident::Severity::Major,
                service: Some("checkout".into()),
                cluster_id: None,
            },
            "ana",
        )
        .await
        .unwrap();
    for n in 0..4 {
        store
            .add_note(i.id, &format!("note {n}"), "ana")
            .await
            .unwrap();
    }
    store.close().await;
    let ok = firebreak(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("5 records"));

    // Someone with the file drops the guard and rewrites what a note said.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET detail = replace(detail, 'note 2', 'nothing to see') WHERE id = 4",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let bad = firebreak(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("record 4"), "{said}");
}

/// Two processes on one store never both drive its actions: while one does (the window,
/// here the test's own desk), `firebreak actions --resume` and `firebreak act` are refused
/// with who drives them, and send nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_never_drives_the_actions_of_a_store_another_drives() {
    let rig = Rig::start("bad-model-rollout", quick(), |_| {}).await;
    rig.desk.set_driver_name("the console window");
    rig.desk.resume_unfinished().await.unwrap();
    let incident = rig.incident("llm-assistant").await;

    let resumed = firebreak(rig.dir.path())
        .args(["actions", "--resume", "--token-env", "FB_TOKEN"])
        .output()
        .unwrap();
    assert!(!resumed.status.success(), "a second driver must be refused");
    let said = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        said.contains("driven by the console window (pid"),
        "the refusal says who drives: {said}"
    );

    let act = firebreak(rig.dir.path())
        .args(["act", "rollback", "--incident", &incident.id.to_string()])
        .args([
            "--reason",
            "errors on 42",
            "--yes",
            "--confirm-service",
            "llm-assistant",
        ])
        .args(["--token-env", "FB_TOKEN"])
        .output()
        .unwrap();
    assert!(!act.status.success(), "`act` is a driver too");
    let said = String::from_utf8_lossy(&act.stderr);
    assert!(said.contains("driven by the console window"), "{said}");
    assert_eq!(rig.actions_at_sim().await, 0, "nothing reached the cluster");
    rig.stop().await;
}

/// `firebreak act VERB --incident N --reason … --yes --token-env FB_TOKEN` plus `extra`.
fn act_cli(rig: &Rig, incident: i64, verb: &str, extra: &[&str]) -> std::process::Output {
    firebreak(rig.dir.path())
        .args(["act", verb, "--incident", &incident.to_string()])
        .args(["--reason", "from the command line", "--yes"])
        .args(["--token-env", "FB_TOKEN"])
        .args(extra)
        .output()
        .unwrap()
}

/// The one JSON document `act --json` prints: the outcome and the action.
fn outcome(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every lever from the command line, through the same desk as the window: an option of
/// another lever is refused before anything is proposed; pause, resume and abort of a slow
/// bad rollout with `--json` for scripts (the exit status follows the verification); a
/// rollback to a chosen revision; a silence of the incident's alert by name; and the
/// incident's own changes (note, ack, severity, command, resolve) headless.
#[tokio::test(flavor = "multi_thread")]
async fn every_lever_and_incident_change_from_the_command_line() {
    let scenarios = tempfile::tempdir().unwrap();
    let rig = Rig::start(
        &support::cluster::slow_bad_rollout(scenarios.path(), 8),
        ActionSettings {
            grace_s: 0,
            ..quick()
        },
        |_| {},
    )
    .await;
    let incident = rig.incident("llm-assistant").await;
    let id = incident.id;
    for (verb, extra, said) in [
        (
            "pause",
            &["--to-revision", "41"][..],
            "--to-revision is a rollback's",
        ),
        ("rollback", &["--full"][..], "--full is a promotion's"),
        ("silence", &[][..], "a silence needs --alert NAME"),
        (
            "failover",
            &["--alert", "HighErrorRate"][..],
            "--alert and --region are a silence's",
        ),
    ] {
        let out = act_cli(&rig, id, verb, extra);
        assert!(!out.status.success(), "{verb} {extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{verb} {extra:?}: {err}");
    }
    assert!(
        rig.store.incident_actions(id).await.unwrap().is_empty(),
        "nothing was proposed"
    );

    let paused = act_cli(&rig, id, "pause", &["--json"]);
    let doc = outcome(&paused);
    assert_eq!(doc["action"]["kind"], "pause_rollout", "{doc}");
    assert_eq!(doc["action"]["state"], "succeeded", "{doc}");
    let verdict = doc["outcome"].as_str().unwrap();
    assert!(
        ["recovered", "not_recovered"].contains(&verdict),
        "the simulator sends metrics: {doc}"
    );
    assert_eq!(
        paused.status.code(),
        Some(if verdict == "recovered" { 0 } else { 1 }),
        "{}",
        String::from_utf8_lossy(&paused.stderr)
    );
    let d = support::cluster::get(&rig.sim, "/v1/deployments/llm-assistant-serving").await;
    assert_eq!(d["rollout"]["paused"], true);
    // The preview and progress went to stderr, not into the document.
    assert!(String::from_utf8_lossy(&paused.stderr).contains("Pause the rollout"));

    let resumed = outcome(&act_cli(&rig, id, "resume", &["--json"]));
    assert_eq!(resumed["action"]["kind"], "resume_rollout", "{resumed}");
    assert_eq!(resumed["action"]["state"], "succeeded", "{resumed}");
    let aborted = act_cli(
        &rig,
        id,
        "abort",
        &["--json", "--confirm-service", "llm-assistant"],
    );
    let doc = outcome(&aborted);
    assert_eq!(doc["action"]["kind"], "abort_rollout", "{doc}");
    assert_eq!(
        doc["outcome"], "recovered",
        "the abort heals the service: {doc}"
    );
    assert!(aborted.status.success());

    let rolled = act_cli(
        &rig,
        id,
        "rollback",
        &[
            "--to-revision",
            "40",
            "--confirm-service",
            "llm-assistant",
            "--json",
        ],
    );
    let doc = outcome(&rolled);
    assert_eq!(doc["action"]["kind"], "rollback", "{doc}");
    assert_eq!(doc["action"]["to"], "40", "the revision chosen: {doc}");
    assert_eq!(doc["action"]["state"], "succeeded", "{doc}");

    // The incident's alert, silenced by its name.
    let mut alert = None;
    wait_for(Duration::from_secs(60), "the alert to fire", async || {
        for e in rig.store.timeline(id, None, 2000).await.unwrap() {
            if e.event_type.as_deref() == Some("alert.firing") {
                alert = rig.store.alert_of_entry(id, e.id).await.unwrap();
            }
        }
        alert.is_some()
    })
    .await;
    let alert = alert.unwrap();
    let unknown = act_cli(&rig, id, "silence", &["--alert", "NoSuchAlert"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no alert \"NoSuchAlert\" fired"));
    let before = rig.actions_at_sim().await;
    let silenced = act_cli(
        &rig,
        id,
        "silence",
        &["--alert", &alert.alert, "--for", "30m", "--json"],
    );
    let doc = outcome(&silenced);
    assert_eq!(doc["action"]["kind"], "silence", "{doc}");
    assert_eq!(doc["outcome"], "succeeded", "{doc}");
    assert!(silenced.status.success());
    assert!(
        doc["action"]["preview"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("for 0.5 h"),
        "{doc}"
    );
    assert_eq!(rig.actions_at_sim().await, before + 1);

    // The incident's own changes, as the window makes them.
    let change = |args: &[&str]| {
        let out = firebreak(rig.dir.path())
            .args(["incident", &id.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(change(&["ack"]).contains("acknowledged by"));
    change(&["note", "paged the model team"]);
    change(&["severity", "minor"]);
    change(&["command", "bo"]);
    let resolved: serde_json::Value =
        serde_json::from_str(&change(&["resolve", "--json"])).unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["severity"], "minor");
    assert_eq!(resolved["commander"], "bo");
    let notes: Vec<String> = rig
        .store
        .timeline(id, None, 5000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EntryKind::Note)
        .map(|e| e.body)
        .collect();
    assert_eq!(notes, ["paged the model team"]);
    let bad = firebreak(rig.dir.path())
        .args(["incident", &id.to_string(), "severity", "apocalyptic"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    rig.stop().await;
}
