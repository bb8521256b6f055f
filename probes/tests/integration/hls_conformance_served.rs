//! The HLS conformance rules judged through a real puller: a small live HLS server written here
//! serves a conforming stream, and variants of it that each break exactly one rule by how they
//! are served (headers, the playlist's text and its evolution over time, segment responses and
//! sizes, the master's tags and attributes, low-latency parts, real media); an `HlsPuller` pulls
//! each one and its sink feeds a `StreamConformance`, exactly as the stream probe does. Every
//! case must find exactly its one rule, the three baselines (plain, low-latency, decoded) none,
//! and together the cases must find every rule of the catalogue but those of [`NOT_SERVED`].
//!
//! Time is scaled down: the target duration is 1 s, each segment's EXTINF 1 s, and the server
//! lists one new segment every [`STEP`] (faster than real time, which no rule forbids), so a
//! pull lasts a few seconds; all cases run at once on one runtime (about 7 s, the Stale case's).
//!
//! Most segments are opaque TS-packet-sized bytes judged with `decoded = None`. The cases of
//! the rules that judge decoded media serve real MPEG-TS segments that ffmpeg makes once per run
//! ([`RealSegments`]) and decode each pulled segment with `decode_segment`, as the stream probe
//! does.
//!
//! Not served, and why: HLS-SEGMENT-AFTER-ENDLIST. The puller stops reloading a playlist once it
//! lists EXT-X-ENDLIST, so it never sees a segment added after the tag, nor the tag removed.
//!
//! Some cases break their rule in the one way the puller still reads (its m3u8 parser, m3u8-rs,
//! refuses a playlist whose first line does not start with `#EXTM3U`, a BANDWIDTH that is no
//! number, a RESOLUTION that is not `<w>x<h>`, and reads a playlist as the kind its first known
//! tag belongs to): `#EXTM3U` followed by a comment on its line, BANDWIDTH `+200000`, an
//! attribute named twice, a master tag after the media tags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use probes::conformance::{RULES, rule};
use probes::stream_conformance::{SegmentMeta, StreamConformance};
use probes::{HlsOptions, HlsPuller, PullEvent, decode_segment, http_client, pull_stop};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::{read_request_path, runtime};

/// Wall time between two new segments of the live playlist.
const STEP: Duration = Duration::from_millis(500);
/// Segments listed at once (Apple's minimum for a live playlist).
const WINDOW: u64 = 6;
/// The window's first segment once the playlist ends (EXT-X-ENDLIST).
const LAST_BASE: u64 = 8;
/// The last segment listed.
const LAST_SEQ: u64 = LAST_BASE + WINDOW - 1;
/// Bytes of each segment: 20 TS packets, 30 kbit/s at 1 s.
const SEGMENT_BYTES: usize = 188 * 20;
/// Stale case: the playlist stops growing at this window start ...
const FREEZE_AT: u64 = 2;
/// ... for this many steps (3 s, twice the 1.5 s a 1 s target duration allows).
const FREEZE_STEPS: u64 = 6;
/// Reappeared case: this segment is listed with the URI of [`REUSED`], which left long before.
const REUSING: u64 = 11;
const REUSED: u64 = 2;
/// The segment the 404 and empty cases break.
const BROKEN_SEGMENT: u64 = 3;

const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=200000,AVERAGE-BANDWIDTH=150000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
v0/index.m3u8
";

