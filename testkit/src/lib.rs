//! Fixtures shared by the workspace's tests and benches, so that no test file carries its own
//! copy of one.
//!
//! Each fixture starts real parts on loopback ports it allocated itself and cleans up on drop,
//! so tests that use them run in parallel. Failures panic with what went wrong: these are test
//! helpers, and a panic is how a test reports a broken environment.
//!
//! - [`bench`]: the benchmarks' full and check modes, CPU and memory measures, goals against a
//!   peer.
//! - [`ports`]: free loopback ports and waiting, with a deadline, for a port or a condition.
//! - [`schema`]: a JSON document a run wrote, checked against a checked-in JSON schema.
//! - [`nginx`]: nginx with its RTMP module packaging HLS, a real third-party RTMP-in/HLS-out peer.
//! - [`llhls`]: a real Low-Latency HLS server (gohlslib's muxer, `ci/llhls`) fed over nginx-rtmp.
//! - [`ffmpeg`]: the `ffmpeg` and `ffprobe` tools, run quietly, with their failures asserted.
//! - [`vmaf`]: Netflix's `vmaf` tool of the libvmaf the caller links, to check scores against.
//! - [`golivepeer`]: `go test` on go-livepeer's own packages in `interop/golivepeer`.
//! - [`chain`] (feature `chain`): anvil with the contracts deployed and a funded broadcaster,
//!   started through `protocol`'s own chain code.
//! - [`orchestrator`] (feature `chain`): a fake orchestrator's discovery, the `Orchestrator` gRPC
//!   service answering with the price and ticket params a test gives it.
//! - [`tickets`] (feature `chain`): winning tickets made by hand, committed to a known rand.
//! - [`procfs`]: another process's resident memory, from `/proc`.
//! - [`publisher`]: `ffmpeg` publishing test video and audio over RTMP in real time.
//! - [`scenario`]: pieces of `lpt` scenario files, such as an nginx target.

pub mod bench;
#[cfg(feature = "chain")]
pub mod chain;
pub mod ffmpeg;
pub mod golivepeer;
pub mod llhls;
pub mod lpt_run;
pub mod nginx;
#[cfg(feature = "chain")]
pub mod orchestrator;
pub mod ports;
pub mod procfs;
pub mod publisher;
pub mod scenario;
pub mod schema;
pub mod test_process;
#[cfg(feature = "chain")]
pub mod tickets;
pub mod vmaf;
