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

use super::charts;
use super::doc::{cell, Block, Cell, Doc, Tone};
use super::render::duration;
use super::{build_with, IncidentReport};
use firebreak_store::Store;

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

/// A period `[from, to)` a summit is compared with, when not the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, TS)]
pub struct Baseline {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
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
    /// Incidents recorded from Firebreak's simulator, not a real cluster.
    pub demo_incidents: usize,
    /// The weekly charts' series, every week of the period.
    pub weeks: Vec<Week>,
    /// By root cause (incidents without one: `not yet decided`), most incidents first.
    pub root_causes: Vec<Breakdown>,
    /// By service, most incidents first.
    pub services: Vec<Breakdown>,
    /// The same figures for the period before (of the same length) or a chosen baseline.
    pub comparison: Option<Comparison>,
    pub takeaways: Vec<Takeaway>,
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
    pub demo: bool,
}

/// Incidents and the minutes they lasted, for one root cause or service.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Breakdown {
    pub name: String,
    pub incidents: usize,
    /// Sum of each incident's time to resolve (impact began → resolved), in minutes;
    /// incidents not resolved yet count as far as they have got.
    pub minutes: i64,
    pub ids: Vec<i64>,
}

/// One week of the period: the x axis of the weekly charts (weeks without incidents
/// included, so the axis is even).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Week {
    /// ISO week, `2026-W48`.
    pub week: String,
    /// Its Monday, `YYYY-MM-DD`.
    pub starts: String,
    /// Incidents opened in it by severity, critical first, every severity listed.
    pub by_severity: Vec<(String, usize)>,
    pub mean_times: MeanTimes,
    pub ids: Vec<i64>,
}

/// A root cause or contributing factor in this period against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Presence {
    pub name: String,
    pub now: usize,
    pub before: usize,
    /// `new` (only in this period), `recurring` (in both) or `gone` (only in the baseline).
    pub status: String,
}

/// The same figures for the baseline period.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Comparison {
    /// `the previous 8 weeks`, `the chosen baseline`.
    pub label: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub incidents: usize,
    pub mean_times: MeanTimes,
    pub by_severity: Vec<(String, usize)>,
    pub by_service: Vec<(String, usize)>,
    pub remediations: Vec<Remediation>,
    pub root_causes: Vec<Presence>,
    pub factors: Vec<Presence>,
}

