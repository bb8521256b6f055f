//! What a chaos event cost each stream, worked out from the segments the probes recorded: how long
//! the stream took to deliver good video again, how many source segments never arrived, and how
//! long a player would have stalled.
//!
//! The probes see the stack from outside, so the figures come from the journal's segment records
//! alone. A source segment is good when every rendition of it arrived and passed its checks. Its
//! media was published at its arrival minus its glass-to-glass latency; a segment that never
//! arrived has no latency, so its publish time is read off the stream's schedule (segments are cut
//! every `D` seconds of media). The stream's usual latency `L` is the median before the event.
//!
//! - **failover_time**: the first segment caught by the event is the first whose media ends after
//!   the event starts; it should have arrived at its publish time + `L`. The figure is how much
//!   later the stream's next good segment (that one or a later one) arrived.
//! - **segments_lost**: segments whose media overlaps the event (through two segment durations
//!   after it ends) that never arrived good.
//! - **stall_time**: a player that starts three segments behind the live edge (hls.js's
//!   `liveSyncDurationCount`) and plays each good segment once it has arrived, skipping lost ones,
//!   stalls whenever the next good segment is late; the stall time that begins from the event to
//!   its end plus `L` and four segment durations is the event's.

use std::collections::BTreeMap;

use observation::record::{RecoveryRecord, SegmentRecord};

/// One occurrence of a chaos event, in unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub label: String,
    pub start_ms: i64,
    /// When it was over; a kill lasts to the end of the run, but the streams only feel its
    /// first moments (B fails over), so it ends where it starts.
    pub end_ms: i64,
}

/// How far behind the live edge the modelled player starts, in segments.
const PLAYER_HOLDBACK_SEGMENTS: f64 = 3.0;
/// Segments after an event's end whose loss still counts as the event's.
const TAIL_SEGMENTS: f64 = 2.0;

/// Segments of one stream, gathered by source sequence number.
#[derive(Default)]
struct Stream {
    workload: String,
    renditions: BTreeMap<String, ()>,
    by_seq: BTreeMap<u64, Source>,
    last_arrival_ms: i64,
}

/// One source segment as its renditions arrived.
#[derive(Default)]
struct Source {
    renditions_ok: usize,
    failed: bool,
    /// Latest arrival of a good rendition.
    arrival_ms: i64,
    /// Earliest publish time read from a rendition's latency.
    published_ms: Option<f64>,
    duration_ms: Option<f64>,
}

/// The stream's segments with what their figures need.
struct Timeline {
    /// Median media duration of a segment (ms).
    segment_ms: f64,
    /// `seq → (good, arrival, publish time)`, over every seq from the first to the last seen.
    segments: BTreeMap<u64, (bool, i64, f64)>,
    last_arrival_ms: i64,
}

