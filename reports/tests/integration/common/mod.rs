//! Fixtures shared by the reports crate's tests: a fixed record set whose aggregates
//! `run_reports.rs` computes by hand (and whose report draws every plot), the summary a tester
//! hands to `finish_run` for it, a journal written from records, and a finished smoke run.

use std::path::Path;

use observation::record::*;
use reports::{JournalWriter, ReportOptions, ReportOutcome, finish_run};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const T0: i64 = 1_795_309_323_000;

pub fn seg(
    stream: &str,
    rendition: &str,
    seq: u64,
    latency: Option<f64>,
    ok: bool,
    orch: &str,
    region: Option<&str>,
) -> SegmentRecord {
    SegmentRecord {
        t_ms: T0 + seq as i64 * 2000,
        workload: "steady".into(),
        stream: stream.into(),
        rendition: rendition.into(),
        seq,
        orchestrator: Some(orch.into()),
        region: region.map(str::to_string),
        ok,
        error: (!ok).then(|| "timeout".to_string()),
        message: (!ok).then(|| "segment did not arrive within 8 s".to_string()),
        duration_s: Some(2.0),
        latency_ms: latency,
        upload_ms: None,
        transcode_ms: None,
        download_ms: Some(40.0),
        round_trip_ms: None,
        bytes: Some(100_000),
        bitrate_kbps: Some(400.0),
        width: Some(426),
        height: Some(240),
        frames: Some(60),
    }
}

pub fn quality(rendition: &str, origin: &str, seq: u64, vmaf: f64) -> QualitySample {
    QualitySample {
        t_ms: T0 + seq as i64 * 2000 + 500,
        workload: "steady".into(),
        stream: "s1".into(),
        rendition: rendition.into(),
        seq,
        origin: origin.into(),
        orchestrator: Some("0xaaa".into()),
        region: Some("FRA".into()),
        vmaf: Some(vmaf),
        psnr: Some(vmaf / 2.0),
        frames: Some(60),
    }
}

pub fn check(name: &str, seq: u64, ok: bool) -> CheckRecord {
    CheckRecord {
        t_ms: T0 + seq as i64 * 2000,
        workload: "steady".into(),
        stream: "s1".into(),
        rendition: Some("P240p30fps16x9".into()),
        seq: Some(seq),
        check: name.into(),
        ok,
        message: (!ok).then(|| "duration 1.2 s, expected 2 s".to_string()),
        observed: Some(if ok { 2.0 } else { 1.2 }),
        expected: Some(2.0),
    }
}

pub fn bench(sessions: u32, seq: u64, transcode_ms: f64) -> BenchSegmentRecord {
    BenchSegmentRecord {
        t_ms: T0 + seq as i64 * 100,
        sessions,
        session: 0,
        seq,
        encoder: "libx264".into(),
        renditions: 3,
        duration_s: 2.0,
        transcode_ms,
        ok: true,
        error: None,
    }
}

pub const R240: &str = "P240p30fps16x9";
pub const R360: &str = "P360p30fps16x9";

