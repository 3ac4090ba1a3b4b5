//! `firebreak team-server`: the HTTP and WebSocket side of the team sync contract
//! (TEAM.md), over the PostgreSQL store in `db.rs`. A process keeps nothing of its own
//! beyond connections: run as many as the load needs behind one database.
//!
//! Routes: `GET /v1/me`, `POST /v1/teams/{team}/records`, `GET /v1/teams/{team}/sync`
//! (WebSocket). Every request carries the console's schema version
//! ([`wire::SCHEMA_HEADER`]) and a person's bearer token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::config::Config;
use super::db::{Person, Pushed, TeamDb, ACCESS_CHANNEL, CHANNEL};
use super::presence::{self, Board};
use super::wire::{self, Frame, Inbound, PushResponse, TeamError};
use firebreak_server::listen::Counted;

/// Every route, as (method, path): checked against the OpenAPI document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/me"),
    ("post", "/v1/teams/{team}/records"),
    ("get", "/v1/teams/{team}/sync"),
];

pub use wire::HEARTBEAT;
/// How often a stream compares the team's presence (in memory) with what it sent.
const PRESENCE_EVERY: Duration = Duration::from_secs(3);
/// A console's change of incident reaches the others within this; a console sending
/// many costs one check and one notification per this.
const VIEWING_SHOWN_WITHIN: Duration = Duration::from_millis(200);
/// Streams read the database and check their person's access this often even without a
/// notification: a belt to the braces of [`Wake::Resync`], which every stream gets when
/// the notification connection is made again (notifications are lost only while it is
/// down).
const POLL_EVERY: Duration = Duration::from_secs(30);
const PAGE: i64 = 1000;

struct Shared {
    db: TeamDb,
    /// Open streams per person (their id), in this process: bounded, so one token cannot
    /// hold the server's sockets and database connections.
    streams: Counted<i64>,
    /// Who is connected to each team, through any process.
    board: Arc<Board>,
    /// What changed, from every server process (PostgreSQL notifications), in the order
    /// the changes committed.
    wake: broadcast::Sender<Wake>,
}

#[derive(Debug, Clone, Copy)]
enum Wake {
    /// This team (its id) has new records.
    Records(i64),
    /// This person's (id) access changed: their streams check it before sending more.
    Access(i64),
    /// Who is connected to this team, or what they show, changed.
    Presence(i64),
    /// Notifications may have been missed (the connection that hears them was made
    /// again): every stream reads and checks access.
    Resync,
}