/// A chart's one-line reading of its data.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema, TS)]
pub struct Takeaway {
    /// `mean_times`, `per_week`, `root_causes`, `services`, `remediations`.
    pub chart: String,
    pub text: String,
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

/// The summit report of the selected incidents, compared with the period of the same
/// length before them. `progress` hears (done, total) incidents.
pub async fn summit(
    store: &Store,
    selection: &Selection,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> anyhow::Result<SummitReport> {
    summit_with(store, selection, None, progress).await
}

/// As [`summit`], compared with `baseline` (`[from, to)`) when one is given.
pub async fn summit_with(
    store: &Store,
    selection: &Selection,
    baseline: Option<(DateTime<Utc>, DateTime<Utc>)>,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> anyhow::Result<SummitReport> {
    let generated_at = firebreak_common::clock::now();
    let reports = reports_of(store, selection, progress).await?;
    let mut report = aggregate(selection, &reports, generated_at);
    if let (Some(from), Some(to)) = (report.from, report.to) {
        let (b_from, b_to, label) = match baseline {
            Some((f, t)) => (f, t, "the chosen baseline".to_owned()),
            None => {
                let span = (to - from).max(chrono::Duration::days(1));
                (
                    from - span,
                    from,
                    format!("the previous {}", span_words(span)),
                )
            }
        };
        anyhow::ensure!(b_from < b_to, "the baseline period ends before it starts");
        let period = Selection::Period {
            from: b_from,
            to: b_to,
        };
        let before = reports_of(store, &period, &mut |_, _| {}).await?;
        let before = aggregate(&period, &before, generated_at);
        report.comparison = Some(compare(&report, &before, label));
    }
    report.takeaways = takeaways(&report);
    Ok(report)
}

/// "8 weeks", "10 days", "1 day".
fn span_words(span: chrono::Duration) -> String {
    let days = span.num_days().max(1);
    match days {
        d if d % 7 == 0 && d > 7 => format!("{} weeks", d / 7),
        7 => "week".into(),
        1 => "day".into(),
        d => format!("{d} days"),
    }
}

/// Every selected incident's report, oldest first, with its opening time.
async fn reports_of(
    store: &Store,
    selection: &Selection,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> anyhow::Result<Vec<(i64, IncidentReport, bool)>> {
    let chosen: Vec<firebreak_store::incident::Incident> = match selection {
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
            i.demo,
        ));
    }
    progress(total, total);
    reports.sort_by_key(|(opened, r, _)| (*opened, r.incident.id));
    reports.dedup_by_key(|(_, r, _)| r.incident.id);
    Ok(reports)
}

/// The summit's figures of `reports` (comparison and takeaways are added after).
fn aggregate(
    selection: &Selection,
    reports: &[(i64, IncidentReport, bool)],
    generated_at: DateTime<Utc>,
) -> SummitReport {
    let all: Vec<&IncidentReport> = reports.iter().map(|(_, r, _)| r).collect();
    let mut tally = Tally::default();
    let today = generated_at.format("%Y-%m-%d").to_string();
    for (opened, r, _) in reports {
        // Still open: the time so far.
        let minutes = figure(r, "time to resolve")
            .unwrap_or_else(|| (generated_at.timestamp_millis() - opened).max(0) / 1000)
            / 60;
        tally.add(*opened, r, minutes, &today);
    }
    let (selection_text, from, to) = selection_span(selection, reports);
    let weeks = week_series(from, to, &tally.weeks);
    SummitReport {
        schema: "firebreak.summit-report.v1".into(),
        selection: selection_text,
        from,
        to,
        incidents: reports
            .iter()
            .map(|(opened, r, demo)| SummitIncident {
                id: r.incident.id,
                title: r.incident.title.clone(),
                severity: r.incident.severity.clone(),
                service: r.incident.service.clone(),
                status: r.incident.status.clone(),
                root_cause: r.review.root_cause.clone(),
                opened: opened_at(*opened),
                demo: *demo,
            })
            .collect(),
        by_severity: counted(tally.by_severity),
        by_service: counted(tally.by_service),
        by_root_cause: counted(tally.by_root_cause),
        mean_times: mean_times(&all),
        trend: tally
            .weeks
            .into_iter()
            .map(|(w, rs)| (w, mean_times(&rs)))
            .collect(),
        remediations: tally
            .remediations
            .into_values()
            .map(|(mut r, times)| {
                r.mean_time_to_recovery_s = mean(&times);
                r
            })
            .collect(),
        top_alerts: first_ten(counted(tally.alerts)),
        noisiest_sources: noisiest(tally.sources),
        contributing_factors: ranked_factors(tally.factors),
        open_follow_ups: by_owner(tally.open_follow_ups),
        demo_incidents: reports.iter().filter(|(_, _, demo)| *demo).count(),
        weeks,
        root_causes: ranked(tally.causes),
        services: ranked(tally.services),
        comparison: None,
        takeaways: Vec::new(),
        generated_at,
    }
}

/// What the summit counts, incident by incident.
#[derive(Default)]
struct Tally<'a> {
    by_severity: BTreeMap<String, usize>,
    by_service: BTreeMap<String, usize>,
    by_root_cause: BTreeMap<String, usize>,
    alerts: BTreeMap<String, usize>,
    sources: BTreeMap<String, i64>,
    remediations: BTreeMap<String, (Remediation, Vec<i64>)>,
    weeks: BTreeMap<String, Vec<&'a IncidentReport>>,
    factors: BTreeMap<String, FactorCount>,
    open_follow_ups: Vec<OpenFollowUp>,
    causes: BTreeMap<String, Breakdown>,
    services: BTreeMap<String, Breakdown>,
}

impl<'a> Tally<'a> {
    /// Counts one incident, opened at `opened` (ms), that took `minutes` to resolve.
    fn add(&mut self, opened: i64, r: &'a IncidentReport, minutes: i64, today: &str) {
        let cause = r
            .review
            .root_cause
            .clone()
            .unwrap_or_else(|| "not yet decided".into());
        let service = r
            .incident
            .service
            .clone()
            .unwrap_or_else(|| "(none)".into());
        *self
            .by_severity
            .entry(r.incident.severity.clone())
            .or_insert(0) += 1;
        *self.by_service.entry(service.clone()).or_insert(0) += 1;
        *self.by_root_cause.entry(cause.clone()).or_insert(0) += 1;
        for (map, key) in [(&mut self.causes, cause), (&mut self.services, service)] {
            let b = map.entry(key.clone()).or_insert_with(|| Breakdown {
                name: key,
                incidents: 0,
                minutes: 0,
                ids: Vec::new(),
            });
            b.incidents += 1;
            b.minutes += minutes;
            b.ids.push(r.incident.id);
        }
        for a in &r.alerts {
            *self.alerts.entry(a.clone()).or_insert(0) += 1;
        }
        for (ty, n) in &r.events_by_type {
            *self.sources.entry(ty.clone()).or_insert(0) += n;
        }
        self.remediations_of(r);
        for f in &r.review.contributing_factors {
            let entry = self
                .factors
                .entry(firebreak_store::review::factor_key(f))
                .or_insert_with(|| FactorCount {
                    factor: f.clone(),
                    incidents: Vec::new(),
                });
            entry.incidents.push(r.incident.id);
        }
        self.open_follow_ups.extend(
            r.review
                .follow_ups
                .iter()
                .filter(|f| f.status != "done")
                .map(|f| OpenFollowUp {
                    owner: f.owner.clone(),
                    incident: r.incident.id,
                    title: f.title.clone(),
                    due: f.due.clone(),
                    status: f.status.clone(),
                    overdue: f.due.as_deref().is_some_and(|d| d < today),
                }),
        );
        let week = opened_at(opened).iso_week();
        self.weeks
            .entry(format!("{}-W{:02}", week.year(), week.week()))
            .or_default()
            .push(r);
    }

