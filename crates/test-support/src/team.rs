//! The team server with a real PostgreSQL, and consoles syncing through it: what the team
//! server's own suite and the console's end-to-end suite share. Each suite says how it runs
//! the server (`firebreak-team-server`, or the console's `firebreak team-server`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use firebreak_engine::team::client::{TeamClient, TeamLink};
use firebreak_engine::team::sync::{SyncState, TeamSync};
use firebreak_protocol::team::{Body, Frame, Record, Shared};
use firebreak_store::incident::{NewIncident, Severity};
use firebreak_store::Store;
use uuid::Uuid;

use crate::postgres::Postgres;
use crate::servers::{free_port, KillOnDrop};

/// How a suite runs the team server: a command that takes the server's arguments next.
pub type Program = fn() -> Command;

/// A configuration for a server on `port` whose database URL is in `dir/db-url`.
pub fn config(dir: &Path, url: &str, port: u16) -> std::path::PathBuf {
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
pub fn add_user(server: Program, config: &Path, name: &str, teams: &[&str]) -> String {
    let mut c = server();
    c.arg("--config").arg(config).args(["user", "add", name]);
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

pub async fn spawn_server(server: Program, config: &Path, port: u16) -> KillOnDrop {
    let child = server()
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::rig::wait_for(
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

pub fn client(port: u16, team: &str, token: &str) -> TeamClient {
    TeamClient::new(TeamLink {
        url: format!("http://127.0.0.1:{port}"),
        team: team.into(),
        token: token.into(),
        console: Uuid::new_v4(),
        ca_file: None,
    })
    .unwrap()
}

pub fn open(incident: Uuid) -> Record {
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

pub fn note(incident: Uuid, author: &str, text: &str) -> Record {
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

pub fn command(incident: Uuid, field: &str, expect: Option<&str>, value: Option<&str>) -> Record {
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
pub async fn pull(c: &TeamClient, after: u64) -> Vec<Shared> {
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

pub struct Rig {
    pub _pg: Postgres,
    pub dir: tempfile::TempDir,
    pub url: String,
}

pub async fn rig(name: &str) -> Rig {
    let pg = Postgres::start().await;
    let url = pg.database(name).await;
    Rig {
        _pg: pg,
        dir: tempfile::tempdir().unwrap(),
        url,
    }
}

impl Rig {
    pub fn config(&self, port: u16) -> std::path::PathBuf {
        config(self.dir.path(), &self.url, port)
    }
    pub async fn count(&self, sql: &'static str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
        let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }
}

/// Ana and Ben in team serving, on one server process of this build.
pub struct Pair {
    pub rig: Rig,
    pub port: u16,
    pub ana: String,
    pub ben: String,
    pub _server: KillOnDrop,
}

pub async fn pair(server: Program, database: &str) -> Pair {
    let rig = rig(database).await;
    let port = free_port();
    let cfg = rig.config(port);
    let ana = add_user(server, &cfg, "ana", &["serving"]);
    let ben = add_user(server, &cfg, "ben", &["serving"]);
    let _server = spawn_server(server, &cfg, port).await;
    Pair {
        rig,
        port,
        ana,
        ben,
        _server,
    }
}

pub struct Console {
    pub store: Store,
    pub sync: Option<TeamSync>,
    pub token: String,
    pub _dir: tempfile::TempDir,
}

impl Console {
    pub async fn linked(port: u16, team: &str, token: &str) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("firebreak.db")).await.unwrap();
        store
            .link_team(&format!("http://127.0.0.1:{port}"), team, None, None)
            .await
            .unwrap();
        let mut c = Console {
            store,
            sync: None,
            token: token.into(),
            _dir: dir,
        };
        c.online();
        c
    }
    pub fn online(&mut self) {
        self.sync = Some(TeamSync::start(
            self.store.clone(),
            self.token.clone(),
            std::sync::Arc::new(|_| {}),
        ));
    }
    pub fn offline(&mut self) {
        self.sync = None;
    }
    /// The local id of the incident with this public id, once it has arrived.
    pub async fn incident(&self, public: &str) -> i64 {
        let mut found = None;
        crate::rig::wait_for(
            Duration::from_secs(30),
            "the incident to arrive",
            async || {
                found = self
                    .store
                    .incidents()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|i| i.public_id == public)
                    .map(|i| i.id);
                found.is_some()
            },
        )
        .await;
        found.unwrap()
    }
    /// Everything shared, as this console has it: each shared incident's fields and its
    /// shared timeline entries (refused ones left out), in a form that compares.
    pub async fn shared(&self) -> Vec<String> {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", self.store.path().display()))
            .await
            .unwrap();
        let mut rows: Vec<String> = sqlx::query_scalar(
            "SELECT 'incident ' || i.public_id || ' ' || i.title || ' ' || i.severity || ' ' || i.status || ' ' || \
             coalesce(i.commander, '-') FROM incidents i JOIN team_incidents s ON s.incident_id = i.id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let entries: Vec<String> = sqlx::query_scalar(
            "SELECT i.public_id || ' ' || te.record || ' ' || t.kind || ' ' || t.author || ': ' || t.body \
             FROM timeline_entries t JOIN team_entries te ON te.entry_id = t.id \
             JOIN incidents i ON i.id = t.incident_id LEFT JOIN team_outbox o ON o.id = te.record \
             WHERE o.outcome IS NULL OR o.outcome IN ('accepted', 'duplicate')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.extend(entries);
        rows.sort();
        rows
    }
    /// Waits (30 s at most) until the sync's state is `state` with a reason that says `why`.
    pub async fn says(&self, state: SyncState, why: &str) {
        crate::rig::wait_for(
            Duration::from_secs(30),
            &format!("the console to be {state:?} because of {why:?}"),
            async || {
                let s = self.sync.as_ref().unwrap().status();
                s.state == state && s.reason.as_deref().is_some_and(|r| r.contains(why))
            },
        )
        .await;
    }
    pub async fn settled(&self) -> bool {
        let s = self.sync.as_ref().unwrap().status();
        s.state == SyncState::Synced && self.store.team_pending_count().await.unwrap() == 0
    }
}

/// Opens an incident by hand on `store` (no cluster).
pub async fn open_by_hand(
    store: &Store,
    title: &str,
    service: Option<&str>,
    severity: Severity,
    author: &str,
) -> firebreak_store::incident::Incident {
    let new = NewIncident {
        cluster_id: None,
        title: title.into(),
        service: service.map(Into::into),
        severity,
    };
    store.open_incident(&new, author).await.unwrap()
}

/// Waits until every console has pushed everything and read the stream to its end, then
/// checks they all hold the same shared record; returns it.
pub async fn converged(consoles: &[Console], head: impl AsyncFn() -> u64) -> Vec<String> {
    crate::rig::wait_for(
        Duration::from_secs(60),
        "every console to sync",
        async || {
            let head = head().await;
            for c in consoles {
                if !c.settled().await || c.store.team_link().await.unwrap().unwrap().cursor != head
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let first = consoles[0].shared().await;
    for (n, c) in consoles.iter().enumerate().skip(1) {
        assert_eq!(
            c.shared().await,
            first,
            "console {n} differs from console 0"
        );
    }
    first
}

pub async fn head_of(url: &str) -> u64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let next: i64 = sqlx::query_scalar("SELECT coalesce(max(next_seq), 1) FROM teams")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    next as u64 - 1
}
