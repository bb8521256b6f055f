//! `ffmpeg` as an RTMP publisher: lavfi test pictures and a sine tone encoded live (x264
//! ultrafast, AAC) and sent in real time (`-re`), like an encoder feeding an ingest server.
//!
//! The GOP is fixed (no scene-cut key frames, none closer than the GOP), so a segmenter that
//! cuts at key frames cuts at a steady cadence a test can count on.

use std::process::Command;

/// The `ffmpeg` command that publishes `secs` seconds of the lavfi `video` source (e.g.
/// `testsrc=size=160x90:rate=10`) with a key frame every `gop_frames` frames to the RTMP `url`.
/// Standard streams and spawning are left to the caller.
pub fn command(video: &str, secs: u64, gop_frames: u32, url: &str) -> Command {
    let secs = secs.to_string();
    let gop = gop_frames.to_string();
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", video])
        .args(["-f", "lavfi", "-i", "sine=sample_rate=44100"])
        .args(["-t", &secs])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "32k"])
        .args(["-f", "flv", url]);
    command
}
