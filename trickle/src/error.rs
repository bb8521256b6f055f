//! The one error type of the Trickle client and server.

/// What can go wrong publishing or subscribing.
#[derive(Debug, thiserror::Error)]
pub enum TrickleError {
    /// The server answered with an unexpected status (the code, then up to 200 characters of
    /// the body, which says why).
    #[error("trickle server answered {0}: {1}")]
    Http(u16, String),
    /// The connection failed or broke mid-body.
    #[error("trickle transport: {0}")]
    Transport(String),
    /// A segment exceeded a byte limit (ours when reading, the server's when publishing; 0 when
    /// the server did not say).
    #[error("trickle segment larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Nothing arrived in time.
    #[error("trickle timed out")]
    Timeout,
    /// The channel (or the segment's request) has ended; nothing more can be written.
    #[error("trickle channel closed: {0}")]
    Closed(String),
}

impl TrickleError {
    pub(crate) fn transport(err: impl std::fmt::Display) -> Self {
        // reqwest's Display hides the cause chain ("error sending request"); keep the cause.
        TrickleError::Transport(err.to_string())
    }
}

pub(crate) fn transport_of(err: reqwest::Error) -> TrickleError {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if err.is_timeout() {
        return TrickleError::Timeout;
    }
    TrickleError::transport(text)
}
