//! Soak-sized report benchmark: journals ≈ 2.6 million segment records (24 h × 50 streams × 3
//! renditions, one source segment every 5 s per stream, plus a check on every 10th segment and
//! every failure, quality samples on every 100th, a ticket every 10th),
//! then times `finalize_run` and reports its wall time and peak resident memory.
//!
//! Goal: under 60 s and under 2 GiB on the project's 2-core machine.
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/lpt-target-reports cargo bench -p reports --bench soak_report`
//! Optional: `SOAK_STREAMS=5` shrinks the run for a quick look; `SOAK_KEEP=1` keeps the run dir.

use std::time::Instant;

use observation::record::*;
use reports::*;

const RENDITIONS: [&str; 3] = ["P240p30fps16x9", "P360p30fps16x9", "P720p30fps16x9"];
const T0: i64 = 1_795_309_323_000;

/// Peak resident set size of this process (kB), from /proc.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak so the figure covers `finalize_run` only (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() -> Result<(), ReportError> {
    let streams: u64 = std::env::var("SOAK_STREAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let segment_s = 5u64;
    let segments_per_stream = 24 * 3600 / segment_s;
    let dir = std::env::temp_dir().join(format!("lpt-soak-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io {
        path: dir.clone(),
        source,
    })?;

    let started = Instant::now();
    let journal = JournalWriter::in_run_dir(&dir)?;
    let mut rng = Rng(42);
    let mut segment_records = 0u64;
    for seq in 0..segments_per_stream {
        for s in 0..streams {
            let stream = format!("soak-{s:02}");
            let orchestrator = format!("0x{:040x}", s % 5 + 1);
            let t_ms = T0 + (seq * segment_s * 1000) as i64 + (s * 37) as i64;
            for (ri, rendition) in RENDITIONS.iter().enumerate() {
                let ok = rng.next_f64() > 0.002;
                let latency = 1800.0 + 400.0 * ri as f64 + 1500.0 * rng.next_f64().powi(3);
                journal.append(SegmentRecord {
                    t_ms,
                    workload: "soak".into(),
                    stream: stream.clone(),
                    rendition: (*rendition).into(),
                    seq,
                    orchestrator: Some(orchestrator.clone()),
                    region: Some("FRA".into()),
                    ok,
                    error: (!ok).then(|| "timeout".into()),
                    message: (!ok).then(|| "segment did not arrive within 10 s".into()),
                    duration_s: Some(segment_s as f64),
                    latency_ms: ok.then_some(latency),
                    upload_ms: None,
                    transcode_ms: None,
                    download_ms: ok.then(|| 20.0 + 30.0 * rng.next_f64()),
                    round_trip_ms: None,
                    bytes: ok.then_some(250_000 * (ri as u64 + 1)),
                    bitrate_kbps: ok.then_some(400.0 * (ri as f64 + 1.0)),
                    width: Some([426, 640, 1280][ri]),
                    height: Some([240, 360, 720][ri]),
                })?;
                segment_records += 1;
                if seq % 10 != 0 && ok {
                    continue;
                }
                journal.append(CheckRecord {
                    t_ms,
                    workload: "soak".into(),
                    stream: stream.clone(),
                    rendition: Some((*rendition).into()),
                    seq: Some(seq),
                    check: "duration".into(),
                    ok,
                    message: (!ok).then(|| "missing".into()),
                    observed: Some(segment_s as f64),
                    expected: Some(segment_s as f64),
                })?;
                if seq % 100 == 0 {
                    for origin in ["network", "reference"] {
                        journal.append(QualitySample {
                            t_ms: t_ms + 1000,
                            workload: "soak".into(),
                            stream: stream.clone(),
                            rendition: (*rendition).into(),
                            seq,
                            origin: origin.into(),
                            orchestrator: Some(orchestrator.clone()),
                            region: Some("FRA".into()),
                            vmaf: Some(70.0 + 8.0 * ri as f64 + 10.0 * rng.next_f64()),
                            psnr: Some(35.0 + 5.0 * rng.next_f64()),
                            frames: Some(150),
                        })?;
                    }
                }
            }
            if seq % 10 == 0 {
                journal.append(TicketRecord {
                    t_ms,
                    workload: Some("soak".into()),
                    stream: Some(stream.clone()),
                    orchestrator: orchestrator.clone(),
                    region: Some("FRA".into()),
                    face_value_wei: 1e15,
                    win_prob: 0.01,
                    ev_wei: 1e13,
                    won: rng.next_f64() < 0.01,
                    pixels: Some(1_000_000),
                    price_wei_per_pixel: Some(10.0),
                    recipient_rand_hash: None,
                    sender_nonce: Some(seq as u32),
                })?;
            }
        }
    }
    journal.sync()?;
    let total = journal.records_written();
    drop(journal);
    let journal_bytes = std::fs::metadata(dir.join(JOURNAL_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    let write_s = started.elapsed().as_secs_f64();
    println!(
        "journal: {segment_records} segment records, {total} records in all, {:.0} MiB, written in {write_s:.1} s ({:.0} records/s)",
        journal_bytes as f64 / (1 << 20) as f64,
        total as f64 / write_s
    );

    let reset = reset_peak_rss();
    let rss_before = peak_rss_kb().unwrap_or(0);
    let started = Instant::now();
    let outcome = finalize_run(&dir, &ReportOptions::default())?;
    let finalize_s = started.elapsed().as_secs_f64();
    let peak = peak_rss_kb().unwrap_or(0);
    println!(
        "finalize_run: {finalize_s:.1} s wall, peak RSS {:.0} MiB{} ({} rows to records.parquet, {} artifacts)",
        peak as f64 / 1024.0,
        if reset {
            format!(
                " (reset before finalize; was {:.0} MiB)",
                rss_before as f64 / 1024.0
            )
        } else {
            " (peak of the whole process)".to_string()
        },
        outcome.records,
        outcome.artifacts.len()
    );
    println!(
        "goal: < 60 s and < 2048 MiB → {}",
        if finalize_s < 60.0 && peak < 2 * 1024 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    let started = Instant::now();
    let cmp = compare(
        &dir,
        &dir,
        &CompareOptions {
            output: Some(
                std::env::temp_dir().join(format!("lpt-soak-compare-{}.json", std::process::id())),
            ),
            ..CompareOptions::default()
        },
    )?;
    println!(
        "compare (run against itself): {:.1} s, {} metrics, {} regressions",
        started.elapsed().as_secs_f64(),
        cmp.metrics.len(),
        cmp.regressions
    );
    if std::env::var_os("SOAK_KEEP").is_some() {
        println!("kept {}", dir.display());
    } else {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}
