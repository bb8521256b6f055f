//! `report.html`: one self-contained page (inline CSS, plots as inline SVG, no scripts, no external
//! requests) that can be attached to a CI run or mailed. Order follows what a reader asks first:
//! did it pass, which threshold, what do the plots show, which rendition, then the details
//! (scenario, environment, journal).

use std::fmt::Write;

use serde_json::Value;

use super::ReportContext;
use crate::breakdowns::{Distribution, Group, QualityStats, SegmentStats};
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
figure{background:#fff;border:1px solid #dde1e6;border-radius:6px;margin:14px 0;padding:8px}
figure svg{width:100%;height:auto;display:block}
figcaption{color:#444;font-size:14px;padding:4px 6px}
pre{background:#fff;border:1px solid #dde1e6;padding:10px;overflow:auto;font-size:13px}
.ok{color:#1a7f37;font-weight:bold}.no{color:#c62828;font-weight:bold}
"#;

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

    h.push_str("<h2 id=\"plots\">Plots</h2>\n");
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
    payments(&mut h, ctx);
    bench(&mut h, ctx);
    leaderboard(&mut h, ctx);
    metrics(&mut h, ctx);

    h.push_str("<h2 id=\"scenario\">Scenario</h2>\n");
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
    h.push_str("<h2 id=\"environment\">Environment</h2>\n");
    if view.environment.is_empty() {
        h.push_str("<p>Not recorded (summary.json missing).</p>\n");
    } else {
        h.push_str("<table><tr><th class=\"l\">Key</th><th class=\"l\">Value</th></tr>");
        let _ = write!(
            h,
            "<tr><td class=\"l\">tool</td><td class=\"l\">{} {}</td></tr>",
            esc(&view.tool.name),
            esc(&view.tool.version)
        );
        for (k, v) in &view.environment {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                esc(k),
                esc(&v)
            );
        }
        h.push_str("</table>\n");
    }
    journal(&mut h, ctx);
    h.push_str("</main></body></html>\n");
    h
}

fn thresholds(h: &mut String, ctx: &ReportContext<'_>) {
    h.push_str("<h2 id=\"thresholds\">Thresholds</h2>\n");
    let ts = &ctx.summary.view.thresholds;
    if ts.is_empty() {
        h.push_str("<p>No thresholds were evaluated.</p>\n");
        return;
    }
    h.push_str(
        "<table><tr><th class=\"l\">Metric</th><th class=\"l\">Expression</th><th>Observed</th>\
         <th class=\"l\">Verdict</th><th class=\"l\">Abort on fail</th></tr>",
    );
    for t in ts {
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
    }
    h.push_str("</table>\n");
}

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
    h.push_str("<h2 id=\"overall\">Segments overall</h2>\n");
    let _ = writeln!(
        h,
        "<table><tr><th>Segment × rendition records</th><th>OK</th><th>Failed</th><th>Success rate</th>\
         <th>Latency p50 (s)</th><th>p90 (s)</th><th>p95 (s)</th><th>p99 (s)</th><th>max (s)</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr></table>",
        o.segments,
        o.ok,
        o.failed,
        fmt_pct(o.success_rate),
        dist_cells(&o.latency_ms, 0.001)
    );
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
    h.push_str("<h2 id=\"per-rendition\">Per rendition</h2>\n");
    let seg = &ctx.aggregates.segments.by_rendition;
    let mut renditions: Vec<&str> = seg.iter().map(|g| g.key("rendition")).collect();
    for g in &ctx.aggregates.quality.by_rendition {
        if !renditions.contains(&g.key("rendition")) {
            renditions.push(g.key("rendition"));
        }
    }
    if renditions.is_empty() {
        h.push_str("<p>No segment or quality records.</p>\n");
        return;
    }
    h.push_str(
        "<table><tr><th class=\"l\">Rendition</th><th>Records</th><th>Success rate</th>\
         <th>Latency p50 (s)</th><th>p90 (s)</th><th>p95 (s)</th><th>p99 (s)</th><th>max (s)</th>\
         <th>Bitrate (kbit/s)</th><th>VMAF mean</th><th>VMAF p5</th><th>VMAF min</th>\
         <th>Reference VMAF mean</th><th>PSNR mean (dB)</th></tr>",
    );
    for r in renditions {
        let s = seg
            .iter()
            .find(|g| g.key("rendition") == r)
            .map(|g| &g.stats);
        let default = SegmentStats::default();
        let s = s.unwrap_or(&default);
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
    }
    h.push_str("</table>\n");
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
    let _ = write!(h, "<h2 id=\"{id}\">{}</h2>\n<table><tr>", esc(title));
    for k in keys {
        let _ = write!(h, "<th class=\"l\">{}</th>", esc(k));
    }
    h.push_str(
        "<th>Records</th><th>OK</th><th>Success rate</th><th>Latency p50 (s)</th><th>p90 (s)</th>\
         <th>p95 (s)</th><th>p99 (s)</th><th>max (s)</th><th>Round trip mean (s)</th></tr>",
    );
    for g in groups {
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
    }
    h.push_str("</table>\n");
}

fn checks(h: &mut String, ctx: &ReportContext<'_>) {
    let c = &ctx.aggregates.checks;
    if c.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"checks\">Checks</h2>\n<table><tr><th class=\"l\">Check</th><th>Ran</th><th>Passed</th>\
         <th>Failed</th><th>Pass rate</th><th class=\"l\">First failure</th></tr>",
    );
    for g in c {
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
    }
    h.push_str("</table>\n");
}

