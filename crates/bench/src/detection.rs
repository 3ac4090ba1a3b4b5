//! `firebreak bench detection`: how early the canary verdict catches a bad rollout, beside
//! the console's other detectors on the same runs (the 5 % error-rate SLO rule and the
//! EWMA anomaly), and how often it fails a good one.
//!
//! Each run is the simulator told without a server ([`firebreak_sim::story`]): a steady
//! fleet for two minutes, then llm-assistant rolls revision 42 out in four waves 30 s
//! apart, bad by a given severity (extra errors on its nodes, or a slower p99) or good.
//! The console's judgement is the same code the window runs: the verdict look by look
//! ([`firebreak_engine::canary::verdicts_of`]) and the ingest rules fed the same
//! `service.metrics` in order.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde_json::Value;

use firebreak_engine::canary;
use firebreak_engine::canary::stats::median;
use firebreak_engine::ingest::rules::Rules;
use firebreak_protocol::events::EventType;
use firebreak_store::rollouts::{RecordedRollout, RevisionWindow};

/// When the rollout starts: after two minutes of steady fleet, so the anomaly detector has
/// learnt what is usual.
const ROLLOUT_AT_S: u64 = 120;
const WAVES: u32 = 4;
const WAVE_INTERVAL_S: u64 = 30;
/// How long each run is told: the rollout and a minute after it.
const RUN_S: u64 = ROLLOUT_AT_S + WAVES as u64 * WAVE_INTERVAL_S + 60;
const SERVICE: &str = "llm-assistant";

/// How bad a rollout is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Severity {
    /// Extra failed requests on its nodes (a share).
    Errors(f64),
    /// How many times slower its p99 is.
    Latency(f64),
    Good,
}

impl Severity {
    fn words(self) -> String {
        match self {
            Severity::Errors(e) => format!("errors +{} points", trim(e * 100.0)),
            Severity::Latency(l) => format!("p99 ×{}", trim(l)),
            Severity::Good => "good revision".into(),
        }
    }

    fn scenario(self) -> String {
        let bad = match self {
            Severity::Errors(e) => format!("errors = {e}"),
            Severity::Latency(l) => format!("latency = {l}"),
            Severity::Good => "bad = false".into(),
        };
        format!(
            "name = \"detection\"\nsummary = \"one rollout\"\nremedy = {{ action = \"none\" }}\n\n\
             [[steps]]\nat = {ROLLOUT_AT_S}\ndo = \"rollout\"\nservice = \"{SERVICE}\"\nrevision = 42\n\
             model = \"assistant-13b-2026.12\"\n{bad}\nwaves = {WAVES}\nwave_interval_s = {WAVE_INTERVAL_S}\n"
        )
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.trim_end_matches(".0").to_owned()
}

/// What the console saw in one run, in seconds from the rollout's start.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// The wave at which the verdict first failed, and when.
    failed: Option<(u32, f64)>,
    slo: Option<f64>,
    anomaly: Option<f64>,
}

/// Tells one run and judges it as the console would.
fn run(severity: Severity, seed: u64) -> Result<Seen> {
    let scenario = firebreak_sim::Scenario::parse(&severity.scenario(), "detection")?;
    let start: DateTime<Utc> = "2026-12-01T14:00:00Z".parse()?;
    let told = firebreak_sim::story(&scenario, seed, start, RUN_S);
    let rollout_ms = (start + chrono::Duration::seconds(ROLLOUT_AT_S as i64)).timestamp_millis();
    let since = |t: DateTime<Utc>| (t.timestamp_millis() - rollout_ms) as f64 / 1000.0;

    let mut seen = Seen::default();
    let mut rules = Rules::default();
    let mut rollout: Option<RecordedRollout> = None;
    let mut windows = Vec::new();
    for (i, e) in told.iter().enumerate() {
        let seq = i as i64 + 1;
        let service = e.data.get("service").and_then(Value::as_str);
        if service != Some(SERVICE) {
            continue;
        }
        match e.ty {
            EventType::RolloutStarted => {
                rollout = Some(RecordedRollout {
                    started_seq: seq,
                    started_ms: e.time.timestamp_millis(),
                    deployment: text(&e.data, "deployment"),
                    from_revision: number(&e.data, "from_revision"),
                    to_revision: number(&e.data, "to_revision"),
                    waves: number(&e.data, "waves"),
                    waves_done: Vec::new(),
                    ended: None,
                });
            }
            EventType::RolloutWaveProgressed => {
                if let Some(r) = rollout.as_mut() {
                    r.waves_done
                        .push((number(&e.data, "wave"), seq, e.time.timestamp_millis()));
                }
            }
            EventType::RevisionMetrics => {
                windows.push(RevisionWindow {
                    seq,
                    time_ms: e.time.timestamp_millis(),
                    metrics: serde_json::from_value(e.data.clone())?,
                });
            }
            EventType::ServiceMetrics => {
                let d = rules.decide(1, e.ty, &e.data);
                if seen.slo.is_none()
                    && d.signal
                        .as_ref()
                        .is_some_and(|s| s.rule == "slo:error_rate")
                {
                    seen.slo = Some(since(e.time));
                }
                if seen.anomaly.is_none() && d.anomaly.is_some() {
                    seen.anomaly = Some(since(e.time));
                }
            }
            _ => {}
        }
    }
    // Looks are taken as the windows arrive: judging them all at the end is the same.
    if let Some(r) = &rollout {
        if let Some(f) = canary::verdicts_of(r, &windows).first_fail {
            seen.failed = Some((f.wave, (f.at_ms - rollout_ms) as f64 / 1000.0));
        }
    }
    Ok(seen)
}

