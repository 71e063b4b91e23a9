//! Small inline SVG line charts of a percentage over time, for the status page. No scripts, no
//! external assets; gaps (samples without a value) break the line.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::report::local;

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// An SVG chart of `points` (time, percent), oldest first, drawn in `colour` (a CSS colour the
/// caller controls, never data).
pub(crate) fn percent_chart(
    label: &str,
    colour: &str,
    points: &[(DateTime<Utc>, Option<u8>)],
) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>"#,
        label = super::page::escape(label),
    );
    for pct in [0u8, 25, 50, 75, 100] {
        let y = TOP + plot_h * (1.0 - f64::from(pct) / 100.0);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="#d0d7de" stroke-width="1"/>"##,
            x2 = LEFT + plot_w,
        );
        if pct % 50 == 0 {
            let _ = write!(
                svg,
                r##"<text x="{x:.1}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#57606a">{pct}%</text>"##,
                x = LEFT - 6.0,
                ty = y + 4.0,
            );
        }
    }

    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="13" text-anchor="middle" fill="#57606a">no samples yet</text></svg>"##,
            x = LEFT + plot_w / 2.0,
            y = TOP + plot_h / 2.0,
        );
        return svg;
    };
    let start = first.0;
    let span = (last.0 - start).num_milliseconds().max(1) as f64;
    let at = |time: DateTime<Utc>, pct: u8| {
        let x = if points.len() == 1 {
            LEFT + plot_w
        } else {
            LEFT + plot_w * ((time - start).num_milliseconds() as f64 / span).clamp(0.0, 1.0)
        };
        let y = TOP + plot_h * (1.0 - f64::from(pct.min(100)) / 100.0);
        (x, y)
    };

    // One polyline per run of known values; a lone known value becomes a dot.
    let mut run: Vec<(f64, f64)> = Vec::new();
    let flush = |run: &mut Vec<(f64, f64)>, svg: &mut String| {
        match run.as_slice() {
            [] => {}
            [(x, y)] => {
                let _ = write!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"/>"#
                );
            }
            many => {
                let coords: Vec<String> =
                    many.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
                    coords.join(" ")
                );
            }
        }
        run.clear();
    };
    for (time, value) in points {
        match value {
            Some(pct) => run.push(at(*time, *pct)),
            None => flush(&mut run, &mut svg),
        }
    }
    flush(&mut run, &mut svg);

    let axis_y = HEIGHT - 6.0;
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{axis_y}" font-size="11" fill="#57606a">{from}</text><text x="{x:.1}" y="{axis_y}" font-size="11" text-anchor="end" fill="#57606a">{to}</text>"##,
        from = local(start).format("%H:%M"),
        to = local(last.0).format("%H:%M"),
        x = LEFT + plot_w,
    );
    if let Some((time, Some(pct))) = points.iter().rev().find(|(_, v)| v.is_some()) {
        let (x, y) = at(*time, *pct);
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{ty:.1}" font-size="12" font-weight="bold" text-anchor="end" fill="{colour}">{pct}%</text>"#,
            ty = (y - 6.0).max(TOP + 10.0),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_544_514, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn a_series_is_one_polyline_with_its_last_value() {
        let points: Vec<_> = (0..10).map(|i| (t(i), Some(40 + i as u8))).collect();
        let svg = percent_chart("Disk", "#0969da", &points);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert!(svg.contains(">49%</text>"), "{svg}");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn gaps_split_the_line() {
        let points = [
            (t(0), Some(10)),
            (t(1), Some(20)),
            (t(2), None),
            (t(3), Some(30)),
            (t(4), None),
            (t(5), Some(35)),
            (t(6), Some(40)),
        ];
        let svg = percent_chart("Memory", "#8250df", &points);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }

    #[test]
    fn no_samples_says_so() {
        let svg = percent_chart("Disk", "#0969da", &[]);
        assert!(svg.contains("no samples yet"));
        assert!(!svg.contains("<polyline"));
        let svg = percent_chart("Disk", "#0969da", &[(t(0), None)]);
        assert!(!svg.contains("<polyline") && !svg.contains("<circle"));
    }

    #[test]
    fn points_stay_inside_the_plot() {
        let points = [(t(0), Some(0)), (t(1), Some(100)), (t(1), Some(255))];
        let svg = percent_chart("Disk", "#0969da", &points);
        let coords = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        for pair in coords.split(' ') {
            let (x, y) = pair.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=WIDTH - RIGHT).contains(&x), "{pair}");
            assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "{pair}");
        }
    }
}
