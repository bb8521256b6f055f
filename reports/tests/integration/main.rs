//! Integration tests of the `reports` crate, in one test binary (each links Polars): records
//! journals aggregated and rendered into the report files, the leaderboard records, the pool, HLS
//! conformance, viewer QoE and AI sections, and the HTML report in a real Chromium.

mod common;

mod ai_leaderboard;
mod ai_live;
mod ai_requests;
mod hls_conformance;
mod report_browser;
mod run_reports;
mod transcoder_pool;
mod viewer_qoe;
