//! A minimal RTMP publisher for tests that need exact control over what is sent (no key frames,
//! a resolution change, a cut mid-packet), built on rml_rtmp's client session.

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Publisher {
    socket: TcpStream,
    session: ClientSession,
    out: Vec<u8>,
}

fn collect(
    results: Vec<ClientSessionResult>,
    out: &mut Vec<u8>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}

impl Publisher {
    /// Connects to `addr`, app `app`, and publishes `key`.
    pub async fn connect(addr: std::net::SocketAddr, app: &str, key: &str) -> Result<Self, String> {
        Self::connect_from(None, addr, app, key).await
    }

    /// [`Publisher::connect`] from the local address `from` (e.g. `127.0.0.2`, to look like
    /// another client); the server's refusal comes back as `Err("refused: <code>")`.
    pub async fn connect_from(
        from: Option<std::net::IpAddr>,
        addr: std::net::SocketAddr,
        app: &str,
        key: &str,
    ) -> Result<Self, String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        if let Some(ip) = from {
            socket
                .bind(std::net::SocketAddr::new(ip, 0))
                .map_err(|e| e.to_string())?;
        }
        let mut socket = socket.connect(addr).await.map_err(|e| e.to_string())?;
        let mut hs = Handshake::new(PeerType::Client);
        socket
            .write_all(
                &hs.generate_outbound_p0_and_p1()
                    .map_err(|e| format!("{e:?}"))?,
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed in handshake".into());
            }
            match hs.process_bytes(&buf[..n]).map_err(|e| format!("{e:?}"))? {
                HandshakeProcessResult::InProgress { response_bytes } => socket
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?,
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    socket
                        .write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    break remaining_bytes;
                }
            }
        };
        let (session, initial) =
            ClientSession::new(ClientSessionConfig::new()).map_err(|e| format!("{e:?}"))?;
        let mut p = Publisher {
            socket,
            session,
            out: Vec::new(),
        };
        let mut events = Vec::new();
        collect(initial, &mut p.out, &mut events);
        let r = p
            .session
            .handle_input(&leftover)
            .map_err(|e| format!("{e:?}"))?;
        collect(r, &mut p.out, &mut events);
        let r = p
            .session
            .request_connection(app.to_string())
            .map_err(|e| format!("{e:?}"))?;
        collect(vec![r], &mut p.out, &mut events);
        p.wait(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
            .await?;
        let r = p
            .session
            .request_publishing(key.to_string(), PublishRequestType::Live)
            .map_err(|e| format!("{e:?}"))?;
        collect(vec![r], &mut p.out, &mut events);
        p.wait(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await?;
        Ok(p)
    }

    async fn wait(&mut self, done: impl Fn(&ClientSessionEvent) -> bool) -> Result<(), String> {
        let mut buf = vec![0u8; 8192];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            self.flush().await?;
            let n = tokio::time::timeout_at(deadline, self.socket.read(&mut buf))
                .await
                .map_err(|_| "timed out waiting for the server".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("server closed the connection".into());
            }
            let mut events = Vec::new();
            let r = self
                .session
                .handle_input(&buf[..n])
                .map_err(|e| format!("{e:?}"))?;
            collect(r, &mut self.out, &mut events);
            if events.iter().any(&done) {
                return self.flush().await;
            }
            if let Some(ClientSessionEvent::UnhandleableOnStatusCode { code }) = events
                .iter()
                .find(|e| matches!(e, ClientSessionEvent::UnhandleableOnStatusCode { .. }))
            {
                return Err(format!("refused: {code}"));
            }
        }
    }

    /// Queues a video tag body at `ms`.
    pub fn video(&mut self, body: Vec<u8>, ms: u32) {
        if let Ok(r) =
            self.session
                .publish_video_data(Bytes::from(body), RtmpTimestamp::new(ms), false)
        {
            collect(vec![r], &mut self.out, &mut Vec::new());
        }
    }

    /// Queues an audio tag body at `ms`.
    pub fn audio(&mut self, body: Vec<u8>, ms: u32) {
        if let Ok(r) =
            self.session
                .publish_audio_data(Bytes::from(body), RtmpTimestamp::new(ms), false)
        {
            collect(vec![r], &mut self.out, &mut Vec::new());
        }
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), String> {
        if !self.out.is_empty() {
            self.socket
                .write_all(&self.out)
                .await
                .map_err(|e| e.to_string())?;
            self.out.clear();
        }
        Ok(())
    }

    /// Whether the server closes the connection within `limit` (sending what is queued first;
    /// a send that fails because the server is gone counts as closed).
    pub async fn closed_by_server(&mut self, limit: Duration) -> bool {
        if self.flush().await.is_err() {
            return true;
        }
        let mut buf = vec![0u8; 8192];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Sends only the first half of what is queued, then drops the connection (a publisher
    /// that dies mid-packet).
    pub async fn cut_mid_packet(mut self) {
        let half = self.out.len() / 2;
        let _ = self.socket.write_all(&self.out[..half]).await;
        let _ = self.socket.shutdown().await;
    }

    /// Ends publishing politely and closes.
    pub async fn finish(mut self) {
        if let Ok(r) = self.session.stop_publishing() {
            collect(r, &mut self.out, &mut Vec::new());
        }
        let _ = self.flush().await;
        let _ = self.socket.shutdown().await;
    }
}