fn text(d: &Value, k: &str) -> String {
    d.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn number(d: &Value, k: &str) -> u32 {
    d.get(k)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

fn seconds(v: Option<f64>) -> String {
    v.map_or_else(|| "never".into(), |s| format!("{s:.0} s"))
}

/// One row of the table: a severity over `runs` seeded runs.
struct Row {
    severity: Severity,
    runs: usize,
    at_wave_1: usize,
    by_wave_2: usize,
    caught: usize,
    verdict_s: Option<f64>,
    slo_s: Option<f64>,
    slo_runs: usize,
    anomaly_s: Option<f64>,
    anomaly_runs: usize,
    /// Caught runs whose verdict came before the SLO rule fired (or the rule never did).
    before_slo: usize,
}

fn row(severity: Severity, runs: usize) -> Result<Row> {
    let mut seen = Vec::with_capacity(runs);
    for seed in 0..runs as u64 {
        seen.push(run(severity, 1_000 + seed)?);
    }
    let caught: Vec<&Seen> = seen.iter().filter(|s| s.failed.is_some()).collect();
    Ok(Row {
        severity,
        runs,
        at_wave_1: seen
            .iter()
            .filter(|s| s.failed.is_some_and(|f| f.0 <= 1))
            .count(),
        by_wave_2: seen
            .iter()
            .filter(|s| s.failed.is_some_and(|f| f.0 <= 2))
            .count(),
        caught: caught.len(),
        verdict_s: median(
            &caught
                .iter()
                .filter_map(|s| s.failed.map(|f| f.1))
                .collect::<Vec<_>>(),
        ),
        slo_s: median(&seen.iter().filter_map(|s| s.slo).collect::<Vec<_>>()),
        slo_runs: seen.iter().filter(|s| s.slo.is_some()).count(),
        anomaly_s: median(&seen.iter().filter_map(|s| s.anomaly).collect::<Vec<_>>()),
        anomaly_runs: seen.iter().filter(|s| s.anomaly.is_some()).count(),
        before_slo: caught
            .iter()
            .filter(|s| match (s.failed, s.slo) {
                (Some(f), Some(slo)) => f.1 < slo,
                (Some(_), None) => true,
                _ => false,
            })
            .count(),
    })
}

fn share(n: usize, of: usize) -> String {
    format!("{:.0} %", 100.0 * n as f64 / of.max(1) as f64)
}

/// Runs the table: `runs` seeded rollouts per severity, and `good` good ones; with
/// `plot`, also draws the share caught against severity there (SVG).
pub fn detection(runs: usize, good: usize, plot: Option<&std::path::Path>) -> Result<()> {
    let runs = runs.max(1);
    let started = std::time::Instant::now();
    let mut severities: Vec<Severity> = [0.005, 0.01, 0.02, 0.05, 0.1, 0.3]
        .into_iter()
        .map(Severity::Errors)
        .collect();
    severities.extend([1.2, 1.5, 2.0, 3.0, 5.0].into_iter().map(Severity::Latency));
    println!(
        "detection: llm-assistant rolls revision 42 out in {WAVES} waves {WAVE_INTERVAL_S} s apart after {ROLLOUT_AT_S} s of steady fleet; {runs} seeded runs per severity, {good} good rollouts"
    );
    println!(
        "| rollout | runs | caught at wave 1 | by wave 2 | caught | verdict (median from the rollout's start) | SLO rule (5 % for 3 samples) | EWMA anomaly | verdict before the SLO rule |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut caught: Vec<Caught> = Vec::new();
    for severity in severities {
        let r = row(severity, runs)?;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} ({} runs) | {} ({} runs) | {} of {} |",
            r.severity.words(),
            r.runs,
            share(r.at_wave_1, r.runs),
            share(r.by_wave_2, r.runs),
            share(r.caught, r.runs),
            seconds(r.verdict_s),
            seconds(r.slo_s),
            r.slo_runs,
            seconds(r.anomaly_s),
            r.anomaly_runs,
            r.before_slo,
            r.caught,
        );
        caught.push((
            r.severity,
            r.at_wave_1 as f64 / r.runs as f64,
            r.by_wave_2 as f64 / r.runs as f64,
        ));
    }
    let g = row(Severity::Good, good.max(1))?;
    println!(
        "| {} | {} | {} failed (false pauses) | | | | {} ({} runs) | {} ({} runs) | |",
        g.severity.words(),
        g.runs,
        g.caught,
        seconds(g.slo_s),
        g.slo_runs,
        seconds(g.anomaly_s),
        g.anomaly_runs,
    );
    println!(
        "({:.1} s for {} runs)",
        started.elapsed().as_secs_f64(),
        runs * 11 + good.max(1)
    );
    if let Some(path) = plot {
        std::fs::write(path, svg(&caught, runs))?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// The share of bad rollouts caught at wave 1 and by wave 2, against severity: extra
/// errors on the left, a slower p99 on the right, each severity evenly spaced.
/// A severity and the shares caught at wave 1 and by wave 2.
type Caught = (Severity, f64, f64);

fn svg(caught: &[Caught], runs: usize) -> String {
    const W: f64 = 720.0;
    const H: f64 = 300.0;
    const TOP: f64 = 48.0;
    const BOTTOM: f64 = 52.0;
    const LEFT: f64 = 56.0;
    const GAP: f64 = 48.0;
    const RIGHT: f64 = 16.0;
    let panel_w = (W - LEFT - GAP - RIGHT) / 2.0;
    let y = |share: f64| TOP + (1.0 - share) * (H - TOP - BOTTOM);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"DejaVu Sans, sans-serif\" font-size=\"11\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n\
         <text x=\"{LEFT}\" y=\"20\" font-size=\"13\" font-weight=\"bold\" fill=\"#222\">Bad rollouts caught by the canary verdict ({runs} seeded runs each)</text>\n\
         <g font-size=\"11\"><rect x=\"{LEFT}\" y=\"30\" width=\"10\" height=\"3\" fill=\"#c92a2a\"/>\
         <text x=\"{}\" y=\"35\" fill=\"#222\">at wave 1</text>\
         <rect x=\"{}\" y=\"30\" width=\"10\" height=\"3\" fill=\"#1864ab\"/>\
         <text x=\"{}\" y=\"35\" fill=\"#222\">by wave 2</text></g>\n",
        LEFT + 14.0,
        LEFT + 84.0,
        LEFT + 98.0
    );
    let panels: [(&str, Vec<&Caught>); 2] = [
        (
            "extra errors on the new revision's nodes (points)",
            caught
                .iter()
                .filter(|c| matches!(c.0, Severity::Errors(_)))
                .collect(),
        ),
        (
            "p99 of the new revision's nodes (times the usual)",
            caught
                .iter()
                .filter(|c| matches!(c.0, Severity::Latency(_)))
                .collect(),
        ),
    ];
    for (i, (title, points)) in panels.iter().enumerate() {
        let x0 = LEFT + i as f64 * (panel_w + GAP);
        for share in [0.0, 0.25, 0.5, 0.75, 1.0] {
            out += &format!(
                "<line x1=\"{x0}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ea\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{:.0} %</text>\n",
                x0 + panel_w,
                x0 - 6.0,
                y(share) + 4.0,
                share * 100.0,
                y = y(share)
            );
        }
        let step = panel_w / points.len().max(1) as f64;
        let x = |k: usize| x0 + step * (k as f64 + 0.5);
        for (k, (severity, _, _)) in points.iter().enumerate() {
            let label = match severity {
                Severity::Errors(e) => format!("+{}", trim(e * 100.0)),
                Severity::Latency(l) => format!("×{}", trim(*l)),
                Severity::Good => String::new(),
            };
            out += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{label}</text>\n",
                x(k),
                H - BOTTOM + 16.0
            );
        }
        out += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#222\">{title}</text>\n",
            x0 + panel_w / 2.0,
            H - BOTTOM + 36.0
        );
        for (series, colour) in [(1usize, "#c92a2a"), (2, "#1864ab")] {
            let line: Vec<String> = points
                .iter()
                .enumerate()
                .map(|(k, p)| format!("{:.1},{:.1}", x(k), y(if series == 1 { p.1 } else { p.2 })))
                .collect();
            out += &format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n",
                line.join(" ")
            );
            for point in &line {
                let (px, py) = point.split_once(',').unwrap_or(("0", "0"));
                out += &format!("<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>\n");
            }
        }
    }
    out += "</svg>\n";
    out
}