/// The fixed record set whose aggregates `reports.rs` computes by hand.
pub fn fixed_records() -> Vec<Record> {
    let mut r: Vec<Record> = vec![
        // s1 on orchestrator 0xaaa in FRA: all OK.
        seg("s1", R240, 1, Some(1000.0), true, "0xaaa", Some("FRA")).into(),
        seg("s1", R240, 2, Some(2000.0), true, "0xaaa", Some("FRA")).into(),
        seg("s1", R360, 1, Some(1500.0), true, "0xaaa", Some("FRA")).into(),
        seg("s1", R360, 2, Some(2500.0), true, "0xaaa", Some("FRA")).into(),
        // s2 on 0xbbb, region unknown: one failure without latency.
        seg("s2", R240, 1, Some(3000.0), true, "0xbbb", None).into(),
        seg("s2", R240, 2, Some(4000.0), true, "0xbbb", None).into(),
        seg("s2", R360, 1, Some(3500.0), true, "0xbbb", None).into(),
        seg("s2", R360, 2, Some(5500.0), true, "0xbbb", None).into(),
        seg("s2", R360, 3, None, false, "0xbbb", None).into(),
        quality(R240, "network", 1, 80.0).into(),
        quality(R240, "network", 2, 90.0).into(),
        quality(R240, "reference", 1, 85.0).into(),
        quality(R240, "reference", 2, 95.0).into(),
        check("duration", 1, true).into(),
        check("duration", 2, true).into(),
        check("duration", 3, true).into(),
        check("duration", 4, false).into(),
        check("resolution", 1, true).into(),
        check("resolution", 2, true).into(),
    ];
    for i in 0..4 {
        r.push(
            TicketRecord {
                t_ms: T0 + i * 1000,
                workload: Some("steady".into()),
                stream: Some("s1".into()),
                orchestrator: "0xaaa".into(),
                region: Some("FRA".into()),
                face_value_wei: 1e15,
                win_prob: 0.25,
                ev_wei: 2.5e14,
                won: i == 2,
                pixels: Some(1_000_000),
                price_wei_per_pixel: Some(250.0),
                recipient_rand_hash: Some(format!("0x{i:064x}")),
                sender_nonce: Some(i as u32),
            }
            .into(),
        );
    }
    r.push(
        RedemptionRecord {
            t_ms: T0 + 9000,
            orchestrator: "0xaaa".into(),
            region: Some("FRA".into()),
            ok: true,
            face_value_wei: 1e15,
            tx_hash: Some("0xabc".into()),
            gas_used: Some(120_000),
            error: None,
            message: None,
        }
        .into(),
    );
    r.extend([
        bench(1, 1, 1000.0).into(),
        bench(1, 2, 1500.0).into(),
        bench(4, 3, 1800.0).into(),
        bench(4, 4, 2600.0).into(),
    ]);
    r
}

pub fn base_summary(scenario: &str) -> Value {
    json!({
        "schema_version": 1,
        "tool": {"name": "lpt", "version": "0.1.0"},
        "scenario": {
            "name": scenario,
            "path": format!("scenarios/{scenario}.toml"),
            "description": "Synthetic run for the reports tests",
            "source": "[target]\nkind = \"embedded\"\n\n[thresholds]\n\"segment_success\" = [\"rate >= 0.99\"]\n"
        },
        "started_at": "2026-11-22T01:02:03.456Z",
        "ended_at": "2026-11-22T01:02:34.656Z",
        "duration_s": 31.2,
        "outcome": {"exit_code": 99, "status": "thresholds_failed", "message": "1 threshold failed"},
        "environment": {"os": "Debian 12", "arch": "x86_64", "cpu": "test CPU", "cores": 2, "encoder": "libx264"},
        "workloads": [{"name": "smoke", "executor": "constant-streams", "status": "completed", "message": null}],
        "metrics": {
            "latency": {"type": "trend", "unit": "ms",
                "values": {"count": 8, "mean": 2875.0, "p(95)": 4975.0},
                "series": [{"tags": {"rendition": R360}, "values": {"p(95)": 5200.0}}]},
            "segment_success": {"type": "rate", "unit": "none", "values": {"rate": 0.8889, "passes": 8, "fails": 1},
                "series": []}
        },
        "thresholds": [
            {"metric": "segment_success", "expression": "rate >= 0.99", "observed": 0.8889,
             "passed": false, "reason": null, "abort_on_fail": false},
            {"metric": format!("latency{{rendition={R360}}}"), "expression": "p(95) < 6s", "observed": 5200.0,
             "passed": true, "reason": null, "abort_on_fail": false},
            {"metric": "vmaf{rendition=P720p30fps16x9}", "expression": "mean > 60", "observed": null,
             "passed": false, "reason": "no data", "abort_on_fail": false}
        ],
        "x_tester_extra": {"kept": true}
    })
}

pub fn write_journal(dir: &Path, records: &[Record]) {
    let w = JournalWriter::in_run_dir(dir).unwrap();
    for r in records {
        w.append(r.clone()).unwrap();
    }
    w.sync().unwrap();
}

/// A finished smoke run of `records`, in its own directory, with the reports' outcome.
pub fn finished_run(records: &[Record]) -> (TempDir, ReportOutcome) {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), records);
    let out = finish_run(
        dir.path(),
        &base_summary("smoke"),
        &ReportOptions::default(),
    )
    .unwrap();
    (dir, out)
}

/// A finished smoke run of the fixed records and `extra`.
pub fn finished_smoke_run(extra: impl IntoIterator<Item = Record>) -> (TempDir, ReportOutcome) {
    let mut records = fixed_records();
    records.extend(extra);
    finished_run(&records)
}
