//! `summary.md`: the headline, thresholds, per-rendition numbers, chaos events, the HLS
//! conformance rules broken, what browser players saw and the transcoder pools, as
//! GitHub-flavoured Markdown, short enough for a CI job summary (`$GITHUB_STEP_SUMMARY`).

use std::fmt::Write;

use super::{
    AI_COLUMNS, AI_INTRO, AI_LEVEL_COLUMNS, AI_LIVE_COLUMNS, AI_LIVE_INTRO, CHAOS_INTRO,
    POOL_COLUMNS, ReportContext, ai_cells, ai_level_cells, ai_live_cells, chaos_duration, ms_as_s,
    pool_cells, pool_intro, viewer_qoe_intro,
};
use crate::breakdowns::ViolationStats;
use crate::util::{escape_md_cell as cell, fmt_num, fmt_pct};

/// Renders the document.
pub fn render(ctx: &ReportContext<'_>) -> String {
    let mut m = String::new();
    let icon = match ctx.verdict.passed {
        Some(true) => "✅",
        Some(false) => "❌",
        None => "❔",
    };
    let _ = writeln!(m, "# lpt report — {}\n", ctx.run_name);
    let _ = writeln!(m, "{icon} **{}**\n", ctx.verdict.headline);
    if let Some(msg) = &ctx.verdict.message {
        let _ = writeln!(m, "{msg}\n");
    }
    if !ctx.missing.is_empty() {
        m.push_str("**Missing or skipped:**\n\n");
        for x in ctx.missing {
            let _ = writeln!(m, "- {x}");
        }
        m.push('\n');
    }
    let ts = &ctx.summary.view.thresholds;
    if !ts.is_empty() {
        m.push_str(
            "## Thresholds\n\n| Metric | Expression | Observed | Verdict |\n|---|---|---:|---|\n",
        );
        for t in ts {
            let _ = writeln!(
                m,
                "| `{}` | `{}` | {} | {} |",
                cell(&t.metric),
                cell(&t.expression),
                cell(&ctx.observed(t)),
                if t.passed { "pass" } else { "**FAIL**" }
            );
        }
        m.push('\n');
    }
    let o = &ctx.aggregates.segments.overall;
    let _ = writeln!(
        m,
        "## Segments\n\n{} segment × rendition records, {} OK ({}), latency p50 {} s, p95 {} s, p99 {} s.\n",
        o.segments,
        o.ok,
        fmt_pct(o.success_rate),
        fmt_num(o.latency_ms.p50.map(|v| v / 1000.0)),
        fmt_num(o.latency_ms.p95.map(|v| v / 1000.0)),
        fmt_num(o.latency_ms.p99.map(|v| v / 1000.0)),
    );
    let by = &ctx.aggregates.segments.by_rendition;
    if !by.is_empty() {
        m.push_str("| Rendition | Records | Success | p50 (s) | p95 (s) | p99 (s) | VMAF mean | Reference VMAF mean |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for g in by {
            let r = g.key("rendition");
            let q = |origin: &str| {
                ctx.aggregates
                    .quality
                    .by_rendition
                    .iter()
                    .find(|q| q.key("rendition") == r && q.key("origin") == origin)
                    .and_then(|q| q.stats.vmaf_mean)
            };
            let s = |v: Option<f64>| fmt_num(v.map(|v| v / 1000.0));
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(r),
                g.stats.segments,
                fmt_pct(g.stats.success_rate),
                s(g.stats.latency_ms.p50),
                s(g.stats.latency_ms.p95),
                s(g.stats.latency_ms.p99),
                fmt_num(q("network")),
                fmt_num(q("reference")),
            );
        }
        m.push('\n');
    }
    chaos(&mut m, ctx);
    let failing: Vec<_> = ctx
        .aggregates
        .checks
        .iter()
        .filter(|c| c.failed > 0)
        .collect();
    if !ctx.aggregates.checks.is_empty() {
        let _ = writeln!(
            m,
            "## Checks\n\n{} check(s), {} with failures.\n",
            ctx.aggregates.checks.len(),
            failing.len()
        );
        for c in failing {
            let _ = writeln!(
                m,
                "- `{}`: {} of {} failed — {}",
                c.check,
                c.failed,
                c.total,
                c.first_failure.as_deref().unwrap_or("")
            );
        }
        m.push('\n');
    }
    violations(&mut m, ctx);
    viewer_qoe(&mut m, ctx);
    pool(&mut m, ctx);
    ai(&mut m, ctx);
    if !ctx.aggregates.bench.is_empty() {
        m.push_str("## Hardware benchmark\n\n| Sessions | Real-time fraction | Transcode ÷ duration (mean) | p95 |\n|---:|---:|---:|---:|\n");
        for b in &ctx.aggregates.bench {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} |",
                b.sessions,
                fmt_pct(b.real_time_fraction),
                fmt_num(b.transcode_ratio.mean),
                fmt_num(b.transcode_ratio.p95)
            );
        }
        m.push('\n');
    }
    let _ = writeln!(
        m,
        "Full report: `report.html` · data: `summary.json`, `records.parquet` · generated {}",
        ctx.generated_at
    );
    m
}

fn chaos(m: &mut String, ctx: &ReportContext<'_>) {
    let events = &ctx.aggregates.chaos;
    if events.is_empty() {
        return;
    }
    let _ = writeln!(m, "## Chaos events\n\n{CHAOS_INTRO}\n");
    m.push_str(
        "| Event | Kind | Target | Start (s) | Duration (s) | Carried out | Streams hit | Worst failover (s) | Segments lost | Worst stall (s) | Streams not recovered | Winners | Redemptions lost | Worst redemption delay (s) |\n\
         |---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for ev in events {
        let carried_out = if ev.ok {
            "ok".to_string()
        } else {
            format!(
                "**no**: {}",
                cell(ev.message.as_deref().unwrap_or("not carried out"))
            )
        };
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&ev.event),
            cell(&ev.kind),
            cell(&ev.target),
            fmt_num(Some(ev.start_s)),
            chaos_duration(ev),
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
    }
    m.push('\n');
}

