//! The run journal: records appended as JSON Lines while a run happens (`records.jsonl`), and a
//! tolerant reader for it.
//!
//! Design decisions:
//! - **JSON Lines**, not Arrow IPC: a line is either complete or the torn tail of a killed process,
//!   so recovery is "read whole lines"; a human can `tail -f` it; appends from many tasks need no
//!   schema negotiation.
//! - The writer is a cheap cloneable handle (`Arc` inside) usable from any thread or tokio task.
//!   Records are serialized into an in-memory buffer under a mutex and the buffer is written with
//!   one `write_all` of whole lines when it passes 256 KiB, by a background thread at least every
//!   500 ms, on `flush`, and when the last handle drops. A killed process therefore loses at most
//!   the last half second, and every line on disk except possibly the last is complete.
//! - **A failed write never tears a record.** A batch that could not be written whole (disk full,
//!   file size limit) is cut off the file again, back to the end of the last whole record, and
//!   kept for a later try (on a file that cannot be cut, only its unwritten bytes are kept, so a
//!   later try completes the line). The first failure is sticky: the writer reports it once,
//!   refuses further records (counted, memory stays bounded) and exposes it through
//!   [`JournalWriter::failure`], so a run can stop with a clear reason instead of warning once
//!   per record.
//! - The reader never fails on content: a torn last line, a malformed line, an unknown record kind
//!   or an unknown version is counted in [`JournalStats`] (with the first few line numbers) and
//!   skipped, so `lpt report` can always say what it could not use.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use observation::record::*;

/// File name of the journal inside a run directory.
pub const JOURNAL_FILE: &str = "records.jsonl";

/// Buffered bytes that trigger an immediate write.
const FLUSH_BYTES: usize = 256 * 1024;
/// Longest time a record waits in memory.
const FLUSH_INTERVAL: Duration = Duration::from_millis(500);

/// Appends records to a journal file; clone it freely, it is one shared writer.
#[derive(Clone)]
pub struct JournalWriter {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    state: Mutex<WriterState>,
}

struct WriterState {
    file: Box<dyn JournalFile>,
    buf: Vec<u8>,
    records: u64,
    /// The file's length: the end of the last whole record while `can_cut` holds.
    on_disk: u64,
    /// Whether a fragment can be cut off the file (false once cutting failed).
    can_cut: bool,
    /// The first write failure, as text; once set, new records are refused.
    failure: Option<String>,
    /// Records refused after the failure.
    dropped: u64,
    /// An error met by the background flusher, returned by the next call.
    deferred: Option<std::io::Error>,
}

/// Where the journal's bytes go: its file, or (in tests) a writer that fails on purpose.
trait JournalFile: Write + Send {
    /// Cuts the file back to `len` bytes.
    fn cut_to(&mut self, len: u64) -> std::io::Result<()>;
    /// Asks the OS to put the data on disk.
    fn sync_data(&self) -> std::io::Result<()>;
}

