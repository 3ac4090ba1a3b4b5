//! Incident reports: one model built from the store (key moments as the review left them,
//! figures with their definitions, the actions and whether they helped, the review's
//! conclusions, the metric series, the timeline with its annotations), rendered as
//! Markdown, self-contained HTML or JSON (with a published JSON Schema). Markdown and HTML
//! render one shared document (`doc.rs`), which escapes every recorded string for its
//! format: an event message or a note is always text, never markup.

pub mod charts;
pub mod doc;
mod render;
pub mod summit;

use std::path::Path;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use ts_rs::TS;

use render::{html, markdown};

use firebreak_store::actions::ActionRecord;
use firebreak_store::incident::Incident;
use firebreak_store::review::Review;
use firebreak_store::Store;

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
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct KeyMoment {
    /// `impact_began`, `detected`, `acknowledged`, `mitigated` or `resolved`.
    pub moment: String,
    /// The time in force: a reviewer's, when one moved it, else the recorded one.
    pub at: Option<DateTime<Utc>>,
    /// How the recorded time was found (the entry or field it comes from).
    pub source: String,
    /// The time found in the recorded data.
    pub recorded_at: Option<DateTime<Utc>>,
    /// The reviewer's change in force, if the moment was moved.
    pub edit: Option<MomentChange>,
}

/// Who moved a key moment in review, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct MomentChange {
    pub by: String,
    pub reason: String,
    pub edited_at: DateTime<Utc>,
}

/// A duration with its definition.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Figure {
    pub name: String,
    pub seconds: Option<i64>,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportAction {
    pub summary: String,
    pub kind: String,
    pub state: String,
    pub confirmed_by: Option<String>,
    pub reason: Option<String>,
    /// `recovered`, or what the verification found instead.
    pub verification: Option<String>,
    /// Whether the verification showed the service recovered; None when not verified.
    pub recovered: Option<bool>,
    pub error: Option<String>,
    /// When it took effect (succeeded), else when it last changed.
    pub at: DateTime<Utc>,
    /// When its request was due to go out (confirmed, plus the grace period).
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportEntry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub author: String,
    pub text: String,
    /// Reviewers' annotations on this entry, oldest first.
    pub annotations: Vec<ReportNote>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportNote {
    pub author: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// What the review concluded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportReview {
    /// The root-cause category, from the console's editable list; None until decided.
    pub root_cause: Option<String>,
    pub contributing_factors: Vec<String>,
    pub follow_ups: Vec<ReportFollowUp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportFollowUp {
    pub title: String,
    pub owner: String,
    /// YYYY-MM-DD.
    pub due: Option<String>,
    /// `open`, `in_progress` or `done`.
    pub status: String,
}

/// One metric sample of the affected service on its primary region.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub error_rate: f64,
    pub latency_p99_ms: f64,
}

/// Everything an incident report says, in every format.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
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
    pub review: ReportReview,
    pub metrics: Vec<Sample>,
    pub timeline: Vec<ReportEntry>,
    pub generated_at: DateTime<Utc>,
    /// The error budget the service had left when the incident ended (or now, while it
    /// has not), when the service has objectives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_budget: Option<ReportBudget>,
}

/// A service's objectives and the budget they had left, over the 30 days up to `at`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportBudget {
    /// The objectives in words: "99.5 % of requests; p99 ≤ 2000 ms in 99 % of minutes".
    pub objectives: String,
    /// 1 untouched, 0 spent, below 0 overspent; none when nothing was recorded.
    pub availability_left: Option<f64>,
    pub latency_left: Option<f64>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct ReportIncident {
    pub id: i64,
    pub public_id: String,
    pub title: String,
    pub service: Option<String>,
    pub severity: String,
    pub status: String,
    pub commander: Option<String>,
    /// Recorded from Firebreak's simulator, not from a real cluster.
    pub demo: bool,
}

/// What a report made from demo data says before anything else.
pub const DEMO_NOTICE: &str = "Demo data: recorded from Firebreak's simulated fleet (the demo \
cluster or `firebreak demo history`), not from a real cluster.";

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

/// How far building a report has got, for a progress bar: `done` of `total` timeline
/// entries read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// Builds the report of one incident from the store.
pub async fn build(store: &Store, incident_id: i64) -> anyhow::Result<IncidentReport> {
    build_with(store, incident_id, true, &mut |_| {}).await
}

