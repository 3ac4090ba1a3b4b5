//! The cluster protocol, version 1: what a cluster (or Firebreak's simulator) speaks.
//!
//! Two interfaces, both behind one bearer token:
//! - **events**: a WebSocket stream of CloudEvents 1.0 (JSON structured mode) with a
//!   per-stream, strictly increasing integer `sequence`, plus a few control frames;
//! - **actions**: an HTTP JSON API to read services and deployments and to roll back
//!   or fail over, with idempotency keys and preconditions.
//!
//! PROTOCOL.md is the prose contract; `docs/protocol/` holds the JSON Schema of every
//! event type (generated from these types) and the OpenAPI document of the action API.
//!
//! `team` is the other wire Firebreak speaks: the team server's sync contract (TEAM.md).

pub mod actions;
pub mod events;
pub mod openapi;
pub mod slo;
pub mod team;
pub mod text;
pub mod xid;

/// The `protocol` named in the stream's hello frame.
pub const EVENTS_PROTOCOL: &str = "firebreak.events.v1";
/// The path of the event stream.
pub const EVENTS_PATH: &str = "/v1/events";
/// How often the server sends a heartbeat when nothing else is sent, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u64 = 5_000;
/// Every event type starts with this.
pub const TYPE_PREFIX: &str = "dev.firebreak.";
/// The largest frame a server sends (events are far smaller); clients may refuse larger.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;
