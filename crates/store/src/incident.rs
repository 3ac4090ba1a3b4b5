//! Incidents and their timelines, in the incident commander's words.
//!
//! These types are plain data: the store persists them, the shell sends them to the
//! window (their TypeScript twins in `ui/src/bindings/` are generated from here).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Error rate above which a service's SLO is burning (5%): the rules open an incident on
/// it, and the Fleet board calls a cell failing above it.
pub const ERROR_RATE_SLO: f64 = 0.05;

/// The name automated timeline entries are recorded under.
pub const ENGINE_AUTHOR: &str = "firebreak";

/// How urgent an incident is. One scale across the app, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Critical, Self::Major, Self::Minor, Self::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Major => "major",
            Self::Minor => "minor",
            Self::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Where an incident stands. It only moves forward: open → acknowledged → mitigated → resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 4] = [
        Self::Open,
        Self::Acknowledged,
        Self::Mitigated,
        Self::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Mitigated => "mitigated",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The status the incident view offers as its next step, if any.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Open => Some(Self::Acknowledged),
            Self::Acknowledged => Some(Self::Mitigated),
            Self::Mitigated => Some(Self::Resolved),
            Self::Resolved => None,
        }
    }

    /// A status change is allowed only forward; steps may be skipped
    /// (an incident fixed before anyone acknowledged it goes straight to mitigated).
    pub fn can_move_to(self, to: Self) -> bool {
        to > self
    }
}

/// One incident as the console lists and shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: i64,
    pub public_id: String,
    pub cluster_id: Option<i64>,
    pub title: String,
    pub service: Option<String>,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub commander: Option<String>,
    pub opened_ms: i64,
    pub acknowledged_ms: Option<i64>,
    pub mitigated_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    pub updated_ms: i64,
    /// Entries on the timeline, for the list's count column.
    pub entry_count: i64,
    /// Recorded from Firebreak's simulator (the demo cluster, or a history recorded by
    /// `firebreak demo history`), not from a real cluster.
    pub demo: bool,
}

/// What a timeline entry records. Stored as text so later kinds need no migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Opened,
    Note,
    StatusChanged,
    SeverityChanged,
    CommanderChanged,
    Correction,
    /// A cluster event attached to the incident (an alert, a rollout step, a node, an action).
    Event,
    /// The anomaly detector saw a metric leave its usual range.
    Anomaly,
    /// Part of the cluster's stream could not be recovered.
    Gap,
    /// A step of a rollback or failover: proposed, confirmed, sent, its outcome.
    Action,
    /// Whether the service recovered after an action, with the figures.
    Verification,
    /// A runbook run started, or one of its steps' outcomes.
    Runbook,
    /// A rollout's canary verdict failed, and what the service's rollout guard did.
    Verdict,
}

impl EntryKind {
    pub const ALL: [EntryKind; 13] = [
        Self::Opened,
        Self::Note,
        Self::StatusChanged,
        Self::SeverityChanged,
        Self::CommanderChanged,
        Self::Correction,
        Self::Event,
        Self::Anomaly,
        Self::Gap,
        Self::Action,
        Self::Verification,
        Self::Runbook,
        Self::Verdict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Note => "note",
            Self::StatusChanged => "status_changed",
            Self::SeverityChanged => "severity_changed",
            Self::CommanderChanged => "commander_changed",
            Self::Correction => "correction",
            Self::Event => "event",
            Self::Anomaly => "anomaly",
            Self::Gap => "gap",
            Self::Action => "action",
            Self::Verification => "verification",
            Self::Runbook => "runbook",
            Self::Verdict => "verdict",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One line of an incident's timeline: who recorded what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub id: i64,
    pub incident_id: i64,
    pub at_ms: i64,
    pub kind: EntryKind,
    pub author: String,
    pub body: String,
    /// The entry this one corrects, for kind `correction`.
    pub amends: Option<i64>,
    /// For an entry about a recorded event, its type (`alert.firing`, …).
    pub event_type: Option<String>,
    /// For this console's note that the team refused a change: what, so it can be redone.
    pub refused: Option<RefusedChange>,
    /// A change made here that the team refused (someone changed the field first): it
    /// stays on this console's timeline only, and did not take effect.
    pub not_applied: bool,
}

/// A change this console made that the team server refused because someone changed the
/// field first (TEAM.md): the window offers to make it again on the current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RefusedChange {
    /// `status`, `severity`, `commander` or `title`.
    pub field: String,
    /// What this console's person wanted it to be.
    pub wanted: Option<String>,
    /// What it is on the team, and who set it.
    pub current: Option<String>,
    pub by: String,
}

/// What an engineer fills in to open an incident by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NewIncident {
    pub title: String,
    pub severity: Severity,
    pub service: Option<String>,
    pub cluster_id: Option<i64>,
}

/// What the incident rules decided for one event: plain data the store carries out.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The incident key, when the event is about a service.
    pub service: Option<String>,
    /// A critical signal: opens an incident (or raises the open one's severity).
    pub signal: Option<Signal>,
    /// Text for a timeline entry when the event attaches to an incident.
    pub entry: Option<String>,
    /// The anomaly detector's finding.
    pub anomaly: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub severity: Severity,
    pub title: String,
    /// Which rule fired, e.g. `alert:HighErrorRate`.
    pub rule: String,
}

/// The longest incident title the store keeps (its CHECK says 1 to 200 characters).
pub const TITLE_MAX_CHARS: usize = 200;

/// Makes text from outside (an alert's summary, a typed title) fit to be an incident
/// title: control characters removed, runs of whitespace made one space, trimmed, cut to
/// [`TITLE_MAX_CHARS`]. None when nothing printable is left.
pub fn clean_title(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(TITLE_MAX_CHARS * 4));
    let mut count = 0;
    let mut space = false;
    for c in raw.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if count + usize::from(space) + 1 > TITLE_MAX_CHARS {
            break;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves_only_forward() {
        use IncidentStatus::*;
        // A resolved incident must not silently become open again, nor may a
        // mitigated one be marked merely acknowledged: the times would lie.
        assert!(
            !Resolved.can_move_to(Open),
            "resolved → open must be refused"
        );
        assert!(
            !Mitigated.can_move_to(Acknowledged),
            "backwards must be refused"
        );
        assert!(!Open.can_move_to(Open), "a no-op change is not a change");
        assert!(Open.can_move_to(Mitigated), "skipping forward is allowed");
        assert_eq!(Open.next(), Some(Acknowledged));
        assert_eq!(Resolved.next(), None, "resolved is the last step");
    }

    #[test]
    fn text_forms_round_trip() {
        // The store keeps these as text; every variant must read back as itself.
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        for s in IncidentStatus::ALL {
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(s));
        }
        for k in EntryKind::ALL {
            assert_eq!(EntryKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn titles_from_outside_are_made_valid_or_refused() {
        assert_eq!(clean_title("  \t\n "), None, "blank text is no title");
        assert_eq!(
            clean_title("\u{0}\u{7}"),
            None,
            "control characters alone are no title"
        );
        assert_eq!(
            clean_title(" p99\u{0} over\n\n  SLO\u{1b}[31m "),
            Some("p99 over SLO [31m".to_owned()),
            "control characters go, whitespace collapses"
        );
        let long = "x".repeat(1000);
        assert_eq!(
            clean_title(&long).map(|t| t.chars().count()),
            Some(TITLE_MAX_CHARS),
            "long text is cut to what the store accepts"
        );
        let wide = "é".repeat(300);
        assert_eq!(
            clean_title(&wide).map(|t| t.chars().count()),
            Some(TITLE_MAX_CHARS)
        );
    }
}
