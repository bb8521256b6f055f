//! Test support of the probes: the shared stamped source, a runtime per test, an observer
//! that keeps every observation for assertions, and the two halves of the misbehaving HTTP
//! servers written here (reading a request's path, writing a response by hand). The nginx peer
//! and loopback ports come from `testkit`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};

use probes::ReplaySource;
use reference_transcoder::{EncodedSource, SourceConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The stamped 640×360 source shared by every test of this binary (encoded once).
pub fn encoded_source() -> &'static (EncodedSource, Arc<ReplaySource>) {
    static SOURCE: OnceLock<(EncodedSource, Arc<ReplaySource>)> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    SOURCE.get_or_init(|| {
        let config = SourceConfig {
            width: 640,
            height: 360,
            duration_secs: 12.0,
            gop_secs: 2.0,
            stream_id: 0x5EED_0001,
            video_bitrate: Some(900_000),
            x264_preset: "ultrafast".into(),
            noise: 0,
            ..Default::default()
        };
        let encoded = reference_transcoder::generate(&config).expect("generate the stamped source");
        let replay = Arc::new(ReplaySource::new(&encoded).expect("replayable source"));
        (encoded, replay)
    })
}

/// A multi-thread runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An observer that keeps everything, for assertions.
#[derive(Default)]
pub struct Recorder {
    pub segments: Mutex<Vec<probes::SegmentObservation>>,
    pub checks: Mutex<Vec<probes::CheckObservation>>,
    pub stalls: Mutex<Vec<probes::StallObservation>>,
    pub publishes: Mutex<Vec<probes::PublishObservation>>,
    pub parts: Mutex<Vec<probes::PartObservation>>,
    pub violations: Mutex<Vec<probes::ViolationObservation>>,
    pub players: Mutex<Vec<probes::PlayerObservation>>,
}

impl probes::ProbeObserver for Recorder {
    fn segment(&self, s: &probes::SegmentObservation) {
        self.segments.lock().unwrap().push(s.clone());
    }
    fn check(&self, c: &probes::CheckObservation) {
        self.checks.lock().unwrap().push(c.clone());
    }
    fn stall(&self, s: &probes::StallObservation) {
        self.stalls.lock().unwrap().push(s.clone());
    }
    fn publish_progress(&self, p: &probes::PublishObservation) {
        self.publishes.lock().unwrap().push(p.clone());
    }
    fn part(&self, p: &probes::PartObservation) {
        self.parts.lock().unwrap().push(p.clone());
    }
    fn violation(&self, v: &probes::ViolationObservation) {
        self.violations.lock().unwrap().push(v.clone());
    }
    fn player(&self, p: &probes::PlayerObservation) {
        self.players.lock().unwrap().push(p.clone());
    }
}

impl Recorder {
    pub fn failed_checks(&self) -> Vec<probes::CheckObservation> {
        self.checks
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !c.passed)
            .cloned()
            .collect()
    }
    pub fn checks_named(&self, name: &str) -> Vec<probes::CheckObservation> {
        self.checks
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.check == name)
            .cloned()
            .collect()
    }
}

/// Reads an HTTP request head from `conn` and returns the path it asks for (`/` when it names
/// none); `None` when the peer goes away first.
pub async fn read_request_path(conn: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf[got..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    let head = String::from_utf8_lossy(&buf[..got]);
    Some(head.split_whitespace().nth(1).unwrap_or("/").to_string())
}

/// An HTTP/1.1 response of `status` (e.g. `200 OK`) with `body` as `content_type`, after which
/// the server closes the connection.
pub fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}
