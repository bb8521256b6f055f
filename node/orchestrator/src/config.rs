//! The orchestrator's configuration, read from TOML.
//!
//! Design: one flat struct per concern (`[chain]`, `[payments]`, `[limits]`, `[faults]`) decoded
//! strictly (`deny_unknown_fields`) so a misspelt key in a node config is an error naming the key,
//! not a silently ignored setting. Every field has a default that matches go-livepeer's behaviour
//! where go-livepeer has one; [`OrchestratorConfig::offchain`] is the quick local mode.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::{FaultConfig, InvalidFault};

/// A secret from the config (a private key, a token): its `Debug` prints `<redacted>`, so no log
/// line, panic or error message shows it, while it still serialises as the plain text a config
/// file holds (write such files owner-only). Compare it with [`Secret::matches`], which takes the
/// same time however much of a guess is right.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, compared in constant time.
    pub fn matches(&self, given: &[u8]) -> bool {
        crate::auth::secrets_equal(self.0.as_bytes(), given)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

/// Everything an orchestrator needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorConfig {
    /// Address to bind the single TLS port to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Public service URI advertised to broadcasters; defaults to `https://<bound address>`.
    pub service_uri: Option<String>,
    /// Where the transcoders fetch source segments from; defaults to the service URI. For an
    /// orchestrator that its transcoders reach on another address than broadcasters do (a
    /// private network, or a path of broadcasters' that is relayed).
    pub source_uri: Option<String>,
    /// Off-chain mode: price 0, no chain, empty signatures accepted (go-livepeer `-network offchain`).
    pub offchain: bool,
    /// Chain settings (required unless `offchain`).
    pub chain: Option<ChainConfig>,
    /// Price and ticket policy.
    pub payments: PaymentsConfig,
    /// Capacity, sizes and timeouts.
    pub limits: LimitsConfig,
    /// Who transcodes.
    pub transcode: TranscodeConfig,
    /// Fault switches in force at start.
    pub faults: FaultConfig,
    /// Remote transcoders as a pool: ledger, payouts, spot checks.
    pub pool: crate::pool::PoolConfig,
    /// Bearer token of the admin endpoint (`/admin/faults`); absent disables it. It also shows
    /// `/status` in full.
    pub admin_token: Option<Secret>,
    /// Bearer token that shows `/status` in full (per-session balances, redemptions, each
    /// transcoder, fault switches); without it or the admin token `/status` shows aggregates
    /// only. Absent: only the admin token does.
    pub status_token: Option<Secret>,
    /// Shared secret remote transcoders present in `RegisterTranscoder`; absent refuses them.
    pub transcoder_secret: Option<Secret>,
    /// Worker threads of the node's network runtime (TLS, hashing, checks, replies); absent is
    /// [`OrchestratorConfig::io_threads`]'s default. Transcoding has threads of its own.
    pub io_threads: Option<usize>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8935)),
            service_uri: None,
            source_uri: None,
            offchain: false,
            chain: None,
            payments: PaymentsConfig::default(),
            limits: LimitsConfig::default(),
            transcode: TranscodeConfig::default(),
            faults: FaultConfig::default(),
            pool: crate::pool::PoolConfig::default(),
            admin_token: None,
            status_token: None,
            transcoder_secret: None,
            io_threads: None,
        }
    }
}

/// Where the orchestrator settles tickets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// The orchestrator's private key, hex (`0x…`).
    pub private_key: Secret,
    /// TicketBroker address.
    pub ticket_broker: String,
    /// RoundsManager address.
    pub rounds_manager: String,
    /// How often the chain view (block, round, gas price) is refreshed and redemption runs.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    1000
}

