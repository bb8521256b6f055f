//! Integration tests of the orchestrator and transcoder nodes with real parts: TLS on loopback
//! ports picked at run time, FFmpeg transcoding, ffprobe as an independent pixel counter and a
//! real anvil chain for payments.

mod bad_input;
mod chain_chaos;
mod common;
mod faults;
mod go_wire;
mod hostile_node;
mod hostile_payments;
mod large_bodies;
mod payments;
mod pool;
mod rejections;
mod remote;
mod segment_uris;
mod shared_session;
mod transcoder_failover;
mod transcoder_faults;
mod wire_inputs;
