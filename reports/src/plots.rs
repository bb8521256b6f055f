//! The report's plots, drawn with plotters into SVG (embedded in `report.html`) and PNG (for
//! places that cannot show SVG) under `<run dir>/plots/`.
//!
//! Design decisions:
//! - Each plot is drawn by one function generic over the plotters backend, so the SVG and the PNG
//!   are the same drawing.
//! - Text uses DejaVu Sans compiled into the binary (plotters' pure-Rust `ab_glyph` font path), so
//!   drawing needs no fontconfig and looks the same on every machine. Sizes are chosen to stay
//!   readable when the 1100×620 drawing is scaled to a laptop-width page: 26 px titles, 20 px axis
//!   descriptions, 16 px tick labels.
//! - Every title says what is plotted and for which run and when; every axis names its unit.
//! - A plot without data is not drawn; the report lists it with the reason instead.
//! - The over-time plots mark each chaos event (`Aggregates::chaos`) on the same elapsed-time
//!   axis as the buckets: a dashed line at its start with its label, shaded to its end when it has
//!   one, greyed when the run could not carry it out. The axis reaches every event, so a run's
//!   late kill is still shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, FontTransform, register_font};

use crate::breakdowns::{Aggregates, BenchStep, BucketPoint, ChaosEventStats, Group, QualityStats};
use crate::error::ReportError;

/// DejaVu Sans (see `assets/DejaVu-LICENSE.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1100, 620);

/// Colour-blind-friendly palette (Okabe–Ito), cycled.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font compiled in; failure would be a build defect and
        // shows up as a plot error (unknown font) rather than a panic here.
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = register_font(FONT, style, DEJAVU_SANS);
        }
    });
}

/// One plot written to disk.
#[derive(Debug, Clone)]
pub struct PlotOutput {
    /// File stem, e.g. `latency_cdf`.
    pub stem: String,
    /// The title drawn on it.
    pub title: String,
    /// The SVG file.
    pub svg_path: PathBuf,
    /// The PNG file, when PNGs were requested.
    pub png_path: Option<PathBuf>,
    /// The SVG text, for embedding.
    pub svg: String,
}

/// A plot that was not drawn, and why.
#[derive(Debug, Clone)]
pub struct SkippedPlot {
    /// File stem.
    pub stem: String,
    /// What it would show.
    pub what: String,
    /// Why it was not drawn.
    pub reason: String,
}

/// Every plot stem, in report order.
pub const PLOT_STEMS: [&str; 6] = [
    "latency_cdf",
    "latency_over_time",
    "success_over_time",
    "vmaf_per_rendition",
    "bench_real_time_fraction",
    "bench_transcode_ratio",
];

#[derive(Clone, Copy)]
enum Plot {
    LatencyCdf,
    LatencyOverTime,
    SuccessOverTime,
    VmafPerRendition,
    BenchRealTime,
    BenchRatio,
}

impl Plot {
    const ALL: [Plot; 6] = [
        Plot::LatencyCdf,
        Plot::LatencyOverTime,
        Plot::SuccessOverTime,
        Plot::VmafPerRendition,
        Plot::BenchRealTime,
        Plot::BenchRatio,
    ];
    fn stem(self) -> &'static str {
        PLOT_STEMS[self as usize]
    }
    fn what(self) -> &'static str {
        match self {
            Plot::LatencyCdf => "Glass-to-glass latency CDF per rendition",
            Plot::LatencyOverTime => "Glass-to-glass latency over time",
            Plot::SuccessOverTime => "Segment success over time",
            Plot::VmafPerRendition => "VMAF per rendition, network vs reference transcoder",
            Plot::BenchRealTime => "Real-time fraction vs concurrent sessions",
            Plot::BenchRatio => "Transcode time ÷ segment duration vs concurrent sessions",
        }
    }
    fn missing(self, a: &Aggregates) -> Option<&'static str> {
        let has_latency = a.plot.latency_cdf.values().any(|v| !v.is_empty());
        match self {
            Plot::LatencyCdf | Plot::LatencyOverTime if !has_latency => {
                Some("no segment record carries a latency")
            }
            Plot::SuccessOverTime if a.plot.buckets.is_empty() => Some("no segment records"),
            Plot::VmafPerRendition
                if !a.quality.by_rendition.iter().any(|g| g.stats.samples > 0) =>
            {
                Some("no quality samples with a VMAF score")
            }
            Plot::BenchRealTime | Plot::BenchRatio if a.bench.is_empty() => {
                Some("no bench records (not an `lpt bench` run)")
            }
            _ => None,
        }
    }
}

