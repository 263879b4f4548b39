//! Charts as server-side SVG: stacked bars and lines over time buckets, drawn by hand (a
//! chart library would cost more compile time than these ~150 lines). Nothing a function
//! controls reaches the markup: only numbers and fixed names.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 180.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 20.0;

/// One series: a name for the legend, a colour (Okabe-Ito, readable by colour-blind eyes),
/// a value per bucket.
pub struct Series {
    pub name: &'static str,
    pub color: &'static str,
    pub values: Vec<f64>,
}

/// What a chart shows.
pub struct Chart<'a> {
    pub title: &'a str,
    pub unit: &'a str,
    /// Labels under the first and last bucket.
    pub from: String,
    pub to: String,
    /// Bucket indexes marked with a red line (OOM kills, crashes), and what happened there.
    pub marks: Vec<(usize, String)>,
    /// A limit drawn as a dashed line (stacked charts).
    pub ceiling: Option<f64>,
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|m| *m >= v).unwrap_or(v)
}

fn fmt(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Chart<'_> {
    fn frame(&self, out: &mut String, series: &[Series], max: f64, buckets: usize) {
        let _ = write!(
            out,
            r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
            t = self.title
        );
        let _ = write!(out, r##"<text x="{LEFT}" y="14" class="ct">{} ({})</text>"##, self.title, self.unit);
        let mut x = LEFT + 260.0;
        for s in series {
            let _ = write!(
                out,
                r#"<rect x="{x}" y="6" width="10" height="10" fill="{}"/><text x="{}" y="15" class="cl">{}</text>"#,
                s.color,
                x + 14.0,
                s.name
            );
            x += 24.0 + 7.0 * s.name.len() as f64;
        }
        let y0 = H - BOTTOM;
        for i in 0..=2 {
            let v = max * i as f64 / 2.0;
            let y = y0 - (y0 - TOP) * i as f64 / 2.0;
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ccc" stroke-width="0.5"/><text x="{}" y="{}" class="ca" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 4.0,
                y + 4.0,
                fmt(v)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{}" class="ca">{}</text><text x="{}" y="{}" class="ca" text-anchor="end">{}</text>"#,
            H - 4.0,
            self.from,
            W - RIGHT,
            H - 4.0,
            self.to
        );
        let bw = (W - LEFT - RIGHT) / buckets.max(1) as f64;
        for (i, what) in &self.marks {
            let x = LEFT + bw * (*i as f64 + 0.5);
            let _ = write!(
                out,
                r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{y0}" stroke="#D55E00" stroke-width="2" stroke-dasharray="3 2"><title>{what}</title></line>"##
            );
        }
    }

    /// Bars, the series stacked in each bucket.
    pub fn stacked(&self, series: &[Series]) -> String {
        let buckets = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        let totals: Vec<f64> = (0..buckets).map(|i| series.iter().filter_map(|s| s.values.get(i)).sum()).collect();
        let max = nice_max(totals.iter().cloned().fold(self.ceiling.unwrap_or(0.0), f64::max));
        let mut out = String::new();
        self.frame(&mut out, series, max, buckets);
        let bw = (W - LEFT - RIGHT) / buckets.max(1) as f64;
        let scale = (H - BOTTOM - TOP) / max;
        if let Some(c) = self.ceiling {
            let y = H - BOTTOM - c * scale;
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#D55E00" stroke-width="1.5" stroke-dasharray="6 3"><title>limit: {}</title></line>"##,
                W - RIGHT,
                fmt(c)
            );
        }
        for i in 0..buckets {
            let mut y = H - BOTTOM;
            for s in series {
                let v = s.values.get(i).copied().unwrap_or(0.0);
                if v <= 0.0 {
                    continue;
                }
                let h = v * scale;
                y -= h;
                let _ = write!(
                    out,
                    r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    LEFT + bw * i as f64 + bw * 0.1,
                    (bw * 0.8).max(0.5),
                    s.color,
                    s.name,
                    fmt(v)
                );
            }
        }
        out.push_str("</svg>");
        out
    }

    /// Lines; a bucket without a value (NaN) breaks the line.
    pub fn lines(&self, series: &[Series], dashed: &[&str]) -> String {
        let buckets = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        let top = series.iter().flat_map(|s| s.values.iter()).filter(|v| v.is_finite()).cloned().fold(0.0, f64::max);
        let max = nice_max(top);
        let mut out = String::new();
        self.frame(&mut out, series, max, buckets);
        let bw = (W - LEFT - RIGHT) / buckets.max(1) as f64;
        let scale = (H - BOTTOM - TOP) / max;
        for s in series {
            let mut d = String::new();
            let mut dots = String::new();
            let mut pen_down = false;
            for (i, v) in s.values.iter().enumerate() {
                if !v.is_finite() {
                    pen_down = false;
                    continue;
                }
                let (x, y) = (LEFT + bw * (i as f64 + 0.5), H - BOTTOM - v * scale);
                let _ = write!(d, "{}{x:.1} {y:.1} ", if pen_down { "L" } else { "M" });
                // A lone minute has no line: the dot shows it.
                let _ = write!(
                    dots,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{}"><title>{}: {}</title></circle>"#,
                    s.color,
                    s.name,
                    fmt(*v)
                );
                pen_down = true;
            }
            let dash = if dashed.contains(&s.name) { r#" stroke-dasharray="6 3""# } else { "" };
            let _ = write!(
                out,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2"{dash}><title>{}</title></path>"#,
                s.color, s.name
            );
            out.push_str(&dots);
        }
        out.push_str("</svg>");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_bars_lines_and_marks() {
        let c = Chart {
            title: "Requests",
            unit: "per minute",
            from: "a".into(),
            to: "b".into(),
            marks: vec![(1, "OOM kill".into())],
            ceiling: Some(8.0),
        };
        let s = c.stacked(&[
            Series { name: "2xx", color: "#009E73", values: vec![1.0, 3.0] },
            Series { name: "5xx", color: "#D55E00", values: vec![0.0, 1.0] },
        ]);
        assert_eq!(s.matches("<rect x=\"").count(), 2 + 3, "legend and non-empty bars: {s}");
        assert!(s.contains("<title>OOM kill</title>") && s.contains("limit: 8") && s.ends_with("</svg>"));
        let c = Chart { marks: Vec::new(), ..c };
        let l = c.lines(&[Series { name: "p50", color: "#0072B2", values: vec![1.0, f64::NAN, 2.0] }], &[]);
        assert_eq!(l.matches('M').count(), 2, "a gap breaks the line: {l}");
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
