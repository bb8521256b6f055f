//! The ladder a segment asks for, read from its `SegData` with the shared wire conversion
//! ([`reference_transcoder::wire`]), so the orchestrator refuses a bad profile with its name and
//! field.

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
