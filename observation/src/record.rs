//! The typed records a run writes to its journal as it happens, one Rust type per record kind,
//! and the Polars schema of each.
//!
//! Design decisions:
//! - **Timestamps are `t_ms: i64`, unix epoch milliseconds (UTC)**: integral, exact, sortable, and
//!   cheap to bucket in Polars; sub-millisecond precision belongs in duration fields, which are
//!   `f64` with their unit in the name (`latency_ms`, `duration_s`).
//! - **Wei amounts are `f64`**: reports aggregate payments (totals, expected-value errors); the exact
//!   integers live on chain and in the payment probe.
//! - The `type` tag and the `v` version are written by the journal, not stored in the structs, so a
//!   record cannot carry a stale version: on the wire every line is
//!   `{"type":"segment","v":1, ...fields}`. A reader that meets a version it does not know counts
//!   the line and skips it (see `reports::journal`).
//! - One macro declares each record's struct, its Polars schema, a column builder and by-name
//!   access to its numeric and text columns, so they can never drift apart; by-name access is how
//!   [`crate::sample`] reads a record with the metric table's column names. A field of the same
//!   name has the same Polars type in every record kind (checked by a test), which lets
//!   `records.parquet` hold all kinds in one table with a `type` column.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// A record kind: its wire tag, its current version, its schema and its column builder.
pub trait RecordKind: Serialize + for<'de> Deserialize<'de> + Sized {
    /// The value of the `type` field on the wire and in `records.parquet`.
    const TYPE: &'static str;
    /// The version this build writes and reads.
    const VERSION: u32;
    /// Accumulates records of this kind into Polars columns.
    type Columns: RecordColumns<Self>;
    /// The Polars schema of this kind's table, including the `type` and `v` columns.
    fn schema() -> Schema;
    /// The value of a numeric or boolean column (`true` is 1), `None` when the column is null,
    /// text, or not one of this kind's.
    fn number(&self, column: &str) -> Option<f64>;
    /// The value of a text column, `None` when it is null, not text, or not one of this kind's.
    fn text(&self, column: &str) -> Option<&str>;
}

/// Column-wise accumulation of one record kind, finished into a `DataFrame`.
pub trait RecordColumns<R>: Default {
    /// Appends one record.
    fn push(&mut self, record: &R);
    /// Number of records appended so far.
    fn len(&self) -> usize;
    /// Whether nothing was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The table, with the columns of `RecordKind::schema` in order.
    fn finish(self) -> PolarsResult<DataFrame>;
}

/// A Rust field type that maps to one Polars column.
pub trait Cell {
    /// The column accumulator.
    type Acc: Default;
    /// The Polars type of the column.
    fn dtype() -> DataType;
    /// Appends one value.
    fn push(acc: &mut Self::Acc, value: &Self);
    /// Turns the accumulator into a named column.
    fn finish(acc: Self::Acc, name: &str) -> Column;
    /// The value as a number, for numeric and boolean cells.
    fn number(&self) -> Option<f64> {
        None
    }
    /// The value as text, for text cells.
    fn text(&self) -> Option<&str> {
        None
    }
}

/// The part of a `Cell` impl shared by a value kept as a `Vec` of itself.
macro_rules! vec_cell {
    ($dtype:expr) => {
        type Acc = Vec<Self>;
        fn dtype() -> DataType {
            $dtype
        }
        fn push(acc: &mut Self::Acc, value: &Self) {
            acc.push(*value);
        }
        fn finish(acc: Self::Acc, name: &str) -> Column {
            Column::new(name.into(), acc)
        }
    };
}

macro_rules! primitive_cell {
    ($t:ty, $dtype:expr, |$v:ident| $as_f64:expr) => {
        impl Cell for $t {
            vec_cell!($dtype);
            fn number(&self) -> Option<f64> {
                let $v = *self;
                Some($as_f64)
            }
        }
        impl Cell for Option<$t> {
            vec_cell!($dtype);
            fn number(&self) -> Option<f64> {
                self.as_ref().and_then(Cell::number)
            }
        }
    };
}

primitive_cell!(i64, DataType::Int64, |v| v as f64);
primitive_cell!(u32, DataType::UInt32, |v| f64::from(v));
primitive_cell!(u64, DataType::UInt64, |v| v as f64);
primitive_cell!(f64, DataType::Float64, |v| v);
primitive_cell!(bool, DataType::Boolean, |v| if v { 1.0 } else { 0.0 });

