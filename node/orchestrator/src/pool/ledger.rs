//! The pool ledger: one entry per segment a remote transcoder answered, with the pixels it
//! claimed, the pixels this node counted in its renditions, what the broadcaster was charged and
//! how the spot check (if any) went.
//!
//! Design: entries are kept in memory for the payout window (bounded in number too, so a flood
//! of tiny segments cannot grow it without limit) and appended as JSON lines to an optional file,
//! the pool's durable record. Totals per transcoder are kept from the start, apart from the
//! window, so `/metrics` counters never go down when entries age out.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The most entries kept in memory, whatever the window.
pub const MAX_ENTRIES: usize = 100_000;

/// How a segment's spot check went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "check", content = "reason")]
pub enum CheckVerdict {
    /// Not sampled for checking.
    Unchecked,
    /// Checked and found to be the source's pictures at the profiles' sizes and frame counts.
    Passed,
    /// Checked and refused (why): the segment went to another transcoder, this one earns nothing
    /// for it and is penalised.
    Failed(String),
}

/// One rendition as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRendition {
    /// Profile name.
    pub profile: String,
    pub width: u32,
    pub height: u32,
    /// Encoded pixels the transcoder reported (the part's `Pixels` header).
    pub claimed_pixels: u64,
    /// Frames this node counted in the rendition × the profile's width × height: what the
    /// broadcaster is billed and the transcoder paid for.
    pub counted_pixels: u64,
}

/// One segment answered by a remote transcoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// When the answer arrived (unix ms).
    pub at_ms: u64,
    /// The transcoder's name (the one it registered with, or `remote-<id>`).
    pub transcoder: String,
    /// The stream's manifest id, hex.
    pub manifest_id: String,
    /// Segment sequence number.
    pub seq: u64,
    /// Source duration, ms.
    pub duration_ms: u64,
    /// Source pixels the transcoder reported decoding (top-level `Pixels`).
    pub decoded_pixels: u64,
    pub renditions: Vec<LedgerRendition>,
    /// Dispatch to answer, ms.
    pub transcode_ms: u64,
    /// Time spent counting and checking the answer, ms, when it was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_ms: Option<u64>,
    /// What the broadcaster was charged for this segment, wei (0 for a refused answer).
    #[serde(with = "wei")]
    pub fee_wei: u128,
    #[serde(flatten)]
    pub verdict: CheckVerdict,
}

impl LedgerEntry {
    /// Encoded pixels the transcoder claimed.
    pub fn claimed_pixels(&self) -> u64 {
        self.renditions.iter().map(|r| r.claimed_pixels).sum()
    }

    /// Encoded pixels counted by this node.
    pub fn counted_pixels(&self) -> u64 {
        self.renditions.iter().map(|r| r.counted_pixels).sum()
    }

    /// Pixels the transcoder earns for this entry: the counted ones, none for a refused answer.
    pub fn earned_pixels(&self) -> u64 {
        match self.verdict {
            CheckVerdict::Failed(_) => 0,
            _ => self.counted_pixels(),
        }
    }
}

/// Everything one transcoder did since the node started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscoderTotals {
    /// Segments answered (refused ones included).
    pub segments: u64,
    pub decoded_pixels: u64,
    pub claimed_pixels: u64,
    pub counted_pixels: u64,
    /// Counted pixels of the answers that were not refused.
    pub earned_pixels: u64,
    /// Segments whose claimed pixels differ from the counted ones.
    pub misreported_segments: u64,
    #[serde(with = "wei")]
    pub fees_wei: u128,
    pub checks_passed: u64,
    pub checks_failed: u64,
    /// Time spent on its checks, ms.
    pub check_ms: u64,
    /// Segments it was given and went away with (disconnected, or past the task deadline).
    pub lost: u64,
    /// Sum of segment durations, ms, and of dispatch-to-answer times, ms.
    pub media_ms: u64,
    pub transcode_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<LedgerEntry>,
    totals: BTreeMap<String, TranscoderTotals>,
    file: Option<File>,
    file_errors: u64,
}

/// The ledger of a pool of remote transcoders.
#[derive(Debug)]
pub struct PoolLedger {
    window: Duration,
    state: Mutex<State>,
}

