//! Local transcoding: one reference-transcoder session per broadcaster session, on its own thread.
//!
//! Design: a [`LadderTranscoder`] keeps its decoder and encoders across a stream's segments (that
//! is where its speed comes from) and holds FFmpeg state that must stay on one thread, so each
//! session gets a dedicated OS thread that owns its transcoder and takes jobs from a channel; the
//! async side awaits a oneshot reply. The thread ends when the session is closed (its sender is
//! dropped). A change of ladder (including one caused by a quality fault switch) rebuilds the
//! transcoder. The pass-through mode copies the source into every rendition without FFmpeg and
//! estimates pixels from the profile, to measure the node's own overhead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reference_transcoder::{LadderOptions, LadderTranscoder, Profile, RenditionOutput};
use tokio::sync::oneshot;

use crate::faults::FaultConfig;

/// One rendition of a transcoded segment.
#[derive(Debug, Clone)]
pub struct Rendition {
    /// Profile name.
    pub profile: String,
    /// Encoded width.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Frames encoded.
    pub frames: u64,
    /// width × height × frames.
    pub pixels: u64,
    /// MPEG-TS bytes.
    pub data: Bytes,
}

impl From<RenditionOutput> for Rendition {
    /// What the node keeps of a rendition the ladder transcoder encoded.
    fn from(r: RenditionOutput) -> Self {
        Self {
            profile: r.profile,
            width: r.width,
            height: r.height,
            frames: r.frames,
            pixels: r.pixels,
            data: Bytes::from(r.data),
        }
    }
}

/// A transcoded segment.
#[derive(Debug, Clone)]
pub struct Transcoded {
    /// Renditions in profile order.
    pub renditions: Vec<Rendition>,
    /// Source pixels decoded (frames × width × height; 0 when the source was not decoded), which
    /// a remote transcoder reports in its results' top-level `Pixels` header.
    pub decoded_pixels: u64,
    /// Time spent transcoding.
    pub elapsed: Duration,
    /// Who transcoded it (`local`, `pass-through` or a remote transcoder's name).
    pub by: String,
    /// For a remote transcoder's answer: what the pool ledger records of it.
    pub pool: Option<crate::pool::PoolWork>,
}

/// The ladder actually encoded once quality fault switches are applied.
pub fn effective_profiles(profiles: &[Profile], faults: &FaultConfig) -> Vec<Profile> {
    profiles
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if faults.degrade_quality {
                p.bitrate = (p.bitrate / 20).max(1000);
            }
            if faults.wrong_resolution {
                p.width = (p.width / 2).max(16) & !1;
                p.height = (p.height / 2).max(16) & !1;
            }
            p
        })
        .collect()
}

type Job = (
    Vec<Profile>,
    Bytes,
    oneshot::Sender<Result<Transcoded, String>>,
);

/// Per-session transcoding threads.
#[derive(Debug)]
pub struct LocalTranscoders {
    options: LadderOptions,
    /// Jobs a session's thread may have waiting; more are refused rather than queued.
    queue: usize,
    sessions: Mutex<HashMap<String, mpsc::SyncSender<Job>>>,
}

/// Jobs a session's thread may have waiting unless [`LocalTranscoders::with_queue`] says: the
/// orchestrator's default `limits.max_session_segments`, because a session carries every stream
/// one broadcaster routes here and streams cut their segments in bursts.
pub const DEFAULT_QUEUE: usize = 64;

impl LocalTranscoders {
    /// Transcoders using `x264_preset` and `encoder_threads` per rendition.
    pub fn new(x264_preset: &str, encoder_threads: usize) -> Self {
        Self {
            options: LadderOptions {
                x264_preset: x264_preset.to_string(),
                encoder_threads,
                ..LadderOptions::default()
            },
            queue: DEFAULT_QUEUE,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// At most `queue` jobs waiting per session (at least one).
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.queue = queue.max(1);
        self
    }

    /// Transcodes `data` into `profiles` on `session`'s thread.
    pub async fn transcode(
        &self,
        session: &str,
        profiles: Vec<Profile>,
        data: Bytes,
    ) -> Result<Transcoded, String> {
        let (reply, answer) = oneshot::channel();
        let mut job = Some((profiles, data, reply));
        for _ in 0..2 {
            let sender = self.session_sender(session);
            match sender.try_send(job.take().expect("job present")) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Full(_)) => {
                    return Err(format!(
                        "the session's transcode queue is full ({} segments waiting)",
                        self.queue
                    ));
                }
                // The thread died (a panic in FFmpeg glue): start a new one and retry once.
                Err(mpsc::TrySendError::Disconnected(returned)) => {
                    self.close(session);
                    job = Some(returned);
                }
            }
        }
        if job.is_some() {
            return Err("transcoder thread unavailable".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("transcoder thread stopped".into()))
    }

