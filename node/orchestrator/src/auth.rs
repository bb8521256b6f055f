//! Session auth tokens: what `GetOrchestrator` hands out and every segment must carry back.
//!
//! Design: tokens are stateless — `token = HMAC-SHA256(node secret, session_id ‖ expiration)` —
//! so the node stores nothing per token and a forged session id or a stretched expiration fails
//! the MAC. A session id names the broadcaster's session; balances and transcoding sessions are
//! keyed by it, as go-livepeer keys them by the token's session id.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use protocol::net::AuthToken;
use rand::Rng;
use sha2::Sha256;

/// Why a segment's auth token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `SegData.auth_token` absent.
    #[error("missing auth token")]
    Missing,
    /// The MAC does not match: not issued by this node.
    #[error("invalid auth token")]
    Invalid,
    /// Issued here but past its expiration.
    #[error("expired auth token (expired at {expiration}, now {now})")]
    Expired {
        /// Token expiration, unix seconds.
        expiration: i64,
        /// Node time, unix seconds.
        now: i64,
    },
}

/// Issues and checks tokens.
#[derive(Debug, Clone)]
pub struct AuthTokens {
    secret: [u8; 32],
    validity: Duration,
}

/// Seconds since the unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl AuthTokens {
    /// Tokens valid for `validity`, under a fresh random secret.
    pub fn new(validity: Duration) -> Self {
        Self {
            secret: rand::rng().random(),
            validity,
        }
    }

    /// A fresh random session id.
    pub fn new_session_id() -> String {
        hex::encode(rand::rng().random::<[u8; 12]>())
    }

    /// The unguessable key naming `session_id`'s renditions in their URLs
    /// (`/stream/<key>/<profile>/<seq>.ts`): 128 bits of an HMAC under the node's secret, so only
    /// whoever got the URL in a `TranscodeResult` can fetch them, and a session id seen elsewhere
    /// (it travels in every segment header) does not lead to them.
    pub fn rendition_key(&self, session_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(b"renditions\0");
        mac.update(session_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A token for `session_id` expiring `validity` from now.
    pub fn issue(&self, session_id: &str) -> AuthToken {
        let expiration = unix_now() + self.validity.as_secs() as i64;
        AuthToken {
            token: self.mac(session_id, expiration),
            session_id: session_id.to_string(),
            expiration,
        }
    }

    /// Checks `token` and returns its session id.
    pub fn verify<'a>(&self, token: Option<&'a AuthToken>) -> Result<&'a str, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        // verify_slice compares in constant time.
        self.hmac(&token.session_id, token.expiration)
            .verify_slice(&token.token)
            .map_err(|_| AuthError::Invalid)?;
        let now = unix_now();
        if token.expiration <= now {
            return Err(AuthError::Expired {
                expiration: token.expiration,
                now,
            });
        }
        Ok(&token.session_id)
    }

    fn hmac(&self, session_id: &str, expiration: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(session_id.as_bytes());
        mac.update(&[0]);
        mac.update(&expiration.to_be_bytes());
        mac
    }

    fn mac(&self, session_id: &str, expiration: i64) -> Vec<u8> {
        self.hmac(session_id, expiration)
            .finalize()
            .into_bytes()
            .to_vec()
    }
}

/// A fresh random secret: 128 bits from the thread-local CSPRNG, hex (for a transcoder secret or
/// a bearer token made on the spot).
pub fn random_secret() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// Whether two secrets are equal, in a time that says nothing about how much of `given` was
/// right: both sides are hashed to SHA-256 (so their lengths do not show either) and the
/// digests compared byte by byte without an early exit.
pub fn secrets_equal(expected: &[u8], given: &[u8]) -> bool {
    use sha2::Digest as _;
    let expected = Sha256::digest(expected);
    let given = Sha256::digest(given);
    let difference = expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_value_only() {
        assert!(secrets_equal(b"s3cret", b"s3cret"));
        assert!(!secrets_equal(b"s3cret", b"s3creT"));
        assert!(!secrets_equal(b"s3cret", b"s3cre"));
        assert!(!secrets_equal(b"s3cret", b""));
        assert!(secrets_equal(b"", b""));
    }

    #[test]
    fn random_secrets_are_128_bit_hex_and_fresh() {
        let a = random_secret();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, random_secret());
    }

    #[test]
    fn rendition_keys_depend_on_session_and_node() {
        let tokens = AuthTokens::new(Duration::from_secs(60));
        let key = tokens.rendition_key("abc");
        assert_eq!(key.len(), 32);
        assert_eq!(key, tokens.rendition_key("abc"));
        assert_ne!(key, tokens.rendition_key("abd"));
        assert!(!key.contains("abc"));
        let other = AuthTokens::new(Duration::from_secs(60));
        assert_ne!(key, other.rendition_key("abc"));
    }

    #[test]
    fn issued_tokens_verify_and_tampering_fails() {
        let tokens = AuthTokens::new(Duration::from_secs(1800));
        let token = tokens.issue("abc");
        assert_eq!(tokens.verify(Some(&token)).unwrap(), "abc");
        let mut forged = token.clone();
        forged.session_id = "abd".into();
        assert_eq!(tokens.verify(Some(&forged)), Err(AuthError::Invalid));
        let mut stretched = token.clone();
        stretched.expiration += 10;
        assert_eq!(tokens.verify(Some(&stretched)), Err(AuthError::Invalid));
        assert_eq!(tokens.verify(None), Err(AuthError::Missing));
        let other = AuthTokens::new(Duration::from_secs(1800));
        assert_eq!(other.verify(Some(&token)), Err(AuthError::Invalid));
    }

    #[test]
    fn zero_validity_is_expired_at_once() {
        let tokens = AuthTokens::new(Duration::ZERO);
        let token = tokens.issue("s");
        assert!(matches!(
            tokens.verify(Some(&token)),
            Err(AuthError::Expired { .. })
        ));
    }
}
