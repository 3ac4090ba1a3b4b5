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
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::backoff::Backoff;
use super::sink::{ClusterStatus, ConsoleSink, StreamState};
use crate::protocol::events::{decode, Control, EventType, Frame};
use crate::protocol::{HEARTBEAT_INTERVAL_MS, MAX_FRAME_BYTES};
use crate::store::ingest::{Incoming, Item};
use crate::store::now_ms;

/// The library refuses anything larger outright (its defaults are 64 MiB / 16 MiB).
pub const LIBRARY_MAX_MESSAGE: usize = 1024 * 1024;
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

#[derive(Debug, Clone)]
pub struct Target {
    pub cluster_id: i64,
    pub name: String,
    pub events_url: String,
    pub token: Option<String>,
}

enum End {
    /// Try again after a backoff.
    Retry(String),
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
    pending: Vec<Incoming>,
    held: BTreeMap<u64, Incoming>,
    head: u64,
    reported: Option<StreamState>,
    since_ms: i64,
}

pub async fn run(
    target: Target,
    mut cursor: u64,
    writer: mpsc::Sender<Item>,
    sink: Arc<dyn ConsoleSink>,
    backoff: Backoff,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    let mut jitter = super::jitter_source(target.cluster_id);
    loop {
        report(&sink, &target, StreamState::Connecting, now_ms());
        let before = cursor;
        let end = tokio::select! {
            end = session(&target, &mut cursor, &writer, &sink) => end,
            _ = stop.changed() => End::Stopped,
        };
        let reason = match end {
            End::Stopped => return,
            End::Fatal(reason) => {
                tracing::warn!(cluster = %target.name, %reason, "stream failed; not retrying");
                report(&sink, &target, StreamState::Failed { reason }, now_ms());
                return;
            }
            End::Retry(reason) => reason,
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
    writer: &mpsc::Sender<Item>,
    sink: &Arc<dyn ConsoleSink>,
) -> End {
    let url = format!("{}?after={}", target.events_url, cursor);
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return End::Fatal(format!("bad events URL {}: {e}", target.events_url)),
    };
    if let Some(token) = &target.token {
        match format!("Bearer {token}").parse() {
            Ok(v) => {
                request.headers_mut().insert("authorization", v);
            }
            Err(_) => return End::Fatal("the token has characters a header cannot carry".into()),
        }
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(LIBRARY_MAX_MESSAGE))
        .max_frame_size(Some(LIBRARY_MAX_MESSAGE));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
    let ws = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => return End::Retry("connect timed out".into()),
        Ok(Err(WsError::Http(response))) => {
            let status = response.status();
            if status.as_u16() == 401 || status.as_u16() == 403 {
                return End::Fatal(format!("{status}: the cluster refused the token"));
            }
            return End::Retry(format!("the server answered {status}"));
        }
        Ok(Err(e)) => return End::Retry(e.to_string()),
        Ok(Ok((ws, _))) => ws,
    };
    let (_write, mut read) = ws.split();
    let mut s = Session {
        target,
        writer,
        sink,
        cursor,
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
                s.quarantine(
                    format!("frame over the {LIBRARY_MAX_MESSAGE}-byte limit: {e}"),
                    Vec::new(),
                )
                .await;
                return s.end(End::Retry("oversized frame".into())).await;
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

impl Session<'_> {
    async fn frame(&mut self, text: &str) -> Result<(), End> {
        if text.len() > MAX_FRAME_BYTES {
            self.quarantine(
                format!(
                    "oversized frame: {} bytes, the protocol's limit is {MAX_FRAME_BYTES}",
                    text.len()
                ),
                text.as_bytes().to_vec(),
            )
            .await;
            return Ok(());
        }
        match decode(text) {
            Err(e) => {
                self.quarantine(e.to_string(), text.as_bytes().to_vec())
                    .await;
                Ok(())
            }
            Ok(Frame::Control(Control::Hello { head, .. }))
            | Ok(Frame::Control(Control::Heartbeat { head, .. })) => {
                self.head = self.head.max(head);
                self.update_state();
                Ok(())
            }
            Ok(Frame::Control(Control::Gap {
                after,
                first_available,
            })) => {
                if first_available > *self.cursor + 1 {
                    self.hand_off().await?;
                    let gap = Item::Gap {
                        cluster_id: self.target.cluster_id,
                        from: (*self.cursor).max(after) + 1,
                        to: first_available - 1,
                    };
                    self.send(gap).await?;
                    *self.cursor = first_available - 1;
                }
                Ok(())
            }
            Ok(Frame::Event(event)) => {
                let seq = event.sequence;
                let ty = EventType::parse(&event.ty).unwrap_or(EventType::SyntheticLoad);
                let incoming = Incoming {
                    event: *event,
                    ty,
                    raw: text.to_owned(),
                    received_ms: now_ms(),
                };
                if seq <= *self.cursor {
                    return Ok(()); // already handed on: a duplicate or a replay
                }
                self.head = self.head.max(seq);
                if seq > *self.cursor + 1 {
                    self.held.insert(seq, incoming);
                    if self.held.len() > REORDER_LIMIT {
                        return Err(End::Retry(format!(
                            "sequence {} missing; resuming after it",
                            *self.cursor + 1
                        )));
                    }
                    return Ok(());
                }
                self.accept(incoming);
                while let Some(next) = self.held.remove(&(*self.cursor + 1)) {
                    self.accept(next);
                }
                Ok(())
            }
        }
    }

    fn accept(&mut self, incoming: Incoming) {
        *self.cursor = incoming.event.sequence;
        self.pending.push(incoming);
    }

    async fn send(&mut self, item: Item) -> Result<(), End> {
        // A full channel waits here: the socket is not read, and TCP slows the server.
        self.writer.send(item).await.map_err(|_| End::Stopped)
    }

    async fn hand_off(&mut self) -> Result<(), End> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::replace(&mut self.pending, Vec::with_capacity(HANDOFF));
        let item = Item::Events {
            cluster_id: self.target.cluster_id,
            last_sequence: *self.cursor,
            events,
        };
        self.send(item).await?;
        self.update_state();
        Ok(())
    }

    async fn quarantine(&mut self, reason: String, raw: Vec<u8>) {
        tracing::debug!(cluster = %self.target.name, %reason, "frame quarantined");
        let item = Item::Quarantine {
            cluster_id: self.target.cluster_id,
            reason,
            raw,
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
        let behind = self.head.saturating_sub(*self.cursor) as i64;
        let state = if behind > 0 {
            StreamState::CatchingUp { behind }
        } else {
            StreamState::Live {
                head: *self.cursor as i64,
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
