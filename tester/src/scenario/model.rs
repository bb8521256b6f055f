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
    /// Events the run inflicts on the embedded stack (`[[chaos]]`), in file order.
    pub chaos: Vec<ChaosEvent>,
    /// The local AI worker the run starts for `ai` workloads that name no gateway
    /// (`[ai_worker]`, the worker's own config keys; absent: its defaults).
    pub ai_worker: node_ai_worker::AiWorkerConfig,
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
    /// The orchestrators' pool terms and spot checks (`[target.pool]`, the orchestrator's own
    /// `[pool]` keys); absent is the orchestrator's default (no checks, no commission).
    pub pool: Option<node_orchestrator::pool::PoolConfig>,
    /// Fault switches of single transcoders, by (orchestrator, index).
    pub transcoder_faults: std::collections::BTreeMap<
        (u32, u32),
        node_orchestrator::transcoder_faults::TranscoderFaults,
    >,
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
    /// Browser players (hls.js in headless Chromium) watching each stream; 0 for none.
    pub players: u32,
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
    /// Requests to an AI gateway or worker (ai-runner's API), their outputs validated.
    Ai(AiWorkload),
}

impl Executor {
    pub fn name(&self) -> &'static str {
        match self {
            Executor::ConstantStreams { .. } => "constant-streams",
            Executor::RampingStreams { .. } => "ramping-streams",
            Executor::Capacity(_) => "capacity",
            Executor::DirectOrchestrator { .. } => "direct-orchestrator",
            Executor::Soak { .. } => "soak",
            Executor::Ai(_) => "ai",
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
            Executor::DirectOrchestrator { .. } | Executor::Ai(_) => 0,
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
            Executor::Ai(ai) => ai.load.duration(),
        }
    }

    /// Whether it publishes streams (and so needs a stack to publish to).
    pub fn publishes(&self) -> bool {
        !matches!(self, Executor::DirectOrchestrator { .. } | Executor::Ai(_))
    }
}

/// An `ai` workload: one pipeline and model, asked at a rate or at each level of a concurrency
/// sweep, every answer validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AiWorkload {
    /// The pipeline's route without the slash (`text-to-image`).
    pub pipeline: probes::ai::Pipeline,
    /// `model_id` of every request.
    pub model: String,
    /// The gateway's or AI worker's base URL; `None`: the run's local AI worker.
    pub gateway: Option<String>,
    /// The environment variable holding the bearer token, if the gateway wants one.
    pub token_env: Option<String>,
    /// Who answers, as records and the leaderboard name it (default: the gateway's host, or
    /// `local-ai-worker`).
    pub orchestrator: Option<String>,
    pub region: String,
    pub load: AiLoadSpec,
    /// The request's fields besides `model_id` and the input image (`[workloads.<name>.params]`).
    pub params: serde_json::Value,
    /// Width and height of the input image, for pipelines that take one.
    pub input: Option<(u32, u32)>,
    /// Send each seed twice and require the same pixels back.
    pub check_determinism: bool,
    /// A request after this long without one counts as a cold start.
    pub cold_after_idle: Duration,
    /// The most one request may take, media fetched.
    pub timeout: Duration,
}

/// How an `ai` workload paces its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum AiLoadSpec {
    /// Requests sent on schedule whether earlier ones answered or not (an open model).
    Rate { per_second: f64, duration: Duration },
    /// At each level N, N clients send back to back for `step_duration`.
    Sweep {
        levels: Vec<u32>,
        step_duration: Duration,
    },
    /// `live-video-to-video`: one job fed a stamped source in real time for `duration`, its
    /// output required to keep `target_fps`.
    Live { duration: Duration, target_fps: f64 },
}