    /// Each action by kind: used, succeeded, verified to help, and how long from sending
    /// it to the incident's mitigation.
    fn remediations_of(&mut self, r: &IncidentReport) {
        let mitigated = moment(r, "mitigated");
        for a in &r.actions {
            let (e, recoveries) = self.remediations.entry(a.kind.clone()).or_insert_with(|| {
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
    }
}

fn opened_at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// What the report covers, in words, and its period `[from, to)`: the period asked for,
/// or from the first chosen incident's opening to the second after the last one's.
fn selection_span(
    selection: &Selection,
    reports: &[(i64, IncidentReport, bool)],
) -> (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match selection {
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
            let first = reports.first().map(|(o, _, _)| opened_at(*o));
            let last = reports
                .last()
                .map(|(o, _, _)| opened_at(*o) + chrono::Duration::seconds(1));
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
    }
}

fn first_ten<T>(mut v: Vec<T>) -> Vec<T> {
    v.truncate(10);
    v
}

/// The ten event types with the most events, most first.
fn noisiest(sources: BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut noisiest: Vec<(String, i64)> = sources.into_iter().collect();
    noisiest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    first_ten(noisiest)
}

/// Factors named in the most incidents first.
fn ranked_factors(factors: BTreeMap<String, FactorCount>) -> Vec<FactorCount> {
    let mut v: Vec<FactorCount> = factors.into_values().collect();
    v.sort_by(|a, b| {
        b.incidents
            .len()
            .cmp(&a.incidents.len())
            .then_with(|| a.factor.cmp(&b.factor))
    });
    v
}

/// Follow-ups by owner, then the soonest due (none last), then the incident.
fn by_owner(mut follow_ups: Vec<OpenFollowUp>) -> Vec<OpenFollowUp> {
    follow_ups.sort_by(|a, b| {
        (a.owner.to_lowercase(), a.due.is_none(), &a.due, a.incident).cmp(&(
            b.owner.to_lowercase(),
            b.due.is_none(),
            &b.due,
            b.incident,
        ))
    });
    follow_ups
}

/// Causes or services with the most incidents first, then the most minutes.
fn ranked(map: BTreeMap<String, Breakdown>) -> Vec<Breakdown> {
    let mut v: Vec<Breakdown> = map.into_values().collect();
    v.sort_by(|a, b| {
        (b.incidents, b.minutes)
            .cmp(&(a.incidents, a.minutes))
            .then_with(|| a.name.cmp(&b.name))
    });
    v
}

/// Reads one mean time.
type MeanTime = fn(&MeanTimes) -> Option<i64>;

/// The four mean times by name, in the order the charts and tables show them.
const MEAN_TIMES: [(&str, MeanTime); 4] = [
    ("MTTD", |m| m.mttd_s),
    ("MTTA", |m| m.mtta_s),
    ("MTTM", |m| m.mttm_s),
    ("MTTR", |m| m.mttr_s),
];

/// The severities, most severe first: the stacks of the weekly chart.
const SEVERITIES: [&str; 4] = ["critical", "major", "minor", "info"];

fn week_key(t: DateTime<Utc>) -> String {
    let w = t.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Every week from the one `from` falls in to the one before `to`, with its incidents.
fn week_series(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    weeks: &BTreeMap<String, Vec<&IncidentReport>>,
) -> Vec<Week> {
    let (Some(from), Some(to)) = (from, to) else {
        return Vec::new();
    };
    let day = from.date_naive();
    let mut monday = day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()));
    let mut out = Vec::new();
    // At most a few years of weeks: a longer period is still charted, by its first 260.
    while monday.and_time(chrono::NaiveTime::MIN).and_utc() < to && out.len() < 260 {
        let start = monday.and_time(chrono::NaiveTime::MIN).and_utc();
        let key = week_key(start);
        let rs: Vec<&IncidentReport> = weeks.get(&key).cloned().unwrap_or_default();
        out.push(Week {
            by_severity: SEVERITIES
                .iter()
                .map(|sev| {
                    (
                        (*sev).to_owned(),
                        rs.iter().filter(|r| r.incident.severity == *sev).count(),
                    )
                })
                .collect(),
            mean_times: mean_times(&rs),
            ids: rs.iter().map(|r| r.incident.id).collect(),
            week: key,
            starts: monday.format("%Y-%m-%d").to_string(),
        });
        monday += chrono::Duration::days(7);
    }
    out
}

/// Root causes or factors in both periods, by name: new, recurring or gone.
fn presence(now: &[(String, usize)], before: &[(String, usize)]) -> Vec<Presence> {
    let mut all = BTreeMap::<String, (usize, usize)>::new();
    for (k, n) in now {
        all.entry(k.clone()).or_default().0 += n;
    }
    for (k, n) in before {
        all.entry(k.clone()).or_default().1 += n;
    }
    let mut v: Vec<Presence> = all
        .into_iter()
        .map(|(name, (now, before))| Presence {
            status: match (now, before) {
                (_, 0) => "new",
                (0, _) => "gone",
                _ => "recurring",
            }
            .into(),
            name,
            now,
            before,
        })
        .collect();
    v.sort_by(|a, b| {
        (b.now, b.before)
            .cmp(&(a.now, a.before))
            .then_with(|| a.name.cmp(&b.name))
    });
    v
}

fn factor_counts(s: &SummitReport) -> Vec<(String, usize)> {
    s.contributing_factors
        .iter()
        .map(|f| (f.factor.clone(), f.incidents.len()))
        .collect()
}

fn compare(now: &SummitReport, before: &SummitReport, label: String) -> Comparison {
    let causes = |s: &SummitReport| -> Vec<(String, usize)> {
        s.by_root_cause
            .iter()
            .filter(|(k, _)| k != "not yet decided")
            .cloned()
            .collect()
    };
    Comparison {
        label,
        from: before.from.unwrap_or_default(),
        to: before.to.unwrap_or_default(),
        incidents: before.incidents.len(),
        mean_times: before.mean_times.clone(),
        by_severity: before.by_severity.clone(),
        by_service: before.by_service.clone(),
        remediations: before.remediations.clone(),
        root_causes: presence(&causes(now), &causes(before)),
        factors: presence(&factor_counts(now), &factor_counts(before)),
    }
}

/// "14 min", "2 h 05 min", "40 s": a figure as a takeaway says it.
fn short(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", (s + 30) / 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600 + 30) / 60),
    }
}

/// One line per chart, computed from its data.
fn takeaways(s: &SummitReport) -> Vec<Takeaway> {
    let mut out = Vec::new();
    let mut say = |chart: &str, text: String| {
        out.push(Takeaway {
            chart: chart.into(),
            text,
        })
    };
    // Mean times: the figure that moved most between the first and the last week with it.
    let moves: Vec<(&str, i64, i64)> = MEAN_TIMES
        .iter()
        .filter_map(|(name, get)| {
            let v: Vec<i64> = s.weeks.iter().filter_map(|w| get(&w.mean_times)).collect();
            (v.len() >= 2).then(|| (*name, v[0], v[v.len() - 1]))
        })
        .collect();
    // The (at most two) figures that moved most, by at least half a minute.
    let mut moved: Vec<&(&str, i64, i64)> = moves
        .iter()
        .filter(|(_, first, last)| (last - first).abs() >= 30)
        .collect();
    moved.sort_by_key(|(name, first, last)| (std::cmp::Reverse((last - first).abs()), *name));
    let phrase = |(name, first, last): &(&str, i64, i64)| {
        format!(
            "{name} {} from {} to {}",
            if last < first { "fell" } else { "rose" },
            short(*first),
            short(*last)
        )
    };
    say(
        "mean_times",
        match moved.as_slice() {
            [] if moves.is_empty() => "Too few weeks with incidents to show a trend.".into(),
            [] => "Mean times held within half a minute over the period.".into(),
            [one] => format!(
                "{} over the period (first week with incidents to the last).",
                phrase(one)
            ),
            [one, two, ..] => format!(
                "{} and {} over the period (first week with incidents to the last).",
                phrase(one),
                // "…and MTTM from 10 min to 6 min" when both moved the same way.
                if (one.2 < one.1) == (two.2 < two.1) {
                    phrase(two).replacen(" fell from", " from", 1).replacen(
                        " rose from",
                        " from",
                        1,
                    )
                } else {
                    phrase(two)
                }
            ),
        },
    );
    let total = s.incidents.len();
    let critical = s
        .by_severity
        .iter()
        .find(|(k, _)| k == "critical")
        .map_or(0, |(_, n)| *n);
    let busiest = s
        .weeks
        .iter()
        .max_by_key(|w| (w.ids.len(), std::cmp::Reverse(w.week.clone())));
    say(
        "per_week",
        match busiest {
            Some(w) if total > 0 => format!(
                "{total} incidents in {} weeks ({:.1} a week), {critical} of them critical; the busiest week was {} with {}.",
                s.weeks.len(),
                total as f64 / s.weeks.len().max(1) as f64,
                w.week,
                w.ids.len()
            ),
            _ => "No incidents in the period.".into(),
        },
    );
    for (chart, what, list) in [
        ("root_causes", "caused", &s.root_causes),
        ("services", "had", &s.services),
    ] {
        let Some(top) = list.first() else {
            say(chart, "No incidents in the period.".into());
            continue;
        };
        let mut text = format!(
            "{} {what} the most incidents ({} of {total}, {} incident-minutes)",
            top.name, top.incidents, top.minutes
        );
        if let Some(longest) = list
            .iter()
            .max_by_key(|b| (b.minutes, std::cmp::Reverse(b.name.clone())))
        {
            if longest.name != top.name {
                text.push_str(&format!(
                    "; {} cost the most time ({} incident-minutes)",
                    longest.name, longest.minutes
                ));
            }
        }
        text.push('.');
        say(chart, text);
    }
    let mut used: Vec<&Remediation> = s.remediations.iter().filter(|r| r.used > 0).collect();
    used.sort_by(|a, b| b.used.cmp(&a.used).then_with(|| a.kind.cmp(&b.kind)));
    say(
        "remediations",
        if used.is_empty() {
            "No remediation was used in the period.".into()
        } else {
            let parts: Vec<String> = used
                .iter()
                .take(3)
                .map(|r| {
                    format!(
                        "{} helped {} of {} times{}",
                        r.kind.replace('_', " "),
                        r.verified_recovered,
                        r.used,
                        r.mean_time_to_recovery_s
                            .map(|t| format!(" (recovery in {} on average)", short(t)))
                            .unwrap_or_default()
                    )
                })
                .collect();
            format!("Verified by the console: {}.", parts.join("; "))
        },
    );
    out
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

/// A figure's change against the baseline: "▼ 57 %" (fewer, better, for times and
/// counts alike), "▲ 20 %", "no change", or "—" without both.
fn change(now: Option<i64>, before: Option<i64>) -> Cell {
    match (now, before) {
        (Some(n), Some(b)) if n == b => cell("no change", Tone::Muted),
        (Some(n), Some(0)) => cell(format!("▲ from 0 to {n}"), Tone::Bad),
        (Some(n), Some(b)) => {
            let pct = ((n - b) as f64 / b as f64 * 100.0).round() as i64;
            if n < b {
                cell(format!("▼ {} %", -pct), Tone::Good)
            } else {
                cell(format!("▲ {pct} %"), Tone::Bad)
            }
        }
        _ => cell("—", Tone::Muted),
    }
}

fn takeaway<'a>(s: &'a SummitReport, chart: &str) -> Option<&'a Takeaway> {
    s.takeaways.iter().find(|t| t.chart == chart)
}

/// The charts' series: each drawn from the same figures as the tables beside it.
fn minutes(v: Option<i64>) -> Option<f64> {
    v.map(|s| (s as f64 / 60.0 * 10.0).round() / 10.0)
}

fn mean_times_chart(s: &SummitReport) -> String {
    let weeks: Vec<String> = s.weeks.iter().map(|w| w.week.clone()).collect();
    let series: Vec<charts::Series> = MEAN_TIMES
        .into_iter()
        .enumerate()
        .map(|(i, (name, get))| charts::Series {
            name,
            colour: charts::PALETTE[i],
            values: s
                .weeks
                .iter()
                .map(|w| minutes(get(&w.mean_times)))
                .collect(),
        })
        .collect();
    charts::lines("Mean times week by week", &weeks, &series, "minutes")
}

fn per_week_chart(s: &SummitReport) -> String {
    let weeks: Vec<String> = s.weeks.iter().map(|w| w.week.clone()).collect();
    let colours = ["#b71c1c", "#e69f00", "#56b4e9", "#999999"];
    let series: Vec<charts::Series> = SEVERITIES
        .iter()
        .zip(colours)
        .enumerate()
        .map(|(i, (sev, colour))| charts::Series {
            name: sev,
            colour,
            values: s
                .weeks
                .iter()
                .map(|w| w.by_severity.get(i).map(|(_, n)| *n as f64))
                .collect(),
        })
        .collect();
    charts::stacked(
        "Incidents per week by severity",
        &weeks,
        &series,
        "incidents",
    )
}

fn breakdown_charts(title: &str, list: &[Breakdown]) -> [Block; 2] {
    let names: Vec<String> = list.iter().map(|b| b.name.clone()).collect();
    let incidents = [charts::Series {
        name: "incidents",
        colour: charts::PALETTE[0],
        values: list.iter().map(|b| Some(b.incidents as f64)).collect(),
    }];
    let minutes = [charts::Series {
        name: "incident-minutes",
        colour: charts::PALETTE[1],
        values: list.iter().map(|b| Some(b.minutes as f64)).collect(),
    }];
    [
        Block::Figure {
            svg: charts::bars(
                &format!("Incidents {title}"),
                &names,
                &incidents,
                "incidents",
            ),
            alt: format!("Incidents {title}"),
        },
        Block::Figure {
            svg: charts::bars(
                &format!("Incident-minutes {title}"),
                &names,
                &minutes,
                "minutes (impact began to resolved, summed)",
            ),
            alt: format!("Incident-minutes {title}"),
        },
    ]
}

fn remediations_chart(s: &SummitReport) -> String {
    let kinds: Vec<String> = s
        .remediations
        .iter()
        .map(|r| r.kind.replace('_', " "))
        .collect();
    let series = [
        charts::Series {
            name: "used",
            colour: charts::PALETTE[0],
            values: s.remediations.iter().map(|r| Some(r.used as f64)).collect(),
        },
        charts::Series {
            name: "verified to help",
            colour: charts::PALETTE[2],
            values: s
                .remediations
                .iter()
                .map(|r| Some(r.verified_recovered as f64))
                .collect(),
        },
    ];
    charts::bars(
        "Remediations: used and verified to help",
        &kinds,
        &series,
        "times",
    )
}

/// The summit's document, shared by both text formats.
/// The summit report as a document: the sections in order, each built by its own
/// function below.
pub fn doc(s: &SummitReport) -> Doc {
    let mut blocks = Vec::new();
    intro_section(s, &mut blocks);
    mean_times_section(s, &mut blocks);
    per_week_section(s, &mut blocks);
    root_causes_section(s, &mut blocks);
    services_section(s, &mut blocks);
    severities_section(s, &mut blocks);
    remediations_section(s, &mut blocks);
    factors_section(s, &mut blocks);
    follow_ups_and_signals_section(s, &mut blocks);
    Doc {
        title: format!("Incident summit: {}", s.selection),
        blocks,
        footer: format!(
            "Generated by Firebreak at {}.",
            s.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    }
}

/// A section that is a heading and a table.
fn table(title: &str, head: Vec<&'static str>, rows: Vec<Vec<Cell>>) -> [Block; 2] {
    [
        Block::Heading(title.into()),
        Block::Table {
            head,
            rows,
            empty: "None.",
        },
    ]
}

/// What the chart `chart` says, as a paragraph (an empty line when it says nothing).
fn said(s: &SummitReport, chart: &str) -> Block {
    takeaway(s, chart)
        .map(|t| Block::Para(t.text.clone()))
        .unwrap_or(Block::Muted(String::new()))
}

/// The demo notice, how many incidents and what they are compared with.
fn intro_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    if s.demo_incidents > 0 {
        blocks.push(Block::Notice(format!(
            "{} of these {} incidents are demo data: recorded from Firebreak's simulated fleet \
             (the demo cluster or `firebreak demo history`), not from a real cluster.",
            s.demo_incidents,
            s.incidents.len()
        )));
    }
    blocks.push(Block::Para(format!(
        "{} incidents. {DEFINITIONS}",
        s.incidents.len()
    )));
    if let Some(b) = base {
        blocks.push(Block::Muted(format!(
            "Every figure is compared with {} ({} to {}): {} incidents then.",
            b.label,
            b.from.format("%Y-%m-%d"),
            (b.to - chrono::Duration::seconds(1)).format("%Y-%m-%d"),
            b.incidents
        )));
    }
}

/// Mean times: the chart, what it says, and the table against the comparison.
fn mean_times_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    blocks.push(Block::Heading("Mean times".into()));
    blocks.push(Block::Figure {
        svg: mean_times_chart(s),
        alt: "MTTD, MTTA, MTTM and MTTR week by week, in minutes".into(),
    });
    blocks.push(said(s, "mean_times"));
    let figures: [(&str, Option<i64>, Option<i64>); 5] = [
        (
            "incidents",
            Some(s.incidents.len() as i64),
            base.map(|b| b.incidents as i64),
        ),
        (
            "MTTD",
            s.mean_times.mttd_s,
            base.and_then(|b| b.mean_times.mttd_s),
        ),
        (
            "MTTA",
            s.mean_times.mtta_s,
            base.and_then(|b| b.mean_times.mtta_s),
        ),
        (
            "MTTM",
            s.mean_times.mttm_s,
            base.and_then(|b| b.mean_times.mttm_s),
        ),
        (
            "MTTR",
            s.mean_times.mttr_s,
            base.and_then(|b| b.mean_times.mttr_s),
        ),
    ];
    blocks.push(Block::Table {
        head: vec!["figure", "this period", "before", "change"],
        rows: figures
            .iter()
            .map(|(name, now, before)| {
                let show = |v: Option<i64>| {
                    if *name == "incidents" {
                        v.map(|n| n.to_string()).unwrap_or_else(|| "—".into())
                    } else {
                        duration(v)
                    }
                };
                vec![
                    (*name).into(),
                    show(*now).into(),
                    show(*before).into(),
                    change(*now, *before),
                ]
            })
            .collect(),
        empty: "None.",
    });
}

