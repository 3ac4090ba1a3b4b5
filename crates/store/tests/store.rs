//! The store against a real SQLite file in a throwaway dir.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;

use firebreak_store::incident::{EntryKind, IncidentStatus, NewIncident, Severity};
use firebreak_store::{known_schema_version, NewCluster, Store, StoreError};
use firebreak_test_support::events::{alert, raw, unreachable_cluster};
use sqlx::Connection;

fn db_in(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("firebreak.db")
}

fn new_incident(title: &str) -> NewIncident {
    NewIncident {
        title: title.into(),
        severity: Severity::Critical,
        service: Some("llm-assistant".into()),
        cluster_id: None,
    }
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read db file")
}

#[tokio::test]
async fn migrations_apply_to_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.expect("fresh store opens");
    // Every migration this build carries must have been applied.
    assert_eq!(
        store.schema_version().await.unwrap(),
        known_schema_version()
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");

    let mut conn = raw(store.path()).await;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // sqlx does not set WAL by itself; the store's recipe must have.
    assert_eq!(mode, "wal", "the store must run in WAL mode");
    for table in [
        "clusters",
        "events",
        "incidents",
        "timeline_entries",
        "settings",
    ] {
        let found: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&mut conn)
                .await
                .unwrap();
        assert!(found.is_some(), "table {table} must exist after migration");
    }
}

#[tokio::test]
async fn reopening_an_up_to_date_database_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let id = store
        .open_incident(&new_incident("GPU pool down"), "ana")
        .await
        .unwrap()
        .id;
    store.close().await;
    let again = Store::open(&db_in(&dir)).await.expect("reopens");
    // Nothing recorded may be lost by a restart.
    assert_eq!(again.incident(id).await.unwrap().title, "GPU pool down");
}

#[tokio::test]
async fn constraint_violations_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let cluster = NewCluster {
        ca_file: None,
        name: "prod-eu".into(),
        events_url: "ws://127.0.0.1:1/events".into(),
        actions_url: "http://127.0.0.1:1".into(),
    };
    store.add_cluster(&cluster).await.unwrap();
    // A second cluster with the same name would make `--cluster prod-eu` ambiguous.
    let dup = store.add_cluster(&cluster).await;
    assert!(
        matches!(&dup, Err(StoreError::Invalid(m)) if m.contains("already watched")),
        "duplicate name: {dup:?}"
    );

    // An events URL must be a WebSocket URL: refused with what to fix before the schema
    // (which refuses it too) sees it.
    let bad = store
        .add_cluster(&NewCluster {
            ca_file: None,
            name: "other".into(),
            events_url: "ftp://nowhere".into(),
            actions_url: "http://127.0.0.1:1".into(),
        })
        .await;
    assert!(
        matches!(&bad, Err(StoreError::Invalid(m)) if m.contains("ws:// or wss://")),
        "bad scheme: {bad:?}"
    );
    let mut conn = raw(&db_in(&dir)).await;
    let schema = sqlx::query(
        "INSERT INTO clusters (name, events_url, actions_url, created_ms) \
         VALUES ('x', 'ftp://nowhere', 'http://h', 0)",
    )
    .execute(&mut conn)
    .await;
    assert!(schema.is_err(), "the schema refuses it too");

    // A note on an incident that does not exist breaks the foreign key.
    let orphan = store.add_note(4242, "hello", "ana").await;
    assert!(
        matches!(orphan, Err(StoreError::Constraint(_))),
        "orphan note: {orphan:?}"
    );

    // Empty input is refused with a message, before the database sees it.
    let empty = store.open_incident(&new_incident("   "), "ana").await;
    assert!(
        matches!(empty, Err(StoreError::Invalid(_))),
        "empty title: {empty:?}"
    );
}

#[tokio::test]
async fn timeline_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let incident = store
        .open_incident(&new_incident("p99 spike"), "ana")
        .await
        .unwrap();
    let note = store
        .add_note(incident.id, "rolled back rev 41", "ana")
        .await
        .unwrap();

    let mut conn = raw(store.path()).await;
    // The timeline is the record of what happened: not even raw SQL may rewrite it.
    let update = sqlx::query("UPDATE timeline_entries SET body = 'nothing happened' WHERE id = ?")
        .bind(note.id)
        .execute(&mut conn)
        .await;
    assert!(
        update.is_err(),
        "an UPDATE of a timeline entry must be refused"
    );
    let delete = sqlx::query("DELETE FROM timeline_entries WHERE id = ?")
        .bind(note.id)
        .execute(&mut conn)
        .await;
    assert!(
        delete.is_err(),
        "a DELETE of a timeline entry must be refused"
    );

    // A correction is a new entry that names the one it amends; the original stays.
    let fix = store
        .add_correction(incident.id, note.id, "rolled back to rev 40, not 41", "ana")
        .await
        .unwrap();
    assert_eq!(fix.kind, EntryKind::Correction);
    assert_eq!(fix.amends, Some(note.id));
    let entries = store.timeline(incident.id, None, 100).await.unwrap();
    assert!(entries
        .iter()
        .any(|e| e.id == note.id && e.body == "rolled back rev 41"));

    // A correction must amend an entry of the same incident.
    let other = store
        .open_incident(&new_incident("other"), "ana")
        .await
        .unwrap();
    let cross = store
        .add_correction(other.id, note.id, "wrong place", "ana")
        .await;
    assert!(
        matches!(cross, Err(StoreError::Invalid(_))),
        "cross-incident correction: {cross:?}"
    );
}

