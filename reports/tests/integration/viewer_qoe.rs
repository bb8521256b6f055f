//! The Viewer QoE section: `player` records (what each browser player saw) aggregated one row per
//! workload and per stream (players counted by their final record, TTFF and latency
//! percentiles, stalls against the time played, dropped frames, rendition switches, the first
//! failure) and shown in `summary.json`, `report.html` and `summary.md` only when the run had
//! players.

use observation::record::*;
use observation::summary::SUMMARY_FILE;
use polars::prelude::*;
use reports::aggregate::{AggregateOptions, aggregate};
use reports::breakdowns::{Group, ViewerQoe};
use reports::frames::RecordFrames;
use serde_json::{Value, json};

use crate::common::{R360, T0, finished_smoke_run};

const FRAG_404: &str = "networkError: fragLoadError (HTTP 404) at https://cdn.example/s2/720p/5.ts";

/// A `kind` record of player `player` of `stream` in workload `steady`, `at_ms` after `T0`, with
/// none of the kind's columns filled.
fn event(stream: &str, player: u32, at_ms: i64, kind: &str) -> PlayerRecord {
    PlayerRecord {
        t_ms: T0 + at_ms,
        workload: "steady".into(),
        stream: stream.into(),
        player,
        kind: kind.into(),
        rendition: Some("720p".into()),
        ttff_ms: None,
        latency_ms: None,
        stall_ms: None,
        stalls: None,
        level_switches: None,
        decoded_frames: None,
        dropped_frames: None,
        ok: None,
        error: None,
    }
}

fn first_frame(stream: &str, player: u32, at_ms: i64, ttff_ms: f64) -> Record {
    PlayerRecord {
        ttff_ms: Some(ttff_ms),
        ..event(stream, player, at_ms, "first_frame")
    }
    .into()
}

fn latency(stream: &str, player: u32, at_ms: i64, latency_ms: f64) -> Record {
    PlayerRecord {
        latency_ms: Some(latency_ms),
        ..event(stream, player, at_ms, "latency")
    }
    .into()
}

fn stall(stream: &str, player: u32, at_ms: i64, stall_ms: f64) -> Record {
    PlayerRecord {
        stall_ms: Some(stall_ms),
        stalls: Some(1),
        ..event(stream, player, at_ms, "stall")
    }
    .into()
}

fn level_switch(stream: &str, player: u32, at_ms: i64, to: &str) -> Record {
    PlayerRecord {
        rendition: Some(to.into()),
        level_switches: Some(1),
        ..event(stream, player, at_ms, "level_switch")
    }
    .into()
}

/// The player's end: `ended` and ok without `error`, `failed` with it.
fn end(
    stream: &str,
    player: u32,
    at_ms: i64,
    decoded: u64,
    dropped: u64,
    error: Option<&str>,
) -> Record {
    let kind = if error.is_some() { "failed" } else { "ended" };
    PlayerRecord {
        decoded_frames: Some(decoded),
        dropped_frames: Some(dropped),
        ok: Some(error.is_none()),
        error: error.map(str::to_string),
        ..event(stream, player, at_ms, kind)
    }
    .into()
}

