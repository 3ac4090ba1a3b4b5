//! The incident report as a [`Doc`]: the same sections, in the same order, for Markdown and
//! HTML. Recorded text stays raw here; each format escapes it (see `doc.rs`).

use super::doc::{cell, Block, Cell, Doc, Tone};
use super::{IncidentReport, Sample};

/// A duration as a reader takes it in: "45 s", "12 min 05 s", "3 h 20 min", "—" when unknown.
pub(super) fn duration(seconds: Option<i64>) -> String {
    match seconds {
        None => "—".into(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) if s < 3600 => format!("{} min {:02} s", s / 60, s % 60),
        Some(s) => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

pub(super) fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

fn verdict(recovered: Option<bool>) -> (&'static str, Tone) {
    match recovered {
        Some(true) => ("recovered", Tone::Good),
        Some(false) => ("NOT recovered", Tone::Bad),
        None => ("not verified", Tone::Bad),
    }
}

fn summary_line(r: &IncidentReport) -> String {
    let fixed = r
        .actions
        .iter()
        .find(|a| a.recovered == Some(true))
        .map(|a| a.summary.clone())
        .unwrap_or_else(|| "no verified action".into());
    let duration = r
        .figures
        .iter()
        .find(|f| f.name == "time to mitigate")
        .and_then(|f| f.seconds);
    format!(
        "{} incident on {}, {}; mitigated after {}; what fixed it: {}; root cause: {}.",
        r.incident.severity,
        r.incident.service.as_deref().unwrap_or("no service"),
        r.incident.status,
        self::duration(duration),
        fixed,
        r.review.root_cause.as_deref().unwrap_or("not yet decided")
    )
}

/// The report's document, shared by both text formats.
pub fn doc(r: &IncidentReport) -> Doc {
    let mut b = Vec::new();
    if r.incident.demo {
        b.push(Block::Notice(super::DEMO_NOTICE.into()));
    }
    b.extend([
        Block::Para(summary_line(r)),
        Block::Muted(format!(
            "Severity {} · status {} · service {} · commander {}",
            r.incident.severity,
            r.incident.status,
            r.incident.service.as_deref().unwrap_or("—"),
            r.incident.commander.as_deref().unwrap_or("—")
        )),
        Block::Heading("Figures".into()),
        Block::Table {
            head: vec!["figure", "value", "definition"],
            rows: r
                .figures
                .iter()
                .map(|f| {
                    vec![
                        f.name.as_str().into(),
                        duration(f.seconds).into(),
                        cell(&f.definition, Tone::Muted),
                    ]
                })
                .collect(),
            empty: "",
        },
        Block::Heading("Error rate and latency".into()),
        Block::Figure {
            svg: chart(r),
            alt: format!(
                "Error rate and p99 latency of {}: {} samples, key moments and actions marked",
                r.incident.service.as_deref().unwrap_or("the service"),
                r.metrics.len()
            ),
        },
        Block::Heading("Key moments".into()),
        Block::Table {
            head: vec!["moment", "time", "from"],
            rows: r
                .key_moments
                .iter()
                .map(|k| {
                    let from = match &k.edit {
                        Some(e) => format!(
                            "moved in review by {}: {} (recorded: {}, {})",
                            e.by,
                            e.reason,
                            when(k.recorded_at),
                            k.source
                        ),
                        None => k.source.clone(),
                    };
                    vec![
                        k.moment.replace('_', " ").into(),
                        when(k.at).into(),
                        cell(from, Tone::Muted),
                    ]
                })
                .collect(),
            empty: "",
        },
        Block::Heading("Actions".into()),
        Block::Table {
            head: vec!["action", "outcome", "verification", "who and why"],
            rows: r
                .actions
                .iter()
                .map(|a| {
                    let (v, tone) = if a.kind == "silence" {
                        // A silence changes notifications, not the service.
                        ("not applicable (a silence)", Tone::Plain)
                    } else {
                        verdict(a.recovered)
                    };
                    let outcome = match &a.error {
                        Some(e) => format!("{} ({e})", a.state),
                        None => a.state.clone(),
                    };
                    let detail = match (&a.verification, a.recovered) {
                        (Some(text), Some(false)) => format!("{v}: {text}"),
                        _ => v.to_owned(),
                    };
                    vec![
                        a.summary.as_str().into(),
                        outcome.into(),
                        cell(detail, tone),
                        format!(
                            "{}: {}",
                            a.confirmed_by.as_deref().unwrap_or("—"),
                            a.reason.as_deref().unwrap_or("—")
                        )
                        .into(),
                    ]
                })
                .collect(),
            empty: "No action was taken.",
        },
        Block::Heading("Review".into()),
        Block::Para(format!(
            "Root cause: {}.",
            r.review.root_cause.as_deref().unwrap_or("not yet decided")
        )),
    ]);
    if r.review.contributing_factors.is_empty() {
        b.push(Block::Muted("No contributing factors recorded.".into()));
    } else {
        b.push(Block::Para("Contributing factors:".into()));
        b.push(Block::List(r.review.contributing_factors.clone()));
    }
    b.push(Block::Table {
        head: vec!["follow-up", "owner", "due", "status"],
        rows: r
            .review
            .follow_ups
            .iter()
            .map(|f| {
                vec![
                    f.title.as_str().into(),
                    f.owner.as_str().into(),
                    f.due.as_deref().unwrap_or("—").into(),
                    cell(
                        f.status.replace('_', " "),
                        if f.status == "done" {
                            Tone::Good
                        } else {
                            Tone::Plain
                        },
                    ),
                ]
            })
            .collect(),
        empty: "No follow-ups recorded.",
    });
    b.push(Block::Heading("Signals".into()));
    b.push(Block::Para(format!(
        "Alerts: {}.",
        if r.alerts.is_empty() {
            "none".into()
        } else {
            r.alerts.join(", ")
        }
    )));
    b.push(Block::List(
        r.events_by_type
            .iter()
            .map(|(ty, n)| format!("{ty}: {n}"))
            .collect(),
    ));
    b.push(Block::Heading("Timeline".into()));
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(r.timeline.len());
    for e in &r.timeline {
        rows.push(vec![
            e.at.format("%H:%M:%S").to_string().into(),
            e.kind.as_str().into(),
            e.author.as_str().into(),
            e.text.as_str().into(),
        ]);
        for n in &e.annotations {
            rows.push(vec![
                "".into(),
                cell("↳ annotation", Tone::Muted),
                cell(&n.author, Tone::Muted),
                cell(&n.text, Tone::Muted),
            ]);
        }
    }
    b.push(Block::Table {
        head: vec!["time (UTC)", "kind", "who", "what"],
        rows,
        empty: "The timeline is empty.",
    });
    Doc {
        title: format!("Incident {}: {}", r.incident.id, r.incident.title),
        blocks: b,
        footer: format!("Generated by Firebreak at {}.", when(Some(r.generated_at))),
    }
}

pub fn markdown(r: &IncidentReport) -> String {
    doc(r).markdown()
}

pub fn html(r: &IncidentReport) -> String {
    doc(r).html()
}

/// The incident's error rate (left scale, %) and p99 latency (right scale) over time, with
/// the key moments and actions marked, drawn by `charts::over_time` like every chart.
fn chart(r: &IncidentReport) -> String {
    use super::charts::{over_time, Mark, Measure};
    let s: &[Sample] = &r.metrics;
    if s.len() < 2 {
        return "<p class=\"muted\">No metric samples were recorded for the chart.</p>".into();
    }
    let ms = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64;
    let mut marks: Vec<Mark> = r
        .key_moments
        .iter()
        .filter_map(|k| {
            Some(Mark {
                at_ms: ms(k.at.as_ref()?),
                label: k.moment.replace('_', " "),
                colour: "#555",
            })
        })
        .collect();
    marks.extend(r.actions.iter().map(|a| Mark {
        at_ms: ms(&a.at),
        label: a.kind.replace('_', " "),
        colour: "#2e7d32",
    }));
    // The axis runs to the last sample or the last moment, whichever is later, so the
    // moments and actions after the samples end are still marked.
    let end = marks
        .iter()
        .map(|m| m.at_ms)
        .fold(ms(&s[s.len() - 1].at), f64::max);
    // p99 in the unit that keeps its ticks short: ms, s from 10 s, min from 10,000 s.
    let p99_top = s.iter().map(|m| m.latency_p99_ms).fold(0.0, f64::max);
    let (p99_div, p99_unit) = match p99_top {
        v if v >= 10_000_000.0 => (60_000.0, "min"),
        v if v >= 10_000.0 => (1_000.0, "s"),
        _ => (1.0, "ms"),
    };
    let errors = Measure {
        name: "error rate (%, left scale)",
        colour: "#c62828",
        dashed: false,
        unit: "error rate (%)",
        points: s
            .iter()
            .map(|m| (ms(&m.at), m.error_rate * 100.0))
            .collect(),
    };
    let p99_name = format!("p99 latency ({p99_unit}, right scale)");
    let p99_title = format!("p99 latency ({p99_unit})");
    let p99 = Measure {
        name: &p99_name,
        colour: "#1565c0",
        dashed: true,
        unit: &p99_title,
        points: s
            .iter()
            .map(|m| (ms(&m.at), m.latency_p99_ms / p99_div))
            .collect(),
    };
    over_time("Error rate and p99 latency", &errors, &p99, &marks, end)
}
