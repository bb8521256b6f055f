//! `report.html`: one self-contained page (inline CSS, plots as inline SVG, no scripts, no external
//! requests) that can be attached to a CI run or mailed. Order follows what a reader asks first:
//! did it pass, which threshold, what was done to the run (its chaos events, when it had any),
//! what do the plots show, which rendition, then the details (scenario, environment, journal).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use super::{
    AI_COLUMNS, AI_INTRO, AI_LEVEL_COLUMNS, AI_LIVE_COLUMNS, AI_LIVE_INTRO, CHAOS_INTRO,
    POOL_COLUMNS, ReportContext, ai_cells, ai_level_cells, ai_live_cells, chaos_duration, ms_as_s,
    pool_cells, pool_intro, viewer_qoe_intro,
};
use crate::breakdowns::{
    Distribution, Group, QualityStats, SegmentStats, ViewerQoe, ViolationStats,
};
use crate::util::{escape_xml as esc, fmt_num, fmt_pct, fmt_price};

const CSS: &str = r#"
body{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;font-size:15px;color:#1b1b1b;margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 10px;border-bottom:2px solid #dde1e6;padding-bottom:4px}
.sub{color:#555;margin-bottom:16px}
.verdict{padding:14px 18px;border-radius:6px;font-size:20px;font-weight:bold;color:#fff}
.pass{background:#1a7f37}.fail{background:#c62828}.unknown{background:#6b6f76}
.missing{background:#fff4e5;border:1px solid #f0b35b;border-radius:6px;padding:10px 16px;margin-top:14px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;width:100%}
th,td{border:1px solid #dde1e6;padding:5px 9px;text-align:right;vertical-align:top}
th{background:#eef1f4}td.l,th.l{text-align:left}
tr.bad td{background:#fdecea}
.wide{overflow-x:auto}
figure{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:14px 0;padding:8px}
figure svg{width:100%;height:auto;display:block}
figcaption{color:#444;font-size:14px;padding:4px 6px}
pre{background:#fff;border:1px solid #dde1e6;padding:10px;overflow:auto;font-size:13px}
.ok{color:#1a7f37;font-weight:bold}.no{color:#c62828;font-weight:bold}
"#;

/// A column of a report table: its title, and whether it holds text, left-aligned
/// (`class="l"`), rather than numbers, which the stylesheet aligns right.
#[derive(Clone, Copy)]
struct Column<'a> {
    title: &'a str,
    text: bool,
}

/// A column of text.
const fn text(title: &str) -> Column<'_> {
    Column { title, text: true }
}

/// A column of numbers.
const fn num(title: &str) -> Column<'_> {
    Column { title, text: false }
}

/// Writes a section's heading; its `id` is the anchor a reader links to.
fn heading(h: &mut String, id: &str, title: &str) {
    let _ = writeln!(h, "<h2 id=\"{id}\">{}</h2>", esc(title));
}

/// Writes a table: its header row, then a row per item, each written by `row` (the `<tr>` and
/// its cells, whose alignment follows the columns').
fn table<I: IntoIterator>(
    h: &mut String,
    columns: &[Column<'_>],
    items: I,
    mut row: impl FnMut(&mut String, I::Item),
) {
    h.push_str("<table><tr>");
    for c in columns {
        let class = if c.text { " class=\"l\"" } else { "" };
        let _ = write!(h, "<th{class}>{}</th>", esc(c.title));
    }
    h.push_str("</tr>");
    for item in items {
        row(h, item);
    }
    h.push_str("</table>\n");
}

/// Writes a section that is one table: its heading, then [`table`].
fn table_section<I: IntoIterator>(
    h: &mut String,
    id: &str,
    title: &str,
    columns: &[Column<'_>],
    items: I,
    row: impl FnMut(&mut String, I::Item),
) {
    heading(h, id, title);
    table(h, columns, items, row);
}

/// Renders the page.
pub fn render(ctx: &ReportContext<'_>) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let view = &ctx.summary.view;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>lpt report — {}</title><style>{CSS}</style></head><body><main>\n",
        esc(&ctx.run_name)
    );
    let _ = write!(
        h,
        "<h1>lpt report — {}</h1>\n<div class=\"sub\">",
        esc(&ctx.run_name)
    );
    if !view.scenario.description.is_empty() {
        let _ = write!(h, "{}<br>", esc(&view.scenario.description));
    }
    let _ = writeln!(
        h,
        "Run: {} → {} ({} s) · report generated {}</div>",
        esc(view.started_at.as_deref().unwrap_or(&ctx.when)),
        esc(view.ended_at.as_deref().unwrap_or("?")),
        fmt_num(view.duration_s),
        esc(&ctx.generated_at)
    );
    let class = match ctx.verdict.passed {
        Some(true) => "pass",
        Some(false) => "fail",
        None => "unknown",
    };
    let _ = writeln!(
        h,
        "<div class=\"verdict {class}\" id=\"verdict\">{}</div>",
        esc(&ctx.verdict.headline)
    );
    if let Some(m) = &ctx.verdict.message {
        let _ = writeln!(h, "<p>{}</p>", esc(m));
    }
    if !ctx.missing.is_empty() {
        h.push_str("<div class=\"missing\" id=\"missing\"><b>Missing or skipped</b><ul>");
        for m in ctx.missing {
            let _ = write!(h, "<li>{}</li>", esc(m));
        }
        h.push_str("</ul></div>\n");
    }

    thresholds(&mut h, ctx);
    overall(&mut h, ctx);
    chaos(&mut h, ctx);

    heading(&mut h, "plots", "Plots");
    for p in ctx.plots {
        let svg = p
            .svg
            .trim_start()
            .strip_prefix("<?xml")
            .and_then(|rest| rest.split_once("?>").map(|(_, s)| s))
            .unwrap_or(&p.svg);
        let _ = writeln!(
            h,
            "<figure id=\"plot-{}\">{}<figcaption>{}</figcaption></figure>",
            esc(&p.stem),
            svg,
            esc(&p.title)
        );
    }
    if !ctx.skipped_plots.is_empty() {
        h.push_str("<p>Not drawn:</p><ul>");
        for s in ctx.skipped_plots {
            let _ = write!(h, "<li>{}: {}</li>", esc(&s.what), esc(&s.reason));
        }
        h.push_str("</ul>\n");
    }

    per_rendition(&mut h, ctx);
    segment_table(
        &mut h,
        "Per workload",
        "per-workload",
        &["workload"],
        &ctx.aggregates.segments.by_workload,
    );
    segment_table(
        &mut h,
        "Per orchestrator",
        "per-orchestrator",
        &["orchestrator"],
        &ctx.aggregates.segments.by_orchestrator,
    );
    segment_table(
        &mut h,
        "Per region",
        "per-region",
        &["region"],
        &ctx.aggregates.segments.by_region,
    );
    if !ctx.aggregates.segments.by_stream.is_empty() {
        let _ = write!(
            h,
            "<details><summary>Per stream ({} streams)</summary>",
            ctx.aggregates.segments.by_stream.len()
        );
        segment_table(
            &mut h,
            "Per stream",
            "per-stream",
            &["stream"],
            &ctx.aggregates.segments.by_stream,
        );
        h.push_str("</details>\n");
    }
    checks(&mut h, ctx);
    violations(&mut h, ctx);
    viewer_qoe(&mut h, ctx);
    pool(&mut h, ctx);
    ai(&mut h, ctx);
    payments(&mut h, ctx);
    bench(&mut h, ctx);
    leaderboard(&mut h, ctx);
    metrics(&mut h, ctx);

    heading(&mut h, "scenario", "Scenario");
    if view.scenario.source.is_empty() {
        h.push_str("<p>The scenario text is not available (summary.json missing).</p>\n");
    } else {
        let _ = writeln!(
            h,
            "<p>{} ({})</p><pre>{}</pre>",
            esc(&view.scenario.name),
            esc(&view.scenario.path),
            esc(&view.scenario.source)
        );
    }
    heading(&mut h, "environment", "Environment");
    if view.environment.is_empty() {
        h.push_str("<p>Not recorded (summary.json missing).</p>\n");
    } else {
        let tool = format!("{} {}", view.tool.name, view.tool.version);
        let rows = std::iter::once(("tool", tool)).chain(view.environment.iter().map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.as_str(), v)
        }));
        table(&mut h, &[text("Key"), text("Value")], rows, |h, (k, v)| {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(k),
                esc(&v)
            );
        });
    }
    journal(&mut h, ctx);
    h.push_str("</main></body></html>\n");
    h
}

fn thresholds(h: &mut String, ctx: &ReportContext<'_>) {
    let ts = &ctx.summary.view.thresholds;
    if ts.is_empty() {
        heading(h, "thresholds", "Thresholds");
        h.push_str("<p>No thresholds were evaluated.</p>\n");
        return;
    }
    let columns = [
        text("Metric"),
        text("Expression"),
        num("Observed"),
        text("Verdict"),
        text("Abort on fail"),
    ];
    table_section(h, "thresholds", "Thresholds", &columns, ts, |h, t| {
        let _ = write!(
            h,
            "<tr{}><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            if t.passed { "" } else { " class=\"bad\"" },
            esc(&t.metric),
            esc(&t.expression),
            esc(&ctx.observed(t)),
            if t.passed {
                "<span class=\"ok\">pass</span>"
            } else {
                "<span class=\"no\">FAIL</span>"
            },
            if t.abort_on_fail { "yes" } else { "no" }
        );
    });
}

/// The header over [`dist_cells`] of a latency in milliseconds scaled to seconds.
const LATENCY_COLUMNS: [Column<'static>; 5] = [
    num("Latency p50 (s)"),
    num("p90 (s)"),
    num("p95 (s)"),
    num("p99 (s)"),
    num("max (s)"),
];

fn dist_cells(d: &Distribution, scale: f64) -> String {
    let s = |v: Option<f64>| fmt_num(v.map(|v| v * scale));
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        s(d.p50),
        s(d.p90),
        s(d.p95),
        s(d.p99),
        s(d.max)
    )
}

fn overall(h: &mut String, ctx: &ReportContext<'_>) {
    let o = &ctx.aggregates.segments.overall;
    let columns = [
        &[
            num("Segment × rendition records"),
            num("OK"),
            num("Failed"),
            num("Success rate"),
        ][..],
        &LATENCY_COLUMNS,
    ]
    .concat();
    table_section(h, "overall", "Segments overall", &columns, [o], |h, o| {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
            o.segments,
            o.ok,
            o.failed,
            fmt_pct(o.success_rate),
            dist_cells(&o.latency_ms, 0.001)
        );
    });
}

fn chaos(h: &mut String, ctx: &ReportContext<'_>) {
    let events = &ctx.aggregates.chaos;
    if events.is_empty() {
        return;
    }
    heading(h, "chaos", "Chaos events");
    let _ = writeln!(h, "<p>{}</p>", esc(CHAOS_INTRO));
    let columns = [
        text("Event"),
        text("Kind"),
        text("Target"),
        num("Start (s)"),
        num("Duration (s)"),
        text("Carried out"),
        num("Streams hit"),
        num("Worst failover (s)"),
        num("Segments lost"),
        num("Worst stall (s)"),
        num("Streams not recovered"),
        num("Winners"),
        num("Redemptions lost"),
        num("Worst redemption delay (s)"),
    ];
    // Fourteen columns do not fit a laptop-width page: the table scrolls rather than the page.
    h.push_str("<div class=\"wide\">");
    table(h, &columns, events, |h, ev| {
        let bad = !ev.ok || ev.streams_not_recovered > 0 || ev.redemptions_lost > 0;
        let carried_out = if ev.ok {
            "<span class=\"ok\">ok</span>".to_string()
        } else {
            format!(
                "<span class=\"no\">{}</span>",
                esc(ev.message.as_deref().unwrap_or("not carried out"))
            )
        };
        let _ = write!(
            h,
            "<tr{}><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if bad { " class=\"bad\"" } else { "" },
            esc(&ev.event),
            esc(&ev.kind),
            esc(&ev.target),
            fmt_num(Some(ev.start_s)),
            esc(&chaos_duration(ev)),
            carried_out,
            ev.streams_hit,
            ms_as_s(ev.failover_time_ms_max),
            ev.segments_lost,
            ms_as_s(ev.stall_time_ms_max),
            ev.streams_not_recovered,
            ev.winners,
            ev.redemptions_lost,
            ms_as_s(ev.redemption_delay_ms_max),
        );
    });
    h.push_str("</div>\n");
}

fn quality_for<'a>(
    ctx: &'a ReportContext<'_>,
    rendition: &str,
    origin: &str,
) -> Option<&'a QualityStats> {
    ctx.aggregates
        .quality
        .by_rendition
        .iter()
        .find(|g| g.key("rendition") == rendition && g.key("origin") == origin)
        .map(|g| &g.stats)
}

