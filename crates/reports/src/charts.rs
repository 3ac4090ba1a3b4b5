//! Charts as inline SVG for the HTML reports: lines over weeks, stacked columns and
//! horizontal bars (the summit), and two measures over time with moments marked (an
//! incident). Static markup (no script), readable printed, every label escaped here.
//! Every chart has the same margins, grid, axes and type sizes, its axes with units and
//! rounded ticks, and a legend.

use std::fmt::Write;

use super::doc::esc_html;

/// One named series of values, one per category (None: no value there).
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'static str,
    pub values: Vec<Option<f64>>,
}

/// Colours that stay apart for most readers and in greyscale print (Okabe–Ito).
pub const PALETTE: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9",
];

const W: f64 = 760.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
/// The right margin of a chart with a second value scale on the right.
const RIGHT_SCALE: f64 = 64.0;
const LEGEND: f64 = 26.0;
const FONT: &str = "font-family=\"system-ui,sans-serif\"";
/// Gridlines across the plot, and the axes' lines.
const GRID: &str = "#e6e6e6";
const AXIS: &str = "#888";
/// Tick labels and axis titles, and their size; the legend's size.
const INK: &str = "#555";
const TICK_SIZE: u32 = 11;
const LEGEND_SIZE: u32 = 12;

/// Ticks from 0 to at least `max`: 1, 2 or 5 times a power of ten apart, at most 6.
pub fn ticks(max: f64) -> Vec<f64> {
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0, 1.0];
    }
    let raw = max / 5.0;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| max / s <= 5.0)
        .unwrap_or(10.0 * pow);
    let n = (max / step).ceil() as usize;
    (0..=n)
        .map(|i| (i as f64 * step * 1e6).round() / 1e6)
        .collect()
}

/// A tick's label: whole numbers without decimals, small ones with as many as they need.
pub fn tick_label(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else if (v * 10.0) == (v * 10.0).trunc() {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The largest value of any series (0 without any).
fn largest(series: &[Series]) -> f64 {
    series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0, |a: f64, b| a.max(*b))
}

fn open(h: f64, label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\" {FONT}>\
         <title>{}</title><rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{h}\" fill=\"#fff\"/>",
        esc_html(label),
        esc_html(label)
    )
}

/// How a series looks in the legend: a line (solid or dashed) or a filled swatch.
#[derive(Clone, Copy, PartialEq)]
enum Swatch {
    Line,
    Dashed,
    Fill,
}

/// The dash pattern of a dashed line.
const DASH: &str = "5 3";

/// The legend across the top: a swatch and the name of each series.
fn legend<'a>(
    svg: &mut String,
    keys: impl IntoIterator<Item = (&'a str, &'a str)>,
    swatch: Swatch,
) {
    legend_of(
        svg,
        keys.into_iter()
            .map(|(name, colour)| (name, colour, swatch)),
    );
}

fn legend_of<'a>(svg: &mut String, keys: impl Iterator<Item = (&'a str, &'a str, Swatch)>) {
    let mut x = LEFT;
    for (name, colour, swatch) in keys {
        match swatch {
            Swatch::Line | Swatch::Dashed => {
                let dash = if swatch == Swatch::Dashed {
                    format!(" stroke-dasharray=\"{DASH}\"")
                } else {
                    String::new()
                };
                let _ = write!(
                    svg,
                    "<line x1=\"{x}\" y1=\"13\" x2=\"{}\" y2=\"13\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>",
                    x + 16.0,
                );
            }
            Swatch::Fill => {
                let _ = write!(
                    svg,
                    "<rect x=\"{x}\" y=\"7\" width=\"12\" height=\"12\" fill=\"{colour}\"/>"
                );
            }
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"17\" font-size=\"{LEGEND_SIZE}\" fill=\"#333\">{}</text>",
            x + 20.0,
            esc_html(name)
        );
        x += 40.0 + 7.5 * name.chars().count() as f64;
    }
}

/// The names and colours of `series`, for the legend.
fn keys<'a>(series: &'a [Series]) -> impl Iterator<Item = (&'a str, &'a str)> {
    series.iter().map(|s| (s.name, s.colour))
}