impl AiLoadSpec {
    pub fn duration(&self) -> Duration {
        match self {
            AiLoadSpec::Rate { duration, .. } => *duration,
            AiLoadSpec::Sweep {
                levels,
                step_duration,
            } => *step_duration * levels.len() as u32,
            AiLoadSpec::Live { duration, .. } => *duration,
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

/// One `[[chaos]]` entry: something the run does to its embedded stack at a given time, once or
/// repeatedly, so the cost of a real-world failure (recovery time, lost segments, lost payments)
/// is measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosEvent {
    /// Time from the run's start of the first occurrence.
    pub at: Duration,
    /// Repeat period; `None` for a single occurrence.
    pub every: Option<Duration>,
    /// Occurrences in all (1 without `every`).
    pub times: u32,
    pub action: ChaosAction,
    /// 1-based line of the entry in the scenario file, for messages.
    pub line: usize,
}

impl ChaosEvent {
    /// When each occurrence starts, from the run's start.
    pub fn occurrences(&self) -> Vec<Duration> {
        (0..self.times.max(1))
            .map(|i| self.at + self.every.unwrap_or_default() * i)
            .collect()
    }

    /// The tag value naming occurrence `at` in metrics and records: `kind:target@at`, e.g.
    /// `kill:orchestrator-0@30s`.
    pub fn label(&self, at: Duration) -> String {
        format!(
            "{}:{}@{}",
            self.action.kind(),
            self.action.node(),
            crate::duration::format_duration(at)
        )
    }
}

/// What a chaos event does.
#[derive(Debug, Clone, PartialEq)]
pub enum ChaosAction {
    /// SIGKILL the node; it stays down for the rest of the run.
    Kill { node: StackNode },
    /// SIGKILL the node, and start it again after `down_for` on the same ports with the same
    /// config (anvil: the same chain state).
    Restart { node: StackNode, down_for: Duration },
    /// The chain RPC the nodes use stops answering for `duration` (connections are accepted and
    /// never answered); the probes keep their own view of the chain.
    ChainOutage { duration: Duration },
    /// The chain drops its last `depth` blocks (anvil's reorg), right after the next redemption
    /// lands, so the redemption is among the dropped blocks.
    ChainReorg { depth: u64 },
    /// The node's data directory (the broadcaster's segment files, an orchestrator's ticket
    /// journal), a filesystem of its own, is filled to its last block for `duration`.
    DiskFull { node: StackNode, duration: Duration },
    /// The path between the broadcaster and `node` (an orchestrator) is impaired for `duration`:
    /// packets on it are dropped, delayed or rate-limited, both ways.
    Network {
        node: StackNode,
        impairment: Impairment,
        duration: Duration,
    },
}

/// What a `network` event does to the packets of a path, each way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impairment {
    /// Every packet dropped: the path is cut (connections stall, new ones time out).
    pub partition: bool,
    /// Packets dropped at random, in parts per million.
    pub loss_ppm: u32,
    /// Added to every packet's one-way trip, spread uniformly by `jitter` either way.
    pub delay: Duration,
    pub jitter: Duration,
    /// The path's rate, bits per second.
    pub bandwidth_bps: Option<u64>,
}

impl ChaosAction {
    /// The scenario's `kind` value.
    pub fn kind(&self) -> &'static str {
        match self {
            ChaosAction::Kill { .. } => "kill",
            ChaosAction::Restart { .. } => "restart",
            ChaosAction::ChainOutage { .. } => "chain_outage",
            ChaosAction::ChainReorg { .. } => "chain_reorg",
            ChaosAction::DiskFull { .. } => "disk_full",
            ChaosAction::Network { .. } => "network",
        }
    }

    /// The node it acts on: the chain for the chain's events.
    pub fn node(&self) -> StackNode {
        match self {
            ChaosAction::Kill { node }
            | ChaosAction::Restart { node, .. }
            | ChaosAction::DiskFull { node, .. }
            | ChaosAction::Network { node, .. } => *node,
            ChaosAction::ChainOutage { .. } | ChaosAction::ChainReorg { .. } => StackNode::Chain,
        }
    }

    /// How long the event lasts (0 for an instant one).
    pub fn duration(&self) -> Duration {
        match self {
            ChaosAction::Restart { down_for, .. } => *down_for,
            ChaosAction::ChainOutage { duration }
            | ChaosAction::DiskFull { duration, .. }
            | ChaosAction::Network { duration, .. } => *duration,
            ChaosAction::Kill { .. } | ChaosAction::ChainReorg { .. } => Duration::ZERO,
        }
    }
}

/// A node of the embedded stack, by the name scenarios and logs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StackNode {
    Broadcaster,
    /// `orchestrator-<index>`.
    Orchestrator(u32),
    /// `transcoder-<orchestrator>-<index>`.
    Transcoder(u32, u32),
    /// `chain`: the local anvil.
    Chain,
}

impl std::fmt::Display for StackNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StackNode::Broadcaster => write!(f, "broadcaster"),
            StackNode::Orchestrator(i) => write!(f, "orchestrator-{i}"),
            StackNode::Transcoder(o, t) => write!(f, "transcoder-{o}-{t}"),
            StackNode::Chain => write!(f, "chain"),
        }
    }
}

impl std::str::FromStr for StackNode {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        let index = |text: &str| text.parse::<u32>().map_err(|_| ());
        match name {
            "broadcaster" => Ok(StackNode::Broadcaster),
            "chain" => Ok(StackNode::Chain),
            _ => {
                if let Some(rest) = name.strip_prefix("orchestrator-") {
                    Ok(StackNode::Orchestrator(index(rest)?))
                } else if let Some(rest) = name.strip_prefix("transcoder-") {
                    let (o, t) = rest.split_once('-').ok_or(())?;
                    Ok(StackNode::Transcoder(index(o)?, index(t)?))
                } else {
                    Err(())
                }
            }
        }
    }
}
