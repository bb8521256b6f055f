//! The mapping from a journal record to the live metric samples it stands for.
//!
//! A probe's observation becomes one journal record; the record's columns named in the metric
//! table ([`crate::metric::MetricDef::journal`]) are its samples, and its tag columns
//! ([`crate::metric::TAG_KEYS`]) are their tags. The tester feeds its live registry from the same
//! record it appends to the journal, and `lpt compare` reads the same columns back from the
//! journal, so a metric's live value and its journal value cannot disagree.

use std::collections::BTreeMap;

use crate::metric::{CATALOG, MetricDef, MetricKind, TAG_KEYS};
use crate::record::RecordKind;

/// A sample's tags: tag key → value, ordered so equal sets compare and hash equally.
pub type Tags = BTreeMap<String, String>;

/// Every metric sample `record` stands for: each metric whose journal column belongs to this
/// record kind (and whose row filter matches), with the column's value. A null column gives no
/// sample; a counter counts only non-zero values (a failed segment adds nothing to `segments`).
pub fn journal_samples<R: RecordKind>(
    record: &R,
) -> impl Iterator<Item = (&'static MetricDef, f64)> + '_ {
    CATALOG.iter().filter_map(move |def| {
        let source = def.journal?;
        if source.record != R::TYPE {
            return None;
        }
        if let Some((column, value)) = source.only
            && record.text(column) != Some(value)
        {
            return None;
        }
        let value = record.number(source.column)?;
        if def.kind == MetricKind::Counter && value == 0.0 {
            return None;
        }
        Some((def, value))
    })
}

/// The tags of `record`'s samples: every tag key that is a non-null text column of the record.
pub fn record_tags<R: RecordKind>(record: &R) -> Tags {
    TAG_KEYS
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), record.text(key)?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CheckRecord, QualitySample, SegmentRecord};

    fn segment(ok: bool, latency_ms: Option<f64>) -> SegmentRecord {
        SegmentRecord {
            t_ms: 1,
            workload: "w".into(),
            stream: "s".into(),
            rendition: "P144p30fps16x9".into(),
            seq: 3,
            orchestrator: None,
            region: None,
            ok,
            error: None,
            message: None,
            duration_s: Some(2.0),
            latency_ms,
            upload_ms: None,
            transcode_ms: None,
            download_ms: Some(12.0),
            round_trip_ms: None,
            bytes: Some(1000),
            bitrate_kbps: None,
            width: None,
            height: None,
            frames: None,
        }
    }

    fn names(samples: impl Iterator<Item = (&'static MetricDef, f64)>) -> Vec<(&'static str, f64)> {
        samples.map(|(d, v)| (d.name, v)).collect()
    }

    #[test]
    fn a_good_segment_feeds_success_count_latency_and_download() {
        let record = segment(true, Some(800.0));
        assert_eq!(
            names(journal_samples(&record)),
            [
                ("segment_success", 1.0),
                ("segments", 1.0),
                ("latency", 800.0),
                ("download_time", 12.0)
            ]
        );
        let tags = record_tags(&record);
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            [
                ("rendition".to_owned(), "P144p30fps16x9".to_owned()),
                ("stream".to_owned(), "s".to_owned()),
                ("workload".to_owned(), "w".to_owned()),
            ]
        );
    }

    #[test]
    fn a_failed_segment_counts_nothing_and_has_no_latency() {
        assert_eq!(
            names(journal_samples(&segment(false, None))),
            [("segment_success", 0.0), ("download_time", 12.0)]
        );
    }

    #[test]
    fn a_check_is_tagged_with_its_name() {
        let record = CheckRecord {
            t_ms: 1,
            workload: "w".into(),
            stream: "s".into(),
            rendition: Some("source".into()),
            seq: None,
            check: "duration".into(),
            ok: false,
            message: None,
            observed: None,
            expected: None,
        };
        assert_eq!(names(journal_samples(&record)), [("checks", 0.0)]);
        assert_eq!(record_tags(&record)["check"], "duration");
    }

    #[test]
    fn quality_samples_go_to_their_origin_s_metric() {
        let network = QualitySample {
            t_ms: 1,
            workload: "w".into(),
            stream: "s".into(),
            rendition: "r".into(),
            seq: 1,
            origin: "network".into(),
            orchestrator: Some("0xabc".into()),
            region: None,
            vmaf: Some(91.0),
            psnr: Some(40.0),
            frames: Some(60),
        };
        assert_eq!(
            names(journal_samples(&network)),
            [("vmaf", 91.0), ("psnr", 40.0)]
        );
        assert_eq!(record_tags(&network)["orchestrator"], "0xabc");
        let reference = QualitySample {
            origin: "reference".into(),
            vmaf: Some(93.0),
            psnr: None,
            ..network
        };
        assert_eq!(
            names(journal_samples(&reference)),
            [("vmaf_reference", 93.0)]
        );
    }
}
