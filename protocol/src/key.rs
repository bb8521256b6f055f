//! Where a signing key comes from: an environment variable or a file holding its hex text.
//!
//! Design: configs and scenarios name the place, never the key, so a config can be shared and
//! logged; this module is the one reader of such places for every signer (the broadcaster node
//! and the tester's paying account alike). Its errors name the place and never echo the value.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;

/// Where a hex private key is read from when a node or a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable holding the hex key.
    Env(String),
    /// A file holding the hex key on one line.
    File(PathBuf),
}

/// A key that could not be loaded; the message names where it was looked for, not its value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The environment variable is absent or not Unicode.
    #[error("environment variable {0} is not set")]
    UnsetVariable(String),
    /// The key file could not be read.
    #[error("cannot read key file {}: {source}", path.display())]
    UnreadableFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The text is not a private key.
    #[error("the key is not a 32-byte hex private key")]
    NotAKey,
}

/// Loads the signer whose hex key `source` holds (surrounding whitespace ignored).
pub fn load_signer(source: &KeySource) -> Result<PrivateKeySigner, KeyError> {
    let hex = match source {
        KeySource::Env(var) => {
            std::env::var(var).map_err(|_| KeyError::UnsetVariable(var.clone()))?
        }
        KeySource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| KeyError::UnreadableFile {
                path: path.clone(),
                source,
            })?
        }
    };
    hex.trim().parse().map_err(|_| KeyError::NotAKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_load_from_a_file_and_errors_never_show_the_text() {
        let path = std::env::temp_dir().join(format!("lpt-key-test-{}.hex", std::process::id()));
        let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        std::fs::write(&path, format!("{key}\n")).unwrap();
        let signer = load_signer(&KeySource::File(path.clone())).unwrap();
        assert_eq!(
            signer.address().to_string(),
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        std::fs::write(&path, "not-a-key-secret-text").unwrap();
        let err = load_signer(&KeySource::File(path.clone()))
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(err, "the key is not a 32-byte hex private key");
        let err = load_signer(&KeySource::File(path.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("cannot read key file {}", path.display())),
            "{err}"
        );
        let err = load_signer(&KeySource::Env("LPT_PROTOCOL_TEST_UNSET_KEY".into()))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable LPT_PROTOCOL_TEST_UNSET_KEY is not set"
        );
    }
}
