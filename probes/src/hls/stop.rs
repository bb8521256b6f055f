//! Ending a pull early, and waiting without running past the deadline or a stop.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// `now + d`, or a moment decades away when that is past what an `Instant` can hold.
pub(super) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// Sleeps `pause` unless the deadline or a stop comes first; false when either did.
pub(super) async fn sleep_or_deadline(pause: Duration, deadline: Instant, stop: &PullStop) -> bool {
    let wake = after(pause);
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep_until(wake.min(deadline)) => wake < deadline,
        _ = stop.wait() => false,
    }
}

/// Ends a pull early: every task of the puller stops at its next wait or request (an
/// interrupted request is not reported as a failure) and the summary is still complete.
#[derive(Clone)]
pub struct PullStop(watch::Receiver<bool>);

/// The sending side of a [`PullStop`].
pub struct PullStopHandle(watch::Sender<bool>);

/// A stop signal for [`HlsPuller::run_until`].
pub fn pull_stop() -> (PullStopHandle, PullStop) {
    let (tx, rx) = watch::channel(false);
    (PullStopHandle(tx), PullStop(rx))
}

impl PullStopHandle {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl PullStop {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    pub(super) async fn wait(&mut self) {
        // A dropped handle means nobody can stop this pull any more: wait forever.
        if self.0.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
