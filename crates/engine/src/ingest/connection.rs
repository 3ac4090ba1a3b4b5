//! One cluster's event stream: connect, resume after the last sequence handed to the
//! writer, read, decode, keep order, and reconnect with backoff when the link fails.
//!
//! States: connecting → live or catching up → (link lost) reconnecting → connecting …;
//! a refused token ends in failed, with no retry until the cluster is changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::backoff::Backoff;
use super::sink::{ClusterStatus, ConsoleSink, StreamState};
use firebreak_protocol::events::{decode, sequence_of, Control, EventType, Frame};
use firebreak_protocol::{HEARTBEAT_INTERVAL_MS, MAX_FRAME_BYTES};
use firebreak_store::ingest::{Incoming, Item};
use firebreak_store::now_ms;

/// The hard limit: frames up to this size are read (and, over the protocol's 256 KiB,
/// quarantined with their sequence); anything larger kills the connection in the library.
pub const LIBRARY_MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Sessions that fail at the same position because of the frame there (over the hard
/// limit, refused, never arriving while later ones do) before the console skips it,
/// recording a gap that names the sequence and why.
pub const SKIP_AFTER_TRIES: u32 = 3;
/// Silence longer than this (three heartbeats) means the link is dead.
pub const SILENCE_LIMIT: Duration = Duration::from_millis(3 * HEARTBEAT_INTERVAL_MS);
/// Events handed to the writer at once.
const HANDOFF: usize = 512;
/// How long a partial hand-off waits for more frames.
const HANDOFF_WAIT: Duration = Duration::from_millis(5);
/// Out-of-order events held while waiting for the missing one; past this, reconnect
/// and let the server replay from the last sequence in order.
const REORDER_LIMIT: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a stream resumes: the last sequence handed on, in the stream it belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cursor {
    pub sequence: u64,
    /// The identity the server named in its hello; None before any (or an old server).
    pub stream_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub cluster_id: i64,
    pub name: String,
    pub events_url: String,
    pub token: Option<String>,
    /// A CA certificate file trusted besides the OS store (see `trust`).
    pub ca_file: Option<std::path::PathBuf>,
}

enum End {
    /// Try again after a backoff.
    Retry(String),
    /// The frame after the cursor cannot be had: retry, and after a few tries skip it.
    Stuck(String),
    /// The server's stream started over: resume from its start at once.
    Restarted,
    /// Do not retry until something changes.
    Fatal(String),
    /// The engine is stopping.
    Stopped,
}

struct Session<'a> {
    target: &'a Target,
    writer: &'a mpsc::Sender<Item>,
    sink: &'a Arc<dyn ConsoleSink>,
    /// The last sequence handed to the writer: the stream resumes after it.
    cursor: &'a mut u64,
    stream_id: &'a mut Option<String>,
    /// The cursor the writer was last told (it may lag `cursor` by what is pending).
    handed: u64,
    /// The sequence of the last frame quarantined with a readable sequence, so a replay
    /// of the same bad frame is not quarantined again.
    refused: &'a mut Option<(u64, String)>,
    pending: Vec<Incoming>,
    held: BTreeMap<u64, Incoming>,
    head: u64,
    reported: Option<StreamState>,
    since_ms: i64,
}

