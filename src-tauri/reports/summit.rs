//! The summit report: many incidents at once, for the engineering review. Built from the
//! same per-incident reports (so its figures mean exactly what theirs do), then
//! aggregated: by severity and service, mean times with their trend week by week, which
//! remediations worked, the most frequent alerts and the noisiest sources.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Datelike, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::render::{duration, esc_html, esc_md};
use super::{build, IncidentReport};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MeanTimes {
    /// Mean seconds, over the incidents that have the figure.
    pub mttd_s: Option<i64>,
    pub mtta_s: Option<i64>,
    pub mttm_s: Option<i64>,
    pub mttr_s: Option<i64>,
    pub incidents: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Remediation {
    pub kind: String,
    pub used: usize,
    pub succeeded: usize,
    pub verified_recovered: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SummitReport {
    /// `firebreak.summit-report.v1`.
    pub schema: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub incidents: Vec<SummitIncident>,
    pub by_severity: Vec<(String, usize)>,
    pub by_service: Vec<(String, usize)>,
    pub mean_times: MeanTimes,
    /// Mean times per ISO week (`2026-W48`), oldest first.
    pub trend: Vec<(String, MeanTimes)>,
    pub remediations: Vec<Remediation>,
    /// Alerts by how many incidents they fired in.
    pub top_alerts: Vec<(String, usize)>,
    /// Event types by how many events they contributed.
    pub noisiest_sources: Vec<(String, i64)>,
    pub generated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SummitIncident {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub service: Option<String>,
    pub status: String,
    pub opened: DateTime<Utc>,
}

fn figure(r: &IncidentReport, name: &str) -> Option<i64> {
    r.figures
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.seconds)
}

fn mean_times(reports: &[&IncidentReport]) -> MeanTimes {
    let mean = |name: &str| {
        let v: Vec<i64> = reports.iter().filter_map(|r| figure(r, name)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<i64>() / v.len() as i64)
    };
    MeanTimes {
        mttd_s: mean("time to detect"),
        mtta_s: mean("time to acknowledge"),
        mttm_s: mean("time to mitigate"),
        mttr_s: mean("time to resolve"),
        incidents: reports.len(),
    }
}

fn counted(map: BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut v: Vec<_> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The summit report of every incident opened in `[from, to)`.
pub async fn summit(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<SummitReport> {
    let mut reports = Vec::new();
    for i in store.incidents().await? {
        if i.opened_ms >= from.timestamp_millis() && i.opened_ms < to.timestamp_millis() {
            reports.push((i.opened_ms, build(store, i.id).await?));
        }
    }
    reports.sort_by_key(|(opened, _)| *opened);
    let all: Vec<&IncidentReport> = reports.iter().map(|(_, r)| r).collect();

    let mut by_severity = BTreeMap::new();
    let mut by_service = BTreeMap::new();
    let mut alerts = BTreeMap::new();
    let mut sources = BTreeMap::<String, i64>::new();
    let mut remediations = BTreeMap::<String, Remediation>::new();
    let mut weeks = BTreeMap::<String, Vec<&IncidentReport>>::new();
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
        for a in &r.alerts {
            *alerts.entry(a.clone()).or_insert(0) += 1;
        }
        for (ty, n) in &r.events_by_type {
            *sources.entry(ty.clone()).or_insert(0) += n;
        }
        for a in &r.actions {
            let e = remediations
                .entry(a.kind.clone())
                .or_insert_with(|| Remediation {
                    kind: a.kind.clone(),
                    used: 0,
                    succeeded: 0,
                    verified_recovered: 0,
                });
            e.used += 1;
            e.succeeded += usize::from(a.state == "succeeded");
            e.verified_recovered += usize::from(a.verification.as_deref() == Some("recovered"));
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
    Ok(SummitReport {
        schema: "firebreak.summit-report.v1".into(),
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
                opened: DateTime::from_timestamp_millis(*opened).unwrap_or_default(),
            })
            .collect(),
        by_severity: counted(by_severity),
        by_service: counted(by_service),
        mean_times: mean_times(&all),
        trend: weeks
            .into_iter()
            .map(|(w, rs)| (w, mean_times(&rs)))
            .collect(),
        remediations: remediations.into_values().collect(),
        top_alerts,
        noisiest_sources: noisiest,
        generated_at: Utc::now(),
    })
}

fn means_row(m: &MeanTimes) -> [String; 5] {
    [
        m.incidents.to_string(),
        duration(m.mttd_s),
        duration(m.mtta_s),
        duration(m.mttm_s),
        duration(m.mttr_s),
    ]
}

/// A table of the report: its title, its header, its rows.
type Section = (&'static str, Vec<&'static str>, Vec<Vec<String>>);

/// The report's tables, shared by Markdown and HTML, with every recorded string still raw
/// (each format escapes it).
fn sections(s: &SummitReport) -> Vec<Section> {
    let pairs = |v: &[(String, usize)]| {
        v.iter()
            .map(|(k, n)| vec![k.clone(), n.to_string()])
            .collect()
    };
    vec![
        (
            "Mean times",
            vec!["incidents", "MTTD", "MTTA", "MTTM", "MTTR"],
            vec![means_row(&s.mean_times).to_vec()],
        ),
        (
            "Trend by week",
            vec!["week", "incidents", "MTTD", "MTTA", "MTTM", "MTTR"],
            s.trend
                .iter()
                .map(|(w, m)| std::iter::once(w.clone()).chain(means_row(m)).collect())
                .collect(),
        ),
        (
            "By severity",
            vec!["severity", "incidents"],
            pairs(&s.by_severity),
        ),
        (
            "By service",
            vec!["service", "incidents"],
            pairs(&s.by_service),
        ),
        (
            "Remediations",
            vec!["action", "used", "succeeded", "verified recovered"],
            s.remediations
                .iter()
                .map(|r| {
                    vec![
                        r.kind.clone(),
                        r.used.to_string(),
                        r.succeeded.to_string(),
                        r.verified_recovered.to_string(),
                    ]
                })
                .collect(),
        ),
        (
            "Most frequent alerts",
            vec!["alert", "incidents"],
            pairs(&s.top_alerts),
        ),
        (
            "Noisiest sources",
            vec!["event type", "events"],
            s.noisiest_sources
                .iter()
                .map(|(k, n)| vec![k.clone(), n.to_string()])
                .collect(),
        ),
        (
            "Incidents",
            vec![
                "#",
                "opened (UTC)",
                "severity",
                "service",
                "status",
                "title",
            ],
            s.incidents
                .iter()
                .map(|i| {
                    vec![
                        i.id.to_string(),
                        i.opened.format("%Y-%m-%d %H:%M").to_string(),
                        i.severity.clone(),
                        i.service.clone().unwrap_or_default(),
                        i.status.clone(),
                        i.title.clone(),
                    ]
                })
                .collect(),
        ),
    ]
}

const DEFINITIONS: &str =
    "MTTD, MTTA, MTTM and MTTR are the means of each incident's time to detect \
(impact began → opened), acknowledge (opened → acknowledged), mitigate (impact began → mitigated) \
and resolve (impact began → resolved), over the incidents that have the figure.";

pub fn summit_markdown(s: &SummitReport) -> String {
    let mut md = format!(
        "# Incident summit: {} to {}\n\n{} incidents. {}\n",
        s.from.format("%Y-%m-%d"),
        s.to.format("%Y-%m-%d"),
        s.incidents.len(),
        DEFINITIONS
    );
    for (title, head, rows) in sections(s) {
        let _ = write!(
            md,
            "\n## {title}\n\n| {} |\n|{}\n",
            head.join(" | "),
            "---|".repeat(head.len())
        );
        if rows.is_empty() {
            let _ = writeln!(md, "| none |{}", " |".repeat(head.len() - 1));
        }
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| esc_md(c)).collect();
            let _ = writeln!(md, "| {} |", cells.join(" | "));
        }
    }
    md
}

pub fn summit_html(s: &SummitReport) -> String {
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>Incident summit</title><style>{}</style></head><body>\
         <h1>Incident summit: {} to {}</h1><p>{} incidents. {}</p>",
        super::render::CSS,
        s.from.format("%Y-%m-%d"),
        s.to.format("%Y-%m-%d"),
        s.incidents.len(),
        esc_html(DEFINITIONS)
    );
    for (title, head, rows) in sections(s) {
        let _ = write!(h, "<h2>{title}</h2><table><tr>");
        for c in &head {
            let _ = write!(h, "<th>{c}</th>");
        }
        h.push_str("</tr>");
        if rows.is_empty() {
            let _ = write!(
                h,
                "<tr><td colspan=\"{}\" class=\"muted\">none</td></tr>",
                head.len()
            );
        }
        for row in rows {
            h.push_str("<tr>");
            for c in row {
                let _ = write!(h, "<td>{}</td>", esc_html(&c));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<p class=\"muted\">Generated by Firebreak at {}.</p></body></html>",
        s.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    h
}
