//! Incident reports: one model built from the store (key moments, figures with their
//! definitions, the actions and whether they helped, the metric series, the timeline),
//! rendered as Markdown, self-contained HTML or JSON (with a published JSON Schema).
//! Every recorded string is escaped by the renderer of each format: an event message or a
//! note is always text, never markup.

mod render;
pub mod summit;

use std::path::Path;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

pub use render::{html, markdown};

use crate::incident::Incident;
use crate::store::actions::ActionRecord;
use crate::store::Store;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A moment of the incident's life, with where its time came from.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct KeyMoment {
    /// `impact_began`, `detected`, `acknowledged`, `mitigated` or `resolved`.
    pub moment: String,
    pub at: Option<DateTime<Utc>>,
    /// How the time was found (the recorded entry or field it comes from).
    pub source: String,
}

/// A duration with its definition.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Figure {
    pub name: String,
    pub seconds: Option<i64>,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReportAction {
    pub summary: String,
    pub kind: String,
    pub state: String,
    pub confirmed_by: Option<String>,
    pub reason: Option<String>,
    pub verification: Option<String>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReportEntry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub author: String,
    pub text: String,
}

/// One metric sample of the affected service on its primary region.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub error_rate: f64,
    pub latency_p99_ms: f64,
}

