//! Turns a journal into one Polars `DataFrame` per record kind, and writes `records.parquet`.
//!
//! Design decision: records go straight from the JSON line into per-column builders (no `Vec` of
//! structs, no JSON-to-Arrow inference), so memory stays near the size of the columns even for a
//! 24-hour soak. `records.parquet` is **one file with a `type` column**: the union of every kind's
//! columns (same name ⇒ same type, see `observation::record::union_schema`), nulls where a kind lacks a column.
//! One file is one artifact for CI to upload, and `pl.read_parquet(..).filter(type == "segment")`
//! gives any kind back.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::error::ReportError;
use crate::journal::{JournalReader, JournalStats};
use observation::record::*;

/// Every record kind of a run as a table.
#[derive(Debug, Clone)]
pub struct RecordFrames {
    /// `segment` records.
    pub segments: DataFrame,
    /// `check` records.
    pub checks: DataFrame,
    /// `quality` records.
    pub quality: DataFrame,
    /// `ticket` records.
    pub tickets: DataFrame,
    /// `redemption` records.
    pub redemptions: DataFrame,
    /// `bench_segment` records.
    pub bench: DataFrame,
    /// `chaos` records: the events a run carried out.
    pub chaos: DataFrame,
    /// `recovery` records: what each chaos event cost.
    pub recovery: DataFrame,
    /// `violation` records: HLS conformance rules broken.
    pub violations: DataFrame,
    /// `player` records: what each browser player saw.
    pub players: DataFrame,
    /// `part` records: Low-Latency HLS parts read.
    pub parts: DataFrame,
    /// `pool` records: each pool transcoder reconciled.
    pub pool: DataFrame,
    /// `ai` records: each request of the AI probe.
    pub ai: DataFrame,
    /// `ai_live` records: each live video-to-video job of the AI probe.
    pub ai_live: DataFrame,
}

#[derive(Default)]
struct Builders {
    segments: SegmentColumns,
    checks: CheckColumns,
    quality: QualityColumns,
    tickets: TicketColumns,
    redemptions: RedemptionColumns,
    bench: BenchSegmentColumns,
    chaos: ChaosColumns,
    recovery: RecoveryColumns,
    violations: ViolationColumns,
    players: PlayerColumns,
    parts: PartColumns,
    pool: PoolColumns,
    ai: AiColumns,
    ai_live: AiLiveColumns,
}

impl Builders {
    fn push(&mut self, record: &Record) {
        match record {
            Record::Segment(r) => self.segments.push(r),
            Record::Check(r) => self.checks.push(r),
            Record::Quality(r) => self.quality.push(r),
            Record::Ticket(r) => self.tickets.push(r),
            Record::Redemption(r) => self.redemptions.push(r),
            Record::BenchSegment(r) => self.bench.push(r),
            Record::Chaos(r) => self.chaos.push(r),
            Record::Recovery(r) => self.recovery.push(r),
            Record::Violation(r) => self.violations.push(r),
            Record::Player(r) => self.players.push(r),
            Record::Part(r) => self.parts.push(r),
            Record::Pool(r) => self.pool.push(r),
            Record::Ai(r) => self.ai.push(r),
            Record::AiLive(r) => self.ai_live.push(r),
        }
    }

    fn finish(self) -> Result<RecordFrames, ReportError> {
        Ok(RecordFrames {
            segments: self
                .segments
                .finish()
                .map_err(ReportError::polars("segment table"))?,
            checks: self
                .checks
                .finish()
                .map_err(ReportError::polars("check table"))?,
            quality: self
                .quality
                .finish()
                .map_err(ReportError::polars("quality table"))?,
            tickets: self
                .tickets
                .finish()
                .map_err(ReportError::polars("ticket table"))?,
            redemptions: self
                .redemptions
                .finish()
                .map_err(ReportError::polars("redemption table"))?,
            bench: self
                .bench
                .finish()
                .map_err(ReportError::polars("bench table"))?,
            chaos: self
                .chaos
                .finish()
                .map_err(ReportError::polars("chaos table"))?,
            recovery: self
                .recovery
                .finish()
                .map_err(ReportError::polars("recovery table"))?,
            violations: self
                .violations
                .finish()
                .map_err(ReportError::polars("violation table"))?,
            players: self
                .players
                .finish()
                .map_err(ReportError::polars("player table"))?,
            parts: self
                .parts
                .finish()
                .map_err(ReportError::polars("part table"))?,
            pool: self
                .pool
                .finish()
                .map_err(ReportError::polars("pool table"))?,
            ai: self.ai.finish().map_err(ReportError::polars("ai table"))?,
            ai_live: self
                .ai_live
                .finish()
                .map_err(ReportError::polars("ai_live table"))?,
        })
    }
}

