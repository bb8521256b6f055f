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

#[cfg(test)]
mod tests {
    use super::*;

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
