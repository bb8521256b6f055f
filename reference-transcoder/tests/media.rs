//! Integration tests for the media engine, checked against the `ffprobe` tool as an independent
//! peer. One shared 4 s 720p30 stamped source keeps the suite quick.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use reference_transcoder::ladder::{
    LadderOptions, LadderTranscoder, Profile, ProfileError, TranscodeError, parse_ladder,
};
use reference_transcoder::probe::{DecodeError, decode_bytes};
use reference_transcoder::source::{EncodedSource, MediaKind, SourceConfig, TsSegment, generate};
use reference_transcoder::stamp::{
    BAND_HEIGHT_FRACTION, STAMP_COLUMNS, STAMP_ROWS, read_stamp, read_stamp_luma,
};

const STREAM_ID: u32 = 0x5EED_0001;

struct Shared {
    source: EncodedSource,
    segments: Vec<TsSegment>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let source = generate(&SourceConfig {
            duration_secs: 4.0,
            stream_id: STREAM_ID,
            ..Default::default()
        })
        .expect("source");
        let segments = source.ts_segments(2.0).expect("segments");
        Shared { source, segments }
    })
}

fn video_stream(data: &[u8], suffix: &str) -> serde_json::Value {
    let j = testkit::ffmpeg::probe_bytes_json(
        data,
        suffix,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,r_frame_rate,start_time",
        ],
    );
    j["streams"][0].clone()
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or(v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn stamps_read_back_exactly_after_144p_at_400kbps() {
    let s = shared();
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P144p30fps16x9").unwrap(),
        LadderOptions::default(),
    )
    .unwrap();
    let (mut frames, mut read, mut wrong) = (0u32, 0u32, Vec::new());
    let mut flipped_checks = 0;
    for seg in &s.segments {
        let out = transcoder.transcode(&seg.data).unwrap();
        let r = &out.renditions[0];
        assert_eq!((r.width, r.height, r.frames), (256, 144, seg.frames as u64));
        let first_pts = seg.first_pts as f64 / 90_000.0;
        let info = decode_bytes(r.data.clone(), |f| {
            frames += 1;
            let expected =
                seg.first_frame + ((f.pts_secs.unwrap() - first_pts) * 30.0).round() as u32;
            match f.stamp {
                Some(st) if st.stream_id == STREAM_ID && st.frame_number == expected => read += 1,
                Some(st) => wrong.push((expected, st)),
                None => {}
            }
            // Damage one data cell at a time in a copy of the band: the checksum must refuse it.
            if f.index == 7 {
                let (w, h, stride) = (
                    f.picture.width() as usize,
                    f.picture.height() as usize,
                    f.picture.stride(0),
                );
                let top = h - (h as f64 * BAND_HEIGHT_FRACTION).round() as usize;
                for row in 0..STAMP_ROWS {
                    for col in 2..STAMP_COLUMNS - 2 {
                        let mut luma = f.picture.data(0).to_vec();
                        let band = h - top;
                        for y in top + row * band / STAMP_ROWS..top + (row + 1) * band / STAMP_ROWS
                        {
                            for x in col * w / STAMP_COLUMNS..(col + 1) * w / STAMP_COLUMNS {
                                luma[y * stride + x] = 255 - luma[y * stride + x];
                            }
                        }
                        assert_eq!(
                            read_stamp_luma(&luma, stride, w, h),
                            None,
                            "flipped cell {row},{col}"
                        );
                        flipped_checks += 1;
                    }
                }
            }
        })
        .unwrap();
        assert_eq!(info.decoded.codec, "h264");
    }
    assert_eq!(frames, 120);
    assert!(wrong.is_empty(), "wrong stamps read: {wrong:?}");
    assert!(
        read as f64 >= 0.99 * frames as f64,
        "only {read}/{frames} stamps read back"
    );
    assert_eq!(flipped_checks, 2 * STAMP_ROWS * (STAMP_COLUMNS - 4));
}

