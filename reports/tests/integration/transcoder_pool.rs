//! The Transcoder pool section: `pool` records (each remote transcoder of an orchestrator's pool,
//! reconciled by the pool probe at the end of a run) shown one row per orchestrator × transcoder
//! in `summary.json`, `report.html` and `summary.md`, a faulty transcoder's row and values
//! marked, and only when the run had pool records.

use observation::record::*;
use observation::summary::SUMMARY_FILE;
use reports::aggregate::{AggregateOptions, aggregate};
use reports::frames::RecordFrames;
use serde_json::{Value, json};

use crate::common::{T0, finished_smoke_run};

/// A `pool` record of `transcoder` behind `orchestrator`, reconciled 30 s into the run, with
/// nothing counted yet: tests fill in the fields they need (`..pool(…)`).
fn pool(orchestrator: &str, transcoder: &str) -> PoolRecord {
    PoolRecord {
        t_ms: T0 + 30_000,
        orchestrator: orchestrator.into(),
        transcoder: transcoder.into(),
        segments: 0,
        refused: 0,
        checked: 0,
        lost: 0,
        matched: 0,
        probe_pixels: 0,
        counted_pixels: 0,
        claimed_pixels: 0,
        accounting_error: None,
        claim_error: None,
        payout_share: None,
        payout_wei: None,
        realtime_ratio: None,
        check_ms: None,
        cheater_detected_after: None,
        bad_segments_delivered: 0,
    }
}

/// What the probe decoded from the honest transcoder's 90 renditions, 2 764 800 pixels each.
const HONEST_PIXELS: u64 = 248_832_000;
/// What the probe decoded from the inflating transcoder's 30 renditions.
const INFLATER_PIXELS: u64 = 82_944_000;

/// An honest transcoder: its ledger, its claim and the probe agree, nothing refused or lost.
fn honest() -> PoolRecord {
    PoolRecord {
        segments: 30,
        checked: 3,
        matched: 90,
        probe_pixels: HONEST_PIXELS,
        counted_pixels: HONEST_PIXELS,
        claimed_pixels: HONEST_PIXELS,
        accounting_error: Some(0.0),
        claim_error: Some(0.0),
        payout_share: Some(0.75),
        payout_wei: Some("750000000000000".into()),
        realtime_ratio: Some(4.5),
        check_ms: Some(120.0),
        ..pool("orchestrator-0", "transcoder-0-0")
    }
}

/// A transcoder that claims three times the pixels it made: the orchestrator pays for the real
/// ones, its third answer is the first a check refuses, and it lost one segment and delivered
/// one bad rendition.
fn inflater() -> PoolRecord {
    PoolRecord {
        segments: 10,
        refused: 2,
        checked: 4,
        lost: 1,
        matched: 30,
        probe_pixels: INFLATER_PIXELS,
        counted_pixels: INFLATER_PIXELS,
        claimed_pixels: 3 * INFLATER_PIXELS,
        accounting_error: Some(0.0),
        claim_error: Some(2.0),
        payout_share: Some(0.25),
        payout_wei: Some("250000000000000".into()),
        realtime_ratio: Some(3.0),
        check_ms: Some(150.0),
        cheater_detected_after: Some(3),
        bad_segments_delivered: 1,
        ..pool("orchestrator-0", "transcoder-0-1")
    }
}

/// A transcoder of another orchestrator that went away with the two segments it was given:
/// nothing accepted, nothing to compare.
fn vanished() -> PoolRecord {
    PoolRecord {
        lost: 2,
        ..pool("orchestrator-1", "transcoder-1-0")
    }
}

/// The pool records in journal order (not the report's).
fn pool_records() -> Vec<Record> {
    vec![vanished().into(), inflater().into(), honest().into()]
}

#[test]
fn the_pool_is_one_row_per_orchestrator_and_transcoder_in_their_order() {
    let frames = RecordFrames::from_records(&pool_records()).unwrap();
    assert_eq!(frames.pool.height(), 3);
    let a = aggregate(&frames, AggregateOptions::default()).unwrap();
    let pairs: Vec<(&str, &str)> = a
        .pool
        .iter()
        .map(|r| (r.orchestrator.as_str(), r.transcoder.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("orchestrator-0", "transcoder-0-0"),
            ("orchestrator-0", "transcoder-0-1"),
            ("orchestrator-1", "transcoder-1-0"),
        ]
    );
    let (h, i, v) = (&a.pool[0], &a.pool[1], &a.pool[2]);
    assert_eq!(
        (h.segments, h.refused, h.lost, h.checked, h.matched),
        (30, 0, 0, 3, 90)
    );
    assert_eq!(h.segment_share, Some(0.75));
    assert_eq!(
        (h.probe_pixels, h.counted_pixels, h.claimed_pixels),
        (HONEST_PIXELS, HONEST_PIXELS, HONEST_PIXELS)
    );
    assert_eq!(h.payout_wei.as_deref(), Some("750000000000000"));
    assert!(!h.is_faulty(), "the honest transcoder is not marked");
    assert_eq!(i.segment_share, Some(0.25));
    assert_eq!((i.claim_error, i.accounting_error), (Some(2.0), Some(0.0)));
    assert_eq!(i.claimed_pixels, 3 * INFLATER_PIXELS);
    assert_eq!(
        (i.cheater_detected_after, i.bad_segments_delivered),
        (Some(3), 1)
    );
    assert!(i.claim_faulty() && !i.accounting_faulty() && i.is_faulty());
    assert_eq!((v.segments, v.lost, v.segment_share), (0, 2, None));
    assert_eq!(
        (v.accounting_error, v.claim_error, v.payout_wei.as_deref()),
        (None, None, None)
    );
    assert!(v.is_faulty(), "a lost segment is a fault");

    assert!(
        aggregate(&RecordFrames::empty().unwrap(), AggregateOptions::default())
            .unwrap()
            .pool
            .is_empty()
    );
}

