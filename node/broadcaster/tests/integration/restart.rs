//! A broadcaster SIGKILLed mid-stream and started again on the same ports and `hls_dir`: when the
//! publisher comes back under the same stream name, the playlists the dead process left are
//! listed again with every entry at its place, the segment that was being cut when it died is a
//! gap, and numbering goes on after a discontinuity, so a player polling the same URL never sees
//! a number go back.
//!
//! The broadcaster runs as a process of its own so that it can die as a crash ends it: this test
//! binary runs itself with the ignored test [`broadcaster_process`] selected.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use node_orchestrator::config::OrchestratorConfig;

use crate::support::*;

const RENDITION: &str = "P144p30fps16x9";
/// How the parent tells the child process what to run: hls_dir, RTMP and HTTP addresses and the
/// orchestrator, one a line.
const CHILD_ENV: &str = "LPT_TEST_BROADCASTER_PROCESS";

/// The broadcaster process: started from [`CHILD_ENV`], announces its addresses, serves until
/// killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the broadcaster process the crash test kills; it runs it"]
async fn broadcaster_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [hls_dir, rtmp, http, orchestrator] =
        <[&str; 4]>::try_from(spec.lines().collect::<Vec<_>>()).expect("four lines");
    let mut c = config(RENDITION, vec![orchestrator.to_string()]);
    c.rtmp_addr = rtmp.parse().unwrap();
    c.http_addr = http.parse().unwrap();
    c.hls_dir = Some(hls_dir.into());
    c.hls_window = 8;
    c.failure_cooldown_secs = 0;
    let b = start(c).await;
    println!("ready {} {}", b.rtmp_addr, b.http_addr);
    std::future::pending::<()>().await;
}

/// A broadcaster process, killed with SIGKILL when dropped.
struct Process {
    child: Child,
    rtmp: String,
    http: String,
}

impl Process {
    fn start(hls_dir: &std::path::Path, rtmp: &str, http: &str, orchestrator: &str) -> Process {
        let spec = format!("{}\n{rtmp}\n{http}\n{orchestrator}", hls_dir.display());
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "restart::broadcaster_process",
                "--ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the test binary runs");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // The harness prints its own lines too; the child's announcement is the one that counts.
        // If the child dies first, its stdout ends and so does this loop.
        let ready = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("ready ").map(str::to_owned))
            .expect("the broadcaster process announced its addresses");
        let (rtmp, http) = ready.split_once(' ').unwrap();
        Process {
            child,
            rtmp: rtmp.to_string(),
            http: http.to_string(),
        }
    }

    fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One media playlist entry as a client numbers it.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    uri: String,
    msn: u64,
    dsn: u64,
    discontinuity: bool,
    gap: bool,
    extinf: String,
}

fn entries(playlist: &str) -> Vec<Entry> {
    let number = |tag: &str| {
        playlist
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .map_or(0, |n| n.parse().unwrap())
    };
    let (mut msn, mut dsn) = (
        number("#EXT-X-MEDIA-SEQUENCE:"),
        number("#EXT-X-DISCONTINUITY-SEQUENCE:"),
    );
    let (mut discontinuity, mut gap, mut extinf) = (false, false, String::new());
    let mut out = Vec::new();
    for line in playlist.lines() {
        if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
            dsn += 1;
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            extinf = d.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push(Entry {
                uri: line.to_string(),
                msn,
                dsn,
                discontinuity: std::mem::take(&mut discontinuity),
                gap: std::mem::take(&mut gap),
                extinf: std::mem::take(&mut extinf),
            });
            msn += 1;
        }
    }
    out
}

fn seq_of(entry: &Entry) -> u64 {
    let file = entry.uri.rsplit('/').next().unwrap();
    file.strip_suffix(".ts").unwrap().parse().unwrap()
}

