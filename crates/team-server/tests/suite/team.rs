//! The team server against a real PostgreSQL (test-support's `postgres`): the sync
//! contract as TEAM.md states it, with server processes of this build
//! (`firebreak-team-server`), two of them behind one database, killed with SIGKILL
//! mid-push, and consoles' sync clients and stores on the other end.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use firebreak_engine::team::client::{SyncError, TeamClient, TeamLink};
use firebreak_protocol::team::{self as wire, Body, Frame, Outcome, Record};
use support::postgres::Postgres;
use support::servers::free_port;
use support::team::*;
use uuid::Uuid;

/// The team server's own binary.
fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firebreak-team-server"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_consoles_on_two_servers_get_one_gap_free_stream() {
    let rig = rig("team_two_servers").await;
    let (pa, pb) = (free_port(), free_port());
    let (ca, cb) = (rig.config(pa), rig.config(pb));
    let token = add_user(server, &ca, "ana", &["serving"]);
    let _a = spawn_server(server, &ca, pa).await;
    let _b = spawn_server(server, &cb, pb).await;

    let incident = Uuid::now_v7();
    let first = client(pa, "serving", &token)
        .push(vec![open(incident)])
        .await
        .unwrap();
    assert!(matches!(
        first.outcomes[0],
        Outcome::Accepted { seq: 1, .. }
    ));

    // A console following on server B while ten consoles push through A and B at once.
    let follower = client(pb, "serving", &token);
    let mut live = follower.subscribe(0).await.unwrap();
    let mut pushers = Vec::new();
    for c in 0..10 {
        let port = if c % 2 == 0 { pa } else { pb };
        let client = client(port, "serving", &token);
        pushers.push(tokio::spawn(async move {
            for batch in 0..5 {
                let records = (0..10)
                    .map(|n| {
                        note(
                            incident,
                            "ana",
                            &format!("console {c} batch {batch} note {n}"),
                        )
                    })
                    .collect();
                let answer = client.push(records).await.unwrap();
                assert!(answer
                    .outcomes
                    .iter()
                    .all(|o| matches!(o, Outcome::Accepted { .. })));
            }
        }));
    }
    for p in pushers {
        p.await.unwrap();
    }
    let expected = 1 + 10 * 5 * 10;
    let mut seen = Vec::new();
    while seen.len() < expected {
        match tokio::time::timeout(Duration::from_secs(20), live.next()).await {
            Ok(Some(Ok(Frame::Record(r)))) => seen.push(r.seq),
            Ok(Some(Ok(_))) => {}
            other => panic!(
                "the live stream ended after {} records: {other:?}",
                seen.len()
            ),
        }
    }
    assert_eq!(
        seen,
        (1..=expected as u64).collect::<Vec<_>>(),
        "live order, no gaps"
    );

    // Both servers give the same stream from any cursor.
    let from_a = pull(&client(pa, "serving", &token), 0).await;
    let from_b = pull(&client(pb, "serving", &token), 0).await;
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.len(), expected);
    let texts: BTreeSet<String> = from_a
        .iter()
        .filter_map(|r| match &r.record.body {
            Body::Append { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 500, "every note once");
    let resumed = pull(&client(pa, "serving", &token), 250).await;
    assert_eq!(resumed, from_a[250..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_take_command_leaves_one_commander_and_tells_the_other_who() {
    let Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_command").await;

    for round in 0..10 {
        let incident = Uuid::now_v7();
        client(port, "serving", &ana)
            .push(vec![open(incident)])
            .await
            .unwrap();
        let take = |token: String, who: &'static str| async move {
            client(port, "serving", &token)
                .push(vec![command(incident, "commander", None, Some(who))])
                .await
                .unwrap()
                .outcomes
                .remove(0)
        };
        let (a, b) = tokio::join!(take(ana.clone(), "ana"), take(ben.clone(), "ben"));
        let (winner, refused) = match (&a, &b) {
            (Outcome::Accepted { .. }, Outcome::Refused { .. }) => ("ana", b),
            (Outcome::Refused { .. }, Outcome::Accepted { .. }) => ("ben", a),
            other => panic!("round {round}: not exactly one commander: {other:?}"),
        };
        match refused {
            Outcome::Refused {
                field, current, by, ..
            } => {
                assert_eq!(field, "commander");
                assert_eq!(current.as_deref(), Some(winner));
                assert_eq!(by, winner);
            }
            _ => unreachable!(),
        }
    }
    // A refused command is not in the stream; a retry of it gets the same answer.
    let incident = Uuid::now_v7();
    let c = client(port, "serving", &ana);
    c.push(vec![open(incident)]).await.unwrap();
    c.push(vec![command(
        incident,
        "status",
        Some("open"),
        Some("acknowledged"),
    )])
    .await
    .unwrap();
    let stale = command(incident, "status", Some("open"), Some("mitigated"));
    let first = c.push(vec![stale.clone()]).await.unwrap();
    // Someone else moves it on; the retried stale push still gets its first answer.
    client(port, "serving", &ben)
        .push(vec![command(
            incident,
            "status",
            Some("acknowledged"),
            Some("open"),
        )])
        .await
        .unwrap();
    let again = c.push(vec![stale]).await.unwrap();
    assert_eq!(first.outcomes, again.outcomes);
    assert!(
        matches!(&first.outcomes[0], Outcome::Refused { current: Some(s), by, .. } if s == "acknowledged" && by == "ana")
    );
    assert_eq!(
        rig.count(
            "SELECT count(*) FROM records WHERE kind = 'command' AND body->>'value' = 'mitigated'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_revoked_and_foreign_tokens_are_refused_and_change_nothing() {
    let rig = rig("team_tokens").await;
    let port = free_port();
    let cfg = rig.config(port);
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let ben = add_user(server, &cfg, "ben", &["platform"]);
    let _server = spawn_server(server, &cfg, port).await;
    let incident = Uuid::now_v7();
    client(port, "serving", &ana)
        .push(vec![open(incident)])
        .await
        .unwrap();

    let refused = |r: Result<_, SyncError>, code: &str| match r {
        Err(SyncError::Refused { code: c, message }) => {
            assert_eq!(c, code, "{message}");
            message
        }
        other => panic!("expected {code}, got {other:?}"),
    };
    let bad = client(port, "serving", "fbt_0000");
    refused(
        bad.push(vec![note(incident, "x", "forged")])
            .await
            .map(|_| ()),
        "unauthorized",
    );
    refused(bad.subscribe(0).await.map(|_| ()), "unauthorized");
    // Ben is not in serving: he cannot read or write it, and is told why.
    let foreign = client(port, "serving", &ben);
    let why = refused(
        foreign
            .push(vec![note(incident, "ben", "hi")])
            .await
            .map(|_| ()),
        "not_a_member",
    );
    assert!(why.contains("ben") && why.contains("serving"), "{why}");
    refused(foreign.subscribe(0).await.map(|_| ()), "not_a_member");

    let out = server()
        .arg("--config")
        .arg(&cfg)
        .args(["user", "revoke", "ana"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = client(port, "serving", &ana);
    refused(
        revoked
            .push(vec![note(incident, "ana", "after revoke")])
            .await
            .map(|_| ()),
        "unauthorized",
    );
    assert_eq!(
        rig.count("SELECT count(*) FROM records").await,
        1,
        "only the open record"
    );

    // A new token for the same name works; the old one stays refused.
    let ana2 = add_user(server, &cfg, "ana", &["serving"]);
    client(port, "serving", &ana2)
        .push(vec![note(incident, "ana", "back")])
        .await
        .unwrap();
    refused(revoked.me().await.map(|_| ()), "unauthorized");
}

/// Real consoles send what this build makes; a newer, older or broken one may not. Each
/// record of a push is read on its own: what cannot be read or taken is answered
/// `invalid`, kept on the server for diagnosis and listed by `team-server rejected`, and
/// the valid records beside it are accepted in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_server_cannot_take_are_kept_apart_and_the_rest_of_their_push_counts() {
    firebreak_common::process::install_tls_provider();
    let p = pair(server, "team_rejected").await;
    let incident = Uuid::now_v7();
    let unknown_kind = Uuid::new_v4();
    let records = serde_json::json!([
        open(incident),
        note(incident, "ana", "first"),
        { "id": unknown_kind, "incident": incident, "at": Utc::now(), "kind": "tele\u{1b}[2Jport", "to": "mars" },
        42,
        { "id": "not-a-uuid", "kind": "append" },
        { "id": "\u{0}1234567-1234-1234-1234-123456789012", "kind": "append" },
        command(incident, "severity", Some("major"), Some("catastrophic")),
        { "id": Uuid::new_v4(), "incident": incident, "at": Utc::now(), "kind": "append",
          "entry_kind": "note", "author": "ana", "text": "\u{1b}[2Jescape\u{7}" , "data": { "deep": [1, 2, 3] } },
        note(incident, "ana", "last"),
    ]);
    let console = Uuid::new_v4();
    let answer = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/v1/teams/serving/records",
            p.port
        ))
        .bearer_auth(&p.ana)
        .header(wire::SCHEMA_HEADER, wire::SCHEMA.to_string())
        .json(&serde_json::json!({ "console": console, "records": records }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let answer: wire::PushResponse = answer.json().await.unwrap();
    let kinds: Vec<&str> = answer
        .outcomes
        .iter()
        .map(|o| match o {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Invalid { .. } => "invalid",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "accepted", "accepted", "invalid", "invalid", "invalid", "invalid", "invalid",
            "accepted", "accepted"
        ],
        "{:?}",
        answer.outcomes
    );
    let Outcome::Invalid { id, message } = &answer.outcomes[2] else {
        unreachable!()
    };
    assert_eq!(
        *id, unknown_kind,
        "the id is given back when it can be read"
    );
    assert!(
        message.contains("record 3") && message.contains("tele"),
        "{message}"
    );
    let Outcome::Invalid { id, .. } = &answer.outcomes[3] else {
        unreachable!()
    };
    assert!(
        id.is_nil(),
        "a record with no id is answered with the nil id"
    );
    let Outcome::Invalid { message, .. } = &answer.outcomes[6] else {
        unreachable!()
    };
    assert!(message.contains("catastrophic"), "{message}");
    assert_eq!(answer.head, 4, "four accepted, numbered without gaps");

    // The stream holds the four, in the order pushed; text stays as sent.
    let stream = pull(&client(p.port, "serving", &p.ben), 0).await;
    let seqs: Vec<u64> = stream.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let texts: Vec<String> = stream
        .iter()
        .filter_map(|s| match &s.record.body {
            Body::Append { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["first", "\u{1b}[2Jescape\u{7}", "last"]);

    // The five rejected are kept, and listed with why, escape sequences written out.
    assert_eq!(p.rig.count("SELECT count(*) FROM rejected").await, 5);
    let out = server()
        .arg("--config")
        .arg(p.rig.config(p.port))
        .args(["rejected", "--team", "serving"])
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{listed}");
    assert_eq!(listed.matches("why: ").count(), 5, "{listed}");
    assert!(listed.contains(&unknown_kind.to_string()), "{listed}");
    assert!(listed.contains("without a readable id"), "{listed}");
    assert!(
        listed.contains("tele") && listed.contains("mars"),
        "{listed}"
    );
    assert!(
        !listed.contains('\u{1b}') && listed.contains("\\u{1b}"),
        "control characters in what was sent are written out: {listed}"
    );

    // The same push again (an answer lost on the way): nothing is added twice.
    let again = client(p.port, "serving", &p.ana)
        .push(vec![stream[1].record.clone()])
        .await
        .unwrap();
    assert!(matches!(
        again.outcomes[0],
        Outcome::Duplicate { seq: 2, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_console_is_refused_with_a_message_that_says_what_to_do() {
    let rig = rig("team_schema").await;
    let port = free_port();
    let cfg = rig.config(port);
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let _server = spawn_server(server, &cfg, port).await;
    firebreak_common::process::install_tls_provider();
    let http = reqwest::Client::new();
    for schema in [Some("0"), None] {
        let mut request = http
            .post(format!("http://127.0.0.1:{port}/v1/teams/serving/records"))
            .bearer_auth(&ana)
            .json(&serde_json::json!({"console": Uuid::new_v4(), "records": []}));
        if let Some(s) = schema {
            request = request.header(wire::SCHEMA_HEADER, s);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 426);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "schema_too_old");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("update Firebreak")
                || schema.is_none(),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_cut_by_kill_9_of_its_server_is_retried_on_another_once() {
    let rig = rig("team_kill").await;
    let (pa, pb) = (free_port(), free_port());
    let (ca, cb) = (rig.config(pa), rig.config(pb));
    let token = add_user(server, &ca, "ana", &["serving"]);
    let mut a = spawn_server(server, &ca, pa).await;
    let _b = spawn_server(server, &cb, pb).await;
    let incident = Uuid::now_v7();
    client(pb, "serving", &token)
        .push(vec![open(incident)])
        .await
        .unwrap();

    // Five pushes of 500 notes each in flight on A when it is killed.
    let batches: Vec<Vec<Record>> = (0..5)
        .map(|b| {
            (0..500)
                .map(|n| note(incident, "ana", &format!("{b}/{n}")))
                .collect()
        })
        .collect();
    let on_a = client(pa, "serving", &token);
    let inflight: Vec<_> = batches
        .iter()
        .cloned()
        .map(|b| {
            let c = TeamClient::new(on_a.link().clone()).unwrap();
            tokio::spawn(async move { c.push(b).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(60)).await;
    a.kill_9();
    for p in inflight {
        let _ = p.await.unwrap();
    }
    // The console retries every batch, same ids, on B.
    let on_b = client(pb, "serving", &token);
    for b in &batches {
        let answer = on_b.push(b.clone()).await.unwrap();
        assert!(answer
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Accepted { .. } | Outcome::Duplicate { .. })));
    }
    let stream = pull(&on_b, 0).await;
    assert_eq!(stream.len(), 1 + 2500, "each note once");
    assert_eq!(
        stream.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=2501).collect::<Vec<u64>>()
    );
    let ids: BTreeSet<Uuid> = stream.iter().map(|r| r.record.id).collect();
    assert_eq!(ids.len(), 2501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_refuses_a_cursor_ahead_of_the_team_and_shows_who_is_looking() {
    let rig = rig("team_stream").await;
    let port = free_port();
    let cfg = rig.config(port);
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let ben = add_user(server, &cfg, "ben", &["serving", "platform"]);
    let _server = spawn_server(server, &cfg, port).await;
    let incident = Uuid::now_v7();
    client(port, "serving", &ana)
        .push(vec![open(incident)])
        .await
        .unwrap();

    let mut ahead = client(port, "serving", &ana).subscribe(7).await.unwrap();
    match ahead.next().await {
        Some(Ok(Frame::Error { code, message })) => {
            assert_eq!(code, "cursor_ahead");
            assert!(
                message.contains('7') && message.contains("has only 1"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    let mut a = client(port, "serving", &ana).subscribe(0).await.unwrap();
    let mut b = client(port, "serving", &ben).subscribe(0).await.unwrap();
    b.viewing(Some(incident)).await.unwrap();
    presence_until(&mut a, "a presence frame with both people", |people| {
        let ben_sees = people.iter().find(|p| p.name == "ben").map(|p| p.incident);
        people.iter().any(|p| p.name == "ana") && ben_sees == Some(Some(incident))
    })
    .await;
    // Ben's platform team shows nothing of serving's.
    assert!(pull(&client(port, "platform", &ben), 0).await.is_empty());
}

/// Presence lives in the server processes' memory: a console connected through one
/// process is seen, with the incident it shows, by a console on another; one that
/// closes its stream is gone at once; and a process killed with its consoles takes them
/// off the others' lists within the presence window, though it could not say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_is_looking_crosses_server_processes_and_a_killed_process_takes_its_consoles_along() {
    let rig = rig("team_presence_processes").await;
    let (pa, pb) = (free_port(), free_port());
    let (ca, cb) = (rig.config(pa), rig.config(pb));
    let ana = add_user(server, &ca, "ana", &["serving"]);
    let ben = add_user(server, &ca, "ben", &["serving"]);
    let cyd = add_user(server, &ca, "cyd", &["serving"]);
    let server_a = spawn_server(server, &ca, pa).await;
    let _server_b = spawn_server(server, &cb, pb).await;
    let incident = Uuid::now_v7();
    client(pa, "serving", &ana)
        .push(vec![open(incident)])
        .await
        .unwrap();

    let mut on_a = client(pa, "serving", &ana).subscribe(0).await.unwrap();
    let cyd_on_a = client(pa, "serving", &cyd).subscribe(0).await.unwrap();
    let mut on_b = client(pb, "serving", &ben).subscribe(0).await.unwrap();
    on_a.viewing(Some(incident)).await.unwrap();
    presence_until(&mut on_b, "Ben, on B, to see Ana and Cyd on A", |people| {
        let ana_sees = people.iter().find(|p| p.name == "ana").map(|p| p.incident);
        ana_sees == Some(Some(incident)) && people.iter().any(|p| p.name == "cyd")
    })
    .await;
    presence_until(&mut on_a, "Ana, on A, to see Ben on B", |people| {
        people.iter().any(|p| p.name == "ben")
    })
    .await;

    // Cyd closes his console: gone from B's list without waiting for the window.
    drop(cyd_on_a);
    presence_until(&mut on_b, "Cyd gone", |people| {
        !people.iter().any(|p| p.name == "cyd") && people.iter().any(|p| p.name == "ana")
    })
    .await;

    // Process A is killed with Ana's console on it: nobody is left to say she left.
    drop(server_a);
    drop(on_a);
    presence_until(&mut on_b, "Ana forgotten with her process", |people| {
        people.iter().map(|p| p.name.as_str()).collect::<Vec<_>>() == ["ben"]
    })
    .await;
}

/// Reads `sub` until a presence frame satisfies `wanted` (30 s at most).
async fn presence_until(
    sub: &mut firebreak_engine::team::client::Subscription,
    what: &str,
    wanted: impl Fn(&[wire::Presence]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("waited 30 s for {what}"))
            .unwrap()
            .unwrap();
        if let Frame::Presence { people } = frame {
            if wanted(&people) {
                return;
            }
        }
    }
}

use firebreak_engine::team::sync::{SyncState, TeamSync};
use firebreak_store::incident::{IncidentStatus, Severity};
use firebreak_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_consoles_work_one_incident_and_converge_with_one_commander() {
    let rig = rig("team_ten_consoles").await;
    let port = free_port();
    let cfg = rig.config(port);
    let names = [
        "ana", "ben", "cai", "dee", "eli", "fay", "gus", "hal", "ivy", "jon",
    ];
    let tokens: Vec<String> = names
        .iter()
        .map(|n| add_user(server, &cfg, n, &["serving"]))
        .collect();
    let _server = spawn_server(server, &cfg, port).await;
    let mut consoles = Vec::new();
    for t in &tokens {
        consoles.push(Console::linked(port, "serving", t).await);
    }
    let opened = open_by_hand(
        &consoles[0].store,
        "GPU node loss on us-east",
        Some("llm-assistant"),
        Severity::Major,
        "ana",
    )
    .await;
    let mut ids = Vec::new();
    for c in &consoles {
        ids.push(c.incident(&opened.public_id).await);
    }
    // Everyone writes notes and tries to take command at once.
    let mut work = Vec::new();
    for (n, c) in consoles.iter().enumerate() {
        let store = c.store.clone();
        let id = ids[n];
        let name = names[n];
        work.push(tokio::spawn(async move {
            for k in 0..10 {
                store
                    .add_note(id, &format!("{name} note {k}"), name)
                    .await
                    .unwrap();
            }
            store.set_commander(id, Some(name), name).await.unwrap();
        }));
    }
    for w in work {
        w.await.unwrap();
    }
    let shared = converged(&consoles, async || head_of(&rig.url).await).await;
    let commanders: Vec<Option<String>> = {
        let mut v = Vec::new();
        for (n, c) in consoles.iter().enumerate() {
            v.push(c.store.incident(ids[n]).await.unwrap().commander);
        }
        v
    };
    let commander = commanders[0].clone().expect("someone commands");
    assert!(
        commanders.iter().all(|c| c.as_ref() == Some(&commander)),
        "{commanders:?}"
    );
    for name in names {
        for k in 0..10 {
            let note = format!(" note {name}: {name} note {k}");
            assert_eq!(
                shared.iter().filter(|l| l.ends_with(&note)).count(),
                1,
                "{name}'s note {k} once in the shared record"
            );
        }
    }
    // Every console but the winner's was told who took it.
    for (n, c) in consoles.iter().enumerate() {
        let timeline = c.store.timeline(ids[n], None, 1000).await.unwrap();
        let told = timeline.iter().any(|e| {
            e.body.contains(&format!("{commander} took command"))
                && e.body.contains("was not applied")
        });
        assert_eq!(told, names[n] != commander, "console {n} ({})", names[n]);
    }
    // Every console's audit chain still verifies, with the team's commands in it.
    for c in &consoles {
        assert_eq!(c.store.verify_audit().await.unwrap().first_bad, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_console_offline_for_a_while_queues_then_converges_and_can_redo_a_refused_change() {
    let Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_offline").await;
    let a = Console::linked(port, "serving", &ana).await;
    let mut b = Console::linked(port, "serving", &ben).await;
    let opened = open_by_hand(
        &a.store,
        "Pipeline stalled",
        None,
        Severity::Critical,
        "ana",
    )
    .await;
    let b_id = b.incident(&opened.public_id).await;
    b.offline();
    // Ben, offline, acknowledges, takes command and writes; Ana does both first on the team.
    b.store
        .add_note(b_id, "ben: looking at the scheduler (offline)", "ben")
        .await
        .unwrap();
    b.store
        .change_status(b_id, IncidentStatus::Acknowledged, "ben")
        .await
        .unwrap();
    b.store
        .set_commander(b_id, Some("ben"), "ben")
        .await
        .unwrap();
    a.store
        .change_status(opened.id, IncidentStatus::Acknowledged, "ana")
        .await
        .unwrap();
    a.store
        .set_commander(opened.id, Some("ana"), "ana")
        .await
        .unwrap();
    a.store
        .add_note(opened.id, "ana: paging platform", "ana")
        .await
        .unwrap();
    support::rig::wait_for(
        Duration::from_secs(30),
        "ana's console to push",
        async || a.settled().await,
    )
    .await;
    assert_eq!(
        b.store.team_pending_count().await.unwrap(),
        3,
        "ben's work waits in his outbox"
    );
    b.online();
    let consoles = [a, b];
    let shared = converged(&consoles, async || head_of(&rig.url).await).await;
    assert!(shared
        .iter()
        .any(|l| l.contains("ben: looking at the scheduler (offline)")));
    assert!(shared.iter().any(|l| l.contains("ana: paging platform")));
    let acks = shared
        .iter()
        .filter(|l| l.contains("status_changed"))
        .count();
    assert_eq!(
        acks, 1,
        "one acknowledgement in the shared record: {shared:#?}"
    );
    let [a, b] = consoles;
    assert_eq!(
        b.store.incident(b_id).await.unwrap().commander.as_deref(),
        Some("ana")
    );

    // Ben is told, and redoes taking command on the incident as it now is.
    let timeline = b.store.timeline(b_id, None, 100).await.unwrap();
    let told = timeline
        .iter()
        .find(|e| e.body.starts_with("ana took command") && e.body.contains("was not applied"))
        .unwrap_or_else(|| panic!("no refusal on ben's timeline: {timeline:#?}"));
    assert!(timeline
        .iter()
        .any(|e| e.body.starts_with("ana acknowledged this ")));
    b.store.redo_refused(told.id, "ben").await.unwrap();
    let consoles = [a, b];
    converged(&consoles, async || head_of(&rig.url).await).await;
    assert_eq!(
        consoles[0]
            .store
            .incident(opened.id)
            .await
            .unwrap()
            .commander
            .as_deref(),
        Some("ben")
    );
}

/// A queued record the console cannot read back (a damaged row, a bug in a trigger) must
/// not hold up everything queued behind it: it is answered on the console, kept, and
/// noted on its incident, and the records after it are pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_record_that_does_not_read_back_is_noted_and_the_queue_goes_on() {
    let p = pair(server, "team_unreadable").await;
    let mut a = Console::linked(p.port, "serving", &p.ana).await;
    let b = Console::linked(p.port, "serving", &p.ben).await;
    let opened = open_by_hand(&a.store, "Queue stuck", None, Severity::Major, "ana").await;
    let b_id = b.incident(&opened.public_id).await;
    a.offline();
    for text in ["one", "two", "three"] {
        a.store.add_note(opened.id, text, "ana").await.unwrap();
    }
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", a.store.path().display()))
        .await
        .unwrap();
    let damaged = sqlx::query(
        "UPDATE team_outbox SET body = '[\"not\", \"an object\"]' \
         WHERE answered_ms IS NULL AND json_extract(body, '$.text') = 'two'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(damaged.rows_affected(), 1);
    pool.close().await;

    a.online();
    support::rig::wait_for(
        Duration::from_secs(30),
        "ana's queue to empty",
        async || a.settled().await,
    )
    .await;
    support::rig::wait_for(Duration::from_secs(30), "ben to get 'three'", async || {
        let t = b.store.timeline(b_id, None, 100).await.unwrap();
        t.iter().any(|e| e.body == "three")
    })
    .await;
    let bens = b.store.timeline(b_id, None, 100).await.unwrap();
    assert!(bens.iter().any(|e| e.body == "one"));
    assert!(
        !bens.iter().any(|e| e.body == "two"),
        "the damaged one is not sent"
    );
    let anas = a.store.timeline(opened.id, None, 100).await.unwrap();
    assert!(anas.iter().any(|e| e.body == "two"), "ana keeps her note");
    let told = anas
        .iter()
        .find(|e| e.body.starts_with("This console could not read back"))
        .unwrap_or_else(|| panic!("no note of the damaged record: {anas:#?}"));
    assert!(told.body.contains("not an object"), "{}", told.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_console_syncs_with_the_servers_ca_and_is_refused_without_it() {
    let rig = rig("team_tls").await;
    let port = free_port();
    let dir = rig.dir.path();
    let (_ca, tls) = support::tls::server_files(dir);
    std::fs::write(dir.join("db-url"), &rig.url).unwrap();
    let cfg = dir.join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = {{ file = \"{}\" }}\n{tls}",
            dir.join("db-url").display()
        ),
    )
    .unwrap();
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let _server = spawn_server(server, &cfg, port).await;
    let link = |ca: Option<std::path::PathBuf>| TeamLink {
        url: format!("https://localhost:{port}"),
        team: "serving".into(),
        token: ana.clone(),
        console: Uuid::new_v4(),
        ca_file: ca,
    };
    let trusted = TeamClient::new(link(Some(dir.join("ca.pem")))).unwrap();
    assert_eq!(trusted.me().await.unwrap()["name"], "ana");
    let incident = Uuid::now_v7();
    trusted.push(vec![open(incident)]).await.unwrap();
    assert_eq!(pull(&trusted, 0).await.len(), 1, "the stream over wss");
    let stranger = TeamClient::new(link(None)).unwrap();
    match stranger.me().await {
        Err(SyncError::Unreachable(why)) => {
            assert!(
                why.contains("not signed by a CA this console trusts"),
                "{why}"
            )
        }
        other => panic!("a server no trusted CA signed was accepted: {other:?}"),
    }
    // Plain http to another machine is refused before anything is sent.
    let cleartext = TeamClient::new(TeamLink {
        url: "http://192.0.2.10:7600".into(),
        ..link(None)
    });
    assert!(matches!(cleartext, Err(SyncError::Refused { .. })));
}

#[test]
fn a_server_configuration_off_loopback_without_tls_is_refused() {
    let err = firebreak_team_server::config::parse(
        "listen = \"0.0.0.0:7600\"\ndatabase = { env = \"FIREBREAK_TEAM_DATABASE_URL\" }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not a loopback address") && err.contains("[tls]"),
        "{err}"
    );
    let err = firebreak_team_server::config::parse(
        "listen = \"127.0.0.1:7600\"\ndatabase = \"postgres://u:secret@db/x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        !err.contains("secret"),
        "the error repeats the secret: {err}"
    );
}

/// A console's review as the team shares it: what each console must agree on (local ids
/// and times left out).
async fn review_of(c: &Console, public: &str) -> String {
    let id = c.incident(public).await;
    let r = c.store.review(id).await.unwrap();
    let timeline = c.store.timeline(id, None, 1000).await.unwrap();
    let body_of = |entry: i64| {
        timeline
            .iter()
            .find(|e| e.id == entry)
            .map(|e| e.body.clone())
    };
    let mut annotations: Vec<String> = r
        .annotations
        .iter()
        .map(|a| format!("{} on {:?}: {}", a.author, body_of(a.entry_id), a.body))
        .collect();
    annotations.sort();
    let mut follow_ups: Vec<String> = r
        .follow_ups
        .iter()
        .map(|f| format!("{} / {} / {:?} / {:?}", f.title, f.owner, f.due, f.status))
        .collect();
    follow_ups.sort();
    let mut factors = r.factors.clone();
    factors.sort();
    let moments: Vec<String> = r
        .moment_edits
        .iter()
        .map(|m| format!("{} {:?} {} by {}", m.moment, m.at_ms, m.reason, m.author))
        .collect();
    format!(
        "root cause {:?}\nfactors {factors:?}\nfollow-ups {follow_ups:?}\nannotations {annotations:?}\nmoments {moments:?}",
        r.root_cause
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_review_is_shared_and_a_record_a_console_cannot_take_is_noted_not_fatal() {
    use firebreak_store::review::{FollowUpDraft, FollowUpStatus};
    let Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_review").await;
    let a = Console::linked(port, "serving", &ana).await;
    let b = Console::linked(port, "serving", &ben).await;
    let opened = open_by_hand(&a.store, "Bad model 7b-v12", None, Severity::Major, "ana").await;
    let note = a
        .store
        .add_note(opened.id, "rolled back to v11", "ana")
        .await
        .unwrap();
    let b_id = b.incident(&opened.public_id).await;
    support::rig::wait_for(
        Duration::from_secs(30),
        "the note on ben's console",
        async || {
            b.store
                .timeline(b_id, None, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.body == "rolled back to v11")
        },
    )
    .await;
    let b_note = b
        .store
        .timeline(b_id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.body == "rolled back to v11")
        .unwrap();

    // Each reviews part of it.
    b.store
        .annotate(b_id, b_note.id, "this is what helped", "ben")
        .await
        .unwrap();
    b.store
        .set_moment(
            b_id,
            "impact_began",
            Some(opened.opened_ms - 60_000),
            "errors began a minute earlier",
            "ben",
        )
        .await
        .unwrap();
    b.store.add_factor(b_id, "No canary", "ben").await.unwrap();
    b.store
        .add_factor(b_id, "Alert too late", "ben")
        .await
        .unwrap();
    let draft = FollowUpDraft {
        title: "Add a canary stage".into(),
        owner: "ben".into(),
        due: Some("2026-12-15".into()),
        status: FollowUpStatus::Open,
    };
    let f = b.store.add_follow_up(b_id, &draft, "ben").await.unwrap();
    a.store
        .set_root_cause(opened.id, Some("bad model version"), "ana")
        .await
        .unwrap();
    a.store
        .annotate(opened.id, note.id, "took 4 minutes", "ana")
        .await
        .unwrap();
    let consoles = [a, b];
    converged(&consoles, async || head_of(&rig.url).await).await;
    let [a, b] = consoles;
    // Later changes: a factor removed on one console, the follow-up done on the other.
    support::rig::wait_for(
        Duration::from_secs(30),
        "ben's follow-up on ana's console",
        async || {
            !a.store
                .review(opened.id)
                .await
                .unwrap()
                .follow_ups
                .is_empty()
        },
    )
    .await;
    a.store
        .remove_factor(opened.id, "alert too late")
        .await
        .unwrap();
    b.store
        .update_follow_up(
            f.id,
            &FollowUpDraft {
                status: FollowUpStatus::Done,
                ..draft.clone()
            },
            "ben",
        )
        .await
        .unwrap();
    // A record this build cannot take (a key moment that does not exist), pushed by a
    // newer or hostile console: noted on the incident, the rest of the stream applies.
    let hostile = Record {
        id: Uuid::new_v4(),
        incident: opened.public_id.parse().unwrap(),
        at: Utc::now(),
        body: Body::Append {
            entry_kind: "review.moment".into(),
            author: "ben".into(),
            text: "<script>alert(1)</script>".into(),
            data: Some(serde_json::json!({ "moment": "whenever", "at_ms": 1 })),
            event: None,
            amends: None,
        },
    };
    client(port, "serving", &ben)
        .push(vec![hostile])
        .await
        .unwrap();
    b.store
        .add_note(b_id, "after the hostile record", "ben")
        .await
        .unwrap();
    let consoles = [a, b];
    converged(&consoles, async || head_of(&rig.url).await).await;
    let ra = review_of(&consoles[0], &opened.public_id).await;
    let rb = review_of(&consoles[1], &opened.public_id).await;
    assert_eq!(ra, rb);
    assert!(
        ra.contains("root cause Some(\"bad model version\")"),
        "{ra}"
    );
    assert!(ra.contains("factors [\"No canary\"]"), "{ra}");
    assert!(
        ra.contains(r#"Add a canary stage / ben / Some(\"2026-12-15\") / Done"#),
        "{ra}"
    );
    assert!(
        ra.contains(r#"ben on Some(\"rolled back to v11\"): this is what helped"#),
        "{ra}"
    );
    assert!(
        ra.contains(r#"ana on Some(\"rolled back to v11\"): took 4 minutes"#),
        "{ra}"
    );
    assert!(ra.contains("errors began a minute earlier by ben"), "{ra}");
    for c in &consoles {
        let id = c.incident(&opened.public_id).await;
        let timeline = c.store.timeline(id, None, 1000).await.unwrap();
        assert!(timeline
            .iter()
            .any(|e| e.body == "after the hostile record"));
        let noted = timeline
            .iter()
            .filter(|e| e.body.contains("could not be applied here"))
            .count();
        assert_eq!(noted, 1, "{timeline:#?}");
        // The review stays beside the timeline: no review record became an entry.
        assert!(!timeline
            .iter()
            .any(|e| e.body.contains("this is what helped") || e.body == "No canary"));
        assert_eq!(c.store.verify_audit().await.unwrap().first_bad, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_action_and_a_runbook_run_on_one_console_show_on_the_other_which_never_drives_them() {
    use firebreak_engine::actions::ActionSettings;
    use firebreak_protocol::actions::ActionKind;
    // The database lives as long as `_rig`.
    let Pair {
        rig: _rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_actions").await;
    let sim = support::cluster::sim("bad-model-rollout", 10.0, |_| {}).await;

    // Ana records the cluster, linked to the team before the rules open anything.
    let a_dir = tempfile::tempdir().unwrap();
    let a_db = a_dir.path().join("firebreak.db");
    {
        let store = Store::open(&a_db).await.unwrap();
        store
            .link_team(&format!("http://127.0.0.1:{port}"), "serving", None, None)
            .await
            .unwrap();
        store.close().await;
    }
    let live = support::rig::live(
        &a_db,
        &sim,
        ActionSettings {
            grace_s: 1,
            verify_window_s: 4,
            ..ActionSettings::default()
        },
    )
    .await;
    let _a_sync = TeamSync::start(live.store.clone(), ana.clone(), std::sync::Arc::new(|_| {}));
    let b = Console::linked(port, "serving", &ben).await;

    let incident = support::rig::incident_where(&live.store, "the rollout's incident", |i| {
        i.service.as_deref() == Some("llm-assistant")
    })
    .await;
    let proposal = live
        .desk
        .propose(incident.id, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    live.desk
        .confirm(&proposal.id, "ana", "errors on 42", Some("llm-assistant"))
        .await
        .unwrap();
    let library = firebreak_engine::runbooks::Library::load(&[]);
    let runbook = library.runbooks.first().unwrap();
    let run = live
        .store
        .start_run(incident.id, runbook, "ana")
        .await
        .unwrap();
    let first = runbook.steps.first().unwrap().id().to_owned();
    live.store
        .record_step(
            run.id,
            firebreak_store::runs::Recorded {
                step_id: &first,
                outcome: "done",
                text: "checked the dashboards",
                value: None,
                series: None,
                next: runbook.steps.get(1).map(|s| s.id()),
                author: "ana",
            },
        )
        .await
        .unwrap();

    let b_id = b.incident(&incident.public_id).await;
    support::rig::wait_for(
        Duration::from_secs(90),
        "ana's rollback, verified, on ben's console",
        async || {
            let activity = b.store.team_activity(b_id).await.unwrap();
            activity.actions.iter().any(|a| {
                a.public_id == proposal.id && a.state == "succeeded" && a.verification.is_some()
            }) && activity
                .runs
                .iter()
                .any(|r| r.steps_done == 1 && r.by_name == "ana")
        },
    )
    .await;
    let activity = b.store.team_activity(b_id).await.unwrap();
    let action = &activity.actions[0];
    assert_eq!(
        (
            action.kind.as_str(),
            action.confirmed_by.as_deref(),
            action.by_name.as_str()
        ),
        ("rollback", Some("ana"), "ana")
    );
    assert_eq!(activity.runs[0].runbook_title, runbook.title);
    // Ben's desk has nothing to drive, and his reports still see the steps on the timeline.
    assert!(b.store.incident_actions(b_id).await.unwrap().is_empty());
    let timeline = b.store.timeline(b_id, None, 1000).await.unwrap();
    assert!(timeline
        .iter()
        .any(|e| e.body.contains("checked the dashboards")));
    assert!(timeline
        .iter()
        .any(|e| e.kind == firebreak_store::incident::EntryKind::Action));
    // The action's audit records came too, and each one's hash checks out on Ben's console.
    let (shared, bad) = b.store.verify_team_audit().await.unwrap();
    assert!(shared >= 3, "proposed, confirmed, sent…: {shared}");
    assert_eq!(bad, None);
    let b_db = b.store.path().to_owned();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", b_db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE team_audit SET actor = 'mallory' WHERE audit_id = (SELECT max(audit_id) FROM team_audit)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (_, bad) = b.store.verify_team_audit().await.unwrap();
    assert!(bad.unwrap().contains("does not match its hash"));
    live.engine.stop().await;
    sim.shutdown();
}

/// The sync pushes when a change is queued, not at its next look: the store's writer says
/// so from the commit of any transaction that queued a record, whichever code path made
/// it, and only then.
#[tokio::test]
async fn the_store_tells_the_sync_when_a_transaction_queued_records_for_the_team() {
    use futures_util::FutureExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    store
        .link_team("http://127.0.0.1:1", "serving", None, None)
        .await
        .unwrap();
    let queued = store.outbox_queued();
    let told = || queued.notified().now_or_never().is_some();
    store
        .add_cluster(&firebreak_store::NewCluster {
            name: "prod-east".into(),
            events_url: "ws://127.0.0.1:1/events".into(),
            actions_url: "http://127.0.0.1:1/".into(),
            ca_file: None,
        })
        .await
        .unwrap();
    assert!(!told(), "a change that shares nothing says nothing");
    let opened = open_by_hand(&store, "Shared", None, Severity::Minor, "ana").await;
    assert!(told(), "opening a shared incident queued its open record");
    store.add_note(opened.id, "a note", "ana").await.unwrap();
    assert!(told(), "a note on it queued an append");
    assert!(!told(), "one notification a transaction");
    store.set_team_enabled(false).await.unwrap();
    assert!(!told());
}

/// A record in the team's stream that no console can read (a newer console's kind, or a
/// row edited in the database) is noted on the incident by each console that reads it,
/// and the records after it still arrive: it never stops the stream for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_console_can_read_is_noted_and_the_stream_goes_on() {
    let p = pair(server, "team_unknown").await;
    let a = Console::linked(p.port, "serving", &p.ana).await;
    let opened = open_by_hand(&a.store, "Stream", None, Severity::Minor, "ana").await;
    for text in [
        "before",
        "edited to a kind nobody knows",
        "edited to lose its text",
        "after",
    ] {
        a.store.add_note(opened.id, text, "ana").await.unwrap();
    }
    support::rig::wait_for(
        Duration::from_secs(30),
        "ana's console to push",
        async || a.settled().await,
    )
    .await;
    let pool = sqlx::PgPool::connect(&p.rig.url).await.unwrap();
    for (text, body) in [
        (
            "edited to a kind nobody knows",
            r#"{"kind": "teleport", "to": "mars"}"#,
        ),
        ("edited to lose its text", r#"{"kind": "append"}"#),
    ] {
        let edited = sqlx::query("UPDATE records SET body = $2::jsonb WHERE body->>'text' = $1")
            .bind(text)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(edited.rows_affected(), 1);
    }
    pool.close().await;

    // Ben's console, new, reads the whole stream.
    let b = Console::linked(p.port, "serving", &p.ben).await;
    let b_id = b.incident(&opened.public_id).await;
    let head = head_of(&p.rig.url).await;
    support::rig::wait_for(
        Duration::from_secs(30),
        "ben to read to the head",
        async || b.store.team_link().await.unwrap().unwrap().cursor == head,
    )
    .await;
    let bens = b.store.timeline(b_id, None, 100).await.unwrap();
    let bodies: Vec<&str> = bens.iter().map(|e| e.body.as_str()).collect();
    assert!(
        bodies.contains(&"before") && bodies.contains(&"after"),
        "{bodies:#?}"
    );
    let noted = bodies
        .iter()
        .filter(|b| b.contains("could not be applied here") && b.contains("does not know"))
        .count();
    assert_eq!(noted, 2, "{bodies:#?}");
}

/// A managed PostgreSQL usually takes only TLS. The team server reaches one with
/// `sslmode=verify-full` and the database's CA in `sslrootcert`; without that CA it is
/// refused, saying why, and nothing in plain text gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_server_uses_a_postgresql_that_takes_only_tls_and_checks_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let _ = support::tls::server_files(dir.path());
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let pg = Postgres::start_tls(&read("gateway.crt"), &read("gateway.key")).await;
    let url = pg.database("team_tls_db").await;
    let ca = dir.path().join("ca.pem");

    // Plain text is refused by the database itself.
    let plain = sqlx::PgPool::connect(&format!("{url}?sslmode=disable")).await;
    assert!(plain.is_err(), "the database took a connection without TLS");

    // Without its CA: the server's admin command says the certificate is not trusted.
    let port = free_port();
    let cfg = config(dir.path(), &format!("{url}?sslmode=verify-full"), port);
    let out = server()
        .arg("--config")
        .arg(&cfg)
        .args(["user", "add", "ana", "--team", "serving"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("cannot connect to the team database") && said.contains("sslrootcert="),
        "{said}"
    );

    // With it: people are added, the server serves, a push lands in the database.
    let cfg = config(
        dir.path(),
        &format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display()),
        port,
    );
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let _server = spawn_server(server, &cfg, port).await;
    let incident = Uuid::now_v7();
    let answer = client(port, "serving", &ana)
        .push(vec![open(incident), note(incident, "ana", "over TLS")])
        .await
        .unwrap();
    assert_eq!(answer.head, 2);
    let pool = sqlx::PgPool::connect(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ))
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(ssl);
}

/// Notes are as long as people make them (a pasted log). One too large for any team record
/// is answered on the console and noted, never sent; a queue of large ones goes in pushes
/// the server takes, however many it needs: the queue never sticks on a push too big.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_notes_go_in_pushes_the_server_takes_and_one_too_large_is_kept_here() {
    let p = pair(server, "team_large").await;
    let mut a = Console::linked(p.port, "serving", &p.ana).await;
    let b = Console::linked(p.port, "serving", &p.ben).await;
    let opened = open_by_hand(&a.store, "Logs pasted", None, Severity::Minor, "ana").await;
    let b_id = b.incident(&opened.public_id).await;
    a.offline();
    // 300 notes of 60 KB: 18 MB, more than one push may carry (16 MiB).
    let line = "x".repeat(60_000);
    for k in 0..300 {
        a.store
            .add_note(opened.id, &format!("log {k}: {line}"), "ana")
            .await
            .unwrap();
    }
    let huge = format!("the whole log: {}", "y".repeat(300_000));
    a.store.add_note(opened.id, &huge, "ana").await.unwrap();
    a.store
        .add_note(opened.id, "after the logs", "ana")
        .await
        .unwrap();
    a.online();
    support::rig::wait_for(
        Duration::from_secs(120),
        "ana's queue to empty",
        async || a.settled().await,
    )
    .await;
    support::rig::wait_for(
        Duration::from_secs(120),
        "ben to get the last note",
        async || {
            let t = b.store.timeline(b_id, None, 1000).await.unwrap();
            t.iter().any(|e| e.body == "after the logs")
        },
    )
    .await;
    let bens = b.store.timeline(b_id, None, 1000).await.unwrap();
    assert_eq!(
        bens.iter().filter(|e| e.body.starts_with("log ")).count(),
        300
    );
    assert!(!bens.iter().any(|e| e.body.starts_with("the whole log")));
    let anas = a.store.timeline(opened.id, None, 1000).await.unwrap();
    assert!(anas.iter().any(|e| e.body == huge), "ana keeps it");
    let told = anas
        .iter()
        .find(|e| e.body.starts_with("The team did not take"))
        .unwrap_or_else(|| panic!("no note of the note too large"));
    assert!(told.body.contains("was not sent"), "{}", told.body);
    assert_eq!(
        p.rig
            .count("SELECT count(*) FROM records WHERE body->>'text' LIKE 'log %'")
            .await,
        300
    );
}

/// Text with a NUL in it (a pasted binary log; our hostile-text fixture has one) is taken
/// like any other: PostgreSQL's JSONB cannot hold U+0000, and one such note must not fail
/// the push that carries it, nor the notes beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_with_a_nul_in_it_is_shared_like_any_other() {
    let p = pair(server, "team_nul").await;
    let incident = Uuid::now_v7();
    let c = client(p.port, "serving", &p.ana);
    let answer = c
        .push(vec![
            open(incident),
            note(incident, "ana", "before"),
            note(incident, "ana", "nul\u{0}byte and \\u0000 written out"),
            note(incident, "ana", "after"),
        ])
        .await
        .unwrap();
    assert!(
        answer
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Accepted { .. })),
        "{:?}",
        answer.outcomes
    );
    let texts: Vec<String> = pull(&client(p.port, "serving", &p.ben), 0)
        .await
        .into_iter()
        .filter_map(|s| match s.record.body {
            Body::Append { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["before", "nul\u{0}byte and \\u0000 written out", "after"]
    );
}

/// `team-server user …` run against `cfg`: its exit status, standard output and error.
fn user_cmd(cfg: &Path, args: &[&str]) -> (bool, String, String) {
    let out = server()
        .arg("--config")
        .arg(cfg)
        .arg("user")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The frames of an open stream up to the end it is given, or `None` after 30 s.
async fn until_the_stream_ends(
    sub: &mut firebreak_engine::team::client::Subscription,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(Ok(frame))) => {
                let end = matches!(frame, Frame::Error { .. });
                frames.push(frame);
                if end {
                    return frames;
                }
            }
            Ok(_) => return frames,
            Err(_) => panic!("the stream was still open 30 s after access ended: {frames:?}"),
        }
    }
}

fn texts(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Record(r) => match &r.record.body {
                Body::Append { text, .. } => Some(text.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Access is not only checked when a stream opens: a token revoked, or a team left, while
/// a console is reading the team ends its stream (announced to every server process) before
/// the team's next record reaches it, and the console stops retrying and says why.
/// Admins manage membership without reissuing tokens (`user join`, `user leave`,
/// `user list`), and names that would garble a terminal or a timeline are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoking_a_token_or_leaving_a_team_ends_the_streams_already_open() {
    let rig = rig("team_access").await;
    let (port_a, port_b) = (free_port(), free_port());
    let (cfg_a, cfg_b) = (rig.config(port_a), rig.config(port_b));
    let ana = add_user(server, &cfg_a, "ana", &["serving"]);
    let ben = add_user(server, &cfg_a, "ben", &["platform", "platform"]);
    let cy = add_user(server, &cfg_a, "cy", &["serving"]);
    let _a = spawn_server(server, &cfg_a, port_a).await;
    let _b = spawn_server(server, &cfg_b, port_b).await;
    let incident = Uuid::now_v7();
    client(port_a, "serving", &cy)
        .push(vec![open(incident), note(incident, "cy", "before")])
        .await
        .unwrap();

    // Ben joins serving with the token he has, and reads it on server B.
    let (ok, _, err) = user_cmd(&cfg_a, &["join", "ben", "--team", "serving"]);
    assert!(ok, "{err}");
    assert_eq!(pull(&client(port_b, "serving", &ben), 0).await.len(), 2);
    let (ok, listed, err) = user_cmd(&cfg_a, &["list"]);
    assert!(ok, "{err}");
    assert!(
        listed.contains("ben  since") && listed.contains("teams: platform, serving"),
        "{listed}"
    );

    // Ana (on server A) and Ben (on server B) are reading serving when the admin revokes
    // Ana's token and takes Ben out of serving; Cy then writes.
    let mut ana_live = client(port_a, "serving", &ana).subscribe(0).await.unwrap();
    let mut ben_live = client(port_b, "serving", &ben).subscribe(0).await.unwrap();
    for sub in [&mut ana_live, &mut ben_live] {
        while !matches!(sub.next().await.unwrap().unwrap(), Frame::CaughtUp { .. }) {}
    }
    let mut ana_console = Console::linked(port_a, "serving", &ana).await;
    support::rig::wait_for(
        Duration::from_secs(30),
        "Ana's console to sync",
        async || ana_console.settled().await,
    )
    .await;
    let (ok, _, err) = user_cmd(&cfg_a, &["revoke", "ana"]);
    assert!(ok, "{err}");
    let (ok, _, err) = user_cmd(&cfg_b, &["leave", "ben", "--team", "serving"]);
    assert!(ok, "{err}");
    client(port_b, "serving", &cy)
        .push(vec![note(incident, "cy", "after they lost access")])
        .await
        .unwrap();

    let ana_frames = until_the_stream_ends(&mut ana_live).await;
    assert!(
        matches!(ana_frames.last(), Some(Frame::Error { code, message })
            if code == "unauthorized" && message.contains("revoked")),
        "{ana_frames:?}"
    );
    let ben_frames = until_the_stream_ends(&mut ben_live).await;
    assert!(
        matches!(ben_frames.last(), Some(Frame::Error { code, message })
            if code == "not_a_member" && message.contains("ben")),
        "{ben_frames:?}"
    );
    for frames in [&ana_frames, &ben_frames] {
        assert!(
            !texts(frames).contains(&"after they lost access".to_owned()),
            "a record written after access ended was streamed: {frames:?}"
        );
    }
    // Ana's console stops retrying and says why; Ben is refused serving but still reads
    // platform.
    ana_console.says(SyncState::Refused, "revoked").await;
    ana_console.offline();
    match client(port_a, "serving", &ben).subscribe(0).await {
        Err(SyncError::Refused { code, .. }) => assert_eq!(code, "not_a_member"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("Ben still reads serving"),
    }
    assert!(pull(&client(port_a, "platform", &ben), 0).await.is_empty());

    // Names are shown on every console and in terminals: control characters are refused
    // with the reason, and nothing is made.
    let (ok, out, err) = user_cmd(&cfg_a, &["add", "eve\u{1b}[2J", "--team", "serving"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains("control characters") && err.contains("\\u{1b}"),
        "{err}"
    );
    let (ok, _, err) = user_cmd(&cfg_a, &["add", "eve", "--team", "ops\nroot"]);
    assert!(
        !ok && err.contains("a team's name cannot hold control characters"),
        "{err}"
    );
    let (ok, listed, _) = user_cmd(&cfg_a, &["list"]);
    assert!(
        ok && !listed.contains("eve") && !listed.contains("ops"),
        "{listed}"
    );
    let (ok, _, err) = user_cmd(&cfg_a, &["leave", "cy", "--team", "platform"]);
    assert!(
        !ok && err.contains("cy is not in a team called \"platform\""),
        "{err}"
    );
}

/// A team's name goes into the URLs of its routes as one path segment, encoded: a name
/// with a space, '#', '?', '/' or '%' reaches that team and no other, for pushes, the
/// stream and a console's sync alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_whose_name_holds_url_characters_is_reached_by_its_own_routes() {
    let rig = rig("team_odd_names").await;
    let port = free_port();
    let cfg = rig.config(port);
    let odd = "model #2 / east?x=1 100%";
    let ana = add_user(server, &cfg, "ana", &[odd]);
    let ben = add_user(server, &cfg, "ben", &["model #2 "]);
    let _server = spawn_server(server, &cfg, port).await;
    let (ok, _, err) = user_cmd(&cfg, &["join", "ben", "--team", ".."]);
    assert!(!ok && err.contains("cannot be called \"..\""), "{err}");

    let incident = Uuid::now_v7();
    let answer = client(port, odd, &ana)
        .push(vec![
            open(incident),
            note(incident, "ana", "in the odd team"),
        ])
        .await
        .unwrap();
    assert_eq!(answer.head, 2);
    assert_eq!(pull(&client(port, odd, &ana), 0).await.len(), 2);
    // Ben's team is "model #2" (trimmed): it is another team, and his token reads none of
    // the odd one's.
    match client(port, odd, &ben).subscribe(0).await {
        Err(SyncError::Refused { code, .. }) => assert_eq!(code, "not_a_member"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("ben reads a team he is not in"),
    }
    assert!(pull(&client(port, "model #2", &ben), 0).await.is_empty());

    let console = Console::linked(port, odd, &ana).await;
    let id = console.incident(&incident.to_string()).await;
    let entries = console.store.timeline(id, None, 100).await.unwrap();
    assert!(
        entries.iter().any(|e| e.body == "in the odd team"),
        "{entries:?}"
    );
}

/// A URL typed into Settings → Team that is not a team server's: a 404 says so, and a
/// redirect is not followed (the token would go wherever it points) but named, so the
/// person can put that URL in instead.
#[tokio::test]
async fn a_url_with_no_team_server_behind_it_is_explained_and_a_redirect_is_not_followed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    async fn serve(app: axum::Router) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }
    // Where the redirect points: counts the requests that reach it.
    let reached = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = reached.clone();
    let elsewhere = serve(axum::Router::new().fallback(move || {
        seen.fetch_add(1, Ordering::SeqCst);
        async { "not a team server" }
    }))
    .await;
    let moved = serve(axum::Router::new().fallback(move || async move {
        axum::response::Redirect::permanent(&format!("http://127.0.0.1:{elsewhere}/"))
    }))
    .await;
    let nothing = serve(axum::Router::new()).await;

    let refused = |r: Result<(), SyncError>| match r {
        Err(SyncError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let (code, message) = refused(client(nothing, "serving", "fbt_x").me().await.map(|_| ()));
    assert_eq!(code, "http_404");
    assert!(
        message.contains("no Firebreak team server answers at this URL"),
        "{message}"
    );
    let (_, message) = refused(
        client(nothing, "serving", "fbt_x")
            .subscribe(0)
            .await
            .map(|_| ()),
    );
    assert!(message.contains("no Firebreak team server"), "{message}");

    let c = client(moved, "serving", "fbt_x");
    let (code, message) = refused(c.push(vec![open(Uuid::now_v7())]).await.map(|_| ()));
    assert_eq!(code, "http_308");
    assert!(
        message.contains(&format!("redirects (308) to http://127.0.0.1:{elsewhere}/"))
            && message.contains("does not follow redirects"),
        "{message}"
    );
    let (_, message) = refused(c.subscribe(0).await.map(|_| ()));
    assert!(message.contains("redirects (308)"), "{message}");
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "a request followed the redirect"
    );
}

/// The team's PostgreSQL crashes (or fails over) while two consoles work an incident: the
/// server answers that the database cannot answer and changes nothing, the consoles keep
/// working and queue, each says why it is offline, and once the database is back the
/// server reconnects by itself and both converge with every note once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_team_database_crashing_and_coming_back_loses_and_repeats_nothing() {
    let mut pg = Postgres::start().await;
    let url = pg.database("team_db_crash").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), &url, port);
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let ben = add_user(server, &cfg, "ben", &["serving"]);
    let _server = spawn_server(server, &cfg, port).await;
    let a = Console::linked(port, "serving", &ana).await;
    let b = Console::linked(port, "serving", &ben).await;
    let opened = open_by_hand(
        &a.store,
        "KV cache evictions on us-east",
        Some("llm-assistant"),
        Severity::Major,
        "ana",
    )
    .await;
    let b_id = b.incident(&opened.public_id).await;

    pg.crash();
    for n in 1..=3 {
        a.store
            .add_note(
                opened.id,
                &format!("ana: note {n} while the database is down"),
                "ana",
            )
            .await
            .unwrap();
        b.store
            .add_note(
                b_id,
                &format!("ben: note {n} while the database is down"),
                "ben",
            )
            .await
            .unwrap();
    }
    for c in [&a, &b] {
        c.says(SyncState::Offline, "database").await;
        assert_eq!(c.store.team_pending_count().await.unwrap(), 3, "queued");
    }

    pg.up().await;
    let consoles = [a, b];
    let shared = converged(&consoles, async || head_of(&url).await).await;
    for who in ["ana", "ben"] {
        for n in 1..=3 {
            let text = format!("{who}: note {n} while the database is down");
            assert_eq!(
                shared.iter().filter(|l| l.ends_with(&text)).count(),
                1,
                "{text}: {shared:#?}"
            );
        }
    }
}

/// A console that flicks through incidents, or floods its socket with "viewing"
/// messages, costs the team database a notification per presence refresh, not one per
/// message, and no table is written for it; the others still see where it ended up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_viewing_messages_is_shown_as_its_last_and_costs_few_notifications() {
    let Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_viewing_flood").await;
    // Every presence notification between the server processes, heard as they are.
    let mut heard = sqlx::postgres::PgListener::connect(&rig.url).await.unwrap();
    heard
        .listen(firebreak_team_server::presence::CHANNEL)
        .await
        .unwrap();
    let notes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = notes.clone();
    let _hearing = tokio::spawn(async move {
        while heard.recv().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut watcher = client(port, "serving", &ben).subscribe(0).await.unwrap();
    let mut flood = client(port, "serving", &ana).subscribe(0).await.unwrap();
    let incidents: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    client(port, "serving", &ana)
        .push(incidents.iter().map(|i| open(*i)).collect())
        .await
        .unwrap();
    for n in 0..2_000 {
        flood
            .viewing(Some(incidents[n % incidents.len()]))
            .await
            .unwrap();
    }
    let last = incidents[1_999 % incidents.len()];
    presence_until(&mut watcher, "Ben to see where Ana ended up", |people| {
        people
            .iter()
            .any(|p| p.name == "ana" && p.incident == Some(last))
    })
    .await;
    let sent = notes.load(Ordering::SeqCst);
    assert!(
        sent < 100,
        "{sent} presence notifications for 2,000 viewing messages"
    );
    assert!(sent > 0, "the other server processes are told");
    // Nothing about who is looking is kept in the database.
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'presence'",
    )
    .fetch_one(&sqlx::PgPool::connect(&rig.url).await.unwrap())
    .await
    .unwrap();
    assert_eq!(tables, 0);
    // An incident the team does not have is never named to the team, whatever a console
    // (or a script holding a token) says it shows.
    flood.viewing(Some(Uuid::now_v7())).await.unwrap();
    presence_until(&mut watcher, "Ana shown as viewing nothing", |people| {
        people
            .iter()
            .any(|p| p.name == "ana" && p.incident.is_none())
    })
    .await;
}

/// The team's PostgreSQL is restored from last night's backup (pg_dump, pg_restore): the
/// records since are gone from the server but not from the consoles that made or read
/// them. Ben's console finds the team's stream ending before its cursor; Ana's, offline
/// during the restore, comes back to a stream that has passed her cursor again with
/// records she never read, and finds another record at her cursor. Each reads the team
/// again from the start, skipping what it has, and sends its own records again: the team
/// database is whole again, both consoles converge, and every note is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_team_database_restored_from_an_older_copy_is_made_whole_again_by_the_consoles() {
    let pg = Postgres::start().await;
    let url = pg.database("team_restore").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), &url, port);
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let ben = add_user(server, &cfg, "ben", &["serving"]);
    let running = spawn_server(server, &cfg, port).await;
    let mut consoles = [
        Console::linked(port, "serving", &ana).await,
        Console::linked(port, "serving", &ben).await,
    ];
    let opened = open_by_hand(
        &consoles[0].store,
        "Model v7 rollout stalls at wave 2",
        Some("llm-assistant"),
        Severity::Critical,
        "ana",
    )
    .await;
    let b_id = consoles[1].incident(&opened.public_id).await;
    let head = async || head_of(&url).await;
    converged(&consoles, head).await;

    // Last night's backup.
    let dump = dir.path().join("team.dump");
    let tool = |name: &str| firebreak_team_server::scratch::tool(name).unwrap();
    let out = Command::new(tool("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The morning's work, shared.
    for n in 1..=3 {
        let (a, b) = (&consoles[0], &consoles[1]);
        a.store
            .add_note(opened.id, &format!("ana: morning note {n}"), "ana")
            .await
            .unwrap();
        b.store
            .add_note(b_id, &format!("ben: morning note {n}"), "ben")
            .await
            .unwrap();
    }
    converged(&consoles, head).await;
    let ana_cursor = consoles[0].store.team_link().await.unwrap().unwrap().cursor;

    // The database is lost and restored from the backup, the server stopped meanwhile;
    // Ana's laptop is closed through it.
    consoles[0].offline();
    drop(running);
    let admin = sqlx::PgPool::connect(&url.replace("/team_restore", "/postgres"))
        .await
        .unwrap();
    for sql in [
        "DROP DATABASE team_restore WITH (FORCE)",
        "CREATE DATABASE team_restore",
    ] {
        sqlx::query(sql).execute(&admin).await.unwrap();
    }
    admin.close().await;
    let out = Command::new(tool("pg_restore"))
        .arg("--dbname")
        .arg(&url)
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _server = spawn_server(server, &cfg, port).await;

    // Ben keeps writing: the team's stream passes Ana's cursor again.
    for n in 1..=4 {
        consoles[1]
            .store
            .add_note(b_id, &format!("ben: after the restore {n}"), "ben")
            .await
            .unwrap();
    }
    support::rig::wait_for(
        Duration::from_secs(60),
        "the team's stream to pass Ana's cursor",
        async || head_of(&url).await > ana_cursor,
    )
    .await;
    consoles[0].online();
    let shared = converged(&consoles, head).await;

    let mut notes = Vec::new();
    for n in 1..=3 {
        notes.push(format!("ana: morning note {n}"));
        notes.push(format!("ben: morning note {n}"));
    }
    notes.extend((1..=4).map(|n| format!("ben: after the restore {n}")));
    for text in &notes {
        assert_eq!(
            shared.iter().filter(|l| l.ends_with(text.as_str())).count(),
            1,
            "{text}: {shared:#?}"
        );
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let on_server: Vec<String> =
        sqlx::query_scalar("SELECT body->>'text' FROM records WHERE kind = 'append' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    for text in &notes {
        assert_eq!(
            on_server.iter().filter(|t| *t == text).count(),
            1,
            "{text} on the server: {on_server:#?}"
        );
    }
    // What each console already had was skipped, not applied again or noted as failing.
    for c in &consoles {
        let id = c.incident(&opened.public_id).await;
        let timeline = c.store.timeline(id, None, 1000).await.unwrap();
        let odd: Vec<_> = timeline
            .iter()
            .filter(|e| e.body.contains("could not be applied") || e.body.contains("did not take"))
            .collect();
        assert!(odd.is_empty(), "{odd:#?}");
        for text in &notes {
            assert_eq!(
                timeline.iter().filter(|e| e.body == *text).count(),
                1,
                "{text} in a console's timeline"
            );
        }
    }
    // Each console says why it read the team again, in its audit log, which verifies.
    for (c, why) in [
        (&consoles[0], "is not the one this console read"),
        (&consoles[1], "has only"),
    ] {
        let rewound: Vec<_> = c
            .store
            .audit_records(None)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.what == "team_rewound")
            .collect();
        assert!(
            rewound.len() == 1 && rewound[0].detail.contains(why),
            "{rewound:#?}"
        );
        assert_eq!(c.store.verify_audit().await.unwrap().first_bad, None);
    }
}

/// A hostile teammate (Ben, with a valid token of the same team) against Ana's console
/// and a third console: an incident Ana never shared cannot be taken over by naming its
/// id; nothing Ben sends is shown as Ana's; a change Ben dates in 2020 is dated by the
/// server; Ben cannot move an action or a run another console drives, nor borrow a
/// console's id. Each forged record is refused by the server and absent on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_teammate_cannot_take_over_an_unshared_incident_or_forge_who_when_and_state() {
    let Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    } = pair(server, "team_hostile_teammate").await;
    let cfg = rig.config(port);
    let cy = add_user(server, &cfg, "cy", &["serving"]);

    // Ana's console holds an incident from before it was linked: never shared.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
    let private = open_by_hand(&store, "private", None, Severity::Minor, "ana").await;
    store
        .link_team(&format!("http://127.0.0.1:{port}"), "serving", None, None)
        .await
        .unwrap();
    let mut a = Console {
        store,
        sync: None,
        token: ana.clone(),
        _dir: dir,
    };
    a.online();
    let shared = open_by_hand(&a.store, "shared", None, Severity::Major, "ana").await;
    let c = Console::linked(port, "serving", &cy).await;
    c.incident(&shared.public_id).await;

    // 1. Ben learns the private incident's id and pushes an open and a note for it. The
    // server takes them as a new incident of Ben's; Ana's console merges nothing.
    let private_id: Uuid = private.public_id.parse().unwrap();
    let bens = client(port, "serving", &ben);
    bens.push(vec![
        open(private_id),
        note(private_id, "ben", "now it is mine"),
    ])
    .await
    .unwrap();
    support::rig::wait_for(
        Duration::from_secs(30),
        "ana's console to refuse it",
        async || {
            a.store
                .timeline(private.id, None, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| e.body.contains("never shared with the team"))
        },
    )
    .await;
    assert!(
        !a.store.is_shared(private.id).await.unwrap(),
        "a record from elsewhere never makes an incident shared"
    );
    let private_timeline = a.store.timeline(private.id, None, 100).await.unwrap();
    assert!(
        !private_timeline.iter().any(|e| e.body == "now it is mine"),
        "{private_timeline:#?}"
    );
    // What Ana writes on it afterwards stays hers alone.
    a.store
        .add_note(private.id, "private thoughts", "ana")
        .await
        .unwrap();
    let on_server = "SELECT count(*) FROM records WHERE body->>'text' = 'private thoughts'";
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.count(on_server).await,
        0,
        "an unshared note never leaves"
    );

    // 2. Authorship and time: a note under Ana's name is refused; a resolution dated
    // 2020 is taken, but dated by the server on every console.
    let shared_id: Uuid = shared.public_id.parse().unwrap();
    let mut backdated = command(shared_id, "status", Some("open"), Some("resolved"));
    backdated.at = "2020-01-01T00:00:00Z".parse().unwrap();
    let answer = bens
        .push(vec![note(shared_id, "ana", "I, ana, approve"), backdated])
        .await
        .unwrap();
    assert!(
        matches!(&answer.outcomes[0], Outcome::Invalid { message, .. } if message.contains("names ana")),
        "{:?}",
        answer.outcomes
    );
    assert!(matches!(answer.outcomes[1], Outcome::Accepted { .. }));
    for console in [&a, &c] {
        let id = console.incident(&shared.public_id).await;
        let mut resolved = None;
        support::rig::wait_for(Duration::from_secs(30), "the resolution", async || {
            resolved = console.store.incident(id).await.unwrap().resolved_ms;
            resolved.is_some()
        })
        .await;
        let incident = console.store.incident(id).await.unwrap();
        assert!(
            resolved.unwrap() >= incident.opened_ms,
            "resolved before it opened: {incident:?}"
        );
        let timeline = console.store.timeline(id, None, 100).await.unwrap();
        assert!(!timeline.iter().any(|e| e.body.contains("I, ana, approve")));
        let change = timeline
            .iter()
            .find(|e| {
                e.kind == firebreak_store::incident::EntryKind::StatusChanged && e.author == "ben"
            })
            .expect("ben's resolution, under ben's name");
        assert!(change.at_ms >= incident.opened_ms, "{change:?}");
        let pool =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", console.store.path().display()))
                .await
                .unwrap();
        let reported: String = sqlx::query_scalar(
            "SELECT json_extract(data, '$.team.reported_at') FROM timeline_entries WHERE id = ?",
        )
        .bind(change.id)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        assert!(
            reported.starts_with("2020-01-01"),
            "what ben's console claimed is kept beside the server's time: {reported}"
        );
        // The exported report says the same: no forged note, ben's resolution under his
        // name, and no figure running backwards.
        let report = firebreak_reports::build(&console.store, id).await.unwrap();
        let text = firebreak_reports::render(&report, firebreak_reports::Format::Markdown);
        assert!(!text.contains("I, ana, approve"), "{text}");
        assert!(
            report
                .timeline
                .iter()
                .any(|e| e.author == "ben" && e.kind.contains("status")),
            "{:#?}",
            report.timeline
        );
        for figure in &report.figures {
            assert!(figure.seconds.is_none_or(|s| s >= 0), "{figure:?}");
        }
    }

    // 3. Ownership: an action and a run driven by Ben's console cannot be moved by Cy,
    // and Cy cannot borrow Ben's console id.
    let action = |state: &str| Record {
        id: Uuid::new_v4(),
        incident: shared_id,
        at: Utc::now(),
        body: Body::Append {
            entry_kind: "action.state".into(),
            author: "firebreak".into(),
            text: state.into(),
            data: Some(serde_json::json!({
                "public_id": "act-1", "kind": "rollback", "service": "llm-assistant",
                "target": "llm", "from": "42", "to": "41", "state": state,
            })),
            event: None,
            amends: None,
        },
    };
    let run_start = Record {
        id: Uuid::new_v4(),
        incident: shared_id,
        at: Utc::now(),
        body: Body::Append {
            entry_kind: "runbook.run".into(),
            author: "ben".into(),
            text: "Bad model rollout".into(),
            data: Some(serde_json::json!({ "runbook_id": "bad-model", "state": "running" })),
            event: None,
            amends: None,
        },
    };
    let run = run_start.id;
    let answer = bens
        .push(vec![action("proposed"), run_start])
        .await
        .unwrap();
    assert!(answer
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Accepted { .. })));
    let cys = client(port, "serving", &cy);
    let mut move_run = note(shared_id, "cy", "done");
    if let Body::Append {
        entry_kind, data, ..
    } = &mut move_run.body
    {
        *entry_kind = "runbook.run".into();
        *data = Some(serde_json::json!({ "run": run, "state": "completed" }));
    }
    let answer = cys.push(vec![action("recovered"), move_run]).await.unwrap();
    for o in &answer.outcomes {
        assert!(
            matches!(o, Outcome::Invalid { message, .. } if message.contains("ben's console")),
            "{o:?}"
        );
    }
    let borrowed = TeamClient::new(TeamLink {
        url: format!("http://127.0.0.1:{port}"),
        team: "serving".into(),
        token: cy.clone(),
        console: bens.link().console,
        ca_file: None,
    })
    .unwrap();
    match borrowed
        .push(vec![note(shared_id, "cy", "as ben's console")])
        .await
    {
        Err(SyncError::Refused { code, message }) => {
            assert_eq!(code, "console_taken", "{message}");
            assert!(message.contains("another person"), "{message}");
        }
        other => panic!("a borrowed console id must be refused, got {other:?}"),
    }

    // The third console shows Ben's action as Ben's, in the state Ben's console gave it.
    let id = c.incident(&shared.public_id).await;
    support::rig::wait_for(
        Duration::from_secs(30),
        "ben's action on cy's console",
        async || !c.store.team_activity(id).await.unwrap().actions.is_empty(),
    )
    .await;
    let activity = c.store.team_activity(id).await.unwrap();
    assert_eq!(activity.actions[0].state, "proposed", "{activity:?}");
    assert_eq!(activity.actions[0].by_name, "ben");
    assert_eq!(activity.runs[0].state, "running", "{activity:?}");
}

/// A stranger who can reach the team server holds 2,000 idle connections and starts
/// pushes announcing 16 MiB with a wrong token: each push is refused on its headers, the
/// idle connections are let go, and meanwhile Ana's requests are served; one person's
/// open streams are bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stranger_holding_thousands_of_connections_cannot_take_the_team_server_down() {
    use support::servers::{answer_without_body, closed_by_server, hold_connections};
    let Pair {
        rig: _rig,
        port,
        ana,
        _server,
        ..
    } = pair(server, "team_connections").await;
    let mut idle = hold_connections(port, 2_000, None).await;
    for _ in 0..40 {
        let line = answer_without_body(
            port,
            &format!(
                "POST /v1/teams/serving/records HTTP/1.1\r\nhost: team\r\n{}: 1\r\n\
                 authorization: Bearer fbt_wrong\r\ncontent-length: 16777216\r\n\r\n",
                wire::SCHEMA_HEADER
            ),
        )
        .await;
        assert!(line.starts_with("HTTP/1.1 401"), "{line}");
    }
    let me = client(port, "serving", &ana).me().await.unwrap();
    assert_eq!(me["name"], "ana", "Ana is served meanwhile");
    // One person's streams are bounded on a server process.
    let mut open = Vec::new();
    for _ in 0..firebreak_team_server::server::MAX_STREAMS_PER_PERSON {
        open.push(client(port, "serving", &ana).subscribe(0).await.unwrap());
    }
    match client(port, "serving", &ana).subscribe(0).await {
        // 429: a console tries again later (one of the others may close).
        Err(e) => assert!(format!("{e:?}").contains("team streams open"), "{e:?}"),
        Ok(_) => panic!("a stream past the bound was opened"),
    }
    drop(open);
    support::rig::wait_for(
        Duration::from_secs(60),
        "the server to let go of every idle connection",
        async || closed_by_server(&mut idle).await == idle.len(),
    )
    .await;
}
