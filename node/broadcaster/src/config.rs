//! The broadcaster's configuration: a TOML file decoded strictly into [`BroadcasterConfig`].
//!
//! Every field has a go-livepeer-like default so a minimal file names only the orchestrators.
//! Unknown keys are rejected (a typo must not silently fall back to a default) and
//! [`BroadcasterConfig::validate`] checks values together and reports the offending key. The
//! broadcaster's private key never appears in the file: the file names an environment variable or
//! a key file holding it, so a config can be shared and logged safely.
//!
//! ```toml
//! rtmp_addr = "0.0.0.0:1935"
//! http_addr = "0.0.0.0:8935"
//! segment_duration_ms = 2000
//! ladder = "P240p30fps16x9,P360p30fps16x9"   # "" = source only
//! orchestrators = ["https://127.0.0.1:8936", "https://127.0.0.1:8937"]
//! max_price_per_unit = 1200                  # wei per pixels_per_unit pixels
//! pixels_per_unit = 1
//! hls_dir = "/var/lib/lpt/hls"                # window segments in files; omit to keep them in memory
//!
//! # Who may publish (omit both to let anyone publish, as on a loopback test stack)
//! auth_webhook_url = "http://127.0.0.1:3000/auth"  # POST {"url": …}; 200 approves, else refused
//! auth_webhook_timeout_ms = 5000             # no answer in time = refused
//! stream_keys_file = "/etc/lpt/stream-keys"  # one key per line; publish with `<id>?key=KEY`
//!
//! # Limits a hostile publisher or HTTP client meets (these are the defaults)
//! max_live_streams = 1000
//! max_live_streams_per_ip = 100
//! max_ended_streams = 1000                   # ended streams kept playable; oldest forgotten first
//! max_segment_bytes = 67108864               # an open segment (or a push body) past this: refused
//! max_segment_wall_ms = 600000               # a segment open this long in wall time: refused
//! push_max_seq_jump = 1000                   # a push seq this far past the stream's next: refused
//! rtmp_max_connections = 1024
//! rtmp_handshake_timeout_ms = 10000          # accept → publish accepted
//! http_max_connections = 4096
//! http_header_timeout_ms = 10000             # a request head (or keep-alive wait) this long: closed
//! http_idle_timeout_ms = 30000               # a body or response stalled this long: closed
//! http_body_timeout_ms = 60000               # a whole push body
//!
//! [payment]                                  # omit for off-chain mode
//! eth_url = "http://127.0.0.1:8545"
//! ticket_broker = "0x…"
//! key_env = "LPT_BROADCASTER_KEY"            # or key_file = "/path/to/hex.key"
//! fee_margin = 1.2
//! max_tickets_per_segment = 100              # refuse params that need more tickets per segment
//!
//! [rendition_fetch]                          # these are the defaults
//! allowed_hosts = []                         # besides O's own host:port, e.g. ["cdn.example:443"]
//! max_size_factor = 4                        # a rendition may be 4 x its source segment's size
//! max_extra_bytes = 8388608                  # plus 8 MiB
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use reference_transcoder::ladder::{Profile, parse_ladder};
use serde::{Deserialize, Serialize};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or a type/unknown-key error.
    #[error("invalid broadcaster config: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("broadcaster config key `{key}`: {why}")]
    Invalid {
        /// Offending key.
        key: &'static str,
        /// Explanation including the value.
        why: String,
    },
    /// The key could not be loaded.
    #[error("broadcaster key: {0}")]
    Key(String),
}

/// How the broadcaster pays orchestrators.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// JSON-RPC URL of the chain; absent means off-chain mode (no tickets, empty signatures).
    pub eth_url: Option<String>,
    /// TicketBroker address (`0x…`).
    pub ticket_broker: Option<String>,
    /// Name of an environment variable holding the hex private key.
    pub key_env: Option<String>,
    /// A file holding the hex private key (one line).
    pub key_file: Option<PathBuf>,
    /// Tickets cover the fee estimate times this factor (default 1.2).
    pub fee_margin: Option<f64>,
    /// Most tickets one segment's payment may take (default 100, the cap go-livepeer's remote
    /// signer puts on a payment). An orchestrator whose ticket EV is so small beside its price
    /// that a segment needs more is refused before anything is signed, and that attempt fails.
    pub max_tickets_per_segment: Option<u64>,
}