/// What the titles say about the run.
#[derive(Debug, Clone)]
pub struct PlotContext {
    /// Scenario or run name.
    pub run_name: String,
    /// When it ran, human UTC.
    pub when: String,
}

/// Draws every plot that has data into `dir` (created if needed).
pub fn draw_all(
    dir: &Path,
    aggregates: &Aggregates,
    ctx: &PlotContext,
    png: bool,
) -> Result<(Vec<PlotOutput>, Vec<SkippedPlot>), ReportError> {
    register_fonts();
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut drawn = Vec::new();
    let mut skipped = Vec::new();
    for plot in Plot::ALL {
        let stem = plot.stem();
        if let Some(reason) = plot.missing(aggregates) {
            skipped.push(SkippedPlot {
                stem: stem.to_string(),
                what: plot.what().to_string(),
                reason: reason.to_string(),
            });
            continue;
        }
        let title = format!("{} — {}, {}", plot.what(), ctx.run_name, ctx.when);
        let plot_err = |message: String| ReportError::Plot {
            plot: stem.to_string(),
            message,
        };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            draw(plot, &root, &title, aggregates).map_err(plot_err)?;
            root.present().map_err(|e| plot_err(format!("{e:?}")))?;
        }
        let svg_path = dir.join(format!("{stem}.svg"));
        std::fs::write(&svg_path, &svg).map_err(|source| ReportError::Io {
            path: svg_path.clone(),
            source,
        })?;
        let png_path = if png {
            let path = dir.join(format!("{stem}.png"));
            {
                let root = BitMapBackend::new(&path, SIZE).into_drawing_area();
                draw(plot, &root, &title, aggregates).map_err(plot_err)?;
                root.present().map_err(|e| plot_err(format!("{e:?}")))?;
            }
            Some(path)
        } else {
            None
        };
        drawn.push(PlotOutput {
            stem: stem.to_string(),
            title,
            svg_path,
            png_path,
            svg,
        });
    }
    Ok((drawn, skipped))
}

type DrawResult = Result<(), String>;

fn e<T: std::fmt::Debug>(err: T) -> String {
    format!("{err:?}")
}

fn draw<DB: DrawingBackend>(
    plot: Plot,
    root: &DrawingArea<DB, Shift>,
    title: &str,
    a: &Aggregates,
) -> DrawResult {
    root.fill(&WHITE).map_err(e)?;
    match plot {
        Plot::LatencyCdf => latency_cdf(root, title, &a.plot.latency_cdf),
        Plot::LatencyOverTime => latency_over_time(root, title, a),
        Plot::SuccessOverTime => success_over_time(root, title, a),
        Plot::VmafPerRendition => vmaf(root, title, &a.quality.by_rendition),
        Plot::BenchRealTime => bench_real_time(root, title, &a.bench),
        Plot::BenchRatio => bench_ratio(root, title, &a.bench),
    }
}

/// `lo..hi` padded so it is never empty and leaves a margin at the top.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi - lo < 1e-9 {
        let pad = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 1.0 };
        return (lo - pad)..(hi + pad);
    }
    lo..(hi + (hi - lo) * 0.05)
}

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &'b str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, (FONT, 26).into_font())
        .margin(18)
        .x_label_area_size(62)
        .y_label_area_size(86);
    b
}