/// How the served stream breaks a rule, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    Conforming,
    /// The media playlist (a `.m3u8` path) as `text/plain`.
    PlaylistTextPlain,
    /// The live media playlist without Cache-Control.
    NoCacheControl,
    /// The live media playlist cacheable for a minute.
    CacheMaxAge60,
    /// One refresh lists the window one segment back.
    SequenceBack,
    /// The playlist lists nothing new for 3 s, without EXT-X-ENDLIST.
    Stale,
    /// A segment URI that left the window is listed again for a new segment.
    Reappeared,
    /// One segment answers 404.
    Segment404,
    /// One segment answers 200 with no body.
    SegmentEmpty,
    /// The master's EXT-X-STREAM-INF has no CODECS.
    CodecsMissing,
    /// The master's first line is `#EXTM3U` followed by a comment.
    ExtM3uNotAlone,
    /// The master starts with a byte order mark.
    MasterBom,
    /// The master's path has no `.m3u8` and it is served as `text/plain`.
    MasterUnidentified,
    /// The media playlist has EXT-X-TARGETDURATION twice.
    TargetDurationTwice,
    /// The media playlist has a master tag (EXT-X-SESSION-DATA), after EXT-X-TARGETDURATION
    /// (m3u8-rs reads a playlist as the kind its first known tag belongs to).
    SessionDataInMedia,
    /// The master's EXT-X-STREAM-INF names FRAME-RATE twice.
    AttributeTwice,
    /// The media playlist says version 2 and has decimal EXTINFs (version 3).
    Version2,
    /// The media playlist has EXT-X-ALLOW-CACHE.
    AllowCache,
    /// The master's EXT-X-STREAM-INF has PROGRAM-ID.
    ProgramId,
    /// The media playlist has an EXT-X-KEY without METHOD.
    KeyWithoutMethod,
    /// The media playlist's EXT-X-TARGETDURATION is `1.5`. m3u8-rs reads it as 1 followed by a
    /// segment URI `.5`, which the server answers, so the puller is not failed by it.
    TargetDurationDecimal,
    /// One EXTINF is 1.6 s at a target duration of 1 s.
    ExtinfOverTarget,
    /// The target duration becomes 2 s while the stream plays.
    TargetDurationGrows,
    /// One EXTINF is not a number.
    ExtinfNotNumber,
    /// One segment has no EXTINF.
    ExtinfDropped,
    /// While live, the playlist ends with an EXTINF and no URI line.
    UriMissing,
    /// EXT-X-MEDIA-SEQUENCE comes after the first segment.
    MediaSequenceLate,
    /// EXT-X-DISCONTINUITY-SEQUENCE goes from 5 to 4.
    DiscontinuitySequenceBack,
    /// A listed segment's EXTINF changes from one refresh to the next.
    DurationChanged,
    /// An EXT-X-DISCONTINUITY leaves the window without EXT-X-DISCONTINUITY-SEQUENCE.
    DiscontinuityLeaves,
    /// Each segment is 0.45 s: six of them are shorter than 3 × the target duration.
    ShortWindow,
    /// Five segments are listed at once.
    FiveSegments,
    /// No EXT-X-PROGRAM-DATE-TIME.
    NoProgramDate,
    /// One segment is dated two seconds before its predecessor.
    ProgramDateBack,
    /// Segments named `.m4s` (fragmented MP4) without EXT-X-MAP.
    Fmp4WithoutMap,
    /// Segments served as `application/octet-stream`.
    SegmentOctetStream,
    /// The master ends with an EXT-X-STREAM-INF and no URI line.
    StreamInfWithoutUri,
    /// The master's BANDWIDTH is `+200000`, which is no decimal-integer (Rust parses it).
    BandwidthSigned,
    /// The master's EXT-X-STREAM-INF has no RESOLUTION.
    ResolutionMissing,
    /// The master's EXT-X-STREAM-INF has no FRAME-RATE.
    FrameRateMissing,
    /// The master's EXT-X-STREAM-INF has no AVERAGE-BANDWIDTH.
    AverageBandwidthMissing,
    /// The master's EXT-X-STREAM-INF names an AUDIO group that no EXT-X-MEDIA has.
    AudioGroupMissing,
    /// The master has no EXT-X-INDEPENDENT-SEGMENTS.
    IndependentSegmentsMissing,
    /// One segment is 300 kbit/s for a BANDWIDTH of 200 kbit/s.
    PeakBitrate,
    /// Every segment is 200 kbit/s for an AVERAGE-BANDWIDTH of 150 kbit/s.
    AverageBitrate,
    /// Low latency: the newest two segments listed as four parts of 0.25 s each, the next part
    /// hinted, blocking reloads offered; conforming.
    LowLatency,
    /// Low latency without EXT-X-PART-INF.
    PartInfMissing,
    /// Low latency with one part of 0.3 s for a PART-TARGET of 0.25 s.
    PartOverTarget,
    /// Low latency with a PART-HOLD-BACK of 0.4 s, under twice the PART-TARGET.
    PartHoldBackShort,
    /// Low latency, blocking reloads offered, without EXT-X-PRELOAD-HINT.
    PreloadHintMissing,
    /// Real segments (1 s of H.264 at 30 fps and AAC, made by ffmpeg), decoded as the stream
    /// probe decodes them, at 10 × the bandwidth of the opaque cases; conforming.
    Decoded,
    /// Real segments listed with EXTINF 0.9 s.
    DecodedExtinfShort,
    /// Real segments of 1.52 s (38 frames at 25 fps) listed with EXTINF 1.49 s.
    DecodedOverTarget,
    /// Real H.264 segments declared as HEVC.
    DecodedCodecsHevc,
    /// Real 640×360 segments declared 1280×720.
    DecodedResolution720,
    /// Real 30 fps segments declared FRAME-RATE=24.000.
    DecodedFrameRate24,
    /// A second variant (`v1`) whose real segments start 0.1 s (three frames) later than the
    /// first's.
    DecodedTimeline,
    /// One real segment cut from an intra-refresh stream between refreshes: its first decoded
    /// frame is not a key frame (its EXTINF is its decoded duration).
    DecodedNotKeyframe,
}