impl RecordFrames {
    /// Tables with no rows.
    pub fn empty() -> Result<Self, ReportError> {
        Builders::default().finish()
    }

    /// Builds the tables from records held in memory.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Result<Self, ReportError> {
        let mut b = Builders::default();
        for r in records {
            b.push(r);
        }
        b.finish()
    }

    /// Reads a journal file into tables, returning what the reader skipped.
    pub fn read_journal(path: &Path) -> Result<(Self, JournalStats), ReportError> {
        let mut reader = JournalReader::open(path)?;
        let mut b = Builders::default();
        while let Some(record) = reader.next_record()? {
            b.push(&record);
        }
        Ok((b.finish()?, reader.into_stats()))
    }

    /// Total rows over all kinds.
    pub fn total_rows(&self) -> usize {
        self.tables().iter().map(|(_, df)| df.height()).sum()
    }

    /// `(type, table)` for every kind, in `RECORD_TYPES` order.
    pub fn tables(&self) -> [(&'static str, &DataFrame); RECORD_TYPES.len()] {
        [
            (SegmentRecord::TYPE, &self.segments),
            (CheckRecord::TYPE, &self.checks),
            (QualitySample::TYPE, &self.quality),
            (TicketRecord::TYPE, &self.tickets),
            (RedemptionRecord::TYPE, &self.redemptions),
            (BenchSegmentRecord::TYPE, &self.bench),
            (ChaosRecord::TYPE, &self.chaos),
            (RecoveryRecord::TYPE, &self.recovery),
            (ViolationRecord::TYPE, &self.violations),
            (PlayerRecord::TYPE, &self.players),
            (PartRecord::TYPE, &self.parts),
            (PoolRecord::TYPE, &self.pool),
            (AiRecord::TYPE, &self.ai),
            (AiLiveRecord::TYPE, &self.ai_live),
        ]
    }

    /// One kind's table widened to the union schema: the columns it lacks are all-null columns
    /// (constant columns in Polars, so they cost no memory until a slice of them is written).
    fn aligned(kind: &str, df: &DataFrame, schema: &Schema) -> Result<DataFrame, ReportError> {
        let height = df.height();
        let columns = schema
            .iter()
            .map(|(name, dtype)| match df.column(name) {
                Ok(c) => c.clone(),
                Err(_) => Column::full_null(name.clone(), height, dtype),
            })
            .collect::<Vec<_>>();
        DataFrame::new(height, columns).map_err(ReportError::polars(format!(
            "align {kind} to the union schema"
        )))
    }

    /// Stacks every kind into the union table of `records.parquet` (in memory; `write_parquet`
    /// streams instead).
    pub fn union(&self) -> Result<DataFrame, ReportError> {
        let schema = union_schema();
        let mut out = DataFrame::empty_with_schema(&schema);
        for (kind, df) in self.tables() {
            if df.height() == 0 {
                continue;
            }
            out.vstack_mut_owned(Self::aligned(kind, df, &schema)?)
                .map_err(ReportError::polars(format!("stack {kind} rows")))?;
        }
        Ok(out)
    }

    /// Writes the union table to `path` as Parquet (zstd), one kind after the other in row groups
    /// of at most 256 Ki rows, so only one row group is ever materialized. Returns the row count.
    pub fn write_parquet(&self, path: &Path) -> Result<usize, ReportError> {
        const ROW_GROUP: usize = 256 * 1024;
        let schema = union_schema();
        let file = File::create(path).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut writer = ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .batched(&schema)
            .map_err(ReportError::polars("open records.parquet"))?;
        let mut rows = 0;
        for (kind, df) in self.tables() {
            let aligned = Self::aligned(kind, df, &schema)?;
            let mut offset = 0;
            while offset < aligned.height() {
                let mut part = aligned.slice(offset as i64, ROW_GROUP);
                part.rechunk_mut();
                writer
                    .write_batch(&part)
                    .map_err(ReportError::polars(format!(
                        "write {kind} rows to records.parquet"
                    )))?;
                offset += part.height();
                rows += part.height();
            }
        }
        writer
            .finish()
            .map_err(ReportError::polars("finish records.parquet"))?;
        Ok(rows)
    }
}
