//! Integration tests of the broadcaster with real sockets and the real `ffmpeg`/`ffprobe` tools.

mod bad_input;
mod failover;
mod gaps;
mod hostile_ingest;
mod hostile_orch;
mod ingest;
mod network;
mod restart;
mod rtmp_client;
mod support;
mod wire_inputs;