impl Case {
    /// Whether the case serves real segments and decodes them.
    fn decoded(self) -> bool {
        matches!(
            self,
            Case::Decoded
                | Case::DecodedExtinfShort
                | Case::DecodedOverTarget
                | Case::DecodedCodecsHevc
                | Case::DecodedResolution720
                | Case::DecodedFrameRate24
                | Case::DecodedTimeline
                | Case::DecodedNotKeyframe
        )
    }

    /// Whether the case serves a low-latency playlist (parts).
    fn low_latency(self) -> bool {
        matches!(
            self,
            Case::LowLatency
                | Case::PartInfMissing
                | Case::PartOverTarget
                | Case::PartHoldBackShort
                | Case::PreloadHintMissing
        )
    }
}

/// Whether a segment name (after `s`, before `.ts`) is a part's: `<seq>.<index>`.
fn is_part_name(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(seq, i)| seq.parse::<u64>().is_ok() && i.parse::<u64>().is_ok())
}

const CASES: &[(Case, Option<&str>)] = &[
    (Case::Conforming, None),
    (Case::PlaylistTextPlain, Some("HLS-PLAYLIST-MIME-TYPE")),
    (Case::NoCacheControl, Some("HLS-PLAYLIST-CACHE-CONTROL")),
    (Case::CacheMaxAge60, Some("HLS-PLAYLIST-CACHE-CONTROL")),
    (Case::SequenceBack, Some("HLS-MEDIA-SEQUENCE-DECREASED")),
    (Case::Stale, Some("HLS-PLAYLIST-STALE")),
    (Case::Reappeared, Some("HLS-SEGMENT-REAPPEARED")),
    (Case::Segment404, Some("HLS-SEGMENT-UNAVAILABLE")),
    (Case::SegmentEmpty, Some("HLS-SEGMENT-EMPTY")),
    (Case::CodecsMissing, Some("HLS-STREAM-INF-CODECS-MISSING")),
    (Case::ExtM3uNotAlone, Some("HLS-EXTM3U-MISSING")),
    (Case::MasterBom, Some("HLS-PLAYLIST-ENCODING")),
    (Case::MasterUnidentified, Some("HLS-PLAYLIST-CONTENT-TYPE")),
    (Case::TargetDurationTwice, Some("HLS-TAG-DUPLICATE")),
    (Case::SessionDataInMedia, Some("HLS-MIXED-PLAYLIST")),
    (Case::AttributeTwice, Some("HLS-TAG-VALUE-INVALID")),
    (Case::Version2, Some("HLS-VERSION-INCOMPATIBLE")),
    (Case::AllowCache, Some("HLS-ALLOW-CACHE-REMOVED")),
    (Case::ProgramId, Some("HLS-PROGRAM-ID-REMOVED")),
    (
        Case::KeyWithoutMethod,
        Some("HLS-REQUIRED-ATTRIBUTE-MISSING"),
    ),
    (
        Case::TargetDurationDecimal,
        Some("HLS-TARGETDURATION-INVALID"),
    ),
    (Case::ExtinfOverTarget, Some("HLS-TARGETDURATION-EXCEEDED")),
    (
        Case::TargetDurationGrows,
        Some("HLS-TARGETDURATION-CHANGED"),
    ),
    (Case::ExtinfNotNumber, Some("HLS-EXTINF-INVALID")),
    (Case::ExtinfDropped, Some("HLS-EXTINF-MISSING")),
    (Case::UriMissing, Some("HLS-SEGMENT-URI-MISSING")),
    (Case::MediaSequenceLate, Some("HLS-SEQUENCE-TAG-LATE")),
    (
        Case::DiscontinuitySequenceBack,
        Some("HLS-DISCONTINUITY-SEQUENCE-DECREASED"),
    ),
    (Case::DurationChanged, Some("HLS-SEGMENT-CHANGED")),
    (
        Case::DiscontinuityLeaves,
        Some("HLS-DISCONTINUITY-NUMBER-CHANGED"),
    ),
    (Case::ShortWindow, Some("HLS-WINDOW-TOO-SHORT")),
    (Case::FiveSegments, Some("HLS-WINDOW-FEW-SEGMENTS")),
    (Case::NoProgramDate, Some("HLS-PROGRAM-DATE-TIME-MISSING")),
    (
        Case::ProgramDateBack,
        Some("HLS-PROGRAM-DATE-TIME-BACKWARDS"),
    ),
    (Case::Fmp4WithoutMap, Some("HLS-MAP-MISSING")),
    (Case::SegmentOctetStream, Some("HLS-SEGMENT-CONTENT-TYPE")),
    (
        Case::StreamInfWithoutUri,
        Some("HLS-STREAM-INF-URI-MISSING"),
    ),
    (Case::BandwidthSigned, Some("HLS-STREAM-INF-BANDWIDTH")),
    (
        Case::ResolutionMissing,
        Some("HLS-STREAM-INF-RESOLUTION-MISSING"),
    ),
    (
        Case::FrameRateMissing,
        Some("HLS-STREAM-INF-FRAME-RATE-MISSING"),
    ),
    (
        Case::AverageBandwidthMissing,
        Some("HLS-STREAM-INF-AVERAGE-BANDWIDTH-MISSING"),
    ),
    (Case::AudioGroupMissing, Some("HLS-MEDIA-GROUP-MISSING")),
    (
        Case::IndependentSegmentsMissing,
        Some("HLS-INDEPENDENT-SEGMENTS-MISSING"),
    ),
    (Case::PeakBitrate, Some("HLS-VARIANT-PEAK-BITRATE")),
    (Case::AverageBitrate, Some("HLS-VARIANT-AVERAGE-BITRATE")),
    (Case::LowLatency, None),
    (Case::PartInfMissing, Some("HLS-PART-INF-MISSING")),
    (Case::PartOverTarget, Some("HLS-PART-OVER-TARGET")),
    (Case::PartHoldBackShort, Some("HLS-PART-HOLD-BACK")),
    (Case::PreloadHintMissing, Some("HLS-PRELOAD-HINT-MISSING")),
    (Case::Decoded, None),
    (
        Case::DecodedExtinfShort,
        Some("HLS-SEGMENT-DURATION-MISMATCH"),
    ),
    (Case::DecodedOverTarget, Some("HLS-SEGMENT-OVER-TARGET")),
    (Case::DecodedCodecsHevc, Some("HLS-VARIANT-CODECS-MISMATCH")),
    (
        Case::DecodedResolution720,
        Some("HLS-VARIANT-RESOLUTION-MISMATCH"),
    ),
    (
        Case::DecodedFrameRate24,
        Some("HLS-VARIANT-FRAME-RATE-MISMATCH"),
    ),
    (Case::DecodedTimeline, Some("HLS-TIMELINE-MISALIGNED")),
    (Case::DecodedNotKeyframe, Some("HLS-SEGMENT-NOT-KEYFRAME")),
];