/// Two streams of workload `steady`, two players each:
/// - s1/0: TTFF 800 ms, latencies 1500, 1700, 1600, one 400 ms stall, one switch; ends ok at
///   11 s after its first frame at 1 s, 3 of 300 frames dropped.
/// - s1/1: TTFF 1000 ms, latencies 1800, 2000; ends ok, 10 s played, no frame dropped.
/// - s2/0: TTFF 1200 ms, latencies 2500, 2200, stalls of 600 and 1000 ms, two switches; ends ok,
///   10 s played, 10 of 290 frames dropped.
/// - s2/1: TTFF 3000 ms, latency 4000; fails on a 404 4 s after its first frame, 7 of 100
///   frames dropped.
fn players() -> Vec<Record> {
    vec![
        first_frame("s1", 0, 1000, 800.0),
        first_frame("s1", 1, 1000, 1000.0),
        first_frame("s2", 0, 2000, 1200.0),
        first_frame("s2", 1, 2000, 3000.0),
        latency("s1", 0, 2000, 1500.0),
        latency("s1", 0, 3000, 1700.0),
        latency("s1", 0, 4000, 1600.0),
        latency("s1", 1, 2000, 1800.0),
        latency("s1", 1, 3000, 2000.0),
        latency("s2", 0, 3000, 2500.0),
        latency("s2", 0, 4000, 2200.0),
        latency("s2", 1, 3000, 4000.0),
        stall("s1", 0, 5000, 400.0),
        stall("s2", 0, 4000, 600.0),
        stall("s2", 0, 7000, 1000.0),
        level_switch("s1", 0, 6000, "360p"),
        level_switch("s2", 0, 5000, "360p"),
        level_switch("s2", 0, 8000, "720p"),
        end("s2", 1, 6000, 100, 7, Some(FRAG_404)),
        end("s1", 0, 11_000, 300, 3, None),
        end("s1", 1, 11_000, 300, 0, None),
        end("s2", 0, 12_000, 290, 10, None),
    ]
}

fn close(got: Option<f64>, want: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what}: expected {want}, got None"));
    assert!(
        (got - want).abs() < 1e-9,
        "{what}: expected {want}, got {got}"
    );
}

/// The group of `groups` whose `name` key is `value`.
fn group<'a>(groups: &'a [Group<ViewerQoe>], name: &str, value: &str) -> &'a ViewerQoe {
    &groups
        .iter()
        .find(|g| g.key(name) == value)
        .unwrap_or_else(|| panic!("no group {name}={value}"))
        .stats
}

#[test]
fn viewer_qoe_is_one_row_per_workload_and_per_stream() {
    let frames = RecordFrames::from_records(&players()).unwrap();
    assert_eq!(frames.players.height(), 22);
    let a = aggregate(&frames, AggregateOptions::default()).unwrap();
    assert_eq!(a.players.by_workload.len(), 1);
    assert_eq!(a.players.totals(), (4, 3, 1));

    let w = group(&a.players.by_workload, "workload", "steady");
    assert_eq!((w.players, w.ok, w.failed), (4, 3, 1));
    close(w.success_rate, 0.75, "success rate");
    // TTFF 800, 1000, 1200, 3000: p50 halfway between 1000 and 1200, p95 at 2.85 ranks.
    assert_eq!(w.ttff_ms.count, 4);
    close(w.ttff_ms.p50, 1100.0, "TTFF p50");
    close(w.ttff_ms.p95, 1200.0 + 0.85 * 1800.0, "TTFF p95");
    close(w.ttff_ms.max, 3000.0, "TTFF max");
    // Latency 1500 1600 1700 1800 2000 2200 2500 4000: p50 at 3.5 ranks, p95 at 6.65.
    assert_eq!(w.latency_ms.count, 8);
    close(w.latency_ms.p50, 1900.0, "latency p50");
    close(w.latency_ms.p95, 2500.0 + 0.65 * 1500.0, "latency p95");
    close(w.latency_ms.max, 4000.0, "latency max");
    assert_eq!(w.stalls, 3);
    assert_eq!(w.stall_ms_total, 2000.0);
    // First frame → end: 10 s for each player that ended, 4 s for the one that failed.
    close(w.played_ms_total, 34_000.0, "played");
    close(w.stall_ratio, 2000.0 / 34_000.0, "stall ratio");
    assert_eq!((w.decoded_frames, w.dropped_frames), (990, 20));
    close(w.dropped_rate, 20.0 / 990.0, "dropped rate");
    assert_eq!(w.level_switches, 3);
    assert_eq!(w.first_failure.as_deref(), Some(FRAG_404));

    let streams: Vec<(&str, &str)> = a
        .players
        .by_stream
        .iter()
        .map(|g| (g.key("workload"), g.key("stream")))
        .collect();
    assert_eq!(streams, [("steady", "s1"), ("steady", "s2")]);
    let s1 = group(&a.players.by_stream, "stream", "s1");
    assert_eq!((s1.players, s1.ok, s1.failed), (2, 2, 0));
    close(s1.ttff_ms.p50, 900.0, "s1 TTFF p50");
    close(s1.latency_ms.p50, 1700.0, "s1 latency p50");
    close(s1.stall_ratio, 400.0 / 20_000.0, "s1 stall ratio");
    close(s1.dropped_rate, 3.0 / 600.0, "s1 dropped rate");
    assert_eq!((s1.level_switches, s1.first_failure.as_deref()), (1, None));
    let s2 = group(&a.players.by_stream, "stream", "s2");
    assert_eq!((s2.players, s2.ok, s2.failed), (2, 1, 1));
    close(s2.success_rate, 0.5, "s2 success rate");
    close(s2.latency_ms.p95, 2500.0 + 0.9 * 1500.0, "s2 latency p95");
    assert_eq!((s2.stalls, s2.stall_ms_total), (2, 1600.0));
    close(s2.stall_ratio, 1600.0 / 14_000.0, "s2 stall ratio");
    assert_eq!((s2.decoded_frames, s2.dropped_frames), (390, 17));
    assert_eq!(s2.first_failure.as_deref(), Some(FRAG_404));

    assert!(
        aggregate(&RecordFrames::empty().unwrap(), AggregateOptions::default())
            .unwrap()
            .players
            .is_empty()
    );
}