fn per_rendition(h: &mut String, ctx: &ReportContext<'_>) {
    let seg = &ctx.aggregates.segments.by_rendition;
    let mut renditions: Vec<&str> = seg.iter().map(|g| g.key("rendition")).collect();
    for g in &ctx.aggregates.quality.by_rendition {
        if !renditions.contains(&g.key("rendition")) {
            renditions.push(g.key("rendition"));
        }
    }
    if renditions.is_empty() {
        heading(h, "per-rendition", "Per rendition");
        h.push_str("<p>No segment or quality records.</p>\n");
        return;
    }
    let columns = [
        &[text("Rendition"), num("Records"), num("Success rate")][..],
        &LATENCY_COLUMNS,
        &[
            num("Bitrate (kbit/s)"),
            num("VMAF mean"),
            num("VMAF p5"),
            num("VMAF min"),
            num("Reference VMAF mean"),
            num("PSNR mean (dB)"),
        ],
    ]
    .concat();
    let default = SegmentStats::default();
    table_section(
        h,
        "per-rendition",
        "Per rendition",
        &columns,
        renditions,
        |h, r| {
            let s = seg
                .iter()
                .find(|g| g.key("rendition") == r)
                .map_or(&default, |g| &g.stats);
            let q = quality_for(ctx, r, "network");
            let refq = quality_for(ctx, r, "reference");
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(r),
                s.segments,
                fmt_pct(s.success_rate),
                dist_cells(&s.latency_ms, 0.001),
                fmt_num(s.bitrate_kbps_mean),
                fmt_num(q.and_then(|q| q.vmaf_mean)),
                fmt_num(q.and_then(|q| q.vmaf_p5)),
                fmt_num(q.and_then(|q| q.vmaf_min)),
                fmt_num(refq.and_then(|q| q.vmaf_mean)),
                fmt_num(q.and_then(|q| q.psnr_mean)),
            );
        },
    );
}