/// The rules no case here serves (the module header says why); every other rule of the
/// catalogue must be found.
const NOT_SERVED: &[&str] = &["HLS-SEGMENT-AFTER-ENDLIST"];

/// An HTTP/1.1 response that closes the connection, with an optional Cache-Control.
fn response(status: &str, content_type: &str, cache_control: Option<&str>, body: &[u8]) -> Vec<u8> {
    let cache = cache_control.map_or_else(String::new, |c| format!("Cache-Control: {c}\r\n"));
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{cache}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The program date of segment `seq`: 1 s apart from 01:00:00.
fn date(seq: u64) -> String {
    let s = 3600 + seq;
    format!(
        "2026-11-22T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The window start after `steps` steps of wall time.
fn window_start(case: Case, steps: u64) -> u64 {
    let base = if case != Case::Stale || steps <= FREEZE_AT {
        steps
    } else if steps < FREEZE_AT + FREEZE_STEPS {
        FREEZE_AT
    } else {
        steps - FREEZE_STEPS
    };
    base.min(LAST_BASE)
}

/// The master playlist of `case`: [`MASTER`], or it changed in the one way that breaks its rule.
fn master_playlist(case: Case) -> String {
    let master = if case.decoded() {
        MASTER.replacen(
            "BANDWIDTH=200000,AVERAGE-BANDWIDTH=150000",
            "BANDWIDTH=2000000,AVERAGE-BANDWIDTH=1500000",
            1,
        )
    } else {
        MASTER.to_string()
    };
    let edit = |from: &str, to: &str| {
        assert!(master.contains(from), "{from}");
        master.replacen(from, to, 1)
    };
    match case {
        Case::DecodedCodecsHevc => edit("avc1.64001f", "hvc1.1.6.L93.B0"),
        Case::DecodedResolution720 => edit("RESOLUTION=640x360", "RESOLUTION=1280x720"),
        Case::DecodedFrameRate24 => edit("FRAME-RATE=30.000", "FRAME-RATE=24.000"),
        Case::DecodedTimeline => {
            let (_, variant) = master.split_once("#EXT-X-STREAM-INF").unwrap();
            format!("{master}#EXT-X-STREAM-INF{}", variant.replace("v0/", "v1/"))
        }
        Case::CodecsMissing => edit(",CODECS=\"avc1.64001f,mp4a.40.2\"", ""),
        Case::MasterBom => format!("\u{FEFF}{MASTER}"),
        Case::ExtM3uNotAlone => edit("#EXTM3U\n", "#EXTM3U #live\n"),
        Case::AttributeTwice => edit("FRAME-RATE=30.000", "FRAME-RATE=30.000,FRAME-RATE=30.000"),
        Case::ProgramId => edit("STREAM-INF:BANDWIDTH", "STREAM-INF:PROGRAM-ID=1,BANDWIDTH"),
        Case::StreamInfWithoutUri => format!(
            "{MASTER}#EXT-X-STREAM-INF:BANDWIDTH=400000,AVERAGE-BANDWIDTH=300000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\n"
        ),
        Case::BandwidthSigned => edit("BANDWIDTH=200000,", "BANDWIDTH=+200000,"),
        Case::ResolutionMissing => edit(",RESOLUTION=640x360", ""),
        Case::FrameRateMissing => edit(",FRAME-RATE=30.000", ""),
        Case::AverageBandwidthMissing => edit("AVERAGE-BANDWIDTH=150000,", ""),
        Case::AudioGroupMissing => edit("BANDWIDTH=200000,", "BANDWIDTH=200000,AUDIO=\"aac\","),
        Case::IndependentSegmentsMissing => edit("#EXT-X-INDEPENDENT-SEGMENTS\n", ""),
        _ => master,
    }
}

/// The path the master is served at: `.m3u8`, except where the case breaks that.
fn master_path(case: Case) -> &'static str {
    if case == Case::MasterUnidentified {
        "/live/index"
    } else {
        "/live/index.m3u8"
    }
}

/// The media playlist listing [`WINDOW`] segments from `base`, each dated, 1 s long, at a
/// target duration of 1 s; ended at [`LAST_BASE`]; then changed as `case` breaks it.
fn media_playlist(case: Case, base: u64) -> String {
    // FiveSegments lists the same last segment, one fewer before it.
    let first = if case == Case::FiveSegments {
        base + 1
    } else {
        base
    };
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    let unkeyed_extinf =
        (case == Case::DecodedNotKeyframe).then(|| format!("{:.3}", real_segments().unkeyed_secs));
    for seq in first..base + WINDOW {
        let uri = if case == Case::Reappeared && seq == REUSING {
            REUSED
        } else {
            seq
        };
        let extension = if case == Case::Fmp4WithoutMap {
            "m4s"
        } else {
            "ts"
        };
        let extinf = match case {
            Case::DecodedNotKeyframe if seq == BROKEN_SEGMENT => unkeyed_extinf.as_deref(),
            Case::ExtinfOverTarget if seq == BROKEN_SEGMENT + 2 => Some("1.600"),
            Case::ExtinfNotNumber if seq == BROKEN_SEGMENT + 2 => Some("one"),
            Case::ExtinfDropped if seq == BROKEN_SEGMENT + 2 => None,
            Case::DurationChanged if seq == BROKEN_SEGMENT + 3 && base >= 3 => Some("0.900"),
            Case::ShortWindow => Some("0.450"),
            Case::DecodedExtinfShort => Some("0.900"),
            Case::DecodedOverTarget => Some("1.490"),
            _ => Some("1.000"),
        };
        let dated = if case == Case::ProgramDateBack && seq == BROKEN_SEGMENT + 3 {
            seq - 2
        } else {
            seq
        };
        if case == Case::DiscontinuityLeaves && seq == BROKEN_SEGMENT {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if case != Case::NoProgramDate {
            text.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:{}\n", date(dated)));
        }
        if case.low_latency() && seq + 2 >= base + WINDOW {
            for i in 0..4 {
                let duration = if case == Case::PartOverTarget && i == 1 {
                    "0.3"
                } else {
                    "0.25"
                };
                let independent = if i == 0 { ",INDEPENDENT=YES" } else { "" };
                text.push_str(&format!(
                    "#EXT-X-PART:DURATION={duration},URI=\"s{seq}.{i}.ts\"{independent}\n"
                ));
            }
        }
        if let Some(extinf) = extinf {
            text.push_str(&format!("#EXTINF:{extinf},\n"));
        }
        text.push_str(&format!("s{uri}.{extension}\n"));
    }
    if case == Case::UriMissing && (2..LAST_BASE).contains(&base) {
        text.push_str("#EXTINF:1.000,\n");
    }
    if base >= LAST_BASE {
        text.push_str("#EXT-X-ENDLIST\n");
    } else if case.low_latency() && case != Case::PreloadHintMissing {
        text.push_str(&format!(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s{}.0.ts\"\n",
            base + WINDOW
        ));
    }
    if case.low_latency() {
        let hold_back = if case == Case::PartHoldBackShort {
            "0.4"
        } else {
            "0.75"
        };
        let part_inf = if case == Case::PartInfMissing {
            ""
        } else {
            "#EXT-X-PART-INF:PART-TARGET=0.25\n"
        };
        text = text.replacen(
            "#EXT-X-TARGETDURATION:1\n",
            &format!(
                "#EXT-X-TARGETDURATION:1\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back}\n{part_inf}"
            ),
            1,
        );
    }
    let header = |text: String, after: &str, tag: &str| {
        assert!(text.contains(after), "{after}");
        text.replacen(after, &format!("{after}{tag}"), 1)
    };
    match case {
        Case::TargetDurationTwice => header(
            text,
            "#EXT-X-TARGETDURATION:1\n",
            "#EXT-X-TARGETDURATION:1\n",
        ),
        Case::SessionDataInMedia => header(
            text,
            "#EXT-X-TARGETDURATION:1\n",
            "#EXT-X-SESSION-DATA:DATA-ID=\"com.example\",VALUE=\"x\"\n",
        ),
        Case::Version2 => text.replacen("#EXT-X-VERSION:3", "#EXT-X-VERSION:2", 1),
        Case::AllowCache => header(text, "#EXT-X-VERSION:3\n", "#EXT-X-ALLOW-CACHE:NO\n"),
        Case::KeyWithoutMethod => header(
            text,
            "#EXT-X-VERSION:3\n",
            "#EXT-X-KEY:URI=\"https://keys.example/k\"\n",
        ),
        Case::TargetDurationDecimal => text.replacen(
            "#EXT-X-TARGETDURATION:1\n",
            "#EXT-X-TARGETDURATION:1.5\n",
            1,
        ),
        Case::TargetDurationGrows if base >= 3 => {
            text.replacen("#EXT-X-TARGETDURATION:1\n", "#EXT-X-TARGETDURATION:2\n", 1)
        }
        Case::MediaSequenceLate => {
            let tag = format!("#EXT-X-MEDIA-SEQUENCE:{first}\n");
            let uri = format!("s{first}.ts\n");
            text.replacen(&tag, "", 1)
                .replacen(&uri, &format!("{uri}{tag}"), 1)
        }
        Case::DiscontinuitySequenceBack => {
            let value = if base >= 3 { 4 } else { 5 };
            header(
                text,
                "#EXT-X-TARGETDURATION:1\n",
                &format!("#EXT-X-DISCONTINUITY-SEQUENCE:{value}\n"),
            )
        }
        _ => text,
    }
}

/// The first segment the case lists.
fn first_seq(case: Case) -> u64 {
    if case == Case::FiveSegments { 1 } else { 0 }
}

/// The body of segment `seq`: [`SEGMENT_BYTES`], or as many as the case's bit rate needs.
fn segment_body(case: Case, variant: &str, seq: u64) -> Vec<u8> {
    match case {
        Case::DecodedOverTarget => return real_segments().long.clone(),
        Case::DecodedTimeline if variant == "v1" => return real_segments().late.clone(),
        Case::DecodedNotKeyframe if seq == BROKEN_SEGMENT => {
            return real_segments().unkeyed.clone();
        }
        _ if case.decoded() => return real_segments().second.clone(),
        _ => {}
    }
    let packets = match case {
        // 37 600 bytes in 1 s: 300.8 kbit/s, over 125 % of BANDWIDTH=200000.
        Case::PeakBitrate if seq == BROKEN_SEGMENT => 200,
        // 25 004 bytes in 1 s: 200 kbit/s, over 110 % of AVERAGE-BANDWIDTH=150000 and under
        // 125 % of BANDWIDTH.
        Case::AverageBitrate => 133,
        _ => SEGMENT_BYTES / 188,
    };
    vec![0x47; 188 * packets]
}

/// Real MPEG-TS segments, made once by ffmpeg: 640×360 H.264 (a key frame first) with AAC.
struct RealSegments {
    /// 1 s: 30 frames at 30 fps.
    second: Vec<u8>,
    /// 1.52 s: 38 frames at 25 fps.
    long: Vec<u8>,
    /// [`Self::second`]'s media with timestamps 0.1 s later.
    late: Vec<u8>,
    /// The second second of an intra-refresh stream (a refresh every 10 frames), cut without
    /// regard to key frames: decoding starts at a refresh, on a P frame.
    unkeyed: Vec<u8>,
    /// [`Self::unkeyed`]'s duration as decoded.
    unkeyed_secs: f64,
}

fn real_segments() -> &'static RealSegments {
    static SEGMENTS: OnceLock<RealSegments> = OnceLock::new();
    SEGMENTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, rate: u32, frames: u32, offset: &str| {
            let path = dir.path().join(name);
            testkit::ffmpeg::run(&[
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc2=size=640x360:rate={rate}"),
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-frames:v",
                &frames.to_string(),
                "-shortest",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-g",
                &frames.to_string(),
                "-b:v",
                "300k",
                "-c:a",
                "aac",
                "-b:a",
                "32k",
                "-output_ts_offset",
                offset,
                "-f",
                "mpegts",
                path.to_str().unwrap(),
            ]);
            std::fs::read(path).unwrap()
        };
        let pattern = dir.path().join("unkeyed%d.ts");
        testkit::ffmpeg::run(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-frames:v",
            "60",
            "-shortest",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-x264-params",
            "keyint=10:intra-refresh=1:repeat-headers=1",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            "300k",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-f",
            "segment",
            "-segment_time",
            "1",
            "-break_non_keyframes",
            "1",
            "-segment_format",
            "mpegts",
            pattern.to_str().unwrap(),
        ]);
        let unkeyed = std::fs::read(dir.path().join("unkeyed1.ts")).unwrap();
        let decoded = decode_segment(&unkeyed).unwrap();
        assert!(
            !decoded.frames[0].is_key,
            "the cut segment's first decoded frame is a key frame"
        );
        RealSegments {
            unkeyed_secs: decoded.duration_secs(),
            unkeyed,
            second: make("second.ts", 30, 30, "0"),
            long: make("long.ts", 25, 38, "0"),
            late: make("late.ts", 30, 30, "0.1"),
        }
    })
}

