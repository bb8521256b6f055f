//! Hostile clients against the orchestrator and transcoder: held capacity, upload floods, dropped transcodes, /status snooping.
