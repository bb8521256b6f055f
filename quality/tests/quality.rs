//! Integration tests of the quality crate against real media made by the `ffmpeg` tool and
//! against Netflix's own `vmaf` tool (built by libvmaf-sys next to our library).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame::Video;
use quality::{
    Pairing, PairingMode, QualityError, QualityOptions, QualityReport, compare_files,
    compare_files_with, compare_with_reference,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reference_transcoder::{FrameStamp, write_stamp};

const STREAM_ID: u32 = 0x5eed;

/// Encodes `input` with x264 and `options` (rate control, size, container) to `output`.
fn x264(input: &Path, options: &[&str], output: &Path) {
    let (input, output) = (input.to_str().unwrap(), output.to_str().unwrap());
    testkit::ffmpeg::run(&[&["-i", input, "-c:v", "libx264"], options, &[output]].concat());
}

/// A lavfi testsrc2 clip as raw yuv420p frames.
fn testsrc_frames(width: u32, height: u32, fps: u32, frames: u32) -> Vec<Vec<u8>> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate={fps}"))
        .args([
            "-frames:v",
            &frames.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .expect("the ffmpeg tool runs");
    assert!(output.status.success());
    let frame_len = (width * height * 3 / 2) as usize;
    assert_eq!(output.stdout.len(), frame_len * frames as usize);
    output
        .stdout
        .chunks(frame_len)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Draws the project's stamp (frame number = position) into raw yuv420p frames.
fn stamp_frames(frames: &mut [Vec<u8>], width: u32, height: u32) {
    for (number, raw) in frames.iter_mut().enumerate() {
        let mut frame = Video::new(Pixel::YUV420P, width, height);
        copy_planes(raw, &mut frame, true);
        let stamp = FrameStamp {
            stream_id: STREAM_ID,
            frame_number: number as u32,
        };
        write_stamp(&mut frame, stamp).expect("stamp fits");
        copy_planes(raw, &mut frame, false);
    }
}

/// Copies between a packed yuv420p buffer and a frame, in the direction asked.
fn copy_planes(raw: &mut [u8], frame: &mut Video, into_frame: bool) {
    let mut offset = 0;
    for plane in 0..3 {
        let (w, h) = (
            frame.plane_width(plane) as usize,
            frame.plane_height(plane) as usize,
        );
        let stride = frame.stride(plane);
        for y in 0..h {
            let packed = &mut raw[offset + y * w..offset + (y + 1) * w];
            let row = &mut frame.data_mut(plane)[y * stride..y * stride + w];
            if into_frame {
                row.copy_from_slice(packed)
            } else {
                packed.copy_from_slice(row)
            }
        }
        offset += w * h;
    }
}

fn write_y4m(path: &Path, frames: &[&Vec<u8>], width: u32, height: u32, fps: u32) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        file,
        "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg"
    )
    .unwrap();
    for frame in frames {
        file.write_all(b"FRAME\n").unwrap();
        file.write_all(frame).unwrap();
    }
    file.flush().unwrap();
}

/// Encodes raw yuv420p frames with libx264 through the `ffmpeg` tool; `extra` adds options
/// (bitrate, scaling) before the output path.
fn encode_h264(
    path: &Path,
    frames: &[&Vec<u8>],
    width: u32,
    height: u32,
    fps: u32,
    extra: &[&str],
) {
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-s",
            &format!("{width}x{height}"),
            "-r",
            &fps.to_string(),
            "-i",
            "-",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(extra)
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("the ffmpeg tool runs");
    let mut stdin = child.stdin.take().unwrap();
    for frame in frames {
        stdin.write_all(frame).unwrap();
    }
    drop(stdin);
    assert!(
        child.wait().unwrap().success(),
        "encoding {} failed",
        path.display()
    );
}

/// Netflix's `vmaf` tool from the libvmaf-sys build in this test binary's target directory.
/// Netflix's tool, built with the same libvmaf our scorer links.
fn vmaf_tool() -> PathBuf {
    testkit::vmaf::tool(&quality::vmaf::version())
}

fn options() -> QualityOptions {
    QualityOptions {
        threads: 2,
        ..QualityOptions::default()
    }
}

fn assert_scores_equal(actual: &QualityReport, expected: &QualityReport) {
    assert_eq!(actual.frames.len(), expected.frames.len());
    for (a, e) in actual.frames.iter().zip(&expected.frames) {
        assert_eq!(a.reference_frame, e.reference_frame, "frame {}", a.index);
        assert!(
            (a.vmaf - e.vmaf).abs() < 1e-9,
            "frame {}: {} vs {}",
            a.index,
            a.vmaf,
            e.vmaf
        );
        assert_eq!(a.psnr_y, e.psnr_y, "frame {}", a.index);
    }
    assert!((actual.pooled.vmaf.mean - expected.pooled.vmaf.mean).abs() < 1e-9);
}

#[test]
fn agrees_with_netflix_vmaf_tool() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.y4m");
    let compressed = dir.path().join("compressed.mp4");
    let distorted = dir.path().join("distorted.y4m");
    testkit::ffmpeg::testsrc(&reference, "320x180", 60);
    x264(&reference, &["-b:v", "60k"], &compressed);
    testkit::ffmpeg::run(&[
        "-i",
        compressed.to_str().unwrap(),
        "-pix_fmt",
        "yuv420p",
        distorted.to_str().unwrap(),
    ]);

    let tool_json = dir.path().join("tool.json");
    let status = Command::new(vmaf_tool())
        .args([
            "-r",
            reference.to_str().unwrap(),
            "-d",
            distorted.to_str().unwrap(),
        ])
        .args([
            "--model",
            "version=vmaf_v0.6.1",
            "--feature",
            "psnr",
            "--threads",
            "2",
        ])
        .args(["--json", "--quiet", "-o", tool_json.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let tool: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tool_json).unwrap()).unwrap();

    let opts = QualityOptions {
        crop_stamp_band: false,
        scale_distorted: false,
        ..options()
    };
    let ours = compare_files_with(&reference, &distorted, &opts, None).unwrap();
    assert_eq!(ours.pairing, Pairing::PresentationOrder);
    assert_eq!(ours.counts.paired, 60);

    let tool_frames = tool["frames"].as_array().unwrap();
    assert_eq!(tool_frames.len(), ours.frames.len());
    for (theirs, mine) in tool_frames.iter().zip(&ours.frames) {
        let vmaf = theirs["metrics"]["vmaf"].as_f64().unwrap();
        assert!(
            (vmaf - mine.vmaf).abs() <= 0.05,
            "frame {}: tool {vmaf}, ours {}",
            mine.index,
            mine.vmaf
        );
        let psnr = theirs["metrics"]["psnr_y"].as_f64().unwrap();
        assert!(
            (psnr - mine.psnr_y.unwrap()).abs() <= 0.01,
            "frame {} psnr",
            mine.index
        );
    }
    let tool_mean = tool["pooled_metrics"]["vmaf"]["mean"].as_f64().unwrap();
    assert!(
        (tool_mean - ours.pooled.vmaf.mean).abs() <= 0.01,
        "pooled mean: tool {tool_mean}, ours {}",
        ours.pooled.vmaf.mean
    );
    let tool_harmonic = tool["pooled_metrics"]["vmaf"]["harmonic_mean"]
        .as_f64()
        .unwrap();
    assert!((tool_harmonic - ours.pooled.vmaf.harmonic_mean).abs() <= 0.01);
    // A heavily compressed clip: the test is only meaningful if it is clearly degraded.
    assert!(
        ours.pooled.vmaf.mean < 90.0,
        "mean {}",
        ours.pooled.vmaf.mean
    );
}

