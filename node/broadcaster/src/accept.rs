//! Accepting connections up to a cap, for the RTMP and HTTP servers alike.
//!
//! A public server must not let one peer open connections until the node runs out of memory
//! or file descriptors: each accepted connection holds a slot of a fixed pool for its whole life.
//! A connection over the cap is closed at once, after its server's goodbye bytes (if any), with a
//! logged reason and an ingest-error count, so an operator sees the cap being hit. A failed
//! accept (out of descriptors, say) pauses the loop briefly instead of spinning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::records::RecordBook;

/// Pause after a failed accept so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener that hands out at most `max` connections at a time.
pub(crate) struct CappedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    /// The protocol, for logs (`RTMP`, `HTTP`).
    protocol: &'static str,
    /// The config key that sets the cap, for logs.
    cap_key: &'static str,
    /// The ingest-error kind counted when the cap refuses a connection.
    refused_kind: &'static str,
    /// Written (best effort) to a refused connection before it is closed.
    goodbye: &'static [u8],
}

/// An accepted connection and the slot it holds until dropped.
pub(crate) struct Accepted {
    pub socket: TcpStream,
    pub peer: SocketAddr,
    pub slot: OwnedSemaphorePermit,
}

impl CappedListener {
    pub(crate) fn new(
        listener: TcpListener,
        max: usize,
        protocol: &'static str,
        cap_key: &'static str,
        refused_kind: &'static str,
        goodbye: &'static [u8],
    ) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            max,
            protocol,
            cap_key,
            refused_kind,
            goodbye,
        }
    }

    /// The next connection within the cap, or `None` once `shutdown` changes.
    pub(crate) async fn next(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        records: &RecordBook,
    ) -> Option<Accepted> {
        loop {
            let (socket, peer) = tokio::select! {
                _ = shutdown.changed() => return None,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("{} accept: {e}", self.protocol);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    "{} {peer}: closed, {} connections are open ({})",
                    self.protocol,
                    self.max,
                    self.cap_key
                );
                records.ingest_error(self.refused_kind);
                if !self.goodbye.is_empty() {
                    // Best effort: a client whose buffer is full just sees the close.
                    let _ = socket.try_write(self.goodbye);
                }
                continue;
            };
            return Some(Accepted { socket, peer, slot });
        }
    }
}
