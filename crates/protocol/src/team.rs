//! The team sync contract (TEAM.md): what a console pushes, what the server answers, and
//! the frames of the pull stream. The server and the console's sync client share these
//! types; `openapi.rs` publishes them.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The version of this contract. A console sends it in [`SCHEMA_HEADER`] on every
/// request; the server refuses one older than [`OLDEST_CONSOLE_SCHEMA`] with
/// `426 schema_too_old` before anything else.
pub const SCHEMA: u32 = 1;
pub const OLDEST_CONSOLE_SCHEMA: u32 = 1;
pub const SCHEMA_HEADER: &str = "firebreak-team-schema";

/// A sync stream with nothing to send says so this often; a console that hears nothing
/// for three of these takes the stream for dead.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);
/// At most this many records in one push.
pub const MAX_PUSH_RECORDS: usize = 500;
/// At most this many bytes of JSON in one record's body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// At most this many bytes in one push's request body (a console sends half at most).
pub const MAX_PUSH_BYTES: usize = 16 * 1024 * 1024;

/// The incident fields changed only by commands, each checked against what its sender saw
/// (`root_cause` is the review's).
pub const FIELDS: [&str; 5] = ["status", "severity", "commander", "title", "root_cause"];

/// One record a console pushes. `id` is the console's own, made when the change was made
/// locally: the server accepts it once, and a push retried after a lost answer gets the
/// same answer again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    pub id: Uuid,
    /// The incident's shared id (its `public_id` in every console's store).
    pub incident: Uuid,
    /// When the author made the change, by their console's clock.
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: Body,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// An incident shared with the team for the first time, as its opener saw it. A
    /// second `open` of the same incident is accepted and changes no field.
    Open {
        title: String,
        severity: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// The cluster it was opened on, as its console names it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        /// The opened entry's text.
        entry: String,
    },
    /// A timeline entry (note, event, action step, runbook step, review record…). Appends
    /// always merge: every one is accepted.
    Append {
        /// The entry's kind in the console's store (`note`, `event`, `action`, …).
        entry_kind: String,
        author: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
        /// The cluster event it cites, by its CloudEvents identity.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventRef>,
        /// The record this one corrects.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amends: Option<Uuid>,
    },
    /// A change of one of the incident's [`FIELDS`], from `expect` (what the sender saw)
    /// to `value`. Refused when the field is no longer `expect`.
    Command {
        field: String,
        expect: Option<String>,
        value: Option<String>,
        /// The entry the change writes on every timeline.
        entry: String,
    },
    /// A kind this build does not know (a newer console's or server's). A server answers
    /// it `invalid`; a console that reads one in the stream notes it on the incident and
    /// goes on with the records after it. Never sent.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Names an entry may be written under besides its pusher's: the console's own machinery
/// (the engine's rules, the audit chain, the sync itself), never a person. The server
/// refuses an entry under any other name than its pusher's.
pub const MACHINE_AUTHORS: &[&str] = &["firebreak", "console", "team sync"];

impl Record {
    /// The record as the team will read it: an entry a person wrote on this console is
    /// under the name the team server knows them by (`you`, from its hello), whatever name
    /// this console's settings give them; the console's machinery keeps its own.
    pub fn as_person(mut self, you: &str) -> Record {
        if let Body::Append { author, .. } = &mut self.body {
            if !MACHINE_AUTHORS.contains(&author.trim()) {
                *author = you.to_owned();
            }
        }
        self
    }
}

impl Body {
    /// The record's kind as the server stores it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Body::Open { .. } => "open",
            Body::Append { .. } => "append",
            Body::Command { .. } => "command",
            Body::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventRef {
    pub source: String,
    pub id: String,
}

/// `POST /v1/teams/{team}/records`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PushRequest {
    /// The pushing console's id (one per store): who pushed, beside who authored.
    pub console: Uuid,
    pub records: Vec<Record>,
}

/// The answer to a push: one outcome per record, in the order pushed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PushResponse {
    pub outcomes: Vec<Outcome>,
    /// The team's stream head after this push.
    pub head: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// In the team's stream at `seq`.
    Accepted { id: Uuid, seq: u64 },
    /// Already in the stream at `seq` (the push was retried).
    Duplicate { id: Uuid, seq: u64 },
    /// A command whose precondition no longer held: the field is `current`, set by `by`
    /// at `at`. Nothing was changed. A retried push gets the same answer.
    Refused {
        id: Uuid,
        field: String,
        current: Option<String>,
        by: String,
        at: DateTime<Utc>,
    },
    /// A record the server cannot take (why in `message`): nothing was changed for it.
    /// The rest of the push is answered as usual.
    Invalid { id: Uuid, message: String },
}

/// One record as the team's stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shared {
    pub seq: u64,
    /// The person whose token pushed it (an entry's own `author` may name the engine or
    /// a rule that wrote it on their console).
    pub by: String,
    pub console: Uuid,
    pub accepted_at: DateTime<Utc>,
    #[serde(flatten)]
    pub record: Record,
}

/// A frame of `GET /v1/teams/{team}/sync` (WebSocket): records and control frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    /// First: who the token is and where the team's stream stands.
    Hello {
        team: String,
        you: String,
        head: u64,
        /// The id of the record at the console's cursor (`after`), when it asked after one:
        /// a console that read another record there knows the team's database was
        /// restored from an older copy, and reads the team again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_cursor: Option<Uuid>,
    },
    Record(Box<Shared>),
    /// Every record up to `seq` has been sent; live records follow.
    CaughtUp {
        seq: u64,
    },
    /// Who has a console connected to this team, and which incident each shows.
    Presence {
        people: Vec<Presence>,
    },
    /// Sent when nothing else was for a while; a console that hears nothing for three
    /// intervals reconnects with `after=` its cursor.
    Heartbeat {
        seq: u64,
    },
    /// The stream cannot go on (`code`, `message`): `cursor_ahead`, `unauthorized` (the
    /// token was revoked while the stream was open), `not_a_member` (the person left the team).
    Error {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Presence {
    pub name: String,
    pub console: Uuid,
    pub incident: Option<Uuid>,
    /// When its console last said so (it refreshes every few seconds).
    pub seen: DateTime<Utc>,
}

/// What a console sends on the sync socket: which incident it shows now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Inbound {
    Viewing { incident: Option<Uuid> },
}

/// Every error answer: a code a program matches on and a sentence for a person.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TeamError {
    pub error: String,
    pub message: String,
}
