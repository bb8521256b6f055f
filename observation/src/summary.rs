//! The one writer of `summary.json`, and where its schema lives.
//!
//! A run hands its whole summary (the tester's outcome, metrics and thresholds, with the report
//! step's `report` and `breakdowns` added) to [`write_summary`] once; a run that could not finish
//! its reports (a second Ctrl-C, a report that failed to render) writes what it has through the
//! same function. The file is written atomically: a temporary file, synced to disk, then renamed,
//! so a reader never sees half of it, nor after a crash an empty file under the final name.
//! Every summary validates against the one checked-in schema, [`SCHEMA_PATH`]; consumers must
//! ignore keys they do not know.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// File name of the summary in a run directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// `schema_version` of the summary this build writes; bumped when a documented field moves or
/// changes meaning, never when one is added.
pub const SCHEMA_VERSION: u32 = 1;

/// The checked-in JSON schema, relative to the workspace root.
pub const SCHEMA_PATH: &str = "observation/schema/summary.schema.json";

/// Writes `summary` as `<run_dir>/summary.json` (pretty JSON, newline-terminated), atomically.
pub fn write_summary<S: Serialize + ?Sized>(
    run_dir: &Path,
    summary: &S,
) -> std::io::Result<PathBuf> {
    let path = run_dir.join(SUMMARY_FILE);
    let temporary = run_dir.join(".summary.json.tmp");
    let mut json = serde_json::to_vec_pretty(summary).map_err(std::io::Error::other)?;
    json.push(b'\n');
    let mut file = std::fs::File::create(&temporary)?;
    std::io::Write::write_all(&mut file, &json)?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("observation-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = write_summary(
            &dir,
            &serde_json::json!({ "schema_version": SCHEMA_VERSION }),
        )
        .unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["schema_version"], 1);
        assert!(!dir.join(".summary.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