fn segment_table(
    h: &mut String,
    title: &str,
    id: &str,
    keys: &[&str],
    groups: &[Group<SegmentStats>],
) {
    if groups.is_empty() {
        return;
    }
    let columns = [
        keys.iter().map(|k| text(k)).collect(),
        vec![num("Records"), num("OK"), num("Success rate")],
        LATENCY_COLUMNS.to_vec(),
        vec![num("Round trip mean (s)")],
    ]
    .concat();
    table_section(h, id, title, &columns, groups, |h, g| {
        h.push_str("<tr>");
        for k in keys {
            let _ = write!(h, "<td class=\"l\">{}</td>", esc(g.key(k)));
        }
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>",
            g.stats.segments,
            g.stats.ok,
            fmt_pct(g.stats.success_rate),
            dist_cells(&g.stats.latency_ms, 0.001),
            fmt_num(g.stats.round_trip_ms.mean.map(|v| v / 1000.0))
        );
    });
}

fn checks(h: &mut String, ctx: &ReportContext<'_>) {
    let checks = &ctx.aggregates.checks;
    if checks.is_empty() {
        return;
    }
    let columns = [
        text("Check"),
        num("Ran"),
        num("Passed"),
        num("Failed"),
        num("Pass rate"),
        text("First failure"),
    ];
    table_section(h, "checks", "Checks", &columns, checks, |h, g| {
        let _ = write!(
            h,
            "<tr{}><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            if g.failed > 0 { " class=\"bad\"" } else { "" },
            esc(&g.check),
            g.total,
            g.passed,
            g.failed,
            fmt_pct(g.pass_rate),
            esc(g.first_failure.as_deref().unwrap_or(""))
        );
    });
}