/// Incidents per week: the chart and the trend by week.
fn per_week_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    blocks.push(Block::Heading("Incidents per week".into()));
    blocks.push(Block::Figure {
        svg: per_week_chart(s),
        alt: "Incidents per week, stacked by severity".into(),
    });
    blocks.push(said(s, "per_week"));
    blocks.extend(table(
        "Trend by week",
        vec!["week", "incidents", "MTTD", "MTTA", "MTTM", "MTTR"],
        s.weeks
            .iter()
            .map(|w| {
                std::iter::once(w.week.as_str().into())
                    .chain(means_row(&w.mean_times))
                    .collect()
            })
            .collect(),
    ));
}

/// By root cause: the charts, what they say, the table.
fn root_causes_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    blocks.push(Block::Heading("By root cause".into()));
    blocks.extend(breakdown_charts("by root cause", &s.root_causes));
    blocks.push(said(s, "root_causes"));
    let status_of = |name: &str| -> Cell {
        match base.and_then(|b| b.root_causes.iter().find(|p| p.name == name)) {
            Some(p) if p.status == "new" => cell("new", Tone::Bad),
            Some(p) => cell(format!("{} ({} before)", p.status, p.before), Tone::Plain),
            None if name == "not yet decided" => cell("", Tone::Muted),
            None => cell("—", Tone::Muted),
        }
    };
    let mut cause_rows: Vec<Vec<Cell>> = s
        .root_causes
        .iter()
        .map(|b| {
            vec![
                b.name.as_str().into(),
                b.incidents.to_string().into(),
                b.minutes.to_string().into(),
                status_of(&b.name),
                ids(&b.ids).into(),
            ]
        })
        .collect();
    if let Some(b) = base {
        for gone in b.root_causes.iter().filter(|p| p.status == "gone") {
            cause_rows.push(vec![
                gone.name.as_str().into(),
                "0".into(),
                "0".into(),
                cell(format!("gone ({} before)", gone.before), Tone::Good),
                "".into(),
            ]);
        }
    }
    blocks.push(Block::Table {
        head: vec![
            "root cause",
            "incidents",
            "incident-minutes",
            "against the baseline",
            "which",
        ],
        rows: cause_rows,
        empty: "None.",
    });
}

