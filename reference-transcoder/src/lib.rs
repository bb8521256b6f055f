//! The media engine: stamped synthetic sources, decode → scale → encode ladders, hardware benchmark.