/// The HLS conformance rules broken, when any was: one row per rule, `must` first.
fn violations(h: &mut String, ctx: &ReportContext<'_>) {
    let rows = &ctx.aggregates.violations;
    if rows.is_empty() {
        return;
    }
    heading(h, "hls-conformance", "HLS conformance");
    let (total, must) = ViolationStats::totals(rows);
    let _ = writeln!(
        h,
        "<p>{total} violation(s) of {} rule(s), {must} of them of a MUST. One row per rule, MUST \
         before SHOULD, then the most frequent; the first example is where the rule first broke \
         (the playlist's URL and line, or the segment's URL) and what was seen.</p>",
        rows.len()
    );
    let columns = [
        text("Rule"),
        text("Severity"),
        num("Count"),
        num("Streams"),
        text("First example"),
        text("What was seen"),
    ];
    h.push_str("<div class=\"wide\">");
    table(h, &columns, rows, |h, v| {
        let _ = write!(
            h,
            "<tr{}><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            if v.severity == "must" {
                " class=\"bad\""
            } else {
                ""
            },
            esc(&v.rule),
            esc(&v.severity),
            v.count,
            v.streams,
            esc(&v.first_where()),
            esc(&v.first_detail),
        );
    });
    h.push_str("</div>\n");
}

/// What the browser players saw, when the run had any: one row per workload, then per stream
/// folded away as the segment table's streams are.
fn viewer_qoe(h: &mut String, ctx: &ReportContext<'_>) {
    let players = &ctx.aggregates.players;
    if players.is_empty() {
        return;
    }
    heading(h, "viewer-qoe", "Viewer QoE");
    let _ = writeln!(h, "<p>{}</p>", esc(&viewer_qoe_intro(players)));
    viewer_table(h, &["workload"], &players.by_workload);
    let _ = write!(
        h,
        "<details id=\"viewer-qoe-per-stream\"><summary>Per stream ({} streams)</summary>",
        players.by_stream.len()
    );
    viewer_table(h, &["workload", "stream"], &players.by_stream);
    h.push_str("</details>\n");
}

