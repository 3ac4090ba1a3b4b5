//! The summit report: many incidents at once, for the engineering review. Built from the
//! same per-incident reports (so its figures mean exactly what theirs do), then
//! aggregated: by severity, service and root cause, mean times with their trend week by
//! week, which remediations worked, the most frequent alerts and the noisiest sources,
//! the contributing factors that recur and the follow-ups still open, by owner.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::doc::{cell, Block, Cell, Doc, Tone};
use super::render::duration;
use super::{build_with, IncidentReport};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct MeanTimes {
    /// Mean seconds, over the incidents that have the figure.
    pub mttd_s: Option<i64>,
    pub mtta_s: Option<i64>,
    pub mttm_s: Option<i64>,
    pub mttr_s: Option<i64>,
    pub incidents: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Remediation {
    /// `rollback`, `failover`, `silence` or a rollout lever (`pause_rollout`,
    /// `resume_rollout`, `abort_rollout`, `promote_rollout`).
    pub kind: String,
    pub used: usize,
    pub succeeded: usize,
    pub verified_recovered: usize,
    /// Mean seconds from the request being sent to the incident being mitigated, over the
    /// actions whose verification showed recovery.
    pub mean_time_to_recovery_s: Option<i64>,
}

/// A contributing factor and the incidents that named it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct FactorCount {
    pub factor: String,
    pub incidents: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct OpenFollowUp {
    pub owner: String,
    pub incident: i64,
    pub title: String,
    pub due: Option<String>,
    /// `open` or `in_progress`.
    pub status: String,
    /// Due before the day the report was made.
    pub overdue: bool,
}

/// Which incidents a summit covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", tag = "by")]
pub enum Selection {
    /// Every incident opened in `[from, to)`.
    Period {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// These incidents, wherever they fall in time.
    Incidents { ids: Vec<i64> },
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct SummitReport {
    /// `firebreak.summit-report.v1`.
    pub schema: String,
    /// How the incidents were chosen, in words.
    pub selection: String,
    /// The period covered: the one asked for, or the chosen incidents' first and last opening.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub incidents: Vec<SummitIncident>,
    pub by_severity: Vec<(String, usize)>,
    pub by_service: Vec<(String, usize)>,
    /// By root-cause category; incidents without one count as `not yet decided`.
    pub by_root_cause: Vec<(String, usize)>,
    pub mean_times: MeanTimes,
    /// Mean times per ISO week (`2026-W48`), oldest first.
    pub trend: Vec<(String, MeanTimes)>,
    pub remediations: Vec<Remediation>,
    /// Alerts by how many incidents they fired in.
    pub top_alerts: Vec<(String, usize)>,
    /// Event types by how many events they contributed.
    pub noisiest_sources: Vec<(String, i64)>,
    /// Every contributing factor named, the most recurrent first (spellings that differ
    /// only in case and spacing count as one).
    pub contributing_factors: Vec<FactorCount>,
    /// Follow-ups not done yet, by owner, then due date.
    pub open_follow_ups: Vec<OpenFollowUp>,
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct SummitIncident {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub service: Option<String>,
    pub status: String,
    pub root_cause: Option<String>,
    pub opened: DateTime<Utc>,
}

fn figure(r: &IncidentReport, name: &str) -> Option<i64> {
    r.figures
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.seconds)
}

fn mean(v: &[i64]) -> Option<i64> {
    (!v.is_empty()).then(|| v.iter().sum::<i64>() / v.len() as i64)
}

fn mean_times(reports: &[&IncidentReport]) -> MeanTimes {
    let of = |name: &str| {
        let v: Vec<i64> = reports.iter().filter_map(|r| figure(r, name)).collect();
        mean(&v)
    };
    MeanTimes {
        mttd_s: of("time to detect"),
        mtta_s: of("time to acknowledge"),
        mttm_s: of("time to mitigate"),
        mttr_s: of("time to resolve"),
        incidents: reports.len(),
    }
}

fn counted(map: BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn moment(r: &IncidentReport, name: &str) -> Option<DateTime<Utc>> {
    r.key_moments
        .iter()
        .find(|k| k.moment == name)
        .and_then(|k| k.at)
}

/// The summit report of the selected incidents. `progress` hears (done, total) incidents.
pub async fn summit(
    store: &Store,
    selection: &Selection,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> anyhow::Result<SummitReport> {
    let chosen: Vec<crate::incident::Incident> = match selection {
        Selection::Period { from, to } => store
            .incidents()
            .await?
            .into_iter()
            .filter(|i| {
                i.opened_ms >= from.timestamp_millis() && i.opened_ms < to.timestamp_millis()
            })
            .collect(),
        Selection::Incidents { ids } => {
            anyhow::ensure!(!ids.is_empty(), "choose at least one incident");
            let mut v = Vec::new();
            for id in ids {
                v.push(store.incident(*id).await?);
            }
            v
        }
    };
    let total = chosen.len() as u64;
    let mut reports = Vec::new();
    for (n, i) in chosen.iter().enumerate() {
        progress(n as u64, total);
        reports.push((
            i.opened_ms,
            build_with(store, i.id, false, &mut |_| {}).await?,
        ));
    }
    progress(total, total);
    reports.sort_by_key(|(opened, r)| (*opened, r.incident.id));
    reports.dedup_by_key(|(_, r)| r.incident.id);
    let all: Vec<&IncidentReport> = reports.iter().map(|(_, r)| r).collect();
    let generated_at = crate::clock::now();
    let today = generated_at.format("%Y-%m-%d").to_string();

    let mut by_severity = BTreeMap::new();
    let mut by_service = BTreeMap::new();
    let mut by_root_cause = BTreeMap::new();
    let mut alerts = BTreeMap::new();
    let mut sources = BTreeMap::<String, i64>::new();
    let mut remediations = BTreeMap::<String, (Remediation, Vec<i64>)>::new();
    let mut weeks = BTreeMap::<String, Vec<&IncidentReport>>::new();
    let mut factors = BTreeMap::<String, FactorCount>::new();
    let mut open_follow_ups = Vec::new();
    for (opened, r) in &reports {
        *by_severity.entry(r.incident.severity.clone()).or_insert(0) += 1;
        *by_service
            .entry(
                r.incident
                    .service
                    .clone()
                    .unwrap_or_else(|| "(none)".into()),
            )
            .or_insert(0) += 1;
        *by_root_cause
            .entry(
                r.review
                    .root_cause
                    .clone()
                    .unwrap_or_else(|| "not yet decided".into()),
            )
            .or_insert(0) += 1;
        for a in &r.alerts {
            *alerts.entry(a.clone()).or_insert(0) += 1;
        }
        for (ty, n) in &r.events_by_type {
            *sources.entry(ty.clone()).or_insert(0) += n;
        }
        let mitigated = moment(r, "mitigated");
        for a in &r.actions {
            let (e, recoveries) = remediations.entry(a.kind.clone()).or_insert_with(|| {
                (
                    Remediation {
                        kind: a.kind.clone(),
                        used: 0,
                        succeeded: 0,
                        verified_recovered: 0,
                        mean_time_to_recovery_s: None,
                    },
                    Vec::new(),
                )
            });
            e.used += 1;
            e.succeeded += usize::from(a.state == "succeeded");
            if a.recovered == Some(true) {
                e.verified_recovered += 1;
                if let (Some(sent), Some(m)) = (a.sent_at, mitigated) {
                    if m >= sent {
                        recoveries.push((m - sent).num_seconds());
                    }
                }
            }
        }
        for f in &r.review.contributing_factors {
            let entry = factors
                .entry(crate::store::review::factor_key(f))
                .or_insert_with(|| FactorCount {
                    factor: f.clone(),
                    incidents: Vec::new(),
                });
            entry.incidents.push(r.incident.id);
        }
        for f in &r.review.follow_ups {
            if f.status != "done" {
                open_follow_ups.push(OpenFollowUp {
                    owner: f.owner.clone(),
                    incident: r.incident.id,
                    title: f.title.clone(),
                    due: f.due.clone(),
                    status: f.status.clone(),
                    overdue: f.due.as_deref().is_some_and(|d| d < today.as_str()),
                });
            }
        }
        let week = DateTime::from_timestamp_millis(*opened)
            .unwrap_or_default()
            .iso_week();
        weeks
            .entry(format!("{}-W{:02}", week.year(), week.week()))
            .or_default()
            .push(r);
    }
    let mut noisiest: Vec<(String, i64)> = sources.into_iter().collect();
    noisiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    noisiest.truncate(10);
    let mut top_alerts = counted(alerts);
    top_alerts.truncate(10);
    let mut contributing_factors: Vec<FactorCount> = factors.into_values().collect();
    contributing_factors.sort_by(|a, b| {
        b.incidents
            .len()
            .cmp(&a.incidents.len())
            .then_with(|| a.factor.cmp(&b.factor))
    });
    open_follow_ups.sort_by(|a, b| {
        (a.owner.to_lowercase(), a.due.is_none(), &a.due, a.incident).cmp(&(
            b.owner.to_lowercase(),
            b.due.is_none(),
            &b.due,
            b.incident,
        ))
    });
    let opened_at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let (selection_text, from, to) = match selection {
        Selection::Period { from, to } => (
            format!(
                "incidents opened from {} to {}",
                from.format("%Y-%m-%d"),
                (*to - chrono::Duration::seconds(1)).format("%Y-%m-%d")
            ),
            Some(*from),
            Some(*to),
        ),
        Selection::Incidents { .. } => {
            let first = reports.first().map(|(o, _)| opened_at(*o));
            let last = reports.last().map(|(o, _)| opened_at(*o));
            let day = |t: Option<DateTime<Utc>>| {
                t.map(|t| t.format("%Y-%m-%d").to_string())
                    .unwrap_or_default()
            };
            (
                format!(
                    "{} chosen incidents, opened from {} to {}",
                    reports.len(),
                    day(first),
                    day(last)
                ),
                first,
                last,
            )
        }
    };
    Ok(SummitReport {
        schema: "firebreak.summit-report.v1".into(),
        selection: selection_text,
        from,
        to,
        incidents: reports
            .iter()
            .map(|(opened, r)| SummitIncident {
                id: r.incident.id,
                title: r.incident.title.clone(),
                severity: r.incident.severity.clone(),
                service: r.incident.service.clone(),
                status: r.incident.status.clone(),
                root_cause: r.review.root_cause.clone(),
                opened: opened_at(*opened),
            })
            .collect(),
        by_severity: counted(by_severity),
        by_service: counted(by_service),
        by_root_cause: counted(by_root_cause),
        mean_times: mean_times(&all),
        trend: weeks
            .into_iter()
            .map(|(w, rs)| (w, mean_times(&rs)))
            .collect(),
        remediations: remediations
            .into_values()
            .map(|(mut r, times)| {
                r.mean_time_to_recovery_s = mean(&times);
                r
            })
            .collect(),
        top_alerts,
        noisiest_sources: noisiest,
        contributing_factors,
        open_follow_ups,
        generated_at,
    })
}

/// The JSON Schema of the JSON summit report (docs/reports/summit-report.schema.json).
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SummitReport)).unwrap_or_default()
}

fn means_row(m: &MeanTimes) -> impl Iterator<Item = Cell> {
    [
        m.incidents.to_string(),
        duration(m.mttd_s),
        duration(m.mtta_s),
        duration(m.mttm_s),
        duration(m.mttr_s),
    ]
    .into_iter()
    .map(Cell::from)
}

fn pairs<N: ToString>(v: &[(String, N)]) -> Vec<Vec<Cell>> {
    v.iter()
        .map(|(k, n)| vec![k.as_str().into(), n.to_string().into()])
        .collect()
}

fn ids(v: &[i64]) -> String {
    v.iter()
        .map(|i| format!("#{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const DEFINITIONS: &str =
    "MTTD, MTTA, MTTM and MTTR are the means of each incident's time to detect \
(impact began → detected), acknowledge (detected → acknowledged), mitigate (impact began → mitigated) \
and resolve (impact began → resolved), over the incidents that have the figure; key moments moved \
in review count as moved. A remediation's time to recovery runs from its request being sent to the \
incident being mitigated, over the actions whose verification showed recovery.";

/// The summit's document, shared by both text formats.
pub fn doc(s: &SummitReport) -> Doc {
    let table = |title: &str, head: Vec<&'static str>, rows: Vec<Vec<Cell>>| {
        [
            Block::Heading(title.into()),
            Block::Table {
                head,
                rows,
                empty: "None.",
            },
        ]
    };
    let recurring: Vec<&FactorCount> = s
        .contributing_factors
        .iter()
        .filter(|f| f.incidents.len() > 1)
        .collect();
    let mut blocks = vec![Block::Para(format!(
        "{} incidents. {DEFINITIONS}",
        s.incidents.len()
    ))];
    blocks.extend(table(
        "Mean times",
        vec!["incidents", "MTTD", "MTTA", "MTTM", "MTTR"],
        vec![means_row(&s.mean_times).collect()],
    ));
    blocks.extend(table(
        "Trend by week",
        vec!["week", "incidents", "MTTD", "MTTA", "MTTM", "MTTR"],
        s.trend
            .iter()
            .map(|(w, m)| {
                std::iter::once(w.as_str().into())
                    .chain(means_row(m))
                    .collect()
            })
            .collect(),
    ));
    for (title, by, counts) in [
        ("By root cause", "root cause", &s.by_root_cause),
        ("By severity", "severity", &s.by_severity),
        ("By service", "service", &s.by_service),
    ] {
        blocks.extend(table(title, vec![by, "incidents"], pairs(counts)));
    }
    blocks.extend(table(
        "Remediations",
        vec![
            "action",
            "used",
            "succeeded",
            "verified recovered",
            "mean time to recovery",
        ],
        s.remediations
            .iter()
            .map(|r| {
                vec![
                    r.kind.as_str().into(),
                    r.used.to_string().into(),
                    r.succeeded.to_string().into(),
                    cell(
                        r.verified_recovered.to_string(),
                        if r.verified_recovered > 0 {
                            Tone::Good
                        } else {
                            Tone::Bad
                        },
                    ),
                    duration(r.mean_time_to_recovery_s).into(),
                ]
            })
            .collect(),
    ));
    blocks.extend(table(
        "Recurring contributing factors",
        vec!["factor", "incidents", "which"],
        recurring
            .iter()
            .map(|f| {
                vec![
                    f.factor.as_str().into(),
                    f.incidents.len().to_string().into(),
                    ids(&f.incidents).into(),
                ]
            })
            .collect(),
    ));
    let once: Vec<String> = s
        .contributing_factors
        .iter()
        .filter(|f| f.incidents.len() == 1)
        .map(|f| format!("{} ({})", f.factor, ids(&f.incidents)))
        .collect();
    if !once.is_empty() {
        blocks.push(Block::Muted(format!("Named once: {}.", once.join("; "))));
    }
    blocks.extend(table(
        "Open follow-ups by owner",
        vec!["owner", "follow-up", "incident", "due", "status"],
        s.open_follow_ups
            .iter()
            .map(|f| {
                vec![
                    f.owner.as_str().into(),
                    f.title.as_str().into(),
                    format!("#{}", f.incident).into(),
                    match (&f.due, f.overdue) {
                        (Some(d), true) => cell(format!("{d} (overdue)"), Tone::Bad),
                        (Some(d), false) => d.as_str().into(),
                        (None, _) => cell("—", Tone::Muted),
                    },
                    f.status.replace('_', " ").into(),
                ]
            })
            .collect(),
    ));
    blocks.extend(table(
        "Most frequent alerts",
        vec!["alert", "incidents"],
        pairs(&s.top_alerts),
    ));
    blocks.extend(table(
        "Noisiest sources",
        vec!["event type", "events"],
        pairs(&s.noisiest_sources),
    ));
    blocks.extend(table(
        "Incidents",
        vec![
            "#",
            "opened (UTC)",
            "severity",
            "service",
            "root cause",
            "status",
            "title",
        ],
        s.incidents
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string().into(),
                    i.opened.format("%Y-%m-%d %H:%M").to_string().into(),
                    i.severity.as_str().into(),
                    i.service.as_deref().unwrap_or("—").into(),
                    i.root_cause.as_deref().unwrap_or("—").into(),
                    i.status.as_str().into(),
                    i.title.as_str().into(),
                ]
            })
            .collect(),
    ));
    Doc {
        title: format!("Incident summit: {}", s.selection),
        blocks,
        footer: format!(
            "Generated by Firebreak at {}.",
            s.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    }
}

pub fn summit_markdown(s: &SummitReport) -> String {
    doc(s).markdown()
}

pub fn summit_html(s: &SummitReport) -> String {
    doc(s).html()
}

/// The summit in a format.
pub fn render(s: &SummitReport, format: super::Format) -> String {
    match format {
        super::Format::Markdown => summit_markdown(s),
        super::Format::Html => summit_html(s),
        super::Format::Json => serde_json::to_string_pretty(s).unwrap_or_default(),
    }
}