#[test]
fn renditions_match_their_profiles_according_to_ffprobe() {
    let s = shared();
    let ladder = parse_ladder("P144p30fps16x9,P240p25fps16x9,P360p30fps16x9").unwrap();
    let mut transcoder = LadderTranscoder::new(ladder.clone(), LadderOptions::default()).unwrap();
    for seg in &s.segments {
        let out = transcoder.transcode(&seg.data).unwrap();
        assert_eq!(out.source_frames, 60);
        assert!((out.source_duration_secs - 2.0).abs() < 1e-6);
        for (r, p) in out.renditions.iter().zip(&ladder) {
            let v = video_stream(&r.data, "ts");
            assert_eq!(v["codec_name"], "h264", "{}", p.name);
            assert_eq!(
                (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()),
                (p.width as u64, p.height as u64)
            );
            assert_eq!(v["r_frame_rate"], format!("{}/1", p.fps_num), "{}", p.name);
            let probed_frames = num(&v["nb_read_frames"]) as u64;
            assert_eq!(probed_frames, 2 * p.fps_num as u64, "{} frames", p.name);
            assert_eq!(r.frames, probed_frames);
            assert_eq!(r.pixels, probed_frames * p.width as u64 * p.height as u64);
            // Source timestamps are kept: the rendition starts where the segment starts.
            let start = num(&v["start_time"]);
            assert!(
                (start - seg.first_pts as f64 / 90_000.0).abs() <= 1.0 / p.fps_num as f64,
                "{} start {start}",
                p.name
            );
        }
    }
}

#[test]
fn segments_are_cut_at_key_frames_and_last_two_seconds() {
    let s = shared();
    assert_eq!(s.segments.len(), 2);
    let frame = 1.0 / 30.0;
    for seg in &s.segments {
        assert!(
            (seg.duration_secs - 2.0).abs() <= frame + 1e-9,
            "segment {} lasts {}",
            seg.seq,
            seg.duration_secs
        );
        let j = testkit::ffmpeg::probe_bytes_json(
            &seg.data,
            "ts",
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "frame=key_frame,pict_type,pts",
                "-read_intervals",
                "%+#1",
            ],
        );
        let first = &j["frames"][0];
        assert_eq!(
            first["key_frame"], 1,
            "segment {} starts with {first}",
            seg.seq
        );
        assert_eq!(first["pict_type"], "I");
        assert_eq!(first["pts"].as_i64().unwrap(), seg.first_pts);
        let v = video_stream(&seg.data, "ts");
        assert_eq!(num(&v["nb_read_frames"]) as u32, seg.frames);
        assert_eq!(seg.first_frame, seg.seq * 60);
    }
}

#[test]
fn flv_packets_make_a_stream_ffprobe_reads() {
    let s = shared();
    let packets = s.source.flv_packets();
    assert!(
        packets[0].is_sequence_header
            && packets[0].kind == MediaKind::Video
            && packets[0].data[0] == 1
    );
    assert!(packets[1].is_sequence_header && packets[1].kind == MediaKind::Audio);
    assert!(packets[2].is_key && packets[2].kind == MediaKind::Video);
    let mut last = 0;
    let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for p in &packets {
        assert!(p.dts_ms >= last, "DTS goes back");
        last = p.dts_ms;
        if p.kind == MediaKind::Video && !p.is_sequence_header {
            // AVCC: NAL lengths tile the payload exactly.
            let mut i = 0;
            while i < p.data.len() {
                i += 4 + u32::from_be_bytes(p.data[i..i + 4].try_into().unwrap()) as usize;
            }
            assert_eq!(i, p.data.len());
        }
        let body = p.tag_body();
        let ts = p.dts_ms.to_be_bytes();
        flv.push(if p.kind == MediaKind::Video { 9 } else { 8 });
        flv.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        flv.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0], 0, 0, 0]);
        flv.extend_from_slice(&body);
        flv.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
    }
    let v = video_stream(&flv, "flv");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert_eq!(num(&v["nb_read_frames"]) as usize, s.source.frame_count());
    // And our own decoder reads every stamp back from it, in order.
    let mut expected = 0;
    decode_bytes(flv, |f| {
        assert_eq!(f.stamp.map(|s| s.frame_number), Some(expected));
        expected += 1;
    })
    .unwrap();
    assert_eq!(expected as usize, s.source.frame_count());
}

