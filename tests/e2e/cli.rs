//! The command-line face of the binary, run as a user would run it.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::process::{Command, Output};

use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::ingest::sink::Recorder;
use firebreak_engine::ingest::Engine;
use firebreak_store::Store;
use firebreak_test_support::rig::wait_for;
use firebreak_test_support::runbook::VALID;

fn firebreak(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .env("FIREBREAK_DATA_DIR", data_dir)
        // Headless subcommands must work where there is no display at all.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run firebreak")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = firebreak(dir.path(), &["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("firebreak {}", env!("CARGO_PKG_VERSION"))
    );

    let out = firebreak(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    // The help names the subcommands and the global data-dir override.
    for word in ["incidents", "timeline", "incident", "act", "--data-dir"] {
        assert!(help.contains(word), "--help should mention {word}:\n{help}");
    }
    // Every lever, its options and the exit statuses a script reads.
    let out = firebreak(dir.path(), &["act", "--help"]);
    let help = text(&out.stdout);
    for word in [
        "rollback",
        "failover",
        "pause",
        "resume",
        "abort",
        "promote",
        "silence",
        "--to-revision",
        "--full",
        "--alert",
        "--json",
        "3 when the action succeeded",
    ] {
        assert!(
            help.contains(word),
            "act --help should mention {word}:\n{help}"
        );
    }
    let out = firebreak(dir.path(), &["incident", "--help"]);
    let help = text(&out.stdout);
    for word in ["note", "ack", "mitigate", "resolve", "severity", "command"] {
        assert!(
            help.contains(word),
            "incident --help should mention {word}:\n{help}"
        );
    }
    // A duration a silence cannot have is refused before anything is read.
    let out = firebreak(
        dir.path(),
        &[
            "act",
            "silence",
            "--incident",
            "1",
            "--reason",
            "r",
            "--alert",
            "A",
            "--for",
            "9d",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("from 1m to 7d"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn headless_commands_run_without_a_display() {
    let dir = tempfile::tempdir().unwrap();
    let out = firebreak(dir.path(), &["incidents"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "No incidents recorded.");
    // The data dir override was honoured: the database is where we said.
    assert!(dir.path().join("firebreak.db").exists());

    let out = firebreak(dir.path(), &["incidents", "--json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(parsed, serde_json::json!([]));
}

#[test]
fn the_window_without_a_display_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = firebreak(dir.path(), &[]);
    assert!(
        !out.status.success(),
        "no display is a failure to open the window"
    );
    let err = text(&out.stderr);
    let lines: Vec<_> = err
        .lines()
        .filter(|l| l.starts_with("firebreak:"))
        .collect();
    // One clear line, not a GTK stack trace.
    assert_eq!(lines.len(), 1, "stderr:\n{err}");
    assert!(!err.contains("panicked"), "stderr:\n{err}");
}

#[test]
fn unknown_incident_and_bad_database_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = firebreak(dir.path(), &["timeline", "99"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("incident 99 not found"),
        "{}",
        text(&out.stderr)
    );

    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("firebreak.db"),
        b"not a database at all".repeat(100),
    )
    .unwrap();
    let out = firebreak(broken.path(), &["incidents"]);
    assert_eq!(out.status.code(), Some(1), "a bad database exits non-zero");
    let err = text(&out.stderr);
    assert!(
        err.contains("firebreak.db") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn sim_lists_its_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let out = firebreak(dir.path(), &["sim", "--list"]);
    assert!(out.status.success());
    let listed = text(&out.stdout);
    for name in [
        "bad-model-rollout",
        "pipeline-bottleneck",
        "node-loss-cascade",
        "kv-cache-pressure",
        "steady",
    ] {
        assert!(
            listed.lines().any(|l| l.starts_with(name)),
            "--list must name {name}:\n{listed}"
        );
    }
    let out = firebreak(dir.path(), &["sim", "--scenario", "volcano"]);
    assert!(!out.status.success(), "an unknown scenario is an error");
    assert!(
        text(&out.stderr).contains("bad-model-rollout"),
        "the error names the real ones"
    );
}

#[test]
fn sim_prints_its_addresses_first_and_serves_them() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--scenario",
            "steady",
            "--token",
            "t0k",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let events = lines.next().unwrap().unwrap();
    let actions = lines.next().unwrap().unwrap();
    // Scripts and the console's demo mode read exactly these two lines.
    assert!(
        events.starts_with("events: ws://127.0.0.1:") && events.ends_with("/v1/events"),
        "{events}"
    );
    assert!(
        actions.starts_with("actions: http://127.0.0.1:"),
        "{actions}"
    );
    let base = actions.trim_start_matches("actions: ");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        firebreak_common::process::install_tls_provider();
        reqwest::Client::new()
            .get(format!("{base}/v1/services"))
            .bearer_auth("t0k")
            .send()
            .await
            .unwrap()
            .status()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        status.as_u16(),
        200,
        "the printed address serves the action API"
    );
}

#[test]
fn benchmarks_print_each_figure_beside_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = firebreak(dir.path(), &["bench", "timeline", "--entries", "3000"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("page by key (the console)"), "{stdout}");
    assert!(stdout.contains("by OFFSET (baseline)"), "{stdout}");
    // The benchmark cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let out = firebreak(
        dir.path(),
        &["bench", "ingest", "--seconds", "1", "--rate", "2000"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("committed to SQLite by the engine"),
        "{stdout}"
    );
    for line in [
        "x the ceiling)",
        "prebuilt rows by rusqlite",
        "the engine's store path alone",
        "per-row sqlx INSERT",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }

    let out = firebreak(
        dir.path(),
        &["bench", "gateway", "--events", "2000", "--samples", "5"],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "reading the journal file only (baseline)",
        "with the newest frames in memory",
        "50 subscribers",
        "notification → committed in the console's store",
        "the webhook's answer alone",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn runbooks_check_exits_non_zero_and_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.md"), VALID).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["runbooks", "check"])
        .arg(dir.path())
        .env("FIREBREAK_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.path().join("bad.md"),
        VALID.replace("goto: move", "goto: moev"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["runbooks", "check"])
        .arg(dir.path())
        .env("FIREBREAK_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.md:28: no step is called \"moev\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok    ") && stdout.contains("good.md"),
        "{stdout}"
    );
}

/// `make run` twice on one data dir: each demo run is a new demo world that opens its own
/// incident, and the previous run's incident is resolved with a note, not left open.
#[tokio::test(flavor = "multi_thread")]
async fn each_demo_run_on_one_data_dir_opens_its_own_incident() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    let mut opened = Vec::new();
    for run in 0..2 {
        let (sim, target) = firebreak_cli::watch::start_demo(&store, 30.0, None)
            .await
            .unwrap();
        let cluster = target.cluster_id;
        let engine = Engine::start(store.clone(), vec![target], Arc::new(Recorder::default()))
            .await
            .unwrap();
        let known = opened.clone();
        wait_for(
            Duration::from_secs(60),
            "an incident in this demo run",
            async || {
                store
                    .incidents()
                    .await
                    .unwrap()
                    .iter()
                    .any(|i| i.cluster_id == Some(cluster) && !known.contains(&i.id))
            },
        )
        .await;
        engine.stop().await;
        sim.shutdown();
        let fresh = store
            .incidents()
            .await
            .unwrap()
            .into_iter()
            .find(|i| !opened.contains(&i.id))
            .unwrap();
        opened.push(fresh.id);
        if run == 1 {
            let first = store.incident(opened[0]).await.unwrap();
            assert_eq!(
                first.status,
                firebreak_store::incident::IncidentStatus::Resolved,
                "the previous demo world's incident is closed when a new one starts"
            );
            let timeline = store.timeline(opened[0], None, 500).await.unwrap();
            assert!(
                timeline
                    .iter()
                    .any(|e| e.body.contains("A new demo run started")),
                "and its timeline says why"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_added_in_settings_are_loaded_and_checked() {
    let data = tempfile::tempdir().unwrap();
    let team = tempfile::tempdir().unwrap();
    std::fs::write(team.path().join("checkout.md"), VALID).unwrap();
    let store = firebreak_store::Store::open(&data.path().join("firebreak.db"))
        .await
        .unwrap();
    store
        .set_setting(
            firebreak_engine::runbooks::FOLDERS_SETTING,
            &serde_json::to_string(&[team.path()]).unwrap(),
        )
        .await
        .unwrap();
    store.close().await;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(args)
            .env("FIREBREAK_DATA_DIR", data.path())
            .output()
            .unwrap()
    };
    let listed = run(&["runbooks", "list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(stdout.contains("checkout-latency"), "{stdout}");
    assert!(stdout.contains("bad-model-version"), "{stdout}");

    std::fs::write(team.path().join("broken.md"), "no front matter").unwrap();
    let checked = run(&["runbooks", "check"]);
    assert!(!checked.status.success());
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains("broken.md:1: a runbook starts with YAML front matter"),
        "{stdout}"
    );
}