/// GETs `url` until `accept` takes the answer, failing after `limit`.
async fn poll_until(
    url: &str,
    limit: Duration,
    mut accept: impl FnMut(u16, &str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Ok(resp) = reqwest::get(url).await {
            let code = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            if accept(code, &body) {
                return body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} not as awaited within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcaster_restarted_after_a_crash_numbers_the_stream_on_where_it_died() {
    let mut oc = OrchestratorConfig::offchain();
    oc.transcode.x264_preset = "ultrafast".into();
    oc.transcode.encoder_threads = 1;
    let o = node_orchestrator::start(oc).await.unwrap();
    let orchestrator = o.service_uri().to_string();
    let hls = tempfile::tempdir().unwrap();

    let first = Process::start(hls.path(), "127.0.0.1:0", "127.0.0.1:0", &orchestrator);
    let (rtmp, http) = (first.rtmp.clone(), first.http.clone());
    let publish_url = format!("rtmp://{rtmp}/live/cam");
    let playlist = |name: &str| format!("http://{http}/stream/cam/{name}.m3u8");
    let mut publisher = ffmpeg_publish(&publish_url, 120, "320x180");
    let transcoded = |body: &str| entries(body).iter().filter(|e| !e.gap).count() >= 4;
    poll_until(
        &playlist(RENDITION),
        Duration::from_secs(60),
        |code, body| code == 200 && transcoded(body),
    )
    .await;
    let (_, source_before) = get_text(&playlist("source")).await;
    let (_, ladder_before) = get_text(&playlist(RENDITION)).await;
    let last_before = entries(&source_before).last().cloned().unwrap();
    let last_bytes = reqwest::get(format!("http://{http}/stream/cam/{}", last_before.uri))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    first.crash();
    let _ = publisher.kill();
    let _ = publisher.wait();

    let second = Process::start(hls.path(), &rtmp, &http, &orchestrator);
    assert_eq!(
        get_text(&playlist("source")).await.0,
        404,
        "nobody has published the stream to this process yet"
    );
    let publisher = ffmpeg_publish(&publish_url, 8, "320x180");
    let resumed_source = poll_until(&playlist("source"), Duration::from_secs(20), |code, _| {
        code == 200
    })
    .await;
    let resumed_ladder = get_text(&playlist(RENDITION)).await.1;

    for (before, resumed) in [
        (&source_before, &resumed_source),
        (&ladder_before, &resumed_ladder),
    ] {
        let (before, resumed) = (entries(before), entries(resumed));
        assert!(resumed[0].msn >= before[0].msn, "{resumed:#?}\n{before:#?}");
        // What the dead process listed is listed again at the same place.
        for entry in &before {
            if let Some(again) = resumed.iter().find(|e| e.uri == entry.uri) {
                assert_eq!(again, entry, "{resumed:#?}");
            }
        }
        // Then one gap for the segment being cut when it died, right after its last entry.
        let (gap, kept) = resumed.split_last().unwrap();
        assert!(gap.gap, "{resumed:#?}");
        assert_eq!(
            seq_of(gap),
            seq_of(kept.last().unwrap()) + 1,
            "{resumed:#?}"
        );
        assert_eq!(gap.msn, kept.last().unwrap().msn + 1);
        assert!(kept.iter().any(|e| e.uri == before.last().unwrap().uri));
    }
    let served = reqwest::get(format!("http://{http}/stream/cam/{}", last_before.uri))
        .await
        .unwrap();
    assert_eq!(
        served.status(),
        200,
        "the dead process's segments are served"
    );
    assert_eq!(served.bytes().await.unwrap(), last_bytes);

    let (exit, stderr) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(exit.success(), "{stderr}");
    let ended = poll_until(
        &playlist(RENDITION),
        Duration::from_secs(60),
        |code, body| code == 200 && body.contains("#EXT-X-ENDLIST"),
    )
    .await;
    let source_ended = get_text(&playlist("source")).await.1;
    let resumed_gap = entries(&resumed_source).last().cloned().unwrap();
    for playlist in [&source_ended, &ended] {
        let listed = entries(playlist);
        let new: Vec<&Entry> = listed
            .iter()
            .filter(|e| seq_of(e) > seq_of(&resumed_gap))
            .collect();
        assert!(new.len() >= 3, "{playlist}");
        assert!(new[0].discontinuity, "{playlist}");
        assert_eq!(seq_of(new[0]), seq_of(&resumed_gap) + 1);
        assert_eq!(new[0].msn, resumed_gap.msn + 1, "{playlist}");
        assert_eq!(new[0].dsn, resumed_gap.dsn + 1, "{playlist}");
        assert!(new.iter().skip(1).all(|e| !e.discontinuity && !e.gap));
    }
    let first_new = entries(&ended)
        .into_iter()
        .find(|e| seq_of(e) == seq_of(&resumed_gap) + 1)
        .unwrap();
    let (w, h, _) = ffprobe_video(&format!("http://{http}/stream/cam/{}", first_new.uri));
    assert_eq!((w, h), (256, 144));
    drop(second);
}
