//! Action API types (HTTP JSON). See docs/protocol/openapi.json.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The header that makes a mutating request happen at most once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that repeats the first response to the same key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Rollback,
    Failover,
    /// Silence an alert's notifications for a while (the gateway: an Alertmanager silence).
    Silence,
    /// Stop a rollout under way before its next wave.
    PauseRollout,
    /// Let a paused rollout go on with its waves.
    ResumeRollout,
    /// Send a rollout's updated and drained nodes back to the stable revision.
    AbortRollout,
    /// Run a rollout's next wave now, or every remaining wave.
    PromoteRollout,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Failover => "failover",
            Self::Silence => "silence",
            Self::PauseRollout => "pause_rollout",
            Self::ResumeRollout => "resume_rollout",
            Self::AbortRollout => "abort_rollout",
            Self::PromoteRollout => "promote_rollout",
        }
    }

    /// The action as a noun in a sentence: "after the rollback", "after the pause".
    pub fn noun(self) -> &'static str {
        match self {
            Self::PauseRollout => "pause",
            Self::ResumeRollout => "resume",
            Self::AbortRollout => "abort",
            Self::PromoteRollout => "promotion",
            other => other.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub const ALL: [ActionKind; 7] = [
        Self::Rollback,
        Self::Failover,
        Self::Silence,
        Self::PauseRollout,
        Self::ResumeRollout,
        Self::AbortRollout,
        Self::PromoteRollout,
    ];

    /// The lever on a rollout under way this kind is, if it is one.
    pub fn lever(self) -> Option<RolloutLever> {
        match self {
            Self::PauseRollout => Some(RolloutLever::Pause),
            Self::ResumeRollout => Some(RolloutLever::Resume),
            Self::AbortRollout => Some(RolloutLever::Abort),
            Self::PromoteRollout => Some(RolloutLever::Promote),
            _ => None,
        }
    }

    /// Whether the action names a deployment (rather than only a service).
    pub fn acts_on_deployment(self) -> bool {
        self == Self::Rollback || self.lever().is_some()
    }
}

/// A lever on a rollout under way: `POST /v1/deployments/{name}/{lever}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolloutLever {
    Pause,
    Resume,
    Abort,
    Promote,
}

impl RolloutLever {
    pub const ALL: [RolloutLever; 4] = [Self::Pause, Self::Resume, Self::Abort, Self::Promote];

    /// The last segment of its route.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Abort => "abort",
            Self::Promote => "promote",
        }
    }

    pub fn kind(self) -> ActionKind {
        match self {
            Self::Pause => ActionKind::PauseRollout,
            Self::Resume => ActionKind::ResumeRollout,
            Self::Abort => ActionKind::AbortRollout,
            Self::Promote => ActionKind::PromoteRollout,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Accepted,
    Running,
    Succeeded,
    Failed,
}

impl ActionState {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Revision {
    pub revision: u32,
    pub model_version: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RolloutView {
    pub to_revision: u32,
    pub wave: u32,
    pub waves: u32,
    pub stalled: bool,
    /// Paused: no further waves until resumed or promoted (absent from older servers).
    #[serde(default)]
    pub paused: bool,
}

/// A deployment: the revision it is at, its history (oldest first) and any rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Deployment {
    pub name: String,
    pub service: String,
    /// The revision the deployment is at: a rollout's target while it runs.
    pub current_revision: u32,
    pub revisions: Vec<Revision>,
    pub rollout: Option<RolloutView>,
    pub nodes_total: u32,
    /// Who made the last change, when it was an action.
    pub last_changed_by: Option<String>,
    /// The object a rollback changes, when the server acts on Kubernetes itself:
    /// `Deployment serving/llm-assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    pub name: String,
    pub deployment: String,
    pub primary_region: String,
    pub regions: Vec<String>,
    /// Who made the last change to the primary region, when it was an action.
    pub last_changed_by: Option<String>,
    /// What a failover changes, when the server acts on Kubernetes itself, with the split
    /// now: `HTTPRoute serving/llm-assistant (us-east 100, eu-west 0)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceList {
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
}

/// Roll a deployment back to an earlier revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    pub to_revision: u32,
    /// Precondition: the revision the caller believes is current.
    pub expected_revision: u32,
    pub actor: String,
    pub reason: String,
}

/// Move a service's traffic to another region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    pub to_region: String,
    /// Precondition: the primary region the caller believes is current.
    pub expected_primary_region: String,
    pub actor: String,
    pub reason: String,
}

