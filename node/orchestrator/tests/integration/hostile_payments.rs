//! Hostile payers against the orchestrator: unfunded senders, oversized ticket batches, replays at the expiry edge.
