//! Integration tests of the broadcaster with real sockets and the real `ffmpeg`/`ffprobe` tools.

mod bad_input;
mod ingest;
mod network;
mod rtmp_client;
mod support;
