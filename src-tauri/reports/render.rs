//! Markdown and HTML renderings of an incident report. Recorded text (titles, notes, event
//! messages, reasons) is escaped for each format, so it always reads as text: `<script>`
//! in a note is shown, never run, and cannot break the layout.

use std::fmt::Write;

use super::{IncidentReport, Sample};

/// Escapes text for HTML element content and attribute values.
pub fn esc_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for Markdown: HTML is neutralised (entities) and Markdown's own syntax
/// characters are backslash-escaped, so a renderer shows the text as it was recorded.
pub fn esc_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '|' | '!' | '{' | '}' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A duration as a reader takes it in: "45 s", "12 min 05 s", "3 h 20 min", "—" when unknown.
pub(super) fn duration(seconds: Option<i64>) -> String {
    match seconds {
        None => "—".into(),
        Some(s) if s < 60 => format!("{s} s"),
        Some(s) if s < 3600 => format!("{} min {:02} s", s / 60, s % 60),
        Some(s) => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn when(at: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "—".into())
}

fn verdict(v: Option<&str>) -> &'static str {
    match v {
        Some("recovered") => "recovered",
        Some(_) => "NOT recovered",
        None => "not verified",
    }
}

fn summary_line(r: &IncidentReport) -> String {
    let fixed = r
        .actions
        .iter()
        .find(|a| a.verification.as_deref() == Some("recovered"))
        .map(|a| a.summary.clone())
        .unwrap_or_else(|| "no verified action".into());
    let duration = r
        .figures
        .iter()
        .find(|f| f.name == "time to mitigate")
        .and_then(|f| f.seconds);
    format!(
        "{} incident on {}, {}; mitigated after {}; what fixed it: {}.",
        r.incident.severity,
        r.incident.service.as_deref().unwrap_or("no service"),
        r.incident.status,
        self::duration(duration),
        fixed
    )
}

pub fn markdown(r: &IncidentReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Incident {}: {}\n",
        r.incident.id,
        esc_md(&r.incident.title)
    );
    let _ = writeln!(md, "{}\n", esc_md(&summary_line(r)));
    let _ = writeln!(
        md,
        "Severity **{}** · status **{}** · service **{}** · commander **{}**\n",
        esc_md(&r.incident.severity),
        esc_md(&r.incident.status),
        esc_md(r.incident.service.as_deref().unwrap_or("—")),
        esc_md(r.incident.commander.as_deref().unwrap_or("—"))
    );
    md.push_str("## Figures\n\n| figure | value | definition |\n|---|---|---|\n");
    for f in &r.figures {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            esc_md(&f.name),
            duration(f.seconds),
            esc_md(&f.definition)
        );
    }
    md.push_str("\n## Key moments\n\n| moment | time | from |\n|---|---|---|\n");
    for k in &r.key_moments {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            esc_md(&k.moment.replace('_', " ")),
            when(&k.at),
            esc_md(&k.source)
        );
    }
    md.push_str("\n## Actions\n\n");
    if r.actions.is_empty() {
        md.push_str("No action was taken.\n");
    }
    for a in &r.actions {
        let _ = writeln!(
            md,
            "- {}: **{}**, {} (by {}; reason: {}){}",
            esc_md(&a.summary),
            esc_md(&a.state),
            verdict(a.verification.as_deref()),
            esc_md(a.confirmed_by.as_deref().unwrap_or("—")),
            esc_md(a.reason.as_deref().unwrap_or("—")),
            a.error
                .as_deref()
                .map(|e| format!("; error: {}", esc_md(e)))
                .unwrap_or_default()
        );
    }
    md.push_str("\n## Signals\n\n");
    let alerts: Vec<String> = r.alerts.iter().map(|a| esc_md(a)).collect();
    let _ = writeln!(
        md,
        "Alerts: {}.\n",
        if alerts.is_empty() {
            "none".into()
        } else {
            alerts.join(", ")
        }
    );
    for (ty, n) in &r.events_by_type {
        let _ = writeln!(md, "- {}: {n}", esc_md(ty));
    }
    md.push_str("\n## Timeline\n\n| time (UTC) | kind | who | what |\n|---|---|---|---|\n");
    for e in &r.timeline {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            e.at.format("%H:%M:%S"),
            esc_md(&e.kind),
            esc_md(&e.author),
            esc_md(&e.text)
        );
    }
    let _ = writeln!(md, "\n_Generated by Firebreak at {}._", e_when(r));
    md
}

