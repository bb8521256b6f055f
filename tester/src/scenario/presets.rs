//! lpms's named transcoding presets (PROTOCOL.md §6), as scenarios refer to them by name.

use super::model::{H264Profile, Profile};

/// (name, width, height, fps, bitrate in kbps)
const PRESETS: &[(&str, u32, u32, u32, u64)] = &[
    ("P720p60fps16x9", 1280, 720, 60, 6000),
    ("P720p30fps16x9", 1280, 720, 30, 4000),
    ("P720p25fps16x9", 1280, 720, 25, 3500),
    ("P720p30fps4x3", 960, 720, 30, 3500),
    ("P576p30fps16x9", 1024, 576, 30, 1500),
    ("P576p25fps16x9", 1024, 576, 25, 1500),
    ("P360p30fps16x9", 640, 360, 30, 1200),
    ("P360p25fps16x9", 640, 360, 25, 1000),
    ("P360p30fps4x3", 480, 360, 30, 1000),
    ("P240p30fps16x9", 426, 240, 30, 600),
    ("P240p25fps16x9", 426, 240, 25, 600),
    ("P240p30fps4x3", 320, 240, 30, 600),
    ("P144p30fps16x9", 256, 144, 30, 400),
];

pub fn names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|p| p.0)
}

pub fn preset(name: &str) -> Option<Profile> {
    PRESETS
        .iter()
        .find(|p| p.0 == name)
        .map(|&(name, width, height, fps, kbps)| Profile {
            name: name.to_owned(),
            width,
            height,
            bitrate_bps: kbps * 1000,
            fps,
            fps_den: 1,
            gop: None,
            h264_profile: H264Profile::EncoderDefault,
        })
}
