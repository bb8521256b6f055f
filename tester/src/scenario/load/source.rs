//! `[source]`: the video the publishers send, synthetic (the default) or a user's file.

use std::path::PathBuf;
use std::time::Duration;

use super::super::model::*;
use super::super::reader::{Reader, Table};

/// The source of a scenario without `[source]`: 720p30, a key frame every 2 s, a 10 s loop.
pub(super) fn default() -> Source {
    Source::Synthetic(SyntheticSource {
        width: 1280,
        height: 720,
        fps: 30,
        gop: Duration::from_secs(2),
        clip: Duration::from_secs(10),
    })
}

pub(super) fn read(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Source> {
    let kind = reader
        .choice(t, "kind", &["synthetic", "file"])
        .unwrap_or("synthetic");
    if kind == "file" {
        return reader.strict(t, |reader| {
            let path = reader.string(t, "path");
            let gop = gop(reader, t);
            let path = reader.require(t, "path", "\"clip.mp4\"", path)?;
            Some(Source::File {
                path: PathBuf::from(path),
                gop,
            })
        });
    }
    reader.strict(t, |reader| {
        let width = reader.integer(t, "width", 64, 7680).unwrap_or(1280) as u32;
        let height = reader.integer(t, "height", 64, 4320).unwrap_or(720) as u32;
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            reader.error_at(
                t,
                "width",
                format!("{width}×{height}: width and height must be even (4:2:0 video)"),
                None,
            );
        }
        let fps = reader.integer(t, "fps", 1, 120).unwrap_or(30) as u32;
        let gop = gop(reader, t);
        let clip = reader
            .duration(t, "clip")
            .unwrap_or(Duration::from_secs(10));
        if clip < gop {
            reader.error_at(
                t,
                "clip",
                "the looped clip must be at least one GOP long",
                None,
            );
        }
        Some(Source::Synthetic(SyntheticSource {
            width,
            height,
            fps,
            gop,
            clip,
        }))
    })
}

/// The key-frame interval, 2 s unless given.
fn gop(reader: &mut Reader<'_>, t: &Table<'_>) -> Duration {
    let gop = reader.duration(t, "gop").unwrap_or(Duration::from_secs(2));
    if !(Duration::from_millis(100)..=Duration::from_secs(20)).contains(&gop) {
        reader.error_at(t, "gop", "a GOP must be between 100ms and 20s", None);
    }
    gop
}