/// By service: the charts, what they say, the table.
fn services_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    blocks.push(Block::Heading("By service".into()));
    blocks.extend(breakdown_charts("by service", &s.services));
    blocks.push(said(s, "services"));
    blocks.push(Block::Table {
        head: vec![
            "service",
            "incidents",
            "before",
            "incident-minutes",
            "which",
        ],
        rows: s
            .services
            .iter()
            .map(|b| {
                let before = base.map(|c| {
                    c.by_service
                        .iter()
                        .find(|(k, _)| *k == b.name)
                        .map_or(0, |(_, n)| *n)
                });
                vec![
                    b.name.as_str().into(),
                    b.incidents.to_string().into(),
                    before
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "—".into())
                        .into(),
                    b.minutes.to_string().into(),
                    ids(&b.ids).into(),
                ]
            })
            .collect(),
        empty: "None.",
    });
}

/// By severity.
fn severities_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    blocks.extend(table(
        "By severity",
        vec!["severity", "incidents", "before"],
        s.by_severity
            .iter()
            .map(|(k, n)| {
                let before = base
                    .and_then(|b| b.by_severity.iter().find(|(bk, _)| bk == k))
                    .map_or(0, |(_, n)| *n);
                vec![
                    k.as_str().into(),
                    n.to_string().into(),
                    base.map(|_| before.to_string())
                        .unwrap_or_else(|| "—".into())
                        .into(),
                ]
            })
            .collect(),
    ));
}

