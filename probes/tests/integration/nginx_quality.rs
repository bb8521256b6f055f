//! The quality probe: sampled segments scored live through nginx (a pass-through, so VMAF
//! against the source is high), and a deliberately degraded rendition scored far below a
//! normal one and below the reference transcoder's rendition of the same preset.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use probes::{
    ProbeObserver, QualityObservation, QualitySample, QualitySampler, QualitySamplerConfig,
    Sampling, StreamProbe, StreamProbeConfig, Submission, http_client,
};
use testkit::nginx::Nginx;

use crate::support::{Recorder, encoded_source, runtime};

/// Keeps quality observations (and everything else through [`Recorder`]).
#[derive(Default)]
struct QualityRecorder {
    inner: Recorder,
    quality: Mutex<Vec<QualityObservation>>,
}

impl ProbeObserver for QualityRecorder {
    fn segment(&self, s: &probes::SegmentObservation) {
        self.inner.segment(s)
    }
    fn check(&self, c: &probes::CheckObservation) {
        self.inner.check(c)
    }
    fn stall(&self, s: &probes::StallObservation) {
        self.inner.stall(s)
    }
    fn publish_progress(&self, p: &probes::PublishObservation) {
        self.inner.publish_progress(p)
    }
    fn quality(&self, q: &QualityObservation) {
        self.quality.lock().unwrap().push(q.clone());
    }
}

fn config(sampling: Sampling, max_in_flight: usize) -> QualitySamplerConfig {
    QualitySamplerConfig {
        sampling,
        threads: 2,
        max_in_flight,
        max_queued: 1,
        ..Default::default()
    }
}

#[test]
fn every_segment_through_nginx_scores_high_against_the_source() {
    let (encoded, source) = encoded_source();
    let sampler =
        Arc::new(QualitySampler::new(encoded, config(Sampling::Fraction(1.0), 2)).unwrap());
    let nginx = Nginx::start();
    let key = "probe-quality";
    let mut config = StreamProbeConfig::new(
        key,
        &nginx.rtmp_url(key),
        &nginx.hls_url(key),
        Duration::from_secs(8),
    );
    config.publish.start_frame = source.start_frame_for_stream(2);
    config.drain = Duration::from_secs(5);
    config.quality = Some(sampler.clone());
    let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
    let recorder = Arc::new(QualityRecorder::default());
    let report = runtime().block_on(probe.run(recorder.clone()));

    assert_eq!(report.publish_error, None, "{}", nginx.error_log());
    let scores = recorder.quality.lock().unwrap().clone();
    let stats = sampler.stats();
    eprintln!("report {report:?} stats {stats:?}");
    for q in &scores {
        eprintln!(
            "seq {} vmaf {:?} min {:?} psnr {:?} paired {} scoring {:.0} ms",
            q.seq, q.vmaf, q.vmaf_min, q.psnr_y, q.frames_paired, q.scoring_ms
        );
    }
    // Every successful segment was offered; the report accounts for each one.
    assert_eq!(stats.sampled, report.segments_ok);
    assert_eq!(
        report.quality_scored + report.quality_failed + report.quality_dropped,
        report.segments_ok
    );
    assert_eq!(
        report.quality_scored as usize,
        scores.len() - report.quality_failed as usize
    );
    assert!(report.quality_scored >= 3, "{report:?} {stats:?}");
    for q in scores.iter().filter(|q| q.error.is_none()) {
        assert_eq!(q.rendition, key);
        // nginx's rendition is not an lpms preset: scored against the source only.
        assert_eq!((q.vmaf_reference, q.difference), (None, None));
        let vmaf = q.vmaf.unwrap();
        assert!(vmaf > 80.0 && vmaf <= 100.0, "{q:?}");
        assert!(q.psnr_y.unwrap() > 30.0, "{q:?}");
        assert!(q.frames_paired >= 50, "{q:?}");
        assert_eq!(q.unmatched_rendition, 0, "{q:?}");
    }
    // Failures may only be a last segment cut short by the end of the stream.
    let failed: Vec<&QualityObservation> = scores.iter().filter(|q| q.error.is_some()).collect();
    assert!(failed.len() <= 1, "{failed:#?}");
}

/// `data` re-encoded by the `ffmpeg` tool with `video_args`, as MPEG-TS.
fn ffmpeg_transcode(data: &[u8], video_args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.ts"), dir.path().join("out.ts"));
    std::fs::write(&input, data).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&input)
        // One encoder thread: the output (and so the score) is the same on every run.
        .args([
            "-an", "-c:v", "libx264", "-preset", "veryfast", "-threads", "1",
        ])
        .args(video_args)
        .args(["-f", "mpegts"])
        .arg(&output)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::read(&output).unwrap()
}