/// A stamped 30 fps reference and a distorted encode whose frames are the reference frames
/// listed in `shown` (drops and repeats), scored both by stamp and, as the ground truth, by
/// presentation order against a reference rebuilt from exactly those frames.
fn check_stamp_pairing(
    frames: &[Vec<u8>],
    shown: &[usize],
    (width, height, fps): (u32, u32, u32),
    distorted_fps: u32,
    encode: &[&str],
) -> QualityReport {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.y4m");
    write_y4m(
        &reference,
        &frames.iter().collect::<Vec<_>>(),
        width,
        height,
        fps,
    );
    let distorted = dir.path().join("distorted.mp4");
    let shown_frames: Vec<&Vec<u8>> = shown.iter().map(|&n| &frames[n]).collect();
    encode_h264(
        &distorted,
        &shown_frames,
        width,
        height,
        distorted_fps,
        encode,
    );
    let paired_reference = dir.path().join("paired-reference.y4m");
    write_y4m(
        &paired_reference,
        &shown_frames,
        width,
        height,
        distorted_fps,
    );

    let by_stamp = compare_files(&reference, &distorted, &options()).unwrap();
    assert_eq!(by_stamp.pairing, Pairing::Stamp);
    assert_eq!(
        by_stamp.counts.paired,
        shown.len() as u64,
        "{}",
        by_stamp.counts
    );
    assert_eq!(
        by_stamp.counts.unmatched_distorted, 0,
        "{}",
        by_stamp.counts
    );
    let distinct: std::collections::BTreeSet<_> = shown.iter().collect();
    assert_eq!(
        by_stamp.counts.unmatched_reference,
        (frames.len() - distinct.len()) as u64
    );
    assert_eq!(by_stamp.counts.reference_frames, frames.len() as u64);
    assert!(by_stamp.excluded_rows > 0, "the stamp band is left out");

    let direct = QualityOptions {
        pairing: PairingMode::PresentationOrder,
        ..options()
    };
    let mut truth = compare_files(&paired_reference, &distorted, &direct).unwrap();
    assert_eq!(truth.pairing, Pairing::PresentationOrder);
    for (frame, &n) in truth.frames.iter_mut().zip(shown) {
        frame.reference_frame = n as u64;
    }
    assert_eq!(truth.scored_height, by_stamp.scored_height);
    assert_scores_equal(&by_stamp, &truth);
    by_stamp
}