/// The broadcaster's settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcasterConfig {
    /// RTMP listen address (port 0 picks a free port).
    pub rtmp_addr: SocketAddr,
    /// HTTP listen address for HLS, push ingest, `/status`, `/metrics`, `/healthz`.
    pub http_addr: SocketAddr,
    /// Aimed-at segment duration, ms (go-livepeer: 2000).
    pub segment_duration_ms: u64,
    /// Cut a segment at this duration even without a key frame, ms.
    pub max_segment_duration_ms: u64,
    /// Comma-separated lpms preset names of the transcoding ladder; empty = source only.
    pub ladder: String,
    /// Orchestrator service URIs (`https://host:port`), discovered with `GetOrchestrator`.
    pub orchestrators: Vec<String>,
    /// Highest acceptable price: wei per `pixels_per_unit` pixels (absent = any price).
    pub max_price_per_unit: Option<u64>,
    /// Pixels per unit of `max_price_per_unit`.
    pub pixels_per_unit: u64,
    /// Most failed attempts at one segment before it is declared failed. A refused payment is
    /// not counted the first time each orchestrator refuses: a fresh session with it is tried.
    pub max_attempts: u32,
    /// Segments kept in each media playlist.
    pub hls_window: usize,
    /// Directory for the window's segments (each in a file, served from the page cache); absent
    /// keeps them in the node's memory. See [`crate::store`].
    pub hls_dir: Option<PathBuf>,
    /// Segment outcome records kept for `/status`.
    pub records_kept: usize,
    /// Seconds an orchestrator stays out of rotation after a failure.
    pub failure_cooldown_secs: u64,
    /// Seconds an ended stream stays playable before it is forgotten.
    pub ended_stream_retention_secs: u64,
    /// Ended streams kept for `ended_stream_retention_secs`; past this many the oldest is
    /// forgotten early, so publishers cycling through IDs cannot pile up retained windows.
    pub max_ended_streams: usize,
    /// Streams with a live publisher (RTMP or push), in total. Another is refused.
    pub max_live_streams: usize,
    /// Streams with a live publisher from one client IP address. Another is refused.
    pub max_live_streams_per_ip: usize,
    /// Largest open segment, bytes: a publisher whose segment grows past it (no key frame,
    /// frozen timestamps) is disconnected and its stream ended. Also the largest push body.
    pub max_segment_bytes: usize,
    /// Longest wall-clock time one segment may stay open, ms (at least
    /// `max_segment_duration_ms`): a publisher whose timestamps stand still is disconnected.
    pub max_segment_wall_ms: u64,
    /// Largest step past a push stream's next sequence number that a push may take.
    pub push_max_seq_jump: u64,
    /// go-livepeer's `-authWebhookUrl`: every new publish (RTMP, or the first push of a stream)
    /// POSTs `{"url": "<stream URL with its query>"}` here. 200 with an empty body approves;
    /// 200 with `{"manifestID": "…"}` approves and publishes under that ID; anything else, an
    /// unreadable answer or no answer within `auth_webhook_timeout_ms` refuses. Absent: no check.
    pub auth_webhook_url: Option<String>,
    /// How long the auth webhook may take, ms.
    pub auth_webhook_timeout_ms: u64,
    /// A file of stream keys, one per line (blank lines and `#` comments ignored). When set, a
    /// publisher must add `?key=<key>` to its stream name (RTMP) or push URL. Absent: no keys.
    /// The keys live in their own file so the config itself holds no secret.
    pub stream_keys_file: Option<PathBuf>,
    /// Open RTMP connections; another is closed at once.
    pub rtmp_max_connections: usize,
    /// Time from accepting an RTMP connection until its publish is accepted, ms (handshake,
    /// connect, publish): a client trickling its handshake is dropped.
    pub rtmp_handshake_timeout_ms: u64,
    /// Open HTTP connections; another gets a 503 and is closed.
    pub http_max_connections: usize,
    /// Time a client may take to send a request head, ms; it also bounds how long an idle
    /// keep-alive connection waits for its next request.
    pub http_header_timeout_ms: u64,
    /// Longest stall while a request body is read or a response written, ms.
    pub http_idle_timeout_ms: u64,
    /// Time a push body may take in total, ms.
    pub http_body_timeout_ms: u64,
    /// Payments; absent = off-chain.
    pub payment: PaymentConfig,
    /// Where renditions may be fetched from and how large they may be.
    pub rendition_fetch: RenditionFetchConfig,
}

