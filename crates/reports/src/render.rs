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
/// Minutes between time ticks: the first of these that leaves at most 8 ticks.
const TIME_STEPS_MIN: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440];

/// The incident's error rate (left scale, %) and p99 latency (right scale, ms) over time
/// (UTC ticks below), with the key moments and actions marked by lines whose labels sit
/// in lanes above the plot: a label that would run into another goes one lane up, so
/// none overlap however close the moments are.
fn chart(r: &IncidentReport) -> String {
    use super::charts::{tick_label, ticks};
    let s: &[Sample] = &r.metrics;
    if s.len() < 2 {
        return "<p class=\"muted\">No metric samples were recorded for the chart.</p>".into();
    }
    let (w, left, right) = (760.0, 58.0, 70.0);
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
    let x = |t: f64| left + (t - t0) / (t1 - t0).max(1.0) * (w - left - right);

    // Labels of the moments and actions, in lanes: each goes in the lowest lane where it
    // does not reach the previous label's end (about 6 px a character at 10 px).
    let mut marks: Vec<(f64, String, &str)> = Vec::new();
    for k in &r.key_moments {
        if let Some(t) = k.at {
            marks.push((
                t.timestamp_millis() as f64,
                k.moment.replace('_', " "),
                "#555",
            ));
        }
    }
    for a in &r.actions {
        marks.push((
            a.at.timestamp_millis() as f64,
            a.kind.replace('_', " "),
            "#2e7d32",
        ));
    }
    marks.retain(|(t, _, _)| *t >= t0 && *t <= t1);
    marks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut lane_ends: Vec<f64> = Vec::new();
    let placed: Vec<(f64, usize, f64, &str, &str)> = marks
        .iter()
        .map(|(t, label, colour)| {
            let xm = x(*t);
            let width = 6.0 * label.chars().count() as f64 + 8.0;
            // Near the right edge the label goes on the line's left, so it is not cut off.
            let start = if xm + width > w - 4.0 { xm - width } else { xm };
            let lane = lane_ends
                .iter()
                .position(|end| *end <= start)
                .unwrap_or(lane_ends.len());
            if lane == lane_ends.len() {
                lane_ends.push(0.0);
            }
            lane_ends[lane] = start + width;
            (xm, lane, start, label.as_str(), *colour)
        })
        .collect();
    let lanes = lane_ends.len() as f64;
    let top = 26.0 + 13.0 * lanes + 6.0;
    let plot_h = 170.0;
    let bottom = top + plot_h;
    let h = bottom + 40.0;

    let err_ticks = ticks(s.iter().map(|m| m.error_rate * 100.0).fold(0.0, f64::max));
    // p99 in the unit that keeps its ticks short: ms, s from 10 s, min from 10,000 s.
    let p99_top = s.iter().map(|m| m.latency_p99_ms).fold(0.0, f64::max);
    let (p99_div, p99_unit) = match p99_top {
        v if v >= 10_000_000.0 => (60_000.0, "min"),
        v if v >= 10_000.0 => (1_000.0, "s"),
        _ => (1.0, "ms"),
    };
    let p99_ticks = ticks(p99_top / p99_div);
    let err_max = *err_ticks.last().unwrap_or(&1.0);
    let p99_max = *p99_ticks.last().unwrap_or(&1.0);
    let y = |v: f64, max: f64| bottom - v / max * plot_h;
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
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Error rate and p99 latency\" font-family=\"system-ui,sans-serif\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fff\"/>\
         <line x1=\"{left}\" y1=\"13\" x2=\"{}\" y2=\"13\" stroke=\"#c62828\" stroke-width=\"2\"/>\
         <text x=\"{}\" y=\"17\" font-size=\"11\" fill=\"#333\">error rate (%, left scale)</text>\
         <line x1=\"{}\" y1=\"13\" x2=\"{}\" y2=\"13\" stroke=\"#1565c0\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\
         <text x=\"{}\" y=\"17\" font-size=\"11\" fill=\"#333\">p99 latency ({p99_unit}, right scale)</text>",
        left + 18.0,
        left + 24.0,
        left + 190.0,
        left + 208.0,
        left + 214.0,
    );
    // Value scales: error rate on the left (with the gridlines), p99 on the right.
    for t in &err_ticks {
        let yy = y(*t, err_max);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"10\" fill=\"#c62828\" text-anchor=\"end\">{} %</text>",
            w - right,
            left - 5.0,
            yy + 3.5,
            tick_label(*t)
        );
    }
    for t in &p99_ticks {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" fill=\"#1565c0\">{} {p99_unit}</text>",
            w - right + 5.0,
            y(*t, p99_max) + 3.5,
            tick_label(*t)
        );
    }
    // The time axis: ticks on round minutes (UTC).
    let span_min = (t1 - t0) / 60_000.0;
    let step = TIME_STEPS_MIN
        .into_iter()
        .find(|m| span_min / *m as f64 <= 8.0)
        .unwrap_or(1440)
        * 60_000;
    let first = ((t0 as i64 + step - 1) / step) * step;
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#888\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#888\"/>\
         <line x1=\"{}\" y1=\"{top}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#888\"/>",
        w - right,
        w - right,
        w - right
    );
    let mut t = first;
    while (t as f64) <= t1 {
        let xx = x(t as f64);
        let label = chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.format("%H:%M").to_string())
            .unwrap_or_default();
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{bottom}\" x2=\"{xx:.1}\" y2=\"{}\" stroke=\"#888\"/>\
             <text x=\"{xx:.1}\" y=\"{}\" font-size=\"10\" fill=\"#555\" text-anchor=\"middle\">{label}</text>",
            bottom + 4.0,
            bottom + 15.0
        );
        t += step;
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#555\" text-anchor=\"middle\">time (UTC)</text>\
         <path d=\"{}\" fill=\"none\" stroke=\"#c62828\" stroke-width=\"2\"/>\
         <path d=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>",
        left + (w - left - right) / 2.0,
        bottom + 30.0,
        line(&|m| m.error_rate * 100.0, err_max),
        line(&|m| m.latency_p99_ms / p99_div, p99_max)
    );
    for (xm, lane, start, label, colour) in placed {
        let ly = top - 8.0 - 13.0 * lane as f64;
        let _ = write!(
            svg,
            "<line x1=\"{xm:.1}\" y1=\"{:.1}\" x2=\"{xm:.1}\" y2=\"{bottom}\" stroke=\"{colour}\" stroke-width=\"1\" stroke-dasharray=\"2 2\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"10\" fill=\"{colour}\">{}</text>",
            ly + 3.0,
            start + 3.0,
            esc_html(label)
        );
    }
    svg.push_str("</svg>");
    svg
}
