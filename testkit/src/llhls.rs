//! A real Low-Latency HLS server for one stream: `lpt-llhls` (`ci/llhls`, gohlslib's LL-HLS
//! muxer, the packager MediaMTX is built on; `ci/setup` builds it into `ci/llhls/bin`), fed
//! MPEG-TS by an ffmpeg that plays the stream from an nginx-rtmp relay application. A probe
//! publishes to [`LlHls::rtmp_url`] and pulls [`LlHls::playlist_url`]: fMP4 parts,
//! `#EXT-X-PRELOAD-HINT`, blocking playlist reloads. [`LlHls::stats`] says which requests the
//! server answered.
//!
//! ffmpeg starts before the publisher and waits for it (nginx-rtmp holds a player of a live
//! application until the stream is published); the server listens before the stream arrives and
//! answers 404 until it has one. Every process is killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::nginx::Nginx;

/// How long the server gets to announce its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server cuts the stream.
#[derive(Debug, Clone)]
pub struct LlHlsOptions {
    /// Shortest segment; a segment also waits for the next key frame.
    pub segment: Duration,
    /// Shortest part.
    pub part: Duration,
}

impl Default for LlHlsOptions {
    fn default() -> Self {
        LlHlsOptions {
            segment: Duration::from_secs(1),
            part: Duration::from_millis(200),
        }
    }
}

/// The requests the server answered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LlHlsStats {
    pub playlist_requests: u64,
    /// Playlist requests that carried `_HLS_msn`: blocking reloads.
    pub blocking_playlist_requests: u64,
    pub part_requests: u64,
    pub segment_requests: u64,
}

/// A running LL-HLS server and what feeds it.
pub struct LlHls {
    nginx: Nginx,
    ffmpeg: Child,
    server: Child,
    key: String,
    /// `host:port` the server listens on.
    pub addr: String,
}

/// The server binary `ci/setup` builds.
pub fn binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/llhls/bin/lpt-llhls")
}

impl LlHls {
    /// Starts nginx, the server and the ffmpeg between them for stream `key`, and waits until
    /// the server listens.
    ///
    /// # Panics
    /// When the server is not built (run `ci/setup`) or does not start.
    pub fn start(key: &str, options: &LlHlsOptions) -> LlHls {
        let binary = binary();
        assert!(
            binary.is_file(),
            "{} is missing: run ci/setup, which builds the LL-HLS test server (ci/llhls)",
            binary.display()
        );
        let nginx = Nginx::start();
        let mut ffmpeg = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-fflags", "+nobuffer"])
            .args(["-i", &nginx.bench_rtmp_url(key)])
            .args(["-c", "copy", "-f", "mpegts", "-flush_packets", "1"])
            .args(["-muxdelay", "0", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ffmpeg is installed by ci/setup");
        let stream = ffmpeg.stdout.take().expect("ffmpeg's stdout is piped");
        let mut server = Command::new(&binary)
            .arg("-listen=127.0.0.1:0")
            .arg(format!("-segment={}ms", options.segment.as_millis()))
            .arg(format!("-part={}ms", options.part.as_millis()))
            .stdin(Stdio::from(stream))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run ci/setup", binary.display()));
        let stdout = server.stdout.take().expect("the server's stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(STARTUP_TIMEOUT).unwrap_or_else(|_| {
            let _ = server.kill();
            let _ = ffmpeg.kill();
            panic!("lpt-llhls did not announce its address within {STARTUP_TIMEOUT:?}")
        });
        let ready: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("lpt-llhls announced {line:?}: {e}"));
        let addr = ready["addr"]
            .as_str()
            .unwrap_or_else(|| panic!("lpt-llhls announced no address: {line:?}"))
            .to_string();
        LlHls {
            nginx,
            ffmpeg,
            server,
            key: key.to_string(),
            addr,
        }
    }

    /// Where to publish the stream.
    pub fn rtmp_url(&self) -> String {
        self.nginx.bench_rtmp_url(&self.key)
    }

    /// The multivariant playlist.
    pub fn playlist_url(&self) -> String {
        format!("http://{}/index.m3u8", self.addr)
    }

    /// The media playlist.
    pub fn media_playlist_url(&self) -> String {
        format!("http://{}/stream.m3u8", self.addr)
    }

    /// What the server answered so far.
    pub fn stats(&self) -> LlHlsStats {
        let body = self.get("/stats");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("lpt-llhls /stats answered {body:?}: {e}"));
        let count = |name: &str| {
            json[name]
                .as_u64()
                .unwrap_or_else(|| panic!("/stats has no {name}: {body}"))
        };
        LlHlsStats {
            playlist_requests: count("playlist_requests"),
            blocking_playlist_requests: count("blocking_playlist_requests"),
            part_requests: count("part_requests"),
            segment_requests: count("segment_requests"),
        }
    }

    /// The body of a plain GET of `path` (which must answer at once, as `/stats` does).
    pub fn get(&self, path: &str) -> String {
        let mut conn = TcpStream::connect(&self.addr).expect("lpt-llhls accepts connections");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        write!(
            conn,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("the request is sent");
        let mut response = String::new();
        conn.read_to_string(&mut response)
            .expect("lpt-llhls answers");
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.split_whitespace().nth(1) == Some("200") => body.to_string(),
            _ => panic!("GET {path}: {response}"),
        }
    }
}

impl Drop for LlHls {
    fn drop(&mut self) {
        for child in [&mut self.ffmpeg, &mut self.server] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