fn e_when(r: &IncidentReport) -> String {
    r.generated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
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

pub(super) const CSS: &str = "body{font:14px/1.5 system-ui,sans-serif;color:#111;max-width:900px;margin:24px auto;padding:0 16px}\
h1{font-size:22px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;vertical-align:top}\
td{overflow-wrap:anywhere}.muted{color:#666}.bad{color:#c62828;font-weight:600}.good{color:#2e7d32;font-weight:600}\
svg{width:100%;height:auto;border:1px solid #eee}@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}}";

pub fn html(r: &IncidentReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>Incident {}: {}</title><style>{CSS}</style></head><body>",
        r.incident.id,
        esc_html(&r.incident.title)
    );
    let _ = write!(
        h,
        "<h1>Incident {}: {}</h1>",
        r.incident.id,
        esc_html(&r.incident.title)
    );
    let _ = write!(h, "<p>{}</p>", esc_html(&summary_line(r)));
    let _ = write!(
        h,
        "<p class=\"muted\">Severity {} · status {} · service {} · commander {}</p>",
        esc_html(&r.incident.severity),
        esc_html(&r.incident.status),
        esc_html(r.incident.service.as_deref().unwrap_or("—")),
        esc_html(r.incident.commander.as_deref().unwrap_or("—"))
    );
    h.push_str("<h2>Figures</h2><table><tr><th>figure</th><th>value</th><th>definition</th></tr>");
    for f in &r.figures {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            esc_html(&f.name),
            duration(f.seconds),
            esc_html(&f.definition)
        );
    }
    h.push_str("</table><h2>Error rate and latency</h2>");
    h.push_str(&chart(r));
    h.push_str("<h2>Key moments</h2><table><tr><th>moment</th><th>time</th><th>from</th></tr>");
    for k in &r.key_moments {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
            esc_html(&k.moment.replace('_', " ")),
            when(&k.at),
            esc_html(&k.source)
        );
    }
    h.push_str("</table><h2>Actions</h2>");
    if r.actions.is_empty() {
        h.push_str("<p class=\"muted\">No action was taken.</p>");
    } else {
        h.push_str("<table><tr><th>action</th><th>outcome</th><th>verification</th><th>who and why</th></tr>");
        for a in &r.actions {
            let v = verdict(a.verification.as_deref());
            let class = if v == "recovered" { "good" } else { "bad" };
            let _ =
                write!(
                h,
                "<tr><td>{}</td><td>{}{}</td><td class=\"{class}\">{v}</td><td>{}: {}</td></tr>",
                esc_html(&a.summary),
                esc_html(&a.state),
                a.error.as_deref().map(|e| format!(" ({})", esc_html(e))).unwrap_or_default(),
                esc_html(a.confirmed_by.as_deref().unwrap_or("—")),
                esc_html(a.reason.as_deref().unwrap_or("—"))
            );
        }
        h.push_str("</table>");
    }
    let alerts: Vec<String> = r.alerts.iter().map(|a| esc_html(a)).collect();
    let _ = write!(
        h,
        "<h2>Signals</h2><p>Alerts: {}.</p><ul>",
        if alerts.is_empty() {
            "none".into()
        } else {
            alerts.join(", ")
        }
    );
    for (ty, n) in &r.events_by_type {
        let _ = write!(h, "<li>{}: {n}</li>", esc_html(ty));
    }
    h.push_str("</ul><h2>Timeline</h2><table><tr><th>time (UTC)</th><th>kind</th><th>who</th><th>what</th></tr>");
    for e in &r.timeline {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.at.format("%H:%M:%S"),
            esc_html(&e.kind),
            esc_html(&e.author),
            esc_html(&e.text)
        );
    }
    let _ = write!(
        h,
        "</table><p class=\"muted\">Generated by Firebreak at {}.</p></body></html>",
        e_when(r)
    );
    h
}
