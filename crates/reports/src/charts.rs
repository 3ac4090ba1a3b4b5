//! Charts as inline SVG for the HTML reports: lines over weeks, stacked columns, and
//! horizontal bars. Static markup (no script), readable printed, every label escaped
//! here. Each chart has its axes with units and rounded ticks, and a legend.

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
const LEGEND: f64 = 26.0;
const FONT: &str = "font-family=\"system-ui,sans-serif\"";

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

/// The legend across the top: a swatch and the name of each series.
fn legend(svg: &mut String, series: &[Series], line: bool) {
    let mut x = LEFT;
    for s in series {
        if line {
            let _ = write!(
                svg,
                "<line x1=\"{x}\" y1=\"13\" x2=\"{}\" y2=\"13\" stroke=\"{}\" stroke-width=\"3\"/>",
                x + 16.0,
                s.colour
            );
        } else {
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"7\" width=\"12\" height=\"12\" fill=\"{}\"/>",
                s.colour
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"17\" font-size=\"12\" fill=\"#333\">{}</text>",
            x + 20.0,
            esc_html(s.name)
        );
        x += 40.0 + 7.5 * s.name.chars().count() as f64;
    }
}

/// The value axis on the left (gridlines across the plot) and its unit.
fn y_axis(
    svg: &mut String,
    ticks: &[f64],
    y: &dyn Fn(f64) -> f64,
    unit: &str,
    top: f64,
    bottom: f64,
) {
    for t in ticks {
        let yy = y(*t);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#e6e6e6\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            tick_label(*t)
        );
    }
    let mid = (top + bottom) / 2.0;
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{top}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"#888\"/>\
         <text x=\"14\" y=\"{mid:.1}\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\" transform=\"rotate(-90 14 {mid:.1})\">{}</text>",
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
            "<text x=\"{:.1}\" y=\"{y:.1}\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">{}</text>",
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
    legend(&mut svg, series, true);
    y_axis(&mut svg, &ticks, &y, unit, top, bottom);
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#888\"/>",
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
    legend(&mut svg, series, false);
    y_axis(&mut svg, &ticks, &y, unit, top, bottom);
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
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#888\"/>",
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
    legend(&mut svg, series, false);
    for t in &ticks {
        let xx = x(*t);
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{bottom}\" stroke=\"#e6e6e6\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            tick_label(*t)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">{}</text>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#888\"/>",
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
            "<text x=\"{label_w}\" y=\"{:.1}\" font-size=\"12\" fill=\"#222\" text-anchor=\"end\"><title>{}</title>{}</text>",
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
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\">{}</text>",
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
        for svg in [
            lines(evil, &cats, &s, evil),
            stacked(evil, &cats, &s, evil),
            bars(evil, &cats, &s, evil),
        ] {
            assert!(!svg.contains("<script>"), "{svg}");
            assert!(svg.contains("&lt;script&gt;"));
        }
    }
}
