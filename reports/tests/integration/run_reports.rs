//! Integration tests of the reports crate: journal round trip and crash tolerance, aggregates
//! against hand-computed values, every artifact of `finalize_run` parsed back, comparison
//! verdicts, and bad input (torn journal, unknown versions, empty run, different scenarios).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use observation::record::*;
use observation::summary::SUMMARY_FILE;
use polars::prelude::*;
use reports::aggregate::{AggregateOptions, aggregate};
use reports::compare::{ChangeVerdict, CompareOptions, MetricChange, compare};
use reports::frames::RecordFrames;
use reports::plots::PLOT_STEMS;
use reports::*;
use serde_json::{Value, json};

use crate::common::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_valid_summary(summary: &Value) {
    testkit::schema::assert_valid(summary, observation::summary::SCHEMA_PATH);
}

/// Reads a run's `leaderboard.json` and asserts it is valid under its checked-in schema.
fn read_leaderboard(run_dir: &Path) -> Value {
    let board = read_json(&run_dir.join("leaderboard.json"));
    testkit::schema::assert_valid(&board, reports::leaderboard::SCHEMA_PATH);
    board
}

fn close(a: Option<f64>, b: f64) {
    let a = a.unwrap_or_else(|| panic!("expected {b}, got None"));
    assert!((a - b).abs() < 1e-9, "expected {b}, got {a}");
}

#[test]
fn records_round_trip_through_a_journal_line() {
    for r in fixed_records() {
        let mut line = Vec::new();
        r.write_json_line(&mut line).unwrap();
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(
            text.starts_with(&format!("{{\"type\":\"{}\",\"v\":1,", r.type_name())),
            "{text}"
        );
        assert!(text.ends_with('\n'));
        let mut reader = JournalReader::new(&line[..], "mem".into());
        assert_eq!(reader.next_record().unwrap(), Some(r));
    }
}

#[test]
fn same_column_name_has_same_type_in_every_record_kind() {
    let union = union_schema();
    for schema in observation::record::kind_schemas() {
        for (name, dtype) in schema.iter() {
            assert_eq!(union.get(name), Some(dtype), "column {name}");
        }
    }
}

#[test]
fn journal_writer_flushes_within_a_second_without_being_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let w = JournalWriter::in_run_dir(dir.path()).unwrap();
    w.append(seg("s1", R240, 1, Some(1.0), true, "0xaaa", None))
        .unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.ends_with('\n') && text.lines().count() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "record not on disk after 2 s: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(w);
}

