//! Charts as server-side SVG, drawn by the `plotters` crate (its SVG backend only: no fonts,
//! no bitmaps). Stacked bars and lines over time buckets, a limit as a dashed line, events
//! (OOM kills, crashes) as dashed red lines across the timeline. The title, unit and legend
//! are HTML around the SVG (real text, read by screen readers and not drawn over the data).
//! Nothing a function controls reaches the markup: only numbers and fixed names.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde::Serialize;

/// Small enough that the labels stay readable when a phone shrinks the chart to its width.
const SIZE: (u32, u32) = (480, 220);

/// Okabe-Ito colours, told apart by colour-blind eyes too; orange, sky and yellow darkened to
/// 3:1 on white (checked in the console's tests).
pub const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
pub const ORANGE: RGBColor = RGBColor(0xB8, 0x7A, 0x00);
pub const RED: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
pub const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub const SKY: RGBColor = RGBColor(0x35, 0x93, 0xD0);
pub const PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
pub const YELLOW: RGBColor = RGBColor(0x8F, 0x80, 0x00);
/// The axis labels' colour: the stylesheet's `--muted`, on white (checked for contrast in
/// the console's tests).
pub const LABEL: RGBColor = RGBColor(0x55, 0x55, 0x55);
const GRID: RGBColor = RGBColor(0xD0, 0xD0, 0xD0);

pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// One series: a name for the legend, a colour, a value per bucket.
pub struct Series {
    pub name: &'static str,
    pub color: RGBColor,
    pub values: Vec<f64>,
}

/// What a chart shows.
pub struct Chart<'a> {
    /// The figure's element id (`chart-ID`).
    pub id: &'a str,
    pub title: &'a str,
    pub unit: &'a str,
    /// A label per bucket (its start, "HH:MM").
    pub times: &'a [String],
    /// Bucket indexes marked with a red dashed line (OOM kills, crashes), and what happened.
    pub marks: Vec<(usize, String)>,
    /// A limit drawn as a dashed line.
    pub ceiling: Option<f64>,
}

/// What a stacked chart's summary says of each series.
#[derive(Clone, Copy)]
pub enum Say {
    /// The sum over the range (counts).
    Total,
    /// The largest bucket (memory).
    Peak,
    /// The last bucket with a value (averages).
    Last,
}

/// A legend entry.
#[derive(Serialize)]
pub struct Key {
    pub name: &'static str,
    pub color: String,
    pub dashed: bool,
}

/// A drawn chart, as the page shows it.
#[derive(Serialize)]
pub struct Drawn {
    pub id: String,
    pub title: String,
    pub unit: String,
    pub keys: Vec<Key>,
    /// What the chart says in words: totals or last values, and the marked events.
    pub summary: String,
    pub svg: String,
}

type Ctx<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Drawing = Result<(), Box<dyn std::error::Error>>;

/// The top of the value axis: a round number at or above `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0].iter().map(|m| m * mag).find(|m| *m >= v).unwrap_or(v)
}

