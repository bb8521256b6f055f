//! Dispatch: an accepted segment goes to its transcoder (local, pass-through, or a remote
//! transcoder fetching the source from the store), with the delay and drop fault switches applied
//! on the way.

use std::time::Duration;

use alloy::primitives::B256;
use bytes::Bytes;
use protocol::net::{self, SegData, TranscodeResult};
use reference_transcoder::Profile;

use super::Node;
use super::admission::AcceptedSegment;
use super::results::{SourceHash, result_message_off_runtime};
use crate::config::TranscodeMode;
use crate::metrics::FailureReason;
use crate::profiles;
use crate::remote::{RemoteError, RemotePool};
use crate::store::ObjectStore;
use crate::transcode::{self, Transcoded};

impl Node {
    /// Whether the drop switch eats this segment.
    pub fn should_drop(&self, accepted: &AcceptedSegment) -> bool {
        let drop = self.faults.should_drop(accepted.faults.drop_fraction);
        if drop {
            self.metrics.fail(FailureReason::FaultDrop);
            tracing::warn!(
                seq = accepted.checked.seg.seq,
                "drop fault switch: segment dropped"
            );
        }
        drop
    }

    /// Transcodes an accepted segment, stores the renditions, bills and signs the result.
    pub async fn transcode(&self, accepted: AcceptedSegment) -> TranscodeResult {
        let AcceptedSegment {
            checked,
            body,
            faults,
        } = accepted;
        let (seg, sender, session) = (&checked.seg, checked.sender, &checked.session);
        let seq = seg.seq;
        // `accept_body` proved keccak256(body) == seg.hash, so renditions that are the source
        // bytes themselves need not be hashed again for the result signature.
        let source = SourceHash {
            body: body.clone(),
            hash: B256::try_from(seg.hash.as_slice()).ok(),
        };
        let encoded = transcode::effective_profiles(&checked.profiles, &faults);
        let outcome = match self.config.transcode.mode {
            TranscodeMode::Local => self.local.transcode(session, encoded, body).await,
            TranscodeMode::PassThrough => Ok(transcode::pass_through(
                &encoded,
                &body,
                u64::try_from(seg.duration).unwrap_or(0),
            )),
            TranscodeMode::Remote => self.transcode_remote(seg, encoded, body).await,
        };
        if faults.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
        }
        let info = match self.info(sender, session).await {
            Ok(info) => Some(info),
            Err(err) => {
                tracing::warn!(%err, "replying without fresh ticket params");
                None
            }
        };
        let done = match outcome {
            Ok(done) => done,
            Err(error) => {
                self.metrics.fail(FailureReason::Transcode);
                tracing::warn!(seq, %error, "transcode failed");
                return TranscodeResult {
                    seq,
                    result: Some(net::transcode_result::Result::Error(error)),
                    info,
                };
            }
        };
        let message = result_message_off_runtime(&done.renditions, source).await;
        let result = self.finish(session, sender, seg, done, &faults, message);
        checked.claim.completed();
        // The source is no longer needed (renditions live in the store, under its own budget).
        drop(checked.bytes);
        TranscodeResult {
            seq,
            result: Some(result),
            info,
        }
    }

    async fn transcode_remote(
        &self,
        seg: &SegData,
        profiles: Vec<Profile>,
        body: Bytes,
    ) -> Result<Transcoded, String> {
        let name = RemotePool::source_name();
        self.store.put(name.clone(), body.clone());
        // Removed however this ends, including when the request is dropped mid-transcode; kept
        // until then, so a segment retried on another transcoder is fetched from the same place.
        let source = StoredSource {
            store: &self.store,
            name: &name,
        };
        let mut seg = seg.clone();
        seg.full_profiles3 = profiles.iter().map(profiles::to_wire).collect();
        let url = format!("{}/{name}", self.source_uri);
        let orch_id = self.address().map(|a| a.to_string()).unwrap_or_default();
        let outcome = self.remote.run(url, seg, orch_id, body).await;
        drop(source);
        outcome.map_err(|e| match e {
            RemoteError::Busy => "OrchestratorBusy".to_string(),
            RemoteError::Failed(reason) => reason,
        })
    }
}

/// A remote task's source in the store, removed on drop.
struct StoredSource<'a> {
    store: &'a ObjectStore,
    name: &'a str,
}

impl Drop for StoredSource<'_> {
    fn drop(&mut self) {
        self.store.remove(self.name);
    }
}
