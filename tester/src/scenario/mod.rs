//! Scenario files: what to run, against what, and what counts as passing.
//!
//! A scenario is TOML decoded strictly: unknown keys, wrong types, unknown presets, thresholds
//! that name unknown metrics or renditions outside the ladder are all errors, and every error in
//! a file is reported at once with its line, column and key path (see [`Diagnostics`]).

mod describe;
mod diagnostics;
mod load;
mod model;
mod reader;

pub use describe::{describe, impairment_text};
pub use diagnostics::{Diagnostic, Diagnostics};
pub use load::{DEFAULT_PRICE_PER_UNIT, LoadError, MAX_STREAMS, load, parse};
pub use model::*;

use std::path::Path;

/// The default scenario, built into the binary so `lpt run` works from any directory.
pub const DEFAULT_SCENARIO_PATH: &str = "scenarios/smoke.toml";
pub const DEFAULT_SCENARIO_TEXT: &str = include_str!("../../../scenarios/smoke.toml");

/// Loads `path`, or the built-in default when `path` is `None`.
pub fn load_or_default(path: Option<&Path>) -> Result<Scenario, LoadError> {
    match path {
        Some(path) => load(path),
        None => parse(Path::new(DEFAULT_SCENARIO_PATH), DEFAULT_SCENARIO_TEXT)
            .map_err(LoadError::Invalid),
    }
}