/// Price and ticket policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentsConfig {
    /// Wei per `pixels_per_unit` output pixels.
    pub price_per_unit: u64,
    /// Pixels per unit (not zero).
    pub pixels_per_unit: u64,
    /// EV of each ticket, wei (decimal string or integer).
    pub ticket_ev: String,
    /// Fixed face value in wei; absent derives it from the gas price as go-livepeer does.
    pub face_value: Option<String>,
    /// Blocks after the current one at which issued params expire.
    pub expiration_blocks: u64,
    /// Redemption attempts per winning ticket before it is recorded as failed. Only an attempt
    /// the chain ruled on counts (a revert, a failed transaction, an error answer); one that could
    /// not reach the chain does not.
    pub redeem_attempts: u32,
    /// Blocks mined on top of a redemption's block before it counts as confirmed (default 6).
    /// Until then every new head re-checks the ticket is still used on chain, and a redemption a
    /// reorg dropped goes back in the queue. go-livepeer has no such depth: it takes a receipt
    /// with status 1 as final (`eth/client.go` `CheckTx`).
    pub confirmations: u64,
    /// Longest wait for one JSON-RPC request to the chain, connecting included (default 20 000,
    /// go-livepeer's `ethRPCTimeout`): the bound that keeps the chain loop, sender checks and
    /// redemptions going when the endpoint accepts connections and never answers.
    pub chain_timeout_ms: u64,
    /// Appends every received ticket, its recipientRand and verdict to this file (JSON lines,
    /// owner-only): an audit trail another implementation can re-check ([`crate::journal`]). It
    /// is also what a restarted node redeems from: at start the winners it holds that are not
    /// used on chain go back in the redemption queue, as go-livepeer's `ticketQueue` table does.
    pub ticket_journal: Option<std::path::PathBuf>,
    /// Most tickets one payment may carry (default 600, the nonces one params set takes); a
    /// larger payment is refused whole before any signature is checked.
    pub max_tickets_per_payment: u32,
    /// A sender's deposit and reserve read from the chain are used this long before they are
    /// read again (default 5000; 0 reads them for every request).
    pub sender_refresh_ms: u64,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            price_per_unit: 1,
            pixels_per_unit: 1,
            ticket_ev: protocol::ticket::DEFAULT_TICKET_EV.to_string(),
            face_value: None,
            expiration_blocks: protocol::ticket::DEFAULT_EXPIRATION_WINDOW,
            redeem_attempts: 5,
            confirmations: crate::payments::DEFAULT_CONFIRMATIONS,
            chain_timeout_ms: crate::payments::DEFAULT_CHAIN_TIMEOUT.as_millis() as u64,
            ticket_journal: None,
            max_tickets_per_payment: protocol::ticket::DEFAULT_MAX_NONCES,
            sender_refresh_ms: crate::payments::DEFAULT_SENDER_REFRESH.as_millis() as u64,
        }
    }
}

/// Capacity, sizes and timeouts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Concurrent sessions (manifests) served; the next one gets `OrchestratorCapped`.
    pub max_sessions: usize,
    /// Largest segment body accepted, bytes (go-livepeer's cap is 8 Mbps × 5 min).
    pub max_segment_bytes: usize,
    /// Time allowed to receive a whole segment body.
    pub upload_timeout_ms: u64,
    /// Time allowed for the TLS handshake and the request head.
    pub handshake_timeout_ms: u64,
    /// Auth token lifetime (go-livepeer: 30 min).
    pub auth_token_secs: u64,
    /// A session without segments for this long is closed and frees its slot.
    pub session_idle_secs: u64,
    /// Renditions kept for download, total bytes (oldest dropped first).
    pub store_bytes: usize,
    /// Renditions are dropped after this many seconds.
    pub store_secs: u64,
    /// Time a remote transcoder gets for one segment before it is failed.
    pub remote_task_timeout_ms: u64,
    /// Accept segments uploaded by reference (`Content-Type: application/vnd+livepeer.uri`, the
    /// body a URL this node downloads, as go-livepeer's broadcaster sends segments it keeps in
    /// object storage). Off by default: it makes the node fetch URLs a broadcaster names.
    pub segment_uri_uploads: bool,
    /// Segment bytes the whole node holds at once (bodies being received, queued or being
    /// transcoded); an upload that would pass it is refused with 503 (`overloaded`). Default
    /// 1 GiB.
    pub max_inflight_bytes: usize,
    /// Segment bytes one session holds at once; past it the upload is refused with 429
    /// (`session_limit`). Default 512 MiB.
    pub max_session_inflight_bytes: usize,
    /// Segments one session has in flight at once (being received, queued for its transcoder or
    /// transcoding): the bound of its transcode queue; the next one is refused with 429
    /// (`session_limit`). Default 64: a session is an auth token's, and our broadcaster sends
    /// every stream it routes to this node under one token, so the cap must cover all of them
    /// (memory stays bounded by the byte budgets).
    pub max_session_segments: usize,
    /// Open connections (TLS handshakes included); a connection past it is closed at once and
    /// counted in `lpt_orchestrator_connections_refused_total`. Default 2048.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams a connection may open (go's HTTP/2 server allows 250; each
    /// stream may carry an upload). Default 32.
    pub max_streams_per_connection: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_sessions: 10,
            max_segment_bytes: 300 * 1_000_000,
            upload_timeout_ms: 30_000,
            handshake_timeout_ms: 10_000,
            auth_token_secs: 30 * 60,
            session_idle_secs: 60,
            store_bytes: 512 * 1024 * 1024,
            store_secs: 300,
            remote_task_timeout_ms: 60_000,
            segment_uri_uploads: false,
            max_inflight_bytes: 1 << 30,
            max_session_inflight_bytes: 512 << 20,
            max_session_segments: crate::transcode::DEFAULT_QUEUE,
            max_connections: 2048,
            max_streams_per_connection: 32,
        }
    }
}