/// Accumulates strings straight into Arrow buffers, so millions of rows do not hold millions of
/// small heap strings.
#[derive(Default)]
pub struct StringAcc(Option<StringChunkedBuilder>);

impl StringAcc {
    fn builder(&mut self) -> &mut StringChunkedBuilder {
        self.0
            .get_or_insert_with(|| StringChunkedBuilder::new(PlSmallStr::EMPTY, 1024))
    }
    fn finish(self, name: &str) -> Column {
        match self.0 {
            Some(b) => b.finish().with_name(name.into()).into_column(),
            None => Column::new_empty(name.into(), &DataType::String),
        }
    }
}

impl Cell for String {
    type Acc = StringAcc;
    fn dtype() -> DataType {
        DataType::String
    }
    fn push(acc: &mut Self::Acc, value: &Self) {
        acc.builder().append_value(value);
    }
    fn finish(acc: Self::Acc, name: &str) -> Column {
        acc.finish(name)
    }
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Cell for Option<String> {
    type Acc = StringAcc;
    fn dtype() -> DataType {
        DataType::String
    }
    fn push(acc: &mut Self::Acc, value: &Self) {
        acc.builder().append_option(value.as_deref());
    }
    fn finish(acc: Self::Acc, name: &str) -> Column {
        acc.finish(name)
    }
    fn text(&self) -> Option<&str> {
        self.as_deref()
    }
}

macro_rules! record_kind {
    (
        $(#[$meta:meta])*
        $name:ident, $cols:ident, tag = $tag:literal, version = $ver:literal,
        { $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        impl RecordKind for $name {
            const TYPE: &'static str = $tag;
            const VERSION: u32 = $ver;
            type Columns = $cols;
            fn schema() -> Schema {
                Schema::from_iter([
                    Field::new("type".into(), DataType::String),
                    Field::new("v".into(), DataType::UInt32),
                    $( Field::new(stringify!($field).into(), <$ty as Cell>::dtype()), )+
                ])
            }
            fn number(&self, column: &str) -> Option<f64> {
                match column {
                    $( stringify!($field) => <$ty as Cell>::number(&self.$field), )+
                    _ => None,
                }
            }
            fn text(&self, column: &str) -> Option<&str> {
                match column {
                    $( stringify!($field) => <$ty as Cell>::text(&self.$field), )+
                    _ => None,
                }
            }
        }

        #[doc = concat!("Column builder for [`", stringify!($name), "`].")]
        #[derive(Default)]
        pub struct $cols {
            rows: usize,
            $( $field: <$ty as Cell>::Acc, )+
        }

        impl RecordColumns<$name> for $cols {
            fn push(&mut self, record: &$name) {
                self.rows += 1;
                $( <$ty as Cell>::push(&mut self.$field, &record.$field); )+
            }
            fn len(&self) -> usize {
                self.rows
            }
            fn finish(self) -> PolarsResult<DataFrame> {
                let rows = self.rows;
                DataFrame::new(rows, vec![
                    StringChunked::full("type".into(), $tag, rows).into_column(),
                    UInt32Chunked::full("v".into(), $ver, rows).into_column(),
                    $( <$ty as Cell>::finish(self.$field, stringify!($field)), )+
                ])
            }
        }
    };
}

record_kind! {
    /// One rendition of one segment of one stream, as the HLS puller (or the direct-to-orchestrator
    /// client) received it — or failed to.
    SegmentRecord, SegmentColumns, tag = "segment", version = 1, {
        /// When the rendition segment arrived or the attempt failed (unix ms).
        t_ms: i64,
        /// Workload name from the scenario.
        workload: String,
        /// Stream key.
        stream: String,
        /// Rendition name, e.g. `P360p30fps16x9`.
        rendition: String,
        /// Source segment sequence number.
        seq: u64,
        /// Orchestrator address or URL that transcoded it, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orchestrator: Option<String>,
        /// Region the probe ran from, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Whether the segment arrived and passed its blocking checks.
        ok: bool,
        /// Machine-readable failure code (`timeout`, `http_404`, …) when `ok` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Human-readable failure detail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Media duration of the segment (s).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
        /// Glass-to-glass latency from frame stamps (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_ms: Option<f64>,
        /// Time to upload the source segment (ms), direct-to-orchestrator only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_ms: Option<f64>,
        /// Orchestrator-side transcode time (ms), when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transcode_ms: Option<f64>,
        /// Time to download this rendition (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        download_ms: Option<f64>,
        /// Upload → transcode → download round trip (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        round_trip_ms: Option<f64>,
        /// Size of the rendition segment (bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// Measured bitrate (kbit/s).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bitrate_kbps: Option<f64>,
        /// Decoded width (px).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        /// Decoded height (px).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        /// Frames decoded: with width and height, the pixels a transcoder was paid for (the
        /// same type as the `frames` of quality samples: `records.parquet` stacks the kinds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frames: Option<u32>,
    }
}

record_kind! {
    /// The outcome of one named check (duration, resolution, continuity, drift, …) on one segment
    /// or stream. Checks never fail a run by themselves; JUnit shows one test case per check name.
    CheckRecord, CheckColumns, tag = "check", version = 1, {
        /// When the check ran (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// Stream key.
        stream: String,
        /// Rendition, when the check is per rendition.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rendition: Option<String>,
        /// Segment sequence number, when the check is per segment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// Check name; also the check group in JUnit.
        check: String,
        /// Whether it held.
        ok: bool,
        /// What was wrong, when it did not hold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// The measured value, when numeric.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed: Option<f64>,
        /// The expected value, when numeric.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<f64>,
    }
}

record_kind! {
    /// A quality score of one sampled rendition segment against the source; `origin` says whose
    /// rendition was scored: the network's (`network`) or the local reference transcoder's
    /// (`reference`).
    QualitySample, QualityColumns, tag = "quality", version = 1, {
        /// When the score was computed (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// Stream key.
        stream: String,
        /// Rendition name.
        rendition: String,
        /// Segment sequence number.
        seq: u64,
        /// `network` or `reference`.
        origin: String,
        /// Orchestrator that produced the network rendition, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orchestrator: Option<String>,
        /// Region the probe ran from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Mean VMAF over the segment's frames (0–100).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vmaf: Option<f64>,
        /// Mean PSNR (dB).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        psnr: Option<f64>,
        /// Frames scored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frames: Option<u32>,
    }
}

record_kind! {
    /// One probabilistic-micropayment ticket the broadcaster sent.
    TicketRecord, TicketColumns, tag = "ticket", version = 1, {
        /// When the ticket was sent (unix ms).
        t_ms: i64,
        /// Workload name, when the ticket belongs to one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workload: Option<String>,
        /// Stream key, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        /// Recipient orchestrator address.
        orchestrator: String,
        /// Region the probe ran from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Face value (wei).
        face_value_wei: f64,
        /// Winning probability (0–1).
        win_prob: f64,
        /// Expected value = face value × winning probability (wei).
        ev_wei: f64,
        /// Whether the ticket won.
        won: bool,
        /// Pixels this ticket paid for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pixels: Option<u64>,
        /// Price the orchestrator quoted (wei per pixel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price_wei_per_pixel: Option<f64>,
        /// Recipient random hash (hex), to match redemptions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipient_rand_hash: Option<String>,
        /// Sender nonce.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender_nonce: Option<u32>,
    }
}

record_kind! {
    /// One on-chain redemption of a winning ticket, as observed on the chain.
    RedemptionRecord, RedemptionColumns, tag = "redemption", version = 1, {
        /// When the redemption was observed (unix ms).
        t_ms: i64,
        /// Redeeming orchestrator address.
        orchestrator: String,
        /// Region the probe ran from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Whether the transaction succeeded.
        ok: bool,
        /// Face value paid out (wei).
        face_value_wei: f64,
        /// Transaction hash (hex).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tx_hash: Option<String>,
        /// Gas used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gas_used: Option<u64>,
        /// Failure code when `ok` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Failure detail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    }
}

record_kind! {
    /// One segment transcoded by `lpt bench` with `sessions` concurrent sessions running.
    BenchSegmentRecord, BenchSegmentColumns, tag = "bench_segment", version = 1, {
        /// When the transcode finished (unix ms).
        t_ms: i64,
        /// Concurrent sessions during this step of the bench.
        sessions: u32,
        /// Index of the session that transcoded it.
        session: u32,
        /// Segment sequence number within the session.
        seq: u64,
        /// Encoder path (`libx264`, `h264_nvenc`, …).
        encoder: String,
        /// Renditions in the ladder.
        renditions: u32,
        /// Media duration of the segment (s).
        duration_s: f64,
        /// Wall time to transcode the whole ladder (ms).
        transcode_ms: f64,
        /// Whether the transcode succeeded.
        ok: bool,
        /// Failure code when `ok` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    }
}

record_kind! {
    /// One occurrence of a scenario's chaos event (`[[chaos]]`), as the run carried it out.
    ChaosRecord, ChaosColumns, tag = "chaos", version = 1, {
        /// When the event started (unix ms).
        t_ms: i64,
        /// The occurrence's label, `kind:target@at` (e.g. `kill:orchestrator-0@30s`): the `event`
        /// tag of every figure measured about it.
        event: String,
        /// `kill`, `restart`, `chain_outage`, `chain_reorg`, `disk_full` or `network`.
        kind: String,
        /// The node it hit (`orchestrator-0`, `chain`, …).
        target: String,
        /// When it was over (unix ms): the node back up, the RPC answering again; absent for a
        /// kill, which lasts to the end of the run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_ms: Option<i64>,
        /// Whether the run carried it out as written.
        ok: bool,
        /// What happened, or why it could not be done.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    }
}

record_kind! {
    /// What one chaos event cost one stream, or one orchestrator's payments.
    RecoveryRecord, RecoveryColumns, tag = "recovery", version = 1, {
        /// When the event started (unix ms).
        t_ms: i64,
        /// The event's label (see [`ChaosRecord::event`]).
        event: String,
        /// Workload of the stream, for a stream's figures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workload: Option<String>,
        /// The stream, for a stream's figures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
        /// The orchestrator address, for payment figures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orchestrator: Option<String>,
        /// From the moment the first segment caught by the event should have arrived (its media
        /// published, plus the stream's usual latency) to the arrival of the stream's next good
        /// segment (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failover_time_ms: Option<f64>,
        /// Source segments caught by the event that no rendition-complete copy of ever arrived.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        segments_lost: Option<u64>,
        /// Time a player of the stream would have spent stalled because of the event (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stall_time_ms: Option<f64>,
        /// Whether the stream delivered a good segment again before it ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// Winning tickets received around the event that were never redeemed on chain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redemptions_lost: Option<u64>,
        /// Winning tickets received around the event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        winners: Option<u64>,
        /// The longest time from receiving such a winner to its redemption on chain (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redemption_delay_ms: Option<f64>,
    }
}

record_kind! {
    /// One HLS conformance rule found broken by the stream probe's checker
    /// (`probes::conformance`): which rule, how binding, where, and what was seen. The rules'
    /// catalogue (IDs, severities, the RFC 8216 or Apple sections they cite) is the probe's; the
    /// journal keeps the ID, stable across versions.
    ViolationRecord, ViolationColumns, tag = "violation", version = 1, {
        /// When the playlist or segment at fault arrived (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// Stream key.
        stream: String,
        /// Rendition, when the fault is in one rendition (not in the master playlist).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rendition: Option<String>,
        /// Rule ID, e.g. `HLS-TARGETDURATION-EXCEEDED`.
        rule: String,
        /// `must` or `should`.
        severity: String,
        /// The playlist or segment at fault.
        url: String,
        /// The 1-based line of the playlist at fault, when the fault is in a playlist's text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u32>,
        /// What was seen.
        detail: String,
        /// Times the rule broke that this record stands for (1: one record per violation); the
        /// `hls_violations` counter sums it.
        occurrences: u32,
    }
}

record_kind! {
    /// One thing a player saw: a headless Chromium tab playing the stream's HLS with hls.js, as
    /// a viewer's browser would (the `players` option of a stream workload). Each record is one
    /// `kind` of happening, with the columns that kind fills.
    PlayerRecord, PlayerColumns, tag = "player", version = 1, {
        /// When it happened (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// Stream key.
        stream: String,
        /// The player's number within its stream, from 0.
        player: u32,
        /// `first_frame`, `latency`, `stall`, `level_switch`, `ended` or `failed`.
        kind: String,
        /// The rendition playing, `<height>p` of the player's level, once it chose one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rendition: Option<String>,
        /// `first_frame`: from loading the stream to its first frame on screen (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttff_ms: Option<f64>,
        /// `latency`: a stamped frame sent by the publisher → that frame on the player's screen
        /// (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_ms: Option<f64>,
        /// `stall`: how long playback waited for data after it had started (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stall_ms: Option<f64>,
        /// `stall`: 1, so the `player_stalls` counter sums stalls.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stalls: Option<u32>,
        /// `level_switch`: 1, so the `player_level_switches` counter sums switches.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level_switches: Option<u32>,
        /// `ended`, `failed`: frames the player decoded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decoded_frames: Option<u64>,
        /// `ended`, `failed`: frames the player dropped (decoded too late to be shown).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dropped_frames: Option<u64>,
        /// `ended`, `failed`: whether the player played to the stream's end with no fatal error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ok: Option<bool>,
        /// `failed`: the player's fatal error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    }
}

record_kind! {
    /// One Low-Latency HLS part (`#EXT-X-PART`) the stream probe read as it appeared, with its
    /// latency from the frame stamps.
    PartRecord, PartColumns, tag = "part", version = 1, {
        /// When its last byte arrived (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// Stream key.
        stream: String,
        /// Rendition name.
        rendition: String,
        /// Media sequence number of its parent segment.
        msn: u64,
        /// Its position among its parent segment's parts, from 0.
        part: u32,
        /// Downloaded whole and, when decoded, its pictures read.
        ok: bool,
        /// Why `ok` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Requested from the playlist's preload hint before it was listed.
        hinted: bool,
        /// Its `DURATION` (seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
        /// From its request to its last byte (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        download_ms: Option<f64>,
        /// Bytes received.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        /// Its last byte's arrival − the send time of its first stamped frame (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        part_latency_ms: Option<f64>,
    }
}

record_kind! {
    /// One remote transcoder of an embedded orchestrator's pool, reconciled at the end of a run:
    /// the pixels the stream probe counted in the renditions it pulled against the pixels the
    /// orchestrator's ledger counted (what it paid) and the transcoder claimed, its payout share,
    /// its speed, and what its spot checks found.
    PoolRecord, PoolColumns, tag = "pool", version = 1, {
        /// When the run's pool was reconciled (unix ms).
        t_ms: i64,
        /// The orchestrator, as the stack names it (`orchestrator-0`).
        orchestrator: String,
        /// The transcoder, by the name it registered with (`transcoder-0-1`).
        transcoder: String,
        /// Answers accepted.
        segments: u64,
        /// Answers refused by a spot check (redone elsewhere).
        refused: u64,
        /// Answers spot-checked (refused ones included).
        checked: u64,
        /// Segments it was given and went away with (disconnected, or past the task deadline).
        lost: u64,
        /// Renditions it made that the probe pulled and decoded.
        matched: u64,
        /// Pixels of those renditions as the probe decoded them.
        probe_pixels: u64,
        /// Their pixels as the orchestrator counted (and billed and paid) them.
        counted_pixels: u64,
        /// Their pixels as the transcoder claimed them.
        claimed_pixels: u64,
        /// |counted − probe| ÷ probe: 0 when the ledger is exact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accounting_error: Option<f64>,
        /// (claimed − probe) ÷ probe: above 0 when the transcoder inflates its pixels.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim_error: Option<f64>,
        /// Its fraction of the window's payouts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payout_share: Option<f64>,
        /// What it is paid for the window, wei (decimal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payout_wei: Option<String>,
        /// Media seconds per wall second over its answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        realtime_ratio: Option<f64>,
        /// Mean time the orchestrator spent checking one of its answers (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check_ms: Option<f64>,
        /// Its answers up to and including the first one a check refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cheater_detected_after: Option<u64>,
        /// Renditions it made, accepted by the orchestrator, that the probe found bad (failed
        /// segment or a failed check).
        bad_segments_delivered: u64,
    }
}

record_kind! {
    /// One request of the AI probe to a gateway or an orchestrator's AI worker (ai-runner's API):
    /// its latency split, its HTTP outcome and what validating its output found.
    AiRecord, AiColumns, tag = "ai", version = 1, {
        /// When it was sent (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// The pipeline, as its route without the slash (`text-to-image`).
        pipeline: String,
        /// The model asked for (`model_id`).
        model: String,
        /// The orchestrator or gateway that answered, as the scenario names it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orchestrator: Option<String>,
        /// The tester's region label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// Its number within the workload, from 0.
        request: u64,
        /// The sweep level it was sent at, or the requests in flight when it was sent.
        concurrency: u32,
        /// Answered 200 with an output that passed validation.
        ok: bool,
        /// Why `ok` is false: a stable code (`http_status`, `not_json`, `wrong_size`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// What was wrong, with the start of the error body when there was one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The HTTP status, when an answer came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u32>,
        /// `cold` for the first request after the model sat idle (a cold start), else `warm`.
        start: String,
        /// From sending to the last byte of the output, media fetched (ms).
        latency_ms: f64,
        /// From sending to the request body handed over (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_ms: Option<f64>,
        /// From the body handed over to the answer's headers: queueing and inference (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inference_ms: Option<f64>,
        /// From the headers to the last byte, media URLs fetched (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        download_ms: Option<f64>,
        /// Outputs received (images, frames of a video, chunks of text).
        outputs: u32,
        /// The first image's width, when the output is pictures.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        /// The first image's height.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        /// Bytes of output received, media included.
        output_bytes: u64,
        /// The seed the answer echoed for its first output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        /// The request's parameters as compact JSON (inputs' bytes left out).
        params: String,
        /// A summary of the answer as compact JSON (`{"images":2,"width":256,…}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<String>,
    }
}

record_kind! {
    /// One live video-to-video job of the AI probe: a stamped source streamed to a worker or a
    /// gateway over Trickle for the workload's duration, its output read back and measured as a
    /// viewer would live it (time to first frame, sustained frame rate, frame latency, stalls).
    AiLiveRecord, AiLiveColumns, tag = "ai_live", version = 1, {
        /// When the job was started (unix ms).
        t_ms: i64,
        /// Workload name.
        workload: String,
        /// The pipeline, as its route without the slash (`live-video-to-video`).
        pipeline: String,
        /// The model asked for (`model_id`).
        model: String,
        /// The orchestrator or gateway that answered, as the scenario names it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orchestrator: Option<String>,
        /// The tester's region label.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// The job started, its output kept the target frame rate and never stalled for good.
        ok: bool,
        /// Why `ok` is false: a stable code (`low_fps`, `no_output`, `output_stalled`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// What was wrong.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// First input byte sent → first decoded output frame arrived (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_to_first_frame_ms: Option<f64>,
        /// Output frames delivered per wall-clock second over the steady window.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_fps: Option<f64>,
        /// The frame rate the output had to sustain.
        target_fps: f64,
        /// Frames of the input segments sent completely.
        frames_sent: u64,
        /// Frames decoded from the output.
        frames_received: u64,
        /// Output frames whose stamp could not be read.
        unreadable_stamps: u64,
        /// Median output frame latency: its arrival − its input frame's sending (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_p50_ms: Option<f64>,
        /// 95th percentile of the output frame latency (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_p95_ms: Option<f64>,
        /// The largest output frame latency (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        latency_max_ms: Option<f64>,
        /// Stalls of a player fed by the output (one segment of holdback).
        stalls: u32,
        /// Their total length (ms).
        stall_time_ms: f64,
        /// Input segments sent completely.
        segments_in: u32,
        /// Output segments read.
        segments_out: u32,
    }
}

/// Any record, as read back from a journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A segment × rendition observation.
    Segment(SegmentRecord),
    /// A check outcome.
    Check(CheckRecord),
    /// A quality score.
    Quality(QualitySample),
    /// A ticket sent.
    Ticket(TicketRecord),
    /// A redemption observed.
    Redemption(RedemptionRecord),
    /// A bench transcode.
    BenchSegment(BenchSegmentRecord),
    /// A chaos event carried out.
    Chaos(ChaosRecord),
    /// What a chaos event cost.
    Recovery(RecoveryRecord),
    /// An HLS conformance rule broken.
    Violation(ViolationRecord),
    /// What a browser player saw.
    Player(PlayerRecord),
    /// A Low-Latency HLS part read.
    Part(PartRecord),
    /// A pool transcoder reconciled.
    Pool(PoolRecord),
    /// An AI request.
    Ai(AiRecord),
    /// A live video-to-video job.
    AiLive(AiLiveRecord),
}

macro_rules! record_from {
    ($($variant:ident($t:ty)),+) => {$(
        impl From<$t> for Record {
            fn from(r: $t) -> Self {
                Record::$variant(r)
            }
        }
    )+};
}
record_from!(
    Segment(SegmentRecord),
    Check(CheckRecord),
    Quality(QualitySample),
    Ticket(TicketRecord),
    Redemption(RedemptionRecord),
    BenchSegment(BenchSegmentRecord),
    Chaos(ChaosRecord),
    Recovery(RecoveryRecord),
    Violation(ViolationRecord),
    Player(PlayerRecord),
    Part(PartRecord),
    Pool(PoolRecord),
    Ai(AiRecord),
    AiLive(AiLiveRecord)
);

/// Every record kind's wire tag, in the order `records.parquet` stacks them.
pub const RECORD_TYPES: [&str; 14] = [
    SegmentRecord::TYPE,
    CheckRecord::TYPE,
    QualitySample::TYPE,
    TicketRecord::TYPE,
    RedemptionRecord::TYPE,
    BenchSegmentRecord::TYPE,
    ChaosRecord::TYPE,
    RecoveryRecord::TYPE,
    ViolationRecord::TYPE,
    PlayerRecord::TYPE,
    PartRecord::TYPE,
    PoolRecord::TYPE,
    AiRecord::TYPE,
    AiLiveRecord::TYPE,
];

impl Record {
    /// The wire tag of this record's kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Segment(_) => SegmentRecord::TYPE,
            Record::Check(_) => CheckRecord::TYPE,
            Record::Quality(_) => QualitySample::TYPE,
            Record::Ticket(_) => TicketRecord::TYPE,
            Record::Redemption(_) => RedemptionRecord::TYPE,
            Record::BenchSegment(_) => BenchSegmentRecord::TYPE,
            Record::Chaos(_) => ChaosRecord::TYPE,
            Record::Recovery(_) => RecoveryRecord::TYPE,
            Record::Violation(_) => ViolationRecord::TYPE,
            Record::Player(_) => PlayerRecord::TYPE,
            Record::Part(_) => PartRecord::TYPE,
            Record::Pool(_) => PoolRecord::TYPE,
            Record::Ai(_) => AiRecord::TYPE,
            Record::AiLive(_) => AiLiveRecord::TYPE,
        }
    }

    /// Reads one journal line's record of kind `kind` at version `v` (the line's `type` and `v`).
    pub fn from_json(kind: &str, v: u32, text: &[u8]) -> Result<Record, RecordParseError> {
        fn typed<K: RecordKind>(text: &[u8], v: u32) -> Result<K, RecordParseError> {
            if v != K::VERSION {
                return Err(RecordParseError::UnknownVersion(K::TYPE.to_string(), v));
            }
            serde_json::from_slice(text)
                .map_err(|e| RecordParseError::Malformed(format!("{}: {e}", K::TYPE)))
        }
        Ok(match kind {
            SegmentRecord::TYPE => Record::Segment(typed(text, v)?),
            CheckRecord::TYPE => Record::Check(typed(text, v)?),
            QualitySample::TYPE => Record::Quality(typed(text, v)?),
            TicketRecord::TYPE => Record::Ticket(typed(text, v)?),
            RedemptionRecord::TYPE => Record::Redemption(typed(text, v)?),
            BenchSegmentRecord::TYPE => Record::BenchSegment(typed(text, v)?),
            ChaosRecord::TYPE => Record::Chaos(typed(text, v)?),
            RecoveryRecord::TYPE => Record::Recovery(typed(text, v)?),
            ViolationRecord::TYPE => Record::Violation(typed(text, v)?),
            PlayerRecord::TYPE => Record::Player(typed(text, v)?),
            PartRecord::TYPE => Record::Part(typed(text, v)?),
            PoolRecord::TYPE => Record::Pool(typed(text, v)?),
            AiRecord::TYPE => Record::Ai(typed(text, v)?),
            AiLiveRecord::TYPE => Record::AiLive(typed(text, v)?),
            other => return Err(RecordParseError::UnknownType(other.to_string())),
        })
    }

    /// Appends this record as one JSON line (`{"type":..,"v":..,fields}\n`) to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Record::Segment(r) => write_line(r, out),
            Record::Check(r) => write_line(r, out),
            Record::Quality(r) => write_line(r, out),
            Record::Ticket(r) => write_line(r, out),
            Record::Redemption(r) => write_line(r, out),
            Record::BenchSegment(r) => write_line(r, out),
            Record::Chaos(r) => write_line(r, out),
            Record::Recovery(r) => write_line(r, out),
            Record::Violation(r) => write_line(r, out),
            Record::Player(r) => write_line(r, out),
            Record::Part(r) => write_line(r, out),
            Record::Pool(r) => write_line(r, out),
            Record::Ai(r) => write_line(r, out),
            Record::AiLive(r) => write_line(r, out),
        }
    }
}

/// Why a journal line is not a record this build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordParseError {
    /// Not JSON, or not the fields of its kind.
    Malformed(String),
    /// A kind this build knows, at a version it does not.
    UnknownVersion(String, u32),
    /// A kind this build does not know.
    UnknownType(String),
}

/// Writes `{"type":TYPE,"v":VERSION,<the struct's fields>}\n`: the struct is serialized in place
/// and its opening brace replaced by the tag prefix, so no intermediate `Value` is built.
fn write_line<R: RecordKind>(record: &R, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let start = out.len();
    serde_json::to_writer(&mut *out, record)?;
    // Every record kind has at least one required field, so the object is never `{}`.
    debug_assert_eq!(out.get(start), Some(&b'{'));
    let prefix = format!("{{\"type\":\"{}\",\"v\":{},", R::TYPE, R::VERSION);
    out.splice(start..start + 1, prefix.into_bytes());
    out.push(b'\n');
    Ok(())
}

/// Every record kind's own schema, in [`RECORD_TYPES`] order: the order their columns enter
/// [`union_schema`].
pub fn kind_schemas() -> [Schema; RECORD_TYPES.len()] {
    [
        SegmentRecord::schema(),
        CheckRecord::schema(),
        QualitySample::schema(),
        TicketRecord::schema(),
        RedemptionRecord::schema(),
        BenchSegmentRecord::schema(),
        ChaosRecord::schema(),
        RecoveryRecord::schema(),
        ViolationRecord::schema(),
        PlayerRecord::schema(),
        PartRecord::schema(),
        PoolRecord::schema(),
        AiRecord::schema(),
        AiLiveRecord::schema(),
    ]
}

/// The schema of `records.parquet`: the union of every kind's columns, `type` and `v` first, then
/// each column in the order it first appears. Columns a kind lacks are null in its rows.
pub fn union_schema() -> Schema {
    let mut union = Schema::default();
    for schema in kind_schemas() {
        for (name, dtype) in schema.iter() {
            if !union.contains(name) {
                union.with_column(name.clone(), dtype.clone());
            }
        }
    }
    union
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation() -> ViolationRecord {
        ViolationRecord {
            t_ms: 1_795_309_323_000,
            workload: "steady".into(),
            stream: "s1".into(),
            rendition: Some("P360p30fps16x9".into()),
            rule: "HLS-TARGETDURATION-EXCEEDED".into(),
            severity: "must".into(),
            url: "https://cdn.example/s1/P360p30fps16x9.m3u8".into(),
            line: Some(15),
            detail: "segment 3: EXTINF 2.6 s rounds above EXT-X-TARGETDURATION 2 s".into(),
            occurrences: 1,
        }
    }

    #[test]
    fn a_violation_round_trips_through_its_journal_line() {
        let record = Record::from(violation());
        let mut line = Vec::new();
        record.write_json_line(&mut line).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert!(
            text.starts_with(r#"{"type":"violation","v":1,"t_ms":1795309323000,"#),
            "{text}"
        );
        let fields = text.split_once(",\"t_ms\"").unwrap().1;
        let back = Record::from_json("violation", 1, format!("{{\"t_ms\"{fields}").as_bytes());
        assert_eq!(back, Ok(record));
        let master = ViolationRecord {
            rendition: None,
            line: None,
            ..violation()
        };
        let mut line = Vec::new();
        Record::from(master).write_json_line(&mut line).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert!(
            !text.contains("rendition") && !text.contains("\"line\""),
            "{text}"
        );
        assert_eq!(
            Record::from_json("violation", 2, b"{}"),
            Err(RecordParseError::UnknownVersion("violation".into(), 2))
        );
    }

    #[test]
    fn records_parquet_holds_every_kind_s_columns() {
        let union = union_schema();
        for (kind, schema) in RECORD_TYPES.iter().zip(kind_schemas()) {
            for (name, dtype) in schema.iter() {
                assert_eq!(union.get(name), Some(dtype), "{kind}.{name}");
            }
        }
        let v = violation();
        assert_eq!(v.number("occurrences"), Some(1.0));
        assert_eq!(v.number("line"), Some(15.0));
        assert_eq!(v.text("rule"), Some("HLS-TARGETDURATION-EXCEEDED"));
        let mut columns = ViolationColumns::default();
        columns.push(&v);
        let df = columns.finish().unwrap();
        assert_eq!(df.height(), 1);
        assert_eq!(df.schema().as_ref(), &ViolationRecord::schema());
    }
}
