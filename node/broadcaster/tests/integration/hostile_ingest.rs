//! Hostile publishers and HTTP clients against the broadcaster's RTMP, HTTP push and HLS servers.
