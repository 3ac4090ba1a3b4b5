//! The command-line face of the binary, run as a user would run it.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::process::{Command, Output};

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
