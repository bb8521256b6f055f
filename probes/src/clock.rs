//! Wall-clock time for observations, derived from one monotonic clock.
//!
//! Design: every timestamp the probes record (frame sent, segment first seen, download finished)
//! is a Unix time in milliseconds so records from publisher, puller and journal line up, but
//! they are all computed as `process anchor + Instant::elapsed`, so a wall-clock step (NTP) in
//! the middle of a run cannot make a latency negative.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type UnixMs = i64;

fn anchor() -> &'static (Instant, f64) {
    static ANCHOR: OnceLock<(Instant, f64)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        (Instant::now(), wall)
    })
}

/// Now, as Unix milliseconds (fractional), on the monotonic timeline.
pub fn now_unix_ms_f64() -> f64 {
    let (at, wall) = anchor();
    wall + at.elapsed().as_secs_f64() * 1000.0
}

/// Now, as whole Unix milliseconds, on the monotonic timeline.
pub fn now_unix_ms() -> UnixMs {
    now_unix_ms_f64() as UnixMs
}

/// The Unix time of a wall-clock time (0 for one before the epoch).
pub fn system_time_to_unix_ms(time: SystemTime) -> UnixMs {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as UnixMs)
}

/// The Unix time of a monotonic instant (instants before the anchor map before it).
pub fn instant_to_unix_ms(instant: Instant) -> UnixMs {
    let (at, wall) = anchor();
    let delta = if instant >= *at {
        instant.duration_since(*at).as_secs_f64()
    } else {
        -(at.duration_since(instant).as_secs_f64())
    };
    (wall + delta * 1000.0) as UnixMs
}

/// The first instant at or after `t` on a process-wide grid of `step`: tasks that round their
/// wake-ups to it wake together, so the runtime sleeps and wakes once per step, not once per
/// task.
pub fn align_up(t: Instant, step: std::time::Duration) -> Instant {
    let (at, _) = anchor();
    let step = step.as_nanos().max(1);
    let since = t.saturating_duration_since(*at).as_nanos();
    let aligned = since.div_ceil(step) * step;
    *at + std::time::Duration::from_nanos(aligned.min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn aligned_wakeups_are_on_the_grid_and_never_early() {
        let step = Duration::from_millis(20);
        let t = Instant::now() + Duration::from_millis(7);
        let a = align_up(t, step);
        assert!(a >= t && a - t < step);
        assert_eq!(align_up(a, step), a);
        let b = align_up(t + Duration::from_millis(3), step);
        assert!(b == a || b - a == step);
    }
}
