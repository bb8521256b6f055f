//! The broadcaster node: RTMP ingest, segmenter, orchestrator sessions with payments, HLS output.