macro_rules! mesh {
    ($chart:expr, $x:expr, $y:expr) => {
        $chart
            .configure_mesh()
            .x_desc($x)
            .y_desc($y)
            .axis_desc_style((FONT, 20))
            .label_style((FONT, 18))
            .light_line_style(RGBColor(235, 235, 235))
    };
}

fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .label_font((FONT, 16))
        .draw()
        .map_err(e)
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3))
}

/// A chart with numeric x and y axes.
type XYChart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Few points make a line hard to see (one point makes none): mark them.
fn markers<DB: DrawingBackend>(
    chart: &mut XYChart<'_, DB>,
    points: &[(f64, f64)],
    c: RGBColor,
) -> DrawResult {
    if points.len() <= 60 {
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled())))
            .map_err(e)?;
    }
    Ok(())
}

fn latency_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    cdf: &BTreeMap<String, Vec<(f64, f64)>>,
) -> DrawResult {
    let max_s = cdf
        .values()
        .flat_map(|v| v.iter().map(|p| p.0 / 1000.0))
        .fold(0.0_f64, f64::max);
    let mut chart = chart_builder(root, title)
        .build_cartesian_2d(padded(0.0, max_s), 0.0..100.0)
        .map_err(e)?;
    mesh!(
        chart,
        "Glass-to-glass latency (s)",
        "Segments at or below (%)"
    )
    .draw()
    .map_err(e)?;
    for (i, (rendition, points)) in cdf.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(ms, f)| (ms / 1000.0, f * 100.0)),
                c.stroke_width(3),
            ))
            .map_err(e)?
            .label(rendition.as_str())
            .legend(legend_line(c));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

/// Where an over-time plot's x axis ends (s since the first record): the last bucket's end, or
/// a chaos event's start or end past it, so every event is marked.
fn time_span_s(a: &Aggregates) -> f64 {
    let buckets = a.plot.buckets.iter().map(|b| b.t_s + a.plot.bucket_s);
    let events = a.chaos.iter().map(|c| c.end_s().unwrap_or(c.start_s));
    buckets.chain(events).fold(0.0_f64, f64::max)
}

fn time_axis(a: &Aggregates) -> (f64, &'static str) {
    let span = time_span_s(a);
    if span > 7200.0 {
        (3600.0, "Time since start (h)")
    } else if span > 1200.0 {
        (60.0, "Time since start (min)")
    } else {
        (1.0, "Time since start (s)")
    }
}

fn by_rendition(a: &Aggregates) -> BTreeMap<&str, Vec<&BucketPoint>> {
    let mut m: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for b in &a.plot.buckets {
        m.entry(b.rendition.as_str()).or_default().push(b);
    }
    m
}

/// What an over-time plot shows of each bucket: one line per rendition and a dashed line over
/// all renditions.
struct OverTime<'f> {
    y: std::ops::Range<f64>,
    y_desc: String,
    per_rendition: &'f dyn Fn(&BucketPoint) -> Option<f64>,
    rendition_label: &'f dyn Fn(&str) -> String,
    all: &'f dyn Fn(&BucketPoint) -> Option<f64>,
    all_label: &'static str,
    legend_at: SeriesLabelPosition,
}

