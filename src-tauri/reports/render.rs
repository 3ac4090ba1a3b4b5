//! The incident report as a [`Doc`]: the same sections, in the same order, for Markdown and
//! HTML. Recorded text stays raw here; each format escapes it (see `doc.rs`).

use std::fmt::Write;

use super::doc::{cell, esc_html, Block, Cell, Doc, Tone};
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

/// The error rate and p99 of the service as an inline SVG, with the key moments and the
/// actions marked.
fn chart(r: &IncidentReport) -> String {
    let (w, h, pad) = (760.0, 200.0, 30.0);
    let s: &[Sample] = &r.metrics;
    if s.len() < 2 {
        return "<p class=\"muted\">No metric samples were recorded for the chart.</p>".into();
    }
    let t0 = s[0].at.timestamp_millis() as f64;
    // The axis runs to the last sample or the last moment, whichever is later, so the
    // moments and actions after the samples end are still marked.
    let t1 = r
        .key_moments
        .iter()
        .filter_map(|k| k.at)
        .chain(r.actions.iter().map(|a| a.at))
        .map(|t| t.timestamp_millis() as f64)
        .fold(s[s.len() - 1].at.timestamp_millis() as f64, f64::max);
    let x = |t: f64| pad + (t - t0) / (t1 - t0).max(1.0) * (w - 2.0 * pad);
    let max_err = s
        .iter()
        .map(|m| m.error_rate)
        .fold(0.0, f64::max)
        .max(0.001);
    let max_p99 = s
        .iter()
        .map(|m| m.latency_p99_ms)
        .fold(0.0, f64::max)
        .max(1.0);
    let y = |v: f64, max: f64| h - pad - v / max * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&Sample) -> f64, max: f64| {
        s.iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { "L" },
                    x(m.at.timestamp_millis() as f64),
                    y(f(m), max)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Error rate and p99 latency\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\
         <path d=\"{}\" fill=\"none\" stroke=\"#c62828\" stroke-width=\"2\"/>\
         <path d=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>",
        line(&|m| m.error_rate, max_err),
        line(&|m| m.latency_p99_ms, max_p99)
    );
    let mut n = 0;
    let mut mark = |t: chrono::DateTime<chrono::Utc>, label: &str, colour: &str| {
        let tm = t.timestamp_millis() as f64;
        if tm < t0 || tm > t1 {
            return;
        }
        let xm = x(tm);
        // Labels step down, so moments close together stay readable.
        let ly = pad + 10.0 + f64::from(n % 4) * 11.0;
        n += 1;
        let _ = write!(
            svg,
            "<line x1=\"{xm:.1}\" y1=\"{pad}\" x2=\"{xm:.1}\" y2=\"{}\" stroke=\"{colour}\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"10\" fill=\"{colour}\" text-anchor=\"{}\">{}</text>",
            h - pad,
            // Near the right edge the label goes on the line's left, so it is not cut off.
            if xm > w * 0.75 { xm - 3.0 } else { xm + 3.0 },
            if xm > w * 0.75 { "end" } else { "start" },
            esc_html(label)
        );
    };
    for k in &r.key_moments {
        if let Some(t) = k.at {
            mark(t, &k.moment.replace('_', " "), "#555");
        }
    }
    for a in &r.actions {
        mark(a.at, &a.kind, "#2e7d32");
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"14\" font-size=\"11\" fill=\"#c62828\">error rate (max {:.1} %)</text>\
         <text x=\"{}\" y=\"14\" font-size=\"11\" fill=\"#1565c0\">p99 latency, dashed (max {:.0} ms)</text></svg>",
        max_err * 100.0,
        w / 2.0,
        max_p99
    );
    svg
}