impl JournalFile for File {
    fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
        // Opened for appending: the next write goes to the new end.
        self.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        File::sync_data(self)
    }
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl JournalWriter {
    /// Opens (creating if needed) the journal at `path` for appending. If a previous process left
    /// a torn last line, a newline is written first so the new records start on a line of their
    /// own.
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, ReportError> {
        let path = path.into();
        let io = |source| ReportError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > 0 {
            file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
            }
        }
        let on_disk = file.metadata().map_err(io)?.len();
        Self::with_file(path, Box::new(file), on_disk)
    }

    fn with_file(
        path: PathBuf,
        file: Box<dyn JournalFile>,
        on_disk: u64,
    ) -> Result<Self, ReportError> {
        let shared = Arc::new(Shared {
            path,
            state: Mutex::new(WriterState {
                file,
                buf: Vec::with_capacity(FLUSH_BYTES + 4096),
                records: 0,
                on_disk,
                can_cut: true,
                failure: None,
                dropped: 0,
                deferred: None,
            }),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("journal-flush".into())
            .spawn(move || periodic_flush(weak))
            .map_err(|source| ReportError::Io {
                path: shared.path.clone(),
                source,
            })?;
        Ok(JournalWriter { shared })
    }

    /// Opens `<run_dir>/records.jsonl`.
    pub fn in_run_dir(run_dir: &Path) -> Result<Self, ReportError> {
        Self::create(run_dir.join(JOURNAL_FILE))
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Appends one record. Cheap: it serializes into memory; the disk write happens in batches.
    /// After a write failure every record is refused (see [`JournalWriter::failure`]).
    pub fn append(&self, record: impl Into<Record>) -> Result<(), ReportError> {
        let record = record.into();
        let mut state = self.shared.lock();
        if let Some(e) = state.deferred.take() {
            state.dropped += 1;
            return Err(self.shared.io_error(e));
        }
        if state.failure.is_some() {
            state.dropped += 1;
            return Err(self.shared.io_error(state.stopped()));
        }
        let before = state.buf.len();
        if let Err(e) = record.write_json_line(&mut state.buf) {
            state.buf.truncate(before);
            return Err(ReportError::Serialize {
                what: record.type_name().to_string(),
                source: e,
            });
        }
        state.records += 1;
        if state.buf.len() >= FLUSH_BYTES {
            state.write_out().map_err(|e| self.shared.io_error(e))?;
        }
        Ok(())
    }

    /// Writes every buffered record to the file now. After a write failure this tries the
    /// batch that failed once more (whole, or not at all) and still reports the failure:
    /// records were refused since.
    pub fn flush(&self) -> Result<(), ReportError> {
        let mut state = self.shared.lock();
        state.deferred = None;
        let failed_before = state.failure.is_some();
        state.write_out().map_err(|e| self.shared.io_error(e))?;
        if failed_before {
            return Err(self.shared.io_error(state.stopped()));
        }
        Ok(())
    }

    /// Flushes and asks the OS to put the data on disk (use at the end of a run).
    pub fn sync(&self) -> Result<(), ReportError> {
        self.flush()?;
        let state = self.shared.lock();
        state.file.sync_data().map_err(|e| self.shared.io_error(e))
    }

    /// Records appended through this writer (all clones) so far.
    pub fn records_written(&self) -> u64 {
        self.shared.lock().records
    }

    /// The first write failure (e.g. "No space left on device (os error 28)"), once there was
    /// one: from then on the journal refuses records, and a run should stop.
    pub fn failure(&self) -> Option<String> {
        self.shared.lock().failure.clone()
    }

    /// Records refused because of a write failure.
    pub fn dropped_records(&self) -> u64 {
        self.shared.lock().dropped
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        // A panic while holding the lock leaves whole lines in the buffer: keep using it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn io_error(&self, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl WriterState {
    /// Writes the buffer whole, or leaves the file ending on a whole record and the buffer
    /// holding what still has to go (see the module's design notes).
    fn write_out(&mut self) -> std::io::Result<()> {
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[written..]) {
                Ok(0) => {
                    break Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "the journal file took no more bytes",
                    ));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.on_disk += written as u64;
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                if written > 0 {
                    if self.can_cut && self.file.cut_to(self.on_disk).is_ok() {
                        // The fragment is gone; the whole batch stays for a later try.
                    } else {
                        self.can_cut = false;
                        self.on_disk += written as u64;
                        self.buf.drain(..written);
                    }
                }
                self.failure.get_or_insert_with(|| e.to_string());
                Err(e)
            }
        }
    }

    /// The error of a record refused after the first failure.
    fn stopped(&self) -> std::io::Error {
        std::io::Error::other(format!(
            "the journal stopped taking records after a failed write ({})",
            self.failure.as_deref().unwrap_or("unknown error")
        ))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        // Nobody is left to report an error to; the reader will see a short journal.
        let _ = state.write_out();
    }
}

fn periodic_flush(weak: Weak<Shared>) {
    loop {
        std::thread::sleep(FLUSH_INTERVAL);
        let Some(shared) = weak.upgrade() else { return };
        let mut state = shared.lock();
        // After a failure, retries are left to explicit flushes (the end of a run).
        if state.failure.is_none()
            && let Err(e) = state.write_out()
        {
            state.deferred = Some(e);
        }
    }
}

/// What the reader found in a journal besides usable records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalStats {
    /// Non-empty lines read.
    pub lines: u64,
    /// Usable records per record kind.
    pub records: BTreeMap<String, u64>,
    /// Whether the last line was torn (no newline and not valid JSON) — a killed writer.
    pub truncated_last_line: bool,
    /// Lines that are not a JSON object with `type` and `v`, or do not fit their kind's fields.
    pub malformed_lines: u64,
    /// Lines of a known kind with a version this build cannot read, per `kind vN`.
    pub unknown_versions: BTreeMap<String, u64>,
    /// Lines of a kind this build does not know, per kind.
    pub unknown_types: BTreeMap<String, u64>,
    /// The first problems, as `line N: what` (at most 20).
    pub problems: Vec<String>,
}

impl JournalStats {
    /// Total usable records.
    pub fn total_records(&self) -> u64 {
        self.records.values().sum()
    }

    /// Whether some lines could not be used.
    pub fn has_problems(&self) -> bool {
        self.truncated_last_line
            || self.malformed_lines > 0
            || !self.unknown_versions.is_empty()
            || !self.unknown_types.is_empty()
    }

