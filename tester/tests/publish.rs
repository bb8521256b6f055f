//! `lpt publish` as a user runs it: the report it prints and the exit code it ends with. (The
//! HMAC, retries and record format are tested against a verifying server in `publish_signed.rs`,
//! and against leaderboard-serverless's own handlers in `leaderboard_serverless.rs`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// A leaderboard API stand-in answering every request with `status`; returns its URL and a
/// handle yielding the `Authorization` headers and bodies it received.
fn server(
    status: &'static str,
    requests: usize,
) -> (String, std::thread::JoinHandle<Vec<(String, String)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..requests {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let (mut length, mut authorization) = (0, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = value.trim().to_owned(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.push((authorization, String::from_utf8(body).unwrap()));
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno");
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
        }
        seen
    });
    (url, handle)
}

fn run_dir_with_one_record() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leaderboard.json"),
        r#"{"records":[{"region":"LOCAL","orchestrator":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "success_rate":1.0,"round_trip_time":0.3,"seg_duration":2.0,"segments_sent":5,
        "segments_received":5,"upload_time":0.01,"download_time":0.001,"transcode_time":0.28,
        "errors":[],"timestamp":1795320071}],"aggregated":{}}"#,
    )
    .unwrap();
    dir
}

fn publish(run_dir: &std::path::Path, endpoint: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_lpt"))
        .arg("publish")
        .arg(run_dir)
        .args(["--endpoint", endpoint, "--region", "FRA"])
        .env("LPT_LEADERBOARD_SECRET", "s3cret")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn an_accepted_record_exits_zero_and_is_counted() {
    let dir = run_dir_with_one_record();
    let (url, server) = server("200 OK", 1);
    let (code, text) = publish(dir.path(), &url);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("1 of 1 record accepted"), "{text}");
    let seen = server.join().unwrap();
    let (authorization, body) = &seen[0];
    // hex(HMAC-SHA256) is 64 hex digits, never the secret itself.
    assert_eq!(authorization.len(), 64, "{authorization}");
    assert!(authorization.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!text.contains("s3cret"));
    let record: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(record["region"], "FRA");
}

#[test]
fn a_refused_hmac_is_reported_and_exits_non_zero() {
    let dir = run_dir_with_one_record();
    let (url, server) = server("403 Forbidden", 1);
    let (code, text) = publish(dir.path(), &url);
    assert_eq!(code, 107, "{text}");
    assert!(text.contains("0 of 1 record accepted"), "{text}");
    assert!(text.contains("403"), "{text}");
    assert!(text.contains("LPT_LEADERBOARD_SECRET"), "{text}");
    server.join().unwrap();
}

#[test]
fn an_unreachable_leaderboard_exits_107_and_a_missing_secret_104() {
    let dir = run_dir_with_one_record();
    let port = testkit::ports::free_port();
    let (code, text) = publish(dir.path(), &format!("http://127.0.0.1:{port}"));
    assert_eq!(code, 107, "{text}");
    assert!(text.contains("nothing was published"), "{text}");

    let output = Command::new(env!("CARGO_BIN_EXE_lpt"))
        .arg("publish")
        .arg(dir.path())
        .args(["--endpoint", "http://127.0.0.1:9"])
        .env_remove("LPT_LEADERBOARD_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(104), "{stderr}");
    assert!(stderr.contains("LPT_LEADERBOARD_SECRET"), "{stderr}");
}
