//! Results: a transcoded segment's renditions stored under unguessable names, billed (the
//! overcharge and corrupt fault switches apply here) and signed into the `TranscodeResult`.

use std::sync::atomic::Ordering;

use alloy::primitives::{Address, B256, keccak256};
use bytes::Bytes;
use protocol::net;

use super::Node;
use crate::faults::{self, FaultConfig};
use crate::pool::{LedgerEntry, LedgerRendition};
use crate::transcode::{self, Transcoded};

impl Node {
    pub(super) fn finish(
        &self,
        session: &str,
        sender: Address,
        seg: &net::SegData,
        done: Transcoded,
        faults: &FaultConfig,
        result_message: B256,
    ) -> net::transcode_result::Result {
        let signature = self.key.sign(result_message.as_slice()).unwrap_or_default();
        let mut segments = Vec::with_capacity(done.renditions.len());
        let mut billed = 0u64;
        let ledger_renditions: Vec<LedgerRendition> = match &done.pool {
            Some(work) => done
                .renditions
                .iter()
                .zip(&work.claimed_pixels)
                .map(|(r, &claimed)| LedgerRendition {
                    profile: r.profile.clone(),
                    width: r.width,
                    height: r.height,
                    claimed_pixels: claimed,
                    counted_pixels: r.pixels,
                })
                .collect(),
            None => Vec::new(),
        };
        for rendition in done.renditions {
            // Named by the session's rendition key, not its id: the URL is the credential. The
            // stream is in the name too: a broadcaster may send several streams in one session,
            // and their segments share sequence numbers.
            let name = format!(
                "stream/{}/{}/{}/{}.ts",
                self.auth.rendition_key(session),
                alloy::hex::encode(&seg.manifest_id),
                url_safe(&rendition.profile),
                seg.seq
            );
            let data = if faults.corrupt_renditions {
                let mut damaged = rendition.data.to_vec();
                faults::corrupt(&mut damaged);
                Bytes::from(damaged)
            } else {
                rendition.data
            };
            self.store.put(name.clone(), data);
            let pixels = (rendition.pixels as f64 * faults.overcharge_factor).round() as u64;
            billed += pixels;
            segments.push(net::TranscodedSegmentData {
                url: format!("{}/{name}", self.service_uri),
                pixels: pixels as i64,
                ..Default::default()
            });
        }
        let fee = self.payments.debit_pixels(sender, session, billed);
        if let Some(work) = &done.pool {
            self.remote.ledger().record(LedgerEntry {
                at_ms: crate::pool::ledger::now_ms(),
                transcoder: work.transcoder.clone(),
                manifest_id: alloy::hex::encode(&seg.manifest_id),
                seq: u64::try_from(seg.seq).unwrap_or(0),
                duration_ms: u64::try_from(seg.duration).unwrap_or(0),
                decoded_pixels: work.decoded_pixels,
                renditions: ledger_renditions,
                transcode_ms: work.transcode_ms,
                check_ms: work.check_ms,
                fee_wei: u128::try_from(fee).unwrap_or(u128::MAX),
                verdict: work.verdict.clone(),
            });
        }
        self.metrics
            .pixels_billed
            .fetch_add(billed, Ordering::Relaxed);
        self.metrics
            .transcode_micros
            .fetch_add(done.elapsed.as_micros() as u64, Ordering::Relaxed);
        self.metrics
            .segments_transcoded
            .fetch_add(1, Ordering::Relaxed);
        self.transcoded.fetch_add(1, Ordering::Relaxed);
        net::transcode_result::Result::Data(net::TranscodeData {
            segments,
            sig: signature,
        })
    }
}

/// keccak256 through the CRYPTOGAMS assembly of `keccak-asm`, explicitly: hashing segment-sized
/// buffers is the largest part of the node's own per-segment work, and the portable Rust keccak
/// costs about 25 % more per byte. (alloy's `keccak256` is the same code while the workspace
/// enables alloy's `asm-keccak` feature, as `protocol` does.)
pub fn keccak256_bulk(data: &[u8]) -> B256 {
    B256::from_slice(&keccak_asm::Keccak256::digest(data))
}

/// A segment body with its already verified keccak256 (`None` when the header's hash is not 32
/// bytes, which `accept_body` would have refused anyway).
#[derive(Debug, Clone)]
pub struct SourceHash {
    /// The segment bytes as received.
    pub body: Bytes,
    /// keccak256(body).
    pub hash: Option<B256>,
}

impl SourceHash {
    /// The known hash of `data` when `data` is this very buffer (same memory, same length), as a
    /// pass-through rendition or an untouched copy is; equal memory means equal bytes.
    fn of(&self, data: &Bytes) -> Option<B256> {
        (data.as_ptr() == self.body.as_ptr() && data.len() == self.body.len())
            .then_some(self.hash)
            .flatten()
    }
}