/// Remediations: used, succeeded, verified to help, against the comparison.
fn remediations_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    blocks.push(Block::Heading("Remediations".into()));
    blocks.push(Block::Figure {
        svg: remediations_chart(s),
        alt: "Remediations: times used and times verified to help".into(),
    });
    blocks.push(said(s, "remediations"));
    blocks.push(Block::Table {
        head: vec![
            "action",
            "used",
            "succeeded",
            "verified recovered",
            "mean time to recovery",
            "before: used, helped",
        ],
        rows: s
            .remediations
            .iter()
            .map(|r| {
                let before = base
                    .and_then(|b| b.remediations.iter().find(|x| x.kind == r.kind))
                    .map(|x| format!("{}, {}", x.used, x.verified_recovered))
                    .unwrap_or_else(|| {
                        if base.is_some() {
                            "0, 0".into()
                        } else {
                            "—".into()
                        }
                    });
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
                    before.into(),
                ]
            })
            .collect(),
        empty: "None.",
    });
}

/// Recurring contributing factors, and those named once.
fn factors_section(s: &SummitReport, blocks: &mut Vec<Block>) {
    let base = s.comparison.as_ref();
    let factor_status = |name: &str| -> Cell {
        match base.and_then(|b| b.factors.iter().find(|p| p.name == name)) {
            Some(p) if p.status == "new" => cell("new", Tone::Bad),
            Some(p) => cell(format!("{} ({} before)", p.status, p.before), Tone::Plain),
            None => cell("—", Tone::Muted),
        }
    };
    let recurring: Vec<&FactorCount> = s
        .contributing_factors
        .iter()
        .filter(|f| f.incidents.len() > 1)
        .collect();
    blocks.extend(table(
        "Recurring contributing factors",
        vec!["factor", "incidents", "which", "against the baseline"],
        recurring
            .iter()
            .map(|f| {
                vec![
                    f.factor.as_str().into(),
                    f.incidents.len().to_string().into(),
                    ids(&f.incidents).into(),
                    factor_status(&f.factor),
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
    if let Some(b) = base {
        let gone: Vec<String> = b
            .factors
            .iter()
            .filter(|p| p.status == "gone")
            .map(|p| format!("{} ({} before)", p.name, p.before))
            .collect();
        if !gone.is_empty() {
            blocks.push(Block::Muted(format!(
                "Gone since {}: {}.",
                b.label,
                gone.join("; ")
            )));
        }
    }
}

/// Open follow-ups by owner, the most frequent alerts, the noisiest sources, and every incident.
fn follow_ups_and_signals_section(s: &SummitReport, blocks: &mut Vec<Block>) {
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
                    if i.demo {
                        format!("{} (demo)", i.id).into()
                    } else {
                        i.id.to_string().into()
                    },
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
