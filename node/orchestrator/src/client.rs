//! The broadcaster's side of the orchestrator wire protocol, re-exported from
//! [`protocol::client`] where it now lives (the probes must reach it without linking the node).
//!
//! Design: only [`segment_data`] stays a function of its own here, because the node speaks in
//! `reference_transcoder::Profile` ladders and the protocol crate takes wire `VideoProfile`s; the
//! conversion is the node's [`crate::profiles`]. Every other name keeps its old path, so existing
//! callers compile unchanged.

use protocol::net::{OrchestratorInfo, SegData};
use protocol::sig::NodeKey;
use reference_transcoder::Profile;

pub use protocol::client::{
    ClientError, ClientLimits, ConnectStage, GRPC_CONNECT_TIMEOUT, OrchestratorClient,
    SegmentReply, SegmentRequest, check_reachable, grpc_channel, grpc_channel_with, http_client,
    http_client_with, orchestrator_address, required_capabilities,
};

use crate::profiles;

/// Builds and signs the `Livepeer-Segment` message for `body` under `info`'s auth token, asking
/// for `ladder` (see [`protocol::client::segment_data`]).
pub fn segment_data(
    key: &NodeKey,
    info: &OrchestratorInfo,
    manifest_id: &[u8],
    seq: i64,
    body: &[u8],
    duration_ms: i32,
    ladder: &[Profile],
) -> Result<SegData, ClientError> {
    debug_assert!(required_capabilities().compatible_with(&crate::node::offered_capabilities()));
    let wire: Vec<_> = ladder.iter().map(profiles::to_wire).collect();
    protocol::client::segment_data(key, info, manifest_id, seq, body, duration_ms, &wire)
}