#[test]
fn a_transcoder_reconciled_twice_keeps_its_latest_record() {
    let earlier = PoolRecord {
        t_ms: T0 + 10_000,
        segments: 5,
        ..honest()
    };
    let records: Vec<Record> = vec![honest().into(), earlier.into(), inflater().into()];
    let a = aggregate(
        &RecordFrames::from_records(&records).unwrap(),
        AggregateOptions::default(),
    )
    .unwrap();
    assert_eq!(a.pool.len(), 2);
    assert_eq!((a.pool[0].t_ms, a.pool[0].segments), (T0 + 30_000, 30));
    assert_eq!(a.pool[0].segment_share, Some(0.75));
}

/// The Transcoder pool section of `html`, up to the next heading.
fn html_section(html: &str) -> &str {
    html.split_once("<h2 id=\"transcoder-pool\">Transcoder pool</h2>")
        .map(|(_, rest)| rest.split("<h2").next().unwrap())
        .unwrap_or_else(|| panic!("no Transcoder pool section in the HTML"))
}

const INTRO: &str = "3 pool transcoder(s) behind 2 orchestrator(s), reconciled at the end of the run: the pixels \
     of the renditions the probe pulled are shown as the probe decoded them (probe), as the \
     orchestrator's ledger counted and paid them (paid) and as the transcoder claimed them \
     (claimed), so the accounting error is |paid − probe| ÷ probe and the claim error \
     (claimed − probe) ÷ probe, both 0 when exact.";

