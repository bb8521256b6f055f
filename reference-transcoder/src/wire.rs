//! Conversion between the wire's `VideoProfile` (protocol) and the transcoder's [`Profile`], in
//! one place for every side that speaks the wire: the broadcaster and the direct probe name their
//! ladder with [`to_wire`], the orchestrator turns each entry back with [`from_wire`].
//!
//! Design: [`from_wire`] validates, refusing what cannot be encoded with an error naming the
//! profile and field (a peer's bad profile is a 4xx, not a crash in FFmpeg). Behind the `wire`
//! feature, so crates that never touch the wire do not build the protocol crate.

use protocol::net::VideoProfile;
use protocol::net::video_profile::{Format, Profile as WireH264Profile, VideoCodec};

use crate::Profile;
use crate::ladder::{Gop, H264Profile};

/// A wire profile the orchestrator cannot transcode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {name:?}: {field} {reason}")]
pub struct WireProfileError {
    /// Profile name.
    pub name: String,
    /// Offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The wire form of a transcoder profile (what a broadcaster puts in `SegData.fullProfiles3`);
/// a profile that keeps the source frame rate goes out as 0/0, as go-livepeer sends it.
pub fn to_wire(profile: &Profile) -> VideoProfile {
    let h264 = match profile.h264_profile {
        H264Profile::None => WireH264Profile::EncoderDefault,
        H264Profile::Baseline => WireH264Profile::H264Baseline,
        H264Profile::Main => WireH264Profile::H264Main,
        H264Profile::High => WireH264Profile::H264High,
        H264Profile::ConstrainedHigh => WireH264Profile::H264ConstrainedHigh,
    };
    let gop = match profile.gop {
        Gop::Default => 0,
        Gop::IntraOnly => -1,
        Gop::Seconds(s) => (s * 1000.0).round() as i32,
    };
    let (fps, fps_den) = profile.fps().unwrap_or((0, 0));
    VideoProfile {
        name: profile.name.clone(),
        width: profile.width as i32,
        height: profile.height as i32,
        bitrate: profile.bitrate.min(i32::MAX as u64) as i32,
        fps,
        fps_den,
        profile: h264 as i32,
        gop,
        ..Default::default()
    }
}

/// The transcoder profile for a wire profile. An unnamed profile takes the name a go-livepeer
/// orchestrator gives it (`net_<w>x<h>_<bitrate>`, [`protocol::sig::wire_profile_name`]), which
/// the broadcaster's segment signature covers; MP4 output and a `quality` setting are refused by
/// name, since this transcoder would otherwise silently ignore them.
pub fn from_wire(wire: &VideoProfile) -> Result<Profile, WireProfileError> {
    let name = protocol::sig::wire_profile_name(wire).into_owned();
    let bad = |field, reason: String| WireProfileError {
        name: name.clone(),
        field,
        reason,
    };
    if name.len() > 64 {
        return Err(bad("name", "must be at most 64 characters".into()));
    }
    match Format::try_from(wire.format) {
        Ok(Format::Mpegts) => {}
        Ok(Format::Mp4) => return Err(bad("format", "MP4 output is not supported".into())),
        Err(_) => return Err(bad("format", format!("{} is unknown", wire.format))),
    }
    if wire.quality != 0 {
        return Err(bad(
            "quality",
            format!(
                "{} is not supported (constant-quality encoding)",
                wire.quality
            ),
        ));
    }
    if !(16..=7680).contains(&wire.width) || wire.width % 2 != 0 {
        return Err(bad(
            "width",
            format!("{} is not an even 16..=7680", wire.width),
        ));
    }
    if !(16..=4320).contains(&wire.height) || wire.height % 2 != 0 {
        return Err(bad(
            "height",
            format!("{} is not an even 16..=4320", wire.height),
        ));
    }
    if wire.bitrate < 1000 {
        return Err(bad(
            "bitrate",
            format!("{} is below 1000 bit/s", wire.bitrate),
        ));
    }
    if wire.encoder != VideoCodec::H264 as i32 {
        return Err(bad("encoder", format!("{} is not H.264", wire.encoder)));
    }
    let fps_den = if wire.fps_den == 0 { 1 } else { wire.fps_den };
    if wire.fps / fps_den > 240 {
        return Err(bad("fps", format!("{}/{} is above 240", wire.fps, fps_den)));
    }
    let h264_profile = match WireH264Profile::try_from(wire.profile) {
        Ok(WireH264Profile::EncoderDefault) => H264Profile::None,
        Ok(WireH264Profile::H264Baseline) => H264Profile::Baseline,
        Ok(WireH264Profile::H264Main) => H264Profile::Main,
        Ok(WireH264Profile::H264High) => H264Profile::High,
        Ok(WireH264Profile::H264ConstrainedHigh) => H264Profile::ConstrainedHigh,
        Err(_) => return Err(bad("profile", format!("{} is unknown", wire.profile))),
    };
    let gop = match wire.gop {
        0 => Gop::Default,
        g if g < 0 => Gop::IntraOnly,
        g => Gop::Seconds(f64::from(g) / 1000.0),
    };
    Ok(Profile {
        name,
        width: wire.width as u32,
        height: wire.height as u32,
        bitrate: wire.bitrate as u64,
        fps_num: wire.fps,
        fps_den,
        h264_profile,
        gop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converts a whole ladder.
    fn ladder(names: &str) -> Vec<VideoProfile> {
        crate::ladder::parse_ladder(names)
            .unwrap()
            .iter()
            .map(to_wire)
            .collect()
    }

    #[test]
    fn the_wire_carries_go_livepeer_field_values() {
        let wire = ladder("P360p30fps16x9");
        assert_eq!(
            (wire[0].width, wire[0].height, wire[0].fps, wire[0].fps_den),
            (640, 360, 30, 1)
        );
        assert_eq!(wire[0].encoder, VideoCodec::H264 as i32);
    }

    #[test]
    fn presets_round_trip_through_the_wire() {
        for name in Profile::preset_names() {
            let profile = Profile::preset(name).unwrap();
            assert_eq!(from_wire(&to_wire(&profile)).unwrap(), profile);
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut wire = to_wire(&Profile::preset("P240p30fps16x9").unwrap());
        wire.width = 3;
        assert_eq!(from_wire(&wire).unwrap_err().field, "width");
        let mut wire = to_wire(&Profile::preset("P240p30fps16x9").unwrap());
        wire.encoder = VideoCodec::Vp9 as i32;
        assert_eq!(from_wire(&wire).unwrap_err().field, "encoder");
        let mut wire = to_wire(&Profile::preset("P240p30fps16x9").unwrap());
        wire.format = Format::Mp4 as i32;
        let err = from_wire(&wire).unwrap_err();
        assert_eq!(
            (err.field, err.reason.as_str()),
            ("format", "MP4 output is not supported")
        );
        let mut wire = to_wire(&Profile::preset("P240p30fps16x9").unwrap());
        wire.quality = 23;
        assert_eq!(from_wire(&wire).unwrap_err().field, "quality");
    }

    #[test]
    fn unnamed_profile_takes_go_orchestrators_name() {
        let mut wire = to_wire(&Profile::preset("P360p30fps16x9").unwrap());
        wire.name.clear();
        let profile = from_wire(&wire).unwrap();
        assert_eq!(profile.name, format!("net_640x360_{}", wire.bitrate));
    }
}