/// The Viewer QoE columns after the key columns.
const VIEWER_COLUMNS: [Column<'static>; 15] = [
    num("Players"),
    num("OK"),
    num("Failed"),
    num("TTFF p50 (s)"),
    num("TTFF p95 (s)"),
    num("TTFF max (s)"),
    num("Latency p50 (s)"),
    num("Latency p95 (s)"),
    num("Latency max (s)"),
    num("Stalls"),
    num("Stall time (s)"),
    num("Stall ratio"),
    num("Dropped frames (share)"),
    num("Level switches"),
    text("First failure"),
];

fn viewer_table(h: &mut String, keys: &[&str], groups: &[Group<ViewerQoe>]) {
    let columns = [
        keys.iter().map(|k| text(k)).collect(),
        VIEWER_COLUMNS.to_vec(),
    ]
    .concat();
    // Sixteen columns and more do not fit a laptop-width page: the table scrolls, not the page.
    h.push_str("<div class=\"wide\">");
    table(h, &columns, groups, |h, g| {
        let q = &g.stats;
        let _ = write!(
            h,
            "<tr{}>",
            if q.failed > 0 { " class=\"bad\"" } else { "" }
        );
        for k in keys {
            let _ = write!(h, "<td class=\"l\">{}</td>", esc(g.key(k)));
        }
        let _ = write!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td>{}{}<td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td class=\"l\">{}</td></tr>",
            q.players,
            q.ok,
            q.failed,
            p50_p95_max_cells(&q.ttff_ms),
            p50_p95_max_cells(&q.latency_ms),
            q.stalls,
            ms_as_s(Some(q.stall_ms_total)),
            fmt_pct(q.stall_ratio),
            q.dropped_frames,
            fmt_pct(q.dropped_rate),
            q.level_switches,
            esc(q.first_failure.as_deref().unwrap_or("")),
        );
    });
    h.push_str("</div>\n");
}