/// Pause, resume, abort or promote the rollout under way on a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// Precondition: the revision the caller believes is being rolled out.
    pub expected_revision: u32,
    /// Promote only: every remaining wave now (default: the next wave only).
    #[serde(default)]
    pub full: bool,
    pub actor: String,
    pub reason: String,
}

/// A promotion's goal, as its action's `to` says it.
pub const PROMOTE_NEXT: &str = "next wave";
pub const PROMOTE_ALL: &str = "all waves";

/// One label matcher of a silence. `alertname`, `service`, `region` and `severity` name
/// the protocol's fields (a gateway maps them to its Alertmanager's label names); any other
/// name is a label name as the alerting system spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    /// `value` is a regular expression (default: an exact value).
    #[serde(default)]
    pub is_regex: bool,
    /// Matches when equal (default), or when not equal.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// The matchers as people read them: `alertname="HighErrorRate", region="us-east"`.
pub fn describe_matchers(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(|m| {
            let op = match (m.is_equal, m.is_regex) {
                (true, false) => "=",
                (false, false) => "!=",
                (true, true) => "=~",
                (false, true) => "!~",
            };
            format!("{}{op}{:?}", m.name, m.value)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Silence the alerts the matchers select for `duration_s` seconds, from now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// At least one; every one must match (as in Alertmanager).
    pub matchers: Vec<Matcher>,
    /// 60 s to 7 days.
    pub duration_s: u32,
    pub comment: String,
    pub actor: String,
}

/// Which alerts a silence would mute: the body of `POST /v1/alerts/silence/preview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceScope {
    /// As a [`SilenceRequest`]'s, under the same rules.
    pub matchers: Vec<Matcher>,
}

/// What a silence with these matchers would mute now. Nothing is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SilencePreview {
    /// The matchers as the silence would be created: label names as the alerting system
    /// spells them, and what the server adds itself (a shared Alertmanager's cluster
    /// label).
    pub matchers: Vec<Matcher>,
    /// The alerts firing now that those matchers select, each with its labels.
    pub alerts: Vec<MutedAlert>,
}

/// One alert firing now, as the alerting system labels it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MutedAlert {
    pub labels: std::collections::BTreeMap<String, String>,
    /// When it started firing, where known.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
}

/// The shortest and longest silence the action API accepts.
pub const SILENCE_DURATION_S: std::ops::RangeInclusive<u32> = 60..=7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Action {
    pub id: String,
    pub kind: ActionKind,
    pub service: String,
    pub deployment: Option<String>,
    /// Revision (rollback) or region (failover) before the action; for a silence, the
    /// matchers as `name="value"` pairs; for a rollout lever, the revision rolling out.
    pub from: String,
    /// Revision (rollback) or region (failover) the action moves to; for a silence, when it
    /// ends (RFC 3339); for a rollout lever, what it leads to: `paused`, `running`, the
    /// stable revision an abort returns to, `next wave` or `all waves`.
    pub to: String,
    pub state: ActionState,
    pub actor: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
    /// What carried the action out said (a gateway hook's output, its last 16 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiError {
    /// `unauthorized`, `not_found`, `invalid`, `precondition_failed`,
    /// `idempotency_key_missing`, `idempotency_key_reused`, `idempotency_key_in_flight`.
    pub error: String,
    pub message: String,
    /// With `precondition_failed`: the current state (`revision` or `primary_region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<serde_json::Value>,
    /// With `precondition_failed`: who made the change, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
}