impl PoolLedger {
    /// A ledger keeping `window` of entries in memory, appending every entry to `file` if given.
    pub fn new(window: Duration, file: Option<&Path>) -> std::io::Result<Self> {
        let file = match file {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?,
                )
            }
            None => None,
        };
        Ok(Self {
            window,
            state: Mutex::new(State {
                file,
                ..State::default()
            }),
        })
    }

    /// The payout window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records an entry.
    pub fn record(&self, entry: LedgerEntry) {
        let mut state = self.lock();
        let totals = state.totals.entry(entry.transcoder.clone()).or_default();
        totals.segments += 1;
        totals.decoded_pixels += entry.decoded_pixels;
        totals.claimed_pixels += entry.claimed_pixels();
        totals.counted_pixels += entry.counted_pixels();
        totals.earned_pixels += entry.earned_pixels();
        totals.misreported_segments += u64::from(
            entry
                .renditions
                .iter()
                .any(|r| r.claimed_pixels != r.counted_pixels),
        );
        totals.fees_wei += entry.fee_wei;
        totals.media_ms += entry.duration_ms;
        totals.transcode_ms += entry.transcode_ms;
        totals.check_ms += entry.check_ms.unwrap_or(0);
        match entry.verdict {
            CheckVerdict::Passed => totals.checks_passed += 1,
            CheckVerdict::Failed(_) => totals.checks_failed += 1,
            CheckVerdict::Unchecked => {}
        }
        if let Some(file) = state.file.as_mut() {
            let mut line = serde_json::to_vec(&entry).unwrap_or_default();
            line.push(b'\n');
            // One write per line, so a concurrent reader never sees half of one.
            if let Err(err) = file.write_all(&line) {
                state.file_errors += 1;
                tracing::warn!(%err, "pool ledger line not written");
            }
        }
        state.entries.push_back(entry);
        let horizon = now_ms().saturating_sub(self.window.as_millis() as u64);
        while state
            .entries
            .front()
            .is_some_and(|e| e.at_ms < horizon || state.entries.len() > MAX_ENTRIES)
        {
            state.entries.pop_front();
        }
    }

    /// Counts a segment `transcoder` went away with.
    pub fn lost(&self, transcoder: &str) {
        self.lock()
            .totals
            .entry(transcoder.to_string())
            .or_default()
            .lost += 1;
    }

    /// Totals per transcoder since the start.
    pub fn totals(&self) -> BTreeMap<String, TranscoderTotals> {
        self.lock().totals.clone()
    }

    /// Entries of the window, oldest first.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        let horizon = now_ms().saturating_sub(self.window.as_millis() as u64);
        self.lock()
            .entries
            .iter()
            .filter(|e| e.at_ms >= horizon)
            .cloned()
            .collect()
    }

    /// Lines that could not be written to the ledger file.
    pub fn file_errors(&self) -> u64 {
        self.lock().file_errors
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Now, unix ms.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wei as a decimal string: JSON readers that hold numbers as doubles would round them.
pub(crate) mod wei {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(transcoder: &str, seq: u64, claimed: u64, counted: u64) -> LedgerEntry {
        LedgerEntry {
            at_ms: now_ms(),
            transcoder: transcoder.into(),
            manifest_id: "ab".into(),
            seq,
            duration_ms: 2000,
            decoded_pixels: 1280 * 720 * 60,
            renditions: vec![LedgerRendition {
                profile: "240p".into(),
                width: 426,
                height: 240,
                claimed_pixels: claimed,
                counted_pixels: counted,
            }],
            transcode_ms: 500,
            check_ms: None,
            fee_wei: u128::from(counted) * 3,
            verdict: CheckVerdict::Unchecked,
        }
    }

    #[test]
    fn totals_add_up_per_transcoder_and_lines_go_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool").join("ledger.jsonl");
        let ledger = PoolLedger::new(Duration::from_secs(60), Some(&path)).unwrap();
        let honest = 426 * 240 * 60;
        ledger.record(entry("a", 1, honest, honest));
        ledger.record(entry("a", 2, honest * 3, honest));
        let mut refused = entry("b", 3, honest, honest);
        refused.verdict = CheckVerdict::Failed("low similarity".into());
        refused.fee_wei = 0;
        ledger.record(refused.clone());
        let totals = ledger.totals();
        assert_eq!(totals["a"].segments, 2);
        assert_eq!(totals["a"].claimed_pixels, honest * 4);
        assert_eq!(totals["a"].counted_pixels, honest * 2);
        assert_eq!(totals["a"].earned_pixels, honest * 2);
        assert_eq!(totals["a"].misreported_segments, 1);
        assert_eq!(totals["a"].fees_wei, u128::from(honest) * 6);
        assert_eq!(totals["b"].earned_pixels, 0);
        assert_eq!(totals["b"].checks_failed, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<LedgerEntry> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], refused);
        assert!(text.contains("\"fee_wei\":\"0\""), "{text}");
        assert!(
            text.contains("\"check\":\"failed\",\"reason\":\"low similarity\""),
            "{text}"
        );
    }

    #[test]
    fn entries_older_than_the_window_leave_memory_but_not_the_totals() {
        let ledger = PoolLedger::new(Duration::from_secs(10), None).unwrap();
        let mut old = entry("a", 1, 100, 100);
        old.at_ms -= 20_000;
        ledger.record(old);
        ledger.record(entry("a", 2, 100, 100));
        let seqs: Vec<u64> = ledger.entries().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2]);
        assert_eq!(ledger.totals()["a"].segments, 2);
    }
}