/// What the server remembers between requests.
#[derive(Default)]
struct Served {
    /// The window start of the last media playlist served.
    last_base: Option<u64>,
    /// Whether the one refresh that goes back was served (SequenceBack).
    went_back: bool,
}

/// Serves `/live/index.m3u8` (the master), `/live/v0/index.m3u8` (the live media playlist)
/// and `/live/v0/s<n>.ts`, broken as `case` says; returns its port.
async fn live_server(case: Case) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let born = Instant::now();
    let served: Arc<Mutex<Served>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let served = served.clone();
            tokio::spawn(async move {
                let Some(path) = read_request_path(&mut conn).await else {
                    return;
                };
                // Blocking reloads (`?_HLS_msn=…`) are answered at once, like plain ones.
                let path = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
                let (variant, file) = path
                    .strip_prefix("/live/")
                    .and_then(|p| p.split_once('/'))
                    .unwrap_or_default();
                let name = file
                    .strip_prefix('s')
                    .and_then(|p| p.strip_suffix(".ts").or_else(|| p.strip_suffix(".m4s")));
                let reply = match path {
                    p if p == master_path(case) => response(
                        "200 OK",
                        if case == Case::MasterUnidentified {
                            "text/plain"
                        } else {
                            "application/vnd.apple.mpegurl"
                        },
                        None,
                        master_playlist(case).as_bytes(),
                    ),
                    "/live/v0/index.m3u8" | "/live/v1/index.m3u8" => {
                        let steps = (born.elapsed().as_millis() / STEP.as_millis()) as u64;
                        let mut base = window_start(case, steps);
                        {
                            let mut s = served.lock().unwrap();
                            if case == Case::SequenceBack
                                && !s.went_back
                                && let Some(last) = s.last_base.filter(|l| *l >= 2)
                            {
                                s.went_back = true;
                                base = last - 1;
                            }
                            s.last_base = Some(base);
                        }
                        let content_type = if case == Case::PlaylistTextPlain {
                            "text/plain"
                        } else {
                            "application/vnd.apple.mpegurl"
                        };
                        let cache = match case {
                            Case::NoCacheControl => None,
                            Case::CacheMaxAge60 => Some("max-age=60"),
                            _ => Some("no-cache"),
                        };
                        let text = media_playlist(case, base);
                        response("200 OK", content_type, cache, text.as_bytes())
                    }
                    _ => match name.and_then(|n| n.parse::<u64>().ok()) {
                        Some(BROKEN_SEGMENT) if case == Case::Segment404 => {
                            response("404 Not Found", "text/plain", None, b"gone")
                        }
                        Some(BROKEN_SEGMENT) if case == Case::SegmentEmpty => {
                            response("200 OK", "video/mp2t", None, b"")
                        }
                        Some(seq) => {
                            let content_type = if case == Case::SegmentOctetStream {
                                "application/octet-stream"
                            } else {
                                "video/mp2t"
                            };
                            response(
                                "200 OK",
                                content_type,
                                None,
                                &segment_body(case, variant, seq),
                            )
                        }
                        None if case == Case::TargetDurationDecimal && path == "/live/v0/.5" => {
                            response(
                                "200 OK",
                                "video/mp2t",
                                None,
                                &segment_body(case, variant, 0),
                            )
                        }
                        None if case.low_latency() && name.is_some_and(is_part_name) => {
                            response("200 OK", "video/mp2t", None, &[0x47; 188 * 5])
                        }
                        None => response("404 Not Found", "text/plain", None, b"no"),
                    },
                };
                let _ = conn.write_all(&reply).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    port
}

/// What one case's pull found: the rule IDs, every violation as text (for messages), how long
/// it took to reach the end of the stream, and how many segments it pulled.
struct Outcome {
    rules: BTreeSet<&'static str>,
    found: Vec<String>,
    took: Duration,
    segments: u64,
    /// Segments that failed: sequence number, HTTP status as pulled, error.
    failed: Vec<(u64, Option<u16>, String)>,
}

/// Pulls `case`'s stream to its end, judging every playlist and segment as the stream probe does.
async fn pull(case: Case) -> Outcome {
    let port = live_server(case).await;
    type State = (
        StreamConformance,
        Vec<(String, &'static str)>,
        u64,
        Vec<(u64, Option<u16>, String)>,
    );
    let state: Arc<Mutex<State>> = Arc::default();
    let sink = state.clone();
    // With a master playlist the puller re-reads it until its deadline; the pull is over once
    // the last segment (listed with EXT-X-ENDLIST) is delivered, so that stops it.
    let (stop_handle, stop) = pull_stop();
    let started = Instant::now();
    HlsPuller::new(
        http_client().unwrap(),
        &format!("http://127.0.0.1:{port}{}", master_path(case)),
        "conformance",
        HlsOptions::default(),
    )
    .unwrap()
    .run_until(
        started + Duration::from_secs(18),
        Arc::new(move |e: PullEvent| {
            let mut guard = sink.lock().unwrap();
            let (conformance, found, segments, failed) = &mut *guard;
            let new = match &e {
                PullEvent::Playlist(poll) => conformance.playlist(poll),
                PullEvent::Segment(s) => {
                    *segments += 1;
                    if let Err(err) = &s.body {
                        failed.push((s.seq, s.http_status, err.to_string()));
                    }
                    if s.seq == LAST_SEQ {
                        stop_handle.stop();
                    }
                    // Decoded on this worker, as the stream probe decodes on a blocking thread.
                    let decoded = match &s.body {
                        Ok(body) if case.decoded() => {
                            tokio::task::block_in_place(|| decode_segment(body).ok())
                        }
                        _ => None,
                    };
                    conformance.segment(&SegmentMeta::of(s), decoded.as_ref())
                }
                _ => Vec::new(),
            };
            found.extend(new.into_iter().map(|(_, v)| (v.to_string(), v.rule)));
        }),
        stop,
    )
    .await;
    let took = started.elapsed();
    let mut guard = state.lock().unwrap();
    let (conformance, found, segments, failed) = &mut *guard;
    let end = conformance.finish();
    found.extend(end.into_iter().map(|(_, v)| (v.to_string(), v.rule)));
    Outcome {
        rules: found.iter().map(|(_, r)| *r).collect(),
        found: found.iter().map(|(s, _)| s.clone()).collect(),
        took,
        segments: *segments,
        failed: failed.clone(),
    }
}

#[test]
fn each_served_fault_breaks_exactly_its_rule_and_the_conforming_stream_none() {
    real_segments();
    let rt = runtime();
    let outcomes: BTreeMap<Case, Outcome> = rt.block_on(async {
        let tasks: Vec<_> = CASES
            .iter()
            .map(|(case, _)| (*case, tokio::spawn(pull(*case))))
            .collect();
        let mut out = BTreeMap::new();
        for (case, task) in tasks {
            out.insert(case, task.await.unwrap());
        }
        out
    });
    for (case, outcome) in &outcomes {
        // Every pull reached the last segment well before its deadline (the longest, Stale,
        // lists it after about 7 s), and saw the whole stream: 0..=LAST_SEQ at least.
        assert!(
            outcome.took < Duration::from_secs(12),
            "{case:?} took {:?}",
            outcome.took
        );
        assert!(
            outcome.segments > LAST_SEQ - first_seq(*case),
            "{case:?} pulled {} segments",
            outcome.segments
        );
    }
    // Only the 404 case has failed segments: segment 3, its status kept.
    let failed: Vec<(Case, u64, Option<u16>)> = outcomes
        .iter()
        .flat_map(|(case, o)| o.failed.iter().map(move |(seq, st, _)| (*case, *seq, *st)))
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|f| *f == (Case::Segment404, BROKEN_SEGMENT, Some(404))),
        "{:?}",
        outcomes
            .iter()
            .map(|(c, o)| (c, &o.failed))
            .collect::<Vec<_>>()
    );
    assert!(
        outcomes[&Case::Segment404].failed[0].2.contains("404"),
        "{:?}",
        outcomes[&Case::Segment404].failed
    );
    let found: BTreeMap<Case, BTreeSet<&str>> = outcomes
        .iter()
        .map(|(case, o)| (*case, o.rules.clone()))
        .collect();
    let expected: BTreeMap<Case, BTreeSet<&str>> = CASES
        .iter()
        .map(|(case, rule)| (*case, rule.iter().copied().collect()))
        .collect();
    let details: Vec<String> = outcomes
        .iter()
        .flat_map(|(case, o)| o.found.iter().map(move |f| format!("{case:?}: {f}")))
        .collect();
    assert_eq!(found, expected, "violations found:\n{}", details.join("\n"));
    // Together the cases serve every rule but those named unservable.
    let served: BTreeSet<&str> = found.values().flatten().copied().collect();
    let servable: BTreeSet<&str> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !NOT_SERVED.contains(id))
        .collect();
    assert!(NOT_SERVED.iter().all(|id| rule(id).is_some()));
    assert_eq!(served, servable);
}