#[test]
fn bad_segments_give_typed_errors_and_the_session_survives() {
    let s = shared();
    let good = &s.segments[0].data;
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P144p30fps16x9").unwrap(),
        LadderOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        transcoder.transcode(&[]),
        Err(TranscodeError::EmptySegment)
    ));
    let cut = good.len() / 2 / 188 * 188 + 100;
    match transcoder.transcode(&good[..cut]) {
        Err(TranscodeError::TruncatedSegment { len }) => assert_eq!(len, cut),
        other => panic!("truncated segment gave {other:?}"),
    }
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    let err = transcoder.transcode(&garbage).unwrap_err();
    assert!(
        matches!(
            err,
            TranscodeError::Demux(_) | TranscodeError::NoVideoStream
        ),
        "garbage gave {err:?}"
    );
    // Flip bits in the middle third of the segment (packet headers intact, as a bad link would):
    // the decoder flags the damaged frames and the segment is refused.
    let mut corrupt = good.clone();
    let third = corrupt.len() / 3 / 188 * 188;
    for i in (third..2 * third).step_by(3 * 188) {
        corrupt[i + 150..i + 180]
            .iter_mut()
            .for_each(|b| *b ^= 0xA5);
    }
    let err = transcoder.transcode(&corrupt).unwrap_err();
    assert!(
        matches!(err, TranscodeError::CorruptSegment { decode_errors, .. } if decode_errors > 0),
        "corrupt segment gave {err:?}"
    );
    // The session still transcodes good segments after all that.
    let out = transcoder.transcode(good).unwrap();
    assert_eq!(out.renditions[0].frames, 60);
    assert!(matches!(
        decode_bytes(Vec::new(), |_| {}),
        Err(DecodeError::Empty)
    ));
}

#[test]
fn unknown_profile_names_suggest_the_closest() {
    match parse_ladder("P240p30fps16x9,P720p30fps16:9") {
        Err(ProfileError::UnknownName { name, closest }) => {
            assert_eq!(name, "P720p30fps16:9");
            assert_eq!(closest.as_deref(), Some("P720p30fps16x9"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        Profile::preset("P720p30fps16x9").unwrap().bitrate,
        4_000_000
    );
}

/// Makes a test clip with the ffmpeg tool.
fn ffmpeg_clip(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(path).unwrap()
}

#[test]
fn odd_sized_and_variable_frame_rate_sources_transcode() {
    let dir = tempfile::tempdir().unwrap();
    // 853x480 (odd width) MPEG-2 in TS (testsrc2 itself rounds to even sizes).
    let odd = ffmpeg_clip(
        dir.path(),
        "odd.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=854x480:r=30",
            "-vf",
            "scale=853:480",
            "-frames:v",
            "30",
            "-c:v",
            "mpeg2video",
            "-f",
            "mpegts",
        ],
    );
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P240p30fps16x9").unwrap(),
        LadderOptions::default(),
    )
    .unwrap();
    let out = transcoder.transcode(&odd).unwrap();
    assert_eq!((out.source_width, out.source_height), (853, 480));
    let v = video_stream(&out.renditions[0].data, "ts");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(426), Some(240))
    );
    assert_eq!(num(&v["nb_read_frames"]) as u64, 30);

    // Variable frame rate: 30 frames 1/30 s apart, then 30 frames 2/30 s apart = 3 s of video,
    // which a 30 fps rendition must fill with exactly 90 frames.
    let vfr = ffmpeg_clip(
        dir.path(),
        "vfr.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=30",
            "-frames:v",
            "60",
            "-vf",
            "setpts='if(lt(N,30),N,30+2*(N-30))/30/TB'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "mpegts",
        ],
    );
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P144p30fps16x9").unwrap(),
        LadderOptions::default(),
    )
    .unwrap();
    let out = transcoder.transcode(&vfr).unwrap();
    assert_eq!(out.source_frames, 60);
    let r = &out.renditions[0];
    let v = video_stream(&r.data, "ts");
    assert_eq!(num(&v["nb_read_frames"]) as u64, 90);
    assert_eq!(r.frames, 90);
    assert_eq!(r.pixels, 90 * 256 * 144);
}

