//! Loopback ports for servers a test starts, and waiting for them with a deadline.
//!
//! A port from [`free_port`] is bound and released, so another process could take it before the
//! server does; on a test machine that race is rare enough, and it lets a test hand the port to a
//! child process (nginx, `lpt`) that binds it itself. Waiting polls with a short interval and
//! panics at the deadline, so a server that never comes up fails the test instead of hanging it.

use std::time::{Duration, Instant};

/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(20);

/// A free loopback TCP port (bound then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Waits until `addr` accepts TCP connections, or panics after `timeout`.
pub fn wait_for_port(addr: &str, timeout: Duration) {
    wait_until(&format!("{addr} accepting connections"), timeout, || {
        std::net::TcpStream::connect(addr).is_ok()
    });
}

/// Waits until `ready` returns true, or panics after `deadline` naming `what` did not happen.
pub fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ready() {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {deadline:?}"
        );
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_found_and_a_closed_one_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        wait_for_port(&addr, Duration::from_secs(1));
        drop(listener);
        let closed = std::panic::catch_unwind(|| {
            wait_for_port(
                &format!("127.0.0.1:{}", free_port()),
                Duration::from_millis(100),
            )
        });
        assert!(closed.is_err(), "a closed port must fail the wait");
    }
}
