//! Hostile HLS servers against the puller: absurd target durations, endless bodies, variant floods.