/// The HLS conformance rules broken, when any was: one row per rule, `must` first.
fn violations(m: &mut String, ctx: &ReportContext<'_>) {
    let rows = &ctx.aggregates.violations;
    if rows.is_empty() {
        return;
    }
    let (total, must) = ViolationStats::totals(rows);
    let _ = writeln!(
        m,
        "## HLS conformance\n\n{total} violation(s) of {} rule(s), {must} of them of a MUST; the first example of each rule.\n",
        rows.len()
    );
    m.push_str(
        "| Rule | Severity | Count | Streams | First example | What was seen |\n\
         |---|---|---:|---:|---|---|\n",
    );
    for v in rows {
        let severity = if v.severity == "must" {
            format!("**{}**", cell(&v.severity))
        } else {
            cell(&v.severity)
        };
        let _ = writeln!(
            m,
            "| `{}` | {severity} | {} | {} | `{}` | {} |",
            cell(&v.rule),
            v.count,
            v.streams,
            cell(&v.first_where()),
            cell(&v.first_detail),
        );
    }
    m.push('\n');
}

/// What the browser players saw, when the run had any: one row per workload (the HTML report
/// has the per-stream rows).
fn viewer_qoe(m: &mut String, ctx: &ReportContext<'_>) {
    let players = &ctx.aggregates.players;
    if players.is_empty() {
        return;
    }
    let _ = writeln!(m, "## Viewer QoE\n\n{}\n", viewer_qoe_intro(players));
    m.push_str(
        "| Workload | Players | OK | Failed | TTFF p50 (s) | TTFF p95 (s) | Latency p50 (s) | Latency p95 (s) | Stalls | Stall time (s) | Stall ratio | Dropped frames (share) | Level switches | First failure |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for g in &players.by_workload {
        let q = &g.stats;
        let failed = if q.failed > 0 {
            format!("**{}**", q.failed)
        } else {
            q.failed.to_string()
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {failed} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} |",
            cell(g.key("workload")),
            q.players,
            q.ok,
            ms_as_s(q.ttff_ms.p50),
            ms_as_s(q.ttff_ms.p95),
            ms_as_s(q.latency_ms.p50),
            ms_as_s(q.latency_ms.p95),
            q.stalls,
            ms_as_s(Some(q.stall_ms_total)),
            fmt_pct(q.stall_ratio),
            q.dropped_frames,
            fmt_pct(q.dropped_rate),
            q.level_switches,
            cell(q.first_failure.as_deref().unwrap_or("")),
        );
    }
    m.push('\n');
}

/// The AI probe's requests and live jobs, each when the run had any: the HTML report's tables,
/// faulty values in bold.
fn ai(m: &mut String, ctx: &ReportContext<'_>) {
    ai_requests(m, ctx);
    ai_live(m, ctx);
}

/// The AI probe's requests, when the run had any.
fn ai_requests(m: &mut String, ctx: &ReportContext<'_>) {
    let ai = &ctx.aggregates.ai;
    if ai.by_model.is_empty() {
        return;
    }
    let _ = writeln!(m, "## AI requests\n\n{AI_INTRO}\n");
    marked_table(
        m,
        &AI_COLUMNS,
        4,
        ai.by_model.iter().map(|r| ai_cells(r).to_vec()).collect(),
    );
    m.push_str("### By concurrency\n\n");
    marked_table(
        m,
        &AI_LEVEL_COLUMNS,
        1,
        ai.by_concurrency
            .iter()
            .map(|r| ai_level_cells(r).to_vec())
            .collect(),
    );
}

/// The AI probe's live video-to-video jobs, when the run had any.
fn ai_live(m: &mut String, ctx: &ReportContext<'_>) {
    let live = &ctx.aggregates.ai.live;
    if live.is_empty() {
        return;
    }
    let _ = writeln!(m, "## AI live video-to-video\n\n{AI_LIVE_INTRO}\n");
    marked_table(
        m,
        &AI_LIVE_COLUMNS,
        4,
        live.iter().map(|r| ai_live_cells(r).to_vec()).collect(),
    );
}

/// The transcoder pools, when the run had any: the HTML report's table, faulty values in bold.
fn pool(m: &mut String, ctx: &ReportContext<'_>) {
    let rows = &ctx.aggregates.pool;
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(m, "## Transcoder pool\n\n{}\n", pool_intro(rows));
    marked_table(
        m,
        &POOL_COLUMNS,
        2,
        rows.iter().map(|r| pool_cells(r).to_vec()).collect(),
    );
}

/// A table whose first `labels` columns name the row and the rest are numbers (right-aligned),
/// each faulty cell in bold.
fn marked_table(m: &mut String, titles: &[&str], labels: usize, rows: Vec<Vec<(String, bool)>>) {
    let _ = writeln!(m, "| {} |", titles.join(" | "));
    let _ = writeln!(
        m,
        "|{}{}",
        "---|".repeat(labels),
        "---:|".repeat(titles.len() - labels)
    );
    for cells in rows {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|(value, faulty)| {
                if faulty {
                    format!("**{}**", cell(&value))
                } else {
                    cell(&value)
                }
            })
            .collect();
        let _ = writeln!(m, "| {} |", cells.join(" | "));
    }
    m.push('\n');
}
