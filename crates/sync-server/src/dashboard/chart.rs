//! Charts drawn on the server as SVG: no script, readable on any phone.

use std::fmt::Write;

use crate::dashboard::figures::Week;
use crate::dashboard::html::{Lang, date, esc};

const W: f64 = 640.0;
const H: f64 = 240.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

/// The weekly trend: visits as bars (right-hand scale), requests raised and resolved as lines
/// (left-hand scale).
pub fn trend(lang: Lang, weeks: &[Week]) -> String {
    let n = weeks.len().max(1) as f64;
    let step = (W - LEFT - RIGHT) / n;
    let plot_h = H - TOP - BOTTOM;
    let max_req = weeks.iter().map(|w| w.raised.max(w.resolved)).max().unwrap_or(0).max(1) as f64;
    let max_visits = weeks.iter().map(|w| w.visits).max().unwrap_or(0).max(1) as f64;
    let y = |v: f64, max: f64| TOP + plot_h - v / max * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg id=\"trend\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">",
        esc(lang.t("近12周趋势", "Trend over the last 12 weeks"))
    );
    for i in 0..=4 {
        let v = max_req * f64::from(i) / 4.0;
        let yy = y(v, max_req);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e8ee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#5b6474\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            yy + 4.0,
            v.round()
        );
    }
    for (i, w) in weeks.iter().enumerate() {
        let x = LEFT + step * i as f64;
        let bar_top = y(w.visits as f64, max_visits);
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{bar_top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f3c9c5\"><title>{}: {}</title></rect>",
            x + step * 0.15,
            step * 0.7,
            TOP + plot_h - bar_top,
            esc(lang.t("走访", "visits")),
            w.visits
        );
        if i % 2 == 0 {
            let label = date(w.start);
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#5b6474\">{}</text>",
                x + step / 2.0,
                H - BOTTOM + 16.0,
                esc(label.get(5..).unwrap_or(&label))
            );
        }
    }
    for (series, colour, value) in [
        (lang.t("提出诉求", "raised"), "#1f3f99", (|w: &Week| w.raised) as fn(&Week) -> usize),
        (lang.t("办结诉求", "resolved"), "#2e7d32", |w: &Week| w.resolved),
    ] {
        let points: Vec<String> = weeks
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{:.1},{:.1}", LEFT + step * (i as f64 + 0.5), y(value(w) as f64, max_req)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            esc(series)
        );
    }
    let legend_y = H - 10.0;
    let _ = write!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"12\" height=\"8\" fill=\"#f3c9c5\"/><text x=\"{}\" y=\"{legend_y}\">{}</text>\
         <line x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1f3f99\" stroke-width=\"2.5\"/><text x=\"{}\" y=\"{legend_y}\">{}</text>\
         <line x1=\"{}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#2e7d32\" stroke-width=\"2.5\"/><text x=\"{}\" y=\"{legend_y}\">{}</text></svg>",
        legend_y - 8.0,
        LEFT + 16.0,
        esc(lang.t("走访户次（独立刻度）", "visits (own scale)")),
        LEFT + 170.0,
        LEFT + 186.0,
        legend_y - 4.0,
        legend_y - 4.0,
        LEFT + 190.0,
        esc(lang.t("提出诉求", "requests raised")),
        LEFT + 320.0,
        LEFT + 336.0,
        legend_y - 4.0,
        legend_y - 4.0,
        LEFT + 340.0,
        esc(lang.t("办结诉求", "requests resolved")),
    );
    svg
}
