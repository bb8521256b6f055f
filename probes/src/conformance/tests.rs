//! The catalogue's tests: a conforming live stream (master, media playlist refreshed over time,
//! segments, variants, renditions) that breaks nothing, and for every rule of [`RULES`] the same
//! stream changed in one way that breaks exactly that rule; then garbage, huge numbers and huge
//! playlists, which must never panic.

use std::fmt::Write;
use std::time::{Duration, Instant};

use super::*;

const MASTER_URL: &str = "https://cdn.example/live/s1/index.m3u8";
const MEDIA_URL: &str = "https://cdn.example/live/s1/P360p/index.m3u8";
const HD_URL: &str = "https://cdn.example/live/s1/P720p/index.m3u8";
const T0: i64 = 1_795_309_323_000;

const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=1000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000
P360p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2200000,AVERAGE-BANDWIDTH=2000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000
P720p/index.m3u8
";

fn http(at_ms: i64) -> HttpFacts {
    HttpFacts {
        status: 200,
        content_type: Some("application/vnd.apple.mpegurl".into()),
        cache_control: Some("no-cache".into()),
        at_unix_ms: at_ms,
    }
}

/// The program date of segment `seq`: 2 s apart from 01:00:00.
fn date(seq: u64) -> String {
    let s = 3600 + seq * 2;
    format!(
        "2026-11-22T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// A live media playlist listing `count` segments from `first`, each `extinf` long, at a
/// target duration of 2 s, every one dated.
fn media_with(first: u64, count: u64, extinf: &str) -> String {
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for seq in first..first + count {
        let _ = write!(
            s,
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{extinf},\nseg{seq}.ts\n",
            date(seq)
        );
    }
    s
}

/// The conforming window of refresh `i`: six 2 s segments from `i`.
fn media(i: u64) -> String {
    media_with(i, 6, "2.000")
}

/// Refreshes 0..`n` of the conforming live playlist, one every 2 s (each a new segment, the
/// oldest gone), each text passed through `edit(i, text)` first.
fn run_live(n: u64, edit: impl Fn(u64, String) -> String) -> Vec<Violation> {
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    (0..n)
        .flat_map(|i| checker.on_refresh(&edit(i, media(i)), &http(T0 + i as i64 * 2000)))
        .collect()
}

/// A low-latency live playlist after `p` parts of 0.5 s were published, four to a 2 s segment:
/// the newest six whole segments (dated), the parts of the newest two and of the segment being
/// made, and the hint of the next part.
fn ll_media(p: u64) -> String {
    let done = p / 4;
    let first = done.saturating_sub(6);
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5\n\
         #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
    );
    let parts = |s: &mut String, seq: u64, n: u64| {
        for i in 0..n {
            let independent = if i == 0 { ",INDEPENDENT=YES" } else { "" };
            let _ = writeln!(
                s,
                "#EXT-X-PART:DURATION=0.5,URI=\"part{seq}.{i}.m4s\"{independent}"
            );
        }
    };
    for seq in first..done {
        let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", date(seq));
        if seq + 2 >= done {
            parts(&mut s, seq, 4);
        }
        let _ = writeln!(s, "#EXTINF:2.000,\nseg{seq}.m4s");
    }
    parts(&mut s, done, p % 4);
    let _ = writeln!(
        s,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{done}.{}.m4s\"",
        p % 4
    );
    s
}

/// Refreshes of the low-latency playlist, one a part (0.5 s) from part 24 (six whole segments)
/// to part 24 + `n`, each text passed through `edit(p, text)` first.
fn run_ll(n: u64, edit: impl Fn(u64, String) -> String) -> Vec<Violation> {
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    (24..24 + n)
        .flat_map(|p| checker.on_refresh(&edit(p, ll_media(p)), &http(T0 + p as i64 * 500)))
        .collect()
}

/// A conforming segment `seq` of the 360p rendition: 2 s at 1 Mbit/s, 30 fps, a key frame first.
fn facts(seq: u64) -> SegmentFacts {
    SegmentFacts {
        seq,
        url: format!("https://cdn.example/live/s1/P360p/seg{seq}.ts"),
        http: HttpFacts {
            content_type: Some("video/mp2t".into()),
            cache_control: None,
            ..http(T0 + seq as i64 * 2000 + 300)
        },
        extinf_secs: 2.0,
        bytes: 250_000,
        target_duration_secs: Some(2.0),
        measured_duration_secs: Some(2.0),
        first_frame_is_key: Some(true),
        codec: Some("h264".into()),
        width: Some(640),
        height: Some(360),
        fps: Some(30.0),
        first_pts_secs: Some(seq as f64 * 2.0),
        audio_codec: Some("aac".into()),
    }
}

/// Segment `seq` as a media playlist checker that has read the conforming window judges it.
fn judge_segment(f: SegmentFacts) -> Vec<Violation> {
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    assert_eq!(checker.on_refresh(&media(0), &http(T0)), []);
    checker.on_segment(&f)
}

/// Six segments of the 360p variant, each `change`d, against the conforming master.
fn judge_variant(change: impl Fn(&mut SegmentFacts), finish: bool) -> Vec<Violation> {
    let mut checker = VariantChecker::new(MASTER_URL, MASTER);
    let mut out = Vec::new();
    for seq in 0..6 {
        let mut f = facts(seq);
        change(&mut f);
        out.extend(checker.on_segment(MEDIA_URL, &f));
    }
    if finish {
        out.extend(checker.finish());
    }
    out
}

fn master(text: &str) -> Vec<Violation> {
    check_master(MASTER_URL, text, &http(T0))
}

/// The conforming master with `from` replaced by `to` (which must be there).
fn master_edit(from: &str, to: &str) -> Vec<Violation> {
    assert!(MASTER.contains(from), "{from}");
    master(&MASTER.replacen(from, to, 1))
}

/// The one way of breaking rule `id`, and what the checkers report for it.
fn breaking_case(id: &str) -> Vec<Violation> {
    match id {
        "HLS-EXTM3U-MISSING" => master(&format!("\n{MASTER}")),
        "HLS-PLAYLIST-ENCODING" => {
            let mut out = master(&format!("\u{FEFF}{MASTER}"));
            out.extend(master_edit("P360p/index.m3u8", "P360p/index.m3u8\u{1}"));
            out
        }
        "HLS-PLAYLIST-CONTENT-TYPE" => check_master(
            "https://cdn.example/live/s1/index",
            MASTER,
            &HttpFacts {
                content_type: Some("text/plain".into()),
                ..http(T0)
            },
        ),
        "HLS-PLAYLIST-MIME-TYPE" => check_master(
            MASTER_URL,
            MASTER,
            &HttpFacts {
                content_type: Some("application/x-mpegURL".into()),
                ..http(T0)
            },
        ),
        "HLS-TAG-DUPLICATE" => run_live(3, |_, t| {
            t.replace(
                "#EXT-X-TARGETDURATION:2\n",
                "#EXT-X-TARGETDURATION:2\n#EXT-X-TARGETDURATION:2\n",
            )
        }),
        "HLS-MIXED-PLAYLIST" => run_live(3, |_, t| {
            t.replace(
                "#EXT-X-VERSION:3\n",
                "#EXT-X-VERSION:3\n#EXT-X-SESSION-DATA:DATA-ID=\"com.example\",VALUE=\"x\"\n",
            )
        }),
        "HLS-TAG-VALUE-INVALID" => master_edit("RESOLUTION=640x360", "RESOLUTION=640X360"),
        "HLS-VERSION-INCOMPATIBLE" => {
            run_live(3, |_, t| t.replace("#EXT-X-VERSION:3", "#EXT-X-VERSION:2"))
        }
        "HLS-ALLOW-CACHE-REMOVED" => run_live(3, |_, t| {
            t.replace(
                "#EXT-X-VERSION:3\n",
                "#EXT-X-VERSION:3\n#EXT-X-ALLOW-CACHE:NO\n",
            )
        }),
        "HLS-PROGRAM-ID-REMOVED" => master_edit(
            "STREAM-INF:BANDWIDTH=1100000",
            "STREAM-INF:PROGRAM-ID=1,BANDWIDTH=1100000",
        ),
        "HLS-REQUIRED-ATTRIBUTE-MISSING" => run_live(3, |_, t| {
            t.replace(
                "#EXT-X-VERSION:3\n",
                "#EXT-X-VERSION:3\n#EXT-X-KEY:URI=\"https://keys.example/k\"\n",
            )
        }),
        "HLS-TARGETDURATION-INVALID" => run_live(3, |_, t| {
            t.replace("#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:2.5")
        }),
        "HLS-TARGETDURATION-EXCEEDED" => run_live(6, |_, t| {
            t.replace("#EXTINF:2.000,\nseg3.ts", "#EXTINF:2.600,\nseg3.ts")
        }),
        "HLS-TARGETDURATION-CHANGED" => run_live(6, |i, t| {
            if i >= 3 {
                t.replace("#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:3")
            } else {
                t
            }
        }),
        "HLS-EXTINF-INVALID" => run_live(6, |_, t| {
            t.replace("#EXTINF:2.000,\nseg4.ts", "#EXTINF:two,\nseg4.ts")
        }),
        "HLS-EXTINF-MISSING" => run_live(6, |_, t| t.replace("#EXTINF:2.000,\nseg4.ts", "seg4.ts")),
        "HLS-SEGMENT-URI-MISSING" => {
            run_live(4, |i, t| if i == 2 { t + "#EXTINF:2.000,\n" } else { t })
        }
        "HLS-SEQUENCE-TAG-LATE" => run_live(3, |i, t| {
            let tag = format!("#EXT-X-MEDIA-SEQUENCE:{i}\n");
            let first = format!("seg{i}.ts\n");
            t.replace(&tag, "")
                .replacen(&first, &format!("{first}{tag}"), 1)
        }),
        "HLS-MEDIA-SEQUENCE-DECREASED" => run_live(4, |i, t| if i == 3 { media(1) } else { t }),
        "HLS-DISCONTINUITY-SEQUENCE-DECREASED" => run_live(3, |i, t| {
            let value = if i == 2 { 4 } else { 5 };
            t.replace(
                "#EXT-X-TARGETDURATION:2\n",
                &format!("#EXT-X-TARGETDURATION:2\n#EXT-X-DISCONTINUITY-SEQUENCE:{value}\n"),
            )
        }),
        "HLS-SEGMENT-CHANGED" => run_live(4, |i, t| {
            if i == 3 {
                t.replace("seg5.ts", "other.ts")
            } else {
                t
            }
        }),
        "HLS-DISCONTINUITY-NUMBER-CHANGED" => run_live(5, |_, t| {
            let at = format!("#EXT-X-PROGRAM-DATE-TIME:{}\n", date(3));
            t.replace(&at, &format!("#EXT-X-DISCONTINUITY\n{at}"))
        }),
        "HLS-SEGMENT-REAPPEARED" => run_live(4, |i, t| {
            if i == 3 {
                t.replace("seg8.ts", "seg0.ts")
            } else {
                t
            }
        }),
        "HLS-PLAYLIST-STALE" => {
            let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
            let mut out = checker.on_refresh(&media(0), &http(T0));
            out.extend(checker.on_refresh(&media(1), &http(T0 + 2000)));
            // Still no new segment 2.9 s after segment 6 appeared: in time.
            out.extend(checker.on_refresh(&media(1), &http(T0 + 4900)));
            assert_eq!(out, []);
            // 3.1 s: past 1.5 × 2 s, reported once however long it lasts.
            out.extend(checker.on_refresh(&media(1), &http(T0 + 5100)));
            out.extend(checker.on_refresh(&media(1), &http(T0 + 6100)));
            assert_eq!(out.len(), 1, "{out:?}");
            out
        }
        "HLS-WINDOW-TOO-SHORT" => {
            let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
            (0..4)
                .flat_map(|i| {
                    checker.on_refresh(&media_with(i, 6, "0.900"), &http(T0 + i as i64 * 900))
                })
                .collect()
        }
        "HLS-WINDOW-FEW-SEGMENTS" => {
            let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
            (0..4)
                .flat_map(|i| {
                    checker.on_refresh(&media_with(i, 5, "2.000"), &http(T0 + i as i64 * 2000))
                })
                .collect()
        }
        "HLS-SEGMENT-AFTER-ENDLIST" => {
            run_live(3, |i, t| if i >= 1 { t + "#EXT-X-ENDLIST\n" } else { t })
        }
        "HLS-PROGRAM-DATE-TIME-MISSING" => run_live(3, |_, t| {
            t.lines()
                .filter(|l| !l.starts_with("#EXT-X-PROGRAM-DATE-TIME"))
                .map(|l| format!("{l}\n"))
                .collect()
        }),
        "HLS-PROGRAM-DATE-TIME-BACKWARDS" => run_live(4, |_, t| {
            t.replace(
                &format!("DATE-TIME:{}\n#EXTINF:2.000,\nseg6.ts", date(6)),
                &format!("DATE-TIME:{}\n#EXTINF:2.000,\nseg6.ts", date(4)),
            )
        }),
        "HLS-PLAYLIST-CACHE-CONTROL" => {
            let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
            (0..3)
                .flat_map(|i| {
                    let facts = HttpFacts {
                        cache_control: Some("public, max-age=10".into()),
                        ..http(T0 + i as i64 * 2000)
                    };
                    checker.on_refresh(&media(i), &facts)
                })
                .collect()
        }
        "HLS-MAP-MISSING" => run_live(3, |_, t| t.replace(".ts\n", ".m4s\n")),
        "HLS-SEGMENT-UNAVAILABLE" => {
            let mut f = facts(2);
            f.http.status = 404;
            judge_segment(f)
        }
        "HLS-SEGMENT-EMPTY" => judge_segment(SegmentFacts {
            bytes: 0,
            ..facts(2)
        }),
        "HLS-SEGMENT-CONTENT-TYPE" => {
            let mut f = facts(2);
            f.http.content_type = Some("application/octet-stream".into());
            judge_segment(f)
        }
        "HLS-SEGMENT-NOT-KEYFRAME" => judge_segment(SegmentFacts {
            first_frame_is_key: Some(false),
            ..facts(2)
        }),
        "HLS-SEGMENT-DURATION-MISMATCH" => judge_segment(SegmentFacts {
            measured_duration_secs: Some(2.1),
            ..facts(2)
        }),
        "HLS-SEGMENT-OVER-TARGET" => judge_segment(SegmentFacts {
            extinf_secs: 2.49,
            measured_duration_secs: Some(2.52),
            ..facts(2)
        }),
        "HLS-STREAM-INF-URI-MISSING" => {
            master(MASTER.trim_end().trim_end_matches("P720p/index.m3u8"))
        }
        "HLS-STREAM-INF-BANDWIDTH" => master_edit("BANDWIDTH=1100000", "BANDWIDTH=1100000.5"),
        "HLS-STREAM-INF-CODECS-MISSING" => master_edit(
            "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360",
            "RESOLUTION=640x360",
        ),
        "HLS-STREAM-INF-RESOLUTION-MISSING" => master_edit(",RESOLUTION=640x360", ""),
        "HLS-STREAM-INF-FRAME-RATE-MISSING" => {
            master_edit("RESOLUTION=640x360,FRAME-RATE=30.000", "RESOLUTION=640x360")
        }
        "HLS-STREAM-INF-AVERAGE-BANDWIDTH-MISSING" => master_edit("AVERAGE-BANDWIDTH=1000000,", ""),
        "HLS-MEDIA-GROUP-MISSING" => {
            master_edit("BANDWIDTH=1100000,", "BANDWIDTH=1100000,AUDIO=\"aac\",")
        }
        "HLS-INDEPENDENT-SEGMENTS-MISSING" => master_edit("#EXT-X-INDEPENDENT-SEGMENTS\n", ""),
        "HLS-VARIANT-PEAK-BITRATE" => judge_variant(|f| f.bytes = 350_000, false),
        "HLS-VARIANT-AVERAGE-BITRATE" => judge_variant(|f| f.bytes = 290_000, true),
        "HLS-VARIANT-CODECS-MISMATCH" => judge_variant(|f| f.codec = Some("hevc".into()), true),
        "HLS-VARIANT-RESOLUTION-MISMATCH" => judge_variant(
            |f| {
                f.width = Some(426);
                f.height = Some(240);
            },
            true,
        ),
        "HLS-VARIANT-FRAME-RATE-MISMATCH" => judge_variant(|f| f.fps = Some(60.0), true),
        "HLS-TIMELINE-MISALIGNED" => {
            let mut timeline = TimelineChecker::new();
            let mut out = Vec::new();
            for seq in 0..4 {
                let pts = seq as f64 * 2.0;
                out.extend(timeline.on_segment("P360p", seq, pts, 1.0 / 30.0, "a.ts"));
                // A tenth of a second late: three frames.
                out.extend(timeline.on_segment("P720p", seq, pts + 0.1, 1.0 / 30.0, "b.ts"));
            }
            assert_eq!(
                out.len(),
                1,
                "reported when it goes off, not on every segment"
            );
            out
        }
        "HLS-PART-INF-MISSING" => {
            run_ll(6, |_, t| t.replace("#EXT-X-PART-INF:PART-TARGET=0.5\n", ""))
        }
        "HLS-PART-OVER-TARGET" => {
            run_ll(6, |_, t| t.replacen("DURATION=0.5,", "DURATION=0.502,", 1))
        }
        "HLS-PART-HOLD-BACK" => run_ll(6, |_, t| {
            t.replace("PART-HOLD-BACK=1.5", "PART-HOLD-BACK=0.9")
        }),
        "HLS-PRELOAD-HINT-MISSING" => run_ll(6, |_, t| {
            t.lines()
                .filter(|l| !l.starts_with("#EXT-X-PRELOAD-HINT"))
                .map(|l| format!("{l}\n"))
                .collect()
        }),
        other => panic!("no breaking case for {other}: add one"),
    }
}

#[test]
fn every_rule_has_a_case_that_breaks_it_and_nothing_else() {
    for rule in RULES {
        let found = breaking_case(rule.id);
        assert!(!found.is_empty(), "{}: the case breaks nothing", rule.id);
        for v in &found {
            assert_eq!(v.rule, rule.id, "{}: the case also broke {v}", rule.id);
            assert!(!v.detail.is_empty());
        }
    }
}

#[test]
fn a_conforming_live_stream_breaks_nothing() {
    assert_eq!(master(MASTER), []);
    let mut refreshed = MasterPlaylistChecker::new(MASTER_URL);
    for i in 0..3 {
        assert_eq!(refreshed.on_refresh(MASTER, &http(T0 + i * 10_000)), []);
    }
    let mut playlist = MediaPlaylistChecker::new(MEDIA_URL);
    let mut variants = VariantChecker::new(MASTER_URL, MASTER);
    let mut timeline = TimelineChecker::new();
    let mut found = Vec::new();
    for i in 0..30 {
        found.extend(playlist.on_refresh(&media(i), &http(T0 + i as i64 * 2000)));
        // Each refresh between two segments changes nothing and is in time.
        found.extend(playlist.on_refresh(&media(i), &http(T0 + i as i64 * 2000 + 1000)));
        let seq = i + 5;
        let sd = facts(seq);
        let hd = SegmentFacts {
            url: sd.url.replace("P360p", "P720p"),
            bytes: 500_000,
            width: Some(1280),
            height: Some(720),
            ..sd.clone()
        };
        found.extend(playlist.on_segment(&sd));
        found.extend(variants.on_segment(MEDIA_URL, &sd));
        found.extend(variants.on_segment(HD_URL, &hd));
        for (rendition, f) in [("P360p", &sd), ("P720p", &hd)] {
            found.extend(timeline.on_segment(rendition, seq, seq as f64 * 2.0, 1.0 / 30.0, &f.url));
        }
    }
    // The end: the stream stops, its playlist ends.
    found.extend(playlist.on_refresh(
        &format!("{}#EXT-X-ENDLIST\n", media(30)),
        &http(T0 + 60_000),
    ));
    found.extend(variants.finish());
    assert_eq!(
        found,
        [],
        "{}",
        found.iter().map(|v| format!("\n{v}")).collect::<String>()
    );
}

#[test]
fn a_conforming_low_latency_stream_breaks_nothing() {
    let mut playlist = MediaPlaylistChecker::new(MEDIA_URL);
    let mut found = Vec::new();
    for p in 24..80 {
        // A blocking reload answered as soon as the part is out, and a plain one after it.
        found.extend(playlist.on_refresh(&ll_media(p), &http(T0 + p as i64 * 500)));
        found.extend(playlist.on_refresh(&ll_media(p), &http(T0 + p as i64 * 500 + 100)));
    }
    let ended = ll_media(80)
        .lines()
        .filter(|l| !l.starts_with("#EXT-X-PRELOAD-HINT"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + "#EXT-X-ENDLIST\n";
    found.extend(playlist.on_refresh(&ended, &http(T0 + 40_500)));
    assert_eq!(
        found,
        [],
        "{}",
        found.iter().map(|v| format!("\n{v}")).collect::<String>()
    );
}

#[test]
fn low_latency_findings_name_their_line_and_allow_a_millisecond_of_rounding() {
    let text = ll_media(26);
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i as u32 + 1)
    };
    let over = run_ll(1, |_, t| {
        t.replacen(
            "DURATION=0.5,URI=\"part5.1.m4s\"",
            "DURATION=0.75,URI=\"part5.1.m4s\"",
            1,
        )
    });
    assert_eq!(over.len(), 1, "{over:?}");
    assert_eq!(
        (over[0].rule, over[0].line, over[0].detail.as_str()),
        (
            "HLS-PART-OVER-TARGET",
            line_of("part5.1.m4s"),
            "a part of DURATION=0.75 is longer than PART-TARGET=0.5"
        )
    );
    assert_eq!(
        run_ll(3, |_, t| t.replace("DURATION=0.5,", "DURATION=0.5009,")),
        []
    );
    let hold = run_ll(1, |_, t| {
        t.replace("PART-HOLD-BACK=1.5", "PART-HOLD-BACK=0.9")
    });
    assert_eq!(
        (hold[0].line, hold[0].detail.as_str()),
        (
            line_of("EXT-X-SERVER-CONTROL"),
            "PART-HOLD-BACK=0.9 is under twice PART-TARGET=0.5"
        )
    );
    let twice = run_ll(3, |_, t| {
        t.replacen(
            "#EXT-X-PART-INF:PART-TARGET=0.5\n",
            "#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-PART-INF:PART-TARGET=0.5\n",
            1,
        )
    });
    assert_eq!(twice.len(), 1, "{twice:?}");
    assert_eq!(twice[0].rule, "HLS-TAG-DUPLICATE");
}

#[test]
fn violations_name_the_line_and_what_was_seen() {
    let found = master_edit("BANDWIDTH=2200000", "BANDWIDTH=lots");
    assert_eq!(
        found,
        [Violation {
            rule: "HLS-STREAM-INF-BANDWIDTH",
            url: MASTER_URL.into(),
            line: Some(6),
            detail: "BANDWIDTH=lots is not a decimal-integer".into(),
        }]
    );
    assert_eq!(found[0].severity(), Severity::Must);
    assert_eq!(
        found[0].to_string(),
        format!(
            "HLS-STREAM-INF-BANDWIDTH (must) {MASTER_URL}:6: BANDWIDTH=lots is not a decimal-integer"
        )
    );
    let exceeded = breaking_case("HLS-TARGETDURATION-EXCEEDED");
    assert_eq!(exceeded.len(), 1, "once, when segment 3 first appears");
    assert_eq!(exceeded[0].line, Some(15), "{exceeded:?}");
    assert_eq!(
        exceeded[0].detail,
        "segment 3: EXTINF 2.6 s rounds above EXT-X-TARGETDURATION 2 s"
    );
}

#[test]
fn a_lasting_fault_is_reported_once_and_again_when_it_comes_back() {
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    let mut counts = Vec::new();
    for i in 0..8 {
        let cache = if (2..5).contains(&i) {
            "no-cache"
        } else {
            "max-age=60"
        };
        let facts = HttpFacts {
            cache_control: Some(cache.into()),
            ..http(T0 + i as i64 * 2000)
        };
        counts.push(checker.on_refresh(&media(i), &facts).len());
    }
    assert_eq!(counts, [1, 0, 0, 0, 0, 1, 0, 0]);

    let mut master_checker = MasterPlaylistChecker::new(MASTER_URL);
    let broken = MASTER.replace("#EXT-X-INDEPENDENT-SEGMENTS\n", "");
    let seen: Vec<usize> = [&broken, &broken, MASTER, &broken]
        .iter()
        .map(|t| master_checker.on_refresh(t, &http(T0)).len())
        .collect();
    assert_eq!(seen, [1, 0, 0, 1]);
}

#[test]
fn the_target_duration_rule_rounds_to_the_nearest_integer() {
    for (extinf, fires) in [("2.499", false), ("2.500", true), ("1.000", false)] {
        let found = run_live(1, |_, t| {
            t.replace(
                "#EXTINF:2.000,\nseg3.ts",
                &format!("#EXTINF:{extinf},\nseg3.ts"),
            )
        });
        assert_eq!(!found.is_empty(), fires, "{extinf}: {found:?}");
    }
}

#[test]
fn a_gap_segment_is_not_judged_as_a_download() {
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    let text = media(0).replace(
        "#EXTINF:2.000,\nseg2.ts",
        "#EXT-X-GAP\n#EXTINF:2.000,\nseg2.ts",
    );
    assert_eq!(checker.on_refresh(&text, &http(T0)), []);
    let mut f = facts(2);
    f.http.status = 404;
    assert_eq!(checker.on_segment(&f), []);
    f.seq = 3;
    assert_eq!(checker.on_segment(&f).len(), 1);
}

#[test]
fn state_stays_bounded_however_many_uris_leave() {
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    for i in 0..(MAX_LEFT as u64 + 500) {
        checker.on_refresh(&media(i), &http(T0 + i as i64 * 2000));
    }
    assert_eq!(checker.kept(), (6, MAX_LEFT, MAX_LEFT));
}

/// xorshift64*: a deterministic stream of pseudo-random numbers for the garbage tests.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn float(&mut self) -> f64 {
        match self.below(6) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -1e300,
            3 => 0.0,
            4 => f64::MAX,
            _ => (self.below(1000) as f64) / 100.0,
        }
    }
}