    /// One sentence per kind of problem, for reports.
    pub fn describe_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.truncated_last_line {
            out.push(
                "the journal's last line is truncated (the run was probably killed while writing); it was skipped"
                    .to_string(),
            );
        }
        if self.malformed_lines > 0 {
            out.push(format!(
                "{} malformed journal line(s) were skipped",
                self.malformed_lines
            ));
        }
        for (kind, n) in &self.unknown_versions {
            out.push(format!(
                "{n} record(s) of {kind} have a version this build cannot read; they were skipped"
            ));
        }
        for (kind, n) in &self.unknown_types {
            out.push(format!(
                "{n} record(s) of unknown type \"{kind}\" were skipped"
            ));
        }
        out
    }

    fn problem(&mut self, line: u64, what: String) {
        if self.problems.len() < 20 {
            self.problems.push(format!("line {line}: {what}"));
        }
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    v: u32,
}

/// Reads records back from a journal, skipping and counting what it cannot use.
pub struct JournalReader<R> {
    input: R,
    line: Vec<u8>,
    line_no: u64,
    stats: JournalStats,
    path: PathBuf,
}

impl JournalReader<BufReader<File>> {
    /// Opens a journal file.
    pub fn open(path: &Path) -> Result<Self, ReportError> {
        let file = File::open(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::new(
            BufReader::with_capacity(1 << 20, file),
            path.to_path_buf(),
        ))
    }
}

impl<R: BufRead> JournalReader<R> {
    /// Reads from any buffered input; `path` names it in errors.
    pub fn new(input: R, path: PathBuf) -> Self {
        JournalReader {
            input,
            line: Vec::with_capacity(1024),
            line_no: 0,
            stats: JournalStats::default(),
            path,
        }
    }

    /// What was found so far (complete once `next_record` returned `Ok(None)`).
    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// Consumes the reader, returning its statistics.
    pub fn into_stats(self) -> JournalStats {
        self.stats
    }

