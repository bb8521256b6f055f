//! The HLS conformance table: `violation` records aggregated one row per rule (counted, the
//! first record as the example, MUST before SHOULD then by count) and shown in `summary.json`,
//! `report.html` and `summary.md` only when a rule was broken.

use observation::record::*;
use observation::summary::SUMMARY_FILE;
use polars::prelude::*;
use reports::aggregate::{AggregateOptions, aggregate};
use reports::breakdowns::ViolationStats;
use reports::frames::RecordFrames;
use serde_json::{Value, json};

use crate::common::{R360, T0, finished_smoke_run};

const STALE: &str = "HLS-PLAYLIST-STALE";
const PEAK: &str = "HLS-VARIANT-PEAK-BITRATE";
const EXCEEDED: &str = "HLS-TARGETDURATION-EXCEEDED";
const CONTENT_TYPE: &str = "HLS-SEGMENT-CONTENT-TYPE";

fn playlist(stream: &str) -> String {
    format!("https://cdn.example/{stream}/{R360}.m3u8")
}

/// Rule `rule` broken in `stream` at `T0 + at_s`, seen at `line` of the playlist.
fn violation(
    rule: &str,
    severity: &str,
    stream: &str,
    at_s: i64,
    line: Option<u32>,
    detail: &str,
) -> ViolationRecord {
    ViolationRecord {
        t_ms: T0 + at_s * 1000,
        workload: "steady".into(),
        stream: stream.into(),
        rendition: Some(R360.into()),
        rule: rule.into(),
        severity: severity.into(),
        url: playlist(stream),
        line,
        detail: detail.into(),
        occurrences: 1,
    }
}

/// Stale three times over two streams (first in s2 at 4 s, though journaled second), a peak
/// over BANDWIDTH folded into one record of three, one EXTINF over the target duration, and a
/// wrong segment type five times.
fn violations() -> Vec<Record> {
    let mut records: Vec<Record> = vec![
        violation(STALE, "must", "s1", 8, None, "no segment after 9 for 3200 ms").into(),
        violation(STALE, "must", "s2", 4, None, "no segment after 6 for 3100 ms").into(),
        violation(STALE, "must", "s1", 6, None, "no segment after 7 for 3050 ms").into(),
        ViolationRecord {
            url: "https://cdn.example/s1/index.m3u8".into(),
            rendition: None,
            occurrences: 3,
            ..violation(
                PEAK,
                "must",
                "s1",
                12,
                Some(4),
                "peak segment bit rate 1400000 bit/s (segment 4) is not below 125 % of BANDWIDTH=1100000",
            )
        }
        .into(),
        violation(
            EXCEEDED,
            "must",
            "s1",
            2,
            Some(15),
            "segment 3: EXTINF 2.6 s rounds above EXT-X-TARGETDURATION 2 s",
        )
        .into(),
    ];
    for i in 0..5 {
        records.push(
            ViolationRecord {
                url: format!("https://cdn.example/s1/{R360}/{i}.ts"),
                ..violation(
                    CONTENT_TYPE,
                    "should",
                    "s1",
                    10 + i,
                    None,
                    &format!("segment {i} served as `application/octet-stream`"),
                )
            }
            .into(),
        );
    }
    records
}

#[test]
fn violations_are_one_row_per_rule_must_first_then_by_count() {
    let frames = RecordFrames::from_records(&violations()).unwrap();
    assert_eq!(frames.violations.height(), 10);
    let a = aggregate(&frames, AggregateOptions::default()).unwrap();
    let rules: Vec<(&str, &str, u64, u64)> = a
        .violations
        .iter()
        .map(|v| (v.rule.as_str(), v.severity.as_str(), v.count, v.streams))
        .collect();
    assert_eq!(
        rules,
        [
            (STALE, "must", 3, 2),
            (PEAK, "must", 3, 1),
            (EXCEEDED, "must", 1, 1),
            (CONTENT_TYPE, "should", 5, 1),
        ],
        "MUST before SHOULD, then the count, then the ID"
    );
    assert_eq!(
        a.violations[0],
        ViolationStats {
            rule: STALE.into(),
            severity: "must".into(),
            count: 3,
            streams: 2,
            first_t_ms: T0 + 4000,
            first_stream: "s2".into(),
            first_rendition: Some(R360.into()),
            first_url: playlist("s2"),
            first_line: None,
            first_detail: "no segment after 6 for 3100 ms".into(),
        },
        "the example is the earliest record, not the first journaled"
    );
    let peak = &a.violations[1];
    assert_eq!(
        (peak.first_rendition.as_deref(), peak.first_line),
        (None, Some(4))
    );
    assert_eq!(peak.first_where(), "https://cdn.example/s1/index.m3u8:4");
    assert_eq!(
        a.violations[3].first_detail,
        "segment 0 served as `application/octet-stream`"
    );
    assert_eq!(ViolationStats::totals(&a.violations), (12, 7));
    assert_eq!(
        aggregate(&RecordFrames::empty().unwrap(), AggregateOptions::default())
            .unwrap()
            .violations,
        []
    );
}