/// Lines a hostile server might send: every tag, malformed, with numbers at and past every limit.
const HOSTILE_LINES: &[&str] = &[
    "#EXTM3U",
    "",
    "#EXT-X-VERSION:18446744073709551616",
    "#EXT-X-VERSION:7",
    "#EXT-X-TARGETDURATION:18446744073709551615",
    "#EXT-X-TARGETDURATION:0",
    "#EXT-X-TARGETDURATION:2",
    "#EXT-X-MEDIA-SEQUENCE:18446744073709551615",
    "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-MEDIA-SEQUENCE:-1",
    "#EXT-X-DISCONTINUITY-SEQUENCE:18446744073709551615",
    "#EXT-X-DISCONTINUITY",
    "#EXTINF:99999999999999999999999999999999999999.9,",
    "#EXTINF:2.000,title,with,commas",
    "#EXTINF:-1,",
    "#EXTINF:",
    "#EXTINF",
    "#EXT-X-PROGRAM-DATE-TIME:9999-12-31T23:59:59.999999999+23:59",
    "#EXT-X-PROGRAM-DATE-TIME:0000-01-01T00:00:00Z",
    "#EXT-X-PROGRAM-DATE-TIME:2026-02-30T00:00:00Z",
    "#EXT-X-GAP",
    "#EXT-X-ENDLIST",
    "#EXT-X-PLAYLIST-TYPE:VOD",
    "#EXT-X-I-FRAMES-ONLY",
    "#EXT-X-BYTERANGE:18446744073709551615@18446744073709551615",
    "#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x00,KEYFORMAT=\"x\"",
    "#EXT-X-KEY:METHOD",
    "#EXT-X-MAP:URI=\"",
    "#EXT-X-MAP:URI=\"init.mp4\",URI=\"again\"",
    "#EXT-X-STREAM-INF:BANDWIDTH=99999999999999999999,RESOLUTION=99999999999999999999x1,FRAME-RATE=1e9",
    "#EXT-X-STREAM-INF:AUDIO=\"a\",CLOSED-CAPTIONS=NONE,CODECS=\"avc1,zzz\"",
    "#EXT-X-STREAM-INF:",
    "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",INSTREAM-ID=\"SERVICE63\"",
    "#EXT-X-ALLOW-CACHE:YES",
    "#EXT-X-UNKNOWN:whatever",
    "#EXT",
    "#",
    "seg.ts",
    "seg.m4s",
    "https://other.example/x.ts?q=1#f",
    "\u{0}\u{7f}\u{9f}",
    "\u{FEFF}",
    "é\u{FFFD}",
];

