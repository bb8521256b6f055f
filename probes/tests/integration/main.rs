//! Probes against real peers: nginx with its RTMP module, the ffmpeg/ffprobe tools, small
//! misbehaving HTTP servers written here, and an anvil chain with the TicketBroker deployed.

mod support;

mod bad_targets;
mod nginx_master;
mod nginx_peers;
mod nginx_probe;
mod nginx_publish;
mod nginx_quality;
mod payments;
