//! The orchestrator's configuration, read from TOML.
//!
//! Design: one flat struct per concern (`[chain]`, `[payments]`, `[limits]`, `[faults]`) decoded
//! strictly (`deny_unknown_fields`) so a misspelt key in a node config is an error naming the key,
//! not a silently ignored setting. Every field has a default that matches go-livepeer's behaviour
//! where go-livepeer has one; [`OrchestratorConfig::offchain`] is the quick local mode.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::FaultConfig;

/// Everything an orchestrator needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestratorConfig {
    /// Address to bind the single TLS port to (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Public service URI advertised to broadcasters; defaults to `https://<bound address>`.
    pub service_uri: Option<String>,
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
    /// Bearer token of the admin endpoint (`/admin/faults`); absent disables it.
    pub admin_token: Option<String>,
    /// Shared secret remote transcoders present in `RegisterTranscoder`; absent refuses them.
    pub transcoder_secret: Option<String>,
    /// Worker threads of the node's network runtime (TLS, hashing, checks, replies); absent is
    /// [`OrchestratorConfig::io_threads`]'s default. Transcoding has threads of its own.
    pub io_threads: Option<usize>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8935)),
            service_uri: None,
            offchain: false,
            chain: None,
            payments: PaymentsConfig::default(),
            limits: LimitsConfig::default(),
            transcode: TranscodeConfig::default(),
            faults: FaultConfig::default(),
            admin_token: None,
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
    pub private_key: String,
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
    /// Redemption attempts per winning ticket before it is recorded as failed.
    pub redeem_attempts: u32,
    /// Appends every received ticket, its recipientRand and verdict to this file (JSON lines,
    /// owner-only): an audit trail another implementation can re-check ([`crate::journal`]).
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
        if self.io_threads == Some(0) {
            return Err(ConfigError::Invalid {
                key: "io_threads",
                reason: "must be at least 1".into(),
            });
        }
        if self.limits.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_sessions",
                reason: "must be at least 1".into(),
            });
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
