//! The pool probe: at the end of a run whose embedded orchestrators hand segments to remote
//! transcoders, reconciles each transcoder from outside.
//!
//! Three accounts of the same work are set side by side: the pixels the stream probe decoded in
//! the renditions it pulled (from the journal's `segment` records), the pixels each orchestrator's
//! ledger counted and claimed for them (its `pool-ledger.jsonl`, which also says which
//! transcoder made each rendition), and the orchestrator's payouts of the value it redeemed
//! (its `/pool`, read after the run's payments are settled). A rendition is matched by stream
//! (the ledger's manifest id is the stream key), rendition name and sequence number. Each
//! transcoder becomes one `pool` record: accounting and claim errors, payout share, speed, what
//! the spot checks refused and after how many answers, and the bad renditions that got through.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use node_orchestrator::pool::{CheckVerdict, LedgerEntry};
use observation::record::{CheckRecord, PoolRecord, SegmentRecord};

/// What the stream probe saw of one rendition segment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pulled {
    /// Decoded width × height × frames, when it was decoded.
    pub pixels: Option<u64>,
    /// The segment failed, or one of its checks did.
    pub bad: bool,
}

/// The probe's view of every rendition segment, by (stream, rendition, sequence number).
pub type PulledSegments = HashMap<(String, String, u64), Pulled>;

/// The probe's view from the journal's segment and check records.
pub fn pulled_segments(segments: &[SegmentRecord], checks: &[CheckRecord]) -> PulledSegments {
    let mut pulled = PulledSegments::new();
    for s in segments.iter().filter(|s| s.rendition != "source") {
        let pixels = match (s.width, s.height, s.frames) {
            (Some(w), Some(h), Some(frames)) if s.ok => {
                Some(u64::from(w) * u64::from(h) * u64::from(frames))
            }
            _ => None,
        };
        pulled.insert(
            (s.stream.clone(), s.rendition.clone(), s.seq),
            Pulled { pixels, bad: !s.ok },
        );
    }
    for c in checks.iter().filter(|c| !c.ok) {
        if let (Some(rendition), Some(seq)) = (&c.rendition, c.seq)
            && let Some(p) = pulled.get_mut(&(c.stream.clone(), rendition.clone(), seq))
        {
            p.bad = true;
        }
    }
    pulled
}

/// Every entry of a ledger file; a torn last line (the orchestrator was killed mid-write) is
/// skipped, any other bad line is an error naming it.
pub fn read_ledger(path: &Path) -> anyhow::Result<Vec<LedgerEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        match serde_json::from_str::<LedgerEntry>(line) {
            Ok(entry) => entries.push(entry),
            Err(_) if index + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                anyhow::bail!("{}:{}: not a ledger entry: {e}", path.display(), index + 1)
            }
        }
    }
    Ok(entries)
}

/// What an orchestrator's `/pool` says of one transcoder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolView {
    /// Its share of the window's payouts, and the amount, wei.
    pub share: Option<f64>,
    pub amount_wei: Option<String>,
    /// Segments it went away with.
    pub lost: u64,
}

/// What a `/pool` document says of each transcoder.
pub fn pool_views(pool: &serde_json::Value) -> HashMap<String, PoolView> {
    let mut views: HashMap<String, PoolView> = HashMap::new();
    for p in pool["payout"]["payouts"].as_array().into_iter().flatten() {
        if let Some(name) = p["transcoder"].as_str() {
            let view = views.entry(name.to_string()).or_default();
            view.share = p["share"].as_f64();
            view.amount_wei = p["amount_wei"].as_str().map(str::to_string);
        }
    }
    for (name, totals) in pool["totals"].as_object().into_iter().flatten() {
        views.entry(name.clone()).or_default().lost = totals["lost"].as_u64().unwrap_or(0);
    }
    views
}