    /// The next usable record; `Ok(None)` at the end. Only I/O errors are errors.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReportError> {
        loop {
            self.line.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.line)
                .map_err(|source| ReportError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let complete = self.line.last() == Some(&b'\n');
            let text = trim_ascii(&self.line);
            if text.is_empty() {
                continue;
            }
            self.stats.lines += 1;
            match parse_line(text) {
                Ok(record) => {
                    *self
                        .stats
                        .records
                        .entry(record.type_name().to_string())
                        .or_default() += 1;
                    return Ok(Some(record));
                }
                Err(problem) => {
                    let line_no = self.line_no;
                    match problem {
                        LineProblem::Malformed(_) if !complete => {
                            self.stats.truncated_last_line = true;
                            self.stats
                                .problem(line_no, "truncated last line".to_string());
                        }
                        LineProblem::Malformed(e) => {
                            self.stats.malformed_lines += 1;
                            self.stats.problem(line_no, format!("malformed: {e}"));
                        }
                        LineProblem::UnknownVersion(kind, v) => {
                            let key = format!("{kind} v{v}");
                            self.stats
                                .problem(line_no, format!("unknown version {key}"));
                            *self.stats.unknown_versions.entry(key).or_default() += 1;
                        }
                        LineProblem::UnknownType(kind) => {
                            self.stats
                                .problem(line_no, format!("unknown record type \"{kind}\""));
                            *self.stats.unknown_types.entry(kind).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for JournalReader<R> {
    type Item = Result<Record, ReportError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

enum LineProblem {
    Malformed(String),
    UnknownVersion(String, u32),
    UnknownType(String),
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Reads `{"type":"<kind>","v":<n>,` — the prefix `JournalWriter` always writes — without a JSON
/// parse; `None` for anything else (then the full header parse decides).
fn fast_header(text: &[u8]) -> Option<(&str, u32)> {
    let rest = text.strip_prefix(b"{\"type\":\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    let kind = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end..].strip_prefix(b"\",\"v\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || rest.get(digits) != Some(&b',') {
        return None;
    }
    let v = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some((kind, v))
}

fn parse_line(text: &[u8]) -> Result<Record, LineProblem> {
    if let Some((kind, v)) = fast_header(text) {
        return parse_kind(text, kind, v);
    }
    let header: Header<'_> =
        serde_json::from_slice(text).map_err(|e| LineProblem::Malformed(e.to_string()))?;
    parse_kind(text, &header.kind, header.v)
}

fn parse_kind(text: &[u8], kind: &str, v: u32) -> Result<Record, LineProblem> {
    Record::from_json(kind, v, text).map_err(|problem| match problem {
        RecordParseError::Malformed(e) => LineProblem::Malformed(e),
        RecordParseError::UnknownVersion(kind, v) => LineProblem::UnknownVersion(kind, v),
        RecordParseError::UnknownType(kind) => LineProblem::UnknownType(kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory journal file with room for `room` more bytes: a write beyond it is short
    /// (as on a nearly full disk) and the next one fails with "no space".
    #[derive(Clone)]
    struct NearlyFull {
        bytes: Arc<Mutex<Vec<u8>>>,
        room: Arc<Mutex<usize>>,
        can_cut: bool,
    }

    impl NearlyFull {
        fn new(room: usize, can_cut: bool) -> Self {
            NearlyFull {
                bytes: Arc::default(),
                room: Arc::new(Mutex::new(room)),
                can_cut,
            }
        }
        fn free(&self, more: usize) {
            *self.room.lock().unwrap() += more;
        }
        fn read(&self) -> (Vec<Record>, JournalStats) {
            let bytes = self.bytes.lock().unwrap().clone();
            let mut reader = JournalReader::new(&bytes[..], PathBuf::from("mem"));
            let records = reader.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
            (records, reader.into_stats())
        }
    }

    impl Write for NearlyFull {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(std::io::Error::from_raw_os_error(ENOSPC));
            }
            let n = buf.len().min(*room);
            *room -= n;
            self.bytes.lock().unwrap().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl JournalFile for NearlyFull {
        fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
            if !self.can_cut {
                return Err(std::io::Error::other("not a regular file"));
            }
            let mut bytes = self.bytes.lock().unwrap();
            let mut room = self.room.lock().unwrap();
            *room += bytes.len() - len as usize;
            bytes.truncate(len as usize);
            Ok(())
        }
        fn sync_data(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// ENOSPC on Linux (the crate has no libc dependency).
    const ENOSPC: i32 = 28;

    fn check(seq: u64) -> CheckRecord {
        CheckRecord {
            t_ms: 1_700_000_000_000 + seq as i64,
            workload: "w".into(),
            stream: "s".into(),
            rendition: Some("r".into()),
            seq: Some(seq),
            check: "download".into(),
            ok: true,
            message: None,
            observed: None,
            expected: None,
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records
            .iter()
            .map(|r| match r {
                Record::Check(c) => c.seq.unwrap(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// Appends `range` and flushes; returns the flush's result.
    fn batch(writer: &JournalWriter, range: std::ops::Range<u64>) -> Result<(), ReportError> {
        for seq in range {
            writer.append(check(seq))?;
        }
        writer.flush()
    }

    fn line_len() -> usize {
        let mut line = Vec::new();
        Record::from(check(0)).write_json_line(&mut line).unwrap();
        line.len()
    }

    #[test]
    fn a_write_that_fails_mid_batch_leaves_only_whole_records_and_keeps_the_batch() {
        // Room for three records and a half: the second batch fails in its second record.
        let file = NearlyFull::new(line_len() * 7 / 2, true);
        let writer =
            JournalWriter::with_file(PathBuf::from("mem"), Box::new(file.clone()), 0).unwrap();
        batch(&writer, 0..2).unwrap();
        let error = batch(&writer, 2..5).unwrap_err().to_string();
        assert!(error.contains("No space left on device"), "{error}");
        assert_eq!(
            writer.failure().as_deref(),
            Some("No space left on device (os error 28)")
        );
        let (records, stats) = file.read();
        assert_eq!(seqs(&records), [0, 1], "the fragment was cut off");
        assert!(!stats.has_problems(), "{stats:?}");

        // Further records are refused (bounded memory), once the run has been told.
        assert!(writer.append(check(5)).is_err());
        assert_eq!(writer.dropped_records(), 1);

        // Space comes back: the failed batch goes out whole, the failure stays reported.
        file.free(10 * line_len());
        assert!(
            writer
                .flush()
                .unwrap_err()
                .to_string()
                .contains("stopped taking records")
        );
        let (records, stats) = file.read();
        assert_eq!(seqs(&records), [0, 1, 2, 3, 4]);
        assert!(!stats.has_problems(), "{stats:?}");
    }

    #[test]
    fn on_a_file_that_cannot_be_cut_a_later_write_completes_the_torn_record() {
        let file = NearlyFull::new(line_len() * 5 / 2, false);
        let writer =
            JournalWriter::with_file(PathBuf::from("mem"), Box::new(file.clone()), 0).unwrap();
        batch(&writer, 0..2).unwrap();
        assert!(batch(&writer, 2..4).is_err());
        file.free(10 * line_len());
        assert!(writer.flush().is_err(), "the failure stays reported");
        let (records, stats) = file.read();
        assert_eq!(seqs(&records), [0, 1, 2, 3], "no record torn, none lost");
        assert!(!stats.has_problems(), "{stats:?}");
        drop(writer);
        assert_eq!(file.read().0.len(), 4);
    }
}