/// Every stream's figures for every occurrence that happened while the stream ran.
pub fn stream_recovery(segments: &[SegmentRecord], events: &[Occurrence]) -> Vec<RecoveryRecord> {
    let mut streams: BTreeMap<String, Stream> = BTreeMap::new();
    for record in segments {
        let stream = streams.entry(record.stream.clone()).or_default();
        stream.workload.clone_from(&record.workload);
        stream.renditions.insert(record.rendition.clone(), ());
        stream.last_arrival_ms = stream.last_arrival_ms.max(record.t_ms);
        let source = stream.by_seq.entry(record.seq).or_default();
        if record.ok {
            source.renditions_ok += 1;
            source.arrival_ms = source.arrival_ms.max(record.t_ms);
            if let Some(latency) = record.latency_ms {
                let published = record.t_ms as f64 - latency;
                source.published_ms =
                    Some(source.published_ms.map_or(published, |p| p.min(published)));
            }
        } else {
            source.failed = true;
        }
        if let Some(seconds) = record.duration_s {
            source.duration_ms = Some(seconds * 1000.0);
        }
    }
    let mut out = Vec::new();
    for (key, stream) in &streams {
        let Some(timeline) = Timeline::of(stream) else {
            tracing::warn!(
                stream = %key,
                segments = stream.by_seq.len(),
                "no recovery figures for the stream: none of its segments arrived good with a \
                 duration and a latency"
            );
            continue;
        };
        for event in events {
            if let Some(record) = timeline.recovery(event) {
                out.push(RecoveryRecord {
                    workload: Some(stream.workload.clone()),
                    stream: Some(key.clone()),
                    ..record
                });
            }
        }
    }
    out
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

impl Timeline {
    fn of(stream: &Stream) -> Option<Timeline> {
        let renditions = stream.renditions.len();
        let good = |s: &Source| !s.failed && s.renditions_ok >= renditions;
        let segment_ms = median(
            stream
                .by_seq
                .values()
                .filter_map(|s| s.duration_ms)
                .collect(),
        )?;
        let schedule_origin_ms = median(
            stream
                .by_seq
                .iter()
                .filter(|(_, s)| good(s))
                .filter_map(|(seq, s)| Some(s.published_ms? - *seq as f64 * segment_ms))
                .collect(),
        )?;
        let first = *stream.by_seq.keys().next()?;
        let last = *stream.by_seq.keys().next_back()?;
        let segments = (first..=last)
            .map(|seq| {
                let scheduled = schedule_origin_ms + seq as f64 * segment_ms;
                let entry = match stream.by_seq.get(&seq) {
                    Some(s) if good(s) => (true, s.arrival_ms, s.published_ms.unwrap_or(scheduled)),
                    _ => (false, 0, scheduled),
                };
                (seq, entry)
            })
            .collect();
        Some(Timeline {
            segment_ms,
            segments,
            last_arrival_ms: stream.last_arrival_ms,
        })
    }

    /// The stream's usual latency: the median of its good segments that arrived before `t_ms`
    /// (of all its good segments when none had).
    fn usual_latency(&self, t_ms: i64) -> Option<f64> {
        let latencies = |before: bool| {
            median(
                self.segments
                    .values()
                    .filter(|(good, arrival, _)| *good && (!before || *arrival < t_ms))
                    .map(|(_, arrival, published)| *arrival as f64 - published)
                    .collect(),
            )
        };
        latencies(true).or_else(|| latencies(false))
    }

    fn recovery(&self, event: &Occurrence) -> Option<RecoveryRecord> {
        let start = event.start_ms as f64;
        let end = event.end_ms.max(event.start_ms) as f64;
        let (&first_seq, &(_, _, first_published)) = self.segments.iter().next()?;
        // A stream that started after the event, or had ended before it, did not live through it.
        if first_published > start || self.last_arrival_ms < event.start_ms {
            return None;
        }
        let latency = self.usual_latency(event.start_ms)?;
        let caught: Vec<(u64, bool, i64, f64)> = self
            .segments
            .range(first_seq..)
            .map(|(seq, (good, arrival, published))| (*seq, *good, *arrival, *published))
            .filter(|(_, _, _, published)| *published + self.segment_ms > start)
            .collect();
        let (_, _, _, first_caught_published) = *caught.first()?;
        let due = first_caught_published + latency;
        let next_good = caught.iter().find(|(_, good, _, _)| *good);
        let (failover_ms, recovered) = match next_good {
            Some((_, _, arrival, _)) => ((*arrival as f64 - due).max(0.0), true),
            None => ((self.last_arrival_ms as f64 - due).max(0.0), false),
        };
        let window_end = end + TAIL_SEGMENTS * self.segment_ms;
        let lost = caught
            .iter()
            .filter(|(_, good, _, published)| !good && *published < window_end)
            .count() as u64;
        let stall_window = (start, end + latency + 4.0 * self.segment_ms);
        Some(RecoveryRecord {
            t_ms: event.start_ms,
            event: event.label.clone(),
            workload: None,
            stream: None,
            orchestrator: None,
            failover_time_ms: Some(failover_ms),
            segments_lost: Some(lost),
            stall_time_ms: Some(self.stall_within(stall_window)),
            recovered: Some(recovered),
            redemptions_lost: None,
            winners: None,
            redemption_delay_ms: None,
        })
    }

    /// Stall time of the modelled player that begins within `window` (ms).
    fn stall_within(&self, (from, to): (f64, f64)) -> f64 {
        let mut clock: Option<f64> = None;
        let mut stalled = 0.0;
        for (good, arrival, _) in self.segments.values() {
            let Some(now) = clock else {
                if *good {
                    // It starts playing the holdback later, and the next is due when it ends.
                    clock =
                        Some(*arrival as f64 + (PLAYER_HOLDBACK_SEGMENTS + 1.0) * self.segment_ms);
                }
                continue;
            };
            let mut now = now;
            if *good && (*arrival as f64) > now {
                if now >= from && now < to {
                    stalled += *arrival as f64 - now;
                }
                now = *arrival as f64;
            }
            clock = Some(now + self.segment_ms);
        }
        stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = 2000;
    const LATENCY: i64 = 3000;
    /// Media of seq 0 published at this time.
    const ORIGIN: i64 = 1_000_000;

    fn rendition(seq: u64, rendition: &str, ok: bool, extra_ms: i64) -> SegmentRecord {
        let published = ORIGIN + seq as i64 * D;
        let arrival = published + LATENCY + extra_ms;
        SegmentRecord {
            t_ms: arrival,
            workload: "w".into(),
            stream: "s".into(),
            rendition: rendition.into(),
            seq,
            orchestrator: None,
            region: None,
            ok,
            error: (!ok).then(|| "http_404".into()),
            message: None,
            duration_s: Some(2.0),
            latency_ms: ok.then_some((LATENCY + extra_ms) as f64),
            upload_ms: None,
            transcode_ms: None,
            download_ms: None,
            round_trip_ms: None,
            bytes: None,
            bitrate_kbps: None,
            width: None,
            height: None,
            frames: None,
        }
    }

    /// Segments 0..20 of one stream with two renditions; `late(seq)` adds delay, `lost(seq)`
    /// fails one rendition.
    fn stream(late: impl Fn(u64) -> i64, lost: impl Fn(u64) -> bool) -> Vec<SegmentRecord> {
        (0..20)
            .flat_map(|seq| {
                [
                    rendition(seq, "P144p", true, late(seq)),
                    rendition(seq, "P240p", !lost(seq), late(seq)),
                ]
            })
            .collect()
    }

    fn event(at: i64, lasts: i64) -> Occurrence {
        Occurrence {
            label: "kill:orchestrator-0@10s".into(),
            start_ms: at,
            end_ms: at + lasts,
        }
    }

    fn only(records: Vec<RecoveryRecord>) -> RecoveryRecord {
        assert_eq!(records.len(), 1, "{records:?}");
        records.into_iter().next().unwrap()
    }

    #[test]
    fn an_event_that_costs_nothing_measures_no_failover_loss_or_stall() {
        let r = only(stream_recovery(
            &stream(|_| 0, |_| false),
            &[event(ORIGIN + 10 * D + 500, 0)],
        ));
        assert_eq!(r.failover_time_ms, Some(0.0));
        assert_eq!(r.segments_lost, Some(0));
        assert_eq!(r.stall_time_ms, Some(0.0));
        assert_eq!(r.recovered, Some(true));
        assert_eq!(r.stream.as_deref(), Some("s"));
        assert_eq!(r.workload.as_deref(), Some("w"));
    }

    #[test]
    fn a_retried_segment_measures_its_extra_delay() {
        // Killed while seq 10 was being transcoded: it arrives 1.2 s late from another node.
        let r = only(stream_recovery(
            &stream(|seq| if seq == 10 { 1200 } else { 0 }, |_| false),
            &[event(ORIGIN + 10 * D + 500, 0)],
        ));
        assert_eq!(r.failover_time_ms, Some(1200.0));
        assert_eq!(r.segments_lost, Some(0));
        // Three segments of buffer absorb 1.2 s.
        assert_eq!(r.stall_time_ms, Some(0.0));
    }

    #[test]
    fn lost_segments_count_and_failover_runs_to_the_next_good_one() {
        // A 5 s outage from inside seq 10: seq 10, 11 and 12 never arrive complete.
        let r = only(stream_recovery(
            &stream(|_| 0, |seq| (10..=12).contains(&seq)),
            &[event(ORIGIN + 10 * D + 500, 5000)],
        ));
        // seq 10 was due at ORIGIN + 10D + L; seq 13 arrived at ORIGIN + 13D + L.
        assert_eq!(r.failover_time_ms, Some(3.0 * D as f64));
        assert_eq!(r.segments_lost, Some(3));
        assert_eq!(r.recovered, Some(true));
    }

    #[test]
    fn a_long_delay_stalls_the_player_and_a_stream_that_never_recovers_says_so() {
        // Every segment from 10 on is 9 s late: beyond three segments of buffer.
        let late = stream_recovery(
            &stream(|seq| if seq >= 10 { 9000 } else { 0 }, |_| false),
            &[event(ORIGIN + 10 * D + 500, 0)],
        );
        let r = only(late);
        assert_eq!(r.failover_time_ms, Some(9000.0));
        assert_eq!(r.stall_time_ms, Some(9000.0 - 3.0 * D as f64));

        let dead = only(stream_recovery(
            &stream(|_| 0, |seq| seq >= 10),
            &[event(ORIGIN + 10 * D + 500, 0)],
        ));
        assert_eq!(dead.recovered, Some(false));
        // Only the segments around the event count as its loss.
        assert_eq!(dead.segments_lost, Some(3));
    }

    #[test]
    fn streams_that_did_not_live_through_the_event_get_no_figures() {
        let records = stream(|_| 0, |_| false);
        let before = event(ORIGIN - 10_000, 0);
        let after = event(ORIGIN + 60 * D, 0);
        assert!(stream_recovery(&records, &[before, after]).is_empty());
    }
}
