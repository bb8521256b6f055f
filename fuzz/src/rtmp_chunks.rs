//! `rtmp_chunks`: bytes from an RTMP publisher into the broadcaster's RTMP server.
//!
//! The connection handling (`rml_rtmp`'s handshake and `ServerSession::handle_input`, then our
//! command handling, FLV tag parsing, segmenter, TS muxer and HLS window) is private to
//! `node_broadcaster::rtmp` and only reachable through a socket, so the input is sent to a real
//! broadcaster over loopback, exactly as a publisher would: the client writes it, closes its
//! side and reads until the server closes. Afterwards every stream the input created is read
//! back (status, master and media playlists) and forgotten.
//!
//! Input: the first byte is a flag byte; when its low bit is set the rest is sent after a valid
//! (simple, version 3, all-zero) C0+C1+C2 handshake, so the fuzzer spends its effort on the chunk
//! stream; otherwise the rest is sent as is, handshake included.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::broadcaster::with_node;

/// C0 (version 3) + C1 + C2 of the original RTMP handshake: `rml_rtmp` accepts an all-zero C1 as
/// the simple handshake and does not verify C2.
pub fn simple_handshake() -> Vec<u8> {
    let mut out = vec![0u8; 1 + 2 * 1536];
    out[0] = 3;
    out
}

/// The bytes put on the wire for `data` (see the module docs).
pub fn wire_bytes(data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        Some((flags, rest)) if flags & 1 == 1 => {
            let mut out = simple_handshake();
            out.extend_from_slice(rest);
            out
        }
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    }
}

/// Sends one input; panics (in the harness or in a server task) are the findings.
pub fn run(data: &[u8]) {
    let wire = wire_bytes(data);
    with_node(|t| {
        let addr = t.node.rtmp_addr;
        t.rt.block_on(async {
            let exchange = async {
                let mut socket = tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect to the broadcaster");
                let (mut reader, mut writer) = socket.split();
                let write = async {
                    // The server may close first (refused handshake): that is an answer.
                    let _ = writer.write_all(&wire).await;
                    let _ = writer.shutdown().await;
                };
                let read = async {
                    let mut sink = vec![0u8; 64 * 1024];
                    while let Ok(n) = reader.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                };
                tokio::join!(write, read);
            };
            tokio::time::timeout(Duration::from_secs(10), exchange)
                .await
                .expect("the broadcaster kept an RTMP connection open after the publisher's EOF");
            // The connection task ends the stream after the socket closes: give it (and the
            // stream's transcode worker) a moment, bounded.
            for _ in 0..2000 {
                if t.node.state().live_streams() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let state = t.node.state();
        for status in state.stream_status() {
            let Some(stream) = state.stream(&status.manifest_id) else {
                continue;
            };
            assert!(
                !status.live,
                "stream {:?} is still live after its publisher left",
                status.manifest_id
            );
            let master = stream.master_playlist();
            assert!(master.starts_with("#EXTM3U"), "{master}");
            for rendition in &status.renditions {
                if let Some(media) = stream.media_playlist(rendition) {
                    assert!(media.starts_with("#EXTM3U"), "{media}");
                }
            }
        }
        state.forget_ended();
    });
}
