//! Small inline SVG line charts of a percentage over time, for the status page. No scripts, no
//! external assets; gaps (samples without a value) break the line. A [`Projection`] extends the
//! time axis and draws a dashed line from the last value towards 100 % (the disk-full forecast).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::report::local;

const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// Where a series is heading: 100 % at `full_at`, shown with `label` (escaped here).
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    /// When the value reaches 100 %.
    pub full_at: DateTime<Utc>,
    /// Text shown at the end of the dashed line, e.g. `full in about 5 h`.
    pub label: String,
}

/// An SVG chart of `points` (time, percent), oldest first, drawn in `colour` (a CSS colour the
/// caller controls, never data), with an optional projection of the last value.
pub(crate) fn percent_chart(
    label: &str,
    colour: &str,
    points: &[(DateTime<Utc>, Option<u8>)],
    projection: Option<&Projection>,
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
    // A projection takes at most as much room as the history (at least ten minutes of it).
    let end = projection.map_or(last.0, |p| {
        let room = (last.0 - start).max(chrono::Duration::minutes(10));
        p.full_at.min(last.0 + room).max(last.0)
    });
    let span = (end - start).num_milliseconds().max(1) as f64;
    let x_of = |time: DateTime<Utc>| {
        if points.len() == 1 && end == last.0 {
            LEFT + plot_w
        } else {
            LEFT + plot_w * ((time - start).num_milliseconds() as f64 / span).clamp(0.0, 1.0)
        }
    };
    let y_of = |pct: f64| TOP + plot_h * (1.0 - pct.clamp(0.0, 100.0) / 100.0);
    let at = |time: DateTime<Utc>, pct: u8| (x_of(time), y_of(f64::from(pct)));

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

    let last_known = points
        .iter()
        .rev()
        .find_map(|(t, v)| v.map(|pct| (*t, pct)));
    if let (Some(p), Some((t0, pct0))) = (projection, last_known) {
        // Linear from the last value to 100 % at `full_at`, cut where the axis ends.
        let whole = (p.full_at - t0).num_milliseconds().max(1) as f64;
        let shown = (end - t0).num_milliseconds().max(0) as f64;
        let pct_end = f64::from(pct0) + (100.0 - f64::from(pct0)) * (shown / whole).min(1.0);
        let (x0, y0) = at(t0, pct0);
        let (x1, y1) = (x_of(end), y_of(pct_end));
        let _ = write!(
            svg,
            r#"<line class="projection" x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y1:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4"/><text x="{x1:.1}" y="{ty:.1}" font-size="11" text-anchor="end" fill="{colour}">{text}</text>"#,
            ty = (y1 - 6.0).max(TOP + 10.0),
            text = super::page::escape(&p.label),
        );
    }

    let axis_y = HEIGHT - 6.0;
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{axis_y}" font-size="11" fill="#57606a">{from}</text><text x="{x:.1}" y="{axis_y}" font-size="11" text-anchor="end" fill="#57606a">{to}</text>"##,
        from = local(start).format("%H:%M"),
        to = local(end).format("%H:%M"),
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
        let svg = percent_chart("Disk", "#0969da", &points, None);
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
        let svg = percent_chart("Memory", "#8250df", &points, None);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }

    #[test]
    fn no_samples_says_so() {
        let svg = percent_chart("Disk", "#0969da", &[], None);
        assert!(svg.contains("no samples yet"));
        assert!(!svg.contains("<polyline"));
        let svg = percent_chart("Disk", "#0969da", &[(t(0), None)], None);
        assert!(!svg.contains("<polyline") && !svg.contains("<circle"));
    }

    #[test]
    fn points_stay_inside_the_plot() {
        let points = [(t(0), Some(0)), (t(1), Some(100)), (t(1), Some(255))];
        let svg = percent_chart("Disk", "#0969da", &points, None);
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

    /// The `x2`/`y2` attribute of the projection's line.
    fn projection_end(svg: &str, attr: &str) -> f64 {
        let line = svg
            .split("class=\"projection\"")
            .nth(1)
            .expect("a projection");
        let value = line.split(&format!("{attr}=\"")).nth(1).expect(attr);
        value.split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn a_projection_extends_the_axis_and_heads_for_full() {
        let points: Vec<_> = (0..=6).map(|i| (t(i * 10), Some(60 + i as u8))).collect();
        let far = Projection {
            full_at: t(60 + 24 * 60),
            label: "/ full in about 1 day".into(),
        };
        let svg = percent_chart("Disk", "#0969da", &points, Some(&far));
        assert_eq!(svg.matches("class=\"projection\"").count(), 1, "{svg}");
        assert!(svg.contains("/ full in about 1 day"), "{svg}");
        // The history keeps half the width: its last point is in the middle.
        assert!(svg.contains("66%"), "{svg}");
        let (x2, y2) = (projection_end(&svg, "x2"), projection_end(&svg, "y2"));
        assert!(
            (x2 - (WIDTH - RIGHT)).abs() < 0.2,
            "the line runs to the end of the axis: {x2}"
        );
        assert!(
            y2 > TOP + 1.0,
            "a day away, it does not reach 100 % within the axis: {y2}"
        );

        let soon = Projection {
            full_at: t(70),
            label: "full".into(),
        };
        let svg = percent_chart("Disk", "#0969da", &points, Some(&soon));
        let y2 = projection_end(&svg, "y2");
        assert!(
            (y2 - TOP).abs() < 0.2,
            "within the axis it reaches 100 %: {y2}"
        );
        assert!(!percent_chart("Disk", "#0969da", &points, None).contains("projection"));
    }
}
