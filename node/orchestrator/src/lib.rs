//! The orchestrator and transcoder nodes, wire-compatible with go-livepeer.
