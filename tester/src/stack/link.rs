//! The path between the broadcaster and an orchestrator over a network link of its own, so that a
//! `network` chaos event drops, delays and rate-limits real packets of that path and of no other.
//!
//! Two network namespaces made by the run, each held by a `sleep infinity` that dies with lpt,
//! are joined by a veth pair, 198.18.0.1 ↔ 198.18.0.2 (RFC 2544's benchmarking range): the
//! addresses exist inside the namespaces only. The orchestrator advertises a relay on loopback
//! as its service URI, and lpt carries each connection to it across the pair: accepted on
//! 127.0.0.1, sent on from a socket in the near namespace to a listener in the far one, and from
//! there to the orchestrator's own port. The leg across the pair is kernel TCP through the link
//! the event impairs: nftables drops packets as they arrive at either end (loss, partition), tbf
//! limits each end's rate, and the kernel queues each packet arriving at either end (NFQUEUE) to a
//! thread of lpt's that lets it go after the delay (the kernel sends it; lpt only says when, as
//! netem would, which many kernels lack). The loopback legs add a copy each way and nothing
//! else; a connection the far leg cannot open in [`CONNECT_TIMEOUT`] is closed, as a peer that
//! never answers would leave it.
//!
//! The namespaces, the pair and every rule on it end with the holders, however lpt ends.

use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::scenario::Impairment;

const NEAR_DEVICE: &str = "lpt-near";
const FAR_DEVICE: &str = "lpt-far";
const NEAR_ADDRESS: &str = "198.18.0.1";
const FAR_ADDRESS: &str = "198.18.0.2";
/// The nftables table of an impairment's packet drops, one in each namespace.
const DROP_TABLE: &str = "lpt_link";
/// How long the far leg of a relayed connection may take to open: long enough that a partition
/// looks to the broadcaster like a peer that stopped answering, not like a refusal.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Queued at each end at most this long under a rate limit before tbf drops (as a router's
/// buffer would).
const RATE_QUEUE: &str = "200ms";
/// The kernel's packet queue a delay holds packets in, one per namespace.
const DELAY_QUEUE: u16 = 0;
/// Packets a delay holds at most at each end; more are dropped, as a full buffer drops them.
const DELAY_QUEUE_PACKETS: u32 = 10_000;
/// How often the delaying thread looks for packets and lets the due ones go: the delay's
/// resolution.
const DELAY_TICK: Duration = Duration::from_millis(1);

/// A network namespace of the run's own, held open by a child process.
struct Namespace {
    holder: std::process::Child,
    fd: Arc<OwnedFd>,
}