#[test]
fn garbage_and_huge_numbers_never_panic() {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let text: String = if round % 4 == 0 {
            let bytes: Vec<u8> = (0..noise.below(2048)).map(|_| noise.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            (0..noise.below(80))
                .map(|_| format!("{}\n", noise.pick(HOSTILE_LINES)))
                .collect()
        };
        let at = match noise.below(4) {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => T0 + noise.below(100_000) as i64,
        };
        let facts_http = HttpFacts {
            status: noise.below(700) as u16,
            content_type: Some(noise.pick(HOSTILE_LINES).to_string()),
            cache_control: Some(
                noise
                    .pick(&[
                        "max-age=18446744073709551616",
                        "no-cache",
                        "s-maxage=",
                        ",,=",
                    ])
                    .to_string(),
            ),
            at_unix_ms: at,
        };
        let _ = check_master(
            noise.pick(&[MASTER_URL, "", "::not a url"]),
            &text,
            &facts_http,
        );
        let mut playlist = MediaPlaylistChecker::new(MEDIA_URL);
        let mut variants = VariantChecker::new(noise.pick(&[MASTER_URL, "", "::"]), &text);
        let mut timeline = TimelineChecker::new();
        for _ in 0..3 {
            let _ = playlist.on_refresh(
                &text,
                &HttpFacts {
                    status: 200,
                    ..facts_http.clone()
                },
            );
            let f = SegmentFacts {
                seq: noise
                    .pick(&["0", "1", "18446744073709551615"])
                    .parse()
                    .unwrap_or(0),
                url: text.chars().take(20).collect(),
                http: facts_http.clone(),
                extinf_secs: noise.float(),
                bytes: [0, 1, u64::MAX][noise.below(3) as usize],
                target_duration_secs: Some(noise.float()),
                measured_duration_secs: Some(noise.float()),
                first_frame_is_key: Some(noise.below(2) == 0),
                codec: Some(noise.pick(&["h264", "", "hevc"]).into()),
                width: Some(u32::MAX),
                height: Some(0),
                fps: Some(noise.float()),
                first_pts_secs: Some(noise.float()),
                audio_codec: None,
            };
            let _ = playlist.on_segment(&f);
            let _ = variants.on_segment(MEDIA_URL, &f);
            let _ = timeline.on_segment(
                noise.pick(&["a", "b"]),
                f.seq,
                f.first_pts_secs.unwrap_or(0.0),
                noise.float(),
                "u",
            );
        }
        let _ = variants.finish();
    }
}