/// The value axis on the left (gridlines across the plot to `right`) and its unit; its
/// tick labels and title in `colour`.
fn y_axis(
    svg: &mut String,
    ticks: &[f64],
    y: &dyn Fn(f64) -> f64,
    unit: &str,
    (top, bottom): (f64, f64),
    right: f64,
    colour: &str,
) {
    for t in ticks {
        let yy = y(*t);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{right}\" y2=\"{yy:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{colour}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            yy + 4.0,
            tick_label(*t)
        );
    }
    let mid = (top + bottom) / 2.0;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{top}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>\
         <text x=\"14\" y=\"{mid:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{colour}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {mid:.1})\">{}</text>",
        esc_html(unit)
    );
}

/// A second value axis on the right at `x` (no gridlines: the left axis draws them), its
/// tick labels and title in `colour`.
fn y_axis_right(
    svg: &mut String,
    ticks: &[f64],
    y: &dyn Fn(f64) -> f64,
    unit: &str,
    (top, bottom): (f64, f64),
    x: f64,
    colour: &str,
) {
    for t in ticks {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{colour}\">{}</text>",
            x + 6.0,
            y(*t) + 4.0,
            tick_label(*t)
        );
    }
    let mid = (top + bottom) / 2.0;
    let title = W - 14.0;
    let _ = write!(
        svg,
        "<line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>\
         <text x=\"{title}\" y=\"{mid:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{colour}\" text-anchor=\"middle\" transform=\"rotate(90 {title} {mid:.1})\">{}</text>",
        esc_html(unit)
    );
}

/// Category labels under the plot, thinned so they never overlap (each gets at least
/// 46 px); `at(i)` is the centre of category i.
fn x_labels(svg: &mut String, labels: &[String], at: &dyn Fn(usize) -> f64, y: f64) {
    let space = (W - LEFT - RIGHT) / labels.len().max(1) as f64;
    let every = (46.0 / space).ceil().max(1.0) as usize;
    for (i, l) in labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{INK}\" text-anchor=\"middle\">{}</text>",
            at(i),
            esc_html(l)
        );
    }
}

/// Lines over categories (weeks): a point per value, gaps where there is none.
pub fn lines(label: &str, categories: &[String], series: &[Series], unit: &str) -> String {
    let (h, bottom) = (260.0, 226.0);
    let top = LEGEND + 10.0;
    let max = largest(series);
    let ticks = ticks(max);
    let top_tick = *ticks.last().unwrap_or(&1.0);
    let y = |v: f64| bottom - v / top_tick * (bottom - top);
    let n = categories.len().max(1);
    let step = (W - LEFT - RIGHT) / n as f64;
    let x = |i: usize| LEFT + step * (i as f64 + 0.5);
    let mut svg = open(h, label);
    legend(&mut svg, keys(series), Swatch::Line);
    y_axis(&mut svg, &ticks, &y, unit, (top, bottom), W - RIGHT, INK);
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>",
        W - RIGHT
    );
    x_labels(&mut svg, categories, &x, bottom + 16.0);
    for s in series {
        let mut d = String::new();
        let mut pen_up = true;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_up { "M" } else { "L" },
                        x(i),
                        y(*v)
                    );
                    pen_up = false;
                }
                None => pen_up = true,
            }
        }
        let _ = write!(
            svg,
            "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
            d.trim_end(),
            s.colour
        );
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{}: {} {}</title></circle>",
                    x(i),
                    y(*v),
                    s.colour,
                    esc_html(&categories[i]),
                    tick_label((v * 10.0).round() / 10.0),
                    esc_html(unit)
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A measure over time on a value scale of its own.
pub struct Measure<'a> {
    pub name: &'a str,
    pub colour: &'static str,
    /// Drawn dashed (the second measure, so the two stay apart in greyscale print).
    pub dashed: bool,
    /// The scale's title, with its unit.
    pub unit: &'a str,
    /// (milliseconds since the epoch, value), in time order.
    pub points: Vec<(f64, f64)>,
}

/// A moment marked on a time chart: a line across the plot, its label above it.
pub struct Mark {
    pub at_ms: f64,
    pub label: String,
    pub colour: &'static str,
}

/// Minutes between time ticks: the first of these that leaves at most 8 ticks.
const TIME_STEPS_MIN: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440];