/// One `pool` record per transcoder of `orchestrator`'s ledger.
pub fn reconcile(
    orchestrator: &str,
    entries: &[LedgerEntry],
    pulled: &PulledSegments,
    views: &HashMap<String, PoolView>,
    t_ms: i64,
) -> Vec<PoolRecord> {
    let mut by_transcoder: BTreeMap<&str, Vec<&LedgerEntry>> = BTreeMap::new();
    for entry in entries {
        by_transcoder
            .entry(&entry.transcoder)
            .or_default()
            .push(entry);
    }
    // One that lost every segment it was given has no ledger entry, but a record all the same.
    for name in views.keys() {
        by_transcoder.entry(name).or_default();
    }
    by_transcoder
        .into_iter()
        .map(|(transcoder, mut entries)| {
            entries.sort_by_key(|e| e.at_ms);
            let mut record = PoolRecord {
                t_ms,
                orchestrator: orchestrator.to_string(),
                transcoder: transcoder.to_string(),
                segments: 0,
                refused: 0,
                checked: 0,
                lost: views.get(transcoder).map_or(0, |v| v.lost),
                matched: 0,
                probe_pixels: 0,
                counted_pixels: 0,
                claimed_pixels: 0,
                accounting_error: None,
                claim_error: None,
                payout_share: views.get(transcoder).and_then(|v| v.share),
                payout_wei: views.get(transcoder).and_then(|v| v.amount_wei.clone()),
                realtime_ratio: None,
                check_ms: None,
                cheater_detected_after: None,
                bad_segments_delivered: 0,
            };
            let (mut media_ms, mut transcode_ms, mut check_ms) = (0u64, 0u64, 0u64);
            // A segment retried after a loss can be in the ledger twice; its renditions count once.
            let mut seen = HashSet::new();
            for (index, entry) in entries.iter().enumerate() {
                if entry.check_ms.is_some() {
                    record.checked += 1;
                    check_ms += entry.check_ms.unwrap_or(0);
                }
                if let CheckVerdict::Failed(_) = entry.verdict {
                    record.refused += 1;
                    record
                        .cheater_detected_after
                        .get_or_insert(index as u64 + 1);
                    continue;
                }
                record.segments += 1;
                media_ms += entry.duration_ms;
                transcode_ms += entry.transcode_ms;
                let stream = stream_key(&entry.manifest_id);
                for rendition in &entry.renditions {
                    let key = (stream.clone(), rendition.profile.clone(), entry.seq);
                    if !seen.insert(key.clone()) {
                        continue;
                    }
                    let Some(seen_by_probe) = pulled.get(&key) else {
                        continue;
                    };
                    record.bad_segments_delivered += u64::from(seen_by_probe.bad);
                    if let Some(pixels) = seen_by_probe.pixels {
                        record.matched += 1;
                        record.probe_pixels += pixels;
                        record.counted_pixels += rendition.counted_pixels;
                        record.claimed_pixels += rendition.claimed_pixels;
                    }
                }
            }
            if record.probe_pixels > 0 {
                let probe = record.probe_pixels as f64;
                record.accounting_error =
                    Some((record.counted_pixels as f64 - probe).abs() / probe);
                record.claim_error = Some((record.claimed_pixels as f64 - probe) / probe);
            }
            if transcode_ms > 0 {
                record.realtime_ratio = Some(media_ms as f64 / transcode_ms as f64);
            }
            if record.checked > 0 {
                record.check_ms = Some(check_ms as f64 / record.checked as f64);
            }
            record
        })
        .collect()
}

/// The stream key a manifest id holds (the broadcaster sends the key's bytes as the id).
fn stream_key(manifest_id: &str) -> String {
    alloy::hex::decode(manifest_id)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| manifest_id.to_string())
}

