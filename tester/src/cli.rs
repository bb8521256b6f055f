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
                  105 interrupted, 107 the stack or a probe could not run, 108 aborted by a threshold."
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
    },
    /// Check scenario files and describe what each would run, without running anything.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Print the version of lpt and of the libraries it was built with.
    Version,
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.quiet);
    let terminal = Terminal::detect(cli.quiet);
    let result = match cli.command {
        Command::Run { scenario, out } => tokio::runtime::Runtime::new()
            .map_err(|e| Failure::new(ExitCode::NotRun, e))
            .and_then(|runtime| {
                runtime.block_on(crate::run::run(crate::run::RunOptions {
                    scenario,
                    out,
                    terminal,
                }))
            }),
        Command::Validate { scenarios } => validate(&scenarios, terminal),
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
