//! Browser players (hls.js in headless Chromium) watching a stream the probe publishes through
//! nginx-rtmp: what they report when the stream plays well, when its playlist stops moving for a
//! while, and when its server sends no CORS header.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use probes::players::{PlayerOptions, Players, StreamPlayers};
use probes::{PlayerEvent, PlayerObservation, StreamProbe, StreamProbeConfig, http_client};
use testkit::nginx::Nginx;

use crate::support::{Recorder, encoded_source, runtime};

/// What the players of one stream reported, by player.
fn by_player(observations: &[PlayerObservation]) -> HashMap<u32, Vec<PlayerEvent>> {
    let mut players: HashMap<u32, Vec<PlayerEvent>> = HashMap::new();
    for o in observations {
        players.entry(o.player).or_default().push(o.event.clone());
    }
    players
}

fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty());
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A proxy in front of nginx's HLS that can send no CORS header, or hold media playlists at the
/// last version it served (no new segment for players while `frozen`).
#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    cors: bool,
    frozen: Arc<AtomicBool>,
    last_playlist: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let playlist = path.ends_with(".m3u8");
    let frozen = playlist && proxy.frozen.load(Ordering::SeqCst);
    let body = match proxy.last_playlist.lock().unwrap().get(&path) {
        Some(body) if frozen => Some(body.clone()),
        _ => None,
    };
    let body = match body {
        Some(body) => body,
        None => {
            let Ok(answer) = proxy
                .client
                .get(format!("{}{path}", proxy.upstream))
                .send()
                .await
            else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            if !answer.status().is_success() {
                return StatusCode::NOT_FOUND.into_response();
            }
            let body = answer.bytes().await.unwrap_or_default().to_vec();
            if playlist {
                proxy
                    .last_playlist
                    .lock()
                    .unwrap()
                    .insert(path.clone(), body.clone());
            }
            body
        }
    };
    let mut response = body.into_response();
    let content_type = if playlist {
        "application/vnd.apple.mpegurl"
    } else {
        "video/mp2t"
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if proxy.cors {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

/// Starts the proxy on a loopback port of its own; returns its base URL.
async fn start_proxy(proxy: Proxy) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// Publishes `key` for `seconds` through nginx-rtmp's HLS, behind a proxy made by `proxy`, with
/// `players` players; `during` runs beside the stream with the recorder.
fn watch<F, Fut>(key: &str, seconds: u64, players: u32, cors: bool, during: F) -> Arc<Recorder>
where
    F: FnOnce(Arc<Recorder>, Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_, source) = encoded_source();
    let nginx = Nginx::start();
    let rt = runtime();
    let frozen = Arc::new(AtomicBool::new(false));
    let recorder = Arc::new(Recorder::default());
    rt.block_on(async {
        let hls_url = nginx.hls_url(key);
        let upstream = hls_url[..hls_url.find("/hls/").unwrap()].to_string();
        let base = start_proxy(Proxy {
            upstream,
            client: http_client().unwrap(),
            cors,
            frozen: frozen.clone(),
            last_playlist: Arc::default(),
        })
        .await;
        let browser = Players::launch(PlayerOptions::default(), &[])
            .await
            .expect("the players start");
        let mut config = StreamProbeConfig::new(
            key,
            &nginx.rtmp_url(key),
            &format!("{base}/hls/{key}.m3u8"),
            Duration::from_secs(seconds),
        );
        config.drain = Duration::from_secs(4);
        config.players = Some(StreamPlayers {
            players: Arc::new(browser),
            count: players,
        });
        let probe = StreamProbe::new(config, source.clone(), http_client().unwrap()).unwrap();
        let (report, ()) = tokio::join!(
            probe.run(recorder.clone()),
            during(recorder.clone(), frozen.clone())
        );
        assert_eq!(report.publish_error, None, "{}", nginx.error_log());
    });
    recorder
}

#[test]
fn players_report_first_frame_latency_and_frames_of_a_stream_that_plays_well() {
    let recorder = watch("players-ok", 24, 2, true, |_, _| async {});
    let observations = recorder.players.lock().unwrap().clone();
    let players = by_player(&observations);
    assert_eq!(players.len(), 2, "{observations:#?}");
    let segment_latency = median(
        recorder
            .segments
            .lock()
            .unwrap()
            .iter()
            .filter_map(|s| s.latency.glass_to_glass_ms)
            .collect(),
    );
    for (player, events) in &players {
        let ttff: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                PlayerEvent::FirstFrame { ttff_ms } => Some(*ttff_ms),
                _ => None,
            })
            .collect();
        assert_eq!(ttff.len(), 1, "player {player}: {events:#?}");
        assert!(
            ttff[0] > 0.0 && ttff[0] < 15_000.0,
            "player {player}: ttff {ttff:?}"
        );
        let latencies: Vec<f64> = events
            .iter()
            .filter_map(|e| match e {
                PlayerEvent::Latency { latency_ms, .. } => Some(*latency_ms),
                _ => None,
            })
            .collect();
        // A sample a second from the first frame to the publisher's end.
        assert!(latencies.len() >= 8, "player {player}: {latencies:?}");
        let player_latency = median(latencies.clone());
        // A player shows a frame after its segment is listed, behind a buffer of segments.
        assert!(
            player_latency > segment_latency && player_latency < 30_000.0,
            "player {player}: latency {player_latency} ms, segments listed {segment_latency} ms after sending"
        );
        let Some(PlayerEvent::Ended {
            decoded_frames: Some(decoded),
            dropped_frames: Some(dropped),
            error: None,
        }) = events.last()
        else {
            panic!("player {player} did not end well: {events:#?}");
        };
        // At 30 fps for at least ten seconds of playback.
        assert!(*decoded >= 300, "player {player}: {decoded} frames decoded");
        assert!(
            *dropped <= decoded / 10,
            "player {player}: {dropped} of {decoded} dropped"
        );
        let stalled: f64 = events
            .iter()
            .filter_map(|e| match e {
                PlayerEvent::Stall { stall_ms } => Some(*stall_ms),
                _ => None,
            })
            .sum();
        eprintln!(
            "player {player}: first frame {:.0} ms, latency p50 {player_latency:.0} ms (segments listed {segment_latency:.0} ms after sending), {decoded} frames decoded, {dropped} dropped, {stalled:.0} ms stalled",
            ttff[0]
        );
        assert!(
            stalled < 2_000.0,
            "player {player}: stalled {stalled} ms: {events:#?}"
        );
    }
    let renditions: Vec<_> = observations
        .iter()
        .filter_map(|o| o.rendition.clone())
        .collect();
    assert!(
        renditions.iter().all(|r| r == "360p"),
        "the source is 640x360: {renditions:?}"
    );
}

