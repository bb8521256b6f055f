//! The ladder a segment asks for, read from its `SegData` with the shared wire conversion
//! ([`reference_transcoder::wire`]), so the orchestrator refuses a bad profile with its name and
//! field; and the other way, a ladder's wire profiles, for the node's own tests and benches that
//! play the broadcaster with [`protocol::client::segment_data`].

use protocol::net::VideoProfile;
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

/// The wire form of `ladder`, as [`protocol::client::segment_data`] asks for it.
pub fn wire_ladder(ladder: &[Profile]) -> Vec<VideoProfile> {
    ladder.iter().map(to_wire).collect()
}

#[cfg(test)]
mod tests {
    /// The node's tests and benches play the broadcaster with `protocol::client::segment_data`,
    /// whose segments ask for these capabilities.
    #[test]
    fn the_node_offers_every_capability_the_wire_client_requires() {
        assert!(
            protocol::client::required_capabilities()
                .compatible_with(&crate::node::offered_capabilities())
        );
    }
}