#[test]
fn a_player_counts_once_by_its_final_state_and_stalls_without_an_end_are_not_a_ratio() {
    let late = |r: Record| match r {
        Record::Player(p) => Record::Player(PlayerRecord {
            workload: "late".into(),
            ..p
        }),
        other => other,
    };
    // s3/0 stalls and never ends (the run stopped first); s3/1 fails, then ends not ok; s3/2
    // fails with no error text.
    let records: Vec<Record> = [
        first_frame("s3", 0, 1000, 900.0),
        stall("s3", 0, 3000, 700.0),
        first_frame("s3", 1, 1000, 950.0),
        end(
            "s3",
            1,
            5000,
            120,
            0,
            Some("mediaError: bufferStalledError"),
        ),
        PlayerRecord {
            decoded_frames: Some(130),
            dropped_frames: Some(0),
            ok: Some(false),
            ..event("s3", 1, 6000, "ended")
        }
        .into(),
        PlayerRecord {
            ok: Some(false),
            ..event("s3", 2, 7000, "failed")
        }
        .into(),
    ]
    .into_iter()
    .map(late)
    .collect();
    let frames = RecordFrames::from_records(&records).unwrap();
    let a = aggregate(&frames, AggregateOptions::default()).unwrap();
    let w = group(&a.players.by_workload, "workload", "late");
    assert_eq!((w.players, w.ok, w.failed), (3, 0, 2));
    close(w.success_rate, 0.0, "success rate");
    assert_eq!((w.stalls, w.stall_ms_total), (1, 700.0));
    // Only s3/1 has a first frame and an end (the last of them, at 6 s); s3/0's stall has no
    // played time to be measured against.
    close(w.played_ms_total, 5000.0, "played");
    close(w.stall_ratio, 0.0, "stall ratio");
    assert_eq!(
        w.first_failure.as_deref(),
        Some("mediaError: bufferStalledError")
    );
    assert_eq!(w.ttff_ms.count, 2);
    assert_eq!(w.latency_ms.count, 0);
    assert_eq!(w.latency_ms.p50, None);
    // s3/1's frame totals are its last ones, not those of both of its final records.
    assert_eq!((w.decoded_frames, w.dropped_rate), (130, Some(0.0)));

    // A player that failed without saying why still names its failure.
    let silent = RecordFrames::from_records(&records[5..]).unwrap();
    let a = aggregate(&silent, AggregateOptions::default()).unwrap();
    let w = group(&a.players.by_workload, "workload", "late");
    assert_eq!(
        w.first_failure.as_deref(),
        Some("failed (no error recorded)")
    );
    assert_eq!(
        (w.played_ms_total, w.stall_ratio, w.dropped_rate),
        (None, None, None)
    );
}

