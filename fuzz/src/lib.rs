//! The harnesses of lpt's fuzz targets: one module per target, each with a `run(&[u8])` that the
//! libFuzzer target in `fuzz_targets/` calls and that the parsers' own proptests (in the stable
//! test suite) include with `#[path]` and call on the committed corpus and on generated inputs.
//! See README.md.

pub mod common;

pub mod broadcaster;
pub mod flv_tags;
pub mod m3u8;
pub mod multipart_results;
pub mod orchestrator_steps;
pub mod payment_header;
pub mod rtmp_chunks;
pub mod segment_header;
pub mod sps;
pub mod ts_demux;

#[cfg(feature = "scenario")]
pub mod scenario_toml;