#[test]
fn stamp_pairing_survives_dropped_and_duplicated_frames() {
    let (width, height, fps) = (320, 180, 30);
    let mut frames = testsrc_frames(width, height, fps, 60);
    stamp_frames(&mut frames, width, height);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut dropped: Vec<usize> = (0..60).collect();
    dropped.shuffle(&mut rng);
    dropped.truncate(6); // 10 %
    let mut shown: Vec<usize> = (0..60).filter(|n| !dropped.contains(n)).collect();
    let mut duplicated = 0;
    while duplicated < 5 {
        let at = rng.gen_range(0..shown.len());
        if at > 0 && shown[at - 1] == shown[at] {
            continue;
        }
        shown.insert(at, shown[at]);
        duplicated += 1;
    }
    let report = check_stamp_pairing(&frames, &shown, (width, height, fps), fps, &["-crf", "26"]);
    assert_eq!(report.counts.duplicated_distorted, 5);
    assert_eq!(report.counts.unmatched_reference, 6);
}

#[test]
fn stamp_pairing_follows_a_60_to_30_fps_conversion_with_scaling() {
    let (width, height, fps) = (320, 180, 60);
    let mut frames = testsrc_frames(width, height, fps, 90);
    stamp_frames(&mut frames, width, height);
    let shown: Vec<usize> = (0..90).step_by(2).collect();
    let report = check_stamp_pairing(
        &frames,
        &shown,
        (width, height, fps),
        30,
        &["-crf", "24", "-vf", "scale=256:144"],
    );
    assert!(report.distorted_scaled);
    assert_eq!(report.counts.unmatched_reference, 45);
    assert_eq!(report.frames[3].reference_frame, 6);
}

#[test]
fn degraded_rendition_scores_far_below_a_normal_one_and_identical_scores_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.y4m");
    testkit::ffmpeg::testsrc(&reference, "640x360", 45);
    let normal = dir.path().join("normal.mp4");
    let degraded = dir.path().join("degraded.ts");
    x264(&reference, &["-b:v", "1500k"], &normal);
    x264(
        &reference,
        &["-b:v", "100k", "-maxrate", "100k", "-bufsize", "100k"],
        &degraded,
    );

    let normal_report = compare_files(&reference, &normal, &options()).unwrap();
    let degraded_report = compare_files(&reference, &degraded, &options()).unwrap();
    assert_eq!(normal_report.counts.paired, 45);
    assert_eq!(degraded_report.counts.paired, 45);
    let (good, bad) = (
        normal_report.pooled.vmaf.mean,
        degraded_report.pooled.vmaf.mean,
    );
    assert!(good > 85.0, "1500 kbps scores {good}");
    assert!(good - bad > 25.0, "100 kbps scores {bad}, 1500 kbps {good}");
    assert!(degraded_report.pooled.vmaf.p5 < normal_report.pooled.vmaf.p5);

    let identical = compare_files(&reference, &reference, &options()).unwrap();
    assert!(
        identical.pooled.vmaf.mean >= 99.0,
        "identical scores {}",
        identical.pooled.vmaf.mean
    );
    // libvmaf caps 8-bit PSNR at 6 * 8 + 12 = 60 dB.
    let psnr = identical.pooled.psnr_y.unwrap();
    assert_eq!((psnr.min, psnr.max), (60.0, 60.0));
    assert!(normal_report.pooled.psnr_y.unwrap().mean < 60.0);
}

