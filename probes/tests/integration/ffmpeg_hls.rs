//! The whole probe against ffmpeg's own HLS muxer behind nginx-rtmp, in each form it packages:
//! MPEG-TS, fMP4/CMAF with an `#EXT-X-MAP` init segment, and fMP4 in one file cut into
//! `#EXT-X-BYTERANGE`s. Every segment decodes with its frame stamps read: an fMP4 media segment
//! read without its init segment does not ("trun track id unknown, no tfhd was found").

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use probes::{StreamProbe, StreamProbeConfig, http_client};
use testkit::nginx::{FfmpegHls, Nginx};

use crate::support::{Recorder, encoded_source, runtime};

/// Publishes one stream for ffmpeg to package as `form` and checks everything the probe pulled;
/// returns the playlist ffmpeg wrote last.
fn probe_through(form: FfmpegHls) -> String {
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    let key = format!("ffmpeg-{}", form.application());
    let mut config = StreamProbeConfig::new(
        &key,
        &nginx.ffmpeg_rtmp_url(form, &key),
        &nginx.ffmpeg_hls_url(form, &key),
        Duration::from_secs(12),
    );
    config.drain = Duration::from_secs(6);
    config.checks.resolutions.insert(key.clone(), (640, 360));
    let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let report = runtime().block_on(probe.run(recorder.clone()));
    let playlist = std::fs::read_to_string(nginx.ffmpeg_hls_dir(form).join(format!("{key}.m3u8")))
        .unwrap_or_default();

    assert_eq!(
        report.publish_error,
        None,
        "{form:?}: {}",
        nginx.error_log()
    );
    assert_eq!(report.pull_error, None, "{form:?}");
    let segments = recorder.segments.lock().unwrap().clone();
    let seqs: BTreeSet<u64> = segments.iter().map(|s| s.seq).collect();
    assert!(
        segments.len() >= 3,
        "{form:?}: only {} segments {seqs:?}; playlist:\n{playlist}",
        segments.len()
    );
    assert!(
        segments.iter().all(|s| s.success),
        "{form:?}: {:#?}\nplaylist:\n{playlist}",
        segments
            .iter()
            .filter(|s| !s.success)
            .map(|s| (s.seq, s.failure.clone()))
            .collect::<Vec<_>>()
    );
    let failed = recorder.failed_checks();
    assert!(failed.is_empty(), "{form:?}: failed checks: {failed:#?}");
    for s in &segments {
        let media = s.media.as_ref().expect("decoded");
        assert_eq!(
            (
                media.decoded.width,
                media.decoded.height,
                media.decoded.codec.as_str()
            ),
            (640, 360, "h264"),
            "{form:?} seq {}",
            s.seq
        );
        assert_eq!(media.stamp_stream_id, Some(source.format.stream_id));
        let g = s.latency.glass_to_glass_ms.expect("glass-to-glass latency");
        assert!(g > 0.0 && g < 20_000.0, "{form:?}: glass to glass {g} ms");
    }
    playlist
}

#[test]
fn mpeg_ts_segments_of_ffmpegs_hls_muxer_pass_every_check() {
    let playlist = probe_through(FfmpegHls::Ts);
    assert!(playlist.contains(".ts"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-MAP"), "{playlist}");
}

#[test]
fn fmp4_segments_are_decoded_with_their_init_segment() {
    let playlist = probe_through(FfmpegHls::Fmp4);
    assert!(playlist.contains("#EXT-X-MAP:URI="), "{playlist}");
    assert!(playlist.contains(".m4s"), "{playlist}");
}

#[test]
fn byte_range_segments_of_one_fmp4_file_are_fetched_as_ranges() {
    let playlist = probe_through(FfmpegHls::Fmp4SingleFile);
    assert!(playlist.contains("#EXT-X-BYTERANGE:"), "{playlist}");
    assert!(playlist.contains("#EXT-X-MAP:URI="), "{playlist}");
}

#[test]
fn an_audio_only_rendition_of_a_master_playlist_is_pulled_and_timed() {
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    let form = FfmpegHls::TsAudioRendition;
    let key = "ffmpeg-audio";
    let mut config = StreamProbeConfig::new(
        key,
        &nginx.ffmpeg_rtmp_url(form, key),
        &nginx.ffmpeg_hls_url(form, key),
        Duration::from_secs(12),
    );
    config.drain = Duration::from_secs(6);
    let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
    let recorder = Arc::new(Recorder::default());
    let report = runtime().block_on(probe.run(recorder.clone()));
    let master = std::fs::read_to_string(nginx.ffmpeg_hls_dir(form).join(format!("{key}.m3u8")))
        .unwrap_or_default();
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO"), "{master}");

    assert_eq!(report.pull_error, None);
    let (video, audio) = (format!("{key}-0"), format!("{key}-1"));
    assert_eq!(
        report.renditions,
        vec![video.clone(), audio.clone()],
        "{master}"
    );
    let segments = recorder.segments.lock().unwrap().clone();
    assert!(
        segments.iter().all(|s| s.success),
        "{:#?}",
        segments
            .iter()
            .filter(|s| !s.success)
            .map(|s| (&s.rendition, s.seq, &s.failure))
            .collect::<Vec<_>>()
    );
    let failed = recorder.failed_checks();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    let of = |name: &str| -> Vec<&probes::SegmentObservation> {
        segments.iter().filter(|s| s.rendition == name).collect()
    };
    assert!(
        of(&video).len() >= 3 && of(&audio).len() >= 3,
        "{segments:#?}"
    );
    for s in of(&audio) {
        let media = s.media.as_ref().expect("timed");
        assert_eq!(
            (
                media.decoded.codec.as_str(),
                media.decoded.width,
                media.stamp_stream_id
            ),
            ("aac", 0, None)
        );
        // Its packets span what the playlist says (the duration check passed), and no latency
        // is claimed for a rendition without frame stamps.
        assert!(media.decoded.duration_secs > 1.0, "{media:?}");
        assert_eq!(s.latency.glass_to_glass_ms, None);
    }
    for s in of(&video) {
        let media = s.media.as_ref().expect("decoded");
        assert_eq!(media.decoded.codec, "h264");
        assert_eq!(media.stamp_stream_id, Some(source.format.stream_id));
    }
}