#[test]
fn stamp_reader_ignores_unstamped_video() {
    let dir = tempfile::tempdir().unwrap();
    let plain = ffmpeg_clip(
        dir.path(),
        "plain.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=30",
            "-frames:v",
            "30",
            "-c:v",
            "libx264",
            "-f",
            "mpegts",
        ],
    );
    let info = decode_bytes(plain, |f| assert_eq!(read_stamp(f.picture), None)).unwrap();
    assert_eq!((info.decoded.frames, info.decoded.stamped_frames), (30, 0));
}

#[test]
fn bench_with_one_session_reports_a_realtime_fraction() {
    use reference_transcoder::bench::{BenchMode, BenchOptions, run_bench};
    use reference_transcoder::input::BenchInput;
    use reference_transcoder::ladder::EncoderPath;

    let input = BenchInput::Synthetic(SourceConfig {
        width: 640,
        height: 360,
        duration_secs: 4.0,
        ..Default::default()
    });
    let options = BenchOptions::new(
        input,
        parse_ladder("P144p30fps16x9").unwrap(),
        BenchMode::Sessions(1),
    );
    let mut records = Vec::new();
    let summary = run_bench(&options, |r| records.push(r.clone())).unwrap();
    assert_eq!(summary.encoder_path, EncoderPath::CpuX264);
    assert_eq!(summary.input_segments, 2);
    let load = summary.last_load().unwrap();
    assert_eq!(
        (load.sessions, load.segments, load.failed_segments),
        (1, 2, 0)
    );
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.error, None);
        assert_eq!(r.pixels, 60 * 256 * 144);
        assert_eq!(r.renditions[0].frames, 60);
        assert!((r.source_duration_secs - 2.0).abs() < 1e-9);
        assert!((r.realtime_ratio - r.transcode_secs / 2.0).abs() < 1e-9);
    }
    // Paced at real time: the second segment is not handed over before its stream time.
    assert!(
        records[1].started_secs >= 2.0,
        "second segment started at {}",
        records[1].started_secs
    );
    let realtime = records.iter().filter(|r| r.realtime).count() as f64;
    assert_eq!(load.realtime_segment_fraction, realtime / 2.0);
    assert!(load.ratio_p50 <= load.ratio_p99 && load.ratio_p99 > 0.0);
    assert!(load.cpu_utilisation > 0.0 && load.cpu_utilisation <= 1.0);
    assert!(load.output_pixels_per_sec > 0.0);
    let json = serde_json::to_value(&summary).unwrap();
    assert!(json["loads"][0]["realtime_segment_fraction"].is_number());
}

/// Serves files from `dir` over HTTP/1.1 on a loopback port for `requests` requests.
fn serve_dir(dir: std::path::PathBuf, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .trim_start_matches('/');
            match std::fs::read(dir.join(path)) {
                Ok(body) => {
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .unwrap();
                    stream.write_all(&body).unwrap();
                }
                Err(_) => write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                )
                .unwrap(),
            }
        }
    });
    (base, handle)
}