pub async fn run(
    target: Target,
    start: Cursor,
    writer: mpsc::Sender<Item>,
    sink: Arc<dyn ConsoleSink>,
    backoff: Backoff,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    let mut jitter = super::jitter_source(target.cluster_id);
    let Cursor {
        sequence: mut cursor,
        mut stream_id,
    } = start;
    let mut refused: Option<(u64, String)> = None;
    // (position, tries) of frame-caused failures at one cursor.
    let mut stuck: (u64, u32) = (cursor, 0);
    loop {
        report(&sink, &target, StreamState::Connecting, now_ms());
        let before = cursor;
        let end = tokio::select! {
            end = session(&target, &mut cursor, &mut stream_id, &mut refused, &writer, &sink) => end,
            _ = stop.changed() => End::Stopped,
        };
        let reason = match end {
            End::Stopped => return,
            End::Fatal(reason) => {
                tracing::warn!(cluster = %target.name, %reason, "stream failed; not retrying");
                report(&sink, &target, StreamState::Failed { reason }, now_ms());
                return;
            }
            End::Restarted => {
                attempt = 0;
                stuck = (cursor, 0);
                continue;
            }
            End::Retry(reason) => reason,
            End::Stuck(reason) => {
                stuck = if stuck.0 == cursor && cursor == before {
                    (cursor, stuck.1.saturating_add(1))
                } else {
                    (cursor, 1)
                };
                if stuck.1 >= SKIP_AFTER_TRIES {
                    let Some(skipped) = cursor.checked_add(1) else {
                        return;
                    };
                    let why = format!(
                        "sequence {skipped} skipped after {} tries: {reason}",
                        stuck.1
                    );
                    tracing::warn!(cluster = %target.name, %why, "skipping a frame the stream is stuck on");
                    let gap = Item::Gap {
                        cluster_id: target.cluster_id,
                        from: skipped,
                        to: skipped,
                        reason: why,
                    };
                    if writer.send(gap).await.is_err() {
                        return;
                    }
                    cursor = skipped;
                    stuck = (cursor, 0);
                    attempt = 0;
                    continue;
                }
                reason
            }
        };
        // A session that delivered events was a working link that broke: retry soon.
        // Only failures without progress back off further.
        if cursor > before {
            attempt = 0;
        }
        let delay = backoff.delay(attempt, jitter());
        attempt = attempt.saturating_add(1);
        tracing::info!(cluster = %target.name, %reason, attempt, delay_ms = delay.as_millis() as u64, "stream lost; reconnecting");
        let retry_at_ms = now_ms() + delay.as_millis() as i64;
        report(
            &sink,
            &target,
            StreamState::Reconnecting {
                attempt,
                retry_at_ms,
                reason,
            },
            now_ms(),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

fn report(sink: &Arc<dyn ConsoleSink>, target: &Target, stream: StreamState, since_ms: i64) {
    sink.cluster_status(&ClusterStatus {
        cluster_id: target.cluster_id,
        name: target.name.clone(),
        since_ms,
        stream,
    });
}

async fn session(
    target: &Target,
    cursor: &mut u64,
    stream_id: &mut Option<String>,
    refused: &mut Option<(u64, String)>,
    writer: &mpsc::Sender<Item>,
    sink: &Arc<dyn ConsoleSink>,
) -> End {
    let ws = match connect(target, *cursor).await {
        Ok(ws) => ws,
        Err(end) => return end,
    };
    let (_write, mut read) = ws.split();
    let handed = *cursor;
    let mut s = Session {
        target,
        writer,
        sink,
        cursor,
        stream_id,
        handed,
        refused,
        pending: Vec::with_capacity(HANDOFF),
        held: BTreeMap::new(),
        head: 0,
        reported: None,
        since_ms: now_ms(),
    };
    loop {
        let wait = if s.pending.is_empty() {
            SILENCE_LIMIT
        } else {
            HANDOFF_WAIT
        };
        let next = match tokio::time::timeout(wait, read.next()).await {
            Ok(next) => next,
            Err(_) if !s.pending.is_empty() => {
                if let Err(end) = s.hand_off().await {
                    return end;
                }
                continue;
            }
            Err(_) => {
                return s
                    .end(End::Retry(format!(
                        "no frame for {} s",
                        SILENCE_LIMIT.as_secs()
                    )))
                    .await
            }
        };
        let message = match next {
            None => {
                return s
                    .end(End::Retry("the server closed the connection".into()))
                    .await
            }
            Some(Err(WsError::Capacity(e))) => {
                // Too large to read, so its sequence is unknown: kept as "the frame after
                // sequence N" (once, however often it is replayed).
                let after = *s.cursor;
                let reason = format!(
                    "a frame after sequence {after} over the {LIBRARY_MAX_MESSAGE}-byte hard limit: {e}"
                );
                let next = after.saturating_add(1);
                if s.refused.as_ref().map(|r| r.0) != Some(next) {
                    s.quarantine(reason.clone(), Vec::new(), None).await;
                    *s.refused = Some((next, reason.clone()));
                }
                return s.end(End::Stuck(reason)).await;
            }
            // A link cut without a close frame is the network's doing, not the frame's:
            // it is retried like any lost link and never counts towards skipping.
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                return s.end(End::Retry("the connection was reset".into())).await
            }
            Some(Err(e @ (WsError::Protocol(_) | WsError::Utf8(_)))) => {
                return s.end(End::Stuck(format!("an unreadable frame: {e}"))).await
            }
            Some(Err(e)) => return s.end(End::Retry(e.to_string())).await,
            Some(Ok(m)) => m,
        };
        let step = match message {
            Message::Text(text) => s.frame(text.as_str()).await,
            Message::Binary(bytes) => {
                s.quarantine(
                    "binary frame: the protocol sends text frames only".into(),
                    bytes.to_vec(),
                    None,
                )
                .await;
                Ok(())
            }
            Message::Close(_) => {
                return s
                    .end(End::Retry("the server closed the stream".into()))
                    .await
            }
            _ => Ok(()),
        };
        if let Err(end) = step {
            return s.end(end).await;
        }
        if s.pending.len() >= HANDOFF {
            if let Err(end) = s.hand_off().await {
                return end;
            }
        }
    }
}

/// The event stream's WebSocket.
type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the event stream after `cursor`, with the token and the cluster's trust.
async fn connect(target: &Target, cursor: u64) -> Result<Stream, End> {
    let url = format!("{}?after={}", target.events_url, cursor);
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => {
            return Err(End::Fatal(format!(
                "bad events URL {}: {e}",
                target.events_url
            )))
        }
    };
    if let Some(token) = &target.token {
        if let Some(why) = crate::secrets::cleartext_refusal(&target.events_url) {
            return Err(End::Fatal(why));
        }
        match format!("Bearer {token}").parse() {
            Ok(v) => {
                request.headers_mut().insert("authorization", v);
            }
            Err(_) => {
                return Err(End::Fatal(
                    "the token has characters a header cannot carry".into(),
                ))
            }
        }
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(LIBRARY_MAX_MESSAGE))
        .max_frame_size(Some(LIBRARY_MAX_MESSAGE));
    // The same trust as the action client: the OS store plus the cluster's CA file.
    let tls = match crate::trust::client_config(target.ca_file.as_deref()) {
        Ok(tls) => tls,
        Err(why) => return Err(End::Fatal(why)),
    };
    let opening = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls)),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, opening).await {
        Err(_) => Err(End::Retry("connect timed out".into())),
        Ok(Err(WsError::Http(response))) => {
            let status = response.status();
            if status.as_u16() == 401 || status.as_u16() == 403 {
                return Err(End::Fatal(format!(
                    "{status}: the cluster refused the token"
                )));
            }
            Err(End::Retry(format!("the server answered {status}")))
        }
        Ok(Err(e)) => Err(End::Retry(crate::trust::explain(
            &e.to_string(),
            target.ca_file.as_deref(),
        ))),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

impl Session<'_> {
    async fn frame(&mut self, text: &str) -> Result<(), End> {
        if text.len() > MAX_FRAME_BYTES {
            let reason = format!(
                "oversized frame: {} bytes, the protocol's limit is {MAX_FRAME_BYTES}",
                text.len()
            );
            return self.refuse(reason, text).await;
        }
        match decode(text) {
            Err(e) => self.refuse(e.to_string(), text).await,
            Ok(Frame::Control(Control::Hello {
                head, stream_id, ..
            })) => {
                self.hello(head, stream_id).await?;
                self.head = self.head.max(head);
                self.update_state();
                Ok(())
            }
            Ok(Frame::Control(Control::Heartbeat { head, .. })) => {
                self.head = self.head.max(head);
                self.update_state();
                Ok(())
            }
            Ok(Frame::Control(Control::Gap {
                after,
                first_available,
            })) => {
                let next = self.cursor.saturating_add(1);
                if first_available > next {
                    self.hand_off().await?;
                    let gap = Item::Gap {
                        cluster_id: self.target.cluster_id,
                        from: (*self.cursor).max(after).saturating_add(1),
                        to: first_available - 1,
                        reason: "the cluster no longer kept these events".into(),
                    };
                    self.send(gap).await?;
                    *self.cursor = first_available - 1;
                    self.handed = *self.cursor;
                }
                Ok(())
            }
            Ok(Frame::Event(event)) => {
                let seq = event.sequence;
                let ty = EventType::parse(&event.ty).unwrap_or(EventType::SyntheticLoad);
                let incoming = Incoming {
                    event: *event,
                    ty,
                    raw: text.into(),
                    received_ms: now_ms(),
                };
                if seq <= *self.cursor {
                    return Ok(()); // already handed on: a duplicate or a replay
                }
                self.head = self.head.max(seq);
                let next = self.cursor.saturating_add(1);
                if seq > next {
                    // The frame at `next` was refused and later ones arrive: ask for it
                    // again; after a few tries it is skipped with a gap naming it.
                    if let Some((at, reason)) = self.refused.as_ref().filter(|r| r.0 == next) {
                        return Err(End::Stuck(format!(
                            "the frame at sequence {at} was refused: {reason}"
                        )));
                    }
                    self.held.insert(seq, incoming);
                    if self.held.len() > REORDER_LIMIT {
                        return Err(End::Stuck(format!(
                            "sequence {next} missing while {REORDER_LIMIT} later ones arrived"
                        )));
                    }
                    return Ok(());
                }
                self.accept(incoming);
                while let Some(next) = self
                    .cursor
                    .checked_add(1)
                    .and_then(|n| self.held.remove(&n))
                {
                    self.accept(next);
                }
                Ok(())
            }
        }
    }

    /// A frame that is not a valid event: quarantined (once, if it names its sequence,
    /// however often the server sends it again) with the reason.
    async fn refuse(&mut self, reason: String, text: &str) -> Result<(), End> {
        let sequence = sequence_of(text).filter(|s| *s > *self.cursor);
        if let Some(seq) = sequence {
            if self.refused.as_ref().map(|r| r.0) == Some(seq) {
                return Ok(());
            }
            *self.refused = Some((seq, reason.clone()));
        }
        self.quarantine(reason, text.as_bytes().to_vec(), sequence)
            .await;
        Ok(())
    }

    /// The hello: is this still the stream the cursor belongs to?
    async fn hello(&mut self, head: u64, stream_id: Option<String>) -> Result<(), End> {
        let changed = match (self.stream_id.as_deref(), stream_id.as_deref()) {
            (Some(ours), Some(theirs)) if ours != theirs => Some(format!(
                "the cluster's stream identity changed from {ours} to {theirs}"
            )),
            _ if head < *self.cursor => Some(format!(
                "the cluster's newest event is {head}, below the {} already recorded",
                *self.cursor
            )),
            _ => None,
        };
        if let Some(reason) = changed {
            tracing::warn!(cluster = %self.target.name, %reason, "stream restarted");
            self.send(Item::Restarted {
                cluster_id: self.target.cluster_id,
                stream_id: stream_id.clone(),
                reason,
            })
            .await?;
            *self.cursor = 0;
            self.handed = 0;
            *self.stream_id = stream_id;
            *self.refused = None;
            return Err(End::Restarted);
        }
        if let (None, Some(id)) = (self.stream_id.as_ref(), stream_id) {
            self.send(Item::Identity {
                cluster_id: self.target.cluster_id,
                stream_id: id.clone(),
            })
            .await?;
            *self.stream_id = Some(id);
        }
        Ok(())
    }

    fn accept(&mut self, incoming: Incoming) {
        *self.cursor = incoming.event.sequence;
        if self.refused.as_ref().is_some_and(|r| r.0 <= *self.cursor) {
            *self.refused = None;
        }
        self.pending.push(incoming);
    }

    async fn send(&mut self, item: Item) -> Result<(), End> {
        // A full channel waits here: the socket is not read, and TCP slows the server.
        self.writer.send(item).await.map_err(|_| End::Stopped)
    }

    async fn hand_off(&mut self) -> Result<(), End> {
        if self.pending.is_empty() && self.handed == *self.cursor {
            return Ok(());
        }
        let events = std::mem::replace(&mut self.pending, Vec::with_capacity(HANDOFF));
        self.handed = *self.cursor;
        let item = Item::Events {
            cluster_id: self.target.cluster_id,
            last_sequence: *self.cursor,
            events,
        };
        self.send(item).await?;
        self.update_state();
        Ok(())
    }

    async fn quarantine(&mut self, reason: String, raw: Vec<u8>, sequence: Option<u64>) {
        tracing::debug!(cluster = %self.target.name, %reason, "frame quarantined");
        let item = Item::Quarantine {
            cluster_id: self.target.cluster_id,
            reason,
            raw,
            sequence,
        };
        let _ = self.send(item).await;
    }

    /// Hands on what is pending before the session ends: nothing received is lost.
    async fn end(&mut self, end: End) -> End {
        // Held events past a hole are dropped: the server replays them after the cursor.
        self.held.clear();
        match self.hand_off().await {
            Ok(()) => end,
            Err(stopped) => stopped,
        }
    }

    fn update_state(&mut self) {
        let behind = i64::try_from(self.head.saturating_sub(*self.cursor)).unwrap_or(i64::MAX);
        let state = if behind > 0 {
            StreamState::CatchingUp { behind }
        } else {
            StreamState::Live {
                head: i64::try_from(*self.cursor).unwrap_or(i64::MAX),
            }
        };
        let (worth_reporting, same_kind) = match (&self.reported, &state) {
            (Some(StreamState::Live { .. }), StreamState::Live { .. }) => (false, true),
            // Catching up is reported in steps of a thousand, not per frame.
            (
                Some(StreamState::CatchingUp { behind: a }),
                StreamState::CatchingUp { behind: b },
            ) => (a / 1_000 != b / 1_000, true),
            _ => (true, false),
        };
        if worth_reporting {
            if !same_kind {
                self.since_ms = now_ms();
            }
            report(self.sink, self.target, state.clone(), self.since_ms);
            self.reported = Some(state);
        }
    }
}
