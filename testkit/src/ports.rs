//! Loopback ports for servers a test starts, and waiting for them with a deadline.
//!
//! A port from [`free_port`] is handed to a server that binds it itself (often a child process:
//! nginx, PostgreSQL, `lpt`), so it must stay free between the check and that bind. Two things
//! could take it meanwhile, and both are ruled out: another test of the same process (every port
//! is handed out at most once per process), and the kernel giving it to an outgoing connection
//! (ports come from below the kernel's ephemeral range, which it never hands out itself). Test
//! processes running side by side start at different places in the range, so they rarely meet;
//! a port another process holds fails the bind check and is skipped.
//!
//! Waiting polls with a short interval and panics at the deadline, so a server that never comes
//! up fails the test instead of hanging it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where [`free_port`] looks: below Linux's default ephemeral range (32768–60999) and above the
/// ports services usually claim.
const PORTS: std::ops::Range<u32> = 20_000..32_000;

/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(20);

/// A loopback TCP port nothing listens on, handed out once per process, for a server to bind.
///
/// # Panics
/// When every port of the range is taken.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = PORTS.end - PORTS.start;
    // The first call picks this process's starting point; later ones go on from there.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7_919) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = (PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PORTS:?}")
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
    fn ports_are_never_handed_out_twice_and_lie_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(
            ports.iter().all(|p| PORTS.contains(&u32::from(*p))),
            "{ports:?}"
        );
    }

    #[test]
    fn ports_other_listeners_hold_are_skipped() {
        let first = free_port();
        let held: Vec<std::net::TcpListener> = (first + 1..first + 100)
            .filter_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        assert!(
            held.len() >= 90,
            "only {} of 99 ports could be held",
            held.len()
        );
        let next = free_port();
        assert!(
            held.iter().all(|l| l.local_addr().unwrap().port() != next),
            "{next} is held by this test"
        );
        assert!(std::net::TcpListener::bind(("127.0.0.1", next)).is_ok());
    }

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
