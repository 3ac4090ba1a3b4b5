//! The console's `firebreak team sync` as a process of its own, killed with SIGKILL while
//! it syncs with a team server on a real PostgreSQL. The team server's own suite is in
//! crates/team-server/tests.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::servers::KillOnDrop;
use support::team::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
}

/// The team server as the console's binary runs it (`firebreak team-server`).
fn server() -> Command {
    let mut c = bin();
    c.arg("team-server");
    c
}

use firebreak_store::incident::Severity;
use firebreak_store::Store;

/// `firebreak team sync` on a data dir, as a process of its own.
fn spawn_sync(data_dir: &Path, token: &str) -> KillOnDrop {
    KillOnDrop(
        bin()
            .args([
                "team",
                "sync",
                "--token-env",
                "FIREBREAK_TEST_TEAM_TOKEN",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("FIREBREAK_TEST_TEAM_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_syncing_console_loses_nothing_and_repeats_nothing() {
    let Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_kill_console").await;

    // Ana's console records an incident with 3,000 notes and pushes them all.
    let a = Console::linked(port, "serving", &ana).await;
    let theirs = open_by_hand(&a.store, "Ana's incident", None, Severity::Minor, "ana").await;
    for k in 0..3000 {
        a.store
            .add_note(theirs.id, &format!("ana {k}"), "ana")
            .await
            .unwrap();
    }
    support::rig::wait_for(
        Duration::from_secs(120),
        "ana's console to push",
        async || a.settled().await,
    )
    .await;

    // Ben's data dir, linked, with 2,000 notes of his own queued before it ever synced.
    let ben_dir = tempfile::tempdir().unwrap();
    let ours = {
        let store = Store::open(&ben_dir.path().join("firebreak.db"))
            .await
            .unwrap();
        store
            .link_team(&format!("http://127.0.0.1:{port}"), "serving", None, None)
            .await
            .unwrap();
        let ours = open_by_hand(&store, "Ben's incident", None, Severity::Minor, "ben").await;
        for k in 0..2000 {
            store
                .add_note(ours.id, &format!("ben {k}"), "ben")
                .await
                .unwrap();
        }
        store.close().await;
        ours
    };
    // Killed three times while it pushes and catches up, then left to finish.
    for delay_ms in [150, 400, 900] {
        let mut sync = spawn_sync(ben_dir.path(), &ben);
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        sync.kill_9();
    }
    let _sync = spawn_sync(ben_dir.path(), &ben);
    let ben_db = ben_dir.path().join("firebreak.db");
    let expected = 1 + 3000 + 1 + 2000;
    support::rig::wait_for(
        Duration::from_secs(120),
        "ben's console to catch up",
        async || {
            support::rig::count(&ben_db, "SELECT cursor FROM team_link").await == expected
                && support::rig::count(
                    &ben_db,
                    "SELECT count(*) FROM team_outbox WHERE answered_ms IS NULL",
                )
                .await
                    == 0
        },
    )
    .await;
    assert_eq!(
        rig.count("SELECT count(*) FROM records").await,
        expected,
        "each record once on the server"
    );
    assert_eq!(
        rig.count("SELECT count(DISTINCT id) FROM records").await,
        expected
    );
    let on_ben = |public: &str| {
        format!(
            "SELECT count(*) FROM timeline_entries t JOIN incidents i ON i.id = t.incident_id WHERE i.public_id = '{public}'"
        )
    };
    assert_eq!(
        support::rig::count(&ben_db, &on_ben(&theirs.public_id)).await,
        3001,
        "ana's entries once each on ben's console"
    );
    assert_eq!(
        support::rig::count(&ben_db, &on_ben(&ours.public_id)).await,
        2001,
        "ben's own entries once each"
    );
    // And Ana has Ben's.
    a.incident(&ours.public_id).await;
    let a_db = a.store.path().to_owned();
    support::rig::wait_for(
        Duration::from_secs(60),
        "ana to read ben's notes",
        async || support::rig::count(&a_db, &on_ben(&ours.public_id)).await == 2001,
    )
    .await;
    // Each record applied has its audit record, and the chain holds on both consoles.
    for (who, db) in [("ana", &a_db), ("ben", &ben_db)] {
        let theirs = support::rig::count(
            db,
            "SELECT count(*) FROM audit_log WHERE what LIKE 'team_%'",
        )
        .await;
        assert!(
            theirs >= 2001,
            "{who}'s console audited {theirs} team records"
        );
        let out = bin()
            .args(["audit", "verify", "--data-dir"])
            .arg(db.parent().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{who}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