#[test]
fn a_playlist_that_stops_moving_makes_players_stall_and_they_say_for_how_long() {
    const FROZEN: Duration = Duration::from_secs(14);
    let recorder = watch(
        "players-stall",
        36,
        1,
        true,
        |recorder, frozen| async move {
            let deadline = Instant::now() + Duration::from_secs(40);
            while !recorder
                .players
                .lock()
                .unwrap()
                .iter()
                .any(|o| matches!(o.event, PlayerEvent::FirstFrame { .. }))
            {
                assert!(Instant::now() < deadline, "the player never showed a frame");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            frozen.store(true, Ordering::SeqCst);
            tokio::time::sleep(FROZEN).await;
            frozen.store(false, Ordering::SeqCst);
        },
    );
    let observations = recorder.players.lock().unwrap().clone();
    let stalls: Vec<f64> = observations
        .iter()
        .filter_map(|o| match o.event {
            PlayerEvent::Stall { stall_ms } => Some(stall_ms),
            _ => None,
        })
        .collect();
    // The player holds a few segments: it plays them out, then waits until the playlist moves.
    assert!(!stalls.is_empty(), "{observations:#?}");
    let longest = stalls.iter().copied().fold(0.0, f64::max);
    assert!(
        longest >= 2_000.0 && longest <= FROZEN.as_millis() as f64 + 2_000.0,
        "stalls {stalls:?}"
    );
    assert!(
        matches!(
            observations.last().map(|o| &o.event),
            Some(PlayerEvent::Ended { error: None, .. })
        ),
        "the player recovers: {observations:#?}"
    );
}

#[test]
fn a_server_without_cors_headers_fails_web_players_with_the_reason() {
    let recorder = watch("players-no-cors", 12, 1, false, |_, _| async {});
    let observations = recorder.players.lock().unwrap().clone();
    let errors: Vec<&str> = observations
        .iter()
        .filter_map(|o| match &o.event {
            PlayerEvent::Ended {
                error: Some(error), ..
            } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{observations:#?}");
    assert!(
        errors[0].starts_with("networkError: manifestLoadError"),
        "{errors:?}"
    );
    assert!(
        !observations
            .iter()
            .any(|o| matches!(o.event, PlayerEvent::FirstFrame { .. })),
        "{observations:#?}"
    );
}
