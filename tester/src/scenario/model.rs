//! The typed scenario: what a validated scenario file says to run.

use std::path::PathBuf;
use std::time::Duration;

pub use node_orchestrator::faults::FaultConfig;

use crate::thresholds::Threshold;

/// A validated scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// Where it was loaded from (`<embedded>` for the built-in default).
    pub path: PathBuf,
    /// The TOML text as written, kept for reports.
    pub text: String,
    pub target: Target,
    pub source: Source,
    pub ladder: Vec<Profile>,
    pub workloads: Vec<Workload>,
    pub quality: Quality,
    pub payments: Payments,
    pub thresholds: Vec<Threshold>,
}

/// What the probes exercise.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The node stack shipped in this workspace, started for the run on loopback ports.
    Embedded(EmbeddedTarget),
    /// Nothing to start: direct-to-orchestrator workloads name the orchestrators they test.
    Direct {
        /// How the tester pays with tickets; absent sends unpaid segments (off-chain orchestrators).
        payment: Option<DirectPayment>,
    },
    /// A running stack reached by URL templates, where `{stream}` is replaced by the stream key.
    External {
        rtmp_url: String,
        playback_url: String,
        chain_rpc: Option<String>,
        ticket_broker: Option<String>,
    },
}

/// The embedded node stack a run starts.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedTarget {
    pub orchestrators: u32,
    pub transcoders_per_orchestrator: u32,
    /// No chain, price 0, no signatures (go-livepeer's off-chain mode).
    pub offline: bool,
    /// The orchestrators' price: wei per `pixels_per_unit` output pixels.
    pub price_per_unit: u64,
    pub pixels_per_unit: u64,
    /// Per-orchestrator prices (by index) overriding `price_per_unit`; empty when all ask it.
    pub prices: Vec<u64>,
    /// Faults injected into some orchestrators, so a scenario can prove a probe catches them.
    pub faults: Option<Faults>,
}

/// The account a `direct` target pays from, on a real network or any chain with a TicketBroker.
/// The key itself never appears in a scenario: it comes from an environment variable or a file
/// when the run starts, and is never logged.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectPayment {
    /// JSON-RPC URL of the chain the TicketBroker lives on.
    pub chain_rpc: String,
    /// TicketBroker address (`0x…`).
    pub ticket_broker: String,
    /// Where the hex private key is read from.
    pub key: KeySource,
}

/// Where a private key is read from when the run starts.
pub use protocol::key::KeySource;

/// Fault switches for some of the embedded orchestrators: each makes one kind of misbehaviour
/// observable, so a scenario can prove a probe catches it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// 0-based indices of the orchestrators that misbehave; empty means all.
    pub orchestrators: Vec<u32>,
    /// The switches, under the orchestrator's own names: the `[target.faults]` keys are its
    /// `[faults]` keys, and the table goes into those orchestrators' configs as it is.
    pub switches: FaultConfig,
}

/// The video the publishers send.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Generated, stamped, encoded once and replayed to every stream.
    Synthetic(SyntheticSource),
    /// A user's file, stamped by re-encoding.
    File { path: PathBuf, gop: Duration },
}

/// A generated source: a stamped test pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSource {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub gop: Duration,
    /// Length of the encoded clip that publishers loop.
    pub clip: Duration,
}

/// One rendition of the ladder: the media engine's own profile type, so a scenario's ladder is
/// exactly what the reference transcoder and the bench run.
pub use reference_transcoder::ladder::{Gop, H264Profile, Profile};

/// A named piece of load with its executor.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    /// Delay from the run's start before this workload begins.
    pub start_after: Duration,
    pub executor: Executor,
}

/// How a workload drives streams (k6's "executor").
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// N streams for a duration.
    ConstantStreams { streams: u32, duration: Duration },
    /// Stream count moves linearly to each stage's target over the stage's duration.
    RampingStreams {
        start_streams: u32,
        stages: Vec<Stage>,
    },
    /// Add streams step by step until the named threshold breaks; report the last count that held.
    Capacity(CapacitySearch),
    /// The tester acts as a broadcaster and tests each orchestrator directly.
    DirectOrchestrator {
        orchestrators: OrchestratorList,
        price_cap_wei_per_pixel: Option<f64>,
        duration: Duration,
        region: String,
        concurrency: u32,
    },
    /// Long constant load; the reports watch for drift over time.
    Soak { streams: u32, duration: Duration },
}

impl Executor {
    pub fn name(&self) -> &'static str {
        match self {
            Executor::ConstantStreams { .. } => "constant-streams",
            Executor::RampingStreams { .. } => "ramping-streams",
            Executor::Capacity(_) => "capacity",
            Executor::DirectOrchestrator { .. } => "direct-orchestrator",
            Executor::Soak { .. } => "soak",
        }
    }

    /// The most streams this executor runs at once (direct tests publish none).
    pub fn max_streams(&self) -> u32 {
        match self {
            Executor::ConstantStreams { streams, .. } | Executor::Soak { streams, .. } => *streams,
            Executor::RampingStreams {
                start_streams,
                stages,
            } => stages
                .iter()
                .map(|s| s.target)
                .chain([*start_streams])
                .max()
                .unwrap_or(0),
            Executor::Capacity(search) => search.max_streams,
            Executor::DirectOrchestrator { .. } => 0,
        }
    }

    /// The longest this executor runs (capacity: every step up to `max_streams`).
    pub fn max_duration(&self) -> Duration {
        match self {
            Executor::ConstantStreams { duration, .. }
            | Executor::Soak { duration, .. }
            | Executor::DirectOrchestrator { duration, .. } => *duration,
            Executor::RampingStreams { stages, .. } => stages.iter().map(|s| s.duration).sum(),
            Executor::Capacity(search) => {
                let added = search.max_streams.saturating_sub(search.start_streams);
                let steps = added.div_ceil(search.step.max(1)) + 1;
                search.step_duration * steps
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: u32,
}

/// Which orchestrators a direct-to-orchestrator workload tests.
/// A capacity search: streams added step by step until a threshold breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySearch {
    pub start_streams: u32,
    pub step: u32,
    pub step_duration: Duration,
    pub max_streams: u32,
    /// The selector text of the threshold whose failure ends the search.
    pub until: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrchestratorList {
    /// Every orchestrator of the embedded stack.
    Embedded,
    /// Service URIs, e.g. `https://127.0.0.1:8935`.
    Uris(Vec<String>),
    /// Discovered on a chain from the ServiceRegistry's `ServiceURIUpdate` events.
    Chain {
        rpc: String,
        service_registry: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    pub enabled: bool,
    pub sampling: Sampling,
    pub model: String,
    /// Also score the local reference transcoder's rendition of each sampled segment.
    pub reference: bool,
    pub threads: u32,
    /// Score every Nth frame of a sampled segment.
    pub subsample: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Chosen from the measured scoring capacity of this machine.
    Auto,
    /// This fraction of segments (0..=1).
    Fraction(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payments {
    pub enabled: bool,
    pub deposit_wei: u128,
    pub reserve_wei: u128,
}
