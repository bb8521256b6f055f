//! The send log: when each video frame of one stream went out on the wire.
//!
//! Design: a stream's frames are numbered by *position*, their presentation index since the
//! stream started (`loop × clip_frames + (frame − start_frame) mod clip_frames`); the log is a
//! vector of `u32` milliseconds after the log's epoch indexed by position (0 = not sent yet), so
//! it costs 4 bytes per frame, grows by amortised doubling and is written once per batch of
//! packets under a short lock. A stamp read back from a rendition carries only the frame
//! number, so lookups take the most recent send of that frame at or before the moment of
//! interest: unambiguous while latency stays below one pass of the clip.

use std::sync::Mutex;

use crate::clock::UnixMs;

/// One send found in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentFrame {
    pub position: u64,
    pub frame: u32,
    pub sent_at: UnixMs,
}

/// When every video frame of one stream was sent.
#[derive(Debug)]
pub struct SendLog {
    stream_key: String,
    stream_id: u32,
    clip_frames: u32,
    start_frame: u32,
    epoch: UnixMs,
    times: Mutex<Vec<u32>>,
}

impl SendLog {
    /// An empty log for a stream that replays a `clip_frames`-frame clip stamped with
    /// `stream_id`, starting at `start_frame`.
    pub fn new(stream_key: &str, stream_id: u32, clip_frames: u32, start_frame: u32) -> SendLog {
        let clip_frames = clip_frames.max(1);
        SendLog {
            stream_key: stream_key.to_string(),
            stream_id,
            clip_frames,
            start_frame: start_frame % clip_frames,
            epoch: crate::clock::now_unix_ms(),
            times: Mutex::new(Vec::with_capacity(clip_frames as usize * 2)),
        }
    }

    pub fn stream_key(&self) -> &str {
        &self.stream_key
    }

    /// The stream id every stamp of this stream carries.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    pub fn clip_frames(&self) -> u32 {
        self.clip_frames
    }

    pub fn start_frame(&self) -> u32 {
        self.start_frame
    }

    /// The position of the `frame`-th clip frame within pass `pass` of this stream.
    pub fn position(&self, pass: u64, frame: u32) -> u64 {
        let offset =
            (frame % self.clip_frames + self.clip_frames - self.start_frame) % self.clip_frames;
        pass * self.clip_frames as u64 + offset as u64
    }

    /// The clip frame number at `position`.
    pub fn frame_at(&self, position: u64) -> u32 {
        ((position + self.start_frame as u64) % self.clip_frames as u64) as u32
    }

    /// Records that the frames at `positions` were sent at `at`.
    pub fn record(&self, positions: &[u64], at: UnixMs) {
        if positions.is_empty() {
            return;
        }
        let value = (at - self.epoch).clamp(0, u32::MAX as i64 - 1) as u32 + 1;
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        for &p in positions {
            let p = p as usize;
            if p >= times.len() {
                times.resize(p + 1, 0);
            }
            times[p] = value;
        }
    }

    /// Frames sent so far.
    pub fn frames_sent(&self) -> u64 {
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        times.iter().filter(|&&t| t != 0).count() as u64
    }

    /// When the frame at `position` was sent.
    pub fn sent_at(&self, position: u64) -> Option<UnixMs> {
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        match times.get(position as usize) {
            Some(&t) if t != 0 => Some(self.epoch + t as i64 - 1),
            _ => None,
        }
    }

    /// The most recent send of clip frame `frame` at or before `at`, if this stream sent it.
    pub fn latest_send_of(&self, frame: u32, at: UnixMs) -> Option<SentFrame> {
        if frame >= self.clip_frames {
            return None;
        }
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        let first = self.position(0, frame);
        let n = self.clip_frames as u64;
        let mut best = None;
        let mut p = first;
        while (p as usize) < times.len() {
            let t = times[p as usize];
            if t != 0 {
                let sent_at = self.epoch + t as i64 - 1;
                if sent_at > at {
                    break;
                }
                best = Some(SentFrame {
                    position: p,
                    frame,
                    sent_at,
                });
            }
            p += n;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_wrap_around_the_start_frame() {
        let log = SendLog::new("k", 1, 100, 40);
        assert_eq!(log.position(0, 40), 0);
        assert_eq!(log.position(0, 99), 59);
        assert_eq!(log.position(0, 0), 60);
        assert_eq!(log.position(2, 39), 299);
        assert_eq!(log.frame_at(299), 39);
        assert_eq!(log.frame_at(60), 0);
    }

    #[test]
    fn latest_send_picks_the_pass_before_the_moment_asked_about() {
        let log = SendLog::new("k", 1, 10, 0);
        let e = log.epoch;
        log.record(&[3], e + 100);
        log.record(&[13], e + 1100);
        log.record(&[23], e + 2100);
        assert_eq!(log.latest_send_of(3, e + 50), None);
        assert_eq!(log.latest_send_of(3, e + 1500).unwrap().sent_at, e + 1100);
        assert_eq!(log.latest_send_of(3, e + 9999).unwrap().position, 23);
        assert_eq!(log.latest_send_of(4, e + 9999), None);
        assert_eq!(log.latest_send_of(11, e + 9999), None);
        assert_eq!(log.frames_sent(), 3);
        assert_eq!(log.sent_at(13), Some(e + 1100));
    }
}