#[test]
fn network_rendition_is_scored_beside_the_reference_rendition() {
    let (width, height, fps) = (320, 180, 30);
    let mut frames = testsrc_frames(width, height, fps, 45);
    stamp_frames(&mut frames, width, height);
    let all: Vec<&Vec<u8>> = frames.iter().collect();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.y4m");
    write_y4m(&source, &all, width, height, fps);
    let network = dir.path().join("network.ts");
    let reference = dir.path().join("reference.ts");
    // The "network" drops every third frame and is starved of bits; the reference is standard.
    let network_frames: Vec<&Vec<u8>> = frames
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 3 != 2)
        .map(|(_, f)| f)
        .collect();
    encode_h264(
        &network,
        &network_frames,
        width,
        height,
        fps,
        &["-b:v", "40k", "-maxrate", "40k", "-bufsize", "40k"],
    );
    encode_h264(&reference, &all, width, height, fps, &["-crf", "20"]);

    let comparison = compare_with_reference(&source, &network, &reference, &options()).unwrap();
    assert_eq!(comparison.network.pairing, Pairing::Stamp);
    // A starved encode can blur a few stamps beyond reading; those frames are counted, not guessed.
    let network_counts = comparison.network.counts;
    assert_eq!(network_counts.distorted_frames, 30);
    assert_eq!(
        network_counts.paired + network_counts.unstamped_distorted,
        30,
        "{network_counts}"
    );
    assert!(network_counts.paired >= 20, "{network_counts}");
    assert_eq!(comparison.reference.counts.paired, 45);
    assert!((comparison.difference - (comparison.vmaf - comparison.vmaf_reference)).abs() < 1e-12);
    assert!(
        comparison.difference < -10.0,
        "difference {}",
        comparison.difference
    );
}

#[test]
fn subsampling_scores_every_nth_frame_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.y4m");
    let distorted = dir.path().join("distorted.mp4");
    testkit::ffmpeg::testsrc(&reference, "320x180", 30);
    x264(&reference, &["-b:v", "150k"], &distorted);
    let full = compare_files(&reference, &distorted, &options()).unwrap();
    let sampled = compare_files(
        &reference,
        &distorted,
        &QualityOptions {
            subsample: 4,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(
        sampled.frames.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![0, 4, 8, 12, 16, 20, 24, 28]
    );
    for frame in &sampled.frames {
        let same = &full.frames[frame.index as usize];
        assert!(
            (frame.vmaf - same.vmaf).abs() < 1e-9,
            "frame {}",
            frame.index
        );
        assert_eq!(frame.psnr_y, same.psnr_y);
    }
    assert_eq!(sampled.counts.paired, 30);

    let csv = dir.path().join("scores.csv");
    let json = dir.path().join("scores.json");
    sampled.write_csv_file(&csv).unwrap();
    sampled.write_json_file(&json).unwrap();
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 9);
    assert!(csv_text.starts_with("index,reference_frame,distorted_frame,vmaf,psnr_y"));
    let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(parsed["frames"].as_array().unwrap().len(), 8);
    assert_eq!(parsed["pairing"], "presentation_order");
    assert_eq!(parsed["model"], "vmaf_v0.6.1");
    let summary = sampled.summary();
    assert!(
        summary.contains("paired by presentation order"),
        "{summary}"
    );
}