pub struct RunningTeamServer {
    pub addr: SocketAddr,
    pub tls: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningTeamServer {
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
    pub fn shutdown(self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl Drop for RunningTeamServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// Connects to the database (bringing its schema up to date), binds and serves.
pub async fn start(config: &Config) -> Result<RunningTeamServer> {
    let url = super::config::database_url(config)?;
    start_with_url(config, &url).await
}

/// [`start`] with the database URL given (benchmarks and tests).
pub async fn start_with_url(config: &Config, url: &str) -> Result<RunningTeamServer> {
    let url = url.to_owned();
    let db = TeamDb::connect(&url, config.max_connections).await?;
    let acceptor = match &config.tls {
        Some(tls) => Some(firebreak_server::tls::acceptor(tls)?),
        None => None,
    };
    let (wake, _) = broadcast::channel(1024);
    let board = Arc::new(Board::new(db.pool().clone()));
    let mut tasks = vec![
        tokio::spawn(listen(url, wake.clone(), board.clone())),
        tokio::spawn(refresh_presence(board.clone(), wake.clone())),
    ];
    let shared = Arc::new(Shared {
        db,
        streams: Counted::new(MAX_STREAMS_PER_PERSON),
        board,
        wake,
    });
    let app = Router::new()
        .route("/v1/me", get(me))
        .route("/v1/teams/{team}/records", post(push))
        .route("/v1/teams/{team}/sync", get(sync))
        .layer(axum::middleware::from_fn(schema_gate))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let tls = acceptor.is_some();
    tasks.push(tokio::spawn(firebreak_server::listen::serve(
        listener,
        acceptor,
        app,
        firebreak_server::listen::Limits::default(),
    )));
    tracing::info!(%addr, tls, "team server listening");
    Ok(RunningTeamServer { addr, tls, tasks })
}

/// Listens for PostgreSQL's notifications of new records, of access changes and of
/// presence, and wakes this process's streams; reconnects when the connection drops
/// (and then has every stream read and check access, for what it may have missed).
async fn listen(url: String, wake: broadcast::Sender<Wake>, board: Arc<Board>) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(e) = listener
                    .listen_all([CHANNEL, ACCESS_CHANNEL, presence::CHANNEL])
                    .await
                {
                    tracing::warn!(error = %e, "cannot listen for new team records");
                } else {
                    let _ = wake.send(Wake::Resync);
                    loop {
                        match listener.recv().await {
                            Ok(n) if n.channel() == presence::CHANNEL => {
                                if let Some(team) = board.apply(n.payload()) {
                                    let _ = wake.send(Wake::Presence(team));
                                }
                            }
                            Ok(n) => {
                                if let Ok(id) = n.payload().parse() {
                                    let _ = wake.send(if n.channel() == ACCESS_CHANNEL {
                                        Wake::Access(id)
                                    } else {
                                        Wake::Records(id)
                                    });
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "the notification connection dropped");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to listen for new team records"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Says every [`presence::REFRESH`] who is connected through this process, and wakes the
/// streams of teams whose board may have changed (another process's consoles forgotten).
async fn refresh_presence(board: Arc<Board>, wake: broadcast::Sender<Wake>) {
    let mut every = tokio::time::interval(presence::REFRESH);
    loop {
        every.tick().await;
        for team in board.refresh().await {
            let _ = wake.send(Wake::Presence(team));
        }
    }
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut r = (
        status,
        Json(TeamError {
            error: code.into(),
            message: message.into(),
        }),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"firebreak-team\""),
        );
    }
    r
}

fn internal(e: anyhow::Error) -> Response {
    tracing::error!(error = format!("{e:#}"), "team request failed");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "the team database cannot answer now; nothing was changed: try again",
    )
}

/// A console older than the contract the server speaks is refused before anything else.
async fn schema_gate(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let sent = request
        .headers()
        .get(wire::SCHEMA_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    match sent {
        Some(v) if v >= wire::OLDEST_CONSOLE_SCHEMA => next.run(request).await,
        Some(v) => refuse(
            StatusCode::UPGRADE_REQUIRED,
            "schema_too_old",
            format!(
                "this console speaks team schema {v}; this server needs {} or newer: update Firebreak on this machine",
                wire::OLDEST_CONSOLE_SCHEMA
            ),
        ),
        None => refuse(
            StatusCode::UPGRADE_REQUIRED,
            "schema_too_old",
            format!(
                "no {} header: this is not a Firebreak console of team schema {} or newer",
                wire::SCHEMA_HEADER,
                wire::OLDEST_CONSOLE_SCHEMA
            ),
        ),
    }
}

async fn person(shared: &Shared, headers: &HeaderMap) -> Result<Person, Response> {
    let Some(token) = firebreak_server::bearer(headers) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a person's bearer token is needed (team-server user add)",
        ));
    };
    match shared.db.person(token).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this token is unknown or was revoked",
        )),
        Err(e) => Err(internal(e)),
    }
}

async fn member(
    shared: &Shared,
    headers: &HeaderMap,
    team: &str,
) -> Result<(Person, i64), Response> {
    let person = person(shared, headers).await?;
    match shared.db.membership(&person, team).await {
        Ok(Some(id)) => Ok((person, id)),
        Ok(None) => Err(refuse(
            StatusCode::FORBIDDEN,
            "not_a_member",
            format!("{} is not in a team called {team:?}", person.name),
        )),
        Err(e) => Err(internal(e)),
    }
}

async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let person = match person(&shared, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let teams: Result<Vec<String>, _> = sqlx::query_scalar(
        "SELECT t.name FROM teams t JOIN memberships m ON m.team_id = t.id \
         WHERE m.person_id = $1 ORDER BY t.name",
    )
    .bind(person.id)
    .fetch_all(shared.db.pool())
    .await;
    match teams {
        Ok(teams) => Json(serde_json::json!({
            "name": person.name,
            "teams": teams,
            "schema": wire::SCHEMA,
        }))
        .into_response(),
        Err(e) => internal(e.into()),
    }
}

