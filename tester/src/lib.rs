//! `lpt`: the stream tester and network benchmarking suite for the Livepeer video network.
//!
//! This crate is the thin top of the workspace: the command line, scenario files, metrics and
//! thresholds, the run pipeline, the summary and exit codes, and [`publish`], the client that posts
//! a run's leaderboard records. Media, protocol, node stack, probes and reports live in their own
//! crates; `main` only calls [`cli::main`].

pub mod ai;
pub mod bench;
pub mod chaos;
pub mod cli;
pub mod direct;
pub mod duration;
pub mod executors;
pub mod exit_code;
mod hint;
pub mod logging;
pub mod metrics;
pub mod node_cmd;
pub mod output;
pub mod pool;
pub mod progress;
pub mod publish;
pub mod report;
pub mod run;
pub mod scenario;
pub mod stack;
pub mod stack_cmd;
pub mod streams;
pub mod summary;
pub mod thresholds;