/// The Viewer QoE section of `html`, up to the next heading.
fn html_section(html: &str) -> &str {
    html.split_once("<h2 id=\"viewer-qoe\">Viewer QoE</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .unwrap_or_else(|| panic!("no Viewer QoE section in the HTML"))
}

const INTRO: &str = "4 browser player(s) (hls.js in headless Chromium) on 2 stream(s): 3 played \
                     to the end, 1 failed.";

#[test]
fn viewer_qoe_is_reported_in_every_artifact_only_when_the_run_had_players() {
    let (quiet, _) = finished_smoke_run([]);

    let mut records = players();
    // One conformance finding, so the HLS conformance table is there to come before this one.
    records.push(
        ViolationRecord {
            t_ms: T0 + 4000,
            workload: "steady".into(),
            stream: "s1".into(),
            rendition: Some(R360.into()),
            rule: "HLS-PLAYLIST-STALE".into(),
            severity: "must".into(),
            url: "https://cdn.example/s1/index.m3u8".into(),
            line: None,
            detail: "no segment after 6 for 3100 ms".into(),
            occurrences: 1,
        }
        .into(),
    );
    let (dir, out) = finished_smoke_run(records);
    assert_eq!(out.aggregates.players.totals(), (4, 3, 1));

    // summary.json: valid, with both breakdowns; none in a run without players.
    let read = |path: &std::path::Path| -> Value {
        let summary: Value =
            serde_json::from_slice(&std::fs::read(path.join(SUMMARY_FILE)).unwrap()).unwrap();
        testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
        summary
    };
    let summary = read(dir.path());
    let players = &summary["breakdowns"]["players"];
    let workload = &players["by_workload"][0];
    assert_eq!(workload["key"], json!({"workload": "steady"}));
    for (field, want) in [
        ("players", json!(4)),
        ("ok", json!(3)),
        ("failed", json!(1)),
        ("success_rate", json!(0.75)),
        ("stalls", json!(3)),
        ("stall_ms_total", json!(2000.0)),
        ("played_ms_total", json!(34000.0)),
        ("decoded_frames", json!(990)),
        ("dropped_frames", json!(20)),
        ("level_switches", json!(3)),
        ("first_failure", json!(FRAG_404)),
    ] {
        assert_eq!(workload[field], want, "{field}");
    }
    close(workload["ttff_ms"]["p50"].as_f64(), 1100.0, "TTFF p50");
    close(
        workload["latency_ms"]["p50"].as_f64(),
        1900.0,
        "latency p50",
    );
    close(workload["stall_ratio"].as_f64(), 2000.0 / 34_000.0, "ratio");
    close(workload["dropped_rate"].as_f64(), 20.0 / 990.0, "dropped");
    let stream_keys: Vec<&Value> = players["by_stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["key"])
        .collect();
    assert_eq!(
        stream_keys,
        [
            &json!({"workload": "steady", "stream": "s1"}),
            &json!({"workload": "steady", "stream": "s2"})
        ]
    );
    assert_eq!(summary["report"]["journal"]["records"]["player"], 22);
    assert_eq!(
        read(quiet.path())["breakdowns"]["players"],
        json!({"by_workload": [], "by_stream": []})
    );

    // records.parquet keeps every player record with its own columns.
    let df = ParquetReader::new(std::fs::File::open(dir.path().join("records.parquet")).unwrap())
        .finish()
        .unwrap()
        .lazy()
        .filter(col("type").eq(lit("player")))
        .sort(["t_ms"], SortMultipleOptions::default())
        .collect()
        .unwrap();
    assert_eq!(df.height(), 22);
    let ttff: Vec<Option<f64>> = df
        .column("ttff_ms")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(
        ttff.iter().flatten().copied().collect::<Vec<_>>(),
        [800.0, 1000.0, 1200.0, 3000.0]
    );
    let failed = df
        .clone()
        .lazy()
        .filter(col("kind").eq(lit("failed")))
        .collect()
        .unwrap();
    assert_eq!(
        failed.column("player").unwrap().u32().unwrap().get(0),
        Some(1)
    );
    assert_eq!(
        failed.column("error").unwrap().str().unwrap().get(0),
        Some(FRAG_404)
    );
    assert_eq!(
        failed
            .column("dropped_frames")
            .unwrap()
            .u64()
            .unwrap()
            .get(0),
        Some(7)
    );
    assert_eq!(
        failed.column("ok").unwrap().bool().unwrap().get(0),
        Some(false)
    );
    let switches = df.column("level_switches").unwrap().u32().unwrap().sum();
    assert_eq!(switches, Some(3));

    // report.html: after the HLS conformance table, the workload row, the per-stream rows.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.find("id=\"hls-conformance\"").unwrap() < html.find("id=\"viewer-qoe\"").unwrap());
    let section = html_section(&html);
    assert!(section.contains(INTRO), "{section}");
    let workload_row = format!(
        "<tr class=\"bad\"><td class=\"l\">steady</td><td>4</td><td>3</td><td>1</td>\
         <td>1.100</td><td>2.730</td><td>3</td><td>1.900</td><td>3.475</td><td>4</td>\
         <td>3</td><td>2</td><td>5.88 %</td><td>20 (2.02 %)</td><td>3</td>\
         <td class=\"l\">{FRAG_404}</td></tr>"
    );
    assert!(section.contains(&workload_row), "{section}");
    let s1_row = "<tr><td class=\"l\">steady</td><td class=\"l\">s1</td><td>2</td><td>2</td>\
                  <td>0</td><td>0.900</td><td>0.990</td><td>1</td><td>1.700</td><td>1.960</td>\
                  <td>2</td><td>1</td><td>0.400</td><td>2.00 %</td><td>3 (0.50 %)</td><td>1</td>\
                  <td class=\"l\"></td></tr>";
    assert!(section.contains(s1_row), "{section}");
    let s2_row = format!(
        "<tr class=\"bad\"><td class=\"l\">steady</td><td class=\"l\">s2</td><td>2</td><td>1</td>\
         <td>1</td><td>2.100</td><td>2.910</td><td>3</td><td>2.500</td><td>3.850</td><td>4</td>\
         <td>2</td><td>1.600</td><td>11.43 %</td><td>17 (4.36 %)</td><td>2</td>\
         <td class=\"l\">{FRAG_404}</td></tr>"
    );
    assert!(section.contains(&s2_row), "{section}");
    assert!(section.contains("<summary>Per stream (2 streams)</summary>"));
    assert!(
        ["<script", "<link", "src="]
            .iter()
            .all(|fetch| !section.contains(fetch)),
        "the section loads nothing: the page stays offline"
    );

    // summary.md: after the HLS conformance table, one row per workload.
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.find("## HLS conformance").unwrap() < md.find("## Viewer QoE").unwrap());
    assert!(md.contains(&format!("## Viewer QoE\n\n{INTRO}")), "{md}");
    assert!(
        md.contains(&format!(
            "| steady | 4 | 3 | **1** | 1.100 | 2.730 | 1.900 | 3.475 | 3 | 2 | 5.88 % | 20 (2.02 %) | 3 | {FRAG_404} |"
        )),
        "{md}"
    );

    let quiet_html = std::fs::read_to_string(quiet.path().join("report.html")).unwrap();
    let quiet_md = std::fs::read_to_string(quiet.path().join("summary.md")).unwrap();
    assert!(!quiet_html.contains("Viewer QoE"), "no player, no section");
    assert!(!quiet_md.contains("Viewer QoE"), "no player, no section");
}