    /// Ends `session`'s thread.
    pub fn close(&self, session: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
    }

    fn session_sender(&self, session: &str) -> mpsc::SyncSender<Job> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = sessions.get(session) {
            return sender.clone();
        }
        let (sender, jobs) = mpsc::sync_channel::<Job>(self.queue);
        let options = self.options.clone();
        let name = format!("transcode-{}", &session[..session.len().min(8)]);
        let spawned = std::thread::Builder::new()
            .name(name)
            .spawn(move || session_thread(options, jobs));
        if let Err(err) = spawned {
            tracing::error!(%err, "cannot start a transcoding thread");
        }
        sessions.insert(session.to_string(), sender.clone());
        sender
    }
}

fn session_thread(options: LadderOptions, jobs: mpsc::Receiver<Job>) {
    let mut transcoder: Option<LadderTranscoder> = None;
    while let Ok((profiles, data, reply)) = jobs.recv() {
        if transcoder.as_ref().map(|t| t.profiles()) != Some(profiles.as_slice()) {
            transcoder = None;
            match LadderTranscoder::new(profiles.clone(), options.clone()) {
                Ok(t) => transcoder = Some(t),
                Err(err) => {
                    let _ = reply.send(Err(err.to_string()));
                    continue;
                }
            }
        }
        let t = transcoder.as_mut().expect("transcoder just built");
        let outcome = t
            .transcode_owned(data.to_vec())
            .map(|out| Transcoded {
                elapsed: out.transcode_time,
                decoded_pixels: out
                    .source_frames
                    .saturating_mul(u64::from(out.source_width) * u64::from(out.source_height)),
                renditions: out.renditions.into_iter().map(Rendition::from).collect(),
                by: "local".into(),
                pool: None,
            })
            .map_err(|e| e.to_string());
        let _ = reply.send(outcome);
    }
}

/// Pass-through "transcode": every rendition is the source bytes; pixels are the profile's size
/// × its frame rate × the segment duration.
pub fn pass_through(profiles: &[Profile], data: &Bytes, duration_ms: u64) -> Transcoded {
    let started = Instant::now();
    let renditions = profiles
        .iter()
        .map(|p| {
            let (num, den) = p.fps().unwrap_or((30, 1));
            let frames = duration_ms * u64::from(num) / (1000 * u64::from(den));
            Rendition {
                profile: p.name.clone(),
                width: p.width,
                height: p.height,
                frames,
                pixels: u64::from(p.width) * u64::from(p.height) * frames,
                data: data.clone(),
            }
        })
        .collect();
    Transcoded {
        renditions,
        decoded_pixels: 0,
        elapsed: started.elapsed(),
        by: "pass-through".into(),
        pool: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_faults_change_the_encoded_ladder() {
        let ladder = vec![Profile::preset("P360p30fps16x9").unwrap()];
        assert_eq!(effective_profiles(&ladder, &FaultConfig::default()), ladder);
        let degraded = effective_profiles(
            &ladder,
            &FaultConfig {
                degrade_quality: true,
                ..FaultConfig::default()
            },
        );
        assert_eq!(degraded[0].bitrate, 60_000);
        let wrong = effective_profiles(
            &ladder,
            &FaultConfig {
                wrong_resolution: true,
                ..FaultConfig::default()
            },
        );
        assert_eq!((wrong[0].width, wrong[0].height), (320, 180));
    }

    #[test]
    fn pass_through_estimates_pixels() {
        let ladder = vec![Profile::preset("P240p30fps16x9").unwrap()];
        let out = pass_through(&ladder, &Bytes::from_static(b"ts"), 2000);
        assert_eq!(out.renditions[0].frames, 60);
        assert_eq!(out.renditions[0].pixels, 426 * 240 * 60);
        assert_eq!(out.renditions[0].data, Bytes::from_static(b"ts"));
    }
}
