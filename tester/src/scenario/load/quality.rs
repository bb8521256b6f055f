//! `[quality]`: VMAF scoring of the renditions against the source, off unless the table is there.

use super::super::model::*;
use super::super::reader::{Reader, Table};

/// Quality of a scenario without `[quality]`: not scored.
pub(super) fn default() -> Quality {
    Quality {
        enabled: false,
        sampling: Sampling::Auto,
        model: "vmaf_v0.6.1".into(),
        reference: true,
        threads: 1,
        subsample: 1,
    }
}

pub(super) fn read(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Quality> {
    reader.strict(t, |reader| {
        let enabled = reader.boolean(t, "enabled").unwrap_or(true);
        let sampling = match reader.item(t, "sample") {
            Some(item) if item.as_str() == Some("auto") => Sampling::Auto,
            Some(item) if item.as_str().is_some() => {
                reader.error_at(
                    t,
                    "sample",
                    "expected \"auto\" or a fraction of segments in 0..=1",
                    None,
                );
                Sampling::Auto
            }
            Some(_) => Sampling::Fraction(reader.number(t, "sample", 0.0, 1.0).unwrap_or(1.0)),
            None => Sampling::Auto,
        };
        Some(Quality {
            enabled,
            sampling,
            model: reader
                .choice(t, "model", &["vmaf_v0.6.1", "vmaf_4k_v0.6.1"])
                .unwrap_or("vmaf_v0.6.1")
                .to_owned(),
            reference: reader.boolean(t, "reference").unwrap_or(true),
            threads: reader.integer(t, "threads", 1, 256).unwrap_or(1) as u32,
            subsample: reader.integer(t, "subsample", 1, 1000).unwrap_or(1) as u32,
        })
    })
}
