//! The path between the broadcaster and an orchestrator over a network link of its own, so that a
//! `network` chaos event drops, delays and rate-limits real packets of that path and of no other.
//!
//! Two network namespaces made by the run, each held by a `sleep infinity` that dies with lpt,
//! are joined by a veth pair, 198.18.0.1 ↔ 198.18.0.2 (RFC 2544's benchmarking range): the
//! addresses exist inside the namespaces only. The orchestrator advertises a relay on loopback
//! as its service URI, and lpt carries each connection to it across the pair: accepted on
//! 127.0.0.1, sent on from a socket in the near namespace to a listener in the far one, and from
//! there to the orchestrator's own port. The leg across the pair is kernel TCP through the link
//! the event impairs: nftables drops packets as they arrive at either end (loss, partition),
//! tbf limits each end's rate, netem delays them (on kernels that have it). The loopback legs add
//! a copy each way and nothing else; a connection the far leg cannot open in
//! [`CONNECT_TIMEOUT`] is closed, as a peer that never answers would leave it.
//!
//! The namespaces, the pair and every rule on it end with the holders, however lpt ends.

use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
            anyhow!("cannot run `{shown}`: {error} (iproute2 and nftables: ci/setup installs them)")
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

/// What is impaired on the link now, so that clearing undoes exactly that.
#[derive(Debug, Default)]
struct Applied {
    drops: bool,
    qdisc: bool,
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
    /// or `ip`/`nft` are not installed; with `needs_delay`, also where the kernel has no netem.
    pub async fn start(
        orchestrator: SocketAddr,
        needs_delay: bool,
    ) -> anyhow::Result<ImpairedLink> {
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
        if needs_delay {
            near.run(
                "tc",
                &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                "",
            )
            .map_err(|error| {
                anyhow!(
                    "this kernel has no netem queueing discipline (CONFIG_NET_SCH_NETEM), which \
                     the `delay` and `jitter` of `network` events need: {error:#}"
                )
            })?;
            near.run("tc", &["qdisc", "del", "dev", "lo", "root"], "")?;
        }

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
        let qdisc = queueing(impairment);
        for (namespace, device) in self.ends() {
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
                applied.drops = true;
            }
            if let Some(qdisc) = &qdisc {
                let mut args = vec!["qdisc", "replace", "dev", device, "root"];
                args.extend(qdisc.iter().map(String::as_str));
                namespace.run("tc", &args, "")?;
                applied.qdisc = true;
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

    fn clear_now(&self) -> anyhow::Result<String> {
        let mut applied = self.applied.lock().expect("not poisoned");
        let (mut seen, mut dropped, mut over_rate) = (0, 0, 0);
        for (namespace, device) in self.ends() {
            if applied.drops {
                let table = namespace.run("nft", &["list", "table", "netdev", DROP_TABLE], "")?;
                let counts = counter_packets(&table);
                seen += counts.first().copied().unwrap_or(0);
                dropped += counts.get(1).copied().unwrap_or(0);
                namespace.run("nft", &["delete", "table", "netdev", DROP_TABLE], "")?;
            }
            if applied.qdisc {
                let stats = namespace.run("tc", &["-s", "qdisc", "show", "dev", device], "")?;
                over_rate += qdisc_drops(&stats);
                namespace.run("tc", &["qdisc", "del", "dev", device, "root"], "")?;
            }
        }
        let mut said = Vec::new();
        if applied.drops {
            said.push(format!("{dropped} of {seen} packets dropped"));
        }
        if applied.qdisc {
            said.push(format!("{over_rate} dropped by the queue"));
        }
        *applied = Applied::default();
        Ok(said.join(", "))
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

/// The root queueing discipline of each end for `impairment`'s delay and rate, as `tc`
/// arguments: netem where there is delay (it limits the rate too), else tbf.
fn queueing(impairment: &Impairment) -> Option<Vec<String>> {
    let rate = impairment.bandwidth_bps.map(|bps| format!("{bps}bit"));
    if !impairment.delay.is_zero() {
        let mut args = vec![
            "netem".to_owned(),
            "delay".to_owned(),
            format!("{}us", impairment.delay.as_micros()),
        ];
        if !impairment.jitter.is_zero() {
            args.push(format!("{}us", impairment.jitter.as_micros()));
        }
        if let Some(rate) = rate {
            args.extend(["rate".to_owned(), rate]);
        }
        return Some(args);
    }
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
    async fn the_link_carries_connections_and_drops_limits_and_cuts_what_it_is_told() {
        const BYTES: usize = 1 << 20;
        let link = Arc::new(
            ImpairedLink::start(sender(BYTES).await, false)
                .await
                .unwrap(),
        );
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
    fn delay_takes_netem_and_a_rate_alone_takes_tbf() {
        let rate = Impairment {
            bandwidth_bps: Some(4_000_000),
            ..Impairment::default()
        };
        assert_eq!(
            queueing(&rate).unwrap().join(" "),
            "tbf rate 4000000bit burst 10000 latency 200ms"
        );
        let delayed = Impairment {
            delay: Duration::from_millis(80),
            jitter: Duration::from_millis(20),
            bandwidth_bps: Some(1_000_000),
            ..Impairment::default()
        };
        assert_eq!(
            queueing(&delayed).unwrap().join(" "),
            "netem delay 80000us 20000us rate 1000000bit"
        );
        let loss = Impairment {
            loss_ppm: 20_000,
            ..Impairment::default()
        };
        assert_eq!(queueing(&loss), None);
    }
}
