//! One client's event stream: the hello, then every event after the client's cursor in
//! batches, a gap notice for what is no longer kept, and a heartbeat every interval, busy
//! or idle. Each connection walks the source from its own cursor, so a slow client never
//! slows the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};

use super::faults::{malformed_frame, Faults, MalformedFrame};
use super::rng::Rng;
use super::{EventSource, Read};
use firebreak_protocol::events::Control;
use firebreak_protocol::{EVENTS_PROTOCOL, HEARTBEAT_INTERVAL_MS};

/// Frames sent per flush: large enough to amortise syscalls, small enough to stay fair.
const SEND_BATCH: usize = 1024;

/// Faults a test asks of the stream (none in production), and where their count goes.
pub struct StreamFaults<'a> {
    pub faults: &'a Faults,
    pub seed: u64,
    pub malformed_sent: &'a AtomicU64,
}

/// Serves one connection until the client leaves or the link fails. `after`: start after
/// this sequence; absent, only events published from now on.
pub async fn serve_stream<S: EventSource>(
    socket: WebSocket,
    source: Arc<S>,
    after: Option<u64>,
    conn: u64,
    faults: StreamFaults<'_>,
) -> Result<(), axum::Error> {
    let (mut sink, mut incoming) = socket.split();
    let (head, first) = source.bounds();
    let hello = Control::Hello {
        protocol: EVENTS_PROTOCOL.into(),
        head,
        first,
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        stream_id: Some(source.stream_id()),
    };
    sink.send(control(&hello)).await?;

    let mut cursor = after.unwrap_or(head);
    let mut head_rx = source.subscribe();
    // A heartbeat goes out every interval, busy or idle, so a client always knows the head.
    let every = Duration::from_millis(HEARTBEAT_INTERVAL_MS);
    let mut next_heartbeat = tokio::time::Instant::now() + every;
    let mut rng = Rng::new(faults.seed ^ (conn.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    let f = faults.faults;
    let mut sent_events: u64 = 0;
    let mut held: Option<Utf8Bytes> = None;

    loop {
        match source.read_after(cursor, SEND_BATCH).await {
            Read::Gap { first_available } => {
                sink.send(control(&Control::Gap {
                    after: cursor,
                    first_available,
                }))
                .await?;
                cursor = first_available - 1;
            }
            Read::Frames { frames, last } => {
                for frame in frames {
                    if rng.chance(f.malformed) {
                        let n = faults.malformed_sent.fetch_add(1, Ordering::Relaxed);
                        let bad = match malformed_frame(n) {
                            MalformedFrame::Text(t) => Message::Text(t.into()),
                            MalformedFrame::Binary(b) => Message::Binary(b.into()),
                        };
                        sink.feed(bad).await?;
                    }
                    if let Some(h) = held.take() {
                        // A reordered frame goes out right after the one that overtook it.
                        sink.feed(Message::Text(frame.clone())).await?;
                        sink.feed(Message::Text(h)).await?;
                    } else if rng.chance(f.reorder) {
                        held = Some(frame.clone());
                    } else {
                        sink.feed(Message::Text(frame.clone())).await?;
                    }
                    if rng.chance(f.duplicate) {
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sent_events += 1;
                    if f.drop_every.is_some_and(|n| sent_events.is_multiple_of(n)) {
                        // Abrupt: no close frame, as a dead link would behave.
                        let _ = sink.flush().await;
                        return Ok(());
                    }
                }
                if held.is_none() {
                    sink.flush().await?;
                }
                cursor = last;
                if tokio::time::Instant::now() >= next_heartbeat {
                    sink.send(heartbeat(source.bounds().0)).await?;
                    next_heartbeat = tokio::time::Instant::now() + every;
                }
            }
            Read::Nothing => {
                if let Some(h) = held.take() {
                    sink.send(Message::Text(h)).await?;
                }
                tokio::select! {
                    changed = head_rx.changed() => {
                        if changed.is_err() { return Ok(()); }
                    }
                    _ = tokio::time::sleep_until(next_heartbeat) => {
                        sink.send(heartbeat(source.bounds().0)).await?;
                        next_heartbeat = tokio::time::Instant::now() + every;
                    }
                    msg = incoming.next() => match msg {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
    }
}

fn heartbeat(head: u64) -> Message {
    control(&Control::Heartbeat {
        head,
        time: chrono::Utc::now(),
    })
}

fn control(c: &Control) -> Message {
    Message::Text(serde_json::to_string(c).unwrap_or_default().into())
}