/// The transcoder pools, when the run had any: one row per orchestrator × transcoder, a faulty
/// transcoder's row marked and its faulty values in red.
fn pool(h: &mut String, ctx: &ReportContext<'_>) {
    let rows = &ctx.aggregates.pool;
    if rows.is_empty() {
        return;
    }
    heading(h, "transcoder-pool", "Transcoder pool");
    let _ = writeln!(h, "<p>{}</p>", esc(&pool_intro(rows)));
    // The first two name the transcoder; the rest are numbers.
    marked_table(
        h,
        &POOL_COLUMNS,
        2,
        rows,
        |r, _| r.is_faulty(),
        |r| pool_cells(r).to_vec(),
    );
}

/// The AI probe's requests and live jobs, each when the run had any, a failing row marked and
/// its faulty values in red.
fn ai(h: &mut String, ctx: &ReportContext<'_>) {
    ai_requests(h, ctx);
    ai_live(h, ctx);
}

/// The AI probe's requests, when the run had any: one table by model, one by concurrency.
fn ai_requests(h: &mut String, ctx: &ReportContext<'_>) {
    let ai = &ctx.aggregates.ai;
    if ai.by_model.is_empty() {
        return;
    }
    heading(h, "ai-requests", "AI requests");
    let _ = writeln!(h, "<p>{}</p>", esc(AI_INTRO));
    marked_table(h, &AI_COLUMNS, 4, &ai.by_model, any_faulty, |r| {
        ai_cells(r).to_vec()
    });
    h.push_str("<h3>By concurrency</h3>\n");
    marked_table(
        h,
        &AI_LEVEL_COLUMNS,
        1,
        &ai.by_concurrency,
        any_faulty,
        |r| ai_level_cells(r).to_vec(),
    );
}

/// The AI probe's live video-to-video jobs, when the run had any: one row per model.
fn ai_live(h: &mut String, ctx: &ReportContext<'_>) {
    let live = &ctx.aggregates.ai.live;
    if live.is_empty() {
        return;
    }
    heading(h, "ai-live", "AI live video-to-video");
    let _ = writeln!(h, "<p>{}</p>", esc(AI_LIVE_INTRO));
    marked_table(h, &AI_LIVE_COLUMNS, 4, live, any_faulty, |r| {
        ai_live_cells(r).to_vec()
    });
}

/// A row is bad when any of its cells shows a fault.
fn any_faulty<R>(_: &R, cells: &[(String, bool)]) -> bool {
    cells.iter().any(|(_, faulty)| *faulty)
}

/// A table whose first `labels` columns name the row and the rest are numbers, a `bad` row
/// (judged from the row and its cells) marked and each faulty cell in red; wide tables scroll
/// rather than the page.
fn marked_table<R>(
    h: &mut String,
    titles: &[&str],
    labels: usize,
    rows: &[R],
    bad: impl Fn(&R, &[(String, bool)]) -> bool,
    cells: impl Fn(&R) -> Vec<(String, bool)>,
) {
    let columns: Vec<Column<'_>> = titles
        .iter()
        .enumerate()
        .map(|(i, title)| if i < labels { text(title) } else { num(title) })
        .collect();
    h.push_str("<div class=\"wide\">");
    table(h, &columns, rows, |h, r| {
        let cells = cells(r);
        let _ = write!(
            h,
            "<tr{}>",
            if bad(r, &cells) { " class=\"bad\"" } else { "" }
        );
        for (i, (value, faulty)) in cells.iter().enumerate() {
            let class = if i < labels { " class=\"l\"" } else { "" };
            if *faulty {
                let _ = write!(
                    h,
                    "<td{class}><span class=\"no\">{}</span></td>",
                    esc(value)
                );
            } else {
                let _ = write!(h, "<td{class}>{}</td>", esc(value));
            }
        }
        h.push_str("</tr>");
    });
    h.push_str("</div>\n");
}