#[tokio::test]
async fn status_changes_move_forward_and_are_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let incident = store
        .open_incident(&new_incident("error rate 12%"), "ana")
        .await
        .unwrap();
    assert_eq!(incident.status, IncidentStatus::Open);

    let acked = store
        .change_status(incident.id, IncidentStatus::Acknowledged, "bo")
        .await
        .unwrap();
    assert!(
        acked.acknowledged_ms.is_some(),
        "acknowledging records when"
    );
    let resolved = store
        .change_status(incident.id, IncidentStatus::Resolved, "bo")
        .await
        .unwrap();
    assert!(resolved.resolved_ms.is_some());
    // Skipped steps stay empty rather than inventing a time.
    assert_eq!(resolved.mitigated_ms, None);

    let back = store
        .change_status(incident.id, IncidentStatus::Open, "bo")
        .await;
    assert!(
        matches!(back, Err(StoreError::Invalid(_))),
        "backwards move: {back:?}"
    );

    let kinds: Vec<_> = store
        .timeline(incident.id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.author))
        .collect();
    // Every change is on the timeline with its author; the refused one is not.
    assert_eq!(
        kinds,
        vec![
            (EntryKind::Opened, "ana".to_owned()),
            (EntryKind::StatusChanged, "bo".to_owned()),
            (EntryKind::StatusChanged, "bo".to_owned()),
        ]
    );
}

#[tokio::test]
async fn timeline_pages_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let incident = store
        .open_incident(&new_incident("pages"), "ana")
        .await
        .unwrap();
    for n in 0..25 {
        store
            .add_note(incident.id, &format!("note {n}"), "ana")
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.timeline(incident.id, after, 10).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 10, "a page never exceeds its limit");
        after = Some((last.at_ms, last.id));
        seen.extend(page.into_iter().map(|e| e.id));
    }
    // 1 "opened" entry + 25 notes, each exactly once, in order.
    assert_eq!(seen.len(), 26);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "pages must be in id order without repeats"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    let store = Store::open(&path).await.unwrap();
    store.close().await;
    {
        let mut conn = raw(&path).await;
        // Pretend a newer Firebreak applied a migration this build does not know.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, 'from the future', 1, x'00', 0)",
        )
        .bind(known_schema_version() + 1)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let before = file_bytes(&path);
    let err = Store::open(&path)
        .await
        .expect_err("a newer schema must be refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
    assert!(
        err.to_string().contains("newer Firebreak"),
        "the message says why: {err}"
    );
    // Refusing must not have written a byte.
    assert_eq!(
        file_bytes(&path),
        before,
        "the refused database must be left untouched"
    );
}

#[tokio::test]
async fn a_file_that_is_not_ours_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_in(&dir);
    std::fs::write(
        &path,
        b"these are my holiday notes, not a database\n".repeat(200),
    )
    .unwrap();
    let before = file_bytes(&path);
    let err = Store::open(&path)
        .await
        .expect_err("garbage must be refused");
    assert!(!err.to_string().is_empty());
    assert_eq!(
        file_bytes(&path),
        before,
        "a file that is not a database must be left untouched"
    );

    // Another program's SQLite database: readable, but not Firebreak's to migrate.
    let other = dir.path().join("other.db");
    {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display()))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE recipes (name TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let before = file_bytes(&other);
    let err = Store::open(&other)
        .await
        .expect_err("a foreign database must be refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert_eq!(
        file_bytes(&other),
        before,
        "a foreign database must be left untouched"
    );
}