async fn push(
    State(shared): State<Arc<Shared>>,
    Path(team): Path<String>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    // The token and the membership first: nothing of the body is read for a stranger.
    let (person, team_id) = match member(&shared, &headers, &team).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let body = match tokio::time::timeout(
        firebreak_server::listen::BODY_READ,
        axum::body::to_bytes(request.into_body(), wire::MAX_PUSH_BYTES),
    )
    .await
    {
        Ok(Ok(b)) => b,
        _ => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "push_too_large",
                format!(
                    "a push is at most {} bytes, sent within 30 s",
                    wire::MAX_PUSH_BYTES
                ),
            )
        }
    };
    // The envelope must parse; each record is read on its own, so one the server cannot
    // read is answered `invalid` (and kept) while the records beside it still count.
    let request: PushEnvelope = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_push",
                format!("the push does not parse: {e}"),
            )
        }
    };
    if request.records.len() > wire::MAX_PUSH_RECORDS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_push",
            format!(
                "{} records in one push; at most {}",
                request.records.len(),
                wire::MAX_PUSH_RECORDS
            ),
        );
    }
    let pushed: Vec<Pushed> = request
        .records
        .iter()
        .enumerate()
        .map(|(n, raw)| {
            let parsed = match serde_json::from_str::<wire::Record>(raw.get()) {
                Ok(record) if record.body != wire::Body::Unknown => {
                    return Pushed::Record(record)
                }
                other => other,
            };
            let sketch = serde_json::from_str::<Sketch>(raw.get()).ok();
            let message = match parsed {
                Ok(_) => format!(
                    "record {} of the push is of a kind this server does not know ({:?}; it knows open, append and command)",
                    n + 1,
                    sketch.as_ref().and_then(|r| r.kind.clone()).unwrap_or_default()
                ),
                Err(e) => format!("record {} of the push does not parse: {e}", n + 1),
            };
            Pushed::Unreadable {
                id: sketch.and_then(|r| r.id),
                raw: raw.get().to_owned(),
                message,
            }
        })
        .collect();
    match shared.db.claim_console(request.console, &person).await {
        Ok(true) => {}
        Ok(false) => return console_taken(&request.console),
        Err(e) => return internal(e),
    }
    match shared
        .db
        .push(team_id, &person.name, request.console, &pushed)
        .await
    {
        Ok((outcomes, head)) => Json(PushResponse { outcomes, head }).into_response(),
        Err(e) => internal(e),
    }
}

/// A console id another person's token already used: refused, since records and
/// ownership of actions are bound to it.
fn console_taken(console: &Uuid) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "console_taken",
        format!("console {console} belongs to another person on this server"),
    )
}

/// A push as the server reads it: [`wire::PushRequest`] with each record left unparsed.
#[derive(Deserialize)]
struct PushEnvelope {
    console: Uuid,
    records: Vec<Box<serde_json::value::RawValue>>,
}

/// What can be read of a record that does not parse otherwise.
#[derive(Deserialize)]
struct Sketch {
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    after: u64,
    console: Uuid,
}

async fn sync(
    State(shared): State<Arc<Shared>>,
    Path(team): Path<String>,
    Query(query): Query<SyncQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let (person, team_id) = match member(&shared, &headers, &team).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match shared.db.claim_console(query.console, &person).await {
        Ok(true) => {}
        Ok(false) => return console_taken(&query.console),
        Err(e) => return internal(e),
    }
    let Some(slot) = shared.streams.take(person.id) else {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "{} has {MAX_STREAMS_PER_PERSON} team streams open on this server already; close a console first",
                person.name
            ),
        );
    };
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            if let Err(e) = stream(shared, socket, team, team_id, person, query).await {
                tracing::debug!(error = format!("{e:#}"), "team stream ended");
            }
        })
}

/// At most this many open streams per person on one server process (a person has a few
/// consoles; a script reconnecting in a loop must not take every socket).
pub const MAX_STREAMS_PER_PERSON: usize = 8;

async fn send(socket: &mut WebSocket, frame: &Frame) -> Result<()> {
    let text = serde_json::to_string(frame)?;
    socket.send(Message::Text(text.into())).await?;
    Ok(())
}

async fn stream(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    team: String,
    team_id: i64,
    person: Person,
    query: SyncQuery,
) -> Result<()> {
    let mut wake = shared.wake.subscribe();
    let head = shared.db.head(team_id).await?;
    if query.after > head {
        send(
            &mut socket,
            &Frame::Error {
                code: "cursor_ahead".into(),
                message: format!(
                    "this console has read up to record {} but team {team} has only {head}: \
                     the team database was replaced or restored from an older backup",
                    query.after
                ),
            },
        )
        .await?;
        return Ok(());
    }
    let at_cursor = match query.after {
        0 => None,
        after => shared.db.record_id_at(team_id, after).await?,
    };
    send(
        &mut socket,
        &Frame::Hello {
            team: team.clone(),
            you: person.name.clone(),
            head,
            at_cursor,
        },
    )
    .await?;
    let console = query.console;
    let mut viewing: Option<Uuid> = None;
    shared.board.arrive(team_id, console, &person.name).await;
    let _ = shared.wake.send(Wake::Presence(team_id));
    let result = follow(
        &shared,
        &mut socket,
        &mut wake,
        team_id,
        &person,
        console,
        &mut viewing,
        query.after,
    )
    .await;
    shared.board.leave(team_id, console).await;
    let _ = shared.wake.send(Wake::Presence(team_id));
    result
}