fn payments(h: &mut String, ctx: &ReportContext<'_>) {
    let p = &ctx.aggregates.payments;
    if p.overall.tickets == 0 && p.overall.redemptions == 0 {
        return;
    }
    h.push_str(
        "<h2 id=\"payments\">Payments</h2>\n<table><tr><th class=\"l\">Orchestrator</th><th>Tickets</th>\
         <th>Winning</th><th>Face value sent (wei)</th><th>Expected value sent (wei)</th>\
         <th>Won face value (wei)</th><th>Redemptions OK / total</th><th>Redeemed (wei)</th></tr>",
    );
    let rows = p
        .by_orchestrator
        .iter()
        .map(|g| (g.key("orchestrator").to_string(), &g.stats))
        .chain(std::iter::once(("all".to_string(), &p.overall)));
    for (o, s) in rows {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.4e}</td><td>{:.4e}</td><td>{:.4e}</td><td>{} / {}</td><td>{:.4e}</td></tr>",
            esc(&o),
            s.tickets,
            s.winning_tickets,
            s.face_value_total_wei,
            s.ev_total_wei,
            s.won_face_value_wei,
            s.redemptions_ok,
            s.redemptions,
            s.redeemed_wei
        );
    }
    h.push_str("</table>\n");
}

fn bench(h: &mut String, ctx: &ReportContext<'_>) {
    let b = &ctx.aggregates.bench;
    if b.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"bench\">Hardware benchmark</h2>\n<table><tr><th>Sessions</th><th class=\"l\">Encoder</th>\
         <th>Segments</th><th>OK</th><th>Real-time fraction</th><th>Transcode ÷ duration mean</th>\
         <th>p50</th><th>p95</th><th>max</th></tr>",
    );
    for s in b {
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
    }
    h.push_str("</table>\n");
}

fn leaderboard(h: &mut String, ctx: &ReportContext<'_>) {
    let Some(board) = ctx.leaderboard else { return };
    h.push_str(
        "<h2 id=\"leaderboard\">Leaderboard records</h2>\n<table><tr><th class=\"l\">Orchestrator</th>\
         <th class=\"l\">Region</th><th>Sent</th><th>Received</th><th>Success rate</th>\
         <th>Round trip (s)</th><th>Segment (s)</th><th>Round-trip score</th><th>Score</th>\
         <th>VMAF</th><th>VMAF deficit vs reference</th><th>Effective price (wei/pixel)</th>\
         <th class=\"l\">Failures</th></tr>",
    );
    for r in &board.records {
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
    }
    h.push_str("</table>\n");
}

fn metrics(h: &mut String, ctx: &ReportContext<'_>) {
    let m = &ctx.summary.view.metrics;
    if m.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"metrics\">Metrics (as the tester summarized them)</h2>\n<table><tr><th class=\"l\">Metric</th>\
         <th class=\"l\">Type</th><th class=\"l\">Unit</th><th class=\"l\">Values</th></tr>",
    );
    for (name, metric) in m {
        let values = metric
            .values
            .iter()
            .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
            .collect::<Vec<_>>()
            .join("  ");
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            esc(name),
            esc(&metric.kind),
            esc(&metric.unit),
            esc(&values)
        );
        for s in &metric.series {
            let tags = s
                .tags
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let values = s
                .values
                .iter()
                .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
                .collect::<Vec<_>>()
                .join("  ");
            let _ = write!(
                h,
                "<tr><td class=\"l\">&nbsp;&nbsp;{{{}}}</td><td></td><td></td><td class=\"l\">{}</td></tr>",
                esc(&tags),
                esc(&values)
            );
        }
    }
    h.push_str("</table>\n");
}

fn journal(h: &mut String, ctx: &ReportContext<'_>) {
    let j = ctx.journal;
    h.push_str("<h2 id=\"journal\">Journal</h2>\n");
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