#[tokio::test]
async fn severity_and_command_changes_are_on_the_timeline_with_their_author() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let id = store
        .open_incident(&new_incident("queue backing up"), "ana")
        .await
        .unwrap()
        .id;

    let raised = store.change_severity(id, Severity::Major, "ana").await;
    assert_eq!(raised.unwrap().severity, Severity::Major);
    let same = store.change_severity(id, Severity::Major, "ana").await;
    assert!(
        matches!(same, Err(StoreError::Invalid(_))),
        "a no-op change is refused, not recorded"
    );

    let took = store.set_commander(id, Some("ana"), "ana").await.unwrap();
    assert_eq!(took.commander.as_deref(), Some("ana"));
    let handed = store.set_commander(id, Some("bo"), "ana").await.unwrap();
    assert_eq!(handed.commander.as_deref(), Some("bo"));

    let entries: Vec<_> = store
        .timeline(id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind != EntryKind::Opened)
        .map(|e| (e.kind, e.author, e.body))
        .collect();
    // Who did what, in the commander's words.
    assert_eq!(
        entries,
        vec![
            (
                EntryKind::SeverityChanged,
                "ana".to_owned(),
                "Severity critical → major".to_owned()
            ),
            (
                EntryKind::CommanderChanged,
                "ana".to_owned(),
                "ana took command (was nobody)".to_owned()
            ),
            (
                EntryKind::CommanderChanged,
                "ana".to_owned(),
                "Command handed from ana to bo".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn the_feed_filters_searches_and_pages_by_key() {
    use firebreak_store::feed::{FeedFilter, FeedPageRequest};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db_in(&dir)).await.unwrap();
    let cluster = unreachable_cluster(&store, "feed").await;
    let services = ["llm-assistant", "embedder", "ranker"];
    let events: Vec<_> = (1..=30u64)
        .map(|i| alert(&format!("id-{i}"), i, services[(i % 3) as usize]))
        .collect();
    // No rule decides anything here: the feed shows events whether or not an incident
    // opened on them.
    let none = firebreak_store::incident::Decision {
        service: None,
        signal: None,
        entry: None,
        anomaly: None,
    };
    let items = [firebreak_store::ingest::Item::Events {
        cluster_id: cluster.id,
        events,
        last_sequence: 30,
    }];
    store.ingest(&items, &vec![none; 30]).await.unwrap();
    let page = |limit, before, after| FeedPageRequest {
        limit,
        before,
        after,
    };
    let seqs =
        |p: &firebreak_store::feed::FeedPage| p.events.iter().map(|e| e.seq).collect::<Vec<_>>();

    // Newest first; the next page continues strictly below the last key.
    let all = FeedFilter::default();
    let first = store.feed(&all, page(12, None, None)).await.unwrap();
    assert_eq!(seqs(&first), (19..=30).rev().collect::<Vec<_>>());
    let next = store.feed(&all, page(12, Some(19), None)).await.unwrap();
    assert_eq!(seqs(&next), (7..=18).rev().collect::<Vec<_>>());
    let newer = store.feed(&all, page(100, None, Some(27))).await.unwrap();
    assert_eq!(seqs(&newer), vec![30, 29, 28]);
    assert!(
        first.events[0].summary.contains("HighErrorRate"),
        "{:?}",
        first.events[0]
    );

    // Filters narrow by field.
    let embedder = FeedFilter {
        service: Some("embedder".into()),
        ..Default::default()
    };
    let only = store.feed(&embedder, page(100, None, None)).await.unwrap();
    assert_eq!(only.events.len(), 10);
    assert!(only
        .events
        .iter()
        .all(|e| e.service.as_deref() == Some("embedder")));

    // Text search finds nothing until the index has caught up, then finds by word prefix.
    let search = |text: &str| FeedFilter {
        text: Some(text.into()),
        ..Default::default()
    };
    let before_index = store
        .feed(&search("rank"), page(100, None, None))
        .await
        .unwrap();
    assert!(before_index.events.is_empty());
    assert_eq!(before_index.unsearchable, 30);
    while store.index_for_search(7).await.unwrap() > 0 {}
    let found = store
        .feed(&search("rank"), page(100, None, None))
        .await
        .unwrap();
    assert_eq!(found.unsearchable, 0);
    assert_eq!(found.events.len(), 10);
    assert!(found
        .events
        .iter()
        .all(|e| e.service.as_deref() == Some("ranker")));
    // Words from the event's text fields, all of them required, combined with filters.
    let both = store
        .feed(&search("ranker errors"), page(4, Some(25), None))
        .await
        .unwrap();
    assert_eq!(seqs(&both), vec![23, 20, 17, 14]);
    assert!(store
        .feed(&search("ranker embedder"), page(100, None, None))
        .await
        .unwrap()
        .events
        .is_empty());

    // Whatever is typed, the query is never a syntax error.
    for hostile in [
        "\"",
        "AND (",
        "*",
        "NEAR(a b",
        "col:x",
        "-",
        "\"unterminated",
    ] {
        store
            .feed(&search(hostile), page(10, None, None))
            .await
            .unwrap_or_else(|e| panic!("{hostile:?}: {e}"));
    }

    let raw = store.raw_event(30).await.unwrap();
    assert!(raw.text.contains("\"id\": \"id-30\""), "{}", raw.text);
}

/// Migrations 9 and 10 rebuild the actions table (silences, then the rollout levers, are
/// new kinds): a store made before them, with an action and a runbook run waiting on it,
/// opens with both intact, its foreign keys still pointing at the table, and takes the new
/// kinds afterwards.
#[tokio::test]
async fn the_actions_rebuild_keeps_what_an_older_store_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let older = dir.path().join("migrations-1-to-8");
    std::fs::create_dir(&older).unwrap();
    for entry in
        std::fs::read_dir(firebreak_test_support::workspace_root().join("migrations")).unwrap()
    {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0009" {
            std::fs::copy(&path, older.join(&name)).unwrap();
        }
    }
    let db = dir.path().join("firebreak.db");
    {
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(older.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO clusters (id, name, events_url, actions_url, created_ms) VALUES (1, 'prod', 'ws://127.0.0.1:1/v1/events', 'http://127.0.0.1:1', 1);
             INSERT INTO incidents (id, public_id, title, severity, status, service, cluster_id, opened_ms, updated_ms) VALUES (1, 'i-1', 'HighErrorRate on llm', 'critical', 'open', 'llm', 1, 1, 1);
             INSERT INTO actions (public_id, incident_id, cluster_id, kind, service, target, from_value, to_value, preview, state, proposed_by, confirmed_by, reason, idempotency_key, created_ms, updated_ms, confirmed_install)
               VALUES ('a-1', 1, 1, 'rollback', 'llm', 'llm-serving', '42', '41', '{}', 'succeeded', 'alice', 'alice', 'bad model', 'key-1', 1, 2, 'install-1');
             INSERT INTO runbook_runs (incident_id, runbook_id, runbook_title, runbook_version, steps, current_step, waiting_action, state, started_by, started_ms, updated_ms)
               VALUES (1, 'bad-rollout', 'Bad rollout', 'v1', '[]', 'rollback', 'a-1', 'running', 'alice', 1, 1);",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let store = Store::open(&db).await.unwrap();
    drop(store);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rw", db.display()))
        .await
        .unwrap();
    let kept: (String, String, String, String) = sqlx::query_as(
        "SELECT public_id, kind, idempotency_key, confirmed_install FROM actions WHERE public_id = 'a-1'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        kept,
        (
            "a-1".into(),
            "rollback".into(),
            "key-1".into(),
            "install-1".into()
        )
    );
    let dangling: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(dangling.is_empty(), "{dangling:?}");
    let refers: (String,) =
        sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = 'runbook_runs'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        refers.0.contains("REFERENCES actions(public_id)"),
        "{}",
        refers.0
    );
    let waiting: (String,) = sqlx::query_as(
        "SELECT a.kind FROM runbook_runs r JOIN actions a ON a.public_id = r.waiting_action",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(waiting.0, "rollback");
    // A silence is now a kind the table takes.
    sqlx::query(
        "INSERT INTO actions (public_id, incident_id, cluster_id, kind, service, target, from_value, to_value, preview, state, proposed_by, created_ms, updated_ms) \
         VALUES ('s-1', 1, 1, 'silence', 'llm', 'HighErrorRate', 'us-east', '3600', '{}', 'proposed', 'alice', 3, 3)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // So is each rollout lever (migration 10 rebuilds the table again), and nothing else.
    for (id, kind) in [
        ("l-1", "pause_rollout"),
        ("l-2", "resume_rollout"),
        ("l-3", "abort_rollout"),
        ("l-4", "promote_rollout"),
    ] {
        sqlx::query(
            "INSERT INTO actions (public_id, incident_id, cluster_id, kind, service, target, from_value, to_value, preview, state, proposed_by, created_ms, updated_ms) \
             VALUES (?, 1, 1, ?, 'llm', 'llm-serving', '43', 'paused', '{}', 'proposed', 'alice', 4, 4)",
        )
        .bind(id)
        .bind(kind)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let refused = sqlx::query(
        "INSERT INTO actions (public_id, incident_id, cluster_id, kind, service, target, from_value, to_value, preview, state, proposed_by, created_ms, updated_ms) \
         VALUES ('x-1', 1, 1, 'reboot', 'llm', 'llm-serving', '43', '', '{}', 'proposed', 'alice', 5, 5)",
    )
    .execute(&mut conn)
    .await;
    assert!(refused.is_err(), "an unknown kind is refused");
}