#[allow(clippy::too_many_arguments)]
async fn follow(
    shared: &Shared,
    socket: &mut WebSocket,
    wake: &mut broadcast::Receiver<Wake>,
    team_id: i64,
    person: &Person,
    console: Uuid,
    viewing: &mut Option<Uuid>,
    mut last: u64,
) -> Result<()> {
    let mut caught_up = false;
    let mut presence_sent: Option<Vec<wire::Presence>> = None;
    // What the console last said it shows, taken at the next presence refresh; one that
    // is not the team's is asked about again only once new records have come.
    let mut asked: Option<Uuid> = None;
    let mut refused: Option<Uuid> = None;
    let mut records_since = false;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut presence = tokio::time::interval(PRESENCE_EVERY);
    let mut poll = tokio::time::interval(POLL_EVERY);
    let mut pending = true;
    // Access is checked when it changes (a revoked token, a team left: announced by
    // whichever process made the change), before every read that does not follow a
    // notification (one may have been missed), and at every presence refresh; a stream
    // whose person may no longer read the team ends with the reason.
    let mut check_access = false;
    let mut refresh_soon = false;
    loop {
        if check_access {
            check_access = false;
            if !allowed(shared, socket, person, team_id).await? {
                return Ok(());
            }
        }
        if pending {
            pending = false;
            loop {
                let page = shared.db.after(team_id, last, PAGE).await?;
                let full = page.len() as i64 == PAGE;
                for record in page {
                    last = record.seq;
                    send(socket, &Frame::Record(Box::new(record))).await?;
                }
                if !full {
                    break;
                }
            }
            if !caught_up {
                caught_up = true;
                send(socket, &Frame::CaughtUp { seq: last }).await?;
            }
            heartbeat.reset();
        }
        tokio::select! {
            woke = wake.recv() => match woke {
                Ok(Wake::Records(team)) => {
                    pending |= team == team_id;
                    records_since |= team == team_id;
                }
                Ok(Wake::Access(id)) => check_access |= id == person.id,
                Ok(Wake::Presence(team)) => {
                    if team == team_id && !refresh_soon {
                        refresh_soon = true;
                        presence.reset_after(VIEWING_SHOWN_WITHIN);
                    }
                }
                Ok(Wake::Resync) => {
                    pending = true;
                    check_access = true;
                }
                // Missed wake-ups: check and read anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    pending = true;
                    check_access = true;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = poll.tick() => {
                pending = true;
                check_access = true;
            }
            _ = heartbeat.tick() => send(socket, &Frame::Heartbeat { seq: last }).await?,
            _ = presence.tick() => {
                refresh_soon = false;
                if asked != *viewing && (asked != refused || records_since) {
                    records_since = false;
                    // Only an incident opened on the team is named to the team, whatever
                    // a console (or a script holding a token) says it shows.
                    let shown = match asked {
                        Some(incident) if shared.db.is_team_incident(team_id, incident).await? => asked,
                        _ => None,
                    };
                    refused = if shown.is_none() { asked } else { None };
                    if shown != *viewing {
                        *viewing = shown;
                        shared.board.view(team_id, console, shown).await;
                        let _ = shared.wake.send(Wake::Presence(team_id));
                    }
                }
                let now = shared.board.people(team_id);
                let changed = presence_sent.as_ref().is_none_or(|sent| !same_people(sent, &now));
                if changed {
                    send(socket, &Frame::Presence { people: now.clone() }).await?;
                    presence_sent = Some(now);
                }
            }
            inbound = socket.next() => match inbound {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<Inbound>(&text) {
                    Ok(Inbound::Viewing { incident }) => {
                        // Shown to the others at a presence refresh a moment from now: a
                        // console flicking through incidents (or flooding the socket)
                        // costs the database one read and one notification a refresh,
                        // not one a message.
                        asked = incident;
                        if !refresh_soon {
                            refresh_soon = true;
                            presence.reset_after(VIEWING_SHOWN_WITHIN);
                        }
                    }
                    Err(e) => {
                        send(socket, &Frame::Error {
                            code: "invalid_message".into(),
                            message: format!("the message does not parse: {e}"),
                        }).await?;
                    }
                },
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            },
        }
    }
}

/// Whether `person` may still read the team; if not, tells the console why (the
/// stream then ends).
async fn allowed(
    shared: &Shared,
    socket: &mut WebSocket,
    person: &Person,
    team_id: i64,
) -> Result<bool> {
    match shared.db.still_allowed(person, team_id).await? {
        None => Ok(true),
        Some((code, message)) => {
            send(
                socket,
                &Frame::Error {
                    code: code.into(),
                    message,
                },
            )
            .await?;
            Ok(false)
        }
    }
}

/// Presence lists differ only in who shows what (the times move on every refresh).
fn same_people(a: &[wire::Presence], b: &[wire::Presence]) -> bool {
    let key = |p: &[wire::Presence]| -> HashMap<Uuid, (String, Option<Uuid>)> {
        p.iter()
            .map(|p| (p.console, (p.name.clone(), p.incident)))
            .collect()
    };
    key(a) == key(b)
}