impl Default for BroadcasterConfig {
    fn default() -> Self {
        Self {
            rtmp_addr: "127.0.0.1:1935".parse().expect("literal"),
            http_addr: "127.0.0.1:8935".parse().expect("literal"),
            segment_duration_ms: 2000,
            max_segment_duration_ms: 300_000,
            ladder: reference_transcoder::ladder::DEFAULT_LADDER.to_string(),
            orchestrators: Vec::new(),
            max_price_per_unit: None,
            pixels_per_unit: 1,
            max_attempts: 3,
            hls_window: 6,
            hls_dir: None,
            records_kept: 2000,
            failure_cooldown_secs: 30,
            ended_stream_retention_secs: 600,
            max_ended_streams: 1000,
            max_live_streams: 1000,
            max_live_streams_per_ip: 100,
            max_segment_bytes: 64 << 20,
            max_segment_wall_ms: 600_000,
            push_max_seq_jump: 1000,
            auth_webhook_url: None,
            auth_webhook_timeout_ms: 5000,
            stream_keys_file: None,
            rtmp_max_connections: 1024,
            rtmp_handshake_timeout_ms: 10_000,
            http_max_connections: 4096,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 30_000,
            http_body_timeout_ms: 60_000,
            payment: PaymentConfig::default(),
            rendition_fetch: RenditionFetchConfig::default(),
        }
    }
}

impl BroadcasterConfig {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// The ladder's profiles.
    pub fn profiles(&self) -> Result<Vec<Profile>, ConfigError> {
        if self.ladder.trim().is_empty() {
            return Ok(Vec::new());
        }
        parse_ladder(&self.ladder).map_err(|e| ConfigError::Invalid {
            key: "ladder",
            why: e.to_string(),
        })
    }