#[test]
fn violations_are_listed_in_every_report_only_when_a_rule_broke() {
    let (quiet, _) = finished_smoke_run([]);

    let (dir, out) = finished_smoke_run(violations());
    assert_eq!(out.aggregates.violations.len(), 4);

    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(SUMMARY_FILE)).unwrap()).unwrap();
    testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
    let rows = summary["breakdowns"]["violations"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[2],
        json!({
            "rule": EXCEEDED, "severity": "must", "count": 1, "streams": 1,
            "first_t_ms": T0 + 2000, "first_stream": "s1", "first_rendition": R360,
            "first_url": playlist("s1"), "first_line": 15,
            "first_detail": "segment 3: EXTINF 2.6 s rounds above EXT-X-TARGETDURATION 2 s"
        })
    );
    assert_eq!(summary["report"]["journal"]["records"]["violation"], 10);
    let quiet_summary: Value =
        serde_json::from_slice(&std::fs::read(quiet.path().join(SUMMARY_FILE)).unwrap()).unwrap();
    testkit::schema::assert_valid(&quiet_summary, observation::summary::SCHEMA_PATH);
    assert_eq!(quiet_summary["breakdowns"]["violations"], json!([]));

    // records.parquet keeps every violation with its rule and line.
    let df = ParquetReader::new(std::fs::File::open(dir.path().join("records.parquet")).unwrap())
        .finish()
        .unwrap();
    let kinds = df.column("type").unwrap().str().unwrap().clone();
    let rules = df.column("rule").unwrap().str().unwrap().clone();
    let lines = df.column("line").unwrap().u32().unwrap().clone();
    let violation_rows: Vec<(Option<&str>, Option<u32>)> = (0..df.height())
        .filter(|&i| kinds.get(i) == Some("violation"))
        .map(|i| (rules.get(i), lines.get(i)))
        .collect();
    assert_eq!(violation_rows.len(), 10);
    assert!(violation_rows.contains(&(Some(EXCEEDED), Some(15))));

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let section = html
        .split_once("<h2 id=\"hls-conformance\">HLS conformance</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .unwrap_or_else(|| panic!("no HLS conformance section in the HTML"));
    assert!(
        section.contains("12 violation(s) of 4 rule(s), 7 of them of a MUST."),
        "{section}"
    );
    let stale_row = format!(
        "<tr class=\"bad\"><td class=\"l\">{STALE}</td><td class=\"l\">must</td><td>3</td><td>2</td>\
         <td class=\"l\">{}</td><td class=\"l\">no segment after 6 for 3100 ms</td></tr>",
        playlist("s2")
    );
    assert!(section.contains(&stale_row), "{section}");
    assert!(section.contains(&format!(
        "<tr><td class=\"l\">{CONTENT_TYPE}</td><td class=\"l\">should</td><td>5</td><td>1</td>\
         <td class=\"l\">https://cdn.example/s1/{R360}/0.ts</td><td class=\"l\">segment 0 served as `application/octet-stream`</td></tr>"
    )));
    let at = |rule: &str| section.find(rule).unwrap();
    assert!(at(STALE) < at(PEAK) && at(PEAK) < at(EXCEEDED) && at(EXCEEDED) < at(CONTENT_TYPE));

    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        md.contains("## HLS conformance\n\n12 violation(s) of 4 rule(s), 7 of them of a MUST"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| `{STALE}` | **must** | 3 | 2 | `{}` | no segment after 6 for 3100 ms |",
            playlist("s2")
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| `{EXCEEDED}` | **must** | 1 | 1 | `{}:15` | segment 3: EXTINF 2.6 s rounds above EXT-X-TARGETDURATION 2 s |",
            playlist("s1")
        )),
        "{md}"
    );

    let quiet_html = std::fs::read_to_string(quiet.path().join("report.html")).unwrap();
    let quiet_md = std::fs::read_to_string(quiet.path().join("summary.md")).unwrap();
    assert!(
        !quiet_html.contains("HLS conformance"),
        "no violation, no section"
    );
    assert!(
        !quiet_md.contains("HLS conformance"),
        "no violation, no section"
    );
}
