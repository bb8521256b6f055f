//! lpt's one observation model, below `probes`, `tester` and `reports`: what a run records and
//! what it measures, defined once.
//!
//! Design:
//! - [`record`]: the journal's record kinds (segment, check, quality, ticket, redemption, bench
//!   segment), each one struct with its Polars schema and column builder. A probe observation
//!   becomes exactly one of these; the tester appends it to `records.jsonl` and `reports` reads
//!   it back into Polars.
//! - [`metric`]: the metric table (name, type, unit, which direction is better, tags, and the
//!   journal column that holds the samples when there is one). The tester's live registry
//!   (HDR histograms, thresholds, progress), the Polars side (`lpt compare`) and `summary.json`
//!   all read it.
//! - [`sample`]: the mapping from a record to its live metric samples, read through the table,
//!   so adding a journal-backed metric is one table row and nothing else.
//! - [`summary`]: the one writer of `summary.json`, atomic, under the checked-in schema
//!   `observation/schema/summary.schema.json`.
//!
//! Metrics that no record column holds (publisher lag, stalls, the direct executor's per-segment
//! timings, payment totals) are still in the table, and their probes add them by name.

pub mod metric;
pub mod record;
pub mod sample;
pub mod summary;