#[test]
fn file_and_hls_inputs_become_key_frame_segments() {
    use reference_transcoder::input::{BenchInput, load_segments};
    let dir = tempfile::tempdir().unwrap();
    // A 5 s MP4 with a key frame every second: cut at ≥ 2 s gives 2 s, 2 s, 1 s.
    ffmpeg_clip(
        dir.path(),
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300",
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
            "-shortest",
        ],
    );
    let segments = load_segments(&BenchInput::File {
        path: dir.path().join("clip.mp4"),
        segment_secs: 2.0,
    })
    .unwrap();
    let durations: Vec<f64> = segments
        .iter()
        .map(|s| (s.duration_secs * 30.0).round() / 30.0)
        .collect();
    assert_eq!(durations, vec![2.0, 2.0, 1.0]);
    let mut transcoder = LadderTranscoder::new(
        parse_ladder("P144p30fps16x9").unwrap(),
        LadderOptions::default(),
    )
    .unwrap();
    for s in &segments {
        let out = transcoder.transcode(&s.data).unwrap();
        assert_eq!(
            out.renditions[0].frames as f64,
            (s.duration_secs * 30.0).round()
        );
        let v = video_stream(&s.data, "ts");
        assert_eq!(v["codec_name"], "h264");
    }
    // The same segments as an HLS playlist, read from disk and over HTTP.
    let mut playlist = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n");
    for s in &segments {
        std::fs::write(dir.path().join(format!("s{}.ts", s.seq)), &s.data).unwrap();
        playlist += &format!("#EXTINF:{:.3},\ns{}.ts\n", s.duration_secs, s.seq);
    }
    playlist += "#EXT-X-ENDLIST\n";
    std::fs::write(dir.path().join("index.m3u8"), &playlist).unwrap();
    let local = load_segments(&BenchInput::Hls(
        dir.path().join("index.m3u8").display().to_string(),
    ))
    .unwrap();
    assert_eq!(local.len(), 3);
    assert!(local.iter().zip(&segments).all(|(a, b)| a.data == b.data));
    let (base, server) = serve_dir(dir.path().to_path_buf(), 4);
    let remote = load_segments(&BenchInput::Hls(format!("{base}/index.m3u8"))).unwrap();
    assert!(
        remote
            .iter()
            .zip(&segments)
            .all(|(a, b)| a.data == b.data && (a.duration_secs - b.duration_secs).abs() < 1e-3)
    );
    server.join().unwrap();
}

#[test]
fn a_user_file_is_stamped_by_re_encoding_and_looped_to_length() {
    let dir = tempfile::tempdir().unwrap();
    ffmpeg_clip(
        dir.path(),
        "user.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=25",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    let source = generate(&SourceConfig {
        width: 640,
        height: 360,
        duration_secs: 3.0,
        gop_secs: 1.0,
        stream_id: 77,
        audio: false,
        input_file: Some(dir.path().join("user.mp4")),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(source.frame_count(), 90);
    let segments = source.ts_segments(1.0).unwrap();
    assert_eq!(segments.len(), 3);
    let mut next = 0;
    for s in &segments {
        let info = decode_bytes(s.data.clone(), |f| {
            assert_eq!(
                f.stamp.map(|st| (st.stream_id, st.frame_number)),
                Some((77, next))
            );
            next += 1;
        })
        .unwrap();
        assert_eq!(
            (
                info.decoded.width,
                info.decoded.height,
                info.decoded.frames,
                info.key_frames
            ),
            (640, 360, 30, 1)
        );
    }
    assert_eq!(next, 90);
}

#[test]
fn capacity_search_reports_the_last_load_that_held() {
    use reference_transcoder::bench::{BenchMode, BenchOptions, run_bench};
    use reference_transcoder::input::BenchInput;

    let input = BenchInput::Synthetic(SourceConfig {
        width: 320,
        height: 180,
        duration_secs: 2.0,
        audio: false,
        ..Default::default()
    });
    let mut options = BenchOptions::new(
        input,
        parse_ladder("P144p30fps16x9").unwrap(),
        BenchMode::FindCapacity {
            start: 1,
            step: 1,
            max: 2,
        },
    );
    options.segments_per_session = Some(2);
    let mut per_load = std::collections::BTreeMap::<u32, u32>::new();
    let summary = run_bench(&options, |r| *per_load.entry(r.load).or_default() += 1).unwrap();
    // Each load ran every session's two segments.
    for load in &summary.loads {
        assert_eq!(per_load[&load.sessions], 2 * load.sessions);
        assert_eq!(load.segments, 2 * load.sessions as u64);
        assert_eq!(load.held, load.realtime_segment_fraction >= 0.99);
    }
    let held: Vec<u32> = summary
        .loads
        .iter()
        .take_while(|l| l.held)
        .map(|l| l.sessions)
        .collect();
    assert_eq!(
        summary.capacity_sessions,
        Some(held.last().copied().unwrap_or(0))
    );
    // The ramp stops at the first load that did not hold, or at max.
    assert_eq!(summary.loads.len(), (held.len() + 1).min(2));
}