    /// Checks values together; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, why: String| Err(ConfigError::Invalid { key, why });
        if !(200..=60_000).contains(&self.segment_duration_ms) {
            return invalid(
                "segment_duration_ms",
                format!("{} is outside 200..=60000", self.segment_duration_ms),
            );
        }
        if self.max_segment_duration_ms < self.segment_duration_ms {
            return invalid(
                "max_segment_duration_ms",
                format!(
                    "{} is below segment_duration_ms {}",
                    self.max_segment_duration_ms, self.segment_duration_ms
                ),
            );
        }
        self.profiles()?;
        for uri in &self.orchestrators {
            if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                return invalid("orchestrators", format!("`{uri}` is not an http(s) URI"));
            }
        }
        if self.pixels_per_unit == 0 {
            return invalid("pixels_per_unit", "must be positive".into());
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts", "must be at least 1".into());
        }
        if self.hls_window < 3 {
            return invalid("hls_window", format!("{} is below 3", self.hls_window));
        }
        if self.max_segment_wall_ms < self.max_segment_duration_ms {
            return invalid(
                "max_segment_wall_ms",
                format!(
                    "{} is below max_segment_duration_ms {}",
                    self.max_segment_wall_ms, self.max_segment_duration_ms
                ),
            );
        }
        if self.max_segment_bytes < 188 {
            return invalid(
                "max_segment_bytes",
                format!("{} is below one TS packet (188)", self.max_segment_bytes),
            );
        }
        for (key, value) in [
            ("max_live_streams", self.max_live_streams as u64),
            (
                "max_live_streams_per_ip",
                self.max_live_streams_per_ip as u64,
            ),
            ("rtmp_max_connections", self.rtmp_max_connections as u64),
            ("http_max_connections", self.http_max_connections as u64),
            ("rtmp_handshake_timeout_ms", self.rtmp_handshake_timeout_ms),
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_idle_timeout_ms", self.http_idle_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
            ("auth_webhook_timeout_ms", self.auth_webhook_timeout_ms),
        ] {
            if value == 0 {
                return invalid(key, "must be positive".into());
            }
        }
        if let Some(url) = &self.auth_webhook_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid("auth_webhook_url", format!("`{url}` is not an http(s) URL"));
        }
        if self.rendition_fetch.max_size_factor == 0 {
            return invalid(
                "rendition_fetch.max_size_factor",
                "must be at least 1".into(),
            );
        }
        let p = &self.payment;
        if let Some(margin) = p.fee_margin
            && !(1.0..=10.0).contains(&margin)
        {
            return invalid("payment.fee_margin", format!("{margin} is outside 1..=10"));
        }
        if p.max_tickets_per_segment == Some(0) {
            return invalid(
                "payment.max_tickets_per_segment",
                "must be at least 1".into(),
            );
        }
        if p.eth_url.is_some() {
            if p.ticket_broker
                .as_deref()
                .and_then(|a| a.parse::<protocol::Address>().ok())
                .is_none()
            {
                return invalid(
                    "payment.ticket_broker",
                    format!(
                        "{:?} is not a 0x address (required with eth_url)",
                        p.ticket_broker
                    ),
                );
            }
            if p.key_env.is_none() && p.key_file.is_none() {
                return invalid(
                    "payment.key_env",
                    "eth_url needs key_env or key_file".into(),
                );
            }
        }
        Ok(())
    }
}

/// Reads a stream keys file (`stream_keys_file`): one key per line, blank lines and `#` comments
/// ignored. A file without a key is refused: it would lock every publisher out.
pub fn load_stream_keys(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(ConfigError::Invalid {
            key: "stream_keys_file",
            why: format!("{} holds no key", path.display()),
        });
    }
    Ok(keys)
}

impl PaymentConfig {
    /// Where the broadcaster's key is read from: `key_env`, else `key_file`.
    pub fn key_source(&self) -> Result<protocol::key::KeySource, ConfigError> {
        match (&self.key_env, &self.key_file) {
            (Some(var), _) => Ok(protocol::key::KeySource::Env(var.clone())),
            (None, Some(path)) => Ok(protocol::key::KeySource::File(path.clone())),
            (None, None) => Err(ConfigError::Key("no key_env or key_file".into())),
        }
    }
}

/// Limits on fetching the renditions an orchestrator points to (`[rendition_fetch]`).
///
/// Rendition URLs come from the orchestrator, and off-chain a result is served unsigned, so the
/// broadcaster fetches only from the orchestrator's own host and port (its configured URI or the
/// `transcoder` it advertises) or a host listed here, follows a redirect only when it stays on
/// those, and stops reading a rendition at `max_size_factor` × its source segment's size +
/// `max_extra_bytes`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RenditionFetchConfig {
    /// Other hosts renditions may come from (an object store): `host` (any port) or `host:port`.
    pub allowed_hosts: Vec<AllowedHost>,
    /// A rendition may be this many times its source segment's size (default 4)…
    pub max_size_factor: u64,
    /// …plus this many bytes (default 8 MiB: a 2 s segment at 32 Mbps).
    pub max_extra_bytes: u64,
}

impl Default for RenditionFetchConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_size_factor: 4,
            max_extra_bytes: 8 << 20,
        }
    }
}

impl RenditionFetchConfig {
    /// The most bytes read of one rendition of a `source_bytes`-byte segment.
    pub fn max_rendition_bytes(&self, source_bytes: usize) -> u64 {
        (source_bytes as u64)
            .saturating_mul(self.max_size_factor)
            .saturating_add(self.max_extra_bytes)
    }
}

