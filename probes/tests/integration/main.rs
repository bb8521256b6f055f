//! Probes against real peers: nginx with its RTMP module, the ffmpeg/ffprobe tools, and small
//! misbehaving HTTP servers written here.

mod support;

mod bad_targets;
mod nginx_master;
mod nginx_peers;
mod nginx_probe;
mod nginx_publish;
