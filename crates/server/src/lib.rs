//! The serving side of protocol v1, shared by the simulator and the gateway: the event
//! stream over WebSocket (hello with the stream identity, `after=` resume, gap notices,
//! heartbeats, fault knobs for tests), the action API (`actions`: idempotency keys,
//! preconditions, actions read back) and bearer-token checks. What differs between the two
//! worlds is where the events come from, an [`EventSource`] (the simulator's memory ring,
//! the gateway's durable journal), and what acts, an [`actions::Backend`] (the simulated
//! fleet; the gateway's hooks). The gateway and the team server also share `tls` (TLS they
//! terminate themselves) and `secret` (tokens read from a file or the environment).

pub mod actions;
pub mod faults;
pub mod listen;
pub mod rng;
pub mod secret;
pub mod stream;
pub mod tls;

use std::future::Future;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::watch;

pub use stream::serve_stream;

/// What a reader gets after asking for the events after a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Frames in order; the last one has sequence `last`.
    Frames { frames: Vec<Utf8Bytes>, last: u64 },
    /// Nothing newer yet.
    Nothing,
    /// The sequences asked for are gone; the oldest retained one is `first_available`.
    Gap { first_available: u64 },
}

/// A sequenced, retained stream of serialized events.
pub trait EventSource: Send + Sync + 'static {
    /// (head, first retained): the newest sequence (0 when none) and the oldest kept.
    fn bounds(&self) -> (u64, u64);
    /// Changes exactly when the sequence starts over.
    fn stream_id(&self) -> String;
    /// The head, as it moves.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Up to `max` frames after sequence `after`.
    fn read_after(&self, after: u64, max: usize) -> impl Future<Output = Read> + Send;
}

/// The token presented as `Authorization: Bearer …`, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CloudEvent as it goes on the wire, serialized in one pass.
#[derive(serde::Serialize)]
struct Envelope<'a, D: serde::Serialize> {
    specversion: &'static str,
    id: &'a str,
    source: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
    time: String,
    subject: &'a str,
    datacontenttype: &'static str,
    sequence: u64,
    data: &'a D,
}

/// One event serialized for the stream, in one pass.
pub fn envelope<D: serde::Serialize>(
    source: &str,
    id: &str,
    ty: firebreak_protocol::events::EventType,
    time: chrono::DateTime<chrono::Utc>,
    subject: &str,
    sequence: u64,
    data: &D,
) -> String {
    let e = Envelope {
        specversion: "1.0",
        id,
        source,
        ty: ty.name(),
        time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        subject,
        datacontenttype: "application/json",
        sequence,
        data,
    };
    serde_json::to_string(&e).unwrap_or_default()
}
