//! `[ladder]`: the renditions asked for, lpms presets by name and custom profiles.

use std::collections::BTreeSet;

use super::super::model::*;
use super::super::reader::{Reader, Table, join};
use super::sub_table;
use crate::hint::closest;

pub(super) fn read(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Vec<Profile>> {
    reader.strict(t, |reader| read_profiles(reader, t))
}

fn read_profiles(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Vec<Profile>> {
    let mut ladder = Vec::new();
    for (name, span) in reader.strings(t, "profiles").unwrap_or_default() {
        match Profile::preset(&name) {
            Ok(profile) => ladder.push(profile),
            Err(_) => {
                let hint = closest(&name, Profile::preset_names())
                    .map(|h| format!("did you mean `{h}`?"))
                    .or_else(|| Some("define it under [[ladder.custom]]".into()));
                reader.errors.error(
                    span,
                    &join(t.path(), "profiles"),
                    format!("unknown preset `{name}`"),
                    hint,
                );
            }
        }
    }
    for (index, custom) in reader
        .tables(t, "custom")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let c = sub_table(custom, t, index, "custom");
        if let Some(profile) = reader.strict(&c, |reader| read_custom_profile(reader, &c)) {
            ladder.push(profile);
        }
    }
    if reader.item(t, "profiles").is_none() && reader.item(t, "custom").is_none() {
        reader.require::<()>(
            t,
            "profiles",
            "[\"P240p30fps16x9\", \"P360p30fps16x9\"]",
            None,
        );
    }
    let mut seen = BTreeSet::new();
    for profile in &ladder {
        if !seen.insert(profile.name.clone()) {
            reader.error_at(
                t,
                "profiles",
                format!("profile `{}` appears twice", profile.name),
                None,
            );
        }
    }
    Some(ladder)
}

/// One `[[ladder.custom]]` profile.
fn read_custom_profile(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<Profile> {
    let name = reader.string(c, "name");
    let width = reader.integer(c, "width", 16, 7680);
    let height = reader.integer(c, "height", 16, 4320);
    let bitrate = bitrate(reader, c, "bitrate");
    let name = reader.require(c, "name", "\"P480p30fps16x9\"", name);
    let width = reader.require(c, "width", "854", width);
    let height = reader.require(c, "height", "480", height);
    let bitrate = reader.require(c, "bitrate", "\"1500k\"", bitrate);
    let fps_num = reader.integer(c, "fps", 0, 240).unwrap_or(0) as u32;
    let fps_den = reader.integer(c, "fps_den", 1, 1001).unwrap_or(1) as u32;
    let gop = reader
        .duration(c, "gop")
        .map_or(Gop::Default, |d| Gop::Seconds(d.as_secs_f64()));
    let h264_profile = match reader.choice(
        c,
        "profile",
        &["default", "baseline", "main", "high", "constrained-high"],
    ) {
        Some("baseline") => H264Profile::Baseline,
        Some("main") => H264Profile::Main,
        Some("high") => H264Profile::High,
        Some("constrained-high") => H264Profile::ConstrainedHigh,
        _ => H264Profile::None,
    };
    Some(Profile {
        name: name?,
        width: width? as u32,
        height: height? as u32,
        bitrate: bitrate?,
        fps_num,
        fps_den,
        gop,
        h264_profile,
    })
}

/// `600000`, `"600k"`, `"1.5M"` → bits per second.
fn bitrate(reader: &mut Reader<'_>, t: &Table<'_>, key: &str) -> Option<u64> {
    let item = reader.item(t, key)?;
    if let Some(n) = item.as_integer()
        && n > 0
    {
        return Some(n as u64);
    }
    let parsed = item.as_str().and_then(|text| {
        let text = text.trim();
        let (number, scale) = match text.char_indices().last()? {
            (i, 'k' | 'K') => (&text[..i], 1e3),
            (i, 'm' | 'M') => (&text[..i], 1e6),
            _ => (text, 1.0),
        };
        number
            .trim()
            .parse::<f64>()
            .ok()
            .map(|n| (n * scale).round())
    });
    match parsed {
        Some(bps) if bps >= 1.0 => Some(bps as u64),
        _ => {
            reader.error_at(
                t,
                key,
                "expected a bitrate such as 600000, \"600k\" or \"1.5M\"",
                None,
            );
            None
        }
    }
}