pub fn fmt(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Chart<'_> {
    fn buckets(&self) -> usize {
        self.times.len().max(1)
    }

    /// Axes, grid, marks and limit; `body` draws the data.
    fn draw(&self, max: f64, keys: Vec<Key>, summary: String, body: &dyn Fn(&mut Ctx<'_, '_>) -> Drawing) -> Drawn {
        let mut svg = String::new();
        let n = self.buckets() as f64;
        let drawn: Drawing = (|| {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(8)
                .margin_right(16)
                .x_label_area_size(22)
                .y_label_area_size(46)
                .build_cartesian_2d(0f64..n, 0f64..max)?;
            // Ticks fall on bucket starts; the end of the last bucket is now.
            let x_label = |x: &f64| match (x.fract() == 0.0, *x as usize) {
                (true, i) if i == self.times.len() => "now".to_string(),
                (true, i) => self.times.get(i).cloned().unwrap_or_default(),
                _ => String::new(),
            };
            let y_label = |y: &f64| fmt(*y);
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(5)
                .y_labels(5)
                .max_light_lines(0)
                .x_label_formatter(&x_label)
                .y_label_formatter(&y_label)
                .label_style(("sans-serif", 16).into_font().color(&LABEL))
                .bold_line_style(GRID.stroke_width(1))
                .axis_style(LABEL.stroke_width(1))
                .draw()?;
            body(&mut chart)?;
            if let Some(c) = self.ceiling {
                chart.draw_series(DashedLineSeries::new([(0.0, c), (n, c)], 8, 4, RED.stroke_width(2)))?;
            }
            for (i, _) in &self.marks {
                let x = *i as f64 + 0.5;
                chart.draw_series(DashedLineSeries::new([(x, 0.0), (x, max)], 4, 3, RED.stroke_width(2)))?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            // Drawing into a string fails only on a bug: say so where the chart would be.
            eprintln!("fnbox serve: chart {}: {e}", self.title);
            svg.clear();
        }
        // The SVG scales with its box; it is labelled by the figure's caption.
        let svg = svg.replacen(
            "<svg ",
            &format!(
                "<svg class=\"chart\" role=\"img\" aria-labelledby=\"chart-{0}-t\" aria-describedby=\"chart-{0}-s\" ",
                self.id
            ),
            1,
        );
        let mut summary = summary;
        for (i, what) in &self.marks {
            summary.push_str(&format!("; at {}: {what}", self.times.get(*i).map(String::as_str).unwrap_or("?")));
        }
        Drawn {
            id: format!("chart-{}", self.id),
            title: self.title.to_string(),
            unit: self.unit.to_string(),
            keys,
            summary,
            svg,
        }
    }

    fn keys(series: &[Series], dashed: &[&str]) -> Vec<Key> {
        series.iter().map(|s| Key { name: s.name, color: hex(s.color), dashed: dashed.contains(&s.name) }).collect()
    }

    /// Bars, the series stacked in each bucket. The summary says `say` of each series.
    pub fn stacked(&self, series: &[Series], say: Say) -> Drawn {
        let buckets = self.buckets();
        let totals: Vec<f64> = (0..buckets).map(|i| series.iter().filter_map(|s| s.values.get(i)).sum()).collect();
        // Room above a limit, so its line is not the frame's edge.
        let max = nice_max(totals.iter().cloned().fold(self.ceiling.map_or(0.0, |c| c * 1.1), f64::max));
        let summary = series
            .iter()
            .map(|s| {
                let v = s.values.iter().copied().filter(|v| v.is_finite());
                match say {
                    Say::Total => format!("{} {}", s.name, fmt(v.sum())),
                    Say::Peak => format!("{} peak {}", s.name, fmt(v.fold(0.0, f64::max))),
                    Say::Last => match s.values.iter().rev().find(|v| v.is_finite() && **v > 0.0) {
                        Some(v) => format!("{} last {}", s.name, fmt(*v)),
                        None => format!("{} none", s.name),
                    },
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut keys = Self::keys(series, &[]);
        if self.ceiling.is_some() {
            keys.push(Key { name: "limit", color: hex(RED), dashed: true });
        }
        self.draw(max, keys, summary, &|chart| {
            let mut bars = Vec::new();
            for i in 0..buckets {
                let mut y = 0.0;
                for s in series {
                    let v = s.values.get(i).copied().filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0);
                    if v > 0.0 {
                        let x = i as f64;
                        bars.push(Rectangle::new([(x + 0.1, y), (x + 0.9, y + v)], s.color.filled()));
                        y += v;
                    }
                }
            }
            chart.draw_series(bars)?;
            Ok(())
        })
    }

    /// Lines; a bucket without a value (NaN) breaks the line, and every value has a dot (a
    /// lone minute has no line). The summary gives each series' last value.
    pub fn lines(&self, series: &[Series], dashed: &[&str]) -> Drawn {
        let top = series.iter().flat_map(|s| s.values.iter()).filter(|v| v.is_finite()).cloned().fold(0.0, f64::max);
        let summary = series
            .iter()
            .map(|s| match s.values.iter().rev().find(|v| v.is_finite()) {
                Some(v) => format!("{} last {}", s.name, fmt(*v)),
                None => format!("{} none", s.name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        self.draw(nice_max(top), Self::keys(series, dashed), summary, &|chart| {
            for s in series {
                let points: Vec<Option<(f64, f64)>> =
                    s.values.iter().enumerate().map(|(i, v)| v.is_finite().then_some((i as f64 + 0.5, *v))).collect();
                for run in points.split(|p| p.is_none()).filter(|r| r.len() > 1) {
                    let run = run.iter().flatten().copied();
                    if dashed.contains(&s.name) {
                        chart.draw_series(DashedLineSeries::new(run, 6, 3, s.color.stroke_width(2)))?;
                    } else {
                        chart.draw_series(LineSeries::new(run, s.color.stroke_width(2)))?;
                    }
                }
                chart.draw_series(points.iter().flatten().map(|p| Circle::new(*p, 2, s.color.filled())))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("12:{i:02}")).collect()
    }

    #[test]
    fn draws_bars_lines_limits_and_marks() {
        let t = times(2);
        let c = Chart {
            id: "req",
            title: "Requests",
            unit: "per minute",
            times: &t,
            marks: vec![(1, "1 OOM kill".into())],
            ceiling: Some(8.0),
        };
        let d = c.stacked(
            &[
                Series { name: "2xx", color: GREEN, values: vec![1.0, 3.0] },
                Series { name: "5xx", color: RED, values: vec![0.0, 1.0] },
            ],
            Say::Total,
        );
        assert!(d.svg.starts_with("<svg class=\"chart\" role=\"img\" aria-labelledby=\"chart-req-t\""), "{}", d.svg);
        assert_eq!(d.svg.matches("fill=\"#009E73\"").count(), 2, "a bar per non-empty 2xx minute: {}", d.svg);
        assert_eq!(d.svg.matches("fill=\"#D55E00\"").count(), 1, "the empty 5xx minute has no bar");
        // The limit and the mark: dashed red lines (segments of a polyline each).
        assert!(d.svg.matches("stroke=\"#D55E00\"").count() >= 4, "{}", d.svg);
        assert!(d.svg.ends_with("</svg>\n") || d.svg.ends_with("</svg>"), "{}", d.svg);
        assert!(!d.svg.contains("style="), "inline styles are refused by the console's CSP");
        assert_eq!(d.summary, "2xx 4, 5xx 1; at 12:01: 1 OOM kill");
        assert_eq!(d.keys.iter().map(|k| k.name).collect::<Vec<_>>(), ["2xx", "5xx", "limit"]);

        let t = times(3);
        let c = Chart { marks: Vec::new(), ceiling: None, times: &t, ..c };
        let l = c.lines(&[Series { name: "p50", color: BLUE, values: vec![1.0, f64::NAN, 2.0] }], &[]);
        let blue_line = "<polyline fill=\"none\" opacity=\"1\" stroke=\"#0072B2\"";
        assert_eq!(l.svg.matches(blue_line).count(), 0, "a gap leaves two lone points: no line");
        assert_eq!(l.svg.matches("<circle").count(), 2, "{}", l.svg);
        assert_eq!(l.summary, "p50 last 2");
        let l = c.lines(&[Series { name: "p50", color: BLUE, values: vec![1.0, 2.0, 2.0] }], &[]);
        assert_eq!(l.svg.matches(blue_line).count(), 1, "{}", l.svg);
        assert!(l.svg.contains(">\nnow\n</text>"), "the axis ends now: {}", l.svg);
        assert_eq!(nice_max(7.0), 8.0);
        assert_eq!(nice_max(563.2), 600.0);
        let m = c.stacked(&[Series { name: "rss", color: BLUE, values: vec![3.0, 2.0, 0.0] }], Say::Peak);
        assert_eq!(m.summary, "rss peak 3");
        let m = c.stacked(&[Series { name: "ms", color: BLUE, values: vec![3.0, 2.0, 0.0] }], Say::Last);
        assert_eq!(m.summary, "ms last 2");
        assert_eq!(nice_max(0.0), 1.0);
    }
}
