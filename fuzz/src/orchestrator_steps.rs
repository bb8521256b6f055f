//! The orchestrator's own steps on a decoded `Livepeer-Segment` (after `segment_header`'s
//! protocol-level ones), in `Node::check_headers`' order: capabilities against what the node
//! offers, the requested profiles (`profiles::requested`, the wire profiles turned into encoder
//! settings), and the auth token.

use std::time::Duration;

use node_orchestrator::auth::AuthTokens;
use node_orchestrator::node::offered_capabilities;
use node_orchestrator::profiles;
use protocol::capabilities::CapabilitySet;
use protocol::net::SegData;

/// Runs the steps on `seg`; panics are the findings.
pub fn segment(seg: &SegData) {
    if let Some(caps) = &seg.capabilities {
        let _ = CapabilitySet::from(caps).compatible_with(&offered_capabilities());
    }
    if let Ok(requested) = profiles::requested(seg) {
        assert!(
            (1..=16).contains(&requested.len()),
            "requested() returned {} profiles",
            requested.len()
        );
    }
    let tokens = AuthTokens::new(Duration::from_secs(600));
    if let Some(token) = &seg.auth_token {
        assert!(
            tokens.verify(Some(token)).is_err(),
            "a stranger's token verified"
        );
    }
    let issued = tokens.issue("session");
    assert_eq!(tokens.verify(Some(&issued)).ok(), Some("session"));
}