#[test]
fn ssim_and_the_4k_model_are_selectable() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.y4m");
    testkit::ffmpeg::testsrc(&reference, "320x180", 10);
    let opts = QualityOptions {
        ssim: true,
        model: "vmaf_4k_v0.6.1".parse().unwrap(),
        ..options()
    };
    let report = compare_files(&reference, &reference, &opts).unwrap();
    let ssim = report.pooled.ssim.unwrap();
    assert!(
        (ssim.min - 1.0).abs() < 1e-6,
        "identical pictures have SSIM 1, got {}",
        ssim.min
    );
    assert_eq!(report.model.as_str(), "vmaf_4k_v0.6.1");
    assert!(
        matches!("vmaf_9k".parse::<quality::VmafModelVersion>(), Err(QualityError::UnknownModel(m)) if m == "vmaf_9k")
    );
}

#[test]
fn bad_inputs_give_counts_or_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.y4m");
    let shorter = dir.path().join("shorter.mp4");
    testkit::ffmpeg::testsrc(&reference, "320x180", 20);
    x264(&reference, &["-frames:v", "12", "-s", "160x90"], &shorter);

    // Unstamped inputs of different lengths: paired by order, the rest counted.
    let report = compare_files(&reference, &shorter, &options()).unwrap();
    assert_eq!(report.pairing, Pairing::PresentationOrder);
    assert_eq!(
        (report.counts.paired, report.counts.unmatched_reference),
        (12, 8)
    );
    assert_eq!(report.excluded_rows, 0, "no stamps, nothing cropped");
    let reversed = compare_files(&shorter, &reference, &options()).unwrap();
    assert_eq!(
        (reversed.counts.paired, reversed.counts.unmatched_distorted),
        (12, 8)
    );

    // Stamp pairing demanded but no stamps: nothing paired, said so with the counts.
    let stamp_only = QualityOptions {
        pairing: PairingMode::Stamp,
        ..options()
    };
    match compare_files(&reference, &shorter, &stamp_only) {
        Err(QualityError::NothingPaired { counts, .. }) => {
            assert_eq!(counts.unstamped_distorted, 12);
            assert_eq!(counts.unmatched_reference, 20);
        }
        other => panic!("expected NothingPaired, got {other:?}"),
    }

    // Sizes differ and scaling is off.
    let no_scaling = QualityOptions {
        scale_distorted: false,
        ..options()
    };
    assert!(matches!(
        compare_files(&reference, &shorter, &no_scaling),
        Err(QualityError::SizeMismatch {
            distorted_width: 160,
            distorted_height: 90,
            ..
        })
    ));

    // Missing and unreadable files.
    let missing = dir.path().join("missing.mp4");
    assert!(matches!(compare_files(&missing, &shorter, &options()),
        Err(QualityError::Open { path, .. }) if path == missing));
    let garbage = dir.path().join("garbage.ts");
    std::fs::write(&garbage, vec![0x47u8; 100]).unwrap();
    let error = compare_files(&reference, &garbage, &options()).unwrap_err();
    assert!(
        matches!(&error, QualityError::Open { path, .. } | QualityError::NoVideoStream { path } if *path == garbage),
        "{error:?}"
    );

    // A truncated file still scores what decodes.
    let truncated = dir.path().join("truncated.mp4");
    x264(&reference, &["-f", "mpegts"], &dir.path().join("whole.ts"));
    let whole = std::fs::read(dir.path().join("whole.ts")).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let partial = compare_files(&reference, &truncated, &options()).unwrap();
    assert!(
        partial.counts.paired > 0 && partial.counts.paired < 20,
        "{}",
        partial.counts
    );
    assert_eq!(
        partial.counts.unmatched_reference,
        20 - partial.counts.paired
    );

    // Pictures libvmaf cannot score are refused before they reach it (libvmaf 2.3.1 crashes on
    // 16-pixel pictures); 32x32 is the smallest accepted.
    for (size, accepted) in [("16x16", false), ("320x16", false), ("32x32", true)] {
        let tiny = dir.path().join(format!("tiny-{size}.y4m"));
        testkit::ffmpeg::testsrc(&tiny, size, 3);
        let all_metrics = QualityOptions {
            ssim: true,
            ..options()
        };
        match compare_files(&tiny, &tiny, &all_metrics) {
            Ok(report) => assert!(accepted && report.pooled.vmaf.frames == 3, "{size}"),
            Err(QualityError::PictureTooSmall { path, .. }) => assert!(!accepted && path == tiny),
            Err(other) => panic!("{size}: {other:?}"),
        }
    }

    // Invalid options are named.
    assert!(matches!(
        compare_files(
            &reference,
            &reference,
            &QualityOptions {
                subsample: 0,
                ..options()
            }
        ),
        Err(QualityError::InvalidOption {
            name: "subsample",
            ..
        })
    ));
}