#[test]
fn journal_writer_keeps_every_line_whole_under_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let w = JournalWriter::in_run_dir(dir.path()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    w.append(seg(
                        &format!("s{t}"),
                        R240,
                        i,
                        Some(i as f64),
                        true,
                        "0xaaa",
                        None,
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(w.records_written(), 16_000);
    drop(w);
    let mut reader = JournalReader::open(&dir.path().join(JOURNAL_FILE)).unwrap();
    let mut per_stream: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(Record::Segment(s)) = reader.next_record().unwrap() {
        *per_stream.entry(s.stream).or_default() += 1;
    }
    let stats = reader.into_stats();
    assert!(!stats.has_problems(), "{stats:?}");
    assert_eq!(stats.total_records(), 16_000);
    assert_eq!(per_stream.len(), 8);
    assert!(per_stream.values().all(|n| *n == 2000));
}

#[test]
fn journal_writer_starts_a_fresh_line_after_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::write(&path, "{\"type\":\"segment\",\"v\":1,\"t_ms\":1").unwrap();
    write_journal(
        dir.path(),
        &[seg("s1", R240, 1, Some(5.0), true, "0xaaa", None).into()],
    );
    let mut reader = JournalReader::open(&path).unwrap();
    assert!(matches!(
        reader.next_record().unwrap(),
        Some(Record::Segment(_))
    ));
    assert_eq!(reader.next_record().unwrap(), None);
    let stats = reader.into_stats();
    assert_eq!(stats.malformed_lines, 1, "{stats:?}");
    assert_eq!(stats.total_records(), 1);
}

#[test]
fn aggregates_equal_hand_computed_values() {
    let records = fixed_records();
    let frames = RecordFrames::from_records(&records).unwrap();
    let a = aggregate(&frames, AggregateOptions::default()).unwrap();
    let o = &a.segments.overall;
    assert_eq!((o.segments, o.ok, o.failed), (9, 8, 1));
    close(o.success_rate, 8.0 / 9.0);
    // Overall latencies sorted: 1000 1500 2000 2500 3000 3500 4000 5500 (n = 8).
    assert_eq!(o.latency_ms.count, 8);
    close(o.latency_ms.mean, 23000.0 / 8.0);
    close(o.latency_ms.p50, 2750.0); // h = 3.5
    close(o.latency_ms.p95, 4975.0); // h = 6.65 → 4000 + 0.65 × 1500
    close(o.latency_ms.min, 1000.0);
    close(o.latency_ms.max, 5500.0);
    assert_eq!(o.bytes_total, 900_000);

    let by_r: BTreeMap<&str, _> = a
        .segments
        .by_rendition
        .iter()
        .map(|g| (g.key("rendition"), &g.stats))
        .collect();
    let r240 = by_r[R240];
    assert_eq!((r240.segments, r240.ok), (4, 4));
    close(r240.success_rate, 1.0);
    close(r240.latency_ms.p50, 2500.0);
    close(r240.latency_ms.p90, 3700.0); // h = 2.7
    close(r240.latency_ms.p95, 3850.0); // h = 2.85
    close(r240.latency_ms.p99, 3970.0); // h = 2.97
    let r360 = by_r[R360];
    assert_eq!((r360.segments, r360.ok, r360.failed), (5, 4, 1));
    close(r360.success_rate, 0.8);
    close(r360.latency_ms.mean, 3250.0);
    close(r360.latency_ms.p50, 3000.0);
    close(r360.latency_ms.p95, 5200.0); // h = 2.85 → 3500 + 0.85 × 2000

    let by_s: BTreeMap<&str, _> = a
        .segments
        .by_stream
        .iter()
        .map(|g| (g.key("stream"), &g.stats))
        .collect();
    close(by_s["s1"].latency_ms.p50, 1750.0);
    close(by_s["s1"].success_rate, 1.0);
    close(by_s["s2"].latency_ms.p50, 3750.0);
    close(by_s["s2"].success_rate, 0.8);

    let regions: Vec<&str> = a
        .segments
        .by_region
        .iter()
        .map(|g| g.key("region"))
        .collect();
    assert_eq!(
        regions,
        ["FRA"],
        "records without a region are not a region"
    );
    let pairs: Vec<(&str, &str, u64)> = a
        .segments
        .by_orchestrator_region
        .iter()
        .map(|g| (g.key("orchestrator"), g.key("region"), g.stats.segments))
        .collect();
    assert_eq!(pairs, [("0xaaa", "FRA", 4), ("0xbbb", "unknown", 5)]);
    assert_eq!(a.segments.by_workload.len(), 1);
    assert_eq!(a.segments.by_workload[0].stats.segments, 9);

    let q: BTreeMap<(&str, &str), _> = a
        .quality
        .by_rendition
        .iter()
        .map(|g| ((g.key("rendition"), g.key("origin")), &g.stats))
        .collect();
    let net = q[&(R240, "network")];
    assert_eq!(net.samples, 2);
    close(net.vmaf_mean, 85.0);
    close(net.vmaf_p5, 80.5);
    close(net.vmaf_min, 80.0);
    close(net.psnr_mean, 42.5);
    close(q[&(R240, "reference")].vmaf_mean, 90.0);

    assert_eq!(a.checks.len(), 2);
    let d = &a.checks[0];
    assert_eq!(
        (d.check.as_str(), d.total, d.passed, d.failed),
        ("duration", 4, 3, 1)
    );
    close(d.pass_rate, 0.75);
    assert_eq!(
        d.first_failure.as_deref(),
        Some("duration 1.2 s, expected 2 s")
    );
    assert_eq!(
        (a.checks[1].check.as_str(), a.checks[1].failed),
        ("resolution", 0)
    );

    let p = &a.payments.overall;
    assert_eq!(
        (
            p.tickets,
            p.winning_tickets,
            p.redemptions,
            p.redemptions_ok
        ),
        (4, 1, 1, 1)
    );
    assert!((p.face_value_total_wei - 4e15).abs() < 1.0);
    assert!((p.ev_total_wei - 1e15).abs() < 1.0);
    assert!((p.won_face_value_wei - 1e15).abs() < 1.0);
    assert_eq!(p.pixels_total, 4_000_000);

    assert_eq!(a.bench.len(), 2);
    assert_eq!(a.bench[0].sessions, 1);
    close(a.bench[0].real_time_fraction, 1.0);
    close(a.bench[0].transcode_ratio.mean, 0.625);
    assert_eq!(a.bench[1].sessions, 4);
    close(a.bench[1].real_time_fraction, 0.5);
    close(a.bench[1].transcode_ratio.mean, 1.1);
    assert_eq!(a.bench[1].encoder, "libx264");

    assert_eq!(a.first_record_ms, Some(T0)); // the first ticket
    assert_eq!(a.last_record_ms, Some(T0 + 9000));
    // CDF of R360: 4 latencies, last point at 100 %.
    let cdf = &a.plot.latency_cdf[R360];
    assert_eq!(cdf.last(), Some(&(5500.0, 1.0)));
}

#[test]
fn every_artifact_exists_and_parses_after_finalize() {
    let records = fixed_records();
    let (dir, out) = finished_run(&records);
    assert_eq!(out.summary_source, SummarySource::Tester);
    assert_eq!(out.records, records.len());
    assert_eq!(out.verdict.passed, Some(false));
    assert!(out.missing.is_empty(), "{:?}", out.missing);

    // summary.json: valid against the schema, every base key kept, breakdowns present.
    let summary = read_json(&dir.path().join(SUMMARY_FILE));
    assert_valid_summary(&summary);
    let base = base_summary("smoke");
    for (k, v) in base.as_object().unwrap() {
        assert_eq!(&summary[k], v, "base key {k} changed");
    }
    assert_eq!(summary["breakdowns"]["segments"]["overall"]["segments"], 9);
    assert_eq!(summary["report"]["summary_source"], "tester");

    // records.parquet: same row count as the journal, per type too.
    let df = ParquetReader::new(std::fs::File::open(dir.path().join("records.parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), records.len());
    let types = df.column("type").unwrap().str().unwrap().clone();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for t in types.iter().flatten() {
        *per.entry(t.to_string()).or_default() += 1;
    }
    let mut expect: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        *expect.entry(r.type_name().to_string()).or_default() += 1;
    }
    assert_eq!(per, expect);
    assert_eq!(df.schema().len(), union_schema().len());

    // Plots: every SVG parses, every PNG is a PNG, the HTML embeds each.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for stem in PLOT_STEMS {
        let svg = std::fs::read_to_string(dir.path().join(format!("plots/{stem}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            doc.descendants().filter(|n| n.has_tag_name("text")).count() > 5,
            "{stem}: no labels"
        );
        let png = std::fs::read(dir.path().join(format!("plots/{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        let start = html
            .find(&format!("<figure id=\"plot-{stem}\">"))
            .unwrap_or_else(|| panic!("{stem} not in HTML"));
        assert!(
            html[start..].starts_with(&format!("<figure id=\"plot-{stem}\"><svg"))
                || html[start..start + 400].contains("<svg")
        );
    }
    assert!(
        !html.contains("<script"),
        "the report must not need scripts"
    );
    assert!(html.contains("FAILED — 2 of 3 threshold(s) did not hold"));
    assert!(html.contains("no data"));
    assert!(html.contains("[thresholds]"), "scenario TOML is shown");
    assert!(html.contains("Debian 12"), "environment is shown");
    assert!(html.contains(R360));

    // JUnit: the common structure, one case per threshold and per check name.
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["run", "thresholds", "checks"]);
    for s in &suites {
        let cases = s.children().filter(|n| n.has_tag_name("testcase")).count();
        assert_eq!(
            s.attribute("tests").unwrap().parse::<usize>().unwrap(),
            cases
        );
        let failures = s
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .filter(|c| c.children().any(|x| x.has_tag_name("failure")))
            .count();
        assert_eq!(
            s.attribute("failures").unwrap().parse::<usize>().unwrap(),
            failures
        );
        for c in s.children().filter(|n| n.has_tag_name("testcase")) {
            assert!(c.attribute("name").is_some() && c.attribute("classname").is_some());
        }
    }
    assert_eq!(suites[1].attribute("tests"), Some("3"));
    assert_eq!(suites[1].attribute("failures"), Some("2"));
    assert_eq!(suites[2].attribute("tests"), Some("2"));
    assert_eq!(suites[2].attribute("failures"), Some("1"));
    assert_eq!(root.attribute("tests"), Some("6"));

    // Markdown and leaderboard.
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        md.contains("| `segment_success` | `rate >= 0.99` | 0.889 | **FAIL** |"),
        "{md}"
    );
    let board = read_leaderboard(dir.path());
    let recs = board["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    let a = &recs[0];
    assert_eq!(a["orchestrator"], "0xaaa");
    assert_eq!(a["region"], "FRA");
    assert_eq!(
        a["segments_sent"], 2,
        "two source segments, each with two renditions"
    );
    assert_eq!(a["success_rate"], 1.0);
    // Round trip = latency of the slowest rendition: mean(1.5, 2.5) = 2 s.
    assert_eq!(a["round_trip_time"], 2.0);
    let expected_score = 1.0 - (-2.0f64 / 2.0).exp();
    let s = board["aggregated"]["0xaaa"]["FRA"]["score"]
        .as_f64()
        .unwrap();
    assert!((s - expected_score).abs() < 1e-12);
    let b = &recs[1];
    assert_eq!(
        (b["segments_sent"].as_u64(), b["segments_received"].as_u64()),
        (Some(3), Some(4)),
        "renditions received are counted"
    );
    assert_eq!(b["errors"][0]["error_code"], "timeout");
    assert_eq!(b["errors"][0]["count"], 1);
    let section7 = [
        "region",
        "orchestrator",
        "success_rate",
        "round_trip_time",
        "seg_duration",
        "segments_sent",
        "segments_received",
        "upload_time",
        "download_time",
        "transcode_time",
        "errors",
        "timestamp",
    ];
    for rec in recs {
        let mut keys: Vec<&str> = rec
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut want = section7.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "a record must hold exactly the §7 fields");
    }
    // Extras beside the records: 0xaaa's quality is paired (network 80, 90 vs reference 85, 95)
    // and its four tickets paid 2.5e14 wei EV for 1e6 pixels each (the fixture's quoted 250
    // wei/pixel is deliberately not what was paid: the effective price comes from the EV).
    let q = &board["extras"]["0xaaa"]["FRA"]["quality"];
    assert_eq!(q["samples"], 2);
    assert_eq!(q["paired_samples"], 2);
    assert_eq!(q["vmaf_mean"], 85.0);
    assert_eq!(q["reference_vmaf_mean"], 90.0);
    assert_eq!(q["vmaf_deficit"], 5.0);
    let p = &board["extras"]["0xaaa"]["FRA"]["payments"];
    assert_eq!(p["tickets"], 4);
    assert_eq!(p["winning_tickets"], 1);
    assert_eq!(p["pixels"], 4_000_000);
    assert_eq!(p["expected_value_wei"], 1e15);
    assert_eq!(p["effective_price_wei_per_pixel"], 2.5e8);
    assert_eq!(p["quoted_price_wei_per_pixel"], 250.0);
    assert_eq!(p["redemptions"], 1);
    assert_eq!(p["redeemed_wei"], 1e15);
    assert_eq!(p["redeemed_wei_per_pixel"], 2.5e8);
    assert!(
        board["extras"].get("0xbbb").is_none(),
        "0xbbb had no quality or payment data: {}",
        board["extras"]
    );
    // The HTML leaderboard shows them beside the public scores, and 0xbbb's failure reason.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("<th>VMAF deficit vs reference</th>"));
    assert!(html.contains("<td>85</td><td>5</td><td>250000000</td><td class=\"l\">–</td>"));
    assert!(html.contains("timeout ×1: segment did not arrive within 8 s"));

    // For the documented manual screenshot check (README.md): render the same run elsewhere.
    if let Some(sample) = std::env::var_os("LPT_REPORT_SAMPLE_DIR") {
        let sample = Path::new(&sample);
        std::fs::create_dir_all(sample).unwrap();
        std::fs::copy(dir.path().join(JOURNAL_FILE), sample.join(JOURNAL_FILE)).unwrap();
        std::fs::write(
            sample.join(SUMMARY_FILE),
            serde_json::to_vec(&base_summary("smoke")).unwrap(),
        )
        .unwrap();
        finalize_run(sample, &ReportOptions::default()).unwrap();
    }

    // Re-rendering is idempotent on the base keys.
    finalize_run(dir.path(), &ReportOptions::default()).unwrap();
    let again = read_json(&dir.path().join(SUMMARY_FILE));
    assert_eq!(again["thresholds"], summary["thresholds"]);
    assert_eq!(again["report"]["summary_source"], "tester");
}

#[test]
fn torn_last_line_and_unknown_versions_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let good: Vec<Record> = fixed_records().into_iter().take(5).collect();
    write_journal(dir.path(), &good);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(JOURNAL_FILE))
        .unwrap();
    writeln!(
        f,
        r#"{{"type":"segment","v":99,"t_ms":1,"future":"shape"}}"#
    )
    .unwrap();
    writeln!(f, r#"{{"type":"stall","v":1,"t_ms":1}}"#).unwrap();
    writeln!(f, "not json at all").unwrap();
    write!(f, r#"{{"type":"segment","v":1,"t_ms":17953093"#).unwrap();
    drop(f);

    let out = finalize_run(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(out.records, 5);
    let j = &out.journal;
    assert!(j.truncated_last_line);
    assert_eq!(j.malformed_lines, 1);
    assert_eq!(j.unknown_versions.get("segment v99"), Some(&1));
    assert_eq!(j.unknown_types.get("stall"), Some(&1));
    assert_eq!(j.lines, 9);
    let missing = out.missing.join("\n");
    assert!(missing.contains("summary.json is missing"), "{missing}");
    assert!(missing.contains("last line is truncated"), "{missing}");
    assert!(missing.contains("segment v99"), "{missing}");
    assert!(missing.contains("unknown type \"stall\""), "{missing}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("last line is truncated"));
    assert!(html.contains("UNKNOWN — summary.json missing"));
    let summary = read_json(&dir.path().join(SUMMARY_FILE));
    assert_valid_summary(&summary);
    assert_eq!(summary["report"]["summary_source"], "journal");
    assert_eq!(summary["report"]["journal"]["truncated_last_line"], true);
    assert_eq!(out.verdict.passed, None);

    // A second `lpt report` still knows the summary came from the journal.
    let again = finalize_run(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(again.summary_source, SummarySource::Journal);
}

#[test]
fn empty_run_directory_gives_a_report_that_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = finalize_run(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(out.records, 0);
    let missing = out.missing.join("\n");
    assert!(missing.contains("summary.json is missing"), "{missing}");
    assert!(missing.contains("records.jsonl is missing"), "{missing}");
    for f in [
        "report.html",
        "junit.xml",
        "summary.md",
        "summary.json",
        "records.parquet",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} not written");
    }
    assert!(!dir.path().join("leaderboard.json").exists());
    assert_valid_summary(&read_json(&dir.path().join(SUMMARY_FILE)));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("records.jsonl is missing"));
    assert!(
        html.contains("Latency CDF per rendition") || html.contains("latency CDF per rendition")
    );
    assert!(html.contains("no segment record carries a latency"));
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    assert_eq!(doc.root_element().attribute("errors"), Some("2"));
    let df = ParquetReader::new(std::fs::File::open(dir.path().join("records.parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(df.height(), 0);

    // A journal that exists but is empty is named as such.
    std::fs::write(dir.path().join(JOURNAL_FILE), "").unwrap();
    let out = finalize_run(dir.path(), &ReportOptions::default()).unwrap();
    assert!(
        out.missing.iter().any(|m| m.contains("no usable records")),
        "{:?}",
        out.missing
    );
}

#[test]
fn finalize_on_a_missing_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = finalize_run(&dir.path().join("nope"), &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, ReportError::NotARunDirectory { .. }), "{err}");
    assert!(err.to_string().contains("nope"));
}

#[test]
fn leaderboard_extras_attribute_unlabelled_samples_and_tickets_through_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let unlabelled = |stream: &str, seq: u64, origin: &str, vmaf: f64| -> Record {
        QualitySample {
            stream: stream.into(),
            orchestrator: None,
            region: None,
            ..quality(R240, origin, seq, vmaf)
        }
        .into()
    };
    let ticket = |ev_wei: f64, pixels: Option<u64>, price: f64| -> Record {
        TicketRecord {
            t_ms: T0,
            workload: None,
            stream: None,
            orchestrator: "0xccc".into(),
            region: None,
            face_value_wei: ev_wei * 10.0,
            win_prob: 0.1,
            ev_wei,
            won: false,
            pixels,
            price_wei_per_pixel: Some(price),
            recipient_rand_hash: None,
            sender_nonce: None,
        }
        .into()
    };
    let records: Vec<Record> = vec![
        // 0xccc's segments carry no region: the run's default region (LOCAL) applies.
        seg("s1", R240, 1, Some(1000.0), true, "0xccc", None).into(),
        seg("s1", R240, 2, Some(1000.0), true, "0xccc", None).into(),
        seg("s2", R240, 1, Some(1000.0), true, "0xddd", Some("FRA")).into(),
        // The stream probe's samples name no orchestrator; the reference was scored for seq 1 only.
        unlabelled("s1", 1, "network", 70.0),
        unlabelled("s1", 2, "network", 76.0),
        unlabelled("s1", 1, "reference", 80.0),
        unlabelled("s2", 1, "network", 50.0),
        // No segment names an orchestrator for this one: it cannot be attributed.
        unlabelled("s9", 1, "network", 10.0),
        // 4e8 wei for 2e6 pixels = 200 wei/pixel; the ticket without pixels only adds to the EV.
        ticket(4e8, Some(2_000_000), 150.0),
        ticket(1e9, None, 250.0),
    ];
    write_journal(dir.path(), &records);
    let options = ReportOptions {
        png: false,
        default_region: Some("LOCAL".into()),
        ..ReportOptions::default()
    };
    finalize_run(dir.path(), &options).unwrap();
    let board = read_leaderboard(dir.path());
    let extras = &board["extras"];
    let q = &extras["0xccc"]["LOCAL"]["quality"];
    assert_eq!(q["samples"], 2, "{extras}");
    assert_eq!(q["vmaf_mean"], 73.0);
    assert_eq!(q["paired_samples"], 1);
    assert_eq!(q["reference_vmaf_mean"], 80.0);
    assert_eq!(q["vmaf_deficit"], 10.0);
    let p = &extras["0xccc"]["LOCAL"]["payments"];
    assert_eq!(p["tickets"], 2);
    assert_eq!(p["expected_value_wei"], 1.4e9);
    assert_eq!(p["pixels"], 2_000_000);
    assert_eq!(p["effective_price_wei_per_pixel"], 200.0);
    assert_eq!(p["quoted_price_wei_per_pixel"], 200.0);
    assert_eq!(p["redemptions"], 0);
    assert!(p.get("redeemed_wei_per_pixel").is_none(), "{p}");
    let d = &extras["0xddd"]["FRA"];
    assert_eq!(d["quality"]["samples"], 1);
    assert_eq!(d["quality"]["vmaf_mean"], 50.0);
    assert_eq!(d["quality"]["paired_samples"], 0);
    assert!(d["quality"].get("vmaf_deficit").is_none(), "{d}");
    assert!(d.get("payments").is_none(), "{d}");
    assert_eq!(
        extras.as_object().unwrap().len(),
        2,
        "only recorded orchestrators: {extras}"
    );
}

/// A run of `n` segments whose latencies spread over 1.5–2.5 s, scaled by `factor`.
fn latency_run(dir: &Path, scenario: &str, factor: f64, n: u64) {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let spread = ((i * 7919) % 1000) as f64;
            seg(
                "s1",
                R240,
                i,
                Some((1500.0 + spread) * factor),
                true,
                "0xaaa",
                Some("FRA"),
            )
            .into()
        })
        .collect();
    write_journal(dir, &records);
    std::fs::write(
        dir.join(SUMMARY_FILE),
        serde_json::to_vec(&base_summary(scenario)).unwrap(),
    )
    .unwrap();
}

/// The comparison's row for `metric`.
fn change<'a>(c: &'a Comparison, metric: &str) -> &'a MetricChange {
    c.metrics
        .iter()
        .find(|m| m.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} in the comparison"))
}

#[test]
fn compare_flags_a_10_percent_latency_regression_and_not_a_half_percent_change() {
    let base = tempfile::tempdir().unwrap();
    let slower = tempfile::tempdir().unwrap();
    let same = tempfile::tempdir().unwrap();
    latency_run(base.path(), "smoke", 1.0, 3000);
    latency_run(slower.path(), "smoke", 1.10, 3000);
    latency_run(same.path(), "smoke", 1.005, 3000);

    let c = compare(base.path(), slower.path(), &CompareOptions::default()).unwrap();
    assert!(c.comparable);
    assert!(c.has_regression());
    let mean = change(&c, "latency_mean");
    assert_eq!(mean.verdict, ChangeVerdict::Regression);
    assert!((mean.change.unwrap() - 0.10).abs() < 1e-9);
    assert!(
        mean.ci_low.unwrap() > 0.02 && mean.ci_high.unwrap() < 0.2,
        "{mean:?}"
    );
    let success = change(&c, "segment_success_rate");
    assert_eq!(success.verdict, ChangeVerdict::WithinNoise);
    let written: Comparison =
        serde_json::from_slice(&std::fs::read(slower.path().join("compare.json")).unwrap())
            .unwrap();
    // serde_json may round the last bit of a float, so compare what matters.
    assert_eq!(written.metrics.len(), c.metrics.len());
    for (w, m) in written.metrics.iter().zip(&c.metrics) {
        assert_eq!((&w.metric, w.verdict), (&m.metric, m.verdict));
    }
    assert_eq!(written.regressions, c.regressions);
    assert!(c.render_table().contains("Regression"));

    let c = compare(base.path(), same.path(), &CompareOptions::default()).unwrap();
    assert!(!c.has_regression(), "{}", c.render_table());
    let mean = change(&c, "latency_mean");
    assert_eq!(mean.verdict, ChangeVerdict::WithinNoise, "{mean:?}");
    let p95 = change(&c, &format!("latency_p95{{rendition={R240}}}"));
    assert_ne!(p95.verdict, ChangeVerdict::Regression);
}

/// A `summary.json` as runs wrote it before the summary had one writer: the tester's file,
/// re-read and extended with `report` and `breakdowns` by the reports step.
const V1_EXTENDED_SUMMARY: &str = include_str!("fixtures/summary-v1-extended.json");

#[test]
fn runs_written_with_the_v1_extended_summary_still_compare_and_render_without_a_rewrite() {
    let old = serde_json::from_str::<Value>(V1_EXTENDED_SUMMARY).unwrap();
    assert_valid_summary(&old);
    let base = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    latency_run(base.path(), "smoke", 1.0, 200);
    latency_run(new.path(), "smoke", 1.2, 200);
    std::fs::write(base.path().join(SUMMARY_FILE), V1_EXTENDED_SUMMARY).unwrap();

    let c = compare(base.path(), new.path(), &CompareOptions::default()).unwrap();
    assert!(c.comparable, "{:?}", c.reason);
    assert_eq!(c.base_scenario, "smoke");
    assert!(
        !c.warnings.iter().any(|w| w.contains("unknown")),
        "{:?}",
        c.warnings
    );
    let mean = change(&c, "latency_mean");
    assert_eq!(mean.verdict, ChangeVerdict::Regression);

    let out = finalize_run(base.path(), &ReportOptions::default()).unwrap();
    assert_eq!(out.summary_source, SummarySource::Tester);
    assert_eq!(
        std::fs::read_to_string(base.path().join(SUMMARY_FILE)).unwrap(),
        V1_EXTENDED_SUMMARY,
        "lpt report reads summary.json and never rewrites it"
    );
}

#[test]
fn compare_explains_why_runs_of_different_scenarios_cannot_be_compared() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    latency_run(a.path(), "smoke", 1.0, 50);
    latency_run(b.path(), "soak", 1.5, 50);
    let c = compare(a.path(), b.path(), &CompareOptions::default()).unwrap();
    assert!(!c.comparable);
    assert!(!c.has_regression());
    assert!(c.metrics.is_empty());
    let reason = c.reason.unwrap();
    assert!(
        reason.contains("\"smoke\"") && reason.contains("\"soak\""),
        "{reason}"
    );
    let err = compare(
        a.path(),
        b.path(),
        &CompareOptions {
            noise: -1.0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("noise"), "{err}");
}

const KILL: &str = "kill:orchestrator-0@20s";
const OUTAGE: &str = "chain_outage:chain@40s";

/// The event started `at_s` after `T0`, over at `end_s`, carried out unless `failure` says why not.
fn chaos_event(
    event: &str,
    kind: &str,
    target: &str,
    at_s: i64,
    end_s: Option<i64>,
    failure: Option<&str>,
) -> ChaosRecord {
    ChaosRecord {
        t_ms: T0 + at_s * 1000,
        event: event.into(),
        kind: kind.into(),
        target: target.into(),
        end_ms: end_s.map(|s| T0 + s * 1000),
        ok: failure.is_none(),
        message: Some(failure.unwrap_or("done").to_string()),
    }
}

/// What the event at `at_s` cost stream `stream`: failover, segments lost, stall, recovered.
fn stream_cost(
    event: &str,
    at_s: i64,
    stream: &str,
    (failover_ms, lost, stall_ms, recovered): (f64, u64, f64, bool),
) -> RecoveryRecord {
    RecoveryRecord {
        t_ms: T0 + at_s * 1000,
        event: event.into(),
        workload: Some("steady".into()),
        stream: Some(stream.into()),
        orchestrator: None,
        failover_time_ms: Some(failover_ms),
        segments_lost: Some(lost),
        stall_time_ms: Some(stall_ms),
        recovered: Some(recovered),
        redemptions_lost: None,
        winners: None,
        redemption_delay_ms: None,
    }
}

/// What the event at `at_s` cost orchestrator `orchestrator`'s payments: winners, lost, delay.
fn payment_cost(
    event: &str,
    at_s: i64,
    orchestrator: &str,
    (winners, lost, delay_ms): (u64, u64, Option<f64>),
) -> RecoveryRecord {
    RecoveryRecord {
        t_ms: T0 + at_s * 1000,
        event: event.into(),
        workload: None,
        stream: None,
        orchestrator: Some(orchestrator.into()),
        failover_time_ms: None,
        segments_lost: None,
        stall_time_ms: None,
        recovered: None,
        redemptions_lost: Some(lost),
        winners: Some(winners),
        redemption_delay_ms: delay_ms,
    }
}

/// 60 s of two streams' segments, every 2 s from `T0`.
fn steady_segments() -> Vec<Record> {
    (0..30)
        .flat_map(|i| {
            let latency = 1500.0 + (i % 5) as f64 * 100.0;
            [
                seg("s1", R240, i, Some(latency), true, "0xaaa", Some("FRA")).into(),
                seg(
                    "s2",
                    R240,
                    i,
                    Some(latency + 300.0),
                    true,
                    "0xbbb",
                    Some("FRA"),
                )
                .into(),
            ]
        })
        .collect()
}

/// A kill at 20 s (to the end of the run) that cost both streams and two orchestrators'
/// payments, and a chain outage from 40 s to 50 s that the run could not carry out.
fn chaos_records() -> Vec<Record> {
    vec![
        chaos_event(KILL, "kill", "orchestrator-0", 20, None, None).into(),
        chaos_event(
            OUTAGE,
            "chain_outage",
            "chain",
            40,
            Some(50),
            Some("the chain RPC proxy is not running"),
        )
        .into(),
        stream_cost(KILL, 20, "s1", (1200.0, 1, 800.0, true)).into(),
        stream_cost(KILL, 20, "s2", (3500.0, 2, 2500.0, false)).into(),
        payment_cost(KILL, 20, "0xaaa", (3, 1, Some(31_000.0))).into(),
        payment_cost(KILL, 20, "0xbbb", (2, 0, Some(12_000.0))).into(),
        stream_cost(OUTAGE, 40, "s1", (0.0, 0, 0.0, true)).into(),
        payment_cost(OUTAGE, 40, "0xaaa", (4, 2, None)).into(),
    ]
}

#[test]
fn chaos_events_get_their_recovery_figures_by_label_and_start_time() {
    let mut records = steady_segments();
    records.extend(chaos_records());
    // The kill's label again, at a start no chaos record has: not the kill's.
    records.push(stream_cost(KILL, 56, "s1", (9000.0, 4, 7000.0, false)).into());
    let frames = RecordFrames::from_records(&records).unwrap();
    let a = aggregate(&frames, AggregateOptions::default()).unwrap();

    assert_eq!(a.chaos.len(), 2);
    let kill = &a.chaos[0];
    assert_eq!(
        (
            kill.event.as_str(),
            kill.kind.as_str(),
            kill.target.as_str()
        ),
        (KILL, "kill", "orchestrator-0")
    );
    assert_eq!((kill.t_ms, kill.start_s), (T0 + 20_000, 20.0));
    assert_eq!((kill.end_ms, kill.duration_s), (None, None));
    assert!(kill.ok);
    assert_eq!(kill.streams_hit, 2);
    assert_eq!(kill.failover_time_ms_max, Some(3500.0));
    assert_eq!(kill.segments_lost, 3);
    assert_eq!(kill.stall_time_ms_max, Some(2500.0));
    assert_eq!(kill.streams_not_recovered, 1);
    assert_eq!((kill.winners, kill.redemptions_lost), (5, 1));
    assert_eq!(kill.redemption_delay_ms_max, Some(31_000.0));

    let outage = &a.chaos[1];
    assert_eq!(outage.event, OUTAGE);
    assert_eq!((outage.start_s, outage.end_s()), (40.0, Some(50.0)));
    assert_eq!(outage.duration_s, Some(10.0));
    assert!(!outage.ok);
    assert_eq!(
        outage.message.as_deref(),
        Some("the chain RPC proxy is not running")
    );
    assert_eq!(outage.streams_hit, 1);
    assert_eq!(outage.failover_time_ms_max, Some(0.0));
    assert_eq!((outage.segments_lost, outage.streams_not_recovered), (0, 0));
    assert_eq!((outage.winners, outage.redemptions_lost), (4, 2));
    assert_eq!(
        outage.redemption_delay_ms_max, None,
        "no winner was redeemed"
    );

    assert_eq!(a.problems.len(), 1, "{:?}", a.problems);
    assert!(
        a.problems[0].contains(KILL) && a.problems[0].contains("no chaos record"),
        "{:?}",
        a.problems
    );
}

#[test]
fn chaos_events_are_listed_in_every_report_and_marked_on_the_time_plots() {
    let (quiet, quiet_out) = finished_run(&steady_segments());
    assert!(quiet_out.aggregates.chaos.is_empty());

    let mut records = steady_segments();
    records.extend(chaos_records());
    let (dir, out) = finished_run(&records);
    assert!(out.missing.is_empty(), "{:?}", out.missing);

    let summary = read_json(&dir.path().join(SUMMARY_FILE));
    assert_valid_summary(&summary);
    let chaos = summary["breakdowns"]["chaos"].as_array().unwrap();
    assert_eq!(chaos.len(), 2);
    assert_eq!(
        chaos[0],
        json!({
            "event": KILL, "kind": "kill", "target": "orchestrator-0",
            "t_ms": T0 + 20_000, "start_s": 20.0, "end_ms": null, "duration_s": null,
            "ok": true, "message": "done",
            "streams_hit": 2, "failover_time_ms_max": 3500.0, "segments_lost": 3,
            "stall_time_ms_max": 2500.0, "streams_not_recovered": 1,
            "winners": 5, "redemptions_lost": 1, "redemption_delay_ms_max": 31000.0
        })
    );
    assert_eq!(chaos[1]["event"], OUTAGE);
    assert_eq!(chaos[1]["end_ms"], T0 + 50_000);
    assert_eq!(chaos[1]["ok"], false);
    assert_eq!(chaos[1]["redemptions_lost"], 2);
    let quiet_summary = read_json(&quiet.path().join(SUMMARY_FILE));
    assert_valid_summary(&quiet_summary);
    assert_eq!(quiet_summary["breakdowns"]["chaos"], json!([]));

    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let section = html
        .split_once("<h2 id=\"chaos\">Chaos events</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .unwrap_or_else(|| panic!("no chaos section in the HTML"));
    assert!(section.contains(&format!("<td class=\"l\">{KILL}</td>")));
    assert!(section.contains(&format!("<td class=\"l\">{OUTAGE}</td>")));
    assert!(section.contains("to the end of the run"));
    assert!(section.contains("<span class=\"no\">the chain RPC proxy is not running</span>"));
    // The kill's figures: 2 streams, 3.5 s, 3 lost, 2.5 s, 1 not recovered, 5, 1, 31 s.
    assert!(
        section.contains(
            "<td>2</td><td>3.500</td><td>3</td><td>2.500</td><td>1</td><td>5</td><td>1</td><td>31</td>"
        ),
        "{section}"
    );

    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("## Chaos events"), "{md}");
    assert!(
        md.contains(&format!(
            "| `{KILL}` | kill | orchestrator-0 | 20 | to the end of the run | ok | 2 | 3.500 | 3 | 2.500 | 1 | 5 | 1 | 31 |"
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| `{OUTAGE}` | chain_outage | chain | 40 | 10 | **no**: the chain RPC proxy is not running | 1 | 0 | 0 | 0 | 0 | 4 | 2 | – |"
        )),
        "{md}"
    );

    let quiet_html = std::fs::read_to_string(quiet.path().join("report.html")).unwrap();
    let quiet_md = std::fs::read_to_string(quiet.path().join("summary.md")).unwrap();
    assert!(
        !quiet_html.contains("Chaos events"),
        "no events, no section"
    );
    assert!(!quiet_md.contains("Chaos events"), "no events, no section");

    // The time plots carry each label, and differ from the same run's plots without events.
    for stem in ["latency_over_time", "success_over_time"] {
        let svg = std::fs::read_to_string(dir.path().join(format!("plots/{stem}.svg"))).unwrap();
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{stem}.svg: {e}"));
        for label in [KILL, OUTAGE] {
            assert!(svg.contains(label), "{stem}.svg has no mark for {label}");
        }
        let quiet_svg =
            std::fs::read_to_string(quiet.path().join(format!("plots/{stem}.svg"))).unwrap();
        assert!(!quiet_svg.contains(KILL));
        let png = std::fs::read(dir.path().join(format!("plots/{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        let quiet_png = std::fs::read(quiet.path().join(format!("plots/{stem}.png"))).unwrap();
        assert_ne!(png, quiet_png, "{stem}.png does not show the events");
    }
}
