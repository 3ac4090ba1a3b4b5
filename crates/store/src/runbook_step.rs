//! The steps of a runbook as plain data: what the runbook parser produces, what the store
//! keeps with each run, and what the window shows. No behaviour lives here; parsing and
//! running are in `runbooks/`, keeping them is in `store/runs.rs`.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What a query step asks of the console's own store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// The service's error rate on its primary region (0–1), over the window.
    ErrorRate,
    /// The service's p99 latency on its primary region (ms), over the window.
    LatencyP99,
    /// How many of the service's nodes are down now.
    NodesDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Rollback,
    Failover,
    /// The rollout levers: on the rollout under way; skipped (saying why) when none is.
    PauseRollout,
    ResumeRollout,
    AbortRollout,
    PromoteRollout,
}

impl StepAction {
    pub fn kind(self) -> firebreak_protocol::actions::ActionKind {
        use firebreak_protocol::actions::ActionKind;
        match self {
            StepAction::Rollback => ActionKind::Rollback,
            StepAction::Failover => ActionKind::Failover,
            StepAction::PauseRollout => ActionKind::PauseRollout,
            StepAction::ResumeRollout => ActionKind::ResumeRollout,
            StepAction::AbortRollout => ActionKind::AbortRollout,
            StepAction::PromoteRollout => ActionKind::PromoteRollout,
        }
    }
}

/// A branch arm: a condition on the query's value (`> 0.05`, `<= 3`) or, without an
/// `on` query, one of the answers offered to the engineer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    #[serde(rename = "if")]
    pub condition: String,
    pub goto: String,
}

/// One step. After a step, the run goes on with `next` (a step id or `end`), or else
/// with the step below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Something the engineer does and ticks off, optionally with a short finding.
    Check {
        id: String,
        title: String,
        #[serde(default)]
        detail: String,
        #[serde(default)]
        finding: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        next: Option<String>,
    },
    /// A figure the console answers from its store, drawn as a small chart.
    Query {
        id: String,
        title: String,
        query: QueryKind,
        #[serde(default = "default_window")]
        window_min: u32,
        #[serde(default)]
        detail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        next: Option<String>,
    },
    /// A rollback, failover or rollout lever, through the same preview, confirmation and
    /// verification as the incident view's buttons.
    Action {
        id: String,
        title: String,
        action: StepAction,
        /// A rollback's revision (else the one live before the rollout).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        to_revision: Option<u32>,
        #[serde(default)]
        detail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        next: Option<String>,
    },
    /// Picks the next step from a query's value (`on: <query step id>`) or, without
    /// `on`, from the engineer's answer.
    Branch {
        id: String,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        on: Option<String>,
        when: Vec<Arm>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        otherwise: Option<String>,
    },
}

fn default_window() -> u32 {
    15
}

impl Step {
    pub fn id(&self) -> &str {
        match self {
            Step::Check { id, .. }
            | Step::Query { id, .. }
            | Step::Action { id, .. }
            | Step::Branch { id, .. } => id,
        }
    }

    pub fn title(&self) -> &str {
        match self {
            Step::Check { title, .. }
            | Step::Query { title, .. }
            | Step::Action { title, .. }
            | Step::Branch { title, .. } => title,
        }
    }

    /// `next`, for the steps that have one.
    pub fn next(&self) -> Option<&str> {
        match self {
            Step::Check { next, .. } | Step::Query { next, .. } | Step::Action { next, .. } => {
                next.as_deref()
            }
            Step::Branch { .. } => None,
        }
    }
}