/// Two measures over time, `left` on the left scale (with the gridlines) and `right` on
/// the right one, from the first point to `end_ms` (so moments after the last point are
/// still marked), UTC ticks below. The marks' labels sit in lanes above the plot: a label
/// that would run into another goes one lane up, so none overlap however close the
/// moments are.
pub fn over_time(
    label: &str,
    left: &Measure,
    right: &Measure,
    marks: &[Mark],
    end_ms: f64,
) -> String {
    let t0 = left
        .points
        .first()
        .into_iter()
        .chain(right.points.first())
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min);
    let t1 = end_ms.max(t0);
    let plot_right = W - RIGHT_SCALE;
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0).max(1.0) * (plot_right - LEFT);

    // Each label goes in the lowest lane where it does not reach the previous label's end
    // (about 6 px a character at 10 px).
    let mut marks: Vec<&Mark> = marks
        .iter()
        .filter(|m| m.at_ms >= t0 && m.at_ms <= t1)
        .collect();
    marks.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let mut lane_ends: Vec<f64> = Vec::new();
    let placed: Vec<(f64, usize, f64, &Mark)> = marks
        .into_iter()
        .map(|m| {
            let xm = x(m.at_ms);
            let width = 6.0 * m.label.chars().count() as f64 + 8.0;
            // Near the right edge the label goes on the line's left, so it is not cut off.
            let start = if xm + width > W - 4.0 { xm - width } else { xm };
            let lane = lane_ends
                .iter()
                .position(|end| *end <= start)
                .unwrap_or(lane_ends.len());
            if lane == lane_ends.len() {
                lane_ends.push(0.0);
            }
            lane_ends[lane] = start + width;
            (xm, lane, start, m)
        })
        .collect();
    let top = LEGEND + 6.0 + 13.0 * lane_ends.len() as f64 + 6.0;
    let bottom = top + 170.0;
    let h = bottom + 40.0;

    let scale = |m: &Measure| {
        let ticks = ticks(m.points.iter().map(|p| p.1).fold(0.0, f64::max));
        let max = *ticks.last().unwrap_or(&1.0);
        (ticks, max)
    };
    let (left_ticks, left_max) = scale(left);
    let (right_ticks, right_max) = scale(right);
    let y = |v: f64, max: f64| bottom - v / max * (bottom - top);

    let mut svg = open(h, label);
    legend_of(
        &mut svg,
        [left, right].into_iter().map(|m| {
            let swatch = if m.dashed {
                Swatch::Dashed
            } else {
                Swatch::Line
            };
            (m.name, m.colour, swatch)
        }),
    );
    y_axis(
        &mut svg,
        &left_ticks,
        &|v| y(v, left_max),
        left.unit,
        (top, bottom),
        plot_right,
        left.colour,
    );
    y_axis_right(
        &mut svg,
        &right_ticks,
        &|v| y(v, right_max),
        right.unit,
        (top, bottom),
        plot_right,
        right.colour,
    );
    time_axis(&mut svg, (t0, t1), &x, bottom, plot_right);
    for (m, max) in [(left, left_max), (right, right_max)] {
        let d: Vec<String> = m
            .points
            .iter()
            .enumerate()
            .map(|(i, (t, v))| {
                format!(
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { "L" },
                    x(*t),
                    y(*v, max)
                )
            })
            .collect();
        let dash = if m.dashed {
            format!(" stroke-dasharray=\"{DASH}\"")
        } else {
            String::new()
        };
        let _ = write!(
            svg,
            "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
            d.join(" "),
            m.colour
        );
    }
    for (xm, lane, start, m) in placed {
        let ly = top - 8.0 - 13.0 * lane as f64;
        let _ = write!(
            svg,
            "<line x1=\"{xm:.1}\" y1=\"{:.1}\" x2=\"{xm:.1}\" y2=\"{bottom}\" stroke=\"{}\" stroke-width=\"1\" stroke-dasharray=\"2 2\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{}\">{}</text>",
            ly + 3.0,
            m.colour,
            start + 3.0,
            m.colour,
            esc_html(&m.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The time axis under a plot from `LEFT` to `right`: ticks on round minutes (UTC), at
/// most 8, and its title.
fn time_axis(
    svg: &mut String,
    (t0, t1): (f64, f64),
    x: &dyn Fn(f64) -> f64,
    bottom: f64,
    right: f64,
) {
    let span_min = (t1 - t0) / 60_000.0;
    let step = TIME_STEPS_MIN
        .into_iter()
        .find(|m| span_min / *m as f64 <= 8.0)
        .unwrap_or(1440)
        * 60_000;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>"
    );
    let mut t = ((t0 as i64 + step - 1) / step) * step;
    while (t as f64) <= t1 {
        let xx = x(t as f64);
        let label = chrono::DateTime::from_timestamp_millis(t)
            .map(|d| d.format("%H:%M").to_string())
            .unwrap_or_default();
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{bottom}\" x2=\"{xx:.1}\" y2=\"{}\" stroke=\"{AXIS}\"/>\
             <text x=\"{xx:.1}\" y=\"{}\" font-size=\"{TICK_SIZE}\" fill=\"{INK}\" text-anchor=\"middle\">{label}</text>",
            bottom + 4.0,
            bottom + 16.0
        );
        t += step;
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" font-size=\"{TICK_SIZE}\" fill=\"{INK}\" text-anchor=\"middle\">time (UTC)</text>",
        LEFT + (right - LEFT) / 2.0,
        bottom + 32.0
    );
}

/// Columns per category, the series stacked in each.
pub fn stacked(label: &str, categories: &[String], series: &[Series], unit: &str) -> String {
    let (h, bottom) = (260.0, 226.0);
    let top = LEGEND + 10.0;
    let totals: Vec<f64> = (0..categories.len())
        .map(|i| {
            series
                .iter()
                .filter_map(|s| s.values.get(i).copied().flatten())
                .sum()
        })
        .collect();
    let ticks = ticks(totals.iter().copied().fold(0.0, f64::max));
    let top_tick = *ticks.last().unwrap_or(&1.0);
    let y = |v: f64| bottom - v / top_tick * (bottom - top);
    let n = categories.len().max(1);
    let step = (W - LEFT - RIGHT) / n as f64;
    let x = |i: usize| LEFT + step * (i as f64 + 0.5);
    let bar = (step * 0.6).min(48.0);
    let mut svg = open(h, label);
    legend(&mut svg, keys(series), Swatch::Fill);
    y_axis(&mut svg, &ticks, &y, unit, (top, bottom), W - RIGHT, INK);
    for (i, cat) in categories.iter().enumerate() {
        let mut base = 0.0;
        for s in series {
            let v = s.values.get(i).copied().flatten().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {} {}</title></rect>",
                x(i) - bar / 2.0,
                y(base + v),
                y(base) - y(base + v),
                s.colour,
                esc_html(cat),
                tick_label(v),
                esc_html(s.name)
            );
            base += v;
        }
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>",
        W - RIGHT
    );
    x_labels(&mut svg, categories, &x, bottom + 16.0);
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: one row per category, one bar per series in it, each with its value
/// written at its end. Long category names are shortened (the full name is the row's
/// tooltip).
pub fn bars(label: &str, categories: &[String], series: &[Series], unit: &str) -> String {
    let label_w = 190.0;
    let left = label_w + 8.0;
    let bar = 14.0;
    let row = bar * series.len() as f64 + 10.0;
    let top = LEGEND + 8.0;
    let bottom = top + row * categories.len().max(1) as f64;
    let h = bottom + 36.0;
    let max = largest(series);
    let ticks = ticks(max);
    let top_tick = *ticks.last().unwrap_or(&1.0);
    let width = W - left - RIGHT - 40.0;
    let x = |v: f64| left + v / top_tick * width;
    let mut svg = open(h, label);
    legend(&mut svg, keys(series), Swatch::Fill);
    for t in &ticks {
        let xx = x(*t);
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{bottom}\" stroke=\"{GRID}\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{INK}\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            tick_label(*t)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{TICK_SIZE}\" fill=\"{INK}\" text-anchor=\"middle\">{}</text>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"{AXIS}\"/>",
        left + width / 2.0,
        bottom + 30.0,
        esc_html(unit)
    );
    for (i, cat) in categories.iter().enumerate() {
        let y0 = top + row * i as f64 + 5.0;
        let short: String = if cat.chars().count() > 30 {
            cat.chars().take(29).chain(['…']).collect()
        } else {
            cat.clone()
        };
        let _ = write!(
            svg,
            "<text x=\"{label_w}\" y=\"{:.1}\" font-size=\"{LEGEND_SIZE}\" fill=\"#222\" text-anchor=\"end\"><title>{}</title>{}</text>",
            y0 + row / 2.0 - 1.0,
            esc_html(cat),
            esc_html(&short)
        );
        for (k, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(i).copied().flatten() else {
                continue;
            };
            let yy = y0 + bar * k as f64;
            let _ = write!(
                svg,
                "<rect x=\"{left}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {} {}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"{TICK_SIZE}\" fill=\"#333\">{}</text>",
                (x(v) - left).max(0.5),
                bar - 2.0,
                s.colour,
                esc_html(cat),
                tick_label(v),
                esc_html(s.name),
                x(v) + 4.0,
                yy + bar - 4.0,
                tick_label(v)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(14.0), vec![0.0, 5.0, 10.0, 15.0]);
        assert_eq!(ticks(4.0), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(ticks(0.9), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(*ticks(2_390.0).last().unwrap(), 2_500.0);
        assert!(ticks(7.3).len() <= 7);
    }

    #[test]
    fn labels_are_escaped_everywhere() {
        let evil = "<script>alert(1)</script>";
        let cats = vec![evil.to_owned()];
        let s = [Series {
            name: evil,
            colour: PALETTE[0],
            values: vec![Some(3.0)],
        }];
        let m = |dashed| Measure {
            name: evil,
            colour: PALETTE[0],
            dashed,
            unit: evil,
            points: vec![(0.0, 1.0), (60_000.0, 2.0)],
        };
        let mark = Mark {
            at_ms: 30_000.0,
            label: evil.into(),
            colour: PALETTE[1],
        };
        for svg in [
            lines(evil, &cats, &s, evil),
            stacked(evil, &cats, &s, evil),
            bars(evil, &cats, &s, evil),
            over_time(evil, &m(false), &m(true), &[mark], 60_000.0),
        ] {
            assert!(!svg.contains("<script>"), "{svg}");
            assert!(svg.contains("&lt;script&gt;"));
        }
    }

    /// Every value in `svg` of attribute `name` (`font-size="11"` → "11").
    fn attrs(svg: &str, name: &str) -> std::collections::BTreeSet<String> {
        svg.split(&format!(" {name}=\"")[..])
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    }

    /// The incident report's chart and the summit's are drawn alike: the same left margin,
    /// gridline colour, axis colour and type sizes.
    #[test]
    fn the_time_chart_has_the_same_axes_grid_and_type_as_the_others() {
        let cats = vec!["w1".to_owned(), "w2".to_owned()];
        let s = [Series {
            name: "incidents",
            colour: PALETTE[0],
            values: vec![Some(3.0), Some(5.0)],
        }];
        let weekly = lines("weeks", &cats, &s, "incidents");
        let measure = |dashed| Measure {
            name: "p99",
            colour: PALETTE[1],
            dashed,
            unit: "ms",
            points: vec![(0.0, 120.0), (600_000.0, 900.0)],
        };
        let over = over_time("incident", &measure(false), &measure(true), &[], 600_000.0);
        for svg in [&weekly, &over] {
            assert!(svg.contains(&format!("viewBox=\"0 0 {W} ")), "{svg}");
            assert!(svg.contains(&format!("<line x1=\"{LEFT}\"")), "{svg}");
            assert!(svg.contains(&format!("stroke=\"{GRID}\"")), "{svg}");
            assert!(
                attrs(svg, "font-size")
                    .is_subset(&[TICK_SIZE, LEGEND_SIZE].map(|n| n.to_string()).into()),
                "{svg}"
            );
            assert!(
                attrs(svg, "stroke").is_subset(
                    &[GRID, AXIS, PALETTE[0], PALETTE[1]]
                        .map(str::to_owned)
                        .into()
                ),
                "{svg}"
            );
        }
    }
}