#[test]
fn huge_playlists_cost_time_linear_in_their_size() {
    let started = Instant::now();
    // 2 MiB of one EXT-X-STREAM-INF's attributes, and 2 MiB of segments.
    let mut attributes = String::from("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1");
    let mut i = 0;
    while attributes.len() < 2 << 20 {
        let _ = write!(attributes, ",A{i}=1");
        i += 1;
    }
    attributes.push_str("\nv.m3u8\n");
    let found = check_master(MASTER_URL, &attributes, &http(T0));
    assert!(
        found
            .iter()
            .any(|v| v.rule == "HLS-STREAM-INF-CODECS-MISSING")
    );
    let _ = VariantChecker::new(MASTER_URL, &attributes);

    let mut segments = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n");
    let mut n = 0u64;
    while segments.len() < 2 << 20 {
        let _ = write!(segments, "#EXTINF:2.000,\ns{n}.ts\n");
        n += 1;
    }
    let mut checker = MediaPlaylistChecker::new(MEDIA_URL);
    for i in 0..3 {
        let _ = checker.on_refresh(&segments, &http(T0 + i * 1000));
    }
    assert!(n as usize > MAX_WINDOW);
    assert_eq!(
        checker.kept().0,
        MAX_WINDOW,
        "only the newest segments are kept"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
