//! Outcome records of every segment and the counters behind `/status` and `/metrics`.
//!
//! One [`SourceSegmentRecord`] per source segment says where it went and how long each phase took;
//! every orchestrator tried appears as an [`Attempt`] with its error, so a failover shows which
//! segment moved, from where, and why. Records are kept in a bounded ring (newest last) while
//! counters are cumulative, so a long run neither loses totals nor grows without bound.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;

use serde::Serialize;

use crate::segmenter::SourceSegment;

/// One orchestrator's try at one segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    /// Orchestrator service URI.
    pub orchestrator: String,
    /// Time to upload until the orchestrator's 200, ms.
    pub upload_ms: Option<u64>,
    /// Time from the 200 to the transcode result, ms.
    pub transcode_ms: Option<u64>,
    /// Time to download the renditions, ms.
    pub download_ms: Option<u64>,
    /// Tickets sent with the segment.
    pub tickets: u64,
    /// Output pixels the orchestrator reported (what it bills).
    pub pixels: u64,
    /// Failure kind (`upload_timeout`, `http_status`, `transcode_error`, …), none on success.
    pub error_kind: Option<String>,
    /// Failure message.
    pub error: Option<String>,
}

/// What happened to one source segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SourceSegmentRecord {
    /// Stream.
    pub manifest_id: String,
    /// Sequence number.
    pub seq: u64,
    /// Source duration, ms.
    pub duration_ms: i64,
    /// Source bytes.
    pub bytes: usize,
    /// Every orchestrator tried, in order.
    pub attempts: Vec<Attempt>,
    /// Orchestrator that delivered the renditions.
    pub orchestrator: Option<String>,
    /// Renditions delivered.
    pub renditions: Vec<String>,
    /// `ok`, `failed` or `source_only` (no ladder).
    pub outcome: String,
    /// Why the segment failed in the end.
    pub error: Option<String>,
    /// Unix ms when the segment was cut.
    pub cut_at_unix_ms: u64,
}

impl SourceSegmentRecord {
    /// A record of `seg` that went nowhere yet: no attempt, no renditions, outcome `failed`.
    pub fn unsent(manifest_id: &str, seg: &SourceSegment, cut_at_unix_ms: u64) -> Self {
        Self {
            manifest_id: manifest_id.to_owned(),
            seq: seg.seq,
            duration_ms: seg.duration_ms,
            bytes: seg.data.len(),
            attempts: Vec::new(),
            orchestrator: None,
            renditions: Vec::new(),
            outcome: "failed".into(),
            error: None,
            cut_at_unix_ms,
        }
    }
}

/// Ingest-side events counted per kind (`rtmp_handshake`, `flv_parse`, `no_keyframe`, …).
#[derive(Debug, Default)]
struct Totals {
    segments_ok: u64,
    segments_failed: u64,
    segments_source_only: u64,
    attempts: BTreeMap<(String, String), u64>,
    upload_ms: BTreeMap<String, (u64, u64)>,
    transcode_ms: BTreeMap<String, (u64, u64)>,
    download_ms: BTreeMap<String, (u64, u64)>,
    tickets: BTreeMap<String, u64>,
    ingest_errors: BTreeMap<String, u64>,
    failovers: u64,
}

/// The shared record book.
#[derive(Debug)]
pub struct RecordBook {
    kept: usize,
    inner: Mutex<(VecDeque<SourceSegmentRecord>, Totals)>,
}

impl RecordBook {
    /// A book keeping the last `kept` records.
    pub fn new(kept: usize) -> Self {
        Self {
            kept,
            inner: Mutex::new((VecDeque::new(), Totals::default())),
        }
    }

    /// Adds a finished segment's record.
    pub fn record(&self, rec: SourceSegmentRecord) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (ring, totals) = &mut *guard;
        match rec.outcome.as_str() {
            "ok" => totals.segments_ok += 1,
            "source_only" => totals.segments_source_only += 1,
            _ => totals.segments_failed += 1,
        }
        if rec.attempts.len() > 1 && rec.outcome == "ok" {
            totals.failovers += 1;
        }
        for a in &rec.attempts {
            let result = a.error_kind.clone().unwrap_or_else(|| "ok".into());
            *totals
                .attempts
                .entry((a.orchestrator.clone(), result))
                .or_default() += 1;
            *totals.tickets.entry(a.orchestrator.clone()).or_default() += a.tickets;
            for (map, v) in [
                (&mut totals.upload_ms, a.upload_ms),
                (&mut totals.transcode_ms, a.transcode_ms),
                (&mut totals.download_ms, a.download_ms),
            ] {
                if let Some(v) = v {
                    let e = map.entry(a.orchestrator.clone()).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
            }
        }
        ring.push_back(rec);
        while ring.len() > self.kept {
            ring.pop_front();
        }
    }