#[test]
fn the_pool_is_reported_in_every_artifact_only_when_the_run_had_one() {
    let (quiet, _) = finished_smoke_run([]);

    let (dir, out) = finished_smoke_run(pool_records());
    assert_eq!(out.aggregates.pool.len(), 3);

    // summary.json: valid, every row with every field; an empty list in a run without a pool.
    let read = |path: &std::path::Path| -> Value {
        let summary: Value =
            serde_json::from_slice(&std::fs::read(path.join(SUMMARY_FILE)).unwrap()).unwrap();
        testkit::schema::assert_valid(&summary, observation::summary::SCHEMA_PATH);
        summary
    };
    let summary = read(dir.path());
    assert_eq!(
        summary["breakdowns"]["pool"],
        json!([
            {
                "orchestrator": "orchestrator-0",
                "transcoder": "transcoder-0-0",
                "t_ms": T0 + 30_000,
                "segments": 30,
                "refused": 0,
                "checked": 3,
                "lost": 0,
                "segment_share": 0.75,
                "matched": 90,
                "probe_pixels": HONEST_PIXELS,
                "counted_pixels": HONEST_PIXELS,
                "claimed_pixels": HONEST_PIXELS,
                "accounting_error": 0.0,
                "claim_error": 0.0,
                "payout_share": 0.75,
                "payout_wei": "750000000000000",
                "realtime_ratio": 4.5,
                "check_ms": 120.0,
                "cheater_detected_after": null,
                "bad_segments_delivered": 0
            },
            {
                "orchestrator": "orchestrator-0",
                "transcoder": "transcoder-0-1",
                "t_ms": T0 + 30_000,
                "segments": 10,
                "refused": 2,
                "checked": 4,
                "lost": 1,
                "segment_share": 0.25,
                "matched": 30,
                "probe_pixels": INFLATER_PIXELS,
                "counted_pixels": INFLATER_PIXELS,
                "claimed_pixels": 3 * INFLATER_PIXELS,
                "accounting_error": 0.0,
                "claim_error": 2.0,
                "payout_share": 0.25,
                "payout_wei": "250000000000000",
                "realtime_ratio": 3.0,
                "check_ms": 150.0,
                "cheater_detected_after": 3,
                "bad_segments_delivered": 1
            },
            {
                "orchestrator": "orchestrator-1",
                "transcoder": "transcoder-1-0",
                "t_ms": T0 + 30_000,
                "segments": 0,
                "refused": 0,
                "checked": 0,
                "lost": 2,
                "segment_share": null,
                "matched": 0,
                "probe_pixels": 0,
                "counted_pixels": 0,
                "claimed_pixels": 0,
                "accounting_error": null,
                "claim_error": null,
                "payout_share": null,
                "payout_wei": null,
                "realtime_ratio": null,
                "check_ms": null,
                "cheater_detected_after": null,
                "bad_segments_delivered": 0
            }
        ])
    );
    assert_eq!(summary["report"]["journal"]["records"]["pool"], 3);
    assert_eq!(read(quiet.path())["breakdowns"]["pool"], json!([]));

    // report.html: before the payments, the intro, one row per transcoder, faults in red.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.find("id=\"transcoder-pool\"").unwrap() < html.find("id=\"payments\"").unwrap());
    let section = html_section(&html);
    let escaped_intro = INTRO.replace('\'', "&#39;");
    assert!(section.contains(&escaped_intro), "{section}");
    let honest_row = "<tr><td class=\"l\">orchestrator-0</td><td class=\"l\">transcoder-0-0</td>\
                      <td>30</td><td>0</td><td>0</td><td>4.500</td><td>75.00 %</td>\
                      <td>248832000</td><td>248832000</td><td>248832000</td><td>0.00 %</td>\
                      <td>0.00 %</td><td>75.00 %</td><td>750000000000000</td><td>3</td>\
                      <td>120</td><td>–</td><td>0</td></tr>";
    assert!(section.contains(honest_row), "{section}");
    let inflater_row = "<tr class=\"bad\"><td class=\"l\">orchestrator-0</td>\
                        <td class=\"l\">transcoder-0-1</td><td>10</td>\
                        <td><span class=\"no\">2</span></td><td><span class=\"no\">1</span></td>\
                        <td>3</td><td>25.00 %</td><td>82944000</td><td>82944000</td>\
                        <td><span class=\"no\">248832000</span></td><td>0.00 %</td>\
                        <td><span class=\"no\">200.00 %</span></td><td>25.00 %</td>\
                        <td>250000000000000</td><td>4</td><td>150</td>\
                        <td><span class=\"no\">3</span></td><td><span class=\"no\">1</span></td></tr>";
    assert!(section.contains(inflater_row), "{section}");
    let vanished_row = "<tr class=\"bad\"><td class=\"l\">orchestrator-1</td>\
                        <td class=\"l\">transcoder-1-0</td><td>0</td><td>0</td>\
                        <td><span class=\"no\">2</span></td><td>–</td><td>–</td><td>0</td>\
                        <td>0</td><td>0</td><td>–</td><td>–</td><td>–</td><td>–</td><td>0</td>\
                        <td>–</td><td>–</td><td>0</td></tr>";
    assert!(section.contains(vanished_row), "{section}");
    assert!(
        section.find(honest_row).unwrap() < section.find(inflater_row).unwrap()
            && section.find(inflater_row).unwrap() < section.find(vanished_row).unwrap(),
        "rows by orchestrator, then transcoder"
    );

    // summary.md: the same table, faults in bold.
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        md.contains(&format!("## Transcoder pool\n\n{INTRO}\n")),
        "{md}"
    );
    assert!(
        md.contains(
            "| Orchestrator | Transcoder | Accepted | Refused | Lost | Real-time ratio | Share of segments | Pixels (probe) | Pixels (paid) | Pixels (claimed) | Accounting error | Claim error | Payout share | Payout (wei) | Checks | Mean check (ms) | Detected after | Bad delivered |"
        ),
        "{md}"
    );
    for row in [
        "| orchestrator-0 | transcoder-0-0 | 30 | 0 | 0 | 4.500 | 75.00 % | 248832000 | 248832000 | 248832000 | 0.00 % | 0.00 % | 75.00 % | 750000000000000 | 3 | 120 | – | 0 |",
        "| orchestrator-0 | transcoder-0-1 | 10 | **2** | **1** | 3 | 25.00 % | 82944000 | 82944000 | **248832000** | 0.00 % | **200.00 %** | 25.00 % | 250000000000000 | 4 | 150 | **3** | **1** |",
        "| orchestrator-1 | transcoder-1-0 | 0 | 0 | **2** | – | – | 0 | 0 | 0 | – | – | – | – | 0 | – | – | 0 |",
    ] {
        assert!(md.contains(row), "{row}\n{md}");
    }

    let quiet_html = std::fs::read_to_string(quiet.path().join("report.html")).unwrap();
    let quiet_md = std::fs::read_to_string(quiet.path().join("summary.md")).unwrap();
    assert!(
        !quiet_html.contains("Transcoder pool"),
        "no pool, no section"
    );
    assert!(!quiet_md.contains("Transcoder pool"), "no pool, no section");
}
