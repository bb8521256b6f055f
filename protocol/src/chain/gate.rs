//! A TCP gate in front of a chain RPC that can stop answering, as a hung or overloaded provider
//! does: connections are still accepted, and nothing comes back.
//!
//! Nodes are pointed at the gate instead of the RPC itself; closing it holds every connection
//! silent (new ones accepted and never read, open ones no longer forwarded in either direction),
//! which tests that every chain call has a timeout and that nothing is lost while the chain is
//! away. Reopening it drops the connections held during the outage, so clients reconnect, and
//! forwards again. Dropping the gate stops it and every connection through it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running gate; see the module documentation.
#[derive(Debug)]
pub struct RpcGate {
    local_addr: SocketAddr,
    /// `(open, generation)`: the generation moves on each close, so connections held in one
    /// outage are told apart from those accepted after it.
    state: Arc<watch::Sender<(bool, u64)>>,
    accept: JoinHandle<()>,
}

impl RpcGate {
    /// Listens on a free loopback port and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<RpcGate> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let local_addr = listener.local_addr()?;
        let (state, _) = watch::channel((true, 0u64));
        let state = Arc::new(state);
        let accept = tokio::spawn(accept_loop(listener, upstream, state.clone()));
        Ok(RpcGate {
            local_addr,
            state,
            accept,
        })
    }

    /// The URL to give nodes instead of the RPC's.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops answering: from now on no byte crosses the gate.
    pub fn close(&self) {
        self.state.send_modify(|(open, generation)| {
            if *open {
                *open = false;
                *generation += 1;
            }
        });
    }

    /// Answers again; the connections held silent are closed.
    pub fn open(&self) {
        self.state.send_modify(|(open, _)| *open = true);
    }

    pub fn is_open(&self) -> bool {
        self.state.borrow().0
    }
}

impl Drop for RpcGate {
    fn drop(&mut self) {
        self.accept.abort();
        // Wakes every connection task, which ends when it sees the sender gone.
        self.state.send_modify(|(open, _)| *open = false);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: Arc<watch::Sender<(bool, u64)>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let mut watch = state.subscribe();
        tokio::spawn(async move {
            let (open, generation) = *watch.borrow_and_update();
            if !open {
                // Accepted during an outage: held unread until the gate opens, then closed.
                hold_until_open(&mut watch).await;
                return;
            }
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            forward(client, server, watch, generation).await;
        });
    }
}

/// Waits until the gate opens (or is dropped).
async fn hold_until_open(watch: &mut watch::Receiver<(bool, u64)>) {
    while !watch.borrow_and_update().0 {
        if watch.changed().await.is_err() {
            return;
        }
    }
}

/// Copies bytes both ways while the gate stays open in `generation`; once it closes the
/// connection is held silent, and dropped when the gate opens again.
async fn forward(
    client: TcpStream,
    server: TcpStream,
    mut watch: watch::Receiver<(bool, u64)>,
    generation: u64,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        let (open, now) = *watch.borrow_and_update();
        if !open || now != generation {
            hold_until_open(&mut watch).await;
            return;
        }
        tokio::select! {
            read = client_read.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !watch.borrow().0 || server_write.write_all(&up[..n]).await.is_err() {
                        continue;
                    }
                }
            },
            read = server_read.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if !watch.borrow().0 || client_write.write_all(&down[..n]).await.is_err() {
                        continue;
                    }
                }
            },
            changed = watch.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An upstream that answers each line with the line upper-cased.
    async fn shouting_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0
                            || socket
                                .write_all(&buf[..n].to_ascii_uppercase())
                                .await
                                .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `text` on `socket` and reads the answer, or `None` if none comes within `wait`.
    async fn ask(socket: &mut TcpStream, text: &str, wait: Duration) -> Option<String> {
        socket.write_all(text.as_bytes()).await.ok()?;
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(wait, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_then_holds_silent_then_forwards_again_on_new_connections() {
        let gate = RpcGate::start(shouting_upstream().await).await.unwrap();
        assert!(gate.url().starts_with("http://127.0.0.1:"));
        let answer = Duration::from_secs(5);
        let silence = Duration::from_millis(300);

        let mut before = TcpStream::connect(gate.local_addr()).await.unwrap();
        assert_eq!(
            ask(&mut before, "hello", answer).await.as_deref(),
            Some("HELLO")
        );

        gate.close();
        assert!(!gate.is_open());
        assert_eq!(ask(&mut before, "anyone", silence).await, None);
        let mut during = TcpStream::connect(gate.local_addr()).await.unwrap();
        assert_eq!(ask(&mut during, "there", silence).await, None);

        gate.open();
        assert!(gate.is_open());
        // Connections held during the outage are closed, so their clients reconnect.
        let mut buf = [0u8; 16];
        for held in [&mut before, &mut during] {
            let read = tokio::time::timeout(answer, held.read(&mut buf)).await;
            assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        }
        let mut after = TcpStream::connect(gate.local_addr()).await.unwrap();
        assert_eq!(
            ask(&mut after, "back", answer).await.as_deref(),
            Some("BACK")
        );
    }
}