fn over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    a: &Aggregates,
    plot: OverTime<'_>,
) -> DrawResult {
    let (div, x_desc) = time_axis(a);
    let y = plot.y.clone();
    let mut chart = chart_builder(root, title)
        .build_cartesian_2d(padded(0.0, time_span_s(a) / div), plot.y)
        .map_err(e)?;
    mesh!(chart, x_desc, plot.y_desc).draw().map_err(e)?;
    chaos_spans(&mut chart, &a.chaos, div, &y)?;
    let bucket_middle = |b: &BucketPoint| (b.t_s + a.plot.bucket_s / 2.0) / div;
    let line_of = |points: &[&BucketPoint], value: &dyn Fn(&BucketPoint) -> Option<f64>| {
        points
            .iter()
            .filter_map(|b| Some((bucket_middle(b), value(b)?)))
            .collect::<Vec<(f64, f64)>>()
    };
    let series = by_rendition(a);
    let renditions = series.iter().filter(|(rendition, _)| **rendition != "all");
    for (i, (rendition, points)) in renditions.enumerate() {
        let c = color(i);
        let line = line_of(points, plot.per_rendition);
        chart
            .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label((plot.rendition_label)(rendition))
            .legend(legend_line(c));
        markers(&mut chart, &line, c)?;
    }
    if let Some(all) = series.get("all") {
        let c = RGBColor(30, 30, 30);
        let line = line_of(all, plot.all);
        chart
            .draw_series(DashedLineSeries::new(line.clone(), 8, 5, c.stroke_width(2)))
            .map_err(e)?
            .label(plot.all_label)
            .legend(legend_line(c));
        markers(&mut chart, &line, c)?;
    }
    chaos_marks(&mut chart, &a.chaos, div, &y, &plot.legend_at)?;
    legend(&mut chart, plot.legend_at)
}

/// Colour of the chaos event marks, apart from the data palette.
const CHAOS_COLOR: RGBColor = RGBColor(170, 20, 60);
/// Colour of the marks of an event the run could not carry out.
const CHAOS_FAILED_COLOR: RGBColor = RGBColor(140, 140, 140);

fn chaos_color(event: &ChaosEventStats) -> RGBColor {
    if event.ok {
        CHAOS_COLOR
    } else {
        CHAOS_FAILED_COLOR
    }
}

/// Shades each chaos event that has an end from its start to its end; drawn before the data so
/// the lines stay on top.
fn chaos_spans<DB: DrawingBackend>(
    chart: &mut XYChart<'_, DB>,
    events: &[ChaosEventStats],
    div: f64,
    y: &std::ops::Range<f64>,
) -> DrawResult {
    let spans = events.iter().filter_map(|ev| {
        let end = ev.end_s()?;
        Some(Rectangle::new(
            [(ev.start_s / div, y.start), (end / div, y.end)],
            chaos_color(ev).mix(0.12).filled(),
        ))
    });
    chart.draw_series(spans).map_err(e)?;
    Ok(())
}

/// A dashed vertical line at each chaos event's start, labelled with the event: the label runs
/// along the line, so close events do not overprint each other's labels, at the end of the
/// line away from the legend, on a light background so data lines crossing it do not hide it.
fn chaos_marks<DB: DrawingBackend>(
    chart: &mut XYChart<'_, DB>,
    events: &[ChaosEventStats],
    div: f64,
    y: &std::ops::Range<f64>,
    legend_at: &SeriesLabelPosition,
) -> DrawResult {
    use SeriesLabelPosition::{UpperLeft, UpperMiddle, UpperRight};
    let labels_on_top = !matches!(legend_at, UpperLeft | UpperMiddle | UpperRight);
    let y_end = if labels_on_top { y.end } else { y.start };
    for (i, ev) in events.iter().enumerate() {
        let c = chaos_color(ev);
        let x = ev.start_s / div;
        let line = chart
            .draw_series(DashedLineSeries::new(
                [(x, y.start), (x, y.end)],
                6,
                4,
                c.stroke_width(2),
            ))
            .map_err(e)?;
        if i == 0 {
            line.label("chaos event (shaded until it was over)")
                .legend(legend_line(CHAOS_COLOR));
        }
        let label = if ev.ok {
            ev.event.clone()
        } else {
            format!("{} (not carried out)", ev.event)
        };
        // Text turned to read upwards starts at its anchor and lies right of it and above it
        // (plotters rotates it about the anchor); Rotate90 renders glyphs unevenly in bitmaps.
        let font = (FONT, 15).into_font().transform(FontTransform::Rotate270);
        let (thickness, length) = font.box_size(&label).map_err(e)?;
        let (thickness, length) = (thickness as i32, length as i32);
        let start_y = if labels_on_top { 6 + length } else { -6 };
        let style = TextStyle::from(font)
            .pos(Pos::new(HPos::Left, VPos::Top))
            .color(&c);
        let background = Rectangle::new(
            [(2, start_y - length - 2), (6 + thickness, start_y + 2)],
            WHITE.mix(0.75).filled(),
        );
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, y_end)) + background + Text::new(label, (4, start_y), style),
            ))
            .map_err(e)?;
    }
    Ok(())
}

