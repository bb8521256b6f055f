//! The command line: argument definitions and dispatch to the library, nothing else.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit_code::{ExitCode, Failure};
use crate::logging::{self, LogFormat};
use crate::output::Terminal;
use crate::scenario;

#[derive(Debug, Parser)]
#[command(
    name = "lpt",
    version,
    about = "The stream tester and network benchmarking suite for the Livepeer video network",
    after_help = "Exit codes: 0 passed, 99 thresholds failed, 104 invalid scenario or configuration, \
                  105 interrupted (a second Ctrl-C exits at once), 107 the stack or a probe could not run \
                  or the results could not be written (disk full), 108 aborted by a threshold."
)]
pub struct Cli {
    /// Print only the verdict and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Format of diagnostic logs on stderr (filter with LPT_LOG, e.g. LPT_LOG=debug).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario end to end and judge it by its thresholds.
    Run {
        /// Scenario file (default: the built-in scenarios/smoke.toml).
        scenario: Option<PathBuf>,
        /// Directory for results (default: runs/<scenario>-<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Serve the run's live metrics at http://ADDR/metrics in Prometheus's text format while
        /// it runs (e.g. 127.0.0.1:9464; port 0 picks a free port). The URL is printed on stderr.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
    },
    /// Check scenario files and describe what each would run, without running anything.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Benchmark live transcoding on this machine (go-livepeer's livepeer_bench, and more).
    Bench(BenchArgs),
    /// Score a distorted video against a reference with VMAF and PSNR (any container FFmpeg reads).
    Quality(QualityArgs),
    /// Re-render every report of a run directory (also after a crash, from its journal).
    Report { run_dir: PathBuf },
    /// Compare two runs metric by metric; exit 99 when a change beyond noise is a regression.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Changes smaller than this fraction are noise.
        #[arg(long, default_value_t = 0.02)]
        noise: f64,
    },
    /// Run one node of the stack in the foreground (used by the embedded stack, and by operators).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Post a run's leaderboard.json records to a leaderboard API, signed with HMAC-SHA256.
    Publish {
        /// The run directory holding leaderboard.json.
        run_dir: PathBuf,
        /// Base URL of a leaderboard-serverless-compatible API (`/api/post_stats` is appended).
        #[arg(long)]
        endpoint: String,
        /// Region code to publish the records under (default: the records' own).
        #[arg(long)]
        region: Option<String>,
        /// Regions the leaderboard accepts, checked before anything is posted: `known` (every
        /// code leaderboard-serverless knows), `server` (its /api/regions list, else the known
        /// codes) or comma-separated codes.
        #[arg(long, default_value = "known")]
        accepted_regions: String,
        /// Environment variable holding the shared secret (never a command-line argument).
        #[arg(long, default_value = crate::publish::DEFAULT_SECRET_ENV)]
        secret_env: String,
    },
    /// Start the embedded stack (chain, orchestrators, transcoders, broadcaster) until Ctrl-C.
    #[command(subcommand)]
    Stack(StackCommand),
    /// Print the version of lpt and of the libraries it was built with.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Start every part, print the endpoints, and stop them all on Ctrl-C or SIGTERM.
    Up {
        #[arg(long, default_value_t = 2)]
        orchestrators: u32,
        /// Remote transcoders per orchestrator (0: each orchestrator transcodes itself).
        #[arg(long, default_value_t = 1)]
        transcoders_per_orchestrator: u32,
        /// No chain: price 0, no tickets, as go-livepeer's `-network offchain`.
        #[arg(long)]
        offline: bool,
        /// The broadcaster's ladder (lpms preset names, comma-separated).
        #[arg(long, default_value = "P240p30fps16x9,P360p30fps16x9")]
        ladder: String,
        /// Orchestrators' price, wei per pixel.
        #[arg(long, default_value_t = crate::scenario::DEFAULT_PRICE_PER_UNIT as u64)]
        price: u64,
        /// Segments each transcoder works on at once.
        #[arg(long, default_value_t = 4)]
        transcoder_capacity: u32,
        /// Where node configs and logs go (default: a new directory under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// The orchestrator: gRPC and HTTP on one TLS port, tickets, transcoding, redemption.
    Orchestrator {
        /// Its TOML config (see node/orchestrator/orchestrator.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// A remote transcoder attached to an orchestrator.
    Transcoder {
        /// The orchestrator's service URI (https://host:port).
        #[arg(long)]
        orchestrator: String,
        /// Environment variable holding the shared secret (never a command-line argument).
        #[arg(long, default_value = "LPT_TRANSCODER_SECRET")]
        secret_env: String,
        /// Segments transcoded at once.
        #[arg(long, default_value_t = 1)]
        capacity: usize,
        /// A name sent to the orchestrator with the registration (1 to 64 of [A-Za-z0-9._-]).
        #[arg(long)]
        name: Option<String>,
        /// Fault switches, a JSON object such as '{"inflate_pixels": 3.0}' (keys:
        /// degrade_quality, wrong_stream, inflate_pixels, realtime_ratio, disconnect_after).
        #[arg(long, value_name = "JSON")]
        faults: Option<String>,
    },
    /// The broadcaster: RTMP ingest, segmenting, paid orchestrator sessions, HLS output.
    Broadcaster {
        /// Its TOML config (see node/broadcaster/src/config.rs).
        #[arg(long)]
        config: PathBuf,
    },
    /// A local AI worker serving ai-runner's API with CPU stand-ins for the pipelines that need
    /// no model weights (text-to-image, image-to-image, upscale), and fault switches.
    AiWorker {
        /// Its TOML config (see node/ai-worker/src/config.rs); absent: every default.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct QualityArgs {
    /// The reference (source) video.
    pub reference: PathBuf,
    /// The distorted (transcoded) video.
    pub distorted: PathBuf,
    /// VMAF model: vmaf_v0.6.1 or vmaf_4k_v0.6.1.
    #[arg(long, default_value = "vmaf_v0.6.1")]
    pub model: String,
    /// libvmaf threads (default: one per core).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Score every Nth paired frame.
    #[arg(long, default_value_t = 1)]
    pub subsample: u32,
    /// Also compute SSIM.
    #[arg(long)]
    pub ssim: bool,
    /// Pair frames by `stamp`, by presentation `order`, or `auto` (stamps when both carry them).
    #[arg(long, default_value = "auto", value_parser = ["auto", "stamp", "order"])]
    pub pairing: String,
    /// Score the stamp band too (by default it is left out of the scored area).
    #[arg(long)]
    pub keep_stamp_band: bool,
    /// Write per-frame scores as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write per-frame scores and pooled results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A video file or an HLS playlist (path or http(s) URL); default: the synthetic source.
    pub input: Option<String>,
    /// Ladder of preset names, comma-separated.
    #[arg(long, default_value = reference_transcoder::ladder::BENCH_LADDER)]
    pub profiles: String,
    /// go-livepeer JSON profiles instead of preset names.
    #[arg(long, conflicts_with = "profiles")]
    pub profiles_json: Option<PathBuf>,
    /// Concurrent live sessions (with --find-capacity: the first count tried).
    #[arg(long, default_value_t = 1)]
    pub sessions: u32,
    /// Add sessions until fewer than --realtime-target of segments finish within their duration.
    #[arg(long)]
    pub find_capacity: bool,
    /// Highest session count --find-capacity tries.
    #[arg(long, default_value_t = 32)]
    pub max_sessions: u32,
    /// Sessions added per --find-capacity step.
    #[arg(long, default_value_t = 1)]
    pub step: u32,
    /// Segments each session transcodes (looping over the input); default: the input once.
    #[arg(long)]
    pub segments: Option<u32>,
    /// Length of the synthetic source.
    #[arg(long, default_value = "20s", value_parser = parse_duration_arg)]
    pub duration: std::time::Duration,
    /// Synthetic source size and rate.
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// libx264 preset.
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// Never use a GPU even when one is present.
    #[arg(long)]
    pub cpu_only: bool,
    /// Transcode as fast as possible instead of pacing segments at real time.
    #[arg(long)]
    pub no_pace: bool,
    /// Fraction of segments that must finish within their own duration for a load to hold.
    #[arg(long, default_value_t = 0.99)]
    pub realtime_target: f64,
    /// Directory for results (default: runs/bench-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration(text)
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.quiet);
    let terminal = Terminal::detect(cli.quiet);
    let result = match cli.command {
        Command::Run {
            scenario,
            out,
            metrics_listen,
        } => tokio::runtime::Runtime::new()
            .map_err(|e| Failure::new(ExitCode::NotRun, e))
            .and_then(|runtime| {
                runtime.block_on(crate::run::run(crate::run::RunOptions {
                    scenario,
                    out,
                    metrics_listen,
                    terminal,
                }))
            }),
        Command::Validate { scenarios } => validate(&scenarios, terminal),
        Command::Bench(args) => crate::bench::bench(
            &crate::bench::BenchCommand {
                input: args.input,
                profiles: args.profiles,
                profiles_json: args.profiles_json,
                sessions: args.sessions,
                find_capacity: args.find_capacity,
                max_sessions: args.max_sessions,
                step: args.step,
                segments: args.segments,
                synthetic_seconds: args.duration.as_secs_f64(),
                width: args.width,
                height: args.height,
                fps: args.fps,
                preset: args.preset,
                cpu_only: args.cpu_only,
                no_pace: args.no_pace,
                realtime_target: args.realtime_target,
                out: args.out,
                command_line: std::env::args().collect::<Vec<_>>().join(" "),
            },
            terminal,
        ),
        Command::Quality(args) => quality(args, terminal),
        Command::Report { run_dir } => crate::report::report(&run_dir, terminal),
        Command::Compare { base, new, noise } => crate::report::compare(&base, &new, noise),
        Command::Node(node) => run_node(node)
            .map(|()| ExitCode::Passed)
            .map_err(|e| Failure::new(ExitCode::NotRun, e)),
        Command::Publish {
            run_dir,
            endpoint,
            region,
            accepted_regions,
            secret_env,
        } => publish(run_dir, endpoint, region, &accepted_regions, secret_env),
        Command::Stack(StackCommand::Up {
            orchestrators,
            transcoders_per_orchestrator,
            offline,
            ladder,
            price,
            transcoder_capacity,
            dir,
        }) => tokio::runtime::Runtime::new()
            .map_err(|e| Failure::new(ExitCode::NotRun, e))
            .and_then(|runtime| {
                runtime.block_on(crate::stack_cmd::stack_up(
                    &crate::stack_cmd::StackUp {
                        orchestrators,
                        transcoders_per_orchestrator,
                        offline,
                        ladder,
                        price_per_unit: price,
                        transcoder_capacity,
                        dir,
                    },
                    terminal,
                ))
            }),
        Command::Version => {
            println!("lpt {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::Passed)
        }
    };
    match result {
        Ok(code) => code.code(),
        Err(failure) => {
            eprintln!("{}", terminal.red(&format!("error: {failure}")));
            failure.code.code()
        }
    }
}

/// `lpt node …`: the orchestrator sizes its runtime from its config (`io_threads`); the others
/// run on the default one.
fn run_node(node: NodeCommand) -> anyhow::Result<()> {
    match node {
        NodeCommand::Orchestrator { config } => crate::node_cmd::orchestrator(&config),
        NodeCommand::Broadcaster { config } => {
            tokio::runtime::Runtime::new()?.block_on(crate::node_cmd::broadcaster(&config))
        }
        NodeCommand::AiWorker { config } => {
            tokio::runtime::Runtime::new()?.block_on(crate::node_cmd::ai_worker(config.as_deref()))
        }
        NodeCommand::Transcoder {
            orchestrator,
            secret_env,
            capacity,
            name,
            faults,
        } => tokio::runtime::Runtime::new()?.block_on(crate::node_cmd::transcoder(
            crate::node_cmd::TranscoderArgs {
                orchestrator: &orchestrator,
                secret_env: &secret_env,
                capacity,
                name: name.as_deref(),
                faults: faults.as_deref(),
            },
        )),
    }
}

/// `lpt publish`: exit 0 only when every record was accepted.
fn publish(
    run_dir: PathBuf,
    endpoint: String,
    region: Option<String>,
    accepted_regions: &str,
    secret_env: String,
) -> Result<ExitCode, Failure> {
    let regions = crate::publish::AcceptedRegions::from_arg(accepted_regions)
        .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::new(ExitCode::NotRun, e))?;
    let options = crate::publish::PublishOptions {
        region,
        regions,
        secret_env,
        ..crate::publish::PublishOptions::new(endpoint)
    };
    let report = runtime
        .block_on(crate::publish::publish(&run_dir, &options))
        .map_err(|e| {
            let code = if e.is_usage_error() {
                ExitCode::InvalidScenario
            } else {
                ExitCode::NotRun
            };
            Failure::new(code, e)
        })?;
    println!("{report}");
    if report.all_accepted() {
        Ok(ExitCode::Passed)
    } else {
        Err(Failure::new(
            ExitCode::NotRun,
            anyhow::anyhow!("{}", report.headline()),
        ))
    }
}

fn validate(paths: &[PathBuf], terminal: Terminal) -> Result<ExitCode, Failure> {
    let mut invalid = 0;
    for path in paths {
        match scenario::load(path) {
            Ok(scenario) => {
                if !terminal.quiet {
                    println!("{} {}", terminal.green("✓"), scenario::describe(&scenario));
                }
            }
            Err(error) => {
                invalid += 1;
                eprint!("{} {error}", terminal.red("✗"));
                if !error.to_string().ends_with('\n') {
                    eprintln!();
                }
            }
        }
    }
    if invalid > 0 {
        Err(Failure::new(
            ExitCode::InvalidScenario,
            anyhow::anyhow!("{invalid} of {} scenario files are invalid", paths.len()),
        ))
    } else {
        Ok(ExitCode::Passed)
    }
}

fn quality(args: QualityArgs, terminal: Terminal) -> Result<ExitCode, Failure> {
    let mut options = quality::QualityOptions {
        model: args
            .model
            .parse()
            .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?,
        subsample: args.subsample,
        ssim: args.ssim,
        crop_stamp_band: !args.keep_stamp_band,
        pairing: match args.pairing.as_str() {
            "stamp" => quality::PairingMode::Stamp,
            "order" => quality::PairingMode::PresentationOrder,
            _ => quality::PairingMode::Auto,
        },
        ..Default::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads;
    }
    options
        .validate()
        .map_err(|e| Failure::new(ExitCode::InvalidScenario, e))?;
    let report = quality::compare_files(&args.reference, &args.distorted, &options)
        .map_err(|e| Failure::new(ExitCode::NotRun, e))?;
    if let Some(path) = &args.csv {
        report
            .write_csv_file(path)
            .map_err(|e| Failure::new(ExitCode::NotRun, e))?;
    }
    if let Some(path) = &args.json {
        report
            .write_json_file(path)
            .map_err(|e| Failure::new(ExitCode::NotRun, e))?;
    }
    if terminal.quiet {
        println!("{}", report.summary().lines().next().unwrap_or_default());
    } else {
        println!("{}", report.summary());
    }
    Ok(ExitCode::Passed)
}
