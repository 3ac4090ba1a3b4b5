//! The team server against a real PostgreSQL (tests/support/postgres.rs): the sync
//! contract as TEAM.md states it, with server processes of this build (`firebreak
//! team-server`), two of them behind one database, killed with SIGKILL mid-push.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use firebreak::team::client::{SyncError, TeamClient, TeamLink};
use firebreak::team::wire::{self, Body, Frame, Outcome, Record, Shared};
use support::postgres::Postgres;
use support::servers::{free_port, KillOnDrop};
use uuid::Uuid;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
}

/// A configuration for a server on `port` whose database URL is in `dir/db-url`.
fn config(dir: &Path, url: &str, port: u16) -> std::path::PathBuf {
    std::fs::write(dir.join("db-url"), url).unwrap();
    let path = dir.join(format!("team-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = {{ file = \"{}\" }}\n",
            dir.join("db-url").display()
        ),
    )
    .unwrap();
    path
}

/// `firebreak team-server user add NAME --team T…`: the token it prints once.
fn add_user(config: &Path, name: &str, teams: &[&str]) -> String {
    let mut c = bin();
    c.args(["team-server", "--config"])
        .arg(config)
        .args(["user", "add", name]);
    for t in teams {
        c.args(["--team", t]);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("fbt_") && token.len() == 68, "{token:?}");
    token
}

async fn spawn_server(config: &Path, port: u16) -> KillOnDrop {
    let child = bin()
        .args(["team-server", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::rig::wait_for(
        Duration::from_secs(30),
        "the team server to listen",
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    KillOnDrop(child)
}

fn client(port: u16, team: &str, token: &str) -> TeamClient {
    TeamClient::new(TeamLink {
        url: format!("http://127.0.0.1:{port}"),
        team: team.into(),
        token: token.into(),
        console: Uuid::new_v4(),
        ca_file: None,
    })
    .unwrap()
}

fn open(incident: Uuid) -> Record {
    Record {
        id: Uuid::new_v4(),
        incident,
        at: Utc::now(),
        body: Body::Open {
            title: "p99 over SLO on llm-assistant".into(),
            severity: "major".into(),
            service: Some("llm-assistant".into()),
            cluster: Some("prod-east".into()),
            entry: "Opened by hand as major".into(),
        },
    }
}

fn note(incident: Uuid, author: &str, text: &str) -> Record {
    Record {
        id: Uuid::new_v4(),
        incident,
        at: Utc::now(),
        body: Body::Append {
            entry_kind: "note".into(),
            author: author.into(),
            text: text.into(),
            data: None,
            event: None,
            amends: None,
        },
    }
}

fn command(incident: Uuid, field: &str, expect: Option<&str>, value: Option<&str>) -> Record {
    Record {
        id: Uuid::new_v4(),
        incident,
        at: Utc::now(),
        body: Body::Command {
            field: field.into(),
            expect: expect.map(str::to_owned),
            value: value.map(str::to_owned),
            entry: format!("{field} → {value:?}"),
        },
    }
}

/// Every record of the team's stream, read over the sync socket up to `caught_up`.
async fn pull(c: &TeamClient, after: u64) -> Vec<Shared> {
    let mut sub = c.subscribe(after).await.unwrap();
    let mut out = Vec::new();
    loop {
        match sub.next().await.unwrap().unwrap() {
            Frame::Record(r) => out.push(*r),
            Frame::CaughtUp { .. } => return out,
            _ => {}
        }
    }
}

struct Rig {
    _pg: Postgres,
    dir: tempfile::TempDir,
    url: String,
}

async fn rig(name: &str) -> Rig {
    let pg = Postgres::start().await;
    let url = pg.database(name).await;
    Rig {
        _pg: pg,
        dir: tempfile::tempdir().unwrap(),
        url,
    }
}

impl Rig {
    fn config(&self, port: u16) -> std::path::PathBuf {
        config(self.dir.path(), &self.url, port)
    }
    async fn count(&self, sql: &'static str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
        let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_consoles_on_two_servers_get_one_gap_free_stream() {
    let rig = rig("team_two_servers").await;
    let (pa, pb) = (free_port(), free_port());
    let (ca, cb) = (rig.config(pa), rig.config(pb));
    let token = add_user(&ca, "ana", &["serving"]);
    let _a = spawn_server(&ca, pa).await;
    let _b = spawn_server(&cb, pb).await;

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
    let rig = rig("team_command").await;
    let port = free_port();
    let cfg = rig.config(port);
    let ana = add_user(&cfg, "ana", &["serving"]);
    let ben = add_user(&cfg, "ben", &["serving"]);
    let _server = spawn_server(&cfg, port).await;

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
    let ana = add_user(&cfg, "ana", &["serving"]);
    let ben = add_user(&cfg, "ben", &["platform"]);
    let _server = spawn_server(&cfg, port).await;
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

    let out = bin()
        .args(["team-server", "--config"])
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
    let ana2 = add_user(&cfg, "ana", &["serving"]);
    client(port, "serving", &ana2)
        .push(vec![note(incident, "ana", "back")])
        .await
        .unwrap();
    refused(revoked.me().await.map(|_| ()), "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_console_is_refused_with_a_message_that_says_what_to_do() {
    let rig = rig("team_schema").await;
    let port = free_port();
    let cfg = rig.config(port);
    let ana = add_user(&cfg, "ana", &["serving"]);
    let _server = spawn_server(&cfg, port).await;
    firebreak::process::install_tls_provider();
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
    let token = add_user(&ca, "ana", &["serving"]);
    let mut a = spawn_server(&ca, pa).await;
    let _b = spawn_server(&cb, pb).await;
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
    let ana = add_user(&cfg, "ana", &["serving"]);
    let ben = add_user(&cfg, "ben", &["serving", "platform"]);
    let _server = spawn_server(&cfg, port).await;
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let frame = tokio::time::timeout_at(deadline, a.next())
            .await
            .expect("a presence frame with both people")
            .unwrap()
            .unwrap();
        if let Frame::Presence { people } = frame {
            let ben_sees = people.iter().find(|p| p.name == "ben").map(|p| p.incident);
            if people.iter().any(|p| p.name == "ana") && ben_sees == Some(Some(incident)) {
                break;
            }
        }
    }
    // Ben's platform team shows nothing of serving's.
    assert!(pull(&client(port, "platform", &ben), 0).await.is_empty());
}
