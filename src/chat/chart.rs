//! Incident charts: the metric behind an alert over the last window, with
//! the alert's threshold, as a PNG for the incident's thread. Model: the
//! threshold comes out of the rule's expression, the series are picked
//! from query results, and the picture is drawn in memory; fetching the
//! points is [`super::charts`]'s.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{FixedOffset, TimeZone};
use plotters::prelude::*;
use promql_parser::parser::Expr;

use super::card::human_value;
use super::clip;
use crate::clock::Millis;
use crate::labels::Labels;

pub const WIDTH: u32 = 800;
pub const HEIGHT: u32 = 360;

/// More lines than this are unreadable; the highest last values are kept.
pub const MAX_SERIES: usize = 5;

/// The font for every chart, compiled in (DejaVu Sans Mono, see
/// `assets/fonts/LICENSE-DejaVu`): a server has no fonts to rely on.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("nothing to draw: no points in the window")]
    Empty,
    #[error("drawing the chart: {0}")]
    Draw(String),
    #[error("encoding the chart as PNG: {0}")]
    Encode(String),
}

/// What to chart for an alert rule's expression.
///
/// A comparison (`x > 40000`, `predicted > capacity * 0.95`) charts its
/// sides: the side that is not a number as the line, the other as the
/// threshold (a number, or an expression drawn as its own line). `A
/// unless B` and `A and B` fire on A's series, so A is charted. Anything
/// else is charted whole, with no threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub expr: String,
    pub threshold: Option<f64>,
    /// A threshold that is itself an expression.
    pub against: Option<String>,
}

pub fn plan(expr: &str) -> Plan {
    let whole = Plan {
        expr: one_line(expr),
        threshold: None,
        against: None,
    };
    match crate::promql::parse(expr) {
        Ok(parsed) => plan_of(&parsed).unwrap_or(whole),
        Err(_) => whole,
    }
}

fn plan_of(e: &Expr) -> Option<Plan> {
    let Expr::Binary(b) = unparen(e) else {
        return None;
    };
    let op = b.op.to_string();
    if op == "unless" || op == "and" {
        return plan_of(&b.lhs).or_else(|| {
            Some(Plan {
                expr: one_line(&b.lhs.to_string()),
                threshold: None,
                against: None,
            })
        });
    }
    // `x > bool 100` is 0 or 1: charting x would hide what fired.
    if !b.op.is_comparison_operator() || b.modifier.as_ref().is_some_and(|m| m.return_bool) {
        return None;
    }
    let side = |e: &Expr| one_line(&e.to_string());
    Some(match (number(&b.lhs), number(&b.rhs)) {
        (None, Some(t)) => Plan {
            expr: side(&b.lhs),
            threshold: Some(t),
            against: None,
        },
        (Some(t), None) => Plan {
            expr: side(&b.rhs),
            threshold: Some(t),
            against: None,
        },
        (None, None) => Plan {
            expr: side(&b.lhs),
            threshold: None,
            against: Some(side(&b.rhs)),
        },
        (Some(_), Some(_)) => return None,
    })
}

/// Rule files spread long expressions over lines; a caption wants one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

fn number(e: &Expr) -> Option<f64> {
    match unparen(e) {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Unary(u) => number(&u.expr).map(|v| -v),
        _ => None,
    }
}

/// The series of a result that belong to the alert: those whose every
/// label the alert carries with the same value (an alert's labels are its
/// series' plus the rule's).
pub fn belongs(series: &Labels, alert: &Labels) -> bool {
    series
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .all(|(k, v)| alert.get(k) == Some(v))
}

/// One line on the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub label: String,
    /// Oldest first.
    pub points: Vec<(Millis, f64)>,
}

/// Collects points into lines, one per label set, keeping at most
/// [`MAX_SERIES`].
#[derive(Debug, Default)]
pub struct Lines(BTreeMap<String, Vec<(Millis, f64)>>);

impl Lines {
    pub fn push(&mut self, labels: &Labels, at: Millis, v: f64) {
        if v.is_finite() {
            self.0.entry(labels.to_string()).or_default().push((at, v));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_lines(self) -> Vec<Line> {
        let mut lines: Vec<Line> = self
            .0
            .into_iter()
            .map(|(label, points)| Line { label, points })
            .collect();
        let last = |l: &Line| l.points.last().map_or(f64::MIN, |p| p.1);
        lines.sort_by(|a, b| last(b).total_cmp(&last(a)));
        lines.truncate(MAX_SERIES);
        lines
    }
}

/// Everything one picture needs.
#[derive(Clone, Debug)]
pub struct Spec {
    pub title: String,
    pub lines: Vec<Line>,
    pub threshold: Option<f64>,
    /// Thresholds that change over time (an expression's series).
    pub limits: Vec<Line>,
    pub from: Millis,
    pub to: Millis,
    /// Where times on the axis are shown, and its name.
    pub offset: FixedOffset,
    pub zone: String,
}

const PALETTE: [RGBColor; MAX_SERIES] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];
const THRESHOLD: RGBColor = RGBColor(214, 39, 40);

fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok())
}

/// Draws `spec` and encodes it as PNG.
pub fn render(spec: &Spec) -> Result<Vec<u8>, ChartError> {
    if spec.lines.iter().all(|l| l.points.is_empty()) {
        return Err(ChartError::Empty);
    }
    if !font_ready() {
        return Err(ChartError::Draw("the embedded font does not load".into()));
    }
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(spec, &mut rgb).map_err(|e| ChartError::Draw(e.to_string()))?;
    encode(&rgb)
}