/// A distribution in milliseconds as three cells in seconds: p50, p95, max.
fn p50_p95_max_cells(d: &Distribution) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td>",
        ms_as_s(d.p50),
        ms_as_s(d.p95),
        ms_as_s(d.max)
    )
}

fn payments(h: &mut String, ctx: &ReportContext<'_>) {
    let p = &ctx.aggregates.payments;
    if p.overall.tickets == 0 && p.overall.redemptions == 0 {
        return;
    }
    let columns = [
        text("Orchestrator"),
        num("Tickets"),
        num("Winning"),
        num("Face value sent (wei)"),
        num("Expected value sent (wei)"),
        num("Won face value (wei)"),
        num("Redemptions OK / total"),
        num("Redeemed (wei)"),
    ];
    let rows = p
        .by_orchestrator
        .iter()
        .map(|g| (g.key("orchestrator"), &g.stats))
        .chain(std::iter::once(("all", &p.overall)));
    table_section(h, "payments", "Payments", &columns, rows, |h, (o, s)| {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.4e}</td><td>{:.4e}</td><td>{:.4e}</td><td>{} / {}</td><td>{:.4e}</td></tr>",
            esc(o),
            s.tickets,
            s.winning_tickets,
            s.face_value_total_wei,
            s.ev_total_wei,
            s.won_face_value_wei,
            s.redemptions_ok,
            s.redemptions,
            s.redeemed_wei
        );
    });
}

fn bench(h: &mut String, ctx: &ReportContext<'_>) {
    let steps = &ctx.aggregates.bench;
    if steps.is_empty() {
        return;
    }
    let columns = [
        num("Sessions"),
        text("Encoder"),
        num("Segments"),
        num("OK"),
        num("Real-time fraction"),
        num("Transcode ÷ duration mean"),
        num("p50"),
        num("p95"),
        num("max"),
    ];
    table_section(h, "bench", "Hardware benchmark", &columns, steps, |h, s| {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.sessions,
            esc(&s.encoder),
            s.segments,
            s.ok,
            fmt_pct(s.real_time_fraction),
            fmt_num(s.transcode_ratio.mean),
            fmt_num(s.transcode_ratio.p50),
            fmt_num(s.transcode_ratio.p95),
            fmt_num(s.transcode_ratio.max)
        );
    });
}

fn leaderboard(h: &mut String, ctx: &ReportContext<'_>) {
    let Some(board) = ctx.leaderboard else { return };
    if !board.records.is_empty() {
        transcoding_leaderboard(h, board);
    }
    ai_leaderboard(h, board);
}

fn transcoding_leaderboard(h: &mut String, board: &crate::leaderboard::Leaderboard) {
    let columns = [
        text("Orchestrator"),
        text("Region"),
        num("Sent"),
        num("Received"),
        num("Success rate"),
        num("Round trip (s)"),
        num("Segment (s)"),
        num("Round-trip score"),
        num("Score"),
        num("VMAF"),
        num("VMAF deficit vs reference"),
        num("Effective price (wei/pixel)"),
        text("Failures"),
    ];
    table_section(
        h,
        "leaderboard",
        "Leaderboard records",
        &columns,
        &board.records,
        |h, r| {
            let s = crate::leaderboard::score(r);
            let extras = board
                .extras
                .get(&r.orchestrator)
                .and_then(|by_region| by_region.get(&r.region));
            let quality = extras.and_then(|e| e.quality.as_ref());
            let price = extras
                .and_then(|e| e.payments.as_ref())
                .and_then(|p| p.effective_price_wei_per_pixel);
            let failures = r
                .errors
                .iter()
                .map(|e| esc(&format!("{} ×{}: {}", e.error_code, e.count, e.message)))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                esc(&r.orchestrator),
                esc(&r.region),
                r.segments_sent,
                r.segments_received,
                fmt_pct(Some(r.success_rate)),
                r.round_trip_time,
                r.seg_duration,
                s.round_trip_score,
                s.score,
                fmt_num(quality.map(|q| q.vmaf_mean)),
                fmt_num(quality.and_then(|q| q.vmaf_deficit)),
                price.map_or_else(|| "–".to_string(), fmt_price),
                if failures.is_empty() {
                    "–"
                } else {
                    &failures
                },
            );
        },
    );
}

