//! Reads a scenario file into a [`Scenario`], reporting every problem at once.
//!
//! One module per section of the file, in the order of [`model`](super::model): each reads its
//! table through the error-collecting [`Reader`], under [`Reader::strict`], so the keys a section
//! reads are the keys it knows and an unknown key is reported with its position and a hint.

mod ai;
mod chaos;
mod faults;
mod ladder;
mod payments;
mod pool;
mod quality;
mod source;
mod target;
mod thresholds;
mod workloads;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml_edit::{Document, TableLike};

use super::diagnostics::Diagnostics;
use super::model::*;
use super::reader::{Reader, Table, join};

pub use target::DEFAULT_PRICE_PER_UNIT;
pub use workloads::MAX_STREAMS;

/// Parses scenario `text`; `path` names the file in diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, Diagnostics> {
    let mut reader = Reader::new(path, text);
    let document = match Document::parse(text) {
        Ok(document) => document,
        Err(error) => {
            reader.errors.error(
                error.span(),
                "",
                format!("not valid TOML: {}", error.message()),
                None,
            );
            return Err(reader.errors.finish());
        }
    };
    let root = Table::new(document.as_table(), Some(0..0), String::new());
    let scenario = reader.strict(&root, |reader| read_scenario(reader, &root, path, text));
    if reader.errors.has_errors() {
        return Err(reader.errors.finish());
    }
    Ok(scenario.expect("no errors means every section was read"))
}

/// Every section of the file; `None` when one could not be read (its errors are recorded).
fn read_scenario(
    reader: &mut Reader<'_>,
    root: &Table<'_>,
    path: &Path,
    text: &str,
) -> Option<Scenario> {
    let name = reader.string(root, "name").unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });
    let description = reader.string(root, "description");
    let target = section(reader, root, "target").and_then(|t| target::read(reader, &t));
    if reader.item(root, "target").is_none() {
        reader.require::<()>(root, "target", "{ kind = \"embedded\" }", None);
    }
    let source = match section(reader, root, "source") {
        Some(t) => source::read(reader, &t),
        None if reader.item(root, "source").is_none() => Some(source::default()),
        None => None,
    };
    let ladder = section(reader, root, "ladder").and_then(|t| ladder::read(reader, &t));
    let ladder = match ladder {
        // A run of AI workloads alone transcodes nothing.
        None if reader.item(root, "ladder").is_none() && only_ai_workloads(root) => Some(vec![]),
        ladder => ladder,
    };
    if reader.item(root, "ladder").is_none() && ladder.is_none() {
        reader.require::<()>(root, "ladder", "{ profiles = [\"P240p30fps16x9\"] }", None);
    }
    // Workloads name thresholds, so they are read last; their table is found in file order.
    let workloads_table = section(reader, root, "workloads");
    let quality = match section(reader, root, "quality") {
        Some(t) => quality::read(reader, &t),
        None => Some(quality::default()),
    };
    let payments = match section(reader, root, "payments") {
        Some(t) => payments::read(reader, &t),
        None => Some(payments::default()),
    };
    let thresholds = match section(reader, root, "thresholds") {
        Some(t) => thresholds::read(reader, &t, ladder.as_deref()),
        None => Vec::new(),
    };
    let threshold_names: BTreeSet<&str> = thresholds
        .iter()
        .map(|t| t.selector_text.as_str())
        .collect();
    let workloads = match workloads_table {
        Some(t) => workloads::read(reader, &t, &threshold_names, target.as_ref()),
        None => {
            reader.require::<()>(
                root,
                "workloads",
                "{ main = { executor = \"constant-streams\", streams = 1, duration = \"30s\" } }",
                None,
            );
            Vec::new()
        }
    };
    // The timeline is checked against the stack and the run's length, so it comes after both.
    let chaos = chaos::read(reader, root, target.as_ref(), &workloads);
    let ai_worker = match section(reader, root, "ai_worker") {
        Some(t) => ai::read_worker(reader, &t),
        None => node_ai_worker::AiWorkerConfig::default(),
    };
    Some(Scenario {
        name,
        description,
        path: path.to_owned(),
        text: text.to_owned(),
        target: target?,
        source: source?,
        ladder: ladder?,
        workloads,
        quality: quality?,
        payments: payments?,
        thresholds,
        chaos,
        ai_worker,
    })
}

/// Whether every workload of the file is an `ai` one (read from the raw table: the ladder is
/// read before the workloads).
fn only_ai_workloads(root: &Table<'_>) -> bool {
    let Some(workloads) = root.table.get("workloads").and_then(|w| w.as_table_like()) else {
        return false;
    };
    !workloads.is_empty()
        && workloads.iter().all(|(_, w)| {
            w.as_table_like()
                .and_then(|w| w.get("executor"))
                .and_then(|e| e.as_str())
                == Some("ai")
        })
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and parses a scenario file.
pub fn load(path: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text).map_err(LoadError::Invalid)
}

/// The table at `key` of `parent`, or an error when `key` holds something else.
fn section<'a>(reader: &mut Reader<'_>, parent: &Table<'a>, key: &str) -> Option<Table<'a>> {
    let item = reader.item(parent, key)?;
    reader.as_table(item, &join(parent.path(), key))
}

/// Table `index` of the array of tables at `key` of `parent` (`[[ladder.custom]]` or inline).
fn sub_table<'a>(
    table: &'a dyn TableLike,
    parent: &Table<'_>,
    index: usize,
    key: &str,
) -> Table<'a> {
    let span = parent
        .table
        .get(key)
        .and_then(|i| i.as_array_of_tables())
        .and_then(|a| a.get(index))
        .and_then(|t| t.span())
        .or_else(|| {
            parent
                .table
                .get(key)
                .and_then(|i| i.as_array())
                .and_then(|a| a.get(index))
                .and_then(|v| v.span())
        });
    Table::new(
        table,
        span,
        format!("{}[{index}]", join(parent.path(), key)),
    )
}

/// A `0x`-prefixed 20-byte address at `key`.
fn address(reader: &mut Reader<'_>, t: &Table<'_>, key: &str) -> Option<String> {
    let text = reader.string(t, key)?;
    let hex = text.strip_prefix("0x").unwrap_or("");
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        reader.error_at(
            t,
            key,
            format!("`{text}` is not a 0x-prefixed 20-byte address"),
            None,
        );
        return None;
    }
    Some(text)
}