impl Namespace {
    fn new() -> anyhow::Result<Namespace> {
        let mut command = Command::new("sleep");
        command
            .arg("infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: the hook calls only prctl and unshare, which are async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                protocol::chain::die_with_parent()?;
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let holder = command.spawn().map_err(|error| {
            anyhow!(
                "cannot make a network namespace for the path a `network` event impairs: \
                 {error}; network namespaces need CAP_SYS_ADMIN (run as root, or in a container \
                 started with --cap-add SYS_ADMIN --cap-add NET_ADMIN)"
            )
        })?;
        let file = std::fs::File::open(format!("/proc/{}/ns/net", holder.id()))
            .context("cannot open the path's network namespace")?;
        Ok(Namespace {
            holder,
            fd: Arc::new(file.into()),
        })
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// Runs `program args` inside the namespace with `input` on its stdin; its stdout, or an
    /// error with its stderr.
    fn run(&self, program: &str, args: &[&str], input: &str) -> anyhow::Result<String> {
        let fd = self.fd.clone();
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the hook calls only setns, which is async-signal-safe, on a descriptor opened
        // before the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let shown = format!("{program} {}", args.join(" "));
        let mut child = command.spawn().map_err(|error| {
            anyhow!(
                "cannot run `{shown}`: {error} (it comes with iproute2, nftables or iptables, \
                 which ci/setup installs)"
            )
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .with_context(|| format!("cannot write to `{shown}`"))?;
        }
        let output = child
            .wait_with_output()
            .with_context(|| format!("`{shown}` did not finish"))?;
        if !output.status.success() {
            return Err(anyhow!(
                "`{shown}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `make` on a thread of its own that has entered the namespace.
    async fn on_thread<T: Send + 'static>(
        &self,
        make: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        on_thread_in(self.fd.clone(), make).await
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// What is impaired on the link now, at each end (near, far), so that clearing undoes exactly
/// that, also after an impairment that failed halfway.
#[derive(Debug, Default)]
struct Applied {
    drops: [bool; 2],
    qdisc: [bool; 2],
    delays: Vec<Delayer>,
}

/// The relayed path to one orchestrator, over a link of its own.
pub struct ImpairedLink {
    near: Namespace,
    far: Namespace,
    /// Where the broadcaster reaches the orchestrator (the relay, on loopback).
    pub entry: SocketAddr,
    relays: Vec<JoinHandle<()>>,
    applied: Mutex<Applied>,
}

impl ImpairedLink {
    /// Makes the namespaces, the veth pair between them and the relay to `orchestrator` (an
    /// address on loopback). Fails, saying what is missing, where namespaces are not permitted
    /// or `ip`/`nft`/`iptables` are not installed.
    pub async fn start(orchestrator: SocketAddr) -> anyhow::Result<ImpairedLink> {
        let near = Namespace::new()?;
        let far = Namespace::new()?;
        let far_pid = far.pid().to_string();
        near.run(
            "ip",
            &["-batch", "-"],
            &format!(
                "link set lo up\n\
                 link add {NEAR_DEVICE} type veth peer name {FAR_DEVICE} netns {far_pid}\n\
                 address add {NEAR_ADDRESS}/30 dev {NEAR_DEVICE}\n\
                 link set {NEAR_DEVICE} up\n"
            ),
        )?;
        far.run(
            "ip",
            &["-batch", "-"],
            &format!(
                "link set lo up\n\
                 address add {FAR_ADDRESS}/30 dev {FAR_DEVICE}\n\
                 link set {FAR_DEVICE} up\n"
            ),
        )?;
        // Checked now, so that a run that cannot impair its paths says so before it starts.
        near.run("nft", &["list", "tables"], "")?;
        near.run("iptables", &["--list-rules", "INPUT"], "")?;

        let far_listener = far
            .on_thread(|| StdListener::bind((FAR_ADDRESS, 0)))
            .await
            .context("cannot listen at the far end of the path")?;
        far_listener.set_nonblocking(true)?;
        let far_listener = TcpListener::from_std(far_listener)?;
        let far_entry = far_listener.local_addr()?;
        let near_listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen for the broadcaster's connections to the path")?;
        let entry = near_listener.local_addr()?;
        let near_fd = near.fd.clone();
        let relays = vec![
            tokio::spawn(relay(far_listener, move || async move {
                TcpStream::connect(orchestrator).await
            })),
            tokio::spawn(relay(near_listener, move || {
                let fd = near_fd.clone();
                async move { connect_in(fd, far_entry).await }
            })),
        ];
        Ok(ImpairedLink {
            near,
            far,
            entry,
            relays,
            applied: Mutex::new(Applied::default()),
        })
    }

    /// Impairs the link both ways as `impairment` says (replacing what was there).
    pub async fn impair(self: &Arc<Self>, impairment: &Impairment) -> anyhow::Result<()> {
        let link = self.clone();
        let impairment = impairment.clone();
        tokio::task::spawn_blocking(move || link.impair_now(&impairment))
            .await
            .context("the impairment's task stopped")?
    }

    fn impair_now(&self, impairment: &Impairment) -> anyhow::Result<()> {
        self.clear_now()?;
        let mut applied = self.applied.lock().expect("not poisoned");
        let drop_rule = if impairment.partition {
            Some("counter drop".to_owned())
        } else if impairment.loss_ppm > 0 {
            Some(format!(
                "numgen random mod 1000000 < {} counter drop",
                impairment.loss_ppm
            ))
        } else {
            None
        };
        let qdisc = rate_limit(impairment);
        for (end, (namespace, device)) in self.ends().into_iter().enumerate() {
            if let Some(rule) = &drop_rule {
                // At the receiving end, so the sender sees a packet lost on the wire rather
                // than an error from its own stack.
                namespace.run(
                    "nft",
                    &["-f", "-"],
                    &format!(
                        "table netdev {DROP_TABLE} {{\n\
                         \tchain arriving {{\n\
                         \t\ttype filter hook ingress device \"{device}\" priority 0; policy accept;\n\
                         \t\tcounter\n\
                         \t\t{rule}\n\
                         \t}}\n\
                         }}\n"
                    ),
                )?;
                applied.drops[end] = true;
            }
            if let Some(qdisc) = &qdisc {
                let mut args = vec!["qdisc", "replace", "dev", device, "root"];
                args.extend(qdisc.iter().map(String::as_str));
                namespace.run("tc", &args, "")?;
                applied.qdisc[end] = true;
            }
            if !impairment.delay.is_zero() {
                // The thread listens before the rule sends it packets (with nothing bound to
                // the queue, `--queue-bypass` lets them through undelayed).
                applied.delays.push(Delayer::start(
                    namespace.fd.clone(),
                    impairment.delay,
                    impairment.jitter,
                )?);
                namespace.run("iptables", &delay_rule("-A", device), "")?;
            }
        }
        Ok(())
    }

    /// Ends the impairment; says how many packets it dropped of how many.
    pub async fn clear(self: &Arc<Self>) -> anyhow::Result<String> {
        let link = self.clone();
        tokio::task::spawn_blocking(move || link.clear_now())
            .await
            .context("the impairment's task stopped")?
    }

    /// Undoes what is applied, end by end, going on past a step that fails so that nothing
    /// else stays impaired; the first failure is the error.
    fn clear_now(&self) -> anyhow::Result<String> {
        let mut applied = self.applied.lock().expect("not poisoned");
        let mut failed: Option<anyhow::Error> = None;
        let mut note = |result: anyhow::Result<String>| match result {
            Ok(output) => Some(output),
            Err(error) => {
                failed.get_or_insert(error);
                None
            }
        };
        let (mut seen, mut dropped, mut over_rate) = (0, 0, 0);
        for (end, (namespace, device)) in self.ends().into_iter().enumerate() {
            if applied.drops[end] {
                if let Some(table) =
                    note(namespace.run("nft", &["list", "table", "netdev", DROP_TABLE], ""))
                {
                    let counts = counter_packets(&table);
                    seen += counts.first().copied().unwrap_or(0);
                    dropped += counts.get(1).copied().unwrap_or(0);
                }
                note(namespace.run("nft", &["delete", "table", "netdev", DROP_TABLE], ""));
            }
            if applied.qdisc[end] {
                if let Some(stats) =
                    note(namespace.run("tc", &["-s", "qdisc", "show", "dev", device], ""))
                {
                    over_rate += qdisc_drops(&stats);
                }
                note(namespace.run("tc", &["qdisc", "del", "dev", device, "root"], ""));
            }
        }
        let mut held = 0;
        if !applied.delays.is_empty() {
            for (namespace, device) in self.ends() {
                // Ignored where it never was (the other end failed first).
                let _ = namespace.run("iptables", &delay_rule("-D", device), "");
            }
            for delayer in applied.delays.drain(..) {
                held += delayer.stop();
            }
        }
        let mut said = Vec::new();
        if applied.drops.contains(&true) {
            said.push(format!("{dropped} of {seen} packets dropped"));
        }
        if applied.qdisc.contains(&true) {
            said.push(format!("{over_rate} dropped by the queue"));
        }
        if held > 0 {
            said.push(format!("{held} held back"));
        }
        *applied = Applied::default();
        match failed {
            Some(error) => Err(error.context("the path may still be impaired")),
            None => Ok(said.join(", ")),
        }
    }

    fn ends(&self) -> [(&Namespace, &str); 2] {
        [(&self.near, NEAR_DEVICE), (&self.far, FAR_DEVICE)]
    }
}

impl Drop for ImpairedLink {
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
    }
}

/// The root queueing discipline of each end for `impairment`'s rate, as `tc` arguments.
fn rate_limit(impairment: &Impairment) -> Option<Vec<String>> {
    let bps = impairment.bandwidth_bps?;
    // A burst of at least 20 ms of the rate and never under two full frames.
    let burst = (bps / 8 / 50).max(3028);
    Some(vec![
        "tbf".to_owned(),
        "rate".to_owned(),
        format!("{bps}bit"),
        "burst".to_owned(),
        burst.to_string(),
        "latency".to_owned(),
        RATE_QUEUE.to_owned(),
    ])
}

/// `iptables` arguments that add (`-A`) or delete (`-D`) the rule queueing every packet arriving
/// at `device` to the delay's thread. On arrival, not on departure: a packet held before it left
/// would still count against its socket's small-queue budget, and TCP would send no faster than
/// the delay lets packets go (a MiB took 35 s instead of 2 at 100 ms), a limit no network has.
fn delay_rule<'a>(action: &'a str, device: &'a str) -> [&'a str; 10] {
    [
        "-w",
        action,
        "INPUT",
        "-i",
        device,
        "-j",
        "NFQUEUE",
        "--queue-num",
        "0",
        "--queue-bypass",
    ]
}

/// A thread, inside one end's namespace, that holds each packet the kernel queues to it for the
/// delay (spread uniformly by the jitter, so packets may overtake one another, as with netem's
/// jitter) and then lets the kernel send it.
struct Delayer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl std::fmt::Debug for Delayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delayer")
    }
}

impl Delayer {
    fn start(
        namespace: Arc<OwnedFd>,
        delay: Duration,
        jitter: Duration,
    ) -> anyhow::Result<Delayer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("lpt-link-delay".into())
            .spawn({
                let stop = stop.clone();
                move || match open_delay_queue(&namespace) {
                    Ok(queue) => {
                        let _ = ready.send(Ok(()));
                        hold_packets(queue, delay, jitter, &stop)
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        0
                    }
                }
            })
            .context("cannot start the thread that delays packets")?;
        match listening.recv() {
            Ok(Ok(())) => Ok(Delayer { stop, thread }),
            Ok(Err(error)) => Err(anyhow!(
                "cannot take packets from the kernel's queue (NFQUEUE) to delay them: {error}"
            )),
            Err(_) => Err(anyhow!("the thread that delays packets died")),
        }
    }

    /// Lets every packet still held go, and says how many it held in all.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// The kernel's packet queue [`DELAY_QUEUE`] of the namespace of `fd`, bound by this thread.
fn open_delay_queue(fd: &OwnedFd) -> std::io::Result<nfq::Queue> {
    // SAFETY: setns on a namespace descriptor we hold; it moves this thread only.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut queue = nfq::Queue::open()?;
    queue.bind(DELAY_QUEUE)?;
    // The packets' metadata is all a delay needs.
    queue.set_copy_range(DELAY_QUEUE, 0)?;
    queue.set_queue_max_len(DELAY_QUEUE, DELAY_QUEUE_PACKETS)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Holds each packet of `queue` for `delay` ± `jitter` until `stop`, then lets the rest go at
/// once; returns how many it held.
fn hold_packets(
    mut queue: nfq::Queue,
    delay: Duration,
    jitter: Duration,
    stop: &AtomicBool,
) -> u64 {
    let mut held: std::collections::BTreeMap<(Instant, u64), nfq::Message> = Default::default();
    let mut spread = Spread::seeded();
    let mut count = 0u64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while let Ok(packet) = queue.recv() {
            held.insert(
                (Instant::now() + spread.around(delay, jitter), count),
                packet,
            );
            count += 1;
        }
        let now = Instant::now();
        while let Some(entry) = held.first_entry() {
            if entry.key().0 > now && !stopping {
                break;
            }
            let mut packet = entry.remove();
            packet.set_verdict(nfq::Verdict::Accept);
            let _ = queue.verdict(packet);
        }
        if stopping {
            let _ = queue.unbind(DELAY_QUEUE);
            return count;
        }
        std::thread::sleep(DELAY_TICK);
    }
}

/// A small pseudo-random source for the jitter (splitmix64): uniform enough, and no dependency.
struct Spread(u64);

impl Spread {
    fn seeded() -> Spread {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Spread(now.as_nanos() as u64)
    }

    /// `delay` moved by a uniform amount in `[-jitter, +jitter]`, never below zero.
    fn around(&mut self, delay: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return delay;
        }
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        let offset = jitter.as_secs_f64() * (2.0 * unit - 1.0);
        Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
    }
}

/// The packet counts of the `counter` statements in `nft list` output, in order.
fn counter_packets(listing: &str) -> Vec<u64> {
    listing
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The packets a qdisc dropped, from `tc -s qdisc show` output (`(dropped N, …`).
fn qdisc_drops(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|line| {
            let rest = line.split("dropped ").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Runs `make` on a thread of its own that has entered the network namespace of `fd`, so the
/// sockets it makes live there (a socket keeps the namespace it was made in).
async fn on_thread_in<T: Send + 'static>(
    fd: Arc<OwnedFd>,
    make: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("lpt-link".into())
        .spawn(move || {
            // SAFETY: setns on a namespace descriptor we hold; it moves this thread only.
            let entered = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
            let _ = done.send(if entered == 0 {
                make()
            } else {
                Err(std::io::Error::last_os_error())
            });
        })?;
    result
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the namespace's thread died")))
}

/// Opens a connection to `to` from a socket made inside the namespace of `fd`.
async fn connect_in(fd: Arc<OwnedFd>, to: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = on_thread_in(fd, move || StdStream::connect_timeout(&to, CONNECT_TIMEOUT)).await?;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

/// Accepts on `listener` and carries each connection to one `connect` opens, both ways, until
/// either side closes.
async fn relay<C, F>(listener: TcpListener, connect: C)
where
    C: Fn() -> F + Send + 'static,
    F: std::future::Future<Output = std::io::Result<TcpStream>> + Send + 'static,
{
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            // Out of descriptors, for instance: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let upstream = connect();
        tokio::spawn(async move {
            let Ok(mut upstream) = upstream.await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

/// A free port on loopback, for a node whose address must be known before it starts.
pub fn free_port() -> std::io::Result<u16> {
    Ok(StdListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_queue_drops_are_read_from_the_tools_output() {
        let nft = "table netdev lpt_link {\n\tchain arriving {\n\t\ttype filter hook ingress device \"lpt-far\" priority filter; policy accept;\n\t\tcounter packets 1200 bytes 90000\n\t\tnumgen random mod 1000000 < 20000 counter packets 25 bytes 1875 drop\n\t}\n}\n";
        assert_eq!(counter_packets(nft), [1200, 25]);
        let tc = "qdisc tbf 8001: root refcnt 2 rate 4Mbit burst 10000b lat 200ms \n Sent 123 bytes 9 pkt (dropped 7, overlimits 3 requeues 0) \n";
        assert_eq!(qdisc_drops(tc), 7);
    }

    /// A loopback server that answers every connection with `bytes` bytes and closes.
    async fn sender(bytes: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut peer, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = peer.write_all(&vec![7u8; bytes]).await;
                });
            }
        });
        address
    }

    /// Reads everything `entry` sends; how long it took.
    async fn fetch(entry: SocketAddr) -> (usize, Duration) {
        use tokio::io::AsyncReadExt;
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect(entry).await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        (got.len(), started.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_link_carries_connections_and_drops_limits_delays_and_cuts_what_it_is_told() {
        const BYTES: usize = 1 << 20;
        let link = Arc::new(ImpairedLink::start(sender(BYTES).await).await.unwrap());
        let holders = [link.near.pid(), link.far.pid()];
        let (got, clear) = fetch(link.entry).await;
        assert_eq!(got, BYTES);

        // 8 Mbit/s: a MiB takes at least a second, where the clear link took a few ms.
        link.impair(&Impairment {
            bandwidth_bps: Some(8_000_000),
            ..Impairment::default()
        })
        .await
        .unwrap();
        let (got, limited) = fetch(link.entry).await;
        assert_eq!(got, BYTES);
        assert!(
            limited >= Duration::from_millis(950),
            "{limited:?} (clear: {clear:?})"
        );
        assert!(limited < Duration::from_secs(4), "{limited:?}");
        link.clear().await.unwrap();

        // 10 % loss each way: TCP delivers every byte, the rule counts what it dropped.
        link.impair(&Impairment {
            loss_ppm: 100_000,
            ..Impairment::default()
        })
        .await
        .unwrap();
        let (got, _) = fetch(link.entry).await;
        assert_eq!(got, BYTES);
        let said = link.clear().await.unwrap();
        let dropped: u64 = said.split(' ').next().unwrap().parse().unwrap();
        assert!(dropped > 0, "{said}");

        // A partition: nothing arrives until it ends, then the same connection completes.
        link.impair(&Impairment {
            partition: true,
            ..Impairment::default()
        })
        .await
        .unwrap();
        let waiting = tokio::spawn(fetch(link.entry));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!waiting.is_finished());
        link.clear().await.unwrap();
        let (got, _) = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .expect("the partition's connection completes once it ends")
            .unwrap();
        assert_eq!(got, BYTES);

        // 100 ms each way: the far leg's handshake and the first bytes back take three one-way
        // trips at least.
        link.impair(&Impairment {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
            ..Impairment::default()
        })
        .await
        .unwrap();
        let (got, delayed) = fetch(link.entry).await;
        assert_eq!(got, BYTES);
        // Measured: 1.7 s, TCP's window growing over 200 ms round trips.
        assert!(
            (Duration::from_millis(270)..Duration::from_secs(8)).contains(&delayed),
            "{delayed:?} (clear: {clear:?})"
        );
        let said = link.clear().await.unwrap();
        let held: u64 = said.split(' ').next().unwrap().parse().unwrap();
        assert!(held > 10 && said.ends_with("held back"), "{said}");
        let (got, after) = fetch(link.entry).await;
        assert_eq!(got, BYTES);
        assert!(after < Duration::from_millis(250), "{after:?}");

        drop(link);
        for pid in holders {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "holder {pid} lives on"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    #[test]
    fn a_rate_takes_tbf_and_jitter_spreads_the_delay_both_ways() {
        let rate = Impairment {
            bandwidth_bps: Some(4_000_000),
            ..Impairment::default()
        };
        assert_eq!(
            rate_limit(&rate).unwrap().join(" "),
            "tbf rate 4000000bit burst 10000 latency 200ms"
        );
        let loss = Impairment {
            loss_ppm: 20_000,
            ..Impairment::default()
        };
        assert_eq!(rate_limit(&loss), None);

        let mut spread = Spread(1);
        let (delay, jitter) = (Duration::from_millis(80), Duration::from_millis(20));
        let drawn: Vec<Duration> = (0..1000).map(|_| spread.around(delay, jitter)).collect();
        assert!(
            drawn
                .iter()
                .all(|d| (delay - jitter..=delay + jitter).contains(d))
        );
        assert!(drawn.iter().any(|d| *d < Duration::from_millis(65)));
        assert!(drawn.iter().any(|d| *d > Duration::from_millis(95)));
        let mean = drawn.iter().sum::<Duration>() / 1000;
        assert!(mean.abs_diff(delay) < Duration::from_millis(2), "{mean:?}");
        assert_eq!(spread.around(delay, Duration::ZERO), delay);
    }
}
