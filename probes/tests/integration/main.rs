//! Probes against real peers: nginx with its RTMP module, the ffmpeg/ffprobe tools, small
//! misbehaving HTTP servers written here, an anvil chain with the TicketBroker deployed, and
//! (direct-to-orchestrator tests only) orchestrators of the node stack started in-process.

mod support;

mod bad_targets;
mod direct;
mod direct_hostile;
mod ffmpeg_hls;
mod nginx_master;
mod nginx_peers;
mod nginx_probe;
mod nginx_publish;
mod nginx_quality;
mod payments;
mod players;
mod publisher_reconnect;

mod hls_conformance_served;
mod hls_gaps;
mod hls_ranges;
mod hls_restart;
mod hostile_playlists;
mod low_latency;
mod wire_inputs;