/// Who transcodes the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TranscodeMode {
    /// The orchestrator transcodes itself with the reference transcoder (go-livepeer
    /// `-orchestrator -transcoder`).
    #[default]
    Local,
    /// Only attached remote transcoders transcode; without one the answer is `OrchestratorBusy`.
    Remote,
    /// Renditions are copies of the source (no FFmpeg), pixels estimated from the profile: for
    /// measuring the orchestrator's own overhead.
    PassThrough,
}

/// Transcoding settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeConfig {
    /// Who transcodes.
    pub mode: TranscodeMode,
    /// libx264 preset for local transcoding.
    pub x264_preset: String,
    /// Threads per rendition encoder (0 = FFmpeg's choice).
    pub encoder_threads: usize,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        Self {
            mode: TranscodeMode::Local,
            x264_preset: "veryfast".into(),
            encoder_threads: 0,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML does not decode (unknown key, wrong type…).
    #[error("{path}: {source}")]
    Toml {
        /// File.
        path: String,
        /// Cause (names line and key).
        source: toml::de::Error,
    },
    /// A value is out of range.
    #[error("config key {key}: {reason}")]
    Invalid {
        /// Dotted key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A fault switch is out of range.
    #[error(transparent)]
    Fault(#[from] InvalidFault),
}

impl OrchestratorConfig {
    /// An off-chain orchestrator on a free loopback port: price 0, no chain, no signatures.
    pub fn offchain() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            offchain: true,
            payments: PaymentsConfig {
                price_per_unit: 0,
                ..PaymentsConfig::default()
            },
            ..Self::default()
        }
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Toml {
            path: origin.to_string(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Worker threads for the network runtime: `io_threads`, else half the cores, at least one.
    ///
    /// Why not one per core: a segment's network work is a few milliseconds of one thread
    /// (about 300 segments a second per worker, hashing included), the cores are wanted by the
    /// transcoding threads, and every extra worker is another thread to wake and schedule. On a
    /// 2-core machine with the broadcaster on the same cores, a second worker that only stole
    /// work lengthened the overhead's tail about 2.5× (p99 9.2–9.6 ms against 3.8 ms, same p50;
    /// `cargo bench -p node-orchestrator --bench overhead` with `IO_THREADS=2`).
    pub fn io_threads(&self) -> usize {
        self.io_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|cores| cores.get() / 2)
                .unwrap_or(1)
                .max(1)
        })
    }

    /// The tokio runtime the node runs on: [`Self::io_threads`] workers.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.io_threads())
            .thread_name("orchestrator-io")
            .enable_all()
            .build()
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.offchain && self.chain.is_none() {
            return Err(ConfigError::Invalid {
                key: "chain",
                reason: "required unless offchain = true".into(),
            });
        }
        if self.payments.pixels_per_unit == 0 {
            return Err(ConfigError::Invalid {
                key: "payments.pixels_per_unit",
                reason: "must not be zero".into(),
            });
        }
        if self.payments.chain_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "payments.chain_timeout_ms",
                reason: "must be at least 1".into(),
            });
        }
        if let Some((key, reason)) = self.pool.invalid() {
            return Err(ConfigError::Invalid { key, reason });
        }
        if self.io_threads == Some(0) {
            return Err(ConfigError::Invalid {
                key: "io_threads",
                reason: "must be at least 1".into(),
            });
        }
        let at_least_one: [(&'static str, usize); 6] = [
            ("limits.max_sessions", self.limits.max_sessions),
            ("limits.max_inflight_bytes", self.limits.max_inflight_bytes),
            (
                "limits.max_session_inflight_bytes",
                self.limits.max_session_inflight_bytes,
            ),
            (
                "limits.max_session_segments",
                self.limits.max_session_segments,
            ),
            ("limits.max_connections", self.limits.max_connections),
            (
                "limits.max_streams_per_connection",
                self.limits.max_streams_per_connection as usize,
            ),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        self.faults.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("orchestrator.example.toml");
        let config = OrchestratorConfig::from_file(&path).unwrap();
        assert_eq!(config.payments.price_per_unit, 1200);
        assert_eq!(config.transcode.mode, TranscodeMode::Local);
        assert_eq!(config.chain.unwrap().poll_ms, 1000);
        assert_eq!(config.pool, crate::pool::PoolConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = OrchestratorConfig::from_toml("offchain = true\nprice = 3\n", "o.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("o.toml") && err.contains("price"), "{err}");
        let err = OrchestratorConfig::from_toml("offchain = false\n", "o.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("chain"), "{err}");
        let err = OrchestratorConfig::from_toml(
            "offchain = true\n[faults]\ndrop_fraction = 3.0\n",
            "o.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("faults.drop_fraction"), "{err}");
        let err = OrchestratorConfig::from_toml("offchain = true\nio_threads = 0\n", "o.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("io_threads"), "{err}");
        let err = OrchestratorConfig::from_toml(
            "offchain = true\n[payments]\nchain_timeout_ms = 0\n",
            "o.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("payments.chain_timeout_ms"), "{err}");
    }

    #[test]
    fn secrets_stay_out_of_debug_output_but_serialise() {
        let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let mut config = OrchestratorConfig::offchain();
        config.chain = Some(ChainConfig {
            rpc_url: "http://127.0.0.1:8545".into(),
            private_key: key.into(),
            ticket_broker: "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
            rounds_manager: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512".into(),
            poll_ms: 1000,
        });
        config.admin_token = Some("admin-token-value".into());
        config.status_token = Some("status-token-value".into());
        config.transcoder_secret = Some("transcoder-secret-value".into());
        let debug = format!("{config:?} {:#?}", config.chain);
        for secret in [
            key,
            &key[2..],
            "admin-token-value",
            "status-token-value",
            "transcoder-secret-value",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("private_key: <redacted>"), "{debug}");
        // A config file written from it still holds the key, and reads back the same.
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains(key), "{text}");
        let back = OrchestratorConfig::from_toml(&text, "written.toml").unwrap();
        assert_eq!(back.chain.unwrap().private_key.expose(), key);
        assert!(back.admin_token.unwrap().matches(b"admin-token-value"));
    }

    #[test]
    fn io_threads_default_to_half_the_cores_and_at_least_one() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let mut config = OrchestratorConfig::offchain();
        assert_eq!(config.io_threads(), (cores / 2).max(1));
        config.io_threads = Some(3);
        assert_eq!(config.io_threads(), 3);
        let runtime = config.runtime().unwrap();
        assert_eq!(runtime.metrics().num_workers(), 3);
    }
}