fn latency_over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    a: &Aggregates,
) -> DrawResult {
    let y_max = a
        .plot
        .buckets
        .iter()
        .filter_map(|b| b.latency_p95_ms)
        .fold(0.0_f64, f64::max)
        / 1000.0;
    let plot = OverTime {
        y: padded(0.0, y_max),
        y_desc: format!(
            "Latency per {} s bucket (s)",
            crate::util::fmt_num(Some(a.plot.bucket_s))
        ),
        per_rendition: &|b| Some(b.latency_p95_ms? / 1000.0),
        rendition_label: &|rendition| format!("{rendition} p95"),
        all: &|b| Some(b.latency_p50_ms? / 1000.0),
        all_label: "all renditions p50",
        legend_at: SeriesLabelPosition::UpperRight,
    };
    over_time(root, title, a, plot)
}

fn success_over_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    a: &Aggregates,
) -> DrawResult {
    let y_min = a
        .plot
        .buckets
        .iter()
        .map(|b| b.success_rate * 100.0)
        .fold(100.0_f64, f64::min);
    // Zoom in when everything is near 100 %, so a dip of a few percent is visible.
    let y_lo = if y_min >= 90.0 { 90.0 } else { 0.0 };
    let percent_ok = move |b: &BucketPoint| Some((b.success_rate * 100.0).max(y_lo));
    let plot = OverTime {
        y: y_lo..100.5,
        y_desc: format!(
            "Segments OK per {} s bucket (%)",
            crate::util::fmt_num(Some(a.plot.bucket_s))
        ),
        per_rendition: &percent_ok,
        rendition_label: &|rendition| rendition.to_string(),
        all: &percent_ok,
        all_label: "all renditions",
        legend_at: SeriesLabelPosition::LowerRight,
    };
    over_time(root, title, a, plot)
}

fn vmaf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    groups: &[Group<QualityStats>],
) -> DrawResult {
    let mut renditions: Vec<&str> = groups.iter().map(|g| g.key("rendition")).collect();
    renditions.dedup();
    let n = renditions.len().max(1);
    let y_min = groups
        .iter()
        .filter_map(|g| g.stats.vmaf_min)
        .fold(100.0_f64, f64::min);
    let y_lo = ((y_min - 5.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
    let mut chart = chart_builder(root, title)
        .build_cartesian_2d(-0.6..(n as f64 - 0.4), y_lo..101.0)
        .map_err(e)?;
    let names = renditions.clone();
    let formatter = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].to_string()
        } else {
            String::new()
        }
    };
    mesh!(
        chart,
        "Rendition",
        "VMAF (0–100); box p25–p75, whiskers p5–p95, dot mean"
    )
    .x_labels(2 * n + 2)
    .x_label_formatter(&formatter)
    .disable_x_mesh()
    .draw()
    .map_err(e)?;
    let origins = [("network", color(0), -0.18), ("reference", color(1), 0.18)];
    for (origin, c, offset) in origins {
        let mut elements: Vec<DynElement<'static, DB, (f64, f64)>> = Vec::new();
        for g in groups.iter().filter(|g| g.key("origin") == origin) {
            let Some(i) = renditions.iter().position(|r| *r == g.key("rendition")) else {
                continue;
            };
            let s = &g.stats;
            let x = i as f64 + offset;
            let w = 0.14;
            if let (Some(p5), Some(p95)) = (s.vmaf_p5, s.vmaf_p95) {
                elements
                    .push(PathElement::new(vec![(x, p5), (x, p95)], c.stroke_width(2)).into_dyn());
                for y in [p5, p95] {
                    elements.push(
                        PathElement::new(
                            vec![(x - w / 2.0, y), (x + w / 2.0, y)],
                            c.stroke_width(2),
                        )
                        .into_dyn(),
                    );
                }
            }
            if let (Some(p25), Some(p75)) = (s.vmaf_p25, s.vmaf_p75) {
                elements.push(
                    Rectangle::new([(x - w, p25), (x + w, p75)], c.mix(0.35).filled()).into_dyn(),
                );
                elements.push(
                    Rectangle::new([(x - w, p25), (x + w, p75)], c.stroke_width(2)).into_dyn(),
                );
            }
            if let Some(p50) = s.vmaf_p50 {
                elements.push(
                    PathElement::new(vec![(x - w, p50), (x + w, p50)], BLACK.stroke_width(2))
                        .into_dyn(),
                );
            }
            if let Some(mean) = s.vmaf_mean {
                elements.push(Circle::new((x, mean), 5, BLACK.filled()).into_dyn());
            }
        }
        chart
            .draw_series(elements)
            .map_err(e)?
            .label(match origin {
                "network" => "network rendition",
                _ => "reference transcoder",
            })
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 22, y + 6)], c.mix(0.6).filled())
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn sessions_range(steps: &[BenchStep]) -> std::ops::Range<f64> {
    let max = steps.iter().map(|s| s.sessions).max().unwrap_or(1) as f64;
    0.0..(max + 1.0)
}