    /// Counts an ingest-side problem of `kind`.
    pub fn ingest_error(&self, kind: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *guard.1.ingest_errors.entry(kind.to_string()).or_default() += 1;
    }

    /// The kept records, oldest first.
    pub fn records(&self) -> Vec<SourceSegmentRecord> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.iter().cloned().collect()
    }

    /// Ingest error counters.
    pub fn ingest_errors(&self) -> BTreeMap<String, u64> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.ingest_errors.clone()
    }

    /// Prometheus text exposition of the counters.
    pub fn prometheus(&self, streams_active: usize) -> String {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let t = &guard.1;
        let mut o = String::new();
        o.push_str("# HELP lpt_broadcaster_segments_total Source segments by final outcome.\n");
        o.push_str("# TYPE lpt_broadcaster_segments_total counter\n");
        for (k, v) in [
            ("ok", t.segments_ok),
            ("failed", t.segments_failed),
            ("source_only", t.segments_source_only),
        ] {
            let _ = writeln!(o, "lpt_broadcaster_segments_total{{outcome=\"{k}\"}} {v}");
        }
        o.push_str("# HELP lpt_broadcaster_failovers_total Segments delivered after another orchestrator failed.\n");
        o.push_str("# TYPE lpt_broadcaster_failovers_total counter\n");
        let _ = writeln!(o, "lpt_broadcaster_failovers_total {}", t.failovers);
        o.push_str("# HELP lpt_broadcaster_attempts_total Segment submissions per orchestrator and result.\n");
        o.push_str("# TYPE lpt_broadcaster_attempts_total counter\n");
        for ((orch, result), v) in &t.attempts {
            let _ = writeln!(
                o,
                "lpt_broadcaster_attempts_total{{orchestrator=\"{}\",result=\"{}\"}} {v}",
                escape(orch),
                escape(result)
            );
        }
        for (name, map) in [
            ("upload", &t.upload_ms),
            ("transcode", &t.transcode_ms),
            ("download", &t.download_ms),
        ] {
            let _ = writeln!(
                o,
                "# HELP lpt_broadcaster_{name}_seconds Segment {name} time per orchestrator."
            );
            let _ = writeln!(o, "# TYPE lpt_broadcaster_{name}_seconds summary");
            for (orch, (sum, count)) in map {
                let orch = escape(orch);
                let _ = writeln!(
                    o,
                    "lpt_broadcaster_{name}_seconds_sum{{orchestrator=\"{orch}\"}} {:.3}",
                    *sum as f64 / 1000.0
                );
                let _ = writeln!(
                    o,
                    "lpt_broadcaster_{name}_seconds_count{{orchestrator=\"{orch}\"}} {count}"
                );
            }
        }
        o.push_str("# HELP lpt_broadcaster_tickets_total Tickets sent per orchestrator.\n");
        o.push_str("# TYPE lpt_broadcaster_tickets_total counter\n");
        for (orch, v) in &t.tickets {
            let _ = writeln!(
                o,
                "lpt_broadcaster_tickets_total{{orchestrator=\"{}\"}} {v}",
                escape(orch)
            );
        }
        o.push_str("# HELP lpt_broadcaster_ingest_errors_total Publisher-side problems by kind.\n");
        o.push_str("# TYPE lpt_broadcaster_ingest_errors_total counter\n");
        for (kind, v) in &t.ingest_errors {
            let _ = writeln!(
                o,
                "lpt_broadcaster_ingest_errors_total{{kind=\"{}\"}} {v}",
                escape(kind)
            );
        }
        o.push_str("# HELP lpt_broadcaster_streams_active Streams with a live publisher.\n");
        o.push_str("# TYPE lpt_broadcaster_streams_active gauge\n");
        let _ = writeln!(o, "lpt_broadcaster_streams_active {streams_active}");
        o
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
