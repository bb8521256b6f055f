//! `lpt stack up`: the embedded stack on its own, for poking at by hand or with other tools
//! (the `ffmpeg` tool, OBS, go-livepeer's broadcaster, `lpt run` with an external target).
//!
//! It starts exactly what `lpt run` starts for an embedded target, prints where everything is
//! (for people, then one JSON line on stdout for scripts), and stays up until Ctrl-C or SIGTERM,
//! when it stops every child it started. Every child also dies with this process (PDEATHSIG), so
//! even a SIGKILL leaves nothing behind.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tracing::info;

use crate::exit_code::{ExitCode, Failure};
use crate::output::Terminal;
use crate::scenario::EmbeddedTarget;
use crate::scenario::Profile;
use crate::stack::{EmbeddedStack, StackOptions};

/// What `lpt stack up` starts.
#[derive(Debug, Clone)]
pub struct StackUp {
    pub orchestrators: u32,
    pub transcoders_per_orchestrator: u32,
    pub offline: bool,
    pub ladder: String,
    pub price_per_unit: u64,
    pub transcoder_capacity: u32,
    pub dir: Option<PathBuf>,
}

pub async fn stack_up(command: &StackUp, terminal: Terminal) -> Result<ExitCode, Failure> {
    let not_run = |e: anyhow::Error| Failure::new(ExitCode::NotRun, e);
    let invalid = |e: anyhow::Error| Failure::new(ExitCode::InvalidScenario, e);
    let ladder = reference_transcoder::ladder::parse_ladder(&command.ladder)
        .with_context(|| format!("--ladder {:?}", command.ladder))
        .map_err(invalid)?
        .into_iter()
        .collect::<Vec<Profile>>();
    let dir = match &command.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("lpt-stack-{}", std::process::id())),
    };
    let options = StackOptions {
        nodes: EmbeddedTarget {
            orchestrators: command.orchestrators,
            transcoders_per_orchestrator: command.transcoders_per_orchestrator,
            offline: command.offline,
            price_per_unit: command.price_per_unit,
            pixels_per_unit: 1,
            prices: Vec::new(),
            faults: None,
            pool: None,
            transcoder_faults: Default::default(),
        },
        ladder,
        deposit_wei: 10u128.pow(18),
        reserve_wei: 10u128.pow(18),
        transcoder_capacity: command.transcoder_capacity,
        dir: dir.clone(),
        lpt: crate::stack::embedded::current_lpt().map_err(not_run)?,
        ready_deadline: Duration::from_secs(60),
        keep_chain_state: false,
        own_filesystems: Vec::new(),
        impaired_paths: Vec::new(),
    };
    let stack = EmbeddedStack::start(&options)
        .await
        .context("the embedded stack did not come up")
        .map_err(not_run)?;
    // Caught before the announcements, which a script may answer with Ctrl-C at once.
    let stop = crate::node_cmd::StopSignals::install().map_err(not_run)?;
    let endpoints = &stack.endpoints;
    if !terminal.quiet {
        println!("{}", terminal.green("embedded stack up"));
        println!("  publish   {}", endpoints.rtmp_url);
        println!("  play      {}", endpoints.playback_url);
        for (uri, address) in endpoints
            .orchestrators
            .iter()
            .zip(&endpoints.orchestrator_addresses)
        {
            match address {
                Some(address) => println!("  orchestr. {uri}  ({address})"),
                None => println!("  orchestr. {uri}"),
            }
        }
        if let Some(rpc) = &endpoints.chain_rpc {
            println!("  chain     {rpc}");
            println!(
                "  contracts TicketBroker {}  ServiceRegistry {}",
                endpoints.ticket_broker.as_deref().unwrap_or("-"),
                endpoints.service_registry.as_deref().unwrap_or("-")
            );
            println!(
                "  keys      anvil's well-known test accounts: for local use only, never on a real network"
            );
        }
        println!("  logs      {}", dir.display());
        println!("Ctrl-C stops every part.");
    }
    let line = serde_json::json!({ "event": "stack_up", "endpoints": endpoints, "dir": dir });
    println!("{line}");
    info!(dir = %dir.display(), "embedded stack up");

    stop.wait().await;
    info!("stopping the embedded stack");
    stack.stop().await;
    Ok(ExitCode::Passed)
}
