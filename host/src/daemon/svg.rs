//! The dashboard's trend plot, drawn on the server as SVG: open findings
//! per day, one line per severity, with axes, gridlines and a legend. No
//! script, no external reference; every text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::civil::Date;

use crate::bindings::Severity;
use crate::report::markup::escape;
use crate::store::TrendPoint;

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 110.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 32.0;

fn color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#7b1fa2",
        Severity::High => "#d32f2f",
        Severity::Medium => "#f57c00",
        Severity::Low => "#fbc02d",
        Severity::Info => "#1976d2",
    }
}

/// A "nice" upper bound for the y axis.
fn nice_max(v: i64) -> i64 {
    let v = v.max(1);
    let mag = 10i64.pow((v as f64).log10().floor() as u32);
    for step in [1, 2, 5, 10] {
        if step * mag >= v {
            return step * mag;
        }
    }
    10 * mag
}

/// Open findings per day per severity from `from` to `to` (inclusive).
pub fn trend_plot(points: &[TrendPoint], from: Date, to: Date) -> String {
    let mut days = Vec::new();
    let mut d = from;
    while d <= to && days.len() < 400 {
        days.push(d);
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    let mut series: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for p in points {
        if let Some(i) = days.iter().position(|d| *d == p.day) {
            series
                .entry(p.severity.rank() as usize)
                .or_insert_with(|| vec![0; days.len()])[i] = p.open;
        }
    }
    let max = nice_max(series.values().flatten().copied().max().unwrap_or(0));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| {
        if days.len() <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (days.len() - 1) as f64
        }
    };
    let y = |v: i64| TOP + plot_h * (1.0 - v as f64 / max as f64);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-labelledby="t"><title id="t">Open findings per day and severity, {} to {}</title>"#,
        escape(&from.to_string()),
        escape(&to.to_string())
    );
    s.push_str(r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    s.push_str(r##"<g font-family="system-ui, sans-serif" font-size="11" fill="#555">"##);
    for k in 0..=4 {
        let v = max * k / 4;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    let labels = days.len().clamp(1, 6);
    for k in 0..labels {
        let i = if labels == 1 {
            0
        } else {
            k * (days.len().saturating_sub(1)) / (labels - 1)
        };
        if let Some(day) = days.get(i) {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x(i),
                H - 10.0,
                escape(&day.strftime("%b %d").to_string())
            );
        }
    }
    s.push_str("</g>");
    for (n, sev) in Severity::ALL.iter().rev().enumerate() {
        let Some(values) = series.get(&(sev.rank() as usize)) else {
            continue;
        };
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            color(*sev),
            pts.join(" ")
        );
        if values.len() == 1 {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                x(0),
                y(values[0]),
                color(*sev)
            );
        }
        let ly = TOP + 14.0 * n as f64 + 6.0;
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" font-family="system-ui, sans-serif" font-size="11" fill="#333">{} ({})</text>"##,
            W - RIGHT + 12.0,
            ly - 9.0,
            color(*sev),
            W - RIGHT + 26.0,
            ly,
            escape(sev.as_str()),
            values.last().copied().unwrap_or(0)
        );
    }
    if series.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-family="system-ui, sans-serif" font-size="13" fill="#777">no findings in this period</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn the_plot_is_well_formed_xml_with_a_line_per_severity() {
        let pts = vec![
            TrendPoint {
                day: day("2026-11-30"),
                severity: Severity::High,
                open: 3,
                new: 3,
                fixed: 0,
            },
            TrendPoint {
                day: day("2026-12-01"),
                severity: Severity::High,
                open: 5,
                new: 2,
                fixed: 0,
            },
            TrendPoint {
                day: day("2026-12-01"),
                severity: Severity::Low,
                open: 40,
                new: 40,
                fixed: 0,
            },
        ];
        let svg = trend_plot(&pts, day("2026-11-29"), day("2026-12-01"));
        let doc = roxmltree::Document::parse(&svg).expect("well-formed");
        let lines: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(
            svg.contains("high (5)") && svg.contains("low (40)"),
            "{svg}"
        );
        // y axis tops at a round number above the largest value.
        assert!(svg.contains(">50</text>"), "{svg}");
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn an_empty_period_says_so() {
        let svg = trend_plot(&[], day("2026-12-01"), day("2026-12-01"));
        roxmltree::Document::parse(&svg).unwrap();
        assert!(svg.contains("no findings in this period"));
    }

    #[test]
    fn nice_bounds() {
        assert_eq!(
            [0, 1, 3, 7, 10, 11, 260].map(nice_max),
            [1, 1, 5, 10, 10, 20, 500]
        );
    }
}
