//! The AI probe: what a user of Livepeer's AI network (ai-runner's API, served by gateways and
//! workers) sees, measured and checked.
//!
//! - [`api`]: the API's request and response types, kept equal to the vendored OpenAPI document;
//! - [`client`]: one request sent and its answer read, bounded (deadline, body and media sizes)
//!   and timed (upload, inference, download), every failure with a stable reason code;
//! - [`validate`]: the answer checked against what was asked (count, size, seed, determinism,
//!   timestamps, video frames) and summarised for records;
//! - [`load`]: a plan (rate or concurrency sweep) run against a target, one
//!   [`AiObservation`] per request;
//! - [`live`]: a live video-to-video job fed a stamped source in real time over Trickle
//!   channels the probe hosts, its output's latency, frame rate and stalls measured.

pub mod api;
pub mod client;
pub mod live;
pub mod load;
pub mod validate;

pub use api::{Pipeline, SCHEMA_FIELDS};
pub use client::{
    AiAnswer, AiError, AiFailure, AiLimits, AiOutcome, AiRequest, AiResponse, AiTarget, AiTimings,
    http_client, reason, send_request,
};
pub use live::{LiveObservation, LivePlan, PlayerModel, run_live};
pub use load::{AiLoad, AiObservation, AiPlan, run_plan, run_plan_with};
pub use validate::{AiExpect, Expectation, Validated, validate};
