//! `segment_header`: a `Livepeer-Segment` header value through `protocol::headers::decode_segment`
//! and what an orchestrator derives from the decoded `SegData` before reading a body: the
//! signature message and check (`sig::verify_segment`, on-chain against the recovered signer and
//! off-chain), the capability set, and the profile list the signature covers.
//! `node_orchestrator`'s own steps (`profiles::requested`, the auth token) are in
//! `orchestrator_steps.rs`, run by the fuzz target and the orchestrator's proptests.
//!
//! Input: when the first byte's low bit is set, the rest is a protobuf `SegData` that is
//! base64-encoded into the header (so the fuzzer explores the message); otherwise the rest is
//! the header text itself (invalid UTF-8 replaced, as a header value could not carry it).

use protocol::Address;
use protocol::capabilities::CapabilitySet;
use protocol::headers;
use protocol::net::SegData;
use protocol::sig::{self, SigPolicy};

/// The header value for `data` (see the module docs).
pub fn header_value(data: &[u8]) -> String {
    match data.split_first() {
        Some((flags, rest)) if flags & 1 == 1 => base64(rest),
        Some((_, rest)) => String::from_utf8_lossy(rest).into_owned(),
        None => String::new(),
    }
}

/// Standard base64, as the headers carry protobuf.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Feeds one input; returns the decoded segment for the orchestrator's own steps.
pub fn run(data: &[u8]) -> Option<SegData> {
    let value = header_value(data);
    let seg = headers::decode_segment(&value).ok()?;
    // Re-encoding what was decoded decodes to the same message.
    let again = headers::decode_segment(&headers::encode_segment(&seg)).expect("re-decode");
    assert_eq!(again, seg, "encode_segment/decode_segment round trip");
    sig::verify_segment(SigPolicy::OffChain, Address::ZERO, &seg).expect("off-chain accepts");
    if let Ok(message) = sig::segment_message(&seg) {
        let ours = sig::recover_personal(message.as_slice(), &seg.sig);
        if let Ok(parsed) = sig::parse_strict(&seg.sig) {
            // protocol's own k256 recovery (the orchestrator's hot path) agrees with alloy's.
            let digest = alloy::primitives::eip191_hash_message(message.as_slice());
            let theirs = parsed.recover_address_from_prehash(&digest);
            assert_eq!(
                ours.as_ref().ok(),
                theirs.as_ref().ok(),
                "signer recovered by protocol::sig ({ours:?}) and by alloy ({theirs:?})"
            );
        }
        // Whoever signed it, the check against that signer passes.
        if let Ok(signer) = ours {
            sig::verify_segment(SigPolicy::OnChain, signer, &seg)
                .expect("a segment verifies against its recovered signer");
        }
    }
    let _ = sig::verify_segment(SigPolicy::OnChain, Address::repeat_byte(0x0b), &seg);
    if let Some(caps) = &seg.capabilities {
        let set = CapabilitySet::from(caps);
        let _ = set.compatible_with(&set);
        let _ = set.to_message();
    }
    for profile in sig::segment_profiles(&seg) {
        let _ = sig::wire_profile_name(profile);
    }
    Some(seg)
}