fn bench_real_time<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    steps: &[BenchStep],
) -> DrawResult {
    let mut chart = chart_builder(root, title)
        .build_cartesian_2d(sessions_range(steps), 0.0..105.0)
        .map_err(e)?;
    mesh!(
        chart,
        "Concurrent sessions",
        "Segments transcoded in real time (%)"
    )
    .draw()
    .map_err(e)?;
    let c = color(0);
    let points: Vec<(f64, f64)> = steps
        .iter()
        .filter_map(|s| Some((s.sessions as f64, s.real_time_fraction? * 100.0)))
        .collect();
    chart
        .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))
        .map_err(e)?
        .label("real-time fraction")
        .legend(legend_line(c));
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 5, c.filled())))
        .map_err(e)?;
    legend(&mut chart, SeriesLabelPosition::LowerLeft)
}

fn bench_ratio<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    steps: &[BenchStep],
) -> DrawResult {
    let y_max = steps
        .iter()
        .filter_map(|s| s.transcode_ratio.p95.or(s.transcode_ratio.max))
        .fold(1.0_f64, f64::max);
    let x = sessions_range(steps);
    let mut chart = chart_builder(root, title)
        .build_cartesian_2d(x.clone(), padded(0.0, y_max))
        .map_err(e)?;
    mesh!(
        chart,
        "Concurrent sessions",
        "Transcode time ÷ segment duration (ratio)"
    )
    .draw()
    .map_err(e)?;
    let real_time = RGBColor(200, 0, 0);
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x.start, 1.0), (x.end, 1.0)],
            10,
            6,
            real_time.stroke_width(2),
        ))
        .map_err(e)?
        .label("real time (1.0)")
        .legend(legend_line(real_time));
    for (i, (name, pick)) in [
        (
            "mean",
            (|s: &BenchStep| s.transcode_ratio.mean) as fn(&BenchStep) -> Option<f64>,
        ),
        ("p95", |s: &BenchStep| s.transcode_ratio.p95),
    ]
    .into_iter()
    .enumerate()
    {
        let c = color(i);
        let points: Vec<(f64, f64)> = steps
            .iter()
            .filter_map(|s| Some((s.sessions as f64, pick(s)?)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))
            .map_err(e)?
            .label(name)
            .legend(legend_line(c));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 5, c.filled())))
            .map_err(e)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}