/// Everything an incident report says, in every format.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct IncidentReport {
    /// Schema of this document: `firebreak.incident-report.v1`.
    pub schema: String,
    pub incident: ReportIncident,
    pub key_moments: Vec<KeyMoment>,
    pub figures: Vec<Figure>,
    /// Events involved, by type (count).
    pub events_by_type: Vec<(String, i64)>,
    pub alerts: Vec<String>,
    pub actions: Vec<ReportAction>,
    pub metrics: Vec<Sample>,
    pub timeline: Vec<ReportEntry>,
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReportIncident {
    pub id: i64,
    pub public_id: String,
    pub title: String,
    pub service: Option<String>,
    pub severity: String,
    pub status: String,
    pub commander: Option<String>,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn span(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<i64> {
    Some((to? - from?).num_seconds().max(0))
}

/// The JSON Schema of the JSON report (docs/reports/incident-report.schema.json).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(IncidentReport)).unwrap_or_default()
}

/// Builds the report of one incident from the store.
pub async fn build(store: &Store, incident_id: i64) -> anyhow::Result<IncidentReport> {
    let incident: Incident = store.incident(incident_id).await?;
    let mut timeline = Vec::new();
    let mut after = None;
    loop {
        let page = store.timeline(incident_id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.at_ms, last.id));
        timeline.extend(page);
    }
    let actions: Vec<ActionRecord> = store.incident_actions(incident_id).await?;
    let events = store.incident_event_data(incident_id).await?;

    // Impact began: the first sign of trouble attached to the incident, by the console's
    // clock (the clock every other moment is recorded by).
    let (impact_at, impact_source) = match store.first_sign_received(incident_id).await? {
        Some((ms, body)) if ms <= incident.opened_ms => {
            (at(ms), format!("first sign on the timeline: {body}"))
        }
        _ => (
            at(incident.opened_ms),
            "no earlier sign recorded: the time it was opened".into(),
        ),
    };
    let key_moments = vec![
        KeyMoment {
            moment: "impact_began".into(),
            at: Some(impact_at),
            source: impact_source,
        },
        KeyMoment {
            moment: "detected".into(),
            at: Some(at(incident.opened_ms)),
            source: "the incident was opened".into(),
        },
        KeyMoment {
            moment: "acknowledged".into(),
            at: incident.acknowledged_ms.map(at),
            source: "status changed to acknowledged".into(),
        },
        KeyMoment {
            moment: "mitigated".into(),
            at: incident.mitigated_ms.map(at),
            source: "status changed to mitigated".into(),
        },
        KeyMoment {
            moment: "resolved".into(),
            at: incident.resolved_ms.map(at),
            source: "status changed to resolved".into(),
        },
    ];
    let m = |name: &str| {
        key_moments
            .iter()
            .find(|k| k.moment == name)
            .and_then(|k| k.at)
    };
    let figures = vec![
        Figure {
            name: "time to detect".into(),
            seconds: span(m("impact_began"), m("detected")),
            definition: "from impact began to the incident being opened".into(),
        },
        Figure {
            name: "time to acknowledge".into(),
            seconds: span(m("detected"), m("acknowledged")),
            definition: "from the incident being opened to it being acknowledged".into(),
        },
        Figure {
            name: "time to mitigate".into(),
            seconds: span(m("impact_began"), m("mitigated")),
            definition: "from impact began to the incident being marked mitigated".into(),
        },
        Figure {
            name: "time to resolve".into(),
            seconds: span(m("impact_began"), m("resolved")),
            definition: "from impact began to the incident being marked resolved".into(),
        },
    ];
    let mut by_type = std::collections::BTreeMap::<String, i64>::new();
    let mut alerts = std::collections::BTreeSet::new();
    for (ty, data) in &events {
        *by_type
            .entry(ty.trim_start_matches("dev.firebreak.").to_owned())
            .or_default() += 1;
        if ty.ends_with("alert.firing") {
            if let Some(a) = data.get("alert").and_then(|v| v.as_str()) {
                alerts.insert(a.to_owned());
            }
        }
    }
    let mut events_by_type: Vec<(String, i64)> = by_type.into_iter().collect();
    events_by_type.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let metrics = match (incident.cluster_id, incident.service.as_deref()) {
        (Some(cluster), Some(service)) => {
            let from = impact_at.timestamp_millis() - 10 * 60 * 1000;
            let to = incident.resolved_ms.unwrap_or_else(crate::store::now_ms) + 5 * 60 * 1000;
            store
                .metric_samples(cluster, service, from, to, 2_000)
                .await?
                .into_iter()
                .filter(|s| s.primary)
                .map(|s| Sample {
                    at: at(s.received_ms),
                    error_rate: s.error_rate,
                    latency_p99_ms: s.latency_p99_ms,
                })
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(IncidentReport {
        schema: "firebreak.incident-report.v1".into(),
        incident: ReportIncident {
            id: incident.id,
            public_id: incident.public_id.clone(),
            title: incident.title.clone(),
            service: incident.service.clone(),
            severity: incident.severity.as_str().into(),
            status: incident.status.as_str().into(),
            commander: incident.commander.clone(),
        },
        key_moments,
        figures,
        events_by_type,
        alerts: alerts.into_iter().collect(),
        actions: actions
            .iter()
            .filter(|a| a.state != crate::store::actions::ActionState::Proposed)
            .map(|a| ReportAction {
                summary: a.preview.summary.clone(),
                kind: crate::store::actions::kind_str(a.kind).into(),
                state: a.state.as_str().into(),
                confirmed_by: a.confirmed_by.clone(),
                reason: a.reason.clone(),
                verification: a.verification.clone(),
                error: a.error.clone(),
                // When it took effect (succeeded), else when it last changed.
                at: at(a.succeeded_ms.unwrap_or(a.updated_ms)),
            })
            .collect(),
        metrics,
        timeline: timeline
            .iter()
            .map(|e| ReportEntry {
                at: at(e.at_ms),
                kind: e.kind.as_str().into(),
                author: e.author.clone(),
                text: e.body.clone(),
            })
            .collect(),
        generated_at: Utc::now(),
    })
}

/// The report in a format.
pub fn render(report: &IncidentReport, format: Format) -> String {
    match format {
        Format::Markdown => markdown(report),
        Format::Html => html(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default(),
    }
}

/// Writes `text` to exactly `path`, atomically: a temporary file beside it, then a rename,
/// so a reader never sees half a report and a failed write leaves nothing behind.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