fn y_range(spec: &Spec) -> (f64, f64) {
    let values = spec
        .lines
        .iter()
        .chain(&spec.limits)
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(spec.threshold);
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // From zero when everything is positive: a rise from 40k to 41k should
    // not look like a cliff.
    let lo = if lo >= 0.0 { 0.0 } else { lo };
    // A flat line still gets some height to sit in.
    let span = (hi - lo).max(hi.abs() * 0.1).max(1e-9);
    (lo, hi + span * 0.1)
}

fn draw<'a>(spec: &Spec, rgb: &'a mut [u8]) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = y_range(spec);
    let to = spec.to.max(spec.from + 1);
    let mut chart = ChartBuilder::on(&root)
        .caption(&spec.title, (FAMILY, 18).into_font())
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(spec.from..to, lo..hi)?;
    let offset = spec.offset;
    let time = move |t: &Millis| {
        offset
            .timestamp_millis_opt(*t)
            .single()
            .map_or_else(String::new, |d| d.format("%H:%M").to_string())
    };
    let value = |v: &f64| human_value(*v);
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&time)
        .y_label_formatter(&value)
        .x_desc(spec.zone.as_str())
        .label_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, line) in spec.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(clip(&line.label, 60))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    for limit in &spec.limits {
        chart
            .draw_series(LineSeries::new(
                limit.points.iter().copied(),
                THRESHOLD.stroke_width(1),
            ))?
            .label(clip(&format!("threshold {}", limit.label), 60))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], THRESHOLD.stroke_width(1))
            });
    }
    if let Some(t) = spec.threshold {
        chart
            .draw_series(LineSeries::new(
                [(spec.from, t), (to, t)],
                THRESHOLD.stroke_width(1),
            ))?
            .label(format!("threshold {}", human_value(t)))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], THRESHOLD.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()?;
    root.present()?;
    Ok(())
}

fn encode(rgb: &[u8]) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    let mut w = enc
        .write_header()
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    w.write_image_data(rgb)
        .map_err(|e| ChartError::Encode(e.to_string()))?;
    w.finish().map_err(|e| ChartError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comparison_with_a_number_charts_the_other_side_against_it() {
        let p = plan("sum by (event) (rate(listeners_joined_total[1m])) * 60 > 40000");
        assert_eq!(
            p.expr,
            "sum by (event) (rate(listeners_joined_total[1m])) * 60"
        );
        assert_eq!(p.threshold, Some(40000.0));
        let p = plan("(0.5 >= speaker_feedback_ratio)");
        assert_eq!(
            (p.expr.as_str(), p.threshold),
            ("speaker_feedback_ratio", Some(0.5))
        );
        assert_eq!(plan("x < -3").threshold, Some(-3.0));
        for whole in [
            "up == bool 0",
            "absent(up)",
            "1 > 2",
            "rate(x[5m])",
            "not promql (",
        ] {
            assert_eq!(plan(whole).threshold, None, "{whole}");
            assert_eq!(plan(whole).expr, whole);
        }
    }

    #[test]
    fn the_alerts_own_series_are_the_ones_charted() {
        let alert: Labels = [
            ("alertname", "Surge"),
            ("event", "launch"),
            ("severity", "critical"),
        ]
        .into_iter()
        .collect();
        let mine: Labels = [("__name__", "x"), ("event", "launch")]
            .into_iter()
            .collect();
        let other: Labels = [("event", "other")].into_iter().collect();
        assert!(belongs(&mine, &alert));
        assert!(!belongs(&other, &alert));
        assert!(
            belongs(&Labels::new(), &alert),
            "an aggregate to one series"
        );
    }

    #[test]
    fn lines_keep_the_highest_few_and_drop_non_finite_points() {
        let mut lines = Lines::default();
        for i in 0..8 {
            let l: Labels = [("room", format!("r{i}").as_str())].into_iter().collect();
            lines.push(&l, 0, f64::from(i));
            lines.push(&l, 1, f64::NAN);
        }
        let out = lines.into_lines();
        assert_eq!(out.len(), MAX_SERIES);
        assert_eq!(out[0].label, "{room=\"r7\"}");
        assert!(out.iter().all(|l| l.points.len() == 1));
    }

    fn spec() -> Spec {
        let from = 1_684_965_000_000;
        Spec {
            title: "ListenerSurge: joins per minute".into(),
            lines: vec![Line {
                label: "{event=\"launch\"}".into(),
                points: (0..30)
                    .map(|i| (from + i * 30_000, 1000.0 * (i * i) as f64))
                    .collect(),
            }],
            threshold: Some(40_000.0),
            limits: Vec::new(),
            from,
            to: from + 29 * 30_000,
            offset: FixedOffset::west_opt(4 * 3600).unwrap(),
            zone: "ET".into(),
        }
    }

    #[test]
    fn renders_a_png_of_the_promised_size() {
        let png = render(&spec()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        // Drawn, not blank: a white canvas compresses to almost nothing.
        assert!(png.len() > 5_000, "{} bytes", png.len());
    }

    #[test]
    fn the_threshold_and_the_line_are_drawn_in_their_colours() {
        let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
        assert!(font_ready());
        draw(&spec(), &mut rgb).unwrap();
        let has = |c: RGBColor| rgb.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(THRESHOLD), "threshold line");
        assert!(has(PALETTE[0]), "series line");
        let mut no_threshold = spec();
        no_threshold.threshold = None;
        let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
        draw(&no_threshold, &mut rgb).unwrap();
        assert!(
            !rgb.chunks(3)
                .any(|p| p == [THRESHOLD.0, THRESHOLD.1, THRESHOLD.2])
        );
    }

    #[test]
    fn nothing_to_draw_is_an_error_not_an_empty_picture() {
        let mut s = spec();
        s.lines[0].points.clear();
        assert!(matches!(render(&s), Err(ChartError::Empty)));
    }
}