#[test]
fn a_degraded_rendition_scores_far_below_a_normal_one_and_the_reference() {
    let (encoded, _) = encoded_source();
    let segments = encoded.ts_segments(2.0).unwrap();
    let segment = &segments[1];
    let sampler = Arc::new(QualitySampler::new(encoded, config(Sampling::EveryNth(1), 1)).unwrap());
    let sample = |data: Vec<u8>| QualitySample {
        stream_key: "degraded".into(),
        rendition: "P360p30fps16x9".into(),
        seq: 7,
        first_stamp_frame: Some(segment.first_frame),
        last_stamp_frame: Some(segment.first_frame + segment.frames - 1),
        data: data.into(),
    };
    let normal = sampler.score(&sample(ffmpeg_transcode(&segment.data, &["-b:v", "900k"])));
    let degraded = sampler.score(&sample(ffmpeg_transcode(
        &segment.data,
        &["-b:v", "40k", "-maxrate", "40k", "-bufsize", "40k"],
    )));
    eprintln!("normal {normal:?}");
    eprintln!("degraded {degraded:?}");
    assert_eq!((&normal.error, &degraded.error), (&None, &None));
    let (n, d) = (normal.vmaf.unwrap(), degraded.vmaf.unwrap());
    assert!(n > 80.0, "normal {n}");
    assert!(n - d > 20.0, "normal {n} degraded {d}");
    let reference = normal.vmaf_reference.unwrap();
    assert!(reference > 80.0, "reference {reference}");
    assert!(normal.difference.unwrap() > -10.0, "{normal:?}");
    assert!(degraded.difference.unwrap() < -10.0, "{degraded:?}");
    // The normal rendition pairs every frame by stamp; the starved one still pairs most (its
    // scores are real frame-to-frame comparisons, not an alignment failure).
    assert_eq!(normal.frames_paired, u64::from(segment.frames));
    assert!(
        degraded.frames_paired >= u64::from(segment.frames / 3),
        "{degraded:?}"
    );

    // With one worker and one queue place, a burst of three keeps at most two and drops the
    // rest, counted; the source rendition (a copy of what was sent) is never sampled.
    let recorder = Arc::new(QualityRecorder::default());
    let rt = runtime();
    let (scores, dropped, source) = rt.block_on(async {
        let data = ffmpeg_transcode(&segment.data, &["-b:v", "600k"]);
        let mut jobs = Vec::new();
        let mut dropped = 0;
        for _ in 0..3 {
            match sampler.submit(sample(data.clone()), recorder.clone()) {
                Submission::Scheduled(job) => jobs.push(job),
                Submission::Dropped => dropped += 1,
                Submission::NotSampled => panic!("every segment is sampled"),
            }
        }
        let mut source = sample(data);
        source.rendition = "source".into();
        let source = sampler.submit(source, recorder.clone());
        let mut scores = Vec::new();
        for job in jobs {
            scores.push(job.await.unwrap());
        }
        (scores, dropped, source)
    });
    assert!(matches!(source, Submission::NotSampled), "{source:?}");
    assert!((1..=2).contains(&dropped), "dropped {dropped}");
    assert_eq!(scores.len() + dropped, 3);
    assert!(scores.iter().all(|q| q.error.is_none()), "{scores:?}");
    assert_eq!(recorder.quality.lock().unwrap().len(), scores.len());
    let stats = sampler.stats();
    assert_eq!(
        (stats.sampled, stats.scored, stats.dropped, stats.failed),
        (3, 2 + scores.len() as u64, dropped as u64, 0)
    );

    // A rendition named outside the presets is given its profile in the config.
    let mut named = config(Sampling::EveryNth(1), 1);
    named.rendition_profiles.insert(
        "360p".into(),
        reference_transcoder::Profile::preset("P360p30fps16x9").unwrap(),
    );
    let named = QualitySampler::new(encoded, named).unwrap();
    let mut custom = sample(ffmpeg_transcode(&segment.data, &["-b:v", "900k"]));
    custom.rendition = "360p".into();
    let q = named.score(&custom);
    assert_eq!(q.error, None);
    assert!(
        q.vmaf_reference.unwrap() > 80.0 && q.difference.unwrap() > -10.0,
        "{q:?}"
    );

    // A segment whose stamp matches no source segment is reported, not panicked on.
    let mut stray = sample(segment.data.clone());
    stray.first_stamp_frame = Some(segment.first_frame + 1);
    let q = sampler.score(&stray);
    assert!(
        q.error
            .unwrap()
            .contains("no source segment starts at clip frame")
    );
}