/// One row per AI record as it is posted, with the public score of its orchestrator and region
/// for the (pipeline, model) beside ours; the scores cover warm and cold records together.
fn ai_leaderboard(h: &mut String, board: &crate::leaderboard::Leaderboard) {
    if board.ai_records.is_empty() {
        return;
    }
    let columns = [
        text("Pipeline"),
        text("Model"),
        text("Orchestrator"),
        text("Region"),
        text("Start"),
        num("Success rate"),
        num("Round trip (s)"),
        num("Public score"),
        num("Our p95 (s)"),
        num("Our score"),
        text("Failures"),
    ];
    table_section(
        h,
        "ai-leaderboard",
        "AI leaderboard records",
        &columns,
        &board.ai_records,
        |h, r| {
            let public = scores_of(&board.ai_aggregated, r);
            let ours = scores_of(&board.ai_ours, r);
            let failures = r
                .errors
                .iter()
                .map(|e| esc(&format!("{} ×{}: {}", e.error_code, e.count, e.message)))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                esc(&r.pipeline),
                esc(&r.model),
                esc(&r.orchestrator),
                esc(&r.region),
                if r.model_is_warm { "warm" } else { "cold" },
                fmt_pct(Some(r.success_rate)),
                r.round_trip_time,
                fmt_num(public.map(|s| s.score)),
                fmt_num(ours.and_then(|o| o.p95_latency_s)),
                fmt_num(ours.map(|o| o.score)),
                if failures.is_empty() {
                    "–"
                } else {
                    &failures
                },
            );
        },
    );
}

/// AI scores keyed pipeline → model → orchestrator → region.
type ByPipelineModelOrchestratorRegion<V> =
    BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeMap<String, V>>>>;

/// What a map of AI scores holds for record `r`.
fn scores_of<'a, V>(
    scores: &'a ByPipelineModelOrchestratorRegion<V>,
    r: &crate::leaderboard::ai::AiLeaderboardRecord,
) -> Option<&'a V> {
    scores
        .get(&r.pipeline)?
        .get(&r.model)?
        .get(&r.orchestrator)?
        .get(&r.region)
}

fn metrics(h: &mut String, ctx: &ReportContext<'_>) {
    let m = &ctx.summary.view.metrics;
    if m.is_empty() {
        return;
    }
    let columns = [text("Metric"), text("Type"), text("Unit"), text("Values")];
    let title = "Metrics (as the tester summarized them)";
    table_section(h, "metrics", title, &columns, m, |h, (name, metric)| {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(name),
            esc(&metric.kind),
            esc(&metric.unit),
            esc(&metric_values(&metric.values))
        );
        for s in &metric.series {
            let tags = s
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let _ = write!(
                h,
                "<tr><td class=\"l\">&nbsp;&nbsp;{{{}}}</td><td></td><td></td><td class=\"l\">{}</td></tr>",
                esc(&tags),
                esc(&metric_values(&s.values))
            );
        }
    });
}

/// A metric's summarized values as one cell's text: `p95=1.2  max=3`.
fn metric_values(values: &BTreeMap<String, Option<f64>>) -> String {
    values
        .iter()
        .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
        .collect::<Vec<_>>()
        .join("  ")
}

fn journal(h: &mut String, ctx: &ReportContext<'_>) {
    let j = ctx.journal;
    heading(h, "journal", "Journal");
    if !ctx.journal_present {
        h.push_str("<p>records.jsonl is missing.</p>\n");
        return;
    }
    let kinds = j
        .records
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        h,
        "<p>{} lines; usable records: {}.</p>",
        j.lines,
        esc(if kinds.is_empty() { "none" } else { &kinds })
    );
    if !j.problems.is_empty() {
        h.push_str("<ul>");
        for p in &j.problems {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul>\n");
    }
}