/// Builds the report, with the timeline or without it (the review window pages the
/// timeline itself), telling `progress` after each page of entries read.
pub async fn build_with(
    store: &Store,
    incident_id: i64,
    with_timeline: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<IncidentReport> {
    let review = store.review(incident_id).await?;
    assemble(store, incident_id, &review, with_timeline, progress).await
}

/// The report of an incident whose review the caller has already read.
/// The budget the incident's service had left when the incident ended (or now), when
/// it has objectives.
async fn error_budget(store: &Store, incident: &Incident) -> anyhow::Result<Option<ReportBudget>> {
    let (Some(cluster), Some(service)) = (incident.cluster_id, incident.service.as_deref()) else {
        return Ok(None);
    };
    let Some(objective) = store.objective_of(cluster, service).await? else {
        return Ok(None);
    };
    let to = incident.resolved_ms.unwrap_or_else(firebreak_store::now_ms);
    let budget = store.budget(cluster, service, &objective, to).await?;
    let percent = |share: f64| {
        let p = share * 100.0;
        if (p - p.round()).abs() < 1e-9 {
            format!("{p:.0} %")
        } else {
            format!("{p} %")
        }
    };
    let mut objectives = format!("{} of requests", percent(objective.availability));
    if let Some(ms) = objective.latency_p99_ms {
        objectives.push_str(&format!(
            "; p99 ≤ {ms} ms in {} of minutes",
            percent(objective.latency_target)
        ));
    }
    Ok(Some(ReportBudget {
        objectives,
        availability_left: budget.availability_left,
        latency_left: budget.latency_left,
        at: at(to),
    }))
}

async fn assemble(
    store: &Store,
    incident_id: i64,
    review: &Review,
    with_timeline: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<IncidentReport> {
    let incident: Incident = store.incident(incident_id).await?;
    let timeline = if with_timeline {
        read_timeline(store, &incident, review, progress).await?
    } else {
        Vec::new()
    };
    let actions: Vec<ActionRecord> = store.incident_actions(incident_id).await?;
    let events = store.incident_event_data(incident_id).await?;
    let key_moments = key_moments(store, &incident, review).await?;
    let figures = figures(&key_moments);
    let (events_by_type, alerts) = signals(&events);
    let metrics = metrics(store, &incident, &key_moments).await?;
    let error_budget = error_budget(store, &incident).await?;
    Ok(IncidentReport {
        error_budget,
        schema: "firebreak.incident-report.v1".into(),
        incident: ReportIncident {
            id: incident.id,
            public_id: incident.public_id.clone(),
            title: incident.title.clone(),
            service: incident.service.clone(),
            severity: incident.severity.as_str().into(),
            status: incident.status.as_str().into(),
            commander: incident.commander.clone(),
            demo: incident.demo,
        },
        key_moments,
        figures,
        events_by_type,
        alerts,
        actions: actions
            .iter()
            .filter(|a| a.state != firebreak_store::actions::ActionState::Proposed)
            .map(report_action)
            .collect(),
        review: ReportReview {
            root_cause: review.root_cause.clone(),
            contributing_factors: review.factors.clone(),
            follow_ups: review
                .follow_ups
                .iter()
                .map(|f| ReportFollowUp {
                    title: f.title.clone(),
                    owner: f.owner.clone(),
                    due: f.due.clone(),
                    status: f.status.as_str().into(),
                })
                .collect(),
        },
        metrics,
        timeline,
        generated_at: firebreak_common::clock::now(),
    })
}

/// The whole timeline, page by page (saying how far it has got), each entry with the
/// review's annotations on it.
async fn read_timeline(
    store: &Store,
    incident: &Incident,
    review: &Review,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<Vec<ReportEntry>> {
    let total = incident.entry_count.max(0) as u64;
    progress(Progress { done: 0, total });
    let mut by_entry = std::collections::HashMap::<i64, Vec<ReportNote>>::new();
    for n in &review.annotations {
        by_entry.entry(n.entry_id).or_default().push(ReportNote {
            author: n.author.clone(),
            text: n.body.clone(),
            at: at(n.created_ms),
        });
    }
    let mut timeline = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .timeline_bulk(incident.id, after, firebreak_store::MAX_BULK_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.1, last.0));
        timeline.extend(
            page.into_iter()
                .map(|(id, at_ms, kind, author, body)| ReportEntry {
                    at: at(at_ms),
                    kind,
                    annotations: by_entry.remove(&id).unwrap_or_default(),
                    author,
                    text: body,
                }),
        );
        progress(Progress {
            done: timeline.len() as u64,
            total: total.max(timeline.len() as u64),
        });
    }
    Ok(timeline)
}

/// The four times between key moments, each with its definition.
fn figures(key_moments: &[KeyMoment]) -> Vec<Figure> {
    let m = |name: &str| {
        key_moments
            .iter()
            .find(|k| k.moment == name)
            .and_then(|k| k.at)
    };
    let figure = |name: &str, from: &str, to: &str, definition: &str| Figure {
        name: name.into(),
        seconds: span(m(from), m(to)),
        definition: definition.into(),
    };
    vec![
        figure(
            "time to detect",
            "impact_began",
            "detected",
            "from impact began to the incident being detected (opened)",
        ),
        figure(
            "time to acknowledge",
            "detected",
            "acknowledged",
            "from the incident being detected to it being acknowledged",
        ),
        figure(
            "time to mitigate",
            "impact_began",
            "mitigated",
            "from impact began to the incident being mitigated",
        ),
        figure(
            "time to resolve",
            "impact_began",
            "resolved",
            "from impact began to the incident being resolved",
        ),
    ]
}

/// The incident's events counted by type (most first), and the alerts that fired.
fn signals(events: &[(String, serde_json::Value)]) -> (Vec<(String, i64)>, Vec<String>) {
    let mut by_type = std::collections::BTreeMap::<String, i64>::new();
    let mut alerts = std::collections::BTreeSet::new();
    for (ty, data) in events {
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
    (events_by_type, alerts.into_iter().collect())
}

/// The service's primary-region samples over the chart's span.
async fn metrics(
    store: &Store,
    incident: &Incident,
    key_moments: &[KeyMoment],
) -> anyhow::Result<Vec<Sample>> {
    let (Some(cluster), Some(service)) = (incident.cluster_id, incident.service.as_deref()) else {
        return Ok(Vec::new());
    };
    let (from, to) = metrics_window(key_moments, incident.opened_ms);
    Ok(store
        .metric_samples(cluster, service, from, to, 2_000)
        .await?
        .into_iter()
        .filter(|s| s.primary)
        .map(|s| Sample {
            at: at(s.received_ms),
            error_rate: s.error_rate,
            latency_p99_ms: s.latency_p99_ms,
        })
        .collect())
}

fn report_action(a: &ActionRecord) -> ReportAction {
    ReportAction {
        summary: a.preview.summary.clone(),
        kind: firebreak_store::actions::kind_str(a.kind).into(),
        state: a.state.as_str().into(),
        confirmed_by: a.confirmed_by.clone(),
        reason: a.reason.clone(),
        recovered: match a.verification.as_deref() {
            Some("recovered") => Some(true),
            Some("not_recovered") => Some(false),
            // Unverified, or not yet: the report says "not verified".
            _ => None,
        },
        verification: a.verification.clone(),
        error: a.error.clone(),
        at: at(a.succeeded_ms.unwrap_or(a.updated_ms)),
        sent_at: a.send_after_ms.map(at),
    }
}

/// The span the metric chart covers: from 10 minutes before impact began to 5 minutes
/// after the incident was resolved (or now, while it is not).
pub fn metrics_window(moments: &[KeyMoment], opened_ms: i64) -> (i64, i64) {
    let moment = |name: &str| {
        moments
            .iter()
            .find(|k| k.moment == name)
            .and_then(|k| k.at)
            .map(|t| t.timestamp_millis())
    };
    let start = moment("impact_began").unwrap_or(opened_ms);
    let end = moment("resolved").unwrap_or_else(firebreak_store::now_ms);
    (start - 10 * 60 * 1000, end + 5 * 60 * 1000)
}

/// An incident's export bundle: everything recorded about it, with the metric samples
/// its chart draws on and its report in the three formats.
pub async fn bundle(
    store: &Store,
    incident_id: i64,
) -> anyhow::Result<(
    firebreak_store::bundle::BundleOut,
    firebreak_store::bundle::BundleCounts,
)> {
    use std::sync::Arc;
    // The metrics window comes from the key moments, which need no timeline; then the
    // report and the stored records are read side by side (each on its own connection).
    let summary = build_with(store, incident_id, false, &mut |_| {}).await?;
    let incident = store.incident(incident_id).await?;
    let window = metrics_window(&summary.key_moments, incident.opened_ms);
    let (report, stored) =
        tokio::join!(build(store, incident_id), store.bundle(incident_id, window));
    let report = Arc::new(report?);
    let (mut bundle, counts) = stored?;
    // The three forms of the report are rendered side by side as well.
    let text = |format: Format| {
        let report = report.clone();
        tokio::task::spawn_blocking(move || render(&report, format))
    };
    let json = {
        let report = report.clone();
        tokio::task::spawn_blocking(move || serde_json::value::to_raw_value(&*report))
    };
    let (markdown, html, json) = tokio::join!(text(Format::Markdown), text(Format::Html), json);
    bundle.reports = Some(firebreak_store::bundle::BundleReports {
        markdown: markdown?,
        html: html?,
        json: json??,
    });
    Ok((bundle, counts))
}

/// The five key moments: found in the recorded data, then moved where a reviewer moved them.
async fn key_moments(
    store: &Store,
    incident: &Incident,
    review: &Review,
) -> anyhow::Result<Vec<KeyMoment>> {
    // Impact began: the first sign of trouble attached to the incident, by the console's
    // clock (the clock every other moment is recorded by).
    let (impact_at, impact_source) = match store.first_sign_received(incident.id).await? {
        Some((ms, body)) if ms <= incident.opened_ms => {
            (at(ms), format!("first sign on the timeline: {body}"))
        }
        _ => (
            at(incident.opened_ms),
            "no earlier sign recorded: the time it was opened".into(),
        ),
    };
    let recorded: [(&str, Option<DateTime<Utc>>, String); 5] = [
        ("impact_began", Some(impact_at), impact_source),
        (
            "detected",
            Some(at(incident.opened_ms)),
            "the incident was opened".into(),
        ),
        (
            "acknowledged",
            incident.acknowledged_ms.map(at),
            "status changed to acknowledged".into(),
        ),
        (
            "mitigated",
            incident.mitigated_ms.map(at),
            "status changed to mitigated".into(),
        ),
        (
            "resolved",
            incident.resolved_ms.map(at),
            "status changed to resolved".into(),
        ),
    ];
    Ok(recorded
        .into_iter()
        .map(|(moment, recorded_at, source)| {
            let edit = review.moment_edit(moment);
            KeyMoment {
                moment: moment.into(),
                at: match edit {
                    Some(e) => e.at_ms.map(at).or(recorded_at),
                    None => recorded_at,
                },
                source,
                recorded_at,
                // An edit that put the moment back to the recorded time is history, not
                // a change in force.
                edit: edit.filter(|e| e.at_ms.is_some()).map(|e| MomentChange {
                    by: e.author.clone(),
                    reason: e.reason.clone(),
                    edited_at: at(e.edited_ms),
                }),
            }
        })
        .collect())
}

/// What the review window shows of an incident beside its timeline (which it pages
/// itself): the report without its timeline, what reviewers recorded, and the choices
/// the review's fields offer.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ReviewData {
    pub report: IncidentReport,
    pub review: Review,
    pub facets: firebreak_store::review::TimelineFacets,
    pub root_causes: Vec<String>,
    pub known_factors: Vec<firebreak_store::review::KnownFactor>,
}

pub async fn review_data(store: &Store, incident_id: i64) -> anyhow::Result<ReviewData> {
    let review = store.review(incident_id).await?;
    Ok(ReviewData {
        report: assemble(store, incident_id, &review, false, &mut |_| {}).await?,
        review,
        facets: store.timeline_facets(incident_id).await?,
        root_causes: store.root_causes().await?,
        known_factors: store.known_factors().await?,
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
    write_atomically_with(path, |f| f.write_all(text.as_bytes()))
}

/// `write_atomically` for text written piece by piece (a bundle serialized straight into
/// the file, never held whole in memory).
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
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
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        write(&mut f)?;
        f.flush()?;
        f.get_ref().sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