/// A host in `rendition_fetch.allowed_hosts`: `host` matches any port, `host:port` one port.
/// IPv6 addresses are written in brackets (`[::1]:8935`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowedHost {
    /// Lower-case host name or IP address (IPv6 in brackets, as URLs write it).
    pub host: String,
    /// The one port allowed, or any.
    pub port: Option<u16>,
}

impl AllowedHost {
    /// Whether a URL's `host` (as `Url::host_str` gives it) and effective `port` are allowed.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| p == port)
    }
}

impl std::str::FromStr for AllowedHost {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("allowed host {entry:?}: {why}");
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => {
                let (inside, after) = rest.split_once(']').ok_or_else(|| bad("no closing ]"))?;
                inside
                    .parse::<std::net::Ipv6Addr>()
                    .map_err(|_| bad("not an IPv6 address in brackets"))?;
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
                };
                (format!("[{inside}]"), port)
            }
            None => match entry.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (entry.to_string(), None),
            },
        };
        let name_ok = host.starts_with('[')
            || (!host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        if !name_ok {
            return Err(bad(
                "write a host name or address, optionally :port, without a scheme or path",
            ));
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("the port is not 0-65535")))
            .transpose()?;
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl From<AllowedHost> for String {
    /// The entry as a config writes it: `host` or `host:port`.
    fn from(allowed: AllowedHost) -> String {
        match allowed.port {
            Some(port) => format!("{}:{port}", allowed.host),
            None => allowed.host,
        }
    }
}

impl TryFrom<String> for AllowedHost {
    type Error = String;

    fn try_from(entry: String) -> Result<Self, String> {
        entry.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_gets_defaults_and_unknown_keys_fail() {
        let c = BroadcasterConfig::from_toml_str("orchestrators = [\"https://127.0.0.1:8935\"]")
            .unwrap();
        assert_eq!(c.segment_duration_ms, 2000);
        assert_eq!(c.profiles().unwrap().len(), 2);
        let err = BroadcasterConfig::from_toml_str("segment_duraton_ms = 5").unwrap_err();
        assert!(err.to_string().contains("segment_duraton_ms"), "{err}");
        let err = BroadcasterConfig::from_toml_str("ladder = \"P360p30fps16x8\"").unwrap_err();
        assert!(err.to_string().contains("ladder"), "{err}");
        let err =
            BroadcasterConfig::from_toml_str("[payment]\neth_url = \"http://x\"").unwrap_err();
        assert!(err.to_string().contains("payment.ticket_broker"), "{err}");
    }

    #[test]
    fn rendition_fetch_hosts_parse_strictly() {
        let c = BroadcasterConfig::from_toml_str(
            "[rendition_fetch]\nallowed_hosts = [\"CDN.example.com\", \"10.0.0.5:9000\", \"[::1]:8935\"]",
        )
        .unwrap();
        let hosts = &c.rendition_fetch.allowed_hosts;
        assert!(
            hosts[0].matches("cdn.example.com", 443) && hosts[0].matches("cdn.example.com", 80)
        );
        assert!(hosts[1].matches("10.0.0.5", 9000) && !hosts[1].matches("10.0.0.5", 9001));
        assert!(hosts[2].matches("[::1]", 8935));
        assert_eq!(
            c.rendition_fetch.max_rendition_bytes(1000),
            4000 + (8 << 20)
        );
        for bad in [
            "https://cdn.example.com",
            "cdn/x",
            "h:99999",
            "[::1]x",
            "::1",
            "",
        ] {
            let text = format!("[rendition_fetch]\nallowed_hosts = [{bad:?}]");
            let err = BroadcasterConfig::from_toml_str(&text).unwrap_err();
            assert!(err.to_string().contains("allowed host"), "{bad}: {err}");
        }
        let err =
            BroadcasterConfig::from_toml_str("[rendition_fetch]\nmax_size_factor = 0").unwrap_err();
        assert!(
            err.to_string().contains("rendition_fetch.max_size_factor"),
            "{err}"
        );
    }
}
