//! The ladder a segment asks for, read from its `SegData` with the shared wire conversion
//! ([`reference_transcoder::wire`]), so the orchestrator refuses a bad profile with its name and
//! field; and the other way, a signed `SegData` asking for a ladder of profiles, for the node's
//! own tests and benches that play the broadcaster.

use protocol::client::ClientError;
use protocol::net::{OrchestratorInfo, SegData};
use protocol::sig::NodeKey;
use reference_transcoder::Profile;
pub use reference_transcoder::wire::{WireProfileError as ProfileError, from_wire, to_wire};

/// The profiles a segment asks for: `fullProfiles3`, else the older lists (the same choice the
/// segment signature was checked over).
pub fn requested(seg: &protocol::net::SegData) -> Result<Vec<Profile>, ProfileError> {
    let list = protocol::sig::segment_profiles(seg);
    if list.is_empty() {
        return Err(ProfileError {
            name: String::new(),
            field: "fullProfiles3",
            reason: "is empty".into(),
        });
    }
    if list.len() > 16 {
        return Err(ProfileError {
            name: String::new(),
            field: "fullProfiles3",
            reason: format!("has {} profiles, at most 16 are served", list.len()),
        });
    }
    list.iter().map(from_wire).collect()
}

/// Builds and signs the `Livepeer-Segment` message for `body` under `info`'s auth token, asking
/// for `ladder` (see [`protocol::client::segment_data`], which takes wire profiles).
pub fn segment_data(
    key: &NodeKey,
    info: &OrchestratorInfo,
    manifest_id: &[u8],
    seq: i64,
    body: &[u8],
    duration_ms: i32,
    ladder: &[Profile],
) -> Result<SegData, ClientError> {
    debug_assert!(
        protocol::client::required_capabilities()
            .compatible_with(&crate::node::offered_capabilities())
    );
    let wire: Vec<_> = ladder.iter().map(to_wire).collect();
    protocol::client::segment_data(key, info, manifest_id, seq, body, duration_ms, &wire)
}