#[test]
fn reference_ladder_scores_a_starved_network_rendition_below_its_own_transcode() {
    use quality::{NetworkRendition, ReferenceLadder};
    use reference_transcoder::{LadderOptions, Profile, SourceConfig, generate};

    let source = generate(&SourceConfig {
        width: 640,
        height: 360,
        fps_num: 60,
        duration_secs: 2.0,
        audio: false,
        stream_id: 77,
        ..SourceConfig::default()
    })
    .unwrap();
    let segment = source.ts_segments(2.0).unwrap().remove(0);
    let dir = tempfile::tempdir().unwrap();
    let source_ts = dir.path().join("source.ts");
    let network_ts = dir.path().join("network.ts");
    std::fs::write(&source_ts, &segment.data).unwrap();
    // The "orchestrator": the right size and rate (60 -> 30 fps by FFmpeg's fps conversion),
    // but starved of bits.
    x264(
        &source_ts,
        &[
            "-s", "426x240", "-r", "30", "-b:v", "30k", "-maxrate", "30k", "-bufsize", "30k", "-f",
            "mpegts",
        ],
        &network_ts,
    );

    let profile = Profile::preset("P240p30fps16x9").unwrap();
    let ladder_options = LadderOptions {
        hardware: reference_transcoder::ladder::HardwarePreference::Cpu,
        ..LadderOptions::default()
    };
    let mut ladder = ReferenceLadder::new(vec![profile], ladder_options, options()).unwrap();
    let network = NetworkRendition {
        profile: "P240p30fps16x9".into(),
        data: std::fs::read(&network_ts).unwrap(),
    };
    let results = ladder
        .score_segment("segment 0", &segment.data, vec![network.clone()])
        .unwrap();
    assert_eq!(results.len(), 1);
    let result = &results[0].comparison;
    eprintln!(
        "network: {:.2} ({} by {}), reference: {:.2} ({} by {}), difference {:.2}",
        result.vmaf,
        result.network.counts,
        result.network.pairing,
        result.vmaf_reference,
        result.reference.counts,
        result.reference.pairing,
        result.difference
    );
    assert_eq!(result.reference.pairing, Pairing::Stamp);
    // The ladder's own 60 -> 30 fps conversion shows about every other source frame, each once
    // (its timestamp rounding may keep one frame more at the segment's end).
    let counts = result.reference.counts;
    let half = segment.frames as u64 / 2;
    assert_eq!(counts.reference_frames, segment.frames as u64);
    assert!((half..=half + 1).contains(&counts.paired), "{counts}");
    assert_eq!(counts.paired, counts.distorted_frames, "{counts}");
    assert_eq!(
        counts.unmatched_reference,
        segment.frames as u64 - counts.paired,
        "{counts}"
    );
    assert_eq!(
        (counts.duplicated_distorted, counts.unmatched_distorted),
        (0, 0),
        "{counts}"
    );
    // A 30 kbps rendition may blur its stamps beyond reading; either way it is scored and says
    // how it was paired.
    let network_counts = result.network.counts;
    assert!(
        (half..=half + 1).contains(&network_counts.distorted_frames),
        "{network_counts}"
    );
    assert!(
        result.reference.distorted_scaled,
        "240p is scaled up to the 360p source"
    );
    assert!(
        result.vmaf_reference > 60.0,
        "reference rendition scores {}",
        result.vmaf_reference
    );
    assert!(
        result.difference < -10.0,
        "network {} vs reference {}",
        result.vmaf,
        result.vmaf_reference
    );

    let wrong = NetworkRendition {
        profile: "P720p30fps16x9".into(),
        data: network.data,
    };
    assert!(matches!(
        ladder.score_segment("segment 0", &segment.data, vec![wrong]),
        Err(QualityError::ProfileNotInLadder { profile, .. }) if profile == "P720p30fps16x9"
    ));
}