/// Reads an orchestrator's `/pool` with the stack's status token.
pub async fn read_pool(uri: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    let response = protocol::client::http_client()
        .get(format!("{}/pool", uri.trim_end_matches('/')))
        .bearer_auth(token)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("cannot read {uri}/pool"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{uri}/pool answered {}",
        response.status()
    );
    response
        .json()
        .await
        .with_context(|| format!("{uri}/pool is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_orchestrator::pool::LedgerRendition;

    fn entry(transcoder: &str, seq: u64, claimed: u64, verdict: CheckVerdict) -> LedgerEntry {
        LedgerEntry {
            at_ms: 1_000 + seq,
            transcoder: transcoder.into(),
            manifest_id: alloy::hex::encode("stream-1"),
            seq,
            duration_ms: 2_000,
            decoded_pixels: 0,
            renditions: vec![LedgerRendition {
                profile: "P240p30fps16x9".into(),
                width: 426,
                height: 240,
                claimed_pixels: claimed,
                counted_pixels: 426 * 240 * 60,
            }],
            transcode_ms: 500,
            check_ms: Some(40),
            fee_wei: 1,
            verdict,
        }
    }

    fn pulled(seqs: &[u64], bad: &[u64]) -> PulledSegments {
        seqs.iter()
            .map(|&seq| {
                (
                    ("stream-1".to_string(), "P240p30fps16x9".to_string(), seq),
                    Pulled {
                        pixels: Some(426 * 240 * 60),
                        bad: bad.contains(&seq),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn an_honest_transcoder_reconciles_exactly_and_an_inflater_is_named_by_its_claim() {
        let honest = 426 * 240 * 60;
        let entries = [
            entry("honest", 1, honest, CheckVerdict::Passed),
            entry("inflater", 2, honest * 3, CheckVerdict::Unchecked),
            entry("honest", 3, honest, CheckVerdict::Unchecked),
        ];
        let views = HashMap::from([(
            "honest".to_string(),
            PoolView {
                share: Some(0.5),
                amount_wei: Some("900".into()),
                lost: 1,
            },
        )]);
        let records = reconcile(
            "orchestrator-0",
            &entries,
            &pulled(&[1, 2, 3], &[]),
            &views,
            7,
        );
        let honest_record = &records[0];
        assert_eq!(honest_record.transcoder, "honest");
        assert_eq!(
            (
                honest_record.segments,
                honest_record.matched,
                honest_record.accounting_error,
                honest_record.claim_error
            ),
            (2, 2, Some(0.0), Some(0.0))
        );
        assert_eq!(honest_record.payout_share, Some(0.5));
        assert_eq!(honest_record.lost, 1);
        assert_eq!(honest_record.realtime_ratio, Some(4.0));
        assert_eq!(honest_record.check_ms, Some(40.0));
        let inflater = &records[1];
        assert_eq!(inflater.accounting_error, Some(0.0), "paid for real pixels");
        assert_eq!(inflater.claim_error, Some(2.0));
    }

    #[test]
    fn a_cheater_is_found_after_its_first_refused_answer_and_bad_deliveries_are_counted() {
        let entries = [
            entry("cheat", 1, 1, CheckVerdict::Unchecked),
            entry("cheat", 2, 1, CheckVerdict::Unchecked),
            entry("cheat", 3, 1, CheckVerdict::Failed("low similarity".into())),
            entry("cheat", 4, 1, CheckVerdict::Failed("low similarity".into())),
        ];
        let records = reconcile(
            "orchestrator-0",
            &entries,
            &pulled(&[1, 2], &[2]),
            &HashMap::new(),
            7,
        );
        let cheat = &records[0];
        assert_eq!(
            (
                cheat.segments,
                cheat.refused,
                cheat.cheater_detected_after,
                cheat.bad_segments_delivered
            ),
            (2, 2, Some(3), 1)
        );
    }

    #[test]
    fn a_torn_last_ledger_line_is_skipped_and_a_bad_middle_line_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool-ledger.jsonl");
        let line = serde_json::to_string(&entry("a", 1, 1, CheckVerdict::Unchecked)).unwrap();
        std::fs::write(&path, format!("{line}\n{}", &line[..20])).unwrap();
        assert_eq!(read_ledger(&path).unwrap().len(), 1);
        std::fs::write(&path, format!("{line}\nnot json\n{line}\n")).unwrap();
        let err = read_ledger(&path).unwrap_err().to_string();
        assert!(
            err.contains("pool-ledger.jsonl:2: not a ledger entry"),
            "{err}"
        );
    }
}