/// [`transcode_result_message`] computed on the blocking pool when renditions must be hashed
/// (milliseconds for a real ladder), so the async workers keep serving other uploads meanwhile;
/// renditions that all reuse the source hash are done in place.
pub(super) async fn result_message_off_runtime(
    renditions: &[transcode::Rendition],
    source: SourceHash,
) -> B256 {
    if renditions.iter().all(|r| source.of(&r.data).is_some()) {
        return transcode_result_message(renditions, Some(&source));
    }
    let owned = renditions.to_vec();
    let fallback = owned.clone();
    match tokio::task::spawn_blocking(move || transcode_result_message(&owned, Some(&source))).await
    {
        Ok(message) => message,
        // The blocking pool is shutting down: hash here rather than sign nothing.
        Err(_) => transcode_result_message(&fallback, None),
    }
}

/// `keccak256(keccak256(rendition₁) ‖ … ‖ keccak256(renditionₙ))`, the message of
/// `TranscodeData.sig` (as `protocol::sig::transcode_result_message`). A rendition that is the
/// source buffer itself takes the source's verified hash; the others are hashed on parallel
/// threads when there is enough to hash, since hashing megabytes of video is most of the node's
/// own latency.
pub fn transcode_result_message(
    renditions: &[transcode::Rendition],
    source: Option<&SourceHash>,
) -> B256 {
    let known: Vec<Option<B256>> = renditions
        .iter()
        .map(|r| source.and_then(|s| s.of(&r.data)))
        .collect();
    let to_hash: Vec<&[u8]> = renditions
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(r, _)| r.data.as_ref())
        .collect();
    let mut hashed =
        if to_hash.len() > 1 && to_hash.iter().map(|d| d.len()).sum::<usize>() > 256 * 1024 {
            std::thread::scope(|scope| {
                let handles: Vec<_> = to_hash
                    .iter()
                    .map(|data| scope.spawn(move || keccak256_bulk(data)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect::<Vec<_>>()
            })
        } else {
            to_hash.iter().map(|data| keccak256_bulk(data)).collect()
        }
        .into_iter();
    let mut message = Vec::with_capacity(32 * renditions.len());
    for k in known {
        let hash = k.or_else(|| hashed.next()).unwrap_or_default();
        message.extend_from_slice(hash.as_slice());
    }
    keccak256(message)
}

/// Keeps a profile name usable as one URL path segment.
fn url_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use protocol::sig;

    use super::*;

    #[test]
    fn bulk_keccak_equals_alloys() {
        // Around the 136-byte rate boundary, and a segment-sized buffer.
        for len in [0usize, 1, 135, 136, 137, 272, 1_000_003] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            assert_eq!(keccak256_bulk(&data), keccak256(&data), "length {len}");
        }
    }

    #[test]
    fn parallel_result_message_equals_the_protocol_one() {
        let renditions: Vec<transcode::Rendition> = (0..3u8)
            .map(|i| transcode::Rendition {
                profile: format!("p{i}"),
                width: 2,
                height: 2,
                frames: 1,
                pixels: 4,
                data: Bytes::from(vec![i; 200_000]),
            })
            .collect();
        assert_eq!(
            transcode_result_message(&renditions, None),
            sig::transcode_result_message(renditions.iter().map(|r| r.data.as_ref()))
        );
        assert_eq!(
            transcode_result_message(&renditions[..1], None),
            sig::transcode_result_message([renditions[0].data.as_ref()])
        );
    }

    #[test]
    fn source_renditions_reuse_the_verified_hash_and_others_are_hashed() {
        let body = Bytes::from(vec![7u8; 300_000]);
        let rendition = |data: Bytes| transcode::Rendition {
            profile: "p".into(),
            width: 2,
            height: 2,
            frames: 1,
            pixels: 4,
            data,
        };
        // Pass-through shape: the source buffer, an equal copy elsewhere in memory, another body.
        let renditions = vec![
            rendition(body.clone()),
            rendition(Bytes::from(body.to_vec())),
            rendition(Bytes::from(vec![9u8; 300_000])),
        ];
        let expected = sig::transcode_result_message(renditions.iter().map(|r| r.data.as_ref()));
        let source = SourceHash {
            body: body.clone(),
            hash: Some(keccak256(&body)),
        };
        assert_eq!(
            transcode_result_message(&renditions, Some(&source)),
            expected
        );
        // The reuse is real: a wrong "known" hash shows up only in the first rendition's place.
        let lying = SourceHash {
            body: body.clone(),
            hash: Some(B256::repeat_byte(1)),
        };
        let mut with_lie = vec![B256::repeat_byte(1)];
        with_lie.extend(renditions[1..].iter().map(|r| keccak256(&r.data)));
        assert_eq!(
            transcode_result_message(&renditions, Some(&lying)),
            keccak256(with_lie.concat())
        );
        // A slice of the source is not the source.
        let part = vec![rendition(body.slice(1..))];
        assert_eq!(
            transcode_result_message(&part, Some(&lying)),
            sig::transcode_result_message([part[0].data.as_ref()])
        );
    }
}
