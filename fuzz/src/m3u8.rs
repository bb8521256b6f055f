//! `m3u8`: playlists from a hostile HLS server through the probes' puller.
//!
//! The puller's playlist handling (the `#EXTM3U` check, `m3u8_rs::parse_playlist_res`, rendition
//! URLs from a master playlist, then per rendition the media sequence arithmetic, missed-segment
//! accounting, live-edge skipping, stall detection and poll scheduling from the target duration)
//! is private to `probes::hls` and only reachable through `HlsPuller` over HTTP, so the input is
//! served by a tiny HTTP/1.1 server on loopback that the puller's client uses as its proxy for
//! every URL (absolute variant URIs never leave the machine). Each input gets one short pull.
//!
//! Input: up to the first NUL byte, the playlist served at the puller's URL; after it, the
//! playlist served at every other `.m3u8` URL (without a NUL, the same one). Any other URL (a
//! segment) gets four bytes. An input of odd length pulls with `live_edge = Some(2)`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use probes::{HlsOptions, HlsPuller, PullEvent, pull_stop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one input is pulled.
pub const PULL_FOR: Duration = Duration::from_millis(20);

struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    client: reqwest::Client,
    /// (main playlist, every other playlist).
    bodies: Arc<Mutex<(Bytes, Bytes)>>,
}

fn with_server<R>(f: impl FnOnce(&Server) -> R) -> R {
    static SERVER: OnceLock<Mutex<Server>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let bodies = Arc::new(Mutex::new((Bytes::new(), Bytes::new())));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the playlist server");
        let addr = listener.local_addr().expect("local address");
        let served = bodies.clone();
        rt.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, served.clone()));
            }
        });
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{addr}")).expect("proxy URL"))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        Mutex::new(Server {
            rt,
            addr,
            client,
            bodies,
        })
    });
    let guard = server.lock().unwrap_or_else(|e| e.into_inner());
    f(&guard)
}

/// Answers requests on one connection until the client closes it.
async fn serve(mut socket: tokio::net::TcpStream, bodies: Arc<Mutex<(Bytes, Bytes)>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split(['?', '#']).next().unwrap_or("");
        let response = if method == "CONNECT" {
            // https:// URIs: no tunnel, the puller reports a transport error.
            Bytes::from_static(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        } else {
            let (body, kind) = if path.ends_with(".m3u8") {
                let bodies = bodies.lock().unwrap_or_else(|e| e.into_inner());
                let main = path.ends_with("/stream/main.m3u8");
                let body = if main { &bodies.0 } else { &bodies.1 };
                (body.clone(), "application/vnd.apple.mpegurl")
            } else {
                (Bytes::from_static(b"\x47\x40\x00\x10"), "video/mp2t")
            };
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            Bytes::from(r)
        };
        if socket.write_all(&response).await.is_err() {
            return;
        }
    }
}

/// Pulls one input for [`PULL_FOR`]; panics (in the puller or its rendition tasks) are the
/// findings. Returns the events the puller reported.
pub fn run(data: &[u8]) -> Vec<PullEvent> {
    let (main, others) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    with_server(|s| {
        *s.bodies.lock().unwrap_or_else(|e| e.into_inner()) =
            (Bytes::copy_from_slice(main), Bytes::copy_from_slice(others));
        let options = HlsOptions {
            request_timeout: Duration::from_secs(2),
            playlist_wait: Duration::ZERO,
            retry_interval: Duration::from_millis(1),
            master_refresh: Duration::from_secs(60),
            keep_bytes: false,
            live_edge: (data.len() % 2 == 1).then_some(2),
            ..HlsOptions::default()
        };
        let url = format!("http://{}/stream/main.m3u8", s.addr);
        let puller = HlsPuller::new(s.client.clone(), &url, "fuzz", options).expect("puller URL");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let events = events.clone();
            Arc::new(move |e: PullEvent| events.lock().unwrap_or_else(|e| e.into_inner()).push(e))
        };
        let summary = s.rt.block_on(async {
            let (_stop_handle, stop) = pull_stop();
            let deadline = tokio::time::Instant::now() + PULL_FOR;
            puller.run_until(deadline, sink, stop).await
        });
        let events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
        let segments = events
            .iter()
            .filter(|e| matches!(e, PullEvent::Segment(_)))
            .count() as u64;
        assert_eq!(
            summary.segments_ok + summary.segments_failed,
            segments,
            "the summary counts the segments reported"
        );
        events
    })
}
