//! Latency of a rendition segment from its frame stamps and the stream's send log.
//!
//! Design: two figures per segment and rendition. *Glass to glass*: the moment the segment
//! became downloadable (first listed in its playlist) minus the moment its first stamped frame
//! was sent — what a viewer waits. *Segment latency*, as Livepeer's stream-tester measured it:
//! the moment the rendition segment finished downloading minus the moment the last frame of
//! the corresponding source segment was sent (the latest send among the frames the rendition
//! segment carries). Sends are looked up as the most recent send of each frame number at or
//! before the segment was first seen, so a frame that this stream has not sent yet never
//! yields a (negative) latency. A low-latency part has one figure, *part latency*: the moment its
//! last byte arrived minus the moment its first stamped frame was sent.

use crate::clock::UnixMs;
use crate::observe::SegmentLatency;
use crate::sendlog::SendLog;

/// Latency of one low-latency part whose first stamped frame is `first_frame` and whose last
/// byte arrived at `arrived`: that moment − the frame's latest send at or before it, as
/// `(sent at, latency ms)`. What a low-latency player waits for a picture, short of its
/// buffering.
pub fn part_latency(log: &SendLog, first_frame: u32, arrived: UnixMs) -> Option<(UnixMs, f64)> {
    let sent = log.latest_send_of(first_frame, arrived)?;
    Some((sent.sent_at, (arrived - sent.sent_at) as f64))
}

/// Latency of one segment whose stamped frames (presentation order) are `frames`.
pub fn segment_latency(
    log: &SendLog,
    frames: &[u32],
    first_seen: UnixMs,
    download_finished: UnixMs,
) -> SegmentLatency {
    let mut latency = SegmentLatency::default();
    let Some(&first) = frames.first() else {
        return latency;
    };
    if let Some(sent) = log.latest_send_of(first, first_seen) {
        latency.first_frame_sent_unix_ms = Some(sent.sent_at);
        latency.glass_to_glass_ms = Some((first_seen - sent.sent_at) as f64);
    }
    let last_sent = frames
        .iter()
        .filter_map(|&f| log.latest_send_of(f, first_seen))
        .map(|s| s.sent_at)
        .max();
    if let Some(last) = last_sent {
        latency.last_frame_sent_unix_ms = Some(last);
        latency.segment_latency_ms = Some((download_finished - last) as f64);
    }
    latency
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_from_first_and_last_sent_frame() {
        let log = SendLog::new("k", 1, 100, 0);
        let t0 = crate::clock::now_unix_ms();
        // Frames 0..60 sent 33 ms apart from t0, in decode order with frame 2 before frame 1.
        for f in 0..60u64 {
            log.record(&[f], t0 + 33 * f as i64);
        }
        log.record(&[1], t0 + 70);
        let l = segment_latency(&log, &[0, 1, 2, 3], t0 + 2000, t0 + 2100);
        assert_eq!(l.first_frame_sent_unix_ms, Some(t0));
        assert_eq!(l.glass_to_glass_ms, Some(2000.0));
        assert_eq!(l.last_frame_sent_unix_ms, Some(t0 + 99));
        assert_eq!(l.segment_latency_ms, Some(2001.0));
    }

    #[test]
    fn part_latency_runs_from_the_first_frame_sent_to_the_last_byte() {
        let log = SendLog::new("k", 1, 100, 0);
        let t0 = crate::clock::now_unix_ms();
        for f in 0..60u64 {
            log.record(&[f], t0 + 33 * f as i64);
        }
        assert_eq!(part_latency(&log, 12, t0 + 700), Some((t0 + 396, 304.0)));
        assert_eq!(part_latency(&log, 59, t0 + 700), None, "not sent yet");
        assert_eq!(
            part_latency(&log, 100, t0 + 9000),
            None,
            "not a frame of the clip"
        );
    }

    #[test]
    fn unsent_frames_give_no_latency() {
        let log = SendLog::new("k", 1, 100, 0);
        let t0 = crate::clock::now_unix_ms();
        log.record(&[0], t0 + 500);
        let l = segment_latency(&log, &[0], t0, t0 + 10);
        assert_eq!(l, SegmentLatency::default());
        assert_eq!(
            segment_latency(&log, &[], t0, t0),
            SegmentLatency::default()
        );
    }
}
