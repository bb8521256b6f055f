//! Trickle: the transport Livepeer's live AI video uses between gateway, orchestrator and
//! runner. A channel is a sequence of segments; a publisher POSTs segment `seq` to
//! `{channel}/{seq}` as one streamed body, subscribers GET the same URL and receive the bytes
//! while they are still being published. This crate has a memory-bounded server for tests and
//! a publisher and subscriber that speak to it, to go-livepeer's server, and to ai-runner.
//!
//! Wire conventions followed (from go-livepeer's `trickle` package and ai-runner's client):
//! - `Lp-Trickle-Seq` names the seq a GET served; `-1` asks for the next segment to be
//!   written, `-2` for the one being written now;
//! - 404: unknown channel; 470: the channel exists but not that seq (too old, or too far
//!   ahead), with `Lp-Trickle-Latest` giving the write head;
//! - the end of a channel (publisher's DELETE on the channel URL) is a 200 with the header
//!   `Lp-Trickle-Closed` and no body.

mod client;
mod error;
mod server;

pub use client::{Publisher, SegmentReader, SegmentWriter, Subscriber};
pub use error::TrickleError;
pub use server::{ServerLimits, TrickleServer};

/// The response header carrying the seq a GET served.
pub const SEQ_HEADER: &str = "Lp-Trickle-Seq";
/// The response header carrying the channel's write head (next seq to be written).
pub const LATEST_HEADER: &str = "Lp-Trickle-Latest";
/// The response header marking a channel that has ended.
pub const CLOSED_HEADER: &str = "Lp-Trickle-Closed";
/// The response header our server adds to a 413 so the publisher can report the limit.
pub const LIMIT_HEADER: &str = "Lp-Trickle-Limit";
/// go-livepeer's status for "the channel exists but that segment doesn't".
pub const STATUS_NOT_RETAINED: u16 = 470;
